//! `/dev`: a small set of safe devices bound from the host, never the host's whole
//! `/dev` (disks, `/dev/mem`, `/dev/kmsg`).

use std::collections::BTreeSet;

use crate::checks::rootfs::listing;
use crate::runtime::Runtime;

/// What `ls /dev` shows in a container without a terminal (with one, `console` too).
pub const STANDARD_DEVICES: [&str; 14] = [
    "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
    "tty", "urandom", "zero",
];

/// `ls /dev` shows exactly the standard devices (and `console`, if there is a
/// terminal).
pub fn ls_dev_shows_the_standard_devices(runtime: &Runtime) {
    let mut seen = listing(runtime, "/dev");
    seen.remove("console");
    let expected: BTreeSet<String> = STANDARD_DEVICES.into_iter().map(str::to_owned).collect();
    assert_eq!(
        seen, expected,
        "`ls /dev` should show exactly the standard devices, and console with a tty \
         (bound from the host: a user namespace may not mknod)"
    );
}
