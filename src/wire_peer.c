/* wire_peer: protobuf packing of gossip and schema sync messages. */
#include <stdlib.h>
#include <string.h>
#include "cellar.pb-c.h"
#include "cellar/cellar.h"
#include "wire_peer.h"

#define MAX_ENTRIES 10000

uint8_t *wire_gossip_encode(const gossip_msg *m, const char *from, size_t *len) {
  Cellar__Wire__GossipMessage pm = CELLAR__WIRE__GOSSIP_MESSAGE__INIT;
  pm.type = (uint32_t)m->type;
  pm.cluster = (char *)(m->cluster ? m->cluster : "");
  pm.from = (char *)(from ? from : "");
  size_t nitems = 0;
  for (size_t i = 0; i < m->ndeltas; i++) nitems += m->deltas[i].nitems;
  /* one allocation for every sub-message and pointer array */
  size_t need = m->ndigests * (sizeof(Cellar__Wire__GossipDigest) + sizeof(void *)) +
                m->ndeltas * (sizeof(Cellar__Wire__GossipDelta) + sizeof(void *)) +
                nitems * (sizeof(Cellar__Wire__GossipItem) + sizeof(void *));
  char *mem = malloc(need ? need : 1);
  if (mem == NULL) return NULL;
  char *at = mem;
  Cellar__Wire__GossipDigest **dp = (void *)at;
  at += m->ndigests * sizeof(void *);
  Cellar__Wire__GossipDelta **xp = (void *)at;
  at += m->ndeltas * sizeof(void *);
  Cellar__Wire__GossipItem **ip = (void *)at;
  at += nitems * sizeof(void *);
  for (size_t i = 0; i < m->ndigests; i++) {
    Cellar__Wire__GossipDigest *d = (void *)at;
    at += sizeof *d;
    cellar__wire__gossip_digest__init(d);
    d->host_id = (char *)m->digests[i].host_id;
    d->generation = m->digests[i].generation;
    d->max_version = m->digests[i].max_version;
    dp[i] = d;
  }
  size_t k = 0;
  for (size_t i = 0; i < m->ndeltas; i++) {
    const gossip_delta *src = &m->deltas[i];
    Cellar__Wire__GossipDelta *d = (void *)at;
    at += sizeof *d;
    cellar__wire__gossip_delta__init(d);
    d->host_id = (char *)src->host_id;
    d->generation = src->generation;
    d->heartbeat = src->heartbeat;
    d->n_items = src->nitems;
    d->items = ip + k;
    for (size_t j = 0; j < src->nitems; j++) {
      Cellar__Wire__GossipItem *it = (void *)at;
      at += sizeof *it;
      cellar__wire__gossip_item__init(it);
      it->key = (uint32_t)src->items[j].key;
      it->value = (char *)src->items[j].value;
      it->version = src->items[j].version;
      ip[k++] = it;
    }
    xp[i] = d;
  }
  pm.n_digests = m->ndigests;
  pm.digests = dp;
  pm.n_deltas = m->ndeltas;
  pm.deltas = xp;
  size_t n = cellar__wire__gossip_message__get_packed_size(&pm);
  uint8_t *out = malloc(n ? n : 1);
  if (out) {
    cellar__wire__gossip_message__pack(&pm, out);
    *len = n;
  }
  free(mem);
  return out;
}

int wire_gossip_decode(const uint8_t *p, size_t n, wire_gossip *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__GossipMessage *pm = cellar__wire__gossip_message__unpack(NULL, n, p);
  if (pm == NULL) return CELLAR_EPROTO;
  out->pb = pm;
  if (pm->n_digests > MAX_ENTRIES || pm->n_deltas > MAX_ENTRIES || pm->type < 1 ||
      pm->type > 3)
    goto bad;
  out->m.type = (int)pm->type;
  out->m.cluster = pm->cluster;
  out->from = pm->from;
  out->m.ndigests = pm->n_digests;
  out->m.digests = calloc(pm->n_digests + 1, sizeof *out->m.digests);
  out->m.ndeltas = pm->n_deltas;
  out->m.deltas = calloc(pm->n_deltas + 1, sizeof *out->m.deltas);
  if (out->m.digests == NULL || out->m.deltas == NULL) goto bad;
  for (size_t i = 0; i < pm->n_digests; i++) {
    const Cellar__Wire__GossipDigest *d = pm->digests[i];
    if (strlen(d->host_id) >= GOSSIP_HOST_ID_MAX) goto bad;
    strcpy(out->m.digests[i].host_id, d->host_id);
    out->m.digests[i].generation = d->generation;
    out->m.digests[i].max_version = d->max_version;
  }
  for (size_t i = 0; i < pm->n_deltas; i++) {
    const Cellar__Wire__GossipDelta *d = pm->deltas[i];
    gossip_delta *x = &out->m.deltas[i];
    if (strlen(d->host_id) >= GOSSIP_HOST_ID_MAX || d->n_items > GK_COUNT) goto bad;
    strcpy(x->host_id, d->host_id);
    x->generation = d->generation;
    x->heartbeat = d->heartbeat;
    for (size_t j = 0; j < d->n_items; j++) {
      const Cellar__Wire__GossipItem *it = d->items[j];
      if (it->key >= GK_COUNT || strlen(it->value) > 65536) goto bad;
      x->items[x->nitems].key = (int)it->key;
      x->items[x->nitems].value = it->value;
      x->items[x->nitems].version = it->version;
      x->nitems++;
    }
  }
  return 0;
bad:
  wire_gossip_free(out);
  return CELLAR_EPROTO;
}

void wire_gossip_free(wire_gossip *g) {
  free(g->m.digests);
  free(g->m.deltas);
  if (g->pb) cellar__wire__gossip_message__free_unpacked(g->pb, NULL);
  memset(g, 0, sizeof *g);
}

uint8_t *wire_schema_encode(const char *cluster, const char *from,
                            const wire_record *recs, size_t n, size_t *len) {
  Cellar__Wire__SchemaSync s = CELLAR__WIRE__SCHEMA_SYNC__INIT;
  s.cluster = (char *)(cluster ? cluster : "");
  s.from = (char *)(from ? from : "");
  Cellar__Wire__SchemaRecord *r = calloc(n + 1, sizeof *r);
  Cellar__Wire__SchemaRecord **rp = calloc(n + 1, sizeof *rp);
  uint8_t *out = NULL;
  if (r == NULL || rp == NULL) goto out;
  for (size_t i = 0; i < n; i++) {
    cellar__wire__schema_record__init(&r[i]);
    r[i].key.data = (uint8_t *)recs[i].k;
    r[i].key.len = recs[i].nk;
    r[i].value.data = (uint8_t *)recs[i].v;
    r[i].value.len = recs[i].nv;
    rp[i] = &r[i];
  }
  s.n_records = n;
  s.records = rp;
  size_t sz = cellar__wire__schema_sync__get_packed_size(&s);
  out = malloc(sz ? sz : 1);
  if (out) {
    cellar__wire__schema_sync__pack(&s, out);
    *len = sz;
  }
out:
  free(r);
  free(rp);
  return out;
}

int wire_schema_decode(const uint8_t *p, size_t n, wire_schema *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__SchemaSync *s = cellar__wire__schema_sync__unpack(NULL, n, p);
  if (s == NULL) return CELLAR_EPROTO;
  out->pb = s;
  if (s->n_records > MAX_ENTRIES) {
    wire_schema_free(out);
    return CELLAR_EPROTO;
  }
  out->cluster = s->cluster;
  out->from = s->from;
  out->n = s->n_records;
  out->recs = calloc(s->n_records + 1, sizeof *out->recs);
  if (out->recs == NULL) {
    wire_schema_free(out);
    return CELLAR_ENOMEM;
  }
  for (size_t i = 0; i < s->n_records; i++) {
    out->recs[i].k = s->records[i]->key.data;
    out->recs[i].nk = s->records[i]->key.len;
    out->recs[i].v = s->records[i]->value.data;
    out->recs[i].nv = s->records[i]->value.len;
  }
  return 0;
}

void wire_schema_free(wire_schema *s) {
  free(s->recs);
  if (s->pb) cellar__wire__schema_sync__free_unpacked(s->pb, NULL);
  memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------- replication */

/* Points pb entries at e (no copies); arrays malloc'd by the caller. */
static int entries_to_pb(const storage_entry *e, size_t n, Cellar__Wire__ReplicaEntry **arr,
                         Cellar__Wire__ReplicaEntry ***ptrs) {
  *arr = calloc(n + 1, sizeof **arr);
  *ptrs = calloc(n + 1, sizeof **ptrs);
  if (*arr == NULL || *ptrs == NULL) {
    free(*arr);
    free(*ptrs);
    return CELLAR_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    cellar__wire__replica_entry__init(&(*arr)[i]);
    (*arr)[i].key.data = (uint8_t *)e[i].key.p;
    (*arr)[i].key.len = e[i].key.n;
    (*arr)[i].value.data = (uint8_t *)e[i].value.p;
    (*arr)[i].value.len = e[i].value.n;
    (*ptrs)[i] = &(*arr)[i];
  }
  return 0;
}

static storage_entry *entries_from_pb(Cellar__Wire__ReplicaEntry **in, size_t n) {
  storage_entry *e = calloc(n + 1, sizeof *e);
  if (e == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    e[i].key = CBYTES(in[i]->key.data, in[i]->key.len);
    e[i].value = CBYTES(in[i]->value.data, in[i]->value.len);
  }
  return e;
}

#define PACK_INTO(type, msg, lenp)                                  \
  do {                                                              \
    size_t sz_ = cellar__wire__##type##__get_packed_size(msg);      \
    out = malloc(sz_ ? sz_ : 1);                                    \
    if (out) {                                                      \
      cellar__wire__##type##__pack(msg, out);                       \
      *(lenp) = sz_;                                                \
    }                                                               \
  } while (0)

uint8_t *wire_mutation_encode(uint64_t id, const char *from, const char *cluster,
                              const storage_entry *e, size_t n,
                              const char *const *fwd, size_t nfwd, size_t *len) {
  Cellar__Wire__ReplicaMutation m = CELLAR__WIRE__REPLICA_MUTATION__INIT;
  Cellar__Wire__ReplicaEntry *arr, **ptrs;
  if (entries_to_pb(e, n, &arr, &ptrs)) return NULL;
  m.id = id;
  m.from = (char *)(from ? from : "");
  m.cluster = (char *)(cluster ? cluster : "");
  m.n_entries = n;
  m.entries = ptrs;
  m.n_forward_to = nfwd;
  m.forward_to = (char **)fwd;
  uint8_t *out = NULL;
  PACK_INTO(replica_mutation, &m, len);
  free(arr);
  free(ptrs);
  return out;
}

int wire_mutation_decode(const uint8_t *p, size_t n, wire_mutation *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__ReplicaMutation *m = cellar__wire__replica_mutation__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  if (m->n_forward_to > 64) goto bad;
  out->id = m->id;
  out->from = m->from;
  out->cluster = m->cluster;
  out->n = m->n_entries;
  out->e = entries_from_pb(m->entries, m->n_entries);
  out->nfwd = m->n_forward_to;
  out->fwd = calloc(m->n_forward_to + 1, sizeof *out->fwd);
  if (out->e == NULL || out->fwd == NULL) goto bad;
  for (size_t i = 0; i < m->n_forward_to; i++) out->fwd[i] = m->forward_to[i];
  return 0;
bad:
  wire_mutation_free(out);
  return CELLAR_EPROTO;
}

void wire_mutation_free(wire_mutation *m) {
  free(m->e);
  free(m->fwd);
  if (m->pb) cellar__wire__replica_mutation__free_unpacked(m->pb, NULL);
  memset(m, 0, sizeof *m);
}

uint8_t *wire_ack_encode(uint64_t id, const char *host_id, int code,
                         const char *message, size_t *len) {
  Cellar__Wire__ReplicaAck a = CELLAR__WIRE__REPLICA_ACK__INIT;
  a.id = id;
  a.host_id = (char *)(host_id ? host_id : "");
  a.code = code;
  a.message = (char *)(message ? message : "");
  uint8_t *out = NULL;
  PACK_INTO(replica_ack, &a, len);
  return out;
}

int wire_ack_decode(const uint8_t *p, size_t n, wire_ack *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__ReplicaAck *a = cellar__wire__replica_ack__unpack(NULL, n, p);
  if (a == NULL) return CELLAR_EPROTO;
  out->pb = a;
  out->id = a->id;
  out->host_id = a->host_id;
  out->code = a->code;
  out->message = a->message;
  return 0;
}

void wire_ack_free(wire_ack *a) {
  if (a->pb) cellar__wire__replica_ack__free_unpacked(a->pb, NULL);
  memset(a, 0, sizeof *a);
}

uint8_t *wire_read_encode(const wire_read *r, size_t *len) {
  Cellar__Wire__ReplicaRead m = CELLAR__WIRE__REPLICA_READ__INIT;
  m.id = r->id;
  m.from = (char *)(r->from ? r->from : "");
  m.cluster = (char *)(r->cluster ? r->cluster : "");
  m.table_id = r->table_id;
  m.partition.data = (uint8_t *)r->pk.p;
  m.partition.len = r->pk.n;
  m.has_start = r->has_start;
  m.start.data = (uint8_t *)r->start.p;
  m.start.len = r->start.n;
  m.start_exclusive = r->start_exclusive;
  m.has_end = r->has_end;
  m.end.data = (uint8_t *)r->end.p;
  m.end.len = r->end.n;
  m.limit = r->limit;
  m.digest_only = r->digest_only;
  uint8_t *out = NULL;
  PACK_INTO(replica_read, &m, len);
  return out;
}

int wire_read_decode(const uint8_t *p, size_t n, wire_read *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__ReplicaRead *m = cellar__wire__replica_read__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  if (m->partition.len == 0 || m->partition.len > CELLAR_MAX_KEY_BYTES ||
      m->start.len > CELLAR_MAX_KEY_BYTES || m->end.len > CELLAR_MAX_KEY_BYTES ||
      m->limit == 0) {
    wire_read_free(out);
    return CELLAR_EPROTO;
  }
  out->id = m->id;
  out->from = m->from;
  out->cluster = m->cluster;
  out->table_id = m->table_id;
  out->pk = CBYTES(m->partition.data, m->partition.len);
  out->has_start = m->has_start;
  out->start = CBYTES(m->start.data, m->start.len);
  out->start_exclusive = m->start_exclusive;
  out->has_end = m->has_end;
  out->end = CBYTES(m->end.data, m->end.len);
  out->limit = m->limit;
  out->digest_only = m->digest_only;
  return 0;
}

void wire_read_free(wire_read *r) {
  if (r->pb) cellar__wire__replica_read__free_unpacked(r->pb, NULL);
  memset(r, 0, sizeof *r);
}

uint8_t *wire_read_reply_encode(const wire_read_reply *r, size_t *len) {
  Cellar__Wire__ReplicaReadReply m = CELLAR__WIRE__REPLICA_READ_REPLY__INIT;
  Cellar__Wire__ReplicaEntry *arr, **ptrs;
  if (entries_to_pb(r->e, r->n, &arr, &ptrs)) return NULL;
  m.id = r->id;
  m.host_id = (char *)(r->host_id ? r->host_id : "");
  m.code = r->code;
  m.message = (char *)(r->message ? r->message : "");
  m.n_entries = r->n;
  m.entries = ptrs;
  m.digest.data = (uint8_t *)r->digest.p;
  m.digest.len = r->digest.n;
  m.more = r->more;
  uint8_t *out = NULL;
  PACK_INTO(replica_read_reply, &m, len);
  free(arr);
  free(ptrs);
  return out;
}

int wire_read_reply_decode(const uint8_t *p, size_t n, wire_read_reply *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__ReplicaReadReply *m = cellar__wire__replica_read_reply__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  out->id = m->id;
  out->host_id = m->host_id;
  out->code = m->code;
  out->message = m->message;
  out->n = m->n_entries;
  out->e = entries_from_pb(m->entries, m->n_entries);
  if (out->e == NULL) {
    wire_read_reply_free(out);
    return CELLAR_ENOMEM;
  }
  out->digest = CBYTES(m->digest.data, m->digest.len);
  out->more = m->more;
  return 0;
}

void wire_read_reply_free(wire_read_reply *r) {
  free(r->e);
  if (r->pb) cellar__wire__replica_read_reply__free_unpacked(r->pb, NULL);
  memset(r, 0, sizeof *r);
}

/* -------------------------------------------------------------- streams */

uint8_t *wire_pull_encode(const wire_pull *w, size_t *len) {
  Cellar__Wire__StreamPull m = CELLAR__WIRE__STREAM_PULL__INIT;
  m.id = w->id;
  m.from = (char *)(w->from ? w->from : "");
  m.cluster = (char *)(w->cluster ? w->cluster : "");
  m.table_id = w->table_id;
  m.lo = w->lo;
  m.hi = w->hi;
  m.after_key.data = (uint8_t *)w->after_key.p;
  m.after_key.len = w->after_key.n;
  m.max_bytes = w->max_bytes;
  uint8_t *out = NULL;
  PACK_INTO(stream_pull, &m, len);
  return out;
}

int wire_pull_decode(const uint8_t *p, size_t n, wire_pull *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__StreamPull *m = cellar__wire__stream_pull__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  if (m->lo > m->hi || m->max_bytes == 0) {
    wire_pull_free(out);
    return CELLAR_EPROTO;
  }
  out->id = m->id;
  out->from = m->from;
  out->cluster = m->cluster;
  out->table_id = m->table_id;
  out->lo = m->lo;
  out->hi = m->hi;
  out->after_key = CBYTES(m->after_key.data, m->after_key.len);
  out->max_bytes = m->max_bytes;
  return 0;
}

void wire_pull_free(wire_pull *w) {
  if (w->pb) cellar__wire__stream_pull__free_unpacked(w->pb, NULL);
  memset(w, 0, sizeof *w);
}

uint8_t *wire_chunk_encode(const wire_chunk *w, size_t *len) {
  Cellar__Wire__StreamChunk m = CELLAR__WIRE__STREAM_CHUNK__INIT;
  Cellar__Wire__ReplicaEntry *arr, **ptrs;
  if (entries_to_pb(w->e, w->n, &arr, &ptrs)) return NULL;
  m.id = w->id;
  m.host_id = (char *)(w->host_id ? w->host_id : "");
  m.code = w->code;
  m.message = (char *)(w->message ? w->message : "");
  m.n_entries = w->n;
  m.entries = ptrs;
  m.done = w->done;
  uint8_t *out = NULL;
  PACK_INTO(stream_chunk, &m, len);
  free(arr);
  free(ptrs);
  return out;
}

int wire_chunk_decode(const uint8_t *p, size_t n, wire_chunk *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__StreamChunk *m = cellar__wire__stream_chunk__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  out->id = m->id;
  out->host_id = m->host_id;
  out->code = m->code;
  out->message = m->message;
  out->n = m->n_entries;
  out->e = entries_from_pb(m->entries, m->n_entries);
  out->done = m->done;
  if (out->e == NULL) {
    wire_chunk_free(out);
    return CELLAR_ENOMEM;
  }
  return 0;
}

void wire_chunk_free(wire_chunk *w) {
  free(w->e);
  if (w->pb) cellar__wire__stream_chunk__free_unpacked(w->pb, NULL);
  memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------- stream orders */

uint8_t *wire_order_encode(const wire_order *w, size_t *len) {
  Cellar__Wire__StreamOrder m = CELLAR__WIRE__STREAM_ORDER__INIT;
  Cellar__Wire__StreamRange *arr = calloc(w->n ? w->n : 1, sizeof *arr);
  Cellar__Wire__StreamRange **ptrs = calloc(w->n ? w->n : 1, sizeof *ptrs);
  uint8_t *out = NULL;
  if (arr == NULL || ptrs == NULL) goto done;
  for (size_t i = 0; i < w->n; i++) {
    Cellar__Wire__StreamRange r = CELLAR__WIRE__STREAM_RANGE__INIT;
    r.table_id = w->r[i].table_id;
    r.lo = w->r[i].lo;
    r.hi = w->r[i].hi;
    r.source = (char *)(w->r[i].source ? w->r[i].source : "");
    arr[i] = r;
    ptrs[i] = &arr[i];
  }
  m.id = w->id;
  m.from = (char *)(w->from ? w->from : "");
  m.cluster = (char *)(w->cluster ? w->cluster : "");
  m.n_ranges = w->n;
  m.ranges = ptrs;
  PACK_INTO(stream_order, &m, len);
done:
  free(arr);
  free(ptrs);
  return out;
}

int wire_order_decode(const uint8_t *p, size_t n, wire_order *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__StreamOrder *m = cellar__wire__stream_order__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  out->id = m->id;
  out->from = m->from;
  out->cluster = m->cluster;
  out->n = m->n_ranges;
  out->r = calloc(m->n_ranges ? m->n_ranges : 1, sizeof *out->r);
  if (out->r == NULL) {
    wire_order_free(out);
    return CELLAR_ENOMEM;
  }
  for (size_t i = 0; i < m->n_ranges; i++) {
    const Cellar__Wire__StreamRange *r = m->ranges[i];
    if (r->lo > r->hi || r->lo == INT64_MIN || strlen(r->source) >= 80) {
      wire_order_free(out);
      return CELLAR_EPROTO;
    }
    out->r[i] = (wire_range){r->table_id, r->lo, r->hi, r->source};
  }
  return 0;
}

void wire_order_free(wire_order *w) {
  free(w->r);
  if (w->pb) cellar__wire__stream_order__free_unpacked(w->pb, NULL);
  memset(w, 0, sizeof *w);
}

uint8_t *wire_order_done_encode(const wire_order_done *w, size_t *len) {
  Cellar__Wire__StreamOrderDone m = CELLAR__WIRE__STREAM_ORDER_DONE__INIT;
  m.id = w->id;
  m.host_id = (char *)(w->host_id ? w->host_id : "");
  m.code = w->code;
  m.message = (char *)(w->message ? w->message : "");
  m.entries = w->entries;
  uint8_t *out = NULL;
  PACK_INTO(stream_order_done, &m, len);
  return out;
}

int wire_order_done_decode(const uint8_t *p, size_t n, wire_order_done *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__StreamOrderDone *m = cellar__wire__stream_order_done__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  out->id = m->id;
  out->host_id = m->host_id;
  out->code = m->code;
  out->message = m->message;
  out->entries = m->entries;
  return 0;
}

void wire_order_done_free(wire_order_done *w) {
  if (w->pb) cellar__wire__stream_order_done__free_unpacked(w->pb, NULL);
  memset(w, 0, sizeof *w);
}

/* ------------------------------------------------- anti-entropy repair */

uint8_t *wire_repair_req_encode(const wire_repair_req *w, size_t *len) {
  Cellar__Wire__RepairRequest m = CELLAR__WIRE__REPAIR_REQUEST__INIT;
  Cellar__Wire__RepairRange *arr = calloc(w->n ? w->n : 1, sizeof *arr);
  Cellar__Wire__RepairRange **ptrs = calloc(w->n ? w->n : 1, sizeof *ptrs);
  uint8_t *out = NULL;
  if (arr == NULL || ptrs == NULL) goto done;
  for (size_t i = 0; i < w->n; i++) {
    Cellar__Wire__RepairRange r = CELLAR__WIRE__REPAIR_RANGE__INIT;
    r.lo = w->r[i][0];
    r.hi = w->r[i][1];
    arr[i] = r;
    ptrs[i] = &arr[i];
  }
  m.id = w->id;
  m.from = (char *)(w->from ? w->from : "");
  m.cluster = (char *)(w->cluster ? w->cluster : "");
  m.table_id = w->table_id;
  m.n_ranges = w->n;
  m.ranges = ptrs;
  m.depth = w->depth;
  PACK_INTO(repair_request, &m, len);
done:
  free(arr);
  free(ptrs);
  return out;
}

int wire_repair_req_decode(const uint8_t *p, size_t n, wire_repair_req *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__RepairRequest *m = cellar__wire__repair_request__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  out->id = m->id;
  out->from = m->from;
  out->cluster = m->cluster;
  out->table_id = m->table_id;
  out->n = m->n_ranges;
  out->depth = m->depth;
  out->r = calloc(m->n_ranges ? m->n_ranges : 1, sizeof *out->r);
  if (out->r == NULL) {
    wire_repair_req_free(out);
    return CELLAR_ENOMEM;
  }
  for (size_t i = 0; i < m->n_ranges; i++) {
    const Cellar__Wire__RepairRange *r = m->ranges[i];
    if (r->lo > r->hi || r->lo == INT64_MIN) {
      wire_repair_req_free(out);
      return CELLAR_EPROTO;
    }
    out->r[i][0] = r->lo;
    out->r[i][1] = r->hi;
  }
  return 0;
}

void wire_repair_req_free(wire_repair_req *w) {
  free(w->r);
  if (w->pb) cellar__wire__repair_request__free_unpacked(w->pb, NULL);
  memset(w, 0, sizeof *w);
}

uint8_t *wire_repair_reply_encode(const wire_repair_reply *w, size_t *len) {
  Cellar__Wire__RepairReply m = CELLAR__WIRE__REPAIR_REPLY__INIT;
  Cellar__Wire__PartitionDigest *arr = calloc(w->n ? w->n : 1, sizeof *arr);
  Cellar__Wire__PartitionDigest **ptrs = calloc(w->n ? w->n : 1, sizeof *ptrs);
  uint8_t *out = NULL;
  if (arr == NULL || ptrs == NULL) goto done;
  for (size_t i = 0; i < w->n; i++) {
    Cellar__Wire__PartitionDigest d = CELLAR__WIRE__PARTITION_DIGEST__INIT;
    d.token = w->parts[i].token;
    d.key.data = (uint8_t *)w->parts[i].key.p;
    d.key.len = w->parts[i].key.n;
    d.digest = w->parts[i].digest;
    d.bytes = w->parts[i].bytes;
    d.rows = w->parts[i].rows;
    arr[i] = d;
    ptrs[i] = &arr[i];
  }
  m.id = w->id;
  m.table_id = w->table_id;
  m.host_id = (char *)(w->host_id ? w->host_id : "");
  m.code = w->code;
  m.message = (char *)(w->message ? w->message : "");
  m.tree.data = (uint8_t *)w->tree.p;
  m.tree.len = w->tree.n;
  m.n_partitions = w->n;
  m.partitions = ptrs;
  PACK_INTO(repair_reply, &m, len);
done:
  free(arr);
  free(ptrs);
  return out;
}

int wire_repair_reply_decode(const uint8_t *p, size_t n, wire_repair_reply *out) {
  memset(out, 0, sizeof *out);
  Cellar__Wire__RepairReply *m = cellar__wire__repair_reply__unpack(NULL, n, p);
  if (m == NULL) return CELLAR_EPROTO;
  out->pb = m;
  out->id = m->id;
  out->table_id = m->table_id;
  out->host_id = m->host_id;
  out->code = m->code;
  out->message = m->message;
  out->tree = CBYTES(m->tree.data, m->tree.len);
  out->n = m->n_partitions;
  out->parts = calloc(m->n_partitions ? m->n_partitions : 1, sizeof *out->parts);
  if (out->parts == NULL) {
    wire_repair_reply_free(out);
    return CELLAR_ENOMEM;
  }
  for (size_t i = 0; i < m->n_partitions; i++) {
    const Cellar__Wire__PartitionDigest *d = m->partitions[i];
    out->parts[i] = (wire_part_digest){d->token, CBYTES(d->key.data, d->key.len), d->digest,
                                       d->bytes, d->rows};
  }
  return 0;
}

void wire_repair_reply_free(wire_repair_reply *w) {
  free(w->parts);
  if (w->pb) cellar__wire__repair_reply__free_unpacked(w->pb, NULL);
  memset(w, 0, sizeof *w);
}
