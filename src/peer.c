/*
** peer: node-to-node frames over TCP. See peer.h.
**
** Outbound connection states (one per address):
**
**     IDLE --peer_send--> CONNECTING --ok--> CONNECTED --error/EOF--> CLOSING
**      ^                      |                                          |
**      |                      +--failure (queue dropped)--> CLOSING -----+
**      +------------------------ close callback ------------------------+
**                               (reconnects at once if frames are queued)
**
** Invariants:
**   1. queued frames are written only in CONNECTED; queue_bytes counts the
**      frames not yet handed to uv_write, inflight_bytes those written and
**      not yet completed. Their sum never exceeds max_queue_bytes.
**   2. a handle's memory is released only in its close callback.
*/
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "log.h"
#include "peer.h"

enum out_state { OUT_IDLE, OUT_CONNECTING, OUT_CONNECTED, OUT_CLOSING };

#define PEER_USER_TIMEOUT_MS 5000u
#define PEER_CONNECT_TIMEOUT_MS 3000u

typedef struct qframe {
  struct qframe *next;
  size_t len;
  uint8_t data[];
} qframe;

typedef struct out_conn {
  struct out_conn *next;
  peer *p;
  char addr[72];
  enum out_state state;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t ctimer;           /* connect timeout */
  int ctimer_init;
  qframe *head, *tail;
  size_t queue_bytes, inflight_bytes;
  uint64_t fail_ns;            /* last failure, 0 after a success */
  int stale_attempt;           /* this connect began before peer_clear_failing */
  char rbuf[256];
} out_conn;

typedef struct in_conn {
  struct in_conn *next, *prev;
  peer *p;
  uv_tcp_t tcp;
  frame_reader rd;
  int closing;
} in_conn;

typedef struct out_write {
  uv_write_t w;
  out_conn *c;
  qframe *f;
} out_write;

struct peer {
  uv_loop_t *loop;
  uint32_t max_frame;
  size_t max_queue;
  peer_handler fn;
  void *arg;
  void (*fail_fn)(void *, const char *);
  void *fail_arg;
  uv_tcp_t listener;
  int listening;
  out_conn *outs;
  in_conn *ins;
  int closing;
  size_t open_handles;
  void (*done)(void *);
  void *done_arg;
  peer_stats stats;
  char readbuf[64 * 1024];
};

static void maybe_done(peer *p) {
  if (p->closing && p->open_handles == 0 && p->done) {
    void (*done)(void *) = p->done;
    p->done = NULL;
    done(p->done_arg);
  }
}

int peer_new(uv_loop_t *loop, uint32_t max_frame, size_t max_queue_bytes,
             peer_handler fn, void *arg, peer **out) {
  peer *p = calloc(1, sizeof *p);
  if (p == NULL) return CELLAR_ENOMEM;
  p->loop = loop;
  p->max_frame = max_frame;
  p->max_queue = max_queue_bytes;
  p->fn = fn;
  p->arg = arg;
  *out = p;
  return 0;
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss) {
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon == addr || colon - addr >= 64) return -1;
  char host[64];
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  int port = atoi(colon + 1);
  if (port <= 0 || port > 65535) return -1;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return -1;
}

/* ------------------------------------------------------------- outbound */

static void out_drop_queue(out_conn *c) {
  for (qframe *f = c->head, *n; f; f = n) {
    n = f->next;
    c->p->stats.frames_dropped++;
    free(f);
  }
  c->head = c->tail = NULL;
  c->queue_bytes = 0;
}

static void out_connect(out_conn *c);

static void out_closed(uv_handle_t *h) {
  out_conn *c = h->data;
  peer *p = c->p;
  p->open_handles--;
  c->state = OUT_IDLE;
  if (p->closing) {
    out_drop_queue(c);
    maybe_done(p);
    return;
  }
  if (c->head) out_connect(c);   /* frames queued while closing */
}

static void out_fail(out_conn *c, const char *why, int status) {
  if (c->state == OUT_CLOSING || c->state == OUT_IDLE) return;
  log_debug("peer: connection to %s: %s: %s", c->addr, why, uv_strerror(status));
  /* A reset we asked for is no news of the peer. Nor is the failure of an
  ** attempt begun before the peer was known to be back (peer_clear_failing:
  ** it may have met the old process): that one keeps its queue, out_closed
  ** tries again at once, and only the fresh attempt's failure counts. */
  int asked = status == UV_ECONNRESET && !strcmp(why, "peer marked down");
  int stale = !asked && c->stale_attempt;
  if (!asked && !stale) {
    c->fail_ns = clock_mono_ns();
    if (c->fail_ns == 0) c->fail_ns = 1;
    if (c->p->fail_fn && !c->p->closing) c->p->fail_fn(c->p->fail_arg, c->addr);
  }
  if (!stale) out_drop_queue(c);
  c->state = OUT_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, out_closed);
}

static void out_write_done(uv_write_t *w, int status) {
  out_write *ow = (out_write *)w;
  out_conn *c = ow->c;
  c->inflight_bytes -= ow->f->len;
  free(ow->f);
  free(ow);
  if (status < 0) out_fail(c, "write failed", status);
}

static void out_flush(out_conn *c) {
  while (c->state == OUT_CONNECTED && c->head) {
    qframe *f = c->head;
    c->head = f->next;
    if (c->head == NULL) c->tail = NULL;
    c->queue_bytes -= f->len;
    out_write *ow = malloc(sizeof *ow);
    if (ow == NULL) {
      free(f);
      c->p->stats.frames_dropped++;
      continue;
    }
    ow->c = c;
    ow->f = f;
    uv_buf_t b = uv_buf_init((char *)f->data, (unsigned)f->len);
    c->inflight_bytes += f->len;
    if (uv_write(&ow->w, (uv_stream_t *)&c->tcp, &b, 1, out_write_done) != 0) {
      c->inflight_bytes -= f->len;
      free(f);
      free(ow);
      out_fail(c, "write refused", UV_EPIPE);
      return;
    }
    c->p->stats.frames_sent++;
  }
}

static void out_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  out_conn *c = h->data;
  (void)s;
  *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

/* Nothing is expected on an outbound connection: reading only detects
** that the other side went away. */
static void out_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  (void)b;
  if (n < 0) out_fail(st->data, "closed by peer", (int)n);
}

static void out_connect_timeout(uv_timer_t *t) {
  out_conn *c = t->data;
  if (c->state == OUT_CONNECTING) {
    c->p->stats.connect_failures++;
    out_fail(c, "connect timed out", UV_ETIMEDOUT);
  }
}

static void out_connected(uv_connect_t *req, int status) {
  out_conn *c = req->data;
  if (c->ctimer_init) uv_timer_stop(&c->ctimer);
  if (c->state != OUT_CONNECTING) return;
  if (status < 0) {
    c->p->stats.connect_failures++;
    out_fail(c, "connect failed", status);
    return;
  }
  c->state = OUT_CONNECTED;
  c->stale_attempt = 0;        /* connected: its failure is news again */
  c->fail_ns = 0;
  c->p->stats.connects++;
  uv_tcp_nodelay(&c->tcp, 1);
  /* a peer that stops acknowledging (cut off, frozen) fails the connection
  ** within seconds instead of TCP's minutes of backoff */
  uv_tcp_keepalive(&c->tcp, 1, 5);
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
    unsigned int ms = PEER_USER_TIMEOUT_MS;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
  }
  uv_read_start((uv_stream_t *)&c->tcp, out_alloc, out_read);
  out_flush(c);
}

static void out_connect(out_conn *c) {
  struct sockaddr_storage ss;
  if (parse_addr(c->addr, &ss) != 0) {
    out_drop_queue(c);
    return;
  }
  uv_tcp_init(c->p->loop, &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  c->p->open_handles++;
  c->state = OUT_CONNECTING;
  c->stale_attempt = 0;
  if (!c->ctimer_init) {
    uv_timer_init(c->p->loop, &c->ctimer);
    c->ctimer.data = c;
    c->ctimer_init = 1;
    c->p->open_handles++;
  }
  uv_timer_start(&c->ctimer, out_connect_timeout, PEER_CONNECT_TIMEOUT_MS, 0);
  int rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, out_connected);
  if (rc != 0) {
    c->p->stats.connect_failures++;
    out_fail(c, "connect refused", rc);
  }
}

int peer_send(peer *p, const char *addr, unsigned type, uint32_t id,
              const uint8_t *payload, size_t len) {
  if (p->closing) return CELLAR_ESHUTDOWN;
  if (len > p->max_frame) return CELLAR_ETOOBIG;
  out_conn *c = p->outs;
  while (c && strcmp(c->addr, addr) != 0) c = c->next;
  if (c == NULL) {
    struct sockaddr_storage ss;
    if (strlen(addr) >= sizeof c->addr || parse_addr(addr, &ss) != 0) return CELLAR_EINVAL;
    c = calloc(1, sizeof *c);
    if (c == NULL) return CELLAR_ENOMEM;
    c->p = p;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    c->next = p->outs;
    p->outs = c;
  }
  size_t flen = FRAME_HEADER_SIZE + len;
  if (c->queue_bytes + c->inflight_bytes + flen > p->max_queue) {
    p->stats.frames_dropped++;
    return CELLAR_EOVERLOAD;
  }
  qframe *f = malloc(sizeof *f + flen);
  if (f == NULL) return CELLAR_ENOMEM;
  f->next = NULL;
  f->len = flen;
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, (uint8_t)type, 0, id, (uint32_t)len};
  frame_header_encode(&h, f->data);
  if (len) memcpy(f->data + FRAME_HEADER_SIZE, payload, len);
  if (c->tail) c->tail->next = f;
  else c->head = f;
  c->tail = f;
  c->queue_bytes += flen;
  if (c->state == OUT_IDLE) out_connect(c);
  else if (c->state == OUT_CONNECTED) out_flush(c);
  return 0;
}

/* -------------------------------------------------------------- inbound */

static void in_closed(uv_handle_t *h) {
  in_conn *c = h->data;
  peer *p = c->p;
  if (c->prev) c->prev->next = c->next;
  else p->ins = c->next;
  if (c->next) c->next->prev = c->prev;
  frame_reader_close(&c->rd);
  free(c);
  p->open_handles--;
  maybe_done(p);
}

static void in_close(in_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, in_closed);
}

static int in_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  in_conn *c = arg;
  c->p->stats.frames_received++;
  c->p->fn(c->p->arg, h, payload);
  return c->closing ? 1 : 0;
}

static void in_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  in_conn *c = h->data;
  (void)s;
  *b = uv_buf_init(c->p->readbuf, sizeof c->p->readbuf);
}

static void in_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  in_conn *c = st->data;
  if (n < 0) {
    in_close(c);
    return;
  }
  int rc = frame_reader_feed(&c->rd, (const uint8_t *)b->base, (size_t)n, in_frame, c, NULL);
  if (rc < 0) {
    log_warn("peer: broken stream from a peer (%s), closing", cellar_strerror(rc));
    in_close(c);
  }
}

static void on_peer_connection(uv_stream_t *l, int status) {
  peer *p = l->data;
  if (status < 0) return;
  in_conn *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  c->p = p;
  uv_tcp_init(p->loop, &c->tcp);
  c->tcp.data = c;
  p->open_handles++;
  c->next = p->ins;
  if (p->ins) p->ins->prev = c;
  p->ins = c;
  frame_reader_init(&c->rd, p->max_frame);
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || p->closing) {
    in_close(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, in_alloc, in_read);
}

int peer_listen(peer *p, const char *host, int port) {
  char addr[96];
  snprintf(addr, sizeof addr, "%s:%d", host, port);
  struct sockaddr_storage ss;
  if (parse_addr(addr, &ss) != 0) {
    log_error("peer: %s is not an IP address and port", addr);
    return CELLAR_ECONFIG;
  }
  uv_tcp_init(p->loop, &p->listener);
  p->listener.data = p;
  p->listening = 1;
  p->open_handles++;
  int rc = uv_tcp_bind(&p->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&p->listener, 128, on_peer_connection);
  if (rc != 0) {
    log_error("peer: cannot listen on %s: %s", addr, uv_strerror(rc));
    return CELLAR_EIO;
  }
  log_info("peer: listening on %s", addr);
  return 0;
}

static void listener_closed(uv_handle_t *h) {
  peer *p = h->data;
  p->open_handles--;
  maybe_done(p);
}

void peer_set_fail_cb(peer *p, void (*fn)(void *arg, const char *addr), void *arg) {
  p->fail_fn = fn;
  p->fail_arg = arg;
}

int peer_failing(const peer *p, const char *addr, uint64_t now_ns) {
  for (const out_conn *c = p->outs; c; c = c->next)
    if (!strcmp(c->addr, addr))
      return c->fail_ns && now_ns - c->fail_ns < PEER_FAILING_NS;
  return 0;
}

void peer_clear_failing(peer *p, const char *addr) {
  for (out_conn *c = p->outs; c; c = c->next)
    if (!strcmp(c->addr, addr)) {
      if (c->fail_ns && c->state == OUT_CONNECTING) c->stale_attempt = 1;
      c->fail_ns = 0;
      return;
    }
}

void peer_reset(peer *p, const char *addr) {
  for (out_conn *c = p->outs; c; c = c->next)
    if (!strcmp(c->addr, addr)) {
      if (c->state == OUT_CONNECTING || c->state == OUT_CONNECTED)
        out_fail(c, "peer marked down", UV_ECONNRESET);
      else
        out_drop_queue(c);
      return;
    }
}

static void ctimer_closed(uv_handle_t *h) {
  out_conn *c = h->data;
  c->p->open_handles--;
  maybe_done(c->p);
}

void peer_close(peer *p, void (*done)(void *), void *arg) {
  p->closing = 1;
  p->done = done;
  p->done_arg = arg;
  if (p->listening) {
    p->listening = 0;
    uv_close((uv_handle_t *)&p->listener, listener_closed);
  }
  for (in_conn *c = p->ins; c; c = c->next) in_close(c);
  for (out_conn *c = p->outs; c; c = c->next) {
    if (c->ctimer_init) {
      c->ctimer_init = 0;
      uv_close((uv_handle_t *)&c->ctimer, ctimer_closed);
    }
    if (c->state == OUT_CONNECTING || c->state == OUT_CONNECTED) {
      out_drop_queue(c);
      c->state = OUT_CLOSING;
      uv_close((uv_handle_t *)&c->tcp, out_closed);
    }
  }
  maybe_done(p);
}

void peer_free(peer *p) {
  if (p == NULL) return;
  for (out_conn *c = p->outs, *n; c; c = n) {
    n = c->next;
    out_drop_queue(c);
    free(c);
  }
  free(p);
}

void peer_get_stats(const peer *p, peer_stats *out) { *out = p->stats; }
