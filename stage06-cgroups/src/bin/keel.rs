//! `keel`: the runtime of stage 6 under its own name (`cargo install --path
//! stage06-cgroups`), for everyday use: `keel run -it busybox sh`. Its messages, and
//! those of the earlier stages' code it runs, start with `keel:`.

fn main() -> std::process::ExitCode {
    common::program::set("keel");
    common::cli::main::<stage06_cgroups::Stage06>()
}
