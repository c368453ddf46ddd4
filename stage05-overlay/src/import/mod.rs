//! Images from files: an OCI image layout directory, an image archive (`docker save`,
//! `skopeo copy ... docker-archive:` or `oci-archive:`), or a plain rootfs tarball.
//!
//! All end as what a pull makes: verified blobs in the store and names in its index.
//! Nothing is unpacked here; layers are unpacked when an image is first run
//! ([`Store::ensure_layer`]). What is about to be written is leased first, so that a
//! collection running meanwhile keeps it (see [`crate::store::Lease`]); names are
//! given last, so that an import that fails leaves no name behind.
//!
//! - [`layout`]: an OCI image layout, in a directory or in a tar;
//! - [`docker`]: `docker save`'s archive, converted into OCI images;
//! - [`rootfs`]: a root filesystem tarball as a one-layer image;
//! - [`archive`]: an archive's files, read without trusting their names;
//! - [`manifest`]: the manifests keel writes for what comes without one.

mod archive;
mod docker;
mod layout;
mod manifest;
mod rootfs;

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::Store;
use archive::{Archive, Format};

pub use layout::import_layout;
pub use rootfs::import_rootfs;

// ANCHOR: import_archive
/// Imports the images of the file `tarball`, told by what it holds, not by its name:
/// an OCI layout in a tar (`oci-layout`, `index.json`, `blobs/`), an archive of
/// `docker save` (`manifest.json`), or else a root filesystem.
///
/// With `reference`, the one image it names (or the only one) gets that name; without,
/// every image gets the names the archive gives it (a rootfs tarball: its file's
/// name). Returns each name given and the manifest it names.
pub fn import_archive(
    store: &Store,
    tarball: &Path,
    reference: Option<&Reference>,
) -> Result<Vec<(Reference, Digest)>> {
    let mut archive = Archive::scan(store, tarball)?;
    match archive.format()? {
        Format::Docker => docker::import(store, &mut archive, reference),
        Format::Oci => {
            let blobs = archive.files_under("blobs/");
            archive.stage(&blobs, archive::Links::Refuse)?;
            layout::import_images(store, &archive, reference)
        }
        Format::Rootfs => {
            drop(archive);
            let reference = match reference {
                Some(reference) => reference.clone(),
                None => name_from_file(tarball)?,
            };
            let digest = import_rootfs(store, tarball, &reference)?;
            Ok(vec![(reference, digest)])
        }
    }
}
// ANCHOR_END: import_archive

/// The name of an image imported from `path` when none is given: the file's name
/// without its extension (and `.tar`), tag `latest` (`rootfs.tar.gz` is
/// `rootfs:latest`).
pub fn name_from_file(path: &Path) -> Result<Reference> {
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .map(|stem| stem.trim_end_matches(".tar").to_lowercase())
        .filter(|stem| !stem.is_empty())
        .with_context(|| format!("name the image of {}: import PATH NAME", path.display()))?;
    Reference::parse(&name).with_context(|| {
        format!(
            "{} does not make an image name: name it (import PATH NAME)",
            path.display()
        )
    })
}

/// The largest JSON file of an image read into memory (an index, a manifest.json).
const JSON_MAX: u64 = 16 << 20;

/// Reads `reader` as the JSON file `what`.
fn read_json<T: DeserializeOwned>(reader: impl Read, what: &str) -> Result<T> {
    let mut bytes = Vec::new();
    reader
        .take(JSON_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() as u64 > JSON_MAX {
        bail!("{what} is larger than {JSON_MAX} bytes: it is not what an image holds");
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{what} is not valid"))
}

#[cfg(test)]
mod tests;
