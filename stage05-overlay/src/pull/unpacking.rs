//! Unpacking a pull's layers while they download, several at once.
//!
//! Each layer goes into a directory of its own, so layers need not wait for each
//! other: each is unpacked as its blob arrives ([`Follow`]), into a new tree in the
//! store's `tmp/`. Only its last step, giving the directories its tar implies the
//! metadata of the layers below ([`unpack::Unpacked::settle`]), waits for those to be
//! whole ([`Board`]). Layers are taken in order, so the ones a layer waits for are
//! being unpacked or done: no thread waits for one that waits for it.
//!
//! The store's lock of a layer is taken only to put it in place
//! ([`Store::commit_layer`]), never while waiting: two pulls of images that share
//! layers in different orders cannot hold each other's locks.

use std::sync::{Condvar, Mutex, PoisonError};

use anyhow::{Context, Result};
use stage02_mountns::at::At;

use super::download::{Cancelled, Follow, Growing};
use super::{Layer, progress};
use crate::store::Store;
use crate::unpack;

/// Which layers are whole in the store, or failed, for the layers above to wait on.
pub(super) struct Board {
    /// Per layer: `None` while it is unpacked, then whether it is whole.
    done: Mutex<Vec<Option<bool>>>,
    changed: Condvar,
}

impl Board {
    pub(super) fn new(layers: usize) -> Self {
        Self {
            done: Mutex::new(vec![None; layers]),
            changed: Condvar::new(),
        }
    }

    fn finish(&self, layer: usize, whole: bool) {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)[layer] = Some(whole);
        self.changed.notify_all();
    }

    /// Waits until every layer below `layer` is whole; [`Cancelled`] if one failed.
    fn wait_below(&self, layer: usize) -> Result<()> {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let below = &done[..layer];
            if below.contains(&Some(false)) {
                return Err(Cancelled.into());
            }
            if below.iter().all(|d| *d == Some(true)) {
                return Ok(());
            }
            done = self
                .changed
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What the unpackers of one pull share.
pub(super) struct Unpacking<'a> {
    pub(super) store: &'a Store,
    pub(super) reporter: &'a progress::Reporter,
    pub(super) layers: &'a [Layer],
    /// The blobs as they download, and which of them is each layer's.
    pub(super) growing: &'a [Growing],
    pub(super) first: &'a [usize],
    pub(super) options: &'a unpack::Options,
    pub(super) board: Board,
}

impl Unpacking<'_> {
    /// Unpacks the layer `i` into the store; the [`Board`] learns how it ended. A
    /// failure caused by another part of the pull (its download, a layer below) is
    /// [`Cancelled`]: that part reports its own.
    pub(super) fn layer(&self, i: usize) -> Result<()> {
        let result = self.unpack(i);
        self.board.finish(i, result.is_ok());
        match result {
            Err(_) if self.growing[self.first[i]].failed() => Err(Cancelled.into()),
            Err(err) if err.is::<Cancelled>() => Err(err),
            other => other.with_context(|| {
                let layer = &self.layers[i];
                format!("layer {} of {} ({})", i + 1, self.layers.len(), layer.blob)
            }),
        }
    }

    fn unpack(&self, i: usize) -> Result<()> {
        let layer = &self.layers[i];
        let twice = self.layers[..i].iter().any(|l| l.diff_id == layer.diff_id);
        if twice || self.store.has_layer(&layer.diff_id) {
            return Ok(()); // a layer below it is the same tree: it is whole once they are
        }
        let new = self.store.new_layer()?;
        let blob = Follow::new(&self.growing[self.first[i]]);
        let unpacked = unpack::unpack_layer(blob, new.tree(), self.options)
            .with_context(|| format!("unpacking the layer {}", layer.diff_id))?;
        self.board.wait_below(i)?;
        let lowers = self.layers[..i]
            .iter()
            .map(|below| At::open_dir(&self.store.layer_path(&below.diff_id)))
            .collect::<Result<Vec<_>>>()?;
        let applied = unpacked
            .settle(&lowers)
            .with_context(|| format!("unpacking the layer {}", layer.diff_id))?;
        for warning in &applied.warnings {
            self.reporter
                .say(&format!("layer {}: {warning}", layer.diff_id));
        }
        self.store
            .commit_layer(new, &layer.diff_id, &applied.diff_id)?;
        Ok(())
    }
}
