/*
** wire_peer: node-to-node payloads (gossip, schema sync) <-> the structs of
** the modules that use them. Like wire.c for the client protocol, this is
** the only place their protobuf-c types appear.
*/
#ifndef CELLAR_WIRE_PEER_H
#define CELLAR_WIRE_PEER_H

#include <stddef.h>
#include <stdint.h>
#include "gossip.h"

/* Packs m (and the sender's peer address) into a malloc'd payload; caller
** frees with free(). NULL when out of memory. */
uint8_t *wire_gossip_encode(const gossip_msg *m, const char *from, size_t *len);

/* A decoded gossip message: m points into the decoded form, valid until
** wire_gossip_free(). */
typedef struct wire_gossip {
  gossip_msg m;
  const char *from;
  void *pb;
} wire_gossip;

/* 0 or CELLAR_EPROTO (malformed, or limits exceeded: at most 10,000
** digests or deltas, host ids and values within their sizes). */
int wire_gossip_decode(const uint8_t *p, size_t n, wire_gossip *out);
void wire_gossip_free(wire_gossip *g);

/* Schema sync: a list of (key, value) records. */
typedef struct wire_record {
  const uint8_t *k;
  size_t nk;
  const uint8_t *v;
  size_t nv;
} wire_record;

uint8_t *wire_schema_encode(const char *cluster, const char *from,
                            const wire_record *recs, size_t n, size_t *len);

typedef struct wire_schema {
  const char *cluster, *from;
  size_t n;
  wire_record *recs;           /* malloc'd, pointing into pb */
  void *pb;
} wire_schema;

int wire_schema_decode(const uint8_t *p, size_t n, wire_schema *out);
void wire_schema_free(wire_schema *s);

#endif
