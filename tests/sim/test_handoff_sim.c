/*
** Deterministic simulation of hinted handoff: the real coordinator
** (coordinator.c) and the real hint replay machine (hints.c) on three
** simulated nodes, RF 3, one simulated clock, one event queue.
**
** Each node keeps its data (per key the last-write-wins version) and its
** hints in maps that survive a crash (RocksDB's WAL); its coordinators
** and its hint machine live in memory and die with it. Clients write
** random keys through a random live node at random levels (ONE, TWO,
** QUORUM, ALL, ANY) over 4096 keys (most written once or twice, so a
** lost hint shows). Messages take 1..5 ms; those to a dead node are lost.
** The failure detector's view changes DETECT after a death, 1 s after a
** return. Storage work (hint writes, loads, deletes) completes 1 ms after
** it is asked.
**
** Scenario: node 2 dies at 10 s and stays down 30 s under writes (its
** writes are hinted on the others: by a timeout before the detector
** notices, at once after); it comes back and hints alone bring it up to
** date, throttled; for its first OVERLOAD after coming back it answers
** every replay with a temporary error (CELLAR_EOVERLOAD, nothing applied),
** which must only delay the hints, never drop them; node 0, which holds
** many of those hints, crashes in the middle of its replay and restarts 3 s
** later: its machine is rebuilt from its hint store and the replay
** resumes. Writes stop at 46 s.
**
** Checked at the end: every hint store is empty; the three replicas hold
** the same version of every key (no read repair here: hints alone); and
** every acknowledged write (ANY ones too) is on every replica, or a newer
** write of its key is. Also: no replay happened to a node while it was
** down, and the throttle held (bytes replayed per node within rate x time
** + burst).
**
** SIM_SEED=N replays a run (default 1).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "coordinator.h"
#include "hints.h"
#include "testutil.h"

#define NN 3
#define NKEYS 4096
#define MS 1ull                     /* simulated time unit: ms */
#define SEC 1000ull
#define DETECT (2 * SEC)
#define TIMEOUT (500 * MS)
#define WRITES_END (46 * SEC)
#define RUN_END (400 * SEC)
#define THROTTLE 20000ull           /* bytes/s per node */
#define OVERLOAD (12 * SEC)         /* node 2 refuses replays, back up */
#define MAXW 40000

enum {
  E_CLIENT = 1, E_WRITE, E_ACK, E_TIMEOUT, E_HINT_STORED, E_HAPPLY, E_HACK, E_LOADED,
  E_DELETED, E_TICK, E_DOWN, E_UP, E_VIEW
};

typedef struct ev {
  uint64_t at, seq;
  int kind;
  int to, from;                /* nodes */
  int epoch;                   /* of `to` when the event concerns its memory */
  int req;                     /* write index */
  int up;                      /* E_VIEW */
  int code;                    /* E_HACK */
  uint64_t id;                 /* machine ids */
  size_t count;
  char target[HINT_HOST_MAX];
  uint8_t *blob;               /* malloc'd payload */
  size_t nblob;
} ev;

typedef struct ver {
  int64_t ts;
  uint32_t id;
} ver;

typedef struct hkv {
  uint8_t k[HINT_KEY_MAX];
  size_t nk;
  uint8_t *v;
  size_t nv;
} hkv;

typedef struct snode {
  int up, epoch;
  ver data[NKEYS];
  int view[NN];
  uint64_t down_since[NN];
  hints *hm;
  hkv *hs;
  size_t nhs, caphs;
  uint64_t seq;
  uint64_t replay_bytes_to[NN];
} snode;

typedef struct wreq {
  coord *c;
  int node, epoch, key;
  int64_t ts;
  uint32_t id;
  cellar_consistency_t level;
  int answered, code;
} wreq;

static struct {
  uint64_t now, seq, rng;
  ev **heap;
  size_t nheap, capheap;
  snode n[NN];
  wreq w[MAXW];
  int nw;
  keyspace_def ks;
  long acked, failed, hints_stored, replayed_batches, sends_to_dead, lost_reqs;
  uint64_t down_at[NN], up_at[NN];
} S;

static uint64_t seed = 1;

static uint64_t rnd(void) {
  uint64_t z = (S.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void host_of(int n, char out[HINT_HOST_MAX]) { snprintf(out, HINT_HOST_MAX, "node-%d", n); }

static int node_of(const char *host) { return host[5] - '0'; }

/* ------------------------------------------------------------- events */

static int ev_less(const ev *a, const ev *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static ev *push(int kind, uint64_t at) {
  ev *e = calloc(1, sizeof *e);
  e->kind = kind;
  e->at = at;
  e->seq = S.seq++;
  if (S.nheap == S.capheap) {
    S.capheap = S.capheap ? S.capheap * 2 : 1024;
    S.heap = realloc(S.heap, S.capheap * sizeof *S.heap);
  }
  size_t i = S.nheap++;
  while (i > 0 && ev_less(e, S.heap[(i - 1) / 2])) {
    S.heap[i] = S.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  S.heap[i] = e;
  return e;
}

static ev *pop(void) {
  ev *top = S.heap[0];
  ev *last = S.heap[--S.nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= S.nheap) break;
    if (c + 1 < S.nheap && ev_less(S.heap[c + 1], S.heap[c])) c++;
    if (!ev_less(S.heap[c], last)) break;
    S.heap[i] = S.heap[c];
    i = c;
  }
  if (S.nheap) S.heap[i] = last;
  return top;
}

static uint64_t net(void) { return 1 + rnd() % 5; }

/* --------------------------------------------------------- entries */

/* One data entry of the simulated store: key "k" + index, value ts | id. */
typedef struct sent {
  uint8_t k[3];
  uint8_t v[12];
} sent;

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void make_entry(sent *s, int key, int64_t ts, uint32_t id) {
  s->k[0] = 'k';
  s->k[1] = (uint8_t)(key >> 8);
  s->k[2] = (uint8_t)key;
  put64(s->v, (uint64_t)ts);
  s->v[8] = (uint8_t)(id >> 24);
  s->v[9] = (uint8_t)(id >> 16);
  s->v[10] = (uint8_t)(id >> 8);
  s->v[11] = (uint8_t)id;
}

static int newer(ver a, ver b) { return a.ts > b.ts || (a.ts == b.ts && a.id > b.id); }

static void apply(int node, int key, int64_t ts, uint32_t id) {
  ver v = {ts, id};
  if (newer(v, S.n[node].data[key])) S.n[node].data[key] = v;
}

static void apply_entry(int node, cbytes k, cbytes v) {
  CU_ASSERT_FATAL(k.n == 3 && v.n == 12);
  uint32_t id = (uint32_t)v.p[8] << 24 | (uint32_t)v.p[9] << 16 | (uint32_t)v.p[10] << 8 | v.p[11];
  apply(node, k.p[1] << 8 | k.p[2], (int64_t)get64(v.p), id);
}

/* ------------------------------------------------------ hint stores */

static int kv_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
  int c = memcmp(a, b, na < nb ? na : nb);
  return c ? c : (na > nb) - (na < nb);
}

static void hs_put(snode *s, const uint8_t *k, size_t nk, const uint8_t *v, size_t nv) {
  if (s->nhs == s->caphs) {
    s->caphs = s->caphs ? s->caphs * 2 : 256;
    s->hs = realloc(s->hs, s->caphs * sizeof *s->hs);
  }
  size_t i = s->nhs;
  while (i > 0 && kv_cmp(s->hs[i - 1].k, s->hs[i - 1].nk, k, nk) > 0) i--;
  memmove(&s->hs[i + 1], &s->hs[i], (s->nhs - i) * sizeof *s->hs);
  memcpy(s->hs[i].k, k, nk);
  s->hs[i].nk = nk;
  s->hs[i].v = malloc(nv);
  memcpy(s->hs[i].v, v, nv);
  s->hs[i].nv = nv;
  s->nhs++;
}

static void hs_del(snode *s, const uint8_t *k, size_t nk) {
  for (size_t i = 0; i < s->nhs; i++)
    if (s->hs[i].nk == nk && !memcmp(s->hs[i].k, k, nk)) {
      free(s->hs[i].v);
      memmove(&s->hs[i], &s->hs[i + 1], (s->nhs - i - 1) * sizeof *s->hs);
      s->nhs--;
      return;
    }
}

/* --------------------------------------------------- hint machines */

static void hdrain(int n) {
  snode *s = &S.n[n];
  hints_action a;
  while (s->hm && hints_next(s->hm, &a)) {
    if (a.kind == HINTS_LOAD) {
      ev *e = push(E_LOADED, S.now + 1);
      e->to = n;
      e->epoch = s->epoch;
      e->id = a.id;
      e->count = a.count;
      snprintf(e->target, sizeof e->target, "%s", a.target);
      e->blob = malloc(a.nafter + 1);
      memcpy(e->blob, a.after, a.nafter);
      e->nblob = a.nafter;
    } else if (a.kind == HINTS_SEND) {
      int t = node_of(a.target);
      if (!S.n[t].up) S.sends_to_dead++;
      S.n[n].replay_bytes_to[t] += a.bytes;
      ev *e = push(E_HAPPLY, S.now + net());
      e->to = t;
      e->from = n;
      e->epoch = s->epoch;
      e->id = a.id;
      e->blob = malloc(a.nentries * 15 + 1);
      for (size_t i = 0; i < a.nentries; i++) {
        memcpy(e->blob + 15 * i, a.entries[i].key.p, 3);
        memcpy(e->blob + 15 * i + 3, a.entries[i].value.p, 12);
      }
      e->nblob = a.nentries * 15;
    } else if (a.kind == HINTS_DELETE) {
      ev *e = push(E_DELETED, S.now + 1);
      e->to = n;
      e->epoch = s->epoch;
      e->id = a.id;
      size_t total = 0;
      for (size_t i = 0; i < a.nkeys; i++) total += 1 + a.keys[i].n;
      e->blob = malloc(total + 1);
      size_t o = 0;
      for (size_t i = 0; i < a.nkeys; i++) {
        e->blob[o++] = (uint8_t)a.keys[i].n;
        memcpy(e->blob + o, a.keys[i].p, a.keys[i].n);
        o += a.keys[i].n;
      }
      e->nblob = o;
    }
  }
}

static hints *new_machine(void) {
  hints_config c;
  hints_config_init(&c);
  c.throttle_bytes_per_s = THROTTLE;
  c.batch_bytes = 2048;
  c.load_count = 64;
  c.max_inflight = 2;
  c.send_timeout_ms = 2000;
  c.backoff_min_ms = 500;
  c.backoff_max_ms = 4000;
  c.pass_pause_ms = 500;
  hints *h = NULL;
  CU_ASSERT_EQUAL_FATAL(hints_new(&c, &h), 0);
  return h;
}

/* ------------------------------------------------------ coordinators */

static void cdrain(int r);

static void store_hint(int r, int replica) {
  wreq *w = &S.w[r];
  snode *s = &S.n[w->node];
  char target[HINT_HOST_MAX];
  host_of(replica, target);
  sent en;
  make_entry(&en, w->key, w->ts, w->id);
  storage_entry e = {CBYTES(en.k, 3), CBYTES(en.v, 12)};
  uint8_t k[HINT_KEY_MAX];
  size_t nk = hint_key_encode(target, 1700000000000ull + S.now, s->seq++, k);
  size_t nv = 0;
  uint8_t *v = hint_value_encode(0, &e, 1, &nv);
  uint64_t down = s->view[replica] ? 0 : S.now - s->down_since[replica];
  if (hints_admit(s->hm, target, nk + nv, down) != HINT_ADMIT_OK) {
    free(v);
    return;
  }
  ev *x = push(E_HINT_STORED, S.now + 1);
  x->to = w->node;
  x->epoch = s->epoch;
  x->req = r;
  x->from = replica;
  snprintf(x->target, sizeof x->target, "%s", target);
  x->blob = malloc(nk + nv);
  memcpy(x->blob, k, nk);
  memcpy(x->blob + nk, v, nv);
  x->count = nk;
  x->nblob = nk + nv;
  free(v);
}

static void cdrain(int r) {
  wreq *w = &S.w[r];
  coord_action acts[32];
  size_t n = 0;
  while (n < 32 && coord_next(w->c, &acts[n])) n++;
  for (size_t i = 0; i < n; i++) {
    coord_action *a = &acts[i];
    int to = (int)a->member;
    if (a->kind == COORD_SEND_WRITE) {
      ev *e = push(E_WRITE, S.now + (to == w->node ? 0 : net()));
      e->to = to;
      e->from = w->node;
      e->epoch = w->epoch;
      e->req = r;
    } else if (a->kind == COORD_STORE_HINT) {
      store_hint(r, to);
    } else if (a->kind == COORD_ANSWER) {
      CU_ASSERT_FALSE(w->answered);
      w->answered = 1;
      w->code = a->code;
      if (a->code == 0) S.acked++;
      else S.failed++;
    }
  }
}

static void client_write(void) {
  int alive[NN], na = 0;
  for (int i = 0; i < NN; i++)
    if (S.n[i].up) alive[na++] = i;
  if (na == 0 || S.nw == MAXW) return;
  int node = alive[rnd() % na];
  static const cellar_consistency_t levels[] = {CELLAR_CL_QUORUM, CELLAR_CL_QUORUM, CELLAR_CL_ONE,
                                                CELLAR_CL_TWO, CELLAR_CL_ALL, CELLAR_CL_ANY};
  int r = S.nw++;
  wreq *w = &S.w[r];
  memset(w, 0, sizeof *w);
  w->node = node;
  w->epoch = S.n[node].epoch;
  w->key = (int)(rnd() % NKEYS);
  w->ts = (int64_t)(S.now * 1000 + (uint64_t)r % 1000);
  w->id = (uint32_t)r + 1;
  w->level = levels[rnd() % 6];
  cl_replica reps[NN];
  for (int i = 0; i < NN; i++) {
    int m = (node + i) % NN;      /* this node first */
    memset(&reps[i], 0, sizeof reps[i]);
    reps[i].member = (uint32_t)m;
    snprintf(reps[i].dc, sizeof reps[i].dc, "dc1");
    reps[i].alive = m == node || S.n[node].view[m];
  }
  coord_config cc = {.id = (uint64_t)r, .level = w->level, .ks = &S.ks, .local_dc = "dc1",
                     .replicas = reps, .nreplicas = NN, .deadline_ns = 0};
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cc, &w->c), 0);
  ev *t = push(E_TIMEOUT, S.now + TIMEOUT);
  t->req = r;
  t->to = node;
  t->epoch = w->epoch;
  cdrain(r);
}

static int live_req(int r, int epoch) {
  wreq *w = &S.w[r];
  return w->c && S.n[w->node].up && S.n[w->node].epoch == epoch && !coord_finished(w->c);
}

/* ------------------------------------------------------------ faults */

static void crash(int n) {
  snode *s = &S.n[n];
  s->up = 0;
  s->epoch++;
  hints_free(s->hm);
  s->hm = NULL;
  for (int r = 0; r < S.nw; r++)
    if (S.w[r].node == n && S.w[r].c && !coord_finished(S.w[r].c)) {
      if (!S.w[r].answered) S.lost_reqs++;
      coord_free(S.w[r].c);
      S.w[r].c = NULL;
    }
  S.down_at[n] = S.now;
  for (int o = 0; o < NN; o++)
    if (o != n) {
      ev *e = push(E_VIEW, S.now + DETECT);
      e->to = o;
      e->from = n;
      e->up = 0;
    }
}

static void restart(int n) {
  snode *s = &S.n[n];
  s->up = 1;
  s->hm = new_machine();
  /* crash resume: what the hint store holds, counted again */
  for (size_t i = 0; i < s->nhs; i++) {
    char host[HINT_HOST_MAX];
    uint64_t created, seq;
    CU_ASSERT_EQUAL_FATAL(hint_key_decode(s->hs[i].k, s->hs[i].nk, host, &created, &seq), 0);
    hints_on_stored(s->hm, host, s->hs[i].nk + s->hs[i].nv, 1, 0, S.now);
    hdrain(n);
  }
  for (int o = 0; o < NN; o++) {
    s->view[o] = S.n[o].up;
    s->down_since[o] = S.now;
  }
  S.up_at[n] = S.now;
  for (int o = 0; o < NN; o++)
    if (o != n) {
      ev *e = push(E_VIEW, S.now + 1 * SEC);
      e->to = o;
      e->from = n;
      e->up = 1;
    }
}

/* ------------------------------------------------------------- run */

static void handle(ev *e) {
  snode *to = &S.n[e->to];
  switch (e->kind) {
  case E_CLIENT:
    if (S.now < WRITES_END) {
      client_write();
      push(E_CLIENT, S.now + 1 + rnd() % 8);
    }
    break;
  case E_WRITE: {
    if (!to->up) break;
    wreq *w = &S.w[e->req];
    apply(e->to, w->key, w->ts, w->id);
    ev *a = push(E_ACK, S.now + (e->to == e->from ? 0 : net()));
    a->to = e->from;
    a->from = e->to;
    a->epoch = e->epoch;
    a->req = e->req;
    break;
  }
  case E_ACK:
    if (!live_req(e->req, e->epoch)) break;
    {
      int idx = coord_replica_index(S.w[e->req].c, (uint32_t)e->from);
      if (idx >= 0) coord_on_ack(S.w[e->req].c, (uint32_t)idx);
    }
    cdrain(e->req);
    break;
  case E_TIMEOUT:
    if (!live_req(e->req, e->epoch)) break;
    coord_on_timeout(S.w[e->req].c);
    cdrain(e->req);
    break;
  case E_HINT_STORED:
    if (!to->up || to->epoch != e->epoch) break;   /* lost with the node */
    hs_put(to, e->blob, e->count, e->blob + e->count, e->nblob - e->count);
    S.hints_stored++;
    hints_on_stored(to->hm, e->target, e->nblob, 1, 1, S.now);
    hdrain(e->to);
    if (live_req(e->req, e->epoch)) {
      int idx = coord_replica_index(S.w[e->req].c, (uint32_t)e->from);
      if (idx >= 0) coord_on_hint_stored(S.w[e->req].c, (uint32_t)idx);
      cdrain(e->req);
    }
    break;
  case E_HAPPLY: {
    if (!to->up) break;
    int overloaded = e->to == 2 && S.up_at[2] && S.now < S.up_at[2] + OVERLOAD;
    for (size_t i = 0; !overloaded && i + 15 <= e->nblob; i += 15)
      apply_entry(e->to, CBYTES(e->blob + i, 3), CBYTES(e->blob + i + 3, 12));
    S.replayed_batches += !overloaded;
    ev *a = push(E_HACK, S.now + net());
    a->code = overloaded ? CELLAR_EOVERLOAD : 0;
    a->to = e->from;
    a->epoch = e->epoch;
    a->id = e->id;
    break;
  }
  case E_HACK:
    if (!to->up || to->epoch != e->epoch) break;
    hints_on_ack(to->hm, e->id, e->code, S.now);
    hdrain(e->to);
    break;
  case E_LOADED: {
    if (!to->up || to->epoch != e->epoch) break;
    uint8_t p[HINT_KEY_MAX];
    size_t np = hint_key_prefix(e->target, p);
    hint_record *r = calloc(e->count + 1, sizeof *r);
    size_t n = 0;
    int end = 1;
    for (size_t i = 0; i < to->nhs; i++) {
      hkv *x = &to->hs[i];
      if (x->nk < np || memcmp(x->k, p, np)) continue;
      if (e->nblob && kv_cmp(x->k, x->nk, e->blob, e->nblob) <= 0) continue;
      if (n == e->count) {
        end = 0;
        break;
      }
      r[n].key = CBYTES(x->k, x->nk);
      r[n].value = CBYTES(x->v, x->nv);
      n++;
    }
    hints_on_loaded(to->hm, e->id, r, n, end, 1700000000000ull + S.now, S.now);
    free(r);
    hdrain(e->to);
    break;
  }
  case E_DELETED:
    if (!to->up || to->epoch != e->epoch) break;
    for (size_t o = 0; o < e->nblob;) {
      size_t l = e->blob[o++];
      hs_del(to, e->blob + o, l);
      o += l;
    }
    hints_on_deleted(to->hm, e->id, 0, S.now);
    hdrain(e->to);
    break;
  case E_TICK:
    if (to->up) {
      for (int o = 0; o < NN; o++) {
        if (o == e->to) continue;
        char host[HINT_HOST_MAX];
        host_of(o, host);
        hints_set_alive(to->hm, host, to->view[o], S.now);
        hdrain(e->to);
      }
      hints_tick(to->hm, S.now);
      hdrain(e->to);
    }
    push(E_TICK, S.now + 100)->to = e->to;
    break;
  case E_DOWN:
    crash(e->to);
    break;
  case E_UP:
    restart(e->to);
    break;
  case E_VIEW:
    if (to->view[e->from] != e->up) {
      to->view[e->from] = e->up;
      if (!e->up) to->down_since[e->from] = S.now;
    }
    break;
  }
}

static void sim_free(void) {
  for (int i = 0; i < NN; i++) {
    for (size_t k = 0; k < S.n[i].nhs; k++) free(S.n[i].hs[k].v);
    free(S.n[i].hs);
    hints_free(S.n[i].hm);
  }
  for (int r = 0; r < S.nw; r++) coord_free(S.w[r].c);
  for (size_t i = 0; i < S.nheap; i++) {
    free(S.heap[i]->blob);
    free(S.heap[i]);
  }
  free(S.heap);
  memset(&S, 0, sizeof S);
}

static void setup(void) {
  sim_free();
  S.rng = seed * 7919 + 17;
  memset(&S.ks, 0, sizeof S.ks);
  snprintf(S.ks.name, sizeof S.ks.name, "ks");
  S.ks.strategy = REPL_SIMPLE;
  S.ks.rf = 3;
  for (int i = 0; i < NN; i++) {
    S.n[i].up = 1;
    S.n[i].hm = new_machine();
    for (int o = 0; o < NN; o++) S.n[i].view[o] = 1;
    push(E_TICK, (uint64_t)(i * 33))->to = i;
  }
  push(E_CLIENT, 1);
}

static void test_down_node_converges_by_hints(void) {
  setup();
  push(E_DOWN, 10 * SEC)->to = 2;
  push(E_UP, 40 * SEC)->to = 2;
  uint64_t crash_at = 0, replay_start = 0;
  int crashed = 0;
  while (S.nheap && S.now < RUN_END) {
    ev *e = pop();
    S.now = e->at;
    handle(e);
    free(e->blob);
    free(e);
    /* node 0 crashes in the middle of its replay to node 2 */
    if (!crashed && S.now > 42 * SEC && S.n[0].up) {
      hints_target_stats st;
      if (hints_target_find(S.n[0].hm, "node-2", &st) == 0 && st.replayed > 0 && st.count > 100) {
        if (!replay_start) replay_start = S.now;
        if (S.now > replay_start + 1 * SEC) {
          crashed = 1;
          crash_at = S.now;
          printf("\n  node 0 crashes at %.1f s with %llu hints for node 2 left", S.now / 1000.0,
                 (unsigned long long)st.count);
          crash(0);
          push(E_UP, S.now + 3 * SEC)->to = 0;
        }
      }
    }
    if (S.now > WRITES_END + 5 * SEC) {
      int busy = 0;
      for (int i = 0; i < NN; i++) busy |= !S.n[i].up || S.n[i].nhs > 0;
      if (!busy) break;
    }
  }
  printf("\n  seed %llu: %d writes (%ld acked, %ld failed, %ld lost with a crash), %ld hints "
         "stored, %ld replay batches; done at %.1f s",
         (unsigned long long)seed, S.nw, S.acked, S.failed, S.lost_reqs, S.hints_stored,
         S.replayed_batches, S.now / 1000.0);
  /* the temporary errors (OVERLOAD) dropped no hint */
  uint64_t dropped = 0;
  for (int i = 0; i < NN; i++)
    for (size_t t = 0; t < hints_target_count(S.n[i].hm); t++) {
      hints_target_stats st;
      if (hints_target_at(S.n[i].hm, t, &st) == 0) dropped += st.dropped;
    }
  printf("\n  hints dropped as refused: %llu", (unsigned long long)dropped);
  CU_ASSERT_EQUAL(dropped, 0);
  CU_ASSERT(crashed);
  CU_ASSERT(crash_at > 0);
  CU_ASSERT(S.hints_stored > 1000);
  for (int i = 0; i < NN; i++) {
    CU_ASSERT(S.n[i].up);
    CU_ASSERT_EQUAL(S.n[i].nhs, 0);
    CU_ASSERT_EQUAL(hints_total(S.n[i].hm), 0);
  }
  /* converged: every replica holds the same version of every key */
  int diverged = 0;
  for (int k = 0; k < NKEYS; k++)
    for (int i = 1; i < NN; i++)
      if (S.n[i].data[k].ts != S.n[0].data[k].ts || S.n[i].data[k].id != S.n[0].data[k].id)
        diverged++;
  CU_ASSERT_EQUAL(diverged, 0);
  /* no acknowledged write lost */
  int lost = 0;
  for (int r = 0; r < S.nw; r++) {
    if (!S.w[r].answered || S.w[r].code != 0) continue;
    ver v = {S.w[r].ts, S.w[r].id};
    for (int i = 0; i < NN; i++)
      if (newer(v, S.n[i].data[S.w[r].key])) lost++;
  }
  CU_ASSERT_EQUAL(lost, 0);
  /* the throttle held: per node, bytes sent over the run <= rate x time + slack */
  for (int i = 0; i < NN; i++) {
    uint64_t total = 0;
    for (int t = 0; t < NN; t++) total += S.n[i].replay_bytes_to[t];
    CU_ASSERT(total <= THROTTLE * (S.now / SEC + 1) + 4 * 2048);
  }
  if (diverged || lost) printf("\n  replay: SIM_SEED=%llu tests/sim/test_handoff_sim\n",
                               (unsigned long long)seed);
  printf("\n");
}

int main(int argc, char **argv) {
  const char *s = getenv("SIM_SEED");
  if (s) seed = strtoull(s, NULL, 10);
  printf("handoff simulation, SIM_SEED=%llu\n", (unsigned long long)seed);
  static const test_case cases[] = {
    {"down_node_converges_by_hints", test_down_node_converges_by_hints},
    {NULL, NULL}};
  int rc = testutil_run("handoff_sim", cases, argc, argv);
  sim_free();
  return rc;
}
