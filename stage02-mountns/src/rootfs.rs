//! The layer of stage 2: a new root filesystem, assembled and then pivoted into.
//!
//! In the child, in order: make the rootfs a mount point, fill in what a Linux program
//! expects to find (/proc, /dev, /sys, /tmp), hide what it must not touch, add the
//! user's volumes, and finally `pivot_root` into it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::{Child, Layer, Prepare};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::mounts::{bind, mount_fs, remount_readonly};
use crate::volumes::{self, Volume};
use crate::{dev, host, masks, pivot};

/// Where the container's root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory holding a root filesystem (`--rootfs DIR`).
    Dir(PathBuf),
    /// A tmpfs that borrows the host's programs (the default).
    Host,
}

/// The mount namespace layer: a new root.
#[derive(Debug)]
pub struct Rootfs {
    source: Source,
    hostname: String,
    volumes: Vec<Volume>,
}

impl Rootfs {
    /// A new root from `source`, with `volumes` bound into it.
    pub fn new(source: Source, hostname: &str, volumes: Vec<Volume>) -> Self {
        Self {
            source,
            hostname: hostname.to_owned(),
            volumes,
        }
    }
}

impl Layer for Rootfs {
    fn name(&self) -> &'static str {
        "rootfs"
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNS
    }

    fn prepare(&mut self, _cx: &mut Prepare<'_>) -> Result<()> {
        if let Source::Dir(dir) = &self.source {
            check_rootfs(dir)?;
        }
        // Fail early, in the parent, on a host path that does not exist.
        for volume in &self.volumes {
            volumes::check_host(volume)?;
        }
        Ok(())
    }

    // ANCHOR: rootfs_child
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        // Stage 1's layer ran before us: mounts are private and /proc is fresh.
        // Open the volumes' host paths first, while every host path is still in
        // view (the host rootfs is about to cover /tmp). It happens here and not in
        // the parent because a bind mount's source must be in our mount namespace.
        let opened = self
            .volumes
            .iter()
            .map(volumes::open_host)
            .collect::<Result<Vec<_>>>()?;
        let root = match &self.source {
            Source::Dir(dir) => {
                // pivot_root needs the new root to be a mount point: bind it onto itself.
                bind(
                    dir,
                    dir,
                    true,
                    "pivot_root needs the new root to be a mount point",
                )?;
                dir.clone()
            }
            Source::Host => host::build(&self.hostname)?,
        };
        for dir in ["proc", "dev", "sys", "tmp"] {
            fs::create_dir_all(root.join(dir))
                .with_context(|| format!("creating /{dir} in the rootfs"))?;
        }
        bind(
            Path::new("/proc"),
            &root.join("proc"),
            true,
            "carry stage 1's fresh /proc (our PID namespace's) into the new root",
        )?;
        dev::populate(&root.join("dev"))?;
        mount_sys(&root.join("sys"))?;
        masks::apply(&root)?;
        mount_fs(
            "tmpfs",
            &root.join("tmp"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
            "a private, writable /tmp",
        )?;
        for volume in &opened {
            volumes::mount(&root, volume)?;
        }
        pivot::pivot_into(&root)
    }
    // ANCHOR_END: rootfs_child
}

// ANCHOR: mount_sys
/// /sys, read-only. A fresh sysfs shows the devices of our network namespace; where
/// the kernel refuses one (a user namespace that does not own its network namespace,
/// stage 3), a read-only bind of the host's /sys is the fallback, as runc does.
fn mount_sys(sys: &Path) -> Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match mount_fs("sysfs", sys, flags, None, "kernel objects, read-only") {
        Ok(()) => Ok(()),
        Err(_) => {
            bind(
                Path::new("/sys"),
                sys,
                true,
                "sysfs may not be mounted here: bind the host's",
            )?;
            remount_readonly(sys, "the container may read /sys, not write it")
        }
    }
}
// ANCHOR_END: mount_sys

/// A rootfs must be a directory with a shell or program to run in it; say so early.
fn check_rootfs(dir: &Path) -> Result<()> {
    if !dir.is_absolute() {
        bail!(
            "--rootfs {}: give an absolute path (e.g. --rootfs \"$PWD/{}\")",
            dir.display(),
            dir.display()
        );
    }
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("--rootfs {}: not a directory", dir.display()),
        Err(err) => bail!(
            "--rootfs {}: {err}; give a directory that holds a root filesystem (e.g. one \
             unpacked from an image, or made with busybox --install)",
            dir.display()
        ),
    }
    if dir == Path::new("/") {
        bail!(
            "--rootfs /: the host's own root is not a container's rootfs; omit --rootfs for the default"
        );
    }
    Ok(())
}
