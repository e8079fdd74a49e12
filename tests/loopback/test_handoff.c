/*
** Hinted handoff across real processes: three cellard nodes, keyspace
** SimpleStrategy:3, QUORUM writes through node 0 while node 2 is dead
** (kill -9). Node 0 keeps a hint per write for node 2, replays them once
** node 2 is back, and node 2 alone (reads at ONE that it coordinates
** itself, answered from its own storage) then holds every row; the hint
** backlog is 0. A coordinator killed (kill -9) in the middle of a replay
** resumes it from RocksDB after its restart, and nothing is lost. A write
** at ANY succeeds with every replica down, once its hint is stored. The
** hints of a member removed from the cluster are dropped.
*/
#include <pthread.h>
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
#define ROWS_PER_PARTITION 100

static node_proc nodes[N];
static char *base;
static char seeds[256];
static char host_ids[N][40];

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* throttle: hinted_handoff_throttle in KiB/s ("0": unthrottled) */
static int start_node(int i, const char *throttle) {
  const char *extra[] = {"--hinted-handoff-throttle", throttle, NULL};
  harness_member m = {.seeds = seeds, .write_timeout_ms = 1500, .read_timeout_ms = 3000,
                      .extra = extra};
  return harness_member_start(&nodes[i], &m);
}

static cellar_client_t *alone(int i) {
  cellar_client_t *c = harness_connect(&nodes[i], CELLAR_ROUTE_NONE, 15000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  return c;
}

/* An ADMIN info value of node i as a number (-1: no answer). */
static long long admin_number(int i, const char *command, const char *key) {
  cellar_client_t *c = harness_connect(&nodes[i], CELLAR_ROUTE_NONE, 5000);
  if (c == NULL) return -1;
  cellar_result_t *r = NULL;
  long long v = -1;
  if (cellar_admin(c, command, NULL, &r) == 0) {
    v = 0;
    for (size_t k = 0; k < cellar_result_info_count(r); k++)
      if (!strcmp(cellar_result_info_key(r, k), key))
        v = strtoll(cellar_result_info_value(r, k), NULL, 10);
  }
  cellar_result_free(r);
  cellar_close(c);
  return v;
}

static long long backlog(int i) { return admin_number(i, "hints", "hints.total"); }

/* Waits until node i's hint backlog is 0; returns the seconds it took, or
** -1 after `seconds`. */
static double wait_backlog_zero(int i, int seconds) {
  double t0 = now_s();
  while (now_s() - t0 < seconds) {
    if (backlog(i) == 0) return now_s() - t0;
    usleep(100000);
  }
  return -1;
}

/* ------------------------------------------------- pipelined writes */

typedef struct window {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int inflight;
  long ok, failed;
} window;

static void put_done(int status, cellar_result_t *res, void *arg) {
  window *w = arg;
  (void)res;
  pthread_mutex_lock(&w->mu);
  w->inflight--;
  if (status == 0) w->ok++;
  else w->failed++;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Writes partitions prefix000.. x ROWS_PER_PARTITION rows, one put per
** row, at most 256 in flight, through node `via` alone. Returns the puts
** acknowledged. */
static long write_rows(int via, const char *prefix, int partitions, cellar_consistency_t cl) {
  cellar_client_t *c = alone(via);
  window w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  for (int p = 0; p < partitions; p++) {
    char pk[32];
    snprintf(pk, sizeof pk, "%s%04d", prefix, p);
    for (int r = 0; r < ROWS_PER_PARTITION; r++) {
      char ck[16], val[80];
      snprintf(ck, sizeof ck, "c%03d", r);
      snprintf(val, sizeof val, "value-%s-%03d-xxxxxxxxxxxxxxxx", pk, r);
      cellar_cell_t cell = {"v", 1, val, strlen(val)};
      cellar_row_t row = {ck, strlen(ck), &cell, 1};
      cellar_put_t put = {.keyspace = "ks", .table = "t", .partition = pk,
                          .partition_len = strlen(pk), .rows = &row, .nrows = 1,
                          .consistency = cl};
      pthread_mutex_lock(&w.mu);
      while (w.inflight >= 256) pthread_cond_wait(&w.cv, &w.mu);
      w.inflight++;
      pthread_mutex_unlock(&w.mu);
      if (cellar_put_async(c, &put, put_done, &w) != 0) {
        pthread_mutex_lock(&w.mu);
        w.inflight--;
        w.failed++;
        pthread_mutex_unlock(&w.mu);
      }
    }
  }
  pthread_mutex_lock(&w.mu);
  while (w.inflight > 0) pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  cellar_close(c);
  if (w.failed) printf("\n  %ld puts failed", w.failed);
  return w.ok;
}

/* Rows node i alone holds (slices at ONE it coordinates itself: its own
** storage, RF 3 on 3 nodes). */
static long count_rows(int i, const char *prefix, int partitions) {
  cellar_client_t *c = alone(i);
  long total = 0;
  for (int p = 0; p < partitions; p++) {
    char pk[32];
    snprintf(pk, sizeof pk, "%s%04d", prefix, p);
    cellar_slice_t s = {.keyspace = "ks", .table = "t", .partition = pk,
                        .partition_len = strlen(pk), .limit = 1000,
                        .consistency = CELLAR_CL_ONE};
    cellar_result_t *r = NULL;
    if (cellar_slice(c, &s, &r) == 0) total += (long)cellar_result_row_count(r);
    cellar_result_free(r);
  }
  cellar_close(c);
  return total;
}

/* ------------------------------------------------------------ tests */

static void test_cluster(void) {
  base = testutil_tmpdir("handoff");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  harness_seeds(nodes, 1, seeds, sizeof seeds);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL_FATAL(start_node(i, "0"), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 60), 0);
  const char *tables[] = {"t", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "ks", "SimpleStrategy:3", tables, 30), 0);
  /* ks1.t: RF 1, last-write-wins (a siblings write needs a live replica
  ** to coordinate it: ANY with every replica down is for lww tables) */
  const char *none[] = {NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, "ks1", "SimpleStrategy:1", none, 30), 0);
  cellar_client_t *c0 = alone(0);
  cellar_table_options_t lww;
  cellar_table_options_init(&lww);
  lww.conflict_policy = "lww";
  CU_ASSERT_EQUAL_FATAL(cellar_create_table(c0, "ks1", "t", &lww, 0, NULL), 0);
  /* ks1.g: gc_grace 0, so no hint is ever stored for it */
  lww.gc_grace_seconds = 0;
  CU_ASSERT_EQUAL_FATAL(cellar_create_table(c0, "ks1", "g", &lww, 0, NULL), 0);
  cellar_close(c0);
  for (int i = 0; i < N; i++) {
    int ok = 0;
    for (int t = 0; t < 100 && !ok; t++) {
      cellar_client_t *ci = alone(i);
      cellar_result_t *d = NULL;
      ok = cellar_describe(ci, "ks1", &d) == 0 && cellar_result_table_count(d) == 2;
      cellar_result_free(d);
      cellar_close(ci);
      if (!ok) usleep(100000);
    }
    CU_ASSERT_FATAL(ok);
  }
  for (int i = 0; i < N; i++) {
    cellar_client_t *c = alone(i);
    cellar_result_t *r = NULL;
    CU_ASSERT_EQUAL_FATAL(cellar_admin(c, "info", NULL, &r), 0);
    for (size_t k = 0; k < cellar_result_info_count(r); k++)
      if (!strcmp(cellar_result_info_key(r, k), "node.id"))
        snprintf(host_ids[i], sizeof host_ids[i], "%s", cellar_result_info_value(r, k));
    cellar_result_free(r);
    cellar_close(c);
    CU_ASSERT_FATAL(host_ids[i][0] != '\0');
  }
  CU_ASSERT_EQUAL(backlog(0), 0);
}

/* kill -9 node 2, 100,000 QUORUM writes through node 0, restart node 2:
** after the replay node 2 alone shows every row and the backlog is 0. */
static void test_replay_after_restart(void) {
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[2], SIGKILL) >= 0, 1);
  CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[2], 0, 60), 0);
  double t0 = now_s();
  long ok = write_rows(0, "p", 1000, CELLAR_CL_QUORUM);
  double tw = now_s() - t0;
  CU_ASSERT_EQUAL_FATAL(ok, 100000);
  long long pending = backlog(0);
  printf("\n  100000 QUORUM puts with node 2 down in %.1f s; node 0 holds %lld hints", tw,
         pending);
  CU_ASSERT(pending >= 100000);
  /* status notes the node with pending hints, in the tool's output too */
  char key[64];
  snprintf(key, sizeof key, "hints.%s", host_ids[2]);
  CU_ASSERT(admin_number(0, "status", key) >= 100000);
  const char *admin = getenv("CELLAR_ADMIN");
  CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
  char *out = NULL;
  const char *argv[] = {admin, "-h", nodes[0].addr, "hints", NULL};
  CU_ASSERT_EQUAL(harness_run(argv, &out), 0);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, host_ids[2]));
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "waiting"));
  free(out);
  out = NULL;
  const char *argv2[] = {admin, "-h", nodes[0].addr, "--json", "status", NULL};
  CU_ASSERT_EQUAL(harness_run(argv2, &out), 0);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"hints\":1"));
  free(out);
  /* node 2 is back: hints alone bring it up to date */
  CU_ASSERT_EQUAL_FATAL(start_node(2, "0"), 0);
  double t1 = now_s();
  double took = wait_backlog_zero(0, 60);
  CU_ASSERT_FATAL(took >= 0);
  double replay = now_s() - t1;
  long rows = count_rows(2, "p", 1000);
  printf("\n  replayed to node 2 in %.1f s (%.0f rows/s); node 2 alone shows %ld rows",
         replay, 100000 / replay, rows);
  CU_ASSERT_EQUAL(rows, 100000);
  CU_ASSERT(admin_number(0, "metrics", "hints.replayed") >= 100000);
  out = NULL;
  const char *argv3[] = {admin, "-h", nodes[0].addr, "--json", "hints", NULL};
  CU_ASSERT_EQUAL(harness_run(argv3, &out), 0);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"total\":0"));
  free(out);
}

/* The coordinator is killed in the middle of a (slow, throttled) replay:
** restarted, it resumes from RocksDB; node 2 gets every row. */
static void test_coordinator_crash_mid_replay(void) {
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[0], SIGTERM), 0);
  CU_ASSERT_EQUAL_FATAL(start_node(0, "256"), 0);
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 60), 0);
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[2], SIGKILL) >= 0, 1);
  CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[2], 0, 60), 0);
  long ok = write_rows(0, "q", 200, CELLAR_CL_QUORUM);
  CU_ASSERT_EQUAL_FATAL(ok, 20000);
  long long before = backlog(0);
  CU_ASSERT(before >= 20000);
  CU_ASSERT_EQUAL_FATAL(start_node(2, "0"), 0);
  /* wait until the replay is under way, then kill the coordinator */
  long long left = before;
  double t0 = now_s();
  while (now_s() - t0 < 60 && (left = backlog(0)) > before * 3 / 4) usleep(100000);
  CU_ASSERT_FATAL(left > 0 && left <= before * 3 / 4);
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[0], SIGKILL) >= 0, 1);
  long partial = count_rows(2, "q", 200);
  printf("\n  node 0 killed with %lld of %lld hints left; node 2 had %ld of 20000 rows", left,
         before, partial);
  CU_ASSERT(partial < 20000);
  /* restarted (unthrottled now): the hints are still there, replay resumes */
  CU_ASSERT_EQUAL_FATAL(start_node(0, "0"), 0);
  long long after = backlog(0);
  printf("\n  after the restart node 0 holds %lld hints", after);
  CU_ASSERT(after > 0 && after <= left + 1024);
  CU_ASSERT_FATAL(wait_backlog_zero(0, 60) >= 0);
  CU_ASSERT_EQUAL(count_rows(2, "q", 200), 20000);
  CU_ASSERT_EQUAL(count_rows(2, "p", 1000), 100000);
}

/* ANY with every replica down succeeds once the hint is stored; the hint
** reaches the replica when it is back. A hint that cannot be stored (a
** gc_grace 0 table) fails the ANY write at once with UNAVAILABLE, not
** with a timeout. */
static void test_any_with_replicas_down(void) {
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 60), 0);
  cellar_client_t *c = alone(0);
  char key[32] = "";
  for (int i = 0; i < 200 && !key[0]; i++) {
    char k[32];
    snprintf(k, sizeof k, "any%03d", i);
    if (harness_replica_of(c, "ks1", "t", k, &nodes[2])) snprintf(key, sizeof key, "%s", k);
  }
  CU_ASSERT_FATAL(key[0] != '\0');
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[2], SIGKILL) >= 0, 1);
  CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[2], 0, 60), 0);
  char msg[256];
  CU_ASSERT_EQUAL(harness_put(c, "ks1", "t", key, "one", CELLAR_CL_ONE, msg, sizeof msg),
                  CELLAR_EUNAVAILABLE);
  CU_ASSERT_EQUAL(harness_put(c, "ks1", "t", key, "any", CELLAR_CL_ANY, msg, sizeof msg), 0);
  printf("\n  ANY with the only replica down: ok");
  CU_ASSERT(backlog(0) >= 1);
  double t0 = now_s();
  int rc = harness_put(c, "ks1", "g", key, "none", CELLAR_CL_ANY, msg, sizeof msg);
  double took = now_s() - t0;
  printf("\n  ANY with no replica and no hint: %s after %.2f s (%s)", cellar_strerror(rc), took,
         msg);
  CU_ASSERT_EQUAL(rc, CELLAR_EUNAVAILABLE);
  cellar_close(c);
  CU_ASSERT_EQUAL_FATAL(start_node(2, "0"), 0);
  CU_ASSERT_FATAL(wait_backlog_zero(0, 60) >= 0);
  /* a restarted node serves data requests once gossip brought it the ring */
  CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[2], &nodes[0], 1, 30), 0);
  cellar_client_t *c2 = alone(2);
  char got[64] = "";
  rc = harness_get(c2, "ks1", "t", key, CELLAR_CL_ONE, got, sizeof got, msg, sizeof msg);
  if (rc != 1) printf("\n  read of the hinted key on node 2: %d (%s)", rc, msg);
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT_STRING_EQUAL(got, "any");
  cellar_close(c2);
}

/* A target removed from the cluster (removenode) has its hints dropped. */
static void test_removed_target_hints_dropped(void) {
  /* ks1 (RF 1) has ranges no survivor could stream: removenode refuses */
  cellar_client_t *c = alone(0);
  CU_ASSERT_EQUAL_FATAL(cellar_drop_keyspace(c, "ks1", 0, NULL), 0);
  cellar_close(c);
  sleep(1);                   /* the drop spreads with the schema */
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&nodes[2], SIGKILL) >= 0, 1);
  CU_ASSERT_EQUAL_FATAL(harness_wait_view(&nodes[0], &nodes[2], 0, 60), 0);
  CU_ASSERT_EQUAL_FATAL(write_rows(0, "r", 1, CELLAR_CL_QUORUM), ROWS_PER_PARTITION);
  CU_ASSERT(backlog(0) >= ROWS_PER_PARTITION);
  const char *argv[] = {getenv("CELLAR_ADMIN"), "-h", nodes[0].addr, "removenode", host_ids[2],
                        NULL};
  char *out = NULL;
  int st = harness_run(argv, &out);
  if (st) printf("\n  removenode: %s", out ? out : "");
  CU_ASSERT_EQUAL(st, 0);
  free(out);
  double took = wait_backlog_zero(0, 30);
  printf("\n  removenode: node 0 dropped its hints for the removed node after %.1f s\n", took);
  CU_ASSERT(took >= 0);
  CU_ASSERT_EQUAL(harness_wait_log(&nodes[0], 0, "handoff: .* left the cluster: dropping", 5), 0);
  for (int i = 0; i < 2; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"cluster", test_cluster},
    {"replay_after_restart", test_replay_after_restart},
    {"coordinator_crash_mid_replay", test_coordinator_crash_mid_replay},
    {"any_with_replicas_down", test_any_with_replicas_down},
    {"removed_target_hints_dropped", test_removed_target_hints_dropped},
    {NULL, NULL}};
  return testutil_run("handoff", cases, argc, argv);
}
