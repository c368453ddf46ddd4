//! `stage06-cgroups [run] [OPTIONS] IMAGE [CMD...]` and stage 5's commands, with
//! cgroup limits: see the library for the lesson.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage06_cgroups::Stage06>()
}
