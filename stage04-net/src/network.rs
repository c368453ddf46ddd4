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
use common::{Child, Cleanup, Layer, MadeFile, Parent, Prepare, explain};
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
    /// The run's own directory on the host, for what a helper keeps there (slirp4netns's
    /// API socket, pasta's PID file, the bridge's lease): made only for those modes.
    dir: Option<RunDir>,
    slirp: Option<Slirp>,
    pasta: Option<Pasta>,
    /// `--network bridge`: the container's lease and veth, from `prepare` on.
    bridge: Option<Bridge>,
    forwarder: Option<Forwarder>,
}

impl Network {
    /// The layer for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            dir: None,
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

    // ANCHOR: etc_files
    /// /etc/hosts, /etc/hostname and /etc/resolv.conf, for the rootfs layer to bind
    /// read-only over the container's (see stage 2's `made.rs`).
    fn etc_files(&self) -> Vec<MadeFile> {
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let hosts = etc::hosts(
            &self.config.hostname,
            self.address(),
            &self.config.add_hosts,
        );
        let hostname = format!("{}\n", self.config.hostname);
        let resolv = etc::resolv_conf(&self.name_servers(&host_resolv), &host_resolv);
        [
            ("/etc/hosts", hosts),
            ("/etc/hostname", hostname),
            ("/etc/resolv.conf", resolv),
        ]
        .into_iter()
        .map(|(path, text)| MadeFile {
            path: path.into(),
            text,
        })
        .collect()
    }
    // ANCHOR_END: etc_files

    /// The run directory; `prepare` made it for the modes that use one.
    fn dir(&self) -> Result<&RunDir> {
        self.dir
            .as_ref()
            .context("the network layer has no run directory (prepare makes it)")
    }
}

impl Layer for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    // ANCHOR: net_flags
    /// The child makes its network namespace itself, right after `clone`: building
    /// one takes the kernel about 0.4 ms, which it spends while the parent writes the
    /// id maps. Made by the child, it belongs to the child's user namespace, as it
    /// would from `clone`.
    fn unshare_flags(&self) -> CloneFlags {
        if self.config.mode.isolated() {
            CloneFlags::CLONE_NEWNET
        } else {
            CloneFlags::empty()
        }
    }
    // ANCHOR_END: net_flags

    fn prepare(&mut self, cx: &mut Prepare<'_>) -> Result<()> {
        crate::checks::can_run(&self.config)?;
        if let Some(notice) = &self.config.notice {
            eprintln!("{}: notice: {notice}", common::program::name());
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
        if self.config.mode.needs_run_dir() {
            self.dir = Some(RunDir::create("net", cx.id)?);
        }
        if self.config.mode == Mode::Bridge {
            // Before clone: the child configures this address itself, and /etc/hosts
            // names it.
            self.bridge = Some(Bridge::lease(self.config.subnet, self.dir()?.id())?);
        }
        let files = self.etc_files();
        cx.files.extend(files);
        Ok(())
    }

    // ANCHOR: net_parent
    fn parent(&mut self, cx: &mut Parent) -> Result<()> {
        if let Some(bridge) = &mut self.bridge {
            bridge.attach(cx.pid)?;
        }
        match self.config.mode {
            Mode::Slirp4netns {
                allow_host_loopback,
            } => {
                let binary = helper::which("slirp4netns").context("slirp4netns is not on PATH")?;
                let dir = self.dir()?.path();
                self.slirp = Some(slirp::start(&binary, cx.pid, allow_host_loopback, dir)?);
            }
            Mode::Pasta => {
                let binary = helper::which("pasta").context("pasta is not on PATH")?;
                let ports = if self.config.driver == PortDriver::Pasta {
                    self.config.publish.clone()
                } else {
                    Vec::new()
                };
                self.pasta = Some(pasta::start(&binary, cx.pid, &ports, self.dir()?.path())?);
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
