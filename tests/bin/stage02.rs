//! A twin of `stage02-mountns`, built from the same library, for the graders to run.
fn main() -> std::process::ExitCode {
    common::cli::main::<stage02_mountns::Stage02>()
}
