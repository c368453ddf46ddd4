//! Lays out the runtime's code for release builds, so that a `run` keeps less of it in
//! memory (`cargo xtask bench start` measures the peak):
//!
//! - the functions a `run` executes go side by side, in the order of `run.order`
//!   (written by `cargo xtask layout`, whose source says why): scattered over the
//!   whole binary, they kept 3 MB of code resident;
//! - the relocations that the dynamic loader applies at every start are packed
//!   (`DT_RELR`): 170 KB of them were read in full, where 2 KB say the same.

use std::path::Path;
use std::process::Command;

// ANCHOR: layout
fn main() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("run.order");
    println!("cargo:rerun-if-changed={}", order.display());
    if std::env::var("PROFILE").as_deref() != Ok("release") || !links_with_lld() {
        return;
    }
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // A name the code no longer has is no error: that function is only out of place.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    // A loader that does not know DT_RELR would leave the packed ones unapplied.
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
// ANCHOR_END: layout

/// Whether the linker is lld, the only one that takes both: Rust's default on x86_64
/// Linux from 1.90 on.
fn links_with_lld() -> bool {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    version_of(Command::new(rustc).arg("--version"), "rustc ").is_some_and(|v| v >= (1, 90))
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
