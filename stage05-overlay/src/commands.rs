//! Stage 5's own subcommands: the images in the store.

use std::path::PathBuf;

use anyhow::Result;
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

fn images(store: &Store) -> Result<()> {
    println!("{:<50} {:<20} {:>10}", "IMAGE", "MANIFEST", "SIZE");
    for image in store.images()? {
        println!(
            "{:<50} {:<20} {:>10}",
            image.reference.to_string(),
            image.digest.hex().get(..12).unwrap_or_default(),
            image.size
        );
    }
    Ok(())
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
