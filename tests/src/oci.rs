//! OCI images built by the graders (stage 5): layers made of the entries a test names,
//! hostile ones included, written as an OCI image layout that `import` reads.
//!
//! ```text
//! DIR/oci-layout               {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json               one manifest
//! DIR/blobs/sha256/<hex>       the layers (tar, or tar+gzip), the config, the manifest
//! ```

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// One entry of a layer.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    /// A raw name, written as it is (`../../x`, `/abs`): the tar crate's builder
    /// refuses such names, an attacker's does not.
    RawFile(&'a str, &'a str),
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A tar of `entries`, owned by root, in order.
pub fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match entry {
            Entry::Dir(name) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, name, std::io::empty())
            }
            Entry::File(name, text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(text.len() as u64);
                tar.append_data(&mut header, name, text.as_bytes())
            }
            Entry::Symlink(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, name, target)
            }
            Entry::Hardlink(name, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_size(0);
                raw_name(&mut header, name);
                raw_link(&mut header, target);
                header.set_cksum();
                tar.append(&header, std::io::empty())
            }
            Entry::RawFile(name, text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(text.len() as u64);
                raw_name(&mut header, name);
                header.set_cksum();
                tar.append(&header, text.as_bytes())
            }
        }
        .expect("a tar entry");
    }
    tar.into_inner().expect("the tar")
}

/// Writes `name` into the header's name field as it is.
fn raw_name(header: &mut tar::Header, name: &str) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
}

/// Writes `target` into the header's link field as it is.
fn raw_link(header: &mut tar::Header, target: &str) {
    let field = &mut header.as_old_mut().linkname;
    field.fill(0);
    field[..target.len()].copy_from_slice(target.as_bytes());
}

/// `bytes` compressed with gzip.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Writes an OCI image layout of one image into `dir`: `layers` (plain tars, bottom
/// first; stored gzipped) and `config` (its `config` object: Entrypoint, Cmd, Env,
/// WorkingDir, ...). Returns the manifest's digest.
pub fn write_layout(dir: &Path, layers: &[Vec<u8>], config: Value) -> String {
    let blobs: Vec<(Vec<u8>, String)> = layers.iter().map(|tar| (gzip(tar), digest(tar))).collect();
    write_layout_of_blobs(dir, &blobs, config)
}

/// [`write_layout`], with each layer given as its blob (gzip) and the diff_id the
/// config says it has: for blobs that are not what they claim.
pub fn write_layout_of_blobs(dir: &Path, layers: &[(Vec<u8>, String)], config: Value) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs/sha256");
    let put = |bytes: &[u8]| {
        let digest = digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), bytes).expect("a blob");
        (digest, bytes.len())
    };
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (gzipped, diff_id) in layers {
        diff_ids.push(diff_id.clone());
        let (blob, size) = put(gzipped);
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": blob,
            "size": size,
        }));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).expect("json"));
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
        }],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    manifest_digest
}
