//! A container's cgroup, v2 or v1 behind one interface: made, limited, joined, read,
//! removed. Every step is a plain file operation in the cgroup filesystem: `mkdir`
//! makes a cgroup, writing a file sets a limit, writing a PID to `cgroup.procs` moves
//! that process in, `rmdir` removes an empty cgroup.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::explain;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;

use crate::hierarchy;
use crate::limits::{Controller, Setting};
use crate::placement::Placement;

/// The controllers every container's cgroup gets, for accounting (`stats`) even
/// without limits; `io` only when a weight is asked for.
const ACCOUNTED: [Controller; 4] = [
    Controller::Memory,
    Controller::Pids,
    Controller::Cpu,
    Controller::Cpuacct,
];

/// One directory of the container's cgroup: v2 has one, v1 one per hierarchy.
#[derive(Debug)]
struct Dir {
    path: PathBuf,
    controllers: Vec<Controller>,
    /// Held for the container's whole life: a runtime sweeping abandoned cgroups (see
    /// [`sweep`]) skips a cgroup whose lock is taken.
    _lock: Flock<fs::File>,
}

/// The container's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    v2: bool,
    dirs: Vec<Dir>,
}

impl Cgroup {
    /// Makes the cgroup `<parent>/<name>` with `controllers` (plus those for
    /// accounting), after removing the cgroups that killed runtimes left in `parent`.
    pub fn create(placement: &Placement, name: &str, io: bool) -> Result<Cgroup> {
        let mut wanted: BTreeSet<Controller> = ACCOUNTED.into_iter().collect();
        if io {
            wanted.insert(Controller::Io);
        }
        match placement {
            Placement::V2 { delegated, parent } => {
                // cpuacct is v1's: v2's cpu controller counts CPU time itself.
                wanted.remove(&Controller::Cpuacct);
                let dir = make_in(parent, name, || enable_v2(delegated, parent, &wanted))?;
                Ok(Cgroup {
                    v2: true,
                    dirs: vec![dir],
                })
            }
            Placement::V1 { parent } => {
                let mounts = hierarchy::v1_mounts()?;
                let mut cgroup = Cgroup {
                    v2: false,
                    dirs: Vec::new(),
                };
                for controller in wanted {
                    let Some(mount) = hierarchy::v1_mount_of(&mounts, controller) else {
                        // Only a controller a limit needs is missed: `settings` says.
                        continue;
                    };
                    let dirs = &mut cgroup.dirs;
                    if let Some(dir) = dirs.iter_mut().find(|d| d.path.starts_with(&mount.path)) {
                        dir.controllers.push(controller); // comounted, as cpu,cpuacct
                        continue;
                    }
                    let parent = mount.path.join(parent);
                    let made = make_in(&parent, name, || {
                        mkdir_all(&parent)?;
                        Ok(vec![controller])
                    });
                    match made {
                        Ok(dir) => cgroup.dirs.push(dir),
                        Err(err) => {
                            // The hierarchies done so far are not left behind.
                            let _ = cgroup.remove();
                            return Err(err);
                        }
                    }
                }
                Ok(cgroup)
            }
            Placement::Without { why, .. } => bail!("no cgroup: {why}"),
        }
    }

    /// Whether this is a cgroup v2 one.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// Its directories, one per hierarchy.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    // ANCHOR: apply
    /// Writes each limit into its file.
    pub fn apply(&self, settings: &[Setting]) -> Result<()> {
        for setting in settings {
            let name = setting.controller.name(self.v2);
            let Some(dir) = self.dir_of(setting.controller) else {
                bail!(
                    "this machine's cgroups have no {name} controller, which {} needs: \
                     enable it in the kernel (CONFIG_CGROUP_*) or leave that limit out",
                    setting.file
                );
            };
            let path = dir.join(setting.file);
            if setting.optional && !path.exists() {
                explain::step(
                    format_args!("skip {}", path.display()),
                    "not asked for, and this kernel does not have it",
                );
                continue;
            }
            write(&path, &setting.value, setting.why).with_context(|| match setting.file {
                "io.bfq.weight" | "blkio.bfq.weight" => {
                    "the disks' I/O scheduler takes no weights: they need the BFQ scheduler \
                     (echo bfq > /sys/block/DEV/queue/scheduler), or leave --blkio-weight out"
                        .to_owned()
                }
                "memory.memsw.limit_in_bytes" | "memory.swap.max" => {
                    "this kernel does not account swap (boot with swapaccount=1), or leave \
                     --memory-swap out"
                        .to_owned()
                }
                _ => format!("setting {name}'s {}", setting.file),
            })?;
        }
        Ok(())
    }
    // ANCHOR_END: apply

    /// v2: its directory, opened, for `clone3(CLONE_INTO_CGROUP)`; v1 has none (a
    /// process is in one cgroup per hierarchy there).
    pub fn birthplace(&self) -> Result<Option<OwnedFd>> {
        if !self.v2 {
            return Ok(None);
        }
        let dir = &self.dirs[0].path;
        let file = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        Ok(Some(file.into()))
    }

    // ANCHOR: join
    /// Moves `pid` (the waiting child) into the cgroup, in every hierarchy: from now
    /// on it and every process it starts are counted and limited.
    pub fn join(&self, pid: Pid) -> Result<()> {
        // ANCHOR: join_cgroup
        // EXERCISE: write the child's PID into the cgroup.procs file of each of the cgroup's directories (self.dirs: one per v1 hierarchy, a single one on v2) with write(), then return Ok(())
        for dir in &self.dirs {
            write(
                &dir.path.join("cgroup.procs"),
                &pid.to_string(),
                "move the child in before it runs anything: what it starts is born inside",
            )?;
        }
        Ok(())
        // ANCHOR_END: join_cgroup
    }
    // ANCHOR_END: join

    // ANCHOR: oom_kills
    /// How many processes the kernel's OOM killer killed in the cgroup: the
    /// `oom_kill` line of v2's `memory.events`, or of v1's `memory.oom_control`.
    pub fn oom_kills(&self) -> u64 {
        // ANCHOR: read_oom_kills
        // EXERCISE: read the file (memory.events on v2, memory.oom_control on v1) in the memory controller's directory (self.dir_of(Controller::Memory)) and return the number on its "oom_kill " line; 0 when anything is missing
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.dir_of(Controller::Memory)
            .and_then(|dir| fs::read_to_string(dir.join(file)).ok())
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
        // ANCHOR_END: read_oom_kills
    }
    // ANCHOR_END: oom_kills

    /// Removes the cgroup from every hierarchy. Its processes are gone: PID 1 of the
    /// container's PID namespace took them with it. Any straggler is killed first.
    pub fn remove(self) -> Result<()> {
        let mut first_error = None;
        for dir in &self.dirs {
            explain::step(
                format_args!("rmdir {}", dir.path.display()),
                "the container is gone: remove its cgroup",
            );
            match rmdir_empty(&dir.path) {
                Ok(()) => remove_empty_parent(&dir.path),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn dir_of(&self, controller: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.contains(&controller))
            .map(|d| d.path.as_path())
    }
}

// ANCHOR: enable_v2
/// Makes the v2 directories from `delegated` down to `parent`, and lets each pass
/// the controllers down (`+memory +pids ...` into `cgroup.subtree_control`): on v2 a
/// cgroup has only the controllers its parent enabled for its children. Returns the
/// controllers the container's cgroup will have.
fn enable_v2(
    delegated: &Path,
    parent: &Path,
    wanted: &BTreeSet<Controller>,
) -> Result<Vec<Controller>> {
    mkdir_all(parent)?;
    let mut available: Vec<Controller> = wanted.iter().copied().collect();
    let below = parent.strip_prefix(delegated).unwrap_or(Path::new(""));
    let mut dir = delegated.to_owned();
    let mut levels = vec![dir.clone()];
    for part in below.components() {
        dir.push(part);
        levels.push(dir.clone());
    }
    for level in &levels {
        let offered = fs::read_to_string(level.join("cgroup.controllers"))
            .with_context(|| format!("reading {}/cgroup.controllers", level.display()))?;
        available.retain(|c| offered.split_whitespace().any(|o| o == c.name(true)));
        let enabled = fs::read_to_string(level.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = available
            .iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == c.name(true)))
            .map(|c| format!("+{}", c.name(true)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        write(
            &level.join("cgroup.subtree_control"),
            &missing.join(" "),
            "pass these controllers down to the cgroups below",
        )
        .with_context(|| {
            format!(
                "{} holds processes of its own, and v2 enables controllers only for a cgroup \
                 whose processes live in its children: move them into a child cgroup",
                level.display()
            )
        })?;
    }
    Ok(available)
}
// ANCHOR_END: enable_v2

/// [`make`], with `ready` making `parent` first (and saying which controllers the
/// cgroup gets); again if the last container of another runtime removed `parent` in
/// between (see [`remove_empty_parent`]).
fn make_in(
    parent: &Path,
    name: &str,
    mut ready: impl FnMut() -> Result<Vec<Controller>>,
) -> Result<Dir> {
    let made = (|| {
        for _ in 0..5 {
            let controllers = ready()?;
            if let Some(dir) = make(parent, name, controllers)? {
                return Ok(dir);
            }
        }
        bail!(
            "{}: removed again and again while a cgroup was made in it",
            parent.display()
        )
    })();
    if made.is_err() {
        // `ready` may have made the parent: it goes, unless another container is in it.
        remove_empty_parent(&parent.join(name));
    }
    made
}

/// `mkdir <parent>/<name>` and lock it, after sweeping `parent`; `None` if `parent`
/// is gone. The parent is locked meanwhile, so that no other runtime's sweep sees the
/// new cgroup between its `mkdir` and its lock, empty and unlocked, and takes it for
/// abandoned, and no runtime removes the parent.
fn make(parent: &Path, name: &str, controllers: Vec<Controller>) -> Result<Option<Dir>> {
    let parent_lock = match lock(parent, FlockArg::LockExclusive) {
        Ok(lock) => lock,
        Err(err) if is_not_found(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    // Locked, but removed just before: the path is gone, or names a new directory.
    let locked = parent_lock.metadata()?.ino();
    if fs::metadata(parent).map(|m| m.ino()).ok() != Some(locked) {
        return Ok(None);
    }
    sweep(parent);
    let path = parent.join(name);
    explain::step(
        format_args!("mkdir {}", path.display()),
        "a new cgroup: the kernel fills the directory with its control files",
    );
    fs::create_dir(&path).with_context(|| format!("creating the cgroup {}", path.display()))?;
    match lock(&path, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(Dir {
            path,
            controllers,
            _lock: lock,
        })),
        Err(err) => {
            let _ = fs::remove_dir(&path);
            Err(err)
        }
    }
}

// ANCHOR: remove_empty_parent
/// Removes the parent of the cgroup `leaf` (`keel`, or `--cgroup-parent`'s last
/// part) once no container is left in it: keel leaves nothing of its own behind. The
/// parent is locked, so that no runtime is making a cgroup in it meanwhile; `rmdir`
/// refuses while another container's cgroup is there.
fn remove_empty_parent(leaf: &Path) {
    let Some(parent) = leaf.parent() else { return };
    if let Ok(_held) = lock(parent, FlockArg::LockExclusive)
        && fs::remove_dir(parent).is_ok()
    {
        explain::step(
            format_args!("rmdir {}", parent.display()),
            "no container is left in keel's parent cgroup",
        );
    }
}
// ANCHOR_END: remove_empty_parent

fn is_not_found(err: &anyhow::Error) -> bool {
    err.root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == ErrorKind::NotFound)
}

/// `flock(2)` on a cgroup directory: cgroupfs locks like any other filesystem.
fn lock(dir: &Path, how: FlockArg) -> Result<Flock<fs::File>> {
    let file = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    Flock::lock(file, how)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", dir.display()))
}

// ANCHOR: sweep
/// Removes the cgroups in `parent` that runtimes killed by SIGKILL left behind: empty,
/// and unlocked (a running runtime holds its cgroup's lock until it has removed it).
/// The caller holds `parent`'s lock.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry.file_name().to_str().is_some_and(common::state::is_id);
        if !is_ours || !path.is_dir() {
            continue;
        }
        // Taken: its runtime is alive.
        if let Ok(_held) = lock(&path, FlockArg::LockExclusiveNonblock) {
            let empty = fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|p| p.is_empty());
            if empty {
                let _ = fs::remove_dir(&path);
            }
        }
    }
}
// ANCHOR_END: sweep

fn mkdir_all(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        explain::step(
            format_args!("mkdir -p {}", dir.display()),
            "the parent of keel's cgroups",
        );
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the cgroup {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `value` into a cgroup file, explained.
fn write(path: &Path, value: &str, why: &str) -> Result<()> {
    explain::step(format_args!("write {} {value:?}", path.display()), why);
    fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

/// `rmdir` once the cgroup is empty. The kernel takes a dead process out of its
/// cgroup a moment after its parent reaped it, so an `EBUSY` is waited out, briefly.
fn rmdir_empty(path: &Path) -> Result<()> {
    let mut pause = Duration::from_micros(200);
    for _ in 0..14 {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                kill_all(path);
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(err) => {
                return Err(err).with_context(|| format!("removing the cgroup {}", path.display()));
            }
        }
    }
    bail!(
        "the cgroup {} still holds processes: kill them (cat {0}/cgroup.procs) and rmdir it",
        path.display()
    )
}

/// SIGKILLs every process still listed in the cgroup (it is ours: we made it).
fn kill_all(path: &Path) {
    let procs = fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Removes the cgroup directory `path` that a killed runtime left (`rm -f`): its
/// processes are killed first. Missing is fine: the runtime removed it.
pub fn remove_dir(path: &Path) -> Result<()> {
    if !path.is_dir() {
        return Ok(());
    }
    kill_all(path);
    explain::step(
        format_args!("rmdir {}", path.display()),
        "the container's cgroup, left by a runtime that could not remove it",
    );
    rmdir_empty(path)?;
    remove_empty_parent(path);
    Ok(())
}
