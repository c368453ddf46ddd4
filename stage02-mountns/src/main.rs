//! `stage02-mountns [run] [OPTIONS] [--] [CMD...]`: see the library for the lesson.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage02_mountns::Stage02>()
}
