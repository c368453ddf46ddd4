//! The channel between parent and child.
//!
//! The child must not run ahead of the parent: until the parent has done its part from
//! outside (written the id maps, attached the network, joined the cgroup), the child
//! would run with no identity, no network, no limits. So the child blocks on a socket
//! until the parent says "go".
//!
//! The same socket carries the child's errors back: a failing mount or a missing
//! command becomes a real message in the parent, not a bare exit status. Its end in
//! the child is close-on-exec, so a successful `execve` closes it and the parent reads
//! end-of-file: that is how the parent knows the command is running.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::exit::Failure;

/// The message that releases the child.
const GO: &[u8] = b"go";

/// The parent's end.
#[derive(Debug)]
pub struct ParentEnd(OwnedFd);

/// The child's end.
#[derive(Debug)]
pub struct ChildEnd(OwnedFd);

/// A connected pair; `SOCK_SEQPACKET` keeps each message whole.
pub fn channel() -> Result<(ParentEnd, ChildEnd)> {
    let (parent, child) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair(AF_UNIX, SOCK_SEQPACKET) for the parent/child channel")?;
    Ok((ParentEnd(parent), ChildEnd(child)))
}

impl ParentEnd {
    /// In the child, which got a copy of every fd at `clone`: closes its copy of the
    /// parent's end. Then, if the parent dies, the child reads end-of-file instead of
    /// waiting forever on a socket it holds open itself.
    pub fn close_in_child(&self) {
        // SAFETY: the child never drops this OwnedFd (it leaves by execve or _exit),
        // so the fd is closed exactly once in this process.
        unsafe { libc::close(self.0.as_raw_fd()) };
    }

    /// Releases the waiting child.
    pub fn release(&self) -> Result<()> {
        socket::send(self.0.as_raw_fd(), GO, MsgFlags::MSG_NOSIGNAL)
            .context("telling the child to go on")?;
        Ok(())
    }

    /// Waits until the child has exec'd (`Ok(())`) or reported why it could not.
    pub fn wait_for_exec(&self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match socket::recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                other => break other.context("reading the child's report")?,
            }
        };
        if n == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        let (code, message) = text.split_once(':').unwrap_or(("125", &text));
        Err(Failure {
            code: code.parse().unwrap_or(crate::exit::RUNTIME_FAILED),
            message: message.to_owned(),
        }
        .into())
    }
}

impl ChildEnd {
    /// Blocks until the parent says "go". `false` means the parent is gone.
    pub fn wait_for_go(&self) -> bool {
        let mut buf = [0u8; 8];
        loop {
            match socket::recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                Ok(n) => return &buf[..n] == GO,
                Err(_) => return false,
            }
        }
    }

    /// Whether the parent's end is closed, that is, the parent is gone.
    pub fn parent_gone(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
            Err(_) => false,
        }
    }

    /// Sends the reason the child could not exec, with the exit code it stands for.
    pub fn report(&self, code: i32, message: &str) {
        let text = format!("{code}:{message}");
        // Nothing more can be done if the parent is gone: the child exits either way.
        let _ = socket::send(self.0.as_raw_fd(), text.as_bytes(), MsgFlags::MSG_NOSIGNAL);
    }
}
