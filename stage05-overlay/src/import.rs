//! Images from files: an OCI image layout directory, and a plain rootfs tarball.
//!
//! Both end as what a pull makes: verified blobs in the store and a name in its index.
//! Nothing is unpacked here; layers are unpacked when an image is first run
//! ([`Store::ensure_layer`]). What is about to be written is leased first, so that a
//! collection running meanwhile keeps it (see [`crate::store::Lease`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageIndex,
    ImageManifest, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::digest::{Digest, Verifier};
use crate::reference::Reference;
use crate::store::{Lease, Store};
use crate::unpack::compression::{self, Compression};

/// The `PATH` of an image that says none, as docker sets it.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ANCHOR: import_layout
/// Imports an image of the OCI image layout at `dir` (what `skopeo copy ... oci:DIR`
/// or `umoci` write) under the name `reference`. A layout may hold several images: the
/// one whose `org.opencontainers.image.ref.name` is the reference's tag (or the whole
/// reference) is taken, or the only one there is. An index of several platforms gives
/// the manifest of this machine's. Returns the manifest's digest.
pub fn import_layout(store: &Store, dir: &Path, reference: &Reference) -> Result<Digest> {
    let layout: serde_json::Value = read_json(&dir.join("oci-layout"))?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        bail!(
            "{} is not an OCI image layout of version 1.0.0 (its oci-layout file says {})",
            dir.display(),
            layout["imageLayoutVersion"]
        );
    }
    let index: ImageIndex = read_json(&dir.join("index.json"))?;
    let names: Vec<&str> = index
        .manifests()
        .iter()
        .filter_map(|d| d.annotations().as_ref()?.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
        .collect();
    let wanted = |d: &&Descriptor| {
        let name = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME));
        name.is_some_and(|n| Some(n.as_str()) == reference.tag() || *n == reference.to_string())
    };
    let descriptor = match index.manifests().iter().find(wanted) {
        Some(descriptor) => descriptor,
        None if index.manifests().len() == 1 => &index.manifests()[0],
        None => bail!(
            "{} holds {} images, none named {:?} (its names: {names:?}): name one of them",
            dir.display(),
            index.manifests().len(),
            reference.tag().unwrap_or_default()
        ),
    };
    let mut lease = store.lease()?;
    let blob = |digest: &Digest| dir.join("blobs/sha256").join(digest.hex());
    let manifest = copy_manifest(store, &mut lease, descriptor, &blob)?;
    store.tag(reference, &manifest)?;
    Ok(manifest)
}
// ANCHOR_END: import_layout

/// Copies the manifest `descriptor` names (this platform's, if it names an index), its
/// config and its layers; returns the manifest's digest.
fn copy_manifest(
    store: &Store,
    lease: &mut Lease,
    descriptor: &Descriptor,
    blob: &dyn Fn(&Digest) -> std::path::PathBuf,
) -> Result<Digest> {
    let digest = Digest::try_from(descriptor.digest())?;
    if *descriptor.media_type() == MediaType::ImageIndex {
        let index: ImageIndex = read_json(&blob(&digest))?;
        let (os, arch) = (Os::default(), Arch::default());
        let Some(ours) = index.manifests().iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| *p.os() == os && *p.architecture() == arch)
        }) else {
            bail!("the image has no manifest for {os}/{arch}, this machine's platform");
        };
        return copy_manifest(store, lease, ours, blob);
    }
    copy_blob(store, lease, descriptor, blob)?;
    let manifest: ImageManifest = store.read_json(&digest)?;
    copy_blob(store, lease, manifest.config(), blob)?;
    for layer in manifest.layers() {
        copy_blob(store, lease, layer, blob)?;
    }
    Ok(digest)
}

/// Copies one blob into the store, verified against its descriptor.
fn copy_blob(
    store: &Store,
    lease: &mut Lease,
    descriptor: &Descriptor,
    blob: &dyn Fn(&Digest) -> std::path::PathBuf,
) -> Result<()> {
    let digest = Digest::try_from(descriptor.digest())?;
    lease.add(std::slice::from_ref(&digest), &[])?;
    let path = blob(&digest);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    store.put_blob(file, &digest, Some(descriptor.size()))?;
    Ok(())
}

// ANCHOR: import_rootfs
/// Imports a tarball of a root filesystem (plain, gzip or zstd) as a one-layer image
/// named `reference`, with a config that says only this machine's platform and a
/// `PATH`, as `docker import` does. Returns the manifest's digest.
pub fn import_rootfs(store: &Store, tarball: &Path, reference: &Reference) -> Result<Digest> {
    let open = || File::open(tarball).with_context(|| format!("opening {}", tarball.display()));
    // One read for both digests: the blob's (as it is) and the layer's (uncompressed).
    let mut blob = Verifier::new(open()?);
    let (compression, tar) = compression::detect(&mut blob)?;
    let mut tar = Verifier::new(tar);
    io::copy(&mut tar, &mut io::sink())
        .with_context(|| format!("reading {}: is it a tar?", tarball.display()))?;
    let (diff_id, _) = tar.digest();
    let size = blob.size();
    let (blob_digest, _) = blob.digest();

    let mut lease = store.lease()?;
    lease.add(std::slice::from_ref(&blob_digest), &[])?;
    store.put_blob(open()?, &blob_digest, Some(size))?;

    let rootfs = RootFsBuilder::default()
        .diff_ids(vec![diff_id.to_string()])
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
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = Digest::of(&config_bytes);
    lease.add(std::slice::from_ref(&config_digest), &[])?;
    store.put_bytes(&config_bytes)?;

    let layer_type = match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            &config_digest,
        ))
        .layers(vec![Descriptor::new(layer_type, size, &blob_digest)])
        .build()?;
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = Digest::of(&manifest_bytes);
    lease.add(std::slice::from_ref(&manifest_digest), &[])?;
    store.put_bytes(&manifest_bytes)?;
    store.tag(reference, &manifest_digest)?;
    Ok(manifest_digest)
}
// ANCHOR_END: import_rootfs

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write as _;

    use stage02_mountns::at::At;

    use super::*;
    use crate::unpack::{Options, apply_layer};

    fn rootfs_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(12);
        builder
            .append_data(&mut header, "bin/hello", &b"#!/bin/true\n"[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_rootfs_tarball_becomes_a_one_layer_image_that_unpacks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let tar = rootfs_tar();
        let tarball = dir.path().join("rootfs.tar.gz");
        fs::write(&tarball, gzip(&tar)).unwrap();
        let name = Reference::parse("localhost/rootfs:1").unwrap();
        let digest = import_rootfs(&store, &tarball, &name).unwrap();
        assert_eq!(store.resolve(&name).unwrap(), Some(digest.clone()));

        let manifest: ImageManifest = store.read_json(&digest).unwrap();
        assert_eq!(
            *manifest.layers()[0].media_type(),
            MediaType::ImageLayerGzip
        );
        let config: oci_spec::image::ImageConfiguration = store
            .read_json(&Digest::try_from(manifest.config().digest()).unwrap())
            .unwrap();
        let diff_id = Digest::of(&tar);
        assert_eq!(config.rootfs().diff_ids(), &vec![diff_id.to_string()]);

        // The layer unpacks from the store, and hashes to its diff_id.
        let layer = Digest::try_from(manifest.layers()[0].digest()).unwrap();
        let tree = store
            .ensure_layer(&diff_id, |dest: &At| {
                Ok(apply_layer(store.open_blob(&layer)?, dest, &[], &Options::default())?.diff_id)
            })
            .unwrap();
        assert_eq!(fs::read(tree.join("bin/hello")).unwrap(), b"#!/bin/true\n");
        // Nothing is collected: the image is named.
        let collected = store.gc().unwrap();
        assert!(
            collected.blobs.is_empty() && collected.layers.is_empty(),
            "{collected:?}"
        );
    }

    /// An OCI layout made by importing a rootfs into a store (whose root is one).
    fn layout(dir: &Path) -> (std::path::PathBuf, Digest) {
        let source = Store::open(dir.join("layout")).unwrap();
        let tarball = dir.join("rootfs.tar");
        fs::write(&tarball, rootfs_tar()).unwrap();
        let digest =
            import_rootfs(&source, &tarball, &Reference::parse("x/y:latest").unwrap()).unwrap();
        (source.root().to_owned(), digest)
    }

    #[test]
    fn an_oci_layout_is_imported_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (layout_dir, digest) = layout(dir.path());
        let store = Store::open(dir.path().join("store")).unwrap();
        let name = Reference::parse("localhost/imported").unwrap();
        assert_eq!(import_layout(&store, &layout_dir, &name).unwrap(), digest);
        assert_eq!(store.resolve(&name).unwrap(), Some(digest.clone()));
        let manifest: ImageManifest = store.read_json(&digest).unwrap();
        for layer in manifest.layers() {
            assert!(store.has_blob(&Digest::try_from(layer.digest()).unwrap()));
        }
    }

    #[test]
    fn a_tampered_layout_is_refused_and_not_named() {
        let dir = tempfile::tempdir().unwrap();
        let (layout_dir, digest) = layout(dir.path());
        let source = Store::open(&layout_dir).unwrap();
        let manifest: ImageManifest = source.read_json(&digest).unwrap();
        let layer = Digest::try_from(manifest.layers()[0].digest()).unwrap();
        let path = source.blob_path(&layer);
        let mut bytes = fs::read(&path).unwrap();
        bytes[600] ^= 1;
        fs::remove_file(&path).unwrap();
        fs::write(&path, bytes).unwrap();

        let store = Store::open(dir.path().join("store")).unwrap();
        let name = Reference::parse("localhost/imported").unwrap();
        let err = import_layout(&store, &layout_dir, &name).unwrap_err();
        assert!(format!("{err:#}").contains("tampered"), "{err:#}");
        assert_eq!(store.resolve(&name).unwrap(), None);
        assert!(!store.has_blob(&layer));
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let name = Reference::parse("a").unwrap();
        let err = import_layout(&store, dir.path(), &name).unwrap_err();
        assert!(format!("{err:#}").contains("oci-layout"), "{err:#}");
    }
}
