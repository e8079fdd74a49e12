/* Unit tests of storage, against a real RocksDB in a temporary directory. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "clock.h"
#include "keys.h"
#include "storage.h"
#include "testutil.h"
#include "token.h"

#define B(s) CBYTES((s), strlen(s))
#define BN(s, n) CBYTES((s), (n))

/* ------------------------------------------------------------- fixture */

/* gc_grace per table id, as the schema would answer; others are unknown */
static int gc_lookup(void *arg, uint64_t id, uint32_t *gc) {
  (void)arg;
  switch (id) {
  case 1: *gc = 0; return 0;
  case 2: *gc = 100; return 0;
  case 3: *gc = 864000; return 0;
  default: return -1;
  }
}

static table_def T1 = {.keyspace = "ks", .name = "t1", .id = 1,
                       .policy = POLICY_LWW, .gc_grace = 0};
static table_def T2 = {.keyspace = "ks", .name = "t2", .id = 2,
                       .policy = POLICY_LWW, .gc_grace = 100};
static table_def T3 = {.keyspace = "ks", .name = "t3", .id = 3,
                       .policy = POLICY_LWW, .gc_grace = 864000};

static char *dir;

static storage *open_at(const char *path, int with_gc) {
  storage_options o;
  storage_options_init(&o);
  o.path = path;
  o.cache_bytes = 8u << 20;
  o.write_buffer_bytes = 4u << 20;
  storage *s = NULL;
  CU_ASSERT_EQUAL_FATAL(storage_open(&o, &s), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  if (with_gc) storage_set_gc_lookup(s, gc_lookup, NULL);
  return s;
}

static storage *setup(void) {
  dir = testutil_tmpdir("storage");
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  return open_at(dir, 1);
}

static void teardown(storage *s) {
  storage_close(s);
  testutil_rmrf(dir);
  free(dir);
  dir = NULL;
  clock_set_fake_us(0);
}

/* ------------------------------------------------------------- helpers */

static int put1(storage *s, const table_def *t, cbytes pk, cbytes ck,
                cbytes col, cbytes val, int64_t ts, uint32_t ttl,
                uint32_t now) {
  req_cell c = {col, val};
  req_row r = {ck, 1, &c};
  return storage_put(s, t, pk, &r, 1, ts, ttl, now);
}

static int del(storage *s, const table_def *t, int scope, cbytes pk,
               cbytes ck, const char *col, int64_t ts, uint32_t now) {
  cbytes c = col ? B(col) : B("");
  return storage_delete(s, t, pk, scope, ck, col ? &c : NULL, col ? 1 : 0,
                        ts, now);
}

/* Reads one cell; returns 1 and its value/ts when live, 0 when absent. */
static int get1(storage *s, const table_def *t, cbytes pk, cbytes ck,
                cbytes col, uint32_t now, char *val, size_t cap,
                int64_t *ts) {
  storage_query q = {.pk = pk, .has_start = 1, .start = ck, .has_end = 1,
                     .end = ck, .limit = 1, .cols = &col, .ncols = 1};
  result r;
  result_init(&r);
  int more = -1;
  CU_ASSERT_EQUAL_FATAL(storage_read(s, t, &q, now, &r, &more), 0);
  CU_ASSERT_EQUAL(more, 0);
  int found = 0;
  if (r.nrows == 1 && r.rows[0].ncells == 1) {
    const res_cell *c = &r.rows[0].cells[0];
    CU_ASSERT(c->nname == col.n && memcmp(c->name, col.p, col.n) == 0);
    CU_ASSERT(r.rows[0].nck == ck.n &&
              (ck.n == 0 || memcmp(r.rows[0].ck, ck.p, ck.n) == 0));
    if (val) {
      size_t n = c->nvalue < cap - 1 ? c->nvalue : cap - 1;
      memcpy(val, c->value, n);
      val[n] = '\0';
    }
    if (ts) *ts = c->timestamp;
    found = 1;
  } else {
    CU_ASSERT_EQUAL(r.nrows, 0);
  }
  result_free(&r);
  return found;
}

/* Printable form of a slice: "ck:col=val,col=val;ck:..." with 0x00 as '0'
** and 0xFF as 'F' inside keys. */
static void show(const uint8_t *p, size_t n, char *out, size_t *at) {
  for (size_t i = 0; i < n; i++)
    out[(*at)++] = p[i] == 0 ? '0' : p[i] == 0xFF ? 'F' : (char)p[i];
}

static char *slice(storage *s, const table_def *t, const storage_query *q,
                   uint32_t now, int *more) {
  static char out[4096];
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL_FATAL(storage_read(s, t, q, now, &r, more), 0);
  size_t at = 0;
  for (size_t i = 0; i < r.nrows; i++) {
    if (i) out[at++] = ';';
    show(r.rows[i].ck, r.rows[i].nck, out, &at);
    out[at++] = ':';
    for (size_t j = 0; j < r.rows[i].ncells; j++) {
      const res_cell *c = &r.rows[i].cells[j];
      if (j) out[at++] = ',';
      show(c->name, c->nname, out, &at);
      out[at++] = '=';
      show(c->value, c->nvalue, out, &at);
    }
  }
  out[at] = '\0';
  result_free(&r);
  return out;
}

static uint64_t raw(storage *s, uint64_t table) {
  uint64_t n = 0;
  CU_ASSERT_EQUAL_FATAL(storage_count_raw(s, table, &n), 0);
  return n;
}

static void compact_at(storage *s, uint32_t now) {
  clock_set_fake_us((int64_t)now * 1000000);
  CU_ASSERT_EQUAL_FATAL(storage_flush(s), 0);
  CU_ASSERT_EQUAL_FATAL(storage_compact(s), 0);
}

static const char *info(storage *s, const char *key) {
  static char v[256];
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL_FATAL(storage_info(s, &r), 0);
  v[0] = '\0';
  int found = 0;
  for (size_t i = 0; i < r.ninfo; i++)
    if (strcmp(r.info[i].key, key) == 0) {
      snprintf(v, sizeof v, "%s", r.info[i].value);
      found = 1;
    }
  CU_ASSERT(found);
  result_free(&r);
  return v;
}

/* --------------------------------------------------------------- tests */

static void test_put_get_one(void) {
  storage *s = setup();
  char v[64];
  int64_t ts = 0;
  CU_ASSERT(!get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, &ts));
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"), B("c"), B("hello"), 42, 0,
                       1000), 0);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, &ts));
  CU_ASSERT_STRING_EQUAL(v, "hello");
  CU_ASSERT_EQUAL(ts, 42);
  /* neighbours are absent */
  CU_ASSERT(!get1(s, &T3, B("p"), B("r"), B("d"), 1000, v, sizeof v, NULL));
  CU_ASSERT(!get1(s, &T3, B("p"), B("s"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT(!get1(s, &T3, B("q"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT(!get1(s, &T2, B("p"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  teardown(s);
}

static void test_put_many(void) {
  storage *s = setup();
  req_cell c1[] = {{B("b"), B("1b")}, {B("a"), B("1a")}, {B("c"), B("1c")}};
  req_cell c2[] = {{B("z"), B("2z")}};
  req_cell c3[] = {{B("a"), B("3a")}, {B("b"), B("3b")}};
  req_row rows[] = {{B("r3"), 2, c3}, {B("r1"), 3, c1}, {B("r2"), 1, c2}};
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p"), rows, 3, 10, 0, 1000), 0);
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p2"), rows, 1, 10, 0, 1000), 0);
  storage_query q = {.pk = B("p"), .limit = 100};
  int more = -1;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "r1:a=1a,b=1b,c=1c;r2:z=2z;r3:a=3a,b=3b");
  CU_ASSERT_EQUAL(more, 0);
  q.pk = B("p2");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r3:a=3a,b=3b");
  /* a put with no cell writes nothing */
  req_row empty = {B("r9"), 0, NULL};
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p"), &empty, 1, 10, 0, 1000),
                  CELLAR_EEMPTY);
  /* the same cell twice in one put: the merge rule picks, not the order */
  req_cell dup[] = {{B("d"), B("y")}, {B("d"), B("x")}};
  req_row r = {B("r1"), 2, dup};
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p3"), &r, 1, 10, 0, 1000), 0);
  char v[16];
  CU_ASSERT(get1(s, &T3, B("p3"), B("r1"), B("d"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "y");
  /* many cells (heap paths) */
  enum { N = 500 };
  req_cell *many = calloc(N, sizeof *many);
  char (*names)[8] = calloc(N, 8);
  for (int i = 0; i < N; i++) {
    snprintf(names[i], 8, "c%03d", i);
    many[i].name = B(names[i]);
    many[i].value = B(names[i]);
  }
  req_row big = {B("wide"), N, many};
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p4"), &big, 1, 10, 0, 1000), 0);
  q.pk = B("p4");
  result res;
  result_init(&res);
  CU_ASSERT_EQUAL(storage_read(s, &T3, &q, 1000, &res, &more), 0);
  CU_ASSERT_EQUAL_FATAL(res.nrows, 1);
  CU_ASSERT_EQUAL_FATAL(res.rows[0].ncells, N);
  for (int i = 0; i < N; i++)
    CU_ASSERT(memcmp(res.rows[0].cells[i].value, names[i], 4) == 0);
  result_free(&res);
  free(many);
  free(names);
  teardown(s);
}

/* A reader never sees half of a multi-row put. */
typedef struct atomic_ctx {
  storage *s;
  volatile int done;
  int torn, reads;
} atomic_ctx;

static void *atomic_writer(void *arg) {
  atomic_ctx *a = arg;
  for (int i = 1; i <= 3000; i++) {
    char v[16];
    snprintf(v, sizeof v, "%d", i);
    req_cell c = {B("c"), B(v)};
    req_row rows[] = {{B("r1"), 1, &c}, {B("r2"), 1, &c}, {B("r3"), 1, &c}};
    if (storage_put(a->s, &T3, B("p"), rows, 3, i, 0, 1000) != 0) break;
  }
  a->done = 1;
  return NULL;
}

static void test_atomic_multi_row(void) {
  storage *s = setup();
  atomic_ctx a = {s, 0, 0, 0};
  pthread_t th;
  pthread_create(&th, NULL, atomic_writer, &a);
  while (!a.done) {
    storage_query q = {.pk = B("p"), .limit = 10};
    result r;
    result_init(&r);
    if (storage_read(s, &T3, &q, 1000, &r, NULL) != 0) a.torn++;
    if (r.nrows != 0 && r.nrows != 3) a.torn++;
    for (size_t i = 1; i < r.nrows; i++)
      if (r.rows[i].cells[0].nvalue != r.rows[0].cells[0].nvalue ||
          memcmp(r.rows[i].cells[0].value, r.rows[0].cells[0].value,
                 r.rows[0].cells[0].nvalue) != 0)
        a.torn++;
    a.reads++;
    result_free(&r);
  }
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(a.torn, 0);
  CU_ASSERT(a.reads > 10);
  char v[16];
  CU_ASSERT(get1(s, &T3, B("p"), B("r2"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "3000");
  teardown(s);
}

/* Concurrent writers of one cell: the stored timestamp never goes down
** (a reader watches it) and the highest one wins. Timestamps come from a
** shared counter, so most writes win and writers overlap all the time:
** without the stripe lock, two writers that read the same stored version
** race, and the lower timestamp may land last. */
enum { RACE_THREADS = 4, RACE_WRITES = 5000 };

typedef struct race_ctx {
  storage *s;
  int64_t *next_ts;
  int *done, *failed;
} race_ctx;

static void *race_writer(void *arg) {
  race_ctx *r = arg;
  for (int i = 0; i < RACE_WRITES; i++) {
    int64_t ts = __atomic_add_fetch(r->next_ts, 1, __ATOMIC_SEQ_CST);
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)ts);
    if (put1(r->s, &T3, B("p"), B("r"), B("c"), B(v), ts, 0, 1000) != 0)
      __atomic_add_fetch(r->failed, 1, __ATOMIC_SEQ_CST);
  }
  __atomic_add_fetch(r->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void test_concurrent_writers(void) {
  storage *s = setup();
  pthread_t th[RACE_THREADS];
  int64_t next_ts = 0;
  int done = 0, failed = 0, reads = 0, went_down = 0;
  race_ctx ctx = {s, &next_ts, &done, &failed};
  for (int t = 0; t < RACE_THREADS; t++)
    pthread_create(&th[t], NULL, race_writer, &ctx);
  int64_t seen = -1;
  while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) < RACE_THREADS) {
    int64_t ts;
    if (get1(s, &T3, B("p"), B("r"), B("c"), 1000, NULL, 0, &ts)) {
      if (ts < seen) went_down++;
      seen = ts;
    }
    reads++;
  }
  for (int t = 0; t < RACE_THREADS; t++) pthread_join(th[t], NULL);
  CU_ASSERT_EQUAL(went_down, 0);
  CU_ASSERT_EQUAL(failed, 0);
  CU_ASSERT(reads > 10);
  int64_t ts = 0;
  char v[32], want[32];
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, &ts));
  snprintf(want, sizeof want, "%d", RACE_THREADS * RACE_WRITES);
  CU_ASSERT_EQUAL(ts, RACE_THREADS * RACE_WRITES);
  CU_ASSERT_STRING_EQUAL(v, want);
  teardown(s);
}

static void test_older_write_loses(void) {
  storage *s = setup();
  char v[16];
  int64_t ts;
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"), B("c"), B("new"), 200, 0, 1000),
                  0);
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"), B("c"), B("old"), 100, 0, 1000),
                  0);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, &ts));
  CU_ASSERT_STRING_EQUAL(v, "new");
  CU_ASSERT_EQUAL(ts, 200);
  /* also when the stored version sits in an SST file */
  CU_ASSERT_EQUAL(storage_flush(s), 0);
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"), B("c"), B("old"), 199, 0, 1000),
                  0);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, &ts));
  CU_ASSERT_STRING_EQUAL(v, "new");
  /* equal timestamps: the greater value, whatever the arrival order */
  put1(s, &T3, B("q"), B("r"), B("c"), B("b"), 500, 0, 1000);
  put1(s, &T3, B("q"), B("r"), B("c"), B("a"), 500, 0, 1000);
  CU_ASSERT(get1(s, &T3, B("q"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "b");
  put1(s, &T3, B("q"), B("r"), B("c"), B("c"), 500, 0, 1000);
  CU_ASSERT(get1(s, &T3, B("q"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "c");
  /* a newer write replaces */
  put1(s, &T3, B("q"), B("r"), B("c"), B("a"), 501, 0, 1000);
  CU_ASSERT(get1(s, &T3, B("q"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "a");
  teardown(s);
}

static void test_delete_partition(void) {
  storage *s = setup();
  storage_query q = {.pk = B("p"), .limit = 100};
  int more;
  put1(s, &T3, B("p"), B("r1"), B("c"), B("v"), 100, 0, 1000);
  put1(s, &T3, B("p"), B("r2"), B("c"), B("v"), 100, 0, 1000);
  put1(s, &T3, B("p"), B("r3"), B("c"), B("v"), 250, 0, 1000);
  put1(s, &T3, B("other"), B("r1"), B("c"), B("v"), 100, 0, 1000);
  CU_ASSERT_EQUAL(del(s, &T3, STORAGE_DELETE_PARTITION, B("p"), B(""), NULL,
                      200, 1000), 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r3:c=v");
  /* writes older than or equal to the tombstone stay hidden, newer show */
  put1(s, &T3, B("p"), B("r4"), B("c"), B("v"), 150, 0, 1000);
  put1(s, &T3, B("p"), B("r5"), B("c"), B("v"), 200, 0, 1000);
  put1(s, &T3, B("p"), B("r6"), B("c"), B("v"), 201, 0, 1000);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r3:c=v;r6:c=v");
  /* with a start bound too (the tombstone is read on its own) */
  q.has_start = 1;
  q.start = B("r1");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r3:c=v;r6:c=v");
  /* an older partition tombstone does not replace the newer one */
  CU_ASSERT_EQUAL(del(s, &T3, STORAGE_DELETE_PARTITION, B("p"), B(""), NULL,
                      120, 1000), 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r3:c=v;r6:c=v");
  /* another partition is untouched */
  q.pk = B("other");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r1:c=v");
  teardown(s);
}

static void test_delete_row_and_cells(void) {
  storage *s = setup();
  storage_query q = {.pk = B("p"), .limit = 100};
  int more;
  req_cell cs[] = {{B("a"), B("1")}, {B("b"), B("2")}, {B("c"), B("3")}};
  req_row rows[] = {{B("r1"), 3, cs}, {B("r2"), 3, cs}};
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p"), rows, 2, 100, 0, 1000), 0);
  CU_ASSERT_EQUAL(del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("r1"), NULL, 100,
                      1000), 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "r2:a=1,b=2,c=3");
  /* a newer cell in a deleted row shows, an older one does not */
  put1(s, &T3, B("p"), B("r1"), B("b"), B("new"), 101, 0, 1000);
  put1(s, &T3, B("p"), B("r1"), B("c"), B("old"), 99, 0, 1000);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "r1:b=new;r2:a=1,b=2,c=3");
  /* an older row tombstone changes nothing */
  CU_ASSERT_EQUAL(del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("r1"), NULL, 50,
                      1000), 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "r1:b=new;r2:a=1,b=2,c=3");
  /* cell deletes: older data hidden, a newer write survives */
  cbytes cols[] = {B("a"), B("c")};
  CU_ASSERT_EQUAL(storage_delete(s, &T3, B("p"), STORAGE_DELETE_CELLS,
                                 B("r2"), cols, 2, 150, 1000), 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r1:b=new;r2:b=2");
  put1(s, &T3, B("p"), B("r2"), B("a"), B("again"), 151, 0, 1000);
  put1(s, &T3, B("p"), B("r2"), B("c"), B("late"), 149, 0, 1000);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "r1:b=new;r2:a=again,b=2");
  /* deleting every cell of a row hides the row */
  cbytes last = B("b");
  CU_ASSERT_EQUAL(storage_delete(s, &T3, B("p"), STORAGE_DELETE_CELLS,
                                 B("r1"), &last, 1, 500, 1000), 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r2:a=again,b=2");
  CU_ASSERT_EQUAL(storage_delete(s, &T3, B("p"), STORAGE_DELETE_CELLS,
                                 B("r1"), NULL, 0, 500, 1000), CELLAR_EEMPTY);
  CU_ASSERT_EQUAL(storage_delete(s, &T3, B("p"), 7, B("r1"), NULL, 0, 500,
                                 1000), CELLAR_EINVAL);
  teardown(s);
}

static void test_ttl(void) {
  storage *s = setup();
  storage_query q = {.pk = B("p"), .limit = 10};
  put1(s, &T1, B("p"), B("r"), B("c"), B("v"), 100, 10, 1000);
  put1(s, &T1, B("p"), B("r"), B("d"), B("forever"), 100, 0, 1000);
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(storage_read(s, &T1, &q, 1009, &r, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
  CU_ASSERT_EQUAL_FATAL(r.rows[0].ncells, 2);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].expires_at, 1010);
  CU_ASSERT_EQUAL(r.rows[0].cells[1].expires_at, 0);
  result_free(&r);
  int more;
  CU_ASSERT_STRING_EQUAL(slice(s, &T1, &q, 1010, &more), "r:d=forever");
  /* an expired cell shadows older writes (it is a tombstone in waiting) */
  put1(s, &T1, B("p"), B("r"), B("c"), B("older"), 99, 0, 1010);
  CU_ASSERT_STRING_EQUAL(slice(s, &T1, &q, 1010, &more), "r:d=forever");
  /* purged by a compaction once expires_at + gc_grace (0) has passed */
  CU_ASSERT_EQUAL(raw(s, 1), 2);
  compact_at(s, 1009);
  CU_ASSERT_EQUAL(raw(s, 1), 2);
  compact_at(s, 1010);
  CU_ASSERT_EQUAL(raw(s, 1), 1);
  CU_ASSERT_STRING_EQUAL(slice(s, &T1, &q, 0, &more), "r:d=forever");

  /* with gc_grace 100, an expired cell stays until expiry + 100 */
  put1(s, &T2, B("p"), B("r"), B("c"), B("v"), 100, 10, 1000);
  compact_at(s, 1050);
  CU_ASSERT_EQUAL(raw(s, 2), 1);
  compact_at(s, 1109);
  CU_ASSERT_EQUAL(raw(s, 2), 1);
  compact_at(s, 1110);
  CU_ASSERT_EQUAL(raw(s, 2), 0);
  /* ttl overflowing 32 bits saturates instead of wrapping into the past */
  put1(s, &T3, B("p"), B("r"), B("c"), B("v"), 100, UINT32_MAX, 1000);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 2000000000u, NULL, 0, NULL));
  teardown(s);
}

/* Tombstones stay until gc_grace has passed, and purging them resurrects
** nothing; the data they shadow goes at the first compaction. */
static void test_tombstone_gc(void) {
  storage *s = setup();
  int more;
  storage_query q = {.limit = 10};
  req_cell cs[] = {{B("c1"), B("1")}, {B("c2"), B("2")}};
  req_row r1 = {B("r1"), 2, cs};
  storage_put(s, &T2, B("P1"), &r1, 1, 100, 0, 1000);
  del(s, &T2, STORAGE_DELETE_PARTITION, B("P1"), B(""), NULL, 200, 1000);
  put1(s, &T2, B("P2"), B("r1"), B("c1"), B("x"), 100, 0, 1000);
  del(s, &T2, STORAGE_DELETE_ROW, B("P2"), B("r1"), NULL, 200, 1000);
  put1(s, &T2, B("P2"), B("r2"), B("c1"), B("y"), 300, 0, 1000);
  storage_put(s, &T2, B("P3"), &r1, 1, 100, 0, 1000);
  del(s, &T2, STORAGE_DELETE_CELLS, B("P3"), B("r1"), "c1", 200, 1000);
  CU_ASSERT_EQUAL(raw(s, 2), 3 + 3 + 2);

  /* before gc_grace: shadowed data removed, tombstones kept */
  compact_at(s, 1050);
  CU_ASSERT_EQUAL(raw(s, 2), 1 + 2 + 2);
  q.pk = B("P1");
  CU_ASSERT_STRING_EQUAL(slice(s, &T2, &q, 1050, &more), "");
  q.pk = B("P2");
  CU_ASSERT_STRING_EQUAL(slice(s, &T2, &q, 1050, &more), "r2:c1=y");
  q.pk = B("P3");
  CU_ASSERT_STRING_EQUAL(slice(s, &T2, &q, 1050, &more), "r1:c2=2");
  /* the kept tombstones still shadow late writes of old data */
  put1(s, &T2, B("P1"), B("r1"), B("c1"), B("late"), 150, 0, 1050);
  put1(s, &T2, B("P2"), B("r1"), B("c1"), B("late"), 150, 0, 1050);
  put1(s, &T2, B("P3"), B("r1"), B("c1"), B("late"), 150, 0, 1050);
  compact_at(s, 1060);
  CU_ASSERT_EQUAL(raw(s, 2), 1 + 2 + 2);

  /* after gc_grace: tombstones purged, nothing comes back */
  compact_at(s, 1100);
  CU_ASSERT_EQUAL(raw(s, 2), 0 + 1 + 1);
  q.pk = B("P1");
  CU_ASSERT_STRING_EQUAL(slice(s, &T2, &q, 0, &more), "");
  q.pk = B("P2");
  CU_ASSERT_STRING_EQUAL(slice(s, &T2, &q, 0, &more), "r2:c1=y");
  q.pk = B("P3");
  CU_ASSERT_STRING_EQUAL(slice(s, &T2, &q, 0, &more), "r1:c2=2");
  teardown(s);
}

/* A key the filter removes becomes a deletion marker: an older version in
** a lower level, outside the compaction that drops the newer one, does not
** resurface. */
static void test_no_resurrection(void) {
  storage *s = setup();
  put1(s, &T1, B("p"), B("r"), B("c"), B("v1"), 100, 0, 1000);
  compact_at(s, 1000);
  /* v1 is alone in the last level */
  const char *levels = info(s, "storage.files_per_level");
  size_t n = strlen(levels);
  CU_ASSERT(n > 2 && strcmp(levels + n - 2, "/1") == 0);
  CU_ASSERT(strncmp(levels, "0/0/", 4) == 0);
  put1(s, &T1, B("p"), B("r"), B("c"), B("v2"), 200, 10, 1000);
  CU_ASSERT_EQUAL(storage_flush(s), 0);
  levels = info(s, "storage.files_per_level");
  CU_ASSERT(strncmp(levels, "1/", 2) == 0);   /* v2 in level 0 */
  char v[8];
  CU_ASSERT(get1(s, &T1, B("p"), B("r"), B("c"), 1005, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "v2");
  compact_at(s, 2000);
  CU_ASSERT_EQUAL(raw(s, 1), 0);
  /* read as of a time when v1 would be live if it had come back */
  CU_ASSERT(!get1(s, &T1, B("p"), B("r"), B("c"), 1005, v, sizeof v, NULL));
  teardown(s);
}

/* A partition or row tombstone past gc_grace is purged only where the data
** it covers is purged with it: here the data sits alone in the last level
** and the tombstones arrive in level 0. */
static void test_no_resurrection_range(void) {
  storage *s = setup();
  req_cell cs[] = {{B("c1"), B("1")}, {B("c2"), B("2")}};
  req_row rows[] = {{B("r1"), 2, cs}, {B("r2"), 2, cs}};
  storage_put(s, &T1, B("P"), rows, 2, 100, 0, 1000);
  storage_put(s, &T1, B("R"), rows, 2, 100, 0, 1000);
  compact_at(s, 1000);
  CU_ASSERT_EQUAL(raw(s, 1), 8);
  del(s, &T1, STORAGE_DELETE_PARTITION, B("P"), B(""), NULL, 200, 1000);
  del(s, &T1, STORAGE_DELETE_ROW, B("R"), B("r1"), NULL, 200, 1000);
  CU_ASSERT_EQUAL(storage_flush(s), 0);
  CU_ASSERT(strncmp(info(s, "storage.files_per_level"), "1/", 2) == 0);
  compact_at(s, 1000);   /* gc_grace 0: the tombstones are purgeable */
  CU_ASSERT_EQUAL(raw(s, 1), 2);
  int more;
  storage_query q = {.pk = B("P"), .limit = 10};
  CU_ASSERT_STRING_EQUAL(slice(s, &T1, &q, 1000, &more), "");
  q.pk = B("R");
  CU_ASSERT_STRING_EQUAL(slice(s, &T1, &q, 1000, &more), "r2:c1=1,c2=2");
  teardown(s);
}

static void put_rows(storage *s, const char *const *cks, const size_t *lens,
                     int n) {
  for (int i = 0; i < n; i++)
    put1(s, &T3, B("p"), BN(cks[i], lens[i]), B("x"), B("v"), 100, 0, 1000);
}

static void test_slice_bounds(void) {
  storage *s = setup();
  const char *cks[] = {"a", "b", "b\0", "b\0\0", "c", "d", "e", ""};
  const size_t lens[] = {1, 1, 2, 3, 1, 1, 1, 0};
  put_rows(s, cks, lens, 8);
  int more = -1;
  storage_query q = {.pk = B("p"), .limit = 100};
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
      ":x=v;a:x=v;b:x=v;b0:x=v;b00:x=v;c:x=v;d:x=v;e:x=v");
  CU_ASSERT_EQUAL(more, 0);
  q.has_start = 1;
  q.start = B("b");
  q.has_end = 1;
  q.end = B("d");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "b:x=v;b0:x=v;b00:x=v;c:x=v;d:x=v");
  q.start_exclusive = 1;     /* resume after "b": its extensions follow */
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "b0:x=v;b00:x=v;c:x=v;d:x=v");
  q.start = BN("b\0", 2);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         "b00:x=v;c:x=v;d:x=v");
  q.start_exclusive = 0;
  q.end = B("b");            /* inclusive end excludes "b\0" */
  q.start = B("b");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "b:x=v");
  q.start = B("d");          /* start after end: nothing */
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "");
  q.start = B("");           /* empty start is the first row */
  q.end = B("");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), ":x=v");

  /* limit and more */
  storage_query l = {.pk = B("p"), .limit = 2, .has_start = 1,
                     .start = B("a")};
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &l, 1000, &more), "a:x=v;b:x=v");
  CU_ASSERT_EQUAL(more, 1);
  l.limit = 3;
  l.start = B("c");
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &l, 1000, &more), "c:x=v;d:x=v;e:x=v");
  CU_ASSERT_EQUAL(more, 0);
  l.has_end = 1;             /* the limit is reached exactly at the end */
  l.end = B("d");
  l.limit = 2;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &l, 1000, &more), "c:x=v;d:x=v");
  CU_ASSERT_EQUAL(more, 0);
  l.limit = 1;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &l, 1000, &more), "c:x=v");
  CU_ASSERT_EQUAL(more, 1);
  /* more counts live rows only: dead rows after the limit do not count */
  del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("d"), NULL, 200, 1000);
  del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("e"), NULL, 200, 1000);
  l.has_end = 0;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &l, 1000, &more), "c:x=v");
  CU_ASSERT_EQUAL(more, 0);
  /* paging through everything, one row a page, resuming exclusively */
  storage_query pg = {.pk = B("p"), .limit = 1};
  char seen[256] = "", last[8];
  size_t nlast = 0;
  for (int page = 0; page < 20; page++) {
    result r;
    result_init(&r);
    CU_ASSERT_EQUAL_FATAL(storage_read(s, &T3, &pg, 1000, &r, &more), 0);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
    nlast = r.rows[0].nck;
    memcpy(last, r.rows[0].ck, nlast);
    size_t at = strlen(seen);
    show(r.rows[0].ck, nlast, seen, &at);
    seen[at++] = ' ';
    seen[at] = '\0';
    result_free(&r);
    if (!more) break;
    pg.has_start = 1;
    pg.start_exclusive = 1;
    pg.start = BN(last, nlast);
  }
  CU_ASSERT_STRING_EQUAL(seen, " a b b0 b00 c ");
  l.limit = 0;
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(storage_read(s, &T3, &l, 1000, &r, &more), CELLAR_EINVAL);
  result_free(&r);
  teardown(s);
}

static void test_column_filter(void) {
  storage *s = setup();
  req_cell c1[] = {{B("c1"), B("1")}, {B("c2"), B("2")}, {B("c3"), B("3")}};
  req_cell c2[] = {{B("c3"), B("33")}};
  req_row rows[] = {{B("r1"), 3, c1}, {B("r2"), 1, c2}};
  storage_put(s, &T3, B("p"), rows, 2, 100, 0, 1000);
  int more;
  cbytes few[] = {B("c2"), B("c1")};
  storage_query q = {.pk = B("p"), .limit = 10, .cols = few, .ncols = 2};
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r1:c1=1,c2=2");
  /* the filter decides which rows count for limit and more */
  q.limit = 1;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r1:c1=1,c2=2");
  CU_ASSERT_EQUAL(more, 0);
  cbytes many[] = {B("z1"), B("z2"), B("c3"), B("z3"), B("z4"), B("z5"),
                   B("z6"), B("z7"), B("z8"), B("z9"), B("c")};
  storage_query m = {.pk = B("p"), .limit = 10, .cols = many, .ncols = 11};
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &m, 1000, &more), "r1:c3=3;r2:c3=33");
  m.limit = 1;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &m, 1000, &more), "r1:c3=3");
  CU_ASSERT_EQUAL(more, 1);
  cbytes none[] = {B("nope")};
  storage_query n = {.pk = B("p"), .limit = 10, .cols = none, .ncols = 1};
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &n, 1000, &more), "");
  teardown(s);
}

static void test_drop_table(void) {
  storage *s = setup();
  put1(s, &T2, B("p"), B("r"), B("c"), B("v"), 100, 0, 1000);
  put1(s, &T2, B("q"), B("r"), B("c"), B("v"), 100, 0, 1000);
  del(s, &T2, STORAGE_DELETE_ROW, B("q"), B("x"), NULL, 100, 1000);
  put1(s, &T3, B("p"), B("r"), B("c"), B("v"), 100, 0, 1000);
  table_def tmax = T3;
  tmax.id = UINT64_MAX;
  put1(s, &tmax, B("p"), B("r"), B("c"), B("v"), 100, 0, 1000);
  CU_ASSERT_EQUAL(raw(s, 2), 3);
  CU_ASSERT_EQUAL(storage_drop_table(s, 2), 0);
  CU_ASSERT_EQUAL(raw(s, 2), 0);
  CU_ASSERT(!get1(s, &T2, B("p"), B("r"), B("c"), 1000, NULL, 0, NULL));
  CU_ASSERT_EQUAL(raw(s, 3), 1);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, NULL, 0, NULL));
  /* the last possible table id (no 8-byte end bound) */
  CU_ASSERT_EQUAL(raw(s, UINT64_MAX), 1);
  CU_ASSERT_EQUAL(storage_drop_table(s, UINT64_MAX), 0);
  CU_ASSERT_EQUAL(raw(s, UINT64_MAX), 0);
  CU_ASSERT_EQUAL(raw(s, 3), 1);
  /* new writes after the drop are visible */
  put1(s, &T2, B("p"), B("r"), B("c"), B("v"), 50, 0, 1000);
  CU_ASSERT(get1(s, &T2, B("p"), B("r"), B("c"), 1000, NULL, 0, NULL));
  teardown(s);
}

static void test_reopen(void) {
  storage *s = setup();
  put1(s, &T3, B("p"), B("r"), B("c"), B("durable"), 100, 0, 1000);
  del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("gone"), NULL, 100, 1000);
  CU_ASSERT_EQUAL(storage_system_put(s, "k", 1, "sys", 3), 0);
  storage_close(s);   /* memtable only: recovered from the WAL */
  s = open_at(dir, 1);
  char v[16];
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "durable");
  CU_ASSERT_EQUAL(raw(s, 3), 2);
  storage_flush(s);
  storage_close(s);
  s = open_at(dir, 1);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  teardown(s);
}

static void test_binary_keys(void) {
  storage *s = setup();
  const char pk[] = "\0\xff\0", ck[] = "\xff\0", col[] = "\0";
  const char val[] = "\0\0\xff";
  CU_ASSERT_EQUAL(put1(s, &T3, BN(pk, 3), BN(ck, 2), BN(col, 1), BN(val, 3),
                       100, 0, 1000), 0);
  /* partitions that differ only by zero bytes stay apart */
  put1(s, &T3, BN(pk, 0), BN(ck, 2), BN(col, 1), B("empty-pk"), 100, 0, 1000);
  put1(s, &T3, BN(pk, 1), BN(ck, 2), BN(col, 1), B("one-zero"), 100, 0, 1000);
  put1(s, &T3, BN(pk, 3), BN(ck, 0), BN(col, 0), B("empty-ck-col"), 100, 0,
       1000);
  storage_query q = {.pk = BN(pk, 3), .limit = 10};
  int more;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more),
                         ":=empty-ck-col;F0:0=00F");
  q.pk = BN(pk, 0);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "F0:0=empty-pk");
  q.pk = BN(pk, 1);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "F0:0=one-zero");
  q.pk = BN(pk, 2);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "");
  /* empty clustering key: get, delete */
  CU_ASSERT(get1(s, &T3, BN(pk, 3), B(""), B(""), 1000, NULL, 0, NULL));
  del(s, &T3, STORAGE_DELETE_ROW, BN(pk, 3), B(""), NULL, 100, 1000);
  CU_ASSERT(!get1(s, &T3, BN(pk, 3), B(""), B(""), 1000, NULL, 0, NULL));
  q.pk = BN(pk, 3);
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "F0:0=00F");
  teardown(s);
}

static void test_limits(void) {
  storage *s = setup();
  static uint8_t big[CELLAR_MAX_VALUE_BYTES + 1];
  CU_ASSERT_EQUAL(put1(s, &T3, BN(big, CELLAR_MAX_KEY_BYTES + 1), B("r"),
                       B("c"), B("v"), 1, 0, 1000), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), BN(big, CELLAR_MAX_KEY_BYTES + 1),
                       B("c"), B("v"), 1, 0, 1000), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"),
                       BN(big, CELLAR_MAX_COLUMN_BYTES + 1), B("v"), 1, 0,
                       1000), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"), B("c"),
                       BN(big, CELLAR_MAX_VALUE_BYTES + 1), 1, 0, 1000),
                  CELLAR_ETOOBIG);
  /* the largest allowed sizes work, all zero bytes (worst-case escaping) */
  CU_ASSERT_EQUAL(put1(s, &T3, BN(big, CELLAR_MAX_KEY_BYTES),
                       BN(big, CELLAR_MAX_KEY_BYTES),
                       BN(big, CELLAR_MAX_COLUMN_BYTES),
                       BN(big, CELLAR_MAX_VALUE_BYTES), 1, 0, 1000), 0);
  storage_query q = {.pk = BN(big, CELLAR_MAX_KEY_BYTES), .limit = 1};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(storage_read(s, &T3, &q, 1000, &r, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
  CU_ASSERT_EQUAL(r.rows[0].nck, CELLAR_MAX_KEY_BYTES);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nname, CELLAR_MAX_COLUMN_BYTES);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nvalue, CELLAR_MAX_VALUE_BYTES);
  result_free(&r);
  teardown(s);
}

static void test_checkpoint(void) {
  storage *s = setup();
  put1(s, &T3, B("p"), B("r"), B("c"), B("snap"), 100, 0, 1000);
  char cp[1024];
  snprintf(cp, sizeof cp, "%s/checkpoint", dir);
  CU_ASSERT_EQUAL(storage_checkpoint(s, cp), 0);
  CU_ASSERT_NOT_EQUAL(storage_checkpoint(s, cp), 0);   /* must not exist */
  put1(s, &T3, B("p"), B("r2"), B("c"), B("after"), 100, 0, 1000);
  storage *c = open_at(cp, 1);
  char v[16];
  CU_ASSERT(get1(c, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "snap");
  CU_ASSERT(!get1(c, &T3, B("p"), B("r2"), B("c"), 1000, v, sizeof v, NULL));
  storage_close(c);
  teardown(s);
}

static void test_gc_lookup(void) {
  /* without a lookup the filter keeps everything */
  dir = testutil_tmpdir("storage");
  storage *s = open_at(dir, 0);
  table_def unknown = T3;
  unknown.id = 99;
  put1(s, &unknown, B("p"), B("r"), B("c"), B("v"), 100, 0, 1000);
  put1(s, &T1, B("p"), B("r"), B("c"), B("v"), 100, 1, 1000);
  compact_at(s, 5000);
  CU_ASSERT_EQUAL(raw(s, 99), 1);
  CU_ASSERT_EQUAL(raw(s, 1), 1);
  /* with one, an unknown table's data goes */
  storage_set_gc_lookup(s, gc_lookup, NULL);
  compact_at(s, 5000);
  CU_ASSERT_EQUAL(raw(s, 99), 0);
  CU_ASSERT_EQUAL(raw(s, 1), 0);
  teardown(s);
}

typedef struct scan_ctx {
  char seen[256];
  int stop_after;
  int calls;
} scan_ctx;

static int scan_cb(void *arg, const uint8_t *k, size_t nk, const uint8_t *v,
                   size_t nv) {
  scan_ctx *c = arg;
  size_t at = strlen(c->seen);
  snprintf(c->seen + at, sizeof c->seen - at, "%.*s=%.*s ", (int)nk, k,
           (int)nv, v);
  return ++c->calls == c->stop_after ? 7 : 0;
}

static void test_system_cf(void) {
  storage *s = setup();
  CU_ASSERT_EQUAL(storage_system_put(s, "ks/b", 4, "2", 1), 0);
  CU_ASSERT_EQUAL(storage_system_put(s, "ks/a", 4, "1", 1), 0);
  CU_ASSERT_EQUAL(storage_system_put(s, "kt/a", 4, "3", 1), 0);
  CU_ASSERT_EQUAL(storage_system_put(s, "k", 1, "0", 1), 0);
  scan_ctx c = {"", 0, 0};
  CU_ASSERT_EQUAL(storage_system_scan(s, "ks/", 3, scan_cb, &c), 0);
  CU_ASSERT_STRING_EQUAL(c.seen, "ks/a=1 ks/b=2 ");
  scan_ctx all = {"", 0, 0};
  CU_ASSERT_EQUAL(storage_system_scan(s, "", 0, scan_cb, &all), 0);
  CU_ASSERT_STRING_EQUAL(all.seen, "k=0 ks/a=1 ks/b=2 kt/a=3 ");
  scan_ctx stop = {"", 2, 0};
  CU_ASSERT_EQUAL(storage_system_scan(s, "k", 1, scan_cb, &stop), 7);
  CU_ASSERT_EQUAL(stop.calls, 2);
  CU_ASSERT_EQUAL(storage_system_delete(s, "ks/a", 4), 0);
  scan_ctx d = {"", 0, 0};
  CU_ASSERT_EQUAL(storage_system_scan(s, "ks/", 3, scan_cb, &d), 0);
  CU_ASSERT_STRING_EQUAL(d.seen, "ks/b=2 ");
  /* system keys are not data */
  CU_ASSERT_EQUAL(raw(s, 0x6B732F6200000000ull), 0);
  teardown(s);
}

static void test_info(void) {
  storage *s = setup();
  put1(s, &T3, B("p"), B("r"), B("c"), B("v"), 100, 0, 1000);
  CU_ASSERT(atoll(info(s, "storage.memtable_bytes")) > 0);
  storage_flush(s);
  CU_ASSERT(atoll(info(s, "storage.estimate_keys")) >= 1);
  CU_ASSERT(atoll(info(s, "storage.sst_bytes")) > 0);
  info(s, "storage.live_data_bytes");
  info(s, "storage.block_cache_bytes");
  CU_ASSERT(strncmp(info(s, "storage.files_per_level"), "1/0/", 4) == 0);
  teardown(s);
}

static void test_open_errors(void) {
  storage_options o;
  storage_options_init(&o);
  CU_ASSERT_EQUAL(o.cache_bytes, 64u << 20);
  CU_ASSERT_EQUAL(o.write_buffer_bytes, 32u << 20);
  CU_ASSERT_EQUAL(o.background_jobs, 2);
  storage *s = (storage *)1;
  CU_ASSERT_EQUAL(storage_open(&o, &s), CELLAR_EINVAL);   /* no path */
  CU_ASSERT_PTR_NULL(s);
  o.path = "/proc/cellar-cannot-create-this";
  CU_ASSERT_EQUAL(storage_open(&o, &s), CELLAR_ESTORAGE);
  CU_ASSERT_PTR_NULL(s);
  /* sync_writes on: writes still work */
  dir = testutil_tmpdir("storage");
  o.path = dir;
  o.sync_writes = 1;
  CU_ASSERT_EQUAL_FATAL(storage_open(&o, &s), 0);
  CU_ASSERT_EQUAL(put1(s, &T3, B("p"), B("r"), B("c"), B("v"), 1, 0, 1), 0);
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1, NULL, 0, NULL));
  teardown(s);
}

/* ------------------------------------------------------ raw entries */

/* A second database beside the fixture's, for replicas. */
static storage *open_replica(char **path) {
  *path = testutil_tmpdir("replica");
  CU_ASSERT_PTR_NOT_NULL_FATAL(*path);
  return open_at(*path, 1);
}

static void close_replica(storage *s, char *path) {
  storage_close(s);
  testutil_rmrf(path);
  free(path);
}

static int add_cb(void *arg, cbytes key, cbytes value) {
  return storage_entries_add(arg, key, value);
}

/* Every entry of a table, in key order (the whole ring). */
static void dump(storage *s, uint64_t table, storage_entries *out) {
  storage_entries_init(out);
  CU_ASSERT_EQUAL_FATAL(storage_scan_range(s, table, 0, 0, add_cb, out), 0);
}

static int same_bytes(cbytes a, cbytes b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int same_entries(const storage_entry *a, size_t na,
                        const storage_entry *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (!same_bytes(a[i].key, b[i].key) || !same_bytes(a[i].value, b[i].value))
      return 0;
  return 1;
}

/* 1 when the tables' stored entries of the two databases are identical. */
static int same_tables(storage *a, storage *b, const uint64_t *tables,
                       size_t n) {
  int same = 1;
  for (size_t i = 0; i < n; i++) {
    storage_entries x, y;
    dump(a, tables[i], &x);
    dump(b, tables[i], &y);
    if (x.n == 0 || !same_entries(x.e, x.n, y.e, y.n)) same = 0;
    storage_entries_free(&x);
    storage_entries_free(&y);
  }
  return same;
}

static int sorted_unique(const storage_entry *e, size_t n) {
  for (size_t i = 1; i < n; i++) {
    size_t m = e[i - 1].key.n < e[i].key.n ? e[i - 1].key.n : e[i].key.n;
    int c = memcmp(e[i - 1].key.p, e[i].key.p, m);
    if (c > 0 || (c == 0 && e[i - 1].key.n >= e[i].key.n)) return 0;
  }
  return 1;
}

/* A result as slice() prints it. */
static char *render(const result *r) {
  static char out[4096];
  size_t at = 0;
  for (size_t i = 0; i < r->nrows; i++) {
    if (i) out[at++] = ';';
    show(r->rows[i].ck, r->rows[i].nck, out, &at);
    out[at++] = ':';
    for (size_t j = 0; j < r->rows[i].ncells; j++) {
      const res_cell *c = &r->rows[i].cells[j];
      if (j) out[at++] = ',';
      show(c->name, c->nname, out, &at);
      out[at++] = '=';
      show(c->value, c->nvalue, out, &at);
    }
  }
  out[at] = '\0';
  return out;
}

/* What a coordinator would show from a list of entries. */
static char *visible(const table_def *t, const storage_query *q,
                     const storage_entries *l, uint32_t now, int *more) {
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL_FATAL(storage_entries_to_result(t, q, l->e, l->n, now, &r,
                                                  more), 0);
  char *s = render(&r);
  result_free(&r);
  return s;
}

static void read_all(storage *s, const table_def *t, cbytes pk,
                     storage_entries *out) {
  storage_query q = {.pk = pk, .limit = 100000};
  int more = -1;
  storage_entries_init(out);
  CU_ASSERT_EQUAL_FATAL(storage_read_entries(s, t, &q, out, &more), 0);
  CU_ASSERT_EQUAL(more, 0);
}

static void test_entries_list(void) {
  storage_entries l;
  storage_entries_init(&l);
  enum { N = 3000 };
  static uint8_t big[(1u << 20) * 2 + 3];
  memset(big, 0xAB, sizeof big);
  for (int i = 0; i < N; i++) {
    char k[32], v[32];
    snprintf(k, sizeof k, "key-%d", i);
    snprintf(v, sizeof v, "value-%d", i * 7);
    if (i == 1000) {   /* larger than a block */
      CU_ASSERT_EQUAL_FATAL(storage_entries_add(&l, B(k), BN(big, sizeof big)),
                            0);
      continue;
    }
    CU_ASSERT_EQUAL_FATAL(storage_entries_add(&l, B(k), B(v)), 0);
  }
  CU_ASSERT_EQUAL(storage_entries_add(&l, BN(NULL, 0), BN(NULL, 0)), 0);
  CU_ASSERT_EQUAL_FATAL(l.n, N + 1);
  int bad = 0;
  for (int i = 0; i < N; i++) {   /* nothing moved while the list grew */
    char k[32], v[32];
    snprintf(k, sizeof k, "key-%d", i);
    snprintf(v, sizeof v, "value-%d", i * 7);
    if (!same_bytes(l.e[i].key, B(k))) bad++;
    if (i == 1000 ? !same_bytes(l.e[i].value, BN(big, sizeof big))
                  : !same_bytes(l.e[i].value, B(v)))
      bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(l.e[N].key.n + l.e[N].value.n, 0);
  storage_entries_free(&l);
  CU_ASSERT_EQUAL(l.n, 0);
  storage_entries_free(&l);   /* twice is harmless */
}

/* The entries of a put or delete, applied on another database, give what
** storage_put / storage_delete give: the same reads, the same bytes. */
static void test_entries_replicate(void) {
  storage *s = setup();
  char *dir2;
  storage *r = open_replica(&dir2);
  req_cell c1[] = {{B("b"), B("1b")}, {B("a"), B("1a")}, {B("a"), B("1z")}};
  req_cell c2[] = {{B("z"), B("2z")}};
  req_row rows[] = {{B("r2"), 1, c2}, {B("r1"), 3, c1}};
  storage_entries l;
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_put_entries(&T3, B("p"), rows, 2, 100, 50, 1000,
                                      &l), 0);
  /* sorted, the cell written twice merged (the greater value wins) */
  CU_ASSERT_EQUAL(l.n, 3);
  CU_ASSERT(sorted_unique(l.e, l.n));
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p"), rows, 2, 100, 50, 1000), 0);
  size_t written = 99;
  CU_ASSERT_EQUAL(storage_apply_entries(r, l.e, l.n, &written), 0);
  CU_ASSERT_EQUAL(written, 3);
  storage_entries_free(&l);

  cbytes cols[] = {B("z"), B("z"), B("y")};
  struct {
    int scope;
    const char *pk, *ck;
    size_t ncols;
    int64_t ts;
    size_t n;
  } dels[] = {
    {STORAGE_DELETE_CELLS, "p", "r2", 3, 110, 2},   /* z twice: one entry */
    {STORAGE_DELETE_ROW, "p", "r1", 0, 90, 1},
    {STORAGE_DELETE_PARTITION, "q", "", 0, 95, 1},
  };
  for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
    storage_entries_init(&l);
    CU_ASSERT_EQUAL(storage_delete_entries(&T3, B(dels[i].pk), dels[i].scope,
                                           B(dels[i].ck), cols, dels[i].ncols,
                                           dels[i].ts, 1001, &l), 0);
    CU_ASSERT_EQUAL(l.n, dels[i].n);
    CU_ASSERT(sorted_unique(l.e, l.n));
    CU_ASSERT_EQUAL(storage_delete(s, &T3, B(dels[i].pk), dels[i].scope,
                                   B(dels[i].ck), cols, dels[i].ncols,
                                   dels[i].ts, 1001), 0);
    CU_ASSERT_EQUAL(storage_apply_entries(r, l.e, l.n, NULL), 0);
    storage_entries_free(&l);
  }
  storage_query q = {.pk = B("p"), .limit = 100};
  int more;
  char a[4096];
  snprintf(a, sizeof a, "%s", slice(s, &T3, &q, 1000, &more));
  CU_ASSERT_STRING_EQUAL(a, "r1:a=1z,b=1b");
  CU_ASSERT_STRING_EQUAL(slice(r, &T3, &q, 1000, &more), a);
  const uint64_t tables[] = {3};
  CU_ASSERT(same_tables(s, r, tables, 1));

  /* errors as storage_put / storage_delete, and out keeps what it had */
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_entries_add(&l, B("k"), B("v")), 0);
  req_row empty = {B("r"), 0, NULL};
  CU_ASSERT_EQUAL(storage_put_entries(&T3, B("p"), &empty, 1, 1, 0, 1, &l),
                  CELLAR_EEMPTY);
  static uint8_t big[CELLAR_MAX_KEY_BYTES + 1];
  CU_ASSERT_EQUAL(storage_put_entries(&T3, BN(big, sizeof big), rows, 2, 1, 0,
                                      1, &l), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(storage_delete_entries(&T3, B("p"), 9, B(""), NULL, 0, 1, 1,
                                         &l), CELLAR_EINVAL);
  CU_ASSERT_EQUAL(storage_delete_entries(&T3, B("p"), STORAGE_DELETE_CELLS,
                                         B("r"), NULL, 0, 1, 1, &l),
                  CELLAR_EEMPTY);
  CU_ASSERT_EQUAL(l.n, 1);
  /* appending to a list that holds entries */
  CU_ASSERT_EQUAL(storage_put_entries(&T3, B("p"), rows, 2, 1, 0, 1, &l), 0);
  CU_ASSERT_EQUAL(l.n, 4);
  CU_ASSERT(same_bytes(l.e[0].key, B("k")));
  storage_entries_free(&l);
  close_replica(r, dir2);
  teardown(s);
}

/* Builds the entries of one put of a single cell. */
static void put_entry(storage_entries *l, const table_def *t, const char *pk,
                      const char *ck, const char *col, const char *val,
                      int64_t ts, uint32_t ttl) {
  req_cell c = {B(col), B(val)};
  req_row row = {B(ck), 1, &c};
  CU_ASSERT_EQUAL_FATAL(storage_put_entries(t, B(pk), &row, 1, ts, ttl, 1000,
                                            l), 0);
}

static void del_entry(storage_entries *l, const table_def *t, int scope,
                      const char *pk, const char *ck, const char *col,
                      int64_t ts) {
  cbytes c = B(col ? col : "");
  CU_ASSERT_EQUAL_FATAL(storage_delete_entries(t, B(pk), scope, B(ck), &c,
                                               col ? 1 : 0, ts, 1000, l), 0);
}

/* Five sets of entries over two tables, several partitions, every kind of
** entry; the same key written by several sets. */
enum { NSETS = 5 };
static void build_sets(storage_entries set[NSETS]) {
  for (int i = 0; i < NSETS; i++) storage_entries_init(&set[i]);
  req_cell c1[] = {{B("a"), B("1")}, {B("b"), B("2")}};
  req_cell c2[] = {{B("a"), B("3")}};
  req_row rows[] = {{B("r1"), 2, c1}, {B("r2"), 1, c2}};
  CU_ASSERT_EQUAL(storage_put_entries(&T3, B("p1"), rows, 2, 100, 0, 1000,
                                      &set[0]), 0);
  del_entry(&set[1], &T3, STORAGE_DELETE_ROW, "p1", "r1", NULL, 150);
  put_entry(&set[1], &T3, "p2", "r", "b", "late", 280, 0);
  put_entry(&set[2], &T3, "p1", "r1", "a", "new", 200, 0);
  put_entry(&set[2], &T2, "p2", "r", "c", "ttl", 50, 10);
  put_entry(&set[2], &T3, "p1", "r1", "a", "also", 200, 0);   /* tie */
  del_entry(&set[3], &T3, STORAGE_DELETE_PARTITION, "p1", "", NULL, 120);
  del_entry(&set[3], &T2, STORAGE_DELETE_CELLS, "p2", "r", "c", 40);
  del_entry(&set[4], &T3, STORAGE_DELETE_CELLS, "p2", "r", "a", 300);
  put_entry(&set[4], &T3, "p2", "r", "a", "x", 299, 0);
  put_entry(&set[4], &T3, "p1", "r1", "a", "old", 90, 0);
}

/* Applying is idempotent and commutative: any order, any grouping, any
** repetition of the same entries gives byte-identical databases. */
static void test_entries_apply_order(void) {
  storage *s = setup();
  char *d2, *d3, *d4;
  storage *r2 = open_replica(&d2), *r3 = open_replica(&d3),
          *r4 = open_replica(&d4);
  storage_entries set[NSETS];
  build_sets(set);
  size_t written, total = 0;
  for (int i = 0; i < NSETS; i++) {   /* in order */
    CU_ASSERT_EQUAL(storage_apply_entries(s, set[i].e, set[i].n, &written), 0);
    total += written;
  }
  CU_ASSERT(total > 0);
  for (int i = NSETS; i-- > 0;)       /* reversed */
    CU_ASSERT_EQUAL(storage_apply_entries(r2, set[i].e, set[i].n, NULL), 0);
  /* everything in one call: unsorted, two tables, duplicate keys */
  storage_entries all;
  storage_entries_init(&all);
  for (int i = NSETS; i-- > 0;)
    for (size_t j = set[i].n; j-- > 0;)
      CU_ASSERT_EQUAL(storage_entries_add(&all, set[i].e[j].key,
                                          set[i].e[j].value), 0);
  CU_ASSERT_EQUAL(storage_apply_entries(r3, all.e, all.n, &written), 0);
  CU_ASSERT(written > 0 && written < all.n);   /* duplicates merged first */
  /* one entry at a time, in a scrambled order, each twice */
  for (size_t k = 0; k < 2 * all.n; k++) {
    size_t j = (k * 7 + 3) % all.n;
    CU_ASSERT_EQUAL(storage_apply_entries(r4, &all.e[j], 1, NULL), 0);
  }
  const uint64_t tables[] = {2, 3};
  CU_ASSERT(same_tables(s, r2, tables, 2));
  CU_ASSERT(same_tables(s, r3, tables, 2));
  CU_ASSERT(same_tables(s, r4, tables, 2));
  /* again: nothing wins, nothing is written, nothing changes */
  for (int i = 0; i < NSETS; i++) {
    CU_ASSERT_EQUAL(storage_apply_entries(s, set[i].e, set[i].n, &written), 0);
    CU_ASSERT_EQUAL(written, 0);
  }
  CU_ASSERT(same_tables(s, r2, tables, 2));
  /* and what the merge rule says shows */
  storage_query q = {.pk = B("p1"), .limit = 10};
  int more;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1000, &more), "r1:a=new");
  CU_ASSERT_STRING_EQUAL(slice(r4, &T3, &q, 1000, &more), "r1:a=new");
  q.pk = B("p2");
  CU_ASSERT_STRING_EQUAL(slice(r3, &T3, &q, 1000, &more), "r:b=late");
  CU_ASSERT_STRING_EQUAL(slice(r3, &T2, &q, 1000, &more), "r:c=ttl");
  CU_ASSERT_STRING_EQUAL(slice(r3, &T2, &q, 1060, &more), "");
  storage_entries_free(&all);
  for (int i = 0; i < NSETS; i++) storage_entries_free(&set[i]);
  close_replica(r2, d2);
  close_replica(r3, d3);
  close_replica(r4, d4);
  teardown(s);
}

/* An older entry does not overwrite a newer one, in the memtable or in an
** SST file; the identical entry is not written again. */
static void test_entries_older_loses(void) {
  storage *s = setup();
  storage_entries newer, older, tomb_old;
  storage_entries_init(&newer);
  storage_entries_init(&older);
  storage_entries_init(&tomb_old);
  put_entry(&newer, &T3, "p", "r", "c", "new", 200, 0);
  put_entry(&older, &T3, "p", "r", "c", "old", 199, 0);
  del_entry(&tomb_old, &T3, STORAGE_DELETE_CELLS, "p", "r", "c", 150);
  size_t written;
  CU_ASSERT_EQUAL(storage_apply_entries(s, newer.e, newer.n, &written), 0);
  CU_ASSERT_EQUAL(written, 1);
  CU_ASSERT_EQUAL(storage_apply_entries(s, older.e, older.n, &written), 0);
  CU_ASSERT_EQUAL(written, 0);
  CU_ASSERT_EQUAL(storage_apply_entries(s, tomb_old.e, tomb_old.n, &written),
                  0);
  CU_ASSERT_EQUAL(written, 0);
  CU_ASSERT_EQUAL(storage_flush(s), 0);
  CU_ASSERT_EQUAL(storage_apply_entries(s, older.e, older.n, &written), 0);
  CU_ASSERT_EQUAL(written, 0);
  CU_ASSERT_EQUAL(storage_apply_entries(s, newer.e, newer.n, &written), 0);
  CU_ASSERT_EQUAL(written, 0);
  char v[16];
  int64_t ts;
  CU_ASSERT(get1(s, &T3, B("p"), B("r"), B("c"), 1000, v, sizeof v, &ts));
  CU_ASSERT_STRING_EQUAL(v, "new");
  CU_ASSERT_EQUAL(ts, 200);
  /* older and newer in one call: the newer is written */
  storage_entries both;
  storage_entries_init(&both);
  put_entry(&both, &T3, "q", "r", "c", "new", 200, 0);
  put_entry(&both, &T3, "q", "r", "c", "old", 100, 0);
  CU_ASSERT_EQUAL(storage_apply_entries(s, both.e, both.n, &written), 0);
  CU_ASSERT_EQUAL(written, 1);
  CU_ASSERT(get1(s, &T3, B("q"), B("r"), B("c"), 1000, v, sizeof v, NULL));
  CU_ASSERT_STRING_EQUAL(v, "new");
  CU_ASSERT_EQUAL(storage_apply_entries(s, NULL, 0, &written), 0);
  CU_ASSERT_EQUAL(written, 0);
  storage_entries_free(&both);
  storage_entries_free(&newer);
  storage_entries_free(&older);
  storage_entries_free(&tomb_old);
  teardown(s);
}

/* read_entries returns what storage_read hides: tombstones of every kind,
** expired cells, shadowed cells. The limit counts rows with any entry. */
static void test_read_entries(void) {
  storage *s = setup();
  put1(s, &T3, B("p"), B("a"), B("x"), B("live"), 300, 0, 1000);
  put1(s, &T3, B("p"), B("b"), B("x"), B("v"), 100, 0, 1000);
  del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("b"), NULL, 200, 1000);
  put1(s, &T3, B("p"), B("c"), B("x"), B("short"), 300, 10, 1000);
  put1(s, &T3, B("p"), B("d"), B("x"), B("v"), 300, 0, 1000);
  del(s, &T3, STORAGE_DELETE_CELLS, B("p"), B("d"), "x", 400, 1000);
  put1(s, &T3, B("p"), B("e"), B("x"), B("old"), 100, 0, 1000);
  put1(s, &T3, B("p"), B("e"), B("y"), B("live"), 300, 0, 1000);
  del(s, &T3, STORAGE_DELETE_PARTITION, B("p"), B(""), NULL, 250, 1000);
  put1(s, &T3, B("other"), B("a"), B("x"), B("v"), 100, 0, 1000);
  storage_query q = {.pk = B("p"), .limit = 100};
  int more = -1;
  CU_ASSERT_STRING_EQUAL(slice(s, &T3, &q, 1020, &more), "a:x=live;e:y=live");

  storage_entries l;
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &q, &l, &more), 0);
  CU_ASSERT_EQUAL(more, 0);
  /* pt, a.x, b.tomb, b.x, c.x, d.x, e.x, e.y */
  CU_ASSERT_EQUAL_FATAL(l.n, 8);
  CU_ASSERT(sorted_unique(l.e, l.n));
  int kinds[3] = {0, 0, 0}, tombs = 0, expiring = 0;
  for (size_t i = 0; i < l.n; i++) {
    keys_parts kp;
    cell c;
    CU_ASSERT_EQUAL_FATAL(keys_decode(l.e[i].key.p, l.e[i].key.n, &kp), 0);
    CU_ASSERT_EQUAL_FATAL(cell_decode(l.e[i].value.p, l.e[i].value.n, &c), 0);
    kinds[kp.kind]++;
    tombs += c.tombstone;
    expiring += c.expires_at != 0;
  }
  CU_ASSERT_EQUAL(kinds[KEYS_KIND_PARTITION], 1);
  CU_ASSERT_EQUAL(kinds[KEYS_KIND_ROW], 1);
  CU_ASSERT_EQUAL(kinds[KEYS_KIND_CELL], 6);
  CU_ASSERT_EQUAL(tombs, 3);
  CU_ASSERT_EQUAL(expiring, 1);
  /* the coordinator's view of this one replica is storage_read's */
  CU_ASSERT_STRING_EQUAL(visible(&T3, &q, &l, 1020, &more),
                         "a:x=live;e:y=live");
  CU_ASSERT_STRING_EQUAL(visible(&T3, &q, &l, 1005, &more),
                         "a:x=live;c:x=short;e:y=live");
  storage_entries_free(&l);

  /* limit 2 counts a and the dead row b; c follows: more */
  q.limit = 2;
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &q, &l, &more), 0);
  CU_ASSERT_EQUAL(l.n, 4);
  CU_ASSERT_EQUAL(more, 1);
  storage_entries_free(&l);
  /* bounds and a column filter: the partition and row tombstones come
  ** whatever the filter; rows with only filtered cells do not count */
  cbytes y = B("y");
  storage_query f = {.pk = B("p"), .limit = 2, .has_start = 1,
                     .start = B("b"), .cols = &y, .ncols = 1};
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &f, &l, &more), 0);
  CU_ASSERT_EQUAL(l.n, 3);   /* pt, b.tomb, e.y */
  CU_ASSERT_EQUAL(more, 0);
  f.start_exclusive = 1;
  storage_entries_free(&l);
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &f, &l, &more), 0);
  CU_ASSERT_EQUAL(l.n, 2);   /* pt, e.y */
  storage_entries_free(&l);
  /* errors as storage_read; out keeps what it had */
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_entries_add(&l, B("k"), B("v")), 0);
  f.limit = 0;
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &f, &l, &more), CELLAR_EINVAL);
  static uint8_t big[CELLAR_MAX_KEY_BYTES + 1];
  storage_query tb = {.pk = BN(big, sizeof big), .limit = 1};
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &tb, &l, &more),
                  CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(l.n, 1);
  /* an unknown partition: nothing */
  storage_query none = {.pk = B("none"), .limit = 5};
  CU_ASSERT_EQUAL(storage_read_entries(s, &T3, &none, &l, &more), 0);
  CU_ASSERT_EQUAL(l.n, 1);
  storage_entries_free(&l);
  teardown(s);
}

/* Two replicas, one of which missed deletes: merging their entries does
** not bring the deleted data back, in either order, and repairing both
** with the merged list makes them identical. */
static void test_entries_merge_no_resurrection(void) {
  storage *a = setup();
  char *dir2;
  storage *b = open_replica(&dir2);
  req_cell cs[] = {{B("x"), B("1")}, {B("y"), B("2")}};
  req_row rows[] = {{B("r1"), 2, cs}, {B("r2"), 2, cs}};
  for (int i = 0; i < 2; i++) {
    storage *s = i ? b : a;
    CU_ASSERT_EQUAL(storage_put(s, &T3, B("p"), rows, 2, 100, 0, 1000), 0);
    CU_ASSERT_EQUAL(storage_put(s, &T3, B("q"), rows, 1, 100, 0, 1000), 0);
  }
  /* a alone saw these deletes */
  del(a, &T3, STORAGE_DELETE_ROW, B("p"), B("r1"), NULL, 200, 1000);
  del(a, &T3, STORAGE_DELETE_CELLS, B("p"), B("r2"), "y", 200, 1000);
  del(a, &T3, STORAGE_DELETE_PARTITION, B("q"), B(""), NULL, 200, 1000);
  /* b alone saw a later write */
  put1(b, &T3, B("p"), B("r3"), B("x"), B("z"), 300, 0, 1000);

  storage_query q = {.pk = B("p"), .limit = 100};
  int more;
  CU_ASSERT_STRING_EQUAL(slice(b, &T3, &q, 1000, &more),
                         "r1:x=1,y=2;r2:x=1,y=2;r3:x=z");
  const char *pks[] = {"p", "q"};
  const char *want[] = {"r2:x=1;r3:x=z", ""};
  for (int k = 0; k < 2; k++) {
    storage_entries ea, eb, ab, ba;
    read_all(a, &T3, B(pks[k]), &ea);
    read_all(b, &T3, B(pks[k]), &eb);
    CU_ASSERT_NOT_EQUAL(storage_entries_digest(ea.e, ea.n),
                        storage_entries_digest(eb.e, eb.n));
    storage_entries_init(&ab);
    storage_entries_init(&ba);
    CU_ASSERT_EQUAL(storage_entries_merge(ea.e, ea.n, eb.e, eb.n, &ab), 0);
    CU_ASSERT_EQUAL(storage_entries_merge(eb.e, eb.n, ea.e, ea.n, &ba), 0);
    CU_ASSERT(sorted_unique(ab.e, ab.n));
    CU_ASSERT(same_entries(ab.e, ab.n, ba.e, ba.n));
    CU_ASSERT_EQUAL(storage_entries_digest(ab.e, ab.n),
                    storage_entries_digest(ba.e, ba.n));
    storage_query pq = {.pk = B(pks[k]), .limit = 100};
    CU_ASSERT_STRING_EQUAL(visible(&T3, &pq, &ab, 1000, &more), want[k]);
    CU_ASSERT_EQUAL(more, 0);
    /* merging with itself changes nothing */
    storage_entries aa;
    storage_entries_init(&aa);
    CU_ASSERT_EQUAL(storage_entries_merge(ab.e, ab.n, ab.e, ab.n, &aa), 0);
    CU_ASSERT(same_entries(aa.e, aa.n, ab.e, ab.n));
    storage_entries_free(&aa);
    /* read repair: both replicas take the merged list */
    CU_ASSERT_EQUAL(storage_apply_entries(a, ab.e, ab.n, NULL), 0);
    CU_ASSERT_EQUAL(storage_apply_entries(b, ab.e, ab.n, NULL), 0);
    CU_ASSERT_STRING_EQUAL(slice(b, &T3, &pq, 1000, &more), want[k]);
    storage_entries ra, rb;
    read_all(a, &T3, B(pks[k]), &ra);
    read_all(b, &T3, B(pks[k]), &rb);
    CU_ASSERT(same_entries(ra.e, ra.n, rb.e, rb.n));
    CU_ASSERT(same_entries(ra.e, ra.n, ab.e, ab.n));
    CU_ASSERT_EQUAL(storage_entries_digest(ra.e, ra.n),
                    storage_entries_digest(rb.e, rb.n));
    storage_entries_free(&ra);
    storage_entries_free(&rb);
    storage_entries_free(&ea);
    storage_entries_free(&eb);
    storage_entries_free(&ab);
    storage_entries_free(&ba);
  }
  /* an empty side */
  storage_entries x, m;
  read_all(a, &T3, B("p"), &x);
  storage_entries_init(&m);
  CU_ASSERT_EQUAL(storage_entries_merge(x.e, x.n, NULL, 0, &m), 0);
  CU_ASSERT(same_entries(x.e, x.n, m.e, m.n));
  storage_entries_free(&m);
  storage_entries_free(&x);
  close_replica(b, dir2);
  teardown(a);
}

/* storage_entries_to_result applies storage_read's rules (one
** implementation): over a partition's whole entry list, any query gives
** the rows and *more that storage_read gives. */
static void test_entries_to_result_matches_read(void) {
  storage *s = setup();
  const char *cks[] = {"a", "b", "b\0", "b\0\0", "c", "d", "e", ""};
  const size_t lens[] = {1, 1, 2, 3, 1, 1, 1, 0};
  put_rows(s, cks, lens, 8);
  put1(s, &T3, B("p"), B("c"), B("y"), B("w"), 100, 5, 1000);
  put1(s, &T3, B("p"), B("a"), B("y"), B("old"), 50, 0, 1000);
  del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("d"), NULL, 200, 1000);
  del(s, &T3, STORAGE_DELETE_CELLS, B("p"), B("e"), "x", 200, 1000);
  del(s, &T3, STORAGE_DELETE_PARTITION, B("p"), B(""), NULL, 60, 1000);
  put1(s, &T3, B("o"), B("a"), B("x"), B("other"), 100, 0, 1000);
  storage_entries l;
  read_all(s, &T3, B("p"), &l);
  /* another partition's entries in the list are ignored */
  storage_entries o, all;
  read_all(s, &T3, B("o"), &o);
  storage_entries_init(&all);
  CU_ASSERT_EQUAL(storage_entries_merge(l.e, l.n, o.e, o.n, &all), 0);

  cbytes y = B("y");
  storage_query qs[] = {
    {.pk = B("p"), .limit = 100},
    {.pk = B("p"), .limit = 2},
    {.pk = B("p"), .limit = 3, .has_start = 1, .start = B("b")},
    {.pk = B("p"), .limit = 2, .has_start = 1, .start = B("b"),
     .start_exclusive = 1, .has_end = 1, .end = B("c")},
    {.pk = B("p"), .limit = 1, .has_end = 1, .end = B("")},
    {.pk = B("p"), .limit = 1, .cols = &y, .ncols = 1},
    {.pk = B("p"), .limit = 5, .has_start = 1, .start = B("c")},
    {.pk = B("o"), .limit = 5},
  };
  uint32_t nows[] = {1000, 1010};
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
    for (int n = 0; n < 2; n++) {
      int m1 = -1, m2 = -2;
      char want[4096];
      snprintf(want, sizeof want, "%s", slice(s, &T3, &qs[i], nows[n], &m1));
      const storage_entries *src = qs[i].pk.p[0] == 'o' ? &all : &l;
      CU_ASSERT_STRING_EQUAL(visible(&T3, &qs[i], src, nows[n], &m2), want);
      CU_ASSERT_EQUAL(m1, m2);
      CU_ASSERT_STRING_EQUAL(visible(&T3, &qs[i], &all, nows[n], &m2), want);
      CU_ASSERT_EQUAL(m1, m2);
    }
  /* not sorted, not decodable */
  result r;
  result_init(&r);
  storage_entry two[2] = {l.e[1], l.e[0]};
  CU_ASSERT_EQUAL(storage_entries_to_result(&T3, &qs[0], two, 2, 1000, &r,
                                            NULL), CELLAR_EINVAL);
  uint8_t bad[64];
  memcpy(bad, l.e[1].value.p, l.e[1].value.n);
  bad[0] = 9;
  storage_entry one = {l.e[1].key, BN(bad, l.e[1].value.n)};
  CU_ASSERT_EQUAL(storage_entries_to_result(&T3, &qs[0], &one, 1, 1000, &r,
                                            NULL), CELLAR_EPROTO);
  storage_query zero = {.pk = B("p"), .limit = 0};
  CU_ASSERT_EQUAL(storage_entries_to_result(&T3, &zero, l.e, l.n, 1000, &r,
                                            NULL), CELLAR_EINVAL);
  result_free(&r);
  /* merge refuses unsorted input and undecodable values */
  storage_entries m;
  storage_entries_init(&m);
  CU_ASSERT_EQUAL(storage_entries_merge(two, 2, NULL, 0, &m), CELLAR_EINVAL);
  CU_ASSERT_EQUAL(storage_entries_merge(&one, 1, l.e, l.n, &m),
                  CELLAR_EPROTO);
  CU_ASSERT_EQUAL(m.n, 0);
  storage_entries_free(&m);
  storage_entries_free(&all);
  storage_entries_free(&o);
  storage_entries_free(&l);
  teardown(s);
}

/* storage_entries_digest of no entries, and of {"key": "value"},
** {"": "0123456789abcdef"} */
#define DIGEST_EMPTY 0x0bed98a60e87121eull
#define DIGEST_FIXED 0xcf175c91ba370a4dull

static void test_entries_digest(void) {
  storage *s = setup();
  req_cell cs[] = {{B("x"), B("value-one")}, {B("yy"), B("2")}};
  req_row rows[] = {{B("r1"), 2, cs}, {B("r2"), 1, cs}};
  CU_ASSERT_EQUAL(storage_put(s, &T3, B("p"), rows, 2, 100, 7, 1000), 0);
  del(s, &T3, STORAGE_DELETE_ROW, B("p"), B("r0"), NULL, 50, 1000);
  storage_entries l, l2;
  read_all(s, &T3, B("p"), &l);
  read_all(s, &T3, B("p"), &l2);
  CU_ASSERT_EQUAL_FATAL(l.n, 4);
  uint64_t d = storage_entries_digest(l.e, l.n);
  CU_ASSERT_EQUAL(d, storage_entries_digest(l2.e, l2.n));
  CU_ASSERT_EQUAL(storage_entries_digest(NULL, 0),
                  storage_entries_digest(l.e, 0));
  CU_ASSERT_NOT_EQUAL(d, storage_entries_digest(NULL, 0));
  /* pinned: the digest is compared between nodes, so it must not change
  ** from one build or version to the next */
  storage_entries fixed;
  storage_entries_init(&fixed);
  storage_entries_add(&fixed, B("key"), B("value"));
  storage_entries_add(&fixed, B(""), B("0123456789abcdef"));
  CU_ASSERT_EQUAL(storage_entries_digest(NULL, 0), DIGEST_EMPTY);
  CU_ASSERT_EQUAL(storage_entries_digest(fixed.e, fixed.n), DIGEST_FIXED);
  storage_entries_free(&fixed);
  /* any byte changed, anywhere: a different digest */
  storage_entries c;
  storage_entries_init(&c);
  for (size_t i = 0; i < l.n; i++)
    storage_entries_add(&c, l.e[i].key, l.e[i].value);
  int same = 0, tried = 0;
  for (size_t i = 0; i < c.n; i++)
    for (int part = 0; part < 2; part++) {
      cbytes *b = part ? &c.e[i].value : &c.e[i].key;
      uint8_t *p = (uint8_t *)b->p;
      for (size_t j = 0; j < b->n; j++)
        for (int bit = 0; bit < 8; bit++) {
          p[j] ^= (uint8_t)(1u << bit);
          same += storage_entries_digest(c.e, c.n) == d;
          tried++;
          p[j] ^= (uint8_t)(1u << bit);
        }
    }
  CU_ASSERT(tried > 500);
  CU_ASSERT_EQUAL(same, 0);
  CU_ASSERT_EQUAL(storage_entries_digest(c.e, c.n), d);
  /* an entry less, a byte less, bytes moved from key to value */
  CU_ASSERT_NOT_EQUAL(storage_entries_digest(c.e, c.n - 1), d);
  CU_ASSERT_NOT_EQUAL(storage_entries_digest(c.e + 1, c.n - 1), d);
  c.e[0].value.n--;
  CU_ASSERT_NOT_EQUAL(storage_entries_digest(c.e, c.n), d);
  c.e[0].value.n++;
  c.e[0].key.n--;
  c.e[0].value.p--;   /* same bytes, one more in the value */
  c.e[0].value.n++;
  CU_ASSERT_NOT_EQUAL(storage_entries_digest(c.e, c.n), d);
  storage_entries_free(&c);
  storage_entries_free(&l);
  storage_entries_free(&l2);
  teardown(s);
}

/* ----- token ranges */

enum { NPK = 21 };
typedef struct tok_pk {
  char pk[8];
  int64_t token;
} tok_pk;

static int tok_cmp(const void *a, const void *b) {
  const tok_pk *x = a, *y = b;
  return (x->token > y->token) - (x->token < y->token);
}

typedef struct names_ctx {
  char seen[512];
  int calls, stop_after;
} names_ctx;

/* Collects each entry's value (the partition's name) and checks it is in
** key order. */
static int names_cb(void *arg, cbytes key, cbytes value) {
  names_ctx *c = arg;
  keys_parts kp;
  CU_ASSERT_EQUAL(keys_decode(key.p, key.n, &kp), 0);
  cell v;
  CU_ASSERT_EQUAL_FATAL(cell_decode(value.p, value.n, &v), 0);
  size_t at = strlen(c->seen);
  snprintf(c->seen + at, sizeof c->seen - at, "%.*s ", (int)v.value.n,
           (const char *)v.value.p);
  return ++c->calls == c->stop_after ? 5 : 0;
}

static int in_range(int64_t t, int64_t start, int64_t end) {
  return start < end ? t > start && t <= end : t > start || t <= end;
}

static void test_scan_range(void) {
  storage *s = setup();
  tok_pk k[NPK];
  for (int i = 0; i < NPK; i++) {
    if (i == NPK - 1)
      k[i].pk[0] = '\0';    /* the empty key: token INT64_MIN */
    else
      snprintf(k[i].pk, sizeof k[i].pk, "k%02d", i);
    k[i].token = token_of(k[i].pk, strlen(k[i].pk));
  }
  qsort(k, NPK, sizeof k[0], tok_cmp);
  CU_ASSERT_EQUAL(k[0].token, INT64_MIN);
  for (int i = 0; i < NPK; i++) {
    CU_ASSERT(i == 0 || k[i].token > k[i - 1].token);
    const char *name = k[i].pk[0] ? k[i].pk : "-";
    put1(s, &T3, B(k[i].pk), B("r"), B("c"), B(name), 100, 0, 1000);
    /* the neighbour tables hold the same partitions */
    put1(s, &T2, B(k[i].pk), B("r"), B("c"), B("T2"), 100, 0, 1000);
    table_def t4 = T3;
    t4.id = 4;
    put1(s, &t4, B(k[i].pk), B("r"), B("c"), B("T4"), 100, 0, 1000);
  }
  /* explicit cases: start excluded, end included, wrapping in key order */
  struct { int64_t start, end; int first, last, first2, last2; } cases[] = {
    {k[3].token, k[7].token, 4, 7, 1, 0},
    {k[3].token - 1, k[7].token - 1, 3, 6, 1, 0},
    {k[15].token, k[2].token, 0, 2, 16, NPK - 1},
    {k[5].token, k[5].token, 0, NPK - 1, 1, 0},
    {INT64_MIN, INT64_MAX, 1, NPK - 1, 1, 0},
    {INT64_MAX, INT64_MIN, 0, 0, 1, 0},
    {INT64_MAX, INT64_MAX, 0, NPK - 1, 1, 0},
    {k[NPK - 1].token, INT64_MAX, 1, 0, 1, 0},
    {INT64_MIN, k[1].token - 1, 1, 0, 1, 0},   /* the empty key excluded */
    {INT64_MIN, k[0].token, 0, NPK - 1, 1, 0},  /* start == end: all */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char want[512] = "";
    for (int i = cases[c].first; i <= cases[c].last; i++) {
      size_t at = strlen(want);
      snprintf(want + at, sizeof want - at, "%s ", k[i].pk[0] ? k[i].pk : "-");
    }
    for (int i = cases[c].first2; i <= cases[c].last2; i++) {
      size_t at = strlen(want);
      snprintf(want + at, sizeof want - at, "%s ", k[i].pk);
    }
    names_ctx got = {"", 0, 0};
    CU_ASSERT_EQUAL(storage_scan_range(s, 3, cases[c].start, cases[c].end,
                                       names_cb, &got), 0);
    CU_ASSERT_STRING_EQUAL(got.seen, want);
  }
  /* every pair of boundaries around every token, against the definition */
  int64_t b[3 * NPK + 2];
  int nb = 0;
  for (int i = 0; i < NPK; i++) {
    b[nb++] = k[i].token;
    if (k[i].token > INT64_MIN) b[nb++] = k[i].token - 1;
    if (k[i].token < INT64_MAX) b[nb++] = k[i].token + 1;
  }
  b[nb++] = INT64_MAX;
  int wrong = 0;
  for (int x = 0; x < nb; x += 2)
    for (int y = 0; y < nb; y += 3) {
      char want[512] = "";
      for (int i = 0; i < NPK; i++)
        if (in_range(k[i].token, b[x], b[y])) {
          size_t at = strlen(want);
          snprintf(want + at, sizeof want - at, "%s ",
                   k[i].pk[0] ? k[i].pk : "-");
        }
      names_ctx got = {"", 0, 0};
      if (storage_scan_range(s, 3, b[x], b[y], names_cb, &got) != 0 ||
          strcmp(got.seen, want) != 0)
        wrong++;
    }
  CU_ASSERT_EQUAL(wrong, 0);
  /* a callback's non-zero return stops the scan and is returned */
  names_ctx stop = {"", 0, 3};
  CU_ASSERT_EQUAL(storage_scan_range(s, 3, 0, 0, names_cb, &stop), 5);
  CU_ASSERT_EQUAL(stop.calls, 3);
  /* the last table id, which has no 8-byte end bound */
  table_def tmax = T3;
  tmax.id = UINT64_MAX;
  put1(s, &tmax, B("k01"), B("r"), B("c"), B("max"), 100, 0, 1000);
  names_ctx mx = {"", 0, 0};
  CU_ASSERT_EQUAL(storage_scan_range(s, UINT64_MAX, 0, 0, names_cb, &mx), 0);
  CU_ASSERT_STRING_EQUAL(mx.seen, "max ");
  names_ctx none = {"", 0, 0};
  CU_ASSERT_EQUAL(storage_scan_range(s, 99, 0, 0, names_cb, &none), 0);
  CU_ASSERT_EQUAL(none.calls, 0);
  teardown(s);
}

/* Streaming: a token range scanned from one database and applied on
** another gives identical bytes for that range, and nothing else. */
static void test_scan_range_stream(void) {
  storage *s = setup();
  char *dir2;
  storage *r = open_replica(&dir2);
  for (int i = 0; i < 200; i++) {
    char pk[16];
    snprintf(pk, sizeof pk, "pk%d", i);
    put1(s, &T3, B(pk), B("r"), B("c"), B("v"), 100 + i, i % 3 ? 0 : 50, 1000);
    if (i % 7 == 0)
      del(s, &T3, STORAGE_DELETE_ROW, B(pk), B("r"), NULL, 500, 1000);
  }
  int64_t lo = INT64_MAX / 2, hi = INT64_MIN / 2;   /* wraps */
  storage_entries l;
  storage_entries_init(&l);
  CU_ASSERT_EQUAL(storage_scan_range(s, 3, lo, hi, add_cb, &l), 0);
  CU_ASSERT(l.n > 50 && l.n < 250);
  CU_ASSERT_EQUAL(storage_apply_entries(r, l.e, l.n, NULL), 0);
  storage_entries back;
  storage_entries_init(&back);
  CU_ASSERT_EQUAL(storage_scan_range(r, 3, lo, hi, add_cb, &back), 0);
  CU_ASSERT(same_entries(l.e, l.n, back.e, back.n));
  CU_ASSERT_EQUAL(storage_entries_digest(l.e, l.n),
                  storage_entries_digest(back.e, back.n));
  storage_entries rest;
  storage_entries_init(&rest);
  CU_ASSERT_EQUAL(storage_scan_range(r, 3, hi, lo, add_cb, &rest), 0);
  CU_ASSERT_EQUAL(rest.n, 0);
  storage_entries_free(&rest);
  storage_entries_free(&back);
  storage_entries_free(&l);
  close_replica(r, dir2);
  teardown(s);
}

/* A malformed entry anywhere in a call refuses the whole call. */
static void test_apply_malformed(void) {
  storage *s = setup();
  storage_entries good;
  storage_entries_init(&good);
  put_entry(&good, &T3, "p", "r1", "c", "v", 100, 0);
  put_entry(&good, &T2, "q", "r2", "c", "v", 100, 0);
  uint8_t key[128], val[64];
  size_t nk;
  cell live = cell_live(100, 0, B("v")), tomb = cell_tombstone(100, 1000);
  struct {
    size_t nk, nv;
    int rc;
  } bad[8];
  uint8_t keys[8][128], vals[8][64];
  int nbad = 0;
  /* a key too short to be a key */
  memcpy(keys[nbad], good.e[0].key.p, 5);
  bad[nbad].nk = 5;
  bad[nbad].nv = cell_encode(&live, vals[nbad]);
  bad[nbad++].rc = CELLAR_EPROTO;
  /* a broken escape in the partition key */
  nk = keys_cell(key, 3, token_of("p", 1), B("p"), B("r"), B("c"));
  key[KEYS_HEAD_BYTES + 2] = 0x07;   /* the 0x00 0x01 terminator of esc(pk) */
  memcpy(keys[nbad], key, nk);
  bad[nbad].nk = nk;
  bad[nbad].nv = cell_encode(&live, vals[nbad]);
  bad[nbad++].rc = CELLAR_EPROTO;
  /* an unknown format version */
  nk = keys_cell(keys[nbad], 3, token_of("p", 1), B("p"), B("r"), B("c"));
  bad[nbad].nk = nk;
  bad[nbad].nv = cell_encode(&live, vals[nbad]);
  vals[nbad][0] = 2;
  bad[nbad++].rc = CELLAR_EPROTO;
  /* bytes after a tombstone */
  bad[nbad].nk = keys_cell(keys[nbad], 3, token_of("p", 1), B("p"), B("r"),
                           B("c"));
  bad[nbad].nv = cell_encode(&tomb, vals[nbad]);
  vals[nbad][bad[nbad].nv++] = 'x';
  bad[nbad++].rc = CELLAR_EPROTO;
  /* a live cell on a row key, on a partition key */
  bad[nbad].nk = keys_row(keys[nbad], 3, token_of("p", 1), B("p"), B("r"));
  bad[nbad].nv = cell_encode(&live, vals[nbad]);
  bad[nbad++].rc = CELLAR_EPROTO;
  bad[nbad].nk = keys_partition(keys[nbad], 3, token_of("p", 1), B("p"));
  bad[nbad].nv = cell_encode(&live, vals[nbad]);
  bad[nbad++].rc = CELLAR_EPROTO;
  /* an empty value */
  bad[nbad].nk = keys_partition(keys[nbad], 3, token_of("p", 1), B("p"));
  bad[nbad].nv = 0;
  bad[nbad++].rc = CELLAR_EPROTO;
  for (int i = 0; i < nbad; i++) {
    storage_entries l;
    storage_entries_init(&l);
    storage_entries_add(&l, good.e[0].key, good.e[0].value);
    storage_entries_add(&l, BN(keys[i], bad[i].nk), BN(vals[i], bad[i].nv));
    storage_entries_add(&l, good.e[1].key, good.e[1].value);
    size_t written = 7;
    CU_ASSERT_EQUAL(storage_apply_entries(s, l.e, l.n, &written), bad[i].rc);
    CU_ASSERT_EQUAL(written, 0);
    storage_entries_free(&l);
  }
  /* a column above the limit */
  static uint8_t bigkey[KEYS_CELL_MAX(1, 1, CELLAR_MAX_COLUMN_BYTES + 1)];
  static uint8_t col[CELLAR_MAX_COLUMN_BYTES + 1];
  nk = keys_cell(bigkey, 3, token_of("p", 1), B("p"), B("r"),
                 BN(col, sizeof col));
  size_t nv = cell_encode(&live, val);
  storage_entry big[2] = {good.e[0], {BN(bigkey, nk), BN(val, nv)}};
  CU_ASSERT_EQUAL(storage_apply_entries(s, big, 2, NULL), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(raw(s, 2), 0);
  CU_ASSERT_EQUAL(raw(s, 3), 0);
  /* the good ones alone go in */
  size_t written;
  CU_ASSERT_EQUAL(storage_apply_entries(s, good.e, good.n, &written), 0);
  CU_ASSERT_EQUAL(written, 2);
  CU_ASSERT_EQUAL(raw(s, 2), 1);
  CU_ASSERT_EQUAL(raw(s, 3), 1);
  storage_entries_free(&good);
  teardown(s);
}

/* Writers whose batches span the same partitions in opposite orders take
** the stripe locks in one order: no deadlock, and the newest wins. */
enum { SPAN_PARTS = 24, SPAN_WRITES = 400 };

typedef struct span_ctx {
  storage *s;
  int dir;
  int failed;
} span_ctx;

static void *span_writer(void *arg) {
  span_ctx *c = arg;
  for (int i = 0; i < SPAN_WRITES; i++) {
    storage_entries l;
    storage_entries_init(&l);
    for (int p = 0; p < SPAN_PARTS; p++) {
      int part = c->dir ? SPAN_PARTS - 1 - p : p;
      char pk[16], v[16];
      snprintf(pk, sizeof pk, "p%d", part);
      snprintf(v, sizeof v, "%d", 2 * i + c->dir);
      req_cell cell1 = {B("c"), B(v)};
      req_row row = {B("r"), 1, &cell1};
      if (storage_put_entries(&T3, B(pk), &row, 1, 2 * i + c->dir, 0, 1000,
                              &l) != 0)
        c->failed++;
    }
    if (storage_apply_entries(c->s, l.e, l.n, NULL) != 0) c->failed++;
    storage_entries_free(&l);
  }
  return NULL;
}

static void test_apply_spanning_writers(void) {
  storage *s = setup();
  span_ctx c[2] = {{s, 0, 0}, {s, 1, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, span_writer, &c[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  CU_ASSERT_EQUAL(c[0].failed + c[1].failed, 0);
  char want[16];
  snprintf(want, sizeof want, "%d", 2 * (SPAN_WRITES - 1) + 1);
  for (int p = 0; p < SPAN_PARTS; p++) {
    char pk[16], v[16];
    snprintf(pk, sizeof pk, "p%d", p);
    CU_ASSERT(get1(s, &T3, B(pk), B("r"), B("c"), 1000, v, sizeof v, NULL));
    CU_ASSERT_STRING_EQUAL(v, want);
  }
  teardown(s);
}


/* --------------------------------------------------- versions (issue 5) */

static table_def TS = {.keyspace = "ks", .name = "ts", .id = 3,
                       .policy = POLICY_SIBLINGS, .gc_grace = 864000};

/* A coordinator-replica's put of one cell with a row context (may be
** empty: blind); the resulting sets go to *sets when not NULL. */
static int vput(storage *s, dvv_actor self, const char *ck, const char *col,
                const char *val, int64_t ts, cbytes ctx, uint32_t limit,
                storage_entries *sets, char *err) {
  req_cell c = {B(col), B(val)};
  req_row r = {B(ck), 1, &c};
  storage_entries mut, out;
  storage_entries_init(&mut);
  storage_entries_init(&out);
  int rc = storage_put_entries(&TS, B("p"), &r, 1, ts, 0, 1000, &mut);
  cell_rowctx rx = {0, NULL};
  if (rc == 0 && ctx.n) rc = cell_rowctx_decode(ctx.p, ctx.n, &rx);
  storage_event_ctx ec = {B(ck), &rx};
  storage_event_opts o = {.self = self, .warn = 2, .limit = limit};
  char e2[200];
  if (rc == 0)
    rc = storage_event_entries(s, mut.e, mut.n, &ec, ctx.n ? 1 : 0, &o,
                               sets ? sets : &out, err ? err : e2, 200);
  cell_rowctx_close(&rx);
  storage_entries_free(&mut);
  storage_entries_free(&out);
  return rc;
}

static int vdel(storage *s, dvv_actor self, const char *ck, const char *col,
                int64_t ts, cbytes ctx) {
  cbytes c = B(col);
  storage_entries mut, out;
  storage_entries_init(&mut);
  storage_entries_init(&out);
  int rc = storage_delete_entries(&TS, B("p"), STORAGE_DELETE_CELLS, B(ck), &c,
                                  1, ts, 1000, &mut);
  cell_rowctx rx = {0, NULL};
  if (rc == 0 && ctx.n) rc = cell_rowctx_decode(ctx.p, ctx.n, &rx);
  storage_event_ctx ec = {B(ck), &rx};
  storage_event_opts o = {.self = self};
  char err[200];
  if (rc == 0)
    rc = storage_event_entries(s, mut.e, mut.n, &ec, ctx.n ? 1 : 0, &o, &out,
                               err, sizeof err);
  cell_rowctx_close(&rx);
  storage_entries_free(&mut);
  storage_entries_free(&out);
  return rc;
}

/* Reads row ck of TS: the first cell's versions as "v1|v2|<del>" (or its
** value alone), and the row's context copied to ctx (256 bytes). */
static void vget(storage *s, const char *ck, char *out, uint8_t *ctx,
                 size_t *nctx) {
  storage_query q = {.pk = B("p"), .has_start = 1, .start = B(ck), .has_end = 1,
                     .end = B(ck), .limit = 1};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(storage_read(s, &TS, &q, 1000, &r, NULL), 0);
  out[0] = '\0';
  *nctx = 0;
  if (r.nrows == 1 && r.rows[0].ncells >= 1) {
    const res_cell *c = &r.rows[0].cells[0];
    if (c->nsib == 0) {
      snprintf(out, 64, "%.*s", (int)c->nvalue, (const char *)c->value);
    } else {
      for (size_t i = 0; i < c->nsib; i++) {
        if (i) strcat(out, "|");
        if (c->sib[i].deleted) strcat(out, "<del>");
        else strncat(out, (const char *)c->sib[i].value, c->sib[i].nvalue);
      }
    }
  }
  if (r.nrows == 1 && r.rows[0].ncontext <= 256) {
    memcpy(ctx, r.rows[0].context, r.rows[0].ncontext);
    *nctx = r.rows[0].ncontext;
  }
  result_free(&r);
}

static void test_versions_event(void) {
  storage *s = setup();
  dvv_actor a = {11, 1}, b = {22, 1};
  char got[256];
  uint8_t ctx[256];
  size_t nctx;
  /* two blind writes from two coordinators: both kept, one context */
  CU_ASSERT_EQUAL(vput(s, a, "r", "c", "x", 100, B(""), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, b, "r", "c", "y", 90, B(""), 0, NULL, NULL), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT(strstr(got, "x") && strstr(got, "y") && strchr(got, '|'));
  CU_ASSERT(nctx > 0);
  /* the value field is the LWW winner for old clients */
  storage_query q = {.pk = B("p"), .has_start = 1, .start = B("r"), .has_end = 1,
                     .end = B("r"), .limit = 1};
  result r;
  result_init(&r);
  CU_ASSERT_EQUAL(storage_read(s, &TS, &q, 1000, &r, NULL), 0);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nvalue, 1);
  CU_ASSERT_EQUAL(r.rows[0].cells[0].value[0], 'x');
  CU_ASSERT_EQUAL(r.rows[0].cells[0].nsib, 2);
  result_free(&r);
  /* a write with that context replaces both */
  CU_ASSERT_EQUAL(vput(s, a, "r", "c", "z", 80, CBYTES(ctx, nctx), 0, NULL, NULL), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "z");
  /* a stale context (before z) leaves z as a sibling */
  uint8_t old[256];
  size_t nold = nctx;
  memcpy(old, ctx, nctx);
  CU_ASSERT_EQUAL(vput(s, b, "r", "c", "w", 70, CBYTES(old, nold), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, b, "r", "c", "v", 60, CBYTES(old, nold), 0, NULL, NULL), 0);
  vget(s, "r", got, ctx, &nctx);
  /* w and v both read z: both replace z, and are concurrent */
  CU_ASSERT(strstr(got, "w") && strstr(got, "v") && !strstr(got, "z"));
  /* columns are separate sets: another column has no siblings */
  CU_ASSERT_EQUAL(vput(s, a, "r", "d", "1", 50, B(""), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, a, "r2", "c", "only", 50, B(""), 0, NULL, NULL), 0);
  vget(s, "r2", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "only");
  teardown(s);
}

static void test_versions_delete_and_limit(void) {
  storage *s = setup();
  dvv_actor a = {11, 1}, b = {22, 1};
  char got[256], err[200];
  uint8_t ctx[256];
  size_t nctx;
  CU_ASSERT_EQUAL(vput(s, a, "r", "c", "x", 100, B(""), 0, NULL, NULL), 0);
  vget(s, "r", got, ctx, &nctx);
  uint8_t seen[256];
  size_t nseen = nctx;
  memcpy(seen, ctx, nctx);
  /* a write concurrent with a delete that read x: it stays, as a sibling
  ** of the marker */
  CU_ASSERT_EQUAL(vput(s, b, "r", "c", "y", 50, CBYTES(seen, nseen), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vdel(s, a, "r", "c", 200, CBYTES(seen, nseen)), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT(strstr(got, "y") && strstr(got, "<del>") && !strstr(got, "x"));
  /* a blind delete deletes what the replica holds */
  CU_ASSERT_EQUAL(vdel(s, a, "r", "c", 300, B("")), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "");
  /* limits: blind writes add siblings up to the limit, then refused */
  CU_ASSERT_EQUAL(vput(s, a, "l", "c", "1", 1, B(""), 3, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, a, "l", "c", "2", 2, B(""), 3, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, a, "l", "c", "3", 3, B(""), 3, NULL, NULL), 0);
  err[0] = '\0';
  CU_ASSERT_EQUAL(vput(s, a, "l", "c", "4", 4, B(""), 3, NULL, err), CELLAR_ESIBLINGS);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "too many siblings"));
  vget(s, "l", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "3|2|1");
  /* with the context it passes and resolves */
  CU_ASSERT_EQUAL(vput(s, a, "l", "c", "ok", 5, CBYTES(ctx, nctx), 3, NULL, NULL), 0);
  vget(s, "l", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "ok");
  /* a context that is not one is refused by the decoder */
  CU_ASSERT_NOT_EQUAL(vput(s, a, "l", "c", "bad", 6, B("\x07zz"), 3, NULL, NULL), 0);
  teardown(s);
}

/* Replicas merge the sets a coordinator made, in any order, twice, and
** plain (pre-versioning) cells join as legacy siblings. */
static void test_versions_replicate(void) {
  storage *s = setup();
  char *d2 = testutil_tmpdir("storage2");
  storage *s2 = open_at(d2, 1);
  dvv_actor a = {11, 1}, b = {22, 1};
  storage_entries sa, sb;
  storage_entries_init(&sa);
  storage_entries_init(&sb);
  /* replica 2 holds a plain cell written before versioning */
  CU_ASSERT_EQUAL(put1(s2, &TS, B("p"), B("r"), B("c"), B("old"), 10, 0, 1000), 0);
  CU_ASSERT_EQUAL(vput(s, a, "r", "c", "x", 100, B(""), 0, &sa, NULL), 0);
  CU_ASSERT_EQUAL(vput(s2, b, "r", "c", "y", 90, B(""), 0, &sb, NULL), 0);
  size_t w = 0;
  CU_ASSERT_EQUAL(storage_apply_entries(s2, sa.e, sa.n, &w), 0);
  CU_ASSERT_EQUAL(w, 1);
  CU_ASSERT_EQUAL(storage_apply_entries(s, sb.e, sb.n, &w), 0);
  CU_ASSERT_EQUAL(storage_apply_entries(s2, sa.e, sa.n, &w), 0);
  CU_ASSERT_EQUAL(w, 0);   /* idempotent: nothing new */
  char g1[256], g2[256];
  uint8_t c1[256], c2[256];
  size_t n1, n2;
  vget(s, "r", g1, c1, &n1);
  vget(s2, "r", g2, c2, &n2);
  /* s never saw "old" but s2's set (sb) carries it as a legacy sibling */
  CU_ASSERT_STRING_EQUAL(g1, g2);
  CU_ASSERT(strstr(g1, "x") && strstr(g1, "y") && strstr(g1, "old"));
  /* both replicas hold the same bytes */
  storage_query q = {.pk = B("p"), .limit = 10};
  storage_entries r1, r2;
  storage_entries_init(&r1);
  storage_entries_init(&r2);
  CU_ASSERT_EQUAL(storage_read_entries(s, &TS, &q, &r1, NULL), 0);
  CU_ASSERT_EQUAL(storage_read_entries(s2, &TS, &q, &r2, NULL), 0);
  CU_ASSERT_EQUAL(storage_entries_digest(r1.e, r1.n), storage_entries_digest(r2.e, r2.n));
  /* entries_merge (the coordinator's) gives the same */
  storage_entries m;
  storage_entries_init(&m);
  CU_ASSERT_EQUAL(storage_entries_merge(sa.e, sa.n, sb.e, sb.n, &m), 0);
  CU_ASSERT_EQUAL(m.n, 1);
  CU_ASSERT_EQUAL(storage_apply_entries(s, m.e, m.n, &w), 0);
  CU_ASSERT_EQUAL(w, 0);
  /* a versioned cell whose header lies is refused at the door */
  if (sa.n == 1 && sa.e[0].value.n > 3) {
    uint8_t bad[512];
    memcpy(bad, sa.e[0].value.p, sa.e[0].value.n);
    bad[5] ^= 1;   /* the timestamp */
    storage_entry be = {sa.e[0].key, CBYTES(bad, sa.e[0].value.n)};
    CU_ASSERT_EQUAL(storage_apply_entries(s, &be, 1, NULL), CELLAR_EPROTO);
  }
  storage_entries_free(&m);
  storage_entries_free(&r1);
  storage_entries_free(&r2);
  storage_entries_free(&sa);
  storage_entries_free(&sb);
  storage_close(s2);
  testutil_rmrf(d2);
  free(d2);
  teardown(s);
}

/* A row (ck given) or partition (ck NULL) delete of TS as the coordinator-
** replica does it: expanded into markers. The sets made go to *sets. */
static int vdel_scope(storage *s, dvv_actor self, const char *ck, cbytes ctx,
                      storage_entries *sets) {
  storage_entries mut;
  storage_entries_init(&mut);
  int scope = ck ? STORAGE_DELETE_ROW : STORAGE_DELETE_PARTITION;
  int rc = storage_delete_entries(&TS, B("p"), scope, ck ? B(ck) : B(""), NULL, 0,
                                  500, 1000, &mut);
  cell_rowctx rx = {0, NULL};
  if (rc == 0 && ctx.n) rc = cell_rowctx_decode(ctx.p, ctx.n, &rx);
  storage_event_ctx ec = {ck ? B(ck) : B(""), &rx};
  storage_event_opts o = {.self = self, .expand_deletes = 1};
  char err[200];
  if (rc == 0)
    rc = storage_event_entries(s, mut.e, mut.n, &ec, ctx.n ? 1 : 0, &o, sets, err,
                               sizeof err);
  cell_rowctx_close(&rx);
  storage_entries_free(&mut);
  return rc;
}

/* Row and partition deletes of a siblings table are versioned: what the
** context saw is deleted, a concurrent write survives; blind: what the
** replica holds; a context naming a cell the replica lacks still reaches
** it through the merge. */
static void test_versions_row_delete(void) {
  storage *s = setup();
  char *d2 = testutil_tmpdir("storage2");
  storage *s2 = open_at(d2, 1);
  dvv_actor a = {11, 1}, b = {22, 1};
  char got[256];
  uint8_t ctx[256];
  size_t nctx;
  storage_entries sets, sb;
  storage_entries_init(&sets);
  storage_entries_init(&sb);
  CU_ASSERT_EQUAL(vput(s, a, "r", "a", "1", 100, B(""), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, a, "r", "b", "2", 100, B(""), 0, NULL, NULL), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "1");
  /* another replica takes a concurrent write of a (this one has not seen it) */
  CU_ASSERT_EQUAL(vput(s2, b, "r", "a", "9", 50, B(""), 0, &sb, NULL), 0);
  CU_ASSERT_EQUAL(vdel_scope(s, a, "r", CBYTES(ctx, nctx), &sets), 0);
  CU_ASSERT_EQUAL(sets.n, 2);   /* a and b got markers; no row tombstone */
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "");
  CU_ASSERT_EQUAL(storage_apply_entries(s, sb.e, sb.n, NULL), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT(strstr(got, "9") && strstr(got, "<del>") && !strstr(got, "1"));
  /* a blind row delete takes this replica's history: all gone */
  storage_entries_free(&sets);
  storage_entries_init(&sets);
  CU_ASSERT_EQUAL(vdel_scope(s, a, "r", B(""), &sets), 0);
  vget(s, "r", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "");
  /* a row delete whose context names a cell s lacks: s2 read z, s deletes */
  storage_entries z;
  storage_entries_init(&z);
  CU_ASSERT_EQUAL(vput(s2, b, "q", "z", "zz", 60, B(""), 0, &z, NULL), 0);
  vget(s2, "q", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "zz");
  storage_entries_free(&sets);
  storage_entries_init(&sets);
  CU_ASSERT_EQUAL(vdel_scope(s, a, "q", CBYTES(ctx, nctx), &sets), 0);
  CU_ASSERT_EQUAL(sets.n, 1);
  CU_ASSERT_EQUAL(storage_apply_entries(s2, sets.e, sets.n, NULL), 0);
  vget(s2, "q", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "");
  /* a blind partition delete: every row of the partition */
  CU_ASSERT_EQUAL(vput(s, a, "r1", "x", "1", 10, B(""), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vput(s, a, "r2", "y", "2", 10, B(""), 0, NULL, NULL), 0);
  CU_ASSERT_EQUAL(vdel_scope(s, a, NULL, B(""), NULL), 0);
  vget(s, "r1", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "");
  vget(s, "r2", got, ctx, &nctx);
  CU_ASSERT_STRING_EQUAL(got, "");
  storage_entries_free(&z);
  storage_entries_free(&sets);
  storage_entries_free(&sb);
  storage_close(s2);
  testutil_rmrf(d2);
  free(d2);
  teardown(s);
}

/* A cell's versions must fit a replication frame: a blind write that would
** make them larger than STORAGE_MAX_SET_BYTES is refused. */
static void test_versions_set_size(void) {
  storage *s = setup();
  dvv_actor a = {11, 1};
  char *big = malloc(CELLAR_MAX_VALUE_BYTES + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  memset(big, 'x', CELLAR_MAX_VALUE_BYTES);
  big[CELLAR_MAX_VALUE_BYTES] = '\0';
  int fits = (int)(STORAGE_MAX_SET_BYTES / CELLAR_MAX_VALUE_BYTES);   /* 8 */
  for (int i = 0; i < fits - 1; i++)
    CU_ASSERT_EQUAL(vput(s, a, "r", "c", big, 10 + i, B(""), 0, NULL, NULL), 0);
  char err[200] = "";
  CU_ASSERT_EQUAL(vput(s, a, "r", "c", big, 100, B(""), 0, NULL, err), CELLAR_ETOOBIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "the versions of column c would take"));
  free(big);
  teardown(s);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"put_get_one", test_put_get_one},
    {"put_many", test_put_many},
    {"atomic_multi_row", test_atomic_multi_row},
    {"concurrent_writers", test_concurrent_writers},
    {"older_write_loses", test_older_write_loses},
    {"delete_partition", test_delete_partition},
    {"delete_row_and_cells", test_delete_row_and_cells},
    {"ttl", test_ttl},
    {"tombstone_gc", test_tombstone_gc},
    {"no_resurrection", test_no_resurrection},
    {"no_resurrection_range", test_no_resurrection_range},
    {"slice_bounds", test_slice_bounds},
    {"column_filter", test_column_filter},
    {"drop_table", test_drop_table},
    {"reopen", test_reopen},
    {"binary_keys", test_binary_keys},
    {"limits", test_limits},
    {"checkpoint", test_checkpoint},
    {"gc_lookup", test_gc_lookup},
    {"system_cf", test_system_cf},
    {"info", test_info},
    {"open_errors", test_open_errors},
    {"entries_list", test_entries_list},
    {"entries_replicate", test_entries_replicate},
    {"entries_apply_order", test_entries_apply_order},
    {"entries_older_loses", test_entries_older_loses},
    {"read_entries", test_read_entries},
    {"entries_merge_no_resurrection", test_entries_merge_no_resurrection},
    {"entries_to_result_matches_read", test_entries_to_result_matches_read},
    {"entries_digest", test_entries_digest},
    {"scan_range", test_scan_range},
    {"scan_range_stream", test_scan_range_stream},
    {"apply_malformed", test_apply_malformed},
    {"apply_spanning_writers", test_apply_spanning_writers},
    {"versions_event", test_versions_event},
    {"versions_delete_and_limit", test_versions_delete_and_limit},
    {"versions_replicate", test_versions_replicate},
    {"versions_row_delete", test_versions_row_delete},
    {"versions_set_size", test_versions_set_size},
    {NULL, NULL}
  };
  return testutil_run("storage", cases, argc, argv);
}
