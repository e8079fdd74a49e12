/*
** Bootstrap on real processes: a fourth node joins a three-node cluster
** (SimpleStrategy:2) while a writer keeps writing at QUORUM. The new node
** streams the ranges it takes over from their current replicas and gets
** the writes made during the join (pending replica); afterwards every
** acknowledged row is readable at QUORUM, and the new node, read alone at
** ONE, holds every row it is now a replica of.
*/
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

#define N 4
#define PRELOAD 3000
#define MAXW 200000

static node_proc nodes[N];
static char *base;
static char seeds[128];
static harness_writer wr = {.ks = "ks", .table = "t", .cl = CELLAR_CL_QUORUM, .max = MAXW};

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static int wait_log(int i, const char *re, int seconds) {
  return harness_wait_log(&nodes[i], 0, re, seconds);
}

static int start_node(int i) {
  harness_member m = {.seeds = seeds, .ready_seconds = 60};
  return harness_member_start(&nodes[i], &m);
}

static cellar_client_t *client_of(int i) {
  cellar_client_t *c = harness_connect(&nodes[i], CELLAR_ROUTE_TOKEN_AWARE, 8000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  return c;
}

/* Every row holds its own key as value. */
static int put(cellar_client_t *c, const char *k, cellar_consistency_t cl) {
  return harness_put(c, "ks", "t", k, k, cl, NULL, 0);
}

/* 1 when row k is there with its value, 0 when not, else the code. */
static int get(cellar_client_t *c, const char *k, cellar_consistency_t cl) {
  char got[64];
  int rc = harness_get(c, "ks", "t", k, cl, got, sizeof got, NULL, 0);
  return rc == 1 ? !strcmp(got, k) : rc;
}

/* Is node i among the replicas of key k, asked of c? */
static int replica_of(cellar_client_t *c, const char *k, int i) {
  return harness_replica_of(c, "ks", "t", k, &nodes[i]);
}

static void test_join_under_writes(void) {
  base = testutil_tmpdir("bootstrap");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N - 1; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N - 1, 30), 0);
  static const char *const tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N - 1, "ks", "SimpleStrategy:2", tables, 10),
                        0);
  cellar_client_t *c = client_of(0);
  char k[32];
  for (int i = 0; i < PRELOAD; i++) {
    snprintf(k, sizeof k, "p%05d", i);
    CU_ASSERT_EQUAL_FATAL(put(c, k, CELLAR_CL_ALL), 0);
  }
  wr.node = &nodes[1];
  CU_ASSERT_EQUAL_FATAL(harness_writer_start(&wr), 0);
  usleep(300000);
  CU_ASSERT_EQUAL_FATAL(start_node(N - 1), 0);      /* joins, streams, normal */
  CU_ASSERT_EQUAL(wait_log(N - 1, "stream: bootstrap received", 5), 0);
  usleep(500000);
  int written = harness_writer_stop(&wr);
  printf("\n  writer: %d writes during the join, %d failed", written, atomic_load(&wr.failed));
  CU_ASSERT(written > 100);

  /* every acknowledged row, at QUORUM, through the new node */
  cellar_client_t *nc = client_of(N - 1);
  int missing = 0, acked = 0;
  for (int i = 0; i < PRELOAD; i++) {
    snprintf(k, sizeof k, "p%05d", i);
    missing += get(nc, k, CELLAR_CL_QUORUM) != 1;
  }
  for (int i = 0; i < written; i++) {
    if (!harness_writer_acked(&wr, i)) continue;
    acked++;
    harness_writer_key(&wr, i, k, sizeof k);
    missing += get(nc, k, CELLAR_CL_QUORUM) != 1;
  }
  printf("\n  %d preloaded + %d acknowledged during the join: %d missing at QUORUM", PRELOAD,
         acked, missing);
  CU_ASSERT_EQUAL(missing, 0);

  /* the new node alone holds every row it now replicates */
  int owned = 0, absent = 0;
  for (int i = 0; i < PRELOAD; i += 3) {
    snprintf(k, sizeof k, "p%05d", i);
    if (!replica_of(nc, k, N - 1)) continue;
    owned++;
    absent += get(nc, k, CELLAR_CL_ONE) != 1;
  }
  for (int i = 0; i < written; i += 3) {
    if (!harness_writer_acked(&wr, i)) continue;
    harness_writer_key(&wr, i, k, sizeof k);
    if (!replica_of(nc, k, N - 1)) continue;
    owned++;
    absent += get(nc, k, CELLAR_CL_ONE) != 1;
  }
  printf("\n  new node replicates %d of the sampled rows: %d absent when read alone\n", owned,
         absent);
  CU_ASSERT(owned > 0);
  CU_ASSERT_EQUAL(absent, 0);
  cellar_close(nc);
  cellar_close(c);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"join_under_writes", test_join_under_writes},
    {NULL, NULL}};
  return testutil_run("bootstrap", cases, argc, argv);
}
