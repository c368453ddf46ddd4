//! The image `cargo xtask bench image` pulls and unpacks, built rather than
//! downloaded (the machines have no internet): a busybox layer, so that `/bin/true`
//! runs, and five layers of about 25 MiB of generated files each.
//!
//! The files are a mix, so that gzip and the unpackers do the work a real image asks
//! of them: text (source- and log-like lines, which gzip shrinks several times), binary
//! with structure (small integers and recurring words, as in code and data files,
//! which it halves) and random bytes (which it cannot shrink); sizes from a few hundred
//! bytes to half a MiB, many small ones, as in a distribution's `/usr`. The content is
//! the same on every run: a fixed seed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

// The graders' OCI layout writer (layers gzipped, config, manifest, index). Only its
// layout writer is used here; its hostile entries are the graders' business.
#[path = "../../../tests/src/oci.rs"]
#[allow(dead_code)]
mod oci;

/// Layers of generated files above the busybox one.
const LAYERS: usize = 5;

/// Bytes of files in each generated layer.
const LAYER_BYTES: u64 = 25 << 20;

/// File sizes are drawn log-uniformly between these: most files small, most bytes in
/// the larger ones.
const SMALLEST: f64 = 256.0;
const LARGEST: f64 = 512.0 * 1024.0;

/// Files per directory, as package trees spread them.
const FILES_PER_DIR: usize = 40;

/// One layer of the image, as `build` reports it.
#[derive(Debug)]
pub struct Layer {
    /// The gzipped blob in the layout.
    pub blob: PathBuf,
    pub gzipped: u64,
    /// The size of its tar, and how many files the tar holds.
    pub tar: u64,
    pub files: usize,
}

/// Builds the image as an OCI layout in `layout`, its first layer the busybox root
/// filesystem `base`; returns its layers, bottom first.
pub fn build(layout: &Path, base: &Path) -> Result<Vec<Layer>> {
    let mut tars = vec![directory_tar(base)?];
    let mut files = vec![count_files(&tars[0])?];
    let mut random = SplitMix(0x6b65_656c_2d62_656e);
    for n in 1..=LAYERS {
        let (tar, count) = generated_tar(n, &mut random)?;
        tars.push(tar);
        files.push(count);
    }
    fs::create_dir_all(layout)?;
    // The graders' writer reports failures by panicking: only a full or failing disk
    // can make it fail here, as the layout is a fresh directory of ours.
    let config = json!({
        "Cmd": ["/bin/sh"],
        "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    });
    let manifest = oci::write_layout(layout, &tars, config);
    let descriptors = layer_descriptors(layout, &manifest)?;
    let layers = descriptors
        .into_iter()
        .zip(tars.iter().zip(files))
        .map(|((blob, gzipped), (tar, files))| Layer {
            blob,
            gzipped,
            tar: tar.len() as u64,
            files,
        })
        .collect();
    Ok(layers)
}

/// The blob path and size of each layer the manifest `digest` lists, in order.
fn layer_descriptors(layout: &Path, digest: &str) -> Result<Vec<(PathBuf, u64)>> {
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let path = blob(digest);
    let text = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Value = serde_json::from_slice(&text)?;
    let layers = manifest["layers"]
        .as_array()
        .context("the manifest lists no layers")?;
    layers
        .iter()
        .map(|layer| {
            let digest = layer["digest"].as_str().context("a layer without digest")?;
            let size = layer["size"].as_u64().context("a layer without size")?;
            Ok((blob(digest), size))
        })
        .collect()
}

/// A tar of the directory `dir`, symlinks kept as symlinks.
fn directory_tar(dir: &Path) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .with_context(|| format!("making a layer of {}", dir.display()))?;
    Ok(tar.into_inner()?)
}

/// How many regular files `tar` holds.
fn count_files(tar: &[u8]) -> Result<usize> {
    let mut count = 0;
    for entry in tar::Archive::new(tar).entries()? {
        if entry?.header().entry_type().is_file() {
            count += 1;
        }
    }
    Ok(count)
}

/// The `n`th generated layer: [`LAYER_BYTES`] of files under `usr/share/bench/layerN`.
/// Returns the tar and its number of files.
fn generated_tar(n: usize, random: &mut SplitMix) -> Result<(Vec<u8>, usize)> {
    let mut tar = tar::Builder::new(Vec::new());
    let top = format!("usr/share/bench/layer{n}");
    for dir in ["usr", "usr/share", "usr/share/bench", top.as_str()] {
        append_dir(&mut tar, dir)?;
    }
    let (mut written, mut files) = (0u64, 0usize);
    let mut content = Vec::new();
    while written < LAYER_BYTES {
        if files.is_multiple_of(FILES_PER_DIR) {
            append_dir(&mut tar, &format!("{top}/d{:03}", files / FILES_PER_DIR))?;
        }
        let size = random
            .log_uniform(SMALLEST, LARGEST)
            .min(LAYER_BYTES - written);
        let (kind, mode) = match random.below(20) {
            0..9 => (Kind::Text, 0o644),
            9..16 => (Kind::Structured, 0o755),
            _ => (Kind::Random, 0o644),
        };
        content.clear();
        kind.fill(&mut content, size as usize, random);
        let name = format!(
            "{top}/d{:03}/f{files:05}.{}",
            files / FILES_PER_DIR,
            kind.extension()
        );
        let mut header = header(tar::EntryType::Regular, mode, content.len() as u64);
        tar.append_data(&mut header, &name, content.as_slice())?;
        written += size;
        files += 1;
    }
    Ok((tar.into_inner()?, files))
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, name: &str) -> Result<()> {
    let mut header = header(tar::EntryType::Directory, 0o755, 0);
    Ok(tar.append_data(&mut header, name, std::io::empty())?)
}

/// A header owned by root, with a fixed time: the same bytes on every run.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header
}

/// What a generated file holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Structured,
    Random,
}

/// Words of the text files: source code and log lines.
const WORDS: &[&str] = &[
    "fn",
    "let",
    "mut",
    "return",
    "if",
    "else",
    "for",
    "while",
    "match",
    "struct",
    "impl",
    "self",
    "true",
    "false",
    "None",
    "Some",
    "Ok",
    "Err",
    "error",
    "warning",
    "info",
    "debug",
    "request",
    "response",
    "status",
    "path",
    "user",
    "config",
    "value",
    "buffer",
    "length",
    "index",
    "count",
    "layer",
    "image",
    "container",
    "network",
    "mount",
    "process",
    "thread",
    "=",
    "==",
    "->",
    "=>",
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    "the",
    "a",
    "of",
    "to",
    "in",
    "is",
];

impl Kind {
    fn extension(self) -> &'static str {
        match self {
            Kind::Text => "txt",
            Kind::Structured => "bin",
            Kind::Random => "dat",
        }
    }

    /// Appends `size` bytes of this kind to `out`.
    fn fill(self, out: &mut Vec<u8>, size: usize, random: &mut SplitMix) {
        let end = out.len() + size;
        match self {
            Kind::Text => {
                while out.len() < end {
                    let indent = random.below(4) as usize * 4;
                    out.extend(std::iter::repeat_n(b' ', indent));
                    for _ in 0..3 + random.below(9) {
                        if random.below(6) == 0 {
                            out.extend_from_slice(random.below(100_000).to_string().as_bytes());
                        } else {
                            let word = WORDS[random.below(WORDS.len() as u64) as usize];
                            out.extend_from_slice(word.as_bytes());
                        }
                        out.push(b' ');
                    }
                    out.push(b'\n');
                }
            }
            Kind::Structured => {
                // Recurring words, as opcodes and pointers recur in code.
                let common: Vec<u32> = (0..32).map(|_| random.next() as u32).collect();
                while out.len() < end {
                    let word = match random.below(10) {
                        0..5 => random.below(256) as u32,
                        5..8 => common[random.below(32) as usize],
                        _ => random.next() as u32,
                    };
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
            Kind::Random => {
                while out.len() < end {
                    out.extend_from_slice(&random.next().to_le_bytes());
                }
            }
        }
        out.truncate(end);
    }
}

/// SplitMix64: a small, fast generator; the same seed gives the same image.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A size between `low` and `high`, log-uniformly.
    fn log_uniform(&mut self, low: f64, high: f64) -> u64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (low * (high / low).powf(unit)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_fill_exactly_and_compress_as_meant() {
        let mut random = SplitMix(1);
        let ratio = |kind: Kind, random: &mut SplitMix| {
            let mut bytes = Vec::new();
            kind.fill(&mut bytes, 1 << 20, random);
            assert_eq!(bytes.len(), 1 << 20);
            oci::gzip(&bytes).len() as f64 / bytes.len() as f64
        };
        assert!(ratio(Kind::Text, &mut random) < 0.4);
        let structured = ratio(Kind::Structured, &mut random);
        assert!((0.3..0.8).contains(&structured), "{structured}");
        assert!(ratio(Kind::Random, &mut random) > 0.99);
    }

    #[test]
    fn sizes_stay_within_bounds() {
        let mut random = SplitMix(2);
        for _ in 0..1000 {
            let size = random.log_uniform(SMALLEST, LARGEST);
            assert!((SMALLEST as u64..=LARGEST as u64).contains(&size));
        }
    }
}
