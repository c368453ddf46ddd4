//! Stage 1: a process that believes it is alone.
//!
//! The child is PID 1 of a new PID namespace and sees, through a fresh `/proc`, only
//! its own descendants; it has its own hostname (UTS namespace) and its own System V
//! IPC objects (IPC namespace). It still sees the host's files: that is stage 2.

pub mod ipc;
pub mod pid;
pub mod uts;

use anyhow::Result;
use common::doctor::{self, Outcome, Report};
use common::{Layer, Stage};

/// Options of stage 1 (and of every later stage, which flattens them).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage01")]
#[command(next_help_heading = "Stage 1: PID, UTS and IPC namespaces")]
pub struct Args {
    /// The container's hostname.
    #[arg(long, value_name = "NAME", default_value = uts::DEFAULT_HOSTNAME)]
    pub hostname: String,
}

/// Stage 1: PID, UTS and IPC namespaces.
#[derive(Debug)]
pub struct Stage01;

impl Stage for Stage01 {
    const NAME: &'static str = "stage01-pidns";
    const ABOUT: &'static str = "Stage 1: run a command as PID 1 of its own PID namespace, with its own /proc, hostname and IPC";
    type Args = Args;
    type Commands = common::cli::NoCommands;

    fn command(command: Self::Commands) -> i32 {
        match command {}
    }

    // ANCHOR: layers
    fn layers(args: &Args) -> Result<Vec<Box<dyn Layer>>> {
        Ok(vec![
            Box::new(pid::PidNamespace),
            Box::new(uts::UtsNamespace::new(&args.hostname)),
            Box::new(ipc::IpcNamespace),
        ])
    }
    // ANCHOR_END: layers

    fn doctor(report: &mut Report) {
        privileges(report);
        checks(report);
    }
}

/// Stages 1 and 2 create namespaces without a user namespace: that takes root.
pub fn privileges(report: &mut Report) {
    let uid = nix::unistd::geteuid();
    report.check(
        "privileges",
        if doctor::is_root() {
            Outcome::Ok("running as root: may create namespaces".into())
        } else {
            Outcome::Fail(format!(
                "running as uid {uid}: stages 1 and 2 create namespaces without a user \
                 namespace, which needs root: run with sudo, or use stage03-userns (rootless)"
            ))
        },
    );
}

/// What stage 1 needs besides privileges: its namespaces.
pub fn checks(report: &mut Report) {
    doctor::namespace(report, "pid", "PID 1 of its own");
    doctor::namespace(report, "mnt", "a private mount table for /proc");
    doctor::namespace(report, "uts", "its own hostname");
    doctor::namespace(report, "ipc", "its own System V IPC");
}
