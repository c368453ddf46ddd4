//! The names of images: `index.json`, the index of an OCI image layout.
//!
//! Each image is one descriptor of its manifest, annotated with its canonical
//! reference (`org.opencontainers.image.ref.name`), so that the store's root is a
//! layout other tools read: `skopeo inspect oci:/var/lib/keel:<reference>`. The file
//! is read without a lock (it is only ever replaced whole) and changed under the
//! store's lock, read and written in one turn, so no change is lost.

use std::collections::HashMap;
use std::fs;

use anyhow::{Context, Result, bail};
use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, ImageIndex, MediaType};
use serde::Deserialize;

use super::Store;
use super::lock::Lock;
use crate::digest::Digest;
use crate::reference::Reference;

/// An image the store names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its name, in canonical form.
    pub reference: Reference,
    /// Its manifest (or, for a multi-platform image, its index).
    pub digest: Digest,
    /// The size of that manifest.
    pub size: u64,
}

impl Store {
    /// Takes the store's lock: for `index.json`, the leases, and the collector.
    pub(crate) fn lock(&self) -> Result<Lock> {
        Lock::exclusive(&self.root.join("lock"))
    }

    /// The index: empty when there is none yet.
    fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not an OCI image index: the store is damaged (keel writes it whole); \
                     move it away, and pull the images again",
                    path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(ImageIndex::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).context("encoding index.json")?;
        self.write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Names the manifest `digest` (which must be in the store) `reference`; a name
    /// already given to another image moves to this one, as `docker tag` does.
    pub fn tag(&self, reference: &Reference, digest: &Digest) -> Result<()> {
        let media_type = self.manifest_media_type(digest)?;
        let size = self.blob_size(digest)?;
        let name = reference.to_string();
        let mut descriptor = Descriptor::new(media_type, size, digest);
        descriptor.set_annotations(Some(HashMap::from([(
            ANNOTATION_REF_NAME.to_owned(),
            name.clone(),
        )])));
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(&name))
            .cloned()
            .collect();
        manifests.push(descriptor);
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// The manifest `reference` names, if the store has the image. A reference that
    /// pins a digest also finds the image under any tag of the same repository.
    pub fn resolve(&self, reference: &Reference) -> Result<Option<Digest>> {
        let images = self.images()?;
        if let Some(image) = images.iter().find(|i| &i.reference == reference) {
            return Ok(Some(image.digest.clone()));
        }
        Ok(reference.digest().and_then(|pinned| {
            images
                .iter()
                .find(|i| &i.digest == pinned && i.reference.name() == reference.name())
                .map(|i| i.digest.clone())
        }))
    }

    /// The images, in the order they were named.
    pub fn images(&self) -> Result<Vec<Image>> {
        let index = self.read_index()?;
        let mut images = Vec::new();
        for descriptor in index.manifests() {
            // Descriptors not named by keel (a layout written by other tools) are not images
            // keel knows by name; they are left as they are.
            let Some(reference) = ref_name(descriptor).and_then(|n| Reference::parse(n).ok())
            else {
                continue;
            };
            let Ok(digest) = Digest::try_from(descriptor.digest()) else {
                continue;
            };
            images.push(Image {
                reference,
                digest,
                size: descriptor.size(),
            });
        }
        Ok(images)
    }

    /// Removes the name `reference`; says whether there was one. The image's blobs and
    /// layers stay until [`Store::gc`] finds nothing else uses them.
    pub fn remove(&self, reference: &Reference) -> Result<bool> {
        let name = reference.to_string();
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let before = index.manifests().len();
        let manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(&name))
            .cloned()
            .collect();
        if manifests.len() == before {
            return Ok(false);
        }
        index.set_manifests(manifests);
        self.write_index(&index)?;
        Ok(true)
    }

    /// The media type of a manifest blob: its own `mediaType`, or, when it has none
    /// (OCI makes it optional), an index if it lists manifests, else a manifest.
    fn manifest_media_type(&self, digest: &Digest) -> Result<MediaType> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Shape {
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            layers: Option<serde_json::Value>,
        }
        if !self.has_blob(digest) {
            bail!("cannot name {digest}: the store has no such blob (store the manifest first)");
        }
        let shape: Shape = self.read_json(digest)?;
        Ok(match (shape.media_type, shape.manifests, shape.layers) {
            (Some(media_type), _, _) => MediaType::from(media_type.as_str()),
            (None, Some(_), _) => MediaType::ImageIndex,
            (None, None, Some(_)) => MediaType::ImageManifest,
            (None, None, None) => bail!(
                "cannot name {digest}: it is neither an image manifest nor an index (no \
                 mediaType, no layers, no manifests)"
            ),
        })
    }
}

/// The reference a descriptor of `index.json` is annotated with.
fn ref_name(descriptor: &Descriptor) -> Option<&String> {
    descriptor.annotations().as_ref()?.get(ANNOTATION_REF_NAME)
}
