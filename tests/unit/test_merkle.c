/* Unit tests of merkle: build, truncate, diff, encode/decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "merkle.h"
#include "testutil.h"

/* n partitions spread evenly over lo..hi, digest i (or 'changed' for one) */
static void build(merkle_tree *t, int64_t lo, int64_t hi, unsigned depth, size_t n,
                  size_t changed, uint64_t changed_digest) {
  CU_ASSERT_EQUAL_FATAL(merkle_init(t, lo, hi, depth), 0);
  uint64_t step = ((uint64_t)hi - (uint64_t)lo) / (n + 1);
  for (size_t i = 0; i < n; i++) {
    int64_t tok = (int64_t)((uint64_t)lo + step * (i + 1));
    uint64_t d = i == changed ? changed_digest : 1000 + i;
    CU_ASSERT_EQUAL(merkle_add(t, tok, d, 100), 0);
  }
}

static void test_leaf_ranges(void) {
  merkle_tree t;
  /* the whole usable ring, and a tiny range with fewer tokens than leaves */
  int64_t ranges[][2] = {{INT64_MIN + 1, INT64_MAX}, {-10, 12}, {5, 5}, {0, 1023}};
  for (size_t r = 0; r < 4; r++) {
    CU_ASSERT_EQUAL_FATAL(merkle_init(&t, ranges[r][0], ranges[r][1], 6), 0);
    int64_t prev_hi = ranges[r][0] - 1;
    for (size_t i = 0; i < 64; i++) {
      int64_t lo, hi;
      merkle_leaf_range(&t, i, &lo, &hi);
      CU_ASSERT_EQUAL(lo, prev_hi + 1);       /* contiguous */
      if (lo <= hi) {
        CU_ASSERT_EQUAL(merkle_leaf_of(&t, lo), i);
        CU_ASSERT_EQUAL(merkle_leaf_of(&t, hi), i);
      }
      prev_hi = hi;
    }
    CU_ASSERT_EQUAL(prev_hi, ranges[r][1]);    /* covers the whole range */
    merkle_free(&t);
  }
  CU_ASSERT_EQUAL(merkle_init(&t, 5, 4, 3), CELLAR_EINVAL);
  CU_ASSERT_EQUAL(merkle_init(&t, 0, 4, MERKLE_MAX_DEPTH + 1), CELLAR_EINVAL);
}

static void test_build_known(void) {
  merkle_tree t;
  CU_ASSERT_EQUAL_FATAL(merkle_init(&t, 0, 1023, 2), 0);   /* leaves of 256 tokens */
  CU_ASSERT_EQUAL(merkle_root(&t), 0);
  CU_ASSERT_EQUAL(merkle_add(&t, 10, 1, 50), 0);
  CU_ASSERT_EQUAL(merkle_add(&t, 10, 2, 50), 0);           /* same token: allowed */
  CU_ASSERT_EQUAL(merkle_add(&t, 600, 3, 7), 0);
  CU_ASSERT_EQUAL(merkle_add(&t, 500, 3, 7), CELLAR_EINVAL);   /* out of order */
  CU_ASSERT_EQUAL(merkle_add(&t, 2000, 3, 7), CELLAR_EINVAL);  /* outside */
  CU_ASSERT_EQUAL(t.leaves[0].partitions, 2);
  CU_ASSERT_EQUAL(t.leaves[0].bytes, 100);
  CU_ASSERT_EQUAL(t.leaves[1].partitions, 0);
  CU_ASSERT_EQUAL(t.leaves[1].hash, 0);
  CU_ASSERT_EQUAL(t.leaves[2].partitions, 1);
  CU_ASSERT_NOT_EQUAL(t.leaves[0].hash, 0);
  CU_ASSERT_NOT_EQUAL(merkle_root(&t), 0);
  /* order matters within a leaf: digests 2 then 1 give another hash */
  merkle_tree u;
  CU_ASSERT_EQUAL_FATAL(merkle_init(&u, 0, 1023, 2), 0);
  merkle_add(&u, 10, 2, 50);
  merkle_add(&u, 10, 1, 50);
  merkle_add(&u, 600, 3, 7);
  CU_ASSERT_NOT_EQUAL(u.leaves[0].hash, t.leaves[0].hash);
  CU_ASSERT_EQUAL(u.leaves[2].hash, t.leaves[2].hash);
  merkle_free(&u);
  merkle_free(&t);
  CU_ASSERT_EQUAL(merkle_depth_for(0), 0);
  CU_ASSERT_EQUAL(merkle_depth_for(MERKLE_PARTITIONS_PER_LEAF), 0);
  CU_ASSERT_EQUAL(merkle_depth_for(MERKLE_PARTITIONS_PER_LEAF + 1), 1);
  CU_ASSERT_EQUAL(merkle_depth_for(MERKLE_PARTITIONS_PER_LEAF << 10), 10);
  CU_ASSERT_EQUAL(merkle_depth_for((MERKLE_PARTITIONS_PER_LEAF << 10) + 1), 11);
  CU_ASSERT_EQUAL(merkle_depth_for(UINT64_MAX), MERKLE_MAX_DEPTH);
}

static void test_identical_no_diff(void) {
  merkle_tree a, b;
  build(&a, -1000000, 1000000, 10, 3000, SIZE_MAX, 0);
  build(&b, -1000000, 1000000, 10, 3000, SIZE_MAX, 0);
  CU_ASSERT_EQUAL(merkle_root(&a), merkle_root(&b));
  size_t *d = NULL, n = 99;
  CU_ASSERT_EQUAL(merkle_diff(&a, &b, &d, &n, NULL), 0);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_PTR_NULL(d);
  merkle_free(&a);
  merkle_free(&b);
}

static void test_one_change_one_leaf(void) {
  merkle_tree a, b;
  int64_t lo = INT64_MIN + 1, hi = INT64_MAX;
  for (size_t changed = 0; changed < 3000; changed += 737) {
    build(&a, lo, hi, 12, 3000, SIZE_MAX, 0);
    build(&b, lo, hi, 12, 3000, changed, 424242);
    CU_ASSERT_NOT_EQUAL(merkle_root(&a), merkle_root(&b));
    size_t *d = NULL, n = 0;
    unsigned depth = 0;
    CU_ASSERT_EQUAL(merkle_diff(&a, &b, &d, &n, &depth), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(depth, 12);
    uint64_t step = ((uint64_t)hi - (uint64_t)lo) / 3001;
    int64_t tok = (int64_t)((uint64_t)lo + step * (changed + 1));
    CU_ASSERT_EQUAL(d[0], merkle_leaf_of(&a, tok));
    int64_t llo, lhi;
    merkle_leaf_range(&a, d[0], &llo, &lhi);
    CU_ASSERT(llo <= tok && tok <= lhi);
    free(d);
    /* compared at a shallower depth: still one leaf, the one holding tok */
    CU_ASSERT_EQUAL(merkle_truncate(&b, 5), 0);
    CU_ASSERT_EQUAL(merkle_diff(&a, &b, &d, &n, &depth), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(depth, 5);
    CU_ASSERT_EQUAL(d[0], merkle_leaf_of(&b, tok));
    free(d);
    merkle_free(&a);
    merkle_free(&b);
  }
  /* a missing partition is a difference too */
  build(&a, 0, 1000000, 8, 100, SIZE_MAX, 0);
  build(&b, 0, 1000000, 8, 99, SIZE_MAX, 0);
  size_t *d = NULL, n = 0;
  CU_ASSERT_EQUAL(merkle_diff(&a, &b, &d, &n, NULL), 0);
  CU_ASSERT(n >= 1);
  free(d);
  merkle_free(&b);
  CU_ASSERT_EQUAL_FATAL(merkle_init(&b, 0, 999, 8), 0);
  CU_ASSERT_EQUAL(merkle_diff(&a, &b, &d, &n, NULL), CELLAR_EINVAL);
  merkle_free(&a);
  merkle_free(&b);
}

static void test_truncate_matches_shallow_build(void) {
  merkle_tree a, b;
  build(&a, -5000, 5000, 9, 700, SIZE_MAX, 0);
  build(&b, -5000, 5000, 9, 700, SIZE_MAX, 0);
  CU_ASSERT_EQUAL(merkle_truncate(&b, 3), 0);
  CU_ASSERT_EQUAL(b.depth, 3);
  uint32_t parts = 0;
  for (size_t i = 0; i < 8; i++) parts += b.leaves[i].partitions;
  CU_ASSERT_EQUAL(parts, 700);
  CU_ASSERT_EQUAL(merkle_root(&a), merkle_root(&b));
  merkle_free(&a);
  merkle_free(&b);
}

static void test_encode_decode(void) {
  merkle_tree a, b;
  build(&a, -77, 1u << 30, 7, 500, 3, 99);
  size_t n = 0;
  uint8_t *p = merkle_encode(&a, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL_FATAL(merkle_decode(p, n, &b), 0);
  CU_ASSERT_EQUAL(b.lo, a.lo);
  CU_ASSERT_EQUAL(b.hi, a.hi);
  CU_ASSERT_EQUAL(b.depth, a.depth);
  CU_ASSERT_EQUAL(memcmp(a.leaves, b.leaves, sizeof *a.leaves << 7), 0);
  merkle_free(&b);
  /* every truncation and every single-bit flip is refused */
  merkle_tree c;
  for (size_t k = 0; k < n; k++)
    CU_ASSERT_EQUAL(merkle_decode(p, k, &c), CELLAR_EPROTO);
  for (size_t i = 0; i < n; i += 7) {
    p[i] ^= 0x10;
    CU_ASSERT_EQUAL(merkle_decode(p, n, &c), CELLAR_EPROTO);
    p[i] ^= 0x10;
  }
  CU_ASSERT_EQUAL(merkle_decode((const uint8_t *)"MRK1", 4, &c), CELLAR_EPROTO);
  free(p);
  merkle_free(&a);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
      {"leaf_ranges", test_leaf_ranges},
      {"build_known", test_build_known},
      {"identical_no_diff", test_identical_no_diff},
      {"one_change_one_leaf", test_one_change_one_leaf},
      {"truncate_matches_shallow_build", test_truncate_matches_shallow_build},
      {"encode_decode", test_encode_decode},
      {NULL, NULL}};
  return testutil_run("merkle", cases, argc, argv);
}
