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
**     |     more pulls: the next wave (throttle below) --> STREAM
**     v
**   DONE (or FAILED: a replica down at the start or marked down by the
**         failure detector meanwhile, the connection to a replica the
**         range waits for lost (it restarted: it forgot the request), a
**         request that cannot be sent, no answer within REPAIR_TIMEOUT_MS
**         (the scans are throttled: large ranges take long), an error
**         answered; the repair goes on with the next range)
**
** Throttle: streaming goes in waves of about one second's worth at
** repair_stream_throughput (bytes per second): a range's pulls are ordered
** wave by wave, the next wave (or the next range) waiting for the previous
** one to be applied and for the bytes streamed so far to have taken their
** time at that rate.
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
#include "merkle.h"
#include "result.h"
#include "wire_peer.h"

#define REPAIR_TIMEOUT_MS 3600000     /* a tree or a digest list */
#define REPAIR_RETRY_MS 120000        /* unanswered: asked again (same id) */
#define REPAIR_STREAM_TIMEOUT_MS 900000
#define REPAIR_NARROW_MAX 50000       /* partitions listed per range */
#define REPAIR_TICK_MS 50
#define REPAIR_SCAN_CHUNK (1u << 20)  /* bytes a replica scans per worker job */
#define REPAIR_RESEND_MS 30000        /* an answer meeting a full queue: retried */

#define REPAIR_MAX_REPLICAS 16        /* compared per range at most */

typedef struct repair repair;

/* ------------------------------------------ comparing replicas (no I/O)
**
** What the coordinator decides from the replicas' answers, as functions of
** them alone (the simulation drives them directly). Replicas are indexes
** 0..n-1 into the arrays given.
*/

/* Replica `target` pulls tokens lo..hi from replica `source`. */
typedef struct repair_pull {
  size_t target, source;
  int64_t lo, hi;
  uint64_t bytes;              /* what it moves (the source's size) */
  uint64_t rows;               /* rows it moves (whole leaves: partitions) */
} repair_pull;

typedef struct repair_plan {
  size_t mismatches;           /* trees: differing leaves */
  uint64_t partitions;         /* partitions that differ (whole leaves: all
                                  the partitions the pulls move) */
  uint64_t bytes, rows;        /* what the pulls will move (whole leaves:
                                  rows counts partitions) */
  int64_t (*narrow)[2];        /* trees: token ranges ({lo, hi}) whose
                                  digest lists to ask for; malloc'd */
  size_t nnarrow;
  repair_pull *pulls;          /* malloc'd; contiguous pulls merged up to
                                  pull_max bytes */
  size_t npulls, cap;
} repair_plan;

/*
** Which trees of one range are too shallow to compare at: the deepest
** tree's depth in *depth; shallow[i] = 1 for a tree that holds partitions
** and is more than one level shallower (a replica that holds far fewer
** partitions than another cuts its tree shallower, and comparing at its
** depth would make every leaf wide). Returns how many are; the
** coordinator asks those replicas again for a tree of at least *depth
** (cheap: they hold less). Empty trees are never shallow: they are the
** same at any depth (merkle_deepen_empty).
*/
size_t repair_trees_shallow(merkle_tree *const *trees, size_t n, uint8_t *shallow,
                            unsigned *depth);

/*
** Compares the trees of one range: trees without a partition are deepened
** and the others folded to the smallest depth among the trees that hold
** partitions (in place). Nothing differs: an empty plan. The differing
** leaves hold narrow_max partitions or fewer (all replicas counted):
** out->narrow lists their ranges, to ask REPAIR_ROWS for. More: out->pulls
** stream those leaves whole, each replica pulling once every other version
** of a leaf it lacks; a leaf larger than pull_max bytes (0: no limit) is
** cut into token sub-ranges of about pull_max each (as if its bytes were
** spread evenly), so that the stream throttle's waves can cut between
** them. 0, CELLAR_EINVAL (n outside 2..REPAIR_MAX_REPLICAS, trees over
** different ranges) or CELLAR_ENOMEM. Free with repair_plan_free.
*/
int repair_plan_trees(merkle_tree *const *trees, size_t n, uint64_t narrow_max,
                      uint64_t pull_max, repair_plan *out);

/*
** Compares digest lists (lists[i]: replica i's, counts[i] entries; a
** partition is its token and key, the key being any id unique within a
** token): a partition differs when a replica lacks it or has another digest; each
** replica then pulls its token once per version it lacks, from the first
** replica holding that version; contiguous pulls are merged up to pull_max
** bytes (0: no limit). 0, CELLAR_EINVAL, CELLAR_ENOMEM. Free with
** repair_plan_free.
*/
int repair_plan_parts(const wire_part_digest *const *lists, const size_t *counts,
                      size_t n, uint64_t pull_max, repair_plan *out);
void repair_plan_free(repair_plan *p);

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

/* The connection to the peer at addr failed (cluster_set_fail_handler; loop
** thread; arg is the repair): a range waiting for an answer from that
** replica fails at once. A replica that restarted has forgotten the
** request, and one that restarts quickly is never marked down by the
** failure detector: without this the range would wait for its timeout. */
void repair_on_peer_failed(void *arg, const char *addr);

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
