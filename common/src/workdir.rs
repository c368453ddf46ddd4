//! `-w DIR`: the working directory the command starts in.
//!
//! A working directory is a way into a filesystem, and a way out of a root: a process
//! whose cwd lies outside its root reaches everything below that cwd with relative
//! paths. runc's CVE-2024-21626 was exactly that: `-w /proc/self/fd/7`, where fd 7 was
//! a directory of the host that runc had left open, put the container's command in the
//! host's filesystem. keel closes every inherited fd at start-up ([`crate::fds`]), a
//! layer that changes the root resolves `-w` inside it (without magic links), and the
//! runner checks the result: `getcwd()` must name a path below the container's root.

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use nix::errno::Errno;

use crate::explain;

// ANCHOR: enter
/// Changes into the working directory: the directory a layer opened inside the new
/// root (`opened`), or else `path` looked up as it is (stage 1 shares the host's root:
/// there is no root to escape from). Then proves the result is inside our root.
pub fn enter(path: Option<&Path>, opened: Option<OwnedFd>) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    match opened {
        Some(dir) => {
            nix::unistd::fchdir(&dir).map_err(|errno| chdir_error(path, errno))?;
            explain::step(
                format_args!("fchdir({path:?})"),
                "the working directory, opened inside the new root before the old one went",
            );
        }
        None => {
            nix::unistd::chdir(path).map_err(|errno| chdir_error(path, errno))?;
            explain::step(
                format_args!("chdir({path:?})"),
                "the working directory from -w",
            );
        }
    }
    // getcwd(3) fails (ENOENT) when the cwd is not below the root: the kernel prefixes
    // such a path with "(unreachable)", and glibc refuses to return it.
    match nix::unistd::getcwd() {
        Ok(cwd) if cwd.is_absolute() => Ok(()),
        Ok(cwd) => bail!(
            "-w {}: the working directory {cwd:?} is outside the container's root",
            path.display()
        ),
        Err(errno) => bail!(
            "-w {}: the working directory is outside the container's root (getcwd: {})",
            path.display(),
            errno.desc()
        ),
    }
}
// ANCHOR_END: enter

fn chdir_error(path: &Path, errno: Errno) -> anyhow::Error {
    anyhow!(
        "-w {}: cannot use it as the working directory: {} (it must be a directory inside \
         the container; keel does not create it)",
        path.display(),
        errno.desc()
    )
}
