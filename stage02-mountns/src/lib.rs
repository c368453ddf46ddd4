//! Stage 2: stage 1 plus a root filesystem of its own.
//!
//! The container's `/` becomes a directory of our choosing (or a tmpfs that borrows the
//! host's programs), with fresh /proc, /dev, /sys and /tmp, runc's masked paths, and
//! the user's volumes; `pivot_root` makes it the root and the host's root is detached.

pub mod at;
pub mod dev;
pub mod host;
pub mod inroot;
pub mod leftovers;
pub mod made;
pub mod masks;
pub mod newmount;
pub mod pivot;
pub mod reach;
pub mod rootfs;
pub mod volumes;

use std::path::PathBuf;

use anyhow::Result;
use common::doctor::{Outcome, Report};
use common::{Layer, Stage};
use stage01_pidns::Stage01;

/// Options of stage 2: stage 1's, plus the root filesystem and volumes.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage02")]
pub struct Args {
    #[command(flatten)]
    pub stage01: stage01_pidns::Args,
    /// The root filesystem: a directory, or `host` (a tmpfs with the host's /usr, /bin, /lib bound read-only) [default: host]
    #[arg(long, value_name = "DIR|host", help_heading = "Stage 2: a new root")]
    pub rootfs: Option<String>,
    /// Bind a host path into the container: HOST:CONTAINER[:ro] (repeatable).
    #[arg(
        short = 'v',
        long = "volume",
        value_name = "HOST:CTR[:ro]",
        help_heading = "Stage 2: a new root"
    )]
    pub volumes: Vec<String>,
    /// Not an option: set by a later stage whose layer makes the root itself, in the
    /// child (stage 5's overlay of an image's layers).
    #[arg(skip)]
    pub made: bool,
}

impl Args {
    /// The rootfs source named by `--rootfs`.
    pub fn source(&self) -> rootfs::Source {
        if self.made {
            return rootfs::Source::Made;
        }
        match self.rootfs.as_deref() {
            None | Some("host") => rootfs::Source::Host,
            Some(dir) => rootfs::Source::Dir(PathBuf::from(dir)),
        }
    }
}

/// Stage 2: stage 1 + a new root.
#[derive(Debug)]
pub struct Stage02;

impl Stage for Stage02 {
    const NAME: &'static str = "stage02-mountns";
    const ABOUT: &'static str =
        "Stage 2: stage 1 plus a root filesystem of its own, with /proc, /dev, /sys and /tmp";
    type Args = Args;
    type Commands = common::cli::NoCommands;

    fn command(command: Self::Commands) -> i32 {
        match command {}
    }

    // ANCHOR: layers
    fn layers(args: &Args) -> Result<Vec<Box<dyn Layer>>> {
        let volumes = args
            .volumes
            .iter()
            .map(|spec| spec.parse())
            .collect::<Result<Vec<_>>>()?;
        let mut layers = Stage01::layers(&args.stage01)?;
        layers.push(Box::new(rootfs::Rootfs::new(
            args.source(),
            &args.stage01.hostname,
            volumes,
        )));
        Ok(layers)
    }
    // ANCHOR_END: layers

    fn doctor(report: &mut Report) {
        stage01_pidns::privileges(report);
        checks(report);
    }
}

/// What stages 1 and 2 need besides privileges: stage 1's checks, the devices to
/// bind, openat2 and the new mount API.
pub fn checks(report: &mut Report) {
    stage01_pidns::checks(report);
    for device in dev::DEVICES {
        let path = format!("/dev/{device}");
        let outcome = if std::path::Path::new(&path).exists() {
            Outcome::Ok("present, to bind into the container's /dev".into())
        } else {
            Outcome::Fail(format!(
                "{path} is missing on the host; it is bound into every container"
            ))
        };
        report.check(&path, outcome);
    }
    report.check("openat2(RESOLVE_IN_ROOT)", volumes::probe_openat2());
    report.check("the new mount API", newmount::probe());
}
