//! pasta: podman's rootless network since 5.0, from the `passt` project.
//!
//! Like slirp4netns, pasta joins the container's namespaces, makes a TAP device there
//! and keeps its fd; unlike it, pasta copies the host's own addresses and routes into
//! the namespace (the container sees the host's address on `eth0`), and it has no
//! user-space TCP/IP stack for connections it can splice: a published port, or a
//! connection to the host, goes socket to socket inside the kernel.
//!
//! keel runs it in the foreground (`-f`) as a child of its own, with a parent-death
//! signal, so that it never outlives the runtime; it knows the network is configured
//! when pasta writes its PID file, which pasta does once `--config-net` is done.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::explain;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::unistd::Pid;

use crate::helper;
use crate::ports::{Proto, Publish};

/// How long pasta may take to set up the network.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running pasta, stopped when dropped.
#[derive(Debug)]
pub struct Pasta {
    child: Child,
    /// pasta's stderr (a file: a pipe nobody reads could fill up and stop it).
    log: std::path::PathBuf,
}

/// pasta's spelling of a published port: `[ADDRESS/]HOSTPORT:CTRPORT`.
fn spec(publish: &Publish) -> String {
    if publish.host_ip.is_unspecified() {
        format!("{}:{}", publish.host_port, publish.container_port)
    } else {
        format!(
            "{}/{}:{}",
            publish.host_ip, publish.host_port, publish.container_port
        )
    }
}

// ANCHOR: start_pasta
/// Starts pasta for the network namespace of `pid`, forwarding `publish` (pasta's own
/// port forwarding; nothing else is forwarded), and returns once the network is up.
pub fn start(binary: &Path, pid: Pid, publish: &[Publish], dir: &Path) -> Result<Pasta> {
    let pid_file = dir.join("pasta.pid");
    let log = dir.join("pasta.log");
    let ports = |proto| {
        let specs: Vec<String> = publish
            .iter()
            .filter(|p| p.proto == proto)
            .map(spec)
            .collect();
        if specs.is_empty() {
            "none".to_owned()
        } else {
            specs.join(",")
        }
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).context("inotify_init")?;
    inotify
        .add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
        )
        .context("inotify_add_watch on the run directory")?;
    let mut command = Command::new(binary);
    command
        .args(["--config-net", "--foreground", "--quiet"])
        .args(["-t", &ports(Proto::Tcp), "-u", &ports(Proto::Udp)])
        // Nothing from the container to the host's own ports but what it connects to.
        .args(["-T", "none", "-U", "none"])
        // And not the host's loopback through the gateway's address, which pasta
        // (like slirp4netns's 10.0.2.2) would otherwise map there: a server on the
        // host's 127.0.0.1 trusts that only the host reaches it.
        .arg("--no-map-gw")
        .arg("--pid")
        .arg(&pid_file)
        .arg(pid.as_raw().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(helper::log_file(&log)?);
    // SAFETY: prctl is async-signal-safe; a parent-death signal survives execve.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shown = format!("{command:?}").replace('"', "");
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    explain::step(
        &shown,
        "pasta joins the container's namespaces, copies the host's addresses into them and carries their traffic",
    );
    let mut pasta = Pasta { child, log };
    pasta.wait_ready(&inotify, &pid_file)?;
    Ok(pasta)
}
// ANCHOR_END: start_pasta

impl Pasta {
    /// Waits until pasta has written its PID file, or has died.
    fn wait_ready(&mut self, inotify: &Inotify, pid_file: &Path) -> Result<()> {
        let pidfd = helper::pidfd(&self.child).context("pidfd_open of pasta")?;
        let deadline = Instant::now() + READY_WITHIN;
        while !std::fs::read_to_string(pid_file).is_ok_and(|t| t.trim().parse::<u32>().is_ok()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "pasta did not set the network up within {}s",
                    READY_WITHIN.as_secs()
                );
            }
            let mut fds = [
                PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(
                &mut fds,
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
            ) {
                Err(nix::Error::EINTR) | Ok(0) => continue,
                Err(errno) => return Err(errno).context("waiting for pasta"),
                Ok(_) => {}
            }
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                bail!("pasta failed: {}", self.stderr());
            }
            let _ = inotify.read_events();
        }
        explain::step(
            "inotify: pasta wrote its PID file",
            "the namespace has the host's addresses and routes, and a way out",
        );
        Ok(())
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.wait();
        helper::said(&self.log, "pasta")
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        let _ = self.child.kill();
        helper::stop(&mut self.child, Duration::ZERO);
    }
}
