//! `cargo xtask bench`: how long starting a container takes, next to the tools people
//! know.
//!
//! Each command runs `/bin/true`, so what is measured is the runtime's own cost. The
//! commands take turns (A B C A B C ...) so that a slow moment of the machine hits
//! them all alike, after a few warm-up rounds that fill the page cache. This is a
//! measurement to read, never a test that fails on a number.

use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cmd;
use crate::workspace;
use crate::{bundle, rootfs};

/// Rounds run and thrown away before measuring.
pub(crate) const WARM_UP: usize = 3;

/// Runs of each command whose peak memory is measured.
const PEAK_RUNS: usize = 9;

/// Who runs a command: root, or the ordinary user made for the rootless comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum As {
    Root,
    User,
}

/// One command of the comparison.
#[derive(Debug)]
pub(crate) struct Contender {
    pub(crate) name: &'static str,
    /// The command line, split at spaces; `{rootfs}` is the busybox rootfs,
    /// `{release}` the directory of the workspace's release binaries (root's, mode
    /// 0755: what an installation in /usr/local/bin gives), `{installed}` the same for
    /// the build the README installs (static, see `workspace::STATIC_TARGET`; the
    /// release build where the machine cannot make it), `{owned}` copies of them
    /// that the bench user owns (what its `cargo build` gives: a user's runtime copies
    /// and re-executes itself only then, see common/src/sealed.rs), `{sealed}` the
    /// same binaries already in sealed memfds (so that root's runs do not copy and
    /// re-execute themselves: the difference is what that costs), `{uid}` the uid of the user it
    /// runs as, `{bundle}` an OCI bundle of the rootfs (root's or the user's) and
    /// `{state}` a state directory for crun and runc.
    pub(crate) line: &'static str,
    /// The workspace package to build in release mode first, if any.
    pub(crate) package: Option<&'static str>,
    pub(crate) runs_as: As,
}

/// The name of the unprivileged user the rootless group runs as; it is created for
/// the benchmark (with subordinate ids, as `useradd` gives them) and removed after.
pub(crate) const BENCH_USER: &str = "keel-bench";

/// The rootless rows both tables share.
const STAGE03: Contender = Contender {
    name: "stage03-userns",
    line: "{release}/stage03-userns run --rootfs {rootfs} -- /bin/true",
    package: Some("stage03-userns"),
    runs_as: As::User,
};

const STAGE03_OWNED: Contender = Contender {
    name: "stage03 own binary",
    line: "{owned}/stage03-userns run --rootfs {rootfs} -- /bin/true",
    package: Some("stage03-userns"),
    runs_as: As::User,
};

const UNSHARE_USER: Contender = Contender {
    name: "unshare -Ur",
    line: "unshare -Urfp --mount-proc true",
    package: None,
    runs_as: As::User,
};

/// The other tools, as root and as the user: every comparison's reference rows.
const UNSHARE: Contender = Contender {
    name: "unshare",
    line: "unshare -fp --mount-proc true",
    package: None,
    runs_as: As::Root,
};

const BWRAP: Contender = Contender {
    name: "bwrap",
    line: "bwrap --unshare-all --die-with-parent --bind {rootfs} / --proc /proc --dev /dev /bin/true",
    package: None,
    runs_as: As::Root,
};

const CRUN: Contender = Contender {
    name: "crun",
    line: "crun --root {state} run --bundle {bundle} keel-bench",
    package: None,
    runs_as: As::Root,
};

const RUNC: Contender = Contender {
    name: "runc",
    line: "runc --root {state} run --bundle {bundle} keel-bench",
    package: None,
    runs_as: As::Root,
};

const BWRAP_USER: Contender = Contender {
    name: "bwrap (user)",
    line: "bwrap --unshare-all --die-with-parent --bind {rootfs} / --proc /proc --dev /dev /bin/true",
    package: None,
    runs_as: As::User,
};

const CRUN_USER: Contender = Contender {
    name: "crun (user)",
    line: "crun --root {state} run --bundle {bundle} keel-bench",
    package: None,
    runs_as: As::User,
};

/// What is compared, in two groups: as root, and rootless as the same ordinary user.
/// Each group has its own baseline, the `unshare` line. A later stage adds its own
/// runtime and the tool to compare it with.
const CONTENDERS: &[Contender] = &[
    Contender {
        name: "stage02-mountns",
        line: "{release}/stage02-mountns run --rootfs {rootfs} -- /bin/true",
        package: Some("stage02-mountns"),
        runs_as: As::Root,
    },
    Contender {
        name: "stage02 no reexec",
        line: "{sealed}/stage02-mountns run --rootfs {rootfs} -- /bin/true",
        package: Some("stage02-mountns"),
        runs_as: As::Root,
    },
    Contender {
        name: "stage02 -t",
        line: "{release}/stage02-mountns run -t --rootfs {rootfs} -- /bin/true",
        package: Some("stage02-mountns"),
        runs_as: As::Root,
    },
    UNSHARE,
    BWRAP,
    CRUN,
    RUNC,
    STAGE03,
    STAGE03_OWNED,
    Contender {
        name: "stage03 -t",
        line: "{release}/stage03-userns run -t --rootfs {rootfs} -- /bin/true",
        package: Some("stage03-userns"),
        runs_as: As::User,
    },
    Contender {
        name: "stage03 0:uid:1",
        line: "{release}/stage03-userns run --rootfs {rootfs} --uidmap 0:{uid}:1 -- /bin/true",
        package: Some("stage03-userns"),
        runs_as: As::User,
    },
    UNSHARE_USER,
    BWRAP_USER,
    CRUN_USER,
];

/// Stage 4's start-up (`cargo xtask bench net`): with no network, and with each
/// rootless one, against stage 3's, as the same user. `host` has the /etc files but no
/// network namespace; the "own binary" rows run the user's own copies, which copy and
/// re-execute themselves first: that costs more for stage 4's larger binary.
const NET_CONTENDERS: &[Contender] = &[
    STAGE03,
    Contender {
        name: "stage04 none",
        line: "{release}/stage04-net run --rootfs {rootfs} --network none -- /bin/true",
        package: Some("stage04-net"),
        runs_as: As::User,
    },
    Contender {
        name: "stage04 host",
        line: "{release}/stage04-net run --rootfs {rootfs} --network host -- /bin/true",
        package: Some("stage04-net"),
        runs_as: As::User,
    },
    STAGE03_OWNED,
    Contender {
        name: "stage04 none own binary",
        line: "{owned}/stage04-net run --rootfs {rootfs} --network none -- /bin/true",
        package: Some("stage04-net"),
        runs_as: As::User,
    },
    Contender {
        name: "stage04 slirp4netns",
        line: "{release}/stage04-net run --rootfs {rootfs} --network slirp4netns -- /bin/true",
        package: Some("stage04-net"),
        runs_as: As::User,
    },
    Contender {
        name: "stage04 pasta",
        line: "{release}/stage04-net run --rootfs {rootfs} --network pasta -- /bin/true",
        package: Some("stage04-net"),
        runs_as: As::User,
    },
    UNSHARE_USER,
];

/// Stage 6's rows, which `cargo xtask layout` runs too (see [`crate::layout`]).
pub(crate) const STAGE06_USER: Contender = Contender {
    name: "stage06 image (user)",
    line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {installed}/stage06-cgroups run --rm --network none busybox /bin/true",
    package: Some("stage06-cgroups"),
    runs_as: As::User,
};
pub(crate) const STAGE06_IMAGE: Contender = Contender {
    name: "stage06 image",
    line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {installed}/stage06-cgroups run --rm --network none busybox /bin/true",
    package: Some("stage06-cgroups"),
    runs_as: As::Root,
};
pub(crate) const STAGE06_MEMORY: Contender = Contender {
    name: "stage06 --memory",
    line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {installed}/stage06-cgroups run --rm --network none --memory 64m busybox /bin/true",
    package: Some("stage06-cgroups"),
    runs_as: As::Root,
};

/// Stage 6, the whole runtime (`cargo xtask bench start`): an image on an overlay,
/// every namespace, no network, removed after the run; as root also in a cgroup of
/// its own. Next to it: stage 5 (the same without cgroups), runc, crun, bubblewrap and
/// the `unshare` floor. `{store}` is an image store of the user's (root's or the bench
/// user's) that the warm-up rounds fill with the offline busybox image; `{xdg}` a
/// runtime directory on a tmpfs, as logind gives every user (`/run/user/UID`), where
/// the containers' records go (root's, `/run/keel`, gets a tmpfs of the benchmark's
/// own: this machine's `/run` is not one, as it is on most).
const START_CONTENDERS: &[Contender] = &[
    STAGE06_IMAGE,
    STAGE06_MEMORY,
    Contender {
        name: "stage05 image",
        line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {release}/stage05-overlay run --rm --network none busybox /bin/true",
        package: Some("stage05-overlay"),
        runs_as: As::Root,
    },
    UNSHARE,
    BWRAP,
    CRUN,
    RUNC,
    STAGE06_USER,
    // The same code linked with glibc, as `cargo build --release` makes it: the
    // difference is what the C library's own start costs (chapter 6).
    Contender {
        name: "stage06 glibc build (user)",
        line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {release}/stage06-cgroups run --rm --network none busybox /bin/true",
        package: Some("stage06-cgroups"),
        runs_as: As::User,
    },
    // The user's own build (what `cargo build` makes): it re-executes through a
    // read-only view of itself first (common/src/exe_view.rs).
    Contender {
        name: "stage06 own build (user)",
        line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {owned}/stage06-cgroups run --rm --network none busybox /bin/true",
        package: Some("stage06-cgroups"),
        runs_as: As::User,
    },
    Contender {
        name: "stage05 image (user)",
        line: "XDG_RUNTIME_DIR={xdg} KEEL_STORE={store} {release}/stage05-overlay run --rm --network none busybox /bin/true",
        package: Some("stage05-overlay"),
        runs_as: As::User,
    },
    UNSHARE_USER,
    BWRAP_USER,
    CRUN_USER,
];

/// Where the commands find what they need.
#[derive(Debug)]
pub(crate) struct Places {
    pub(crate) rootfs: PathBuf,
    pub(crate) release: PathBuf,
    /// The builds the README installs (`{installed}`).
    pub(crate) installed: PathBuf,
    /// The same binaries, the bench user's own.
    owned: PathBuf,
    /// `/proc/self/fd/N` of a sealed memfd per release binary (by file name).
    sealed: Vec<(String, PathBuf)>,
    /// Bundle and state directory, for root and for the user.
    bundles: [PathBuf; 2],
    states: [PathBuf; 2],
    /// Image stores (stage 5 and 6), for root and for the user.
    stores: [PathBuf; 2],
    /// Runtime directories on a tmpfs, for root and for the user.
    runtime_dirs: [PathBuf; 2],
}

impl Contender {
    /// The command, its placeholders filled in, run as `user` when it is rootless.
    pub(crate) fn command(&self, places: &Places, user: Option<(u32, u32)>) -> Command {
        let uid = user.map_or(0, |(uid, _)| uid).to_string();
        let which = usize::from(self.runs_as == As::User);
        // Leading `KEY=VALUE` words are the environment, as in a shell.
        let words: Vec<&str> = self.line.split_whitespace().collect();
        let assignments = words.iter().take_while(|w| w.contains('=')).count();
        let (env, words) = words.split_at(assignments);
        let mut argv = words.iter().map(|&word| match word {
            "{rootfs}" => OsString::from(&places.rootfs),
            "{bundle}" => OsString::from(&places.bundles[which]),
            "{state}" => OsString::from(&places.states[which]),
            _ if word.contains("{uid}") => OsString::from(word.replace("{uid}", &uid)),
            _ => {
                if let Some(binary) = word.strip_prefix("{release}/") {
                    places.release.join(binary).into_os_string()
                } else if let Some(binary) = word.strip_prefix("{installed}/") {
                    places.installed.join(binary).into_os_string()
                } else if let Some(binary) = word.strip_prefix("{owned}/") {
                    places.owned.join(binary).into_os_string()
                } else if let Some(binary) = word.strip_prefix("{sealed}/") {
                    let found = places.sealed.iter().find(|(name, _)| name == binary);
                    found.map_or_else(|| OsString::from(word), |(_, path)| path.into())
                } else {
                    OsString::from(word)
                }
            }
        });
        let mut command = Command::new(argv.next().expect("a command line is not empty"));
        command.args(argv);
        for assignment in env {
            let (key, value) = assignment.split_once('=').unwrap_or_default();
            match value {
                "{store}" => command.env(key, &places.stores[which]),
                "{xdg}" => command.env(key, &places.runtime_dirs[which]),
                _ => command.env(key, value),
            };
        }
        if let (As::User, Some((uid, gid))) = (self.runs_as, user) {
            // Set in the child before exec: no extra program (su, setpriv) is timed.
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Why it cannot run here, if it cannot.
    fn unavailable(&self) -> Option<String> {
        let program = self
            .line
            .split_whitespace()
            .find(|w| !w.contains('='))
            .unwrap_or_default();
        if self.package.is_none() && workspace::which(program).is_none() {
            Some(format!("{program} is not installed"))
        } else if self.line.contains("{bundle}") && workspace::which("crun").is_none() {
            // Every OCI bundle is made by `crun spec`, runc's too.
            Some("crun is not installed (it writes the OCI bundles)".to_owned())
        } else if !workspace::is_root() {
            Some("needs root (root runs one group and makes the user of the other)".to_owned())
        } else {
            None
        }
    }
}

/// One run's cost: wall time, and CPU time of the whole process tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
}

/// Runs the comparison, `runs` times each.
pub fn run(runs: usize) -> Result<()> {
    Setup::new(CONTENDERS, false)?.compare(runs, "unshare")
}

/// Stage 6's start-up against the other runtimes (`cargo xtask bench start`), then
/// each one's peak memory.
pub fn run_start(runs: usize) -> Result<()> {
    let setup = Setup::new(START_CONTENDERS, false)?;
    for dir in [&setup.places.installed, &setup.places.release] {
        let binary = dir.join("stage06-cgroups");
        match crate::layout::coverage(&binary) {
            Ok((found, named)) => println!(
                "code layout: {found} of the {named} functions of {} are in {} \
                 (each build has about half of them; far fewer: run `cargo xtask layout`)",
                crate::layout::ORDER,
                binary.display()
            ),
            Err(err) => println!("code layout: not checked ({err:#})"),
        }
    }
    setup.compare(runs, "unshare")?;
    setup.peak_memory()
}

/// Stage 4's start-up against stage 3's, then the throughput of its port drivers
/// (see [`crate::bench_net`]).
pub fn run_net(runs: usize, mib: u64) -> Result<()> {
    let setup = Setup::new(NET_CONTENDERS, true)?;
    setup.compare(runs, "stage03-userns")?;
    crate::bench_net::throughput(&setup, mib)
}

/// What a comparison runs in: the chosen commands, their places, the user.
pub(crate) struct Setup {
    chosen: Vec<&'static Contender>,
    pub(crate) places: Places,
    pub(crate) user: Option<BenchUser>,
    _place: tempfile::TempDir,
    _shm: tempfile::TempDir,
    _memfds: Vec<OwnedFd>,
}

impl Setup {
    /// Builds what `contenders` need (with the static probe in the rootfs when
    /// `probe`), copies it where the bench user can read it, and makes the user.
    pub(crate) fn new(contenders: &'static [Contender], probe: bool) -> Result<Self> {
        let mut chosen = Vec::new();
        for contender in contenders {
            match contender.unavailable() {
                Some(why) => println!("skipping {}: {why}", contender.name),
                None => chosen.push(contender),
            }
        }
        let mut packages: Vec<&str> = chosen.iter().filter_map(|c| c.package).collect();
        packages.sort();
        packages.dedup();
        if !packages.is_empty() {
            let mut build = workspace::cargo();
            build
                .current_dir(workspace::root())
                .args(["build", "--release"]);
            for package in &packages {
                build.args(["--package", package]);
            }
            cmd::run(&mut build)?;
        }
        if workspace::is_root() {
            without_the_unified_cgroup()?;
        }
        // Everything the ordinary user runs must be readable by it, wherever the
        // workspace lives: copy the binaries and build the rootfs in a world-readable
        // place.
        let place = tempfile::Builder::new().prefix("keel-bench-").tempdir()?;
        let shm = tempfile::Builder::new()
            .prefix("keel-bench-")
            .tempdir_in("/dev/shm")?;
        fs::set_permissions(shm.path(), fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(place.path(), fs::Permissions::from_mode(0o755))?;
        let rootfs = place.path().join("rootfs");
        rootfs::busybox(&rootfs)?;
        if probe {
            fs::copy(crate::probe::build()?, rootfs.join("bin/keel-probe"))?;
        }
        let release = place.path().join("bin");
        fs::create_dir(&release)?;
        let mut sealed = Vec::new();
        let mut memfds = Vec::new();
        for package in &packages {
            let binary = release.join(package);
            fs::copy(
                workspace::target_dir().join("release").join(package),
                &binary,
            )?;
            let memfd = sealed_copy(&binary)?;
            sealed.push((
                package.to_string(),
                PathBuf::from(format!("/proc/self/fd/{}", memfd.as_raw_fd())),
            ));
            memfds.push(memfd);
        }
        let installed = place.path().join("installed");
        fs::create_dir(&installed)?;
        let mut statics: Vec<&str> = chosen
            .iter()
            .filter(|c| c.line.contains("{installed}/"))
            .filter_map(|c| c.package)
            .collect();
        statics.dedup();
        for package in statics {
            let built = match workspace::static_build_missing() {
                None => workspace::build_static(package)?,
                Some(why) => {
                    println!("{package}: the release build stands for the installed one: {why}");
                    release.clone()
                }
            };
            fs::copy(built.join(package), installed.join(package))?;
        }
        let user = if chosen.iter().any(|c| c.runs_as == As::User) {
            Some(BenchUser::create()?)
        } else {
            None
        };
        let ids = user.as_ref().map(|u| (u.uid, u.gid));
        let owned = place.path().join("owned");
        fs::create_dir(&owned)?;
        if let Some((uid, gid)) = ids {
            for package in &packages {
                let binary = owned.join(package);
                fs::copy(release.join(package), &binary)?;
                std::os::unix::fs::chown(&binary, Some(uid), Some(gid))?;
            }
        }
        let places = Places {
            bundles: [
                place.path().join("bundle"),
                place.path().join("bundle-user"),
            ],
            states: [place.path().join("state"), place.path().join("state-user")],
            stores: [place.path().join("store"), place.path().join("store-user")],
            runtime_dirs: [shm.path().join("root"), shm.path().join("user")],
            rootfs,
            release,
            installed,
            owned,
            sealed,
        };
        if chosen.iter().any(|c| c.line.contains("{bundle}")) {
            prepare_bundles(&chosen, &places, ids)?;
        }
        if chosen.iter().any(|c| c.line.contains("{store}")) {
            for dir in places.stores.iter().chain(&places.runtime_dirs) {
                fs::create_dir(dir)?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            }
            if let Some((uid, gid)) = ids {
                std::os::unix::fs::chown(&places.stores[1], Some(uid), Some(gid))?;
                std::os::unix::fs::chown(&places.runtime_dirs[1], Some(uid), Some(gid))?;
            }
            if workspace::is_root() {
                run_on_tmpfs()?;
            }
        }
        Ok(Self {
            chosen,
            places,
            user,
            _place: place,
            _shm: shm,
            _memfds: memfds,
        })
    }

    /// Prints the largest resident set of each command's process tree, from runs under
    /// GNU time (`%M`). Not from the timed runs: a process forked from this large
    /// one starts its high-water mark at this one's size, and exec does not reset it;
    /// forked from the small `time`, it starts near 1 MB (`time true` shows the floor).
    fn peak_memory(&self) -> Result<()> {
        let Some(time) = workspace::which("time").filter(|t| t.starts_with("/usr/bin")) else {
            println!("\npeak memory: skipped (GNU time is not installed: apt-get install time)");
            return Ok(());
        };
        let ids = self.user.as_ref().map(|u| (u.uid, u.gid));
        let report = tempfile::NamedTempFile::new()?;
        // The rootless rows' time writes it too.
        fs::set_permissions(report.path(), fs::Permissions::from_mode(0o666))?;
        let width = name_width(self.chosen.iter().map(|c| c.name));
        println!(
            "\npeak resident set of the process tree (GNU time's %M): median of {PEAK_RUNS} runs, \
             lowest and highest"
        );
        // One run's figure moves by a few hundred KB from run to run: the kernel maps
        // code 64 KB at a time, aligned in memory, and where those windows fall on the
        // code depends on the address the program is loaded at, which is random.
        let peak = |command: &Command, user: Option<(u32, u32)>| -> Result<[f64; 3]> {
            let mut kib = Vec::with_capacity(PEAK_RUNS);
            for _ in 0..PEAK_RUNS {
                let mut time = Command::new(&time);
                time.args(["-f", "%M", "-o"])
                    .arg(report.path())
                    .arg(command.get_program());
                measure(&mut followed_by(time, command, user))?;
                kib.push(fs::read_to_string(report.path())?.trim().parse::<f64>()? / 1024.0);
            }
            kib.sort_by(f64::total_cmp);
            Ok([kib[PEAK_RUNS / 2], kib[0], kib[PEAK_RUNS - 1]])
        };
        let show = |name: &str, [median, low, high]: [f64; 3]| {
            println!("{name:<width$} {median:>6.2} MB  ({low:.2}-{high:.2})");
        };
        show("time true (the floor)", peak(&Command::new("true"), None)?);
        for contender in &self.chosen {
            let user = ids.filter(|_| contender.runs_as == As::User);
            show(
                contender.name,
                peak(&contender.command(&self.places, ids), user)?,
            );
        }
        Ok(())
    }

    /// Runs every chosen command `runs` times, taking turns in a new order each round,
    /// and prints the tables, each compared with its first row whose name starts with
    /// `baseline`.
    fn compare(&self, runs: usize, baseline: &str) -> Result<()> {
        if runs == 0 {
            bail!("--runs must be at least 1");
        }
        let ids = self.user.as_ref().map(|u| (u.uid, u.gid));
        let chosen = &self.chosen;
        let mut commands: Vec<Command> = chosen
            .iter()
            .map(|c| c.command(&self.places, ids))
            .collect();
        let width = name_width(chosen.iter().map(|c| c.name));
        for (contender, command) in chosen.iter().zip(&commands) {
            println!("{:<width$} {}", contender.name, cmd::describe(command));
        }
        let mut costs: Vec<Vec<Cost>> = vec![Vec::with_capacity(runs); chosen.len()];
        let mut order: Vec<usize> = (0..commands.len()).collect();
        let mut shuffle = Shuffle(0x9e37_79b9_7f4a_7c15);
        for round in 0..WARM_UP + runs {
            // A new order every round: a run pays for what the one before it left to
            // the kernel (namespaces and mounts are torn down after exit), and in a
            // fixed order one command would always follow the same other one.
            shuffle.apply(&mut order);
            for &i in &order {
                let cost = measure(&mut commands[i])?;
                if round >= WARM_UP {
                    costs[i].push(cost);
                }
            }
        }
        for group in [As::Root, As::User] {
            let (members, group_costs): (Vec<&str>, Vec<Vec<Cost>>) = chosen
                .iter()
                .zip(&costs)
                .filter(|(c, _)| c.runs_as == group)
                .map(|(c, costs)| (c.name, costs.clone()))
                .unzip();
            if !members.is_empty() {
                let who = match group {
                    As::Root => "as root".to_owned(),
                    As::User => format!("rootless, as the user {BENCH_USER}"),
                };
                report(&who, &members, &group_costs, WARM_UP, baseline);
            }
        }
        Ok(())
    }
}

/// A fixed sequence of shuffles (xorshift64 and Fisher-Yates): every bench takes the
/// same orders, and no dependency is needed for it.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn apply<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// crun 1.8 refuses this machine's hybrid cgroup layout (cgroup v1 controllers with an
/// empty cgroup2 at /sys/fs/cgroup/unified). In a mount namespace of the benchmark's
/// own, where that cgroup2 is unmounted, it sees plain v1 and runs; every command of
/// the comparison runs there alike. The host's mounts are not touched.
fn without_the_unified_cgroup() -> Result<()> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.is_dir() {
        let _ = umount2(unified, MntFlags::MNT_DETACH);
    }
    Ok(())
}

/// A tmpfs on `/run/keel`, in the benchmark's own mount namespace (see
/// [`without_the_unified_cgroup`]): root's container records go there, as they go to
/// a tmpfs on machines whose `/run` is one.
fn run_on_tmpfs() -> Result<()> {
    use nix::mount::{MsFlags, mount};
    let dir = Path::new("/run/keel");
    fs::create_dir_all(dir)?;
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0711"),
    )?;
    Ok(())
}

/// The OCI bundles and state directories of crun and runc, for root and the user.
fn prepare_bundles(chosen: &[&Contender], places: &Places, user: Option<(u32, u32)>) -> Result<()> {
    bundle::write(&places.bundles[0], &places.rootfs, None)?;
    fs::create_dir_all(&places.states[0])?;
    if let Some((uid, gid)) = user
        && chosen
            .iter()
            .any(|c| c.runs_as == As::User && c.line.contains("{bundle}"))
    {
        bundle::write(&places.bundles[1], &places.rootfs, Some((uid, gid)))?;
        fs::create_dir_all(&places.states[1])?;
        nix::unistd::chown(&places.states[1], Some(uid.into()), Some(gid.into()))?;
    }
    Ok(())
}

/// A sealed memfd holding `binary`, left open across exec: a runtime started from
/// `/proc/self/fd/N` of it finds itself sealed already and does not re-execute.
fn sealed_copy(binary: &Path) -> Result<OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let memfd = memfd_create(c"keel-bench", MFdFlags::MFD_ALLOW_SEALING)?;
    let mut file = fs::File::from(memfd.try_clone()?);
    std::io::copy(&mut fs::File::open(binary)?, &mut file)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&memfd, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(memfd)
}

/// The ordinary user of the rootless group, removed (with its subordinate ids) on drop.
pub(crate) struct BenchUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl BenchUser {
    fn create() -> Result<Self> {
        if nix::unistd::User::from_name(BENCH_USER)?.is_none() {
            cmd::run(Command::new("useradd").args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                BENCH_USER,
            ]))?;
        }
        let user = nix::unistd::User::from_name(BENCH_USER)?
            .ok_or_else(|| anyhow::anyhow!("useradd did not create {BENCH_USER}"))?;
        Ok(Self {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }
}

impl Drop for BenchUser {
    fn drop(&mut self) {
        // userdel also removes the user's lines of /etc/subuid and /etc/subgid.
        let _ = cmd::quiet(Command::new("userdel").arg(BENCH_USER));
    }
}

/// `prefix` followed by `command`'s arguments, with `command`'s environment, run as
/// `user` when given: `command` under another program (`time`), or another binary
/// in its place.
pub(crate) fn followed_by(
    mut prefix: Command,
    command: &Command,
    user: Option<(u32, u32)>,
) -> Command {
    prefix.args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            prefix.env(key, value);
        }
    }
    if let Some((uid, gid)) = user {
        prefix.uid(uid).gid(gid);
    }
    prefix
}

/// One run's wall and CPU time; fails with the command's stderr if it fails.
pub(crate) fn measure(command: &mut Command) -> Result<Cost> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn()?;
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_end(&mut pipe, &mut stderr)?;
    }
    // wait4 rather than Child::wait: it also returns the child's resource usage, its
    // reaped descendants' included.
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it in.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a child of ours, and pointers to locals alive for the call.
    let pid = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let tv = |t: nix::libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    let exited_ok = nix::libc::WIFEXITED(status) && nix::libc::WEXITSTATUS(status) == 0;
    if !exited_ok {
        bail!(
            "{} failed (wait status {status}):\n{}",
            cmd::describe(command),
            String::from_utf8_lossy(&stderr)
        );
    }
    Ok(Cost { wall, cpu })
}

/// Prints one table: a row per name with its costs' median, p10 and p90 (and the CPU
/// time's median), each compared with the first row whose name starts with `baseline`.
pub(crate) fn report(
    who: &str,
    names: &[&str],
    costs: &[Vec<Cost>],
    warm_up: usize,
    baseline: &str,
) {
    let runs = costs.first().map_or(0, Vec::len);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let sorted = |pick: fn(&Cost) -> Duration| -> Vec<Vec<Duration>> {
        costs
            .iter()
            .map(|c| {
                let mut v: Vec<Duration> = c.iter().map(pick).collect();
                v.sort();
                v
            })
            .collect()
    };
    let (walls, cpus) = (sorted(|c| c.wall), sorted(|c| c.cpu));
    let baseline = names
        .iter()
        .position(|name| name.starts_with(baseline))
        .map(|i| (names[i], ms(percentile(&walls[i], 50.0))));
    let rounds = if warm_up == 1 { "round" } else { "rounds" };
    println!(
        "\n{who}: {runs} runs each, in a new order each round, after {warm_up} warm-up {rounds}; times in ms"
    );
    let width = name_width(names.iter().copied());
    println!(
        "{:<width$} {:>8} {:>8} {:>8} {:>9}  vs {}",
        "command",
        "median",
        "p10",
        "p90",
        "cpu med",
        baseline.map_or("-", |b| b.0)
    );
    for (i, name) in names.iter().enumerate() {
        let median = ms(percentile(&walls[i], 50.0));
        let ratio = baseline.map_or("-".to_owned(), |(_, base)| format!("{:.2}x", median / base));
        println!(
            "{:<width$} {median:>8.2} {:>8.2} {:>8.2} {:>9.2}  {ratio}",
            name,
            ms(percentile(&walls[i], 10.0)),
            ms(percentile(&walls[i], 90.0)),
            ms(percentile(&cpus[i], 50.0)),
        );
    }
}

/// The `p`th percentile of sorted `values`, interpolating between neighbours.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let Some(last) = sorted.len().checked_sub(1) else {
        return Duration::ZERO;
    };
    let position = p / 100.0 * last as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let weight = position - low as f64;
    sorted[low].mul_f64(1.0 - weight) + sorted[high].mul_f64(weight)
}

/// The width of the name column: the longest name.
pub(crate) fn name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names
        .into_iter()
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max("command".len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&ms(&[1, 2, 3]), 50.0), Duration::from_millis(2));
        assert_eq!(
            percentile(&ms(&[1, 2, 3, 4]), 50.0),
            Duration::from_micros(2500)
        );
        assert_eq!(percentile(&ms(&[10, 20]), 0.0), Duration::from_millis(10));
        assert_eq!(percentile(&ms(&[10, 20]), 100.0), Duration::from_millis(20));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
