//! What rootless containers need from the machine, checked one by one, each with
//! the fix.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::doctor::{self, Outcome, Report};
use nix::sched::CloneFlags;

use crate::slices::{KEEL_OWNER, SLICE};
use crate::subid::{self, FULL_RANGE, SubRange, SubidFile};

/// Every check of stage 3.
pub fn check(report: &mut Report) {
    kernel_switches(report);
    report.check("creating a user namespace", try_user_namespace());
    doctor::namespace(report, "user", "root inside, an ordinary user outside");
    for helper in ["newuidmap", "newgidmap"] {
        report.check(helper, helper_outcome(helper));
    }
    if doctor::is_root() {
        // Root needs no subordinate ids; `--userns auto` uses the `keel` entry.
        let files = [subid::SUBUID, subid::SUBGID].map(SubidFile::read);
        let free = match &files {
            [Ok(uids), Ok(gids)] => {
                subid::free_start(&[uids, gids], FULL_RANGE).map_err(|err| format!("{err:#}"))
            }
            _ => Err("a file cannot be read".to_owned()),
        };
        for (path, file) in [subid::SUBUID, subid::SUBGID].into_iter().zip(&files) {
            let outcome = match file {
                Err(err) => Outcome::Fail(format!("cannot read it: {err}")),
                Ok(file) => keel_outcome(file, &free),
            };
            report.check(path, outcome);
        }
        return;
    }
    let facts = crate::facts();
    for (file, own) in [
        (subid::SUBUID, &facts.subuids),
        (subid::SUBGID, &facts.subgids),
    ] {
        let all: Vec<SubRange> = SubidFile::read(file)
            .map(|f| f.ranges().cloned().collect())
            .unwrap_or_default();
        report.check(
            file,
            ranges_outcome(file, &facts.user, own, &all, &facts.free),
        );
    }
}

/// keel's entry, for root: none yet (added on first use), or its slices.
fn keel_outcome(file: &SubidFile, free: &Result<u32, String>) -> Outcome {
    let keel: Vec<SubRange> = file
        .ranges()
        .filter(|r| r.owner == KEEL_OWNER.as_bytes())
        .cloned()
        .collect();
    if keel.is_empty() {
        return match file.check_understood() {
            Ok(()) => Outcome::Ok(
                "root needs no range; --userns auto adds a `keel` range on first use".into(),
            ),
            Err(err) => Outcome::Fail(format!("{err:#}")),
        };
    }
    let all: Vec<SubRange> = file.ranges().cloned().collect();
    let path = file.path.display().to_string();
    match ranges_outcome(&path, KEEL_OWNER, &keel, &all, free) {
        Outcome::Ok(text) => {
            let slices: u64 = keel
                .iter()
                .filter_map(SubRange::mappable)
                .map(|(_, count)| u64::from(count / SLICE))
                .sum();
            Outcome::Ok(format!(
                "{text} ({slices} slice(s) of {SLICE} ids: --userns auto containers at once)"
            ))
        }
        other => other,
    }
}

/// The sysctls that turn unprivileged user namespaces off, where the kernel has them.
fn kernel_switches(report: &mut Report) {
    let read = |path: &str| fs::read_to_string(path).ok().map(|v| v.trim().to_owned());
    let max = read("/proc/sys/user/max_user_namespaces");
    report.check(
        "user.max_user_namespaces",
        match max.as_deref() {
            Some("0") => Outcome::Fail(
                "0: user namespaces are disabled; sudo sysctl -w user.max_user_namespaces=15000"
                    .into(),
            ),
            Some(n) => Outcome::Ok(n.to_owned()),
            None => {
                Outcome::Fail("missing: this kernel has no user namespaces (CONFIG_USER_NS)".into())
            }
        },
    );
    // Debian and older Ubuntu kernels have their own switch.
    if let Some(value) = read("/proc/sys/kernel/unprivileged_userns_clone") {
        report.check(
            "kernel.unprivileged_userns_clone",
            if value == "1" {
                Outcome::Ok("1".into())
            } else {
                Outcome::Fail(format!(
                    "{value}: sudo sysctl -w kernel.unprivileged_userns_clone=1"
                ))
            },
        );
    }
    // Ubuntu 23.10+ lets AppArmor forbid them to unconfined programs.
    if let Some(value) = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        report.check(
            "kernel.apparmor_restrict_unprivileged_userns",
            if value == "0" {
                Outcome::Ok("0".into())
            } else {
                Outcome::Fail(format!(
                    "{value}: AppArmor forbids unprivileged user namespaces; allow this binary with an \
                     AppArmor profile (`userns,`), or sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
                ))
            },
        );
    }
}

// ANCHOR: try_user_namespace
/// Actually clones a child into a new user namespace: the only proof that counts.
fn try_user_namespace() -> Outcome {
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the child only returns a number; it touches nothing of ours.
    let cloned = unsafe {
        nix::sched::clone(
            Box::new(|| 0),
            &mut stack,
            CloneFlags::CLONE_NEWUSER,
            Some(libc::SIGCHLD),
        )
    };
    match cloned {
        Ok(pid) => {
            let _ = nix::sys::wait::waitpid(pid, None);
            Outcome::Ok("clone(CLONE_NEWUSER) works for this user".into())
        }
        Err(errno) => Outcome::Fail(format!(
            "clone(CLONE_NEWUSER): {}: see the sysctls above (or a seccomp filter of your sandbox)",
            errno.desc()
        )),
    }
}
// ANCHOR_END: try_user_namespace

/// newuidmap must be setuid root (or carry file capabilities) to write maps for us.
fn helper_outcome(helper: &str) -> Outcome {
    let Some(path) = crate::which(helper) else {
        return Outcome::Warn(
            "not on PATH: only root is mapped (0 -> your uid); install it: sudo apt-get install uidmap".into(),
        );
    };
    let setuid = fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o4000 != 0)
        .unwrap_or(false);
    if setuid || has_file_caps(&path) {
        Outcome::Ok(format!(
            "{} ({})",
            path.display(),
            if setuid {
                "setuid root"
            } else {
                "file capabilities"
            }
        ))
    } else {
        Outcome::Fail(format!(
            "{} is neither setuid nor has file capabilities, so it cannot write maps: \
             sudo chmod u+s {} (or sudo setcap cap_setuid+ep {})",
            path.display(),
            path.display(),
            path.display()
        ))
    }
}

fn has_file_caps(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a size query (NULL buffer) of an extended attribute by a valid C string.
    let size = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size > 0
}

/// The user's ranges: present, large enough, not shared with anyone else.
/// `free` is where a new range would overlap nobody's, for the fix.
pub fn ranges_outcome(
    file: &str,
    user: &str,
    own: &[SubRange],
    all: &[SubRange],
    free: &Result<u32, String>,
) -> Outcome {
    if own.is_empty() {
        let fix = match free {
            Ok(start) => subid::usermod_fix(user, *start),
            Err(why) => format!("give {user} a range of 65536 ids; none can be suggested: {why}"),
        };
        return Outcome::Warn(format!(
            "no range for {user}: only root is mapped; for users 1-65536: {fix}"
        ));
    }
    let total: u128 = own.iter().map(|r| u128::from(r.count)).sum();
    for mine in own {
        let clash = all
            .iter()
            .find(|other| other.owner != mine.owner && other.overlaps(mine.start, mine.count));
        if let Some(other) = clash {
            return Outcome::Fail(format!(
                "{user}'s range {}:{} overlaps {}'s {}:{}: two users would share host ids; give each its own range in {file}",
                mine.start,
                mine.count,
                other.owner_lossy(),
                other.start,
                other.count
            ));
        }
    }
    if total < u128::from(FULL_RANGE) {
        return Outcome::Warn(format!(
            "{user} has {total} subordinate ids; images expect ids up to 65535 (nobody): give {FULL_RANGE}"
        ));
    }
    let shown: Vec<String> = own
        .iter()
        .map(|r| format!("{}:{}", r.start, r.count))
        .collect();
    Outcome::Ok(format!("{user} has {}", shown.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(bytes: &[u8]) -> Vec<SubRange> {
        SubidFile::parse("f", bytes).ranges().cloned().collect()
    }

    #[test]
    fn ranges_are_judged() {
        let all = ranges(b"alice:100000:65536\nbob:150000:65536\ncarol:300000:1000\n");
        let of = |name: &str| {
            all.iter()
                .filter(|r| r.owner == name.as_bytes())
                .cloned()
                .collect::<Vec<_>>()
        };
        let free = Ok(300000);
        assert!(matches!(
            ranges_outcome("f", "alice", &of("alice"), &all, &free),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            ranges_outcome("f", "carol", &of("carol"), &all, &free),
            Outcome::Warn(_)
        ));
        assert!(matches!(
            ranges_outcome("f", "dave", &of("dave"), &all, &free),
            Outcome::Warn(_)
        ));
        let fine = ranges(b"alice:100000:65536\n");
        assert!(matches!(
            ranges_outcome("f", "alice", &fine, &fine, &free),
            Outcome::Ok(_)
        ));
    }

    #[test]
    fn huge_ranges_are_judged_without_overflow() {
        let all = ranges(b"alice:-1:-1\nbob:-1:-1\nalice:0:-1\n");
        let alice: Vec<SubRange> = all
            .iter()
            .filter(|r| r.owner == b"alice")
            .cloned()
            .collect();
        assert!(matches!(
            ranges_outcome("f", "alice", &alice, &all, &Err("full".into())),
            Outcome::Fail(_)
        ));
    }

    #[test]
    fn without_a_free_range_the_warning_says_why() {
        let Outcome::Warn(text) = ranges_outcome("f", "dave", &[], &[], &Err("line 3".into()))
        else {
            panic!("a user without ranges gets a warning");
        };
        assert!(
            text.contains("line 3") && !text.contains("usermod"),
            "{text}"
        );
    }
}
