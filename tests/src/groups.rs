//! A group of the machine, made by a grader and removed after it: for graders of what
//! a supplementary group changes (stage 3: a group that keeps its members *out* of a
//! file, which container root must not be able to leave).
//!
//! ```text
//! let denied = TestGroup::create("keel-denied", &[user]);   // groupadd --users ...
//! let stage = busybox_as(user).as_user(user.run_as().with_groups(denied.login_groups(user)));
//! ...                                                        // dropped: groupdel
//! ```
//!
//! `groupadd` and `groupdel` take shadow's own locks on /etc/group. The graders' lock
//! (`groups.lock`, exclusive, held while the group exists) keeps two tests, in this
//! process or another, from making or removing a group of the same name at once.

use std::ffi::CString;
use std::fs::File;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use crate::users::{TestUser, flock, open_lock, run};

/// A group that exists while this value lives.
#[derive(Debug)]
pub struct TestGroup {
    pub name: String,
    pub gid: u32,
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

impl TestGroup {
    /// Creates the group `name` with `members` (in /etc/group), removing first one that
    /// a killed test left behind.
    pub fn create(name: &str, members: &[&TestUser]) -> Self {
        static IN_PROCESS: Mutex<()> = Mutex::new(());
        let guard = IN_PROCESS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let file = open_lock("groups.lock")
            .and_then(|file| flock(&file, libc::LOCK_EX).map(|()| file))
            .unwrap_or_else(|err| panic!("cannot lock the graders' groups: {err}"));
        if gid_of(name).is_some() {
            run(Command::new("groupdel").arg(name))
                .unwrap_or_else(|err| panic!("removing a leftover group {name}: {err}"));
        }
        let names: Vec<&str> = members.iter().map(|u| u.name.as_str()).collect();
        let mut groupadd = Command::new("groupadd");
        if !names.is_empty() {
            groupadd.args(["--users", &names.join(",")]);
        }
        run(groupadd.arg(name)).unwrap_or_else(|err| panic!("creating the group {name}: {err}"));
        let gid = gid_of(name).unwrap_or_else(|| panic!("groupadd did not create {name}"));
        Self {
            name: name.to_owned(),
            gid,
            _file: file,
            _guard: guard,
        }
    }

    /// The groups a login of `user` would have (`getgrouplist`, what `initgroups` sets):
    /// its own group and every group that lists it, this one included.
    pub fn login_groups(&self, user: &TestUser) -> Vec<u32> {
        let name = CString::new(user.name.as_str()).expect("a user name has no NUL");
        let groups = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(user.gid))
            .unwrap_or_else(|err| panic!("getgrouplist({}): {err}", user.name));
        let groups: Vec<u32> = groups.into_iter().map(|g| g.as_raw()).collect();
        assert!(
            groups.contains(&self.gid),
            "{} should be a member of {}: {groups:?}",
            user.name,
            self.name
        );
        groups
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        if let Err(err) = run(Command::new("groupdel").arg(&self.name)) {
            eprintln!("keel graders: cannot remove the group {}: {err}", self.name);
        }
    }
}

fn gid_of(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}
