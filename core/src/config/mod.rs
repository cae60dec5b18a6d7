//! The lighttpd configuration language (to be written).
