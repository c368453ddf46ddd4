//! The full runtime: containers that outlive the command that started them.
//!
//! Stages 1 to 5 run one container in the foreground and forget it. Here every
//! container gets a record (see [`state`]) from `run` on, named by its id and a
//! name, so that other commands can find it: `ps`, `logs`, `exec`, `stop`, `kill`,
//! `wait`, `rm`. With `-d` a supervisor (see [`supervisor`]) keeps it.
//!
//! - [`state`]: the record, in `$XDG_RUNTIME_DIR/keel/containers/<id>/`;
//! - [`pidfd`]: waiting for and signalling processes that are not our children;
//! - [`supervisor`]: `run -d`;
//! - [`logs`]: the log of a detached container;
//! - [`exec`]: a process joined to a running container (setns);
//! - [`stop`]: `stop`, `kill`, `wait`;
//! - [`rm`], [`ps`], [`top`] (`stats`);
//! - [`readonly`], for `--read-only`.

pub mod commands;
pub mod exec;
pub mod logs;
pub mod pidfd;
pub mod ps;
pub mod readonly;
pub mod rm;
pub mod state;
pub mod stop;
pub mod supervisor;
pub mod time;
pub mod top;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{Result, bail};
use common::runner::{Started, run_container};
use common::{Process, capabilities};
use stage05_overlay::container::Container;
use stage05_overlay::store::Store;

use self::state::{State, Status};
use crate::Args;
use common::state::Owner;

/// `run`'s options of the runtime.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage06-runtime")]
pub struct RunOptions {
    /// Run in the background: print the id and exit; the output goes to `keel logs`.
    #[arg(short = 'd', long, help_heading = "Stage 6: the runtime")]
    pub detach: bool,
    /// A name for the container, for the other commands (default: its id).
    #[arg(long, value_name = "NAME", help_heading = "Stage 6: the runtime")]
    pub name: Option<String>,
    /// Mount the container's root filesystem read-only (/tmp, /dev and -v stay as they are).
    #[arg(long, help_heading = "Stage 6: the runtime")]
    pub read_only: bool,
    /// Restart policy: only `no` (keel has no daemon that could restart a container).
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "no",
        help_heading = "Stage 6: the runtime"
    )]
    pub restart: String,
    /// Give container root one more capability (NET_ADMIN, SYS_PTRACE, ..., or ALL).
    #[arg(
        long = "cap-add",
        value_name = "CAP",
        help_heading = "Stage 6: the runtime"
    )]
    pub cap_add: Vec<String>,
    /// Take a capability from container root (CHOWN, KILL, ..., or ALL).
    #[arg(
        long = "cap-drop",
        value_name = "CAP",
        help_heading = "Stage 6: the runtime"
    )]
    pub cap_drop: Vec<String>,
}

impl RunOptions {
    fn check(&self) -> Result<()> {
        if self.restart != "no" {
            bail!(
                "--restart {}: only --restart no is supported: keel has no daemon that \
                 outlives a container to start it again (use a systemd unit with \
                 Restart=, or a loop in a script)",
                self.restart
            );
        }
        if let Some(name) = &self.name {
            state::check_name(name)?;
        }
        Ok(())
    }
}

// ANCHOR: run
/// `run`: records the container, then runs it in the foreground or detached.
pub fn run(mut process: Process, args: &Args) -> Result<i32> {
    args.runtime.check()?;
    let kept = capabilities::kept(&args.runtime.cap_add, &args.runtime.cap_drop)?;
    process.capabilities = Some(kept.clone());
    // Before the new record takes its name: a dead `--rm` container's name is free.
    sweep_removed();
    let id = common::state::new_id()?;
    let rootfs = args.stage05.stage04.stage03.stage02.rootfs.as_ref();
    let image = match rootfs {
        Some(dir) => dir.clone(),
        None => process
            .argv
            .first()
            .cloned()
            .unwrap_or_else(|| stage05_overlay::busybox::NAME.to_owned()),
    };
    let layer = match rootfs {
        Some(_) => None,
        None => Some(Container::path_in(&Store::default_root()?, &id)),
    };
    let command = match rootfs {
        Some(_) => process.argv.clone(),
        None => process.argv.iter().skip(1).cloned().collect(),
    };
    let state = State {
        name: args.runtime.name.clone().unwrap_or_else(|| id.clone()),
        id,
        image,
        command,
        created: state::now(),
        status: Status::Created,
        supervisor: Some(Owner::current()?),
        pid: None,
        exit_code: None,
        finished: None,
        detached: args.runtime.detach,
        remove: args.stage05.rm,
        layer,
        cgroups: Vec::new(),
        env: Vec::new(),
        cwd: None,
        user: None,
        capabilities: Some(kept.iter().map(ToString::to_string).collect()),
    };
    state::create(&state)?;
    if args.runtime.detach {
        supervisor::detach(state, process, args)
    } else {
        let remove = state.remove;
        let id = state.id.clone();
        let code = run_recorded(state, process, args, None);
        if remove {
            let _ = state::remove(&id);
        }
        code
    }
}
// ANCHOR_END: run

/// Removes what `--rm` containers left whose supervisor was killed before it could
/// remove them: nobody would ever `rm` them, as nobody asked to keep them.
fn sweep_removed() {
    let Ok(all) = state::list() else { return };
    for dead in all
        .iter()
        .filter(|s| s.remove && s.shown() == state::Shown::Unknown)
    {
        let _ = rm::remove_everything(dead);
    }
}

/// Runs the container, keeping its record: `running` with its PID once it runs,
/// `exited` with its code. A container that could not start leaves no record.
pub fn run_recorded(
    state: State,
    process: Process,
    args: &Args,
    mut notify: Option<&mut supervisor::Notify>,
) -> Result<i32> {
    let id = state.id.clone();
    let cgroups: Rc<RefCell<Vec<PathBuf>>> = Rc::default();
    let state = RefCell::new(state);
    let started = std::cell::Cell::new(false);
    let result = crate::layers_recording(args, Some(cgroups.clone())).and_then(|mut layers| {
        run_container(&id, process, &mut layers, &mut |run: &Started<'_>| {
            let mut state = state.borrow_mut();
            state.status = Status::Running;
            state.pid = Owner::of(run.pid.as_raw() as u32);
            state.env = run.process.env.clone();
            state.cwd = run.process.cwd.clone();
            state.user = run.process.user.as_ref().map(|ids| state::User {
                uid: ids.uid,
                gid: ids.gid,
                groups: ids.groups.clone(),
            });
            state.cgroups = cgroups.borrow().clone();
            state.save()?;
            started.set(true);
            if let Some(notify) = notify.as_mut() {
                notify.started();
            }
            Ok(())
        })
    });
    let mut state = state.into_inner();
    if !started.get() {
        let _ = state::remove(&id);
        return result;
    }
    // A foreground `--rm` container's record goes as soon as this returns: an exit
    // code written now would be read by nobody.
    if state.remove && !state.detached {
        return result;
    }
    state.status = Status::Exited;
    state.exit_code = result.as_ref().ok().copied();
    state.finished = Some(state::now());
    state.save()?;
    result
}

/// Runs `work` for each name; errors are printed, and make the exit code 1 (docker's
/// `rm a b` removes what it can and says what it could not).
fn each(names: &[String], mut work: impl FnMut(&str) -> Result<()>) -> i32 {
    let mut code = 0;
    for name in names {
        if let Err(err) = work(name) {
            eprintln!("{}: {err:#}", common::program::name());
            code = if names.len() == 1 {
                common::exit::code_of(&err)
            } else {
                1
            };
        }
    }
    code
}
