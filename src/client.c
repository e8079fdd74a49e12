/*
** client: libcellar, the client library (include/cellar/cellar.h).
**
** A client owns one I/O thread running its own uv_loop, and `connections`
** TCP connections to one node (the first reachable host of the list;
** token-aware routing comes later). Requests are encoded on the caller's
** thread (protobuf packing and every copy of the caller's memory happen
** there), handed to the I/O thread through a mutex-protected queue and a
** uv_async_t wakeup, spread round-robin over the connections, and matched
** with their answers by request id. Sync calls are async calls plus a
** condition variable.
**
** Design notes:
**
**   1. Every request (creq) is in exactly one place, named by r->where:
**      the submission queue (QUEUED, under c->lock), a connection's waiting
**      list (WAITING: the connection is not up yet), its in-flight table
**      (INFLIGHT: an id was assigned and the frame put into the output
**      buffer), or its doomed list (DOOMED: the connection failed and is
**      closing; the request fails in the close callback). Independently,
**      a request with a deadline is on the client's deadline list from the
**      moment the I/O thread takes it until it completes.
**   2. req_complete() is the only way out: it unlinks the request from
**      everything, runs the callback exactly once, frees the result unless
**      the request is a sync call's (then the waiting thread owns it from
**      the moment the callback signals it: the I/O thread must not touch
**      it after the call, so the choice is made before), and frees the
**      request. Callbacks run only on
**      the I/O thread and never from inside a cellar_*_async() call, even
**      a call made on the I/O thread (a connect that fails at once is
**      reported through the close callback, one loop turn later).
**   3. Timeouts: all requests share one timeout, so the deadline list is
**      in submission order and therefore (nearly) deadline order; one
**      timer sweeps its head every 100 ms (less for short timeouts). No
**      per-request timer. An answer that arrives after its request timed
**      out finds no id in the table and is dropped.
**   4. Output is batched: a request appends its frame to the connection's
**      output buffer and arms a uv_prepare_t; the prepare callback (once
**      per loop turn, before the loop polls) writes each buffer with one
**      uv_try_write, falling back to uv_write for the rest. While a
**      uv_write is in progress new frames gather in the other buffer.
**   5. Input: one 256 KiB read buffer per connection; frame_reader cuts
**      frames, payloads whole in the buffer are unpacked without a copy.
**   6. Connection loss fails that connection's in-flight requests with
**      CELLAR_ECLOSED (CELLAR_EPROTO if the server sent garbage); the
**      connection is reopened lazily, when a request is next routed to
**      it. A failed connect fails the requests waiting for it with
**      CELLAR_ECONNECT.
**   7. cellar_close() sets c->closing under the lock and wakes the loop;
**      from then on submissions return CELLAR_ESHUTDOWN (also those made
**      by callbacks), everything pending fails with CELLAR_ESHUTDOWN, all
**      handles are closed, the loop runs dry, uv_loop_close() must return
**      0 (kept in client_last_loop_close_rc() for the tests) and the thread
**      is joined.
**   8. SIGPIPE is blocked in the I/O thread (a write to a reset socket
**      then fails with EPIPE instead of killing the user's process); the
**      user's own signal dispositions are not touched.
**
** Connection states (conn_connect, on_connect, conn_fail, on_conn_closed):
**
**     DOWN --conn_connect()--> CONNECTING --on_connect(ok)--> UP
**      ^                          |                            |
**      |                 conn_fail(ECONNECT)          conn_fail(ECLOSED)
**      |                          v                            |
**      +--on_conn_closed()---- CLOSING <------------------------+
**           (fails the doomed list, reconnects if requests wait)
*/
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <uv.h>
#include "cellar/cellar.h"
#include "cellar.pb-c.h"
#include "frame.h"

#define CLIENT_DEFAULT_HOSTS "127.0.0.1:7400"
#define CLIENT_DEFAULT_PORT 7400
#define CLIENT_READ_BUF (256u * 1024u)
#define CLIENT_SWEEP_MS 100
#define CLIENT_MAX_CONNECTIONS 1024
#define CLIENT_MAX_DCS 16
/* An answer may be larger than a request (a slice of 1000 big rows); the
** server caps its frames at the same documented limit. */
#define CLIENT_MAX_RESPONSE CELLAR_MAX_FRAME_BYTES

/* ================================================================ types */

typedef struct conn conn;

enum req_where { RQ_NONE = 0, RQ_QUEUED, RQ_WAITING, RQ_INFLIGHT, RQ_DOOMED };

typedef struct creq {
  struct creq *qnext;          /* submission queue */
  struct creq *dprev, *dnext;  /* client's deadline list */
  struct creq *lprev, *lnext;  /* conn's waiting or doomed list */
  struct creq *hnext;          /* conn's in-flight bucket chain */
  conn *k;                     /* WAITING, INFLIGHT, DOOMED */
  int where;                   /* enum req_where */
  int on_dlist;
  int hands_off;               /* sync call: the waiter takes the result */
  uint8_t type;                /* enum frame_type */
  uint32_t id;                 /* request id once INFLIGHT */
  uint64_t deadline;           /* ms on uv_hrtime's clock; 0 = none */
  cellar_callback_t cb;
  void *arg;
  size_t flen;                 /* header + payload */
  uint8_t frame[];
} creq;

typedef struct rlist {
  creq *head, *tail;
} rlist;

/* In-flight table: chained hash on the request id (ids are sequential, so
** id & mask spreads perfectly). */
typedef struct inflight {
  creq **b;
  size_t mask;
  size_t n;
} inflight;

typedef struct obuf {
  uint8_t *p;
  size_t len, cap;
} obuf;

enum conn_state { CONN_DOWN = 0, CONN_CONNECTING, CONN_UP, CONN_CLOSING };

struct conn {
  cellar_client_t *c;
  int index;
  int state;                   /* enum conn_state */
  uv_tcp_t tcp;                /* initialised from CONNECTING to close_cb */
  uv_connect_t creq;
  uv_timer_t ctimer;           /* connect timeout */
  uv_write_t wreq;
  int writing;                 /* wreq in progress on wbuf */
  obuf out;                    /* frames gathering for the next flush */
  obuf wbuf;                   /* frames being written */
  uint8_t *rbuf;               /* CLIENT_READ_BUF bytes */
  frame_reader reader;
  uint32_t next_id;
  inflight infl;
  rlist waiting;               /* routed here before the connection was up */
  rlist doomed;                /* to fail once the handle is closed */
  int fail_code;
  char fail_msg[480];
};

typedef struct host {
  char name[320];              /* "host:port" as given */
  struct sockaddr_storage addr;
  int resolved;
  char resolve_err[120];
} host;

struct cellar_client {
  cellar_options_t opt;        /* hosts pointer cleared: borrowed at connect */
  uv_loop_t loop;
  uv_thread_t thread;
  uv_thread_t io_tid;
  uv_async_t wake;
  uv_prepare_t flush;
  uv_timer_t sweep;
  int sweep_ms;

  uv_mutex_t lock;             /* guards queue, closing, connect result */
  uv_cond_t cond;
  creq *qhead, *qtail;
  atomic_int closing;
  atomic_size_t outstanding;   /* submitted, not yet completed */

  /* connect handshake with cellar_connect() (under lock) */
  int connect_done;
  int connect_rc;

  /* I/O thread only */
  int shutting;
  int probing;
  int cur_host;
  creq *dhead, *dtail;
  conn *conns;
  int nconns;
  unsigned rr;

  host *hosts;
  int nhosts;
  char peer[320];
  int loop_close_rc;
};

struct cellar_result {
  int code;
  int is_static;               /* the out-of-memory result, never freed */
  Cellar__Wire__Response *pb;  /* NULL for results made by the client */
  char **repl;                 /* lazily formatted replication specs */
  char msg[];                  /* message of a client-made result */
};

/* The result handed out when even an error result cannot be allocated
** (its message comes from cellar_result_message, msg[] is empty). */
static cellar_result_t g_nomem = {CELLAR_ENOMEM, 1, NULL, NULL};

static atomic_int g_last_loop_close_rc;

/* For the tests: what uv_loop_close() returned when the last client closed
** (0 = no handle leaked). Not part of the public API. */
int client_last_loop_close_rc(void);
int client_last_loop_close_rc(void) { return atomic_load(&g_last_loop_close_rc); }

/* ============================================================== results */

static cellar_result_t *result_errorv(int code, const char *fmt, va_list ap) {
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  cellar_result_t *r = calloc(1, sizeof *r + n + 1);
  if (r == NULL) return &g_nomem;
  r->code = code;
  memcpy(r->msg, buf, n + 1);
  return r;
}

static cellar_result_t *result_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static cellar_result_t *result_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cellar_result_t *r = result_errorv(code, fmt, ap);
  va_end(ap);
  return r;
}

/* Wraps an unpacked Response (takes ownership of pb). */
static cellar_result_t *result_wrap(Cellar__Wire__Response *pb) {
  cellar_result_t *r = calloc(1, sizeof *r + 1);
  if (r == NULL) {
    cellar__wire__response__free_unpacked(pb, NULL);
    return &g_nomem;
  }
  r->pb = pb;
  r->code = pb->code;
  /* A positive code is not a cellar code: the server is broken. */
  if (r->code > 0) r->code = CELLAR_EPROTO;
  return r;
}

void cellar_result_free(cellar_result_t *r) {
  if (r == NULL || r->is_static) return;
  if (r->repl) {
    for (size_t i = 0; i < r->pb->n_keyspaces; i++) free(r->repl[i]);
    free(r->repl);
  }
  if (r->pb) cellar__wire__response__free_unpacked(r->pb, NULL);
  free(r);
}

int cellar_result_code(const cellar_result_t *r) {
  return r ? r->code : CELLAR_EINVAL;
}

const char *cellar_result_message(const cellar_result_t *r) {
  if (r == NULL) return "";
  if (r->is_static) return "out of memory";
  if (r->pb) return r->pb->message ? r->pb->message : "";
  return r->msg;
}

/* A non-NULL pointer for an empty byte string that exists, so that NULL
** always means "no such index". */
static const uint8_t empty_bytes[1];

static const void *bytes_out(const ProtobufCBinaryData *b, size_t *len) {
  if (len) *len = b->len;
  return b->len ? (const void *)b->data : (const void *)empty_bytes;
}

static const Cellar__Wire__Row *row_at(const cellar_result_t *r, size_t row) {
  if (r == NULL || r->pb == NULL || row >= r->pb->n_rows) return NULL;
  return r->pb->rows[row];
}

static const Cellar__Wire__Cell *cell_at(const cellar_result_t *r, size_t row,
                                         size_t cell) {
  const Cellar__Wire__Row *w = row_at(r, row);
  if (w == NULL || cell >= w->n_cells) return NULL;
  return w->cells[cell];
}

size_t cellar_result_row_count(const cellar_result_t *r) {
  return (r && r->pb) ? r->pb->n_rows : 0;
}

const void *cellar_result_clustering(const cellar_result_t *r, size_t row,
                                     size_t *len) {
  const Cellar__Wire__Row *w = row_at(r, row);
  if (w == NULL) {
    if (len) *len = 0;
    return NULL;
  }
  return bytes_out(&w->clustering, len);
}

size_t cellar_result_cell_count(const cellar_result_t *r, size_t row) {
  const Cellar__Wire__Row *w = row_at(r, row);
  return w ? w->n_cells : 0;
}

const void *cellar_result_cell_name(const cellar_result_t *r, size_t row,
                                    size_t cell, size_t *len) {
  const Cellar__Wire__Cell *x = cell_at(r, row, cell);
  if (x == NULL) {
    if (len) *len = 0;
    return NULL;
  }
  return bytes_out(&x->name, len);
}

const void *cellar_result_cell_value(const cellar_result_t *r, size_t row,
                                     size_t cell, size_t *len) {
  const Cellar__Wire__Cell *x = cell_at(r, row, cell);
  if (x == NULL) {
    if (len) *len = 0;
    return NULL;
  }
  return bytes_out(&x->value, len);
}

int64_t cellar_result_cell_timestamp(const cellar_result_t *r, size_t row,
                                     size_t cell) {
  const Cellar__Wire__Cell *x = cell_at(r, row, cell);
  return x ? x->timestamp : 0;
}

uint32_t cellar_result_cell_expires(const cellar_result_t *r, size_t row,
                                    size_t cell) {
  const Cellar__Wire__Cell *x = cell_at(r, row, cell);
  return x ? x->expires_at : 0;
}

const void *cellar_result_cursor(const cellar_result_t *r, size_t *len) {
  if (r == NULL || r->pb == NULL || r->pb->cursor.len == 0) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = r->pb->cursor.len;
  return r->pb->cursor.data;
}

size_t cellar_result_keyspace_count(const cellar_result_t *r) {
  return (r && r->pb) ? r->pb->n_keyspaces : 0;
}

const char *cellar_result_keyspace_name(const cellar_result_t *r, size_t i) {
  if (i >= cellar_result_keyspace_count(r)) return NULL;
  return r->pb->keyspaces[i]->name;
}

static int cmp_dc(const void *a, const void *b) {
  const Cellar__Wire__Replication__DatacentersEntry *const *x = a, *const *y = b;
  return strcmp((*x)->key, (*y)->key);
}

/* "SimpleStrategy:3" / "NetworkTopologyStrategy:dc1=3,dc2=2" (datacenters
** sorted by name, so the text is stable whatever order the map came in). */
static char *format_replication(const Cellar__Wire__Replication *rp) {
  if (rp == NULL) return strdup("");
  const char *strategy = rp->strategy ? rp->strategy : "";
  if (strcmp(strategy, "NetworkTopologyStrategy") != 0 || rp->n_datacenters == 0) {
    if (strcmp(strategy, "NetworkTopologyStrategy") == 0) return strdup(strategy);
    char *s = NULL;
    if (asprintf(&s, "%s:%u", strategy, (unsigned)rp->replication_factor) < 0) return NULL;
    return s;
  }
  size_t n = rp->n_datacenters;
  const Cellar__Wire__Replication__DatacentersEntry **dcs = malloc(n * sizeof *dcs);
  if (dcs == NULL) return NULL;
  size_t need = strlen(strategy) + 2;
  for (size_t i = 0; i < n; i++) {
    dcs[i] = rp->datacenters[i];
    need += strlen(dcs[i]->key ? dcs[i]->key : "") + 13;
  }
  qsort(dcs, n, sizeof *dcs, cmp_dc);
  char *s = malloc(need);
  if (s == NULL) {
    free(dcs);
    return NULL;
  }
  size_t off = (size_t)snprintf(s, need, "%s:", strategy);
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(s + off, need - off, "%s%s=%u", i ? "," : "",
                            dcs[i]->key ? dcs[i]->key : "", (unsigned)dcs[i]->value);
  free(dcs);
  return s;
}

const char *cellar_result_keyspace_replication(const cellar_result_t *r,
                                               size_t i) {
  if (i >= cellar_result_keyspace_count(r)) return NULL;
  /* Formatted on first use and cached in the result (accessors take a
  ** const result: the cache is not part of its observable state). */
  cellar_result_t *w = (cellar_result_t *)r;
  if (w->repl == NULL) {
    w->repl = calloc(r->pb->n_keyspaces, sizeof *w->repl);
    if (w->repl == NULL) return NULL;
  }
  if (w->repl[i] == NULL) w->repl[i] = format_replication(r->pb->keyspaces[i]->replication);
  return w->repl[i];
}

static const Cellar__Wire__TableDef *table_at(const cellar_result_t *r, size_t i) {
  if (r == NULL || r->pb == NULL || i >= r->pb->n_tables) return NULL;
  return r->pb->tables[i];
}

size_t cellar_result_table_count(const cellar_result_t *r) {
  return (r && r->pb) ? r->pb->n_tables : 0;
}

const char *cellar_result_table_keyspace(const cellar_result_t *r, size_t i) {
  const Cellar__Wire__TableDef *t = table_at(r, i);
  return t ? t->keyspace : NULL;
}

const char *cellar_result_table_name(const cellar_result_t *r, size_t i) {
  const Cellar__Wire__TableDef *t = table_at(r, i);
  return t ? t->name : NULL;
}

const char *cellar_result_table_policy(const cellar_result_t *r, size_t i) {
  const Cellar__Wire__TableDef *t = table_at(r, i);
  if (t == NULL) return NULL;
  return (t->conflict_policy && t->conflict_policy[0]) ? t->conflict_policy : "siblings";
}

uint32_t cellar_result_table_gc_grace(const cellar_result_t *r, size_t i) {
  const Cellar__Wire__TableDef *t = table_at(r, i);
  return t ? t->gc_grace_seconds : 0;
}

uint32_t cellar_result_table_default_ttl(const cellar_result_t *r, size_t i) {
  const Cellar__Wire__TableDef *t = table_at(r, i);
  return t ? t->default_ttl : 0;
}

size_t cellar_result_info_count(const cellar_result_t *r) {
  return (r && r->pb) ? r->pb->n_info : 0;
}

const char *cellar_result_info_key(const cellar_result_t *r, size_t i) {
  if (i >= cellar_result_info_count(r)) return NULL;
  return r->pb->info[i]->key;
}

const char *cellar_result_info_value(const cellar_result_t *r, size_t i) {
  if (i >= cellar_result_info_count(r)) return NULL;
  return r->pb->info[i]->value;
}

size_t cellar_result_member_count(const cellar_result_t *r) {
  return (r && r->pb) ? r->pb->n_members : 0;
}

int cellar_result_member(const cellar_result_t *r, size_t i, cellar_member_t *out) {
  if (out == NULL || i >= cellar_result_member_count(r)) return CELLAR_EINVAL;
  const Cellar__Wire__Member *m = r->pb->members[i];
  *out = (cellar_member_t){
    .host_id = m->host_id, .address = m->address, .peer_address = m->peer_address,
    .datacenter = m->datacenter, .rack = m->rack, .status = m->status, .up = m->up,
    .load = m->load, .tokens = m->tokens, .owns = m->owns,
    .generation = m->generation, .phi = m->phi, .schema = m->schema};
  return 0;
}

/* ========================================================= small helpers */

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static int on_io_thread(const cellar_client_t *c) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &c->io_tid);
}

static void rlist_append(rlist *l, creq *r) {
  r->lnext = NULL;
  r->lprev = l->tail;
  if (l->tail) l->tail->lnext = r;
  else l->head = r;
  l->tail = r;
}

static void rlist_remove(rlist *l, creq *r) {
  if (r->lprev) r->lprev->lnext = r->lnext;
  else l->head = r->lnext;
  if (r->lnext) r->lnext->lprev = r->lprev;
  else l->tail = r->lprev;
  r->lprev = r->lnext = NULL;
}

static int infl_init(inflight *t) {
  t->b = calloc(64, sizeof *t->b);
  if (t->b == NULL) return CELLAR_ENOMEM;
  t->mask = 63;
  t->n = 0;
  return 0;
}

static void infl_grow(inflight *t) {
  size_t nsize = (t->mask + 1) * 2;
  creq **nb = calloc(nsize, sizeof *nb);
  if (nb == NULL) return;      /* longer chains, still correct */
  for (size_t i = 0; i <= t->mask; i++) {
    creq *r = t->b[i];
    while (r) {
      creq *next = r->hnext;
      size_t j = r->id & (nsize - 1);
      r->hnext = nb[j];
      nb[j] = r;
      r = next;
    }
  }
  free(t->b);
  t->b = nb;
  t->mask = nsize - 1;
}

static creq *infl_find(const inflight *t, uint32_t id) {
  for (creq *r = t->b[id & t->mask]; r; r = r->hnext)
    if (r->id == id) return r;
  return NULL;
}

static void infl_insert(inflight *t, creq *r) {
  if (t->n > t->mask) infl_grow(t);
  creq **slot = &t->b[r->id & t->mask];
  r->hnext = *slot;
  *slot = r;
  t->n++;
}

static void infl_remove(inflight *t, creq *r) {
  for (creq **pp = &t->b[r->id & t->mask]; *pp; pp = &(*pp)->hnext) {
    if (*pp == r) {
      *pp = r->hnext;
      r->hnext = NULL;
      t->n--;
      return;
    }
  }
}

/* Moves every in-flight request to l, in no particular order. */
static void infl_drain(inflight *t, rlist *l) {
  for (size_t i = 0; i <= t->mask; i++) {
    creq *r = t->b[i];
    t->b[i] = NULL;
    while (r) {
      creq *next = r->hnext;
      r->hnext = NULL;
      r->where = RQ_DOOMED;
      rlist_append(l, r);
      r = next;
    }
  }
  t->n = 0;
}

static int obuf_append(obuf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t ncap = b->cap ? b->cap : 64 * 1024;
    while (ncap < b->len + n) ncap *= 2;
    uint8_t *np = realloc(b->p, ncap);
    if (np == NULL) return CELLAR_ENOMEM;
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

/* ====================================================== request life */

static void dl_remove(cellar_client_t *c, creq *r) {
  if (!r->on_dlist) return;
  if (r->dprev) r->dprev->dnext = r->dnext;
  else c->dhead = r->dnext;
  if (r->dnext) r->dnext->dprev = r->dprev;
  else c->dtail = r->dprev;
  r->dprev = r->dnext = NULL;
  r->on_dlist = 0;
}

static void req_unlink(cellar_client_t *c, creq *r) {
  dl_remove(c, r);
  switch (r->where) {
  case RQ_WAITING: rlist_remove(&r->k->waiting, r); break;
  case RQ_DOOMED: rlist_remove(&r->k->doomed, r); break;
  case RQ_INFLIGHT: infl_remove(&r->k->infl, r); break;
  default: break;
  }
  r->where = RQ_NONE;
}

/* Design note 2: the one way a request ends. */
static void req_complete(cellar_client_t *c, creq *r, cellar_result_t *res) {
  req_unlink(c, r);
  atomic_fetch_sub(&c->outstanding, 1);
  int hands_off = r->hands_off;
  r->cb(res->code, res, r->arg);
  if (!hands_off) cellar_result_free(res);
  free(r);
}

static void req_fail(cellar_client_t *c, creq *r, int code, const char *msg) {
  req_complete(c, r, result_error(code, "%s", msg));
}

static void rlist_fail(cellar_client_t *c, rlist *l, int code, const char *msg) {
  while (l->head) req_fail(c, l->head, code, msg);
}

/* ========================================================= connections */

static void conn_connect(conn *k);
static void on_conn_closed(uv_handle_t *h);
static void probe_done(cellar_client_t *c, int rc);

static void conn_fail(conn *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts closing a connection (CONNECTING or UP). Its requests fail in
** on_conn_closed(), never here: conn_fail may run inside a request
** function (design note 2). */
static void conn_fail(conn *k, int code, const char *fmt, ...) {
  if (k->state != CONN_CONNECTING && k->state != CONN_UP) return;
  k->state = CONN_CLOSING;
  k->fail_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->fail_msg, sizeof k->fail_msg, fmt, ap);
  va_end(ap);
  uv_timer_stop(&k->ctimer);
  infl_drain(&k->infl, &k->doomed);
  while (k->waiting.head) {
    creq *r = k->waiting.head;
    rlist_remove(&k->waiting, r);
    r->where = RQ_DOOMED;
    rlist_append(&k->doomed, r);
  }
  k->out.len = 0;
  uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

static void on_conn_closed(uv_handle_t *h) {
  conn *k = h->data;
  cellar_client_t *c = k->c;
  k->state = CONN_DOWN;
  k->writing = 0;
  k->wbuf.len = 0;
  frame_reader_close(&k->reader);
  frame_reader_init(&k->reader, CLIENT_MAX_RESPONSE);
  if (c->shutting) {
    rlist_fail(c, &k->doomed, CELLAR_ESHUTDOWN, "client closed");
    rlist_fail(c, &k->waiting, CELLAR_ESHUTDOWN, "client closed");
    return;
  }
  rlist_fail(c, &k->doomed, k->fail_code, k->fail_msg);
  if (c->probing && k->index == 0) {
    c->cur_host++;
    if (c->cur_host < c->nhosts) {
      conn_connect(k);
    } else {
      probe_done(c, CELLAR_ECONNECT);
    }
    return;
  }
  /* Requests routed here while it was closing: reopen lazily for them. */
  if (k->state == CONN_DOWN && k->waiting.head) conn_connect(k);
}

/* Writes the output buffer (design note 4). */
static void on_write(uv_write_t *w, int status);

static void conn_flush(conn *k) {
  if (k->state != CONN_UP || k->writing || k->out.len == 0) return;
  uv_buf_t b = uv_buf_init((char *)k->out.p, (unsigned)k->out.len);
  int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
  if (n == (int)k->out.len) {
    k->out.len = 0;
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    conn_fail(k, CELLAR_ECLOSED, "connection to %s lost: %s", k->c->peer, uv_strerror(n));
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  obuf t = k->wbuf;
  k->wbuf = k->out;
  k->out = t;
  k->out.len = 0;
  b = uv_buf_init((char *)k->wbuf.p + done, (unsigned)(k->wbuf.len - done));
  int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_write);
  if (rc != 0) {
    k->wbuf.len = 0;
    conn_fail(k, CELLAR_ECLOSED, "connection to %s lost: %s", k->c->peer, uv_strerror(rc));
    return;
  }
  k->writing = 1;
}

static void on_write(uv_write_t *w, int status) {
  conn *k = w->data;
  k->writing = 0;
  k->wbuf.len = 0;
  if (k->wbuf.cap > 4u * CLIENT_READ_BUF) {   /* after a huge request */
    free(k->wbuf.p);
    k->wbuf.p = NULL;
    k->wbuf.cap = 0;
  }
  if (status < 0) {
    if (status != UV_ECANCELED)
      conn_fail(k, CELLAR_ECLOSED, "connection to %s lost: %s", k->c->peer,
                uv_strerror(status));
    return;
  }
  conn_flush(k);
}

static void on_flush(uv_prepare_t *p) {
  cellar_client_t *c = p->data;
  for (int i = 0; i < c->nconns; i++) conn_flush(&c->conns[i]);
  uv_prepare_stop(p);
}

/* Assigns an id and queues the frame for the next flush. */
static void conn_send(conn *k, creq *r) {
  uint32_t id;
  do {
    id = k->next_id++;
  } while (id == 0 || infl_find(&k->infl, id) != NULL);
  r->id = id;
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, r->type, 0, id,
                    (uint32_t)(r->flen - FRAME_HEADER_SIZE)};
  frame_header_encode(&h, r->frame);
  r->where = RQ_INFLIGHT;
  infl_insert(&k->infl, r);
  if (obuf_append(&k->out, r->frame, r->flen) != 0) {
    /* No memory for the output buffer: give up the connection; this
    ** request and the others in flight on it fail in on_conn_closed. */
    conn_fail(k, CELLAR_ENOMEM, "out of memory queueing a request to %s", k->c->peer);
    return;
  }
  uv_prepare_start(&k->c->flush, on_flush);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn *k = h->data;
  *buf = uv_buf_init((char *)k->rbuf, CLIENT_READ_BUF);
}

static int on_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  conn *k = arg;
  cellar_client_t *c = k->c;
  if (k->state != CONN_UP) return 1;
  if (!(h->flags & FRAME_FLAG_RESPONSE)) return 0;   /* not for us */
  creq *r = infl_find(&k->infl, h->request_id);
  if (r == NULL) return 0;                           /* timed out already */
  cellar_result_t *res;
  if (h->type != r->type) {
    res = result_error(CELLAR_EPROTO, "server answered a %s request with a %s frame",
                       frame_type_name(r->type), frame_type_name(h->type));
  } else {
    Cellar__Wire__Response *pb = cellar__wire__response__unpack(NULL, h->length, payload);
    if (pb == NULL)
      res = result_error(CELLAR_EPROTO, "malformed %s response from %s",
                         frame_type_name(r->type), c->peer);
    else
      res = result_wrap(pb);
  }
  req_complete(c, r, res);
  return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *k = s->data;
  if (n > 0) {
    int rc = frame_reader_feed(&k->reader, (const uint8_t *)buf->base, (size_t)n,
                               on_frame, k, NULL);
    if (rc < 0)
      conn_fail(k, CELLAR_EPROTO, "bad frame from %s: %s", k->c->peer,
                cellar_strerror(rc));
  } else if (n < 0) {
    conn_fail(k, CELLAR_ECLOSED, "connection to %s closed: %s", k->c->peer,
              n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
  }
}

static void on_connect(uv_connect_t *req, int status) {
  conn *k = req->data;
  cellar_client_t *c = k->c;
  if (k->state != CONN_CONNECTING) return;    /* cancelled by conn_fail */
  const char *addr = c->hosts[c->cur_host].name;
  if (status < 0) {
    conn_fail(k, CELLAR_ECONNECT, "cannot connect to %s: %s", addr, uv_strerror(status));
    return;
  }
  uv_timer_stop(&k->ctimer);
  int rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
  if (rc != 0) {
    conn_fail(k, CELLAR_ECONNECT, "cannot read from %s: %s", addr, uv_strerror(rc));
    return;
  }
  k->state = CONN_UP;
  while (k->waiting.head) {
    creq *r = k->waiting.head;
    rlist_remove(&k->waiting, r);
    conn_send(k, r);
  }
  if (c->probing && k->index == 0) probe_done(c, 0);
}

static void on_connect_timeout(uv_timer_t *t) {
  conn *k = t->data;
  cellar_client_t *c = k->c;
  conn_fail(k, CELLAR_ECONNECT, "cannot connect to %s: timed out after %d ms",
            c->hosts[c->cur_host].name, c->opt.connect_timeout_ms);
}

/* DOWN -> CONNECTING. Never fails synchronously: an error goes through
** conn_fail and the close callback. */
static void conn_connect(conn *k) {
  cellar_client_t *c = k->c;
  const host *hp = &c->hosts[c->cur_host];
  /* With AF_UNSPEC uv_tcp_init creates no socket and cannot fail. */
  uv_tcp_init(&c->loop, &k->tcp);
  k->tcp.data = k;
  k->state = CONN_CONNECTING;
  k->creq.data = k;
  uv_tcp_nodelay(&k->tcp, 1);
  if (!hp->resolved) {
    conn_fail(k, CELLAR_ECONNECT, "cannot resolve %s: %s", hp->name, hp->resolve_err);
    return;
  }
  int rc = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&hp->addr, on_connect);
  if (rc != 0) {
    conn_fail(k, CELLAR_ECONNECT, "cannot connect to %s: %s", hp->name, uv_strerror(rc));
    return;
  }
  uv_timer_start(&k->ctimer, on_connect_timeout, (uint64_t)c->opt.connect_timeout_ms, 0);
}

/* Routes a request to a connection (round-robin). */
static void conn_submit(conn *k, creq *r) {
  r->k = k;
  if (k->state == CONN_UP) {
    conn_send(k, r);
    return;
  }
  r->where = RQ_WAITING;
  rlist_append(&k->waiting, r);
  if (k->state == CONN_DOWN) conn_connect(k);
}

/* ================================================ the I/O thread's side */

static void on_sweep(uv_timer_t *t);

/* Takes a request on the I/O thread. */
static void dispatch(cellar_client_t *c, creq *r) {
  r->where = RQ_NONE;
  if (r->deadline) {
    r->dnext = NULL;
    r->dprev = c->dtail;
    if (c->dtail) c->dtail->dnext = r;
    else c->dhead = r;
    c->dtail = r;
    r->on_dlist = 1;
    if (!uv_is_active((uv_handle_t *)&c->sweep))
      uv_timer_start(&c->sweep, on_sweep, (uint64_t)c->sweep_ms, (uint64_t)c->sweep_ms);
  }
  conn *k = &c->conns[c->rr++ % (unsigned)c->nconns];
  conn_submit(k, r);
}

static void on_sweep(uv_timer_t *t) {
  cellar_client_t *c = t->data;
  uint64_t now = now_ms();
  char msg[400];
  snprintf(msg, sizeof msg, "no answer from %s within %d ms", c->peer,
           c->opt.request_timeout_ms);
  while (c->dhead && c->dhead->deadline <= now) req_fail(c, c->dhead, CELLAR_ETIMEDOUT, msg);
  if (c->dhead == NULL) uv_timer_stop(t);
}

static void begin_shutdown(cellar_client_t *c) {
  if (c->shutting) return;
  c->shutting = 1;
  for (int i = 0; i < c->nconns; i++) {
    conn *k = &c->conns[i];
    if (k->state == CONN_CONNECTING || k->state == CONN_UP) {
      conn_fail(k, CELLAR_ESHUTDOWN, "client closed");
    }
  }
  for (int i = 0; i < c->nconns; i++) {
    conn *k = &c->conns[i];
    rlist_fail(c, &k->doomed, CELLAR_ESHUTDOWN, "client closed");
    rlist_fail(c, &k->waiting, CELLAR_ESHUTDOWN, "client closed");
    /* A callback may have routed nothing new: submissions now fail. */
    uv_close((uv_handle_t *)&k->ctimer, NULL);
  }
  /* Whatever still has a deadline is somewhere above; all failed. */
  uv_close((uv_handle_t *)&c->wake, NULL);
  uv_close((uv_handle_t *)&c->flush, NULL);
  uv_close((uv_handle_t *)&c->sweep, NULL);
}

static void on_wake(uv_async_t *a) {
  cellar_client_t *c = a->data;
  uv_mutex_lock(&c->lock);
  creq *list = c->qhead;
  c->qhead = c->qtail = NULL;
  int closing = atomic_load(&c->closing);
  uv_mutex_unlock(&c->lock);
  while (list) {
    creq *r = list;
    list = r->qnext;
    r->qnext = NULL;
    r->where = RQ_NONE;
    if (closing || c->shutting) req_fail(c, r, CELLAR_ESHUTDOWN, "client closed");
    else dispatch(c, r);
  }
  if (closing) begin_shutdown(c);
}

static void probe_done(cellar_client_t *c, int rc) {
  c->probing = 0;
  if (rc == 0) {
    snprintf(c->peer, sizeof c->peer, "%s", c->hosts[c->cur_host].name);
    /* The other connections open now, in the background. */
    for (int i = 1; i < c->nconns; i++)
      if (c->conns[i].state == CONN_DOWN) conn_connect(&c->conns[i]);
  }
  uv_mutex_lock(&c->lock);
  c->connect_rc = rc;       /* the API carries only the code, not fail_msg */
  c->connect_done = 1;
  uv_cond_broadcast(&c->cond);
  uv_mutex_unlock(&c->lock);
}

static void io_main(void *arg) {
  cellar_client_t *c = arg;
  c->io_tid = uv_thread_self();
  c->probing = 1;
  c->cur_host = 0;
  conn_connect(&c->conns[0]);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  c->loop_close_rc = uv_loop_close(&c->loop);
  atomic_store(&g_last_loop_close_rc, c->loop_close_rc);
}

/* ================================================ connect and close */

void cellar_options_init(cellar_options_t *o) {
  memset(o, 0, sizeof *o);
  o->hosts = CLIENT_DEFAULT_HOSTS;
  o->connect_timeout_ms = 2000;
  o->request_timeout_ms = 10000;
  o->connections = 1;
  o->consistency = CELLAR_CL_ONE;
  o->max_in_flight = 0;
}

void cellar_table_options_init(cellar_table_options_t *t) {
  t->conflict_policy = NULL;
  t->gc_grace_seconds = -1;
  t->default_ttl = 0;
}

/* Splits "host:port[,host:port...]" and resolves every entry (blocking,
** on the caller's thread). An entry that does not resolve stays in the
** list: trying it reports why. */
static int parse_hosts(const char *spec, host **out, int *nout) {
  int cap = 1;
  for (const char *p = spec; *p; p++)
    if (*p == ',') cap++;
  host *hs = calloc((size_t)cap, sizeof *hs);
  if (hs == NULL) return CELLAR_ENOMEM;
  int n = 0;
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ',');
    if (end == NULL) end = p + strlen(p);
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    const char *e = end;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t len = (size_t)(e - p);
    if (len > 0) {
      char buf[300];
      if (len >= sizeof buf) {
        free(hs);
        return CELLAR_EINVAL;
      }
      memcpy(buf, p, len);
      buf[len] = '\0';
      char *hostpart = buf, *portpart = NULL;
      if (buf[0] == '[') {                       /* [v6]:port */
        char *rb = strchr(buf, ']');
        if (rb == NULL) {
          free(hs);
          return CELLAR_EINVAL;
        }
        *rb = '\0';
        hostpart = buf + 1;
        if (rb[1] == ':') portpart = rb + 2;
        else if (rb[1] != '\0') {
          free(hs);
          return CELLAR_EINVAL;
        }
      } else {
        char *colon = strrchr(buf, ':');
        if (colon && strchr(buf, ':') == colon) {
          *colon = '\0';
          portpart = colon + 1;
        }
      }
      long port = CLIENT_DEFAULT_PORT;
      if (portpart) {
        char *endp;
        errno = 0;
        port = strtol(portpart, &endp, 10);
        if (*portpart == '\0' || *endp != '\0' || port <= 0 || port > 65535 || errno) {
          free(hs);
          return CELLAR_EINVAL;
        }
      }
      if (*hostpart == '\0') {
        free(hs);
        return CELLAR_EINVAL;
      }
      host *h = &hs[n++];
      if (strchr(hostpart, ':'))
        snprintf(h->name, sizeof h->name, "[%s]:%ld", hostpart, port);
      else
        snprintf(h->name, sizeof h->name, "%s:%ld", hostpart, port);
      struct addrinfo hints, *ai = NULL;
      memset(&hints, 0, sizeof hints);
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      char portstr[8];
      snprintf(portstr, sizeof portstr, "%ld", port);
      int g = getaddrinfo(hostpart, portstr, &hints, &ai);
      if (g != 0 || ai == NULL) {
        snprintf(h->resolve_err, sizeof h->resolve_err, "%s", gai_strerror(g));
      } else {
        memcpy(&h->addr, ai->ai_addr, ai->ai_addrlen);
        h->resolved = 1;
      }
      if (ai) freeaddrinfo(ai);
    }
    p = *end ? end + 1 : end;
  }
  if (n == 0) {
    free(hs);
    return CELLAR_EINVAL;
  }
  *out = hs;
  *nout = n;
  return 0;
}

static void client_free(cellar_client_t *c) {
  for (int i = 0; i < c->nconns; i++) {
    conn *k = &c->conns[i];
    free(k->rbuf);
    free(k->out.p);
    free(k->wbuf.p);
    free(k->infl.b);
    frame_reader_close(&k->reader);
  }
  free(c->conns);
  free(c->hosts);
  uv_cond_destroy(&c->cond);
  uv_mutex_destroy(&c->lock);
  free(c);
}

static void close_cb_noop(uv_handle_t *h) {}

static void close_all_cb(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, close_cb_noop);
}

/* Tells the I/O thread to shut down and joins it. */
static void client_stop(cellar_client_t *c) {
  uv_mutex_lock(&c->lock);
  atomic_store(&c->closing, 1);
  uv_async_send(&c->wake);
  uv_mutex_unlock(&c->lock);
  uv_thread_join(&c->thread);
}

int cellar_connect(const cellar_options_t *o, cellar_client_t **out) {
  if (out == NULL) return CELLAR_EINVAL;
  *out = NULL;
  cellar_options_t opt;
  cellar_options_init(&opt);
  if (o) {
    if (o->hosts && *o->hosts) opt.hosts = o->hosts;
    if (o->connect_timeout_ms > 0) opt.connect_timeout_ms = o->connect_timeout_ms;
    if (o->request_timeout_ms < 0) return CELLAR_EINVAL;
    opt.request_timeout_ms = o->request_timeout_ms;
    if (o->connections < 0 || o->connections > CLIENT_MAX_CONNECTIONS) return CELLAR_EINVAL;
    if (o->connections > 0) opt.connections = o->connections;
    if ((int)o->consistency < 0 || (int)o->consistency > CELLAR_CL_ANY) return CELLAR_EBADCL;
    if (o->consistency != CELLAR_CL_DEFAULT) opt.consistency = o->consistency;
    opt.max_in_flight = o->max_in_flight;
  }

  cellar_client_t *c = calloc(1, sizeof *c);
  if (c == NULL) return CELLAR_ENOMEM;
  c->opt = opt;
  c->opt.hosts = NULL;          /* borrowed only during this call */
  int rc = parse_hosts(opt.hosts, &c->hosts, &c->nhosts);
  if (rc != 0) {
    free(c);
    return rc;
  }
  c->nconns = opt.connections;
  c->conns = calloc((size_t)c->nconns, sizeof *c->conns);
  if (c->conns == NULL) {
    free(c->hosts);
    free(c);
    return CELLAR_ENOMEM;
  }
  if (uv_mutex_init(&c->lock) != 0) {
    free(c->conns);
    free(c->hosts);
    free(c);
    return CELLAR_ENOMEM;
  }
  if (uv_cond_init(&c->cond) != 0) {
    uv_mutex_destroy(&c->lock);
    free(c->conns);
    free(c->hosts);
    free(c);
    return CELLAR_ENOMEM;
  }
  for (int i = 0; i < c->nconns; i++) {
    conn *k = &c->conns[i];
    k->c = c;
    k->index = i;
    k->next_id = 1;
    k->wreq.data = k;
    frame_reader_init(&k->reader, CLIENT_MAX_RESPONSE);
    k->rbuf = malloc(CLIENT_READ_BUF);
    if (k->rbuf == NULL || infl_init(&k->infl) != 0) {
      client_free(c);
      return CELLAR_ENOMEM;
    }
  }
  if (opt.request_timeout_ms > 0) {
    c->sweep_ms = CLIENT_SWEEP_MS;
    if (opt.request_timeout_ms < 4 * CLIENT_SWEEP_MS)
      c->sweep_ms = opt.request_timeout_ms / 4 > 5 ? opt.request_timeout_ms / 4 : 5;
  }

  rc = uv_loop_init(&c->loop);
  if (rc != 0) {
    client_free(c);
    return CELLAR_ENOMEM;
  }
  uv_async_init(&c->loop, &c->wake, on_wake);
  c->wake.data = c;
  uv_prepare_init(&c->loop, &c->flush);
  c->flush.data = c;
  uv_timer_init(&c->loop, &c->sweep);
  c->sweep.data = c;
  for (int i = 0; i < c->nconns; i++) {
    uv_timer_init(&c->loop, &c->conns[i].ctimer);
    c->conns[i].ctimer.data = &c->conns[i];
  }

  /* Design note 8: the thread inherits a mask with SIGPIPE blocked. */
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  rc = uv_thread_create(&c->thread, io_main, c);
  pthread_sigmask(SIG_SETMASK, &old_set, NULL);
  if (rc != 0) {
    uv_walk(&c->loop, close_all_cb, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    client_free(c);
    return CELLAR_ENOMEM;
  }

  uv_mutex_lock(&c->lock);
  while (!c->connect_done) uv_cond_wait(&c->cond, &c->lock);
  rc = c->connect_rc;
  uv_mutex_unlock(&c->lock);
  if (rc != 0) {
    client_stop(c);
    client_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void cellar_close(cellar_client_t *c) {
  if (c == NULL) return;
  if (on_io_thread(c)) {
    /* Joining the I/O thread from itself cannot work; it is a misuse the
    ** header forbids, and silently leaking would hide it. */
    fprintf(stderr, "libcellar: cellar_close() called from a callback\n");
    abort();
  }
  client_stop(c);
  client_free(c);
}

const char *cellar_client_peer(const cellar_client_t *c) {
  return c ? c->peer : "";
}

/* =========================================================== submission */

static int client_submit(cellar_client_t *c, creq *r, cellar_callback_t cb,
                         void *arg) {
  r->cb = cb;
  r->arg = arg;
  size_t prev = atomic_fetch_add(&c->outstanding, 1);
  if (c->opt.max_in_flight && prev >= c->opt.max_in_flight) {
    atomic_fetch_sub(&c->outstanding, 1);
    return CELLAR_EOVERLOAD;
  }
  if (c->opt.request_timeout_ms > 0)
    r->deadline = now_ms() + (uint64_t)c->opt.request_timeout_ms;
  if (on_io_thread(c)) {
    /* From a callback: no queue, no async hop (callbacks of this request
    ** can still only run later: design note 2). */
    if (atomic_load(&c->closing) || c->shutting) {
      atomic_fetch_sub(&c->outstanding, 1);
      return CELLAR_ESHUTDOWN;
    }
    dispatch(c, r);
    return 0;
  }
  uv_mutex_lock(&c->lock);
  if (atomic_load(&c->closing)) {
    uv_mutex_unlock(&c->lock);
    atomic_fetch_sub(&c->outstanding, 1);
    return CELLAR_ESHUTDOWN;
  }
  r->where = RQ_QUEUED;
  r->qnext = NULL;
  int was_empty = c->qhead == NULL;
  if (c->qtail) c->qtail->qnext = r;
  else c->qhead = r;
  c->qtail = r;
  /* Under the lock, so cellar_close cannot close the handle in between;
  ** the loop drains the whole queue per wakeup, so one send per batch. */
  if (was_empty) uv_async_send(&c->wake);
  uv_mutex_unlock(&c->lock);
  return 0;
}

/* ----------------------------------------------------- sync waiting */

typedef struct sync_wait {
  uv_mutex_t m;
  uv_cond_t cv;
  int done;
  cellar_result_t *res;
} sync_wait;

static void sync_cb(int status, cellar_result_t *res, void *arg) {
  sync_wait *w = arg;
  uv_mutex_lock(&w->m);
  w->res = res;
  w->done = 1;
  uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->m);
}

static int sync_out(cellar_result_t *res, cellar_result_t **out) {
  int code = res->code;
  if (out) *out = res;
  else cellar_result_free(res);
  return code;
}

/* A failed build or submission of a sync call: a result carrying it. */
typedef struct cerr {
  int code;
  char msg[256];
} cerr;

static int seterr(cerr *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int seterr(cerr *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  e->code = code;
  return code;
}

static int run_sync(cellar_client_t *c, creq *r, const cerr *e,
                    cellar_result_t **out) {
  if (r == NULL) return sync_out(result_error(e->code, "%s", e->msg), out);
  sync_wait w;
  w.done = 0;
  w.res = NULL;
  uv_mutex_init(&w.m);
  uv_cond_init(&w.cv);
  r->hands_off = 1;
  int rc = client_submit(c, r, sync_cb, &w);
  if (rc != 0) {
    free(r);
    uv_cond_destroy(&w.cv);
    uv_mutex_destroy(&w.m);
    return sync_out(result_error(rc, "%s", rc == CELLAR_ESHUTDOWN ? "client closed"
                                 : "too many requests in flight"), out);
  }
  uv_mutex_lock(&w.m);
  while (!w.done) uv_cond_wait(&w.cv, &w.m);
  uv_mutex_unlock(&w.m);
  uv_cond_destroy(&w.cv);
  uv_mutex_destroy(&w.m);
  return sync_out(w.res, out);
}

static int deadlock_out(cellar_result_t **out) {
  return sync_out(result_error(CELLAR_EDEADLOCK,
                               "synchronous call made on the client's I/O thread "
                               "(from a callback)"), out);
}

/* ============================================================== encoding */

/* Packs m into a new request frame of the given type. */
static creq *encode(const ProtobufCMessage *m, uint8_t type, cerr *e) {
  size_t n = m ? protobuf_c_message_get_packed_size(m) : 0;
  if (n > CELLAR_MAX_FRAME_BYTES) {
    seterr(e, CELLAR_ETOOBIG, "request of %zu bytes exceeds the frame limit of %u bytes",
           n, CELLAR_MAX_FRAME_BYTES);
    return NULL;
  }
  creq *r = malloc(sizeof *r + FRAME_HEADER_SIZE + n);
  if (r == NULL) {
    seterr(e, CELLAR_ENOMEM, "out of memory encoding the request");
    return NULL;
  }
  memset(r, 0, sizeof *r);
  r->type = type;
  r->flen = FRAME_HEADER_SIZE + n;
  if (m) protobuf_c_message_pack(m, r->frame + FRAME_HEADER_SIZE);
  /* The header is written when the request id is known (conn_send). */
  return r;
}

static int check_name(cerr *e, const char *what, const char *name) {
  if (name == NULL || *name == '\0') return seterr(e, CELLAR_EINVAL, "missing %s name", what);
  size_t n = strlen(name);
  if (n > CELLAR_MAX_NAME_BYTES)
    return seterr(e, CELLAR_ETOOBIG, "%s name of %zu bytes exceeds the limit of %u",
                  what, n, CELLAR_MAX_NAME_BYTES);
  /* Same rule as the server: [A-Za-z0-9_], not starting with a digit. */
  if (name[0] >= '0' && name[0] <= '9')
    return seterr(e, CELLAR_EBADNAME, "invalid %s name '%s': starts with a digit", what, name);
  for (const char *p = name; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_'))
      return seterr(e, CELLAR_EBADNAME,
                    "invalid %s name '%s': only letters, digits and '_'", what, name);
  }
  return 0;
}

static int check_bytes(cerr *e, const char *what, const void *p, size_t n, size_t max) {
  if (p == NULL && n > 0) return seterr(e, CELLAR_EINVAL, "%s is NULL with length %zu", what, n);
  if (n > max)
    return seterr(e, CELLAR_ETOOBIG, "%s of %zu bytes exceeds the limit of %zu bytes",
                  what, n, max);
  return 0;
}

static int check_cl(cellar_client_t *c, cerr *e, cellar_consistency_t cl, uint32_t *out) {
  if ((int)cl < 0 || (int)cl > CELLAR_CL_ANY)
    return seterr(e, CELLAR_EBADCL, "invalid consistency level %d", (int)cl);
  *out = (uint32_t)(cl == CELLAR_CL_DEFAULT ? c->opt.consistency : cl);
  return 0;
}

static ProtobufCBinaryData bin(const void *p, size_t n) {
  ProtobufCBinaryData b;
  b.data = (uint8_t *)(n ? p : NULL);
  b.len = n;
  return b;
}

/* Column-name lists (GET, SLICE, DELETE). *out malloc'd, caller frees. */
static int columns_in(cerr *e, const cellar_cell_t *cols, size_t n,
                      ProtobufCBinaryData **out) {
  *out = NULL;
  if (n == 0) return 0;
  if (cols == NULL) return seterr(e, CELLAR_EINVAL, "columns is NULL with a count of %zu", n);
  ProtobufCBinaryData *v = malloc(n * sizeof *v);
  if (v == NULL) return seterr(e, CELLAR_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    int rc = check_bytes(e, "column name", cols[i].name, cols[i].name_len,
                         CELLAR_MAX_COLUMN_BYTES);
    if (rc == 0 && cols[i].name_len == 0) rc = seterr(e, CELLAR_EINVAL, "empty column name");
    if (rc) {
      free(v);
      return rc;
    }
    v[i] = bin(cols[i].name, cols[i].name_len);
  }
  *out = v;
  return 0;
}

static creq *build_put(cellar_client_t *c, const cellar_put_t *p, cerr *e) {
  if (p == NULL) {
    seterr(e, CELLAR_EINVAL, "no put given");
    return NULL;
  }
  Cellar__Wire__PutRequest m = CELLAR__WIRE__PUT_REQUEST__INIT;
  if (check_name(e, "keyspace", p->keyspace) || check_name(e, "table", p->table) ||
      check_bytes(e, "partition key", p->partition, p->partition_len, CELLAR_MAX_KEY_BYTES) ||
      check_cl(c, e, p->consistency, &m.consistency))
    return NULL;
  if (p->nrows == 0 || p->rows == NULL) {
    seterr(e, CELLAR_EEMPTY, "put without rows");
    return NULL;
  }
  size_t ncells = 0;
  for (size_t i = 0; i < p->nrows; i++) {
    const cellar_row_t *row = &p->rows[i];
    if (check_bytes(e, "clustering key", row->clustering, row->clustering_len,
                    CELLAR_MAX_KEY_BYTES))
      return NULL;
    if (row->ncells > 0 && row->cells == NULL) {
      seterr(e, CELLAR_EINVAL, "row %zu: cells is NULL with a count of %zu", i, row->ncells);
      return NULL;
    }
    for (size_t j = 0; j < row->ncells; j++) {
      const cellar_cell_t *x = &row->cells[j];
      if (check_bytes(e, "column name", x->name, x->name_len, CELLAR_MAX_COLUMN_BYTES) ||
          check_bytes(e, "value", x->value, x->value_len, CELLAR_MAX_VALUE_BYTES))
        return NULL;
      if (x->name_len == 0) {
        seterr(e, CELLAR_EINVAL, "empty column name");
        return NULL;
      }
    }
    ncells += row->ncells;
  }
  if (ncells == 0) {
    seterr(e, CELLAR_EEMPTY, "put without cells");
    return NULL;
  }
  /* One block for every message and pointer array of the request. */
  size_t sz = p->nrows * (sizeof(Cellar__Wire__Row) + sizeof(Cellar__Wire__Row *)) +
              ncells * (sizeof(Cellar__Wire__Cell) + sizeof(Cellar__Wire__Cell *));
  void *block = malloc(sz);
  if (block == NULL) {
    seterr(e, CELLAR_ENOMEM, "out of memory");
    return NULL;
  }
  Cellar__Wire__Row *rows = block;
  Cellar__Wire__Cell *cells = (Cellar__Wire__Cell *)(rows + p->nrows);
  Cellar__Wire__Row **rowp = (Cellar__Wire__Row **)(cells + ncells);
  Cellar__Wire__Cell **cellp = (Cellar__Wire__Cell **)(rowp + p->nrows);
  size_t ci = 0;
  for (size_t i = 0; i < p->nrows; i++) {
    const cellar_row_t *row = &p->rows[i];
    cellar__wire__row__init(&rows[i]);
    rows[i].clustering = bin(row->clustering, row->clustering_len);
    rows[i].n_cells = row->ncells;
    rows[i].cells = cellp + ci;
    for (size_t j = 0; j < row->ncells; j++, ci++) {
      cellar__wire__cell__init(&cells[ci]);
      cells[ci].name = bin(row->cells[j].name, row->cells[j].name_len);
      cells[ci].value = bin(row->cells[j].value, row->cells[j].value_len);
      cellp[ci] = &cells[ci];
    }
    rowp[i] = &rows[i];
  }
  m.keyspace = (char *)p->keyspace;
  m.table = (char *)p->table;
  m.partition = bin(p->partition, p->partition_len);
  m.n_rows = p->nrows;
  m.rows = rowp;
  m.ttl = p->ttl;
  m.timestamp = p->timestamp;
  creq *r = encode(&m.base, FRAME_PUT, e);
  free(block);
  return r;
}

static creq *build_get(cellar_client_t *c, const cellar_get_t *g, cerr *e) {
  if (g == NULL) {
    seterr(e, CELLAR_EINVAL, "no get given");
    return NULL;
  }
  Cellar__Wire__GetRequest m = CELLAR__WIRE__GET_REQUEST__INIT;
  ProtobufCBinaryData *cols = NULL;
  if (check_name(e, "keyspace", g->keyspace) || check_name(e, "table", g->table) ||
      check_bytes(e, "partition key", g->partition, g->partition_len, CELLAR_MAX_KEY_BYTES) ||
      check_bytes(e, "clustering key", g->clustering, g->clustering_len,
                  CELLAR_MAX_KEY_BYTES) ||
      check_cl(c, e, g->consistency, &m.consistency) ||
      columns_in(e, g->columns, g->ncolumns, &cols))
    return NULL;
  m.keyspace = (char *)g->keyspace;
  m.table = (char *)g->table;
  m.partition = bin(g->partition, g->partition_len);
  m.clustering = bin(g->clustering, g->clustering_len);
  m.n_columns = g->ncolumns;
  m.columns = cols;
  creq *r = encode(&m.base, FRAME_GET, e);
  free(cols);
  return r;
}

static creq *build_slice(cellar_client_t *c, const cellar_slice_t *s, cerr *e) {
  if (s == NULL) {
    seterr(e, CELLAR_EINVAL, "no slice given");
    return NULL;
  }
  Cellar__Wire__SliceRequest m = CELLAR__WIRE__SLICE_REQUEST__INIT;
  ProtobufCBinaryData *cols = NULL;
  if (check_name(e, "keyspace", s->keyspace) || check_name(e, "table", s->table) ||
      check_bytes(e, "partition key", s->partition, s->partition_len, CELLAR_MAX_KEY_BYTES) ||
      (s->start && check_bytes(e, "start key", s->start, s->start_len, CELLAR_MAX_KEY_BYTES)) ||
      (s->end && check_bytes(e, "end key", s->end, s->end_len, CELLAR_MAX_KEY_BYTES)) ||
      check_bytes(e, "cursor", s->cursor, s->cursor_len, CELLAR_MAX_KEY_BYTES + 64) ||
      check_cl(c, e, s->consistency, &m.consistency) ||
      columns_in(e, s->columns, s->ncolumns, &cols))
    return NULL;
  m.keyspace = (char *)s->keyspace;
  m.table = (char *)s->table;
  m.partition = bin(s->partition, s->partition_len);
  if (s->start) {
    m.has_start = 1;
    m.start = bin(s->start, s->start_len);
  }
  if (s->end) {
    m.has_end = 1;
    m.end = bin(s->end, s->end_len);
  }
  m.limit = s->limit;
  m.cursor = bin(s->cursor, s->cursor ? s->cursor_len : 0);
  m.n_columns = s->ncolumns;
  m.columns = cols;
  creq *r = encode(&m.base, FRAME_SLICE, e);
  free(cols);
  return r;
}

static creq *build_delete(cellar_client_t *c, const cellar_delete_t *d, cerr *e) {
  if (d == NULL) {
    seterr(e, CELLAR_EINVAL, "no delete given");
    return NULL;
  }
  Cellar__Wire__DeleteRequest m = CELLAR__WIRE__DELETE_REQUEST__INIT;
  ProtobufCBinaryData *cols = NULL;
  if (check_name(e, "keyspace", d->keyspace) || check_name(e, "table", d->table) ||
      check_bytes(e, "partition key", d->partition, d->partition_len, CELLAR_MAX_KEY_BYTES) ||
      check_cl(c, e, d->consistency, &m.consistency))
    return NULL;
  switch (d->scope) {
  case CELLAR_DELETE_PARTITION:
    m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__PARTITION;
    break;
  case CELLAR_DELETE_ROW:
    m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__ROW;
    break;
  case CELLAR_DELETE_CELLS:
    m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS;
    if (d->ncolumns == 0) {
      seterr(e, CELLAR_EINVAL, "cell delete without columns");
      return NULL;
    }
    break;
  default:
    seterr(e, CELLAR_EINVAL, "invalid delete scope %d", (int)d->scope);
    return NULL;
  }
  if (d->scope != CELLAR_DELETE_PARTITION &&
      check_bytes(e, "clustering key", d->clustering, d->clustering_len, CELLAR_MAX_KEY_BYTES))
    return NULL;
  if (d->scope == CELLAR_DELETE_CELLS && columns_in(e, d->columns, d->ncolumns, &cols))
    return NULL;
  m.keyspace = (char *)d->keyspace;
  m.table = (char *)d->table;
  m.partition = bin(d->partition, d->partition_len);
  if (d->scope != CELLAR_DELETE_PARTITION) m.clustering = bin(d->clustering, d->clustering_len);
  if (cols) {
    m.n_columns = d->ncolumns;
    m.columns = cols;
  }
  m.timestamp = d->timestamp;
  creq *r = encode(&m.base, FRAME_DELETE, e);
  free(cols);
  return r;
}

/* ----------------------------------------------------------- schema */

typedef struct repl_spec {
  int nts;
  uint32_t rf;
  size_t ndcs;
  char dc[CLIENT_MAX_DCS][CELLAR_MAX_NAME_BYTES + 1];
  uint32_t dcrf[CLIENT_MAX_DCS];
} repl_spec;

static int parse_factor(const char *s, size_t n, uint32_t *out) {
  if (n == 0 || n > 4) return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v > 255) return -1;
  *out = v;
  return 0;
}

/* "SimpleStrategy:3" / "NetworkTopologyStrategy:dc1=3,dc2=2" (strategy
** names case-insensitive). Returns 0 or CELLAR_EINVAL with a message. */
static int parse_replication(const char *spec, repl_spec *out, cerr *e) {
  memset(out, 0, sizeof *out);
  if (spec == NULL || *spec == '\0') spec = "SimpleStrategy:1";
  const char *colon = strchr(spec, ':');
  if (colon == NULL)
    return seterr(e, CELLAR_EINVAL, "invalid replication '%s': expected "
                  "SimpleStrategy:RF or NetworkTopologyStrategy:DC=RF,...", spec);
  size_t sl = (size_t)(colon - spec);
  const char *rest = colon + 1;
  if (sl == strlen("SimpleStrategy") && strncasecmp(spec, "SimpleStrategy", sl) == 0) {
    if (parse_factor(rest, strlen(rest), &out->rf) != 0 || out->rf == 0)
      return seterr(e, CELLAR_EINVAL, "invalid replication factor '%s' (1..255)", rest);
    return 0;
  }
  if (!(sl == strlen("NetworkTopologyStrategy") &&
        strncasecmp(spec, "NetworkTopologyStrategy", sl) == 0))
    return seterr(e, CELLAR_EINVAL, "unknown replication strategy '%.*s'", (int)sl, spec);
  out->nts = 1;
  uint32_t total = 0;
  const char *p = rest;
  for (;;) {
    const char *end = strchr(p, ',');
    if (end == NULL) end = p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (eq == NULL || eq == p)
      return seterr(e, CELLAR_EINVAL, "invalid datacenter entry '%.*s': expected DC=RF",
                    (int)(end - p), p);
    size_t nl = (size_t)(eq - p);
    if (nl > CELLAR_MAX_NAME_BYTES)
      return seterr(e, CELLAR_EINVAL, "datacenter name too long: '%.*s'", (int)nl, p);
    for (size_t i = 0; i < nl; i++) {
      char ch = p[i];
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == '-' || ch == '.'))
        return seterr(e, CELLAR_EINVAL, "invalid datacenter name '%.*s'", (int)nl, p);
    }
    if (out->ndcs == CLIENT_MAX_DCS)
      return seterr(e, CELLAR_EINVAL, "more than %d datacenters", CLIENT_MAX_DCS);
    uint32_t f;
    if (parse_factor(eq + 1, (size_t)(end - eq - 1), &f) != 0)
      return seterr(e, CELLAR_EINVAL, "invalid replication factor '%.*s' (0..255)",
                    (int)(end - eq - 1), eq + 1);
    for (size_t i = 0; i < out->ndcs; i++)
      if (strlen(out->dc[i]) == nl && memcmp(out->dc[i], p, nl) == 0)
        return seterr(e, CELLAR_EINVAL, "datacenter '%.*s' given twice", (int)nl, p);
    memcpy(out->dc[out->ndcs], p, nl);
    out->dc[out->ndcs][nl] = '\0';
    out->dcrf[out->ndcs] = f;
    out->ndcs++;
    total += f;
    if (*end == '\0') break;
    p = end + 1;
  }
  if (total == 0)
    return seterr(e, CELLAR_EINVAL, "replication '%s' places no replica", spec);
  return 0;
}

static creq *build_create_keyspace(const char *name, const char *replication,
                                   int if_not_exists, cerr *e) {
  repl_spec rs;
  if (check_name(e, "keyspace", name) || parse_replication(replication, &rs, e)) return NULL;
  Cellar__Wire__Replication rp = CELLAR__WIRE__REPLICATION__INIT;
  Cellar__Wire__Replication__DatacentersEntry ents[CLIENT_MAX_DCS];
  Cellar__Wire__Replication__DatacentersEntry *entp[CLIENT_MAX_DCS];
  if (rs.nts) {
    rp.strategy = "NetworkTopologyStrategy";
    for (size_t i = 0; i < rs.ndcs; i++) {
      cellar__wire__replication__datacenters_entry__init(&ents[i]);
      ents[i].key = rs.dc[i];
      ents[i].value = rs.dcrf[i];
      entp[i] = &ents[i];
    }
    rp.n_datacenters = rs.ndcs;
    rp.datacenters = entp;
  } else {
    rp.strategy = "SimpleStrategy";
    rp.replication_factor = rs.rf;
  }
  Cellar__Wire__KeyspaceDef kd = CELLAR__WIRE__KEYSPACE_DEF__INIT;
  kd.name = (char *)name;
  kd.replication = &rp;
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  m.keyspace = &kd;
  m.keyspace_name = (char *)name;
  m.if_not_exists = if_not_exists != 0;
  return encode(&m.base, FRAME_CREATE_KEYSPACE, e);
}

static creq *build_drop_keyspace(const char *name, int if_exists, cerr *e) {
  if (check_name(e, "keyspace", name)) return NULL;
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  m.keyspace_name = (char *)name;
  m.if_exists = if_exists != 0;
  return encode(&m.base, FRAME_DROP_KEYSPACE, e);
}

static creq *build_create_table(const char *keyspace, const char *name,
                                const cellar_table_options_t *t, int if_not_exists,
                                cerr *e) {
  if (check_name(e, "keyspace", keyspace) || check_name(e, "table", name)) return NULL;
  cellar_table_options_t def;
  if (t == NULL) {
    cellar_table_options_init(&def);
    t = &def;
  }
  Cellar__Wire__TableDef td = CELLAR__WIRE__TABLE_DEF__INIT;
  if (t->conflict_policy && *t->conflict_policy) {
    if (strcasecmp(t->conflict_policy, "siblings") == 0) td.conflict_policy = "siblings";
    else if (strcasecmp(t->conflict_policy, "lww") == 0) td.conflict_policy = "lww";
    else {
      seterr(e, CELLAR_EINVAL, "invalid conflict policy '%s' (siblings or lww)",
             t->conflict_policy);
      return NULL;
    }
  }
  if (t->gc_grace_seconds >= 0) {
    if (t->gc_grace_seconds > (int64_t)UINT32_MAX) {
      seterr(e, CELLAR_EINVAL, "gc_grace_seconds %lld out of range",
             (long long)t->gc_grace_seconds);
      return NULL;
    }
    td.gc_grace_seconds = (uint32_t)t->gc_grace_seconds;
    td.has_gc_grace = 1;
  }
  td.default_ttl = t->default_ttl;
  td.keyspace = (char *)keyspace;
  td.name = (char *)name;
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  m.table = &td;
  m.keyspace_name = (char *)keyspace;
  m.table_name = (char *)name;
  m.if_not_exists = if_not_exists != 0;
  return encode(&m.base, FRAME_CREATE_TABLE, e);
}

static creq *build_drop_table(const char *keyspace, const char *name, int if_exists,
                              cerr *e) {
  if (check_name(e, "keyspace", keyspace) || check_name(e, "table", name)) return NULL;
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  m.keyspace_name = (char *)keyspace;
  m.table_name = (char *)name;
  m.if_exists = if_exists != 0;
  return encode(&m.base, FRAME_DROP_TABLE, e);
}

static creq *build_describe(const char *keyspace, cerr *e) {
  if (keyspace && *keyspace && check_name(e, "keyspace", keyspace)) return NULL;
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  m.keyspace_name = (char *)(keyspace ? keyspace : "");
  return encode(&m.base, FRAME_DESCRIBE, e);
}

static creq *build_admin(const char *command, const char *argument, cerr *e) {
  if (command == NULL || *command == '\0') {
    seterr(e, CELLAR_EINVAL, "missing admin command");
    return NULL;
  }
  Cellar__Wire__AdminRequest m = CELLAR__WIRE__ADMIN_REQUEST__INIT;
  m.command = (char *)command;
  m.argument = (char *)(argument ? argument : "");
  return encode(&m.base, FRAME_ADMIN, e);
}

/* ========================================================= public calls */

/* Async: a build error is returned (callback never called). */
static int go_async(cellar_client_t *c, creq *r, const cerr *e, cellar_callback_t cb,
                    void *arg) {
  if (r == NULL) return e->code;
  int rc = client_submit(c, r, cb, arg);
  if (rc != 0) free(r);
  return rc;
}

#define SYNC_PROLOGUE(c, out)                                  \
  do {                                                         \
    if ((out) != NULL) *(out) = NULL;                          \
    if ((c) == NULL) {                                         \
      if (out) *(out) = result_error(CELLAR_EINVAL, "no client"); \
      return CELLAR_EINVAL;                                    \
    }                                                          \
    if (on_io_thread(c)) return deadlock_out(out);             \
  } while (0)

#define ASYNC_PROLOGUE(c, cb)                                  \
  do {                                                         \
    if ((c) == NULL || (cb) == NULL) return CELLAR_EINVAL;     \
  } while (0)

int cellar_ping(cellar_client_t *c, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, encode(NULL, FRAME_PING, &e), &e, out);
}

int cellar_ping_async(cellar_client_t *c, cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, encode(NULL, FRAME_PING, &e), &e, cb, arg);
}

int cellar_put(cellar_client_t *c, const cellar_put_t *p, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_put(c, p, &e), &e, out);
}

int cellar_put_async(cellar_client_t *c, const cellar_put_t *p, cellar_callback_t cb,
                     void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_put(c, p, &e), &e, cb, arg);
}

int cellar_get(cellar_client_t *c, const cellar_get_t *g, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_get(c, g, &e), &e, out);
}

int cellar_get_async(cellar_client_t *c, const cellar_get_t *g, cellar_callback_t cb,
                     void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_get(c, g, &e), &e, cb, arg);
}

int cellar_slice(cellar_client_t *c, const cellar_slice_t *s, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_slice(c, s, &e), &e, out);
}

int cellar_slice_async(cellar_client_t *c, const cellar_slice_t *s, cellar_callback_t cb,
                       void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_slice(c, s, &e), &e, cb, arg);
}

int cellar_delete(cellar_client_t *c, const cellar_delete_t *d, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_delete(c, d, &e), &e, out);
}

int cellar_delete_async(cellar_client_t *c, const cellar_delete_t *d,
                        cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_delete(c, d, &e), &e, cb, arg);
}

int cellar_create_keyspace(cellar_client_t *c, const char *name, const char *replication,
                           int if_not_exists, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_create_keyspace(name, replication, if_not_exists, &e), &e, out);
}

int cellar_create_keyspace_async(cellar_client_t *c, const char *name,
                                 const char *replication, int if_not_exists,
                                 cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_create_keyspace(name, replication, if_not_exists, &e), &e, cb,
                  arg);
}

int cellar_drop_keyspace(cellar_client_t *c, const char *name, int if_exists,
                         cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_drop_keyspace(name, if_exists, &e), &e, out);
}

int cellar_drop_keyspace_async(cellar_client_t *c, const char *name, int if_exists,
                               cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_drop_keyspace(name, if_exists, &e), &e, cb, arg);
}

int cellar_create_table(cellar_client_t *c, const char *keyspace, const char *name,
                        const cellar_table_options_t *t, int if_not_exists,
                        cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_create_table(keyspace, name, t, if_not_exists, &e), &e, out);
}

int cellar_create_table_async(cellar_client_t *c, const char *keyspace, const char *name,
                              const cellar_table_options_t *t, int if_not_exists,
                              cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_create_table(keyspace, name, t, if_not_exists, &e), &e, cb, arg);
}

int cellar_drop_table(cellar_client_t *c, const char *keyspace, const char *name,
                      int if_exists, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_drop_table(keyspace, name, if_exists, &e), &e, out);
}

int cellar_drop_table_async(cellar_client_t *c, const char *keyspace, const char *name,
                            int if_exists, cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_drop_table(keyspace, name, if_exists, &e), &e, cb, arg);
}

int cellar_describe(cellar_client_t *c, const char *keyspace, cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_describe(keyspace, &e), &e, out);
}

int cellar_describe_async(cellar_client_t *c, const char *keyspace, cellar_callback_t cb,
                          void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_describe(keyspace, &e), &e, cb, arg);
}

int cellar_admin(cellar_client_t *c, const char *command, const char *argument,
                 cellar_result_t **out) {
  SYNC_PROLOGUE(c, out);
  cerr e = {0, ""};
  return run_sync(c, build_admin(command, argument, &e), &e, out);
}

int cellar_admin_async(cellar_client_t *c, const char *command, const char *argument,
                       cellar_callback_t cb, void *arg) {
  ASYNC_PROLOGUE(c, cb);
  cerr e = {0, ""};
  return go_async(c, build_admin(command, argument, &e), &e, cb, arg);
}
