/*
** fuzz_peer: libFuzzer target for the node-to-node decoders (wire_peer.c)
** and what consumes them. The first byte selects:
**   even: the rest is a GossipMessage; a decoded one is fed to a gossip
**         instance (which answers through a send callback that re-encodes
**         the answer and decodes it again: encode/decode must round-trip);
**   odd:  the rest is a SchemaSync; every decoded record goes through the
**         schema record decoders;
**   except 43, 45 (repair, the frame types MERKLE_REQUEST and REPAIR_ROWS):
**         a RepairRequest; 44, 46 (MERKLE_REPLY, REPAIR_ROWS_REPLY): a
**         RepairReply whose tree goes through merkle_decode, and a decoded
**         tree must diff empty against itself and re-encode to the same
**         bytes; 47: the rest is a bare Merkle tree encoding;
**   48: a FORWARD_REPLY, 49: a FORWARD_WRITE (siblings tables' forwarded
**         writes, wire.h): a decoded request must re-encode and decode to
**         the same request.
** Nothing may crash, leak or trip a sanitizer.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "gossip.h"
#include "merkle.h"
#include "schema.h"
#include "wire.h"
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

/* A tree that decodes must be self-consistent and round-trip. */
static void fz_tree(const uint8_t *p, size_t n) {
  merkle_tree t;
  if (merkle_decode(p, n, &t) != 0) return;
  size_t *d = NULL, nd = 1, len = 0;
  if (merkle_diff(&t, &t, &d, &nd, NULL) != 0 || nd != 0) abort();
  uint8_t *e = merkle_encode(&t, &len);
  if (e == NULL || len != n || memcmp(e, p, n)) abort();
  free(e);
  for (size_t i = 0; i < ((size_t)1 << t.depth); i++) {
    int64_t lo, hi;
    merkle_leaf_range(&t, i, &lo, &hi);
    if (lo <= hi && merkle_leaf_of(&t, lo) != i) abort();
  }
  sink += merkle_root(&t);
  if (merkle_truncate(&t, t.depth / 2) != 0) abort();
  merkle_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (data[0] == 43 || data[0] == 45) {
    wire_repair_req q;
    if (wire_repair_req_decode(p, n, &q) != 0) return 0;
    for (size_t i = 0; i < q.n; i++)
      if (q.r[i][0] > q.r[i][1] || q.r[i][0] == INT64_MIN) abort();
    sink += q.table_id + q.depth + strlen(q.from) + strlen(q.cluster);
    wire_repair_req_free(&q);
  } else if (data[0] == 44 || data[0] == 46) {
    wire_repair_reply a;
    if (wire_repair_reply_decode(p, n, &a) != 0) return 0;
    fz_tree(a.tree.p, a.tree.n);
    sink += a.table_id;
    for (size_t i = 0; i < a.n; i++) sink += a.parts[i].digest + a.parts[i].key.n;
    wire_repair_reply_free(&a);
  } else if (data[0] == 47) {
    fz_tree(p, n);
  } else if (data[0] == 48) {
    uint64_t fid;
    cbytes body;
    if (wire_forward_reply_decode(p, n, &fid, &body) == 0) sink += fid + body.n;
  } else if (data[0] == 49) {
    uint64_t fid, fid2;
    cbytes cl, from, cl2, from2;
    request *r = NULL, *r2 = NULL;
    char err[128];
    if (wire_forward_decode(p, n, &fid, &cl, &from, &r, err, sizeof err) != 0) return 0;
    char cs[256], fs[256];
    memcpy(cs, cl.p, cl.n);
    cs[cl.n] = '\0';
    memcpy(fs, from.p, from.n);
    fs[from.n] = '\0';
    size_t len = 0;
    uint8_t *e = wire_forward_encode(fid, cs, fs, r, &len);
    /* names with a NUL inside shorten on the way back: then no check */
    if (e && strlen(cs) == cl.n && strlen(fs) == from.n) {
      if (wire_forward_decode(e, len, &fid2, &cl2, &from2, &r2, err, sizeof err) != 0 ||
          fid2 != fid || r2->type != r->type || r2->partition.n != r->partition.n ||
          r2->context.n != r->context.n || r2->nrows != r->nrows)
        abort();
      wire_request_free(r2);
    }
    free(e);
    wire_request_free(r);
  } else if ((data[0] & 1) == 0) {
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
