//! The name the runtime speaks under: its stage's (`stage05-overlay`), or `keel` for
//! the binary of that name. Every message starts with it, as docker's start with
//! `docker:`, so that a user knows which program is talking: stage 6 runs stage 5's
//! code, and under `keel` that code must not sign as `stage05-overlay`.

use std::sync::OnceLock;

static NAME: OnceLock<&'static str> = OnceLock::new();

/// Names the program, once: the first call wins (`keel`'s `main` names itself before
/// the stage's `main` would).
pub fn set(name: &'static str) {
    let _ = NAME.set(name);
}

/// The program's name.
pub fn name() -> &'static str {
    NAME.get().copied().unwrap_or("keel")
}
