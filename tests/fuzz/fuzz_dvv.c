/*
** fuzz_dvv: libFuzzer target for the version-vector decoders (dvv.h) and
** the algebra of what they accept.
**
** Input: u8 mode, u16 big-endian split, then bytes.
**   mode & 3 == 0: bytes[0..split) and bytes[split..) are two encoded
**                  sets (a split past the end: one set, the whole rest);
**   mode & 3 == 1: bytes are an encoded client context;
**   mode & 3 == 2: bytes[0..split) and bytes[split..) are two stored
**                  cells (cell.h), merged with cell_merge_versions, which
**                  must be commutative and idempotent on the bytes, and
**                  whose versioned results must pass cell_versions;
**   mode & 3 == 3: bytes are a row context (cell.h, cell_rowctx_*): a
**                  decoded one must re-encode to exactly its input and
**                  find each of its columns.
**
** Every decoded set must re-encode to exactly its input (one set, one
** encoding), survive encode/decode, and merge commutatively, associatively
** and idempotently with the other set and with itself after a write
** (dvv_event with its own context, which must leave one sibling). A
** decoded context must re-encode to its input and drive a write. Anything
** refused must be refused with CELLAR_EPROTO or CELLAR_ETOOBIG. Any
** failed check aborts; libFuzzer's leak checker sees every allocation.
**
** Seeds: tests/fuzz/corpus-dvv (written by hand, see docs/versions.md).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "dvv.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void check_canonical(const dvv *s, const uint8_t *p, size_t n) {
  size_t m = dvv_encoded_size(s);
  CHECK(m == n);
  uint8_t *b = malloc(m);
  CHECK(b != NULL);
  CHECK(dvv_encode(s, b) == m);
  CHECK(memcmp(b, p, n) == 0);
  free(b);
}

static void check_round_trip(const dvv *s) {
  size_t m = dvv_encoded_size(s);
  uint8_t *b = malloc(m);
  CHECK(b != NULL);
  dvv_encode(s, b);
  dvv d;
  dvv_init(&d);
  CHECK(dvv_decode(b, m, &d) == 0);
  CHECK(dvv_equal(s, &d));
  dvv_close(&d);
  free(b);
}

static int decode_one(const uint8_t *p, size_t n, dvv *s) {
  int rc = dvv_decode(p, n, s);
  CHECK(rc == 0 || rc == CELLAR_EPROTO || rc == CELLAR_ETOOBIG);
  if (rc == 0) {
    check_canonical(s, p, n);
    for (size_t i = 0; i < dvv_count(s); i++)
      CHECK(dvv_vv_covers(&s->clock, dvv_sibling(s, i)->dot));
  } else {
    CHECK(dvv_count(s) == 0 && s->clock.n == 0);
  }
  return rc;
}

/* merged = x ∪ y (a fresh set, caller closes). */
static void merged(dvv *out, const dvv *x, const dvv *y) {
  dvv_init(out);
  CHECK(dvv_copy(out, x) == 0);
  CHECK(dvv_merge(out, y) == 0);
}

static void check_algebra(const dvv *a, const dvv *b, const dvv *c) {
  dvv ab, ba, ab_c, bc, a_bc, aa;
  merged(&ab, a, b);
  merged(&ba, b, a);
  CHECK(dvv_equal(&ab, &ba));
  merged(&ab_c, &ab, c);
  merged(&bc, b, c);
  merged(&a_bc, a, &bc);
  CHECK(dvv_equal(&ab_c, &a_bc));
  merged(&aa, a, a);
  CHECK(dvv_equal(&aa, a));
  dvv_order o = dvv_compare(a, &ab);
  CHECK(o == DVV_LESS || o == DVV_EQUAL);
  check_round_trip(&ab_c);
  dvv_close(&ab);
  dvv_close(&ba);
  dvv_close(&ab_c);
  dvv_close(&bc);
  dvv_close(&a_bc);
  dvv_close(&aa);
}

/* s after a write that saw all of s: one sibling, above s. */
static void written(dvv *out, const dvv *s) {
  dvv_vv ctx;
  dvv_vv_init(&ctx);
  CHECK(dvv_join(s, &ctx) == 0);
  dvv_init(out);
  CHECK(dvv_copy(out, s) == 0);
  dvv_actor self = {0x5eed, 1};
  dvv_write w = {1, 0, 0, CBYTES("fz", 2)};
  int rc = dvv_event(out, &ctx, self, &w, 0, NULL);
  CHECK(rc == 0 || rc == CELLAR_ETOOBIG);   /* counter at DVV_MAX_COUNTER */
  if (rc == 0) {
    CHECK(dvv_count(out) == 1);
    CHECK(dvv_compare(s, out) == DVV_LESS);
  }
  dvv_vv_close(&ctx);
}

static void fuzz_context(const uint8_t *p, size_t n) {
  dvv_vv v;
  dvv_vv_init(&v);
  uint32_t issued = 0;
  int rc = dvv_ctx_decode(p, n, &v, &issued);
  CHECK(rc == 0 || rc == CELLAR_EPROTO || rc == CELLAR_ETOOBIG);
  if (rc == 0) {
    size_t m = dvv_ctx_encoded_size(&v);
    CHECK(m == n);
    uint8_t *b = malloc(m);
    CHECK(b != NULL);
    CHECK(dvv_ctx_encode(&v, issued, b) == m);
    CHECK(memcmp(b, p, n) == 0);
    free(b);
    dvv s;
    dvv_init(&s);
    dvv_write w = {2, 1, 3, CBYTES(NULL, 0)};
    dvv_actor self = {0x5eed, 2};
    rc = dvv_event(&s, &v, self, &w, 0, NULL);
    CHECK(rc == 0 || rc == CELLAR_ETOOBIG);
    if (rc == 0) {
      CHECK(dvv_count(&s) == 1 && dvv_sibling(&s, 0)->tombstone);
      for (size_t i = 0; i < v.n; i++)
        CHECK(dvv_vv_get(&s.clock, v.e[i].actor) >= v.e[i].counter);
      check_round_trip(&s);
    }
    dvv_close(&s);
  } else {
    CHECK(v.n == 0);
  }
  dvv_vv_close(&v);
}

/* The bytes of cell_merge_versions(a, b) (malloc'd), or NULL on an error. */
static uint8_t *cell_merged(const cell *a, const cell *b, size_t *n, int *rc) {
  cell_buf buf = {0};
  const cell *win;
  *rc = cell_merge_versions(a, b, &buf, &win);
  CHECK(*rc == 0 || *rc == 1 || *rc == CELLAR_EPROTO || *rc == CELLAR_ETOOBIG);
  uint8_t *out = NULL;
  if (*rc == 0) {
    CHECK(win == a || win == b);
    *n = cell_encoded_size(win);
    out = malloc(*n ? *n : 1);
    CHECK(cell_encode(win, out) == *n);
  } else if (*rc == 1) {
    CHECK(buf.p != NULL);
    *n = buf.n;
    out = buf.p;
    buf.p = NULL;
  }
  cell_buf_free(&buf);
  return out;
}

static void fuzz_cells(const uint8_t *p, size_t n, size_t split) {
  cell a, b;
  if (cell_decode(p, split, &a) || cell_decode(p + split, n - split, &b)) return;
  size_t nab = 0, nba = 0, naa = 0;
  int rab, rba, raa;
  uint8_t *ab = cell_merged(&a, &b, &nab, &rab);
  uint8_t *ba = cell_merged(&b, &a, &nba, &rba);
  uint8_t *aa = cell_merged(&a, &a, &naa, &raa);
  CHECK((ab == NULL) == (ba == NULL));
  if (ab) CHECK(nab == nba && memcmp(ab, ba, nab) == 0);
  if (aa) CHECK(raa == 0 && naa == split && memcmp(aa, p, split) == 0);
  if (ab) {
    cell m;
    CHECK(cell_decode(ab, nab, &m) == 0);
    dvv s;
    dvv_init(&s);
    if (m.has_clock) CHECK(cell_versions(&m, &s) == 0);
    dvv_close(&s);
  }
  free(ab);
  free(ba);
  free(aa);
}

static void fuzz_rowctx(const uint8_t *p, size_t n) {
  cell_rowctx c;
  int rc = cell_rowctx_decode(p, n, &c);
  if (rc) {
    CHECK(rc == CELLAR_EPROTO || rc == CELLAR_ETOOBIG);
    return;
  }
  cell_buf b = {0};
  for (size_t i = 0; i < c.n; i++) {
    CHECK(cell_rowctx_add(&b, c.c[i].column, &c.c[i].vv, c.c[i].issued_s) == 0);
    CHECK(cell_rowctx_find(&c, c.c[i].column) == &c.c[i]);
  }
  CHECK(c.n == 0 ? n == 0 : (b.n == n && memcmp(b.p, p, n) == 0));
  cell_buf_free(&b);
  cell_rowctx_close(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > (1u << 16)) return 0;
  uint8_t mode = data[0];
  size_t split = (size_t)data[1] << 8 | data[2];
  const uint8_t *p = data + 3;
  size_t n = size - 3;
  if (split > n) split = n;
  if ((mode & 3) == 1) {
    fuzz_context(p, n);
    return 0;
  }
  if ((mode & 3) == 2) {
    fuzz_cells(p, n, split);
    return 0;
  }
  if ((mode & 3) == 3) {
    fuzz_rowctx(p, n);
    return 0;
  }
  dvv a, b, c;
  dvv_init(&a);
  dvv_init(&b);
  int ra = decode_one(p, split == n ? n : split, &a);
  int rb = split == n ? CELLAR_EPROTO : decode_one(p + split, n - split, &b);
  if (ra == 0) {
    written(&c, &a);
    check_algebra(&a, rb == 0 ? &b : &a, &c);
    check_algebra(&c, &a, rb == 0 ? &b : &c);
    dvv_close(&c);
  }
  dvv_close(&a);
  dvv_close(&b);
  return 0;
}
