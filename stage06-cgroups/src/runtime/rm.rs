//! `rm [-f] NAME...`: a container and everything it made on the host, by its id.
//!
//! A supervisor that ran to its end removed the container's cgroup and run
//! directory itself; one killed by SIGKILL did not. So `rm` does not trust that
//! anything is gone: it kills what may still run, then removes the cgroup (each
//! hierarchy's `<parent>/<id>`), the network's run directory (`net-<id>`), the
//! writable layer (`<store>/containers/<id>`) and the record, each if it is there.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::state::{RunDir, runtime_dir};
use nix::sys::signal::Signal;
use stage05_overlay::container::Container;
use stage05_overlay::userns::as_container_root;

use super::pidfd::PidFd;
use super::state::{self, State};

/// How long a supervisor gets to record the end and clean up after its container
/// was killed, before it is killed too.
const SUPERVISOR_GRACE: Duration = Duration::from_secs(10);

/// `rm [-f] NAME...`: every container named; the exit code is 1 if one failed.
pub fn rm(names: &[String], force: bool) -> i32 {
    super::each(names, |name| {
        let found = state::find(name)?;
        if found.is_running() && !force {
            bail!(
                "container {name} is {}: stop it first ({me} stop {name}), or remove it \
                 running with {me} rm -f {name}",
                found.shown(),
                me = common::program::name()
            );
        }
        remove_everything(&found)?;
        println!("{name}");
        Ok(())
    })
}

// ANCHOR: remove_everything
/// Kills the container if it runs, waits for its supervisor, and removes all of it.
pub fn remove_everything(found: &State) -> Result<()> {
    if let Some(pid) = found.pid
        && let Some(pidfd) = PidFd::open(&pid)?
    {
        common::explain::step(
            format_args!("pidfd_send_signal({}, SIGKILL)", pid.pid),
            "rm -f: the container's PID 1 dies, and with it its PID namespace",
        );
        pidfd.signal(Signal::SIGKILL)?;
        pidfd.wait(Some(SUPERVISOR_GRACE))?;
    }
    if let Some(supervisor) = found.supervisor
        && supervisor.pid != std::process::id()
        && let Some(pidfd) = PidFd::open(&supervisor)?
        && !pidfd.wait(Some(SUPERVISOR_GRACE))?
    {
        pidfd.signal(Signal::SIGKILL)?;
        pidfd.wait(Some(SUPERVISOR_GRACE))?;
    }
    // What a supervisor killed by SIGKILL left.
    for cgroup in &found.cgroups {
        crate::cgroup::remove_dir(cgroup)?;
    }
    let run_dir = RunDir::path_of(&runtime_dir()?, "net", &found.id);
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    if let Some(layer) = &found.layer {
        remove_layer(layer)?;
    }
    state::remove(&found.id)?;
    common::explain::step(
        format_args!("rm -r {}", found.dir()?.display()),
        "the container's record goes last: until then, rm -f can find the rest by its id",
    );
    Ok(())
}
// ANCHOR_END: remove_everything

/// The writable layer: as the containers' root if its files belong to subordinate ids.
fn remove_layer(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let container = Container::at(dir.to_owned());
    container.remove().or_else(|_| {
        as_container_root("removing the container's writable layer", || {
            container.remove()
        })
    })
}
