//! Working relative to an fd: the `*at()` system calls.
//!
//! A path is looked up again each time it is used, so whoever may rename a directory
//! along it decides, at that moment, where it leads. An fd is looked up once and then
//! holds the object itself. So once the runtime holds a directory it works *relative to
//! that fd*: `openat`, `mkdirat`, `symlinkat`, and mounts attached onto an fd
//! ([`crate::newmount`]), never a name from `/` again.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::symlinkat;

/// A file or directory held by an fd.
#[derive(Debug)]
pub struct At(OwnedFd);

impl From<OwnedFd> for At {
    fn from(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

impl AsFd for At {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<At> for OwnedFd {
    fn from(at: At) -> Self {
        at.0
    }
}

impl At {
    /// Opens whatever is at `path`, as the caller's root and cwd resolve it.
    pub fn open_path(path: &Path) -> nix::Result<Self> {
        open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map(Self)
    }

    /// Opens the directory at `path`, as the caller's root and cwd resolve it.
    pub fn open_dir(path: &Path) -> Result<Self> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = open(path, flags, Mode::empty()).with_context(|| format!("opening {path:?}"))?;
        Ok(Self(fd))
    }

    /// Opens `name` below this directory: never through a symlink, never out of it.
    /// For trees the runtime made itself (a fresh tmpfs, proc, sysfs), which nobody
    /// else can change; an untrusted rootfs is resolved by [`crate::inroot::Root`].
    pub fn open(&self, name: impl AsRef<Path>) -> nix::Result<Self> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        openat2(self.as_fd(), name.as_ref(), how).map(Self)
    }

    /// Makes the directory `name` here and returns it opened.
    pub fn mkdir(&self, name: &str, mode: u32) -> Result<Self> {
        mkdirat(self.as_fd(), name, Mode::from_bits_truncate(mode))
            .with_context(|| format!("mkdir {:?}", self.shown().join(name)))?;
        self.open(name)
            .with_context(|| format!("opening {:?}", self.shown().join(name)))
    }

    // ANCHOR: create_file
    /// Creates the empty regular file `name` here: a new one (`O_EXCL`), never
    /// through a symlink (`O_NOFOLLOW`). It is returned open, to mount onto.
    pub fn create_file(&self, name: &str, mode: u32) -> Result<Self> {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        openat(self.as_fd(), name, flags, Mode::from_bits_truncate(mode))
            .map(Self)
            .with_context(|| format!("creating {:?}", self.shown().join(name)))
    }
    // ANCHOR_END: create_file

    /// Creates the file `name` here, holding `text`.
    pub fn write_file(&self, name: &str, text: &str) -> Result<()> {
        let file = File::from(self.create_file(name, 0o644)?.0);
        (&file)
            .write_all(text.as_bytes())
            .with_context(|| format!("writing {:?}", self.shown().join(name)))
    }

    /// Makes `name` here a symlink to `target`.
    pub fn symlink(&self, target: impl AsRef<OsStr>, name: &str) -> Result<()> {
        let target = Path::new(target.as_ref());
        symlinkat(target, self.as_fd(), name)
            .with_context(|| format!("symlink {:?} -> {target:?}", self.shown().join(name)))
    }

    /// What this fd stands for, for people (`--explain`, errors): the path the kernel
    /// reports for it (`readlink /proc/self/fd/N`), worked out only when shown.
    pub fn shown(&self) -> Shown<'_> {
        Shown(self)
    }
}

/// See [`At::shown`].
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(&'a At);

impl Shown<'_> {
    /// The path of the fd, or `fd N` if the kernel cannot name it.
    pub fn path(&self) -> PathBuf {
        let fd = self.0.as_fd().as_raw_fd();
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .unwrap_or_else(|_| PathBuf::from(format!("fd {fd}")))
    }

    /// The path of `name` below it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.path())
    }
}

/// `openat2(2)`, tried again when it says `EAGAIN`. With `RESOLVE_IN_ROOT` or
/// `RESOLVE_BENEATH`, the kernel cannot vouch for a `..` while something is renamed or
/// mounted anywhere on the machine at that moment, and asks the caller to retry rather
/// than risk an escape; on a busy machine, that happens.
pub fn openat2<Fd: std::os::fd::AsFd>(dir: Fd, path: &Path, how: OpenHow) -> nix::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dir.as_fd(), path, how) {
            Err(Errno::EAGAIN) if tries < 1000 => tries += 1,
            result => return result,
        }
    }
}
