//! Stage 5's foundations: OCI images on disk.
//!
//! - [`reference`]: image references, read as docker reads them;
//! - [`digest`]: content addresses, and bytes verified while they stream.

pub mod digest;
pub mod reference;
