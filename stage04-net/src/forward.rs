//! The built-in port forwarder: the runtime listens on the host port itself, and
//! carries each connection into the container with no TCP/IP stack of its own.
//!
//! slirp4netns publishes a port by accepting the connection on the host and replaying
//! it through libslirp into `tap0`: every byte crosses a user-space TCP/IP stack and a
//! TAP device, twice. rootlesskit's `builtin` driver does better, and so does keel:
//!
//! ```text
//!  host                         runtime                      container's netns
//!  client ──► 127.0.0.1:8080 ─► accept()                     dialer (a process that
//!                                 │  "tcp 80" ─────────────► joined the namespaces)
//!                                 │  ◄── fd (SCM_RIGHTS) ──── connect(127.0.0.1:80)
//!                                 splice(client ⇄ fd)
//! ```
//!
//! The dialer is a child of the runtime that entered the container's user and network
//! namespaces; a socket keeps the namespace it was made in, so the connected socket it
//! hands back over a unix socket reaches the container's port from wherever it is
//! used. The runtime then moves bytes between the two sockets with `splice(2)`, which
//! moves pages from one socket to the other through a pipe inside the kernel.
//! As root with a bridge, the container's address is reachable from the host, and the
//! runtime connects to it directly.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use common::explain;
use nix::sched::CloneFlags;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn};
use nix::unistd::{ForkResult, Pid, fork};

use crate::ports::{Proto, Publish};
use crate::relay;

/// Where connections go.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// `127.0.0.1:PORT` inside the network namespace of this process.
    Namespace(Pid),
    /// `ADDRESS:PORT`, reachable from the host (a container on the bridge).
    Address(IpAddr),
}

/// Published ports, forwarded until dropped.
#[derive(Debug)]
pub struct Forwarder {
    bound: Vec<(Publish, SocketAddr)>,
    /// A second fd of each listening socket: shut down to stop its thread (an fd of
    /// our own, which no thread closes under us).
    sockets: Vec<OwnedFd>,
    /// Kept alive while the threads need it; the dialer exits when the last is gone.
    _dialer: Option<Arc<Dialer>>,
}

impl Forwarder {
    // ANCHOR: forwarder_start
    /// Listens on every published port, and forwards each connection (or datagram) to
    /// the container's port.
    pub fn start(publish: &[Publish], target: Target) -> Result<Self> {
        // Fork the dialer before any thread exists: a forked copy of a threaded
        // process may not do much more than exec.
        let dialer = match target {
            Target::Namespace(pid) => Some(Arc::new(Dialer::start(pid)?)),
            Target::Address(_) => None,
        };
        let connect = Connect {
            target,
            dialer: dialer.clone(),
        };
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        for publish in publish {
            let addr = SocketAddr::new(publish.host_ip, publish.host_port);
            match publish.proto {
                Proto::Tcp => {
                    let listener = TcpListener::bind(addr).with_context(|| in_use(publish))?;
                    bound.push((*publish, listener.local_addr()?));
                    sockets.push(listener.try_clone()?.into());
                    let connect = connect.clone();
                    let port = publish.container_port;
                    std::thread::spawn(move || accept_loop(listener, connect, port));
                }
                Proto::Udp => {
                    let socket = UdpSocket::bind(addr).with_context(|| in_use(publish))?;
                    bound.push((*publish, socket.local_addr()?));
                    sockets.push(socket.try_clone()?.into());
                    let connect = connect.clone();
                    let port = publish.container_port;
                    std::thread::spawn(move || udp_loop(socket, connect, port));
                }
            }
            explain::step(
                format_args!(
                    "bind({}) -> listen; forward to {:?} port {}",
                    addr, target, publish.container_port
                ),
                "keel itself listens on the host port and hands each connection to the container",
            );
        }
        Ok(Self {
            bound,
            sockets,
            _dialer: dialer,
        })
    }
    // ANCHOR_END: forwarder_start

    /// Each published port, with the address it is bound to (the port picked for 0).
    pub fn bound(&self) -> &[(Publish, SocketAddr)] {
        &self.bound
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // shutdown(2) wakes a thread blocked in accept or recv on the socket; each
        // thread then drops its socket, which frees the port.
        for fd in &self.sockets {
            let _ = socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Both);
        }
    }
}

fn in_use(publish: &Publish) -> String {
    format!(
        "-p {publish}: cannot listen on {}:{} (is the port taken by another program? \
         choose another HOSTPORT, or 0 to have one picked)",
        publish.host_ip, publish.host_port
    )
}

/// How to reach the container's port.
#[derive(Debug, Clone)]
struct Connect {
    target: Target,
    dialer: Option<Arc<Dialer>>,
}

impl Connect {
    fn open(&self, proto: Proto, port: u16) -> Result<OwnedFd> {
        match (self.target, &self.dialer) {
            (Target::Address(ip), _) => match proto {
                Proto::Tcp => Ok(TcpStream::connect((ip, port))?.into()),
                Proto::Udp => {
                    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                    socket.connect((ip, port))?;
                    Ok(socket.into())
                }
            },
            (Target::Namespace(_), Some(dialer)) => dialer.dial(proto, port),
            (Target::Namespace(_), None) => bail!("no dialer in the container's namespace"),
        }
    }
}

// ANCHOR: accept_loop
/// Accepts connections until the listener is shut down; each one is relayed to its
/// own connection into the container (see [`crate::relay`]).
fn accept_loop(listener: TcpListener, connect: Connect, port: u16) {
    while let Ok((client, _)) = listener.accept() {
        let Ok(inside) = connect.open(Proto::Tcp, port) else {
            // Nothing listens in the container: the client sees the connection close.
            continue;
        };
        relay::both_ways(client, TcpStream::from(inside));
    }
}
// ANCHOR_END: accept_loop

/// UDP has no connections: one socket inside per client address, and datagrams carried
/// both ways until the runtime stops.
fn udp_loop(socket: UdpSocket, connect: Connect, port: u16) {
    let socket = Arc::new(socket);
    let clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, client)) = socket.recv_from(&mut buf) {
        let inside = {
            let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
            match clients.get(&client) {
                Some(inside) => inside.clone(),
                None => {
                    let Ok(fd) = connect.open(Proto::Udp, port) else {
                        continue;
                    };
                    let inside = Arc::new(UdpSocket::from(fd));
                    clients.insert(client, inside.clone());
                    let (inside2, outside) = (inside.clone(), socket.clone());
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = inside2.recv(&mut buf) {
                            if outside.send_to(&buf[..n], client).is_err() {
                                break;
                            }
                        }
                    });
                    inside
                }
            }
        };
        let _ = inside.send(&buf[..n]);
    }
}

/// A process in the container's user and network namespaces that opens sockets there.
#[derive(Debug)]
struct Dialer {
    socket: Mutex<OwnedFd>,
    pid: Pid,
}

impl Dialer {
    // ANCHOR: dialer
    /// Forks the dialer, which joins the namespaces of `target` and waits for requests.
    fn start(target: Pid) -> Result<Self> {
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for the dialer")?;
        let user = open_namespace(target, "user")?;
        let net = open_namespace(target, "net")?;
        // SAFETY: the runtime has no other thread yet (see Forwarder::start).
        match unsafe { fork() }.context("fork of the dialer")? {
            ForkResult::Child => {
                drop(ours);
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                // The runtime's stdout and stderr are the caller's: a helper must not
                // hold them open (a caller waiting for end-of-file would wait for it).
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    let _ = nix::unistd::dup2_stdin(&null);
                    let _ = nix::unistd::dup2_stdout(&null);
                    let _ = nix::unistd::dup2_stderr(&null);
                }
                // Joining a user namespace we created gives us its capabilities, and
                // with them the right to join its network namespace. Root, whose
                // container may have no user namespace of its own, joins only the net.
                let same_user_ns = std::fs::read_link("/proc/self/ns/user").ok()
                    == std::fs::read_link(format!("/proc/{target}/ns/user")).ok();
                if !same_user_ns && nix::sched::setns(&user, CloneFlags::CLONE_NEWUSER).is_err() {
                    std::process::exit(1);
                }
                if nix::sched::setns(&net, CloneFlags::CLONE_NEWNET).is_err() {
                    std::process::exit(1);
                }
                // A process in the container's namespaces holds nothing of the
                // runtime's: not its listening ports, its signalfd or its socket to
                // the child; only the socket it answers on.
                if common::fds::close_all_but(&[theirs.as_raw_fd()]).is_err() {
                    std::process::exit(1);
                }
                serve(&theirs);
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                explain::step(
                    format_args!(
                        "fork() -> {child}; setns(/proc/{target}/ns/user); setns(/proc/{target}/ns/net)"
                    ),
                    "a dialer in the container's network namespace opens the connections to its ports",
                );
                Ok(Self {
                    socket: Mutex::new(ours),
                    pid: child,
                })
            }
        }
    }
    // ANCHOR_END: dialer

    /// Asks the dialer for a socket connected to `127.0.0.1:port` in the container.
    fn dial(&self, proto: Proto, port: u16) -> Result<OwnedFd> {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        let [high, low] = port.to_be_bytes();
        let request = [u8::from(proto == Proto::Udp), high, low];
        socket::send(socket.as_raw_fd(), &request, MsgFlags::empty())
            .context("asking the dialer")?;
        let mut answer = [0u8; 4];
        let (_, fd) = common::pass_fd::receive(&*socket, &mut answer, MsgFlags::MSG_CMSG_CLOEXEC)
            .context("reading the dialer's answer")?;
        if let Some(fd) = fd {
            return Ok(fd);
        }
        let errno = i32::from_ne_bytes(answer);
        Err(std::io::Error::from_raw_os_error(errno)).context("connecting inside the container")
    }
}

impl Drop for Dialer {
    fn drop(&mut self) {
        // Its socket closes with us, and it exits on end-of-file; reap it.
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

fn open_namespace(pid: Pid, name: &str) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/{name}");
    Ok(std::fs::File::open(&path)
        .with_context(|| format!("opening {path}"))?
        .into())
}

/// The dialer's loop: one request, one socket (or an errno), until end-of-file.
fn serve(socket: &OwnedFd) {
    let mut request = [0u8; 3];
    while let Ok(3) = socket::recv(socket.as_raw_fd(), &mut request, MsgFlags::empty()) {
        let port = u16::from_be_bytes([request[1], request[2]]);
        let kind = if request[0] == 1 {
            SockType::Datagram
        } else {
            SockType::Stream
        };
        let result = socket::socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)
            .and_then(|fd| {
                let addr = SockaddrIn::new(127, 0, 0, 1, port);
                socket::connect(fd.as_raw_fd(), &addr).map(|()| fd)
            });
        let _ = match result {
            Ok(fd) => common::pass_fd::send(socket, &0i32.to_ne_bytes(), &fd, MsgFlags::empty()),
            Err(errno) => socket::send(
                socket.as_raw_fd(),
                &(errno as i32).to_ne_bytes(),
                MsgFlags::empty(),
            ),
        };
    }
}
