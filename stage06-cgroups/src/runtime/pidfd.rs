//! Waiting for, and signalling, a process that is not our child.
//!
//! `waitpid` only works for one's own children, and a PID alone is a name that the
//! kernel gives to the next process once this one is gone. A *pidfd*
//! (`pidfd_open(2)`, Linux 5.3) is a handle on one process: it becomes readable when
//! the process exits, and `pidfd_send_signal(2)` through it can never reach a later
//! process with the same PID. keel opens one after checking the recorded start time,
//! then checks the start time again: the handle is then surely the recorded process.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use common::state::Owner;

/// A handle on a running process.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pub pid: u32,
}

impl PidFd {
    // ANCHOR: open
    /// A handle on `proc`, or `None` when it no longer runs.
    pub fn open(proc: &Owner) -> Result<Option<Self>> {
        if !proc.is_alive() {
            return Ok(None);
        }
        let fd = match common::pidfd::open(proc.pid) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ESRCH) => return Ok(None),
            Err(errno) => return Err(errno).with_context(|| format!("pidfd_open({})", proc.pid)),
        };
        // Still the same process: the handle cannot be a later one's.
        if !proc.is_alive() {
            return Ok(None);
        }
        Ok(Some(Self { fd, pid: proc.pid }))
    }
    // ANCHOR_END: open

    /// Sends `signal`; `false` if the process has exited already.
    pub fn signal(&self, signal: Signal) -> Result<bool> {
        // SAFETY: pidfd_send_signal takes the fd, a signal, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::ESRCH => Ok(false),
            errno => {
                Err(errno).with_context(|| format!("pidfd_send_signal({}, {signal})", self.pid))
            }
        }
    }

    /// Waits until it exits, at most `timeout` (`None`: for ever); `true` if it did.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        // A timeout too long to add to now (`stop -t` of years) is no deadline at all.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let left = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, left) {
                Err(nix::Error::EINTR) => continue,
                Err(errno) => return Err(errno).context("poll on a pidfd"),
                // poll waits at most PollTimeout::MAX (24 days): only a deadline that
                // has passed ends the wait.
                Ok(0) if deadline.is_none_or(|d| Instant::now() < d) => continue,
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
            }
        }
    }

    /// The fd, to poll it with others.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
