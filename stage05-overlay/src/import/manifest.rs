//! Making an OCI image of layers that come without a manifest: a rootfs tarball, or
//! the layer tars of `docker save`.
//!
//! The store holds images as OCI does: a manifest naming a config and the layer blobs
//! by digest. A `docker save` archive has no manifest of that kind (its
//! `manifest.json` lists file names), and a rootfs tarball has neither manifest nor
//! config; keel writes what is missing, so that every image in the store is read the
//! same way whichever way it came.

use std::io::{self, Read};

use anyhow::{Context, Result};
use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};

use crate::digest::{Digest, Verifier};
use crate::store::{Lease, Store};
use crate::unpack::compression::{self, Compression};

/// A layer blob's two digests: the blob's as it is (the manifest names it so) and its
/// uncompressed tar's (the `diff_id` the config lists).
#[derive(Debug, Clone)]
pub(super) struct LayerDigests {
    pub(super) blob: Digest,
    pub(super) size: u64,
    pub(super) compression: Compression,
    pub(super) diff_id: Digest,
}

impl LayerDigests {
    /// Reads `blob` once for both digests. `what` names it in errors.
    pub(super) fn read(blob: impl Read, what: &str) -> Result<Self> {
        let mut blob = Verifier::new(blob);
        let (compression, tar) = compression::detect(&mut blob).context(what.to_owned())?;
        let mut tar = Verifier::new(tar);
        io::copy(&mut tar, &mut io::sink())
            .with_context(|| format!("reading {what}: is it a tar, whole?"))?;
        let (diff_id, _) = tar.digest();
        let size = blob.size();
        let (blob, _) = blob.digest();
        Ok(Self {
            blob,
            size,
            compression,
            diff_id,
        })
    }

    /// Its descriptor in a manifest: the media type says the compression.
    pub(super) fn descriptor(&self) -> Descriptor {
        let media_type = match self.compression {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        };
        Descriptor::new(media_type, self.size, &self.blob)
    }
}

/// Writes an OCI image manifest of the config `config` (its bytes, already in the
/// store) and of `layers`, bottom first; returns its digest. The lease keeps it until
/// it is tagged.
pub(super) fn put_manifest(
    store: &Store,
    lease: &mut Lease,
    config: &[u8],
    layers: Vec<Descriptor>,
) -> Result<Digest> {
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.len() as u64,
            &Digest::of(config),
        ))
        .layers(layers)
        .build()?;
    let bytes = serde_json::to_vec(&manifest)?;
    let digest = Digest::of(&bytes);
    lease.add(std::slice::from_ref(&digest), &[])?;
    store.put_bytes(&bytes)?;
    Ok(digest)
}
