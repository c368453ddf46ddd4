//! `-v HOST:CTR[:ro]`: bind mounts from the host into the container.
//!
//! Two paths, two dangers. The host path is opened first, in the child, before the new
//! root covers anything, so the child binds exactly what the user named. The container
//! path is resolved *inside the rootfs*: the rootfs belongs to whoever built the image,
//! and a symlink in it (`/data -> /etc` of the host, or `../../..`) must not carry the
//! mount out of it. [`Root::create`] has the kernel resolve every symlink as if the
//! rootfs were `/`, so nothing it names can escape.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use crate::inroot::Root;
use crate::mounts::{bind, make_readonly};

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
/// Binds an opened volume at its target, resolved inside the rootfs.
pub fn mount(root: &Root, open: &OpenVolume) -> Result<()> {
    let target = root.create(&open.volume.target, open.is_dir)?;
    // Mounting onto /proc/self/fd/N mounts on the file the fd holds: the path is never
    // looked up again, so it cannot be swapped for a symlink in between.
    let source = PathBuf::from(format!("/proc/self/fd/{}", open.source.as_raw_fd()));
    bind(
        &source,
        &target.path(),
        true,
        "a host path, bound at a target resolved inside the rootfs",
    )?;
    if open.volume.readonly {
        // Open it again to reach the new mount on top, not the directory below it.
        let mounted = root.resolve(&open.volume.target, OFlag::empty())?;
        make_readonly(
            &mounted.path(),
            "-v ...:ro: read-only, with every mount below it",
        )?;
    }
    Ok(())
}
// ANCHOR_END: volume_mount

/// Whether this kernel has openat2(2) (Linux 5.6), which the rootfs relies on.
pub fn probe_openat2() -> common::doctor::Outcome {
    use common::doctor::Outcome;
    match Root::open(Path::new("/")).map(|root| root.resolve(Path::new("/"), OFlag::empty())) {
        Ok(Ok(_)) => Outcome::Ok("resolves paths inside the rootfs".into()),
        Ok(Err(errno)) => Outcome::Fail(format!(
            "{}: this kernel lacks openat2 (Linux 5.6+); paths in the rootfs cannot be resolved safely",
            errno.desc()
        )),
        Err(err) => Outcome::Fail(format!("{err:#}")),
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
