//! Leases: what a live process uses, or is about to write, kept from the collector.
//!
//! A running container's layers are its root filesystem: removing one under it would
//! pull the floor away. A pull writes blobs and layers before it names the image, and
//! until then nothing in `index.json` reaches them. Either way, the process first takes
//! a lease: a file `in-use/<pid>-<start>-<n>` naming itself and what it holds. The
//! collector keeps whatever a lease of a live process names, and drops the leases of
//! processes that are gone (the PID and its start time, as [`Owner::is_alive`] checks,
//! so a recycled PID is not taken for the old process).
//!
//! A lease changes under the store's lock, which the collector holds throughout: so a
//! digest added to a lease before its content is written is seen by any collection
//! that could remove that content.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use common::state::Owner;

use super::Store;
use crate::digest::Digest;

/// A lease; released when dropped (or when its owner dies).
#[derive(Debug)]
pub struct Lease {
    store: Store,
    path: PathBuf,
    owner: Owner,
    blobs: BTreeSet<Digest>,
    layers: BTreeSet<Digest>,
}

impl Store {
    /// A lease of this process, holding nothing yet.
    pub fn lease(&self) -> Result<Lease> {
        self.new_lease(self.owner, &[], &[])
    }

    /// A lease of this process that holds `blobs` and `layers` from the start: one
    /// write of the lease file instead of two (a run takes one before every start).
    pub fn lease_holding(&self, blobs: &[Digest], layers: &[Digest]) -> Result<Lease> {
        self.new_lease(self.owner, blobs, layers)
    }

    /// A lease of `owner`: a container's supervising process, which may outlive this
    /// one. Call [`Lease::keep`] so that dropping it here does not release it.
    pub fn lease_for(&self, owner: Owner) -> Result<Lease> {
        self.new_lease(owner, &[], &[])
    }

    fn new_lease(&self, owner: Owner, blobs: &[Digest], layers: &[Digest]) -> Result<Lease> {
        let name = self.fresh_name();
        let mut lease = Lease {
            store: self.clone(),
            path: self.root.join("in-use").join(name),
            owner,
            blobs: BTreeSet::new(),
            layers: BTreeSet::new(),
        };
        lease.add(blobs, layers)?;
        Ok(lease)
    }
}

impl Lease {
    /// Adds blobs and layers (by `diff_id`) to the lease. Add what you are about to
    /// write *before* writing it.
    pub fn add(&mut self, blobs: &[Digest], layers: &[Digest]) -> Result<()> {
        self.blobs.extend(blobs.iter().cloned());
        self.layers.extend(layers.iter().cloned());
        let mut text = format!("owner {}\n", self.owner);
        for blob in &self.blobs {
            text += &format!("blob {blob}\n");
        }
        for layer in &self.layers {
            text += &format!("layer {layer}\n");
        }
        let _lock = self.store.lock()?;
        // Whole for every reader, but not flushed: after a power cut its owner is dead
        // and the lease means nothing.
        self.store.write_replacing(&self.path, text.as_bytes())
    }

    /// The lease file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Leaves the lease in force after this value is gone: its owner's death ends it.
    pub fn keep(self) -> PathBuf {
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }

    /// Releases the lease now.
    pub fn release(self) -> Result<()> {
        let path = self.path.clone();
        std::mem::forget(self);
        remove_lease(&path)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = remove_lease(&self.path);
    }
}

fn remove_lease(path: &std::path::Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing the lease {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A lease as read by the collector.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) owner: Option<Owner>,
    pub(crate) blobs: Vec<Digest>,
    pub(crate) layers: Vec<Digest>,
}

/// Parses a lease file; `None` for a line keel does not write.
pub(crate) fn parse(text: &str) -> Option<Held> {
    let mut held = Held::default();
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "owner" => {
                let (pid, start) = rest.split_once(' ')?;
                held.owner = Some(Owner::parse(pid, start)?);
            }
            "blob" => held.blobs.push(Digest::parse(rest).ok()?),
            "layer" => held.layers.push(Digest::parse(rest).ok()?),
            _ => return None,
        }
    }
    held.owner.is_some().then_some(held)
}
