//! The layer of stage 4: a network namespace, and a way in and out of it.
//!
//! A new network namespace holds one device, `lo`, and it is down: the container
//! cannot even reach itself. Everything else comes from outside, because a rootless
//! container may not make a link that leads anywhere: the parent (or a helper it
//! starts) attaches the network while the child waits, then the child configures what
//! is inside. As root, `--network bridge` plugs the container into a bridge on the host
//! (see [`crate::bridge`]).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use common::state::RunDir;
use common::{Child, Cleanup, Layer, Parent, Prepare, explain};
use nix::sched::CloneFlags;

use crate::bridge::Bridge;
use crate::etc::{self, ExtraHost};
use crate::forward::{Forwarder, Target};
use crate::mode::Mode;
use crate::netlink::{LOOPBACK, Netlink};
use crate::pasta::{self, Pasta};
use crate::ports::Publish;
use crate::slirp::{self, Slirp};
use crate::subnet::Subnet;
use crate::{PortDriver, helper};

/// What the command line asked of the network.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// Why the mode is less than the default could be, for the user (said in `prepare`).
    pub notice: Option<String>,
    /// `--subnet`, for `--network bridge`.
    pub subnet: Option<Subnet>,
    pub publish: Vec<Publish>,
    pub driver: PortDriver,
    pub dns: Vec<IpAddr>,
    pub add_hosts: Vec<ExtraHost>,
    pub hostname: String,
    /// The rootfs directory (`--rootfs DIR`), `None` for the host rootfs.
    pub rootfs: Option<PathBuf>,
}

/// The network layer.
#[derive(Debug)]
pub struct Network {
    config: Config,
    /// The run's own directory: the /etc files, the API socket.
    dir: RunDir,
    slirp: Option<Slirp>,
    pasta: Option<Pasta>,
    /// `--network bridge`: the container's lease and veth, from `prepare` on.
    bridge: Option<Bridge>,
    forwarder: Option<Forwarder>,
}

/// The files of the container's /etc that the network decides, as (path in the run
/// directory, path in the container). They are in `etc/`, mode 0755, the only part of
/// the run directory that the container's root (another uid with root's `--userns
/// auto`) must be able to read.
pub fn etc_files(dir: &RunDir) -> [(PathBuf, &'static str); 3] {
    let etc = dir.path().join("etc");
    [
        (etc.join("hosts"), "/etc/hosts"),
        (etc.join("hostname"), "/etc/hostname"),
        (etc.join("resolv.conf"), "/etc/resolv.conf"),
    ]
}

impl Network {
    /// The layer for `config`, with `dir` for its files.
    pub fn new(config: Config, dir: RunDir) -> Self {
        Self {
            config,
            dir,
            slirp: None,
            pasta: None,
            bridge: None,
            forwarder: None,
        }
    }

    /// The container's own address, for /etc/hosts.
    fn address(&self) -> IpAddr {
        // On the bridge: the leased address, which the host and the other containers
        // reach it by.
        if let Some(address) = self.bridge.as_ref().and_then(Bridge::address) {
            return IpAddr::V4(address);
        }
        match self.config.mode {
            Mode::Slirp4netns { .. } => slirp::ADDRESS
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            _ => IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)),
        }
    }

    /// The name servers the container asks.
    fn name_servers(&self, host: &str) -> Vec<IpAddr> {
        if !self.config.dns.is_empty() {
            return self.config.dns.clone();
        }
        match self.config.mode {
            Mode::Slirp4netns { .. } => slirp::DNS.parse().into_iter().collect(),
            // The host's name servers, but not a resolver on the host's loopback
            // (systemd-resolved's 127.0.0.53): a container's 127.0.0.1 is its own
            // `lo`. On the bridge, a server that is not the host itself is reached
            // through the gateway, where the host passes the packets on only if it
            // forwards (and masquerades) for the bridge's subnet.
            _ => etc::reachable_servers(host),
        }
    }

    // ANCHOR: write_etc
    /// Writes /etc/hosts, /etc/hostname and /etc/resolv.conf into the run directory;
    /// the rootfs layer binds them read-only over the container's.
    fn write_etc(&self) -> Result<()> {
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let etc = self.dir.path().join("etc");
        std::fs::create_dir(&etc).with_context(|| format!("creating {}", etc.display()))?;
        std::fs::set_permissions(&etc, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let [hosts, hostname, resolv] = etc_files(&self.dir);
        let texts = [
            (
                hosts,
                etc::hosts(
                    &self.config.hostname,
                    self.address(),
                    &self.config.add_hosts,
                ),
            ),
            (hostname, format!("{}\n", self.config.hostname)),
            (
                resolv,
                etc::resolv_conf(&self.name_servers(&host_resolv), &host_resolv),
            ),
        ];
        for ((path, _), text) in texts {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
    // ANCHOR_END: write_etc
}

impl Layer for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    // ANCHOR: net_flags
    fn clone_flags(&self) -> CloneFlags {
        if self.config.mode.isolated() {
            CloneFlags::CLONE_NEWNET
        } else {
            CloneFlags::empty()
        }
    }
    // ANCHOR_END: net_flags

    fn prepare(&mut self, _cx: &mut Prepare<'_>) -> Result<()> {
        crate::checks::can_run(&self.config)?;
        if let Some(notice) = &self.config.notice {
            eprintln!("stage04-net: notice: {notice}");
        }
        if let Some(rootfs) = &self.config.rootfs {
            crate::checks::mount_points(rootfs)?;
        }
        if self.config.mode == Mode::Host {
            explain::step(
                "no CLONE_NEWNET",
                "--network host: the container shares the host's network; nothing of it is isolated",
            );
        }
        if self.config.mode == Mode::Bridge {
            // Before clone: the child configures this address itself, and /etc/hosts
            // names it.
            self.bridge = Some(Bridge::lease(self.config.subnet, self.dir.id())?);
        }
        self.write_etc()
    }

    // ANCHOR: net_parent
    fn parent(&mut self, cx: &mut Parent) -> Result<()> {
        if let Some(bridge) = &mut self.bridge {
            bridge.attach(cx.pid)?;
        }
        let dir = self.dir.path();
        match self.config.mode {
            Mode::Slirp4netns {
                allow_host_loopback,
            } => {
                let binary = helper::which("slirp4netns").context("slirp4netns is not on PATH")?;
                self.slirp = Some(slirp::start(&binary, cx.pid, allow_host_loopback, dir)?);
            }
            Mode::Pasta => {
                let binary = helper::which("pasta").context("pasta is not on PATH")?;
                let ports = if self.config.driver == PortDriver::Pasta {
                    self.config.publish.clone()
                } else {
                    Vec::new()
                };
                self.pasta = Some(pasta::start(&binary, cx.pid, &ports, dir)?);
            }
            _ => {}
        }
        if self.config.publish.is_empty() {
            return Ok(());
        }
        match (self.config.driver, &self.slirp) {
            (PortDriver::Pasta, _) => {}
            (PortDriver::Slirp4netns, Some(slirp)) => {
                for publish in &self.config.publish {
                    slirp.add_hostfwd(publish)?;
                }
            }
            (PortDriver::Builtin, _) => {
                // On the bridge the host reaches the container's address through keel0;
                // otherwise a dialer inside its namespace connects to its 127.0.0.1.
                let target = match self.bridge.as_ref().and_then(Bridge::address) {
                    Some(address) => Target::Address(IpAddr::V4(address)),
                    None => Target::Namespace(cx.pid),
                };
                let forwarder = Forwarder::start(&self.config.publish, target)?;
                for (publish, bound) in forwarder.bound() {
                    if publish.host_port == 0 {
                        eprintln!("{} -> {}/{}", bound, publish.container_port, publish.proto);
                    }
                }
                self.forwarder = Some(forwarder);
            }
            (driver, _) => bail!(
                "--port-driver {driver} does not work with --network {}",
                self.config.mode
            ),
        }
        Ok(())
    }
    // ANCHOR_END: net_parent

    // ANCHOR: net_child
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        if self.config.mode == Mode::None {
            // The only device of a new network namespace, and it starts down.
            Netlink::open()?.set_up(LOOPBACK)?;
        }
        if let Some(bridge) = &self.bridge {
            bridge.configure_inside()?;
        }
        Ok(())
    }
    // ANCHOR_END: net_child

    fn cleanup(&mut self, _cx: &mut Cleanup) {
        // Ports first, then the network they lead to.
        self.forwarder = None;
        self.slirp = None;
        self.pasta = None;
        if let Some(bridge) = &mut self.bridge {
            bridge.detach();
        }
    }
}
