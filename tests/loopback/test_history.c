/*
** The model-checked history test against a real loopback cluster (issue
** 5; the simulated twin is tests/sim/test_history_sim.c): 4 nodes, a
** siblings table with replication factor 3, 3 keys. Four client threads,
** each talking to its own node (so writes have different coordinators,
** and a node that is not a replica forwards to one), read-modify-write
** (QUORUM read, then a QUORUM write with the read's context) and write
** blind, with values unique per attempt. Meanwhile node 1 is paused
** (SIGSTOP) for 3 s and node 2 is stopped and restarted.
**
** After the run: every node up, each key read at ALL twice (blocking read
** repair), then each replica read alone must hold the same versions and
** the same history (the contexts, decoded); and the shared checker
** (tests/unit/history_check.h) proves on the history: no value that was
** never written, every acknowledged write present or superseded by a
** write whose context had it, nothing kept that an acknowledged write
** superseded. HISTORY_SEED=N picks the clients' choices (default: time);
** a failure prints the seed.
*/
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "harness.h"
#include "history_check.h"
#include "testutil.h"

#define N 4
#define NKEYS 3
#define NCLIENTS 4
#define KS "hist"
#define RUN_S 16
#define MAXV 512             /* merged sets may pass the write limit (100) */

static node_proc nodes[N];
static char *base;
static char seeds[128];
static history_check H;
static pthread_mutex_t H_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int stop;
static atomic_int max_versions;   /* the most versions a read returned */
static unsigned seed;

static void cleanup(void) {
  for (int i = 0; i < N; i++) {
    if (nodes[i].pid) kill(nodes[i].pid, SIGCONT);
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  }
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static int start_node(int i) {
  harness_member m = {.seeds = seeds, .read_timeout_ms = 1000, .write_timeout_ms = 1000};
  return harness_member_start(&nodes[i], &m);
}

/* What a read of one key returned. */
typedef struct got {
  int rc;
  size_t n;                    /* values (delete markers are not written here) */
  char v[MAXV][HC_VAL];
  uint8_t ctx[8192];
  size_t nctx;
} got;

static got read_key(cellar_client_t *c, const char *key, cellar_consistency_t cl) {
  got g;
  memset(&g, 0, sizeof g);
  cellar_get_t q = {.keyspace = KS, .table = "s", .partition = key,
                    .partition_len = strlen(key), .consistency = cl};
  cellar_result_t *r = NULL;
  g.rc = cellar_get(c, &q, &r);
  if (g.rc == 0 && cellar_result_row_count(r) == 1 && cellar_result_cell_count(r, 0) == 1) {
    size_t ns = cellar_result_cell_sibling_count(r, 0, 0);
    if (ns == 0) {
      size_t vl;
      const char *v = cellar_result_cell_value(r, 0, 0, &vl);
      snprintf(g.v[0], HC_VAL, "%.*s", (int)vl, v);
      g.n = 1;
    }
    for (size_t k = 0; k < ns && g.n < MAXV; k++) {
      const void *v;
      size_t vl;
      int del;
      if (cellar_result_cell_sibling(r, 0, 0, k, &v, &vl, NULL, &del) == 0 && !del)
        snprintf(g.v[g.n++], HC_VAL, "%.*s", (int)vl, (const char *)v);
    }
    if ((int)ns > atomic_load(&max_versions)) atomic_store(&max_versions, (int)ns);
    size_t n;
    const void *ctx = cellar_result_row_context(r, 0, &n);
    if (ctx && n <= sizeof g.ctx) {
      memcpy(g.ctx, ctx, n);
      g.nctx = n;
    }
  }
  cellar_result_free(r);
  return g;
}

static uint64_t retries_of(cellar_client_t *c) {
  cellar_client_stats_t st;
  cellar_client_stats(c, &st, NULL, 0, NULL);
  return st.retries;
}

static double t_start;
static long ms_since(double t0);

typedef struct client_arg {
  int id;
  long ops, acked, failed;
} client_arg;

static void *client_main(void *arg) {
  client_arg *a = arg;
  cellar_client_t *c = harness_connect(&nodes[a->id], CELLAR_ROUTE_NONE, 3000);
  if (c == NULL) return NULL;
  unsigned rs = seed * 7919u + (unsigned)a->id;
  int n = 0;
  while (!atomic_load(&stop)) {
    int key = rand_r(&rs) % NKEYS, op = rand_r(&rs) % 100;
    char k[16], val[HC_VAL];
    snprintf(k, sizeof k, "h%d", key);
    got g;
    memset(&g, 0, sizeof g);
    const char *seen[MAXV];
    size_t nseen = 0;
    if (op < 75) {               /* read (and, mostly, modify-write) */
      g = read_key(c, k, CELLAR_CL_QUORUM);
      if (g.rc == 0) {
        for (size_t i = 0; i < g.n; i++) seen[i] = g.v[i];
        pthread_mutex_lock(&H_lock);
        hc_read(&H, key, seen, g.n);
        pthread_mutex_unlock(&H_lock);
        nseen = g.n;
      }
      if (g.rc != 0 || op >= 60) continue;
    }
    usleep(1000);   /* a shared machine: a few thousand writes are plenty */
    snprintf(val, sizeof val, "c%d-%d", a->id, n++);
    pthread_mutex_lock(&H_lock);
    long wi = hc_write_add(&H, key, val, seen, nseen);
    pthread_mutex_unlock(&H_lock);
    cellar_cell_t cv = {"v", 1, val, strlen(val)};
    cellar_row_t row = {NULL, 0, &cv, 1};
    cellar_put_t p = {.keyspace = KS, .table = "s", .partition = k, .partition_len = strlen(k),
                      .rows = &row, .nrows = 1, .consistency = CELLAR_CL_QUORUM,
                      .context = g.nctx ? g.ctx : NULL, .context_len = g.nctx};
    uint64_t r0 = retries_of(c);
    cellar_result_t *res = NULL;
    int rc = cellar_put(c, &p, &res);
    cellar_result_free(res);
    int retried = retries_of(c) != r0;
    pthread_mutex_lock(&H_lock);
    hc_write_done(&H, wi, rc == 0, retried || rc != 0);
    if (wi >= 0) H.w[wi].tag = ms_since(t_start) * 10 + (retried ? 1 : 0);
    pthread_mutex_unlock(&H_lock);
    a->ops++;
    if (rc == 0) a->acked++;
    else a->failed++;
  }
  cellar_close(c);
  return NULL;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long ms_since(double t0) { return (long)(now_ms() - t0); }

static int cmp_str(const void *x, const void *y) { return strcmp(x, y); }

static void test_history(void) {
  const char *env = getenv("HISTORY_SEED");
  seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
  base = testutil_tmpdir("history");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  static const char *const tables[] = {"s", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, KS, "SimpleStrategy:3", tables, 10), 0);
  hc_init(&H);

  t_start = now_ms();
  pthread_t th[NCLIENTS];
  client_arg args[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    args[i] = (client_arg){.id = i};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
  }
  /* faults: a pause, then a restart */
  sleep(4);
  long t_pause = ms_since(t_start);
  CU_ASSERT_EQUAL(kill(nodes[1].pid, SIGSTOP), 0);
  sleep(3);
  CU_ASSERT_EQUAL(kill(nodes[1].pid, SIGCONT), 0);
  printf("\n  node 1 paused %ld..%ld ms", t_pause, ms_since(t_start));
  sleep(2);
  long t_stop = ms_since(t_start);
  harness_node_signal(&nodes[2], SIGTERM);
  sleep(2);
  CU_ASSERT_EQUAL(start_node(2), 0);
  printf("\n  node 2 stopped and restarted %ld..%ld ms (write tags: ms * 10 + retried)",
         t_stop, ms_since(t_start));
  sleep(RUN_S - 11);
  atomic_store(&stop, 1);
  long ops = 0, acked = 0, failed = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    pthread_join(th[i], NULL);
    ops += args[i].ops;
    acked += args[i].acked;
    failed += args[i].failed;
  }

  /* faults over: every node up, read repair at ALL, each replica alone */
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  cellar_client_t *via[N];
  for (int i = 0; i < N; i++) via[i] = harness_connect(&nodes[i], CELLAR_ROUTE_NONE, 5000);
  long diverged = 0, finals = 0;
  for (int key = 0; key < NKEYS; key++) {
    char k[16];
    snprintf(k, sizeof k, "h%d", key);
    for (int round = 0; round < 2; round++) {
      int rc = -1;
      for (int t = 0; t < 20 && rc != 0; t++) {
        rc = read_key(via[0], k, CELLAR_CL_ALL).rc;
        if (rc) usleep(250000);
      }
      CU_ASSERT_EQUAL(rc, 0);
    }
    got first;
    int have = 0;
    for (int i = 0; i < N; i++) {
      if (!harness_replica_of(via[0], KS, "s", k, &nodes[i])) continue;
      got g = read_key(via[i], k, CELLAR_CL_ONE);
      CU_ASSERT_EQUAL(g.rc, 0);
      qsort(g.v, g.n, sizeof g.v[0], cmp_str);
      if (!have) {
        first = g;
        have = 1;
        continue;
      }
      int same = g.n == first.n;
      for (size_t v = 0; same && v < g.n; v++) same = !strcmp(g.v[v], first.v[v]);
      /* the histories: contexts decoded (their issue times differ) */
      cell_rowctx a, b;
      if (cell_rowctx_decode(g.ctx, g.nctx, &a) == 0) {
        if (cell_rowctx_decode(first.ctx, first.nctx, &b) == 0) {
          same &= a.n == b.n;
          for (size_t x = 0; same && x < a.n; x++) same = dvv_vv_equal(&a.c[x].vv, &b.c[x].vv);
          cell_rowctx_close(&b);
        } else {
          same = 0;
        }
        cell_rowctx_close(&a);
      } else {
        same = 0;
      }
      if (!same) {
        diverged++;
        printf("\n  key %s: replica %d differs (%zu vs %zu versions)", k, i, g.n, first.n);
      }
    }
    CU_ASSERT(have);
    const char *vals[MAXV];
    for (size_t v = 0; v < first.n; v++) vals[v] = first.v[v];
    hc_final(&H, key, vals, first.n);
    finals += (long)first.n;
  }
  for (int i = 0; i < N; i++) cellar_close(via[i]);
  printf("\n  %ld writes (%ld acked, %ld failed), %ld reads, %ld final versions, "
         "%ld superseded, at most %d versions in a read; violations %ld, diverged %ld\n",
         ops, acked, failed, H.reads, finals, H.superseded, atomic_load(&max_versions),
         H.violations, diverged);
  if (H.violations || diverged)
    printf("  first: %s\n  replay: HISTORY_SEED=%u test_history (timing differs)\n", H.first,
           seed);
  CU_ASSERT_EQUAL(H.violations, 0);
  CU_ASSERT_EQUAL(diverged, 0);
  CU_ASSERT(acked > 50);
  hc_free(&H);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {{"history", test_history}, {NULL, NULL}};
  return testutil_run("history", cases, argc, argv);
}
