/*
** Deterministic simulation of gossip and failure detection over many nodes.
**
** One process, one simulated clock, one event queue: ticks (every node every
** second, with a random phase) and message deliveries (delay 1..50 ms plus
** jitter). The network can drop messages, partition nodes into two sides,
** and pause or kill nodes. Everything random comes from one seed
** (SIM_SEED, default 1): a failing run prints the command that replays it.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gossip.h"
#include "testutil.h"

#define MS 1000000ull
#define SEC 1000000000ull

typedef struct ev {
  uint64_t at;
  uint64_t seq;
  int kind;                    /* 0 tick, 1 message */
  int to, from;
  gossip_msg *msg;             /* deep copy, owned by the event */
} ev;

typedef struct simnode {
  gossip *g;
  char addr[16];
  char host[16];
  int dead, paused, side;
} simnode;

typedef struct sim {
  uint64_t now, seq, rng;
  size_t nnodes;
  simnode *nodes;
  ev *heap;
  size_t nheap, capheap;
  double drop;
  int partitioned;
  uint64_t jitter_ms;
  uint64_t delivered, dropped;
  /* event counters for assertions */
  long downs, ups;
  int watch;                   /* node index watched by the event callback */
} sim;

static sim S;
static uint64_t seed = 1;

static uint64_t rnd(void) {
  uint64_t z = (S.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int ev_less(const ev *a, const ev *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(ev e) {
  if (S.nheap == S.capheap) {
    S.capheap = S.capheap ? S.capheap * 2 : 1024;
    S.heap = realloc(S.heap, S.capheap * sizeof *S.heap);
  }
  e.seq = S.seq++;
  size_t i = S.nheap++;
  while (i > 0 && ev_less(&e, &S.heap[(i - 1) / 2])) {
    S.heap[i] = S.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  S.heap[i] = e;
}

static ev pop(void) {
  ev top = S.heap[0];
  ev last = S.heap[--S.nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= S.nheap) break;
    if (c + 1 < S.nheap && ev_less(&S.heap[c + 1], &S.heap[c])) c++;
    if (!ev_less(&S.heap[c], &last)) break;
    S.heap[i] = S.heap[c];
    i = c;
  }
  if (S.nheap) S.heap[i] = last;
  return top;
}

static gossip_msg *copy_msg(const gossip_msg *m) {
  gossip_msg *c = calloc(1, sizeof *c);
  c->type = m->type;
  c->cluster = strdup(m->cluster ? m->cluster : "");
  c->ndigests = m->ndigests;
  c->digests = malloc((m->ndigests + 1) * sizeof *c->digests);
  if (m->ndigests) memcpy(c->digests, m->digests, m->ndigests * sizeof *c->digests);
  c->ndeltas = m->ndeltas;
  c->deltas = malloc((m->ndeltas + 1) * sizeof *c->deltas);
  if (m->ndeltas) memcpy(c->deltas, m->deltas, m->ndeltas * sizeof *c->deltas);
  for (size_t i = 0; i < m->ndeltas; i++)
    for (size_t k = 0; k < m->deltas[i].nitems; k++)
      c->deltas[i].items[k].value = strdup(m->deltas[i].items[k].value);
  return c;
}

static void free_msg(gossip_msg *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->ndeltas; i++)
    for (size_t k = 0; k < m->deltas[i].nitems; k++) free((char *)m->deltas[i].items[k].value);
  free((char *)m->cluster);
  free(m->digests);
  free(m->deltas);
  free(m);
}

static int index_of_addr(const char *addr) {
  return atoi(addr + 1);
}

static void sim_send(void *arg, const char *to, const gossip_msg *m) {
  int from = (int)(intptr_t)arg;
  int t = index_of_addr(to);
  if (t < 0 || (size_t)t >= S.nnodes) return;
  if ((double)(rnd() % 1000000) / 1e6 < S.drop ||
      (S.partitioned && S.nodes[from].side != S.nodes[t].side)) {
    S.dropped++;
    return;
  }
  uint64_t delay = (1 + rnd() % 50) * MS + (S.jitter_ms ? (rnd() % S.jitter_ms) * MS : 0);
  push((ev){.at = S.now + delay, .kind = 1, .to = t, .from = from, .msg = copy_msg(m)});
}

static void sim_event(void *arg, const char *host, int evk) {
  (void)host;
  int at = (int)(intptr_t)arg;
  (void)at;
  if (evk == GOSSIP_EV_DOWN) S.downs++;
  if (evk == GOSSIP_EV_UP) S.ups++;
}

static uint64_t sim_wall(void *arg) {
  (void)arg;
  return 1700000000ull + S.now / SEC;
}

static void node_start(size_t i, uint64_t generation) {
  simnode *n = &S.nodes[i];
  snprintf(n->addr, sizeof n->addr, "n%zu", i);
  snprintf(n->host, sizeof n->host, "host-%zu", i);
  gossip_config cfg = {.cluster = "sim", .host_id = n->host, .generation = generation,
                       .peer_addr = n->addr, .nseeds = 3,
                       .seeds = {"n0", "n1", "n2"}, .rng_seed = seed * 1000003 + i};
  gossip_io io = {.arg = (void *)(intptr_t)i, .send = sim_send, .event = sim_event,
                  .wall_s = sim_wall};
  CU_ASSERT_EQUAL_FATAL(gossip_new(&cfg, &io, S.now, &n->g), 0);
  gossip_set_local(n->g, GK_STATUS, "normal");
  gossip_set_local(n->g, GK_DC, i % 2 ? "dc2" : "dc1");
  n->dead = n->paused = 0;
  push((ev){.at = S.now + (rnd() % 1000) * MS, .kind = 0, .to = (int)i});
}

static void sim_init(size_t nnodes) {
  memset(&S, 0, sizeof S);
  S.rng = seed;
  S.nnodes = nnodes;
  S.nodes = calloc(nnodes, sizeof *S.nodes);
}

static void sim_free(void) {
  while (S.nheap) free_msg(pop().msg);
  for (size_t i = 0; i < S.nnodes; i++) gossip_free(S.nodes[i].g);
  free(S.nodes);
  free(S.heap);
  memset(&S, 0, sizeof S);
}

/* Runs events until time `until`. */
static void run_until(uint64_t until) {
  while (S.nheap && S.heap[0].at <= until) {
    ev e = pop();
    S.now = e.at;
    simnode *n = &S.nodes[e.to];
    if (e.kind == 0) {
      if (n->dead || n->g == NULL) continue;
      if (!n->paused) gossip_tick(n->g, S.now);
      push((ev){.at = S.now + SEC, .kind = 0, .to = e.to});
    } else {
      if (!n->dead && !n->paused && n->g) {
        S.delivered++;
        gossip_receive(n->g, S.nodes[e.from].addr, e.msg, S.now);
      }
      free_msg(e.msg);
    }
  }
  S.now = until;
}

/* How many live nodes know host and see it as up (or down). */
static size_t count_view(const char *host, int want_up) {
  size_t n = 0;
  for (size_t i = 0; i < S.nnodes; i++) {
    if (S.nodes[i].dead || S.nodes[i].g == NULL || !strcmp(S.nodes[i].host, host)) continue;
    const gossip_endpoint *e = gossip_find(S.nodes[i].g, host);
    if (e && e->alive == want_up) n++;
  }
  return n;
}

static size_t live_nodes_except(const char *host) {
  size_t n = 0;
  for (size_t i = 0; i < S.nnodes; i++)
    if (!S.nodes[i].dead && S.nodes[i].g && strcmp(S.nodes[i].host, host)) n++;
  return n;
}

/* Every live node sees every other live node up. */
static int converged(void) {
  for (size_t i = 0; i < S.nnodes; i++) {
    if (S.nodes[i].dead || !S.nodes[i].g) continue;
    if (count_view(S.nodes[i].host, 1) != live_nodes_except(S.nodes[i].host)) return 0;
  }
  return 1;
}

static void fail_hint(void) {
  printf("\n  replay: SIM_SEED=%llu %s\n", (unsigned long long)seed, "tests/sim/test_gossip_sim");
}

/* 200 nodes form one view; a new node's state reaches everyone in O(log N)
** rounds */
static void test_spread_is_logarithmic(void) {
  const size_t N = 200;
  sim_init(N + 1);
  for (size_t i = 0; i < N; i++) node_start(i, 1);
  uint64_t t = 0;
  while (!converged() && t < 120 * SEC) run_until(t += SEC);
  printf("\n  %zu nodes: one view, all up, after %.0f s", N, (double)t / SEC);
  CU_ASSERT(converged());
  if (!converged()) fail_hint();

  node_start(N, 1);
  uint64_t t0 = S.now;
  size_t rounds = 0;
  while (count_view(S.nodes[N].host, 1) + count_view(S.nodes[N].host, 0) < N && rounds < 60) {
    run_until(S.now + SEC);
    rounds++;
  }
  size_t known = count_view(S.nodes[N].host, 1) + count_view(S.nodes[N].host, 0);
  double bound = 3 * log2((double)N);
  printf("\n  new node known by all %zu nodes after %zu rounds (log2 N = %.1f, bound %.0f)",
         N, rounds, log2((double)N), bound);
  CU_ASSERT_EQUAL(known, N);
  CU_ASSERT((double)rounds <= bound);
  while (count_view(S.nodes[N].host, 1) < N && S.now - t0 < 60 * SEC) run_until(S.now + SEC);
  printf("\n  and seen up by all after %.0f s\n", (double)(S.now - t0) / SEC);
  CU_ASSERT_EQUAL(count_view(S.nodes[N].host, 1), N);
  if (rounds > bound || known != N) fail_hint();
  sim_free();
}

/* A killed node is marked down everywhere; a paused one comes back up. */
static void test_kill_and_pause(void) {
  const size_t N = 200;
  sim_init(N);
  for (size_t i = 0; i < N; i++) node_start(i, 1);
  uint64_t t = 0;
  while (!converged() && t < 120 * SEC) run_until(t += SEC);
  CU_ASSERT_FATAL(converged());
  run_until(S.now + 30 * SEC);   /* let the detectors learn the intervals */

  S.nodes[7].dead = 1;
  uint64_t t0 = S.now;
  while (count_view("host-7", 0) < N - 1 && S.now - t0 < 120 * SEC) run_until(S.now + SEC);
  printf("\n  killed node marked down by all %zu others after %.0f s", N - 1,
         (double)(S.now - t0) / SEC);
  CU_ASSERT_EQUAL(count_view("host-7", 0), N - 1);
  CU_ASSERT(S.now - t0 <= 60 * SEC);

  S.nodes[9].paused = 1;
  t0 = S.now;
  while (count_view("host-9", 0) < N - 2 && S.now - t0 < 120 * SEC) run_until(S.now + SEC);
  printf("\n  paused node down everywhere after %.0f s", (double)(S.now - t0) / SEC);
  CU_ASSERT_EQUAL(count_view("host-9", 0), N - 2);
  S.nodes[9].paused = 0;
  t0 = S.now;
  while (count_view("host-9", 1) < N - 2 && S.now - t0 < 60 * SEC) run_until(S.now + SEC);
  printf("\n  resumed node up everywhere after %.0f s\n", (double)(S.now - t0) / SEC);
  CU_ASSERT_EQUAL(count_view("host-9", 1), N - 2);
  sim_free();
}

/* Healthy network with jitter and 1% loss: no node is ever marked down. */
static void test_no_false_down(void) {
  const size_t N = 200;
  sim_init(N);
  S.jitter_ms = 400;
  S.drop = 0.01;
  for (size_t i = 0; i < N; i++) node_start(i, 1);
  uint64_t t = 0;
  while (!converged() && t < 120 * SEC) run_until(t += SEC);
  CU_ASSERT_FATAL(converged());
  long downs0 = S.downs;
  run_until(S.now + 300 * SEC);
  double maxphi = 0;
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < N; j++) {
      double p = gossip_phi(S.nodes[i].g, S.nodes[j].host, S.now);
      if (p > maxphi) maxphi = p;
    }
  printf("\n  5 simulated minutes, 400 ms jitter, 1%% loss: %ld false down-marks, "
         "phi now at most %.2f (%llu messages, %llu dropped)\n", S.downs - downs0, maxphi,
         (unsigned long long)S.delivered, (unsigned long long)S.dropped);
  CU_ASSERT_EQUAL(S.downs - downs0, 0);
  if (S.downs != downs0) fail_hint();
  sim_free();
}

/* Two sides cut apart mark each other down, then heal into one view. */
static void test_partition_heals(void) {
  const size_t N = 200;
  sim_init(N);
  for (size_t i = 0; i < N; i++) node_start(i, 1);
  uint64_t t = 0;
  while (!converged() && t < 120 * SEC) run_until(t += SEC);
  CU_ASSERT_FATAL(converged());
  run_until(S.now + 20 * SEC);
  /* seeds n0, n1, n2 split across the sides */
  for (size_t i = 0; i < N; i++) S.nodes[i].side = i % 2;
  S.partitioned = 1;
  run_until(S.now + 90 * SEC);
  size_t cross_down = count_view("host-0", 0);   /* host-0 is on side 0 */
  printf("\n  after 90 s of partition: %zu nodes see host-0 down", cross_down);
  CU_ASSERT(cross_down >= N / 2 - 1);
  S.partitioned = 0;
  uint64_t t0 = S.now;
  while (!converged() && S.now - t0 < 120 * SEC) run_until(S.now + SEC);
  printf("\n  healed into one view after %.0f s\n", (double)(S.now - t0) / SEC);
  CU_ASSERT(converged());
  if (!converged()) fail_hint();
  sim_free();
}

/* A restart is a new generation: everyone takes the new state; absurd
** generations and foreign clusters are refused. */
static void test_restart_bumps_generation(void) {
  const size_t N = 20;
  sim_init(N);
  for (size_t i = 0; i < N; i++) node_start(i, 1);
  uint64_t t = 0;
  while (!converged() && t < 60 * SEC) run_until(t += SEC);
  CU_ASSERT_FATAL(converged());
  /* node 5 restarts with a new generation and a new state */
  gossip_free(S.nodes[5].g);
  S.nodes[5].g = NULL;
  node_start(5, 2);
  gossip_set_local(S.nodes[5].g, GK_LOAD, "12345");
  run_until(S.now + 20 * SEC);
  size_t seen = 0;
  for (size_t i = 0; i < N; i++) {
    if (i == 5) continue;
    const gossip_endpoint *e = gossip_find(S.nodes[i].g, "host-5");
    if (e && e->generation == 2 && e->states[GK_LOAD].value &&
        !strcmp(e->states[GK_LOAD].value, "12345") && e->alive)
      seen++;
  }
  CU_ASSERT_EQUAL(seen, N - 1);
  /* a generation a decade ahead is refused */
  gossip_delta d = {.generation = 1700000000ull + 10ull * 365 * 86400, .heartbeat = 5};
  strcpy(d.host_id, "host-evil");
  gossip_msg m = {.type = GOSSIP_ACK2, .cluster = "sim", .ndeltas = 1, .deltas = &d};
  gossip_receive(S.nodes[0].g, "n1", &m, S.now);
  CU_ASSERT_PTR_NULL(gossip_find(S.nodes[0].g, "host-evil"));
  /* another cluster's messages are ignored */
  d.generation = 3;
  m.cluster = "other";
  gossip_receive(S.nodes[0].g, "n1", &m, S.now);
  CU_ASSERT_PTR_NULL(gossip_find(S.nodes[0].g, "host-evil"));
  m.cluster = "sim";
  gossip_receive(S.nodes[0].g, "n1", &m, S.now);
  CU_ASSERT_PTR_NOT_NULL(gossip_find(S.nodes[0].g, "host-evil"));
  sim_free();
}

int main(int argc, char **argv) {
  const char *s = getenv("SIM_SEED");
  if (s) seed = strtoull(s, NULL, 10);
  printf("gossip simulation, SIM_SEED=%llu\n", (unsigned long long)seed);
  static const test_case cases[] = {
    {"spread_is_logarithmic", test_spread_is_logarithmic},
    {"kill_and_pause", test_kill_and_pause},
    {"no_false_down", test_no_false_down},
    {"partition_heals", test_partition_heals},
    {"restart_bumps_generation", test_restart_bumps_generation},
    {NULL, NULL}};
  return testutil_run("gossip_sim", cases, argc, argv);
}
