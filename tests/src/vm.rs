//! A virtual machine for graders that need what this machine lacks: a pure cgroup v2.
//!
//! The machines keel is built on mount cgroups in the hybrid layout (v1 controllers,
//! an empty v2 hierarchy), and KVM is not usable. So these graders boot Debian's
//! kernel in qemu's emulator (TCG) with an initramfs made for each script: busybox,
//! the host binaries the grader names (with their shared libraries), and an `/init`
//! that mounts only cgroup2, enables `cpu io memory pids`, creates an ordinary user
//! ([`USER`], uid [`UID`], subordinate ids in `/etc/subuid` and `/etc/subgid`) with a
//! delegated subtree ([`DELEGATED`]), runs the script as root, and powers off. A boot
//! takes a few seconds.
//!
//! ```text
//! let run = need!(vm::Script::new(
//!         "mkdir -p /tmp/rootfs/bin && cp /bin/busybox /tmp/rootfs/bin/\n\
//!          keel-stage06 run --rootfs /tmp/rootfs --memory 32m /bin/busybox tail /dev/zero\n")
//!     .binary_at(env!("CARGO_BIN_EXE_keel-stage06"), "/usr/local/bin/keel-stage06")
//!     .run());
//! assert_eq!(run.output.code, 137, "{}", run.output); // OOM-killed: 128 + SIGKILL
//! ```
//!
//! In the guest, the script runs as root in the root cgroup, with `/bin/sh`, in `/root`;
//! `as-user CMD ARGS...` runs a command as [`USER`] in a leaf of its delegated subtree,
//! the way a login session runs; `KEEL_VM_USER`, `KEEL_VM_UID` and `KEEL_VM_DELEGATED`
//! are set. The module `overlay` is always loaded; [`Script::module`] adds others.
//!
//! What it needs: `qemu-system-x86` and `busybox-static` installed (`cargo xtask setup`),
//! and the kernel, which the first run fetches with `apt-get download` into
//! `<target>/keel-vm/kernel` (`rm -rf` it to fetch a newer one). A grader skips when
//! one of them is missing.

mod cpio;
mod initramfs;
mod kernel;
mod qemu;

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::rootfs;
use crate::runtime::Output;
use crate::skip::Skip;
use crate::workspace;

/// The guest's ordinary user, its uid (and gid), and its subordinate ids.
pub const USER: &str = "keel-grader";
pub const UID: u32 = 1000;
pub const SUBID_START: u32 = 100_000;
pub const SUBID_COUNT: u32 = 65_536;
/// The user's delegated cgroup, where systemd would put its user manager.
pub const DELEGATED: &str = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";

/// How long a script may run, unless [`Script::timeout`] says otherwise.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Added to the script's time for the boot and the power-off, before qemu is killed.
/// Booting takes seconds; the margin is for a machine busy with other builds.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(60);

/// Why the machine cannot be prepared.
#[derive(Debug, Clone)]
pub(crate) enum Unready {
    /// This machine cannot run the VM: the grader skips.
    Skip(Skip),
    /// Something is broken: the grader fails.
    Broken(String),
}

/// A shell script to run in a fresh VM, and what the guest needs for it.
#[derive(Debug, Clone)]
pub struct Script {
    text: String,
    /// Host binaries and their paths in the guest.
    binaries: Vec<(PathBuf, String)>,
    /// Files made from bytes: path in the guest, content, mode.
    files: Vec<(String, Vec<u8>, u32)>,
    modules: Vec<String>,
    timeout: Duration,
}

/// A script that ran in the VM.
#[derive(Debug)]
pub struct Finished {
    /// The script's exit code, stdout and stderr (137 if it outlived its timeout).
    pub output: Output,
    /// The guest's console: the kernel's messages (an OOM kill's among them).
    pub console: String,
    /// From qemu's start until the script started.
    pub boot: Duration,
    /// From qemu's start until it exited.
    pub total: Duration,
}

impl Script {
    /// A script for `/bin/sh` (busybox's ash). Start it with `set -e` to stop at the first
    /// failing command.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            binaries: Vec::new(),
            files: Vec::new(),
            modules: vec!["overlay".to_owned()],
            timeout: SCRIPT_TIMEOUT,
        }
    }

    /// Copies a host binary into the guest at the same path, with its shared libraries.
    pub fn binary(self, host: impl Into<PathBuf>) -> Self {
        let host = host.into();
        let guest = host.to_string_lossy().into_owned();
        self.binary_at(host, &guest)
    }

    /// Copies a host binary into the guest at `guest` (an absolute path), with its
    /// shared libraries at their host paths. Its mode is kept (setuid included).
    pub fn binary_at(mut self, host: impl Into<PathBuf>, guest: &str) -> Self {
        self.binaries.push((host.into(), guest.to_owned()));
        self
    }

    /// Puts a file with `content` and `mode` into the guest at `guest` (an absolute path).
    pub fn file(mut self, guest: &str, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.files.push((guest.to_owned(), content.into(), mode));
        self
    }

    /// Loads a module of the guest's kernel (and those it depends on) before the script.
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_owned());
        self
    }

    /// How long the script may run before it is killed (its exit code is then 137).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Boots a VM, runs the script and returns its result. Skips when this machine cannot
    /// run the VM; panics (the grader fails), with the end of the console, when the
    /// guest does not report, or does not power off in time.
    pub fn run(&self) -> Result<Finished, Skip> {
        let kernel = match prepared() {
            Ok(kernel) => kernel,
            Err(Unready::Skip(skip)) => return Err(skip),
            Err(Unready::Broken(err)) => panic!("cannot prepare the VM: {err}"),
        };
        if let Err(err) = self.check_paths() {
            panic!("bad script for the VM: {err}");
        }
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(kernel::cache_dir())
            .unwrap_or_else(|err| panic!("a directory for the VM's files: {err}"));
        let initramfs = dir.path().join("initramfs.cpio");
        if let Err(err) = initramfs::build(&initramfs, kernel, self) {
            panic!("cannot build the initramfs: {err}");
        }
        let boot = match qemu::boot(
            kernel,
            &initramfs,
            dir.path(),
            self.timeout + BOOT_ALLOWANCE,
        ) {
            Ok(boot) => boot,
            Err(err) => panic!("{err}"),
        };
        let report = match boot.report {
            Ok(report) => report,
            Err(err) => panic!(
                "the VM gave no result: {err}\n{}",
                qemu::tail(&boot.console, 40)
            ),
        };
        let first_line = self.text.lines().find(|line| !line.trim().is_empty());
        Ok(Finished {
            output: Output {
                description: format!("in the VM: {}", first_line.unwrap_or("")),
                code: report.status,
                stdout: String::from_utf8_lossy(&report.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&report.stderr).into_owned(),
            },
            console: boot.console,
            boot: boot.boot.unwrap_or(boot.total),
            total: boot.total,
        })
    }

    /// Guest paths must be absolute, plain, and not the harness's own.
    fn check_paths(&self) -> Result<(), String> {
        let paths = self
            .binaries
            .iter()
            .map(|(_, guest)| guest)
            .chain(self.files.iter().map(|(guest, _, _)| guest));
        for path in paths {
            let mut components = Path::new(path).components();
            let plain = components.next() == Some(Component::RootDir)
                && components.clone().next().is_some()
                && components.all(|part| matches!(part, Component::Normal(_)));
            if !plain {
                return Err(format!("{path:?} is not an absolute path without `..`"));
            }
            if path == "/init" || path.starts_with("/keel/") || path == "/keel" {
                return Err(format!("{path} belongs to the VM's /init"));
            }
        }
        for (host, _) in &self.binaries {
            if !host.is_file() {
                return Err(format!("{} is not a file", host.display()));
            }
        }
        Ok(())
    }
}

/// qemu and the kernel, checked and prepared once per test process.
fn prepared() -> Result<&'static kernel::Kernel, Unready> {
    static KERNEL: OnceLock<Result<kernel::Kernel, Unready>> = OnceLock::new();
    if workspace::which(qemu::QEMU).is_none() {
        return Err(Unready::Skip(Skip(format!(
            "{} is missing: apt-get install qemu-system-x86",
            qemu::QEMU
        ))));
    }
    if !Path::new(rootfs::BUSYBOX).exists() {
        return Err(Unready::Skip(Skip(format!(
            "{} is missing: apt-get install busybox-static",
            rootfs::BUSYBOX
        ))));
    }
    // Once per process: a skip is a skip for every grader of it.
    KERNEL
        .get_or_init(kernel::prepare)
        .as_ref()
        .map_err(Unready::clone)
}
