//! What stage 5 needs from the machine, each with its fix.

use std::path::Path;

use anyhow::{Context, Result, bail};
use common::doctor::{Outcome, Report};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use crate::store::Store;

/// The checks of stage 5.
pub fn check(report: &mut Report) {
    let outcome = match overlay_in_a_user_namespace() {
        Ok(()) => Outcome::Ok(
            "this kernel mounts overlay in a user namespace: images run on an overlay of their layers"
                .into(),
        ),
        Err(why) => Outcome::Warn(format!(
            "{why:#}: images are copied instead (--storage-driver copy: slower, a full copy \
             per container); Linux 5.11 or later mounts overlay rootless"
        )),
    };
    report.check("overlay", outcome);
    let outcome = if Path::new("/bin/busybox").is_file() {
        Outcome::Ok("/bin/busybox: the offline busybox image is made from it".into())
    } else {
        Outcome::Warn(
            "/bin/busybox is missing: apt-get install busybox-static, for the image that works \
             offline"
                .into(),
        )
    };
    report.check("busybox", outcome);
    let outcome = match Store::default_root() {
        Ok(root) => Outcome::Ok(format!(
            "{}: images, layers and containers' writable layers (KEEL_STORE chooses another)",
            root.display()
        )),
        Err(err) => Outcome::Fail(format!("{err:#}")),
    };
    report.check("store", outcome);
}

/// Mounts an overlay of two empty directories in a child in new user and mount
/// namespaces (just a mount namespace, as root), as a container would.
fn overlay_in_a_user_namespace() -> Result<()> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    for name in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(dir.path().join(name))?;
    }
    let root = nix::unistd::geteuid().is_root();
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    // SAFETY: doctor runs no other thread.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            let result = (|| -> Result<()> {
                if root {
                    unshare(CloneFlags::CLONE_NEWNS)?;
                } else {
                    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
                    std::fs::write("/proc/self/setgroups", "deny")?;
                    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
                    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
                }
                let d = dir.path().display();
                let options = format!(
                    "lowerdir={d}/lower,upperdir={d}/upper,workdir={d}/work{}",
                    if root { "" } else { ",userxattr" }
                );
                nix::mount::mount(
                    Some("overlay"),
                    &dir.path().join("merged"),
                    Some("overlay"),
                    nix::mount::MsFlags::empty(),
                    Some(options.as_str()),
                )?;
                Ok(())
            })();
            // SAFETY: leave the forked copy at once.
            unsafe { libc::_exit(i32::from(result.is_err())) }
        }
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            _ => bail!("overlay cannot be mounted in a user namespace here"),
        },
    }
}
