//! `--network bridge`: docker's network for root. A bridge on the host, and per
//! container a veth pair whose one end is the container's `eth0`.
//!
//! ```text
//!  host                                              container's network namespace
//!  keel0 10.89.0.1/24 ─┬─ keel5e3a1b2c ══ veth ══ eth0 10.89.0.2/24, default via 10.89.0.1
//!   (a bridge: a       └─ keel0c1d2e3f ══ veth ══ eth0 10.89.0.3/24  (another container)
//!    switch in the
//!    kernel)
//! ```
//!
//! A veth pair is two network devices joined by a wire: what one sends, the other
//! receives. A bridge is a switch: the host ends plugged into it can reach each other,
//! and the bridge's own address (the gateway, `.1`) is the host itself. So containers
//! reach each other, the host reaches every container's address through `keel0`'s
//! route, and a container reaches every address of the host through its default route.
//! (Reaching further, as docker's containers do, takes more of the host: forwarding
//! turned on and a NAT rule in the firewall. keel changes neither; see the chapter.)
//!
//! Only root may do this: the links are made in the host's network namespace.
//!
//! ## Who does what, in which phase
//!
//! | phase | who | what |
//! |---|---|---|
//! | `prepare` | parent, before `clone` | lease an address ([`crate::leases`]); name the veth |
//! | `parent` | parent, child waits | make `keel0` if missing; make the veth pair, its container end inside the child's namespace; plug the host end into `keel0`, up |
//! | `child` | child, inside | `lo` up; `eth0`: address, up, default route (synchronous [`crate::netlink`]) |
//! | `cleanup` | parent, always | delete the veth; give the lease back; the last one deletes `keel0` |
//!
//! Three constraints decide this split:
//!
//! - **No async runtime before `clone`.** The parent speaks rtnetlink with the
//!   `rtnetlink` crate, which runs on tokio. `clone` (like `fork`) copies only the
//!   calling thread: a runtime's worker threads would not exist in the child, whose
//!   copy of the runtime would wait forever for them; and keel's runner (and the port
//!   forwarder's dialer) fork. So the runtime is made in the `parent` phase, after
//!   `clone`, of one thread (`new_current_thread`), and only for this mode: `none`,
//!   `host` and `slirp4netns` never make one.
//! - **A netlink socket belongs to the network namespace it was opened in.** A
//!   request on the parent's socket changes the host's links; the container's `eth0`
//!   is configured from a socket opened inside, in the `child` phase, where the child
//!   is root of its own network namespace. Its address therefore must be known before
//!   `clone`: it is leased in `prepare`.
//! - **Nothing may outlive a runtime killed by SIGKILL.** docker makes both ends on
//!   the host (the container's under a temporary name: the host may have an `eth0`),
//!   moves one into the container with `IFLA_NET_NS_PID`, and renames it there. A
//!   runtime killed between the first two steps would leave both ends on the host,
//!   for good. keel puts `IFLA_NET_NS_PID` into the *peer's* half of the one
//!   `RTM_NEWLINK` that makes the pair: the kernel creates the container's end inside
//!   the container's namespace, where the name `eth0` is free (names are per
//!   namespace), so no moment has both ends on the host. Deleting one end of a veth
//!   deletes the other; a network namespace deletes its devices when its last
//!   process is gone. So when the runtime dies by SIGKILL, its container dies (by
//!   its parent-death signal), the namespace goes, and the pair with it; the lease it
//!   leaves is stale and the next runtime hands the address out again.
//!
//! ## Why keel deletes keel0, and docker keeps docker0
//!
//! docker's daemon owns `docker0` for its whole life, with its NAT and filter rules,
//! and lives longer than any container. keel has no daemon: each runtime is the whole
//! of keel while its container runs, and the host must be as it was after the last
//! one ends. So the runtime that gives back the last lease deletes `keel0`, under the
//! leases' lock, so that no other runtime can be taking a lease and plugging into the
//! bridge at that moment. Making the bridge again costs a few requests.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use common::explain;
use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoVeth};
use nix::unistd::Pid;
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};

use common::state::Owner;

use crate::leases::{Lease, Leases};
use crate::netlink::{LOOPBACK, Netlink};
use crate::subnet::{self, Subnet};

/// The bridge every container of `--network bridge` is plugged into.
pub const BRIDGE: &str = "keel0";

/// The container's end of its veth pair, as the container sees it.
pub const CONTAINER_END: &str = "eth0";

/// The longest name a network device may have (`IFNAMSIZ` is 16, with the NUL).
const MAX_NAME: usize = 15;

/// The host end of a container's veth pair: `keel` and the last 8 hex digits of the
/// run's id (the run directory's random name): short enough for a device name, and
/// one of 2^32, so two running containers practically never draw the same (if they
/// did, the second's `RTM_NEWLINK` would fail with EEXIST, harmlessly).
pub fn host_end_name(run_id: &str) -> String {
    let hex: Vec<char> = run_id.chars().filter(char::is_ascii_hexdigit).collect();
    let digits: String = hex[hex.len().saturating_sub(8)..].iter().collect();
    let name = format!("keel{digits}");
    debug_assert!(name.len() <= MAX_NAME);
    name
}

/// One container's place on the bridge, from `prepare` to `cleanup`.
#[derive(Debug)]
pub struct Bridge {
    leases: Leases,
    /// Held from `prepare` until `cleanup` gives it back.
    lease: Option<Lease>,
    /// Leases of runtimes killed by SIGKILL, dropped when ours was taken.
    stale: Vec<Lease>,
    /// The host end of the veth pair.
    host_end: String,
    /// rtnetlink on a runtime of one thread: made after `clone`, never before.
    host: Option<HostNetlink>,
    /// Whether the veth pair may exist: `cleanup` deletes it.
    veth_requested: bool,
}

impl Bridge {
    // ANCHOR: bridge_prepare
    /// `prepare`: leases an address for the container (in `wanted`, `--subnet`, if
    /// given), before `clone`, so that the child knows it.
    pub fn lease(wanted: Option<Subnet>, run_id: &str) -> Result<Self> {
        let leases = Leases::system()?;
        let host_end = host_end_name(run_id);
        let routes = subnet::host_routes()?;
        let allocation = leases
            .lock()?
            .allocate(wanted, &routes, &host_end, Owner::current()?)?;
        Ok(Self {
            leases,
            lease: Some(allocation.lease),
            stale: allocation.stale,
            host_end,
            host: None,
            veth_requested: false,
        })
    }
    // ANCHOR_END: bridge_prepare

    /// The container's address.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.lease.as_ref().map(|l| l.address)
    }

    // ANCHOR: bridge_parent
    /// `parent`: the bridge (made if missing), the veth pair with `eth0` inside the
    /// namespace of `pid`, the host end plugged into the bridge and up.
    pub fn attach(&mut self, pid: Pid) -> Result<()> {
        let lease = self.lease.clone().context("no address was leased")?;
        let host = open(&mut self.host)?;
        // The host ends of runtimes killed by SIGKILL go with their containers'
        // namespaces; one whose namespace is still being torn down (its address may
        // be ours now) goes at once. Only a leftover: a failure is no reason to stop.
        for stale in std::mem::take(&mut self.stale) {
            if let Err(err) = host.delete(&stale.link) {
                eprintln!("{}: warning: {err:#}", common::program::name());
            }
        }
        let bridge = {
            let _locked = self.leases.lock()?;
            host.ensure_bridge(lease.subnet)?
        };
        self.veth_requested = true;
        host.add_veth(&self.host_end, pid)?;
        host.plug_into(&self.host_end, bridge)?;
        host.set_up(&self.host_end)
    }
    // ANCHOR_END: bridge_parent

    // ANCHOR: bridge_child
    /// `child`: inside the container's network namespace, with a netlink socket of
    /// that namespace: `lo` up, then `eth0` with its address, up, and the way out.
    pub fn configure_inside(&self) -> Result<()> {
        let lease = self.lease.as_ref().context("no address was leased")?;
        let mut netlink = Netlink::open()?;
        netlink.set_up(LOOPBACK)?;
        netlink.configure_interface(
            CONTAINER_END,
            IpAddr::V4(lease.address),
            lease.subnet.prefix(),
            IpAddr::V4(lease.subnet.gateway()),
        )
    }
    // ANCHOR_END: bridge_child

    // ANCHOR: bridge_cleanup
    /// `cleanup`, on every path: the veth pair deleted, the lease given back, and the
    /// bridge deleted with the last lease. Failures are reported, and the next steps
    /// still run.
    pub fn detach(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let warn = |err: anyhow::Error| eprintln!("{}: warning: {err:#}", common::program::name());
        // First the veth, so that no two links on the bridge ever hold one address.
        if self.veth_requested
            && let Err(err) = open(&mut self.host).and_then(|h| h.delete(&self.host_end))
        {
            warn(err);
        }
        let released = self.leases.lock().and_then(|locked| {
            let left = locked.release(&lease)?;
            if left.is_empty() {
                open(&mut self.host)?.delete(BRIDGE)?;
            }
            Ok(())
        });
        if let Err(err) = released {
            warn(err);
        }
    }
    // ANCHOR_END: bridge_cleanup
}

/// The parent's rtnetlink connection, made on first use.
fn open(host: &mut Option<HostNetlink>) -> Result<&HostNetlink> {
    if host.is_none() {
        *host = Some(HostNetlink::open()?);
    }
    host.as_ref().context("no netlink connection")
}

/// The parent's requests to the host's network namespace: the `rtnetlink` crate on a
/// tokio runtime of one thread. Each method waits for its request to be answered
/// (`block_on`), so the rest of keel stays synchronous.
struct HostNetlink {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl std::fmt::Debug for HostNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNetlink").finish_non_exhaustive()
    }
}

impl HostNetlink {
    // ANCHOR: host_netlink
    /// A current-thread runtime (no thread of its own: it runs when we wait on it) and
    /// a netlink socket of the host's namespace, whose reader runs as a task on it.
    fn open() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("making a tokio runtime of one thread")?;
        let (connection, handle, _) = {
            // The socket registers with the runtime's reactor: inside its context.
            let _context = runtime.enter();
            rtnetlink::new_connection().context("socket(AF_NETLINK, NETLINK_ROUTE)")?
        };
        runtime.spawn(connection);
        explain::step(
            "tokio current-thread runtime; socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)",
            "rtnetlink from the parent, after clone: the socket speaks for the host's network namespace",
        );
        Ok(Self { runtime, handle })
    }
    // ANCHOR_END: host_netlink

    /// The index of the link `name` (RTM_GETLINK), `None` if there is none.
    fn index_of(&self, name: &str) -> Result<Option<u32>> {
        self.runtime.block_on(async {
            let mut links = self
                .handle
                .link()
                .get()
                .match_name(name.to_owned())
                .execute();
            match links.try_next().await {
                Ok(link) => Ok(link.map(|l| l.header.index)),
                Err(err) if errno(&err) == Some(libc::ENODEV) => Ok(None),
                Err(err) => Err(io(err)).with_context(|| format!("RTM_GETLINK {name}")),
            }
        })
    }

    // ANCHOR: ensure_bridge
    /// `keel0` with the subnet's gateway address, up; made if missing. A `keel0` with
    /// another address is what a runtime killed by SIGKILL left (every running
    /// container's lease is in `subnet`): it is made again. Call with the leases'
    /// lock held.
    fn ensure_bridge(&self, subnet: Subnet) -> Result<u32> {
        if let Some(index) = self.index_of(BRIDGE)? {
            if self.has_address(index, subnet)? {
                explain::step(
                    format_args!(
                        "RTM_GETLINK {BRIDGE} -> index {index}, {}/{}",
                        subnet.gateway(),
                        subnet.prefix()
                    ),
                    "the bridge exists: other containers are plugged into it",
                );
                self.set_up(BRIDGE)?;
                return Ok(index);
            }
            self.delete(BRIDGE)?;
        }
        self.runtime
            .block_on(
                self.handle
                    .link()
                    .add(LinkMessageBuilder::<LinkBridge>::new(BRIDGE).build())
                    .execute(),
            )
            .map_err(io)
            .with_context(|| format!("RTM_NEWLINK: creating the bridge {BRIDGE}"))?;
        let index = self
            .index_of(BRIDGE)?
            .with_context(|| format!("{BRIDGE} is gone right after it was made"))?;
        explain::step(
            format_args!(
                "netlink RTM_NEWLINK {{IFLA_IFNAME: {BRIDGE:?}, IFLA_LINKINFO: {{kind: \"bridge\"}}}}, NLM_F_CREATE|NLM_F_EXCL -> index {index}"
            ),
            "a bridge: a switch in the kernel, for the containers' veth ends (ip link add keel0 type bridge)",
        );
        let (gateway, prefix) = (subnet.gateway(), subnet.prefix());
        self.runtime
            .block_on(
                self.handle
                    .address()
                    .add(index, IpAddr::V4(gateway), prefix)
                    .execute(),
            )
            .map_err(io)
            .with_context(|| format!("RTM_NEWADDR: {gateway}/{prefix} on {BRIDGE}"))?;
        explain::step(
            format_args!("netlink RTM_NEWADDR {{index: {index}, IFA_LOCAL: {gateway}/{prefix}}}"),
            "the host's address on the bridge: the containers' gateway, and a route to their subnet (ip addr add)",
        );
        self.set_up(BRIDGE)?;
        Ok(index)
    }
    // ANCHOR_END: ensure_bridge

    /// Whether the link `index` holds the gateway address of `subnet`.
    fn has_address(&self, index: u32, subnet: Subnet) -> Result<bool> {
        let addresses: Vec<_> = self
            .runtime
            .block_on(
                self.handle
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect(),
            )
            .map_err(io)
            .context("RTM_GETADDR")?;
        let gateway = IpAddr::V4(subnet.gateway());
        Ok(addresses.iter().any(|a| {
            a.header.prefix_len == subnet.prefix()
                && a.attributes.contains(&AddressAttribute::Local(gateway))
        }))
    }

    /// The veth pair: `host_end` here, and its peer made directly inside the network
    /// namespace of `pid` under the name `eth0` (`IFLA_NET_NS_PID` in the peer's half).
    fn add_veth(&self, host_end: &str, pid: Pid) -> Result<()> {
        // ANCHOR: add_veth
        // EXERCISE: build the peer's half (a LinkMessageBuilder::<LinkUnspec> named CONTAINER_END, moved with setns_by_pid into the namespace of `pid`) and a LinkVeth named host_end whose info data is InfoVeth::Peer(peer); send it with self.handle.link().add(..).execute() on self.runtime.block_on, then explain the step
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(CONTAINER_END)
            .setns_by_pid(pid.as_raw() as u32)
            .build();
        let veth = LinkVeth::new(host_end, CONTAINER_END)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.runtime
            .block_on(self.handle.link().add(veth).execute())
            .map_err(io)
            .with_context(|| {
                format!(
                    "RTM_NEWLINK: the veth pair {host_end} and {CONTAINER_END} in the network \
                     namespace of {pid}"
                )
            })?;
        explain::step(
            format_args!(
                "netlink RTM_NEWLINK {{IFLA_IFNAME: {host_end:?}, IFLA_LINKINFO: {{kind: \"veth\", \
                 VETH_INFO_PEER: {{IFLA_IFNAME: {CONTAINER_END:?}, IFLA_NET_NS_PID: {pid}}}}}}}"
            ),
            "a veth pair, a wire with two ends: one on the host, the other born inside the \
             container's network namespace (the one process PID is in) as eth0",
        );
        Ok(())
        // ANCHOR_END: add_veth
    }

    /// `ip link set dev NAME master keel0`.
    fn plug_into(&self, name: &str, bridge: u32) -> Result<()> {
        let message = LinkUnspec::new_with_name(name).controller(bridge).build();
        self.runtime
            .block_on(self.handle.link().change(message).execute())
            .map_err(io)
            .with_context(|| format!("RTM_NEWLINK: {name} master {BRIDGE}"))?;
        explain::step(
            format_args!("netlink RTM_NEWLINK {{IFLA_IFNAME: {name:?}, IFLA_MASTER: {bridge}}}"),
            "plug the host end into the bridge keel0 (ip link set dev ... master keel0)",
        );
        Ok(())
    }

    /// `ip link set dev NAME up`.
    fn set_up(&self, name: &str) -> Result<()> {
        let message = LinkUnspec::new_with_name(name).up().build();
        self.runtime
            .block_on(self.handle.link().change(message).execute())
            .map_err(io)
            .with_context(|| format!("RTM_NEWLINK: {name} up"))?;
        explain::step(
            format_args!("netlink RTM_NEWLINK {{IFLA_IFNAME: {name:?}, flags: IFF_UP}}"),
            "bring the link up (ip link set dev ... up)",
        );
        Ok(())
    }

    /// `ip link del NAME`; `false` if there was no such link. Deleting one end of a
    /// veth pair deletes the other, wherever it is.
    fn delete(&self, name: &str) -> Result<bool> {
        let gone = || {
            explain::step(
                format_args!("netlink RTM_GETLINK {{IFLA_IFNAME: {name:?}}} -> ENODEV"),
                if name == BRIDGE {
                    "no bridge to delete"
                } else {
                    "no such link: it was never made, or it went with the container's \
                     network namespace, which takes both ends of the pair along when its \
                     last process is gone"
                },
            );
            Ok(false)
        };
        let Some(index) = self.index_of(name)? else {
            return gone();
        };
        match self
            .runtime
            .block_on(self.handle.link().del(index).execute())
        {
            // Gone in between: its namespace was being torn down.
            Err(err) if errno(&err) == Some(libc::ENODEV) => return gone(),
            other => other
                .map_err(io)
                .with_context(|| format!("RTM_DELLINK {name}"))?,
        }
        explain::step(
            format_args!("netlink RTM_DELLINK {{index: {index}}} ({name})"),
            if name == BRIDGE {
                "the last container on the bridge is gone: the bridge goes too (ip link del keel0)"
            } else {
                "delete the host end of the veth pair, and with it the container's end (ip link del ...)"
            },
        );
        Ok(true)
    }
}

/// The errno of a refused request.
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

/// The kernel's refusal as the errno's text ("File exists"), anything else as it is.
fn io(err: rtnetlink::Error) -> anyhow::Error {
    match err {
        rtnetlink::Error::NetlinkError(message) => message.to_io().into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ends_are_short_unique_names() {
        assert_eq!(host_end_name("net-5e3a1b2c4d6f"), "keel1b2c4d6f");
        assert!(host_end_name("net-5e3a1b2c4d6f").len() <= MAX_NAME);
        assert_ne!(host_end_name("net-000000000001"), BRIDGE);
    }
}
