//! The image's config, applied to the process: what docker does with `Entrypoint`,
//! `Cmd`, `Env` and `WorkingDir`.
//!
//! The command is the entrypoint followed by the arguments: those given after the
//! image's name, or else the image's `Cmd`. `--entrypoint` replaces the entrypoint
//! and drops `Cmd`. The image's `Env` comes under `-e`: what the user set wins.

use anyhow::Result;
use common::Process;

use crate::image::Image;
use crate::overlay::Options;

// ANCHOR: apply_config
/// Applies `image`'s config (and `options`) to `process`, whose `argv` holds what
/// followed the image's name.
pub fn apply(image: &Image, options: &Options, process: &mut Process) -> Result<()> {
    let config = image.config.config().clone().unwrap_or_default();
    let entrypoint = match &options.entrypoint {
        Some(given) if given.is_empty() => Vec::new(),
        Some(given) => vec![given.clone()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let arguments = if !process.argv.is_empty() {
        std::mem::take(&mut process.argv)
    } else if options.entrypoint.is_some() {
        Vec::new()
    } else {
        config.cmd().clone().unwrap_or_default()
    };
    // Empty: the runner's default, /bin/sh.
    process.argv = entrypoint.into_iter().chain(arguments).collect();
    for pair in config.env().clone().unwrap_or_default() {
        let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        if !process.user_env.iter().any(|k| k == key) {
            process.setenv(key, value);
        }
    }
    if process.cwd.is_none()
        && let Some(dir) = config.working_dir().as_deref().filter(|d| !d.is_empty())
    {
        process.cwd = Some(dir.into());
    }
    Ok(())
}
// ANCHOR_END: apply_config
