//! pivot_root: the container's rootfs becomes `/`, and the host's root is gone.
//!
//! `chroot` only changes how paths are looked up for one process; the old root stays
//! mounted and reachable (the classic breakout: chroot into a subdirectory, then
//! `chdir("..")` until you are out). `pivot_root` moves the whole mount namespace onto
//! the new root; then we detach the old one, and nothing of the host is left to reach.

use anyhow::{Context, Result};
use common::explain;
use nix::mount::{MntFlags, umount2};
use nix::unistd::{chdir, fchdir, pivot_root};

use crate::at::At;

/// Makes the mount whose root `root` holds the root of our mount namespace, and
/// detaches the old root.
pub fn pivot_into(root: &At) -> Result<()> {
    // ANCHOR: pivot_root
    // EXERCISE: fchdir into root (an fd: no path is looked up), pivot_root(".", ".") so the old root lands on top of the new one, detach it with umount2(".", MNT_DETACH), then chdir("/")
    fchdir(root).with_context(|| format!("fchdir({})", root.shown()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one, at the same
    // place: no directory for the old root is needed, and the next umount removes it.
    pivot_root(".", ".").context("pivot_root(\".\", \".\")")?;
    explain::step(
        "fchdir(rootfs); pivot_root(\".\", \".\")",
        "the rootfs becomes /; the old root is stacked on top of it, for now",
    );
    umount2(".", MntFlags::MNT_DETACH)
        .context("detaching the old root (umount2(\".\", MNT_DETACH))")?;
    explain::step(
        "umount2(\".\", MNT_DETACH)",
        "detach the host's old root: from now on no path leads out of the rootfs",
    );
    chdir("/").context("chdir(\"/\")")?;
    Ok(())
    // ANCHOR_END: pivot_root
}
