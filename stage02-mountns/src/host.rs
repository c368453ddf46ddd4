//! The default rootfs, `host`: a root that works on any Linux machine, offline.
//!
//! It is a fresh tmpfs that borrows the host's programs and libraries (read-only bind
//! mounts of /usr, /bin, /sbin, /lib*) and gets a small /etc of its own. The container
//! can run `ls` or `python3` from the host, but cannot see the host's /home, /root,
//! /etc or /var, and cannot change the programs it borrows.

use std::fs;
use std::path::Path;

use anyhow::Result;
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID};

use crate::at::At;
use crate::inroot::Root;
use crate::newmount;

/// Where the tmpfs root is mounted, inside our private mount namespace only. Nothing
/// of the host is hidden for long: the whole old root is detached after pivot_root.
pub const MOUNT_POINT: &str = "/tmp";

/// The host directories that hold programs and libraries.
const BORROWED: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

// ANCHOR: host_build
/// Mounts a tmpfs root and fills it from the host, relative to the fd of its root.
pub fn build(hostname: &str) -> Result<Root> {
    let root = newmount::filesystem(
        "tmpfs",
        "mode=0755,size=65536k",
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )?
    .attach(
        &At::open_dir(Path::new(MOUNT_POINT))?,
        "an empty, private filesystem to become the container's root",
    )?;
    for dir in BORROWED {
        borrow(dir, &root)?;
    }
    write_etc(&root.mkdir("etc", 0o755)?, hostname)?;
    root.mkdir("root", 0o755)?;
    Ok(Root::new(root))
}
// ANCHOR_END: host_build

// ANCHOR: borrow
/// Makes the host's `/<dir>` visible at `<dir>` in `root`, read-only. On merged-/usr
/// systems /bin is a symlink to usr/bin: copy the link, bind the rest.
fn borrow(dir: &str, root: &At) -> Result<()> {
    let host = Path::new("/").join(dir);
    match fs::symlink_metadata(&host) {
        Err(_) => Ok(()), // this machine has no such directory (e.g. /libx32)
        Ok(meta) if meta.file_type().is_symlink() => root.symlink(fs::read_link(&host)?, dir),
        Ok(_) => {
            newmount::clone_path(&host, true)?.read_only()?.attach(
                &root.mkdir(dir, 0o755)?,
                "borrow the host's programs and libraries, read-only",
            )?;
            Ok(())
        }
    }
}
// ANCHOR_END: borrow

/// A minimal /etc: who root is, the hostname, and name resolution for the
/// host's network (shared until stage 4).
fn write_etc(etc: &At, hostname: &str) -> Result<()> {
    let files = [
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .to_owned(),
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n".to_owned()),
        ("hostname", format!("{hostname}\n")),
        (
            "hosts",
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{hostname}\n"),
        ),
        (
            "resolv.conf",
            fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    ];
    for (name, content) in files {
        etc.write_file(name, &content)?;
    }
    Ok(())
}
