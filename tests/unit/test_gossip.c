/* Unit tests of the gossip merge rules, two or three instances wired by
** hand: what a round carries, versions, generations, up/down marking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "gossip.h"
#include "wire_peer.h"
#include "testutil.h"

#define SEC 1000000000ull

/* The last message sent by an instance, deep-copied. */
typedef struct box {
  char to[64];
  gossip_msg m;
  gossip_digest dg[64];
  gossip_delta dl[64];
  char vals[64][GK_COUNT][128];
  int sent;
  int events[8];
} box;

static void cap_send(void *arg, const char *to, const gossip_msg *m) {
  box *b = arg;
  snprintf(b->to, sizeof b->to, "%s", to);
  b->m = *m;
  b->m.digests = b->dg;
  b->m.deltas = b->dl;
  if (m->ndigests) memcpy(b->dg, m->digests, m->ndigests * sizeof *b->dg);
  for (size_t i = 0; i < m->ndeltas; i++) {
    b->dl[i] = m->deltas[i];
    for (size_t k = 0; k < m->deltas[i].nitems; k++) {
      snprintf(b->vals[i][k], 128, "%s", m->deltas[i].items[k].value);
      b->dl[i].items[k].value = b->vals[i][k];
    }
  }
  b->sent++;
}

static void cap_event(void *arg, const char *host, int ev) {
  box *b = arg;
  (void)host;
  b->events[ev]++;
}

static uint64_t wall(void *arg) {
  (void)arg;
  return 1000000;
}

static gossip *make(const char *host, const char *addr, const char *seed, uint64_t gen, box *b) {
  gossip_config cfg = {.cluster = "t", .host_id = host, .generation = gen, .peer_addr = addr,
                       .nseeds = seed ? 1 : 0, .seeds = {seed}, .rng_seed = 42};
  gossip_io io = {.arg = b, .send = cap_send, .event = cap_event, .wall_s = wall};
  gossip *g = NULL;
  CU_ASSERT_EQUAL_FATAL(gossip_new(&cfg, &io, 0, &g), 0);
  gossip_set_local(g, GK_STATUS, "normal");
  return g;
}

/* Delivers b's last message to g as coming from `from`. */
static void deliver(gossip *g, const char *from, box *b, uint64_t now) {
  CU_ASSERT_FATAL(b->sent > 0);
  gossip_receive(g, from, &b->m, now);
}

static void test_round_spreads_state(void) {
  box ba = {0}, bb = {0};
  gossip *a = make("A", "a:1", "b:1", 10, &ba);
  gossip *b = make("B", "b:1", NULL, 20, &bb);
  gossip_set_local(a, GK_DC, "dc1");
  gossip_tick(a, 1 * SEC);                   /* A knows no live peer: SYN to the seed */
  CU_ASSERT_STRING_EQUAL(ba.to, "b:1");
  CU_ASSERT_EQUAL(ba.m.type, GOSSIP_SYN);
  CU_ASSERT_EQUAL(ba.m.ndigests, 1);
  deliver(b, "a:1", &ba, 1 * SEC);            /* B: ACK asking for all of A, giving B */
  CU_ASSERT_EQUAL(bb.m.type, GOSSIP_ACK);
  CU_ASSERT_EQUAL(bb.m.ndigests, 1);
  CU_ASSERT_STRING_EQUAL(bb.m.digests[0].host_id, "A");
  CU_ASSERT_EQUAL(bb.m.digests[0].max_version, 0);
  CU_ASSERT_EQUAL(bb.m.ndeltas, 1);
  CU_ASSERT_STRING_EQUAL(bb.m.deltas[0].host_id, "B");
  deliver(a, "b:1", &bb, 1 * SEC);            /* A learns B, answers ACK2 with itself */
  CU_ASSERT_EQUAL(ba.m.type, GOSSIP_ACK2);
  CU_ASSERT_EQUAL(ba.m.ndeltas, 1);
  deliver(b, "a:1", &ba, 1 * SEC);
  const gossip_endpoint *ea = gossip_find(b, "A");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ea);
  CU_ASSERT_STRING_EQUAL(ea->states[GK_DC].value, "dc1");
  CU_ASSERT_EQUAL(ea->generation, 10);
  /* heard of, not yet heard from: down until a newer heartbeat */
  CU_ASSERT_EQUAL(ea->alive, 0);
  CU_ASSERT_EQUAL(bb.events[GOSSIP_EV_JOIN], 1);

  /* next round: only what changed travels (B already has A's DC) */
  gossip_tick(a, 2 * SEC);
  deliver(b, "a:1", &ba, 2 * SEC);
  CU_ASSERT_EQUAL(bb.m.ndigests, 1);          /* B asks for A's news since what it has */
  CU_ASSERT(bb.m.digests[0].max_version > 0);
  deliver(a, "b:1", &bb, 2 * SEC);
  CU_ASSERT_EQUAL(ba.m.ndeltas, 1);
  CU_ASSERT_EQUAL(ba.m.deltas[0].nitems, 0);  /* a heartbeat, no state */
  deliver(b, "a:1", &ba, 2 * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "A")->alive, 1);
  CU_ASSERT_EQUAL(bb.events[GOSSIP_EV_UP], 1);

  /* idempotent: the same ACK2 again changes nothing */
  int changes = bb.events[GOSSIP_EV_CHANGE];
  deliver(b, "a:1", &ba, 2 * SEC);
  CU_ASSERT_EQUAL(bb.events[GOSSIP_EV_CHANGE], changes);
  gossip_free(a);
  gossip_free(b);
}

static void test_versions_and_generations(void) {
  box bb = {0};
  gossip *b = make("B", "b:1", NULL, 20, &bb);
  gossip_delta d = {.generation = 5, .heartbeat = 10, .nitems = 1};
  strcpy(d.host_id, "C");
  d.items[0].key = GK_LOAD;
  d.items[0].value = "100";
  d.items[0].version = 7;
  gossip_msg m = {.type = GOSSIP_ACK2, .cluster = "t", .ndeltas = 1, .deltas = &d};
  gossip_receive(b, "x", &m, 1 * SEC);
  CU_ASSERT_STRING_EQUAL(gossip_find(b, "C")->states[GK_LOAD].value, "100");
  /* an older version of a state loses */
  d.items[0].value = "50";
  d.items[0].version = 6;
  gossip_receive(b, "x", &m, 1 * SEC);
  CU_ASSERT_STRING_EQUAL(gossip_find(b, "C")->states[GK_LOAD].value, "100");
  /* an older generation is ignored altogether */
  d.generation = 4;
  d.items[0].version = 99;
  gossip_receive(b, "x", &m, 1 * SEC);
  CU_ASSERT_STRING_EQUAL(gossip_find(b, "C")->states[GK_LOAD].value, "100");
  /* a newer generation replaces everything (a restart) and means alive */
  d.generation = 6;
  d.heartbeat = 1;
  d.items[0].value = "1";
  d.items[0].version = 1;
  gossip_receive(b, "x", &m, 1 * SEC);
  const gossip_endpoint *c = gossip_find(b, "C");
  CU_ASSERT_EQUAL(c->generation, 6);
  CU_ASSERT_STRING_EQUAL(c->states[GK_LOAD].value, "1");
  CU_ASSERT_EQUAL(c->alive, 1);
  CU_ASSERT_EQUAL(bb.events[GOSSIP_EV_RESTART], 1);
  /* absurd generation: more than a year ahead of the wall clock */
  d.generation = 1000000 + GOSSIP_MAX_GENERATION_AHEAD + 1;
  strcpy(d.host_id, "D");
  gossip_receive(b, "x", &m, 1 * SEC);
  CU_ASSERT_PTR_NULL(gossip_find(b, "D"));
  /* state about this node itself from others is ignored */
  strcpy(d.host_id, "B");
  d.generation = 999;
  gossip_receive(b, "x", &m, 1 * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "B")->generation, 20);
  /* our own state: versions only grow, unchanged values keep theirs */
  uint64_t v = gossip_find(b, "B")->states[GK_STATUS].version;
  gossip_set_local(b, GK_STATUS, "normal");
  CU_ASSERT_EQUAL(gossip_find(b, "B")->states[GK_STATUS].version, v);
  gossip_set_local(b, GK_STATUS, "leaving");
  CU_ASSERT(gossip_find(b, "B")->states[GK_STATUS].version > v);
  CU_ASSERT_EQUAL(gossip_forget(b, "C"), 0);
  CU_ASSERT_PTR_NULL(gossip_find(b, "C"));
  CU_ASSERT_EQUAL(gossip_forget(b, "B"), CELLAR_ENOTFOUND);
  gossip_free(b);
}

static void test_silence_marks_down(void) {
  box bb = {0};
  gossip *b = make("B", "b:1", NULL, 20, &bb);
  gossip_delta d = {.generation = 5, .heartbeat = 1};
  strcpy(d.host_id, "C");
  gossip_msg m = {.type = GOSSIP_ACK2, .cluster = "t", .ndeltas = 1, .deltas = &d};
  for (uint64_t t = 1; t <= 30; t++) {
    d.heartbeat = t;
    gossip_receive(b, "x", &m, t * SEC);
    gossip_tick(b, t * SEC);
  }
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 1);
  uint64_t t = 30;
  while (gossip_find(b, "C")->alive && t < 100) gossip_tick(b, ++t * SEC);
  /* exponential phi at threshold 8 with 1 s intervals: ~18.4 s of silence */
  CU_ASSERT(t - 30 >= 18 && t - 30 <= 20);
  CU_ASSERT_EQUAL(bb.events[GOSSIP_EV_DOWN], 1);
  d.heartbeat = 31;
  gossip_receive(b, "x", &m, t * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 1);
  gossip_free(b);
}

/* This node's own pause is not its peers' silence; a peer announcing
** shutdown is down at once and up again when it restarts. */
static void test_local_pause_and_shutdown(void) {
  box bb = {0};
  gossip *b = make("B", "b:1", NULL, 20, &bb);
  gossip_delta d = {.generation = 5, .heartbeat = 1};
  strcpy(d.host_id, "C");
  gossip_msg m = {.type = GOSSIP_ACK2, .cluster = "t", .ndeltas = 1, .deltas = &d};
  uint64_t t;
  for (t = 1; t <= 30; t++) {
    d.heartbeat = t;
    gossip_receive(b, "x", &m, t * SEC);
    gossip_tick(b, t * SEC);
  }
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 1);
  /* B was frozen for 60 s: its first tick after must not convict C */
  t += 60;
  gossip_tick(b, t * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 1);
  CU_ASSERT_EQUAL(bb.events[GOSSIP_EV_DOWN], 0);
  /* but real silence after that still does */
  uint64_t t0 = t;
  while (gossip_find(b, "C")->alive && t < t0 + 60) gossip_tick(b, ++t * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 0);
  /* back, then an announced shutdown: down without waiting */
  d.heartbeat = 100;
  gossip_receive(b, "x", &m, t * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 1);
  d.nitems = 1;
  d.items[0].key = GK_STATUS;
  d.items[0].value = "shutdown";
  d.items[0].version = 101;
  d.heartbeat = 101;
  gossip_receive(b, "x", &m, t * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 0);
  /* a restart (new generation, status normal) brings it back */
  d.generation = 6;
  d.heartbeat = 1;
  d.items[0].value = "normal";
  d.items[0].version = 1;
  gossip_receive(b, "x", &m, t * SEC);
  CU_ASSERT_EQUAL(gossip_find(b, "C")->alive, 1);
  gossip_free(b);
}

/* The peer messages of a real round round-trip through wire_peer; with
** CELLAR_FUZZ_CORPUS=DIR they are also written there as fuzz seeds
** (tests/fuzz/corpus-peer; first byte 0 = gossip, 1 = schema sync). */
static void write_seed(const char *dir, const char *name, uint8_t sel, const uint8_t *p,
                       size_t n) {
  if (dir == NULL) return;
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL) return;
  fputc(sel, f);
  fwrite(p, 1, n, f);
  fclose(f);
}

static void test_wire_round_trip(void) {
  const char *dir = getenv("CELLAR_FUZZ_CORPUS");
  box ba = {0}, bb = {0};
  gossip *a = make("A", "a:1", "b:1", 10, &ba);
  gossip *b = make("B", "b:1", NULL, 20, &bb);
  gossip_set_local(a, GK_TOKENS, "-5,7,9");
  gossip_tick(a, 1 * SEC);
  const char *names[] = {"gossip-syn", "gossip-ack", "gossip-ack2"};
  box *order[] = {&ba, &bb, &ba};
  for (int step = 0; step < 3; step++) {
    box *x = order[step];
    size_t len;
    uint8_t *p = wire_gossip_encode(&x->m, "a:1", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    write_seed(dir, names[step], 0, p, len);
    wire_gossip w;
    CU_ASSERT_EQUAL_FATAL(wire_gossip_decode(p, len, &w), 0);
    CU_ASSERT_EQUAL(w.m.type, x->m.type);
    CU_ASSERT_EQUAL(w.m.ndigests, x->m.ndigests);
    CU_ASSERT_EQUAL(w.m.ndeltas, x->m.ndeltas);
    CU_ASSERT_STRING_EQUAL(w.from, "a:1");
    for (size_t i = 0; i < w.m.ndeltas; i++) {
      CU_ASSERT_STRING_EQUAL(w.m.deltas[i].host_id, x->m.deltas[i].host_id);
      CU_ASSERT_EQUAL(w.m.deltas[i].nitems, x->m.deltas[i].nitems);
    }
    /* deliver the decoded copy, as the node does */
    gossip_receive(step == 1 ? a : b, step == 1 ? "b:1" : "a:1", &w.m, 1 * SEC);
    wire_gossip_free(&w);
    free(p);
    /* garbage never decodes into something half-built */
    uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    CU_ASSERT_EQUAL(wire_gossip_decode(junk, sizeof junk, &w), CELLAR_EPROTO);
  }
  CU_ASSERT_PTR_NOT_NULL(gossip_find(b, "A"));
  CU_ASSERT_STRING_EQUAL(gossip_find(b, "A")->states[GK_TOKENS].value, "-5,7,9");
  /* schema sync */
  const char *v0 = "v1\nname=shop\nreplication=SimpleStrategy:3\nmodified=5\n";
  const char *v1 = "v1\nkeyspace=shop\nname=items\nid=00000000000000ab\npolicy=lww\n";
  wire_record recs[2] = {
    {(const uint8_t *)"schema/ks/shop", 14, (const uint8_t *)v0, strlen(v0)},
    {(const uint8_t *)"schema/tb/shop/items", 20, (const uint8_t *)v1, strlen(v1)}};
  size_t len;
  uint8_t *p = wire_schema_encode("t", "a:1", recs, 2, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  write_seed(dir, "schema-push", 1, p, len);
  wire_schema ws;
  CU_ASSERT_EQUAL_FATAL(wire_schema_decode(p, len, &ws), 0);
  CU_ASSERT_EQUAL(ws.n, 2);
  CU_ASSERT_EQUAL(ws.recs[1].nk, 20);
  CU_ASSERT_EQUAL(memcmp(ws.recs[1].k, "schema/tb/shop/items", 20), 0);
  CU_ASSERT_STRING_EQUAL(ws.cluster, "t");
  wire_schema_free(&ws);
  free(p);
  gossip_free(a);
  gossip_free(b);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"round_spreads_state", test_round_spreads_state},
    {"versions_and_generations", test_versions_and_generations},
    {"silence_marks_down", test_silence_marks_down},
    {"wire_round_trip", test_wire_round_trip},
    {"local_pause_and_shutdown", test_local_pause_and_shutdown},
    {NULL, NULL}};
  return testutil_run("gossip", cases, argc, argv);
}
