//! `--network MODE`: which network the container gets, in docker's and podman's words.
//!
//! | mode | what the container sees | who may use it |
//! |---|---|---|
//! | `none` | only `lo`, up | everyone |
//! | `slirp4netns` | `tap0` 10.0.2.100/24, a user-space TCP/IP stack outside | everyone (rootless) |
//! | `pasta` | a copy of the host's addresses, a user-space stack outside | everyone (rootless) |
//! | `bridge` | `eth0` on the host's bridge `keel0`, a veth pair | root |
//! | `host` | the host's own network, no isolation | everyone |

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

/// One `--network` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A network namespace with only `lo`.
    None,
    /// slirp4netns; `allow_host_loopback` lets 10.0.2.2 reach the host's 127.0.0.1.
    Slirp4netns { allow_host_loopback: bool },
    /// pasta (from `passt`).
    Pasta,
    /// A veth pair on the bridge `keel0` (root only).
    Bridge,
    /// The host's network namespace: no network isolation at all.
    Host,
}

impl Mode {
    /// Whether the container gets a network namespace of its own.
    pub fn isolated(self) -> bool {
        self != Mode::Host
    }

    /// Whether the run keeps files on the host: a helper's socket or PID file, the
    /// bridge's lease. `none` and `host` keep none, and start faster for it.
    pub fn needs_run_dir(self) -> bool {
        matches!(self, Mode::Slirp4netns { .. } | Mode::Pasta | Mode::Bridge)
    }
}

// ANCHOR: parse_mode
impl FromStr for Mode {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let (name, options) = spec.split_once(':').unwrap_or((spec, ""));
        let mode = match name {
            "none" => Mode::None,
            "slirp4netns" => Mode::Slirp4netns {
                allow_host_loopback: false,
            },
            "pasta" => Mode::Pasta,
            "bridge" => Mode::Bridge,
            "host" => Mode::Host,
            _ => bail!(
                "--network {spec:?}: unknown mode; use none, slirp4netns, pasta, bridge (root) or host"
            ),
        };
        let mut mode = mode;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match (&mut mode, option.split_once('=')) {
                (
                    Mode::Slirp4netns {
                        allow_host_loopback,
                    },
                    Some(("allow_host_loopback", value)),
                ) => {
                    *allow_host_loopback = match value {
                        "true" => true,
                        "false" => false,
                        _ => bail!("--network {spec:?}: allow_host_loopback is true or false"),
                    }
                }
                _ => bail!(
                    "--network {spec:?}: unknown option {option:?} (slirp4netns takes allow_host_loopback=true|false)"
                ),
            }
        }
        Ok(mode)
    }
}
// ANCHOR_END: parse_mode

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::None => write!(f, "none"),
            Mode::Slirp4netns {
                allow_host_loopback: false,
            } => write!(f, "slirp4netns"),
            Mode::Slirp4netns {
                allow_host_loopback: true,
            } => write!(f, "slirp4netns:allow_host_loopback=true"),
            Mode::Pasta => write!(f, "pasta"),
            Mode::Bridge => write!(f, "bridge"),
            Mode::Host => write!(f, "host"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn modes_read_like_podman() {
        assert_eq!("none".parse::<Mode>().unwrap(), Mode::None);
        assert_eq!(
            "slirp4netns:allow_host_loopback=true"
                .parse::<Mode>()
                .unwrap(),
            Mode::Slirp4netns {
                allow_host_loopback: true
            }
        );
        assert!("slirp4netns:mtu=1500".parse::<Mode>().is_err());
        assert!("pasta:allow_host_loopback=true".parse::<Mode>().is_err());
        assert!("bridged".parse::<Mode>().is_err());
        for mode in ["none", "slirp4netns", "pasta", "bridge", "host"] {
            assert_eq!(mode.parse::<Mode>().unwrap().to_string(), mode);
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_mode_or_an_error(spec in ".{0,40}") {
            if let Ok(mode) = spec.parse::<Mode>() {
                prop_assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
            }
        }
    }
}
