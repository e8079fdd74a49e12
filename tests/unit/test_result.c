/* Unit tests of result: arena copies, row and cell growth, cursor, info
** pairs, error messages, reuse after free. */
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "result.h"
#include "testutil.h"

static void test_init_free(void) {
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(r.code, 0);
  CU_ASSERT_EQUAL(r.nrows, 0);
  CU_ASSERT_PTR_NULL(r.cursor);
  result_free(&r);
  /* free of an empty result, twice, is fine; the result is reusable */
  result_free(&r);
  CU_ASSERT_PTR_NOT_NULL(result_add_row(&r, "k", 1));
  result_free(&r);
  CU_ASSERT_EQUAL(r.nrows, 0);
  CU_ASSERT_PTR_NULL(r.rows);
}

static void test_error(void) {
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(result_error(&r, CELLAR_ENOTABLE, "unknown table %s.%s",
                               "ks", "t"), CELLAR_ENOTABLE);
  CU_ASSERT_EQUAL(r.code, CELLAR_ENOTABLE);
  CU_ASSERT_STRING_EQUAL(r.message, "unknown table ks.t");
  /* a long message is cut, and stays NUL-terminated */
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  result_error(&r, CELLAR_EINVAL, "%s", big);
  CU_ASSERT_EQUAL(strlen(r.message), sizeof r.message - 1);
  result_free(&r);
}

/* Many rows with many cells: contents survive every reallocation. */
static void test_rows_and_cells(void) {
  result r;
  result_init(&r);
  enum { ROWS = 1000, CELLS = 37 };
  for (int i = 0; i < ROWS; i++) {
    char ck[32];
    int n = snprintf(ck, sizeof ck, "row%05d", i);
    res_row *row = result_add_row(&r, ck, (size_t)n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    for (int j = 0; j < CELLS; j++) {
      char name[16], val[32];
      int nn = snprintf(name, sizeof name, "c%d", j);
      int nv = snprintf(val, sizeof val, "v%d.%d", i, j);
      CU_ASSERT_EQUAL_FATAL(result_add_cell(&r, row, name, (size_t)nn, val,
                                            (size_t)nv, i * 100 + j,
                                            (uint32_t)j), 0);
      /* the source buffer is reused: the result holds a copy */
      memset(val, '?', sizeof val);
    }
  }
  CU_ASSERT_EQUAL_FATAL(r.nrows, ROWS);
  for (int i = 0; i < ROWS; i++) {
    char ck[32];
    int n = snprintf(ck, sizeof ck, "row%05d", i);
    const res_row *row = &r.rows[i];
    CU_ASSERT_FATAL(row->nck == (size_t)n && memcmp(row->ck, ck, n) == 0);
    CU_ASSERT_EQUAL_FATAL(row->ncells, CELLS);
    for (int j = 0; j < CELLS; j++) {
      char val[32];
      int nv = snprintf(val, sizeof val, "v%d.%d", i, j);
      const res_cell *c = &row->cells[j];
      CU_ASSERT_FATAL(c->nvalue == (size_t)nv &&
                      memcmp(c->value, val, nv) == 0);
      CU_ASSERT_FATAL(c->timestamp == i * 100 + j);
      CU_ASSERT_FATAL(c->expires_at == (uint32_t)j);
    }
  }
  result_free(&r);
}

/* Copies larger than a block, mixed with small ones, empty ones. */
static void test_big_copies(void) {
  result r;
  result_init(&r);
  size_t sizes[] = {0, 1, 5000, 3, 1u << 20, 7, 3u << 20, 0, 100000, 9};
  const uint8_t *copies[10];
  uint8_t *src = malloc(3u << 20);
  CU_ASSERT_FATAL(src != NULL);
  for (size_t i = 0; i < 10; i++) {
    memset(src, (int)i + 1, sizes[i]);
    copies[i] = result_copy(&r, src, sizes[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copies[i]);
  }
  for (size_t i = 0; i < 10; i++)
    for (size_t j = 0; j < sizes[i]; j += 4093)
      CU_ASSERT_FATAL(copies[i][j] == (uint8_t)(i + 1));
  /* copies do not overlap */
  for (size_t i = 0; i < 10; i++)
    if (sizes[i]) CU_ASSERT_FATAL(copies[i][sizes[i] - 1] == (uint8_t)(i + 1));
  free(src);
  result_free(&r);
}

static void test_drop_last_row(void) {
  result r;
  result_init(&r);
  result_add_row(&r, "a", 1);
  res_row *b = result_add_row(&r, "b", 1);
  CU_ASSERT_EQUAL(result_add_cell(&r, b, "c", 1, "v", 1, 1, 0), 0);
  result_drop_last_row(&r);
  CU_ASSERT_EQUAL(r.nrows, 1);
  res_row *c = result_add_row(&r, "c", 1);
  CU_ASSERT_EQUAL(c->ncells, 0);   /* a fresh row, not b's cells */
  CU_ASSERT(r.rows[1].ck[0] == 'c');
  result_drop_last_row(&r);
  result_drop_last_row(&r);
  result_drop_last_row(&r);        /* on empty: no-op */
  CU_ASSERT_EQUAL(r.nrows, 0);
  result_free(&r);
}

static void test_cursor_and_info(void) {
  result r;
  result_init(&r);
  char cur[] = "\x01last\0key";
  CU_ASSERT_EQUAL(result_set_cursor(&r, cur, 10), 0);
  memset(cur, 0, sizeof cur);
  CU_ASSERT_EQUAL(r.ncursor, 10);
  CU_ASSERT(memcmp(r.cursor, "\x01last\0key", 10) == 0);
  for (int i = 0; i < 100; i++) {
    char key[32];
    snprintf(key, sizeof key, "storage.k%d", i);
    CU_ASSERT_EQUAL_FATAL(result_add_info(&r, key, "%d-%s", i, "x"), 0);
  }
  CU_ASSERT_EQUAL(r.ninfo, 100);
  CU_ASSERT_STRING_EQUAL(r.info[0].key, "storage.k0");
  CU_ASSERT_STRING_EQUAL(r.info[0].value, "0-x");
  CU_ASSERT_STRING_EQUAL(r.info[99].key, "storage.k99");
  CU_ASSERT_STRING_EQUAL(r.info[99].value, "99-x");
  /* a value longer than a block */
  char *big = malloc(20000);
  memset(big, 'y', 19999);
  big[19999] = '\0';
  CU_ASSERT_EQUAL(result_add_info(&r, "big", "%s", big), 0);
  CU_ASSERT_EQUAL(strlen(r.info[100].value), 19999);
  free(big);
  result_free(&r);
}

static void test_keyspaces_tables_freed(void) {
  result r;
  result_init(&r);
  r.keyspaces = calloc(2, sizeof *r.keyspaces);
  r.nkeyspaces = 2;
  r.tables = calloc(3, sizeof *r.tables);
  r.ntables = 3;
  result_free(&r);   /* ASan reports a leak if these are not freed */
  CU_ASSERT_PTR_NULL(r.keyspaces);
  CU_ASSERT_PTR_NULL(r.tables);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"init_free", test_init_free},
    {"error", test_error},
    {"rows_and_cells", test_rows_and_cells},
    {"big_copies", test_big_copies},
    {"drop_last_row", test_drop_last_row},
    {"cursor_and_info", test_cursor_and_info},
    {"keyspaces_tables_freed", test_keyspaces_tables_freed},
    {NULL, NULL}
  };
  return testutil_run("result", cases, argc, argv);
}
