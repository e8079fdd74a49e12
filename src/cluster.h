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
** Range streaming on join, decommission and removenode belong to the
** lifecycle too and are not built yet (see docs/cluster.md).
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

/* This node's state: "joining", "normal". */
const char *cluster_state_name(cluster *c);

#endif
