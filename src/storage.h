/*
** storage: cellar's data on RocksDB.
**
** Three column families: "default" holds table data (one RocksDB key per
** cell, plus partition and row tombstones), "system" holds node state such as
** the schema, "hints" is reserved for hinted handoff. Key and value formats
** are in keys.h / cell.h and docs/storage.md.
**
** Every function blocks on RocksDB: call them from worker threads, never
** from the libuv loop. All of them are thread-safe. Writes to one partition
** are serialised by a striped lock, since a write reads the cells it
** replaces to merge them (cell_merge in cell.h) before writing the batch.
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
** column of cols. Data with a timestamp <= ts is shadowed at once. */
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

#endif
