//! `cargo xtask bench net`, second half: how fast a published port carries data, by
//! port driver, rootless.
//!
//! Inside the container the static probe is one end (`keel-probe sink` reads a
//! connection to the end and answers with the count; `keel-probe source` writes a
//! given amount); the benchmark is the other, on the host's loopback. Each driver
//! moves the same data both ways, several times; the table shows the medians.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::Setup;
use crate::workspace;

/// How often each driver moves the data, each way.
const ROUNDS: usize = 3;

/// The port the probe listens on inside the container.
const INSIDE: u16 = 5001;

/// One way of publishing a port: `--network` and `--port-driver`.
struct Driver {
    name: &'static str,
    network: &'static str,
    port_driver: &'static str,
    /// The program the network needs on the host.
    needs: &'static str,
}

/// The probe on the host's loopback, with no container and no forwarder: the ceiling
/// of what any driver could reach on this machine.
const LOOPBACK: &str = "loopback, no container";

const DRIVERS: &[Driver] = &[
    Driver {
        name: "slirp4netns",
        network: "slirp4netns",
        port_driver: "slirp4netns",
        needs: "slirp4netns",
    },
    Driver {
        name: "pasta",
        network: "pasta",
        port_driver: "pasta",
        needs: "pasta",
    },
    Driver {
        name: "builtin (slirp4netns)",
        network: "slirp4netns",
        port_driver: "builtin",
        needs: "slirp4netns",
    },
    Driver {
        name: "builtin (pasta)",
        network: "pasta",
        port_driver: "builtin",
        needs: "pasta",
    },
];

/// Measures every driver and prints the table.
pub fn throughput(setup: &Setup, mib: u64) -> Result<()> {
    if mib == 0 {
        println!("\nno throughput measured (--mib 0)");
        return Ok(());
    }
    let Some(user) = &setup.user else {
        bail!("the throughput runs rootless: run the benchmark as root, which makes the user");
    };
    make_tun_usable()?;
    println!(
        "\nthroughput through a published port, rootless, {mib} MiB each way, median of {ROUNDS}"
    );
    println!(
        "{:<24} {:>16} {:>16}",
        "driver", "host->container", "container->host"
    );
    let (into, out_of) =
        rounds(|direction| measure_loopback(setup, user.uid, user.gid, direction, mib))?;
    println!("{LOOPBACK:<24} {into:>11.0} MB/s {out_of:>11.0} MB/s");
    let mut slirp = None;
    for driver in DRIVERS {
        if workspace::which(driver.needs).is_none() {
            println!(
                "{:<24} skipped: {} is not installed",
                driver.name, driver.needs
            );
            continue;
        }
        let (into, out_of) =
            rounds(|direction| measure(setup, user.uid, user.gid, driver, direction, mib))?;
        let ratio = match slirp {
            None => {
                slirp = Some((into, out_of));
                String::new()
            }
            Some((base_in, base_out)) => {
                format!(
                    "  ({:.1}x, {:.1}x slirp4netns's)",
                    into / base_in,
                    out_of / base_out
                )
            }
        };
        println!(
            "{:<24} {:>11.0} MB/s {:>11.0} MB/s{ratio}",
            driver.name, into, out_of
        );
    }
    Ok(())
}

/// The medians of [`ROUNDS`] measurements each way, taking turns.
fn rounds(mut measure: impl FnMut(Direction) -> Result<f64>) -> Result<(f64, f64)> {
    let mut into = Vec::new();
    let mut out_of = Vec::new();
    for _ in 0..ROUNDS {
        into.push(measure(Direction::Into)?);
        out_of.push(measure(Direction::OutOf)?);
    }
    Ok((median(&mut into), median(&mut out_of)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// From the host into the container.
    Into,
    /// From the container to the host.
    OutOf,
}

/// One transfer of `mib` MiB through `driver`; returns MB/s.
fn measure(
    setup: &Setup,
    uid: u32,
    gid: u32,
    driver: &Driver,
    direction: Direction,
    mib: u64,
) -> Result<f64> {
    let port = free_port()?;
    let mut command = Command::new(setup.places.release.join("stage04-net"));
    command
        .arg("run")
        .arg("--rootfs")
        .arg(&setup.places.rootfs)
        .args([
            "--network",
            driver.network,
            "--port-driver",
            driver.port_driver,
        ])
        .arg("-p")
        .arg(format!("127.0.0.1:{port}:{INSIDE}"))
        .arg("--")
        .arg("/bin/keel-probe");
    probe_args(&mut command, INSIDE, direction, mib);
    run_transfer(command, uid, gid, port, direction, mib, driver.name)
}

/// The same transfer with the probe run on the host, as the user, on a port of the
/// host's loopback.
fn measure_loopback(
    setup: &Setup,
    uid: u32,
    gid: u32,
    direction: Direction,
    mib: u64,
) -> Result<f64> {
    let port = free_port()?;
    let mut command = Command::new(setup.places.rootfs.join("bin/keel-probe"));
    probe_args(&mut command, port, direction, mib);
    run_transfer(command, uid, gid, port, direction, mib, LOOPBACK)
}

/// `sink PORT` or `source PORT MIB`.
fn probe_args(command: &mut Command, port: u16, direction: Direction, mib: u64) {
    match direction {
        Direction::Into => command.args(["sink", &port.to_string()]),
        Direction::OutOf => command.args(["source", &port.to_string(), &mib.to_string()]),
    };
}

/// Starts `command` as the user, moves the data through `port`, and returns MB/s.
fn run_transfer(
    mut command: Command,
    uid: u32,
    gid: u32,
    port: u16,
    direction: Direction,
    mib: u64,
    name: &str,
) -> Result<f64> {
    command
        .uid(uid)
        .gid(gid)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let result = transfer(&mut child, port, direction, mib);
    let output = child.wait_with_output()?;
    let rate = result.with_context(|| {
        format!(
            "{name} ({direction:?}): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    if !output.status.success() {
        bail!(
            "{name} ({direction:?}) failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(rate)
}

/// Waits for the probe to listen, moves the data, and returns MB/s.
fn transfer(child: &mut Child, port: u16, direction: Direction, mib: u64) -> Result<f64> {
    let stdout = child.stdout.take().context("the probe's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().context("the probe said nothing")??;
    if !first.contains("listening") {
        bail!("the probe said {first:?}");
    }
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).context("connecting")?;
    let bytes = mib << 20;
    let start = Instant::now();
    match direction {
        Direction::Into => {
            let buf = vec![0u8; 1 << 20];
            for _ in 0..mib {
                stream.write_all(&buf)?;
            }
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut count = [0u8; 8];
            stream.read_exact(&mut count).context("the sink's count")?;
            if u64::from_be_bytes(count) != bytes {
                bail!(
                    "the sink got {} of {bytes} bytes",
                    u64::from_be_bytes(count)
                );
            }
        }
        Direction::OutOf => {
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0u64;
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                got += n as u64;
            }
            if got != bytes {
                bail!("got {got} of {bytes} bytes");
            }
            // The source waits for this end to close before it exits.
            drop(stream);
        }
    }
    let seconds = start.elapsed().max(Duration::from_micros(1)).as_secs_f64();
    Ok(bytes as f64 / seconds / 1e6)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// slirp4netns and pasta open /dev/net/tun as the user: mode 0666, as udev makes it.
fn make_tun_usable() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tun = std::path::Path::new("/dev/net/tun");
    let mode = std::fs::metadata(tun)?.permissions().mode();
    if mode & 0o666 != 0o666 {
        std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o666))?;
    }
    Ok(())
}
