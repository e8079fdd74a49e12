/*
** harness: start and stop real cellard processes on loopback for the
** multi-process tests. The cellard binary comes from $CELLARD (set by
** ctest), the tools from $CELLAR_CLI, $CELLAR_ADMIN, $CELLAR_BENCH.
** The cluster helpers at the end (start a member, wait for the failure
** detectors' view, create a keyspace everywhere, put/get one value) are
** what the multi-node tests share.
*/
#ifndef CELLAR_HARNESS_H
#define CELLAR_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include "cellar/cellar.h"

typedef struct node_proc {
  pid_t pid;                   /* 0 when not running */
  char host[32];               /* "127.0.0.1" */
  int port;                    /* client port */
  char data_dir[512];
  char log_path[600];
  char addr[64];               /* "127.0.0.1:PORT" */
  int peer_port;               /* node-to-node port */
  char peer_addr[64];          /* "127.0.0.1:PEER_PORT" */
} node_proc;

/* Picks two free ports on host (client, peer), prepares a data dir under
** base (created). Does not start anything. */
void harness_node_init(node_proc *n, const char *base, const char *host,
                       int index);

/* Starts cellard with the node's settings plus extra flags (NULL-terminated
** array, may be NULL), waits until it accepts connections (timeout_ms).
** Returns 0 or -1 (the log path tells why). */
int harness_node_start(node_proc *n, const char *const *extra, int timeout_ms);

/* Sends sig; for SIGTERM/SIGKILL also waits for exit. Returns the exit
** status as given by waitpid (or -1). */
int harness_node_signal(node_proc *n, int sig);

/* Runs a command (argv NULL-terminated), captures stdout+stderr into a
** malloc'd string (*out, caller frees; may be NULL), returns exit status
** (0..255) or -1. */
int harness_run(const char *const *argv, char **out);

/* ------------------------------------------------------------------
** Cluster helpers (additions). They use libcellar; every address is the
** node's client address (node_proc.addr).
*/
/* Waits until node n's log, past byte offset from (0: the whole log), has
** a line matching the extended regex re. 0, or -1 after seconds. */
int harness_wait_log(const node_proc *n, long from, const char *re, int seconds);

/* Current size of node n's log (0 when absent): an offset for
** harness_wait_log that skips what earlier runs of the node wrote. */
long harness_log_size(const node_proc *n);

/* Joins the peer addresses of nodes[0..count) with commas into buf. */
void harness_seeds(const node_proc *nodes, int count, char *buf, size_t len);

/* How a cluster member is started (harness_member_start). Zeros and NULLs
** leave cellard's own default, except gossip_interval_ms (0: 200, the
** short interval the loopback tests use). */
typedef struct harness_member {
  const char *seeds;           /* --seeds; borrowed */
  const char *dc, *rack;       /* --dc, --rack; borrowed */
  int gossip_interval_ms;
  int read_timeout_ms;         /* --read-request-timeout */
  int write_timeout_ms;        /* --write-request-timeout */
  const char *const *extra;    /* more flags, NULL-terminated; borrowed */
  int ready_seconds;           /* 0: 30 */
} harness_member;

/* Starts node n with m's settings and waits until its log says it is
** part of the ring in this run ("cluster: normal", "first node" or
** "restarting"). 0, or -1 (the log tells why). */
int harness_member_start(node_proc *n, const harness_member *m);

/* A client of node n alone when routing is CELLAR_ROUTE_NONE, else one
** that routes from the ring it learns from n. timeout_ms: the request
** timeout (0: 8000). NULL when the connection fails. Caller frees with
** cellar_close(). */
cellar_client_t *harness_connect(const node_proc *n, cellar_routing_t routing,
                                 int timeout_ms);

/* How node `from` sees node `who`: 1 up and normal, 0 down or not normal,
** -1 absent from its status or no answer. */
int harness_view(const node_proc *from, const node_proc *who);

/* Waits until harness_view(from, who) is `up` (1 or 0). 0, or -1 after
** seconds. */
int harness_wait_view(const node_proc *from, const node_proc *who, int up, int seconds);

/* Waits until every node of nodes[0..count) sees every one up and normal.
** 0, or -1 after seconds (in all). */
int harness_wait_all_up(const node_proc *nodes, int count, int seconds);

/* Creates keyspace ks (replication as cellar_create_keyspace takes it) and
** the tables named in tables (NULL-terminated, default options) through
** nodes[0], then waits until every node of nodes[0..count) describes all
** of them. 0, or a negative code / -1 after seconds (stderr says which). */
int harness_create_keyspace(const node_proc *nodes, int count, const char *ks,
                            const char *replication, const char *const *tables,
                            int seconds);

/* The same with table options t (NULL: the defaults) for every table,
** e.g. conflict_policy "lww" for a test that wants one value per cell. */
int harness_create_keyspace_with(const node_proc *nodes, int count, const char *ks,
                                 const char *replication, const char *const *tables,
                                 const cellar_table_options_t *t, int seconds);

/* 1 when node n is among the replicas of key in ks.table as c's node
** tells (admin getendpoints), else 0. */
int harness_replica_of(cellar_client_t *c, const char *ks, const char *table, const char *key,
                       const node_proc *n);

/* Writes value into column "v" of row (partition key, no clustering key)
** of ks.table at level cl. Returns cellar_put's code; msg (msglen bytes,
** may be NULL) gets the result's message. */
int harness_put(cellar_client_t *c, const char *ks, const char *table, const char *key,
                const char *value, cellar_consistency_t cl, char *msg, size_t msglen);

/* Reads row key of ks.table at level cl: 1 and the first cell's value in
** out (outlen bytes, may be NULL) when found, 0 when absent, else the
** negative code with the message in msg (may be NULL). */
int harness_get(cellar_client_t *c, const char *ks, const char *table, const char *key,
                cellar_consistency_t cl, char *out, size_t outlen, char *msg, size_t msglen);

/* A thread writing keys PREFIX000000, PREFIX000001, ... (each its own
** value, as harness_put) in order through one node until stopped, noting
** which writes were acknowledged: the load of the tests that change the
** cluster under writes. Fill the first fields, then _start; read the
** counters after _stop. */
typedef struct harness_writer {
  const node_proc *node;       /* coordinator (token-aware client of it) */
  const char *ks, *table;      /* borrowed until _stop */
  const char *prefix;          /* "w" when NULL */
  cellar_consistency_t cl;
  int max;                     /* keys at most */
  /* set by the writer */
  _Atomic int stop, written, failed;
  _Atomic unsigned char *acked;  /* max flags; malloc'd by _start, freed by _free */
  pthread_t th;
  int started;
} harness_writer;

/* 0, or -1 (no memory, no thread). */
int harness_writer_start(harness_writer *w);
/* Stops and joins the thread; returns the writes issued. */
int harness_writer_stop(harness_writer *w);
/* Was write i acknowledged? */
int harness_writer_acked(const harness_writer *w, int i);
/* The key of write i into buf. */
void harness_writer_key(const harness_writer *w, int i, char *buf, size_t len);
void harness_writer_free(harness_writer *w);

#endif
