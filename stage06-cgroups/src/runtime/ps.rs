//! `ps [-a] [-q]`: the containers, docker's columns, with CREATED last: the one
//! column whose width varies from second to second ("just now", "2 minutes ago").

use anyhow::Result;

use super::state::{self, Shown};
use super::time::ago;

/// Lists the running containers (`all`: every one); `quiet`: ids only.
pub fn ps(all: bool, quiet: bool) -> Result<i32> {
    let now = state::now();
    let shown: Vec<_> = state::list()?
        .into_iter()
        .map(|s| {
            let status = s.shown();
            (s, status)
        })
        .filter(|(_, status)| all || matches!(status, Shown::Running | Shown::Created))
        .collect();
    if quiet {
        for (s, _) in &shown {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    println!(
        "{:<12}   {:<10}   {:<22}   {:<16}   {:<16}   CREATED",
        "CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"
    );
    for (s, status) in shown {
        println!(
            "{:<12}   {:<10}   {:<22}   {:<16}   {:<16}   {}",
            s.id,
            cut(&s.image, 10),
            cut(&format!("{:?}", s.command.join(" ")), 22),
            status.to_string(),
            s.name,
            ago(s.created, now),
        );
    }
    Ok(0)
}

/// `text`, cut to `width` characters with an ellipsis.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}
