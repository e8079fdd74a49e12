/*
** Replication across real processes: three cellard nodes, one keyspace
** with SimpleStrategy:3. Writes reach every replica; levels are met or
** refused as they should be with replicas down (unavailable when the
** failure detector knows, never a silent success); a replica that missed
** writes is repaired by a read at ALL; QUORUM reads see QUORUM writes made
** through another coordinator.
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

static node_proc nodes[N];
static char *base;
static char seeds[128];

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static int start_node(int i) {
  /* no hinted handoff: test_read_repair needs a replica that missed a
  ** write (tests/loopback/test_handoff.c tests the hints) */
  static const char *const no_hints[] = {"--hinted-handoff-enabled", "false", NULL};
  harness_member m = {.seeds = seeds, .read_timeout_ms = 1500, .write_timeout_ms = 1500,
                      .extra = no_hints};
  return harness_member_start(&nodes[i], &m);
}

static cellar_client_t *client_of(int i) {
  cellar_client_t *c = harness_connect(&nodes[i], CELLAR_ROUTE_TOKEN_AWARE, 8000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  return c;
}

static int put(cellar_client_t *c, const char *k, const char *v, cellar_consistency_t cl,
               char *msg, size_t msglen) {
  return harness_put(c, "ks", "t", k, v, cl, msg, msglen);
}

/* Reads k at level cl: 1 and the value in out when found, 0 when absent,
** a negative code on error. */
static int get(cellar_client_t *c, const char *k, cellar_consistency_t cl, char *out, size_t outlen) {
  return harness_get(c, "ks", "t", k, cl, out, outlen, NULL, 0);
}

/* Waits until node `from` sees node `who` as up (1) or down (0). */
static int wait_view(int from, int who, int up, int seconds) {
  return harness_wait_view(&nodes[from], &nodes[who], up, seconds);
}

static void test_cluster_and_schema(void) {
  base = testutil_tmpdir("replication");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  static const char *const tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "ks", "SimpleStrategy:3", tables, 10), 0);
}

static void test_write_all_reaches_every_replica(void) {
  cellar_client_t *c = client_of(0);
  char k[32], v[32], got[64];
  for (int i = 0; i < 50; i++) {
    snprintf(k, sizeof k, "all%03d", i);
    snprintf(v, sizeof v, "v%d", i);
    CU_ASSERT_EQUAL(put(c, k, v, CELLAR_CL_ALL, NULL, 0), 0);
  }
  cellar_close(c);
  /* each node alone, at ONE, answers from its own storage first */
  for (int n = 0; n < N; n++) {
    cellar_client_t *cn = client_of(n);
    int found = 0;
    for (int i = 0; i < 50; i++) {
      snprintf(k, sizeof k, "all%03d", i);
      snprintf(v, sizeof v, "v%d", i);
      if (get(cn, k, CELLAR_CL_ONE, got, sizeof got) == 1 && !strcmp(got, v)) found++;
    }
    CU_ASSERT_EQUAL(found, 50);
    cellar_close(cn);
  }
}

static void test_quorum_read_your_writes(void) {
  cellar_client_t *w = client_of(1), *r = client_of(2);
  char k[32], v[32], got[64];
  int seen = 0;
  for (int i = 0; i < 200; i++) {
    snprintf(k, sizeof k, "ryw%03d", i % 20);
    snprintf(v, sizeof v, "gen%d", i);
    CU_ASSERT_EQUAL(put(w, k, v, CELLAR_CL_QUORUM, NULL, 0), 0);
    if (get(r, k, CELLAR_CL_QUORUM, got, sizeof got) == 1 && !strcmp(got, v)) seen++;
  }
  CU_ASSERT_EQUAL(seen, 200);
  cellar_close(w);
  cellar_close(r);
}

/* a slice coordinated over three replicas pages through every row once */
static void test_quorum_paging(void) {
  cellar_client_t *c = client_of(0);
  char ck[16];
  cellar_cell_t cell = {"v", 1, "x", 1};
  for (int i = 0; i < 1200; i += 100) {
    cellar_row_t rows[100];
    char cks[100][16];
    for (int k = 0; k < 100; k++) {
      snprintf(cks[k], sizeof cks[k], "r%05d", i + k);
      rows[k] = (cellar_row_t){cks[k], strlen(cks[k]), &cell, 1};
    }
    cellar_put_t p = {.keyspace = "ks", .table = "t", .partition = "big", .partition_len = 3,
                      .rows = rows, .nrows = 100, .consistency = CELLAR_CL_ALL};
    CU_ASSERT_EQUAL_FATAL(cellar_put(c, &p, NULL), 0);
  }
  cellar_close(c);
  cellar_client_t *r = client_of(1);
  int seen = 0, pages = 0, order_ok = 1;
  uint8_t cursor[64];
  size_t ncursor = 0;
  for (;;) {
    cellar_slice_t s = {.keyspace = "ks", .table = "t", .partition = "big", .partition_len = 3,
                        .limit = 250, .cursor = ncursor ? cursor : NULL, .cursor_len = ncursor,
                        .consistency = CELLAR_CL_QUORUM};
    cellar_result_t *res = NULL;
    CU_ASSERT_EQUAL_FATAL(cellar_slice(r, &s, &res), 0);
    for (size_t i = 0; i < cellar_result_row_count(res); i++) {
      size_t n;
      const void *k = cellar_result_clustering(res, i, &n);
      snprintf(ck, sizeof ck, "r%05d", seen);
      if (n != strlen(ck) || memcmp(k, ck, n)) order_ok = 0;
      seen++;
    }
    pages++;
    size_t nc;
    const void *cur = cellar_result_cursor(res, &nc);
    ncursor = cur ? nc : 0;
    if (cur) memcpy(cursor, cur, nc);
    cellar_result_free(res);
    if (!ncursor || pages > 20) break;
  }
  CU_ASSERT_EQUAL(seen, 1200);
  CU_ASSERT(order_ok);
  CU_ASSERT_EQUAL(pages, 5);
  cellar_close(r);
}

/* kill -9 of a replica, before any failure detector noticed: requests
** through a live coordinator fail fast at worst, never wait out a timeout,
** and once the dead connection is known they all succeed */
static void test_kill9_fails_fast(void) {
  cellar_client_t *c = client_of(0);
  CU_ASSERT_EQUAL(put(c, "warm", "x", CELLAR_CL_ALL, NULL, 0), 0);
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[2], SIGKILL) >= 0, 1);
  int failed = 0, slow = 0, last_failure = -1;
  char k[32], got[64];
  for (int i = 0; i < 100; i++) {
    snprintf(k, sizeof k, "k9-%03d", i);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int w = put(c, k, k, CELLAR_CL_QUORUM, NULL, 0);
    int r = get(c, k, CELLAR_CL_QUORUM, got, sizeof got);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    if (w != 0 || r != 1) {
      failed++;
      last_failure = i;
    }
    if (ms > 1000) slow++;
  }
  printf("\n  kill -9, then 100 QUORUM write+read pairs: %d failed (last at #%d), %d over 1 s\n",
         failed, last_failure, slow);
  CU_ASSERT(failed <= 3);
  CU_ASSERT(last_failure < 5);
  CU_ASSERT_EQUAL(slow, 0);
  cellar_close(c);
  CU_ASSERT_EQUAL_FATAL(start_node(2), 0);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(wait_view(i, 2, 1, 60), 0);
}

static void test_levels_with_replicas_down(void) {
  cellar_client_t *c = client_of(0);
  char msg[256];
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[2], SIGKILL) >= 0, 1);
  CU_ASSERT_EQUAL_FATAL(wait_view(0, 2, 0, 60), 0);
  /* one of three down */
  CU_ASSERT_EQUAL(put(c, "d1", "x", CELLAR_CL_ONE, NULL, 0), 0);
  CU_ASSERT_EQUAL(put(c, "d1", "x", CELLAR_CL_QUORUM, NULL, 0), 0);
  CU_ASSERT_EQUAL(put(c, "d1", "x", CELLAR_CL_TWO, NULL, 0), 0);
  CU_ASSERT_EQUAL(put(c, "d1", "x", CELLAR_CL_ALL, msg, sizeof msg), CELLAR_EUNAVAILABLE);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "ALL requires 3 replicas, 2 alive"));
  printf("\n  ALL with one of three down: %s", msg);
  CU_ASSERT_EQUAL(get(c, "d1", CELLAR_CL_QUORUM, NULL, 0), 1);
  CU_ASSERT_EQUAL(get(c, "d1", CELLAR_CL_ALL, NULL, 0), CELLAR_EUNAVAILABLE);
  /* the write node 2 missed, for the repair test below */
  CU_ASSERT_EQUAL(put(c, "missed", "while-down", CELLAR_CL_QUORUM, NULL, 0), 0);
  /* two of three down */
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[1], SIGKILL) >= 0, 1);
  CU_ASSERT_EQUAL_FATAL(wait_view(0, 1, 0, 60), 0);
  CU_ASSERT_EQUAL(put(c, "d2", "x", CELLAR_CL_ONE, NULL, 0), 0);
  CU_ASSERT_EQUAL(put(c, "d2", "x", CELLAR_CL_QUORUM, msg, sizeof msg), CELLAR_EUNAVAILABLE);
  printf("\n  QUORUM with two of three down: %s\n", msg);
  CU_ASSERT_EQUAL(get(c, "d2", CELLAR_CL_ONE, NULL, 0), 1);
  CU_ASSERT_EQUAL(get(c, "d2", CELLAR_CL_QUORUM, NULL, 0), CELLAR_EUNAVAILABLE);
  cellar_close(c);
  CU_ASSERT_EQUAL_FATAL(start_node(1), 0);
  CU_ASSERT_EQUAL_FATAL(start_node(2), 0);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(wait_view(0, i, 1, 60), 0);
  CU_ASSERT_EQUAL_FATAL(wait_view(2, 0, 1, 60), 0);
}

static void test_read_repair(void) {
  /* node 2 was down when "missed" was written (hints are off here): alone
  ** it does not have it */
  cellar_client_t *c2 = client_of(2), *c0 = client_of(0);
  char got[64];
  CU_ASSERT_EQUAL(get(c2, "missed", CELLAR_CL_ONE, got, sizeof got), 0);
  /* a read at ALL sees the mismatch, answers the newest and repairs */
  CU_ASSERT_EQUAL(get(c0, "missed", CELLAR_CL_ALL, got, sizeof got), 1);
  CU_ASSERT_STRING_EQUAL(got, "while-down");
  CU_ASSERT_EQUAL(get(c2, "missed", CELLAR_CL_ONE, got, sizeof got), 1);
  CU_ASSERT_STRING_EQUAL(got, "while-down");
  cellar_close(c2);
  cellar_close(c0);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"cluster_and_schema", test_cluster_and_schema},
    {"write_all_reaches_every_replica", test_write_all_reaches_every_replica},
    {"quorum_read_your_writes", test_quorum_read_your_writes},
    {"quorum_paging", test_quorum_paging},
    {"kill9_fails_fast", test_kill9_fails_fast},
    {"levels_with_replicas_down", test_levels_with_replicas_down},
    {"read_repair", test_read_repair},
    {NULL, NULL}};
  return testutil_run("replication", cases, argc, argv);
}
