//! `stage01-pidns [run] [OPTIONS] [--] [CMD...]`: see the library for the lesson.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage01_pidns::Stage01>()
}
