//! The container's root filesystem: `ls /` shows the rootfs, and the host's files stay
//! out of reach (`pivot_root`, the old root detached, a chroot breakout that finds
//! nothing); and the default rootfs, which borrows the host's programs, read-only.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::mountinfo::{self, Mount};
use crate::probe::{self, BreakoutReport};
use crate::rootfs;
use crate::runtime::Runtime;

/// The names `ls -A DIR` prints in the container, as a set.
pub fn listing(runtime: &Runtime, dir: &str) -> BTreeSet<String> {
    let out = runtime.run().cmd(["ls", "-A", dir]).output();
    out.expect_success();
    out.words().into_iter().map(str::to_owned).collect()
}

/// A file on the host, outside every rootfs, in `dir`, that every user may read (so
/// that only the runtime keeps a container of any user from it). `dir` must not be
/// under /tmp, which the container covers with its own tmpfs: that would hide a
/// breakout instead of preventing it.
pub fn host_marker(dir: &Path) -> tempfile::NamedTempFile {
    let marker = tempfile::Builder::new()
        .prefix("keel-host-marker-")
        .tempfile_in(dir)
        .expect("create a marker file on the host");
    std::fs::set_permissions(marker.path(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod the marker");
    marker
}

/// `ls /` shows the busybox rootfs given with `--rootfs`.
pub fn ls_root_shows_the_rootfs(runtime: &Runtime) {
    let expected: BTreeSet<String> = rootfs::top_level().into_iter().collect();
    assert_eq!(
        listing(runtime, "/"),
        expected,
        "`ls /` should show the rootfs given with --rootfs"
    );
}

/// The container's `/` mount is (a bind mount of) the directory `rootfs`.
pub fn root_mount_is_the_rootfs_directory(runtime: &Runtime, rootfs: &Path) {
    let mounts = probe::report(runtime).mounts();
    let root = mountinfo::find(&mounts, "/").expect("the container has a / mount");
    let dir_name = rootfs.file_name().unwrap_or_default().to_string_lossy();
    assert!(
        root.root.ends_with(&*dir_name),
        "/ should be (a bind mount of) {}, but it is {}",
        rootfs.display(),
        root.key()
    );
}

/// No mount of the host is left in the container: only its root, its pseudo
/// filesystems, and the files the stage itself binds there (`own`: stage 4's
/// `/etc/hosts`, say).
pub fn old_root_is_detached(runtime: &Runtime, own: &[&str]) {
    let foreign: Vec<String> = probe::report(runtime)
        .mounts()
        .iter()
        .filter(|m| !is_container_mount_point(&m.mount_point) && !own.contains(&&*m.mount_point))
        .map(Mount::key)
        .collect();
    assert!(
        foreign.is_empty(),
        "mounts of the host are still visible in the container: the old root must be \
         unmounted (umount2(old_root, MNT_DETACH)) after pivot_root\n{}",
        foreign.join("\n")
    );
}

/// The probe's chroot breakout does not make `marker` (a file of the host, see
/// [`host_marker`]) visible. Returns what the probe saw, for the stage's own checks.
pub fn chroot_breakout_does_not_reach_the_host(runtime: &Runtime, marker: &Path) -> BreakoutReport {
    let report: BreakoutReport = runtime
        .run()
        .probe(["breakout".as_ref(), marker])
        .output()
        .json();
    assert!(
        !report.marker_visible,
        "the chroot breakout reached the host's root ({} is visible; `/` holds {:?}): \
         use pivot_root, not chroot, and detach the old root",
        marker.display(),
        report.root
    );
    report
}

/// In the default rootfs, `/usr/bin` holds the host's programs.
pub fn usr_bin_is_the_hosts(runtime: &Runtime) {
    let host: BTreeSet<String> = std::fs::read_dir("/usr/bin")
        .expect("read the host's /usr/bin")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listing(runtime, "/usr/bin"),
        host,
        "/usr/bin of the default rootfs should be the host's"
    );
}

/// In the default rootfs, the host's `/usr` is read-only: `touch` under it fails, and
/// nothing appears on the host.
pub fn usr_is_read_only(runtime: &Runtime) {
    let file = format!("/usr/keel-graders-{}", std::process::id());
    let out = runtime.run().cmd(["touch", &file]).output();
    let created = Path::new(&file).exists();
    let _ = std::fs::remove_file(&file);
    assert!(
        !created,
        "the container wrote {file} into the host's /usr\n{out}"
    );
    assert_ne!(
        out.code, 0,
        "writing under /usr should fail: it is read-only\n{out}"
    );
}

/// Mount points a container may have: its root and its pseudo filesystems. Everything
/// else came from the host.
fn is_container_mount_point(point: &str) -> bool {
    point == "/"
        || ["/proc", "/dev", "/sys", "/tmp"]
            .iter()
            .any(|prefix| point == *prefix || point.starts_with(&format!("{prefix}/")))
}
