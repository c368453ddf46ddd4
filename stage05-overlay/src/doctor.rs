//! What stage 5 needs from the machine, each with its fix.

use std::path::Path;

use common::doctor::{Outcome, Report};

use crate::driver::Driver;
use crate::store::Store;

/// The checks of stage 5.
pub fn check(report: &mut Report) {
    // Probed afresh, not read from the store's memory of it: doctor says what is.
    let kernel = crate::driver::probe(&std::env::temp_dir());
    let fuse = crate::driver::fuse_usable();
    let outcome = match &kernel {
        Ok(()) => Outcome::Ok(crate::driver::KERNEL_OVERLAY.into()),
        Err(why) => Outcome::Warn(format!(
            "{why:#}: Linux 5.11 or later mounts overlay rootless"
        )),
    };
    report.check("overlay", outcome);
    let outcome = match (&fuse, &kernel) {
        (Ok(binary), _) => Outcome::Ok(format!(
            "{} and /dev/fuse usable: overlay in user space, the fallback (--storage-driver \
             fuse-overlayfs)",
            binary.display()
        )),
        (Err(why), Ok(())) => Outcome::Ok(format!(
            "not usable ({why:#}); not needed while the kernel's overlay works"
        )),
        (Err(why), Err(_)) => Outcome::Warn(format!("{why:#}")),
    };
    report.check("fuse-overlayfs", outcome);
    let (driver, why) = crate::driver::decide(&kernel, &fuse);
    let outcome = match driver {
        Driver::Copy => Outcome::Warn(format!(
            "copy: {why}: every container gets a full copy of its image (slower to start)"
        )),
        _ => Outcome::Ok(format!("{driver}: {why}")),
    };
    report.check("storage driver", outcome);
    let outcome = if Path::new("/bin/busybox").is_file() {
        Outcome::Ok("/bin/busybox: the offline busybox image is made from it".into())
    } else {
        Outcome::Warn(
            "/bin/busybox is missing: apt-get install busybox-static, for the image that works \
             offline"
                .into(),
        )
    };
    report.check("busybox", outcome);
    let outcome = match Store::default_root() {
        Ok(root) => Outcome::Ok(format!(
            "{}: images, layers and containers' writable layers (KEEL_STORE chooses another)",
            root.display()
        )),
        Err(err) => Outcome::Fail(format!("{err:#}")),
    };
    report.check("store", outcome);
}
