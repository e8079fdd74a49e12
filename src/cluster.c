/*
** cluster: gossip on the loop, the join lifecycle, the ring, schema
** agreement. See cluster.h for the lifecycle diagram.
**
** Design notes
**
**  1. c->mu guards the gossip state, the ring and the lifecycle state. The
**     loop thread holds it whenever it calls into the gossip (which may
**     call back into send/event below, still under the mutex); worker
**     threads hold it to read a view. It is never held across I/O that
**     can block: peer_send only queues.
**  2. The ring is rebuilt lazily from the gossip view (members whose
**     status is normal or leaving, with their TOKENS) when a gossip event
**     marked it dirty.
**  3. Schema agreement: GK_SCHEMA carries each node's schema version. When
**     a live peer shows another version, this node asks it for its records
**     (SCHEMA_PULL, at most once per peer every few seconds) and merges
**     what comes back (SCHEMA_PUSH) on a worker thread: newest record wins
**     per name (schema_merge_record), so both sides converge whatever the
**     order. A local schema change is pushed to every live peer at once.
*/
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "cluster.h"
#include "frame.h"
#include "gossip.h"
#include "log.h"
#include "peer.h"
#include "ring.h"
#include "token.h"
#include "wire_peer.h"

#define WAIT_TICKS 3            /* rounds of gossip before choosing tokens */
#define WAIT_TICKS_MAX 30       /* no live peer by then: give up */
#define JOINING_TICKS 2
#define PULL_EVERY_NS (3ull * 1000000000ull)
#define LOAD_EVERY_TICKS 10

enum cl_state { CL_WAIT, CL_SAVING, CL_JOINING, CL_STREAMING, CL_NORMAL, CL_STOPPED };
static const char *const state_names[] = {"waiting", "saving", "joining", "streaming",
                                          "normal", "stopped"};

typedef struct pull_mark {
  char host_id[40];
  uint64_t at_ns;
} pull_mark;

/* One STREAM_ORDER of a decommission or removenode: the ranges a node
** gains, to pull from their sources. */
typedef struct order {
  char host_id[40];
  char addr[80];               /* the gaining node's peer address */
  uint64_t id;
  cluster_range *r;
  size_t n, cap;
  int done, code;
  uint64_t entries;
} order;

enum { OP_DECOMMISSION = 1, OP_REMOVENODE = 2 };

typedef struct op {
  int kind;
  int sent;                    /* orders sent */
  int sent_tick;               /* when they were last sent */
  int ticks;                   /* since the op started */
  order *o;
  size_t n;
  char host[40];               /* removenode: the dead member */
  uint64_t host_gen;
  size_t nranges;
  uint64_t entries;
  int finished, rc;
  int reported;                /* its end was fetched (cluster_op_status) */
  char msg[256];
} op;

typedef struct left_mark {
  char host_id[40];
  uint64_t generation;
  uint64_t since_ns;
} left_mark;

struct cluster {
  uv_loop_t *loop;
  const config *cfg;
  storage *st;
  schema *sc;
  char host_id[40];
  uint64_t generation;
  char peer_addr[80], client_addr[80];
  void (*fatal)(void *, const char *);
  void *fatal_arg;

  pthread_mutex_t mu;
  gossip *g;
  ring ring;
  ring ring_all;               /* the ring to be: plus joining members,
                                  without leaving ones (pending replicas) */
  int ring_dirty;
  enum cl_state state;
  int ticks;
  int64_t *tokens;
  size_t ntokens;
  pull_mark *pulls;
  size_t npulls;
  uint64_t load;
  uint64_t schema_version;

  peer *pr;
  cluster_frame_fn other_fn;   /* replication frames */
  void *other_arg;
  void (*fail_fn[CL_MAX_FAIL_FNS])(void *, const char *);   /* fanned out */
  void *fail_arg[CL_MAX_FAIL_FNS];
  size_t nfail;
  cluster_bootstrap_fn boot_fn;
  void *boot_arg;
  cluster_range *plan;         /* to hand to boot_fn once c->mu is released */
  size_t nplan;
  int plan_ready;
  uv_timer_t timer;
  uv_async_t schema_async;
  int handles_open;
  int is_seed;                 /* this node's peer address is a seed */
  void (*stop_done)(void *);
  void *stop_arg;
  void (*left)(void *);        /* decommissioned: the node must exit */
  int ring_changing;           /* a member joins or leaves: pending replicas */
  op *op;                      /* the decommission or removenode running */
  int has_left;                /* announced "left" */
  uint64_t next_order_id;
  int left_ticks;              /* "left" announced: exit once <= 0 and the
                                  result was fetched, or much later */
  left_mark *lefts;            /* members seen "left", forgotten later */
  size_t nlefts;
  void (*member_fn)(void *, const char *, int);   /* up/down, for hints */
  void *member_arg;
  left_mark *downs;            /* members marked down, since when */
  size_t ndowns;
  char up_unaddressed[40];     /* marked up before its address was known */
  uint64_t started_ns;
  int ring_learned;            /* data requests may be served (see
                                  do_check_ring_learned) */
};

static uint64_t now_ns(void) { return clock_mono_ns(); }

/* ----------------------------------------------------------- tokens */

static char *tokens_to_string(const int64_t *t, size_t n) {
  size_t cap = n * 21 + 1, used = 0;
  char *s = malloc(cap);
  if (s == NULL) return NULL;
  s[0] = '\0';
  for (size_t i = 0; i < n; i++)
    used += (size_t)snprintf(s + used, cap - used, "%s%" PRId64, i ? "," : "", t[i]);
  return s;
}

/* Parses "t1,t2,..." into a malloc'd array. 0 or -1. */
static int tokens_parse(const char *s, int64_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (s == NULL || *s == '\0') return -1;
  size_t cap = 1;
  for (const char *p = s; *p; p++) cap += *p == ',';
  int64_t *t = malloc(cap * sizeof *t);
  if (t == NULL) return -1;
  size_t k = 0;
  const char *p = s;
  while (*p && k < cap) {
    char *end;
    t[k++] = strtoll(p, &end, 10);
    if (end == p || (*end && *end != ',')) {
      free(t);
      return -1;
    }
    p = *end ? end + 1 : end;
  }
  *out = t;
  *n = k;
  return 0;
}

static int read_value(void *arg, const uint8_t *k, size_t nk, const uint8_t *v, size_t nv) {
  char **out = arg;
  if (nk != 11 || memcmp(k, "node/tokens", 11)) return 0;
  *out = strndup((const char *)v, nv);
  return 0;
}

static int read_removed(void *arg, const uint8_t *k, size_t nk, const uint8_t *v, size_t nv) {
  char **out = arg;
  if (nk != 12 || memcmp(k, "node/removed", 12)) return 0;
  *out = strndup((const char *)v, nv);
  return 0;
}

/* ------------------------------------------------------------- gossip io */

static void io_send(void *arg, const char *to, const gossip_msg *m) {
  cluster *c = arg;
  size_t len;
  uint8_t *p = wire_gossip_encode(m, c->peer_addr, &len);
  if (p == NULL) return;
  peer_send(c->pr, to, FRAME_GOSSIP, 0, p, len);
  free(p);
}

/* host was marked up: a connection failure to it from while it was down
** must not keep the proxy counting it down (peer_failing) until this node
** happens to connect to it (it may have been heard of through a third
** node). A restarted node is marked up on its new generation before the
** states of that delta are copied in: with no address yet, the mark is
** cleared on the CHANGE event that follows. */
static void heard_back(cluster *c, const char *host) {
  const gossip_endpoint *e = gossip_find(c->g, host);
  const char *addr = e && e->alive ? e->states[GK_PEER_ADDR].value : NULL;
  if (e && e->alive && addr == NULL) {
    snprintf(c->up_unaddressed, sizeof c->up_unaddressed, "%s", host);
    return;
  }
  c->up_unaddressed[0] = '\0';
  if (c->pr && addr) peer_clear_failing(c->pr, addr);
}

static void io_event(void *arg, const char *host, int ev) {
  cluster *c = arg;
  c->ring_dirty = 1;
  if (ev == GOSSIP_EV_UP || ev == GOSSIP_EV_DOWN) {
    /* "down since", for the hint window (a list: few members are down) */
    size_t k = 0;
    while (k < c->ndowns && strcmp(c->downs[k].host_id, host)) k++;
    if (ev == GOSSIP_EV_UP && k < c->ndowns) c->downs[k] = c->downs[--c->ndowns];
    if (ev == GOSSIP_EV_DOWN && k == c->ndowns) {
      left_mark *d = realloc(c->downs, (c->ndowns + 1) * sizeof *d);
      if (d) {
        c->downs = d;
        memset(&d[k], 0, sizeof d[k]);
        snprintf(d[k].host_id, sizeof d[k].host_id, "%s", host);
        d[k].since_ns = now_ns();
        c->ndowns++;
      }
    }
    if (c->member_fn) c->member_fn(c->member_arg, host, ev == GOSSIP_EV_UP);
  }
  if (ev == GOSSIP_EV_UP) {
    log_info("cluster: %s is UP", host);
    heard_back(c, host);
  }
  else if (ev == GOSSIP_EV_CHANGE && !strcmp(c->up_unaddressed, host)) heard_back(c, host);
  else if (ev == GOSSIP_EV_DOWN) {
    log_info("cluster: %s is DOWN", host);
    /* a connection to it may sit in TCP backoff: start afresh next time */
    const gossip_endpoint *e = gossip_find(c->g, host);
    if (c->pr && e && e->states[GK_PEER_ADDR].value) peer_reset(c->pr, e->states[GK_PEER_ADDR].value);
  }
  else if (ev == GOSSIP_EV_JOIN) log_info("cluster: learned of %s", host);
  else if (ev == GOSSIP_EV_RESTART) log_info("cluster: %s restarted", host);
}

static uint64_t io_wall(void *arg) {
  (void)arg;
  return clock_now_s();
}

/* ------------------------------------------------------------- the ring */

/* A node that shut down keeps its tokens: it is down, not gone. */
static int in_ring_status(const char *s) {
  return s && (!strcmp(s, "normal") || !strcmp(s, "leaving") || !strcmp(s, "shutdown"));
}

/* Caller holds c->mu. */
static void do_rebuild_ring(cluster *c) {
  if (!c->ring_dirty) return;
  ring_free(&c->ring);
  ring_init(&c->ring);
  ring_free(&c->ring_all);
  ring_init(&c->ring_all);
  c->ring_changing = 0;
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    const char *st = e->states[GK_STATUS].value;
    int joining = st && !strcmp(st, "joining");
    int leaving = st && !strcmp(st, "leaving");
    if (!in_ring_status(st) && !joining) continue;
    if (joining || leaving) c->ring_changing = 1;
    int64_t *t;
    size_t n;
    if (tokens_parse(e->states[GK_TOKENS].value, &t, &n) != 0) continue;
    const char *dc = e->states[GK_DC].value ? e->states[GK_DC].value : "?";
    const char *rack = e->states[GK_RACK].value ? e->states[GK_RACK].value : "?";
    int rc = joining ? 0 : ring_add(&c->ring, e->host_id, dc, rack, t, n);
    if (rc < 0) log_warn("cluster: %s not placed on the ring: %s", e->host_id, cellar_strerror(rc));
    if (!leaving) ring_add(&c->ring_all, e->host_id, dc, rack, t, n);
    free(t);
  }
  c->ring_dirty = 0;
}

/* ----------------------------------------------------- schema agreement */

typedef struct schema_job {
  uv_work_t work;
  cluster *c;
  int kind;                    /* 0 export (answer a pull / push), 1 merge */
  char to[80];                 /* export: where to send; "" = every live peer */
  uint8_t *payload;            /* merge: the SCHEMA_PUSH payload (owned) */
  size_t len;
  uint8_t *out;                /* export: the encoded SCHEMA_PUSH */
  size_t outlen;
  int changed;
} schema_job;

typedef struct rec_list {
  wire_record *r;
  size_t n, cap;
} rec_list;

static int collect(void *arg, const uint8_t *k, size_t nk, const uint8_t *v, size_t nv) {
  rec_list *l = arg;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    wire_record *r = realloc(l->r, cap * sizeof *r);
    if (r == NULL) return CELLAR_ENOMEM;
    l->r = r;
    l->cap = cap;
  }
  uint8_t *kk = malloc(nk + nv + 1);
  if (kk == NULL) return CELLAR_ENOMEM;
  memcpy(kk, k, nk);
  memcpy(kk + nk, v, nv);
  l->r[l->n++] = (wire_record){kk, nk, kk + nk, nv};
  return 0;
}

static void schema_work(uv_work_t *w) {
  schema_job *j = w->data;
  cluster *c = j->c;
  if (j->kind == 0) {
    rec_list l = {0};
    if (schema_export(c->sc, collect, &l) == 0)
      j->out = wire_schema_encode(c->cfg->cluster_name, c->peer_addr, l.r, l.n, &j->outlen);
    for (size_t i = 0; i < l.n; i++) free((void *)l.r[i].k);
    free(l.r);
    return;
  }
  wire_schema s;
  if (wire_schema_decode(j->payload, j->len, &s) != 0) {
    log_warn("cluster: malformed schema push ignored");
    return;
  }
  if (strcmp(s.cluster, c->cfg->cluster_name) == 0) {
    for (size_t i = 0; i < s.n; i++) {
      int ch = 0;
      if (schema_merge_record(c->sc, s.recs[i].k, s.recs[i].nk, s.recs[i].v, s.recs[i].nv, &ch) == 0)
        j->changed |= ch;
    }
  }
  wire_schema_free(&s);
}

static void announce_schema(cluster *c);

static void schema_done(uv_work_t *w, int status) {
  schema_job *j = w->data;
  cluster *c = j->c;
  (void)status;
  if (j->kind == 0 && j->out && c->state != CL_STOPPED) {
    if (j->to[0]) {
      peer_send(c->pr, j->to, FRAME_SCHEMA_PUSH, 0, j->out, j->outlen);
    } else {
      pthread_mutex_lock(&c->mu);
      for (size_t i = 0; i < gossip_count(c->g); i++) {
        const gossip_endpoint *e = gossip_at(c->g, i);
        if (!e->is_self && e->alive && e->states[GK_PEER_ADDR].value)
          peer_send(c->pr, e->states[GK_PEER_ADDR].value, FRAME_SCHEMA_PUSH, 0, j->out, j->outlen);
      }
      pthread_mutex_unlock(&c->mu);
    }
  }
  if (j->kind == 1 && j->changed && c->state != CL_STOPPED) announce_schema(c);
  free(j->payload);
  free(j->out);
  free(j);
}

static void schema_job_start(cluster *c, int kind, const char *to, const uint8_t *p, size_t n) {
  schema_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->c = c;
  j->kind = kind;
  j->work.data = j;
  if (to) snprintf(j->to, sizeof j->to, "%s", to);
  if (p) {
    j->payload = malloc(n ? n : 1);
    if (j->payload == NULL) {
      free(j);
      return;
    }
    memcpy(j->payload, p, n);
    j->len = n;
  }
  if (uv_queue_work(c->loop, &j->work, schema_work, schema_done) != 0) {
    free(j->payload);
    free(j);
  }
}

/* Sets GK_SCHEMA to the current version (loop thread). */
static void announce_schema(cluster *c) {
  uint64_t v = schema_version(c->sc);
  char hex[24];
  snprintf(hex, sizeof hex, "%016" PRIx64, v);
  pthread_mutex_lock(&c->mu);
  c->schema_version = v;
  gossip_set_local(c->g, GK_SCHEMA, hex);
  pthread_mutex_unlock(&c->mu);
}

static void on_schema_async(uv_async_t *a) {
  cluster *c = a->data;
  if (c->state == CL_STOPPED) return;
  announce_schema(c);
  schema_job_start(c, 0, NULL, NULL, 0);   /* push to every live peer */
}

void cluster_schema_changed(cluster *c) {
  if (c) uv_async_send(&c->schema_async);
}

/* Caller holds c->mu: ask peers whose schema differs for theirs. */
static void do_pull_mismatched(cluster *c) {
  char mine[24];
  snprintf(mine, sizeof mine, "%016" PRIx64, c->schema_version);
  uint64_t now = now_ns();
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    const char *theirs = e->states[GK_SCHEMA].value;
    const char *addr = e->states[GK_PEER_ADDR].value;
    if (e->is_self || !e->alive || !theirs || !addr || !strcmp(theirs, mine)) continue;
    pull_mark *pm = NULL;
    for (size_t k = 0; k < c->npulls; k++)
      if (!strcmp(c->pulls[k].host_id, e->host_id)) pm = &c->pulls[k];
    if (pm == NULL) {
      pull_mark *np = realloc(c->pulls, (c->npulls + 1) * sizeof *np);
      if (np == NULL) continue;
      c->pulls = np;
      pm = &c->pulls[c->npulls++];
      snprintf(pm->host_id, sizeof pm->host_id, "%s", e->host_id);
      pm->at_ns = 0;
    }
    if (pm->at_ns && now - pm->at_ns < PULL_EVERY_NS) continue;
    pm->at_ns = now;
    size_t len;
    uint8_t *p = wire_schema_encode(c->cfg->cluster_name, c->peer_addr, NULL, 0, &len);
    if (p) {
      peer_send(c->pr, addr, FRAME_SCHEMA_PULL, 0, p, len);
      free(p);
    }
  }
}

/* --------------------------------------------------------- peer frames */

static void on_order_done(cluster *c, const uint8_t *payload, size_t len);

static void on_peer_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  cluster *c = arg;
  if (c->state == CL_STOPPED) return;
  if (h->type == FRAME_GOSSIP) {
    wire_gossip wg;
    if (wire_gossip_decode(payload, h->length, &wg) != 0) {
      log_warn("cluster: malformed gossip message ignored");
      return;
    }
    pthread_mutex_lock(&c->mu);
    gossip_receive(c->g, wg.from, &wg.m, now_ns());
    pthread_mutex_unlock(&c->mu);
    wire_gossip_free(&wg);
  } else if (h->type == FRAME_SCHEMA_PULL) {
    wire_schema s;
    if (wire_schema_decode(payload, h->length, &s) != 0) return;
    if (!strcmp(s.cluster, c->cfg->cluster_name) && s.from[0])
      schema_job_start(c, 0, s.from, NULL, 0);
    wire_schema_free(&s);
  } else if (h->type == FRAME_SCHEMA_PUSH) {
    schema_job_start(c, 1, NULL, payload, h->length);
  } else if (h->type == FRAME_STREAM_ORDER_DONE) {
    on_order_done(c, payload, h->length);
    /* repair's orders too (ids never collide: repair's have the top bit) */
    if (c->other_fn) c->other_fn(c->other_arg, h, payload);
  } else if (c->other_fn) {
    c->other_fn(c->other_arg, h, payload);
  } else {
    log_warn("cluster: unknown peer frame type %u ignored", h->type);
  }
}

/* ------------------------------------------------------------ lifecycle */

typedef struct load_job {
  uv_work_t work;
  cluster *c;
  uint64_t bytes;
} load_job;

static void load_work(uv_work_t *w) {
  load_job *j = w->data;
  result r;
  result_init(&r);
  if (storage_info(j->c->st, &r) == 0)
    for (size_t i = 0; i < r.ninfo; i++)
      if (!strcmp(r.info[i].key, "storage.sst_bytes") ||
          !strcmp(r.info[i].key, "storage.memtable_bytes"))
        j->bytes += strtoull(r.info[i].value, NULL, 10);
  result_free(&r);
}

static void load_done(uv_work_t *w, int status) {
  load_job *j = w->data;
  cluster *c = j->c;
  (void)status;
  if (c->state != CL_STOPPED) {
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, j->bytes);
    pthread_mutex_lock(&c->mu);
    c->load = j->bytes;
    gossip_set_local(c->g, GK_LOAD, buf);
    pthread_mutex_unlock(&c->mu);
  }
  free(j);
}

/* Saves the tokens (blocking: before the loop runs, or on a worker). */
static int save_tokens(cluster *c) {
  char *s = tokens_to_string(c->tokens, c->ntokens);
  if (s == NULL) return CELLAR_ENOMEM;
  int rc = storage_system_put(c->st, "node/tokens", 11, s, strlen(s));
  free(s);
  return rc;
}

static void announce_tokens(cluster *c) {
  char *s = tokens_to_string(c->tokens, c->ntokens);
  if (s) gossip_set_local(c->g, GK_TOKENS, s);
  free(s);
}

typedef struct save_job {
  uv_work_t work;
  cluster *c;
  int rc;
} save_job;

static void save_work(uv_work_t *w) {
  save_job *j = w->data;
  j->rc = save_tokens(j->c);
}

/* Loop: the tokens are on disk; announce them and start joining. */
static void save_done(uv_work_t *w, int status) {
  save_job *j = w->data;
  cluster *c = j->c;
  (void)status;
  pthread_mutex_lock(&c->mu);
  if (c->state == CL_SAVING) {
    if (j->rc != 0) {
      log_error("cluster: cannot save my tokens (%s); trying again", cellar_strerror(j->rc));
      c->state = CL_WAIT;
      free(c->tokens);
      c->tokens = NULL;
      c->ntokens = 0;
    } else {
      announce_tokens(c);
      gossip_set_local(c->g, GK_STATUS, "joining");
      c->state = CL_JOINING;
      c->ticks = 0;
      log_info("cluster: joining with %zu tokens (ring of %zu members)", c->ntokens,
               c->ring.nmembers);
    }
  }
  pthread_mutex_unlock(&c->mu);
  free(j);
}

/* Caller holds c->mu. Every live member in the ring has our schema. */
static int do_schema_agrees(cluster *c) {
  char mine[24];
  snprintf(mine, sizeof mine, "%016" PRIx64, c->schema_version);
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    if (e->is_self || !e->alive || !in_ring_status(e->states[GK_STATUS].value)) continue;
    if (!e->states[GK_SCHEMA].value || strcmp(e->states[GK_SCHEMA].value, mine)) return 0;
  }
  return 1;
}

/* Caller holds c->mu. Appends one range of table id, splitting a wrap. */
static int do_add_range(cluster_range **v, size_t *n, size_t *cap, uint64_t id, int64_t prev,
                        int64_t cur, const char *src) {
  int64_t lo[2], hi[2];
  int k = 0;
  if (prev < cur) {
    lo[k] = prev + 1, hi[k++] = cur;
  } else {
    if (prev < INT64_MAX) lo[k] = prev + 1, hi[k++] = INT64_MAX;
    if (cur > INT64_MIN) lo[k] = INT64_MIN + 1, hi[k++] = cur;
  }
  for (int i = 0; i < k; i++) {
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 64;
      cluster_range *nv = realloc(*v, nc * sizeof *nv);
      if (nv == NULL) return CELLAR_ENOMEM;
      *v = nv;
      *cap = nc;
    }
    cluster_range *r = &(*v)[(*n)++];
    r->table_id = id;
    r->lo = lo[i];
    r->hi = hi[i];
    snprintf(r->source, sizeof r->source, "%s", src);
  }
  return 0;
}

/* Caller holds c->mu. The ranges this joining node gains, per table, each
** with a live current replica to fetch it from (local datacenter first). */
static int do_bootstrap_plan(cluster *c, cluster_range **out, size_t *nout) {
  *out = NULL;
  *nout = 0;
  c->ring_dirty = 1;
  do_rebuild_ring(c);
  keyspace_def *kss;
  table_def *tbs;
  size_t nks, ntb, cap = 0;
  int rc = schema_list(c->sc, NULL, &kss, &nks, &tbs, &ntb);
  if (rc) return rc;
  const ring *all = &c->ring_all;
  for (size_t t = 0; t < ntb && rc == 0; t++) {
    const keyspace_def *ks = NULL;
    for (size_t k = 0; k < nks; k++)
      if (!strcmp(kss[k].name, tbs[t].keyspace)) ks = &kss[k];
    if (ks == NULL) continue;
    for (size_t i = 0; i < all->ntokens && rc == 0; i++) {
      int64_t cur = all->tokens[i].token;
      int64_t prev = all->tokens[(i + all->ntokens - 1) % all->ntokens].token;
      uint32_t reps[CL_MAX_REPLICAS];
      size_t nr = ring_replicas(all, ks, cur, reps, CL_MAX_REPLICAS);
      int mine = 0;
      for (size_t k = 0; k < nr && !mine; k++) mine = !strcmp(all->members[reps[k]].host_id, c->host_id);
      if (!mine) continue;
      nr = ring_replicas(&c->ring, ks, cur, reps, CL_MAX_REPLICAS);
      const char *src = "";
      for (int pass = 0; pass < 2 && !*src; pass++)
        for (size_t k = 0; k < nr && !*src; k++) {
          const ring_member *m = &c->ring.members[reps[k]];
          const gossip_endpoint *e = gossip_find(c->g, m->host_id);
          if (!e || e->is_self || !e->alive || !e->states[GK_PEER_ADDR].value) continue;
          if (pass == 0 && strcmp(m->dc, c->cfg->dc)) continue;
          src = e->states[GK_PEER_ADDR].value;
        }
      if (!*src) log_warn("cluster: no live replica to fetch a range of %s.%s from",
                          tbs[t].keyspace, tbs[t].name);
      rc = do_add_range(out, nout, &cap, tbs[t].id, prev, cur, src);
    }
  }
  free(kss);
  free(tbs);
  return rc;
}

void cluster_set_bootstrap(cluster *c, cluster_bootstrap_fn fn, void *arg) {
  c->boot_fn = fn;
  c->boot_arg = arg;
}

void cluster_bootstrap_done(cluster *c, int rc) {
  pthread_mutex_lock(&c->mu);
  if (c->state == CL_STREAMING) {
    if (rc == 0) {
      gossip_set_local(c->g, GK_STATUS, "normal");
      c->state = CL_NORMAL;
      c->ring_dirty = 1;
      log_info("cluster: normal, owning %zu tokens", c->ntokens);
    } else {
      log_warn("cluster: bootstrap streaming failed (%s); trying again", cellar_strerror(rc));
      c->state = CL_JOINING;
      c->ticks = 0;
    }
  }
  pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------- decommission, removenode */

#define OP_SPREAD_TICKS 10      /* "leaving" spreads before streaming starts */
#define OP_RESEND_TICKS 60      /* orders not answered by then are sent again */
#define OP_TIMEOUT_TICKS 3600   /* the whole operation gives up after this */
#define LEFT_EXIT_TICKS 5       /* "left" spreads before the node exits */
#define LEFT_FORGET_NS (300ull * 1000000000ull)
#define LEFT_EXIT_MAX_TICKS 60  /* exit then even if nobody fetched the result */

/* Caller holds c->mu. The ring of the members in the ring now (normal,
** leaving, shutdown), without host (NULL: all of them). */
static void do_build_ring(cluster *c, ring *out, const char *host) {
  ring_init(out);
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    if (!in_ring_status(e->states[GK_STATUS].value)) continue;
    if (host && !strcmp(e->host_id, host)) continue;
    int64_t *t;
    size_t n;
    if (tokens_parse(e->states[GK_TOKENS].value, &t, &n) != 0) continue;
    ring_add(out, e->host_id, e->states[GK_DC].value ? e->states[GK_DC].value : "?",
             e->states[GK_RACK].value ? e->states[GK_RACK].value : "?", t, n);
    free(t);
  }
}

static void op_free(op *o) {
  if (o == NULL) return;
  for (size_t i = 0; i < o->n; i++) free(o->o[i].r);
  free(o->o);
  free(o);
}

/* Caller holds c->mu. The order for the gaining member m, made if new. */
static order *do_order_for(cluster *c, op *o, const ring_member *m, result *res, int *rc) {
  for (size_t i = 0; i < o->n; i++)
    if (!strcmp(o->o[i].host_id, m->host_id)) return &o->o[i];
  const gossip_endpoint *e = gossip_find(c->g, m->host_id);
  if (e == NULL || !(e->is_self || e->alive) || e->states[GK_PEER_ADDR].value == NULL) {
    *rc = result_error(res, CELLAR_EUNAVAILABLE, "node %s, which would take over ranges, "
                       "is down", m->host_id);
    return NULL;
  }
  order *no = realloc(o->o, (o->n + 1) * sizeof *no);
  if (no == NULL) {
    *rc = result_error(res, CELLAR_ENOMEM, "out of memory");
    return NULL;
  }
  o->o = no;
  order *r = &o->o[o->n++];
  memset(r, 0, sizeof *r);
  snprintf(r->host_id, sizeof r->host_id, "%s", m->host_id);
  snprintf(r->addr, sizeof r->addr, "%s", e->states[GK_PEER_ADDR].value);
  r->id = ++c->next_order_id;
  return r;
}

/*
** Caller holds c->mu. The plan of an op: for every table and every range
** of the ring now that gone (this node, or the dead member) replicates,
** the members that replicate it once gone is out of the ring and do not
** now, each with a source: this node (decommission) or a live replica
** other than gone (removenode; local datacenter of the gainer first).
*/
static int do_op_plan(cluster *c, op *o, const char *gone, result *res) {
  c->ring_dirty = 1;
  do_rebuild_ring(c);
  ring now, fut;
  do_build_ring(c, &now, NULL);
  do_build_ring(c, &fut, gone);
  keyspace_def *kss = NULL;
  table_def *tbs = NULL;
  size_t nks, ntb;
  int rc = schema_list(c->sc, NULL, &kss, &nks, &tbs, &ntb);
  if (rc) {
    rc = result_error(res, rc, "cannot list the schema: %s", cellar_strerror(rc));
    goto out;
  }
  if (fut.nmembers == 0) {
    rc = result_error(res, CELLAR_EUNAVAILABLE, "no other member would be left in the ring");
    goto out;
  }
  for (size_t t = 0; t < ntb && rc == 0; t++) {
    const keyspace_def *ks = NULL;
    for (size_t k = 0; k < nks; k++)
      if (!strcmp(kss[k].name, tbs[t].keyspace)) ks = &kss[k];
    if (ks == NULL) continue;
    for (size_t i = 0; i < now.ntokens && rc == 0; i++) {
      int64_t cur = now.tokens[i].token;
      int64_t prev = now.tokens[(i + now.ntokens - 1) % now.ntokens].token;
      uint32_t old[CL_MAX_REPLICAS], nw[CL_MAX_REPLICAS];
      size_t nold = ring_replicas(&now, ks, cur, old, CL_MAX_REPLICAS);
      int mine = 0;
      for (size_t k = 0; k < nold && !mine; k++) mine = !strcmp(now.members[old[k]].host_id, gone);
      if (!mine) continue;
      size_t nnew = ring_replicas(&fut, ks, cur, nw, CL_MAX_REPLICAS);
      for (size_t k = 0; k < nnew && rc == 0; k++) {
        const ring_member *m = &fut.members[nw[k]];
        int had = 0;
        for (size_t q = 0; q < nold && !had; q++) had = !strcmp(now.members[old[q]].host_id, m->host_id);
        if (had) continue;
        const char *src = "";
        if (o->kind == OP_DECOMMISSION) {
          src = c->peer_addr;
        } else {
          for (int pass = 0; pass < 2 && !*src; pass++)
            for (size_t q = 0; q < nold && !*src; q++) {
              const ring_member *sm = &now.members[old[q]];
              const gossip_endpoint *e = gossip_find(c->g, sm->host_id);
              if (!strcmp(sm->host_id, gone) || e == NULL || !(e->is_self || e->alive) ||
                  !e->states[GK_PEER_ADDR].value)
                continue;
              if (pass == 0 && strcmp(sm->dc, m->dc)) continue;
              src = e->states[GK_PEER_ADDR].value;
            }
          if (!*src) {
            rc = result_error(res, CELLAR_EUNAVAILABLE, "no live replica left to copy range "
                              "(%" PRId64 ", %" PRId64 "] of %s.%s from", prev, cur,
                              tbs[t].keyspace, tbs[t].name);
            break;
          }
        }
        order *od = do_order_for(c, o, m, res, &rc);
        if (od == NULL) break;
        size_t before = od->n;
        rc = do_add_range(&od->r, &od->n, &od->cap, tbs[t].id, prev, cur, src);
        if (rc) rc = result_error(res, rc, "out of memory");
        o->nranges += od->n - before;
      }
    }
  }
out:
  free(kss);
  free(tbs);
  ring_free(&now);
  ring_free(&fut);
  return rc;
}

/* Worker: a decommissioned node's tokens are forgotten on disk (a
** restart must not put it back in its old place). */
typedef struct forget_job {
  uv_work_t work;
  cluster *c;
} forget_job;

static void forget_work(uv_work_t *w) {
  forget_job *j = w->data;
  int rc = storage_system_delete(j->c->st, "node/tokens", 11);
  if (rc) log_warn("cluster: cannot forget my tokens: %s", cellar_strerror(rc));
}

static void forget_done(uv_work_t *w, int status) {
  (void)status;
  free(w->data);
}

/* The removed-members list survives a restart of the node that removed
** them (it is gossiped from this node's own state). */
typedef struct removed_job {
  uv_work_t work;
  cluster *c;
  char *v;
} removed_job;

static void removed_work(uv_work_t *w) {
  removed_job *j = w->data;
  int rc = storage_system_put(j->c->st, "node/removed", 12, j->v, strlen(j->v));
  if (rc) log_warn("cluster: cannot save the removed members: %s", cellar_strerror(rc));
}

static void removed_done(uv_work_t *w, int status) {
  removed_job *j = w->data;
  (void)status;
  free(j->v);
  free(j);
}

/* Caller holds c->mu. Ends the op (rc 0: done) and wakes the admin call. */
static void do_op_finish(cluster *c, int rc, const char *msg) {
  op *o = c->op;
  if (o == NULL || o->finished) return;
  o->finished = 1;
  o->rc = rc;
  snprintf(o->msg, sizeof o->msg, "%s", msg ? msg : "");
  if (o->kind == OP_DECOMMISSION) {
    if (rc == 0) {
      gossip_set_local(c->g, GK_STATUS, "left");
      gossip_push_self(c->g);
      c->left_ticks = LEFT_EXIT_TICKS;
      c->has_left = 1;
      forget_job *j = calloc(1, sizeof *j);
      if (j) {
        j->c = c;
        j->work.data = j;
        if (uv_queue_work(c->loop, &j->work, forget_work, forget_done) != 0) free(j);
      }
      log_info("cluster: decommissioned (%zu ranges streamed to %zu nodes): left", o->nranges,
               o->n);
    } else if (c->state != CL_STOPPED) {
      gossip_set_local(c->g, GK_STATUS, "normal");
      log_warn("cluster: decommission failed (%s): normal again", o->msg);
    }
  } else if (rc == 0) {
    const gossip_endpoint *self = NULL;
    for (size_t i = 0; i < gossip_count(c->g) && !self; i++)
      if (gossip_at(c->g, i)->is_self) self = gossip_at(c->g, i);
    const char *old = self && self->states[GK_REMOVED].value ? self->states[GK_REMOVED].value : "";
    size_t cap = strlen(old) + 80;
    char *v = malloc(cap);
    if (v) {
      snprintf(v, cap, "%s%s%s:%" PRIu64, old, *old ? "," : "", o->host, o->host_gen);
      gossip_set_local(c->g, GK_REMOVED, v);
      removed_job *j = calloc(1, sizeof *j);
      if (j) {
        j->c = c;
        j->v = v;
        j->work.data = j;
        if (uv_queue_work(c->loop, &j->work, removed_work, removed_done) == 0) v = NULL;
        else free(j);
      }
      free(v);
    }
    gossip_remove(c->g, o->host, o->host_gen);
    gossip_push_self(c->g);
    log_info("cluster: removed %s (%zu ranges streamed to %zu nodes)", o->host, o->nranges, o->n);
  } else {
    log_warn("cluster: removenode %s failed: %s", o->host, o->msg);
  }
  c->ring_dirty = 1;
}

/* Loop: the answer to one of our STREAM_ORDERs. */
static void on_order_done(cluster *c, const uint8_t *payload, size_t len) {
  wire_order_done d;
  if (wire_order_done_decode(payload, len, &d) != 0) return;
  pthread_mutex_lock(&c->mu);
  op *o = c->op;
  for (size_t i = 0; o && !o->finished && i < o->n; i++) {
    order *od = &o->o[i];
    if (od->id != d.id || od->done) continue;
    od->done = 1;
    od->code = d.code;
    od->entries = d.entries;
    o->entries += d.entries;
    log_info("cluster: %s pulled %zu ranges (%" PRIu64 " entries): %s", od->host_id, od->n,
             d.entries, d.code ? d.message : "ok");
    if (d.code) {
      char msg[200];
      snprintf(msg, sizeof msg, "node %s could not pull its ranges: %s", od->host_id,
               d.message);
      do_op_finish(c, d.code, msg);
      break;
    }
    size_t ndone = 0;
    for (size_t k = 0; k < o->n; k++) ndone += o->o[k].done;
    if (ndone == o->n) do_op_finish(c, 0, NULL);
  }
  pthread_mutex_unlock(&c->mu);
  wire_order_done_free(&d);
}

/* A STREAM_ORDER to send once c->mu is released. */
typedef struct outmsg {
  char addr[80];
  uint8_t *p;
  size_t len;
} outmsg;

/* Caller holds c->mu. One step of the op per tick; the orders to send go
** to *out (malloc'd), sent by the caller unlocked. */
static void do_op_tick(cluster *c, outmsg **out, size_t *nout) {
  *out = NULL;
  *nout = 0;
  op *o = c->op;
  if (o == NULL || o->finished) return;
  o->ticks++;
  int resend = o->sent && o->ticks - o->sent_tick >= OP_RESEND_TICKS;
  if (o->sent && o->ticks >= OP_TIMEOUT_TICKS) {
    do_op_finish(c, CELLAR_ETIMEDOUT, "gaining nodes did not finish pulling in time");
    return;
  }
  if (!o->sent || resend) {
    if (!o->sent && o->kind == OP_DECOMMISSION && o->ticks < OP_SPREAD_TICKS) return;
    if (o->n == 0) {
      do_op_finish(c, 0, NULL);
      return;
    }
    *out = calloc(o->n, sizeof **out);
    if (*out == NULL) return;
    for (size_t i = 0; i < o->n; i++) {
      order *od = &o->o[i];
      /* a lost order or answer: send it again (pulls are idempotent merges,
      ** a duplicate answer is ignored) */
      if (od->done) continue;
      wire_range *wr = calloc(od->n ? od->n : 1, sizeof *wr);
      if (wr == NULL) continue;
      for (size_t k = 0; k < od->n; k++)
        wr[k] = (wire_range){od->r[k].table_id, od->r[k].lo, od->r[k].hi, od->r[k].source};
      wire_order w = {.id = od->id, .from = c->peer_addr, .cluster = c->cfg->cluster_name,
                      .n = od->n, .r = wr};
      outmsg *m = &(*out)[(*nout)++];
      snprintf(m->addr, sizeof m->addr, "%s", od->addr);
      m->p = wire_order_encode(&w, &m->len);
      free(wr);
      log_info("cluster: %s: %s %s to pull %zu ranges", o->kind == OP_DECOMMISSION ?
               "decommission" : "removenode", resend ? "again ordering" : "ordering",
               od->host_id, od->n);
    }
    o->sent = 1;
    o->sent_tick = o->ticks;
    return;
  }
  /* a gaining node that goes down will not answer */
  for (size_t i = 0; i < o->n; i++) {
    const gossip_endpoint *e = gossip_find(c->g, o->o[i].host_id);
    if (!o->o[i].done && (e == NULL || !(e->is_self || e->alive))) {
      char msg[200];
      snprintf(msg, sizeof msg, "node %s went down while pulling its ranges", o->o[i].host_id);
      do_op_finish(c, CELLAR_EUNAVAILABLE, msg);
      return;
    }
  }
}

/* Caller holds c->mu. Removed members (GK_REMOVED of anyone) are
** forgotten; members "left" long ago too. */
static void do_apply_removed(cluster *c) {
  char *todo = NULL;
  size_t used = 0, cap = 0;
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    const char *v = e->states[GK_REMOVED].value;
    if (v && *v) {
      size_t l = strlen(v);
      if (used + l + 2 > cap) {
        size_t nc = (used + l + 2) * 2;
        char *t = realloc(todo, nc);
        if (t == NULL) break;
        todo = t;
        cap = nc;
      }
      memcpy(todo + used, v, l);
      used += l;
      todo[used++] = ',';
      todo[used] = '\0';
    }
  }
  if (todo) {
    char *save = NULL;
    for (char *t = strtok_r(todo, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      char *colon = strrchr(t, ':');
      if (colon == NULL) continue;
      *colon = '\0';
      uint64_t gen = strtoull(colon + 1, NULL, 10);
      if (!strcmp(t, c->host_id)) continue;
      const gossip_endpoint *e = gossip_find(c->g, t);
      if (!gossip_is_removed(c->g, t, gen) || (e && e->generation <= gen)) {
        if (e) log_info("cluster: %s was removed from the cluster: forgetting it", t);
        gossip_remove(c->g, t, gen);
        c->ring_dirty = 1;
      }
    }
    free(todo);
  }
  /* members that left: kept a while (their "left" spreads), then forgotten */
  uint64_t now = now_ns();
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    const char *st = e->states[GK_STATUS].value;
    if (e->is_self || !st || strcmp(st, "left")) continue;
    size_t k = 0;
    while (k < c->nlefts && strcmp(c->lefts[k].host_id, e->host_id)) k++;
    if (k == c->nlefts) {
      left_mark *nl = realloc(c->lefts, (c->nlefts + 1) * sizeof *nl);
      if (nl == NULL) return;
      c->lefts = nl;
      memset(&nl[k], 0, sizeof nl[k]);
      snprintf(nl[k].host_id, sizeof nl[k].host_id, "%s", e->host_id);
      nl[k].since_ns = now;
      c->nlefts++;
    }
    c->lefts[k].generation = e->generation;
  }
  for (size_t k = 0; k < c->nlefts;) {
    if (now - c->lefts[k].since_ns > LEFT_FORGET_NS) {
      log_info("cluster: forgetting %s, which left", c->lefts[k].host_id);
      gossip_remove(c->g, c->lefts[k].host_id, c->lefts[k].generation);
      c->lefts[k] = c->lefts[--c->nlefts];
      c->ring_dirty = 1;
    } else {
      k++;
    }
  }
}

/* Caller holds c->mu. The op's state as info pairs. */
static int do_op_report(cluster *c, result *res) {
  op *o = c->op;
  if (o == NULL) {
    result_add_info(res, "operation", "none");
    return 0;
  }
  size_t ndone = 0;
  for (size_t i = 0; i < o->n; i++) ndone += o->o[i].done;
  result_add_info(res, "operation", "%s", o->kind == OP_DECOMMISSION ? "decommission" : "removenode");
  if (o->kind == OP_REMOVENODE) result_add_info(res, "host_id", "%s", o->host);
  result_add_info(res, "state", "%s", !o->finished ? (o->sent ? "streaming" : "announcing")
                                      : o->rc ? "failed" : "done");
  if (o->finished && o->rc) result_add_info(res, "error", "%s", o->msg);
  result_add_info(res, "ranges", "%zu", o->nranges);
  result_add_info(res, "nodes", "%zu", o->n);
  result_add_info(res, "nodes_done", "%zu", ndone);
  result_add_info(res, "entries", "%" PRIu64, o->entries);
  for (size_t i = 0; i < o->n; i++)
    result_add_info(res, o->o[i].host_id, "%zu ranges, %s, %" PRIu64 " entries", o->o[i].n,
                    o->o[i].done ? (o->o[i].code ? "failed" : "done") : "pulling",
                    o->o[i].entries);
  if (o->finished) o->reported = 1;
  return 0;
}

int cluster_op_status(cluster *c, result *res) {
  pthread_mutex_lock(&c->mu);
  int rc = do_op_report(c, res);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* Caller holds c->mu. CELLAR_EINVAL (answered) when an op runs. */
static int do_op_busy(cluster *c, result *res) {
  if (c->op && !c->op->finished)
    return result_error(res, CELLAR_EINVAL, "a %s is already running on this node",
                        c->op->kind == OP_DECOMMISSION ? "decommission" : "removenode");
  if (c->left_ticks || c->has_left) return result_error(res, CELLAR_EINVAL, "this node has left the cluster");
  return 0;
}

int cluster_decommission(cluster *c, result *res) {
  pthread_mutex_lock(&c->mu);
  int rc = do_op_busy(c, res);
  if (rc == 0 && c->state != CL_NORMAL)
    rc = result_error(res, CELLAR_EINVAL, "this node is %s, not normal: it cannot be "
                      "decommissioned", state_names[c->state]);
  op *o = rc ? NULL : calloc(1, sizeof *o);
  if (rc == 0 && o == NULL) rc = result_error(res, CELLAR_ENOMEM, "out of memory");
  if (rc == 0) {
    o->kind = OP_DECOMMISSION;
    rc = do_op_plan(c, o, c->host_id, res);
  }
  if (rc) {
    op_free(o);
    pthread_mutex_unlock(&c->mu);
    return rc;
  }
  op_free(c->op);
  c->op = o;
  gossip_set_local(c->g, GK_STATUS, "leaving");
  gossip_push_self(c->g);
  c->ring_dirty = 1;
  log_info("cluster: decommissioning: leaving; %zu ranges go to %zu nodes", o->nranges, o->n);
  rc = do_op_report(c, res);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int cluster_removenode(cluster *c, const char *host, result *res) {
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  const gossip_endpoint *e = host && *host ? gossip_find(c->g, host) : NULL;
  if (host == NULL || *host == '\0') {
    rc = result_error(res, CELLAR_EINVAL, "removenode needs a HOSTID");
  } else if ((rc = do_op_busy(c, res)) != 0) {
  } else if (c->state != CL_NORMAL) {
    rc = result_error(res, CELLAR_EINVAL, "this node is %s, not normal", state_names[c->state]);
  } else if (e == NULL) {
    rc = result_error(res, CELLAR_ENOTFOUND, "unknown host id %s", host);
  } else if (e->is_self) {
    rc = result_error(res, CELLAR_EINVAL, "%s is this node: use decommission", host);
  } else if (e->alive) {
    rc = result_error(res, CELLAR_EINVAL, "node %s is alive (UP): decommission it instead, "
                      "or stop it first", host);
  }
  op *o = rc ? NULL : calloc(1, sizeof *o);
  if (rc == 0 && o == NULL) rc = result_error(res, CELLAR_ENOMEM, "out of memory");
  if (rc == 0) {
    o->kind = OP_REMOVENODE;
    snprintf(o->host, sizeof o->host, "%s", host);
    o->host_gen = e->generation;
    rc = do_op_plan(c, o, host, res);
  }
  if (rc) {
    op_free(o);
    pthread_mutex_unlock(&c->mu);
    return rc;
  }
  op_free(c->op);
  c->op = o;
  log_info("cluster: removing %s: %zu ranges go to %zu nodes", host, o->nranges, o->n);
  rc = do_op_report(c, res);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

#define SCHEMA_WAIT_TICKS 30

/*
** Caller holds c->mu. A node restarted with its tokens knows only itself
** until gossip brings the other members' states: its ring is then "only
** me", and it would coordinate (and at ONE acknowledge) writes of keys it
** does not own, storing them where no read looks. It serves data requests
** once it holds state gossiped by another member (a live node sent it)
** and every member it knows in the ring has tokens. Nobody answering for
** WAIT_TICKS_MAX rounds: it serves anyway (a lone node whose seeds list
** nodes that never came up), and says so.
*/
static void do_check_ring_learned(cluster *c) {
  size_t heard = 0, missing = 0;
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    if (e->is_self) continue;
    const char *st = e->states[GK_STATUS].value;
    const char *tok = e->states[GK_TOKENS].value;
    if (st == NULL) missing++;           /* known by digest only so far */
    else if (in_ring_status(st) && (tok == NULL || *tok == '\0')) missing++;
    else heard++;
  }
  if (heard > 0 && missing == 0) {
    c->ring_learned = 1;
    c->ring_dirty = 1;
    log_info("cluster: ring learned from gossip (%zu other members): serving data requests",
             heard);
  } else if (c->ticks >= WAIT_TICKS_MAX) {
    c->ring_learned = 1;
    c->ring_dirty = 1;
    log_warn("cluster: ring not learned after %d rounds (%zu members heard, %zu without "
             "tokens): serving data requests with the ring I know", c->ticks, heard, missing);
  }
}

/* Caller holds c->mu. One step of the join lifecycle per tick. */
static void do_lifecycle(cluster *c) {
  c->ticks++;
  if (!c->ring_learned) do_check_ring_learned(c);
  if (c->state == CL_JOINING && c->ticks >= JOINING_TICKS) {
    if (c->boot_fn == NULL) {
      gossip_set_local(c->g, GK_STATUS, "normal");
      c->state = CL_NORMAL;
      c->ring_dirty = 1;
      log_info("cluster: normal, owning %zu tokens", c->ntokens);
      return;
    }
    /* the tables to fetch must be known: wait for schema agreement */
    if (!do_schema_agrees(c) && c->ticks < JOINING_TICKS + SCHEMA_WAIT_TICKS) return;
    cluster_range *plan = NULL;
    size_t n = 0;
    if (do_bootstrap_plan(c, &plan, &n) != 0) {
      free(plan);
      return;
    }
    c->state = CL_STREAMING;
    log_info("cluster: bootstrap: fetching %zu ranges", n);
    free(c->plan);
    c->plan = plan;            /* on_tick hands it over, unlocked */
    c->nplan = n;
    c->plan_ready = 1;
    return;
  }
  if (c->state != CL_WAIT || c->ticks < WAIT_TICKS) return;
  /* who else is there, and is this address already taken? */
  size_t live_normal = 0;
  for (size_t i = 0; i < gossip_count(c->g); i++) {
    const gossip_endpoint *e = gossip_at(c->g, i);
    if (e->is_self) continue;
    const char *st = e->states[GK_STATUS].value;
    const char *addr = e->states[GK_PEER_ADDR].value;
    if (addr && !strcmp(addr, c->peer_addr) && st && strcmp(st, "left") &&
        strncmp(st, "removed", 7)) {
      char msg[512];
      snprintf(msg, sizeof msg, "address %s belongs to node %s (%s) in this cluster; "
               "this node has another identity (was its data wiped?): remove the old "
               "node first (cellar-admin removenode %s)", c->peer_addr, e->host_id, st,
               e->host_id);
      c->state = CL_STOPPED;
      if (c->fatal) c->fatal(c->fatal_arg, msg);
      return;
    }
    if (e->alive && in_ring_status(st)) live_normal++;
  }
  /* a seed that finds nobody starts a ring of its own after a few rounds;
  ** any other node waits longer for a seed to answer */
  if (live_normal == 0 && c->ticks < (c->is_seed ? WAIT_TICKS : WAIT_TICKS_MAX)) return;
  if (live_normal == 0) log_warn("cluster: no live member found after %d rounds; "
                                 "starting a ring of my own", c->ticks);
  c->ring_dirty = 1;
  do_rebuild_ring(c);
  size_t n = (size_t)c->cfg->num_tokens;
  free(c->tokens);
  c->tokens = malloc(n * sizeof *c->tokens);
  if (c->tokens == NULL) return;
  uint64_t seed = clock_random64();
  if (ring_allocate_tokens(&c->ring, n, seed, c->tokens) != 0) return;
  c->ntokens = n;
  /* the loop never writes to RocksDB: the save runs on a worker */
  save_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->c = c;
  j->work.data = j;
  c->state = CL_SAVING;
  if (uv_queue_work(c->loop, &j->work, save_work, save_done) != 0) {
    c->state = CL_WAIT;
    free(j);
  }
}

static void on_tick(uv_timer_t *t) {
  cluster *c = t->data;
  if (c->state == CL_STOPPED) return;
  pthread_mutex_lock(&c->mu);
  gossip_tick(c->g, now_ns());
  do_lifecycle(c);
  if (c->state != CL_STOPPED) do_pull_mismatched(c);
  do_apply_removed(c);
  outmsg *orders = NULL;
  size_t norders = 0;
  do_op_tick(c, &orders, &norders);
  int exit_now = 0;
  if (c->has_left && c->left_ticks > -LEFT_EXIT_MAX_TICKS) {
    gossip_push_self(c->g);
    c->left_ticks--;
    exit_now = c->left_ticks == -LEFT_EXIT_MAX_TICKS ||
               (c->left_ticks <= 0 && c->op && c->op->reported);
    if (exit_now) c->left_ticks = -LEFT_EXIT_MAX_TICKS;
  }
  static int n;
  int refresh = (++n % LOAD_EVERY_TICKS) == 1;
  cluster_range *plan = c->plan;
  size_t nplan = c->nplan;
  int ready = c->plan_ready;
  c->plan = NULL;
  c->plan_ready = 0;
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < norders; i++) {
    if (orders[i].p) cluster_send(c, orders[i].addr, FRAME_STREAM_ORDER, 0, orders[i].p,
                                  orders[i].len);
    free(orders[i].p);
  }
  free(orders);
  if (exit_now) {
    log_info("cluster: this node left the cluster: stopping");
    if (c->left) c->left(c->fatal_arg);
    else if (c->fatal) c->fatal(c->fatal_arg, "this node left the cluster");
    return;
  }
  if (ready) {
    int rc = c->boot_fn(c->boot_arg, plan, nplan);
    free(plan);
    if (rc) cluster_bootstrap_done(c, rc);
  }
  if (refresh) {
    load_job *j = calloc(1, sizeof *j);
    if (j) {
      j->c = c;
      j->work.data = j;
      if (uv_queue_work(c->loop, &j->work, load_work, load_done) != 0) free(j);
    }
  }
}

int cluster_new(const cluster_options *o, cluster **out) {
  *out = NULL;
  cluster *c = calloc(1, sizeof *c);
  if (c == NULL) return CELLAR_ENOMEM;
  c->loop = o->loop;
  c->cfg = o->cfg;
  c->st = o->st;
  c->sc = o->sc;
  snprintf(c->host_id, sizeof c->host_id, "%s", o->host_id);
  c->generation = o->generation;
  c->fatal = o->fatal;
  c->fatal_arg = o->fatal_arg;
  c->left = o->left;
  c->started_ns = now_ns();
  snprintf(c->peer_addr, sizeof c->peer_addr, "%s:%d", o->cfg->peer_host, o->cfg->peer_port);
  snprintf(c->client_addr, sizeof c->client_addr, "%s:%d", o->cfg->listen_host,
           o->cfg->listen_port);
  pthread_mutex_init(&c->mu, NULL);
  ring_init(&c->ring);
  ring_init(&c->ring_all);
  c->ring_dirty = 1;

  char *saved = NULL;
  int rc = storage_system_scan(c->st, "node/tokens", 11, read_value, &saved);
  if (rc == 0 && saved && tokens_parse(saved, &c->tokens, &c->ntokens) != 0) {
    log_error("cluster: saved tokens are unreadable: '%.60s'", saved);
    rc = CELLAR_ESTORAGE;
  }
  free(saved);
  if (rc) {
    cluster_free(c);
    return rc;
  }
  char *removed = NULL;
  storage_system_scan(c->st, "node/removed", 12, read_removed, &removed);

  gossip_config gc = {.cluster = o->cfg->cluster_name, .host_id = c->host_id,
                      .generation = c->generation, .peer_addr = c->peer_addr,
                      .phi_threshold = o->cfg->phi_threshold,
                      .interval_ns = (uint64_t)o->cfg->gossip_interval_ms * 1000000ull,
                      .rng_seed = clock_random64()};
  static char seeds[GOSSIP_MAX_SEEDS][GOSSIP_ADDR_MAX];
  char buf[512];
  snprintf(buf, sizeof buf, "%s", o->cfg->seeds);
  char *save = NULL;
  int other_seed = 0;
  for (char *t = strtok_r(buf, ",", &save); t && gc.nseeds < GOSSIP_MAX_SEEDS;
       t = strtok_r(NULL, ",", &save)) {
    snprintf(seeds[gc.nseeds], GOSSIP_ADDR_MAX, "%s", t);
    gc.seeds[gc.nseeds] = seeds[gc.nseeds];
    gc.nseeds++;
    if (strcmp(t, c->peer_addr) != 0) other_seed = 1;
    else c->is_seed = 1;
  }
  gossip_io io = {.arg = c, .send = io_send, .event = io_event, .wall_s = io_wall};
  rc = gossip_new(&gc, &io, now_ns(), &c->g);
  if (rc) {
    free(removed);
    cluster_free(c);
    return rc;
  }
  gossip_set_local(c->g, GK_DC, o->cfg->dc);
  gossip_set_local(c->g, GK_RACK, o->cfg->rack);
  gossip_set_local(c->g, GK_ADDR, c->client_addr);
  gossip_set_local(c->g, GK_LOAD, "0");
  if (removed) {            /* do_apply_removed forgets them at the first tick */
    gossip_set_local(c->g, GK_REMOVED, removed);
    log_info("cluster: members removed earlier: %s", removed);
    free(removed);
    removed = NULL;
  }
  if (c->ntokens) {
    announce_tokens(c);
    gossip_set_local(c->g, GK_STATUS, "normal");
    c->state = CL_NORMAL;
    /* other members may own most of the ring: learn it first */
    c->ring_learned = !other_seed;
    log_info("cluster: restarting with my %zu saved tokens%s", c->ntokens,
             other_seed ? " (data requests wait until gossip brings the ring)" : "");
  } else if (!other_seed) {
    c->ntokens = (size_t)o->cfg->num_tokens;
    c->tokens = malloc(c->ntokens * sizeof *c->tokens);
    if (c->tokens == NULL || ring_allocate_tokens(&c->ring, c->ntokens, clock_random64(),
                                                  c->tokens) != 0 ||
        save_tokens(c) != 0) {
      cluster_free(c);
      return CELLAR_ESTORAGE;
    }
    announce_tokens(c);
    gossip_set_local(c->g, GK_STATUS, "normal");
    c->state = CL_NORMAL;
    log_info("cluster: first node of a new ring, %zu tokens", c->ntokens);
    c->ring_learned = 1;
  } else {
    c->state = CL_WAIT;
    c->ring_learned = 1;       /* it learns the ring before it has tokens */
  }
  *out = c;
  return 0;
}

/* peer's failure callback: every handler hears of it (proxy, repair) */
static void on_peer_failed(void *arg, const char *addr) {
  cluster *c = arg;
  for (size_t i = 0; i < c->nfail; i++) c->fail_fn[i](c->fail_arg[i], addr);
}

int cluster_start(cluster *c) {
  int rc = peer_new(c->loop, c->cfg->max_frame_bytes, 64u << 20, on_peer_frame, c, &c->pr);
  if (rc) return rc;
  rc = peer_listen(c->pr, c->cfg->peer_host, c->cfg->peer_port);
  if (rc) return rc;
  peer_set_fail_cb(c->pr, on_peer_failed, c);
  uv_timer_init(c->loop, &c->timer);
  c->timer.data = c;
  uv_async_init(c->loop, &c->schema_async, on_schema_async);
  c->schema_async.data = c;
  c->handles_open = 2;
  announce_schema(c);
  uv_timer_start(&c->timer, on_tick, 100, (uint64_t)c->cfg->gossip_interval_ms);
  log_info("cluster: %s dc=%s rack=%s peer %s seeds [%s] state %s", c->cfg->cluster_name,
           c->cfg->dc, c->cfg->rack, c->peer_addr, c->cfg->seeds, state_names[c->state]);
  return 0;
}

static void handle_closed(uv_handle_t *h) {
  cluster *c = h->data;
  if (--c->handles_open == 0 && c->pr == NULL && c->stop_done) c->stop_done(c->stop_arg);
}

static void peer_closed(void *arg) {
  cluster *c = arg;
  peer_free(c->pr);
  c->pr = NULL;
  if (c->handles_open == 0 && c->stop_done) c->stop_done(c->stop_arg);
}

static void stop_now(cluster *c) {
  if (c->handles_open) {
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->schema_async, handle_closed);
  }
  if (c->pr) peer_close(c->pr, peer_closed, c);
  else if (c->handles_open == 0 && c->stop_done) c->stop_done(c->stop_arg);
}

static void on_announced(uv_timer_t *t) {
  stop_now(t->data);
}

/*
** Announces "shutdown" to every live peer (they mark this node down at
** once instead of after ~18 silent rounds), gives the frames a moment to
** leave, then closes everything.
*/
void cluster_stop(cluster *c, void (*done)(void *), void *arg) {
  int was_running = c->state != CL_STOPPED && c->handles_open;
  pthread_mutex_lock(&c->mu);
  do_op_finish(c, CELLAR_ESHUTDOWN, "the node is shutting down");
  pthread_mutex_unlock(&c->mu);
  c->stop_done = done;
  c->stop_arg = arg;
  if (was_running && c->pr) {
    pthread_mutex_lock(&c->mu);
    const gossip_endpoint *me = gossip_find(c->g, c->host_id);
    const char *st = me ? me->states[GK_STATUS].value : NULL;
    if (!st || strcmp(st, "left")) gossip_set_local(c->g, GK_STATUS, "shutdown");
    gossip_push_self(c->g);
    pthread_mutex_unlock(&c->mu);
    c->state = CL_STOPPED;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_announced, 200, 0);
    return;
  }
  c->state = CL_STOPPED;
  stop_now(c);
}

void cluster_free(cluster *c) {
  if (c == NULL) return;
  gossip_free(c->g);
  ring_free(&c->ring);
  ring_free(&c->ring_all);
  free(c->plan);
  free(c->tokens);
  free(c->pulls);
  free(c->lefts);
  free(c->downs);
  op_free(c->op);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

const char *cluster_state_name(cluster *c) { return state_names[c->state]; }

/* ------------------------------------------------------------- views */

static const char *or_empty(const char *s) { return s ? s : ""; }

/* Caller holds c->mu. */
static void do_fill_member(cluster *c, const gossip_endpoint *e, res_member *m,
                           const double *own, uint64_t now) {
  memset(m, 0, sizeof *m);
  snprintf(m->host_id, sizeof m->host_id, "%s", e->host_id);
  snprintf(m->address, sizeof m->address, "%s", or_empty(e->states[GK_ADDR].value));
  snprintf(m->peer_address, sizeof m->peer_address, "%s", or_empty(e->states[GK_PEER_ADDR].value));
  snprintf(m->dc, sizeof m->dc, "%s", or_empty(e->states[GK_DC].value));
  snprintf(m->rack, sizeof m->rack, "%s", or_empty(e->states[GK_RACK].value));
  const char *st = e->is_self ? (c->state == CL_WAIT || c->state == CL_SAVING ||
                                 c->state == CL_STREAMING ? "joining" : or_empty(e->states[GK_STATUS].value))
                              : or_empty(e->states[GK_STATUS].value);
  snprintf(m->status, sizeof m->status, "%s", *st ? st : "joining");
  m->up = e->is_self ? 1 : e->alive;
  m->load = strtoull(or_empty(e->states[GK_LOAD].value), NULL, 10);
  const char *t = e->states[GK_TOKENS].value;
  if (t && *t) {
    m->tokens = 1;
    for (; *t; t++) m->tokens += *t == ',';
  }
  int idx = ring_find(&c->ring, e->host_id);
  m->owns = idx >= 0 && own ? own[idx] : 0;
  m->generation = e->generation;
  m->phi = e->is_self ? 0 : fd_phi(&e->fd, now);
  snprintf(m->schema, sizeof m->schema, "%s", or_empty(e->states[GK_SCHEMA].value));
}

int cluster_view_status(cluster *c, const keyspace_def *ks, result *out) {
  pthread_mutex_lock(&c->mu);
  do_rebuild_ring(c);
  size_t n = gossip_count(c->g);
  double *own = calloc(c->ring.nmembers + 1, sizeof *own);
  out->members = calloc(n + 1, sizeof *out->members);
  int rc = 0;
  if (own == NULL || out->members == NULL) {
    rc = result_error(out, CELLAR_ENOMEM, "out of memory");
  } else {
    ring_ownership(&c->ring, ks, own);
    uint64_t now = now_ns();
    for (size_t i = 0; i < n; i++) {
      const gossip_endpoint *e = gossip_at(c->g, i);
      const char *st = e->states[GK_STATUS].value;
      if (!e->is_self && st && !strcmp(st, "left")) continue;   /* gone */
      do_fill_member(c, e, &out->members[out->nmembers++], own, now);
    }
  }
  free(own);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int cluster_view_endpoints(cluster *c, const keyspace_def *ks, const void *key,
                           size_t nkey, result *out) {
  pthread_mutex_lock(&c->mu);
  do_rebuild_ring(c);
  size_t max = c->ring.nmembers;
  uint32_t *reps = calloc(max + 1, sizeof *reps);
  out->members = calloc(max + 1, sizeof *out->members);
  int rc = 0;
  if (reps == NULL || out->members == NULL) {
    rc = result_error(out, CELLAR_ENOMEM, "out of memory");
  } else {
    size_t n = ring_replicas(&c->ring, ks, token_of(key, nkey), reps, max);
    uint64_t now = now_ns();
    for (size_t i = 0; i < n; i++) {
      const gossip_endpoint *e = gossip_find(c->g, c->ring.members[reps[i]].host_id);
      if (e) do_fill_member(c, e, &out->members[out->nmembers++], NULL, now);
    }
  }
  free(reps);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int cluster_view_ring(cluster *c, result *out) {
  pthread_mutex_lock(&c->mu);
  do_rebuild_ring(c);
  int rc = 0;
  for (size_t i = 0; i < c->ring.ntokens && rc == 0; i++) {
    const ring_member *m = &c->ring.members[c->ring.tokens[i].member];
    const gossip_endpoint *e = gossip_find(c->g, m->host_id);
    char key[24];
    snprintf(key, sizeof key, "%" PRId64, c->ring.tokens[i].token);
    rc = result_add_info(out, key, "%s %s %s %s %s", m->host_id,
                         e ? or_empty(e->states[GK_ADDR].value) : "", m->dc, m->rack,
                         e && (e->is_self || e->alive) ? "up" : "down");
  }
  pthread_mutex_unlock(&c->mu);
  return rc ? result_error(out, rc, "out of memory") : 0;
}

/* ------------------------------------------------- replication helpers */

const char *cluster_local_dc(const cluster *c) { return c->cfg->dc; }
const char *cluster_host_id(const cluster *c) { return c->host_id; }
const char *cluster_peer_addr(const cluster *c) { return c->peer_addr; }
const char *cluster_name(const cluster *c) { return c->cfg->cluster_name; }

void cluster_set_handler(cluster *c, cluster_frame_fn fn, void *arg) {
  c->other_fn = fn;
  c->other_arg = arg;
}

int cluster_send(cluster *c, const char *addr, unsigned type, uint32_t id,
                 const uint8_t *p, size_t n) {
  if (c->pr == NULL || c->state == CL_STOPPED) return CELLAR_ESHUTDOWN;
  /* streaming to this node itself (removenode run on a node that gains or
  ** serves ranges; a repair that compares this node's replica): delivered
  ** here, without a connection */
  if (type >= FRAME_STREAM_PULL && type <= FRAME_REPAIR_ROWS_REPLY &&
      !strcmp(addr, c->peer_addr)) {
    frame_header h = {.magic = FRAME_MAGIC, .version = FRAME_VERSION, .type = (uint8_t)type,
                      .request_id = id, .length = (uint32_t)n};
    on_peer_frame(c, &h, p);
    return 0;
  }
  return peer_send(c->pr, addr, type, id, p, n);
}

/* Caller holds c->mu. Fills r from member m of ring rg. */
static void do_fill_replica(cluster *c, const ring *rg, uint32_t m, cluster_replica *r) {
  const ring_member *rm = &rg->members[m];
  const gossip_endpoint *e = gossip_find(c->g, rm->host_id);
  memset(r, 0, sizeof *r);
  r->r.member = m;
  snprintf(r->r.dc, sizeof r->r.dc, "%s", rm->dc);
  snprintf(r->host_id, sizeof r->host_id, "%s", rm->host_id);
  r->is_self = e && e->is_self;
  r->r.alive = e && (e->is_self || e->alive);
  snprintf(r->peer_addr, sizeof r->peer_addr, "%s",
           e && e->states[GK_PEER_ADDR].value ? e->states[GK_PEER_ADDR].value : "");
}

int cluster_ring_learned(cluster *c) {
  pthread_mutex_lock(&c->mu);
  /* not only at the tick: a request right after the states came in is
  ** served (the status view already shows the members) */
  if (!c->ring_learned) do_check_ring_learned(c);
  int r = c->ring_learned;
  pthread_mutex_unlock(&c->mu);
  return r;
}

size_t cluster_replicas(cluster *c, const keyspace_def *ks, int64_t t,
                        cluster_replica *out, size_t max, size_t *npending) {
  pthread_mutex_lock(&c->mu);
  do_rebuild_ring(c);
  uint32_t members[CL_MAX_REPLICAS];
  size_t cap = max < CL_MAX_REPLICAS ? max : CL_MAX_REPLICAS;
  size_t n = ring_replicas(&c->ring, ks, t, members, cap);
  cluster_replica tmp[CL_MAX_REPLICAS];
  for (size_t i = 0; i < n; i++) do_fill_replica(c, &c->ring, members[i], &tmp[i]);
  /* pending: replicas in the ring to be (joining members in, leaving
  ** ones out) that are not replicas now */
  cluster_replica pend[CL_MAX_REPLICAS];
  size_t np = 0;
  if (npending && c->ring_changing) {
    uint32_t all[CL_MAX_REPLICAS];
    size_t na = ring_replicas(&c->ring_all, ks, t, all, CL_MAX_REPLICAS);
    for (size_t i = 0; i < na; i++) {
      const char *h = c->ring_all.members[all[i]].host_id;
      int known = 0;
      for (size_t k = 0; k < n && !known; k++) known = !strcmp(tmp[k].host_id, h);
      if (!known && n + np < cap) do_fill_replica(c, &c->ring_all, all[i], &pend[np++]);
    }
  }
  pthread_mutex_unlock(&c->mu);
  /* preference: self, the local datacenter, the rest (ring order kept) */
  size_t k = 0;
  for (int pass = 0; pass < 3; pass++)
    for (size_t i = 0; i < n; i++) {
      int local = !strcmp(tmp[i].r.dc, c->cfg->dc);
      int take = pass == 0 ? tmp[i].is_self
               : pass == 1 ? (!tmp[i].is_self && local)
                           : (!tmp[i].is_self && !local);
      if (take) out[k++] = tmp[i];
    }
  for (size_t i = 0; i < np; i++) out[k++] = pend[i];
  if (npending) *npending = np;
  return k;
}

int cluster_token_ranges(cluster *c, cluster_token_range **out, size_t *n) {
  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&c->mu);
  do_rebuild_ring(c);
  const ring *rg = &c->ring;
  size_t nt = rg->ntokens;
  cluster_token_range *r = nt ? calloc(nt + 1, sizeof *r) : NULL;
  if (nt && r == NULL) {
    pthread_mutex_unlock(&c->mu);
    return CELLAR_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < nt; i++) {
    int mine = !strcmp(rg->members[rg->tokens[i].member].host_id, c->host_id);
    int64_t hi = rg->tokens[i].token;
    if (i == 0) {
      /* the wrapping range (last token, first token]: its part above the
      ** last token, then the part from the bottom of the ring (INT64_MIN
      ** is no token: token.h maps it to INT64_MAX) */
      int64_t last = rg->tokens[nt - 1].token;
      int owner_first = mine;
      if (last < INT64_MAX)
        r[k++] = (cluster_token_range){last + 1, INT64_MAX, owner_first};
      if (hi > INT64_MIN) r[k++] = (cluster_token_range){INT64_MIN + 1, hi, owner_first};
    } else {
      r[k++] = (cluster_token_range){rg->tokens[i - 1].token + 1, hi, mine};
    }
  }
  pthread_mutex_unlock(&c->mu);
  *out = r;
  *n = k;
  return 0;
}

void cluster_member(cluster *c, const char *host_id, cluster_member_info *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&c->mu);
  const gossip_endpoint *e = gossip_find(c->g, host_id);
  const char *st = e ? e->states[GK_STATUS].value : NULL;
  if (e == NULL) {
    out->state = gossip_is_removed(c->g, host_id, 0) ? CLUSTER_MEMBER_GONE
                                                     : CLUSTER_MEMBER_UNKNOWN;
  } else if (st && !strcmp(st, "left")) {
    out->state = CLUSTER_MEMBER_GONE;
  } else {
    out->state = e->is_self || e->alive ? CLUSTER_MEMBER_UP : CLUSTER_MEMBER_DOWN;
    snprintf(out->peer_addr, sizeof out->peer_addr, "%s",
             e->states[GK_PEER_ADDR].value ? e->states[GK_PEER_ADDR].value : "");
  }
  if (out->state == CLUSTER_MEMBER_DOWN) {
    out->down_since_ns = c->started_ns;
    for (size_t k = 0; k < c->ndowns; k++)
      if (!strcmp(c->downs[k].host_id, host_id)) out->down_since_ns = c->downs[k].since_ns;
  }
  pthread_mutex_unlock(&c->mu);
}

void cluster_set_member_handler(cluster *c, void (*fn)(void *, const char *, int), void *arg) {
  c->member_fn = fn;
  c->member_arg = arg;
}

int cluster_peer_failing(cluster *c, const char *addr) {
  return c->pr && peer_failing(c->pr, addr, clock_mono_ns());
}

void cluster_set_fail_handler(cluster *c, void (*fn)(void *arg, const char *addr), void *arg) {
  if (c->nfail == CL_MAX_FAIL_FNS) {
    log_error("cluster: too many peer failure handlers");
    return;
  }
  c->fail_fn[c->nfail] = fn;
  c->fail_arg[c->nfail++] = arg;
}
