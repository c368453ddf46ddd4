//! What stage 6 needs from the machine: cgroups, and for a user, a delegated subtree.

use std::path::Path;

use common::doctor::{Outcome, Report};

use crate::hierarchy::Mode;
use crate::placement::{self, Placement};

/// The checks of stage 6.
pub fn check(report: &mut Report) {
    let mode = match Mode::detect() {
        Ok(mode) => mode,
        Err(err) => {
            report.check("cgroups", Outcome::Fail(format!("{err:#}")));
            return;
        }
    };
    report.check("cgroups", Outcome::Ok(mode.describe().to_owned()));
    let root = nix::unistd::geteuid().is_root();
    let outcome = match placement::place(mode, Path::new(placement::DEFAULT_PARENT), root) {
        Ok(Placement::V2 { parent, .. }) => Outcome::Ok(format!(
            "containers' cgroups go under {} (cgroup v2)",
            parent.display()
        )),
        Ok(Placement::V1 { parent }) => Outcome::Ok(format!(
            "containers' cgroups go under /sys/fs/cgroup/<controller>/{} (cgroup v1)",
            parent.display()
        )),
        Ok(Placement::Without { why, fix }) => {
            Outcome::Warn(format!("containers run without limits: {why}; {fix}"))
        }
        Err(err) => Outcome::Fail(format!("{err:#}")),
    };
    report.check("cgroup placement", outcome);
}
