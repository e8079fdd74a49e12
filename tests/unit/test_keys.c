/* Unit tests of keys: round trips, order preservation, bounds, decoding
** of garbage. */
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "keys.h"
#include "testutil.h"

/* xorshift: reproducible random bytes */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Bytes biased towards the ones the escaping cares about. */
static const uint8_t alphabet[] = {0x00, 0x01, 0x02, 0xFF, 0xFE, 'a'};
static size_t rnd_bytes(uint8_t *out, size_t max) {
  size_t n = rnd() % (max + 1);
  for (size_t i = 0; i < n; i++) out[i] = alphabet[rnd() % sizeof alphabet];
  return n;
}

static int bytes_cmp(const uint8_t *a, size_t na, const uint8_t *b,
                     size_t nb) {
  size_t m = na < nb ? na : nb;
  int r = m ? memcmp(a, b, m) : 0;
  if (r) return r < 0 ? -1 : 1;
  return (na > nb) - (na < nb);
}

static int sign(int x) { return (x > 0) - (x < 0); }

static void test_esc_examples(void) {
  uint8_t out[16];
  CU_ASSERT_EQUAL(keys_esc(out, NULL, 0), 2);
  CU_ASSERT(out[0] == 0x00 && out[1] == 0x01);
  const uint8_t in[] = {'a', 0x00, 0xFF};
  size_t n = keys_esc(out, in, 3);
  const uint8_t want[] = {'a', 0x00, 0xFF, 0xFF, 0x00, 0x01};
  CU_ASSERT_EQUAL(n, sizeof want);
  CU_ASSERT(memcmp(out, want, sizeof want) == 0);
  uint8_t back[8];
  CU_ASSERT_EQUAL(keys_unescape(CBYTES(out, n - 2), back), 3);
  CU_ASSERT(memcmp(back, in, 3) == 0);
}

/* memcmp of esc(a), esc(b) agrees with the order of a, b */
static void test_esc_order(void) {
  uint8_t a[8], b[8], ea[KEYS_ESC_MAX(8)], eb[KEYS_ESC_MAX(8)];
  for (int i = 0; i < 200000; i++) {
    size_t na = rnd_bytes(a, 6), nb = rnd_bytes(b, 6);
    size_t nea = keys_esc(ea, a, na), neb = keys_esc(eb, b, nb);
    CU_ASSERT_EQUAL_FATAL(bytes_cmp(ea, nea, eb, neb), bytes_cmp(a, na, b, nb));
    /* prefix-free: an encoding is a prefix of another only if equal */
    if (nea <= neb && memcmp(ea, eb, nea) == 0)
      CU_ASSERT_FATAL(na == nb && memcmp(a, b, na) == 0);
  }
}

static void test_table_bounds(void) {
  uint8_t a[8], b[8];
  keys_table_prefix(a, 0x0102030405060708ull);
  CU_ASSERT(a[0] == 1 && a[7] == 8);
  CU_ASSERT_EQUAL(keys_table_end(b, 0x01020304050607FFull), 1);
  const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 8, 0};
  CU_ASSERT(memcmp(b, want, 8) == 0);
  CU_ASSERT_EQUAL(keys_table_end(b, UINT64_MAX), 0);
}

/* A key tuple, for the ordering test. kind: 0 partition, 1 row, 2 cell. */
typedef struct tuple {
  uint64_t table;
  int64_t token;
  uint8_t pk[6], ck[6], col[6];
  size_t npk, nck, ncol;
  int kind;
  uint8_t key[KEYS_CELL_MAX(6, 6, 6)];
  size_t nkey;
} tuple;

static int tuple_cmp(const tuple *a, const tuple *b) {
  if (a->table != b->table) return a->table < b->table ? -1 : 1;
  if (a->token != b->token) return a->token < b->token ? -1 : 1;
  int r = bytes_cmp(a->pk, a->npk, b->pk, b->npk);
  if (r) return r;
  /* the partition tombstone before the rows */
  if ((a->kind == 0) != (b->kind == 0)) return a->kind == 0 ? -1 : 1;
  if (a->kind == 0) return 0;
  r = bytes_cmp(a->ck, a->nck, b->ck, b->nck);
  if (r) return r;
  /* the row tombstone before the cells */
  if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
  if (a->kind == 1) return 0;
  return bytes_cmp(a->col, a->ncol, b->col, b->ncol);
}

static void rnd_tuple(tuple *t) {
  static const uint64_t tables[] = {0, 1, 0x8000000000000000ull, UINT64_MAX};
  static const int64_t tokens[] = {INT64_MIN, -1, 0, 1, INT64_MAX};
  t->table = tables[rnd() % 4];
  t->token = tokens[rnd() % 5];
  t->npk = rnd_bytes(t->pk, 3);
  t->nck = rnd_bytes(t->ck, 3);
  t->ncol = rnd_bytes(t->col, 3);
  t->kind = (int)(rnd() % 3);
  cbytes pk = CBYTES(t->pk, t->npk), ck = CBYTES(t->ck, t->nck);
  if (t->kind == 0)
    t->nkey = keys_partition(t->key, t->table, t->token, pk);
  else if (t->kind == 1)
    t->nkey = keys_row(t->key, t->table, t->token, pk, ck);
  else
    t->nkey = keys_cell(t->key, t->table, t->token, pk, ck,
                        CBYTES(t->col, t->ncol));
}

static void test_tuple_order(void) {
  tuple a, b;
  for (int i = 0; i < 300000; i++) {
    rnd_tuple(&a);
    rnd_tuple(&b);
    if (rnd() % 4 == 0) {   /* share a prefix more often */
      b.table = a.table;
      b.token = a.token;
      memcpy(b.pk, a.pk, a.npk);
      b.npk = a.npk;
      if (rnd() % 2) {
        memcpy(b.ck, a.ck, a.nck);
        b.nck = a.nck;
      }
      cbytes pk = CBYTES(b.pk, b.npk), ck = CBYTES(b.ck, b.nck);
      if (b.kind == 0) b.nkey = keys_partition(b.key, b.table, b.token, pk);
      else if (b.kind == 1) b.nkey = keys_row(b.key, b.table, b.token, pk, ck);
      else b.nkey = keys_cell(b.key, b.table, b.token, pk, ck,
                              CBYTES(b.col, b.ncol));
    }
    int want = sign(tuple_cmp(&a, &b));
    int got = bytes_cmp(a.key, a.nkey, b.key, b.nkey);
    if (want != got) {
      CU_FAIL_FATAL("encoded order differs from tuple order");
    }
  }
}

static void check_round_trip(const tuple *t) {
  keys_parts kp;
  CU_ASSERT_EQUAL_FATAL(keys_decode(t->key, t->nkey, &kp), 0);
  CU_ASSERT_EQUAL(kp.table_id, t->table);
  CU_ASSERT_EQUAL(kp.token, t->token);
  CU_ASSERT_EQUAL((int)kp.kind, t->kind);
  uint8_t buf[16];
  CU_ASSERT_EQUAL(kp.npk, t->npk);
  CU_ASSERT_EQUAL(keys_unescape(kp.pk_esc, buf), t->npk);
  CU_ASSERT(memcmp(buf, t->pk, t->npk) == 0);
  uint8_t base[KEYS_BASE_MAX(6)];
  size_t nb = keys_base(base, t->table, t->token, CBYTES(t->pk, t->npk));
  CU_ASSERT_EQUAL(kp.base_len, nb);
  CU_ASSERT(memcmp(base, t->key, nb) == 0);
  /* the prefix extractor finds the same base, and nothing in a cut one */
  CU_ASSERT_EQUAL(keys_base_len(t->key, t->nkey), nb);
  CU_ASSERT_EQUAL(keys_base_len(base, nb), nb);
  CU_ASSERT_EQUAL(keys_base_len(base, nb - 1), 0);
  CU_ASSERT_EQUAL(keys_base_len(base, KEYS_HEAD_BYTES), 0);
  if (t->kind == 0) return;
  CU_ASSERT_EQUAL(kp.nck, t->nck);
  CU_ASSERT_EQUAL(keys_unescape(kp.ck_esc, buf), t->nck);
  CU_ASSERT(memcmp(buf, t->ck, t->nck) == 0);
  uint8_t from[KEYS_ROW_MAX(6, 6)];
  size_t nf = keys_rows_from(from, t->table, t->token, CBYTES(t->pk, t->npk),
                             CBYTES(t->ck, t->nck));
  CU_ASSERT_EQUAL(kp.row_len, nf);
  CU_ASSERT(memcmp(from, t->key, nf) == 0);
  if (t->kind == 1) return;
  CU_ASSERT_EQUAL(kp.column.n, t->ncol);
  CU_ASSERT(kp.column.n == 0 || memcmp(kp.column.p, t->col, t->ncol) == 0);
}

static void test_round_trip(void) {
  tuple t;
  for (int i = 0; i < 100000; i++) {
    rnd_tuple(&t);
    check_round_trip(&t);
  }
}

/* rows_from / row_end / partition_end sit where a scan needs them */
static void test_bounds(void) {
  tuple a, b;
  for (int i = 0; i < 200000; i++) {
    rnd_tuple(&a);
    rnd_tuple(&b);
    b.table = a.table;
    b.token = a.token;
    if (rnd() % 2) {
      memcpy(b.pk, a.pk, a.npk);
      b.npk = a.npk;
    }
    {
      cbytes pk = CBYTES(b.pk, b.npk), ck = CBYTES(b.ck, b.nck);
      if (b.kind == 0) b.nkey = keys_partition(b.key, b.table, b.token, pk);
      else if (b.kind == 1) b.nkey = keys_row(b.key, b.table, b.token, pk, ck);
      else b.nkey = keys_cell(b.key, b.table, b.token, pk, ck,
                              CBYTES(b.col, b.ncol));
    }
    /* bounds built from a's partition and clustering key, tested on b */
    cbytes pk = CBYTES(a.pk, a.npk), ck = CBYTES(a.ck, a.nck);
    uint8_t from[KEYS_ROW_MAX(6, 6)], end[KEYS_ROW_MAX(6, 6)],
        pend[KEYS_PARTITION_MAX(6)], part[KEYS_PARTITION_MAX(6)];
    size_t nfrom = keys_rows_from(from, a.table, a.token, pk, ck);
    size_t nend = keys_row_end(end, a.table, a.token, pk, ck);
    size_t npend = keys_partition_end(pend, a.table, a.token, pk);
    size_t npart = keys_partition(part, a.table, a.token, pk);
    int same_pk = bytes_cmp(a.pk, a.npk, b.pk, b.npk) == 0;
    int pk_cmp = bytes_cmp(b.pk, b.npk, a.pk, a.npk);
    /* partition_end: above every key of the partition, below the next */
    CU_ASSERT_FATAL((bytes_cmp(b.key, b.nkey, pend, npend) < 0) ==
                    (pk_cmp <= 0));
    /* the partition tombstone is the first key of the partition */
    if (same_pk) CU_ASSERT_FATAL(bytes_cmp(part, npart, b.key, b.nkey) <= 0);
    if (!same_pk || b.kind == 0) continue;
    int ck_cmp = bytes_cmp(b.ck, b.nck, a.ck, a.nck);
    /* rows_from(ck) <= every key of a row >= ck, > every key of a row < ck */
    CU_ASSERT_FATAL((bytes_cmp(b.key, b.nkey, from, nfrom) >= 0) ==
                    (ck_cmp >= 0));
    /* row_end(ck) > every key of a row <= ck, < every key of a row > ck */
    CU_ASSERT_FATAL((bytes_cmp(b.key, b.nkey, end, nend) < 0) ==
                    (ck_cmp <= 0));
  }
}

/* Examples worth naming: extensions of a clustering key made of 0x00. */
static void test_bounds_zero_extensions(void) {
  uint8_t k1[64], k2[64], e[64];
  const uint8_t z[2] = {0, 0};
  cbytes pk = CBYTES("p", 1);
  size_t ne = keys_row_end(e, 7, 0, pk, CBYTES(z, 0));     /* ck "" */
  size_t n1 = keys_cell(k1, 7, 0, pk, CBYTES(z, 0), CBYTES("\xff\xff", 2));
  size_t n2 = keys_row(k2, 7, 0, pk, CBYTES(z, 1));         /* ck "\0" */
  CU_ASSERT(bytes_cmp(k1, n1, e, ne) < 0);
  CU_ASSERT(bytes_cmp(k2, n2, e, ne) > 0);
  size_t nf = keys_rows_from(e, 7, 0, pk, CBYTES(z, 1));
  n1 = keys_cell(k1, 7, 0, pk, CBYTES(z, 0), CBYTES("zz", 2));
  CU_ASSERT(bytes_cmp(k1, n1, e, nf) < 0);
  n2 = keys_cell(k2, 7, 0, pk, CBYTES(z, 2), CBYTES("", 0));
  CU_ASSERT(bytes_cmp(k2, n2, e, nf) > 0);
}

static void test_decode_garbage(void) {
  keys_parts kp;
  tuple t;
  /* every strict prefix of a key that is not itself a key is rejected:
  ** for cells, prefixes up to and including the row prefix */
  for (int i = 0; i < 20000; i++) {
    rnd_tuple(&t);
    keys_parts full;
    CU_ASSERT_FATAL(keys_decode(t.key, t.nkey, &full) == 0);
    size_t limit = t.kind == 2 ? full.row_len + 1 : t.nkey;
    for (size_t n = 0; n < limit; n++)
      CU_ASSERT_FATAL(keys_decode(t.key, n, &kp) == CELLAR_EPROTO);
    /* trailing bytes after a tombstone tag */
    if (t.kind != 2) {
      uint8_t k[sizeof t.key + 1];
      memcpy(k, t.key, t.nkey);
      k[t.nkey] = 'x';
      CU_ASSERT_FATAL(keys_decode(k, t.nkey + 1, &kp) == CELLAR_EPROTO);
    }
  }
  /* a bad escape, a bad tag */
  uint8_t k[64];
  size_t n = keys_partition(k, 1, 2, CBYTES("a", 1));
  k[n - 2] = 0x05;             /* terminator 00 01 -> 00 05 */
  CU_ASSERT_EQUAL(keys_decode(k, n, &kp), CELLAR_EPROTO);
  n = keys_partition(k, 1, 2, CBYTES("a", 1));
  k[n - 1] = KEYS_TAG_END;
  CU_ASSERT_EQUAL(keys_decode(k, n, &kp), CELLAR_EPROTO);
  n = keys_row(k, 1, 2, CBYTES("a", 1), CBYTES("b", 1));
  k[n - 1] = 0x07;
  CU_ASSERT_EQUAL(keys_decode(k, n, &kp), CELLAR_EPROTO);
  /* random bytes: never crash; what decodes re-encodes to the same bytes */
  for (int i = 0; i < 200000; i++) {
    uint8_t g[40], pk[40], ck[40], re[KEYS_CELL_MAX(40, 40, 40)];
    size_t ng = 16 + rnd_bytes(g + 16, 20);
    for (int j = 0; j < 16; j++) g[j] = (uint8_t)rnd();
    if (keys_decode(g, ng, &kp) != 0) continue;
    size_t npk = keys_unescape(kp.pk_esc, pk);
    size_t nck = kp.kind ? keys_unescape(kp.ck_esc, ck) : 0;
    size_t nre;
    if (kp.kind == KEYS_KIND_PARTITION)
      nre = keys_partition(re, kp.table_id, kp.token, CBYTES(pk, npk));
    else if (kp.kind == KEYS_KIND_ROW)
      nre = keys_row(re, kp.table_id, kp.token, CBYTES(pk, npk),
                     CBYTES(ck, nck));
    else
      nre = keys_cell(re, kp.table_id, kp.token, CBYTES(pk, npk),
                      CBYTES(ck, nck), kp.column);
    CU_ASSERT_FATAL(nre == ng && memcmp(re, g, ng) == 0);
  }
}

/* The worst-case size macros hold for all-zero keys. */
static void test_max_sizes(void) {
  uint8_t z[100] = {0};
  uint8_t *k = malloc(KEYS_CELL_MAX(100, 100, 100));
  CU_ASSERT_FATAL(k != NULL);
  size_t n = keys_cell(k, 1, 1, CBYTES(z, 100), CBYTES(z, 100),
                       CBYTES(z, 100));
  CU_ASSERT_EQUAL(n, KEYS_CELL_MAX(100, 100, 100));
  CU_ASSERT_EQUAL(keys_row_end(k, 1, 1, CBYTES(z, 100), CBYTES(z, 100)),
                  KEYS_ROW_MAX(100, 100));
  CU_ASSERT_EQUAL(keys_partition_end(k, 1, 1, CBYTES(z, 100)),
                  KEYS_PARTITION_MAX(100));
  free(k);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"esc_examples", test_esc_examples},
    {"esc_order", test_esc_order},
    {"table_bounds", test_table_bounds},
    {"tuple_order", test_tuple_order},
    {"round_trip", test_round_trip},
    {"bounds", test_bounds},
    {"bounds_zero_extensions", test_bounds_zero_extensions},
    {"decode_garbage", test_decode_garbage},
    {"max_sizes", test_max_sizes},
    {NULL, NULL}
  };
  return testutil_run("keys", cases, argc, argv);
}
