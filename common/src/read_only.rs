//! `mount_setattr(2)` with `MOUNT_ATTR_RDONLY`: a mount made read-only, and nothing
//! else about it changed (a remount, `MS_REMOUNT|MS_BIND|MS_RDONLY`, sets every flag
//! anew, and is refused in a user namespace when it would drop a locked one).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// Makes the mount at `path` (relative to `dir`, the cwd if `None`; `c""` with
/// `AT_EMPTY_PATH` in `flags` for `dir` itself) read-only. Linux 5.12 or later.
pub fn make_read_only(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: libc::c_int,
) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let dir = dir.map_or(libc::AT_FDCWD, |dir| dir.as_raw_fd());
    // SAFETY: an fd we hold (or AT_FDCWD), a C string and a mount_attr of the size we
    // pass, all alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir,
            path.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(rc).map(drop)
}
