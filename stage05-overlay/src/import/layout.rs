//! An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`), in a directory
//! (`skopeo copy ... oci:DIR`, `umoci`) or in a tar (`oci-archive:`): its images copied
//! into the store, every blob verified against the descriptor that names it.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Descriptor, ImageIndex, ImageManifest, MediaType, Os,
};

use super::archive::{Archive, Links};
use super::read_json;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{Lease, Store};

/// The full name containerd and docker 25+ annotate an exported image with; the OCI
/// annotation may hold only its tag.
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// Where a layout's files are read from.
pub(super) trait Layout {
    /// What to call it in messages.
    fn describe(&self) -> String;
    /// Opens the file `name`: `oci-layout`, `index.json` or `blobs/sha256/<hex>`.
    fn open(&self, name: &str) -> Result<File>;
}

/// A layout that is a directory.
struct Dir<'a>(&'a Path);

impl Layout for Dir<'_> {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    fn open(&self, name: &str) -> Result<File> {
        let path = self.0.join(name);
        File::open(&path).with_context(|| format!("opening {}", path.display()))
    }
}

/// A layout in a tar: its files looked up by [`Archive`], links refused (a layout
/// has none).
impl Layout for Archive {
    fn describe(&self) -> String {
        Archive::describe(self)
    }

    fn open(&self, name: &str) -> Result<File> {
        Archive::open(self, name, Links::Refuse)
    }
}

// ANCHOR: import_layout
/// Imports an image of the OCI image layout at `dir` (what `skopeo copy ... oci:DIR`
/// or `umoci` write) under the name `reference`. A layout may hold several images: the
/// one whose `org.opencontainers.image.ref.name` is the reference's tag (or the whole
/// reference) is taken, or the only one there is. An index of several platforms gives
/// the manifest of this machine's. Returns the manifest's digest.
pub fn import_layout(store: &Store, dir: &Path, reference: &Reference) -> Result<Digest> {
    let mut imported = import_images(store, &Dir(dir), Some(reference))?;
    match imported.pop() {
        Some((_, digest)) => Ok(digest),
        None => bail!("{} holds no image", dir.display()),
    }
}
// ANCHOR_END: import_layout

/// Imports the images of `layout`: the one `reference` names (see [`import_layout`]),
/// or, with none, every image under the name its index gives it. Names are given only
/// once every image is in the store: an error leaves nothing named.
pub(super) fn import_images(
    store: &Store,
    layout: &dyn Layout,
    reference: Option<&Reference>,
) -> Result<Vec<(Reference, Digest)>> {
    let shown = layout.describe();
    let version: serde_json::Value = read_json(layout.open("oci-layout")?, "oci-layout")?;
    if version["imageLayoutVersion"] != "1.0.0" {
        bail!(
            "{shown} is not an OCI image layout of version 1.0.0 (its oci-layout file says {})",
            version["imageLayoutVersion"]
        );
    }
    let index: ImageIndex = read_json(layout.open("index.json")?, "index.json")?;
    let chosen = match reference {
        Some(reference) => vec![(reference.clone(), chosen(&index, reference, &shown)?)],
        None => index
            .manifests()
            .iter()
            .map(|d| Ok((name_of(d, &shown)?, d)))
            .collect::<Result<Vec<_>>>()?,
    };
    if chosen.is_empty() {
        bail!("{shown} holds no image: its index.json lists no manifest");
    }
    let mut lease = store.lease()?;
    let mut imported = Vec::new();
    for (reference, descriptor) in chosen {
        let digest = copy_manifest(store, &mut lease, layout, descriptor)
            .with_context(|| format!("importing {reference} from {shown}"))?;
        imported.push((reference, digest));
    }
    for (reference, digest) in &imported {
        store.tag(reference, digest)?;
    }
    Ok(imported)
}

/// The descriptor of `index` that `reference` names: by its tag or whole, or the only
/// one there is.
fn chosen<'a>(index: &'a ImageIndex, reference: &Reference, shown: &str) -> Result<&'a Descriptor> {
    let ref_name = |d: &Descriptor| d.annotations().as_ref()?.get(ANNOTATION_REF_NAME).cloned();
    let wanted = |d: &&Descriptor| {
        ref_name(d)
            .is_some_and(|n| Some(n.as_str()) == reference.tag() || n == reference.to_string())
    };
    match index.manifests().iter().find(wanted) {
        Some(descriptor) => Ok(descriptor),
        None if index.manifests().len() == 1 => Ok(&index.manifests()[0]),
        None => {
            let names: Vec<String> = index.manifests().iter().filter_map(ref_name).collect();
            bail!(
                "{shown} holds {} images, none named {:?} (its names: {names:?}): name one \
                 of them",
                index.manifests().len(),
                reference.tag().unwrap_or_default()
            )
        }
    }
}

/// The name an index gives an image. The OCI annotation may be a tag alone
/// (`skopeo copy ... oci:DIR:latest` writes `latest`), which names no repository: such
/// an image must be named by whoever imports it.
fn name_of(descriptor: &Descriptor, shown: &str) -> Result<Reference> {
    let annotations = descriptor.annotations().clone().unwrap_or_default();
    let name = annotations
        .get(CONTAINERD_IMAGE_NAME)
        .or_else(|| annotations.get(ANNOTATION_REF_NAME));
    match name {
        Some(name) if name.contains(['/', ':', '@']) => {
            Reference::parse(name).with_context(|| format!("{shown} names an image {name:?}"))
        }
        Some(tag) => bail!(
            "{shown} names an image only by the tag {tag:?}, not by a repository: name it \
             (import PATH NAME)"
        ),
        None => bail!(
            "{shown} holds an image ({}) without a name: name it (import PATH NAME)",
            descriptor.digest()
        ),
    }
}

/// Copies the manifest `descriptor` names (this platform's, if it names an index), its
/// config and its layers; returns the manifest's digest.
fn copy_manifest(
    store: &Store,
    lease: &mut Lease,
    layout: &dyn Layout,
    descriptor: &Descriptor,
) -> Result<Digest> {
    let digest = Digest::try_from(descriptor.digest())?;
    // Verified before it is read: what names the rest must itself be what was named.
    copy_blob(store, lease, layout, descriptor)?;
    if *descriptor.media_type() == MediaType::ImageIndex {
        let index: ImageIndex = store.read_json(&digest)?;
        let (os, arch) = (Os::default(), Arch::default());
        let Some(ours) = index.manifests().iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| *p.os() == os && *p.architecture() == arch)
        }) else {
            bail!("the image has no manifest for {os}/{arch}, this machine's platform");
        };
        return copy_manifest(store, lease, layout, ours);
    }
    let manifest: ImageManifest = store.read_json(&digest)?;
    copy_blob(store, lease, layout, manifest.config())?;
    for layer in manifest.layers() {
        copy_blob(store, lease, layout, layer)?;
    }
    Ok(digest)
}

/// Copies one blob into the store, verified against its descriptor.
fn copy_blob(
    store: &Store,
    lease: &mut Lease,
    layout: &dyn Layout,
    descriptor: &Descriptor,
) -> Result<()> {
    let digest = Digest::try_from(descriptor.digest())?;
    lease.add(std::slice::from_ref(&digest), &[])?;
    let file = layout.open(&format!("blobs/sha256/{}", digest.hex()))?;
    store.put_blob(file, &digest, Some(descriptor.size()))?;
    Ok(())
}
