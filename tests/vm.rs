//! The VM harness itself (`keel_graders::vm`), before stage 6's graders rely on it: in
//! the guest, cgroup v2 is the only hierarchy, its limits work (a memory hog is
//! OOM-killed), the ordinary user can make and limit cgroups in its delegated subtree
//! (and only there), and a stage binary, dynamically linked, runs a container as root
//! and as that user.
//!
//! One boot for all of it: each boot costs seconds of emulation.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use keel_graders::vm::{self, Finished, Script};
use keel_graders::{need, skip};

/// Runs as root in the guest; prints `key=value` lines for the checks below.
const SCRIPT: &str = r#"
set -eu
cg=/sys/fs/cgroup
echo "fstype=$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)"
echo "v1_mounts=$(awk '$3 == "cgroup"' /proc/mounts | wc -l)"
echo "controllers=$(cat $cg/cgroup.controllers)"
echo "subtree_control=$(cat $cg/cgroup.subtree_control)"

# A memory hog alone in a cgroup limited to 32 MiB: tail keeps the endless line of
# /dev/zero in memory. Alone, so that the OOM killer has one process to choose.
mkdir $cg/hog
echo 32M > $cg/hog/memory.max
hog=0
sh -c "echo \$\$ > $cg/hog/cgroup.procs; exec tail /dev/zero" || hog=$?
echo "hog_status=$hog"
# memory.events: "max" counts hits of the limit, "oom" the cgroup's own OOMs (not the
# whole machine's), "oom_kill" the processes its OOM killer killed.
awk '{ print "hog_" $1 "=" $2 }' $cg/hog/memory.events

# The ordinary user, in its delegated subtree.
as-user sh -eu -c '
    d=$KEEL_VM_DELEGATED
    echo "user_id=$(id -u)"
    echo "user_cgroup=$(cut -d: -f3 /proc/self/cgroup)"
    echo "+memory +pids" > $d/cgroup.subtree_control
    mkdir $d/box
    echo 20M > $d/box/memory.max
    echo 5 > $d/box/pids.max
    echo "box_memory_max=$(cat $d/box/memory.max)"
    # A shell in the box forks until the kernel refuses (then ash gives up):
    # the shell and four sleeps make five.
    sh -c "echo \$\$ > $d/box/cgroup.procs
        echo box_cgroup=\$(cut -d: -f3 /proc/self/cgroup)
        for i in 1 2 3 4 5 6 7 8; do sleep 30 & done" 2>/dev/null || true
    echo "box_sleeps=$(cat $d/box/pids.current)"
    echo "box_pids_max_events=$(awk "\$1 == \"max\" { print \$2 }" $d/box/pids.events)"
    kill $(cat $d/box/cgroup.procs)
    # The limits of the subtree itself stay with root, as with systemd.
    if { echo 1G > $d/memory.max; } 2>/dev/null; then
        echo "user_raised_own_limit=yes"
    else
        echo "user_raised_own_limit=no"
    fi
'

# A dynamically linked stage binary runs a container (pivot_root included), as root
# and as the user (the host's setuid newuidmap maps its subordinate ids).
mkdir -p /tmp/rootfs/bin
cp /bin/busybox /tmp/rootfs/bin/
keel-stage05 run --rootfs /tmp/rootfs --network none /bin/busybox sh -c 'echo "container_pid=$$"'
as-user sh -eu -c '
    cp -r /tmp/rootfs ~/rootfs
    keel-stage05 run --rootfs ~/rootfs --network none /bin/busybox sh -c \
        "echo rootless_uid_map=\$(cat /proc/self/uid_map); echo rootless_pid=\$\$"
'
"#;

/// The `key=value` lines of the script's stdout.
fn values(run: &Finished) -> BTreeMap<&str, &str> {
    run.output
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

#[test]
fn cgroup_v2_limits_and_delegation_work_in_the_vm() {
    for helper in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        if !Path::new(helper).exists() {
            skip!("{helper} is missing: apt-get install uidmap");
        }
    }
    let run = need!(
        Script::new(SCRIPT)
            .binary_at(
                env!("CARGO_BIN_EXE_keel-stage05"),
                "/usr/local/bin/keel-stage05"
            )
            .binary("/usr/bin/newuidmap")
            .binary("/usr/bin/newgidmap")
            .run()
    );
    eprintln!(
        "vm: script started {:.1} s after qemu, qemu exited after {:.1} s",
        run.boot.as_secs_f64(),
        run.total.as_secs_f64()
    );
    assert_eq!(run.output.code, 0, "{}", run.output);
    let values = values(&run);
    let value = |key: &str| values.get(key).copied().unwrap_or("<missing>");

    assert_eq!(value("fstype"), "cgroup2", "{}", run.output);
    assert_eq!(value("v1_mounts"), "0", "{}", run.output);
    let controllers: Vec<&str> = value("controllers").split_whitespace().collect();
    let enabled: Vec<&str> = value("subtree_control").split_whitespace().collect();
    for controller in ["cpu", "io", "memory", "pids"] {
        assert!(controllers.contains(&controller), "{}", run.output);
        assert!(enabled.contains(&controller), "{}", run.output);
    }

    // Killed by SIGKILL (the OOM killer), seen by the shell as 128 + 9.
    assert_eq!(value("hog_status"), "137", "{}", run.output);
    let count = |key: &str| value(key).parse::<u64>().unwrap_or(0);
    assert!(
        count("hog_max") > 0,
        "the limit was never hit: {}",
        run.output
    );
    assert!(
        count("hog_oom") > 0,
        "no OOM of the cgroup's: {}",
        run.output
    );
    assert_eq!(
        value("hog_oom_kill"),
        "1",
        "{}\n{}",
        run.output,
        run.console
    );

    assert_eq!(value("user_id"), vm::UID.to_string(), "{}", run.output);
    let delegated = vm::DELEGATED.trim_start_matches("/sys/fs/cgroup");
    assert_eq!(
        value("user_cgroup"),
        format!("{delegated}/session.scope"),
        "{}",
        run.output
    );
    assert_eq!(
        value("box_cgroup"),
        format!("{delegated}/box"),
        "{}",
        run.output
    );
    assert_eq!(
        value("box_memory_max"),
        (20 << 20).to_string(),
        "{}",
        run.output
    );
    assert_eq!(value("box_sleeps"), "4", "{}", run.output);
    let refused: u32 = value("box_pids_max_events").parse().unwrap_or(0);
    assert!(refused > 0, "no fork was refused: {}", run.output);
    assert_eq!(value("user_raised_own_limit"), "no", "{}", run.output);

    assert_eq!(value("container_pid"), "1", "{}", run.output);
    let uid_map = format!("0 {} 1 1 {} {}", vm::UID, vm::SUBID_START, vm::SUBID_COUNT);
    let seen: Vec<&str> = value("rootless_uid_map").split_whitespace().collect();
    assert_eq!(seen.join(" "), uid_map, "{}", run.output);
    assert_eq!(value("rootless_pid"), "1", "{}", run.output);
}

/// A script that does not end is killed at its timeout, and what it printed before is
/// still reported, byte for byte.
#[test]
fn a_script_past_its_timeout_is_killed_and_reported() {
    let run = need!(
        Script::new("echo before\nhead -c 262144 /dev/zero | tr '\\0' x\nsleep 600\necho after\n")
            .timeout(Duration::from_secs(3))
            .run()
    );
    eprintln!("vm: qemu exited after {:.1} s", run.total.as_secs_f64());
    assert_eq!(run.output.code, 137, "{}", run.output);
    let expected = format!("before\n{}", "x".repeat(262_144));
    assert!(run.output.stdout == expected, "{}", run.output.stderr);
}
