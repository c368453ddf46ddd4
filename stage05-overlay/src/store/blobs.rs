//! Blobs: `blobs/sha256/<hex>`, each verified against its name before it gets it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use super::Store;
use super::staging::Staged;
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
        let mut writer = self.blob_writer(expected, size)?;
        // Never read more than the descriptor promised: a source that goes on is wrong,
        // and must not fill the disk before it is found out.
        let limit = size.map_or(u64::MAX, |size| size.saturating_add(1));
        io::copy(&mut reader.take(limit), &mut BufWriter::new(&mut writer))
            .with_context(|| format!("writing the blob {expected}"))?;
        writer.commit()
    }
    // ANCHOR_END: put_blob

    /// A writer of the blob `expected`, for bytes that arrive in pieces (a download
    /// that may be resumed). See [`BlobWriter`].
    pub fn blob_writer(&self, expected: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        let (staged, file) = self.staged_file()?;
        Ok(BlobWriter {
            staged,
            file: Verifier::new(file),
            expected: expected.clone(),
            size,
            dest: self.blob_path(expected),
        })
    }

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

/// A blob being written in `tmp/`: bytes are appended as they come (and hashed on the
/// way), and [`BlobWriter::commit`] puts the blob in place if they are what its digest
/// says. Dropped without a commit, it leaves nothing.
///
/// Writes are not buffered here, so what [`BlobWriter::written`] counts is in the file:
/// a download resumes from there, and [`BlobWriter::reader`] may read up to there while
/// the writing goes on (a layer unpacked while it downloads).
#[derive(Debug)]
pub struct BlobWriter {
    staged: Staged,
    file: Verifier<File>,
    expected: Digest,
    size: Option<u64>,
    dest: PathBuf,
}

impl BlobWriter {
    /// How many bytes were written so far.
    pub fn written(&self) -> u64 {
        self.file.size()
    }

    /// A second, independent handle on the file being written, to read it meanwhile.
    pub fn reader(&self) -> Result<File> {
        File::open(self.staged.path())
            .with_context(|| format!("opening {}", self.staged.path().display()))
    }

    /// Checks the digest and size, makes the blob read-only and durable, and renames it
    /// to its name in `blobs/`.
    pub fn commit(self) -> Result<PathBuf> {
        let expected = &self.expected;
        let file = self
            .file
            .finish(expected, self.size, &format!("blob {expected}"))?;
        // Read-only: a blob is its digest, and nothing may change it in place.
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("flushing the blob {expected}"))?;
        drop(file);
        self.staged.put(&self.dest)?;
        Ok(self.dest)
    }
}

impl Write for BlobWriter {
    /// Appends `buf`; more than the descriptor's size is refused (a source that goes on
    /// must not fill the disk before it is found out).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(size) = self.size
            && self.written() + buf.len() as u64 > size
        {
            return Err(io::Error::other(format!(
                "blob {}: expected {size} bytes, got {} or more: the source is not what its \
                 descriptor says",
                self.expected,
                self.written() + buf.len() as u64
            )));
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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
