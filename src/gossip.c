/*
** gossip: membership state machine. See gossip.h for the protocol.
**
** Design notes
**
**  1. g->self is this node. Its versions come from one counter
**     (g->version) shared by the heartbeat and every application state, so
**     max_version names exactly what a peer has seen.
**  2. Only the owner of an endpoint creates versions for it; everybody else
**     copies (generation, version, value) triples and keeps the highest.
**     Merging is therefore commutative and idempotent: receiving the same
**     delta twice, or two deltas in any order, ends in the same state.
**  3. An endpoint heard of for the first time starts down: it is marked up
**     when a newer heartbeat of it arrives (a dead node described by a third
**     party is never marked up). A new generation counts as a heartbeat.
**  4. Endpoints are stored through pointers, sorted by host id (binary
**     search: a SYN from a 1000-node cluster costs 1000 look-ups of ~10
**     comparisons each), so gossip_at() results stay valid while the array
**     grows (until gossip_forget or the next call).
**
** Per peer, as seen from here:
**
**     unknown --delta--> DOWN --newer heartbeat--> UP
**                          ^                        |
**                          +---phi > threshold------+
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "gossip.h"

struct gossip {
  char cluster[64];
  char peer_addr[GOSSIP_ADDR_MAX];
  size_t nseeds;
  char seeds[GOSSIP_MAX_SEEDS][GOSSIP_ADDR_MAX];
  double phi_threshold;
  uint64_t interval_ns;
  gossip_io io;
  uint64_t version;            /* this node's version counter */
  uint64_t rng;
  size_t n, cap;
  gossip_endpoint **eps;       /* sorted by host_id */
  gossip_endpoint *self;
  uint64_t last_tick_ns;
  size_t nremoved, capremoved;
  struct removed {
    char host_id[GOSSIP_HOST_ID_MAX];
    uint64_t generation;
  } *removed;                  /* gossip_remove's tombstones */
};

static const char *const key_names[GK_COUNT] = {
  "STATUS", "DC", "RACK", "TOKENS", "ADDR", "PEER_ADDR", "LOAD", "SCHEMA", "REMOVED"};

const char *gossip_key_name(int key) {
  return key >= 0 && key < GK_COUNT ? key_names[key] : "UNKNOWN";
}

/* splitmix64: deterministic for a seed, which the simulator relies on */
static uint64_t rnd(gossip *g) {
  uint64_t z = (g->rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double rnd01(gossip *g) { return (double)(rnd(g) >> 11) / 9007199254740992.0; }

uint64_t gossip_max_version(const gossip_endpoint *e) {
  uint64_t v = e->heartbeat;
  for (int k = 0; k < GK_COUNT; k++)
    if (e->states[k].version > v) v = e->states[k].version;
  return v;
}

static void endpoint_clear_states(gossip_endpoint *e) {
  for (int k = 0; k < GK_COUNT; k++) {
    free(e->states[k].value);
    e->states[k].value = NULL;
    e->states[k].version = 0;
  }
}

static void event(gossip *g, const char *host, int ev) {
  if (g->io.event) g->io.event(g->io.arg, host, ev);
}

/* Index where host is or would be inserted. */
static size_t lower_bound(const gossip *g, const char *host) {
  size_t lo = 0, hi = g->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (strcmp(g->eps[mid]->host_id, host) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static gossip_endpoint *find(const gossip *g, const char *host) {
  size_t i = lower_bound(g, host);
  return i < g->n && !strcmp(g->eps[i]->host_id, host) ? g->eps[i] : NULL;
}

static gossip_endpoint *add_endpoint(gossip *g, const char *host) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 16;
    gossip_endpoint **p = realloc(g->eps, cap * sizeof *p);
    if (p == NULL) return NULL;
    g->eps = p;
    g->cap = cap;
  }
  gossip_endpoint *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  snprintf(e->host_id, sizeof e->host_id, "%s", host);
  size_t i = lower_bound(g, e->host_id);
  memmove(&g->eps[i + 1], &g->eps[i], (g->n - i) * sizeof *g->eps);
  g->eps[i] = e;
  g->n++;
  return e;
}

int gossip_new(const gossip_config *cfg, const gossip_io *io, uint64_t now_ns,
               gossip **out) {
  *out = NULL;
  if (cfg->host_id == NULL || cfg->peer_addr == NULL || cfg->nseeds > GOSSIP_MAX_SEEDS)
    return CELLAR_EINVAL;
  gossip *g = calloc(1, sizeof *g);
  if (g == NULL) return CELLAR_ENOMEM;
  snprintf(g->cluster, sizeof g->cluster, "%s", cfg->cluster ? cfg->cluster : "cellar");
  snprintf(g->peer_addr, sizeof g->peer_addr, "%s", cfg->peer_addr);
  g->nseeds = cfg->nseeds;
  for (size_t i = 0; i < cfg->nseeds; i++)
    snprintf(g->seeds[i], GOSSIP_ADDR_MAX, "%s", cfg->seeds[i]);
  g->phi_threshold = cfg->phi_threshold > 0 ? cfg->phi_threshold : FD_DEFAULT_THRESHOLD;
  g->interval_ns = cfg->interval_ns ? cfg->interval_ns : 1000000000ull;
  g->io = *io;
  g->rng = cfg->rng_seed;
  gossip_endpoint *self = add_endpoint(g, cfg->host_id);
  if (self == NULL) {
    free(g);
    return CELLAR_ENOMEM;
  }
  g->self = self;
  self->is_self = 1;
  self->alive = 1;
  self->generation = cfg->generation;
  self->heartbeat = ++g->version;
  fd_init(&self->fd, now_ns, g->interval_ns, 4 * g->interval_ns);
  *out = g;
  return gossip_set_local(g, GK_PEER_ADDR, cfg->peer_addr);
}

void gossip_free(gossip *g) {
  if (g == NULL) return;
  for (size_t i = 0; i < g->n; i++) {
    endpoint_clear_states(g->eps[i]);
    free(g->eps[i]);
  }
  free(g->eps);
  free(g->removed);
  free(g);
}

int gossip_set_local(gossip *g, int key, const char *value) {
  if (key < 0 || key >= GK_COUNT || value == NULL) return CELLAR_EINVAL;
  gossip_endpoint *self = g->self;
  if (self->states[key].value && !strcmp(self->states[key].value, value)) return 0;
  char *v = strdup(value);
  if (v == NULL) return CELLAR_ENOMEM;
  free(self->states[key].value);
  self->states[key].value = v;
  self->states[key].version = ++g->version;
  return 0;
}

size_t gossip_count(const gossip *g) { return g->n; }
const gossip_endpoint *gossip_at(const gossip *g, size_t i) {
  return i < g->n ? g->eps[i] : NULL;
}
const gossip_endpoint *gossip_find(const gossip *g, const char *host) {
  return find(g, host);
}

double gossip_phi(const gossip *g, const char *host, uint64_t now_ns) {
  const gossip_endpoint *e = find(g, host);
  if (e == NULL || e->is_self) return 0.0;
  return fd_phi(&e->fd, now_ns);
}

int gossip_forget(gossip *g, const char *host) {
  size_t i = lower_bound(g, host);
  if (i == g->n || strcmp(g->eps[i]->host_id, host) || g->eps[i]->is_self)
    return CELLAR_ENOTFOUND;
  endpoint_clear_states(g->eps[i]);
  free(g->eps[i]);
  memmove(&g->eps[i], &g->eps[i + 1], (g->n - i - 1) * sizeof *g->eps);
  g->n--;
  return 0;
}

int gossip_is_removed(const gossip *g, const char *host, uint64_t generation) {
  for (size_t i = 0; i < g->nremoved; i++)
    if (!strcmp(g->removed[i].host_id, host)) return generation <= g->removed[i].generation;
  return 0;
}

int gossip_remove(gossip *g, const char *host, uint64_t generation) {
  if (!strcmp(host, g->self->host_id)) return CELLAR_EINVAL;
  size_t i = 0;
  while (i < g->nremoved && strcmp(g->removed[i].host_id, host)) i++;
  if (i == g->nremoved) {
    if (g->nremoved == g->capremoved) {
      size_t cap = g->capremoved ? g->capremoved * 2 : 8;
      struct removed *r = realloc(g->removed, cap * sizeof *r);
      if (r == NULL) return CELLAR_ENOMEM;
      g->removed = r;
      g->capremoved = cap;
    }
    g->nremoved++;
    snprintf(g->removed[i].host_id, sizeof g->removed[i].host_id, "%s", host);
    g->removed[i].generation = generation;
  } else if (generation > g->removed[i].generation) {
    g->removed[i].generation = generation;
  }
  const gossip_endpoint *e = find(g, host);
  if (e && e->generation <= g->removed[i].generation) gossip_forget(g, host);
  return 0;
}

/* ------------------------------------------------------------- deltas */

/* Fills d with what e has newer than version v. */
static void make_delta(const gossip_endpoint *e, uint64_t v, gossip_delta *d) {
  memset(d, 0, sizeof *d);
  snprintf(d->host_id, sizeof d->host_id, "%s", e->host_id);
  d->generation = e->generation;
  d->heartbeat = e->heartbeat;
  for (int k = 0; k < GK_COUNT; k++)
    if (e->states[k].value && e->states[k].version > v) {
      d->items[d->nitems].key = k;
      d->items[d->nitems].value = e->states[k].value;
      d->items[d->nitems].version = e->states[k].version;
      d->nitems++;
    }
}

static int is_left(const gossip_endpoint *e) {
  const char *s = e->states[GK_STATUS].value;
  return s && (!strcmp(s, "left") || !strncmp(s, "removed", 7));
}

static int is_shutdown(const gossip_endpoint *e) {
  const char *s = e->states[GK_STATUS].value;
  return s && !strcmp(s, "shutdown");
}

static void mark_up(gossip *g, gossip_endpoint *e) {
  if (!e->alive && !is_shutdown(e)) {
    e->alive = 1;
    event(g, e->host_id, GOSSIP_EV_UP);
  }
}

/* Applies one delta (design notes 2 and 3). */
static void apply_delta(gossip *g, const gossip_delta *d, uint64_t now_ns) {
  if (d->host_id[0] == '\0' || !strcmp(d->host_id, g->self->host_id)) return;
  uint64_t wall = g->io.wall_s ? g->io.wall_s(g->io.arg) : 0;
  if (wall && d->generation > wall + GOSSIP_MAX_GENERATION_AHEAD) return;
  if (gossip_is_removed(g, d->host_id, d->generation)) return;
  gossip_endpoint *e = find(g, d->host_id);
  int changed = 0;
  if (e == NULL) {
    e = add_endpoint(g, d->host_id);
    if (e == NULL) return;
    e->generation = d->generation;
    e->heartbeat = d->heartbeat;
    fd_init(&e->fd, now_ns, g->interval_ns, 4 * g->interval_ns);
    event(g, e->host_id, GOSSIP_EV_JOIN);
  } else if (d->generation > e->generation) {
    endpoint_clear_states(e);
    e->generation = d->generation;
    e->heartbeat = d->heartbeat;
    fd_init(&e->fd, now_ns, g->interval_ns, 4 * g->interval_ns);
    event(g, e->host_id, GOSSIP_EV_RESTART);
    mark_up(g, e);
  } else if (d->generation < e->generation) {
    return;
  } else if (d->heartbeat > e->heartbeat) {
    e->heartbeat = d->heartbeat;
    fd_report(&e->fd, now_ns);
    mark_up(g, e);
  }
  for (size_t i = 0; i < d->nitems; i++) {
    int k = d->items[i].key;
    if (k < 0 || k >= GK_COUNT || d->items[i].value == NULL) continue;
    if (d->items[i].version <= e->states[k].version) continue;
    char *v = strdup(d->items[i].value);
    if (v == NULL) continue;
    free(e->states[k].value);
    e->states[k].value = v;
    e->states[k].version = d->items[i].version;
    changed = 1;
  }
  if (changed) event(g, e->host_id, GOSSIP_EV_CHANGE);
  if (changed && e->alive && is_shutdown(e)) {   /* announced: down at once */
    e->alive = 0;
    event(g, e->host_id, GOSSIP_EV_DOWN);
  }
}

/* ----------------------------------------------------------------- rounds */

static void send_msg(gossip *g, const char *to, const gossip_msg *m) {
  if (g->io.send && to && *to && strcmp(to, g->peer_addr) != 0) g->io.send(g->io.arg, to, m);
}

static const char *addr_of(const gossip_endpoint *e) {
  return e->states[GK_PEER_ADDR].value;
}

static int is_seed(const gossip *g, const char *addr) {
  for (size_t i = 0; i < g->nseeds; i++)
    if (!strcmp(g->seeds[i], addr)) return 1;
  return 0;
}

static void send_syn(gossip *g, const char *to, gossip_digest *digests) {
  gossip_msg m = {.type = GOSSIP_SYN, .cluster = g->cluster, .ndigests = g->n,
                  .digests = digests};
  send_msg(g, to, &m);
}

void gossip_tick(gossip *g, uint64_t now_ns) {
  g->self->heartbeat = ++g->version;
  uint64_t pause = 5 * g->interval_ns > GOSSIP_MAX_LOCAL_PAUSE_NS ? 5 * g->interval_ns
                                                                  : GOSSIP_MAX_LOCAL_PAUSE_NS;
  if (g->last_tick_ns && now_ns - g->last_tick_ns > pause)
    for (size_t i = 0; i < g->n; i++) fd_rearm(&g->eps[i]->fd, now_ns);
  g->last_tick_ns = now_ns;

  gossip_digest *dg = malloc(g->n * sizeof *dg);
  const char **live = malloc(g->n * sizeof *live);
  const char **dead = malloc(g->n * sizeof *dead);
  if (dg == NULL || live == NULL || dead == NULL) goto out;
  size_t nlive = 0, ndead = 0;
  for (size_t i = 0; i < g->n; i++) {
    gossip_endpoint *e = g->eps[i];
    snprintf(dg[i].host_id, sizeof dg[i].host_id, "%s", e->host_id);
    dg[i].generation = e->generation;
    dg[i].max_version = gossip_max_version(e);
    if (e->is_self || addr_of(e) == NULL || is_left(e)) continue;
    if (e->alive) live[nlive++] = addr_of(e);
    else dead[ndead++] = addr_of(e);
  }
  /* a random live peer; maybe an unreachable one; maybe a seed */
  int to_seed = 0;
  if (nlive) {
    const char *to = live[rnd(g) % nlive];
    to_seed = is_seed(g, to);
    send_syn(g, to, dg);
  }
  if (ndead && rnd01(g) < (double)ndead / (double)(nlive + 1))
    send_syn(g, dead[rnd(g) % ndead], dg);
  if (g->nseeds && !to_seed) {
    if (nlive == 0 || rnd01(g) < (double)g->nseeds / (double)(nlive + ndead))
      send_syn(g, g->seeds[rnd(g) % g->nseeds], dg);
  }
  /* failure detection */
  for (size_t i = 0; i < g->n; i++) {
    gossip_endpoint *e = g->eps[i];
    if (!e->is_self && e->alive && fd_phi(&e->fd, now_ns) > g->phi_threshold) {
      e->alive = 0;
      event(g, e->host_id, GOSSIP_EV_DOWN);
    }
  }
out:
  free(dg);
  free(live);
  free(dead);
}

void gossip_push_self(gossip *g) {
  gossip_delta d;
  make_delta(g->self, 0, &d);
  gossip_msg m = {.type = GOSSIP_ACK2, .cluster = g->cluster, .ndeltas = 1, .deltas = &d};
  for (size_t i = 0; i < g->n; i++) {
    gossip_endpoint *e = g->eps[i];
    if (!e->is_self && e->alive && addr_of(e) && !is_left(e)) send_msg(g, addr_of(e), &m);
  }
}

static void on_syn(gossip *g, const char *from, const gossip_msg *m) {
  size_t cap = m->ndigests + g->n;
  gossip_digest *req = malloc((cap ? cap : 1) * sizeof *req);
  gossip_delta *deltas = malloc((cap ? cap : 1) * sizeof *deltas);
  char *mentioned = calloc(g->n ? g->n : 1, 1);
  if (req == NULL || deltas == NULL || mentioned == NULL) goto out;
  size_t nreq = 0, ndel = 0;
  for (size_t i = 0; i < m->ndigests; i++) {
    const gossip_digest *d = &m->digests[i];
    if (gossip_is_removed(g, d->host_id, d->generation)) continue;
    gossip_endpoint *e = NULL;
    size_t j = lower_bound(g, d->host_id);
    if (j < g->n && !strcmp(g->eps[j]->host_id, d->host_id)) {
      e = g->eps[j];
      mentioned[j] = 1;
    }
    if (e == NULL || d->generation > e->generation) {
      req[nreq] = *d;
      req[nreq++].max_version = 0;
    } else if (d->generation < e->generation) {
      make_delta(e, 0, &deltas[ndel++]);
    } else {
      uint64_t mine = gossip_max_version(e);
      if (d->max_version > mine) {
        req[nreq] = *d;
        req[nreq++].max_version = mine;
      } else if (d->max_version < mine) {
        make_delta(e, d->max_version, &deltas[ndel++]);
      }
    }
  }
  /* what the sender did not mention at all */
  for (size_t j = 0; j < g->n; j++)
    if (!mentioned[j]) make_delta(g->eps[j], 0, &deltas[ndel++]);
  gossip_msg ack = {.type = GOSSIP_ACK, .cluster = g->cluster, .ndigests = nreq,
                    .digests = req, .ndeltas = ndel, .deltas = deltas};
  send_msg(g, from, &ack);
out:
  free(req);
  free(deltas);
  free(mentioned);
}

static void on_ack(gossip *g, const char *from, const gossip_msg *m, uint64_t now_ns) {
  for (size_t i = 0; i < m->ndeltas; i++) apply_delta(g, &m->deltas[i], now_ns);
  if (m->ndigests == 0) return;
  gossip_delta *deltas = malloc(m->ndigests * sizeof *deltas);
  if (deltas == NULL) return;
  size_t n = 0;
  for (size_t i = 0; i < m->ndigests; i++) {
    const gossip_digest *r = &m->digests[i];
    gossip_endpoint *e = find(g, r->host_id);
    if (e == NULL || e->generation < r->generation) continue;
    make_delta(e, e->generation == r->generation ? r->max_version : 0, &deltas[n++]);
  }
  gossip_msg ack2 = {.type = GOSSIP_ACK2, .cluster = g->cluster, .ndeltas = n,
                     .deltas = deltas};
  if (n) send_msg(g, from, &ack2);
  free(deltas);
}

void gossip_receive(gossip *g, const char *from, const gossip_msg *m,
                    uint64_t now_ns) {
  if (m->cluster && strcmp(m->cluster, g->cluster) != 0) return;
  switch (m->type) {
  case GOSSIP_SYN: on_syn(g, from, m); break;
  case GOSSIP_ACK: on_ack(g, from, m, now_ns); break;
  case GOSSIP_ACK2:
    for (size_t i = 0; i < m->ndeltas; i++) apply_delta(g, &m->deltas[i], now_ns);
    break;
  }
}
