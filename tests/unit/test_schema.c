/* Unit tests of the schema catalogue: names, replication specs, records,
** persistence across a restart of the storage. */
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "schema.h"
#include "storage.h"
#include "testutil.h"

static void test_names(void) {
  CU_ASSERT_EQUAL(schema_check_name("shop"), 0);
  CU_ASSERT_EQUAL(schema_check_name("Shop_2"), 0);
  CU_ASSERT_EQUAL(schema_check_name("_x"), 0);
  CU_ASSERT_EQUAL(schema_check_name(""), CELLAR_EBADNAME);
  CU_ASSERT_EQUAL(schema_check_name("2shop"), CELLAR_EBADNAME);
  CU_ASSERT_EQUAL(schema_check_name("shop.items"), CELLAR_EBADNAME);
  CU_ASSERT_EQUAL(schema_check_name("a b"), CELLAR_EBADNAME);
  CU_ASSERT_EQUAL(schema_check_name("caf\xc3\xa9"), CELLAR_EBADNAME);
  CU_ASSERT_EQUAL(schema_check_name(NULL), CELLAR_EBADNAME);
  char longname[50];
  memset(longname, 'a', 48);
  longname[48] = '\0';
  CU_ASSERT_EQUAL(schema_check_name(longname), 0);
  longname[48] = 'a';
  longname[49] = '\0';
  CU_ASSERT_EQUAL(schema_check_name(longname), CELLAR_EBADNAME);
}

static void test_replication_specs(void) {
  keyspace_def d;
  char err[200], buf[300];
  CU_ASSERT_EQUAL(schema_parse_replication("SimpleStrategy:3", &d, err, sizeof err), 0);
  CU_ASSERT_EQUAL(d.strategy, REPL_SIMPLE);
  CU_ASSERT_EQUAL(d.rf, 3);
  schema_format_replication(&d, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "SimpleStrategy:3");
  CU_ASSERT_EQUAL(schema_parse_replication("NetworkTopologyStrategy:dc1=3,dc2=2",
                                           &d, err, sizeof err), 0);
  CU_ASSERT_EQUAL(d.strategy, REPL_NETWORK_TOPOLOGY);
  CU_ASSERT_EQUAL(d.ndcs, 2);
  CU_ASSERT_STRING_EQUAL(d.dcs[1].name, "dc2");
  CU_ASSERT_EQUAL(d.dcs[1].rf, 2);
  schema_format_replication(&d, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "NetworkTopologyStrategy:dc1=3,dc2=2");
  const char *bad[] = {"SimpleStrategy:0", "SimpleStrategy:101", "SimpleStrategy:x",
                       "SimpleStrategy", "Simple:3", "NetworkTopologyStrategy:",
                       "NetworkTopologyStrategy:dc1", "NetworkTopologyStrategy:dc1=3,dc1=2",
                       "NetworkTopologyStrategy:=3", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    CU_ASSERT_EQUAL(schema_parse_replication(bad[i], &d, err, sizeof err), CELLAR_EINVAL);
    CU_ASSERT(strlen(err) > 0);
  }
}

static void test_record_round_trip(void) {
  keyspace_def k = {.strategy = REPL_NETWORK_TOPOLOGY, .ndcs = 2};
  strcpy(k.name, "shop");
  strcpy(k.dcs[0].name, "eu");
  k.dcs[0].rf = 3;
  strcpy(k.dcs[1].name, "us");
  k.dcs[1].rf = 2;
  size_t n;
  uint8_t *e = schema_encode_keyspace(&k, &n);
  keyspace_def k2;
  CU_ASSERT_EQUAL(schema_decode_keyspace(e, n, &k2), 0);
  CU_ASSERT_STRING_EQUAL(k2.name, "shop");
  CU_ASSERT_EQUAL(k2.ndcs, 2);
  CU_ASSERT_EQUAL(k2.dcs[1].rf, 2);
  /* every truncation is rejected or decodes to something valid, never crashes */
  for (size_t i = 0; i < n; i++) {
    keyspace_def junk;
    (void)schema_decode_keyspace(e, i, &junk);
  }
  CU_ASSERT_EQUAL(schema_decode_keyspace(e, 2, &k2), CELLAR_EPROTO);
  free(e);

  table_def t = {.id = 0x0123456789abcdefull, .policy = POLICY_LWW, .gc_grace = 5,
                 .default_ttl = 60};
  strcpy(t.keyspace, "shop");
  strcpy(t.name, "items");
  e = schema_encode_table(&t, &n);
  table_def t2;
  CU_ASSERT_EQUAL(schema_decode_table(e, n, &t2), 0);
  CU_ASSERT_EQUAL(t2.id, t.id);
  CU_ASSERT_EQUAL(t2.policy, POLICY_LWW);
  CU_ASSERT_EQUAL(t2.gc_grace, 5);
  CU_ASSERT_EQUAL(t2.default_ttl, 60);
  CU_ASSERT_STRING_EQUAL(t2.name, "items");
  free(e);
  CU_ASSERT_EQUAL(schema_decode_table((const uint8_t *)"v1\nname=x\n", 10, &t2), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(schema_decode_table((const uint8_t *)"garbage", 7, &t2), CELLAR_EPROTO);
}

static storage *open_st(const char *dir) {
  storage_options o;
  storage_options_init(&o);
  o.path = dir;
  storage *st = NULL;
  CU_ASSERT_EQUAL_FATAL(storage_open(&o, &st), 0);
  return st;
}

static void test_catalogue_persists(void) {
  char *dir = testutil_tmpdir("schema");
  storage *st = open_st(dir);
  schema *s;
  CU_ASSERT_EQUAL_FATAL(schema_open(st, &s), 0);
  uint64_t v0 = schema_version(s);
  keyspace_def k;
  char err[128];
  memset(&k, 0, sizeof k);
  strcpy(k.name, "shop");
  CU_ASSERT_EQUAL(schema_parse_replication("SimpleStrategy:1", &k, err, sizeof err), 0);
  CU_ASSERT_EQUAL(schema_create_keyspace(s, &k, 0), 0);
  CU_ASSERT_EQUAL(schema_create_keyspace(s, &k, 0), CELLAR_EEXISTS);
  CU_ASSERT_EQUAL(schema_create_keyspace(s, &k, 1), 0);
  CU_ASSERT_NOT_EQUAL(schema_version(s), v0);

  table_def t = {.policy = POLICY_LWW, .gc_grace = 7};
  strcpy(t.keyspace, "shop");
  strcpy(t.name, "items");
  CU_ASSERT_EQUAL(schema_create_table(s, &t, 0), 0);
  CU_ASSERT_NOT_EQUAL(t.id, 0);
  uint64_t id1 = t.id;
  table_def t2 = t;
  CU_ASSERT_EQUAL(schema_create_table(s, &t2, 0), CELLAR_EEXISTS);
  strcpy(t2.keyspace, "nope");
  CU_ASSERT_EQUAL(schema_create_table(s, &t2, 0), CELLAR_ENOKEYSPACE);
  uint32_t g = 0;
  CU_ASSERT_EQUAL(schema_gc_grace_by_id(s, id1, &g), 0);
  CU_ASSERT_EQUAL(g, 7);
  CU_ASSERT_EQUAL(schema_gc_grace_by_id(s, id1 + 1, &g), CELLAR_ENOTABLE);
  uint64_t v1 = schema_version(s);
  schema_free(s);
  storage_close(st);

  /* restart: everything is back, the version too */
  st = open_st(dir);
  CU_ASSERT_EQUAL_FATAL(schema_open(st, &s), 0);
  CU_ASSERT_EQUAL(schema_version(s), v1);
  table_def got;
  CU_ASSERT_EQUAL(schema_get_table(s, "shop", "items", &got), 0);
  CU_ASSERT_EQUAL(got.id, id1);
  CU_ASSERT_EQUAL(got.policy, POLICY_LWW);
  CU_ASSERT_EQUAL(schema_get_table(s, "shop", "other", &got), CELLAR_ENOTABLE);
  CU_ASSERT_EQUAL(schema_get_table(s, "none", "items", &got), CELLAR_ENOKEYSPACE);
  keyspace_def *kss;
  table_def *tbs;
  size_t nks, ntb;
  CU_ASSERT_EQUAL(schema_list(s, NULL, &kss, &nks, &tbs, &ntb), 0);
  CU_ASSERT_EQUAL(nks, 1);
  CU_ASSERT_EQUAL(ntb, 1);
  free(kss);
  free(tbs);
  CU_ASSERT_EQUAL(schema_list(s, "none", &kss, &nks, &tbs, &ntb), CELLAR_ENOKEYSPACE);

  /* drop and re-create: a new id */
  CU_ASSERT_EQUAL(schema_drop_table(s, "shop", "items", 0), 0);
  CU_ASSERT_EQUAL(schema_drop_table(s, "shop", "items", 0), CELLAR_ENOTABLE);
  CU_ASSERT_EQUAL(schema_drop_table(s, "shop", "items", 1), 0);
  t.id = 0;
  CU_ASSERT_EQUAL(schema_create_table(s, &t, 0), 0);
  CU_ASSERT_NOT_EQUAL(t.id, id1);
  /* dropping the keyspace drops its tables */
  CU_ASSERT_EQUAL(schema_drop_keyspace(s, "shop", 0), 0);
  CU_ASSERT_EQUAL(schema_get_table(s, "shop", "items", &got), CELLAR_ENOKEYSPACE);
  CU_ASSERT_EQUAL(schema_drop_keyspace(s, "shop", 0), CELLAR_ENOKEYSPACE);
  CU_ASSERT_EQUAL(schema_drop_keyspace(s, "shop", 1), 0);
  schema_free(s);
  storage_close(st);

  st = open_st(dir);
  CU_ASSERT_EQUAL_FATAL(schema_open(st, &s), 0);
  CU_ASSERT_EQUAL(schema_list(s, NULL, &kss, &nks, &tbs, &ntb), 0);
  CU_ASSERT_EQUAL(nks, 0);
  CU_ASSERT_EQUAL(ntb, 0);
  free(kss);
  free(tbs);
  CU_ASSERT_EQUAL(schema_version(s), v0);
  schema_free(s);
  storage_close(st);
  testutil_rmrf(dir);
  free(dir);
}

typedef struct merge_ctx {
  schema *into;
  int applied;
} merge_ctx;

static int merge_cb(void *arg, const uint8_t *k, size_t nk, const uint8_t *v, size_t nv) {
  merge_ctx *m = arg;
  int changed = 0;
  CU_ASSERT_EQUAL(schema_merge_record(m->into, k, nk, v, nv, &changed), 0);
  m->applied += changed;
  return 0;
}

/* a -> b: b takes every newer record of a; returns how many changed b */
static int sync_into(schema *a, schema *b) {
  merge_ctx m = {b, 0};
  CU_ASSERT_EQUAL(schema_export(a, merge_cb, &m), 0);
  return m.applied;
}

static void test_merge_spreads_creates_and_drops(void) {
  char *da = testutil_tmpdir("schema-a"), *db = testutil_tmpdir("schema-b");
  storage *sa = open_st(da), *sb = open_st(db);
  schema *a, *b;
  CU_ASSERT_EQUAL_FATAL(schema_open(sa, &a), 0);
  CU_ASSERT_EQUAL_FATAL(schema_open(sb, &b), 0);
  keyspace_def k;
  char err[128];
  memset(&k, 0, sizeof k);
  strcpy(k.name, "shop");
  schema_parse_replication("SimpleStrategy:3", &k, err, sizeof err);
  CU_ASSERT_EQUAL(schema_create_keyspace(a, &k, 0), 0);
  table_def t = {.policy = POLICY_SIBLINGS, .gc_grace = 10};
  strcpy(t.keyspace, "shop");
  strcpy(t.name, "items");
  CU_ASSERT_EQUAL(schema_create_table(a, &t, 0), 0);
  CU_ASSERT_NOT_EQUAL(schema_version(a), schema_version(b));
  CU_ASSERT_EQUAL(sync_into(a, b), 2);
  CU_ASSERT_EQUAL(schema_version(a), schema_version(b));
  CU_ASSERT_EQUAL(sync_into(a, b), 0);   /* idempotent */
  CU_ASSERT_EQUAL(sync_into(b, a), 0);
  table_def got;
  CU_ASSERT_EQUAL(schema_get_table(b, "shop", "items", &got), 0);
  CU_ASSERT_EQUAL(got.id, t.id);

  /* a drop on b spreads to a; a's older create does not bring it back */
  CU_ASSERT_EQUAL(schema_drop_table(b, "shop", "items", 0), 0);
  CU_ASSERT_EQUAL(sync_into(a, b), 0);
  CU_ASSERT_EQUAL(schema_get_table(b, "shop", "items", &got), CELLAR_ENOTABLE);
  CU_ASSERT_EQUAL(sync_into(b, a), 1);
  CU_ASSERT_EQUAL(schema_get_table(a, "shop", "items", &got), CELLAR_ENOTABLE);
  CU_ASSERT_EQUAL(schema_version(a), schema_version(b));

  /* created again on a, later: the new table wins on b */
  t.id = 0;
  CU_ASSERT_EQUAL(schema_create_table(a, &t, 0), 0);
  CU_ASSERT_EQUAL(sync_into(a, b), 1);
  CU_ASSERT_EQUAL(schema_get_table(b, "shop", "items", &got), 0);
  CU_ASSERT_EQUAL(got.id, t.id);
  /* a keyspace drop takes its tables everywhere, and survives a restart */
  CU_ASSERT_EQUAL(schema_drop_keyspace(a, "shop", 0), 0);
  CU_ASSERT_EQUAL(sync_into(a, b), 2);
  CU_ASSERT_EQUAL(schema_get_keyspace(b, "shop", &k), CELLAR_ENOKEYSPACE);
  uint64_t vb = schema_version(b);
  schema_free(b);
  storage_close(sb);
  sb = open_st(db);
  CU_ASSERT_EQUAL_FATAL(schema_open(sb, &b), 0);
  CU_ASSERT_EQUAL(schema_version(b), vb);
  CU_ASSERT_EQUAL(schema_get_keyspace(b, "shop", &k), CELLAR_ENOKEYSPACE);
  CU_ASSERT_EQUAL(sync_into(a, b), 0);
  /* garbage records are refused */
  CU_ASSERT_EQUAL(schema_merge_record(b, (const uint8_t *)"schema/tb/x/y", 13,
                                      (const uint8_t *)"junk", 4, NULL), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(schema_merge_record(b, (const uint8_t *)"other", 5,
                                      (const uint8_t *)"v1\n", 3, NULL), CELLAR_EPROTO);
  schema_free(a);
  schema_free(b);
  storage_close(sa);
  storage_close(sb);
  testutil_rmrf(da);
  testutil_rmrf(db);
  free(da);
  free(db);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"names", test_names},
    {"replication_specs", test_replication_specs},
    {"record_round_trip", test_record_round_trip},
    {"catalogue_persists", test_catalogue_persists},
    {"merge_spreads_creates_and_drops", test_merge_spreads_creates_and_drops},
    {NULL, NULL}};
  return testutil_run("schema", cases, argc, argv);
}
