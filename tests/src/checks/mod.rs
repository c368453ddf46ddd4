//! Graders that every stage passes in the same way.
//!
//! Stage N is stage N-1 plus one feature, so what stage01 promises, stage02 must still
//! keep: `echo $$` still prints 1, exit codes still follow docker's convention, signals
//! are still forwarded. Each check here takes the [`Runtime`](crate::Runtime) to grade,
//! and each stage's test file calls it from a test named for what it shows.

pub mod cli;
pub mod lifecycle;
pub mod pid;
