/*
** Versions across two datacenters on loopback (issue 5, docs/versions.md):
** 2 + 2 nodes, keyspace NetworkTopologyStrategy:dc1=1,dc2=1, so every key
** has one replica per datacenter and two nodes that are not replicas
** (their writes to a siblings table are forwarded to a replica). Two
** tables: "s" (policy siblings, the default) and "l" (policy lww).
**
**   - concurrent columns: price written through a dc1 coordinator and
**     description through a dc2 coordinator, with the same (stale)
**     context: both survive, no siblings, under either policy;
**   - concurrent same column, siblings: two writes with the same context
**     through coordinators of different datacenters are both kept and read
**     back together with one context; a write with that context replaces
**     them, on each replica read alone;
**   - concurrent same column, lww: the later timestamp wins, written
**     second or first, identically on each replica read alone.
** Concurrency is made by contexts, not timing: two writes that carry the
** same context are concurrent whatever order they arrive in.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "testutil.h"

#define N 4
#define KS "ver"

static node_proc nodes[N];
static char *base;
static char seeds[128];
static cellar_client_t *via[N];   /* a client of each node alone */

static void cleanup(void) {
  for (int i = 0; i < N; i++)
    if (nodes[i].pid) harness_node_signal(&nodes[i], SIGKILL);
  if (base && !getenv("KEEP_TMP")) testutil_rmrf(base);
}

/* One cell as a read returned it. */
typedef struct seen {
  int rc, found;
  char value[64];              /* the LWW value */
  size_t nsib;
  char sib[8][64];             /* the versions, when several */
  uint8_t ctx[1024];           /* the row's context */
  size_t nctx;
  char other[64];              /* another column asked for, when found */
} seen;

static int put_col(cellar_client_t *c, const char *table, const char *key, const char *col,
                   const char *val, const seen *ctx, int64_t ts, char *msg, size_t nmsg) {
  cellar_cell_t cell = {col, strlen(col), val, strlen(val)};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = KS, .table = table, .partition = key,
                    .partition_len = strlen(key), .rows = &row, .nrows = 1,
                    .timestamp = ts, .consistency = CELLAR_CL_LOCAL_ONE};
  if (ctx) {
    p.context = ctx->ctx;
    p.context_len = ctx->nctx;
  }
  cellar_result_t *r = NULL;
  int rc = cellar_put(c, &p, &r);
  if (msg) snprintf(msg, nmsg, "%s", cellar_result_message(r));
  cellar_result_free(r);
  return rc;
}

/* Reads column col (and other, may be NULL) of key at level cl. */
static seen get_col(cellar_client_t *c, const char *table, const char *key, const char *col,
                    const char *other, cellar_consistency_t cl) {
  seen s;
  memset(&s, 0, sizeof s);
  cellar_get_t g = {.keyspace = KS, .table = table, .partition = key,
                    .partition_len = strlen(key), .consistency = cl};
  cellar_result_t *r = NULL;
  s.rc = cellar_get(c, &g, &r);
  for (size_t i = 0; s.rc == 0 && i < cellar_result_cell_count(r, 0); i++) {
    size_t nn, vl;
    const char *name = cellar_result_cell_name(r, 0, i, &nn);
    const char *v = cellar_result_cell_value(r, 0, i, &vl);
    if (other && nn == strlen(other) && !memcmp(name, other, nn))
      snprintf(s.other, sizeof s.other, "%.*s", (int)vl, v);
    if (nn != strlen(col) || memcmp(name, col, nn)) continue;
    s.found = 1;
    snprintf(s.value, sizeof s.value, "%.*s", (int)vl, v);
    s.nsib = cellar_result_cell_sibling_count(r, 0, i);
    for (size_t k = 0; k < s.nsib && k < 8; k++) {
      const void *sv;
      size_t sl;
      int del;
      cellar_result_cell_sibling(r, 0, i, k, &sv, &sl, NULL, &del);
      snprintf(s.sib[k], sizeof s.sib[k], "%.*s", del ? 5 : (int)sl,
               del ? "<del>" : (const char *)sv);
    }
  }
  size_t n = 0;
  const void *ctx = s.rc == 0 ? cellar_result_row_context(r, 0, &n) : NULL;
  if (ctx && n <= sizeof s.ctx) {
    memcpy(s.ctx, ctx, n);
    s.nctx = n;
  }
  cellar_result_free(r);
  return s;
}

static int has_sib(const seen *s, const char *v) {
  for (size_t k = 0; k < s->nsib && k < 8; k++)
    if (!strcmp(s->sib[k], v)) return 1;
  return 0;
}

/* The replicas of key: index of the dc1 one and of the dc2 one. */
static void replicas_of(const char *table, const char *key, int *r1, int *r2) {
  *r1 = *r2 = -1;
  for (int i = 0; i < N; i++)
    if (harness_replica_of(via[0], KS, table, key, &nodes[i])) {
      if (i < 2) *r1 = i;
      else *r2 = i;
    }
}

/* Reads key on node n alone (a replica reads itself first at ONE) until
** want(s) holds, a few seconds at most: the other datacenter's copy
** arrives asynchronously. */
static seen settle(int n, const char *table, const char *key, const char *col,
                   const char *other, int (*want)(const seen *, const void *),
                   const void *arg) {
  seen s;
  for (int t = 0; t < 50; t++) {
    s = get_col(via[n], table, key, col, other, CELLAR_CL_ONE);
    if (s.rc == 0 && want(&s, arg)) break;
    usleep(100000);
  }
  return s;
}

static int want_other(const seen *s, const void *arg) {
  return s->found && !strcmp(s->other, (const char *)arg);
}

static int want_two(const seen *s, const void *arg) {
  (void)arg;
  return s->nsib == 2;
}

static int want_value(const seen *s, const void *arg) {
  return s->found && s->nsib == 0 && !strcmp(s->value, (const char *)arg);
}

static void test_setup(void) {
  base = testutil_tmpdir("versions");
  atexit(cleanup);
  for (int i = 0; i < N; i++) harness_node_init(&nodes[i], base, "127.0.0.1", i);
  snprintf(seeds, sizeof seeds, "%s", nodes[0].peer_addr);
  for (int i = 0; i < N; i++) {
    harness_member m = {.seeds = seeds, .dc = i < 2 ? "dc1" : "dc2",
                        .rack = i % 2 ? "r2" : "r1", .read_timeout_ms = 2000,
                        .write_timeout_ms = 2000};
    CU_ASSERT_EQUAL_FATAL(harness_member_start(&nodes[i], &m), 0);
  }
  CU_ASSERT_EQUAL_FATAL(harness_wait_all_up(nodes, N, 30), 0);
  static const char *const tables[] = {"s", NULL};
  CU_ASSERT_EQUAL_FATAL(harness_create_keyspace(nodes, N, KS, "NetworkTopologyStrategy:dc1=1,dc2=1",
                                                tables, 10), 0);
  for (int i = 0; i < N; i++) {
    via[i] = harness_connect(&nodes[i], CELLAR_ROUTE_NONE, 8000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(via[i]);
  }
  cellar_table_options_t o;
  cellar_table_options_init(&o);
  o.conflict_policy = "lww";
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_create_table(via[0], KS, "l", &o, 0, &r), 0);
  cellar_result_free(r);
  /* every node knows both tables and their policies */
  for (int i = 0; i < N; i++) {
    int ok = 0;
    for (int t = 0; t < 100 && !ok; t++) {
      r = NULL;
      if (cellar_describe(via[i], KS, &r) == 0)
        for (size_t k = 0; k < cellar_result_table_count(r); k++)
          ok |= !strcmp(cellar_result_table_name(r, k), "l") &&
                !strcmp(cellar_result_table_policy(r, k), "lww");
      cellar_result_free(r);
      if (!ok) usleep(100000);
    }
    CU_ASSERT_FATAL(ok);
  }
}

/* Price from dc1, description from dc2, same context (the row as read
** before either): both columns survive on both replicas, no siblings. */
static void columns_case(const char *table) {
  const char *key = "item1";
  CU_ASSERT_EQUAL(put_col(via[0], table, key, "price", "10", NULL, 0, NULL, 0), 0);
  seen before = get_col(via[0], table, key, "price", NULL, CELLAR_CL_QUORUM);
  CU_ASSERT_EQUAL(before.rc, 0);
  char msg[256];
  CU_ASSERT_EQUAL(put_col(via[1], table, key, "price", "12", &before, 0, msg, sizeof msg), 0);
  CU_ASSERT_EQUAL(put_col(via[3], table, key, "desc", "blue mug", &before, 0, msg, sizeof msg), 0);
  int r1, r2;
  replicas_of(table, key, &r1, &r2);
  CU_ASSERT_FATAL(r1 >= 0 && r2 >= 0);
  int reps[2] = {r1, r2};
  for (int i = 0; i < 2; i++) {
    seen s = settle(reps[i], table, key, "price", "desc", want_other, "blue mug");
    CU_ASSERT_STRING_EQUAL(s.value, "12");
    CU_ASSERT_STRING_EQUAL(s.other, "blue mug");
    CU_ASSERT_EQUAL(s.nsib, 0);
  }
  printf("\n  %s: price from dc1 and desc from dc2 both kept on replicas %d and %d", table,
         r1, r2);
}

static void test_concurrent_columns(void) {
  columns_case("s");
  columns_case("l");
}

/* Siblings: two writes with one context through coordinators of the two
** datacenters (one of them not a replica: forwarded) are both kept; a
** read returns both and one context; a write with it replaces them. */
static void test_concurrent_same_column_siblings(void) {
  const char *key = "item2";
  CU_ASSERT_EQUAL(put_col(via[0], "s", key, "price", "10", NULL, 0, NULL, 0), 0);
  seen before = get_col(via[0], "s", key, "price", NULL, CELLAR_CL_QUORUM);
  CU_ASSERT_EQUAL(before.rc, 0);
  CU_ASSERT(before.nctx > 0);
  int r1, r2;
  replicas_of("s", key, &r1, &r2);
  CU_ASSERT_FATAL(r1 >= 0 && r2 >= 0);
  /* one write through each node of dc1 and dc2 that is NOT the replica
  ** there: both are forwarded */
  int n1 = r1 == 0 ? 1 : 0, n2 = r2 == 2 ? 3 : 2;
  char msg[256];
  CU_ASSERT_EQUAL(put_col(via[n1], "s", key, "price", "11", &before, 0, msg, sizeof msg), 0);
  CU_ASSERT_EQUAL(put_col(via[n2], "s", key, "price", "12", &before, 0, msg, sizeof msg), 0);
  int reps[2] = {r1, r2};
  seen last;
  memset(&last, 0, sizeof last);
  for (int i = 0; i < 2; i++) {
    seen s = settle(reps[i], "s", key, "price", NULL, want_two, NULL);
    CU_ASSERT_EQUAL(s.nsib, 2);
    CU_ASSERT(has_sib(&s, "11") && has_sib(&s, "12") && !has_sib(&s, "10"));
    CU_ASSERT(s.nctx > 0);
    if (i) CU_ASSERT(s.nctx == last.nctx && !memcmp(s.ctx, last.ctx, s.nctx));
    last = s;
  }
  printf("\n  siblings: [%s | %s] on replicas %d and %d, context %zu bytes", last.sib[0],
         last.sib[1], r1, r2, last.nctx);
  /* resolve with the context, through the dc2 node that is not a replica */
  CU_ASSERT_EQUAL(put_col(via[n2], "s", key, "price", "11.5", &last, 0, msg, sizeof msg), 0);
  for (int i = 0; i < 2; i++) {
    seen s = settle(reps[i], "s", key, "price", NULL, want_value, "11.5");
    CU_ASSERT_STRING_EQUAL(s.value, "11.5");
    CU_ASSERT_EQUAL(s.nsib, 0);
  }
}

/* lww: a write with the later timestamp wins whichever arrives last, and
** every replica read alone holds the same. */
static void test_concurrent_same_column_lww(void) {
  const char *key = "item3";
  int r1, r2;
  replicas_of("l", key, &r1, &r2);
  CU_ASSERT_FATAL(r1 >= 0 && r2 >= 0);
  int64_t t0 = 1800000000000000ll;
  /* the later one first, through dc2; the earlier one second, through dc1 */
  CU_ASSERT_EQUAL(put_col(via[2], "l", key, "price", "late", NULL, t0 + 10, NULL, 0), 0);
  CU_ASSERT_EQUAL(put_col(via[0], "l", key, "price", "early", NULL, t0, NULL, 0), 0);
  /* a tie on the timestamp: the same deterministic winner everywhere */
  CU_ASSERT_EQUAL(put_col(via[1], "l", "item4", "price", "aaa", NULL, t0, NULL, 0), 0);
  CU_ASSERT_EQUAL(put_col(via[3], "l", "item4", "price", "bbb", NULL, t0, NULL, 0), 0);
  int reps[2] = {r1, r2};
  for (int i = 0; i < 2; i++) {
    seen s = settle(reps[i], "l", key, "price", NULL, want_value, "late");
    CU_ASSERT_STRING_EQUAL(s.value, "late");
    CU_ASSERT_EQUAL(s.nsib, 0);
    CU_ASSERT_EQUAL(s.nctx, 0);   /* lww tables carry no context */
  }
  int q1, q2;
  replicas_of("l", "item4", &q1, &q2);
  CU_ASSERT_FATAL(q1 >= 0 && q2 >= 0);
  seen a = settle(q1, "l", "item4", "price", NULL, want_value, "bbb");
  seen b = settle(q2, "l", "item4", "price", NULL, want_value, "bbb");
  CU_ASSERT_STRING_EQUAL(a.value, "bbb");   /* the greater value wins a tie */
  CU_ASSERT_STRING_EQUAL(b.value, "bbb");
  printf("\n  lww: 'late' on replicas %d and %d; tie -> '%s' / '%s'\n", r1, r2, a.value,
         b.value);
  for (int i = 0; i < N; i++) cellar_close(via[i]);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(harness_node_signal(&nodes[i], SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"setup", test_setup},
    {"concurrent_columns", test_concurrent_columns},
    {"concurrent_same_column_siblings", test_concurrent_same_column_siblings},
    {"concurrent_same_column_lww", test_concurrent_same_column_lww},
    {NULL, NULL}};
  return testutil_run("versions", cases, argc, argv);
}
