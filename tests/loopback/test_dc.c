/*
** Two datacenters on loopback: 2 + 2 nodes, keyspace
** NetworkTopologyStrategy:dc1=2,dc2=2. A write crosses the datacenter
** boundary once and is forwarded inside dc2 (each dc2 node has it, read
** alone); with both dc2 nodes frozen (SIGSTOP, so their failure detectors
** have not yet marked them down) LOCAL_QUORUM writes and reads in dc1
** still answer at once, while QUORUM and EACH_QUORUM time out naming the
** level and the acknowledgements they got.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

#define N 4

static node_proc nodes[N];
static char *base;
static char seeds[128];

static void cleanup(void) {
  for (int i = 0; i < N; i++) {
    if (nodes[i].pid) kill(nodes[i].pid, SIGCONT);
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  }
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static int start_node(int i) {
  harness_member m = {.seeds = seeds, .dc = i < 2 ? "dc1" : "dc2", .rack = i % 2 ? "r2" : "r1",
                      .read_timeout_ms = 1000, .write_timeout_ms = 1000};
  return harness_member_start(&nodes[i], &m);
}

static cellar_client_t *client_of(int i) {
  cellar_client_t *c = harness_connect(&nodes[i], CELLAR_ROUTE_TOKEN_AWARE, 8000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  return c;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int put(cellar_client_t *c, const char *k, cellar_consistency_t cl, char *msg, size_t n,
               double *ms) {
  double t0 = now_ms();
  int rc = harness_put(c, "geo", "t", k, k, cl, msg, n);
  if (ms) *ms = now_ms() - t0;
  return rc;
}

static int get(cellar_client_t *c, const char *k, cellar_consistency_t cl, double *ms) {
  double t0 = now_ms();
  int rc = harness_get(c, "geo", "t", k, cl, NULL, 0, NULL, 0);
  if (ms) *ms = now_ms() - t0;
  return rc;
}

static void test_forwarded_across_dcs(void) {
  base = testutil_tmpdir("dc");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  /* every node sees every node up and normal before the schema goes out */
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  static const char *const tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "geo",
                                                "NetworkTopologyStrategy:dc1=2,dc2=2", tables,
                                                10), 0);
  cellar_client_t *c = client_of(0);
  char k[32];
  for (int i = 0; i < 30; i++) {
    snprintf(k, sizeof k, "sku%03d", i);
    CU_ASSERT_EQUAL(put(c, k, CELLAR_CL_EACH_QUORUM, NULL, 0, NULL), 0);
  }
  cellar_close(c);
  /* each dc2 node, alone (LOCAL_ONE, itself first), holds every key */
  for (int n = 2; n < N; n++) {
    cellar_client_t *cn = client_of(n);
    int found = 0;
    for (int i = 0; i < 30; i++) {
      snprintf(k, sizeof k, "sku%03d", i);
      found += get(cn, k, CELLAR_CL_LOCAL_ONE, NULL) == 1;
    }
    CU_ASSERT_EQUAL(found, 30);
    cellar_close(cn);
  }
}

static void test_local_quorum_never_waits_on_remote_dc(void) {
  cellar_client_t *c = client_of(0);
  CU_ASSERT_EQUAL_FATAL(kill(nodes[2].pid, SIGSTOP), 0);
  CU_ASSERT_EQUAL_FATAL(kill(nodes[3].pid, SIGSTOP), 0);
  char msg[256];
  double ms, worst = 0;
  for (int i = 0; i < 20; i++) {
    char k[32];
    snprintf(k, sizeof k, "local%03d", i);
    CU_ASSERT_EQUAL(put(c, k, CELLAR_CL_LOCAL_QUORUM, NULL, 0, &ms), 0);
    if (ms > worst) worst = ms;
    CU_ASSERT_EQUAL(get(c, k, CELLAR_CL_LOCAL_QUORUM, &ms), 1);
    if (ms > worst) worst = ms;
  }
  printf("\n  dc2 frozen: 20 LOCAL_QUORUM writes + reads in dc1, slowest %.1f ms", worst);
  CU_ASSERT(worst < 500);
  int rc = put(c, "remote", CELLAR_CL_QUORUM, msg, sizeof msg, &ms);
  printf("\n  QUORUM: %s: %s (%.0f ms)", cellar_err_name(rc), msg, ms);
  CU_ASSERT(rc == CELLAR_ETIMEDOUT || rc == CELLAR_EUNAVAILABLE);
  if (rc == CELLAR_ETIMEDOUT) CU_ASSERT_PTR_NOT_NULL(strstr(msg, "QUORUM required 3 acks, got 2"));
  rc = put(c, "remote", CELLAR_CL_EACH_QUORUM, msg, sizeof msg, &ms);
  printf("\n  EACH_QUORUM: %s: %s (%.0f ms)\n", cellar_err_name(rc), msg, ms);
  CU_ASSERT(rc == CELLAR_ETIMEDOUT || rc == CELLAR_EUNAVAILABLE);
  CU_ASSERT_EQUAL(kill(nodes[2].pid, SIGCONT), 0);
  CU_ASSERT_EQUAL(kill(nodes[3].pid, SIGCONT), 0);
  /* thawed: the remote levels work again */
  rc = -1;
  for (int t = 0; t < 50 && rc != 0; t++) {
    rc = put(c, "again", CELLAR_CL_EACH_QUORUM, NULL, 0, NULL);
    if (rc) usleep(200000);
  }
  CU_ASSERT_EQUAL(rc, 0);
  cellar_close(c);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"forwarded_across_dcs", test_forwarded_across_dcs},
    {"local_quorum_never_waits_on_remote_dc", test_local_quorum_never_waits_on_remote_dc},
    {NULL, NULL}};
  return testutil_run("dc", cases, argc, argv);
}
