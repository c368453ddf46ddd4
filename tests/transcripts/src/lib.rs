//! The book's transcripts, checked: every console block is typed into a real shell on
//! a pseudo-terminal, and what the terminal shows must be what the book shows.
//!
//! - [`book`]: the console blocks, their steps, and the comments that say how to run
//!   a block;
//! - [`shell`]: interactive bash on a terminal, typed into;
//! - [`screen`]: what the terminal shows, from the bytes written to it;
//! - [`expect`]: the comparison, with holes for what differs between machines;
//! - [`facts`]: this machine's ids written as the book's;
//! - [`machine`]: a mount namespace of the run's own, the book's users removed
//!   afterwards, leftover processes killed;
//! - [`run`]: all of it, chapter by chapter.

pub mod book;
pub mod expect;
pub mod facts;
pub mod machine;
pub mod run;
pub mod screen;
pub mod shell;
