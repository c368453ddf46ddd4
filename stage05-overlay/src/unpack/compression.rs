//! A layer blob is a tar, gzipped, zstd-compressed, or neither; its media type says
//! which, but the first bytes say it for sure (media types of docker's and OCI's
//! differ, and some registries get them wrong), so keel reads those.

use std::io::{self, Cursor, Read};

use anyhow::{Result, bail};

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2: &[u8] = b"BZh";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The uncompressed tar of `blob`.
pub(crate) fn decompress<'a>(blob: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    detect(blob).map(|(_, tar)| tar)
}

/// How `blob` is compressed, and its uncompressed tar.
pub(crate) fn detect<'a>(mut blob: impl Read + 'a) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = [0u8; 6];
    let mut len = 0;
    while len < head.len() {
        match blob.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(anyhow::Error::new(err).context("reading the layer")),
        }
    }
    let head = &head[..len];
    let whole = Cursor::new(head.to_vec()).chain(blob);
    Ok(if head.starts_with(GZIP) {
        // Multi-member: pigz and some builders write gzip in several members.
        let tar = flate2::read::MultiGzDecoder::new(whole);
        (Compression::Gzip, Box::new(tar))
    } else if head.starts_with(ZSTD) {
        (
            Compression::Zstd,
            Box::new(zstd::stream::read::Decoder::new(whole)?),
        )
    } else if head.starts_with(XZ) || head.starts_with(BZIP2) {
        bail!(
            "the layer is compressed with {}, which OCI images do not use: keel reads \
             layers that are plain tar, gzip or zstd",
            if head.starts_with(XZ) { "xz" } else { "bzip2" }
        )
    } else {
        (Compression::None, Box::new(whole))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn round_trip(blob: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(&blob[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn each_format_is_told_by_its_magic() {
        let tar = b"not really a tar, but bytes".to_vec();
        assert_eq!(round_trip(tar.clone()), tar);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        assert_eq!(round_trip(gz.finish().unwrap()), tar);

        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        assert_eq!(round_trip(zst), tar);

        assert!(round_trip(Vec::new()).is_empty());
        assert_eq!(round_trip(vec![0x1f]), vec![0x1f]);
    }

    #[test]
    fn xz_and_bzip2_are_refused_by_name() {
        let err = decompress(&b"\xfd7zXZ\0rest"[..])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("xz"), "{err}");
        let err = decompress(&b"BZh91AY"[..]).err().unwrap().to_string();
        assert!(err.contains("bzip2"), "{err}");
    }
}
