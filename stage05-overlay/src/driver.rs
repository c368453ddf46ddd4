//! How a container's root is made of its image's layers: the storage driver.
//!
//! The kernel's overlay is the fast one, and it needs Linux 5.11 in a user namespace.
//! Where the kernel cannot, `fuse-overlayfs` does the same in user space (through
//! `/dev/fuse`), and where that is missing too, the layers are copied. `auto` picks the
//! first that works here, as podman does; whether the kernel can is probed once per
//! kernel and remembered in the store, since a probe costs a few milliseconds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use crate::store::Store;

/// The storage drivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// The first of overlay, fuse-overlayfs and copy that works here.
    #[default]
    Auto,
    /// The kernel's overlay (Linux 5.11+ in a user namespace).
    Overlay,
    /// fuse-overlayfs: overlay in user space, through /dev/fuse.
    FuseOverlayfs,
    /// A copy of every layer, applied in order, into the container's directory: slower
    /// to start and a full copy per container, but it needs nothing of the kernel.
    Copy,
}

/// Where fuse-overlayfs is looked for.
pub const FUSE_OVERLAYFS: &str = "fuse-overlayfs";

impl std::fmt::Display for Driver {
    /// The name `--storage-driver` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// The driver `wanted` stands for here, and why (for `--explain`).
pub fn choose(wanted: Driver, store: &Store) -> (Driver, String) {
    if wanted != Driver::Auto {
        return (wanted, "asked for with --storage-driver".into());
    }
    let kernel = kernel_overlay(store);
    // fuse-overlayfs is looked for only where the kernel's overlay will not do. (No
    // stand-in error for it: under RUST_BACKTRACE=1 every error captures a backtrace,
    // and unwinding the stack on every run costs time and half a megabyte of memory.)
    let fuse = match &kernel {
        Ok(()) => return (Driver::Overlay, KERNEL_OVERLAY.into()),
        Err(_) => fuse_usable(),
    };
    decide(&kernel, &fuse)
}

/// Why `auto` takes the kernel's overlay (and what `doctor` says of it).
pub(crate) const KERNEL_OVERLAY: &str = "this kernel mounts overlay in a user namespace";

// ANCHOR: choose_driver
/// What `auto` picks, given whether the kernel mounts overlay in a user namespace and
/// whether fuse-overlayfs can run, and why.
pub fn decide(kernel: &Result<()>, fuse: &Result<PathBuf>) -> (Driver, String) {
    match (kernel, fuse) {
        (Ok(()), _) => (Driver::Overlay, KERNEL_OVERLAY.into()),
        (Err(no_overlay), Ok(binary)) => (
            Driver::FuseOverlayfs,
            format!(
                "no kernel overlay ({no_overlay:#}); {} serves the same in user space",
                binary.display()
            ),
        ),
        (Err(no_overlay), Err(no_fuse)) => (
            Driver::Copy,
            format!("no kernel overlay ({no_overlay:#}) and no fuse-overlayfs ({no_fuse:#})"),
        ),
    }
}
// ANCHOR_END: choose_driver

/// fuse-overlayfs's path, if it can work here: installed, and `/dev/fuse` readable
/// and writable by us.
pub fn fuse_usable() -> Result<PathBuf> {
    let binary = stage03_userns::which(FUSE_OVERLAYFS).with_context(|| {
        format!("{FUSE_OVERLAYFS} is not on PATH: apt-get install fuse-overlayfs")
    })?;
    nix::unistd::access(
        "/dev/fuse",
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    )
    .context("/dev/fuse is not readable and writable (chmod 0666 /dev/fuse, as udev does)")?;
    Ok(binary)
}

/// Whether the kernel mounts overlay as a container would, remembered per kernel (and
/// for root or a user) in the store's `overlay-probe`.
fn kernel_overlay(store: &Store) -> Result<()> {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    // Root's answer (a mount namespace) and a user's (a user namespace too) may
    // differ, and a store may be both's (KEEL_STORE).
    let who = if nix::unistd::geteuid().is_root() {
        "root"
    } else {
        "user"
    };
    let key = format!("{release} {who} ");
    let cache = store.root().join("overlay-probe");
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some(verdict) = text.trim_end().strip_prefix(&key)
    {
        return match verdict {
            "ok" => Ok(()),
            _ => bail!("probed before on this kernel: {verdict}"),
        };
    }
    // Under a staged name of this process in the store's `tmp/`: a probe killed
    // halfway leaves a tree that the next store's sweep recognises and removes.
    let staged = store.staged();
    let result = std::fs::create_dir(staged.path())
        .with_context(|| format!("creating {}", staged.path().display()))
        .and_then(|()| probe_at(staged.path()));
    drop(staged);
    // Only the kernel's answer is kept: a probe that could not ask (no temporary
    // directory, no fork) says nothing about the kernel, and is tried again next time.
    let verdict = match &result {
        Ok(()) => Some("ok".to_owned()),
        Err(err) if err.is::<KernelSaid>() => Some(format!("{err:#}").replace('\n', " ")),
        Err(_) => None,
    };
    if let Some(verdict) = verdict {
        // Best effort: a store that cannot keep it probes again next time.
        let _ = std::fs::write(&cache, format!("{key}{verdict}\n"));
    }
    result
}

/// The kernel refused the probe's mount: a verdict on the kernel, worth remembering.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct KernelSaid(String);

/// Mounts an overlay of empty directories in a child in new user and mount namespaces
/// (just a mount namespace, as root), as a container would. They are made in `place`
/// (the store's `tmp/`: on the filesystem where containers' upper directories will
/// be), and removed again.
pub fn probe(place: &Path) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("overlay-probe-")
        .tempdir_in(place)
        .with_context(|| format!("a temporary directory in {}", place.display()))?;
    probe_at(dir.path())
}

/// The probe, in the empty directory `dir`, which the caller removes.
fn probe_at(dir: &Path) -> Result<()> {
    for name in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(dir.join(name))?;
    }
    let result = probe_in(dir);
    // Overlay made work/work with mode 000: as its owner we may open it, and the
    // directory can then be removed with the rest.
    crate::container::open_up(&dir.join("work"));
    result
}

/// The probe's child, and what it says.
fn probe_in(dir: &Path) -> Result<()> {
    let root = nix::unistd::geteuid().is_root();
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    // SAFETY: called before any thread exists (prepare, doctor).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // The errno is the exit code: the parent says what the kernel said.
            let code = match mount_in_namespaces(dir, root, uid.as_raw(), gid.as_raw()) {
                Ok(()) => 0,
                Err(errno) => errno as i32,
            };
            // SAFETY: leave the forked copy at once.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let context = if root {
                "mount(overlay)"
            } else {
                "mount(overlay) in a user namespace"
            };
            match waitpid(child, None)? {
                WaitStatus::Exited(_, 0) => Ok(()),
                WaitStatus::Exited(_, code) => Err(KernelSaid(format!(
                    "{context}: {}",
                    nix::errno::Errno::from_raw(code)
                ))
                .into()),
                other => bail!("{context}: the probe ended: {other:?}"),
            }
        }
    }
}

fn mount_in_namespaces(dir: &Path, root: bool, uid: u32, gid: u32) -> nix::Result<()> {
    if root {
        unshare(CloneFlags::CLONE_NEWNS)?;
    } else {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
        let write = |file: &str, text: String| {
            std::fs::write(file, text)
                .map_err(|err| nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO)))
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    let d = dir.display();
    let options = format!(
        "lowerdir={d}/lower,upperdir={d}/upper,workdir={d}/work{}",
        if root { "" } else { ",userxattr" }
    );
    nix::mount::mount(
        Some("overlay"),
        &dir.join("merged"),
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<()> {
        Err(anyhow::anyhow!("EPERM"))
    }

    #[test]
    fn the_kernels_overlay_comes_first() {
        let (driver, why) = decide(&Ok(()), &Ok(PathBuf::from("/usr/bin/fuse-overlayfs")));
        assert_eq!(driver, Driver::Overlay);
        assert!(why.contains("this kernel mounts overlay"), "{why}");
    }

    #[test]
    fn fuse_overlayfs_where_the_kernel_refuses() {
        let (driver, why) = decide(&refused(), &Ok(PathBuf::from("/usr/bin/fuse-overlayfs")));
        assert_eq!(driver, Driver::FuseOverlayfs);
        assert!(
            why.contains("EPERM") && why.contains("/usr/bin/fuse-overlayfs"),
            "{why}"
        );
    }

    #[test]
    fn a_copy_where_neither_works() {
        let no_fuse = Err(anyhow::anyhow!("not on PATH"));
        let (driver, why) = decide(&refused(), &no_fuse);
        assert_eq!(driver, Driver::Copy);
        assert!(
            why.contains("EPERM") && why.contains("not on PATH"),
            "{why}"
        );
    }

    #[test]
    fn drivers_are_shown_as_the_option_names_them() {
        assert_eq!(Driver::FuseOverlayfs.to_string(), "fuse-overlayfs");
        assert_eq!(Driver::Overlay.to_string(), "overlay");
    }
}
