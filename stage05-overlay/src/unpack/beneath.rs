//! Opening, creating and removing below the layer's directory, relative to fds.
//!
//! A path in a layer is resolved by the kernel with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`: it
//! may not leave the directory, follow any symlink, or cross a mount. The entry itself
//! is then made by an `*at()` call on its parent's fd with a single name, and never
//! followed if it is a symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`).
//!
//! Why no symlink at all, rather than `RESOLVE_IN_ROOT` (follow links, but as if the
//! layer were `/`)? Both keep every write inside the layer. But a symlink along an
//! entry's path means "write wherever the link leads", and where it leads is only
//! known in the image's merged tree: in an overlay lowerdir, a link's target may be in
//! another layer, absent here. Followed here, the file would land somewhere the image
//! does not mean. Builders never write such entries (a tar of a filesystem names each
//! file by its real path), so one is an error, named as such.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::unistd::{UnlinkatFlags, unlinkat};
use stage02_mountns::at::openat2;

/// The resolution every path of a layer gets.
pub(crate) fn resolve() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

/// Opens `path` below `dir` with `flags` (and `O_CLOEXEC`).
pub(crate) fn open(dir: BorrowedFd<'_>, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve());
    openat2(dir, path, how)
}

/// Opens the directory `parts` below `dir`, for reading and for `*at()` calls.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, parts: &[OsString]) -> nix::Result<OwnedFd> {
    let path: PathBuf = parts.iter().collect();
    open(dir, &path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

/// The names in the directory `dir` (without `.` and `..`).
pub(crate) fn children(dir: BorrowedFd<'_>) -> nix::Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    // A new open file description, so that reading it moves no one else's offset.
    let listing = Dir::from_fd(open(
        dir,
        Path::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    )?)?;
    let mut names = Vec::new();
    for entry in listing {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_owned());
        }
    }
    Ok(names)
}

/// Removes `name` from `parent`, a whole tree if it is a directory; never follows a
/// symlink (a symlink is removed, not what it points to) and never crosses a mount.
pub(crate) fn remove(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {
            let dir = open(
                parent,
                Path::new(name),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )?;
            for child in children(dir.as_fd())? {
                remove(dir.as_fd(), &child)?;
            }
            unlinkat(parent, name, UnlinkatFlags::RemoveDir)
        }
        result => result,
    }
}

/// `remove`, where nothing there is no error.
pub(crate) fn remove_if_present(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match remove(parent, name) {
        Err(Errno::ENOENT) => Ok(()),
        result => result,
    }
}

/// What an errno of path resolution means in a layer.
pub(crate) fn why(errno: Errno) -> String {
    match errno {
        Errno::ELOOP => "the path goes through a symlink, and a layer may not write through \
                         one (keel never follows a symlink while unpacking)"
            .to_owned(),
        Errno::EXDEV => "the path crosses a mount point".to_owned(),
        Errno::ENOTDIR => "a part of the path is not a directory".to_owned(),
        errno => errno.desc().to_owned(),
    }
}
