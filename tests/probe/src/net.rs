//! `keel-probe net`: the network the process sees: its links, whether they are up,
//! their addresses, and the default route.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

/// One link: up or not, and its addresses as `ADDRESS/PREFIX`.
#[derive(Default)]
struct Link {
    up: bool,
    addresses: Vec<String>,
}

pub fn net() -> Value {
    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that freeifaddrs frees; we only read it between.
    if unsafe { libc::getifaddrs(&mut list) } == 0 {
        let mut entry = list;
        while !entry.is_null() {
            // SAFETY: a non-null entry of the list getifaddrs returned.
            let ifa = unsafe { &*entry };
            // SAFETY: ifa_name is a NUL-terminated string of the entry.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            let link = links.entry(name).or_default();
            link.up |= ifa.ifa_flags & libc::IFF_UP as u32 != 0;
            if let Some(address) = address(ifa) {
                link.addresses.push(address);
            }
            entry = ifa.ifa_next;
        }
        // SAFETY: the list came from getifaddrs.
        unsafe { libc::freeifaddrs(list) };
    }
    let links: Vec<Value> = links
        .into_iter()
        .map(|(name, link)| json!({ "name": name, "up": link.up, "addresses": link.addresses }))
        .collect();
    json!({ "links": links, "gateway": default_gateway() })
}

/// The entry's IPv4 or IPv6 address with its prefix length.
fn address(ifa: &libc::ifaddrs) -> Option<String> {
    if ifa.ifa_addr.is_null() {
        return None;
    }
    // SAFETY: ifa_addr points to a sockaddr of the family it names; the netmask too.
    unsafe {
        match i32::from((*ifa.ifa_addr).sa_family) {
            libc::AF_INET => {
                let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let mask = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
                Some(format!(
                    "{ip}/{}",
                    u32::from_be(mask.sin_addr.s_addr).count_ones()
                ))
            }
            libc::AF_INET6 => {
                let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                let mask = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                let prefix: u32 = mask.sin6_addr.s6_addr.iter().map(|b| b.count_ones()).sum();
                Some(format!(
                    "{}/{prefix}",
                    Ipv6Addr::from(addr.sin6_addr.s6_addr)
                ))
            }
            _ => None,
        }
    }
}

/// The gateway of the IPv4 default route, from `/proc/net/route` (hex, little-endian).
fn default_gateway() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"00000000") {
            return None;
        }
        // The kernel prints the address's four bytes as one number in the machine's
        // byte order: on x86, little-endian.
        let gateway = u32::from_str_radix(fields.get(2)?, 16).ok()?;
        Some(Ipv4Addr::from(gateway.to_le_bytes()).to_string())
    })
}

/// `keel-probe udp-once PORT`: binds UDP `0.0.0.0:PORT`, says so on stdout, then prints
/// the first datagram it receives and exits. Saying so only once bound lets a test
/// send without a race.
pub fn udp_once(port: &str) -> Value {
    use std::io::Write;
    let Ok(port) = port.parse::<u16>() else {
        return json!({ "error": "PORT is a number" });
    };
    let socket = match std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(socket) => socket,
        Err(err) => return json!({ "error": err.to_string() }),
    };
    let _ = writeln!(std::io::stdout(), "{}", json!({ "listening": port }));
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 1500];
    match socket.recv(&mut buf) {
        Ok(n) => json!({ "received": String::from_utf8_lossy(&buf[..n]) }),
        Err(err) => json!({ "error": err.to_string() }),
    }
}

/// `keel-probe sink PORT`: accepts one TCP connection on `0.0.0.0:PORT` (saying so
/// first), reads it to the end with a large buffer, then writes the count back as 8
/// bytes and closes: the far end of a throughput measurement into the container.
pub fn sink(port: &str) -> Value {
    use std::io::{Read, Write};
    let Ok(port) = port.parse::<u16>() else {
        return json!({ "error": "PORT is a number" });
    };
    let mut client = match accept_one(port) {
        Ok(client) => client,
        Err(error) => return error,
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    while let Ok(n @ 1..) = client.read(&mut buf) {
        total += n as u64;
    }
    let _ = client.write_all(&total.to_be_bytes());
    json!({ "received": total })
}

/// `keel-probe source PORT MIB`: accepts one TCP connection on `0.0.0.0:PORT` (saying
/// so first), writes MIB mebibytes of zeros to it, shuts its side down, and waits for
/// the reader to close: the far end of a throughput measurement out of the container.
/// (Exiting at once would end the container while the last bytes are still on their
/// way through the port forwarder, which ends with it.)
pub fn source(port: &str, mib: &str) -> Value {
    use std::io::{Read, Write};
    let (Ok(port), Ok(mib)) = (port.parse::<u16>(), mib.parse::<u64>()) else {
        return json!({ "error": "PORT and MIB are numbers" });
    };
    let mut client = match accept_one(port) {
        Ok(client) => client,
        Err(error) => return error,
    };
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        if client.write_all(&buf).is_err() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Write);
    while let Ok(1..) = client.read(&mut buf) {}
    json!({ "sent": mib << 20 })
}

/// `keel-probe abstract NAME`: connects to the abstract unix socket `@NAME`. Abstract
/// names have no file: they belong to a network namespace, so a container in the
/// host's network namespace reaches every such socket of the host.
pub fn abstract_socket(name: &str) -> Value {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let address = match SocketAddr::from_abstract_name(name.as_bytes()) {
        Ok(address) => address,
        Err(err) => return json!({ "error": err.to_string() }),
    };
    match UnixStream::connect_addr(&address) {
        Ok(_) => json!({ "connected": true }),
        Err(err) => json!({ "connected": false, "error": err.to_string() }),
    }
}

/// Listens on `0.0.0.0:port`, says so on stdout (the far end waits for that line), and
/// accepts one connection.
fn accept_one(port: u16) -> Result<std::net::TcpStream, Value> {
    use std::io::Write;
    let listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .map_err(|err| json!({ "error": err.to_string() }))?;
    let _ = writeln!(std::io::stdout(), "{}", json!({ "listening": port }));
    let _ = std::io::stdout().flush();
    listener
        .accept()
        .map(|(client, _)| client)
        .map_err(|err| json!({ "error": format!("accept: {err}") }))
}
