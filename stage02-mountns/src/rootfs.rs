//! The layer of stage 2: a new root filesystem, assembled and then pivoted into.
//!
//! In the child, in order: make the rootfs a mount point, fill in what a Linux program
//! expects to find (/proc, /dev, /sys, /tmp), hide what it must not touch, add the
//! user's volumes, and finally `pivot_root` into it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::{Child, Cleanup, Layer, MadeFile, Prepare};
use libc::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
};
use nix::sched::CloneFlags;

use crate::at::At;
use crate::inroot::Root;
use crate::leftovers::Leftovers;
use crate::volumes::{self, Volume};
use crate::{dev, host, made, masks, newmount, pivot, reach};

/// The directories of the rootfs the layer mounts on (created if missing).
pub const MOUNT_POINTS: [&str; 4] = ["proc", "dev", "sys", "tmp"];

/// Where the container's root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory holding a root filesystem (`--rootfs DIR`).
    Dir(PathBuf),
    /// A tmpfs that borrows the host's programs (the default).
    Host,
    /// A root that a layer before this one mounts in the child and hands over in
    /// [`Child::root`] (stage 5's overlay of an image's layers).
    Made,
}

/// The mount namespace layer: a new root.
#[derive(Debug)]
pub struct Rootfs {
    source: Source,
    hostname: String,
    volumes: Vec<Volume>,
    /// Files the runtime makes for the container (taken from the layers before).
    files: Vec<MadeFile>,
    /// The rootfs directory as `prepare` checked it (held open by the parent).
    checked: Option<At>,
    /// What the run may add to the rootfs directory, to remove if it never starts.
    leftovers: Option<Leftovers>,
}

impl Rootfs {
    /// A new root from `source`, with `volumes` bound into it.
    pub fn new(source: Source, hostname: &str, volumes: Vec<Volume>) -> Self {
        Self {
            source,
            hostname: hostname.to_owned(),
            volumes,
            files: Vec::new(),
            checked: None,
            leftovers: None,
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

    fn prepare(&mut self, cx: &mut Prepare<'_>) -> Result<()> {
        self.files = std::mem::take(cx.files);
        // Fail early, in the parent, on a host path that does not exist.
        for volume in &self.volumes {
            volumes::check_host(volume)?;
        }
        if let Source::Dir(dir) = &self.source {
            let checked = check_rootfs(dir)?;
            self.leftovers = Some(Leftovers::record(
                &checked,
                &MOUNT_POINTS,
                &self.volumes,
                &self.files,
            ));
            self.checked = Some(checked);
        }
        Ok(())
    }

    // ANCHOR: rootfs_child
    fn child(&mut self, cx: &mut Child<'_>) -> Result<()> {
        // Stage 1's layer ran before us: mounts are private and /proc is fresh.
        // Open the volumes' host paths first, while every host path is still in
        // view (the host rootfs is about to cover /tmp). It happens here and not in
        // the parent because a bind mount's source must be in our mount namespace.
        let opened_volumes = self
            .volumes
            .iter()
            .map(volumes::open_host)
            .collect::<Result<Vec<_>>>()?;
        let root = match &self.source {
            Source::Dir(dir) => {
                // From here on the rootfs is this fd: no name in it is looked up from
                // `/` again, so renaming its directories cannot redirect anything.
                let directory = At::open_dir(dir)?;
                if let Some(checked) = &self.checked {
                    ensure_same_directory(checked, &directory, dir)?;
                }
                // pivot_root needs the new root to be a mount point: a copy of the
                // directory's mount, attached onto the directory itself.
                Root::new(newmount::clone_at(&directory, true)?.attach(
                    &directory,
                    "pivot_root needs the new root to be a mount point",
                )?)
            }
            Source::Host => host::build(&self.hostname)?,
            Source::Made => Root::new(At::from(
                cx.root
                    .take()
                    .context("no layer made the container's root")?,
            )),
        };
        // Each mount point is opened (a plain directory, never a symlink), and the
        // mount is attached onto that fd. What goes inside a mount is then made
        // relative to the fd of its root, which `attach` returns.
        let proc = newmount::clone_path("/proc", true)?.attach(
            &root.mount_point("proc")?,
            "carry stage 1's fresh /proc (our PID namespace's) into the new root",
        )?;
        let dev = newmount::filesystem(
            "tmpfs",
            "mode=0755,size=65536k",
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME,
        )?
        .attach(
            &root.mount_point("dev")?,
            "a /dev of our own instead of the host's",
        )?;
        dev::populate(&dev, cx.process.terminal)?;
        let sys = mount_sys(&root.mount_point("sys")?)?;
        masks::apply(&proc, &sys)?;
        made::bind(&root, &self.files)?;
        newmount::filesystem("tmpfs", "mode=1777", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?
            .attach(&root.mount_point("tmp")?, "a private, writable /tmp")?;
        for volume in &opened_volumes {
            volumes::mount(&root, volume)?;
        }
        if let Some(dir) = &cx.process.cwd {
            cx.workdir = Some(root.workdir(dir)?);
        }
        pivot::pivot_into(root.at())
    }
    // ANCHOR_END: rootfs_child

    fn cleanup(&mut self, cx: &mut Cleanup) {
        // A run that never started leaves the rootfs directory as it found it.
        if !cx.started
            && let Some(leftovers) = &self.leftovers
        {
            leftovers.remove();
        }
    }
}

// ANCHOR: mount_sys
/// /sys, read-only. A fresh sysfs shows the devices of our network namespace; where
/// the kernel refuses one (a user namespace that does not own its network namespace,
/// stage 3), a read-only copy of the host's /sys is the fallback, as runc does.
/// Returns the root of the mount attached onto `point`.
fn mount_sys(point: &At) -> Result<At> {
    let flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    match newmount::filesystem("sysfs", "", flags) {
        Ok(sysfs) => sysfs.attach(point, "kernel objects, read-only"),
        Err(_) => newmount::clone_path("/sys", true)?.read_only()?.attach(
            point,
            "sysfs may not be mounted here: a read-only copy of the host's",
        ),
    }
}
// ANCHOR_END: mount_sys

// ANCHOR: check_rootfs
/// A rootfs must be a directory that the caller may enter, and not the host's own root
/// in disguise (`/tmp/..`, a symlink to `/`, a bind mount of it). Returns it opened.
fn check_rootfs(dir: &Path) -> Result<At> {
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
        Err(err) if err.kind() == ErrorKind::NotFound => bail!(
            "--rootfs {}: no such directory; give one that holds a root filesystem, e.g. \
             made from busybox as in the book's chapter 2, \"A root filesystem from \
             busybox\" (mkdir -p ROOTFS/bin ROOTFS/etc; cp /bin/busybox ROOTFS/bin/; one \
             symlink per applet), or omit --rootfs to borrow the host's programs",
            dir.display()
        ),
        Err(err) if err.kind() == ErrorKind::PermissionDenied => return Err(reach::denied(dir)),
        Err(err) => bail!("--rootfs {}: {err}", dir.display()),
    }
    // Mount points are opened in it: the caller must be able to enter it, or the run
    // would fail later, inside the container.
    if !reach::may_enter(dir) {
        return Err(reach::denied(dir));
    }
    let canonical = fs::canonicalize(dir).with_context(|| format!("--rootfs {}", dir.display()))?;
    let opened = At::open_dir(dir)?;
    if canonical == Path::new("/") || same_file(&opened, &At::open_dir(Path::new("/"))?)? {
        bail!(
            "--rootfs {}: that is the host's own root (it resolves to {}), not a \
             container's rootfs; give a directory that holds one, or omit --rootfs for \
             the default",
            dir.display(),
            canonical.display()
        );
    }
    Ok(opened)
}
// ANCHOR_END: check_rootfs

/// In the child: the rootfs it opened must be the directory the parent checked. A
/// directory of the path renamed in between (and `/` swapped in) is refused.
fn ensure_same_directory(checked: &At, opened: &At, dir: &Path) -> Result<()> {
    if !same_file(checked, opened)? {
        bail!(
            "--rootfs {}: the directory changed while the container was being set up \
             (renamed or replaced?); nothing was run",
            dir.display()
        );
    }
    Ok(())
}

/// Whether two fds hold the same file (same device and inode).
fn same_file(a: &At, b: &At) -> Result<bool> {
    let (a, b) = (nix::sys::stat::fstat(a)?, nix::sys::stat::fstat(b)?);
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}
