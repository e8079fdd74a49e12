/*
** A replica killed (kill -9) and restarted is a full replica again for a
** coordinator as soon as that coordinator counts it up: three cellard
** nodes, SimpleStrategy:3; a node is killed and restarted several times
** and, the moment node 0's status shows it up, a write at ALL through
** node 0 must succeed. While it is down, node 0's attempts to reach it
** fail and mark it "failing" (peer_failing, proxy design note 6); that
** mark must not outlive the restart. The fail-fast side is kept: right
** after the kill, ALL through node 0 fails quickly, not by timing out.
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

#define N 3
#define ROUNDS 8
#define WRITE_TIMEOUT_MS 4000

static node_proc nodes[N];
static char *base;
static char seeds[128];

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int start_node(int i) {
  /* no hints: ALL must find every replica alive, nothing else counts */
  static const char *const no_hints[] = {"--hinted-handoff-enabled", "false", NULL};
  harness_member m = {.seeds = seeds, .read_timeout_ms = WRITE_TIMEOUT_MS,
                      .write_timeout_ms = WRITE_TIMEOUT_MS, .extra = no_hints};
  return harness_member_start(&nodes[i], &m);
}

static void test_cluster(void) {
  base = testutil_tmpdir("restart");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  /* node 1 is the seed: a restarted node 2 is heard of by node 0 through
  ** node 1's gossip first, not by talking to node 0 */
  snprintf(seeds, sizeof seeds, "%s", nodes[1].peer_addr);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  static const char *const tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "ks", "SimpleStrategy:3", tables, 10), 0);
}

static void test_all_right_after_restart(void) {
  cellar_client_t *c = harness_connect(&nodes[0], CELLAR_ROUTE_NONE, 8000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  char msg[256], k[32];
  CU_ASSERT_EQUAL(harness_put(c, "ks", "t", "warm", "x", CELLAR_CL_ALL, msg, sizeof msg), 0);
  int failed = 0, slow_kill = 0;
  for (int r = 0; r < ROUNDS; r++) {
    int v = 2;
    CU_ASSERT_FATAL(harness_node_signal(&nodes[v], SIGKILL) >= 0);
    /* fail fast: the broken connection is news before the failure
    ** detector has any (the write may still succeed if it races ahead of
    ** the close, never may it wait out the timeout) */
    snprintf(k, sizeof k, "dead%02d", r);
    double t0 = now_ms();
    harness_put(c, "ks", "t", k, "x", CELLAR_CL_ALL, msg, sizeof msg);
    if (now_ms() - t0 > WRITE_TIMEOUT_MS / 2) slow_kill++;
    CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[v], 0, 30), 0);
    /* node 0's gossip keeps trying the dead node: let it fail again */
    usleep(1000000);
    CU_ASSERT_EQUAL_FATAL(start_node(v), 0);
    CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[v], 1, 30), 0);
    snprintf(k, sizeof k, "back%02d", r);
    int rc = harness_put(c, "ks", "t", k, "x", CELLAR_CL_ALL, msg, sizeof msg);
    if (rc != 0) {
      failed++;
      printf("\n  round %d: node %d up for node 0, ALL through it: %s", r, v, msg);
    }
    /* the others see it up too before the next kill */
    CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  }
  printf("\n  %d kill -9 + restart rounds: ALL through node 0 failed %d times right after "
         "it showed the node up; %d ALL writes right after a kill were slow\n",
         ROUNDS, failed, slow_kill);
  CU_ASSERT_EQUAL(failed, 0);
  CU_ASSERT_EQUAL(slow_kill, 0);
  cellar_close(c);
}

/*
** A node restarted with its tokens knows only itself until gossip brings
** the others' states: it must not serve data requests with that "only me"
** ring. RF 1 is the sharpest case: a write at ONE of a key another node
** owns, sent to the restarted node the moment it accepts connections,
** must fail with a clear error or land on the owner, never be acknowledged
** and stored where no read looks (test_history found this).
*/
#define ONE_KEYS 40

static void test_one_right_after_restart(void) {
  static const char *const tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "ks1", "SimpleStrategy:1", tables, 10), 0);
  int v = 2;
  cellar_client_t *own[2];
  for (int i = 0; i < 2; i++) {
    own[i] = harness_connect(&nodes[i], CELLAR_ROUTE_NONE, 8000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(own[i]);
  }
  /* keys node v does not own, and which node does */
  char keys[ONE_KEYS + 1][32];   /* the last one: once the ring is learned */
  int owner[ONE_KEYS + 1], nk = 0;
  for (int i = 0; nk < ONE_KEYS + 1 && i < 20 * ONE_KEYS; i++) {
    snprintf(keys[nk], sizeof keys[nk], "own%04d", i);
    if (harness_replica_of(own[0], "ks1", "t", keys[nk], &nodes[v])) continue;
    owner[nk] = harness_replica_of(own[0], "ks1", "t", keys[nk], &nodes[0]) ? 0 : 1;
    nk++;
  }
  CU_ASSERT_EQUAL_FATAL(nk, ONE_KEYS + 1);
  nk = ONE_KEYS;
  CU_ASSERT_FATAL(harness_node_signal(&nodes[v], SIGKILL) >= 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[v], 0, 30), 0);
  CU_ASSERT_EQUAL_FATAL(start_node(v), 0);
  cellar_client_t *c = harness_connect(&nodes[v], CELLAR_ROUTE_NONE, 8000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  int acked = 0, refused = 0, misplaced = 0;
  char msg[256], got[64], want[32];
  for (int i = 0; i < nk; i++) {
    snprintf(want, sizeof want, "r%d", i);
    int rc = harness_put(c, "ks1", "t", keys[i], want, CELLAR_CL_ONE, msg, sizeof msg);
    if (rc != 0) {
      if (refused++ == 0) printf("\n  write %d refused: %s (%s)", i, cellar_err_name(rc), msg);
      CU_ASSERT(rc == CELLAR_ESTARTING || rc == CELLAR_EUNAVAILABLE || rc == CELLAR_ETIMEDOUT);
      continue;
    }
    acked++;
    int g = harness_get(own[owner[i]], "ks1", "t", keys[i], CELLAR_CL_ONE, got, sizeof got,
                        msg, sizeof msg);
    if (g != 1 || strcmp(got, want)) {
      misplaced++;
      printf("\n  key %s acked by the restarted node, absent on its owner node %d", keys[i],
             owner[i]);
    }
  }
  printf("\n  %d writes at ONE right after the restart: %d acked (all on the owner unless "
         "below), %d refused, %d acked but misplaced\n", nk, acked, refused, misplaced);
  CU_ASSERT_EQUAL(misplaced, 0);
  /* the refusal lasts only until the ring is learned */
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  int late = -1;
  for (int t = 0; t < 50 && late != 0; t++) {
    late = harness_put(c, "ks1", "t", keys[nk], "late", CELLAR_CL_ONE, msg, sizeof msg);
    if (late != 0) usleep(200000);
  }
  CU_ASSERT_EQUAL(late, 0);
  CU_ASSERT_EQUAL(harness_get(own[owner[nk]], "ks1", "t", keys[nk], CELLAR_CL_ONE, got, sizeof got,
                              msg, sizeof msg), 1);
  CU_ASSERT_STRING_EQUAL(got, "late");
  cellar_close(c);
  for (int i = 0; i < 2; i++) cellar_close(own[i]);
}

static void test_stop(void) {
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"cluster", test_cluster},
    {"all_right_after_restart", test_all_right_after_restart},
    {"one_right_after_restart", test_one_right_after_restart},
    {"stop", test_stop},
    {NULL, NULL}};
  return testutil_run("restart", cases, argc, argv);
}
