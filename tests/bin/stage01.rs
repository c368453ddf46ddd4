//! A twin of `stage01-pidns`, built from the same library, for the graders to run.
fn main() -> std::process::ExitCode {
    common::cli::main::<stage01_pidns::Stage01>()
}
