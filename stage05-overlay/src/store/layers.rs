//! Layers unpacked: `layers/<diff_id hex>/diff`, one tree per layer, whichever image
//! it came with.
//!
//! A layer is named by its `diff_id`, the digest of its *uncompressed* tar: the same
//! layer compressed two ways (two blobs) is one tree. It is unpacked in `tmp/`, and
//! only once whole, checked against its name and flushed does it get the `complete`
//! marker and move into `layers/`. A directory there without the marker is none of
//! ours whole (an interrupted copy of a store, a hand-made one): it is set aside and
//! the layer unpacked again.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use stage02_mountns::at::At;

use super::Store;
use super::lock::Lock;
use super::staging::{Staged, sync_parent};
use crate::digest::Digest;

/// The marker file of a whole layer.
const COMPLETE: &str = "complete";

impl Store {
    /// The tree of the layer `diff_id`: an overlay lowerdir.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("diff")
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// The lock file of the layer `diff_id`.
    pub(crate) fn layer_lock(&self, diff_id: &Digest) -> Result<Lock> {
        Lock::exclusive(&self.layer_lock_path(diff_id))
    }

    /// The lock of the layer `diff_id` if nobody holds it.
    pub(crate) fn try_layer_lock(&self, diff_id: &Digest) -> Result<Option<Lock>> {
        Lock::try_exclusive(&self.layer_lock_path(diff_id))
    }

    fn layer_lock_path(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("layer-{}", diff_id.hex()))
    }

    /// Whether the layer `diff_id` is unpacked, whole.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join(COMPLETE).is_file()
    }

    /// Every layer directory's `diff_id`, whole or not.
    pub(crate) fn layers(&self) -> Result<Vec<Digest>> {
        super::blobs::hex_names(&self.root.join("layers"))
    }

    // ANCHOR: ensure_layer
    /// The layer `diff_id`, unpacked by `unpack` if the store does not have it yet.
    ///
    /// `unpack` is given an empty directory and returns the digest of the tar it
    /// unpacked there; the layer is kept only if that is `diff_id`. While it runs, other
    /// processes that want the same layer wait, then find it done.
    pub fn ensure_layer(
        &self,
        diff_id: &Digest,
        unpack: impl FnOnce(&At) -> Result<Digest>,
    ) -> Result<PathBuf> {
        let _lock = self.layer_lock(diff_id)?;
        if self.has_layer(diff_id) {
            return Ok(self.layer_path(diff_id));
        }
        let new = self.new_layer()?;
        let got = unpack(&new.tree).with_context(|| format!("unpacking the layer {diff_id}"))?;
        new.seal(diff_id, &got)?;
        self.put_layer(new, diff_id)
    }
    // ANCHOR_END: ensure_layer

    /// An empty tree in `tmp/` to unpack a layer into without holding its lock, for
    /// [`Store::commit_layer`]: a pull unpacks all its layers at once this way.
    pub fn new_layer(&self) -> Result<NewLayer> {
        let staged = self.staged();
        let diff = staged.path().join("diff");
        fs::create_dir(staged.path())
            .and_then(|()| fs::create_dir(&diff))
            .with_context(|| format!("creating {}", diff.display()))?;
        let tree = At::open_dir(&diff)?;
        Ok(NewLayer { staged, tree })
    }

    /// Puts `new`, whose tar was `got`, in place as the layer `diff_id`, unless another
    /// process did first (then `new` is dropped: two unpackings of one tar are the
    /// same tree, as two writers of a blob write the same bytes). Only the rename is
    /// done under the layer's lock.
    pub fn commit_layer(&self, new: NewLayer, diff_id: &Digest, got: &Digest) -> Result<PathBuf> {
        new.seal(diff_id, got)?;
        let _lock = self.layer_lock(diff_id)?;
        if self.has_layer(diff_id) {
            return Ok(self.layer_path(diff_id));
        }
        self.put_layer(new, diff_id)
    }

    /// Renames the sealed `new` to the layer `diff_id`, whose lock the caller holds.
    fn put_layer(&self, new: NewLayer, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.layer_dir(diff_id);
        if dir.exists() {
            // Incomplete: moved out of the way into tmp/, where the sweep removes it.
            let aside = self.staged();
            fs::rename(&dir, aside.path())
                .with_context(|| format!("moving the incomplete layer {} aside", dir.display()))?;
            drop(aside);
        }
        new.staged.put(&dir)?;
        Ok(self.layer_path(diff_id))
    }
}

/// A layer unpacked in `tmp/`, not yet in the store (see [`Store::new_layer`]); dropped,
/// it is removed.
#[derive(Debug)]
pub struct NewLayer {
    staged: Staged,
    tree: At,
}

impl NewLayer {
    /// The directory to unpack into: the layer's `diff`.
    pub fn tree(&self) -> &At {
        &self.tree
    }

    /// Refuses the tree unless its tar `got` is `diff_id`; else flushes it, then marks it
    /// `complete`, so that all that is left is the rename.
    fn seal(&self, diff_id: &Digest, got: &Digest) -> Result<()> {
        if got != diff_id {
            bail!(
                "the layer unpacked as {diff_id} is {got}: the image's config does not \
                 describe its layers (corrupt or tampered with); nothing was kept"
            );
        }
        // Everything the unpacking wrote reaches the disk before the layer is whole.
        let diff = self.staged.path().join("diff");
        fs::File::open(&diff)
            .map_err(anyhow::Error::from)
            .and_then(|dir| Ok(nix::unistd::syncfs(&dir)?))
            .with_context(|| format!("syncfs of {}", diff.display()))?;
        let marker = self.staged.path().join(COMPLETE);
        fs::write(&marker, format!("{diff_id}\n"))
            .and_then(|()| fs::File::open(&marker)?.sync_all())
            .with_context(|| format!("writing {}", marker.display()))?;
        sync_parent(&marker)
    }
}
