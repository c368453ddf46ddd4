//! `exec NAME CMD...`: a new process in a running container.
//!
//! A container is a set of namespaces and a cgroup that its processes share; a
//! process *joins* them with `setns(2)`, given a file of `/proc/PID/ns/` of a process
//! inside. The order matters:
//!
//! 1. the **cgroup** first, by writing our PID into its `cgroup.procs`, while we are
//!    still the host's (inside, `/sys/fs/cgroup` is read-only and shows nothing else);
//! 2. the **user** namespace, which owns the others: only as its root may we join
//!    them (and, rootless, only there do we hold capabilities at all);
//! 3. ipc, uts, net, pid, cgroup namespaces, then **mnt** last: after it, `/` is the
//!    container's (and `/proc` paths would name the container's processes);
//! 4. `fork`: `setns` into a PID namespace changes it only for our *children*;
//! 5. in the child: a session of its own (and with `-t` a terminal opened in the
//!    container's devpts), the working directory, every fd but stdio closed, the
//!    container's capabilities and no others (see `common::capabilities`), execve.
//!
//! From the start we are **not dumpable** (`prctl(PR_SET_DUMPABLE, 0)`), until the
//! `execve` of the command resets it: runc's CVE-2016-9962 was a container process
//! that `ptrace`d the runtime while it joined, and took its open fds (a way to the
//! host's filesystem). Non-dumpable, nothing in the container may ptrace us or open
//! our `/proc/PID/fd`. For the same reason, the binary runs from a sealed copy (as
//! `run` does, CVE-2019-5736): the container could otherwise reach it through
//! `/proc/PID/exe` while we are in its namespaces.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use common::exit::Failure;
use common::signals::Supervisor;
use common::{Ids, Process, explain};
use nix::sched::{CloneFlags, setns};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Uid, fork, setresgid, setresuid, setsid};

use super::state::{self, State};

/// `exec`'s options, as docker's.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Keep stdin open: what you type goes to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// A pseudo-terminal of its own, in the container's /dev/pts.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VAL, or KEY to copy the host's), over the container's.
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Working directory inside the container (default: the container's).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The user to run as: USER, UID, USER:GROUP or UID:GID (default: the container's).
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Print every step (syscall, arguments, why) to stderr as it happens.
    #[arg(long)]
    pub explain: bool,
    /// The container: a name, an id, or the start of an id.
    pub container: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The namespaces, in the order they are joined: user first, mnt last.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

// ANCHOR: exec
/// Runs the command in the container; returns its exit code.
pub fn exec(args: ExecArgs) -> Result<i32> {
    explain::enable(args.explain);
    common::fds::close_inherited()?;
    common::sealed::ensure()?;
    let found = state::find(&args.container)?;
    let mut process = process_of(&args, &found)?;
    let pid = found.pid.filter(|p| p.is_alive()).with_context(|| {
        format!(
            "container {} is not running ({}): exec needs a running container",
            args.container,
            found.shown()
        )
    })?;
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    explain::step(
        "prctl(PR_SET_DUMPABLE, 0)",
        "until execve nothing in the container may ptrace us and take our fds (CVE-2016-9962)",
    );
    // The namespaces, then the start time again: the files are surely those of the
    // container's PID 1, not of a later process with its PID.
    let namespaces = open_namespaces(pid.pid)?;
    if !pid.is_alive() {
        bail!("container {} exited meanwhile", args.container);
    }
    let stdin = if process.interactive || process.terminal {
        None
    } else {
        Some(File::open("/dev/null").context("opening /dev/null")?)
    };
    join_cgroup(&found)?;
    enter(pid.pid, namespaces)?;
    start(&mut process, args.user.as_deref(), stdin)
}
// ANCHOR_END: exec

/// The command, with the container's environment, directory and user, then -e, -w, -u.
fn process_of(args: &ExecArgs, found: &State) -> Result<Process> {
    let mut process = Process {
        argv: args.command.clone(),
        env: found.env.clone(),
        user_env: Vec::new(),
        cwd: args.workdir.clone().or_else(|| found.cwd.clone()),
        terminal: args.tty,
        interactive: args.interactive,
        init: false,
        user: found.user.as_ref().map(|u| Ids {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        }),
        capabilities: Some(match &found.capabilities {
            Some(names) => names
                .iter()
                .map(|name| common::capabilities::parse(name))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect(),
            None => common::capabilities::DEFAULT.to_vec(),
        }),
    };
    if args.tty
        && let Ok(term) = std::env::var("TERM")
    {
        process.setenv("TERM", term);
    }
    for item in &args.env {
        let (key, value) = common::cli::env_assignment(item, |key| std::env::var(key).ok())?;
        process.setenv(&key, value);
    }
    if let Some(cwd) = &process.cwd
        && !cwd.is_absolute()
    {
        bail!(
            "-w {}: the working directory must be an absolute path inside the container",
            cwd.display()
        );
    }
    if let Some(spec) = &args.user {
        stage05_overlay::user::check(spec)?;
    }
    Ok(process)
}

/// The namespaces of `pid` that are not already ours, opened.
fn open_namespaces(pid: u32) -> Result<Vec<(&'static str, CloneFlags, File)>> {
    let mut open = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let theirs = File::open(&path).with_context(|| format!("opening {path}"))?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .with_context(|| format!("stat /proc/self/ns/{name}"))?;
        let meta = theirs.metadata().with_context(|| format!("stat {path}"))?;
        if (meta.dev(), meta.ino()) != (ours.dev(), ours.ino()) {
            open.push((name, flag, theirs));
        }
    }
    Ok(open)
}

/// Moves this process into the container's cgroup (every hierarchy).
fn join_cgroup(found: &State) -> Result<()> {
    let me = std::process::id().to_string();
    for dir in &found.cgroups {
        let procs = dir.join("cgroup.procs");
        explain::step(
            format_args!("write {} {me:?}", procs.display()),
            "join the container's cgroup first, while its files are still in our view",
        );
        std::fs::write(&procs, &me).with_context(|| format!("writing {}", procs.display()))?;
    }
    Ok(())
}

/// `setns` into each namespace, user first; then root of the user namespace.
fn enter(pid: u32, namespaces: Vec<(&'static str, CloneFlags, File)>) -> Result<()> {
    for (name, flag, file) in namespaces {
        setns(file.as_fd(), flag).with_context(|| {
            format!("setns(/proc/{pid}/ns/{name}): joining the container's {name} namespace")
        })?;
        explain::step(
            format_args!("setns(/proc/{pid}/ns/{name})"),
            match name {
                "user" => "the user namespace first: as its root we may join the others",
                "pid" => "our children will be born in the container's PID namespace",
                "mnt" => "last: from now on / is the container's root",
                _ => "one more of the container's namespaces",
            },
        );
        if flag == CloneFlags::CLONE_NEWUSER {
            setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                .context("setresgid(0) in the container's user namespace")?;
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .context("setresuid(0) in the container's user namespace")?;
        }
    }
    nix::unistd::chdir("/").context("chdir(\"/\") in the container")?;
    Ok(())
}

/// Forks the command into the container's PID namespace and supervises it as `run`
/// does: signals forwarded, its terminal relayed.
fn start(process: &mut Process, user: Option<&str>, stdin: Option<File>) -> Result<i32> {
    let supervisor = Supervisor::block()?;
    let (parent_end, child_end) = common::sync::channel()?;
    // SAFETY: single-threaded; the child execs or exits.
    match unsafe { fork() }.context("fork into the container's PID namespace")? {
        ForkResult::Child => {
            explain::mark_child();
            parent_end.close_in_child();
            supervisor.restore_in_child();
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let _ = setsid();
            let failure = match prepare_child(process, user, stdin) {
                Ok(()) => {
                    if process.terminal
                        && let Err(err) = common::pty::attach_with(&child_end, false)
                    {
                        Failure {
                            code: common::exit::RUNTIME_FAILED,
                            message: format!("{err:#}"),
                        }
                    } else {
                        match common::fds::close_on_exec_all() {
                            Ok(()) => common::exec::exec(process),
                            Err(err) => Failure {
                                code: common::exit::RUNTIME_FAILED,
                                message: format!("{err:#}"),
                            },
                        }
                    }
                }
                Err(err) => Failure {
                    code: common::exit::code_of(&err),
                    message: format!("{err:#}"),
                },
            };
            child_end.report(failure.code, &failure.message);
            std::process::exit(failure.code)
        }
        ForkResult::Parent { child } => {
            drop(child_end);
            explain::step(
                format_args!("fork() -> {child}"),
                "the command's process, in the container's PID namespace",
            );
            let terminal = match parent_end.wait_for_exec() {
                Ok(terminal) => terminal,
                Err(err) => {
                    let _ = waitpid(child, None);
                    return Err(err);
                }
            };
            supervisor.supervise(child, terminal, process.interactive)
        }
    }
}

/// In the child, before the terminal: the user (`-u`), stdin, the working directory.
fn prepare_child(process: &mut Process, user: Option<&str>, stdin: Option<File>) -> Result<()> {
    if let Some(spec) = user {
        // Looked up in the container's own /etc, which is now our `/`; here, in its
        // PID namespace, where its /proc knows us as /proc/self.
        process.user = Some(stage05_overlay::user::resolve(spec, &[PathBuf::from("/")])?);
    }
    if let Some(null) = stdin {
        nix::unistd::dup2_stdin(&null).context("dup2(/dev/null, 0)")?;
    }
    common::workdir::enter(process.cwd.as_deref(), None)
}
