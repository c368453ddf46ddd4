//! The machine the transcripts run on, and leaving it as it was.
//!
//! The book writes to `/tmp` (`/tmp/rootfs`, `/tmp/k3`, ...). The harness gives its
//! shells a mount namespace of its own in which `/tmp` is a fresh directory of the
//! host's disk (a bind mount, so that mount tables show the disk as they do in the
//! book): nothing of the host's `/tmp` is touched, and it is all gone when the run is
//! over. The book also installs keel into `/usr/local/bin`, for its users: a mount
//! there would show in the containers' mount tables, so that one is the machine's
//! own, and the stage binaries there are put back as they were afterwards.
//!
//! The users and the group of chapter 3 are the machine's, as the book creates them.
//! They must not exist before the run, and are removed after it, with their
//! processes and their lines of `/etc/subuid` and `/etc/subgid`. Those two files are
//! changed only while the graders' lock on them is held (see `keel_graders::users`).
//! A `keel` range of `--userns auto` that was there before is taken out for the run,
//! since the book shows its first use, and put back afterwards in place of the one
//! the run added. Only one run of the transcripts at a time: a second waits.
//!
//! The harness is the *subreaper* of everything the transcripts start: a container
//! whose runtime was killed is re-parented to it rather than to init, so that after
//! each chapter it can kill whatever is left.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use keel_graders::users::{SUBGID, SUBUID, SubidLock, read_ranges, replace_file};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::facts::{GROUP, WITH_RANGE, WITHOUT_RANGE};

/// What the run holds, and what it gives back when dropped.
#[derive(Debug)]
pub struct Machine {
    /// `/var/tmp/keel-transcripts-PID`: the `/tmp` of the transcripts and the
    /// overlay's upper layer.
    pub work: PathBuf,
    /// The `keel` lines of `/etc/subuid` and `/etc/subgid` before the run.
    keel_lines: [Vec<u8>; 2],
    /// `/usr/local/bin/<stage>`, and where its earlier version is kept (if any).
    installed: Vec<(PathBuf, Option<PathBuf>)>,
    /// The host's mount namespace, to go back to before `work` is removed: in ours,
    /// `work` holds bind mounts of the checkout, which a removal would go through.
    host_namespace: Option<OwnedFd>,
    /// Those bind mounts, inside `work`.
    binds: Vec<PathBuf>,
    _subid_lock: SubidLock,
    _run_lock: File,
}

impl Machine {
    /// Takes the locks, checks that the book's users do not exist, keeps what
    /// `/usr/local/bin` has of `stages`, and enters a mount namespace of the harness's
    /// own, in which the paths of `keep` stay where they are. Call it before any thread
    /// is started.
    pub fn prepare(stages: &[String], keep: &[PathBuf]) -> Result<Self> {
        let run_lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/lock/keel-transcripts.lock")
            .context("opening /run/lock/keel-transcripts.lock")?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&run_lock), libc::LOCK_EX) } != 0 {
            bail!("flock: {}", std::io::Error::last_os_error());
        }
        for name in [WITH_RANGE, WITHOUT_RANGE] {
            if nix::unistd::User::from_name(name)?.is_some() {
                bail!(
                    "the user {name} exists already: the transcripts create the book's users \
                     and remove them afterwards, and would remove yours (userdel --remove \
                     {name}, if it is a leftover)"
                );
            }
        }
        if nix::unistd::Group::from_name(GROUP)?.is_some() {
            bail!("the group {GROUP} exists already (groupdel {GROUP}, if it is a leftover)");
        }
        let subid_lock = SubidLock::acquire();
        let mut keel_lines = [Vec::new(), Vec::new()];
        for (path, kept) in [SUBUID, SUBGID].into_iter().zip(&mut keel_lines) {
            if read_ranges(path).iter().any(|r| r.owner == "keel") {
                let (keel, others) = split_keel(&read_or_empty(path));
                *kept = keel;
                replace_file(path, &others).with_context(|| format!("rewriting {path}"))?;
            }
        }
        let work = PathBuf::from(format!("/var/tmp/keel-transcripts-{}", std::process::id()));
        std::fs::create_dir_all(work.join("kept"))?;
        let mut installed = Vec::new();
        for stage in stages {
            let path = Path::new("/usr/local/bin").join(stage);
            let kept = work.join("kept").join(stage);
            let had = path.exists();
            if had {
                std::fs::copy(&path, &kept)
                    .with_context(|| format!("keeping {}", path.display()))?;
            }
            installed.push((path, had.then_some(kept)));
        }
        let mut machine = Self {
            work,
            installed,
            keel_lines,
            host_namespace: None,
            binds: Vec::new(),
            _subid_lock: subid_lock,
            _run_lock: run_lock,
        };
        machine.enter_namespace(keep)?;
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            bail!(
                "PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(machine)
    }

    fn enter_namespace(&mut self, keep: &[PathBuf]) -> Result<()> {
        for (dir, mode) in [("", 0o755), ("tmp", 0o1777)] {
            let path = self.work.join(dir);
            std::fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
        let host = File::open("/proc/self/ns/mnt").context("opening our mount namespace")?;
        self.host_namespace = Some(OwnedFd::from(host));
        unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
        // Nothing mounted here may reach the host's mount namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making / private")?;
        // What the run needs from the host's /tmp (a checkout there, its target
        // directory) is bound into the new one, at the same path.
        for path in keep {
            let Ok(inside) = path.canonicalize() else {
                continue;
            };
            let Ok(rel) = inside.strip_prefix("/tmp") else {
                continue;
            };
            if rel.as_os_str().is_empty() {
                bail!("{} is /tmp itself, which the run replaces", path.display());
            }
            let target = self.work.join("tmp").join(rel);
            std::fs::create_dir_all(&target)
                .with_context(|| format!("mkdir {}", target.display()))?;
            mount(
                Some(&inside),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| format!("keeping {} in the new /tmp", inside.display()))?;
            self.binds.push(target);
        }
        mount(
            Some(&self.work.join("tmp")),
            "/tmp",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("binding a directory of our own on /tmp")?;
        Ok(())
    }

    /// The file the nested shells read their prompts from.
    pub fn env_file(&self) -> PathBuf {
        self.work.join("shrc")
    }

    /// Kills every process the transcripts left, and the book's users' processes, and
    /// says which (but for `quiet`, the shells themselves).
    pub fn kill_leftovers(&self, quiet: &[i32]) -> Vec<String> {
        let mut killed = Vec::new();
        let me = std::process::id() as i32;
        let users: Vec<u32> = [WITH_RANGE, WITHOUT_RANGE]
            .iter()
            .filter_map(|n| nix::unistd::User::from_name(n).ok().flatten())
            .map(|u| u.uid.as_raw())
            .collect();
        for _round in 0..50 {
            let all = processes();
            let left: Vec<&Process> = all
                .iter()
                .filter(|p| p.pid != me && !p.zombie)
                .filter(|p| descends_from(&all, p.pid, me) || users.contains(&p.uid))
                .collect();
            if left.is_empty() {
                break;
            }
            for p in left {
                if !quiet.contains(&p.pid) {
                    killed.push(format!("{} {}", p.pid, p.cmdline));
                }
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
            reap(true);
        }
        reap(false);
        killed.sort();
        killed.dedup();
        killed
    }

    /// Removes the book's users and group, and writes the subordinate id files back.
    pub fn restore(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for name in [WITH_RANGE, WITHOUT_RANGE] {
            if nix::unistd::User::from_name(name).ok().flatten().is_some() {
                let out = Command::new("userdel")
                    .args(["--remove", "--force", name])
                    .output();
                match out {
                    Ok(out) if out.status.success() => {}
                    Ok(out) => problems.push(format!(
                        "userdel {name}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                    Err(err) => problems.push(format!("userdel {name}: {err}")),
                }
            }
        }
        if nix::unistd::Group::from_name(GROUP)
            .ok()
            .flatten()
            .is_some()
            && !Command::new("groupdel")
                .arg(GROUP)
                .status()
                .is_ok_and(|s| s.success())
        {
            problems.push(format!("groupdel {GROUP} failed"));
        }
        for (path, kept) in &self.installed {
            let result = match kept {
                Some(kept) => std::fs::copy(kept, path).map(drop),
                None if path.exists() => std::fs::remove_file(path),
                None => Ok(()),
            };
            if let Err(err) = result {
                problems.push(format!("putting back {}: {err}", path.display()));
            }
        }
        // userdel took the users' lines; the `keel` lines are put back as they were,
        // and nothing else is touched: someone else's line added meanwhile stays.
        for (path, before) in [SUBUID, SUBGID].into_iter().zip(&self.keel_lines) {
            let now = read_or_empty(path);
            let (_, mut restored) = split_keel(&now);
            restored.extend_from_slice(before);
            if restored != now
                && let Err(err) = replace_file(path, &restored)
            {
                problems.push(format!("restoring {path}: {err}"));
            }
        }
        problems
    }
}

impl Drop for Machine {
    /// Removes `work`, never through a bind mount of the checkout: from the host's
    /// mount namespace, where there is none, or else once they are unmounted.
    fn drop(&mut self) {
        let back = self
            .host_namespace
            .as_ref()
            .is_some_and(|ns| nix::sched::setns(ns, CloneFlags::CLONE_NEWNS).is_ok());
        let unbound = back
            || self
                .binds
                .iter()
                .all(|b| nix::mount::umount2(b, nix::mount::MntFlags::MNT_DETACH).is_ok());
        if unbound {
            let _ = std::fs::remove_dir_all(&self.work);
        } else {
            eprintln!(
                "keel-transcripts: {} is left behind: it holds mounts of the checkout",
                self.work.display()
            );
        }
    }
}

/// The `keel:` lines of a subordinate id file, and the others.
fn split_keel(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut keel, mut others) = (Vec::new(), Vec::new());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let into = if line.starts_with(b"keel:") {
            &mut keel
        } else {
            &mut others
        };
        into.extend_from_slice(line);
    }
    (keel, others)
}

fn read_or_empty(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

struct Process {
    pid: i32,
    ppid: i32,
    uid: u32,
    zombie: bool,
    cmdline: String,
}

fn processes() -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            Some(Process {
                pid,
                ppid: field("PPid:").parse().ok()?,
                uid: field("Uid:").split_whitespace().next()?.parse().ok()?,
                zombie: field("State:").starts_with('Z'),
                cmdline: String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .trim()
                    .to_owned(),
            })
        })
        .collect()
}

fn descends_from(all: &[Process], pid: i32, ancestor: i32) -> bool {
    let parent = |p: i32| all.iter().find(|x| x.pid == p).map(|x| x.ppid);
    let mut at = pid;
    for _ in 0..64 {
        match parent(at) {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => at = p,
            _ => return false,
        }
    }
    false
}

/// Reaps dead children; with `block`, waits for one first.
fn reap(block: bool) {
    let mut flags = WaitPidFlag::__WALL;
    if !block {
        flags |= WaitPidFlag::WNOHANG;
    }
    let mut first = true;
    loop {
        let f = if first {
            flags
        } else {
            WaitPidFlag::__WALL | WaitPidFlag::WNOHANG
        };
        first = false;
        match waitpid(None, Some(f)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
