//! Stage 5: stage 4 plus images.
//!
//! `run IMAGE [CMD...]` runs a command on an image: its layers, unpacked once into a
//! content-addressed store and shared, are stacked by OverlayFS under a writable
//! directory of the container's own, and that overlay is the container's root.
//!
//! - [`reference`]: image references, read as docker reads them;
//! - [`digest`]: content addresses, and bytes verified while they stream;
//! - [`store`]: the content-addressed store of blobs, unpacked layers and names;
//! - [`unpack`]: layers applied into directories, whiteouts and all, safely;
//! - [`import`]: images from an OCI image layout, an image archive (`docker save`,
//!   `oci-archive`) or a rootfs tarball;
//! - [`pull`]: images from a registry;
//! - [`busybox`]: the image that works offline;
//! - [`image`], [`config`], [`container`], [`overlay`]: an image run as a container;
//! - [`userns`]: the store's work done as the containers' root, rootless.

pub mod busybox;
pub mod commands;
pub mod config;
pub mod container;
pub mod digest;
pub mod doctor;
pub mod driver;
pub mod fuse;
pub mod image;
pub mod import;
pub mod overlay;
pub mod pull;
pub mod reference;
pub mod store;
pub mod unpack;
pub mod user;
pub mod userns;

use anyhow::Result;
use common::doctor::Report;
use common::{Layer, Stage};
use stage04_net::Stage04;

/// The binary's name, for messages.
pub const NAME: &str = "stage05-overlay";

/// Options of stage 5: stage 4's, plus the image's.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage05")]
pub struct Args {
    #[command(flatten)]
    pub stage04: stage04_net::Args,
    /// Remove the container's writable layer when it exits.
    #[arg(long, help_heading = "Stage 5: an image")]
    pub rm: bool,
    /// Run this program instead of the image's entrypoint ("" for none).
    #[arg(long, value_name = "PROGRAM", help_heading = "Stage 5: an image")]
    pub entrypoint: Option<String>,
    /// The user the command runs as: USER, UID, USER:GROUP or UID:GID, looked up in the image (default: the image's User, else root).
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER[:GROUP]",
        help_heading = "Stage 5: an image"
    )]
    pub user: Option<String>,
    /// How the root is made of the image's layers (auto: the first of overlay,
    /// fuse-overlayfs and copy that works here).
    #[arg(
        long,
        value_name = "DRIVER",
        default_value = "auto",
        help_heading = "Stage 5: an image"
    )]
    pub storage_driver: driver::Driver,
}

/// Stage 5: stage 4 + images.
#[derive(Debug)]
pub struct Stage05;

impl Stage for Stage05 {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str =
        "Stage 5: stage 4 plus images: run IMAGE [CMD...] on an overlay of the image's layers";
    type Args = Args;
    type Commands = commands::Commands;

    fn command(command: Self::Commands) -> i32 {
        commands::run(command)
    }

    // ANCHOR: layers
    fn layers(args: &Args) -> Result<Vec<Box<dyn Layer>>> {
        // `--rootfs DIR`: the earlier stages' way, unchanged.
        if args.stage04.stage03.stage02.rootfs.is_some() {
            return Stage04::layers(&args.stage04);
        }
        refuse_unmapped_root(&args.stage04.stage03)?;
        // Otherwise the first word is an image: stage 2's layer pivots into the root
        // that the overlay layer, just before it, mounts in the child.
        let mut stage04 = args.stage04.clone();
        stage04.stage03.stage02.made = true;
        let mut layers = Stage04::layers(&stage04)?;
        let rootfs = layers
            .iter()
            .position(|l| l.name() == "rootfs")
            .unwrap_or(layers.len());
        let options = overlay::Options {
            driver: args.storage_driver,
            remove: args.rm,
            entrypoint: args.entrypoint.clone(),
            user: args.user.clone(),
        };
        layers.insert(rootfs, Box::new(overlay::Overlay::new(options)));
        Ok(layers)
    }
    // ANCHOR_END: layers

    fn doctor(report: &mut Report) {
        Stage04::doctor(report);
        doctor::check(report);
    }
}

/// Root's store, and the image's files in it, belong to the host's root. In a user
/// namespace that maps container root elsewhere (`--userns=auto`, or a `--uidmap`
/// without `0:0`), container root could not even reach the container's own upper
/// directory: the run would fail halfway, so it is refused before anything is made.
/// (Giving such a container an image needs its layers shifted to its ids, with
/// idmapped mounts, as podman does; keel does not do that yet.)
fn refuse_unmapped_root(args: &stage03_userns::Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let root_is_root = |map: &[stage03_userns::idmap::IdRange]| {
        map.iter()
            .any(|r| r.container == 0 && r.host == 0 && r.count > 0)
    };
    let gidmap = if args.gidmap.is_empty() {
        &args.uidmap
    } else {
        &args.gidmap
    };
    // No --uidmap at all is root's default: no user namespace.
    let root_kept = args.uidmap.is_empty() || (root_is_root(&args.uidmap) && root_is_root(gidmap));
    let elsewhere = args.userns == Some(stage03_userns::UsernsMode::Auto) || !root_kept;
    if elsewhere {
        anyhow::bail!(
            "an image as root needs container root to be the host's root: the store and \
             the image's files are root's, and a user namespace that maps container root \
             elsewhere (--userns=auto, --uidmap) cannot reach them. Run the image as an \
             ordinary user (rootless), or give a directory with --rootfs"
        );
    }
    Ok(())
}
