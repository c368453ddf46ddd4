//! Which cgroup hierarchies this machine has, and where.
//!
//! - **unified**: one cgroup2 hierarchy at `/sys/fs/cgroup`, every controller in it
//!   (systemd's default since 2021);
//! - **hybrid**: v1 hierarchies, one per controller, under `/sys/fs/cgroup/*`, plus an
//!   empty cgroup2 at `/sys/fs/cgroup/unified` that holds no controllers;
//! - **legacy**: v1 hierarchies only.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use crate::limits::Controller;

/// Where cgroup filesystems are mounted, by convention.
pub const ROOT: &str = "/sys/fs/cgroup";

// ANCHOR: mode
/// The layout of the machine's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Unified,
    Hybrid,
    Legacy,
}

impl Mode {
    /// Reads the filesystem type of `/sys/fs/cgroup`: cgroup2 is unified; a tmpfs of
    /// v1 mounts is hybrid when a cgroup2 sits at `unified` too.
    pub fn detect() -> Result<Mode> {
        let is_cgroup2 =
            |path: &Path| statfs(path).is_ok_and(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC);
        if is_cgroup2(Path::new(ROOT)) {
            Ok(Mode::Unified)
        } else if is_cgroup2(&Path::new(ROOT).join("unified")) {
            Ok(Mode::Hybrid)
        } else if Path::new(ROOT).is_dir() {
            Ok(Mode::Legacy)
        } else {
            anyhow::bail!("{ROOT} does not exist: this kernel or system mounts no cgroups")
        }
    }
    // ANCHOR_END: mode

    /// The name `doctor` and `--explain` use.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Unified => "cgroup v2 (unified)",
            Mode::Hybrid => "cgroup v1 (hybrid: v1 controllers, an empty cgroup2 beside them)",
            Mode::Legacy => "cgroup v1 (legacy)",
        }
    }
}

/// A v1 hierarchy: where it is mounted and which controllers it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub path: PathBuf,
    pub controllers: Vec<String>,
}

/// The v1 hierarchies of this mount namespace, read from `/proc/self/mountinfo`
/// (`cpu` and `cpuacct` are often one hierarchy, mounted at `cpu,cpuacct`).
pub fn v1_mounts() -> Result<Vec<V1Mount>> {
    let text =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(parse_v1_mounts(&text))
}

fn parse_v1_mounts(mountinfo: &str) -> Vec<V1Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            if right.next()? != "cgroup" {
                return None;
            }
            let super_options = right.nth(1)?;
            let controllers: Vec<String> = super_options
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_owned)
                .collect();
            Some(V1Mount {
                path: PathBuf::from(mount_point),
                controllers,
            })
        })
        .collect()
}

/// The v1 hierarchy that carries `controller`.
pub fn v1_mount_of(mounts: &[V1Mount], controller: Controller) -> Option<&V1Mount> {
    let name = controller.name(false);
    mounts
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == name))
}

/// This process's own cgroup in the v2 hierarchy (`0::/path` in /proc/self/cgroup),
/// relative to the hierarchy's root.
pub fn own_v2_cgroup() -> Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| PathBuf::from(path.trim_start_matches('/')))
        .context("/proc/self/cgroup has no cgroup v2 line (0::)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn comounted_controllers_share_a_hierarchy() {
        let mounts = parse_v1_mounts(HYBRID);
        assert_eq!(mounts.len(), 3, "{mounts:?}");
        let cpu = v1_mount_of(&mounts, Controller::Cpu).unwrap();
        let acct = v1_mount_of(&mounts, Controller::Cpuacct).unwrap();
        assert_eq!(cpu, acct);
        assert_eq!(cpu.path, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            v1_mount_of(&mounts, Controller::Memory).unwrap().path,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert!(v1_mount_of(&mounts, Controller::Pids).is_none());
    }
}
