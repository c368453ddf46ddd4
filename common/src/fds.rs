//! The file descriptors a runtime inherits from whoever started it.
//!
//! A process starts with every fd its parent did not mark close-on-exec: a shell's
//! redirections, a build tool's pipes, a descriptor an attacker left open on purpose.
//! An fd is a capability: an open directory of the host is a way into the host's
//! filesystem from any root (`/proc/self/fd/N`, `openat(N, "..")`, `fchdir(N)`). keel
//! needs none of them, so it closes them all before doing anything else; the child
//! later marks its own close-on-exec too, so that none of the runtime's reach the
//! command.

use anyhow::{Context, Result};

// ANCHOR: close_inherited
/// Closes every fd above stderr. Called first thing, before the runtime opens any.
pub fn close_inherited() -> Result<()> {
    // SAFETY: nothing of this process holds these fds yet (it has not opened any), so
    // closing them cannot invalidate an OwnedFd.
    let rc = unsafe { libc::close_range(3, u32::MAX, 0) };
    nix::errno::Errno::result(rc).context("close_range(3, ~0, 0): closing inherited fds")?;
    Ok(())
}
// ANCHOR_END: close_inherited
