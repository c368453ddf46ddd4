//! Tests of the imports: of a directory layout and a rootfs tarball here, of archives
//! in [`archive`], of archives that skopeo writes in [`skopeo`]. Every fixture is made
//! by the test.

mod archive;
mod fixtures;
mod skopeo;

use std::fs;
use std::io::Write as _;
use std::path::Path;

use oci_spec::image::{ImageManifest, MediaType};
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
