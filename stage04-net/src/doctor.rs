//! What stage 4 needs from the machine, each with its fix.

use common::doctor::{self, Outcome, Report};
use nix::unistd::AccessFlags;

use crate::checks::TUN;
use crate::helper;

/// The checks of stage 4.
pub fn check(report: &mut Report) {
    doctor::namespace(
        report,
        "net",
        "interfaces, addresses, routes and ports of its own",
    );
    for (program, package, what) in [
        (
            "slirp4netns",
            "slirp4netns",
            "rootless networking (--network slirp4netns, the default)",
        ),
        ("pasta", "passt", "rootless networking (--network pasta)"),
    ] {
        let outcome = match helper::which(program) {
            Some(path) => Outcome::Ok(format!("{}: {what}", path.display())),
            None => Outcome::Warn(format!(
                "not installed: apt-get install {package}, for {what}"
            )),
        };
        report.check(program, outcome);
    }
    let outcome = if nix::unistd::access(TUN, AccessFlags::R_OK | AccessFlags::W_OK).is_ok() {
        Outcome::Ok("readable and writable: slirp4netns and pasta can make a TAP device".into())
    } else {
        Outcome::Warn(format!(
            "not usable by you: slirp4netns and pasta need it; as root, chmod 0666 {TUN}"
        ))
    };
    report.check(TUN, outcome);
}
