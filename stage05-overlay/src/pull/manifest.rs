//! Manifests: what an image is made of, in OCI's words or docker's.
//!
//! A tag names either a *manifest* (a config and a list of layers) or an *index* of
//! manifests, one per platform. OCI and docker (v2 schema 2) spell both the same way,
//! under different media types, and a registry sends whichever it has among those the
//! client says it accepts. keel accepts all four, and refuses docker's old schema 1
//! (signed, no config), which registries convert when they cannot send anything else.

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::platform::Platform;
use crate::digest::Digest;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Sent as `Accept`: every manifest and index keel can read.
pub(crate) const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Layer media types keel unpacks: a tar, plain or compressed (the unpacker tells the
/// compression from the bytes themselves).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

/// A descriptor: what kind of thing, its digest and its size.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    pub(crate) platform: Option<PlatformJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlatformJson {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// An image manifest: its config and layers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
}

/// An index: one manifest per platform.
#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    pub(crate) manifests: Vec<Descriptor>,
}

/// The part of an image config a pull needs: the digests of the uncompressed layers.
#[derive(Debug, Deserialize)]
pub(crate) struct Config {
    pub(crate) rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RootFs {
    pub(crate) diff_ids: Vec<String>,
}

/// What a manifest request returned.
#[derive(Debug)]
pub(crate) enum Fetched {
    Index(Index),
    Manifest(Manifest),
}

/// Reads `bytes` as what `media_type` (the `Content-Type`, if any) says, or as what
/// the document's own `mediaType` says.
pub(crate) fn parse(bytes: &[u8], media_type: Option<&str>) -> Result<Fetched> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).context("the manifest is not JSON")?;
    if shape.schema_version == Some(1) {
        bail!(
            "the image has a docker schema 1 manifest, a format retired in 2019 that keel \
             does not read: push it again with a current docker, podman or skopeo"
        );
    }
    // The document's own type first: registries send `application/json` at times.
    let kind = shape
        .media_type
        .as_deref()
        .filter(|t| ACCEPT.contains(t))
        .or(media_type.filter(|t| ACCEPT.contains(t)));
    let is_index = match kind {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(_) => false,
        // OCI makes `mediaType` optional: an index is what lists manifests.
        None => shape.manifests.is_some(),
    };
    if is_index {
        let index: Index = serde_json::from_slice(bytes).context("reading the image index")?;
        Ok(Fetched::Index(index))
    } else {
        let manifest: Manifest =
            serde_json::from_slice(bytes).context("reading the image manifest")?;
        manifest.check()?;
        Ok(Fetched::Manifest(manifest))
    }
}

impl Manifest {
    /// Refuses what is not a container image: an artifact (a Helm chart, a signature)
    /// has a config of another type, and some layers are not tars.
    fn check(&self) -> Result<()> {
        let config_type = self.config.media_type.as_str();
        if !CONFIG_TYPES.contains(&config_type) {
            bail!(
                "this is not a container image: its config is of type {config_type:?} (an \
                 image's is {})",
                CONFIG_TYPES.join(" or ")
            );
        }
        for layer in &self.layers {
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                bail!(
                    "the layer {} is of type {:?}, which keel cannot unpack (it knows tar, \
                     tar+gzip and tar+zstd layers, OCI's and docker's; foreign and \
                     non-distributable layers are not pulled)",
                    layer.digest,
                    layer.media_type
                );
            }
        }
        Ok(())
    }
}

impl Descriptor {
    /// The digest, checked.
    pub(crate) fn digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest)
    }
}

impl Index {
    /// The manifest for `wanted`; an error listing what the index offers otherwise.
    pub(crate) fn pick(&self, wanted: &Platform) -> Result<&Descriptor> {
        let offered: Vec<(Platform, &Descriptor)> = self
            .manifests
            .iter()
            .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | ""))
            .filter_map(|d| {
                let p = d.platform.as_ref()?;
                let platform = Platform {
                    os: p.os.clone(),
                    architecture: p.architecture.clone(),
                    variant: p.variant.clone().filter(|v| !v.is_empty()),
                };
                Some((platform, d))
            })
            .collect();
        // An exact variant first (linux/arm/v7 over a bare linux/arm), then any match.
        let exact = offered.iter().find(|(p, _)| p == wanted);
        let loose = offered.iter().find(|(p, _)| wanted.matches(p));
        if let Some((_, descriptor)) = exact.or(loose) {
            return Ok(descriptor);
        }
        let names: Vec<String> = offered
            .iter()
            .map(|(p, _)| p.to_string())
            // Attestations (buildx's provenance) are listed as unknown/unknown.
            .filter(|p| p != "unknown/unknown")
            .collect();
        bail!(
            "the image has no manifest for {wanted}; it offers {}: pull it on a machine of \
             one of those, or ask for one of them",
            if names.is_empty() {
                "none at all".to_owned()
            } else {
                names.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn entry(platform: &str) -> String {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap();
        let arch = parts.next().unwrap();
        let variant = parts
            .next()
            .map(|v| format!(r#","variant":"{v}""#))
            .unwrap_or_default();
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{HEX}","size":1,
               "platform":{{"os":"{os}","architecture":"{arch}"{variant}}}}}"#
        )
    }

    fn index(platforms: &[&str]) -> Index {
        let entries: Vec<String> = platforms.iter().map(|p| entry(p)).collect();
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            entries.join(",")
        );
        match parse(json.as_bytes(), Some(DOCKER_LIST)).unwrap() {
            Fetched::Index(index) => index,
            Fetched::Manifest(_) => panic!("an index was read as a manifest"),
        }
    }

    #[test]
    fn picks_this_platform_and_lists_the_others() {
        let idx = index(&["linux/arm64/v8", "linux/amd64", "unknown/unknown"]);
        let amd64: Platform = "linux/amd64".parse().unwrap();
        assert!(idx.pick(&amd64).is_ok());
        let err = index(&["linux/arm64/v8", "linux/s390x", "unknown/unknown"])
            .pick(&amd64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no manifest for linux/amd64"), "{err}");
        assert!(err.contains("linux/arm64/v8, linux/s390x"), "{err}");
        assert!(!err.contains("unknown"), "{err}");
    }

    #[test]
    fn an_exact_variant_wins() {
        let json = format!(
            r#"{{"manifests":[{},{}]}}"#,
            entry("linux/arm").replace(HEX, &"1".repeat(64)),
            entry("linux/arm/v7")
        );
        let Fetched::Index(idx) = parse(json.as_bytes(), None).unwrap() else {
            panic!("not an index");
        };
        let picked = idx.pick(&"linux/arm/v7".parse().unwrap()).unwrap();
        assert_eq!(picked.digest, format!("sha256:{HEX}"));
    }

    #[test]
    fn refuses_schema_1_artifacts_and_unknown_layers() {
        let err = parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
        let manifest = |config: &str, layer: &str| {
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"{config}","digest":"sha256:{HEX}","size":2}},
                   "layers":[{{"mediaType":"{layer}","digest":"sha256:{HEX}","size":3}}]}}"#
            )
        };
        let ok = manifest(
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        );
        assert!(matches!(
            parse(ok.as_bytes(), Some(DOCKER_MANIFEST)).unwrap(),
            Fetched::Manifest(_)
        ));
        let helm = manifest(
            "application/vnd.cncf.helm.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        );
        let err = parse(helm.as_bytes(), None).unwrap_err().to_string();
        assert!(err.contains("not a container image"), "{err}");
        let foreign = manifest(
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        );
        let err = parse(foreign.as_bytes(), None).unwrap_err().to_string();
        assert!(err.contains("cannot unpack"), "{err}");
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_without_panicking(bytes in any::<Vec<u8>>()) {
            let _ = parse(&bytes, None);
        }
    }
}
