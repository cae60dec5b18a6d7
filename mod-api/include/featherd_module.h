/*
 * featherd_module.h: the C ABI between the featherd server and its modules.
 *
 * GENERATED from mod-api/src/abi.rs by cbindgen (config: mod-api/cbindgen.toml).
 * DO NOT EDIT: change abi.rs, then run
 *     FEATHERD_BLESS=1 cargo test -p featherd-mod-api --test c_header
 *
 * The rules of the ABI, which both sides rely on:
 *  - A module exports one symbol, featherd_module_v1 (FEATHERD_MODULE_SYMBOL): a function with
 *    no arguments returning a pointer to a static fd_module_descriptor.
 *  - fd_module_descriptor and fd_host_api begin with their size in bytes (struct_size) and are
 *    append-only: a published field never moves or changes type. A reader uses
 *    min(struct_size, its own size) bytes and treats later fields as absent. Set
 *    struct_size = sizeof(fd_module_descriptor); check a host field's offset against
 *    host->struct_size before calling a field newer than ABI 1.0.
 *  - A breaking change bumps FEATHERD_ABI_MAJOR and the symbol name (featherd_module_v2); the
 *    server refuses a module whose abi_major differs from its own.
 *  - Strings cross as fd_str views (pointer + length, not NUL-terminated, not necessarily
 *    UTF-8). Host-returned views stay valid until the next call that mutates the same object
 *    or until the hook returns; config values until cleanup. Copy what you keep.
 *  - Ownership: nothing allocated on one side is freed on the other. The host takes the fd
 *    passed to response_append_file in every case; an fd given to fd_register stays the
 *    module's (unregister before closing it). Per-request and per-connection slots are freed
 *    by the module in its request_reset / connection_close hook.
 *  - Never unwind (C++ exceptions, longjmp) across the boundary; return
 *    FEATHERD_HANDLER_ERROR instead.
 */

#ifndef FEATHERD_MODULE_H
#define FEATHERD_MODULE_H

#include <stdint.h>
#include <stddef.h>
/* Opaque handles owned by the host; modules only ever hold pointers to them. */
typedef struct fd_request fd_request;
typedef struct fd_connection fd_connection;
typedef struct fd_config fd_config;
typedef struct fd_value fd_value;
typedef struct fd_conn_list fd_conn_list;

/* Written here rather than generated: cbindgen cannot see that the descriptor's
 * Option<fd_request_hook> fields depend on these aliases and would emit them after the
 * descriptor. tests/c_header.rs checks that they match what cbindgen generates. */

// Return value of a hook: one of the FEATHERD_HANDLER_* values. Unknown values are treated as
// FEATHERD_HANDLER_ERROR.
typedef uint32_t fd_result_t;

// A hook on a request. `module_data` is what `init` returned.
typedef fd_result_t (*fd_request_hook)(void *module_data, fd_request *req);

// A hook on a connection (accept, shut_wr, close).
typedef fd_result_t (*fd_connection_hook)(void *module_data, fd_connection *con);

// A server-life hook (trigger, sighup).
typedef fd_result_t (*fd_server_hook)(void *module_data);

// `waitpid`: a child process exited. Return FINISHED if the pid was the module's.
typedef fd_result_t (*fd_waitpid_hook)(void *module_data, int32_t pid, int32_t status);

// `connection_preface` (ABI 1.6): the `len` bytes at `data` are what the connection sent so
// far, before any HTTP; the module writes how many of them it took to `consumed`.
typedef fd_result_t (*fd_preface_hook)(void *module_data,
                                       fd_connection *con,
                                       const uint8_t *data,
                                       size_t len,
                                       size_t *consumed);

// Incompatible-change counter. A module with a different major is refused at start.
#define FEATHERD_ABI_MAJOR 1

// Additive-change counter: the number of append steps since the major was published.
#define FEATHERD_ABI_MINOR 8

// Log levels (as the `log` crate orders them).
#define FEATHERD_LOG_ERROR 1

#define FEATHERD_LOG_WARN 2

#define FEATHERD_LOG_INFO 3

#define FEATHERD_LOG_DEBUG 4

#define FEATHERD_LOG_TRACE 5

// Config value kinds, for [`ConfigKeyDecl::kind`] and `value_kind`.
#define FEATHERD_VALUE_STRING 1

#define FEATHERD_VALUE_INT 2

// A boolean key: "enable"/"disable", "true"/"false", "1"/"0" or an integer 0/1.
#define FEATHERD_VALUE_BOOL 3

// An array: `( "a", "b" )` or `( "k" => v, ... )`.
#define FEATHERD_VALUE_ARRAY 4

// Any of the above; the module checks it.
#define FEATHERD_VALUE_ANY 5

// Key scope: may appear in conditional blocks (merged per request).
#define FEATHERD_SCOPE_CONDITIONAL 0

// Key scope: only in the global block (server-wide settings).
#define FEATHERD_SCOPE_SERVER 1

// fd interest / readiness bits.
#define FEATHERD_FD_READABLE 1

#define FEATHERD_FD_WRITABLE 2

// Readiness only: hang-up or error on the fd.
#define FEATHERD_FD_HUP 4

#define FEATHERD_FD_ERROR 8

#define FEATHERD_FILE_KIND_OTHER 0

#define FEATHERD_FILE_KIND_REGULAR 1

#define FEATHERD_FILE_KIND_DIRECTORY 2

// Connection states, as lighttpd names them (`connection_get_state`), for
// [`ConnRecord::state`] and `conn_list_state_count`. featherd uses `READ` (waiting for or
// reading a request head), `READ_POST` (reading a body before the handler runs),
// `HANDLE_REQUEST` (in the hook chain or suspended on a backend), `WRITE`, `CLOSE` (the
// response is out, the rest of the input is read and dropped) and `KEEP_ALIVE` (idle between
// requests); the others are there so that lighttpd's legend reads the same.
#define FEATHERD_CONN_STATE_CONNECT 0

#define FEATHERD_CONN_STATE_REQUEST_START 1

#define FEATHERD_CONN_STATE_READ 2

#define FEATHERD_CONN_STATE_REQUEST_END 3

#define FEATHERD_CONN_STATE_READ_POST 4

#define FEATHERD_CONN_STATE_HANDLE_REQUEST 5

#define FEATHERD_CONN_STATE_RESPONSE_START 6

#define FEATHERD_CONN_STATE_WRITE 7

#define FEATHERD_CONN_STATE_RESPONSE_END 8

#define FEATHERD_CONN_STATE_ERROR 9

#define FEATHERD_CONN_STATE_CLOSE 10

#define FEATHERD_CONN_STATE_KEEP_ALIVE 11

// Number of states (one past the last).
#define FEATHERD_CONN_STATE_COUNT 12

// Hook bits of [`ModuleInfo::hooks`], in the order of the descriptor (the Rust SDK's
// `Hooks` uses the same bits).
#define FEATHERD_HOOK_URI_RAW (1 << 0)

#define FEATHERD_HOOK_URI_CLEAN (1 << 1)

#define FEATHERD_HOOK_DOCROOT (1 << 2)

#define FEATHERD_HOOK_PHYSICAL (1 << 3)

#define FEATHERD_HOOK_SUBREQUEST_START (1 << 4)

#define FEATHERD_HOOK_SUBREQUEST (1 << 5)

#define FEATHERD_HOOK_RESPONSE_START (1 << 6)

#define FEATHERD_HOOK_REQUEST_DONE (1 << 7)

#define FEATHERD_HOOK_REQUEST_RESET (1 << 8)

#define FEATHERD_HOOK_CONNECTION_ACCEPT (1 << 9)

#define FEATHERD_HOOK_CONNECTION_SHUT_WR (1 << 10)

#define FEATHERD_HOOK_CONNECTION_CLOSE (1 << 11)

#define FEATHERD_HOOK_TRIGGER (1 << 12)

#define FEATHERD_HOOK_SIGHUP (1 << 13)

#define FEATHERD_HOOK_WAITPID (1 << 14)

#define FEATHERD_HOOK_WORKER_INIT (1 << 15)

#define HOOK_CONNECTION_PREFACE (1 << 16)

// A borrowed byte string: pointer and length. `ptr` may be null when `len` is 0.
typedef struct fd_str {
  const uint8_t *ptr;
  size_t len;
} fd_str;

// One configuration key a module owns, e.g. `index-file.names`.
typedef struct fd_config_key {
  struct fd_str name;
  // One of the `VALUE_*` constants; the host checks it and reports file:line on mismatch.
  uint32_t kind;
  // `SCOPE_CONDITIONAL` or `SCOPE_SERVER`.
  uint32_t scope;
} fd_config_key;

// Called on the worker thread when a registered fd is ready (or a timer fires; then `fd` is
// -1 and `events` is 0). `module_data` is what the module's `init` returned, `ctx` what it
// passed at registration.
typedef void (*fd_event_fn)(void *module_data, void *ctx, int32_t fd, uint32_t events);

// What the host's stat found (see `request_file_info`).
typedef struct fd_file_info {
  uint64_t size;
  // Modification time, seconds and nanoseconds since the epoch.
  int64_t mtime;
  int64_t mtime_nsec;
  uint64_t inode;
  uint64_t device;
  // st_mode (file type and permission bits).
  uint32_t mode;
  // 1 for a regular file, 2 for a directory, 0 for anything else.
  uint32_t kind;
} fd_file_info;

// A step of a blocking job (see `blocking_submit`): `module_data` is what the module's `init`
// returned, `ctx` what it passed at submission.
typedef void (*fd_blocking_fn)(void *module_data, void *ctx);

// Server-wide figures, summed over every worker (see `server_stats`). Size-prefixed and
// append-only like the tables: the caller sets `struct_size` to its own size and the host
// fills at most that many bytes (fields it does not know stay as the caller set them).
typedef struct fd_server_stats {
  uint32_t struct_size;
  // Workers running now.
  uint32_t workers;
  // When the server started, seconds since the epoch (a graceful restart keeps it).
  int64_t start_time;
  // The server's clock, seconds since the epoch.
  int64_t now;
  // Responses started since the server started (every request answered, errors included;
  // counted when the response head is built, so a client that has read a response sees it
  // counted).
  uint64_t requests;
  // Bytes read from clients (request heads and bodies).
  uint64_t bytes_in;
  // Bytes written to clients (response heads and bodies). Requests in progress are added
  // once a second and when they end.
  uint64_t bytes_out;
  // Connections accepted since the server started.
  uint64_t connections;
  // Connections open now.
  uint64_t connections_open;
  // `server.max-connections` as it applies (0: no limit).
  uint64_t max_connections;
  // The soft limit on open files (`RLIMIT_NOFILE`), 0 when unknown.
  uint64_t fd_limit;
  // Graceful restarts (SIGUSR1) since the server started.
  uint64_t restarts;
} fd_server_stats;

// Called on the worker thread that asked for a connection snapshot, once every worker has
// described its connections (see `connections_collect`). `list` is valid for this call only.
typedef void (*fd_collect_fn)(void *module_data, void *ctx, const fd_conn_list *list);

// One connection of one worker (see `conn_list_get`). Size-prefixed like [`ServerStats`].
// The strings point into the list and are valid during the `fd_collect_fn` call only.
typedef struct fd_conn_record {
  uint32_t struct_size;
  // One of the `CONN_STATE_*` values.
  uint32_t state;
  // The worker that owns the connection.
  uint32_t worker;
  uint32_t remote_port;
  // Requests answered on this connection before the current one.
  uint64_t requests;
  // Milliseconds since the current request began (idle connections: since their last
  // activity).
  uint64_t age_ms;
  // Request bytes read for the current request (head and body).
  uint64_t bytes_in;
  // The request body's declared length, or -1 (none, or chunked).
  int64_t content_length;
  // Response bytes written for the current request (head and body).
  uint64_t bytes_out;
  // Response bytes produced so far: written plus queued.
  uint64_t bytes_total;
  // Response status once decided, else 0.
  uint32_t status;
  uint32_t _reserved;
  // The client's address ("127.0.0.1", "::1", "unix:").
  struct fd_str remote_addr;
  // Empty while no request head has been read.
  struct fd_str method;
  // The request's host (Host header or absolute target), as the host services give it.
  struct fd_str host;
  // The target as the client sent it (raw, not decoded).
  struct fd_str target;
  // The target after a module rewrote it; empty when it was not rewritten.
  struct fd_str target_rewritten;
  // The physical path, once known.
  struct fd_str physical;
} fd_conn_record;

// A loaded module, as `module_info` describes it. Size-prefixed like [`ServerStats`]; the
// strings are valid until the configuration is loaded again (a graceful restart).
typedef struct fd_module_info {
  uint32_t struct_size;
  // The `HOOK_*` bits of the hooks the module's descriptor sets.
  uint32_t hooks;
  struct fd_str name;
  struct fd_str version;
  struct fd_str description;
  // The size of the descriptor the module was built with (tells its ABI minor).
  uint32_t descriptor_size;
  uint32_t _reserved;
} fd_module_info;

// The services the server offers to modules, passed to `init`. Append-only like the
// descriptor: check `struct_size` before calling a field added after the module's ABI minor
// (the Rust SDK does this for you).
//
// Conventions: functions returning `i32` return 0 on success and a negative value on error
// (-1 bad argument / not allowed now, -2 not found); `Str` results are empty when absent
// unless a `found` flag says otherwise.
typedef struct fd_host_api {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  // The server's version, e.g. "0.1.0".
  struct fd_str server_version;
  // Write a line to the error log, prefixed with the module's name.
  void (*log)(uint32_t module_id, uint32_t level, struct fd_str msg);
  // Highest level currently logged (so a module can skip formatting debug lines).
  uint32_t (*log_max_level)(void);
  // Number of config blocks; block 0 is the global one, the others are conditional.
  uint32_t (*config_block_count)(const fd_config *cfg);
  // Enclosing block of `block`, or -1 for block 0.
  int32_t (*config_block_parent)(const fd_config *cfg, uint32_t block);
  // Value of the module's key number `key` (index in its `config_keys`) in `block`, or null
  // when that block does not set it.
  const fd_value *(*config_value)(const fd_config *cfg,
                                  uint32_t module_id,
                                  uint32_t block,
                                  uint32_t key);
  // Report a config error for a key of the module in a block: the host prints it with the
  // file:line of the setting and the key name, and refuses to start.
  void (*config_error)(const fd_config *cfg,
                       uint32_t module_id,
                       uint32_t block,
                       uint32_t key,
                       struct fd_str msg);
  // `VALUE_STRING`, `VALUE_INT` or `VALUE_ARRAY`.
  uint32_t (*value_kind)(const fd_value *v);
  struct fd_str (*value_str)(const fd_value *v);
  // Integer value; strings holding a decimal integer convert. `ok` is set to 1 or 0.
  int64_t (*value_int)(const fd_value *v, int32_t *ok);
  // Boolean value ("enable", "disable", "true", "false", "1", "0", integers). Returns 1, 0,
  // or -1 when the value is not a boolean.
  int32_t (*value_bool)(const fd_value *v);
  size_t (*value_array_len)(const fd_value *v);
  // Element `i` of an array value, or null.
  const fd_value *(*value_array_get)(const fd_value *v, size_t i);
  // Key of element `i` (`"k" => v` entries), empty for plain elements; `found` set to 1/0.
  struct fd_str (*value_array_key)(const fd_value *v, size_t i, int32_t *found);
  // The matched config blocks that set at least one of the module's keys, in config order
  // (block 0 is never listed). Writes up to `cap` block numbers, returns the total count.
  size_t (*request_config_blocks)(fd_request *req, uint32_t module_id, uint32_t *out, size_t cap);
  // Capture `n` (`%n`) of the nearest regex condition at or above `block` for this request.
  struct fd_str (*request_capture)(fd_request *req, uint32_t block, uint32_t n, int32_t *found);
  struct fd_str (*request_method)(fd_request *req);
  // The request target as received (raw, not decoded).
  struct fd_str (*request_target)(fd_request *req);
  // The decoded, normalised path (already so in uri_raw; the raw form is `request_target`).
  struct fd_str (*request_path)(fd_request *req);
  // Query string without '?' ; `found` says whether a '?' was present.
  struct fd_str (*request_query)(fd_request *req, int32_t *found);
  // Host (from the Host header or absolute target), lower-cased, without port.
  struct fd_str (*request_host)(fd_request *req);
  // "http" or "https".
  struct fd_str (*request_scheme)(fd_request *req);
  // "HTTP/1.0" or "HTTP/1.1".
  struct fd_str (*request_protocol)(fd_request *req);
  // Rewrite the target (path?query, raw form). After returning COMEBACK the request
  // restarts with the new target. Returns -1 if the target is not acceptable.
  int32_t (*request_set_target)(fd_request *req, struct fd_str target);
  // First value of header `name`; `found` set to 1/0.
  struct fd_str (*request_header_get)(fd_request *req, struct fd_str name, int32_t *found);
  // Replace all values of `name` by `value`.
  int32_t (*request_header_set)(fd_request *req, struct fd_str name, struct fd_str value);
  int32_t (*request_header_append)(fd_request *req, struct fd_str name, struct fd_str value);
  int32_t (*request_header_remove)(fd_request *req, struct fd_str name);
  // Header number `i` (in received order); returns 0 past the end.
  int32_t (*request_header_at)(fd_request *req, size_t i, struct fd_str *name, struct fd_str *value);
  // Content-Length of the request body, or -1 if none/unknown.
  int64_t (*request_content_length)(fd_request *req);
  // Read up to `cap` bytes of the request body. Returns the count, 0 at the end of the
  // body, -11 (EAGAIN) when more is expected but not here yet (the handler is woken when
  // it arrives).
  ptrdiff_t (*request_body_read)(fd_request *req, uint8_t *buf, size_t cap);
  struct fd_str (*request_docroot)(fd_request *req);
  int32_t (*request_set_docroot)(fd_request *req, struct fd_str docroot);
  struct fd_str (*request_physical_path)(fd_request *req);
  int32_t (*request_set_physical_path)(fd_request *req, struct fd_str path);
  // PATH_INFO split off after the physical path (subrequest_start onwards).
  struct fd_str (*request_path_info)(fd_request *req);
  // Remote address as text ("127.0.0.1", "::1", or "unix:")
  struct fd_str (*request_remote_addr)(fd_request *req);
  uint32_t (*request_remote_port)(fd_request *req);
  // Local address and port the request came in on, as "addr:port".
  struct fd_str (*request_local_addr)(fd_request *req);
  struct fd_str (*request_env_get)(fd_request *req, struct fd_str name, int32_t *found);
  int32_t (*request_env_set)(fd_request *req, struct fd_str name, struct fd_str value);
  int32_t (*request_env_at)(fd_request *req, size_t i, struct fd_str *name, struct fd_str *value);
  // Claim the request: the module's `subrequest` hook becomes its handler. Returns -1 if
  // another module already claimed it.
  int32_t (*request_claim)(fd_request *req, uint32_t module_id);
  void (*response_set_status)(fd_request *req, uint32_t status);
  uint32_t (*response_status)(fd_request *req);
  struct fd_str (*response_header_get)(fd_request *req, struct fd_str name, int32_t *found);
  int32_t (*response_header_set)(fd_request *req, struct fd_str name, struct fd_str value);
  int32_t (*response_header_append)(fd_request *req, struct fd_str name, struct fd_str value);
  int32_t (*response_header_remove)(fd_request *req, struct fd_str name);
  int32_t (*response_header_at)(fd_request *req, size_t i, struct fd_str *name, struct fd_str *value);
  // Queue a copy of `data` as body.
  int32_t (*response_append_mem)(fd_request *req, struct fd_str data);
  // Queue `len` bytes of the open file `fd` from `offset` (sent with sendfile). The host
  // takes ownership of `fd` (closes it when sent, or on error) in every case.
  int32_t (*response_append_file)(fd_request *req, int32_t fd, uint64_t offset, uint64_t len);
  // Declare the body length (Content-Length). Without it, a finished body's length is the
  // queued size; a streamed body of unknown length goes out chunked (HTTP/1.1).
  void (*response_set_content_length)(fd_request *req, int64_t len);
  // Mark the body complete (streamed responses; a handler that returns FINISHED marks it).
  void (*response_body_finish)(fd_request *req);
  // Bytes queued and not yet written to the client.
  uint64_t (*response_pending)(fd_request *req);
  // Above this many pending bytes a streaming module should stop producing; the request is
  // woken when the queue drains below half of it.
  uint64_t (*response_high_water)(fd_request *req);
  // Per-request slot of the module (null until set). The module frees what it stored in
  // its `request_reset` hook.
  void *(*request_slot_get)(fd_request *req, uint32_t module_id);
  void (*request_slot_set)(fd_request *req, uint32_t module_id, void *data);
  void *(*connection_slot_get)(fd_connection *con, uint32_t module_id);
  void (*connection_slot_set)(fd_connection *con, uint32_t module_id, void *data);
  struct fd_str (*connection_remote_addr)(fd_connection *con);
  // An id for the request that stays unique on its worker; safe to keep after the request
  // is gone (waking a gone request does nothing).
  uint64_t (*request_id)(fd_request *req);
  // Resume a request suspended with WAIT_FOR_EVENT (worker thread only). Returns -2 if the
  // request no longer exists.
  int32_t (*request_wake)(uint64_t request_id);
  // Register `fd` with the current worker's poller for `interest` (FD_READABLE |
  // FD_WRITABLE); `cb(module_data, ctx, fd, events)` runs on readiness (edge-triggered: read
  // or write until EAGAIN). Returns a handle (> 0) or a negative error. The fd stays the
  // module's: unregister before closing it.
  int64_t (*fd_register)(uint32_t module_id,
                         int32_t fd,
                         uint32_t interest,
                         fd_event_fn cb,
                         void *ctx);
  int32_t (*fd_modify)(int64_t handle, uint32_t interest);
  int32_t (*fd_unregister)(int64_t handle);
  // Call `cb(module_data, ctx, -1, 0)` once after `ms` milliseconds on the current worker.
  // Returns a handle (> 0) for `timer_cancel`.
  int64_t (*timer_add)(uint32_t module_id, uint64_t ms, fd_event_fn cb, void *ctx);
  int32_t (*timer_cancel)(int64_t handle);
  // Index of the current worker thread, or -1 on the main thread.
  int32_t (*worker_index)(void);
  // Current time in seconds since the epoch as the server caches it.
  int64_t (*now)(void);
  // Result of the host's stat of the physical path (subrequest_start onwards; after a
  // module changed the physical path, the host stats again). Returns -2 if the path does
  // not exist, -1 before the physical path is known.
  int32_t (*request_file_info)(fd_request *req, struct fd_file_info *out);
  // Content type for a file name from `mimetype.assign` (longest matching suffix), or
  // `mimetype.default`.
  struct fd_str (*mimetype_for)(fd_request *req, struct fd_str path);
  // Response bytes written to the client so far (headers included).
  uint64_t (*request_bytes_out)(fd_request *req);
  // Request bytes read from the client (head and body).
  uint64_t (*request_bytes_in)(fd_request *req);
  // When the request's first byte arrived, microseconds since the epoch.
  uint64_t (*request_start_us)(fd_request *req);
  // The description a module declared (empty for 1.0 modules); for listings.
  struct fd_str (*module_description)(uint32_t module_id);
  // The module that claimed the request (`request_claim`), or -1 when none did. A module
  // that would serve a request steps aside when another module owns it.
  int32_t (*request_handler)(fd_request *req);
  // Replace the decoded path in place, without restarting the request (mod_indexfile
  // appends the index file's name so later modules see it). Returns -1 for a path that
  // does not start with '/' or contains NUL.
  int32_t (*request_set_path)(fd_request *req, struct fd_str path);
  // Response body bytes written to the client so far (headers excluded).
  uint64_t (*response_body_bytes_out)(fd_request *req);
  // Queue `len` bytes from `offset` of the request's physical file as response body,
  // from the worker's file cache (an open descriptor kept for about a second, small files'
  // contents in memory): no open, fstat or close per request. The bytes are those of the
  // file `request_file_info` describes; -1 when that cannot be promised (the file changed,
  // vanished or cannot be read: open it yourself and use `response_append_file`).
  // `len` 0 only checks that the file can be sent this way.
  int32_t (*response_append_physical)(fd_request *req, uint64_t offset, uint64_t len);
  // Unregister `handle` and close `fd`, the descriptor it watches, in one step: closing
  // removes it from the poller, so no separate unregistration call is made. The host takes
  // `fd` in every case. Returns -2 for an unknown handle (the fd is closed all the same).
  int32_t (*fd_close)(int64_t handle, int32_t fd);
  // The target as the client sent it, before any `request_set_target` (mod_rewrite, a
  // backend's local redirect) changed it: CGI's `REQUEST_URI`, the access log's request
  // line. Equal to `request_target` for a request that was not rewritten.
  struct fd_str (*request_target_orig)(fd_request *req);
  // Run `job(module_data, ctx)` on one of the server's blocking threads (a small pool shared
  // by all workers, started on first use), then `done(module_data, ctx)` on the worker thread
  // that submitted it, from its event loop. For work that must block or burn CPU (a slow
  // password hash, a large directory walk): the worker goes on serving other clients
  // meanwhile; a request waiting for the result returns WAIT_FOR_EVENT and is woken from
  // `done`. `job` must not call host services. `done` is called exactly once while the
  // worker runs (not at all if the worker stops first: `ctx` is then leaked). Worker thread
  // only: returns 0, or -1 (not on a worker thread, or no thread could be started).
  int32_t (*blocking_submit)(uint32_t module_id, fd_blocking_fn job, fd_blocking_fn done, void *ctx);
  // Offer a table of functions to other modules under `name` (e.g. mod_authn_file offers
  // the password backends mod_auth calls). The table's layout is the business of the modules
  // that share the name; it must stay valid until `cleanup`. Call from `init` (main thread).
  // Returns 0, or -1 when the name is taken or the call comes too late.
  int32_t (*service_register)(uint32_t module_id, struct fd_str name, const void *table);
  // The table registered under `name`, or null. `provider` (may be null) receives the id of
  // the module that registered it. Callable from `set_defaults` on (every `init` has run).
  const void *(*service_lookup)(struct fd_str name, uint32_t *provider);
  // Close the connection after this response instead of keeping it alive (mod_auth does so
  // after a wrong password, as lighttpd does).
  void (*request_disable_keep_alive)(fd_request *req);
  // `server.tag` as configured for this request (empty when set to ""): what the `Server`
  // response header says, for modules that name the server in a page they generate
  // (mod_dirlisting's footer).
  struct fd_str (*request_server_tag)(fd_request *req);
  // Set the request's remote address (an IPv4 or IPv6 address in text, e.g. from
  // X-Forwarded-For; IPv4-mapped IPv6 becomes IPv4) and port (0 when unknown): from now on,
  // for this request only, `request_remote_addr`/`request_remote_port`, `$HTTP["remoteip"]`,
  // the access log and backends' `REMOTE_ADDR`/`REMOTE_PORT` say so. When that changes the
  // result of a condition, the conditions are evaluated again at once, so the settings of
  // every module from the next call on are those of the new address. The next request of
  // the connection starts from the connection's address again. Returns 0, or -1 for text
  // that is not an IP address.
  int32_t (*request_set_remote_addr)(fd_request *req, struct fd_str addr, uint32_t port);
  // Set the request's scheme, "http" or "https" (any case), as a TLS-terminating proxy
  // reports it: `request_scheme`, `$HTTP["scheme"]`, backends' `HTTPS` and
  // `REQUEST_SCHEME`, redirects the server builds. Conditions are evaluated again when that
  // matters. Returns 0, or -1 for another scheme.
  int32_t (*request_set_scheme)(fd_request *req, struct fd_str scheme);
  // Set the request's host (`host[:port]`, as a Host header holds it; lower-cased, the
  // port split off as the parser does) and its Host header: `request_host`,
  // `$HTTP["host"]`, backends' `HTTP_HOST` and `SERVER_NAME`. Conditions are evaluated
  // again when that matters. Returns 0, or -1 for a value that is not a valid host.
  int32_t (*request_set_host)(fd_request *req, struct fd_str host);
  // The connection the request came on (for `connection_slot_get`: a module's connection
  // state from a request hook). Valid as long as the request.
  fd_connection *(*request_connection)(fd_request *req);
  // Like `request_config_blocks`, for a connection outside any request (connection
  // hooks): the matched blocks setting one of the module's keys, with conditions on the
  // connection (`$SERVER["socket"]`, `$HTTP["remoteip"]`, `$HTTP["scheme"]`) evaluated
  // and every condition on request data (host, URL, headers...) compared with an empty
  // value. Writes up to `cap` block numbers, returns the total count.
  size_t (*connection_config_blocks)(fd_connection *con,
                                     uint32_t module_id,
                                     uint32_t *out,
                                     size_t cap);
  // Claim the connection's preface: the module's `connection_preface` hook sees the first
  // bytes before the HTTP parser. Call from `connection_accept`. Returns 0, or -1 when
  // another module claimed it or the module has no `connection_preface` hook.
  int32_t (*connection_claim_preface)(fd_connection *con, uint32_t module_id);
  // Set the connection's remote address and port (as `request_set_remote_addr`, for every
  // request of the connection from the next one on: a PROXY protocol header). Returns 0,
  // or -1 for text that is not an IP address.
  int32_t (*connection_set_remote_addr)(fd_connection *con, struct fd_str addr, uint32_t port);
  // Set the connection's scheme, "http" or "https", for its requests from the next one on.
  // Returns 0, or -1 for another scheme.
  int32_t (*connection_set_scheme)(fd_connection *con, struct fd_str scheme);
  // Fill `out` (whose `struct_size` the caller set) with the server-wide figures, summed
  // over every worker. Any thread; takes no lock a worker holds while serving. Returns 0,
  // or -1 for a null `out` or a `struct_size` below 8.
  int32_t (*server_stats)(struct fd_server_stats *out);
  // Ask every worker to describe its connections (at most `max` records each; the counts
  // per state always cover every connection). Each worker answers from its own loop, between
  // two events, so no worker ever waits for another; when the last has answered,
  // `done(module_data, ctx, list)` runs on the calling worker, from its loop (a request
  // waiting for it returns WAIT_FOR_EVENT and is woken from `done`). A worker that stops
  // first answers with nothing; if the calling worker stops first, `done` is not called.
  // Worker thread only: returns 0, or -1.
  int32_t (*connections_collect)(uint32_t module_id, uint32_t max, fd_collect_fn done, void *ctx);
  // Record `i` of a collected list into `out` (whose `struct_size` the caller set). Returns
  // 1, or 0 past the end.
  int32_t (*conn_list_get)(const fd_conn_list *list, size_t i, struct fd_conn_record *out);
  // How many connections of the list are in `state` (`CONN_STATE_*`), over every worker and
  // whatever `max` was.
  uint64_t (*conn_list_state_count)(const fd_conn_list *list, uint32_t state);
  // The named counter `name` (lighttpd's plugin statistics, e.g.
  // "fastcgi.backend.php.0.load"), created at 0 on first use; the same name always gives the
  // same counter, also across graceful restarts (values are kept). The pointer is valid for
  // the life of the process and must be accessed atomically (C11 `atomic_fetch_add` on an
  // `_Atomic int64_t *`, or the `__atomic_*` builtins); workers share it. A name is 1 to 200
  // printable ASCII characters without spaces or ':'; null otherwise. Any thread.
  int64_t *(*stat_counter)(uint32_t module_id, struct fd_str name);
  // Counter number `i`, in name order, among those asked for since the configuration was
  // (re)loaded: its name (valid for the life of the process) and current value. Returns 1,
  // or 0 past the end.
  int32_t (*stat_counter_at)(size_t i, struct fd_str *name, int64_t *value);
  // Describe loaded module number `module_id` (0, 1, ... in `server.modules` order) into
  // `out` (whose `struct_size` the caller set). Returns 0, or -2 past the last module.
  int32_t (*module_info)(uint32_t module_id, struct fd_module_info *out);
  // The server's compile-time features as `featherd -V` lists them, one per line
  // ("+ IPv6 support", "- TLS support"), static text.
  struct fd_str (*server_features)(void);
  // The descriptor of `server.breakagelog` (open for appending, close-on-exec), or -1 when
  // it is not set. Its number stays the same for the life of the process (SIGHUP and
  // restarts reopen the file onto it), so it may be handed to a child process as its stderr
  // at any moment; do not close it. Any thread.
  int32_t (*breakagelog_fd)(void);
} fd_host_api;

// What a module's `featherd_module_v1` returns. Static, never freed.
typedef struct fd_module_descriptor {
  // Must be [`ABI_MAJOR`] of the mod-api the module was built with.
  uint32_t abi_major;
  // `size_of::<ModuleDescriptor>()` as the module was built.
  uint32_t struct_size;
  // The module's name, e.g. "mod_staticfile"; must match the file name `NAME.so`.
  struct fd_str name;
  // The module's own version, e.g. "1.0.0".
  struct fd_str version;
  // The configuration keys the module owns; the host rejects keys no module owns.
  const struct fd_config_key *config_keys;
  size_t config_keys_len;
  // Called once after loading; returns the module's data pointer (may be null) passed to
  // every later call. `module_id` identifies the module in host calls that need it.
  void *(*init)(const struct fd_host_api *host, uint32_t module_id);
  // The configuration is parsed: read and validate the keys (see the `config_*` services).
  // Return 0 for success; non-zero refuses to start (report the error with `config_error`).
  int32_t (*set_defaults)(void *module_data, const fd_config *cfg);
  // Called on each worker thread as it starts, with the worker index. Return 0 for success.
  int32_t (*worker_init)(void *module_data, uint32_t worker);
  // Called once at shutdown.
  void (*cleanup)(void *module_data);
  fd_request_hook uri_raw;
  fd_request_hook uri_clean;
  fd_request_hook docroot;
  fd_request_hook physical;
  fd_request_hook subrequest_start;
  // Called only for the module that claimed the request (`request_claim`).
  fd_request_hook subrequest;
  fd_request_hook response_start;
  fd_request_hook request_done;
  // Release per-request state (reverse module order). The result is ignored.
  fd_request_hook request_reset;
  fd_connection_hook connection_accept;
  fd_connection_hook connection_shut_wr;
  // Release per-connection state (reverse module order). The result is ignored.
  fd_connection_hook connection_close;
  // About once a second.
  fd_server_hook trigger;
  // SIGHUP: reopen log files.
  fd_server_hook sighup;
  fd_waitpid_hook waitpid;
  // A one-line description of the module (see `module_description`).
  struct fd_str description;
  // A connection preface: bytes a peer sends before HTTP (the HAProxy PROXY protocol
  // header). Called only for a connection whose preface the module claimed in its
  // `connection_accept` hook (`connection_claim_preface`), with the bytes read so far, before
  // the HTTP parser sees any of them. Return:
  // * GO_ON (or FINISHED) with `*consumed` = n: the preface is the first n bytes (at most
  //   `len`, 0 allowed); they are dropped and the rest is parsed as HTTP. The preface is
  //   over: the hook is not called again on this connection;
  // * WAIT_FOR_EVENT: more bytes are needed; called again when they arrive. A peer that
  //   closes, or fills `server.max-request-field-size` first, is closed; one that sends
  //   nothing is closed by `server.max-read-idle`;
  // * anything else: the preface is refused, and the connection is closed without a
  //   response.
  //
  // While it runs, the module may change the connection's remote address and scheme
  // (`connection_set_remote_addr`, `connection_set_scheme`).
  fd_preface_hook connection_preface;
} fd_module_descriptor;

// The signature of the exported symbol.
typedef const struct fd_module_descriptor *(*fd_module_entry)(void);

// Not mine / nothing to do: call the next module in the chain.
#define FEATHERD_HANDLER_GO_ON 0

// The response is decided (status set, body queued or none): stop the chain.
#define FEATHERD_HANDLER_FINISHED 1

// The target was rewritten: restart the request from uri_raw with conditions re-evaluated.
#define FEATHERD_HANDLER_COMEBACK 2

// Suspended: the request sleeps until an fd event or [`HostApi::request_wake`] for it, then
// the same hook (for `subrequest`: the handler's) is called again.
#define FEATHERD_HANDLER_WAIT_FOR_EVENT 3

// Internal error: the request gets a 500 (if nothing was sent yet) and the connection closes.
#define FEATHERD_HANDLER_ERROR 4

/* The name of the one symbol a module exports. */
#define FEATHERD_MODULE_SYMBOL "featherd_module_v1"

/* Size of fd_module_descriptor as ABI 1.0 published it (up to and including `waitpid`). */
#define FEATHERD_MODULE_DESCRIPTOR_SIZE_V1_0 ((uint32_t)offsetof(fd_module_descriptor, description))
/* Size of fd_host_api as ABI 1.0 published it. */
#define FEATHERD_HOST_API_SIZE_V1_0 ((uint32_t)offsetof(fd_host_api, module_description))
/* Size of fd_host_api as ABI 1.1 published it. */
#define FEATHERD_HOST_API_SIZE_V1_1 ((uint32_t)offsetof(fd_host_api, blocking_submit))

/* True when the host table `host` has the field `field` (a field added after ABI 1.0 must be
 * checked before it is called). */
#define FEATHERD_HOST_HAS(host, field) \
    ((size_t)(host)->struct_size >= offsetof(fd_host_api, field) + sizeof((host)->field))

/* The module's entry point; define it in exactly one translation unit of the module. */
#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const fd_module_descriptor *featherd_module_v1(void);
#ifdef __cplusplus
}
#endif

#endif /* FEATHERD_MODULE_H */
