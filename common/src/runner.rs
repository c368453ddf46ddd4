//! The runner: one `clone`, every layer's phases in order, one `execve`.
//!
//! ```text
//!  parent                                   child
//!  ──────                                   ─────
//!  prepare  (every layer)
//!  clone(flags of every layer) ───────────► unshare (the late namespaces)
//!  parent   (every layer)                   child_early (every layer)
//!  │                                        waits on the channel
//!  "go" ───────────────────────────────────►│
//!                                           child (every layer)
//!                                           close inherited fds
//!  reads the channel ◄── EOF or error ───── execve(command)
//!  forwards signals, waits
//!  cleanup  (every layer, always)
//!  exits with the command's code
//! ```

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sched::{CloneFlags, clone};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::exit::{self, Failure, RUNTIME_FAILED};
use crate::explain;
use crate::layer::{Child, Cleanup, Layer, Parent, Prepare, Process};
use crate::signals::Supervisor;
use crate::sync::{self, ChildEnd, ParentEnd};
use crate::{fds, pty, workdir};

/// The child's stack. `clone` without `CLONE_VM` copies the parent's memory like
/// `fork`, so the stack only has to hold the setup code until `execve` replaces it.
const STACK_SIZE: usize = 1024 * 1024;

// ANCHOR: run
/// Runs `process` inside every layer and returns its exit code.
///
/// Errors of the runtime itself come back as `Err` (exit code 125, or 126/127 when the
/// command cannot be executed or found); the command's own failures are its exit code.
/// Every layer's `cleanup` has run when this returns, whatever happened.
pub fn run(process: Process, layers: &mut [Box<dyn Layer>]) -> Result<i32> {
    run_container(&crate::state::new_id()?, process, layers, &mut |_| Ok(()))
}

/// The container, once its command runs: what a runtime that keeps state records.
#[derive(Debug)]
pub struct Started<'a> {
    /// Its PID 1, as the host sees it.
    pub pid: Pid,
    /// The command, as the layers left it (the image's environment, its user).
    pub process: &'a Process,
}

/// [`run`] for the container `id` (see [`Prepare::id`]); `on_start` is called once the
/// command runs, before the runner waits for it: an error there kills the container.
///
/// This is where runc's `create`/`start` split would go: `create` would be everything
/// up to the "go" release below (prepare, clone, the parent phases), and `start` the
/// release itself; the child already waits for it.
pub fn run_container(
    id: &str,
    mut process: Process,
    layers: &mut [Box<dyn Layer>],
    on_start: &mut dyn FnMut(&Started<'_>) -> Result<()>,
) -> Result<i32> {
    let clone_flags = layers
        .iter()
        .fold(CloneFlags::empty(), |all, layer| all | layer.clone_flags());
    let unshare_flags = layers.iter().fold(CloneFlags::empty(), |all, layer| {
        all | layer.unshare_flags()
    });

    let mut cleanup = Cleanup {
        pid: None,
        started: false,
        code: None,
    };
    let result = start_and_wait(
        (id, &mut process),
        layers,
        (clone_flags, unshare_flags),
        &mut cleanup,
        on_start,
    );

    // Cleanup runs in reverse order, like destructors: the last thing set up is the
    // first thing taken down.
    for layer in layers.iter_mut().rev() {
        layer.cleanup(&mut cleanup);
    }
    result
}
// ANCHOR_END: run

/// `flags`: the namespaces `clone` makes, and those the child unshares.
fn start_and_wait(
    (id, process): (&str, &mut Process),
    layers: &mut [Box<dyn Layer>],
    (clone_flags, unshare_flags): (CloneFlags, CloneFlags),
    outcome: &mut Cleanup,
    on_start: &mut dyn FnMut(&Started<'_>) -> Result<()>,
) -> Result<i32> {
    // What the layers are told: every namespace the child will have.
    let namespaces = clone_flags | unshare_flags;
    let mut files = Vec::new();
    let mut cgroup = None;
    for layer in layers.iter_mut() {
        layer
            .prepare(&mut Prepare {
                id,
                process,
                files: &mut files,
                clone_flags: namespaces,
                cgroup: &mut cgroup,
            })
            .with_context(|| format!("preparing the {} layer", layer.name()))?;
    }
    if process.argv.is_empty() {
        process.argv = vec![crate::layer::DEFAULT_COMMAND.to_owned()];
    }

    // Signals are blocked from here on: the parent receives them synchronously in
    // its wait loop and forwards them, so that it can never die halfway and skip
    // the cleanup.
    let supervisor = Supervisor::block()?;
    let (parent_end, child_end) = sync::channel()?;

    let process_ref: &Process = process;
    let mut child_main: nix::sched::CloneCb<'_> = Box::new(|| {
        child(
            process_ref,
            layers,
            (namespaces, unshare_flags),
            &parent_end,
            &child_end,
            &supervisor,
        )
    });
    // ANCHOR: clone_into_cgroup
    let born_in_cgroup = match cgroup.as_ref() {
        // SAFETY: this process is single-threaded, and the child leaves only through
        // execve or _exit.
        Some(fd) => match unsafe { crate::clone3::into_cgroup(clone_flags, fd.as_fd()) } {
            Ok(None) => {
                let code = child_main();
                // SAFETY: the child's end: no destructor of the parent's copy runs.
                unsafe { libc::_exit(code as i32) }
            }
            Ok(Some(pid)) => Some(pid),
            // Before Linux 5.7 (no clone3, or no CLONE_INTO_CGROUP): clone, and the
            // cgroup's layer moves the child in while it waits.
            Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => None,
            Err(errno) => return Err(namespace_error("clone3", errno, clone_flags)),
        },
        None => None,
    };
    let pid = match born_in_cgroup {
        Some(pid) => {
            drop(child_main); // the parent's copy: it ran in the child only
            explain::step(
                format_args!(
                    "clone3({}|CLONE_INTO_CGROUP) -> {pid}",
                    explain::flags(&clone_flags)
                ),
                "the child starts in its new namespaces and in its cgroup, and waits for the parent",
            );
            pid
        }
        None => {
            let mut stack = vec![0u8; STACK_SIZE];
            // SAFETY: the child runs in its own copy of this single-threaded process
            // (no CLONE_VM) and leaves it only through execve or _exit.
            let pid = unsafe {
                clone(
                    child_main,
                    &mut stack,
                    clone_flags,
                    Some(Signal::SIGCHLD as i32),
                )
            }
            .map_err(|errno| namespace_error("clone", errno, clone_flags))?;
            explain::step(
                format_args!("clone({}) -> {pid}", explain::flags(&clone_flags)),
                "the child starts in its new namespaces and waits for the parent",
            );
            pid
        }
    };
    // ANCHOR_END: clone_into_cgroup
    outcome.pid = Some(pid);
    drop(child_end);

    let setup = (|| -> Result<Option<OwnedFd>> {
        let mut unshared = unshare_flags.is_empty();
        for layer in layers.iter_mut() {
            if !unshared && !layer.unshare_flags().is_empty() {
                wait_for_unshare(&parent_end, unshare_flags)?;
                unshared = true;
            }
            layer
                .parent(&mut Parent {
                    pid,
                    clone_flags: namespaces,
                    in_cgroup: born_in_cgroup.is_some(),
                })
                .with_context(|| {
                    format!("setting up the {} layer from the parent", layer.name())
                })?;
        }
        if !unshared {
            wait_for_unshare(&parent_end, unshare_flags)?;
        }
        explain::step(
            "send(sync, \"go\")",
            "the parent's part is done; release the child",
        );
        parent_end.release()?;
        parent_end.wait_for_exec()
    })();

    let setup = setup.and_then(|terminal| {
        on_start(&Started { pid, process })?;
        Ok(terminal)
    });
    let terminal = match setup {
        Ok(terminal) => terminal,
        Err(err) => {
            // The child may still be waiting, or stuck halfway: it must not outlive us.
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(err);
        }
    };
    outcome.started = true;
    let code = supervisor.supervise(pid, terminal, process.interactive);
    outcome.code = code.as_ref().ok().copied();
    if code.is_err() {
        // Supervising failed before the child exited (a signalfd refused, say): it
        // must not outlive us either.
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
    code
}

// ANCHOR: child
/// The child's whole life: wait for the parent, run every layer, exec.
fn child(
    process: &Process,
    layers: &mut [Box<dyn Layer>],
    (clone_flags, unshare_flags): (CloneFlags, CloneFlags),
    parent_end: &ParentEnd,
    channel: &ChildEnd,
    supervisor: &Supervisor,
) -> isize {
    explain::mark_child();
    parent_end.close_in_child();
    // The signal mask survives execve: give the command the mask we started with.
    supervisor.restore_in_child();
    // If the runtime dies (even by SIGKILL), the half-made container dies with it.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if !unshare_flags.is_empty() {
        // Meanwhile the parent writes the id maps: the kernel does both at once.
        let unshared = nix::sched::unshare(unshare_flags)
            .map_err(|errno| namespace_error("unshare", errno, unshare_flags))
            .and_then(|()| channel.send_unshared());
        if let Err(err) = unshared {
            channel.report(RUNTIME_FAILED, &format!("{err:#}"));
            return RUNTIME_FAILED as isize;
        }
    }
    // Work ahead, while the parent writes the maps (see `Layer::child_early`).
    for layer in layers.iter_mut() {
        layer.child_early();
    }
    if !channel.wait_for_go() {
        return RUNTIME_FAILED as isize;
    }
    // A session of its own: no controlling terminal, so that nothing in the container
    // can reach the caller's terminal through one (see `pty`). After "go", so that the
    // child explains nothing while the parent still does: their lines keep one order.
    let _ = nix::unistd::setsid();
    explain::step(
        "setsid()",
        "a session of its own: no controlling terminal, unless -t gives it one of its own",
    );

    let failure = match setup_child(process, layers, clone_flags, channel) {
        // A change of credentials (stage 3's setresuid to container root) clears the
        // parent-death signal: arm it again, then check that the parent did not die
        // in between.
        Ok(()) if !rearm_parent_death(channel) => return RUNTIME_FAILED as isize,
        Ok(()) if process.init => crate::init::run(process, channel),
        Ok(()) => crate::exec::exec(process),
        Err(err) => Failure {
            code: exit::code_of(&err),
            message: format!("{err:#}"),
        },
    };
    channel.report(failure.code, &failure.message);
    failure.code as isize
}
// ANCHOR_END: child

/// Arms PR_SET_PDEATHSIG again; `false` if the parent is already gone.
fn rearm_parent_death(channel: &ChildEnd) -> bool {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    !channel.parent_gone()
}

fn setup_child(
    process: &Process,
    layers: &mut [Box<dyn Layer>],
    clone_flags: CloneFlags,
    channel: &ChildEnd,
) -> Result<()> {
    let mut cx = Child {
        process,
        clone_flags,
        workdir: None,
        root: None,
    };
    for layer in layers.iter_mut() {
        layer.child(&mut cx).with_context(|| {
            format!("setting up the {} layer inside the container", layer.name())
        })?;
    }
    workdir::enter(process.cwd.as_deref(), cx.workdir.take())?;
    if process.terminal {
        pty::attach(channel)?;
    }
    fds::close_on_exec_all()
}

/// Waits until the child has made the namespaces of `flags`.
fn wait_for_unshare(parent: &ParentEnd, flags: CloneFlags) -> Result<()> {
    parent.wait_for_unshare()?;
    explain::step(
        format_args!("child: unshare({})", explain::flags(&flags)),
        "made by the child itself, in its user namespace, while the parent went on",
    );
    Ok(())
}

/// The error of `call` (`clone` or `unshare`) making the namespaces of `flags`.
fn namespace_error(call: &str, errno: nix::Error, flags: CloneFlags) -> anyhow::Error {
    let hint = match errno {
        nix::Error::EPERM => {
            "creating these namespaces needs privileges: run as root (sudo), or use a stage \
             with a user namespace (stage03-userns) to run rootless"
        }
        nix::Error::EINVAL => "this kernel does not support one of these namespaces",
        nix::Error::ENOSPC | nix::Error::EUSERS => {
            "too many namespaces: see /proc/sys/user/max_*_namespaces"
        }
        _ => "see clone(2)",
    };
    anyhow::anyhow!(
        "{call}({}) failed: {}: {hint}",
        explain::flags(&flags),
        errno.desc()
    )
}

/// Reports how the command ended, as an exit code.
pub(crate) fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(exit::killed_by(signal)),
        _ => None,
    }
}
