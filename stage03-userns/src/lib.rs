//! Stage 3: stage 2, rootless.
//!
//! A user namespace makes an ordinary user root inside the container: uid 0 there is
//! their own uid outside, and users 1..65536 inside are subordinate ids the
//! administrator gave them. Everything of stages 1 and 2 now works without sudo.

pub mod doctor;
pub mod idmap;
pub mod plan;
pub mod slices;
pub mod subid;
pub mod userns;
pub mod write;

use std::path::PathBuf;

use anyhow::Result;
use common::doctor::Report;
use common::{Layer, Stage};
use stage02_mountns::Stage02;

use crate::idmap::IdRange;
use crate::plan::{Facts, Request};

/// The user namespace modes `--userns` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsernsMode {
    /// Root only: give container root an unprivileged host range (a `keel` entry in /etc/subuid).
    Auto,
    /// Root only: no user namespace, as in stage 2.
    Host,
}

/// Options of stage 3: stage 2's, plus the id maps.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "stage03")]
pub struct Args {
    #[command(flatten)]
    pub stage02: stage02_mountns::Args,
    /// A uid map line CTR:HOST:COUNT (repeatable), instead of the default maps.
    #[arg(
        long,
        value_name = "CTR:HOST:COUNT",
        help_heading = "Stage 3: a user namespace"
    )]
    pub uidmap: Vec<IdRange>,
    /// A gid map line CTR:HOST:COUNT (repeatable); without it, --uidmap serves for both.
    #[arg(
        long,
        value_name = "CTR:HOST:COUNT",
        help_heading = "Stage 3: a user namespace"
    )]
    pub gidmap: Vec<IdRange>,
    /// auto: (root) map container root to an unprivileged range; host: (root) no user namespace.
    #[arg(long, value_name = "MODE", help_heading = "Stage 3: a user namespace")]
    pub userns: Option<UsernsMode>,
}

/// Stage 3: stage 2 + a user namespace.
#[derive(Debug)]
pub struct Stage03;

impl Stage for Stage03 {
    const NAME: &'static str = "stage03-userns";
    const ABOUT: &'static str =
        "Stage 3: stage 2 without root: a user namespace maps container root to your user";
    type Args = Args;
    type Commands = common::cli::NoCommands;

    fn command(command: Self::Commands) -> i32 {
        match command {}
    }

    // ANCHOR: layers
    fn layers(args: &Args) -> Result<Vec<Box<dyn Layer>>> {
        let mut layers = Stage02::layers(&args.stage02)?;
        if let Some(plan) = decide(args)? {
            // First: its parent phase writes the maps before anything else happens, and
            // its child phase makes us root before the other layers mount anything.
            layers.insert(0, Box::new(userns::UserNamespace::new(plan)));
        }
        Ok(layers)
    }
    // ANCHOR_END: layers

    fn doctor(report: &mut Report) {
        // Stages 1 and 2's checks, but root: this stage no longer needs it.
        stage02_mountns::checks(report);
        doctor::check(report);
    }
}

// ANCHOR: decide
/// The maps for this run, or `None` for no user namespace (root, by default).
fn decide(args: &Args) -> Result<Option<plan::Plan>> {
    let request = Request {
        uidmap: args.uidmap.clone(),
        gidmap: args.gidmap.clone(),
        auto: args.userns == Some(UsernsMode::Auto),
    };
    let root = nix::unistd::geteuid().is_root();
    if args.userns == Some(UsernsMode::Host) {
        anyhow::ensure!(
            root,
            "--userns=host: only root may run without a user namespace (that is stage 2)"
        );
        anyhow::ensure!(
            request.uidmap.is_empty() && request.gidmap.is_empty(),
            "--userns=host takes no --uidmap/--gidmap"
        );
        return Ok(None);
    }
    if root {
        return plan::for_root(&request, slices::allocate);
    }
    plan::for_user(&facts(), &request).map(Some)
}
// ANCHOR_END: decide

/// Who we are, and what /etc/subuid, /etc/subgid and PATH offer us.
pub fn facts() -> Facts {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let name = login_name(uid).unwrap_or_else(|| uid.to_string().into_bytes());
    // As newuidmap reads them. A file that cannot be read gives no ranges (newuidmap
    // would fail on it too), and no free range can be suggested.
    let read = |path: &str| {
        subid::SubidFile::read(path).map_err(|err| format!("cannot read {path}: {err}"))
    };
    let (uids, gids) = (read(subid::SUBUID), read(subid::SUBGID));
    let free = match (&uids, &gids) {
        (Ok(uids), Ok(gids)) => {
            subid::free_start(&[uids, gids], subid::FULL_RANGE).map_err(|err| format!("{err:#}"))
        }
        (Err(err), _) | (_, Err(err)) => Err(err.clone()),
    };
    let ranges = |file: &Result<subid::SubidFile, String>| {
        file.as_ref()
            .map(|f| f.ranges_of(&name, uid))
            .unwrap_or_default()
    };
    Facts {
        uid,
        gid,
        user: String::from_utf8_lossy(&name).into_owned(),
        subuids: ranges(&uids),
        subgids: ranges(&gids),
        helpers: which("newuidmap").zip(which("newgidmap")),
        free,
    }
}

/// The login name of `uid` from the user database, as the bytes it is made of
/// (`getpwuid_r`): newuidmap compares it byte for byte with the owners of ranges.
fn login_name(uid: u32) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: all zeros is a valid `passwd` (null pointers, zero ids).
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; strings land in `buffer`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded: pw_name points to a C string in `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_bytes().to_vec())
}

/// The first executable `name` on the host's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok())
}
