/*
** Decommission and removenode on real processes: four nodes
** (SimpleStrategy:2). One node is decommissioned while a writer keeps
** writing at QUORUM: its ranges stream to their new owners, it announces
** "left" and exits; every acknowledged row is readable at QUORUM and each
** remaining node, read alone at ONE, holds every row it replicates. Then
** another node is killed (-9) and removed with removenode from a live node:
** its ranges are copied from the surviving replicas, and every row is
** readable at ALL on the two nodes left.
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
#define PRELOAD 2000
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

/* Members in node i's status; *up_of: is node j up there (-1: absent);
** hid: node j's host id when given. */
static int members_of(int i, int j, int *up_of, char *hid) {
  cellar_client_t *c = client_of(i);
  cellar_result_t *r = NULL;
  int n = -1;
  if (up_of) *up_of = -1;
  if (cellar_admin(c, "status", NULL, &r) == 0) {
    n = (int)cellar_result_member_count(r);
    for (int m = 0; m < n; m++) {
      cellar_member_t mm;
      cellar_result_member(r, (size_t)m, &mm);
      if (j >= 0 && !strcmp(mm.address, nodes[j].addr)) {
        if (up_of) *up_of = mm.up;
        if (hid) snprintf(hid, 40, "%s", mm.host_id);
      }
    }
  }
  cellar_result_free(r);
  cellar_close(c);
  return n;
}

static int admin(const char *const *argv, char **out) {
  int st = harness_run(argv, out);
  printf("\n  $ cellar-admin");
  for (int i = 1; argv[i]; i++) printf(" %s", argv[i]);
  printf(" -> %d\n%s", st, out && *out ? *out : "");
  return st;
}

/* Rows 0..PRELOAD-1 are the preloaded ones, then the writer's. */
static int row_acked(int i) { return i < PRELOAD || harness_writer_acked(&wr, i - PRELOAD); }
static void key_name(int i, char *k, size_t n) {
  if (i < PRELOAD) snprintf(k, n, "p%05d", i);
  else harness_writer_key(&wr, i - PRELOAD, k, n);
}

static void test_decommission_and_removenode(void) {
  const char *adm = getenv("CELLAR_ADMIN");
  CU_ASSERT_PTR_NOT_NULL_FATAL(adm);
  base = testutil_tmpdir("lifecycle");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  static const char *const tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "ks", "SimpleStrategy:2", tables, 10),
                        0);
  cellar_client_t *c = client_of(0);
  char k[32];
  for (int i = 0; i < PRELOAD; i++) {
    snprintf(k, sizeof k, "p%05d", i);
    CU_ASSERT_EQUAL_FATAL(put(c, k, CELLAR_CL_ALL), 0);
  }
  cellar_close(c);

  /* ----------------------------------------- decommission node 3 */
  wr.node = &nodes[1];
  CU_ASSERT_EQUAL_FATAL(harness_writer_start(&wr), 0);
  usleep(300000);
  char *out = NULL;
  const char *dec[] = {adm, "-h", nodes[3].addr, "decommission", NULL};
  CU_ASSERT_EQUAL(admin(dec, &out), 0);
  free(out);
  CU_ASSERT_EQUAL(wait_log(3, "cellard: stopped", 30), 0);
  CU_ASSERT_EQUAL(harness_node_signal(&nodes[3], SIGTERM), 0);   /* reaps it: exit 0 */
  usleep(500000);
  int written = harness_writer_stop(&wr);
  printf("\n  writer: %d writes during the decommission, %d failed", written,
         atomic_load(&wr.failed));
  CU_ASSERT(written > 100);

  for (int i = 0; i < 3; i++) {
    int n = 0;
    for (int t = 0; t < 50 && (n = members_of(i, -1, NULL, NULL)) != 3; t++) usleep(200000);
    printf("\n  node %d: status shows %d members", i, n);
    CU_ASSERT_EQUAL(n, 3);
  }

  cellar_client_t *cc = client_of(0);
  int missing = 0, acked = 0;
  for (int i = 0; i < PRELOAD + written; i++) {
    if (!row_acked(i)) continue;
    acked++;
    key_name(i, k, sizeof k);
    missing += get(cc, k, CELLAR_CL_QUORUM) != 1;
  }
  printf("\n  %d rows acknowledged (%d preloaded): %d missing at QUORUM", acked, PRELOAD,
         missing);
  CU_ASSERT_EQUAL(missing, 0);
  cellar_close(cc);

  for (int n = 0; n < 3; n++) {
    cellar_client_t *nc = client_of(n);
    int owned = 0, absent = 0;
    for (int i = 0; i < PRELOAD + written; i += 3) {
      if (!row_acked(i)) continue;
      key_name(i, k, sizeof k);
      if (!replica_of(nc, k, n)) continue;
      owned++;
      absent += get(nc, k, CELLAR_CL_ONE) != 1;
    }
    printf("\n  node %d replicates %d of the sampled rows: %d absent when read alone", n,
           owned, absent);
    CU_ASSERT(owned > 0);
    CU_ASSERT_EQUAL(absent, 0);
    cellar_close(nc);
  }

  /* ------------------------------------------- removenode node 2 */
  char hid[40] = "", hid1[40] = "";
  int up = -1;
  members_of(0, 2, &up, hid);
  members_of(0, 1, &up, hid1);
  CU_ASSERT_FATAL(hid[0] != '\0');
  const char *alive[] = {adm, "-h", nodes[0].addr, "removenode", hid1, NULL};
  CU_ASSERT_EQUAL(admin(alive, &out), 1);           /* refused: it is alive */
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "alive") ? out : NULL);
  free(out);
  const char *unknown[] = {adm, "-h", nodes[0].addr, "removenode", "no-such-host", NULL};
  CU_ASSERT_EQUAL(admin(unknown, &out), 1);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "unknown host id") ? out : NULL);
  free(out);

  harness_node_signal(&nodes[2], SIGKILL);
  for (int i = 0; i < 2; i++) {
    int t = 0;
    for (; t < 150; t++) {
      members_of(i, 2, &up, NULL);
      if (up == 0) break;
      usleep(200000);
    }
    printf("\n  node %d sees node 2 down after %.1f s", i, t * 0.2);
    CU_ASSERT_EQUAL(up, 0);
  }
  const char *rm[] = {adm, "-h", nodes[0].addr, "--json", "removenode", hid, NULL};
  CU_ASSERT_EQUAL(admin(rm, &out), 0);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"ok\":true") ? out : NULL);
  free(out);
  for (int i = 0; i < 2; i++) {
    int n = 0;
    for (int t = 0; t < 50 && (n = members_of(i, -1, NULL, NULL)) != 2; t++) usleep(200000);
    printf("\n  node %d: status shows %d members", i, n);
    CU_ASSERT_EQUAL(n, 2);
  }
  cellar_client_t *c1 = client_of(1);
  missing = 0;
  for (int i = 0; i < PRELOAD + written; i++) {
    if (!row_acked(i)) continue;
    key_name(i, k, sizeof k);
    missing += get(c1, k, CELLAR_CL_ALL) != 1;
  }
  printf("\n  after removenode: %d of %d rows missing at ALL\n", missing, acked);
  CU_ASSERT_EQUAL(missing, 0);
  cellar_close(c1);
  /* the remover restarts: the removed member stays gone (its list is saved) */
  CU_ASSERT_EQUAL(harness_node_signal(&nodes[0], SIGTERM), 0);
  CU_ASSERT_EQUAL_FATAL(start_node(0), 0);
  int n0 = 0;
  for (int t = 0; t < 30; t++) {
    n0 = members_of(0, -1, NULL, NULL);
    usleep(200000);
  }
  printf("  after the remover restarted: status shows %d members\n", n0);
  CU_ASSERT_EQUAL(n0, 2);
  char grep[1400];
  snprintf(grep, sizeof grep, "grep -q 'members removed earlier: .*%s' '%s'", hid, nodes[0].log_path);
  CU_ASSERT_EQUAL(system(grep), 0);   /* it still publishes the removal */
  for (int i = 0; i < 2; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"decommission_and_removenode", test_decommission_and_removenode},
    {NULL, NULL}};
  return testutil_run("lifecycle", cases, argc, argv);
}
