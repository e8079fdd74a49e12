/* Helpers shared by the CUnit programs: run a suite list, temp dirs. */
#ifndef CELLAR_TESTUTIL_H
#define CELLAR_TESTUTIL_H

#include <CUnit/CUnit.h>

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;

/* Registers one suite made of cases (terminated by {NULL, NULL}), runs it
** with the basic interface (verbose), returns the process exit status:
** 0 when every test passed. If argv[1] is given, only that test runs. */
int testutil_run(const char *suite, const test_case *cases, int argc,
                 char **argv);

/* Creates a fresh empty directory under $TMPDIR (or /tmp); returns a
** malloc'd path, caller frees. testutil_rmrf removes a tree. */
char *testutil_tmpdir(const char *tag);
void testutil_rmrf(const char *path);

#endif
