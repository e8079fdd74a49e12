/*
** merkle: the Merkle tree anti-entropy repair compares replicas with.
** No I/O: the repair module feeds it (token, partition digest) pairs from a
** storage scan on a worker thread and ships the encoded tree.
**
** Shape. A tree covers the token range lo..hi (inclusive, lo <= hi: repair
** splits a wrapping ring range in two). Its 2^depth leaves cut that range
** into contiguous sub-ranges of (almost) equal width: with N = hi - lo + 1
** tokens and L leaves, leaf i holds the tokens t with
**
**     i = floor((t - lo) * L / N)        (128-bit arithmetic)
**
** so leaf i starts at lo + ceil(i * N / L). Halving L merges leaves 2i and
** 2i+1 into leaf i exactly, which is what lets a tree be built at a deep
** depth and cut down afterwards (merkle_truncate).
**
** Hashes. A leaf's hash is a chain over its partitions in token order:
** h = mix(h * K + mix(token ^ digest)), 0 for an empty leaf; an inner
** node is mix(left, right), 0 when both are 0. The partition digest is the
** caller's (repair uses storage_entries_digest of the partition's entries,
** leaving out those compaction may purge: docs/repair.md says why). Every
** leaf also counts its partitions and their bytes, so the node running the
** repair knows what streaming a leaf would cost without asking again.
**
** Only the leaves travel: the encoding (docs/repair.md) is
**   "MRK1" | depth u8 | lo i64 | hi i64 | per leaf: hash u64, partitions
**   u32, bytes u64 | check u64
** all little-endian, the check being a hash of everything before it; the
** decoder refuses a bad magic, depth, range, length or check.
*/
#ifndef CELLAR_MERKLE_H
#define CELLAR_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_MAX_DEPTH 16          /* 65,536 leaves, 1.3 MB built */
/* merkle_depth_for's target: leaves of 16..32 partitions. Repair ships
** every tree whole (20 bytes a leaf) and then the digests of every
** partition of the differing leaves (~30 bytes each): with 0.1% of
** partitions differing, ~30 per leaf minimises the sum (docs/repair.md). */
#define MERKLE_PARTITIONS_PER_LEAF 32

typedef struct merkle_leaf {
  uint64_t hash;
  uint32_t partitions;
  uint64_t bytes;
} merkle_leaf;

typedef struct merkle_tree {
  int64_t lo, hi;
  unsigned depth;
  merkle_leaf *leaves;         /* 2^depth, owned by the tree */
  int64_t last_token;          /* builder: the last token added */
  int has_last;
} merkle_tree;

/* Depth whose leaves hold about MERKLE_PARTITIONS_PER_LEAF partitions of
** an estimated count, within 0..MERKLE_MAX_DEPTH. */
unsigned merkle_depth_for(uint64_t partitions);

/* An empty tree over lo..hi. CELLAR_EINVAL for lo > hi or a depth above
** MERKLE_MAX_DEPTH, CELLAR_ENOMEM. Free with merkle_free. */
int merkle_init(merkle_tree *t, int64_t lo, int64_t hi, unsigned depth);
void merkle_free(merkle_tree *t);

/*
** Adds one partition: its token, its digest, its size in bytes. Tokens
** must come in ascending order (equal tokens are allowed, in the caller's
** stable order, e.g. key order): CELLAR_EINVAL for a token out of order or
** outside lo..hi.
*/
int merkle_add(merkle_tree *t, int64_t token, uint64_t digest,
               uint64_t bytes);

/* Folds the tree down to a smaller depth (a no-op when depth >= t->depth):
** each new leaf covers exactly the leaves it replaces and its hash is their
** inner node's. Trees are built at one depth (repair: MERKLE_MAX_DEPTH) and
** compared after folding to a common depth; a tree built directly at a
** small depth chains its partitions and is not comparable with a folded
** one. 0 or CELLAR_ENOMEM (t unchanged). */
int merkle_truncate(merkle_tree *t, unsigned depth);

/* Deepens a tree that holds no partition (all its leaves empty: the same
** tree at any depth) to depth; a no-op when depth <= t->depth. A replica
** with nothing in the range cuts its tree to depth 0, and comparing the
** others' trees at that depth would make a single leaf of the whole range
** (repair_plan_trees deepens it instead). 0, CELLAR_EINVAL (a partition
** in t, or depth above MERKLE_MAX_DEPTH), CELLAR_ENOMEM (t unchanged). */
int merkle_deepen_empty(merkle_tree *t, unsigned depth);

/* The root hash (0: no partition at all). */
uint64_t merkle_root(const merkle_tree *t);

/* The token range of leaf i: *lo..*hi (inclusive; an empty range, where
** *lo > *hi, only when the tree has more leaves than tokens). */
void merkle_leaf_range(const merkle_tree *t, size_t i, int64_t *lo,
                       int64_t *hi);

/* Which leaf holds token tok (lo <= tok <= hi). */
size_t merkle_leaf_of(const merkle_tree *t, int64_t tok);

/* Encodes t: returns malloc'd bytes (*len set), caller frees; NULL when
** out of memory. */
uint8_t *merkle_encode(const merkle_tree *t, size_t *len);

/* Decodes p[0..n) into *t (free with merkle_free). 0, or CELLAR_EPROTO for
** anything but an exact encoding, CELLAR_ENOMEM. */
int merkle_decode(const uint8_t *p, size_t n, merkle_tree *t);

/*
** The leaves where a and b differ (hash, in practice), as indexes into
** out (malloc'd, caller frees; NULL when there is none), *n how many. The
** trees must cover the same range; the deeper one is compared at the
** shallower one's depth (leaf indexes are then at that depth, which
** *depth returns). CELLAR_EINVAL for different ranges, CELLAR_ENOMEM.
*/
int merkle_diff(const merkle_tree *a, const merkle_tree *b, size_t **out,
                size_t *n, unsigned *depth);

#endif
