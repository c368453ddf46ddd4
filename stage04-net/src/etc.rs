//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`: who the container is on its
//! network, and where it asks for names.
//!
//! They depend on the network the container gets (slirp4netns's DNS is 10.0.2.3, a
//! bridge's is the host's), so the runtime writes them into its own state directory
//! and binds them read-only over the rootfs's: the rootfs, which is the user's
//! directory, is never written into (as docker keeps them in its container directory).

use std::fmt::Write as _;
use std::net::IpAddr;

use anyhow::{Context, Result, bail};

/// One `--add-host NAME:IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub ip: IpAddr,
}

impl std::str::FromStr for ExtraHost {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        // NAME:IP, where IP may be IPv6 (with colons of its own).
        let (name, ip) = spec
            .split_once(':')
            .with_context(|| format!("--add-host {spec:?}: write --add-host NAME:IP"))?;
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid {
            bail!("--add-host {spec:?}: {name:?} is not a host name (letters, digits, '-', '.')");
        }
        let ip = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("--add-host {spec:?}: {ip:?} is not an IP address"))?;
        Ok(Self {
            name: name.to_owned(),
            ip,
        })
    }
}

// ANCHOR: hosts
/// `/etc/hosts`: localhost, the container's own name on its address, and `--add-host`.
pub fn hosts(hostname: &str, address: IpAddr, extra: &[ExtraHost]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let _ = writeln!(text, "{address}\t{hostname}");
    for host in extra {
        let _ = writeln!(text, "{}\t{}", host.ip, host.name);
    }
    text
}
// ANCHOR_END: hosts

/// `/etc/resolv.conf` with `servers`, and the host's search domains and options.
pub fn resolv_conf(servers: &[IpAddr], host_resolv_conf: &str) -> String {
    let mut text = String::new();
    for line in host_resolv_conf.lines() {
        let word = line.split_whitespace().next().unwrap_or_default();
        if matches!(word, "search" | "domain" | "options") {
            let _ = writeln!(text, "{line}");
        }
    }
    for server in servers {
        let _ = writeln!(text, "nameserver {server}");
    }
    text
}

/// The host's name servers that a container can reach: a loopback resolver
/// (systemd-resolved's 127.0.0.53) answers only on the host's own `lo`.
pub fn reachable_servers(host_resolv_conf: &str) -> Vec<IpAddr> {
    host_resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            words.next()?.parse::<IpAddr>().ok()
        })
        .filter(|ip| !ip.is_loopback())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_the_container_and_the_extra_hosts() {
        let extra: ExtraHost = "db:10.0.0.5".parse().unwrap();
        let text = hosts("web-1", "10.0.2.100".parse().unwrap(), &[extra]);
        assert!(text.contains("10.0.2.100\tweb-1\n"));
        assert!(text.ends_with("10.0.0.5\tdb\n"));
        assert!("db".parse::<ExtraHost>().is_err());
        assert!("d b:1.2.3.4".parse::<ExtraHost>().is_err());
        assert!("db:1.2.3".parse::<ExtraHost>().is_err());
        assert_eq!(
            "v6:[::1]".parse::<ExtraHost>().unwrap().ip.to_string(),
            "::1"
        );
    }

    #[test]
    fn loopback_resolvers_are_left_out() {
        let host =
            "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n";
        let servers = reachable_servers(host);
        assert_eq!(servers, ["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            resolv_conf(&servers, host),
            "search example.org\noptions edns0\nnameserver 192.0.2.53\n"
        );
    }
}
