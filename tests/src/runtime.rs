//! Running a stage binary: the command line, a deadline, and what came out.
//!
//! ```text
//! let out = stage01().run().arg("--hostname").arg("box").cmd(["uname", "-n"]).output();
//! out.expect_success();
//! assert_eq!(out.stdout.trim(), "box");
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tempfile::TempDir;

use crate::running::{self, Running};

/// How long any one container may take. Containers start in milliseconds; this is only
/// there so that a hung container fails its test instead of hanging the whole suite.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The uid and gid of `nobody`, to run a stage as an unprivileged user.
const NOBODY: u32 = 65534;

/// Where the container finds `keel-probe`.
#[derive(Debug, Clone)]
pub enum ProbeAt {
    /// On the host's filesystem, which the container shares (stage01).
    Host,
    /// At this path inside the container's root (stage02 with the busybox rootfs).
    Inside(PathBuf),
}

/// A stage binary, and the options every run of it gets (e.g. `--rootfs DIR`).
#[derive(Debug, Clone)]
pub struct Runtime {
    name: String,
    binary: PathBuf,
    options: Vec<OsString>,
    probe: ProbeAt,
    user: Option<RunAs>,
    wrapper: Option<(PathBuf, Vec<OsString>)>,
}

/// An ordinary user to run a stage as (stage03's rootless graders), instead of the
/// graders' own root.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// The user's name, for messages.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups (none unless a test asks, see [`RunAs::with_groups`]).
    pub groups: Vec<u32>,
    /// The user's whole environment: the graders' own is not passed on.
    pub env: Vec<(OsString, OsString)>,
}

impl RunAs {
    /// Root, with a login's environment (`PATH`, `HOME`) and `KEEL_STORE` set to
    /// `store`: the image store of one grader.
    pub fn root_with_store(store: &std::path::Path) -> Self {
        let env = [
            (
                "PATH",
                OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ),
            ("HOME", OsString::from("/root")),
            ("KEEL_STORE", store.as_os_str().to_owned()),
        ];
        RunAs {
            name: "root".into(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            env: env.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }

    /// The same user, in these supplementary groups, as a login (`initgroups`) would
    /// put a member of them: for graders of what a group changes.
    pub fn with_groups(mut self, groups: impl IntoIterator<Item = u32>) -> Self {
        self.groups = groups.into_iter().collect();
        self
    }
}

impl Runtime {
    /// `name` is the stage's name as it prefixes its error messages (`stage01-pidns`);
    /// `binary` is its path, usually `env!("CARGO_BIN_EXE_keel-stage01")`.
    pub fn new(name: &str, binary: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            binary: binary.into(),
            options: Vec::new(),
            probe: ProbeAt::Host,
            user: None,
            wrapper: None,
        }
    }

    /// The stage's name, the prefix of its error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds options that every `run` gets, before the test's own.
    pub fn with_options<I, S>(mut self, options: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.options
            .extend(options.into_iter().map(|o| o.as_ref().to_owned()));
        self
    }

    /// Says where the container finds `keel-probe`.
    pub fn with_probe_at(mut self, probe: ProbeAt) -> Self {
        self.probe = probe;
        self
    }

    /// Runs every invocation as `user` (uid, gid, its supplementary groups, none by
    /// default, and the user's environment). The binary must be one the user can
    /// execute: a build directory may be closed to other users (see
    /// `users::accessible_copy`).
    pub fn as_user(mut self, user: RunAs) -> Self {
        self.user = Some(user);
        self
    }

    /// Runs every invocation under `program` (a tracer such as `strace -f -o FILE`):
    /// the command line becomes `program ARGS... <stage binary> <options>...`.
    pub fn wrapped_in<I, S>(mut self, program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self.wrapper = Some((program.into(), args));
        self
    }

    /// The user every invocation runs as, if not the graders' own.
    pub fn user(&self) -> Option<&RunAs> {
        self.user.as_ref()
    }

    /// `stage run [options] [-- CMD...]`.
    pub fn run(&self) -> Invocation {
        let mut args = vec![OsString::from("run")];
        args.extend(self.options.iter().cloned());
        Invocation::new(self, args)
    }

    /// The stage binary with only the arguments the test gives: no `run`, none of the
    /// options every run gets. For what a user types first on the command line.
    pub fn command_line(&self) -> Invocation {
        Invocation::new(self, Vec::new())
    }

    /// `stage doctor`.
    pub fn doctor(&self) -> Invocation {
        Invocation::new(self, vec![OsString::from("doctor")])
    }

    /// The probe's path as the container sees it (building the probe if needed).
    pub fn probe_path(&self) -> PathBuf {
        match &self.probe {
            ProbeAt::Host => crate::probe::path().to_path_buf(),
            ProbeAt::Inside(path) => path.clone(),
        }
    }
}

/// One run of a stage binary, built up step by step, then [`output`](Self::output) or
/// [`spawn`](Self::spawn).
#[derive(Debug)]
pub struct Invocation {
    runtime: Runtime,
    args: Vec<OsString>,
    command: Option<Vec<OsString>>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    inherited: Option<(RawFd, File)>,
    as_nobody: bool,
    uts_hostname: Option<String>,
    timeout: Duration,
}

impl Invocation {
    fn new(runtime: &Runtime, args: Vec<OsString>) -> Self {
        Self {
            runtime: runtime.clone(),
            args,
            command: None,
            env: Vec::new(),
            stdin: None,
            inherited: None,
            as_nobody: false,
            uts_hostname: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// One more option for the runtime (before `--`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More options for the runtime (before `--`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The command to run in the container (after `--`).
    pub fn cmd<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command = Some(command.into_iter().map(|a| a.as_ref().to_owned()).collect());
        self
    }

    /// Runs `sh -c script` in the container.
    pub fn sh(self, script: &str) -> Self {
        self.cmd(["sh", "-c", script])
    }

    /// Runs `keel-probe ARGS...` in the container.
    pub fn probe<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = vec![self.runtime.probe_path().into_os_string()];
        command.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.cmd(command)
    }

    /// Sets a variable in the *runtime's* environment (not passed to the container
    /// unless the runtime decides to).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Feeds these bytes to the runtime's stdin, then closes it (default: `/dev/null`).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Leaves `file` open in the runtime as fd number `fd`, as a careless caller
    /// (or an attacker) would: the container must not get it.
    pub fn inherit_fd(mut self, fd: RawFd, file: File) -> Self {
        self.inherited = Some((fd, file));
        self
    }

    /// Runs the stage as `nobody` (uid and gid 65534, no groups), through `setpriv`.
    pub fn as_nobody(mut self) -> Self {
        self.as_nobody = true;
        self
    }

    /// Starts the runtime in a UTS namespace of the graders' own, whose hostname is
    /// `hostname` (made as root, before the runtime becomes a test user): a runtime
    /// that sets the container's hostname without a UTS namespace of its own renames
    /// that one, which a test can see, and not the machine.
    pub fn in_own_uts_namespace(mut self, hostname: &str) -> Self {
        self.uts_hostname = Some(hostname.to_owned());
        self
    }

    /// Changes the deadline (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to the end (within the deadline) and returns what came out.
    pub fn output(self) -> Output {
        let stdin = self.stdin.clone();
        let mut running = self.start(stdin.is_some());
        if let Some(bytes) = stdin {
            running.write_stdin(&bytes);
            running.close_stdin();
        }
        running.wait()
    }

    /// Starts the container and returns at once, with stdin, stdout and stderr as pipes.
    pub fn spawn(self) -> Running {
        self.start(true)
    }

    /// [`spawn`](Self::spawn) a command whose first line is `ready` (once it has set up
    /// what the grader then looks at), and wait for that line.
    pub fn spawn_ready(self) -> Running {
        let mut running = self.spawn();
        assert_eq!(running.read_line(), "ready", "the container's first line");
        running
    }

    fn start(self, piped_stdin: bool) -> Running {
        let description = self.to_string();
        let deadline = Instant::now() + self.timeout;
        let (mut command, held) = self.command();
        command
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {description}: {err}"));
        running::Running::new(child, description, deadline, held)
    }

    /// The deadline of this run.
    pub(crate) fn timeout_duration(&self) -> Duration {
        self.timeout
    }

    /// The command line to start, and what must stay alive while it runs.
    pub(crate) fn command(self) -> (Command, Held) {
        let mut argv = self.args.clone();
        if let Some(command) = &self.command {
            argv.push("--".into());
            argv.extend(command.iter().cloned());
        }
        let mut held = Held::default();
        let mut command = if self.as_nobody {
            let (copy, dir) = copy_for_nobody(&self.runtime.binary);
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={NOBODY}"))
                .arg(format!("--regid={NOBODY}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(copy)
                .args(&argv);
            held._copy = Some(dir);
            command
        } else if let Some((program, args)) = &self.runtime.wrapper {
            let mut command = Command::new(program);
            command.args(args).arg(&self.runtime.binary).args(&argv);
            command
        } else {
            let mut command = Command::new(&self.runtime.binary);
            command.args(&argv);
            command
        };
        if let Some(hostname) = &self.uts_hostname {
            // Before become_user (pre_exec closures run in order): it needs root.
            own_uts_namespace(&mut command, hostname);
        }
        if let Some(user) = &self.runtime.user {
            command
                .env_clear()
                .envs(user.env.iter().map(|(k, v)| (k, v)));
            become_user(&mut command, user);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some((fd, file)) = self.inherited {
            let source = file.as_raw_fd();
            // SAFETY: between fork and exec only async-signal-safe calls are allowed;
            // dup2 is one. It also clears close-on-exec on the new fd, so it survives.
            unsafe {
                command.pre_exec(move || {
                    if libc::dup2(source, fd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            held._file = Some(file);
        }
        (command, held)
    }
}

/// Puts the new process in a new UTS namespace named `hostname`, between fork and exec.
fn own_uts_namespace(command: &mut Command, hostname: &str) {
    let name = hostname.as_bytes().to_vec();
    // SAFETY: unshare and sethostname are system calls, async-signal-safe; `name` is
    // moved into the closure and only read.
    unsafe {
        command.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUTS) != 0
                || libc::sethostname(name.as_ptr().cast(), name.len()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the new process `user`, between fork and exec: its supplementary groups
/// (`setgroups`), then its gid, then its uid, the order in which each step still has
/// the privilege the next needs. (std's `Command::uid`/`gid` would do the last two, but
/// always with no supplementary groups at all.)
fn become_user(command: &mut Command, user: &RunAs) {
    let (uid, gid) = (user.uid, user.gid);
    let groups: Vec<libc::gid_t> = user.groups.clone();
    // SAFETY: setgroups, setresgid and setresuid are async-signal-safe system calls;
    // `groups` is moved into the closure and only read.
    unsafe {
        command.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setresgid(gid, gid, gid))?;
            check(libc::setresuid(uid, uid, uid))
        });
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let binary = self.runtime.binary.file_name().unwrap_or_default();
        write!(f, "`{}", binary.to_string_lossy())?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        if let Some(command) = &self.command {
            write!(f, " --")?;
            for arg in command {
                write!(f, " {}", quote(arg))?;
            }
        }
        write!(f, "`")?;
        if let Some((program, _)) = &self.runtime.wrapper {
            write!(f, " (under {})", program.display())?;
        }
        if self.as_nobody {
            write!(f, " (as nobody)")?;
        } else if let Some(user) = &self.runtime.user {
            write!(f, " (as {}", user.name)?;
            if !user.groups.is_empty() {
                write!(f, ", in groups {:?}", user.groups)?;
            }
            write!(f, ")")?;
        }
        if let Some(hostname) = &self.uts_hostname {
            write!(f, " (in a UTS namespace named {hostname})")?;
        }
        Ok(())
    }
}

/// What must stay alive while a run goes on: the copy of the binary that `nobody` runs,
/// and the file to pass on (its fd is duplicated in the child, between fork and exec).
#[derive(Debug, Default)]
pub(crate) struct Held {
    _copy: Option<TempDir>,
    _file: Option<File>,
}

/// A copy of `binary` that `nobody` can execute: the build directory may be in a place
/// that `nobody` cannot enter (such as `/root`).
fn copy_for_nobody(binary: &Path) -> (PathBuf, TempDir) {
    let dir = TempDir::new().expect("cannot create a temporary directory");
    let copy = install_executable(binary, dir.path());
    (copy, dir)
}

/// Copies `binary` into `dir` (made mode 0755) as a file every user may read and
/// execute (mode 0755), and returns the copy's path.
///
/// The copy is written by a child process (`install`), not by this one: a file this
/// process held open for writing could be inherited, for an instant, by a container
/// that another test thread forks, and executing the copy would then fail with
/// "text file busy" (ETXTBSY).
pub fn install_executable(binary: &Path, dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|err| panic!("cannot chmod {}: {err}", dir.display()));
    let copy = dir.join(binary.file_name().unwrap_or_default());
    let status = Command::new("install")
        .args(["-m", "755"])
        .arg(binary)
        .arg(&copy)
        .status()
        .unwrap_or_else(|err| panic!("cannot run install: {err}"));
    assert!(status.success(), "cannot copy {}", binary.display());
    copy
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c))
    {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// What a finished run left: its exit code and its output.
#[derive(Debug, Clone)]
pub struct Output {
    /// What ran, for messages.
    pub description: String,
    /// The exit code, `128 + N` if the runtime itself was killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub(crate) fn new(
        description: String,
        status: ExitStatus,
        stdout: &[u8],
        stderr: &[u8],
    ) -> Self {
        let code = status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .unwrap_or(-1);
        Self {
            description,
            code,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
        }
    }

    /// Panics (showing everything) unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert!(self.code == code, "expected exit code {code}\n{self}");
        self
    }

    /// Panics (showing everything) unless the exit code is 0.
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }

    /// The lines of stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The words of stdout (`ls` prints one name per line when not on a terminal).
    pub fn words(&self) -> Vec<&str> {
        self.stdout.split_whitespace().collect()
    }

    /// stdout parsed as JSON (the probe's reports); panics showing the output if not.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        self.expect_success();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not the expected JSON: {err}\n{self}"))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} exited with {}", self.description, self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Writes `bytes` to `stdin` (used by [`Running`]).
pub(crate) fn write_all(stdin: &mut impl Write, bytes: &[u8]) {
    // A container that exits without reading its input is not an error.
    let _ = stdin.write_all(bytes);
}
