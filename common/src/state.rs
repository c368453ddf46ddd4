//! Where a runtime keeps the state of its containers: `/run/keel` for root, and for a
//! user `$XDG_RUNTIME_DIR/keel` (a tmpfs of the user's own that the login manager
//! makes, mode 0700), or `/tmp/keel-UID` when there is none.
//!
//! A directory in `/tmp` is shared ground: anyone may have made `/tmp/keel-1000`
//! first, as a symlink to a place of theirs, waiting for the user's runtime to write
//! there. So it is made with `mkdir` (which never follows a symlink), mode 0700, and
//! used only if it is a real directory that belongs to the user and nobody else may
//! write.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The runtime directory of whoever runs keel.
pub fn runtime_dir() -> Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = if uid == 0 {
        PathBuf::from("/run/keel")
    } else if let Some(xdg) =
        std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute())
    {
        PathBuf::from(xdg).join("keel")
    } else {
        PathBuf::from(format!("/tmp/keel-{uid}"))
    };
    private_dir(&dir, uid)?;
    Ok(dir)
}

// ANCHOR: private_dir
/// Makes `dir` if missing, and checks that it is a directory of `uid`'s that no one else
/// may write. Others may pass through it (mode 0711) but not list it: a container's
/// root under root's `--userns auto` is another host uid, and must reach the files a
/// run shares with it by name (its /etc files), and nothing else.
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "{} is not a private directory of uid {uid} (a symlink, or someone else's): \
             remove it, or set XDG_RUNTIME_DIR to a directory of yours",
            dir.display()
        );
    }
    if meta.permissions().mode() & 0o111 != 0o111 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
            .with_context(|| format!("chmod 0711 {}", dir.display()))?;
    }
    Ok(())
}
// ANCHOR_END: private_dir

/// A runtime process, told apart from a later one with the same PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// Its PID.
    pub pid: u32,
    /// When it started, in clock ticks after boot (`/proc/PID/stat`, field 22).
    pub start_time: u64,
}

impl std::fmt::Display for Owner {
    /// `PID START_TIME`: how a state file records it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.pid, self.start_time)
    }
}

impl Owner {
    /// An owner as [`Display`](std::fmt::Display) writes it, from its two fields.
    pub fn parse(pid: &str, start_time: &str) -> Option<Self> {
        Some(Self {
            pid: pid.parse().ok()?,
            start_time: start_time.parse().ok()?,
        })
    }

    /// Process `pid`, if it runs (and has not exited).
    pub fn of(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// This process.
    pub fn current() -> Result<Self> {
        let pid = std::process::id();
        let (_, start_time) = state_and_start_time(pid).context("reading /proc/self/stat")?;
        Ok(Self { pid, start_time })
    }

    /// Whether it still runs: the PID exists, started when this one did, and has not
    /// exited. A zombie (state `Z`) has exited: only its parent has not collected its
    /// status yet, and it will never give anything back.
    pub fn is_alive(&self) -> bool {
        matches!(
            state_and_start_time(self.pid),
            Some((state, start)) if start == self.start_time && !matches!(state, 'Z' | 'X')
        )
    }
}

/// Fields 3 (the state: `R`, `S`, `Z`, ...) and 22 (the start time) of
/// `/proc/PID/stat`. The second field, the command in parentheses, may itself hold
/// spaces and parentheses: count from the last `)`.
fn state_and_start_time(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_command) = stat.rsplit_once(')')?;
    // After the command come field 3 (state), 4, ...: field 22 is the 20th.
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

/// A new container id: 12 random hexadecimal digits, as docker's short ids.
pub fn new_id() -> Result<String> {
    let mut random = [0u8; 6];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("reading /dev/urandom")?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `text` is a container id as [`new_id`] makes them.
pub fn is_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `path` whole or not at all: the bytes go to a temporary file beside it,
/// which is then renamed over it (a reader sees the old file or the new one).
/// The file is mode 0644 whatever the umask, and a temporary file that could not be
/// finished is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// When process `pid` started (clock ticks after boot), if it exists and has not
/// exited: recorded beside a PID, it tells the process from a later one with its PID.
pub fn start_time(pid: u32) -> Option<u64> {
    match state_and_start_time(pid)? {
        ('Z' | 'X', _) => None,
        (_, start) => Some(start),
    }
}

/// A directory of one run's own, in the runtime directory; removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// `<runtime dir>/<prefix>-<id>` for the container `id`, made mode 0711, with an
    /// `owner` file naming this process. Directories of `prefix` that a runtime killed
    /// by SIGKILL left behind (their owner is gone) are removed first.
    pub fn create(prefix: &str, id: &str) -> Result<Self> {
        let base = runtime_dir()?;
        remove_abandoned(&base, prefix);
        let path = Self::path_of(&base, prefix, id);
        fs::DirBuilder::new()
            .mode(0o711)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let run = Self { path };
        let owner = Owner::current()?;
        fs::write(run.path.join(OWNER), format!("{owner}\n"))
            .with_context(|| format!("writing {}", run.path.join(OWNER).display()))?;
        Ok(run)
    }

    /// Where the run directory of `prefix` for the container `id` is, in `base`.
    pub fn path_of(base: &Path, prefix: &str, id: &str) -> PathBuf {
        base.join(format!("{prefix}-{id}"))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last part of its name: an id unique among the runs of this user.
    pub fn id(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }
}

/// The file of a run directory that names the runtime it belongs to.
const OWNER: &str = "owner";

/// Removes the run directories of `prefix` in `base` whose runtime is gone.
fn remove_abandoned(base: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&format!("{prefix}-")) {
            continue;
        }
        let owner = fs::read_to_string(entry.path().join(OWNER))
            .ok()
            .and_then(|text| {
                let (pid, start_time) = text.trim_end().split_once(' ')?;
                Owner::parse(pid, start_time)
            });
        // A directory without a readable owner is being made right now, or is not ours.
        if owner.is_some_and(|owner| !owner.is_alive()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_is_not_alive() {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let (_, start_time) = state_and_start_time(pid).unwrap();
        // Wait until it has exited, but leave it unreaped (WNOWAIT): a zombie.
        waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid as i32)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        )
        .unwrap();
        assert_eq!(state_and_start_time(pid).map(|(state, _)| state), Some('Z'));
        assert!(!Owner { pid, start_time }.is_alive());
        child.wait().unwrap();
    }
}
