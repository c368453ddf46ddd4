//! The image store: every blob under the name of its digest, every layer unpacked once.
//!
//! ```text
//! <root>/                     /var/lib/keel for root, ~/.local/share/keel for a user
//!   oci-layout                the root is an OCI image layout: skopeo and umoci read it
//!   index.json                the images: one descriptor per name, annotated with the
//!                             canonical reference (org.opencontainers.image.ref.name)
//!   blobs/sha256/<hex>        manifests, configs, compressed layers; verified, read-only
//!   layers/<diff_id hex>/     a layer unpacked, shared by every image that has it:
//!     diff/                     the tree, an overlay lowerdir
//!     complete                  written last: the layer is whole
//!   in-use/<pid>-<start>-<n>  leases: what a live process uses or is about to write
//!   locks/                    flock(2) files, one per layer being unpacked
//!   tmp/<pid>-<start>-<n>     what is being written; renamed into place when whole
//!   lock                      the store's flock: index.json, leases, gc
//! ```
//!
//! **Crashes.** keel has no daemon, and a process may die by SIGKILL at any instant.
//! So nothing is ever written in place: a file or a layer is made whole in `tmp/`
//! (same filesystem), flushed to disk, and renamed to its name, then the directory is
//! flushed too. A rename is atomic, so a name in the store always holds something
//! complete; what a dead process left in `tmp/` is named after it, and is swept by the
//! next process that opens the store.
//!
//! **Concurrency.** Several processes may pull, run and remove the same image at once.
//! Two writers of one blob write the same bytes, so both may rename (the last wins, and
//! nothing changes). Unpacking a layer takes time, so one process does it while the
//! others wait on that layer's lock, and then find it done. Changes to `index.json` and
//! to the leases, and the garbage collection, happen under the store's lock.
//!
//! **What may be removed.** An image is removed by untagging it; [`Store::gc`] then
//! drops every blob and layer that no tagged image reaches and no live lease holds. A
//! pull leases what it is about to write before writing it, and a running container
//! leases its layers, so the collector never takes them away from under either.

mod blobs;
mod gc;
mod index;
mod layers;
mod lease;
mod lock;
mod staging;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::state::Owner;

pub use blobs::BlobWriter;
pub use gc::Collected;
pub use index::Image;
pub use layers::NewLayer;
pub use lease::Lease;
pub(crate) use staging::Staged;

/// The image store under one root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// This process, whose name is on what it writes in `tmp/` and its leases.
    owner: Owner,
}

impl Store {
    /// The store of whoever runs keel: `$KEEL_STORE` if set (podman's `--root`: a
    /// store of its own, for an experiment or a test); else `/var/lib/keel` for root;
    /// for a user `$XDG_DATA_HOME/keel`, by default `~/.local/share/keel`.
    pub fn default_root() -> Result<PathBuf> {
        if let Some(store) = std::env::var_os("KEEL_STORE").filter(|d| !d.is_empty()) {
            if !Path::new(&store).is_absolute() {
                bail!(
                    "KEEL_STORE={}: give an absolute path",
                    Path::new(&store).display()
                );
            }
            return Ok(PathBuf::from(store));
        }
        if nix::unistd::geteuid().is_root() {
            return Ok(PathBuf::from("/var/lib/keel"));
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| Path::new(d).is_absolute())
        {
            return Ok(PathBuf::from(data).join("keel"));
        }
        match std::env::var_os("HOME").filter(|d| Path::new(d).is_absolute()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/share/keel")),
            None => bail!(
                "neither XDG_DATA_HOME nor HOME is set to an absolute path: keel cannot tell \
                 where to keep your images; set one of them"
            ),
        }
    }

    /// Opens the store at `root`, making what is missing of it, and sweeps away what
    /// processes that died left half-written.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        // ~/.local/share may not exist yet on a fresh account (mode 0700, as the XDG
        // base directory specification asks of it).
        if let Some(parent) = root.parent()
            && !parent.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // Others may pass through the root and layers/ (mode 0711) but not list them:
        // an overlay lowerdir must be reachable by a container's user, whichever it is.
        make_dir(&root, 0o711)?;
        for (dir, mode) in [
            ("blobs", 0o700),
            ("blobs/sha256", 0o700),
            ("layers", 0o711),
            ("in-use", 0o700),
            ("locks", 0o700),
            ("tmp", 0o700),
        ] {
            make_dir(&root.join(dir), mode)?;
        }
        let store = Self {
            root,
            owner: Owner::current()?,
        };
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        store.sweep();
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `mkdir` that accepts an existing directory.
fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(err) => Err(err).with_context(|| format!("creating the directory {}", dir.display())),
    }
}

#[cfg(test)]
mod tests;
