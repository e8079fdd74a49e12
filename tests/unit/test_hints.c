/* Unit tests of hints.c: key and value formats, admission (window, cap),
** and the replay state machine driven without sockets over an in-memory
** hint store: acks, failures and backoff, crash resume, expiry, throttle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "config.h"
#include "hints.h"
#include "storage.h"
#include "testutil.h"

/* ------------------------------------------------------- fake store */

#define MAXH 4096

typedef struct hkv {
  uint8_t k[HINT_KEY_MAX];
  size_t nk;
  uint8_t *v;
  size_t nv;
} hkv;

/* The owner: a sorted key/value store, the sends awaiting an answer, the
** target's applied entries (by key: the value). */
typedef struct world {
  hkv kv[MAXH];
  size_t n;
  uint64_t seq;
  struct {
    uint64_t id;
    char target[HINT_HOST_MAX];
    uint64_t bytes;
    size_t nentries;
    char first[32];
    int poison;                /* carries row world.poison_row */
  } sent[256];
  int poison_row;              /* the target refuses this row (-1: none) */
  int poison_code;             /* with this code (CELLAR_EPROTO) */
  size_t nsent;
  uint64_t bytes_sent;
  size_t loads, deletes, drops, replayed, expired, dropped;
  uint8_t load_after[HINT_KEY_MAX];   /* the last LOAD's after */
  size_t nload_after;
  int fail_deletes;            /* DELETEs fail (CELLAR_ESTORAGE) */
  int applied[MAXH];           /* by row number carried in the entry */
} world;

static int kv_cmp(const void *a, const void *b) {
  const hkv *x = a, *y = b;
  size_t m = x->nk < y->nk ? x->nk : y->nk;
  int c = memcmp(x->k, y->k, m);
  return c ? c : (x->nk > y->nk) - (x->nk < y->nk);
}

/* Stores a hint for target carrying row number row (entry "r<row>"). */
static void store(world *w, hints *h, const char *target, uint64_t created, int row,
                  uint64_t expires, uint64_t now) {
  char key[32], val[32];
  snprintf(key, sizeof key, "r%05d", row);
  snprintf(val, sizeof val, "value-%d", row);
  storage_entry e = {CBYTES(key, strlen(key)), CBYTES(val, strlen(val))};
  hkv *x = &w->kv[w->n++];
  x->nk = hint_key_encode(target, created, w->seq++, x->k);
  x->v = hint_value_encode(expires, &e, 1, &x->nv);
  qsort(w->kv, w->n, sizeof *w->kv, kv_cmp);
  hints_on_stored(h, target, x->nk + x->nv, 1, 0, now);
}

static size_t count_for(const world *w, const char *target) {
  uint8_t p[HINT_KEY_MAX];
  size_t np = hint_key_prefix(target, p);
  size_t c = 0;
  for (size_t i = 0; i < w->n; i++) c += w->kv[i].nk >= np && !memcmp(w->kv[i].k, p, np);
  return c;
}

static void kv_delete(world *w, cbytes k) {
  for (size_t i = 0; i < w->n; i++)
    if (w->kv[i].nk == k.n && !memcmp(w->kv[i].k, k.p, k.n)) {
      free(w->kv[i].v);
      memmove(&w->kv[i], &w->kv[i + 1], (w->n - i - 1) * sizeof *w->kv);
      w->n--;
      return;
    }
}

/* Runs the actions: loads and deletes at once (storage), sends recorded
** (the test answers them). Returns the number of actions. */
static size_t run(world *w, hints *h, uint64_t now, uint64_t wall) {
  size_t total = 0;
  hints_action a;
  for (;;) {
    if (!hints_next(h, &a)) break;
    total++;
    if (a.kind == HINTS_LOAD) {
      w->loads++;
      memcpy(w->load_after, a.after, a.nafter);
      w->nload_after = a.nafter;
      uint8_t p[HINT_KEY_MAX];
      size_t np = hint_key_prefix(a.target, p);
      hint_record r[1024];
      size_t n = 0;
      int end = 1;
      for (size_t i = 0; i < w->n; i++) {
        hkv *x = &w->kv[i];
        if (x->nk < np || memcmp(x->k, p, np)) continue;
        if (a.nafter) {
          hkv after;
          memcpy(after.k, a.after, a.nafter);
          after.nk = a.nafter;
          if (kv_cmp(x, &after) <= 0) continue;
        }
        if (n == a.count) {
          end = 0;
          break;
        }
        r[n].key = CBYTES(x->k, x->nk);
        r[n].value = CBYTES(x->v, x->nv);
        n++;
      }
      uint64_t id = a.id;
      hints_on_loaded(h, id, r, n, end, wall, now);
    } else if (a.kind == HINTS_SEND) {
      CU_ASSERT_FATAL(w->nsent < 256);
      w->sent[w->nsent].id = a.id;
      snprintf(w->sent[w->nsent].target, HINT_HOST_MAX, "%s", a.target);
      w->sent[w->nsent].bytes = a.bytes;
      w->sent[w->nsent].nentries = a.nentries;
      snprintf(w->sent[w->nsent].first, 32, "%.*s", (int)a.entries[0].key.n,
               (const char *)a.entries[0].key.p);
      w->bytes_sent += a.bytes;
      w->sent[w->nsent].poison = 0;
      for (size_t i = 0; i < a.nentries; i++) {
        int row = atoi((const char *)a.entries[i].key.p + 1);
        if (row == w->poison_row) w->sent[w->nsent].poison = 1;
      }
      for (size_t i = 0; i < a.nentries && !w->sent[w->nsent].poison; i++) {
        int row = atoi((const char *)a.entries[i].key.p + 1);
        if (row >= 0 && row < MAXH) w->applied[row]++;
      }
      w->nsent++;
    } else if (a.kind == HINTS_DELETE && w->fail_deletes) {
      hints_on_deleted(h, a.id, CELLAR_ESTORAGE, now);
    } else if (a.kind == HINTS_DELETE) {
      w->deletes++;
      w->replayed += a.replayed;
      w->expired += a.expired;
      w->dropped += a.dropped;
      for (size_t i = 0; i < a.nkeys; i++) kv_delete(w, a.keys[i]);
      hints_on_deleted(h, a.id, 0, now);
    } else if (a.kind == HINTS_DROP) {
      w->drops++;
      uint8_t p[HINT_KEY_MAX];
      size_t np = hint_key_prefix(a.target, p);
      for (size_t i = 0; i < w->n;) {
        if (w->kv[i].nk >= np && !memcmp(w->kv[i].k, p, np)) kv_delete(w, CBYTES(w->kv[i].k, w->kv[i].nk));
        else i++;
      }
    }
  }
  return total;
}

/* Acks (code) every recorded send, oldest first; returns how many. A send
** carrying the poison row is answered w->poison_code, after every other
** send in flight when poison_last. */
static size_t ack_order(world *w, hints *h, int code, uint64_t now, uint64_t wall,
                        int poison_last) {
  size_t n = 0;
  while (w->nsent) {
    size_t i = 0;
    while (poison_last && i + 1 < w->nsent && w->sent[i].poison) i++;
    uint64_t id = w->sent[i].id;
    int poison = w->sent[i].poison;
    memmove(&w->sent[i], &w->sent[i + 1], (w->nsent - i - 1) * sizeof w->sent[0]);
    w->nsent--;
    hints_on_ack(h, id, poison ? w->poison_code : code, now);
    n++;
    run(w, h, now, wall);
  }
  return n;
}

static size_t ack_all(world *w, hints *h, int code, uint64_t now, uint64_t wall) {
  return ack_order(w, h, code, now, wall, 0);
}

/* Acks every send and lets time pass until target has no hint left (or
** rounds run out); returns the new time. */
static uint64_t settle(world *w, hints *h, const char *target, uint64_t now, uint64_t wall,
                       int rounds) {
  for (int i = 0; i < rounds && count_for(w, target); i++) {
    ack_all(w, h, 0, now, wall);
    now += 1500;
    hints_tick(h, now);
    run(w, h, now, wall);
  }
  return now;
}

static void world_free(world *w) {
  for (size_t i = 0; i < w->n; i++) free(w->kv[i].v);
  w->n = 0;
}

static world *world_new(void) {
  world *w = calloc(1, sizeof *w);
  w->poison_row = -1;
  w->poison_code = CELLAR_EPROTO;
  return w;
}

static hints *machine(uint64_t throttle) {
  hints_config c;
  hints_config_init(&c);
  c.throttle_bytes_per_s = throttle;
  c.batch_bytes = 1024;
  c.load_count = 16;
  c.max_inflight = 2;
  hints *h = NULL;
  CU_ASSERT_EQUAL_FATAL(hints_new(&c, &h), 0);
  return h;
}

#define T1 "11111111-aaaa-4aaa-8aaa-000000000001"
#define T2 "22222222-bbbb-4bbb-8bbb-000000000002"
#define WALL 1700000000000ull

/* ------------------------------------------------------------- tests */

static void test_key_roundtrip_and_order(void) {
  uint8_t a[HINT_KEY_MAX], b[HINT_KEY_MAX];
  size_t na = hint_key_encode(T1, 1234567890123ull, 7, a);
  CU_ASSERT_EQUAL(na, 1 + strlen(T1) + 16);
  char host[HINT_HOST_MAX];
  uint64_t created, seq;
  CU_ASSERT_EQUAL(hint_key_decode(a, na, host, &created, &seq), 0);
  CU_ASSERT_STRING_EQUAL(host, T1);
  CU_ASSERT_EQUAL(created, 1234567890123ull);
  CU_ASSERT_EQUAL(seq, 7);
  /* creation time orders before the sequence, both big-endian */
  uint64_t times[] = {0, 1, 255, 256, 65535, 1ull << 40, WALL, UINT64_MAX};
  for (size_t i = 0; i + 1 < sizeof times / sizeof *times; i++) {
    na = hint_key_encode(T1, times[i], 999, a);
    size_t nb = hint_key_encode(T1, times[i + 1], 0, b);
    CU_ASSERT(memcmp(a, b, na < nb ? na : nb) < 0);
  }
  na = hint_key_encode(T1, 5, 1, a);
  size_t nb = hint_key_encode(T1, 5, 256, b);
  CU_ASSERT_EQUAL(na, nb);
  CU_ASSERT(memcmp(a, b, na) < 0);
  /* a target's keys share its prefix; another target's do not */
  uint8_t p[HINT_KEY_MAX];
  size_t np = hint_key_prefix(T1, p);
  CU_ASSERT_EQUAL(memcmp(a, p, np), 0);
  nb = hint_key_encode(T2, 5, 1, b);
  CU_ASSERT_NOT_EQUAL(memcmp(b, p, np), 0);
  /* a host that is a prefix of another: the length byte separates them */
  size_t n1 = hint_key_prefix("abc", p);
  nb = hint_key_encode("abcd", 0, 0, b);
  CU_ASSERT_NOT_EQUAL(memcmp(b, p, n1), 0);
  /* bad input */
  CU_ASSERT_EQUAL(hint_key_encode("", 1, 1, a), 0);
  char longhost[64];
  memset(longhost, 'x', 63);
  longhost[63] = '\0';
  CU_ASSERT_EQUAL(hint_key_encode(longhost, 1, 1, a), 0);
  CU_ASSERT_EQUAL(hint_key_decode(a, 3, host, &created, &seq), CELLAR_EPROTO);
  na = hint_key_encode(T1, 1, 1, a);
  CU_ASSERT_EQUAL(hint_key_decode(a, na - 1, host, &created, &seq), CELLAR_EPROTO);
  a[0] = 0;
  CU_ASSERT_EQUAL(hint_key_decode(a, na, host, &created, &seq), CELLAR_EPROTO);
}

static void test_value_roundtrip(void) {
  storage_entry e[3] = {{CBYTES("k1", 2), CBYTES("v1", 2)},
                        {CBYTES("", 0), CBYTES("v2", 2)},
                        {CBYTES("key3", 4), CBYTES("", 0)}};
  size_t len = 0;
  uint8_t *v = hint_value_encode(99, e, 3, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  storage_entry *d = NULL;
  size_t n = 0;
  uint64_t exp = 0;
  CU_ASSERT_EQUAL(hint_value_decode(v, len, &exp, &d, &n), 0);
  CU_ASSERT_EQUAL(exp, 99);
  CU_ASSERT_EQUAL_FATAL(n, 3);
  for (size_t i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(d[i].key.n, e[i].key.n);
    CU_ASSERT_EQUAL(d[i].value.n, e[i].value.n);
    CU_ASSERT(d[i].key.n == 0 || !memcmp(d[i].key.p, e[i].key.p, e[i].key.n));
    CU_ASSERT(d[i].value.n == 0 || !memcmp(d[i].value.p, e[i].value.p, e[i].value.n));
  }
  free(d);
  /* every truncation and a bad version are refused, never read past */
  for (size_t cut = 0; cut < len; cut++) {
    uint8_t *t = malloc(cut ? cut : 1);
    memcpy(t, v, cut);
    CU_ASSERT_EQUAL(hint_value_decode(t, cut, &exp, &d, &n), CELLAR_EPROTO);
    free(t);
  }
  v[0] = 2;
  CU_ASSERT_EQUAL(hint_value_decode(v, len, &exp, &d, &n), CELLAR_EPROTO);
  v[0] = 1;
  v[12] = 200;   /* a count far beyond the bytes */
  CU_ASSERT_EQUAL(hint_value_decode(v, len, &exp, &d, &n), CELLAR_EPROTO);
  free(v);
}

static void test_admit_window_and_cap(void) {
  hints_config c;
  hints_config_init(&c);
  c.max_bytes_per_target = 1000;
  c.window_ms = 60000;
  hints *h = NULL;
  CU_ASSERT_EQUAL_FATAL(hints_new(&c, &h), 0);
  CU_ASSERT_EQUAL(hints_admit(h, T1, 400, 0), HINT_ADMIT_OK);
  CU_ASSERT_EQUAL(hints_admit(h, T1, 400, 59999), HINT_ADMIT_OK);
  /* reserved bytes count against the cap before the write lands */
  CU_ASSERT_EQUAL(hints_admit(h, T1, 400, 0), HINT_ADMIT_CAP);
  CU_ASSERT_EQUAL(hints_admit(h, T1, 100, 60001), HINT_ADMIT_WINDOW);
  hints_on_stored(h, T1, 400, 1, 1, 0);
  hints_on_stored(h, T1, 400, 0, 1, 0);   /* a failed write frees its bytes */
  hints_target_stats s;
  CU_ASSERT_EQUAL(hints_target_find(h, T1, &s), 0);
  CU_ASSERT_EQUAL(s.count, 1);
  CU_ASSERT_EQUAL(s.bytes, 400);
  CU_ASSERT_EQUAL(s.reserved, 0);
  CU_ASSERT_EQUAL(hints_admit(h, T1, 600, 0), HINT_ADMIT_OK);
  CU_ASSERT_EQUAL(hints_admit(h, T1, 1, 0), HINT_ADMIT_CAP);
  /* the cap is per target */
  CU_ASSERT_EQUAL(hints_admit(h, T2, 1000, 0), HINT_ADMIT_OK);
  CU_ASSERT_EQUAL(hints_target_find(h, "nobody", &s), CELLAR_ENOTFOUND);
  hints_free(h);
}

/* Hints wait while the target is down; once up they are sent in key order,
** deleted after the acks, and the backlog reaches 0. */
static void test_replay_in_order_after_up(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 100; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  CU_ASSERT_EQUAL(run(w, h, now, WALL), 0);   /* down: nothing happens */
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.state, HINTS_WAITING);
  CU_ASSERT_EQUAL(s.count, 100);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL(w->nsent, 2);               /* max_inflight */
  CU_ASSERT_STRING_EQUAL(w->sent[0].first, "r00000");
  int last = -1, ordered = 1;
  for (int round = 0; round < 200 && (w->nsent || hints_total(h)); round++) {
    int first = atoi(w->sent[0].first + 1);
    if (first <= last) ordered = 0;
    last = first;
    uint64_t id = w->sent[0].id;
    memmove(&w->sent[0], &w->sent[1], (w->nsent - 1) * sizeof w->sent[0]);
    w->nsent--;
    CU_ASSERT_EQUAL(hints_on_ack(h, id, 0, now), 1);
    run(w, h, now, WALL);
    now += 10;
    if (w->nsent == 0) {
      now += 2000;
      hints_tick(h, now);
      run(w, h, now, WALL);
    }
  }
  CU_ASSERT(ordered);
  CU_ASSERT_EQUAL(w->n, 0);
  CU_ASSERT_EQUAL(hints_total(h), 0);
  CU_ASSERT_EQUAL(w->replayed, 100);
  for (int i = 0; i < 100; i++) CU_ASSERT_EQUAL(w->applied[i], 1);
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.state, HINTS_IDLE);
  CU_ASSERT_EQUAL(s.replayed, 100);
  /* an ack of an unknown id is ignored */
  CU_ASSERT_EQUAL(hints_on_ack(h, 123456, 0, now), 0);
  hints_free(h);
  world_free(w);
  free(w);
}

/* An error answer, a timeout and a connection failure each back off,
** keep every hint, and replay resumes from the first one not deleted. */
static void test_failures_back_off(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 40; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL_FATAL(w->nsent, 2);
  /* first batch acked, second answered with an error */
  uint64_t ok = w->sent[0].id, bad = w->sent[1].id;
  w->nsent = 0;
  hints_on_ack(h, ok, 0, now);
  run(w, h, now, WALL);
  size_t sent_before = w->nsent;
  w->nsent = 0;
  hints_on_ack(h, bad, CELLAR_ESTORAGE, now);
  run(w, h, now, WALL);
  (void)sent_before;
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.state, HINTS_BACKOFF);
  CU_ASSERT_EQUAL(s.failures, 1);
  CU_ASSERT_EQUAL(w->nsent, 0);
  size_t left = count_for(w, T1);
  CU_ASSERT(left > 0 && left < 40);
  CU_ASSERT_EQUAL(s.count, left);
  /* a late ack of a forgotten send is ignored */
  w->nsent = 0;
  /* nothing before the backoff ends */
  hints_tick(h, now + 500);
  CU_ASSERT_EQUAL(run(w, h, now + 500, WALL), 0);
  now += 1001;
  hints_tick(h, now);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL_FATAL(w->nsent, 2);
  /* timeout: no answer for send_timeout_ms */
  w->nsent = 0;
  now += 10001;
  hints_tick(h, now);
  run(w, h, now, WALL);
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.state, HINTS_BACKOFF);
  CU_ASSERT_EQUAL(s.failures, 2);
  /* doubled backoff: 2 s */
  hints_tick(h, now + 1500);
  CU_ASSERT_EQUAL(run(w, h, now + 1500, WALL), 0);
  now += 2001;
  hints_tick(h, now);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL_FATAL(w->nsent, 2);
  /* connection failure */
  w->nsent = 0;
  hints_on_send_failed(h, T1, now);
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.failures, 3);
  CU_ASSERT_EQUAL(count_for(w, T1), left);   /* nothing lost */
  /* the target goes down and comes back: backoff cleared, all replayed */
  hints_set_alive(h, T1, 0, now);
  hints_set_alive(h, T1, 1, now + 1);
  now += 1;
  run(w, h, now, WALL);
  now = settle(w, h, T1, now, WALL, 50);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  CU_ASSERT_EQUAL(hints_total(h), 0);
  for (int i = 0; i < 40; i++) CU_ASSERT(w->applied[i] >= 1);
  hints_free(h);
  world_free(w);
  free(w);
}

/* The coordinator crashes mid-replay: a new machine rebuilt from the store
** (hints_on_stored per hint found) replays what was not deleted; hints
** acked but not deleted come again (duplicates), none is lost. */
static void test_crash_resume(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 60; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  /* ack the first batch and run its delete; the second batch is acked by
  ** the target but the coordinator dies before it hears */
  uint64_t id = w->sent[0].id;
  memmove(&w->sent[0], &w->sent[1], sizeof w->sent[0]);
  w->nsent = 1;
  hints_on_ack(h, id, 0, now);
  run(w, h, now, WALL);
  size_t left = count_for(w, T1);
  CU_ASSERT(left < 60);
  hints_free(h);                 /* crash: in-memory state gone */
  w->nsent = 0;
  h = machine(0);
  for (size_t i = 0; i < w->n; i++)
    hints_on_stored(h, T1, w->kv[i].nk + w->kv[i].nv, 1, 0, now);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.count, left);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  now = settle(w, h, T1, now, WALL, 50);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  int dup = 0;
  for (int i = 0; i < 60; i++) {
    CU_ASSERT(w->applied[i] >= 1);
    dup += w->applied[i] > 1;
  }
  CU_ASSERT(dup > 0);            /* the batch in flight at the crash */
  hints_free(h);
  world_free(w);
  free(w);
}

/* Hints past their expiry are deleted unsent and counted expired. */
static void test_expiry(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 30; i++)
    store(w, h, T1, WALL + (uint64_t)i, i, i % 3 == 0 ? WALL + 5 : 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL + 10);
  now = settle(w, h, T1, now, WALL + 10, 20);
  CU_ASSERT_EQUAL(w->expired, 10);
  CU_ASSERT_EQUAL(w->replayed, 20);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 0; i < 30; i++) CU_ASSERT_EQUAL(w->applied[i], i % 3 == 0 ? 0 : 1);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.expired, 10);
  hints_free(h);
  world_free(w);
  free(w);
}

/* The throttle: bytes sent over a simulated minute stay within rate x time
** + burst + a batch, whatever the number of targets, and both targets get
** their turn. */
static void test_throttle_shared(void) {
  world *w = world_new();
  uint64_t rate = 2000;          /* bytes/s */
  hints *h = machine(rate);
  uint64_t now = 1000;
  for (int i = 0; i < 2000; i++)
    store(w, h, i % 2 ? T2 : T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  hints_set_alive(h, T2, 1, now);
  uint64_t start = now;
  size_t sent_t1 = 0, sent_t2 = 0;
  for (int step = 0; step < 600; step++) {   /* 60 s in 100 ms ticks */
    run(w, h, now, WALL);
    for (size_t i = 0; i < w->nsent; i++) {
      if (!strcmp(w->sent[i].target, T1)) sent_t1++;
      else sent_t2++;
    }
    ack_all(w, h, 0, now, WALL);
    now += 100;
    hints_tick(h, now);
  }
  run(w, h, now, WALL);
  double secs = (double)(now - start) / 1000.0;
  uint64_t limit = (uint64_t)(rate * secs) + 1024 /* burst = batch */ + 1024;
  printf("\n  throttle %llu B/s: %llu bytes in %.0f s (%.0f B/s), batches t1 %zu t2 %zu\n",
         (unsigned long long)rate, (unsigned long long)w->bytes_sent, secs,
         w->bytes_sent / secs, sent_t1, sent_t2);
  CU_ASSERT(w->bytes_sent <= limit);
  CU_ASSERT(w->bytes_sent >= (uint64_t)(rate * secs * 0.9));
  CU_ASSERT(sent_t1 > 0 && sent_t2 > 0);
  CU_ASSERT(sent_t1 <= sent_t2 + 2 && sent_t2 <= sent_t1 + 2);
  CU_ASSERT(hints_tokens(h) <= 1024);
  /* unthrottled, the rest goes at once */
  hints_set_throttle(h, 0);
  for (int i = 0; i < 100 && hints_total(h); i++) {
    hints_tick(h, now);
    run(w, h, now, WALL);
    ack_all(w, h, 0, now, WALL);
    now += 1100;
  }
  CU_ASSERT_EQUAL(hints_total(h), 0);
  CU_ASSERT_EQUAL(w->n, 0);
  hints_free(h);
  world_free(w);
  free(w);
}

/* A target removed from the cluster: DROP, its hints forgotten. Hints
** stored while a pass runs are found by that pass. */
static void test_drop_and_store_during_replay(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 20; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  for (int i = 20; i < 30; i++) store(w, h, T2, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  /* more hints for T1 while it replays */
  for (int i = 30; i < 40; i++) store(w, h, T1, WALL + 100 + (uint64_t)i, i, 0, now);
  now = settle(w, h, T1, now, WALL, 20);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 0; i < 20; i++) CU_ASSERT_EQUAL(w->applied[i], 1);
  for (int i = 30; i < 40; i++) CU_ASSERT_EQUAL(w->applied[i], 1);
  CU_ASSERT_EQUAL(count_for(w, T2), 10);
  hints_drop(h, T2);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL(w->drops, 1);
  CU_ASSERT_EQUAL(count_for(w, T2), 0);
  CU_ASSERT_EQUAL(hints_target_find(h, T2, NULL), CELLAR_ENOTFOUND);
  CU_ASSERT_EQUAL(hints_total(h), 0);
  hints_free(h);
  world_free(w);
  free(w);
}

/* A hint the target refuses (an error answer, every time) does not block
** the others: batches shrink to one hint, and the refused one is dropped
** after 3 refusals alone (counted dropped); every other hint replays. */
static void test_poison_hint_dropped(void) {
  world *w = world_new();
  w->poison_row = 7;
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 30; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  for (int i = 0; i < 100 && count_for(w, T1); i++) {
    ack_all(w, h, 0, now, WALL);
    now += 31000;                      /* past any backoff */
    hints_tick(h, now);
    run(w, h, now, WALL);
  }
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  CU_ASSERT_EQUAL(w->dropped, 1);
  CU_ASSERT_EQUAL(w->replayed, 29);
  for (int i = 0; i < 30; i++) CU_ASSERT(i == 7 ? w->applied[i] == 0 : w->applied[i] >= 1);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.dropped, 1);
  CU_ASSERT(s.failures >= 3);
  hints_free(h);
  world_free(w);
  free(w);
}

/* Only a permanent refusal may drop a hint: a target answering a temporary
** error (storage, I/O, overload, shutdown...) however often keeps the hint,
** which replays once the target recovers (at ANY it may be the only copy
** of an acknowledged write). */
static void test_temporary_error_keeps_hint(void) {
  CU_ASSERT_TRUE(hints_code_permanent(CELLAR_EPROTO));
  CU_ASSERT_TRUE(hints_code_permanent(CELLAR_ESIBLINGS));
  CU_ASSERT_TRUE(hints_code_permanent(CELLAR_ETOOBIG));
  const int temporary[] = {CELLAR_ESTORAGE, CELLAR_EIO,       CELLAR_EOVERLOAD, CELLAR_ESHUTDOWN,
                           CELLAR_ENOMEM,   CELLAR_ETIMEDOUT, CELLAR_EINTERNAL, -999};
  for (size_t i = 0; i < sizeof temporary / sizeof temporary[0]; i++)
    CU_ASSERT_FALSE(hints_code_permanent(temporary[i]));
  world *w = world_new();
  w->poison_row = 7;
  w->poison_code = CELLAR_ESTORAGE;
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 30; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  for (int i = 0; i < 40; i++) {
    ack_all(w, h, 0, now, WALL);
    now += 31000;                      /* past any backoff */
    hints_tick(h, now);
    run(w, h, now, WALL);
  }
  CU_ASSERT_EQUAL(w->dropped, 0);
  CU_ASSERT(count_for(w, T1) >= 1);    /* row 7 at least, still on disk */
  CU_ASSERT_EQUAL(w->applied[7], 0);
  /* the target recovers: everything replays, row 7 included */
  w->poison_row = -1;
  now = settle(w, h, T1, now + 31000, WALL, 50);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 0; i < 30; i++) CU_ASSERT(w->applied[i] >= 1);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.dropped, 0);
  hints_free(h);
  world_free(w);
  free(w);
}

/* The refused hint is found even when answers come in any order and hints
** keep arriving: while isolating, one send is in flight, and only a
** success of that same hint clears its refusals. */
static void test_poison_hint_acks_out_of_order(void) {
  world *w = world_new();
  w->poison_row = 7;
  hints *h = machine(0);
  uint64_t now = 1000;
  int row = 0;
  for (; row < 30; row++) store(w, h, T1, WALL + (uint64_t)row, row, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  for (int i = 0; i < 60 && w->dropped == 0; i++) {
    ack_order(w, h, 0, now, WALL, 1);  /* the refused hint answered last */
    for (int k = 0; k < 3; k++, row++) store(w, h, T1, WALL + 1000 + (uint64_t)row, row, 0, now);
    now += 31000;
    hints_tick(h, now);
    run(w, h, now, WALL);
  }
  CU_ASSERT_EQUAL(w->dropped, 1);
  CU_ASSERT_EQUAL(w->applied[7], 0);
  w->poison_row = -1;
  now = settle(w, h, T1, now, WALL, 80);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 0; i < row; i++) CU_ASSERT(i == 7 ? w->applied[i] == 0 : w->applied[i] >= 1);
  hints_free(h);
  world_free(w);
  free(w);
}

/* Stores a hint carrying row with a value of vbytes bytes. */
static void store_big(world *w, hints *h, const char *target, uint64_t created, int row,
                      size_t vbytes, uint64_t now) {
  char key[32];
  snprintf(key, sizeof key, "r%05d", row);
  uint8_t *val = calloc(1, vbytes);
  storage_entry e = {CBYTES(key, strlen(key)), CBYTES(val, vbytes)};
  hkv *x = &w->kv[w->n++];
  x->nk = hint_key_encode(target, created, w->seq++, x->k);
  x->v = hint_value_encode(0, &e, 1, &x->nv);
  free(val);
  qsort(w->kv, w->n, sizeof *w->kv, kv_cmp);
  hints_on_stored(h, target, x->nk + x->nv, 1, 0, now);
}

/* A fast throttle (100 MB/s) refills by elapsed time, not a full bucket
** per refill: 20 ms after the bucket went 2 MB into debt it is back near
** 0, and no third batch goes until the debt is paid. */
static void test_throttle_fast_rate(void) {
  world *w = world_new();
  hints_config c;
  hints_config_init(&c);
  c.throttle_bytes_per_s = 100000000;  /* burst: 0.1 s = 10 MB */
  c.batch_bytes = 8u << 20;            /* one hint per batch */
  hints *h = NULL;
  CU_ASSERT_EQUAL_FATAL(hints_new(&c, &h), 0);
  uint64_t now = 1000;
  for (int i = 0; i < 3; i++) store_big(w, h, T1, WALL + (uint64_t)i, i, 6000000, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL(w->nsent, 2);        /* 12 MB out of a 10 MB bucket */
  int64_t debt = hints_tokens(h);
  CU_ASSERT(debt < -1990000 && debt > -2010000);
  hints_tick(h, now + 20);             /* +2 MB */
  run(w, h, now + 20, WALL);
  CU_ASSERT_EQUAL(w->nsent, 2);
  CU_ASSERT(hints_tokens(h) <= 0 && hints_tokens(h) > -10000);
  hints_tick(h, now + 40);
  run(w, h, now + 40, WALL);
  CU_ASSERT_EQUAL(w->nsent, 3);
  hints_free(h);
  world_free(w);
  free(w);
}

/* A target that stays down still loses its expired hints: every
** sweep_interval_ms a sweep loads its range and deletes what expired,
** sending nothing. */
static void test_expiry_while_down(void) {
  world *w = world_new();
  hints_config c;
  hints_config_init(&c);
  c.batch_bytes = 1024;
  c.load_count = 16;
  c.sweep_interval_ms = 60000;
  hints *h = NULL;
  CU_ASSERT_EQUAL_FATAL(hints_new(&c, &h), 0);
  uint64_t now = 1000;
  for (int i = 0; i < 30; i++)
    store(w, h, T1, WALL + (uint64_t)i, i, i % 3 == 0 ? WALL + 5 : 0, now);
  hints_tick(h, now + 30000);
  CU_ASSERT_EQUAL(run(w, h, now + 30000, WALL + 10), 0);   /* not yet */
  hints_tick(h, now + 61000);
  run(w, h, now + 61000, WALL + 10);
  CU_ASSERT_EQUAL(w->nsent, 0);
  CU_ASSERT_EQUAL(w->expired, 10);
  CU_ASSERT_EQUAL(count_for(w, T1), 20);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.count, 20);
  CU_ASSERT_EQUAL(s.expired, 10);
  CU_ASSERT_EQUAL(s.state, HINTS_WAITING);
  /* the sweep is over: no load until the next interval */
  size_t loads = w->loads;
  hints_tick(h, now + 62000);
  run(w, h, now + 62000, WALL + 10);
  CU_ASSERT_EQUAL(w->loads, loads);
  /* up: the rest replays */
  now += 63000;
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL + 10);
  settle(w, h, T1, now, WALL + 10, 20);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 0; i < 30; i++) CU_ASSERT_EQUAL(w->applied[i], i % 3 == 0 ? 0 : 1);
  hints_free(h);
  world_free(w);
  free(w);
}

/* A LOAD the owner never answers (it could not start it) fails after
** send_timeout_ms: the target loads again after its backoff. */
static void test_lost_load_retried(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 10; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  hints_action a;
  CU_ASSERT_EQUAL_FATAL(hints_next(h, &a), 1);
  CU_ASSERT_EQUAL(a.kind, HINTS_LOAD);
  CU_ASSERT_EQUAL(hints_next(h, &a), 0);     /* lost */
  hints_tick(h, now + 5000);
  CU_ASSERT_EQUAL(run(w, h, now + 5000, WALL), 0);
  now += 10001;                              /* send_timeout_ms */
  hints_tick(h, now);
  run(w, h, now, WALL);
  now = settle(w, h, T1, now, WALL, 20);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.count, 0);
  CU_ASSERT(s.failures >= 1);
  hints_free(h);
  world_free(w);
  free(w);
}

/* Note 10 of hints.c: once a pass deleted every key it loaded, the next
** passes start after its last key (the floor), not from the start of the
** range past the tombstones; a pass with a failed DELETE moves no floor,
** and the keys it could not delete come again. */
static void test_floor_after_clean_pass(void) {
  world *w = world_new();
  hints *h = machine(0);
  uint64_t now = 1000;
  for (int i = 0; i < 20; i++) store(w, h, T1, WALL + (uint64_t)i, i, 0, now);
  hints_set_alive(h, T1, 1, now);
  run(w, h, now, WALL);
  /* deletes fail: everything is sent, nothing is deleted, no floor */
  w->fail_deletes = 1;
  for (int i = 0; i < 3; i++) {
    ack_all(w, h, 0, now, WALL);
    now += 1500;
    hints_tick(h, now);
    run(w, h, now, WALL);
  }
  CU_ASSERT_EQUAL(count_for(w, T1), 20);
  hints_target_stats s;
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL(s.nfloor, 0);              /* passes from the start */
  w->fail_deletes = 0;
  now = settle(w, h, T1, now, WALL, 20);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 0; i < 20; i++) CU_ASSERT(w->applied[i] >= 1);
  /* the clean pass set the floor at its last key (row 19) */
  now += 1500;
  hints_tick(h, now);
  run(w, h, now, WALL);
  uint8_t k19[HINT_KEY_MAX];
  size_t n19 = hint_key_encode(T1, WALL + 19, 19, k19);
  hints_target_find(h, T1, &s);
  CU_ASSERT_EQUAL_FATAL(s.nfloor, n19);
  CU_ASSERT_EQUAL(memcmp(s.floor, k19, n19), 0);
  /* new hints: the next pass loads after the floor and finds them */
  for (int i = 20; i < 25; i++) store(w, h, T1, WALL + 100 + (uint64_t)i, i, 0, now);
  now += 1500;
  hints_tick(h, now);
  run(w, h, now, WALL);
  CU_ASSERT_EQUAL_FATAL(w->nload_after, n19);
  CU_ASSERT_EQUAL(memcmp(w->load_after, k19, n19), 0);
  now = settle(w, h, T1, now, WALL, 20);
  CU_ASSERT_EQUAL(count_for(w, T1), 0);
  for (int i = 20; i < 25; i++) CU_ASSERT_EQUAL(w->applied[i], 1);
  CU_ASSERT_EQUAL(hints_total(h), 0);
  hints_free(h);
  world_free(w);
  free(w);
}

/* The hints column family (storage.h): batch put/delete, prefix scans from
** a key (exclusive), drop of one target's range; all of it survives a
** reopen. */
typedef struct scan_acc {
  int n;
  uint64_t created[16];
} scan_acc;

static int acc(void *arg, cbytes k, cbytes v) {
  scan_acc *a = arg;
  char host[HINT_HOST_MAX];
  uint64_t created, seq;
  (void)v;
  CU_ASSERT_EQUAL_FATAL(hint_key_decode(k.p, k.n, host, &created, &seq), 0);
  if (a->n < 16) a->created[a->n] = created;
  a->n++;
  return 0;
}

static void test_storage_hints_cf(void) {
  char *dir = testutil_tmpdir("hints");
  storage_options o;
  storage_options_init(&o);
  o.path = dir;
  storage *st = NULL;
  CU_ASSERT_EQUAL_FATAL(storage_open(&o, &st), 0);
  uint8_t keys[9][HINT_KEY_MAX];
  storage_entry put[9];
  const char *hosts[3] = {"abc", "abcd", T1};
  for (int i = 0; i < 9; i++) {
    size_t nk = hint_key_encode(hosts[i % 3], 100 + (uint64_t)(8 - i), (uint64_t)i, keys[i]);
    put[i] = (storage_entry){CBYTES(keys[i], nk), CBYTES("v", 1)};
  }
  CU_ASSERT_EQUAL(storage_hints_write(st, put, 9, NULL, 0), 0);
  uint8_t p[HINT_KEY_MAX];
  size_t np = hint_key_prefix("abc", p);
  scan_acc a = {0};
  CU_ASSERT_EQUAL(storage_hints_scan(st, p, np, NULL, 0, acc, &a), 0);
  CU_ASSERT_EQUAL(a.n, 3);             /* not abcd's */
  CU_ASSERT(a.created[0] < a.created[1] && a.created[1] < a.created[2]);
  /* after: exclusive */
  scan_acc b = {0};
  CU_ASSERT_EQUAL(storage_hints_scan(st, p, np, put[3].key.p, put[3].key.n, acc, &b), 0);
  CU_ASSERT_EQUAL(b.n, 1);              /* keys 6, 3, 0 by time: after 3 comes 0 */
  /* delete one key, drop a target */
  cbytes del = put[0].key;
  CU_ASSERT_EQUAL(storage_hints_write(st, NULL, 0, &del, 1), 0);
  np = hint_key_prefix("abcd", p);
  CU_ASSERT_EQUAL(storage_hints_drop(st, p, np), 0);
  storage_close(st);
  st = NULL;
  CU_ASSERT_EQUAL_FATAL(storage_open(&o, &st), 0);
  scan_acc all = {0};
  CU_ASSERT_EQUAL(storage_hints_scan(st, NULL, 0, NULL, 0, acc, &all), 0);
  CU_ASSERT_EQUAL(all.n, 5);            /* 9 - 1 deleted - 3 dropped */
  storage_close(st);
  testutil_rmrf(dir);
  free(dir);
}

/* The settings: defaults, accepted and refused values. */
static void test_settings(void) {
  config c;
  config_defaults(&c);
  CU_ASSERT_EQUAL(c.hints_enabled, 1);
  CU_ASSERT_EQUAL(c.max_hint_window_ms, 3ull * 3600 * 1000);
  CU_ASSERT_EQUAL(c.max_hints_bytes, 1ull << 30);
  CU_ASSERT_EQUAL(c.hint_throttle_kib, 1024);
  char err[256];
  CU_ASSERT_EQUAL(config_set(&c, "max-hint-window", "90m", err, sizeof err), 0);
  CU_ASSERT_EQUAL(c.max_hint_window_ms, 90ull * 60000);
  CU_ASSERT_EQUAL(config_set(&c, "max_hint_window", "1500", err, sizeof err), 0);
  CU_ASSERT_EQUAL(c.max_hint_window_ms, 1500);
  CU_ASSERT_EQUAL(config_set(&c, "hinted_handoff_throttle", "0", err, sizeof err), 0);
  CU_ASSERT_EQUAL(c.hint_throttle_kib, 0);
  CU_ASSERT_EQUAL(config_set(&c, "max_hints_size_per_host", "64k", err, sizeof err), 0);
  CU_ASSERT_EQUAL(config_set(&c, "hinted_handoff_enabled", "false", err, sizeof err), 0);
  CU_ASSERT_EQUAL(c.hints_enabled, 0);
  const char *bad[][2] = {{"max_hint_window", "3x"}, {"max_hint_window", "31d"},
                          {"max_hint_window", "-1"}, {"hinted_handoff_throttle", "-5"},
                          {"hinted_handoff_throttle", "1k"}, {"max_hints_size_per_host", "1k"},
                          {"hinted_handoff_enabled", "maybe"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CU_ASSERT_EQUAL(config_set(&c, bad[i][0], bad[i][1], err, sizeof err), CELLAR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][0]));
  }
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"key_roundtrip_and_order", test_key_roundtrip_and_order},
    {"value_roundtrip", test_value_roundtrip},
    {"admit_window_and_cap", test_admit_window_and_cap},
    {"replay_in_order_after_up", test_replay_in_order_after_up},
    {"failures_back_off", test_failures_back_off},
    {"crash_resume", test_crash_resume},
    {"expiry", test_expiry},
    {"throttle_shared", test_throttle_shared},
    {"drop_and_store_during_replay", test_drop_and_store_during_replay},
    {"poison_hint_dropped", test_poison_hint_dropped},
    {"temporary_error_keeps_hint", test_temporary_error_keeps_hint},
    {"poison_hint_acks_out_of_order", test_poison_hint_acks_out_of_order},
    {"throttle_fast_rate", test_throttle_fast_rate},
    {"expiry_while_down", test_expiry_while_down},
    {"lost_load_retried", test_lost_load_retried},
    {"floor_after_clean_pass", test_floor_after_clean_pass},
    {"storage_hints_cf", test_storage_hints_cf},
    {"settings", test_settings},
    {NULL, NULL}};
  return testutil_run("hints", cases, argc, argv);
}
