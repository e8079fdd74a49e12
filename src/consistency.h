/*
** consistency: what a consistency level asks of the replica set of one key.
**
** Three pieces, all pure computation (no I/O, no clock, no locks):
**
**   cl_need_init     the level's requirement for a keyspace, seen from the
**                    coordinator's datacenter: how many acknowledgements in
**                    all, and from where (anywhere, the local datacenter
**                    only, or a quorum in every datacenter);
**   cl_check_alive   whether the replicas believed alive can meet it (else
**                    CELLAR_EUNAVAILABLE, "QUORUM requires 2 replicas, 1
**                    alive");
**   cl_tracker       acknowledgements as they come, one per replica at
**                    most, and whether the level is met or can still be.
**
** The arithmetic is Cassandra's (docs/coordinator.md has the table):
**
**   ONE, TWO, THREE      1, 2, 3 replicas anywhere
**   QUORUM               floor(sum of every datacenter's rf / 2) + 1
**   ALL                  the sum of the rf (not the replicas found: a ring
**                        with fewer members than rf cannot meet ALL)
**   LOCAL_ONE            1 replica of the local datacenter
**   LOCAL_QUORUM         floor(local rf / 2) + 1 replicas of the local one
**   EACH_QUORUM          floor(rf_dc / 2) + 1 in every datacenter of the
**                        keyspace with rf_dc > 0
**   ANY                  writes only: one replica, or one stored hint
**
** Decisions where Cassandra's versions differ:
**   1. SimpleStrategy knows no datacenters, so every replica of a
**      SimpleStrategy keyspace is local: LOCAL_ONE is ONE, LOCAL_QUORUM and
**      EACH_QUORUM are QUORUM (Cassandra 4 behaves so; Cassandra 2 refused
**      the request). local_dc may then be NULL.
**   2. With NetworkTopologyStrategy a LOCAL_* level needs local_dc
**      (CELLAR_EBADCL otherwise). A local datacenter without replicas in
**      the keyspace makes LOCAL_ONE need 1 and LOCAL_QUORUM need
**      floor(0/2)+1 = 1 local replicas: always unavailable, as Cassandra.
**   3. EACH_QUORUM is valid for reads and writes (Cassandra 3+).
**   4. ANY on a read, CELLAR_CL_DEFAULT (resolved by the wire layer) and
**      values outside the enum are CELLAR_EBADCL.
**   5. TWO and THREE above the replication factor are not refused: they
**      are unavailable ("THREE requires 3 replicas, 2 alive"), as
**      Cassandra.
*/
#ifndef CELLAR_CONSISTENCY_H
#define CELLAR_CONSISTENCY_H

#include <stddef.h>
#include <stdint.h>
#include "cellar/cellar.h"
#include "ring.h"
#include "schema.h"

/* Replicas of one key a coordinator handles at most (sum of the rf). */
#define CL_MAX_REPLICAS 64

/* One replica of a key as the coordinator sees it at the request's start. */
typedef struct cl_replica {
  uint32_t member;               /* ring member index; opaque here */
  char dc[RING_NAME_MAX + 1];    /* its datacenter */
  int alive;                     /* the failure detector's view */
} cl_replica;

/* Fills out[0..n) from ring members (ring_replicas' output). alive[i] is
** the view of members[i]; alive NULL: every replica alive. */
void cl_replicas_from_ring(const ring *r, const uint32_t *members, size_t n,
                           const uint8_t *alive, cl_replica *out);

typedef enum cl_scope {
  CL_SCOPE_ANY_DC = 1,           /* every replica counts */
  CL_SCOPE_LOCAL_DC = 2,         /* only replicas of local_dc count */
  CL_SCOPE_EACH_DC = 3           /* dcs[d].need in every listed dc */
} cl_scope;

typedef struct cl_need {
  cellar_consistency_t level;
  int write;                     /* 1: a write (ANY allowed) */
  cl_scope scope;
  uint32_t total;                /* acknowledgements required in all */
  char local_dc[RING_NAME_MAX + 1];   /* "" when not given */
  size_t ndcs;                   /* CL_SCOPE_EACH_DC only */
  struct {
    char name[RING_NAME_MAX + 1];
    uint32_t need;
  } dcs[SCHEMA_DC_MAX];
} cl_need;

/*
** The requirement of level for a read (write 0) or a write (write 1) on
** keyspace ks, coordinated from datacenter local_dc (may be NULL, see
** decision 2). Returns 0, or CELLAR_EBADCL with a message in err (errlen
** bytes, always NUL-terminated; err may be NULL).
*/
int cl_need_init(cl_need *n, const keyspace_def *ks, const char *local_dc,
                 cellar_consistency_t level, int write, char *err,
                 size_t errlen);

/* Which group a replica of datacenter dc counts in: -1 when its
** acknowledgement does not count for the level (LOCAL_* and a remote
** replica; EACH_QUORUM and a datacenter outside the keyspace), else 0, or
** the index in n->dcs for EACH_QUORUM. */
int cl_group(const cl_need *n, const char *dc);

/*
** 0 when the replicas marked alive can meet the level, else
** CELLAR_EUNAVAILABLE with "QUORUM requires 2 replicas, 1 alive" (LOCAL_*
** and EACH_QUORUM name the datacenter short of replicas: "LOCAL_QUORUM
** requires 2 replicas in dc1, 1 alive"). ANY needs one replica, alive or
** not (a hint satisfies it).
*/
int cl_check_alive(const cl_need *n, const cl_replica *reps, size_t nreps,
                   char *err, size_t errlen);

/* Acknowledgements of one request, per replica (index into the replica
** list given at init). A plain value: embed it, no _close needed. */
typedef struct cl_tracker {
  cl_need need;
  size_t nreplicas;
  int8_t group[CL_MAX_REPLICAS];      /* cl_group of each replica */
  uint8_t state[CL_MAX_REPLICAS];     /* CL_PENDING, CL_ACKED, CL_EXCLUDED */
  uint32_t got;                       /* acknowledgements that counted */
  uint32_t got_dc[SCHEMA_DC_MAX];     /* EACH_QUORUM, per n->dcs */
} cl_tracker;

enum { CL_PENDING = 0, CL_ACKED = 1, CL_EXCLUDED = 2 };

/* 0, or CELLAR_EINVAL when nreps > CL_MAX_REPLICAS. */
int cl_tracker_init(cl_tracker *t, const cl_need *n, const cl_replica *reps,
                    size_t nreps);
/* Replica i acknowledged. Returns 1 when this acknowledgement was recorded
** (first one of a pending replica), 0 when ignored: out of range, a
** duplicate, an excluded replica. A recorded ack of a replica that does
** not count for the level (cl_group -1) changes nothing else. */
int cl_tracker_ack(cl_tracker *t, uint32_t i);
/* Replica i will never acknowledge (down, failed, not asked). Ignored for
** an acknowledged replica. */
void cl_tracker_exclude(cl_tracker *t, uint32_t i);
/* 1 when the level is met. */
int cl_tracker_met(const cl_tracker *t);
/* 1 when the level is met or pending replicas could still meet it. */
int cl_tracker_reachable(const cl_tracker *t);
/* Acks required / counted so far, as the messages state them. */
uint32_t cl_tracker_required(const cl_tracker *t);
uint32_t cl_tracker_received(const cl_tracker *t);
/* "QUORUM required 2 acks, got 1"; for LOCAL_* and EACH_QUORUM the
** datacenter short of acks: "EACH_QUORUM required 2 acks in dc2, got 1".
** noun: "acks" or "responses". Writes into buf (always NUL-terminated). */
void cl_tracker_describe(const cl_tracker *t, const char *noun, char *buf,
                         size_t len);

#endif
