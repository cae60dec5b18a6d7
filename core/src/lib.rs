//! featherd core: event loop, HTTP/1.x, the configuration language and the module host.
pub mod config;
