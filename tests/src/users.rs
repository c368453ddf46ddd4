//! The ordinary users the rootless graders run as: created by the graders, removed after.
//!
//! Stage 3 is about what an ordinary user can do, so its graders run the stage as one,
//! not as root. Two users are needed, and the graders create them (as root) on first
//! use:
//!
//! | user | `/etc/subuid`, `/etc/subgid` | what the stage does |
//! |---|---|---|
//! | [`WITH_RANGES`] | a range of 65536 ids each | maps `0 uid 1` + `1 start 65536` through newuidmap |
//! | [`WITHOUT_RANGES`] | none | maps `0 uid 1` only, written directly |
//!
//! Their uid, gid and ranges are read from the system, never assumed. They are removed
//! (`userdel`, which also removes their lines of `/etc/subuid` and `/etc/subgid`) when
//! the last test process that uses them exits.
//!
//! **Several processes.** A test runner may run test processes in parallel (nextest
//! runs one per test), and the users are the machine's. Every process that uses them
//! holds a *shared* `flock` on a lock file for as long as it lives; at exit it asks for
//! an *exclusive* one without waiting, which it gets only if no other process still
//! holds the shared one, and only then removes the users. The lock files are in
//! `/run/lock` (the machine's, since the users are), or in the graders' directory
//! where there is no `/run/lock`. Every change to `/etc/subuid` or `/etc/subgid` made
//! by the graders (creating or removing the users, root's `keel` range) happens under a
//! second lock, [`SubidLock`], also taken by tests that check those files are unchanged.
//!
//! **What the users can reach.** The workspace may be in a directory other users cannot
//! enter (`/root`, or a CI checkout made with mode 0700). What a user runs therefore
//! lives in [`shared_dir`], a directory of this process that every user may enter:
//! copies of the stage binaries ([`accessible_copy`]), of the busybox rootfs
//! ([`accessible_busybox`]), and the tests' own directories ([`dir_owned_by`],
//! [`private_rootfs`]). It is removed when the process exits.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, Once, OnceLock};

use tempfile::TempDir;

use crate::running::host_pids;
use crate::runtime::{RunAs, install_executable};
use crate::skip::Skip;
use crate::{rootfs, workspace};

/// The user with subordinate ids.
pub const WITH_RANGES: &str = "keel-grader";

/// The user without subordinate ids.
pub const WITHOUT_RANGES: &str = "keel-grader-nosub";

/// The files of subordinate ids.
pub const SUBUID: &str = "/etc/subuid";
/// See [`SUBUID`].
pub const SUBGID: &str = "/etc/subgid";

/// The owner of root's range for `--userns=auto`.
pub const KEEL_OWNER: &str = "keel";

/// How many subordinate ids a user gets (what `useradd` gives by default).
const RANGE_SIZE: u32 = 65536;

/// The PATH the users run with: newuidmap and newgidmap live in /usr/bin.
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One line of `/etc/subuid` or `/etc/subgid`: `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRange {
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

impl SubRange {
    /// The last id of the range.
    pub fn last(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count) - 1
    }

    /// Whether this range and `start..=last` share an id.
    pub fn overlaps(&self, start: u64, last: u64) -> bool {
        u64::from(self.start) <= last && start <= self.last()
    }
}

/// Every well-formed line of a subordinate id file (none if it does not exist). Read as
/// bytes, line by line: a line that is not UTF-8 (a test may write one) spoils no other.
pub fn read_ranges(path: &str) -> Vec<SubRange> {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .split(|&b| b == b'\n')
        .map(String::from_utf8_lossy)
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?.to_owned();
            let start = fields.next()?.parse().ok()?;
            let count: u32 = fields.next()?.parse().ok()?;
            (!owner.is_empty() && !owner.starts_with('#') && count > 0).then_some(SubRange {
                owner,
                start,
                count,
            })
        })
        .collect()
}

/// The ranges of `path` that belong to the user `name` (by name or by uid).
fn ranges_of(path: &str, name: &str, uid: u32) -> Vec<SubRange> {
    read_ranges(path)
        .into_iter()
        .filter(|r| r.owner == name || r.owner == uid.to_string())
        .collect()
}

/// An ordinary user of this machine, created for the graders.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Its lines of `/etc/subuid`, as they were when the graders checked.
    pub subuids: Vec<SubRange>,
    /// Its lines of `/etc/subgid`.
    pub subgids: Vec<SubRange>,
}

impl TestUser {
    /// How a stage is run as this user (see [`Runtime::as_user`](crate::Runtime::as_user)):
    /// its ids and a small environment of its own, with /usr/bin on PATH.
    pub fn run_as(&self) -> RunAs {
        let env = [
            ("PATH", USER_PATH.to_owned()),
            ("HOME", self.home.display().to_string()),
            ("USER", self.name.clone()),
            ("LOGNAME", self.name.clone()),
        ];
        RunAs {
            name: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
            groups: Vec::new(),
            env: env
                .into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        }
    }

    /// Its (first) subordinate uid range; panics if it has none.
    pub fn subuid(&self) -> &SubRange {
        self.subuids
            .first()
            .unwrap_or_else(|| panic!("{} has no range in {SUBUID}", self.name))
    }

    /// Its (first) subordinate gid range; panics if it has none.
    pub fn subgid(&self) -> &SubRange {
        self.subgids
            .first()
            .unwrap_or_else(|| panic!("{} has no range in {SUBGID}", self.name))
    }
}

/// The user with a range in `/etc/subuid` and `/etc/subgid` (created on first use).
/// Its ranges are of use only through newuidmap and newgidmap: skips without them.
pub fn with_ranges() -> Result<&'static TestUser, Skip> {
    let users = users()?;
    for helper in ["newuidmap", "newgidmap"] {
        let found = std::env::split_paths(USER_PATH).any(|dir| dir.join(helper).is_file());
        if !found {
            return Err(Skip(format!(
                "{helper} is not installed (on {USER_PATH}): apt-get install uidmap"
            )));
        }
    }
    Ok(&users.with_ranges)
}

/// The user without subordinate ids (created on first use).
pub fn without_ranges() -> Result<&'static TestUser, Skip> {
    Ok(&users()?.without_ranges)
}

/// Creating users takes root.
pub fn require_root() -> Result<(), Skip> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Skip(
            "needs root: the rootless graders create the ordinary users they run as \
             (useradd, with ranges in /etc/subuid) and remove them afterwards; run them as \
             root (sudo)"
                .into(),
        ))
    }
}

struct Users {
    with_ranges: TestUser,
    without_ranges: TestUser,
}

fn users() -> Result<&'static Users, Skip> {
    static USERS: OnceLock<Result<Users, String>> = OnceLock::new();
    require_root()?;
    match USERS.get_or_init(set_up) {
        Ok(users) => Ok(users),
        Err(err) => panic!("cannot create the graders' users: {err}"),
    }
}

/// The shared lock on `users.lock`, held for the life of the process.
static IN_USE: OnceLock<File> = OnceLock::new();

fn set_up() -> Result<Users, String> {
    let in_use = open_lock("users.lock")?;
    // Waits while another process, exiting, removes the users; then they cannot be
    // removed until this process exits too.
    flock(&in_use, libc::LOCK_SH)?;
    let _ = IN_USE.set(in_use);
    register_cleanup();
    let _edit = SubidLock::acquire();
    Ok(Users {
        with_ranges: ensure_user(WITH_RANGES, true)?,
        without_ranges: ensure_user(WITHOUT_RANGES, false)?,
    })
}

/// Creates the user `name` if it does not exist, and gives it a range in
/// `/etc/subuid` and `/etc/subgid` (`ranges`) or takes any away (`!ranges`).
fn ensure_user(name: &str, ranges: bool) -> Result<TestUser, String> {
    if lookup(name)?.is_none() {
        let mut useradd = Command::new("useradd");
        useradd.args([
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "keel graders (removed after the tests)",
        ]);
        if !ranges {
            useradd.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        run(useradd.arg(name))?;
    }
    let user = lookup(name)?.ok_or_else(|| format!("useradd did not create {name}"))?;
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    let mut usermod = Command::new("usermod");
    let mut changes = false;
    for (path, add, del) in [
        (SUBUID, "--add-subuids", "--del-subuids"),
        (SUBGID, "--add-subgids", "--del-subgids"),
    ] {
        let own = ranges_of(path, name, uid);
        if ranges && own.is_empty() {
            // useradd gives a range only where SUB_UID_COUNT says so and the file
            // exists: add one after every range of both files.
            ensure_file(path)?;
            let start = read_ranges(SUBUID)
                .iter()
                .chain(&read_ranges(SUBGID))
                .map(|r| r.last() + 1)
                .fold(100_000, u64::max);
            let last = start + u64::from(RANGE_SIZE) - 1;
            usermod.args([add, &format!("{start}-{last}")]);
            changes = true;
        } else if !ranges {
            for range in own {
                usermod.args([del, &format!("{}-{}", range.start, range.last())]);
                changes = true;
            }
        }
    }
    if changes {
        run(usermod.arg(name))?;
    }
    let subuids = ranges_of(SUBUID, name, uid);
    let subgids = ranges_of(SUBGID, name, uid);
    if ranges && (subuids.is_empty() || subgids.is_empty()) {
        return Err(format!(
            "{name} still has no range in {SUBUID} and {SUBGID}"
        ));
    }
    if !ranges && (!subuids.is_empty() || !subgids.is_empty()) {
        return Err(format!("{name} still has ranges: {subuids:?} {subgids:?}"));
    }
    Ok(TestUser {
        name: name.to_owned(),
        uid,
        gid,
        home: user.dir,
        subuids,
        subgids,
    })
}

fn lookup(name: &str) -> Result<Option<nix::unistd::User>, String> {
    nix::unistd::User::from_name(name).map_err(|err| format!("getpwnam({name}): {err}"))
}

fn ensure_file(path: &str) -> Result<(), String> {
    if Path::new(path).exists() {
        return Ok(());
    }
    std::fs::write(path, "")
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|err| format!("creating {path}: {err}"))
}

/// Registers [`clean_up`] to run when the process exits (once).
fn register_cleanup() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a function without arguments; it runs at exit().
        if unsafe { libc::atexit(clean_up) } != 0 {
            eprintln!("keel graders: atexit failed: the test users may be left behind");
        }
    });
}

/// At exit: removes this process's shared directory, and the users if no other
/// process uses them.
extern "C" fn clean_up() {
    // A panic must not unwind into the C library.
    let _ = std::panic::catch_unwind(|| {
        if let Some(dir) = SHARED.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
        let Some(in_use) = IN_USE.get() else {
            return;
        };
        // Turning the shared lock into an exclusive one succeeds only when no other
        // process holds its shared lock any more: the last one out removes the users.
        if flock(in_use, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            return;
        }
        let _edit = SubidLock::acquire();
        for name in [WITH_RANGES, WITHOUT_RANGES] {
            let Ok(Some(user)) = lookup(name) else {
                continue;
            };
            // No test runs any more: a process of the user is one a failed test (or
            // a runtime without its solution) left behind. It must not keep the user.
            kill_processes_of(user.uid.as_raw());
            // --force: a process just killed may not be reaped yet.
            if let Err(err) = run(Command::new("userdel").args(["--force", name])) {
                eprintln!("keel graders: cannot remove the user {name}: {err}");
            }
        }
    });
}

/// Kills every live process whose real or effective uid is `uid`. Zombies are already
/// dead: a container whose runtime was killed is reparented to init, which reaps it in
/// its own time.
fn kill_processes_of(uid: u32) {
    for pid in host_pids() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status
            .lines()
            .any(|line| line.starts_with("State:") && line.contains("zombie"))
        {
            continue;
        }
        let ids: Vec<&str> = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .map(|ids| ids.split_whitespace().take(2).collect())
            .unwrap_or_default();
        if ids.contains(&uid.to_string().as_str()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            eprintln!(
                "keel graders: killing PID {pid} ({}), left behind by a test as uid {uid}",
                cmdline.trim()
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Exclusive use of `/etc/subuid` and `/etc/subgid` among the graders: in this process
/// (a mutex) and among processes (`flock` on `subid.lock`). Do not ask for a user
/// ([`with_ranges`], [`without_ranges`]) while holding it: creating one takes it too.
#[derive(Debug)]
pub struct SubidLock {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

impl SubidLock {
    /// Waits for the lock.
    pub fn acquire() -> Self {
        static IN_PROCESS: Mutex<()> = Mutex::new(());
        // A test that panicked while holding it left the files as they were.
        let guard = IN_PROCESS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let file = open_lock("subid.lock")
            .and_then(|file| flock(&file, libc::LOCK_EX).map(|()| file))
            .unwrap_or_else(|err| panic!("cannot lock the subordinate id files: {err}"));
        Self {
            _file: file,
            _guard: guard,
        }
    }
}

/// The bytes of `/etc/subuid` and `/etc/subgid`, to check that a run changed neither.
pub fn subid_files() -> (Vec<u8>, Vec<u8>) {
    let read = |path| std::fs::read(path).unwrap_or_default();
    (read(SUBUID), read(SUBGID))
}

/// Holds the subordinate id files for a test in which root runs `--userns=auto`, which
/// adds a `keel` range on first use. When dropped, it removes the `keel` lines that were
/// not there before, so the machine is left as it was.
#[derive(Debug)]
pub struct KeelRangeGuard {
    had_keel: [bool; 2],
    restore: Option<[Vec<u8>; 2]>,
    _lock: SubidLock,
}

impl KeelRangeGuard {
    pub fn acquire() -> Self {
        let lock = SubidLock::acquire();
        let has = |path| read_ranges(path).iter().any(|r| r.owner == KEEL_OWNER);
        Self {
            had_keel: [has(SUBUID), has(SUBGID)],
            restore: None,
            _lock: lock,
        }
    }

    /// Whether `/etc/subuid` had a `keel` range before the test.
    pub fn had_keel_range(&self) -> bool {
        self.had_keel[0]
    }

    /// For a test that changes the files itself: when dropped, the guard writes back
    /// both files exactly as they are now.
    pub fn restore_on_drop(&mut self) {
        let (uids, gids) = subid_files();
        self.restore = Some([uids, gids]);
    }
}

impl Drop for KeelRangeGuard {
    fn drop(&mut self) {
        if let Some(texts) = &self.restore {
            for (path, text) in [SUBUID, SUBGID].into_iter().zip(texts) {
                if let Err(err) = replace_file(path, text) {
                    eprintln!("keel graders: cannot restore {path}: {err}");
                }
            }
            return;
        }
        for (path, had) in [(SUBUID, self.had_keel[0]), (SUBGID, self.had_keel[1])] {
            if had {
                continue;
            }
            if let Err(err) = remove_owner(path, KEEL_OWNER) {
                eprintln!("keel graders: cannot remove the keel range from {path}: {err}");
            }
        }
    }
}

/// Rewrites `path` without the lines of `owner`, in one rename: newuidmap, reading the
/// file meanwhile, sees either the old or the new file.
fn remove_owner(path: &str, owner: &str) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let prefix = format!("{owner}:");
    let kept: Vec<u8> = bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.starts_with(prefix.as_bytes()))
        .flatten()
        .copied()
        .collect();
    if kept == bytes {
        return Ok(());
    }
    replace_file(path, &kept)
}

/// Replaces the bytes of `path` (keeping its mode) in one rename.
pub fn replace_file(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions();
    let staging = format!("{path}.keel-graders-{}", std::process::id());
    std::fs::write(&staging, bytes)?;
    std::fs::set_permissions(&staging, mode)?;
    std::fs::rename(&staging, path)
}

/// Where the lock files are: the machine's `/run/lock`, since the users are the machine's.
pub(crate) fn open_lock(name: &str) -> Result<File, String> {
    let dir = Path::new("/run/lock");
    let path = if dir.is_dir() {
        dir.join(format!("keel-graders-{name}"))
    } else {
        workspace::graders_dir().join(name)
    };
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| format!("opening {}: {err}", path.display()))
}

pub(crate) fn flock(file: &File, operation: libc::c_int) -> Result<(), String> {
    loop {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("flock: {err}"));
        }
    }
}

pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|err| format!("cannot run {shown}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

static SHARED: OnceLock<PathBuf> = OnceLock::new();

/// A directory of this process that every user may enter (mode 0755), removed at exit.
///
/// It is under `/var/tmp`, not `/tmp`: a container's default rootfs covers `/tmp`,
/// which would hide a path there from a container instead of keeping it out.
pub fn shared_dir() -> &'static Path {
    SHARED.get_or_init(|| {
        let parent = ["/var/tmp", "/tmp"]
            .into_iter()
            .map(PathBuf::from)
            .find(|dir| dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix(&format!("keel-graders-{}-", std::process::id()))
            .tempdir_in(&parent)
            .unwrap_or_else(|err| {
                panic!("cannot create a directory in {}: {err}", parent.display())
            })
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|err| panic!("cannot chmod {}: {err}", dir.display()));
        register_cleanup();
        dir
    })
}

/// A copy of `binary` in [`shared_dir`] that every user may execute (copied once, by
/// [`install_executable`]).
pub fn accessible_copy(binary: &Path) -> PathBuf {
    static COPIES: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let mut copies = COPIES.lock().unwrap_or_else(|p| p.into_inner());
    let copies = copies.get_or_insert_with(HashMap::new);
    if let Some(copy) = copies.get(binary) {
        return copy.clone();
    }
    let dir = shared_dir().join(format!("bin-{}", copies.len()));
    std::fs::create_dir(&dir).unwrap_or_else(|err| panic!("mkdir {}: {err}", dir.display()));
    let copy = install_executable(binary, &dir);
    copies.insert(binary.to_path_buf(), copy.clone());
    copy
}

/// A copy of the busybox rootfs in [`shared_dir`], owned by root like the original:
/// every user may run it, and none may change it. Do not modify it.
pub fn accessible_busybox() -> Result<&'static Path, Skip> {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    let shared = rootfs::busybox()?;
    Ok(COPY.get_or_init(|| {
        let copy = shared_dir().join("rootfs");
        copy_tree(shared, &copy);
        copy
    }))
}

/// A copy of the busybox rootfs that belongs to `user` (every file chowned to it), for
/// a test to modify; deleted when dropped.
pub fn private_rootfs(user: &TestUser) -> Result<TempDir, Skip> {
    let shared = rootfs::busybox()?;
    let copy = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(shared_dir())
        .expect("cannot create a temporary directory");
    copy_tree(shared, copy.path());
    let status = Command::new("chown")
        .args(["-R", "--no-dereference"])
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(copy.path())
        .status()
        .expect("cannot run chown");
    assert!(status.success(), "chown -R {}", copy.path().display());
    Ok(copy)
}

/// A copy of the runtime `binary` owned by `uid:gid` (mode 0755), in a directory of
/// theirs: what a user gets from `cargo build`, or root's copy in `/usr/local/bin`.
/// Only the calling test runs it (an attack that worked would overwrite it).
pub fn binary_owned_by(binary: &Path, uid: u32, gid: u32) -> (TempDir, PathBuf) {
    let dir = dir_owned_by(uid, gid, 0o755);
    let copy = install_executable(binary, dir.path());
    nix::unistd::chown(
        &copy,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap_or_else(|err| panic!("chown {}: {err}", copy.display()));
    (dir, copy)
}

/// A new directory in [`shared_dir`] owned by `uid:gid` with `mode`; deleted when dropped.
pub fn dir_owned_by(uid: u32, gid: u32, mode: u32) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("dir-")
        .tempdir_in(shared_dir())
        .expect("cannot create a temporary directory");
    nix::unistd::chown(
        dir.path(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap_or_else(|err| panic!("chown {}: {err}", dir.path().display()));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod {}: {err}", dir.path().display()));
    dir
}

/// An executable script at `path`, written by a child process (see
/// [`install_executable`] for why not by this one).
pub fn write_script(path: &Path, text: &str) {
    let status = Command::new("sh")
        .args([
            "-c",
            "printf '%s' \"$2\" > \"$1\" && chmod 755 \"$1\"",
            "sh",
        ])
        .arg(path)
        .arg(text)
        .status()
        .expect("cannot run sh");
    assert!(status.success(), "cannot write {}", path.display());
}

/// `cp -a FROM/. TO`: everything, with owners, modes and symlinks as they are.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|err| panic!("mkdir {}: {err}", to.display()));
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .expect("cannot run cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}
