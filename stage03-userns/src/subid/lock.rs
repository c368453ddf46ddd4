//! Locking /etc/subuid and /etc/subgid as shadow's tools do, so that keel, `useradd`,
//! `usermod` and `vipw` never change them at the same time. Without it, two programs
//! that read the file, then write it, lose each other's lines; two that append
//! interleave them into garbage.
//!
//! shadow takes two locks, in this order (`commonio_lock`), and releases them in
//! reverse:
//!
//! 1. `lckpwdf()`: glibc's lock of the whole user database, an `fcntl` lock on
//!    `/etc/.pwd.lock`, waited for up to 15 seconds. Taken only for the system's own
//!    files (as shadow does: not for files elsewhere, such as a test's).
//! 2. for each file, `<file>.lock`, a lock by `link(2)` that works even where `fcntl`
//!    locks do not (`do_lock_file`): write our PID into `<file>.<pid>`, and link it to
//!    `<file>.lock`. `link` fails if the name exists, so only one process succeeds. A
//!    lock whose PID is dead was left by a crash: remove it, and try once more.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::explain;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::{SUBGID, SUBUID};

// glibc's <shadow.h>; the libc crate does not declare them.
unsafe extern "C" {
    fn lckpwdf() -> libc::c_int;
    fn ulckpwdf() -> libc::c_int;
}

// ANCHOR: edit_lock
/// The locks on some subordinate id files, held until dropped: whatever happens after
/// `acquire` (an error, an early return), they are released.
#[derive(Debug)]
pub struct EditLock {
    /// The `<file>.lock` links we made.
    links: Vec<PathBuf>,
    /// Whether we hold `lckpwdf()`.
    database: bool,
}

impl EditLock {
    /// Takes `lckpwdf()` (for the system's files), then `<file>.lock` of each file.
    pub fn acquire(files: &[&Path]) -> Result<Self> {
        let system = files
            .iter()
            .any(|f| *f == Path::new(SUBUID) || *f == Path::new(SUBGID));
        let mut lock = Self {
            links: Vec::new(),
            database: false,
        };
        if system {
            // SAFETY: no arguments; glibc opens /etc/.pwd.lock and waits on its lock.
            if unsafe { lckpwdf() } != 0 {
                let err = std::io::Error::last_os_error();
                bail!(
                    "lckpwdf(): cannot lock the user database (/etc/.pwd.lock): {err}; \
                     another program (useradd, usermod, vipw) may be changing users and \
                     their ids (lckpwdf waits 15 seconds for it): try again when it is done"
                );
            }
            lock.database = true;
            explain::step(
                "lckpwdf()",
                "lock the user database (/etc/.pwd.lock), as useradd and usermod do",
            );
        }
        for file in files {
            // On an error, dropping `lock` releases what was taken so far.
            lock.links.push(link_lock(file)?);
        }
        Ok(lock)
    }
}

impl Drop for EditLock {
    fn drop(&mut self) {
        for link in self.links.drain(..).rev() {
            let _ = fs::remove_file(link);
        }
        if self.database {
            // SAFETY: releases the lock lckpwdf() took in this process.
            unsafe { ulckpwdf() };
        }
    }
}
// ANCHOR_END: edit_lock

// ANCHOR: link_lock
/// shadow's `do_lock_file`: `<file>.lock`, made by linking a file that holds our PID.
fn link_lock(file: &Path) -> Result<PathBuf> {
    let lock = suffixed(file, ".lock");
    let mine = suffixed(file, &format!(".{}", std::process::id()));
    write_pid(&mine)?;
    let taken = take(&mine, &lock, file);
    let _ = fs::remove_file(&mine);
    taken?;
    explain::step(
        format_args!("link({:?}, {:?})", mine.display(), lock.display()),
        "only one process can make that name: the file is ours to change until we remove it",
    );
    Ok(lock)
}

fn take(mine: &Path, lock: &Path, file: &Path) -> Result<()> {
    if fs::hard_link(mine, lock).is_ok() {
        return linked_once(mine, lock);
    }
    let holder = holder(lock, file)?;
    if alive(holder) {
        bail!(
            "{} is held by PID {holder}: another program is changing {}; try again when \
             it is done",
            lock.display(),
            file.display()
        );
    }
    // Left by a process that died: remove it, and try exactly once more (another
    // process may be doing the same; only one of us can link).
    fs::remove_file(lock)
        .with_context(|| format!("removing the stale lock {} (PID {holder})", lock.display()))?;
    fs::hard_link(mine, lock).with_context(|| {
        format!(
            "locking {}: {} was taken meanwhile",
            file.display(),
            lock.display()
        )
    })?;
    linked_once(mine, lock)
}
// ANCHOR_END: link_lock

/// The link worked: our file must now have exactly two names, ours and the lock's
/// (shadow's check against file systems that fake `link`).
fn linked_once(mine: &Path, lock: &Path) -> Result<()> {
    let links = fs::metadata(mine)
        .with_context(|| format!("stat {}", mine.display()))?
        .nlink();
    if links != 2 {
        bail!(
            "{}: lock file already used (nlink: {links})",
            lock.display()
        );
    }
    Ok(())
}

/// `<file>.<pid>`: our PID and a NUL, as shadow writes it, synced before the link.
fn write_pid(path: &Path) -> Result<()> {
    let mut file = fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(format!("{}\0", std::process::id()).as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("writing {}", path.display()))
}

/// The PID in an existing lock (shadow's `get_pid`: decimal, up to a NUL).
fn holder(lock: &Path, file: &Path) -> Result<Pid> {
    let mut text = Vec::new();
    fs::File::open(lock)
        .and_then(|f| f.take(31).read_to_end(&mut text))
        .with_context(|| format!("reading the lock {}", lock.display()))?;
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let pid = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0);
    match pid {
        Some(pid) => Ok(Pid::from_raw(pid)),
        None => bail!(
            "{} holds no valid PID ({:?}): if no program is changing {}, remove it \
             (rm {}) and run again",
            lock.display(),
            String::from_utf8_lossy(text),
            file.display(),
            lock.display()
        ),
    }
}

/// Whether a process `pid` exists (`kill(pid, 0)`; EPERM means it exists but is not
/// ours).
fn alive(pid: Pid) -> bool {
    !matches!(kill(pid, None), Err(Errno::ESRCH))
}

pub(crate) use common::records::suffixed;

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (uid, gid) = (dir.path().join("subuid"), dir.path().join("subgid"));
        (dir, uid, gid)
    }

    /// The PID of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn the_lock_exists_while_held_and_only_then() {
        let (dir, uid, gid) = files();
        let lock = EditLock::acquire(&[&uid, &gid]).unwrap();
        let content = fs::read(suffixed(&uid, ".lock")).unwrap();
        assert_eq!(content, format!("{}\0", std::process::id()).as_bytes());
        assert!(suffixed(&gid, ".lock").exists());
        drop(lock);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "nothing may be left: {left:?}");
    }

    #[test]
    fn a_lock_of_a_live_process_is_respected() {
        let (_dir, uid, _) = files();
        let _held = EditLock::acquire(&[&uid]).unwrap();
        let err = EditLock::acquire(&[&uid]).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("held by PID {}", std::process::id())),
            "{err:#}"
        );
    }

    #[test]
    fn a_stale_lock_is_removed_once_and_taken() {
        let (_dir, uid, _) = files();
        let lock_path = suffixed(&uid, ".lock");
        fs::write(&lock_path, format!("{}\0", dead_pid())).unwrap();
        let lock = EditLock::acquire(&[&uid]).unwrap();
        assert_eq!(
            fs::read(&lock_path).unwrap(),
            format!("{}\0", std::process::id()).as_bytes()
        );
        drop(lock);
        assert!(!lock_path.exists());
    }

    #[test]
    fn a_lock_without_a_pid_is_left_alone_with_a_fix() {
        let (_dir, uid, _) = files();
        let lock_path = suffixed(&uid, ".lock");
        fs::write(&lock_path, "").unwrap();
        let err = format!("{:#}", EditLock::acquire(&[&uid]).unwrap_err());
        assert!(
            err.contains("holds no valid PID") && err.contains("rm "),
            "{err}"
        );
        assert!(lock_path.exists());
    }

    #[test]
    fn every_lock_taken_is_released_when_a_later_one_fails() {
        let (_dir, uid, gid) = files();
        let gid_lock = suffixed(&gid, ".lock");
        fs::write(&gid_lock, "1\0").unwrap(); // init: alive
        assert!(EditLock::acquire(&[&uid, &gid]).is_err());
        assert!(
            !suffixed(&uid, ".lock").exists(),
            "the first lock was not released"
        );
        assert!(gid_lock.exists(), "someone else's lock must stay");
    }
}
