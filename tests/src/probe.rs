//! The probe (`tests/probe`): built once, static, and what it reports.
//!
//! The probe must run in a busybox rootfs, which has no C library, so it is linked
//! statically (`-C target-feature=+crt-static`). It is built by a nested `cargo build`
//! into its own target directory, `<target>/probe`: that build never waits for the lock
//! of the cargo that runs the graders, and its different flags never invalidate the
//! graders' own build. Parallel test processes may all ask for it: cargo's lock on
//! `<target>/probe` serialises them, and a second build finds nothing to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::mountinfo::{self, Mount};
use crate::runtime::Runtime;
use crate::workspace;

/// The only target this workspace builds for (there is no musl here: glibc, static).
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The path of the static probe on the host, built on first use. Panics if the build
/// fails: a grader that needs the probe cannot run without it.
pub fn path() -> &'static Path {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PROBE.get_or_init(build) {
        Ok(path) => path,
        Err(err) => panic!("cannot build keel-probe: {err}"),
    }
}

fn build() -> Result<PathBuf, String> {
    let target_dir = workspace::target_dir().join("probe");
    // `CARGO` is the cargo that runs the graders; same toolchain, same lock file.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--package",
            "keel-probe",
            "--target",
            TARGET,
        ])
        .current_dir(workspace::root())
        .env("CARGO_TARGET_DIR", &target_dir)
        // An explicit --target keeps these flags off build scripts and proc macros.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let path = target_dir.join(TARGET).join("release").join("keel-probe");
    let elf = std::fs::read(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    if has_interpreter(&elf) {
        return Err(format!(
            "{} is dynamically linked (it has a PT_INTERP): it would not run in a rootfs \
             without a C library",
            path.display()
        ));
    }
    Ok(path)
}

/// Whether an ELF64 file asks for a dynamic loader (has a `PT_INTERP` program header):
/// a static program has none.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let header = phoff as usize + i * usize::from(phentsize);
        u32_at(header) == Some(PT_INTERP)
    })
}

/// What `keel-probe` reports: the view from inside.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeReport {
    pub pid: u32,
    pub ppid: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub hostname: Option<String>,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// Namespace name (`pid`, `mnt`, ...) to inode number.
    pub namespaces: BTreeMap<String, u64>,
    pub mountinfo: Vec<String>,
    pub cgroup: Vec<String>,
    pub interfaces: Vec<String>,
    /// `CapEff`, `CapPrm`, `CapBnd`, as hex.
    pub capabilities: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub fds: Vec<OpenFd>,
    /// The session id (`getsid(0)`): the probe's own PID after `setsid()`.
    #[serde(default)]
    pub session: Option<i32>,
    /// The controlling terminal's device number; 0 for none.
    #[serde(default)]
    pub tty_nr: Option<i64>,
}

/// One open file descriptor and what it points to.
#[derive(Debug, Clone, Deserialize)]
pub struct OpenFd {
    pub fd: u32,
    pub target: String,
}

impl ProbeReport {
    /// The inode of namespace `name` (`pid`, `mnt`, `uts`, ...); panics if missing.
    pub fn namespace(&self, name: &str) -> u64 {
        *self
            .namespaces
            .get(name)
            .unwrap_or_else(|| panic!("the probe saw no {name} namespace: {self:?}"))
    }

    /// The mounts the probe saw.
    pub fn mounts(&self) -> Vec<Mount> {
        mountinfo::parse_lines(&self.mountinfo)
    }
}

/// What `keel-probe breakout MARKER` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct BreakoutReport {
    /// Whether every step of the escape succeeded (it may, and still reach nothing).
    pub ok: bool,
    pub error: Option<String>,
    pub marker: String,
    /// Whether the marker (a path of the host) was visible after the attempt.
    pub marker_visible: bool,
    /// What `/` held after the attempt.
    pub root: Vec<String>,
}

/// What `keel-probe read PATH` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadReport {
    pub ok: bool,
    pub error: Option<String>,
    pub bytes: Option<u64>,
}

/// What `keel-probe setgroups | init-module | settime | mount ...` reports: how the
/// kernel answered one privileged call.
#[derive(Debug, Clone, Deserialize)]
pub struct CallReport {
    /// The call, as C would write it.
    pub call: String,
    pub ok: bool,
    /// The error number when it failed (`EPERM` is 1).
    pub errno: Option<i32>,
    pub error: Option<String>,
}

/// What `keel-probe tiocsti TEXT` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct TiocstiReport {
    pub ok: bool,
    /// How many bytes were pushed before the first refusal.
    pub pushed: u32,
    pub errno: Option<i32>,
}

/// What `keel-probe orphan` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct OrphanReport {
    /// The orphan's PID in the container.
    pub orphan: i32,
    /// Its parent after it was orphaned (field 4 of /proc/PID/stat).
    pub adopted_by: Option<String>,
    /// Whether it was reaped after it exited.
    pub reaped: bool,
    /// Its state when the probe gave up (`Z`: a zombie).
    pub state: Option<String>,
}

/// What `keel-probe ptmx [UID]` reports: the terminal that opening `/dev/ptmx`
/// allocated. Devices are `major:minor`.
#[derive(Debug, Clone, Deserialize)]
pub struct PtmxReport {
    pub ok: bool,
    pub error: Option<String>,
    /// Its number (`TIOCGPTN`).
    pub index: Option<u32>,
    /// What `ptsname_r` says.
    pub ptsname: Option<String>,
    /// The filesystem of the slave opened from the master (`TIOCGPTPEER`).
    pub peer_dev: Option<String>,
    /// The slave's own device number.
    pub peer_rdev: Option<String>,
    /// The filesystem of `/dev/pts`.
    pub pts_dev: Option<String>,
    /// The device number of `/dev/pts/<index>`, if that file exists.
    pub node_rdev: Option<String>,
}

/// What `keel-probe paths PATH...` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct PathsReport {
    pub paths: Vec<SeenPath>,
    pub mountinfo: Vec<String>,
}

/// One path, as the probe saw it.
#[derive(Debug, Clone, Deserialize)]
pub struct SeenPath {
    pub path: String,
    pub exists: bool,
    pub dir: bool,
    /// A directory's number of entries.
    pub entries: Option<u64>,
    pub error: Option<String>,
}

impl PathsReport {
    /// The mounts the probe saw.
    pub fn mounts(&self) -> Vec<Mount> {
        mountinfo::parse_lines(&self.mountinfo)
    }
}

/// What the probe reports, run without arguments in a container of `runtime`.
pub fn report(runtime: &Runtime) -> ProbeReport {
    runtime.run().probe([] as [&str; 0]).output().json()
}

/// The namespaces of the graders' own process: the host's, to compare with.
pub fn host_namespaces() -> BTreeMap<String, u64> {
    ["pid", "mnt", "uts", "ipc", "net", "user", "cgroup"]
        .into_iter()
        .filter_map(|name| {
            Some((
                name.to_owned(),
                namespace_inode(Path::new("/proc/self"), name)?,
            ))
        })
        .collect()
}

/// The inode of namespace `name` of the process at `proc_dir` (`/proc/self`, `/proc/42`).
pub fn namespace_inode(proc_dir: &Path, name: &str) -> Option<u64> {
    let link = std::fs::read_link(proc_dir.join("ns").join(name)).ok()?;
    let link = link.to_string_lossy();
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}
