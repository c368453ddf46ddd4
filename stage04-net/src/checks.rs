//! What a network mode needs, checked in the parent before anything is created, with
//! the fix in the message.

use anyhow::{Result, anyhow, bail};
use nix::unistd::AccessFlags;

use crate::PortDriver;
use crate::helper;
use crate::mode::Mode;
use crate::network::Config;

/// The TAP device's control file; slirp4netns and pasta open it inside the namespace.
pub const TUN: &str = "/dev/net/tun";

/// Refuses a configuration that cannot work here, saying why and how to fix it.
pub fn can_run(config: &Config) -> Result<()> {
    let root = nix::unistd::geteuid().is_root();
    match config.mode {
        Mode::Bridge if !root => bail!(
            "--network bridge: only root may create links on the host's network; \
             rootless, use --network slirp4netns (or pasta)"
        ),
        Mode::Slirp4netns { .. } => slirp4netns_usable()
            .map_err(|why| anyhow!("--network slirp4netns: {why}; or use --network none"))?,
        Mode::Pasta => {
            if helper::which("pasta").is_none() {
                bail!("--network pasta: pasta is not installed (apt-get install passt)");
            }
            tun_usable().map_err(|why| anyhow!("--network pasta: {why}; or use --network none"))?;
        }
        _ => {}
    }
    if let Some(subnet) = config.subnet
        && config.mode != Mode::Bridge
    {
        bail!(
            "--subnet {subnet} is the network of --network bridge, not of --network {}: \
             add --network bridge, or drop --subnet",
            config.mode
        );
    }
    if !config.publish.is_empty() {
        match (config.mode, config.driver) {
            (Mode::Host, _) => bail!(
                "-p with --network host: the container's ports already are the host's; drop -p"
            ),
            (Mode::Slirp4netns { .. }, PortDriver::Slirp4netns)
            | (Mode::Pasta, PortDriver::Pasta)
            | (_, PortDriver::Builtin) => {}
            (mode, driver) => bail!(
                "--port-driver {driver} works only with --network {driver}, not {mode}; \
                 use --port-driver builtin"
            ),
        }
    }
    Ok(())
}

/// slirp4netns is installed, and can make the container's TAP device.
pub fn slirp4netns_usable() -> Result<()> {
    if helper::which("slirp4netns").is_none() {
        bail!("slirp4netns is not installed (apt-get install slirp4netns)");
    }
    tun_usable()
}

/// slirp4netns and pasta need to open /dev/net/tun as the user.
pub fn tun_usable() -> Result<()> {
    if nix::unistd::access(TUN, AccessFlags::R_OK | AccessFlags::W_OK).is_err() {
        bail!(
            "{TUN} is not readable and writable by you, and slirp4netns/pasta need it for \
             the container's TAP device: as root, chmod 0666 {TUN} (as udev does on \
             desktop systems)"
        );
    }
    Ok(())
}

/// The files stage 4 binds over must exist in the rootfs, or be creatable there: an
/// empty file is made as a mount point (as runc does), which only works where the
/// container's root may write. Images have them all; a rootfs made by hand may not.
pub fn mount_points(rootfs: &std::path::Path) -> Result<()> {
    let etc = rootfs.join("etc");
    let missing: Vec<&str> = ["hosts", "hostname", "resolv.conf"]
        .into_iter()
        .filter(|name| std::fs::symlink_metadata(etc.join(name)).is_err())
        .collect();
    let writable = nix::unistd::access(&etc, AccessFlags::W_OK).is_ok()
        || (!etc.exists() && nix::unistd::access(rootfs, AccessFlags::W_OK).is_ok());
    if missing.is_empty() || writable {
        return Ok(());
    }
    let files: Vec<String> = missing
        .iter()
        .map(|name| etc.join(name).display().to_string())
        .collect();
    bail!(
        "--rootfs {}: the rootfs has no {}, and you may not create it there: the \
         container's /etc/hosts, /etc/hostname and /etc/resolv.conf are bound over these \
         files; as the rootfs's owner, `touch {}` (images have them)",
        rootfs.display(),
        missing
            .iter()
            .map(|n| format!("/etc/{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        files.join(" ")
    )
}
