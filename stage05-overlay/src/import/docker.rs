//! `docker save`'s archive (also `skopeo copy ... docker-archive:`), converted into
//! OCI images.
//!
//! Its `manifest.json` lists the images, each by file names, not digests:
//!
//! ```json
//! [{"Config": "<image id>.json", "RepoTags": ["busybox:latest"],
//!   "Layers": ["<id>/layer.tar", ...]}]
//! ```
//!
//! (docker 25 and later write `blobs/sha256/<hex>` for both, beside an OCI layout of
//! the same images.) Nothing in the archive is a digest to verify a file against,
//! except the config's own: docker names an image by the digest of its config (the
//! image ID), and the config lists its layers' `diff_ids`. So that is the chain keel
//! checks: each layer tar must hash to the `diff_id` the config gives it, in order.
//! Each image then gets an OCI manifest of keel's making (see [`super::manifest`]).

use std::io::Read;

use anyhow::{Context, Result, bail};
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::archive::{Archive, Links};
use super::manifest::{LayerDigests, put_manifest};
use super::read_json;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{Lease, Store};

/// The largest config read: a config is JSON of a few kilobytes, and it is held in
/// memory to be hashed and parsed.
const CONFIG_MAX: u64 = 16 << 20;

/// One image of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Saved {
    config: String,
    /// `null` when the image was saved by ID.
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Imports the images of the docker archive `archive`: the one tagged `reference` (or
/// the only one) under that name, or, with no reference, every image under each of its
/// `RepoTags`. Names are given only once every image is in the store: an error leaves
/// nothing named.
pub(super) fn import(
    store: &Store,
    archive: &mut Archive,
    reference: Option<&Reference>,
) -> Result<Vec<(Reference, Digest)>> {
    let shown = archive.describe();
    let saved: Vec<Saved> = read_json(
        archive.open("manifest.json", Links::Refuse)?,
        "manifest.json",
    )
    .with_context(|| format!("{shown} is not an archive of docker save"))?;
    let chosen = choose(&saved, reference, &shown)?;

    let mut wanted = Vec::new();
    for (_, image) in &chosen {
        wanted.push(image.config.clone());
        wanted.extend(image.layers.iter().cloned());
    }
    archive.stage(&wanted, Links::Follow)?;

    let mut lease = store.lease()?;
    let mut converted = Vec::new();
    for (names, image) in chosen {
        let digest = convert(store, &mut lease, archive, image)
            .with_context(|| format!("importing {} from {shown}", shown_names(&names)))?;
        converted.push((names, digest));
    }
    let mut imported = Vec::new();
    for (names, digest) in converted {
        for name in names {
            store.tag(&name, &digest)?;
            imported.push((name, digest.clone()));
        }
    }
    Ok(imported)
}

/// The images to import, each with the names to give it.
fn choose<'a>(
    saved: &'a [Saved],
    reference: Option<&Reference>,
    shown: &str,
) -> Result<Vec<(Vec<Reference>, &'a Saved)>> {
    if saved.is_empty() {
        bail!("{shown}: its manifest.json lists no image");
    }
    let mut tagged = Vec::new();
    for (n, image) in saved.iter().enumerate() {
        let tags = image.repo_tags.as_deref().unwrap_or_default();
        let names = tags
            .iter()
            .map(|tag| {
                Reference::parse(tag)
                    .with_context(|| format!("{shown}: image {} has the tag {tag:?}", n + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        tagged.push((names, image));
    }
    let Some(reference) = reference else {
        if let Some(n) = tagged.iter().position(|(names, _)| names.is_empty()) {
            bail!(
                "{shown}: image {} (config {}) has no name (docker saved it by ID, with no \
                 RepoTags): name it (import PATH NAME)",
                n + 1,
                saved[n].config
            );
        }
        return Ok(tagged);
    };
    if let [(_, image)] = tagged[..] {
        return Ok(vec![(vec![reference.clone()], image)]);
    }
    match tagged.iter().find(|(names, _)| names.contains(reference)) {
        Some((_, image)) => Ok(vec![(vec![reference.clone()], *image)]),
        None => {
            let all: Vec<String> = tagged
                .iter()
                .flat_map(|(names, _)| names.iter().map(ToString::to_string))
                .collect();
            bail!(
                "{shown} holds {} images, none tagged {reference} (its tags: {all:?}): name \
                 one of them, or no name to import them all under their own",
                saved.len()
            )
        }
    }
}

/// Stores one image's config and layers, checked against each other, and an OCI
/// manifest of them; returns the manifest's digest.
fn convert(store: &Store, lease: &mut Lease, archive: &Archive, image: &Saved) -> Result<Digest> {
    let mut config = Vec::new();
    archive
        .open(&image.config, Links::Refuse)?
        .take(CONFIG_MAX + 1)
        .read_to_end(&mut config)
        .with_context(|| format!("reading the config {}", image.config))?;
    if config.len() as u64 > CONFIG_MAX {
        bail!(
            "the config {} is larger than {CONFIG_MAX} bytes: it is no image config",
            image.config
        );
    }
    let config_digest = Digest::of(&config);
    if let Some(named) = digest_in_name(&image.config)
        && named != config_digest
    {
        bail!(
            "the config {} hashes to {config_digest}, not to the digest its name says: the \
             archive is corrupt or was tampered with",
            image.config
        );
    }
    let parsed: ImageConfiguration = serde_json::from_slice(&config)
        .with_context(|| format!("the config {} is not an image config", image.config))?;
    let diff_ids = parsed.rootfs().diff_ids();
    if diff_ids.len() != image.layers.len() {
        bail!(
            "manifest.json lists {} layers, and its config {} lists {} diff_ids: the archive \
             is inconsistent",
            image.layers.len(),
            image.config,
            diff_ids.len()
        );
    }

    let mut layers = Vec::new();
    for (n, (name, expected)) in image.layers.iter().zip(diff_ids).enumerate() {
        let expected = Digest::parse(expected)
            .with_context(|| format!("the config's diff_id of layer {}", n + 1))?;
        let what = format!("layer {} ({name})", n + 1);
        let layer = LayerDigests::read(archive.open(name, Links::Follow)?, &what)?;
        if layer.diff_id != expected {
            bail!(
                "{what}: its tar hashes to {}, but the config's rootfs.diff_ids says {expected}: \
                 the layer is not the one the image was made of (corrupt or tampered with)",
                layer.diff_id
            );
        }
        if let Some(named) = digest_in_name(name)
            && named != layer.blob
        {
            bail!(
                "{what} hashes to {}, not to the digest its name says: the archive is corrupt \
                 or was tampered with",
                layer.blob
            );
        }
        lease.add(std::slice::from_ref(&layer.blob), &[])?;
        store.put_blob(
            archive.open(name, Links::Follow)?,
            &layer.blob,
            Some(layer.size),
        )?;
        layers.push(layer.descriptor());
    }
    lease.add(&[config_digest], &[])?;
    store.put_bytes(&config)?;
    put_manifest(store, lease, &config, layers)
}

/// The digest a file's name claims: `blobs/sha256/<hex>` (docker 25+) or `<hex>.json`
/// (a config of older docker, named by the image ID).
fn digest_in_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next()?;
    let hex = match name.strip_suffix(base)?.trim_end_matches('/') {
        parent if parent.ends_with("blobs/sha256") => base,
        _ => base.strip_suffix(".json")?,
    };
    Digest::from_hex(hex).ok()
}

fn shown_names(names: &[Reference]) -> String {
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_claims_a_digest_only_in_docker_s_two_shapes() {
        let hex = Digest::of(b"x").hex().to_owned();
        let digest = Some(Digest::of(b"x"));
        assert_eq!(digest_in_name(&format!("blobs/sha256/{hex}")), digest);
        assert_eq!(digest_in_name(&format!("{hex}.json")), digest);
        assert_eq!(digest_in_name(&format!("{hex}/layer.tar")), None);
        assert_eq!(digest_in_name("config.json"), None);
    }
}
