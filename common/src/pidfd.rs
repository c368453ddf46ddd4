//! `pidfd_open(2)` (Linux 5.3): a file descriptor that stands for one process. It
//! becomes readable when the process exits, so that `poll` can wait for that beside
//! other fds, and a signal sent through it can never reach a later process that was
//! given the same PID.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

/// A pidfd of the process `pid`; `ESRCH` if there is none.
pub fn open(pid: u32) -> nix::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
    // SAFETY: pidfd_open takes a PID and flags, and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just gave us this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
