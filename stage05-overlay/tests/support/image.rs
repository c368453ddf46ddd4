//! Images made by the tests, from the host's static busybox, and pushed as any client
//! pushes: `POST /v2/<name>/blobs/uploads/`, `PUT <location>?digest=`, then the
//! manifest `PUT /v2/<name>/manifests/<tag>`.

use std::io::Write as _;

use serde_json::json;
use stage05_overlay::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer: its blob and the digest of its tar.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
    pub compression: Compression,
}

/// A tar of `files` (path, content); a path ending in `@` followed by a target is a
/// symlink: `bin/sh@busybox`.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        if let Some((link, target)) = path.split_once('@') {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, link, target)
                .expect("tar symlink");
        } else {
            header.set_mode(0o755);
            header.set_size(content.len() as u64);
            builder
                .append_data(&mut header, path, *content)
                .expect("tar entry");
        }
    }
    builder.into_inner().expect("tar")
}

/// The host's static busybox: `bin/busybox` and `bin/sh`.
pub fn busybox_tar() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox: install busybox-static (apt-get install busybox-static)");
    tar(&[("bin/busybox", &busybox), ("bin/sh@busybox", b"")])
}

pub fn layer(tar: Vec<u8>, compression: Compression) -> Layer {
    let blob = match compression {
        Compression::None => tar.clone(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).expect("gzip");
            gz.finish().expect("gzip")
        }
        Compression::Zstd => zstd::encode_all(&tar[..], 3).expect("zstd"),
    };
    Layer {
        digest: Digest::of(&blob),
        diff_id: Digest::of(&tar),
        blob,
        compression,
    }
}

/// An image: its config and manifest, as bytes.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub media_type: &'static str,
}

impl Image {
    /// An image of `layers` for `arch`, in OCI's format or docker's (schema 2).
    pub fn new(layers: Vec<Layer>, arch: &str, docker: bool) -> Self {
        let config = json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers",
                       "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        });
        let config = serde_json::to_vec(&config).expect("config");
        let layer_type = |l: &Layer| match (docker, l.compression) {
            (false, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (false, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (false, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (true, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (true, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        };
        let (media_type, config_type) = if docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": Digest::of(&config).to_string(),
                       "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": layer_type(l), "digest": l.digest.to_string(), "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        });
        Self {
            layers,
            manifest: serde_json::to_vec(&manifest).expect("manifest"),
            config,
            media_type,
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    /// Bytes of the config and layers: what a first pull downloads.
    pub fn blob_bytes(&self) -> u64 {
        (self.config.len() + self.layers.iter().map(|l| l.blob.len()).sum::<usize>()) as u64
    }
}

/// An index (OCI's or docker's manifest list) of `images`, each with its platform.
pub fn index(images: &[(&Image, &str, Option<&str>)], docker: bool) -> Vec<u8> {
    let media_type = if docker { DOCKER_LIST } else { OCI_INDEX };
    let manifests: Vec<_> = images
        .iter()
        .map(|(image, arch, variant)| {
            let mut platform = json!({"os": "linux", "architecture": arch});
            if let Some(variant) = variant {
                platform["variant"] = json!(variant);
            }
            json!({"mediaType": image.media_type, "digest": image.digest().to_string(),
                   "size": image.manifest.len(), "platform": platform})
        })
        .collect();
    serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}),
    )
    .expect("index")
}

/// Pushes to a registry at `http://<address>`, with `authorization` (a whole
/// `Authorization` header value) if given.
pub struct Pusher {
    client: reqwest::blocking::Client,
    base: String,
    authorization: Option<String>,
}

impl Pusher {
    pub fn new(address: &str, authorization: Option<String>) -> Self {
        Self {
            client: reqwest::blocking::Client::new(),
            base: format!("http://{address}"),
            authorization,
        }
    }

    fn auth(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    pub fn blob(&self, repo: &str, bytes: &[u8]) {
        let response = self
            .auth(
                self.client
                    .post(format!("{}/v2/{repo}/blobs/uploads/", self.base)),
            )
            .send()
            .expect("POST upload");
        assert_eq!(
            response.status().as_u16(),
            202,
            "upload: {}",
            response.text().unwrap_or_default()
        );
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={}", Digest::of(bytes));
        let response = self
            .auth(self.client.put(url))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("PUT blob");
        assert_eq!(
            response.status().as_u16(),
            201,
            "blob: {}",
            response.text().unwrap_or_default()
        );
    }

    pub fn manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let response = self
            .auth(
                self.client
                    .put(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
            )
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .expect("PUT manifest");
        assert_eq!(
            response.status().as_u16(),
            201,
            "manifest: {}",
            response.text().unwrap_or_default()
        );
    }

    /// Pushes the image's blobs, and its manifest as `reference` (a tag, or its digest).
    pub fn image(&self, repo: &str, reference: &str, image: &Image) {
        for layer in &image.layers {
            self.blob(repo, &layer.blob);
        }
        self.blob(repo, &image.config);
        self.manifest(repo, reference, image.media_type, &image.manifest);
    }

    /// Deletes the blob from the repository (the registry then answers 404 for it).
    pub fn delete_blob(&self, repo: &str, digest: &Digest) {
        let response = self
            .auth(
                self.client
                    .delete(format!("{}/v2/{repo}/blobs/{digest}", self.base)),
            )
            .send()
            .expect("DELETE blob");
        assert_eq!(
            response.status().as_u16(),
            202,
            "delete: {}",
            response.text().unwrap_or_default()
        );
    }
}
