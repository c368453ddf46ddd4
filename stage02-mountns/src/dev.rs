//! /dev: a small tmpfs with only the devices a program expects, never the host's disks.
//!
//! The host's /dev holds every disk, terminal and device of the machine. The container
//! gets its own tmpfs instead, with the handful of harmless devices that programs take
//! for granted, bound one by one from the host: binding works in a user namespace too,
//! where mknod(2) is not allowed (stage 3).
//!
//! Everything here is made relative to the fd of the new tmpfs's root. That tmpfs
//! lives only in our private mount namespace, so nobody else can change what is in
//! it, and no name in the rootfs (which its owner may rename at any moment) is looked
//! up again.

use std::fs;

use anyhow::Result;
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};

use crate::at::At;
use crate::newmount;

/// The device nodes every container gets, as docker and runc give them.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The symlinks into /proc that shells and programs use (`echo hi > /dev/stderr`).
pub const LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

// ANCHOR: dev_populate
/// Fills the container's /dev, a fresh tmpfs whose root `dev` holds. With a terminal
/// (`-t`), it also gets an empty `console` for the runner to bind the container's
/// terminal onto.
pub fn populate(dev: &At, terminal: bool) -> Result<()> {
    bind_devices(dev)?;
    mount_pts(dev)?;
    let flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    newmount::filesystem("tmpfs", "mode=1777,size=65536k", flags)?
        .attach(&dev.mkdir("shm", 0o755)?, "POSIX shared memory")?;
    newmount::filesystem("mqueue", "", flags)?.attach(
        &dev.mkdir("mqueue", 0o755)?,
        "POSIX message queues of our IPC namespace",
    )?;
    for (name, target) in LINKS {
        dev.symlink(target, name)?;
    }
    if terminal {
        // Only a mount point: the caller's own terminal is never bound here.
        dev.create_file("console", 0o600)?;
    }
    Ok(())
}
// ANCHOR_END: dev_populate

/// Binds each of [`DEVICES`] from the host onto an empty file of the same name in
/// the tmpfs that `dev` holds.
pub fn bind_devices(dev: &At) -> Result<()> {
    // ANCHOR: populate_dev
    // EXERCISE: for each name in DEVICES, create an empty file in dev (At::create_file) and attach a copy of the host's /dev/<name> onto it (newmount::clone_path, then Detached::attach)
    for name in DEVICES {
        let file = dev.create_file(name, 0o644)?;
        let host = format!("/dev/{name}");
        newmount::clone_path(&host, false)?.attach(&file, "a harmless host device")?;
    }
    Ok(())
    // ANCHOR_END: populate_dev
}

// ANCHOR: devpts
/// A devpts of our own: `newinstance` gives the container its own set of pseudo
/// terminals, numbered from 0, instead of the host's.
fn mount_pts(dev: &At) -> Result<()> {
    let why = "pseudo terminals of our own, numbered from 0";
    // gid=5 (tty) is what glibc expects; in a user namespace without that group
    // mapped, the kernel refuses it, and the default is the best we can do. We ask
    // first: a refused mount is not free (about a millisecond here).
    let options = if gid_is_mapped(TTY_GID) {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    newmount::filesystem("devpts", options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)?
        .attach(&dev.mkdir("pts", 0o755)?, why)?;
    dev.symlink("pts/ptmx", "ptmx")
}

/// The `tty` group, which owns terminals.
const TTY_GID: u32 = 5;

/// Whether our user namespace maps `gid` (a line `inside outside count` of
/// /proc/self/gid_map covers it; the host's map covers every id).
fn gid_is_mapped(gid: u32) -> bool {
    let map = fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    map.lines().any(|line| {
        let numbers: Vec<u64> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        matches!(numbers.as_slice(), [inside, _, count] if (*inside..inside + count).contains(&u64::from(gid)))
    })
}
// ANCHOR_END: devpts
