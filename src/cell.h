/*
** cell: the stored value of one data key (a cell, or a row / partition
** tombstone), and the rule that decides which of two versions wins.
**
**   offset size   field
**      0    1     format version (CELL_FORMAT_VERSION = 1)
**      1    1     flags: CELL_F_TOMBSTONE, CELL_F_HAS_EXPIRY, CELL_F_HAS_CLOCK
**      2    8     timestamp, microseconds, big-endian signed
**     10    4     TOMBSTONE: local deletion time; HAS_EXPIRY: expires_at
**                 (seconds, big-endian); absent otherwise
**      .    1-10  HAS_CLOCK: clock length, unsigned LEB128 varint
**      .    n     HAS_CLOCK: clock bytes (opaque: carried, never read)
**      .    rest  value bytes (none for a tombstone)
**
** The encoding is canonical: TOMBSTONE and HAS_EXPIRY never go together,
** HAS_EXPIRY implies expires_at != 0, a tombstone has no value, the varint
** is minimal, unknown flags or versions are rejected. So two values decode
** to equal fields only if their bytes are equal, which makes cell_merge a
** deterministic function of the stored bytes on every replica.
**
** Merge rule (Cassandra's last-write-wins, cell_compare): the higher
** timestamp wins; on equal timestamps a tombstone beats a live cell; two
** tombstones: the later local deletion time wins; two live cells: the later
** expiry wins (0 = never, the latest of all), then the greater value by
** memcmp (a prefix below its extensions), then the greater clock bytes.
** That rule (cell_compare, cell_merge) stays the rule of plain cells.
**
** Versioned cells (issue 5, docs/versions.md): HAS_CLOCK with the encoded
** dotted version vector set of the cell (dvv.h) as clock bytes and no
** value bytes (the values are the set's siblings). The header is a
** summary of the set, a function of it, so the encoding stays canonical
** and code that reads only headers (reads of plain cells, the compaction
** filter) keeps a sensible view:
**   no sibling left (all purged)     tombstone, ts 0, deleted_at 0
**   every sibling a delete marker    tombstone, highest ts, latest deletion
**   every sibling a value w/ expiry  live, highest ts, latest expiry
**   otherwise                        live, highest ts, no expiry
** cell_merge_versions merges any two cells: plain with plain by the LWW
** rule above (byte for byte what cell_merge keeps), versioned with
** versioned by dvv_merge; a plain cell met by a versioned one joins it as
** a sibling under the legacy dot (CELL_LEGACY_ACTOR, 1), so two plain
** versions meeting inside sets still keep their LWW winner. The merge
** depends on the bytes only, never on a table's policy.
*/
#ifndef CELLAR_CELL_H
#define CELLAR_CELL_H

#include <stddef.h>
#include <stdint.h>
#include "dvv.h"
#include "types.h"

#define CELL_FORMAT_VERSION 1

#define CELL_F_TOMBSTONE 0x01
#define CELL_F_HAS_EXPIRY 0x02
#define CELL_F_HAS_CLOCK 0x04

/* Bytes before the clock and value: version, flags, timestamp, time, the
** clock's varint length. */
#define CELL_PREFIX_MAX (1 + 1 + 8 + 4 + 10)

typedef struct cell {
  int64_t ts;            /* write timestamp, microseconds */
  uint8_t tombstone;     /* 1: a deletion (cell, row or partition) */
  uint8_t has_clock;     /* 1: clock holds opaque vector-clock bytes */
  uint32_t expires_at;   /* live cells: seconds since epoch, 0 = never */
  uint32_t deleted_at;   /* tombstones: local deletion time, seconds */
  cbytes clock;          /* borrowed */
  cbytes value;          /* borrowed; empty for a tombstone */
} cell;

/* A live cell / a tombstone with no clock. value is borrowed. */
cell cell_live(int64_t ts, uint32_t expires_at, cbytes value);
cell cell_tombstone(int64_t ts, uint32_t deleted_at);

/* Total encoded size of c. */
size_t cell_encoded_size(const cell *c);

/* Writes the prefix of c (everything before the clock bytes) into out,
** which holds CELL_PREFIX_MAX bytes; returns its length. The full encoding
** is prefix | clock bytes | value bytes: a writer can hand the three parts
** to a gather write without copying the value. */
size_t cell_encode_prefix(const cell *c, uint8_t *out);

/* Writes the whole encoding of c into out (cell_encoded_size(c) bytes);
** returns its length. */
size_t cell_encode(const cell *c, uint8_t *out);

/* Decodes p[0..n). On success the clock and value of *out are borrowed from
** p. Returns 0 or CELLAR_EPROTO (truncated, unknown version or flags,
** non-canonical encoding). */
int cell_decode(const uint8_t *p, size_t n, cell *out);

/* Order of the merge rule above: > 0 when a wins over b, < 0 when b wins,
** 0 only when a and b are the same version (same encoding). */
int cell_compare(const cell *a, const cell *b);

/* Returns the winner of a and b (one of the two pointers). Commutative,
** associative and idempotent: every replica ends with the same version
** whatever the order versions arrive in. */
const cell *cell_merge(const cell *a, const cell *b);

/* 1 when c is a live cell that has not expired at now_s (it may still be
** shadowed by a row or partition tombstone: the caller checks those). */
int cell_is_live(const cell *c, uint32_t now_s);

/* Seconds since epoch after which c is obsolete and only shadows older
** versions: the local deletion time of a tombstone, the expiry of an
** expiring cell; 0 when c is live with no expiry. */
uint32_t cell_dead_since(const cell *c);


/* ------------------------------------------------------ versioned cells */

/* The actor of the dot a plain cell takes inside a set. Incarnations start
** at 1, so no node mints dots under it. */
#define CELL_LEGACY_ACTOR ((dvv_actor){0, 0})

/* A growable encoding buffer. Owned; cell_buf_free releases it. */
typedef struct cell_buf {
  uint8_t *p;
  size_t n, cap;
} cell_buf;

void cell_buf_free(cell_buf *b);

/* 1 when c carries a version set (HAS_CLOCK, no value). */
int cell_is_versioned(const cell *c);

/* The versions of c into out (initialised; overwritten): a versioned
** cell's set, checked (its header must be the summary of its set), or a
** plain cell as one sibling with the legacy dot. 0, CELLAR_EPROTO (clock
** bytes that are not a set, a header that does not match), CELLAR_ETOOBIG,
** CELLAR_ENOMEM. */
int cell_versions(const cell *c, dvv *out);

/* Encodes s as a versioned cell (summary header, clock = dvv_encode(s))
** into out, replacing its content. 0 or CELLAR_ENOMEM. */
int cell_from_versions(const dvv *s, cell_buf *out);

/* Merge of a and b by the rule above. Returns 0 with *win = a or b when
** the merge is one of them (out untouched), 1 with *win = NULL and the new
** encoding in out when the merge made a new version, or a negative code of
** cell_versions. Commutative, associative and idempotent on the encoded
** results. a and b are borrowed. */
int cell_merge_versions(const cell *a, const cell *b, cell_buf *out,
                        const cell **win);

/* A coordinator applies a client write w with context ctx (NULL: blind) to
** its stored cell (NULL: none; a plain cell counts as a legacy sibling):
** dvv_event under self, at most limit siblings (0: no limit). The new
** versioned cell goes to out, the write's dot to *dot (may be NULL).
** Errors of cell_versions and dvv_event (CELLAR_ETOOBIG: the sibling
** limit; nothing is written to out then). */
int cell_event(const cell *stored, const dvv_vv *ctx, dvv_actor self,
               const dvv_write *w, size_t limit, cell_buf *out, dvv_dot *dot);

/* ------------------------------------------------------- row contexts
**
** The opaque context a read hands to the client for one row: the version
** vector (dvv_join) of every cell read, by column, since dot counters of
** different cells are independent (docs/versions.md). Encoding:
**
**   u8   CELL_ROWCTX_VERSION
**   u16  number of cells (big-endian, <= CELL_ROWCTX_MAX_COLUMNS)
**   per cell (columns strictly ascending), nothing after:
**     var  column length, column bytes
**     var  context length, a cell context (dvv_ctx_encode)
*/
#define CELL_ROWCTX_VERSION 1
#define CELL_ROWCTX_MAX_COLUMNS 4096

/* Appends the context of one column to a row context being built in b
** (the header is written first when b is empty, its count updated).
** Columns must come in ascending order. 0, CELLAR_ETOOBIG (more than
** CELL_ROWCTX_MAX_COLUMNS) or CELLAR_ENOMEM. */
int cell_rowctx_add(cell_buf *b, cbytes column, const dvv_vv *vv,
                    uint32_t issued_s);

typedef struct cell_rowctx_col {
  cbytes column;               /* borrowed from the decoded bytes */
  dvv_vv vv;                   /* owned */
  uint32_t issued_s;
} cell_rowctx_col;

/* A decoded row context. Free with cell_rowctx_close. */
typedef struct cell_rowctx {
  size_t n;
  cell_rowctx_col *c;          /* owned; sorted by column */
} cell_rowctx;

/* Decodes p[0..n) (borrowed: columns point into p). n == 0 gives an empty
** context. 0, CELLAR_EPROTO (truncated, a count that does not match,
** unknown version, unsorted columns, a bad cell context), CELLAR_ETOOBIG, CELLAR_ENOMEM; on error
** out is empty. */
int cell_rowctx_decode(const uint8_t *p, size_t n, cell_rowctx *out);
void cell_rowctx_close(cell_rowctx *c);
/* The vector of column in c, NULL when the context has none (then the
** write of that column is blind). */
const cell_rowctx_col *cell_rowctx_find(const cell_rowctx *c, cbytes column);

#endif
