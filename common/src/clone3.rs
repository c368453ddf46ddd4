//! `clone3(2)` with `CLONE_INTO_CGROUP` (Linux 5.7): the child is born in a cgroup
//! (v2), instead of being moved there by its parent afterwards. Nothing it does, not
//! even its first instruction, is outside the cgroup's limits and accounting.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// `CLONE_INTO_CGROUP` from linux/sched.h: `args.cgroup` holds the fd of a v2 cgroup.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from linux/sched.h, up to its `cgroup` field (version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Like `fork`, with `flags` and into `cgroup`: `Some(pid)` in the parent, `None` in
/// the child, which goes on with a copy of the parent's memory and stack.
///
/// # Safety
/// As `fork`: the caller is single-threaded, and the child leaves only through
/// `execve` or `_exit`.
pub unsafe fn into_cgroup(flags: CloneFlags, cgroup: BorrowedFd<'_>) -> nix::Result<Option<Pid>> {
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: Signal::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: a clone_args of the size we pass, alive for the call; no stack given,
    // so the child runs on a copy of ours, as after fork (the caller's contract).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(ret)? {
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}
