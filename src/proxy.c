/*
** proxy: coordinator I/O and the replica side of replication. See proxy.h.
**
** Design notes
**
**  1. One preq per coordinated request, found by id in a hash table (peer
**     answers name the id). A preq is freed only when its coordinator is
**     finished, no local storage job of it is in flight, and its timer is
**     closed (free_if_done). Answers for an id that is gone are dropped.
**  2. The mutation of a write is built once (storage_put_entries /
**     storage_delete_entries, with the coordinator's timestamp) and the
**     same raw entries go to every replica, this node included, where
**     storage_apply_entries merges them: every replica stores identical
**     versions.
**  3. Reads exchange raw entries, tombstones included, so the coordinator
**     merges replicas with cell_merge exactly as a write would, then
**     applies visibility once (storage_entries_to_result).
**  4. A STORE_HINT action goes to hinted handoff (handoff.h), which
**     stores the mutation (or a timed-out repair's cells) for the replica.
**     The request stays alive (a job) until the hint is written: at ANY
**     the write counts it then (coord_on_hint_stored). Hints for this node
**     itself are not kept, nor any when no handoff is set (counted in
**     hints_dropped). A hint not stored (refused, failed, or not kept)
**     is reported too (coord_on_hint_failed): an ANY write with no
**     replica and no hint gets CELLAR_EUNAVAILABLE at once instead of
**     waiting for its timeout. REPLICA_ACKs of no request go to the
**     handoff: they answer its replays.
**  5. Short reads: a replica whose slice answer was cut by the limit says
**     so (more). Past its last entry the merge knows nothing of what that
**     replica holds, so the answer keeps only entries up to the smallest
**     such last key and tells the client more rows remain.
**  6. A failed connection to a replica is news before the failure
**     detector (which needs ~18 silent gossip rounds) has any: requests
**     waiting on it get an error at once (proxy_on_peer_failed), and new
**     requests treat it as down for a few seconds (peer_failing), so a
**     killed node costs a client error it can retry, not a timeout.
**
**  7. Siblings tables (docs/versions.md): the coordinator of a write is a
**     replica, so that only replicas mint dots. On a replica the client's
**     write is first this node's event (engine_event on a worker: the
**     stored sets, the context, dvv_event, one batch), which is also its
**     own acknowledgement; the resulting sets are the mutation every
**     other replica merges (REPLICA_APPLY) and hints store. A node that
**     is not a replica forwards the request whole (FORWARD_WRITE) to the
**     first live replica, local datacenter first, and relays its answer
**     (FORWARD_REPLY); a forwarded request is never forwarded again.
**
** Request life:
**
**   proxy_submit --build mutation/query--> coord_*_new --> drain()
**        drain: SEND_* -> local job (uv_queue_work) or REPLICA_* frame
**        events: local job done / REPLICA_ACK / REPLICA_READ_REPLY /
**                timer -> coord_on_* -> drain()
**        ANSWER -> encode the response frame -> done()
**        coord finished, no job, timer closed -> freed
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "coordinator.h"
#include "frame.h"
#include "handoff.h"
#include "log.h"
#include "proxy.h"
#include "storage.h"
#include "token.h"
#include "wire_peer.h"

#define BUCKETS 4096

typedef struct preq preq;

struct proxy {
  uv_loop_t *loop;
  const config *cfg;
  engine *eng;
  cluster *cl;
  uint64_t next_id;
  preq *buckets[BUCKETS];
  int stopping;
  int in_fail_walk;            /* proxy_on_peer_failed is not re-entrant */
  handoff *ho;                 /* borrowed; NULL: hints are dropped */
  proxy_stats stats;
};

struct preq {
  preq *next;                  /* bucket chain */
  proxy *p;
  uint64_t id;
  coord *co;
  request *req;                /* the client's request (owned) */
  table_def t;
  keyspace_def ks;
  int is_write;
  storage_query q;             /* reads */
  storage_entries mut;         /* writes: the mutation */
  size_t nrep;
  cluster_replica reps[CL_MAX_REPLICAS];
  uv_timer_t timer;
  int timer_state;             /* 0 none, 1 running, 2 closing, 3 closed */
  int jobs;                    /* local storage jobs in flight */
  proxy_done done;
  void *arg;
  int answered;
  uint8_t *cut;                /* design note 5: malloc'd key, or NULL */
  size_t ncut;
  size_t npending;             /* writes: pending replicas at the end of reps */
  int evented;                 /* note 7: this replica wrote the event */
};

/* ------------------------------------------------------------ registry */

static preq *find(proxy *p, uint64_t id) {
  for (preq *r = p->buckets[id % BUCKETS]; r; r = r->next)
    if (r->id == id) return r;
  return NULL;
}

static void unlink_req(proxy *p, preq *r) {
  preq **pp = &p->buckets[r->id % BUCKETS];
  while (*pp && *pp != r) pp = &(*pp)->next;
  if (*pp) *pp = r->next;
}

static void destroy(preq *r) {
  unlink_req(r->p, r);
  coord_free(r->co);
  storage_entries_free(&r->mut);
  wire_request_free(r->req);
  free(r->cut);
  free(r);
}

static void timer_closed(uv_handle_t *h) {
  preq *r = h->data;
  r->timer_state = 3;
  if (r->jobs == 0) destroy(r);
}

/* Design note 1. */
static void free_if_done(preq *r) {
  if (!r->answered || (r->co && !coord_finished(r->co)) || r->jobs > 0) return;
  if (r->timer_state == 1) {
    r->timer_state = 2;
    uv_close((uv_handle_t *)&r->timer, timer_closed);
  } else if (r->timer_state == 0 || r->timer_state == 3) {
    destroy(r);
  }
}

/* ------------------------------------------------------------ answers */

static void answer_frame(preq *r, uint8_t *frame, size_t len) {
  if (r->answered) {
    free(frame);
    return;
  }
  r->answered = 1;
  r->p->stats.answered++;
  r->done(r->arg, frame, len);
}

static void answer_error(preq *r, int code, const char *msg) {
  size_t len = 0;
  uint8_t *f = wire_encode_error(r->req->type, r->req->id, code, msg, &len);
  answer_frame(r, f, f ? len : 0);
}

/* Encodes coordinator cells as raw entries (key order kept). */
static int cells_to_entries(const coord_cell *cells, size_t n, storage_entries *out) {
  uint8_t stack[4096];
  for (size_t i = 0; i < n; i++) {
    size_t need = cell_encoded_size(&cells[i].v);
    uint8_t *buf = need <= sizeof stack ? stack : malloc(need);
    if (buf == NULL) return CELLAR_ENOMEM;
    size_t len = cell_encode(&cells[i].v, buf);
    int rc = storage_entries_add(out, cells[i].key, CBYTES(buf, len));
    if (buf != stack) free(buf);
    if (rc) return rc;
  }
  return 0;
}

static int key_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
  int c = memcmp(a, b, na < nb ? na : nb);
  return c ? c : (na > nb) - (na < nb);
}

/* Design note 5: remembers the smallest last key of a cut answer. */
static void note_cut(preq *r, int more, const storage_entry *e, size_t n) {
  if (!more || n == 0) return;
  cbytes last = e[n - 1].key;
  if (r->cut && key_cmp(last.p, last.n, r->cut, r->ncut) >= 0) return;
  uint8_t *k = malloc(last.n ? last.n : 1);
  if (k == NULL) return;
  memcpy(k, last.p, last.n);
  free(r->cut);
  r->cut = k;
  r->ncut = last.n;
}

static void answer_read(preq *r, const coord_action *a) {
  storage_entries merged;
  storage_entries_init(&merged);
  result res;
  result_init(&res);
  int more = 0, cut = 0;
  size_t keep = a->ncells;
  if (r->cut)
    for (keep = 0; keep < a->ncells; keep++)
      if (key_cmp(a->cells[keep].key.p, a->cells[keep].key.n, r->cut, r->ncut) > 0) break;
  cut = r->cut != NULL;
  int rc = cells_to_entries(a->cells, keep, &merged);
  if (rc == 0)
    rc = storage_entries_to_result(&r->t, &r->q, merged.e, merged.n, clock_now_s(), &res, &more);
  more |= cut;
  if (rc == 0) rc = engine_finish_slice(r->req, &res, more);
  if (rc && res.code == 0) result_error(&res, rc, "read failed: %s", cellar_strerror(rc));
  size_t len = 0;
  uint8_t *f = wire_encode_response(r->req->type, r->req->id, &res, &len);
  result_free(&res);
  storage_entries_free(&merged);
  if (f == NULL) answer_error(r, CELLAR_ENOMEM, "out of memory encoding the answer");
  else answer_frame(r, f, len);
}

static void on_answer(preq *r, const coord_action *a) {
  if (a->code != 0) {
    if (a->code == CELLAR_ETIMEDOUT) r->p->stats.timeouts++;
    if (a->code == CELLAR_EUNAVAILABLE) r->p->stats.unavailable++;
    answer_error(r, a->code, a->message);
    return;
  }
  if (!r->is_write) {
    answer_read(r, a);
    return;
  }
  result res;
  result_init(&res);
  size_t len = 0;
  uint8_t *f = wire_encode_response(r->req->type, r->req->id, &res, &len);
  result_free(&res);
  if (f == NULL) answer_error(r, CELLAR_ENOMEM, "out of memory");
  else answer_frame(r, f, len);
}

/* --------------------------------------------------- local storage jobs */

typedef struct local_job {
  uv_work_t work;
  preq *r;
  uint32_t replica;
  int kind;                    /* 0 apply, 1 read data, 2 read digest */
  storage_entries apply;       /* kind 0: entries to apply (owned copy) */
  storage_entries read;        /* kinds 1, 2: the answer */
  int more;                    /* kinds 1, 2: cut by the limit */
  int rc;
} local_job;

static void local_work(uv_work_t *w) {
  local_job *j = w->data;
  storage *st = j->r->p->eng->st;
  if (j->kind == 0) {
    j->rc = storage_apply_entries(st, j->apply.e, j->apply.n, NULL);
  } else {
    j->more = 0;
    j->rc = storage_read_entries(st, &j->r->t, &j->r->q, &j->read, &j->more);
  }
}

static void drain(preq *r);

/* Decodes raw entries into coordinator cells (values borrowed from e). */
static coord_cell *entries_to_cells(const storage_entry *e, size_t n, size_t *nout) {
  coord_cell *c = calloc(n + 1, sizeof *c);
  if (c == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (cell_decode(e[i].value.p, e[i].value.n, &c[k].v) != 0) continue;
    c[k].key = e[i].key;
    k++;
  }
  *nout = k;
  return c;
}

static void feed_read(preq *r, uint32_t replica, int digest_only, const storage_entry *e,
                      size_t n) {
  size_t nc = 0;
  coord_cell *cells = entries_to_cells(e, n, &nc);
  if (cells == NULL) {
    coord_on_error(r->co, replica, CELLAR_ENOMEM);
    return;
  }
  if (digest_only) {
    uint8_t d[COORD_DIGEST_LEN];
    coord_digest(cells, nc, d);
    coord_on_digest(r->co, replica, d);
  } else {
    coord_on_data(r->co, replica, cells, nc);
  }
  free(cells);
}

static void local_done(uv_work_t *w, int status) {
  local_job *j = w->data;
  preq *r = j->r;
  (void)status;
  r->jobs--;
  if (r->co && !coord_finished(r->co)) {
    if (j->rc != 0) coord_on_error(r->co, j->replica, j->rc);
    else if (j->kind == 0) coord_on_ack(r->co, j->replica);
    else {
      if (j->kind == 1) note_cut(r, j->more, j->read.e, j->read.n);
      feed_read(r, j->replica, j->kind == 2, j->read.e, j->read.n);
    }
    drain(r);
  }
  storage_entries_free(&j->apply);
  storage_entries_free(&j->read);
  free(j);
  free_if_done(r);
}

static void local_start(preq *r, uint32_t replica, int kind, const storage_entry *e, size_t n) {
  local_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    coord_on_error(r->co, replica, CELLAR_ENOMEM);
    return;
  }
  j->r = r;
  j->replica = replica;
  j->kind = kind;
  j->work.data = j;
  storage_entries_init(&j->apply);
  storage_entries_init(&j->read);
  for (size_t i = 0; i < n; i++)
    if (storage_entries_add(&j->apply, e[i].key, e[i].value) != 0) {
      storage_entries_free(&j->apply);
      free(j);
      coord_on_error(r->co, replica, CELLAR_ENOMEM);
      return;
    }
  r->jobs++;
  if (uv_queue_work(r->p->loop, &j->work, local_work, local_done) != 0) {
    r->jobs--;
    storage_entries_free(&j->apply);
    free(j);
    coord_on_error(r->co, replica, CELLAR_EINTERNAL);
  }
}

/* ------------------------------------------------------- remote sends */

static void send_apply(preq *r, uint32_t replica, const storage_entry *e, size_t n,
                       const uint32_t *fwd, size_t nfwd) {
  if (r->reps[replica].is_self) {
    local_start(r, replica, 0, e, n);
    return;
  }
  const char *fw[CL_MAX_REPLICAS];
  size_t k = 0;
  for (size_t i = 0; i < nfwd && k < CL_MAX_REPLICAS; i++)
    if (fwd[i] < r->nrep) fw[k++] = r->reps[fwd[i]].peer_addr;
  size_t len = 0;
  uint8_t *p = wire_mutation_encode(r->id, cluster_peer_addr(r->p->cl), cluster_name(r->p->cl),
                                    e, n, fw, k, &len);
  int rc = p ? cluster_send(r->p->cl, r->reps[replica].peer_addr, FRAME_REPLICA_APPLY, 0, p, len)
             : CELLAR_ENOMEM;
  free(p);
  if (rc) {
    coord_on_error(r->co, replica, rc);
    for (size_t i = 0; i < nfwd; i++) coord_on_error(r->co, fwd[i], rc);
  }
}

static void send_read(preq *r, uint32_t replica, int digest_only) {
  if (r->reps[replica].is_self) {
    local_start(r, replica, digest_only ? 2 : 1, NULL, 0);
    return;
  }
  wire_read w = {
    .id = r->id, .from = cluster_peer_addr(r->p->cl), .cluster = cluster_name(r->p->cl),
    .table_id = r->t.id, .pk = r->q.pk, .has_start = r->q.has_start, .start = r->q.start,
    .start_exclusive = r->q.start_exclusive, .has_end = r->q.has_end, .end = r->q.end,
    .limit = r->q.limit, .digest_only = digest_only};
  size_t len = 0;
  uint8_t *p = wire_read_encode(&w, &len);
  int rc = p ? cluster_send(r->p->cl, r->reps[replica].peer_addr, FRAME_REPLICA_READ, 0, p, len)
             : CELLAR_ENOMEM;
  free(p);
  if (rc) coord_on_error(r->co, replica, rc);
}

static void send_repair(preq *r, uint32_t replica, const coord_cell *cells, size_t n) {
  storage_entries e;
  storage_entries_init(&e);
  if (cells_to_entries(cells, n, &e) == 0) {
    r->p->stats.read_repairs++;
    send_apply(r, replica, e.e, e.n, NULL, 0);
  } else {
    coord_on_error(r->co, replica, CELLAR_ENOMEM);
  }
  storage_entries_free(&e);
}

/* ------------------------------------------------------------- hints */

typedef struct hint_job {
  preq *r;
  uint32_t replica;
} hint_job;

static void hint_stored(void *arg, int rc) {
  hint_job *hj = arg;
  preq *r = hj->r;
  r->jobs--;
  if (r->co && !coord_finished(r->co)) {
    if (rc == 0) coord_on_hint_stored(r->co, hj->replica);
    else coord_on_hint_failed(r->co, hj->replica, rc);   /* design note 4 */
    drain(r);
  }
  free(hj);
  free_if_done(r);
}

/* Design note 4. */
static void store_hint(preq *r, const coord_action *a) {
  proxy *p = r->p;
  if (p->ho == NULL || a->replica >= r->nrep || r->reps[a->replica].is_self) {
    p->stats.hints_dropped++;
    coord_on_hint_failed(r->co, a->replica, CELLAR_EUNAVAILABLE);
    return;
  }
  storage_entries cells;
  storage_entries_init(&cells);
  const storage_entry *e = r->mut.e;
  size_t n = r->mut.n;
  int rc = 0;
  if (a->ncells) {            /* a read repair that timed out */
    rc = cells_to_entries(a->cells, a->ncells, &cells);
    e = cells.e;
    n = cells.n;
  }
  hint_job *hj = rc == 0 ? malloc(sizeof *hj) : NULL;
  if (hj) {
    hj->r = r;
    hj->replica = a->replica;
    r->jobs++;
    rc = handoff_store(p->ho, r->reps[a->replica].host_id, e, n, r->t.gc_grace, hint_stored, hj);
    if (rc) {
      r->jobs--;
      free(hj);
    }
  }
  if (hj == NULL || rc) {
    p->stats.hints_dropped++;
    coord_on_hint_failed(r->co, a->replica, rc ? rc : CELLAR_ENOMEM);
  }
  storage_entries_free(&cells);
}

/* Runs the coordinator's queued actions (they may queue more). */
static void drain(preq *r) {
  coord_action a;
  while (coord_next(r->co, &a)) {
    switch (a.kind) {
    case COORD_SEND_WRITE:
      /* note 7: this replica already wrote (the event) */
      if (r->evented && r->reps[a.replica].is_self) coord_on_ack(r->co, a.replica);
      else send_apply(r, a.replica, r->mut.e, r->mut.n, NULL, 0);
      break;
    case COORD_SEND_WRITE_FORWARD:
      send_apply(r, a.replica, r->mut.e, r->mut.n, a.forward, a.nforward);
      break;
    case COORD_STORE_HINT:
      store_hint(r, &a);   /* design note 4 */
      break;
    case COORD_SEND_DATA:
      send_read(r, a.replica, 0);
      break;
    case COORD_SEND_DIGEST:
      send_read(r, a.replica, 1);
      break;
    case COORD_READ_REPAIR:
      send_repair(r, a.replica, a.cells, a.ncells);
      break;
    case COORD_ANSWER:
      on_answer(r, &a);
      break;
    }
  }
}

static void on_timer(uv_timer_t *t) {
  preq *r = t->data;
  if (r->co && !coord_finished(r->co)) {
    coord_on_timeout(r->co);
    drain(r);
  } else if (r->co == NULL && !r->answered) {
    r->p->stats.timeouts++;   /* a forwarded write (note 7) */
    answer_error(r, CELLAR_ETIMEDOUT, "timed out: the replica the write was forwarded to did not answer");
  }
  free_if_done(r);
}

static void start_timer(preq *r, int timeout_ms) {
  uv_timer_init(r->p->loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, on_timer, (uint64_t)timeout_ms, 0);
  r->timer_state = 1;
}

/* ------------------------------------------------------- coordinating */

int proxy_new(uv_loop_t *loop, const config *cfg, engine *eng, cluster *cl, proxy **out) {
  proxy *p = calloc(1, sizeof *p);
  if (p == NULL) return CELLAR_ENOMEM;
  p->loop = loop;
  p->cfg = cfg;
  p->eng = eng;
  p->cl = cl;
  p->next_id = clock_random64() | 1;
  *out = p;
  return 0;
}

void proxy_free(proxy *p) { free(p); }

void proxy_set_handoff(proxy *p, handoff *ho) { p->ho = ho; }

void proxy_get_stats(const proxy *p, proxy_stats *out) { *out = p->stats; }

static int is_data_op(unsigned type) {
  return type == FRAME_PUT || type == FRAME_DELETE || type == FRAME_GET || type == FRAME_SLICE;
}

int proxy_admit(proxy *p, const request *req, char *msg, size_t cap) {
  if (p == NULL || !is_data_op(req->type) || cluster_ring_learned(p->cl)) return 0;
  snprintf(msg, cap, "node is starting: ring not yet learned from gossip");
  return CELLAR_ESTARTING;
}

int proxy_needed(proxy *p, const request *req) {
  if (p == NULL || !is_data_op(req->type)) return 0;
  table_def t;
  keyspace_def ks;
  if (schema_get_table(p->eng->sc, req->keyspace, req->table, &t) != 0 ||
      schema_get_keyspace(p->eng->sc, req->keyspace, &ks) != 0)
    return 0;   /* the engine answers the error */
  cluster_replica reps[CL_MAX_REPLICAS];
  size_t np = 0;
  int write = req->type == FRAME_PUT || req->type == FRAME_DELETE;
  size_t n = cluster_replicas(p->cl, &ks, token_of(req->partition.p, req->partition.n),
                              reps, CL_MAX_REPLICAS, write ? &np : NULL);
  /* no ring yet (alone, or still joining): serve from local storage */
  if (n == 0) return 0;
  /* the only replica is this node: a single-node keyspace. Not when the
  ** keyspace wants more replicas: a node that restarted knows only itself
  ** until gossip brings the others, and answering a QUORUM write alone
  ** then (for a key it may not even own) loses it (test_history found
  ** this); the coordinator answers UNAVAILABLE instead */
  uint32_t rf = ks.rf;
  if (ks.strategy == REPL_NETWORK_TOPOLOGY) {
    rf = 0;
    for (size_t i = 0; i < ks.ndcs; i++) rf += ks.dcs[i].rf;
  }
  return !(n == 1 && reps[0].is_self && rf <= 1 && req->consistency != CELLAR_CL_TWO &&
           req->consistency != CELLAR_CL_THREE);
}

/* Creates the coordinator of r (replicas known, mutation built) and starts
** its deadline. 0 or an error with its message in res. */
static int start_coord(preq *r, result *res) {
  proxy *p = r->p;
  cl_replica cr[CL_MAX_REPLICAS];
  for (size_t i = 0; i < r->nrep; i++) cr[i] = r->reps[i].r;
  int timeout = r->is_write ? p->cfg->write_timeout_ms : p->cfg->read_timeout_ms;
  coord_config cc = {.id = r->id, .level = (cellar_consistency_t)r->req->consistency,
                     .ks = &r->ks, .local_dc = cluster_local_dc(p->cl), .replicas = cr,
                     .nreplicas = r->nrep, .npending = r->npending,
                     .deadline_ns = clock_mono_ns() + (uint64_t)timeout * 1000000ull};
  int rc = r->is_write ? coord_write_new(&cc, &r->co) : coord_read_new(&cc, &r->co);
  if (rc) return result_error(res, rc, "cannot coordinate: %s", cellar_strerror(rc));
  start_timer(r, timeout);
  return 0;
}

/* Index of this node among r's ring replicas (pending ones excluded:
** they do not own the key yet), or -1. */
static int self_replica(const preq *r) {
  for (size_t i = 0; i + r->npending < r->nrep; i++)
    if (r->reps[i].is_self) return (int)i;
  return -1;
}

/* --------------------------------------------- siblings tables (note 7) */

typedef struct event_job {
  uv_work_t work;
  preq *r;
  storage_entries sets;        /* the versions written, to replicate */
  result res;
  int rc;
} event_job;

static void event_work(uv_work_t *w) {
  event_job *j = w->data;
  preq *r = j->r;
  j->rc = engine_event(r->p->eng, &r->t, r->req, &r->mut, &j->sets, &j->res);
}

static void event_done(uv_work_t *w, int status) {
  event_job *j = w->data;
  preq *r = j->r;
  (void)status;
  r->jobs--;
  int rc = j->rc;
  if (rc == 0 && !r->answered) {
    /* the replicas receive the resulting sets, not the client's write */
    storage_entries_free(&r->mut);
    r->mut = j->sets;
    storage_entries_init(&j->sets);
    r->evented = 1;
    rc = start_coord(r, &j->res);
    if (rc == 0) drain(r);
  }
  if (rc) answer_error(r, j->res.code ? j->res.code : rc, j->res.message);
  storage_entries_free(&j->sets);
  result_free(&j->res);
  free(j);
  free_if_done(r);
}

/* This node is a replica: its own write (dvv event) on a worker thread,
** then the coordinator replicates the sets. */
static int event_start(preq *r, result *res) {
  event_job *j = calloc(1, sizeof *j);
  if (j == NULL) return result_error(res, CELLAR_ENOMEM, "out of memory");
  j->r = r;
  storage_entries_init(&j->sets);
  result_init(&j->res);
  j->work.data = j;
  r->jobs++;
  if (uv_queue_work(r->p->loop, &j->work, event_work, event_done) != 0) {
    r->jobs--;
    free(j);
    return result_error(res, CELLAR_EINTERNAL, "cannot queue the write");
  }
  return 0;
}

/* Not a replica: the request goes whole to the first live replica (the
** local datacenter's first), which coordinates and answers. */
static int forward_start(preq *r, result *res) {
  proxy *p = r->p;
  if (r->req->forwarded)
    return result_error(res, CELLAR_EUNAVAILABLE,
                        "forwarded write reached a node that is not a replica "
                        "(ring changing): retry");
  int to = -1;
  for (size_t i = 0; to < 0 && i + r->npending < r->nrep; i++)
    if (r->reps[i].r.alive) to = (int)i;
  if (to < 0)
    return result_error(res, CELLAR_EUNAVAILABLE,
                        "no replica alive to coordinate the write");
  size_t len = 0;
  uint8_t *f = wire_forward_encode(r->id, cluster_name(p->cl), cluster_peer_addr(p->cl),
                                   r->req, &len);
  if (f == NULL) return result_error(res, CELLAR_ENOMEM, "out of memory");
  int rc = cluster_send(p->cl, r->reps[to].peer_addr, FRAME_FORWARD_WRITE, 0, f, len);
  free(f);
  if (rc)
    return result_error(res, rc, "cannot forward the write to replica %s: %s",
                        r->reps[to].peer_addr, cellar_strerror(rc));
  p->stats.forwarded++;
  start_timer(r, p->cfg->write_timeout_ms);
  return 0;
}

void proxy_submit(proxy *p, request *req, proxy_done done, void *arg) {
  preq *r = calloc(1, sizeof *r);
  if (r == NULL) {
    size_t len = 0;
    uint8_t *f = wire_encode_error(req->type, req->id, CELLAR_ENOMEM, "out of memory", &len);
    wire_request_free(req);
    done(arg, f, f ? len : 0);
    return;
  }
  r->p = p;
  r->req = req;
  r->done = done;
  r->arg = arg;
  r->id = p->next_id++;
  r->is_write = req->type == FRAME_PUT || req->type == FRAME_DELETE;
  storage_entries_init(&r->mut);
  r->next = p->buckets[r->id % BUCKETS];
  p->buckets[r->id % BUCKETS] = r;
  p->stats.coordinated++;

  result res;
  result_init(&res);
  int rc = p->stopping ? result_error(&res, CELLAR_ESHUTDOWN, "node is shutting down")
                       : engine_table(p->eng, req, &r->t, &res);
  if (rc == 0 && schema_get_keyspace(p->eng->sc, req->keyspace, &r->ks) != 0)
    rc = result_error(&res, CELLAR_ENOKEYSPACE, "unknown keyspace %s", req->keyspace);
  if (rc == 0 && !r->is_write) rc = engine_query(p->eng, req, &r->q, &res);
  if (rc == 0 && r->is_write) {
    int64_t ts = req->timestamp ? req->timestamp : clock_now_us();
    if (req->type == FRAME_PUT) {
      uint32_t ttl = req->ttl ? req->ttl : r->t.default_ttl;
      rc = storage_put_entries(&r->t, req->partition, req->rows, req->nrows, ts, ttl,
                               clock_now_s(), &r->mut);
    } else {
      rc = storage_delete_entries(&r->t, req->partition, req->scope, req->ck, req->cols,
                                  req->ncols, ts, clock_now_s(), &r->mut);
    }
    if (rc) result_error(&res, rc, "cannot build the mutation: %s", cellar_strerror(rc));
  }
  if (rc == 0) {
    r->nrep = cluster_replicas(p->cl, &r->ks, token_of(req->partition.p, req->partition.n),
                               r->reps, CL_MAX_REPLICAS, r->is_write ? &r->npending : NULL);
    for (size_t i = 0; i < r->nrep; i++)
      /* a replica whose connection just failed counts as down before the
      ** failure detector agrees (design note 6) */
      if (!r->reps[i].is_self && r->reps[i].r.alive &&
          cluster_peer_failing(p->cl, r->reps[i].peer_addr))
        r->reps[i].r.alive = 0;
    if (r->is_write && r->t.policy == POLICY_SIBLINGS) {
      /* design note 7: a replica coordinates, its own write first */
      if (self_replica(r) >= 0) rc = event_start(r, &res);
      else rc = forward_start(r, &res);
      if (rc == 0) {
        result_free(&res);
        free_if_done(r);
        return;
      }
    }
  }
  if (rc == 0) rc = start_coord(r, &res);
  if (rc) answer_error(r, res.code ? res.code : rc, res.message);
  else drain(r);
  result_free(&res);
  free_if_done(r);
}

void proxy_on_peer_failed(void *arg, const char *addr) {
  proxy *p = arg;
  handoff_on_peer_failed(p->ho, addr);
  if (p->in_fail_walk) return;   /* a send inside the walk failed at once */
  p->in_fail_walk = 1;
  for (size_t b = 0; b < BUCKETS; b++) {
    preq *r = p->buckets[b];
    while (r) {
      preq *next = r->next;
      int hit = 0;
      for (size_t i = 0; r->co && !coord_finished(r->co) && i < r->nrep; i++)
        if (!r->reps[i].is_self && !strcmp(r->reps[i].peer_addr, addr)) {
          coord_on_error(r->co, (uint32_t)i, CELLAR_ECLOSED);
          hit = 1;
        }
      if (hit) {
        drain(r);
        free_if_done(r);
      }
      r = next;
    }
  }
  p->in_fail_walk = 0;
}

void proxy_stop(proxy *p) {
  p->stopping = 1;
  for (size_t b = 0; b < BUCKETS; b++)
    for (preq *r = p->buckets[b]; r; r = r->next)
      if (!r->answered) answer_error(r, CELLAR_ESHUTDOWN, "node is shutting down");
}

/* ----------------------------------------------------- replica answers */

static int replica_of(preq *r, const char *host_id) {
  for (size_t i = 0; i < r->nrep; i++)
    if (!strcmp(r->reps[i].host_id, host_id)) return (int)i;
  return -1;
}

static void on_ack(proxy *p, const uint8_t *payload, size_t len) {
  wire_ack a;
  if (wire_ack_decode(payload, len, &a) != 0) return;
  preq *r = find(p, a.id);
  if (r == NULL && p->ho) {     /* design note 4: a hint replay's answer */
    handoff_on_ack(p->ho, a.id, a.host_id, a.code);
    wire_ack_free(&a);
    return;
  }
  int i = r ? replica_of(r, a.host_id) : -1;
  if (i >= 0 && r->co && !coord_finished(r->co)) {
    if (a.code) coord_on_error(r->co, (uint32_t)i, a.code);
    else coord_on_ack(r->co, (uint32_t)i);
    drain(r);
    free_if_done(r);
  }
  wire_ack_free(&a);
}

static void on_read_reply(proxy *p, const uint8_t *payload, size_t len) {
  wire_read_reply w;
  if (wire_read_reply_decode(payload, len, &w) != 0) return;
  preq *r = find(p, w.id);
  int i = r ? replica_of(r, w.host_id) : -1;
  if (i >= 0 && r->co && !coord_finished(r->co)) {
    if (w.code) coord_on_error(r->co, (uint32_t)i, w.code);
    else if (w.digest.n == COORD_DIGEST_LEN) coord_on_digest(r->co, (uint32_t)i, w.digest.p);
    else {
      note_cut(r, w.more, w.e, w.n);
      feed_read(r, (uint32_t)i, 0, w.e, w.n);
    }
    drain(r);
    free_if_done(r);
  }
  wire_read_reply_free(&w);
}

/* ------------------------------------------------------- replica side */

typedef struct replica_job {
  uv_work_t work;
  proxy *p;
  int kind;                    /* 0 apply, 1 read */
  wire_mutation m;
  wire_read rd;
  uint8_t *out;                /* the encoded answer */
  size_t outlen;
  char to[80];
} replica_job;

static void replica_work(uv_work_t *w) {
  replica_job *j = w->data;
  engine *e = j->p->eng;
  const char *self = cluster_host_id(j->p->cl);
  if (j->kind == 0) {
    int rc = storage_apply_entries(e->st, j->m.e, j->m.n, NULL);
    j->out = wire_ack_encode(j->m.id, self, rc, rc ? cellar_strerror(rc) : "", &j->outlen);
    return;
  }
  wire_read_reply rep = {.id = j->rd.id, .host_id = self};
  table_def t;
  storage_entries got;
  storage_entries_init(&got);
  uint8_t digest[COORD_DIGEST_LEN];
  int rc = schema_get_table_by_id(e->sc, j->rd.table_id, &t);
  if (rc == 0) {
    storage_query q = {.pk = j->rd.pk, .has_start = j->rd.has_start, .start = j->rd.start,
                       .start_exclusive = j->rd.start_exclusive, .has_end = j->rd.has_end,
                       .end = j->rd.end, .limit = j->rd.limit};
    int more = 0;
    rc = storage_read_entries(e->st, &t, &q, &got, &more);
    rep.more = more;
  }
  if (rc) {
    rep.code = rc;
    rep.message = cellar_strerror(rc);
  } else if (j->rd.digest_only) {
    size_t nc = 0;
    coord_cell *cells = entries_to_cells(got.e, got.n, &nc);
    if (cells) {
      coord_digest(cells, nc, digest);
      rep.digest = CBYTES(digest, sizeof digest);
      free(cells);
    } else {
      rep.code = CELLAR_ENOMEM;
    }
  } else {
    rep.n = got.n;
    rep.e = got.e;
  }
  j->out = wire_read_reply_encode(&rep, &j->outlen);
  storage_entries_free(&got);
}

static void replica_done(uv_work_t *w, int status) {
  replica_job *j = w->data;
  (void)status;
  if (j->out)
    cluster_send(j->p->cl, j->to, j->kind == 0 ? FRAME_REPLICA_ACK : FRAME_REPLICA_READ_REPLY,
                 0, j->out, j->outlen);
  free(j->out);
  if (j->kind == 0) wire_mutation_free(&j->m);
  else wire_read_free(&j->rd);
  free(j);
}

static void replica_start(replica_job *j, const char *to) {
  snprintf(j->to, sizeof j->to, "%s", to);
  j->work.data = j;
  if (uv_queue_work(j->p->loop, &j->work, replica_work, replica_done) != 0) replica_done(&j->work, 0);
}

static void on_apply(proxy *p, const uint8_t *payload, size_t len) {
  replica_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->p = p;
  if (wire_mutation_decode(payload, len, &j->m) != 0 ||
      strcmp(j->m.cluster, cluster_name(p->cl)) != 0 || j->m.from[0] == '\0') {
    wire_mutation_free(&j->m);
    free(j);
    return;
  }
  p->stats.replica_applies++;
  /* a copy that crossed datacenters goes on to the others of this one;
  ** they answer the coordinator directly */
  if (j->m.nfwd) {
    size_t n = 0;
    uint8_t *f = wire_mutation_encode(j->m.id, j->m.from, j->m.cluster, j->m.e, j->m.n,
                                      NULL, 0, &n);
    for (size_t i = 0; f && i < j->m.nfwd; i++)
      cluster_send(p->cl, j->m.fwd[i], FRAME_REPLICA_APPLY, 0, f, n);
    free(f);
  }
  replica_start(j, j->m.from);
}

static void on_read(proxy *p, const uint8_t *payload, size_t len) {
  replica_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->p = p;
  j->kind = 1;
  if (wire_read_decode(payload, len, &j->rd) != 0 ||
      strcmp(j->rd.cluster, cluster_name(p->cl)) != 0 || j->rd.from[0] == '\0') {
    wire_read_free(&j->rd);
    free(j);
    return;
  }
  p->stats.replica_reads++;
  replica_start(j, j->rd.from);
}

/* ------------------------------------------- forwarded writes (note 7) */

typedef struct fwd_ctx {
  proxy *p;
  uint64_t fid;
  char to[80];
} fwd_ctx;

static void fwd_done(void *arg, uint8_t *frame, size_t len) {
  fwd_ctx *c = arg;
  size_t n = 0;
  uint8_t *f = frame ? wire_forward_reply_encode(c->fid, frame, len, &n) : NULL;
  if (f) cluster_send(c->p->cl, c->to, FRAME_FORWARD_REPLY, 0, f, n);
  free(f);
  free(frame);
  free(c);
}

static void on_forward(proxy *p, const uint8_t *payload, size_t len) {
  uint64_t fid;
  cbytes cl, from;
  request *req = NULL;
  char err[160];
  int rc = wire_forward_decode(payload, len, &fid, &cl, &from, &req, err, sizeof err);
  const char *name = cluster_name(p->cl);
  if (rc == 0 && (cl.n != strlen(name) || memcmp(cl.p, name, cl.n) != 0 || from.n == 0 ||
                  from.n >= sizeof ((fwd_ctx *)0)->to))
    rc = CELLAR_EPROTO;
  fwd_ctx *c = rc == 0 ? calloc(1, sizeof *c) : NULL;
  if (c == NULL) {
    if (rc) log_warn("proxy: FORWARD_WRITE refused: %s", err[0] ? err : cellar_strerror(rc));
    wire_request_free(req);
    return;
  }
  c->p = p;
  c->fid = fid;
  memcpy(c->to, from.p, from.n);
  req->forwarded = 1;
  proxy_submit(p, req, fwd_done, c);
}

static void on_forward_reply(proxy *p, const uint8_t *payload, size_t len) {
  uint64_t fid;
  cbytes body;
  if (wire_forward_reply_decode(payload, len, &fid, &body) != 0) return;
  preq *r = find(p, fid);
  if (r == NULL || r->co != NULL || r->answered || body.n > UINT32_MAX - FRAME_HEADER_SIZE)
    return;
  uint8_t *f = malloc(FRAME_HEADER_SIZE + body.n);
  if (f == NULL) {
    answer_error(r, CELLAR_ENOMEM, "out of memory");
  } else {
    /* the replica's answer under the client's request id */
    frame_header h = {.magic = FRAME_MAGIC, .version = FRAME_VERSION, .type = r->req->type,
                      .flags = FRAME_FLAG_RESPONSE, .request_id = r->req->id,
                      .length = (uint32_t)body.n};
    frame_header_encode(&h, f);
    if (body.n) memcpy(f + FRAME_HEADER_SIZE, body.p, body.n);
    answer_frame(r, f, FRAME_HEADER_SIZE + body.n);
  }
  free_if_done(r);
}

void proxy_on_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  proxy *p = arg;
  switch (h->type) {
  case FRAME_FORWARD_WRITE: on_forward(p, payload, h->length); break;
  case FRAME_FORWARD_REPLY: on_forward_reply(p, payload, h->length); break;
  case FRAME_REPLICA_APPLY: on_apply(p, payload, h->length); break;
  case FRAME_REPLICA_READ: on_read(p, payload, h->length); break;
  case FRAME_REPLICA_ACK: on_ack(p, payload, h->length); break;
  case FRAME_REPLICA_READ_REPLY: on_read_reply(p, payload, h->length); break;
  default: log_warn("proxy: unknown peer frame type %u ignored", h->type);
  }
}
