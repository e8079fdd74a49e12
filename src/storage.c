/*
** storage: cellar's data on RocksDB (contract in storage.h, formats in
** keys.h, cell.h and docs/storage.md).
**
** Design notes
**
**  1. Column families: "default" holds table data, one RocksDB key per cell
**     plus one per partition tombstone and per row tombstone (keys.h);
**     "system" holds node state (schema); "hints" is reserved for hinted
**     handoff. Only the data CF has the compaction filter. All three share
**     one LRU block cache; data and hints tables carry a 10-bit bloom filter.
**
**  2. One version per key. A write (storage_put, storage_delete) takes the
**     stripe lock of its partition, reads the stored versions of the keys it
**     writes, keeps for each key the winner of cell_merge(stored, incoming),
**     and writes only the keys where the incoming version won, in one
**     write batch. So the newest RocksDB version of a key is always the
**     merge of every version written to it, and its timestamp never goes
**     down while the key exists. The stripe lock only orders writers of one
**     partition; readers take no lock (RocksDB reads see a consistent view).
**
**  3. A cell is live iff it is not a tombstone, has not expired
**     (expires_at == 0 or expires_at > now) and its timestamp is greater
**     than the partition tombstone's and its row tombstone's. Ties go to
**     the tombstone. storage_read applies this; the partition tombstone
**     sorts before the rows, a row tombstone before its cells (keys.h), so
**     one forward scan sees every tombstone before the data it covers.
**
**  4. The compaction filter (gc_filter) removes, in every compaction:
**       - keys of tables the gc lookup does not know (dropped tables);
**       - a cell or row entry whose timestamp is <= a partition or row
**         tombstone seen earlier in the same compaction (shadowed data);
**       - a cell tombstone once deleted_at + gc_grace <= now, an expired
**         cell once expires_at + gc_grace <= now (until then it shadows
**         older versions that other replicas may still hold).
**     A row or partition tombstone covers other keys, which may sit in
**     files outside the compaction; removing it there would resurrect
**     them. So it is removed only in a compaction that includes every file
**     (RocksDB's is_full_compaction), where the data it covers passes
**     through the same filter after it and is removed too (second rule).
**     This needs one filter to see all keys of a partition in order:
**     max_subcompactions stays 1.
**
**  5. RocksDB turns a key the filter removes into a deletion marker, not
**     nothing: older versions of the key in lower levels stay hidden until
**     the marker reaches the bottom level and drops out with them.
**
**  6. Before storage_set_gc_lookup is called the filter keeps everything:
**     a node that compacts before its schema is loaded loses nothing.
**
**  7. Durability: the WAL is always written before a write returns;
**     sync_writes adds an fsync of the WAL per write batch. System CF
**     writes (the schema) are always synced.
**
**  8. The data CF's prefix extractor returns a key's partition base
**     (table_id | token | esc(pk)), so SST files carry a prefix bloom
**     filter per partition beside the whole-key one. storage_read scans
**     one partition with its upper bound inside the same prefix, so it
**     seeks in prefix mode and skips files without the partition. Scans
**     that cross partitions (storage_count_raw, drop of the last table
**     id) set total_order_seek. The memtable has a bloom filter on whole
**     keys and prefixes too: the read before a write mostly misses.
**
** Write path (storage_put / storage_delete):
**
**   build keys+versions --sort, merge duplicates--> lock stripe
**     --> batched MultiGet of the stored versions --> cell_merge each
**     --> WriteBatch of the winners --> unlock
**
** Read path (storage_read), one iterator bounded above by the query's end:
**
**   seek(partition tombstone key) --found--> note its ts, next
**     --> seek(start bound), only if still before it
**     --> each key: row tombstone -> note its ts
**                   cell live (note 3) -> append; the row is added at its
**                   first live cell, so dead rows never show
**     --> a live row beyond the limit: *more = 1, stop
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rocksdb/c.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "clock.h"
#include "keys.h"
#include "log.h"
#include "storage.h"
#include "token.h"

#define STRIPES 1024u

enum { CF_DATA = 0, CF_SYSTEM = 1, CF_HINTS = 2, CF_COUNT = 3 };
static const char *const cf_names[CF_COUNT] = {"default", "system", "hints"};

/* RocksDB's BottommostLevelCompaction::kForce */
#define BOTTOMMOST_FORCE 2

struct storage {
  rocksdb_t *db;
  rocksdb_column_family_handle_t *cf[CF_COUNT];
  rocksdb_cache_t *cache;
  rocksdb_readoptions_t *ro;       /* point reads without bounds: shared */
  rocksdb_writeoptions_t *wo;      /* data writes: sync = sync_writes */
  rocksdb_writeoptions_t *wo_sync; /* system CF writes: always synced */
  rocksdb_flushoptions_t *fo;
  rocksdb_compactoptions_t *co;
  int num_levels;
  pthread_mutex_t gc_mu;           /* guards gc_fn, gc_arg */
  storage_gc_lookup gc_fn;
  void *gc_arg;
  pthread_mutex_t stripe[STRIPES];
};

/* Turns a RocksDB error into CELLAR_ESTORAGE, logging and freeing it. */
static int rocks_failed(const char *what, char *err) {
  log_error("storage: %s: %s", what, err ? err : "unknown error");
  rocksdb_free(err);
  return CELLAR_ESTORAGE;
}

/* ------------------------------------------------------- scratch buffers */

/* A buffer that starts on the stack and moves to the heap when it must
** grow. Never copy or move an sbuf: p may point into small. */
typedef struct sbuf {
  uint8_t *p;
  size_t cap;
  uint8_t small[512];
} sbuf;

static void sbuf_init(sbuf *b) {
  b->p = b->small;
  b->cap = sizeof b->small;
}

/* Makes room for n bytes; the contents are not kept. */
static int sbuf_reserve(sbuf *b, size_t n) {
  if (n <= b->cap) return 0;
  size_t cap = b->cap * 2 > n ? b->cap * 2 : n;
  uint8_t *p = malloc(cap);
  if (p == NULL) return CELLAR_ENOMEM;
  if (b->p != b->small) free(b->p);
  b->p = p;
  b->cap = cap;
  return 0;
}

static void sbuf_free(sbuf *b) {
  if (b->p != b->small) free(b->p);
  b->p = b->small;
}

/* ----------------------------------------------------- compaction filter */

typedef struct gc_filter {
  storage_gc_lookup fn;            /* NULL: keep everything (note 6) */
  void *arg;
  uint32_t now;
  int full;                        /* the compaction includes every file */
  int have_table;                  /* cache of the last table looked up */
  uint64_t table;
  int table_known;
  uint32_t gc_grace;
  uint8_t *pt;                     /* base of the last partition tombstone */
  size_t npt, cappt;
  int64_t pt_ts;
  uint8_t *rt;                     /* row prefix of the last row tombstone */
  size_t nrt, caprt;
  int64_t rt_ts;
} gc_filter;

static int remember(uint8_t **buf, size_t *n, size_t *cap, const char *k,
                    size_t len) {
  if (len > *cap) {
    size_t c = len > 2 * *cap ? len : 2 * *cap;
    uint8_t *p = realloc(*buf, c);
    if (p == NULL) return -1;
    *buf = p;
    *cap = c;
  }
  memcpy(*buf, k, len);
  *n = len;
  return 0;
}

static int past_grace(uint32_t since, uint32_t gc_grace, uint32_t now) {
  return (uint64_t)since + gc_grace <= now;
}

/*
** Decides the fate of one key (note 4); returns 1 to remove it. It never
** removes more when memory runs out: a tombstone it cannot remember is
** kept, since the data it covers would not be removed after it.
*/
static unsigned char gc_filter_fn(void *state, int level, const char *key,
                                  size_t klen, const char *val, size_t vlen,
                                  char **new_value, size_t *new_len,
                                  unsigned char *changed) {
  (void)level; (void)new_value; (void)new_len; (void)changed;
  gc_filter *f = state;
  if (f->fn == NULL) return 0;
  keys_parts kp;
  cell c;
  if (keys_decode((const uint8_t *)key, klen, &kp) != 0) return 0;
  if (!f->have_table || f->table != kp.table_id) {
    f->have_table = 1;
    f->table = kp.table_id;
    f->table_known = f->fn(f->arg, kp.table_id, &f->gc_grace) == 0;
    f->npt = f->nrt = 0;
  }
  if (!f->table_known) return 1;
  if (cell_decode((const uint8_t *)val, vlen, &c) != 0) return 0;

  /* shadowed by the partition / row tombstone seen just before? */
  int in_pt = f->npt == kp.base_len && memcmp(f->pt, key, f->npt) == 0;
  if (kp.kind != KEYS_KIND_PARTITION && in_pt && c.ts <= f->pt_ts) return 1;
  if (kp.kind == KEYS_KIND_CELL && f->nrt == kp.row_len &&
      memcmp(f->rt, key, f->nrt) == 0 && c.ts <= f->rt_ts)
    return 1;

  switch (kp.kind) {
  case KEYS_KIND_PARTITION:
    if (!c.tombstone) return 0;
    if (remember(&f->pt, &f->npt, &f->cappt, key, kp.base_len)) {
      f->npt = 0;
      return 0;   /* forgotten: its data will not be removed, keep it */
    }
    f->pt_ts = c.ts;
    return f->full && past_grace(c.deleted_at, f->gc_grace, f->now);
  case KEYS_KIND_ROW:
    if (!c.tombstone) return 0;
    if (remember(&f->rt, &f->nrt, &f->caprt, key, kp.row_len)) {
      f->nrt = 0;
      return 0;
    }
    f->rt_ts = c.ts;
    return f->full && past_grace(c.deleted_at, f->gc_grace, f->now);
  case KEYS_KIND_CELL:
    if (c.tombstone || c.expires_at)
      return past_grace(cell_dead_since(&c), f->gc_grace, f->now);
    return 0;
  }
  return 0;
}

static void gc_filter_free(void *state) {
  gc_filter *f = state;
  free(f->pt);
  free(f->rt);
  free(f);
}

static const char *gc_filter_name(void *state) {
  (void)state;
  return "cellar.gc";
}

static rocksdb_compactionfilter_t *gc_filter_create(
    void *state, rocksdb_compactionfiltercontext_t *ctx) {
  storage *s = state;
  gc_filter *f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;   /* RocksDB then compacts without a filter */
  pthread_mutex_lock(&s->gc_mu);
  f->fn = s->gc_fn;
  f->arg = s->gc_arg;
  pthread_mutex_unlock(&s->gc_mu);
  f->now = clock_now_s();
  f->full = rocksdb_compactionfiltercontext_is_full_compaction(ctx);
  rocksdb_compactionfilter_t *cf = rocksdb_compactionfilter_create(
      f, gc_filter_free, gc_filter_fn, gc_filter_name);
  if (cf) rocksdb_compactionfilter_set_ignore_snapshots(cf, 1);
  return cf;
}

static void gc_factory_free(void *state) { (void)state; }

/* ------------------------------------------------------ prefix extractor */

/* The prefix of a data key is its partition's base (keys.h), so a
** partition scan skips every SST file whose prefix bloom filter says the
** partition is not there (note 8). */
static char *base_transform(void *state, const char *key, size_t n,
                            size_t *out) {
  (void)state;
  *out = keys_base_len((const uint8_t *)key, n);
  return (char *)key;
}

static unsigned char base_in_domain(void *state, const char *key, size_t n) {
  (void)state;
  return keys_base_len((const uint8_t *)key, n) != 0;
}

static unsigned char base_in_range(void *state, const char *key, size_t n) {
  (void)state; (void)key; (void)n;
  return 0;
}

static const char *base_name(void *state) {
  (void)state;
  return "cellar.partition_base.v1";
}

static void base_free(void *state) { (void)state; }

static const char *gc_factory_name(void *state) {
  (void)state;
  return "cellar.gc_factory";
}

/* ---------------------------------------------------------- open, close */

void storage_options_init(storage_options *o) {
  memset(o, 0, sizeof *o);
  o->cache_bytes = 64u << 20;
  o->write_buffer_bytes = 32u << 20;
  o->sync_writes = 0;
  o->background_jobs = 2;
}

void storage_set_gc_lookup(storage *s, storage_gc_lookup fn, void *arg) {
  pthread_mutex_lock(&s->gc_mu);
  s->gc_fn = fn;
  s->gc_arg = arg;
  pthread_mutex_unlock(&s->gc_mu);
}

static void storage_destroy(storage *s) {
  for (int i = 0; i < CF_COUNT; i++)
    if (s->cf[i]) rocksdb_column_family_handle_destroy(s->cf[i]);
  if (s->db) rocksdb_close(s->db);
  if (s->ro) rocksdb_readoptions_destroy(s->ro);
  if (s->wo) rocksdb_writeoptions_destroy(s->wo);
  if (s->wo_sync) rocksdb_writeoptions_destroy(s->wo_sync);
  if (s->fo) rocksdb_flushoptions_destroy(s->fo);
  if (s->co) rocksdb_compactoptions_destroy(s->co);
  if (s->cache) rocksdb_cache_destroy(s->cache);
  for (unsigned i = 0; i < STRIPES; i++) pthread_mutex_destroy(&s->stripe[i]);
  pthread_mutex_destroy(&s->gc_mu);
  free(s);
}

/* Options of one column family (and, for the data CF, of the database). */
static rocksdb_options_t *cf_options(const storage_options *o, storage *s,
                                     int which) {
  rocksdb_options_t *opt = rocksdb_options_create();
  rocksdb_block_based_table_options_t *bb =
      rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(bb, s->cache);
  if (which != CF_SYSTEM)
    rocksdb_block_based_options_set_filter_policy(
        bb, rocksdb_filterpolicy_create_bloom_full(10));  /* bb owns it */
  rocksdb_options_set_block_based_table_factory(opt, bb);  /* copies bb */
  rocksdb_block_based_options_destroy(bb);

  rocksdb_options_set_create_if_missing(opt, 1);
  rocksdb_options_set_create_missing_column_families(opt, 1);
  rocksdb_options_set_max_background_jobs(
      opt, o->background_jobs > 0 ? o->background_jobs : 2);
  rocksdb_options_set_max_subcompactions(opt, 1);   /* note 4 */
  rocksdb_options_set_keep_log_file_num(opt, 4);
  size_t wb = o->write_buffer_bytes ? o->write_buffer_bytes : 32u << 20;
  if (which == CF_SYSTEM && wb > (4u << 20)) wb = 4u << 20;
  rocksdb_options_set_write_buffer_size(opt, wb);
  if (which == CF_DATA) {
    /* the options own the factory (shared_ptr); its state, s, outlives
    ** the database */
    rocksdb_options_set_compaction_filter_factory(
        opt, rocksdb_compactionfilterfactory_create(
                 s, gc_factory_free, gc_filter_create, gc_factory_name));
    /* a memtable bloom filter on whole keys and partition prefixes: the
    ** read before every write mostly asks for keys that do not exist */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(opt, 0.05);
    rocksdb_options_set_memtable_whole_key_filtering(opt, 1);
    /* owned by the options too */
    rocksdb_options_set_prefix_extractor(
        opt, rocksdb_slicetransform_create(NULL, base_free, base_transform,
                                           base_in_domain, base_in_range,
                                           base_name));
  }
  return opt;
}

int storage_open(const storage_options *o, storage **out) {
  *out = NULL;
  if (o == NULL || o->path == NULL) return CELLAR_EINVAL;
  storage *s = calloc(1, sizeof *s);
  if (s == NULL) return CELLAR_ENOMEM;
  pthread_mutex_init(&s->gc_mu, NULL);
  for (unsigned i = 0; i < STRIPES; i++)
    pthread_mutex_init(&s->stripe[i], NULL);

  s->cache = rocksdb_cache_create_lru(o->cache_bytes ? o->cache_bytes
                                                     : 64u << 20);
  s->ro = rocksdb_readoptions_create();
  s->wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->wo, o->sync_writes ? 1 : 0);
  s->wo_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->wo_sync, 1);
  s->fo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(s->fo, 1);
  s->co = rocksdb_compactoptions_create();
  rocksdb_compactoptions_set_bottommost_level_compaction(s->co,
                                                         BOTTOMMOST_FORCE);

  rocksdb_options_t *opts[CF_COUNT];
  for (int i = 0; i < CF_COUNT; i++) opts[i] = cf_options(o, s, i);
  s->num_levels = rocksdb_options_get_num_levels(opts[CF_DATA]);
  /* a full compaction leaves everything in the last level, where leveled
  ** compaction wants most data, so later compactions of fresh data run
  ** on the upper levels alone */
  rocksdb_compactoptions_set_change_level(s->co, 1);
  rocksdb_compactoptions_set_target_level(s->co, s->num_levels - 1);

  char *err = NULL;
  s->db = rocksdb_open_column_families(
      opts[CF_DATA], o->path, CF_COUNT, (const char *const *)cf_names,
      (const rocksdb_options_t *const *)opts, s->cf, &err);
  for (int i = 0; i < CF_COUNT; i++) rocksdb_options_destroy(opts[i]);
  if (err) {
    int rc = rocks_failed(o->path, err);
    s->db = NULL;
    memset(s->cf, 0, sizeof s->cf);
    storage_destroy(s);
    return rc;
  }
  log_info("storage: opened %s", o->path);
  *out = s;
  return 0;
}

void storage_close(storage *s) {
  if (s) storage_destroy(s);
}

/* ------------------------------------------------------------- system CF */

int storage_system_put(storage *s, const void *k, size_t nk, const void *v,
                       size_t nv) {
  char *err = NULL;
  rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_SYSTEM], k, nk, v, nv, &err);
  return err ? rocks_failed("system put", err) : 0;
}

int storage_system_delete(storage *s, const void *k, size_t nk) {
  char *err = NULL;
  rocksdb_delete_cf(s->db, s->wo_sync, s->cf[CF_SYSTEM], k, nk, &err);
  return err ? rocks_failed("system delete", err) : 0;
}

int storage_system_scan(storage *s, const void *prefix, size_t np,
                        int (*cb)(void *arg, const uint8_t *k, size_t nk,
                                  const uint8_t *v, size_t nv),
                        void *arg) {
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ro,
                                                      s->cf[CF_SYSTEM]);
  int rc = 0;
  for (rocksdb_iter_seek(it, prefix, np); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t nk, nv;
    const char *k = rocksdb_iter_key(it, &nk);
    if (nk < np || (np && memcmp(k, prefix, np) != 0)) break;
    const char *v = rocksdb_iter_value(it, &nv);
    rc = cb(arg, (const uint8_t *)k, nk, (const uint8_t *)v, nv);
    if (rc) break;
  }
  char *err = NULL;
  if (rc == 0) rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  return err ? rocks_failed("system scan", err) : rc;
}

/* ---------------------------------------------------------- write path */

/* One key of a write and its incoming version. */
typedef struct put_ent {
  const uint8_t *k;      /* into the write's key buffer */
  size_t nk;
  cell c;                /* incoming version, value borrowed from the caller */
} put_ent;

static int ent_cmp(const void *a, const void *b) {
  const put_ent *x = a, *y = b;
  size_t m = x->nk < y->nk ? x->nk : y->nk;
  int r = memcmp(x->k, y->k, m);
  if (r) return r;
  return (x->nk > y->nk) - (x->nk < y->nk);
}

static pthread_mutex_t *stripe_of(storage *s, uint64_t table_id,
                                  int64_t token) {
  uint64_t h = ((uint64_t)token ^ table_id) * 0x9E3779B97F4A7C15ull;
  return &s->stripe[(h >> 40) % STRIPES];
}

/*
** Note 2: merges ents (sorted here) with the stored versions and writes the
** winners in one batch, under the partition's stripe lock.
*/
static int apply_merged(storage *s, pthread_mutex_t *mu, put_ent *e,
                        size_t n) {
  qsort(e, n, sizeof *e, ent_cmp);
  /* merge duplicates inside the write (same cell twice) */
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (m && ent_cmp(&e[m - 1], &e[i]) == 0) {
      e[m - 1].c = *cell_merge(&e[m - 1].c, &e[i].c);
      continue;
    }
    e[m++] = e[i];
  }
  n = m;

  enum { SMALL = 32 };
  const char *kp_s[SMALL];
  size_t kn_s[SMALL];
  rocksdb_pinnableslice_t *vals_s[SMALL];
  char *errs_s[SMALL];
  const char **kp = kp_s;
  size_t *kn = kn_s;
  rocksdb_pinnableslice_t **vals = vals_s;
  char **errs = errs_s;
  void *heap = NULL;
  if (n > SMALL) {
    size_t each = sizeof *kp + sizeof *kn + sizeof *vals + sizeof *errs;
    heap = malloc(n * each);
    if (heap == NULL) return CELLAR_ENOMEM;
    kp = heap;
    kn = (size_t *)(kp + n);
    vals = (rocksdb_pinnableslice_t **)(kn + n);
    errs = (char **)(vals + n);
  }
  for (size_t i = 0; i < n; i++) {
    kp[i] = (const char *)e[i].k;
    kn[i] = e[i].nk;
  }

  int rc = 0;
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  pthread_mutex_lock(mu);
  rocksdb_batched_multi_get_cf(s->db, s->ro, s->cf[CF_DATA], n, kp, kn, vals,
                               errs, 1);
  int nput = 0;
  for (size_t i = 0; i < n; i++) {
    if (errs[i]) {
      if (rc == 0) rc = rocks_failed("read before write", errs[i]);
      else rocksdb_free(errs[i]);
      continue;
    }
    if (rc) continue;
    if (vals[i]) {
      size_t nv;
      const char *v = rocksdb_pinnableslice_value(vals[i], &nv);
      cell old;
      if (cell_decode((const uint8_t *)v, nv, &old) != 0)
        log_error("storage: undecodable stored value (%zu bytes), replaced",
                  nv);
      else if (cell_compare(&e[i].c, &old) <= 0)
        continue;   /* the stored version wins: nothing to write */
    }
    uint8_t prefix[CELL_PREFIX_MAX];
    const char *parts[3];
    size_t sizes[3];
    int np = 0;
    sizes[np] = cell_encode_prefix(&e[i].c, prefix);
    parts[np++] = (const char *)prefix;
    if (e[i].c.has_clock && e[i].c.clock.n) {
      parts[np] = (const char *)e[i].c.clock.p;
      sizes[np++] = e[i].c.clock.n;
    }
    if (!e[i].c.tombstone && e[i].c.value.n) {
      parts[np] = (const char *)e[i].c.value.p;
      sizes[np++] = e[i].c.value.n;
    }
    /* the batch copies keys and values: prefix may go out of scope */
    rocksdb_writebatch_putv_cf(wb, s->cf[CF_DATA], 1, &kp[i], &kn[i], np,
                               parts, sizes);
    nput++;
  }
  if (rc == 0 && nput) {
    char *err = NULL;
    rocksdb_write(s->db, s->wo, wb, &err);
    if (err) rc = rocks_failed("write", err);
  }
  pthread_mutex_unlock(mu);
  for (size_t i = 0; i < n; i++)
    if (vals[i]) rocksdb_pinnableslice_destroy(vals[i]);
  rocksdb_writebatch_destroy(wb);
  free(heap);
  return rc;
}

static int check_key(cbytes k) {
  return k.n > CELLAR_MAX_KEY_BYTES ? CELLAR_ETOOBIG : 0;
}

static uint32_t expiry(uint32_t now_s, uint32_t ttl) {
  if (ttl == 0) return 0;
  uint64_t e = (uint64_t)now_s + ttl;
  return e > UINT32_MAX ? UINT32_MAX : (uint32_t)e;
}

int storage_put(storage *s, const table_def *t, cbytes pk,
                const req_row *rows, size_t nrows, int64_t ts, uint32_t ttl,
                uint32_t now_s) {
  if (check_key(pk)) return CELLAR_ETOOBIG;
  size_t ncells = 0, kbytes = 0;
  for (size_t r = 0; r < nrows; r++) {
    if (check_key(rows[r].ck)) return CELLAR_ETOOBIG;
    for (size_t i = 0; i < rows[r].ncells; i++) {
      const req_cell *c = &rows[r].cells[i];
      if (c->name.n > CELLAR_MAX_COLUMN_BYTES ||
          c->value.n > CELLAR_MAX_VALUE_BYTES)
        return CELLAR_ETOOBIG;
      kbytes += KEYS_CELL_MAX(pk.n, rows[r].ck.n, c->name.n);
    }
    ncells += rows[r].ncells;
  }
  if (ncells == 0) return CELLAR_EEMPTY;

  int64_t token = token_of(pk.p, pk.n);
  uint32_t exp = expiry(now_s, ttl);
  sbuf keys;
  sbuf_init(&keys);
  put_ent ents_s[16];
  put_ent *ents = ents_s;
  int rc = sbuf_reserve(&keys, kbytes);
  if (rc == 0 && ncells > 16) {
    ents = malloc(ncells * sizeof *ents);
    if (ents == NULL) rc = CELLAR_ENOMEM;
  }
  if (rc == 0) {
    uint8_t *k = keys.p;
    size_t ne = 0;
    for (size_t r = 0; r < nrows; r++) {
      if (rows[r].ncells == 0) continue;
      /* the row prefix is encoded once, then copied for every cell */
      size_t nrow = keys_rows_from(k, t->id, token, pk, rows[r].ck);
      const uint8_t *row = k;
      for (size_t i = 0; i < rows[r].ncells; i++) {
        const req_cell *c = &rows[r].cells[i];
        if (k != row) memcpy(k, row, nrow);
        k[nrow] = KEYS_TAG_NEXT;
        if (c->name.n) memcpy(k + nrow + 1, c->name.p, c->name.n);
        ents[ne].k = k;
        ents[ne].nk = nrow + 1 + c->name.n;
        ents[ne].c = cell_live(ts, exp, c->value);
        k += ents[ne].nk;
        ne++;
      }
    }
    rc = apply_merged(s, stripe_of(s, t->id, token), ents, ne);
  }
  if (ents != ents_s) free(ents);
  sbuf_free(&keys);
  return rc;
}

int storage_delete(storage *s, const table_def *t, cbytes pk, int scope,
                   cbytes ck, const cbytes *cols, size_t ncols, int64_t ts,
                   uint32_t now_s) {
  if (check_key(pk) || check_key(ck)) return CELLAR_ETOOBIG;
  size_t n, kbytes;
  switch (scope) {
  case STORAGE_DELETE_PARTITION:
    n = 1;
    kbytes = KEYS_PARTITION_MAX(pk.n);
    break;
  case STORAGE_DELETE_ROW:
    n = 1;
    kbytes = KEYS_ROW_MAX(pk.n, ck.n);
    break;
  case STORAGE_DELETE_CELLS:
    if (ncols == 0) return CELLAR_EEMPTY;
    n = ncols;
    kbytes = 0;
    for (size_t i = 0; i < ncols; i++) {
      if (cols[i].n > CELLAR_MAX_COLUMN_BYTES) return CELLAR_ETOOBIG;
      kbytes += KEYS_CELL_MAX(pk.n, ck.n, cols[i].n);
    }
    break;
  default:
    return CELLAR_EINVAL;
  }

  int64_t token = token_of(pk.p, pk.n);
  cell tomb = cell_tombstone(ts, now_s);
  sbuf keys;
  sbuf_init(&keys);
  put_ent ents_s[16];
  put_ent *ents = ents_s;
  int rc = sbuf_reserve(&keys, kbytes);
  if (rc == 0 && n > 16) {
    ents = malloc(n * sizeof *ents);
    if (ents == NULL) rc = CELLAR_ENOMEM;
  }
  if (rc == 0) {
    uint8_t *k = keys.p;
    for (size_t i = 0; i < n; i++) {
      size_t nk;
      if (scope == STORAGE_DELETE_PARTITION)
        nk = keys_partition(k, t->id, token, pk);
      else if (scope == STORAGE_DELETE_ROW)
        nk = keys_row(k, t->id, token, pk, ck);
      else
        nk = keys_cell(k, t->id, token, pk, ck, cols[i]);
      ents[i].k = k;
      ents[i].nk = nk;
      ents[i].c = tomb;
      k += nk;
    }
    rc = apply_merged(s, stripe_of(s, t->id, token), ents, n);
  }
  if (ents != ents_s) free(ents);
  sbuf_free(&keys);
  return rc;
}

/* ----------------------------------------------------------- read path */

/* Column filter: a linear scan for a few columns, binary search beyond. */
typedef struct colset {
  const cbytes *cols;
  size_t n;
  cbytes *sorted;        /* malloc'd when n > COLSET_LINEAR */
} colset;

#define COLSET_LINEAR 8

static int cbytes_cmp(const void *a, const void *b) {
  const cbytes *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int r = m ? memcmp(x->p, y->p, m) : 0;
  if (r) return r;
  return (x->n > y->n) - (x->n < y->n);
}

static int colset_init(colset *cs, const cbytes *cols, size_t n) {
  cs->cols = cols;
  cs->n = cols ? n : 0;
  cs->sorted = NULL;
  if (cs->n > COLSET_LINEAR) {
    cs->sorted = malloc(n * sizeof *cs->sorted);
    if (cs->sorted == NULL) return CELLAR_ENOMEM;
    memcpy(cs->sorted, cols, n * sizeof *cs->sorted);
    qsort(cs->sorted, n, sizeof *cs->sorted, cbytes_cmp);
  }
  return 0;
}

static int colset_has(const colset *cs, cbytes col) {
  if (cs->n == 0) return 1;    /* no filter */
  if (cs->sorted)
    return bsearch(&col, cs->sorted, cs->n, sizeof col, cbytes_cmp) != NULL;
  for (size_t i = 0; i < cs->n; i++)
    if (cs->cols[i].n == col.n &&
        (col.n == 0 || memcmp(cs->cols[i].p, col.p, col.n) == 0))
      return 1;
  return 0;
}

int storage_read(storage *s, const table_def *t, const storage_query *q,
                 uint32_t now_s, result *out, int *more) {
  if (more) *more = 0;
  if (q->limit == 0) return CELLAR_EINVAL;
  if (check_key(q->pk) || (q->has_start && check_key(q->start)) ||
      (q->has_end && check_key(q->end)))
    return CELLAR_ETOOBIG;
  int64_t token = token_of(q->pk.p, q->pk.n);
  sbuf pt, lo, hi, ck, cur;
  sbuf_init(&pt);
  sbuf_init(&lo);
  sbuf_init(&hi);
  sbuf_init(&ck);
  sbuf_init(&cur);
  colset cs = {0};
  rocksdb_readoptions_t *ro = NULL;
  rocksdb_iterator_t *it = NULL;
  int64_t pt_ts = INT64_MIN;
  int rc = 0;

  if (sbuf_reserve(&pt, KEYS_PARTITION_MAX(q->pk.n))
      || sbuf_reserve(&lo, KEYS_ROW_MAX(q->pk.n, q->has_start ? q->start.n : 0))
      || sbuf_reserve(&hi, KEYS_ROW_MAX(q->pk.n, q->has_end ? q->end.n : 0))
      || colset_init(&cs, q->cols, q->ncols)) {
    rc = CELLAR_ENOMEM;
    goto done;
  }
  size_t nlo, nhi;
  if (q->has_end)
    nhi = keys_row_end(hi.p, t->id, token, q->pk, q->end);
  else
    nhi = keys_partition_end(hi.p, t->id, token, q->pk);
  /* the scan starts at the partition tombstone's key, then skips to the
  ** start bound if it is further: one seek, not a point read plus a seek,
  ** when the first row is the one asked for (a get of a narrow partition) */
  size_t npt = keys_partition(pt.p, t->id, token, q->pk);
  if (q->has_start && q->start_exclusive)
    nlo = keys_row_end(lo.p, t->id, token, q->pk, q->start);
  else if (q->has_start)
    nlo = keys_rows_from(lo.p, t->id, token, q->pk, q->start);
  else
    nlo = 0;

  ro = rocksdb_readoptions_create();   /* per scan: it holds the bound */
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi.p, nhi);
  it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_DATA]);
  rocksdb_iter_seek(it, (const char *)pt.p, npt);
  if (rocksdb_iter_valid(it)) {
    size_t nk, nv;
    const char *k = rocksdb_iter_key(it, &nk);
    if (nk == npt && memcmp(k, pt.p, npt) == 0) {
      const char *v = rocksdb_iter_value(it, &nv);
      cell c;
      if (cell_decode((const uint8_t *)v, nv, &c) == 0 && c.tombstone)
        pt_ts = c.ts;
      rocksdb_iter_next(it);
    }
  }
  if (nlo && rocksdb_iter_valid(it)) {
    size_t nk;
    const char *k = rocksdb_iter_key(it, &nk);
    size_t m = nk < nlo ? nk : nlo;
    int c = memcmp(k, lo.p, m);
    if (c < 0 || (c == 0 && nk < nlo))
      rocksdb_iter_seek(it, (const char *)lo.p, nlo);
  }

  size_t ncur = 0;            /* esc(ck) of the current row, in cur */
  int in_row = 0;
  int64_t rt_ts = INT64_MIN;  /* the current row's tombstone */
  res_row *row = NULL;        /* the current row once it has a live cell */
  uint32_t nrows = 0;
  for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t nk, nv;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &nk);
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &nv);
    keys_parts kp;
    cell c;
    if (keys_decode(k, nk, &kp) != 0 || cell_decode(v, nv, &c) != 0) {
      log_error("storage: undecodable entry in table %016llx, skipped",
                (unsigned long long)t->id);
      continue;
    }
    if (kp.kind == KEYS_KIND_PARTITION) continue;   /* read above */
    if (!in_row || kp.ck_esc.n != ncur ||
        memcmp(kp.ck_esc.p, cur.p, ncur) != 0) {
      /* a new row starts */
      if (sbuf_reserve(&cur, kp.ck_esc.n)) {
        rc = CELLAR_ENOMEM;
        break;
      }
      memcpy(cur.p, kp.ck_esc.p, kp.ck_esc.n);
      ncur = kp.ck_esc.n;
      in_row = 1;
      rt_ts = INT64_MIN;
      row = NULL;
    }
    if (kp.kind == KEYS_KIND_ROW) {
      if (c.tombstone) rt_ts = c.ts;
      continue;
    }
    if (!colset_has(&cs, kp.column)) continue;
    if (!cell_is_live(&c, now_s) || c.ts <= pt_ts || c.ts <= rt_ts) continue;
    if (row == NULL) {
      if (nrows == q->limit) {   /* a live row beyond the limit */
        if (more) *more = 1;
        break;
      }
      if (sbuf_reserve(&ck, kp.nck)) {
        rc = CELLAR_ENOMEM;
        break;
      }
      keys_unescape(kp.ck_esc, ck.p);
      row = result_add_row(out, ck.p, kp.nck);
      if (row == NULL) {
        rc = CELLAR_ENOMEM;
        break;
      }
      nrows++;
    }
    rc = result_add_cell(out, row, kp.column.p, kp.column.n, c.value.p,
                         c.value.n, c.ts, c.expires_at);
    if (rc) break;
  }
  if (rc == 0) {
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) rc = rocks_failed("read", err);
  }

done:
  if (it) rocksdb_iter_destroy(it);
  if (ro) rocksdb_readoptions_destroy(ro);
  free(cs.sorted);
  sbuf_free(&pt);
  sbuf_free(&lo);
  sbuf_free(&hi);
  sbuf_free(&ck);
  sbuf_free(&cur);
  return rc;
}

/* ---------------------------------------------------------- maintenance */

int storage_drop_table(storage *s, uint64_t table_id) {
  uint8_t lo[8], hi[8];
  keys_table_prefix(lo, table_id);
  char *err = NULL;
  if (keys_table_end(hi, table_id)) {
    rocksdb_delete_range_cf(s->db, s->wo, s->cf[CF_DATA], (const char *)lo, 8,
                            (const char *)hi, 8, &err);
    return err ? rocks_failed("drop table", err) : 0;
  }
  /* table id UINT64_MAX: no 8-byte end bound, delete key by key */
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_total_order_seek(ro, 1);   /* crosses partitions */
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro,
                                                      s->cf[CF_DATA]);
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  for (rocksdb_iter_seek(it, (const char *)lo, 8);
       rocksdb_iter_valid(it) && !err; rocksdb_iter_next(it)) {
    size_t nk;
    const char *k = rocksdb_iter_key(it, &nk);
    rocksdb_writebatch_delete_cf(wb, s->cf[CF_DATA], k, nk);
    if (rocksdb_writebatch_count(wb) >= 1024) {
      rocksdb_write(s->db, s->wo, wb, &err);
      rocksdb_writebatch_clear(wb);
    }
  }
  if (!err) rocksdb_iter_get_error(it, &err);
  if (!err) rocksdb_write(s->db, s->wo, wb, &err);
  rocksdb_writebatch_destroy(wb);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  return err ? rocks_failed("drop table", err) : 0;
}

int storage_flush(storage *s) {
  for (int i = 0; i < CF_COUNT; i++) {
    char *err = NULL;
    rocksdb_flush_cf(s->db, s->fo, s->cf[i], &err);
    if (err) return rocks_failed("flush", err);
  }
  return 0;
}

int storage_compact(storage *s) {
  /* the C API reports no error for a manual compaction: a failed one
  ** surfaces as RocksDB's background error on the next write */
  rocksdb_compact_range_cf_opt(s->db, s->cf[CF_DATA], s->co, NULL, 0, NULL, 0);
  return 0;
}

int storage_checkpoint(storage *s, const char *dir) {
  char *err = NULL;
  rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &err);
  if (err) return rocks_failed("checkpoint", err);
  /* log_size_for_flush 0: flush the memtables first, so the checkpoint's
  ** SST files hold everything and its WAL copy is small */
  rocksdb_checkpoint_create(cp, dir, 0, &err);
  rocksdb_checkpoint_object_destroy(cp);
  if (err) return rocks_failed(dir, err);
  log_info("storage: checkpoint written to %s", dir);
  return 0;
}

static int add_property(storage *s, result *out, const char *key,
                        const char *prop) {
  char *v = rocksdb_property_value_cf(s->db, s->cf[CF_DATA], prop);
  int rc = result_add_info(out, key, "%s", v ? v : "0");
  rocksdb_free(v);
  return rc;
}

int storage_info(storage *s, result *out) {
  int rc = add_property(s, out, "storage.live_data_bytes",
                        "rocksdb.estimate-live-data-size");
  if (!rc) rc = add_property(s, out, "storage.sst_bytes",
                             "rocksdb.total-sst-files-size");
  if (!rc) rc = add_property(s, out, "storage.estimate_keys",
                             "rocksdb.estimate-num-keys");
  if (!rc) rc = add_property(s, out, "storage.memtable_bytes",
                             "rocksdb.cur-size-all-mem-tables");
  if (!rc) rc = result_add_info(out, "storage.block_cache_bytes", "%zu",
                                rocksdb_cache_get_usage(s->cache));
  if (rc) return rc;
  /* files per level, "L0/L1/.../Ln", e.g. "0/0/0/0/0/0/3" */
  char levels[256];
  size_t used = 0;
  levels[0] = '\0';
  for (int l = 0; l < s->num_levels && used < sizeof levels; l++) {
    char prop[64];
    snprintf(prop, sizeof prop, "rocksdb.num-files-at-level%d", l);
    char *v = rocksdb_property_value_cf(s->db, s->cf[CF_DATA], prop);
    int w = snprintf(levels + used, sizeof levels - used, "%s%s",
                     l ? "/" : "", v ? v : "0");
    rocksdb_free(v);
    if (w < 0) break;
    used += (size_t)w;
  }
  return result_add_info(out, "storage.files_per_level", "%s", levels);
}

int storage_count_raw(storage *s, uint64_t table_id, uint64_t *count) {
  uint8_t lo[8], hi[8];
  keys_table_prefix(lo, table_id);
  int bounded = keys_table_end(hi, table_id);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_total_order_seek(ro, 1);   /* crosses partitions */
  if (bounded)
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 8);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro,
                                                      s->cf[CF_DATA]);
  uint64_t n = 0;
  for (rocksdb_iter_seek(it, (const char *)lo, 8); rocksdb_iter_valid(it);
       rocksdb_iter_next(it))
    n++;
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  if (err) return rocks_failed("count", err);
  *count = n;
  return 0;
}
