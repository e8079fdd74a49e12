/*
** A real cluster on loopback: six cellard processes in two datacenters with
** two racks each. The ring forms and every node sees every node up; a
** paused node (SIGSTOP) is marked down by every other node and up again
** after SIGCONT; schema made on one node reaches all; a restarted node keeps
** its identity and tokens; a node whose data was wiped does not take its
** old place. Gossip runs every 250 ms here to keep the test short (the
** 1 s default is exercised by the simulation in tests/sim).
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

#define N 6

static node_proc nodes[N];
static char *base;
static char seeds[256];

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  if (base) testutil_rmrf(base);
}

static int start_node(int i) {
  char dc[8], rack[8];
  snprintf(dc, sizeof dc, "dc%d", i < N / 2 ? 1 : 2);
  snprintf(rack, sizeof rack, "rack%d", i % 2 + 1);
  const char *extra[] = {"--seeds", seeds, "--dc", dc, "--rack", rack,
                         "--gossip-interval", "250", NULL};
  return harness_node_start(&nodes[i], extra, 15000);
}

static cellar_client_t *client_of(int i) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = nodes[i].addr;
  o.request_timeout_ms = 5000;
  cellar_client_t *c = NULL;
  if (cellar_connect(&o, &c) != 0) return NULL;
  return c;
}

/* From node i's view: how many members are up and normal, and whether
** member `addr` is up. Returns the member count (-1 on error). */
static int view(int i, int *up_normal, const char *addr, int *addr_up) {
  cellar_client_t *c = client_of(i);
  if (c == NULL) return -1;
  cellar_result_t *r = NULL;
  int rc = cellar_admin(c, "status", NULL, &r);
  int n = -1;
  if (rc == 0) {
    n = (int)cellar_result_member_count(r);
    *up_normal = 0;
    if (addr_up) *addr_up = -1;
    for (int k = 0; k < n; k++) {
      cellar_member_t m;
      cellar_result_member(r, (size_t)k, &m);
      if (m.up && !strcmp(m.status, "normal")) (*up_normal)++;
      if (addr && addr_up && !strcmp(m.address, addr)) *addr_up = m.up;
    }
  }
  cellar_result_free(r);
  cellar_close(c);
  return n;
}

/* Waits until every running node other than skip sees `addr` as want_up. */
static int wait_all_see(int skip, const char *addr, int want_up, int seconds) {
  for (int t = 0; t < seconds * 4; t++) {
    int ok = 1;
    for (int i = 0; i < N && ok; i++) {
      if (i == skip || nodes[i].pid == 0) continue;
      int upn, aup;
      if (view(i, &upn, addr, &aup) < 0 || aup != want_up) ok = 0;
    }
    if (ok) return t / 4;
    usleep(250000);
  }
  return -1;
}

static void test_ring_forms(void) {
  base = testutil_tmpdir("cluster");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s,%s", nodes[0].peer_addr, nodes[N / 2].peer_addr);
  for (int i = 0; i < N; i++) {
    CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
    /* one at a time: a node picks its tokens from the ring it sees */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "for i in $(seq 1 100); do grep -qE 'cluster: (normal|first node)' "
             "'%s' && exit 0; sleep 0.1; done; exit 1", nodes[i].log_path);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  }
  int ok = 0;
  for (int t = 0; t < 60 && !ok; t++) {
    ok = 1;
    for (int i = 0; i < N && ok; i++) {
      int upn = 0;
      if (view(i, &upn, NULL, NULL) != N || upn != N) ok = 0;
    }
    if (!ok) usleep(250000);
  }
  CU_ASSERT(ok);
  /* ownership adds up, and NTS puts one replica per rack of each DC */
  cellar_client_t *c = client_of(0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(cellar_create_keyspace(c, "shop", "NetworkTopologyStrategy:dc1=2,dc2=2", 0, NULL), 0);
  CU_ASSERT_EQUAL(cellar_create_table(c, "shop", "items", NULL, 0, NULL), 0);
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL(cellar_admin(c, "status", "shop", &r), 0);
  double sum = 0;
  for (size_t k = 0; k < cellar_result_member_count(r); k++) {
    cellar_member_t m;
    cellar_result_member(r, k, &m);
    sum += m.owns;
    CU_ASSERT_EQUAL(m.tokens, 16);
  }
  CU_ASSERT_DOUBLE_EQUAL(sum, 4.0, 1e-6);
  cellar_result_free(r);
  for (int key = 0; key < 20; key++) {
    char arg[64];
    snprintf(arg, sizeof arg, "shop items sku%d", key);
    CU_ASSERT_EQUAL(cellar_admin(c, "getendpoints", arg, &r), 0);
    CU_ASSERT_EQUAL(cellar_result_member_count(r), 4);
    int dc1 = 0, dc2 = 0;
    char racks[4][16];
    for (size_t k = 0; k < cellar_result_member_count(r); k++) {
      cellar_member_t m;
      cellar_result_member(r, k, &m);
      snprintf(racks[k], 16, "%s/%s", m.datacenter, m.rack);
      if (!strcmp(m.datacenter, "dc1")) dc1++;
      else dc2++;
    }
    CU_ASSERT_EQUAL(dc1, 2);
    CU_ASSERT_EQUAL(dc2, 2);
    CU_ASSERT_STRING_NOT_EQUAL(racks[0], racks[1]);
    cellar_result_free(r);
  }
  cellar_close(c);
  /* the schema made on node 0 reaches every node */
  for (int i = 1; i < N; i++) {
    int seen = 0;
    for (int t = 0; t < 40 && !seen; t++) {
      cellar_client_t *ci = client_of(i);
      cellar_result_t *d = NULL;
      if (ci && cellar_describe(ci, "shop", &d) == 0 && cellar_result_table_count(d) == 1) seen = 1;
      cellar_result_free(d);
      if (ci) cellar_close(ci);
      if (!seen) usleep(250000);
    }
    CU_ASSERT(seen);
  }
}

static void test_pause_marks_down_then_up(void) {
  int victim = 2;
  CU_ASSERT_EQUAL_FATAL(kill(nodes[victim].pid, SIGSTOP), 0);
  int down = wait_all_see(victim, nodes[victim].addr, 0, 90);
  printf("\n  SIGSTOP: down on every other node after ~%d s", down);
  CU_ASSERT(down >= 0);
  CU_ASSERT_EQUAL_FATAL(kill(nodes[victim].pid, SIGCONT), 0);
  int up = wait_all_see(victim, nodes[victim].addr, 1, 60);
  printf("\n  SIGCONT: up on every other node after ~%d s\n", up);
  CU_ASSERT(up >= 0);
}

static void test_restart_keeps_identity_wipe_does_not(void) {
  int i = 4;
  cellar_client_t *c = client_of(0);
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_admin(c, "ring", NULL, &r), 0);
  size_t before = cellar_result_info_count(r);
  char mine[256] = "";
  for (size_t k = 0; k < before; k++)
    if (strstr(cellar_result_info_value(r, k), nodes[i].addr)) {
      snprintf(mine, sizeof mine, "%s", cellar_result_info_key(r, k));
      break;
    }
  cellar_result_free(r);
  CU_ASSERT(mine[0] != '\0');
  CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
  /* a clean shutdown is announced: down everywhere well before the
  ** failure detector (~18 rounds = 4.5 s here) would notice */
  int announced = wait_all_see(i, nodes[i].addr, 0, 10);
  printf("\n  SIGTERM: down on every other node after ~%d s", announced);
  CU_ASSERT(announced >= 0 && announced <= 2);
  CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT(wait_all_see(i, nodes[i].addr, 1, 60) >= 0);
  CU_ASSERT_EQUAL(cellar_admin(c, "ring", NULL, &r), 0);
  CU_ASSERT_EQUAL(cellar_result_info_count(r), before);
  int still = 0;
  for (size_t k = 0; k < cellar_result_info_count(r); k++)
    if (!strcmp(cellar_result_info_key(r, k), mine) &&
        strstr(cellar_result_info_value(r, k), nodes[i].addr))
      still = 1;
  CU_ASSERT(still);
  cellar_result_free(r);
  cellar_close(c);

  /* wiped: a new identity on the same address must not start */
  CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
  char cmd[5200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", nodes[i].data_dir, nodes[i].data_dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  harness_node_start(&nodes[i], (const char *const[]){"--seeds", seeds, "--gossip-interval",
                                                      "250", NULL}, 15000);
  int st = -1;
  if (nodes[i].pid) {
    for (int t = 0; t < 100; t++) {
      pid_t w = waitpid(nodes[i].pid, &st, WNOHANG);
      if (w == nodes[i].pid) {
        nodes[i].pid = 0;
        break;
      }
      usleep(100000);
    }
  }
  CU_ASSERT_EQUAL(nodes[i].pid, 0);
  CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  char *log = NULL;
  const char *cat[] = {"/bin/cat", nodes[i].log_path, NULL};
  harness_run(cat, &log);
  CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "was its data wiped?"));
  free(log);
  for (int k = 0; k < N; k++)
    if (nodes[k].pid) CU_ASSERT_EQUAL(harness_node_signal(&nodes[k], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"ring_forms", test_ring_forms},
    {"pause_marks_down_then_up", test_pause_marks_down_then_up},
    {"restart_keeps_identity_wipe_does_not", test_restart_keeps_identity_wipe_does_not},
    {NULL, NULL}};
  return testutil_run("cluster", cases, argc, argv);
}
