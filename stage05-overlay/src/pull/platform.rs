//! Platforms: which of a multi-platform image's manifests this machine can run.
//!
//! An image index (docker's "manifest list") lists one manifest per platform, named
//! as Go names them (`GOOS`/`GOARCH`, plus a CPU variant for ARM): `linux/amd64`,
//! `linux/arm64/v8`, `linux/arm/v7`. Rust names architectures differently
//! (`x86_64`, `aarch64`), so this machine's platform is translated here.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

/// An operating system, a CPU architecture and, for ARM, its variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...: Go's `GOARCH` names.
    pub architecture: String,
    /// `v7`, `v8`, ...: only ARM images say one.
    pub variant: Option<String>,
}

impl Default for Platform {
    /// This machine's platform.
    fn default() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None), // s390x, riscv64, mips64: the same in both.
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }
}

impl Platform {
    /// Whether a manifest for `offered` runs here. A variant is compared only when both
    /// say one: an `arm64` manifest without a variant is meant for every arm64 CPU.
    pub fn matches(&self, offered: &Platform) -> bool {
        self.os == offered.os
            && self.architecture == offered.architecture
            && match (&self.variant, &offered.variant) {
                (Some(ours), Some(theirs)) => ours == theirs,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = anyhow::Error;
    /// `os/arch[/variant]`, as `--platform` takes it.
    fn from_str(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, architecture, variant) = match parts[..] {
            [os, arch] => (os, arch, None),
            [os, arch, variant] => (os, arch, Some(variant)),
            _ => bail!("platform {text:?} is not os/arch[/variant], such as linux/amd64"),
        };
        if [os, architecture]
            .iter()
            .chain(&variant)
            .any(|p| p.is_empty())
        {
            bail!("platform {text:?} has an empty part: write it as os/arch[/variant]");
        }
        Ok(Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        text.parse().unwrap()
    }

    #[test]
    fn this_machine_is_named_as_go_names_it() {
        let host = Platform::default();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }

    #[test]
    fn variants_are_compared_only_when_both_say_one() {
        assert!(platform("linux/arm64/v8").matches(&platform("linux/arm64")));
        assert!(platform("linux/arm64").matches(&platform("linux/arm64/v8")));
        assert!(!platform("linux/arm/v7").matches(&platform("linux/arm/v6")));
        assert!(!platform("linux/amd64").matches(&platform("linux/arm64")));
        assert!(!platform("linux/amd64").matches(&platform("windows/amd64")));
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(platform("linux/arm/v7").to_string(), "linux/arm/v7");
        for bad in ["linux", "linux/", "a/b/c/d", "/amd64", "linux/arm/"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
