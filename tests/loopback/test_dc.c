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
  const char *dc = i < 2 ? "dc1" : "dc2";
  const char *rack = i % 2 ? "r2" : "r1";
  const char *extra[] = {"--seeds", seeds, "--dc", dc, "--rack", rack, "--gossip-interval",
                         "200", "--write-request-timeout", "1000", "--read-request-timeout",
                         "1000", NULL};
  int rc = harness_node_start(&nodes[i], extra, 15000);
  if (rc) return rc;
  char cmd[5200];
  snprintf(cmd, sizeof cmd, "for i in $(seq 1 100); do grep -qE 'cluster: (normal|first node)' "
           "'%s' && exit 0; sleep 0.1; done; exit 1", nodes[i].log_path);
  return system(cmd);
}

static cellar_client_t *client_of(int i) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = nodes[i].addr;
  o.request_timeout_ms = 8000;
  cellar_client_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_connect(&o, &c), 0);
  return c;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int put(cellar_client_t *c, const char *k, cellar_consistency_t cl, char *msg, size_t n,
               double *ms) {
  cellar_cell_t cell = {"v", 1, k, strlen(k)};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = "geo", .table = "t", .partition = k, .partition_len = strlen(k),
                    .rows = &row, .nrows = 1, .consistency = cl};
  cellar_result_t *r = NULL;
  double t0 = now_ms();
  int rc = cellar_put(c, &p, &r);
  if (ms) *ms = now_ms() - t0;
  if (msg) snprintf(msg, n, "%s", cellar_result_message(r));
  cellar_result_free(r);
  return rc;
}

static int get(cellar_client_t *c, const char *k, cellar_consistency_t cl, double *ms) {
  cellar_get_t g = {.keyspace = "geo", .table = "t", .partition = k, .partition_len = strlen(k),
                    .consistency = cl};
  cellar_result_t *r = NULL;
  double t0 = now_ms();
  int rc = cellar_get(c, &g, &r);
  if (ms) *ms = now_ms() - t0;
  if (rc == 0) rc = cellar_result_row_count(r) > 0;
  cellar_result_free(r);
  return rc;
}

static void test_forwarded_across_dcs(void) {
  base = testutil_tmpdir("dc");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  cellar_client_t *c = client_of(0);
  /* every node sees every node up and normal before the schema goes out */
  for (int t = 0; t < 100; t++) {
    cellar_result_t *r = NULL;
    int ok = 0;
    if (cellar_admin(c, "status", NULL, &r) == 0)
      for (size_t k = 0; k < cellar_result_member_count(r); k++) {
        cellar_member_t m;
        cellar_result_member(r, k, &m);
        ok += m.up && !strcmp(m.status, "normal");
      }
    cellar_result_free(r);
    if (ok == N) break;
    usleep(100000);
  }
  CU_ASSERT_EQUAL_FATAL(cellar_create_keyspace(c, "geo", "NetworkTopologyStrategy:dc1=2,dc2=2",
                                               0, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_create_table(c, "geo", "t", NULL, 0, NULL), 0);
  for (int i = 1; i < N; i++) {
    int ok = 0;
    for (int t = 0; t < 50 && !ok; t++) {
      cellar_client_t *ci = client_of(i);
      cellar_result_t *d = NULL;
      ok = cellar_describe(ci, "geo", &d) == 0 && cellar_result_table_count(d) == 1;
      cellar_result_free(d);
      cellar_close(ci);
      if (!ok) usleep(100000);
    }
    CU_ASSERT_FATAL(ok);
  }
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
