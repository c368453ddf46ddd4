//! `keel-probe read PATH`: can this process open and read PATH?
//!
//! The graders use it to prove a negative from the inside: a file of the host that is
//! outside the container's root must not be reachable by any path.

use serde_json::{Value, json};

/// Reads `path` to the end; `{"ok": true, "bytes": N}` or `{"ok": false, "error": "..."}`.
pub fn read(path: &str) -> Value {
    match std::fs::read(path) {
        Ok(bytes) => json!({ "ok": true, "error": null, "bytes": bytes.len() }),
        Err(err) => json!({ "ok": false, "error": err.to_string(), "bytes": null }),
    }
}
