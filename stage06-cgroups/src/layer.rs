//! The cgroups layer: a cgroup made and limited before `clone`, the child moved into it
//! while it waits, a cgroup namespace inside, and the cgroup removed after exit.

use std::path::PathBuf;

use anyhow::{Result, bail};
use common::Layer;
use common::layer::{Child, Cleanup, Parent, Prepare};

use crate::cgroup::Cgroup;
use crate::hierarchy::{self, Mode};
use crate::limits::{self, Limits};
use crate::namespace::{self, View};
use crate::placement::{self, Placement};

/// Stage 6's layer.
#[derive(Debug)]
pub struct Cgroups {
    limits: Limits,
    parent: PathBuf,
    cgroup: Option<Cgroup>,
    view: View,
    record: Option<Record>,
}

/// Where the layer tells the runtime the directories of the cgroup it made, for the
/// container's state (`rm -f` removes them if the runtime was killed).
pub type Record = std::rc::Rc<std::cell::RefCell<Vec<std::path::PathBuf>>>;

impl Cgroups {
    pub fn new(limits: Limits, parent: PathBuf, record: Option<Record>) -> Self {
        Cgroups {
            limits,
            parent,
            cgroup: None,
            view: View::Nothing,
            record,
        }
    }
}

/// Refuses limits that no cgroup can give here (a user on cgroup v1), before any
/// layer prepares anything: an image is not imported, nor a network started, for a
/// run that cannot happen.
pub fn refuse_impossible(limits: &Limits, parent: &std::path::Path) -> Result<()> {
    if !limits.any() {
        return Ok(());
    }
    let root = nix::unistd::geteuid().is_root();
    if let Placement::Without { why, fix } = placement::place(Mode::detect()?, parent, root)? {
        bail!("limits were asked for, but {why}: {fix}");
    }
    Ok(())
}

impl Layer for Cgroups {
    fn name(&self) -> &'static str {
        "cgroups"
    }

    // ANCHOR: prepare
    /// Before `clone`: decide where the cgroup goes, make it and write its limits. A
    /// limit the kernel refuses stops the run before anything started.
    fn prepare(&mut self, cx: &mut Prepare<'_>) -> Result<()> {
        let mode = Mode::detect()?;
        let root = nix::unistd::geteuid().is_root();
        let placement = placement::place(mode, &self.parent, root)?;
        if let Placement::Without { why, fix } = &placement {
            if self.limits.any() {
                bail!("limits were asked for, but {why}: {fix}");
            }
            notice_once(&format!("no cgroup for the container: {why} ({fix})"));
            return Ok(());
        }
        let cgroup = Cgroup::create(&placement, cx.id, self.limits.blkio_weight.is_some())?;
        let settings = if cgroup.is_v2() {
            limits::v2_settings(&self.limits)
        } else {
            limits::v1_settings(&self.limits)
        };
        self.view = if cgroup.is_v2() {
            View::V2
        } else {
            View::V1(v1_names(&cgroup)?)
        };
        if let Some(record) = &self.record {
            *record.borrow_mut() = cgroup.paths().map(ToOwned::to_owned).collect();
        }
        // Kept before writing the limits: a refused limit leaves it for cleanup.
        let cgroup = self.cgroup.insert(cgroup);
        cgroup.apply(&settings)?;
        // v2: the runner's clone3 puts the child into it at birth.
        *cx.cgroup = cgroup.birthplace()?;
        Ok(())
    }
    // ANCHOR_END: prepare

    /// While the child waits: move it in, unless it was born there.
    fn parent(&mut self, cx: &mut Parent) -> Result<()> {
        match &self.cgroup {
            Some(_) if cx.in_cgroup => Ok(()),
            Some(cgroup) => cgroup.join(cx.pid),
            None => Ok(()),
        }
    }

    /// Inside: a cgroup namespace, and the read-only view of the container's cgroup.
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        namespace::enter(&self.view)
    }

    // ANCHOR: cleanup
    /// After exit: say whether the memory limit killed, then remove the cgroup.
    fn cleanup(&mut self, cx: &mut Cleanup) {
        let Some(cgroup) = self.cgroup.take() else {
            return;
        };
        let kills = cgroup.oom_kills();
        if kills > 0 {
            let limit = self.limits.memory.map_or_else(
                || "its memory limit".to_owned(),
                |m| format!("its memory limit ({m})"),
            );
            let what = if cx.code == Some(137) {
                "the container was killed".to_owned()
            } else {
                match kills {
                    1 => "one of the container's processes was killed".to_owned(),
                    n => format!("{n} of the container's processes were killed"),
                }
            };
            eprintln!(
                "{}: {what}: it went over {limit} and the kernel's OOM killer ended it \
                 (raise --memory)",
                common::program::name()
            );
        }
        if let Err(err) = cgroup.remove() {
            eprintln!("{}: warning: {err:#}", common::program::name());
        }
    }
    // ANCHOR_END: cleanup
}

/// The name and mount options of each v1 hierarchy the container is in: its
/// directory's name under /sys/fs/cgroup (`memory`, `cpu,cpuacct`).
fn v1_names(cgroup: &Cgroup) -> Result<Vec<String>> {
    let mounts = hierarchy::v1_mounts()?;
    Ok(mounts
        .iter()
        .filter(|m| cgroup.paths().any(|p| p.starts_with(&m.path)))
        .map(|m| m.controllers.join(","))
        .collect())
}

/// Prints `notice` the first time only: a marker in the runtime directory (a tmpfs
/// at most machines) remembers it until the next boot.
fn notice_once(notice: &str) {
    let marker = common::state::runtime_dir().map(|d| d.join("cgroups-notice"));
    if let Ok(marker) = marker {
        if marker.exists() {
            return;
        }
        let _ = std::fs::write(&marker, format!("{notice}\n"));
    }
    eprintln!("{}: notice: {notice}", common::program::name());
}
