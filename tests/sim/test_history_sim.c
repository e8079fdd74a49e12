/* history_sim: placeholder, being written (see docs/versions.md). */
#include "testutil.h"
static void test_placeholder(void) { CU_ASSERT(1); }
int main(int argc, char **argv) {
  static const test_case cases[] = {{"placeholder", test_placeholder}, {NULL, NULL}};
  return testutil_run("history_sim", cases, argc, argv);
}
