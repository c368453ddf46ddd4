//! /dev: a small tmpfs with only the devices a program expects, never the host's disks.
//!
//! The host's /dev holds every disk, terminal and device of the machine. The container
//! gets its own tmpfs instead, with the handful of harmless devices that programs take
//! for granted, bound one by one from the host: binding works in a user namespace too,
//! where mknod(2) is not allowed (stage 3).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::MsFlags;

use crate::mounts::{bind, mount_fs};

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
/// Fills the container's /dev at `dev`, a fresh tmpfs.
pub fn populate(dev: &Path) -> Result<()> {
    bind_devices(dev)?;
    mount_pts(dev)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    fs::create_dir(dev.join("shm"))?;
    mount_fs(
        "tmpfs",
        &dev.join("shm"),
        flags,
        Some("mode=1777,size=65536k"),
        "POSIX shared memory",
    )?;
    fs::create_dir(dev.join("mqueue"))?;
    mount_fs(
        "mqueue",
        &dev.join("mqueue"),
        flags,
        None,
        "POSIX message queues of our IPC namespace",
    )?;
    for (name, target) in LINKS {
        symlink(target, dev.join(name)).with_context(|| format!("symlink /dev/{name}"))?;
    }
    bind_console(dev)
}
// ANCHOR_END: dev_populate

/// Binds each of [`DEVICES`] from the host onto an empty file in `dev`.
pub fn bind_devices(dev: &Path) -> Result<()> {
    // ANCHOR: populate_dev
    // EXERCISE: for each name in DEVICES, create an empty file in dev and bind-mount the host's /dev/<name> onto it
    for name in DEVICES {
        let target = dev.join(name);
        fs::File::create(&target).with_context(|| format!("creating {target:?}"))?;
        bind(
            &Path::new("/dev").join(name),
            &target,
            false,
            "a harmless host device",
        )?;
    }
    Ok(())
    // ANCHOR_END: populate_dev
}

// ANCHOR: devpts
/// A devpts of our own: `newinstance` gives the container its own set of pseudo
/// terminals, numbered from 0, instead of the host's.
fn mount_pts(dev: &Path) -> Result<()> {
    let pts = dev.join("pts");
    fs::create_dir(&pts)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let why = "pseudo terminals of our own, numbered from 0";
    // gid=5 (tty) is what glibc expects; in a user namespace without that group
    // mapped, the kernel refuses it, and the default is the best we can do. We ask
    // first: a refused mount is not free (about a millisecond here).
    let options = if gid_is_mapped(TTY_GID) {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mount_fs("devpts", &pts, flags, Some(options), why)?;
    symlink("pts/ptmx", dev.join("ptmx")).context("symlink /dev/ptmx")?;
    Ok(())
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

/// With a terminal on stdin (`-it`), the container's /dev/console is that terminal.
fn bind_console(dev: &Path) -> Result<()> {
    if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return Ok(());
    }
    let tty = fs::read_link("/proc/self/fd/0").context("finding our terminal")?;
    let console = dev.join("console");
    fs::File::create(&console)?;
    bind(
        &tty,
        &console,
        false,
        "our terminal is the container's console",
    )
}
