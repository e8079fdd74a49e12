/*
** merkle: Merkle trees over token ranges (see merkle.h).
**
** Invariants:
**   1. leaves has exactly 2^depth entries; leaf i holds the tokens t with
**      floor((t - lo) * 2^depth / N) == i (N = hi - lo + 1 tokens).
**   2. A leaf's hash depends only on its partitions, in order, so two
**      replicas holding the same partitions get the same tree whatever
**      their storage layout.
**   3. Truncating is the same as building shallower: the parent of leaves
**      2i and 2i+1 covers exactly their two ranges, and its hash is
**      combine(h(2i), h(2i+1)) in both cases. Hence a leaf hash at depth d
**      is NOT a chain over its partitions but the combination of its
**      subtree at MERKLE build depth: trees built at different depths are
**      only compared after truncation to one depth (merkle_diff does it).
*/
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "merkle.h"

#define MAGIC "MRK1"
#define HEAD_BYTES (4 + 1 + 8 + 8)
#define LEAF_BYTES (8 + 4 + 8)

/* MurmurHash3's 64-bit finaliser: every input bit reaches every output bit. */
static uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static uint64_t combine(uint64_t l, uint64_t r) {
  if (l == 0 && r == 0) return 0;   /* empty subtrees stay 0 */
  return mix(l * 0x9e3779b97f4a7c15ULL + mix(r ^ 0x5bd1e995u));
}

unsigned merkle_depth_for(uint64_t partitions) {
  unsigned d = 0;
  while (d < MERKLE_MAX_DEPTH &&
         ((uint64_t)1 << d) * MERKLE_PARTITIONS_PER_LEAF < partitions)
    d++;
  return d;
}

int merkle_init(merkle_tree *t, int64_t lo, int64_t hi, unsigned depth) {
  memset(t, 0, sizeof *t);
  if (lo > hi || depth > MERKLE_MAX_DEPTH) return CELLAR_EINVAL;
  t->leaves = calloc((size_t)1 << depth, sizeof *t->leaves);
  if (t->leaves == NULL) return CELLAR_ENOMEM;
  t->lo = lo;
  t->hi = hi;
  t->depth = depth;
  return 0;
}

void merkle_free(merkle_tree *t) {
  if (t == NULL) return;
  free(t->leaves);
  t->leaves = NULL;
}

static unsigned __int128 span(const merkle_tree *t) {
  return (unsigned __int128)((uint64_t)t->hi - (uint64_t)t->lo) + 1;
}

size_t merkle_leaf_of(const merkle_tree *t, int64_t tok) {
  unsigned __int128 off = (uint64_t)tok - (uint64_t)t->lo;
  return (size_t)((off << t->depth) / span(t));
}

/* Offset from lo of leaf i's first token: ceil(i * N / L). */
static unsigned __int128 leaf_start(const merkle_tree *t, size_t i) {
  unsigned __int128 x = (unsigned __int128)i * span(t);
  unsigned __int128 l = (unsigned __int128)1 << t->depth;
  return (x + l - 1) >> t->depth;
}

void merkle_leaf_range(const merkle_tree *t, size_t i, int64_t *lo, int64_t *hi) {
  unsigned __int128 a = leaf_start(t, i), b = leaf_start(t, i + 1);
  *lo = (int64_t)((uint64_t)t->lo + (uint64_t)a);
  *hi = (int64_t)((uint64_t)t->lo + (uint64_t)b - 1);
}

int merkle_add(merkle_tree *t, int64_t token, uint64_t digest, uint64_t bytes) {
  if (token < t->lo || token > t->hi || (t->has_last && token < t->last_token))
    return CELLAR_EINVAL;
  t->has_last = 1;
  t->last_token = token;
  merkle_leaf *l = &t->leaves[merkle_leaf_of(t, token)];
  l->hash = mix(l->hash * 0x100000001b3ULL + mix((uint64_t)token ^ digest));
  if (l->hash == 0) l->hash = 1;    /* 0 means empty */
  l->partitions++;
  l->bytes += bytes;
  return 0;
}

int merkle_truncate(merkle_tree *t, unsigned depth) {
  if (depth >= t->depth) return 0;
  size_t n = (size_t)1 << depth;
  merkle_leaf *nl = calloc(n, sizeof *nl);
  if (nl == NULL) return CELLAR_ENOMEM;
  /* fold one level at a time (invariant 3) */
  size_t have = (size_t)1 << t->depth;
  merkle_leaf *cur = t->leaves;
  while (have > n) {
    for (size_t i = 0; i < have / 2; i++) {
      merkle_leaf a = cur[2 * i], b = cur[2 * i + 1];
      cur[i].hash = combine(a.hash, b.hash);
      cur[i].partitions = a.partitions + b.partitions;
      cur[i].bytes = a.bytes + b.bytes;
    }
    have /= 2;
  }
  memcpy(nl, cur, n * sizeof *nl);
  free(t->leaves);
  t->leaves = nl;
  t->depth = depth;
  return 0;
}

int merkle_deepen_empty(merkle_tree *t, unsigned depth) {
  if (depth <= t->depth) return 0;
  if (depth > MERKLE_MAX_DEPTH) return CELLAR_EINVAL;
  for (size_t i = 0; i < ((size_t)1 << t->depth); i++)
    if (t->leaves[i].partitions || t->leaves[i].hash) return CELLAR_EINVAL;
  merkle_leaf *nl = calloc((size_t)1 << depth, sizeof *nl);
  if (nl == NULL) return CELLAR_ENOMEM;
  free(t->leaves);
  t->leaves = nl;
  t->depth = depth;
  return 0;
}

uint64_t merkle_root(const merkle_tree *t) {
  merkle_tree c = *t;
  c.leaves = malloc(((size_t)1 << t->depth) * sizeof *c.leaves);
  if (c.leaves == NULL) return 0;
  memcpy(c.leaves, t->leaves, ((size_t)1 << t->depth) * sizeof *c.leaves);
  uint64_t r = merkle_truncate(&c, 0) == 0 ? c.leaves[0].hash : 0;
  merkle_free(&c);
  return r;
}

/* ------------------------------------------------------------ encoding */

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

/* The check: a chained hash of the bytes, 8 at a time. */
static uint64_t check(const uint8_t *p, size_t n) {
  uint64_t h = mix(n + 0x4d524b31u);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) h = mix(h ^ get64(p + i)) + 0x9e3779b97f4a7c15ULL;
  uint64_t tail = 0;
  for (size_t k = 0; i + k < n; k++) tail |= (uint64_t)p[i + k] << (8 * k);
  return mix(h ^ tail ^ (n << 56));
}

uint8_t *merkle_encode(const merkle_tree *t, size_t *len) {
  size_t nl = (size_t)1 << t->depth;
  size_t n = HEAD_BYTES + nl * LEAF_BYTES + 8;
  uint8_t *p = malloc(n), *q = p;
  if (p == NULL) return NULL;
  memcpy(q, MAGIC, 4);
  q[4] = (uint8_t)t->depth;
  put64(q + 5, (uint64_t)t->lo);
  put64(q + 13, (uint64_t)t->hi);
  q += HEAD_BYTES;
  for (size_t i = 0; i < nl; i++, q += LEAF_BYTES) {
    put64(q, t->leaves[i].hash);
    put32(q + 8, t->leaves[i].partitions);
    put64(q + 12, t->leaves[i].bytes);
  }
  put64(q, check(p, n - 8));
  *len = n;
  return p;
}

int merkle_decode(const uint8_t *p, size_t n, merkle_tree *t) {
  memset(t, 0, sizeof *t);
  if (n < HEAD_BYTES + LEAF_BYTES + 8 || memcmp(p, MAGIC, 4) || p[4] > MERKLE_MAX_DEPTH)
    return CELLAR_EPROTO;
  unsigned depth = p[4];
  size_t nl = (size_t)1 << depth;
  if (n != HEAD_BYTES + nl * LEAF_BYTES + 8 || get64(p + n - 8) != check(p, n - 8))
    return CELLAR_EPROTO;
  int64_t lo = (int64_t)get64(p + 5), hi = (int64_t)get64(p + 13);
  if (lo > hi) return CELLAR_EPROTO;
  int rc = merkle_init(t, lo, hi, depth);
  if (rc) return rc;
  const uint8_t *q = p + HEAD_BYTES;
  for (size_t i = 0; i < nl; i++, q += LEAF_BYTES) {
    t->leaves[i].hash = get64(q);
    t->leaves[i].partitions = get32(q + 8);
    t->leaves[i].bytes = get64(q + 12);
    /* an empty leaf has hash 0 and nothing in it: anything else is not
    ** what merkle_add builds */
    if ((t->leaves[i].hash == 0) != (t->leaves[i].partitions == 0)) {
      merkle_free(t);
      return CELLAR_EPROTO;
    }
  }
  return 0;
}

/* ----------------------------------------------------------------- diff */

static int copy_at(const merkle_tree *t, unsigned depth, merkle_tree *out) {
  *out = *t;
  size_t nl = (size_t)1 << t->depth;
  out->leaves = malloc(nl * sizeof *out->leaves);
  if (out->leaves == NULL) return CELLAR_ENOMEM;
  memcpy(out->leaves, t->leaves, nl * sizeof *out->leaves);
  int rc = merkle_truncate(out, depth);
  if (rc) merkle_free(out);
  return rc;
}

int merkle_diff(const merkle_tree *a, const merkle_tree *b, size_t **out, size_t *n,
                unsigned *depth) {
  *out = NULL;
  *n = 0;
  if (a->lo != b->lo || a->hi != b->hi) return CELLAR_EINVAL;
  unsigned d = a->depth < b->depth ? a->depth : b->depth;
  if (depth) *depth = d;
  merkle_tree x, y;
  int rc = copy_at(a, d, &x);
  if (rc) return rc;
  rc = copy_at(b, d, &y);
  if (rc) {
    merkle_free(&x);
    return rc;
  }
  size_t nl = (size_t)1 << d, k = 0;
  size_t *idx = NULL;
  for (size_t i = 0; i < nl; i++)
    if (x.leaves[i].hash != y.leaves[i].hash) k++;
  if (k) {
    idx = malloc(k * sizeof *idx);
    if (idx == NULL) rc = CELLAR_ENOMEM;
    else {
      k = 0;
      for (size_t i = 0; i < nl; i++)
        if (x.leaves[i].hash != y.leaves[i].hash) idx[k++] = i;
    }
  }
  merkle_free(&x);
  merkle_free(&y);
  if (rc) return rc;
  *out = idx;
  *n = k;
  return 0;
}
