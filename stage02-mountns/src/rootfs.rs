//! The layer of stage 2: a new root filesystem, assembled and then pivoted into.
//!
//! In the child, in order: make the rootfs a mount point, fill in what a Linux program
//! expects to find (/proc, /dev, /sys, /tmp), hide what it must not touch, add the
//! user's volumes, and finally `pivot_root` into it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use common::{Child, Layer, Prepare};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::inroot::Root;
use crate::mounts::{bind, make_readonly, mount_fs};
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
    fn child(&mut self, cx: &mut Child<'_>) -> Result<()> {
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
                Root::open(dir)?
            }
            Source::Host => Root::open(&host::build(&self.hostname)?)?,
        };
        // From here on the rootfs is an fd: `new` is /proc/self/fd/N, and a path below
        // it cannot be redirected by swapping the rootfs's own path for a symlink.
        let new = root.path();
        // Each mount point is opened (a plain directory, never a symlink) and mounted
        // on through its fd; once something is mounted there, `new/<dir>` leads into it.
        bind(
            Path::new("/proc"),
            &root.mount_point("proc")?.path(),
            true,
            "carry stage 1's fresh /proc (our PID namespace's) into the new root",
        )?;
        mount_fs(
            "tmpfs",
            &root.mount_point("dev")?.path(),
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            Some("mode=0755,size=65536k"),
            "a /dev of our own instead of the host's",
        )?;
        dev::populate(&new.join("dev"))?;
        mount_sys(&root.mount_point("sys")?.path(), &new.join("sys"))?;
        masks::apply(&new)?;
        mount_fs(
            "tmpfs",
            &root.mount_point("tmp")?.path(),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
            "a private, writable /tmp",
        )?;
        for volume in &opened {
            volumes::mount(&root, volume)?;
        }
        if let Some(dir) = &cx.process.cwd {
            cx.workdir = Some(root.workdir(dir)?);
        }
        pivot::pivot_into(&new)
    }
    // ANCHOR_END: rootfs_child
}

// ANCHOR: mount_sys
/// /sys, read-only. A fresh sysfs shows the devices of our network namespace; where
/// the kernel refuses one (a user namespace that does not own its network namespace,
/// stage 3), a read-only bind of the host's /sys is the fallback, as runc does.
/// `point` is the mount point's fd path; `mounted` leads to what is mounted there.
fn mount_sys(point: &Path, mounted: &Path) -> Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match mount_fs("sysfs", point, flags, None, "kernel objects, read-only") {
        Ok(()) => Ok(()),
        Err(_) => {
            bind(
                Path::new("/sys"),
                point,
                true,
                "sysfs may not be mounted here: bind the host's",
            )?;
            make_readonly(mounted, "the container may read /sys, not write it")
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
