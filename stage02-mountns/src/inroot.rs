//! Paths inside the rootfs, resolved by the kernel as if the rootfs were `/`.
//!
//! A rootfs is untrusted input: it comes from an image, or from a user. A symlink in it
//! (`proc -> /`, `data -> ../../../etc`) would send a mount that we mean for the
//! container somewhere else. So the rootfs is held by an fd, every path in it is opened
//! with `openat2(2)`, and mounts are attached onto the fds it returns: the kernel
//! mounts on the object the fd holds, and the path is never looked up again.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, mkdirat};

use crate::at::{At, openat2};

/// The rootfs, held open: the root of the mount that becomes the container's `/`.
#[derive(Debug)]
pub struct Root(At);

impl Root {
    /// The rootfs whose root directory `at` holds.
    pub fn new(at: At) -> Self {
        Self(at)
    }

    /// The rootfs's root directory.
    pub fn at(&self) -> &At {
        &self.0
    }

    // ANCHOR: mount_point
    /// A top-level directory the runtime mounts on (`proc`, `dev`, `sys`, `tmp`),
    /// created if missing. It must be a real directory: a symlink there is refused,
    /// since whatever it points to would be covered.
    pub fn mount_point(&self, name: &str) -> Result<At> {
        let open = || {
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            openat2(self.0.as_fd(), Path::new(name), how).map(At::from)
        };
        let opened = match open() {
            Err(Errno::ENOENT) => {
                mkdirat(self.0.as_fd(), name, Mode::from_bits_truncate(0o755))
                    .with_context(|| format!("creating /{name} in the rootfs"))?;
                open()
            }
            opened => opened,
        };
        match opened {
            Err(Errno::ELOOP | Errno::ENOTDIR) => bail!(
                "/{name} in the rootfs is not a directory (a symlink?): the runtime mounts \
                 there, so it must be a plain directory"
            ),
            opened => opened.with_context(|| format!("opening /{name} in the rootfs")),
        }
    }
    // ANCHOR_END: mount_point

    // ANCHOR: resolve_in_root
    /// Opens `path` with every symlink resolved as if the rootfs were `/`: `..` stops
    /// at the rootfs, and an absolute symlink starts from it.
    pub fn resolve(&self, path: &Path, extra: OFlag) -> nix::Result<At> {
        let relative = path.strip_prefix("/").unwrap_or(path);
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.0.as_fd(), relative, how).map(At::from)
    }
    // ANCHOR_END: resolve_in_root

    // ANCHOR: workdir
    /// Opens the working directory `-w dir` inside the rootfs, for the runner to
    /// `fchdir` into once the root has changed. Resolved like every path in the rootfs,
    /// so `-w /proc/self/fd/N` (a magic link to wherever fd N points, CVE-2024-21626)
    /// and symlinks that climb out end inside the root or fail.
    pub fn workdir(&self, dir: &Path) -> Result<OwnedFd> {
        match self.resolve(dir, OFlag::O_DIRECTORY) {
            Ok(dir) => Ok(OwnedFd::from(dir)),
            Err(Errno::ENOENT) => bail!(
                "-w {}: no such directory in the container's root (keel does not create \
                 it: make it in the rootfs, or choose one that exists)",
                dir.display()
            ),
            Err(Errno::ENOTDIR) => bail!(
                "-w {}: not a directory in the container's root",
                dir.display()
            ),
            Err(Errno::ELOOP | Errno::EXDEV) => bail!(
                "-w {}: the path goes through a magic link (such as /proc/self/fd/N), which \
                 could lead out of the container's root; give a plain directory",
                dir.display()
            ),
            Err(errno) => Err(errno)
                .with_context(|| format!("-w {}: resolving it in the rootfs", dir.display())),
        }
    }
    // ANCHOR_END: workdir

    /// Like `mkdir -p` inside the rootfs: creates what is missing of `path` (the last
    /// part as a directory or an empty file) and returns it opened.
    pub fn create(&self, path: &Path, is_dir: bool) -> Result<At> {
        let parts: Vec<_> = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let mut done = PathBuf::from("/");
        for (i, part) in parts.iter().enumerate() {
            let next = done.join(part);
            match self.resolve(&next, OFlag::empty()) {
                Ok(_) => {}
                Err(Errno::ENOENT) => {
                    let parent = self.resolve(&done, OFlag::O_DIRECTORY)?;
                    let file = i + 1 == parts.len() && !is_dir;
                    match create_one(&parent, part.as_os_str(), file) {
                        Ok(()) => {}
                        // The name exists, yet resolving it found nothing: a symlink
                        // whose target is not in the rootfs (perhaps on the host).
                        Err(Errno::EEXIST) => bail!(
                            "{} in the rootfs is a symlink to a path the rootfs does not \
                             have: keel follows links inside the rootfs, never out of it, \
                             and makes no target for one; make the link's target in the \
                             rootfs, or replace the link with a plain file or directory",
                            next.display()
                        ),
                        Err(errno) => {
                            return Err(errno).with_context(|| {
                                format!("creating {} in the rootfs", next.display())
                            });
                        }
                    }
                }
                Err(errno) => {
                    return Err(errno)
                        .with_context(|| format!("resolving {} in the rootfs", next.display()));
                }
            }
            done = next;
        }
        self.resolve(path, OFlag::empty())
            .with_context(|| format!("resolving {} in the rootfs", path.display()))
    }
}

/// Creates one directory, or one empty file, in `parent` (never through a symlink).
fn create_one(parent: &At, name: &std::ffi::OsStr, file: bool) -> nix::Result<()> {
    if file {
        let how = OpenHow::new()
            .flags(
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_CLOEXEC
                    | OFlag::O_NOFOLLOW,
            )
            .mode(Mode::from_bits_truncate(0o644));
        openat2(parent.as_fd(), Path::new(name), how).map(drop)
    } else {
        mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755))
    }
}
