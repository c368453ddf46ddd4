//! `stage03-userns [run] [OPTIONS] [--] [CMD...]`: see the library for the lesson.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage03_userns::Stage03>()
}
