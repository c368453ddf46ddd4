//! `--read-only`: the container's root filesystem cannot be written.
//!
//! After `pivot_root` the container's `/` is a mount of its own (the image's
//! overlay, or the bound rootfs): `mount_setattr(2)` sets `MOUNT_ATTR_RDONLY` on it,
//! and on it alone (not recursively): /tmp, /dev, /proc and the `-v` volumes, which
//! are mounts of their own, stay as they are, as with docker. Unlike a remount
//! (`MS_REMOUNT|MS_BIND|MS_RDONLY`), which sets every flag anew and is refused in a
//! user namespace when it would drop the `nosuid`/`nodev` locked on the mount,
//! `mount_setattr` changes only the attribute it is given.

use anyhow::Result;
use common::layer::Child;
use common::{Layer, explain};

/// The read-only root, after every other layer built it.
#[derive(Debug)]
pub struct ReadOnly;

impl Layer for ReadOnly {
    fn name(&self) -> &'static str {
        "read-only"
    }

    fn child(&mut self, _cx: &mut Child<'_>) -> Result<()> {
        common::read_only::make_read_only(None, c"/", 0).map_err(|errno| {
            anyhow::anyhow!(
                "--read-only: mount_setattr(\"/\", MOUNT_ATTR_RDONLY): {} (Linux 5.12 or later)",
                errno.desc()
            )
        })?;
        explain::step(
            "mount_setattr(\"/\", 0, {attr_set: MOUNT_ATTR_RDONLY})",
            "--read-only: the root mount cannot be written; the mounts on it keep their own flags",
        );
        Ok(())
    }
}
