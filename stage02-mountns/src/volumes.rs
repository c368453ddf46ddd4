//! `-v HOST:CTR[:ro]`: bind mounts from the host into the container.
//!
//! Two paths, two dangers. The host path is opened first, in the child, before the new
//! root covers anything, so the child binds exactly what the user named. The container
//! path is resolved *inside the rootfs*: the rootfs belongs to whoever built the image,
//! and a symlink in it (`/data -> /etc` of the host, or `../../..`) must not carry the
//! mount out of it. [`Root::create`] has the kernel resolve every symlink as if the
//! rootfs were `/`, so nothing it names can escape.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;

use crate::at::At;
use crate::inroot::Root;
use crate::newmount;

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
        let parts: Vec<Component> = Path::new(target).components().collect();
        if parts.contains(&Component::ParentDir) {
            bail!("-v {spec:?}: the container path may not contain '..'");
        }
        if !parts.iter().any(|c| matches!(c, Component::Normal(_))) {
            bail!(
                "-v {spec:?}: the container path may not be / (the volume would cover the whole root)"
            );
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
    source: At,
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
    let source = At::open_path(&volume.host).with_context(|| {
        format!(
            "-v {}: the host path cannot be opened",
            volume.host.display()
        )
    })?;
    let is_dir = nix::sys::stat::fstat(&source)
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
    // A copy of the host path's mount tree, made read-only before it is attached (if
    // asked), then attached onto the fd of the target: no path is looked up again.
    let mut copy = newmount::clone_at(&open.source, true)?;
    if open.volume.readonly {
        copy = copy.read_only()?;
    }
    copy.attach(
        &target,
        "a host path, at a target resolved inside the rootfs",
    )?;
    Ok(())
}
// ANCHOR_END: volume_mount

/// Whether this kernel has openat2(2) (Linux 5.6), which the rootfs relies on.
pub fn probe_openat2() -> common::doctor::Outcome {
    use common::doctor::Outcome;
    match At::open_dir(Path::new("/"))
        .map(|root| Root::new(root).resolve(Path::new("/"), OFlag::empty()))
    {
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
    use std::path::Component;

    use proptest::prelude::*;

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
        assert!("/a:/".parse::<Volume>().is_err());
        assert!("/a:/./".parse::<Volume>().is_err());
    }

    /// Specs made of the characters that matter to the parser, so that most of them
    /// are nearly valid.
    fn spec() -> impl Strategy<Value = String> {
        let path = "(/(\\.\\.|\\.|[a-z]{1,3})){0,3}/?";
        (path, path, "(|:ro|:rw|:x|:ro:ro)")
            .prop_map(|(host, target, mode)| format!("{host}:{target}{mode}"))
    }

    proptest! {
        #[test]
        fn any_string_is_parsed_or_refused_without_panicking(spec in any::<String>()) {
            let _ = spec.parse::<Volume>();
        }

        #[test]
        fn strings_of_colons_and_slashes_never_panic(spec in "[/:.a-z]{0,24}") {
            let _ = spec.parse::<Volume>();
        }

        #[test]
        fn accepted_volumes_keep_their_invariants_and_round_trip(spec in spec()) {
            if let Ok(volume) = spec.parse::<Volume>() {
                prop_assert!(volume.host.is_absolute(), "{spec:?}: host {:?}", volume.host);
                prop_assert!(volume.target.is_absolute(), "{spec:?}: target {:?}", volume.target);
                let parts: Vec<Component> = volume.target.components().collect();
                prop_assert!(!parts.contains(&Component::ParentDir), "{spec:?}: '..' in the target");
                prop_assert!(
                    parts.iter().any(|c| matches!(c, Component::Normal(_))),
                    "{spec:?}: the target is the container's root"
                );
                let mode = if volume.readonly { ":ro" } else { "" };
                let written = format!("{}:{}{mode}", volume.host.display(), volume.target.display());
                prop_assert_eq!(written.parse::<Volume>().ok(), Some(volume));
            }
        }
    }
}
