//! A read-only view of the runtime's binary: the cheap way out of the container's
//! reach (CVE-2019-5736, see [`crate::sealed`]).
//!
//! A write through `/proc/self/exe` opens the file through the mount the process was
//! started from. If that mount is read-only, the write fails with EROFS, whoever tries
//! it and whatever the file's owner and mode. So instead of copying its binary (6 MB
//! for the last stage: about 3 ms), the runtime can re-execute from a read-only bind
//! mount of that one file:
//!
//! 1. A helper process makes a user namespace and a mount namespace of its own: there
//!    an ordinary user may mount, and no other process sees what it mounts.
//! 2. It clones a bind mount of the binary (`open_tree(OPEN_TREE_CLONE)`). The clone
//!    is detached: it is in no namespace's tree, and only its fd leads to it.
//! 3. It makes the clone read-only (`mount_setattr(MOUNT_ATTR_RDONLY)`), passes the fd
//!    back (`SCM_RIGHTS`) and exits. A mount lives as long as something holds it: the
//!    fd, then the runtime's `/proc/self/exe`.
//! 4. The runtime re-executes through the fd (`execveat`).
//!
//! Nobody in a container can make that mount writable again: changing a mount needs
//! CAP_SYS_ADMIN in the user namespace that owns it, the helper's, and a container's
//! root has no capability there (its own user namespace is a sibling, not a parent).
//! Nor can it bind the file elsewhere: a detached mount may only be cloned from the
//! mount namespace it was made in.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::stat::fstat;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

// ANCHOR: view
/// A read-only view of `exe` (the runtime's `/proc/self/exe`): an `O_PATH` fd of the
/// same file on a detached, read-only bind mount.
pub fn of(exe: &File) -> Result<OwnedFd> {
    let path = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let path = CString::new(path.into_os_string().into_vec())
        .context("the runtime's path holds a NUL byte")?;
    let (ours, helpers) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the view's helper")?;
    // SAFETY: called before the runtime starts any thread; the child only makes system
    // calls and exits.
    let helper = match unsafe { fork() }.context("fork of the view's helper")? {
        ForkResult::Child => {
            drop(ours);
            let code = match helper(&path, &helpers) {
                Ok(()) => 0,
                Err(errno) => errno as i32,
            };
            // SAFETY: _exit ends the helper without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(helpers);
    let view = receive(&ours);
    match waitpid(helper, None).context("waiting for the view's helper")? {
        WaitStatus::Exited(_, 0) => {}
        WaitStatus::Exited(_, errno) => {
            return Err(Errno::from_raw(errno)).context(
                "the helper could not make a read-only bind mount of the runtime \
                 (unshare, open_tree or mount_setattr)",
            );
        }
        other => bail!("the view's helper ended: {other:?}"),
    }
    let view = view?;
    // The helper looked the path up again: it must still lead to the running binary
    // (a new build may have replaced the file since).
    let (old, new) = (exe.metadata()?, fstat(&view)?);
    if (old.dev(), old.ino()) != (new.st_dev, new.st_ino) {
        bail!("{path:?} is no longer the running binary (replaced since it started)");
    }
    Ok(view)
}

/// In the helper: namespaces of its own, the detached read-only bind mount, and its fd
/// sent back.
fn helper(path: &CString, to_parent: &OwnedFd) -> Result<(), Errno> {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: AT_FDCWD and a C string alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let tree = Errno::result(rc)?;
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    crate::read_only::make_read_only(Some(tree.as_fd()), c"", libc::AT_EMPTY_PATH)?;
    crate::pass_fd::send(to_parent, b"view", &tree, MsgFlags::empty())?;
    Ok(())
}
// ANCHOR_END: view

/// The fd the helper sent.
fn receive(from_helper: &OwnedFd) -> Result<OwnedFd> {
    let (_, fd) = crate::pass_fd::receive(from_helper, &mut [0u8; 8], MsgFlags::MSG_CMSG_CLOEXEC)
        .context("receiving the view from its helper")?;
    fd.context("the view's helper sent no fd")
}
