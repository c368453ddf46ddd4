//! Stage 4: stage 3 plus a network of its own.
//!
//! The container gets a network namespace: its own interfaces, addresses, routes and
//! ports. A new one holds only `lo`; how anything else gets in depends on who runs
//! keel. Rootless, a user-space TCP/IP stack outside (slirp4netns or pasta) carries the
//! container's traffic; as root, a veth pair joins it to a bridge, as docker does.
//! Published ports (`-p`) lead from the host into the container.

pub mod bridge;
pub mod checks;
pub mod doctor;
pub mod etc;
pub mod forward;
pub mod helper;
pub mod leases;
pub mod mode;
pub mod netlink;
pub mod network;
pub mod pasta;
pub mod ports;
pub mod relay;
pub mod slirp;
pub mod subnet;

use std::fmt;
use std::net::IpAddr;

use anyhow::Result;
use common::doctor::Report;
use common::{Layer, Stage};
use stage03_userns::Stage03;

use crate::etc::ExtraHost;
use crate::mode::Mode;
use crate::network::{Config, Network};
use crate::ports::Publish;
use crate::subnet::Subnet;

/// How published ports reach the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortDriver {
    /// keel listens on the host port and splices each connection into the container.
    Builtin,
    /// slirp4netns's API (`add_hostfwd`): its TCP/IP stack carries the connections.
    Slirp4netns,
    /// pasta's own forwarding (`-t`, `-u`): socket to socket, spliced.
    Pasta,
}

impl fmt::Display for PortDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortDriver::Builtin => "builtin",
            PortDriver::Slirp4netns => "slirp4netns",
            PortDriver::Pasta => "pasta",
        })
    }
}

/// Options of stage 4: stage 3's, plus the network.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage04")]
pub struct Args {
    #[command(flatten)]
    pub stage03: stage03_userns::Args,
    /// none | slirp4netns[:allow_host_loopback=true] | pasta | bridge (root) | host (default: slirp4netns when installed and /dev/net/tun usable, else none).
    #[arg(long, value_name = "MODE", help_heading = "Stage 4: a network")]
    pub network: Option<Mode>,
    /// With --network bridge: the bridge's IPv4 network, e.g. 10.88.0.0/24 (default: the first /24 from 10.89.0.0/24 up that the host does not route).
    #[arg(long, value_name = "CIDR", help_heading = "Stage 4: a network")]
    pub subnet: Option<Subnet>,
    /// Publish a container port on the host: [IP:]HOSTPORT:CTRPORT[/tcp|/udp] (repeatable; HOSTPORT 0 picks one).
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:]HOST:CTR",
        help_heading = "Stage 4: a network"
    )]
    pub publish: Vec<Publish>,
    /// How published ports are forwarded.
    #[arg(
        long,
        value_name = "DRIVER",
        default_value = "builtin",
        help_heading = "Stage 4: a network"
    )]
    pub port_driver: PortDriver,
    /// A name server for the container's /etc/resolv.conf (repeatable).
    #[arg(long, value_name = "IP", help_heading = "Stage 4: a network")]
    pub dns: Vec<IpAddr>,
    /// An extra line of the container's /etc/hosts: NAME:IP (repeatable).
    #[arg(long, value_name = "NAME:IP", help_heading = "Stage 4: a network")]
    pub add_host: Vec<ExtraHost>,
}

/// Stage 4: stage 3 + a network namespace.
#[derive(Debug)]
pub struct Stage04;

impl Stage for Stage04 {
    const NAME: &'static str = "stage04-net";
    const ABOUT: &'static str = "Stage 4: stage 3 plus a network of its own: loopback, slirp4netns or pasta rootless, a bridge as root, published ports";
    type Args = Args;
    type Commands = common::cli::NoCommands;

    fn command(command: Self::Commands) -> i32 {
        match command {}
    }

    // ANCHOR: layers
    fn layers(args: &Args) -> Result<Vec<Box<dyn Layer>>> {
        let (mode, notice) = match args.network {
            Some(mode) => (mode, None),
            None => default_mode(),
        };
        let config = Config {
            mode,
            notice,
            subnet: args.subnet,
            publish: args.publish.clone(),
            driver: args.port_driver,
            dns: args.dns.clone(),
            add_hosts: args.add_host.clone(),
            hostname: args.stage03.stage02.stage01.hostname.clone(),
            rootfs: match args.stage03.stage02.source() {
                stage02_mountns::rootfs::Source::Dir(dir) => Some(dir),
                // The host's programs, or a root a later stage makes: it has the files.
                stage02_mountns::rootfs::Source::Host | stage02_mountns::rootfs::Source::Made => {
                    None
                }
            },
        };
        let mut layers = Stage03::layers(&args.stage03)?;
        // Before the rootfs layer: its `prepare` makes the /etc files that the rootfs
        // layer's `prepare` takes, to bind them in the child; its `parent` runs after the user layer's, once
        // the maps are written; its `child` runs as container root.
        let rootfs = layers
            .iter()
            .position(|l| l.name() == "rootfs")
            .unwrap_or(layers.len());
        layers.insert(rootfs, Box::new(Network::new(config)));
        Ok(layers)
    }
    // ANCHOR_END: layers

    fn doctor(report: &mut Report) {
        Stage03::doctor(report);
        doctor::check(report);
    }
}

/// The network a container gets without `--network`: slirp4netns when it can work here
/// (installed, and `/dev/net/tun` usable), else `none`, with a notice that says why and
/// how to get a network.
fn default_mode() -> (Mode, Option<String>) {
    match checks::slirp4netns_usable() {
        Ok(()) => (
            Mode::Slirp4netns {
                allow_host_loopback: false,
            },
            None,
        ),
        Err(why) => (Mode::None, Some(format!("no network but lo: {why}"))),
    }
}
