//! A twin of `stage03-userns`, built from the same library, for the graders to run.
fn main() -> std::process::ExitCode {
    common::cli::main::<stage03_userns::Stage03>()
}
