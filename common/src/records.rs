//! A state file that concurrent runtimes share: one record per line, read and changed
//! only under an exclusive `flock(2)` of `<file>.lock`, and replaced in one rename, so
//! that a runtime killed halfway leaves the old file whole.
//!
//! keel has no daemon to own shared state between runs. Stage 3's `--userns auto`
//! slices and stage 4's bridge leases are such files; each record names its runtime
//! ([`crate::state::Owner`]), so that a record of a runtime that died without giving it
//! back can be told apart and dropped. What a record holds is the caller's: this
//! module only keeps the file whole and the writers in turn.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A file of records, and its lock file beside it.
#[derive(Debug, Clone)]
pub struct RecordFile {
    path: PathBuf,
}

impl RecordFile {
    /// The file at `path`, in a directory that exists.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file: `<file>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        suffixed(&self.path, ".lock")
    }

    /// Takes the exclusive `flock` of the lock file; it is released when the returned
    /// file is closed. Whoever reads the records and then changes them holds it
    /// throughout.
    pub fn lock(&self) -> Result<fs::File> {
        let path = self.lock_path();
        let file = fs::File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(file);
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err).with_context(|| format!("flock {}", path.display()));
            }
        }
    }

    /// The records, one per line, read by `parse`; none when the file does not exist.
    /// A line `parse` refuses stops everything (it was not written by keel, and is not
    /// keel's to drop): the error names the file, the line, and `remedy`.
    pub fn read<T>(&self, parse: impl Fn(&str) -> Option<T>, remedy: &str) -> Result<Vec<T>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", self.path.display()));
            }
        };
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                parse(line).with_context(|| {
                    format!(
                        "{} line {} is not a record keel writes ({line:?}): {remedy}",
                        self.path.display(),
                        i + 1
                    )
                })
            })
            .collect()
    }

    /// Replaces the records with `lines` (each without its newline), in one rename.
    /// With none left the file is removed, so that nothing stays between runs.
    pub fn write(&self, lines: impl IntoIterator<Item = String>) -> Result<()> {
        let text: String = lines.into_iter().map(|line| line + "\n").collect();
        if text.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    Err(err).with_context(|| format!("removing {}", self.path.display()))
                }
                _ => Ok(()),
            };
        }
        crate::state::write_atomic(&self.path, text.as_bytes())
    }
}

/// `path` with `suffix` appended to its last component: `/etc/subuid.lock`.
pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
