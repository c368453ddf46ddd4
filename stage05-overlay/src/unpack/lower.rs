//! Looking at a path through the layers below, as overlayfs will merge them.
//!
//! A layer unpacked for overlay holds only its own entries. When an entry's directory
//! is not in the layer's tar (builders list parent directories, but nothing forces
//! them to), the layer must make it, and what it makes hides the layers' below in the
//! merged tree: so it copies the directory that the layers below show there (a
//! `/tmp` of mode 1777 must not become 0755), and refuses when what they show there is
//! a symlink, since the entry was meant to go through it.
//!
//! The merge rule, from the top layer down: the first layer that has the path decides;
//! a whiteout (a 0:0 character device) there means nothing is there; an opaque
//! directory hides what the layers below it have inside it.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::Result;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, SFlag, fstatat};
use stage02_mountns::at::At;

use super::beneath;
use super::xattr;

/// What the layers below show at a path.
#[derive(Debug)]
pub(crate) enum Below {
    /// Nothing (or a whiteout).
    Nothing,
    /// A directory, with its metadata.
    Dir(FileStat),
    /// A symlink, at the first `n` components of the path.
    Symlink(usize),
    /// Something else: a file, where a directory is wanted.
    Other,
}

/// What `lowers` (bottom first, as an image lists its layers) show at `parts`.
/// `opaque` is the xattr that marks an opaque directory.
pub(crate) fn below(lowers: &[At], parts: &[OsString], opaque: &str) -> Result<Below> {
    'layers: for lower in lowers.iter().rev() {
        let mut dir: OwnedFd = beneath::open(lower.as_fd(), Path::new("."), OFlag::O_RDONLY)?;
        for (i, part) in parts.iter().enumerate() {
            let stat = match fstatat(&dir, part.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(Errno::ENOENT) => {
                    // Not in this layer: the layers below decide, unless this
                    // directory hides them.
                    if i > 0 && xattr::get(dir.as_fd(), opaque)?.as_deref() == Some(b"y") {
                        return Ok(Below::Nothing);
                    }
                    continue 'layers;
                }
                Err(errno) => return Err(errno.into()),
            };
            let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
            let last = i + 1 == parts.len();
            match kind {
                SFlag::S_IFCHR if stat.st_rdev == 0 => return Ok(Below::Nothing),
                SFlag::S_IFLNK => return Ok(Below::Symlink(i + 1)),
                SFlag::S_IFDIR if last => return Ok(Below::Dir(stat)),
                SFlag::S_IFDIR => {
                    dir = beneath::open(
                        dir.as_fd(),
                        Path::new(part),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                    )?;
                }
                _ => return Ok(Below::Other),
            }
        }
        // The path is the layer's root.
        return Ok(Below::Nothing);
    }
    Ok(Below::Nothing)
}
