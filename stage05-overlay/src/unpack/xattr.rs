//! Extended attributes: which of an image's are kept, and the system calls.
//!
//! A layer carries xattrs in PAX headers (`SCHILY.xattr.NAME=value`). Some are part of
//! what a file *is*: `security.capability` (file capabilities: `ping` may have
//! `cap_net_raw` instead of setuid root), POSIX ACLs, and `user.*`. Others must never
//! come from an image: `trusted.overlay.*` and `user.overlay.*` are overlayfs's own
//! metadata (opaque directories, redirects, metacopy), and an image that sets them
//! would change what the merged tree shows in ways the layers' contents do not say.
//! `trusted.*` needs real root, so a rootless unpack skips it. Labels of the machine
//! that built the image (`security.selinux`, `security.ima`) mean nothing here.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::Result;
use nix::errno::Errno;

/// What to do with an xattr of the image.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    Skip(&'static str),
}

// ANCHOR: judge
/// Whether the xattr `name` of an image is kept.
pub(crate) fn judge(name: &str, rootless: bool) -> Verdict {
    if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
        Verdict::Skip("overlayfs's own metadata may not come from an image")
    } else if name == "security.capability"
        || name == "system.posix_acl_access"
        || name == "system.posix_acl_default"
        || name.starts_with("user.")
    {
        Verdict::Keep
    } else if name.starts_with("trusted.") {
        if rootless {
            Verdict::Skip("trusted.* needs real root")
        } else {
            Verdict::Keep
        }
    } else {
        Verdict::Skip(
            "not an attribute keel keeps (labels of the building machine mean nothing here)",
        )
    }
}
// ANCHOR_END: judge

/// `fsetxattr(2)`.
pub(crate) fn set(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> nix::Result<()> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a valid fd, a NUL-terminated name, and a buffer with its length.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// `fgetxattr(2)`: the value, or `None` if the file has no such attribute.
pub(crate) fn get(fd: BorrowedFd<'_>, name: &str) -> Result<Option<Vec<u8>>> {
    let name = CString::new(name)?;
    let mut buf = vec![0u8; 256];
    // SAFETY: a valid fd, a NUL-terminated name, and a buffer with its length.
    let rc = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match Errno::result(rc) {
        Ok(n) => {
            buf.truncate(n as usize);
            Ok(Some(buf))
        }
        Err(Errno::ENODATA | Errno::EOPNOTSUPP) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy() {
        assert_eq!(judge("security.capability", true), Verdict::Keep);
        assert_eq!(judge("user.mime_type", true), Verdict::Keep);
        assert_eq!(judge("system.posix_acl_access", false), Verdict::Keep);
        assert_eq!(judge("trusted.foo", false), Verdict::Keep);
        assert!(matches!(judge("trusted.foo", true), Verdict::Skip(_)));
        assert!(matches!(
            judge("trusted.overlay.opaque", false),
            Verdict::Skip(_)
        ));
        assert!(matches!(
            judge("user.overlay.redirect", true),
            Verdict::Skip(_)
        ));
        assert!(matches!(judge("security.selinux", false), Verdict::Skip(_)));
    }
}
