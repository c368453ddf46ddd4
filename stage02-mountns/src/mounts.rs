//! Small, explained wrappers around mount(2): every other module speaks through these,
//! so `--explain` shows each mount exactly once, with its reason.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};
use common::explain;
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

/// Mounts a new instance of `fstype` (proc, tmpfs, sysfs, devpts, mqueue) at `target`.
pub fn mount_fs(
    fstype: &str,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
    why: &str,
) -> Result<()> {
    mount(Some(fstype), target, Some(fstype), flags, data).with_context(|| {
        format!(
            "mount({fstype:?}, {:?}, {fstype:?}, {})",
            shown(target),
            explain::flags(&flags)
        )
    })?;
    explain::step(
        format_args!(
            "mount({fstype:?}, {:?}, {fstype:?}, {}, {:?})",
            Shown(target),
            explain::flags(&flags),
            data.unwrap_or("")
        ),
        why,
    );
    Ok(())
}

/// Makes `source` visible at `target` too (a bind mount); `recursive` takes the
/// mounts below `source` along, as `mount --rbind` does.
pub fn bind(source: &Path, target: &Path, recursive: bool, why: &str) -> Result<()> {
    let flags = if recursive {
        MsFlags::MS_BIND | MsFlags::MS_REC
    } else {
        MsFlags::MS_BIND
    };
    mount(Some(source), target, None::<&str>, flags, None::<&str>).with_context(|| {
        format!(
            "bind-mounting {:?} on {:?} ({})",
            shown(source),
            shown(target),
            explain::flags(&flags)
        )
    })?;
    explain::step(
        format_args!(
            "mount({:?}, {:?}, NULL, {})",
            Shown(source),
            Shown(target),
            explain::flags(&flags)
        ),
        why,
    );
    Ok(())
}

// ANCHOR: make_readonly
/// Makes the mount at `target`, and every mount below it, read-only.
///
/// The classic way, `mount(MS_REMOUNT|MS_BIND|MS_RDONLY)`, changes one mount only: a
/// read-only `-v /dev:/d:ro` would leave `/d/shm` writable. It also replaces every flag
/// of the mount, so inside a user namespace it must repeat the flags a more privileged
/// namespace locked (nosuid, nodev, ...). `mount_setattr(2)` (Linux 5.12) does neither:
/// it only *adds* `MOUNT_ATTR_RDONLY`, and with `AT_RECURSIVE` to the whole tree.
pub fn make_readonly(target: &Path, why: &str) -> Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: a valid C string and a mount_attr of the size we pass, both alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(rc).with_context(|| {
        format!(
            "making {} read-only (mount_setattr, Linux 5.12+)",
            shown(target)
        )
    })?;
    explain::step(
        format_args!(
            "mount_setattr({:?}, AT_RECURSIVE, {{attr_set: MOUNT_ATTR_RDONLY}})",
            Shown(target)
        ),
        why,
    );
    Ok(())
}
// ANCHOR_END: make_readonly

/// A path for people: `/proc/self/fd/7/proc` is shown as where fd 7 points, plus the
/// rest (`/home/me/rootfs/proc`).
pub fn shown(path: &Path) -> String {
    let Ok(rest) = path.strip_prefix("/proc/self/fd") else {
        return path.display().to_string();
    };
    let mut parts = rest.components();
    let Some(fd) = parts.next() else {
        return path.display().to_string();
    };
    match std::fs::read_link(Path::new("/proc/self/fd").join(fd)) {
        Ok(target) if parts.as_path().as_os_str().is_empty() => target.display().to_string(),
        Ok(target) => target.join(parts.as_path()).display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// [`shown`], computed only when printed: `--explain` is usually off.
struct Shown<'a>(&'a Path);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", shown(self.0))
    }
}
