//! What the pull tests share: a real registry, images to push to it, a proxy that
//! breaks connections, and a token server.

pub mod image;
pub mod proxy;
pub mod registry;
pub mod token;
