/*
** storage: cellar's data on RocksDB.
**
** Three column families: "default" holds table data (one RocksDB key per
** cell, plus partition and row tombstones), "system" holds node state such as
** the schema, "hints" holds hinted handoff's hints. Key and value formats
** are in keys.h / cell.h and docs/storage.md.
**
** Every function taking a storage blocks on RocksDB: call them from worker
** threads, never from the libuv loop. All of them are thread-safe. Writes
** to one partition are serialised by a striped lock, since a write reads
** the cells it replaces to merge them (cell_merge in cell.h) before writing
** the batch. The raw entry functions that take no storage (building,
** merging, digesting, rendering entry lists) do no I/O.
**
** RocksDB errors (char **errptr) become CELLAR_ESTORAGE here, logged with
** RocksDB's message; no other module sees RocksDB types.
*/
#ifndef CELLAR_STORAGE_H
#define CELLAR_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include "types.h"
#include "schema.h"
#include "result.h"
#include "dvv.h"

typedef struct storage storage;

typedef struct storage_options {
  const char *path;            /* data directory; created if missing */
  size_t cache_bytes;          /* block cache, default 64 MiB */
  size_t write_buffer_bytes;   /* memtable size, default 32 MiB */
  int sync_writes;             /* fsync the WAL on every write (default 0:
                                  the WAL is written before the ack, so a
                                  killed process loses nothing; a power loss
                                  may lose the last writes) */
  int background_jobs;         /* default 2 */
} storage_options;

void storage_options_init(storage_options *o);

/* Opens (creating if needed) the database. *out: caller frees with
** storage_close(). Returns 0 or CELLAR_ESTORAGE / CELLAR_ENOMEM. */
int storage_open(const storage_options *o, storage **out);
void storage_close(storage *s);

/*
** gc_grace lookup for the compaction filter: returns 0 and sets *gc_grace
** for a known table id, non-zero for an unknown one (its data is dropped).
** Called from RocksDB's background threads.
*/
typedef int (*storage_gc_lookup)(void *arg, uint64_t table_id,
                                 uint32_t *gc_grace);
void storage_set_gc_lookup(storage *s, storage_gc_lookup fn, void *arg);

/* ----------------------------------------------------------- system CF */
int storage_system_put(storage *s, const void *k, size_t nk, const void *v,
                       size_t nv);
int storage_system_delete(storage *s, const void *k, size_t nk);
/* Calls cb for each key starting with prefix, in key order; cb's bytes are
** borrowed for the call. A non-zero return from cb stops and is returned. */
int storage_system_scan(storage *s, const void *prefix, size_t np,
                        int (*cb)(void *arg, const uint8_t *k, size_t nk,
                                  const uint8_t *v, size_t nv),
                        void *arg);

/* ------------------------------------------------------------- data CF */

/*
** Writes rows of one partition in one atomic batch. Every cell gets
** timestamp ts (microseconds) and, when ttl > 0, expires_at = now_s + ttl.
** Each cell is merged with the one it replaces (cell_merge), so a write
** carrying an older timestamp than the stored cell does not win.
** Same as storage_put_entries then storage_apply_entries.
*/
int storage_put(storage *s, const table_def *t, cbytes pk,
                const req_row *rows, size_t nrows, int64_t ts, uint32_t ttl,
                uint32_t now_s);

enum storage_delete_scope {
  STORAGE_DELETE_PARTITION = 0,
  STORAGE_DELETE_ROW = 1,
  STORAGE_DELETE_CELLS = 2
};

/* Writes a tombstone with timestamp ts and local deletion time now_s:
** a partition tombstone, a row tombstone for ck, or one cell tombstone per
** column of cols. Data with a timestamp <= ts is shadowed at once.
** Same as storage_delete_entries then storage_apply_entries. */
int storage_delete(storage *s, const table_def *t, cbytes pk, int scope,
                   cbytes ck, const cbytes *cols, size_t ncols, int64_t ts,
                   uint32_t now_s);

typedef struct storage_query {
  cbytes pk;
  int has_start;               /* lower bound on ck */
  cbytes start;
  int start_exclusive;         /* used to resume after a cursor */
  int has_end;                 /* upper bound on ck, inclusive */
  cbytes end;
  uint32_t limit;              /* rows, > 0 */
  const cbytes *cols;          /* NULL = all columns */
  size_t ncols;
} storage_query;

/*
** Appends the live rows of the query to out, in clustering order: a cell is
** live when it is not a tombstone, has not expired (expires_at > now_s) and
** its timestamp is above every covering row/partition tombstone. Rows with
** no live cell (among cols) are skipped. *more is set to 1 when the limit
** stopped the scan before the end of the range.
*/
int storage_read(storage *s, const table_def *t, const storage_query *q,
                 uint32_t now_s, result *out, int *more);

/* ----------------------------------------------------------- raw entries
**
** Replication, read repair, streaming and anti-entropy repair move raw data
** entries: an encoded data key (keys.h) and its encoded value (cell.h).
** Table ids and tokens are the same on every node, so an entry means the
** same thing on every replica, and the receiver merges it with the same
** cell_merge as every write. docs/storage.md, "Raw entries", has the
** invariants.
*/

/* One raw data entry: an encoded data key and its encoded cell (cell.h).
** Both ranges are borrowed from whoever holds the entry. */
typedef struct storage_entry {
  cbytes key;
  cbytes value;
} storage_entry;

typedef struct storage_block storage_block;

/* A malloc'd list of entries that owns their bytes. e[i].key / e[i].value
** stay valid (they never move) until storage_entries_free, even while more
** entries are added. Free with storage_entries_free. */
typedef struct storage_entries {
  size_t n, cap;
  storage_entry *e;
  storage_block *blocks;   /* private: the bytes, a list of blocks */
} storage_entries;

void storage_entries_init(storage_entries *l);
/* Releases the list and its bytes; l may be reused after storage_entries_init. */
void storage_entries_free(storage_entries *l);
/* Appends a copy of key and value (either may be empty). Returns 0 or
** CELLAR_ENOMEM. */
int storage_entries_add(storage_entries *l, cbytes key, cbytes value);

/*
** The entries a put / delete WOULD write, appended to out in key order,
** without touching the database: same timestamps, TTL and tombstones as
** storage_put / storage_delete, same size checks and errors, the same cell
** written twice in the request merged into one entry. The coordinator
** builds them once and sends the same bytes to every replica. On error out
** keeps the entries it had.
*/
int storage_put_entries(const table_def *t, cbytes pk, const req_row *rows,
                        size_t nrows, int64_t ts, uint32_t ttl,
                        uint32_t now_s, storage_entries *out);
int storage_delete_entries(const table_def *t, cbytes pk, int scope,
                           cbytes ck, const cbytes *cols, size_t ncols,
                           int64_t ts, uint32_t now_s, storage_entries *out);

/*
** Merges entries into the database: each is merged with the stored version
** of its key (cell_merge) and the winners are written in ONE atomic batch,
** under the stripe locks of every partition involved (entries may span
** partitions and tables, in any order; duplicates are merged first).
** Every entry is checked before anything is written: a key that is not a
** data key, a value that is not a canonical cell, a partition or row key
** whose value is not a tombstone refuse the whole call with CELLAR_EPROTO;
** a key component or value above the cellar.h limits with CELLAR_ETOOBIG.
** *written (may be NULL): how many distinct keys the incoming entry won,
** so applying the same entries twice writes nothing the second time.
** Applying is idempotent and commutative. The locks are held for the read
** and the write of the whole list: stream in batches of a few MiB.
*/
int storage_apply_entries(storage *s, const storage_entry *e, size_t n,
                          size_t *written);

/*
** Siblings tables (docs/versions.md): the coordinator-replica's write.
** e[0..n) are the plain entries storage_put_entries / storage_delete_entries
** built (key-sorted, unique); under the stripe locks each cell entry
** becomes a client write applied to the stored version set with
** cell_event's rule (dvv_event under o->self, with the context of its row
** and column from ctx, none = blind), row and partition tombstones merge
** as in storage_apply_entries; the results are written in one batch and
** appended to out (the whole sets: what the other replicas receive and
** merge; out may be NULL when there are none). A cell that would hold
** more than o->limit siblings refuses the whole write with
** CELLAR_ESIBLINGS (counted, message in err), above o->warn it is logged
** and counted. On error nothing is written and out
** keeps the entries it had.
*/
/* The most bytes the versions of one cell may take after a write (a set
** travels whole in replication and read frames of at most
** CELLAR_MAX_FRAME_BYTES): a write past it is refused, CELLAR_ETOOBIG. */
#define STORAGE_MAX_SET_BYTES (8u << 20)

typedef struct storage_event_ctx {
  cbytes ck;                   /* the row (borrowed) */
  const struct cell_rowctx *ctx;  /* its context (borrowed) */
} storage_event_ctx;

typedef struct storage_event_opts {
  dvv_actor self;              /* this node's actor */
  uint32_t warn, limit;        /* siblings_warn, siblings_limit; 0: none */
  int expand_deletes;          /* 1: a row or partition tombstone becomes a
                                  delete marker in each cell this replica
                                  stores there (at most 10,000, else
                                  CELLAR_ETOOBIG); 0: it stays a plain
                                  tombstone */
} storage_event_opts;

int storage_event_entries(storage *s, const storage_entry *e, size_t n,
                          const storage_event_ctx *ctx, size_t nctx,
                          const storage_event_opts *o, storage_entries *out,
                          char *err, size_t errlen);

/*
** Appends to out the raw entries of a query, in key order: the partition
** tombstone (if any), then per row its row tombstone and its cells,
** tombstones and expired cells included: everything this replica knows, so
** that a coordinator can merge replicas. Bounds as in storage_read; cols
** filters cells (tombstones of partition and row always come). The limit
** counts rows that have ANY entry (live or not); *more is set to 1 when a
** further such row exists in the range after the limit. Stored entries
** that storage_apply_entries would refuse are skipped (and logged). Errors
** as storage_read; on error out keeps the entries it had.
**
** A replica's list cut by the limit (*more == 1) says nothing about the
** rows after its last one: a coordinator merging several lists must not
** trust merged rows beyond the smallest last row of a cut list (it asks
** again from there: short reads).
*/
int storage_read_entries(storage *s, const table_def *t,
                         const storage_query *q, storage_entries *out,
                         int *more);

/*
** What a client sees from a list of entries of ONE partition (t, q->pk)
** sorted by key, strictly ascending (the coordinator merges the replicas'
** lists, then calls this): the visibility rules of storage_read, by the
** same code (tombstones shadow data with a timestamp <= theirs, expired
** cells are hidden, column filter, limit, *more), appended to out. Entries
** outside the query's partition or bounds are ignored; reading stops at
** the end of the bounds or once the limit is passed. Returns CELLAR_EINVAL
** when the entries it reads are not strictly ascending (or q->limit is 0),
** CELLAR_EPROTO for an entry storage_apply_entries would refuse,
** CELLAR_ETOOBIG as storage_read.
*/
int storage_entries_to_result(const table_def *t, const storage_query *q,
                              const storage_entry *e, size_t n,
                              uint32_t now_s, result *out, int *more);

/*
** Merges two key-sorted (strictly ascending) entry lists, appending to out
** one entry per key: the cell_merge winner where both hold the key. The
** result is key-sorted when out was empty. a and b may point at bytes out
** owns but not into out->e (that array moves as out grows). Returns
** CELLAR_EINVAL for an unsorted input, CELLAR_EPROTO for a value that does
** not decode, CELLAR_ENOMEM; on error out keeps the entries it had.
*/
int storage_entries_merge(const storage_entry *a, size_t na,
                          const storage_entry *b, size_t nb,
                          storage_entries *out);

/*
** A 64-bit digest of an entry list, a function of its bytes alone (same on
** every node, build and byte order; the algorithm is in docs/storage.md):
** for digest reads and Merkle leaves. Two lists that differ in one byte
** (or in one aligned 8-byte word) always have different digests; other
** differences collide about as rarely as with a good 64-bit hash. Not
** cryptographic: it does not resist crafted collisions.
*/
uint64_t storage_entries_digest(const storage_entry *e, size_t n);

/*
** Streaming and repair: calls cb for every entry of table_id whose token t
** satisfies start < t <= end (start >= end: the range wraps around the
** ring, t > start || t <= end; start == end is the whole ring), in key
** order (so ascending token: for a wrapping range [min, end] comes before
** (start, max]), all from one consistent snapshot. Stored entries that
** storage_apply_entries would refuse are skipped (and logged). cb's bytes
** are borrowed for the call; cb may call other storage functions (no lock
** is held). A non-zero return from cb stops the scan and is returned.
*/
int storage_scan_range(storage *s, uint64_t table_id, int64_t start,
                       int64_t end,
                       int (*cb)(void *arg, cbytes key, cbytes value),
                       void *arg);

/* Removes all data of a table (a range delete over its id prefix). */
int storage_drop_table(storage *s, uint64_t table_id);

/* Flushes memtables; compacts the whole data CF (runs the compaction
** filter, which purges expired cells and tombstones past gc_grace). */
int storage_flush(storage *s);
int storage_compact(storage *s);

/* Writes a RocksDB checkpoint (hard links) into dir, which must not exist. */
int storage_checkpoint(storage *s, const char *dir);

/* Appends info pairs: approximate data size, number of keys, memtable
** bytes, block cache usage. */
int storage_info(storage *s, result *out);

/* Counts RocksDB keys (raw, tombstones included) under a table id: a test
** hook to show that compaction purged them. */
int storage_count_raw(storage *s, uint64_t table_id, uint64_t *count);

/* ------------------------------------------------------------ hints CF
** Hinted handoff's hints (hints.h: key and value formats). Written with
** the data's write options: in the WAL before the call returns. */

/* Puts and deletes hint keys in ONE atomic batch. 0 or CELLAR_ESTORAGE. */
int storage_hints_write(storage *s, const storage_entry *put, size_t nput,
                        const cbytes *del, size_t ndel);
/* Calls cb for each hint key starting with prefix, in key order, from the
** first key after `after` (exclusive; nafter 0: from the prefix). cb's
** bytes are borrowed for the call; a non-zero return stops the scan and is
** returned. */
int storage_hints_scan(storage *s, const void *prefix, size_t np,
                       const void *after, size_t nafter,
                       int (*cb)(void *arg, cbytes key, cbytes value),
                       void *arg);
/* Deletes every hint key starting with prefix (a range delete). */
int storage_hints_drop(storage *s, const void *prefix, size_t np);

#endif
