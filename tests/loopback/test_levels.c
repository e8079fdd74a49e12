/*
** Consistency levels across two datacenters on real processes: six
** cellard nodes, dc1 = nodes 0-2 and dc2 = nodes 3-5 (racks alternating as
** tools/cluster.sh places them), keyspace NetworkTopologyStrategy
** dc1=3,dc2=3, so every node holds a copy of every key. Node 0
** coordinates every level case (a client pinned to it).
**
** For each level, a write and a read of one key, with 0, 1 or 2 replicas
** down, give the outcome of the table below: success; unavailable when the
** replicas are killed and node 0's failure detector knows it; a timeout
** when they are frozen (SIGSTOP) and node 0 still counts them alive. Both
** errors must name the level, the replicas required and those alive or
** that answered. Then QUORUM read-your-writes under a concurrent writer
** (readers on other coordinators, in both datacenters), with every replica
** up and with one killed.
**
** The replicas are named by role, from node 0's point of view and the key
** used (getendpoints gives the ring order, which is the coordinator's
** order within a datacenter): L1, L2 the other dc1 replicas, R1, R2, R3
** the dc2 ones. What the roles decide:
**   - a read asks exactly the replicas its level needs, in the order
**     self, L1, L2, R1, R2, R3 (alive ones only), and waits for all it
**     asked: a frozen replica among them is a timeout even when others
**     could have answered;
**   - a write goes to every replica believed alive, but to dc2 as one copy
**     sent to the first one (R1), which forwards it to R2 and R3: with R1
**     frozen no dc2 replica acknowledges.
**
** One cluster serves every case; killed nodes are restarted between cases
** and waited for until every node sees them up. Requests of a frozen case
** are sent together, so the whole batch takes one request timeout (two:
** libcellar retries a timed-out request once) and ends well before the
** failure detector convicts the frozen nodes.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

#define N 6
#define TIMEOUT_MS 1000          /* read and write request timeouts of the nodes */
#define KEY "lv"                 /* the key of every level case */
#define RYW_SECONDS 3

static node_proc nodes[N];
static char *base;
static char seeds[160];
static int g_ready;              /* cluster, schema and roles known */

/* Node indexes of the roles (see the header). */
enum { L1, L2, R1, R2, R3, NROLES };
static const char *const role_names[NROLES] = {"L1", "L2", "R1", "R2", "R3"};
static int role[NROLES];

#define NEED_CLUSTER() CU_ASSERT_FATAL(g_ready)

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);   /* SIGCONTs too */
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int start_node(int i) {
  harness_member m = {.seeds = seeds, .dc = i < 3 ? "dc1" : "dc2",
                      .rack = i % 2 ? "rack2" : "rack1", .read_timeout_ms = TIMEOUT_MS,
                      .write_timeout_ms = TIMEOUT_MS};
  return harness_member_start(&nodes[i], &m);
}

static cellar_client_t *pinned(int i) {
  cellar_client_t *c = harness_connect(&nodes[i], CELLAR_ROUTE_NONE, 10000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  return c;
}

/* ------------------------------------------------- expected outcomes */

/* The levels in the order of the table's columns. */
#define NLEVELS 9
static const cellar_consistency_t levels[NLEVELS] = {
  CELLAR_CL_ONE, CELLAR_CL_TWO, CELLAR_CL_THREE, CELLAR_CL_QUORUM, CELLAR_CL_ALL,
  CELLAR_CL_LOCAL_ONE, CELLAR_CL_LOCAL_QUORUM, CELLAR_CL_EACH_QUORUM, CELLAR_CL_ANY};

/*
** One case: which roles are down and how, and per level the outcome of
** a write and of a read through node 0. An outcome is "ok", or a code
** letter and the text the error message must contain: "U:" unavailable,
** "T:" timed out, "B:" invalid level.
**
** Requirements with rf 3 + 3 (docs/coordinator.md): ONE 1, TWO 2, THREE
** 3, QUORUM 6/2+1 = 4, ALL 6, LOCAL_ONE 1 in dc1, LOCAL_QUORUM 2 in dc1,
** EACH_QUORUM 2 in dc1 and 2 in dc2, ANY 1 (writes only).
*/
typedef struct level_case {
  const char *name;
  int frozen;                    /* 1: SIGSTOP; 0: kill -9, known down */
  int down[2];                   /* roles, -1 for none */
  const char *write[NLEVELS];
  const char *read[NLEVELS];
} level_case;

#define ALL_OK {"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"}

static const level_case cases_up = {
  /* every replica answers: every level is met; ANY is refused on reads */
  "all up", 0, {-1, -1}, ALL_OK,
  {"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "B:ANY"}};

static const level_case cases_killed[] = {
  /* 5 alive (2 in dc1): only ALL lacks replicas, for reads as for writes */
  {"L1 killed", 0, {L1, -1},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 5 alive", "ok", "ok", "ok", "ok"},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 5 alive", "ok", "ok", "ok", NULL}},
  /* 4 alive, 1 in dc1: QUORUM (4) still met; the dc1 quorum of LOCAL_QUORUM
  ** and EACH_QUORUM is not; ANY needs no live replica but gets one */
  {"L1 L2 killed", 0, {L1, L2},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 4 alive", "ok",
    "U:LOCAL_QUORUM requires 2 replicas in dc1, 1 alive",
    "U:EACH_QUORUM requires 2 replicas in dc1, 1 alive", "ok"},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 4 alive", "ok",
    "U:LOCAL_QUORUM requires 2 replicas in dc1, 1 alive",
    "U:EACH_QUORUM requires 2 replicas in dc1, 1 alive", NULL}},
  /* 5 alive, dc1 whole: only ALL; the dc2 copy is forwarded by R2 now */
  {"R1 killed", 0, {R1, -1},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 5 alive", "ok", "ok", "ok", "ok"},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 5 alive", "ok", "ok", "ok", NULL}},
  /* 4 alive, 1 in dc2: QUORUM met (dc1's 3 + R3); EACH_QUORUM not; the
  ** LOCAL_* levels do not care about dc2 */
  {"R1 R2 killed", 0, {R1, R2},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 4 alive", "ok", "ok",
    "U:EACH_QUORUM requires 2 replicas in dc2, 1 alive", "ok"},
   {"ok", "ok", "ok", "ok", "U:ALL requires 6 replicas, 4 alive", "ok", "ok",
    "U:EACH_QUORUM requires 2 replicas in dc2, 1 alive", NULL}},
};

static const level_case cases_frozen[] = {
  /* writes: 5 acks (self, L2, R1-R3), only ALL times out. Reads ask self
  ** first, then L1: every level needing more than one dc1 answer waits on
  ** L1 (LOCAL_ONE and ONE read self alone) */
  {"L1 frozen", 1, {L1, -1},
   {"ok", "ok", "ok", "ok", "T:ALL required 6 acks, got 5", "ok", "ok", "ok", "ok"},
   {"ok", "T:TWO required 2 responses, got 1", "T:THREE required 3 responses, got 2",
    "T:QUORUM required 4 responses, got 3", "T:ALL required 6 responses, got 5", "ok",
    "T:LOCAL_QUORUM required 2 responses in dc1, got 1",
    "T:EACH_QUORUM required 2 responses in dc1, got 1", NULL}},
  /* writes: 4 acks, 1 from dc1: QUORUM met, the dc1 quorums are not */
  {"L1 L2 frozen", 1, {L1, L2},
   {"ok", "ok", "ok", "ok", "T:ALL required 6 acks, got 4", "ok",
    "T:LOCAL_QUORUM required 2 acks in dc1, got 1",
    "T:EACH_QUORUM required 2 acks in dc1, got 1", "ok"},
   {"ok", "T:TWO required 2 responses, got 1", "T:THREE required 3 responses, got 1",
    "T:QUORUM required 4 responses, got 2", "T:ALL required 6 responses, got 4", "ok",
    "T:LOCAL_QUORUM required 2 responses in dc1, got 1",
    "T:EACH_QUORUM required 2 responses in dc1, got 1", NULL}},
  /* R1 is the dc2 forwarder: R2 and R3 never get the write, 3 acks (dc1).
  ** Reads ask R1 from QUORUM (self, L1, L2, R1) and EACH_QUORUM (R1, R2) */
  {"R1 frozen", 1, {R1, -1},
   {"ok", "ok", "ok", "T:QUORUM required 4 acks, got 3", "T:ALL required 6 acks, got 3",
    "ok", "ok", "T:EACH_QUORUM required 2 acks in dc2, got 0", "ok"},
   {"ok", "ok", "ok", "T:QUORUM required 4 responses, got 3",
    "T:ALL required 6 responses, got 5", "ok", "ok",
    "T:EACH_QUORUM required 2 responses in dc2, got 1", NULL}},
  /* R2 is not the forwarder: 5 acks. Reads: QUORUM stops at R1, EACH_QUORUM
  ** asks R1 and R2 */
  {"R2 frozen", 1, {R2, -1},
   {"ok", "ok", "ok", "ok", "T:ALL required 6 acks, got 5", "ok", "ok", "ok", "ok"},
   {"ok", "ok", "ok", "ok", "T:ALL required 6 responses, got 5", "ok", "ok",
    "T:EACH_QUORUM required 2 responses in dc2, got 1", NULL}},
  /* 4 acks, R1 the only one in dc2: QUORUM met, EACH_QUORUM not */
  {"R2 R3 frozen", 1, {R2, R3},
   {"ok", "ok", "ok", "ok", "T:ALL required 6 acks, got 4", "ok", "ok",
    "T:EACH_QUORUM required 2 acks in dc2, got 1", "ok"},
   {"ok", "ok", "ok", "ok", "T:ALL required 6 responses, got 4", "ok", "ok",
    "T:EACH_QUORUM required 2 responses in dc2, got 1", NULL}},
};

/* ------------------------------------------------- running a case */

/* One request of a batch and what came back. */
typedef struct outcome {
  int done, code;
  char msg[256];
  double ms;
  double t0;
} outcome;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void on_done(int status, cellar_result_t *res, void *arg) {
  outcome *o = arg;
  pthread_mutex_lock(&g_mu);
  o->code = status;
  snprintf(o->msg, sizeof o->msg, "%s", cellar_result_message(res));
  o->ms = now_ms() - o->t0;
  o->done = 1;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
}

/* Does outcome o match the expectation exp (see level_case)? */
static int matches(const outcome *o, const char *exp) {
  if (!strcmp(exp, "ok")) return o->code == 0;
  int want = exp[0] == 'U' ? CELLAR_EUNAVAILABLE : exp[0] == 'T' ? CELLAR_ETIMEDOUT
                                                                  : CELLAR_EBADCL;
  return o->code == want && strstr(o->msg, exp + 2) != NULL;
}

/* Checks one outcome; prints the errors and what did not match. */
static void report(const char *op, const char *level, const outcome *o, const char *exp) {
  int ok = matches(o, exp);
  if (!ok || o->code)
    printf("\n    %s %-12s %-19s %s (%.0f ms)", op, level,
           o->code ? cellar_err_name(o->code) : "ok", o->msg, o->ms);
  if (!ok) printf("\n      <-- expected %s", exp);
  CU_ASSERT(ok);
}

/* Sends every write and read of lc at once through node 0, waits for all,
** checks each against the table. */
static void run_case(const level_case *lc) {
  static cellar_cell_t cell = {"v", 1, "x", 1};
  static cellar_row_t row = {NULL, 0, &cell, 1};
  outcome w[NLEVELS], r[NLEVELS];
  memset(w, 0, sizeof w);
  memset(r, 0, sizeof r);
  cellar_client_t *c = pinned(0);
  double t0 = now_ms();
  for (int l = 0; l < NLEVELS; l++) {
    cellar_put_t p = {.keyspace = "geo", .table = "t", .partition = KEY,
                      .partition_len = strlen(KEY), .rows = &row, .nrows = 1,
                      .consistency = levels[l]};
    w[l].t0 = now_ms();
    int rc = cellar_put_async(c, &p, on_done, &w[l]);
    if (rc) {
      w[l].code = rc;
      w[l].done = 1;
    }
    if (lc->read[l] == NULL) {
      r[l].done = 1;
      continue;
    }
    cellar_get_t g = {.keyspace = "geo", .table = "t", .partition = KEY,
                      .partition_len = strlen(KEY), .consistency = levels[l]};
    r[l].t0 = now_ms();
    if (cellar_get_async(c, &g, on_done, &r[l]) != 0) {
      /* refused before sending (no callback): the sync call has the text */
      cellar_result_t *res = NULL;
      r[l].code = cellar_get(c, &g, &res);
      snprintf(r[l].msg, sizeof r[l].msg, "%s", cellar_result_message(res));
      cellar_result_free(res);
      r[l].done = 1;
    }
  }
  pthread_mutex_lock(&g_mu);
  for (;;) {
    int all = 1;
    for (int l = 0; l < NLEVELS; l++) all &= w[l].done && r[l].done;
    if (all) break;
    pthread_cond_wait(&g_cv, &g_mu);
  }
  pthread_mutex_unlock(&g_mu);
  double took = now_ms() - t0;
  cellar_close(c);
  printf("\n  %s: batch done in %.0f ms", lc->name, took);
  for (int l = 0; l < NLEVELS; l++) {
    const char *name = cellar_consistency_name(levels[l]);
    report("write", name, &w[l], lc->write[l]);
    if (lc->read[l]) report("read ", name, &r[l], lc->read[l]);
  }
  printf("\n");
}

/* Kills the roles of lc (and waits until node 0 counts them down), or
** freezes them. */
static void take_down(const level_case *lc) {
  for (int k = 0; k < 2; k++) {
    if (lc->down[k] < 0) continue;
    node_proc *n = &nodes[role[lc->down[k]]];
    if (lc->frozen) {
      CU_ASSERT_FATAL(n->pid > 0);    /* kill(0, ...) would stop this test too */
      CU_ASSERT_EQUAL_FATAL(kill(n->pid, SIGSTOP), 0);
    } else if (n->pid) {
      CU_ASSERT_FATAL(harness_node_signal(n, SIGKILL) >= 0);
    }
  }
  if (lc->frozen) return;
  double t0 = now_ms();
  for (int k = 0; k < 2; k++)
    if (lc->down[k] >= 0)
      CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[role[lc->down[k]]], 0, 60), 0);
  printf("\n  %s: node 0 saw it down after %.1f s", lc->name, (now_ms() - t0) / 1e3);
}

/* Restarts every node not running and waits until all see all up. */
static void restore(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid == 0) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 60), 0);
  /* The next case needs every replica alive for node 0. Once its status
  ** shows the restarted nodes up, its proxy counts them alive too: a
  ** connection failure from while they were down no longer outlives that
  ** (peer_clear_failing; tests/loopback/test_restart.c). */
  cellar_client_t *c = pinned(0);
  char msg[256] = "";
  int rc = harness_put(c, "geo", "t", "restored", "x", CELLAR_CL_ALL, msg, sizeof msg);
  if (rc) printf("\n  ALL through node 0 right after the restart: %s\n", msg);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  cellar_close(c);
}

/* Thaws the frozen roles of lc; node 0 must still count them up (else
** the batch did not test what it meant to). */
static void thaw(const level_case *lc) {
  for (int k = 0; k < 2; k++) {
    if (lc->down[k] < 0) continue;
    node_proc *n = &nodes[role[lc->down[k]]];
    int seen = harness_view(&nodes[0], n);
    CU_ASSERT_FATAL(n->pid > 0);
    CU_ASSERT_EQUAL_FATAL(kill(n->pid, SIGCONT), 0);
    if (seen != 1) printf("\n  %s: node 0 convicted %s during the batch", lc->name, n->addr);
    CU_ASSERT_EQUAL(seen, 1);
  }
}

/* ----------------------------------------- read-your-writes, concurrent */

typedef struct ryw_state {
  _Atomic long acked;            /* the highest value whose write was acked */
  _Atomic int stop;
  _Atomic long writes, write_errors, reads, read_errors, stale;
  char first_error[400];         /* of the writer or a reader, for the log */
  _Atomic int have_error;
  int writer;                    /* coordinators */
  int readers[2];
} ryw_state;

/* Keeps the first error of a run, to print it. */
static void ryw_note_error(ryw_state *s, const char *op, int rc, const char *msg) {
  if (atomic_exchange(&s->have_error, 1)) return;
  snprintf(s->first_error, sizeof s->first_error, "%s: %s %s", op, cellar_err_name(rc), msg);
}

static void *ryw_writer(void *arg) {
  ryw_state *s = arg;
  cellar_client_t *c = harness_connect(&nodes[s->writer], CELLAR_ROUTE_NONE, 10000);
  if (c == NULL) return NULL;
  char v[32], msg[256];
  for (long i = 1; !atomic_load(&s->stop); i++) {
    snprintf(v, sizeof v, "%ld", i);
    int rc = harness_put(c, "geo", "t", "ryw", v, CELLAR_CL_QUORUM, msg, sizeof msg);
    if (rc == 0) {
      atomic_store(&s->acked, i);
      atomic_fetch_add(&s->writes, 1);
    } else {
      atomic_fetch_add(&s->write_errors, 1);
      ryw_note_error(s, "write", rc, msg);
    }
  }
  cellar_close(c);
  return NULL;
}

typedef struct ryw_reader {
  ryw_state *s;
  int node;
} ryw_reader;

static void *ryw_read(void *arg) {
  ryw_reader *rd = arg;
  ryw_state *s = rd->s;
  cellar_client_t *c = harness_connect(&nodes[rd->node], CELLAR_ROUTE_NONE, 10000);
  if (c == NULL) return NULL;
  char got[64], msg[256];
  while (!atomic_load(&s->stop)) {
    long floor = atomic_load(&s->acked);   /* acked before this read starts */
    int rc = harness_get(c, "geo", "t", "ryw", CELLAR_CL_QUORUM, got, sizeof got, msg,
                         sizeof msg);
    if (rc < 0) {
      atomic_fetch_add(&s->read_errors, 1);
      ryw_note_error(s, "read", rc, msg);
      continue;
    }
    long v = rc == 1 ? strtol(got, NULL, 10) : 0;
    atomic_fetch_add(&s->reads, 1);
    if (v < floor) {
      atomic_fetch_add(&s->stale, 1);
      printf("\n    node %d read %ld after %ld was acknowledged", rd->node, v, floor);
    }
  }
  cellar_close(c);
  return NULL;
}

/* A writer on node 0, readers on L2 (dc1) and R1 (dc2), RYW_SECONDS. */
static void ryw_run(const char *what) {
  static ryw_state s;
  memset(&s, 0, sizeof s);
  s.writer = 0;
  ryw_reader rd[2] = {{&s, role[L2]}, {&s, role[R1]}};
  pthread_t tw, tr[2];
  pthread_create(&tw, NULL, ryw_writer, &s);
  for (int i = 0; i < 2; i++) pthread_create(&tr[i], NULL, ryw_read, &rd[i]);
  sleep(RYW_SECONDS);
  atomic_store(&s.stop, 1);
  pthread_join(tw, NULL);
  for (int i = 0; i < 2; i++) pthread_join(tr[i], NULL);
  printf("\n  %s: %ld QUORUM writes (%ld failed), %ld QUORUM reads on nodes %d and %d "
         "(%ld failed), %ld older than the last acknowledged write\n",
         what, atomic_load(&s.writes), atomic_load(&s.write_errors), atomic_load(&s.reads),
         rd[0].node, rd[1].node, atomic_load(&s.read_errors), atomic_load(&s.stale));
  if (atomic_load(&s.have_error)) printf("  first error: %s\n", s.first_error);
  CU_ASSERT(atomic_load(&s.writes) >= 20);
  CU_ASSERT(atomic_load(&s.reads) >= 20);
  CU_ASSERT_EQUAL(atomic_load(&s.write_errors), 0);
  CU_ASSERT_EQUAL(atomic_load(&s.read_errors), 0);
  CU_ASSERT_EQUAL(atomic_load(&s.stale), 0);
}

/* -------------------------------------------------------------- tests */

static void test_cluster_and_roles(void) {
  base = testutil_tmpdir("levels");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s,%s", nodes[0].peer_addr, nodes[3].peer_addr);
  double t0 = now_ms();
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 60), 0);
  static const char *const tables[] = {"t", NULL};
  /* last-write-wins: the read-your-writes cases treat the cell as a
  ** register (blind writes to one cell would pile up as siblings) */
  cellar_table_options_t lww;
  cellar_table_options_init(&lww);
  lww.conflict_policy = "lww";
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace_with(nodes, N, "geo",
                                                     "NetworkTopologyStrategy:dc1=3,dc2=3",
                                                     tables, &lww, 20), 0);
  printf("\n  six nodes up, schema everywhere after %.1f s", (now_ms() - t0) / 1e3);
  /* the roles, from the ring order of KEY */
  cellar_client_t *c = pinned(0);
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_admin(c, "getendpoints", "geo t " KEY, &r), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_member_count(r), N);
  int nl = 0, nr = 0;
  for (size_t k = 0; k < cellar_result_member_count(r); k++) {
    cellar_member_t m;
    cellar_result_member(r, k, &m);
    int who = -1;
    for (int i = 0; i < N; i++)
      if (!strcmp(nodes[i].addr, m.address)) who = i;
    CU_ASSERT_FATAL(who >= 0);
    if (who == 0) continue;
    if (who < 3) role[L1 + nl++] = who;
    else role[R1 + nr++] = who;
  }
  cellar_result_free(r);
  cellar_close(c);
  CU_ASSERT_FATAL(nl == 2 && nr == 3);
  printf("\n  roles for key '%s':", KEY);
  for (int k = 0; k < NROLES; k++) printf(" %s=node%d", role_names[k], role[k]);
  printf("\n");
  g_ready = 1;
}

static void test_levels_all_up(void) {
  NEED_CLUSTER();
  run_case(&cases_up);
}

static void test_ryw_concurrent(void) {
  NEED_CLUSTER();
  ryw_run("all up");
}

static void test_levels_one_local_killed(void) {
  NEED_CLUSTER();
  take_down(&cases_killed[0]);
  run_case(&cases_killed[0]);
}

/* runs while L1 is still down from the case above */
static void test_ryw_concurrent_one_down(void) {
  NEED_CLUSTER();
  CU_ASSERT_EQUAL_FATAL(nodes[role[L1]].pid, 0);
  ryw_run("L1 killed");
}

static void test_levels_two_local_killed(void) {
  NEED_CLUSTER();
  take_down(&cases_killed[1]);
  run_case(&cases_killed[1]);
  restore();
}

static void test_levels_remote_killed(void) {
  NEED_CLUSTER();
  for (int k = 2; k < 4; k++) {
    take_down(&cases_killed[k]);
    run_case(&cases_killed[k]);
  }
  restore();
}

static void test_levels_frozen(void) {
  NEED_CLUSTER();
  for (int i = 0; i < N; i++) CU_ASSERT_FATAL(nodes[i].pid > 0);
  for (size_t k = 0; k < sizeof cases_frozen / sizeof cases_frozen[0]; k++) {
    double t0 = now_ms();
    take_down(&cases_frozen[k]);
    run_case(&cases_frozen[k]);
    thaw(&cases_frozen[k]);
    printf("  %s: %.1f s from the freeze to the thaw", cases_frozen[k].name,
           (now_ms() - t0) / 1e3);
    /* thawed nodes answer again before the next case freezes others */
    CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  }
  printf("\n");
}

static void test_shutdown(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"cluster_and_roles", test_cluster_and_roles},
    {"levels_all_up", test_levels_all_up},
    {"ryw_concurrent", test_ryw_concurrent},
    {"levels_one_local_killed", test_levels_one_local_killed},
    {"ryw_concurrent_one_down", test_ryw_concurrent_one_down},
    {"levels_two_local_killed", test_levels_two_local_killed},
    {"levels_remote_killed", test_levels_remote_killed},
    {"levels_frozen", test_levels_frozen},
    {"shutdown", test_shutdown},
    {NULL, NULL}};
  return testutil_run("levels", cases, argc, argv);
}
