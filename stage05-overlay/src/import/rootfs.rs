//! A root filesystem tarball imported as a one-layer image, as `docker import` does.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::image::{Arch, ConfigBuilder, ImageConfigurationBuilder, Os, RootFsBuilder};

use super::manifest::{LayerDigests, put_manifest};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::Store;

/// The `PATH` of an image that says none, as docker sets it.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ANCHOR: import_rootfs
/// Imports a tarball of a root filesystem (plain, gzip or zstd) as a one-layer image
/// named `reference`, with a config that says only this machine's platform and a
/// `PATH`, as `docker import` does. Returns the manifest's digest.
pub fn import_rootfs(store: &Store, tarball: &Path, reference: &Reference) -> Result<Digest> {
    let open = || File::open(tarball).with_context(|| format!("opening {}", tarball.display()));
    // One read for both digests: the blob's (as it is) and the layer's (uncompressed).
    let layer = LayerDigests::read(open()?, &tarball.display().to_string())?;

    let mut lease = store.lease()?;
    lease.add(std::slice::from_ref(&layer.blob), &[])?;
    store.put_blob(open()?, &layer.blob, Some(layer.size))?;

    let rootfs = RootFsBuilder::default()
        .diff_ids(vec![layer.diff_id.to_string()])
        .build()?;
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::default())
        .os(Os::default())
        .rootfs(rootfs)
        .config(
            ConfigBuilder::default()
                .env(vec![DEFAULT_PATH.to_owned()])
                .build()?,
        )
        .build()?;
    let config = serde_json::to_vec(&config)?;
    lease.add(&[Digest::of(&config)], &[])?;
    store.put_bytes(&config)?;

    let manifest = put_manifest(store, &mut lease, &config, vec![layer.descriptor()])?;
    store.tag(reference, &manifest)?;
    Ok(manifest)
}
// ANCHOR_END: import_rootfs
