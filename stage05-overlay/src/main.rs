//! `stage05-overlay [run] [OPTIONS] IMAGE [CMD...]`, `images`, `import`, `inspect`,
//! `rmi`: see the library for the lesson.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage05_overlay::Stage05>()
}
