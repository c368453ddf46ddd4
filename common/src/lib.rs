//! What every keel stage shares.
//!
//! - [`layer`]: the [`Layer`] trait, one isolation feature with its phases;
//! - [`runner`]: clone, the parent/child dance, exec, signals, cleanup;
//! - [`cli`]: the command line every stage accepts, and its `main`;
//! - [`explain`]: `--explain`, each step as it happens;
//! - [`doctor`]: what the machine offers;
//! - [`exit`]: docker's exit codes;
//! - [`suggest`]: "did you mean `run`?".

pub mod capabilities;
pub mod cli;
pub mod clone3;
pub mod doctor;
pub mod exe_view;
pub mod exec;
pub mod exit;
pub mod explain;
pub mod fds;
pub mod init;
pub mod layer;
pub mod pass_fd;
pub mod pidfd;
pub mod program;
pub mod pty;
pub mod read_only;
pub mod records;
pub mod relay;
pub mod runner;
pub mod sealed;
pub mod signals;
pub mod state;
pub mod suggest;
pub mod sync;
pub mod terminal;
pub mod workdir;

pub use cli::Stage;
pub use layer::{Child, Cleanup, Ids, Layer, MadeFile, Parent, Prepare, Process};
