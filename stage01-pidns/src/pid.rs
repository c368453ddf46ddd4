//! The PID namespace: the container's first process is PID 1 and sees only its own
//! descendants.
//!
//! A new PID namespace alone is not enough for tools like `ps`: they read `/proc`,
//! and the `/proc` we inherited was mounted for the host's PID namespace, so it still
//! lists every process of the machine. We need a fresh `proc` mounted from inside, and
//! to mount without touching the host we need our own mount namespace as well.

use anyhow::{Context, Result};
use common::{Child, Layer, explain};
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;

/// PID namespace + a private mount namespace with a fresh `/proc`.
#[derive(Debug, Default)]
pub struct PidNamespace;

impl Layer for PidNamespace {
    fn name(&self) -> &'static str {
        "pid"
    }

    fn clone_flags(&self) -> CloneFlags {
        // ANCHOR: clone_flags
        // EXERCISE: return the namespaces this layer needs: a new PID namespace, and a new mount namespace so that mounting /proc does not touch the host
        CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS
        // ANCHOR_END: clone_flags
    }

    // ANCHOR: pid_child
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        make_mounts_private()?;
        mount_proc()
    }
    // ANCHOR_END: pid_child
}

// ANCHOR: make_mounts_private
/// Stops our mounts from leaking to the host.
///
/// A new mount namespace starts as a copy of the host's, and on most systems (systemd
/// makes `/` "shared") the copies stay *peers*: a mount on one side propagates to the
/// other. Marking every mount private, recursively, cuts that link.
pub fn make_mounts_private() -> Result<()> {
    let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .context("making every mount private (mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE))")?;
    explain::step(
        format_args!("mount(NULL, \"/\", NULL, {})", explain::flags(&flags)),
        "our mounts must not propagate back to the host's mount namespace",
    );
    Ok(())
}
// ANCHOR_END: make_mounts_private

/// Mounts a `proc` that belongs to our PID namespace over `/proc`.
///
/// The kernel picks the PID namespace of a `proc` mount from the process that mounts
/// it: mounted from inside, it shows the container's processes only.
pub fn mount_proc() -> Result<()> {
    // ANCHOR: mount_proc
    // EXERCISE: mount a new "proc" filesystem on /proc (flags: no setuid, no devices, no exec), and explain the step
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
        .context("mounting a fresh /proc (mount(\"proc\", \"/proc\", \"proc\"))")?;
    explain::step(
        format_args!(
            "mount(\"proc\", \"/proc\", \"proc\", {})",
            explain::flags(&flags)
        ),
        "a fresh /proc shows only the processes of our PID namespace",
    );
    Ok(())
    // ANCHOR_END: mount_proc
}
