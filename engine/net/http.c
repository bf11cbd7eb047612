/* http: libmicrohttpd in thread-per-connection mode behind the small API of http.h. */
#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct vklm_http {
  struct MHD_Daemon *d; /* owned */
  vklm_http_options o;
  uint16_t port;
  atomic_int stopping;
  atomic_int inflight; /* requests begun and not yet answered in full */
};

/* Per request (MHD's con_cls): the body as it arrives. */
struct vklm_http_request {
  vklm_http *h;
  struct MHD_Connection *c;
  char *body;
  size_t len, cap;
  int over;      /* the body passed max_body: the rest is discarded, the answer is 413 */
  int answered;
  double t0;
  char remote[64];
};

struct vklm_http_stream {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  vklm_http *h;
  int fd;
  char *buf;
  size_t off, len, cap;
  int closed; /* the producer is done */
  int gone;   /* the client has gone (or the server stops) */
  int refs;   /* the producer's and the connection's */
  void (*on_gone)(void *);
  void *user;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fd_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  return ci ? ci->connect_fd : -1;
}

/* Whether the peer has hung up on fd (a half-close counts: a client never sends after its
 * request while waiting for the answer). */
static int peer_gone(int fd) {
  if (fd < 0) return 1;
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  if (poll(&p, 1, 0) <= 0) return 0;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* ---- streams ---- */
static void stream_unref(vklm_http_stream *s) {
  pthread_mutex_lock(&s->mu);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&s->mu);
  if (!last) return;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->buf);
  free(s);
}

/* Marks the stream gone and tells the producer (once, lock held). */
static void mark_gone(vklm_http_stream *s) {
  if (s->gone) return;
  s->gone = 1;
  if (!s->closed && s->on_gone) s->on_gone(s->user);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  vklm_http_stream *s = cls;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (s->len > s->off) {
      size_t n = s->len - s->off < max ? s->len - s->off : max;
      memcpy(out, s->buf + s->off, n);
      s->off += n;
      if (s->off == s->len) s->off = s->len = 0;
      pthread_mutex_unlock(&s->mu);
      return (ssize_t)n;
    }
    if (s->closed) {
      pthread_mutex_unlock(&s->mu);
      return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (s->gone || atomic_load(&s->h->stopping) || peer_gone(s->fd)) {
      mark_gone(s);
      pthread_mutex_unlock(&s->mu);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
}

/* MHD is done with the response (sent, failed or the connection closed). */
static void stream_free(void *cls) {
  vklm_http_stream *s = cls;
  pthread_mutex_lock(&s->mu);
  if (!s->closed) mark_gone(s);
  pthread_mutex_unlock(&s->mu);
  stream_unref(s);
}

int vklm_http_stream_write(vklm_http_stream *s, const void *data, size_t n) {
  pthread_mutex_lock(&s->mu);
  int rc = -1;
  if (!s->gone && !s->closed) {
    if (s->len + n > s->cap) {
      size_t cap = s->cap ? s->cap : 4096;
      while (cap < s->len + n) cap *= 2;
      char *b = realloc(s->buf, cap);
      if (!b) goto out;
      s->buf = b;
      s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    rc = 0;
    pthread_cond_signal(&s->cv);
  }
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int vklm_http_stream_gone(const vklm_http_stream *s) {
  vklm_http_stream *m = (vklm_http_stream *)s;
  pthread_mutex_lock(&m->mu);
  int g = m->gone;
  pthread_mutex_unlock(&m->mu);
  return g;
}

void vklm_http_stream_close(vklm_http_stream *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->closed = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  stream_unref(s);
}

/* ---- replies ---- */
static int add_headers(struct MHD_Response *resp, const char *ctype, const char *const *headers) {
  if (ctype && MHD_add_response_header(resp, "Content-Type", ctype) != MHD_YES) return -1;
  for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
    if (MHD_add_response_header(resp, headers[i], headers[i + 1]) != MHD_YES) return -1;
  return 0;
}

vklm_status vklm_http_reply(vklm_http_request *r, int status, const char *content_type,
                            const char *body, size_t len, const char *const *headers) {
  if (r->answered) return VKLM_ERROR_INVALID;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (!resp) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  vklm_status st = VKLM_OK;
  if (add_headers(resp, content_type, headers) ||
      MHD_queue_response(r->c, (unsigned)status, resp) != MHD_YES)
    st = VKLM_ERROR_IO;
  MHD_destroy_response(resp);
  r->answered = 1; /* even a failed queue: the connection is closed */
  return st;
}

vklm_status vklm_http_reply_stream(vklm_http_request *r, int status, const char *content_type,
                                   const char *const *headers, void (*on_gone)(void *user),
                                   void *user, vklm_http_stream **out) {
  *out = NULL;
  if (r->answered) return VKLM_ERROR_INVALID;
  vklm_http_stream *s = calloc(1, sizeof *s);
  if (!s) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->h = r->h;
  s->fd = fd_of(r->c);
  s->refs = 2;
  s->on_gone = on_gone;
  s->user = user;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s, stream_free);
  if (!resp) {
    s->refs = 1;
    stream_unref(s);
    return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  }
  /* from here MHD owns one reference: stream_free drops it, also when queueing fails */
  vklm_status st = VKLM_OK;
  MHD_set_connection_option(r->c, MHD_CONNECTION_OPTION_TIMEOUT, 0u); /* streams never idle out */
  if (add_headers(resp, content_type, headers) ||
      MHD_queue_response(r->c, (unsigned)status, resp) != MHD_YES)
    st = VKLM_ERROR_IO;
  r->answered = 1;
  if (st) {
    pthread_mutex_lock(&s->mu);
    s->gone = 1;
    pthread_mutex_unlock(&s->mu);
  }
  MHD_destroy_response(resp);
  *out = s; /* even on failure: the caller closes it (writes then return -1) */
  return st;
}

/* ---- requests ---- */
const char *vklm_http_header(const vklm_http_request *r, const char *name) {
  return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}
const char *vklm_http_query(const vklm_http_request *r, const char *name) {
  const char *v = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
  if (!v && MHD_lookup_connection_value_n(r->c, MHD_GET_ARGUMENT_KIND, name, strlen(name), NULL,
                                          NULL) == MHD_YES)
    return "";
  return v;
}
const char *vklm_http_remote(const vklm_http_request *r) { return r->remote; }
int vklm_http_gone(const vklm_http_request *r) {
  return atomic_load(&r->h->stopping) || peer_gone(fd_of(r->c));
}

static enum MHD_Result plain(struct MHD_Connection *c, unsigned status, const char *msg) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
  MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result rc = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *data,
                                 size_t *size, void **con_cls) {
  vklm_http *h = cls;
  vklm_http_request *r = *con_cls;
  if (!r) { /* headers are in */
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    r->h = h;
    r->c = c;
    r->t0 = now_s();
    atomic_fetch_add(&h->inflight, 1);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->remote,
                  sizeof r->remote);
      else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->remote,
                  sizeof r->remote);
    }
    *con_cls = r;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(cl, &end, 10);
      if (errno || end == cl || n > h->o.max_body) {
        r->answered = 1;
        return plain(c, 413, "request body too large\n");
      }
    }
    return MHD_YES;
  }
  if (*size) { /* a piece of the body */
    if (now_s() - r->t0 > h->o.request_s) return MHD_NO; /* too slow: close */
    if (!r->over && r->len + *size > h->o.max_body) {
      r->over = 1;
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
    }
    if (!r->over) {
      if (r->len + *size + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + *size + 1) cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) return MHD_NO;
        r->body = b;
        r->cap = cap;
      }
      memcpy(r->body + r->len, data, *size);
      r->len += *size;
    }
    *size = 0;
    return MHD_YES;
  }
  if (r->answered) return MHD_YES; /* answered already (413 on the first call) */
  if (r->over) {
    r->answered = 1;
    return plain(c, 413, "request body too large\n");
  }
  /* the request is complete */
  const char *q = strchr(url, '?');
  char path[2048];
  size_t pl = q ? (size_t)(q - url) : strlen(url);
  if (pl >= sizeof path) {
    r->answered = 1;
    return plain(c, 414, "URI too long\n");
  }
  memcpy(path, url, pl);
  path[pl] = 0;
  h->o.handler(h->o.user, r, method, path, r->body ? r->body : "", r->len);
  if (!r->answered) {
    r->answered = 1;
    return plain(c, 500, "no answer\n");
  }
  return MHD_YES;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  vklm_http_request *r = *con_cls;
  if (!r) return;
  atomic_fetch_sub(&r->h->inflight, 1);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

static void log_cb(void *cls, const char *fmt, va_list ap) { /* quiet: errors are answers */ }

vklm_status vklm_http_start(const vklm_http_options *o, vklm_http **out, char *err,
                            size_t errlen) {
  *out = NULL;
  if (!o->handler) return snprintf(err, errlen, "http: no handler"), VKLM_ERROR_INVALID;
  vklm_http *h = calloc(1, sizeof *h);
  if (!h) return VKLM_ERROR_OUT_OF_HOST_MEMORY;
  h->o = *o;
  if (!h->o.host) h->o.host = "127.0.0.1";
  if (!h->o.max_body) h->o.max_body = 1u << 20;
  if (!h->o.header_bytes) h->o.header_bytes = 32u << 10;
  if (!h->o.max_conns) h->o.max_conns = 128;
  if (!h->o.timeout_s) h->o.timeout_s = 15;
  if (!h->o.request_s) h->o.request_s = 30;
  const char *host = h->o.host;
  char hb[256];
  size_t hl = strlen(host);
  if (hl >= 2 && hl < sizeof hb && host[0] == '[' && host[hl - 1] == ']') { /* [::1] */
    memcpy(hb, host + 1, hl - 2);
    hb[hl - 2] = 0;
    host = hb;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE}, *ai = NULL;
  char port[16];
  snprintf(port, sizeof port, "%u", (unsigned)o->port);
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai || !ai) {
    snprintf(err, errlen, "http: cannot resolve host '%s': %s", h->o.host, gai_strerror(gai));
    free(h);
    return VKLM_ERROR_INVALID;
  }
  unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  h->d = MHD_start_daemon(flags, o->port, NULL, NULL, access_cb, h,
                          MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->o.max_conns,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->o.timeout_s,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->o.header_bytes,
                          MHD_OPTION_NOTIFY_COMPLETED, completed_cb, h,
                          MHD_OPTION_EXTERNAL_LOGGER, log_cb, h,
                          MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!h->d) {
    snprintf(err, errlen, "http: cannot listen on %s port %u (in use, or not an address of this "
             "machine)", h->o.host, (unsigned)o->port);
    free(h);
    return VKLM_ERROR_IO;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->port = di ? di->port : o->port;
  *out = h;
  return VKLM_OK;
}

uint16_t vklm_http_port(const vklm_http *h) { return h->port; }

void vklm_http_stop(vklm_http *h) {
  if (!h) return;
  /* no new connections; answers on their way (a stream's last chunks) go out, for up to 5 s */
  MHD_socket ls = MHD_quiesce_daemon(h->d);
  for (int i = 0; i < 500 && atomic_load(&h->inflight) > 0; i++) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  atomic_store(&h->stopping, 1);
  MHD_stop_daemon(h->d);
  if (ls != MHD_INVALID_SOCKET) close(ls);
  free(h);
}
