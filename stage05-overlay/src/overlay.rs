//! The layer of stage 5: the container's root is an overlay of an image's layers.
//!
//! OverlayFS stacks directories: the image's layers, read-only (`lowerdir`, the top
//! one first), under one directory of the container's own (`upperdir`), where every
//! change lands: a file written is copied up there first, a file deleted is hidden by
//! a whiteout there. The image's layers are never written, so any number of containers
//! share them, and the next run of the image starts from them again.
//!
//! ```text
//!   /  (merged)       what the container sees
//!   upperdir          containers/<id>/upper: the container's changes
//!   lowerdir 3        layers/<diff_id>/diff  (the image's top layer)
//!   lowerdir 2        ...
//!   lowerdir 1        the base layer
//! ```
//!
//! The parent prepares (the image's layers unpacked); the child makes the container's
//! directories while the parent writes its id maps, then mounts the overlay, inside
//! its user namespace (Linux 5.11 lets
//! the root of a user namespace mount one, with `userxattr`: overlay's own notes,
//! such as opaque directories, are then `user.overlay.*` attributes), and hands its
//! root to stage 2's layer, which pivots into it as into a `--rootfs`.
//!
//! That is the `overlay` storage driver. Where the kernel cannot mount an overlay in a
//! user namespace, `fuse-overlayfs` serves the same from user space ([`crate::fuse`]:
//! the child mounts `/dev/fuse`, a daemon the parent starts answers it), and where that
//! is missing too, the layers are copied; [`crate::driver`] chooses.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::{Child, Cleanup, Layer, Parent, Prepare, explain};
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID};
use stage02_mountns::at::At;
use stage02_mountns::newmount;

use crate::config;
use crate::container::Container;
use crate::driver::{self, Driver};
use crate::fuse;
use crate::reference::Reference;
use crate::store::{Lease, Store};
use crate::userns::as_container_root;

/// What `run` asked of the image.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--storage-driver`.
    pub driver: Driver,
    /// `--rm`: remove the container's writable layer when it exits.
    pub remove: bool,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// `-u`.
    pub user: Option<String>,
}

/// The overlay layer.
#[derive(Debug)]
pub struct Overlay {
    options: Options,
    /// The image's layer directories, top first (overlay's order).
    lowers: Vec<PathBuf>,
    /// The image's layer blobs, bottom first, for a copy.
    blobs: Vec<PathBuf>,
    container: Option<Container>,
    /// The driver `prepare` chose.
    driver: Driver,
    /// The kernel's overlay: whether the child made the container's directories ahead
    /// of time ([`Layer::child_early`]).
    early: Option<Result<()>>,
    /// fuse-overlayfs: the socket the child sends `/dev/fuse` over, then the daemon.
    channel: Option<fuse::Channel>,
    daemon: Option<fuse::Daemon>,
    /// Holds the image's blobs and layers while the container runs: no `rmi` or gc
    /// takes them away.
    lease: Option<Lease>,
    rootless: bool,
}

impl Overlay {
    pub fn new(options: Options) -> Self {
        Self {
            options,
            lowers: Vec::new(),
            blobs: Vec::new(),
            container: None,
            driver: Driver::Auto,
            early: None,
            channel: None,
            daemon: None,
            lease: None,
            rootless: !nix::unistd::geteuid().is_root(),
        }
    }
}

impl Layer for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    // ANCHOR: overlay_prepare
    fn prepare(&mut self, cx: &mut Prepare<'_>) -> Result<()> {
        // `run IMAGE [CMD...]`: the image is the first word; none at all is the
        // offline default.
        let name = if cx.process.argv.is_empty() {
            crate::busybox::NAME.to_owned()
        } else {
            cx.process.argv.remove(0)
        };
        let reference: Reference = name.parse()?;
        let store = Store::open(Store::default_root()?)?;
        let image = crate::busybox::load_or_import(&store, &reference)?;
        let mut blobs = vec![image.manifest.clone()];
        blobs.extend(image.layers.iter().map(|l| l.blob.clone()));
        self.lease = Some(store.lease_holding(&blobs, &image.diff_ids())?);
        // Once per layer, ever: a run of an image the store has unpacked starts at once.
        if !image
            .diff_ids()
            .iter()
            .all(|diff_id| store.has_layer(diff_id))
        {
            let root = store.root().to_owned();
            let rootless = self.rootless;
            let unpacking = image.clone();
            as_container_root(&format!("unpacking {reference}"), move || {
                let store = Store::open(root)?;
                unpacking.unpack(&store, rootless).map(drop)
            })?;
        }
        self.lowers = image
            .diff_ids()
            .iter()
            .rev()
            .map(|diff_id| store.layer_path(diff_id))
            .collect();
        self.blobs = image
            .layers
            .iter()
            .map(|layer| store.blob_path(&layer.blob))
            .collect();
        config::apply(&image, &self.options, cx.process)?;
        let wanted = self.options.user.clone().or_else(|| {
            image
                .config
                .config()
                .as_ref()
                .and_then(|c| c.user().clone())
        });
        if let Some(spec) =
            wanted.filter(|spec| !matches!(spec.as_str(), "" | "root" | "0" | "0:0"))
        {
            crate::user::check(&spec)?;
            cx.process.user = Some(crate::user::resolve(&spec, &self.lowers)?);
        }
        let (driver, why) = driver::choose(self.options.driver, &store);
        explain::step(format_args!("storage driver: {driver}"), &why);
        if driver == Driver::Copy && self.options.driver == Driver::Auto {
            eprintln!(
                "{}: notice: {why}: the image is copied instead",
                common::program::name()
            );
        }
        self.driver = driver;
        // The kernel's overlay: the child makes the container's directories itself,
        // ahead, while we write its id maps (see `child_early`).
        let container = Container::new(&store, cx.id)?;
        if matches!(driver, Driver::Copy | Driver::FuseOverlayfs) {
            container.make()?;
            container.make_root()?;
        }
        self.container = Some(container);
        if driver == Driver::FuseOverlayfs {
            // Made last, so that no process forked before `clone` holds an end.
            self.channel = Some(fuse::Channel::new()?);
        }
        Ok(())
    }
    // ANCHOR_END: overlay_prepare

    // ANCHOR: fuse_parent
    fn parent(&mut self, cx: &mut Parent) -> Result<()> {
        // fuse-overlayfs's daemon is started from outside, and waits for the child.
        let Some(channel) = self.channel.as_mut() else {
            return Ok(());
        };
        let container = self.container.as_ref().context("no container directory")?;
        let binary = stage03_userns::which(driver::FUSE_OVERLAYFS)
            .context("fuse-overlayfs is not on PATH: apt-get install fuse-overlayfs")?;
        let lowers = self
            .lowers
            .iter()
            .map(|dir| option_path(dir))
            .collect::<Result<Vec<_>>>()?;
        let options = fuse_options(
            &lowers,
            &option_path(&container.upper())?,
            &option_path(&container.work())?,
            self.options.remove,
        );
        let log = container.path().join("fuse-overlayfs.log");
        self.daemon = Some(channel.start(&binary, cx.pid, &options, &log)?);
        Ok(())
    }
    // ANCHOR_END: fuse_parent

    // ANCHOR: overlay_early
    /// The container's directories are made by the child, while the parent writes its
    /// id maps: on a disk each costs more than most system calls of a start, and the
    /// child has nothing else to do then. Nothing needs the maps for this: the kernel
    /// checks the child's host ids, whose directories these are. The overlay itself
    /// must wait for them: it works in a directory of mode 000, `work/work`, where only
    /// a root whose user namespace maps the directory's owner may enter.
    fn child_early(&mut self) {
        if let (Driver::Overlay | Driver::Auto, Some(container)) = (self.driver, &self.container) {
            self.early = Some(container.make());
        }
    }
    // ANCHOR_END: overlay_early

    fn child(&mut self, cx: &mut Child<'_>) -> Result<()> {
        let early = self.early.take();
        let container = self.container.as_ref().context("no container directory")?;
        let root = match self.driver {
            Driver::Overlay | Driver::Auto => match self.mount_overlay(container, early) {
                Ok(root) => root,
                // `auto` chose overlay from a probe; should the mount still fail, a
                // copy does what overlay would.
                Err(err) if self.options.driver == Driver::Auto => {
                    eprintln!(
                        "{}: notice: no overlay ({err:#}); the image is copied instead",
                        common::program::name()
                    );
                    self.copy(container)?
                }
                Err(err) => return Err(err),
            },
            Driver::FuseOverlayfs => self
                .channel
                .as_mut()
                .context("no channel to fuse-overlayfs")?
                .mount(&At::open_dir(&container.make_root()?)?)?,
            Driver::Copy => self.copy(container)?,
        };
        cx.root = Some(OwnedFd::from(root));
        Ok(())
    }

    fn cleanup(&mut self, cx: &mut Cleanup) {
        // The container is gone: fuse-overlayfs stops serving its root.
        self.channel = None;
        if let Some(mut daemon) = self.daemon.take()
            && let Some(why) = daemon.stop()
        {
            eprintln!("{}: warning: {why}", common::program::name());
        }
        // A run that never started leaves no container behind, --rm or not.
        if (self.options.remove || !cx.started)
            && let Some(container) = self.container.take()
        {
            let dir = container.path().to_owned();
            // What container root made as another user (a subordinate id) only the
            // containers' root may remove.
            let removed = container.remove().or_else(|_| {
                as_container_root("removing the container's writable layer", || {
                    container.remove()
                })
            });
            match removed {
                Ok(()) => explain::step(
                    format_args!("rm -r {}", dir.display()),
                    "--rm: the container's writable layer goes; the image's layers stay",
                ),
                Err(err) => eprintln!("{}: warning: {err:#}", common::program::name()),
            }
        }
        if let Some(lease) = self.lease.take() {
            let _ = lease.release();
        }
    }
}

impl Overlay {
    // ANCHOR: mount_overlay
    /// Mounts the overlay (in the directories `child_early` made: `early`) over the
    /// container's own directory: any directory can be a mount point, and this one is
    /// there already. The overlay holds `upper/` and `work/` open from `fsconfig` on,
    /// so hiding them below it takes nothing from it; and the mount is in the child's
    /// mount namespace only, so the host still sees the directory as it was. One
    /// directory fewer to make and remove per run: on a disk, removing one costs more
    /// than many of the system calls of a start.
    fn mount_overlay(&self, container: &Container, early: Option<Result<()>>) -> Result<At> {
        early.unwrap_or_else(|| container.make())?;
        let upper = option_path(&container.upper())?;
        let work = option_path(&container.work())?;
        let lowers = self
            .lowers
            .iter()
            .map(|dir| option_path(dir))
            .collect::<Result<Vec<_>>>()?;
        let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        // A container removed when it exits needs no sync of what it wrote: unmounting
        // an overlay otherwise syncs the whole filesystem of its upper directory.
        let volatile = self.options.remove;
        let appended = overlay_options(&lowers, &upper, &work, self.rootless, volatile);
        let (opened, listed);
        let overlay = match newmount::filesystem("overlay", &appended, attrs) {
            Ok(overlay) => overlay,
            // An older kernel: one `lowerdir` list, its layers named by the shortest
            // paths there are, those of fds (`/proc/self/fd/N`).
            Err(_) => {
                opened = self
                    .lowers
                    .iter()
                    .map(|dir| At::open_dir(dir))
                    .collect::<Result<Vec<_>>>()?;
                let list = opened
                    .iter()
                    .map(|at| format!("/proc/self/fd/{}", at.as_fd().as_raw_fd()))
                    .collect::<Vec<_>>()
                    .join(":");
                let rest = overlay_options(&[], &upper, &work, self.rootless, volatile);
                listed = format!("lowerdir={list},{rest}");
                newmount::filesystem("overlay", &listed, attrs)?
            }
        };
        overlay.attach(
            &At::open_dir(container.path())?,
            "the image's layers under the container's own: its root filesystem",
        )
    }
    // ANCHOR_END: mount_overlay

    /// The fallback: every layer applied, bottom first, onto the container's directory
    /// (whiteouts delete, opaque directories empty), which is then bound onto itself
    /// to be a mount point, as a `--rootfs` is.
    fn copy(&self, container: &Container) -> Result<At> {
        let dir = At::open_dir(&container.make_root()?)?;
        let options = crate::unpack::Options {
            rootless: self.rootless,
        };
        for blob in &self.blobs {
            let file =
                std::fs::File::open(blob).with_context(|| format!("opening {}", blob.display()))?;
            crate::unpack::apply_flat(file, &dir, &options)?;
        }
        explain::step(
            format_args!(
                "copy {} layers into {}",
                self.blobs.len(),
                container.root().display()
            ),
            "no overlay: the container's root is a copy of the image, made for it alone",
        );
        newmount::clone_at(&dir, true)?
            .attach(&dir, "the copy becomes a mount point, for pivot_root")
    }
}

/// The options of an overlay of `lowers` (top first) under `upper`, with `work` as
/// overlay's scratch directory; `rootless` when a user namespace's root mounts it;
/// `volatile` for a container removed when it exits (`--rm`).
pub fn overlay_options(
    lowers: &[String],
    upper: &str,
    work: &str,
    rootless: bool,
    volatile: bool,
) -> String {
    // ANCHOR: overlay_options
    // EXERCISE: one "lowerdir+=DIR" per layer, top first (Linux 6.8: fsconfig(2) takes a value of at most 256 bytes, too short for a whole list), then "upperdir=UPPER" and "workdir=WORK", "userxattr" when rootless (overlay's own notes as user.overlay.* attributes, the only ones a user namespace's root may write), and "volatile" when volatile (no sync of the upper directory, which is thrown away anyway), all joined by commas
    let mut options: Vec<String> = lowers
        .iter()
        .map(|dir| format!("lowerdir+={dir}"))
        .collect();
    options.push(format!("upperdir={upper}"));
    options.push(format!("workdir={work}"));
    if rootless {
        options.push("userxattr".to_owned());
    }
    if volatile {
        options.push("volatile".to_owned());
    }
    options.join(",")
    // ANCHOR_END: overlay_options
}

/// fuse-overlayfs's options: overlay's classic `lowerdir` list (top first), and
/// `volatile` (no fsync) for a container removed when it exits.
pub fn fuse_options(lowers: &[String], upper: &str, work: &str, volatile: bool) -> String {
    let mut options = format!(
        "lowerdir={},upperdir={upper},workdir={work}",
        lowers.join(":")
    );
    if volatile {
        options.push_str(",volatile");
    }
    options
}

/// A path as an overlay option: `,` separates options and `:` lower directories, so a
/// path holding either cannot be given.
fn option_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{}: not UTF-8", path.display()))?;
    if text.contains([',', ':']) {
        bail!(
            "{text}: overlay options cannot name a path with ',' or ':'; move the store \
             (set XDG_DATA_HOME) to a path without them"
        );
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_overlayfs_takes_one_lowerdir_list_top_first() {
        let lowers = [
            "/s/layers/top/diff".to_owned(),
            "/s/layers/base/diff".to_owned(),
        ];
        assert_eq!(
            fuse_options(&lowers, "/c/upper", "/c/work", false),
            "lowerdir=/s/layers/top/diff:/s/layers/base/diff,upperdir=/c/upper,workdir=/c/work"
        );
        assert!(fuse_options(&lowers, "/c/upper", "/c/work", true).ends_with(",volatile"));
    }

    #[test]
    fn a_path_that_would_split_an_option_is_refused() {
        assert!(option_path(Path::new("/a,b")).is_err());
        assert!(option_path(Path::new("/a:b")).is_err());
        assert_eq!(option_path(Path::new("/a/b")).ok().as_deref(), Some("/a/b"));
    }
}
