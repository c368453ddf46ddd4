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
//!
//! With `-t`, one more message comes first: the container's terminal, the master side
//! of a pseudo-terminal the child opened in its own `/dev/pts`, passed as a file
//! descriptor (`SCM_RIGHTS`), as runc passes it over its console socket.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::exit::Failure;

/// The message that releases the child.
const GO: &[u8] = b"go";

/// The message that says the child has made the namespaces it unshares.
const UNSHARED: &[u8] = b"unshared";

/// The message that carries the terminal's master fd.
const TERMINAL: &[u8] = b"terminal";

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

    /// Waits until the child has made the namespaces it unshares (`Ok`), or reported
    /// why it could not.
    pub fn wait_for_unshare(&self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let (n, _) = self.receive(&mut buf)?;
        match &buf[..n] {
            UNSHARED => Ok(()),
            [] => anyhow::bail!("the child exited before it made its namespaces"),
            text => Err(failure(text).into()),
        }
    }

    /// Waits until the child has exec'd (`Ok`) or reported why it could not. With
    /// `-t` the child sends its terminal first: it comes back as `Some(master)`.
    pub fn wait_for_exec(&self) -> Result<Option<OwnedFd>> {
        let mut terminal = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, fd) = self.receive(&mut buf)?;
            match (&buf[..n], fd) {
                ([], _) => return Ok(terminal),
                (TERMINAL, Some(fd)) => terminal = Some(fd),
                (text, _) => return Err(failure(text).into()),
            }
        }
    }

    /// One message, and the fd it carries if any.
    fn receive(&self, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
        crate::pass_fd::receive(&self.0, buf, MsgFlags::MSG_CMSG_CLOEXEC)
            .context("reading the child's report")
    }
}

/// The child's report `CODE:MESSAGE` as a failure.
fn failure(text: &[u8]) -> Failure {
    let text = String::from_utf8_lossy(text);
    let (code, message) = text.split_once(':').unwrap_or(("125", &text));
    Failure {
        code: code.parse().unwrap_or(crate::exit::RUNTIME_FAILED),
        message: message.to_owned(),
    }
}

impl ChildEnd {
    /// Tells the parent that the namespaces the child unshares exist.
    pub fn send_unshared(&self) -> Result<()> {
        socket::send(self.0.as_raw_fd(), UNSHARED, MsgFlags::MSG_NOSIGNAL)
            .context("telling the parent that the namespaces are made")?;
        Ok(())
    }

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

    /// Passes the terminal's master side to the parent.
    pub fn send_terminal(&self, master: &OwnedFd) -> Result<()> {
        crate::pass_fd::send(&self.0, TERMINAL, master, MsgFlags::MSG_NOSIGNAL)
            .context("passing the terminal to the parent (SCM_RIGHTS)")?;
        Ok(())
    }

    /// Closes this end in a process that must not keep it: the init of `--init`, so
    /// that only the command's `execve` decides when the parent reads end-of-file.
    pub fn close(&self) {
        // SAFETY: as for ParentEnd::close_in_child; the fd is not used again here.
        unsafe { libc::close(self.0.as_raw_fd()) };
    }

    /// Sends the reason the child could not exec, with the exit code it stands for.
    pub fn report(&self, code: i32, message: &str) {
        let text = format!("{code}:{message}");
        // Nothing more can be done if the parent is gone: the child exits either way.
        let _ = socket::send(self.0.as_raw_fd(), text.as_bytes(), MsgFlags::MSG_NOSIGNAL);
    }
}
