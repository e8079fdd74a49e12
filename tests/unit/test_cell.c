/* Unit tests of cell: value format round trips, rejection of truncated and
** non-canonical bytes, and the algebra of the merge rule. */
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "testutil.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int same_cell(const cell *a, const cell *b) {
  return a->ts == b->ts && a->tombstone == b->tombstone &&
         a->expires_at == b->expires_at && a->deleted_at == b->deleted_at &&
         a->has_clock == b->has_clock && a->clock.n == b->clock.n &&
         (a->clock.n == 0 || memcmp(a->clock.p, b->clock.p, a->clock.n) == 0)
         && a->value.n == b->value.n &&
         (a->value.n == 0 || memcmp(a->value.p, b->value.p, a->value.n) == 0);
}

/* Encodes c, checks size and the prefix+clock+value split, decodes back. */
static void check_round_trip(const cell *c) {
  size_t n = cell_encoded_size(c);
  uint8_t *buf = malloc(n ? n : 1);
  CU_ASSERT_FATAL(buf != NULL);
  CU_ASSERT_EQUAL_FATAL(cell_encode(c, buf), n);
  uint8_t pre[CELL_PREFIX_MAX];
  size_t np = cell_encode_prefix(c, pre);
  CU_ASSERT_FATAL(np <= n && memcmp(pre, buf, np) == 0);
  size_t nc = c->has_clock ? c->clock.n : 0;
  CU_ASSERT(nc == 0 || memcmp(buf + np, c->clock.p, nc) == 0);
  CU_ASSERT_EQUAL(np + nc + (c->tombstone ? 0 : c->value.n), n);
  cell d;
  CU_ASSERT_EQUAL_FATAL(cell_decode(buf, n, &d), 0);
  CU_ASSERT_FATAL(same_cell(c, &d));
  CU_ASSERT_EQUAL(cell_compare(c, &d), 0);
  /* every truncation is rejected, except those that only cut the value */
  size_t fixed = np + nc;
  for (size_t m = 0; m < n; m++) {
    int rc = cell_decode(buf, m, &d);
    if (m < fixed || c->tombstone) CU_ASSERT_FATAL(rc == CELLAR_EPROTO);
  }
  free(buf);
}

static void test_round_trip(void) {
  static const uint8_t clk[300] = {1, 2, 3};
  cell c = cell_live(1234567890123456ll, 0, CBYTES("value", 5));
  check_round_trip(&c);
  c = cell_live(-5, 1700000000u, CBYTES("", 0));
  check_round_trip(&c);
  c = cell_tombstone(INT64_MAX, 42);
  check_round_trip(&c);
  c = cell_tombstone(INT64_MIN, 0);
  check_round_trip(&c);
  c = cell_live(7, UINT32_MAX, CBYTES("\0\xff", 2));
  c.has_clock = 1;
  c.clock = CBYTES(clk, 300);   /* a two-byte varint */
  check_round_trip(&c);
  c.clock = CBYTES(clk, 0);     /* an empty clock is not "no clock" */
  check_round_trip(&c);
  c = cell_tombstone(9, 10);
  c.has_clock = 1;
  c.clock = CBYTES(clk, 127);
  check_round_trip(&c);
}

/* The layout is exactly the one documented in cell.h. */
static void test_layout(void) {
  uint8_t buf[64];
  cell c = cell_live(0x0102030405060708ll, 0x0A0B0C0D, CBYTES("xy", 2));
  size_t n = cell_encode(&c, buf);
  const uint8_t want[] = {1, CELL_F_HAS_EXPIRY, 1, 2, 3, 4, 5, 6, 7, 8,
                          0x0A, 0x0B, 0x0C, 0x0D, 'x', 'y'};
  CU_ASSERT_EQUAL(n, sizeof want);
  CU_ASSERT(memcmp(buf, want, sizeof want) == 0);
  c = cell_tombstone(1, 2);
  n = cell_encode(&c, buf);
  const uint8_t want2[] = {1, CELL_F_TOMBSTONE, 0, 0, 0, 0, 0, 0, 0, 1,
                           0, 0, 0, 2};
  CU_ASSERT_EQUAL(n, sizeof want2);
  CU_ASSERT(memcmp(buf, want2, sizeof want2) == 0);
  c = cell_live(1, 0, CBYTES("", 0));
  c.has_clock = 1;
  c.clock = CBYTES("\xaa", 1);
  n = cell_encode(&c, buf);
  const uint8_t want3[] = {1, CELL_F_HAS_CLOCK, 0, 0, 0, 0, 0, 0, 0, 1,
                           1, 0xaa};
  CU_ASSERT_EQUAL(n, sizeof want3);
  CU_ASSERT(memcmp(buf, want3, sizeof want3) == 0);
}

static void test_garbage(void) {
  cell d;
  uint8_t b[32] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CU_ASSERT_EQUAL(cell_decode(b, 10, &d), 0);
  b[0] = 2;   /* unknown version */
  CU_ASSERT_EQUAL(cell_decode(b, 10, &d), CELLAR_EPROTO);
  b[0] = 0;
  CU_ASSERT_EQUAL(cell_decode(b, 10, &d), CELLAR_EPROTO);
  b[0] = 1;
  b[1] = 0x08;   /* unknown flag */
  CU_ASSERT_EQUAL(cell_decode(b, 10, &d), CELLAR_EPROTO);
  b[1] = CELL_F_TOMBSTONE | CELL_F_HAS_EXPIRY;
  CU_ASSERT_EQUAL(cell_decode(b, 14, &d), CELLAR_EPROTO);
  b[1] = CELL_F_HAS_EXPIRY;   /* expiry 0 is "no expiry": non-canonical */
  memset(b + 10, 0, 4);
  CU_ASSERT_EQUAL(cell_decode(b, 14, &d), CELLAR_EPROTO);
  b[13] = 1;
  CU_ASSERT_EQUAL(cell_decode(b, 14, &d), 0);
  CU_ASSERT_EQUAL(d.expires_at, 1);
  b[1] = CELL_F_TOMBSTONE;    /* a tombstone carries no value */
  CU_ASSERT_EQUAL(cell_decode(b, 14, &d), 0);
  CU_ASSERT_EQUAL(cell_decode(b, 15, &d), CELLAR_EPROTO);
  b[1] = CELL_F_HAS_CLOCK;    /* varint: non-minimal, too long, overflow */
  b[10] = 0x80; b[11] = 0x00;
  CU_ASSERT_EQUAL(cell_decode(b, 12, &d), CELLAR_EPROTO);
  b[10] = 0x05;               /* clock of 5 bytes, only 1 present */
  CU_ASSERT_EQUAL(cell_decode(b, 12, &d), CELLAR_EPROTO);
  memset(b + 10, 0xFF, 10);
  b[20] = 0x01;
  CU_ASSERT_EQUAL(cell_decode(b, 21, &d), CELLAR_EPROTO);
  memset(b + 10, 0xFF, 9);    /* 2^64-1: longer than any input */
  b[19] = 0x01;
  CU_ASSERT_EQUAL(cell_decode(b, 20, &d), CELLAR_EPROTO);
  /* random bytes: never crash; what decodes re-encodes to the same bytes */
  for (int i = 0; i < 200000; i++) {
    uint8_t g[24], re[64];
    size_t n = rnd() % sizeof g;
    for (size_t j = 0; j < n; j++) g[j] = (uint8_t)rnd();
    if (n) g[0] = 1;
    if (n > 1) g[1] &= 0x07;
    if (cell_decode(g, n, &d) != 0) continue;
    CU_ASSERT_FATAL(cell_encoded_size(&d) == n);
    CU_ASSERT_FATAL(cell_encode(&d, re) == n && memcmp(re, g, n) == 0);
  }
}

/* Random cells from small domains, so that ties are frequent. */
static cell rnd_cell(void) {
  static const char *values[] = {"", "a", "b", "ab", "\xff"};
  static const uint32_t times[] = {0, 5, 6};
  cell c;
  int64_t ts = (int64_t)(rnd() % 3);
  if (rnd() % 3 == 0) {
    c = cell_tombstone(ts, times[rnd() % 3]);
  } else {
    const char *v = values[rnd() % 5];
    c = cell_live(ts, times[rnd() % 3], CBYTES(v, strlen(v)));
  }
  if (rnd() % 4 == 0) {
    c.has_clock = 1;
    c.clock = rnd() % 2 ? CBYTES("x", 1) : CBYTES("y", 1);
  }
  return c;
}

static void test_merge_algebra(void) {
  for (int i = 0; i < 300000; i++) {
    cell a = rnd_cell(), b = rnd_cell(), c = rnd_cell();
    /* idempotent */
    CU_ASSERT_FATAL(cell_merge(&a, &a) == &a);
    /* commutative: the same version wins either way */
    CU_ASSERT_FATAL(same_cell(cell_merge(&a, &b), cell_merge(&b, &a)));
    /* associative */
    const cell *l = cell_merge(cell_merge(&a, &b), &c);
    const cell *r = cell_merge(&a, cell_merge(&b, &c));
    CU_ASSERT_FATAL(same_cell(l, r));
    /* compare is antisymmetric and 0 only on identical versions */
    CU_ASSERT_FATAL(cell_compare(&a, &b) == -cell_compare(&b, &a));
    CU_ASSERT_FATAL((cell_compare(&a, &b) == 0) == same_cell(&a, &b));
    /* the rule itself */
    const cell *w = cell_merge(&a, &b);
    if (a.ts != b.ts) {
      CU_ASSERT_FATAL(w->ts == (a.ts > b.ts ? a.ts : b.ts));
    } else if (a.tombstone != b.tombstone) {
      CU_ASSERT_FATAL(w->tombstone);
    }
  }
}

static void test_merge_rule(void) {
  cell old = cell_live(100, 0, CBYTES("old", 3));
  cell young = cell_live(200, 0, CBYTES("a", 1));
  CU_ASSERT(cell_merge(&old, &young) == &young);
  CU_ASSERT(cell_merge(&young, &old) == &young);
  /* equal timestamps: the tombstone wins */
  cell t = cell_tombstone(200, 1);
  CU_ASSERT(cell_merge(&young, &t) == &t);
  CU_ASSERT(cell_merge(&t, &young) == &t);
  /* equal timestamps, live: the later expiry, never being the latest */
  cell e5 = cell_live(200, 5, CBYTES("z", 1));
  cell e6 = cell_live(200, 6, CBYTES("a", 1));
  CU_ASSERT(cell_merge(&e5, &e6) == &e6);
  CU_ASSERT(cell_merge(&e6, &young) == &young);
  /* then the greater value */
  cell vb = cell_live(200, 0, CBYTES("b", 1));
  cell vab = cell_live(200, 0, CBYTES("ab", 2));
  CU_ASSERT(cell_merge(&vb, &young) == &vb);
  CU_ASSERT(cell_merge(&vab, &young) == &vab);   /* "a" < "ab" */
  CU_ASSERT(cell_merge(&vab, &vb) == &vb);
  /* two tombstones: the later deletion time */
  cell t2 = cell_tombstone(200, 2);
  CU_ASSERT(cell_merge(&t, &t2) == &t2);
}

static void test_liveness(void) {
  cell c = cell_live(1, 0, CBYTES("v", 1));
  CU_ASSERT(cell_is_live(&c, UINT32_MAX));
  CU_ASSERT_EQUAL(cell_dead_since(&c), 0);
  c.expires_at = 100;
  CU_ASSERT(cell_is_live(&c, 99));
  CU_ASSERT(!cell_is_live(&c, 100));
  CU_ASSERT_EQUAL(cell_dead_since(&c), 100);
  c = cell_tombstone(1, 50);
  CU_ASSERT(!cell_is_live(&c, 0));
  CU_ASSERT_EQUAL(cell_dead_since(&c), 50);
}

/* ------------------------------------------------------ versioned cells */

/* The encoded result of cell_merge_versions(a, b), malloc'd into *out. */
static size_t merged_bytes(const cell *a, const cell *b, uint8_t **out) {
  cell_buf buf = {0};
  const cell *win;
  int rc = cell_merge_versions(a, b, &buf, &win);
  CU_ASSERT_FATAL(rc == 0 || rc == 1);
  size_t n;
  if (rc == 0) {
    CU_ASSERT_FATAL(win == a || win == b);
    n = cell_encoded_size(win);
    *out = malloc(n);
    cell_encode(win, *out);
  } else {
    CU_ASSERT_FATAL(win == NULL);
    n = buf.n;
    *out = malloc(n);
    memcpy(*out, buf.p, n);
  }
  cell_buf_free(&buf);
  return n;
}

static void check_header(const uint8_t *p, size_t n, int tomb, int64_t ts,
                         uint32_t t) {
  cell c;
  CU_ASSERT_EQUAL_FATAL(cell_decode(p, n, &c), 0);
  CU_ASSERT(cell_is_versioned(&c));
  CU_ASSERT_EQUAL(c.tombstone, tomb);
  CU_ASSERT_EQUAL(c.ts, ts);
  CU_ASSERT_EQUAL(tomb ? c.deleted_at : c.expires_at, t);
}

/* Plain cells merge exactly as cell_merge: the same pointer wins. */
static void test_versions_plain_unchanged(void) {
  for (int i = 0; i < 100000; i++) {
    cell a = rnd_cell(), b = rnd_cell();
    a.has_clock = b.has_clock = 0;
    cell_buf buf = {0};
    const cell *win;
    CU_ASSERT_FATAL(cell_merge_versions(&a, &b, &buf, &win) == 0);
    CU_ASSERT_FATAL(win == cell_merge(&a, &b));
    CU_ASSERT_FATAL(buf.p == NULL);
  }
}

static void test_versions_event_and_merge(void) {
  dvv_actor x = {11, 1}, y = {22, 1};
  dvv_write w1 = {100, 0, 0, CBYTES("one", 3)};
  cell_buf b1 = {0}, b2 = {0}, b3 = {0};
  dvv_dot dot;
  CU_ASSERT_EQUAL(cell_event(NULL, NULL, x, &w1, 0, &b1, &dot), 0);
  CU_ASSERT_EQUAL(dot.counter, 1);
  check_header(b1.p, b1.n, 0, 100, 0);
  cell c1;
  cell_decode(b1.p, b1.n, &c1);
  /* two coordinators write concurrently on top of c1's context */
  dvv s;
  dvv_init(&s);
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  CU_ASSERT_EQUAL(cell_versions(&c1, &s), 0);
  dvv_join(&s, &ctx);
  dvv_write w2 = {200, 0, 900, CBYTES("two", 3)};
  dvv_write d3 = {150, 1, 77, CBYTES(NULL, 0)};
  CU_ASSERT_EQUAL(cell_event(&c1, &ctx, x, &w2, 0, &b2, NULL), 0);
  CU_ASSERT_EQUAL(cell_event(&c1, &ctx, y, &d3, 0, &b3, NULL), 0);
  check_header(b2.p, b2.n, 0, 200, 900);       /* one value, expiring */
  check_header(b3.p, b3.n, 1, 150, 77);        /* only a delete marker */
  cell c2, c3;
  cell_decode(b2.p, b2.n, &c2);
  cell_decode(b3.p, b3.n, &c3);
  uint8_t *m23, *m32;
  size_t n23 = merged_bytes(&c2, &c3, &m23), n32 = merged_bytes(&c3, &c2, &m32);
  CU_ASSERT_FATAL(n23 == n32 && memcmp(m23, m32, n23) == 0);
  check_header(m23, n23, 0, 200, 0);           /* a value and a marker */
  cell m;
  cell_decode(m23, n23, &m);
  CU_ASSERT_EQUAL(cell_versions(&m, &s), 0);
  CU_ASSERT_EQUAL(dvv_count(&s), 2);           /* "one" superseded by both */
  /* an older version merged into a newer one: the newer is the answer */
  cell_buf none = {0};
  const cell *win;
  CU_ASSERT_EQUAL(cell_merge_versions(&c1, &m, &none, &win), 0);
  CU_ASSERT(win == &m);
  CU_ASSERT_EQUAL(cell_merge_versions(&m, &m, &none, &win), 0);
  CU_ASSERT(win == &m);
  /* the sibling limit */
  dvv_write w4 = {300, 0, 0, CBYTES("four", 4)};
  CU_ASSERT_EQUAL(cell_event(&m, NULL, x, &w4, 2, &none, NULL), CELLAR_ETOOBIG);
  CU_ASSERT(none.p == NULL);
  free(m23);
  free(m32);
  dvv_vv_close(&ctx);
  dvv_close(&s);
  cell_buf_free(&b1);
  cell_buf_free(&b2);
  cell_buf_free(&b3);
}

/* Plain cells written before versioning are legacy siblings: a write that
** read them supersedes them, a blind one keeps them; two plain versions
** meeting inside sets keep their LWW winner. */
static void test_versions_legacy(void) {
  cell old = cell_live(50, 0, CBYTES("legacy", 6));
  dvv s;
  dvv_init(&s);
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  CU_ASSERT_EQUAL(cell_versions(&old, &s), 0);
  CU_ASSERT_EQUAL(dvv_count(&s), 1);
  CU_ASSERT_EQUAL(dvv_actor_cmp(dvv_sibling(&s, 0)->dot.actor, CELL_LEGACY_ACTOR), 0);
  dvv_join(&s, &ctx);
  dvv_actor x = {11, 1};
  dvv_write w = {60, 0, 0, CBYTES("new", 3)};
  cell_buf b = {0}, blind = {0};
  CU_ASSERT_EQUAL(cell_event(&old, &ctx, x, &w, 0, &b, NULL), 0);
  CU_ASSERT_EQUAL(cell_event(&old, NULL, x, &w, 0, &blind, NULL), 0);
  cell c, cb;
  cell_decode(b.p, b.n, &c);
  cell_decode(blind.p, blind.n, &cb);
  CU_ASSERT_EQUAL(cell_versions(&c, &s), 0);
  CU_ASSERT_EQUAL(dvv_count(&s), 1);
  CU_ASSERT_EQUAL(cell_versions(&cb, &s), 0);
  CU_ASSERT_EQUAL(dvv_count(&s), 2);
  /* a newer plain version met by the set holding the older one */
  cell newer = cell_live(70, 0, CBYTES("legacy2", 7));
  uint8_t *r;
  size_t n = merged_bytes(&cb, &newer, &r);
  cell rc;
  CU_ASSERT_EQUAL(cell_decode(r, n, &rc), 0);
  CU_ASSERT_EQUAL(cell_versions(&rc, &s), 0);
  CU_ASSERT_EQUAL(dvv_count(&s), 2);
  int found = 0;
  for (size_t i = 0; i < dvv_count(&s); i++)
    found |= dvv_sibling(&s, i)->nvalue == 7;
  CU_ASSERT(found);                            /* "legacy2" replaced "legacy" */
  /* ... but the superseding write's set drops any plain version */
  uint8_t *r2;
  size_t n2 = merged_bytes(&c, &old, &r2);
  CU_ASSERT(n2 == b.n && memcmp(r2, b.p, n2) == 0);
  free(r);
  free(r2);
  dvv_vv_close(&ctx);
  dvv_close(&s);
  cell_buf_free(&b);
  cell_buf_free(&blind);
}

static void test_versions_rejects(void) {
  dvv_actor x = {11, 1};
  dvv_write w = {100, 0, 0, CBYTES("v", 1)};
  cell_buf b = {0}, out = {0};
  cell_event(NULL, NULL, x, &w, 0, &b, NULL);
  cell c;
  CU_ASSERT_EQUAL(cell_decode(b.p, b.n, &c), 0);
  dvv s;
  dvv_init(&s);
  const cell *win;
  cell bad = c;
  bad.ts = 99;                                 /* header is not the summary */
  CU_ASSERT_EQUAL(cell_versions(&bad, &s), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(cell_merge_versions(&c, &bad, &out, &win), CELLAR_EPROTO);
  bad = c;
  bad.clock = CBYTES("\x01\x05", 2);           /* not a set */
  CU_ASSERT_EQUAL(cell_versions(&bad, &s), CELLAR_EPROTO);
  bad = c;
  bad.value = CBYTES("x", 1);                  /* a value beside a set */
  CU_ASSERT_EQUAL(cell_versions(&bad, &s), CELLAR_EPROTO);
  CU_ASSERT(out.p == NULL);
  dvv_close(&s);
  cell_buf_free(&b);
}

/* Random plain and versioned cells: the merge is commutative, associative
** and idempotent on the bytes it produces. */
static void test_versions_algebra(void) {
  enum { POOL = 24 };
  uint8_t *pool[POOL];
  size_t npool[POOL];
  dvv_actor actors[3] = {{1, 1}, {2, 1}, {3, 2}};
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < POOL; i++) {
      cell c = rnd_cell();
      c.has_clock = 0;
      npool[i] = cell_encoded_size(&c);
      pool[i] = malloc(npool[i]);
      cell_encode(&c, pool[i]);
    }
    /* grow versioned cells: events on pool members with their contexts
    ** (or none), and merges */
    for (int step = 0; step < 200; step++) {
      int i = (int)(rnd() % POOL), j = (int)(rnd() % POOL);
      cell a, b;
      CU_ASSERT_FATAL(cell_decode(pool[i], npool[i], &a) == 0);
      CU_ASSERT_FATAL(cell_decode(pool[j], npool[j], &b) == 0);
      uint8_t *r;
      size_t n;
      if (rnd() % 2) {
        n = merged_bytes(&a, &b, &r);
      } else {
        dvv s;
        dvv_init(&s);
        dvv_vv ctx;
        dvv_vv_init(&ctx);
        CU_ASSERT_FATAL(cell_versions(&b, &s) == 0);
        if (rnd() % 3) dvv_join(&s, &ctx);
        cell_buf out = {0};
        dvv_write w = {(int64_t)(rnd() % 4), (uint8_t)(rnd() % 4 == 0), 0,
                       CBYTES("w", 1)};
        if (w.tombstone) w.value.n = 0;
        CU_ASSERT_FATAL(cell_event(&a, &ctx, actors[rnd() % 3], &w, 0, &out, NULL) == 0);
        n = out.n;
        r = out.p;
        dvv_vv_close(&ctx);
        dvv_close(&s);
      }
      free(pool[i]);
      pool[i] = r;
      npool[i] = n;
    }
    for (int t = 0; t < 300; t++) {
      cell a, b, c;
      int ia = (int)(rnd() % POOL), ib = (int)(rnd() % POOL), ic = (int)(rnd() % POOL);
      cell_decode(pool[ia], npool[ia], &a);
      cell_decode(pool[ib], npool[ib], &b);
      cell_decode(pool[ic], npool[ic], &c);
      uint8_t *ab, *ba, *aa, *bc, *ab_c, *a_bc;
      size_t nab = merged_bytes(&a, &b, &ab), nba = merged_bytes(&b, &a, &ba);
      CU_ASSERT_FATAL(nab == nba && memcmp(ab, ba, nab) == 0);
      size_t naa = merged_bytes(&a, &a, &aa);
      CU_ASSERT_FATAL(naa == npool[ia] && memcmp(aa, pool[ia], naa) == 0);
      cell cab, cbc;
      cell_decode(ab, nab, &cab);
      size_t nbc = merged_bytes(&b, &c, &bc);
      cell_decode(bc, nbc, &cbc);
      size_t n1 = merged_bytes(&cab, &c, &ab_c), n2 = merged_bytes(&a, &cbc, &a_bc);
      CU_ASSERT_FATAL(n1 == n2 && memcmp(ab_c, a_bc, n1) == 0);
      free(ab); free(ba); free(aa); free(bc); free(ab_c); free(a_bc);
    }
    for (int i = 0; i < POOL; i++) free(pool[i]);
  }
}

/* Row contexts: built column by column, decoded, found; bad ones refused. */
static void test_rowctx(void) {
  dvv_vv v1, v2;
  dvv_vv_init(&v1);
  dvv_vv_init(&v2);
  CU_ASSERT_EQUAL(dvv_vv_raise(&v1, (dvv_actor){5, 1}, 3), 0);
  CU_ASSERT_EQUAL(dvv_vv_raise(&v2, (dvv_actor){6, 2}, 1), 0);
  CU_ASSERT_EQUAL(dvv_vv_raise(&v2, (dvv_actor){5, 1}, 9), 0);
  cell_buf b = {0};
  CU_ASSERT_EQUAL(cell_rowctx_add(&b, CBYTES("a", 1), &v1, 1000), 0);
  CU_ASSERT_EQUAL(cell_rowctx_add(&b, CBYTES("bb", 2), &v2, 1001), 0);
  cell_rowctx c;
  CU_ASSERT_EQUAL_FATAL(cell_rowctx_decode(b.p, b.n, &c), 0);
  CU_ASSERT_EQUAL(c.n, 2);
  const cell_rowctx_col *x = cell_rowctx_find(&c, CBYTES("bb", 2));
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  CU_ASSERT(dvv_vv_equal(&x->vv, &v2));
  CU_ASSERT_EQUAL(x->issued_s, 1001);
  CU_ASSERT_PTR_NULL(cell_rowctx_find(&c, CBYTES("b", 1)));
  cell_rowctx_close(&c);
  /* every truncation and bit flip either fails or decodes cleanly */
  for (size_t k = 1; k < b.n; k++) {
    int rc = cell_rowctx_decode(b.p, k, &c);
    if (rc == 0) cell_rowctx_close(&c);
    CU_ASSERT(rc != 0 || k == 0);
  }
  for (size_t bit = 0; bit < b.n * 8; bit++) {
    b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    if (cell_rowctx_decode(b.p, b.n, &c) == 0) cell_rowctx_close(&c);
    b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  /* columns out of order */
  cell_buf o = {0};
  CU_ASSERT_EQUAL(cell_rowctx_add(&o, CBYTES("b", 1), &v1, 1), 0);
  CU_ASSERT_EQUAL(cell_rowctx_add(&o, CBYTES("a", 1), &v1, 1), 0);
  CU_ASSERT_EQUAL(cell_rowctx_decode(o.p, o.n, &c), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(cell_rowctx_decode((const uint8_t *)"\x09", 1, &c), CELLAR_EPROTO);
  /* an empty context is no bytes: a header counting 0 cells is refused */
  CU_ASSERT_EQUAL(cell_rowctx_decode((const uint8_t *)"\x01\x00\x00", 3, &c), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(cell_rowctx_decode(NULL, 0, &c), 0);
  CU_ASSERT_EQUAL(c.n, 0);
  cell_buf_free(&o);
  cell_buf_free(&b);
  dvv_vv_close(&v1);
  dvv_vv_close(&v2);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"round_trip", test_round_trip},
    {"layout", test_layout},
    {"garbage", test_garbage},
    {"merge_algebra", test_merge_algebra},
    {"merge_rule", test_merge_rule},
    {"liveness", test_liveness},
    {"versions_plain_unchanged", test_versions_plain_unchanged},
    {"versions_event_and_merge", test_versions_event_and_merge},
    {"versions_legacy", test_versions_legacy},
    {"versions_rejects", test_versions_rejects},
    {"versions_algebra", test_versions_algebra},
    {"rowctx", test_rowctx},
    {NULL, NULL}
  };
  return testutil_run("cell", cases, argc, argv);
}
