/* Unit tests of storage, against a real RocksDB in a temporary directory. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "storage.h"
#include "testutil.h"

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
    {NULL, NULL}
  };
  return testutil_run("storage", cases, argc, argv);
}
