//! The parts of `cargo xtask bench image` that run as optimised code of their own:
//!
//! - `keel-bench-image build BASE LAYOUT`: writes the benchmark's image (see [`image`])
//!   as an OCI layout, its first layer the busybox root filesystem `BASE`, and prints
//!   its layers as JSON;
//! - `keel-bench-image unpack BLOB DIR`: applies the layer `BLOB` into the empty
//!   directory `DIR` with keel's unpacker, `stage05_overlay::unpack::apply_layer`, as
//!   a pull does. Timed from outside, as a process, like the `tar -xzf` it is compared
//!   with.

mod image;

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use stage02_mountns::at::At;
use stage05_overlay::unpack::{Options, apply_layer};

const USAGE: &str = "usage: keel-bench-image build BASE LAYOUT | unpack BLOB DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["build", base, layout] => build(Path::new(base), Path::new(layout)),
        ["unpack", blob, dir] => unpack(Path::new(blob), Path::new(dir)),
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keel-bench-image: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn build(base: &Path, layout: &Path) -> Result<()> {
    if !base.join("bin/busybox").is_file() {
        bail!(
            "{} holds no bin/busybox: give a busybox root filesystem",
            base.display()
        );
    }
    if layout.exists() {
        bail!("{} exists already: give a new directory", layout.display());
    }
    let layers = image::build(layout, base)?;
    let json: Vec<_> = layers
        .iter()
        .map(|layer| {
            serde_json::json!({
                "blob": layer.blob,
                "gzipped": layer.gzipped,
                "tar": layer.tar,
                "files": layer.files,
            })
        })
        .collect();
    println!("{}", serde_json::Value::Array(json));
    Ok(())
}

fn unpack(blob: &Path, dir: &Path) -> Result<()> {
    let dest = At::open_dir(dir)?;
    let file = File::open(blob).with_context(|| format!("opening {}", blob.display()))?;
    // Rootless, keel's unpacker skips what only root may make (device nodes,
    // `trusted.*` xattrs), as a user's pull does.
    let options = Options {
        rootless: !nix::unistd::geteuid().is_root(),
    };
    apply_layer(file, &dest, &[], &options)
        .with_context(|| format!("unpacking {} into {}", blob.display(), dir.display()))?;
    Ok(())
}
