/* Unit tests of the error table and consistency-level names. */
#include <string.h>
#include "cellar/cellar.h"
#include "testutil.h"

static void test_every_code_has_name_and_message(void) {
  for (int c = 0; c > CELLAR__ERR_LAST; c--) {
    CU_ASSERT_STRING_NOT_EQUAL(cellar_strerror(c), "unknown error");
    CU_ASSERT_NOT_EQUAL(strncmp(cellar_err_name(c), "CELLAR_E", 8) == 0 || c == 0, 0);
  }
  CU_ASSERT_STRING_EQUAL(cellar_err_name(CELLAR_ENOTABLE), "CELLAR_ENOTABLE");
  CU_ASSERT_STRING_EQUAL(cellar_strerror(CELLAR_ENOTABLE), "unknown table");
  CU_ASSERT_STRING_EQUAL(cellar_strerror(-9999), "unknown error");
  CU_ASSERT_STRING_EQUAL(cellar_err_name(5), "CELLAR_EUNKNOWN");
}

static void test_codes_are_distinct(void) {
  for (int a = 0; a > CELLAR__ERR_LAST; a--)
    for (int b = a - 1; b > CELLAR__ERR_LAST; b--)
      CU_ASSERT_STRING_NOT_EQUAL(cellar_err_name(a), cellar_err_name(b));
}

static void test_consistency_names(void) {
  cellar_consistency_t cl;
  for (int i = 1; i <= CELLAR_CL_ANY; i++) {
    const char *n = cellar_consistency_name((cellar_consistency_t)i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(cellar_consistency_parse(n, &cl), 0);
    CU_ASSERT_EQUAL((int)cl, i);
  }
  CU_ASSERT_EQUAL(cellar_consistency_parse("local_quorum", &cl), 0);
  CU_ASSERT_EQUAL(cl, CELLAR_CL_LOCAL_QUORUM);
  CU_ASSERT_EQUAL(cellar_consistency_parse("MOST", &cl), CELLAR_EBADCL);
  CU_ASSERT_EQUAL(cellar_consistency_parse(NULL, &cl), CELLAR_EBADCL);
  CU_ASSERT_PTR_NULL(cellar_consistency_name((cellar_consistency_t)0));
  CU_ASSERT_PTR_NULL(cellar_consistency_name((cellar_consistency_t)10));
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"every_code_has_name_and_message", test_every_code_has_name_and_message},
    {"codes_are_distinct", test_codes_are_distinct},
    {"consistency_names", test_consistency_names},
    {NULL, NULL}};
  return testutil_run("error", cases, argc, argv);
}
