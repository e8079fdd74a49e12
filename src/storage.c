/*
** storage: cellar's data on RocksDB (contract in storage.h, formats in
** keys.h, cell.h and docs/storage.md).
**
** Design notes
**
**  1. Column families: "default" holds table data, one RocksDB key per cell
**     plus one per partition tombstone and per row tombstone (keys.h);
**     "system" holds node state (schema); "hints" holds hinted handoff's
**     hints (hints.h has their format). Only the data CF has the compaction filter. All three share
**     one LRU block cache; data and hints tables carry a 10-bit bloom filter.
**
**  2. One version per key. Every write is a list of raw entries (encoded
**     key, encoded cell) applied by storage_apply_entries: storage_put and
**     storage_delete build theirs (storage_put_entries,
**     storage_delete_entries) and apply them, replication and streaming
**     apply entries received from other nodes. Applying takes the stripe
**     locks of the partitions involved (1024 stripes by table id and token,
**     taken in ascending stripe order, so writers spanning partitions never
**     deadlock), reads the stored versions of the keys, keeps for each key
**     the winner of cell_merge(stored, incoming), and writes only the keys
**     where the incoming version won, in one write batch. So the newest
**     RocksDB version of a key is always the merge of every version written
**     to it, and its timestamp never goes down while the key exists. The
**     stripe locks only order writers; readers take no lock (RocksDB reads
**     see a consistent view).
**
**  3. A cell is live iff it is not a tombstone, has not expired
**     (expires_at == 0 or expires_at > now) and its timestamp is greater
**     than the partition tombstone's and its row tombstone's. Ties go to
**     the tombstone. One piece of code applies this (vis_feed), to the
**     entries of RocksDB in storage_read and to a coordinator's merged
**     entry list in storage_entries_to_result. The partition tombstone
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
**     storage_scan_range crosses partitions too (total_order_seek).
**
**  9. Raw entries are checked where they come in: storage_apply_entries
**     refuses a whole call if one entry is not a data key with a canonical
**     cell (only tombstones on partition and row keys, sizes within the
**     cellar.h limits), before taking any lock. Readers of stored entries
**     (storage_read, storage_read_entries, storage_scan_range) skip, with a
**     log line, any entry that check would refuse, so a damaged entry is
**     never sent to another node, and a repair overwrites it.
**
** Write path (storage_put / storage_delete / replication):
**
**   storage_put_entries: keys+versions --sort, merge duplicates--> entries
**   storage_apply_entries: check all --sort, merge duplicates-->
**     lock stripes (ascending) --> batched MultiGet of the stored versions
**     --> cell_merge each --> WriteBatch of the winners --> unlock
**
** Read path (storage_read), one iterator bounded above by the query's end:
**
**   seek(partition tombstone key) --found--> note its ts, next
**     --> seek(start bound), only if still before it
**     --> each key: row tombstone -> note its ts
**                   cell live (note 3) -> append; the row is added at its
**                   first live cell, so dead rows never show
**     --> a live row beyond the limit: *more = 1, stop
**
** storage_read_entries walks the same window and returns every entry
** (tombstones and expired cells too), counting rows that have any entry.
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
#include "metrics.h"
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

/* ------------------------------------------------------------- hints CF */

int storage_hints_write(storage *s, const storage_entry *put, size_t nput,
                        const cbytes *del, size_t ndel) {
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  for (size_t i = 0; i < nput; i++)
    rocksdb_writebatch_put_cf(wb, s->cf[CF_HINTS], (const char *)put[i].key.p, put[i].key.n,
                              (const char *)put[i].value.p, put[i].value.n);
  for (size_t i = 0; i < ndel; i++)
    rocksdb_writebatch_delete_cf(wb, s->cf[CF_HINTS], (const char *)del[i].p, del[i].n);
  char *err = NULL;
  rocksdb_write(s->db, s->wo, wb, &err);
  rocksdb_writebatch_destroy(wb);
  return err ? rocks_failed("hints write", err) : 0;
}

int storage_hints_scan(storage *s, const void *prefix, size_t np, const void *after,
                       size_t nafter, int (*cb)(void *arg, cbytes key, cbytes value),
                       void *arg) {
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ro, s->cf[CF_HINTS]);
  int rc = 0;
  if (nafter) rocksdb_iter_seek(it, after, nafter);
  else rocksdb_iter_seek(it, prefix, np);
  for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t nk, nv;
    const char *k = rocksdb_iter_key(it, &nk);
    if (nk < np || (np && memcmp(k, prefix, np) != 0)) break;
    if (nafter && nk == nafter && !memcmp(k, after, nk)) continue;   /* after: exclusive */
    const char *v = rocksdb_iter_value(it, &nv);
    rc = cb(arg, CBYTES(k, nk), CBYTES(v, nv));
    if (rc) break;
  }
  char *err = NULL;
  if (rc == 0) rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  return err ? rocks_failed("hints scan", err) : rc;
}

int storage_hints_drop(storage *s, const void *prefix, size_t np) {
  if (np == 0 || np > 255) return CELLAR_EINVAL;
  /* the end of the prefix range: the prefix with its last byte raised
  ** (hint prefixes end in a host id byte, never 0xff) */
  uint8_t hi[256];
  memcpy(hi, prefix, np);
  size_t nhi = np;
  while (nhi > 0 && hi[nhi - 1] == 0xff) nhi--;
  if (nhi == 0) return CELLAR_EINVAL;
  hi[nhi - 1]++;
  char *err = NULL;
  rocksdb_delete_range_cf(s->db, s->wo, s->cf[CF_HINTS], prefix, np, (const char *)hi, nhi,
                          &err);
  return err ? rocks_failed("hints drop", err) : 0;
}

/* ---------------------------------------------------------- entry lists */

/* The bytes of an entry list live in blocks that never move once
** allocated, newest first: entries keep pointing at them while the list
** grows (only the array of entries is reallocated). */
struct storage_block {
  storage_block *next;
  size_t used, cap;
  uint8_t data[];
};

#define BLOCK_MIN 4096u
#define BLOCK_MAX (1u << 20)

void storage_entries_init(storage_entries *l) {
  memset(l, 0, sizeof *l);
}

void storage_entries_free(storage_entries *l) {
  storage_block *b = l->blocks;
  while (b) {
    storage_block *next = b->next;
    free(b);
    b = next;
  }
  free(l->e);
  memset(l, 0, sizeof *l);
}

/* Makes room for more entries in the array. */
static int entries_grow(storage_entries *l, size_t more) {
  if (l->cap - l->n >= more) return 0;
  size_t cap = l->cap ? l->cap : 8;
  while (cap - l->n < more) {
    if (cap > SIZE_MAX / 2 / sizeof *l->e) return CELLAR_ENOMEM;
    cap *= 2;
  }
  storage_entry *e = realloc(l->e, cap * sizeof *e);
  if (e == NULL) return CELLAR_ENOMEM;
  l->e = e;
  l->cap = cap;
  return 0;
}

/* Makes sure the newest block has room for nbytes; a block allocated for
** that holds max(nbytes, cap) bytes. */
static int entries_room(storage_entries *l, size_t nbytes, size_t cap) {
  storage_block *b = l->blocks;
  if (b && b->cap - b->used >= nbytes) return 0;
  if (cap < nbytes) cap = nbytes;
  if (cap > SIZE_MAX - sizeof *b) return CELLAR_ENOMEM;
  b = malloc(sizeof *b + cap);
  if (b == NULL) return CELLAR_ENOMEM;
  b->next = l->blocks;
  b->used = 0;
  b->cap = cap;
  l->blocks = b;
  return 0;
}

/* Appends an entry of nk key and nv value bytes, contiguous, and returns
** where its key goes (the value follows), or NULL when out of memory. */
static uint8_t *entries_push(storage_entries *l, size_t nk, size_t nv) {
  size_t need = nk + nv;
  if (need < nk || entries_grow(l, 1)) return NULL;
  storage_block *b = l->blocks;
  if (b == NULL || b->cap - b->used < need) {
    size_t cap = b == NULL ? BLOCK_MIN
                 : b->cap >= BLOCK_MAX / 2 ? BLOCK_MAX : 2 * b->cap;
    if (entries_room(l, need, cap)) return NULL;
    b = l->blocks;
  }
  uint8_t *p = b->data + b->used;
  b->used += need;
  l->e[l->n].key = CBYTES(p, nk);
  l->e[l->n].value = CBYTES(p + nk, nv);
  l->n++;
  return p;
}

int storage_entries_add(storage_entries *l, cbytes key, cbytes value) {
  uint8_t *p = entries_push(l, key.n, value.n);
  if (p == NULL) return CELLAR_ENOMEM;
  if (key.n) memcpy(p, key.p, key.n);
  if (value.n) memcpy(p + key.n, value.p, value.n);
  return 0;
}

/* memcmp order, a prefix before its extensions: the order of keys. */
static int bytes_cmp(cbytes a, cbytes b) {
  size_t m = a.n < b.n ? a.n : b.n;
  int r = m ? memcmp(a.p, b.p, m) : 0;
  if (r) return r;
  return (a.n > b.n) - (a.n < b.n);
}

/*
** Decodes and checks one entry from outside (storage_apply_entries'
** contract): a data key, a canonical cell, only tombstones on partition and
** row keys (nothing writes anything else there, and reads would ignore it),
** components within the cellar.h limits.
*/
static int check_entry(const storage_entry *e, keys_parts *kp, cell *c) {
  if (keys_decode(e->key.p, e->key.n, kp) != 0 ||
      cell_decode(e->value.p, e->value.n, c) != 0)
    return CELLAR_EPROTO;
  if (kp->kind != KEYS_KIND_CELL && !c->tombstone) return CELLAR_EPROTO;
  if (kp->npk > CELLAR_MAX_KEY_BYTES || kp->nck > CELLAR_MAX_KEY_BYTES ||
      kp->column.n > CELLAR_MAX_COLUMN_BYTES ||
      c->value.n > CELLAR_MAX_VALUE_BYTES)
    return CELLAR_ETOOBIG;
  return 0;
}

/* ---------------------------------------------------------- write path */

/* One key of a put or delete being built, and its version (value borrowed
** from the caller). */
typedef struct put_ent {
  const uint8_t *k;      /* into the request's key buffer */
  size_t nk;
  cell c;
} put_ent;

static int ent_cmp(const void *a, const void *b) {
  const put_ent *x = a, *y = b;
  return bytes_cmp(CBYTES(x->k, x->nk), CBYTES(y->k, y->nk));
}

/* Sorts e by key and merges the versions of a key written twice in one
** request (the merge rule picks, not the order). Returns the count left. */
static size_t ents_sort_merge(put_ent *e, size_t n) {
  qsort(e, n, sizeof *e, ent_cmp);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (m && ent_cmp(&e[m - 1], &e[i]) == 0) {
      e[m - 1].c = *cell_merge(&e[m - 1].c, &e[i].c);
      continue;
    }
    e[m++] = e[i];
  }
  return m;
}

/* Appends the encodings of e[0..n) to out, in one block sized for them.
** On error out is unchanged. */
static int ents_emit(const put_ent *e, size_t n, storage_entries *out) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += e[i].nk + cell_encoded_size(&e[i].c);
  if (entries_grow(out, n) || entries_room(out, bytes, bytes))
    return CELLAR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    /* cannot fail: the room is there */
    uint8_t *p = entries_push(out, e[i].nk, cell_encoded_size(&e[i].c));
    memcpy(p, e[i].k, e[i].nk);
    cell_encode(&e[i].c, p + e[i].nk);
  }
  return 0;
}

static int check_key(cbytes k) {
  return k.n > CELLAR_MAX_KEY_BYTES ? CELLAR_ETOOBIG : 0;
}

static uint32_t expiry(uint32_t now_s, uint32_t ttl) {
  if (ttl == 0) return 0;
  uint64_t e = (uint64_t)now_s + ttl;
  return e > UINT32_MAX ? UINT32_MAX : (uint32_t)e;
}

int storage_put_entries(const table_def *t, cbytes pk, const req_row *rows,
                        size_t nrows, int64_t ts, uint32_t ttl,
                        uint32_t now_s, storage_entries *out) {
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
    ne = ents_sort_merge(ents, ne);
    rc = ents_emit(ents, ne, out);
  }
  if (ents != ents_s) free(ents);
  sbuf_free(&keys);
  return rc;
}

int storage_delete_entries(const table_def *t, cbytes pk, int scope,
                           cbytes ck, const cbytes *cols, size_t ncols,
                           int64_t ts, uint32_t now_s, storage_entries *out) {
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
    n = ents_sort_merge(ents, n);
    rc = ents_emit(ents, n, out);
  }
  if (ents != ents_s) free(ents);
  sbuf_free(&keys);
  return rc;
}

/* One entry being applied: the entry, its decoded version, its stripe. */
typedef struct apply_ent {
  cbytes key, value;     /* borrowed from the entry, or from the merge's
                            scratch list when duplicates merged */
  cell c;                /* borrowed from value */
  unsigned stripe;
} apply_ent;

static int apply_ent_cmp(const void *a, const void *b) {
  const apply_ent *x = a, *y = b;
  return bytes_cmp(x->key, y->key);
}

/* A new version made by a merge goes to scratch (whose bytes never move);
** *ent then points at it. 0 or an error. */
static int keep_merged(storage_entries *scratch, const cell_buf *mb,
                       apply_ent *ent) {
  int rc = storage_entries_add(scratch, ent->key, CBYTES(mb->p, mb->n));
  if (rc) return rc;
  ent->value = scratch->e[scratch->n - 1].value;
  return cell_decode(ent->value.p, ent->value.n, &ent->c);
}

/* A versioned cell from outside must be a valid set whose header is its
** summary (cell_versions); plain cells were checked by cell_decode. */
static int check_versions(const cell *c) {
  if (!c->has_clock) return 0;
  dvv d;
  dvv_init(&d);
  int rc = cell_versions(c, &d);
  dvv_close(&d);
  return rc == CELLAR_ENOMEM ? rc : rc ? CELLAR_EPROTO : 0;
}

static int unsigned_cmp(const void *a, const void *b) {
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return (x > y) - (x < y);
}

/* The stripe lock of a partition (note 2). */
static unsigned stripe_index(uint64_t table_id, int64_t token) {
  uint64_t h = ((uint64_t)token ^ table_id) * 0x9E3779B97F4A7C15ull;
  return (unsigned)((h >> 40) % STRIPES);
}

/*
** Note 2: checks every entry, sorts them, merges duplicates, then under the
** stripe locks of their partitions (taken in ascending stripe order, so
** two writers never wait on each other in a cycle) reads the stored
** versions, and writes the winners in one batch. The winners are written
** as the bytes received: a canonical encoding (cell.h) needs no rewrite.
*/
int storage_apply_entries(storage *s, const storage_entry *e, size_t n,
                          size_t *written) {
  if (written) *written = 0;
  if (n == 0) return 0;
  if (e == NULL) return CELLAR_EINVAL;

  enum { SMALL = 32 };
  apply_ent a_s[SMALL];
  const char *kp_s[SMALL];
  size_t kn_s[SMALL];
  rocksdb_pinnableslice_t *vals_s[SMALL];
  char *errs_s[SMALL];
  unsigned st_s[SMALL];
  apply_ent *a = a_s;
  const char **kp = kp_s;
  size_t *kn = kn_s;
  rocksdb_pinnableslice_t **vals = vals_s;
  char **errs = errs_s;
  unsigned *st = st_s;
  void *heap = NULL;
  if (n > SMALL) {
    /* one allocation, most aligned arrays first */
    size_t each = sizeof *a + sizeof *kp + sizeof *kn + sizeof *vals +
                  sizeof *errs + sizeof *st;
    if (n > SIZE_MAX / each) return CELLAR_ENOMEM;
    heap = malloc(n * each);
    if (heap == NULL) return CELLAR_ENOMEM;
    a = heap;
    kp = (const char **)(a + n);
    kn = (size_t *)(kp + n);
    vals = (rocksdb_pinnableslice_t **)(kn + n);
    errs = (char **)(vals + n);
    st = (unsigned *)(errs + n);
  }

  /* every entry is checked before anything is locked or written */
  int rc = 0, sorted = 1;
  storage_entries scratch;   /* versions made by merging duplicates */
  storage_entries_init(&scratch);
  for (size_t i = 0; i < n; i++) {
    keys_parts p;
    rc = check_entry(&e[i], &p, &a[i].c);
    if (rc == 0) rc = check_versions(&a[i].c);
    if (rc) {
      free(heap);
      return rc;
    }
    a[i].key = e[i].key;
    a[i].value = e[i].value;
    a[i].stripe = stripe_index(p.table_id, p.token);
    if (i && sorted && bytes_cmp(e[i - 1].key, e[i].key) >= 0) sorted = 0;
  }
  if (!sorted) qsort(a, n, sizeof *a, apply_ent_cmp);
  size_t m = 0;   /* a key given twice: keep the merge */
  for (size_t i = 0; i < n; i++) {
    if (m && bytes_cmp(a[m - 1].key, a[i].key) == 0) {
      cell_buf mb = {0};
      const cell *w;
      rc = cell_merge_versions(&a[m - 1].c, &a[i].c, &mb, &w);
      if (rc == 0 && w == &a[i].c) a[m - 1] = a[i];
      else if (rc == 1) rc = keep_merged(&scratch, &mb, &a[m - 1]);
      cell_buf_free(&mb);
      if (rc) {
        storage_entries_free(&scratch);
        free(heap);
        return rc;
      }
      continue;
    }
    a[m++] = a[i];
  }
  n = m;
  size_t ns = 0;
  for (size_t i = 0; i < n; i++) st[i] = a[i].stripe;
  if (n > 1) qsort(st, n, sizeof *st, unsigned_cmp);
  for (size_t i = 0; i < n; i++)
    if (ns == 0 || st[ns - 1] != st[i]) st[ns++] = st[i];
  for (size_t i = 0; i < n; i++) {
    kp[i] = (const char *)a[i].key.p;
    kn[i] = a[i].key.n;
  }

  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  for (size_t j = 0; j < ns; j++) pthread_mutex_lock(&s->stripe[st[j]]);
  rocksdb_batched_multi_get_cf(s->db, s->ro, s->cf[CF_DATA], n, kp, kn, vals,
                               errs, 1);
  size_t nput = 0;
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
      if (cell_decode((const uint8_t *)v, nv, &old) != 0) {
        log_error("storage: undecodable stored value (%zu bytes), replaced",
                  nv);
      } else if (!old.has_clock && !a[i].c.has_clock) {
        /* plain cells (lww tables): cell_merge's rule, no allocation */
        if (cell_compare(&a[i].c, &old) <= 0)
          continue;   /* the stored version wins: nothing to write */
      } else if (nv == a[i].value.n && !memcmp(v, a[i].value.p, nv)) {
        continue;   /* the same version: nothing to write */
      } else {
        cell_buf mb = {0};
        const cell *w;
        int mr = cell_merge_versions(&a[i].c, &old, &mb, &w);
        if (mr == 1) {
          rocksdb_writebatch_put_cf(wb, s->cf[CF_DATA], kp[i], kn[i],
                                    (const char *)mb.p, mb.n);
          nput++;
        } else if (mr < 0) {
          /* the stored set is broken: the checked incoming one replaces
          ** it rather than blocking every later write of the cell */
          log_error("storage: stored versions do not decode (%s), replaced",
                    cellar_strerror(mr));
          w = &a[i].c;
        }
        cell_buf_free(&mb);
        if (mr == 1 || w != &a[i].c) continue;
      }
    }
    /* the batch copies keys and values */
    rocksdb_writebatch_put_cf(wb, s->cf[CF_DATA], kp[i], kn[i],
                              (const char *)a[i].value.p,
                              a[i].value.n);
    nput++;
  }
  if (rc == 0 && nput) {
    char *err = NULL;
    rocksdb_write(s->db, s->wo, wb, &err);
    if (err) rc = rocks_failed("write", err);
  }
  for (size_t j = ns; j-- > 0;) pthread_mutex_unlock(&s->stripe[st[j]]);
  for (size_t i = 0; i < n; i++)
    if (vals[i]) rocksdb_pinnableslice_destroy(vals[i]);
  rocksdb_writebatch_destroy(wb);
  storage_entries_free(&scratch);
  free(heap);
  if (rc == 0 && written) *written = nput;
  return rc;
}

/*
** Note 2 again, for the coordinator-replica of a siblings table: the same
** locks and batch as storage_apply_entries, but each cell entry is a
** client write made a new version of the stored set (cell_event), so the
** read of the stored versions and the write of the new ones are one step
** no other write of the partition can come between.
*/
static const cell_rowctx *event_ctx_of(const storage_event_ctx *ctx,
                                       size_t nctx, const uint8_t *ck,
                                       size_t nck) {
  for (size_t i = 0; i < nctx; i++)
    if (ctx[i].ck.n == nck && (nck == 0 || !memcmp(ctx[i].ck.p, ck, nck)))
      return ctx[i].ctx;
  return NULL;
}

static int iter_entry(rocksdb_iterator_t *it, uint64_t table_id,
                      storage_entry *e, keys_parts *kp, cell *c);

/* One cell of a coordinator-replica's write (storage_event_entries): the
** write w applied to the stored cell (NULL: none) with the context of its
** row and column (a blind delete: this replica's own history), the new
** set encoded into nb. 0, CELLAR_ESIBLINGS (err says why), or an error. */
static int event_cell(const cell *stored, const keys_parts *kp,
                      const storage_event_ctx *ctx, size_t nctx,
                      const storage_event_opts *o, const dvv_write *w,
                      cell_buf *nb, char *err, size_t errlen) {
  dvv d;
  dvv_init(&d);
  int rc = stored ? cell_versions(stored, &d) : 0;
  if (rc) {
    log_error("storage: stored versions do not decode (%s), replaced",
              cellar_strerror(rc));
    dvv_close(&d);
    dvv_init(&d);
    rc = 0;
  }
  uint8_t ckbuf[CELLAR_MAX_KEY_BYTES + 1];
  keys_unescape(kp->ck_esc, ckbuf);
  const cell_rowctx *rcx = event_ctx_of(ctx, nctx, ckbuf, kp->nck);
  const cell_rowctx_col *cc = rcx ? cell_rowctx_find(rcx, kp->column) : NULL;
  const dvv_vv *vv = cc ? &cc->vv : NULL;
  dvv_vv local;
  dvv_vv_init(&local);
  if (vv == NULL && w->tombstone && rcx == NULL) {
    /* a blind delete deletes what this replica holds (Riak's rule):
    ** writes it has not seen yet stay, as siblings of the marker. With a
    ** context for the row that does not name this column, the reader saw
    ** none of it: the marker is concurrent with what is there */
    if (dvv_join(&d, &local) == 0) vv = &local;
  }
  int col = (int)(kp->column.n > 64 ? 64 : kp->column.n);
  size_t after = dvv_event_siblings(&d, vv);
  if (o->limit && after > o->limit) {
    metrics_add(METRIC_SIBLINGS_REFUSED, 1);
    if (err && errlen)
      snprintf(err, errlen,
               "too many siblings: column %.*s has %zu (limit %u); read "
               "it and write with the context to resolve",
               col, (const char *)kp->column.p, after - 1, o->limit);
    rc = CELLAR_ESIBLINGS;
  } else {
    if (o->warn && after > o->warn) {
      metrics_add(METRIC_SIBLINGS_WARNED, 1);
      log_warn("storage: column %.*s of table %016llx has %zu siblings", col,
               (const char *)kp->column.p, (unsigned long long)kp->table_id,
               after);
    }
    rc = dvv_event(&d, vv, o->self, w, 0, NULL);
    if (rc == 0) rc = cell_from_versions(&d, nb);
    if (rc == CELLAR_EINVAL && err && errlen) snprintf(err, errlen, "invalid write");
    if (rc == 0 && nb->n > STORAGE_MAX_SET_BYTES) {
      /* every replica must be able to receive the cell in one frame */
      if (err && errlen)
        snprintf(err, errlen,
                 "the versions of column %.*s would take %zu bytes (limit %u); "
                 "read it and write with the context to resolve",
                 col, (const char *)kp->column.p, nb->n, STORAGE_MAX_SET_BYTES);
      rc = CELLAR_ETOOBIG;
    }
  }
  dvv_vv_close(&local);
  dvv_close(&d);
  return rc;
}

/* Cells a versioned row or partition delete may touch at most. */
#define EXPAND_MAX_CELLS 10000

/*
** A row or partition delete of a siblings table (o->expand_deletes), under
** the partition's stripe lock: every cell this replica stores in the row
** (partition) gets a delete marker by event_cell, with the client's
** context of its row and column, or this replica's history for a blind
** delete; the new sets go to the batch and to out. Cells written
** concurrently elsewhere, which this replica has not seen, survive as
** siblings of nothing (requirement 4 of issue 5), which a plain row
** tombstone would hide by timestamp. CELLAR_ETOOBIG above
** EXPAND_MAX_CELLS cells.
*/
static int expand_delete(storage *s, const storage_entry *e,
                         const keys_parts *kp, const cell *tomb,
                         const storage_event_ctx *ctx, size_t nctx,
                         const storage_event_opts *o, rocksdb_writebatch_t *wb,
                         storage_entries *out, char *err, size_t errlen) {
  /* the key ends in KEYS_TAG_TOMBSTONE; its cells (and, for a partition,
  ** rows) are the keys between prefix | NEXT and prefix | END */
  size_t np = e->key.n - 1;
  uint8_t *lo = malloc(2 * (np + 1));
  if (lo == NULL) return CELLAR_ENOMEM;
  uint8_t *hi = lo + np + 1;
  memcpy(lo, e->key.p, np);
  memcpy(hi, e->key.p, np);
  lo[np] = KEYS_TAG_NEXT;
  hi[np] = KEYS_TAG_END;
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, np + 1);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_DATA]);
  dvv_write w = {tomb->ts, 1, tomb->deleted_at, CBYTES(NULL, 0)};
  cell_buf nb = {0};
  size_t count = 0;
  int rc = 0;
  for (rocksdb_iter_seek(it, (const char *)lo, np + 1);
       rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    storage_entry ce;
    keys_parts cp;
    cell c;
    if (iter_entry(it, kp->table_id, &ce, &cp, &c) != 0) continue;
    if (cp.kind != KEYS_KIND_CELL) continue;   /* older row tombstones */
    if (++count > EXPAND_MAX_CELLS) {
      if (err && errlen)
        snprintf(err, errlen, "a versioned delete of more than %d cells: "
                 "delete fewer rows at a time", EXPAND_MAX_CELLS);
      rc = CELLAR_ETOOBIG;
      break;
    }
    rc = event_cell(&c, &cp, ctx, nctx, o, &w, &nb, err, errlen);
    if (rc == 0) {
      rocksdb_writebatch_put_cf(wb, s->cf[CF_DATA], (const char *)ce.key.p, ce.key.n,
                                (const char *)nb.p, nb.n);
      if (out) rc = storage_entries_add(out, ce.key, CBYTES(nb.p, nb.n));
    }
  }
  if (rc == 0) {
    char *ierr = NULL;
    rocksdb_iter_get_error(it, &ierr);
    if (ierr) rc = rocks_failed("versioned delete", ierr);
  }
  /* a row delete whose context names cells this replica does not hold
  ** yet (the reader saw them on another replica): their markers, with
  ** that history, supersede them when the sets meet */
  uint8_t ckbuf[CELLAR_MAX_KEY_BYTES + 1];
  keys_unescape(kp->ck_esc, ckbuf);
  const cell_rowctx *rcx =
      kp->kind == KEYS_KIND_ROW ? event_ctx_of(ctx, nctx, ckbuf, kp->nck) : NULL;
  uint8_t *ck = NULL;
  for (size_t k = 0; rc == 0 && rcx && k < rcx->n; k++) {
    cbytes col = rcx->c[k].column;
    uint8_t *nk = realloc(ck, np + 1 + col.n + 1);
    if (nk == NULL) {
      rc = CELLAR_ENOMEM;
      break;
    }
    ck = nk;
    memcpy(ck, lo, np + 1);   /* prefix | NEXT */
    if (col.n) memcpy(ck + np + 1, col.p, col.n);
    size_t len;
    char *gerr = NULL;
    char *v = rocksdb_get_cf(s->db, s->ro, s->cf[CF_DATA], (const char *)ck,
                             np + 1 + col.n, &len, &gerr);
    if (gerr) {
      rc = rocks_failed("versioned delete", gerr);
      break;
    }
    if (v) {   /* stored: the scan marked it */
      rocksdb_free(v);
      continue;
    }
    keys_parts cp;
    if (keys_decode(ck, np + 1 + col.n, &cp) != 0) continue;
    rc = event_cell(NULL, &cp, ctx, nctx, o, &w, &nb, err, errlen);
    if (rc == 0) {
      rocksdb_writebatch_put_cf(wb, s->cf[CF_DATA], (const char *)ck, np + 1 + col.n,
                                (const char *)nb.p, nb.n);
      if (out) rc = storage_entries_add(out, CBYTES(ck, np + 1 + col.n), CBYTES(nb.p, nb.n));
    }
  }
  free(ck);
  cell_buf_free(&nb);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  free(lo);
  return rc;
}

int storage_event_entries(storage *s, const storage_entry *e, size_t n,
                          const storage_event_ctx *ctx, size_t nctx,
                          const storage_event_opts *o, storage_entries *out,
                          char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (n == 0) return 0;
  /* the arrays on the stack for a few cells (the common put), else one
  ** allocation, most aligned first */
  enum { SMALL = 8 };
  const char *kp_s[SMALL];
  size_t kn_s[SMALL];
  rocksdb_pinnableslice_t *vals_s[SMALL];
  char *errs_s[SMALL];
  unsigned st_s[SMALL];
  cell in_s[SMALL];
  keys_parts parts_s[SMALL];
  const char **kp = kp_s;
  size_t *kn = kn_s;
  rocksdb_pinnableslice_t **vals = vals_s;
  char **errs = errs_s;
  unsigned *st = st_s;
  cell *in = in_s;
  keys_parts *parts = parts_s;
  void *heap = NULL;
  int rc = 0;
  if (n > SMALL) {
    size_t each = sizeof *in + sizeof *parts + sizeof *kp + sizeof *kn + sizeof *vals +
                  sizeof *errs + sizeof *st;
    heap = n <= SIZE_MAX / each ? malloc(n * each) : NULL;
    if (heap == NULL) return CELLAR_ENOMEM;
    in = heap;
    parts = (keys_parts *)(in + n);
    kp = (const char **)(parts + n);
    kn = (size_t *)(kp + n);
    vals = (rocksdb_pinnableslice_t **)(kn + n);
    errs = (char **)(vals + n);
    st = (unsigned *)(errs + n);
  }
  memset(vals, 0, n * sizeof *vals);
  memset(errs, 0, n * sizeof *errs);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    rc = check_entry(&e[i], &parts[i], &in[i]);
    if (rc == 0 && in[i].has_clock) rc = CELLAR_EINVAL;   /* writes are plain */
    if (rc == 0 && i && bytes_cmp(e[i - 1].key, e[i].key) >= 0) rc = CELLAR_EINVAL;
    kp[i] = (const char *)e[i].key.p;
    kn[i] = e[i].key.n;
    st[i] = stripe_index(parts[i].table_id, parts[i].token);
  }
  size_t ns = 0;
  if (rc == 0) {
    qsort(st, n, sizeof *st, unsigned_cmp);
    for (size_t i = 0; i < n; i++)
      if (ns == 0 || st[ns - 1] != st[i]) st[ns++] = st[i];
  }
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  size_t n0 = out ? out->n : 0;
  cell_buf nb = {0};   /* the new versions, one buffer reused */
  for (size_t j = 0; rc == 0 && j < ns; j++) pthread_mutex_lock(&s->stripe[st[j]]);
  if (rc == 0)
    rocksdb_batched_multi_get_cf(s->db, s->ro, s->cf[CF_DATA], n, kp, kn,
                                 vals, errs, 1);
  for (size_t i = 0; i < n && ns; i++) {
    if (errs[i]) {
      if (rc == 0) rc = rocks_failed("read before write", errs[i]);
      else rocksdb_free(errs[i]);
      continue;
    }
    if (rc) continue;
    cell old, *stored = NULL;
    if (vals[i]) {
      size_t nv;
      const char *v = rocksdb_pinnableslice_value(vals[i], &nv);
      if (cell_decode((const uint8_t *)v, nv, &old) == 0) stored = &old;
      else log_error("storage: undecodable stored value (%zu bytes), replaced", nv);
    }
    cbytes value = e[i].value;
    if (parts[i].kind != KEYS_KIND_CELL && o->expand_deletes) {
      /* a versioned row / partition delete: a delete marker in each of
      ** its stored cells, the tombstone itself is not written */
      rc = expand_delete(s, &e[i], &parts[i], &in[i], ctx, nctx, o, wb, out,
                         err, errlen);
      continue;
    }
    if (parts[i].kind != KEYS_KIND_CELL) {
      /* row and partition tombstones stay plain: merged as apply does */
      const cell *w = &in[i];
      int mr = stored ? cell_merge_versions(&in[i], stored, &nb, &w) : 0;
      if (mr == 1) value = CBYTES(nb.p, nb.n);
      else if (mr < 0 || w != &in[i]) value = CBYTES(NULL, 0);
    } else {
      dvv_write w = {in[i].ts, in[i].tombstone,
                     in[i].tombstone ? in[i].deleted_at : in[i].expires_at,
                     in[i].tombstone ? CBYTES(NULL, 0) : in[i].value};
      rc = event_cell(stored, &parts[i], ctx, nctx, o, &w, &nb, err, errlen);
      if (rc == 0) value = CBYTES(nb.p, nb.n);
    }
    if (rc == 0 && value.p) {
      rocksdb_writebatch_put_cf(wb, s->cf[CF_DATA], kp[i], kn[i],
                                (const char *)value.p, value.n);
      if (out) rc = storage_entries_add(out, e[i].key, value);
    }
  }
  if (rc == 0 && ns) {
    char *werr = NULL;
    rocksdb_write(s->db, s->wo, wb, &werr);
    if (werr) rc = rocks_failed("write", werr);
  }
  for (size_t j = ns; j-- > 0;) pthread_mutex_unlock(&s->stripe[st[j]]);
  for (size_t i = 0; i < n; i++)
    if (vals[i]) rocksdb_pinnableslice_destroy(vals[i]);
  rocksdb_writebatch_destroy(wb);
  cell_buf_free(&nb);
  if (rc && out) out->n = n0;
  free(heap);
  return rc;
}

/* The writes of a client: the entries a replica would receive, applied
** here, so a local write and a replicated one are the same bytes. */
int storage_put(storage *s, const table_def *t, cbytes pk,
                const req_row *rows, size_t nrows, int64_t ts, uint32_t ttl,
                uint32_t now_s) {
  storage_entries l;
  storage_entries_init(&l);
  int rc = storage_put_entries(t, pk, rows, nrows, ts, ttl, now_s, &l);
  if (rc == 0) rc = storage_apply_entries(s, l.e, l.n, NULL);
  storage_entries_free(&l);
  return rc;
}

int storage_delete(storage *s, const table_def *t, cbytes pk, int scope,
                   cbytes ck, const cbytes *cols, size_t ncols, int64_t ts,
                   uint32_t now_s) {
  storage_entries l;
  storage_entries_init(&l);
  int rc = storage_delete_entries(t, pk, scope, ck, cols, ncols, ts, now_s,
                                  &l);
  if (rc == 0) rc = storage_apply_entries(s, l.e, l.n, NULL);
  storage_entries_free(&l);
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
  return bytes_cmp(*(const cbytes *)a, *(const cbytes *)b);
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

/* The keys that bound a query: its partition tombstone (pt), the seek
** target of its start bound (lo; nlo 0 without one) and the exclusive end
** of its range (hi). Never copied: the sbufs may point into themselves. */
typedef struct qbounds {
  sbuf pt, lo, hi;
  size_t npt, nlo, nhi;
} qbounds;

static void qbounds_free(qbounds *b) {
  sbuf_free(&b->pt);
  sbuf_free(&b->lo);
  sbuf_free(&b->hi);
}

/* Checks the query (EINVAL, ETOOBIG) and encodes its bounds. Free with
** qbounds_free whatever it returns. */
static int qbounds_init(qbounds *b, uint64_t table_id,
                        const storage_query *q) {
  sbuf_init(&b->pt);
  sbuf_init(&b->lo);
  sbuf_init(&b->hi);
  b->npt = b->nlo = b->nhi = 0;
  if (q->limit == 0) return CELLAR_EINVAL;
  if (check_key(q->pk) || (q->has_start && check_key(q->start)) ||
      (q->has_end && check_key(q->end)))
    return CELLAR_ETOOBIG;
  if (sbuf_reserve(&b->pt, KEYS_PARTITION_MAX(q->pk.n))
      || sbuf_reserve(&b->lo,
                      KEYS_ROW_MAX(q->pk.n, q->has_start ? q->start.n : 0))
      || sbuf_reserve(&b->hi, KEYS_ROW_MAX(q->pk.n, q->has_end ? q->end.n : 0)))
    return CELLAR_ENOMEM;
  int64_t token = token_of(q->pk.p, q->pk.n);
  if (q->has_end)
    b->nhi = keys_row_end(b->hi.p, table_id, token, q->pk, q->end);
  else
    b->nhi = keys_partition_end(b->hi.p, table_id, token, q->pk);
  b->npt = keys_partition(b->pt.p, table_id, token, q->pk);
  if (q->has_start && q->start_exclusive)
    b->nlo = keys_row_end(b->lo.p, table_id, token, q->pk, q->start);
  else if (q->has_start)
    b->nlo = keys_rows_from(b->lo.p, table_id, token, q->pk, q->start);
  return 0;
}

/* Opens an iterator over the query's range, bounded above by hi, at the
** partition tombstone's key: one seek, not a point read plus a seek, when
** the first row is the one asked for (a get of a narrow partition).
** *ro holds the bound: destroy it after the iterator. */
static rocksdb_iterator_t *qscan_open(storage *s, const qbounds *b,
                                      rocksdb_readoptions_t **ro) {
  *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_iterate_upper_bound(*ro, (const char *)b->hi.p,
                                              b->nhi);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, *ro,
                                                      s->cf[CF_DATA]);
  rocksdb_iter_seek(it, (const char *)b->pt.p, b->npt);
  return it;
}

/* 1 when the iterator is at the partition tombstone. */
static int qscan_at_pt(rocksdb_iterator_t *it, const qbounds *b) {
  if (!rocksdb_iter_valid(it)) return 0;
  size_t nk;
  const char *k = rocksdb_iter_key(it, &nk);
  return nk == b->npt && memcmp(k, b->pt.p, b->npt) == 0;
}

/* Past the partition tombstone: seeks on to the start bound if the
** iterator is still before it. */
static void qscan_to_start(rocksdb_iterator_t *it, const qbounds *b) {
  if (b->nlo == 0 || !rocksdb_iter_valid(it)) return;
  size_t nk;
  const char *k = rocksdb_iter_key(it, &nk);
  if (bytes_cmp(CBYTES(k, nk), CBYTES(b->lo.p, b->nlo)) < 0)
    rocksdb_iter_seek(it, (const char *)b->lo.p, b->nlo);
}

/*
** The visibility rules of note 3, in one place: fed the entries of one
** partition in key order, by storage_read (from RocksDB) and by
** storage_entries_to_result (from a merged list of replicas' entries), it
** appends the live rows to the result. A row is added at its first live
** cell, so dead rows never show and do not count towards the limit.
*/
typedef struct vis {
  uint32_t now, limit, nrows;
  colset cs;
  result *out;
  int *more;
  int64_t pt_ts;         /* the partition tombstone's */
  int in_row;
  sbuf cur;              /* esc(ck) of the current row */
  size_t ncur;
  int64_t rt_ts;         /* the current row's tombstone */
  res_row *row;          /* the current row once it has a live cell */
  sbuf ck;               /* the current row's ck, unescaped */
  int versions;          /* siblings policy: siblings and row contexts */
  cell_buf ctx;          /* the current row's context being built */
} vis;

#define VIS_DONE 1       /* vis_feed: a live row beyond the limit, stop */

/* Free with vis_free whatever it returns. */
static int vis_init(vis *v, const table_def *t, const storage_query *q,
                    uint32_t now_s, result *out, int *more) {
  v->versions = t->policy == POLICY_SIBLINGS;
  memset(&v->ctx, 0, sizeof v->ctx);
  v->now = now_s;
  v->limit = q->limit;
  v->nrows = 0;
  v->out = out;
  v->more = more;
  v->pt_ts = INT64_MIN;
  v->in_row = 0;
  v->ncur = 0;
  v->rt_ts = INT64_MIN;
  v->row = NULL;
  sbuf_init(&v->cur);
  sbuf_init(&v->ck);
  return colset_init(&v->cs, q->cols, q->ncols);
}

static void vis_free(vis *v) {
  cell_buf_free(&v->ctx);
  free(v->cs.sorted);
  sbuf_free(&v->cur);
  sbuf_free(&v->ck);
}

/* The current row is complete: it gets the context of the cells read. */
static int vis_end_row(vis *v) {
  int rc = 0;
  if (v->row && v->ctx.n)
    rc = result_set_row_context(v->out, v->row, v->ctx.p, v->ctx.n);
  v->ctx.n = 0;
  return rc;
}

/* The current row in the result, added at its first live cell. */
static int vis_row(vis *v, const keys_parts *kp) {
  if (v->row) return 0;
  if (v->nrows == v->limit) {   /* a live row beyond the limit */
    if (v->more) *v->more = 1;
    return VIS_DONE;
  }
  if (sbuf_reserve(&v->ck, kp->nck)) return CELLAR_ENOMEM;
  keys_unescape(kp->ck_esc, v->ck.p);
  v->row = result_add_row(v->out, v->ck.p, kp->nck);
  if (v->row == NULL) return CELLAR_ENOMEM;
  v->nrows++;
  return 0;
}

/*
** A versioned cell, or any cell of a siblings table (a plain one is its
** legacy sibling): the row context gets the cell's history; the visible
** versions are the siblings above the row / partition tombstones, values
** not expired. Siblings policy: the cell shows when a value is visible,
** its value is the LWW winner of the visible values, and every visible
** version (delete markers included) is listed when there is more than one.
** lww policy (a table switched from siblings): the LWW winner alone.
*/
static int vis_versions(vis *v, const keys_parts *kp, const cell *c) {
  dvv d;
  dvv_init(&d);
  int rc = cell_versions(c, &d);
  if (rc) return rc == CELLAR_ENOMEM ? rc : 0;   /* checked at the door */
  if (v->versions) {
    dvv_vv vv;
    dvv_vv_init(&vv);
    rc = dvv_join(&d, &vv);
    if (rc == 0) rc = cell_rowctx_add(&v->ctx, kp->column, &vv, v->now);
    dvv_vv_close(&vv);
  }
  size_t n = dvv_count(&d), nvis = 0, nlive = 0;
  const dvv_sib *best = NULL;
  res_sib small[8];
  res_sib *sib = n <= 8 ? small : malloc(n * sizeof *sib);
  if (sib == NULL && rc == 0) rc = CELLAR_ENOMEM;
  if (!v->versions && n) {
    /* lww: only the winner counts */
    const dvv_sib *w = dvv_sibling(&d, dvv_lww(&d));
    if (!w->tombstone && (w->time == 0 || w->time > v->now) &&
        w->ts > v->pt_ts && w->ts > v->rt_ts)
      best = w, nlive = 1;
    n = 0;
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const dvv_sib *x = dvv_sibling(&d, i);
    if (x->ts <= v->pt_ts || x->ts <= v->rt_ts) continue;
    if (!x->tombstone && x->time && x->time <= v->now) continue;
    sib[nvis++] = (res_sib){x->value, x->nvalue, x->ts,
                            x->tombstone ? 0 : x->time, x->tombstone};
    if (x->tombstone) continue;
    nlive++;
    if (best == NULL || dvv_sib_lww_cmp(x, best) > 0) best = x;
  }
  if (rc == 0 && nlive) rc = vis_row(v, kp);
  if (rc == 0 && nlive)
    rc = result_add_cell(v->out, v->row, kp->column.p, kp->column.n,
                         best->value, best->nvalue, best->ts, best->time);
  if (rc == 0 && nlive && nvis > 1)
    rc = result_set_siblings(v->out, v->row, sib, nvis);
  if (sib != small) free(sib);
  dvv_close(&d);
  return rc;
}

/* One entry. Returns 0 to go on, VIS_DONE (with *more = 1) once a live row
** beyond the limit is seen, or an error. */
static int vis_feed(vis *v, const keys_parts *kp, const cell *c) {
  if (kp->kind == KEYS_KIND_PARTITION) {
    if (c->tombstone && c->ts > v->pt_ts) v->pt_ts = c->ts;
    return 0;
  }
  if (!v->in_row || kp->ck_esc.n != v->ncur ||
      memcmp(kp->ck_esc.p, v->cur.p, v->ncur) != 0) {
    /* a new row starts */
    int rc = vis_end_row(v);
    if (rc) return rc;
    if (sbuf_reserve(&v->cur, kp->ck_esc.n)) return CELLAR_ENOMEM;
    memcpy(v->cur.p, kp->ck_esc.p, kp->ck_esc.n);
    v->ncur = kp->ck_esc.n;
    v->in_row = 1;
    v->rt_ts = INT64_MIN;
    v->row = NULL;
  }
  if (kp->kind == KEYS_KIND_ROW) {
    if (c->tombstone) v->rt_ts = c->ts;
    return 0;
  }
  if (!colset_has(&v->cs, kp->column)) return 0;
  if (c->has_clock || v->versions) return vis_versions(v, kp, c);
  if (!cell_is_live(c, v->now) || c->ts <= v->pt_ts || c->ts <= v->rt_ts)
    return 0;
  int rc = vis_row(v, kp);
  if (rc) return rc;
  return result_add_cell(v->out, v->row, kp->column.p, kp->column.n,
                         c->value.p, c->value.n, c->ts, c->expires_at);
}

/* Decodes the iterator's entry into kp, c; 0 or CELLAR_EPROTO, logged (a
** stored entry that does not decode is skipped by every reader). */
static int iter_entry(rocksdb_iterator_t *it, uint64_t table_id,
                      storage_entry *e, keys_parts *kp, cell *c) {
  size_t nk, nv;
  const char *k = rocksdb_iter_key(it, &nk);
  const char *v = rocksdb_iter_value(it, &nv);
  e->key = CBYTES(k, nk);
  e->value = CBYTES(v, nv);
  int rc = check_entry(e, kp, c);
  if (rc)
    log_error("storage: undecodable entry in table %016llx, skipped",
              (unsigned long long)table_id);
  return rc;
}

int storage_read(storage *s, const table_def *t, const storage_query *q,
                 uint32_t now_s, result *out, int *more) {
  if (more) *more = 0;
  qbounds b;
  vis v;
  rocksdb_readoptions_t *ro = NULL;
  rocksdb_iterator_t *it = NULL;
  int rc = qbounds_init(&b, t->id, q);
  int vrc = vis_init(&v, t, q, now_s, out, more);
  if (rc == 0) rc = vrc;
  if (rc) goto done;

  it = qscan_open(s, &b, &ro);
  storage_entry e;
  keys_parts kp;
  cell c;
  if (qscan_at_pt(it, &b)) {
    if (iter_entry(it, t->id, &e, &kp, &c) == 0) rc = vis_feed(&v, &kp, &c);
    rocksdb_iter_next(it);
  }
  qscan_to_start(it, &b);
  for (; rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it))
    if (iter_entry(it, t->id, &e, &kp, &c) == 0) rc = vis_feed(&v, &kp, &c);
  if (rc == VIS_DONE) rc = 0;
  if (rc == 0) rc = vis_end_row(&v);
  if (rc == 0) {
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) rc = rocks_failed("read", err);
  }

done:
  if (it) rocksdb_iter_destroy(it);
  if (ro) rocksdb_readoptions_destroy(ro);
  vis_free(&v);
  qbounds_free(&b);
  return rc;
}

int storage_entries_to_result(const table_def *t, const storage_query *q,
                              const storage_entry *e, size_t n,
                              uint32_t now_s, result *out, int *more) {
  if (more) *more = 0;
  qbounds b;
  vis v;
  int rc = qbounds_init(&b, t->id, q);
  int vrc = vis_init(&v, t, q, now_s, out, more);
  if (rc == 0) rc = vrc;
  cbytes pt = CBYTES(b.pt.p, b.npt), hi = CBYTES(b.hi.p, b.nhi);
  cbytes lo = b.nlo ? CBYTES(b.lo.p, b.nlo) : pt;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (i && bytes_cmp(e[i - 1].key, e[i].key) >= 0) {
      rc = CELLAR_EINVAL;
      break;
    }
    /* the same window as storage_read's iterator: the partition
    ** tombstone, then [lo, hi) */
    if (bytes_cmp(e[i].key, pt) != 0) {
      if (bytes_cmp(e[i].key, lo) < 0) continue;
      if (bytes_cmp(e[i].key, hi) >= 0) break;
    }
    keys_parts kp;
    cell c;
    rc = check_entry(&e[i], &kp, &c);
    if (rc == 0) rc = vis_feed(&v, &kp, &c);
  }
  if (rc == VIS_DONE) rc = 0;
  if (rc == 0) rc = vis_end_row(&v);
  vis_free(&v);
  qbounds_free(&b);
  return rc;
}

int storage_read_entries(storage *s, const table_def *t,
                         const storage_query *q, storage_entries *out,
                         int *more) {
  if (more) *more = 0;
  qbounds b;
  colset cs;
  sbuf cur;              /* esc(ck) of the current row */
  size_t ncur = 0, n0 = out->n;
  int in_row = 0;
  uint32_t nrows = 0;
  rocksdb_readoptions_t *ro = NULL;
  rocksdb_iterator_t *it = NULL;
  sbuf_init(&cur);
  int rc = qbounds_init(&b, t->id, q);
  int crc = colset_init(&cs, q->cols, q->ncols);
  if (rc == 0) rc = crc;
  if (rc) goto done;

  it = qscan_open(s, &b, &ro);
  storage_entry e;
  keys_parts kp;
  cell c;
  if (qscan_at_pt(it, &b)) {
    if (iter_entry(it, t->id, &e, &kp, &c) == 0)
      rc = storage_entries_add(out, e.key, e.value);
    rocksdb_iter_next(it);
  }
  qscan_to_start(it, &b);
  for (; rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    if (iter_entry(it, t->id, &e, &kp, &c) != 0) continue;
    if (kp.kind == KEYS_KIND_CELL && !colset_has(&cs, kp.column)) continue;
    if (!in_row || kp.ck_esc.n != ncur ||
        memcmp(kp.ck_esc.p, cur.p, ncur) != 0) {
      /* a new row with an entry: it counts */
      if (nrows == q->limit) {
        if (more) *more = 1;
        break;
      }
      if (sbuf_reserve(&cur, kp.ck_esc.n)) {
        rc = CELLAR_ENOMEM;
        break;
      }
      memcpy(cur.p, kp.ck_esc.p, kp.ck_esc.n);
      ncur = kp.ck_esc.n;
      in_row = 1;
      nrows++;
    }
    rc = storage_entries_add(out, e.key, e.value);
  }
  if (rc == 0) {
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) rc = rocks_failed("read entries", err);
  }

done:
  if (it) rocksdb_iter_destroy(it);
  if (ro) rocksdb_readoptions_destroy(ro);
  if (rc) {
    out->n = n0;   /* the bytes stay in out's blocks until it is freed */
    if (more) *more = 0;
  }
  free(cs.sorted);
  sbuf_free(&cur);
  qbounds_free(&b);
  return rc;
}

/* ------------------------------------------------- merge, digest, scans */

int storage_entries_merge(const storage_entry *a, size_t na,
                          const storage_entry *b, size_t nb,
                          storage_entries *out) {
  size_t n0 = out->n, i = 0, j = 0;
  int rc = entries_grow(out, na + nb);
  while (rc == 0 && (i < na || j < nb)) {
    if ((i > 0 && i < na && bytes_cmp(a[i - 1].key, a[i].key) >= 0) ||
        (j > 0 && j < nb && bytes_cmp(b[j - 1].key, b[j].key) >= 0)) {
      rc = CELLAR_EINVAL;
      break;
    }
    int d = i == na ? 1 : j == nb ? -1 : bytes_cmp(a[i].key, b[j].key);
    const storage_entry *win = d <= 0 ? &a[i] : &b[j];
    cell x, y;
    if ((d <= 0 && cell_decode(a[i].value.p, a[i].value.n, &x) != 0) ||
        (d >= 0 && cell_decode(b[j].value.p, b[j].value.n, &y) != 0)) {
      rc = CELLAR_EPROTO;
      break;
    }
    cell_buf mb = {0};
    if (d == 0) {
      /* the one merge (cell_merge_versions): plain cells by LWW exactly as
      ** cell_merge, versioned ones by their version sets */
      const cell *w;
      int mr = cell_merge_versions(&x, &y, &mb, &w);
      if (mr < 0) {
        rc = mr;
        break;
      }
      if (mr == 0 && w == &y) win = &b[j];
    }
    if (d <= 0) i++;
    if (d >= 0) j++;
    rc = storage_entries_add(out, win->key,
                             mb.n ? CBYTES(mb.p, mb.n) : win->value);
    cell_buf_free(&mb);
  }
  if (rc) out->n = n0;
  return rc;
}

/*
** The digest: a 64-bit state absorbs the list as 8-byte little-endian words
** (the entry count, then per entry the key's length, its bytes, the
** value's length, its bytes, the last word of each zero-padded), each by
** a bijection of state ^ word, then a final avalanche (fmix64 of
** MurmurHash3). Since every step is a bijection of the state, two lists
** that differ in a single word, in particular a single byte, always have
** different digests.
*/
static uint64_t digest_word(uint64_t h, uint64_t w) {
  h ^= w;
  h *= 0x87c37b91114253d5ull;
  h = (h << 31) | (h >> 33);
  h *= 0x4cf5ad432745937full;
  return h;
}

static uint64_t digest_bytes(uint64_t h, cbytes b) {
  h = digest_word(h, (uint64_t)b.n);
  size_t i = 0;
  for (; i + 8 <= b.n; i += 8) {
    uint64_t w = 0;
    for (int j = 7; j >= 0; j--) w = (w << 8) | b.p[i + (size_t)j];
    h = digest_word(h, w);
  }
  if (i < b.n) {
    uint64_t w = 0;
    for (size_t j = b.n; j-- > i;) w = (w << 8) | b.p[j];
    h = digest_word(h, w);
  }
  return h;
}

uint64_t storage_entries_digest(const storage_entry *e, size_t n) {
  uint64_t h = digest_word(0x63656c6c61720001ull, (uint64_t)n);
  for (size_t i = 0; i < n; i++) {
    h = digest_bytes(h, e[i].key);
    h = digest_bytes(h, e[i].value);
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

/* One ascending segment of a token range scan: tokens first..last, both
** inclusive, of table_id, as of snap. */
static int scan_tokens(storage *s, const rocksdb_snapshot_t *snap,
                       uint64_t table_id, int64_t first, int64_t last,
                       int (*cb)(void *arg, cbytes key, cbytes value),
                       void *arg) {
  uint8_t lo[KEYS_HEAD_BYTES], hi[KEYS_HEAD_BYTES];
  size_t nlo = keys_head(lo, table_id, first), nhi = 0;
  if (last < INT64_MAX)
    nhi = keys_head(hi, table_id, last + 1);
  else if (keys_table_end(hi, table_id))
    nhi = KEYS_TABLE_BYTES;   /* else the table runs to the end of the CF */
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_snapshot(ro, snap);
  rocksdb_readoptions_set_total_order_seek(ro, 1);   /* crosses partitions */
  if (nhi) rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi,
                                                       nhi);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro,
                                                      s->cf[CF_DATA]);
  int rc = 0;
  for (rocksdb_iter_seek(it, (const char *)lo, nlo); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    storage_entry e;
    keys_parts kp;
    cell c;
    if (iter_entry(it, table_id, &e, &kp, &c) != 0) continue;
    if (kp.table_id != table_id) break;   /* table UINT64_MAX: unbounded */
    rc = cb(arg, e.key, e.value);
    if (rc) break;
  }
  if (rc == 0) {
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) rc = rocks_failed("scan range", err);
  }
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  return rc;
}

int storage_scan_range(storage *s, uint64_t table_id, int64_t start,
                       int64_t end,
                       int (*cb)(void *arg, cbytes key, cbytes value),
                       void *arg) {
  /* one snapshot: both segments of a wrapping range see the same data */
  const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
  int rc;
  if (start < end) {
    rc = scan_tokens(s, snap, table_id, start + 1, end, cb, arg);
  } else {
    /* wraps: (start, max] and [min, end], the second first in key order */
    rc = scan_tokens(s, snap, table_id, INT64_MIN, end, cb, arg);
    if (rc == 0 && start < INT64_MAX)
      rc = scan_tokens(s, snap, table_id, start + 1, INT64_MAX, cb, arg);
  }
  rocksdb_release_snapshot(s->db, snap);
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
