/*
** keys: the order-preserving encoding of data keys in the "default" column
** family (docs/storage.md has the full picture).
**
**   base      = table_id (8, big-endian) | token (8, token_encode) | esc(pk)
**   partition = base | 0x00                            (partition tombstone)
**   row       = base | 0x01 | esc(ck) | 0x00           (row tombstone)
**   cell      = base | 0x01 | esc(ck) | 0x01 | column  (column raw, last)
**
**   esc(x)    = x with every 0x00 replaced by 0x00 0xFF, then 0x00 0x01
**
** Invariants (what the rest of storage relies on):
**   1. memcmp order of encoded keys == order of the tuples
**      (table_id, token, pk, ck, column), bytes compared lexicographically,
**      a prefix ordered before its extensions.
**   2. esc() is prefix-free: esc(a) is a prefix of esc(b) only if a == b.
**      So every key of one partition starts with base, and every key of
**      one row starts with base | 0x01 | esc(ck).
**   3. Within a partition: the partition tombstone comes first, then the
**      rows in clustering order; within a row the row tombstone comes first,
**      then its cells in column order.
**
** Functions here never allocate. Encoders write into a caller buffer that
** must hold the worst case given by the KEYS_*_MAX macros, and return the
** number of bytes written. Tokens come in as arguments (the storage layer
** computes token_of(pk)), so the encoding can be tested on its own.
*/
#ifndef CELLAR_KEYS_H
#define CELLAR_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include "types.h"

/* Component separators after esc(pk) and after esc(ck). */
#define KEYS_TAG_TOMBSTONE 0x00   /* partition / row tombstone entry */
#define KEYS_TAG_NEXT 0x01        /* after pk: rows follow; after ck: a column */
#define KEYS_TAG_END 0x02         /* sorts after every key of the prefix */

#define KEYS_TABLE_BYTES 8
#define KEYS_HEAD_BYTES 16        /* table id + token */

/* Worst-case sizes: esc doubles every byte and adds 2. */
#define KEYS_ESC_MAX(n) (2 * (size_t)(n) + 2)
#define KEYS_BASE_MAX(npk) (KEYS_HEAD_BYTES + KEYS_ESC_MAX(npk))
#define KEYS_PARTITION_MAX(npk) (KEYS_BASE_MAX(npk) + 1)
#define KEYS_ROW_MAX(npk, nck) (KEYS_BASE_MAX(npk) + 1 + KEYS_ESC_MAX(nck) + 1)
#define KEYS_CELL_MAX(npk, nck, ncol) (KEYS_ROW_MAX(npk, nck) + (size_t)(ncol))

/* ------------------------------------------------------------ primitives */

/* Writes esc(p[0..n)) to out (KEYS_ESC_MAX(n) bytes). Returns bytes written. */
size_t keys_esc(uint8_t *out, const uint8_t *p, size_t n);

/* Writes table_id big-endian (8 bytes). */
void keys_table_prefix(uint8_t out[8], uint64_t table_id);
/* Writes the smallest 8-byte prefix above every key of table_id and returns
** 1; returns 0 when there is none (table_id == UINT64_MAX): the table's keys
** then run to the end of the key space. */
int keys_table_end(uint8_t out[8], uint64_t table_id);

/* table_id | token (KEYS_HEAD_BYTES): at or before the first key of every
** partition of the table with this token, above every key with a smaller
** token; the bound of a token range scan (streaming, repair). */
size_t keys_head(uint8_t out[KEYS_HEAD_BYTES], uint64_t table_id,
                 int64_t token);

/* base = table_id | token | esc(pk): the prefix of every key of the
** partition (KEYS_BASE_MAX(pk.n) bytes). */
size_t keys_base(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk);

/* -------------------------------------------------- whole keys and bounds */

/* base | 0x00: the partition tombstone. */
size_t keys_partition(uint8_t *out, uint64_t table_id, int64_t token,
                      cbytes pk);
/* base | 0x02: above every key of the partition (scan upper bound). */
size_t keys_partition_end(uint8_t *out, uint64_t table_id, int64_t token,
                          cbytes pk);
/* base | 0x01 | esc(ck) | 0x00: the row tombstone of ck. */
size_t keys_row(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk,
                cbytes ck);
/* base | 0x01 | esc(ck) | 0x01 | column: one cell. */
size_t keys_cell(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk,
                 cbytes ck, cbytes column);
/* base | 0x01 | esc(ck): at or before the first key of the first row whose
** clustering key is >= ck (seek target of an inclusive start bound).
** Needs KEYS_ROW_MAX bytes. */
size_t keys_rows_from(uint8_t *out, uint64_t table_id, int64_t token,
                      cbytes pk, cbytes ck);
/* base | 0x01 | esc(ck) | 0x02: above every key of row ck and below every
** key of a row with a greater clustering key. Used as the seek target of an
** exclusive start (resume after a cursor) and as the upper bound of an
** inclusive end. Needs KEYS_ROW_MAX bytes. */
size_t keys_row_end(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk,
                    cbytes ck);

/* --------------------------------------------------------------- decoding */

typedef enum keys_kind {
  KEYS_KIND_PARTITION = 0,  /* partition tombstone */
  KEYS_KIND_ROW = 1,        /* row tombstone */
  KEYS_KIND_CELL = 2
} keys_kind;

/* A key cut into its parts. Every cbytes is borrowed from the decoded key,
** valid as long as the key's bytes. */
typedef struct keys_parts {
  uint64_t table_id;
  int64_t token;
  keys_kind kind;
  cbytes pk_esc;       /* esc(pk) without its terminator */
  size_t npk;          /* length of pk once unescaped */
  size_t base_len;     /* bytes of table_id | token | esc(pk) */
  cbytes ck_esc;       /* ROW, CELL: esc(ck) without its terminator */
  size_t nck;          /* length of ck once unescaped */
  size_t row_len;      /* ROW, CELL: bytes of base | 0x01 | esc(ck), which
                          identify the row within the table */
  cbytes column;       /* CELL: the column name, raw */
} keys_parts;

/* Splits key k[0..n). Returns 0 or CELLAR_EPROTO when k is not a key in
** the layout above (bad escape, missing terminator, trailing bytes). */
int keys_decode(const uint8_t *k, size_t n, keys_parts *out);

/* Length of the base (table_id | token | esc(pk)) that k starts with, or 0
** when k is too short to hold a whole base. Cheaper than keys_decode: it
** only looks for the end of esc(pk). Used as RocksDB's prefix extractor, so
** a partition's scan can skip files by their prefix bloom filter. */
size_t keys_base_len(const uint8_t *k, size_t n);

/* Unescapes an esc_* range from keys_parts into out, which must hold the
** matching npk / nck bytes. Returns the bytes written. */
size_t keys_unescape(cbytes esc, uint8_t *out);

#endif
