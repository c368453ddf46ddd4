//! The collector: drops what nothing reaches any more.
//!
//! What is kept: every image `index.json` names, followed down (an index to its
//! manifests, a manifest to its config and layer blobs, a config to its layers'
//! `diff_id`s), and everything a live process's lease names (followed down the same
//! way). The rest goes. It all happens under the store's lock, so no image is named
//! and no lease taken while the collector decides.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::Store;
use super::lease;
use super::staging::sync_dir;
use crate::digest::Digest;

/// What a collection removed, and what it could not.
#[derive(Debug, Default)]
pub struct Collected {
    /// Blobs removed.
    pub blobs: Vec<Digest>,
    /// Layers removed (by `diff_id`).
    pub layers: Vec<Digest>,
    /// Trees moved out of `layers/` that could not be removed from here (their
    /// entries belong to ids of a user namespace: remove them from inside it, or let a
    /// later [`Store::sweep`] there do it).
    pub left: Vec<PathBuf>,
}

/// The largest manifest registries accept; configs are smaller in practice.
const JSON_MAX: u64 = 4 << 20;

/// What is reachable.
#[derive(Default)]
struct Live {
    blobs: BTreeSet<Digest>,
    layers: BTreeSet<Digest>,
}

impl Live {
    /// Keeps the blob `digest` and, if it is JSON (manifests and configs are), what it
    /// links to. A blob larger than a manifest may be (a layer) is not read.
    fn follow(&mut self, store: &Store, digest: Digest) {
        if !self.blobs.insert(digest.clone())
            || !store.blob_size(&digest).is_ok_and(|size| size <= JSON_MAX)
        {
            return;
        }
        // Read loosely: whatever it is (an index, a manifest, a config), only its links
        // matter. A typed read would not do: a config's `config` (the runtime settings)
        // is not a manifest's (a link), and one failed read would drop all its links.
        let Ok(json) = store.read_json::<Value>(&digest) else {
            return;
        };
        let linked = |v: &Value| {
            v.get("digest")?
                .as_str()
                .and_then(|d| Digest::parse(d).ok())
        };
        for manifest in json["manifests"].as_array().into_iter().flatten() {
            if let Some(d) = linked(manifest) {
                self.follow(store, d);
            }
        }
        if let Some(d) = linked(&json["config"]) {
            self.follow(store, d);
        }
        for layer in json["layers"].as_array().into_iter().flatten() {
            if let Some(d) = linked(layer) {
                self.blobs.insert(d);
            }
        }
        for diff_id in json["rootfs"]["diff_ids"].as_array().into_iter().flatten() {
            if let Some(d) = diff_id.as_str().and_then(|d| Digest::parse(d).ok()) {
                self.layers.insert(d);
            }
        }
    }
}

impl Store {
    // ANCHOR: gc
    /// Removes every blob and layer that no named image and no live lease reaches.
    pub fn gc(&self) -> Result<Collected> {
        let _lock = self.lock()?;
        let mut live = Live::default();
        for image in self.images()? {
            live.follow(self, image.digest);
        }
        self.follow_leases(&mut live)?;

        let mut collected = Collected::default();
        for blob in self.blobs()? {
            if !live.blobs.contains(&blob) {
                let path = self.blob_path(&blob);
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                collected.blobs.push(blob);
            }
        }
        sync_dir(&self.root.join("blobs/sha256"))?;

        for layer in self.layers()? {
            if live.layers.contains(&layer) {
                continue;
            }
            // Out of layers/ in one rename, under the layer's lock, then removed from
            // tmp/. Whoever holds that lock is unpacking the layer (and should have
            // leased it): it is left to them.
            let Some(lock) = self.try_layer_lock(&layer)? else {
                continue;
            };
            let aside = self.staged();
            let dir = self.root.join("layers").join(layer.hex());
            fs::rename(&dir, aside.path())
                .with_context(|| format!("moving {} out of the store", dir.display()))?;
            lock.remove()?;
            if fs::remove_dir_all(aside.path()).is_err() {
                collected.left.push(aside.path().to_owned());
            }
            drop(aside);
            collected.layers.push(layer);
        }
        sync_dir(&self.root.join("layers"))?;
        Ok(collected)
    }
    // ANCHOR_END: gc

    /// Adds what live leases hold to `live`, and removes the leases of processes gone.
    fn follow_leases(&self, live: &mut Live) -> Result<()> {
        let dir = self.root.join("in-use");
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path();
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let Some(held) = lease::parse(&text) else {
                bail!(
                    "{} is not a lease keel writes: the collector cannot tell what it keeps, \
                     so it removes nothing; remove that file if no keel process uses it",
                    path.display()
                );
            };
            if !held.owner.is_some_and(|owner| owner.is_alive()) {
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                continue;
            }
            for blob in held.blobs {
                live.follow(self, blob);
            }
            live.layers.extend(held.layers);
        }
        Ok(())
    }
}
