//! What a pull shows while it runs, on stderr.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;

/// How a pull reports its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// A bar per blob: for a terminal.
    Bars,
    /// A line when a blob starts and when it is done: for logs and pipes.
    #[default]
    Lines,
    /// Nothing.
    Quiet,
}

/// The progress of a whole pull.
pub(crate) struct Reporter {
    mode: Progress,
    bars: MultiProgress,
}

/// The progress of one blob.
pub(crate) struct Task {
    mode: Progress,
    short: String,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub(crate) fn new(mode: Progress) -> Self {
        let target = match mode {
            Progress::Bars => ProgressDrawTarget::stderr(),
            Progress::Lines | Progress::Quiet => ProgressDrawTarget::hidden(),
        };
        Self {
            mode,
            bars: MultiProgress::with_draw_target(target),
        }
    }

    /// A line about the whole pull (not shown when quiet).
    pub(crate) fn say(&self, line: &str) {
        match self.mode {
            Progress::Bars => {
                let _ = self.bars.println(line);
            }
            Progress::Lines => eprintln!("{line}"),
            Progress::Quiet => {}
        }
    }

    /// The progress of the blob `digest`, `size` bytes.
    pub(crate) fn task(&self, digest: &Digest, size: u64) -> Task {
        let short = digest.hex()[..12].to_owned();
        let bar = (self.mode == Progress::Bars).then(|| {
            let style = ProgressStyle::with_template(
                "{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bar = self.bars.add(ProgressBar::new(size));
            bar.set_style(style);
            bar.set_prefix(short.clone());
            bar.set_message("waiting");
            bar
        });
        Task {
            mode: self.mode,
            short,
            bar,
        }
    }
}

impl Task {
    fn line(&self, what: &str) {
        if self.mode == Progress::Lines {
            eprintln!("{}: {what}", self.short);
        }
    }

    pub(crate) fn downloading(&self) {
        self.line("downloading");
        if let Some(bar) = &self.bar {
            bar.set_message("downloading");
        }
    }

    /// `written` bytes of it are in the store's staging file.
    pub(crate) fn at(&self, written: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(written);
        }
    }

    /// A broken download resumes from `offset`.
    pub(crate) fn resuming(&self, offset: u64, why: &anyhow::Error) {
        self.line(&format!("resuming from byte {offset} ({why:#})"));
        if let Some(bar) = &self.bar {
            bar.set_message("resuming");
        }
    }

    pub(crate) fn done(&self) {
        self.line("done");
        if let Some(bar) = &self.bar {
            bar.finish_with_message("done");
        }
    }

    pub(crate) fn exists(&self) {
        self.line("already exists");
        if let Some(bar) = &self.bar {
            bar.finish_with_message("exists");
        }
    }

    pub(crate) fn failed(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon_with_message("failed");
        }
    }
}
