//! `--subnet CIDR`: the IPv4 addresses of the bridge network, and how keel picks them
//! when none is given.
//!
//! A subnet such as `10.89.0.0/24` is a network address and a prefix length: the first
//! 24 bits name the network, the last 8 the hosts on it. On keel's bridge the first host
//! address (`.1`) is the gateway, which the host holds on `keel0`, and containers get
//! the next ones (`.2`, `.3`, ...) up to the one before the broadcast address (`.255`).
//!
//! The subnet must not overlap any network the host already reaches: giving `keel0` an
//! address in it would add a second route to the same addresses, and either the host's
//! hosts or the containers would become unreachable. So keel reads the host's routes
//! (`/proc/net/route`, the main routing table, the one `ip route` shows) and, without
//! `--subnet`, takes the first `/24` from `10.89.0.0/24` upward that no route covers, as
//! podman takes `10.88.0.0/16` for its own network.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use crate::bridge::BRIDGE;

/// The first subnet keel tries without `--subnet` (podman's is `10.88.0.0/16`).
pub const FIRST_DEFAULT: Subnet = Subnet {
    network: Ipv4Addr::new(10, 89, 0, 0),
    prefix: 24,
};

/// The prefix lengths `--subnet` accepts: a `/30` holds the gateway and one container;
/// a prefix shorter than `/8` would claim more of the address space than any network
/// of containers needs.
pub const PREFIXES: std::ops::RangeInclusive<u8> = 8..=30;

/// An IPv4 network: its address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The network of `address` with `prefix` bits (the host bits are cleared).
    pub fn containing(address: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        Self {
            network: Ipv4Addr::from(u32::from(address) & mask(prefix)),
            prefix,
        }
    }

    /// The network address, e.g. `10.89.0.0`.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length, e.g. `24`.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first host address, which the host holds on the bridge: `.1`.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The last address, which every host on the network receives.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The containers' addresses, in order: from the one after the gateway to the one
    /// before the broadcast address.
    pub fn container_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let first = u32::from(self.gateway()) + 1;
        let last = u32::from(self.broadcast()).saturating_sub(1);
        (first..=last).map(Ipv4Addr::from)
    }

    /// Whether `address` is in this network.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the two networks share an address: the shorter prefix covers the other.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = mask(self.prefix.min(other.prefix));
        u32::from(self.network) & shorter == u32::from(other.network) & shorter
    }
}

/// The netmask of a prefix length: `24` is `255.255.255.0`.
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

// ANCHOR: parse_subnet
impl FromStr for Subnet {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let usage = "write --subnet ADDRESS/PREFIX, e.g. --subnet 10.88.0.0/24";
        let (address, prefix) = spec
            .split_once('/')
            .with_context(|| format!("--subnet {spec:?}: no prefix length; {usage}"))?;
        let address: Ipv4Addr = address.parse().map_err(|_| {
            if address.parse::<std::net::Ipv6Addr>().is_ok() {
                anyhow::anyhow!("--subnet {spec:?}: keel's bridge is IPv4 only; {usage}")
            } else {
                anyhow::anyhow!("--subnet {spec:?}: {address:?} is not an IPv4 address; {usage}")
            }
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| PREFIXES.contains(p))
            .with_context(|| {
                format!(
                    "--subnet {spec:?}: the prefix length must be a number from {} to {} \
                     (a /30 holds the gateway and one container)",
                    PREFIXES.start(),
                    PREFIXES.end()
                )
            })?;
        let subnet = Subnet::containing(address, prefix);
        if subnet.network != address {
            bail!(
                "--subnet {spec:?}: the address has bits set past the prefix; the network \
                 is --subnet {subnet}"
            );
        }
        Ok(subnet)
    }
}
// ANCHOR_END: parse_subnet

/// One route of the host's main table: where packets for `destination` go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The link they leave by (`eth0`, `keel0`).
    pub device: String,
    pub destination: Subnet,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {}", self.destination, self.device)
    }
}

/// The host's IPv4 routes (the main table), from `/proc/net/route`.
pub fn host_routes() -> Result<Vec<Route>> {
    let text = std::fs::read_to_string("/proc/net/route").context("reading /proc/net/route")?;
    Ok(parse_routes(&text))
}

/// `/proc/net/route`: a header line, then per route `Iface Destination Gateway Flags
/// RefCnt Use Metric Mask ...`, the addresses as 8 hex digits of the 32-bit number the
/// kernel holds in network byte order, printed as a number of this machine's order.
fn parse_routes(text: &str) -> Vec<Route> {
    let address = |hex: &str| -> Option<Ipv4Addr> {
        Some(Ipv4Addr::from(
            u32::from_str_radix(hex, 16).ok()?.to_ne_bytes(),
        ))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (device, destination, mask) = (fields.first()?, fields.get(1)?, fields.get(7)?);
            let prefix = u32::from(address(mask)?).count_ones() as u8;
            Some(Route {
                device: (*device).to_owned(),
                destination: Subnet::containing(address(destination)?, prefix),
            })
        })
        .collect()
}

/// The host's route that `subnet` would collide with, if any. The default route
/// (`0.0.0.0/0`) covers everything and collides with nothing; routes on `keel0` are
/// keel's own (a bridge left by a runtime killed with SIGKILL).
pub fn collision(subnet: Subnet, routes: &[Route]) -> Option<&Route> {
    routes.iter().find(|route| {
        route.destination.prefix > 0
            && route.device != BRIDGE
            && route.destination.overlaps(&subnet)
    })
}

// ANCHOR: default_subnet
/// The first `/24` from `10.89.0.0/24` to `10.255.255.0/24` that no route of the host
/// covers.
pub fn default_subnet(routes: &[Route]) -> Result<Subnet> {
    let first = u32::from(FIRST_DEFAULT.network);
    let last = u32::from(Ipv4Addr::new(10, 255, 255, 0));
    (first..=last)
        .step_by(256)
        .map(|network| Subnet::containing(Ipv4Addr::from(network), 24))
        .find(|candidate| collision(*candidate, routes).is_none())
        .with_context(|| {
            format!(
                "every /24 from {FIRST_DEFAULT} to 10.255.255.0/24 overlaps a route of the \
                 host: choose a free network with --subnet"
            )
        })
}
// ANCHOR_END: default_subnet

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subnet(spec: &str) -> Subnet {
        spec.parse().unwrap_or_else(|err| panic!("{spec}: {err:#}"))
    }

    fn route(device: &str, spec: &str) -> Route {
        let (address, prefix) = spec.split_once('/').unwrap();
        Route {
            device: device.into(),
            destination: Subnet::containing(address.parse().unwrap(), prefix.parse().unwrap()),
        }
    }

    #[test]
    fn subnets_read_like_docker() {
        let s = subnet("10.88.0.0/24");
        assert_eq!(s.to_string(), "10.88.0.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 0, 255));
        let addresses: Vec<Ipv4Addr> = s.container_addresses().collect();
        assert_eq!(addresses.first(), Some(&Ipv4Addr::new(10, 88, 0, 2)));
        assert_eq!(addresses.last(), Some(&Ipv4Addr::new(10, 88, 0, 254)));
        assert_eq!(addresses.len(), 253);
        assert_eq!(subnet("192.168.4.0/30").container_addresses().count(), 1);
        for bad in [
            "10.88.0.0",
            "10.88.0.0/",
            "10.88.0.0/33",
            "10.88.0.0/31",
            "10.0.0.0/7",
            "10.88.0.5/24",
            "10.88.0/24",
            "fd00::/64",
            "/24",
            "10.88.0.0/24/1",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad} should be refused");
        }
        let err = format!("{:#}", "10.88.0.5/24".parse::<Subnet>().unwrap_err());
        assert!(err.contains("--subnet 10.88.0.0/24"), "{err}");
        let err = format!("{:#}", "fd00::/64".parse::<Subnet>().unwrap_err());
        assert!(err.contains("IPv4 only"), "{err}");
    }

    #[test]
    fn overlaps_are_seen_from_either_side() {
        assert!(subnet("10.0.0.0/8").overlaps(&subnet("10.89.0.0/24")));
        assert!(subnet("10.89.0.0/24").overlaps(&subnet("10.0.0.0/8")));
        assert!(!subnet("10.89.0.0/24").overlaps(&subnet("10.89.1.0/24")));
        assert!(subnet("10.89.0.0/16").contains(Ipv4Addr::new(10, 89, 7, 7)));
    }

    #[test]
    fn proc_net_route_is_read_in_the_machines_byte_order() {
        // 10.89.0.0/24 on keel0, 192.0.2.0/24 on eth0, the default route, as an x86 prints.
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    keel0\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_routes(text),
                [
                    route("eth0", "0.0.0.0/0"),
                    route("eth0", "192.0.2.0/24"),
                    route("keel0", "10.89.0.0/24"),
                ]
            );
        }
    }

    #[test]
    fn the_default_is_the_first_24_no_route_covers() {
        assert_eq!(default_subnet(&[]).unwrap(), FIRST_DEFAULT);
        let routes = [
            route("eth0", "0.0.0.0/0"),
            route("eth0", "10.89.0.0/23"),
            route("wg0", "10.89.2.128/25"),
        ];
        assert_eq!(default_subnet(&routes).unwrap(), subnet("10.89.3.0/24"));
        // keel's own bridge, left by a killed runtime, is no obstacle.
        assert_eq!(
            default_subnet(&[route(BRIDGE, "10.89.0.0/24")]).unwrap(),
            FIRST_DEFAULT
        );
        let err = format!(
            "{:#}",
            default_subnet(&[route("vpn0", "10.0.0.0/8")]).unwrap_err()
        );
        assert!(err.contains("--subnet"), "{err}");
    }

    #[test]
    fn the_collision_names_the_route() {
        let routes = [route("eth0", "192.0.2.0/24")];
        let hit = collision(subnet("192.0.2.0/25"), &routes).unwrap();
        assert_eq!(hit.to_string(), "192.0.2.0/24 dev eth0");
        assert!(collision(subnet("192.0.3.0/24"), &routes).is_none());
    }

    proptest! {
        #[test]
        fn any_text_is_a_subnet_or_an_error(spec in "[0-9a-f:./]{0,24}") {
            if let Ok(s) = spec.parse::<Subnet>() {
                prop_assert!(PREFIXES.contains(&s.prefix()));
                prop_assert_eq!(s.to_string().parse::<Subnet>().unwrap(), s);
                prop_assert!(s.contains(s.gateway()));
                prop_assert!(s.container_addresses().all(|a| s.contains(a) && a != s.broadcast()));
            }
        }

        #[test]
        fn every_valid_subnet_parses_back(a in any::<u32>(), prefix in PREFIXES) {
            let s = Subnet::containing(Ipv4Addr::from(a), prefix);
            prop_assert_eq!(s.to_string().parse::<Subnet>().unwrap(), s);
        }
    }
}
