/* Unit tests of dvv: every operation on hand-made histories, the layout
** and size of the encodings, rejection of corrupt input, and property
** tests over random seeded histories (DVV_SEED=N replays one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "dvv.h"
#include "testutil.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static dvv_actor A(uint64_t node) {
  dvv_actor a = {node, 1};
  return a;
}

static dvv_write W(const char *v, int64_t ts) {
  dvv_write w = {ts, 0, 0, CBYTES(v, strlen(v))};
  return w;
}

static dvv_write DEL(int64_t ts, uint32_t at) {
  dvv_write w = {ts, 1, at, CBYTES(NULL, 0)};
  return w;
}

/* 1 when s holds exactly the values listed (NULL-terminated), any order;
** "-" stands for a delete marker. */
static int holds(const dvv *s, const char *const *vals) {
  size_t n = 0;
  for (; vals[n]; n++) {
    int found = 0;
    for (size_t i = 0; i < dvv_count(s) && !found; i++) {
      const dvv_sib *x = dvv_sibling(s, i);
      if (strcmp(vals[n], "-") == 0) found = x->tombstone;
      else
        found = !x->tombstone && x->nvalue == strlen(vals[n]) &&
                memcmp(x->value, vals[n], x->nvalue) == 0;
    }
    if (!found) return 0;
  }
  return n == dvv_count(s);
}
#define HOLDS(s, ...) holds((s), (const char *const[]){__VA_ARGS__, NULL})

/* Encodes s, decodes it back, checks equality and the canonical bytes. */
static void check_round_trip(const dvv *s) {
  size_t n = dvv_encoded_size(s);
  uint8_t *buf = malloc(n);
  CU_ASSERT_FATAL(buf != NULL);
  CU_ASSERT_EQUAL_FATAL(dvv_encode(s, buf), n);
  dvv d;
  dvv_init(&d);
  CU_ASSERT_EQUAL_FATAL(dvv_decode(buf, n, &d), 0);
  CU_ASSERT_FATAL(dvv_equal(s, &d));
  CU_ASSERT_EQUAL(dvv_encoded_size(&d), n);
  dvv_close(&d);
  free(buf);
}

static void test_new_and_join(void) {
  dvv s;
  dvv_init(&s);
  dvv_write w = W("v1", 10);
  CU_ASSERT_EQUAL(dvv_new(&s, A(1), &w), 0);
  CU_ASSERT_EQUAL(dvv_count(&s), 1);
  CU_ASSERT(HOLDS(&s, "v1"));
  CU_ASSERT_EQUAL(dvv_sibling(&s, 0)->dot.counter, 1);
  CU_ASSERT_EQUAL(dvv_sibling(&s, 0)->ts, 10);
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  CU_ASSERT_EQUAL(dvv_join(&s, &ctx), 0);
  CU_ASSERT_EQUAL(ctx.n, 1);
  CU_ASSERT_EQUAL(dvv_vv_get(&ctx, A(1)), 1);
  CU_ASSERT_EQUAL(dvv_vv_get(&ctx, A(2)), 0);
  dvv_dot d1 = {A(1), 1}, d2 = {A(1), 2};
  CU_ASSERT(dvv_vv_covers(&ctx, d1));
  CU_ASSERT_FALSE(dvv_vv_covers(&ctx, d2));
  /* dvv_new empties what was there */
  w = W("v2", 11);
  CU_ASSERT_EQUAL(dvv_new(&s, A(2), &w), 0);
  CU_ASSERT(HOLDS(&s, "v2"));
  CU_ASSERT_EQUAL(s.clock.n, 1);
  /* bad writes */
  dvv_write bad = {1, 1, 5, CBYTES("x", 1)};
  CU_ASSERT_EQUAL(dvv_event(&s, NULL, A(1), &bad, 0, NULL), CELLAR_EINVAL);
  CU_ASSERT(HOLDS(&s, "v2"));
  dvv_vv_close(&ctx);
  dvv_close(&s);
}

/* The read-modify-write story: a write with the context of a read
** supersedes what that read saw and nothing else. */
static void test_event_with_context(void) {
  dvv s;
  dvv_init(&s);
  dvv_vv seen_v1, seen;
  dvv_vv_init(&seen_v1);
  dvv_vv_init(&seen);
  dvv_write w = W("v1", 1);
  CU_ASSERT_EQUAL(dvv_event(&s, NULL, A(1), &w, 0, NULL), 0);  /* Mary */
  dvv_join(&s, &seen_v1);                                       /* Peter reads */
  w = W("v2", 2);
  dvv_dot dot;
  CU_ASSERT_EQUAL(dvv_event(&s, NULL, A(1), &w, 0, &dot), 0);  /* Mary, blind */
  CU_ASSERT_EQUAL(dot.counter, 2);
  CU_ASSERT(HOLDS(&s, "v1", "v2"));
  w = W("v3", 3);
  CU_ASSERT_EQUAL(dvv_event(&s, &seen_v1, A(1), &w, 0, &dot), 0);  /* Peter */
  CU_ASSERT_EQUAL(dot.counter, 3);
  CU_ASSERT(HOLDS(&s, "v2", "v3"));      /* v1 superseded, v2 concurrent */
  /* a write with the full context replaces both siblings */
  dvv_join(&s, &seen);
  w = W("v4", 4);
  CU_ASSERT_EQUAL(dvv_event(&s, &seen, A(2), &w, 0, &dot), 0);
  CU_ASSERT(HOLDS(&s, "v4"));
  CU_ASSERT_EQUAL(dvv_vv_get(&s.clock, A(1)), 3);
  CU_ASSERT_EQUAL(dvv_vv_get(&s.clock, A(2)), 1);
  /* siblings are ordered by actor, then newest dot first */
  w = W("v5", 5);
  dvv_event(&s, NULL, A(1), &w, 0, NULL);
  w = W("v6", 6);
  dvv_event(&s, NULL, A(1), &w, 0, NULL);
  CU_ASSERT_EQUAL(dvv_count(&s), 3);
  CU_ASSERT_EQUAL(dvv_sibling(&s, 0)->dot.counter, 5);
  CU_ASSERT_EQUAL(dvv_sibling(&s, 1)->dot.counter, 4);
  CU_ASSERT_EQUAL(dvv_actor_cmp(dvv_sibling(&s, 2)->dot.actor, A(2)), 0);
  check_round_trip(&s);
  dvv_vv_close(&seen_v1);
  dvv_vv_close(&seen);
  dvv_close(&s);
}

/* A context ahead of the coordinator (the client read another replica)
** lifts the counters: the new dot is past every dot the context names. */
static void test_event_context_ahead(void) {
  dvv r1, r2;
  dvv_init(&r1);
  dvv_init(&r2);
  dvv_write w = W("a", 1);
  dvv_event(&r1, NULL, A(1), &w, 0, NULL);
  w = W("b", 2);
  dvv_event(&r1, NULL, A(1), &w, 0, NULL);    /* r1: a(1:1) b(1:2) */
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  dvv_join(&r1, &ctx);
  w = W("c", 3);
  dvv_dot dot;
  CU_ASSERT_EQUAL(dvv_event(&r2, &ctx, A(2), &w, 0, &dot), 0);  /* r2 knew nothing */
  CU_ASSERT(HOLDS(&r2, "c"));
  CU_ASSERT_EQUAL(dvv_vv_get(&r2.clock, A(1)), 2);
  CU_ASSERT_EQUAL(dot.counter, 1);
  /* r1 learns c: a and b go, c stays */
  CU_ASSERT_EQUAL(dvv_merge(&r1, &r2), 0);
  CU_ASSERT(HOLDS(&r1, "c"));
  CU_ASSERT(dvv_equal(&r1, &r2));
  /* the coordinator's own counter also follows a context ahead of it */
  dvv_vv_raise(&ctx, A(2), 7);
  w = W("d", 4);
  CU_ASSERT_EQUAL(dvv_event(&r2, &ctx, A(2), &w, 0, &dot), 0);
  CU_ASSERT_EQUAL(dot.counter, 8);
  CU_ASSERT(HOLDS(&r2, "d"));
  dvv_vv_close(&ctx);
  dvv_close(&r1);
  dvv_close(&r2);
}

static void test_sibling_limit(void) {
  dvv s;
  dvv_init(&s);
  for (int i = 0; i < 3; i++) {
    dvv_write w = W("x", i);
    CU_ASSERT_EQUAL(dvv_event(&s, NULL, A((uint64_t)i), &w, 3, NULL), 0);
  }
  CU_ASSERT_EQUAL(dvv_event_siblings(&s, NULL), 4);
  dvv_write w = W("y", 9);
  CU_ASSERT_EQUAL(dvv_event(&s, NULL, A(1), &w, 3, NULL), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(dvv_count(&s), 3);
  CU_ASSERT_EQUAL(dvv_vv_get(&s.clock, A(1)), 1);   /* nothing changed */
  /* a write that resolves siblings passes the limit */
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  dvv_join(&s, &ctx);
  CU_ASSERT_EQUAL(dvv_event_siblings(&s, &ctx), 1);
  CU_ASSERT_EQUAL(dvv_event(&s, &ctx, A(1), &w, 3, NULL), 0);
  CU_ASSERT(HOLDS(&s, "y"));
  /* the counter limit */
  dvv_vv_raise(&ctx, A(5), DVV_MAX_COUNTER);
  CU_ASSERT_EQUAL(dvv_event(&s, &ctx, A(5), &w, 0, NULL), CELLAR_ETOOBIG);
  dvv_vv_close(&ctx);
  dvv_close(&s);
}

static void test_merge_and_compare(void) {
  dvv a, b, c;
  dvv_init(&a);
  dvv_init(&b);
  dvv_init(&c);
  dvv_write w = W("v1", 1);
  dvv_new(&a, A(1), &w);
  dvv_copy(&b, &a);
  CU_ASSERT_EQUAL(dvv_compare(&a, &b), DVV_EQUAL);
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  dvv_join(&b, &ctx);
  w = W("v2", 2);
  dvv_event(&b, &ctx, A(2), &w, 0, NULL);            /* b: v2 after v1 */
  CU_ASSERT_EQUAL(dvv_compare(&a, &b), DVV_LESS);
  CU_ASSERT_EQUAL(dvv_compare(&b, &a), DVV_GREATER);
  w = W("v3", 3);
  dvv_event(&a, &ctx, A(3), &w, 0, NULL);            /* a: v3 after v1 */
  CU_ASSERT_EQUAL(dvv_compare(&a, &b), DVV_CONCURRENT);
  dvv_copy(&c, &a);
  CU_ASSERT_EQUAL(dvv_merge(&c, &b), 0);
  CU_ASSERT(HOLDS(&c, "v2", "v3"));
  CU_ASSERT_EQUAL(dvv_compare(&a, &c), DVV_LESS);
  CU_ASSERT_EQUAL(dvv_compare(&c, &b), DVV_GREATER);
  /* merging an older set changes nothing; merging itself neither */
  dvv before;
  dvv_init(&before);
  dvv_copy(&before, &c);
  dvv_merge(&c, &a);
  dvv_merge(&c, &c);
  CU_ASSERT(dvv_equal(&c, &before));
  /* a set that saw v3 and dropped it wins over one still holding it */
  dvv_join(&c, &ctx);
  w = W("v4", 4);
  dvv_event(&c, &ctx, A(1), &w, 0, NULL);
  dvv_merge(&a, &c);
  CU_ASSERT(HOLDS(&a, "v4"));
  dvv_close(&before);
  dvv_vv_close(&ctx);
  dvv_close(&a);
  dvv_close(&b);
  dvv_close(&c);
}

/* Deletes are versions: a delete concurrent with a write leaves both; a
** delete that saw everything leaves one marker, purged after gc_grace. */
static void test_deletes(void) {
  dvv s, t;
  dvv_init(&s);
  dvv_init(&t);
  dvv_write w = W("v1", 1);
  dvv_new(&s, A(1), &w);
  dvv_copy(&t, &s);
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  dvv_join(&s, &ctx);
  w = DEL(5, 1000);
  CU_ASSERT_EQUAL(dvv_event(&s, &ctx, A(1), &w, 0, NULL), 0);   /* delete */
  w = W("v2", 4);
  dvv_event(&t, &ctx, A(2), &w, 0, NULL);                       /* concurrent */
  CU_ASSERT(HOLDS(&s, "-"));
  CU_ASSERT_EQUAL(dvv_live_count(&s, 0), 0);
  CU_ASSERT_EQUAL(dvv_merge(&s, &t), 0);
  CU_ASSERT(HOLDS(&s, "-", "v2"));
  CU_ASSERT_EQUAL(dvv_live_count(&s, 0), 1);
  /* lww would have picked the delete (higher timestamp) */
  CU_ASSERT(dvv_sibling(&s, dvv_lww(&s))->tombstone);
  /* the client resolves with the context of both */
  dvv_join(&s, &ctx);
  w = DEL(6, 2000);
  dvv_event(&s, &ctx, A(2), &w, 0, NULL);
  CU_ASSERT(HOLDS(&s, "-"));
  check_round_trip(&s);
  /* purge: only once the deletion time is before the cutoff */
  CU_ASSERT_EQUAL(dvv_purge(&s, 2000), 0);
  CU_ASSERT_EQUAL(dvv_purge(&s, 2001), 1);
  CU_ASSERT_EQUAL(dvv_count(&s), 0);
  CU_ASSERT_EQUAL(dvv_vv_get(&s.clock, A(2)), 2);   /* history kept */
  /* a stale replica still holding the marker loses it on merge */
  dvv_merge(&t, &s);
  CU_ASSERT_EQUAL(dvv_count(&t), 0);
  /* expiring values: invisible once expired, purged after the cutoff */
  dvv_write e = {7, 0, 500, CBYTES("e", 1)};
  dvv_event(&s, NULL, A(1), &e, 0, NULL);
  CU_ASSERT_EQUAL(dvv_live_count(&s, 499), 1);
  CU_ASSERT_EQUAL(dvv_live_count(&s, 500), 0);
  CU_ASSERT_EQUAL(dvv_purge(&s, 500), 0);
  CU_ASSERT_EQUAL(dvv_purge(&s, 501), 1);
  /* a value with no expiry is never purged; a marker deleted at 0 is */
  dvv_write keep = W("keep", 8), d0 = DEL(9, 0);
  dvv_event(&s, NULL, A(1), &keep, 0, NULL);
  dvv_event(&s, NULL, A(2), &d0, 0, NULL);
  CU_ASSERT_EQUAL(dvv_purge(&s, UINT32_MAX), 1);
  CU_ASSERT(HOLDS(&s, "keep"));
  dvv_vv_close(&ctx);
  dvv_close(&s);
  dvv_close(&t);
}

static void test_lww_order(void) {
  dvv_sib a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.ts = 5;
  b.ts = 4;
  a.dot.actor = A(1);
  b.dot.actor = A(2);
  a.dot.counter = b.dot.counter = 1;
  CU_ASSERT(dvv_sib_lww_cmp(&a, &b) > 0);
  CU_ASSERT(dvv_sib_lww_cmp(&b, &a) < 0);
  b.ts = 5;
  b.tombstone = 1;                              /* delete wins a tie */
  CU_ASSERT(dvv_sib_lww_cmp(&b, &a) > 0);
  a.tombstone = 1;
  a.time = 9;                                   /* later deletion wins */
  CU_ASSERT(dvv_sib_lww_cmp(&a, &b) > 0);
  a.tombstone = b.tombstone = 0;
  a.time = 100;                                 /* no expiry beats expiry */
  b.time = 0;
  CU_ASSERT(dvv_sib_lww_cmp(&b, &a) > 0);
  a.time = 0;
  uint8_t va[] = "abc", vb[] = "abd";
  a.value = va;
  a.nvalue = 3;
  b.value = vb;
  b.nvalue = 3;
  CU_ASSERT(dvv_sib_lww_cmp(&b, &a) > 0);
  b.nvalue = 2;                                 /* "ab" below "abc" */
  CU_ASSERT(dvv_sib_lww_cmp(&a, &b) > 0);
  b.value = va;
  b.nvalue = 3;                                 /* same payload: dot decides */
  CU_ASSERT(dvv_sib_lww_cmp(&b, &a) > 0);
  CU_ASSERT_EQUAL(dvv_sib_lww_cmp(&a, &a), 0);
  /* dvv_lww over a set */
  dvv s;
  dvv_init(&s);
  CU_ASSERT_EQUAL(dvv_lww(&s), (size_t)-1);
  dvv_write w = W("late", 30);
  dvv_event(&s, NULL, A(9), &w, 0, NULL);
  w = W("early", 10);
  dvv_event(&s, NULL, A(1), &w, 0, NULL);
  w = W("late", 30);
  dvv_event(&s, NULL, A(2), &w, 0, NULL);      /* equal to A(9)'s but dot */
  const dvv_sib *win = dvv_sibling(&s, dvv_lww(&s));
  CU_ASSERT_EQUAL(win->ts, 30);
  CU_ASSERT_EQUAL(dvv_actor_cmp(win->dot.actor, A(9)), 0);
  dvv_close(&s);
}

static int retire_2(void *arg, dvv_actor a) {
  (void)arg;
  return a.node == 2;
}

static void test_prune_and_discard(void) {
  dvv s;
  dvv_init(&s);
  dvv_write w = W("a", 1);
  dvv_event(&s, NULL, A(2), &w, 0, NULL);
  CU_ASSERT_EQUAL(dvv_prune(&s, retire_2, NULL), 0);   /* it has a value */
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  dvv_join(&s, &ctx);
  w = W("b", 2);
  dvv_event(&s, &ctx, A(3), &w, 0, NULL);
  CU_ASSERT_EQUAL(s.clock.n, 2);
  CU_ASSERT_EQUAL(dvv_prune(&s, retire_2, NULL), 1);
  CU_ASSERT_EQUAL(s.clock.n, 1);
  CU_ASSERT(HOLDS(&s, "b"));
  w = W("c", 3);
  dvv_event(&s, NULL, A(3), &w, 0, NULL);
  dvv_discard(&s, 0);
  CU_ASSERT(HOLDS(&s, "b"));
  CU_ASSERT_EQUAL(dvv_vv_get(&s.clock, A(3)), 2);
  dvv_discard(&s, 5);                                  /* out of range */
  CU_ASSERT_EQUAL(dvv_count(&s), 1);
  dvv_vv_close(&ctx);
  dvv_close(&s);
}

static void test_actor_of(void) {
  dvv_actor a = dvv_actor_of("9b4c1a2e-0000-4000-8000-000000000001", 1);
  dvv_actor b = dvv_actor_of("9b4c1a2e-0000-4000-8000-000000000001", 2);
  dvv_actor c = dvv_actor_of("9b4c1a2e-0000-4000-8000-000000000002", 1);
  CU_ASSERT_EQUAL(a.node, b.node);
  CU_ASSERT(dvv_actor_cmp(a, b) < 0);
  CU_ASSERT(a.node != c.node);
  /* a function of the bytes only */
  dvv_actor z = dvv_actor_of("9b4c1a2e-0000-4000-8000-000000000002", 1);
  CU_ASSERT_EQUAL(z.node, c.node);
}

/* ---------------------------------------------------------- encoding */

/* The exact bytes of a small set, as documented in dvv.h. */
static void test_layout(void) {
  dvv s;
  dvv_init(&s);
  dvv_actor a = {0x0102030405060708ull, 3};
  dvv_write w = {0x1122334455667788ll, 0, 0, CBYTES("hi", 2)};
  dvv_new(&s, a, &w);
  w = (dvv_write){9, 1, 0xA0B0C0D0u, CBYTES(NULL, 0)};
  dvv_event(&s, NULL, a, &w, 0, NULL);
  uint8_t buf[64];
  size_t n = dvv_encode(&s, buf);
  const uint8_t want[] = {
      DVV_FORMAT_VERSION, 1,                   /* one entry */
      1, 2, 3, 4, 5, 6, 7, 8, 3, 2, 2,         /* actor, counter 2, 2 sibs */
      0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xA0, 0xB0, 0xC0, 0xD0,   /* dot 2: delete */
      0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 2, 'h', 'i'};
  CU_ASSERT_EQUAL(n, sizeof want);
  CU_ASSERT_EQUAL(dvv_encoded_size(&s), sizeof want);
  CU_ASSERT(memcmp(buf, want, sizeof want) == 0);
  /* the context of the same set */
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  dvv_join(&s, &ctx);
  n = dvv_ctx_encode(&ctx, 0x01020304u, buf);
  const uint8_t wctx[] = {DVV_CTX_FORMAT_VERSION, 1, 2, 3, 4, 1,
                          1, 2, 3, 4, 5, 6, 7, 8, 3, 2};
  CU_ASSERT_EQUAL(n, sizeof wctx);
  CU_ASSERT_EQUAL(dvv_ctx_encoded_size(&ctx), sizeof wctx);
  CU_ASSERT(memcmp(buf, wctx, sizeof wctx) == 0);
  dvv_vv back;
  dvv_vv_init(&back);
  uint32_t issued = 0;
  CU_ASSERT_EQUAL(dvv_ctx_decode(buf, n, &back, &issued), 0);
  CU_ASSERT_EQUAL(issued, 0x01020304u);
  CU_ASSERT(dvv_vv_equal(&back, &ctx));
  dvv_vv_close(&back);
  dvv_vv_close(&ctx);
  dvv_close(&s);
}

/* Bytes of a cell's set after k writers each read and wrote it in turn
** (one value left, k history entries), for a value of nvalue bytes, and
** the same as the stored cell (cell.h prefix: version, flags, timestamp,
** clock length varint). Real node ids and incarnation 1; counters as a
** year of writes would leave them (3 bytes). */
static size_t bytes_for_writers(int k, size_t nvalue, uint64_t floor, size_t *ctx_bytes) {
  dvv s;
  dvv_init(&s);
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  char host[40];
  uint8_t val[64];
  memset(val, 'v', sizeof val);
  dvv_write w = {1700000000000000ll, 0, 0, CBYTES(val, nvalue)};
  for (int i = 0; i < k; i++) {
    snprintf(host, sizeof host, "00000000-0000-4000-8000-%012d", i + 1);
    dvv_vv_raise(&ctx, dvv_actor_of(host, 1), floor);   /* floor 0: counter 1 */
    dvv_event(&s, &ctx, dvv_actor_of(host, 1), &w, 0, NULL);
    dvv_join(&s, &ctx);
  }
  size_t n = dvv_encoded_size(&s);
  if (ctx_bytes) *ctx_bytes = dvv_ctx_encoded_size(&ctx);
  dvv_vv_close(&ctx);
  dvv_close(&s);
  return n;
}

static void test_sizes(void) {
  size_t ctx1, ctx3, ctx6;
  /* counters below 128 (one byte) */
  CU_ASSERT_EQUAL(bytes_for_writers(1, 5, 0, &ctx1), 24 + 5);
  CU_ASSERT_EQUAL(bytes_for_writers(3, 5, 0, &ctx3), 46 + 5);
  CU_ASSERT_EQUAL(bytes_for_writers(6, 5, 0, &ctx6), 79 + 5);
  CU_ASSERT(ctx1 == 16 && ctx3 == 36 && ctx6 == 66);
  /* counters past 16384 (three bytes) */
  size_t b1 = bytes_for_writers(1, 0, 20000, &ctx1);
  size_t b3 = bytes_for_writers(3, 0, 20000, &ctx3);
  size_t b6 = bytes_for_writers(6, 0, 20000, &ctx6);
  /* per entry: node 8, incarnation 1, counter 3, sibling count 1 */
  CU_ASSERT_EQUAL(b1, 1 + 1 + 13 + 11);
  CU_ASSERT_EQUAL(b3, b1 + 2 * 13);
  CU_ASSERT_EQUAL(b6, b1 + 5 * 13);
  /* stored cell today (no clock): 10 + value; with the set as the clock
  ** (value inside the set): 10 + 1 (clock length) + set */
  printf("\n    set bytes (value excluded), 1/3/6 writers: %zu/%zu/%zu;"
         " stored cell (10 + 1 + set): %zu/%zu/%zu;"
         " context: %zu/%zu/%zu\n",
         b1, b3, b6, 11 + b1, 11 + b3, 11 + b6, ctx1, ctx3, ctx6);
  CU_ASSERT_EQUAL(ctx1, 1 + 4 + 1 + 12);
}

/* Every truncation of a valid encoding and every byte flip is either
** refused or decodes to a set whose encoding is exactly the input
** (canonical: one set, one encoding). */
static void check_corruptions(const uint8_t *buf, size_t n) {
  dvv d;
  dvv_init(&d);
  for (size_t m = 0; m < n; m++) CU_ASSERT(dvv_decode(buf, m, &d) < 0);
  uint8_t *c = malloc(n + 1);
  memcpy(c, buf, n);
  c[n] = 0;
  CU_ASSERT(dvv_decode(c, n + 1, &d) < 0);       /* trailing byte */
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(c, buf, n);
      c[i] ^= (uint8_t)(1u << bit);
      int rc = dvv_decode(c, n, &d);
      if (rc == 0) {
        uint8_t *re = malloc(dvv_encoded_size(&d) + 1);
        size_t rn = dvv_encode(&d, re);
        CU_ASSERT_FATAL(rn == n && memcmp(re, c, n) == 0);
        free(re);
      } else {
        CU_ASSERT(rc == CELLAR_EPROTO || rc == CELLAR_ETOOBIG);
        CU_ASSERT_EQUAL(dvv_count(&d), 0);
      }
    }
  }
  free(c);
  dvv_close(&d);
}

static void test_decode_rejects(void) {
  dvv s;
  dvv_init(&s);
  dvv_write w = W("value", 5);
  dvv_new(&s, A(7), &w);
  dvv_write e = {6, 0, 99, CBYTES("x", 1)};
  dvv_event(&s, NULL, A(3), &e, 0, NULL);
  dvv_write d = DEL(7, 8);
  dvv_event(&s, NULL, A(7), &d, 0, NULL);
  uint8_t buf[256];
  size_t n = dvv_encode(&s, buf);
  check_corruptions(buf, n);
  dvv t;
  dvv_init(&t);
  /* hand-made bad inputs */
  static const struct {
    const char *why;
    uint8_t b[24];
    size_t n;
    int rc;
  } bad[] = {
      {"empty", {0}, 0, CELLAR_EPROTO},
      {"version", {2, 0}, 2, CELLAR_EPROTO},
      {"too many actors", {1, 65}, 2, CELLAR_ETOOBIG},
      {"counter 0", {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0}, 13, CELLAR_EPROTO},
      {"k > counter", {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2}, 13, CELLAR_EPROTO},
      {"non-minimal varint", {1, 0x81, 0}, 3, CELLAR_EPROTO},
      {"entries claim more than input", {1, 5, 0, 0}, 4, CELLAR_EPROTO},
      {"both flags", {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 3,
                      0, 0, 0, 0, 0, 0, 0, 0, 0}, 24, CELLAR_EPROTO},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = dvv_decode(bad[i].b, bad[i].n, &t);
    if (rc != bad[i].rc) printf("\n    %s: got %d\n", bad[i].why, rc);
    CU_ASSERT_EQUAL(rc, bad[i].rc);
  }
  /* unsorted actors: two entries in the wrong order */
  dvv u;
  dvv_init(&u);
  dvv_write x = W("1", 1);
  dvv_event(&u, NULL, A(1), &x, 0, NULL);
  dvv_event(&u, NULL, A(2), &x, 0, NULL);
  n = dvv_encode(&u, buf);
  /* entries are 1+1+(8+1+1+1 + 1+1+8+1+1) each: swap node bytes */
  CU_ASSERT_EQUAL(n, 2 + 2 * 23);
  buf[2 + 7] = 3;                   /* first actor becomes node 3 > 2 */
  CU_ASSERT_EQUAL(dvv_decode(buf, n, &t), CELLAR_EPROTO);
  buf[2 + 7] = 2;                   /* duplicate actor */
  CU_ASSERT_EQUAL(dvv_decode(buf, n, &t), CELLAR_EPROTO);
  /* contexts */
  dvv_vv ctx, back;
  dvv_vv_init(&ctx);
  dvv_vv_init(&back);
  dvv_join(&s, &ctx);
  n = dvv_ctx_encode(&ctx, 77, buf);
  for (size_t m = 0; m < n; m++) CU_ASSERT(dvv_ctx_decode(buf, m, &back, NULL) < 0);
  buf[0] = 9;
  CU_ASSERT_EQUAL(dvv_ctx_decode(buf, n, &back, NULL), CELLAR_EPROTO);
  const uint8_t zero_counter[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0};
  CU_ASSERT_EQUAL(dvv_ctx_decode(zero_counter, sizeof zero_counter, &back, NULL),
                  CELLAR_EPROTO);
  CU_ASSERT_EQUAL(back.n, 0);
  dvv_vv_close(&ctx);
  dvv_vv_close(&back);
  dvv_close(&u);
  dvv_close(&t);
  dvv_close(&s);
}

/* ---------------------------------------------------- random histories */

#define NREP 4
#define NWRITES 600
#define POOL 48

typedef struct wrec {
  dvv_dot dot;
  dvv_vv ctx;          /* the context it was written with */
  char val[16];
} wrec;

/* One random history: NREP replicas (actors), clients that read a random
** replica (keeping the context, sometimes for long), write with a saved
** context or blind, deletes; replicas merge pairwise at random. A pool of
** intermediate sets feeds the algebra checks. */
typedef struct hist {
  dvv rep[NREP];
  wrec w[NWRITES];
  size_t nw;
  dvv pool[POOL];
  size_t npool;
} hist;

static void ctx_copy(dvv_vv *dst, const dvv_vv *src) {
  dst->n = 0;
  for (size_t i = 0; i < src->n; i++)
    dvv_vv_raise(dst, src->e[i].actor, src->e[i].counter);
}

static void hist_run(hist *h, uint64_t seed, int inc_of_rep[NREP]) {
  rng = seed;
  memset(h, 0, sizeof *h);
  for (int r = 0; r < NREP; r++) dvv_init(&h->rep[r]);
  for (int p = 0; p < POOL; p++) dvv_init(&h->pool[p]);
  dvv_vv saved[6];
  for (int c = 0; c < 6; c++) dvv_vv_init(&saved[c]);
  int64_t ts = 0;
  while (h->nw < NWRITES) {
    uint64_t op = rnd() % 100;
    int r = (int)(rnd() % NREP);
    if (op < 20) {                      /* a client reads, keeps a context */
      dvv_join(&h->rep[r], &saved[rnd() % 6]);
    } else if (op < 35) {               /* anti-entropy / read repair */
      int q = (int)(rnd() % NREP);
      CU_ASSERT_EQUAL(dvv_merge(&h->rep[r], &h->rep[q]), 0);
    } else {                            /* a write at coordinator r */
      wrec *x = &h->w[h->nw];
      dvv_vv_init(&x->ctx);
      if (rnd() % 4) {                  /* else blind */
        if (rnd() % 2) dvv_join(&h->rep[r], &x->ctx);
        else ctx_copy(&x->ctx, &saved[rnd() % 6]);
      }
      snprintf(x->val, sizeof x->val, "w%zu", h->nw);
      dvv_write w = rnd() % 8 == 0 ? DEL(++ts, 1) : W(x->val, ++ts);
      dvv_actor self = {(uint64_t)r + 100, (uint32_t)inc_of_rep[r]};
      CU_ASSERT_EQUAL_FATAL(dvv_event(&h->rep[r], &x->ctx, self, &w, 0, &x->dot), 0);
      if (w.tombstone) x->val[0] = '-';
      h->nw++;
    }
    if (rnd() % 10 == 0) dvv_copy(&h->pool[h->npool++ % POOL], &h->rep[r]);
  }
  if (h->npool > POOL) h->npool = POOL;
  for (int c = 0; c < 6; c++) dvv_vv_close(&saved[c]);
}

static void hist_free(hist *h) {
  for (int r = 0; r < NREP; r++) dvv_close(&h->rep[r]);
  for (int p = 0; p < POOL; p++) dvv_close(&h->pool[p]);
  for (size_t i = 0; i < h->nw; i++) dvv_vv_close(&h->w[i].ctx);
}

/* The model: after every replica merged everything, the siblings are
** exactly the writes that no write's context covered. */
static int check_final(const hist *h, const dvv *f) {
  int bad = 0;
  size_t expect = 0;
  for (size_t i = 0; i < h->nw; i++) {
    const wrec *x = &h->w[i];
    int covered = 0;
    for (size_t j = 0; j < h->nw && !covered; j++)
      covered = dvv_vv_covers(&h->w[j].ctx, x->dot);
    int present = 0;
    for (size_t k = 0; k < dvv_count(f); k++) {
      const dvv_sib *y = dvv_sibling(f, k);
      if (y->dot.counter != x->dot.counter ||
          dvv_actor_cmp(y->dot.actor, x->dot.actor) != 0)
        continue;
      present = x->val[0] == '-' ? y->tombstone
                                 : (y->nvalue == strlen(x->val) &&
                                    memcmp(y->value, x->val, y->nvalue) == 0);
    }
    if (!covered) expect++;
    if (present == covered) bad++;     /* dropped uncovered, or kept covered */
  }
  if (expect != dvv_count(f)) bad++;
  return bad;
}

static uint64_t base_seed(void) {
  const char *e = getenv("DVV_SEED");
  return e ? strtoull(e, NULL, 10) : 1;
}

static void test_random_histories(void) {
  static hist h;
  int inc[NREP] = {1, 1, 1, 1};
  uint64_t s0 = base_seed();
  int nseeds = getenv("DVV_SEED") ? 1 : 40;
  long checks = 0, siblings = 0;
  for (int sd = 0; sd < nseeds; sd++) {
    uint64_t seed = s0 + (uint64_t)sd;
    hist_run(&h, seed, inc);
    /* merge all replicas in two orders: same result */
    dvv f, g;
    dvv_init(&f);
    dvv_init(&g);
    for (int r = 0; r < NREP; r++) CU_ASSERT_EQUAL(dvv_merge(&f, &h.rep[r]), 0);
    for (int r = NREP; r-- > 0;) CU_ASSERT_EQUAL(dvv_merge(&g, &h.rep[r]), 0);
    CU_ASSERT(dvv_equal(&f, &g));
    int bad = check_final(&h, &f);
    CU_ASSERT_EQUAL(bad, 0);
    siblings += (long)dvv_count(&f);
    /* the algebra over sets met along the way */
    for (int t = 0; t < 200; t++) {
      const dvv *a = &h.pool[rnd() % h.npool], *b = &h.pool[rnd() % h.npool],
                *c = &h.pool[rnd() % h.npool];
      dvv ab, ba, ab_c, bc, a_bc, aa;
      dvv_init(&ab); dvv_init(&ba); dvv_init(&ab_c);
      dvv_init(&bc); dvv_init(&a_bc); dvv_init(&aa);
      dvv_copy(&ab, a);
      dvv_merge(&ab, b);
      dvv_copy(&ba, b);
      dvv_merge(&ba, a);
      CU_ASSERT(dvv_equal(&ab, &ba));                       /* commutative */
      dvv_copy(&ab_c, &ab);
      dvv_merge(&ab_c, c);
      dvv_copy(&bc, b);
      dvv_merge(&bc, c);
      dvv_copy(&a_bc, a);
      dvv_merge(&a_bc, &bc);
      CU_ASSERT(dvv_equal(&ab_c, &a_bc));                   /* associative */
      dvv_copy(&aa, a);
      dvv_merge(&aa, a);
      CU_ASSERT(dvv_equal(&aa, a));                         /* idempotent */
      dvv_merge(&ab, a);
      CU_ASSERT(dvv_equal(&ab, &ba));                       /* absorbs */
      dvv_order o = dvv_compare(a, &ab_c);
      CU_ASSERT(o == DVV_LESS || o == DVV_EQUAL);           /* merge is above */
      if (t % 20 == 0) check_round_trip(&ab_c);
      checks++;
      dvv_close(&ab); dvv_close(&ba); dvv_close(&ab_c);
      dvv_close(&bc); dvv_close(&a_bc); dvv_close(&aa);
    }
    check_round_trip(&f);
    if (bad) printf("\n    replay: DVV_SEED=%llu tests/unit/test_dvv random_histories\n",
                    (unsigned long long)seed);
    dvv_close(&f);
    dvv_close(&g);
    hist_free(&h);
  }
  printf("\n    %d seeds x %d writes, %ld algebra checks, %ld final siblings\n",
         nseeds, NWRITES, checks, siblings);
}

/* KV679: a replica that lost its data and mints dots under its old actor
** reuses a dot; the merge then keeps one of two different writes. Under
** a new incarnation both survive. */
static void test_incarnation(void) {
  for (int fresh = 0; fresh <= 1; fresh++) {
    dvv r1, r2;
    dvv_init(&r1);
    dvv_init(&r2);
    dvv_actor me = {5, 1};
    dvv_write w = W("before-wipe", 1);
    dvv_event(&r1, NULL, me, &w, 0, NULL);
    dvv_merge(&r2, &r1);                 /* replicated */
    dvv_close(&r1);                      /* r1's disk is wiped */
    dvv_init(&r1);
    if (fresh) me.inc = 2;
    w = W("after-wipe", 2);
    dvv_event(&r1, NULL, me, &w, 0, NULL);
    dvv_merge(&r2, &r1);
    if (fresh) {
      CU_ASSERT(HOLDS(&r2, "before-wipe", "after-wipe"));
    } else {
      CU_ASSERT_EQUAL(dvv_count(&r2), 1);     /* one write lost */
    }
    dvv_close(&r1);
    dvv_close(&r2);
  }
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"new_and_join", test_new_and_join},
    {"event_with_context", test_event_with_context},
    {"event_context_ahead", test_event_context_ahead},
    {"sibling_limit", test_sibling_limit},
    {"merge_and_compare", test_merge_and_compare},
    {"deletes", test_deletes},
    {"lww_order", test_lww_order},
    {"prune_and_discard", test_prune_and_discard},
    {"actor_of", test_actor_of},
    {"layout", test_layout},
    {"sizes", test_sizes},
    {"decode_rejects", test_decode_rejects},
    {"random_histories", test_random_histories},
    {"incarnation", test_incarnation},
    {NULL, NULL}};
  return testutil_run("dvv", cases, argc, argv);
}
