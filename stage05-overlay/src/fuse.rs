//! fuse-overlayfs: the overlay in user space, for kernels that cannot mount one in a
//! user namespace.
//!
//! A FUSE filesystem has two halves joined by an fd of `/dev/fuse`: the mount, whose
//! every lookup, read and write the kernel turns into a request on that fd, and a
//! daemon that reads the requests and answers them. keel gives one half to each side:
//!
//! - the **child**, container root in its namespaces, opens `/dev/fuse` and mounts it
//!   (`fsopen("fuse")` with `fd=N`) where it would mount the kernel's overlay: in its
//!   own mount namespace, after its mounts were made private, so that nothing of it
//!   reaches the host. It sends the fd to the daemon (`SCM_RIGHTS`) and goes on.
//! - the **daemon**, forked by the parent, joins the container's *user* namespace
//!   only: as its root it may read layer files of every id of the image, and give what
//!   it creates the owner the container asked for. It receives the fd and execs
//!   fuse-overlayfs on `/dev/fd/3`, which libfuse serves without mounting anything.
//!
//! The daemon stays in the host's PID and mount namespaces. In the container's PID
//! namespace it would be a process the container can signal and `ptrace`, holding fds
//! of host directories (the layers). In its mount namespace it would find the
//! container's `/proc` at `/proc`, a proc of a PID namespace in which it has no PID:
//! fuse-overlayfs reads the layers' xattrs through `/proc/self/fd/N/...`, so every
//! lookup would fail with ENOENT.
//!
//! Nothing waits for the daemon to be ready: the kernel holds the container's first
//! requests until the daemon answers FUSE_INIT. Nothing hangs if it dies either: the
//! last fd of the connection closes, and every request fails with ENOTCONN.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use common::explain;
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use stage02_mountns::at::At;
use stage02_mountns::newmount;

/// The fd the daemon serves: fuse-overlayfs is told `/dev/fd/3`.
const SERVED_FD: RawFd = 3;

/// How the forked daemon says it failed before fuse-overlayfs ran.
const FAILED_SETNS: i32 = 120;
const FAILED_RECEIVE: i32 = 121;
const FAILED_EXEC: i32 = 122;

/// The socket pair the child sends `/dev/fuse` over: made before `clone`, so that
/// the child has its end.
#[derive(Debug)]
pub struct Channel {
    child_end: Option<OwnedFd>,
    daemon_end: Option<OwnedFd>,
}

impl Channel {
    pub fn new() -> Result<Self> {
        let (child_end, daemon_end) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for /dev/fuse")?;
        Ok(Self {
            child_end: Some(child_end),
            daemon_end: Some(daemon_end),
        })
    }

    // ANCHOR: start_fuse
    /// Parent: forks the daemon, which joins the user namespace of `pid` (if it is not
    /// ours), waits for the child's `/dev/fuse` and execs `binary` with `options` on it.
    /// Its stderr goes to `log`.
    pub fn start(&mut self, binary: &Path, pid: Pid, options: &str, log: &Path) -> Result<Daemon> {
        // Every end the parent keeps is one more way for a send to succeed with no
        // daemon to read it: the child's end goes now, the daemon's after the fork.
        drop(self.child_end.take());
        let daemon_end = self.daemon_end.take().context("the daemon was started")?;
        let same_user_ns = std::fs::read_link("/proc/self/ns/user").ok()
            == std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
        let user = if same_user_ns {
            None
        } else {
            Some(File::open(format!("/proc/{pid}/ns/user")).context("the child's user namespace")?)
        };
        let stderr = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let argv = [
            binary.as_os_str().as_bytes(),
            b"-f",
            b"-o",
            options.as_bytes(),
            b"/dev/fd/3",
        ]
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
        .context("a NUL in fuse-overlayfs's arguments")?;
        // SAFETY: stage 4's port forwarder may have threads by now. The forked copy
        // takes no lock a thread could hold: it writes nothing to stdout or stderr, and
        // glibc's fork leaves malloc usable in the child. It leaves only through execve
        // or _exit.
        match unsafe { fork() }.context("fork of fuse-overlayfs")? {
            ForkResult::Child => {
                let code = serve(daemon_end, user, stderr, &argv);
                // SAFETY: leave the forked copy at once, without the parent's atexit.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let joins = if same_user_ns {
                    String::new()
                } else {
                    format!("setns(/proc/{pid}/ns/user); ")
                };
                let shown = format!("{} -f -o {options} /dev/fd/3", binary.display());
                explain::step(
                    format_args!(
                        "fork() -> {child}; {joins}recvmsg(SCM_RIGHTS) -> /dev/fuse as fd 3; execve({shown})"
                    ),
                    "the daemon of the container's root waits for the child's /dev/fuse, in \
                     the container's user namespace but in the host's PID and mount namespaces",
                );
                Ok(Daemon {
                    pid: Some(child),
                    log: log.to_owned(),
                })
            }
        }
    }
    // ANCHOR_END: start_fuse

    // ANCHOR: mount_fuse
    /// Child: mounts a FUSE filesystem onto `onto` and sends its `/dev/fuse` to the
    /// daemon; returns the mount's root.
    pub fn mount(&mut self, onto: &At) -> Result<At> {
        // Only the daemon may hold its end: if it is gone, the send must fail.
        drop(self.daemon_end.take());
        let socket = self
            .child_end
            .take()
            .context("/dev/fuse was sent already")?;
        let device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .context("opening /dev/fuse (chmod 0666 /dev/fuse, as udev does)")?;
        // The root's mode, and the ids of the mount's owner (container root), in the
        // user namespace that mounts it. allow_other lets every user of the container
        // in, default_permissions has the kernel check modes as on any filesystem.
        let options = format!(
            "fd={},rootmode=40000,user_id={},group_id={},allow_other,default_permissions,\
             subtype=fuse-overlayfs",
            device.as_raw_fd(),
            nix::unistd::getuid(),
            nix::unistd::getgid(),
        );
        let mount = newmount::filesystem("fuse", &options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?;
        let root = mount.attach(
            onto,
            "the image's layers, as fuse-overlayfs shows them: the container's root",
        )?;
        common::pass_fd::send(socket, b"F", &device, MsgFlags::MSG_NOSIGNAL)
            .context("sending /dev/fuse to fuse-overlayfs (it exited: see its log)")?;
        explain::step(
            "sendmsg(SCM_RIGHTS, /dev/fuse); close(/dev/fuse)",
            "the daemon answers what the kernel asks on this fd from now on; the first \
             lookup waits until it is there",
        );
        Ok(root)
    }
    // ANCHOR_END: mount_fuse
}

/// The forked daemon, until it execs fuse-overlayfs: returns the exit code of a
/// failure. It holds nothing of the runtime's but the fd it serves.
fn serve(socket: OwnedFd, user: Option<File>, stderr: File, argv: &[CString]) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let _ = nix::unistd::dup2_stderr(&stderr);
    if let Some(user) = user
        && setns(user.as_fd(), CloneFlags::CLONE_NEWUSER).is_err()
    {
        return FAILED_SETNS;
    }
    let device = match receive(&socket) {
        Ok(Some(device)) => device,
        // The child ended before it mounted: nothing to serve.
        Ok(None) => return 0,
        Err(_) => return FAILED_RECEIVE,
    };
    let raw = device.into_raw_fd();
    // SAFETY: plain fd calls; `raw` is ours, fd 3 becomes it (and is not
    // close-on-exec: dup2 clears the flag, and SCM_RIGHTS did not set it).
    if raw != SERVED_FD && unsafe { libc::dup2(raw, SERVED_FD) } != SERVED_FD {
        return FAILED_RECEIVE;
    }
    if common::fds::close_all_but(&[SERVED_FD]).is_err() {
        return FAILED_RECEIVE;
    }
    let _ = nix::unistd::execv(&argv[0], argv);
    FAILED_EXEC
}

/// One fd from `socket`, or `None` at its end. It is to survive the daemon's `execve`:
/// no `MSG_CMSG_CLOEXEC`.
fn receive(socket: &OwnedFd) -> nix::Result<Option<OwnedFd>> {
    common::pass_fd::receive(socket, &mut [0u8; 1], MsgFlags::empty()).map(|(_, fd)| fd)
}

/// The daemon: killed and reaped when dropped.
#[derive(Debug)]
pub struct Daemon {
    pid: Option<Pid>,
    log: PathBuf,
}

impl Daemon {
    /// Stops the daemon, and returns why it had ended by itself with a failure, if
    /// it did. SIGKILL, not SIGTERM: it writes straight through to the upper
    /// directory, so nothing is lost, and its mount goes with the container's mount
    /// namespace.
    pub fn stop(&mut self) -> Option<String> {
        let pid = self.pid.take()?;
        let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return None;
            }
            Ok(status) => status,
            Err(_) => return None,
        };
        explain::step(
            format_args!("waitpid({pid}) -> {status:?}"),
            "fuse-overlayfs had ended already: its mount went with the container's mount \
             namespace (or the child never sent it one)",
        );
        let why = match status {
            WaitStatus::Exited(_, 0) => return None,
            WaitStatus::Exited(_, FAILED_SETNS) => {
                "could not join the container's user namespace".to_owned()
            }
            WaitStatus::Exited(_, FAILED_RECEIVE) => "did not receive /dev/fuse".to_owned(),
            WaitStatus::Exited(_, FAILED_EXEC) => "could not be executed".to_owned(),
            WaitStatus::Exited(_, code) => format!("exited with {code}"),
            WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
            other => format!("ended: {other:?}"),
        };
        // Its own words, but for the notice it prints on every start.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let said: Vec<&str> = log
            .lines()
            .filter(|line| !line.starts_with("unknown argument ignored"))
            .collect();
        let last = said.get(said.len().saturating_sub(3)..).unwrap_or_default();
        Some(format!("fuse-overlayfs {why}: {}", last.join(" / ")))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
