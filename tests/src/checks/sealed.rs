//! The runtime's binary is out of the container's reach (CVE-2019-5736).
//!
//! The container runs `/evil`, whose interpreter is `#!/proc/self/exe`, in a rootfs
//! armed by [`attacker::arm`]: the runtime's binary starts again inside the container
//! with the attacker's program as its loader. That program reports which file
//! `/proc/self/exe` names, then waits for the runtime to die and tries to write into
//! it. The grader kills the runtime with SIGKILL, as a user pressing Ctrl-\ twice or
//! an OOM kill would, and reads the attacker's verdict.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::signal::Signal;

use crate::attacker::EVIL;
use crate::leaks::Marker;
use crate::runtime::Runtime;

/// `/proc/self/exe`, seen from inside, is not the runtime's binary on the host; and
/// once the runtime is killed, the binary is unchanged.
///
/// `runtime` runs `binary` (a copy that this test alone uses: if the attack works, it
/// is overwritten) in a rootfs armed against it.
pub fn runtime_binary_is_out_of_reach(runtime: &Runtime, binary: &Path) {
    let before = std::fs::read(binary).expect("reading the runtime's binary");
    let meta = std::fs::metadata(binary).expect("stat of the runtime's binary");
    let marker = Marker::new();
    let mut running = runtime.run().cmd([EVIL, marker.token()]).spawn();
    let exe = running.read_line();
    let seen: Vec<u64> = exe
        .strip_prefix("exe ")
        .unwrap_or_else(|| panic!("the attacker did not start: {exe:?}"))
        .split(' ')
        .map(|n| n.parse().expect("exe DEV INO"))
        .collect();
    assert_eq!(running.read_line(), "armed");
    // The runtime dies: now nothing keeps its binary busy (ETXTBSY) any more.
    running.signal(Signal::SIGKILL);
    let verdict = running.read_line();
    let out = running.wait();
    marker.assert_none_left();
    let after = std::fs::read(binary).expect("reading the runtime's binary");
    // The container may reach the file itself only through a read-only mount.
    assert!(
        seen != [meta.dev(), meta.ino()] || verdict == "denied 30",
        "inside the container, /proc/self/exe of a process that execs the runtime's binary \
         names the host's binary itself (dev {} inode {}), and its write was not refused \
         with EROFS ({verdict:?}): the runtime must run from a sealed copy (memfd) or \
         through a read-only mount of its binary\n{out}",
        meta.dev(),
        meta.ino()
    );
    assert!(
        before == after,
        "the runtime's binary on the host was overwritten from inside the container \
         (the attacker said {verdict:?})"
    );
    assert_ne!(
        verdict, "overwrote",
        "the attacker wrote into the runtime's binary"
    );
}

/// Seen from the host: while a container runs, the runtime's `/proc/PID/exe` is a
/// memfd sealed against writing, not the file it was started from.
pub fn runtime_runs_from_a_sealed_copy(runtime: &Runtime) {
    let mut running = runtime.run().sh("echo ready; read line").spawn_ready();
    let exe = format!("/proc/{}/exe", running.pid());
    let target = std::fs::read_link(&exe).expect("readlink of the runtime's exe");
    let file = std::fs::File::open(&exe).expect("open of the runtime's exe");
    let seals = fcntl(&file, FcntlArg::F_GET_SEALS);
    running.write_stdin(b"\n");
    running.wait().expect_success();
    assert!(
        target.to_string_lossy().starts_with("/memfd:"),
        "the runtime runs from {}: it should run from a sealed memfd copy of itself",
        target.display()
    );
    let seals = SealFlag::from_bits_truncate(seals.expect("F_GET_SEALS on the runtime's exe"));
    assert!(
        seals.contains(SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SEAL),
        "the runtime's memfd is not sealed against writes: {seals:?}"
    );
}

/// Seen from the host: while a user's container runs, the runtime's `/proc/PID/exe`
/// is `binary` itself (the user's own), but on a read-only mount of the runtime's
/// own making, in no mount namespace: none of the host's mounts is read-only there.
pub fn runtime_runs_from_a_read_only_view(runtime: &Runtime, binary: &Path) {
    let mut running = runtime.run().sh("echo ready; read line").spawn_ready();
    let exe = format!("/proc/{}/exe", running.pid());
    let file = std::fs::File::open(&exe).expect("open of the runtime's exe");
    let flags = nix::sys::statvfs::fstatvfs(&file).map(|fs| fs.flags());
    let meta = file.metadata().expect("stat of the runtime's exe");
    running.write_stdin(b"\n");
    running.wait().expect_success();
    let original = std::fs::metadata(binary).expect("stat of the runtime's binary");
    assert_eq!(
        (meta.dev(), meta.ino()),
        (original.dev(), original.ino()),
        "a user's runtime should run from its own binary, seen through a read-only mount \
         (not a copy)"
    );
    let flags = flags.expect("statvfs of the runtime's exe");
    assert!(
        flags.contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the mount the runtime runs from is writable ({flags:?}): a container could write \
         the binary through /proc/self/exe"
    );
}

/// A runtime whose binary lies on a read-only mount does not copy itself (the
/// attacker sees the real file), and the attack still fails: the write is refused
/// with EROFS (30).
///
/// `runtime` runs `binary` from a read-only bind mount of its directory, made in a
/// mount namespace of its own (see [`read_only_wrapper`]), in an armed rootfs.
pub fn binary_on_a_read_only_mount_is_not_copied(runtime: &Runtime, binary: &Path) {
    uncopied_binary_refuses_the_write(runtime, binary, "denied 30", "EROFS");
}

/// A user running a binary that root owns and only root may write (installed in
/// `/usr/local/bin`, say): the runtime does not copy itself (the attacker sees the real
/// file), and the attack still fails: none of the container's ids may write the file,
/// so the write is refused with EACCES (13).
///
/// `runtime` runs `binary`, root's and mode 0755, as a user, in an armed rootfs.
pub fn roots_binary_run_by_a_user_is_not_copied(runtime: &Runtime, binary: &Path) {
    let meta = std::fs::metadata(binary).expect("stat of the runtime's binary");
    assert!(
        meta.uid() == 0 && meta.mode() & 0o022 == 0,
        "{binary:?} must be root's, 0755"
    );
    uncopied_binary_refuses_the_write(runtime, binary, "denied 13", "EACCES");
}

/// The attack on a runtime that runs from its file: the attacker sees that file, and
/// its write fails with `verdict` (`errno`, for messages); the file is unchanged.
fn uncopied_binary_refuses_the_write(runtime: &Runtime, binary: &Path, verdict: &str, errno: &str) {
    let before = std::fs::read(binary).expect("reading the runtime's binary");
    let meta = std::fs::metadata(binary).expect("stat of the runtime's binary");
    let marker = Marker::new();
    let mut running = runtime.run().cmd([EVIL, marker.token()]).spawn();
    let exe = running.read_line();
    assert_eq!(running.read_line(), "armed");
    running.signal(Signal::SIGKILL);
    let said = running.read_line();
    let out = running.wait();
    marker.assert_none_left();
    assert_eq!(
        exe,
        format!("exe {} {}", meta.dev(), meta.ino()),
        "this runtime needs no sealed copy\n{out}"
    );
    assert_eq!(said, verdict, "the write should fail with {errno}\n{out}");
    assert!(before == std::fs::read(binary).expect("reading the binary"));
}

/// A wrapper that runs a copy of the binary whose file is gone (`rm`) before it
/// starts, as when a new build replaces it: there is no path left to mount a read-only
/// view of, and the runtime falls back to a sealed copy.
pub fn deleted_binary_wrapper() -> (&'static str, [&'static str; 2]) {
    (
        "sh",
        [
            "-c",
            r#"cp "$0" "$0.gone" && exec 3<"$0.gone" && rm "$0.gone" && exec /proc/self/fd/3 "$@""#,
        ],
    )
}

/// The wrapper for [`binary_on_a_read_only_mount_is_not_copied`]: `unshare -m sh -c ...`
/// that binds the binary's directory read-only onto itself, in a new mount namespace
/// (the host's mounts are untouched), then execs the binary with its arguments.
pub fn read_only_wrapper() -> (&'static str, [&'static str; 4]) {
    (
        "unshare",
        [
            "--mount",
            "sh",
            "-c",
            r#"d=$(dirname "$0") && mount --bind -o ro "$d" "$d" && exec "$0" "$@""#,
        ],
    )
}
