//! The `keel` binary speaks under its own name: its messages, and those of the
//! earlier stages' code it runs, start with `keel:`; the stage binary's with its
//! stage's name.

use std::process::Command;

/// `rm` of a container that does not exist: an error of the runtime's own (125).
fn rm_unknown(binary: &str) -> (Option<i32>, String) {
    let runtime_dir = std::env::temp_dir().join(format!("keel-name-{}", std::process::id()));
    let out = Command::new(binary)
        .args(["rm", "no-such-container"])
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .output()
        .expect("cannot run the binary");
    let _ = std::fs::remove_dir_all(&runtime_dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keels_messages_start_with_keel() {
    let (code, stderr) = rm_unknown(env!("CARGO_BIN_EXE_keel"));
    assert_eq!(code, Some(125), "{stderr}");
    assert!(
        stderr.starts_with("keel: no such container: no-such-container")
            && stderr.contains("`keel ps -a`"),
        "{stderr}"
    );
}

#[test]
fn the_stage_binarys_messages_start_with_the_stages_name() {
    let (code, stderr) = rm_unknown(env!("CARGO_BIN_EXE_stage06-cgroups"));
    assert_eq!(code, Some(125), "{stderr}");
    assert!(
        stderr.starts_with("stage06-cgroups: no such container")
            && stderr.contains("`stage06-cgroups ps -a`"),
        "{stderr}"
    );
}
