//! Whether the one who runs the runtime may reach the rootfs, and what to say if not.
//!
//! The runtime works on the host as its caller: root, or (stage 3) an ordinary user
//! whose container root is the user itself or ids given to it. A rootfs below a
//! directory the caller may not enter (`--rootfs /root/x` run by a user), or a rootfs
//! directory without search permission, would fail later, inside the container, on
//! the first mount point opened in it, with a bare "Permission denied". Checked here,
//! in the parent before `clone`, the error can name the directory in the way, its
//! mode and owner, and the fix.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Error, anyhow};
use nix::fcntl::AtFlags;
use nix::unistd::{AccessFlags, Gid, Group, Uid, User, faccessat, geteuid};

/// Whether the caller may search (enter) `dir`, with its effective ids, as `open`
/// would check them.
pub fn may_enter(dir: &Path) -> bool {
    faccessat(
        nix::fcntl::AT_FDCWD,
        dir,
        AccessFlags::X_OK,
        AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// The error for a rootfs `dir` that the caller cannot reach: the first directory on
/// the way that it may not enter, or `dir` itself.
pub fn denied(dir: &Path) -> Error {
    let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    ancestors.reverse();
    let uid = geteuid();
    match ancestors.into_iter().find(|a| !may_enter(a)) {
        Some(blocker) => anyhow!(
            "--rootfs {}: permission denied: you (uid {uid}) may not enter {} ({}), so \
             nothing below it can be reached; keep the rootfs in a directory of your own \
             (e.g. under your home), or have its owner let you through (chmod o+x {})",
            dir.display(),
            blocker.display(),
            mode_and_owner(blocker),
            blocker.display()
        ),
        None => {
            let yours = std::fs::metadata(dir).is_ok_and(|meta| meta.uid() == uid.as_raw());
            let fix = if yours {
                format!("it is yours: chmod u+rx {}", dir.display())
            } else {
                format!(
                    "its owner can let you in (chmod o+rx {0}), or make it yours \
                     (sudo chown -R {uid}:{gid} {0})",
                    dir.display(),
                    gid = nix::unistd::getegid()
                )
            };
            anyhow!(
                "--rootfs {}: permission denied: you (uid {uid}) may not enter this \
                 directory ({}), and the runtime opens the container's mount points \
                 (proc, dev, sys, tmp) in it; {fix}",
                dir.display(),
                mode_and_owner(dir)
            )
        }
    }
}

/// `mode 0700, owner root:root`, or what of it can be known.
fn mode_and_owner(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        return "its mode cannot be read".to_owned();
    };
    let user = User::from_uid(Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |user| user.name);
    let group = Group::from_gid(Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |group| group.name);
    format!("mode {:04o}, owner {user}:{group}", meta.mode() & 0o7777)
}
