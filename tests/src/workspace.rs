//! Where things are: the workspace, and the directories the graders build into.

use std::path::PathBuf;

/// The workspace's root directory (the one with the top `Cargo.toml`).
pub fn root() -> PathBuf {
    // This crate lives in `<workspace>/tests`.
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set when the graders were built,
/// `<workspace>/target` otherwise.
pub fn target_dir() -> PathBuf {
    match option_env!("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("target"),
    }
}

/// Where the graders keep what they build (fixtures) and make (markers, copies):
/// `<target>/graders`, on the same filesystem as the fixtures so that a rename is atomic.
pub fn graders_dir() -> PathBuf {
    let dir = target_dir().join("graders");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
    dir
}

/// The first `program` on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}
