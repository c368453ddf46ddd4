//! The helper programs a network needs (slirp4netns, pasta) are children of the
//! runtime: found on the host's PATH, stopped and reaped on every path out.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The first executable `name` on the host's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    stage03_userns::which(name)
}

/// Waits up to `grace` for `child` to exit by itself (its pidfd becomes readable),
/// then kills it; reaps it either way.
pub fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: pidfd_open of our own child, not yet reaped.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
    if pidfd >= 0 {
        // SAFETY: the kernel just gave us this fd.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(grace).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, timeout);
    }
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
    }
    let _ = child.wait();
}
