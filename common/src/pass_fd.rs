//! Passing an open file to another process over a unix socket (`SCM_RIGHTS`): the
//! kernel installs a copy of the sender's fd in the receiver's table. The parent gets
//! the container's terminal this way, the runtime a view of its own binary, stage 4 a
//! socket connected inside the container, stage 5's fuse daemon `/dev/fuse`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends `bytes` with `fd` attached.
pub fn send(socket: impl AsFd, bytes: &[u8], fd: impl AsFd, flags: MsgFlags) -> nix::Result<usize> {
    let fds = [fd.as_fd().as_raw_fd()];
    socket::sendmsg::<()>(
        socket.as_fd().as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(&fds)],
        flags,
        None,
    )
}

/// One message into `buf`: its length, and the fd it carries if any (a second fd,
/// which no sender here attaches, is closed). `flags`: `MSG_CMSG_CLOEXEC` unless the
/// fd is to survive an `execve`.
pub fn receive(
    socket: impl AsFd,
    buf: &mut [u8],
    flags: MsgFlags,
) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let message = match socket::recvmsg::<()>(
            socket.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            flags,
        ) {
            Err(nix::Error::EINTR) => continue,
            other => other?,
        };
        let mut fd = None;
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // SAFETY: the kernel just installed this fd in our table, for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
        return Ok((message.bytes, fd));
    }
}
