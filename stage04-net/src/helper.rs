//! The helper programs a network needs (slirp4netns, pasta) are children of the
//! runtime: found on the host's PATH, stopped and reaped on every path out.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The first executable `name` on the host's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    stage03_userns::which(name)
}

/// A file for a helper's stderr: read when it fails, never a pipe that could fill up
/// while nobody reads it.
pub fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// What a helper said on stderr, in one line (its syslog complaints left out).
pub fn said(log: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("syslog"))
        .collect();
    if lines.is_empty() {
        format!("{name} exited without a message")
    } else {
        lines.join("; ")
    }
}

/// Waits up to `grace` for `child` to exit by itself (its pidfd becomes readable),
/// then kills it; reaps it either way.
pub fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pidfd) = pidfd(child) {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(grace).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, timeout);
    }
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A pidfd of `child` (see `common::pidfd`): readable once it has exited, so that
/// `poll` waits for its end beside other fds.
pub fn pidfd(child: &Child) -> std::io::Result<OwnedFd> {
    // Our own child, not reaped yet: its PID is still its own.
    common::pidfd::open(child.id()).map_err(std::io::Error::from)
}
