/*
** repair: anti-entropy repair. See repair.h for the protocol and
** docs/repair.md for the design.
**
** Invariants:
**   1. Only the loop thread touches tasks; the admin entry points only
**      swap in a new plan (repair_start) or read the report, under r->mu.
**      The loop takes r->mu whenever it changes what the report shows.
**   2. A task waits for at most one kind of answer at a time and accepts
**      an answer only if its id is the task's current request id and it
**      comes from one of the task's replicas, once per replica.
**   3. Request and order ids carry REPAIR_ID_BIT, so a STREAM_ORDER_DONE
**      meant for a decommission (whose ids are small counters) is never
**      taken for a repair's, and the other way round.
**   4. Partition digests leave out what compaction may purge on one
**      replica and not yet on another (tombstones and expired cells past
**      gc_grace): replicas that compacted at different times still agree.
**   5. Nothing is sent while r->mu is held: a frame to this node itself is
**      delivered at once (cluster_send) and may come back here, so frames
**      wait in r->out and go after the unlock (flush_out).
**   6. No range waits for an answer that cannot come: a request that
**      cannot be sent fails its range (flush_out), so does the loss of the
**      connection to a replica it waits for (repair_on_peer_failed), and a
**      replica that cannot build or send an answer answers an error.
**   7. Ids start at a random value at every start, and answers echo the
**      table (and trees their range): an answer to a request of this
**      node's previous run is not taken for one of this run's.
*/
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cell.h"
#include "cellar/cellar.h"
#include "clock.h"
#include "keys.h"
#include "log.h"
#include "merkle.h"
#include "metrics.h"
#include "repair.h"
#include "storage.h"
#include "token.h"
#include "wire_peer.h"

#define REPAIR_ID_BIT (1ULL << 63)
/* Throttled work due within a tick runs at once: waiting for the tick would
** cost up to a tick per range, and the debt stays in the bucket, so the
** average rate holds. */
#define TICK_NS ((uint64_t)REPAIR_TICK_MS * 1000000)

typedef enum tstate { T_TREES, T_ROWS, T_STREAM, T_DONE } tstate;

typedef struct rep {
  char host_id[40];
  char addr[80];
  int got;
  int reasked;                 /* asked again for a deeper tree */
  merkle_tree tree;
  wire_repair_reply rows;      /* ROWS answer, kept until the task ends */
} rep;

/* One STREAM_ORDER: ranges a replica pulls. */
typedef struct order {
  size_t target;               /* index into reps */
  uint64_t id;
  cluster_range *r;
  size_t n, cap;
  uint64_t bytes, rows;        /* what its pulls move: counted once done */
  int done;
} order;

typedef struct task {
  uint64_t table_id;
  keyspace_def ks;
  int64_t lo, hi;
  int started, failed;
  tstate st;
  uint64_t req_id;
  uint64_t deadline_ns;
  uint64_t retry_ns;           /* TREES, ROWS: ask the silent ones again */
  uint8_t *req;                /* the request (encoded), for the retries */
  size_t reqlen;
  unsigned reqtype;
  size_t nreps;
  rep reps[REPAIR_MAX_REPLICAS];
  order *orders;                /* the STREAM_ORDERs of the current wave */
  size_t norders;
  repair_pull *pulls;          /* the plan's pulls, sent in waves */
  size_t npulls, next_pull;
  int waiting;                 /* between two waves, for the throttle */
} task;

/* A frame to send once r->mu is released (invariant 5). */
typedef struct outmsg {
  char addr[80];
  uint64_t id;                 /* the request or order: its range fails
                                  when the frame cannot be sent */
  unsigned type;
  uint8_t *p;
  size_t n;
} outmsg;

struct repair {
  uv_loop_t *loop;
  const config *cfg;
  engine *eng;
  cluster *cl;
  uv_timer_t tick;
  int stopping;
  pthread_mutex_t mu;
  /* the current or last repair (under mu) */
  int has_run, running, failed;
  char scope[200];
  char dc[49];
  char error[200];
  task *tasks;
  size_t ntasks, next, active, ndone;
  uint64_t compared, nfailed, mismatches, parts_differing, rows, bytes, entries;
  uint64_t range_bytes, range_parts;   /* what the first replica holds */
  uint64_t exchange_bytes;     /* trees and digest lists received */
  uint64_t started_ns, finished_ns;
  uint64_t throttle_until_ns;
  uint64_t checked_ns;          /* last liveness check of active ranges */
  uint64_t next_id;
  outmsg *out;                 /* loop thread only */
  size_t nout;
  /* replica side (loop thread only) */
  struct build_job *waiting;   /* builds parked by the scan throttle */
  struct build_job *builds;    /* every build alive (repeated requests) */
  uint64_t scan_next_ns;
};

int repair_new(uv_loop_t *loop, const config *cfg, engine *eng, cluster *cl, repair **out) {
  repair *r = calloc(1, sizeof *r);
  if (r == NULL) return CELLAR_ENOMEM;
  r->loop = loop;
  r->cfg = cfg;
  r->eng = eng;
  r->cl = cl;
  /* invariant 7: a random start, below REPAIR_ID_BIT */
  r->next_id = (clock_random64() & ~REPAIR_ID_BIT) | 1;
  pthread_mutex_init(&r->mu, NULL);
  *out = r;
  return 0;
}

typedef struct build_job build_job;

/* Caller holds r->mu (or is the loop thread). Takes ownership of p. */
static void do_queue(repair *r, const char *addr, unsigned type, uint8_t *p, size_t n,
                     uint64_t id) {
  outmsg *no = p ? realloc(r->out, (r->nout + 1) * sizeof *no) : NULL;
  if (no == NULL) {   /* lost: the task times out */
    free(p);
    return;
  }
  r->out = no;
  outmsg *m = &r->out[r->nout++];
  snprintf(m->addr, sizeof m->addr, "%s", addr);
  m->id = id;
  m->type = type;
  m->p = p;
  m->n = n;
}

static void send_failed(repair *r, const outmsg *m, int rc);

/* Loop thread, r->mu not held. Frames queued while sending go too. */
static void flush_out(repair *r) {
  while (r->nout) {
    outmsg *batch = r->out;
    size_t n = r->nout;
    r->out = NULL;
    r->nout = 0;
    for (size_t i = 0; i < n; i++) {
      int rc = r->stopping ? 0 : cluster_send(r->cl, batch[i].addr, batch[i].type, 0,
                                              batch[i].p, batch[i].n);
      if (rc) send_failed(r, &batch[i], rc);   /* invariant 6 */
      free(batch[i].p);
    }
    free(batch);
  }
}

static void task_clear(task *t) {
  for (size_t i = 0; i < t->nreps; i++) {
    merkle_free(&t->reps[i].tree);
    wire_repair_reply_free(&t->reps[i].rows);
  }
  for (size_t i = 0; i < t->norders; i++) free(t->orders[i].r);
  free(t->orders);
  t->orders = NULL;
  t->norders = 0;
  free(t->pulls);
  t->pulls = NULL;
  t->npulls = t->next_pull = 0;
  free(t->req);
  t->req = NULL;
}

static void tasks_free(task *t, size_t n) {
  for (size_t i = 0; i < n; i++) task_clear(&t[i]);
  free(t);
}

/* =================================================== the replica's side */

/* A growable copy of a key (the scan's bytes are borrowed for the call). */
typedef struct keybuf {
  uint8_t *p;
  size_t n, cap;
} keybuf;

/* A tree or digest list being built, one chunk per worker job. */
struct build_job {
  uv_work_t work;
  struct build_job *next;      /* r->waiting */
  struct build_job *all_next;  /* r->builds */
  repair *r;
  int is_tree;
  wire_repair_req q;
  uint32_t now_s, gc;
  int started, finished;
  size_t i;                    /* the range being scanned */
  uint8_t *after;              /* last key consumed in range i, malloc'd */
  size_t nafter;
  uint64_t chunk_bytes;        /* read by the current chunk */
  uint64_t ready_ns;           /* waiting: when it may run again */
  uint64_t resend_until;       /* its answer met a full queue: try until */
  /* the partition being read (hash_entry) */
  int in_part;
  keybuf pkey;                 /* its base key: table, token, pk */
  keybuf row;                  /* the last row counted */
  keybuf last;                 /* the last key read */
  uint64_t ph, pbytes, prows, pkept;
  /* results */
  merkle_tree tree;
  uint64_t partitions;
  wire_part_digest *parts;
  size_t nparts, cap;
  storage_entries keys;        /* owns the parts' keys */
  int rc;
  uint8_t *out;
  size_t outlen;
};

static int keybuf_set(keybuf *b, const uint8_t *p, size_t n) {
  if (n > b->cap) {
    size_t nc = b->cap ? b->cap : 64;
    while (nc < n) nc *= 2;
    uint8_t *np = realloc(b->p, nc);
    if (np == NULL) return CELLAR_ENOMEM;
    b->p = np;
    b->cap = nc;
  }
  if (n) memcpy(b->p, p, n);
  b->n = n;
  return 0;
}

/* Invariant 4: the digest of what every replica keeps until compaction
** may drop it, chained entry by entry as the scan reads them (a partition
** is never held whole: a wide one would cost its size, twice). Also counts
** the bytes (all entries: a pull sends them all) and the rows. */
static int hash_entry(build_job *j, cbytes key, cbytes value) {
  j->pbytes += key.n + value.n;
  keys_parts kp;
  if (keys_decode(key.p, key.n, &kp) == 0 && kp.kind != KEYS_KIND_PARTITION &&
      (j->row.n != kp.row_len || memcmp(j->row.p, key.p, kp.row_len))) {
    j->prows++;
    int rc = keybuf_set(&j->row, key.p, kp.row_len);
    if (rc) return rc;
  }
  cell c;
  if (cell_decode(value.p, value.n, &c) == 0) {
    uint32_t since = cell_dead_since(&c);
    if (since && (uint64_t)since + j->gc <= j->now_s) return 0;
  }
  storage_entry e = {key, value};
  /* a bijection of ph for each entry digest: order matters, collisions
  ** are as rare as for one 64-bit hash */
  j->ph = (j->ph ^ storage_entries_digest(&e, 1)) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
  j->ph ^= j->ph >> 29;
  j->pkept++;
  return 0;
}

/* The partition read so far is complete: into the tree or the list (when
** anything in it is left to compare). */
static int flush_partition(build_job *j) {
  if (!j->in_part) return 0;
  j->in_part = 0;
  j->row.n = 0;
  if (j->pkept == 0) return 0;
  uint64_t digest = j->ph, bytes = j->pbytes, rows = j->prows;
  int64_t tok = token_decode(j->pkey.p + KEYS_TABLE_BYTES);
  int rc = 0;
  j->partitions++;
  if (j->is_tree) {
    rc = merkle_add(&j->tree, tok, digest, bytes);
  } else if (j->nparts == REPAIR_NARROW_MAX) {
    /* one more than a list may hold: stop reading, the coordinator
    ** streams the leaves whole instead (no use scanning on) */
    rc = CELLAR_ETOOBIG;
  } else {
    if (j->nparts == j->cap) {
      size_t nc = j->cap ? 2 * j->cap : 256;
      wire_part_digest *np = realloc(j->parts, nc * sizeof *np);
      if (np == NULL) return CELLAR_ENOMEM;
      j->parts = np;
      j->cap = nc;
    }
    /* the partition is named by a 64-bit digest of its key (table, token,
    ** pk): 8 bytes instead of the key, which is what most of a digest
    ** list would be; the coordinator orders by token first */
    uint8_t id[8];
    storage_entry base = {CBYTES(j->pkey.p, j->pkey.n), CBYTES(NULL, 0)};
    uint64_t h = storage_entries_digest(&base, 1);
    for (int b = 0; b < 8; b++) id[b] = (uint8_t)(h >> (56 - 8 * b));
    rc = storage_entries_add(&j->keys, CBYTES(id, 8), CBYTES(NULL, 0));
    if (rc == 0)
      j->parts[j->nparts++] = (wire_part_digest){tok, j->keys.e[j->keys.n - 1].key, digest,
                                                 bytes, rows};
  }
  return rc;
}

static int cmp_key(cbytes a, const uint8_t *b, size_t nb) {
  int c = memcmp(a.p, b, a.n < nb ? a.n : nb);
  return c ? c : (a.n > nb) - (a.n < nb);
}

/* Scan callback. A chunk stops at the first partition boundary once it
** has read REPAIR_SCAN_CHUNK bytes (return 1), remembering the last key
** it consumed: the next chunk resumes after it. */
static int on_entry(void *arg, cbytes key, cbytes value) {
  build_job *j = arg;
  if (j->nafter && cmp_key(key, j->after, j->nafter) <= 0) return 0;
  size_t bl = keys_base_len(key.p, key.n);
  if (bl == 0) return 0;   /* not a data key: storage_scan_range skips those */
  int rc;
  if (j->in_part && (bl != j->pkey.n || memcmp(j->pkey.p, key.p, bl))) {
    if (j->chunk_bytes >= REPAIR_SCAN_CHUNK) {
      uint8_t *k = malloc(j->last.n ? j->last.n : 1);
      if (k == NULL) return CELLAR_ENOMEM;
      memcpy(k, j->last.p, j->last.n);
      free(j->after);
      j->after = k;
      j->nafter = j->last.n;
      rc = flush_partition(j);
      return rc ? rc : 1;
    }
    if ((rc = flush_partition(j)) != 0) return rc;
  }
  if (!j->in_part) {
    if ((rc = keybuf_set(&j->pkey, key.p, bl)) != 0) return rc;
    j->in_part = 1;
    j->ph = 0;
    j->pbytes = j->prows = j->pkept = 0;
  }
  j->chunk_bytes += key.n + value.n;
  if ((rc = hash_entry(j, key, value)) != 0) return rc;
  return keybuf_set(&j->last, key.p, key.n);
}

/* Worker: one chunk of the scan; the answer is encoded after the last. */
static void build_work(uv_work_t *w) {
  build_job *j = w->data;
  repair *r = j->r;
  int rc = 0;
  j->chunk_bytes = 0;
  if (!j->started) {
    j->started = 1;
    storage_entries_init(&j->keys);
    j->now_s = clock_now_s();
    rc = schema_gc_grace_by_id(r->eng->sc, j->q.table_id, &j->gc);
    if (rc == 0 && j->is_tree)
      rc = merkle_init(&j->tree, j->q.r[0][0], j->q.r[0][1], MERKLE_MAX_DEPTH);
  }
  while (rc == 0 && j->i < j->q.n) {
    /* storage_scan_range takes (start, end]; lo > INT64_MIN (wire check);
    ** a resumed range starts at the token of the last key consumed */
    int64_t lo = j->nafter ? token_decode(j->after + KEYS_TABLE_BYTES) : j->q.r[j->i][0];
    rc = storage_scan_range(r->eng->st, j->q.table_id, lo - 1, j->q.r[j->i][1], on_entry, j);
    if (rc == 1) return;   /* chunk full: more to come */
    if (rc == 0) rc = flush_partition(j);
    free(j->after);
    j->after = NULL;
    j->nafter = 0;
    j->i++;
  }
  j->finished = 1;
  if (rc == 0 && j->is_tree) {
    /* the depth its own count suggests, or deeper if asked (the coordinator
    ** compares at one depth: repair_trees_shallow) */
    unsigned d = merkle_depth_for(j->partitions);
    if (j->q.depth > d) d = j->q.depth < MERKLE_MAX_DEPTH ? j->q.depth : MERKLE_MAX_DEPTH;
    rc = merkle_truncate(&j->tree, d);
  }
  uint8_t *tree = NULL;
  size_t ntree = 0;
  if (rc == 0 && j->is_tree && (tree = merkle_encode(&j->tree, &ntree)) == NULL)
    rc = CELLAR_ENOMEM;
  j->rc = rc;
  wire_repair_reply a = {.id = j->q.id, .table_id = j->q.table_id,
                         .host_id = cluster_host_id(r->cl), .code = rc,
                         .message = rc ? cellar_strerror(rc) : "", .tree = CBYTES(tree, ntree),
                         .n = rc ? 0 : j->nparts, .parts = j->parts};
  j->out = wire_repair_reply_encode(&a, &j->outlen);
  free(tree);
}

static void build_free(build_job *j) {
  for (build_job **pp = &j->r->builds; *pp; pp = &(*pp)->all_next)
    if (*pp == j) {
      *pp = j->all_next;
      break;
    }
  if (j->started) {
    merkle_free(&j->tree);
    storage_entries_free(&j->keys);
  }
  free(j->pkey.p);
  free(j->row.p);
  free(j->last.p);
  free(j->parts);
  free(j->after);
  free(j->out);
  wire_repair_req_free(&j->q);
  free(j);
}

static void build_done(uv_work_t *w, int status);

/* Loop thread. Answers j's request with the error code alone (invariant 6:
** the build cannot run, or its answer cannot be sent, e.g. too large for a
** frame): the coordinator fails the range at once instead of waiting. */
static void answer_error(repair *r, build_job *j, int code) {
  wire_repair_reply a = {.id = j->q.id, .table_id = j->q.table_id,
                         .host_id = cluster_host_id(r->cl), .code = code,
                         .message = cellar_strerror(code)};
  size_t n = 0;
  uint8_t *p = wire_repair_reply_encode(&a, &n);
  int rc = p ? cluster_send(r->cl, j->q.from, j->is_tree ? FRAME_MERKLE_REPLY
                                                          : FRAME_REPAIR_ROWS_REPLY,
                            0, p, n)
             : CELLAR_ENOMEM;
  if (rc) log_warn("repair: cannot answer %s either: %s", j->q.from, cellar_strerror(rc));
  free(p);
}

static void send_answer(build_job *j);

/* Loop thread: runs the next chunk of j now, or parks it until the scan
** throttle allows (or, finished, sends its answer again: send_answer). */
static void build_next(build_job *j) {
  repair *r = j->r;
  uint64_t now = clock_mono_ns();
  if (r->stopping) {
    build_free(j);
    return;
  }
  if (j->ready_ns > now + TICK_NS) {   /* within a tick: now, the debt stays */
    j->next = r->waiting;
    r->waiting = j;
    return;
  }
  if (j->finished) {
    send_answer(j);
    return;
  }
  j->work.data = j;
  if (uv_queue_work(r->loop, &j->work, build_work, build_done) != 0) {
    log_warn("repair: cannot queue a scan for %s", j->q.from);
    answer_error(r, j, CELLAR_EINTERNAL);
    build_free(j);
  }
}

static void build_done(uv_work_t *w, int status) {
  build_job *j = w->data;
  repair *r = j->r;
  (void)status;
  /* the scan throttle, shared by every build on this node: the next chunk
  ** starts once the bytes read so far would have taken their time */
  uint64_t now = clock_mono_ns();
  if (r->scan_next_ns < now) r->scan_next_ns = now;
  r->scan_next_ns += (uint64_t)((double)j->chunk_bytes * 1e9 / (double)r->cfg->repair_scan_bytes_per_s);
  if (!j->finished) {
    j->ready_ns = r->scan_next_ns;
    build_next(j);
    return;
  }
  if (j->rc) log_warn("repair: cannot answer %s for table %016" PRIx64 ": %s",
                      j->is_tree ? "a tree request" : "a digest request", j->q.table_id,
                      cellar_strerror(j->rc));
  send_answer(j);
}

/* Loop thread: sends j's answer and frees j. A full queue to the
** coordinator (it may hold stream chunks) is tried again every second for
** REPAIR_RESEND_MS; any other error, or a queue still full then, is
** answered with the error alone (invariant 6). */
static void send_answer(build_job *j) {
  repair *r = j->r;
  if (r->stopping) {
    build_free(j);
    return;
  }
  int rc = j->out ? cluster_send(r->cl, j->q.from, j->is_tree ? FRAME_MERKLE_REPLY
                                                               : FRAME_REPAIR_ROWS_REPLY,
                                 0, j->out, j->outlen)
                  : CELLAR_ENOMEM;
  uint64_t now = clock_mono_ns();
  if (rc == CELLAR_EOVERLOAD) {
    if (j->resend_until == 0) j->resend_until = now + (uint64_t)REPAIR_RESEND_MS * 1000000;
    if (now < j->resend_until) {
      j->ready_ns = now + 1000000000ull;
      j->next = r->waiting;
      r->waiting = j;
      return;
    }
  }
  if (rc) {
    log_warn("repair: cannot send the answer to %s (%zu bytes): %s", j->q.from, j->outlen,
             cellar_strerror(rc));
    answer_error(r, j, rc);
  }
  build_free(j);
}

/* Tick: parked builds whose time has come. */
static void run_waiting(repair *r) {
  uint64_t now = clock_mono_ns();
  build_job **pp = &r->waiting, *ready = NULL;
  while (*pp) {
    build_job *j = *pp;
    if (r->stopping || j->ready_ns <= now + TICK_NS) {
      *pp = j->next;
      j->next = ready;
      ready = j;
    } else {
      pp = &j->next;
    }
  }
  while (ready) {
    build_job *j = ready;
    ready = j->next;
    build_next(j);
  }
}

static void on_request(repair *r, int is_tree, const uint8_t *payload, size_t len) {
  build_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->r = r;
  j->is_tree = is_tree;
  if (wire_repair_req_decode(payload, len, &j->q) != 0 ||
      strcmp(j->q.cluster, cluster_name(r->cl)) || j->q.from[0] == '\0' ||
      strlen(j->q.from) >= 80 || (is_tree && j->q.n != 1) || r->stopping) {
    log_warn("repair: malformed or foreign repair request ignored");
    wire_repair_req_free(&j->q);
    free(j);
    return;
  }
  /* asked again (the coordinator's retry) while still building it: one
  ** answer will do */
  for (build_job *o = r->builds; o; o = o->all_next)
    if (o->q.id == j->q.id && o->is_tree == is_tree && !strcmp(o->q.from, j->q.from)) {
      wire_repair_req_free(&j->q);
      free(j);
      return;
    }
  j->all_next = r->builds;
  r->builds = j;
  j->ready_ns = r->scan_next_ns;   /* the node's scan throttle, new builds too */
  build_next(j);
}

void repair_free(repair *r) {
  if (r == NULL) return;
  tasks_free(r->tasks, r->ntasks);
  for (size_t i = 0; i < r->nout; i++) free(r->out[i].p);
  free(r->out);
  while (r->waiting) {
    build_job *j = r->waiting;
    r->waiting = j->next;
    build_free(j);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* ============================================= the coordinator's side */

static uint64_t now_ns(void) { return clock_mono_ns(); }

/* Caller holds r->mu. */
static void do_task_fail(repair *r, task *t, const char *fmt, const char *arg) {
  if (t->st == T_DONE) return;
  t->st = T_DONE;
  t->failed = 1;
  r->nfailed++;
  r->ndone++;
  r->active--;
  snprintf(r->error, sizeof r->error, fmt, arg);
  log_warn("repair: range %" PRId64 "..%" PRId64 " failed: %s", t->lo, t->hi, r->error);
  task_clear(t);
}

/* Caller holds r->mu. */
static void do_task_done(repair *r, task *t) {
  t->st = T_DONE;
  r->ndone++;
  r->active--;
  task_clear(t);
}

/* Caller holds r->mu. Sends the request to every replica (only: NULL) or
** to those with only[i] set; depth: a tree's least depth. */
static void do_send_request(repair *r, task *t, unsigned type, int64_t (*ranges)[2], size_t n,
                            unsigned depth, const uint8_t *only) {
  t->req_id = REPAIR_ID_BIT | r->next_id++;
  t->deadline_ns = now_ns() + (uint64_t)REPAIR_TIMEOUT_MS * 1000000;
  t->retry_ns = now_ns() + (uint64_t)REPAIR_RETRY_MS * 1000000;
  wire_repair_req q = {.id = t->req_id, .from = cluster_peer_addr(r->cl),
                       .cluster = cluster_name(r->cl), .table_id = t->table_id, .n = n,
                       .r = ranges, .depth = depth};
  size_t len = 0;
  uint8_t *p = wire_repair_req_encode(&q, &len);
  for (size_t i = 0; i < t->nreps; i++) {
    if (only && !only[i]) continue;
    t->reps[i].got = 0;
    uint8_t *c = p ? malloc(len ? len : 1) : NULL;
    if (c) memcpy(c, p, len);
    do_queue(r, t->reps[i].addr, type, c, len, t->req_id);
  }
  free(t->req);   /* kept for the retries */
  t->req = p;
  t->reqlen = len;
  t->reqtype = type;
}

/* Caller holds r->mu. No answer from some replicas for REPAIR_RETRY_MS:
** the request again, same id, to those (a request or an answer may have
** been lost without the connection failing; one still building it ignores
** the repeat), until REPAIR_TIMEOUT_MS. */
static void do_retry(repair *r, task *t, uint64_t now) {
  t->retry_ns = now + (uint64_t)REPAIR_RETRY_MS * 1000000;
  for (size_t i = 0; t->req && i < t->nreps; i++) {
    if (t->reps[i].got) continue;
    uint8_t *c = malloc(t->reqlen ? t->reqlen : 1);
    if (c) memcpy(c, t->req, t->reqlen);
    log_info("repair: range %" PRId64 "..%" PRId64 ": no answer from %s yet, asking again",
             t->lo, t->hi, t->reps[i].host_id);
    do_queue(r, t->reps[i].addr, t->reqtype, c, t->reqlen, t->req_id);
  }
}

/* Caller holds r->mu. Picks the replicas and asks for their trees. */
static void do_task_start(repair *r, task *t) {
  cluster_replica reps[CL_MAX_REPLICAS];
  size_t n = cluster_replicas(r->cl, &t->ks, t->hi, reps, CL_MAX_REPLICAS, NULL);
  t->started = 1;
  t->st = T_TREES;
  r->active++;
  for (size_t i = 0; i < n; i++) {
    if (r->dc[0] && strcmp(reps[i].r.dc, r->dc)) continue;
    if (!reps[i].r.alive || reps[i].peer_addr[0] == '\0') {
      do_task_fail(r, t, "replica %s is down", reps[i].host_id);
      return;
    }
    if (t->nreps == REPAIR_MAX_REPLICAS) break;
    rep *p = &t->reps[t->nreps++];
    memset(p, 0, sizeof *p);
    snprintf(p->host_id, sizeof p->host_id, "%s", reps[i].host_id);
    snprintf(p->addr, sizeof p->addr, "%s", reps[i].peer_addr);
  }
  if (t->nreps < 2) {   /* nothing to compare with */
    do_task_done(r, t);
    return;
  }
  int64_t range[1][2] = {{t->lo, t->hi}};
  do_send_request(r, t, FRAME_MERKLE_REQUEST, range, 1, 0, NULL);
}

/* The pull of lo..hi by reps[target] from reps[source], into target's
** STREAM_ORDER (the plan has merged contiguous pulls already). */
static int order_add(task *t, const repair_pull *u) {
  size_t target = u->target, source = u->source;
  order *o = NULL;
  for (size_t i = 0; i < t->norders; i++)
    if (t->orders[i].target == target) o = &t->orders[i];
  if (o == NULL) {
    order *no = realloc(t->orders, (t->norders + 1) * sizeof *no);
    if (no == NULL) return CELLAR_ENOMEM;
    t->orders = no;
    o = &t->orders[t->norders++];
    memset(o, 0, sizeof *o);
    o->target = target;
  }
  if (o->n == o->cap) {
    size_t nc = o->cap ? 2 * o->cap : 16;
    cluster_range *nr = realloc(o->r, nc * sizeof *nr);
    if (nr == NULL) return CELLAR_ENOMEM;
    o->r = nr;
    o->cap = nc;
  }
  cluster_range *c = &o->r[o->n++];
  memset(c, 0, sizeof *c);
  c->table_id = t->table_id;
  c->lo = u->lo;
  c->hi = u->hi;
  o->bytes += u->bytes;
  o->rows += u->rows;
  snprintf(c->source, sizeof c->source, "%s", t->reps[source].addr);
  return 0;
}

/* Caller holds r->mu. Sends the next wave of t's pulls: as many as
** stream about one second's worth at repair_stream_throughput (one at
** least), charged to the throttle; the next wave waits for this one to be
** applied and for the throttle. No pull left: the range is done. */
static void do_send_wave(repair *r, task *t) {
  for (size_t i = 0; i < t->norders; i++) free(t->orders[i].r);
  free(t->orders);
  t->orders = NULL;
  t->norders = 0;
  t->waiting = 0;
  if (t->next_pull == t->npulls) {
    do_task_done(r, t);
    return;
  }
  uint64_t wave = 0, now = now_ns();
  while (t->next_pull < t->npulls && (wave == 0 || wave < r->cfg->repair_bytes_per_s)) {
    const repair_pull *u = &t->pulls[t->next_pull++];
    if (order_add(t, u) != 0) {
      do_task_fail(r, t, "%s", "out of memory");
      return;
    }
    wave += u->bytes ? u->bytes : 1;
  }
  if (r->throttle_until_ns < now) r->throttle_until_ns = now;
  r->throttle_until_ns += (uint64_t)((double)wave * 1e9 / (double)r->cfg->repair_bytes_per_s);
  t->st = T_STREAM;
  t->deadline_ns = now + (uint64_t)REPAIR_STREAM_TIMEOUT_MS * 1000000;
  for (size_t i = 0; i < t->norders; i++) {
    order *o = &t->orders[i];
    o->id = REPAIR_ID_BIT | r->next_id++;
    wire_range *wr = calloc(o->n ? o->n : 1, sizeof *wr);
    if (wr == NULL) continue;   /* no answer: the task times out */
    for (size_t k = 0; k < o->n; k++)
      wr[k] = (wire_range){o->r[k].table_id, o->r[k].lo, o->r[k].hi, o->r[k].source};
    wire_order w = {.id = o->id, .from = cluster_peer_addr(r->cl), .cluster = cluster_name(r->cl),
                    .n = o->n, .r = wr};
    size_t len = 0;
    uint8_t *p = wire_order_encode(&w, &len);
    do_queue(r, t->reps[o->target].addr, FRAME_STREAM_ORDER, p, len, o->id);
    free(wr);
  }
}

/* ============================================= comparing (no I/O) */

void repair_plan_free(repair_plan *p) {
  free(p->narrow);
  free(p->pulls);
  memset(p, 0, sizeof *p);
}

/* Appends the pull of lo..hi by target from source, extending target's
** last pull when it is contiguous, from the same source, and stays within
** pull_max bytes (0: no limit): a merged pull is not cut by the stream
** throttle's waves, so it must not grow past one wave. */
static int plan_add1(repair_plan *p, size_t *last, uint64_t pull_max, size_t target,
                     size_t source, int64_t lo, int64_t hi, uint64_t bytes, uint64_t rows) {
  p->bytes += bytes;
  p->rows += rows;
  if (last[target] != SIZE_MAX) {
    repair_pull *l = &p->pulls[last[target]];
    if (l->source == source && l->hi >= lo - 1 && l->lo <= lo &&
        (pull_max == 0 || l->bytes + bytes <= pull_max)) {
      if (hi > l->hi) l->hi = hi;
      l->bytes += bytes;
      l->rows += rows;
      return 0;
    }
  }
  if (p->npulls == p->cap) {
    size_t nc = p->cap ? 2 * p->cap : 16;
    repair_pull *np = realloc(p->pulls, nc * sizeof *np);
    if (np == NULL) return CELLAR_ENOMEM;
    p->pulls = np;
    p->cap = nc;
  }
  last[target] = p->npulls;
  p->pulls[p->npulls++] = (repair_pull){target, source, lo, hi, bytes, rows};
  return 0;
}

/* plan_add1, a range of more than pull_max bytes cut into token sub-ranges
** of about pull_max bytes each (the bytes taken as spread evenly over the
** tokens: they are not known finer than the leaf). */
static int plan_add(repair_plan *p, size_t *last, uint64_t pull_max, size_t target,
                    size_t source, int64_t lo, int64_t hi, uint64_t bytes, uint64_t rows) {
  unsigned __int128 width = (unsigned __int128)((uint64_t)hi - (uint64_t)lo) + 1;
  uint64_t k = pull_max && bytes > pull_max ? (bytes + pull_max - 1) / pull_max : 1;
  if (width < k) k = (uint64_t)width;
  int rc = 0;
  for (uint64_t i = 0; i < k && rc == 0; i++) {
    int64_t a = (int64_t)((uint64_t)lo + (uint64_t)(width * i / k));
    int64_t b = (int64_t)((uint64_t)lo + (uint64_t)(width * (i + 1) / k) - 1);
    rc = plan_add1(p, last, pull_max, target, source, a, b, bytes / k + (i < bytes % k),
                   rows / k + (i < rows % k));
  }
  return rc;
}

size_t repair_trees_shallow(merkle_tree *const *trees, size_t n, uint8_t *shallow,
                            unsigned *depth) {
  unsigned d = 0;
  for (size_t i = 0; i < n; i++)
    if (trees[i]->depth > d) d = trees[i]->depth;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    shallow[i] = merkle_root(trees[i]) != 0 && trees[i]->depth + 1 < d;
    k += shallow[i];
  }
  *depth = d;
  return k;
}

int repair_plan_trees(merkle_tree *const *trees, size_t n, uint64_t narrow_max,
                      uint64_t pull_max, repair_plan *out) {
  memset(out, 0, sizeof *out);
  if (n < 2 || n > REPAIR_MAX_REPLICAS) return CELLAR_EINVAL;
  for (size_t i = 1; i < n; i++)
    if (trees[i]->lo != trees[0]->lo || trees[i]->hi != trees[0]->hi) return CELLAR_EINVAL;
  /* the smallest depth among the trees holding something: an empty tree
  ** (a wiped replica cuts its tree to one leaf) is the same at any depth,
  ** and comparing at its depth would stream whole ranges both ways
  ** between replicas that differ by one write */
  unsigned depth = MERKLE_MAX_DEPTH, any = 0;
  for (size_t i = 0; i < n; i++)
    if (merkle_root(trees[i]) != 0 && trees[i]->depth <= depth) {
      depth = trees[i]->depth;
      any = 1;
    }
  for (size_t i = 0; !any && i < n; i++)
    if (trees[i]->depth < depth) depth = trees[i]->depth;
  for (size_t i = 0; i < n; i++) {
    int rc = trees[i]->depth < depth ? merkle_deepen_empty(trees[i], depth)
                                     : merkle_truncate(trees[i], depth);
    if (rc) return rc;
  }
  /* a leaf differs when some replica differs from the first one: if two
  ** replicas differ, one of them differs from the first */
  size_t nl = (size_t)1 << depth;
  uint8_t *diff = calloc(nl, 1);
  if (diff == NULL) return CELLAR_ENOMEM;
  uint64_t listed = 0;   /* partitions the digest lists would hold */
  for (size_t k = 1; k < n; k++)
    for (size_t l = 0; l < nl; l++)
      if (trees[k]->leaves[l].hash != trees[0]->leaves[l].hash) {
        out->mismatches += !diff[l];
        diff[l] = 1;
      }
  for (size_t l = 0; l < nl; l++)
    if (diff[l])
      for (size_t k = 0; k < n; k++) listed += trees[k]->leaves[l].partitions;
  int rc = 0;
  if (out->mismatches == 0) {
  } else if (listed <= narrow_max) {
    /* narrow down to partitions: the differing leaves' ranges, contiguous
    ** leaves merged */
    out->narrow = calloc(out->mismatches, sizeof *out->narrow);
    if (out->narrow == NULL) rc = CELLAR_ENOMEM;
    for (size_t l = 0; rc == 0 && l < nl; l++) {
      int64_t lo, hi;
      merkle_leaf_range(trees[0], l, &lo, &hi);
      if (!diff[l] || lo > hi) continue;
      size_t k = out->nnarrow;
      if (k && out->narrow[k - 1][1] == lo - 1) {
        out->narrow[k - 1][1] = hi;
      } else {
        out->narrow[k][0] = lo;
        out->narrow[k][1] = hi;
        out->nnarrow++;
      }
    }
  } else {
    /* too many partitions to list: the differing leaves streamed whole,
    ** each replica pulling every other version of the leaf once */
    size_t last[REPAIR_MAX_REPLICAS];
    for (size_t i = 0; i < n; i++) last[i] = SIZE_MAX;
    for (size_t l = 0; l < nl && rc == 0; l++) {
      int64_t lo, hi;
      merkle_leaf_range(trees[0], l, &lo, &hi);
      if (!diff[l] || lo > hi) continue;
      for (size_t a = 0; a < n && rc == 0; a++)
        for (size_t b = 0; b < n && rc == 0; b++) {
          const merkle_leaf *la = &trees[a]->leaves[l], *lb = &trees[b]->leaves[l];
          if (a == b || la->hash == lb->hash || lb->partitions == 0) continue;
          int dup = 0;   /* one pull per version of the leaf */
          for (size_t c = 0; c < b && !dup; c++)
            dup = c != a && trees[c]->leaves[l].hash == lb->hash;
          if (dup) continue;
          /* leaves count partitions, not rows */
          rc = plan_add(out, last, pull_max, a, b, lo, hi, lb->bytes, lb->partitions);
          out->partitions += lb->partitions;
        }
    }
  }
  free(diff);
  if (rc) repair_plan_free(out);
  return rc;
}

typedef struct part_ref {
  const wire_part_digest *d;
  size_t rep;
} part_ref;

/* By token, then partition id, then replica. */
static int cmp_ref(const void *a, const void *b) {
  const part_ref *x = a, *y = b;
  if (x->d->token != y->d->token) return x->d->token < y->d->token ? -1 : 1;
  size_t n = x->d->key.n < y->d->key.n ? x->d->key.n : y->d->key.n;
  int c = memcmp(x->d->key.p, y->d->key.p, n);
  if (c) return c;
  if (x->d->key.n != y->d->key.n) return x->d->key.n < y->d->key.n ? -1 : 1;
  return (x->rep > y->rep) - (x->rep < y->rep);
}

int repair_plan_parts(const wire_part_digest *const *lists, const size_t *counts, size_t n,
                      uint64_t pull_max, repair_plan *out) {
  memset(out, 0, sizeof *out);
  if (n < 2 || n > REPAIR_MAX_REPLICAS) return CELLAR_EINVAL;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += counts[i];
  part_ref *refs = calloc(total ? total : 1, sizeof *refs);
  if (refs == NULL) return CELLAR_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < counts[i]; j++) refs[k++] = (part_ref){&lists[i][j], i};
  /* by token, so a target's pulls come in token order and contiguous
  ** tokens merge */
  qsort(refs, total, sizeof *refs, cmp_ref);
  size_t last[REPAIR_MAX_REPLICAS];
  for (size_t i = 0; i < n; i++) last[i] = SIZE_MAX;
  int rc = 0;
  for (size_t i = 0; i < total && rc == 0;) {
    size_t j = i;
    const wire_part_digest *have[REPAIR_MAX_REPLICAS] = {0};
    while (j < total && refs[j].d->token == refs[i].d->token &&
           refs[j].d->key.n == refs[i].d->key.n &&
           !memcmp(refs[j].d->key.p, refs[i].d->key.p, refs[i].d->key.n)) {
      have[refs[j].rep] = refs[j].d;
      j++;
    }
    int same = 1;
    for (size_t a = 0; same && a < n; a++) same = have[a] && have[a]->digest == have[0]->digest;
    if (!same) {
      out->partitions++;
      int64_t tok = refs[i].d->token;
      for (size_t a = 0; a < n && rc == 0; a++)
        for (size_t b = 0; b < n && rc == 0; b++) {
          if (a == b || have[b] == NULL || (have[a] && have[a]->digest == have[b]->digest))
            continue;
          int dup = 0;   /* one pull per version: from its first holder */
          for (size_t c = 0; c < b && !dup; c++)
            dup = c != a && have[c] && have[c]->digest == have[b]->digest;
          if (dup) continue;
          rc = plan_add(out, last, pull_max, a, b, tok, tok, have[b]->bytes, have[b]->rows);
        }
    }
    i = j;
  }
  free(refs);
  if (rc) repair_plan_free(out);
  return rc;
}

/* ======================================== the coordinator's range tasks */

/* Caller holds r->mu. Turns a plan's pulls into STREAM_ORDERs (rows and
** bytes streamed are counted as each order is done: on_order_done). */
static void do_stream_plan(repair *r, task *t, repair_plan *p) {
  r->parts_differing += p->partitions;
  t->pulls = p->pulls;   /* taken over */
  t->npulls = p->npulls;
  t->next_pull = 0;
  p->pulls = NULL;
  p->npulls = 0;
  do_send_wave(r, t);
}

/* Caller holds r->mu. Every tree is in: compare them, unless some are too
** shallow (repair_trees_shallow): those replicas are asked again, once,
** for a tree at the deepest one's depth. */
static void do_compare_trees(repair *r, task *t) {
  merkle_tree *trees[REPAIR_MAX_REPLICAS];
  for (size_t i = 0; i < t->nreps; i++) trees[i] = &t->reps[i].tree;
  uint8_t again[REPAIR_MAX_REPLICAS];
  unsigned depth;
  size_t nagain = 0;
  if (repair_trees_shallow(trees, t->nreps, again, &depth))
    for (size_t i = 0; i < t->nreps; i++) {
      again[i] = again[i] && !t->reps[i].reasked;
      if (!again[i]) continue;
      nagain++;
      t->reps[i].reasked = 1;
      merkle_free(&t->reps[i].tree);
    }
  if (nagain) {
    int64_t range[1][2] = {{t->lo, t->hi}};
    do_send_request(r, t, FRAME_MERKLE_REQUEST, range, 1, depth, again);
    return;
  }
  r->compared++;
  metrics_add(METRIC_REPAIR_RANGES, 1);
  for (size_t l = 0; l < ((size_t)1 << t->reps[0].tree.depth); l++) {
    r->range_bytes += t->reps[0].tree.leaves[l].bytes;
    r->range_parts += t->reps[0].tree.leaves[l].partitions;
  }
  repair_plan p;
  if (repair_plan_trees(trees, t->nreps, REPAIR_NARROW_MAX, r->cfg->repair_bytes_per_s, &p) !=
      0) {
    do_task_fail(r, t, "%s", "out of memory");
    return;
  }
  r->mismatches += p.mismatches;
  metrics_add(METRIC_REPAIR_MISMATCHES, p.mismatches);
  if (p.mismatches)
    log_info("repair: table %016" PRIx64 " range %" PRId64 "..%" PRId64 ": %zu of %zu leaves "
             "differ", t->table_id, t->lo, t->hi, p.mismatches,
             (size_t)1 << t->reps[0].tree.depth);
  if (p.nnarrow) {
    t->st = T_ROWS;
    do_send_request(r, t, FRAME_REPAIR_ROWS, p.narrow, p.nnarrow, 0, NULL);
  } else {
    do_stream_plan(r, t, &p);   /* nothing, or whole leaves */
  }
  repair_plan_free(&p);
}

/* Caller holds r->mu. Every digest list is in: order the pulls. */
static void do_compare_rows(repair *r, task *t) {
  const wire_part_digest *lists[REPAIR_MAX_REPLICAS];
  size_t counts[REPAIR_MAX_REPLICAS];
  for (size_t i = 0; i < t->nreps; i++) {
    lists[i] = t->reps[i].rows.parts;
    counts[i] = t->reps[i].rows.n;
  }
  repair_plan p;
  if (repair_plan_parts(lists, counts, t->nreps, r->cfg->repair_bytes_per_s, &p) != 0) {
    do_task_fail(r, t, "%s", "out of memory");
    return;
  }
  do_stream_plan(r, t, &p);
  repair_plan_free(&p);
}

static void do_schedule(repair *r);

static task *find_task(repair *r, uint64_t id, int order_done) {
  for (size_t i = 0; i < r->ntasks; i++) {
    task *t = &r->tasks[i];
    if (!t->started || t->st == T_DONE) continue;
    if (!order_done && t->req_id == id) return t;
    if (order_done && t->st == T_STREAM)
      for (size_t k = 0; k < t->norders; k++)
        if (t->orders[k].id == id) return t;
  }
  return NULL;
}

static rep *find_rep(task *t, const char *host_id) {
  for (size_t i = 0; i < t->nreps; i++)
    if (!strcmp(t->reps[i].host_id, host_id)) return &t->reps[i];
  return NULL;
}

static void on_reply(repair *r, int is_tree, const uint8_t *payload, size_t len) {
  wire_repair_reply a;
  if (wire_repair_reply_decode(payload, len, &a) != 0) {
    log_warn("repair: malformed repair answer ignored");
    return;
  }
  pthread_mutex_lock(&r->mu);
  task *t = (a.id & REPAIR_ID_BIT) ? find_task(r, a.id, 0) : NULL;
  rep *p = t && t->st == (is_tree ? T_TREES : T_ROWS) ? find_rep(t, a.host_id) : NULL;
  if (p && a.table_id != t->table_id) {   /* invariant 7: another run's */
    log_warn("repair: an answer from %s for another table ignored", a.host_id);
    p = NULL;
  }
  if (p == NULL || p->got) {   /* invariant 2 */
    pthread_mutex_unlock(&r->mu);
    flush_out(r);
    wire_repair_reply_free(&a);
    return;
  }
  r->exchange_bytes += len;
  if (a.code == CELLAR_ETOOBIG && !is_tree) {
    /* more partitions than a list may hold: stream the differing leaves
    ** whole (the trees are kept until the range ends) */
    wire_repair_reply_free(&a);
    merkle_tree *trees[REPAIR_MAX_REPLICAS];
    for (size_t i = 0; i < t->nreps; i++) trees[i] = &t->reps[i].tree;
    repair_plan pl;
    if (repair_plan_trees(trees, t->nreps, 0, r->cfg->repair_bytes_per_s, &pl) != 0) {
      do_task_fail(r, t, "%s", "out of memory");
    } else {
      log_info("repair: range %" PRId64 "..%" PRId64 ": %s lists too many partitions, "
               "streaming the differing leaves whole", t->lo, t->hi, p->host_id);
      do_stream_plan(r, t, &pl);
      repair_plan_free(&pl);
    }
    do_schedule(r);
    pthread_mutex_unlock(&r->mu);
    flush_out(r);
    return;
  }
  if (a.code) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s answered %s", p->host_id,
             a.message[0] ? a.message : cellar_err_name(a.code));
    do_task_fail(r, t, "%s", msg);
    pthread_mutex_unlock(&r->mu);
    flush_out(r);
    wire_repair_reply_free(&a);
    return;
  }
  if (is_tree) {
    int rc = merkle_decode(a.tree.p, a.tree.n, &p->tree);
    wire_repair_reply_free(&a);
    if (rc == 0 && (p->tree.lo != t->lo || p->tree.hi != t->hi)) {
      merkle_free(&p->tree);
      rc = CELLAR_EPROTO;
    }
    if (rc) {
      do_task_fail(r, t, "%s sent a bad tree", p->host_id);
      pthread_mutex_unlock(&r->mu);
      flush_out(r);
      return;
    }
  } else {
    for (size_t i = 0; i < a.n; i++)
      if (a.parts[i].token < t->lo || a.parts[i].token > t->hi) {
        do_task_fail(r, t, "%s sent a partition outside the range", p->host_id);
        pthread_mutex_unlock(&r->mu);
        flush_out(r);
        wire_repair_reply_free(&a);
        return;
      }
    p->rows = a;   /* kept: the digests point into it */
  }
  p->got = 1;
  size_t got = 0;
  for (size_t i = 0; i < t->nreps; i++) got += t->reps[i].got;
  if (got == t->nreps) {
    if (is_tree) do_compare_trees(r, t);
    else do_compare_rows(r, t);
  }
  do_schedule(r);   /* a range may have ended: start the next at once */
  pthread_mutex_unlock(&r->mu);
  flush_out(r);
}

static void on_order_done(repair *r, const uint8_t *payload, size_t len) {
  wire_order_done d;
  if (wire_order_done_decode(payload, len, &d) != 0) return;
  if (!(d.id & REPAIR_ID_BIT)) {   /* invariant 3: a decommission's */
    wire_order_done_free(&d);
    return;
  }
  pthread_mutex_lock(&r->mu);
  task *t = find_task(r, d.id, 1);
  if (t) {
    size_t left = 0;
    for (size_t k = 0; k < t->norders; k++) {
      order *o = &t->orders[k];
      if (o->id == d.id && !o->done) {
        o->done = 1;
        r->entries += d.entries;
        if (d.code == 0) {   /* streamed: counted now, not when planned */
          r->bytes += o->bytes;
          r->rows += o->rows;
          metrics_add(METRIC_REPAIR_BYTES, o->bytes);
          metrics_add(METRIC_REPAIR_ROWS, o->rows);
        }
        if (d.code) {
          char msg[160];
          snprintf(msg, sizeof msg, "%s could not pull: %s", t->reps[o->target].host_id,
                   d.message);
          do_task_fail(r, t, "%s", msg);
          break;
        }
      }
      left += !o->done;
    }
    if (t->st == T_STREAM && left == 0 && !t->waiting) {
      /* the wave is in: the next one, now or once the throttle allows */
      if (r->throttle_until_ns <= now_ns() + TICK_NS) do_send_wave(r, t);
      else t->waiting = 1;
    }
    do_schedule(r);
  }
  pthread_mutex_unlock(&r->mu);
  flush_out(r);
  wire_order_done_free(&d);
}

/* Loop thread, r->mu not held: m could not be sent (invariant 6). */
static void send_failed(repair *r, const outmsg *m, int rc) {
  pthread_mutex_lock(&r->mu);
  task *t = find_task(r, m->id, 0);
  if (t == NULL) t = find_task(r, m->id, 1);
  if (t) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot send to %s: %s", m->addr, cellar_strerror(rc));
    do_task_fail(r, t, "%s", msg);
    do_schedule(r);
  }
  pthread_mutex_unlock(&r->mu);
}

/* Caller holds r->mu. Whether t waits for something from the replica at
** addr: its tree or digest list, the end of its pulls, or a pull from it. */
static int waits_on(const task *t, const char *addr) {
  if (!t->started || t->st == T_DONE) return 0;
  if (t->st == T_TREES || t->st == T_ROWS) {
    for (size_t i = 0; i < t->nreps; i++)
      if (!t->reps[i].got && !strcmp(t->reps[i].addr, addr)) return 1;
    return 0;
  }
  for (size_t i = 0; !t->waiting && i < t->norders; i++) {
    const order *o = &t->orders[i];
    if (o->done) continue;
    if (!strcmp(t->reps[o->target].addr, addr)) return 1;
    for (size_t k = 0; k < o->n; k++)
      if (!strcmp(o->r[k].source, addr)) return 1;
  }
  return 0;
}

void repair_on_peer_failed(void *arg, const char *addr) {
  repair *r = arg;
  pthread_mutex_lock(&r->mu);
  /* the next ranges start on the next tick, not here: peer calls this
  ** before it drops what is queued for addr, so a request sent now would
  ** be lost silently */
  if (r->running && !r->stopping)
    for (size_t i = 0; i < r->ntasks; i++)
      if (waits_on(&r->tasks[i], addr))
        do_task_fail(r, &r->tasks[i], "lost the connection to replica %s (down or restarted)",
                     addr);
  pthread_mutex_unlock(&r->mu);
}

void repair_on_frame(repair *r, const frame_header *h, const uint8_t *payload) {
  if (r->stopping) return;
  switch (h->type) {
  case FRAME_MERKLE_REQUEST: on_request(r, 1, payload, h->length); break;
  case FRAME_REPAIR_ROWS: on_request(r, 0, payload, h->length); break;
  case FRAME_MERKLE_REPLY: on_reply(r, 1, payload, h->length); break;
  case FRAME_REPAIR_ROWS_REPLY: on_reply(r, 0, payload, h->length); break;
  case FRAME_STREAM_ORDER_DONE: on_order_done(r, payload, h->length); break;
  default: break;
  }
}

/* Caller holds r->mu. */
static void do_finish(repair *r) {
  r->running = 0;
  r->finished_ns = now_ns();
  r->failed = r->nfailed > 0;
  log_info("repair: %s finished: %zu ranges, %" PRIu64 " compared, %" PRIu64 " failed, %" PRIu64
           " mismatches, %" PRIu64 " rows and %" PRIu64 " bytes streamed in %.1f s",
           r->scope, r->ntasks, r->compared, r->nfailed, r->mismatches, r->rows, r->bytes,
           (double)(r->finished_ns - r->started_ns) / 1e9);
}

/* Caller holds r->mu. Starts ranges while a slot is free and the
** throttle allows; finishes the repair once every range is done. */
static void do_schedule(repair *r) {
  if (!r->running) return;
  uint64_t now = now_ns();
  while (!r->stopping && r->next < r->ntasks && r->active < (size_t)r->cfg->repair_parallel &&
         r->throttle_until_ns <= now + TICK_NS)
    do_task_start(r, &r->tasks[r->next++]);
  if (r->ndone == r->ntasks) do_finish(r);
}

/* Caller holds r->mu. Fails t when one of its replicas is now down: its
** answer would only come at the timeout. */
static void do_check_alive(repair *r, task *t) {
  cluster_replica reps[CL_MAX_REPLICAS];
  size_t n = cluster_replicas(r->cl, &t->ks, t->hi, reps, CL_MAX_REPLICAS, NULL);
  for (size_t i = 0; i < n && t->st != T_DONE; i++)
    if (!reps[i].r.alive && find_rep(t, reps[i].host_id))
      do_task_fail(r, t, "replica %s went down", reps[i].host_id);
}

static void on_tick(uv_timer_t *h) {
  repair *r = h->data;
  pthread_mutex_lock(&r->mu);
  if (r->running) {
    uint64_t now = now_ns();
    int check = now - r->checked_ns > 1000000000ull;
    if (check) r->checked_ns = now;
    for (size_t i = 0; i < r->ntasks; i++) {
      task *t = &r->tasks[i];
      /* no deadline between two waves: the wait is the throttle's */
      if (t->started && t->st != T_DONE && !t->waiting && now > t->deadline_ns)
        do_task_fail(r, t, "%s", t->st == T_STREAM ? "streaming timed out"
                                                   : "a replica did not answer in time");
      if (check && t->started && t->st != T_DONE) do_check_alive(r, t);
      if (t->started && (t->st == T_TREES || t->st == T_ROWS) && now > t->retry_ns)
        do_retry(r, t, now);
      if (t->st == T_STREAM && t->waiting && r->throttle_until_ns <= now + TICK_NS)
        do_send_wave(r, t);
    }
    do_schedule(r);
  }
  pthread_mutex_unlock(&r->mu);
  flush_out(r);
  run_waiting(r);
}

int repair_start_timer(repair *r) {
  int rc = uv_timer_init(r->loop, &r->tick);
  if (rc) return CELLAR_EINTERNAL;
  r->tick.data = r;
  uv_timer_start(&r->tick, on_tick, REPAIR_TICK_MS, REPAIR_TICK_MS);
  return 0;
}

void repair_stop(repair *r) {
  pthread_mutex_lock(&r->mu);
  r->stopping = 1;
  if (r->running) {
    for (size_t i = 0; i < r->ntasks; i++)
      if (r->tasks[i].started && r->tasks[i].st != T_DONE)
        do_task_fail(r, &r->tasks[i], "%s", "shutting down");
    r->nfailed += r->ntasks - r->next;
    snprintf(r->error, sizeof r->error, "shutting down");
    do_finish(r);
  }
  pthread_mutex_unlock(&r->mu);
  uv_timer_stop(&r->tick);
  run_waiting(r);   /* stopping: frees the parked builds */
}

/* ============================================================== admin */

typedef struct plan {
  const char *ks, *table;
  int has_range, primary;
  int64_t lo, hi;
  const char *dc;
} plan;

static int parse_token(const char *s, const char *end, int64_t *out) {
  char buf[32];
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *e;
  errno = 0;
  long long v = strtoll(buf, &e, 10);
  if (*e || errno) return -1;
  *out = v;
  return 0;
}

/* Splits args into words (in place, in buf); fills p. */
static int parse_args(char *buf, plan *p, result *res) {
  memset(p, 0, sizeof *p);
  char *save = NULL;
  int npos = 0;
  for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
    if (!strcmp(w, "--primary")) {
      p->primary = 1;
    } else if (!strcmp(w, "--range") || !strcmp(w, "--dc")) {
      char *v = strtok_r(NULL, " ", &save);
      if (v == NULL) return result_error(res, CELLAR_EINVAL, "%s needs a value", w);
      if (!strcmp(w, "--dc")) {
        p->dc = v;
        continue;
      }
      const char *colon = strchr(v + (*v == '-'), ':');
      if (colon == NULL || parse_token(v, colon, &p->lo) ||
          parse_token(colon + 1, colon + 1 + strlen(colon + 1), &p->hi) || p->lo > p->hi ||
          p->lo == INT64_MIN)
        return result_error(res, CELLAR_EINVAL, "malformed range '%s': expected LO:HI, two "
                            "tokens with %" PRId64 " <= LO <= HI", v, (int64_t)INT64_MIN + 1);
      p->has_range = 1;
    } else if (w[0] == '-') {
      return result_error(res, CELLAR_EINVAL, "unknown repair option '%s' (--range LO:HI, "
                          "--dc DC, --primary)", w);
    } else if (npos == 0) {
      p->ks = w, npos++;
    } else if (npos == 1) {
      p->table = w, npos++;
    } else {
      return result_error(res, CELLAR_EINVAL, "repair takes at most KEYSPACE TABLE, not '%s'", w);
    }
  }
  return 0;
}

/* The tables to repair, with their keyspaces (kss[i] is tbs[i]'s). */
static int plan_tables(repair *r, const plan *p, keyspace_def **kss, size_t *nks,
                       table_def **tbs, size_t *ntb, result *res) {
  *kss = NULL;
  *tbs = NULL;
  *nks = *ntb = 0;
  if (p->ks) {
    keyspace_def kd;
    table_def td;
    if (schema_get_keyspace(r->eng->sc, p->ks, &kd) != 0 || kd.dropped)
      return result_error(res, CELLAR_ENOKEYSPACE, "unknown keyspace %s", p->ks);
    if (p->table && (schema_get_table(r->eng->sc, p->ks, p->table, &td) != 0 || td.dropped))
      return result_error(res, CELLAR_ENOTABLE, "unknown table %s.%s", p->ks, p->table);
  }
  keyspace_def *all = NULL;
  table_def *tables = NULL;
  size_t nall = 0, ntables = 0;
  int rc = schema_list(r->eng->sc, p->ks, &all, &nall, &tables, &ntables);
  if (rc) return result_error(res, rc, "cannot list the schema: %s", cellar_strerror(rc));
  keyspace_def *ks = malloc((ntables ? ntables : 1) * sizeof *ks);
  if (ks == NULL) {
    free(all);
    free(tables);
    return result_error(res, CELLAR_ENOMEM, "out of memory");
  }
  size_t n = 0;
  for (size_t i = 0; i < ntables; i++) {
    if (p->table && strcmp(tables[i].name, p->table)) continue;
    for (size_t k = 0; k < nall; k++)
      if (!strcmp(all[k].name, tables[i].keyspace)) {
        ks[n] = all[k];
        tables[n++] = tables[i];
        break;
      }
  }
  free(all);
  *kss = ks;
  *tbs = tables;
  *nks = *ntb = n;
  return 0;
}

/* CELLAR_EINVAL (answered) when no member of the ring is in dc. */
static int check_dc(repair *r, const char *dc, result *res) {
  result st;
  result_init(&st);
  int rc = cluster_view_status(r->cl, NULL, &st), found = 0;
  for (size_t i = 0; rc == 0 && i < st.nmembers && !found; i++)
    found = !strcmp(st.members[i].dc, dc);
  result_free(&st);
  if (rc) return result_error(res, rc, "cannot read the cluster state");
  if (!found) return result_error(res, CELLAR_EINVAL, "unknown datacenter %s", dc);
  return 0;
}

static int do_report(repair *r, result *res) {
  if (!r->has_run) return result_add_info(res, "repair", "none");
  uint64_t end = r->running ? now_ns() : r->finished_ns;
  result_add_info(res, "repair", "%s", r->running ? "running" : r->failed ? "failed" : "done");
  result_add_info(res, "scope", "%s", r->scope);
  result_add_info(res, "ranges", "%zu", r->ntasks);
  result_add_info(res, "ranges_done", "%zu", r->ndone);
  result_add_info(res, "ranges_compared", "%" PRIu64, r->compared);
  result_add_info(res, "ranges_failed", "%" PRIu64, r->nfailed);
  result_add_info(res, "mismatches", "%" PRIu64, r->mismatches);
  result_add_info(res, "partitions_differing", "%" PRIu64, r->parts_differing);
  result_add_info(res, "rows_streamed", "%" PRIu64, r->rows);
  result_add_info(res, "bytes_streamed", "%" PRIu64, r->bytes);
  result_add_info(res, "entries_applied", "%" PRIu64, r->entries);
  result_add_info(res, "replica_bytes", "%" PRIu64, r->range_bytes);
  result_add_info(res, "replica_partitions", "%" PRIu64, r->range_parts);
  result_add_info(res, "exchange_bytes", "%" PRIu64, r->exchange_bytes);
  result_add_info(res, "elapsed_ms", "%" PRIu64, (end - r->started_ns) / 1000000);
  return result_add_info(res, "error", "%s", r->error);
}

int repair_status(repair *r, result *res) {
  pthread_mutex_lock(&r->mu);
  int rc = do_report(r, res);
  pthread_mutex_unlock(&r->mu);
  return rc;
}

int repair_start(repair *r, const char *args, result *res) {
  char buf[512];
  if (strlen(args ? args : "") >= sizeof buf)
    return result_error(res, CELLAR_EINVAL, "repair arguments too long");
  snprintf(buf, sizeof buf, "%s", args ? args : "");
  plan p;
  int rc = parse_args(buf, &p, res);
  if (rc) return rc;
  if (p.dc && (rc = check_dc(r, p.dc, res)) != 0) return rc;
  keyspace_def *kss;
  table_def *tbs;
  size_t nks, ntb;
  if ((rc = plan_tables(r, &p, &kss, &nks, &tbs, &ntb, res)) != 0) return rc;
  cluster_token_range *rg = NULL;
  size_t nrg = 0;
  if ((rc = cluster_token_ranges(r->cl, &rg, &nrg)) != 0) {
    free(kss);
    free(tbs);
    return result_error(res, rc, "out of memory");
  }
  task *tasks = calloc(ntb * (nrg + 1) + 1, sizeof *tasks);
  size_t nt = 0;
  for (size_t i = 0; tasks && i < ntb; i++)
    for (size_t k = 0; k < nrg; k++) {
      int64_t lo = rg[k].lo, hi = rg[k].hi;
      if (p.primary && !rg[k].primary_self) continue;
      if (p.has_range) {   /* the part of the ring range inside lo..hi */
        if (p.lo > lo) lo = p.lo;
        if (p.hi < hi) hi = p.hi;
        if (lo > hi) continue;
      }
      task *t = &tasks[nt++];
      t->table_id = tbs[i].id;
      t->ks = kss[i];
      t->lo = lo;
      t->hi = hi;
    }
  free(rg);
  if (tasks == NULL) {
    free(kss);
    free(tbs);
    return result_error(res, CELLAR_ENOMEM, "out of memory");
  }
  pthread_mutex_lock(&r->mu);
  if (r->running) {
    pthread_mutex_unlock(&r->mu);
    free(tasks);
    free(kss);
    free(tbs);
    return result_error(res, CELLAR_EINVAL, "a repair is already running on this node (%s)",
                        r->scope);
  }
  if (r->stopping) {
    pthread_mutex_unlock(&r->mu);
    free(tasks);
    free(kss);
    free(tbs);
    return result_error(res, CELLAR_ESHUTDOWN, "this node is shutting down");
  }
  tasks_free(r->tasks, r->ntasks);
  r->tasks = tasks;
  r->ntasks = nt;
  r->next = r->active = r->ndone = 0;
  r->compared = r->nfailed = r->mismatches = r->parts_differing = 0;
  r->rows = r->bytes = r->entries = 0;
  r->range_bytes = r->range_parts = r->exchange_bytes = 0;
  r->error[0] = '\0';
  r->has_run = r->running = 1;
  r->failed = 0;
  r->started_ns = now_ns();
  r->throttle_until_ns = 0;
  snprintf(r->dc, sizeof r->dc, "%s", p.dc ? p.dc : "");
  snprintf(r->scope, sizeof r->scope, "%s%s%s (%zu tables)%s%s%s", p.ks ? p.ks : "all keyspaces",
           p.table ? "." : "", p.table ? p.table : "", ntb, p.dc ? " dc " : "",
           p.dc ? p.dc : "", p.primary ? " primary ranges" : "");
  if (p.has_range) {
    size_t l = strlen(r->scope);
    snprintf(r->scope + l, sizeof r->scope - l, " range %" PRId64 ":%" PRId64, p.lo, p.hi);
  }
  log_info("repair: starting %s: %zu ranges", r->scope, nt);
  rc = do_report(r, res);
  pthread_mutex_unlock(&r->mu);
  free(kss);
  free(tbs);
  return rc;
}
