//! Graders of stage 4 (`stage04-net`): stage 3 plus a network namespace, and the ways
//! in and out of it.
//!
//! The graders run the stage as the ordinary user `keel-grader` (with subordinate ids;
//! see `keel_graders::users`), in the busybox rootfs, with `XDG_RUNTIME_DIR` set to a
//! directory of the test's own: everything a run keeps (its run directory, the
//! sockets of slirp4netns, the PID file of pasta) lives there, and afterwards the
//! test checks that nothing is left in it, that no process mentions it, and that the
//! published port is free again. `/dev/net/tun` is made usable (mode 0666) as udev
//! does on desktops; without root every grader here skips.
//!
//! All traffic stays on this machine: the host's loopback, or the container's own
//! addresses.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_graders::net::{self, NetReport};
use keel_graders::probe::{ProbeReport, host_namespaces};
use keel_graders::rootfs;
use keel_graders::running::wait_for_exit;
use keel_graders::runtime::ProbeAt;
use keel_graders::users::{self, TestUser};
use keel_graders::{LeakCheck, Output, Running, Runtime, Skip, need};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

const NAME: &str = "stage04-net";

/// Exit code of a refused run.
const RUNTIME_FAILED: i32 = 125;

/// The twin binary, copied where the test users can execute it.
fn binary() -> PathBuf {
    users::accessible_copy(Path::new(env!("CARGO_BIN_EXE_keel-stage04")))
}

/// The stage as `user`, in the busybox rootfs, with a runtime directory of its own.
struct Net {
    stage: Runtime,
    /// `XDG_RUNTIME_DIR` of the runs: the run directories are in `keel/` below it.
    runtime_dir: tempfile::TempDir,
}

impl Net {
    fn as_user(user: &TestUser) -> Result<Self, Skip> {
        Ok(Self::with_rootfs(user, users::accessible_busybox()?)?
            .with_probe(ProbeAt::Inside(rootfs::PROBE.into())))
    }

    /// The stage as `user` in the rootfs `rootfs`.
    fn with_rootfs(user: &TestUser, rootfs: &Path) -> Result<Self, Skip> {
        net::tun_usable()?;
        let runtime_dir = users::dir_owned_by(user.uid, user.gid, 0o700);
        let mut run_as = user.run_as();
        run_as
            .env
            .push(("XDG_RUNTIME_DIR".into(), runtime_dir.path().into()));
        let stage = Runtime::new(NAME, binary())
            .with_options([Path::new("--rootfs"), rootfs])
            .as_user(run_as);
        Ok(Self { stage, runtime_dir })
    }

    fn with_probe(mut self, at: ProbeAt) -> Self {
        self.stage = self.stage.clone().with_probe_at(at);
        self
    }

    /// Runs with a `PATH` where no helper (slirp4netns, pasta) is found.
    fn without_helpers(&mut self) {
        let mut run_as = self.stage.user().expect("a user").clone();
        for (key, value) in &mut run_as.env {
            if key == "PATH" {
                *value = "/nonexistent".into();
            }
        }
        self.stage = self.stage.clone().as_user(run_as);
    }

    /// The run directories left in the runtime directory.
    fn run_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.runtime_dir.path().join("keel"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("net-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// No run directory, and no process (slirp4netns, pasta, a dialer) that names one.
    fn assert_nothing_left(&self) {
        let dirs = self.run_dirs();
        assert!(dirs.is_empty(), "run directories left behind: {dirs:?}");
        let path = self.runtime_dir.path().to_string_lossy().into_owned();
        let left = net::processes_mentioning(&path);
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
}

/// Every test that made a `Net` checks at its end that its runs left nothing (unless it
/// failed already).
impl Drop for Net {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_nothing_left();
        }
    }
}

/// The test user with subordinate ids, and its stage.
fn rootless() -> Result<Net, Skip> {
    Net::as_user(users::with_ranges()?)
}

/// The same, with slirp4netns installed.
fn slirp() -> Result<Net, Skip> {
    net::installed("slirp4netns", "slirp4netns")?;
    rootless()
}

/// `keel-probe net` in a container with `options`.
fn net_report(stage: &Runtime, options: &[&str]) -> NetReport {
    stage.run().args(options).probe(["net"]).output().json()
}

/// A directory the user can read, with `index.html` saying `body`: a volume for httpd
/// (bound on `/root`, a directory the shared rootfs has).
fn www(user: &TestUser, body: &str) -> tempfile::TempDir {
    let dir = users::dir_owned_by(user.uid, user.gid, 0o755);
    std::fs::write(dir.path().join("index.html"), body).expect("write index.html");
    dir
}

/// Runs busybox httpd on port 80 in a container published on `127.0.0.1:port` with
/// `options`, fetches `/` from the host, and returns the body.
fn fetch_through(net: &Net, user: &TestUser, options: &[&str], port: u16) -> String {
    let site = www(user, "served from the container\n");
    let volume = format!("{}:/root:ro", site.path().display());
    let publish = format!("127.0.0.1:{port}:80");
    // httpd binds its port before it goes to the background: "ready" means listening.
    let mut running = net
        .stage
        .run()
        .args(options)
        .args(["-v", &volume, "-p", &publish])
        .sh("httpd -p 80 -h /root && echo ready && read line; exit 0")
        .spawn_ready();
    let body = net::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    running.close_stdin();
    let out = running.wait();
    out.expect_success();
    body.unwrap_or_else(|err| panic!("{err}\n{out}"))
}

// Graders kept in files of their own (tests/stage04/), one module each.
#[path = "stage04/add_veth.rs"]
mod add_veth;
#[path = "stage04/bridge.rs"]
mod bridge;
#[path = "stage04/stage03s.rs"]
mod stage03s;

/// Exercise: bring `lo` up with an rtnetlink request. A new network namespace has one
/// device, and it is down.
mod link_up {
    use super::*;

    #[test]
    fn only_lo_exists_and_it_is_up() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let report = net_report(&net.stage, &["--network", "none"]);
        assert_eq!(report.names(), ["lo"], "{report:?}");
        let lo = report.link("lo");
        assert!(lo.up, "lo should be up: {report:?}");
        assert!(
            lo.addresses.iter().any(|a| a == "127.0.0.1/8"),
            "{report:?}"
        );
        net.assert_nothing_left();
    }

    #[test]
    fn the_container_reaches_itself_on_loopback() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        // A server and a client, both inside: only a loopback that is up carries it.
        let out = net
            .stage
            .run()
            .args(["--network", "none"])
            .sh("echo inside > /tmp/i; httpd -p 127.0.0.1:8080 -h /tmp && wget -q -O - http://127.0.0.1:8080/i")
            .output();
        out.expect_success();
        assert_eq!(out.stdout, "inside\n", "{out}");
    }

    #[test]
    fn the_network_namespace_is_the_containers_own() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let report: ProbeReport = net
            .stage
            .run()
            .args(["--network", "none"])
            .probe([] as [&str; 0])
            .output()
            .json();
        assert_ne!(report.namespace("net"), host_namespaces()["net"]);
    }

    #[test]
    fn explain_shows_the_netlink_request() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--explain", "--network", "none"])
            .cmd(["true"])
            .output();
        out.expect_success();
        assert!(
            out.stderr
                .contains("netlink RTM_NEWLINK {index: 1, flags: IFF_UP}"),
            "{out}"
        );
    }
}

/// Exercise: the command line of slirp4netns, and waiting until it is ready.
mod slirp_command {
    use super::*;

    #[test]
    fn tap0_has_slirps_address_and_route() {
        let net = need!(slirp());
        let _leaks = LeakCheck::start();
        let report = net_report(&net.stage, &["--network", "slirp4netns"]);
        assert_eq!(report.names(), ["lo", "tap0"], "{report:?}");
        let tap0 = report.link("tap0");
        assert!(tap0.up, "{report:?}");
        assert!(
            tap0.addresses.iter().any(|a| a == "10.0.2.100/24"),
            "{report:?}"
        );
        assert_eq!(report.gateway.as_deref(), Some("10.0.2.2"), "{report:?}");
        net.assert_nothing_left();
    }

    #[test]
    fn the_host_loopback_is_reached_through_10_0_2_2_when_allowed() {
        let net = need!(slirp());
        let port = net::serve_on_host_loopback("from the host\n");
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "slirp4netns:allow_host_loopback=true"])
            .cmd(["wget", "-q", "-O", "-", &format!("http://10.0.2.2:{port}/")])
            .output();
        out.expect_success();
        assert_eq!(out.stdout, "from the host\n", "{out}");
    }

    #[test]
    fn the_host_loopback_is_out_of_reach_by_default() {
        let net = need!(slirp());
        let port = net::serve_on_host_loopback("from the host\n");
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "slirp4netns"])
            .cmd(["wget", "-q", "-O", "-", &format!("http://10.0.2.2:{port}/")])
            .output();
        assert_ne!(
            out.code, 0,
            "the host's 127.0.0.1 answered through 10.0.2.2\n{out}"
        );
        assert!(!out.stdout.contains("from the host"), "{out}");
    }

    #[test]
    fn resolv_conf_names_slirps_dns() {
        let net = need!(slirp());
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "slirp4netns"])
            .cmd(["cat", "/etc/resolv.conf"])
            .output();
        out.expect_success();
        assert!(out.lines().contains(&"nameserver 10.0.2.3"), "{out}");
    }

    #[test]
    fn explain_shows_slirp4netns_and_its_readiness() {
        let net = need!(slirp());
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--explain", "--network", "slirp4netns"])
            .cmd(["true"])
            .output();
        out.expect_success();
        assert!(out.stderr.contains("slirp4netns --configure"), "{out}");
        assert!(out.stderr.contains("read(ready-fd)"), "{out}");
    }
}

/// Published ports, through each driver.
mod ports {
    use super::*;

    /// Serves a page from the container through a port published with `options`
    /// (after checking that `program` of `package` is installed), and checks that the
    /// port and everything else is released afterwards.
    fn serves_through(helper: Option<(&str, &str)>, options: &[&str]) {
        let user = need!(users::with_ranges());
        let net = need!(Net::as_user(user));
        if let Some((program, package)) = helper {
            need!(net::installed(program, package));
        }
        let _leaks = LeakCheck::start();
        let port = net::free_port();
        let body = fetch_through(&net, user, options, port);
        assert_eq!(body, "served from the container\n");
        assert!(
            !net::tcp_port_taken(port),
            "port {port} is still taken after the run"
        );
        net.assert_nothing_left();
    }

    #[test]
    fn builtin_driver_serves_a_published_port() {
        serves_through(
            Some(("slirp4netns", "slirp4netns")),
            &["--network", "slirp4netns"],
        );
    }

    /// The dialer lives in the container's user and network namespaces: it must hold
    /// none of the runtime's fds (its listening ports, its socket to the child, the
    /// caller's terminal), only /dev/null and the socket it answers on.
    #[test]
    fn the_dialer_holds_only_its_socket() {
        let user = need!(users::with_ranges());
        let net = need!(Net::as_user(user));
        let _leaks = LeakCheck::start();
        let port = net::free_port();
        let publish = format!("127.0.0.1:{port}:80");
        let mut running = net
            .stage
            .run()
            .args(["--network", "none", "-p", &publish])
            .sh("echo ready; read line; exit 0")
            .spawn_ready();
        let container = running.container_pid();
        let dialers: Vec<Pid> = keel_graders::running::children_of(running.pid())
            .into_iter()
            .filter(|pid| *pid != container)
            .collect();
        assert_eq!(
            dialers.len(),
            1,
            "one dialer besides the container: {dialers:?}"
        );
        let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{}/fd", dialers[0]))
            .expect("the dialer's fds")
            .flatten()
            .map(|entry| {
                let target = std::fs::read_link(entry.path()).unwrap_or_default();
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    target.to_string_lossy().into_owned(),
                )
            })
            .collect();
        running.close_stdin();
        running.wait().expect_success();
        let others: Vec<&(String, String)> = fds
            .iter()
            .filter(|(fd, target)| {
                !(["0", "1", "2"].contains(&fd.as_str()) && target == "/dev/null")
            })
            .collect();
        assert!(
            others.len() == 1 && others[0].1.starts_with("socket:"),
            "the dialer should hold /dev/null and one socket, and holds {fds:?}"
        );
        net.assert_nothing_left();
    }

    #[test]
    fn builtin_driver_serves_a_container_without_network() {
        serves_through(None, &["--network", "none"]);
    }

    #[test]
    fn slirp4netns_driver_serves_a_published_port() {
        let options = ["--network", "slirp4netns", "--port-driver", "slirp4netns"];
        serves_through(Some(("slirp4netns", "slirp4netns")), &options);
    }

    #[test]
    fn pasta_driver_serves_a_published_port() {
        let options = ["--network", "pasta", "--port-driver", "pasta"];
        serves_through(Some(("pasta", "passt")), &options);
    }

    #[test]
    fn builtin_driver_with_pasta_serves_a_published_port() {
        serves_through(Some(("pasta", "passt")), &["--network", "pasta"]);
    }

    #[test]
    fn host_port_0_picks_a_free_port_and_says_which() {
        let user = need!(users::with_ranges());
        let net = need!(Net::as_user(user));
        let site = www(user, "picked\n");
        let _leaks = LeakCheck::start();
        let volume = format!("{}:/root:ro", site.path().display());
        let mut running = net
            .stage
            .run()
            .args(["--network", "none", "-v", &volume, "-p", "127.0.0.1:0:80"])
            .sh("httpd -p 80 -h /root && echo ready && read line; exit 0")
            .spawn();
        let said = running.read_stderr_line();
        assert_eq!(running.read_line(), "ready");
        let addr: SocketAddr = said
            .strip_suffix(" -> 80/tcp")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!("expected `127.0.0.1:PORT -> 80/tcp` on stderr, got {said:?}")
            });
        assert_ne!(addr.port(), 0);
        let body = net::http_get(addr);
        running.close_stdin();
        running.wait().expect_success();
        assert_eq!(body.as_deref(), Ok("picked\n"));
        assert!(
            !net::tcp_port_taken(addr.port()),
            "the picked port {} is still taken after the run",
            addr.port()
        );
    }

    #[test]
    fn builtin_driver_forwards_udp() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let port = net::free_port();
        let mut running = net
            .stage
            .run()
            .args([
                "--network",
                "none",
                "-p",
                &format!("127.0.0.1:{port}:5353/udp"),
            ])
            .probe(["udp-once", "5353"])
            .spawn();
        assert_eq!(running.read_line(), r#"{"listening":5353}"#);
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a UDP socket");
        socket
            .send_to(b"datagram", SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
            .expect("send a datagram");
        assert_eq!(running.read_line(), r#"{"received":"datagram"}"#);
        running.wait().expect_success();
        assert!(!net::udp_port_taken(port), "UDP port {port} is still taken");
        net.assert_nothing_left();
    }
}

/// /etc/hosts, /etc/hostname, /etc/resolv.conf: written by the runtime, bound
/// read-only, never written into the rootfs.
mod etc_files {
    use super::*;

    #[test]
    fn hosts_name_the_container_and_the_extra_hosts() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args([
                "--network",
                "none",
                "--hostname",
                "web-1",
                "--add-host",
                "db:192.0.2.7",
            ])
            .sh("cat /etc/hosts /etc/hostname")
            .output();
        out.expect_success();
        let lines = out.lines();
        assert!(lines.contains(&"127.0.0.1\tlocalhost"), "{out}");
        assert!(lines.iter().any(|l| l.ends_with("\tweb-1")), "{out}");
        assert!(lines.contains(&"192.0.2.7\tdb"), "{out}");
        assert_eq!(lines.last(), Some(&"web-1"), "{out}");
    }

    #[test]
    fn dns_option_sets_the_name_servers() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "none", "--dns", "192.0.2.53"])
            .cmd(["cat", "/etc/resolv.conf"])
            .output();
        out.expect_success();
        assert!(out.lines().contains(&"nameserver 192.0.2.53"), "{out}");
    }

    #[test]
    fn the_files_are_read_only() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "none"])
            .sh("for f in hosts hostname resolv.conf; do echo x >> /etc/$f && echo wrote $f; done; true")
            .output();
        out.expect_success();
        assert!(!out.stdout.contains("wrote"), "{out}");
    }

    /// Under root's `--userns auto`, container root is another host uid: it must still
    /// reach the files the runtime wrote for it.
    #[test]
    fn root_with_userns_auto_reads_its_files() {
        need!(users::require_root());
        let busybox = need!(rootfs::busybox());
        let stage = Runtime::new(NAME, env!("CARGO_BIN_EXE_keel-stage04"))
            .with_options([Path::new("--rootfs"), busybox]);
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .args([
                "--userns",
                "auto",
                "--network",
                "none",
                "--hostname",
                "auto-1",
            ])
            .sh("cat /etc/hostname; id -u")
            .output();
        out.expect_success();
        assert_eq!(out.stdout, "auto-1\n0\n", "{out}");
    }

    /// The rootfs belongs to the user, who makes its /etc/hosts a symlink to a file on
    /// the host (for root's runs, /etc/shadow would do). A runtime that writes the file,
    /// or binds over it after following the link on the host, changes the host's file.
    #[test]
    fn a_symlink_out_of_the_rootfs_is_not_followed() {
        let user = need!(users::with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        let victim = users::dir_owned_by(user.uid, user.gid, 0o755);
        let target = victim.path().join("victim");
        std::fs::write(&target, "the host's file\n").expect("write the victim");
        let hosts = rootfs.path().join("etc/hosts");
        std::fs::remove_file(&hosts).expect("remove the rootfs's /etc/hosts");
        std::os::unix::fs::symlink(&target, &hosts).expect("plant the symlink");
        let net = need!(Net::with_rootfs(user, rootfs.path()));
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "none"])
            .sh("echo written > /etc/hosts; cat /etc/hosts")
            .output();
        out.expect_code(RUNTIME_FAILED);
        assert!(
            out.stderr.contains("/etc/hosts in the rootfs is a symlink")
                && out.stderr.contains("replace the link"),
            "the error should name the link and the fix\n{out}"
        );
        assert_eq!(
            std::fs::read_to_string(&target).expect("read the victim"),
            "the host's file\n"
        );
        assert_eq!(std::fs::read_link(&hosts).expect("the link"), target);
    }

    /// `none` keeps nothing on the host: the files are made in the container's own
    /// tmpfs, which is bound from and then leaves the tree (one mount on /tmp).
    #[test]
    fn none_keeps_no_files_on_the_host() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let mut running = net
            .stage
            .run()
            .args(["--network", "none"])
            .sh("grep -E ' /(tmp|etc/hosts|etc/hostname|etc/resolv.conf) ' /proc/self/mountinfo; echo ready; read line")
            .spawn();
        let mut mounts = Vec::new();
        loop {
            let line = running.read_line();
            if line == "ready" {
                break;
            }
            mounts.push(line);
        }
        let dirs = net.run_dirs();
        running.write_stdin(b"\n");
        running.wait().expect_success();
        assert!(
            dirs.is_empty(),
            "a run directory for --network none: {dirs:?}"
        );
        let at = |point: &str| {
            mounts
                .iter()
                .filter(|m| m.split(' ').nth(4) == Some(point))
                .count()
        };
        assert_eq!(at("/tmp"), 1, "one mount on /tmp: {mounts:#?}");
        for file in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
            let bind = mounts
                .iter()
                .find(|m| m.split(' ').nth(4) == Some(file))
                .unwrap_or_else(|| panic!("{file} is not bound: {mounts:#?}"));
            assert!(
                bind.contains(" - tmpfs ")
                    && bind.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")),
                "{file} should be a read-only bind from a tmpfs: {bind}"
            );
        }
    }

    /// A rootfs without the files gets empty mount points for them; a run that never
    /// starts removes them again.
    #[test]
    fn mount_points_of_a_failed_run_are_removed() {
        let user = need!(users::with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        let etc = rootfs.path().join("etc");
        let names = ["hosts", "hostname", "resolv.conf"];
        for name in names {
            let _ = std::fs::remove_file(etc.join(name));
        }
        let net = need!(Net::with_rootfs(user, rootfs.path()));
        let _leaks = LeakCheck::start();
        let there = || names.map(|name| etc.join(name).exists());
        net.stage
            .run()
            .args(["--network", "none"])
            .cmd(["/no/such/program"])
            .output()
            .expect_code(127);
        assert_eq!(
            there(),
            [false; 3],
            "a run that never started left mount points"
        );
        let ran = net
            .stage
            .run()
            .args(["--network", "none"])
            .cmd(["cat", "/etc/hostname"])
            .output();
        ran.expect_success();
        assert_eq!(ran.stdout, "keel\n", "{ran}");
        assert_eq!(
            there(),
            [true; 3],
            "a run that started keeps its mount points"
        );
    }

    #[test]
    fn the_rootfs_files_are_left_as_they_were() {
        let user = need!(users::with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        let etc = rootfs.path().join("etc");
        for name in ["hosts", "hostname", "resolv.conf"] {
            std::fs::write(etc.join(name), format!("the rootfs's own {name}\n")).expect("write");
        }
        let net = need!(Net::with_rootfs(user, rootfs.path()));
        let _leaks = LeakCheck::start();
        let out = net
            .stage
            .run()
            .args(["--network", "none", "--hostname", "other"])
            .cmd(["cat", "/etc/hostname"])
            .output();
        out.expect_success();
        assert_eq!(out.stdout, "other\n", "{out}");
        for name in ["hosts", "hostname", "resolv.conf"] {
            assert_eq!(
                std::fs::read_to_string(etc.join(name)).expect("read"),
                format!("the rootfs's own {name}\n"),
                "the rootfs's /etc/{name} was written"
            );
        }
    }
}

/// Nothing is left after a run, however it ends.
mod cleanup {
    use super::*;

    /// `--network slirp4netns` with a published port: both a helper and the forwarder.
    fn options(port: u16) -> Vec<String> {
        vec![
            "--network".into(),
            "slirp4netns".into(),
            "-p".into(),
            format!("127.0.0.1:{port}:80"),
        ]
    }

    /// Runs `script` with a helper and a published port, lets `end` end the run once
    /// the script said `ready`, expects `code`, and checks that the port is free and
    /// nothing is left.
    fn ends_clean(script: &str, end: impl FnOnce(&mut Running), code: i32) {
        let net = need!(slirp());
        let _leaks = LeakCheck::start();
        let port = net::free_port();
        let mut running = net.stage.run().args(options(port)).sh(script).spawn_ready();
        end(&mut running);
        running.wait().expect_code(code);
        assert!(
            !net::tcp_port_taken(port),
            "port {port} is still taken after the run"
        );
        net.assert_nothing_left();
    }

    #[test]
    fn after_an_exit() {
        ends_clean("echo ready; read line; exit 0", Running::close_stdin, 0);
    }

    #[test]
    fn after_sigkill_of_the_container() {
        let kill = |running: &mut Running| {
            nix::sys::signal::kill(running.container_pid(), Signal::SIGKILL).expect("kill");
        };
        ends_clean("echo ready; read line", kill, 128 + Signal::SIGKILL as i32);
    }

    #[test]
    fn after_sigterm_of_the_runtime() {
        let term = |running: &mut Running| running.signal(Signal::SIGTERM);
        ends_clean("trap 'exit 3' TERM; echo ready; read line", term, 3);
    }

    /// SIGKILL leaves the runtime no time for cleanup: slirp4netns exits when the
    /// runtime's end of its exit fd closes, the dialer dies of its parent-death signal,
    /// the port goes with the runtime's sockets, and the next run removes the run
    /// directory the killed one left.
    #[test]
    fn after_sigkill_of_the_runtime() {
        let net = need!(slirp());
        let _leaks = LeakCheck::start();
        let port = net::free_port();
        let running = net
            .stage
            .run()
            .args(options(port))
            .sh("echo ready; read line")
            .spawn_ready();
        let path = net.runtime_dir.path().to_string_lossy().into_owned();
        let helpers = net::processes_mentioning(&path);
        assert!(!helpers.is_empty(), "slirp4netns should be running");
        running.signal(Signal::SIGKILL);
        let _ = running.wait();
        for (pid, cmdline) in helpers {
            assert!(
                wait_for_exit(Pid::from_raw(pid), Duration::from_secs(10)),
                "{cmdline} outlived the runtime"
            );
        }
        assert!(!net::tcp_port_taken(port));
        assert_eq!(net.run_dirs().len(), 1, "the killed run's directory");
        // A run that keeps a run directory (slirp4netns's socket) sweeps the old ones.
        net.stage
            .run()
            .args(["--network", "slirp4netns"])
            .cmd(["true"])
            .output()
            .expect_success();
        net.assert_nothing_left();
    }

    #[test]
    fn after_a_failed_start() {
        let net = need!(slirp());
        let _leaks = LeakCheck::start();
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = taken.local_addr().expect("address").port();
        let out = net.stage.run().args(options(port)).cmd(["true"]).output();
        out.expect_code(RUNTIME_FAILED);
        assert!(out.stderr.contains(&format!("127.0.0.1:{port}")), "{out}");
        assert!(
            out.stderr.contains("taken"),
            "the error should say the port is taken\n{out}"
        );
        net.assert_nothing_left();
    }
}

/// Bad input: a clear error, exit 125, nothing left.
mod bad_input {
    use super::*;

    fn refused(net: &Net, options: &[&str], says: &str) -> Output {
        let out = net.stage.run().args(options).cmd(["true"]).output();
        out.expect_code(RUNTIME_FAILED);
        assert!(
            out.stderr.contains(says),
            "the error should say {says:?}\n{out}"
        );
        net.assert_nothing_left();
        out
    }

    #[test]
    fn a_malformed_publish() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        refused(&net, &["-p", "80"], "HOSTPORT:CTRPORT");
        refused(&net, &["-p", "8080:0"], "container port");
        refused(&net, &["-p", "8080:80/sctp"], "sctp");
    }

    #[test]
    fn an_unknown_network() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        refused(&net, &["--network", "bridged"], "unknown mode");
        refused(
            &net,
            &["--network", "slirp4netns:mtu=9000"],
            "unknown option",
        );
    }

    #[test]
    fn bridge_as_a_user() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        refused(&net, &["--network", "bridge"], "only root");
    }

    #[test]
    fn publish_with_the_hosts_network() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        refused(&net, &["--network", "host", "-p", "8080:80"], "drop -p");
    }

    #[test]
    fn a_port_driver_of_another_network() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        refused(
            &net,
            &[
                "--network",
                "none",
                "--port-driver",
                "slirp4netns",
                "-p",
                "8080:80",
            ],
            "--port-driver builtin",
        );
    }

    #[test]
    fn slirp4netns_missing() {
        let user = need!(users::with_ranges());
        let mut net = need!(Net::as_user(user));
        net.without_helpers();
        let _leaks = LeakCheck::start();
        refused(
            &net,
            &["--network", "slirp4netns"],
            "apt-get install slirp4netns",
        );
    }
}

/// No `--network`: slirp4netns where it can work, else `none` with a notice saying why.
mod default_network {
    use super::*;

    #[test]
    fn is_slirp4netns_when_installed() {
        need!(net::installed("slirp4netns", "slirp4netns"));
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let out = net.stage.run().probe(["net"]).output();
        out.expect_success();
        let report: NetReport = out.json();
        assert_eq!(report.names(), ["lo", "tap0"], "{report:?}");
        assert!(!out.stderr.contains("notice"), "{out}");
        net.assert_nothing_left();
    }

    #[test]
    fn is_none_with_a_notice_without_slirp4netns() {
        let mut net = need!(rootless());
        net.without_helpers();
        let _leaks = LeakCheck::start();
        let out = net.stage.run().probe(["net"]).output();
        out.expect_success();
        let report: NetReport = out.json();
        assert_eq!(report.names(), ["lo"], "{report:?}");
        assert!(
            out.stderr.contains("slirp4netns is not installed")
                && out.stderr.contains("apt-get install slirp4netns"),
            "the notice should say why there is no network, and how to get one\n{out}"
        );
        net.assert_nothing_left();
    }
}

/// Where a run keeps its files, when the user has no `XDG_RUNTIME_DIR`: `/tmp/keel-UID`,
/// on ground every user shares.
mod run_directory {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// The planted symlink or directory, removed however the test ends.
    struct Planted(PathBuf);

    impl Drop for Planted {
        fn drop(&mut self) {
            if std::fs::remove_file(&self.0).is_err() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// `/tmp/keel-UID` of the test user: one planted thing at a time.
    static TMP_DIR: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Another user made `/tmp/keel-UID` first: `plant` makes it at the path it is
    /// given and returns the directory where what the runtime writes would land. The
    /// run must be refused, with the path and the fix, and write nothing there.
    fn planted_in_tmp_is_refused(plant: impl FnOnce(&Path) -> PathBuf) {
        need!(users::require_root());
        let user = need!(users::with_ranges());
        let busybox = need!(users::accessible_busybox());
        // slirp4netns keeps its API socket in the run directory (`none` needs none).
        need!(net::installed("slirp4netns", "slirp4netns"));
        need!(net::tun_usable());
        let _turn = TMP_DIR.lock().unwrap_or_else(|p| p.into_inner());
        let planted = PathBuf::from(format!("/tmp/keel-{}", user.uid));
        match std::fs::symlink_metadata(&planted) {
            // Left by an earlier run of the user's: the user's own, and empty of runs.
            Ok(meta) if meta.is_dir() && meta.uid() == user.uid => {
                std::fs::remove_dir_all(&planted).expect("remove the user's old run directory")
            }
            Ok(_) => panic!("{} exists and is not the test user's", planted.display()),
            Err(_) => {}
        }
        let _planted = Planted(planted.clone());
        let landing = plant(&planted);
        let stage = Runtime::new(NAME, binary())
            .with_options([Path::new("--rootfs"), busybox])
            .as_user(user.run_as());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .args(["--network", "slirp4netns"])
            .cmd(["true"])
            .output();
        let written: Vec<_> = std::fs::read_dir(&landing)
            .expect("the attacker's directory")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        out.expect_code(RUNTIME_FAILED);
        assert!(
            out.stderr.contains(&planted.display().to_string())
                && out.stderr.contains("XDG_RUNTIME_DIR"),
            "the error should name {} and the fix\n{out}",
            planted.display()
        );
        assert!(
            written.is_empty(),
            "the runtime wrote into the attacker's directory: {written:?}"
        );
    }

    /// A symlink to a directory of the attacker's, mode 0777.
    #[test]
    fn a_symlink_planted_in_tmp_is_refused() {
        let attacker = tempfile::tempdir().expect("the attacker's directory");
        std::fs::set_permissions(attacker.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod 0777");
        planted_in_tmp_is_refused(|planted| {
            std::os::unix::fs::symlink(attacker.path(), planted).expect("plant the symlink");
            attacker.path().to_owned()
        });
    }

    /// A real directory, the attacker's (root's, here), mode 0777.
    #[test]
    fn a_directory_of_someone_else_in_tmp_is_refused() {
        planted_in_tmp_is_refused(|planted| {
            std::fs::create_dir(planted).expect("plant the directory");
            std::fs::set_permissions(planted, std::fs::Permissions::from_mode(0o777))
                .expect("chmod 0777");
            planted.to_owned()
        });
    }
}

/// The host's own loopback, out of the container's reach with pasta too.
mod host_loopback {
    use super::*;

    /// Newer pasta maps its gateway's address to the host's loopback for any new
    /// connection (`--map-host-loopback`, by default the gateway); keel asks it not to
    /// (`--no-map-gw`), as slirp4netns's 10.0.2.2 is refused by default. (pasta of
    /// 2023 maps only replies to connections the host started, so there the attack
    /// fails with or without the flag.)
    #[test]
    fn pasta_keeps_the_host_loopback_out_of_reach() {
        need!(net::installed("pasta", "passt"));
        let net = need!(rootless());
        let port = net::serve_on_host_loopback("from the host\n");
        let _leaks = LeakCheck::start();
        let report = net_report(&net.stage, &["--network", "pasta"]);
        let gateway = report
            .gateway
            .clone()
            .unwrap_or_else(|| panic!("pasta copies the host's default route: {report:?}"));
        let out = net
            .stage
            .run()
            .args(["--network", "pasta"])
            .sh(&format!(
                "wget -q -T 5 -O - http://{gateway}:{port}/; echo \"wget $?\""
            ))
            .output();
        out.expect_success();
        assert!(
            !out.stdout.contains("from the host"),
            "the container reached the host's loopback through {gateway}\n{out}"
        );
        net.assert_nothing_left();
    }
}

/// The host's network, shared.
mod host_network {
    use super::*;

    /// An abstract unix socket (`@NAME`, no file) of the host, made by the test, and
    /// whether a container with `network` connects to it.
    fn reaches_the_hosts_abstract_socket(net: &Net, network: &str) -> bool {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("keel-grader-{}-{network}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("an abstract name");
        let _listener =
            std::os::unix::net::UnixListener::bind_addr(&address).expect("bind the socket");
        let out = net
            .stage
            .run()
            .args(["--network", network])
            .probe(["abstract", &name])
            .output();
        out.expect_success();
        let report: serde_json::Value = out.json();
        report["connected"]
            .as_bool()
            .unwrap_or_else(|| panic!("the probe's answer: {out}"))
    }

    /// containerd's shim listened on an abstract socket, and every container started
    /// with the host's network could connect to it and drive containerd as root
    /// (CVE-2020-15257). Abstract names belong to a network namespace: a container with
    /// a namespace of its own reaches none of the host's...
    #[test]
    fn an_abstract_socket_of_the_host_is_out_of_reach() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        assert!(!reaches_the_hosts_abstract_socket(&net, "none"));
        net.assert_nothing_left();
    }

    /// ...and `--network host` gives that up, with the rest of the host's network.
    #[test]
    fn with_the_hosts_network_the_hosts_abstract_sockets_are_reached() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        assert!(reaches_the_hosts_abstract_socket(&net, "host"));
        net.assert_nothing_left();
    }

    #[test]
    fn the_container_is_in_the_hosts_network_namespace() {
        let net = need!(rootless());
        let _leaks = LeakCheck::start();
        let report: ProbeReport = net
            .stage
            .run()
            .args(["--network", "host"])
            .probe([] as [&str; 0])
            .output()
            .json();
        assert_eq!(report.namespace("net"), host_namespaces()["net"]);
    }
}

mod doctor {
    use super::*;

    #[test]
    fn doctor_names_the_network_helpers() {
        let net = need!(rootless());
        let out = net.stage.doctor().output();
        for what in ["net namespace", "slirp4netns", "pasta", "/dev/net/tun"] {
            assert!(
                out.stdout.contains(what),
                "doctor should check {what}\n{out}"
            );
        }
    }
}
