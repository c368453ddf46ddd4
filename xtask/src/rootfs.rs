//! A minimal root filesystem made from Debian's `busybox-static`: one static binary
//! that is every command, linked under each command's name.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The host's busybox; `busybox-static` installs it, and static means it runs in a
/// rootfs without any library.
pub const BUSYBOX: &str = "/bin/busybox";

const DIRS: &[&str] = &[
    "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
];
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Builds (or completes) a busybox rootfs at `dir`.
pub fn busybox(dir: &Path) -> Result<()> {
    if !Path::new(BUSYBOX).is_file() {
        bail!("{BUSYBOX} is missing: apt-get install busybox-static");
    }
    for sub in DIRS {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    let copy = dir.join("bin/busybox");
    if fs::read(&copy).ok() != Some(fs::read(BUSYBOX)?) {
        let _ = fs::remove_file(&copy);
        fs::copy(BUSYBOX, &copy).context("copying busybox into the rootfs")?;
    }
    let list = Command::new(BUSYBOX).arg("--list-full").output()?;
    if !list.status.success() {
        bail!("{BUSYBOX} --list-full failed");
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = dir.join(applet.trim_start_matches('/'));
        if applet.is_empty() || link.symlink_metadata().is_ok() {
            continue;
        }
        fs::create_dir_all(link.parent().expect("an applet has a directory"))?;
        // Absolute: it resolves once the rootfs is the container's `/`.
        symlink("/bin/busybox", &link).with_context(|| format!("linking {}", link.display()))?;
    }
    fs::write(dir.join("etc/passwd"), PASSWD)?;
    fs::write(dir.join("etc/group"), GROUP)?;
    // Like every image: stage 4 binds the container's own over these.
    for name in ["hosts", "hostname", "resolv.conf"] {
        fs::write(dir.join("etc").join(name), "")?;
    }
    Ok(())
}
