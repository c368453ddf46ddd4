//! What the container sees of cgroups: a cgroup namespace whose root is its own
//! cgroup, and `/sys/fs/cgroup` mounted read-only, showing that root and below.

use std::path::Path;

use anyhow::{Context, Result};
use common::explain;
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use nix::sched::{CloneFlags, unshare};
use stage02_mountns::at::At;
use stage02_mountns::newmount;

/// Where the container finds its cgroups.
const CGROUP_DIR: &str = "/sys/fs/cgroup";

/// What to mount at `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// The container has no cgroup of its own (a user on cgroup v1): nothing.
    Nothing,
    /// cgroup v2: one cgroup2 filesystem.
    V2,
    /// cgroup v1: a small tmpfs with a directory per hierarchy, each the hierarchy's
    /// name (`memory`, `cpu,cpuacct`) and its mount options.
    V1(Vec<String>),
}

// ANCHOR: cgroupns
/// In the child, already in its cgroup: a cgroup namespace rooted there, so that
/// `/proc/self/cgroup` reads `/` and a cgroup filesystem mounted now shows the
/// container's cgroup as its root. It must come after the parent moved the child in:
/// the namespace's root is the cgroup its creator is in at that moment.
pub fn enter(view: &View) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")?;
    explain::step(
        "unshare(CLONE_NEWCGROUP)",
        "a cgroup namespace: the container's own cgroup becomes its /, the host's paths are hidden",
    );
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let target = || At::open_dir(Path::new(CGROUP_DIR));
    match view {
        View::Nothing => {}
        View::V2 => {
            newmount::filesystem("cgroup2", "", attrs)?.attach(
                &target()?,
                "the container's cgroup and below, read-only: it sees its limits, cannot change them",
            )?;
        }
        View::V1(hierarchies) => {
            let tmpfs =
                newmount::filesystem("tmpfs", "mode=0755,size=64k", attrs & !MOUNT_ATTR_RDONLY)?
                    .attach(&target()?, "a directory for each v1 hierarchy")?;
            for name in hierarchies {
                newmount::filesystem("cgroup", name, attrs)?.attach(
                    &tmpfs.mkdir(name, 0o755)?,
                    "one v1 hierarchy, rooted at the container's cgroup, read-only",
                )?;
            }
            // The tmpfs itself, read-only too: a copy of the tree, on top.
            newmount::clone_path(CGROUP_DIR, true)?
                .read_only()?
                .attach(&target()?, "the whole /sys/fs/cgroup read-only")?;
        }
    }
    Ok(())
}
// ANCHOR_END: cgroupns
