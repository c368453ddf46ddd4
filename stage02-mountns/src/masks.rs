//! Hiding and freezing the dangerous parts of /proc and /sys, as runc does by default.
//!
//! A fresh /proc still exposes the machine: /proc/kcore is the kernel's memory,
//! /proc/sysrq-trigger can reboot it, /proc/sys tunes it. Root in the container is root
//! on the host (until stage 3), so these are masked (a tmpfs or /dev/null on top) or
//! made read-only.
//!
//! Each path is opened below the fd of the /proc or /sys mount the layer attached, not
//! looked up by name in the rootfs: a `proc` renamed away and replaced by a symlink in
//! between would otherwise send the masks to a directory of the host, and leave the
//! container's real /proc bare.

use anyhow::{Context, Result, bail};
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use nix::errno::Errno;

use crate::at::At;
use crate::newmount;

// ANCHOR: masked_paths
/// Paths hidden from the container (runc's default `maskedPaths`).
pub const MASKED: [&str; 11] = [
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/sched_debug",
    "proc/scsi",
    "proc/timer_list",
    "proc/timer_stats",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths the container may read but not write (runc's default `readonlyPaths`).
pub const READ_ONLY: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];
// ANCHOR_END: masked_paths

// ANCHOR: apply_masks
/// Applies both lists below `proc` and `sys`, the roots of the container's /proc and
/// /sys; paths this kernel lacks are skipped.
pub fn apply(proc: &At, sys: &At) -> Result<()> {
    for path in MASKED {
        let Some(target) = open(path, proc, sys)? else {
            continue;
        };
        if is_dir(&target)? {
            let flags =
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
            newmount::filesystem("tmpfs", "size=0", flags)?
                .attach(&target, "mask: an empty directory on top")?;
        } else {
            newmount::clone_path("/dev/null", false)?
                .attach(&target, "mask: /dev/null on top reads empty")?;
        }
    }
    for path in READ_ONLY {
        let Some(target) = open(path, proc, sys)? else {
            continue;
        };
        newmount::clone_at(&target, true)?.read_only()?.attach(
            &target,
            "a read-only copy of itself on top: readable, not writable from the container",
        )?;
    }
    Ok(())
}
// ANCHOR_END: apply_masks

// ANCHOR: open_masked
/// Opens `path` (`"proc/kcore"`) below the root of the filesystem it names; `None`
/// if this kernel has no such file.
///
/// `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS`: never out of that root, never through a
/// symlink. Not `RESOLVE_NO_XDEV`, which refuses to cross a mount point: a path may
/// already be one (where stage 3 binds the host's /sys, its mounts come along, and
/// inside another container /sys/firmware is that runtime's mask), and then it is the
/// mount on top that must be covered, which is where the lookup ends.
fn open(path: &str, proc: &At, sys: &At) -> Result<Option<At>> {
    let (root, rest) = match path.split_once('/') {
        Some(("proc", rest)) => (proc, rest),
        Some(("sys", rest)) => (sys, rest),
        _ => bail!("{path}: only paths below proc/ and sys/ can be masked"),
    };
    match root.open(rest) {
        Ok(target) => Ok(Some(target)),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno).with_context(|| format!("opening /{path} to mask it")),
    }
}
// ANCHOR_END: open_masked

/// Whether `at` holds a directory.
fn is_dir(at: &At) -> Result<bool> {
    let stat = nix::sys::stat::fstat(at).context("fstat")?;
    Ok(stat.st_mode & libc::S_IFMT == libc::S_IFDIR)
}
