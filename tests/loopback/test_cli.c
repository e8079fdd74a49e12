/*
** test_cli: cellar-cli ($CELLAR_CLI) one-shot commands and the shell on
** stdin against one real cellard (started here through the harness):
** output, exit codes (0 success, 1 error with the code name, 2 usage) and
** the hex form of binary keys and values.
*/
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"
#include "../unit/testutil.h"

static node_proc g_node;
static const char *g_cli;

/* Runs cellar-cli -h NODE args... (NULL-terminated); returns the exit
** status, *out the output (stdout and stderr), caller frees. */
static int cli(char **out, ...) {
  const char *argv[64];
  int n = 0;
  argv[n++] = g_cli;
  argv[n++] = "-h";
  argv[n++] = g_node.addr;
  va_list ap;
  va_start(ap, out);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && n < 63) argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  char *o = NULL;
  int rc = harness_run(argv, &o);
  if (o == NULL) o = strdup("");
  *out = o;
  return rc;
}

/* Runs and checks exit status and exact output. */
#define CLI_EXPECT(status, want, ...)                                         \
  do {                                                                        \
    char *out_;                                                               \
    int st_ = cli(&out_, __VA_ARGS__, (const char *)NULL);                    \
    if (st_ != (status) || strcmp(out_, (want)) != 0)                         \
      fprintf(stderr, "\n  line %d: status %d, output:\n%s  wanted %d:\n%s",  \
              __LINE__, st_, out_, (status), (want));                        \
    CU_ASSERT_EQUAL(st_, (status));                                           \
    CU_ASSERT_STRING_EQUAL(out_, (want));                                     \
    free(out_);                                                               \
  } while (0)

/* Runs and checks exit status and that the output contains want. */
#define CLI_CONTAINS(status, want, ...)                                       \
  do {                                                                        \
    char *out_;                                                               \
    int st_ = cli(&out_, __VA_ARGS__, (const char *)NULL);                    \
    if (st_ != (status) || strstr(out_, (want)) == NULL)                      \
      fprintf(stderr, "\n  line %d: status %d, output:\n%s  wanted %d and "  \
              "'%s'\n", __LINE__, st_, out_, (status), (want));               \
    CU_ASSERT_EQUAL(st_, (status));                                           \
    CU_ASSERT_PTR_NOT_NULL(strstr(out_, (want)));                             \
    free(out_);                                                               \
  } while (0)

static void test_ping_and_schema(void) {
  CLI_EXPECT(0, "PONG\n", "ping");
  /* main() made cli and cli.t already */
  CLI_CONTAINS(1, "error: CELLAR_EEXISTS: ", "create-keyspace", "cli");
  CLI_EXPECT(0, "OK\n", "create-keyspace", "cli", "--if-not-exists");
  CLI_CONTAINS(1, "error: CELLAR_EEXISTS: ", "create-table", "cli.t");
  CLI_EXPECT(0, "OK\n", "create-table", "cli.t", "--if-not-exists");
  CLI_EXPECT(0, "OK\n", "create-table", "cli.w", "--policy", "lww", "--gc-grace", "60",
             "--ttl", "3600");
  CLI_EXPECT(0, "OK\n", "create-keyspace", "cli2", "NetworkTopologyStrategy:dc2=2,dc1=3");
  CLI_EXPECT(0,
             "keyspace cli replication=SimpleStrategy:1\n"
             "  table cli.t policy=siblings gc_grace=864000 default_ttl=0\n"
             "  table cli.w policy=lww gc_grace=60 default_ttl=3600\n",
             "describe", "cli");
  CLI_EXPECT(0, "keyspace cli2 replication=NetworkTopologyStrategy:dc1=3,dc2=2\n",
             "describe", "cli2");
  CLI_CONTAINS(0, "keyspace cli2 ", "describe");
  CLI_EXPECT(0, "OK\n", "drop-keyspace", "cli2");
  CLI_EXPECT(1, "error: CELLAR_EINVAL: unknown replication strategy 'Bogus'\n",
             "create-keyspace", "cli3", "Bogus:3");
  CLI_CONTAINS(0, "node.id: ", "info");
}

static void test_put_get(void) {
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "pk1", "ck1", "a=1", "b=hello world", "c=");
  CLI_EXPECT(0, "ck1  a=1 b=\"hello world\" c=\"\"\n", "get", "cli.t", "pk1", "ck1");
  CLI_EXPECT(0, "ck1  a=1\n", "get", "cli.t", "pk1", "ck1", "a");
  /* no clustering key: the row with the empty one */
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "pk2", "x=y");
  CLI_EXPECT(0, "\"\"  x=y\n", "get", "cli.t", "pk2");
  /* a missing row prints nothing and succeeds */
  CLI_EXPECT(0, "", "get", "cli.t", "nope", "nope");
  /* binary keys and values in hex, printed back in hex */
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "0x00ff", "0x0001", "v=0x000102ff", "0x09=tab");
  CLI_EXPECT(0, "0x0001  0x09=tab v=0x000102ff\n", "get", "cli.t", "0x00ff", "0x0001");
  /* text that looks like hex comes back as hex, so it can be typed back */
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "pk3", "k", "v=0X41");
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "pk3", "k2", "v=0x3078");   /* "0x" */
  CLI_EXPECT(0, "k  v=A\nk2  v=0x3078\n", "slice", "cli.t", "pk3");
  /* TTL and timestamp flags */
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "pk4", "k", "v=1", "--ttl", "100", "--timestamp",
             "1700000000000000");
  CLI_EXPECT(0, "k  v=1\n", "get", "cli.t", "pk4", "k");
  /* consistency levels are accepted */
  char *out;
  const char *argv[] = {g_cli, "-h", g_node.addr, "--consistency", "quorum", "get", "cli.t",
                        "pk1", "ck1", "a", NULL};
  CU_ASSERT_EQUAL(harness_run(argv, &out), 0);
  CU_ASSERT_STRING_EQUAL(out ? out : "", "ck1  a=1\n");
  free(out);
}

static void test_slice_paging(void) {
  for (int i = 0; i < 5; i++) {
    char ck[8], v[8];
    snprintf(ck, sizeof ck, "r%d", i);
    snprintf(v, sizeof v, "v=%d", i);
    CLI_EXPECT(0, "OK\n", "put", "cli.t", "sp", ck, v);
  }
  CLI_EXPECT(0, "r0  v=0\nr1  v=1\nr2  v=2\nr3  v=3\nr4  v=4\n", "slice", "cli.t", "sp");
  CLI_EXPECT(0, "r1  v=1\nr2  v=2\n", "slice", "cli.t", "sp", "--start", "r1", "--end", "r2");
  CLI_EXPECT(0, "r0  v=0\nr1  v=1\nr2  v=2\nr3  v=3\nr4  v=4\n", "slice", "cli.t", "sp",
             "--limit", "2", "--all");

  /* a page, then the next one through the printed cursor */
  char *out;
  int st = cli(&out, "slice", "cli.t", "sp", "--limit", "3", (const char *)NULL);
  CU_ASSERT_EQUAL(st, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "r0  v=0\nr1  v=1\nr2  v=2\ncursor: 0x"));
  char cursor[256] = "";
  const char *c = strstr(out, "cursor: ");
  if (c) sscanf(c + 8, "%255s", cursor);
  free(out);
  CU_ASSERT_FATAL(cursor[0] != '\0');
  CLI_EXPECT(0, "r3  v=3\nr4  v=4\n", "slice", "cli.t", "sp", "--limit", "3", "--cursor",
             cursor);
}

static void test_delete(void) {
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "del", "r1", "a=1", "b=2");
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "del", "r2", "a=3");
  CLI_EXPECT(0, "OK\n", "delete", "cli.t", "del", "r1", "a");
  CLI_EXPECT(0, "r1  b=2\nr2  a=3\n", "slice", "cli.t", "del");
  CLI_EXPECT(0, "OK\n", "delete", "cli.t", "del", "r2");
  CLI_EXPECT(0, "r1  b=2\n", "slice", "cli.t", "del");
  CLI_EXPECT(0, "OK\n", "delete", "cli.t", "del");
  CLI_EXPECT(0, "", "slice", "cli.t", "del");
}

/* Siblings tables (docs/versions.md): concurrent versions shown plainly,
** the row context printed and given back (--context, --resolve). */
static void test_siblings(void) {
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "sib", "r", "a=1");
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "sib", "r", "a=2");   /* blind: kept */
  CLI_CONTAINS(0, "r  a=[2 | 1] (2 siblings)\n  context: 0x", "get", "cli.t", "sib", "r");
  CLI_EXPECT(0, "OK\n", "put", "cli.t", "sib", "r", "a=3", "--resolve");
  CLI_EXPECT(0, "r  a=3\n", "get", "cli.t", "sib", "r");
  /* a delete with the context read: the row is gone */
  char *out = NULL;
  CU_ASSERT_EQUAL(cli(&out, "get", "cli.t", "sib", "r", "--context", (const char *)NULL), 0);
  const char *c = strstr(out, "context: ");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  char ctx[4096];
  snprintf(ctx, sizeof ctx, "%.*s", (int)strcspn(c + 9, "\n"), c + 9);
  free(out);
  CLI_EXPECT(0, "OK\n", "delete", "cli.t", "sib", "r", "--context", ctx);
  CLI_EXPECT(0, "", "get", "cli.t", "sib", "r");
  CLI_CONTAINS(2, "bad hex in --context", "put", "cli.t", "sib", "r", "a=1", "--context",
               "0xzz");
  CLI_CONTAINS(2, "exclude each other", "put", "cli.t", "sib", "r", "a=1", "--context", "0x01",
               "--resolve");
  /* lww: the later write wins, no siblings, no context */
  CLI_EXPECT(0, "OK\n", "create-table", "cli.l", "--policy", "lww");
  CLI_CONTAINS(0, "table cli.l policy=lww", "describe", "cli");
  CLI_EXPECT(0, "OK\n", "put", "cli.l", "k", "r", "a=1");
  CLI_EXPECT(0, "OK\n", "put", "cli.l", "k", "r", "a=2");
  CLI_EXPECT(0, "r  a=2\n", "get", "cli.l", "k", "r", "--context");
}

static void test_errors(void) {
  CLI_EXPECT(1, "error: CELLAR_ENOTABLE: unknown table cli.nosuch\n", "get", "cli.nosuch",
             "k");
  CLI_CONTAINS(1, "error: CELLAR_ENOKEYSPACE: ", "put", "nosuchks.t", "k", "a=1");
  CLI_CONTAINS(1, "error: CELLAR_ENOTABLE: ", "drop-table", "cli.nosuch");
  CLI_CONTAINS(1, "error: CELLAR_EBADNAME: ", "create-table", "cli.bad-name");
  /* nothing listens on port 1 */
  char *out;
  const char *argv[] = {g_cli, "-h", "127.0.0.1:1", "ping", NULL};
  CU_ASSERT_EQUAL(harness_run(argv, &out), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "error: CELLAR_ECONNECT: "));
  free(out);
}

static void test_usage(void) {
  CLI_CONTAINS(2, "unknown command 'frobnicate'", "frobnicate");
  CLI_CONTAINS(2, "usage: put", "put");
  CLI_CONTAINS(2, "usage: put", "put", "cli.t", "k");
  CLI_CONTAINS(2, "expected KS.TABLE", "get", "notable", "k");
  CLI_CONTAINS(2, "bad hex", "get", "cli.t", "0xzz");
  CLI_CONTAINS(2, "bad hex", "put", "cli.t", "k", "v=0x123");
  CLI_CONTAINS(2, "unknown option --nope", "slice", "cli.t", "k", "--nope");
  CLI_CONTAINS(2, "--limit needs a value", "slice", "cli.t", "k", "--limit");
  CLI_CONTAINS(2, "bad --limit", "slice", "cli.t", "k", "--limit", "many");
  CLI_CONTAINS(2, "--policy is siblings or lww", "create-table", "cli.x", "--policy", "x");
  char *out;
  const char *bad_cl[] = {g_cli, "--consistency", "MOST", "ping", NULL};
  CU_ASSERT_EQUAL(harness_run(bad_cl, &out), 2);
  free(out);
  const char *help[] = {g_cli, "--help", NULL};
  CU_ASSERT_EQUAL(harness_run(help, &out), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "usage: cellar-cli"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "create-keyspace"));
  free(out);
}

static void test_shell_stdin(void) {
  /* The shell reads commands from a pipe (no prompt when not a tty) and
  ** exits with the worst status it saw. */
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "printf '%%s\\n' 'ping' 'put cli.t sh \"c k\" x=\"a b\"' 'get cli.t sh \"c k\"' "
           "'# a comment' '' 'consistency QUORUM' 'consistency' 'get cli.t sh nothing' | "
           "'%s' -h %s",
           g_cli, g_node.addr);
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  char *out;
  CU_ASSERT_EQUAL(harness_run(argv, &out), 0);
  CU_ASSERT_STRING_EQUAL(out ? out : "",
                         "PONG\nOK\n\"c k\"  x=\"a b\"\n(1 row)\nQUORUM\n(0 rows)\n");
  free(out);

  snprintf(cmd, sizeof cmd, "printf 'ping\\nget cli.nosuch k\\nping\\n' | '%s' -h %s shell",
           g_cli, g_node.addr);
  CU_ASSERT_EQUAL(harness_run(argv, &out), 1);
  CU_ASSERT_STRING_EQUAL(out ? out : "",
                         "PONG\nerror: CELLAR_ENOTABLE: unknown table cli.nosuch\nPONG\n");
  free(out);

  snprintf(cmd, sizeof cmd, "printf 'bogus\\nquit\\nping\\n' | '%s' -h %s", g_cli,
           g_node.addr);
  CU_ASSERT_EQUAL(harness_run(argv, &out), 2);
  CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "unknown command 'bogus'"));
  CU_ASSERT_PTR_NULL(strstr(out ? out : "", "PONG"));     /* stopped at quit */
  free(out);
}

static const test_case cases[] = {
  {"ping_and_schema", test_ping_and_schema},
  {"put_get", test_put_get},
  {"slice_paging", test_slice_paging},
  {"delete", test_delete},
  {"siblings", test_siblings},
  {"errors", test_errors},
  {"usage", test_usage},
  {"shell_stdin", test_shell_stdin},
  {NULL, NULL},
};

int main(int argc, char **argv) {
  g_cli = getenv("CELLAR_CLI");
  if (g_cli == NULL || *g_cli == '\0') {
    fprintf(stderr, "test_cli: $CELLAR_CLI is not set\n");
    return 1;
  }
  char *base = testutil_tmpdir("cli");
  if (base == NULL) return 2;
  harness_node_init(&g_node, base, "127.0.0.1", 0);
  if (harness_node_start(&g_node, NULL, 20000) != 0) {
    fprintf(stderr, "test_cli: cannot start cellard (log: %s)\n", g_node.log_path);
    return 1;
  }
  /* Tests after the first rely on its keyspace and tables. */
  char *out = NULL;
  const char *setup[] = {g_cli, "-h", g_node.addr, "create-keyspace", "cli", "--if-not-exists",
                         NULL};
  int rc = harness_run(setup, &out);
  free(out);
  const char *setup2[] = {g_cli, "-h", g_node.addr, "create-table", "cli.t", "--if-not-exists",
                          NULL};
  if (rc == 0) rc = harness_run(setup2, &out), free(out);
  int status = 1;
  if (rc == 0) status = testutil_run("cli", cases, argc, argv);
  else fprintf(stderr, "test_cli: setup failed\n");
  harness_node_signal(&g_node, SIGTERM);
  if (status == 0) testutil_rmrf(base);
  else fprintf(stderr, "test_cli: data and log kept in %s\n", base);
  free(base);
  return status;
}
