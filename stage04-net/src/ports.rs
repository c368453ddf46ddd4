//! `-p [IP:]HOSTPORT:CTRPORT[/tcp|/udp]`: published ports, in docker's syntax.
//!
//! A container in a network namespace of its own listens where nobody outside can
//! reach it. Publishing a port makes something on the host listen on `IP:HOSTPORT`
//! and carry each connection to the container's `CTRPORT`. What that something is,
//! the port *driver*, is the subject of [`crate::forward`] and of the chapter.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One `-p` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// The host address to listen on (docker's default: every address).
    pub host_ip: IpAddr,
    /// The host port; 0 means "pick a free one" (and say which).
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    pub proto: Proto,
}

// ANCHOR: parse_publish
impl FromStr for Publish {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let usage = "write -p [IP:]HOSTPORT:CTRPORT[/tcp|/udp], e.g. -p 127.0.0.1:8080:80";
        let (ports, proto) = match spec.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Proto::Tcp),
            Some((ports, "udp")) => (ports, Proto::Udp),
            Some((_, other)) => bail!("-p {spec:?}: unknown protocol {other:?}; {usage}"),
            None => (spec, Proto::Tcp),
        };
        // An IPv6 address is written in brackets: [::1]:8080:80.
        let (host_ip, rest) = if let Some(rest) = ports.strip_prefix('[') {
            let (ip, rest) = rest.split_once("]:").with_context(|| {
                format!("-p {spec:?}: an IPv6 address goes in brackets; {usage}")
            })?;
            (Some(ip), rest)
        } else {
            match ports.splitn(3, ':').collect::<Vec<_>>().as_slice() {
                [_, _, _] => {
                    let (ip, rest) = ports.split_once(':').unwrap_or_default();
                    (Some(ip), rest)
                }
                _ => (None, ports),
            }
        };
        let host_ip = match host_ip {
            None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(ip) => ip
                .parse()
                .with_context(|| format!("-p {spec:?}: {ip:?} is not an IP address; {usage}"))?,
        };
        let (host, container) = rest
            .split_once(':')
            .with_context(|| format!("-p {spec:?}: {usage}"))?;
        let port = |text: &str, what: &str| -> Result<u16> {
            text.parse().with_context(|| {
                format!(
                    "-p {spec:?}: the {what} port {text:?} is not a number from 0 to 65535; {usage}"
                )
            })
        };
        let (host_port, container_port) = (port(host, "host")?, port(container, "container")?);
        if container_port == 0 {
            bail!("-p {spec:?}: the container port must be 1 to 65535");
        }
        Ok(Self {
            host_ip,
            host_port,
            container_port,
            proto,
        })
    }
}
// ANCHOR_END: parse_publish

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
            IpAddr::V4(ip) => write!(f, "{ip}")?,
        }
        write!(
            f,
            ":{}:{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(spec: &str) -> Publish {
        spec.parse().unwrap_or_else(|err| panic!("{spec}: {err:#}"))
    }

    #[test]
    fn ports_read_like_docker() {
        let p = parse("127.0.0.1:8080:80");
        assert_eq!(p.host_ip.to_string(), "127.0.0.1");
        assert_eq!(
            (p.host_port, p.container_port, p.proto),
            (8080, 80, Proto::Tcp)
        );
        assert_eq!(parse("8080:80").host_ip.to_string(), "0.0.0.0");
        assert_eq!(parse("0:53/udp").proto, Proto::Udp);
        assert_eq!(parse("[::1]:8080:80").host_ip.to_string(), "::1");
        assert_eq!(parse(":8080:80").host_ip.to_string(), "0.0.0.0");
        for bad in [
            "80",
            "a:80",
            "8080:0",
            "8080:80/sctp",
            "1.2.3:8080:80",
            "70000:80",
            "[::1:8080:80",
        ] {
            assert!(bad.parse::<Publish>().is_err(), "{bad} should be refused");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_port_or_an_error(spec in "[0-9a-f:.\\[\\]/tcpud]{0,30}") {
            if let Ok(p) = spec.parse::<Publish>() {
                prop_assert!(p.container_port != 0);
                prop_assert_eq!(p.to_string().parse::<Publish>().unwrap(), p);
            }
        }
    }
}
