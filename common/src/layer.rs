//! The one concept of keel: an isolation feature is a [`Layer`].
//!
//! A container is not one thing the kernel gives you. It is a handful of separate
//! features (namespaces, a new root, id maps, a network, cgroups) that a runtime sets up
//! in the right order around one `clone` and one `execve`. Each stage of keel adds
//! exactly one of them as a layer; the [runner](crate::runner) calls every layer's
//! phases in order, so the order of the phases *is* the order of the lesson.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::Result;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// What runs when no command is given and no layer chose one.
pub const DEFAULT_COMMAND: &str = "/bin/sh";

/// What the container will run: it is filled in from the command line, layers may
/// adjust it while preparing (a hostname layer adds `HOSTNAME=`), and the runner execs
/// it at the very end.
#[derive(Debug, Clone, Default)]
pub struct Process {
    /// The command and its arguments; `argv[0]` is looked up in the container's `PATH`.
    /// Empty when none was given: a layer may fill it in while preparing (stage 5 runs
    /// the image's command), and the runner then runs [`DEFAULT_COMMAND`].
    pub argv: Vec<String>,
    /// The whole environment of the command (nothing is inherited from the host).
    pub env: Vec<(String, String)>,
    /// The variables the user set (`-e`): a layer's defaults (stage 5's image `Env`)
    /// do not override them.
    pub user_env: Vec<String>,
    /// The working directory inside the container, `None` for `/`.
    pub cwd: Option<PathBuf>,
    /// A pseudo-terminal of its own (`-t`), relayed to the caller's terminal.
    pub terminal: bool,
    /// With a terminal: the caller's stdin is typed into it (`-i`).
    pub interactive: bool,
    /// PID 1 is keel's small init, which starts the command as PID 2 (`--init`).
    pub init: bool,
    /// The ids the command runs as, inside the container (stage 5's `-u`, or the
    /// image's `User`); `None`: root.
    pub user: Option<Ids>,
    /// The capabilities container root keeps (stage 6, see [`crate::capabilities`]);
    /// `None`: every one it has (stages 1 to 5).
    pub capabilities: Option<Vec<caps::Capability>>,
}

/// A user inside the container: its uid, its gid, and its supplementary groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Process {
    /// The value of `key` in the container's environment.
    pub fn getenv(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (replacing an earlier value), like `export key=value`.
    pub fn setenv(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key.to_owned(), value)),
        }
    }
}

/// A file the runtime makes for the container (stage 4's `/etc/hosts`, `/etc/hostname`
/// and `/etc/resolv.conf`). The layer that builds the root binds it read-only at
/// `path`: neither the rootfs, which is the user's, nor the host is written into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeFile {
    /// Where the container sees it: an absolute path.
    pub path: PathBuf,
    /// What it holds.
    pub text: String,
}

/// The parent's view before `clone`: validate input, open what must be opened from the
/// host's point of view, adjust the process.
#[derive(Debug)]
pub struct Prepare<'a> {
    /// The container's id: 12 hexadecimal digits, decided once before any layer
    /// prepares. Every layer names what it makes on the host after it (stage 4's run
    /// directory, stage 5's writable layer, stage 6's cgroup), so that a runtime that
    /// finds a dead container's id can find all of it.
    pub id: &'a str,
    /// The command the container will run.
    pub process: &'a mut Process,
    /// Files for the container: a layer adds them, and the layer that builds the root
    /// (after it in the order) takes them.
    pub files: &'a mut Vec<MadeFile>,
    /// The union of every layer's [`Layer::clone_flags`]: which namespaces the child gets.
    pub clone_flags: CloneFlags,
    /// A cgroup v2 directory, opened, for the child to be born in (`clone3` with
    /// `CLONE_INTO_CGROUP`): stage 6's layer sets it on v2.
    pub cgroup: &'a mut Option<OwnedFd>,
}

/// The parent's view while the child exists but waits: the place for work that must be
/// done *from outside* (writing id maps, attaching a network, joining a cgroup).
#[derive(Debug)]
pub struct Parent {
    /// The child's PID, as the host sees it.
    pub pid: Pid,
    /// The namespaces the child was created with.
    pub clone_flags: CloneFlags,
    /// Whether the child was born in [`Prepare::cgroup`] (a kernel before 5.7 cannot:
    /// the layer then moves it in).
    pub in_cgroup: bool,
}

/// The child's view, inside its new namespaces, before it `exec`s the command.
#[derive(Debug)]
pub struct Child<'a> {
    /// The command that will be exec'd once every layer is done. With `-t`
    /// (`process.terminal`), a layer that builds `/dev` leaves an empty `/dev/console`
    /// for the runner to bind the container's terminal onto.
    pub process: &'a Process,
    /// The namespaces this process was created in.
    pub clone_flags: CloneFlags,
    /// The working directory (`-w`), opened by the layer that changes the root:
    /// resolved inside the new root while the old one is still there, so that no path
    /// (a symlink, `/proc/self/fd/N`) can lead the runner's `fchdir` out of it. With no
    /// such layer (stage 1), the runner looks the path up itself.
    pub workdir: Option<OwnedFd>,
    /// The root of a root filesystem that a layer mounted here, for the layer that
    /// moves into it (stage 5's overlay of an image, for stage 2's `pivot_root`).
    pub root: Option<OwnedFd>,
}

/// The parent's view after the child is gone (or never started).
#[derive(Debug)]
pub struct Cleanup {
    /// The child's PID, if `clone` got that far.
    pub pid: Option<Pid>,
    /// Whether the command was started (`execve` succeeded). A layer that changed
    /// something on the host only for a run that then failed puts it back.
    pub started: bool,
    /// The command's exit code, once it ran and ended (`128 + N` when signal N killed
    /// it): a layer may explain it (stage 6 says when its memory limit was the killer).
    pub code: Option<i32>,
}

// ANCHOR: layer_trait
/// One isolation feature. The runner calls each phase on every layer, in order:
///
/// 1. [`prepare`](Layer::prepare) in the parent, before `clone`;
/// 2. `clone` with the union of every layer's [`clone_flags`](Layer::clone_flags);
///    the child at once `unshare`s the namespaces of [`unshare_flags`](Layer::unshare_flags),
///    then runs [`child_early`](Layer::child_early) while it waits;
/// 3. [`parent`](Layer::parent) in the parent meanwhile;
/// 4. [`child`](Layer::child) in the child, then `execve`;
/// 5. [`cleanup`](Layer::cleanup) in the parent, always: after exit, errors and signals.
///
/// Every phase has a default that does nothing, so a layer writes only what it needs.
pub trait Layer {
    /// A short name for messages: `"pid"`, `"rootfs"`, ...
    fn name(&self) -> &'static str;

    /// The namespaces this feature needs the child to be born into.
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    /// Namespaces the child makes itself with `unshare`, as soon as it exists: the
    /// kernel builds them while the parent runs the first `parent` phases (writing the
    /// id maps), on another CPU, instead of inside `clone`. They belong to the child's
    /// user namespace all the same. This layer's `parent` phase runs once they exist.
    fn unshare_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    /// Parent, before `clone`: check input, open host paths, adjust the process.
    fn prepare(&mut self, _cx: &mut Prepare<'_>) -> Result<()> {
        Ok(())
    }

    /// Parent, after `clone`: the child exists, in its namespaces, and waits for us.
    fn parent(&mut self, _cx: &mut Parent) -> Result<()> {
        Ok(())
    }

    /// Child, as soon as its namespaces exist, while the parent still runs the `parent`
    /// phases: work done ahead, on the other CPU, instead of after them (stage 5 makes
    /// the directories of its writable layer here while the parent writes the id
    /// maps).
    ///
    /// The parent's part is not done yet: the id maps may not exist (the kernel still
    /// checks the child's host ids, as before `clone`), nor the network or the cgroup.
    /// So this phase cannot fail the run and prints nothing: it keeps its result, and
    /// [`child`](Layer::child) decides what to do with it.
    fn child_early(&mut self) {}

    /// Child, inside the new namespaces, before `execve`.
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        Ok(())
    }

    /// Parent, after everything: undo what `prepare` and `parent` made on the host.
    /// It runs on every path, so it must not assume that the other phases ran.
    fn cleanup(&mut self, _cx: &mut Cleanup) {}
}
// ANCHOR_END: layer_trait
