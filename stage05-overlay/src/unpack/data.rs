//! A regular file's bytes, copied in large pieces.

use std::fs::File;
use std::io::{self, Read, Write};

/// The piece a file's bytes are copied in: one `write` per 256 KiB rather than per
/// 8 KiB (`io::copy`'s), and as large a piece for the decompressor to fill at a time.
/// About a tenth off a pull's time (`cargo xtask bench image`).
const PIECE: usize = 256 << 10;

/// Copies files' bytes through one buffer, reused.
pub(crate) struct Copier {
    buf: Vec<u8>,
}

impl Copier {
    pub(crate) fn new() -> Self {
        Self {
            buf: vec![0; PIECE],
        }
    }

    /// Copies all of `from` into `to`.
    pub(crate) fn copy(&mut self, from: &mut impl Read, to: &mut File) -> io::Result<()> {
        loop {
            let n = match from.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            to.write_all(&self.buf[..n])?;
        }
    }
}
