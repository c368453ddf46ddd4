//! `stats [--no-stream] [CONTAINER...]`: `docker stats`, from the containers'
//! cgroups (see [`crate::stats`]). Without names: every running container.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::state::{self, State};
use crate::stats::{self, Counters};

/// How far apart the two samples of one CPU figure are, as docker's.
const INTERVAL: Duration = Duration::from_secs(1);

/// Prints the figures once (`no_stream`), or again every second until interrupted.
pub fn stats(containers: &[String], no_stream: bool) -> Result<i32> {
    let chosen: Vec<State> = if containers.is_empty() {
        state::list()?
            .into_iter()
            .filter(State::is_running)
            .collect()
    } else {
        containers
            .iter()
            .map(|c| state::find(c))
            .collect::<Result<_>>()?
    };
    for container in &chosen {
        if !container.is_running() {
            bail!(
                "{} is not running: stats reads a running container's cgroup",
                container.name
            );
        }
        if container.cgroups.is_empty() {
            bail!(
                "{} has no cgroup (a user's container on cgroup v1): there is nothing to read",
                container.name
            );
        }
    }
    loop {
        let counted: Vec<Counters> = chosen.iter().map(counters).collect();
        let lines: Vec<String> = chosen
            .iter()
            .zip(stats::measure(&counted, INTERVAL)?)
            .map(|(c, line)| stats::row(&c.id, &c.name, &line))
            .collect();
        if !no_stream {
            // Clear the screen and go home, as docker does between rounds.
            print!("\x1b[2J\x1b[H");
        }
        println!("{}", stats::HEADER);
        for line in lines {
            println!("{line}");
        }
        if no_stream {
            return Ok(0);
        }
    }
}

/// Where a container's figures are: v2 when its cgroup is on a cgroup2 filesystem.
fn counters(container: &State) -> Counters {
    let v2 = container.cgroups.len() == 1
        && statfs(Path::new(&container.cgroups[0]))
            .is_ok_and(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC);
    Counters {
        v2,
        dirs: container.cgroups.clone(),
    }
}
