//! Graders of stage 6 (`stage06-cgroups`): stage 5 plus cgroups. `--memory`,
//! `--pids-limit` and `--cpus` put the container in a cgroup of its own, limited; the
//! container sees that cgroup as its root, read-only.
//!
//! This machine's cgroups are v1 (memory, pids, cpu, cpuacct mounted under
//! /sys/fs/cgroup); the cgroups the machine put the tests in are not touched. Each
//! grader gives the runtime a parent cgroup of its own (`--cgroup-parent`) and checks
//! at its end that nothing is left in it, then removes it. The limits are read from the
//! cgroup's own files and counters (`pids.max`, `cpu.stat`, `memory.oom_control`), not
//! from wall time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use keel_graders::runtime::RunAs;
use keel_graders::users;
use keel_graders::{LeakCheck, Output, Runtime, Skip, need};
use nix::sys::signal::Signal;
use tempfile::TempDir;

const NAME: &str = "stage06-cgroups";

/// The v1 hierarchies the runtime makes a cgroup in (blkio only for a weight).
const HIERARCHIES: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "blkio"];

/// The twin binary, copied where the test users can execute it.
fn binary() -> PathBuf {
    users::accessible_copy(Path::new(env!("CARGO_BIN_EXE_keel-stage06")))
}

/// The stage run by one user, with a store and a parent cgroup of its own.
struct Limited {
    stage: Runtime,
    _store: TempDir,
    parent: Parent,
    /// The detached containers a grader started: removed (`rm -f`) when it ends,
    /// also when it failed halfway.
    detached: std::cell::RefCell<Vec<String>>,
}

impl Drop for Limited {
    fn drop(&mut self) {
        for name in self.detached.take() {
            let _ = self.stage.command_line().args(["rm", "-f", &name]).output();
        }
    }
}

/// A parent cgroup of the grader's own, in every v1 hierarchy: the runtime makes it,
/// the grader checks that it is empty at the end and removes it.
struct Parent(String);

impl Parent {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Parent(format!(
            "keel-graders-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// The container cgroups left in it, in every hierarchy.
    fn children(&self) -> Vec<PathBuf> {
        HIERARCHIES
            .iter()
            .flat_map(|h| subdirs(&Path::new("/sys/fs/cgroup").join(h).join(&self.0)))
            .collect()
    }
}

impl Drop for Parent {
    /// Checks that nothing was left, then removes whatever was: also after a failed
    /// grader, and after a runtime that panicked (a student's `todo!()`) and cleaned
    /// nothing up. The processes of a cgroup left behind are the grader's own.
    fn drop(&mut self) {
        let left = self.children();
        // The runtime removes the parent it made once its last container is gone.
        let parents: Vec<PathBuf> = HIERARCHIES
            .iter()
            .map(|h| Path::new("/sys/fs/cgroup").join(h).join(&self.0))
            .filter(|p| p.exists())
            .collect();
        for child in &left {
            remove_cgroup(child);
        }
        for hierarchy in HIERARCHIES {
            remove_cgroup(&Path::new("/sys/fs/cgroup").join(hierarchy).join(&self.0));
        }
        if !std::thread::panicking() {
            assert!(left.is_empty(), "cgroups left behind: {left:?}");
            assert!(
                parents.is_empty(),
                "parent cgroups left behind: {parents:?}"
            );
        }
    }
}

/// Kills what is in the cgroup `dir` and removes it, waiting a little for the kernel
/// to take the dead out (it may answer EBUSY for a moment).
fn remove_cgroup(dir: &Path) {
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

impl Limited {
    /// As root, on this machine's v1 hierarchies.
    fn root() -> Result<Self, Skip> {
        Self::root_running(binary())
    }

    /// The same, running `binary`.
    fn root_running(binary: PathBuf) -> Result<Self, Skip> {
        users::require_root()?;
        for hierarchy in &HIERARCHIES[..4] {
            let path = Path::new("/sys/fs/cgroup").join(hierarchy);
            if !path.join("cgroup.procs").exists() {
                return Err(Skip(format!(
                    "{} is not a cgroup v1 hierarchy: these graders need v1's {hierarchy} \
                     (the v2 ones run in a VM)",
                    path.display()
                )));
            }
        }
        let store = tempfile::tempdir().expect("a store directory");
        let run_as = RunAs::root_with_store(&store.path().join("store"));
        let parent = Parent::new();
        Ok(Self {
            stage: Runtime::new(NAME, binary)
                .as_user(run_as)
                .with_options(["--cgroup-parent", &parent.0]),
            _store: store,
            parent,
            detached: Default::default(),
        })
    }

    /// As the test user with subordinate ids.
    fn rootless() -> Result<Self, Skip> {
        Self::rootless_running(binary())
    }

    /// The same, running `binary`.
    fn rootless_running(binary: PathBuf) -> Result<Self, Skip> {
        let user = users::with_ranges()?;
        let store = users::dir_owned_by(user.uid, user.gid, 0o700);
        let mut run_as = user.run_as();
        run_as
            .env
            .push(("KEEL_STORE".into(), store.path().join("store").into()));
        let parent = Parent::new();
        Ok(Self {
            stage: Runtime::new(NAME, binary)
                .as_user(run_as)
                .with_options(["--cgroup-parent", &parent.0]),
            _store: store,
            parent,
            detached: Default::default(),
        })
    }

    /// `run --rm OPTIONS busybox sh -c SCRIPT`.
    fn sh(&self, options: &[&str], script: &str) -> Output {
        self.stage
            .run()
            .arg("--rm")
            .args(options)
            .cmd(["busybox", "sh", "-c", script])
            .output()
    }
}

/// A shell that keeps 100 MiB in a variable: PID 1 itself goes over a 32 MiB limit.
const HOG: &str = "x=$(head -c 100m /dev/zero | tr '\\0' a); echo survived";

/// Exercise `read_oom_kills`: the OOM killer ends a memory hog, and the runtime says why.
mod read_oom_kills {
    use super::*;

    #[test]
    fn a_hog_is_oom_killed_with_exit_137_and_a_message() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let out = limited.sh(&["--memory", "32m", "--memory-swap", "32m"], HOG);
        out.expect_code(137);
        assert!(!out.stdout.contains("survived"), "{out}");
        assert!(
            out.stderr.contains("memory limit (32MiB)") && out.stderr.contains("OOM killer"),
            "the runtime should say the memory limit killed it\n{out}"
        );
        assert!(limited.parent.children().is_empty(), "{out}");
    }

    /// A child is killed, PID 1 lives on: the runtime still says what happened.
    #[test]
    fn a_killed_child_is_reported_too() {
        let limited = need!(Limited::root());
        // `tail` keeps what it reads until the end: it is the one over the limit, and
        // (oom_score_adj 1000) the one the OOM killer takes first. It reads /dev/zero
        // itself: it is the only process asking for memory. With a writer feeding it
        // through a pipe, the writer's next page could meet the limit while the killed
        // `tail` was still giving its memory back, and the kernel would kill again,
        // taking the shell.
        let out = limited.sh(
            &["--memory", "32m", "--memory-swap", "32m"],
            "sh -c 'echo 1000 > /proc/self/oom_score_adj; exec tail /dev/zero'; echo shell lives",
        );
        out.expect_success();
        assert_eq!(out.stdout, "shell lives\n", "{out}");
        assert!(
            out.stderr.contains("of the container's processes w"),
            "{out}"
        );
    }

    /// The same hog runs to its end without a limit: the kill above is the limit's.
    #[test]
    fn without_a_limit_the_hog_survives() {
        let limited = need!(Limited::root());
        let out = limited.sh(&[], HOG);
        out.expect_success();
        assert_eq!(out.stdout, "survived\n", "{out}");
        assert!(!out.stderr.contains("OOM"), "{out}");
    }
}

/// Exercise `v1_limits`: each limit is written into its v1 file, and holds.
mod v1_limits {
    use super::*;

    /// The container reads its own limit where a program looks for it.
    #[test]
    fn the_container_sees_its_limit() {
        let limited = need!(Limited::root());
        let out = limited.sh(
            &["--memory", "48m"],
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        );
        out.expect_success();
        assert_eq!(out.stdout.trim(), (48u64 << 20).to_string(), "{out}");
    }
    /// `--pids-limit`: a fork loop stops at the limit.
    #[test]
    fn a_fork_loop_stops_at_the_limit() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        // A child shell starts sixty sleepers, and dies at the first fork refused
        // (busybox's sh gives up on "can't fork"). PID 1 then counts the processes
        // of its PID namespace with builtins only (a glob, `set`, `echo`: no fork is
        // left), kills them, and reads the limit.
        let out = limited.sh(
            &["--pids-limit", "20"],
            "sh -c 'for i in $(seq 60); do sleep 30 & done' 2>/dev/null; \
             set -- /proc/[0-9]*; echo $#; kill -9 -1; wait; \
             cat /sys/fs/cgroup/pids/pids.max",
        );
        out.expect_success();
        let lines = out.lines();
        assert_eq!(lines.get(1), Some(&"20"), "{out}");
        let count: u32 = lines.first().and_then(|l| l.parse().ok()).expect("a count");
        assert!(
            (10..=20).contains(&count),
            "expected at most 20 processes (and most of them started), found {count}\n{out}"
        );
        // The host is unaffected: it forks as before.
        assert!(
            std::process::Command::new("true")
                .status()
                .is_ok_and(|s| s.success())
        );
    }

    /// `--cpus`: the kernel throttles the container, as its own accounting shows.
    #[test]
    fn a_busy_loop_is_throttled() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let out = limited.sh(
            &["--cpus", "0.2"],
            "timeout 1 sh -c 'while :; do :; done'; \
             cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.stat",
        );
        out.expect_success();
        assert_eq!(out.lines().first(), Some(&"20000"), "{out}");
        let throttled: u64 = out
            .lines()
            .iter()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.parse().ok())
            .expect("cpu.stat's nr_throttled");
        assert!(throttled > 0, "the busy loop was never throttled\n{out}");
    }
}

/// Exercise `join_cgroup`: the child is in the container's cgroup before it runs.
mod join_cgroup {
    use super::*;

    /// Seen from the host: the container's process is in `<parent>/<id>` in every
    /// hierarchy, and the runtime is not.
    #[test]
    fn the_container_is_in_its_cgroup_and_the_runtime_is_not() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let mut running = limited
            .stage
            .run()
            .args(["--rm", "--memory", "32m"])
            .cmd(["busybox", "sh", "-c", "echo ready; read line; echo done"])
            .spawn_ready();
        let cgroups = |pid: nix::unistd::Pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/PID/cgroup")
        };
        let inside = cgroups(running.container_pid());
        let runtime = cgroups(running.pid());
        running.close_stdin();
        running.wait().expect_success();
        for hierarchy in ["memory", "pids", "cpu", "cpuacct"] {
            let line = inside
                .lines()
                .find(|l| l.split(':').nth(1) == Some(hierarchy))
                .expect("a line per hierarchy");
            let path = line.rsplit(':').next().unwrap_or_default();
            let prefix = format!("/{}/", limited.parent.0);
            assert!(
                path.starts_with(&prefix) && path.len() == prefix.len() + 12,
                "the container should be in {prefix}<id>: {line}\n{inside}"
            );
        }
        assert!(!runtime.contains(&limited.parent.0), "{runtime}");
    }

    /// Inside, its cgroup is its root: no host path shows.
    #[test]
    fn its_cgroup_is_its_root() {
        let limited = need!(Limited::root());
        let out = limited.sh(&["--memory", "64m"], "cat /proc/self/cgroup");
        out.expect_success();
        for line in out.lines() {
            assert!(
                line.ends_with(":/"),
                "a host cgroup path shows: {line}\n{out}"
            );
        }
    }
}

/// The container's view: /sys/fs/cgroup read-only.
mod view {
    use super::*;

    #[test]
    fn its_limits_cannot_be_raised_from_inside() {
        let limited = need!(Limited::root());
        let file = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
        let out = limited.sh(
            &["--memory", "64m"],
            &format!("echo 1073741824 > {file}; cat {file}"),
        );
        assert!(out.stderr.contains("Read-only file system"), "{out}");
        assert_eq!(out.stdout.trim(), (64u64 << 20).to_string(), "{out}");
    }
}

/// Nothing is left: after an exit, a failed start, or a runtime killed by SIGKILL.
mod cleanup {
    use super::*;

    #[test]
    fn nothing_is_left_after_a_command_that_is_not_found() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let out = limited
            .stage
            .run()
            .args(["--rm", "--memory", "32m"])
            .cmd(["busybox", "no-such-command"])
            .output();
        out.expect_code(127);
        assert!(limited.parent.children().is_empty(), "{out}");
    }

    #[test]
    fn a_refused_limit_stops_the_run_and_leaves_nothing() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        // A kernel that accounts swap takes --memory-swap; the BFQ weight needs a
        // scheduler this machine's disks do not use: the write is refused.
        let out = limited.sh(&["--blkio-weight", "500"], "echo started");
        if out.code == 0 {
            return; // a machine whose disks take weights: nothing refused here
        }
        out.expect_code(125);
        assert!(!out.stdout.contains("started"), "{out}");
        assert!(out.stderr.contains("--blkio-weight"), "{out}");
        assert!(limited.parent.children().is_empty(), "{out}");
    }

    #[test]
    fn a_killed_runtime_leaves_a_cgroup_the_next_run_removes() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let running = limited
            .stage
            .run()
            .args(["--rm", "--memory", "32m"])
            .cmd(["busybox", "sh", "-c", "echo ready; exec sleep 60"])
            .spawn_ready();
        running.signal(Signal::SIGKILL);
        let killed = running.wait();
        assert_eq!(killed.code, 128 + 9, "{killed}");
        let left = limited.parent.children();
        assert!(
            !left.is_empty(),
            "the killed runtime could not remove its cgroup, yet none is there"
        );
        let next = limited.sh(&[], "true");
        next.expect_success();
        let still = limited.parent.children();
        assert!(
            still.is_empty(),
            "left behind after the next run: {still:?}\n{next}"
        );
    }
}

/// Rootless on cgroup v1: no cgroup can be delegated to a user.
mod rootless {
    use super::*;

    #[test]
    fn without_limits_it_runs() {
        let limited = need!(Limited::rootless());
        let _leaks = LeakCheck::start();
        let out = limited.sh(&[], "echo hi");
        out.expect_success();
        assert_eq!(out.stdout, "hi\n", "{out}");
    }

    #[test]
    fn limits_asked_for_fail_with_the_fix() {
        let limited = need!(Limited::rootless());
        let _leaks = LeakCheck::start();
        let out = limited.sh(&["--memory", "32m"], "echo started");
        out.expect_code(125);
        assert!(!out.stdout.contains("started"), "{out}");
        assert!(
            out.stderr.contains("cannot be delegated") && out.stderr.contains("run as root"),
            "{out}"
        );
        assert!(limited.parent.children().is_empty(), "{out}");
    }
}

/// The static build the README installs (`cargo install --path stage06-cgroups
/// --target x86_64-unknown-linux-musl`): the C library is in the binary, and nothing
/// is loaded at start. It must do what the usual build does.
mod static_build {
    use std::process::Command;
    use std::sync::OnceLock;

    use keel_graders::oci;
    use keel_graders::registry::Registry;
    use keel_graders::workspace;

    use super::*;

    const TARGET: &str = "x86_64-unknown-linux-musl";

    /// Builds it once for every grader here (`cargo xtask test` has built it already,
    /// and then this is only cargo's check that it is fresh).
    fn built() -> Result<PathBuf, Skip> {
        static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        BUILT.get_or_init(build).clone().map_err(Skip)
    }

    fn build() -> Result<PathBuf, String> {
        let sysroot = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .map_err(|err| format!("rustc: {err}"))?;
        let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
        if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
            return Err(format!(
                "Rust's {TARGET} target is not installed (rustup target add {TARGET})"
            ));
        }
        if workspace::which("x86_64-linux-musl-gcc").is_none() {
            return Err("musl's C compiler is not installed (apt-get install musl-tools)".into());
        }
        let mut cargo = Command::new(env!("CARGO"));
        // What cargo set for this test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...):
        // build scripts that watch them would run again, and the build with them.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && !matches!(&*key, "CARGO_HOME" | "CARGO_TARGET_DIR") {
                cargo.env_remove(&*key);
            }
        }
        let status = cargo
            .current_dir(workspace::root())
            .args(["build", "--release", "--target", TARGET, "-p", NAME])
            .status()
            .map_err(|err| format!("cargo: {err}"))?;
        assert!(status.success(), "the static build failed: {status}");
        let binary = workspace::target_dir().join(TARGET).join("release/keel");
        Ok(users::accessible_copy(&binary))
    }

    /// Whether an ELF file names a program interpreter (`PT_INTERP`): the dynamic
    /// loader that a dynamically linked program needs.
    fn has_interpreter(elf: &[u8]) -> bool {
        let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
        let offset = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
        (0..u16_at(0x38)).any(|i| {
            let header = offset + i * u16_at(0x36);
            elf[header..header + 4] == 3u32.to_le_bytes()
        })
    }

    #[test]
    fn it_is_static() {
        let binary = need!(built());
        let elf = std::fs::read(&binary).expect("the binary");
        assert_eq!(&elf[..4], b"\x7fELF");
        assert!(
            !has_interpreter(&elf),
            "{} needs a loader",
            binary.display()
        );
        let usual = std::fs::read(env!("CARGO_BIN_EXE_keel-stage06")).expect("the binary");
        assert!(has_interpreter(&usual), "the check sees a dynamic binary");
    }

    #[test]
    fn a_user_runs_a_container_with_subordinate_ids() {
        let binary = need!(built());
        let limited = need!(Limited::rootless_running(binary));
        let _leaks = LeakCheck::start();
        let out = limited.sh(
            &[],
            "id -u; cat /proc/self/uid_map; echo written > /f; cat /f",
        );
        out.expect_success();
        let user = need!(users::with_ranges());
        let range = &user.subuids[0];
        let lines: Vec<Vec<&str>> = out
            .stdout
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        let (uid, range) = (
            user.uid.to_string(),
            (range.start.to_string(), range.count.to_string()),
        );
        assert_eq!(
            lines,
            [
                vec!["0"],
                vec!["0", &uid, "1"],
                vec!["1", &range.0, &range.1],
                vec!["written"],
            ],
            "{out}"
        );
    }

    /// A pull through the static build's own network code: the registry's name is
    /// looked up by musl (`localhost`, in `/etc/hosts`), then spoken to over HTTP.
    #[test]
    fn a_user_pulls_an_image_by_a_registry_name_and_runs_it() {
        let binary = need!(built());
        let limited = need!(Limited::rootless_running(binary));
        let registry = need!(Registry::start(false));
        let base = need!(keel_graders::rootfs::busybox_layer());
        let mark = oci::layer(&[oci::Entry::File("pulled", "from the registry\n")]);
        let layout = tempfile::tempdir().expect("a layout directory");
        oci::write_layout(layout.path(), &[base, mark], serde_json::json!({}));
        registry.push(layout.path(), "test/busybox:latest");
        let port = registry.address.rsplit_once(':').expect("HOST:PORT").1;
        let name = format!("localhost:{port}/test/busybox:latest");
        let _leaks = LeakCheck::start();
        let pulled = limited.stage.command_line().args(["pull", &name]).output();
        pulled.expect_success();
        let out = limited
            .stage
            .run()
            .arg("--rm")
            .cmd([name.as_str(), "cat", "/pulled"])
            .output();
        out.expect_success();
        assert_eq!(out.stdout, "from the registry\n", "{out}");
    }

    #[test]
    fn root_runs_one_in_a_cgroup() {
        let binary = need!(built());
        let limited = need!(Limited::root_running(binary));
        let out = limited.sh(
            &["--memory", "48m"],
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        );
        out.expect_success();
        assert_eq!(out.stdout.trim(), (48u64 << 20).to_string(), "{out}");
        assert!(limited.parent.children().is_empty(), "{out}");
    }
}

/// What container root may still do: docker's default capabilities but for MKNOD, the
/// rest gone from the bounding set before execve.
mod capabilities {
    use super::*;
    use std::collections::BTreeMap;

    /// docker's default set but for MKNOD: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
    /// SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, AUDIT_WRITE,
    /// SETFCAP.
    const DEFAULT: &str = "00000000a00425fb";

    /// The `Cap*:` lines of /proc/self/status, by name.
    fn sets(out: &Output) -> BTreeMap<String, String> {
        out.expect_success();
        out.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("Cap")?.split_once(":\t"))
            .map(|(set, mask)| (set.to_owned(), mask.trim().to_owned()))
            .collect()
    }

    fn assert_sets(out: &Output, bounding: &str) {
        let sets = sets(out);
        for (set, expected) in [
            ("Bnd", bounding),
            ("Prm", bounding),
            ("Eff", bounding),
            ("Inh", "0000000000000000"),
            ("Amb", "0000000000000000"),
        ] {
            assert_eq!(
                sets.get(set).map(String::as_str),
                Some(expected),
                "Cap{set}\n{out}"
            );
        }
    }

    #[test]
    fn root_keeps_only_the_default_set() {
        let limited = need!(Limited::root());
        assert_sets(&limited.sh(&[], "grep ^Cap /proc/self/status"), DEFAULT);
    }

    #[test]
    fn a_users_container_root_keeps_the_same() {
        let limited = need!(Limited::rootless());
        assert_sets(&limited.sh(&[], "grep ^Cap /proc/self/status"), DEFAULT);
    }

    /// runc's CVE-2022-24769: a non-root user of the container must not keep
    /// inheritable capabilities for the programs it runs.
    #[test]
    fn a_non_root_user_has_none() {
        let limited = need!(Limited::root());
        let out = limited.sh(&["-u", "1000"], "grep ^Cap /proc/self/status");
        let sets = sets(&out);
        for set in ["Prm", "Eff", "Inh", "Amb"] {
            assert_eq!(
                sets.get(set).map(String::as_str),
                Some("0000000000000000"),
                "Cap{set}\n{out}"
            );
        }
    }

    /// `script` fails with `error` in root's container with the default set, and
    /// works with `--cap-add capability` (the control: the attack is real).
    fn refused_unless_added(capability: &str, script: &str, error: &str) {
        let limited = need!(Limited::root());
        let script = format!("{script} && echo done");
        let refused = limited.sh(&[], &script);
        assert!(
            !refused.stdout.contains("done") && refused.stderr.contains(error),
            "{refused}"
        );
        let control = limited.sh(&["--cap-add", capability], &script);
        assert!(control.stdout.contains("done"), "{control}");
    }

    /// CVE-2022-0492's first step: root's container (no user namespace) mounts a
    /// cgroup v1 hierarchy, whose `release_agent` the host's kernel would run as root.
    #[test]
    fn a_cgroup_mount_for_a_release_agent_is_refused() {
        refused_unless_added(
            "SYS_ADMIN",
            "mkdir /tmp/m && mount -t cgroup -o memory cgroup /tmp/m",
            "permission denied",
        );
    }

    /// Without a device cgroup, CAP_MKNOD would let root's container make a node for a
    /// host disk in its own /dev, and read it: not in the default set.
    #[test]
    fn a_device_node_cannot_be_made() {
        refused_unless_added("mknod", "mknod /dev/disk b 7 0", "not permitted");
    }

    /// Chapter 1's attack: a container whose stdin is the caller's terminal pushes
    /// keystrokes into its input (`ioctl(TIOCSTI)`), for the caller's shell to run. A
    /// session of its own is not enough for root's container, which has no user
    /// namespace: TIOCSTI also accepts CAP_SYS_ADMIN, which it no longer holds.
    #[test]
    fn roots_container_cannot_type_into_the_callers_terminal() {
        let limited = need!(Limited::root());
        let rootfs = need!(users::accessible_busybox());
        // --rm: the check's run leaves no record behind.
        let stage = limited
            .stage
            .clone()
            .with_options([Path::new("--rm"), Path::new("--rootfs"), rootfs])
            .with_probe_at(keel_graders::runtime::ProbeAt::Inside(
                keel_graders::rootfs::PROBE.into(),
            ));
        let _leaks = LeakCheck::start();
        keel_graders::checks::terminal::tiocsti_cannot_type_into_the_callers_terminal(&stage);
    }

    #[test]
    fn cap_add_and_cap_drop_change_the_set() {
        let limited = need!(Limited::root());
        let none = limited.sh(
            &["--cap-drop", "ALL"],
            "grep ^Cap /proc/self/status; chown 1 /tmp || echo refused",
        );
        assert_sets(&none, "0000000000000000");
        assert!(none.stdout.contains("refused"), "{none}");
        // NET_ADMIN is capability 12.
        let more = limited.sh(&["--cap-add", "NET_ADMIN"], "grep ^Cap /proc/self/status");
        assert_sets(&more, "00000000a00435fb");
    }

    /// `exec` gives its process the container's set, not the runtime's own.
    #[test]
    fn exec_keeps_the_containers_set() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = keel_graders::Marker::new();
        let n = super::runtime_helpers::name("caps");
        let id = limited.detached(
            &n,
            &["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"],
            &format!("exec {}", marker.sleep()),
        );
        let out = limited.keel(&["exec", &n, "grep", "^Cap", "/proc/self/status"]);
        assert_sets(&out, "00000000a00435fa");
        limited.keel(&["rm", "-f", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }
}

/// Bad input: a clear error, exit 125, nothing made.
mod bad_input {
    use super::*;

    fn refused(options: &[&str], says: &str) {
        let limited = need!(Limited::root());
        let out = limited.sh(options, "echo started");
        out.expect_code(125);
        assert!(!out.stdout.contains("started"), "{out}");
        assert!(out.stderr.contains(says), "expected {says:?}\n{out}");
        assert!(limited.parent.children().is_empty(), "{out}");
    }

    #[test]
    fn a_size_that_is_not_one() {
        refused(&["--memory", "1x"], "as in 64m");
    }

    #[test]
    fn swap_below_memory() {
        refused(
            &["--memory", "64m", "--memory-swap", "32m"],
            "at least --memory",
        );
    }

    #[test]
    fn no_cpus() {
        refused(&["--cpus", "0"], "--cpus");
    }

    #[test]
    fn an_unknown_capability() {
        refused(
            &["--cap-add", "SYS_NOPE"],
            "--cap-add SYS_NOPE: no such capability",
        );
        refused(&["--cap-drop", ""], "--cap-drop : no such capability");
    }

    #[test]
    fn a_parent_that_climbs_out() {
        let limited = need!(Limited::root());
        let out = limited
            .stage
            .command_line()
            .args(["run", "--rm", "--cgroup-parent", "../escape"])
            .cmd(["busybox", "sh", "-c", "echo started"])
            .output();
        out.expect_code(125);
        assert!(!out.stdout.contains("started"), "{out}");
        assert!(out.stderr.contains("relative path of plain names"), "{out}");
        assert!(!Path::new("/sys/fs/cgroup/memory/escape").exists());
    }
}

/// cgroup v2, for real: in a VM whose only hierarchy is cgroup2 (`keel_graders::vm`),
/// the same limits, read from v2's files (`memory.events`, `pids.max`, `cpu.stat`), as
/// root and as a user in the subtree delegated to it. One boot per identity.
mod cgroup_v2 {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use keel_graders::vm::{self, Script};

    use super::*;

    /// The checks, as root or (with `as-user`) as the user; `key=value` lines.
    const SCRIPT: &str = r#"
mkdir -p /tmp/rootfs/bin /tmp/rootfs/etc /tmp/rootfs/proc /tmp/rootfs/dev /tmp/rootfs/sys /tmp/rootfs/tmp
touch /tmp/rootfs/etc/hosts /tmp/rootfs/etc/hostname /tmp/rootfs/etc/resolv.conf
cp /bin/busybox /tmp/rootfs/bin/
for applet in sh cat head tail tr seq sleep grep timeout ls; do ln -s busybox /tmp/rootfs/bin/$applet; done
chmod -R a+rX /tmp/rootfs
checks='
    K="keel-stage06 run --rm --network none --rootfs $ROOTFS"
    hog=0
    $K --memory 32m --memory-swap 32m -- sh -c "x=\$(head -c 100m /dev/zero | tr \"\\0\" a)" 2>/tmp/hog.err || hog=$?
    cat /tmp/hog.err >&2
    echo "hog_code=$hog"
    echo "hog_said=$(grep -c "memory limit (32MiB)" /tmp/hog.err)"
    $K --memory 32m --memory-swap 32m -- sh -c "sh -c \"echo 1000 > /proc/self/oom_score_adj; exec tail /dev/zero\"; grep oom_kill /sys/fs/cgroup/memory.events | tr \" \" =" 2>/dev/null
    $K --pids-limit 20 -- sh -c "sh -c \"for i in \\\$(seq 60); do sleep 30 & done\" 2>/dev/null; set -- /proc/[0-9]*; echo processes=\$#; kill -9 -1; wait; echo pids_max=\$(cat /sys/fs/cgroup/pids.max)"
    $K --cpus 0.1 -- sh -c "timeout 2 sh -c \"while :; do :; done\"; echo cpu_max=\$(cat /sys/fs/cgroup/cpu.max | tr \" \" :); grep nr_throttled /sys/fs/cgroup/cpu.stat | tr \" \" ="
    echo "cgroup=$($K --memory 64m -- cat /proc/self/cgroup)"
    echo "born_in_cgroup=$($K --explain --memory 64m -- true 2>&1 | grep -c "CLONE_INTO_CGROUP")"
    echo "left=$(find $PARENT -mindepth 1 -type d 2>/dev/null | wc -l)"
    echo "parent_left=$([ -d $PARENT ] && echo yes || echo no)"
'
"#;

    fn values(stdout: &str) -> BTreeMap<&str, &str> {
        stdout.lines().filter_map(|l| l.split_once('=')).collect()
    }

    fn check(run: &vm::Finished) {
        let values = values(&run.output.stdout);
        let stdout = &run.output;
        let get = |key: &str| {
            *values
                .get(key)
                .unwrap_or_else(|| panic!("no {key}= in the VM's output\n{stdout}"))
        };
        assert_eq!(get("hog_code"), "137", "{stdout}");
        assert_eq!(get("hog_said"), "1", "the runtime should say why\n{stdout}");
        // `tail` at least; the OOM killer may take `head` too before the pipe ends.
        let kills: u32 = get("oom_kill").parse().expect("a count");
        assert!(kills >= 1, "memory.events' oom_kill\n{stdout}");
        let processes: u32 = get("processes").parse().expect("a count");
        assert!((10..=20).contains(&processes), "{stdout}");
        assert_eq!(get("pids_max"), "20", "{stdout}");
        assert_eq!(get("cpu_max"), "10000:100000", "{stdout}");
        let throttled: u64 = get("nr_throttled").parse().expect("a count");
        assert!(throttled > 0, "never throttled\n{stdout}");
        assert_eq!(get("cgroup"), "0::/", "its cgroup is its root\n{stdout}");
        assert_eq!(
            get("born_in_cgroup"),
            "1",
            "on v2 the child is born in its cgroup (clone3's CLONE_INTO_CGROUP)\n{stdout}"
        );
        assert_eq!(get("left"), "0", "cgroups left behind\n{stdout}");
        assert_eq!(
            get("parent_left"),
            "no",
            "keel's parent cgroup left behind\n{stdout}"
        );
    }

    fn binary() -> &'static str {
        env!("CARGO_BIN_EXE_keel-stage06")
    }

    #[test]
    fn limits_as_root() {
        let script = format!(
            "{SCRIPT}\nexport ROOTFS=/tmp/rootfs PARENT=/sys/fs/cgroup/keel\nsh -c \"$checks\"\n"
        );
        let run = need!(
            Script::new(script)
                .binary_at(binary(), "/usr/local/bin/keel-stage06")
                .timeout(Duration::from_secs(120))
                .run()
        );
        check(&run);
    }

    #[test]
    fn limits_as_a_user_with_a_delegated_subtree() {
        let script = format!(
            "{SCRIPT}\nas-user env PARENT={}/keel checks=\"$checks\" sh -c 'cp -r /tmp/rootfs ~/rootfs; ROOTFS=~/rootfs sh -c \"$checks\"'\n",
            vm::DELEGATED
        );
        let run = need!(
            Script::new(script)
                .binary_at(binary(), "/usr/local/bin/keel-stage06")
                .binary("/usr/bin/newuidmap")
                .binary("/usr/bin/newgidmap")
                .timeout(Duration::from_secs(120))
                .run()
        );
        check(&run);
    }
}

/// The runtime's commands, run the way a user types them, and what they leave.
mod runtime_helpers {
    use super::*;
    use std::time::{Duration, Instant};

    use keel_graders::Marker;
    use nix::unistd::Pid;

    impl Limited {
        /// `keel ARGS...`, with nothing added.
        pub fn keel(&self, args: &[&str]) -> Output {
            self.stage.command_line().args(args).output()
        }

        /// `run -d --name NAME --network none OPTIONS busybox sh -c SCRIPT`; the id.
        pub fn detached(&self, name: &str, options: &[&str], script: &str) -> String {
            self.detached.borrow_mut().push(name.to_owned());
            let out = self
                .stage
                .run()
                .args(["-d", "--name", name, "--network", "none"])
                .args(options)
                .cmd(["busybox", "sh", "-c", script])
                .output();
            out.expect_success();
            let id = out.stdout.trim().to_owned();
            assert!(
                id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "run -d should print the container's id\n{out}"
            );
            id
        }

        /// The `ps -a` line of `name`, if any.
        pub fn ps_line(&self, name: &str) -> Option<String> {
            let out = self.keel(&["ps", "-a"]);
            out.expect_success();
            out.lines()
                .iter()
                .find(|l| l.split_whitespace().any(|word| word == name))
                .map(|l| (*l).to_owned())
        }

        /// The container's writable layer in the store.
        pub fn layer(&self, id: &str) -> PathBuf {
            self._store.path().join("store/containers").join(id)
        }

        /// The container's cgroup directories (root: one per hierarchy).
        pub fn cgroups_of(&self, id: &str) -> Vec<PathBuf> {
            self.parent
                .children()
                .into_iter()
                .filter(|p| p.ends_with(id))
                .collect()
        }

        /// The container's PID 1 as the host sees it: the process of its cgroup that
        /// is PID 1 in its own PID namespace.
        pub fn pid1(&self, id: &str) -> Pid {
            let procs = Path::new("/sys/fs/cgroup/pids")
                .join(&self.parent.0)
                .join(id)
                .join("cgroup.procs");
            let text = std::fs::read_to_string(&procs).expect("the container's cgroup.procs");
            text.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .find(|pid| {
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("NSpid:"))
                        .and_then(|ids| ids.split_whitespace().last())
                        == Some("1")
                })
                .map(Pid::from_raw)
                .unwrap_or_else(|| panic!("no PID 1 in {}: {text}", procs.display()))
        }

        /// Asserts that nothing of container `id` (`name`) is left: no record, no
        /// cgroup, no writable layer, no process carrying `marker`.
        pub fn assert_gone(&self, name: &str, id: &str, marker: &Marker) {
            assert_eq!(self.ps_line(name), None, "{name} is still listed");
            assert!(self.cgroups_of(id).is_empty(), "{:?}", self.cgroups_of(id));
            assert!(!self.layer(id).exists(), "its writable layer is left");
            assert!(marker.processes().is_empty(), "its processes are left");
        }
    }

    /// Polls `condition` every 20 ms until it holds, for at most 20 s.
    pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !condition() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A unique container name.
    pub fn name(what: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        format!(
            "{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The detached lifecycle: run -d, ps, logs, stop, wait, rm, and what each leaves.
mod lifecycle {
    use super::runtime_helpers::{eventually, name};
    use super::*;
    use keel_graders::Marker;
    use keel_graders::running::wait_for_exit;
    use std::time::Duration;

    #[test]
    fn run_d_ps_logs_follow_stop_wait_rm() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("life");
        // PID 1 handles SIGTERM (a trap), so that `stop`'s SIGTERM is what ends it: 3.
        let id = limited.detached(
            &n,
            &[],
            &format!(
                "{} & trap 'echo got TERM; exit 3' TERM; echo hello; echo oops >&2; \
                 while [ ! -e /tmp/go ]; do {1} & wait $!; done; echo later; \
                 while :; do {1} & wait $!; done",
                marker.sleep(),
                marker.sleep().replace("86400", "0")
            ),
        );
        let line = limited.ps_line(&n).expect("ps lists it");
        assert!(line.starts_with(&id) && line.contains("running"), "{line}");
        let running = limited.keel(&["ps"]);
        assert!(running.stdout.contains(&n), "{running}");

        eventually("logs show hello", || {
            limited.keel(&["logs", &n]).stdout.contains("hello")
        });
        let logs = limited.keel(&["logs", &n]);
        logs.expect_success();
        assert_eq!(logs.stdout, "hello\n", "{logs}");
        // (The runtime's own notices, such as the image's first import, come first.)
        assert!(
            logs.stderr.ends_with("oops\n") && !logs.stderr.contains("hello"),
            "each line goes back to its stream\n{logs}"
        );

        // -f follows: a line written later shows up, then it ends with the container.
        let mut follow = limited
            .stage
            .command_line()
            .args(["logs", "-f", &n])
            .spawn();
        assert_eq!(follow.read_line(), "hello");
        limited
            .keel(&["exec", &n, "touch", "/tmp/go"])
            .expect_success();
        assert_eq!(follow.read_line(), "later");

        let stop = limited.keel(&["stop", "-t", "20", &n]);
        stop.expect_success();
        assert_eq!(stop.stdout.trim(), n, "{stop}");
        assert_eq!(follow.read_line(), "got TERM");
        follow.wait().expect_success();
        let wait = limited.keel(&["wait", &n]);
        wait.expect_success();
        assert_eq!(wait.stdout.trim(), "3", "{wait}");
        let line = limited.ps_line(&n).expect("ps -a lists it");
        assert!(line.contains("exited (3)"), "{line}");
        assert!(
            !limited.keel(&["ps"]).stdout.contains(&n),
            "ps without -a lists only running containers"
        );
        assert!(
            limited.layer(&id).is_dir(),
            "the writable layer stays until rm"
        );

        let rm = limited.keel(&["rm", &n]);
        rm.expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    #[test]
    fn stop_kills_after_the_timeout_and_init_makes_sigterm_work() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        // `sleep` as PID 1 has no handler: SIGTERM does nothing, SIGKILL ends it.
        let plain = name("plain");
        let id = limited.detached(&plain, &[], &format!("exec {}", marker.sleep()));
        limited.keel(&["stop", "-t", "1", &plain]).expect_success();
        assert_eq!(limited.keel(&["wait", &plain]).stdout.trim(), "137");
        limited.keel(&["rm", &plain]).expect_success();
        limited.assert_gone(&plain, &id, &marker);
        // With --init, PID 1 is keel's init, which passes SIGTERM on: 128 + 15.
        let init = name("init");
        let id = limited.detached(&init, &["--init"], &format!("exec {}", marker.sleep()));
        limited.keel(&["stop", "-t", "60", &init]).expect_success();
        assert_eq!(limited.keel(&["wait", &init]).stdout.trim(), "143");
        limited.keel(&["rm", &init]).expect_success();
        limited.assert_gone(&init, &id, &marker);
    }

    /// A timeout of years (the largest `-t` there is) is waited for without a panic:
    /// the SIGTERM that `--init` makes effective ends the container at once.
    #[test]
    fn stop_with_the_largest_timeout_does_not_panic() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("patient");
        let id = limited.detached(&n, &["--init"], &format!("exec {}", marker.sleep()));
        let stop = limited.keel(&["stop", "-t", &u64::MAX.to_string(), &n]);
        stop.expect_success();
        assert!(!stop.stderr.contains("panicked"), "{stop}");
        assert_eq!(limited.keel(&["wait", &n]).stdout.trim(), "143");
        limited.keel(&["rm", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    /// A record edited to name another cgroup (here a decoy of the grader's, holding a
    /// process) is not taken for the container's: `rm -f` would kill what that cgroup
    /// holds and remove it. The record is refused, and the decoy is untouched.
    #[test]
    fn a_record_that_names_another_cgroup_is_refused() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("edited");
        let id = limited.detached(&n, &[], &format!("exec {}", marker.sleep()));
        let decoy = Path::new("/sys/fs/cgroup/pids")
            .join(&limited.parent.0)
            .join("decoy");
        std::fs::create_dir(&decoy).expect("mkdir the decoy cgroup");
        let mut sleeper = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("a process for the decoy");
        std::fs::write(decoy.join("cgroup.procs"), sleeper.id().to_string())
            .expect("move the sleeper into the decoy");
        let record = Path::new("/run/keel/containers")
            .join(&id)
            .join("state.json");
        let original = std::fs::read_to_string(&record).expect("the container's record");
        let mut edited: serde_json::Value = serde_json::from_str(&original).expect("json");
        edited["cgroups"] = serde_json::json!([decoy]);
        std::fs::write(&record, edited.to_string()).expect("edit the record");

        let rm = limited.keel(&["rm", "-f", &n]);
        let alive = sleeper.try_wait().expect("try_wait").is_none();
        let decoy_there = decoy.is_dir();
        // Put things back, whatever happened, before asserting.
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let _ = std::fs::remove_dir(&decoy);
        if record.parent().is_some_and(Path::is_dir) {
            std::fs::write(&record, &original).expect("restore the record");
            limited.keel(&["rm", "-f", &n]).expect_success();
        }
        assert!(
            alive,
            "rm -f killed the process of a cgroup its record named\n{rm}"
        );
        assert!(decoy_there, "rm -f removed a cgroup its record named\n{rm}");
        rm.expect_code(125);
        assert!(rm.stderr.contains("no such container"), "{rm}");
        limited.assert_gone(&n, &id, &marker);
    }

    #[test]
    fn a_killed_supervisor_shows_as_exited_and_rm_f_removes_everything() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("orphan");
        let id = limited.detached(&n, &[], &format!("exec {}", marker.sleep()));
        let pid1 = limited.pid1(&id);
        let stat = std::fs::read_to_string(format!("/proc/{pid1}/stat")).expect("stat");
        let supervisor: i32 = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .expect("the parent of PID 1");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), Signal::SIGKILL)
            .expect("kill the supervisor");
        assert!(
            wait_for_exit(pid1, Duration::from_secs(20)),
            "PID 1 outlived it"
        );
        let line = limited.ps_line(&n).expect("ps -a still lists it");
        assert!(line.contains("exited (unknown)"), "{line}");
        assert!(!limited.keel(&["ps"]).stdout.contains(&n));
        assert!(
            !limited.cgroups_of(&id).is_empty() && limited.layer(&id).is_dir(),
            "the killed supervisor cannot have removed its cgroup or layer"
        );
        limited.keel(&["rm", "-f", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    /// With a network helper: a supervisor killed by SIGKILL takes slirp4netns with it
    /// (its exit pipe closes), and `rm -f` removes the run directory it named.
    #[test]
    fn rm_f_after_a_killed_supervisor_removes_the_network() {
        need!(keel_graders::net::installed("slirp4netns", "slirp4netns"));
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let n = name("netorphan");
        let out = limited
            .stage
            .run()
            .args(["-d", "--name", &n, "--network", "slirp4netns"])
            .cmd(["busybox", "sleep", "300"])
            .output();
        out.expect_success();
        let id = out.stdout.trim().to_owned();
        let run_dir = format!("/run/keel/net-{id}");
        let helpers = || keel_graders::net::processes_mentioning(&run_dir);
        assert_eq!(
            helpers().len(),
            1,
            "slirp4netns should serve it: {:?}",
            helpers()
        );
        let pid1 = limited.pid1(&id);
        let stat = std::fs::read_to_string(format!("/proc/{pid1}/stat")).expect("stat");
        let supervisor: i32 = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .expect("the parent of PID 1");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), Signal::SIGKILL)
            .expect("kill the supervisor");
        assert!(
            wait_for_exit(pid1, Duration::from_secs(20)),
            "PID 1 outlived it"
        );
        super::runtime_helpers::eventually("slirp4netns exits with the supervisor", || {
            helpers().is_empty()
        });
        assert!(
            Path::new(&run_dir).is_dir(),
            "the killed supervisor cannot have removed {run_dir}"
        );
        limited.keel(&["rm", "-f", &n]).expect_success();
        assert!(!Path::new(&run_dir).exists(), "rm -f left {run_dir}");
        assert!(limited.cgroups_of(&id).is_empty(), "rm -f left its cgroup");
        assert_eq!(limited.ps_line(&n), None);
    }

    /// A `--rm` container whose supervisor was killed cannot remove itself: the next
    /// container started removes it (record, cgroup, writable layer), and its name is
    /// free again for that very run.
    #[test]
    fn a_killed_rm_container_is_swept_by_the_next_run() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("swept");
        let id = limited.detached(&n, &["--rm"], &format!("exec {}", marker.sleep()));
        let pid1 = limited.pid1(&id);
        let stat = std::fs::read_to_string(format!("/proc/{pid1}/stat")).expect("stat");
        let supervisor: i32 = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .expect("the parent of PID 1");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), Signal::SIGKILL)
            .expect("kill the supervisor");
        assert!(
            wait_for_exit(pid1, Duration::from_secs(20)),
            "PID 1 outlived it"
        );
        assert!(
            limited.ps_line(&n).is_some() && limited.layer(&id).is_dir(),
            "nothing could remove it yet"
        );
        // Under the same name: the sweep comes first, and frees it.
        limited.sh(&["--name", &n], "true").expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    /// `run -d` with too few file descriptors fails, at whichever step runs out: in
    /// `run` itself, in the supervisor before the container (its log pipes), or in the
    /// container's start. Each time nothing may be left: no record, no writable layer.
    #[test]
    fn a_run_d_that_fails_anywhere_leaves_no_record() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let mut failures = std::collections::BTreeSet::new();
        for fds in 4..=24 {
            let n = name("nofds");
            let limit = format!("--nofile={fds}:{fds}");
            let out = limited
                .stage
                .clone()
                .wrapped_in("prlimit", [limit.as_str(), "--"])
                .run()
                .args(["-d", "--name", &n, "--network", "none"])
                .cmd(["busybox", "true"])
                .output();
            if out.code == 0 {
                limited.detached.borrow_mut().push(n);
                continue;
            }
            assert_eq!(
                limited.ps_line(&n),
                None,
                "a run -d with {fds} fds failed and left its record\n{out}"
            );
            let layers = std::fs::read_dir(limited._store.path().join("store/containers"))
                .map(|dir| dir.count())
                .unwrap_or(0);
            assert_eq!(layers, 0, "it left a writable layer\n{out}");
            failures.insert(out.stderr.trim().to_owned());
        }
        // The limits reach more than one step (the supervisor's pipes among them).
        assert!(
            failures.iter().any(|why| why.contains("pipe for std")),
            "no run failed in the supervisor: {failures:#?}"
        );
    }

    #[test]
    fn init_reaps_orphans() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        for (init, reaped) in [(true, true), (false, false)] {
            let n = name("zombies");
            let options: &[&str] = if init { &["--init"] } else { &[] };
            // A subshell starts a child and exits: the child is an orphan,
            // re-parented to PID 1. It exits once told to, and waits to be reaped.
            let id = limited.detached(
                &n,
                options,
                &format!(
                    "(while [ ! -e /tmp/die ]; do sleep 0.05; done & echo $! > /tmp/orphan); \
                     exec {}",
                    marker.sleep()
                ),
            );
            let pid1 = limited.pid1(&id);
            let comm = format!("/proc/{pid1}/comm");
            // PID 1 is the sleep (or keel's init): no shell left to reap it by chance.
            eventually("PID 1 is no shell", || {
                std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() != "sh")
            });
            let state = |limited: &Limited| {
                limited
                    .keel(&["exec", &n, "sh", "-c", "cat /proc/$(cat /tmp/orphan)/stat"])
                    .stdout
            };
            eventually("the orphan has run", || {
                limited.keel(&["exec", &n, "cat", "/tmp/orphan"]).code == 0
            });
            limited
                .keel(&["exec", &n, "touch", "/tmp/die"])
                .expect_success();
            if reaped {
                eventually("init reaps the orphan", || state(&limited).is_empty());
            } else {
                // The control: with `sleep` as PID 1 no one reaps it.
                eventually("the orphan is a zombie", || {
                    state(&limited).split_whitespace().nth(2) == Some("Z")
                });
            }
            limited.keel(&["rm", "-f", &n]).expect_success();
            limited.assert_gone(&n, &id, &marker);
        }
    }

    #[test]
    fn read_only_root() {
        let limited = need!(Limited::root());
        let out = limited.sh(
            &["--read-only"],
            "touch /x; touch /tmp/y && echo tmp is writable",
        );
        out.expect_success();
        assert!(out.stderr.contains("Read-only file system"), "{out}");
        assert_eq!(out.stdout, "tmp is writable\n", "{out}");
        let writable = limited.sh(&[], "touch /x && echo root is writable");
        assert_eq!(writable.stdout, "root is writable\n", "{writable}");
    }

    #[test]
    fn rootless_lifecycle() {
        let limited = need!(Limited::rootless());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("rootless");
        let id = limited.detached(&n, &[], &format!("echo hello; exec {}", marker.sleep()));
        let line = limited.ps_line(&n).expect("ps lists it");
        assert!(line.contains("running"), "{line}");
        eventually("logs show hello", || {
            limited.keel(&["logs", &n]).stdout == "hello\n"
        });
        let exec = limited.keel(&["exec", &n, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
        exec.expect_success();
        assert_eq!(exec.lines().first(), Some(&"0"), "{exec}");
        assert!(
            !exec.stdout.contains("4294967295"),
            "exec is in the container's user namespace, not the host's\n{exec}"
        );
        limited.keel(&["stop", "-t", "1", &n]).expect_success();
        assert_eq!(limited.keel(&["wait", &n]).stdout.trim(), "137");
        limited.keel(&["rm", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    /// Bad input: a clear error, exit 125, nothing made or removed.
    #[test]
    fn unknown_names_fail_clearly() {
        let limited = need!(Limited::root());
        for command in [
            &["logs", "no-such-container"][..],
            &["stop", "no-such-container"],
            &["rm", "no-such-container"],
            &["wait", "no-such-container"],
            &["exec", "no-such-container", "true"],
        ] {
            let out = limited.keel(command);
            out.expect_code(125);
            assert!(out.stderr.contains("no such container"), "{out}");
        }
    }

    #[test]
    fn rm_of_a_running_container_needs_f_and_names_are_unique() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("busy");
        let id = limited.detached(&n, &[], &format!("exec {}", marker.sleep()));
        let rm = limited.keel(&["rm", &n]);
        rm.expect_code(125);
        assert!(
            rm.stderr.contains("rm -f") && rm.stderr.contains("stop"),
            "{rm}"
        );
        assert!(limited.ps_line(&n).is_some_and(|l| l.contains("running")));
        // The same name again: refused, and nothing of a second container made.
        let again = limited
            .stage
            .run()
            .args(["-d", "--name", &n, "--network", "none"])
            .cmd(["busybox", "true"])
            .output();
        again.expect_code(125);
        assert!(again.stderr.contains("is taken"), "{again}");
        assert_eq!(
            limited.parent.children().len(),
            limited.cgroups_of(&id).len()
        );
        let listed = limited.keel(&["ps", "-a"]);
        assert_eq!(listed.stdout.matches(n.as_str()).count(), 1, "{listed}");
        // A unique prefix of the id names it too.
        limited.keel(&["rm", "-f", &id[..8]]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    #[test]
    fn restart_policies_other_than_no_are_refused() {
        let limited = need!(Limited::root());
        let n = name("restart");
        let out = limited
            .stage
            .run()
            .args(["-d", "--name", &n, "--restart", "always"])
            .cmd(["busybox", "echo", "started"])
            .output();
        out.expect_code(125);
        assert!(out.stderr.contains("only --restart no"), "{out}");
        assert_eq!(limited.ps_line(&n), None);
        assert!(limited.parent.children().is_empty());
        let bad_name = limited
            .stage
            .run()
            .args(["--name", "a/b"])
            .cmd(["busybox", "echo", "started"])
            .output();
        bad_name.expect_code(125);
        assert!(bad_name.stderr.contains("--name"), "{bad_name}");
    }
}

/// `exec`: a process in every namespace and the cgroup of a running container.
mod exec {
    use super::runtime_helpers::name;
    use super::*;
    use keel_graders::Marker;

    fn ns_inode(pid: &str, ns: &str) -> String {
        std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .map(|l| l.display().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn exec_joins_every_namespace_and_the_cgroup() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("exec");
        let id = limited.detached(
            &n,
            &["-e", "FROM_RUN=1", "--memory", "64m"],
            &format!("exec {}", marker.sleep()),
        );
        let pid1 = limited.pid1(&id).to_string();
        let namespaces = ["ipc", "mnt", "net", "pid", "uts", "cgroup"];
        let out = limited.keel(&[
            "exec",
            &n,
            "sh",
            "-c",
            "for n in ipc mnt net pid uts cgroup; do readlink /proc/self/ns/$n; done; \
             cat /proc/self/cgroup; echo pid=$$; echo FROM_RUN=$FROM_RUN",
        ]);
        out.expect_success();
        for ns in namespaces {
            let theirs = ns_inode(&pid1, ns);
            assert!(
                out.stdout.lines().any(|l| l == theirs),
                "exec is not in the container's {ns} namespace ({theirs})\n{out}"
            );
            assert_ne!(theirs, ns_inode("self", ns), "the container shares {ns}");
        }
        // In the container's cgroup namespace, its own cgroup is "/": a process of
        // another cgroup would see a path climbing out ("/..").
        for line in out
            .lines()
            .iter()
            .filter(|l| l.contains(":memory:") || l.contains(":pids:"))
        {
            assert!(
                line.ends_with(":/"),
                "exec is not in the container's cgroup: {line}\n{out}"
            );
        }
        assert!(
            out.stdout.contains("FROM_RUN=1"),
            "the container's environment\n{out}"
        );
        let pid = out
            .lines()
            .iter()
            .find_map(|l| l.strip_prefix("pid="))
            .and_then(|p| p.parse::<u32>().ok())
            .expect("its pid");
        assert!(pid > 1, "{out}");
        limited.keel(&["rm", "-f", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    /// runc's CVE-2016-9962: between joining the container and `execve`, the runtime's
    /// child is a process of the container, with the container root's ids, that still
    /// holds the runtime's memory and fds. Held there (under ptrace), it is attacked
    /// from a second `exec`: container root may not follow its fds, read where its
    /// binary is, nor read its environment. The same reads of the container's own PID 1
    /// work: the attack is real, only the defences stop it.
    ///
    /// Two defences stand in the way. The kernel lets a process inspect another only if
    /// it holds every capability the other holds, and the joining child still holds the
    /// runtime's; so this one gives the container every capability (`--cap-add ALL`,
    /// in its user namespace), and what is left is that the child is not dumpable.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_joining_runtime_cannot_be_inspected_from_inside() {
        attack_the_joining_runtime(need!(Limited::rootless()), &["--cap-add", "ALL"]);
    }

    /// The same in root's container, which has no user namespace, with the default
    /// capabilities: its root lacks CAP_SYS_PTRACE, and some capabilities the joining
    /// child has (fails once exec keeps every capability).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_joining_runtime_cannot_be_inspected_from_roots_container() {
        attack_the_joining_runtime(need!(Limited::root()), &[]);
    }

    #[cfg(target_arch = "x86_64")]
    fn attack_the_joining_runtime(limited: Limited, options: &[&str]) {
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("dumpable");
        let id = limited.detached(&n, options, &format!("exec {}", marker.sleep()));
        let nspid = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|ids| ids.split_whitespace().last().map(str::to_owned))
        };
        // Its PID 1 is the one of the marked processes (the runtime's command line
        // holds the marker too) that is PID 1 where it lives.
        let pid1 = marker
            .processes()
            .into_iter()
            .map(|pid| pid.to_string())
            .find(|pid| nspid(pid).as_deref() == Some("1"))
            .expect("the container's PID 1");
        let container_pid_ns = ns_inode(&pid1, "pid");
        let held = limited
            .stage
            .command_line()
            .args(["exec", &n, "true"])
            .hold_child_at_exec(|pid| ns_inode(&pid.to_string(), "pid") == container_pid_ns);
        // Its PID as the container sees it.
        let inside = nspid(&held.pid().to_string()).expect("the held child's NSpid");
        let attack = |pid: &str| {
            limited.keel(&[
                "exec",
                &n,
                "sh",
                "-c",
                &format!(
                    "readlink /proc/{pid}/fd/2 >/dev/null && echo fds; \
                     readlink /proc/{pid}/exe >/dev/null && echo exe; \
                     head -c1 /proc/{pid}/environ >/dev/null && echo environ; true"
                ),
            ])
        };
        let against_held = attack(&inside);
        let against_pid1 = attack("1");
        let finished = held.release();
        finished.expect_success();
        against_held.expect_success();
        for what in ["fds", "exe", "environ"] {
            assert!(
                !against_held.stdout.contains(what),
                "container root read the joining runtime's {what}\n{against_held}"
            );
            assert!(
                against_pid1.stdout.contains(what),
                "the same read of PID 1 should work\n{against_pid1}"
            );
        }
        assert!(
            against_held.stderr.contains("Permission denied"),
            "{against_held}"
        );
        limited.keel(&["rm", "-f", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    /// A host directory left open in the caller as fd 7 (runc's CVE-2024-21626 leaked
    /// such an fd into `exec`): the command finds no fd 7, and `-w /proc/self/fd/7`
    /// does not lead out through it.
    #[test]
    fn an_inherited_fd_does_not_reach_the_command() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("fds");
        let id = limited.detached(&n, &[], &format!("exec {}", marker.sleep()));
        let host = std::fs::File::open("/").expect("open the host's /");
        let listed = limited
            .stage
            .command_line()
            .args(["exec", &n, "ls", "/proc/self/fd"])
            .inherit_fd(7, host.try_clone().expect("dup"))
            .output();
        let escaped = limited
            .stage
            .command_line()
            .args(["exec", "-w", "/proc/self/fd/7", &n, "ls"])
            .inherit_fd(7, host)
            .output();
        limited.keel(&["rm", "-f", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
        listed.expect_success();
        let fds: Vec<&str> = listed.stdout.split_whitespace().collect();
        assert!(!fds.contains(&"7"), "the command holds fd 7\n{listed}");
        assert_ne!(
            escaped.code, 0,
            "-w through an inherited fd was accepted\n{escaped}"
        );
        assert!(
            escaped.stdout.is_empty() && escaped.stderr.contains("/proc/self/fd/7"),
            "the command ran, or the error does not name the working directory\n{escaped}"
        );
    }

    #[test]
    fn env_workdir_user_and_exit_codes() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("opts");
        let id = limited.detached(&n, &[], &format!("exec {}", marker.sleep()));
        let out = limited.keel(&[
            "exec",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            &n,
            "sh",
            "-c",
            "echo $FOO; pwd; id -u",
        ]);
        out.expect_success();
        assert_eq!(out.lines(), ["bar", "/tmp", "65534"], "{out}");
        limited
            .keel(&["exec", &n, "sh", "-c", "exit 7"])
            .expect_code(7);
        let missing = limited.keel(&["exec", &n, "no-such-command"]);
        missing.expect_code(127);
        assert!(missing.stderr.contains("no-such-command"), "{missing}");
        limited.keel(&["stop", "-t", "0", &n]).expect_success();
        let stopped = limited.keel(&["exec", &n, "true"]);
        stopped.expect_code(125);
        assert!(stopped.stderr.contains("not running"), "{stopped}");
        limited.keel(&["rm", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }
}

/// Terminals: `exec -it` and `run -it` on a pseudo-terminal the grader holds.
mod pty {
    use super::runtime_helpers::name;
    use super::*;
    use keel_graders::Marker;
    use keel_graders::terminal::Size;

    /// On `terminal`: the size, a resize, Ctrl-C, then exit; the modes come back.
    fn drive(mut terminal: keel_graders::terminal::Terminal) {
        terminal.send(b"stty size; tty\r");
        terminal.expect("33 101");
        terminal.expect("/dev/pts/");
        terminal.resize(Size::new(40, 120));
        terminal.send(b"stty size\r");
        terminal.expect("40 120");
        terminal.send(b"sh -c 'echo re\"\"ady; exec sleep 1000'\r");
        terminal.expect("ready");
        // Ctrl-C, typed: the container's terminal makes it SIGINT for its foreground job.
        terminal.send(b"\x03");
        terminal.send(b"echo sl\"\"ept-$?\r");
        terminal.expect("slept-130");
        terminal.send(b"exit 5\r");
        let initial = terminal.initial_termios().clone();
        let (out, termios) = terminal.wait_with_termios();
        out.expect_code(5);
        assert_eq!(
            termios.local_flags, initial.local_flags,
            "the terminal is left raw"
        );
    }

    #[test]
    fn exec_it_has_a_terminal_of_its_own() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let marker = Marker::new();
        let n = name("pty");
        let id = limited.detached(&n, &[], &format!("exec {}", marker.sleep()));
        let terminal = limited
            .stage
            .command_line()
            .args(["exec", "-it", &n, "sh"])
            .on_terminal(Size::new(33, 101));
        drive(terminal);
        limited.keel(&["rm", "-f", &n]).expect_success();
        limited.assert_gone(&n, &id, &marker);
    }

    #[test]
    fn run_it_has_a_terminal_of_its_own() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let terminal = limited
            .stage
            .run()
            .args(["-it", "--rm", "--network", "none"])
            .cmd(["busybox", "sh"])
            .on_terminal(Size::new(33, 101));
        drive(terminal);
    }
}

/// `stats`: the figures come from the container's cgroup.
mod stats {
    use super::runtime_helpers::name;
    use super::*;

    #[test]
    fn a_busy_container_shows_its_figures_and_limit() {
        let limited = need!(Limited::root());
        let _leaks = LeakCheck::start();
        let n = name("stats");
        let id = limited.detached(
            &n,
            &["--memory", "64m", "--cpus", "0.5"],
            "while :; do :; done",
        );
        let out = limited.keel(&["stats", "--no-stream", &n]);
        limited.keel(&["rm", "-f", &n]).expect_success();
        out.expect_success();
        let row = out
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&id))
            .unwrap_or_else(|| panic!("no row for {id}\n{out}"));
        let words: Vec<&str> = row.split_whitespace().collect();
        // ID NAME CPU% USAGE / LIMIT MEM% PIDS
        assert_eq!(words.get(1), Some(&n.as_str()), "{out}");
        let cpu: f64 = words[2].trim_end_matches('%').parse().expect("a CPU %");
        assert!(
            cpu > 5.0 && cpu <= 60.0,
            "a busy loop under --cpus 0.5 uses some, and at most about half, of a CPU: {cpu}\n{out}"
        );
        assert_eq!(
            words.get(5),
            Some(&"64MiB"),
            "the limit is the cgroup's\n{out}"
        );
        assert_eq!(words.last(), Some(&"1"), "one task: the shell\n{out}");
    }

    #[test]
    fn an_unknown_container_is_an_error() {
        let limited = need!(Limited::root());
        let out = limited.keel(&["stats", "--no-stream", "no-such-container"]);
        out.expect_code(125);
        assert!(out.stderr.contains("no such container"), "{out}");
    }
}
