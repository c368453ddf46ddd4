//! Hiding and freezing the dangerous parts of /proc and /sys, as runc does by default.
//!
//! A fresh /proc still exposes the machine: /proc/kcore is the kernel's memory,
//! /proc/sysrq-trigger can reboot it, /proc/sys tunes it. Root in the container is root
//! on the host (until stage 3), so these are masked (a tmpfs or /dev/null on top) or
//! made read-only.

use std::path::Path;

use anyhow::Result;
use nix::mount::MsFlags;

use crate::mounts::{bind, make_readonly, mount_fs};

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
/// Applies both lists below `root`; paths this kernel lacks are skipped.
pub fn apply(root: &Path) -> Result<()> {
    for path in MASKED {
        let target = root.join(path);
        if target.is_dir() {
            let flags =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount_fs(
                "tmpfs",
                &target,
                flags,
                Some("size=0"),
                "mask: an empty directory on top",
            )?;
        } else if target.exists() {
            bind(
                Path::new("/dev/null"),
                &target,
                false,
                "mask: /dev/null on top reads empty",
            )?;
        }
    }
    for path in READ_ONLY {
        let target = root.join(path);
        if target.exists() {
            bind(
                &target,
                &target,
                true,
                "a bind mount of itself, to make it read-only on its own",
            )?;
            make_readonly(&target, "readable, but not writable from the container")?;
        }
    }
    Ok(())
}
// ANCHOR_END: apply_masks
