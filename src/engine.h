/*
** engine: executes one decoded request against the schema and storage and
** fills a result. Blocking (it calls storage): runs on worker threads.
** Thread-safe; holds no state of its own beyond borrowed pointers.
*/
#ifndef CELLAR_ENGINE_H
#define CELLAR_ENGINE_H

#include "wire.h"
#include "result.h"
#include "schema.h"
#include "storage.h"

typedef struct cluster cluster;
typedef struct handoff handoff;
typedef struct repair repair;

typedef struct engine {
  storage *st;                 /* borrowed */
  schema *sc;                  /* borrowed */
  const char *node_id;         /* borrowed, for info */
  const char *data_dir;        /* borrowed, snapshots go under it */
  uint32_t max_slice_rows;     /* cap on a slice page, default 1000 */
  cluster *cl;                 /* borrowed; NULL without a cluster (tests) */
  handoff *ho;                 /* borrowed; NULL without hinted handoff */
  repair *rp;                  /* borrowed; NULL without a cluster (tests) */
  dvv_actor self;              /* versions: this node's actor (host id,
                                  incarnation), docs/versions.md */
  uint32_t siblings_warn;      /* 0: DVV_SIBLINGS_WARN */
  uint32_t siblings_limit;     /* 0: DVV_SIBLINGS_LIMIT */
} engine;

/* Executes req; the outcome (rows or error) is in res, its code returned. */
int engine_execute(engine *e, const request *req, result *res);

/* Pieces of the data operations, shared with the replication proxy. Each
** returns 0 or an error code with the message in res. */
int engine_table(engine *e, const request *q, table_def *t, result *res);
/* The storage query of a GET or SLICE: cursor applied, limit capped. The
** query borrows from q. */
int engine_query(const engine *e, const request *q, storage_query *sq,
                 result *res);
/* SLICE: sets the next-page cursor after the last row when more remain. */
int engine_finish_slice(const request *q, result *res, int more);

/* A file every snapshot holds: a node started on a restored snapshot sees
** it and takes a new incarnation for its versions actor (cellard.c). */
#define ENGINE_SNAPSHOT_MARKER "CELLAR_RESTORED_SNAPSHOT"

/* Siblings tables: the write of req (a PUT or DELETE of table t) as this
** node's event (storage_event_entries): mut holds the plain entries
** storage_put_entries / storage_delete_entries built, out (may be NULL)
** gets the resulting version sets to replicate. Contexts come from the
** request; one older than the table's gc_grace is refused
** (CELLAR_ESTALECONTEXT).
** Returns 0 or an error code with the message in res. */
int engine_event(engine *e, const table_def *t, const request *req,
                 const storage_entries *mut, storage_entries *out,
                 result *res);

/* Paging cursors: opaque to clients, version byte + last clustering key. */
size_t engine_cursor_encode(const uint8_t *ck, size_t nck, uint8_t *out,
                            size_t outlen);
int engine_cursor_decode(const uint8_t *p, size_t n, cbytes *ck);

#endif
