//! What a run that never started must not leave behind in the rootfs directory.
//!
//! The layer creates what the rootfs lacks: the mount points `proc`, `dev`, `sys` and
//! `tmp`, and the target of each volume. When the command runs, they belong to the
//! container the user asked for. When it never starts (a `-w` that does not exist, a
//! command that is not there, a volume that cannot be mounted), the directory must be
//! left as it was: a refused run has no business changing the user's files.
//!
//! So the parent, before `clone`, notes which of them are missing; after a run that
//! never started, it removes them again if they are still what the runtime makes: an
//! empty directory, or an empty regular file. The rootfs is not ours (its owner may
//! rename things in it at any moment), so all of it happens relative to fds opened
//! before the run, deepest first, never through a symlink; and `rmdir` only ever
//! removes an empty directory. The child's mount namespace is gone by then, so
//! nothing is mounted on them any more.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use common::{MadeFile, explain};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::fstatat;
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::at::At;
use crate::inroot::Root;
use crate::volumes::Volume;

/// What a run may add to a rootfs directory.
#[derive(Debug, Default)]
pub struct Leftovers {
    missing: Vec<Missing>,
}

/// Names that do not exist yet: `names[0]` in the directory `under`, `names[1]` in
/// that one, and so on. The last is an empty file if `file`, else a directory.
#[derive(Debug)]
struct Missing {
    under: At,
    names: Vec<OsString>,
    file: bool,
}

impl Leftovers {
    /// Notes which of `mount_points` (names at the top of the rootfs `dir`), of the
    /// targets of `volumes` and of the paths of `files` are missing, as the child will
    /// resolve them.
    pub fn record(dir: &At, mount_points: &[&str], volumes: &[Volume], files: &[MadeFile]) -> Self {
        let Ok(root) = dir.open(".").map(Root::new) else {
            return Self::default();
        };
        let wanted = mount_points
            .iter()
            .map(|name| (Path::new(name), false))
            .chain(
                volumes
                    .iter()
                    .map(|v| (v.target.as_path(), !v.host.is_dir())),
            )
            .chain(files.iter().map(|f| (f.path.as_path(), true)));
        let missing = wanted
            .filter_map(|(path, file)| missing_part(&root, path, file))
            .collect();
        Self { missing }
    }

    // ANCHOR: remove_leftovers
    /// Removes what was missing and is now an empty directory or an empty file.
    /// Whatever else is there (not empty, not ours, gone) stays as it is.
    pub fn remove(&self) {
        for missing in &self.missing {
            for depth in (1..=missing.names.len()).rev() {
                let parent: PathBuf = missing.names[..depth - 1].iter().collect();
                let Ok(parent) = missing.under.open(Path::new(".").join(parent)) else {
                    continue;
                };
                let name = missing.names[depth - 1].as_os_str();
                let removed = if missing.file && depth == missing.names.len() {
                    remove_empty_file(&parent, name)
                } else {
                    unlinkat(&parent, name, UnlinkatFlags::RemoveDir)
                };
                if removed.is_ok() {
                    explain::step(
                        format_args!("unlinkat({}, {name:?})", parent.shown()),
                        "the command never started: the rootfs is left as it was",
                    );
                }
            }
        }
    }
    // ANCHOR_END: remove_leftovers
}

/// The part of `path` that is missing in `root`: the names below its deepest
/// existing directory, resolved as the child resolves them. A name counts as there if
/// anything has it, a dangling symlink too (the child will not create anything in its
/// place). `None` if nothing is missing, or if resolving fails for another reason
/// (then the child fails there too, before creating anything).
fn missing_part(root: &Root, path: &Path, file: bool) -> Option<Missing> {
    let names: Vec<&OsStr> = path
        .components()
        .filter_map(|part| match part {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let mut existing = PathBuf::from("/");
    for (i, name) in names.iter().enumerate() {
        let parent = root.resolve(&existing, OFlag::O_DIRECTORY).ok()?;
        match fstatat(&parent, *name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => existing.push(name),
            Err(Errno::ENOENT) => {
                return Some(Missing {
                    under: parent,
                    names: names[i..].iter().map(|n| n.to_os_string()).collect(),
                    file,
                });
            }
            Err(_) => return None,
        }
    }
    None
}

/// Removes `name` in `dir` if it is an empty regular file (not a symlink).
fn remove_empty_file(dir: &At, name: &OsStr) -> nix::Result<()> {
    let stat = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG || stat.st_size != 0 {
        return Err(Errno::ENOTEMPTY);
    }
    unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
}
