//! The UTS namespace: the container's own hostname.
//!
//! "UTS" is the `struct utsname` that `uname(2)` returns; the namespace isolates its
//! hostname and domain name fields, so `hostname foo` inside does not rename the host.

use anyhow::{Context, Result, bail};
use common::{Child, Layer, Prepare, explain};
use nix::sched::CloneFlags;
use nix::unistd::sethostname;

/// The hostname a container gets when none is given.
pub const DEFAULT_HOSTNAME: &str = "keel";

/// UTS namespace with a hostname of our choosing.
#[derive(Debug)]
pub struct UtsNamespace {
    hostname: String,
}

impl UtsNamespace {
    /// A UTS namespace whose hostname is `hostname`.
    pub fn new(hostname: &str) -> Self {
        Self {
            hostname: hostname.to_owned(),
        }
    }
}

impl Layer for UtsNamespace {
    fn name(&self) -> &'static str {
        "uts"
    }

    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUTS
    }

    fn prepare(&mut self, cx: &mut Prepare<'_>) -> Result<()> {
        validate(&self.hostname)?;
        // Programs expect $HOSTNAME to agree with the hostname, as docker sets it.
        cx.process.setenv("HOSTNAME", self.hostname.clone());
        Ok(())
    }

    // ANCHOR: uts_child
    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        sethostname(&self.hostname).with_context(|| format!("sethostname({:?})", self.hostname))?;
        explain::step(
            format_args!("sethostname({:?})", self.hostname),
            "changes the hostname of our UTS namespace only; the host keeps its own",
        );
        Ok(())
    }
    // ANCHOR_END: uts_child
}

/// A hostname is at most 64 bytes (HOST_NAME_MAX) of letters, digits, '-' and '.'.
fn validate(hostname: &str) -> Result<()> {
    let valid_chars = hostname
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if hostname.is_empty() || hostname.len() > 64 || !valid_chars {
        bail!("--hostname {hostname:?}: a hostname is 1 to 64 letters, digits, '-' or '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn hostnames_are_checked() {
        assert!(validate("keel").is_ok());
        assert!(validate("web-1.example").is_ok());
        assert!(validate("").is_err());
        assert!(validate("bad name").is_err());
        assert!(validate(&"a".repeat(65)).is_err());
    }
}
