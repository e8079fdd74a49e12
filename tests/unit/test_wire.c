/*
** Unit tests of wire.c: every request type decoded from messages built with
** the generated protobuf-c API, every validation error with its code, and
** responses encoded then unpacked again.
**
** With CELLAR_FUZZ_CORPUS=dir, the test "write_corpus" also writes the seed
** inputs of tests/fuzz/fuzz_frame.c into dir (see docs/protocol.md).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cellar.pb-c.h"
#include "frame.h"
#include "wire.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static uint8_t *pack(const void *msg, size_t *n) {
  const ProtobufCMessage *m = msg;
  *n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*n ? *n : 1);
  CU_ASSERT_EQUAL(protobuf_c_message_pack(m, b), *n);
  return b;
}

static char err[256];

/* Packs msg, decodes it as a frame of the given type. */
static int dec(unsigned type, const void *msg, request **r) {
  size_t n;
  uint8_t *b = pack(msg, &n);
  memset(err, 0, sizeof(err));
  int rc = wire_decode_request(type, 1234, b, n, r, err, sizeof(err));
  free(b);
  if (rc != 0) CU_ASSERT_PTR_NULL(*r);
  return rc;
}

/* Decodes, expects code, checks that err mentions each of the words. */
static void expect(unsigned type, const void *msg, int code, const char *w1,
                   const char *w2) {
  request *r = (request *)1;
  int rc = dec(type, msg, &r);
  CU_ASSERT_EQUAL(rc, code);
  if (rc != code)
    fprintf(stderr, "\n    want %s, got %s: %s\n", cellar_err_name(code),
            cellar_err_name(rc), err);
  if (rc == 0) {
    wire_request_free(r);
    return;
  }
  CU_ASSERT(err[0] != '\0');
  if (w1 && !strstr(err, w1)) {
    fprintf(stderr, "\n    \"%s\" not in \"%s\"\n", w1, err);
    CU_FAIL("message lacks a word");
  }
  if (w2 && !strstr(err, w2)) {
    fprintf(stderr, "\n    \"%s\" not in \"%s\"\n", w2, err);
    CU_FAIL("message lacks a word");
  }
}

static int bytes_eq(cbytes b, const void *p, size_t n) {
  return b.n == n && (n == 0 || memcmp(b.p, p, n) == 0);
}

static ProtobufCBinaryData bin(const void *p, size_t n) {
  ProtobufCBinaryData d = {n, (uint8_t *)p};
  return d;
}
#define BIN(s) bin((s), sizeof(s) - 1)

/* A valid PUT: ks.t, partition "pk", rows r0 {a=1, b=""} and "" {c=3}. */
typedef struct put_fixture {
  Cellar__Wire__PutRequest m;
  Cellar__Wire__Row rows[2], *rowp[2];
  Cellar__Wire__Cell cells[3], *cellp[3];
} put_fixture;

static void put_init(put_fixture *f) {
  cellar__wire__put_request__init(&f->m);
  f->m.keyspace = "ks";
  f->m.table = "t";
  f->m.partition = BIN("pk");
  for (int i = 0; i < 3; i++) {
    cellar__wire__cell__init(&f->cells[i]);
    f->cellp[i] = &f->cells[i];
  }
  f->cells[0].name = BIN("a");
  f->cells[0].value = BIN("1");
  f->cells[1].name = BIN("b");
  f->cells[2].name = BIN("c");
  f->cells[2].value = BIN("3");
  for (int i = 0; i < 2; i++) {
    cellar__wire__row__init(&f->rows[i]);
    f->rowp[i] = &f->rows[i];
  }
  f->rows[0].clustering = BIN("r0");
  f->rows[0].n_cells = 2;
  f->rows[0].cells = &f->cellp[0];
  f->rows[1].n_cells = 1;
  f->rows[1].cells = &f->cellp[2];
  f->m.n_rows = 2;
  f->m.rows = f->rowp;
}

static uint8_t *big(size_t n) {
  uint8_t *p = malloc(n);
  memset(p, 'x', n);
  return p;
}

/* ------------------------------------------------------ request decode */

static void test_ping(void) {
  request *r = NULL;
  static const uint8_t junk[] = {0xFF, 0x00, 0x13};
  CU_ASSERT_EQUAL(wire_decode_request(FRAME_PING, 9, junk, sizeof(junk), &r,
                                      err, sizeof(err)), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->type, FRAME_PING);
  CU_ASSERT_EQUAL(r->id, 9);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "");
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_ONE);
  wire_request_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(wire_decode_request(FRAME_PING, 10, NULL, 0, &r, NULL, 0), 0);
  CU_ASSERT_PTR_NOT_NULL(r);
  wire_request_free(r);
  wire_request_free(NULL);
}

static void test_put_round_trip(void) {
  put_fixture f;
  put_init(&f);
  f.m.ttl = 3600;
  f.m.timestamp = 1700000000123456;
  f.m.consistency = CELLAR_CL_QUORUM;
  f.m.context = BIN("ctx");
  request *r = NULL;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_PUT, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_PUT);
  CU_ASSERT_EQUAL(r->id, 1234);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "ks");
  CU_ASSERT_STRING_EQUAL(r->table, "t");
  CU_ASSERT(bytes_eq(r->partition, "pk", 2));
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_QUORUM);
  CU_ASSERT_EQUAL(r->ttl, 3600);
  CU_ASSERT_EQUAL(r->timestamp, 1700000000123456);
  CU_ASSERT_EQUAL_FATAL(r->nrows, 2);
  CU_ASSERT(bytes_eq(r->rows[0].ck, "r0", 2));
  CU_ASSERT_EQUAL_FATAL(r->rows[0].ncells, 2);
  CU_ASSERT(bytes_eq(r->rows[0].cells[0].name, "a", 1));
  CU_ASSERT(bytes_eq(r->rows[0].cells[0].value, "1", 1));
  CU_ASSERT(bytes_eq(r->rows[0].cells[1].name, "b", 1));
  CU_ASSERT_EQUAL(r->rows[0].cells[1].value.n, 0);  /* a legal empty value */
  CU_ASSERT_EQUAL(r->rows[1].ck.n, 0);              /* empty clustering */
  CU_ASSERT_EQUAL_FATAL(r->rows[1].ncells, 1);
  CU_ASSERT(bytes_eq(r->rows[1].cells[0].name, "c", 1));
  CU_ASSERT(bytes_eq(r->rows[1].cells[0].value, "3", 1));
  CU_ASSERT_PTR_NOT_NULL(r->pb);
  CU_ASSERT_EQUAL(r->ncols, 0);
  wire_request_free(r);

  /* consistency 0 is ONE; ANY is a write level */
  f.m.consistency = 0;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_PUT, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_ONE);
  wire_request_free(r);
  f.m.consistency = CELLAR_CL_ANY;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_PUT, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_ANY);
  wire_request_free(r);
}

/* The limits themselves are accepted. */
static void test_put_at_limits(void) {
  put_fixture f;
  put_init(&f);
  uint8_t *k = big(CELLAR_MAX_KEY_BYTES), *v = big(CELLAR_MAX_VALUE_BYTES);
  uint8_t *c = big(CELLAR_MAX_COLUMN_BYTES);
  f.m.partition = bin(k, CELLAR_MAX_KEY_BYTES);
  f.rows[0].clustering = bin(k, CELLAR_MAX_KEY_BYTES);
  f.cells[0].name = bin(c, CELLAR_MAX_COLUMN_BYTES);
  f.cells[0].value = bin(v, CELLAR_MAX_VALUE_BYTES);
  char name[CELLAR_MAX_NAME_BYTES + 1];
  memset(name, 'n', CELLAR_MAX_NAME_BYTES);
  name[CELLAR_MAX_NAME_BYTES] = '\0';
  f.m.keyspace = name;
  f.m.table = name;
  f.m.ttl = 630720000;
  request *r = NULL;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_PUT, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->partition.n, CELLAR_MAX_KEY_BYTES);
  CU_ASSERT_EQUAL(r->rows[0].cells[0].value.n, CELLAR_MAX_VALUE_BYTES);
  CU_ASSERT_EQUAL(strlen(r->keyspace), CELLAR_MAX_NAME_BYTES);
  wire_request_free(r);
  free(k);
  free(v);
  free(c);
}

static void test_get_round_trip(void) {
  Cellar__Wire__GetRequest m = CELLAR__WIRE__GET_REQUEST__INIT;
  ProtobufCBinaryData cols[2] = {BIN("c1"), BIN("col2")};
  m.keyspace = "Shop_1";
  m.table = "items";
  m.partition = BIN("sku\0001");
  m.clustering = BIN("red");
  m.n_columns = 2;
  m.columns = cols;
  m.consistency = CELLAR_CL_LOCAL_QUORUM;
  request *r = NULL;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_GET, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_GET);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "Shop_1");
  CU_ASSERT_STRING_EQUAL(r->table, "items");
  CU_ASSERT(bytes_eq(r->partition, "sku\0001", 5));
  CU_ASSERT(bytes_eq(r->ck, "red", 3));
  CU_ASSERT_EQUAL_FATAL(r->ncols, 2);
  CU_ASSERT(bytes_eq(r->cols[0], "c1", 2));
  CU_ASSERT(bytes_eq(r->cols[1], "col2", 4));
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_LOCAL_QUORUM);
  CU_ASSERT_EQUAL(r->nrows, 0);
  wire_request_free(r);
  /* no columns: all of them */
  m.n_columns = 0;
  m.clustering = bin(NULL, 0);
  m.consistency = 0;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_GET, &m, &r), 0);
  CU_ASSERT_EQUAL(r->ncols, 0);
  CU_ASSERT_EQUAL(r->ck.n, 0);
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_ONE);
  wire_request_free(r);
}

static void test_slice_round_trip(void) {
  Cellar__Wire__SliceRequest m = CELLAR__WIRE__SLICE_REQUEST__INIT;
  ProtobufCBinaryData cols[1] = {BIN("price")};
  m.keyspace = "ks";
  m.table = "t";
  m.partition = BIN("p");
  m.start = BIN("a");
  m.has_start = 1;
  m.end = BIN("m");
  m.has_end = 1;
  m.limit = 50;
  m.cursor = BIN("\001cur");
  m.n_columns = 1;
  m.columns = cols;
  m.consistency = CELLAR_CL_ALL;
  request *r = NULL;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_SLICE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_SLICE);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "ks");
  CU_ASSERT_STRING_EQUAL(r->table, "t");
  CU_ASSERT(bytes_eq(r->partition, "p", 1));
  CU_ASSERT(r->has_start);
  CU_ASSERT(bytes_eq(r->start, "a", 1));
  CU_ASSERT(r->has_end);
  CU_ASSERT(bytes_eq(r->end, "m", 1));
  CU_ASSERT_EQUAL(r->limit, 50);
  CU_ASSERT(bytes_eq(r->cursor, "\001cur", 4));
  CU_ASSERT_EQUAL_FATAL(r->ncols, 1);
  CU_ASSERT(bytes_eq(r->cols[0], "price", 5));
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_ALL);
  wire_request_free(r);
  /* bounds not flagged are open, whatever bytes came with them; an empty
  ** bound that is flagged is a real bound (the empty clustering key) */
  m.has_start = 0;
  m.end = bin(NULL, 0);
  m.n_columns = 0;
  m.cursor = bin(NULL, 0);
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_SLICE, &m, &r), 0);
  CU_ASSERT(!r->has_start);
  CU_ASSERT_EQUAL(r->start.n, 0);
  CU_ASSERT(r->has_end);
  CU_ASSERT_EQUAL(r->end.n, 0);
  CU_ASSERT_EQUAL(r->cursor.n, 0);
  CU_ASSERT_EQUAL(r->ncols, 0);
  CU_ASSERT_PTR_NULL(r->cols);
  wire_request_free(r);
}

static void test_delete_round_trip(void) {
  Cellar__Wire__DeleteRequest m = CELLAR__WIRE__DELETE_REQUEST__INIT;
  ProtobufCBinaryData cols[2] = {BIN("a"), BIN("b")};
  m.keyspace = "ks";
  m.table = "t";
  m.partition = BIN("p");
  m.timestamp = 42;
  m.consistency = CELLAR_CL_TWO;
  request *r = NULL;
  /* PARTITION */
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DELETE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_DELETE);
  CU_ASSERT_EQUAL(r->scope, 0);
  CU_ASSERT(bytes_eq(r->partition, "p", 1));
  CU_ASSERT_EQUAL(r->timestamp, 42);
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_TWO);
  CU_ASSERT_EQUAL(r->ncols, 0);
  wire_request_free(r);
  /* ROW */
  m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__ROW;
  m.clustering = BIN("row1");
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DELETE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->scope, 1);
  CU_ASSERT(bytes_eq(r->ck, "row1", 4));
  wire_request_free(r);
  /* CELLS */
  m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS;
  m.n_columns = 2;
  m.columns = cols;
  m.consistency = CELLAR_CL_ANY;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DELETE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->scope, 2);
  CU_ASSERT(bytes_eq(r->ck, "row1", 4));
  CU_ASSERT_EQUAL_FATAL(r->ncols, 2);
  CU_ASSERT(bytes_eq(r->cols[0], "a", 1));
  CU_ASSERT(bytes_eq(r->cols[1], "b", 1));
  CU_ASSERT_EQUAL(r->consistency, CELLAR_CL_ANY);
  wire_request_free(r);
}

static void test_admin_round_trip(void) {
  Cellar__Wire__AdminRequest m = CELLAR__WIRE__ADMIN_REQUEST__INIT;
  m.command = "snapshot";
  m.argument = "before-upgrade";
  request *r = NULL;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_ADMIN, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_ADMIN);
  CU_ASSERT_STRING_EQUAL(r->command, "snapshot");
  CU_ASSERT_STRING_EQUAL(r->argument, "before-upgrade");
  wire_request_free(r);
  m.command = "info";
  m.argument = "";
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_ADMIN, &m, &r), 0);
  CU_ASSERT_STRING_EQUAL(r->command, "info");
  CU_ASSERT_STRING_EQUAL(r->argument, "");
  wire_request_free(r);
  m.command = "";
  expect(FRAME_ADMIN, &m, CELLAR_EINVAL, "command", NULL);
}

/* A CREATE_KEYSPACE with NTS over ndcs datacenters dc0..dcN. */
typedef struct ks_fixture {
  Cellar__Wire__SchemaRequest m;
  Cellar__Wire__KeyspaceDef k;
  Cellar__Wire__Replication rep;
  Cellar__Wire__Replication__DatacentersEntry e[20], *ep[20];
  char names[20][8];
} ks_fixture;

static void ks_init(ks_fixture *f, const char *strategy, size_t ndcs) {
  cellar__wire__schema_request__init(&f->m);
  cellar__wire__keyspace_def__init(&f->k);
  cellar__wire__replication__init(&f->rep);
  f->m.keyspace = &f->k;
  f->k.name = "catalog";
  f->k.replication = &f->rep;
  f->rep.strategy = (char *)strategy;
  for (size_t i = 0; i < 20; i++) {
    cellar__wire__replication__datacenters_entry__init(&f->e[i]);
    snprintf(f->names[i], sizeof(f->names[i]), "dc%zu", i);
    f->e[i].key = f->names[i];
    f->e[i].value = (uint32_t)(i % 5 + 1);
    f->ep[i] = &f->e[i];
  }
  f->rep.n_datacenters = ndcs;
  f->rep.datacenters = f->ep;
}

static void test_create_keyspace(void) {
  ks_fixture f;
  request *r = NULL;
  ks_init(&f, "SimpleStrategy", 0);
  f.rep.replication_factor = 3;
  f.m.if_not_exists = 1;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_CREATE_KEYSPACE, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_CREATE_KEYSPACE);
  CU_ASSERT_STRING_EQUAL(r->ks_def.name, "catalog");
  CU_ASSERT_STRING_EQUAL(r->keyspace, "catalog");
  CU_ASSERT_EQUAL(r->ks_def.strategy, REPL_SIMPLE);
  CU_ASSERT_EQUAL(r->ks_def.rf, 3);
  CU_ASSERT_EQUAL(r->ks_def.ndcs, 0);
  CU_ASSERT(r->if_not_exists);
  CU_ASSERT(!r->if_exists);
  wire_request_free(r);

  ks_init(&f, "NetworkTopologyStrategy", 3);
  f.e[1].key = "us-east.1";
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_CREATE_KEYSPACE, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->ks_def.strategy, REPL_NETWORK_TOPOLOGY);
  CU_ASSERT_EQUAL_FATAL(r->ks_def.ndcs, 3);
  CU_ASSERT_STRING_EQUAL(r->ks_def.dcs[0].name, "dc0");
  CU_ASSERT_EQUAL(r->ks_def.dcs[0].rf, 1);
  CU_ASSERT_STRING_EQUAL(r->ks_def.dcs[1].name, "us-east.1");
  CU_ASSERT_EQUAL(r->ks_def.dcs[1].rf, 2);
  CU_ASSERT_STRING_EQUAL(r->ks_def.dcs[2].name, "dc2");
  CU_ASSERT_EQUAL(r->ks_def.dcs[2].rf, 3);
  CU_ASSERT(!r->if_not_exists);
  wire_request_free(r);

  /* the limits themselves: 16 DCs, rf 100, 48-byte DC names */
  ks_init(&f, "NetworkTopologyStrategy", SCHEMA_DC_MAX);
  char dc48[49];
  memset(dc48, 'd', 48);
  dc48[48] = '\0';
  f.e[0].key = dc48;
  f.e[0].value = 100;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_CREATE_KEYSPACE, &f.m, &r), 0);
  CU_ASSERT_EQUAL(r->ks_def.ndcs, SCHEMA_DC_MAX);
  CU_ASSERT_STRING_EQUAL(r->ks_def.dcs[0].name, dc48);
  CU_ASSERT_EQUAL(r->ks_def.dcs[0].rf, 100);
  wire_request_free(r);
}

static void test_create_keyspace_errors(void) {
  ks_fixture f;
  ks_init(&f, "SimpleStrategy", 0);
  f.rep.replication_factor = 0;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "replication factor 0", "1..100");
  f.rep.replication_factor = 101;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "101", NULL);
  f.rep.replication_factor = 100;
  expect(FRAME_CREATE_KEYSPACE, &f.m, 0, NULL, NULL);
  f.rep.n_datacenters = 1;                 /* datacenters with Simple */
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "SimpleStrategy", NULL);
  f.rep.n_datacenters = 0;
  f.k.name = "9lives";
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EBADNAME, "9lives", NULL);
  f.k.name = "";
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EBADNAME, "keyspace", NULL);
  f.k.name = "catalog";
  f.k.replication = NULL;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "replication", NULL);
  f.m.keyspace = NULL;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "keyspace", NULL);

  ks_init(&f, "OldNetworkTopologyStrategy", 0);
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "OldNetworkTopologyStrategy", NULL);
  ks_init(&f, "", 0);
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "strategy", NULL);

  ks_init(&f, "NetworkTopologyStrategy", 0);
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "datacenters", NULL);
  ks_init(&f, "NetworkTopologyStrategy", SCHEMA_DC_MAX + 1);
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "17", NULL);
  ks_init(&f, "NetworkTopologyStrategy", 2);
  f.e[1].value = 0;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "dc1", "1..100");
  f.e[1].value = 101;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "101", NULL);
  f.e[1].value = 1;
  f.e[1].key = "";
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EBADNAME, "datacenter", NULL);
  char dc49[50];
  memset(dc49, 'd', 49);
  dc49[49] = '\0';
  f.e[1].key = dc49;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EBADNAME, "datacenter", NULL);
  f.e[1].key = "dc=1,x";                  /* separators of the spec form */
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EBADNAME, "dc=1,x", NULL);
  f.e[1].key = "dc0";                      /* twice */
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "dc0", "twice");
  f.e[1].key = "dc1";
  f.rep.replication_factor = 3;
  expect(FRAME_CREATE_KEYSPACE, &f.m, CELLAR_EINVAL, "replication_factor", NULL);
}

static void test_create_table(void) {
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  Cellar__Wire__TableDef t = CELLAR__WIRE__TABLE_DEF__INIT;
  m.table = &t;
  t.keyspace = "ks";
  t.name = "items";
  t.id = 0xDEADBEEF;                      /* ignored in requests */
  request *r = NULL;
  /* defaults */
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_CREATE_TABLE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_CREATE_TABLE);
  CU_ASSERT_STRING_EQUAL(r->table_def.keyspace, "ks");
  CU_ASSERT_STRING_EQUAL(r->table_def.name, "items");
  CU_ASSERT_STRING_EQUAL(r->keyspace, "ks");
  CU_ASSERT_STRING_EQUAL(r->table, "items");
  CU_ASSERT_EQUAL(r->table_def.id, 0);
  CU_ASSERT_EQUAL(r->table_def.policy, POLICY_SIBLINGS);
  CU_ASSERT_EQUAL(r->table_def.gc_grace, SCHEMA_DEFAULT_GC_GRACE);
  CU_ASSERT_EQUAL(r->table_def.default_ttl, 0);
  wire_request_free(r);
  /* everything set; gc_grace 0 meant literally */
  t.conflict_policy = "lww";
  t.has_gc_grace = 1;
  t.gc_grace_seconds = 0;
  t.default_ttl = 86400;
  m.if_not_exists = 1;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_CREATE_TABLE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->table_def.policy, POLICY_LWW);
  CU_ASSERT_EQUAL(r->table_def.gc_grace, 0);
  CU_ASSERT_EQUAL(r->table_def.default_ttl, 86400);
  CU_ASSERT(r->if_not_exists);
  wire_request_free(r);
  t.conflict_policy = "siblings";
  t.has_gc_grace = 0;
  t.gc_grace_seconds = 3600;              /* non-zero is literal anyway */
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_CREATE_TABLE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->table_def.policy, POLICY_SIBLINGS);
  CU_ASSERT_EQUAL(r->table_def.gc_grace, 3600);
  wire_request_free(r);

  t.conflict_policy = "newest";
  expect(FRAME_CREATE_TABLE, &m, CELLAR_EINVAL, "newest", NULL);
  t.conflict_policy = "";
  t.name = "bad name";
  expect(FRAME_CREATE_TABLE, &m, CELLAR_EBADNAME, "bad name", NULL);
  t.name = "items";
  t.keyspace = "";
  expect(FRAME_CREATE_TABLE, &m, CELLAR_EBADNAME, "keyspace", NULL);
  t.keyspace = "ks";
  t.default_ttl = 630720001;
  expect(FRAME_CREATE_TABLE, &m, CELLAR_EINVAL, "630720001", NULL);
  m.table = NULL;
  expect(FRAME_CREATE_TABLE, &m, CELLAR_EINVAL, "table", NULL);
}

static void test_drop_and_describe(void) {
  Cellar__Wire__SchemaRequest m = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  request *r = NULL;
  m.keyspace_name = "ks";
  m.table_name = "t";
  m.if_exists = 1;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DROP_KEYSPACE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_DROP_KEYSPACE);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "ks");
  CU_ASSERT(r->if_exists);
  wire_request_free(r);
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DROP_TABLE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_DROP_TABLE);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "ks");
  CU_ASSERT_STRING_EQUAL(r->table, "t");
  CU_ASSERT(r->if_exists);
  wire_request_free(r);
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DESCRIBE, &m, &r), 0);
  CU_ASSERT_EQUAL(r->type, FRAME_DESCRIBE);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "ks");
  wire_request_free(r);
  m.keyspace_name = "";                    /* DESCRIBE all */
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_DESCRIBE, &m, &r), 0);
  CU_ASSERT_STRING_EQUAL(r->keyspace, "");
  wire_request_free(r);
  expect(FRAME_DROP_KEYSPACE, &m, CELLAR_EBADNAME, "keyspace", NULL);
  m.keyspace_name = "a-b";
  expect(FRAME_DESCRIBE, &m, CELLAR_EBADNAME, "a-b", NULL);
  expect(FRAME_DROP_TABLE, &m, CELLAR_EBADNAME, "a-b", NULL);
  m.keyspace_name = "ks";
  m.table_name = "";
  expect(FRAME_DROP_TABLE, &m, CELLAR_EBADNAME, "table", NULL);
  m.table_name = "t\001";
  expect(FRAME_DROP_TABLE, &m, CELLAR_EBADNAME, "t?", NULL);  /* shown safely */
}

/* ---------------------------------------------------- request errors */

static void test_bad_type_and_malformed(void) {
  static const uint8_t junk[] = {0x0A, 0x05, 'a'};  /* truncated field */
  /* peer types are not requests of the client port */
  static const unsigned types[] = {0, FRAME_TYPE_END, FRAME_GOSSIP,
                                   FRAME_SCHEMA_PUSH, 100, 255, 0x10000};
  request *r = (request *)1;
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    CU_ASSERT_EQUAL(wire_decode_request(types[i], 1, junk, sizeof(junk), &r, err,
                                        sizeof(err)), CELLAR_EBADTYPE);
    CU_ASSERT_PTR_NULL(r);
  }
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "65536"));
  static const struct { unsigned type; const char *msg; } m[] = {
    {FRAME_PUT, "malformed PutRequest"},
    {FRAME_GET, "malformed GetRequest"},
    {FRAME_SLICE, "malformed SliceRequest"},
    {FRAME_DELETE, "malformed DeleteRequest"},
    {FRAME_ADMIN, "malformed AdminRequest"},
    {FRAME_CREATE_KEYSPACE, "malformed SchemaRequest"},
    {FRAME_DROP_KEYSPACE, "malformed SchemaRequest"},
    {FRAME_CREATE_TABLE, "malformed SchemaRequest"},
    {FRAME_DROP_TABLE, "malformed SchemaRequest"},
    {FRAME_DESCRIBE, "malformed SchemaRequest"},
  };
  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
    r = (request *)1;
    CU_ASSERT_EQUAL(wire_decode_request(m[i].type, 1, junk, sizeof(junk), &r, err,
                                        sizeof(err)), CELLAR_EPROTO);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_STRING_EQUAL(err, m[i].msg);
  }
  /* the error text is cut to errlen, NUL-terminated; no err buffer is fine */
  char small[8];
  memset(small, 'Z', sizeof(small));
  CU_ASSERT_EQUAL(wire_decode_request(FRAME_PUT, 1, junk, sizeof(junk), &r, small,
                                      sizeof(small)), CELLAR_EPROTO);
  CU_ASSERT_STRING_EQUAL(small, "malform");
  CU_ASSERT_EQUAL(wire_decode_request(FRAME_PUT, 1, junk, sizeof(junk), &r, NULL, 0),
                  CELLAR_EPROTO);
  /* an empty payload is an empty message: here a PUT without names */
  CU_ASSERT_EQUAL(wire_decode_request(FRAME_PUT, 1, NULL, 0, &r, err, sizeof(err)),
                  CELLAR_EBADNAME);
}

static void test_put_errors(void) {
  put_fixture f;
  put_init(&f);
  uint8_t *k = big(CELLAR_MAX_KEY_BYTES + 1), *v = big(CELLAR_MAX_VALUE_BYTES + 1);

  f.m.keyspace = "ks!";
  expect(FRAME_PUT, &f.m, CELLAR_EBADNAME, "keyspace name \"ks!\"", NULL);
  f.m.keyspace = "";
  expect(FRAME_PUT, &f.m, CELLAR_EBADNAME, "keyspace", NULL);
  char n49[50];
  memset(n49, 'n', 49);
  n49[49] = '\0';
  f.m.keyspace = n49;
  expect(FRAME_PUT, &f.m, CELLAR_EBADNAME, "keyspace", NULL);
  f.m.keyspace = "ks";
  f.m.table = "_ok_but_then\xff";
  expect(FRAME_PUT, &f.m, CELLAR_EBADNAME, "table name", NULL);
  f.m.table = "t";

  f.m.partition = bin(NULL, 0);
  expect(FRAME_PUT, &f.m, CELLAR_EINVAL, "partition key", "empty");
  f.m.partition = bin(k, CELLAR_MAX_KEY_BYTES + 1);
  expect(FRAME_PUT, &f.m, CELLAR_ETOOBIG, "65536", "65535");
  f.m.partition = BIN("pk");

  f.rows[1].clustering = bin(k, CELLAR_MAX_KEY_BYTES + 1);
  expect(FRAME_PUT, &f.m, CELLAR_ETOOBIG, "clustering key is 65536", "65535");
  f.rows[1].clustering = bin(NULL, 0);

  f.cells[2].name = bin(NULL, 0);
  expect(FRAME_PUT, &f.m, CELLAR_EINVAL, "column name", "empty");
  f.cells[2].name = bin(k, CELLAR_MAX_COLUMN_BYTES + 1);
  expect(FRAME_PUT, &f.m, CELLAR_ETOOBIG, "1025", "1024");
  f.cells[2].name = BIN("c");

  f.cells[1].value = bin(v, CELLAR_MAX_VALUE_BYTES + 1);
  expect(FRAME_PUT, &f.m, CELLAR_ETOOBIG, "1048577", "1048576");
  f.cells[1].value = bin(NULL, 0);

  f.m.consistency = 10;
  expect(FRAME_PUT, &f.m, CELLAR_EBADCL, "10", NULL);
  f.m.consistency = 0xFFFFFFFFu;
  expect(FRAME_PUT, &f.m, CELLAR_EBADCL, "4294967295", NULL);
  f.m.consistency = 0;

  f.m.timestamp = -1;
  expect(FRAME_PUT, &f.m, CELLAR_EINVAL, "timestamp", NULL);
  f.m.timestamp = 0;
  f.m.ttl = 630720001;
  expect(FRAME_PUT, &f.m, CELLAR_EINVAL, "ttl", NULL);
  f.m.ttl = 0;

  f.rows[1].n_cells = 0;
  expect(FRAME_PUT, &f.m, CELLAR_EEMPTY, "row 1", NULL);
  f.rows[1].n_cells = 1;
  f.m.n_rows = 0;
  expect(FRAME_PUT, &f.m, CELLAR_EEMPTY, "rows", NULL);
  f.m.n_rows = 2;
  expect(FRAME_PUT, &f.m, 0, NULL, NULL);
  free(k);
  free(v);
}

static void test_read_errors(void) {
  Cellar__Wire__GetRequest g = CELLAR__WIRE__GET_REQUEST__INIT;
  Cellar__Wire__SliceRequest s = CELLAR__WIRE__SLICE_REQUEST__INIT;
  ProtobufCBinaryData cols[2] = {BIN("a"), {0, NULL}};
  uint8_t *k = big(CELLAR_MAX_KEY_BYTES + 1);
  g.keyspace = s.keyspace = "ks";
  g.table = s.table = "t";
  g.partition = s.partition = BIN("p");

  g.consistency = CELLAR_CL_ANY;          /* ANY: writes only */
  expect(FRAME_GET, &g, CELLAR_EBADCL, "ANY", NULL);
  g.consistency = 12;
  expect(FRAME_GET, &g, CELLAR_EBADCL, "12", NULL);
  g.consistency = CELLAR_CL_EACH_QUORUM;
  expect(FRAME_GET, &g, 0, NULL, NULL);
  g.clustering = bin(k, CELLAR_MAX_KEY_BYTES + 1);
  expect(FRAME_GET, &g, CELLAR_ETOOBIG, "clustering", "65535");
  g.clustering = bin(NULL, 0);
  g.n_columns = 2;
  g.columns = cols;
  expect(FRAME_GET, &g, CELLAR_EINVAL, "column name", NULL);
  cols[1] = bin(k, CELLAR_MAX_COLUMN_BYTES + 1);
  expect(FRAME_GET, &g, CELLAR_ETOOBIG, "1025", NULL);
  cols[1] = BIN("b");
  g.table = "";
  expect(FRAME_GET, &g, CELLAR_EBADNAME, "table", NULL);
  g.table = "t";
  g.partition = bin(NULL, 0);
  expect(FRAME_GET, &g, CELLAR_EINVAL, "partition", NULL);

  s.consistency = CELLAR_CL_ANY;
  expect(FRAME_SLICE, &s, CELLAR_EBADCL, "ANY", NULL);
  s.consistency = 0;
  s.start = bin(k, CELLAR_MAX_KEY_BYTES + 1);
  s.has_start = 1;
  expect(FRAME_SLICE, &s, CELLAR_ETOOBIG, "start", "65535");
  s.start = bin(NULL, 0);
  s.end = bin(k, CELLAR_MAX_KEY_BYTES + 1);
  expect(FRAME_SLICE, &s, CELLAR_ETOOBIG, "end", NULL);
  s.end = bin(NULL, 0);
  s.n_columns = 1;
  s.columns = &cols[1];
  cols[1] = bin(NULL, 0);
  expect(FRAME_SLICE, &s, CELLAR_EINVAL, "column", NULL);
  s.n_columns = 0;
  s.keyspace = "1ks";
  expect(FRAME_SLICE, &s, CELLAR_EBADNAME, "1ks", NULL);
  s.keyspace = "ks";
  expect(FRAME_SLICE, &s, 0, NULL, NULL);
  free(k);
}

static void test_delete_errors(void) {
  Cellar__Wire__DeleteRequest m = CELLAR__WIRE__DELETE_REQUEST__INIT;
  ProtobufCBinaryData cols[1] = {BIN("a")};
  m.keyspace = "ks";
  m.table = "t";
  m.partition = BIN("p");
  m.scope = 3;
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "scope 3", NULL);
  m.scope = -1;
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "scope -1", NULL);
  m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS;
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "CELLS", "columns");
  /* what a client forgetting the scope would send: refused, not a
  ** partition delete */
  m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__PARTITION;
  m.clustering = BIN("row");
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "PARTITION", NULL);
  m.clustering = bin(NULL, 0);
  m.n_columns = 1;
  m.columns = cols;
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "columns", NULL);
  m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__ROW;
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "ROW", NULL);
  m.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS;
  cols[0] = bin(NULL, 0);
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "column name", NULL);
  cols[0] = BIN("a");
  m.consistency = 99;
  expect(FRAME_DELETE, &m, CELLAR_EBADCL, "99", NULL);
  m.consistency = 0;
  m.timestamp = -5;
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "timestamp", NULL);
  m.timestamp = 0;
  m.partition = bin(NULL, 0);
  expect(FRAME_DELETE, &m, CELLAR_EINVAL, "partition", NULL);
  m.partition = BIN("p");
  expect(FRAME_DELETE, &m, 0, NULL, NULL);
}

/* -------------------------------------------------- response encoding */

static Cellar__Wire__Response *unpack_frame(const uint8_t *b, size_t n,
                                            unsigned type, uint32_t id) {
  frame_header h;
  CU_ASSERT_FATAL(n >= FRAME_HEADER_SIZE);
  CU_ASSERT_EQUAL_FATAL(frame_header_decode(b, CELLAR_MAX_FRAME_BYTES, &h), 0);
  CU_ASSERT_EQUAL(h.type, type);
  CU_ASSERT_EQUAL(h.request_id, id);
  CU_ASSERT_EQUAL(h.flags, FRAME_FLAG_RESPONSE);
  CU_ASSERT_EQUAL_FATAL(h.length, n - FRAME_HEADER_SIZE);
  Cellar__Wire__Response *r =
      cellar__wire__response__unpack(NULL, h.length, b + FRAME_HEADER_SIZE);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  return r;
}

static int bin_eq(ProtobufCBinaryData d, const void *p, size_t n) {
  return d.len == n && (n == 0 || memcmp(d.data, p, n) == 0);
}

static void test_response_rows(void) {
  res_cell c0[2] = {
    {(const uint8_t *)"a", 1, (const uint8_t *)"1", 1, 1700000000000001, 0, 0, NULL},
    {(const uint8_t *)"b", 1, (const uint8_t *)"", 0, -7, 1800000000, 0, NULL},
  };
  res_cell c1[1] = {
    {(const uint8_t *)"c\0d", 3, (const uint8_t *)"\0\1\2", 3, 5, 6, 0, NULL},
  };
  res_row rows[3] = {
    {(const uint8_t *)"r0", 2, 2, 2, c0, NULL, 0},
    {NULL, 0, 1, 1, c1, NULL, 0},
    {(const uint8_t *)"r2", 2, 0, 0, NULL, NULL, 0},
  };
  result res;
  memset(&res, 0, sizeof(res));
  res.rows = rows;
  res.nrows = 3;
  res.cursor = (const uint8_t *)"\1r2";
  res.ncursor = 3;
  size_t n = 0;
  uint8_t *b = wire_encode_response(FRAME_SLICE, 0xCAFEBABE, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  Cellar__Wire__Response *r = unpack_frame(b, n, FRAME_SLICE, 0xCAFEBABE);
  CU_ASSERT_EQUAL(r->code, 0);
  CU_ASSERT_STRING_EQUAL(r->message, "");
  CU_ASSERT_EQUAL_FATAL(r->n_rows, 3);
  CU_ASSERT(bin_eq(r->rows[0]->clustering, "r0", 2));
  CU_ASSERT_EQUAL_FATAL(r->rows[0]->n_cells, 2);
  CU_ASSERT(bin_eq(r->rows[0]->cells[0]->name, "a", 1));
  CU_ASSERT(bin_eq(r->rows[0]->cells[0]->value, "1", 1));
  CU_ASSERT_EQUAL(r->rows[0]->cells[0]->timestamp, 1700000000000001);
  CU_ASSERT_EQUAL(r->rows[0]->cells[0]->expires_at, 0);
  CU_ASSERT(bin_eq(r->rows[0]->cells[1]->name, "b", 1));
  CU_ASSERT_EQUAL(r->rows[0]->cells[1]->value.len, 0);
  CU_ASSERT_EQUAL(r->rows[0]->cells[1]->timestamp, -7);
  CU_ASSERT_EQUAL(r->rows[0]->cells[1]->expires_at, 1800000000);
  CU_ASSERT_EQUAL(r->rows[1]->clustering.len, 0);
  CU_ASSERT_EQUAL_FATAL(r->rows[1]->n_cells, 1);
  CU_ASSERT(bin_eq(r->rows[1]->cells[0]->name, "c\0d", 3));
  CU_ASSERT(bin_eq(r->rows[1]->cells[0]->value, "\0\1\2", 3));
  CU_ASSERT_EQUAL(r->rows[1]->cells[0]->timestamp, 5);
  CU_ASSERT_EQUAL(r->rows[1]->cells[0]->expires_at, 6);
  CU_ASSERT(bin_eq(r->rows[2]->clustering, "r2", 2));
  CU_ASSERT_EQUAL(r->rows[2]->n_cells, 0);
  CU_ASSERT(bin_eq(r->cursor, "\1r2", 3));
  CU_ASSERT_EQUAL(r->n_keyspaces, 0);
  CU_ASSERT_EQUAL(r->n_tables, 0);
  CU_ASSERT_EQUAL(r->n_info, 0);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);

  /* an empty success: header and an empty message */
  memset(&res, 0, sizeof(res));
  b = wire_encode_response(FRAME_PUT, 1, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(n, FRAME_HEADER_SIZE);
  r = unpack_frame(b, n, FRAME_PUT, 1);
  CU_ASSERT_EQUAL(r->code, 0);
  CU_ASSERT_EQUAL(r->n_rows, 0);
  CU_ASSERT_EQUAL(r->cursor.len, 0);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);
}

/* Versions: contexts on writes, siblings and contexts on reads, and the
** forwarded write envelope. */
static void test_versions(void) {
  put_fixture f;
  put_init(&f);
  f.m.context = BIN("ctx");
  f.rows[1].context = BIN("row1");
  request *r = NULL;
  CU_ASSERT_EQUAL_FATAL(dec(FRAME_PUT, &f.m, &r), 0);
  CU_ASSERT(bytes_eq(r->context, "ctx", 3));
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->row_ctx);
  CU_ASSERT_EQUAL(r->row_ctx[0].n, 0);
  CU_ASSERT(bytes_eq(r->row_ctx[1], "row1", 4));

  /* the forward envelope round-trips the request */
  size_t n = 0;
  uint8_t *fw = wire_forward_encode(77, "cellar", "127.0.0.1:7401", r, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fw);
  uint64_t fid = 0;
  cbytes cl, from;
  request *r2 = NULL;
  char msg[128];
  CU_ASSERT_EQUAL_FATAL(wire_forward_decode(fw, n, &fid, &cl, &from, &r2, msg, sizeof msg), 0);
  CU_ASSERT_EQUAL(fid, 77);
  CU_ASSERT(bytes_eq(cl, "cellar", 6));
  CU_ASSERT(bytes_eq(from, "127.0.0.1:7401", 14));
  CU_ASSERT_EQUAL(r2->type, FRAME_PUT);
  CU_ASSERT_EQUAL(r2->nrows, 2);
  CU_ASSERT(bytes_eq(r2->row_ctx[1], "row1", 4));
  CU_ASSERT(bytes_eq(r2->context, "ctx", 3));
  wire_request_free(r2);
  /* every truncation is refused, never a crash */
  for (size_t k = 0; k < 26 && k < n; k++) {
    r2 = NULL;
    CU_ASSERT_NOT_EQUAL(wire_forward_decode(fw, k, &fid, &cl, &from, &r2, msg, sizeof msg), 0);
    CU_ASSERT_PTR_NULL(r2);
  }
  fw[1 + 8 + 1 + 6 + 1 + 14] = FRAME_GET;   /* only writes are forwarded */
  CU_ASSERT_EQUAL(wire_forward_decode(fw, n, &fid, &cl, &from, &r2, msg, sizeof msg),
                  CELLAR_EBADTYPE);
  free(fw);
  wire_request_free(r);

  /* replies carry the response payload */
  result res;
  memset(&res, 0, sizeof res);
  uint8_t *b = wire_encode_response(FRAME_PUT, 1, &res, &n);
  size_t nr = 0;
  uint8_t *rep = wire_forward_reply_encode(9, b, n, &nr);
  cbytes body;
  CU_ASSERT_EQUAL(wire_forward_reply_decode(rep, nr, &fid, &body), 0);
  CU_ASSERT_EQUAL(fid, 9);
  CU_ASSERT_EQUAL(body.n, n - FRAME_HEADER_SIZE);
  CU_ASSERT_EQUAL(wire_forward_reply_decode(rep, 3, &fid, &body), CELLAR_EPROTO);
  free(rep);
  free(b);

  /* a GET with siblings: every version, the row context, and the same
  ** context in Response.context */
  res_sib sib[2] = {{(const uint8_t *)"x", 1, 10, 0, 0}, {(const uint8_t *)"", 0, 9, 0, 1}};
  res_cell c = {(const uint8_t *)"a", 1, (const uint8_t *)"x", 1, 10, 0, 2, sib};
  res_row row = {(const uint8_t *)"r", 1, 1, 1, &c, (const uint8_t *)"\1cx", 3};
  res.rows = &row;
  res.nrows = 1;
  b = wire_encode_response(FRAME_GET, 5, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  Cellar__Wire__Response *resp = unpack_frame(b, n, FRAME_GET, 5);
  CU_ASSERT_EQUAL_FATAL(resp->n_rows, 1);
  CU_ASSERT_EQUAL_FATAL(resp->rows[0]->cells[0]->n_siblings, 2);
  CU_ASSERT(bin_eq(resp->rows[0]->cells[0]->siblings[0]->value, "x", 1));
  CU_ASSERT_EQUAL(resp->rows[0]->cells[0]->siblings[0]->deleted, 0);
  CU_ASSERT_EQUAL(resp->rows[0]->cells[0]->siblings[1]->deleted, 1);
  CU_ASSERT_EQUAL(resp->rows[0]->cells[0]->siblings[1]->timestamp, 9);
  CU_ASSERT(bin_eq(resp->rows[0]->context, "\1cx", 3));
  CU_ASSERT(bin_eq(resp->context, "\1cx", 3));
  cellar__wire__response__free_unpacked(resp, NULL);
  free(b);
}

static void test_response_describe_and_info(void) {
  keyspace_def ks[2];
  memset(ks, 0, sizeof(ks));
  strcpy(ks[0].name, "simple_ks");
  ks[0].strategy = REPL_SIMPLE;
  ks[0].rf = 3;
  strcpy(ks[1].name, "nts_ks");
  ks[1].strategy = REPL_NETWORK_TOPOLOGY;
  ks[1].ndcs = 2;
  strcpy(ks[1].dcs[0].name, "dc1");
  ks[1].dcs[0].rf = 3;
  strcpy(ks[1].dcs[1].name, "dc2");
  ks[1].dcs[1].rf = 2;
  table_def tb[2];
  memset(tb, 0, sizeof(tb));
  strcpy(tb[0].keyspace, "simple_ks");
  strcpy(tb[0].name, "items");
  tb[0].id = 0x0123456789ABCDEFu;
  tb[0].policy = POLICY_LWW;
  tb[0].gc_grace = 0;
  tb[0].default_ttl = 60;
  strcpy(tb[1].keyspace, "nts_ks");
  strcpy(tb[1].name, "prices");
  tb[1].id = 2;
  tb[1].policy = POLICY_SIBLINGS;
  tb[1].gc_grace = SCHEMA_DEFAULT_GC_GRACE;
  res_info info[2] = {{"node_id", "ab12"}, {"load", ""}};

  result res;
  memset(&res, 0, sizeof(res));
  res.keyspaces = ks;
  res.nkeyspaces = 2;
  res.tables = tb;
  res.ntables = 2;
  res.info = info;
  res.ninfo = 2;
  size_t n = 0;
  uint8_t *b = wire_encode_response(FRAME_DESCRIBE, 77, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  Cellar__Wire__Response *r = unpack_frame(b, n, FRAME_DESCRIBE, 77);
  CU_ASSERT_EQUAL(r->code, 0);
  CU_ASSERT_EQUAL_FATAL(r->n_keyspaces, 2);
  CU_ASSERT_STRING_EQUAL(r->keyspaces[0]->name, "simple_ks");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->keyspaces[0]->replication);
  CU_ASSERT_STRING_EQUAL(r->keyspaces[0]->replication->strategy, "SimpleStrategy");
  CU_ASSERT_EQUAL(r->keyspaces[0]->replication->replication_factor, 3);
  CU_ASSERT_EQUAL(r->keyspaces[0]->replication->n_datacenters, 0);
  CU_ASSERT_STRING_EQUAL(r->keyspaces[1]->name, "nts_ks");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->keyspaces[1]->replication);
  const Cellar__Wire__Replication *rep = r->keyspaces[1]->replication;
  CU_ASSERT_STRING_EQUAL(rep->strategy, "NetworkTopologyStrategy");
  CU_ASSERT_EQUAL(rep->replication_factor, 0);
  CU_ASSERT_EQUAL_FATAL(rep->n_datacenters, 2);
  CU_ASSERT_STRING_EQUAL(rep->datacenters[0]->key, "dc1");
  CU_ASSERT_EQUAL(rep->datacenters[0]->value, 3);
  CU_ASSERT_STRING_EQUAL(rep->datacenters[1]->key, "dc2");
  CU_ASSERT_EQUAL(rep->datacenters[1]->value, 2);
  CU_ASSERT_EQUAL_FATAL(r->n_tables, 2);
  CU_ASSERT_STRING_EQUAL(r->tables[0]->keyspace, "simple_ks");
  CU_ASSERT_STRING_EQUAL(r->tables[0]->name, "items");
  CU_ASSERT_EQUAL(r->tables[0]->id, 0x0123456789ABCDEFu);
  CU_ASSERT_STRING_EQUAL(r->tables[0]->conflict_policy, "lww");
  CU_ASSERT_EQUAL(r->tables[0]->gc_grace_seconds, 0);
  CU_ASSERT(r->tables[0]->has_gc_grace);
  CU_ASSERT_EQUAL(r->tables[0]->default_ttl, 60);
  CU_ASSERT_STRING_EQUAL(r->tables[1]->name, "prices");
  CU_ASSERT_STRING_EQUAL(r->tables[1]->conflict_policy, "siblings");
  CU_ASSERT_EQUAL(r->tables[1]->gc_grace_seconds, SCHEMA_DEFAULT_GC_GRACE);
  CU_ASSERT_EQUAL(r->tables[1]->id, 2);
  CU_ASSERT_EQUAL_FATAL(r->n_info, 2);
  CU_ASSERT_STRING_EQUAL(r->info[0]->key, "node_id");
  CU_ASSERT_STRING_EQUAL(r->info[0]->value, "ab12");
  CU_ASSERT_STRING_EQUAL(r->info[1]->key, "load");
  CU_ASSERT_STRING_EQUAL(r->info[1]->value, "");
  CU_ASSERT_EQUAL(r->n_rows, 0);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);
}

static void test_response_members(void) {
  res_member mb[2];
  memset(mb, 0, sizeof(mb));
  strcpy(mb[0].host_id, "9f1c2d3e-0000-4000-8000-000000000001");
  strcpy(mb[0].address, "127.0.0.1:7400");
  strcpy(mb[0].peer_address, "127.0.0.1:7401");
  strcpy(mb[0].dc, "dc1");
  strcpy(mb[0].rack, "r1");
  strcpy(mb[0].status, "normal");
  mb[0].up = 1;
  mb[0].load = 123456789012u;
  mb[0].tokens = 16;
  mb[0].owns = 0.25;
  mb[0].generation = 1763768000;
  mb[0].phi = 0.5;
  strcpy(mb[0].schema, "abcdef");
  strcpy(mb[1].host_id, "h2");
  strcpy(mb[1].status, "leaving");
  result res;
  memset(&res, 0, sizeof(res));
  res.members = mb;
  res.nmembers = 2;
  size_t n = 0;
  uint8_t *b = wire_encode_response(FRAME_ADMIN, 4, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  Cellar__Wire__Response *r = unpack_frame(b, n, FRAME_ADMIN, 4);
  CU_ASSERT_EQUAL(r->code, 0);
  CU_ASSERT_EQUAL_FATAL(r->n_members, 2);
  const Cellar__Wire__Member *m = r->members[0];
  CU_ASSERT_STRING_EQUAL(m->host_id, mb[0].host_id);
  CU_ASSERT_STRING_EQUAL(m->address, "127.0.0.1:7400");
  CU_ASSERT_STRING_EQUAL(m->peer_address, "127.0.0.1:7401");
  CU_ASSERT_STRING_EQUAL(m->datacenter, "dc1");
  CU_ASSERT_STRING_EQUAL(m->rack, "r1");
  CU_ASSERT_STRING_EQUAL(m->status, "normal");
  CU_ASSERT(m->up);
  CU_ASSERT_EQUAL(m->load, 123456789012u);
  CU_ASSERT_EQUAL(m->tokens, 16);
  CU_ASSERT_DOUBLE_EQUAL(m->owns, 0.25, 1e-12);
  CU_ASSERT_EQUAL(m->generation, 1763768000);
  CU_ASSERT_DOUBLE_EQUAL(m->phi, 0.5, 1e-12);
  CU_ASSERT_STRING_EQUAL(m->schema, "abcdef");
  CU_ASSERT_STRING_EQUAL(r->members[1]->host_id, "h2");
  CU_ASSERT_STRING_EQUAL(r->members[1]->status, "leaving");
  CU_ASSERT(!r->members[1]->up);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);
}

static void test_response_errors(void) {
  result res;
  memset(&res, 0, sizeof(res));
  res.code = CELLAR_ENOTABLE;
  strcpy(res.message, "unknown table ks.nope");
  res_row row = {(const uint8_t *)"x", 1, 0, 0, NULL, NULL, 0};
  res.rows = &row;                         /* an error carries no data */
  res.nrows = 1;
  size_t n = 0;
  uint8_t *b = wire_encode_response(FRAME_GET, 5, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  Cellar__Wire__Response *r = unpack_frame(b, n, FRAME_GET, 5);
  CU_ASSERT_EQUAL(r->code, CELLAR_ENOTABLE);
  CU_ASSERT_STRING_EQUAL(r->message, "unknown table ks.nope");
  CU_ASSERT_EQUAL(r->n_rows, 0);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);

  /* a message filling the whole buffer without a NUL */
  memset(res.message, 'm', sizeof(res.message));
  b = wire_encode_response(FRAME_GET, 6, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  r = unpack_frame(b, n, FRAME_GET, 6);
  CU_ASSERT_EQUAL(strlen(r->message), sizeof(res.message));
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);

  b = wire_encode_error(200, 0xFFFFFFFFu, CELLAR_EBADTYPE,
                        "unknown message type 200", &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  r = unpack_frame(b, n, 200, 0xFFFFFFFFu);
  CU_ASSERT_EQUAL(r->code, CELLAR_EBADTYPE);
  CU_ASSERT_STRING_EQUAL(r->message, "unknown message type 200");
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);

  b = wire_encode_error(FRAME_PUT, 3, CELLAR_EPROTO, NULL, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  r = unpack_frame(b, n, FRAME_PUT, 3);
  CU_ASSERT_EQUAL(r->code, CELLAR_EPROTO);
  CU_ASSERT_STRING_EQUAL(r->message, "");
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);
}

/* A result too big for one frame becomes an ETOOBIG answer the client can
** read, instead of a frame that would break its connection. */
static void test_response_too_big(void) {
  uint8_t *v = big(CELLAR_MAX_VALUE_BYTES);
  enum { NCELLS = 17 };
  res_cell cells[NCELLS];
  for (int i = 0; i < NCELLS; i++) {
    cells[i] = (res_cell){(const uint8_t *)"c", 1, v, CELLAR_MAX_VALUE_BYTES, 1, 0, 0, NULL};
  }
  res_row row = {(const uint8_t *)"r", 1, NCELLS, NCELLS, cells, NULL, 0};
  result res;
  memset(&res, 0, sizeof(res));
  res.rows = &row;
  res.nrows = 1;
  size_t n = 0;
  uint8_t *b = wire_encode_response(FRAME_SLICE, 8, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  Cellar__Wire__Response *r = unpack_frame(b, n, FRAME_SLICE, 8);
  CU_ASSERT_EQUAL(r->code, CELLAR_ETOOBIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "16777216"));
  CU_ASSERT_EQUAL(r->n_rows, 0);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);

  /* 15 of them fit */
  row.ncells = 15;
  b = wire_encode_response(FRAME_SLICE, 9, &res, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  r = unpack_frame(b, n, FRAME_SLICE, 9);
  CU_ASSERT_EQUAL(r->code, 0);
  CU_ASSERT_EQUAL_FATAL(r->n_rows, 1);
  CU_ASSERT_EQUAL(r->rows[0]->n_cells, 15);
  cellar__wire__response__free_unpacked(r, NULL);
  free(b);
  free(v);
}

/* ------------------------------------------------------- fuzz corpus */

static void write_file(const char *dir, const char *name, const uint8_t *p,
                       size_t n) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(fwrite(p, 1, n, f), n);
  fclose(f);
}

/* Seed = selector byte + data (tests/fuzz/fuzz_frame.c): selector bit 7
** clear = a frame stream, set = one payload of type (selector & 0x7f). */
static void write_seed(const char *dir, const char *name, unsigned type,
                       const void *msg, int as_stream) {
  size_t n = 0;
  uint8_t *p = msg ? pack(msg, &n) : malloc(1);
  uint8_t *buf = malloc(1 + FRAME_HEADER_SIZE + n);
  size_t off = 0;
  if (as_stream) {
    buf[off++] = 0x00;
    frame_header h = {FRAME_MAGIC, FRAME_VERSION, (uint8_t)type, 0, 1, (uint32_t)n};
    frame_header_encode(&h, buf + off);
    off += FRAME_HEADER_SIZE;
  } else {
    buf[off++] = (uint8_t)(0x80 | type);
  }
  if (n) memcpy(buf + off, p, n);
  write_file(dir, name, buf, off + n);
  free(buf);
  free(p);
}

static void test_write_corpus(void) {
  const char *dir = getenv("CELLAR_FUZZ_CORPUS");
  if (dir == NULL || *dir == '\0') return;   /* only on request */

  put_fixture pf;
  put_init(&pf);
  pf.m.consistency = CELLAR_CL_QUORUM;
  pf.m.ttl = 60;
  Cellar__Wire__GetRequest g = CELLAR__WIRE__GET_REQUEST__INIT;
  ProtobufCBinaryData cols[1] = {BIN("a")};
  g.keyspace = "ks"; g.table = "t"; g.partition = BIN("p");
  g.n_columns = 1; g.columns = cols;
  Cellar__Wire__SliceRequest s = CELLAR__WIRE__SLICE_REQUEST__INIT;
  s.keyspace = "ks"; s.table = "t"; s.partition = BIN("p");
  s.start = BIN("a"); s.has_start = 1; s.limit = 10;
  Cellar__Wire__DeleteRequest d = CELLAR__WIRE__DELETE_REQUEST__INIT;
  d.keyspace = "ks"; d.table = "t"; d.partition = BIN("p");
  d.scope = CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS;
  d.clustering = BIN("r"); d.n_columns = 1; d.columns = cols;
  Cellar__Wire__AdminRequest a = CELLAR__WIRE__ADMIN_REQUEST__INIT;
  a.command = "info";
  ks_fixture kf;
  ks_init(&kf, "NetworkTopologyStrategy", 2);
  Cellar__Wire__SchemaRequest t = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  Cellar__Wire__TableDef td = CELLAR__WIRE__TABLE_DEF__INIT;
  td.keyspace = "ks"; td.name = "t"; td.conflict_policy = "lww";
  t.table = &td;
  Cellar__Wire__SchemaRequest dr = CELLAR__WIRE__SCHEMA_REQUEST__INIT;
  dr.keyspace_name = "ks"; dr.table_name = "t";

  write_seed(dir, "stream-ping", FRAME_PING, NULL, 1);
  write_seed(dir, "stream-put", FRAME_PUT, &pf.m, 1);
  write_seed(dir, "stream-get", FRAME_GET, &g, 1);
  write_seed(dir, "stream-slice", FRAME_SLICE, &s, 1);
  write_seed(dir, "stream-delete", FRAME_DELETE, &d, 1);
  write_seed(dir, "stream-admin", FRAME_ADMIN, &a, 1);
  write_seed(dir, "stream-create-keyspace", FRAME_CREATE_KEYSPACE, &kf.m, 1);
  write_seed(dir, "stream-create-table", FRAME_CREATE_TABLE, &t, 1);
  write_seed(dir, "stream-drop-table", FRAME_DROP_TABLE, &dr, 1);
  write_seed(dir, "payload-put", FRAME_PUT, &pf.m, 0);
  write_seed(dir, "payload-slice", FRAME_SLICE, &s, 0);
  write_seed(dir, "payload-delete", FRAME_DELETE, &d, 0);
  write_seed(dir, "payload-create-keyspace", FRAME_CREATE_KEYSPACE, &kf.m, 0);
  write_seed(dir, "payload-describe", FRAME_DESCRIBE, &dr, 0);

  /* several frames in one stream, small chunks (selector 3: 4-byte feeds),
  ** an unknown type in the middle, then a bad magic */
  uint8_t buf[512];
  size_t off = 0, n;
  buf[off++] = 0x03;
  uint8_t *p = pack(&g, &n);
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, FRAME_GET, 0, 7, (uint32_t)n};
  frame_header_encode(&h, buf + off);
  memcpy(buf + off + FRAME_HEADER_SIZE, p, n);
  off += FRAME_HEADER_SIZE + n;
  free(p);
  h = (frame_header){FRAME_MAGIC, FRAME_VERSION, 99, 0, 8, 2};
  frame_header_encode(&h, buf + off);
  off += FRAME_HEADER_SIZE + 2;
  buf[off - 2] = 0x08;
  buf[off - 1] = 0x01;
  p = pack(&a, &n);
  h = (frame_header){FRAME_MAGIC, FRAME_VERSION, FRAME_ADMIN, 0, 0xF, (uint32_t)n};
  frame_header_encode(&h, buf + off);
  memcpy(buf + off + FRAME_HEADER_SIZE, p, n);
  off += FRAME_HEADER_SIZE + n;
  free(p);
  h = (frame_header){0x48545450u, FRAME_VERSION, FRAME_GET, 0, 9, 0};
  frame_header_encode(&h, buf + off);
  off += FRAME_HEADER_SIZE;
  write_file(dir, "stream-mixed", buf, off);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"ping", test_ping},
    {"put_round_trip", test_put_round_trip},
    {"put_at_limits", test_put_at_limits},
    {"get_round_trip", test_get_round_trip},
    {"slice_round_trip", test_slice_round_trip},
    {"delete_round_trip", test_delete_round_trip},
    {"admin_round_trip", test_admin_round_trip},
    {"create_keyspace", test_create_keyspace},
    {"create_keyspace_errors", test_create_keyspace_errors},
    {"create_table", test_create_table},
    {"drop_and_describe", test_drop_and_describe},
    {"bad_type_and_malformed", test_bad_type_and_malformed},
    {"put_errors", test_put_errors},
    {"read_errors", test_read_errors},
    {"delete_errors", test_delete_errors},
    {"response_rows", test_response_rows},
    {"versions", test_versions},
    {"response_describe_and_info", test_response_describe_and_info},
    {"response_members", test_response_members},
    {"response_errors", test_response_errors},
    {"response_too_big", test_response_too_big},
    {"write_corpus", test_write_corpus},
    {NULL, NULL}
  };
  return testutil_run("wire", cases, argc, argv);
}
