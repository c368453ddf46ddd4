//! `keel-probe setgroups | init-module | settime | mount SRC DST FSTYPE`: try one
//! privileged system call and report how the kernel answered.
//!
//! These are the calls that tell a real root from a root inside a user namespace. The
//! container's root has every capability *in its own user namespace*, so a call the
//! kernel checks against that namespace works, and a call it checks against the
//! host's (the initial user namespace) fails with `EPERM`:
//!
//! | call | checked against | in a user namespace |
//! |---|---|---|
//! | `setgroups([])` | the namespace, but only if `/proc/self/setgroups` says `allow` | `EPERM` after `deny` |
//! | `init_module` | the host: CAP_SYS_MODULE | `EPERM` |
//! | `settimeofday` | the host: CAP_SYS_TIME | `EPERM` |
//! | `mount` of a block device | the host, for filesystems not marked `FS_USERNS_MOUNT` (ext4) | `EPERM` |
//!
//! Each call is made so that it changes nothing even where it is allowed: an empty
//! group list for a process that is about to exit, an empty module image (rejected
//! after the permission check), `settimeofday(NULL, NULL)` (a permission check and
//! nothing else), a read-only mount that disappears with the container's mount
//! namespace.

use std::ffi::CString;

use serde_json::{Value, json};

/// `setgroups(0, NULL)`: drop every supplementary group.
pub fn setgroups() -> Value {
    // SAFETY: an empty list; the pointer is not read.
    let result = unsafe { libc::setgroups(0, std::ptr::null()) };
    report("setgroups([])", result as libc::c_long)
}

/// `init_module(image, 0, "")`: load a kernel module (an empty image: never a module).
pub fn init_module() -> Value {
    let image = [0u8; 1];
    // SAFETY: a valid buffer (of which 0 bytes are claimed) and a NUL-terminated string.
    let result =
        unsafe { libc::syscall(libc::SYS_init_module, image.as_ptr(), 0usize, c"".as_ptr()) };
    report("init_module(\"\", 0, \"\")", result)
}

/// `settimeofday(NULL, NULL)`: the kernel checks CAP_SYS_TIME first, then has nothing
/// to set. (glibc's wrapper would dereference the NULL time: the raw call is made.)
pub fn settime() -> Value {
    // SAFETY: both arguments may be NULL.
    let result = unsafe {
        libc::syscall(
            libc::SYS_settimeofday,
            std::ptr::null::<libc::timeval>(),
            std::ptr::null::<libc::timezone>(),
        )
    };
    report("settimeofday(NULL, NULL)", result)
}

/// `ptrace(PTRACE_ATTACH, 1)`: take hold of PID 1 (detached again at once if it
/// worked): what a process of the container needs to change keel's init.
pub fn ptrace_init() -> Value {
    // SAFETY: PTRACE_ATTACH takes a pid; the address and data are ignored.
    let result = unsafe { libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0) };
    let answer = report("ptrace(PTRACE_ATTACH, 1)", result);
    if result >= 0 {
        // SAFETY: waits for the stop the attach causes, then lets PID 1 go.
        unsafe {
            libc::waitpid(1, std::ptr::null_mut(), libc::__WALL);
            libc::ptrace(libc::PTRACE_DETACH, 1, 0, 0);
        }
    }
    answer
}

/// `mount(source, target, fstype, MS_RDONLY, NULL)`.
pub fn mount(source: &str, target: &str, fstype: &str) -> Value {
    let call = format!("mount({source:?}, {target:?}, {fstype:?}, MS_RDONLY)");
    let (Ok(c_source), Ok(c_target), Ok(c_fstype)) = (
        CString::new(source),
        CString::new(target),
        CString::new(fstype),
    ) else {
        return json!({ "call": call, "ok": false, "errno": null, "error": "NUL byte in an argument" });
    };
    // SAFETY: three NUL-terminated strings and no data.
    let result = unsafe {
        libc::mount(
            c_source.as_ptr(),
            c_target.as_ptr(),
            c_fstype.as_ptr(),
            libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    report(&call, result as libc::c_long)
}

/// `{"call": ..., "ok": true}` or `{"call": ..., "ok": false, "errno": N, "error": "..."}`.
fn report(call: &str, result: libc::c_long) -> Value {
    if result >= 0 {
        return json!({ "call": call, "ok": true, "errno": null, "error": null });
    }
    let err = std::io::Error::last_os_error();
    json!({
        "call": call,
        "ok": false,
        "errno": err.raw_os_error(),
        "error": err.to_string(),
    })
}
