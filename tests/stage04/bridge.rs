//! Graders of `--network bridge` (root): docker's network, made by keel. Each container
//! gets `eth0`, one end of a veth pair whose other end is plugged into the bridge
//! `keel0` on the host, an address of the bridge's subnet and a default route via the
//! bridge's address.
//!
//! What they check, from outside and inside: the address, the route and the names
//! (`/etc/hosts`, `/etc/resolv.conf`); two containers reach each other over `keel0`,
//! the host reaches a container's address, a published port serves from the
//! container; concurrent runs never share an address; and after every run, however it
//! ended (normal exit, SIGKILL of the container, SIGTERM of the runtime, a start that
//! failed), no `keel*` link and no lease is left. A runtime killed by SIGKILL cannot
//! clean up: its veth goes with its container's network namespace, its lease stays,
//! stale, and the next run hands the address out again and leaves nothing.
//!
//! All traffic stays on this machine: between the host and addresses of the bridge's
//! subnet, and on loopback.
//!
//! The bridge and the leases (`/run/keel/bridge-leases`) are the machine's, so these
//! graders take turns (an exclusive `flock` of `/run/lock/keel-graders-bridge.lock`,
//! across test threads, processes and checkouts), and skip while a container that is
//! not theirs runs on the bridge. Each runs in its own copy of the busybox rootfs: the
//! network binds `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` over the
//! rootfs's, and a started run leaves those mount points in it, as docker's bind
//! targets, which the shared rootfs must not get.
//!
//! This module is self-contained (it uses nothing of the file that includes it) and
//! runs the stage's twin binary `keel-stage04`. The graders of what a container sees
//! through its veth pair are exercise `add_veth`'s, in `add_veth.rs`, on these helpers.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use keel_graders::rootfs;
use keel_graders::{LeakCheck, Output, Running, Runtime, Skip, need, require_root};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};
use nix::unistd::Pid;
use tempfile::TempDir;

pub(crate) const NAME: &str = "stage04-net";

/// The bridge keel makes.
pub(crate) const BRIDGE: &str = "keel0";

/// Who holds which address (root's runtime directory).
pub(crate) const LEASES: &str = "/run/keel/bridge-leases";

/// Taken by each grader of this module, so that they take turns with the bridge.
pub(crate) const TURNS: &str = "/run/lock/keel-graders-bridge.lock";

/// How long a connection, or a link's removal, may take: a deadline, not a pause.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// A grader's turn with the bridge: root, its own busybox rootfs, and the stage.
pub(crate) struct Turn {
    stage: Runtime,
    rootfs: TempDir,
    _turn: File,
}

impl Turn {
    /// The stage with `--rootfs <copy> --network bridge`.
    pub(crate) fn bridged(&self) -> Runtime {
        self.stage
            .clone()
            .with_options([Path::new("--rootfs"), self.rootfs.path()])
            .with_options(["--network", "bridge"])
    }
}

/// Skips unless root and busybox are here and no other container uses the bridge.
pub(crate) fn turn() -> Result<Turn, Skip> {
    require_root()?;
    let rootfs = rootfs::private_copy()?;
    let turn = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(TURNS)
        .unwrap_or_else(|err| panic!("cannot open {TURNS}: {err}"));
    // SAFETY: flock on an fd we own; it waits for the other graders' turns.
    let locked = unsafe { libc::flock(turn.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        locked,
        0,
        "flock {TURNS}: {}",
        std::io::Error::last_os_error()
    );
    let others: Vec<Lease> = leases().into_iter().filter(Lease::is_live).collect();
    if !others.is_empty() {
        return Err(Skip(format!(
            "containers that are not the graders' run on {BRIDGE} (leases {others:?}): \
             these graders need the bridge to themselves"
        )));
    }
    Ok(Turn {
        stage: Runtime::new(NAME, env!("CARGO_BIN_EXE_keel-stage04")),
        rootfs,
        _turn: turn,
    })
}

// ---------------------------------------------------------------------------------
// What the host shows: links, leases, routes.

/// The host's links whose name starts with `keel`, as `ip -o link` names them.
pub(crate) fn keel_links() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("cannot run ip -o link");
    assert!(out.status.success(), "ip -o link failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // "12: keel5e3a1b2c@if2: <BROADCAST,..." -> keel5e3a1b2c
            let name = line.split(": ").nth(1)?;
            let name = name.split('@').next()?;
            name.starts_with("keel").then(|| name.to_owned())
        })
        .collect()
}

/// One line of the leases file: `ADDRESS/PREFIX LINK PID START`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    address: Ipv4Addr,
    link: String,
    pid: u32,
    start_time: u64,
}

impl Lease {
    /// Whether its runtime still runs (same PID, same start time, not a zombie).
    fn is_live(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        fields.first() != Some(&"Z")
            && fields.get(19) == Some(&self.start_time.to_string().as_str())
    }
}

/// The leases the file holds (none if there is no file).
pub(crate) fn leases() -> Vec<Lease> {
    let text = std::fs::read_to_string(LEASES).unwrap_or_default();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let parsed = match fields.as_slice() {
                [address, link, pid, start] => (|| {
                    Some(Lease {
                        address: address.split_once('/')?.0.parse().ok()?,
                        link: (*link).to_owned(),
                        pid: pid.parse().ok()?,
                        start_time: start.parse().ok()?,
                    })
                })(),
                _ => None,
            };
            parsed.unwrap_or_else(|| panic!("{LEASES}: not a lease: {line:?}\n{text}"))
        })
        .collect()
}

/// Panics unless the host is as before any run: no `keel*` link (neither the bridge
/// nor a veth end), no lease.
pub(crate) fn assert_nothing_left(after: &str) {
    let links = keel_links();
    assert!(
        links.is_empty(),
        "after {after}: links are left on the host: {links:?}"
    );
    let text = std::fs::read_to_string(LEASES).unwrap_or_default();
    assert!(
        text.trim().is_empty(),
        "after {after}: leases are left in {LEASES}:\n{text}"
    );
}

/// An IPv4 network as `(network, prefix)`.
type Net = (Ipv4Addr, u8);

pub(crate) fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

pub(crate) fn contains(net: Net, address: Ipv4Addr) -> bool {
    u32::from(address) & mask(net.1) == u32::from(net.0)
}

pub(crate) fn overlaps(a: Net, b: Net) -> bool {
    let shorter = mask(a.1.min(b.1));
    u32::from(a.0) & shorter == u32::from(b.0) & shorter
}

/// The host's routes, but the default one and keel's own: `(device, network)`.
pub(crate) fn host_routes() -> Vec<(String, Net)> {
    let text = std::fs::read_to_string("/proc/net/route").expect("read /proc/net/route");
    let hex = |field: &str| Ipv4Addr::from(u32::from_str_radix(field, 16).unwrap().to_ne_bytes());
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let prefix = u32::from(hex(fields[7])).count_ones() as u8;
            (prefix > 0 && fields[0] != BRIDGE)
                .then(|| (fields[0].to_owned(), (hex(fields[1]), prefix)))
        })
        .collect()
}

/// What keel must pick without `--subnet`: the first /24 from 10.89.0.0 up that no
/// route of the host covers.
pub(crate) fn expected_default_subnet() -> Net {
    let routes = host_routes();
    (u32::from(Ipv4Addr::new(10, 89, 0, 0))..=u32::from(Ipv4Addr::new(10, 255, 255, 0)))
        .step_by(256)
        .map(|n| (Ipv4Addr::from(n), 24))
        .find(|net| !routes.iter().any(|(_, route)| overlaps(*route, *net)))
        .expect("every /24 of 10.89.0.0 and up is routed on this host")
}

/// A /24 no route of the host covers, other than the default one, for `--subnet`.
pub(crate) fn free_subnet() -> Net {
    let routes = host_routes();
    ["10.213.7.0", "172.31.213.0", "192.168.213.0"]
        .iter()
        .map(|a| (a.parse().unwrap(), 24))
        .find(|net| !routes.iter().any(|(_, route)| overlaps(*route, *net)))
        .expect("no free /24 among the graders' candidates")
}

pub(crate) fn gateway(net: Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.0) + 1)
}

// ---------------------------------------------------------------------------------
// What a container shows, and talking to it.

/// `inet A.B.C.D/P` in `text` (a line of `ip -o -4 addr`).
pub(crate) fn inet(text: &str) -> Option<(Ipv4Addr, u8)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "inet")?;
    let (address, prefix) = words.get(at + 1)?.split_once('/')?;
    Some((address.parse().ok()?, prefix.parse().ok()?))
}

/// The address a container printed with `ip -o -4 addr show eth0`.
pub(crate) fn eth0_address(line: &str) -> Ipv4Addr {
    inet(line)
        .unwrap_or_else(|| panic!("expected `ip -o -4 addr show eth0`, got {line:?}"))
        .0
}

/// A shell script that serves `page` over HTTP on port 80 (busybox `httpd` binds its
/// port, then forks into the background, then returns), prints the container's
/// address, and runs until its stdin is closed (`read` fails at end-of-file, which
/// is how it should end: `|| true`).
pub(crate) fn server_script(page: &str) -> String {
    format!(
        "mkdir /tmp/www && echo {page} > /tmp/www/index.html && httpd -p 80 -h /tmp/www \
         && ip -o -4 addr show eth0 && {{ read x || true; }}"
    )
}

/// Starts a server container and returns it with its address (read from its output:
/// once it is printed, the server listens).
pub(crate) fn start_server(stage: &Runtime, options: &[&str], page: &str) -> (Running, Ipv4Addr) {
    let mut running = stage.run().args(options).sh(&server_script(page)).spawn();
    let line = running.read_line();
    (running, eth0_address(&line))
}

/// The body of `GET /` from `address` (the graders' client, `net::http_get`).
pub(crate) fn http_get(address: SocketAddr) -> String {
    keel_graders::net::http_get(address).unwrap_or_else(|err| panic!("{err}"))
}

/// Lets a server container end (it reads end-of-file) and checks that it did.
pub(crate) fn stop(mut server: Running) -> Output {
    server.close_stdin();
    let out = server.wait();
    out.expect_success();
    out
}

/// The TCP addresses the process `pid` listens on, in its network namespace: its
/// socket fds (`socket:[INODE]`) matched with the listening rows of
/// `/proc/PID/net/tcp` (state `0A`).
pub(crate) fn listening_on(pid: Pid) -> Vec<SocketAddrV4> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the runtime's fds")
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.ok()?.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).expect("read net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !inodes.iter().any(|i| i == inode) {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            Some(SocketAddrV4::new(ip, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}

/// The host's link notifications (`RTMGRP_LINK`): to wait for a link to go without
/// polling. Subscribed before the link can go, so that no removal is missed.
pub(crate) struct LinkEvents(OwnedFd);

impl LinkEvents {
    fn subscribe() -> Self {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .expect("socket(AF_NETLINK, NETLINK_ROUTE)");
        bind(
            fd.as_raw_fd(),
            &NetlinkAddr::new(0, libc::RTMGRP_LINK as u32),
        )
        .expect("bind to RTMGRP_LINK");
        Self(fd)
    }

    /// Waits until the host has no link called `name`; `false` if it still has one
    /// at the deadline. Each notification (any link's) wakes it to look again.
    fn wait_until_gone(&self, name: &str) -> bool {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if !keel_links().iter().any(|l| l == name) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(0) | Err(nix::Error::EINTR) => continue,
                Ok(_) => {}
                Err(err) => panic!("poll on the netlink socket: {err}"),
            }
            let mut buf = vec![0u8; 65536];
            while recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).is_ok() {}
        }
    }
}

// ---------------------------------------------------------------------------------
// The graders.

mod leases {
    use super::*;

    /// Six runtimes started at once each lease their own address, recorded with the
    /// runtime's PID; the last to end takes the bridge away.
    #[test]
    fn concurrent_runs_never_share_an_address() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let stage = turn.bridged();
        let mut runs: Vec<Running> = (0..6)
            .map(|_| {
                stage
                    .run()
                    .sh("ip -o -4 addr show eth0; read x || true")
                    .spawn()
            })
            .collect();
        let mut addresses: Vec<Ipv4Addr> = runs
            .iter_mut()
            .map(|run| eth0_address(&run.read_line()))
            .collect();
        let held = leases();
        for (run, address) in runs.iter().zip(&addresses) {
            let pid = run.pid().as_raw() as u32;
            assert!(
                held.iter().any(|l| l.pid == pid && l.address == *address),
                "{LEASES} should record {address} for the runtime {pid}: {held:?}"
            );
        }
        assert_eq!(held.len(), 6, "one lease per container: {held:?}");
        assert!(keel_links().iter().any(|l| l == BRIDGE));
        addresses.sort();
        addresses.dedup();
        assert_eq!(
            addresses.len(),
            6,
            "concurrent containers got the same address: {held:?}"
        );
        for mut run in runs {
            run.close_stdin();
            run.wait().expect_success();
        }
        assert_nothing_left("six concurrent runs");
    }

    /// A runtime killed by SIGKILL cannot clean up. Its container dies with it, the
    /// container's network namespace takes the veth pair along, and its lease stays,
    /// stale: the next run takes the same address, and leaves nothing behind.
    #[test]
    fn the_lease_of_a_runtime_killed_by_sigkill_is_handed_out_again() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let stage = turn.bridged();
        let mut killed = stage
            .run()
            .sh("ip -o -4 addr show eth0; read x || true")
            .spawn();
        let address = eth0_address(&killed.read_line());
        let pid = killed.pid().as_raw() as u32;
        let lease = leases()
            .into_iter()
            .find(|l| l.pid == pid)
            .unwrap_or_else(|| panic!("no lease of the runtime {pid} in {LEASES}"));
        assert!(
            keel_links().contains(&lease.link),
            "its veth {}",
            lease.link
        );

        let events = LinkEvents::subscribe();
        killed.signal(Signal::SIGKILL);
        killed.wait().expect_code(128 + Signal::SIGKILL as i32);
        assert!(
            events.wait_until_gone(&lease.link),
            "the veth {} of a runtime killed by SIGKILL should go with its container's \
             network namespace: {:?}",
            lease.link,
            keel_links()
        );
        assert!(
            leases().contains(&lease) && !lease.is_live(),
            "the killed runtime's lease stays, stale: {:?}",
            leases()
        );

        let next = stage.run().sh("ip -o -4 addr show eth0").output();
        next.expect_success();
        assert_eq!(
            eth0_address(&next.stdout),
            address,
            "the next run should take the stale lease's address\n{next}"
        );
        assert_nothing_left("the run after a runtime killed by SIGKILL");
    }
}

mod cleanup {
    use super::*;

    /// SIGKILL of the container's PID 1: the runtime reports it (137) and cleans up.
    #[test]
    fn nothing_is_left_after_the_container_is_killed() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let mut run = turn
            .bridged()
            .run()
            .sh("ip -o -4 addr show eth0; read x || true")
            .spawn();
        run.read_line();
        kill(run.container_pid(), Signal::SIGKILL).expect("kill the container");
        run.wait().expect_code(128 + Signal::SIGKILL as i32);
        assert_nothing_left("SIGKILL of the container");
    }

    /// SIGTERM of the runtime: passed on to the container, which exits; cleanup runs.
    #[test]
    fn nothing_is_left_after_sigterm_of_the_runtime() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let mut run = turn
            .bridged()
            .run()
            .sh("trap 'exit 42' TERM; ip -o -4 addr show eth0; read x")
            .spawn();
        run.read_line();
        run.signal(Signal::SIGTERM);
        run.wait().expect_code(42);
        assert_nothing_left("SIGTERM of the runtime");
    }

    /// Starts that fail: before anything is made (a rootfs that does not exist, after
    /// the lease was taken), after the veth was made (the published port is taken, in
    /// the parent), and in the child (a command that does not exist).
    #[test]
    fn nothing_is_left_after_a_failed_start() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();

        let out = turn
            .stage
            .run()
            .args(["--rootfs", "/nonexistent-rootfs", "--network", "bridge"])
            .cmd(["true"])
            .output();
        out.expect_code(125);
        assert_nothing_left("a run with a rootfs that does not exist");

        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
        let port = taken.local_addr().unwrap().port();
        let out = turn
            .bridged()
            .run()
            .args(["-p", &format!("127.0.0.1:{port}:80")])
            .cmd(["true"])
            .output();
        out.expect_code(125);
        assert!(out.stderr.contains("cannot listen"), "{out}");
        assert_nothing_left("a run whose published port was taken");

        let out = turn.bridged().run().cmd(["/no/such/command"]).output();
        out.expect_code(127);
        assert_nothing_left("a run whose command does not exist");
    }
}

mod refused {
    use super::*;

    /// Only root may make links on the host's network: a user is told so (125).
    #[test]
    fn bridge_as_a_user_exits_125_with_a_message() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let out = turn
            .stage
            .run()
            .args(["--network", "bridge"])
            .cmd(["true"])
            .as_nobody()
            .output();
        out.expect_code(125);
        assert!(
            out.stderr.contains("--network bridge") && out.stderr.contains("root"),
            "the message should say that --network bridge needs root\n{out}"
        );
        assert_nothing_left("a user's --network bridge");
    }

    /// Malformed, IPv6, too small or too large, host bits set, a network the host
    /// routes, or without `--network bridge`: each refused (125) with a message.
    #[test]
    fn a_bad_subnet_exits_125() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let bad = [
            "10.88.0.0",
            "10.88.0.0/",
            "10.88.0/24",
            "10.88.0.0/33",
            "10.88.0.0/31",
            "10.88.0.5/24",
            "fd00::/64",
            "bridge",
        ];
        for subnet in bad {
            let out = turn
                .bridged()
                .run()
                .args(["--subnet", subnet])
                .cmd(["true"])
                .output();
            out.expect_code(125);
            assert!(out.stderr.contains("--subnet"), "{out}");
        }
        // A network the host already routes (its own LAN, say), if it has one.
        if let Some((device, (network, prefix))) = host_routes().first() {
            let prefix = (*prefix).clamp(8, 30);
            let routed = Ipv4Addr::from(u32::from(*network) & mask(prefix));
            let out = turn
                .bridged()
                .run()
                .args(["--subnet", &format!("{routed}/{prefix}")])
                .cmd(["true"])
                .output();
            out.expect_code(125);
            assert!(
                out.stderr.contains("overlaps the host's route") && out.stderr.contains(device),
                "{out}"
            );
        }
        let free = free_subnet();
        let out = turn
            .stage
            .run()
            .arg("--rootfs")
            .arg(turn.rootfs.path())
            .args([
                "--network",
                "none",
                "--subnet",
                &format!("{}/{}", free.0, free.1),
            ])
            .cmd(["true"])
            .output();
        out.expect_code(125);
        assert!(out.stderr.contains("--network bridge"), "{out}");
        assert_nothing_left("refused subnets");
    }
}

mod doctor {
    use super::*;

    /// As root, `doctor` names the subnet the bridge would use, and a run uses it.
    #[test]
    fn doctor_names_the_subnet_a_run_uses() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let out = turn.stage.doctor().output();
        let line = out
            .lines()
            .into_iter()
            .find(|l| l.contains("--network bridge"))
            .unwrap_or_else(|| panic!("doctor says nothing of --network bridge\n{out}"))
            .to_owned();
        let expected = expected_default_subnet();
        let cidr = format!("{}/{}", expected.0, expected.1);
        assert!(
            line.contains(&format!("would use {cidr}")),
            "doctor should say that the bridge would use {cidr}: {line}"
        );
        let run = turn.bridged().run().sh("ip -o -4 addr show eth0").output();
        run.expect_success();
        assert!(
            contains(expected, eth0_address(&run.stdout)),
            "doctor said {cidr}\n{run}"
        );
        assert_nothing_left("doctor and a run");
    }
}
