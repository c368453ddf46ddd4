//! Writing without ever leaving half a thing under a name: stage in `tmp/`, flush,
//! rename, flush the directory.
//!
//! `rename(2)` replaces a name in one step, so a reader sees the old content or the
//! new, never a mix. The flushes make that true across a power cut too: `fsync` of the
//! file before the rename (or the new name could point at blocks not yet written), and
//! of the directory after (or the rename itself could be lost).
//!
//! What is staged is named `<pid>-<start time>-<n>` after the process writing it, so
//! that [`Store::sweep`] can tell what a live process is still writing from what a dead
//! one left behind.

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use common::state::Owner;

use super::Store;

/// Tells apart the staged names of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A path in `tmp/`, removed (file or tree) when dropped unless it was put in place.
#[derive(Debug)]
pub(crate) struct Staged {
    path: PathBuf,
    done: bool,
}

impl Staged {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames it to `dest` and flushes `dest`'s directory.
    pub(crate) fn put(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))?;
        self.done = true;
        sync_parent(dest)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: what stays is swept once this process is gone.
            let _ = fs::remove_file(&self.path).or_else(|_| fs::remove_dir_all(&self.path));
        }
    }
}

impl Store {
    /// A name no other staged thing or lease has: `<pid>-<start time>-<n>`.
    pub(crate) fn fresh_name(&self) -> String {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{n}", self.owner.pid, self.owner.start_time)
    }

    /// A fresh name in `tmp/`, nothing created there yet.
    pub(crate) fn staged(&self) -> Staged {
        Staged {
            path: self.root.join("tmp").join(self.fresh_name()),
            done: false,
        }
    }

    /// A new file in `tmp/`, for the caller to fill.
    pub(crate) fn staged_file(&self) -> Result<(Staged, File)> {
        let staged = self.staged();
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(staged.path())
            .with_context(|| format!("creating {}", staged.path().display()))?;
        Ok((staged, file))
    }

    /// Replaces `dest` with `bytes`, atomically.
    pub(crate) fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let (staged, mut file) = self.staged_file()?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", staged.path().display()))?;
        drop(file);
        staged.put(dest)
    }

    /// Replaces `dest` with `bytes` atomically for every reader, but without flushing
    /// anything to disk: for what means nothing after a power cut, such as a lease,
    /// whose owner is dead by then. Two flushes fewer is milliseconds fewer per run.
    pub(crate) fn write_replacing(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let (mut staged, mut file) = self.staged_file()?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", staged.path().display()))?;
        drop(file);
        fs::rename(&staged.path, dest)
            .with_context(|| format!("renaming {} to {}", staged.path.display(), dest.display()))?;
        staged.done = true;
        Ok(())
    }

    /// Removes from `tmp/` what processes that are gone left there. What cannot be
    /// removed stays (a tree with entries owned by ids of a user namespace may need to
    /// be removed from inside it), and is returned.
    pub fn sweep(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return left;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(owner_of) else {
                continue; // not ours: leave it
            };
            if owner.is_alive() {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(kind) if kind.is_dir() => {
                    // An overlay probe's tree holds overlay's `work/work`, mode 000.
                    crate::container::open_up(&path);
                    fs::remove_dir_all(&path)
                }
                _ => fs::remove_file(&path),
            };
            if removed.is_err() {
                left.push(path);
            }
        }
        left
    }
}

/// The process a staged name or a lease's name is named after: `<pid>-<start>-<n>`.
pub(crate) fn owner_of(name: &str) -> Option<Owner> {
    let mut parts = name.splitn(3, '-');
    let owner = Owner::parse(parts.next()?, parts.next()?)?;
    parts.next()?.parse::<u64>().ok()?;
    Some(owner)
}

/// Flushes the directory that holds `path`, so that a rename or removal in it lasts.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Flushes the directory `dir`: its entries, as renamed or removed, last.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("flushing the directory {}", dir.display()))
}
