/*
** kill -9 durability: every write the node acknowledged is readable after
** the process is killed mid-stream and restarted on the same data.
*/
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

#define NKEYS 200000

static node_proc node;
static char *base;
static _Atomic unsigned char acked[NKEYS];
static _Atomic long nacked, nfailed;

static void cleanup(void) {
  if (node.pid) harness_node_signal(&node, SIGKILL);
  if (base) testutil_rmrf(base);
}

static cellar_client_t *connect_node(void) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = node.addr;
  o.connections = 4;
  o.request_timeout_ms = 5000;
  cellar_client_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_connect(&o, &c), 0);
  return c;
}

static void key_of(long i, char *k, char *v) {
  snprintf(k, 24, "key%09ld", i);
  snprintf(v, 40, "value-%ld-%ld", i, i * 7919);
}

static void on_put(int status, cellar_result_t *res, void *arg) {
  long i = (long)(intptr_t)arg;
  (void)res;
  if (status == 0) {
    atomic_store(&acked[i], 1);
    atomic_fetch_add(&nacked, 1);
  } else {
    atomic_fetch_add(&nfailed, 1);
  }
}

static void test_kill9_loses_no_acknowledged_write(void) {
  base = testutil_tmpdir("durability");
  atexit(cleanup);
  harness_node_init(&node, base, "127.0.0.1", 1);
  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 10000), 0);
  cellar_client_t *c = connect_node();
  CU_ASSERT_EQUAL_FATAL(cellar_create_keyspace(c, "ks", "SimpleStrategy:1", 0, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_create_table(c, "ks", "t", NULL, 0, NULL), 0);

  /* keep ~256 writes in flight; kill -9 once 30,000 are acknowledged */
  long sent = 0;
  int killed = 0;
  while (sent < NKEYS) {
    if (sent - atomic_load(&nacked) - atomic_load(&nfailed) >= 256) {
      usleep(200);
      if (!killed && atomic_load(&nacked) >= 30000) {
        CU_ASSERT_EQUAL(harness_node_signal(&node, SIGKILL) >= 0, 1);
        killed = 1;
        break;
      }
      continue;
    }
    char k[24], v[40];
    key_of(sent, k, v);
    cellar_cell_t cell = {"v", 1, v, strlen(v)};
    cellar_row_t row = {NULL, 0, &cell, 1};
    cellar_put_t p = {.keyspace = "ks", .table = "t", .partition = k,
                      .partition_len = strlen(k), .rows = &row, .nrows = 1};
    if (cellar_put_async(c, &p, on_put, (void *)(intptr_t)sent) != 0) break;
    sent++;
  }
  CU_ASSERT_EQUAL(killed, 1);
  cellar_close(c);   /* every outstanding callback has run now */
  long acks = atomic_load(&nacked);
  printf("\n  sent %ld, acknowledged %ld, failed by the kill %ld\n", sent, acks,
         atomic_load(&nfailed));
  CU_ASSERT(acks >= 30000);

  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 20000), 0);
  c = connect_node();
  long missing = 0, wrong = 0, checked = 0;
  for (long i = 0; i < sent; i++) {
    if (!atomic_load(&acked[i])) continue;
    char k[24], v[40];
    key_of(i, k, v);
    cellar_get_t g = {.keyspace = "ks", .table = "t", .partition = k,
                      .partition_len = strlen(k)};
    cellar_result_t *r = NULL;
    int rc = cellar_get(c, &g, &r);
    checked++;
    if (rc != 0 || cellar_result_row_count(r) != 1) {
      if (missing++ < 5) printf("  missing %s (rc %d)\n", k, rc);
    } else {
      size_t n;
      const void *val = cellar_result_cell_value(r, 0, 0, &n);
      if (n != strlen(v) || memcmp(val, v, n) != 0) wrong++;
    }
    cellar_result_free(r);
  }
  printf("  checked %ld acknowledged keys after restart: %ld missing, %ld wrong\n",
         checked, missing, wrong);
  CU_ASSERT_EQUAL(missing, 0);
  CU_ASSERT_EQUAL(wrong, 0);
  cellar_close(c);
  CU_ASSERT_EQUAL(harness_node_signal(&node, SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"kill9_loses_no_acknowledged_write", test_kill9_loses_no_acknowledged_write},
    {NULL, NULL}};
  return testutil_run("durability", cases, argc, argv);
}
