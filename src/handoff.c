/*
** handoff: hinted handoff's I/O around the hints state machine. See
** handoff.h; design in docs/handoff.md.
**
** Design notes
**
**  1. One writer job at a time: the hints to store and the keys to delete
**     that queued up meanwhile go to RocksDB in one write batch (group
**     commit), so a burst of hints for a dead replica costs a few batches,
**     not one WAL write each, and never more than one pool thread.
**  2. Loads run as their own jobs (one per target at most: the machine
**     issues one LOAD per target at a time).
**  3. Actions are drained without re-entering the machine: a failure met
**     while draining (a send refused, a peer connection failing inside
**     cluster_send, a LOAD or DELETE that could not be started for want
**     of memory or a pool slot) is queued and fed to the machine after
**     the drain (hints_on_send_failed, hints_on_load_failed,
**     hints_on_deleted with CELLAR_ENOMEM), because every event frees
**     memory that undrained actions point to (hints.c note 4). Without
**     that report the target would wait forever for the answer.
**     hints_admit is the exception (it frees nothing), so the proxy may
**     store hints whenever it likes; handoff_store calls nothing else of
**     the machine.
**  4. Replay ids on the wire are the machine's ids xor a random salt: the
**     proxy hands over every REPLICA_ACK whose id is not one of its
**     requests, and the salt keeps those spaces apart.
**  5. Liveness is polled: every tick asks the cluster about each target
**     with hints (up, down, gone; its peer address). The member handler
**     only brings the next tick forward, since it runs under the
**     cluster's lock.
**  6. The admin views run on worker threads: they read a snapshot of the
**     machine's per-target stats (copied under a mutex after every
**     drain) and seek the hints column family for each target's oldest.
**  7. No callback from inside a call: handoff_store's done() always runs
**     later, from a loop callback. A writer job the pool refuses is
**     finished (with an error) by the next tick, never synchronously: the
**     proxy's hint_stored could otherwise free its request while the
**     proxy still drains it.
**  8. Keys in increasing order (hints.h, the owner's part): a hint's
**     creation time is the wall clock, but never below the last one used
**     nor, after a restart, the newest found on disk (+1 ms), so a clock
**     stepping back cannot put a new hint below the machine's floor;
**     hints are written in the order they were made (puts go in FIFO
**     order, one writer job at a time). The admin view seeks its oldest
**     after the floor too.
*/
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "frame.h"
#include "handoff.h"
#include "hints.h"
#include "log.h"
#include "metrics.h"
#include "wire_peer.h"

#define TICK_MS 100
#define WRITE_BATCH_MAX 4096          /* puts + deletes per writer job */

typedef struct wput {
  char target[HINT_HOST_MAX];
  uint8_t *kv;                        /* key then value, one block */
  size_t nk, nv;
  void (*done)(void *, int);
  void *arg;
} wput;

typedef struct wdel {
  uint64_t id;
  uint8_t *blk;                       /* cbytes[nkeys] then the key bytes */
  size_t nkeys, replayed, expired, dropped;
} wdel;

typedef struct taddr {
  char host[HINT_HOST_MAX];
  char addr[80];
} taddr;

struct handoff {
  uv_loop_t *loop;
  const config *cfg;
  engine *eng;
  cluster *cl;
  hints *m;
  uv_timer_t timer;
  int timer_init, stopping;
  uint64_t salt, seq;
  uint64_t min_created;               /* note 8 */
  int draining;
  char (*failed)[HINT_HOST_MAX];      /* note 3 */
  size_t nfailed, capfailed;
  uint64_t *lfailed, *dfailed;        /* note 3: LOAD / DELETE ids */
  size_t nlfailed, caplfailed, ndfailed, capdfailed;
  struct wjob *refused;               /* note 7 */
  wput *puts;
  size_t nputs, capputs;
  wdel *dels;
  size_t ndels, capdels;
  char (*drops)[HINT_HOST_MAX];
  size_t ndrops, capdrops;
  int writing;
  taddr *addrs;
  size_t naddrs;
  pthread_mutex_t mu;                 /* guards snap (note 6) */
  hints_target_stats *snap;
  size_t nsnap;
};

static uint64_t now_ms(void) { return clock_mono_ns() / 1000000ull; }
static uint64_t wall_ms(void) { return (uint64_t)clock_now_us() / 1000ull; }

/* Grows *arr (elements of size sz) to hold one more. 0 or -1. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz) {
  if (n < *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  void *p = realloc(*arr, nc * sz);
  if (p == NULL) return -1;
  *arr = p;
  *cap = nc;
  return 0;
}

static void drain(handoff *h);
static void kick_writer(handoff *h);

/* ----------------------------------------------------------- snapshot */

static void snapshot(handoff *h) {
  size_t n = hints_target_count(h->m);
  hints_target_stats *s = calloc(n + 1, sizeof *s);
  if (s == NULL) return;
  for (size_t i = 0; i < n; i++) hints_target_at(h->m, i, &s[i]);
  pthread_mutex_lock(&h->mu);
  free(h->snap);
  h->snap = s;
  h->nsnap = n;
  pthread_mutex_unlock(&h->mu);
}

static const char *addr_of(handoff *h, const char *host) {
  for (size_t i = 0; i < h->naddrs; i++)
    if (!strcmp(h->addrs[i].host, host)) return h->addrs[i].addr;
  return "";
}

static void set_addr(handoff *h, const char *host, const char *addr) {
  for (size_t i = 0; i < h->naddrs; i++)
    if (!strcmp(h->addrs[i].host, host)) {
      snprintf(h->addrs[i].addr, sizeof h->addrs[i].addr, "%s", addr);
      return;
    }
  taddr *a = realloc(h->addrs, (h->naddrs + 1) * sizeof *a);
  if (a == NULL) return;
  h->addrs = a;
  snprintf(a[h->naddrs].host, sizeof a[h->naddrs].host, "%s", host);
  snprintf(a[h->naddrs].addr, sizeof a[h->naddrs].addr, "%s", addr);
  h->naddrs++;
}

/* ------------------------------------------------------------- writer */

typedef struct wjob {
  uv_work_t work;
  handoff *h;
  wput *puts;
  size_t nputs;
  wdel *dels;
  size_t ndels;
  char (*drops)[HINT_HOST_MAX];
  size_t ndrops;
  int rc;
} wjob;

static void write_work(uv_work_t *w) {
  wjob *j = w->data;
  storage *st = j->h->eng->st;
  size_t nk = 0;
  for (size_t i = 0; i < j->ndels; i++) nk += j->dels[i].nkeys;
  storage_entry *put = calloc(j->nputs + 1, sizeof *put);
  cbytes *del = calloc(nk + 1, sizeof *del);
  if (put == NULL || del == NULL) {
    j->rc = CELLAR_ENOMEM;
  } else {
    for (size_t i = 0; i < j->nputs; i++)
      put[i] = (storage_entry){CBYTES(j->puts[i].kv, j->puts[i].nk),
                               CBYTES(j->puts[i].kv + j->puts[i].nk, j->puts[i].nv)};
    size_t k = 0;
    for (size_t i = 0; i < j->ndels; i++) {
      memcpy(del + k, j->dels[i].blk, j->dels[i].nkeys * sizeof *del);
      k += j->dels[i].nkeys;
    }
    j->rc = storage_hints_write(st, put, j->nputs, del, nk);
  }
  free(put);
  free(del);
  for (size_t i = 0; i < j->ndrops; i++) {
    uint8_t p[HINT_KEY_MAX];
    size_t np = hint_key_prefix(j->drops[i], p);
    if (np && storage_hints_drop(st, p, np) != 0)
      log_warn("handoff: could not drop the hints of %s", j->drops[i]);
  }
}

static void write_done(uv_work_t *w, int status) {
  wjob *j = w->data;
  handoff *h = j->h;
  (void)status;
  uint64_t now = now_ms();
  for (size_t i = 0; i < j->nputs; i++) {
    wput *p = &j->puts[i];
    hints_on_stored(h->m, p->target, p->nk + p->nv, j->rc == 0, 1, now);
    metrics_add(j->rc == 0 ? METRIC_HINTS_STORED : METRIC_HINTS_FAILED, 1);
    drain(h);   /* actions are valid until the next call into the machine */
  }
  for (size_t i = 0; i < j->ndels; i++) {
    hints_on_deleted(h->m, j->dels[i].id, j->rc, now);
    drain(h);
    if (j->rc == 0) {
      metrics_add(METRIC_HINTS_REPLAYED, j->dels[i].replayed);
      metrics_add(METRIC_HINTS_EXPIRED, j->dels[i].expired);
      metrics_add(METRIC_HINTS_FAILED, j->dels[i].dropped);
    }
    free(j->dels[i].blk);
  }
  if (j->rc) log_warn("handoff: hints write failed: %s", cellar_strerror(j->rc));
  h->writing = 0;
  drain(h);
  /* the proxy's callbacks last: they may store more hints */
  for (size_t i = 0; i < j->nputs; i++) {
    if (j->puts[i].done) j->puts[i].done(j->puts[i].arg, j->rc);
    free(j->puts[i].kv);
  }
  free(j->puts);
  free(j->dels);
  free(j->drops);
  free(j);
  kick_writer(h);
}

/* Note 1: starts a writer job with what is queued, unless one runs. */
static void kick_writer(handoff *h) {
  if (h->writing || (h->nputs == 0 && h->ndels == 0 && h->ndrops == 0)) return;
  wjob *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->h = h;
  j->work.data = j;
  size_t np = h->nputs < WRITE_BATCH_MAX ? h->nputs : WRITE_BATCH_MAX;
  size_t nd = h->ndels < WRITE_BATCH_MAX ? h->ndels : WRITE_BATCH_MAX;
  j->puts = malloc((np + 1) * sizeof *j->puts);
  j->dels = malloc((nd + 1) * sizeof *j->dels);
  if (j->puts == NULL || j->dels == NULL) {
    free(j->puts);
    free(j->dels);
    free(j);
    return;
  }
  if (np) {
    memcpy(j->puts, h->puts, np * sizeof *j->puts);
    memmove(h->puts, h->puts + np, (h->nputs - np) * sizeof *h->puts);
  }
  h->nputs -= np;
  j->nputs = np;
  if (nd) {
    memcpy(j->dels, h->dels, nd * sizeof *j->dels);
    memmove(h->dels, h->dels + nd, (h->ndels - nd) * sizeof *h->dels);
  }
  h->ndels -= nd;
  j->ndels = nd;
  j->drops = h->drops;
  j->ndrops = h->ndrops;
  h->drops = NULL;
  h->ndrops = h->capdrops = 0;
  h->writing = 1;
  if (uv_queue_work(h->loop, &j->work, write_work, write_done) != 0) {
    j->rc = CELLAR_EINTERNAL;
    h->refused = j;           /* note 7: the next tick finishes it */
  }
}

/* --------------------------------------------------------------- loads */

typedef struct ljob {
  uv_work_t work;
  handoff *h;
  uint64_t id;
  uint8_t prefix[HINT_KEY_MAX], after[HINT_KEY_MAX];
  size_t np, nafter, count;
  storage_entries got;
  int end, rc;
} ljob;

static int load_one(void *arg, cbytes k, cbytes v) {
  ljob *j = arg;
  if (j->got.n == j->count) return 1;   /* more remain */
  return storage_entries_add(&j->got, k, v);
}

static void load_work(uv_work_t *w) {
  ljob *j = w->data;
  int rc = storage_hints_scan(j->h->eng->st, j->prefix, j->np, j->after, j->nafter,
                              load_one, j);
  j->end = rc == 0;
  j->rc = rc == 1 ? 0 : rc;
}

static void load_done(uv_work_t *w, int status) {
  ljob *j = w->data;
  handoff *h = j->h;
  (void)status;
  if (j->rc) {
    log_warn("handoff: loading hints failed: %s", cellar_strerror(j->rc));
    hints_on_load_failed(h->m, j->id, now_ms());
  } else {
    hint_record *r = calloc(j->got.n + 1, sizeof *r);
    if (r == NULL) {
      hints_on_load_failed(h->m, j->id, now_ms());
    } else {
      for (size_t i = 0; i < j->got.n; i++) r[i] = (hint_record){j->got.e[i].key, j->got.e[i].value};
      hints_on_loaded(h->m, j->id, r, j->got.n, j->end, wall_ms(), now_ms());
      free(r);
    }
  }
  storage_entries_free(&j->got);
  free(j);
  drain(h);
}

static void defer_id(handoff *h, uint64_t **ids, size_t *n, size_t *cap, uint64_t id,
                     const char *what) {
  if (grow((void **)ids, cap, *n, sizeof **ids)) {
    /* a LOAD times out in the machine (hints.c note 9); a DELETE's keys
    ** stay on disk, but its target starts no new pass */
    log_error("handoff: out of memory: a %s of hints is lost", what);
    return;
  }
  (*ids)[(*n)++] = id;
}

static void start_load(handoff *h, const hints_action *a) {
  ljob *j = calloc(1, sizeof *j);
  if (j == NULL) {            /* note 3: reported after the drain */
    defer_id(h, &h->lfailed, &h->nlfailed, &h->caplfailed, a->id, "LOAD");
    return;
  }
  j->h = h;
  j->id = a->id;
  j->work.data = j;
  j->np = hint_key_prefix(a->target, j->prefix);
  j->nafter = a->nafter <= sizeof j->after ? a->nafter : 0;
  if (j->nafter) memcpy(j->after, a->after, j->nafter);
  j->count = a->count;
  storage_entries_init(&j->got);
  if (uv_queue_work(h->loop, &j->work, load_work, load_done) != 0) {
    free(j);                  /* note 3: not load_done, we are draining */
    defer_id(h, &h->lfailed, &h->nlfailed, &h->caplfailed, a->id, "LOAD");
  }
}

/* -------------------------------------------------------------- drain */

static void defer_failure(handoff *h, const char *host) {
  for (size_t i = 0; i < h->nfailed; i++)
    if (!strcmp(h->failed[i], host)) return;
  if (grow((void **)&h->failed, &h->capfailed, h->nfailed, sizeof *h->failed)) return;
  snprintf(h->failed[h->nfailed++], HINT_HOST_MAX, "%s", host);
}

static void act(handoff *h, const hints_action *a) {
  switch (a->kind) {
  case HINTS_LOAD:
    start_load(h, a);
    break;
  case HINTS_SEND: {
    const char *addr = addr_of(h, a->target);
    int rc = CELLAR_ECONNECT;
    if (*addr && !h->stopping) {
      size_t len = 0;
      uint8_t *p = wire_mutation_encode(a->id ^ h->salt, cluster_peer_addr(h->cl),
                                        cluster_name(h->cl), a->entries, a->nentries, NULL, 0,
                                        &len);
      rc = p ? cluster_send(h->cl, addr, FRAME_REPLICA_APPLY, 0, p, len) : CELLAR_ENOMEM;
      free(p);
    }
    if (rc) defer_failure(h, a->target);
    break;
  }
  case HINTS_DELETE: {
    size_t total = a->nkeys * sizeof(cbytes);
    for (size_t i = 0; i < a->nkeys; i++) total += a->keys[i].n;
    uint8_t *blk = malloc(total ? total : 1);
    if (blk == NULL || grow((void **)&h->dels, &h->capdels, h->ndels, sizeof *h->dels)) {
      /* the keys stay (a later pass resends them); note 3: the machine
      ** hears the delete failed */
      free(blk);
      defer_id(h, &h->dfailed, &h->ndfailed, &h->capdfailed, a->id, "DELETE");
      break;
    }
    cbytes *keys = (cbytes *)blk;
    uint8_t *p = blk + a->nkeys * sizeof(cbytes);
    for (size_t i = 0; i < a->nkeys; i++) {
      memcpy(p, a->keys[i].p, a->keys[i].n);
      keys[i] = CBYTES(p, a->keys[i].n);
      p += a->keys[i].n;
    }
    h->dels[h->ndels++] = (wdel){a->id, blk, a->nkeys, a->replayed, a->expired, a->dropped};
    if (a->dropped)
      log_warn("handoff: %s refused a hint each time it came alone: dropped (hints.failed)",
               a->target);
    break;
  }
  case HINTS_DROP:
    log_info("handoff: %s left the cluster: dropping its %zu hints", a->target, a->nhints);
    if (grow((void **)&h->drops, &h->capdrops, h->ndrops, sizeof *h->drops)) break;
    snprintf(h->drops[h->ndrops++], HINT_HOST_MAX, "%s", a->target);
    break;
  }
}

/* Note 3. */
static void drain(handoff *h) {
  if (h->draining) return;
  h->draining = 1;
  for (;;) {
    hints_action a;
    while (hints_next(h->m, &a)) act(h, &a);
    if (h->nfailed) {
      char host[HINT_HOST_MAX];
      memcpy(host, h->failed[--h->nfailed], sizeof host);
      hints_on_send_failed(h->m, host, now_ms());
    } else if (h->nlfailed) {
      hints_on_load_failed(h->m, h->lfailed[--h->nlfailed], now_ms());
    } else if (h->ndfailed) {
      hints_on_deleted(h->m, h->dfailed[--h->ndfailed], CELLAR_ENOMEM, now_ms());
    } else {
      break;
    }
  }
  h->draining = 0;
  snapshot(h);
  kick_writer(h);
}

/* ---------------------------------------------------------------- tick */

static void on_tick(uv_timer_t *t) {
  handoff *h = t->data;
  if (h->stopping) return;
  if (h->refused) {           /* note 7 */
    wjob *j = h->refused;
    h->refused = NULL;
    write_done(&j->work, 0);
  }
  uint64_t now = now_ms();
  size_t n = hints_target_count(h->m);
  char (*gone)[HINT_HOST_MAX] = calloc(n + 1, sizeof *gone);
  size_t ngone = 0;
  for (size_t i = 0; i < n; i++) {
    hints_target_stats s;
    if (hints_target_at(h->m, i, &s)) continue;
    cluster_member_info mi;
    cluster_member(h->cl, s.target, &mi);
    if (mi.state == CLUSTER_MEMBER_GONE) {
      if (gone) memcpy(gone[ngone++], s.target, HINT_HOST_MAX);
      continue;
    }
    if (mi.state == CLUSTER_MEMBER_UP) set_addr(h, s.target, mi.peer_addr);
    /* a peer whose connection just failed waits until it answers again */
    int up = mi.state == CLUSTER_MEMBER_UP && mi.peer_addr[0] &&
             !cluster_peer_failing(h->cl, mi.peer_addr);
    hints_set_alive(h->m, s.target, up, now);
    drain(h);
  }
  for (size_t i = 0; i < ngone; i++) {
    hints_drop(h->m, gone[i]);
    drain(h);
  }
  free(gone);
  hints_tick(h->m, now);
  drain(h);
}

void handoff_on_member(void *arg, const char *host_id, int up) {
  handoff *h = arg;
  (void)host_id;
  /* note 5: under the cluster's lock; only bring the tick forward */
  if (h && up && h->timer_init && !h->stopping)
    uv_timer_start(&h->timer, on_tick, 0, TICK_MS);
}

/* ----------------------------------------------------------- recovery */

typedef struct recover {
  handoff *h;
  uint64_t n;
} recover;

static int recover_one(void *arg, cbytes k, cbytes v) {
  recover *r = arg;
  char host[HINT_HOST_MAX];
  uint64_t created, seq;
  if (hint_key_decode(k.p, k.n, host, &created, &seq) != 0) return 0;  /* replay drops it */
  if (created >= r->h->min_created) r->h->min_created = created + 1;   /* note 8 */
  hints_on_stored(r->h->m, host, k.n + v.n, 1, 0, now_ms());
  r->n++;
  return 0;
}

/* ----------------------------------------------------------------- api */

int handoff_new(uv_loop_t *loop, const config *cfg, engine *eng, cluster *cl, handoff **out) {
  *out = NULL;
  handoff *h = calloc(1, sizeof *h);
  if (h == NULL) return CELLAR_ENOMEM;
  h->loop = loop;
  h->cfg = cfg;
  h->eng = eng;
  h->cl = cl;
  h->salt = clock_random64() | (1ull << 62);
  h->seq = (clock_random64() & 0xffffffffull) << 24;
  pthread_mutex_init(&h->mu, NULL);
  hints_config hc;
  hints_config_init(&hc);
  hc.throttle_bytes_per_s = cfg->hint_throttle_kib * 1024;
  hc.max_bytes_per_target = cfg->max_hints_bytes;
  hc.window_ms = cfg->max_hint_window_ms;
  hc.send_timeout_ms = (uint64_t)cfg->write_timeout_ms * 5;
  int rc = hints_new(&hc, &h->m);
  if (rc) {
    handoff_free(h);
    return rc;
  }
  /* counts of what a previous run left (blocking: before the loop) */
  recover r = {h, 0};
  rc = storage_hints_scan(eng->st, NULL, 0, NULL, 0, recover_one, &r);
  if (rc) {
    handoff_free(h);
    return rc;
  }
  while (hints_next(h->m, &(hints_action){0})) {
  }
  if (r.n) log_info("handoff: %" PRIu64 " hints on disk from before the restart", r.n);
  snapshot(h);
  *out = h;
  return 0;
}

int handoff_start(handoff *h) {
  int rc = uv_timer_init(h->loop, &h->timer);
  if (rc) return CELLAR_EINTERNAL;
  h->timer.data = h;
  h->timer_init = 1;
  uv_timer_start(&h->timer, on_tick, TICK_MS, TICK_MS);
  return 0;
}

void handoff_stop(handoff *h) {
  if (h == NULL) return;
  h->stopping = 1;
  if (h->timer_init) uv_timer_stop(&h->timer);
}

void handoff_free(handoff *h) {
  if (h == NULL) return;
  hints_free(h->m);
  if (h->refused) {           /* stopped before the tick finished it */
    wjob *j = h->refused;
    for (size_t i = 0; i < j->nputs; i++) free(j->puts[i].kv);
    for (size_t i = 0; i < j->ndels; i++) free(j->dels[i].blk);
    free(j->puts);
    free(j->dels);
    free(j->drops);
    free(j);
  }
  for (size_t i = 0; i < h->nputs; i++) free(h->puts[i].kv);
  for (size_t i = 0; i < h->ndels; i++) free(h->dels[i].blk);
  free(h->puts);
  free(h->dels);
  free(h->drops);
  free(h->failed);
  free(h->lfailed);
  free(h->dfailed);
  free(h->addrs);
  free(h->snap);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

int handoff_store(handoff *h, const char *target, const storage_entry *e, size_t n,
                  uint32_t gc_grace_s, void (*done)(void *, int), void *arg) {
  if (!h->cfg->hints_enabled || !strcmp(target, cluster_host_id(h->cl))) return CELLAR_EINVAL;
  if (h->stopping) return CELLAR_ESHUTDOWN;
  cluster_member_info mi;
  cluster_member(h->cl, target, &mi);
  if (mi.state == CLUSTER_MEMBER_GONE) return CELLAR_EINVAL;
  uint64_t down_ms = 0;
  if (mi.state == CLUSTER_MEMBER_DOWN) down_ms = (clock_mono_ns() - mi.down_since_ns) / 1000000ull;
  uint64_t created = wall_ms();
  if (created < h->min_created) created = h->min_created;   /* note 8 */
  h->min_created = created;
  uint8_t key[HINT_KEY_MAX];
  size_t nk = hint_key_encode(target, created, h->seq++, key);
  if (nk == 0) return CELLAR_EINVAL;
  if (gc_grace_s == 0) {
    /* a hint could never be replayed safely: tombstones of this table go
    ** at once */
    metrics_add(METRIC_HINTS_EXPIRED, 1);
    return CELLAR_EUNAVAILABLE;
  }
  size_t nv = 0;
  uint8_t *v = hint_value_encode(created + (uint64_t)gc_grace_s * 1000, e, n, &nv);
  uint8_t *kv = v ? malloc(nk + nv) : NULL;
  /* memory first: once admitted, nothing may fail (note 3: releasing the
  ** reservation would be an event of the machine, maybe mid-drain) */
  if (kv == NULL || grow((void **)&h->puts, &h->capputs, h->nputs, sizeof *h->puts)) {
    free(kv);
    free(v);
    return CELLAR_ENOMEM;
  }
  memcpy(kv, key, nk);
  memcpy(kv + nk, v, nv);
  free(v);
  int adm = hints_admit(h->m, target, nk + nv, down_ms);
  if (adm != HINT_ADMIT_OK) {
    free(kv);
    metrics_add(adm == HINT_ADMIT_WINDOW ? METRIC_HINTS_EXPIRED : METRIC_HINTS_REFUSED, 1);
    return adm == HINT_ADMIT_WINDOW ? CELLAR_EUNAVAILABLE : CELLAR_ETOOBIG;
  }
  wput *p = &h->puts[h->nputs++];
  memset(p, 0, sizeof *p);
  snprintf(p->target, sizeof p->target, "%s", target);
  p->kv = kv;
  p->nk = nk;
  p->nv = nv;
  p->done = done;
  p->arg = arg;
  kick_writer(h);
  return 0;
}

int handoff_on_ack(handoff *h, uint64_t id, const char *host_id, int code) {
  (void)host_id;
  if (h == NULL || h->draining) return 0;
  int mine = hints_on_ack(h->m, id ^ h->salt, code, now_ms());
  drain(h);
  return mine;
}

void handoff_on_peer_failed(handoff *h, const char *addr) {
  if (h == NULL) return;
  for (size_t i = 0; i < h->naddrs; i++) {
    if (strcmp(h->addrs[i].addr, addr)) continue;
    if (h->draining) {
      defer_failure(h, h->addrs[i].host);
    } else {
      hints_on_send_failed(h->m, h->addrs[i].host, now_ms());
      drain(h);
    }
  }
}

/* --------------------------------------------------------------- views */

static int first_key(void *arg, cbytes k, cbytes v) {
  uint64_t *created = arg;
  char host[HINT_HOST_MAX];
  uint64_t seq;
  (void)v;
  if (hint_key_decode(k.p, k.n, host, created, &seq) != 0) *created = 0;
  return 1;
}

static hints_target_stats *copy_snap(handoff *h, size_t *n) {
  pthread_mutex_lock(&h->mu);
  hints_target_stats *s = calloc(h->nsnap + 1, sizeof *s);
  *n = 0;
  if (s && h->nsnap) {
    memcpy(s, h->snap, h->nsnap * sizeof *s);
    *n = h->nsnap;
  }
  pthread_mutex_unlock(&h->mu);
  return s;
}

int handoff_view(handoff *h, result *res) {
  size_t n = 0;
  hints_target_stats *s = copy_snap(h, &n);
  if (s == NULL) return result_error(res, CELLAR_ENOMEM, "out of memory");
  uint64_t total = 0, targets = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i].count || s[i].inflight) {
      total += s[i].count;
      targets++;
    }
  int rc = result_add_info(res, "hints.total", "%" PRIu64, total);
  if (rc == 0) rc = result_add_info(res, "hints.targets", "%" PRIu64, targets);
  if (rc == 0)
    rc = result_add_info(res, "hints.throttle_kib", "%" PRIu64, h->cfg->hint_throttle_kib);
  uint64_t wall = wall_ms();
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (s[i].count == 0 && s[i].inflight == 0) continue;
    uint8_t p[HINT_KEY_MAX];
    size_t np = hint_key_prefix(s[i].target, p);
    uint64_t oldest = 0;
    if (np)   /* note 8: after the floor, past the tombstones */
      storage_hints_scan(h->eng->st, p, np, s[i].nfloor ? s[i].floor : NULL, s[i].nfloor,
                         first_key, &oldest);
    char key[64];
    snprintf(key, sizeof key, "hints.%s", s[i].target);
    rc = result_add_info(res, key, "%" PRIu64 " %" PRIu64 " %" PRId64 " %s %" PRIu64 " %" PRIu64
                         " %" PRIu64,
                         s[i].count, s[i].bytes,
                         oldest && oldest <= wall ? (int64_t)((wall - oldest) / 1000) : -1,
                         hints_state_name(s[i].state), s[i].replayed, s[i].expired,
                         s[i].failures);
  }
  free(s);
  return rc ? result_error(res, rc, "out of memory") : 0;
}

uint64_t handoff_pending(handoff *h, const char *host_id) {
  if (h == NULL) return 0;
  uint64_t c = 0;
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < h->nsnap; i++)
    if (!strcmp(h->snap[i].target, host_id)) c = h->snap[i].count;
  pthread_mutex_unlock(&h->mu);
  return c;
}
