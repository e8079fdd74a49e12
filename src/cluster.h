/*
** cluster: this node's place in the cluster. Glues the gossip state machine
** to the peer transport and the loop's timer, keeps this node's tokens,
** walks the join lifecycle, builds the token ring from what gossip knows,
** and keeps the schema in agreement with the other nodes.
**
** Join lifecycle (this node):
**
**   start --tokens on disk--------------------------------------> NORMAL
**     |                                                             ^
**     +--no tokens, no other seed: allocate alone ------------------+
**     |                                                             |
**     +--no tokens--> WAIT (gossip for a few rounds, learn the ring)|
**                       | another live node has this address: stop  |
**                       | (a wiped node never takes its old place)  |
**                       v                                           |
**                    JOINING (tokens chosen, saved, announced) -----+
**
** A node restarted with its tokens and a seed other than itself is NORMAL
** at once but knows only itself: it refuses data requests until gossip
** brought it the ring (cluster_ring_learned).
**
** Decommission (cellar-admin decommission, on the node that leaves):
**
**   NORMAL --announce "leaving" (pending replicas: the ring without it)
**     --a few rounds--> STREAM_ORDER to every node that gains ranges (pull
**     them from me) --all STREAM_ORDER_DONE--> announce "left", answer,
**     exit. A failure puts "normal" back.
**
** Removenode HOSTID (on any live node, for a member that is down): the
** nodes gaining its ranges pull them from surviving replicas (STREAM_ORDER),
** then HOSTID goes into this node's GK_REMOVED ("host:generation,..."):
** every node forgets it and refuses its gossip of that generation or older.
**
** Threads: everything runs on the loop thread, except the cluster_*view
** functions, which worker threads (the engine) call: they take the mutex
** the loop holds while it changes gossip state or the ring.
*/
#ifndef CELLAR_CLUSTER_H
#define CELLAR_CLUSTER_H

#include <stdint.h>
#include <uv.h>
#include "config.h"
#include "consistency.h"
#include "frame.h"
#include "result.h"
#include "schema.h"
#include "storage.h"

typedef struct cluster cluster;

typedef struct cluster_options {
  uv_loop_t *loop;             /* borrowed */
  const config *cfg;           /* borrowed */
  storage *st;                 /* borrowed */
  schema *sc;                  /* borrowed */
  const char *host_id;         /* copied */
  uint64_t generation;
  /* called on the loop when the node must stop (e.g. its address is taken
  ** by another live node); msg is borrowed for the call */
  void (*fatal)(void *arg, const char *msg);
  void *fatal_arg;
  /* called on the loop (with fatal_arg) once a decommissioned node has
  ** announced "left": it must stop (exit status 0) */
  void (*left)(void *arg);
} cluster_options;

/* Reads this node's tokens from storage (blocking: call before the loop
** runs). *out: caller frees with cluster_free() after cluster_stop's
** callback ran. */
int cluster_new(const cluster_options *o, cluster **out);

/* Listens on the peer port, starts gossiping. 0 or a code (logged). */
int cluster_start(cluster *c);

/* Stops the timer, closes the peer transport; done(arg) on the loop. */
void cluster_stop(cluster *c, void (*done)(void *), void *arg);
void cluster_free(cluster *c);

/* The schema changed locally (any thread): announce it and push it. */
void cluster_schema_changed(cluster *c);

/* ------------------------------------------- views for worker threads */

/* Every member as this node sees it, with ownership for ks (NULL:
** primary ownership), into out->members. */
int cluster_view_status(cluster *c, const keyspace_def *ks, result *out);

/* The replicas of a partition key for ks, in ring order, into
** out->members. */
int cluster_view_endpoints(cluster *c, const keyspace_def *ks,
                           const void *key, size_t nkey, result *out);

/* Every token of the ring: info pairs token -> "host_id address dc rack". */
int cluster_view_ring(cluster *c, result *out);

/* 0 while this node, restarted with its tokens, has not yet learned the
** ring from gossip (it knows only itself: it would place keys wrongly):
** data requests must then be refused. 1 otherwise. Any thread. */
int cluster_ring_learned(cluster *c);

/* One replica of a key for the replication proxy. */
typedef struct cluster_replica {
  cl_replica r;                /* ring member, datacenter, alive */
  char host_id[40];
  char peer_addr[80];
  int is_self;
} cluster_replica;

/*
** The replicas of token t for ks, in preference order: this node first if
** it is one, then the others of the local datacenter, then the rest in ring
** order. At most max; returns how many. When npending is not NULL, the
** pending replicas follow (members joining the ring that will own t once
** normal: writes go to them too) and *npending says how many.
*/
size_t cluster_replicas(cluster *c, const keyspace_def *ks, int64_t t,
                        cluster_replica *out, size_t max, size_t *npending);

/* A range of the token ring for repair: tokens lo..hi (inclusive, lo >
** INT64_MIN), every token of it owned by the same replicas; primary_self
** when this node owns hi (the range is then its primary range). */
typedef struct cluster_token_range {
  int64_t lo, hi;
  int primary_self;
} cluster_token_range;

/* The ring cut into cluster_token_ranges, in token order (the range that
** wraps around the ring comes as two). *out: malloc'd, caller frees;
** *n = 0 when the ring is empty. 0 or CELLAR_ENOMEM. Any thread. */
int cluster_token_ranges(cluster *c, cluster_token_range **out, size_t *n);

/* Borrowed, valid for the life of the cluster. */
const char *cluster_local_dc(const cluster *c);
const char *cluster_host_id(const cluster *c);
const char *cluster_peer_addr(const cluster *c);
const char *cluster_name(const cluster *c);

/* Queues a frame to a peer (loop thread only). */
int cluster_send(cluster *c, const char *addr, unsigned type, uint32_t id,
                 const uint8_t *p, size_t n);

/* Frames of types the cluster does not handle itself (replication) go to
** this handler, on the loop thread. */
typedef void (*cluster_frame_fn)(void *arg, const frame_header *h,
                                 const uint8_t *payload);
void cluster_set_handler(cluster *c, cluster_frame_fn fn, void *arg);

/* A connection to this peer address failed lately (peer.h's
** peer_failing; loop thread only). */
int cluster_peer_failing(cluster *c, const char *addr);
/* Adds fn: fn(arg, addr) when the connection to a peer fails (loop
** thread). Every handler added is called, in order (at most
** CL_MAX_FAIL_FNS). */
#define CL_MAX_FAIL_FNS 4
void cluster_set_fail_handler(cluster *c, void (*fn)(void *arg, const char *addr),
                              void *arg);

/* What hinted handoff needs to know of one member (loop thread). */
enum {
  CLUSTER_MEMBER_UNKNOWN = 0,  /* not heard of (yet) */
  CLUSTER_MEMBER_UP = 1,
  CLUSTER_MEMBER_DOWN = 2,
  CLUSTER_MEMBER_GONE = 3      /* left the cluster or removed */
};
typedef struct cluster_member_info {
  int state;                   /* CLUSTER_MEMBER_* */
  char peer_addr[80];
  uint64_t down_since_ns;      /* DOWN: clock_mono_ns() when marked down
                                  (or when this node started, if it never
                                  saw the member up) */
} cluster_member_info;
void cluster_member(cluster *c, const char *host_id, cluster_member_info *out);
/* fn(arg, host_id, up) when the failure detector marks a member up (1) or
** down (0). Runs on the loop thread with the cluster's lock held: fn must
** not call into the cluster (it may start a timer). */
void cluster_set_member_handler(cluster *c,
                                void (*fn)(void *arg, const char *host_id, int up),
                                void *arg);

/* A token range of one table to fetch on bootstrap: tokens lo..hi
** (inclusive, lo > INT64_MIN), from the node at source ("" = none alive). */
typedef struct cluster_range {
  uint64_t table_id;
  int64_t lo, hi;
  char source[80];
} cluster_range;

/*
** Bootstrap: once a joining node's tokens are announced (and its schema
** agrees with the live members'), the cluster computes the ranges it
** gains and hands them to fn (loop thread), which must call
** cluster_bootstrap_done when they are all in (rc 0: the node becomes
** normal) or could not be fetched (it tries again). Without fn the node
** becomes normal without streaming.
*/
typedef int (*cluster_bootstrap_fn)(void *arg, const cluster_range *r, size_t n);
void cluster_set_bootstrap(cluster *c, cluster_bootstrap_fn fn, void *arg);
void cluster_bootstrap_done(cluster *c, int rc);

/*
** Worker threads (admin commands). decommission and removenode start the
** operation (see the lifecycle notes above) and answer at once with its
** state, or with an error naming why it cannot start; cluster_op_status
** answers the state of the last one: info pairs operation, state
** (announcing, streaming, done, failed), error, ranges, nodes, nodes_done,
** entries, and per gaining node "N ranges, pulling|done|failed, E entries".
** A decommissioned node exits once its "done" was fetched (or after
** LEFT_EXIT_MAX_TICKS rounds).
*/
int cluster_decommission(cluster *c, result *res);
int cluster_removenode(cluster *c, const char *host_id, result *res);
int cluster_op_status(cluster *c, result *res);

/* This node's state: "joining", "normal". */
const char *cluster_state_name(cluster *c);

#endif
