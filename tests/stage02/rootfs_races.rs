//! A rootfs belongs to whoever made it, and its owner may rename things in it while
//! the runtime builds the container. A runtime that looks a name up again after it
//! checked it (`$ROOTFS/dev`, `/proc/self/fd/N/dev/null`) can be sent elsewhere by a
//! symlink swapped in between: runc's CVE-2021-30465. These graders play that owner,
//! and check the rule that prevents it: once the rootfs is an fd, no path-based call
//! reaches into it any more, and the container's /dev, /proc and /sys are filled
//! relative to the fds of their own mounts.

use std::fs::File;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use keel_graders::Output;
use nix::fcntl::{RenameFlags, renameat2};

use super::*;

/// Containers each race starts. The swapper exchanges names many times during each
/// one, so every window in the runtime's set-up is hit again and again.
const RUNS: usize = 300;

/// The owner of a rootfs at work: exchanges each of `names` (directories at the top of
/// the rootfs) with a symlink to a directory of the host, over and over, with
/// `renameat2(RENAME_EXCHANGE)` (atomic: at every moment the name is one or the other),
/// until stopped. Stopping leaves the rootfs as it was.
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Swapper {
    fn start(rootfs: &Path, names: &'static [&'static str], target: &Path) -> Self {
        let dir = File::open(rootfs).expect("open the rootfs");
        for name in names {
            symlink(target, rootfs.join(link_name(name))).expect("make the symlink to swap in");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                exchange_all(&dir, names);
                rounds += 1;
            }
            // An odd number of exchanges left the symlinks where the directories were.
            if rounds % 2 == 1 {
                exchange_all(&dir, names);
            }
            for name in names {
                nix::unistd::unlinkat(
                    &dir,
                    link_name(name).as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                )
                .expect("remove the swapped symlink");
            }
            rounds
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops swapping; returns how many rounds of exchanges were made.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("the swapper runs");
        thread.join().expect("the swapper thread")
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn link_name(name: &str) -> String {
    format!(".{name}-swapped")
}

fn exchange_all(dir: &File, names: &[&str]) {
    for name in names {
        renameat2(
            dir,
            *name,
            dir,
            link_name(name).as_str(),
            RenameFlags::RENAME_EXCHANGE,
        )
        .expect("exchange a directory of the rootfs with a symlink");
    }
}

/// What one run showed.
enum Seen {
    /// Everything as it must be.
    Fine,
    /// The run could not tell (its check could not reach what it checks).
    Unknown,
    /// The container was not built as it must be.
    Wrong(String),
}

/// Runs `command` RUNS times in a private busybox rootfs whose `names` a swapper keeps
/// exchanging with a symlink to an empty directory of the host. Every run must succeed
/// (and pass `check`) or fail as the runtime's error (125) naming the swapped path;
/// afterwards the host directory must still be empty, and the host's mount table
/// unchanged.
fn race(names: &'static [&'static str], command: &[&str], check: impl Fn(&Output) -> Seen) {
    need!(require_root());
    let rootfs = need!(rootfs::private_copy());
    let stage = in_rootfs(rootfs.path());
    let _leaks = LeakCheck::start();
    let target = tempfile::Builder::new()
        .prefix("keel-swap-target-")
        .tempdir_in(workspace::graders_dir())
        .expect("a host directory for the symlink");

    let swapper = Swapper::start(rootfs.path(), names, target.path());
    let (mut fine, mut refused, mut unknown) = (0, 0, 0);
    let mut wrong = Vec::new();
    for _ in 0..RUNS {
        let out = stage.run().cmd(command).output();
        match out.code {
            0 => match check(&out) {
                Seen::Fine => fine += 1,
                Seen::Unknown => unknown += 1,
                Seen::Wrong(what) => wrong.push(format!("{what}\n{out}")),
            },
            cli_checks::RUNTIME_FAILED
                if names
                    .iter()
                    .any(|name| out.stderr.contains(&format!("/{name}"))) =>
            {
                refused += 1;
            }
            _ => wrong.push(format!("neither a success nor a clear refusal\n{out}")),
        }
        if wrong.len() >= 3 {
            break;
        }
    }
    let rounds = swapper.stop();

    let touched: Vec<_> = std::fs::read_dir(target.path())
        .expect("read the host directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert!(
        touched.is_empty(),
        "the runtime created {touched:?} in {}, a directory of the host that a symlink \
         swapped in for the rootfs's {names:?} pointed to: after the rootfs is an fd, \
         fill /dev and apply the masks relative to the fds of their mounts, never by \
         name",
        target.path().display()
    );
    assert!(
        wrong.is_empty(),
        "{} of the runs went wrong while {names:?} were being swapped for symlinks:\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
    assert!(
        fine > 0,
        "no run succeeded and checked out ({refused} refused, {unknown} could not tell, \
         {rounds} rounds of swapping)"
    );
    eprintln!(
        "{RUNS} runs while swapping {names:?} ({rounds} rounds): {fine} fine, {refused} \
         refused, {unknown} could not check"
    );
}

#[test]
fn swapping_dev_for_a_symlink_never_writes_into_the_host() {
    race(&["dev"], &["true"], |_| Seen::Fine);
}

#[test]
fn swapping_proc_for_a_symlink_never_leaves_proc_sys_writable() {
    // The command reaches /proc through its cwd: while the name `proc` is the
    // symlink, `cd` fails and the run cannot tell. Writing the hostname is safe even
    // where it works: it belongs to the container's UTS namespace.
    let script = "cd /proc 2>/dev/null || exit 0; echo changed > sys/kernel/hostname; uname -n";
    race(&["proc"], &["sh", "-c", script], |out| {
        match out.stdout.trim() {
            "" => Seen::Unknown,
            cli_checks::DEFAULT_HOSTNAME => Seen::Fine,
            _ => Seen::Wrong(
                "/proc/sys was writable: the read-only mounts went somewhere else than \
                 the container's /proc"
                    .into(),
            ),
        }
    });
}

#[test]
fn swapping_sys_for_a_symlink_never_unmasks_sys_firmware() {
    let listed = std::fs::read_dir("/sys/firmware").map(|dir| dir.count());
    if !matches!(listed, Ok(1..)) {
        keel_graders::skip!("the host's /sys/firmware is empty or missing: nothing to mask");
    }
    let script = "cd /sys 2>/dev/null || exit 0; echo entries: $(ls -A firmware | wc -l)";
    race(&["sys"], &["sh", "-c", script], |out| {
        match out.stdout.trim() {
            "" => Seen::Unknown,
            "entries: 0" => Seen::Fine,
            _ => Seen::Wrong(
                "/sys/firmware was not masked: the mask went somewhere else than the \
                 container's /sys"
                    .into(),
            ),
        }
    });
}

/// The rule itself, as the kernel sees it: the stage run under `strace`, every
/// syscall that takes a path logged. Once a process has opened the rootfs directory,
/// no path it passes may lead into the rootfs by name: neither the rootfs's own path
/// (`$ROOTFS/dev`) nor a name below an fd (`/proc/self/fd/N/dev`). What is left is
/// names relative to fds (`openat(N, "null")`), bare fds, and host paths (`/dev/null`).
mod no_path_after_the_fd {
    use super::*;

    /// The syscalls that take paths, and every call of the new mount API.
    const TRACED: &str =
        "%file,mount,fsopen,fsconfig,fsmount,move_mount,open_tree,mount_setattr,openat2";

    fn strace() -> Result<&'static Path, Skip> {
        ["/usr/bin/strace", "/bin/strace"]
            .into_iter()
            .map(Path::new)
            .find(|path| path.exists())
            .ok_or_else(|| Skip("strace is missing: apt-get install strace".into()))
    }

    /// Runs the stage in `rootfs` under strace with `args` and `command`; returns its
    /// output and the trace.
    fn traced(rootfs: &Path, args: &[String], command: &[&str]) -> (Output, String) {
        let strace = strace().expect("checked by the caller");
        let log = tempfile::NamedTempFile::new_in(workspace::graders_dir()).expect("a log");
        let log_arg = log.path().to_string_lossy().into_owned();
        let stage = in_rootfs(rootfs).wrapped_in(
            strace,
            ["-f", "-qq", "-s", "4096", "-e", TRACED, "-o", &log_arg],
        );
        let out = stage.run().args(args).cmd(command).output();
        let trace = std::fs::read_to_string(log.path()).expect("read the trace");
        (out, trace)
    }

    /// The lines of `trace` in which a process that had opened `rootfs` passes a path
    /// into it by name. Also returns how many processes opened it.
    fn paths_into_the_rootfs(trace: &str, rootfs: &Path) -> (Vec<String>, usize) {
        let rootfs = rootfs.to_string_lossy();
        let into_rootfs = |path: &str| {
            path == rootfs
                || path
                    .strip_prefix(&*rootfs)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let mut opened = BTreeSet::new();
        let mut found = Vec::new();
        for line in trace.lines() {
            // `1234  openat(...)`: strace pads the pid with spaces.
            let Some((pid, call)) = line.split_once(' ') else {
                continue;
            };
            let call = call.trim_start();
            let paths = quoted(call);
            if opened.contains(pid) {
                if paths.iter().any(|p| into_rootfs(p) || below_an_fd(p)) {
                    found.push(line.to_owned());
                }
            } else if is_open(call) && paths.first().is_some_and(|p| p == &rootfs) {
                opened.insert(pid.to_owned());
            }
        }
        (found, opened.len())
    }

    fn is_open(call: &str) -> bool {
        ["open(", "openat(", "openat2("]
            .iter()
            .any(|name| call.starts_with(name))
    }

    /// `/proc/self/fd/N/name`: a path looked up below what fd N holds.
    fn below_an_fd(path: &str) -> bool {
        path.strip_prefix("/proc/self/fd/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(fd, name)| fd.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
    }

    /// The strings of a strace line, unescaped enough to compare paths.
    fn quoted(call: &str) -> Vec<String> {
        let mut strings = Vec::new();
        let mut chars = call.chars();
        while chars.any(|c| c == '"') {
            let mut string = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => string.extend(chars.next()),
                    '"' => break,
                    c => string.push(c),
                }
            }
            strings.push(string);
        }
        strings
    }

    fn check(trace: &str, rootfs: &Path, out: &Output) {
        let (found, openers) = paths_into_the_rootfs(trace, rootfs);
        assert!(
            openers > 0,
            "the trace shows no open of the rootfs {}: nothing to check\n{out}",
            rootfs.display()
        );
        assert!(
            found.is_empty(),
            "after opening the rootfs, the runtime still named paths in it (each can be \
             redirected by a symlink swapped in by the rootfs's owner); work relative \
             to fds instead:\n{}\n{out}",
            found.join("\n")
        );
    }

    #[test]
    fn a_run_names_no_path_in_the_rootfs_after_opening_it() {
        need!(require_root());
        need!(strace());
        let rootfs = need!(rootfs::private_copy());
        let _leaks = LeakCheck::start();
        let volume = tempfile::tempdir_in(workspace::graders_dir()).expect("a volume");
        let root = rootfs.path().canonicalize().expect("canonical rootfs path");
        let args = [
            "-v".to_owned(),
            format!("{}:/data/new:ro", volume.path().display()),
            "-w".to_owned(),
            "/etc".to_owned(),
        ];
        let (out, trace) = traced(&root, &args, &["true"]);
        out.expect_success();
        check(&trace, &root, &out);
    }

    #[test]
    fn a_failed_run_names_no_path_in_the_rootfs_either() {
        need!(require_root());
        need!(strace());
        let rootfs = need!(rootfs::private_copy());
        let _leaks = LeakCheck::start();
        // Missing mount points and a missing volume target: the runtime creates them,
        // and removes them again after the failed run.
        for dir in ["proc", "dev"] {
            std::fs::remove_dir(rootfs.path().join(dir)).expect("remove a mount point");
        }
        let volume = tempfile::tempdir_in(workspace::graders_dir()).expect("a volume");
        let root = rootfs.path().canonicalize().expect("canonical rootfs path");
        let args = [
            "-v".to_owned(),
            format!("{}:/data/new", volume.path().display()),
        ];
        let (out, trace) = traced(&root, &args, &["keel-no-such-command"]);
        out.expect_code(cli_checks::NOT_FOUND);
        check(&trace, &root, &out);
    }
}

/// `/dev/console` is a mount point for the container's own terminal (`-t`), which the
/// runner binds after `pivot_root`. The caller's terminal is never bound there: it
/// would let the container type into the caller's shell and read what it shows.
mod console {
    use super::*;

    #[test]
    fn the_callers_terminal_is_never_the_containers_console() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let rdev = nix::sys::stat::fstat(&pty.slave).expect("fstat").st_rdev;
        let callers = format!(
            "{:x}:{:x}",
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev)
        );
        let script = "[ -t 0 ] && echo stdin is a terminal; \
                      stat -c %t:%T /dev/console 2>/dev/null || echo no console";
        let out = stage
            .run()
            .inherit_fd(0, File::from(pty.slave))
            .sh(script)
            .output();
        drop(pty.master);
        out.expect_success();
        assert!(
            out.lines().contains(&"stdin is a terminal"),
            "the test's terminal did not reach the runtime as its stdin\n{out}"
        );
        assert!(
            !out.lines().contains(&callers.as_str()),
            "/dev/console in the container is the caller's terminal ({callers}): the \
             container could read and type into the caller's session\n{out}"
        );
        assert!(
            out.lines().contains(&"no console"),
            "without -t the container has no terminal of its own, so no /dev/console\n{out}"
        );
    }
}
