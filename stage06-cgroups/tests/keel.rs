//! The `keel` binary speaks under its own name: its messages, and those of the
//! earlier stages' code it runs, start with `keel:`; the stage binary's with its
//! stage's name.

use std::process::Command;

/// `rm` of a container that does not exist, run by `binary`: an error of the runtime's
/// own (125), said under `name`. Each binary gets a runtime directory of its own: the
/// two tests run at the same time, in one process.
fn speaks_as(binary: &str, name: &str) {
    let runtime_dir = std::env::temp_dir().join(format!("keel-name-{}-{name}", std::process::id()));
    let out = Command::new(binary)
        .args(["rm", "no-such-container"])
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .output()
        .expect("cannot run the binary");
    let _ = std::fs::remove_dir_all(&runtime_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{name}: no such container: no-such-container"))
            && stderr.contains(&format!("`{name} ps -a`")),
        "{stderr}"
    );
}

#[test]
fn keels_messages_start_with_keel() {
    speaks_as(env!("CARGO_BIN_EXE_keel"), "keel");
}

#[test]
fn the_stage_binarys_messages_start_with_the_stages_name() {
    speaks_as(env!("CARGO_BIN_EXE_stage06-cgroups"), "stage06-cgroups");
}
