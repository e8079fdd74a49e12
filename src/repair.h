/*
** repair: anti-entropy repair (`cellar-admin repair`), the I/O around
** merkle.h. docs/repair.md has the whole design; in short:
**
** The node where the admin command runs coordinates. It cuts the ring into
** ranges that have one replica set each (cluster_token_ranges), per table,
** and walks them a few at a time (repair_parallel_ranges). Per range:
**
**   TREES  --MERKLE_REQUEST to every replica (this node included)---+
**     |     each builds a tree from a storage scan on a worker       |
**     |<-----------------------MERKLE_REPLY (tree)--------------------+
**     | compare: no differing leaf -------------------------> DONE
**     v
**   ROWS   --REPAIR_ROWS (the differing leaves' token ranges)--> every replica
**     |<-- REPAIR_ROWS_REPLY: (partition key, digest, bytes, rows) per partition
**     |    (skipped when the differing leaves hold more than REPAIR_NARROW_MAX
**     |     partitions: the leaves' ranges are streamed whole instead)
**     v
**   STREAM --STREAM_ORDER to each replica that lacks a version another one
**     |     has: pull exactly these partitions' tokens from that replica
**     |     (stream.h; merges are idempotent, so two replicas that both
**     |     hold something the other lacks each pull from the other)
**     |<-- STREAM_ORDER_DONE from every ordered replica
**     v
**   DONE (or FAILED: a replica down at the start or marked down by the
**         failure detector meanwhile, no answer within REPAIR_TIMEOUT_MS
**         (the scans are throttled: large ranges take long), an error
**         answered; the repair goes on with the next range)
**
** Throttle: a range's streaming counts against repair_stream_throughput
** (bytes per second): the next range does not start before the bytes
** streamed so far would have taken at that rate.
**
** Every replica answers MERKLE_REQUEST and REPAIR_ROWS from a storage scan
** on worker threads (never on the loop), REPAIR_SCAN_CHUNK bytes per job so
** that client requests queued meanwhile get the thread between chunks, and
** paced by repair_scan_throughput (bytes per second per node, all builds
** together): a workload keeps most of the storage threads. The coordinating state is on the
** loop; the admin entry points (repair_start, repair_status) run on worker
** threads and meet it under a mutex; a timer on the loop picks work up.
*/
#ifndef CELLAR_REPAIR_H
#define CELLAR_REPAIR_H

#include <stdint.h>
#include <uv.h>
#include "cluster.h"
#include "config.h"
#include "engine.h"
#include "frame.h"
#include "result.h"

#define REPAIR_TIMEOUT_MS 3600000     /* a tree or a digest list */
#define REPAIR_STREAM_TIMEOUT_MS 900000
#define REPAIR_NARROW_MAX 50000       /* partitions listed per range */
#define REPAIR_TICK_MS 50
#define REPAIR_SCAN_CHUNK (1u << 20)  /* bytes a replica scans per worker job */

typedef struct repair repair;

/* All borrowed: they outlive the repair. *out: caller frees with
** repair_free once the loop has ended. 0 or CELLAR_ENOMEM. */
int repair_new(uv_loop_t *loop, const config *cfg, engine *eng, cluster *cl,
               repair **out);
void repair_free(repair *r);

/* Starts the loop timer. 0 or a code. */
int repair_start_timer(repair *r);

/* Stops: a running repair ends as failed ("shutting down"); nothing more
** is sent. Loop thread. */
void repair_stop(repair *r);

/* MERKLE_REQUEST, MERKLE_REPLY, REPAIR_ROWS, REPAIR_ROWS_REPLY and
** STREAM_ORDER_DONE frames (loop thread). */
void repair_on_frame(repair *r, const frame_header *h,
                     const uint8_t *payload);

/*
** Admin (worker threads). repair_start parses args, "[KEYSPACE [TABLE]]
** [--range LO:HI] [--dc DC] [--primary]" (tokens LO..HI inclusive), plans
** the ranges and answers at once with the plan (info pairs), or with an
** error: CELLAR_ENOKEYSPACE / CELLAR_ENOTABLE for unknown names,
** CELLAR_EINVAL for a malformed range, an unknown datacenter, an unknown
** option or a repair already running. repair_status answers the state of
** the last repair: repair (none, running, done, failed), scope, ranges,
** ranges_done, ranges_compared, ranges_failed, mismatches (differing
** leaves), partitions_differing, rows_streamed, bytes_streamed,
** entries_applied, replica_bytes and replica_partitions (what one replica,
** the first asked, holds in the compared ranges: what streaming them whole
** would move), exchange_bytes (trees and digest lists received),
** elapsed_ms, error.
*/
int repair_start(repair *r, const char *args, result *res);
int repair_status(repair *r, result *res);

#endif
