//! What stage 5 needs from the machine, each with its fix.

use std::path::Path;

use common::doctor::{Outcome, Report};

use crate::store::Store;

/// The checks of stage 5.
pub fn check(report: &mut Report) {
    let outcome = match crate::driver::probe() {
        Ok(()) => Outcome::Ok(
            "this kernel mounts overlay in a user namespace: images run on an overlay of their layers"
                .into(),
        ),
        Err(why) => match crate::driver::fuse_usable() {
            Ok(()) => Outcome::Warn(format!(
                "{why:#}: images run on fuse-overlayfs instead (the same, in user space); \
                 Linux 5.11 or later mounts overlay rootless"
            )),
            Err(no_fuse) => Outcome::Warn(format!(
                "{why:#}, and {no_fuse:#}: images are copied instead (--storage-driver copy: \
                 slower, a full copy per container); Linux 5.11 or later mounts overlay rootless"
            )),
        },
    };
    report.check("overlay", outcome);
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
