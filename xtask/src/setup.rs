//! The tools the tests need from the machine: Debian packages and mdBook.
//!
//! As root (CI, the developers' VMs) missing ones are installed; otherwise we only say
//! what is missing, and the tests that need it skip.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::cmd;
use crate::workspace;

/// Debian packages the tests and benchmarks use. Later stages add theirs here.
pub const PACKAGES: &[&str] = &[
    "busybox-static", // the rootfs of the tests: one static binary, every command
    "uidmap",         // newuidmap/newgidmap, for rootless id maps
    "bubblewrap",     // a reference sandbox for the benchmarks
    "strace",         // graders that check which paths the runtime looks up
    "crun",           // reference runtimes for the benchmarks
    "runc",
    "slirp4netns",     // stage 4: rootless networking
    "passt",           // stage 4: pasta
    "python3",         // the book's transcripts: a web server on the host's loopback
    "docker-registry", // stage 5: a real registry on loopback
    "skopeo",          // stage 5: images pushed to it, and the benchmark's reference
    "umoci",           // stage 5: the benchmark's reference unpacker
    "tar",             // stage 5: GNU tar, the benchmark's reference for one layer
    "openssl",         // stage 5: the token server's key and certificate
    "fuse-overlayfs",  // stage 5: overlay in user space, where the kernel has none
    "qemu-system-x86", // stage 6: a VM with a pure cgroup v2 (tests/src/vm.rs)
    "xz-utils",        // stage 6: the VM's kernel, decompressed once on the host
    "time",            // stage 6: GNU time, the start-up benchmark's peak memory
    "musl-tools",      // stage 6: the static build the README installs (a C compiler for musl)
];

/// The mdBook the book is written for.
pub const MDBOOK_VERSION: &str = "0.5.4";

/// Whether dpkg reports `package` as installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.ends_with(b" installed"))
}

/// The packages of [`PACKAGES`] that are not installed.
pub fn missing_packages() -> Vec<&'static str> {
    PACKAGES.iter().copied().filter(|p| !installed(p)).collect()
}

/// The `mdbook` to run: on `PATH`, or where `cargo install` puts it.
pub fn mdbook() -> Option<PathBuf> {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    workspace::which("mdbook").or_else(|| {
        let installed = cargo_home?.join("bin").join("mdbook");
        installed.is_file().then_some(installed)
    })
}

/// Installs what is missing when we are root, and says what is missing otherwise.
pub fn run() -> Result<()> {
    let missing = missing_packages();
    let root = workspace::is_root();
    if missing.is_empty() {
        println!("Debian packages present: {}", PACKAGES.join(" "));
    } else if root {
        cmd::run(
            Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        cmd::run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    } else {
        println!(
            "missing Debian packages (tests that need them will skip): {}\n  \
             install them with: sudo apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    static_target(root);
    match mdbook() {
        Some(path) => println!("mdbook: {}", path.display()),
        None if root => cmd::run(workspace::cargo().args([
            "install",
            "mdbook",
            "--locked",
            "--version",
            MDBOOK_VERSION,
        ]))?,
        None => {
            println!("mdbook is missing: cargo install mdbook --locked --version {MDBOOK_VERSION}")
        }
    }
    Ok(())
}

/// Rust's target for the static build the README installs, added with rustup when we
/// are root. Without it the grader of that build skips and the benchmark measures the
/// glibc build, so a machine that cannot download it still runs every other test.
fn static_target(root: bool) {
    let target = workspace::STATIC_TARGET;
    let Some(why) = workspace::static_build_missing() else {
        println!("static build: possible ({target})");
        return;
    };
    let added = root
        && workspace::which("rustup").is_some()
        && cmd::run(Command::new("rustup").args(["target", "add", target])).is_ok();
    match workspace::static_build_missing() {
        None => println!("static build: possible ({target}, just added)"),
        Some(still) if added => println!("static build: not possible: {still}"),
        Some(_) => println!("static build: not possible (the tests that need it skip): {why}"),
    }
}
