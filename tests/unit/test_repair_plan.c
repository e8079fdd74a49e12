/* Unit tests of repair's comparison (repair_plan_trees, repair_plan_parts):
** which replica pulls what from whom, without sockets or storage. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "merkle.h"
#include "repair.h"
#include "testutil.h"

/* A digest list entry: token t, id = t's 8 bytes, digest d. */
static uint8_t ids[64][8];
static wire_part_digest part(int slot, int64_t t, uint64_t d, uint64_t bytes) {
  for (int i = 0; i < 8; i++) ids[slot][i] = (uint8_t)((uint64_t)t >> (56 - 8 * i));
  return (wire_part_digest){t, {ids[slot], 8}, d, bytes, 1};
}

static int has_pull(const repair_plan *p, size_t target, size_t source, int64_t lo, int64_t hi) {
  for (size_t i = 0; i < p->npulls; i++)
    if (p->pulls[i].target == target && p->pulls[i].source == source && p->pulls[i].lo == lo &&
        p->pulls[i].hi == hi)
      return 1;
  return 0;
}

static void test_parts_agree(void) {
  wire_part_digest a[2] = {part(0, 10, 1, 5), part(1, 20, 2, 5)};
  wire_part_digest b[2] = {part(2, 10, 1, 5), part(3, 20, 2, 5)};
  const wire_part_digest *l[2] = {a, b};
  size_t n[2] = {2, 2};
  repair_plan p;
  CU_ASSERT_EQUAL_FATAL(repair_plan_parts(l, n, 2, 0, &p), 0);
  CU_ASSERT_EQUAL(p.npulls, 0);
  CU_ASSERT_EQUAL(p.partitions, 0);
  CU_ASSERT_EQUAL(p.bytes, 0);
  repair_plan_free(&p);
  CU_ASSERT_EQUAL(repair_plan_parts(l, n, 1, 0, &p), CELLAR_EINVAL);
}

static void test_parts_missing_and_stale(void) {
  /* token 10: replica 2 lacks it; token 20: replica 2 has an old version;
  ** token 30: all three differ; token 40: the same everywhere */
  wire_part_digest r0[4] = {part(0, 10, 1, 100), part(1, 20, 2, 100), part(2, 30, 3, 100),
                            part(3, 40, 4, 100)};
  wire_part_digest r1[4] = {part(4, 10, 1, 100), part(5, 20, 2, 100), part(6, 30, 33, 100),
                            part(7, 40, 4, 100)};
  wire_part_digest r2[3] = {part(8, 20, 99, 70), part(9, 30, 333, 100), part(10, 40, 4, 100)};
  const wire_part_digest *l[3] = {r0, r1, r2};
  size_t n[3] = {4, 4, 3};
  repair_plan p;
  CU_ASSERT_EQUAL_FATAL(repair_plan_parts(l, n, 3, 0, &p), 0);
  CU_ASSERT_EQUAL(p.partitions, 3);
  /* token 10: only 2 pulls, from replica 0 (the first holder) */
  CU_ASSERT(has_pull(&p, 2, 0, 10, 10) || has_pull(&p, 2, 0, 10, 20) || has_pull(&p, 2, 0, 10, 30));
  CU_ASSERT(!has_pull(&p, 2, 1, 10, 10));
  /* token 20: 2 pulls the new one once; 0 and 1 pull 2's old one */
  CU_ASSERT(has_pull(&p, 0, 2, 20, 20) || has_pull(&p, 0, 2, 20, 30));
  CU_ASSERT(has_pull(&p, 1, 2, 20, 20) || has_pull(&p, 1, 2, 20, 30));
  /* bytes: 10 -> 100; 20 -> 100 + 70 + 70; 30 -> each of 3 pulls 2 others */
  CU_ASSERT_EQUAL(p.bytes, 100 + 240 + 6 * 100);
  uint64_t sum = 0;   /* every pull knows what it moves */
  for (size_t i = 0; i < p.npulls; i++) sum += p.pulls[i].bytes;
  CU_ASSERT_EQUAL(sum, p.bytes);
  CU_ASSERT_EQUAL(p.rows, 1 + 3 + 6);
  /* nobody pulls token 40 */
  for (size_t i = 0; i < p.npulls; i++) CU_ASSERT(p.pulls[i].hi < 40);
  /* contiguous tokens from one source merged: replica 2 pulls 10 and then
  ** its pulls continue from replica 0 */
  size_t to2from0 = 0;
  for (size_t i = 0; i < p.npulls; i++) to2from0 += p.pulls[i].target == 2 && p.pulls[i].source == 0;
  CU_ASSERT(to2from0 >= 1);
  repair_plan_free(&p);
}

static void test_parts_merge_contiguous(void) {
  /* replica 1 lacks tokens 5, 6, 7 and 9: two pulls from replica 0 */
  wire_part_digest a[4] = {part(0, 5, 1, 1), part(1, 6, 1, 1), part(2, 7, 1, 1), part(3, 9, 1, 1)};
  const wire_part_digest *l[2] = {a, NULL};
  size_t n[2] = {4, 0};
  repair_plan p;
  CU_ASSERT_EQUAL_FATAL(repair_plan_parts(l, n, 2, 0, &p), 0);
  CU_ASSERT_EQUAL(p.npulls, 2);
  CU_ASSERT(has_pull(&p, 1, 0, 5, 7));
  CU_ASSERT(has_pull(&p, 1, 0, 9, 9));
  CU_ASSERT_EQUAL(p.partitions, 4);
  repair_plan_free(&p);
}

static void build(merkle_tree *t, int skip, uint64_t bump) {
  CU_ASSERT_EQUAL_FATAL(merkle_init(t, 0, 999999, MERKLE_MAX_DEPTH), 0);
  for (int i = 0; i < 2000; i++) {
    if (i == skip) continue;
    CU_ASSERT_EQUAL(merkle_add(t, i * 500, (uint64_t)i + (i == 1000 ? bump : 0), 10), 0);
  }
  CU_ASSERT_EQUAL(merkle_truncate(t, merkle_depth_for(2000 - (skip >= 0))), 0);
}

static void test_trees(void) {
  merkle_tree a, b, c;
  build(&a, -1, 0);
  build(&b, -1, 0);
  build(&c, 77, 5);   /* lacks partition 77, another version of 1000 */
  merkle_tree *t[3] = {&a, &b, &c};
  repair_plan p;
  /* agreeing trees: nothing */
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 2, REPAIR_NARROW_MAX, 0, &p), 0);
  CU_ASSERT_EQUAL(p.mismatches, 0);
  CU_ASSERT_EQUAL(p.nnarrow, 0);
  CU_ASSERT_EQUAL(p.npulls, 0);
  repair_plan_free(&p);
  /* two leaves differ: narrowed to their two ranges */
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 3, REPAIR_NARROW_MAX, 0, &p), 0);
  CU_ASSERT_EQUAL(p.mismatches, 2);
  CU_ASSERT_EQUAL_FATAL(p.nnarrow, 2);
  CU_ASSERT(p.narrow[0][0] <= 77 * 500 && 77 * 500 <= p.narrow[0][1]);
  CU_ASSERT(p.narrow[1][0] <= 1000 * 500 && 1000 * 500 <= p.narrow[1][1]);
  CU_ASSERT_EQUAL(p.npulls, 0);
  repair_plan_free(&p);
  /* too many to list: whole leaves, c pulls from a, a and b from c */
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 3, 0, 0, &p), 0);
  CU_ASSERT_EQUAL(p.mismatches, 2);
  CU_ASSERT_EQUAL(p.nnarrow, 0);
  CU_ASSERT_EQUAL(p.npulls, 6);
  size_t from_c = 0, to_c = 0;
  for (size_t i = 0; i < p.npulls; i++) {
    from_c += p.pulls[i].source == 2;
    to_c += p.pulls[i].target == 2 && p.pulls[i].source == 0;
  }
  CU_ASSERT_EQUAL(from_c, 4);
  CU_ASSERT_EQUAL(to_c, 2);
  CU_ASSERT(p.bytes > 0);
  repair_plan_free(&p);
  /* different ranges are refused */
  merkle_tree d;
  CU_ASSERT_EQUAL_FATAL(merkle_init(&d, 0, 5, 0), 0);
  merkle_tree *u[2] = {&a, &d};
  CU_ASSERT_EQUAL(repair_plan_trees(u, 2, REPAIR_NARROW_MAX, 0, &p), CELLAR_EINVAL);
  merkle_free(&a);
  merkle_free(&b);
  merkle_free(&c);
  merkle_free(&d);
}

/* Pulls are capped at pull_max bytes: contiguous tokens merge only up to
** it (review finding 1: one pull is never cut by the stream throttle). */
static void test_parts_pull_max(void) {
  wire_part_digest a[4] = {part(0, 5, 1, 4), part(1, 6, 1, 4), part(2, 7, 1, 4), part(3, 8, 1, 4)};
  const wire_part_digest *l[2] = {a, NULL};
  size_t n[2] = {4, 0};
  repair_plan p;
  CU_ASSERT_EQUAL_FATAL(repair_plan_parts(l, n, 2, 8, &p), 0);
  CU_ASSERT_EQUAL(p.npulls, 2);
  CU_ASSERT(has_pull(&p, 1, 0, 5, 6));
  CU_ASSERT(has_pull(&p, 1, 0, 7, 8));
  CU_ASSERT_EQUAL(p.bytes, 16);
  CU_ASSERT_EQUAL(p.rows, 4);
  repair_plan_free(&p);
}

/* The pulls of target 1 from 0 tile lo..hi in order, each at most max
** bytes (but one of a single token); returns their bytes. */
static uint64_t check_tiling(const repair_plan *p, int64_t lo, int64_t hi, uint64_t max) {
  int64_t next = lo;
  uint64_t bytes = 0;
  for (size_t i = 0; i < p->npulls; i++) {
    const repair_pull *u = &p->pulls[i];
    CU_ASSERT_EQUAL(u->target, 1);
    CU_ASSERT_EQUAL(u->source, 0);
    CU_ASSERT_EQUAL(u->lo, next);
    CU_ASSERT(u->bytes <= max || u->lo == u->hi);
    next = u->hi + 1;
    bytes += u->bytes;
  }
  CU_ASSERT_EQUAL(next - 1, hi);
  return bytes;
}

/* A wiped replica streams the leaves whole: in pulls of at most pull_max,
** leaves merged up to it and a leaf larger than it cut by tokens. */
static void test_trees_pull_max(void) {
  merkle_tree a, w;
  build(&a, -1, 0);   /* 2000 partitions of 10 bytes, 64 leaves */
  CU_ASSERT_EQUAL_FATAL(merkle_init(&w, 0, 999999, 0), 0);
  merkle_tree *t[2] = {&a, &w};
  repair_plan p;
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 2, 0, 1000, &p), 0);
  CU_ASSERT(p.npulls >= 20);
  CU_ASSERT_EQUAL(check_tiling(&p, 0, 999999, 1000), 20000);
  CU_ASSERT_EQUAL(p.bytes, 20000);
  CU_ASSERT_EQUAL(p.rows, 2000);
  repair_plan_free(&p);
  /* one leaf of 20,000 bytes: cut into 20 pulls of 1,000 */
  merkle_free(&a);
  merkle_free(&w);
  build(&a, -1, 0);
  CU_ASSERT_EQUAL_FATAL(merkle_truncate(&a, 0), 0);
  CU_ASSERT_EQUAL_FATAL(merkle_init(&w, 0, 999999, 0), 0);
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 2, 0, 1000, &p), 0);
  CU_ASSERT_EQUAL(p.npulls, 20);
  CU_ASSERT_EQUAL(check_tiling(&p, 0, 999999, 1000), 20000);
  repair_plan_free(&p);
  /* no limit: one pull */
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 2, 0, 0, &p), 0);
  CU_ASSERT_EQUAL(p.npulls, 1);
  repair_plan_free(&p);
  merkle_free(&a);
  merkle_free(&w);
}

/* Review finding 2: a wiped replica's empty tree (depth 0) must not make
** the others compare at one leaf. Two healthy replicas that differ in one
** partition exchange that leaf only, and the wiped one pulls everything
** once: about the data's size, not four whole-range transfers. */
static void test_trees_wiped_replica(void) {
  merkle_tree a, b, w;
  build(&a, -1, 0);
  build(&b, -1, 5);   /* another version of partition 1000 */
  CU_ASSERT_EQUAL_FATAL(merkle_init(&w, 0, 999999, MERKLE_MAX_DEPTH), 0);
  CU_ASSERT_EQUAL_FATAL(merkle_truncate(&w, merkle_depth_for(0)), 0);
  CU_ASSERT_EQUAL(w.depth, 0);
  merkle_tree *t[3] = {&a, &b, &w};
  uint8_t shallow[3];
  unsigned depth = 99;
  CU_ASSERT_EQUAL(repair_trees_shallow(t, 3, shallow, &depth), 0);   /* empty: not shallow */
  CU_ASSERT_EQUAL(depth, a.depth);
  repair_plan p;
  CU_ASSERT_EQUAL_FATAL(repair_plan_trees(t, 3, 0, 0, &p), 0);
  CU_ASSERT_EQUAL(w.depth, a.depth);
  CU_ASSERT_EQUAL(p.mismatches, (size_t)1 << a.depth);
  uint64_t between = 0;   /* what the healthy two exchange */
  for (size_t i = 0; i < p.npulls; i++)
    if (p.pulls[i].target != 2) between += p.pulls[i].bytes;
  CU_ASSERT(between <= 2 * 64 * 10);   /* one leaf each way */
  CU_ASSERT(p.bytes <= 20000 + 2 * 64 * 10 + 64 * 10);
  repair_plan_free(&p);
  merkle_free(&a);
  merkle_free(&b);
  merkle_free(&w);
}

/* A replica holding far fewer partitions cuts its tree much shallower: it
** is asked again for a deeper one; one level shallower is compared as is. */
static void test_trees_shallow(void) {
  merkle_tree a, s, h, e;
  build(&a, -1, 0);                                      /* depth 6 */
  CU_ASSERT_EQUAL_FATAL(merkle_init(&s, 0, 999999, MERKLE_MAX_DEPTH), 0);
  for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(merkle_add(&s, i * 500, (uint64_t)i, 10), 0);
  CU_ASSERT_EQUAL_FATAL(merkle_truncate(&s, merkle_depth_for(10)), 0);   /* depth 0 */
  build(&h, -1, 0);
  CU_ASSERT_EQUAL_FATAL(merkle_truncate(&h, a.depth - 1), 0);
  CU_ASSERT_EQUAL_FATAL(merkle_init(&e, 0, 999999, 0), 0);
  merkle_tree *t[4] = {&a, &s, &h, &e};
  uint8_t shallow[4];
  unsigned depth = 0;
  CU_ASSERT_EQUAL(repair_trees_shallow(t, 4, shallow, &depth), 1);
  CU_ASSERT_EQUAL(depth, a.depth);
  CU_ASSERT(!shallow[0] && shallow[1] && !shallow[2] && !shallow[3]);
  merkle_free(&a);
  merkle_free(&s);
  merkle_free(&h);
  merkle_free(&e);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
      {"parts_agree", test_parts_agree},
      {"parts_missing_and_stale", test_parts_missing_and_stale},
      {"parts_merge_contiguous", test_parts_merge_contiguous},
      {"trees", test_trees},
      {"parts_pull_max", test_parts_pull_max},
      {"trees_pull_max", test_trees_pull_max},
      {"trees_wiped_replica", test_trees_wiped_replica},
      {"trees_shallow", test_trees_shallow},
      {NULL, NULL}};
  return testutil_run("repair_plan", cases, argc, argv);
}
