//! The layer of stage 3: a user namespace that owns every other namespace.
//!
//! All namespaces are created by the one `clone`, and when CLONE_NEWUSER is among the
//! flags the kernel creates the user namespace first and makes it the owner of the
//! others. That ownership is what lets an ordinary user do the rest: creating a PID or
//! mount namespace, mounting /proc or a tmpfs, pivot_root, sethostname, all need
//! CAP_SYS_ADMIN *in the user namespace that owns the namespace*, and the child has
//! every capability in its own.
//!
//! So this layer comes first in the list: its `parent` phase writes the id maps before
//! any other layer's, and its `child` phase takes the identity of container root before
//! the others start mounting.

use anyhow::{Context, Result};
use common::{Child, Cleanup, Layer, Parent, Prepare, explain};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

use crate::plan::{Plan, Writer};
use crate::{slices, write};

/// User namespace with the maps of a [`Plan`].
#[derive(Debug)]
pub struct UserNamespace {
    plan: Plan,
}

impl UserNamespace {
    /// A user namespace whose maps follow `plan`.
    pub fn new(plan: Plan) -> Self {
        Self { plan }
    }
}

impl Layer for UserNamespace {
    fn name(&self) -> &'static str {
        "user"
    }

    // ANCHOR: userns_flags
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUSER
    }
    // ANCHOR_END: userns_flags

    fn prepare(&mut self, _cx: &mut Prepare<'_>) -> Result<()> {
        if let Some(notice) = &self.plan.notice {
            eprintln!("{}: notice: {notice}", common::program::name());
        }
        Ok(())
    }

    // ANCHOR: userns_parent
    fn parent(&mut self, cx: &mut Parent) -> Result<()> {
        let Plan {
            uid, gid, writer, ..
        } = &self.plan;
        match writer {
            Writer::Direct { deny_setgroups } => {
                write::write_directly(cx.pid, uid, gid, *deny_setgroups)
            }
            Writer::Helpers {
                newuidmap,
                newgidmap,
            } => write::write_with_helpers(cx.pid, uid, gid, newuidmap, newgidmap),
        }
    }
    // ANCHOR_END: userns_parent

    // ANCHOR: userns_child
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        // The maps are written: become container root for real, with real, effective and
        // saved ids all 0, whatever host id we were (with --uidmap our own id may not
        // even be mapped).
        let root_gid = Gid::from_raw(0);
        setresgid(root_gid, root_gid, root_gid).context("setresgid(0, 0, 0): is gid 0 mapped?")?;
        // A user's groups stay: its parent denied setgroups(2), so that container root
        // cannot leave a group the administrator uses to keep the user *out* of files
        // (they show as 65534, nogroup, inside). Root's maps (--userns auto) come with
        // setgroups allowed, and root leaves its host groups: for root, dropping groups
        // only gives rights up.
        if setgroups_allowed() {
            setgroups(&[]).context("setgroups([])")?;
            explain::step(
                "setgroups([])",
                "drop root's host groups: a container starts with none",
            );
        }
        let root_uid = Uid::from_raw(0);
        setresuid(root_uid, root_uid, root_uid).context("setresuid(0, 0, 0): is uid 0 mapped?")?;
        explain::step(
            "setresgid(0, 0, 0); setresuid(0, 0, 0)",
            "we are root in our user namespace, and an ordinary user outside it",
        );
        Ok(())
    }
    // ANCHOR_END: userns_child

    // ANCHOR: userns_cleanup
    fn cleanup(&mut self, _cx: &mut Cleanup) {
        // --userns auto: the container is gone, its slice of keel's range is free again.
        // (A runtime killed by SIGKILL never gets here: the next allocation finds its
        // record's owner dead.)
        if let Some(slice) = self.plan.slice.take()
            && let Err(err) = slices::release(&slice)
        {
            eprintln!("{}: warning: {err:#}", common::program::name());
        }
    }
    // ANCHOR_END: userns_cleanup
}

/// What /proc/self/setgroups says: "allow" under maps that root wrote, "deny" under a
/// user's (the parent wrote it before the maps).
fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|state| state.trim() == "allow")
}
