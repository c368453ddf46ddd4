//! The harness, run on a small book of its own: it passes what the terminal really
//! shows, waits for a background job's output, and fails, saying where, on wrong
//! output and on a block that never gets its prompt back. (The stage binaries may not
//! be built when `cargo test` runs this: the book's own blocks are the keel ones.)

use std::path::Path;
use std::process::Command;

use keel_graders::need;
use keel_graders::skip::require_root;

const SUMMARY: &str = "# Summary\n\n- [Test](test.md)\n";

/// `test.md`; the line numbers below are this text's.
const CHAPTER: &str = r#"# Test

```console
# echo hello; echo $((6 * 7))
hello
42
```

<!-- transcript: vary 123 -->
```console
# (sleep 0.2; echo late; sleep 1) &
[1] 123
late
# wait
[1]+  Done                    ( sleep 0.2; echo late; sleep 1 )
```

```console
# echo hello
hallo
```

<!-- transcript: timeout 2 -->
```console
# sleep 30
```

```console
# sh -c 'echo $$' | wc -l
2
```

<!-- transcript: skip: shows what the harness must not run -->
```console
# false
```
"#;

fn run_on(book: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel-transcripts"))
        .arg("--book")
        .arg(book)
        .output()
        .expect("cannot run keel-transcripts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn fails_where_the_book_is_wrong_and_nowhere_else() {
    need!(require_root());
    let book = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(book.path().join("SUMMARY.md"), SUMMARY).unwrap();
    std::fs::write(book.path().join("test.md"), CHAPTER).unwrap();
    let started = std::time::Instant::now();
    let (ok, out) = run_on(book.path());
    println!("{out}");
    assert!(!ok, "the harness passed a wrong book");
    let chapter = book.path().join("test.md");
    let at = |line: usize| format!("{}:{line}", chapter.display());
    assert!(out.contains(&format!("ok    {}", at(3))), "a right block");
    assert!(
        out.contains(&format!("ok    {}", at(10))),
        "a background job's output"
    );
    // The wrong line, and what the terminal showed instead.
    assert!(out.contains(&format!("FAIL  {}", at(18))));
    assert!(
        out.contains(
            "  line 20: the book shows\n      hallo\n    the terminal showed\n      hello"
        )
    );
    // A command that never returns: the deadline, not the command's 30 seconds.
    assert!(out.contains(&format!("FAIL  {}", at(24))));
    assert!(out.contains("no prompt within 2s"));
    assert!(
        started.elapsed().as_secs() < 25,
        "waited for the command, not the deadline"
    );
    // A count the book got wrong.
    assert!(out.contains(&format!("FAIL  {}", at(28))));
    assert!(out.contains("  line 30: the book shows\n      2\n    the terminal showed\n      1"));
    assert!(out.contains(&format!(
        "SKIP: {}: shows what the harness must not run",
        at(34)
    )));
    assert!(out.contains("2 passed, 3 failed, 1 skipped"), "{out}");
}
