//! Small, explained wrappers around mount(2): every other module speaks through these,
//! so `--explain` shows each mount exactly once, with its reason.

use std::path::Path;

use anyhow::{Context, Result};
use common::explain;
use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};

/// Mounts a new instance of `fstype` (proc, tmpfs, sysfs, devpts, mqueue) at `target`.
pub fn mount_fs(
    fstype: &str,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
    why: &str,
) -> Result<()> {
    mount(Some(fstype), target, Some(fstype), flags, data).with_context(|| {
        format!(
            "mount({fstype:?}, {target:?}, {fstype:?}, {})",
            explain::flags(&flags)
        )
    })?;
    explain::step(
        format_args!(
            "mount({fstype:?}, {target:?}, {fstype:?}, {}, {:?})",
            explain::flags(&flags),
            data.unwrap_or("")
        ),
        why,
    );
    Ok(())
}

/// Makes `source` visible at `target` too (a bind mount); `recursive` takes the
/// mounts below `source` along, as `mount --rbind` does.
pub fn bind(source: &Path, target: &Path, recursive: bool, why: &str) -> Result<()> {
    let flags = if recursive {
        MsFlags::MS_BIND | MsFlags::MS_REC
    } else {
        MsFlags::MS_BIND
    };
    mount(Some(source), target, None::<&str>, flags, None::<&str>).with_context(|| {
        format!(
            "bind-mounting {source:?} on {target:?} ({})",
            explain::flags(&flags)
        )
    })?;
    explain::step(
        format_args!(
            "mount({source:?}, {target:?}, NULL, {})",
            explain::flags(&flags)
        ),
        why,
    );
    Ok(())
}

// ANCHOR: remount_readonly
/// Makes the mount at `target` read-only.
///
/// A bind mount cannot be made read-only in the same call: it takes a second
/// `MS_REMOUNT|MS_BIND|MS_RDONLY`. That remount must repeat the flags the mount already
/// has (nosuid, nodev, noexec, ...): inside a user namespace the kernel refuses to
/// clear flags that a more privileged namespace set, so we read them with statvfs.
pub fn remount_readonly(target: &Path, why: &str) -> Result<()> {
    let current = statvfs(target).with_context(|| format!("statvfs({target:?})"))?;
    let flags =
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | kept_flags(current.flags());
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).with_context(|| {
        format!(
            "remounting {target:?} read-only ({})",
            explain::flags(&flags)
        )
    })?;
    explain::step(
        format_args!("mount(NULL, {target:?}, NULL, {})", explain::flags(&flags)),
        why,
    );
    Ok(())
}
// ANCHOR_END: remount_readonly

/// The mount flags statvfs reports that a remount must keep.
fn kept_flags(flags: FsFlags) -> MsFlags {
    let pairs = [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    pairs
        .into_iter()
        .filter(|(st, _)| flags.contains(*st))
        .fold(MsFlags::empty(), |all, (_, ms)| all | ms)
}
