/* Unit tests of configuration parsing and validation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "config.h"
#include "log.h"
#include "testutil.h"

static void test_defaults(void) {
  config c;
  config_defaults(&c);
  CU_ASSERT_STRING_EQUAL(c.listen_host, "127.0.0.1");
  CU_ASSERT_EQUAL(c.listen_port, 7400);
  CU_ASSERT_EQUAL(c.cache_bytes, 64u << 20);
  CU_ASSERT_EQUAL(c.max_frame_bytes, CELLAR_MAX_FRAME_BYTES);
  CU_ASSERT_EQUAL(c.sync_writes, 0);
}

static void test_sizes(void) {
  uint64_t v;
  CU_ASSERT_EQUAL(config_parse_size("64MiB", &v), 0);
  CU_ASSERT_EQUAL(v, 64ull << 20);
  CU_ASSERT_EQUAL(config_parse_size("512k", &v), 0);
  CU_ASSERT_EQUAL(v, 512ull << 10);
  CU_ASSERT_EQUAL(config_parse_size("2g", &v), 0);
  CU_ASSERT_EQUAL(v, 2ull << 30);
  CU_ASSERT_EQUAL(config_parse_size("100", &v), 0);
  CU_ASSERT_EQUAL(v, 100);
  CU_ASSERT_EQUAL(config_parse_size("-1", &v), -1);
  CU_ASSERT_EQUAL(config_parse_size("12 parsecs", &v), -1);
  CU_ASSERT_EQUAL(config_parse_size("99999999999999999999g", &v), -1);
}

static void test_flags_and_errors_name_the_setting(void) {
  config c;
  char err[256];
  config_defaults(&c);
  char *ok[] = {"cellard", "--listen", "127.0.0.5:9000", "--data-dir=/tmp/x",
                "--sync_writes", "true", "--log-level", "debug", NULL};
  CU_ASSERT_EQUAL(config_parse_args(&c, 8, ok, err, sizeof err), 0);
  CU_ASSERT_STRING_EQUAL(c.listen_host, "127.0.0.5");
  CU_ASSERT_EQUAL(c.listen_port, 9000);
  CU_ASSERT_STRING_EQUAL(c.data_dir, "/tmp/x");
  CU_ASSERT_EQUAL(c.sync_writes, 1);
  CU_ASSERT_EQUAL(c.log_level, LOG_DEBUG);

  struct { const char *k, *v, *needle; } bad[] = {
    {"listen", "nohost", "listen"},
    {"listen", "1.2.3.4:70000", "port"},
    {"cache_size", "1k", "cache_size"},
    {"max_frame_size", "1g", "max_frame_size"},
    {"sync_writes", "maybe", "sync_writes"},
    {"workers", "0", "workers"},
    {"log_level", "loud", "log_level"},
    {"no_such_thing", "1", "unknown setting 'no_such_thing'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    config_defaults(&c);
    err[0] = '\0';
    CU_ASSERT_EQUAL(config_set(&c, bad[i].k, bad[i].v, err, sizeof err), CELLAR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].needle));
  }
  char *missing[] = {"cellard", "--listen", NULL};
  CU_ASSERT_EQUAL(config_parse_args(&c, 2, missing, err, sizeof err), CELLAR_ECONFIG);
  char *stray[] = {"cellard", "stray", NULL};
  CU_ASSERT_EQUAL(config_parse_args(&c, 2, stray, err, sizeof err), CELLAR_ECONFIG);
  char *help[] = {"cellard", "--help", NULL};
  CU_ASSERT_EQUAL(config_parse_args(&c, 2, help, err, sizeof err), 1);
}

static void test_file_then_flags_override(void) {
  char *dir = testutil_tmpdir("config");
  char path[512];
  snprintf(path, sizeof path, "%s/cellar.conf", dir);
  FILE *f = fopen(path, "w");
  fputs("# a comment\nlisten = 127.0.0.9:7500\ncache_size = 128MiB  # trailing\n\n"
        "workers=8\n", f);
  fclose(f);
  config c;
  char err[256];
  config_defaults(&c);
  char *argv[] = {"cellard", "--workers", "2", "--config", path, NULL};
  CU_ASSERT_EQUAL(config_parse_args(&c, 5, argv, err, sizeof err), 0);
  CU_ASSERT_STRING_EQUAL(c.listen_host, "127.0.0.9");
  CU_ASSERT_EQUAL(c.cache_bytes, 128u << 20);
  CU_ASSERT_EQUAL(c.workers, 2);   /* the flag wins over the file */

  f = fopen(path, "w");
  fputs("listen = 127.0.0.9:7500\nthis line is wrong\n", f);
  fclose(f);
  config_defaults(&c);
  CU_ASSERT_EQUAL(config_load_file(&c, path, err, sizeof err), CELLAR_ECONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2:"));
  CU_ASSERT_EQUAL(config_load_file(&c, "/nonexistent/cellar.conf", err, sizeof err),
                  CELLAR_ECONFIG);
  testutil_rmrf(dir);
  free(dir);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"defaults", test_defaults},
    {"sizes", test_sizes},
    {"flags_and_errors_name_the_setting", test_flags_and_errors_name_the_setting},
    {"file_then_flags_override", test_file_then_flags_override},
    {NULL, NULL}};
  return testutil_run("config", cases, argc, argv);
}
