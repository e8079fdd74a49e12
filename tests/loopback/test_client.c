/*
** test_client: libcellar against one real cellard on loopback (started
** here through the harness on 127.0.0.1 with a free port and a temp data
** dir). Covers the round trips, paging, TTL, the async machinery (many in
** flight, callbacks, close with requests pending), the error paths
** (server errors, client-side limits, timeouts against a stopped server,
** a killed server and the reconnect) and use from many threads.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "harness.h"
#include "../unit/testutil.h"

/* From src/client.c, for tests only: uv_loop_close()'s result when the
** last client closed (0 = no handle leaked). */
int client_last_loop_close_rc(void);

static node_proc g_node;
static cellar_client_t *g_c;
static const char *KS = "tc";

/* ------------------------------------------------------------- helpers */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Runs call (which fills R), checks the code, prints the message when it
** is not the expected one, and frees the result. */
#define EXPECT(want, call)                                                    \
  do {                                                                        \
    cellar_result_t *R = NULL;                                                \
    int rc_ = (call);                                                         \
    if (rc_ != (want))                                                        \
      fprintf(stderr, "\n  line %d: got %s (%s), want %s\n", __LINE__,        \
              cellar_err_name(rc_), cellar_result_message(R),                \
              cellar_err_name(want));                                         \
    CU_ASSERT_EQUAL(rc_, (want));                                             \
    CU_ASSERT_PTR_NOT_NULL(R);                                                \
    if (R) CU_ASSERT_EQUAL(cellar_result_code(R), rc_);                       \
    cellar_result_free(R);                                                    \
  } while (0)

static cellar_client_t *connect_with(int connections, int timeout_ms, size_t max_in_flight) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = g_node.addr;
  o.connections = connections;
  o.request_timeout_ms = timeout_ms;
  o.max_in_flight = max_in_flight;
  cellar_client_t *c = NULL;
  int rc = cellar_connect(&o, &c);
  if (rc != 0) fprintf(stderr, "connect %s: %s\n", g_node.addr, cellar_err_name(rc));
  return c;
}

static int put_cell(cellar_client_t *c, const char *table, const void *pk, size_t npk,
                    const void *ck, size_t nck, const char *col, const void *v, size_t nv,
                    uint32_t ttl) {
  cellar_cell_t cell = {col, strlen(col), v, nv};
  cellar_row_t row = {ck, nck, &cell, 1};
  cellar_put_t p = {.keyspace = KS, .table = table, .partition = pk, .partition_len = npk,
                    .rows = &row, .nrows = 1, .ttl = ttl};
  cellar_result_t *res = NULL;
  int rc = cellar_put(c, &p, &res);
  if (rc != 0) fprintf(stderr, "\n  put: %s %s\n", cellar_err_name(rc), cellar_result_message(res));
  cellar_result_free(res);
  return rc;
}

/* Get one row; *out keeps the result (caller frees). */
static int get_row(cellar_client_t *c, const char *table, const void *pk, size_t npk,
                   const void *ck, size_t nck, cellar_result_t **out) {
  cellar_get_t g = {.keyspace = KS, .table = table, .partition = pk, .partition_len = npk,
                    .clustering = ck, .clustering_len = nck};
  return cellar_get(c, &g, out);
}

/* Value of column col in row 0 of res, or NULL. */
static const void *cell_value(const cellar_result_t *res, const char *col, size_t *len) {
  if (cellar_result_row_count(res) == 0) return NULL;
  for (size_t i = 0; i < cellar_result_cell_count(res, 0); i++) {
    size_t nl;
    const void *name = cellar_result_cell_name(res, 0, i, &nl);
    if (nl == strlen(col) && memcmp(name, col, nl) == 0)
      return cellar_result_cell_value(res, 0, i, len);
  }
  return NULL;
}

/* A counter of async completions that a test thread can wait on. */
typedef struct waiter {
  pthread_mutex_t m;
  pthread_cond_t cv;
  int done;
  int status_count[32];        /* by -status */
  int *per_request;            /* callbacks seen per request index */
} waiter;

typedef struct slot {
  waiter *w;
  int index;
} slot;

static void waiter_init(waiter *w, int n) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->m, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->per_request = calloc((size_t)n + 1, sizeof(int));
}

static void waiter_free(waiter *w) {
  free(w->per_request);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->m);
}

static void on_done(int status, cellar_result_t *res, void *arg) {
  slot *s = arg;
  waiter *w = s->w;
  pthread_mutex_lock(&w->m);
  if (cellar_result_code(res) != status) w->status_count[31]++;   /* must agree */
  int k = -status;
  w->status_count[k >= 0 && k < 31 ? k : 30]++;
  w->per_request[s->index]++;
  w->done++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->m);
}

/* Waits until n callbacks ran or timeout; returns how many did. */
static int waiter_wait(waiter *w, int n, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&w->m);
  while (w->done < n)
    if (pthread_cond_timedwait(&w->cv, &w->m, &dl) != 0) break;
  int d = w->done;
  pthread_mutex_unlock(&w->m);
  return d;
}

/* --------------------------------------------------------------- tests */

static void test_connect_ping(void) {
  EXPECT(0, cellar_ping(g_c, &R));
  CU_ASSERT_STRING_EQUAL(cellar_client_peer(g_c), g_node.addr);

  /* A dead port: no client, CELLAR_ECONNECT. */
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = "127.0.0.1:1";
  o.connect_timeout_ms = 1000;
  cellar_client_t *c = (cellar_client_t *)&o;
  CU_ASSERT_EQUAL(cellar_connect(&o, &c), CELLAR_ECONNECT);
  CU_ASSERT_PTR_NULL(c);

  /* Bad host lists are refused before any I/O. */
  o.hosts = "127.0.0.1:notaport";
  CU_ASSERT_EQUAL(cellar_connect(&o, &c), CELLAR_EINVAL);
  o.hosts = " , ";
  CU_ASSERT_EQUAL(cellar_connect(&o, &c), CELLAR_EINVAL);

  /* The first reachable host of the list is the one used. */
  char hosts[200];
  snprintf(hosts, sizeof hosts, "127.0.0.1:1, %s", g_node.addr);
  o.hosts = hosts;
  CU_ASSERT_EQUAL_FATAL(cellar_connect(&o, &c), 0);
  CU_ASSERT_STRING_EQUAL(cellar_client_peer(c), g_node.addr);
  EXPECT(0, cellar_ping(c, &R));
  cellar_close(c);
  CU_ASSERT_EQUAL(client_last_loop_close_rc(), 0);
}

static void test_schema(void) {
  EXPECT(0, cellar_create_keyspace(g_c, "sch", "SimpleStrategy:1", 0, &R));
  EXPECT(CELLAR_EEXISTS, cellar_create_keyspace(g_c, "sch", "SimpleStrategy:1", 0, &R));
  EXPECT(0, cellar_create_keyspace(g_c, "sch", "SimpleStrategy:1", 1, &R));
  EXPECT(0, cellar_create_keyspace(g_c, "sch_nts", "NetworkTopologyStrategy:dc2=2,dc1=3", 0, &R));

  /* Bad specs and names fail in the client (no round trip). */
  const char *bad[] = {"", "Simple:1", "SimpleStrategy", "SimpleStrategy:0",
                       "SimpleStrategy:x", "NetworkTopologyStrategy:", "NetworkTopologyStrategy:dc1",
                       "NetworkTopologyStrategy:dc1=3,dc1=2", "NetworkTopologyStrategy:dc1=0",
                       "SimpleStrategy:3,", NULL};
  for (int i = 1; bad[i]; i++) EXPECT(CELLAR_EINVAL, cellar_create_keyspace(g_c, "x", bad[i], 0, &R));
  EXPECT(CELLAR_EBADNAME, cellar_create_keyspace(g_c, "1abc", "SimpleStrategy:1", 0, &R));
  EXPECT(CELLAR_EBADNAME, cellar_create_keyspace(g_c, "a-b", "SimpleStrategy:1", 0, &R));
  EXPECT(CELLAR_ETOOBIG, cellar_create_keyspace(
                             g_c, "a123456789012345678901234567890123456789012345678",
                             "SimpleStrategy:1", 0, &R));

  cellar_table_options_t t;
  cellar_table_options_init(&t);
  t.conflict_policy = "lww";
  t.gc_grace_seconds = 3600;
  t.default_ttl = 60;
  EXPECT(0, cellar_create_table(g_c, "sch", "t1", &t, 0, &R));
  EXPECT(0, cellar_create_table(g_c, "sch", "t2", NULL, 0, &R));
  EXPECT(CELLAR_EEXISTS, cellar_create_table(g_c, "sch", "t2", NULL, 0, &R));
  EXPECT(0, cellar_create_table(g_c, "sch", "t2", NULL, 1, &R));
  EXPECT(CELLAR_ENOKEYSPACE, cellar_create_table(g_c, "nosuch", "t", NULL, 0, &R));
  t.conflict_policy = "bogus";
  EXPECT(CELLAR_EINVAL, cellar_create_table(g_c, "sch", "t3", &t, 0, &R));

  cellar_result_t *res = NULL;
  CU_ASSERT_EQUAL_FATAL(cellar_describe(g_c, "sch", &res), 0);
  CU_ASSERT_EQUAL(cellar_result_keyspace_count(res), 1);
  CU_ASSERT_STRING_EQUAL(cellar_result_keyspace_name(res, 0), "sch");
  CU_ASSERT_STRING_EQUAL(cellar_result_keyspace_replication(res, 0), "SimpleStrategy:1");
  CU_ASSERT_EQUAL(cellar_result_table_count(res), 2);
  int seen = 0;
  for (size_t i = 0; i < cellar_result_table_count(res); i++) {
    CU_ASSERT_STRING_EQUAL(cellar_result_table_keyspace(res, i), "sch");
    if (strcmp(cellar_result_table_name(res, i), "t1") == 0) {
      seen |= 1;
      CU_ASSERT_STRING_EQUAL(cellar_result_table_policy(res, i), "lww");
      CU_ASSERT_EQUAL(cellar_result_table_gc_grace(res, i), 3600);
      CU_ASSERT_EQUAL(cellar_result_table_default_ttl(res, i), 60);
    } else if (strcmp(cellar_result_table_name(res, i), "t2") == 0) {
      seen |= 2;
      CU_ASSERT_STRING_EQUAL(cellar_result_table_policy(res, i), "siblings");
      CU_ASSERT_EQUAL(cellar_result_table_gc_grace(res, i), 864000);
      CU_ASSERT_EQUAL(cellar_result_table_default_ttl(res, i), 0);
    }
  }
  CU_ASSERT_EQUAL(seen, 3);
  /* out of range */
  CU_ASSERT_PTR_NULL(cellar_result_keyspace_name(res, 1));
  CU_ASSERT_PTR_NULL(cellar_result_keyspace_replication(res, 1));
  CU_ASSERT_PTR_NULL(cellar_result_table_name(res, 2));
  cellar_result_free(res);

  /* Every keyspace; the NTS one comes back in the same string form. */
  CU_ASSERT_EQUAL_FATAL(cellar_describe(g_c, NULL, &res), 0);
  int found = 0;
  for (size_t i = 0; i < cellar_result_keyspace_count(res); i++) {
    if (strcmp(cellar_result_keyspace_name(res, i), "sch_nts") != 0) continue;
    found = 1;
    CU_ASSERT_STRING_EQUAL(cellar_result_keyspace_replication(res, i),
                           "NetworkTopologyStrategy:dc1=3,dc2=2");
    /* cached: the same pointer the second time */
    CU_ASSERT_PTR_EQUAL(cellar_result_keyspace_replication(res, i),
                        cellar_result_keyspace_replication(res, i));
  }
  CU_ASSERT(found);
  cellar_result_free(res);
  EXPECT(CELLAR_ENOKEYSPACE, cellar_describe(g_c, "nosuch", &R));

  EXPECT(0, cellar_drop_table(g_c, "sch", "t1", 0, &R));
  EXPECT(CELLAR_ENOTABLE, cellar_drop_table(g_c, "sch", "t1", 0, &R));
  EXPECT(0, cellar_drop_table(g_c, "sch", "t1", 1, &R));
  EXPECT(0, cellar_drop_keyspace(g_c, "sch", 0, &R));
  EXPECT(0, cellar_drop_keyspace(g_c, "sch_nts", 0, &R));
  EXPECT(CELLAR_ENOKEYSPACE, cellar_drop_keyspace(g_c, "sch", 0, &R));
  EXPECT(0, cellar_drop_keyspace(g_c, "sch", 1, &R));
}

static void test_binary_roundtrip(void) {
  const uint8_t pk[] = {0x00, 0xff, 0x00, 0x01};
  const uint8_t ck[] = {0x00};
  uint8_t value[512];
  for (int i = 0; i < 512; i++) value[i] = (uint8_t)i;   /* every byte, twice */
  const char col[] = "c\0ol";                           /* a 0x00 in a column name */
  cellar_cell_t cells[2] = {{col, 4, value, sizeof value}, {"empty", 5, NULL, 0}};
  cellar_row_t row = {ck, sizeof ck, cells, 2};
  cellar_put_t p = {.keyspace = KS, .table = "t", .partition = pk, .partition_len = sizeof pk,
                    .rows = &row, .nrows = 1};
  EXPECT(0, cellar_put(g_c, &p, &R));

  cellar_result_t *res = NULL;
  CU_ASSERT_EQUAL_FATAL(get_row(g_c, "t", pk, sizeof pk, ck, sizeof ck, &res), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_row_count(res), 1);
  size_t n;
  const void *got = cellar_result_clustering(res, 0, &n);
  CU_ASSERT(n == 1 && memcmp(got, ck, 1) == 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_cell_count(res, 0), 2);
  int seen = 0;
  for (size_t i = 0; i < 2; i++) {
    size_t nl, nv;
    const void *name = cellar_result_cell_name(res, 0, i, &nl);
    const void *v = cellar_result_cell_value(res, 0, i, &nv);
    CU_ASSERT_PTR_NOT_NULL(v);
    CU_ASSERT(cellar_result_cell_timestamp(res, 0, i) > 0);
    CU_ASSERT_EQUAL(cellar_result_cell_expires(res, 0, i), 0);
    if (nl == 4 && memcmp(name, col, 4) == 0) {
      seen |= 1;
      CU_ASSERT(nv == sizeof value && memcmp(v, value, nv) == 0);
    } else if (nl == 5 && memcmp(name, "empty", 5) == 0) {
      seen |= 2;
      CU_ASSERT_EQUAL(nv, 0);
    }
  }
  CU_ASSERT_EQUAL(seen, 3);
  /* out-of-range indexes */
  CU_ASSERT_PTR_NULL(cellar_result_clustering(res, 1, &n));
  CU_ASSERT_PTR_NULL(cellar_result_cell_name(res, 0, 2, &n));
  CU_ASSERT_PTR_NULL(cellar_result_cell_value(res, 5, 0, &n));
  CU_ASSERT_EQUAL(cellar_result_cell_count(res, 9), 0);
  CU_ASSERT_PTR_NULL(cellar_result_cursor(res, &n));
  cellar_result_free(res);

  /* Only one column asked for. */
  cellar_cell_t only = {col, 4, NULL, 0};
  cellar_get_t g = {.keyspace = KS, .table = "t", .partition = pk, .partition_len = sizeof pk,
                    .clustering = ck, .clustering_len = sizeof ck, .columns = &only,
                    .ncolumns = 1};
  CU_ASSERT_EQUAL_FATAL(cellar_get(g_c, &g, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 1);
  CU_ASSERT_EQUAL(cellar_result_cell_count(res, 0), 1);
  cellar_result_free(res);

  /* A missing row: success, no rows. */
  CU_ASSERT_EQUAL(get_row(g_c, "t", "absent", 6, NULL, 0, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 0);
  cellar_result_free(res);
}

static void test_multirow_put_slice(void) {
  const char *pk = "multi";
  char cks[5][8];
  char vals[5][8];
  cellar_cell_t cells[5][2];
  cellar_row_t rows[5];
  for (int i = 0; i < 5; i++) {
    snprintf(cks[4 - i], sizeof cks[0], "r%d", 4 - i);   /* given out of order */
    snprintf(vals[i], sizeof vals[0], "v%d", i);
  }
  for (int i = 0; i < 5; i++) {
    cells[i][0] = (cellar_cell_t){"a", 1, vals[i], strlen(vals[i])};
    cells[i][1] = (cellar_cell_t){"b", 1, "x", 1};
    rows[i] = (cellar_row_t){cks[4 - i], strlen(cks[4 - i]), cells[i], 2};
  }
  cellar_put_t p = {.keyspace = KS, .table = "t", .partition = pk, .partition_len = strlen(pk),
                    .rows = rows, .nrows = 5};
  EXPECT(0, cellar_put(g_c, &p, &R));

  cellar_result_t *res = NULL;
  cellar_slice_t s = {.keyspace = KS, .table = "t", .partition = pk, .partition_len = strlen(pk)};
  CU_ASSERT_EQUAL_FATAL(cellar_slice(g_c, &s, &res), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_row_count(res), 5);
  for (size_t i = 0; i < 5; i++) {
    size_t n;
    const char *ck = cellar_result_clustering(res, i, &n);
    char want[8];
    snprintf(want, sizeof want, "r%zu", i);
    CU_ASSERT(n == strlen(want) && memcmp(ck, want, n) == 0);
    CU_ASSERT_EQUAL(cellar_result_cell_count(res, i), 2);
  }
  CU_ASSERT_PTR_NULL(cellar_result_cursor(res, NULL));
  cellar_result_free(res);

  /* Inclusive bounds and a column list. */
  cellar_cell_t col = {"a", 1, NULL, 0};
  s.start = "r1";
  s.start_len = 2;
  s.end = "r3";
  s.end_len = 2;
  s.columns = &col;
  s.ncolumns = 1;
  CU_ASSERT_EQUAL_FATAL(cellar_slice(g_c, &s, &res), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_row_count(res), 3);
  size_t n;
  CU_ASSERT(memcmp(cellar_result_clustering(res, 0, &n), "r1", 2) == 0);
  CU_ASSERT(memcmp(cellar_result_clustering(res, 2, &n), "r3", 2) == 0);
  CU_ASSERT_EQUAL(cellar_result_cell_count(res, 1), 1);
  cellar_result_free(res);

  /* Nothing to write. */
  p.nrows = 0;
  EXPECT(CELLAR_EEMPTY, cellar_put(g_c, &p, &R));
}

static void test_paging(void) {
  enum { N = 2500, BATCH = 250 };
  const char *pk = "paged";
  static uint8_t cks[N][4];
  static cellar_cell_t cells[N];
  static uint32_t vals[N];
  static cellar_row_t rows[N];
  for (int i = 0; i < N; i++) {
    cks[i][0] = (uint8_t)(i >> 24);
    cks[i][1] = (uint8_t)(i >> 16);
    cks[i][2] = (uint8_t)(i >> 8);
    cks[i][3] = (uint8_t)i;
    vals[i] = (uint32_t)i;
    cells[i] = (cellar_cell_t){"n", 1, &vals[i], sizeof vals[i]};
    rows[i] = (cellar_row_t){cks[i], 4, &cells[i], 1};
  }
  for (int b = 0; b < N / BATCH; b++) {
    cellar_put_t p = {.keyspace = KS, .table = "t", .partition = pk,
                      .partition_len = strlen(pk), .rows = rows + b * BATCH, .nrows = BATCH};
    EXPECT(0, cellar_put(g_c, &p, &R));
  }

  static int seen[N];
  memset(seen, 0, sizeof seen);
  int next = 0, pages = 0, disorder = 0;
  uint8_t *cursor = NULL;
  size_t ncursor = 0;
  for (;;) {
    cellar_slice_t s = {.keyspace = KS, .table = "t", .partition = pk,
                        .partition_len = strlen(pk), .limit = 1000, .cursor = cursor,
                        .cursor_len = ncursor};
    cellar_result_t *res = NULL;
    int rc = cellar_slice(g_c, &s, &res);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    pages++;
    size_t nrows = cellar_result_row_count(res);
    CU_ASSERT(nrows <= 1000);
    for (size_t i = 0; i < nrows; i++) {
      size_t n;
      const uint8_t *ck = cellar_result_clustering(res, i, &n);
      int k = n == 4 ? (ck[0] << 24 | ck[1] << 16 | ck[2] << 8 | ck[3]) : -1;
      if (k != next) disorder++;
      if (k >= 0 && k < N) seen[k]++;
      next = k + 1;
    }
    free(cursor);
    cursor = NULL;
    const void *c = cellar_result_cursor(res, &ncursor);
    if (c) {
      cursor = malloc(ncursor);
      memcpy(cursor, c, ncursor);
    }
    cellar_result_free(res);
    if (cursor == NULL || pages > 10) break;
  }
  free(cursor);
  CU_ASSERT_EQUAL(disorder, 0);
  CU_ASSERT_EQUAL(next, N);
  CU_ASSERT(pages == 3 || pages == 4);   /* 1000+1000+500 (+ an empty tail) */
  int once = 0;
  for (int i = 0; i < N; i++) once += seen[i] == 1;
  CU_ASSERT_EQUAL(once, N);
}

static void test_deletes(void) {
  const char *pk = "del";
  CU_ASSERT_EQUAL(put_cell(g_c, "t", pk, 3, "r1", 2, "a", "1", 1, 0), 0);
  CU_ASSERT_EQUAL(put_cell(g_c, "t", pk, 3, "r1", 2, "b", "2", 1, 0), 0);
  CU_ASSERT_EQUAL(put_cell(g_c, "t", pk, 3, "r2", 2, "a", "3", 1, 0), 0);
  CU_ASSERT_EQUAL(put_cell(g_c, "t", pk, 3, "r3", 2, "a", "4", 1, 0), 0);

  /* cells */
  cellar_cell_t col = {"a", 1, NULL, 0};
  cellar_delete_t d = {.keyspace = KS, .table = "t", .partition = pk, .partition_len = 3,
                       .scope = CELLAR_DELETE_CELLS, .clustering = "r1", .clustering_len = 2,
                       .columns = &col, .ncolumns = 1};
  EXPECT(0, cellar_delete(g_c, &d, &R));
  cellar_result_t *res = NULL;
  CU_ASSERT_EQUAL(get_row(g_c, "t", pk, 3, "r1", 2, &res), 0);
  size_t n;
  CU_ASSERT_PTR_NULL(cell_value(res, "a", &n));
  CU_ASSERT_PTR_NOT_NULL(cell_value(res, "b", &n));
  cellar_result_free(res);

  /* row */
  d.scope = CELLAR_DELETE_ROW;
  d.clustering = "r2";
  EXPECT(0, cellar_delete(g_c, &d, &R));
  CU_ASSERT_EQUAL(get_row(g_c, "t", pk, 3, "r2", 2, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 0);
  cellar_result_free(res);
  cellar_slice_t s = {.keyspace = KS, .table = "t", .partition = pk, .partition_len = 3};
  CU_ASSERT_EQUAL(cellar_slice(g_c, &s, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 2);     /* r1 (b), r3 */
  cellar_result_free(res);

  /* partition */
  d.scope = CELLAR_DELETE_PARTITION;
  EXPECT(0, cellar_delete(g_c, &d, &R));
  CU_ASSERT_EQUAL(cellar_slice(g_c, &s, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 0);
  cellar_result_free(res);

  /* Shape errors stay in the client. */
  d.scope = CELLAR_DELETE_CELLS;
  d.ncolumns = 0;
  EXPECT(CELLAR_EINVAL, cellar_delete(g_c, &d, &R));
  d.scope = (cellar_delete_scope_t)7;
  EXPECT(CELLAR_EINVAL, cellar_delete(g_c, &d, &R));
}

static void test_ttl(void) {
  CU_ASSERT_EQUAL(put_cell(g_c, "t", "ttl", 3, "", 0, "a", "short", 5, 1), 0);
  CU_ASSERT_EQUAL(put_cell(g_c, "t", "ttl", 3, "", 0, "b", "long", 4, 0), 0);
  cellar_result_t *res = NULL;
  CU_ASSERT_EQUAL(get_row(g_c, "t", "ttl", 3, "", 0, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_cell_count(res, 0), 2);
  for (size_t i = 0; i < cellar_result_cell_count(res, 0); i++) {
    size_t nl;
    const char *name = cellar_result_cell_name(res, 0, i, &nl);
    if (name[0] == 'a') CU_ASSERT(cellar_result_cell_expires(res, 0, i) != 0);
    if (name[0] == 'b') CU_ASSERT(cellar_result_cell_expires(res, 0, i) == 0);
  }
  cellar_result_free(res);
  sleep_ms(2100);
  CU_ASSERT_EQUAL(get_row(g_c, "t", "ttl", 3, "", 0, &res), 0);
  size_t n;
  CU_ASSERT_PTR_NULL(cell_value(res, "a", &n));
  CU_ASSERT_PTR_NOT_NULL(cell_value(res, "b", &n));
  cellar_result_free(res);
}

static void test_async_many(void) {
  enum { N = 1000 };
  cellar_client_t *c = connect_with(4, 10000, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  waiter w;
  waiter_init(&w, 2 * N);
  static slot slots[2 * N];
  static char keys[N][16];
  int refused = 0;
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "as%d", i);
    slots[i] = (slot){&w, i};
    cellar_cell_t cell = {"v", 1, keys[i], strlen(keys[i])};
    cellar_row_t row = {NULL, 0, &cell, 1};
    cellar_put_t p = {.keyspace = KS, .table = "t", .partition = keys[i],
                      .partition_len = strlen(keys[i]), .rows = &row, .nrows = 1};
    /* The request is copied: the stack data above may go at once. */
    if (cellar_put_async(c, &p, on_done, &slots[i]) != 0) refused++;
  }
  CU_ASSERT_EQUAL(refused, 0);
  CU_ASSERT_EQUAL(waiter_wait(&w, N, 30000), N);
  CU_ASSERT_EQUAL(w.status_count[0], N);
  /* then the reads, also all in flight at once */
  for (int i = 0; i < N; i++) {
    slots[N + i] = (slot){&w, N + i};
    cellar_get_t g = {.keyspace = KS, .table = "t", .partition = keys[i],
                      .partition_len = strlen(keys[i])};
    if (cellar_get_async(c, &g, on_done, &slots[N + i]) != 0) refused++;
  }
  CU_ASSERT_EQUAL(refused, 0);
  CU_ASSERT_EQUAL(waiter_wait(&w, 2 * N, 30000), 2 * N);
  sleep_ms(50);   /* a duplicate callback would show up now */
  int once = 0;
  for (int i = 0; i < 2 * N; i++) once += w.per_request[i] == 1;
  CU_ASSERT_EQUAL(once, 2 * N);
  CU_ASSERT_EQUAL(w.status_count[0], 2 * N);
  CU_ASSERT_EQUAL(w.status_count[31], 0);
  cellar_close(c);
  CU_ASSERT_EQUAL(client_last_loop_close_rc(), 0);
  waiter_free(&w);

  /* The async twins refuse bad arguments without calling back. */
  CU_ASSERT_EQUAL(cellar_ping_async(g_c, NULL, NULL), CELLAR_EINVAL);
}

static void test_errors(void) {
  EXPECT(CELLAR_ENOKEYSPACE, cellar_get(g_c, &((cellar_get_t){.keyspace = "nosuchks",
                                                              .table = "t",
                                                              .partition = "k",
                                                              .partition_len = 1}),
                                        &R));
  cellar_result_t *res = NULL;
  cellar_get_t g = {.keyspace = KS, .table = "nosuchtable", .partition = "k", .partition_len = 1};
  CU_ASSERT_EQUAL(cellar_get(g_c, &g, &res), CELLAR_ENOTABLE);
  CU_ASSERT_EQUAL(cellar_result_code(res), CELLAR_ENOTABLE);
  CU_ASSERT(strstr(cellar_result_message(res), "nosuchtable") != NULL);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 0);
  cellar_result_free(res);
  /* out NULL is allowed */
  CU_ASSERT_EQUAL(cellar_get(g_c, &g, NULL), CELLAR_ENOTABLE);

  /* Limits, checked by the client. */
  size_t big = CELLAR_MAX_VALUE_BYTES + 1;
  char *v = calloc(1, big);
  cellar_cell_t cell = {"v", 1, v, big};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = KS, .table = "t", .partition = "k", .partition_len = 1,
                    .rows = &row, .nrows = 1};
  CU_ASSERT_EQUAL(cellar_put(g_c, &p, &res), CELLAR_ETOOBIG);
  CU_ASSERT(strlen(cellar_result_message(res)) > 0);
  cellar_result_free(res);
  waiter w;
  waiter_init(&w, 1);
  slot s = {&w, 0};
  CU_ASSERT_EQUAL(cellar_put_async(g_c, &p, on_done, &s), CELLAR_ETOOBIG);
  cell.value_len = CELLAR_MAX_VALUE_BYTES;            /* the limit itself is fine */
  EXPECT(0, cellar_put(g_c, &p, &R));
  p.partition = v;
  p.partition_len = CELLAR_MAX_KEY_BYTES + 1;
  EXPECT(CELLAR_ETOOBIG, cellar_put(g_c, &p, &R));
  p.partition_len = 1;
  cell.name_len = CELLAR_MAX_COLUMN_BYTES + 1;
  cell.name = v;
  EXPECT(CELLAR_ETOOBIG, cellar_put(g_c, &p, &R));
  /* a frame over 16 MiB made of legal cells */
  enum { NC = 17 };
  cellar_cell_t many[NC];
  char names[NC][4];
  for (int i = 0; i < NC; i++) {
    snprintf(names[i], sizeof names[i], "c%d", i);
    many[i] = (cellar_cell_t){names[i], strlen(names[i]), v, CELLAR_MAX_VALUE_BYTES};
  }
  row = (cellar_row_t){NULL, 0, many, NC};
  EXPECT(CELLAR_ETOOBIG, cellar_put(g_c, &p, &R));
  free(v);
  sleep_ms(50);
  CU_ASSERT_EQUAL(w.done, 0);                         /* callback rule */
  waiter_free(&w);

  /* consistency level out of range */
  g.table = "t";
  g.consistency = (cellar_consistency_t)42;
  EXPECT(CELLAR_EBADCL, cellar_get(g_c, &g, &R));
  g.consistency = CELLAR_CL_ALL;
  EXPECT(0, cellar_get(g_c, &g, &R));
  /* unknown admin command: a server error with the server's message */
  CU_ASSERT_EQUAL(cellar_admin(g_c, "bogus", NULL, &res), CELLAR_EINVAL);
  CU_ASSERT(strstr(cellar_result_message(res), "bogus") != NULL);
  cellar_result_free(res);
  CU_ASSERT_EQUAL(cellar_admin(g_c, "info", NULL, &res), 0);
  CU_ASSERT(cellar_result_info_count(res) > 0);
  CU_ASSERT_PTR_NOT_NULL(cellar_result_info_key(res, 0));
  CU_ASSERT_PTR_NOT_NULL(cellar_result_info_value(res, 0));
  CU_ASSERT_PTR_NULL(cellar_result_info_key(res, cellar_result_info_count(res)));
  cellar_result_free(res);
}

static void test_timeout(void) {
  cellar_client_t *c = connect_with(1, 500, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  EXPECT(0, cellar_ping(c, &R));
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&g_node, SIGSTOP), 0);

  double t0 = now_s();
  EXPECT(CELLAR_ETIMEDOUT, cellar_ping(c, &R));
  double dt = now_s() - t0;
  CU_ASSERT(dt >= 0.45 && dt < 2.0);

  /* While the server cannot answer anything, a request over a limit fails
  ** at once: the check is the client's, no round trip. */
  char *v = calloc(1, CELLAR_MAX_VALUE_BYTES + 1);
  cellar_cell_t cell = {"v", 1, v, CELLAR_MAX_VALUE_BYTES + 1};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = KS, .table = "t", .partition = "k", .partition_len = 1,
                    .rows = &row, .nrows = 1};
  t0 = now_s();
  EXPECT(CELLAR_ETOOBIG, cellar_put(c, &p, &R));
  CU_ASSERT(now_s() - t0 < 0.1);
  free(v);

  CU_ASSERT_EQUAL(harness_node_signal(&g_node, SIGCONT), 0);
  /* The late answer of the timed-out ping is dropped; the next works. */
  EXPECT(0, cellar_ping(c, &R));
  EXPECT(0, cellar_ping(c, &R));
  cellar_close(c);
}

static void test_overload(void) {
  cellar_client_t *c = connect_with(1, 10000, 10);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&g_node, SIGSTOP), 0);
  waiter w;
  waiter_init(&w, 11);
  slot s[11];
  for (int i = 0; i < 10; i++) {
    s[i] = (slot){&w, i};
    CU_ASSERT_EQUAL(cellar_ping_async(c, on_done, &s[i]), 0);
  }
  s[10] = (slot){&w, 10};
  CU_ASSERT_EQUAL(cellar_ping_async(c, on_done, &s[10]), CELLAR_EOVERLOAD);
  EXPECT(CELLAR_EOVERLOAD, cellar_ping(c, &R));
  CU_ASSERT_EQUAL(harness_node_signal(&g_node, SIGCONT), 0);
  CU_ASSERT_EQUAL(waiter_wait(&w, 10, 10000), 10);
  CU_ASSERT_EQUAL(w.status_count[0], 10);
  CU_ASSERT_EQUAL(w.per_request[10], 0);
  EXPECT(0, cellar_ping(c, &R));            /* room again */
  cellar_close(c);
  waiter_free(&w);
}

static void test_server_killed(void) {
  enum { N = 20 };
  cellar_client_t *c = connect_with(2, 0, 0);        /* no timeout: only the loss */
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  EXPECT(0, cellar_ping(c, &R));
  EXPECT(0, cellar_ping(c, &R));                     /* both connections up */
  CU_ASSERT_EQUAL(put_cell(c, "t", "survivor", 8, "", 0, "v", "yes", 3, 0), 0);

  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&g_node, SIGSTOP), 0);
  waiter w;
  waiter_init(&w, N);
  slot s[N];
  for (int i = 0; i < N; i++) {
    s[i] = (slot){&w, i};
    CU_ASSERT_EQUAL(cellar_ping_async(c, on_done, &s[i]), 0);
  }
  sleep_ms(200);
  CU_ASSERT_EQUAL(w.done, 0);
  harness_node_signal(&g_node, SIGKILL);
  CU_ASSERT_EQUAL(waiter_wait(&w, N, 10000), N);
  CU_ASSERT_EQUAL(w.status_count[-CELLAR_ECLOSED], N);
  int once = 0;
  for (int i = 0; i < N; i++) once += w.per_request[i] == 1;
  CU_ASSERT_EQUAL(once, N);
  waiter_free(&w);

  /* Down: the lazy reconnect is refused. */
  EXPECT(CELLAR_ECONNECT, cellar_ping(c, &R));

  /* Back on the same port and data: the same client works again. */
  CU_ASSERT_EQUAL_FATAL(harness_node_start(&g_node, NULL, 20000), 0);
  for (int i = 0; i < 4; i++) EXPECT(0, cellar_ping(c, &R));
  cellar_result_t *res = NULL;
  CU_ASSERT_EQUAL(get_row(c, "t", "survivor", 8, "", 0, &res), 0);
  size_t n;
  const void *v = cell_value(res, "v", &n);
  CU_ASSERT(v && n == 3 && memcmp(v, "yes", 3) == 0);
  cellar_result_free(res);
  cellar_close(c);
  CU_ASSERT_EQUAL(client_last_loop_close_rc(), 0);
  /* the shared client reconnects too */
  EXPECT(0, cellar_ping(g_c, &R));
}

/* Data requests are retried after a connection failure (with one node,
** on the same node): still exactly one callback each, ECLOSED or ECONNECT
** once the node is gone; the client's counters show the retries. */
static void test_retry_single_node(void) {
  enum { N = 20 };
  cellar_client_t *c = connect_with(2, 0, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(put_cell(c, "t", "r", 1, "", 0, "v", "1", 1, 0), 0);
  cellar_client_stats_t s0, s1;
  cellar_node_stats_t ns[4];
  size_t nn = 0;
  CU_ASSERT_EQUAL(cellar_client_stats(c, &s0, ns, 4, &nn), 0);
  CU_ASSERT_EQUAL(nn, 1);
  CU_ASSERT_EQUAL(ns[0].contact, 1);
  CU_ASSERT_STRING_EQUAL(ns[0].address, g_node.addr);
  CU_ASSERT(ns[0].requests >= 1);

  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&g_node, SIGSTOP), 0);
  waiter w;
  waiter_init(&w, N);
  slot s[N];
  cellar_cell_t cell = {"v", 1, "x", 1};
  cellar_row_t row = {NULL, 0, &cell, 1};
  for (int i = 0; i < N; i++) {
    s[i] = (slot){&w, i};
    cellar_put_t p = {.keyspace = KS, .table = "t", .partition = "r", .partition_len = 1,
                      .rows = &row, .nrows = 1};
    cellar_get_t g = {.keyspace = KS, .table = "t", .partition = "r", .partition_len = 1};
    CU_ASSERT_EQUAL(i % 2 ? cellar_put_async(c, &p, on_done, &s[i])
                          : cellar_get_async(c, &g, on_done, &s[i]), 0);
  }
  sleep_ms(200);
  CU_ASSERT_EQUAL(w.done, 0);
  harness_node_signal(&g_node, SIGKILL);
  CU_ASSERT_EQUAL(waiter_wait(&w, N, 10000), N);
  sleep_ms(300);                                     /* no second callback */
  CU_ASSERT_EQUAL(w.done, N);
  CU_ASSERT_EQUAL(w.status_count[-CELLAR_ECLOSED] + w.status_count[-CELLAR_ECONNECT], N);
  CU_ASSERT_EQUAL(w.status_count[31], 0);
  int once = 0;
  for (int i = 0; i < N; i++) once += w.per_request[i] == 1;
  CU_ASSERT_EQUAL(once, N);
  CU_ASSERT_EQUAL(cellar_client_stats(c, &s1, ns, 4, &nn), 0);
  CU_ASSERT_EQUAL(s1.retries - s0.retries, N);
  CU_ASSERT(ns[0].failures >= N);
  CU_ASSERT_EQUAL(ns[0].up, 0);
  waiter_free(&w);

  CU_ASSERT_EQUAL_FATAL(harness_node_start(&g_node, NULL, 20000), 0);
  cellar_result_t *res = NULL;
  CU_ASSERT_EQUAL(get_row(c, "t", "r", 1, "", 0, &res), 0);
  cellar_result_free(res);
  /* the reconnect probe marks the node usable again */
  for (int t = 0; t < 100; t++) {
    cellar_client_stats(c, NULL, ns, 4, &nn);
    if (ns[0].up) break;
    sleep_ms(50);
  }
  CU_ASSERT_EQUAL(ns[0].up, 1);
  cellar_close(c);
  CU_ASSERT_EQUAL(client_last_loop_close_rc(), 0);
  EXPECT(0, cellar_ping(g_c, &R));
}

typedef struct thread_arg {
  cellar_client_t *c;
  int id;
  atomic_int *failures;
} thread_arg;

static void *thread_main(void *p) {
  thread_arg *a = p;
  char pk[32], val[32];
  snprintf(pk, sizeof pk, "thread%d", a->id);
  for (int i = 0; i < 250; i++) {
    char ck[16];
    snprintf(ck, sizeof ck, "%05d", i);
    snprintf(val, sizeof val, "%d/%d", a->id, i);
    if (put_cell(a->c, "t", pk, strlen(pk), ck, strlen(ck), "v", val, strlen(val), 0) != 0) {
      atomic_fetch_add(a->failures, 1);
      continue;
    }
    cellar_result_t *res = NULL;
    if (get_row(a->c, "t", pk, strlen(pk), ck, strlen(ck), &res) != 0) {
      atomic_fetch_add(a->failures, 1);
    } else {
      size_t n;
      const void *v = cell_value(res, "v", &n);
      if (v == NULL || n != strlen(val) || memcmp(v, val, n) != 0) atomic_fetch_add(a->failures, 1);
    }
    cellar_result_free(res);
  }
  return NULL;
}

static void test_threads(void) {
  enum { T = 8 };
  cellar_client_t *c = connect_with(3, 10000, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  atomic_int failures = 0;
  pthread_t th[T];
  thread_arg args[T];
  for (int i = 0; i < T; i++) {
    args[i] = (thread_arg){c, i, &failures};
    pthread_create(&th[i], NULL, thread_main, &args[i]);
  }
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&failures), 0);
  cellar_result_t *res = NULL;
  cellar_slice_t s = {.keyspace = KS, .table = "t", .partition = "thread3", .partition_len = 7};
  CU_ASSERT_EQUAL(cellar_slice(c, &s, &res), 0);
  CU_ASSERT_EQUAL(cellar_result_row_count(res), 250);
  cellar_result_free(res);
  cellar_close(c);
}

/* From a callback: a sync call is refused, async calls go through. */
typedef struct cb_state {
  cellar_client_t *c;
  pthread_mutex_t m;
  pthread_cond_t cv;
  int sync_rc, sync_res_code;
  int chain, chained_ok, finished;
} cb_state;

static void chain_cb(int status, cellar_result_t *res, void *arg) {
  cb_state *st = arg;
  pthread_mutex_lock(&st->m);
  if (status == 0) st->chained_ok++;
  int more = ++st->chain < 10;
  if (!more) st->finished = 1;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->m);
  if (more && cellar_ping_async(st->c, chain_cb, st) != 0) {
    pthread_mutex_lock(&st->m);
    st->finished = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->m);
  }
}

static void deadlock_cb(int status, cellar_result_t *res, void *arg) {
  cb_state *st = arg;
  cellar_result_t *inner = NULL;
  int rc = cellar_ping(st->c, &inner);
  pthread_mutex_lock(&st->m);
  st->sync_rc = rc;
  st->sync_res_code = cellar_result_code(inner);
  pthread_mutex_unlock(&st->m);
  cellar_result_free(inner);
  if (cellar_ping_async(st->c, chain_cb, st) != 0) {
    pthread_mutex_lock(&st->m);
    st->finished = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->m);
  }
}

static void test_sync_in_callback(void) {
  cb_state st;
  memset(&st, 0, sizeof st);
  st.c = g_c;
  pthread_mutex_init(&st.m, NULL);
  pthread_cond_init(&st.cv, NULL);
  CU_ASSERT_EQUAL_FATAL(cellar_ping_async(g_c, deadlock_cb, &st), 0);
  pthread_mutex_lock(&st.m);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  while (!st.finished)
    if (pthread_cond_timedwait(&st.cv, &st.m, &dl) != 0) break;
  pthread_mutex_unlock(&st.m);
  CU_ASSERT_EQUAL(st.sync_rc, CELLAR_EDEADLOCK);
  CU_ASSERT_EQUAL(st.sync_res_code, CELLAR_EDEADLOCK);
  CU_ASSERT_EQUAL(st.chain, 10);
  CU_ASSERT_EQUAL(st.chained_ok, 10);
  pthread_cond_destroy(&st.cv);
  pthread_mutex_destroy(&st.m);
}

/* Close with requests in flight: each callback once, ESHUTDOWN; a request
** started from such a callback is refused. */
static atomic_int g_resubmit_rc;
static cellar_client_t *g_closing;

static void close_cb(int status, cellar_result_t *res, void *arg) {
  on_done(status, res, arg);
  atomic_store(&g_resubmit_rc, cellar_ping_async(g_closing, on_done, arg));
}

static void test_close_inflight(void) {
  enum { N = 200 };
  cellar_client_t *c = connect_with(2, 0, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  EXPECT(0, cellar_ping(c, &R));
  g_closing = c;
  atomic_store(&g_resubmit_rc, 1);
  CU_ASSERT_EQUAL_FATAL(harness_node_signal(&g_node, SIGSTOP), 0);
  waiter w;
  waiter_init(&w, N);
  static slot s[N];
  for (int i = 0; i < N; i++) {
    s[i] = (slot){&w, i};
    CU_ASSERT_EQUAL(cellar_ping_async(c, close_cb, &s[i]), 0);
  }
  sleep_ms(100);
  CU_ASSERT_EQUAL(w.done, 0);
  cellar_close(c);                                   /* returns after the callbacks */
  CU_ASSERT_EQUAL(w.done, N);
  CU_ASSERT_EQUAL(w.status_count[-CELLAR_ESHUTDOWN], N);
  int once = 0;
  for (int i = 0; i < N; i++) once += w.per_request[i] == 1;
  CU_ASSERT_EQUAL(once, N);
  CU_ASSERT_EQUAL(atomic_load(&g_resubmit_rc), CELLAR_ESHUTDOWN);
  CU_ASSERT_EQUAL(client_last_loop_close_rc(), 0);   /* no handle leaked */
  CU_ASSERT_EQUAL(harness_node_signal(&g_node, SIGCONT), 0);
  waiter_free(&w);
  EXPECT(0, cellar_ping(g_c, &R));
}

static const test_case cases[] = {
  {"connect_ping", test_connect_ping},
  {"schema", test_schema},
  {"binary_roundtrip", test_binary_roundtrip},
  {"multirow_put_slice", test_multirow_put_slice},
  {"paging", test_paging},
  {"deletes", test_deletes},
  {"ttl", test_ttl},
  {"async_many", test_async_many},
  {"errors", test_errors},
  {"timeout", test_timeout},
  {"overload", test_overload},
  {"server_killed", test_server_killed},
  {"retry_single_node", test_retry_single_node},
  {"threads", test_threads},
  {"sync_in_callback", test_sync_in_callback},
  {"close_inflight", test_close_inflight},
  {NULL, NULL},
};

int main(int argc, char **argv) {
  char *base = testutil_tmpdir("client");
  if (base == NULL) return 2;
  harness_node_init(&g_node, base, "127.0.0.1", 0);
  if (harness_node_start(&g_node, NULL, 20000) != 0) {
    fprintf(stderr, "test_client: cannot start cellard (log: %s)\n", g_node.log_path);
    return 1;
  }
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = g_node.addr;
  int rc = cellar_connect(&o, &g_c);
  if (rc == 0) {
    cellar_result_t *res = NULL;
    rc = cellar_create_keyspace(g_c, KS, "SimpleStrategy:1", 1, &res);
    cellar_result_free(res);
    if (rc == 0) rc = cellar_create_table(g_c, KS, "t", NULL, 1, &res);
    if (rc) fprintf(stderr, "setup: %s\n", cellar_err_name(rc));
    cellar_result_free(res);
  }
  int status = 1;
  if (rc == 0) status = testutil_run("client", cases, argc, argv);
  if (g_c) cellar_close(g_c);
  harness_node_signal(&g_node, SIGCONT);
  harness_node_signal(&g_node, SIGTERM);
  if (status == 0) testutil_rmrf(base);
  else fprintf(stderr, "test_client: data and log kept in %s\n", base);
  free(base);
  return status;
}
