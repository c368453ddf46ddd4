//! `cargo xtask bench image`: stage 5's work on an image, next to the tools people use
//! for the same work, on an image big enough for the work to show: 100+ MB of files in
//! six layers, generated (`xtask/bench-image`, which says what is in them).
//!
//! Three parts, a table each:
//! 1. **pull + unpack**, rootless, from a real registry on loopback: keel's `pull`,
//!    which unpacks each layer while it downloads, against `skopeo copy` into an OCI
//!    layout followed by `umoci unpack --rootless`;
//! 2. **one layer unpacked**, as root: keel's unpacker (`apply_layer`, run by
//!    `keel-bench-image unpack`) against GNU `tar -xzf`;
//! 3. **start-up**, rootless, both with `--network none`: stage 5 on the image (an
//!    overlay of its six layers, a writable layer made and removed) against stage 4 on
//!    a plain busybox directory. The difference is what the image costs each start.
//!
//! As in the other benchmarks the commands take turns after warm-up rounds. Each run
//! starts from fresh directories, after a `sync`: keel flushes each layer it stores
//! (a store must survive a power cut), and no run should pay for flushing what an
//! earlier one left in the page cache.

mod registry;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench::{
    As, BENCH_USER, BenchUser, Contender, Cost, Setup, WARM_UP, measure, name_width, percentile,
    report,
};
use crate::{cmd, workspace};
use registry::Registry;

/// The package that builds the image and runs keel's unpacker on one layer.
const HELPER: &str = "keel-bench-image";

/// The image's name, in the registry and in the bench user's store.
const NAME: &str = "bench/big";

/// Warm-up rounds of the parts that move the whole image: one fills the page cache
/// with the programs and the registry's blobs; more would cost seconds each.
const HEAVY_WARM_UP: usize = 1;

/// Start-up takes milliseconds where moving the image takes seconds: part 3 runs this
/// many times as often as `--runs`, for medians worth reading.
const START_UP_TIMES: usize = 10;

/// Part 3's commands, rootless, both with no network (whose set-up would blur the
/// image's share). Stage 5 runs [`NAME`], imported into the bench user's store.
const START_UP: &[Contender] = &[
    Contender {
        name: "stage04 --rootfs",
        line: "{release}/stage04-net run --rootfs {rootfs} --network none -- /bin/true",
        package: Some("stage04-net"),
        runs_as: As::User,
    },
    Contender {
        name: "stage05 image",
        line: "{release}/stage05-overlay run --rm --network none bench/big /bin/true",
        package: Some("stage05-overlay"),
        runs_as: As::User,
    },
];

/// Runs the three parts, `runs` times each (part 3 [`START_UP_TIMES`] as often).
pub fn run(runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !workspace::is_root() {
        bail!(
            "the image benchmark needs root: it makes the user {BENCH_USER} for the \
             rootless parts, and part 2 unpacks as root; run it with sudo"
        );
    }
    // The helper together with the stages that Setup builds next: one build, whose
    // artifacts Setup's then finds made.
    let mut build = workspace::cargo();
    build
        .current_dir(workspace::root())
        .args(["build", "--release", "--package", HELPER]);
    for package in START_UP.iter().filter_map(|c| c.package) {
        build.args(["--package", package]);
    }
    cmd::run(&mut build)?;
    let helper = workspace::target_dir().join("release").join(HELPER);
    let setup = Setup::new(START_UP, false)?;
    let user = setup.user.as_ref().context("the bench user was not made")?;
    let place = Place::new(user)?;
    println!("\nbuilding the image {NAME} ...");
    let image = BigImage::build(&helper, &setup.places.rootfs, place.dir.path())?;
    let files: u64 = image.layers.iter().map(|l| l.files).sum();
    println!(
        "{NAME}: {} layers, {files} files, {} of tar, {} gzipped",
        image.layers.len(),
        megabytes(image.tar_bytes()),
        megabytes(image.gzipped_bytes()),
    );
    pull_and_unpack(&setup, user, &place, &image, runs)?;
    layer_unpack(&helper, &place, &image, runs)?;
    start_up(&setup, user, &place, &image, runs * START_UP_TIMES)
}

/// The image, as an OCI layout, and its layers.
struct BigImage {
    layout: PathBuf,
    /// Bottom first.
    layers: Vec<Layer>,
}

/// One layer, as `keel-bench-image build` describes it.
struct Layer {
    /// Its gzipped blob in the layout.
    blob: PathBuf,
    gzipped: u64,
    /// The size of its tar, and how many files the tar holds.
    tar: u64,
    files: u64,
}

impl BigImage {
    /// Builds the image into `dir`/layout with `helper`, on the busybox root filesystem
    /// `base`.
    fn build(helper: &Path, base: &Path, dir: &Path) -> Result<Self> {
        let layout = dir.join("layout");
        let mut build = Command::new(helper);
        build.arg("build").arg(base).arg(&layout);
        let out = cmd::quiet(&mut build)?;
        if !out.status.success() {
            bail!(
                "building the image: `{}` failed ({}): {}",
                cmd::describe(&build),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let described: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("reading what `{}` printed", cmd::describe(&build)))?;
        let field = |layer: &Value, name: &str| {
            layer[name]
                .as_u64()
                .with_context(|| format!("{HELPER} describes a layer without {name}"))
        };
        let layers = described
            .as_array()
            .with_context(|| format!("{HELPER} printed no list of layers"))?
            .iter()
            .map(|layer| {
                Ok(Layer {
                    blob: layer["blob"]
                        .as_str()
                        .with_context(|| format!("{HELPER} describes a layer without blob"))?
                        .into(),
                    gzipped: field(layer, "gzipped")?,
                    tar: field(layer, "tar")?,
                    files: field(layer, "files")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layout, layers })
    }

    /// Bytes of all the layers' tars.
    fn tar_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.tar).sum()
    }

    /// Bytes of all the gzipped blobs: what a pull downloads.
    fn gzipped_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.gzipped).sum()
    }

    /// The layer with the largest blob.
    fn largest(&self) -> Option<&Layer> {
        self.layers.iter().max_by_key(|l| l.gzipped)
    }
}

/// The benchmark's directory, world-readable so that the bench user reaches the
/// layout in it, and the bench user's home inside: its stores, layouts, bundles, its
/// runtime and temporary directories. Removed, all of it, when dropped.
struct Place {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Place {
    fn new(user: &BenchUser) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("keel-bench-image-")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let home = dir.path().join("home");
        for sub in ["", "run", "tmp"] {
            let path = home.join(sub);
            fs::DirBuilder::new().mode(0o700).create(&path)?;
            nix::unistd::chown(&path, Some(user.uid.into()), Some(user.gid.into()))?;
        }
        Ok(Self { dir, home })
    }

    /// `program` run as the bench user, in an environment of the benchmark's: nothing
    /// it writes lands outside its home.
    fn as_user(&self, program: impl AsRef<OsStr>, user: &BenchUser) -> Command {
        let mut command = Command::new(program);
        command.uid(user.uid).gid(user.gid).env_clear();
        self.user_env(&mut command);
        command
    }

    fn user_env(&self, command: &mut Command) {
        command
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("TMPDIR", self.home.join("tmp"));
    }
}

/// One side of a comparison. `run(n)` does the `n`th run from fresh directories and
/// returns what was timed of it; what it prepares and removes around that is not.
struct Row<'a> {
    name: &'static str,
    /// What it runs, as a person would type it.
    shown: String,
    run: Box<dyn FnMut(usize) -> Result<Cost> + 'a>,
}

/// Runs every row `warm_up + runs` times, taking turns; returns the measured costs.
fn take_turns(rows: &mut [Row<'_>], warm_up: usize, runs: usize) -> Result<Vec<Vec<Cost>>> {
    let width = name_width(rows.iter().map(|r| r.name));
    for row in rows.iter() {
        println!("{:<width$} {}", row.name, row.shown);
    }
    let mut costs = vec![Vec::with_capacity(runs); rows.len()];
    for round in 0..warm_up + runs {
        for (row, costs) in rows.iter_mut().zip(&mut costs) {
            nix::unistd::sync();
            let cost = (row.run)(round).with_context(|| {
                format!("{}, run {} of {}", row.name, round + 1, warm_up + runs)
            })?;
            if round >= warm_up {
                costs.push(cost);
            }
        }
    }
    Ok(costs)
}

/// Part 1: pull + unpack from a registry on loopback, rootless.
fn pull_and_unpack(
    setup: &Setup,
    user: &BenchUser,
    place: &Place,
    image: &BigImage,
    runs: usize,
) -> Result<()> {
    if let Some(why) = registry::unavailable().or_else(|| not_installed("umoci")) {
        println!("\nskipping pull + unpack: {why}");
        return Ok(());
    }
    let registry_dir = place.dir.path().join("registry");
    let registry = Registry::start(&registry_dir)?;
    registry.push(&image.layout, &format!("{NAME}:latest"), &registry_dir)?;
    let reference = format!("{}/{NAME}:latest", registry.address);
    let keel = setup.places.release.join("stage05-overlay");
    // The static build the README installs: the same pull, with musl's C library.
    let installed = match workspace::static_build_missing() {
        None => {
            let binary = setup.places.installed.join("keel");
            fs::copy(
                workspace::build_static("stage06-cgroups")?.join("keel"),
                &binary,
            )?;
            Some(binary)
        }
        Some(why) => {
            println!("\nthe static build's pull is not measured: {why}");
            None
        }
    };
    let home = &place.home;
    println!("\npull + unpack of {reference}, rootless, as the user {BENCH_USER}");
    let mut rows = vec![
        Row {
            name: "stage05 pull",
            shown: format!(
                "KEEL_STORE={}/keel-N {} pull -q {reference}",
                home.display(),
                keel.display()
            ),
            run: Box::new(|n| {
                let store = home.join(format!("keel-{n}"));
                let mut pull = place.as_user(&keel, user);
                pull.env("KEEL_STORE", &store)
                    .args(["pull", "-q", &reference]);
                let cost = measure(&mut pull);
                remove(&store)?;
                cost
            }),
        },
        Row {
            name: "skopeo + umoci",
            shown: format!(
                "skopeo copy --src-tls-verify=false docker://{reference} oci:{home}/oci-N:latest, \
                 then umoci unpack --rootless --image {home}/oci-N:latest {home}/bundle-N",
                home = home.display()
            ),
            run: Box::new(|n| {
                let layout = home.join(format!("oci-{n}"));
                let bundle = home.join(format!("bundle-{n}"));
                let mut copy = place.as_user("skopeo", user);
                copy.args(["copy", "--quiet", "--src-tls-verify=false"])
                    .arg(format!("docker://{reference}"))
                    .arg(format!("oci:{}:latest", layout.display()));
                let mut unpack = place.as_user("umoci", user);
                unpack
                    .args(["unpack", "--rootless", "--image"])
                    .arg(format!("{}:latest", layout.display()))
                    .arg(&bundle);
                let cost = measure(&mut copy).and_then(|copied| {
                    let unpacked = measure(&mut unpack)?;
                    Ok(Cost {
                        wall: copied.wall + unpacked.wall,
                        cpu: copied.cpu + unpacked.cpu,
                    })
                });
                remove(&layout)?;
                remove(&bundle)?;
                cost
            }),
        },
    ];
    if let Some(installed) = installed.as_deref() {
        let reference = reference.as_str();
        rows.push(Row {
            name: "keel pull (static build)",
            shown: format!(
                "KEEL_STORE={}/keel-N {} pull -q {reference}",
                home.display(),
                installed.display()
            ),
            run: Box::new(move |n| {
                let store = home.join(format!("keel-{n}"));
                let mut pull = place.as_user(installed, user);
                pull.env("KEEL_STORE", &store)
                    .args(["pull", "-q", reference]);
                let cost = measure(&mut pull);
                remove(&store)?;
                cost
            }),
        });
    }
    let costs = take_turns(&mut rows, HEAVY_WARM_UP, runs)?;
    let who = format!(
        "pull + unpack ({} gzipped, {} of tar)",
        megabytes(image.gzipped_bytes()),
        megabytes(image.tar_bytes())
    );
    report(
        &who,
        &rows.iter().map(|r| r.name).collect::<Vec<_>>(),
        &costs,
        HEAVY_WARM_UP,
        "skopeo + umoci",
    );
    let ratio = median(&costs[0]) / median(&costs[1]);
    println!(
        "target: keel under half of skopeo + umoci's time: {} ({ratio:.2}x)",
        if ratio < 0.5 { "met" } else { "not met" }
    );
    Ok(())
}

/// Part 2: the largest layer unpacked into a fresh directory, as root.
fn layer_unpack(helper: &Path, place: &Place, image: &BigImage, runs: usize) -> Result<()> {
    if let Some(why) = gnu_tar_missing() {
        println!("\nskipping layer unpack: {why}");
        return Ok(());
    }
    let layer = image.largest().context("the image has no layer")?;
    let dirs = place.dir.path().join("unpack");
    fs::create_dir(&dirs)?;
    println!(
        "\none layer unpacked ({} gzipped, {} of tar, {} files), as root",
        megabytes(layer.gzipped),
        megabytes(layer.tar),
        layer.files
    );
    let mut rows = [
        Row {
            name: "stage05 apply_layer",
            shown: format!(
                "{} unpack {} {}/keel-N",
                helper.display(),
                layer.blob.display(),
                dirs.display()
            ),
            run: Box::new(|n| {
                let dest = dirs.join(format!("keel-{n}"));
                fs::create_dir(&dest)?;
                let mut unpack = Command::new(helper);
                unpack.arg("unpack").arg(&layer.blob).arg(&dest);
                let cost = measure(&mut unpack);
                remove(&dest)?;
                cost
            }),
        },
        Row {
            name: "tar -xzf",
            shown: format!(
                "tar -xzf {} -C {}/tar-N",
                layer.blob.display(),
                dirs.display()
            ),
            run: Box::new(|n| {
                let dest = dirs.join(format!("tar-{n}"));
                fs::create_dir(&dest)?;
                let mut tar = Command::new("tar");
                tar.arg("-xzf").arg(&layer.blob).arg("-C").arg(&dest);
                let cost = measure(&mut tar);
                remove(&dest)?;
                cost
            }),
        },
    ];
    let costs = take_turns(&mut rows, HEAVY_WARM_UP, runs)?;
    report(
        "one layer unpacked",
        &rows.iter().map(|r| r.name).collect::<Vec<_>>(),
        &costs,
        HEAVY_WARM_UP,
        "tar",
    );
    Ok(())
}

/// Part 3: start-up with the image against start-up with a plain directory.
fn start_up(
    setup: &Setup,
    user: &BenchUser,
    place: &Place,
    image: &BigImage,
    runs: usize,
) -> Result<()> {
    // The image goes into the user's store once; its layers are unpacked by the
    // first run, a warm-up round.
    let store = place.home.join("store");
    let mut import = place.as_user(setup.places.release.join("stage05-overlay"), user);
    import
        .env("KEEL_STORE", &store)
        .arg("import")
        .arg(&image.layout)
        .arg(NAME);
    let out = cmd::quiet(&mut import)?;
    if !out.status.success() {
        bail!(
            "importing the image: `{}` failed ({}): {}",
            cmd::describe(&import),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!(
        "\nstart-up with --network none, rootless, as the user {BENCH_USER} \
         (KEEL_STORE={})",
        store.display()
    );
    let ids = Some((user.uid, user.gid));
    let mut rows: Vec<Row<'_>> = START_UP
        .iter()
        .map(|contender| {
            let mut command = contender.command(&setup.places, ids);
            place.user_env(&mut command);
            command.env("KEEL_STORE", &store);
            Row {
                name: contender.name,
                shown: cmd::describe(&command),
                run: Box::new(move |_| measure(&mut command)),
            }
        })
        .collect();
    let costs = take_turns(&mut rows, WARM_UP, runs)?;
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    report("start-up", &names, &costs, WARM_UP, "stage04");
    let extra = median(&costs[1]) - median(&costs[0]);
    println!("the image's overlay costs {extra:.2} ms per start (difference of the medians)");
    Ok(())
}

/// The median wall time of `costs`, in ms.
fn median(costs: &[Cost]) -> f64 {
    let mut walls: Vec<Duration> = costs.iter().map(|c| c.wall).collect();
    walls.sort();
    percentile(&walls, 50.0).as_secs_f64() * 1000.0
}

/// Removes the tree at `path`, if there is one.
fn remove(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Why `program` cannot run, if it is not installed.
fn not_installed(program: &str) -> Option<String> {
    workspace::which(program)
        .is_none()
        .then(|| format!("{program} is not installed (apt-get install {program})"))
}

/// Why GNU tar (and the gzip its `-z` runs) cannot be the reference, if it cannot.
fn gnu_tar_missing() -> Option<String> {
    if let Some(why) = not_installed("tar").or_else(|| not_installed("gzip")) {
        return Some(why);
    }
    let gnu = Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("GNU tar"));
    (!gnu).then(|| "the tar on PATH is not GNU tar, the reference (apt-get install tar)".to_owned())
}

/// `bytes` in MB, for people.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
