//! The last step of every container: find the command and replace ourselves with it.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::execve;

use crate::exit::{CANNOT_EXECUTE, Failure, NOT_FOUND, RUNTIME_FAILED};
use crate::explain;
use crate::layer::Process;

/// The `PATH` a container gets when none is given, the same as docker's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Executes `process` in this process. It only returns on failure, with the exit code
/// that failure stands for: 127 when the command is not found, 126 when it cannot be
/// executed.
pub fn exec(process: &Process) -> Failure {
    let Some(program) = process.argv.first() else {
        return failure(RUNTIME_FAILED, "no command to run".into());
    };
    let argv = match to_cstrings(process.argv.iter().cloned()) {
        Ok(argv) => argv,
        Err(message) => return failure(RUNTIME_FAILED, message),
    };
    let env = process.env.iter().map(|(k, v)| format!("{k}={v}"));
    let envp = match to_cstrings(env) {
        Ok(envp) => envp,
        Err(message) => return failure(RUNTIME_FAILED, message),
    };

    // Before the user changes, while we still hold CAP_SETPCAP.
    if let Some(keep) = &process.capabilities
        && let Err(message) = crate::capabilities::keep_only(keep)
    {
        return failure(RUNTIME_FAILED, message);
    }
    if let Some(ids) = &process.user
        && let Err(message) = become_user(ids)
    {
        return failure(RUNTIME_FAILED, message);
    }

    // Like execvp(3): a name with a slash is a path; a bare name is searched in the
    // container's PATH, not the host's, because it names files of the container.
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        let path = process.getenv("PATH").unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(program))
            .collect()
    };

    let mut denied = None;
    for candidate in &candidates {
        // A quick look first keeps --explain to the one execve that matters.
        if !program.contains('/') && !candidate.exists() {
            continue;
        }
        let Ok(path) = CString::new(candidate.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        explain::step(
            format_args!("execve({candidate:?}, {:?})", process.argv),
            "replace the runtime with the command; fds marked close-on-exec close now",
        );
        let errno = match execve(&path, &argv, &envp) {
            Err(errno) => errno,
            Ok(never) => match never {},
        };
        match errno {
            // Not in this directory: try the next one, as a shell would.
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES | Errno::EPERM | Errno::ENOEXEC | Errno::EISDIR => {
                denied.get_or_insert((candidate.clone(), errno));
            }
            other => {
                return failure(
                    CANNOT_EXECUTE,
                    format!("cannot execute {}: {}", candidate.display(), other.desc()),
                );
            }
        }
    }
    match denied {
        Some((path, errno)) => failure(
            CANNOT_EXECUTE,
            format!(
                "cannot execute {}: {} (is it a program, and executable inside the container?)",
                path.display(),
                errno.desc()
            ),
        ),
        None if program.contains('/') => failure(
            NOT_FOUND,
            format!("{program}: no such file or directory inside the container"),
        ),
        None => failure(
            NOT_FOUND,
            format!(
                "{program}: executable file not found in the container's $PATH ({})",
                process.getenv("PATH").unwrap_or(DEFAULT_PATH)
            ),
        ),
    }
}

// ANCHOR: become_user
/// Drops root for `ids`, last thing before `execve`: groups first (only root may set
/// them), then the gid, then the uid, after which nothing can be taken back.
fn become_user(ids: &crate::layer::Ids) -> Result<(), String> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    let groups: Vec<Gid> = std::iter::once(ids.gid)
        .chain(ids.groups.iter().copied())
        .map(Gid::from_raw)
        .collect();
    // Under a user's maps setgroups(2) is denied (chapter 3): the user's own groups
    // stay, which is all a rootless container can have.
    match setgroups(&groups) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(errno) => return Err(format!("setgroups({groups:?}): {}", errno.desc())),
    }
    let gid = Gid::from_raw(ids.gid);
    setresgid(gid, gid, gid).map_err(|errno| {
        format!(
            "setresgid({}): {} (is gid {0} mapped?)",
            ids.gid,
            errno.desc()
        )
    })?;
    let uid = Uid::from_raw(ids.uid);
    setresuid(uid, uid, uid).map_err(|errno| {
        format!(
            "setresuid({}): {} (is uid {0} mapped?)",
            ids.uid,
            errno.desc()
        )
    })?;
    explain::step(
        format_args!(
            "setgroups({groups:?}); setresgid({}); setresuid({})",
            ids.gid, ids.uid
        ),
        "run the command as the user the image or -u names, not as container root",
    );
    Ok(())
}
// ANCHOR_END: become_user

fn failure(code: i32, message: String) -> Failure {
    Failure { code, message }
}

fn to_cstrings(items: impl Iterator<Item = String>) -> Result<Vec<CString>, String> {
    items
        .map(|s| CString::new(s.clone()).map_err(|_| format!("{s:?} contains a NUL byte")))
        .collect()
}
