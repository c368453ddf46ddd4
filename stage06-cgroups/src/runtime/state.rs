//! What keel remembers about a container, in files that outlive every keel process.
//!
//! ```text
//! <runtime dir>/containers/
//!   lock                 flock'd while a name is checked and taken
//!   <id>/state.json      this file's State, replaced whole (temp + rename)
//!   <id>/container.log   `run -d`: the output, one JSON object per line
//! ```
//!
//! Every PID is recorded with its start time (`/proc/PID/stat`): a PID is reused once
//! its process is gone, and a record that outlives its process must not lead `stop`
//! or `rm -f` to another one.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use common::state::{Owner, is_id, runtime_dir, write_atomic};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// The life of a container, as runc's states: made but not yet started, running,
/// exited. (`created` lasts from `run` until the command runs; a `create` command
/// would leave a container there until `start`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// The container's user inside: uid, gid, supplementary groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub status: Status,
    /// The process that waits for the container and records its end: the keel of a
    /// foreground run, or the supervisor of `run -d`.
    pub supervisor: Option<Owner>,
    /// The container's PID 1, as the host sees it.
    pub pid: Option<Owner>,
    pub exit_code: Option<i32>,
    pub finished: Option<u64>,
    /// `run -d`: the output is in `container.log`.
    pub detached: bool,
    /// `--rm`: everything goes when it exits.
    pub remove: bool,
    /// Its writable layer in the image store (none with `--rootfs`).
    pub layer: Option<PathBuf>,
    /// Its cgroup, one directory per hierarchy.
    pub cgroups: Vec<PathBuf>,
    /// The command's environment, working directory and user: `exec` starts from them.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub user: Option<User>,
    /// The capabilities its root keeps (`CAP_CHOWN`, ...): `exec` gives its processes
    /// the same. `None` in a record older than them: the default set.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
}

/// What `ps` says of a container: its recorded status, checked against the processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Created,
    Running,
    Exited(i32),
    /// Its supervisor died (SIGKILL) before it could record the end: the container
    /// died with it (its parent-death signal), with a status no one collected.
    Unknown,
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Created => write!(f, "created"),
            Shown::Running => write!(f, "running"),
            Shown::Exited(code) => write!(f, "exited ({code})"),
            Shown::Unknown => write!(f, "exited (unknown)"),
        }
    }
}

impl State {
    /// The status, as things are now: a `running` record whose supervisor is gone
    /// is not running.
    pub fn shown(&self) -> Shown {
        match self.status {
            Status::Exited => self.exit_code.map_or(Shown::Unknown, Shown::Exited),
            _ if !self.supervisor.is_some_and(|s| s.is_alive()) => {
                if self.pid.is_some_and(|p| p.is_alive()) {
                    Shown::Running // its PID 1 outlived the supervisor
                } else {
                    Shown::Unknown
                }
            }
            Status::Created => Shown::Created,
            Status::Running => Shown::Running,
        }
    }

    /// Whether any process of it may still run.
    pub fn is_running(&self) -> bool {
        matches!(self.shown(), Shown::Running | Shown::Created)
    }

    /// Its directory.
    pub fn dir(&self) -> Result<PathBuf> {
        Ok(containers_dir()?.join(&self.id))
    }

    /// Writes it, whole.
    pub fn save(&self) -> Result<()> {
        let dir = self.dir()?;
        let json = serde_json::to_vec_pretty(self).context("serializing the state")?;
        write_atomic(&dir.join(STATE), &json)
    }
}

const STATE: &str = "state.json";

/// The log of a detached container.
pub fn log_path(id: &str) -> Result<PathBuf> {
    Ok(containers_dir()?.join(id).join("container.log"))
}

/// `<runtime dir>/containers`, made if missing: checked and made once per process, as
/// every command asks for it several times.
pub fn containers_dir() -> Result<PathBuf> {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(dir) = CHECKED.get() {
        return Ok(dir.clone());
    }
    let dir = runtime_dir()?.join("containers");
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
    }
    Ok(CHECKED.get_or_init(|| dir).clone())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The lock under which names are checked and taken.
pub fn lock() -> Result<Flock<fs::File>> {
    let path = containers_dir()?.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", path.display()))
}

/// Every container, oldest first. A directory without a readable state is skipped.
pub fn list() -> Result<Vec<State>> {
    let dir = containers_dir()?;
    let mut all = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_id) {
            continue;
        }
        if let Ok(state) = load(&entry.path()) {
            all.push(state);
        }
    }
    all.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(all)
}

/// The record in `dir`, if it is one keel wrote there: its id is the directory's name,
/// and what it names on the host (its cgroups, its writable layer) is named after that
/// id. `rm -f` removes what a record names, and kills what a cgroup holds: a record
/// edited, or copied from another container's directory, must not point it elsewhere.
fn load(dir: &Path) -> Result<State> {
    let path = dir.join(STATE);
    let text = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let state: State =
        serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))?;
    let named_after_it = |p: &Path| p.file_name().is_some_and(|n| *n == *state.id);
    if dir.file_name().is_none_or(|n| *n != *state.id)
        || !state.cgroups.iter().all(|p| named_after_it(p))
        || !state.layer.iter().all(|p| named_after_it(p))
    {
        bail!(
            "{} is not a record of the container {} (its id or paths name another)",
            path.display(),
            dir.display()
        );
    }
    Ok(state)
}

/// The container `what` names: a name, an id, or a prefix of one id, as docker.
pub fn find(what: &str) -> Result<State> {
    let all = list()?;
    if let Some(found) = all.iter().find(|s| s.name == what || s.id == what) {
        return Ok(found.clone());
    }
    let prefixed: Vec<&State> = if what.is_empty() {
        Vec::new()
    } else {
        all.iter().filter(|s| s.id.starts_with(what)).collect()
    };
    match prefixed.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "no such container: {what} (see `{} ps -a` for the names and ids)",
            common::program::name()
        ),
        many => bail!(
            "{what} is the start of {} containers' ids: give more of it ({})",
            many.len(),
            many.iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The state of container `id` again (it may have changed since it was found).
pub fn reload(id: &str) -> Result<State> {
    load(&containers_dir()?.join(id))
}

/// Checks a `--name`: docker's rule, a letter or digit then letters, digits, `_.-`.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || name.len() > 128
    {
        bail!(
            "--name {name:?}: a name starts with a letter or a digit, followed by letters, \
             digits, '_', '.' or '-' (at most 128)"
        );
    }
    Ok(())
}

/// Takes `name` for a new container `state` and writes its first state, under the
/// lock: two `run --name x` at once cannot both get it.
pub fn create(state: &State) -> Result<()> {
    let _lock = lock()?;
    if let Some(other) = list()?.iter().find(|s| s.name == state.name) {
        bail!(
            "the name {:?} is taken by container {} ({}): remove it ({} rm -f {0}) or \
             choose another --name",
            state.name,
            other.id,
            other.shown(),
            common::program::name()
        );
    }
    let dir = state.dir()?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    state.save()
}

/// Removes the container's directory: its state and its log.
pub fn remove(id: &str) -> Result<()> {
    let dir = containers_dir()?.join(id);
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["web", "a", "web-1.b_c", "0x"] {
            check_name(good).unwrap();
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
