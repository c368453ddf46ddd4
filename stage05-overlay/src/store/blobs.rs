//! Blobs: `blobs/sha256/<hex>`, each verified against its name before it gets it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use super::Store;
use crate::digest::{Digest, Verifier};

impl Store {
    /// Where the blob `digest` is, or would be.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the store has the blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    // ANCHOR: put_blob
    /// Stores what `reader` gives as the blob `expected`, verifying it while writing:
    /// its digest, and its size when known (a descriptor always says it). Content that
    /// does not match is refused and nothing of it stays. A blob already there is not
    /// read again.
    pub fn put_blob(
        &self,
        reader: impl Read,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<PathBuf> {
        let dest = self.blob_path(expected);
        if dest.is_file() {
            return Ok(dest);
        }
        let (staged, file) = self.staged_file()?;
        let mut writer = Verifier::new(BufWriter::new(file));
        // Never read more than the descriptor promised: a source that goes on is wrong,
        // and must not fill the disk before it is found out.
        let limit = size.map_or(u64::MAX, |size| size.saturating_add(1));
        io::copy(&mut reader.take(limit), &mut writer)
            .with_context(|| format!("writing the blob {expected}"))?;
        let what = format!("blob {expected}");
        let file = writer
            .finish(expected, size, &what)?
            .into_inner()
            .map_err(|err| err.into_error())
            .with_context(|| format!("writing the blob {expected}"))?;
        // Read-only: a blob is its digest, and nothing may change it in place.
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("flushing the blob {expected}"))?;
        drop(file);
        staged.put(&dest)?;
        Ok(dest)
    }
    // ANCHOR_END: put_blob

    /// Stores `bytes` as a blob and returns its digest: for what keel writes itself
    /// (a manifest or config made by an import).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        self.put_blob(bytes, &digest, Some(bytes.len() as u64))?;
        Ok(digest)
    }

    /// Opens the blob `digest`.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).with_context(|| {
            format!(
                "opening the blob {digest} ({}): is the image whole?",
                path.display()
            )
        })
    }

    /// The size of the blob `digest`.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        Ok(fs::metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?
            .len())
    }

    /// Reads the blob `digest` as JSON (a manifest, an index, a config).
    pub fn read_json<T: DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading the blob {digest}"))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the blob {digest} is not the JSON expected ({})",
                std::any::type_name::<T>()
            )
        })
    }

    /// Every blob's digest.
    pub(crate) fn blobs(&self) -> Result<Vec<Digest>> {
        hex_names(&self.root.join("blobs/sha256"))
    }
}

/// The names of `dir` that are digests' hex digits; others are not ours.
pub(crate) fn hex_names(dir: &std::path::Path) -> Result<Vec<Digest>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(digest) = entry
            .file_name()
            .to_str()
            .and_then(|n| Digest::from_hex(n).ok())
        {
            found.push(digest);
        }
    }
    Ok(found)
}
