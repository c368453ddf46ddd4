//! A container's own directories in the store: its writable layer.
//!
//! ```text
//! <store>/containers/<id>/
//!   upper/    the overlay's upperdir: every file the container changes or makes
//!   work/     the overlay's workdir: its scratch space, on the same filesystem
//!   root/     the root filesystem, when it is a copy or fuse-overlayfs's mount
//! ```
//!
//! The kernel's overlay needs no `root/`: it is mounted over `<id>/` itself, in the
//! child's mount namespace only (see [`crate::overlay`]).

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::store::Store;

/// A container's directory.
#[derive(Debug)]
pub struct Container {
    dir: PathBuf,
}

impl Container {
    /// The directory of the container `id` in `store`, not made yet: see [`Self::make`].
    /// Only `containers/` is made now, once per store.
    pub fn new(store: &Store, id: &str) -> Result<Self> {
        let containers = store.root().join("containers");
        DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&containers)
            .with_context(|| format!("creating {}", containers.display()))?;
        Ok(Self {
            dir: Self::path_in(store.root(), id),
        })
    }

    /// Makes the directory, with `upper/` and `work/`. The id is new, so the directory
    /// must be too: a container never starts from another's writable layer.
    pub fn make(&self) -> Result<()> {
        DirBuilder::new()
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        // The upper directory's owner and mode are those of the container's `/`.
        for (path, mode) in [(self.upper(), 0o755), (self.work(), 0o700)] {
            DirBuilder::new()
                .mode(mode)
                .create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        Ok(())
    }

    /// Makes `root/`, for a root that is a copy or fuse-overlayfs's mount: in the
    /// parent when the driver is known to need it, in the child when the kernel's
    /// overlay failed and `auto` falls back to a copy.
    pub fn make_root(&self) -> Result<PathBuf> {
        let root = self.root();
        match DirBuilder::new().mode(0o755).create(&root) {
            Ok(()) => Ok(root),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(root),
            Err(err) => Err(err).with_context(|| format!("creating {}", root.display())),
        }
    }

    /// Where the directory of the container `id` is, in the store at `root`.
    pub fn path_in(root: &Path, id: &str) -> PathBuf {
        root.join("containers").join(id)
    }

    /// The container directory at `dir`, made earlier (to remove it).
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The overlay's upperdir.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The overlay's workdir.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Where a copy of the image goes, or fuse-overlayfs mounts (see [`Self::make_root`]).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Removes the whole directory. Overlay leaves `work/work` (and, `volatile`,
    /// `work/incompat/volatile`) with mode 000: as their
    /// owner we may open it up first. Rootless, what container root made as another
    /// user belongs to subordinate ids: if that is in the way, call it again as the
    /// containers' root ([`crate::userns`]). A directory that was never made (the run
    /// failed first) is no error.
    pub fn remove(&self) -> Result<()> {
        open_up(&self.work());
        match fs::remove_dir_all(&self.dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", self.dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Gives the directories below `dir` that we own mode 0700, so that they can be
/// listed and emptied (overlay makes its own with mode 000).
pub(crate) fn open_up(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
            open_up(&entry.path());
        }
    }
}
