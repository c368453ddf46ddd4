//! The default rootfs, `host`: a root that works on any Linux machine, offline.
//!
//! It is a fresh tmpfs that borrows the host's programs and libraries (read-only bind
//! mounts of /usr, /bin, /sbin, /lib*) and gets a small /etc of its own. The container
//! can run `ls` or `python3` from the host, but cannot see the host's /home, /root,
//! /etc or /var, and cannot change the programs it borrows.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::MsFlags;

use crate::mounts::{bind, make_readonly, mount_fs};

/// Where the tmpfs root is mounted, inside our private mount namespace only. Nothing
/// of the host is hidden for long: the whole old root is detached after pivot_root.
pub const MOUNT_POINT: &str = "/tmp";

/// The host directories that hold programs and libraries.
const BORROWED: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

// ANCHOR: host_build
/// Mounts a tmpfs root and fills it from the host; returns its path.
pub fn build(hostname: &str) -> Result<PathBuf> {
    let root = PathBuf::from(MOUNT_POINT);
    mount_fs(
        "tmpfs",
        &root,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=65536k"),
        "an empty, private filesystem to become the container's root",
    )?;
    for dir in BORROWED {
        borrow(&Path::new("/").join(dir), &root.join(dir))?;
    }
    write_etc(&root.join("etc"), hostname)?;
    fs::create_dir_all(root.join("root")).context("creating /root in the host rootfs")?;
    Ok(root)
}
// ANCHOR_END: host_build

// ANCHOR: borrow
/// On merged-/usr systems /bin is a symlink to usr/bin: copy the link, bind the rest.
fn borrow(host: &Path, inside: &Path) -> Result<()> {
    match fs::symlink_metadata(host) {
        Err(_) => Ok(()), // this machine has no such directory (e.g. /libx32)
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(host)?;
            symlink(&target, inside).with_context(|| format!("symlink {inside:?} -> {target:?}"))
        }
        Ok(_) => {
            fs::create_dir(inside).with_context(|| format!("mkdir {inside:?}"))?;
            bind(
                host,
                inside,
                true,
                "borrow the host's programs and libraries",
            )?;
            make_readonly(inside, "the container may run them, not change them")
        }
    }
}
// ANCHOR_END: borrow

/// A minimal /etc: who root is, the hostname, and name resolution for the
/// host's network (shared until stage 4).
fn write_etc(etc: &Path, hostname: &str) -> Result<()> {
    fs::create_dir_all(etc)?;
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
        fs::write(etc.join(name), content).with_context(|| format!("writing /etc/{name}"))?;
    }
    Ok(())
}
