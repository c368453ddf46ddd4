//! `-u USER[:GROUP]` and the image's `User`: names looked up in the image's own
//! `/etc/passwd` and `/etc/group`, as docker does (the host's say nothing about the
//! image's users).
//!
//! The files are read from the image's layers, the top one first, and every path is
//! opened beneath its layer without following a symlink: a layer whose `etc` is a
//! symlink to the host's `/etc` gets no say.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::Ids;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use stage02_mountns::at::{At, openat2};

// ANCHOR: resolve_user
/// The ids of `spec` (`NAME`, `UID`, `NAME:GROUP`, `UID:GID`) in the image whose layer
/// directories are `layers`, top first.
pub fn resolve(spec: &str, layers: &[PathBuf]) -> Result<Ids> {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let passwd = read(layers, "etc/passwd")?;
    let groups = read(layers, "etc/group")?;
    let entry = |text: &str, name: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|line| line.split(':').map(str::to_owned).collect::<Vec<_>>())
            .find(|fields| fields.len() >= 4 && fields[0] == name)
    };
    let (uid, mut gid, name) = match user.parse::<u32>() {
        Ok(uid) => {
            // A number needs no entry; with one, its group is the primary one.
            let found = passwd.as_deref().and_then(|text| {
                text.lines()
                    .map(|line| line.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 4 && f[2] == user)
                    .map(|f| (f[3].parse().unwrap_or(0), f[0].to_owned()))
            });
            let (gid, name) = found.unwrap_or((0, String::new()));
            (uid, gid, name)
        }
        Err(_) => {
            let fields = passwd
                .as_deref()
                .and_then(|text| entry(text, user))
                .with_context(|| {
                    format!("-u {spec}: no user {user:?} in the image's /etc/passwd")
                })?;
            let uid = fields[2].parse().with_context(|| {
                format!("{user:?} in the image's /etc/passwd has no numeric uid")
            })?;
            let gid = fields[3].parse().unwrap_or(0);
            (uid, gid, user.to_owned())
        }
    };
    if let Some(group) = group {
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .as_deref()
                .and_then(|text| entry(text, group))
                .and_then(|fields| fields[2].parse().ok())
                .with_context(|| {
                    format!("-u {spec}: no group {group:?} in the image's /etc/group")
                })?,
        };
    }
    // Supplementary groups: those that list the user by name.
    let supplementary = groups
        .as_deref()
        .map(|text| {
            text.lines()
                .map(|line| line.split(':').collect::<Vec<_>>())
                .filter(|f| {
                    f.len() >= 4 && !name.is_empty() && f[3].split(',').any(|member| member == name)
                })
                .filter_map(|f| f[2].parse().ok())
                .filter(|g| *g != gid)
                .collect()
        })
        .unwrap_or_default();
    Ok(Ids {
        uid,
        gid,
        groups: supplementary,
    })
}
// ANCHOR_END: resolve_user

/// `path` in the topmost layer that has it, if it is a regular file; `None` if no
/// layer has it (or the topmost one that names it deleted it).
fn read(layers: &[PathBuf], path: &str) -> Result<Option<String>> {
    for layer in layers {
        let dir = At::open_dir(layer)?;
        // O_PATH first: nothing is opened for reading until it is known to be a
        // regular file (a layer may hold devices, and whiteouts are 0:0 devices).
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(&dir, Path::new(path), how) {
            Ok(fd) => {
                let stat = nix::sys::stat::fstat(&fd)?;
                if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Ok(None);
                }
                let reopened = format!("/proc/self/fd/{}", fd.as_raw_fd());
                let file = std::fs::File::open(&reopened)
                    .with_context(|| format!("reading the image's /{path}"))?;
                let mut text = String::new();
                file.take(1 << 20)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading the image's /{path}"))?;
                return Ok(Some(text));
            }
            Err(nix::errno::Errno::ENOENT) => continue,
            // A symlink, a device, a name this layer cannot hold: not a file to trust.
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// Refuses a spec that is no user at all.
pub fn check(spec: &str) -> Result<()> {
    if spec.is_empty() || spec.contains(['\0', '\n']) {
        bail!("-u {spec:?}: write -u USER, -u UID, -u USER:GROUP or -u UID:GID");
    }
    Ok(())
}
