/*
** Model-checked history test of the version logic (dvv.c) in a
** deterministic simulation: 5 nodes, 4 keys (one cell each) replicated on
** 3 nodes (key k on nodes k, k+1, k+2 mod 5), 6 clients.
**
** Clients read-modify-write (read, keep the context, write with it),
** delete with a context, write blind (no context), write with a stale
** context kept from an older read, and read. Each request goes to a random
** node; a node that is not a replica of the key forwards it to one that is,
** so the coordinator of a write is always a replica: it applies the write
** with cell_event (dvv_event) under its own actor (node id, incarnation),
** then sends the resulting cell to the other replicas, which merge it
** (cell_merge_versions, i.e. dvv_merge); the client gets its
** acknowledgement after W = 2 replicas hold the write. A read asks the
** other replicas, answers after R = 2 (merged the same way), and
** read-repairs the replica that answered with less. Anti-entropy: every
** node, every 100-300 ms, swaps one key's cell with another replica (both
** merge). Replicas store, and messages carry, the cells exactly as
** RocksDB will hold them (cell.h: versioned cells, header and set); the
** client context travels encoded (dvv_ctx_encode). Each key starts as a
** plain (pre-versioning) cell on two of its replicas: a legacy sibling
** for the writes that follow. Writes past a sibling limit are refused
** (CELLAR_ETOOBIG).
**
** Faults while clients run: 3% of messages lost, delays 1-20 ms with a
** long tail, node pauses (messages wait), crashes and restarts (pending
** coordinator work lost; stored sets kept), and restarts with wiped data,
** which come back under a new incarnation.
**
** The checker records every write (its context as sent, the dot its
** coordinator gave it, whether it was acknowledged) and, once faults stop
** and anti-entropy has run, verifies for every key:
**   1. convergence: all replicas hold the same set (dvv_equal);
**   2. every sibling is a write that was made, with the dot its
**      coordinator gave it; no two writes ever got the same dot;
**   3. every acknowledged write is in the final history (unless every
**      replica that held it was wiped);
**   4. the siblings are exactly the writes of the final history that no
**      write of the final history had in its context: nothing kept that a
**      later write superseded, nothing dropped that no write superseded.
** Reads are checked as they return: every sibling is a write that was made.
** Then the checker shared with the real-cluster test (loopback_history,
** tests/unit/history_check.h) judges the same history by what clients
** could see, values instead of dots: nothing read that was never written,
** every acknowledged write present or read by a write that carried its
** context, nothing kept that an acknowledged write's context had.
**
** Seeds: SIM_SEED (first seed, default 1), SIM_SEEDS (how many, default
** 300). A failing seed prints the command that replays it. SIM_BUG=merge |
** context | incarnation plants a bug (a merge that drops a sibling, a
** coordinator that ignores the context, a wiped node keeping its
** incarnation); the planted_* tests show the checker catches each one.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "dvv.h"
#include "history_check.h"
#include "testutil.h"

#define MS 1000000ull
#define SEC 1000000000ull

#define NNODES 5
#define RF 3
#define NKEYS 4
#define NCLIENTS 6
#define W_ACKS 2
#define R_REPLIES 2
#define SIB_LIMIT 8
#define LOSS_PCT 3
#define RUN_END (30 * SEC)
#define SETTLE (15 * SEC)
#define CLIENT_TIMEOUT (1 * SEC)

enum { BUG_NONE, BUG_MERGE, BUG_CONTEXT, BUG_INCARNATION };

enum {
  /* client <-> coordinator */
  M_CREAD = 1, M_CWRITE, M_CDATA, M_CACK, M_CERR,
  /* coordinator <-> replica */
  M_RREAD, M_RDATA, M_REPL, M_RACK,
  /* anti-entropy */
  M_AE, M_AE_BACK,
  /* timers */
  T_CLIENT, T_CTIMEOUT, T_AE, T_FAULT, T_RESUME, T_RESTART
};

typedef struct msg {
  uint64_t at, seq;
  int kind, to, from;
  int key, client, wid, wipe;
  uint64_t op;                 /* client op id, or coordinator request id */
  uint8_t *buf;                /* owned: an encoded set or context */
  size_t n;
} msg;

typedef struct wrec {          /* one write as the checker knows it */
  int key, client;
  char val[24];
  uint8_t tomb;
  dvv_vv ctx;                  /* the context the client sent */
  int has_ctx;
  int applied;                 /* got a dot from its coordinator */
  dvv_dot dot;
  int acked, refused, lost_ok;
} wrec;

typedef struct blob {          /* a stored cell's bytes; p NULL: none */
  uint8_t *p;
  size_t n;
} blob;

typedef struct cop {           /* a coordinator's request in flight */
  int node, key, client, wid, is_read, done;
  uint64_t op, epoch;
  int count;                   /* acks or replies, its own included */
  blob merged;                 /* reads */
} cop;

typedef struct simnode {
  int up;
  uint64_t paused_until, epoch;
  uint32_t inc;
  blob store[NKEYS];
} simnode;

/* The writes a read showed, by their values (the shared checker's view). */
typedef struct shown {
  size_t n;
  char (*v)[HC_VAL];           /* malloc'd */
} shown;

typedef struct client {
  uint64_t op;                 /* current op id; replies for others ignored */
  int kind, key, phase;
  dvv_vv saved[NKEYS];         /* the context of its last read of each key */
  int has_saved[NKEYS];
  shown seen[NKEYS];           /* what that read showed */
} client;

enum { K_RMW, K_DELETE, K_BLIND, K_STALE, K_READ };

typedef struct sim {
  uint64_t now, seq, rng, seed;
  int bug, faults_on, clients_on, loss;
  simnode nodes[NNODES];
  client clients[NCLIENTS];
  msg *heap;
  size_t nheap, capheap;
  cop *cops;
  size_t ncops, capcops;
  wrec *w;
  size_t nw, capw;
  uint64_t next_op;
  int faulty;                  /* a node paused or down now, or -1 */
  /* figures */
  long ops, acked, refused, timeouts, forwards, read_repairs, ae_merges;
  long wipes, crashes, pauses, dropped, msgs, max_sib, superseded, final_sib;
  long violations;
  char first_violation[200];
  history_check hc;            /* the checker shared with loopback_history */
} sim;

static sim S;

static uint64_t rnd(void) {
  uint64_t z = (S.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void violation(const char *fmt, int a, int b) {
  if (S.violations++ == 0) snprintf(S.first_violation, sizeof S.first_violation, fmt, a, b);
}

/* ------------------------------------------------------- event queue */

static int msg_less(const msg *a, const msg *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(msg m) {
  if (S.nheap == S.capheap) {
    S.capheap = S.capheap ? S.capheap * 2 : 1024;
    S.heap = realloc(S.heap, S.capheap * sizeof *S.heap);
  }
  m.seq = S.seq++;
  size_t i = S.nheap++;
  while (i > 0 && msg_less(&m, &S.heap[(i - 1) / 2])) {
    S.heap[i] = S.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  S.heap[i] = m;
}

static msg pop(void) {
  msg top = S.heap[0], last = S.heap[--S.nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= S.nheap) break;
    if (c + 1 < S.nheap && msg_less(&S.heap[c + 1], &S.heap[c])) c++;
    if (!msg_less(&S.heap[c], &last)) break;
    S.heap[i] = S.heap[c];
    i = c;
  }
  if (S.nheap) S.heap[i] = last;
  return top;
}

static void timer(int kind, uint64_t after, int to, uint64_t op) {
  msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.at = S.now + after;
  m.to = to;
  m.op = op;
  push(m);
}

/* Sends m (its buf is owned by the message from now on): lost now and
** then while faults run, else delivered after a delay. */
static void send(msg m) {
  S.msgs++;
  if (S.loss && m.from != m.to && rnd() % 100 < LOSS_PCT) {
    S.dropped++;
    free(m.buf);
    return;
  }
  uint64_t d = (1 + rnd() % 20) * MS;
  if (rnd() % 100 == 0) d += (100 + rnd() % 400) * MS;
  m.at = S.now + d;
  push(m);
}

static void send_cell(int kind, int from, int to, int key, uint64_t op, const blob *c) {
  msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.from = from;
  m.to = to;
  m.key = key;
  m.op = op;
  if (c->p) {
    m.buf = malloc(c->n);
    memcpy(m.buf, c->p, c->n);
    m.n = c->n;
  }
  send(m);
}

/* The versions of a stored cell (none: an empty set). */
static int versions_of(const uint8_t *p, size_t n, dvv *out) {
  dvv_close(out);
  dvv_init(out);
  if (p == NULL) return 0;
  cell c;
  int rc = cell_decode(p, n, &c);
  if (rc == 0) rc = cell_versions(&c, out);
  if (rc) violation("a stored or sent cell did not decode (%d, %d bytes)", rc, (int)n);
  return rc;
}

static void track_siblings(const blob *b) {
  dvv s;
  dvv_init(&s);
  if (versions_of(b->p, b->n, &s) == 0 && (long)dvv_count(&s) > S.max_sib)
    S.max_sib = (long)dvv_count(&s);
  dvv_close(&s);
}

static void blob_set(blob *b, uint8_t *p, size_t n) {
  free(b->p);
  b->p = p;
  b->n = n;
}

static void blob_copy(blob *b, const uint8_t *p, size_t n) {
  uint8_t *q = NULL;
  if (p) {
    q = malloc(n ? n : 1);
    memcpy(q, p, n);
  }
  blob_set(b, q, n);
}

/* Every merge of the simulation: replica writes, read repair, reads,
** anti-entropy, all through cell_merge_versions. The planted bug drops a
** sibling here. */
static void blob_merge(blob *b, const uint8_t *p, size_t n) {
  if (p == NULL) return;
  if (b->p == NULL) {
    blob_copy(b, p, n);
  } else {
    cell x, y;
    if (cell_decode(b->p, b->n, &x) || cell_decode(p, n, &y)) {
      violation("a cell did not decode (%d bytes, %d bytes)", (int)b->n, (int)n);
      return;
    }
    cell_buf out = {0};
    const cell *win;
    int rc = cell_merge_versions(&x, &y, &out, &win);
    if (rc < 0) {
      violation("cell_merge_versions failed (%d)", rc, 0);
      return;
    }
    if (rc == 1) blob_set(b, out.p, out.n);
    else if (win == &y) blob_copy(b, p, n);
  }
  if (S.bug == BUG_MERGE) {
    dvv v;
    dvv_init(&v);
    if (versions_of(b->p, b->n, &v) == 0 && dvv_count(&v) >= 2) {
      cell_buf out = {0};
      dvv_discard(&v, dvv_count(&v) - 1);
      cell_from_versions(&v, &out);
      blob_set(b, out.p, out.n);
    }
    dvv_close(&v);
  }
  track_siblings(b);
}

static int same_blob(const blob *b, const uint8_t *p, size_t n) {
  if (b->p == NULL || p == NULL) return b->p == NULL && p == NULL;
  return b->n == n && memcmp(b->p, p, n) == 0;
}

/* ---------------------------------------------------------- replicas */

static int is_replica(int node, int key) {
  return (node - key + NNODES) % NNODES < RF;
}

static int replica(int key, int i) { return (key + i) % NNODES; }

static dvv_actor actor_of(int node) {
  dvv_actor a = {1000 + (uint64_t)node, S.nodes[node].inc};
  return a;
}

static cop *cop_new(int node, int key, const msg *m, int is_read) {
  if (S.ncops == S.capcops) {
    S.capcops = S.capcops ? S.capcops * 2 : 256;
    S.cops = realloc(S.cops, S.capcops * sizeof *S.cops);
  }
  cop *c = &S.cops[S.ncops++];
  memset(c, 0, sizeof *c);
  c->node = node;
  c->key = key;
  c->client = m->client;
  c->wid = m->wid;
  c->op = m->op;
  c->is_read = is_read;
  c->epoch = S.nodes[node].epoch;
  c->count = 1;
  return c;
}

/* The cop a reply names, or NULL when it is over or its node restarted. */
static cop *cop_of(uint64_t id, int node) {
  if (id == 0 || id > S.ncops) return NULL;
  cop *c = &S.cops[id - 1];
  if (c->done || c->node != node || c->epoch != S.nodes[node].epoch) return NULL;
  return c;
}

static void reply_client(int kind, int from, const cop *c, const blob *b) {
  msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.from = from;
  m.to = -1 - c->client;
  m.client = c->client;
  m.op = c->op;
  m.wid = c->wid;
  if (b && b->p) {
    m.buf = malloc(b->n);
    memcpy(m.buf, b->p, b->n);
    m.n = b->n;
  }
  send(m);
}

static int forward(int node, msg *m) {
  if (is_replica(node, m->key)) return 0;
  S.forwards++;
  msg f = *m;
  f.from = node;
  f.to = replica(m->key, (int)(rnd() % RF));
  m->buf = NULL;               /* moved */
  send(f);
  return 1;
}

static void on_write(int self, msg *m) {
  if (forward(self, m)) return;
  simnode *n = &S.nodes[self];
  wrec *w = &S.w[m->wid];
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  if (m->buf && dvv_ctx_decode(m->buf, m->n, &ctx, NULL))
    violation("context of write %d did not decode", m->wid, 0);
  dvv_write dw = {(int64_t)S.now, w->tomb, w->tomb ? 1 : 0,
                  CBYTES(w->val, w->tomb ? 0 : strlen(w->val))};
  dvv_dot dot;
  const dvv_vv *use = S.bug == BUG_CONTEXT ? NULL : &ctx;
  blob *st = &n->store[m->key];
  cell stored;
  int rc = 0;
  if (st->p && cell_decode(st->p, st->n, &stored)) violation("stored cell of key %d", m->key, 0);
  cell_buf out = {0};
  rc = cell_event(st->p ? &stored : NULL, use, actor_of(self), &dw, SIB_LIMIT, &out, &dot);
  dvv_vv_close(&ctx);
  cop *c = cop_new(self, m->key, m, 0);
  uint64_t id = S.ncops;
  if (rc == CELLAR_ETOOBIG) {
    w->refused = 1;
    S.refused++;
    c->done = 1;
    reply_client(M_CERR, self, c, NULL);
    return;
  }
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  blob_set(st, out.p, out.n);
  track_siblings(st);
  if (w->applied) violation("write %d applied twice", m->wid, 0);
  /* dots are unique: no other write of the key got this one */
  for (size_t i = 0; i < S.nw; i++)
    if (S.w[i].applied && S.w[i].key == m->key && S.w[i].dot.counter == dot.counter &&
        dvv_actor_cmp(S.w[i].dot.actor, dot.actor) == 0)
      violation("writes %d and %d got the same dot", (int)i, m->wid);
  w->applied = 1;
  w->dot = dot;
  for (int i = 0; i < RF; i++) {
    int r = replica(m->key, i);
    if (r != self) send_cell(M_REPL, self, r, m->key, id, st);
  }
}

static void on_read(int self, msg *m) {
  if (forward(self, m)) return;
  cop *c = cop_new(self, m->key, m, 1);
  uint64_t id = S.ncops;
  const blob *own = &S.nodes[self].store[m->key];
  blob_copy(&c->merged, own->p, own->n);
  for (int i = 0; i < RF; i++) {
    int r = replica(m->key, i);
    if (r == self) continue;
    msg q;
    memset(&q, 0, sizeof q);
    q.kind = M_RREAD;
    q.from = self;
    q.to = r;
    q.key = m->key;
    q.op = id;
    send(q);
  }
}

static void on_rdata(int self, msg *m) {
  cop *c = cop_of(m->op, self);
  if (c == NULL) return;
  blob_merge(&c->merged, m->buf, m->n);
  /* read repair: the replica that answered with less gets the merge, and
  ** so does the coordinator's own store */
  if (!same_blob(&c->merged, m->buf, m->n)) {
    S.read_repairs++;
    send_cell(M_REPL, self, m->from, m->key, 0, &c->merged);
  }
  blob_merge(&S.nodes[self].store[m->key], c->merged.p, c->merged.n);
  if (++c->count == R_REPLIES) {
    c->done = 1;
    reply_client(M_CDATA, self, c, &c->merged);
    blob_set(&c->merged, NULL, 0);
  }
}

static void on_repl(int self, msg *m) {
  blob_merge(&S.nodes[self].store[m->key], m->buf, m->n);
  if (m->op) {
    msg a;
    memset(&a, 0, sizeof a);
    a.kind = M_RACK;
    a.from = self;
    a.to = m->from;
    a.op = m->op;
    send(a);
  }
}

static void on_rack(int self, msg *m) {
  cop *c = cop_of(m->op, self);
  if (c == NULL) return;
  if (++c->count == W_ACKS) {
    c->done = 1;
    reply_client(M_CACK, self, c, NULL);
  }
}

static void on_ae(int self, msg *m) {
  blob *mine = &S.nodes[self].store[m->key];
  if (m->buf && !same_blob(mine, m->buf, m->n)) S.ae_merges++;
  blob_merge(mine, m->buf, m->n);
  if (m->kind == M_AE) send_cell(M_AE_BACK, self, m->from, m->key, 0, mine);
}

static void ae_tick(int self) {
  if (S.nodes[self].up && S.nodes[self].paused_until <= S.now) {
    int key;
    do key = (int)(rnd() % NKEYS);
    while (!is_replica(self, key));
    int peer;
    do peer = replica(key, (int)(rnd() % RF));
    while (peer == self);
    send_cell(M_AE, self, peer, key, 0, &S.nodes[self].store[key]);
  }
  timer(T_AE, (100 + rnd() % 200) * MS, self, 0);
}

/* ----------------------------------------------------------- faults */

/* A wiped node's writes that no other replica holds are gone for good:
** the checker may not ask for them. */
static void wipe(int i) {
  simnode *n = &S.nodes[i];
  dvv mine, other;
  dvv_init(&mine);
  dvv_init(&other);
  for (int k = 0; k < NKEYS; k++) {
    if (!is_replica(i, k)) continue;
    versions_of(n->store[k].p, n->store[k].n, &mine);
    for (size_t j = 0; j < S.nw; j++) {
      wrec *w = &S.w[j];
      if (w->key != k || !w->applied || !dvv_vv_covers(&mine.clock, w->dot)) continue;
      int elsewhere = 0;
      for (int r = 0; r < RF; r++) {
        int o = replica(k, r);
        if (o == i) continue;
        versions_of(S.nodes[o].store[k].p, S.nodes[o].store[k].n, &other);
        if (dvv_vv_covers(&other.clock, w->dot)) elsewhere = 1;
      }
      if (!elsewhere) w->lost_ok = 1;
    }
    blob_set(&n->store[k], NULL, 0);
  }
  dvv_close(&mine);
  dvv_close(&other);
  if (S.bug != BUG_INCARNATION) n->inc++;
  S.wipes++;
}

static void fault_tick(void) {
  if (!S.faults_on) return;
  if (S.faulty < 0) {
    int i = (int)(rnd() % NNODES);
    uint64_t d = (300 + rnd() % 1700) * MS;
    S.faulty = i;
    if (rnd() % 2) {
      S.pauses++;
      S.nodes[i].paused_until = S.now + d;
      timer(T_RESUME, d, i, 0);
    } else {
      S.crashes++;
      S.nodes[i].up = 0;
      S.nodes[i].epoch++;
      msg r;
      memset(&r, 0, sizeof r);
      r.kind = T_RESTART;
      r.to = i;
      r.at = S.now + d;
      r.wipe = rnd() % 100 < 40;
      push(r);
    }
  }
  timer(T_FAULT, (500 + rnd() % 1500) * MS, 0, 0);
}

/* ---------------------------------------------------------- clients */

static wrec *new_write(int c, int key, int tomb) {
  if (S.nw == S.capw) {
    S.capw = S.capw ? S.capw * 2 : 512;
    S.w = realloc(S.w, S.capw * sizeof *S.w);
  }
  wrec *w = &S.w[S.nw];
  memset(w, 0, sizeof *w);
  w->key = key;
  w->client = c;
  w->tomb = (uint8_t)tomb;
  snprintf(w->val, sizeof w->val, "k%d-w%zu", key, S.nw);
  dvv_vv_init(&w->ctx);
  S.nw++;
  return w;
}

static void client_send(int c, int kind, int key, const dvv_vv *ctx, int wid) {
  msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.from = -1 - c;
  m.to = (int)(rnd() % NNODES);
  m.key = key;
  m.client = c;
  m.wid = wid;
  m.op = S.clients[c].op;
  if (ctx) {
    m.n = dvv_ctx_encoded_size(ctx);
    m.buf = malloc(m.n);
    dvv_ctx_encode(ctx, (uint32_t)(S.now / SEC), m.buf);
  }
  send(m);
}

static void client_write(int c, int key, int tomb, const dvv_vv *ctx) {
  wrec *w = new_write(c, key, tomb);
  /* the shared checker: its write index is the write's (same order) */
  const shown *sh = ctx ? &S.clients[c].seen[key] : NULL;
  const char *seen[64];
  size_t ns = 0;
  for (size_t i = 0; sh && i < sh->n && ns < 64; i++) seen[ns++] = sh->v[i];
  hc_write_add(&S.hc, key, w->val, seen, ns);
  if (ctx) {
    for (size_t i = 0; i < ctx->n; i++) dvv_vv_raise(&w->ctx, ctx->e[i].actor, ctx->e[i].counter);
    w->has_ctx = 1;
  }
  S.clients[c].phase = 1;
  client_send(c, M_CWRITE, key, ctx, (int)(w - S.w));
}

static void client_next(int c) {
  client *cl = &S.clients[c];
  cl->op = ++S.next_op;
  if (!S.clients_on) return;
  timer(T_CLIENT, (rnd() % 30) * MS, -1 - c, cl->op);
}

static void client_start(int c) {
  client *cl = &S.clients[c];
  S.ops++;
  uint64_t r = rnd() % 100;
  cl->kind = r < 40 ? K_RMW : r < 50 ? K_DELETE : r < 70 ? K_BLIND : r < 80 ? K_STALE : K_READ;
  cl->key = (int)(rnd() % NKEYS);
  cl->phase = 0;
  timer(T_CTIMEOUT, CLIENT_TIMEOUT, -1 - c, cl->op);
  if (cl->kind == K_BLIND) client_write(c, cl->key, 0, NULL);
  else if (cl->kind == K_STALE && cl->has_saved[cl->key])
    client_write(c, cl->key, 0, &cl->saved[cl->key]);
  else client_send(c, M_CREAD, cl->key, NULL, -1);
}

/* Every sibling of a set a client or the checker sees is a write that was
** made, under the dot its coordinator gave it. */
static void check_known(const dvv *s, int key) {
  for (size_t i = 0; i < dvv_count(s); i++) {
    const dvv_sib *x = dvv_sibling(s, i);
    int ok = 0;
    for (size_t j = 0; j < S.nw && !ok; j++) {
      const wrec *w = &S.w[j];
      ok = w->key == key && w->applied && w->dot.counter == x->dot.counter &&
           dvv_actor_cmp(w->dot.actor, x->dot.actor) == 0 && w->tomb == x->tombstone &&
           (w->tomb || (x->nvalue == strlen(w->val) && memcmp(x->value, w->val, x->nvalue) == 0));
    }
    if (!ok) violation("key %d: a sibling (dot counter %d) that no write made", key,
                       (int)x->dot.counter);
  }
}

/* The writes of s's siblings (values and delete markers), by the value
** names of their write records, into sh. */
static void shown_set(shown *sh, const dvv *s, int key) {
  free(sh->v);
  sh->n = 0;
  sh->v = malloc((dvv_count(s) + 1) * sizeof *sh->v);
  for (size_t i = 0; sh->v && i < dvv_count(s); i++) {
    const dvv_sib *x = dvv_sibling(s, i);
    for (size_t j = 0; j < S.nw; j++) {
      const wrec *w = &S.w[j];
      if (w->key == key && w->applied && w->dot.counter == x->dot.counter &&
          dvv_actor_cmp(w->dot.actor, x->dot.actor) == 0) {
        snprintf(sh->v[sh->n++], HC_VAL, "%s", w->val);
        break;
      }
    }
  }
}

static void on_client(int c, msg *m) {
  client *cl = &S.clients[c];
  if (m->op != cl->op) return;                 /* an old op's answer */
  if (m->kind == M_CDATA) {
    dvv got;
    dvv_init(&got);
    if (versions_of(m->buf, m->n, &got) == 0) {
      check_known(&got, cl->key);
      shown_set(&cl->seen[cl->key], &got, cl->key);
      const char *vals[64];
      size_t nv = 0;
      for (size_t i = 0; i < cl->seen[cl->key].n && nv < 64; i++)
        vals[nv++] = cl->seen[cl->key].v[i];
      hc_read(&S.hc, cl->key, vals, nv);
      /* the context as the client holds it: opaque bytes, decoded here */
      dvv_vv ctx;
      dvv_vv_init(&ctx);
      dvv_join(&got, &ctx);
      size_t n = dvv_ctx_encoded_size(&ctx);
      uint8_t *b = malloc(n);
      dvv_ctx_encode(&ctx, 0, b);
      CU_ASSERT_EQUAL(dvv_ctx_decode(b, n, &cl->saved[cl->key], NULL), 0);
      cl->has_saved[cl->key] = 1;
      free(b);
      dvv_vv_close(&ctx);
    }
    dvv_close(&got);
    if (cl->kind == K_RMW || cl->kind == K_DELETE || cl->kind == K_STALE) {
      client_write(c, cl->key, cl->kind == K_DELETE, &cl->saved[cl->key]);
      return;
    }
  } else if (m->kind == M_CACK) {
    S.w[m->wid].acked = 1;
    S.acked++;
  }
  client_next(c);
}

/* ------------------------------------------------------------ loop */

static void deliver(msg *m) {
  if (m->to < 0) {                             /* to a client */
    int c = -1 - m->to;
    if (m->kind == T_CLIENT) {
      if (m->op == S.clients[c].op && S.clients_on) client_start(c);
    } else if (m->kind == T_CTIMEOUT) {
      if (m->op == S.clients[c].op) {
        S.timeouts++;
        client_next(c);
      }
    } else {
      on_client(c, m);
    }
    return;
  }
  simnode *n = &S.nodes[m->to];
  switch (m->kind) {
  case T_AE: ae_tick(m->to); return;
  case T_FAULT: fault_tick(); return;
  case T_RESUME:
    S.faulty = -1;
    return;
  case T_RESTART:
    if (m->wipe && S.faults_on) wipe(m->to);
    n->up = 1;
    S.faulty = -1;
    return;
  }
  if (!n->up) {                                /* lost with the node */
    S.dropped++;
    return;
  }
  if (n->paused_until > S.now) {               /* waits for the node */
    msg later = *m;
    later.at = n->paused_until + rnd() % MS;
    m->buf = NULL;
    push(later);
    return;
  }
  switch (m->kind) {
  case M_CWRITE: on_write(m->to, m); break;
  case M_CREAD: on_read(m->to, m); break;
  case M_RREAD:
    send_cell(M_RDATA, m->to, m->from, m->key, m->op, &n->store[m->key]);
    break;
  case M_RDATA: on_rdata(m->to, m); break;
  case M_REPL: on_repl(m->to, m); break;
  case M_RACK: on_rack(m->to, m); break;
  case M_AE:
  case M_AE_BACK: on_ae(m->to, m); break;
  }
}

static void run_until(uint64_t t) {
  while (S.nheap && S.heap[0].at <= t) {
    msg m = pop();
    S.now = m.at;
    deliver(&m);
    free(m.buf);
  }
  S.now = t;
}

static void sim_free(void) {
  for (int i = 0; i < NNODES; i++)
    for (int k = 0; k < NKEYS; k++) free(S.nodes[i].store[k].p);
  for (int c = 0; c < NCLIENTS; c++)
    for (int k = 0; k < NKEYS; k++) {
      dvv_vv_close(&S.clients[c].saved[k]);
      free(S.clients[c].seen[k].v);
    }
  hc_free(&S.hc);
  for (size_t i = 0; i < S.nheap; i++) free(S.heap[i].buf);
  free(S.heap);
  for (size_t i = 0; i < S.ncops; i++) free(S.cops[i].merged.p);
  free(S.cops);
  for (size_t i = 0; i < S.nw; i++) dvv_vv_close(&S.w[i].ctx);
  free(S.w);
  memset(&S, 0, sizeof S);
}

/* ---------------------------------------------------------- checker */

static void check_final(void) {
  for (int k = 0; k < NKEYS; k++) {
    const blob *first = &S.nodes[replica(k, 0)].store[k];
    for (int r = 1; r < RF; r++) {
      const blob *o = &S.nodes[replica(k, r)].store[k];
      if (!same_blob(first, o->p, o->n))
        violation("key %d: replica %d did not converge", k, replica(k, r));
    }
    dvv fs;
    dvv_init(&fs);
    versions_of(first->p, first->n, &fs);
    const dvv *f = &fs;
    check_known(f, k);
    S.final_sib += (long)dvv_count(f);
    for (size_t i = 0; i < S.nw; i++) {
      const wrec *w = &S.w[i];
      if (w->key != k) continue;
      if (w->refused && w->applied) violation("refused write %d was applied", (int)i, 0);
      int in_hist = w->applied && dvv_vv_covers(&f->clock, w->dot);
      if (w->acked && !in_hist && !w->lost_ok)
        violation("key %d: acknowledged write %d is lost", k, (int)i);
      if (!in_hist) continue;
      int covered = 0;
      for (size_t j = 0; j < S.nw && !covered; j++) {
        const wrec *x = &S.w[j];
        covered = x->key == k && x->applied && dvv_vv_covers(&f->clock, x->dot) &&
                  dvv_vv_covers(&x->ctx, w->dot);
      }
      int present = 0;
      for (size_t s = 0; s < dvv_count(f) && !present; s++) {
        const dvv_sib *y = dvv_sibling(f, s);
        present = y->dot.counter == w->dot.counter &&
                  dvv_actor_cmp(y->dot.actor, w->dot.actor) == 0;
      }
      if (covered) S.superseded++;
      if (present && covered)
        violation("key %d: write %d survives a write whose context had it", k, (int)i);
      if (!present && !covered)
        violation("key %d: write %d was dropped though no write superseded it", k, (int)i);
    }
    dvv_close(&fs);
  }
}

/* One seeded run: returns the number of violations. */
static long run_seed(uint64_t seed, int bug) {
  sim_free();
  S.seed = seed;
  S.rng = seed * 0x2545F4914F6CDD1Dull + 17;
  S.bug = bug;
  S.faulty = -1;
  S.faults_on = S.clients_on = S.loss = 1;
  for (int i = 0; i < NNODES; i++) {
    S.nodes[i].up = 1;
    S.nodes[i].inc = 1;
    timer(T_AE, (rnd() % 200) * MS, i, 0);
  }
  /* data written before versioning: a plain cell on two replicas of each
  ** key, the legacy write of the checker */
  for (int k = 0; k < NKEYS; k++) {
    wrec *w = new_write(-1, k, 0);
    snprintf(w->val, sizeof w->val, "k%d-legacy", k);
    hc_write_add(&S.hc, k, w->val, NULL, 0);
    w->applied = w->acked = 1;
    w->dot.actor = CELL_LEGACY_ACTOR;
    w->dot.counter = 1;
    cell c = cell_live(1, 0, CBYTES(w->val, strlen(w->val)));
    for (int r = 0; r < 2; r++) {
      blob *b = &S.nodes[replica(k, r)].store[k];
      b->n = cell_encoded_size(&c);
      b->p = malloc(b->n);
      cell_encode(&c, b->p);
    }
  }
  for (int c = 0; c < NCLIENTS; c++) {
    for (int k = 0; k < NKEYS; k++) dvv_vv_init(&S.clients[c].saved[k]);
    client_next(c);
  }
  timer(T_FAULT, 200 * MS, 0, 0);
  run_until(RUN_END);
  /* faults stop: every node back, no loss; anti-entropy settles */
  S.clients_on = 0;
  S.faults_on = 0;
  run_until(S.now + 2 * SEC);
  S.loss = 0;
  for (int i = 0; i < NNODES; i++) {
    S.nodes[i].up = 1;
    S.nodes[i].paused_until = 0;
  }
  run_until(S.now + SETTLE);
  check_final();
  /* the shared checker on what clients could see: values, not dots;
  ** writes lost with every replica that held them (wipes) are excused */
  for (size_t i = 0; i < S.nw; i++)
    hc_write_done(&S.hc, (long)i, S.w[i].acked && !S.w[i].lost_ok, 0);
  for (int k = 0; k < NKEYS; k++) {
    const blob *b = &S.nodes[replica(k, 0)].store[k];
    dvv fs;
    dvv_init(&fs);
    versions_of(b->p, b->n, &fs);
    shown fin = {0, NULL};
    shown_set(&fin, &fs, k);
    const char *vals[256];
    size_t nv = 0;
    for (size_t i = 0; i < fin.n && nv < 256; i++) vals[nv++] = fin.v[i];
    hc_final(&S.hc, k, vals, nv);
    free(fin.v);
    dvv_close(&fs);
  }
  if (S.hc.violations) {
    if (S.violations == 0)
      snprintf(S.first_violation, sizeof S.first_violation, "%.190s", S.hc.first);
    S.violations += S.hc.violations;
  }
  return S.violations;
}

typedef struct totals {
  long seeds, failed, ops, acked, refused, timeouts, forwards, read_repairs;
  long ae_merges, wipes, crashes, pauses, dropped, superseded, final_sib, max_sib;
  long writes;
} totals;

static void add(totals *t) {
  t->seeds++;
  t->ops += S.ops;
  t->writes += (long)S.nw;
  t->acked += S.acked;
  t->refused += S.refused;
  t->timeouts += S.timeouts;
  t->forwards += S.forwards;
  t->read_repairs += S.read_repairs;
  t->ae_merges += S.ae_merges;
  t->wipes += S.wipes;
  t->crashes += S.crashes;
  t->pauses += S.pauses;
  t->dropped += S.dropped;
  t->superseded += S.superseded;
  t->final_sib += S.final_sib;
  if (S.max_sib > t->max_sib) t->max_sib = S.max_sib;
}

static const char *prog = "test_history_sim";

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *e = getenv(name);
  return e && *e ? strtoull(e, NULL, 10) : dflt;
}

static int env_bug(void) {
  const char *e = getenv("SIM_BUG");
  if (e == NULL || *e == '\0') return BUG_NONE;
  if (strcmp(e, "merge") == 0) return BUG_MERGE;
  if (strcmp(e, "context") == 0) return BUG_CONTEXT;
  if (strcmp(e, "incarnation") == 0) return BUG_INCARNATION;
  return BUG_NONE;
}

static void test_histories(void) {
  uint64_t first = env_u64("SIM_SEED", 1), n = env_u64("SIM_SEEDS", 300);
  int bug = env_bug();
  totals t;
  memset(&t, 0, sizeof t);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (uint64_t s = first; s < first + n; s++) {
    if (run_seed(s, bug)) {
      t.failed++;
      printf("\n    seed %llu: %ld violations, first: %s"
             "\n    replay: SIM_SEED=%llu SIM_SEEDS=1%s%s %s histories\n",
             (unsigned long long)s, S.violations, S.first_violation,
             (unsigned long long)s, bug ? " SIM_BUG=" : "", bug ? getenv("SIM_BUG") : "", prog);
    }
    add(&t);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  printf("\n    %ld seeds in %.1f s (%.1f seeds/s), %ld failed; per seed: %.0f ops, %.0f writes"
         " (%.0f acked, %.1f refused at %d siblings), %.0f timeouts, %.0f forwards,"
         " %.0f read repairs, %.0f anti-entropy merges, %.1f crashes (%.1f wiped), %.1f pauses,"
         " %.0f messages lost; %.0f writes superseded, %.1f siblings left, max %ld\n",
         t.seeds, secs, (double)t.seeds / secs, t.failed, (double)t.ops / (double)t.seeds,
         (double)t.writes / (double)t.seeds, (double)t.acked / (double)t.seeds,
         (double)t.refused / (double)t.seeds, SIB_LIMIT, (double)t.timeouts / (double)t.seeds,
         (double)t.forwards / (double)t.seeds, (double)t.read_repairs / (double)t.seeds,
         (double)t.ae_merges / (double)t.seeds, (double)t.crashes / (double)t.seeds,
         (double)t.wipes / (double)t.seeds, (double)t.pauses / (double)t.seeds,
         (double)t.dropped / (double)t.seeds, (double)t.superseded / (double)t.seeds,
         (double)t.final_sib / (double)t.seeds, t.max_sib);
  if (bug) {
    CU_ASSERT(t.failed > 0);
    return;
  }
  CU_ASSERT_EQUAL(t.failed, 0);
  /* the runs exercised what they claim to */
  CU_ASSERT(t.acked > 0 && t.superseded > 0 && t.final_sib > 0);
  CU_ASSERT(t.forwards > 0 && t.read_repairs > 0 && t.ae_merges > 0);
  CU_ASSERT(t.wipes > 0 && t.pauses > 0 && t.dropped > 0 && t.timeouts > 0);
  CU_ASSERT(t.refused > 0);
}

/* The checker is not vacuous: each planted bug fails some seeds. */
static void planted(int bug, const char *name) {
  long failed = 0;
  char first_msg[sizeof S.first_violation] = "-";
  uint64_t first = env_u64("SIM_SEED", 1);
  for (uint64_t s = first; s < first + 20; s++)
    if (run_seed(s, bug) && failed++ == 0) memcpy(first_msg, S.first_violation, sizeof first_msg);
  printf("\n    planted bug '%s': %ld of 20 seeds fail (first: %s)\n", name, failed, first_msg);
  CU_ASSERT(failed > 0);
}

static void test_planted_merge(void) { planted(BUG_MERGE, "merge drops a sibling"); }
static void test_planted_context(void) { planted(BUG_CONTEXT, "event ignores the context"); }
static void test_planted_incarnation(void) {
  planted(BUG_INCARNATION, "wiped node keeps its incarnation");
}

int main(int argc, char **argv) {
  prog = argv[0];
  printf("history simulation, SIM_SEED=%llu SIM_SEEDS=%llu\n",
         (unsigned long long)env_u64("SIM_SEED", 1), (unsigned long long)env_u64("SIM_SEEDS", 300));
  static const test_case cases[] = {
    {"histories", test_histories},
    {"planted_merge", test_planted_merge},
    {"planted_context", test_planted_context},
    {"planted_incarnation", test_planted_incarnation},
    {NULL, NULL}};
  int rc = testutil_run("history_sim", cases, argc, argv);
  sim_free();
  return rc;
}
