//! Graders of stage 4 (`stage04-net`): a network namespace, and a way in and out of it.
//!
//! For now this file only wires in the graders of `--network bridge`
//! (`stage04/bridge.rs`); the stage's other graders come with the rest of the stage.

#[path = "stage04/bridge.rs"]
mod bridge;
