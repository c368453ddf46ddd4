//! Stage 5's own subcommands: the images in the store.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::image::Image;
use crate::reference::Reference;
use crate::store::Store;
use crate::userns::as_container_root;

/// `images`, `import`, `inspect`, `rmi`.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// List the images in the store.
    Images,
    /// Import an image: an OCI image layout directory, or a root filesystem tarball.
    Import {
        /// The layout directory or the tarball.
        path: PathBuf,
        /// The name to give it (default: the file's name, tag latest).
        name: Option<String>,
    },
    /// Print an image's manifest digest, layers and config as JSON.
    Inspect {
        /// The image.
        image: String,
    },
    /// Remove images, and every layer no other image uses.
    Rmi {
        /// The images.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// Runs `command`; returns the exit code.
pub fn run(command: Commands) -> i32 {
    let result = Store::default_root()
        .and_then(Store::open)
        .and_then(|store| match command {
            Commands::Images => images(&store),
            Commands::Import { path, name } => import(&store, &path, name.as_deref()),
            Commands::Inspect { image } => inspect(&store, &image),
            Commands::Rmi { images } => rmi(&store, &images),
        });
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("{}: {err:#}", crate::NAME);
            common::exit::RUNTIME_FAILED
        }
    }
}

/// `docker images`: each name, its manifest's digest (shortened, as docker shows an
/// image ID), and the size of its layers as stored.
fn images(store: &Store) -> Result<()> {
    println!("{:<44} {:<14} {:>10}", "IMAGE", "MANIFEST", "SIZE");
    for listed in store.images()? {
        let size = Image::load(store, &listed.reference)
            .map(|image| {
                image
                    .layers
                    .iter()
                    .filter_map(|layer| store.blob_size(&layer.blob).ok())
                    .sum::<u64>()
            })
            .unwrap_or(0);
        println!(
            "{:<44} {:<14} {:>10}",
            listed.reference.to_string(),
            listed.digest.hex().get(..12).unwrap_or_default(),
            human(size)
        );
    }
    Ok(())
}

/// `1.9MB`, as docker writes sizes (powers of 1000).
fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", units[unit])
    }
}

fn import(store: &Store, path: &std::path::Path, name: Option<&str>) -> Result<()> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .map(|stem| stem.trim_end_matches(".tar").to_lowercase())
            .context("name the image: import PATH NAME")?,
    };
    let reference: Reference = name.parse()?;
    let digest = if path.is_dir() {
        crate::import::import_layout(store, path, &reference)?
    } else {
        crate::import::import_rootfs(store, path, &reference)?
    };
    println!("{reference} {digest}");
    Ok(())
}

fn inspect(store: &Store, name: &str) -> Result<()> {
    let image = Image::load(store, &name.parse()?)?;
    let layers: Vec<_> = image
        .layers
        .iter()
        .map(|l| serde_json::json!({"blob": l.blob.to_string(), "diff_id": l.diff_id.to_string()}))
        .collect();
    let json = serde_json::json!({
        "reference": image.reference.to_string(),
        "manifest": image.manifest.to_string(),
        "layers": layers,
        "config": image.config,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

fn rmi(store: &Store, names: &[String]) -> Result<()> {
    for name in names {
        let reference: Reference = name.parse()?;
        if !store.remove(&reference)? {
            anyhow::bail!("no image {reference} here (see `{} images`)", crate::NAME);
        }
        println!("untagged {reference}");
    }
    // Rootless, the layers' files belong to subordinate ids: removed as their root.
    let root = store.root().to_owned();
    as_container_root("removing unused layers", move || {
        let collected = Store::open(root)?.gc()?;
        for digest in collected.layers {
            println!("deleted layer {digest}");
        }
        Ok(())
    })
}
