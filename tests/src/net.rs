//! Networking for the graders of stage 4: what the probe says of the container's
//! network, a web server on the host's loopback, free ports, and what must be gone
//! after a run.
//!
//! All traffic stays on this machine: the host's loopback, or addresses inside
//! namespaces the tests made.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::skip::Skip;

/// What `keel-probe net` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct NetReport {
    pub links: Vec<Link>,
    /// The gateway of the IPv4 default route.
    pub gateway: Option<String>,
}

/// One link of the container's network namespace.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    pub name: String,
    pub up: bool,
    /// `ADDRESS/PREFIX`.
    pub addresses: Vec<String>,
}

impl NetReport {
    /// The names of the links, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.links.iter().map(|l| l.name.as_str()).collect()
    }

    /// The link called `name`; panics, showing the report, if there is none.
    pub fn link(&self, name: &str) -> &Link {
        self.links
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no link {name} in the container: {self:?}"))
    }
}

/// slirp4netns and pasta open `/dev/net/tun` as the user: make it usable as udev does
/// on desktop systems (mode 0666), or skip without root.
pub fn tun_usable() -> Result<(), Skip> {
    usable_by_users(Path::new("/dev/net/tun"), "this kernel has no TUN/TAP")
}

/// Makes the device `dev` readable and writable by everyone, as udev does on desktop
/// systems (`/dev/net/tun`, `/dev/fuse`), or skips without root; `missing` says what
/// its absence means.
pub fn usable_by_users(dev: &Path, missing: &str) -> Result<(), Skip> {
    let meta = std::fs::metadata(dev)
        .map_err(|err| Skip(format!("{}: {err}: {missing}", dev.display())))?;
    if meta.permissions().mode() & 0o666 == 0o666 {
        return Ok(());
    }
    crate::skip::require_root()?;
    std::fs::set_permissions(dev, std::fs::Permissions::from_mode(0o666))
        .map_err(|err| Skip(format!("chmod 0666 {}: {err}", dev.display())))
}

/// A program the stage needs on the host's PATH, or a skip naming its package.
pub fn installed(program: &str, package: &str) -> Result<(), Skip> {
    let found = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).exists());
    if found {
        Ok(())
    } else {
        Err(Skip(format!(
            "{program} is not installed: apt-get install {package}"
        )))
    }
}

/// A port of the host's loopback that nobody listens on right now (the kernel picks
/// it; between here and its use another program could take it, which the tests
/// accept as they accept any other failure of the machine).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind to a free port of 127.0.0.1")
}

/// Whether something listens on TCP `127.0.0.1:port` (a bind fails).
pub fn tcp_port_taken(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err()
}

/// Whether something holds UDP `127.0.0.1:port`.
pub fn udp_port_taken(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err()
}

/// A web server on the host's loopback that answers every request with `body`, from a
/// thread, until the test process ends. Returns its port.
pub fn serve_on_host_loopback(body: &'static str) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || answer(client, body));
        }
    });
    port
}

fn answer(mut client: TcpStream, body: &str) {
    let mut request = [0u8; 4096];
    let _ = client.read(&mut request);
    let _ = write!(
        client,
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `GET /` from `addr`, as a client on the host; the body, or why not.
pub fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|err| format!("connect to {addr}: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|err| err.to_string())?;
    write!(stream, "GET / HTTP/1.0\r\nHost: keel\r\n\r\n").map_err(|err| err.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|err| format!("read from {addr}: {err}"))?;
    match answer.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_owned()),
        None => Err(format!("not an HTTP answer from {addr}: {answer:?}")),
    }
}

/// The processes whose command line mentions `text` (a run directory, a marker).
pub fn processes_mentioning(text: &str) -> Vec<(i32, String)> {
    crate::running::host_pids()
        .into_iter()
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(text).then_some((pid, cmdline))
        })
        .collect()
}
