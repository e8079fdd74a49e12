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
#include "storage.h"

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

/* ------------------------------------------------------ replication */

/* REPLICA_APPLY. Decoded entries point into pb; fwd strings too. */
typedef struct wire_mutation {
  uint64_t id;
  const char *from, *cluster;
  size_t n;
  storage_entry *e;            /* malloc'd array */
  size_t nfwd;
  const char **fwd;            /* malloc'd array */
  void *pb;
} wire_mutation;

uint8_t *wire_mutation_encode(uint64_t id, const char *from, const char *cluster,
                              const storage_entry *e, size_t n,
                              const char *const *fwd, size_t nfwd, size_t *len);
int wire_mutation_decode(const uint8_t *p, size_t n, wire_mutation *out);
void wire_mutation_free(wire_mutation *m);

/* REPLICA_ACK */
typedef struct wire_ack {
  uint64_t id;
  const char *host_id;
  int code;
  const char *message;
  void *pb;
} wire_ack;

uint8_t *wire_ack_encode(uint64_t id, const char *host_id, int code,
                         const char *message, size_t *len);
int wire_ack_decode(const uint8_t *p, size_t n, wire_ack *out);
void wire_ack_free(wire_ack *a);

/* REPLICA_READ */
typedef struct wire_read {
  uint64_t id;
  const char *from, *cluster;
  uint64_t table_id;
  cbytes pk;
  int has_start, start_exclusive, has_end;
  cbytes start, end;
  uint32_t limit;
  int digest_only;
  void *pb;
} wire_read;

uint8_t *wire_read_encode(const wire_read *r, size_t *len);   /* pb ignored */
int wire_read_decode(const uint8_t *p, size_t n, wire_read *out);
void wire_read_free(wire_read *r);

/* REPLICA_READ_REPLY */
typedef struct wire_read_reply {
  uint64_t id;
  const char *host_id;
  int code;
  const char *message;
  size_t n;
  storage_entry *e;            /* malloc'd array pointing into pb */
  cbytes digest;               /* digest_only answers: 16 bytes */
  int more;
  void *pb;
} wire_read_reply;

uint8_t *wire_read_reply_encode(const wire_read_reply *r, size_t *len);  /* pb ignored */
int wire_read_reply_decode(const uint8_t *p, size_t n, wire_read_reply *out);
void wire_read_reply_free(wire_read_reply *r);

/* STREAM_PULL / STREAM_CHUNK (bootstrap streaming). */
typedef struct wire_pull {
  uint64_t id;
  const char *from, *cluster;
  uint64_t table_id;
  int64_t lo, hi;
  cbytes after_key;
  uint32_t max_bytes;
  void *pb;
} wire_pull;

uint8_t *wire_pull_encode(const wire_pull *w, size_t *len);   /* pb ignored */
int wire_pull_decode(const uint8_t *p, size_t n, wire_pull *out);
void wire_pull_free(wire_pull *w);

typedef struct wire_chunk {
  uint64_t id;
  const char *host_id;
  int code;
  const char *message;
  size_t n;
  storage_entry *e;            /* malloc'd array pointing into pb */
  int done;
  void *pb;
} wire_chunk;

uint8_t *wire_chunk_encode(const wire_chunk *w, size_t *len);  /* pb ignored */
int wire_chunk_decode(const uint8_t *p, size_t n, wire_chunk *out);
void wire_chunk_free(wire_chunk *w);

/* STREAM_ORDER / STREAM_ORDER_DONE (decommission, removenode). */
typedef struct wire_range {
  uint64_t table_id;
  int64_t lo, hi;
  const char *source;
} wire_range;

typedef struct wire_order {
  uint64_t id;
  const char *from, *cluster;
  size_t n;
  wire_range *r;               /* malloc'd array; strings point into pb */
  void *pb;
} wire_order;

uint8_t *wire_order_encode(const wire_order *w, size_t *len);   /* pb ignored */
/* 0 or CELLAR_EPROTO (malformed, a range with lo > hi or lo = INT64_MIN). */
int wire_order_decode(const uint8_t *p, size_t n, wire_order *out);
void wire_order_free(wire_order *w);

typedef struct wire_order_done {
  uint64_t id;
  const char *host_id;
  int code;
  const char *message;
  uint64_t entries;
  void *pb;
} wire_order_done;

uint8_t *wire_order_done_encode(const wire_order_done *w, size_t *len);  /* pb ignored */
int wire_order_done_decode(const uint8_t *p, size_t n, wire_order_done *out);
void wire_order_done_free(wire_order_done *w);

/* MERKLE_REQUEST / REPAIR_ROWS, MERKLE_REPLY / REPAIR_ROWS_REPLY
** (anti-entropy repair, docs/repair.md). */
typedef struct wire_repair_req {
  uint64_t id;
  const char *from, *cluster;
  uint64_t table_id;
  size_t n;
  int64_t (*r)[2];             /* malloc'd array of {lo, hi} */
  unsigned depth;              /* MERKLE_REQUEST: least tree depth */
  void *pb;
} wire_repair_req;

uint8_t *wire_repair_req_encode(const wire_repair_req *w, size_t *len);  /* pb ignored */
/* 0 or CELLAR_EPROTO (malformed, a range with lo > hi or lo = INT64_MIN). */
int wire_repair_req_decode(const uint8_t *p, size_t n, wire_repair_req *out);
void wire_repair_req_free(wire_repair_req *w);

typedef struct wire_part_digest {
  int64_t token;
  cbytes key;                  /* the partition's id (repair: a digest of
                                  its key); points into pb (decoded) */
  uint64_t digest, bytes, rows;
} wire_part_digest;

typedef struct wire_repair_reply {
  uint64_t id;
  uint64_t table_id;           /* the request's, echoed */
  const char *host_id;
  int code;
  const char *message;
  cbytes tree;
  size_t n;
  wire_part_digest *parts;     /* malloc'd array (decoded) */
  void *pb;
} wire_repair_reply;

uint8_t *wire_repair_reply_encode(const wire_repair_reply *w, size_t *len);  /* pb ignored */
int wire_repair_reply_decode(const uint8_t *p, size_t n, wire_repair_reply *out);
void wire_repair_reply_free(wire_repair_reply *w);

#endif
