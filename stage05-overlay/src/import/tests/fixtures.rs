//! Archives written by hand: each test says what goes where, in the shapes docker and
//! skopeo write.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, ImageIndexBuilder, MediaType};
use serde_json::json;

use crate::digest::Digest;

/// One entry of a tar to write.
pub(super) enum Item {
    File(String, Vec<u8>),
    /// A symbolic link and its target.
    Link(String, String),
    /// A file whose name is written as is, bypassing the tar crate's checks.
    RawName(Vec<u8>, Vec<u8>),
}

pub(super) fn file(name: &str, bytes: impl Into<Vec<u8>>) -> Item {
    Item::File(name.to_owned(), bytes.into())
}

pub(super) fn link(name: &str, target: &str) -> Item {
    Item::Link(name.to_owned(), target.to_owned())
}

/// A tar of `items`, in order.
pub(super) fn tar(items: &[Item]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match item {
            Item::File(name, bytes) => {
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, name, &bytes[..]).unwrap();
            }
            Item::Link(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
            Item::RawName(name, bytes) => {
                header.set_size(bytes.len() as u64);
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                builder.append(&header, &bytes[..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// A layer tar holding the files `files`.
pub(super) fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let items: Vec<Item> = files.iter().map(|(n, c)| file(n, *c)).collect();
    tar(&items)
}

/// A config as docker writes it (with fields OCI does not have), listing `diff_ids`.
pub(super) fn config(diff_ids: &[Digest]) -> Vec<u8> {
    let diff_ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "container_config": {"Hostname": "", "Cmd": ["/bin/sh", "-c", "#(nop) ADD"]},
        "docker_version": "20.10.24",
        "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    }))
    .unwrap()
}

/// One image of a `manifest.json`.
pub(super) fn saved(config: &str, tags: &[&str], layers: &[&str]) -> serde_json::Value {
    json!({"Config": config, "RepoTags": tags, "Layers": layers})
}

/// The entries of one image in docker's older shape: `<hex>.json` for the config,
/// `<n>/layer.tar` for the layers (`blobs` as they are, `tars` uncompressed), and
/// the `manifest.json` entry that lists it.
pub(super) struct Legacy {
    pub(super) items: Vec<Item>,
    pub(super) saved: serde_json::Value,
    pub(super) config: Vec<u8>,
    pub(super) diff_ids: Vec<Digest>,
    pub(super) blobs: Vec<Digest>,
}

/// [`legacy`] of uncompressed layers.
pub(super) fn plain(tags: &[&str], tars: &[Vec<u8>]) -> Legacy {
    legacy(tags, tars, tars)
}

pub(super) fn legacy(tags: &[&str], blobs: &[Vec<u8>], tars: &[Vec<u8>]) -> Legacy {
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::of(t)).collect();
    let config = config(&diff_ids);
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let mut items = vec![file(&config_name, config.clone())];
    let mut layer_names = Vec::new();
    for blob in blobs {
        // Named as docker names them: by a hash of the image's chain so far (here, of
        // its tags and the layer), not by the blob's digest.
        let chain = [tags.concat().as_bytes(), blob].concat();
        let name = format!("{}/layer.tar", Digest::of(&chain).hex());
        items.push(file(&name, blob.clone()));
        layer_names.push(name);
    }
    let names: Vec<&str> = layer_names.iter().map(String::as_str).collect();
    Legacy {
        items,
        saved: saved(&config_name, tags, &names),
        config,
        diff_ids,
        blobs: blobs.iter().map(|b| Digest::of(b)).collect(),
    }
}

/// `manifest.json` of `saved`.
pub(super) fn manifest_json(saved: &[serde_json::Value]) -> Item {
    file("manifest.json", serde_json::to_vec(saved).unwrap())
}

/// An OCI image layout of `layers` (uncompressed tars) in `dir`, its one image named
/// `ref_name`; returns its manifest's digest and the layers' diff_ids.
pub(super) fn oci_layout(dir: &Path, layers: &[Vec<u8>], ref_name: &str) -> (Digest, Vec<Digest>) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = Digest::of(bytes);
        fs::write(blobs.join(digest.hex()), bytes).unwrap();
        digest
    };
    let diff_ids: Vec<Digest> = layers.iter().map(|l| put(l)).collect();
    let config = config(&diff_ids);
    let config_digest = put(&config);
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .zip(&diff_ids)
        .map(|(l, d)| json!({"mediaType": MediaType::ImageLayer.to_string(), "size": l.len(), "digest": d.to_string()}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageManifest.to_string(),
        "config": {"mediaType": MediaType::ImageConfig.to_string(), "size": config.len(), "digest": config_digest.to_string()},
        "layers": layer_descriptors,
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    let mut descriptor = Descriptor::new(
        MediaType::ImageManifest,
        manifest.len() as u64,
        &manifest_digest,
    );
    descriptor.set_annotations(Some(HashMap::from([(
        ANNOTATION_REF_NAME.to_owned(),
        ref_name.to_owned(),
    )])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(vec![descriptor])
        .build()
        .unwrap();
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (manifest_digest, diff_ids)
}

/// The files of the layout `dir` as tar items, named `./…` as `tar -C dir .` does.
pub(super) fn layout_items(dir: &Path) -> Vec<Item> {
    let mut items = vec![
        file("./oci-layout", fs::read(dir.join("oci-layout")).unwrap()),
        file("./index.json", fs::read(dir.join("index.json")).unwrap()),
    ];
    let mut blobs: Vec<_> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    blobs.sort();
    for hex in blobs {
        let bytes = fs::read(dir.join("blobs/sha256").join(&hex)).unwrap();
        items.push(file(&format!("./blobs/sha256/{hex}"), bytes));
    }
    items
}
