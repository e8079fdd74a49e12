/*
** Deterministic simulation of the coordinator (coordinator.c) over a
** simulated network of 5 replicas.
**
** One process, one simulated clock, one event queue. Each node holds its
** cells in a map (key x column -> version) and answers the messages the
** coordinator's actions turn into (write, forwarded write, data, digest,
** read repair) after a random network delay; now and then a replica
** answers an error instead (overload) or a message is slow (long tail past
** the request timeout). Clients issue writes, deletes and reads on a few
** hot keys through a random live node, with random consistency levels
** drawn from pairs whose replica sets intersect (R + W > N). The replica
** sets come from the real ring (ring.c) over the keys' Murmur3 tokens.
** One node is down at a time: known down from the start, or going down
** mid-run without the coordinators knowing until a detection delay has
** passed (its in-flight requests are lost), then coming back stale.
**
** The checker, in simulated real time:
**   - read-your-writes: a read that started after a write was
**     acknowledged, with intersecting replica sets, returns that write or
**     a newer version of every column it wrote;
**   - monotonic reads: a read that started after another one was
**     answered, intersecting it, returns nothing older (what blocking
**     read repair guarantees);
**   - every version returned was written by someone;
**   - every request is answered exactly once (or lost with its node);
**   - at the end, one ALL read per key repairs every stale replica: all
**     replicas hold the same cells, at least as new as every acked write.
**
** Everything random comes from one seed (SIM_SEED, default 1): a failing
** run prints the command that replays it.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "coordinator.h"
#include "ring.h"
#include "testutil.h"
#include "token.h"

#define MS 1000000ull
#define SEC 1000000000ull

#define NNODES 5
#define NKEYS 32
#define NHOT 8                 /* keys 0..7 take 70% of the operations */
#define NCOLS 3
#define NCLIENTS 12
#define TIMEOUT (500 * MS)
#define CLIENT_GIVE_UP (1 * SEC)
#define DETECT_DELAY (2 * SEC)
#define RUN_END (180 * SEC)      /* clients stop */

/* ----------------------------------------------------------- model */

typedef struct simcell {
  int col;                     /* -1: absent */
  int64_t ts;
  uint8_t tomb;
  uint32_t del;                /* tombstone: deletion time, from the client */
  uint8_t nval;
  char val[24];
} simcell;

enum {
  /* to a replica */
  M_WRITE = 1, M_WRITE_FWD, M_READ_DATA, M_READ_DIGEST, M_REPAIR,
  /* to a coordinator */
  M_ACK, M_ERROR, M_DATA, M_DIGEST,
  /* timers and faults */
  E_TIMEOUT, E_CLIENT, E_GIVE_UP, E_DOWN, E_UP, E_VIEW_DOWN, E_VIEW_UP
};

typedef struct ev {
  uint64_t at, seq;
  int kind;
  int to, from;                /* nodes; from of a reply is the replica */
  int reply_to;                /* requests: the coordinator's node */
  uint64_t req;
  int key;
  int ncells;
  simcell cells[NCOLS];
  uint8_t digest[COORD_DIGEST_LEN];
  int nfwd;
  int fwd[NNODES];
  int code;
} ev;

typedef struct cover {
  int total;
  int dc[2];
} cover;

typedef struct req {
  coord *c;
  int node, client, is_read, key;
  cellar_consistency_t level;
  cover cov;
  uint64_t start, end;
  int answers;
  int code;
  int nw;
  simcell w[NCOLS];            /* the mutation of a write */
  simcell got[NCOLS];          /* a read's answer, by column */
  int lost;
} req;

typedef struct node {
  int up;
  char dc[8];
  simcell store[NKEYS][NCOLS];
} node;

typedef struct wlog {          /* an acknowledged write, for the checker */
  uint64_t ack;
  int64_t ts;
  int cols;                    /* bit mask */
  cellar_consistency_t level;
  cover cov;
} wlog;

typedef struct rlog {          /* an answered read */
  uint64_t end;
  int64_t ts[NCOLS];           /* -1: absent */
  cover cov;
} rlog;

typedef struct sim {
  uint64_t now, seq, rng;
  int nts;                     /* scenario: NetworkTopologyStrategy */
  keyspace_def ks;
  ring rg;
  node nodes[NNODES];
  int view[NNODES];            /* the coordinators' failure detector */
  ev *heap;
  size_t nheap, capheap;
  req *reqs;
  size_t nreqs, capreqs;
  int64_t ts_counter;
  int stop_clients;
  /* checker */
  wlog *wl[NKEYS];
  size_t nwl[NKEYS], capwl[NKEYS];
  rlog *rl[NKEYS];
  size_t nrl[NKEYS], caprl[NKEYS];
  int64_t written[NKEYS][NCOLS];      /* highest ts ever sent per column */
  /* figures */
  long ops, writes_ok, reads_ok, unavailable, timeouts, errors, lost, bad_answers;
  long mismatches, repairs, repaired_cells, hints, forwards, replica_errors;
  long ryw_checks, ryw_skipped, mono_checks, violations, unknown_versions;
  long msgs, dropped;
  long stale_at_return;        /* stale replica cells when a node came back */
  int check_all;               /* also check pairs that do not intersect */
  long weak_stale;             /* ... and the reads found stale there */
  const struct profile *only;  /* every operation at these levels */
  long level_ops[CELLAR_CL_ANY + 1];
} sim;

static sim S;
static uint64_t seed = 1;

static uint64_t rnd(void) {
  uint64_t z = (S.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void fail_hint(void) {
  printf("\n  replay: SIM_SEED=%llu tests/sim/test_coordinator_sim\n", (unsigned long long)seed);
}

/* ------------------------------------------------------- event queue */

static int ev_less(const ev *a, const ev *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(const ev *e0) {
  if (S.nheap == S.capheap) {
    S.capheap = S.capheap ? S.capheap * 2 : 1024;
    S.heap = realloc(S.heap, S.capheap * sizeof *S.heap);
  }
  ev e = *e0;
  e.seq = S.seq++;
  size_t i = S.nheap++;
  while (i > 0 && ev_less(&e, &S.heap[(i - 1) / 2])) {
    S.heap[i] = S.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  S.heap[i] = e;
}

static ev pop(void) {
  ev top = S.heap[0];
  ev last = S.heap[--S.nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= S.nheap) break;
    if (c + 1 < S.nheap && ev_less(&S.heap[c + 1], &S.heap[c])) c++;
    if (!ev_less(&S.heap[c], &last)) break;
    S.heap[i] = S.heap[c];
    i = c;
  }
  if (S.nheap) S.heap[i] = last;
  return top;
}

static void timer(int kind, uint64_t at, uint64_t reqid, int to) {
  ev e;
  memset(&e, 0, sizeof e);
  e.kind = kind;
  e.at = at;
  e.req = reqid;
  e.to = to;
  push(&e);
}

/* Network delay between two nodes: 1..10 ms in a datacenter, 20..40 ms
** across; 2% of messages take 100..700 ms (past the request timeout). */
static uint64_t delay(int a, int b) {
  uint64_t d = strcmp(S.nodes[a].dc, S.nodes[b].dc) ? (20 + rnd() % 21) * MS
                                                     : (1 + rnd() % 10) * MS;
  if (a == b) d = rnd() % MS;
  if (rnd() % 100 < 2) d += (100 + rnd() % 600) * MS;
  return d;
}

static void send_msg(ev *e) {
  S.msgs++;
  e->at = S.now + delay(e->from, e->to);
  push(e);
}

/* --------------------------------------------------------- cells */

static const char *const colkey[NCOLS] = {"c0", "c1", "c2"};

static cell to_cell(const simcell *s) {
  return s->tomb ? cell_tombstone(s->ts, s->del) : cell_live(s->ts, 0, CBYTES(s->val, s->nval));
}

static simcell from_coord(const coord_cell *c) {
  simcell s;
  memset(&s, 0, sizeof s);
  s.col = c->key.p[1] - '0';
  s.ts = c->v.ts;
  s.tomb = c->v.tombstone;
  s.del = c->v.deleted_at;
  s.nval = (uint8_t)(c->v.value.n < sizeof s.val ? c->v.value.n : sizeof s.val - 1);
  memcpy(s.val, c->v.value.p, s.nval);
  return s;
}

/* Applies a version with the same merge rule as everyone (cell_merge). */
static void apply(node *n, int key, const simcell *s) {
  simcell *cur = &n->store[key][s->col];
  if (cur->col >= 0) {
    cell a = to_cell(cur), b = to_cell(s);
    if (cell_compare(&b, &a) <= 0) return;
  }
  *cur = *s;
}

/* A node's answer for key, as coord_cells borrowing from its store. */
static size_t answer_of(node *n, int key, coord_cell *out) {
  size_t k = 0;
  for (int c = 0; c < NCOLS; c++) {
    const simcell *s = &n->store[key][c];
    if (s->col < 0) continue;
    out[k].key = CBYTES(colkey[c], 2);
    out[k].v = to_cell(s);
    k++;
  }
  return k;
}

/* ------------------------------------------------------- replicas */

static int64_t key_token(int key) {
  char k[16];
  int n = snprintf(k, sizeof k, "key%d", key);
  return token_of(k, (size_t)n);
}

static void sim_free(void) {
  ring_free(&S.rg);
  for (size_t k = 0; k < NKEYS; k++) {
    free(S.wl[k]);
    free(S.rl[k]);
  }
  free(S.heap);
  for (size_t i = 0; i < S.nreqs; i++) coord_free(S.reqs[i].c);
  free(S.reqs);
  memset(&S, 0, sizeof S);
}

static void setup(int nts) {
  sim_free();
  S.rng = seed * 7919 + (uint64_t)nts;
  S.nts = nts;
  ring_init(&S.rg);
  static const char *const racks[NNODES] = {"r1", "r2", "r1", "r1", "r2"};
  for (int i = 0; i < NNODES; i++) {
    node *n = &S.nodes[i];
    n->up = 1;
    S.view[i] = 1;
    snprintf(n->dc, sizeof n->dc, "%s", nts && i >= 3 ? "dc2" : "dc1");
    for (int k = 0; k < NKEYS; k++)
      for (int c = 0; c < NCOLS; c++) n->store[k][c].col = -1;
    int64_t toks[16];
    char host[16];
    snprintf(host, sizeof host, "host-%d", i);
    CU_ASSERT_EQUAL_FATAL(ring_allocate_tokens(&S.rg, 16, seed + (uint64_t)i, toks), 0);
    CU_ASSERT_EQUAL_FATAL(ring_add(&S.rg, host, n->dc, racks[i], toks, 16), i);
  }
  memset(&S.ks, 0, sizeof S.ks);
  strcpy(S.ks.name, "sim");
  if (nts) {
    S.ks.strategy = REPL_NETWORK_TOPOLOGY;
    S.ks.ndcs = 2;
    strcpy(S.ks.dcs[0].name, "dc1");
    S.ks.dcs[0].rf = 3;
    strcpy(S.ks.dcs[1].name, "dc2");
    S.ks.dcs[1].rf = 2;
  } else {
    S.ks.strategy = REPL_SIMPLE;
    S.ks.rf = 5;
  }
  for (int k = 0; k < NKEYS; k++)
    for (int c = 0; c < NCOLS; c++) S.written[k][c] = -1;
}

/* Replicas of key in ring order, with the coordinating node moved first
** when it is one (what a snitch preferring the local node does). */
static size_t replicas_of(int key, int coordinator, cl_replica *out) {
  uint32_t m[NNODES];
  size_t n = ring_replicas(&S.rg, &S.ks, key_token(key), m, NNODES);
  for (size_t i = 0; i < n; i++)
    if ((int)m[i] == coordinator && i > 0) {
      uint32_t t = m[i];
      memmove(&m[1], &m[0], i * sizeof *m);
      m[0] = t;
      break;
    }
  uint8_t alive[NNODES];
  for (size_t i = 0; i < n; i++) alive[i] = (uint8_t)S.view[m[i]];
  cl_replicas_from_ring(&S.rg, m, n, alive, out);
  return n;
}

/* What a level guarantees about the replicas holding a write it acked /
** the replicas a read it answered consulted (docs/coordinator.md). */
static cover cover_of(cellar_consistency_t l, const char *dc) {
  cover v = {0, {0, 0}};
  int rf[2] = {S.nts ? 3 : 5, S.nts ? 2 : 0}, tot = 5;
  int local = S.nts && !strcmp(dc, "dc2");
  switch (l) {
  case CELLAR_CL_ONE: v.total = 1; break;
  case CELLAR_CL_TWO: v.total = 2; break;
  case CELLAR_CL_THREE: v.total = 3; break;
  case CELLAR_CL_QUORUM: v.total = tot / 2 + 1; break;
  case CELLAR_CL_ALL:
    v.total = tot;
    v.dc[0] = rf[0];
    v.dc[1] = rf[1];
    break;
  case CELLAR_CL_LOCAL_ONE:
    v.total = 1;
    v.dc[local] = 1;
    break;
  case CELLAR_CL_LOCAL_QUORUM:
    v.dc[local] = rf[local] / 2 + 1;
    v.total = v.dc[local];
    break;
  case CELLAR_CL_EACH_QUORUM:
    v.dc[0] = rf[0] / 2 + 1;
    v.dc[1] = rf[1] ? rf[1] / 2 + 1 : 0;
    v.total = v.dc[0] + v.dc[1];
    break;
  default:
    break;                     /* ANY: a hint may be all there is */
  }
  if (!S.nts) v.dc[0] = v.total, v.dc[1] = 0;
  return v;
}

static int intersects(cover a, cover b) {
  int rf[2] = {S.nts ? 3 : 5, S.nts ? 2 : 0};
  if (a.total + b.total > 5) return 1;
  for (int d = 0; d < 2; d++)
    if (rf[d] && a.dc[d] + b.dc[d] > rf[d]) return 1;
  return 0;
}

/* --------------------------------------------------------- checker */

static void check_read(req *r) {
  int k = r->key;
  /* every version returned was written */
  for (int c = 0; c < NCOLS; c++) {
    if (r->got[c].col < 0) continue;
    if (r->got[c].ts > S.written[k][c]) S.unknown_versions++;
    if (!r->got[c].tomb) {
      char want[24];
      snprintf(want, sizeof want, "v%lld", (long long)r->got[c].ts);
      if (r->got[c].nval != strlen(want) || memcmp(r->got[c].val, want, r->got[c].nval))
        S.unknown_versions++;
    }
  }
  int weak = 0;
  /* read-your-writes */
  for (size_t i = 0; i < S.nwl[k]; i++) {
    const wlog *w = &S.wl[k][i];
    if (w->ack >= r->start) continue;
    int strict = intersects(w->cov, r->cov);
    if (!strict && !S.check_all) {
      S.ryw_skipped++;
      continue;
    }
    S.ryw_checks += strict;
    for (int c = 0; c < NCOLS; c++) {
      if (!(w->cols & (1 << c))) continue;
      if (r->got[c].col >= 0 && r->got[c].ts >= w->ts) continue;
      if (!strict) {
        weak = 1;
      } else if (S.violations++ < 5) {
        printf("\n  VIOLATION read-your-writes: key %d col %d: write ts %lld at %s acked at "
               "%.3f s; read at %s from %.3f s got ts %lld",
               k, c, (long long)w->ts, cellar_consistency_name(w->level), (double)w->ack / SEC,
               cellar_consistency_name(r->level), (double)r->start / SEC,
               (long long)(r->got[c].col < 0 ? -1 : r->got[c].ts));
      }
    }
  }
  /* monotonic reads */
  for (size_t i = 0; i < S.nrl[k]; i++) {
    const rlog *p = &S.rl[k][i];
    if (p->end >= r->start) continue;
    int strict = intersects(p->cov, r->cov);
    if (!strict && !S.check_all) continue;
    S.mono_checks += strict;
    for (int c = 0; c < NCOLS; c++) {
      int64_t now = r->got[c].col < 0 ? -1 : r->got[c].ts;
      if (now >= p->ts[c]) continue;
      if (!strict)
        weak = 1;
      else if (S.violations++ < 5)
        printf("\n  VIOLATION monotonic reads: key %d col %d: a read answered at %.3f s "
               "saw ts %lld, a %s read from %.3f s got %lld",
               k, c, (double)p->end / SEC, (long long)p->ts[c],
               cellar_consistency_name(r->level), (double)r->start / SEC, (long long)now);
    }
  }
  S.weak_stale += weak;
  if (S.nrl[k] == S.caprl[k]) {
    S.caprl[k] = S.caprl[k] ? 2 * S.caprl[k] : 256;
    S.rl[k] = realloc(S.rl[k], S.caprl[k] * sizeof *S.rl[k]);
  }
  rlog *l = &S.rl[k][S.nrl[k]++];
  l->end = r->end;
  l->cov = r->cov;
  for (int c = 0; c < NCOLS; c++) l->ts[c] = r->got[c].col < 0 ? -1 : r->got[c].ts;
}

static void log_write(req *r) {
  int k = r->key;
  if (S.nwl[k] == S.capwl[k]) {
    S.capwl[k] = S.capwl[k] ? 2 * S.capwl[k] : 256;
    S.wl[k] = realloc(S.wl[k], S.capwl[k] * sizeof *S.wl[k]);
  }
  wlog *w = &S.wl[k][S.nwl[k]++];
  w->ack = r->end;
  w->ts = r->w[0].ts;
  w->cov = r->cov;
  w->level = r->level;
  w->cols = 0;
  for (int i = 0; i < r->nw; i++) w->cols |= 1 << r->w[i].col;
}

/* ------------------------------------------------------ coordinator */

static void finish(req *r) {
  coord_free(r->c);
  r->c = NULL;
}

/* Turns the coordinator's actions into messages (what cellard will do). */
static void drain(uint64_t id) {
  req *r = &S.reqs[id];
  coord_action a;
  while (r->c && coord_next(r->c, &a)) {
    ev e;
    memset(&e, 0, sizeof e);
    e.req = id;
    e.key = r->key;
    e.from = r->node;
    e.reply_to = r->node;
    e.to = (int)a.member;
    switch (a.kind) {
    case COORD_SEND_WRITE:
    case COORD_SEND_WRITE_FORWARD:
      e.kind = a.kind == COORD_SEND_WRITE ? M_WRITE : M_WRITE_FWD;
      e.ncells = r->nw;
      memcpy(e.cells, r->w, sizeof r->w);
      e.nfwd = (int)a.nforward;
      for (size_t i = 0; i < a.nforward; i++) e.fwd[i] = (int)a.forward_members[i];
      if (a.nforward) S.forwards++;
      send_msg(&e);
      break;
    case COORD_SEND_DATA:
    case COORD_SEND_DIGEST:
      e.kind = a.kind == COORD_SEND_DATA ? M_READ_DATA : M_READ_DIGEST;
      send_msg(&e);
      break;
    case COORD_READ_REPAIR:
      e.kind = M_REPAIR;
      e.ncells = (int)a.ncells;
      for (size_t i = 0; i < a.ncells; i++) e.cells[i] = from_coord(&a.cells[i]);
      S.repairs++;
      S.repaired_cells += (long)a.ncells;
      send_msg(&e);
      break;
    case COORD_STORE_HINT:
      S.hints++;               /* the hint store is a later issue */
      break;
    case COORD_ANSWER:
      r->answers++;
      r->code = a.code;
      r->end = S.now;
      if (r->answers > 1) S.bad_answers++;
      if (a.code == CELLAR_EUNAVAILABLE) S.unavailable++;
      else if (a.code == CELLAR_ETIMEDOUT) S.timeouts++;
      else if (a.code != 0) S.errors++;
      if (a.code == 0 && !r->is_read) {
        S.writes_ok++;
        log_write(r);
      }
      if (a.code == 0 && r->is_read) {
        S.reads_ok++;
        for (int c = 0; c < NCOLS; c++) r->got[c].col = -1;
        for (size_t i = 0; i < a.ncells; i++) {
          simcell s = from_coord(&a.cells[i]);
          r->got[s.col] = s;
        }
        check_read(r);
      }
      if (r->client >= 0 && !S.stop_clients)
        timer(E_CLIENT, S.now + (rnd() % 20) * MS, 0, r->client);
      break;
    }
  }
  if (r->c && coord_finished(r->c)) {
    coord_stats st;
    coord_get_stats(r->c, &st);
    S.mismatches += st.digest_mismatch;
    finish(r);
  }
}

static uint64_t new_req(int nodeid, int client, int is_read, int key,
                        cellar_consistency_t level) {
  if (S.nreqs == S.capreqs) {
    S.capreqs = S.capreqs ? S.capreqs * 2 : 4096;
    S.reqs = realloc(S.reqs, S.capreqs * sizeof *S.reqs);
  }
  uint64_t id = S.nreqs++;
  req *r = &S.reqs[id];
  memset(r, 0, sizeof *r);
  r->node = nodeid;
  r->client = client;
  r->is_read = is_read;
  r->key = key;
  r->level = level;
  r->start = S.now;
  r->cov = cover_of(level, S.nodes[nodeid].dc);
  return id;
}

static void start(uint64_t id) {
  req *r = &S.reqs[id];
  cl_replica reps[NNODES];
  size_t n = replicas_of(r->key, r->node, reps);
  coord_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.id = id;
  cfg.level = r->level;
  cfg.ks = &S.ks;
  cfg.local_dc = S.nodes[r->node].dc;
  cfg.replicas = reps;
  cfg.nreplicas = n;
  cfg.deadline_ns = S.now + TIMEOUT;
  int rc = r->is_read ? coord_read_new(&cfg, &r->c) : coord_write_new(&cfg, &r->c);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  S.ops++;
  S.level_ops[r->level]++;
  timer(E_TIMEOUT, cfg.deadline_ns, id, r->node);
  if (r->client >= 0) timer(E_GIVE_UP, S.now + CLIENT_GIVE_UP, id, r->node);
  drain(id);
}

/* Level pairs (write, read) whose replica sets intersect: R + W > N. */
typedef struct profile {
  cellar_consistency_t w, r;
} profile;

static const profile simple_profiles[] = {
  {CELLAR_CL_QUORUM, CELLAR_CL_QUORUM}, {CELLAR_CL_QUORUM, CELLAR_CL_QUORUM},
  {CELLAR_CL_ALL, CELLAR_CL_ONE},       {CELLAR_CL_ONE, CELLAR_CL_ALL},
  {CELLAR_CL_THREE, CELLAR_CL_THREE},   {CELLAR_CL_TWO, CELLAR_CL_ALL},
  {CELLAR_CL_QUORUM, CELLAR_CL_THREE},  {CELLAR_CL_LOCAL_QUORUM, CELLAR_CL_LOCAL_QUORUM},
  {CELLAR_CL_EACH_QUORUM, CELLAR_CL_QUORUM}, {CELLAR_CL_ALL, CELLAR_CL_LOCAL_ONE},
};

static const profile nts_profiles[] = {
  {CELLAR_CL_QUORUM, CELLAR_CL_QUORUM},           {CELLAR_CL_QUORUM, CELLAR_CL_QUORUM},
  {CELLAR_CL_EACH_QUORUM, CELLAR_CL_LOCAL_QUORUM}, {CELLAR_CL_ALL, CELLAR_CL_LOCAL_ONE},
  {CELLAR_CL_LOCAL_QUORUM, CELLAR_CL_LOCAL_QUORUM}, {CELLAR_CL_EACH_QUORUM, CELLAR_CL_EACH_QUORUM},
  {CELLAR_CL_QUORUM, CELLAR_CL_EACH_QUORUM},      {CELLAR_CL_ONE, CELLAR_CL_ALL},
  {CELLAR_CL_THREE, CELLAR_CL_THREE},
};

/* A client's next operation, through a random live node. */
static void client_op(int client) {
  int up[NNODES], nup = 0;
  for (int i = 0; i < NNODES; i++)
    if (S.nodes[i].up) up[nup++] = i;
  int nodeid = up[rnd() % (uint64_t)nup];
  const profile *p = S.nts ? &nts_profiles[rnd() % (sizeof nts_profiles / sizeof *p)]
                           : &simple_profiles[rnd() % (sizeof simple_profiles / sizeof *p)];
  if (S.only) p = S.only;
  int key = rnd() % 10 < 7 ? (int)(rnd() % NHOT) : NHOT + (int)(rnd() % (NKEYS - NHOT));
  int kind = (int)(rnd() % 100);                  /* 50 read, 42 write, 8 delete */
  uint64_t id = new_req(nodeid, client, kind < 50, key, kind < 50 ? p->r : p->w);
  req *r = &S.reqs[id];
  if (!r->is_read) {
    int64_t ts = ++S.ts_counter;
    int mask = 1 + (int)(rnd() % 7);              /* a non-empty set of columns */
    for (int c = 0; c < NCOLS; c++) {
      if (!(mask & (1 << c))) continue;
      simcell *s = &r->w[r->nw++];
      memset(s, 0, sizeof *s);
      s->col = c;
      s->ts = ts;
      if (kind >= 92) {
        s->tomb = 1;
        s->del = 1700000000u + (uint32_t)(S.now / SEC);
      } else {
        s->nval = (uint8_t)snprintf(s->val, sizeof s->val, "v%lld", (long long)ts);
      }
      S.written[key][c] = ts;
    }
  }
  start(id);
}

/* ----------------------------------------------------------- nodes */

static void reply(const ev *in, int kind, int code) {
  ev e;
  memset(&e, 0, sizeof e);
  e.kind = kind;
  e.req = in->req;
  e.key = in->key;
  e.from = in->to;
  e.to = in->reply_to;
  e.code = code;
  if (kind == M_DATA || kind == M_DIGEST) {
    node *n = &S.nodes[in->to];
    for (int c = 0; c < NCOLS; c++)
      if (n->store[in->key][c].col >= 0) e.cells[e.ncells++] = n->store[in->key][c];
    if (kind == M_DIGEST) {
      coord_cell cc[NCOLS];
      size_t k = answer_of(n, in->key, cc);
      coord_digest(cc, k, e.digest);
      e.ncells = 0;
    }
  }
  send_msg(&e);
}

static void on_replica(const ev *e) {
  node *n = &S.nodes[e->to];
  /* 0.5% of requests fail at the replica without effect */
  if (rnd() % 1000 < 5) {
    S.replica_errors++;
    reply(e, M_ERROR, CELLAR_EOVERLOAD);
    return;
  }
  switch (e->kind) {
  case M_WRITE_FWD:
    for (int i = 0; i < e->nfwd; i++) {
      ev f = *e;
      f.kind = M_WRITE;
      f.nfwd = 0;
      f.from = e->to;
      f.to = e->fwd[i];
      send_msg(&f);
    }
    /* fall through */
  case M_WRITE:
  case M_REPAIR:
    for (int i = 0; i < e->ncells; i++) apply(n, e->key, &e->cells[i]);
    reply(e, M_ACK, 0);
    break;
  case M_READ_DATA:
    reply(e, M_DATA, 0);
    break;
  case M_READ_DIGEST:
    reply(e, M_DIGEST, 0);
    break;
  default:
    break;
  }
}

static void on_coordinator(const ev *e) {
  req *r = &S.reqs[e->req];
  if (r->c == NULL || r->node != e->to) return;   /* finished, or lost */
  int i = coord_replica_index(r->c, (uint32_t)e->from);
  CU_ASSERT_FATAL(i >= 0);
  switch (e->kind) {
  case M_ACK:
    coord_on_ack(r->c, (uint32_t)i);
    break;
  case M_ERROR:
    coord_on_error(r->c, (uint32_t)i, e->code);
    break;
  case M_DIGEST:
    coord_on_digest(r->c, (uint32_t)i, e->digest);
    break;
  case M_DATA: {
    coord_cell cc[NCOLS];
    for (int k = 0; k < e->ncells; k++) {
      cc[k].key = CBYTES(colkey[e->cells[k].col], 2);
      cc[k].v = to_cell(&e->cells[k]);
    }
    coord_on_data(r->c, (uint32_t)i, cc, (size_t)e->ncells);
    break;
  }
  default:
    break;
  }
  drain(e->req);
}

/* A node crashes: its coordinators vanish with it (clients give up). */
static void node_down(int i) {
  S.nodes[i].up = 0;
  for (size_t id = 0; id < S.nreqs; id++) {
    req *r = &S.reqs[id];
    if (r->c && r->node == i) {
      if (!r->answers) r->lost = 1;
      finish(r);
    }
  }
}

/* Cells of key k where a replica differs from the newest version any
** replica has. */
static long key_stale(int k) {
  long n = 0;
  for (int c = 0; c < NCOLS; c++) {
    const simcell *best = NULL;
    for (int i = 0; i < NNODES; i++) {
      const simcell *s = &S.nodes[i].store[k][c];
      if (s->col < 0) continue;
      cell a = to_cell(s);
      if (best == NULL) best = s;
      cell b = to_cell(best);
      if (cell_compare(&a, &b) > 0) best = s;
    }
    if (best == NULL) continue;
    cell b = to_cell(best);
    for (int i = 0; i < NNODES; i++) {
      const simcell *s = &S.nodes[i].store[k][c];
      cell a = to_cell(s);
      if (s->col < 0 || cell_compare(&a, &b) != 0) n++;
    }
  }
  return n;
}

static long stale_cells(void) {
  long n = 0;
  for (int k = 0; k < NKEYS; k++) n += key_stale(k);
  return n;
}

static void run_until(uint64_t until) {
  while (S.nheap && S.heap[0].at <= until) {
    ev e = pop();
    S.now = e.at;
    switch (e.kind) {
    case M_WRITE: case M_WRITE_FWD: case M_READ_DATA: case M_READ_DIGEST: case M_REPAIR:
      if (S.nodes[e.to].up) on_replica(&e);
      else S.dropped++;
      break;
    case M_ACK: case M_ERROR: case M_DATA: case M_DIGEST:
      if (S.nodes[e.to].up) on_coordinator(&e);
      else S.dropped++;
      break;
    case E_TIMEOUT: {
      req *r = &S.reqs[e.req];
      if (r->c) {
        coord_on_timeout(r->c);
        drain(e.req);
        CU_ASSERT_PTR_NULL(r->c);                 /* DONE after the deadline */
      }
      break;
    }
    case E_GIVE_UP: {
      req *r = &S.reqs[e.req];
      if (r->lost && r->answers == 0) {
        S.lost++;
        r->lost = 2;
        if (!S.stop_clients) timer(E_CLIENT, S.now, 0, r->client);
      }
      break;
    }
    case E_CLIENT:
      if (!S.stop_clients) client_op(e.to);
      break;
    case E_DOWN:
      node_down(e.to);
      break;
    case E_UP:
      S.nodes[e.to].up = 1;
      break;
    case E_VIEW_DOWN:
      S.view[e.to] = 0;
      break;
    case E_VIEW_UP:
      S.view[e.to] = 1;
      S.stale_at_return = stale_cells();
      break;
    }
  }
  S.now = until;
}

/* ------------------------------------------------------- scenarios */

static void print_figures(const char *name, double secs) {
  printf("\n  %s, %.0f simulated s, seed %llu:", name, secs, (unsigned long long)seed);
  printf("\n    %ld operations (%ld writes ok, %ld reads ok), %ld unavailable, %ld timeouts,"
         " %ld errors, %ld lost with their coordinator",
         S.ops, S.writes_ok, S.reads_ok, S.unavailable, S.timeouts, S.errors, S.lost);
  printf("\n    levels:");
  for (int l = 1; l <= CELLAR_CL_ANY; l++)
    if (S.level_ops[l])
      printf(" %s %ld", cellar_consistency_name((cellar_consistency_t)l), S.level_ops[l]);
  printf("\n    %ld digest mismatches, %ld read repairs (%ld cells), %ld hints, "
         "%ld forwarded writes, %ld replica errors injected",
         S.mismatches, S.repairs, S.repaired_cells, S.hints, S.forwards, S.replica_errors);
  printf("\n    checker: %ld read-your-writes pairs checked (%ld not intersecting, skipped), "
         "%ld monotonic-read pairs, %ld violations, %ld unknown versions",
         S.ryw_checks, S.ryw_skipped, S.mono_checks, S.violations, S.unknown_versions);
  printf("\n    %ld messages, %ld dropped at down nodes", S.msgs, S.dropped);
}

/* Brings every node up, then reads every key at ALL: read repair must
** leave all replicas equal and at least as new as every acknowledged
** write. */
static void converge(void) {
  for (int i = 0; i < NNODES; i++) S.nodes[i].up = S.view[i] = 1;
  long at_end = stale_cells();
  /* a node misses a QUORUM write of every cell: only read repair can fix
  ** it now that the clients are gone */
  int victim = (int)(rnd() % NNODES);
  node_down(victim);
  S.view[victim] = 0;
  for (int k = 0; k < NKEYS; k++) {
    uint64_t id = new_req((victim + 1 + (int)(rnd() % (NNODES - 1))) % NNODES, -1, 0, k,
                          CELLAR_CL_QUORUM);
    req *r = &S.reqs[id];
    int64_t ts = ++S.ts_counter;
    for (int c = 0; c < NCOLS; c++) {
      simcell *w = &r->w[r->nw++];
      memset(w, 0, sizeof *w);
      w->col = c;
      w->ts = ts;
      w->nval = (uint8_t)snprintf(w->val, sizeof w->val, "v%lld", (long long)ts);
      S.written[k][c] = ts;
    }
    start(id);
    run_until(S.now + 2 * SEC);
  }
  S.nodes[victim].up = S.view[victim] = 1;
  long before = stale_cells(), repairs0 = S.repairs, sweeps = 0;
  /* one ALL read per key; a key whose read failed (slow message, injected
  ** error: the network keeps its faults) is read again, up to 10 times */
  for (int pass = 0; pass < 10 && stale_cells() > 0; pass++) {
    for (int k = 0; k < NKEYS; k++) {
      if (pass > 0 && !key_stale(k)) continue;
      uint64_t id = new_req((int)(rnd() % NNODES), -1, 1, k, CELLAR_CL_ALL);
      start(id);
      run_until(S.now + 2 * SEC);
      sweeps++;
    }
  }
  long after = stale_cells();
  printf("\n    stale replica cells: %ld when the last node came back, %ld at the end of"
         " the run (read repair and newer writes meanwhile)"
         "\n    then node %d misses a QUORUM write of all %d cells: %ld stale, %ld after"
         " %ld ALL reads of the %d keys (%ld read repairs)",
         S.stale_at_return, at_end, victim, NKEYS * NCOLS, before, after, sweeps, NKEYS,
         S.repairs - repairs0);
  CU_ASSERT(S.stale_at_return > 0);
  CU_ASSERT(at_end < S.stale_at_return);
  CU_ASSERT(before >= NKEYS * NCOLS);
  CU_ASSERT(S.repairs - repairs0 >= NKEYS);
  CU_ASSERT_EQUAL(after, 0);
  /* every acknowledged write survives on every replica */
  long lost_writes = 0;
  for (int k = 0; k < NKEYS; k++)
    for (size_t i = 0; i < S.nwl[k]; i++)
      for (int c = 0; c < NCOLS; c++) {
        if (!(S.wl[k][i].cols & (1 << c))) continue;
        for (int n = 0; n < NNODES; n++)
          if (S.nodes[n].store[k][c].col < 0 || S.nodes[n].store[k][c].ts < S.wl[k][i].ts)
            lost_writes++;
      }
  CU_ASSERT_EQUAL(lost_writes, 0);
  if (after || lost_writes) fail_hint();
}

static void check_common(void) {
  CU_ASSERT_EQUAL(S.violations, 0);
  CU_ASSERT_EQUAL(S.unknown_versions, 0);
  CU_ASSERT_EQUAL(S.bad_answers, 0);
  /* exactly one answer per request not lost with its node */
  long unanswered = 0;
  for (size_t id = 0; id < S.nreqs; id++) {
    const req *r = &S.reqs[id];
    if (r->answers != 1 && !r->lost) unanswered++;
    CU_ASSERT(r->answers <= 1);
  }
  CU_ASSERT_EQUAL(unanswered, 0);
  CU_ASSERT(S.ryw_checks > 1000);
  CU_ASSERT(S.mono_checks > 1000);
  CU_ASSERT(S.repairs > 0);
  CU_ASSERT(S.timeouts > 0);
  CU_ASSERT(S.unavailable > 0);
  if (S.violations || S.unknown_versions || S.bad_answers || unanswered) fail_hint();
}

/* Stops the clients at RUN_END, lets everything in flight end, checks. */
static void finish_run(const char *name) {
  run_until(RUN_END);
  S.stop_clients = 1;
  run_until(S.now + 5 * SEC);
  print_figures(name, (double)RUN_END / SEC);
  check_common();
  converge();
  printf("\n");
}

static void start_clients(void) {
  for (int c = 0; c < NCLIENTS; c++) timer(E_CLIENT, (rnd() % 50) * MS, 0, c);
}

/* Crashes node i at t (seen down DETECT_DELAY later), back at t2 (seen
** up a second later). */
static void outage(int i, uint64_t t, uint64_t t2) {
  timer(E_DOWN, t, 0, i);
  timer(E_VIEW_DOWN, t + DETECT_DELAY, 0, i);
  timer(E_UP, t2, 0, i);
  timer(E_VIEW_UP, t2 + SEC, 0, i);
}

/* SimpleStrategy rf 5 on 5 nodes: node 2 known down for the first 10 s
** (then back, stale); node 4 crashes at 20 s, seen down at 22 s, back at
** 40 s; node 1 down from 90 to 120 s; clients stop at 180 s. */
static void test_simple_rf5(void) {
  setup(0);
  S.nodes[2].up = 0;
  S.view[2] = 0;
  timer(E_UP, 10 * SEC, 0, 2);
  timer(E_VIEW_UP, 10 * SEC + 500 * MS, 0, 2);
  outage(4, 20 * SEC, 40 * SEC);
  outage(1, 90 * SEC, 120 * SEC);
  start_clients();
  finish_run("SimpleStrategy rf 5, 5 nodes");
}

/* NetworkTopologyStrategy {dc1: 3, dc2: 2}: writes cross to dc2 once and
** are forwarded there; node 3 (dc2) is down from 20 to 40 s, node 0
** (dc1) from 90 to 120 s. */
static void test_nts_3_2(void) {
  setup(1);
  outage(3, 20 * SEC, 40 * SEC);
  outage(0, 90 * SEC, 120 * SEC);
  start_clients();
  finish_run("NetworkTopologyStrategy {dc1: 3, dc2: 2}, 5 nodes");
  CU_ASSERT(S.forwards > 0);
}

/* The guarantee is not vacuous: the same run with writes and reads at ONE
** (R + W = 2, not > 5), every pair checked, finds stale reads. */
static void test_weak_levels_go_back_in_time(void) {
  static const profile one = {CELLAR_CL_ONE, CELLAR_CL_ONE};
  setup(0);
  S.only = &one;
  S.check_all = 1;
  outage(4, 20 * SEC, 40 * SEC);
  start_clients();
  run_until(60 * SEC);
  S.stop_clients = 1;
  run_until(S.now + 5 * SEC);
  printf("\n  R = W = ONE over 5 replicas, 60 simulated s: %ld reads ok, %ld of them "
         "older than an acked write or an earlier read\n", S.reads_ok, S.weak_stale);
  CU_ASSERT(S.weak_stale > 0);
  CU_ASSERT_EQUAL(S.violations, 0);     /* no pair intersects */
}

/* The intersect rule of the checker. */
static void test_checker_intersections(void) {
  setup(0);
  cover one = cover_of(CELLAR_CL_ONE, "dc1"), q = cover_of(CELLAR_CL_QUORUM, "dc1");
  cover all = cover_of(CELLAR_CL_ALL, "dc1"), three = cover_of(CELLAR_CL_THREE, "dc1");
  CU_ASSERT_FALSE(intersects(one, one));
  CU_ASSERT_FALSE(intersects(one, q));
  CU_ASSERT_TRUE(intersects(one, all));
  CU_ASSERT_TRUE(intersects(q, q));
  CU_ASSERT_TRUE(intersects(q, three));
  setup(1);
  cover lq1 = cover_of(CELLAR_CL_LOCAL_QUORUM, "dc1");
  cover lq2 = cover_of(CELLAR_CL_LOCAL_QUORUM, "dc2");
  cover each = cover_of(CELLAR_CL_EACH_QUORUM, "dc1");
  CU_ASSERT_TRUE(intersects(lq1, lq1));
  CU_ASSERT_FALSE(intersects(lq1, lq2));
  CU_ASSERT_TRUE(intersects(each, lq2));
  CU_ASSERT_TRUE(intersects(cover_of(CELLAR_CL_QUORUM, "dc1"),
                            cover_of(CELLAR_CL_QUORUM, "dc2")));
}

int main(int argc, char **argv) {
  const char *s = getenv("SIM_SEED");
  if (s) seed = strtoull(s, NULL, 10);
  printf("coordinator simulation, SIM_SEED=%llu\n", (unsigned long long)seed);
  static const test_case cases[] = {
    {"simple_rf5", test_simple_rf5},
    {"nts_3_2", test_nts_3_2},
    {"weak_levels_go_back_in_time", test_weak_levels_go_back_in_time},
    {"checker_intersections", test_checker_intersections},
    {NULL, NULL}};
  int rc = testutil_run("coordinator_sim", cases, argc, argv);
  sim_free();
  return rc;
}
