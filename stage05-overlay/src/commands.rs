//! Stage 5's own subcommands: the images in the store.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::digest::Digest;
use crate::image::Image;
use crate::pull::{Platform, Progress, PullOptions};
use crate::reference::Reference;
use crate::store::Store;
use crate::userns::as_container_root;

/// `pull`, `images`, `import`, `inspect`, `rmi`.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Pull an image from a registry (docker's names: alpine, user/app:1, localhost:5000/x).
    Pull {
        /// The image.
        image: String,
        /// Verify the registry's TLS certificate (registries on loopback speak plain HTTP anyway).
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
        tls_verify: bool,
        /// Credentials (docker's config.json format) instead of $REGISTRY_AUTH_FILE or ~/.docker/config.json.
        #[arg(long, value_name = "PATH")]
        authfile: Option<PathBuf>,
        /// The platform to pick from a multi-platform image: OS/ARCH[/VARIANT] (default: this machine's).
        #[arg(long, value_name = "OS/ARCH")]
        platform: Option<String>,
        /// No progress, only the result.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the images in the store.
    Images,
    /// Import images: an OCI image layout directory, an image archive (docker save, oci-archive), or a root filesystem tarball.
    Import {
        /// The layout directory, the archive or the tarball.
        path: PathBuf,
        /// The name to give it (default: the names the archive gives its images; else the file's name, tag latest).
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
            Commands::Pull {
                image,
                tls_verify,
                authfile,
                platform,
                quiet,
            } => {
                let options = PullOptions {
                    tls_verify,
                    auth_file: authfile,
                    progress: progress(quiet),
                    platform: match platform {
                        Some(text) => text.parse()?,
                        None => Platform::default(),
                    },
                    ..PullOptions::default()
                };
                let reference: Reference = image.parse()?;
                let digest = pull(&store, &reference, options)?;
                println!("{reference} {digest}");
                Ok(())
            }
            Commands::Images => images(&store),
            Commands::Import { path, name } => import(&store, &path, name.as_deref()),
            Commands::Inspect { image } => inspect(&store, &image),
            Commands::Rmi { images } => rmi(&store, &images),
        });
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("{}: {err:#}", common::program::name());
            common::exit::RUNTIME_FAILED
        }
    }
}

/// `docker images`: each name, its manifest's digest (shortened, as docker shows an
/// image ID), and the size of its layers as stored.
/// Bars on a terminal, lines otherwise, nothing with `-q`.
pub fn progress(quiet: bool) -> Progress {
    if quiet {
        Progress::Quiet
    } else if nix::unistd::isatty(std::io::stderr()).unwrap_or(false) {
        Progress::Bars
    } else {
        Progress::Lines
    }
}

// ANCHOR: pull_command
/// Pulls `reference` and unpacks its layers as they arrive, as the containers' root
/// (rootless, the layers' files belong to subordinate ids); returns its manifest's
/// digest.
pub fn pull(store: &Store, reference: &Reference, mut options: PullOptions) -> Result<Digest> {
    options.unpack = Some(crate::unpack::Options {
        rootless: !nix::unistd::geteuid().is_root(),
    });
    let root = store.root().to_owned();
    let wanted = reference.clone();
    as_container_root(&format!("pulling {reference}"), move || {
        let store = Store::open(root)?;
        crate::pull::pull(&store, &wanted, &options).map(drop)
    })?;
    store
        .resolve(reference)?
        .with_context(|| format!("{reference} was pulled, yet the store does not name it"))
}
// ANCHOR_END: pull_command

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

/// `import PATH [NAME]`: a directory is an OCI image layout; a file is an image
/// archive, or else a rootfs tarball (told by what it holds).
fn import(store: &Store, path: &std::path::Path, name: Option<&str>) -> Result<()> {
    let reference = name.map(Reference::parse).transpose()?;
    let imported = if path.is_dir() {
        let reference = match reference {
            Some(reference) => reference,
            None => crate::import::name_from_file(path)?,
        };
        let digest = crate::import::import_layout(store, path, &reference)?;
        vec![(reference, digest)]
    } else {
        crate::import::import_archive(store, path, reference.as_ref())?
    };
    for (reference, digest) in imported {
        println!("{reference} {digest}");
    }
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
            anyhow::bail!(
                "no image {reference} here (see `{} images`)",
                common::program::name()
            );
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
