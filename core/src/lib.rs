//! featherd core: event loop, HTTP/1.x, the configuration language and the module host.
//!
//! Data flow: [`server`] reads the configuration ([`config`]) and loads the modules
//! ([`host`]); each [`worker`] accepts connections, parses request heads ([`http`]) into a
//! [`request::Request`], runs the hook chain ([`handle`]) and writes the response from a
//! [`chunk::ChunkQueue`].
pub mod blocking;
pub mod body;
pub mod chunk;
pub mod conf;
pub mod config;
pub mod errorlog;
pub mod handle;
pub mod host;
pub mod http;
pub mod request;
pub mod server;
pub mod stats;
pub mod worker;
