//! A busybox root filesystem, built (not downloaded) from the host's `busybox-static`.
//!
//! ```text
//! rootfs-<hash>/
//!   bin/busybox          the static busybox of Debian's busybox-static
//!   bin/sh, bin/ls, ...  one symlink per applet (`busybox --list-full`)
//!   bin/keel-probe       the static probe
//!   etc/passwd, group    root and nobody
//!   dev proc sys tmp     empty: the runtime mounts them
//!   root sbin usr/bin usr/sbin
//! ```
//!
//! Everything in it is static, so it runs anywhere; nothing of the host's is in it, so
//! whatever a container sees of the host must have come through the runtime.
//!
//! It is built once into `<target>/graders/rootfs-<hash>`, where the hash covers its
//! inputs (busybox, the probe, this layout's version): built in a temporary directory
//! beside it, then renamed into place in one step, so parallel test processes either
//! see the finished rootfs or none.

use std::io::ErrorKind;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::skip::Skip;
use crate::{probe, workspace};

/// Debian's static busybox (package `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Where the probe is inside the rootfs.
pub const PROBE: &str = "/bin/keel-probe";

/// Change this when the layout changes, so that old fixtures are not reused.
const LAYOUT_VERSION: &str = "2";

const DIRECTORIES: [&str; 10] = [
    "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The shared busybox rootfs (built on first use). Skips when busybox is not installed.
/// Do not modify it: tests running in parallel use it too; see [`private_copy`].
pub fn busybox() -> Result<&'static Path, Skip> {
    static ROOTFS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if !Path::new(BUSYBOX).exists() {
        return Err(Skip(format!(
            "{BUSYBOX} is missing: apt-get install busybox-static"
        )));
    }
    match ROOTFS.get_or_init(build_shared) {
        Ok(path) => Ok(path),
        Err(err) => panic!("cannot build the busybox rootfs: {err}"),
    }
}

/// A copy of the busybox rootfs that this test alone may modify; it is deleted when the
/// returned value is dropped.
pub fn private_copy() -> Result<TempDir, Skip> {
    let shared = busybox()?;
    let copy = tempfile::Builder::new()
        .prefix("rootfs-copy-")
        .tempdir_in(workspace::graders_dir())
        .expect("cannot create a temporary directory");
    let status = Command::new("cp")
        .arg("-a")
        .arg(shared.join("."))
        .arg(copy.path())
        .status()
        .expect("cannot run cp");
    assert!(status.success(), "cp -a {} failed", shared.display());
    Ok(copy)
}

/// The top-level entries of the rootfs, sorted, as `ls /` shows them in a container:
/// its directories, plus any applet that busybox installs at `/` (such as `linuxrc`).
pub fn top_level() -> Vec<String> {
    let mut names: Vec<String> = DIRECTORIES
        .iter()
        .map(|dir| dir.split('/').next().unwrap_or(dir).to_owned())
        .chain(
            applets()
                .unwrap_or_default()
                .into_iter()
                .filter(|applet| !applet.contains('/')),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

fn build_shared() -> Result<PathBuf, String> {
    let busybox = std::fs::read(BUSYBOX).map_err(|err| format!("{BUSYBOX}: {err}"))?;
    let probe = std::fs::read(probe::path()).map_err(|err| format!("keel-probe: {err}"))?;
    let hash = fnv1a(&[LAYOUT_VERSION.as_bytes(), &busybox, &probe]);
    let graders = workspace::graders_dir();
    let target = graders.join(format!("rootfs-{hash:016x}"));
    if target.exists() {
        return Ok(target);
    }

    let staging = tempfile::Builder::new()
        .prefix(".rootfs-building-")
        .tempdir_in(&graders)
        .map_err(|err| format!("temporary directory in {}: {err}", graders.display()))?;
    populate(staging.path())?;
    match std::fs::rename(staging.path(), &target) {
        Ok(()) => {
            // It has its final name now: the staging guard must not delete it.
            let _ = staging.keep();
            Ok(target)
        }
        // Another process finished first; ours is deleted when `staging` drops.
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(target)
        }
        Err(err) => Err(format!("rename to {}: {err}", target.display())),
    }
}

fn populate(root: &Path) -> Result<(), String> {
    let error = |what: &Path, err: std::io::Error| format!("{}: {err}", what.display());
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
        .map_err(|err| error(root, err))?;
    for dir in DIRECTORIES {
        let path = root.join(dir);
        std::fs::create_dir_all(&path).map_err(|err| error(&path, err))?;
    }
    let tmp = root.join("tmp");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(|err| error(&tmp, err))?;

    let busybox = root.join("bin/busybox");
    std::fs::copy(BUSYBOX, &busybox).map_err(|err| error(&busybox, err))?;
    for applet in applets()? {
        let link = root.join(&applet);
        if link == busybox || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(|err| error(parent, err))?;
        }
        // Absolute: it resolves inside whatever root the container has.
        symlink("/bin/busybox", &link).map_err(|err| error(&link, err))?;
    }

    let probe = root.join(PROBE.trim_start_matches('/'));
    std::fs::copy(probe::path(), &probe).map_err(|err| error(&probe, err))?;
    // Like every image, /etc/hosts, /etc/hostname and /etc/resolv.conf exist (empty):
    // stage 4 binds the container's own over them.
    for (file, text) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/hosts", ""),
        ("etc/hostname", ""),
        ("etc/resolv.conf", ""),
    ] {
        let path = root.join(file);
        std::fs::write(&path, text).map_err(|err| error(&path, err))?;
    }
    Ok(())
}

/// Every applet's path relative to `/`, e.g. `bin/ls`, `usr/bin/wget`.
pub(crate) fn applets() -> Result<Vec<String>, String> {
    let output = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(|err| format!("{BUSYBOX} --list-full: {err}"))?;
    if !output.status.success() {
        return Err(format!("{BUSYBOX} --list-full: {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().trim_start_matches('/').to_owned())
        .filter(|line| !line.is_empty() && !line.contains(".."))
        .collect())
}

/// FNV-1a, 64 bits: a tiny, stable hash, enough to name a cache directory.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts, so that moving bytes between them changes the hash.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A base layer with what a shell needs: the host's static busybox and some of its
/// applets, as an image's layer (a tar).
pub fn busybox_layer() -> Result<Vec<u8>, Skip> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err(Skip(
            "/bin/busybox is missing: apt-get install busybox-static".into(),
        ));
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    for dir in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
        tar.append_data(&mut header.clone(), dir, std::io::empty())
            .expect("dir");
    }
    let program = std::fs::read(busybox).expect("read busybox");
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o755);
    file.set_size(program.len() as u64);
    tar.append_data(&mut file, "bin/busybox", program.as_slice())
        .expect("busybox");
    for applet in ["sh", "ls", "cat", "echo", "test", "pwd", "true", "id"] {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        tar.append_link(&mut link, format!("bin/{applet}"), "busybox")
            .expect("applet");
    }
    Ok(tar.into_inner().expect("tar"))
}
