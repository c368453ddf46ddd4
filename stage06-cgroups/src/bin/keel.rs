//! `keel`: the runtime of stage 6 under its own name (`cargo install --path
//! stage06-cgroups`), for everyday use: `keel run -it busybox sh`.

fn main() -> std::process::ExitCode {
    common::cli::main::<stage06_cgroups::Stage06>()
}
