//! The directories a layer's tar implies, given their metadata last.
//!
//! A tar may hold `usr/bin/x` without an entry for `usr/bin`: the directory must be
//! made, and in an overlay lowerdir it hides the one the layers below show there. So
//! it copies that one's owner and mode (a `/tmp` of mode 1777 must not become 0755),
//! and if the layers below show a symlink there, the layer is refused: its entry was
//! meant to go through the link (see [`super::lower`]).
//!
//! Only this step reads the layers below, so it comes last, once they are whole:
//! until then an implied directory is an empty-handed `0700` of root's. This is what
//! lets a pull unpack all of an image's layers at once, each as it downloads: each
//! waits for the ones below only to settle.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Result, bail};
use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use stage02_mountns::at::At;

use super::lower::{self, Below};
use super::meta::{self, Meta};
use super::{Applied, Options, beneath};
use crate::digest::Digest;

/// A layer applied but for its implied directories' metadata: call
/// [`Unpacked::settle`] once the layers below it are whole.
#[derive(Debug)]
pub struct Unpacked {
    /// The layer's directory.
    pub(super) root: OwnedFd,
    /// The directories made for entries and never listed, parents first, each with
    /// the first entry that needed it.
    pub(super) implied: BTreeMap<PathBuf, String>,
    pub(super) options: Options,
    pub(super) applied: Applied,
}

impl Unpacked {
    /// The digest of the tar that was unpacked: the layer's `diff_id`.
    pub fn diff_id(&self) -> &Digest {
        &self.applied.diff_id
    }

    /// Gives each implied directory the owner and mode of the directory that
    /// `lowers` (bottom first, only read) show at its path, or `0:0 0755` if they
    /// show none; refuses the layer if they show a symlink on the way.
    pub fn settle(mut self, lowers: &[At]) -> Result<Applied> {
        for (path, shown) in &self.implied {
            let parts: Vec<OsString> = path.iter().map(|p| p.to_owned()).collect();
            let dir = match beneath::open_dir(self.root.as_fd(), &parts) {
                Ok(dir) => dir,
                // Replaced by a later entry, or under one that was.
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(errno) => bail!("opening {}: {}", path.display(), beneath::why(errno)),
            };
            let (uid, gid, mode) = match lower::below(lowers, &parts, self.options.opaque_xattr())?
            {
                Below::Dir(stat) => (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777),
                Below::Nothing | Below::Other => (0, 0, 0o755),
                Below::Symlink(n) => bail!(
                    "the entry {shown} goes through {}, a symlink in a layer below: a \
                     layer may not write through a symlink",
                    parts[..n].iter().collect::<PathBuf>().display()
                ),
            };
            let implied = Meta {
                uid,
                gid,
                mode,
                mtime: TimeSpec::new(0, 0),
                xattrs: Vec::new(),
            };
            meta::apply_fd(
                dir.as_fd(),
                &implied,
                shown,
                self.options.rootless,
                &mut self.applied.warnings,
            )?;
        }
        Ok(self.applied)
    }
}
