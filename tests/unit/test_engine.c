/* Unit tests of the engine: requests against a real storage and schema,
** without sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "engine.h"
#include "frame.h"
#include "testutil.h"

static char *dir;
static storage *st;
static schema *sc;
static engine eng;

static void setup(void) {
  dir = testutil_tmpdir("engine");
  char path[600];
  snprintf(path, sizeof path, "%s/db", dir);
  storage_options o;
  storage_options_init(&o);
  o.path = path;
  CU_ASSERT_EQUAL_FATAL(storage_open(&o, &st), 0);
  CU_ASSERT_EQUAL_FATAL(schema_open(st, &sc), 0);
  eng = (engine){.st = st, .sc = sc, .node_id = "test", .data_dir = dir,
                 .max_slice_rows = 100};
  request q = {.type = FRAME_CREATE_KEYSPACE};
  strcpy(q.ks_def.name, "ks");
  q.ks_def.strategy = REPL_SIMPLE;
  q.ks_def.rf = 1;
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL_FATAL(engine_execute(&eng, &q, &r), 0);
  result_free(&r);
  request t = {.type = FRAME_CREATE_TABLE};
  strcpy(t.table_def.keyspace, "ks");
  strcpy(t.table_def.name, "t");
  t.table_def.policy = POLICY_LWW;
  t.table_def.gc_grace = SCHEMA_DEFAULT_GC_GRACE;
  t.table_def.default_ttl = 0;
  result_init(&r);
  CU_ASSERT_EQUAL_FATAL(engine_execute(&eng, &t, &r), 0);
  result_free(&r);
}

static void teardown(void) {
  schema_free(sc);
  storage_close(st);
  testutil_rmrf(dir);
  free(dir);
}

static int put_row(const char *pk, const char *ck, const char *col, const char *val,
                   uint32_t ttl) {
  req_cell cell = {CBYTES(col, strlen(col)), CBYTES(val, strlen(val))};
  req_row row = {CBYTES(ck, strlen(ck)), 1, &cell};
  request q = {.type = FRAME_PUT, .keyspace = "ks", .table = "t",
               .partition = CBYTES(pk, strlen(pk)), .nrows = 1, .rows = &row,
               .ttl = ttl, .consistency = CELLAR_CL_ONE};
  result r;
  result_init(&r);
  int rc = engine_execute(&eng, &q, &r);
  result_free(&r);
  return rc;
}

static void test_cursor_codec(void) {
  uint8_t buf[64];
  size_t n = engine_cursor_encode((const uint8_t *)"abc", 3, buf, sizeof buf);
  CU_ASSERT_EQUAL(n, 4);
  cbytes ck;
  CU_ASSERT_EQUAL(engine_cursor_decode(buf, n, &ck), 0);
  CU_ASSERT_EQUAL(ck.n, 3);
  CU_ASSERT_EQUAL(memcmp(ck.p, "abc", 3), 0);
  buf[0] = 9;
  CU_ASSERT_EQUAL(engine_cursor_decode(buf, n, &ck), CELLAR_EBADCURSOR);
  CU_ASSERT_EQUAL(engine_cursor_decode(buf, 0, &ck), CELLAR_EBADCURSOR);
  CU_ASSERT_EQUAL(engine_cursor_encode((const uint8_t *)"abc", 3, buf, 3), 0);
}

static void test_unknown_names(void) {
  setup();
  request q = {.type = FRAME_GET, .keyspace = "nope", .table = "t",
               .partition = CBYTES("p", 1)};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), CELLAR_ENOKEYSPACE);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "nope"));
  result_free(&r);
  q.keyspace = "ks";
  q.table = "missing";
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), CELLAR_ENOTABLE);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "ks.missing"));
  result_free(&r);
  teardown();
}

/* pages over 250 rows with limit 40 and then the server cap of 100 */
static void test_slice_paging(void) {
  setup();
  char ck[16];
  for (int i = 0; i < 250; i++) {
    snprintf(ck, sizeof ck, "r%04d", i);
    CU_ASSERT_EQUAL_FATAL(put_row("p", ck, "c", "v", 0), 0);
  }
  uint32_t limits[] = {40, 0, 1000};
  for (size_t l = 0; l < 3; l++) {
    int seen = 0, pages = 0;
    uint8_t cursor[64];
    size_t ncursor = 0;
    for (;;) {
      request q = {.type = FRAME_SLICE, .keyspace = "ks", .table = "t",
                   .partition = CBYTES("p", 1), .limit = limits[l],
                   .cursor = CBYTES(cursor, ncursor)};
      result r;
      result_init(&r);
      CU_ASSERT_EQUAL_FATAL(engine_execute(&eng, &q, &r), 0);
      size_t cap = limits[l] && limits[l] < 100 ? limits[l] : 100;
      CU_ASSERT(r.nrows <= cap);
      for (size_t i = 0; i < r.nrows; i++) {
        snprintf(ck, sizeof ck, "r%04d", seen++);
        CU_ASSERT_EQUAL(r.rows[i].nck, 5);
        CU_ASSERT_EQUAL(memcmp(r.rows[i].ck, ck, 5), 0);
      }
      pages++;
      ncursor = r.cursor ? r.ncursor : 0;
      if (r.cursor) memcpy(cursor, r.cursor, r.ncursor);
      result_free(&r);
      if (ncursor == 0) break;
    }
    CU_ASSERT_EQUAL(seen, 250);
    CU_ASSERT_EQUAL(pages, limits[l] == 40 ? 7 : 3);
  }
  /* bounds with a cursor before the start bound: the bound wins */
  uint8_t cur[8];
  size_t nc = engine_cursor_encode((const uint8_t *)"r0001", 5, cur, sizeof cur);
  request q = {.type = FRAME_SLICE, .keyspace = "ks", .table = "t",
               .partition = CBYTES("p", 1), .has_start = 1,
               .start = CBYTES("r0100", 5), .has_end = 1, .end = CBYTES("r0104", 5),
               .cursor = CBYTES(cur, nc)};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), 0);
  CU_ASSERT_EQUAL(r.nrows, 5);
  CU_ASSERT_PTR_NULL(r.cursor);
  result_free(&r);
  q.cursor = CBYTES("\x07zz", 3);
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), CELLAR_EBADCURSOR);
  result_free(&r);
  teardown();
}

static void test_ttl_and_delete(void) {
  setup();
  CU_ASSERT_EQUAL(put_row("p", "a", "c", "short", 1), 0);
  CU_ASSERT_EQUAL(put_row("p", "b", "c", "long", 0), 0);
  request g = {.type = FRAME_SLICE, .keyspace = "ks", .table = "t",
               .partition = CBYTES("p", 1)};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &g, &r), 0);
  CU_ASSERT_EQUAL(r.nrows, 2);
  result_free(&r);
  clock_set_fake_us(clock_now_us() + 5 * 1000000ll);
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &g, &r), 0);
  CU_ASSERT_EQUAL(r.nrows, 1);
  result_free(&r);
  clock_set_fake_us(0);
  request d = {.type = FRAME_DELETE, .keyspace = "ks", .table = "t",
               .partition = CBYTES("p", 1), .scope = STORAGE_DELETE_PARTITION};
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &d, &r), 0);
  result_free(&r);
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &g, &r), 0);
  CU_ASSERT_EQUAL(r.nrows, 0);
  result_free(&r);
  teardown();
}

/* Siblings tables through the engine (the single-node path): versions
** and the row context on reads, contexts on writes, stale contexts, the
** sibling limit and its message. */
static int put_ctx(const char *table, const char *val, cbytes ctx, result *r) {
  req_cell cell = {CBYTES("c", 1), CBYTES(val, strlen(val))};
  req_row row = {CBYTES("r", 1), 1, &cell};
  request q = {.type = FRAME_PUT, .keyspace = "ks", .table = table,
               .partition = CBYTES("p", 1), .nrows = 1, .rows = &row,
               .consistency = CELLAR_CL_ONE, .context = ctx};
  result_init(r);
  return engine_execute(&eng, &q, r);
}

static void test_siblings(void) {
  setup();
  eng.siblings_limit = 2;
  request t = {.type = FRAME_CREATE_TABLE};
  strcpy(t.table_def.keyspace, "ks");
  strcpy(t.table_def.name, "s");
  t.table_def.policy = POLICY_SIBLINGS;
  t.table_def.gc_grace = 100;
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL_FATAL(engine_execute(&eng, &t, &r), 0);
  result_free(&r);
  CU_ASSERT_EQUAL(put_ctx("s", "1", CBYTES(NULL, 0), &r), 0);
  result_free(&r);
  CU_ASSERT_EQUAL(put_ctx("s", "2", CBYTES(NULL, 0), &r), 0);
  result_free(&r);
  /* a third blind write would leave 3 siblings: refused, with why */
  CU_ASSERT_EQUAL(put_ctx("s", "3", CBYTES(NULL, 0), &r), CELLAR_ESIBLINGS);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "too many siblings: column c has 2 (limit 2)"));
  result_free(&r);
  request g = {.type = FRAME_GET, .keyspace = "ks", .table = "s",
               .partition = CBYTES("p", 1), .ck = CBYTES("r", 1)};
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &g, &r), 0);
  CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nsib, 2);
  CU_ASSERT(r.rows[0].ncontext > 0);
  uint8_t ctx[512];
  size_t nctx = r.rows[0].ncontext;
  CU_ASSERT_FATAL(nctx <= sizeof ctx);
  memcpy(ctx, r.rows[0].context, nctx);
  result_free(&r);
  /* the context resolves them */
  result r2;
  CU_ASSERT_EQUAL(put_ctx("s", "4", CBYTES(ctx, nctx), &r2), 0);
  result_free(&r2);
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &g, &r), 0);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nsib, 0);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nvalue, 1);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].value[0], '4');
  result_free(&r);
  /* past gc_grace the context is refused; garbage is refused */
  clock_set_fake_us(clock_now_us() + 200 * 1000000ll);
  CU_ASSERT_EQUAL(put_ctx("s", "5", CBYTES(ctx, nctx), &r2), CELLAR_ESTALECONTEXT);
  result_free(&r2);
  clock_set_fake_us(0);
  CU_ASSERT_EQUAL(put_ctx("s", "5", CBYTES("\1\0\1zz", 5), &r2), CELLAR_EPROTO);
  result_free(&r2);
  /* lww tables: no context, the later write wins */
  CU_ASSERT_EQUAL(put_ctx("t", "a", CBYTES(NULL, 0), &r2), 0);
  result_free(&r2);
  CU_ASSERT_EQUAL(put_ctx("t", "b", CBYTES(NULL, 0), &r2), 0);
  result_free(&r2);
  g.table = "t";
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &g, &r), 0);
  CU_ASSERT_EQUAL(r.rows[0].ncontext, 0);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nsib, 0);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].value[0], 'b');
  result_free(&r);
  teardown();
}

static void test_admin(void) {
  setup();
  request q = {.type = FRAME_ADMIN, .command = "info"};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), 0);
  int found = 0;
  for (size_t i = 0; i < r.ninfo; i++)
    if (!strcmp(r.info[i].key, "node.id") && !strcmp(r.info[i].value, "test")) found = 1;
  CU_ASSERT(found);
  result_free(&r);

  CU_ASSERT_EQUAL(put_row("p", "a", "c", "v", 0), 0);
  q.command = "snapshot";
  q.argument = "snap1";
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), 0);
  result_free(&r);
  char path[700];
  snprintf(path, sizeof path, "%s/snapshots/snap1/CURRENT", dir);
  struct stat sb;
  CU_ASSERT_EQUAL(stat(path, &sb), 0);
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), CELLAR_EEXISTS);
  result_free(&r);
  q.argument = "../escape";
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), CELLAR_EBADNAME);
  result_free(&r);
  q.command = "reboot";
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), CELLAR_EINVAL);
  result_free(&r);
  q.command = "compact";
  result_init(&r);
  CU_ASSERT_EQUAL(engine_execute(&eng, &q, &r), 0);
  result_free(&r);
  teardown();
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"cursor_codec", test_cursor_codec},
    {"unknown_names", test_unknown_names},
    {"slice_paging", test_slice_paging},
    {"ttl_and_delete", test_ttl_and_delete},
    {"siblings", test_siblings},
    {"admin", test_admin},
    {NULL, NULL}};
  return testutil_run("engine", cases, argc, argv);
}
