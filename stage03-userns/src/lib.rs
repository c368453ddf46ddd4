//! Stage 3: stage 2, rootless.
//!
//! A user namespace makes an ordinary user root inside the container: uid 0 there is
//! their own uid outside, and users 1..65536 inside are subordinate ids the
//! administrator gave them. Everything of stages 1 and 2 now works without sudo.

pub mod doctor;
pub mod idmap;
pub mod plan;
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
#[derive(Debug, clap::Args)]
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
        return plan::for_root(&request, || {
            Ok((
                subid::ensure(subid::SUBUID, "keel")?,
                subid::ensure(subid::SUBGID, "keel")?,
            ))
        });
    }
    plan::for_user(&facts(), &request).map(Some)
}
// ANCHOR_END: decide

/// Who we are, and what /etc/subuid, /etc/subgid and PATH offer us.
pub fn facts() -> Facts {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let (all_uids, all_gids) = (subid::read(subid::SUBUID), subid::read(subid::SUBGID));
    let subuids = subid::ranges_of(&all_uids, &user, uid);
    let subgids = subid::ranges_of(&all_gids, &user, uid);
    let free = subid::next_free(&[all_uids, all_gids].concat());
    let helpers = which("newuidmap").zip(which("newgidmap"));
    Facts {
        uid,
        gid,
        user,
        subuids,
        subgids,
        helpers,
        free,
    }
}

/// The first executable `name` on the host's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok())
}
