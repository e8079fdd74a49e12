/*
** server: client connections on the libuv loop.
**
** Design notes
**
**  1. Everything in this file runs on the loop thread, except work_run(),
**     which runs on a libuv worker thread and touches only its batch (and
**     the thread-safe engine). The loop only cuts frames and copies their
**     payloads; decoding, executing and encoding happen on the worker, so
**     the one loop thread is not the node's bottleneck.
**  2. A connection's memory is freed only in its close callback, and only
**     once no batch of it is in work (c->inflight == 0): a batch holds a
**     pointer to its connection.
**  3. Answers are sent in the order their batches complete, not in request
**     order: clients match them by request id. Answers ready in one loop
**     iteration are gathered per connection and written with one writev
**     from the check phase (flush_dirty), not one write per batch.
**  4. Backpressure: a connection stops being read while it has more than
**     max_inflight requests in work or more than max_output bytes written
**     but not yet sent; reading resumes when both drop below.
**  5. A broken stream (bad magic, bad version, oversized length) gets one
**     error answer, then the connection is closed once its output is sent.
**     An unknown message type or a malformed payload gets an error answer
**     and the connection goes on.
**
** Connection states:
**
**     OPEN --(read paused by rule 4)--> PAUSED --(drained)--> OPEN
**       |                                  |
**       +--(EOF, error, broken stream, drain)--+--> CLOSING
**                                                     |
**                 (inflight == 0 && nothing left to write) -> uv_close -> freed
*/
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "frame.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "wire.h"

typedef struct conn conn;

typedef struct job {
  uint8_t type;
  uint32_t id;
  uint8_t *payload;            /* copy of the frame's payload, malloc'd */
  size_t len;
  uint8_t *out;                /* encoded answer frame, malloc'd */
  size_t nout;
  request *deferred;           /* for the proxy: replicas on other nodes */
} job;

typedef struct batch {
  uv_work_t work;
  conn *c;
  size_t n, cap;
  job *jobs;
} batch;

typedef struct write_req {
  uv_write_t w;
  conn *c;
  size_t nbufs;
  size_t bytes;
  uv_buf_t *bufs;              /* each base malloc'd, freed in write_done */
  uv_buf_t one;                /* storage when nbufs == 1 */
} write_req;

enum conn_state { CONN_OPEN, CONN_PAUSED, CONN_CLOSING };

struct conn {
  uv_tcp_t tcp;
  server *srv;
  enum conn_state state;
  int handle_closed;           /* uv_close called */
  frame_reader rd;
  size_t inflight;             /* requests in work */
  size_t out_bytes;            /* written or queued, not yet sent */
  batch *pending;              /* being filled during one read */
  uv_buf_t *pend;              /* answers waiting for flush_dirty */
  size_t npend, cappend;
  int dirty;                   /* on the server's dirty list */
  conn *next_dirty;
  conn *prev, *next;
};

struct server {
  uv_loop_t *loop;
  const config *cfg;
  engine *eng;
  proxy *px;                   /* NULL: every request runs locally */
  uv_tcp_t listener;
  int listening;
  int draining;
  void (*drain_done)(void *);
  void *drain_arg;
  conn *conns;                 /* list of open connections */
  conn *dirty;                 /* connections with answers to flush */
  uv_check_t flusher;
  int flusher_on;
  server_stats stats;
  char readbuf[256 * 1024];    /* one buffer: reads are processed at once */
};

static void conn_maybe_close(conn *c);
static void conn_update_reading(conn *c);

/* ------------------------------------------------------------- writing */

static void write_done(uv_write_t *w, int status) {
  write_req *wr = (write_req *)w;
  conn *c = wr->c;
  for (size_t i = 0; i < wr->nbufs; i++) free(wr->bufs[i].base);
  if (wr->bufs != &wr->one) free(wr->bufs);
  c->out_bytes -= wr->bytes;
  free(wr);
  if (status < 0 && c->state != CONN_CLOSING) {
    log_debug("server: write failed: %s", uv_strerror(status));
    c->state = CONN_CLOSING;
  }
  conn_update_reading(c);
  conn_maybe_close(c);
}

/* Sends bufs (each base malloc'd; ownership passes here). */
static void conn_send(conn *c, uv_buf_t *bufs, size_t nbufs) {
  if (nbufs == 0) return;
  write_req *wr = malloc(sizeof *wr);
  if (wr == NULL) goto fail;
  wr->c = c;
  wr->nbufs = nbufs;
  wr->bytes = 0;
  if (nbufs == 1) {
    wr->one = bufs[0];
    wr->bufs = &wr->one;
  } else {
    wr->bufs = malloc(nbufs * sizeof *bufs);
    if (wr->bufs == NULL) {
      free(wr);
      goto fail;
    }
    memcpy(wr->bufs, bufs, nbufs * sizeof *bufs);
  }
  for (size_t i = 0; i < nbufs; i++) wr->bytes += bufs[i].len;
  if (c->handle_closed ||
      uv_write(&wr->w, (uv_stream_t *)&c->tcp, wr->bufs, (unsigned)nbufs, write_done) != 0) {
    for (size_t i = 0; i < nbufs; i++) free(wr->bufs[i].base);
    if (wr->bufs != &wr->one) free(wr->bufs);
    free(wr);
    c->state = CONN_CLOSING;
    return;
  }
  c->out_bytes += wr->bytes;
  return;
fail:
  for (size_t i = 0; i < nbufs; i++) free(bufs[i].base);
  c->state = CONN_CLOSING;
}

/* Queues one answer (f malloc'd; ownership passes here) for flush_dirty. */
static void conn_queue(conn *c, uint8_t *f, size_t n) {
  if (c->handle_closed) {
    free(f);
    return;
  }
  if (c->npend == c->cappend) {
    size_t cap = c->cappend ? c->cappend * 2 : 16;
    uv_buf_t *p = realloc(c->pend, cap * sizeof *p);
    if (p == NULL) {
      free(f);
      c->state = CONN_CLOSING;
      return;
    }
    c->pend = p;
    c->cappend = cap;
  }
  c->pend[c->npend++] = uv_buf_init((char *)f, (unsigned)n);
  c->out_bytes += n;
  if (!c->dirty) {
    c->dirty = 1;
    c->next_dirty = c->srv->dirty;
    c->srv->dirty = c;
  }
}

/* Check phase: one write per connection for everything queued. */
static void flush_dirty(uv_check_t *h) {
  server *s = h->data;
  conn *c = s->dirty;
  s->dirty = NULL;
  while (c) {
    conn *next = c->next_dirty;
    c->dirty = 0;
    c->next_dirty = NULL;
    size_t n = c->npend, bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += c->pend[i].len;
    c->npend = 0;
    c->out_bytes -= bytes;         /* conn_send counts them again */
    conn_send(c, c->pend, n);
    conn_update_reading(c);
    conn_maybe_close(c);
    c = next;
  }
}

static void conn_send_error(conn *c, unsigned type, uint32_t id, int code,
                            const char *msg) {
  size_t n;
  uint8_t *f = wire_encode_error(type, id, code, msg, &n);
  c->srv->stats.errors++;
  if (f == NULL) {
    c->state = CONN_CLOSING;
    return;
  }
  conn_queue(c, f, n);
}

/* ------------------------------------------------------------- working */

/* Worker thread: run every request of the batch and encode its answer. */
static void work_run(uv_work_t *w) {
  batch *b = w->data;
  engine *e = b->c->srv->eng;
  for (size_t i = 0; i < b->n; i++) {
    job *j = &b->jobs[i];
    request *req = NULL;
    char err[256];
    int rc = wire_decode_request(j->type, j->id, j->payload, j->len, &req, err, sizeof err);
    free(j->payload);
    j->payload = NULL;
    if (rc) {
      j->out = wire_encode_error(j->type, j->id, rc, err, &j->nout);
      continue;
    }
    rc = proxy_admit(b->c->srv->px, req, err, sizeof err);
    if (rc) {                                   /* restarting: ring unknown */
      j->out = wire_encode_error(j->type, j->id, rc, err, &j->nout);
      wire_request_free(req);
      continue;
    }
    if (proxy_needed(b->c->srv->px, req)) {   /* coordinated on the loop */
      j->deferred = req;
      continue;
    }
    result res;
    result_init(&res);
    engine_execute(e, req, &res);
    j->out = wire_encode_response(j->type, j->id, &res, &j->nout);
    if (j->out == NULL)
      j->out = wire_encode_error(j->type, j->id, CELLAR_ENOMEM,
                                 "out of memory encoding the answer", &j->nout);
    result_free(&res);
    wire_request_free(req);
  }
}

/* The proxy's answer to a deferred request (loop thread). */
static void proxy_answered(void *arg, uint8_t *frame, size_t len) {
  conn *c = arg;
  if (frame) conn_queue(c, frame, len);
  c->inflight--;
  conn_update_reading(c);
  conn_maybe_close(c);
}

/* Loop thread: queue the answers, hand deferred requests to the proxy,
** release the batch. */
static void work_done(uv_work_t *w, int status) {
  batch *b = w->data;
  conn *c = b->c;
  size_t deferred = 0;
  for (size_t i = 0; i < b->n; i++) {
    job *j = &b->jobs[i];
    if (j->type != FRAME_PING) c->srv->stats.requests++;
    free(j->payload);
    /* a closing connection still gets the answers of what it sent (a
    ** drain answers every request it read) */
    if (j->out) conn_queue(c, j->out, j->nout);
    if (j->deferred) deferred++;
  }
  c->inflight -= b->n - deferred;   /* deferred ones stay in flight */
  for (size_t i = 0; i < b->n; i++)
    if (b->jobs[i].deferred) proxy_submit(c->srv->px, b->jobs[i].deferred, proxy_answered, c);
  free(b->jobs);
  free(b);
  (void)status;
  conn_update_reading(c);
  conn_maybe_close(c);
}

static int batch_add(conn *c, const frame_header *h, const uint8_t *payload) {
  batch *b = c->pending;
  if (b == NULL) {
    b = calloc(1, sizeof *b);
    if (b == NULL) return CELLAR_ENOMEM;
    b->c = c;
    b->work.data = b;
    c->pending = b;
  }
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;
    job *j = realloc(b->jobs, cap * sizeof *j);
    if (j == NULL) return CELLAR_ENOMEM;
    b->jobs = j;
    b->cap = cap;
  }
  uint8_t *copy = malloc(h->length ? h->length : 1);
  if (copy == NULL) return CELLAR_ENOMEM;
  if (h->length) memcpy(copy, payload, h->length);
  b->jobs[b->n++] = (job){.type = h->type, .id = h->request_id, .payload = copy,
                          .len = h->length};
  c->inflight++;
  return 0;
}

static void batch_submit(conn *c) {
  batch *b = c->pending;
  if (b == NULL) return;
  c->pending = NULL;
  if (uv_queue_work(c->srv->loop, &b->work, work_run, work_done) != 0) {
    /* cannot happen with a valid loop; answer nothing, release */
    for (size_t i = 0; i < b->n; i++) free(b->jobs[i].payload);
    c->inflight -= b->n;
    free(b->jobs);
    free(b);
    c->state = CONN_CLOSING;
  }
}

/* ------------------------------------------------------------- reading */

static int on_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  conn *c = arg;
  if (h->flags & FRAME_FLAG_RESPONSE) {
    conn_send_error(c, h->type, h->request_id, CELLAR_EPROTO,
                    "a client may not send response frames");
    return 0;
  }
  if (batch_add(c, h, payload) != 0)
    conn_send_error(c, h->type, h->request_id, CELLAR_ENOMEM, "out of memory");
  return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->srv->readbuf, sizeof c->srv->readbuf);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn *c = st->data;
  if (nread < 0) {
    if (nread != UV_EOF) log_debug("server: read error: %s", uv_strerror((int)nread));
    c->state = CONN_CLOSING;
    uv_read_stop(st);
    conn_maybe_close(c);
    return;
  }
  if (nread == 0) return;
  int rc = frame_reader_feed(&c->rd, (const uint8_t *)buf->base, (size_t)nread,
                             on_frame, c, NULL);
  batch_submit(c);
  if (rc < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "broken stream: %s (header magic %08x version %u "
             "length %u, limit %u); closing", cellar_strerror(rc), c->rd.cur.magic,
             c->rd.cur.version, c->rd.cur.length, c->rd.max_len);
    log_info("server: %s", msg);
    c->srv->stats.protocol_errors++;
    conn_send_error(c, c->rd.cur.type, c->rd.cur.request_id, rc, msg);
    c->state = CONN_CLOSING;
  }
  conn_update_reading(c);
  conn_maybe_close(c);
}

/* Applies rule 4: pause or resume reading. */
static void conn_update_reading(conn *c) {
  if (c->handle_closed) return;
  if (c->state == CONN_CLOSING) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    return;
  }
  const config *cfg = c->srv->cfg;
  int over = c->inflight >= (size_t)cfg->max_inflight ||
             c->out_bytes >= cfg->max_output_bytes;
  if (c->state == CONN_OPEN && over) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->state = CONN_PAUSED;
  } else if (c->state == CONN_PAUSED && c->inflight < (size_t)cfg->max_inflight / 2 + 1 &&
             c->out_bytes < cfg->max_output_bytes / 2) {
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
      c->state = CONN_OPEN;
  }
}

/* ------------------------------------------------------------ lifecycle */

static void flusher_closed(uv_handle_t *h) {
  server *s = h->data;
  s->flusher_on = 0;
  if (s->draining && s->conns == NULL && !s->listening && s->drain_done) {
    void (*done)(void *) = s->drain_done;
    s->drain_done = NULL;
    done(s->drain_arg);
  }
}

static void maybe_drained(server *s) {
  if (s->draining && s->conns == NULL && !s->listening && s->flusher_on) {
    uv_close((uv_handle_t *)&s->flusher, flusher_closed);
    return;
  }
  if (s->draining && s->conns == NULL && !s->listening && !s->flusher_on && s->drain_done) {
    void (*done)(void *) = s->drain_done;
    s->drain_done = NULL;
    done(s->drain_arg);
  }
}

static void conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  frame_reader_close(&c->rd);
  s->stats.connections_open--;
  free(c->pend);
  free(c);
  maybe_drained(s);
}

static void conn_maybe_close(conn *c) {
  if (c->state != CONN_CLOSING || c->handle_closed) return;
  if (c->inflight > 0 || c->out_bytes > 0 || c->npend > 0 || c->dirty) return;
  c->handle_closed = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_connection(uv_stream_t *l, int status) {
  server *s = l->data;
  if (status < 0) {
    log_warn("server: accept failed: %s", uv_strerror(status));
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  c->srv = s;
  c->tcp.data = c;
  uv_tcp_init(s->loop, &c->tcp);
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  frame_reader_init(&c->rd, s->cfg->max_frame_bytes);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->stats.connections_total++;
  s->stats.connections_open++;
  if (s->stats.connections_open > (uint64_t)s->cfg->max_connections || s->draining) {
    conn_send_error(c, FRAME_PING, 0, s->draining ? CELLAR_ESHUTDOWN : CELLAR_EOVERLOAD,
                    s->draining ? "node is shutting down" : "too many connections");
    c->state = CONN_CLOSING;
    conn_maybe_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = CONN_OPEN;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int server_new(uv_loop_t *loop, const config *cfg, engine *eng, server **out) {
  server *s = calloc(1, sizeof *s);
  if (s == NULL) return CELLAR_ENOMEM;
  s->loop = loop;
  s->cfg = cfg;
  s->eng = eng;
  *out = s;
  return 0;
}

int server_start(server *s) {
  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(s->cfg->listen_host, s->cfg->listen_port, (struct sockaddr_in *)&addr);
  if (rc != 0)
    rc = uv_ip6_addr(s->cfg->listen_host, s->cfg->listen_port, (struct sockaddr_in6 *)&addr);
  if (rc != 0) {
    log_error("server: listen address %s is not an IP address", s->cfg->listen_host);
    return CELLAR_ECONFIG;
  }
  uv_check_init(s->loop, &s->flusher);
  s->flusher.data = s;
  uv_check_start(&s->flusher, flush_dirty);
  s->flusher_on = 1;
  uv_tcp_init(s->loop, &s->listener);
  s->listener.data = s;
  s->listening = 1;
  rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
  if (rc != 0) {
    log_error("server: cannot listen on %s:%d: %s", s->cfg->listen_host,
              s->cfg->listen_port, uv_strerror(rc));
    return CELLAR_EIO;
  }
  log_info("server: listening on %s:%d", s->cfg->listen_host, s->cfg->listen_port);
  return 0;
}

static void listener_closed(uv_handle_t *h) {
  server *s = h->data;
  s->listening = 0;
  maybe_drained(s);
}

void server_drain(server *s, void (*done)(void *arg), void *arg) {
  s->draining = 1;
  s->drain_done = done;
  s->drain_arg = arg;
  if (s->listening) uv_close((uv_handle_t *)&s->listener, listener_closed);
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    c->state = CONN_CLOSING;
    conn_update_reading(c);
    conn_maybe_close(c);
  }
  maybe_drained(s);
}

void server_free(server *s) { free(s); }

void server_set_proxy(server *s, proxy *p) { s->px = p; }

void server_get_stats(server *s, server_stats *out) { *out = s->stats; }
