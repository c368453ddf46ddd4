//! Content addresses: `sha256:<64 lowercase hex digits>`.
//!
//! An image names every piece of itself by the hash of its bytes: the manifest names the
//! config and the layers by digest, and a reference may name the manifest by digest. So
//! whatever comes from a registry or an archive is trusted only once its bytes hash to
//! the digest that named them. [`Verifier`] hashes bytes *while* they stream through it
//! and checks at the end, so that a blob is verified as it is written, never read twice,
//! and a layer's `diff_id` (the digest of its uncompressed tar) is checked while the
//! layer is unpacked.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use anyhow::{Result, bail};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, the only algorithm images use in practice (OCI also defines
/// `sha512`, which no registry or builder writes; keel refuses it with a clear error
/// rather than carrying code nobody exercises).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// 64 lowercase hex digits.
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex digits>`.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            bail!("digest {text:?} has no algorithm: write it as sha256:<64 hex digits>");
        };
        if algorithm != "sha256" {
            bail!(
                "digest {text:?} uses the algorithm {algorithm:?}: keel knows only sha256 \
                 (write it as sha256:<64 hex digits>)"
            );
        }
        Self::from_hex(hex).map_err(|err| anyhow::anyhow!("digest {text:?}: {err}"))
    }

    /// A digest from its 64 hex digits alone (a file name in the store).
    pub fn from_hex(hex: &str) -> Result<Self> {
        if hex.len() != 64 {
            bail!(
                "a sha256 digest has 64 hex digits, this one has {}",
                hex.len()
            );
        }
        if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            bail!("{bad:?} is not a lowercase hex digit (0-9, a-f)");
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        let hex = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self { hex }
    }

    /// The 64 hex digits, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm: always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = anyhow::Error;
    fn try_from(digest: &oci_spec::image::Digest) -> Result<Self> {
        Self::parse(digest.as_ref())
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(digest: &Digest) -> Self {
        // A valid sha256 digest is always a valid OCI digest.
        oci_spec::image::Sha256Digest::from_str(digest.hex())
            .map(Into::into)
            .unwrap_or_else(|_| unreachable!("64 lowercase hex digits are a sha256 digest"))
    }
}

/// Hashes what passes through it, as a [`Read`] or a [`Write`] adaptor, and counts it.
/// [`Verifier::finish`] then says whether it was what was expected.
#[derive(Debug)]
pub struct Verifier<T> {
    inner: T,
    hasher: Sha256,
    size: u64,
}

impl<T> Verifier<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// How many bytes went through so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of what went through, and `inner` back.
    pub fn digest(self) -> (Digest, T) {
        (Digest::from_hasher(self.hasher), self.inner)
    }

    /// Checks what went through against `expected` and, when known, `size`; returns
    /// `inner` if both match. `what` names the content in the error ("layer 2 of
    /// alpine", "the manifest").
    pub fn finish(self, expected: &Digest, size: Option<u64>, what: &str) -> Result<T> {
        // ANCHOR: verify_digest
        // EXERCISE: refuse (bail!, naming `what`) a size that differs from `size` when it is known, then compute the digest of what went through (self.digest()) and refuse it unless it is `expected`; return the inner value
        if let Some(size) = size
            && size != self.size
        {
            bail!(
                "{what}: expected {size} bytes, got {}: the source is truncated, or is not \
                 what its descriptor says",
                self.size
            );
        }
        let got_size = self.size;
        let (got, inner) = self.digest();
        if &got != expected {
            bail!(
                "{what}: its {got_size} bytes hash to {got}, not to {expected}: the content \
                 is corrupt or was tampered with; nothing of it was kept"
            );
        }
        Ok(inner)
        // ANCHOR_END: verify_digest
    }
}

impl<R: Read> Read for Verifier<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Verifier<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn of_empty_is_the_known_value() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(Digest::parse(EMPTY).unwrap(), Digest::of(b""));
    }

    #[test]
    fn parse_refuses_what_is_not_sha256_hex() {
        let cases = [
            ("e3b0c442", "no algorithm"),
            ("sha512:abcd", "knows only sha256"),
            ("sha256:abc", "64 hex digits"),
            (
                &EMPTY.to_uppercase().replace("SHA256", "sha256"),
                "lowercase hex",
            ),
            (&EMPTY.replace('e', "g"), "lowercase hex"),
        ];
        for (text, why) in cases {
            let err = Digest::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn converts_to_and_from_oci_spec() {
        let ours = Digest::of(b"x");
        let theirs = oci_spec::image::Digest::from(&ours);
        assert_eq!(theirs.to_string(), ours.to_string());
        assert_eq!(Digest::try_from(&theirs).unwrap(), ours);
    }

    #[test]
    fn writer_verifies_while_writing() {
        let mut w = Verifier::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let out = w.finish(&Digest::of(b"hello"), Some(5), "blob").unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn writer_refuses_wrong_digest_and_wrong_size() {
        let mut w = Verifier::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let err = w.finish(&Digest::of(b"world"), None, "blob").unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");

        let mut w = Verifier::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let err = w
            .finish(&Digest::of(b"hello"), Some(6), "blob")
            .unwrap_err();
        assert!(err.to_string().contains("expected 6 bytes, got 5"), "{err}");
    }

    #[test]
    fn reader_hashes_what_is_read() {
        let mut r = Verifier::new(&b"some bytes"[..]);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(r.size(), 10);
        assert_eq!(r.digest().0, Digest::of(b"some bytes"));
    }
}
