//! `stop`, `kill` and `wait`: signals to a container's PID 1, through a pidfd.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, bail};
use nix::sys::signal::Signal;

use super::pidfd::PidFd;
use super::state::{self, Shown, State};

// ANCHOR: stop
/// `stop [-t SECS] NAME...`: SIGTERM, then SIGKILL if it is still there after `secs`.
pub fn stop(names: &[String], secs: u64) -> i32 {
    super::each(names, |name| {
        let found = state::find(name)?;
        if let Some(pidfd) = pid1(&found)? {
            common::explain::step(
                format_args!("pidfd_send_signal({}, SIGTERM)", pidfd.pid),
                "ask PID 1 to end; as PID 1, it gets only the signals it handles",
            );
            pidfd.signal(Signal::SIGTERM)?;
            if !pidfd.wait(Some(Duration::from_secs(secs)))? {
                common::explain::step(
                    format_args!("pidfd_send_signal({}, SIGKILL)", pidfd.pid),
                    format_args!(
                        "still there after {secs} s: SIGKILL cannot be handled or ignored"
                    ),
                );
                pidfd.signal(Signal::SIGKILL)?;
                pidfd.wait(None)?;
            }
        }
        wait_for_supervisor(&found)?;
        println!("{name}");
        Ok(())
    })
}
// ANCHOR_END: stop

/// `kill [-s SIG] NAME...`.
pub fn kill(names: &[String], signal: &str) -> i32 {
    let signal = match parse_signal(signal) {
        Ok(signal) => signal,
        Err(err) => {
            eprintln!("{}: {err:#}", common::program::name());
            return common::exit::RUNTIME_FAILED;
        }
    };
    super::each(names, |name| {
        let found = state::find(name)?;
        let Some(pidfd) = pid1(&found)? else {
            bail!("container {name} is not running ({})", found.shown());
        };
        pidfd.signal(signal)?;
        println!("{name}");
        Ok(())
    })
}

/// `wait NAME...`: prints each container's exit code once it has exited.
pub fn wait(names: &[String]) -> i32 {
    super::each(names, |name| {
        let found = state::find(name)?;
        wait_for_supervisor(&found)?;
        match state::reload(&found.id).map(|s| s.shown()) {
            Ok(Shown::Exited(code)) => println!("{code}"),
            Ok(_) => bail!(
                "{name}: its exit code is unknown: its supervisor was killed before it could \
                 record it"
            ),
            // `--rm`: its record went with it.
            Err(_) => bail!("{name} was removed when it exited (--rm): its exit code is gone"),
        }
        Ok(())
    })
}

/// A handle on the container's PID 1, if it runs.
fn pid1(found: &State) -> Result<Option<PidFd>> {
    match found.pid {
        Some(pid) => PidFd::open(&pid),
        None => Ok(None),
    }
}

/// Waits until the supervisor has recorded the end (it exits right after).
fn wait_for_supervisor(found: &State) -> Result<()> {
    if let Some(supervisor) = found.supervisor
        && supervisor.pid != std::process::id()
        && let Some(pidfd) = PidFd::open(&supervisor)?
    {
        pidfd.wait(None)?;
    }
    Ok(())
}

/// `TERM`, `SIGTERM` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number)
            .map_err(|_| anyhow::anyhow!("-s {text}: no such signal (see kill -l)"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| {
        anyhow::anyhow!(
            "-s {text}: no such signal: give a name (TERM, KILL, HUP) or a number (see kill -l)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_like_kill() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), Signal::SIGHUP);
        for bad in ["", "NOPE", "0", "99", "-1", "SIG"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
