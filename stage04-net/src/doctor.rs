//! What stage 4 needs from the machine, each with its fix.

use common::doctor::{self, Outcome, Report};

use crate::bridge::BRIDGE;
use crate::checks::{self, TUN};
use crate::helper;
use crate::leases::{Leases, choose_subnet};
use crate::subnet;

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
    let outcome = match checks::tun_usable() {
        Ok(()) => {
            Outcome::Ok("readable and writable: slirp4netns and pasta can make a TAP device".into())
        }
        Err(why) => Outcome::Warn(why.to_string()),
    };
    report.check(TUN, outcome);
    if doctor::is_root() {
        report.check("--network bridge", bridge_outcome());
    }
}

/// Root's bridge: the subnet a container started now would be on.
fn bridge_outcome() -> Outcome {
    let plan = || -> anyhow::Result<String> {
        let live = Leases::system()?.peek()?;
        let subnet = choose_subnet(None, &live, &subnet::host_routes()?)?;
        Ok(if live.is_empty() {
            format!(
                "would use {subnet}: {BRIDGE} gets {}/{}, containers {} and up (the first \
                 /24 from {} up that no route of the host covers; --subnet CIDR chooses \
                 another)",
                subnet.gateway(),
                subnet.prefix(),
                subnet
                    .container_addresses()
                    .next()
                    .unwrap_or(subnet.gateway()),
                subnet::FIRST_DEFAULT,
            )
        } else {
            format!(
                "{BRIDGE} serves {subnet} to {} running container(s); a new one joins it",
                live.len()
            )
        })
    };
    match plan() {
        Ok(text) => Outcome::Ok(text),
        Err(err) => Outcome::Fail(format!("{err:#}")),
    }
}
