//! The image that works offline: `busybox`, made from the host's static busybox.
//!
//! A fresh machine without a network can still run an image: the first time `busybox`
//! is asked for and the store lacks it, keel builds a root filesystem around the host's
//! `/bin/busybox` (Debian's `busybox-static`: one static program that is `sh`, `ls`,
//! `wget` and some 300 more, by the name it is called with) and imports it as a
//! one-layer image, as `docker import` would. `pull busybox` on a machine with a
//! network replaces it with Docker Hub's.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::image::Image;
use crate::reference::Reference;
use crate::store::Store;

/// The name `run` uses without one.
pub const NAME: &str = "busybox";

/// Where the static busybox is.
const BUSYBOX: &str = "/bin/busybox";

/// The image `reference`, as `docker run` finds it: from the store; if the store lacks
/// it, the offline busybox is made for `busybox`, and any other image is pulled.
pub fn load_or_import(store: &Store, reference: &Reference) -> Result<Image> {
    if store.resolve(reference)?.is_none() {
        let default: Reference = NAME.parse()?;
        if reference == &default {
            import(store, reference)?;
        } else {
            eprintln!(
                "{}: {reference} is not here: pulling it",
                common::program::name()
            );
            let options = crate::pull::PullOptions {
                progress: crate::commands::progress(false),
                ..crate::pull::PullOptions::default()
            };
            crate::commands::pull(store, reference, options).with_context(|| {
                format!(
                    "no image {reference} here, and pulling it failed (pull it first, or import it)"
                )
            })?;
        }
    }
    Image::load(store, reference)
}

// ANCHOR: busybox_image
/// Builds the busybox root filesystem as a tarball and imports it as `reference`.
pub fn import(store: &Store, reference: &Reference) -> Result<()> {
    let applets = applets()?;
    let staging = tempfile::Builder::new()
        .prefix("busybox-")
        .tempfile_in(store.root())
        .context("a temporary file in the store")?;
    let mut tar = tar::Builder::new(staging.reopen()?);
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("var", 0o755),
    ] {
        let mut header = new_header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut header, dir, std::io::empty())?;
    }
    let program = File::open(BUSYBOX).with_context(|| format!("opening {BUSYBOX}"))?;
    let size = program.metadata()?.len();
    let mut header = new_header(tar::EntryType::Regular, 0o755, size);
    tar.append_data(&mut header, "bin/busybox", program)?;
    for applet in applets.iter().filter(|a| a.as_str() != "busybox") {
        let mut header = new_header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
    }
    for (name, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hosts", ""),
        ("etc/hostname", ""),
        ("etc/resolv.conf", ""),
    ] {
        let mut header = new_header(tar::EntryType::Regular, 0o644, text.len() as u64);
        tar.append_data(&mut header, name, text.as_bytes())?;
    }
    tar.into_inner()?.flush()?;
    crate::import::import_rootfs(store, staging.path(), reference)?;
    eprintln!(
        "{}: imported {reference} from the host's {BUSYBOX} (it works offline)",
        common::program::name()
    );
    Ok(())
}
// ANCHOR_END: busybox_image

/// A header owned by root, of `kind`, `mode` and `size`.
fn new_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// The names busybox answers to (`busybox --list`).
fn applets() -> Result<Vec<String>> {
    if !Path::new(BUSYBOX).exists() {
        bail!(
            "{BUSYBOX} is missing: the offline busybox image is made from it; install it \
             (apt-get install busybox-static), or pull an image"
        );
    }
    let out = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .with_context(|| format!("running {BUSYBOX} --list"))?;
    if !out.status.success() {
        bail!("{BUSYBOX} --list failed: is it busybox?");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .map(str::to_owned)
        .collect())
}
