/* http: a thin HTTP/1.1 server over libmicrohttpd, shared by `vklm serve` (engine/serve) and
 * any other page the program serves (`vklm rank --web`).
 *
 * One server listens on host:port (host 127.0.0.1 unless told otherwise; port 0 picks a free
 * one, vklm_http_port says which). Every request goes to ONE handler callback, on that
 * connection's own thread (one thread per connection), once the whole body has arrived. The
 * handler answers exactly once, before it returns, with either
 *   - vklm_http_reply: status, content type, body (copied), optional extra headers; or
 *   - vklm_http_reply_stream: status and content type now, the body later, written from ANY
 *     thread with vklm_http_stream_write and ended with vklm_http_stream_close; it goes out
 *     chunked as it is written (Server-Sent Events, long downloads).
 * A handler that answers neither way gets 500. The handler may block (the connection has its
 * own thread): vklm_http_gone polls whether the client has hung up meanwhile.
 *
 * Disconnects: a stream notices a client that hangs up within ~50 ms, even while nothing is
 * being written; vklm_http_stream_write then returns -1, vklm_http_stream_gone 1, and the
 * on_gone callback given to vklm_http_reply_stream (if any) runs once, on the connection's
 * thread, with the stream's lock held (so never after vklm_http_stream_close has returned): it
 * should only set a flag or signal; it must not call vklm_http_stream_* on that stream.
 *
 * Limits (vklm_http_options; 0 takes the default): the body (max_body, default 1 MiB) is
 * enforced while it arrives: a Content-Length over it is answered 413 before any of the body is
 * read, a chunked body that grows past it is discarded as it arrives and answered 413; the
 * request line and headers are held in at most header_bytes (default 32 KiB; past it, 431);
 * at most max_conns connections at once (default 128; more are closed at accept); a
 * connection idle for timeout_s seconds (default 15) is closed, which ends slow-loris clients
 * that stall; one whose body takes longer than request_s (default 30) to arrive in full is
 * closed. Streams are not subject to the idle timeout.
 *
 * Stopping: vklm_http_stop stops accepting, gives answers already on their way (a stream's
 * last chunks) up to 5 s to go out, then ends every connection.
 *
 * Owns: the listening socket, the connection threads, every response and stream (a stream
 * lives until both its producer has closed it and the connection is done with it).
 * Does not: parse bodies (JSON, forms), route, authenticate, or speak TLS. Not for untrusted
 * networks without a proxy in front: it binds loopback by default. */
#ifndef VKLM_NET_HTTP_H
#define VKLM_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "vklm_runtime.h"

typedef struct vklm_http vklm_http;
typedef struct vklm_http_request vklm_http_request; /* valid during the handler call only */
typedef struct vklm_http_stream vklm_http_stream;

/* One request, complete: method ("GET", "POST", ...), path (without the query string), body
 * (NUL-terminated for convenience; body_len excludes the NUL; may contain NULs). */
typedef void (*vklm_http_handler)(void *user, vklm_http_request *req, const char *method,
                                  const char *path, const char *body, size_t body_len);

typedef struct vklm_http_options {
  const char *host;      /* numeric address or name; NULL: "127.0.0.1" */
  uint16_t port;         /* 0: any free port */
  size_t max_body;       /* bytes; 0: 1 MiB */
  size_t header_bytes;   /* request line + headers; 0: 32 KiB */
  uint32_t max_conns;    /* 0: 128 */
  uint32_t timeout_s;    /* idle seconds before a connection is closed; 0: 15 */
  uint32_t request_s;    /* seconds to receive one request's body; 0: 30 */
  vklm_http_handler handler;
  void *user;
} vklm_http_options;

/* Starts listening (threads running when it returns). VKLM_ERROR_INVALID (bad host or options)
 * or VKLM_ERROR_IO (cannot bind: the port in use, ...), with a message in err. */
vklm_status vklm_http_start(const vklm_http_options *o, vklm_http **out, char *err, size_t errlen);
/* The port listened on (the one chosen when options asked for 0). */
uint16_t vklm_http_port(const vklm_http *h);
/* Stops accepting, lets answers in flight finish (up to 5 s), then ends every connection (a
 * stream still open ends as if its client had gone), joins the threads and frees everything.
 * Accepts NULL. */
void vklm_http_stop(vklm_http *h);

/* ---- inside the handler ---- */
/* A request header's value (case-insensitive name), or NULL. */
const char *vklm_http_header(const vklm_http_request *r, const char *name);
/* A query-string argument's value (decoded), or NULL; "" for a key without a value. */
const char *vklm_http_query(const vklm_http_request *r, const char *name);
/* The client's address as text ("127.0.0.1"). */
const char *vklm_http_remote(const vklm_http_request *r);
/* Whether the client has hung up (for a handler that blocks before answering). */
int vklm_http_gone(const vklm_http_request *r);

/* Answers with body[0..len) (copied) and headers: NULL, or name, value, name, value, ..., NULL.
 * VKLM_ERROR_INVALID when the request was already answered. */
vklm_status vklm_http_reply(vklm_http_request *r, int status, const char *content_type,
                            const char *body, size_t len, const char *const *headers);
/* Answers with a body that comes later, written through *out (no Content-Length: chunked).
 * on_gone(user) (may be NULL) runs once if the client hangs up before the stream is closed.
 * The caller owns one reference to *out and must vklm_http_stream_close it exactly once. */
vklm_status vklm_http_reply_stream(vklm_http_request *r, int status, const char *content_type,
                                   const char *const *headers, void (*on_gone)(void *user),
                                   void *user, vklm_http_stream **out);

/* ---- streams, from any thread ---- */
/* Queues data[0..n) (copied). 0, or -1 when the client has gone (the data is dropped). The
 * queue is unbounded: the producer bounds what it writes. */
int vklm_http_stream_write(vklm_http_stream *s, const void *data, size_t n);
int vklm_http_stream_gone(const vklm_http_stream *s);
/* Ends the body once the queue has been sent and drops the producer's reference. */
void vklm_http_stream_close(vklm_http_stream *s);

#endif
