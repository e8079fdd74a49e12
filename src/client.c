/*
** client: libcellar, the client library (include/cellar/cellar.h).
**
** A client owns one I/O thread running its own uv_loop, and a pool of
** `connections` TCP connections per node of the cluster, opened when a
** request first needs them. Requests are encoded on the caller's thread
** (protobuf packing, every copy of the caller's memory and the partition
** key's token happen there), handed to the I/O thread through a
** mutex-protected queue and a uv_async_t wakeup, routed to a node, spread
** round-robin over that node's connections, and matched with their answers
** by request id. Sync calls are async calls plus a condition variable.
**
** Routing: the node reached by cellar_connect (the contact, nodes[0]) is
** asked for its ring ("ring", every CLIENT_REFRESH_MS and soon after a
** connection failure), its host id ("info") and, when needed, the members
** ("status"); each keyspace's replication is asked once (describe) and
** cached. A data request goes to a usable replica of its key (route()),
** else to any usable node; a node is usable when the ring's view says up
** and no connection to it failed recently (the client's own view, with a
** background reconnect probe and exponential backoff). Until the ring and
** the keyspace are known, everything goes to the contact: the behaviour
** before routing existed.
**
** Design notes:
**
**   1. A request (creq) is the caller's call; an attempt is one sending of
**      its frame to one connection. A request has at most two live
**      attempts (the first and a speculative copy, or a retry) in the two
**      slots r->at[]. The request is queued (QUEUED, under c->lock) or
**      dispatched; each live attempt is in exactly one place named by
**      a->where: a connection's waiting list (WAITING: the connection is
**      not up yet), its in-flight table (INFLIGHT: an id was assigned and
**      the frame put into the output buffer) or its doomed list (DOOMED:
**      the connection failed and is closing; the attempt fails in the close
**      callback). Independently, a request with a deadline is on the
**      client's deadline list, and a read waiting for its speculative copy
**      is on the timer heap, from dispatch until it completes.
**   2. req_complete() is the only way out: it unlinks the request and its
**      attempts from everything, runs the callback exactly once, frees the
**      result unless the request is a sync call's (then the waiting thread
**      owns it from the moment the callback signals it: the I/O thread must
**      not touch it after the call, so the choice is made before), and
**      frees the request. An attempt that fails or is answered is first
**      judged by attempt_end(): a connection failure, or a coordinator's
**      answer that its replicas failed (timeout, replica connection lost)
**      or that it is stopping, of a retryable request (put, get, slice,
**      delete) while the other slot is live only ends that attempt; with
**      no other attempt, the request is retried on another node if its
**      deadline allows, once per kind of failure (retry_allowed); anything
**      else completes the request. So the
**      callback runs once, whatever copies were sent. Callbacks run only
**      on the I/O thread and never from inside a cellar_*_async() call,
**      even a call made on the I/O thread (a connect that fails at once is
**      reported through the close callback, one loop turn later).
**   3. Timeouts: all requests share one timeout, so the deadline list is
**      in submission order and therefore (nearly) deadline order; one
**      timer sweeps its head every 100 ms (less for short timeouts). No
**      per-request timer. An answer that arrives after its attempt ended
**      finds no id in the table and is dropped. The deadline covers the
**      retry: a retry is sent only before it. Speculative delays differ per
**      node (percentile mode), so they sit on a binary min-heap with one
**      uv_timer_t armed for its top.
**   4. Output is batched: an attempt appends its frame to the connection's
**      output buffer, puts the connection on the flush list and arms a
**      uv_prepare_t; the prepare callback (once per loop turn, before the
**      loop polls) writes each listed buffer with one uv_try_write, falling
**      back to uv_write for the rest. While a uv_write is in progress new
**      frames gather in the other buffer. The frame bytes are copied, so
**      the same request frame can be sent again under another id.
**   5. Input: one 256 KiB read buffer per connection; frame_reader cuts
**      frames, payloads whole in the buffer are unpacked without a copy.
**   6. Connection loss fails that connection's attempts with CELLAR_ECLOSED
**      (CELLAR_EPROTO if the server sent garbage); a failed connect fails
**      the attempts waiting for it with CELLAR_ECONNECT. Both mark the node
**      down for the router (node_failed) and ask for a ring refresh; a
**      down node gets a background reconnect (the probe) after a backoff
**      of 250 ms doubling to 4 s, and is usable again once it connects.
**      Connections are otherwise reopened lazily, when an attempt is next
**      routed to them.
**   7. cellar_close() sets c->closing under the lock and wakes the loop;
**      from then on submissions return CELLAR_ESHUTDOWN (also those made
**      by callbacks), nothing is retried, everything pending fails with
**      CELLAR_ESHUTDOWN, all handles are closed, the loop runs dry,
**      uv_loop_close() must return 0 (kept in client_last_loop_close_rc()
**      for the tests) and the thread is joined.
**   8. SIGPIPE is blocked in the I/O thread (a write to a reset socket
**      then fails with EPIPE instead of killing the user's process); the
**      user's own signal dispositions are not touched.
**   9. The client's own requests (ring, status, info, describe) are
**      internal: not counted against max_in_flight, their callbacks are
**      the client's, and they fail quietly at shutdown. At most one ring
**      refresh is in flight at a time.
**  10. The node table only grows (nodes are never freed before the client),
**      so conn and node pointers stay valid; c->slock guards the table and
**      the strings that cellar_client_stats() copies from other threads;
**      counters are relaxed atomics.
**
** Connection states (conn_connect, on_connect, conn_fail, on_conn_closed):
**
**     DOWN --conn_connect()--> CONNECTING --on_connect(ok)--> UP
**      ^                          |                            |
**      |                 conn_fail(ECONNECT)          conn_fail(ECLOSED)
**      |                          v                            |
**      +--on_conn_closed()---- CLOSING <------------------------+
**           (fails the doomed list, reconnects if attempts wait)
**
** Attempt outcomes (attempt_end):
**
**     answer, not retryable ---------------------------> req_complete
**     failure/timeout answer --other slot live--> end this attempt only
**                            --retry of that kind left, time left-->
**                                                attempt_start(other node)
**                            --else------------------> req_complete(error)
**     speculative timer (reads) --one attempt live--> attempt_start(other node)
*/
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
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
#include "ring.h"
#include "token.h"

#define CLIENT_DEFAULT_HOSTS "127.0.0.1:7400"
#define CLIENT_DEFAULT_PORT 7400
#define CLIENT_READ_BUF (256u * 1024u)
#define CLIENT_SWEEP_MS 100
#define CLIENT_MAX_CONNECTIONS 1024
#define CLIENT_MAX_DCS 16
/* An answer may be larger than a request (a slice of 1000 big rows); the
** server caps its frames at the same documented limit. */
#define CLIENT_MAX_RESPONSE CELLAR_MAX_FRAME_BYTES
#define CLIENT_TICK_MS 100           /* housekeeping: probes, refreshes */
#define CLIENT_REFRESH_MS 2000       /* ring refresh period */
#define CLIENT_REFRESH_MIN_MS 300    /* at most this often after failures */
#define CLIENT_INTERNAL_TIMEOUT_MS 5000
#define CLIENT_BACKOFF_MIN_MS 250
#define CLIENT_BACKOFF_MAX_MS 4000
#define CLIENT_KS_REFRESH_MS 30000   /* a cached replication is re-asked */
#define CLIENT_KS_ABSENT_MS 2000     /* an unknown keyspace is re-asked */
#define CLIENT_MAX_KEYSPACES 1024
#define CLIENT_MAX_REPLICAS 64
#define CLIENT_MAX_NODES 4096
#define CLIENT_MAX_TRIES 4           /* first, speculative copy, 2 retries */
#define LAT_BUCKETS 192
#define LAT_WINDOW 2000              /* samples per histogram window */
#define LAT_MIN_SAMPLES 100

/* ================================================================ types */

typedef struct conn conn;
typedef struct cnode cnode;
typedef struct creq creq;

enum req_where { RQ_NONE = 0, RQ_QUEUED, RQ_WAITING, RQ_INFLIGHT, RQ_DOOMED };

/* What routing and retries need to know of a request. */
enum req_kind {
  RK_OTHER = 0,                /* ping, admin, schema: the contact node */
  RK_READ,                     /* get, slice: routed, retried, speculative */
  RK_WRITE                     /* put, delete: routed, retried */
};

typedef struct attempt {
  creq *r;                     /* owner; NULL when the slot is free */
  conn *k;                     /* WAITING, INFLIGHT, DOOMED */
  struct attempt *lprev, *lnext;  /* conn's waiting or doomed list */
  struct attempt *hnext;       /* conn's in-flight bucket chain */
  int where;                   /* enum req_where */
  int speculative;             /* the speculative copy */
  uint32_t id;                 /* request id once INFLIGHT */
  uint64_t sent_us;            /* uv_hrtime in µs when sent */
} attempt;

struct creq {
  creq *qnext;                 /* submission queue */
  creq *dprev, *dnext;         /* client's deadline list */
  int where;                   /* RQ_QUEUED or RQ_NONE */
  int on_dlist;
  int hands_off;               /* sync call: the waiter takes the result */
  int internal;                /* the client's own request (note 9) */
  uint8_t type;                /* enum frame_type */
  uint8_t kind;                /* enum req_kind */
  uint8_t cl;                  /* resolved consistency level (data requests) */
  int retried;                 /* retries sent */
  int retried_conn;            /* ... after a connection failure */
  int retried_timeout;         /* ... after a coordinator's timeout */
  int speculated;              /* a speculative copy was sent */
  int64_t token;               /* partition key's token (data requests) */
  char keyspace[CELLAR_MAX_NAME_BYTES + 1];
  uint64_t deadline;           /* ms on uv_hrtime's clock; 0 = none */
  size_t hidx;                 /* index on the timer heap, SIZE_MAX = off */
  uint64_t spec_due;           /* ms: when the speculative copy goes */
  int ntried;
  int tried[CLIENT_MAX_TRIES]; /* node indexes already sent to */
  attempt at[2];
  cellar_callback_t cb;
  void *arg;
  size_t flen;                 /* header + payload */
  uint8_t frame[];
};

typedef struct alist {
  attempt *head, *tail;
} alist;

/* In-flight table: chained hash on the request id (ids are sequential, so
** id & mask spreads perfectly). */
typedef struct inflight {
  attempt **b;
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
  cnode *n;                    /* the node it connects to */
  int index;                   /* in n->conns */
  int state;                   /* enum conn_state */
  uv_tcp_t tcp;                /* initialised from CONNECTING to close_cb */
  uv_connect_t creq;
  uv_timer_t ctimer;           /* connect timeout */
  uv_write_t wreq;
  int writing;                 /* wreq in progress on wbuf */
  int flushq;                  /* on the client's flush list */
  conn *fnext;
  obuf out;                    /* frames gathering for the next flush */
  obuf wbuf;                   /* frames being written */
  uint8_t *rbuf;               /* CLIENT_READ_BUF bytes */
  frame_reader reader;
  uint32_t next_id;
  inflight infl;
  alist waiting;               /* routed here before the connection was up */
  alist doomed;                /* to fail once the handle is closed */
  int fail_code;
  char fail_msg[480];
};

/* Latency of reads answered by one node: two windows of a log-linear
** histogram (4 buckets per power of two), the older one kept so that a
** percentile never rests on a handful of samples. */
typedef struct lat_hist {
  uint32_t cur[LAT_BUCKETS], prev[LAT_BUCKETS];
  uint32_t ncur, nprev;
  uint32_t since;              /* samples since the percentiles were computed */
  uint64_t pct_us;             /* speculative_percentile, cached */
  atomic_uint_fast64_t p99_us; /* for the stats, cached */
} lat_hist;

struct cnode {
  int idx;                     /* in c->nodes */
  char name[320];              /* "host:port" */
  struct sockaddr_storage addr;
  int resolved;
  char resolve_err[120];
  char host_id[40];            /* "" until known */
  char dc[CELLAR_MAX_NAME_BYTES + 1];
  char rack[CELLAR_MAX_NAME_BYTES + 1];
  int in_ring;                 /* member of the current ring */
  int ring_up;                 /* the ring's view (1 until a ring says) */
  int down;                    /* the client's view: a connection failed */
  uint64_t retry_at;           /* ms: next reconnect probe when down */
  uint32_t backoff_ms;
  conn *conns;                 /* c->opt.connections */
  unsigned rr;
  lat_hist lat;
  atomic_uint_fast64_t nreq, nfail;
};

typedef struct host {
  char name[320];              /* "host:port" as given */
  struct sockaddr_storage addr;
  int resolved;
  char resolve_err[120];
} host;

enum ks_state { KS_FETCHING = 1, KS_KNOWN, KS_ABSENT };

/* A keyspace's replication as learned by describe. */
typedef struct ks_entry {
  cellar_client_t *c;
  char name[CELLAR_MAX_NAME_BYTES + 1];
  int state;                   /* enum ks_state */
  int fetching;                /* a describe is in flight */
  uint64_t at;                 /* ms: when learned / found absent */
  keyspace_def def;            /* KS_KNOWN (also while re-fetching) */
} ks_entry;

struct cellar_client {
  cellar_options_t opt;        /* hosts, local_dc cleared: borrowed at connect */
  uv_loop_t loop;
  uv_thread_t thread;
  uv_thread_t io_tid;
  uv_async_t wake;
  uv_prepare_t flush;
  uv_timer_t sweep;
  uv_timer_t tick;             /* housekeeping: probes, ring refresh */
  uv_timer_t spec;             /* the timer heap's top */
  int sweep_ms;

  uv_mutex_t lock;             /* guards queue, closing, connect result */
  uv_cond_t cond;
  creq *qhead, *qtail;
  atomic_int closing;
  atomic_size_t outstanding;   /* user requests submitted, not completed */

  /* connect handshake with cellar_connect() (under lock) */
  int connect_done;
  int connect_rc;

  /* I/O thread only */
  int shutting;
  int probing;
  int cur_host;
  creq *dhead, *dtail;
  conn *fhead;                 /* flush list */
  host *hosts;
  int nhosts;
  char peer[320];
  int loop_close_rc;

  /* the node table (note 10): written by the I/O thread under slock */
  uv_mutex_t slock;
  cnode **nodes;               /* nodes[0] is the contact */
  int nnodes, capnodes;

  /* routing state, I/O thread only */
  ring ring;
  int ring_known;
  int *member_node;            /* ring member index -> node index */
  char contact_id[40];         /* the contact's host id ("info") */
  char local_dc[CELLAR_MAX_NAME_BYTES + 1];  /* under slock (stats) */
  int local_dc_given;
  int refreshing;              /* internal ring/status/info requests out */
  int refresh_soon;            /* a connection failed: refresh early */
  uint64_t next_refresh, last_refresh;
  ks_entry **kss;               /* never move: describe callbacks hold them */
  size_t nkss, capkss;
  unsigned spread_rr, any_rr;
  creq **heap;                 /* speculative timers, min-heap on spec_due */
  size_t nheap, capheap;

  /* stats (note 10) */
  atomic_uint_fast64_t st_routed, st_unrouted, st_retries, st_spec, st_spec_wins,
      st_refreshes;
  atomic_size_t st_ring_members;
};

/* A failed build or submission of a sync call: a result carrying it. */
typedef struct cerr {
  int code;
  char msg[256];
} cerr;

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

static creq *build_admin(const char *command, const char *argument, cerr *e);
static creq *build_describe(const char *keyspace, cerr *e);

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

size_t cellar_result_cell_sibling_count(const cellar_result_t *r, size_t row,
                                        size_t cell) {
  const Cellar__Wire__Cell *x = cell_at(r, row, cell);
  return x ? x->n_siblings : 0;
}

int cellar_result_cell_sibling(const cellar_result_t *r, size_t row,
                               size_t cell, size_t i, const void **value,
                               size_t *len, int64_t *timestamp, int *deleted) {
  const Cellar__Wire__Cell *x = cell_at(r, row, cell);
  if (x == NULL || i >= x->n_siblings) return CELLAR_EINVAL;
  const Cellar__Wire__Version *v = x->siblings[i];
  const void *p = bytes_out(&v->value, len);
  if (value) *value = v->deleted ? NULL : p;
  if (len && v->deleted) *len = 0;
  if (timestamp) *timestamp = v->timestamp;
  if (deleted) *deleted = v->deleted != 0;
  return 0;
}

const void *cellar_result_row_context(const cellar_result_t *r, size_t row,
                                      size_t *len) {
  const Cellar__Wire__Row *w = row_at(r, row);
  if (w == NULL || w->context.len == 0) {
    if (len) *len = 0;
    return NULL;
  }
  return bytes_out(&w->context, len);
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
static uint64_t now_us(void) { return uv_hrtime() / 1000u; }

static int on_io_thread(const cellar_client_t *c) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &c->io_tid);
}

static void alist_append(alist *l, attempt *a) {
  a->lnext = NULL;
  a->lprev = l->tail;
  if (l->tail) l->tail->lnext = a;
  else l->head = a;
  l->tail = a;
}

static void alist_remove(alist *l, attempt *a) {
  if (a->lprev) a->lprev->lnext = a->lnext;
  else l->head = a->lnext;
  if (a->lnext) a->lnext->lprev = a->lprev;
  else l->tail = a->lprev;
  a->lprev = a->lnext = NULL;
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
  attempt **nb = calloc(nsize, sizeof *nb);
  if (nb == NULL) return;      /* longer chains, still correct */
  for (size_t i = 0; i <= t->mask; i++) {
    attempt *a = t->b[i];
    while (a) {
      attempt *next = a->hnext;
      size_t j = a->id & (nsize - 1);
      a->hnext = nb[j];
      nb[j] = a;
      a = next;
    }
  }
  free(t->b);
  t->b = nb;
  t->mask = nsize - 1;
}

static attempt *infl_find(const inflight *t, uint32_t id) {
  for (attempt *a = t->b[id & t->mask]; a; a = a->hnext)
    if (a->id == id) return a;
  return NULL;
}

static void infl_insert(inflight *t, attempt *a) {
  if (t->n > t->mask) infl_grow(t);
  attempt **slot = &t->b[a->id & t->mask];
  a->hnext = *slot;
  *slot = a;
  t->n++;
}

static void infl_remove(inflight *t, attempt *a) {
  for (attempt **pp = &t->b[a->id & t->mask]; *pp; pp = &(*pp)->hnext) {
    if (*pp == a) {
      *pp = a->hnext;
      a->hnext = NULL;
      t->n--;
      return;
    }
  }
}

/* Moves every in-flight attempt to l, in no particular order. */
static void infl_drain(inflight *t, alist *l) {
  for (size_t i = 0; i <= t->mask; i++) {
    attempt *a = t->b[i];
    t->b[i] = NULL;
    while (a) {
      attempt *next = a->hnext;
      a->hnext = NULL;
      a->where = RQ_DOOMED;
      alist_append(l, a);
      a = next;
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

#define STAT_ADD(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)

/* ================================================== latency percentiles */

/* Buckets 0..7 hold 0..7 µs exactly; above, 4 buckets per power of two
** (25% resolution, enough to time a speculative read). */
static int lat_bucket(uint64_t us) {
  if (us < 8) return (int)us;
  int b = 63 - __builtin_clzll(us);
  int i = 8 + (b - 3) * 4 + (int)((us >> (b - 2)) & 3);
  return i < LAT_BUCKETS ? i : LAT_BUCKETS - 1;
}

static uint64_t lat_bucket_top(int i) {
  if (i < 8) return (uint64_t)i;
  int b = (i - 8) / 4 + 3, sub = (i - 8) % 4;
  return ((uint64_t)(5 + sub) << (b - 2)) - 1;
}

/* The p-th percentile (0 < p < 100) over both windows; 0 with too few
** samples. */
static uint64_t lat_percentile(const lat_hist *h, double p) {
  uint64_t total = (uint64_t)h->ncur + h->nprev;
  if (total < LAT_MIN_SAMPLES || p <= 0) return 0;
  double exact = (double)total * p / 100.0;   /* rounded up, without libm */
  uint64_t want = (uint64_t)exact, seen = 0;
  if ((double)want < exact) want++;
  if (want == 0) want = 1;
  for (int i = 0; i < LAT_BUCKETS; i++) {
    seen += (uint64_t)h->cur[i] + h->prev[i];
    if (seen >= want) return lat_bucket_top(i);
  }
  return lat_bucket_top(LAT_BUCKETS - 1);
}

static void lat_add(cellar_client_t *c, cnode *n, uint64_t us) {
  lat_hist *h = &n->lat;
  h->cur[lat_bucket(us)]++;
  if (++h->ncur >= LAT_WINDOW) {
    memcpy(h->prev, h->cur, sizeof h->prev);
    h->nprev = h->ncur;
    memset(h->cur, 0, sizeof h->cur);
    h->ncur = 0;
  }
  if (++h->since >= 32 || h->ncur + h->nprev == LAT_MIN_SAMPLES) {
    h->since = 0;
    h->pct_us = lat_percentile(h, c->opt.speculative_percentile);
    atomic_store_explicit(&h->p99_us, lat_percentile(h, 99.0), memory_order_relaxed);
  }
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

/* --- the timer heap of speculative reads (design note 3) --- */

static void heap_set(cellar_client_t *c, size_t i, creq *r) {
  c->heap[i] = r;
  r->hidx = i;
}

static void heap_up(cellar_client_t *c, size_t i) {
  creq *r = c->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (c->heap[p]->spec_due <= r->spec_due) break;
    heap_set(c, i, c->heap[p]);
    i = p;
  }
  heap_set(c, i, r);
}

static void heap_down(cellar_client_t *c, size_t i) {
  creq *r = c->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, m = l + 1, s = i;
    uint64_t best = r->spec_due;
    if (l < c->nheap && c->heap[l]->spec_due < best) {
      s = l;
      best = c->heap[l]->spec_due;
    }
    if (m < c->nheap && c->heap[m]->spec_due < best) s = m;
    if (s == i) break;
    heap_set(c, i, c->heap[s]);
    i = s;
  }
  heap_set(c, i, r);
}

static int heap_push(cellar_client_t *c, creq *r) {
  if (c->nheap == c->capheap) {
    size_t ncap = c->capheap ? c->capheap * 2 : 64;
    creq **nh = realloc(c->heap, ncap * sizeof *nh);
    if (nh == NULL) return CELLAR_ENOMEM;
    c->heap = nh;
    c->capheap = ncap;
  }
  c->heap[c->nheap] = r;
  r->hidx = c->nheap++;
  heap_up(c, r->hidx);
  return 0;
}

static void heap_remove(cellar_client_t *c, creq *r) {
  if (r->hidx == SIZE_MAX) return;
  size_t i = r->hidx;
  r->hidx = SIZE_MAX;
  creq *last = c->heap[--c->nheap];
  if (i == c->nheap) return;
  c->heap[i] = last;
  last->hidx = i;
  heap_down(c, i);
  heap_up(c, last->hidx);
}

static void on_spec(uv_timer_t *t);

/* Arms the speculative timer for the heap's top. */
static void spec_arm(cellar_client_t *c) {
  if (c->shutting) return;
  if (c->nheap == 0) {
    uv_timer_stop(&c->spec);
    return;
  }
  uint64_t due = c->heap[0]->spec_due, now = now_ms();
  uv_timer_start(&c->spec, on_spec, due > now ? due - now : 0, 0);
}

/* --- attempts --- */

static int live_attempts(const creq *r) {
  return (r->at[0].r != NULL) + (r->at[1].r != NULL);
}

/* Takes an attempt off its connection's lists; the slot becomes free. */
static void attempt_unlink(attempt *a) {
  switch (a->where) {
  case RQ_WAITING: alist_remove(&a->k->waiting, a); break;
  case RQ_DOOMED: alist_remove(&a->k->doomed, a); break;
  case RQ_INFLIGHT: infl_remove(&a->k->infl, a); break;
  default: break;
  }
  a->where = RQ_NONE;
  a->k = NULL;
  a->r = NULL;
}

static void req_unlink(cellar_client_t *c, creq *r) {
  dl_remove(c, r);
  heap_remove(c, r);
  for (int i = 0; i < 2; i++)
    if (r->at[i].r) attempt_unlink(&r->at[i]);
  r->where = RQ_NONE;
}

/* Design note 2: the one way a request ends. */
static void req_complete(cellar_client_t *c, creq *r, cellar_result_t *res) {
  req_unlink(c, r);
  if (!r->internal) atomic_fetch_sub(&c->outstanding, 1);
  int hands_off = r->hands_off;
  r->cb(res->code, res, r->arg);
  if (!hands_off) cellar_result_free(res);
  free(r);
}

static void req_fail(cellar_client_t *c, creq *r, int code, const char *msg) {
  req_complete(c, r, result_error(code, "%s", msg));
}

static cnode *route(cellar_client_t *c, creq *r, int mode);
static int node_usable(const cnode *n);
static void attempt_start(cellar_client_t *c, creq *r, cnode *n, int speculative);
static void ks_forget(cellar_client_t *c, const char *name);

/* Outcomes worth another node: the connection failed (from_conn), or the
** coordinator answered that its replicas did not (timed out, or their
** connection failed: ECLOSED / ECONNECT in an answer) or that it is
** stopping. Unavailable, invalid requests and the like are final. */
static int retryable(int code, int from_conn) {
  if (from_conn) return code == CELLAR_ECLOSED || code == CELLAR_ECONNECT;
  /* ESTARTING: the node did nothing with the request (it has not learned
  ** the ring yet), so even a write is safe to send elsewhere */
  return code == CELLAR_ETIMEDOUT || code == CELLAR_ESHUTDOWN || code == CELLAR_ECLOSED ||
         code == CELLAR_ECONNECT || code == CELLAR_ESTARTING;
}

/* Each kind of failure is retried once: a lost connection (the node died
** or cannot be reached: the request never got an answer from it) and a
** coordinator's failure (its replicas did not answer: with a node just
** killed, the coordinators still count it alive until their failure
** detectors convict it, and the retry of a request whose first node died
** can meet exactly that). So a request is sent at most three times, plus
** a speculative copy, and never after its deadline. */
static int retry_allowed(const creq *r, int from_conn) {
  if (r->ntried >= CLIENT_MAX_TRIES) return 0;
  if (r->deadline && now_ms() >= r->deadline) return 0;
  return from_conn ? !r->retried_conn : !r->retried_timeout;
}

/* Design note 2: an attempt ended with res (owned here). */
static void attempt_end(cellar_client_t *c, attempt *a, cellar_result_t *res, int from_conn) {
  creq *r = a->r;
  int spec = a->speculative;
  cnode *prev = a->k ? a->k->n : NULL;
  if (!c->shutting && r->kind != RK_OTHER && retryable(res->code, from_conn)) {
    attempt_unlink(a);
    if (live_attempts(r) > 0) {        /* the other copy may still answer */
      cellar_result_free(res);
      return;
    }
    if (retry_allowed(r, from_conn)) {
      r->retried++;
      if (from_conn) r->retried_conn = 1;
      else r->retried_timeout = 1;
      STAT_ADD(c->st_retries);
      /* A coordinator that answered "a replica's connection failed" now
      ** counts that replica down; another coordinator may not know yet
      ** (it learns when its own connection fails). So that retry goes to
      ** the same node; the others go to another node. */
      int same = !from_conn && (res->code == CELLAR_ECLOSED || res->code == CELLAR_ECONNECT) &&
                 prev && node_usable(prev);
      attempt_start(c, r, same ? prev : route(c, r, 1), 0);
      cellar_result_free(res);
      return;
    }
    req_complete(c, r, res);
    return;
  }
  if (r->kind != RK_OTHER && res->code == CELLAR_ENOKEYSPACE) ks_forget(c, r->keyspace);
  if (spec) STAT_ADD(c->st_spec_wins);
  req_complete(c, r, res);
}

static void alist_fail(cellar_client_t *c, alist *l, int code, const char *msg) {
  while (l->head) attempt_end(c, l->head, result_error(code, "%s", msg), 1);
}

/* Sends the speculative copy of a read whose timer fired. */
static void spec_fire(cellar_client_t *c, creq *r) {
  if (c->shutting || r->speculated || live_attempts(r) != 1) return;
  if (r->deadline && now_ms() >= r->deadline) return;
  cnode *n = route(c, r, 2);
  if (n == NULL) return;
  r->speculated = 1;
  STAT_ADD(c->st_spec);
  attempt_start(c, r, n, 1);
}

static void on_spec(uv_timer_t *t) {
  cellar_client_t *c = t->data;
  uint64_t now = now_ms();
  while (c->nheap && c->heap[0]->spec_due <= now) {
    creq *r = c->heap[0];
    heap_remove(c, r);
    spec_fire(c, r);
  }
  spec_arm(c);
}

/* The speculative delay for a read sent to n, in ms; 0 = none. */
static uint64_t spec_delay(const cellar_client_t *c, const cnode *n) {
  if (c->opt.speculative_percentile > 0 && n->lat.pct_us > 0)
    return n->lat.pct_us / 1000 + 1;
  return c->opt.speculative_read_ms > 0 ? (uint64_t)c->opt.speculative_read_ms : 0;
}
/* ========================================================= connections */

static void conn_connect(conn *k);
static void on_conn_closed(uv_handle_t *h);
static void probe_done(cellar_client_t *c, int rc);

/* Design note 6: the router's view of a node after a failed connection. */
static void node_failed(cellar_client_t *c, cnode *n, int code) {
  if (c->probing || c->shutting) return;
  if (code != CELLAR_ECONNECT && code != CELLAR_ECLOSED) return;
  uv_mutex_lock(&c->slock);
  if (!n->down) {
    n->down = 1;
    n->backoff_ms = CLIENT_BACKOFF_MIN_MS;
  } else if (code == CELLAR_ECONNECT && n->backoff_ms < CLIENT_BACKOFF_MAX_MS) {
    n->backoff_ms *= 2;
  }
  uv_mutex_unlock(&c->slock);
  n->retry_at = now_ms() + n->backoff_ms;
  c->refresh_soon = 1;
}

static void node_reachable(cellar_client_t *c, cnode *n) {
  if (!n->down) return;
  uv_mutex_lock(&c->slock);
  n->down = 0;
  n->backoff_ms = 0;
  uv_mutex_unlock(&c->slock);
}

static void conn_fail(conn *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts closing a connection (CONNECTING or UP). Its attempts fail in
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
    attempt *a = k->waiting.head;
    alist_remove(&k->waiting, a);
    a->where = RQ_DOOMED;
    alist_append(&k->doomed, a);
  }
  k->out.len = 0;
  node_failed(k->c, k->n, code);
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
    alist_fail(c, &k->doomed, CELLAR_ESHUTDOWN, "client closed");
    alist_fail(c, &k->waiting, CELLAR_ESHUTDOWN, "client closed");
    return;
  }
  for (attempt *a = k->doomed.head; a; a = a->lnext)
    if (!a->r->internal) atomic_fetch_add_explicit(&k->n->nfail, 1, memory_order_relaxed);
  alist_fail(c, &k->doomed, k->fail_code, k->fail_msg);
  if (c->probing && k->n->idx == 0 && k->index == 0) {
    c->cur_host++;
    if (c->cur_host < c->nhosts) {
      const host *hp = &c->hosts[c->cur_host];
      cnode *n = k->n;
      snprintf(n->name, sizeof n->name, "%s", hp->name);
      n->addr = hp->addr;
      n->resolved = hp->resolved;
      snprintf(n->resolve_err, sizeof n->resolve_err, "%s", hp->resolve_err);
      conn_connect(k);
    } else {
      probe_done(c, CELLAR_ECONNECT);
    }
    return;
  }
  /* Attempts routed here while it was closing: reopen lazily for them. */
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
    conn_fail(k, CELLAR_ECLOSED, "connection to %s lost: %s", k->n->name, uv_strerror(n));
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
    conn_fail(k, CELLAR_ECLOSED, "connection to %s lost: %s", k->n->name, uv_strerror(rc));
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
      conn_fail(k, CELLAR_ECLOSED, "connection to %s lost: %s", k->n->name,
                uv_strerror(status));
    return;
  }
  conn_flush(k);
}

static void on_flush(uv_prepare_t *p) {
  cellar_client_t *c = p->data;
  conn *k = c->fhead;
  c->fhead = NULL;
  while (k) {
    conn *next = k->fnext;
    k->fnext = NULL;
    k->flushq = 0;
    conn_flush(k);
    k = next;
  }
  uv_prepare_stop(p);
}

/* Assigns an id and queues the frame for the next flush. */
static void conn_send(conn *k, attempt *a) {
  creq *r = a->r;
  uint32_t id;
  do {
    id = k->next_id++;
  } while (id == 0 || infl_find(&k->infl, id) != NULL);
  a->id = id;
  a->sent_us = now_us();
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, r->type, 0, id,
                    (uint32_t)(r->flen - FRAME_HEADER_SIZE)};
  frame_header_encode(&h, r->frame);
  a->where = RQ_INFLIGHT;
  infl_insert(&k->infl, a);
  if (obuf_append(&k->out, r->frame, r->flen) != 0) {
    /* No memory for the output buffer: give up the connection; this
    ** attempt and the others in flight on it fail in on_conn_closed. */
    conn_fail(k, CELLAR_ENOMEM, "out of memory queueing a request to %s", k->n->name);
    return;
  }
  if (!k->flushq) {
    k->flushq = 1;
    k->fnext = k->c->fhead;
    k->c->fhead = k;
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
  attempt *a = infl_find(&k->infl, h->request_id);
  if (a == NULL) return 0;                           /* ended already */
  creq *r = a->r;
  cellar_result_t *res;
  if (h->type != r->type) {
    res = result_error(CELLAR_EPROTO, "server answered a %s request with a %s frame",
                       frame_type_name(r->type), frame_type_name(h->type));
  } else {
    Cellar__Wire__Response *pb = cellar__wire__response__unpack(NULL, h->length, payload);
    if (pb == NULL)
      res = result_error(CELLAR_EPROTO, "malformed %s response from %s",
                         frame_type_name(r->type), k->n->name);
    else
      res = result_wrap(pb);
  }
  if (r->kind == RK_READ && res->code == 0) {
    uint64_t now = now_us();
    lat_add(c, k->n, now > a->sent_us ? now - a->sent_us : 0);
  }
  attempt_end(c, a, res, 0);
  return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *k = s->data;
  if (n > 0) {
    int rc = frame_reader_feed(&k->reader, (const uint8_t *)buf->base, (size_t)n,
                               on_frame, k, NULL);
    if (rc < 0)
      conn_fail(k, CELLAR_EPROTO, "bad frame from %s: %s", k->n->name,
                cellar_strerror(rc));
  } else if (n < 0) {
    conn_fail(k, CELLAR_ECLOSED, "connection to %s closed: %s", k->n->name,
              n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
  }
}

static void on_connect(uv_connect_t *req, int status) {
  conn *k = req->data;
  cellar_client_t *c = k->c;
  if (k->state != CONN_CONNECTING) return;    /* cancelled by conn_fail */
  const char *addr = k->n->name;
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
  node_reachable(c, k->n);
  while (k->waiting.head) {
    attempt *a = k->waiting.head;
    alist_remove(&k->waiting, a);
    conn_send(k, a);
  }
  if (c->probing && k->n->idx == 0 && k->index == 0) probe_done(c, 0);
}

static void on_connect_timeout(uv_timer_t *t) {
  conn *k = t->data;
  conn_fail(k, CELLAR_ECONNECT, "cannot connect to %s: timed out after %d ms",
            k->n->name, k->c->opt.connect_timeout_ms);
}

/* DOWN -> CONNECTING. Never fails synchronously: an error goes through
** conn_fail and the close callback. */
static void conn_connect(conn *k) {
  cellar_client_t *c = k->c;
  const cnode *n = k->n;
  /* With AF_UNSPEC uv_tcp_init creates no socket and cannot fail. */
  uv_tcp_init(&c->loop, &k->tcp);
  k->tcp.data = k;
  k->state = CONN_CONNECTING;
  k->creq.data = k;
  uv_tcp_nodelay(&k->tcp, 1);
  if (k->rbuf == NULL) k->rbuf = malloc(CLIENT_READ_BUF);   /* lazily: pools */
  if (k->rbuf == NULL) {
    conn_fail(k, CELLAR_ENOMEM, "out of memory connecting to %s", n->name);
    return;
  }
  if (!n->resolved) {
    conn_fail(k, CELLAR_ECONNECT, "cannot resolve %s: %s", n->name, n->resolve_err);
    return;
  }
  int rc = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&n->addr, on_connect);
  if (rc != 0) {
    conn_fail(k, CELLAR_ECONNECT, "cannot connect to %s: %s", n->name, uv_strerror(rc));
    return;
  }
  uv_timer_start(&k->ctimer, on_connect_timeout, (uint64_t)c->opt.connect_timeout_ms, 0);
}

/* Sends an attempt of r to node n: a free slot, the node's next
** connection (round-robin), the speculative timer of a first read. */
static void attempt_start(cellar_client_t *c, creq *r, cnode *n, int speculative) {
  attempt *a = r->at[0].r == NULL ? &r->at[0] : &r->at[1];
  memset(a, 0, sizeof *a);
  a->r = r;
  a->speculative = speculative;
  if (r->ntried < CLIENT_MAX_TRIES) r->tried[r->ntried++] = n->idx;
  if (!r->internal) atomic_fetch_add_explicit(&n->nreq, 1, memory_order_relaxed);
  conn *k = &n->conns[n->rr++ % (unsigned)c->opt.connections];
  a->k = k;
  if (k->state == CONN_UP) {
    conn_send(k, a);
  } else {
    a->where = RQ_WAITING;
    alist_append(&k->waiting, a);
    if (k->state == CONN_DOWN) conn_connect(k);
  }
  if (r->kind == RK_READ && !speculative && !r->speculated && r->hidx == SIZE_MAX &&
      r->ntried == 1) {
    uint64_t d = spec_delay(c, n);
    if (d > 0) {
      r->spec_due = now_ms() + d;
      if (heap_push(c, r) == 0 && r->hidx == 0) spec_arm(c);
    }
  }
}
/* ================================================================ nodes */

static void conn_init(cellar_client_t *c, cnode *n, conn *k, int index) {
  k->c = c;
  k->n = n;
  k->index = index;
  k->next_id = 1;
  k->wreq.data = k;
  frame_reader_init(&k->reader, CLIENT_MAX_RESPONSE);
}

static void node_free(cellar_client_t *c, cnode *n) {
  if (n == NULL) return;
  for (int i = 0; n->conns && i < c->opt.connections; i++) {
    conn *k = &n->conns[i];
    free(k->rbuf);
    free(k->out.p);
    free(k->wbuf.p);
    free(k->infl.b);
    frame_reader_close(&k->reader);
  }
  free(n->conns);
  free(n);
}

/* A new node at the end of the table (its connect timers are initialised
** on the loop: call it before the I/O thread runs, or on it). NULL when
** out of memory or the table is full. */
static cnode *node_new(cellar_client_t *c, const char *name) {
  if (c->nnodes >= CLIENT_MAX_NODES) return NULL;
  cnode *n = calloc(1, sizeof *n);
  if (n == NULL) return NULL;
  n->conns = calloc((size_t)c->opt.connections, sizeof *n->conns);
  if (n->conns == NULL) {
    free(n);
    return NULL;
  }
  for (int i = 0; i < c->opt.connections; i++) {
    conn_init(c, n, &n->conns[i], i);
    if (infl_init(&n->conns[i].infl) != 0) {
      node_free(c, n);
      return NULL;
    }
  }
  snprintf(n->name, sizeof n->name, "%s", name);
  n->ring_up = 1;
  atomic_init(&n->nreq, 0);
  atomic_init(&n->nfail, 0);
  uv_mutex_lock(&c->slock);
  if (c->nnodes == c->capnodes) {
    int ncap = c->capnodes ? c->capnodes * 2 : 8;
    cnode **nn = realloc(c->nodes, (size_t)ncap * sizeof *nn);
    if (nn == NULL) {
      uv_mutex_unlock(&c->slock);
      node_free(c, n);
      return NULL;
    }
    c->nodes = nn;
    c->capnodes = ncap;
  }
  n->idx = c->nnodes;
  c->nodes[c->nnodes++] = n;
  uv_mutex_unlock(&c->slock);
  for (int i = 0; i < c->opt.connections; i++) {
    uv_timer_init(&c->loop, &n->conns[i].ctimer);
    n->conns[i].ctimer.data = &n->conns[i];
  }
  return n;
}

/* "1.2.3.4:7400" / "[::1]:7400" -> sockaddr, numeric only: the ring's
** addresses are the nodes' listen addresses, and the loop must not block
** on a resolver. 0 or -1. */
static int parse_numeric_addr(const char *s, struct sockaddr_storage *out) {
  char buf[80];
  size_t len = strlen(s);
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len + 1);
  char *hostp = buf, *portp;
  if (buf[0] == '[') {
    char *rb = strchr(buf, ']');
    if (rb == NULL || rb[1] != ':') return -1;
    *rb = '\0';
    hostp = buf + 1;
    portp = rb + 2;
  } else {
    char *colon = strrchr(buf, ':');
    if (colon == NULL) return -1;
    *colon = '\0';
    portp = colon + 1;
  }
  char *end;
  long port = strtol(portp, &end, 10);
  if (*portp == '\0' || *end != '\0' || port <= 0 || port > 65535) return -1;
  memset(out, 0, sizeof *out);
  if (uv_ip4_addr(hostp, (int)port, (struct sockaddr_in *)out) == 0) {
    if (((struct sockaddr_in *)out)->sin_addr.s_addr == 0) return -1;   /* 0.0.0.0 */
    return 0;
  }
  if (uv_ip6_addr(hostp, (int)port, (struct sockaddr_in6 *)out) == 0) return 0;
  return -1;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return 0;
}

static int node_idle(const cellar_client_t *c, const cnode *n) {
  for (int i = 0; i < c->opt.connections; i++)
    if (n->conns[i].state != CONN_DOWN) return 0;
  return 1;
}

/* The node of a ring member, found by host id, else (the contact's id may
** not be known yet) by address; created when new. Its fields are written
** under slock (the stats read them). -1 when out of memory. */
static int node_for_member(cellar_client_t *c, const char *host_id, const char *addr,
                           const char *dc, const char *rack, int up) {
  cnode *n = NULL;
  struct sockaddr_storage sa;
  int parsed = parse_numeric_addr(addr, &sa) == 0;
  if (c->contact_id[0] && strcmp(c->contact_id, host_id) == 0) n = c->nodes[0];
  for (int i = 0; n == NULL && i < c->nnodes; i++)
    if (strcmp(c->nodes[i]->host_id, host_id) == 0) n = c->nodes[i];
  for (int i = 0; n == NULL && parsed && i < c->nnodes; i++)
    if (c->nodes[i]->host_id[0] == '\0' && c->nodes[i]->resolved &&
        same_addr(&c->nodes[i]->addr, &sa))
      n = c->nodes[i];
  if (n == NULL) {
    n = node_new(c, addr);
    if (n == NULL) return -1;
    uv_mutex_lock(&c->slock);
    if (parsed) {
      n->addr = sa;
      n->resolved = 1;
    } else {
      snprintf(n->resolve_err, sizeof n->resolve_err,
               "the ring gives no usable numeric address");
    }
  } else {
    uv_mutex_lock(&c->slock);
    if (n->idx != 0 && strcmp(n->name, addr) != 0 && parsed && node_idle(c, n)) {
      /* a member restarted on another address */
      snprintf(n->name, sizeof n->name, "%s", addr);
      n->addr = sa;
      n->resolved = 1;
    }
  }
  snprintf(n->host_id, sizeof n->host_id, "%s", host_id);
  snprintf(n->dc, sizeof n->dc, "%s", dc);
  snprintf(n->rack, sizeof n->rack, "%s", rack);
  n->in_ring = 1;
  n->ring_up = up;
  uv_mutex_unlock(&c->slock);
  return n->idx;
}

/* ============================================================ the ring */

typedef struct ring_row {
  char host_id[40];
  char addr[80];
  char dc[CELLAR_MAX_NAME_BYTES + 1];
  char rack[CELLAR_MAX_NAME_BYTES + 1];
  int up;
  int64_t *tokens;
  size_t ntokens, cap;
} ring_row;

/* Splits "host_id address dc rack up|down" (the address may be empty) into
** exactly 5 fields. 0 or -1. */
static int split_ring_value(const char *v, ring_row *out) {
  const char *f[5];
  size_t len[5];
  int n = 0;
  const char *p = v;
  for (;;) {
    const char *sp = strchr(p, ' ');
    if (n == 5) return -1;
    f[n] = p;
    len[n] = sp ? (size_t)(sp - p) : strlen(p);
    n++;
    if (sp == NULL) break;
    p = sp + 1;
  }
  if (n != 5 || len[0] == 0 || len[0] >= sizeof out->host_id || len[1] >= sizeof out->addr ||
      len[2] >= sizeof out->dc || len[3] >= sizeof out->rack)
    return -1;
  memcpy(out->host_id, f[0], len[0]);
  out->host_id[len[0]] = '\0';
  memcpy(out->addr, f[1], len[1]);
  out->addr[len[1]] = '\0';
  memcpy(out->dc, f[2], len[2]);
  out->dc[len[2]] = '\0';
  memcpy(out->rack, f[3], len[3]);
  out->rack[len[3]] = '\0';
  out->up = len[4] == 2 && memcmp(f[4], "up", 2) == 0;
  return 0;
}

static void update_local_dc(cellar_client_t *c) {
  if (c->local_dc_given || c->local_dc[0]) return;
  const cnode *n0 = c->nodes[0];
  if (n0->in_ring && n0->dc[0]) {
    uv_mutex_lock(&c->slock);
    snprintf(c->local_dc, sizeof c->local_dc, "%s", n0->dc);
    uv_mutex_unlock(&c->slock);
  }
}

/* Builds the client's ring from an ADMIN "ring" answer: info pairs token
** -> "host_id address dc rack up|down". A malformed answer keeps the old
** ring. */
static void apply_ring(cellar_client_t *c, const cellar_result_t *res) {
  size_t ninfo = cellar_result_info_count(res);
  ring_row *rows = NULL;
  size_t nrows = 0, caprows = 0;
  int bad = ninfo == 0;
  for (size_t i = 0; i < ninfo && !bad; i++) {
    const char *k = cellar_result_info_key(res, i), *v = cellar_result_info_value(res, i);
    char *end;
    errno = 0;
    long long t = strtoll(k ? k : "", &end, 10);
    ring_row row;
    memset(&row, 0, sizeof row);
    if (k == NULL || v == NULL || *k == '\0' || *end != '\0' || errno ||
        split_ring_value(v, &row) != 0) {
      bad = 1;
      break;
    }
    size_t j = 0;
    while (j < nrows && strcmp(rows[j].host_id, row.host_id) != 0) j++;
    if (j == nrows) {
      if (nrows == caprows) {
        size_t ncap = caprows ? caprows * 2 : 16;
        ring_row *nr = realloc(rows, ncap * sizeof *nr);
        if (nr == NULL) {
          bad = 1;
          break;
        }
        rows = nr;
        caprows = ncap;
      }
      rows[nrows++] = row;
    }
    ring_row *m = &rows[j];
    if (m->ntokens == m->cap) {
      size_t ncap = m->cap ? m->cap * 2 : 16;
      int64_t *nt = realloc(m->tokens, ncap * sizeof *nt);
      if (nt == NULL) {
        bad = 1;
        break;
      }
      m->tokens = nt;
      m->cap = ncap;
    }
    m->tokens[m->ntokens++] = (int64_t)t;
  }
  ring nr;
  ring_init(&nr);
  int *map = bad ? NULL : malloc((nrows + 1) * sizeof *map);
  if (map == NULL) bad = 1;
  for (size_t j = 0; j < nrows && !bad; j++) {
    int idx = ring_add(&nr, rows[j].host_id, rows[j].dc, rows[j].rack, rows[j].tokens,
                       rows[j].ntokens);
    if (idx == CELLAR_ENOMEM) bad = 1;
    if (idx < 0) continue;     /* a token taken twice: the views disagree */
    map[idx] = node_for_member(c, rows[j].host_id, rows[j].addr, rows[j].dc, rows[j].rack,
                               rows[j].up);
  }
  for (size_t j = 0; j < nrows; j++) free(rows[j].tokens);
  free(rows);
  if (bad) {
    ring_free(&nr);
    free(map);
    return;
  }
  /* members that left the ring */
  uv_mutex_lock(&c->slock);
  for (int i = 0; i < c->nnodes; i++) {
    cnode *n = c->nodes[i];
    int found = 0;
    for (size_t j = 0; j < nr.nmembers && !found; j++) found = map[j] == i;
    if (!found) n->in_ring = 0;
  }
  uv_mutex_unlock(&c->slock);
  ring_free(&c->ring);
  c->ring = nr;
  free(c->member_node);
  c->member_node = map;
  c->ring_known = nr.nmembers > 0;
  atomic_store(&c->st_ring_members, nr.nmembers);
  STAT_ADD(c->st_refreshes);
  update_local_dc(c);
}

/* ====================================================== keyspace cache */

static void on_describe_answer(int status, cellar_result_t *res, void *arg);
static int internal_send(cellar_client_t *c, creq *r, cellar_callback_t cb, void *arg);

static void ks_fetch(cellar_client_t *c, ks_entry *e) {
  cerr err = {0, ""};
  creq *r = build_describe(e->name, &err);
  e->fetching = 1;
  if (r == NULL || internal_send(c, r, on_describe_answer, e) != 0) {
    e->fetching = 0;
    e->at = now_ms();
    if (e->state == KS_FETCHING) e->state = KS_ABSENT;
  }
}

/* The replication of a keyspace, or NULL while it is not known (the
** first use asks for it). */
static const keyspace_def *ks_lookup(cellar_client_t *c, const char *name) {
  ks_entry *e = NULL;
  for (size_t i = 0; i < c->nkss && e == NULL; i++)
    if (strcmp(c->kss[i]->name, name) == 0) e = c->kss[i];
  uint64_t now = now_ms();
  if (e == NULL) {
    if (c->nkss >= CLIENT_MAX_KEYSPACES) return NULL;
    if (c->nkss == c->capkss) {
      size_t ncap = c->capkss ? c->capkss * 2 : 8;
      ks_entry **nk = realloc(c->kss, ncap * sizeof *nk);
      if (nk == NULL) return NULL;
      c->kss = nk;
      c->capkss = ncap;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    c->kss[c->nkss++] = e;
    e->c = c;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->state = KS_FETCHING;
    ks_fetch(c, e);
    return NULL;
  }
  if (e->state == KS_KNOWN) {
    if (!e->fetching && now - e->at > CLIENT_KS_REFRESH_MS) ks_fetch(c, e);
    return &e->def;
  }
  if (e->state == KS_ABSENT && !e->fetching && now - e->at > CLIENT_KS_ABSENT_MS)
    ks_fetch(c, e);
  return NULL;
}

static void ks_forget(cellar_client_t *c, const char *name) {
  for (size_t i = 0; i < c->nkss; i++)
    if (strcmp(c->kss[i]->name, name) == 0 && c->kss[i]->state == KS_KNOWN) {
      c->kss[i]->state = KS_ABSENT;
      c->kss[i]->at = 0;       /* ask again at the next use */
    }
}

/* keyspace_def from a describe answer's replication. 0 or -1. */
static int ks_from_pb(const Cellar__Wire__KeyspaceDef *kd, keyspace_def *out) {
  const Cellar__Wire__Replication *rp = kd->replication;
  if (rp == NULL) return -1;
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", kd->name ? kd->name : "");
  if (rp->strategy && strcmp(rp->strategy, "NetworkTopologyStrategy") == 0) {
    out->strategy = REPL_NETWORK_TOPOLOGY;
    for (size_t i = 0; i < rp->n_datacenters && out->ndcs < SCHEMA_DC_MAX; i++) {
      const char *dc = rp->datacenters[i]->key ? rp->datacenters[i]->key : "";
      if (strlen(dc) > SCHEMA_NAME_MAX) continue;
      snprintf(out->dcs[out->ndcs].name, sizeof out->dcs[0].name, "%s", dc);
      out->dcs[out->ndcs].rf = rp->datacenters[i]->value;
      out->ndcs++;
    }
  } else {
    out->strategy = REPL_SIMPLE;
    out->rf = rp->replication_factor;
  }
  return 0;
}

static void on_describe_answer(int status, cellar_result_t *res, void *arg) {
  ks_entry *e = arg;
  cellar_client_t *c = e->c;
  e->fetching = 0;
  if (c->shutting) return;
  uint64_t now = now_ms();
  if (status == 0 && res->pb) {
    for (size_t i = 0; i < res->pb->n_keyspaces; i++) {
      const Cellar__Wire__KeyspaceDef *kd = res->pb->keyspaces[i];
      if (kd->name && strcmp(kd->name, e->name) == 0 && ks_from_pb(kd, &e->def) == 0) {
        e->state = KS_KNOWN;
        e->at = now;
        return;
      }
    }
    status = CELLAR_ENOKEYSPACE;
  }
  /* unknown, or the answer was lost: keep a known definition and ask
  ** again later */
  if (e->state != KS_KNOWN || status == CELLAR_ENOKEYSPACE) e->state = KS_ABSENT;
  e->at = now;
}

/* ============================================================= routing */

static int node_usable(const cnode *n) {
  return n->resolved && !n->down && n->ring_up;
}

static int was_tried(const creq *r, int idx) {
  for (int i = 0; i < r->ntried; i++)
    if (r->tried[i] == idx) return 1;
  return 0;
}

static int is_local_level(int cl) {
  return cl == CELLAR_CL_LOCAL_ONE || cl == CELLAR_CL_LOCAL_QUORUM;
}

/* A usable node: the contact first, then ring members of the local
** datacenter, then the others (round-robin), skipping the nodes r was
** already sent to unless any_tried. NULL when none. */
static cnode *pick_usable(cellar_client_t *c, creq *r, int any_tried) {
  cnode *n0 = c->nodes[0];
  if (node_usable(n0) && (any_tried || !was_tried(r, 0))) return n0;
  int nn = c->nnodes;
  unsigned start = c->any_rr++;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < nn; i++) {
      cnode *n = c->nodes[(start + (unsigned)i) % (unsigned)nn];
      if (n->idx == 0 || !n->in_ring || !node_usable(n) || (!any_tried && was_tried(r, n->idx)))
        continue;
      int local = !c->local_dc[0] || strcmp(n->dc, c->local_dc) == 0;
      if (pass == 0 && !local) continue;
      if (pass == 1 && (local || is_local_level(r->cl))) continue;
      return n;
    }
  return NULL;
}

/* A node for a request tied to no key (or whose replicas are all out of
** reach). Mode 0: first attempt; 1: retry (a node not tried yet, else a
** usable one tried before: coordinators change their minds as their
** failure detectors do); 2: speculative copy (a node not tried yet, or
** NULL). Modes 0 and 1 fall back on the contact when nothing is usable:
** never fail without trying. */
static cnode *route_any(cellar_client_t *c, creq *r, int mode) {
  cnode *n = pick_usable(c, r, 0);
  if (n || mode == 2) return n;
  if (mode == 1 && (n = pick_usable(c, r, 1)) != NULL) return n;
  return c->nodes[0];
}

/* A usable replica of r's key, or NULL. */
static cnode *route_replica(cellar_client_t *c, creq *r, const keyspace_def *ks, int mode) {
  uint32_t reps[CLIENT_MAX_REPLICAS];
  size_t nrep = ring_replicas(&c->ring, ks, r->token, reps, CLIENT_MAX_REPLICAS);
  cnode *local[CLIENT_MAX_REPLICAS], *remote = NULL;
  size_t nlocal = 0;
  for (size_t i = 0; i < nrep; i++) {
    int ni = c->member_node[reps[i]];
    if (ni < 0) continue;
    cnode *n = c->nodes[ni];
    if (!node_usable(n) || (mode && was_tried(r, ni))) continue;
    const char *dc = c->ring.members[reps[i]].dc;
    if (!c->local_dc[0] || strcmp(dc, c->local_dc) == 0) local[nlocal++] = n;
    else if (remote == NULL) remote = n;
  }
  if (nlocal > 0) {
    if (c->opt.routing == CELLAR_ROUTE_SPREAD) return local[c->spread_rr++ % nlocal];
    for (size_t i = 0; i < nlocal; i++)
      if (local[i]->idx == 0) return local[i];
    return local[0];
  }
  /* LOCAL_* levels are counted in the coordinator's datacenter: never
  ** hand them to a remote one */
  if (remote && !is_local_level(r->cl)) return remote;
  return NULL;
}

/* Where an attempt of r goes (mode as route_any's). Never NULL in modes 0
** and 1: when nothing is known or usable, the contact. */
static cnode *route(cellar_client_t *c, creq *r, int mode) {
  if (r->kind != RK_OTHER && c->opt.routing != CELLAR_ROUTE_NONE && c->ring_known) {
    const keyspace_def *ks = ks_lookup(c, r->keyspace);
    if (ks) {
      cnode *n = route_replica(c, r, ks, mode);
      if (n) {
        if (mode == 0) STAT_ADD(c->st_routed);
        return n;
      }
    }
  }
  if (mode == 0 && r->kind != RK_OTHER) STAT_ADD(c->st_unrouted);
  return route_any(c, r, mode);
}

/* ===================================================== ring refreshes */

static void dispatch(cellar_client_t *c, creq *r);

/* Sends one of the client's own requests (design note 9). */
static int internal_send(cellar_client_t *c, creq *r, cellar_callback_t cb, void *arg) {
  if (c->shutting) {
    free(r);
    return CELLAR_ESHUTDOWN;
  }
  r->internal = 1;
  r->cb = cb;
  r->arg = arg;
  int ms = c->opt.request_timeout_ms > 0 ? c->opt.request_timeout_ms
                                         : CLIENT_INTERNAL_TIMEOUT_MS;
  r->deadline = now_ms() + (uint64_t)ms;
  dispatch(c, r);
  return 0;
}

static void on_ring_answer(int status, cellar_result_t *res, void *arg) {
  cellar_client_t *c = arg;
  c->refreshing--;
  if (c->shutting || status != 0) return;
  apply_ring(c, res);
}

static void on_info_answer(int status, cellar_result_t *res, void *arg) {
  cellar_client_t *c = arg;
  c->refreshing--;
  if (c->shutting || status != 0) return;
  for (size_t i = 0; i < cellar_result_info_count(res); i++)
    if (strcmp(cellar_result_info_key(res, i), "node.id") == 0) {
      const char *id = cellar_result_info_value(res, i);
      if (id == NULL || *id == '\0' || strlen(id) >= sizeof c->contact_id) return;
      snprintf(c->contact_id, sizeof c->contact_id, "%s", id);
      uv_mutex_lock(&c->slock);
      snprintf(c->nodes[0]->host_id, sizeof c->nodes[0]->host_id, "%s", id);
      uv_mutex_unlock(&c->slock);
      return;
    }
}

/* The contact is not on the ring (joining): its datacenter from "status". */
static void on_status_answer(int status, cellar_result_t *res, void *arg) {
  cellar_client_t *c = arg;
  c->refreshing--;
  if (c->shutting || status != 0 || c->local_dc_given || c->local_dc[0]) return;
  for (size_t i = 0; i < cellar_result_member_count(res); i++) {
    cellar_member_t m;
    if (cellar_result_member(res, i, &m) != 0 || m.host_id == NULL || m.datacenter == NULL)
      continue;
    if (strcmp(m.host_id, c->contact_id) == 0 && *m.datacenter &&
        strlen(m.datacenter) <= CELLAR_MAX_NAME_BYTES) {
      uv_mutex_lock(&c->slock);
      snprintf(c->local_dc, sizeof c->local_dc, "%s", m.datacenter);
      uv_mutex_unlock(&c->slock);
    }
  }
}

static void refresh_send(cellar_client_t *c, const char *cmd, cellar_callback_t cb) {
  cerr e = {0, ""};
  creq *r = build_admin(cmd, NULL, &e);
  if (r && internal_send(c, r, cb, c) == 0) c->refreshing++;
}

static void refresh_start(cellar_client_t *c) {
  uint64_t now = now_ms();
  c->last_refresh = now;
  c->next_refresh = now + CLIENT_REFRESH_MS;
  c->refresh_soon = 0;
  if (c->contact_id[0] == '\0') refresh_send(c, "info", on_info_answer);
  refresh_send(c, "ring", on_ring_answer);
  if (c->contact_id[0] && !c->local_dc_given && !c->local_dc[0] && c->ring_known &&
      !c->nodes[0]->in_ring)
    refresh_send(c, "status", on_status_answer);
}

/* Housekeeping (design note 6): reconnect probes, ring refreshes. */
static void on_tick(uv_timer_t *t) {
  cellar_client_t *c = t->data;
  if (c->shutting) return;
  uint64_t now = now_ms();
  for (int i = 0; i < c->nnodes; i++) {
    cnode *n = c->nodes[i];
    if (!n->down || now < n->retry_at || !n->resolved) continue;
    n->retry_at = now + n->backoff_ms;     /* until this probe tells */
    conn *probe = NULL;
    int up = 0;
    for (int j = 0; j < c->opt.connections; j++) {
      if (n->conns[j].state == CONN_DOWN && probe == NULL) probe = &n->conns[j];
      if (n->conns[j].state == CONN_UP) up = 1;
    }
    if (probe) conn_connect(probe);
    else if (up) node_reachable(c, n);
  }
  if (c->opt.routing != CELLAR_ROUTE_NONE && c->refreshing == 0 &&
      (now >= c->next_refresh ||
       (c->refresh_soon && now >= c->last_refresh + CLIENT_REFRESH_MIN_MS)))
    refresh_start(c);
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
    if (!uv_is_active((uv_handle_t *)&c->sweep)) {
      uint64_t ms = c->sweep_ms > 0 ? (uint64_t)c->sweep_ms : CLIENT_SWEEP_MS;
      uv_timer_start(&c->sweep, on_sweep, ms, ms);
    }
  }
  attempt_start(c, r, route(c, r, 0), 0);
}

static void on_sweep(uv_timer_t *t) {
  cellar_client_t *c = t->data;
  uint64_t now = now_ms();
  while (c->dhead && c->dhead->deadline <= now) {
    creq *r = c->dhead;
    const attempt *a = r->at[0].r ? &r->at[0] : r->at[1].r ? &r->at[1] : NULL;
    char msg[400];
    int ms = c->opt.request_timeout_ms > 0 ? c->opt.request_timeout_ms
                                           : CLIENT_INTERNAL_TIMEOUT_MS;
    snprintf(msg, sizeof msg, "no answer from %s within %d ms%s",
             a && a->k ? a->k->n->name : c->peer, ms,
             r->retried ? " (retry included)" : "");
    req_fail(c, r, CELLAR_ETIMEDOUT, msg);
  }
  if (c->dhead == NULL) uv_timer_stop(t);
}

static void begin_shutdown(cellar_client_t *c) {
  if (c->shutting) return;
  c->shutting = 1;
  for (int i = 0; i < c->nnodes; i++)
    for (int j = 0; j < c->opt.connections; j++) {
      conn *k = &c->nodes[i]->conns[j];
      if (k->state == CONN_CONNECTING || k->state == CONN_UP)
        conn_fail(k, CELLAR_ESHUTDOWN, "client closed");
    }
  for (int i = 0; i < c->nnodes; i++)
    for (int j = 0; j < c->opt.connections; j++) {
      conn *k = &c->nodes[i]->conns[j];
      alist_fail(c, &k->doomed, CELLAR_ESHUTDOWN, "client closed");
      alist_fail(c, &k->waiting, CELLAR_ESHUTDOWN, "client closed");
      /* A callback may have routed nothing new: submissions now fail. */
      uv_close((uv_handle_t *)&k->ctimer, NULL);
    }
  /* Whatever still had a deadline or a speculative timer had an attempt
  ** above; all failed. */
  uv_close((uv_handle_t *)&c->wake, NULL);
  uv_close((uv_handle_t *)&c->flush, NULL);
  uv_close((uv_handle_t *)&c->sweep, NULL);
  uv_close((uv_handle_t *)&c->tick, NULL);
  uv_close((uv_handle_t *)&c->spec, NULL);
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
    cnode *n0 = c->nodes[0];
    snprintf(c->peer, sizeof c->peer, "%s", n0->name);
    /* The other connections open now, in the background. */
    for (int i = 1; i < c->opt.connections; i++)
      if (n0->conns[i].state == CONN_DOWN) conn_connect(&n0->conns[i]);
    uv_timer_start(&c->tick, on_tick, CLIENT_TICK_MS, CLIENT_TICK_MS);
    if (c->opt.routing != CELLAR_ROUTE_NONE) refresh_start(c);
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
  conn_connect(&c->nodes[0]->conns[0]);
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
  o->routing = CELLAR_ROUTE_TOKEN_AWARE;
  o->local_dc = NULL;
  o->speculative_read_ms = 0;
  o->speculative_percentile = 0;
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
  for (int i = 0; i < c->nnodes; i++) node_free(c, c->nodes[i]);
  free(c->nodes);
  free(c->hosts);
  ring_free(&c->ring);
  free(c->member_node);
  for (size_t i = 0; i < c->nkss; i++) free(c->kss[i]);
  free(c->kss);
  free(c->heap);
  uv_mutex_destroy(&c->slock);
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
    if ((int)o->routing < CELLAR_ROUTE_TOKEN_AWARE || (int)o->routing > CELLAR_ROUTE_NONE)
      return CELLAR_EINVAL;
    opt.routing = o->routing;
    if (o->local_dc && strlen(o->local_dc) > CELLAR_MAX_NAME_BYTES) return CELLAR_EINVAL;
    opt.local_dc = o->local_dc;
    if (o->speculative_read_ms < 0) return CELLAR_EINVAL;
    opt.speculative_read_ms = o->speculative_read_ms;
    if (!(o->speculative_percentile >= 0 && o->speculative_percentile < 100))
      return CELLAR_EINVAL;    /* NaN too */
    opt.speculative_percentile = o->speculative_percentile;
  }

  cellar_client_t *c = calloc(1, sizeof *c);
  if (c == NULL) return CELLAR_ENOMEM;
  c->opt = opt;
  c->opt.hosts = NULL;          /* borrowed only during this call */
  c->opt.local_dc = NULL;
  if (opt.local_dc && *opt.local_dc) {
    snprintf(c->local_dc, sizeof c->local_dc, "%s", opt.local_dc);
    c->local_dc_given = 1;
  }
  ring_init(&c->ring);
  int rc = parse_hosts(opt.hosts, &c->hosts, &c->nhosts);
  if (rc != 0) {
    free(c);
    return rc;
  }
  if (uv_mutex_init(&c->lock) != 0) {
    free(c->hosts);
    free(c);
    return CELLAR_ENOMEM;
  }
  if (uv_cond_init(&c->cond) != 0) {
    uv_mutex_destroy(&c->lock);
    free(c->hosts);
    free(c);
    return CELLAR_ENOMEM;
  }
  if (uv_mutex_init(&c->slock) != 0) {
    uv_cond_destroy(&c->cond);
    uv_mutex_destroy(&c->lock);
    free(c->hosts);
    free(c);
    return CELLAR_ENOMEM;
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
  /* The contact node: the hosts are tried in turn on its first connection. */
  cnode *n0 = node_new(c, c->hosts[0].name);
  if (n0 == NULL) {
    uv_walk(&c->loop, close_all_cb, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    client_free(c);
    return CELLAR_ENOMEM;
  }
  n0->addr = c->hosts[0].addr;
  n0->resolved = c->hosts[0].resolved;
  snprintf(n0->resolve_err, sizeof n0->resolve_err, "%s", c->hosts[0].resolve_err);
  uv_async_init(&c->loop, &c->wake, on_wake);
  c->wake.data = c;
  uv_prepare_init(&c->loop, &c->flush);
  c->flush.data = c;
  uv_timer_init(&c->loop, &c->sweep);
  c->sweep.data = c;
  uv_timer_init(&c->loop, &c->tick);
  c->tick.data = c;
  uv_timer_init(&c->loop, &c->spec);
  c->spec.data = c;

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

int cellar_client_stats(cellar_client_t *c, cellar_client_stats_t *out,
                        cellar_node_stats_t *nodes, size_t max, size_t *nnodes) {
  if (c == NULL || (nodes == NULL && max > 0)) return CELLAR_EINVAL;
  uv_mutex_lock(&c->slock);
  if (out) {
    memset(out, 0, sizeof *out);
    out->routed = atomic_load_explicit(&c->st_routed, memory_order_relaxed);
    out->unrouted = atomic_load_explicit(&c->st_unrouted, memory_order_relaxed);
    out->retries = atomic_load_explicit(&c->st_retries, memory_order_relaxed);
    out->speculative = atomic_load_explicit(&c->st_spec, memory_order_relaxed);
    out->speculative_wins = atomic_load_explicit(&c->st_spec_wins, memory_order_relaxed);
    out->ring_refreshes = atomic_load_explicit(&c->st_refreshes, memory_order_relaxed);
    out->ring_members = atomic_load(&c->st_ring_members);
    snprintf(out->local_dc, sizeof out->local_dc, "%s", c->local_dc);
  }
  for (int i = 0; i < c->nnodes && (size_t)i < max; i++) {
    const cnode *n = c->nodes[i];
    cellar_node_stats_t *s = &nodes[i];
    memset(s, 0, sizeof *s);
    size_t al = strnlen(n->name, sizeof s->address - 1);   /* names may be longer */
    memcpy(s->address, n->name, al);
    s->address[al] = '\0';
    snprintf(s->host_id, sizeof s->host_id, "%s", n->host_id);
    snprintf(s->datacenter, sizeof s->datacenter, "%s", n->dc);
    snprintf(s->rack, sizeof s->rack, "%s", n->rack);
    s->in_ring = n->in_ring;
    s->up = node_usable(n);
    s->contact = i == 0;
    s->requests = atomic_load_explicit(&n->nreq, memory_order_relaxed);
    s->failures = atomic_load_explicit(&n->nfail, memory_order_relaxed);
    s->read_p99_us = (uint32_t)atomic_load_explicit(&n->lat.p99_us, memory_order_relaxed);
  }
  if (nnodes) *nnodes = (size_t)c->nnodes;
  uv_mutex_unlock(&c->slock);
  return 0;
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
  r->hidx = SIZE_MAX;
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

/* What the router needs of a data request (computed on the caller's
** thread, design note: nothing of the caller's memory reaches the loop). */
static creq *routable(creq *r, int kind, const char *keyspace, const void *pk,
                      size_t npk, uint32_t cl) {
  if (r == NULL) return NULL;
  r->kind = (uint8_t)kind;
  r->cl = (uint8_t)cl;
  r->token = token_of(pk, npk);
  snprintf(r->keyspace, sizeof r->keyspace, "%s", keyspace);
  return r;
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
  if (check_bytes(e, "context", p->context, p->context_len, 256u << 10)) return NULL;
  if (p->context_len && p->nrows != 1) {
    seterr(e, CELLAR_EINVAL, "a put context applies to one row, the put has %zu",
           p->nrows);
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
  m.context = bin(p->context, p->context_len);
  creq *r = routable(encode(&m.base, FRAME_PUT, e), RK_WRITE, p->keyspace, p->partition,
                     p->partition_len, m.consistency);
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
  creq *r = routable(encode(&m.base, FRAME_GET, e), RK_READ, g->keyspace, g->partition,
                     g->partition_len, m.consistency);
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
  creq *r = routable(encode(&m.base, FRAME_SLICE, e), RK_READ, s->keyspace, s->partition,
                     s->partition_len, m.consistency);
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
      check_bytes(e, "context", d->context, d->context_len, 256u << 10) ||
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
  m.context = bin(d->context, d->context_len);
  creq *r = routable(encode(&m.base, FRAME_DELETE, e), RK_WRITE, d->keyspace, d->partition,
                     d->partition_len, m.consistency);
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

