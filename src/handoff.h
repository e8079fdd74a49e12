/*
** handoff: hinted handoff's I/O. Runs the hints state machine (hints.h) on
** the loop thread: stores the hints the coordinator asks for in the
** "hints" column family (writes grouped into one batch per worker job),
** loads them back, replays them to their target as REPLICA_APPLY frames
** (the target merges them as any replica write and answers REPLICA_ACK),
** deletes them after the ack, polls the cluster for each target's
** liveness, and drops the hints of members that left the cluster. Its
** counts are the metrics HINTS_* (metrics.h). docs/handoff.md has the
** design, settings and guarantees.
**
** Threads: everything runs on the loop thread except handoff_view and
** handoff_pending, which worker threads (admin commands) call; they read
** a snapshot under a mutex and seek the hints column family.
*/
#ifndef CELLAR_HANDOFF_H
#define CELLAR_HANDOFF_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "cluster.h"
#include "config.h"
#include "engine.h"
#include "result.h"
#include "storage.h"

typedef struct handoff handoff;

/*
** Blocking (scans the hints column family to count what is there): call
** before the loop runs. All arguments borrowed; they must outlive the
** handoff. *out: caller frees with handoff_free() after the loop ended.
*/
int handoff_new(uv_loop_t *loop, const config *cfg, engine *eng, cluster *cl,
                handoff **out);
/* Starts the replay timer / stops everything (no callback after). */
int handoff_start(handoff *h);
void handoff_stop(handoff *h);
void handoff_free(handoff *h);

/*
** Stores a hint for target_host carrying the raw entries e[0..n) (copied),
** expiring gc_grace_s after now (replaying a mutation older than its
** table's gc_grace could bring back data whose tombstone was purged).
** Returns 0 and later calls done(arg, rc) on the loop once the hint is in
** the WAL (rc 0) or could not be written (never before handoff_store
** returned); or returns a code and never calls done: CELLAR_EINVAL (hints disabled, the target is this node),
** CELLAR_EUNAVAILABLE (the target has been down longer than the hint
** window: counted HINTS_EXPIRED), CELLAR_ETOOBIG (over the per-target disk
** cap: counted HINTS_REFUSED), CELLAR_ESHUTDOWN, CELLAR_ENOMEM.
*/
int handoff_store(handoff *h, const char *target_host, const storage_entry *e,
                  size_t n, uint32_t gc_grace_s, void (*done)(void *arg, int rc),
                  void *arg);

/* A REPLICA_ACK whose id no coordinated request has: 1 when it answered a
** replay of this handoff, 0 otherwise. */
int handoff_on_ack(handoff *h, uint64_t id, const char *host_id, int code);

/* The connection to a peer failed: replays to it stop (and back off). */
void handoff_on_peer_failed(handoff *h, const char *addr);

/* cluster_set_member_handler's callback (arg: the handoff). */
void handoff_on_member(void *arg, const char *host_id, int up);

/* ------------------------------------------------ worker-thread views */

/* ADMIN "hints": info pairs "hints.total", "hints.targets",
** "hints.throttle_kib", then per target "hints.<host id>" = "COUNT BYTES
** OLDEST_AGE_S STATE REPLAYED EXPIRED FAILURES", space-separated (oldest
** from the hints column family; -1 when unknown). Thread-safe. */
int handoff_view(handoff *h, result *res);

/* Hints pending for host_id (0 when none or unknown). Thread-safe. */
uint64_t handoff_pending(handoff *h, const char *host_id);

#endif
