//! The runtime's own binary, out of the container's reach (CVE-2019-5736).
//!
//! The child that sets up the container is a copy of the runtime: its
//! `/proc/self/exe` is the runtime's binary on the host. If the command it finally
//! execs is a script starting with `#!/proc/self/exe`, or a program whose ELF
//! interpreter is `/proc/self/exe`, the kernel resolves that magic link *during*
//! `execve`, while it still names the runtime: the runtime's binary starts again inside
//! the container, and the dynamic loader it asks for (`/lib64/ld-linux-x86-64.so.2`)
//! comes from the container's root, which the attacker wrote. That loader runs with
//! `/proc/self/exe` still pointing at the host's binary, keeps it open, waits for the
//! runtime to exit, and writes into it: the next `run` executes the attacker's code on
//! the host, as whoever runs it (root's copy as root, the user's own copy with
//! `cargo run`).
//!
//! runc and crun answer by never letting the container see the real file: before
//! anything else the runtime copies itself into a `memfd`, seals the copy against any
//! write, and re-executes from it. `/proc/self/exe` then names an anonymous, sealed
//! file that nobody, not even root, can change; the host's binary is never reachable.
//!
//! The copy and the second `execve` cost about a millisecond and a half on a small
//! VM. keel skips them where no container could write the binary anyway:
//!
//! - on a read-only mount, as crun does (`mount --bind -o ro`, an image filesystem):
//!   a write through `/proc/self/exe` fails with EROFS;
//! - when a user runs a binary that root owns and only root may write (installed in
//!   `/usr/local/bin`): the user's containers hold the user's own ids and subordinate
//!   ones, never root's, and the capabilities of a user namespace do not reach a file
//!   whose owner is not mapped in it. The write fails with EACCES. (A user whose
//!   subordinate ids include 0 could map root: such a user is root already.)
//!
//! What remains is a binary the caller may write, such as the one `cargo build` makes:
//! container root is its owner, or root itself. A user's runtime then needs no copy
//! either: it re-executes through a read-only bind mount of its binary, made in a user
//! namespace of its own ([`crate::exe_view`]), which costs the second `execve` alone.
//! Root's runtime copies: its containers may hold root's own capabilities.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::statvfs::FsFlags;

use crate::{exe_view, explain};

/// The seals that make the copy immutable: no write, no truncate, no growth, and no
/// removing of seals.
const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// How often F_ADD_SEALS is asked again after EBUSY (each time, the kernel itself
/// waits about 75 ms for the pages to be released).
const SEAL_ATTEMPTS: u32 = 10;

/// `MFD_EXEC` (Linux 6.3, `<linux/memfd.h>`): the memfd may be executed. Not in the
/// libc crate yet.
const MFD_EXEC: MFdFlags = MFdFlags::from_bits_retain(0x0010);

// ANCHOR: reexec
/// Makes sure this process runs from a binary no container can write: returns at once
/// if it already does, and otherwise re-executes itself (and does not return) from a
/// read-only view of its binary when a user runs it, or from a sealed copy.
pub fn ensure() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    if is_sealed(&exe) || on_a_read_only_mount(&exe) || beyond_a_users_containers(&exe) {
        return Ok(());
    }
    // Root's containers may hold root's own capabilities (stages 1 and 2): a sealed
    // copy owes nothing to the rules about who may change a mount.
    let view = (!nix::unistd::geteuid().is_root()).then(|| exe_view::of(&exe));
    let target = match view {
        Some(Ok(view)) => {
            explain::step(
                "fork; unshare(CLONE_NEWUSER|CLONE_NEWNS); open_tree(/proc/self/exe's path, \
                 OPEN_TREE_CLONE); mount_setattr(MOUNT_ATTR_RDONLY); execveat(the view)",
                "run from a read-only bind mount of the runtime's binary, so that no \
                 container can write it through /proc/self/exe",
            );
            view
        }
        None => explained_copy(&exe, String::new())?,
        Some(Err(why)) => explained_copy(&exe, format!(" (no read-only view: {why:#})"))?,
    };
    drop(exe);
    Err(reexec(&target)).context("re-executing the runtime (execveat)")
}
// ANCHOR_END: reexec

/// A sealed copy of `exe`, said under `--explain` (`note` tells why there is no view).
fn explained_copy(exe: &File, note: String) -> Result<OwnedFd> {
    let copy = sealed_copy(exe)?;
    explain::step(
        "memfd_create(\"keel\"); sendfile(/proc/self/exe); F_ADD_SEALS; execveat(memfd)",
        format_args!(
            "run from a sealed copy of the runtime, so that no container can reach the \
             host's binary through /proc/self/exe{note}"
        ),
    );
    Ok(copy)
}

/// Whether `exe` is a memfd sealed against writes: a plain file has no seals, and
/// F_GET_SEALS fails on it.
fn is_sealed(exe: &File) -> bool {
    fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|seals| SealFlag::from_bits_truncate(seals).contains(SEALS))
}

/// Whether `exe` lies on a read-only mount, where nobody can open it for writing.
/// (The container cannot make that mount writable: it is not in the container's
/// mount namespace, and a mount may only be changed from its own namespace.)
fn on_a_read_only_mount(exe: &File) -> bool {
    nix::sys::statvfs::fstatvfs(exe).is_ok_and(|fs| fs.flags().contains(FsFlags::ST_RDONLY))
}

/// Whether the caller is not root and `exe` is root's, writable by no one else: no id a
/// user's container holds can write it. (With a POSIX ACL, the group bits are the
/// ACL's mask: no entry of it can grant a write that the mask does not.)
fn beyond_a_users_containers(exe: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    !nix::unistd::geteuid().is_root()
        && exe
            .metadata()
            .is_ok_and(|meta| meta.uid() == 0 && meta.mode() & 0o022 == 0)
}

// ANCHOR: sealed_copy
/// Copies `exe` into a new memfd and seals it.
fn sealed_copy(exe: &File) -> Result<OwnedFd> {
    let name = c"keel";
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    // Linux 6.3 wants to be told that a memfd will be executed (MFD_EXEC); older
    // kernels do not know the flag and refuse it.
    let memfd = memfd_create(name, flags | MFD_EXEC)
        .or_else(|_| memfd_create(name, flags))
        .context("memfd_create for a sealed copy of the runtime")?;
    let size = exe.metadata().context("stat /proc/self/exe")?.len();
    let mut copied = 0;
    while copied < size {
        // sendfile copies inside the kernel, from the page cache into the memfd.
        let left = usize::try_from(size - copied).unwrap_or(usize::MAX);
        match nix::sys::sendfile::sendfile64(memfd.as_fd(), exe.as_fd(), None, left) {
            Ok(0) => bail!("/proc/self/exe ended after {copied} of {size} bytes"),
            Ok(n) => copied += n as u64,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno).context("copying the runtime into a memfd (sendfile)"),
        }
    }
    // F_SEAL_WRITE is refused (EBUSY) while anything still holds a page of the file;
    // on a busy machine something may, briefly (reclaim, a memory monitor), longer
    // than the kernel waits before it gives up. Then the seal is asked for again.
    let mut attempts = 0;
    loop {
        match fcntl(memfd.as_fd(), FcntlArg::F_ADD_SEALS(SEALS)) {
            Err(Errno::EBUSY) if attempts < SEAL_ATTEMPTS => attempts += 1,
            sealed => break sealed.map(drop).context("sealing the memfd")?,
        };
    }
    Ok(memfd)
}
// ANCHOR_END: sealed_copy

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` with this process's own arguments
/// and environment. Only returns on failure.
fn reexec(copy: &OwnedFd) -> Errno {
    let argv: Vec<CString> = std::env::args_os().filter_map(c_string).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let mut pair = key;
            pair.push("=");
            pair.push(value);
            c_string(pair)
        })
        .collect();
    match nix::unistd::execveat(
        copy.as_fd(),
        c"",
        &argv,
        &envp,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    ) {
        Err(errno) => errno,
        Ok(never) => match never {},
    }
}

fn c_string(s: OsString) -> Option<CString> {
    CString::new(s.into_vec()).ok()
}
