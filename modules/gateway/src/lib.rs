//! featherd-gateway: what every backend module (mod_cgi, mod_fastcgi, mod_scgi, mod_proxy)
//! shares, statically linked into each of them.
//!
//! * [`env`]: the CGI/1.1 environment (RFC 3875) built once from a request, so every backend
//!   sees the same variables, including those other modules added (mod_setenv, mod_auth).
//! * [`cgi_head`]: the head of a CGI-style response (`Status:`, `Location:`, headers) as
//!   CGI scripts, FastCGI and SCGI applications send it, and how it applies to a request.
pub mod cgi_head;
pub mod env;
pub mod xsendfile;
