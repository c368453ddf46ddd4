//! `-v HOST:CTR[:ro]`: bind mounts from the host into the container.
//!
//! Two paths, two dangers. The host path is opened by the parent *before* anything
//! else, so the child binds exactly what the user named. The container path is
//! resolved *inside the rootfs*: the rootfs belongs to whoever built the image, and a
//! symlink in it (`/data -> /etc` of the host, or `../../..`) must not carry the mount
//! out of it. `openat2(RESOLVE_IN_ROOT)` makes the kernel resolve every symlink as if
//! the rootfs were `/`, so nothing it names can escape.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::{Mode, mkdirat};

use crate::mounts::{bind, remount_readonly};

/// One `-v` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path, absolute.
    pub host: PathBuf,
    /// Where it appears in the container, absolute.
    pub target: PathBuf,
    /// `:ro` was given.
    pub readonly: bool,
}

impl FromStr for Volume {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, target, mode) = match parts.as_slice() {
            [host, target] => (*host, *target, "rw"),
            [host, target, mode] => (*host, *target, *mode),
            _ => bail!("-v {spec:?}: write -v HOST:CONTAINER or -v HOST:CONTAINER:ro"),
        };
        let readonly = match mode {
            "ro" => true,
            "rw" => false,
            other => bail!("-v {spec:?}: unknown mode {other:?}; use ro or rw"),
        };
        for (what, path) in [("host", host), ("container", target)] {
            if !path.starts_with('/') {
                bail!("-v {spec:?}: the {what} path {path:?} must be absolute");
            }
        }
        if Path::new(target)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            bail!("-v {spec:?}: the container path may not contain '..'");
        }
        Ok(Self {
            host: host.into(),
            target: target.into(),
            readonly,
        })
    }
}

/// A volume whose host side is already open.
#[derive(Debug)]
pub struct OpenVolume {
    volume: Volume,
    source: OwnedFd,
    is_dir: bool,
}

/// Checks that the host side of `volume` exists (in the parent, for a clear error).
pub fn check_host(volume: &Volume) -> Result<()> {
    std::fs::metadata(&volume.host).with_context(|| {
        format!(
            "-v {}:{}: the host path cannot be used",
            volume.host.display(),
            volume.target.display()
        )
    })?;
    Ok(())
}

/// Opens the host side of `volume` (in the child, before the new root covers anything).
pub fn open_host(volume: &Volume) -> Result<OpenVolume> {
    let source = open(
        &volume.host,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| {
        format!(
            "-v {}: the host path cannot be opened",
            volume.host.display()
        )
    })?;
    let is_dir = nix::sys::stat::fstat(source.as_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false);
    Ok(OpenVolume {
        volume: volume.clone(),
        source,
        is_dir,
    })
}

// ANCHOR: volume_mount
/// Binds an opened volume at its target, resolved inside `root`.
pub fn mount(root: &Path, open: &OpenVolume) -> Result<()> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let target = create_in_root(&root_fd, &open.volume.target, open.is_dir)?;
    // Mounting onto /proc/self/fd/N mounts on the file the fd holds: the path is never
    // looked up again, so it cannot be swapped for a symlink in between.
    bind(
        &fd_path(&open.source),
        &fd_path(&target),
        true,
        "a host path, bound at a target resolved inside the rootfs",
    )?;
    if open.volume.readonly {
        // Open it again to reach the new mount on top, not the directory below it.
        let mounted = resolve_in_root(&root_fd, &open.volume.target, OFlag::empty())?;
        remount_readonly(&fd_path(&mounted), "-v ...:ro")?;
    }
    Ok(())
}
// ANCHOR_END: volume_mount

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

// ANCHOR: resolve_in_root
/// Opens `path` inside `root` with every symlink resolved as if `root` were `/`.
fn resolve_in_root(root: &OwnedFd, path: &Path, extra: OFlag) -> nix::Result<OwnedFd> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root.as_fd(), relative, how)
}
// ANCHOR_END: resolve_in_root

/// Like `mkdir -p`, inside `root`: creates what is missing of `path` (the last part as
/// a directory or an empty file) and returns it opened.
fn create_in_root(root: &OwnedFd, path: &Path, is_dir: bool) -> Result<OwnedFd> {
    let mut done = PathBuf::from("/");
    let parts: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next = done.join(part);
        match resolve_in_root(root, &next, OFlag::empty()) {
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                let parent = resolve_in_root(root, &done, OFlag::O_DIRECTORY)?;
                if last && !is_dir {
                    let how = OpenHow::new()
                        .flags(
                            OFlag::O_CREAT
                                | OFlag::O_EXCL
                                | OFlag::O_WRONLY
                                | OFlag::O_CLOEXEC
                                | OFlag::O_NOFOLLOW,
                        )
                        .mode(Mode::from_bits_truncate(0o644));
                    openat2(parent.as_fd(), part.as_os_str(), how)
                        .with_context(|| format!("creating {} in the rootfs", next.display()))?;
                } else {
                    mkdirat(
                        parent.as_fd(),
                        part.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                    .with_context(|| format!("creating {} in the rootfs", next.display()))?;
                }
            }
            Err(errno) => {
                return Err(errno)
                    .with_context(|| format!("resolving {} in the rootfs", next.display()));
            }
        }
        done = next;
    }
    resolve_in_root(root, path, OFlag::empty())
        .with_context(|| format!("resolving {} in the rootfs", path.display()))
}

/// Whether this kernel has openat2(2) (Linux 5.6), which `-v` relies on.
pub fn probe_openat2() -> common::doctor::Outcome {
    use common::doctor::Outcome;
    let root = match open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(errno) => return Outcome::Fail(format!("cannot open /: {}", errno.desc())),
    };
    match resolve_in_root(&root, Path::new("/"), OFlag::empty()) {
        Ok(_) => Outcome::Ok("resolves -v targets inside the rootfs".into()),
        Err(errno) => Outcome::Fail(format!(
            "{}: this kernel lacks openat2 (Linux 5.6+); -v cannot be resolved safely",
            errno.desc()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::Volume;

    #[test]
    fn volumes_parse_like_docker() {
        let v: Volume = "/srv/data:/data:ro".parse().unwrap();
        assert_eq!(v.host.to_str(), Some("/srv/data"));
        assert_eq!(v.target.to_str(), Some("/data"));
        assert!(v.readonly);
        assert!(!"/a:/b".parse::<Volume>().unwrap().readonly);
        assert!("relative:/b".parse::<Volume>().is_err());
        assert!("/a:b".parse::<Volume>().is_err());
        assert!("/a:/b:rx".parse::<Volume>().is_err());
        assert!("/a".parse::<Volume>().is_err());
        assert!("/a:/../b".parse::<Volume>().is_err());
    }
}
