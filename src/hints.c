/*
** hints: the hint formats and the replay state machine (contract and
** state diagram in hints.h, design in docs/handoff.md).
**
** Design notes
**
**  1. Per target: counts of hints on disk (count, bytes) kept from the
**     events (stored, deleted), rebuilt at start from a scan
**     (hints_on_stored with reserved 0). A pass from the start of the
**     range that finds nothing sets them to what was stored since the LOAD
**     was issued, so an accounting error heals itself.
**  2. A pass walks the target's range with a cursor (the last key loaded):
**     hints stored during the pass sort after it (newer creation time) and
**     are found in the same pass. A new pass (cursor empty) starts only
**     when no send, load or delete of the target is in flight (invariant 2
**     of hints.h): then the range holds exactly the hints not yet deleted.
**  3. A failure forgets the window and every send in flight (their late
**     acks are ignored, their hints come again in the next pass) and resets
**     the cursor. Simple, and correct by invariant 1.
**  4. Memory that actions point to (keys of a DELETE, the entries of a
**     SEND that a failure forgot) goes to a trash list freed at the start
**     of the next event: actions stay valid until the next call.
**  5. The token bucket counts milli-bytes, so frequent refills of a slow
**     rate lose nothing to rounding. Sends go while the bucket is above 0
**     and take a whole batch, so it can dip below 0 by one batch: the debt
**     is paid before the next send, keeping the average at the rate.
**  6. Targets take turns (round robin, one batch each per turn) so one
**     target with a long backlog does not starve the others.
**  7. A hint the target cannot apply would block every hint after it.
**     Only a permanent refusal counts (hints_code_permanent: the target
**     says the mutation itself is bad). A temporary error (disk full, I/O,
**     overload, shutdown...) backs off and keeps the hint whatever the
**     number of tries: at ANY a hint may be the only copy of an
**     acknowledged write. A batch of several hints refused makes the
**     target's sends one hint each, one in flight, until a pass ends, so
**     answers come in order and the refused hint is always the first of
**     the range after a failure; a hint refused alone HINT_POISON_TRIES
**     times in a row (no success of that same key between) is dropped
**     (counted in the DELETE as dropped).
**  8. Expiry of a target that stays down: a hint's expiry is in its
**     value, so finding expired hints takes a read. A target not alive
**     gets a sweep every sweep_interval_ms (a pass of LOADs that deletes
**     the expired hints and sends nothing); coming up ends a sweep (its
**     load is forgotten) and starts the replay.
**  9. A LOAD unanswered for send_timeout_ms fails like a send (the owner
**     could not start it): the target backs off and loads again.
** 10. Floor: RocksDB keeps a deleted key as a tombstone until compaction,
**     and a seek from the start of a range steps over every one (measured:
**     60 ms per seek after 100,000 replayed hints, 0.02 ms on live keys).
**     A replay pass that ends with every key it loaded deleted (no failed
**     or lost DELETE) proves that every key up to its cursor is gone, so
**     the target's next passes, sweeps and the admin view start after that
**     floor. Sound because the owner stores a target's keys in increasing
**     order (hints.h), so no key below the floor can appear later. Sweeps
**     delete only expired hints: they never move the floor.
*/
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "hints.h"

#define HINT_POISON_TRIES 3

/* ------------------------------------------------------------ formats */

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t hint_key_prefix(const char *host, uint8_t out[HINT_KEY_MAX]) {
  size_t n = host ? strlen(host) : 0;
  if (n == 0 || n >= HINT_HOST_MAX) return 0;
  out[0] = (uint8_t)n;
  memcpy(out + 1, host, n);
  return n + 1;
}

size_t hint_key_encode(const char *host, uint64_t created_ms, uint64_t seq,
                       uint8_t out[HINT_KEY_MAX]) {
  size_t n = hint_key_prefix(host, out);
  if (n == 0) return 0;
  put64(out + n, created_ms);
  put64(out + n + 8, seq);
  return n + 16;
}

int hint_key_decode(const uint8_t *k, size_t n, char host[HINT_HOST_MAX],
                    uint64_t *created_ms, uint64_t *seq) {
  if (n < 1 || k[0] == 0 || k[0] >= HINT_HOST_MAX || n != (size_t)k[0] + 17)
    return CELLAR_EPROTO;
  size_t h = k[0];
  if (memchr(k + 1, 0, h)) return CELLAR_EPROTO;
  memcpy(host, k + 1, h);
  host[h] = '\0';
  *created_ms = get64(k + 1 + h);
  *seq = get64(k + 9 + h);
  return 0;
}

uint8_t *hint_value_encode(uint64_t expires_ms, const storage_entry *e,
                           size_t n, size_t *len) {
  size_t total = 1 + 8 + 4;
  for (size_t i = 0; i < n; i++) total += 8 + e[i].key.n + e[i].value.n;
  uint8_t *p = malloc(total);
  if (p == NULL) return NULL;
  p[0] = HINT_VALUE_VERSION;
  put64(p + 1, expires_ms);
  put32(p + 9, (uint32_t)n);
  size_t o = 13;
  for (size_t i = 0; i < n; i++) {
    put32(p + o, (uint32_t)e[i].key.n);
    if (e[i].key.n) memcpy(p + o + 4, e[i].key.p, e[i].key.n);
    o += 4 + e[i].key.n;
    put32(p + o, (uint32_t)e[i].value.n);
    if (e[i].value.n) memcpy(p + o + 4, e[i].value.p, e[i].value.n);
    o += 4 + e[i].value.n;
  }
  *len = total;
  return p;
}

int hint_value_decode(const uint8_t *v, size_t len, uint64_t *expires_ms,
                      storage_entry **out, size_t *nout) {
  *out = NULL;
  *nout = 0;
  if (len < 13 || v[0] != HINT_VALUE_VERSION) return CELLAR_EPROTO;
  uint32_t n = get32(v + 9);
  /* each entry takes 8 bytes at least: n cannot exceed what is there */
  if (n > (len - 13) / 8) return CELLAR_EPROTO;
  storage_entry *e = calloc(n ? n : 1, sizeof *e);
  if (e == NULL) return CELLAR_ENOMEM;
  size_t o = 13;
  for (uint32_t i = 0; i < n; i++) {
    for (int part = 0; part < 2; part++) {
      if (len - o < 4) goto bad;
      uint32_t l = get32(v + o);
      o += 4;
      if (l > len - o) goto bad;
      cbytes b = CBYTES(v + o, l);
      if (part == 0) e[i].key = b;
      else e[i].value = b;
      o += l;
    }
  }
  if (o != len) goto bad;
  *expires_ms = get64(v + 1);
  *out = e;
  *nout = n;
  return 0;
bad:
  free(e);
  return CELLAR_EPROTO;
}

/* ------------------------------------------------------------ machine */

typedef struct hrec {          /* a loaded hint */
  uint8_t *key;                /* key and value in one malloc'd block */
  size_t nkey;
  uint8_t *val;
  size_t nval;
  storage_entry *e;            /* decoded, borrowing val */
  size_t ne;
} hrec;

typedef struct hsend {         /* a batch in flight */
  uint64_t id;
  uint64_t sent_ms;
  hrec *recs;
  size_t n;
  storage_entry *entries;      /* all entries of recs, borrowed */
  size_t nentries;
  uint64_t bytes;
} hsend;

typedef struct target {
  char host[HINT_HOST_MAX];
  int alive;
  uint64_t count, bytes, reserved;
  uint64_t stored_total, stored_bytes_total;  /* monotonic, note 1 */
  uint64_t load_id;            /* LOAD in flight, 0 none */
  uint64_t load_at;            /* when it was issued (note 9) */
  uint64_t load_stored, load_stored_bytes;    /* stored_* when issued */
  uint8_t cursor[HINT_KEY_MAX];
  size_t ncursor;
  int pass_end;
  uint8_t floor[HINT_KEY_MAX]; /* note 10: keys <= floor are deleted */
  size_t nfloor;
  int pass_clean;              /* note 10: every DELETE of the pass done */
  hrec *win;                   /* loaded, not sent: win[winpos..nwin) */
  size_t nwin, winpos;
  hsend *sends;                /* max_inflight slots */
  size_t nsends;
  size_t deleting;
  uint64_t backoff_until, backoff_ms;
  uint64_t next_pass_at;
  int sweeping;                /* note 8: the pass only drops expired */
  uint64_t next_sweep_at;      /* 0: not scheduled yet */
  uint64_t replayed, expired, failures, dropped;
  int isolate;                 /* note 7: batches of one hint */
  uint8_t poison[HINT_KEY_MAX];   /* note 7: the last hint refused alone */
  size_t npoison;
  int poison_errors;
} target;

typedef struct hdelete {
  uint64_t id;
  char host[HINT_HOST_MAX];
  uint64_t n, bytes;
} hdelete;

struct hints {
  hints_config cfg;
  target **t;
  size_t nt, capt;
  size_t rr;                   /* note 6 */
  uint64_t next_id;
  hdelete *dels;
  size_t ndels, capdels;
  hints_action *q;             /* queued actions */
  size_t nq, capq, qhead;
  void **trash;                /* note 4 */
  size_t ntrash, captrash;
  int64_t tokens_mb;           /* milli-bytes, note 5 */
  uint64_t last_refill;
  int refilled;
};

void hints_config_init(hints_config *c) {
  memset(c, 0, sizeof *c);
  c->window_ms = 3ull * 3600 * 1000;
  c->batch_bytes = 64u << 10;
  c->load_count = 512;
  c->max_inflight = 4;
  c->send_timeout_ms = 10000;
  c->backoff_min_ms = 1000;
  c->backoff_max_ms = 30000;
  c->pass_pause_ms = 1000;
  c->sweep_interval_ms = 3600ull * 1000;
}

int hints_code_permanent(int code) {
  switch (code) {
  case CELLAR_EINVAL:
  case CELLAR_EPROTO:
  case CELLAR_ETOOBIG:
  case CELLAR_ENOKEYSPACE:
  case CELLAR_ENOTABLE:
  case CELLAR_EBADNAME:
  case CELLAR_EBADTYPE:
  case CELLAR_ESIBLINGS:
  case CELLAR_ESTALECONTEXT:
    return 1;
  default:
    return 0;                   /* temporary, or unknown: keep the hint */
  }
}

const char *hints_action_name(hints_action_kind k) {
  switch (k) {
  case HINTS_LOAD: return "LOAD";
  case HINTS_SEND: return "SEND";
  case HINTS_DELETE: return "DELETE";
  case HINTS_DROP: return "DROP";
  }
  return "?";
}

const char *hints_state_name(hints_target_state s) {
  switch (s) {
  case HINTS_IDLE: return "idle";
  case HINTS_WAITING: return "waiting";
  case HINTS_REPLAYING: return "replaying";
  case HINTS_BACKOFF: return "backoff";
  }
  return "?";
}

static uint64_t burst_mb(const hints *h) {
  uint64_t b = h->cfg.burst_bytes ? h->cfg.burst_bytes : h->cfg.throttle_bytes_per_s / 10;
  if (b < h->cfg.batch_bytes) b = h->cfg.batch_bytes;
  return b * 1000;
}

int hints_new(const hints_config *cfg, hints **out) {
  *out = NULL;
  hints *h = calloc(1, sizeof *h);
  if (h == NULL) return CELLAR_ENOMEM;
  h->cfg = *cfg;
  if (h->cfg.batch_bytes == 0) h->cfg.batch_bytes = 64u << 10;
  if (h->cfg.load_count == 0) h->cfg.load_count = 512;
  if (h->cfg.max_inflight == 0) h->cfg.max_inflight = 1;
  if (h->cfg.sweep_interval_ms == 0) h->cfg.sweep_interval_ms = 3600ull * 1000;
  h->next_id = 1;
  h->tokens_mb = (int64_t)burst_mb(h);
  *out = h;
  return 0;
}

static void rec_free(hrec *r) {
  free(r->key);
  free(r->e);
}

static void trash(hints *h, void *p) {
  if (p == NULL) return;
  if (h->ntrash == h->captrash) {
    size_t cap = h->captrash ? h->captrash * 2 : 16;
    void **t = realloc(h->trash, cap * sizeof *t);
    if (t == NULL) {            /* cannot defer: nothing points at it yet
                                   only when no action was queued */
      if (h->nq == h->qhead) free(p);
      return;                   /* else leak rather than dangle */
    }
    h->trash = t;
    h->captrash = cap;
  }
  h->trash[h->ntrash++] = p;
}

static void empty_trash(hints *h) {
  for (size_t i = 0; i < h->ntrash; i++) free(h->trash[i]);
  h->ntrash = 0;
}

/* Forgets the loaded window and the sends in flight (note 3). */
static void forget(hints *h, target *t) {
  for (size_t i = t->winpos; i < t->nwin; i++) {
    trash(h, t->win[i].key);
    trash(h, t->win[i].e);
  }
  free(t->win);
  t->win = NULL;
  t->nwin = t->winpos = 0;
  for (size_t i = 0; i < t->nsends; i++) {
    for (size_t k = 0; k < t->sends[i].n; k++) {
      trash(h, t->sends[i].recs[k].key);
      trash(h, t->sends[i].recs[k].e);
    }
    trash(h, t->sends[i].recs);
    trash(h, t->sends[i].entries);
  }
  t->nsends = 0;
  t->load_id = 0;
  t->ncursor = 0;
  t->pass_end = 0;
  t->sweeping = 0;
}

static void target_free(hints *h, target *t) {
  forget(h, t);
  free(t->sends);
  free(t);
}

void hints_free(hints *h) {
  if (h == NULL) return;
  for (size_t i = 0; i < h->nt; i++) target_free(h, h->t[i]);
  empty_trash(h);
  free(h->trash);
  free(h->t);
  free(h->dels);
  free(h->q);
  free(h);
}

void hints_set_throttle(hints *h, uint64_t bytes_per_s) {
  h->cfg.throttle_bytes_per_s = bytes_per_s;
  int64_t cap = (int64_t)burst_mb(h);
  if (h->tokens_mb > cap) h->tokens_mb = cap;
}

int hints_next(hints *h, hints_action *out) {
  if (h->qhead == h->nq) {
    h->qhead = h->nq = 0;
    return 0;
  }
  *out = h->q[h->qhead++];
  return 1;
}

static hints_action *emit(hints *h, hints_action_kind k, target *t) {
  if (h->nq == h->capq) {
    size_t cap = h->capq ? h->capq * 2 : 16;
    hints_action *q = realloc(h->q, cap * sizeof *q);
    if (q == NULL) return NULL;
    h->q = q;
    h->capq = cap;
  }
  hints_action *a = &h->q[h->nq++];
  memset(a, 0, sizeof *a);
  a->kind = k;
  a->target = t->host;
  return a;
}

static target *find(const hints *h, const char *host) {
  for (size_t i = 0; i < h->nt; i++)
    if (!strcmp(h->t[i]->host, host)) return h->t[i];
  return NULL;
}

static target *get(hints *h, const char *host) {
  target *t = find(h, host);
  if (t || host == NULL || strlen(host) == 0 || strlen(host) >= HINT_HOST_MAX) return t;
  if (h->nt == h->capt) {
    size_t cap = h->capt ? h->capt * 2 : 8;
    target **a = realloc(h->t, cap * sizeof *a);
    if (a == NULL) return NULL;
    h->t = a;
    h->capt = cap;
  }
  t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->sends = calloc(h->cfg.max_inflight, sizeof *t->sends);
  if (t->sends == NULL) {
    free(t);
    return NULL;
  }
  memcpy(t->host, host, strlen(host) + 1);
  h->t[h->nt++] = t;
  return t;
}

static void refill(hints *h, uint64_t now) {
  if (!h->refilled) {
    h->refilled = 1;
    h->last_refill = now;
    return;
  }
  if (now <= h->last_refill) return;
  uint64_t el = now - h->last_refill;
  h->last_refill = now;
  int64_t cap = (int64_t)burst_mb(h);
  if (h->cfg.throttle_bytes_per_s == 0) {
    h->tokens_mb = cap;
    return;
  }
  /* el (ms) x rate (bytes/s) = milli-bytes */
  /* the guard only avoids overflow; past it the bucket is full anyway */
  uint64_t add = el > UINT64_MAX / h->cfg.throttle_bytes_per_s ? (uint64_t)cap
                                                               : el * h->cfg.throttle_bytes_per_s;
  int64_t nt = h->tokens_mb + (int64_t)(add > (uint64_t)cap ? (uint64_t)cap : add);
  h->tokens_mb = nt > cap ? cap : nt;
}

static int backing_off(const target *t, uint64_t now) {
  return t->backoff_until && now < t->backoff_until;
}

static void fail(hints *h, target *t, uint64_t now) {
  t->failures++;
  forget(h, t);
  t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : h->cfg.backoff_min_ms;
  if (t->backoff_ms > h->cfg.backoff_max_ms) t->backoff_ms = h->cfg.backoff_max_ms;
  t->backoff_until = now + t->backoff_ms;
  if (t->backoff_until == 0) t->backoff_until = 1;
}

/* Builds one SEND from the window's head. */
static int send_batch(hints *h, target *t, uint64_t now) {
  hsend *s = &t->sends[t->nsends];
  size_t n = 0, ne = 0;
  uint64_t bytes = 0;
  while (t->winpos + n < t->nwin) {
    hrec *r = &t->win[t->winpos + n];
    uint64_t b = r->nkey + r->nval;
    if (n > 0 && (t->isolate || bytes + b > h->cfg.batch_bytes)) break;
    bytes += b;
    ne += r->ne;
    n++;
  }
  hrec *recs = malloc(n * sizeof *recs);
  storage_entry *e = malloc((ne ? ne : 1) * sizeof *e);
  if (recs == NULL || e == NULL) {
    free(recs);
    free(e);
    return 0;
  }
  memcpy(recs, &t->win[t->winpos], n * sizeof *recs);
  t->winpos += n;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(e + k, recs[i].e, recs[i].ne * sizeof *e);
    k += recs[i].ne;
  }
  *s = (hsend){.id = h->next_id++, .sent_ms = now, .recs = recs, .n = n, .entries = e,
               .nentries = ne, .bytes = bytes};
  t->nsends++;
  if (t->winpos == t->nwin) {
    free(t->win);
    t->win = NULL;
    t->nwin = t->winpos = 0;
  }
  if (h->cfg.throttle_bytes_per_s) h->tokens_mb -= (int64_t)(bytes * 1000);
  hints_action *a = emit(h, HINTS_SEND, t);
  if (a) {
    a->id = s->id;
    a->entries = e;
    a->nentries = ne;
    a->nhints = n;
    a->bytes = bytes;
  }
  return 1;
}

static int emit_load(hints *h, target *t, uint64_t now) {
  hints_action *a = emit(h, HINTS_LOAD, t);
  if (a == NULL) return 0;
  t->load_id = h->next_id++;
  t->load_at = now;
  t->load_stored = t->stored_total;
  t->load_stored_bytes = t->stored_bytes_total;
  a->id = t->load_id;
  a->after = t->ncursor ? t->cursor : t->floor;     /* note 10 */
  a->nafter = t->ncursor ? t->ncursor : t->nfloor;
  a->count = h->cfg.load_count;
  return 1;
}

/* Note 8: a step of a target that is not alive. */
static int sweep_step(hints *h, target *t, uint64_t now) {
  if (backing_off(t, now) || t->load_id || t->deleting) return 0;
  if (t->sweeping && t->pass_end) {
    t->sweeping = 0;
    t->pass_end = 0;
    t->ncursor = 0;
    t->next_sweep_at = now + h->cfg.sweep_interval_ms;
    return 0;
  }
  if (!t->sweeping) {
    if (t->next_sweep_at == 0) t->next_sweep_at = now + h->cfg.sweep_interval_ms;
    if (t->count == 0 || now < t->next_sweep_at) return 0;
    t->sweeping = 1;
    t->ncursor = 0;
    t->pass_end = 0;
  }
  return emit_load(h, t, now);
}

/* One step of target t: a LOAD or a SEND when due. 1 when it did one. */
static int step(hints *h, target *t, uint64_t now) {
  if (!t->alive) return sweep_step(h, t, now);
  if (backing_off(t, now)) return 0;
  if (t->backoff_until) t->backoff_until = 0;
  if (t->winpos < t->nwin) {
    /* note 7: while isolating a refused hint, one send at a time */
    uint32_t most = t->isolate ? 1 : h->cfg.max_inflight;
    if (t->nsends >= most || h->tokens_mb <= 0) return 0;
    return send_batch(h, t, now);
  }
  if (t->load_id) return 0;
  if (t->pass_end) {
    /* the pass is over once nothing of it is in flight (note 2) */
    if (t->nsends || t->deleting) return 0;
    if (t->pass_clean && t->ncursor) {    /* note 10 */
      memcpy(t->floor, t->cursor, t->ncursor);
      t->nfloor = t->ncursor;
    }
    t->pass_end = 0;
    t->isolate = 0;
    t->ncursor = 0;
    t->next_pass_at = now + h->cfg.pass_pause_ms;
    return 0;
  }
  if (t->ncursor == 0) {
    if (t->count == 0 || t->nsends || t->deleting || now < t->next_pass_at) return 0;
    t->pass_clean = 1;                    /* a new pass */
  }
  return emit_load(h, t, now);
}

static void pump(hints *h, uint64_t now) {
  refill(h, now);
  if (h->nt == 0) return;
  size_t start = h->rr++ % h->nt;
  for (int progress = 1; progress;) {
    progress = 0;
    for (size_t k = 0; k < h->nt; k++) progress |= step(h, h->t[(start + k) % h->nt], now);
  }
}

int hints_admit(hints *h, const char *target_host, uint64_t bytes, uint64_t down_ms) {
  /* no empty_trash and no action: safe to call while the owner drains */
  if (down_ms > h->cfg.window_ms) return HINT_ADMIT_WINDOW;
  target *t = get(h, target_host);
  if (t == NULL) return HINT_ADMIT_CAP;
  if (h->cfg.max_bytes_per_target &&
      t->bytes + t->reserved + bytes > h->cfg.max_bytes_per_target)
    return HINT_ADMIT_CAP;
  t->reserved += bytes;
  return HINT_ADMIT_OK;
}

void hints_on_stored(hints *h, const char *host, uint64_t bytes, int ok, int reserved,
                     uint64_t now_ms) {
  empty_trash(h);
  target *t = get(h, host);
  if (t == NULL) return;
  if (reserved) t->reserved = t->reserved > bytes ? t->reserved - bytes : 0;
  if (ok) {
    t->count++;
    t->bytes += bytes;
    t->stored_total++;
    t->stored_bytes_total += bytes;
  }
  pump(h, now_ms);
}

void hints_set_alive(hints *h, const char *host, int alive, uint64_t now_ms) {
  empty_trash(h);
  target *t = find(h, host);
  if (t == NULL || !!alive == t->alive) {
    pump(h, now_ms);
    return;
  }
  t->alive = !!alive;
  if (!alive) {
    forget(h, t);
    t->next_sweep_at = now_ms + h->cfg.sweep_interval_ms;   /* note 8 */
  } else {
    if (t->sweeping) forget(h, t);   /* note 8: its load is ignored */
    t->backoff_until = 0;
    t->backoff_ms = 0;
    t->next_pass_at = now_ms;
  }
  pump(h, now_ms);
}

static target *by_load(hints *h, uint64_t id) {
  for (size_t i = 0; id && i < h->nt; i++)
    if (h->t[i]->load_id == id) return h->t[i];
  return NULL;
}

static void emit_delete(hints *h, target *t, hrec *r, size_t n, size_t replayed,
                        size_t dropped) {
  size_t total = n * sizeof(cbytes);
  for (size_t i = 0; i < n; i++) total += r[i].nkey;
  uint8_t *blk = malloc(total ? total : 1);
  if (h->ndels == h->capdels) {
    size_t cap = h->capdels ? h->capdels * 2 : 8;
    hdelete *d = realloc(h->dels, cap * sizeof *d);
    if (d) {
      h->dels = d;
      h->capdels = cap;
    }
  }
  hints_action *a = blk && h->ndels < h->capdels ? emit(h, HINTS_DELETE, t) : NULL;
  if (a == NULL) {            /* the keys stay on disk: a later pass */
    free(blk);
    t->pass_clean = 0;
    return;
  }
  cbytes *keys = (cbytes *)blk;
  uint8_t *p = blk + n * sizeof(cbytes);
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(p, r[i].key, r[i].nkey);
    keys[i] = CBYTES(p, r[i].nkey);
    p += r[i].nkey;
    bytes += r[i].nkey + r[i].nval;
  }
  trash(h, blk);
  hdelete *d = &h->dels[h->ndels++];
  d->id = h->next_id++;
  memcpy(d->host, t->host, sizeof d->host);
  d->n = n;
  d->bytes = bytes;
  t->deleting++;
  a->id = d->id;
  a->keys = keys;
  a->nkeys = n;
  a->nhints = n;
  a->bytes = bytes;
  a->replayed = replayed;
  a->dropped = dropped;
  a->expired = n - replayed - dropped;
  t->replayed += replayed;
  t->dropped += dropped;
  t->expired += n - replayed - dropped;
}

void hints_on_loaded(hints *h, uint64_t id, const hint_record *r, size_t n, int end,
                     uint64_t wall_ms, uint64_t now_ms) {
  empty_trash(h);
  target *t = by_load(h, id);
  if (t == NULL) {
    pump(h, now_ms);
    return;
  }
  t->load_id = 0;
  if (n == 0 && t->ncursor == 0 && end) {
    /* note 1: the range is empty but for what was stored meanwhile */
    t->count = t->stored_total - t->load_stored;
    t->bytes = t->stored_bytes_total - t->load_stored_bytes;
  }
  hrec *win = n ? calloc(n, sizeof *win) : NULL;
  hrec *dead = n ? calloc(n, sizeof *dead) : NULL;
  size_t nwin = 0, ndead = 0;
  if (n && (win == NULL || dead == NULL)) {
    free(win);
    free(dead);
    fail(h, t, now_ms);
    pump(h, now_ms);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    hrec rec = {0};
    rec.key = malloc(r[i].key.n + r[i].value.n + 1);
    if (rec.key == NULL) break;      /* the rest come in the next pass */
    rec.nkey = r[i].key.n;
    memcpy(rec.key, r[i].key.p, rec.nkey);
    rec.val = rec.key + rec.nkey;
    rec.nval = r[i].value.n;
    if (rec.nval) memcpy(rec.val, r[i].value.p, rec.nval);
    if (rec.nkey <= sizeof t->cursor) {
      memcpy(t->cursor, rec.key, rec.nkey);
      t->ncursor = rec.nkey;
    }
    uint64_t exp = 0;
    char host[HINT_HOST_MAX];
    uint64_t created, seq;
    int bad = hint_key_decode(rec.key, rec.nkey, host, &created, &seq) != 0 ||
              strcmp(host, t->host) != 0 ||
              hint_value_decode(rec.val, rec.nval, &exp, &rec.e, &rec.ne) != 0;
    if (bad || (exp && exp <= wall_ms)) dead[ndead++] = rec;   /* dropped */
    else if (t->sweeping) rec_free(&rec);                      /* note 8 */
    else win[nwin++] = rec;
  }
  if (end) t->pass_end = 1;
  if (ndead) emit_delete(h, t, dead, ndead, 0, 0);
  for (size_t i = 0; i < ndead; i++) rec_free(&dead[i]);
  free(dead);
  if (nwin) {
    t->win = win;
    t->nwin = nwin;
    t->winpos = 0;
  } else {
    free(win);
  }
  pump(h, now_ms);
}

void hints_on_load_failed(hints *h, uint64_t id, uint64_t now_ms) {
  empty_trash(h);
  target *t = by_load(h, id);
  if (t) fail(h, t, now_ms);
  pump(h, now_ms);
}

int hints_on_ack(hints *h, uint64_t id, int code, uint64_t now_ms) {
  empty_trash(h);
  for (size_t i = 0; i < h->nt; i++) {
    target *t = h->t[i];
    for (size_t k = 0; k < t->nsends; k++) {
      if (t->sends[k].id != id) continue;
      hsend s = t->sends[k];
      t->sends[k] = t->sends[--t->nsends];
      int drop = 0;
      if (code != 0 && !hints_code_permanent(code)) {
        /* note 7: temporary, the hint stays whatever the tries */
      } else if (code != 0 && s.n > 1) {
        t->isolate = 1;                     /* note 7 */
      } else if (code != 0) {
        hrec *r = &s.recs[0];
        if (t->npoison == r->nkey && !memcmp(t->poison, r->key, r->nkey)) {
          t->poison_errors++;
        } else if (r->nkey <= sizeof t->poison) {
          memcpy(t->poison, r->key, r->nkey);
          t->npoison = r->nkey;
          t->poison_errors = 1;
        }
        drop = t->poison_errors >= HINT_POISON_TRIES;
      }
      if (code != 0 && !drop) {
        /* put it back so that forget() frees it with the others */
        t->sends[t->nsends++] = s;
        fail(h, t, now_ms);
      } else {
        if (code == 0) t->backoff_ms = 0;
        /* note 7: only a success of the refused key itself clears it */
        for (size_t j = 0; j < s.n; j++)
          if (t->npoison == s.recs[j].nkey && !memcmp(t->poison, s.recs[j].key, t->npoison)) {
            t->npoison = 0;
            t->poison_errors = 0;
          }
        emit_delete(h, t, s.recs, s.n, drop ? 0 : s.n, drop ? s.n : 0);
        for (size_t j = 0; j < s.n; j++) {
          trash(h, s.recs[j].key);
          trash(h, s.recs[j].e);
        }
        trash(h, s.recs);
        trash(h, s.entries);
      }
      pump(h, now_ms);
      return 1;
    }
  }
  pump(h, now_ms);
  return 0;
}

void hints_on_send_failed(hints *h, const char *host, uint64_t now_ms) {
  empty_trash(h);
  target *t = find(h, host);
  if (t && (t->nsends || t->winpos < t->nwin || t->load_id)) fail(h, t, now_ms);
  pump(h, now_ms);
}

void hints_on_deleted(hints *h, uint64_t id, int rc, uint64_t now_ms) {
  empty_trash(h);
  for (size_t i = 0; i < h->ndels; i++) {
    if (h->dels[i].id != id) continue;
    hdelete d = h->dels[i];
    h->dels[i] = h->dels[--h->ndels];
    target *t = find(h, d.host);
    if (t) {
      if (t->deleting) t->deleting--;
      if (rc) t->pass_clean = 0;          /* note 10: keys stay */
      if (rc == 0) {
        t->count = t->count > d.n ? t->count - d.n : 0;
        t->bytes = t->bytes > d.bytes ? t->bytes - d.bytes : 0;
      }
    }
    break;
  }
  pump(h, now_ms);
}

void hints_drop(hints *h, const char *host) {
  empty_trash(h);
  for (size_t i = 0; i < h->nt; i++) {
    target *t = h->t[i];
    if (strcmp(t->host, host)) continue;
    hints_action *a = emit(h, HINTS_DROP, t);
    /* the action names the host: keep the target's memory until the next
    ** call (note 4) */
    forget(h, t);
    free(t->sends);
    if (a) a->nhints = t->count;
    trash(h, t);
    h->t[i] = h->t[--h->nt];
    return;
  }
}

void hints_tick(hints *h, uint64_t now_ms) {
  empty_trash(h);
  for (size_t i = 0; i < h->nt; i++) {
    target *t = h->t[i];
    int late = t->load_id && now_ms - t->load_at > h->cfg.send_timeout_ms;   /* note 9 */
    for (size_t k = 0; k < t->nsends; k++)
      if (now_ms - t->sends[k].sent_ms > h->cfg.send_timeout_ms) late = 1;
    if (late) fail(h, t, now_ms);
  }
  pump(h, now_ms);
}

/* -------------------------------------------------------------- view */

static void fill(const target *t, uint64_t now_ms, hints_target_stats *o) {
  memset(o, 0, sizeof *o);
  memcpy(o->target, t->host, sizeof o->target);
  o->count = t->count;
  o->bytes = t->bytes;
  o->reserved = t->reserved;
  for (size_t k = 0; k < t->nsends; k++) o->inflight += t->sends[k].n;
  o->replayed = t->replayed;
  o->expired = t->expired;
  o->failures = t->failures;
  o->dropped = t->dropped;
  memcpy(o->floor, t->floor, t->nfloor);
  o->nfloor = t->nfloor;
  if (t->count == 0 && t->nsends == 0) o->state = HINTS_IDLE;
  else if (!t->alive) o->state = HINTS_WAITING;
  else if (t->backoff_until) o->state = HINTS_BACKOFF;
  else o->state = HINTS_REPLAYING;
  (void)now_ms;
}

size_t hints_target_count(const hints *h) { return h->nt; }

int hints_target_at(const hints *h, size_t i, hints_target_stats *out) {
  if (i >= h->nt) return CELLAR_EINVAL;
  fill(h->t[i], 0, out);
  return 0;
}

int hints_target_find(const hints *h, const char *host, hints_target_stats *out) {
  const target *t = find(h, host);
  if (t == NULL) return CELLAR_ENOTFOUND;
  if (out) fill(t, 0, out);
  return 0;
}

uint64_t hints_total(const hints *h) {
  uint64_t n = 0;
  for (size_t i = 0; i < h->nt; i++) n += h->t[i]->count;
  return n;
}

int64_t hints_tokens(const hints *h) { return h->tokens_mb / 1000; }
