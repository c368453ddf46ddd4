//! Where a container's cgroup may go, and whether it may have one at all.
//!
//! Root may create cgroups anywhere. A user may create them only below a cgroup that
//! was *delegated* to them: a v2 directory chowned to the user, as systemd does for
//! `user@UID.service`. Cgroup v1 cannot be delegated safely (its controllers are not
//! built for it), so a user on a v1 machine runs without limits.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

use crate::hierarchy::{self, Mode, ROOT};

/// The parent cgroup of keel's containers when `--cgroup-parent` does not say.
pub const DEFAULT_PARENT: &str = "keel";

/// Where the container's cgroup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// cgroup v2: `<parent>/<id>`. Controllers are enabled in `subtree_control` from
    /// `delegated` (the hierarchy's root for root) down to `parent`.
    V2 { delegated: PathBuf, parent: PathBuf },
    /// cgroup v1: `<parent>/<id>` in every hierarchy keel uses.
    V1 { parent: PathBuf },
    /// No cgroup: why, and what would give one.
    Without { why: String, fix: String },
}

/// Decides the placement for `mode`, under `parent` (relative: `--cgroup-parent`).
pub fn place(mode: Mode, parent: &Path, root: bool) -> Result<Placement> {
    check_parent(parent)?;
    Ok(match (mode, root) {
        (Mode::Unified, true) => Placement::V2 {
            delegated: PathBuf::from(ROOT),
            parent: Path::new(ROOT).join(parent),
        },
        (Mode::Hybrid | Mode::Legacy, true) => Placement::V1 {
            parent: parent.to_owned(),
        },
        (Mode::Unified, false) => match delegated_to_me()? {
            Some(delegated) => Placement::V2 {
                parent: delegated.join(parent),
                delegated,
            },
            None => Placement::Without {
                why: format!(
                    "no cgroup v2 subtree is delegated to uid {}",
                    nix::unistd::geteuid()
                ),
                fix: "log in through systemd-logind (its user@UID.service is delegated), or \
                      as root make a cgroup, chown it and its cgroup.procs, cgroup.subtree_control \
                      and cgroup.threads to the user, and start the user's shell in a child of it"
                    .into(),
            },
        },
        (Mode::Hybrid | Mode::Legacy, false) => Placement::Without {
            why: format!(
                "this machine's cgroups are {}, and v1 cannot be delegated to a user",
                mode.describe()
            ),
            fix: "run as root for limits, or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1 \
                  on the kernel's command line)"
                .into(),
        },
    })
}

/// `--cgroup-parent` is a path below the place keel may use: no `..`, not absolute.
fn check_parent(parent: &Path) -> Result<()> {
    if parent.as_os_str().is_empty()
        || !parent
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        bail!(
            "--cgroup-parent {}: give a relative path of plain names, as in keel or ci/keel \
             (it is placed under the cgroups keel may use)",
            parent.display()
        );
    }
    Ok(())
}

// ANCHOR: delegated
/// The highest cgroup above this process's own that belongs to this user: the subtree
/// delegated to us. `None` when even our own cgroup is not ours.
fn delegated_to_me() -> Result<Option<PathBuf>> {
    let uid = nix::unistd::geteuid().as_raw();
    let own = Path::new(ROOT).join(hierarchy::own_v2_cgroup()?);
    let ours = |dir: &Path| {
        fs::metadata(dir).is_ok_and(|m| m.uid() == uid)
            && fs::metadata(dir.join("cgroup.procs")).is_ok_and(|m| m.uid() == uid)
    };
    let mut delegated = None;
    let mut dir = own.as_path();
    while dir != Path::new(ROOT) && ours(dir) {
        delegated = Some(dir.to_owned());
        dir = match dir.parent() {
            Some(parent) => parent,
            None => break,
        };
    }
    Ok(delegated)
}
// ANCHOR_END: delegated

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_stay_below() {
        for bad in ["", "/keel", "../x", "keel/../../x", "./keel"] {
            let err = check_parent(Path::new(bad)).unwrap_err().to_string();
            assert!(err.contains("relative path of plain names"), "{bad}: {err}");
        }
        check_parent(Path::new("ci/keel")).unwrap();
    }

    #[test]
    fn root_on_v1_uses_every_hierarchy() {
        assert_eq!(
            place(Mode::Hybrid, Path::new("keel"), true).unwrap(),
            Placement::V1 {
                parent: "keel".into()
            }
        );
    }

    #[test]
    fn a_user_on_v1_has_none_and_is_told_why() {
        let Placement::Without { why, fix } =
            place(Mode::Hybrid, Path::new("keel"), false).unwrap()
        else {
            panic!("a user got a v1 cgroup");
        };
        assert!(why.contains("cannot be delegated"), "{why}");
        assert!(fix.contains("run as root"), "{fix}");
    }
}
