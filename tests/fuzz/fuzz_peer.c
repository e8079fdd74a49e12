/*
** fuzz_peer: libFuzzer target for the node-to-node decoders (wire_peer.c)
** and what consumes them. The first byte selects:
**   even: the rest is a GossipMessage; a decoded one is fed to a gossip
**         instance (which answers through a send callback that re-encodes
**         the answer and decodes it again: encode/decode must round-trip);
**   odd:  the rest is a SchemaSync; every decoded record goes through the
**         schema record decoders.
** Nothing may crash, leak or trip a sanitizer.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "gossip.h"
#include "schema.h"
#include "wire_peer.h"

static volatile uint64_t sink;

static void fz_send(void *arg, const char *to, const gossip_msg *m) {
  (void)arg;
  size_t len;
  uint8_t *p = wire_gossip_encode(m, to, &len);
  if (p == NULL) return;
  wire_gossip back;
  if (wire_gossip_decode(p, len, &back) != 0) abort();   /* must round-trip */
  if (back.m.ndigests != m->ndigests || back.m.ndeltas != m->ndeltas) abort();
  wire_gossip_free(&back);
  free(p);
}

static uint64_t fz_wall(void *arg) {
  (void)arg;
  return 1800000000ull;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if ((data[0] & 1) == 0) {
    wire_gossip wg;
    if (wire_gossip_decode(p, n, &wg) != 0) return 0;
    gossip_config cfg = {.cluster = wg.m.cluster, .host_id = "self", .generation = 1,
                         .peer_addr = "127.0.0.1:1", .rng_seed = 7};
    gossip_io io = {.send = fz_send, .wall_s = fz_wall};
    gossip *g = NULL;
    if (gossip_new(&cfg, &io, 1, &g) == 0) {
      gossip_receive(g, "127.0.0.1:2", &wg.m, 2);
      gossip_tick(g, 3);
      gossip_receive(g, "127.0.0.1:2", &wg.m, 4);   /* twice: idempotent */
      gossip_tick(g, 5);
      sink += gossip_count(g);
      gossip_free(g);
    }
    wire_gossip_free(&wg);
  } else {
    wire_schema s;
    if (wire_schema_decode(p, n, &s) != 0) return 0;
    for (size_t i = 0; i < s.n; i++) {
      keyspace_def k;
      table_def t;
      if (schema_decode_keyspace(s.recs[i].v, s.recs[i].nv, &k) == 0) sink += k.ndcs;
      if (schema_decode_table(s.recs[i].v, s.recs[i].nv, &t) == 0) sink += t.id;
    }
    wire_schema_free(&s);
  }
  return 0;
}
