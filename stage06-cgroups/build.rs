//! Lays out the runtime's code for release builds, so that a `run` keeps less of it in
//! memory (`cargo xtask bench start` measures the peak):
//!
//! - the functions a `run` executes go side by side, in the order of `run.order`
//!   (written by `cargo xtask layout`, whose source says why): scattered over the
//!   whole binary, they kept 3 MB of code resident;
//! - the relocations applied at every start are packed (`DT_RELR`): 170 KB of them
//!   were read in full, where 2 KB say the same.
//!
//! Both for the usual build (glibc, linked by lld: Rust's default on x86_64 Linux from
//! 1.90 on) and for the static one the README installs (`--target
//! x86_64-unknown-linux-musl`, which Rust links with the C compiler's linker: it is
//! told to use Rust's own lld instead).

use std::path::{Path, PathBuf};
use std::process::Command;

// ANCHOR: layout
fn main() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("run.order");
    println!("cargo:rerun-if-changed={}", order.display());
    if std::env::var("PROFILE").as_deref() != Ok("release") || !rustc_at_least(1, 90) {
        return;
    }
    let relr = match std::env::var("TARGET").as_deref() {
        // The loader that applies DT_RELR is the machine's: glibc 2.36 or later.
        Ok("x86_64-unknown-linux-gnu") => glibc_at_least(2, 36),
        // A static binary applies its own relocations, with the musl Rust bundles
        // (1.2.5 in Rust 1.90: DT_RELR from 1.2.4 on).
        Ok("x86_64-unknown-linux-musl") => match rust_lld() {
            Some(dir) => {
                println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
                println!("cargo:rustc-link-arg-bins=-B{}", dir.display());
                true
            }
            None => return,
        },
        _ => return,
    };
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // A name the code no longer has is no error: that function is only out of place.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if relr {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
// ANCHOR_END: layout

/// Whether this rustc is `major.minor` or later.
fn rustc_at_least(major: u32, minor: u32) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    version_of(Command::new(rustc).arg("--version"), "rustc ").is_some_and(|v| v >= (major, minor))
}

/// The directory of Rust's own lld as the C compiler calls it (`ld.lld`), which rustup
/// installs with every toolchain: rustc itself links the glibc build with it.
fn rust_lld() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    let host = std::env::var("HOST").ok()?;
    let dir = sysroot.join(format!("lib/rustlib/{host}/bin/gcc-ld"));
    dir.join("ld.lld").is_file().then_some(dir)
}

/// Whether this machine's C library is glibc `major.minor` or later.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    // "glibc 2.36"
    version_of(Command::new("getconf").arg("GNU_LIBC_VERSION"), "glibc ")
        .is_some_and(|v| v >= (major, minor))
}

/// The first two numbers of the version `command` prints after `prefix`.
fn version_of(command: &mut Command, prefix: &str) -> Option<(u32, u32)> {
    let output = command.output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.strip_prefix(prefix)?.split_whitespace().next()?;
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}
