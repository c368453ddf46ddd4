//! A twin of `stage06-cgroups`, built from the same library, for the graders to run.
fn main() -> std::process::ExitCode {
    common::cli::main::<stage06_cgroups::Stage06>()
}
