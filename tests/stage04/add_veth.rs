//! The graders of exercise `add_veth` (stage04-net/src/bridge.rs): what a container on
//! the bridge sees through its veth pair, and what reaches it over `keel0`. Without
//! the pair, the container has no `eth0`, and nothing reaches it. The helpers are the
//! bridge graders' (`bridge.rs`).

use std::net::{Ipv4Addr, SocketAddr};

use keel_graders::{LeakCheck, need};

use crate::bridge::*;

mod inside {
    use super::*;

    /// `eth0` holds an address of the default subnet (the first /24 from 10.89.0.0/24
    /// up that the host does not route), the default route leads to the subnet's
    /// first address, `lo` is up, and /etc/hosts and /etc/resolv.conf say so.
    #[test]
    fn eth0_has_an_address_of_the_subnet_and_a_default_route_via_the_gateway() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let subnet = expected_default_subnet();
        let out = turn
            .bridged()
            .run()
            .args(["--hostname", "web-1"])
            .sh(
                "ip -o -4 addr show eth0; ip route; ip -o link show lo; cat /etc/hosts; \
                 grep nameserver /etc/resolv.conf || true",
            )
            .output();
        out.expect_success();
        let (address, prefix) = inet(&out.stdout).unwrap_or_else(|| panic!("no inet\n{out}"));
        assert!(
            contains(subnet, address) && prefix == 24,
            "eth0 should hold an address of {}/{} (the first /24 from 10.89.0.0 up that the \
             host does not route), not {address}/{prefix}\n{out}",
            subnet.0,
            subnet.1
        );
        assert!(
            u32::from(address) > u32::from(gateway(subnet)),
            "containers get the addresses after the gateway\n{out}"
        );
        let default = format!("default via {} dev eth0", gateway(subnet));
        assert!(
            out.lines().iter().any(|l| l.trim_end() == default),
            "expected the route `{default}`\n{out}"
        );
        assert!(
            out.lines()
                .iter()
                .any(|l| l.starts_with("1: lo:") && l.contains(",UP")),
            "lo should be up\n{out}"
        );
        assert!(
            out.lines().contains(&format!("{address}\tweb-1").as_str()),
            "/etc/hosts should name the container's address\n{out}"
        );
        let host_servers: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|s| s.trim().to_owned())
            .filter(|s| {
                s.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| !ip.is_loopback())
            })
            .collect();
        let servers: Vec<String> = out
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|s| s.trim().to_owned())
            .collect();
        assert_eq!(
            servers, host_servers,
            "/etc/resolv.conf should list the host's name servers but loopback ones\n{out}"
        );
        assert_nothing_left("a run on the default subnet");
    }

    /// `--subnet` gives the network: the first container is `.2`, the gateway `.1`.
    #[test]
    fn subnet_chooses_the_network() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let subnet = free_subnet();
        let cidr = format!("{}/{}", subnet.0, subnet.1);
        let out = turn
            .bridged()
            .run()
            .args(["--subnet", &cidr])
            .sh("ip -o -4 addr show eth0; ip route")
            .output();
        out.expect_success();
        let expected = Ipv4Addr::from(u32::from(subnet.0) + 2);
        assert_eq!(
            inet(&out.stdout),
            Some((expected, 24)),
            "--subnet {cidr}: the first container is {expected}/24\n{out}"
        );
        let default = format!("default via {} dev eth0", gateway(subnet));
        assert!(
            out.lines().iter().any(|l| l.trim_end() == default),
            "expected the route `{default}`\n{out}"
        );
        assert_nothing_left(&format!("a run with --subnet {cidr}"));
    }

    /// Each request to the kernel is told, in the book's words.
    #[test]
    fn explain_names_every_netlink_request() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        // A runtime killed by SIGKILL leaves keel0 behind with a stale lease; the next
        // run hands the lease out again and deletes the bridge when it ends. One such
        // run first, so that the run below makes the bridge itself.
        if keel_links().iter().any(|link| link == BRIDGE) {
            turn.bridged().run().cmd(["true"]).output().expect_success();
            assert_nothing_left("the run that cleared a bridge left by a killed runtime");
        }
        let out = turn.bridged().run().arg("--explain").cmd(["true"]).output();
        out.expect_success();
        for request in [
            "RTM_NEWLINK {IFLA_IFNAME: \"keel0\", IFLA_LINKINFO: {kind: \"bridge\"}",
            "kind: \"veth\"",
            "IFLA_NET_NS_PID",
            "IFLA_MASTER",
            "RTM_NEWADDR",
            "RTM_NEWROUTE",
            "RTM_DELLINK",
            LEASES,
        ] {
            assert!(
                out.stderr.contains(request),
                "--explain should show {request}\n{out}"
            );
        }
        assert_nothing_left("a run with --explain");
    }
}

mod reach {
    use super::*;

    /// One container serves, another fetches from it over keel0; the host reaches the
    /// server's address too, through keel0's route.
    #[test]
    fn two_containers_reach_each_other_and_the_host_reaches_them() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let stage = turn.bridged();
        let (server, address) = start_server(&stage, &[], "served-by-a-container");
        let client = stage
            .run()
            .sh(&format!(
                "ip -o -4 addr show eth0; wget -q -O - http://{address}/"
            ))
            .output();
        client.expect_success();
        let client_address = eth0_address(client.lines()[0]);
        assert_ne!(
            client_address, address,
            "two containers at once must not share an address\n{client}"
        );
        assert!(
            client.stdout.contains("served-by-a-container"),
            "the second container should fetch the first's page over keel0\n{client}"
        );
        let answer = http_get(SocketAddr::from((address, 80)));
        assert!(
            answer.contains("served-by-a-container"),
            "the host should reach {address}:80 through keel0, got {answer:?}"
        );
        stop(server);
        assert_nothing_left("a server and a client");
    }

    /// `-p 127.0.0.1:0:80`: the built-in forwarder listens on a port of the host's
    /// loopback and connects to the container's address.
    #[test]
    fn a_published_port_serves_from_the_container() {
        let turn = need!(turn());
        let _leaks = LeakCheck::start();
        let (server, _) = start_server(
            &turn.bridged(),
            &["-p", "127.0.0.1:0:80"],
            "published-from-a-container",
        );
        // The forwarder listens before the container starts: by the time the
        // container printed its address, the runtime holds the port.
        let ports = listening_on(server.pid());
        let [port] = ports[..] else {
            panic!("the runtime should listen on one port, not {ports:?}");
        };
        assert_eq!(*port.ip(), Ipv4Addr::LOCALHOST, "-p 127.0.0.1:0:80");
        let answer = http_get(SocketAddr::V4(port));
        assert!(
            answer.contains("published-from-a-container"),
            "{port} should serve the container's port 80, got {answer:?}"
        );
        stop(server);
        assert_nothing_left("a run with -p");
    }
}
