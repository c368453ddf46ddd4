//! The user's groups stay in force in the container.
//!
//! Unix checks a file's bits as owner, *else* as group, *else* as other, so a group can
//! take a right away: a file of mode 0604 owned by `root:keel-denied` can be read by
//! everyone except the members of `keel-denied`. Container root has `CAP_SETGID` in
//! its namespace; if it may call `setgroups(2)`, it leaves the group, falls under
//! "other", and reads the file. The stage must deny `setgroups` for every map a user
//! writes, with newgidmap too (which leaves it at "allow" when the map uses
//! /etc/subgid), and keep the user's groups.
//!
//! The graders make the group (`keel-denied`, removed afterwards), make the test user a
//! member, and run the stage as a login of that user would: in the groups
//! `getgrouplist` gives it.

use keel_graders::groups::TestGroup;
use keel_graders::{Output, RunAs};

use super::*;

/// The group that keeps its members out of the file.
const GROUP: &str = "keel-denied";

/// A directory every user may enter, holding `secret`: mode 0604, `root:<group>`.
fn denied_file(group: &TestGroup) -> tempfile::TempDir {
    let dir = users::dir_owned_by(0, 0, 0o755);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "not for keel-denied\n").expect("write the secret");
    nix::unistd::chown(&secret, None, Some(nix::unistd::Gid::from_raw(group.gid)))
        .expect("chown the secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o604))
        .expect("chmod the secret");
    dir
}

/// What a container of `stage` sees, with `dir` bound at `/root`: the setgroups
/// state, its groups, and whether the secret can be read.
fn look(stage: &Runtime, dir: &Path) -> Output {
    let out = stage
        .run()
        .args(["-v", &volume(dir, "/root", ":ro")])
        .sh(
            "cat /proc/self/setgroups; grep '^Groups:' /proc/self/status; \
             cat /root/secret >/dev/null 2>&1 && echo read || echo refused",
        )
        .output();
    out.expect_success();
    out
}

/// The ids that `Groups:` lists inside, sorted.
fn groups_inside(out: &Output) -> Vec<u32> {
    let line = out
        .lines()
        .into_iter()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_else(|| panic!("no Groups: line\n{out}"));
    let mut ids: Vec<u32> = line
        .split_whitespace()
        .map(|id| id.parse().expect("a group id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// How the container sees host group `gid`: through the gid map the stage writes for
/// `user` (its own gid is 0, its subordinate gids follow from 1), else as the overflow
/// gid 65534.
fn seen_inside(user: &TestUser, gid: u32) -> u32 {
    if gid == user.gid {
        return 0;
    }
    let mut next = 1u64;
    for range in &user.subgids {
        if range.overlaps(u64::from(gid), u64::from(gid)) {
            return (next + u64::from(gid - range.start)) as u32;
        }
        next += u64::from(range.count);
    }
    65534
}

/// The whole check, for `user` and its stage.
fn member_is_kept_out(user: &TestUser, stage: &Runtime) {
    let group = TestGroup::create(GROUP, &[user]);
    let dir = denied_file(&group);
    let _leaks = LeakCheck::start();

    // Without the group, the user is "other" to the file, and others may read it: the
    // file is readable for any reason but the group.
    let outsider = look(stage, dir.path());
    assert_eq!(
        outsider.lines().last().copied(),
        Some("read"),
        "without {GROUP}, {} should read a file of mode 0604 (others may)\n{outsider}",
        user.name
    );

    let groups = group.login_groups(user);
    let member = stage
        .clone()
        .as_user(user.run_as().with_groups(groups.clone()));
    let out = look(&member, dir.path());
    assert_eq!(
        out.lines().first().copied(),
        Some("deny"),
        "/proc/self/setgroups should read deny: with setgroups allowed, container root \
         can leave {GROUP} and read what the group keeps it from (newgidmap leaves it at \
         allow when the map uses /etc/subgid: write deny before running it)\n{out}"
    );
    let mut expected: Vec<u32> = groups.iter().map(|&g| seen_inside(user, g)).collect();
    expected.sort_unstable();
    assert_eq!(
        groups_inside(&out),
        expected,
        "the container should keep {}'s groups {groups:?} (unmapped ones show as 65534), \
         not drop them with setgroups([])\n{out}",
        user.name
    );
    assert_eq!(
        out.lines().last().copied(),
        Some("refused"),
        "{} is a member of {GROUP}, which may not read the secret (mode 0604, \
         root:{GROUP}); neither may its container\n{out}",
        user.name
    );

    // And container root cannot leave the group itself.
    let report = probe_call(&member, &[], &["setgroups"]);
    assert!(
        !report.ok && report.errno == Some(EPERM),
        "setgroups([]) inside must fail with EPERM, or container root leaves {GROUP}: \
         {report:?}"
    );
}

#[test]
fn user_with_ranges_cannot_read_what_its_group_is_denied() {
    let (user, stage) = need!(with_ranges());
    member_is_kept_out(user, &stage);
}

#[test]
fn user_without_ranges_cannot_read_what_its_group_is_denied() {
    let (user, stage) = need!(without_ranges());
    member_is_kept_out(user, &stage);
}

/// Root's maps (`--userns auto`) leave setgroups allowed, and root's container starts
/// without root's host groups: for root, leaving a group only gives rights up.
#[test]
fn root_with_userns_auto_starts_without_its_host_groups() {
    let stage = need!(root_busybox());
    let group = TestGroup::create(GROUP, &[]);
    let _subid = users::KeelRangeGuard::acquire();
    let _leaks = LeakCheck::start();
    let root = RunAs {
        name: "root".into(),
        uid: 0,
        gid: 0,
        groups: vec![0, group.gid],
        env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
    };
    let out = stage
        .as_user(root)
        .run()
        .args(["--userns", "auto"])
        .sh("cat /proc/self/setgroups; grep '^Groups:' /proc/self/status")
        .output();
    out.expect_success();
    assert_eq!(
        out.lines().first().copied(),
        Some("allow"),
        "root writes its maps itself, with setgroups allowed\n{out}"
    );
    assert!(
        groups_inside(&out).is_empty(),
        "root's container should start with no supplementary groups (setgroups([])), \
         not with root's host groups\n{out}"
    );
}
