//! The new mount API (Linux 5.2): a mount is made detached, set up, and then attached
//! onto an fd.
//!
//! `mount(2)` takes paths and looks them up at the moment of the call. In a directory
//! that someone else may change, the path can lead elsewhere by then: a symlink
//! swapped in for `dev` sends the mount, and whatever the runtime writes below it, into
//! the host (runc's CVE-2021-30465). The new API works with fds from start to end:
//!
//! - `fsopen` + `fsconfig` + `fsmount`: a new filesystem (tmpfs, sysfs, devpts, ...),
//!   returned as an fd of its root, mounted nowhere yet;
//! - `open_tree(OPEN_TREE_CLONE)`: a copy of an existing mount, a bind mount, also
//!   detached;
//! - `mount_setattr`: flags such as read-only, set before anyone can see the mount;
//! - `move_mount`: attaches it onto a directory or file held by an fd.
//!
//! The fd stays the root of the mount afterwards, so what goes inside it is made
//! relative to it ([`At`]). nix has no wrappers for these calls yet: the few below
//! call them through `libc::syscall`.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};
use common::doctor::Outcome;
use common::explain;
use nix::errno::Errno;

use crate::at::At;

/// A mount that is not attached anywhere yet. `'a` is what it was made from, kept
/// for `--explain`.
#[derive(Debug)]
pub struct Detached<'a> {
    fd: OwnedFd,
    origin: Origin<'a>,
    read_only: bool,
}

#[derive(Debug)]
enum Origin<'a> {
    /// `fsopen(fstype)`, its options, `fsmount(attrs)`.
    Filesystem {
        fstype: &'a str,
        options: &'a str,
        attrs: u64,
    },
    /// `open_tree(OPEN_TREE_CLONE)` of a host path or of an fd.
    Tree { from: Source<'a>, recursive: bool },
}

#[derive(Debug)]
enum Source<'a> {
    Path(&'a Path),
    At(&'a At),
}

// ANCHOR: filesystem
/// A new instance of `fstype`, with `options` as `mount -o` writes them
/// (`"mode=0755,size=65536k"`, `"newinstance"`) and the mount flags `attrs`
/// (`libc::MOUNT_ATTR_NOSUID`, ...).
pub fn filesystem<'a>(fstype: &'a str, options: &'a str, attrs: u64) -> Result<Detached<'a>> {
    let context = fsopen(fstype).with_context(|| format!("fsopen({fstype:?})"))?;
    // The source is only a label, shown by mountinfo and findmnt.
    let source = format!("source={fstype}");
    let settings = std::iter::once(source.as_str()).chain(options.split(','));
    for setting in settings.filter(|setting| !setting.is_empty()) {
        let (key, value) = match setting.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (setting, None),
        };
        fsconfig_set(context.as_fd(), key, value).map_err(|errno| {
            kernel_says(
                &context,
                errno,
                format!("fsconfig({fstype:?}, {setting:?})"),
            )
        })?;
    }
    fsconfig_create(context.as_fd()).map_err(|errno| {
        kernel_says(
            &context,
            errno,
            format!("creating a {fstype} ({options:?})"),
        )
    })?;
    let fd = fsmount(context.as_fd(), attrs).map_err(|errno| {
        kernel_says(
            &context,
            errno,
            format!("fsmount({fstype:?}, {})", attr_names(attrs)),
        )
    })?;
    Ok(Detached {
        fd,
        origin: Origin::Filesystem {
            fstype,
            options,
            attrs,
        },
        read_only: false,
    })
}
// ANCHOR_END: filesystem

/// A copy of the mount at the host path `path` (a bind mount); `recursive` takes
/// the mounts below it along, as `mount --rbind` does.
pub fn clone_path<P: AsRef<Path> + ?Sized>(path: &P, recursive: bool) -> Result<Detached<'_>> {
    let path = path.as_ref();
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let fd = open_tree(None, &c_path, tree_flags(recursive))
        .with_context(|| format!("open_tree({path:?}, OPEN_TREE_CLONE)"))?;
    Ok(Detached {
        fd,
        origin: Origin::Tree {
            from: Source::Path(path),
            recursive,
        },
        read_only: false,
    })
}

/// A copy of the mount at what `at` holds (a bind mount of it).
pub fn clone_at(at: &At, recursive: bool) -> Result<Detached<'_>> {
    let flags = tree_flags(recursive) | libc::AT_EMPTY_PATH as u32;
    let fd = open_tree(Some(at.as_fd()), c"", flags)
        .with_context(|| format!("open_tree({}, OPEN_TREE_CLONE)", at.shown()))?;
    Ok(Detached {
        fd,
        origin: Origin::Tree {
            from: Source::At(at),
            recursive,
        },
        read_only: false,
    })
}

fn tree_flags(recursive: bool) -> u32 {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags | libc::AT_RECURSIVE as u32
    } else {
        flags
    }
}

impl<'a> Detached<'a> {
    // ANCHOR: read_only
    /// Makes the mount, and every mount below it, read-only, before it is attached.
    ///
    /// The classic way, `mount(MS_REMOUNT|MS_BIND|MS_RDONLY)` on a mounted path,
    /// changes one mount only: a read-only `-v /dev:/d:ro` would leave `/d/shm`
    /// writable. It also replaces every flag of the mount, so inside a user namespace
    /// it must repeat the flags a more privileged namespace locked (nosuid, nodev,
    /// ...). `mount_setattr(2)` (Linux 5.12) does neither: it only *adds*
    /// `MOUNT_ATTR_RDONLY`, and with `AT_RECURSIVE` to the whole tree. On a detached
    /// mount there is no moment at which the container could see it writable.
    pub fn read_only(mut self) -> Result<Self> {
        let attr = libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let flags = libc::AT_EMPTY_PATH | libc::AT_RECURSIVE;
        // SAFETY: an fd we own, an empty C string, and a mount_attr of the size we
        // pass, all alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                flags,
                &attr as *const libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        };
        Errno::result(rc)
            .with_context(|| format!("making {self} read-only (mount_setattr, Linux 5.12+)"))?;
        self.read_only = true;
        Ok(self)
    }
    // ANCHOR_END: read_only

    // ANCHOR: attach
    /// Attaches the mount onto the directory or file `onto` holds, and returns the
    /// mount's root: the fd is the same, but it now leads into the attached mount.
    pub fn attach(self, onto: &At, why: &str) -> Result<At> {
        let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
        // SAFETY: two fds we hold and two empty C strings, alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                onto.as_fd().as_raw_fd(),
                c"".as_ptr(),
                flags,
            )
        };
        Errno::result(rc)
            .with_context(|| format!("{self}; move_mount(to {}) failed", onto.shown()))?;
        explain::step(format_args!("{self}; move_mount(to {})", onto.shown()), why);
        Ok(At::from(self.fd))
    }
    // ANCHOR_END: attach
}

/// The calls that made the mount, as `--explain` shows them.
impl fmt::Display for Detached<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Filesystem {
                fstype,
                options,
                attrs,
            } => write!(
                f,
                "fsopen({fstype:?}); fsconfig({options:?}); fsmount({})",
                attr_names(*attrs)
            )?,
            Origin::Tree { from, recursive } => {
                match from {
                    Source::Path(path) => write!(f, "open_tree({path:?}, OPEN_TREE_CLONE")?,
                    Source::At(at) => write!(f, "open_tree({}, OPEN_TREE_CLONE", at.shown())?,
                }
                write!(f, "{})", if *recursive { "|AT_RECURSIVE" } else { "" })?;
            }
        }
        if self.read_only {
            write!(f, "; mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)")?;
        }
        Ok(())
    }
}

/// `MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV`, as the man pages spell them.
fn attr_names(attrs: u64) -> String {
    const NAMES: [(u64, &str); 5] = [
        (libc::MOUNT_ATTR_RDONLY, "MOUNT_ATTR_RDONLY"),
        (libc::MOUNT_ATTR_NOSUID, "MOUNT_ATTR_NOSUID"),
        (libc::MOUNT_ATTR_NODEV, "MOUNT_ATTR_NODEV"),
        (libc::MOUNT_ATTR_NOEXEC, "MOUNT_ATTR_NOEXEC"),
        (libc::MOUNT_ATTR_STRICTATIME, "MOUNT_ATTR_STRICTATIME"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| attrs & bit == *bit)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "0".to_owned()
    } else {
        names.join("|")
    }
}

/// The error of a filesystem context, with what the kernel wrote into its log: the
/// new API says *why* it refused (`e tmpfs: Bad value for 'mode'`), where `mount(2)`
/// only says `EINVAL`.
fn kernel_says(context: &OwnedFd, errno: Errno, call: String) -> anyhow::Error {
    let mut said = Vec::new();
    let mut buffer = [0u8; 256];
    // Each read returns one message; the log is empty when read fails (ENODATA).
    while let Ok(len @ 1..) = nix::unistd::read(context, &mut buffer) {
        said.push(String::from_utf8_lossy(&buffer[..len]).trim().to_owned());
    }
    said.dedup();
    if said.is_empty() {
        anyhow::anyhow!("{call}: {}", errno.desc())
    } else {
        anyhow::anyhow!("{call}: {} ({})", errno.desc(), said.join("; "))
    }
}

/// Whether this kernel has the new mount API, for `doctor`.
pub fn probe() -> Outcome {
    match fsopen("tmpfs") {
        Ok(_) | Err(Errno::EPERM) => {
            Outcome::Ok("fsopen, fsmount, open_tree and move_mount are here".into())
        }
        Err(errno) => Outcome::Fail(format!(
            "fsopen: {}: this kernel lacks the new mount API (Linux 5.2+), which every \
             mount of the rootfs goes through",
            errno.desc()
        )),
    }
}

// The system calls, one small unsafe wrapper each.

/// `fsopen(2)`: a context in which to configure a new filesystem.
fn fsopen(fstype: &str) -> Result<OwnedFd, Errno> {
    let fstype = CString::new(fstype).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a valid C string, alive for the call.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC) };
    owned(fd)
}

/// `fsconfig(FSCONFIG_SET_STRING, key, value)`, or `FSCONFIG_SET_FLAG` for a flag.
fn fsconfig_set(context: BorrowedFd<'_>, key: &str, value: Option<&str>) -> Result<(), Errno> {
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    let value = value
        .map(CString::new)
        .transpose()
        .map_err(|_| Errno::EINVAL)?;
    let (command, value_ptr) = match &value {
        Some(value) => (libc::FSCONFIG_SET_STRING, value.as_ptr()),
        None => (libc::FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: an fd we hold, C strings (or NULL) alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            command,
            key.as_ptr(),
            value_ptr,
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: the filesystem is created with the settings given.
fn fsconfig_create(context: BorrowedFd<'_>) -> Result<(), Errno> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: an fd we hold; this command takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            null,
            null,
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// `fsmount(2)`: a detached mount of the filesystem created in `context`.
fn fsmount(context: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: an fd we hold and plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    };
    owned(fd)
}

/// `open_tree(2)` of `path` relative to `dir` (the cwd if `None`).
fn open_tree(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: u32) -> Result<OwnedFd, Errno> {
    let dir = dir.map_or(libc::AT_FDCWD, |dir| dir.as_raw_fd());
    // SAFETY: an fd we hold (or AT_FDCWD), a C string alive for the call.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir, path.as_ptr(), flags) };
    owned(fd)
}

/// The fd a system call returned, owned; or its error.
fn owned(rc: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = Errno::result(rc)?;
    // SAFETY: the kernel just returned this fd to us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
