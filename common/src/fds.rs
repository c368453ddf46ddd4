//! The file descriptors a runtime inherits from whoever started it.
//!
//! A process starts with every fd its parent did not mark close-on-exec: a shell's
//! redirections, a build tool's pipes, a descriptor an attacker left open on purpose.
//! An fd is a capability: an open directory of the host is a way into the host's
//! filesystem from any root (`/proc/self/fd/N`, `openat(N, "..")`, `fchdir(N)`). keel
//! needs none of them, so it closes them all before doing anything else; the child
//! later marks its own close-on-exec too, so that none of the runtime's reach the
//! command.

use std::os::fd::RawFd;

use anyhow::{Context, Result};

// ANCHOR: close_inherited
/// Closes every fd above stderr. Called first thing, before the runtime opens any.
pub fn close_inherited() -> Result<()> {
    // SAFETY: nothing of this process holds these fds yet (it has not opened any), so
    // closing them cannot invalidate an OwnedFd.
    let rc = unsafe { close_range(3, u32::MAX, 0) };
    nix::errno::Errno::result(rc).context("close_range(3, ~0, 0): closing inherited fds")?;
    Ok(())
}
// ANCHOR_END: close_inherited

// ANCHOR: close_all_but
/// Closes every fd above stderr but those of `keep`: for a helper forked from the
/// runtime that enters the container's namespaces, or serves it, and must hold nothing
/// of the runtime's but what it works on.
pub fn close_all_but(keep: &[RawFd]) -> nix::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    keep.sort_unstable();
    // The gaps between the fds kept, from 3 to the last fd there can be.
    let mut first = 3u32;
    for fd in keep.into_iter().map(Some).chain([None]) {
        let last = fd.map_or(u32::MAX, |fd| fd.saturating_sub(1));
        if first <= last {
            // SAFETY: close_range only closes fds; the caller uses none of them again.
            nix::errno::Errno::result(unsafe { close_range(first, last, 0) })?;
        }
        first = fd.map_or(u32::MAX, |fd| fd.saturating_add(1));
    }
    Ok(())
}
// ANCHOR_END: close_all_but

// ANCHOR: close_fds
/// Marks every fd above stderr close-on-exec. Whatever the runtime (or whoever started
/// it) left open would otherwise leak into the container: a host directory fd is a way
/// out of any root (runc's CVE-2024-21626 was exactly that).
pub fn close_on_exec_all() -> Result<()> {
    // SAFETY: close_range only changes flags of fds of this process.
    let rc = unsafe { close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    nix::errno::Errno::result(rc).context("close_range(3, ~0, CLOSE_RANGE_CLOEXEC)")?;
    crate::explain::step(
        "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)",
        "no fd of the host survives execve, except stdin, stdout and stderr",
    );
    Ok(())
}
// ANCHOR_END: close_fds

/// `close_range(2)` (Linux 5.9), as the system call itself: not every C library wraps it
/// (musl does not).
///
/// # Safety
/// The fds from `first` to `last` must not be owned by anything that uses them again.
unsafe fn close_range(first: u32, last: u32, flags: u32) -> libc::c_int {
    // SAFETY: the caller's promise; the call takes three integers.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    rc as libc::c_int
}
