//! rtnetlink, spoken directly: what `ip link` and `ip addr` send to the kernel.
//!
//! Network interfaces are configured through a socket, not a file: an `AF_NETLINK`
//! socket of the `NETLINK_ROUTE` family, on which a program sends requests such as
//! `RTM_NEWLINK` (change a link), `RTM_NEWADDR` (add an address) or `RTM_NEWROUTE`
//! (add a route) and reads the kernel's answers. A netlink socket belongs to the
//! network namespace it was opened in: opened by the child, inside the container's
//! namespace, it configures the container's links and nothing of the host's.
//!
//! This module is synchronous on purpose: the child makes a handful of requests
//! before it execs, and needs no async runtime for them (see the chapter: an async
//! runtime's threads do not survive `clone`).

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use common::explain;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The loopback interface's index: always 1 in a new network namespace.
pub const LOOPBACK: u32 = 1;

/// A `NETLINK_ROUTE` socket of the current network namespace.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a route netlink socket in the network namespace we are in.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("socket(AF_NETLINK, NETLINK_ROUTE)")?;
        socket.bind_auto().context("bind of the netlink socket")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("connect of the netlink socket to the kernel")?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    // ANCHOR: request
    /// Sends one request and waits for the kernel's acknowledgement (`NLM_F_ACK`): an
    /// error message with code 0 means success, a negative code is an errno.
    pub fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.sequence += 1;
        let mut request =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        request.header.sequence_number = self.sequence;
        request.finalize();
        let mut buf = vec![0u8; request.buffer_len()];
        request.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .context("send on the netlink socket")?;
        let mut answer = vec![0u8; 8192];
        let n = self
            .socket
            .recv(&mut &mut answer[..], 0)
            .context("recv on the netlink socket")?;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[..n])
            .context("reading the kernel's answer")?;
        match reply.payload {
            NetlinkPayload::Error(error) => match error.code {
                None => Ok(()),
                Some(code) => Err(std::io::Error::from_raw_os_error(-code.get()))
                    .context("the kernel refused the request"),
            },
            other => bail!("unexpected netlink answer: {other:?}"),
        }
    }
    // ANCHOR_END: request

    /// `ip link set dev INDEX up`: RTM_NEWLINK with IFF_UP in the flags and the mask.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        // ANCHOR: link_up
        // EXERCISE: send RTM_NEWLINK (RouteNetlinkMessage::SetLink of a LinkMessage) for the link `index`, with LinkFlags::Up in both its header's flags and its change_mask, through self.request; then explain the step with explain::step
        let mut link = LinkMessage::default();
        link.header.index = index;
        // The mask says which flags the request changes; the flags, to what.
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(link), 0)
            .with_context(|| format!("RTM_NEWLINK: setting link {index} up"))?;
        explain::step(
            format_args!("netlink RTM_NEWLINK {{index: {index}, flags: IFF_UP}}"),
            "bring the link up (ip link set dev ... up)",
        );
        Ok(())
        // ANCHOR_END: link_up
    }

    /// `ip addr add ADDRESS/PREFIX dev INDEX`.
    pub fn add_address(&mut self, index: u32, address: IpAddr, prefix: u8) -> Result<()> {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = prefix;
        message.header.family = family(address);
        message.attributes.push(AddressAttribute::Local(address));
        message.attributes.push(AddressAttribute::Address(address));
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .with_context(|| format!("RTM_NEWADDR: {address}/{prefix} on link {index}"))?;
        explain::step(
            format_args!("netlink RTM_NEWADDR {{index: {index}, {address}/{prefix}}}"),
            "give the link an address (ip addr add)",
        );
        Ok(())
    }

    /// `ip route add default via GATEWAY`.
    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<()> {
        let mut route = RouteMessage::default();
        route.header = RouteHeader {
            address_family: family(gateway),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Boot,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        route
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .with_context(|| format!("RTM_NEWROUTE: default via {gateway}"))?;
        explain::step(
            format_args!("netlink RTM_NEWROUTE {{default via {gateway}}}"),
            "the way out of the container's network (ip route add default via ...)",
        );
        Ok(())
    }

    // ANCHOR: configure_interface
    /// What a container on a bridge runs, inside its own network namespace, for the
    /// link `name` that the parent put there:
    ///
    /// ```text
    /// ip addr add ADDRESS/PREFIX dev NAME
    /// ip link set dev NAME up
    /// ip route add default via GATEWAY
    /// ```
    ///
    /// The order matters: the address gives the link a route to its own subnet, and
    /// the default route needs that route to reach its gateway.
    pub fn configure_interface(
        &mut self,
        name: &str,
        address: IpAddr,
        prefix: u8,
        gateway: IpAddr,
    ) -> Result<()> {
        let index = index_of(name)?;
        self.add_address(index, address, prefix)?;
        self.set_up(index)?;
        self.add_default_route(gateway)
    }
    // ANCHOR_END: configure_interface
}

fn family(address: IpAddr) -> AddressFamily {
    match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The index of the link called `name` in the current namespace.
fn index_of(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).with_context(|| format!("no link called {name}"))
}
