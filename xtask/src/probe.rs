//! The static probe of the graders (`tests/probe`), built for the benchmarks that run
//! it inside a busybox rootfs (it has no C library): the same nested build as the
//! graders' (`tests/src/probe.rs`), into the same directory.

use std::path::PathBuf;

use anyhow::Result;

use crate::{cmd, workspace};

/// The only target of this workspace, linked statically.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `keel-probe` statically and returns its path.
pub fn build() -> Result<PathBuf> {
    let target_dir = workspace::target_dir().join("probe");
    cmd::run(
        workspace::cargo()
            .current_dir(workspace::root())
            .args([
                "build",
                "--release",
                "--package",
                "keel-probe",
                "--target",
                TARGET,
            ])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
    )?;
    Ok(target_dir.join(TARGET).join("release").join("keel-probe"))
}
