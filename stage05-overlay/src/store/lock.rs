//! `flock(2)` on a lock file: held until the [`Lock`] is dropped, released by the
//! kernel when its holder dies, however it dies.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An exclusive lock on a file.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: Flock<File>,
    path: PathBuf,
}

impl Lock {
    /// Waits for the exclusive lock on `path`, creating the file if missing.
    ///
    /// A lock file that someone removes is a trap: a process that opened it before the
    /// removal and locks it afterwards holds a lock on a file nobody else can see, while
    /// the next process creates a new file and locks that. So once locked, the file is
    /// checked to still be the one at `path`; if not, it is opened again.
    pub(crate) fn exclusive(path: &Path) -> Result<Self> {
        Self::take(path, true).map(|lock| lock.unwrap_or_else(|| unreachable!("a lock waited for")))
    }

    /// Takes the exclusive lock on `path` if nobody holds it; `None` if someone does.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        Self::take(path, false)
    }

    fn take(path: &Path, wait: bool) -> Result<Option<Self>> {
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        loop {
            let file = File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("opening the lock file {}", path.display()))?;
            let mut file = file;
            let locked = loop {
                match Flock::lock(file, arg) {
                    Ok(locked) => break locked,
                    Err((back, Errno::EINTR)) => file = back,
                    Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                    Err((_, errno)) => {
                        return Err(errno).with_context(|| format!("flock {}", path.display()));
                    }
                }
            };
            let held = locked
                .metadata()
                .with_context(|| format!("fstat {}", path.display()))?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Some(Self {
                        _file: locked,
                        path: path.to_owned(),
                    }));
                }
                _ => continue,
            }
        }
    }

    /// Removes the lock file, then releases the lock: for what no longer exists (a
    /// layer collected). Whoever waits on the old file finds it gone and starts again.
    pub(crate) fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path)
            .with_context(|| format!("removing the lock file {}", self.path.display()))
    }
}
