//! A twin of `stage04-net`, built from the same library, for the graders to run.
fn main() -> std::process::ExitCode {
    common::cli::main::<stage04_net::Stage04>()
}
