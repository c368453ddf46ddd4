//! slirp4netns: a network for a rootless container, made by a user-space TCP/IP stack.
//!
//! An ordinary user may not create a veth pair that leads to the host's network, nor
//! route or NAT anything. What it may do is open `/dev/net/tun` inside the container's
//! network namespace (it owns that namespace through its user namespace): a TAP
//! device, `tap0`, whose far end is a file descriptor. slirp4netns joins the
//! container's namespaces, makes `tap0`, keeps its fd, and goes back out: every frame
//! the container sends on `tap0` arrives on that fd in slirp4netns, which runs a whole
//! TCP/IP stack (libslirp, from QEMU) in user space and turns the container's
//! connections into ordinary sockets of the user's on the host.
//!
//! ```text
//!  container (netns)               host
//!  tap0 10.0.2.100 ──frames──► fd ─► slirp4netns ─► connect()/sendto() as the user
//!  gateway 10.0.2.2, DNS 10.0.2.3 (both slirp4netns itself)
//! ```

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::explain;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{Pid, pipe2};

use crate::helper;
use crate::ports::Publish;

/// The addresses slirp4netns gives with `--configure`.
pub const ADDRESS: &str = "10.0.2.100";
/// slirp4netns's DNS forwarder.
pub const DNS: &str = "10.0.2.3";
/// The MTU podman uses with slirp4netns: large frames, fewer of them to copy.
const MTU: &str = "65520";
/// How long slirp4netns may take to set up the network.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running slirp4netns, stopped when dropped.
#[derive(Debug)]
pub struct Slirp {
    child: Child,
    /// slirp4netns's stderr.
    log: PathBuf,
    /// Our end of `--exit-fd`: slirp4netns exits as soon as it is closed, also when
    /// the runtime dies by SIGKILL.
    exit: Option<OwnedFd>,
    api: PathBuf,
}

// ANCHOR: start_slirp
/// Starts slirp4netns for the network namespace of `pid`, and returns once the
/// network is configured (it writes `1` to its `--ready-fd`).
pub fn start(binary: &Path, pid: Pid, allow_host_loopback: bool, dir: &Path) -> Result<Slirp> {
    let api = dir.join("slirp4netns.sock");
    let log = dir.join("slirp4netns.log");
    let (ready_read, ready_write) = pipe2(OFlag::O_CLOEXEC).context("pipe for --ready-fd")?;
    let (exit_read, exit_write) = pipe2(OFlag::O_CLOEXEC).context("pipe for --exit-fd")?;
    let mut command = command(binary, pid, allow_host_loopback, &api);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(helper::log_file(&log)?);
    let (ready, exit) = (ready_write.as_raw_fd(), exit_read.as_raw_fd());
    // SAFETY: dup2 is async-signal-safe; it runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(ready, 3) < 0 || libc::dup2(exit, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shown = format!("{command:?}").replace('"', "");
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    drop((ready_write, exit_read));
    explain::step(
        &shown,
        "slirp4netns joins the container's namespaces, makes tap0 and carries its traffic in user space",
    );
    let mut slirp = Slirp {
        child,
        log,
        exit: Some(exit_write),
        api,
    };
    slirp.wait_ready(&ready_read)?;
    Ok(slirp)
}
// ANCHOR_END: start_slirp

/// slirp4netns's command line. The runtime puts the read end of the exit pipe on fd 4
/// and the write end of the ready pipe on fd 3 before it starts it.
fn command(binary: &Path, pid: Pid, allow_host_loopback: bool, api: &Path) -> Command {
    // ANCHOR: slirp_command
    // EXERCISE: build slirp4netns's command line: --configure, --mtu=65520 (MTU), --api-socket=API, --ready-fd=3, --exit-fd=4, and --disable-host-loopback unless allow_host_loopback; then the child's PID and the name of the TAP device, tap0
    let mut command = Command::new(binary);
    command
        // Give tap0 10.0.2.100/24, bring it and lo up, route through 10.0.2.2.
        .args(["--configure", &format!("--mtu={MTU}")])
        .arg(format!("--api-socket={}", api.display()))
        // Write "1" to fd 3 once all is up; exit when fd 4 is closed.
        .args(["--ready-fd=3", "--exit-fd=4"]);
    if !allow_host_loopback {
        // 10.0.2.2 is slirp4netns itself; allowed, it leads to the host's 127.0.0.1.
        command.arg("--disable-host-loopback");
    }
    command.arg(pid.as_raw().to_string()).arg("tap0");
    command
    // ANCHOR_END: slirp_command
}

impl Slirp {
    /// Waits for `1` on the ready pipe; end-of-file means slirp4netns died.
    fn wait_ready(&mut self, ready: &OwnedFd) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Err(nix::Error::EINTR) => continue,
                Err(errno) => return Err(errno).context("waiting for slirp4netns"),
                Ok(0) => bail!(
                    "slirp4netns did not set the network up within {}s",
                    READY_WITHIN.as_secs()
                ),
                Ok(_) => {}
            }
            let mut byte = [0u8; 1];
            return match nix::unistd::read(ready, &mut byte) {
                Ok(1) if byte[0] == b'1' => {
                    explain::step(
                        "read(ready-fd) -> \"1\"",
                        "tap0 is up, with 10.0.2.100/24 and a default route via 10.0.2.2",
                    );
                    Ok(())
                }
                _ => bail!("slirp4netns failed: {}", self.stderr()),
            };
        }
    }

    /// What slirp4netns said on stderr (after it exited).
    fn stderr(&mut self) -> String {
        helper::stop(&mut self.child, Duration::ZERO);
        let text = helper::said(&self.log, "slirp4netns");
        if text.contains("/dev/net/tun") {
            format!(
                "{text} (slirp4netns needs /dev/net/tun readable and writable by you: \
                 as root, chmod 0666 /dev/net/tun, as udev does on desktops)"
            )
        } else {
            text
        }
    }

    // ANCHOR: add_hostfwd
    /// Publishes a port through slirp4netns's API: slirp4netns listens on the host and
    /// carries each connection through its stack to the container's address.
    pub fn add_hostfwd(&self, publish: &Publish) -> Result<()> {
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": publish.proto.to_string(),
                "host_addr": publish.host_ip.to_string(),
                "host_port": publish.host_port,
                "guest_addr": ADDRESS,
                "guest_port": publish.container_port,
            }
        });
        let mut api = UnixStream::connect(&self.api)
            .with_context(|| format!("connecting to slirp4netns's API {}", self.api.display()))?;
        api.write_all(request.to_string().as_bytes())?;
        api.shutdown(std::net::Shutdown::Write)?;
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut api, &mut answer)?;
        let answer: serde_json::Value = serde_json::from_str(&answer)
            .with_context(|| format!("slirp4netns's API answered {answer:?}"))?;
        if let Some(error) = answer.get("error") {
            bail!(
                "-p {publish}: slirp4netns refused it: {}",
                error["desc"].as_str().unwrap_or("?")
            );
        }
        explain::step(
            format_args!("slirp4netns API {request}"),
            "slirp4netns listens on the host port and forwards each connection into the container",
        );
        Ok(())
    }
    // ANCHOR_END: add_hostfwd
}

impl Drop for Slirp {
    fn drop(&mut self) {
        // Closing the exit fd is the polite way to stop it; a kill makes sure.
        self.exit = None;
        helper::stop(&mut self.child, Duration::from_secs(2));
        let _ = std::fs::remove_file(&self.api);
    }
}
