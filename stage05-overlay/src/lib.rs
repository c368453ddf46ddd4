//! Stage 5's foundations: OCI images on disk.
//!
//! - [`reference`]: image references, read as docker reads them;
//! - [`digest`]: content addresses, and bytes verified while they stream;
//! - [`store`]: the content-addressed store of blobs, unpacked layers and names;
//! - [`unpack`]: layers applied into directories, whiteouts and all, safely;
//! - [`import`]: images from an OCI image layout or a rootfs tarball;
//! - [`pull`]: images from a registry.

pub mod digest;
pub mod import;
pub mod pull;
pub mod reference;
pub mod store;
pub mod unpack;
