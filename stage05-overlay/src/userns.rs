//! Working on the store as the containers' root.
//!
//! A rootless user's containers see the image's files through a user namespace: uid 1
//! in the image is the user's first subordinate id on the host. So a layer must be
//! unpacked with those owners, and only a process in such a namespace may `chown` to
//! them (or remove what they own). keel forks a child into a user namespace mapped
//! exactly as a container's (stage 3's plan: the user as root, then the subordinate
//! ranges), lets it do the store's work as root there, and waits for it, as
//! `podman unshare` does. Root needs none of this: it owns every id already.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};
use common::explain;
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork, pipe, setresgid, setresuid};
use stage03_userns::plan::{self, Request, Writer};
use stage03_userns::write;

// ANCHOR: as_container_root
/// Runs `work` as root of a user namespace mapped like this user's containers (or
/// directly, as root). `what` names the work in messages.
pub fn as_container_root(what: &str, work: impl FnOnce() -> Result<()>) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return work();
    }
    let plan = plan::for_user(&stage03_userns::facts(), &Request::default())?;
    let (ready_read, ready_write) = pipe().context("pipe")?;
    let (go_read, go_write) = pipe().context("pipe")?;
    let (error_read, error_write) = pipe().context("pipe")?;
    // SAFETY: the runtime has no other thread here (the store's work comes before any
    // container, and no async runtime exists), so the child may go on as usual.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop((ready_read, go_write, error_read));
            let result = in_child(ready_write, go_read, work);
            let code = match result {
                Ok(()) => 0,
                Err(err) => {
                    let _ =
                        std::fs::File::from(error_write).write_all(format!("{err:#}").as_bytes());
                    1
                }
            };
            // SAFETY: leave without running the parent's exit handlers twice.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop((ready_write, go_read, error_write));
            let mut byte = [0u8; 1];
            let unshared = std::fs::File::from(ready_read).read(&mut byte).unwrap_or(0) == 1;
            if unshared {
                let maps = match &plan.writer {
                    Writer::Direct { deny_setgroups } => {
                        write::write_directly(child, &plan.uid, &plan.gid, *deny_setgroups)
                    }
                    Writer::Helpers {
                        newuidmap,
                        newgidmap,
                    } => {
                        write::write_with_helpers(child, &plan.uid, &plan.gid, newuidmap, newgidmap)
                    }
                };
                if let Err(err) = maps {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(err).with_context(|| format!("{what}: mapping the ids"));
                }
                let _ = std::fs::File::from(go_write).write_all(b"g");
            } else {
                drop(go_write);
            }
            let mut message = String::new();
            let _ = std::fs::File::from(error_read).read_to_string(&mut message);
            match waitpid(child, None).context("waitpid")? {
                WaitStatus::Exited(_, 0) => Ok(()),
                _ if !message.is_empty() => bail!("{what}: {message}"),
                status => bail!("{what}: the process in the user namespace ended: {status:?}"),
            }
        }
    }
}

// ANCHOR_END: as_container_root

/// The child's side: a user namespace of its own, then (once the parent wrote the
/// maps) root in it, then the work.
fn in_child(ready: OwnedFd, go: OwnedFd, work: impl FnOnce() -> Result<()>) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWUSER).context("unshare(CLONE_NEWUSER)")?;
    std::fs::File::from(ready).write_all(b"u")?;
    let mut byte = [0u8; 1];
    if std::fs::File::from(go).read(&mut byte)? != 1 {
        bail!("the parent could not map the ids");
    }
    let root = (Gid::from_raw(0), Uid::from_raw(0));
    setresgid(root.0, root.0, root.0).context("setresgid(0, 0, 0)")?;
    setresuid(root.1, root.1, root.1).context("setresuid(0, 0, 0)")?;
    explain::step(
        "fork; unshare(CLONE_NEWUSER); newuidmap; setresuid(0, 0, 0)",
        "root of a user namespace mapped as the containers are: the image's owners become the user's subordinate ids",
    );
    work()
}
