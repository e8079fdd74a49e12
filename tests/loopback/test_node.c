/*
** One real cellard: configuration refused with a message naming the
** setting, a clean drain on SIGTERM that answers what it already read,
** schema and data surviving a restart, one process per data directory.
*/
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

static node_proc node;
static char *base;

static void cleanup(void) {
  if (node.pid) harness_node_signal(&node, SIGKILL);
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static cellar_client_t *connect_node(void) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = node.addr;
  o.connections = 2;
  cellar_client_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_connect(&o, &c), 0);
  return c;
}

static void test_bad_config_is_refused(void) {
  const char *cellard = getenv("CELLARD");
  CU_ASSERT_PTR_NOT_NULL_FATAL(cellard);
  struct { const char *flag, *value, *needle; } cases[] = {
    {"--cache-size", "1k", "cache_size"},
    {"--listen", "localhost", "listen"},
    {"--listen", "127.0.0.1:99999", "port"},
    {"--bogus", "1", "unknown setting 'bogus'"},
    {"--config", "/nonexistent.conf", "/nonexistent.conf"},
    {"--workers", "-3", "workers"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *argv[] = {cellard, cases[i].flag, cases[i].value, NULL};
    char *out = NULL;
    int st = harness_run(argv, &out);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, cases[i].needle));
    if (!out || !strstr(out, cases[i].needle)) printf("\n  output: %s\n", out ? out : "");
    free(out);
  }
  const char *help[] = {cellard, "--help", NULL};
  char *out = NULL;
  CU_ASSERT_EQUAL(harness_run(help, &out), 0);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "data_dir"));
  free(out);
}

static _Atomic int ok_count, closed_count, other_count;
static _Atomic unsigned char drain_acked[3000];

static void on_put(int status, cellar_result_t *r, void *arg) {
  (void)r;
  if (status == 0) {
    atomic_fetch_add(&ok_count, 1);
    atomic_store(&drain_acked[(intptr_t)arg], 1);
  } else if (status == CELLAR_ECLOSED || status == CELLAR_ESHUTDOWN ||
             status == CELLAR_ECONNECT) {
    atomic_fetch_add(&closed_count, 1);
  } else {
    atomic_fetch_add(&other_count, 1);
  }
}

static void test_restart_keeps_schema_and_data(void) {
  base = testutil_tmpdir("node");
  atexit(cleanup);
  harness_node_init(&node, base, "127.0.0.1", 1);
  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 10000), 0);
  cellar_client_t *c = connect_node();
  CU_ASSERT_EQUAL(cellar_create_keyspace(c, "shop", "NetworkTopologyStrategy:eu=3,us=2", 0, NULL), 0);
  cellar_table_options_t t;
  cellar_table_options_init(&t);
  t.conflict_policy = "lww";
  t.default_ttl = 3600;
  CU_ASSERT_EQUAL(cellar_create_table(c, "shop", "items", &t, 0, NULL), 0);
  cellar_cell_t cells[] = {{"price", 5, "12.50", 5}, {"name", 4, "teapot", 6}};
  cellar_row_t row = {"", 0, cells, 2};
  cellar_put_t p = {.keyspace = "shop", .table = "items", .partition = "sku42",
                    .partition_len = 5, .rows = &row, .nrows = 1};
  CU_ASSERT_EQUAL(cellar_put(c, &p, NULL), 0);

  /* SIGTERM while writes are in flight: every answer is a success or a
  ** cut connection, every success is durable, and the node exits 0 */
  int sent = 0, signalled = 0;
  for (int i = 0; i < 3000; i++) {
    char k[32];
    snprintf(k, sizeof k, "drain%05d", i);
    cellar_cell_t cell = {"v", 1, k, strlen(k)};
    cellar_row_t r1 = {NULL, 0, &cell, 1};
    cellar_put_t q = {.keyspace = "shop", .table = "items", .partition = k,
                      .partition_len = strlen(k), .rows = &r1, .nrows = 1};
    CU_ASSERT_EQUAL(cellar_put_async(c, &q, on_put, (void *)(intptr_t)i), 0);
    sent++;
    if (!signalled && atomic_load(&ok_count) >= 300) {
      kill(node.pid, SIGTERM);
      signalled = 1;
    }
    if (i % 64 == 0) usleep(500);
  }
  if (!signalled) kill(node.pid, SIGTERM);
  int st = harness_node_signal(&node, SIGTERM);
  CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    printf("\n  exit status %d: %s %d\n", st, WIFSIGNALED(st) ? "signal" : "exit code",
           WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  cellar_close(c);
  printf("\n  during drain: %d acknowledged, %d cut off, %d other\n", atomic_load(&ok_count),
         atomic_load(&closed_count), atomic_load(&other_count));
  CU_ASSERT_EQUAL(atomic_load(&other_count), 0);
  CU_ASSERT(atomic_load(&ok_count) >= 300);
  CU_ASSERT_EQUAL(atomic_load(&ok_count) + atomic_load(&closed_count), sent);
  char *log = NULL;
  const char *cat[] = {"/bin/cat", node.log_path, NULL};
  harness_run(cat, &log);
  CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "drained"));
  free(log);

  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 10000), 0);
  c = connect_node();
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL(cellar_describe(c, "shop", &r), 0);
  CU_ASSERT_EQUAL(cellar_result_keyspace_count(r), 1);
  CU_ASSERT_STRING_EQUAL(cellar_result_keyspace_replication(r, 0),
                         "NetworkTopologyStrategy:eu=3,us=2");
  CU_ASSERT_EQUAL_FATAL(cellar_result_table_count(r), 1);
  CU_ASSERT_STRING_EQUAL(cellar_result_table_policy(r, 0), "lww");
  CU_ASSERT_EQUAL(cellar_result_table_default_ttl(r, 0), 3600);
  cellar_result_free(r);
  cellar_get_t g = {.keyspace = "shop", .table = "items", .partition = "sku42",
                    .partition_len = 5};
  CU_ASSERT_EQUAL(cellar_get(c, &g, &r), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_row_count(r), 1);
  CU_ASSERT_EQUAL(cellar_result_cell_count(r, 0), 2);
  CU_ASSERT(cellar_result_cell_expires(r, 0, 0) > 0);   /* the table's default TTL */
  cellar_result_free(r);
  /* every write acknowledged during the drain is there */
  int lost = 0;
  for (int i = 0; i < sent; i++) {
    if (!atomic_load(&drain_acked[i])) continue;
    char k[32];
    snprintf(k, sizeof k, "drain%05d", i);
    cellar_get_t dg = {.keyspace = "shop", .table = "items", .partition = k,
                       .partition_len = strlen(k)};
    CU_ASSERT_EQUAL(cellar_get(c, &dg, &r), 0);
    if (cellar_result_row_count(r) != 1) lost++;
    cellar_result_free(r);
  }
  CU_ASSERT_EQUAL(lost, 0);
  cellar_close(c);

  /* a second node on the same data directory refuses to start */
  node_proc twin;
  harness_node_init(&twin, base, "127.0.0.1", 2);
  snprintf(twin.data_dir, sizeof twin.data_dir, "%s", node.data_dir);
  CU_ASSERT_NOT_EQUAL(harness_node_start(&twin, NULL, 3000), 0);
  if (twin.pid) harness_node_signal(&twin, SIGKILL);
  CU_ASSERT_EQUAL(harness_node_signal(&node, SIGTERM), 0);
}

/* cellar-admin snapshot, then the documented restore into a fresh data dir */
static void test_snapshot_restores(void) {
  if (base == NULL) {
    base = testutil_tmpdir("node");
    atexit(cleanup);
  }
  node_proc n1;
  harness_node_init(&n1, base, "127.0.0.1", 3);
  node = n1;
  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 10000), 0);
  cellar_client_t *c = connect_node();
  CU_ASSERT_EQUAL(cellar_create_keyspace(c, "snap", "SimpleStrategy:1", 1, NULL), 0);
  CU_ASSERT_EQUAL(cellar_create_table(c, "snap", "t", NULL, 1, NULL), 0);
  cellar_cell_t cell = {"v", 1, "before", 6};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = "snap", .table = "t", .partition = "k",
                    .partition_len = 1, .rows = &row, .nrows = 1};
  CU_ASSERT_EQUAL(cellar_put(c, &p, NULL), 0);
  const char *admin = getenv("CELLAR_ADMIN");
  CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
  const char *argv[] = {admin, "-h", node.addr, "snapshot", "s1", NULL};
  char *out = NULL;
  CU_ASSERT_EQUAL(harness_run(argv, &out), 0);
  free(out);
  cell.value = "after";
  cell.value_len = 5;
  CU_ASSERT_EQUAL(cellar_put(c, &p, NULL), 0);   /* not in the snapshot */
  cellar_close(c);
  CU_ASSERT_EQUAL(harness_node_signal(&node, SIGTERM), 0);

  /* restore: a new data dir whose db is a copy of the snapshot */
  node_proc n2;
  harness_node_init(&n2, base, "127.0.0.1", 4);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -a '%s/snapshots/s1' '%s/db'",
           n2.data_dir, node.data_dir, n2.data_dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  node = n2;
  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 10000), 0);
  /* a restored node's data went back in time: its versions actor takes a
  ** new incarnation (docs/versions.md, KV679), and the marker is used up */
  CU_ASSERT_EQUAL(harness_wait_log(&node, 0, "restored snapshot: new incarnation 2", 5), 0);
  char marker[1200];
  snprintf(marker, sizeof marker, "%s/db/CELLAR_RESTORED_SNAPSHOT", node.data_dir);
  CU_ASSERT_NOT_EQUAL(access(marker, F_OK), 0);
  c = connect_node();
  cellar_get_t g = {.keyspace = "snap", .table = "t", .partition = "k", .partition_len = 1};
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL(cellar_get(c, &g, &r), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_row_count(r), 1);
  size_t n;
  const void *v = cellar_result_cell_value(r, 0, 0, &n);
  CU_ASSERT_EQUAL(n, 6);
  CU_ASSERT_EQUAL(memcmp(v, "before", 6), 0);
  cellar_result_free(r);
  cellar_close(c);
  CU_ASSERT_EQUAL(harness_node_signal(&node, SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"bad_config_is_refused", test_bad_config_is_refused},
    {"restart_keeps_schema_and_data", test_restart_keeps_schema_and_data},
    {"snapshot_restores", test_snapshot_restores},
    {NULL, NULL}};
  return testutil_run("node", cases, argc, argv);
}
