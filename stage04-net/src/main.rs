//! `stage04-net [run] [OPTIONS] [--] [CMD...]`: see the library for the lesson.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage04_net::Stage04>()
}
