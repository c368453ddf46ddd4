//! fuse-overlayfs: the overlay in user space, where the kernel cannot mount one.
//!
//! The mount must be in the container's mount namespace, yet the daemon that serves it
//! must not be a process of the container (its `ps` would show it, and its init would
//! outlive it). So, as slirp4netns joins the container's network namespace from
//! outside, the parent starts fuse-overlayfs in the child's user and mount namespaces
//! (`setns` between `fork` and `exec`) while the child waits, and waits itself until
//! the mount shows in the child's mount table: a change of `/proc/PID/mountinfo`
//! wakes a `poll` on it. The daemon is the runtime's child: it dies with it
//! (parent-death signal) and is stopped and reaped in `cleanup`.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::explain;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};
use nix::unistd::Pid;

/// How long fuse-overlayfs may take to mount.
const DEADLINE: Duration = Duration::from_secs(10);

/// A running fuse-overlayfs.
#[derive(Debug)]
pub struct Fuse {
    child: Child,
}

// ANCHOR: start_fuse
/// Starts fuse-overlayfs with `options` on `root`, in the namespaces of `pid`, and
/// returns once the mount is there.
pub fn start(binary: &Path, pid: Pid, options: &str, root: &Path) -> Result<Fuse> {
    let user = File::open(format!("/proc/{pid}/ns/user")).context("the child's user namespace")?;
    let mnt = File::open(format!("/proc/{pid}/ns/mnt")).context("the child's mount namespace")?;
    let mut mountinfo =
        File::open(format!("/proc/{pid}/mountinfo")).context("the child's mount table")?;
    let mut command = Command::new(binary);
    command
        .args(["-f", "-o", options])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setns, prctl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // The user namespace first: joining it gives the capabilities that
            // joining its mount namespace asks for.
            setns(user.as_fd(), CloneFlags::CLONE_NEWUSER)?;
            setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS)?;
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            Ok(())
        });
    }
    let shown = format!("{} -f -o {options} {}", binary.display(), root.display());
    // From here on, dropping `fuse` stops and reaps the daemon, on every path.
    let mut fuse = Fuse {
        child: command
            .spawn()
            .with_context(|| format!("starting {shown}"))?,
    };
    explain::step(
        format_args!("{shown} (in the namespaces of {pid})"),
        "fuse-overlayfs mounts the overlay in the container's mount namespace, from outside it",
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut table = String::new();
        mountinfo
            .read_to_string(&mut table)
            .context("reading the mount table")?;
        if mounted(&table, root) {
            return Ok(fuse);
        }
        if let Some(status) = fuse.child.try_wait()? {
            let mut why = String::new();
            if let Some(mut stderr) = fuse.child.stderr.take() {
                let _ = stderr.read_to_string(&mut why);
            }
            bail!("{shown} exited ({status}) before mounting: {}", why.trim());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{shown} did not mount within {}s", DEADLINE.as_secs());
        }
        // A change of the mount table wakes a poll on mountinfo (POLLPRI).
        let mut fds = [PollFd::new(mountinfo.as_fd(), PollFlags::POLLPRI)];
        // At most half a second: the daemon may also exit without a mount.
        let wait = left.min(Duration::from_millis(500)).as_millis();
        let timeout = PollTimeout::from(u16::try_from(wait).unwrap_or(500));
        poll(&mut fds, timeout).context("poll on the mount table")?;
        mountinfo =
            File::open(format!("/proc/{pid}/mountinfo")).context("the child's mount table")?;
    }
}
// ANCHOR_END: start_fuse

/// Whether `table` (a mountinfo) has a fuse-overlayfs mount on `root`.
fn mounted(table: &str, root: &Path) -> bool {
    let root = root.to_string_lossy();
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        fields.get(4) == Some(&root.as_ref()) && line.contains(" - fuse.fuse-overlayfs ")
    })
}

impl Drop for Fuse {
    /// SIGKILL, not SIGTERM: the daemon lives in the container's mount namespace, so
    /// its mount stays until it exits, and it waits on /dev/fuse for a request that no
    /// process will send any more. Nothing is lost: it writes straight through to the
    /// upper directory.
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
