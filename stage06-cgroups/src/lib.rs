//! Stage 6: stage 5 plus cgroups.
//!
//! Namespaces decide what a container *sees*; cgroups decide how much it may *use*.
//! A cgroup is a directory in a special filesystem: the processes listed in its
//! `cgroup.procs` are counted together, and the limits written into its files
//! (`memory.max`, `pids.max`, `cpu.max`) apply to all of them. The container's
//! cgroup is made and limited before `clone`, and the child is moved in while it
//! waits, so that nothing it runs escapes the limits.
//!
//! - [`size`]: sizes as docker spells them (`64m`);
//! - [`limits`]: the flags, and the files that set them on v2 and on v1;
//! - [`hierarchy`]: which cgroup layout this machine has (unified, hybrid, legacy);
//! - [`placement`]: where the cgroup may go: anywhere for root, a delegated subtree
//!   for a user;
//! - [`cgroup`]: one cgroup, v2 or v1, made, limited, joined and removed;
//! - [`namespace`]: the container's view: a cgroup namespace, `/sys/fs/cgroup`
//!   read-only;
//! - [`layer`]: all of it, in the runner's phases;
//! - [`stats`]: the cgroup's figures, as `docker stats` shows them.

pub mod cgroup;
pub mod doctor;
pub mod hierarchy;
pub mod layer;
pub mod limits;
pub mod namespace;
pub mod placement;
pub mod runtime;
pub mod size;
pub mod stats;

use std::path::PathBuf;

use anyhow::Result;
use common::doctor::Report;
use common::{Layer, Process, Stage};
use stage05_overlay::Stage05;

use crate::limits::{Flags, Limits};
use crate::size::Bytes;

/// The binary's name, for messages.
pub const NAME: &str = "stage06-cgroups";

/// Options of stage 6: stage 5's, plus the limits (docker's flags).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage06")]
pub struct Args {
    #[command(flatten)]
    pub stage05: stage05_overlay::Args,
    #[command(flatten)]
    pub runtime: runtime::RunOptions,
    /// Memory limit, as in 64m or 1g (the OOM killer ends the container above it).
    #[arg(
        short = 'm',
        long,
        value_name = "BYTES",
        help_heading = "Stage 6: limits"
    )]
    pub memory: Option<Bytes>,
    /// Memory plus swap, as in 128m; -1 for unlimited swap (default: twice --memory).
    #[arg(
        long,
        value_name = "BYTES",
        allow_hyphen_values = true,
        help_heading = "Stage 6: limits"
    )]
    pub memory_swap: Option<String>,
    /// The most processes and threads at once (-1: no limit).
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        help_heading = "Stage 6: limits"
    )]
    pub pids_limit: Option<i64>,
    /// How many CPUs' worth of time, as in 0.5 (a quota per 100 ms period).
    #[arg(long, value_name = "CPUS", help_heading = "Stage 6: limits")]
    pub cpus: Option<f64>,
    /// A relative CPU weight against other containers (default 1024).
    #[arg(
        short = 'c',
        long,
        value_name = "SHARES",
        help_heading = "Stage 6: limits"
    )]
    pub cpu_shares: Option<u64>,
    /// A relative block I/O weight, 10 to 1000 (needs the BFQ I/O scheduler).
    #[arg(long, value_name = "WEIGHT", help_heading = "Stage 6: limits")]
    pub blkio_weight: Option<u16>,
    /// The cgroup that holds the containers' cgroups, relative to where keel may make
    /// them (root: the hierarchy's root; a user: the delegated subtree).
    #[arg(
        long,
        value_name = "PATH",
        default_value = placement::DEFAULT_PARENT,
        help_heading = "Stage 6: limits"
    )]
    pub cgroup_parent: PathBuf,
}

impl Args {
    /// The limits the flags ask for, checked.
    pub fn limits(&self) -> Result<Limits> {
        Limits::from_flags(&Flags {
            memory: self.memory,
            memory_swap: self.memory_swap.clone(),
            pids_limit: self.pids_limit,
            cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            blkio_weight: self.blkio_weight,
        })
    }
}

// ANCHOR: layers
/// Stage 5's layers, then the cgroup (its paths kept in `record`, for the container's
/// state), then `--read-only`'s, which needs the root built.
pub fn layers_recording(args: &Args, record: Option<layer::Record>) -> Result<Vec<Box<dyn Layer>>> {
    let limits = args.limits()?;
    layer::refuse_impossible(&limits, &args.cgroup_parent)?;
    let mut layers = Stage05::layers(&args.stage05)?;
    layers.push(Box::new(layer::Cgroups::new(
        limits,
        args.cgroup_parent.clone(),
        record,
    )));
    if args.runtime.read_only {
        layers.push(Box::new(runtime::readonly::ReadOnly));
    }
    Ok(layers)
}
// ANCHOR_END: layers

/// Stage 6: stage 5 + cgroups.
#[derive(Debug)]
pub struct Stage06;

impl Stage for Stage06 {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str =
        "Stage 6: stage 5 plus cgroups: --memory, --pids-limit, --cpus limit what a container uses";
    type Args = Args;
    type Commands = runtime::commands::Commands;

    fn command(command: Self::Commands) -> i32 {
        runtime::commands::run(command)
    }

    fn layers(args: &Args) -> Result<Vec<Box<dyn Layer>>> {
        layers_recording(args, None)
    }

    /// Every container is recorded, so that `ps`, `exec`, `stop`, `rm` find it.
    fn run(process: Process, args: &Args) -> Result<i32> {
        runtime::run(process, args)
    }

    fn doctor(report: &mut Report) {
        Stage05::doctor(report);
        doctor::check(report);
    }
}
