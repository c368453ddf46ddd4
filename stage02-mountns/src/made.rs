//! Files the runtime makes for the container: from stage 4 on, `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf`.
//!
//! They may not be written into the rootfs: it is the user's directory, perhaps the
//! rootfs of other containers too. Nor need they be on the host, where a run would have
//! to make a directory and remove it again. The child writes them into a small tmpfs
//! of its own and binds each one, read-only, over its path in the rootfs, as a `-v`
//! would; each bind keeps its file alive, and everything is gone with the mount
//! namespace.
//!
//! A bind mount is cloned from a mount that is attached somewhere (Linux 6.15 also
//! clones from a detached one), so the tmpfs is attached for a moment onto the
//! rootfs's `tmp` mount point, then unmounted before the container's own /tmp covers
//! that point.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result};
use common::{MadeFile, explain};
use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};
use nix::mount::{MntFlags, umount2};

use crate::inroot::Root;
use crate::newmount;

// ANCHOR: bind_made
/// Writes `files` into a tmpfs and binds each read-only at its path in `root`.
pub fn bind(root: &Root, files: &[MadeFile]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let tmpfs = newmount::filesystem(
        "tmpfs",
        "mode=0755,size=64k",
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )?
    .attach(
        &root.mount_point("tmp")?,
        "for a moment: the files the runtime makes, to bind from",
    )?;
    for file in files {
        // Its own name, which mountinfo shows as the root of the bind.
        let name = file
            .path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{}: not the path of a file", file.path.display()))?;
        tmpfs.write_file(name, &file.text)?;
        let source = tmpfs
            .open(name)
            .with_context(|| format!("opening {name} in the tmpfs"))?;
        let target = root.create(&file.path, false)?;
        newmount::clone_at(&source, false)?.read_only()?.attach(
            &target,
            &format!("{}, made by the runtime, read-only", file.path.display()),
        )?;
    }
    // The mount is known by its fd: its path in /proc (the child's own, fresh) leads
    // to the root of this very mount, whatever the rootfs's `tmp` has become.
    let path = format!("/proc/self/fd/{}", tmpfs.as_fd().as_raw_fd());
    umount2(path.as_str(), MntFlags::MNT_DETACH)
        .with_context(|| format!("umount2({path}, MNT_DETACH)"))?;
    explain::step(
        format_args!("umount2({path}, MNT_DETACH)"),
        "the binds keep their files; the tmpfs leaves the tree",
    );
    Ok(())
}
// ANCHOR_END: bind_made
