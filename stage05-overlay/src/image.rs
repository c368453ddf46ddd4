//! An image in the store, as `run` needs it: its layers, bottom first, and its config.
//!
//! The manifest lists the layers as they are stored (compressed blobs); the config
//! lists them as they are unpacked (`rootfs.diff_ids`, the digests of the plain tars),
//! in the same order. A layer is unpacked once, into the store's directory named by its
//! diff_id, and every image that has it shares it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use stage02_mountns::at::At;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::Store;
use crate::unpack;

/// One layer: the blob the manifest names, and the digest of its tar.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Digest,
    pub diff_id: Digest,
}

/// An image the store has.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: Reference,
    pub manifest: Digest,
    pub config: ImageConfiguration,
    /// Bottom first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// The image named `reference`, or an error that says how to get it.
    pub fn load(store: &Store, reference: &Reference) -> Result<Self> {
        let Some(manifest_digest) = store.resolve(reference)? else {
            bail!(
                "no image {reference} here: pull it first ({} pull {reference}), or import it",
                common::program::name()
            );
        };
        let manifest: ImageManifest = store
            .read_json(&manifest_digest)
            .with_context(|| format!("reading the manifest of {reference}"))?;
        let config_digest = Digest::try_from(manifest.config().digest())?;
        let config: ImageConfiguration = store
            .read_json(&config_digest)
            .with_context(|| format!("reading the config of {reference}"))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            bail!(
                "{reference}: the manifest has {} layers and the config {}: the image is broken",
                manifest.layers().len(),
                diff_ids.len()
            );
        }
        let layers = manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(descriptor, diff_id)| {
                Ok(Layer {
                    blob: Digest::try_from(descriptor.digest())?,
                    diff_id: diff_id.parse()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            reference: reference.clone(),
            manifest: manifest_digest,
            config,
            layers,
        })
    }

    /// The diff_ids of its layers, bottom first.
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// Unpacks the layers the store does not have yet, each onto the ones below it, and
    /// returns their directories, bottom first. Call it as the containers' root (see
    /// [`crate::userns`]), so that the files get the image's owners.
    pub fn unpack(&self, store: &Store, rootless: bool) -> Result<Vec<PathBuf>> {
        let options = unpack::Options { rootless };
        let mut below: Vec<PathBuf> = Vec::new();
        for layer in &self.layers {
            let path = store.ensure_layer(&layer.diff_id, |dest| {
                let lowers = below
                    .iter()
                    .map(|dir| At::open_dir(dir))
                    .collect::<Result<Vec<_>>>()?;
                let blob = store.open_blob(&layer.blob)?;
                let applied = unpack::apply_layer(blob, dest, &lowers, &options)?;
                for warning in &applied.warnings {
                    eprintln!("{}: warning: {warning}", common::program::name());
                }
                Ok(applied.diff_id)
            })?;
            below.push(path);
        }
        Ok(below)
    }
}
