/*
** proxy: replication on the loop thread. The coordinator side takes a
** client's data request whose replicas are not just this node, runs a
** coordinator state machine (coordinator.h) for it, and turns its actions
** into I/O: local storage work on the libuv pool, REPLICA_* frames to the
** other replicas through the cluster's peer transport, one timer per
** request. The replica side answers those frames from other coordinators.
**
** Everything here runs on the loop thread; storage is only touched by
** uv_queue_work jobs.
*/
#ifndef CELLAR_PROXY_H
#define CELLAR_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "cluster.h"
#include "config.h"
#include "engine.h"
#include "wire.h"

typedef struct proxy proxy;

/* All borrowed; they must outlive the proxy. */
int proxy_new(uv_loop_t *loop, const config *cfg, engine *eng, cluster *cl,
              proxy **out);
void proxy_free(proxy *p);

/* Hinted handoff for STORE_HINT actions and replay acks (borrowed; it
** must outlive the proxy). Without one, hints are counted and dropped. */
typedef struct handoff handoff;
void proxy_set_handoff(proxy *p, handoff *ho);

/*
** Called when the answer of a submitted request is ready: frame is one
** complete encoded response frame (malloc'd; ownership passes to the
** callee).
*/
typedef void (*proxy_done)(void *arg, uint8_t *frame, size_t len);

/*
** Coordinates req (a decoded PUT, DELETE, GET or SLICE; ownership passes
** to the proxy). done(arg, ...) is called exactly once, on the loop thread,
** possibly before this returns.
*/
void proxy_submit(proxy *p, request *req, proxy_done done, void *arg);

/*
** Worker-thread test, before proxy_needed: may req be served now? 0, or
** CELLAR_EUNAVAILABLE with why in msg (cap bytes) for a data request
** (PUT, DELETE, GET, SLICE) while the node has not learned the ring
** (cluster_ring_learned). Thread-safe.
*/
int proxy_admit(proxy *p, const request *req, char *msg, size_t cap);

/*
** Worker-thread test: does req need the proxy, i.e. is some replica of its
** key another node? When it returns 0 the request can run locally through
** the engine as on a single node. Thread-safe.
*/
int proxy_needed(proxy *p, const request *req);

/* The handler of REPLICA_* peer frames (cluster_set_handler). */
void proxy_on_frame(void *arg, const frame_header *h, const uint8_t *payload);

/* The connection to a peer failed: its pending answers will never come,
** so every request waiting on it hears an error now instead of timing
** out (cluster_set_fail_handler). */
void proxy_on_peer_failed(void *arg, const char *addr);

/* Aborts every request in flight (CELLAR_ESHUTDOWN) and stops answering
** replica frames; their callbacks run before this returns. */
void proxy_stop(proxy *p);

typedef struct proxy_stats {
  uint64_t coordinated, local, answered, timeouts, unavailable;
  uint64_t replica_applies, replica_reads, read_repairs, hints_dropped;
  uint64_t forwarded;           /* siblings writes sent to a replica */
} proxy_stats;
void proxy_get_stats(const proxy *p, proxy_stats *out);

#endif
