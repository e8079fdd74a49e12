/*
** coordinator: per-request state machines for reads and writes at every
** consistency level. See coordinator.h for the contract and
** docs/coordinator.md for the rules and what the owner wires.
**
** Design notes
**
**  1. No I/O, no clock, no randomness: events in, actions out. Actions go
**     to an append-only queue sized at creation for the most a request can
**     ever emit (a replica is sent at most one first-round request, one
**     data request, one repair and one hint, plus one answer), so emitting
**     never allocates and the answer can always be queued, even when a
**     copy of replica data ran out of memory.
**  2. Exactly one COORD_ANSWER per request: answer() is the only place
**     that emits it, and it sets c->answered first thing; every path that
**     could answer checks c->answered. COORD_DONE is terminal: every event
**     after it is ignored.
**  3. Per replica, a write is in one of: not asked (down at start:
**     hinted), asked and pending, acked, failed (hinted), timed out
**     (hinted). The request is finished once answered and no replica is
**     pending, or at the deadline.
**  4. A read contacts exactly the replicas the level needs, so every round
**     waits for all of them: the level is met exactly when they have all
**     answered, and one error or silence fails it (no speculative retry in
**     this module; the owner may add one by starting a second request).
**  5. Read answers are copied into one block per replica (sorted by key,
**     duplicates merged); the merged answer and the repair lists point
**     into those blocks, which live until coord_free.
**  6. Versions merge with cell_merge_versions (docs/versions.md): plain
**     cells keep their LWW winner with no allocation; version sets that
**     merge into a new set get its encoding in a buffer the coordinator
**     owns (c->owned) until coord_free, so the answer and the repairs
**     (the merged set to every replica that differs) point into it.
**
** Write:
**
**   coord_write_new --bad level / unavailable--> answer(error) --> DONE
**        |
**        | SEND_WRITE / SEND_WRITE_FORWARD to the alive, STORE_HINT to the down
**        v
**     WAITING --coord_on_ack: level met----------> answer(0) --> ANSWERED
**        |  \---coord_on_error: level unreachable--> answer(err) -> ANSWERED
**        |                                                           |
**        +--coord_on_timeout: hints, answer(ETIMEDOUT)--+  coord_on_ack /
**                                                       |  coord_on_error:
**                                                       v  none pending, or
**                                                      DONE <-coord_on_timeout
**
** Read:
**
**   coord_read_new --bad level / unavailable--> answer(error) --> DONE
**        | SEND_DATA to the first, SEND_DIGEST to the others
**        v
**     WAITING --coord_on_data/_digest: all in, digests match--> answer(data)
**        | all in, a digest differs                                 |
**        | SEND_DATA to those that sent digests                     |
**        v                                                          |
**     READING_DATA --coord_on_data: all in, merge; nothing stale--> answer
**        | READ_REPAIR to each stale replica                        |
**        v                                                          |
**     REPAIRING --coord_on_ack: every repair acked--> answer(merged)-+--> DONE
**
**   In every state: coord_on_error fails the read (answer(err) --> DONE),
**   coord_on_timeout answers ETIMEDOUT (unacked repairs become hints).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "coordinator.h"

/* ------------------------------------------------------------ digest */

/* MurmurHash3_x64_128, seed 0, fed incrementally (the bytes are read
** little-endian explicitly, so the result does not depend on the CPU). */
typedef struct mm3 {
  uint64_t h1, h2, len;
  uint8_t buf[16];
  size_t nbuf;
} mm3;

#define MM3_C1 0x87c37b91114253d5ull
#define MM3_C2 0x4cf5ad432745937full

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

static void mm3_block(mm3 *m, const uint8_t *b) {
  uint64_t k1 = le64(b), k2 = le64(b + 8);
  k1 *= MM3_C1;
  k1 = rotl64(k1, 31);
  k1 *= MM3_C2;
  m->h1 ^= k1;
  m->h1 = rotl64(m->h1, 27);
  m->h1 += m->h2;
  m->h1 = m->h1 * 5 + 0x52dce729;
  k2 *= MM3_C2;
  k2 = rotl64(k2, 33);
  k2 *= MM3_C1;
  m->h2 ^= k2;
  m->h2 = rotl64(m->h2, 31);
  m->h2 += m->h1;
  m->h2 = m->h2 * 5 + 0x38495ab5;
}

static void mm3_update(mm3 *m, const void *data, size_t n) {
  const uint8_t *p = data;
  m->len += n;
  if (m->nbuf) {
    size_t take = 16 - m->nbuf < n ? 16 - m->nbuf : n;
    memcpy(m->buf + m->nbuf, p, take);
    m->nbuf += take;
    p += take;
    n -= take;
    if (m->nbuf < 16) return;
    mm3_block(m, m->buf);
    m->nbuf = 0;
  }
  for (; n >= 16; p += 16, n -= 16) mm3_block(m, p);
  if (n) memcpy(m->buf, p, n);
  m->nbuf = n;
}

static void mm3_final(mm3 *m, uint8_t out[16]) {
  uint64_t k1 = 0, k2 = 0;
  const uint8_t *t = m->buf;
  for (size_t i = m->nbuf; i > 8; i--) k2 ^= (uint64_t)t[i - 1] << ((i - 9) * 8);
  if (m->nbuf > 8) {
    k2 *= MM3_C2;
    k2 = rotl64(k2, 33);
    k2 *= MM3_C1;
    m->h2 ^= k2;
  }
  for (size_t i = m->nbuf < 8 ? m->nbuf : 8; i > 0; i--)
    k1 ^= (uint64_t)t[i - 1] << ((i - 1) * 8);
  if (m->nbuf > 0) {
    k1 *= MM3_C1;
    k1 = rotl64(k1, 31);
    k1 *= MM3_C2;
    m->h1 ^= k1;
  }
  uint64_t h1 = m->h1 ^ m->len, h2 = m->h2 ^ m->len;
  h1 += h2;
  h2 += h1;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 += h2;
  h2 += h1;
  for (int i = 0; i < 8; i++) {
    out[i] = (uint8_t)(h1 >> (8 * i));
    out[8 + i] = (uint8_t)(h2 >> (8 * i));
  }
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static int key_cmp(cbytes a, cbytes b) {
  size_t n = a.n < b.n ? a.n : b.n;
  int r = n ? memcmp(a.p, b.p, n) : 0;
  if (r) return r;
  return (a.n > b.n) - (a.n < b.n);
}

static int cmp_cell_ptr(const void *x, const void *y) {
  const coord_cell *a = *(const coord_cell *const *)x, *b = *(const coord_cell *const *)y;
  return key_cmp(a->key, b->key);
}

static void digest_one(mm3 *m, const coord_cell *c) {
  uint8_t be[4], prefix[CELL_PREFIX_MAX];
  put_be32(be, (uint32_t)c->key.n);
  mm3_update(m, be, 4);
  if (c->key.n) mm3_update(m, c->key.p, c->key.n);
  put_be32(be, (uint32_t)cell_encoded_size(&c->v));
  mm3_update(m, be, 4);
  size_t np = cell_encode_prefix(&c->v, prefix);
  mm3_update(m, prefix, np);
  if (c->v.has_clock && c->v.clock.n) mm3_update(m, c->v.clock.p, c->v.clock.n);
  if (!c->v.tombstone && c->v.value.n) mm3_update(m, c->v.value.p, c->v.value.n);
}

void coord_digest(const coord_cell *cells, size_t n,
                  uint8_t out[COORD_DIGEST_LEN]) {
  mm3 m = {0};
  const coord_cell *small[64];
  const coord_cell **order = n <= 64 ? small : malloc(n * sizeof *order);
  if (order == NULL) {
    /* no memory to sort: hash in the order given. A replica answering in
    ** another order then shows a mismatch, which costs one extra round,
    ** never a wrong answer. */
    for (size_t i = 0; i < n; i++) digest_one(&m, &cells[i]);
  } else {
    for (size_t i = 0; i < n; i++) order[i] = &cells[i];
    qsort(order, n, sizeof *order, cmp_cell_ptr);
    for (size_t i = 0; i < n; i++) digest_one(&m, order[i]);
    if (order != small) free(order);
  }
  mm3_final(&m, out);
}

/* ------------------------------------------------------------ state */

typedef enum coord_kind { KIND_WRITE = 1, KIND_READ = 2 } coord_kind;

typedef struct rep {
  cl_replica r;
  uint8_t asked;          /* write: sent or forwarded to; read: contacted */
  uint8_t acked;          /* write ack */
  uint8_t failed;         /* answered an error */
  uint8_t hinted;         /* STORE_HINT emitted */
  uint8_t hint_stored;    /* ANY: the owner stored it */
  uint8_t hint_failed;    /* ANY: the owner could not store it */
  uint8_t has_digest, has_data, data_asked;
  uint8_t repair_sent, repair_acked;
  uint8_t digest[COORD_DIGEST_LEN];
  coord_cell *data;       /* malloc'd block (note 5) */
  size_t ndata;
  coord_cell *repair;     /* malloc'd array, bytes borrowed from blocks */
  size_t nrepair;
} rep;

struct coord {
  coord_kind kind;
  coord_state state;
  int answered;
  uint64_t id, deadline;
  cellar_consistency_t level;
  int any;                /* write at ANY */
  cl_need need;
  cl_tracker t;           /* write acks; read: first-round responses */
  cl_tracker t2;          /* read: second-round data responses */
  size_t n;
  rep *reps;
  uint32_t *fwd, *fwd_members;   /* forward lists, n entries each */
  size_t nfwd;
  coord_action *q;        /* note 1 */
  size_t nq, capq, head;
  char message[256];
  int error_code;         /* the first replica error */
  uint32_t nfailed;
  /* read */
  int data_replica;
  coord_cell *merged;     /* malloc'd, bytes borrowed from reps' blocks
                             or from owned */
  size_t nmerged;
  cell_buf *owned;        /* note 6: versions made by merging sets */
  size_t nowned, capowned;
  uint32_t nrepairs, nrepair_acks;
  coord_stats st;
};

static const char *const action_names[] = {
  "?", "SEND_WRITE", "SEND_WRITE_FORWARD", "STORE_HINT", "SEND_DATA",
  "SEND_DIGEST", "READ_REPAIR", "ANSWER"};

const char *coord_action_name(coord_action_kind k) {
  return (int)k >= 1 && (int)k <= COORD_ANSWER ? action_names[k] : "?";
}

static const char *const state_names[] = {
  "?", "WAITING", "READING_DATA", "REPAIRING", "ANSWERED", "DONE"};

const char *coord_state_name(coord_state s) {
  return (int)s >= 1 && (int)s <= COORD_DONE ? state_names[s] : "?";
}

static coord_action *emit(coord *c, coord_action_kind kind, uint32_t replica) {
  if (c->nq == c->capq) {
    /* unreachable by note 1; grow rather than lose an action */
    size_t cap = c->capq * 2 + 4;
    coord_action *q = realloc(c->q, cap * sizeof *q);
    if (q == NULL) return NULL;
    c->q = q;
    c->capq = cap;
  }
  coord_action *a = &c->q[c->nq++];
  memset(a, 0, sizeof *a);
  a->kind = kind;
  a->id = c->id;
  a->replica = replica;
  a->member = replica < c->n ? c->reps[replica].r.member : 0;
  a->message = "";
  return a;
}

static void answer(coord *c, int code, const coord_cell *cells, size_t ncells,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The only place that emits COORD_ANSWER (note 2). */
static void answer(coord *c, int code, const coord_cell *cells, size_t ncells,
                   const char *fmt, ...) {
  if (c->answered) return;
  c->answered = 1;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
  } else {
    c->message[0] = '\0';
  }
  coord_action *a = emit(c, COORD_ANSWER, 0);
  if (a == NULL) return;
  a->member = 0;
  a->code = code;
  a->message = c->message;
  a->cells = cells;
  a->ncells = ncells;
}

static void hint(coord *c, uint32_t i, const coord_cell *cells, size_t ncells) {
  rep *r = &c->reps[i];
  if (r->hinted) return;
  r->hinted = 1;
  coord_action *a = emit(c, COORD_STORE_HINT, i);
  if (a == NULL) return;
  a->cells = cells;
  a->ncells = ncells;
  c->st.hints++;
}

static void record_error(coord *c, int code) {
  if (c->nfailed++ == 0) c->error_code = code < 0 ? code : CELLAR_EINTERNAL;
}

static int ignored(coord *c) {
  c->st.ignored++;
  return 0;
}

static int create(const coord_config *cfg, coord_kind kind, coord **out) {
  *out = NULL;
  if (cfg == NULL || cfg->ks == NULL || cfg->nreplicas > CL_MAX_REPLICAS ||
      (cfg->nreplicas && cfg->replicas == NULL))
    return CELLAR_EINVAL;
  coord *c = calloc(1, sizeof *c);
  if (c == NULL) return CELLAR_ENOMEM;
  c->kind = kind;
  c->state = COORD_WAITING;
  c->id = cfg->id;
  c->deadline = cfg->deadline_ns;
  c->level = cfg->level;
  c->n = cfg->nreplicas;
  c->data_replica = -1;
  c->capq = 4 * c->n + 4;
  c->reps = calloc(c->n ? c->n : 1, sizeof *c->reps);
  c->fwd = calloc(c->n ? c->n : 1, sizeof *c->fwd);
  c->fwd_members = calloc(c->n ? c->n : 1, sizeof *c->fwd_members);
  c->q = calloc(c->capq, sizeof *c->q);
  if (c->reps == NULL || c->fwd == NULL || c->fwd_members == NULL || c->q == NULL) {
    coord_free(c);
    return CELLAR_ENOMEM;
  }
  for (size_t i = 0; i < c->n; i++) {
    c->reps[i].r = cfg->replicas[i];
    c->reps[i].r.dc[RING_NAME_MAX] = '\0';
  }
  *out = c;
  return 0;
}

/* Level and liveness checks shared by reads and writes; 0 to go on, else
** the request was answered and is done. */
static int admit(coord *c, const coord_config *cfg, int write) {
  char err[200];
  int rc = cl_need_init(&c->need, cfg->ks, cfg->local_dc, cfg->level, write, err,
                        sizeof err);
  /* pending replicas (writes only) raise the requirement where they count */
  for (size_t i = c->n - (write ? cfg->npending : 0); rc == 0 && write && i < c->n; i++) {
    int g = cl_group(&c->need, c->reps[i].r.dc);
    if (g < 0 || c->need.level == CELLAR_CL_ANY) continue;
    c->need.total++;
    if (c->need.scope == CL_SCOPE_EACH_DC) c->need.dcs[g].need++;
  }
  if (rc == 0) {
    cl_replica tmp[CL_MAX_REPLICAS];
    for (size_t i = 0; i < c->n; i++) tmp[i] = c->reps[i].r;
    rc = cl_check_alive(&c->need, tmp, c->n, err, sizeof err);
    if (rc == 0) rc = cl_tracker_init(&c->t, &c->need, tmp, c->n);
  }
  if (rc == 0) return 0;
  answer(c, rc, NULL, 0, "%s", err);
  c->state = COORD_DONE;
  return rc;
}

static int is_local(const coord *c, const rep *r) {
  return c->need.local_dc[0] == '\0' || !strcmp(r->r.dc, c->need.local_dc);
}

/* ------------------------------------------------------------ writes */

static int write_pending(const rep *r) {
  return r->asked && !r->acked && !r->failed && !r->hinted;
}

/* Note 3: answered and nothing pending means done. */
static void write_settle(coord *c) {
  if (!c->answered && cl_tracker_met(&c->t)) answer(c, 0, NULL, 0, NULL);
  if (!c->answered) return;
  for (size_t i = 0; i < c->n; i++)
    if (write_pending(&c->reps[i])) {
      c->state = COORD_ANSWERED;
      return;
    }
  c->state = COORD_DONE;
}

int coord_write_new(const coord_config *cfg, coord **out) {
  coord *c;
  *out = NULL;
  int rc = create(cfg, KIND_WRITE, &c);
  if (rc) return rc;
  *out = c;
  if (admit(c, cfg, 1)) return 0;
  c->any = c->level == CELLAR_CL_ANY;
  int forward = !cfg->no_forward && c->need.local_dc[0] != '\0';
  for (size_t i = 0; i < c->n; i++) {
    rep *r = &c->reps[i];
    if (!r->r.alive) {
      hint(c, (uint32_t)i, NULL, 0);
      /* ANY: the hint, once stored, counts (coord_on_hint_stored) */
      if (!c->any) cl_tracker_exclude(&c->t, (uint32_t)i);
      continue;
    }
    if (r->asked) continue;                 /* forwarded to already */
    r->asked = 1;
    if (!forward || is_local(c, r)) {
      emit(c, COORD_SEND_WRITE, (uint32_t)i);
      continue;
    }
    /* first alive replica of a remote datacenter: one copy crosses the
    ** boundary, it forwards to the other alive ones of its datacenter */
    size_t start = c->nfwd;
    for (size_t j = i + 1; j < c->n; j++) {
      rep *o = &c->reps[j];
      if (!o->r.alive || o->asked || strcmp(o->r.dc, r->r.dc)) continue;
      o->asked = 1;
      c->fwd[c->nfwd] = (uint32_t)j;
      c->fwd_members[c->nfwd] = o->r.member;
      c->nfwd++;
    }
    coord_action *a = emit(c, start == c->nfwd ? COORD_SEND_WRITE : COORD_SEND_WRITE_FORWARD,
                           (uint32_t)i);
    if (a && start != c->nfwd) {
      a->nforward = c->nfwd - start;
      a->forward = &c->fwd[start];
      a->forward_members = &c->fwd_members[start];
    }
  }
  write_settle(c);
  return 0;
}

static int write_ack(coord *c, uint32_t i) {
  rep *r = &c->reps[i];
  if (!r->asked || r->acked || r->failed) return ignored(c);
  r->acked = 1;
  c->st.acks++;
  cl_tracker_ack(&c->t, i);
  write_settle(c);
  return 1;
}

static int write_error(coord *c, uint32_t i, int code) {
  rep *r = &c->reps[i];
  if (!r->asked || r->acked || r->failed) return ignored(c);
  r->failed = 1;
  record_error(c, code);
  /* it did not apply the write: a hint brings it up to date later */
  hint(c, i, NULL, 0);
  if (!c->any) cl_tracker_exclude(&c->t, i);
  if (!c->answered && !cl_tracker_reachable(&c->t)) {
    char d[160];
    cl_tracker_describe(&c->t, "acks", d, sizeof d);
    answer(c, c->error_code, NULL, 0, "failed: %s (%u replicas failed: %s)", d, c->nfailed,
           cellar_strerror(c->error_code));
  }
  write_settle(c);
  return 1;
}

int coord_on_hint_stored(coord *c, uint32_t i) {
  if (c->state == COORD_DONE || c->kind != KIND_WRITE || !c->any || i >= c->n)
    return ignored(c);
  rep *r = &c->reps[i];
  if (!r->hinted || r->hint_stored) return ignored(c);
  r->hint_stored = 1;
  cl_tracker_ack(&c->t, i);
  write_settle(c);
  return 1;
}

int coord_on_hint_failed(coord *c, uint32_t i, int code) {
  if (c->state == COORD_DONE || c->kind != KIND_WRITE || !c->any || i >= c->n)
    return ignored(c);
  rep *r = &c->reps[i];
  if (!r->hinted || r->hint_stored || r->hint_failed) return ignored(c);
  r->hint_failed = 1;
  /* hinted before the deadline: never asked, or it failed; nothing of it
  ** can count now, so the client need not wait for the deadline */
  cl_tracker_exclude(&c->t, i);
  if (!c->answered && !cl_tracker_reachable(&c->t)) {
    char d[160];
    cl_tracker_describe(&c->t, "acks", d, sizeof d);
    answer(c, CELLAR_EUNAVAILABLE, NULL, 0, "failed: %s (no replica reached, no hint stored: %s)",
           d, cellar_strerror(code < 0 ? code : CELLAR_EINTERNAL));
  }
  write_settle(c);
  return 1;
}

static void write_timeout(coord *c) {
  for (size_t i = 0; i < c->n; i++)
    if (write_pending(&c->reps[i])) hint(c, (uint32_t)i, NULL, 0);
  if (!c->answered) {
    char d[160];
    cl_tracker_describe(&c->t, "acks", d, sizeof d);
    answer(c, CELLAR_ETIMEDOUT, NULL, 0, "timed out: %s", d);
  }
}

/* ------------------------------------------------------------- reads */

/* Note 6: the merge of two versions of a key (cell_merge_versions) into
** *out: returns 0 when it is a, 1 when it is b, 2 for a new version whose
** bytes c owns, or a negative error. */
static int merge_versions(coord *c, const cell *a, const cell *b, cell *out) {
  if (!a->has_clock && !b->has_clock) {
    const cell *w = cell_merge(a, b);   /* plain cells: no allocation */
    *out = *w;
    return w == b;
  }
  cell_buf mb = {0};
  const cell *w;
  int rc = cell_merge_versions(a, b, &mb, &w);
  if (rc == 0) {
    *out = *w;
    return w == b;
  }
  if (rc != 1) return rc;
  if (c->nowned == c->capowned) {
    size_t cap = c->capowned ? 2 * c->capowned : 8;
    cell_buf *o = realloc(c->owned, cap * sizeof *o);
    if (o == NULL) {
      cell_buf_free(&mb);
      return CELLAR_ENOMEM;
    }
    c->owned = o;
    c->capowned = cap;
  }
  c->owned[c->nowned++] = mb;
  rc = cell_decode(mb.p, mb.n, out);
  return rc ? rc : 2;
}

/* Copies cells into one block: array first, then the bytes; sorted by key,
** a key given twice keeps its merge (note 5). */
static coord_cell *copy_cells(coord *c, const coord_cell *in, size_t n,
                              size_t *nout) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += in[i].key.n + in[i].v.value.n + (in[i].v.has_clock ? in[i].v.clock.n : 0);
  if (n > (SIZE_MAX - bytes) / sizeof(coord_cell)) return NULL;
  coord_cell *out = malloc(n * sizeof *out + bytes + 1);
  if (out == NULL) return NULL;
  uint8_t *p = (uint8_t *)(out + n);
  const coord_cell **order = malloc((n ? n : 1) * sizeof *order);
  if (order == NULL) {
    free(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) order[i] = &in[i];
  qsort(order, n, sizeof *order, cmp_cell_ptr);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const coord_cell *s = order[i];
    if (k > 0 && key_cmp(out[k - 1].key, s->key) == 0) {
      /* duplicate key: keep the merge; the loser's bytes stay unused */
      cell m;
      int w = merge_versions(c, &s->v, &out[k - 1].v, &m);
      if (w == 2) out[k - 1].v = m;   /* a new version, bytes owned by c */
      if (w != 0) continue;           /* kept (or an error: the first) */
      k--;                            /* s wins: copied over the other */
    }
    coord_cell *d = &out[k++];
    *d = *s;
    d->key.p = p;
    if (s->key.n) memcpy(p, s->key.p, s->key.n);
    p += s->key.n;
    d->v.value.p = p;
    if (s->v.value.n) memcpy(p, s->v.value.p, s->v.value.n);
    p += s->v.value.n;
    d->v.clock.p = p;
    if (!s->v.has_clock) d->v.clock.n = 0;
    if (d->v.clock.n) memcpy(p, s->v.clock.p, d->v.clock.n);
    p += d->v.clock.n;
  }
  free(order);
  *nout = k;
  return out;
}

int coord_read_new(const coord_config *cfg, coord **out) {
  coord *c;
  *out = NULL;
  int rc = create(cfg, KIND_READ, &c);
  if (rc) return rc;
  *out = c;
  if (admit(c, cfg, 0)) return 0;
  /* preference: alive local replicas, then alive remote ones, each in the
  ** order given; take what the level needs (per datacenter for EACH) */
  uint32_t picked_dc[SCHEMA_DC_MAX] = {0}, picked = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < c->n; i++) {
      rep *r = &c->reps[i];
      if (!r->r.alive || r->asked || is_local(c, r) != (pass == 0)) continue;
      int g = cl_group(&c->need, r->r.dc);
      if (g < 0) continue;
      if (c->need.scope == CL_SCOPE_EACH_DC && c->need.ndcs > 0) {
        if (picked_dc[g] >= c->need.dcs[g].need) continue;
        picked_dc[g]++;
      } else if (picked >= c->need.total) {
        continue;
      }
      picked++;
      r->asked = 1;
      if (c->data_replica < 0) {
        c->data_replica = (int)i;
        r->data_asked = 1;
        emit(c, COORD_SEND_DATA, (uint32_t)i);
      } else {
        emit(c, COORD_SEND_DIGEST, (uint32_t)i);
      }
    }
  }
  for (size_t i = 0; i < c->n; i++)
    if (!c->reps[i].asked) cl_tracker_exclude(&c->t, (uint32_t)i);
  if (c->data_replica < 0) {
    /* a level needing no replica (ALL with rf 0): nothing to read */
    answer(c, 0, NULL, 0, NULL);
    c->state = COORD_DONE;
  }
  return 0;
}

static void fail_read(coord *c, const cl_tracker *t, const char *what) {
  char d[160];
  if (t) {
    cl_tracker_describe(t, "responses", d, sizeof d);
  } else {
    snprintf(d, sizeof d, "%s read repair required %u acks, got %u",
             cellar_consistency_name(c->level), c->nrepairs, c->nrepair_acks);
  }
  if (what == NULL)
    answer(c, c->error_code, NULL, 0, "failed: %s (%u replicas failed: %s)", d, c->nfailed,
           cellar_strerror(c->error_code));
  else
    answer(c, CELLAR_ETIMEDOUT, NULL, 0, "timed out: %s%s", d, what);
  c->state = COORD_DONE;
}

/* Merges every data answer and queues the repairs; answers when none. */
static void read_merge(coord *c) {
  size_t total = 0;
  for (size_t i = 0; i < c->n; i++)
    if (c->reps[i].asked) total += c->reps[i].ndata;
  const coord_cell **all = malloc((total ? total : 1) * sizeof *all);
  c->merged = malloc((total ? total : 1) * sizeof *c->merged);
  if (all == NULL || c->merged == NULL) {
    free(all);
    answer(c, CELLAR_ENOMEM, NULL, 0, "out of memory merging read answers");
    c->state = COORD_DONE;
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++)
    for (size_t j = 0; c->reps[i].asked && j < c->reps[i].ndata; j++)
      all[k++] = &c->reps[i].data[j];
  qsort(all, total, sizeof *all, cmp_cell_ptr);
  c->nmerged = 0;
  for (size_t i = 0; i < total;) {
    const coord_cell *win = all[i];
    size_t j = i + 1;
    coord_cell m = *win;
    for (; j < total && key_cmp(all[j]->key, win->key) == 0; j++) {
      cell v;
      int rc = merge_versions(c, &all[j]->v, &m.v, &v);
      if (rc == 0) m = *all[j];
      else if (rc == 2) m.v = v;
      if (rc < 0) {
        free(all);
        answer(c, rc, NULL, 0, "cannot merge the versions of replicas: %s",
               cellar_strerror(rc));
        c->state = COORD_DONE;
        return;
      }
    }
    c->merged[c->nmerged++] = m;
    i = j;
  }
  free(all);
  /* each contacted replica gets the merged cells it lacks or has older */
  for (size_t i = 0; i < c->n; i++) {
    rep *r = &c->reps[i];
    if (!r->asked) continue;
    size_t j = 0;
    for (size_t m = 0; m < c->nmerged; m++) {
      while (j < r->ndata && key_cmp(r->data[j].key, c->merged[m].key) < 0) j++;
      if (j < r->ndata && key_cmp(r->data[j].key, c->merged[m].key) == 0 &&
          cell_compare(&r->data[j].v, &c->merged[m].v) == 0)
        continue;
      if (r->repair == NULL) {
        r->repair = malloc(c->nmerged * sizeof *r->repair);
        if (r->repair == NULL) {
          answer(c, CELLAR_ENOMEM, NULL, 0, "out of memory building read repairs");
          c->state = COORD_DONE;
          return;
        }
      }
      r->repair[r->nrepair++] = c->merged[m];
    }
  }
  for (size_t i = 0; i < c->n; i++) {
    rep *r = &c->reps[i];
    if (r->nrepair == 0) continue;
    r->repair_sent = 1;
    c->nrepairs++;
    c->st.repairs++;
    c->st.repaired_cells += (uint32_t)r->nrepair;
    coord_action *a = emit(c, COORD_READ_REPAIR, (uint32_t)i);
    if (a) {
      a->cells = r->repair;
      a->ncells = r->nrepair;
    }
  }
  if (c->nrepairs == 0) {
    answer(c, 0, c->merged, c->nmerged, NULL);
    c->state = COORD_DONE;
  } else {
    c->state = COORD_REPAIRING;
  }
}

static void read_progress(coord *c) {
  if (c->state == COORD_WAITING) {
    if (!cl_tracker_met(&c->t)) return;
    const rep *d = &c->reps[c->data_replica];
    int match = 1;
    for (size_t i = 0; i < c->n && match; i++)
      if (c->reps[i].asked && memcmp(c->reps[i].digest, d->digest, COORD_DIGEST_LEN))
        match = 0;
    if (match) {
      answer(c, 0, d->data, d->ndata, NULL);
      c->state = COORD_DONE;
      return;
    }
    c->st.digest_mismatch = 1;
    c->state = COORD_READING_DATA;
    c->t2 = c->t;
    for (size_t i = 0; i < c->n; i++) {
      rep *r = &c->reps[i];
      if (!r->asked) continue;
      c->t2.state[i] = r->has_data ? CL_ACKED : CL_PENDING;
      if (r->has_data) continue;
      r->data_asked = 1;
      emit(c, COORD_SEND_DATA, (uint32_t)i);
    }
    /* every contacted replica counts in t; t2 starts from those with data */
    c->t2.got = 0;
    memset(c->t2.got_dc, 0, sizeof c->t2.got_dc);
    for (size_t i = 0; i < c->n; i++)
      if (c->t2.state[i] == CL_ACKED && c->t2.group[i] >= 0) {
        c->t2.got++;
        c->t2.got_dc[c->t2.group[i]]++;
      }
  }
  if (c->state == COORD_READING_DATA && cl_tracker_met(&c->t2)) read_merge(c);
}

int coord_on_data(coord *c, uint32_t i, const coord_cell *cells, size_t n) {
  if (c->state == COORD_DONE || c->kind != KIND_READ || i >= c->n) return ignored(c);
  rep *r = &c->reps[i];
  if (!r->asked || r->failed || r->has_data ||
      (c->state != COORD_WAITING && c->state != COORD_READING_DATA) ||
      (n && cells == NULL))
    return ignored(c);
  r->data = copy_cells(c, cells, n, &r->ndata);
  if (r->data == NULL) {
    answer(c, CELLAR_ENOMEM, NULL, 0, "out of memory copying a read answer");
    c->state = COORD_DONE;
    return 1;
  }
  r->has_data = 1;
  coord_digest(r->data, r->ndata, r->digest);
  if (c->state == COORD_WAITING) {
    r->has_digest = 1;
    cl_tracker_ack(&c->t, i);
  } else {
    cl_tracker_ack(&c->t2, i);
  }
  read_progress(c);
  return 1;
}

int coord_on_digest(coord *c, uint32_t i, const uint8_t digest[COORD_DIGEST_LEN]) {
  if (c->state != COORD_WAITING || c->kind != KIND_READ || i >= c->n) return ignored(c);
  rep *r = &c->reps[i];
  /* the data replica owes data, not a digest */
  if (!r->asked || r->failed || r->has_digest || (int)i == c->data_replica)
    return ignored(c);
  memcpy(r->digest, digest, COORD_DIGEST_LEN);
  r->has_digest = 1;
  cl_tracker_ack(&c->t, i);
  read_progress(c);
  return 1;
}

static int read_ack(coord *c, uint32_t i) {
  rep *r = &c->reps[i];
  if (c->state != COORD_REPAIRING || !r->repair_sent || r->repair_acked || r->failed)
    return ignored(c);
  r->repair_acked = 1;
  c->st.acks++;
  if (++c->nrepair_acks == c->nrepairs) {
    answer(c, 0, c->merged, c->nmerged, NULL);
    c->state = COORD_DONE;
  }
  return 1;
}

static int read_error(coord *c, uint32_t i, int code) {
  rep *r = &c->reps[i];
  if (!r->asked || r->failed) return ignored(c);
  switch (c->state) {
  case COORD_WAITING:
    if (r->has_digest) return ignored(c);
    break;
  case COORD_READING_DATA:
    if (r->has_data) return ignored(c);
    break;
  case COORD_REPAIRING:
    if (!r->repair_sent || r->repair_acked) return ignored(c);
    break;
  default:
    return ignored(c);
  }
  r->failed = 1;
  record_error(c, code);
  if (c->state == COORD_REPAIRING) {
    hint(c, i, r->repair, r->nrepair);
    fail_read(c, NULL, NULL);
    return 1;
  }
  cl_tracker *t = c->state == COORD_WAITING ? &c->t : &c->t2;
  cl_tracker_exclude(t, i);
  if (!cl_tracker_reachable(t)) fail_read(c, t, NULL);   /* always (note 4) */
  return 1;
}

static void read_timeout(coord *c) {
  switch (c->state) {
  case COORD_WAITING:
    fail_read(c, &c->t, "");
    break;
  case COORD_READING_DATA:
    fail_read(c, &c->t2, " (full data after a digest mismatch)");
    break;
  case COORD_REPAIRING:
    for (size_t i = 0; i < c->n; i++) {
      rep *r = &c->reps[i];
      if (r->repair_sent && !r->repair_acked && !r->failed)
        hint(c, (uint32_t)i, r->repair, r->nrepair);
    }
    fail_read(c, NULL, "");
    break;
  default:
    break;
  }
}

/* ------------------------------------------------------ shared events */

int coord_on_ack(coord *c, uint32_t i) {
  if (c->state == COORD_DONE || i >= c->n) return ignored(c);
  return c->kind == KIND_WRITE ? write_ack(c, i) : read_ack(c, i);
}

int coord_on_error(coord *c, uint32_t i, int code) {
  if (c->state == COORD_DONE || i >= c->n) return ignored(c);
  return c->kind == KIND_WRITE ? write_error(c, i, code) : read_error(c, i, code);
}

int coord_on_timeout(coord *c) {
  if (c->state == COORD_DONE) return ignored(c);
  if (c->kind == KIND_WRITE) write_timeout(c);
  else read_timeout(c);
  c->state = COORD_DONE;
  return 1;
}

int coord_next(coord *c, coord_action *out) {
  if (c->head == c->nq) return 0;
  *out = c->q[c->head++];
  return 1;
}

void coord_free(coord *c) {
  if (c == NULL) return;
  for (size_t i = 0; c->reps && i < c->n; i++) {
    free(c->reps[i].data);
    free(c->reps[i].repair);
  }
  free(c->reps);
  free(c->fwd);
  free(c->fwd_members);
  free(c->q);
  free(c->merged);
  for (size_t i = 0; i < c->nowned; i++) cell_buf_free(&c->owned[i]);
  free(c->owned);
  free(c);
}

coord_state coord_get_state(const coord *c) { return c->state; }
int coord_answered(const coord *c) { return c->answered; }
int coord_finished(const coord *c) { return c->state == COORD_DONE; }
uint64_t coord_id(const coord *c) { return c->id; }
uint64_t coord_deadline(const coord *c) { return c->deadline; }

int coord_replica_index(const coord *c, uint32_t member) {
  for (size_t i = 0; i < c->n; i++)
    if (c->reps[i].r.member == member) return (int)i;
  return -1;
}

void coord_get_stats(const coord *c, coord_stats *out) { *out = c->st; }
