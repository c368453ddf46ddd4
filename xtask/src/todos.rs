//! Which exercises' `todo!()` a failed grader ran into.
//!
//! A stripped exercise is `todo!("stage01/clone_flags: <hint>")`, which panics with
//! `not yet implemented: stage01/clone_flags: <hint>`. The graders show what a stage
//! binary printed when it failed, so a failed grader's output names the exercise that
//! stopped it, and that may be another exercise than the one it grades: every container
//! of stage 1 starts with `clone_flags`, so no grader of `mount_proc` can pass before
//! `clone_flags` is done.

/// How Rust's `todo!("...")` starts its panic message.
const TODO_PANIC: &str = "not yet implemented: ";

/// The ids (`stage01/clone_flags`) of the exercises whose `todo!()` panicked in
/// `output`, in order of appearance, each once.
pub fn hit(output: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (at, _) in output.match_indices(TODO_PANIC) {
        let rest = &output[at + TODO_PANIC.len()..];
        let Some((id, _hint)) = rest.split_once(':') else {
            continue;
        };
        if is_exercise_id(id) && !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// `stageNN/name`, with `name` an identifier: what the stripping tool writes.
fn is_exercise_id(id: &str) -> bool {
    let Some((stage, name)) = id.split_once('/') else {
        return false;
    };
    let digits = stage.strip_prefix("stage").unwrap_or_default();
    digits.len() == 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_exercise_out_of_a_todo_panic() {
        let output = "\
expected exit code 0
`keel-stage01 run -- ls /proc` exited with 101
--- stderr ---

thread 'main' (32214) panicked at stage01-pidns/src/pid.rs:26:9:
not yet implemented: stage01/clone_flags: return the namespaces: PID, mount
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
";
        assert_eq!(hit(output), ["stage01/clone_flags"]);
    }

    #[test]
    fn every_exercise_hit_is_named_once_in_order() {
        let output = "not yet implemented: stage02/pivot_root: a\n\
                      \"not yet implemented: stage01/mount_proc: b\\n\"\n\
                      not yet implemented: stage02/pivot_root: a\n";
        assert_eq!(hit(output), ["stage02/pivot_root", "stage01/mount_proc"]);
    }

    #[test]
    fn other_panics_name_no_exercise() {
        for output in [
            "",
            "not yet implemented",
            "not yet implemented: ",
            "not yet implemented: write the parser first",
            "not yet implemented: stage1/x: hint",
            "not yet implemented: stage01/: hint",
            "not yet implemented: stage01/two words: hint",
            "assertion failed: stage01/clone_flags: left == right",
        ] {
            assert!(hit(output).is_empty(), "{output:?}");
        }
    }
}
