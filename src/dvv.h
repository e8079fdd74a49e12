/*
** dvv: a dotted version vector set (Preguiça, Baquero, Almeida et al.,
** "Dotted Version Vectors"; the DVVSet form used by Riak) for one versioned
** unit: one cell, i.e. one column of one row (docs/versions.md says why).
** Pure data structure: no I/O, no clock, no randomness, no global state.
**
** Design notes
**
** A set holds
**   - a causal history: a version vector, one entry (actor, counter) per
**     actor that ever coordinated a write of this cell, sorted by actor.
**     The history is every dot (actor, c) with 1 <= c <= counter;
**   - siblings: the concurrent versions still alive, each tagged with the
**     dot of the write that made it, sorted by (actor ascending, counter
**     descending). A sibling is a value or a delete marker (tombstone)
**     with the write's timestamp, so deletes are versioned like writes.
**
** Invariants (checked by dvv_decode, kept by every operation):
**   1. Every sibling's dot is in the history: counter <= clock[actor].
**   2. Dots are unique in a set; a dot names exactly one write, because
**      only the actor itself mints its dots, one past the highest it has
**      seen. Actors carry an incarnation: a node that lost its data comes
**      back under a new incarnation, so it can never mint a dot it minted
**      before (Riak's KV679 resurrection/loss bug).
**   3. A sibling is dropped only when a write whose context covered its
**      dot was applied (dvv_event here, or by merge with a set that has
**      the dot in its history but not among its siblings), or when
**      dvv_purge removes a delete marker / expired value after gc_grace.
**   4. dvv_merge is commutative, associative and idempotent on sets that
**      respect 1-2, so every replica, whatever order it receives writes,
**      hints, read repairs and repair streams in, ends with the same set.
**      Two sets with the same dot but different payloads (only possible
**      after a dot collision, i.e. a broken invariant 2) still merge
**      deterministically: the greater payload by dvv_sib_lww_cmp wins.
**
** Operation flow of one write (the coordinator is a replica of the key):
**
**   client: read --> values + ctx = dvv_join(stored) (dvv_ctx_encode)
**   client: write(value, ctx)  --> coordinator replica
**   coordinator: dvv_event(stored, ctx, self, value)     new dot (self, c)
**   coordinator: sends the resulting set to the other replicas
**   replica:     dvv_merge(stored, received)
**   read repair, hint replay, repair streams: dvv_merge, nothing else.
**
** Ownership: a dvv and a dvv_vv own their arrays and sibling values;
** dvv_close / dvv_vv_close free them. Functions that return a pointer into
** a set return it borrowed, valid until the set is next modified or closed.
** On an error return (negative CELLAR_* code) the output set is left as it
** was (operations) or empty (decoders).
*/
#ifndef CELLAR_DVV_H
#define CELLAR_DVV_H

#include <stddef.h>
#include <stdint.h>
#include "types.h"

#define DVV_FORMAT_VERSION 1      /* first byte of an encoded set */
#define DVV_CTX_FORMAT_VERSION 1  /* first byte of an encoded context */

/* Decoder limits: bigger inputs are refused with CELLAR_ETOOBIG. Actors are
** bounded by the replica nodes that ever coordinated the cell (replica
** count times incarnations and ring moves); 64 is far above that. Siblings
** are bounded by the table's hard limit (default DVV_SIBLINGS_LIMIT, at
** most DVV_MAX_SIBLINGS) at write time; merges never refuse. */
#define DVV_MAX_ACTORS 64
#define DVV_MAX_SIBLINGS 4096
#define DVV_MAX_COUNTER (UINT64_C(1) << 62)

/* Defaults of the per-table sibling thresholds (docs/versions.md). */
#define DVV_SIBLINGS_WARN 25
#define DVV_SIBLINGS_LIMIT 100

/* An actor: a node's 64-bit id (dvv_actor_of) and its incarnation. */
typedef struct dvv_actor {
  uint64_t node;
  uint32_t inc;
} dvv_actor;

typedef struct dvv_dot {
  dvv_actor actor;
  uint64_t counter;              /* >= 1 */
} dvv_dot;

typedef struct dvv_entry {
  dvv_actor actor;
  uint64_t counter;              /* >= 1 */
} dvv_entry;

/* A version vector: the causal history of a set, and the client context. */
typedef struct dvv_vv {
  size_t n, cap;
  dvv_entry *e;                  /* owned; sorted by actor, unique */
} dvv_vv;

/* One sibling. */
typedef struct dvv_sib {
  dvv_dot dot;
  int64_t ts;                    /* write timestamp, microseconds */
  uint8_t tombstone;             /* 1: a delete marker (no value) */
  uint32_t time;                 /* tombstone: local deletion time;
                                    value: expires_at, 0 = never (s) */
  uint8_t *value;                /* owned by the set */
  size_t nvalue;
} dvv_sib;

typedef struct dvv {
  dvv_vv clock;
  size_t nsib, capsib;
  dvv_sib *sib;                  /* owned; sorted (actor, counter desc) */
} dvv;

/* What a client write brings: a value (tombstone 0, time = expires_at) or
** a delete (tombstone 1, time = deletion time, no value). value is
** borrowed for the call. */
typedef struct dvv_write {
  int64_t ts;
  uint8_t tombstone;
  uint32_t time;
  cbytes value;
} dvv_write;

typedef enum dvv_order {
  DVV_EQUAL = 0,
  DVV_LESS = 1,                  /* a's history is strictly inside b's */
  DVV_GREATER = 2,               /* b's history is strictly inside a's */
  DVV_CONCURRENT = 3
} dvv_order;

/* ------------------------------------------------------------ actors */

/* The actor of a node: node = a 64-bit digest of host_id (MurmurHash3,
** the token function, so identical on every platform). */
dvv_actor dvv_actor_of(const char *host_id, uint32_t incarnation);
int dvv_actor_cmp(dvv_actor a, dvv_actor b);

/* ---------------------------------------------------- version vectors */

void dvv_vv_init(dvv_vv *v);
void dvv_vv_close(dvv_vv *v);
/* The counter of actor in v, 0 when absent. */
uint64_t dvv_vv_get(const dvv_vv *v, dvv_actor actor);
/* Raises actor's counter in v to at least counter. 0 or CELLAR_ENOMEM. */
int dvv_vv_raise(dvv_vv *v, dvv_actor actor, uint64_t counter);
/* 1 when the dot is in the history v. */
int dvv_vv_covers(const dvv_vv *v, dvv_dot d);
dvv_order dvv_vv_compare(const dvv_vv *a, const dvv_vv *b);
int dvv_vv_equal(const dvv_vv *a, const dvv_vv *b);

/* ------------------------------------------------------------- sets */

void dvv_init(dvv *s);
void dvv_close(dvv *s);
/* dst (initialised, its old content freed) becomes a deep copy of src.
** 0 or CELLAR_ENOMEM (dst then empty). */
int dvv_copy(dvv *dst, const dvv *src);

/* The set of a first write: s (initialised, emptied first) gets one
** sibling with the dot (self, 1). 0, CELLAR_EINVAL (bad write),
** CELLAR_ENOMEM. */
int dvv_new(dvv *s, dvv_actor self, const dvv_write *w);

/* The causal context a read hands to the client: the set's history.
** out (initialised) is overwritten. 0 or CELLAR_ENOMEM. */
int dvv_join(const dvv *s, dvv_vv *out);

/* The coordinator applies a client write to its stored set s: every
** sibling whose dot ctx covers is superseded, the others (concurrent with
** the write) stay as siblings, the history becomes s ∪ ctx, and the write
** is added with the dot (self, max(s[self], ctx[self]) + 1), given back in
** *dot (may be NULL). ctx NULL or empty: a blind write, concurrent with
** everything stored. limit > 0: when the set would then hold more than
** limit siblings, nothing changes and CELLAR_ETOOBIG is returned (the
** caller refuses the write: "too many siblings, write with a context").
** Errors: CELLAR_EINVAL (tombstone with a value, value above
** CELLAR_MAX_VALUE_BYTES, expiry on a tombstone...), CELLAR_ETOOBIG
** (limit, or counter past DVV_MAX_COUNTER), CELLAR_ENOMEM. */
int dvv_event(dvv *s, const dvv_vv *ctx, dvv_actor self, const dvv_write *w,
              size_t limit, dvv_dot *dot);

/* Siblings s would hold after dvv_event with ctx (for the warning
** threshold: the caller counts SIBLINGS_WARNED and logs). */
size_t dvv_event_siblings(const dvv *s, const dvv_vv *ctx);

/* a becomes the merge (sync) of a and b: histories joined; a sibling
** survives when both sets hold it, or when the other set's history does
** not cover its dot. b is borrowed. 0 or CELLAR_ENOMEM (a unchanged). */
int dvv_merge(dvv *a, const dvv *b);

/* Causal order of the histories of a and b. */
dvv_order dvv_compare(const dvv *a, const dvv *b);
/* 1 when a and b are the same set (history and siblings, payloads too). */
int dvv_equal(const dvv *a, const dvv *b);

/* Siblings, delete markers included, in the set's order. */
static inline size_t dvv_count(const dvv *s) { return s->nsib; }
static inline const dvv_sib *dvv_sibling(const dvv *s, size_t i) {
  return &s->sib[i];
}
/* Siblings a reader sees at now_s: values not expired. */
size_t dvv_live_count(const dvv *s, uint32_t now_s);

/* The last-write-wins order of two siblings, a total order identical on
** every replica: higher timestamp; then a delete beats a value; then two
** deletes: later deletion time; two values: later expiry (0 = never, the
** latest); then greater value bytes (memcmp, a prefix below its
** extensions); then greater dot (actor, counter). > 0 when a wins. */
int dvv_sib_lww_cmp(const dvv_sib *a, const dvv_sib *b);
/* Index of the LWW winner of s (the lww policy's answer), or (size_t)-1
** when s has no sibling. */
size_t dvv_lww(const dvv *s);

/* Drops sibling i keeping its dot in the history, so merges drop it on
** every other replica too. Only for purging (dvv_purge) and tests. */
void dvv_discard(dvv *s, size_t i);

/* Purges siblings that are obsolete at cutoff_s (now - gc_grace): delete
** markers with deletion time < cutoff_s and values that expired before
** cutoff_s. Returns how many were dropped. A set left with no sibling
** may be deleted whole by the caller (after gc_grace, as a tombstone). */
size_t dvv_purge(dvv *s, uint32_t cutoff_s);

/* Drops history entries that carry no sibling and whose actor the caller
** says is retired (retired(arg, actor) != 0: an incarnation replaced, a
** node removed from the ring, and the cell untouched for gc_grace; see
** docs/versions.md). Returns how many were dropped. */
size_t dvv_prune(dvv *s, int (*retired)(void *arg, dvv_actor a), void *arg);

/* -------------------------------------------------------- encoding */

/*
** Set encoding (canonical; all integers unsigned LEB128 varints, minimal,
** except node ids and timestamps, fixed-width big-endian):
**
**   u8     DVV_FORMAT_VERSION
**   var    number of entries (<= DVV_MAX_ACTORS)
**   per entry, actors strictly ascending:
**     u64  actor node          var  incarnation
**     var  counter (1..DVV_MAX_COUNTER)
**     var  k: siblings of this actor (k <= counter)
**     per sibling, counters strictly descending:
**       var  gap: counter - this counter (first), previous - this - 1 (rest)
**       u8   flags: 1 tombstone, 2 has expiry (never both)
**       i64  timestamp (µs)
**       u32  deletion time (tombstone) / expires_at != 0 (has expiry)
**       var  value length, then the value (values only)
**
** A one-writer cell with one value costs 24 bytes plus the value.
*/
size_t dvv_encoded_size(const dvv *s);
/* Writes dvv_encoded_size(s) bytes to out; returns that length. */
size_t dvv_encode(const dvv *s, uint8_t *out);
/* Decodes p[0..n) into s (initialised; emptied first; values copied, p
** not retained). 0, CELLAR_EPROTO (truncated, trailing bytes, unknown
** version or flags, unsorted or duplicate actors or dots, zero counter,
** a dot above its counter, non-minimal varint...), CELLAR_ETOOBIG (over
** the limits above), CELLAR_ENOMEM. On error s is empty. */
int dvv_decode(const uint8_t *p, size_t n, dvv *s);

/*
** Context encoding (the opaque bytes a client gets with a read and hands
** back with its write):
**
**   u8     DVV_CTX_FORMAT_VERSION
**   u32    issued_s: when the read was answered (seconds, big-endian);
**          the coordinator refuses a context older than gc_grace, whose
**          dots may have been purged and minted again
**   var    number of entries, then per entry (actors strictly ascending):
**          u64 node, var incarnation, var counter (>= 1)
*/
/* The minimal LEB128 varints of the encodings, for the formats built on
** them (cell.h's row contexts): put writes at most 10 bytes and returns
** the count; get reads p[*i..n), advances *i, 0 or CELLAR_EPROTO
** (truncated, over 64 bits, not minimal). */
size_t dvv_varint_put(uint8_t *out, uint64_t v);
int dvv_varint_get(const uint8_t *p, size_t n, size_t *i, uint64_t *out);

size_t dvv_ctx_encoded_size(const dvv_vv *v);
size_t dvv_ctx_encode(const dvv_vv *v, uint32_t issued_s, uint8_t *out);
/* 0, CELLAR_EPROTO, CELLAR_ETOOBIG, CELLAR_ENOMEM; on error v is empty. */
int dvv_ctx_decode(const uint8_t *p, size_t n, dvv_vv *v, uint32_t *issued_s);

#endif
