//! featherd-gateway: what every backend module (mod_cgi, mod_fastcgi, mod_scgi, mod_proxy)
//! shares, statically linked into each of them.
//!
//! * [`env`]: the CGI/1.1 environment (RFC 3875) built once from a request, so every backend
//!   sees the same variables, including those other modules added (mod_setenv, mod_auth).
//! * [`cgi_head`]: the head of a CGI-style response (`Status:`, `Location:`, headers) as
//!   CGI scripts, FastCGI and SCGI applications send it, and how it applies to a request.
//! * [`hosts`]: `*.server` mounts and hosts, balancing (`fair`, `round-robin`, `hash`,
//!   `sticky`) with counters shared by all workers, disabling a failed host, non-blocking
//!   connects to TCP and unix sockets.
//! * [`spawn`]: local backends started from `bin-path` (listening socket as fd 0), restarted
//!   when they exit, stopped at cleanup.
//! * [`backend`]: one request's exchange with a backend over a [`backend::Protocol`]
//!   (FastCGI, SCGI, uwsgi): failover, request body, response head, X-Sendfile, authorizer,
//!   streamed body with backpressure, timeouts.
//! * [`glue`]: the hook logic of a `*.server` module (routing, claiming, running).
pub mod backend;
pub mod cgi_head;
pub mod env;
pub mod glue;
pub mod hosts;
pub mod spawn;
pub mod xsendfile;
