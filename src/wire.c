/*
** wire: protobuf payloads <-> request and result (see wire.h).
**
** Design notes:
**
**   1. Decoding unpacks the payload with protobuf-c, validates it, then
**      builds the request in ONE allocation: the request struct followed by
**      its req_row / req_cell / cbytes arrays. Every byte range points into
**      the unpacked message, which the request owns (req->pb) and frees in
**      wire_request_free(). Nothing is copied except the fixed-size schema
**      definitions (keyspace_def/table_def hold their names inline).
**   2. Validation is complete before the request is allocated: a rejected
**      request costs the unpack only, and the error path frees the message.
**   3. Encoding builds the Response message on one scratch allocation (all
**      Row/Cell/KeyspaceDef/... structs and pointer arrays, carved from one
**      malloc), pointing every string and bytes field at the result's own
**      memory, no copies; then packs it behind the frame header into one
**      malloc of exactly FRAME_HEADER_SIZE + packed size.
**   4. A response whose payload would exceed CELLAR_MAX_FRAME_BYTES is
**      replaced by a CELLAR_ETOOBIG error response: the peer's reader would
**      otherwise reject the frame and drop the whole connection.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cellar.pb-c.h"
#include "frame.h"
#include "wire.h"

#define WIRE_MAX_RF 100u             /* replication factor, per strategy/DC */
#define WIRE_MAX_TTL 630720000u      /* 20 years, as Cassandra: keeps
                                        now + ttl inside uint32 seconds */

/* ===================================================== error reporting */

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* A client-supplied string made safe to quote in a message: at most 64
** bytes, non-printable bytes shown as '?'. Returns buf. */
static const char *show(const char *s, char buf[72]) {
  size_t i = 0;
  for (; s[i] != '\0' && i < 64; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  if (s[i] != '\0') {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

/* ========================================================= validation */

static int check_name(const char *what, const char *name, char *err,
                      size_t errlen) {
  char b[72];
  if (schema_check_name(name) != 0)
    return fail(err, errlen, CELLAR_EBADNAME,
                "invalid %s name \"%s\": 1..%u bytes of [A-Za-z0-9_], "
                "not starting with a digit",
                what, show(name, b), CELLAR_MAX_NAME_BYTES);
  return 0;
}

/* A key (partition, clustering, bound): at most CELLAR_MAX_KEY_BYTES,
** and not empty when !may_be_empty. */
static int check_key(const char *what, size_t n, int may_be_empty, char *err,
                     size_t errlen) {
  if (n == 0 && !may_be_empty)
    return fail(err, errlen, CELLAR_EINVAL, "%s is empty", what);
  if (n > CELLAR_MAX_KEY_BYTES)
    return fail(err, errlen, CELLAR_ETOOBIG, "%s is %zu bytes, limit %u", what,
                n, CELLAR_MAX_KEY_BYTES);
  return 0;
}

static int check_column(size_t n, char *err, size_t errlen) {
  if (n == 0) return fail(err, errlen, CELLAR_EINVAL, "column name is empty");
  if (n > CELLAR_MAX_COLUMN_BYTES)
    return fail(err, errlen, CELLAR_ETOOBIG,
                "column name is %zu bytes, limit %u", n,
                CELLAR_MAX_COLUMN_BYTES);
  return 0;
}

static int check_columns(const ProtobufCBinaryData *cols, size_t n, char *err,
                         size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    int rc = check_column(cols[i].len, err, errlen);
    if (rc != 0) return rc;
  }
  return 0;
}

/* 0 means the default, ONE. ANY is a write level only. */
static int check_cl(uint32_t v, int is_read, uint8_t *out, char *err,
                    size_t errlen) {
  if (v == CELLAR_CL_DEFAULT) v = CELLAR_CL_ONE;
  if (v > CELLAR_CL_ANY)
    return fail(err, errlen, CELLAR_EBADCL,
                "invalid consistency level %u (1..%d, or 0 for ONE)", v,
                CELLAR_CL_ANY);
  if (is_read && v == CELLAR_CL_ANY)
    return fail(err, errlen, CELLAR_EBADCL,
                "consistency level ANY is only valid for writes");
  *out = (uint8_t)v;
  return 0;
}

static int check_timestamp(int64_t ts, char *err, size_t errlen) {
  if (ts < 0)
    return fail(err, errlen, CELLAR_EINVAL,
                "negative timestamp %lld (microseconds since the epoch, "
                "0 = server clock)",
                (long long)ts);
  return 0;
}

static int check_ttl(const char *what, uint32_t ttl, char *err, size_t errlen) {
  if (ttl > WIRE_MAX_TTL)
    return fail(err, errlen, CELLAR_EINVAL, "%s %u seconds over the limit %u",
                what, ttl, WIRE_MAX_TTL);
  return 0;
}

/* The fields every data operation starts with. */
static int check_target(const char *ks, const char *table,
                        const ProtobufCBinaryData *pk, char *err,
                        size_t errlen) {
  int rc = check_name("keyspace", ks, err, errlen);
  if (rc == 0) rc = check_name("table", table, err, errlen);
  if (rc == 0) rc = check_key("partition key", pk->len, 0, err, errlen);
  return rc;
}

/* ========================================================= allocation */

#define ALIGN_UP(n) (((n) + 15u) & ~(size_t)15u)

/* The request and `extra` bytes of arrays behind it, zeroed (note 1).
** Arrays are carved with carve(). */
static request *req_new(unsigned type, uint32_t id, size_t extra, void *pb) {
  request *r = calloc(1, ALIGN_UP(sizeof(request)) + extra);
  if (r == NULL) return NULL;
  r->type = (uint8_t)type;
  r->id = id;
  r->keyspace = "";
  r->table = "";
  r->consistency = CELLAR_CL_ONE;
  r->command = "";
  r->argument = "";
  r->pb = pb;
  return r;
}

/* The next n bytes of a block sized by the same ALIGN_UP sums. An empty
** array does not move (the block itself may be NULL when all are empty). */
static void *carve(uint8_t **cur, size_t n) {
  void *p = *cur;
  if (n > 0) *cur += ALIGN_UP(n);
  return p;
}

static uint8_t *req_arrays(request *r) {
  return (uint8_t *)r + ALIGN_UP(sizeof(request));
}

static cbytes cb_of(ProtobufCBinaryData d) { return CBYTES(d.data, d.len); }

/* cbytes copies of protobuf's repeated bytes, from *cur. */
static cbytes *cols_of(uint8_t **cur, const ProtobufCBinaryData *c, size_t n) {
  if (n == 0) return NULL;
  cbytes *out = carve(cur, n * sizeof(cbytes));
  for (size_t i = 0; i < n; i++) out[i] = cb_of(c[i]);
  return out;
}

/* A client context is a row context (cell.h): bounded by its columns. */
#define WIRE_MAX_CONTEXT_BYTES (256u << 10)

static int check_context(size_t n, char *err, size_t errlen) {
  if (n > WIRE_MAX_CONTEXT_BYTES)
    return fail(err, errlen, CELLAR_ETOOBIG, "context is %zu bytes, limit %u",
                n, WIRE_MAX_CONTEXT_BYTES);
  return 0;
}

/* ============================================================ decoders */

static int decode_put(const uint8_t *p, size_t len, unsigned type, uint32_t id,
                      request **out, char *err, size_t errlen) {
  Cellar__Wire__PutRequest *m = cellar__wire__put_request__unpack(NULL, len, p);
  if (m == NULL) return fail(err, errlen, CELLAR_EPROTO, "malformed PutRequest");
  uint8_t cl = 0;
  int rc = check_target(m->keyspace, m->table, &m->partition, err, errlen);
  if (rc == 0) rc = check_cl(m->consistency, 0, &cl, err, errlen);
  if (rc == 0) rc = check_timestamp(m->timestamp, err, errlen);
  if (rc == 0) rc = check_ttl("ttl", m->ttl, err, errlen);
  if (rc == 0 && m->n_rows == 0)
    rc = fail(err, errlen, CELLAR_EEMPTY, "put without rows");
  if (rc == 0) rc = check_context(m->context.len, err, errlen);
  size_t ncells = 0, nrowctx = 0;
  for (size_t i = 0; rc == 0 && i < m->n_rows; i++) {
    const Cellar__Wire__Row *row = m->rows[i];
    rc = check_key("clustering key", row->clustering.len, 1, err, errlen);
    if (rc == 0) rc = check_context(row->context.len, err, errlen);
    if (row->context.len) nrowctx = m->n_rows;
    if (rc == 0 && row->n_cells == 0)
      rc = fail(err, errlen, CELLAR_EEMPTY, "row %zu of the put has no cells",
                i);
    for (size_t j = 0; rc == 0 && j < row->n_cells; j++) {
      const Cellar__Wire__Cell *c = row->cells[j];
      rc = check_column(c->name.len, err, errlen);
      if (rc == 0 && c->value.len > CELLAR_MAX_VALUE_BYTES)
        rc = fail(err, errlen, CELLAR_ETOOBIG, "value is %zu bytes, limit %u",
                  c->value.len, CELLAR_MAX_VALUE_BYTES);
    }
    ncells += row->n_cells;
  }
  if (rc != 0) {
    cellar__wire__put_request__free_unpacked(m, NULL);
    return rc;
  }
  /* Both counts are bounded by the payload length: no overflow below. */
  request *r = req_new(type, id,
                       ALIGN_UP(m->n_rows * sizeof(req_row)) +
                           ALIGN_UP(ncells * sizeof(req_cell)) +
                           ALIGN_UP(nrowctx * sizeof(cbytes)),
                       m);
  if (r == NULL) {
    cellar__wire__put_request__free_unpacked(m, NULL);
    return fail(err, errlen, CELLAR_ENOMEM, "out of memory");
  }
  uint8_t *cur = req_arrays(r);
  req_row *rows = carve(&cur, m->n_rows * sizeof(req_row));
  req_cell *cells = carve(&cur, ncells * sizeof(req_cell));
  cbytes *rowctx = nrowctx ? carve(&cur, nrowctx * sizeof(cbytes)) : NULL;
  for (size_t i = 0; i < m->n_rows; i++) {
    const Cellar__Wire__Row *row = m->rows[i];
    if (rowctx) rowctx[i] = cb_of(row->context);
    rows[i].ck = cb_of(row->clustering);
    rows[i].ncells = row->n_cells;
    rows[i].cells = cells;
    for (size_t j = 0; j < row->n_cells; j++) {
      cells[j].name = cb_of(row->cells[j]->name);
      cells[j].value = cb_of(row->cells[j]->value);
    }
    cells += row->n_cells;
  }
  r->keyspace = m->keyspace;
  r->table = m->table;
  r->partition = cb_of(m->partition);
  r->consistency = cl;
  r->nrows = m->n_rows;
  r->rows = rows;
  r->ttl = m->ttl;
  r->timestamp = m->timestamp;
  r->context = cb_of(m->context);
  r->row_ctx = rowctx;
  *out = r;
  return 0;
}

static int decode_get(const uint8_t *p, size_t len, unsigned type, uint32_t id,
                      request **out, char *err, size_t errlen) {
  Cellar__Wire__GetRequest *m = cellar__wire__get_request__unpack(NULL, len, p);
  if (m == NULL) return fail(err, errlen, CELLAR_EPROTO, "malformed GetRequest");
  uint8_t cl = 0;
  int rc = check_target(m->keyspace, m->table, &m->partition, err, errlen);
  if (rc == 0) rc = check_key("clustering key", m->clustering.len, 1, err, errlen);
  if (rc == 0) rc = check_columns(m->columns, m->n_columns, err, errlen);
  if (rc == 0) rc = check_cl(m->consistency, 1, &cl, err, errlen);
  request *r = NULL;
  if (rc == 0) {
    r = req_new(type, id, ALIGN_UP(m->n_columns * sizeof(cbytes)), m);
    if (r == NULL) rc = fail(err, errlen, CELLAR_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    cellar__wire__get_request__free_unpacked(m, NULL);
    return rc;
  }
  uint8_t *cur = req_arrays(r);
  r->keyspace = m->keyspace;
  r->table = m->table;
  r->partition = cb_of(m->partition);
  r->ck = cb_of(m->clustering);
  r->ncols = m->n_columns;
  r->cols = cols_of(&cur, m->columns, m->n_columns);
  r->consistency = cl;
  *out = r;
  return 0;
}

static int decode_slice(const uint8_t *p, size_t len, unsigned type,
                        uint32_t id, request **out, char *err, size_t errlen) {
  Cellar__Wire__SliceRequest *m =
      cellar__wire__slice_request__unpack(NULL, len, p);
  if (m == NULL)
    return fail(err, errlen, CELLAR_EPROTO, "malformed SliceRequest");
  uint8_t cl = 0;
  int rc = check_target(m->keyspace, m->table, &m->partition, err, errlen);
  if (rc == 0) rc = check_key("slice start", m->start.len, 1, err, errlen);
  if (rc == 0) rc = check_key("slice end", m->end.len, 1, err, errlen);
  if (rc == 0) rc = check_columns(m->columns, m->n_columns, err, errlen);
  if (rc == 0) rc = check_cl(m->consistency, 1, &cl, err, errlen);
  request *r = NULL;
  if (rc == 0) {
    r = req_new(type, id, ALIGN_UP(m->n_columns * sizeof(cbytes)), m);
    if (r == NULL) rc = fail(err, errlen, CELLAR_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    cellar__wire__slice_request__free_unpacked(m, NULL);
    return rc;
  }
  uint8_t *cur = req_arrays(r);
  r->keyspace = m->keyspace;
  r->table = m->table;
  r->partition = cb_of(m->partition);
  /* An unset bound is open, whatever bytes came with it. */
  r->has_start = m->has_start ? 1 : 0;
  if (r->has_start) r->start = cb_of(m->start);
  r->has_end = m->has_end ? 1 : 0;
  if (r->has_end) r->end = cb_of(m->end);
  r->limit = m->limit;
  r->cursor = cb_of(m->cursor);
  r->ncols = m->n_columns;
  r->cols = cols_of(&cur, m->columns, m->n_columns);
  r->consistency = cl;
  *out = r;
  return 0;
}

/*
** Scope PARTITION is protobuf's default (0), so a client that forgot to set
** the scope of a row or cell delete would wipe the partition. Hence a
** clustering key or columns given with a scope that does not use them is an
** error, not something to ignore.
*/
static int decode_delete(const uint8_t *p, size_t len, unsigned type,
                         uint32_t id, request **out, char *err, size_t errlen) {
  Cellar__Wire__DeleteRequest *m =
      cellar__wire__delete_request__unpack(NULL, len, p);
  if (m == NULL)
    return fail(err, errlen, CELLAR_EPROTO, "malformed DeleteRequest");
  uint8_t cl = 0;
  int scope = (int)m->scope;
  int rc = check_target(m->keyspace, m->table, &m->partition, err, errlen);
  if (rc == 0 && (scope < CELLAR__WIRE__DELETE_REQUEST__SCOPE__PARTITION ||
                  scope > CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS))
    rc = fail(err, errlen, CELLAR_EINVAL,
              "invalid delete scope %d (0 PARTITION, 1 ROW, 2 CELLS)", scope);
  if (rc == 0) rc = check_key("clustering key", m->clustering.len, 1, err, errlen);
  if (rc == 0 && scope == CELLAR__WIRE__DELETE_REQUEST__SCOPE__PARTITION &&
      m->clustering.len > 0)
    rc = fail(err, errlen, CELLAR_EINVAL,
              "clustering key given with scope PARTITION (use ROW or CELLS)");
  if (rc == 0 && scope != CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS &&
      m->n_columns > 0)
    rc = fail(err, errlen, CELLAR_EINVAL,
              "columns given with scope %s (use CELLS)",
              scope == CELLAR__WIRE__DELETE_REQUEST__SCOPE__ROW ? "ROW"
                                                                : "PARTITION");
  if (rc == 0 && scope == CELLAR__WIRE__DELETE_REQUEST__SCOPE__CELLS &&
      m->n_columns == 0)
    rc = fail(err, errlen, CELLAR_EINVAL, "delete of scope CELLS without columns");
  if (rc == 0) rc = check_columns(m->columns, m->n_columns, err, errlen);
  if (rc == 0) rc = check_timestamp(m->timestamp, err, errlen);
  if (rc == 0) rc = check_cl(m->consistency, 0, &cl, err, errlen);
  if (rc == 0) rc = check_context(m->context.len, err, errlen);
  request *r = NULL;
  if (rc == 0) {
    r = req_new(type, id, ALIGN_UP(m->n_columns * sizeof(cbytes)), m);
    if (r == NULL) rc = fail(err, errlen, CELLAR_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    cellar__wire__delete_request__free_unpacked(m, NULL);
    return rc;
  }
  uint8_t *cur = req_arrays(r);
  r->keyspace = m->keyspace;
  r->table = m->table;
  r->partition = cb_of(m->partition);
  r->scope = scope;         /* same numbers as enum storage_delete_scope */
  r->ck = cb_of(m->clustering);
  r->context = cb_of(m->context);
  r->ncols = m->n_columns;
  r->cols = cols_of(&cur, m->columns, m->n_columns);
  r->timestamp = m->timestamp;
  r->consistency = cl;
  *out = r;
  return 0;
}

/* Datacenter names end up in "NetworkTopologyStrategy:dc1=3,dc2=3" (the
** spec form of schema.h), so they may not hold its separators. */
static int check_dc_name(const char *name, char *err, size_t errlen) {
  char b[72];
  size_t n = strlen(name);
  int ok = n >= 1 && n <= SCHEMA_NAME_MAX;
  for (size_t i = 0; ok && i < n; i++) {
    char c = name[i];
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  }
  if (!ok)
    return fail(err, errlen, CELLAR_EBADNAME,
                "invalid datacenter name \"%s\": 1..%d bytes of "
                "[A-Za-z0-9_.-]",
                show(name, b), SCHEMA_NAME_MAX);
  return 0;
}

static int check_rf(const char *where, uint32_t rf, char *err, size_t errlen) {
  if (rf < 1 || rf > WIRE_MAX_RF)
    return fail(err, errlen, CELLAR_EINVAL,
                "replication factor %u%s out of range 1..%u", rf, where,
                WIRE_MAX_RF);
  return 0;
}

static int keyspace_from_pb(const Cellar__Wire__KeyspaceDef *k,
                            keyspace_def *d, char *err, size_t errlen) {
  char b[72];
  int rc = check_name("keyspace", k->name, err, errlen);
  if (rc != 0) return rc;
  strcpy(d->name, k->name);               /* fits: checked above */
  const Cellar__Wire__Replication *rep = k->replication;
  if (rep == NULL)
    return fail(err, errlen, CELLAR_EINVAL,
                "keyspace %s has no replication strategy", d->name);
  if (strcmp(rep->strategy, "SimpleStrategy") == 0) {
    if (rep->n_datacenters > 0)
      return fail(err, errlen, CELLAR_EINVAL,
                  "SimpleStrategy takes a replication factor, not datacenters");
    rc = check_rf("", rep->replication_factor, err, errlen);
    if (rc != 0) return rc;
    d->strategy = REPL_SIMPLE;
    d->rf = rep->replication_factor;
    return 0;
  }
  if (strcmp(rep->strategy, "NetworkTopologyStrategy") == 0) {
    if (rep->replication_factor != 0)
      return fail(err, errlen, CELLAR_EINVAL,
                  "NetworkTopologyStrategy takes per-datacenter factors, "
                  "not replication_factor");
    if (rep->n_datacenters < 1 || rep->n_datacenters > SCHEMA_DC_MAX)
      return fail(err, errlen, CELLAR_EINVAL,
                  "NetworkTopologyStrategy needs 1..%d datacenters, got %zu",
                  SCHEMA_DC_MAX, rep->n_datacenters);
    d->strategy = REPL_NETWORK_TOPOLOGY;
    d->ndcs = rep->n_datacenters;
    for (size_t i = 0; i < rep->n_datacenters; i++) {
      const Cellar__Wire__Replication__DatacentersEntry *e = rep->datacenters[i];
      rc = check_dc_name(e->key, err, errlen);
      if (rc != 0) return rc;
      for (size_t j = 0; j < i; j++)
        if (strcmp(d->dcs[j].name, e->key) == 0)
          return fail(err, errlen, CELLAR_EINVAL,
                      "datacenter %s given twice", e->key);
      char where[SCHEMA_NAME_MAX + 16];
      snprintf(where, sizeof(where), " for %s", e->key);
      rc = check_rf(where, e->value, err, errlen);
      if (rc != 0) return rc;
      strcpy(d->dcs[i].name, e->key);
      d->dcs[i].rf = e->value;
    }
    return 0;
  }
  return fail(err, errlen, CELLAR_EINVAL,
              "unknown replication strategy \"%s\" (SimpleStrategy or "
              "NetworkTopologyStrategy)",
              show(rep->strategy, b));
}

static int table_from_pb(const Cellar__Wire__TableDef *t, table_def *d,
                         char *err, size_t errlen) {
  char b[72];
  int rc = check_name("keyspace", t->keyspace, err, errlen);
  if (rc == 0) rc = check_name("table", t->name, err, errlen);
  if (rc != 0) return rc;
  strcpy(d->keyspace, t->keyspace);
  strcpy(d->name, t->name);
  d->id = 0;                              /* the server assigns it */
  if (t->conflict_policy[0] == '\0') {
    d->policy = POLICY_SIBLINGS;
  } else {
    conflict_policy pol;
    if (schema_parse_policy(t->conflict_policy, &pol) != 0)
      return fail(err, errlen, CELLAR_EINVAL,
                  "invalid conflict policy \"%s\" (siblings or lww)",
                  show(t->conflict_policy, b));
    d->policy = pol;
  }
  /* 0 without has_gc_grace is "unset" (proto3 cannot tell it from 0). */
  if (t->has_gc_grace || t->gc_grace_seconds != 0)
    d->gc_grace = t->gc_grace_seconds;
  else
    d->gc_grace = SCHEMA_DEFAULT_GC_GRACE;
  rc = check_ttl("default_ttl", t->default_ttl, err, errlen);
  if (rc != 0) return rc;
  d->default_ttl = t->default_ttl;
  return 0;
}

static int decode_schema(const uint8_t *p, size_t len, unsigned type,
                         uint32_t id, request **out, char *err, size_t errlen) {
  Cellar__Wire__SchemaRequest *m =
      cellar__wire__schema_request__unpack(NULL, len, p);
  if (m == NULL)
    return fail(err, errlen, CELLAR_EPROTO, "malformed SchemaRequest");
  request *r = req_new(type, id, 0, m);
  if (r == NULL) {
    cellar__wire__schema_request__free_unpacked(m, NULL);
    return fail(err, errlen, CELLAR_ENOMEM, "out of memory");
  }
  r->if_not_exists = m->if_not_exists ? 1 : 0;
  r->if_exists = m->if_exists ? 1 : 0;
  int rc = 0;
  switch (type) {
    case FRAME_CREATE_KEYSPACE:
      if (m->keyspace == NULL)
        rc = fail(err, errlen, CELLAR_EINVAL,
                  "CREATE_KEYSPACE without a keyspace definition");
      else
        rc = keyspace_from_pb(m->keyspace, &r->ks_def, err, errlen);
      r->keyspace = r->ks_def.name;
      break;
    case FRAME_CREATE_TABLE:
      if (m->table == NULL)
        rc = fail(err, errlen, CELLAR_EINVAL,
                  "CREATE_TABLE without a table definition");
      else
        rc = table_from_pb(m->table, &r->table_def, err, errlen);
      r->keyspace = r->table_def.keyspace;
      r->table = r->table_def.name;
      break;
    case FRAME_DROP_KEYSPACE:
      rc = check_name("keyspace", m->keyspace_name, err, errlen);
      r->keyspace = m->keyspace_name;
      break;
    case FRAME_DROP_TABLE:
      rc = check_name("keyspace", m->keyspace_name, err, errlen);
      if (rc == 0) rc = check_name("table", m->table_name, err, errlen);
      r->keyspace = m->keyspace_name;
      r->table = m->table_name;
      break;
    default:                              /* FRAME_DESCRIBE: "" = all */
      if (m->keyspace_name[0] != '\0')
        rc = check_name("keyspace", m->keyspace_name, err, errlen);
      r->keyspace = m->keyspace_name;
      break;
  }
  if (rc != 0) {
    wire_request_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

static int decode_admin(const uint8_t *p, size_t len, unsigned type,
                        uint32_t id, request **out, char *err, size_t errlen) {
  Cellar__Wire__AdminRequest *m =
      cellar__wire__admin_request__unpack(NULL, len, p);
  if (m == NULL)
    return fail(err, errlen, CELLAR_EPROTO, "malformed AdminRequest");
  request *r = NULL;
  int rc = 0;
  if (m->command[0] == '\0')
    rc = fail(err, errlen, CELLAR_EINVAL, "admin request without a command");
  if (rc == 0) {
    r = req_new(type, id, 0, m);
    if (r == NULL) rc = fail(err, errlen, CELLAR_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    cellar__wire__admin_request__free_unpacked(m, NULL);
    return rc;
  }
  r->command = m->command;
  r->argument = m->argument;
  *out = r;
  return 0;
}

int wire_decode_request(unsigned type, uint32_t id, const uint8_t *payload,
                        size_t len, request **out, char *err, size_t errlen) {
  *out = NULL;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (len > 0 && payload == NULL)
    return fail(err, errlen, CELLAR_EINVAL, "payload is NULL");
  switch (type) {
    case FRAME_PING: {                    /* no payload; extra bytes ignored */
      request *r = req_new(type, id, 0, NULL);
      if (r == NULL) return fail(err, errlen, CELLAR_ENOMEM, "out of memory");
      *out = r;
      return 0;
    }
    case FRAME_CREATE_KEYSPACE:
    case FRAME_DROP_KEYSPACE:
    case FRAME_CREATE_TABLE:
    case FRAME_DROP_TABLE:
    case FRAME_DESCRIBE:
      return decode_schema(payload, len, type, id, out, err, errlen);
    case FRAME_PUT:
      return decode_put(payload, len, type, id, out, err, errlen);
    case FRAME_GET:
      return decode_get(payload, len, type, id, out, err, errlen);
    case FRAME_SLICE:
      return decode_slice(payload, len, type, id, out, err, errlen);
    case FRAME_DELETE:
      return decode_delete(payload, len, type, id, out, err, errlen);
    case FRAME_ADMIN:
      return decode_admin(payload, len, type, id, out, err, errlen);
    default:
      return fail(err, errlen, CELLAR_EBADTYPE, "unknown message type %u",
                  type);
  }
}

void wire_request_free(request *r) {
  if (r == NULL) return;
  if (r->pb != NULL) protobuf_c_message_free_unpacked(r->pb, NULL);
  free(r);                                /* arrays live in the same block */
}

/* ============================================================ encoders */

/* Packs resp behind a response header: one malloc (note 3). */
static uint8_t *pack_frame(unsigned type, uint32_t id,
                           const Cellar__Wire__Response *resp, size_t packed,
                           size_t *len) {
  uint8_t *buf = malloc(FRAME_HEADER_SIZE + packed);
  if (buf == NULL) return NULL;
  frame_header h = {
    .magic = FRAME_MAGIC,
    .version = FRAME_VERSION,
    .type = (uint8_t)type,
    .flags = FRAME_FLAG_RESPONSE,
    .request_id = id,
    .length = (uint32_t)packed,
  };
  frame_header_encode(&h, buf);
  size_t n = cellar__wire__response__pack(resp, buf + FRAME_HEADER_SIZE);
  if (n != packed) {                      /* cannot happen: same message */
    free(buf);
    return NULL;
  }
  *len = FRAME_HEADER_SIZE + packed;
  return buf;
}

uint8_t *wire_encode_error(unsigned type, uint32_t id, int code,
                           const char *message, size_t *len) {
  Cellar__Wire__Response resp = CELLAR__WIRE__RESPONSE__INIT;
  resp.code = code;
  resp.message = (char *)(message ? message : "");
  size_t packed = cellar__wire__response__get_packed_size(&resp);
  if (packed > CELLAR_MAX_FRAME_BYTES) {
    /* Only an absurd message can get here; answer without it. */
    resp.message = (char *)"error message too long";
    packed = cellar__wire__response__get_packed_size(&resp);
  }
  return pack_frame(type, id, &resp, packed, len);
}

static const char *strategy_name(repl_strategy s) {
  switch (s) {
    case REPL_SIMPLE: return "SimpleStrategy";
    case REPL_NETWORK_TOPOLOGY: return "NetworkTopologyStrategy";
  }
  return "";
}

uint8_t *wire_encode_response(unsigned type, uint32_t id, const result *res,
                              size_t *len) {
  Cellar__Wire__Response resp = CELLAR__WIRE__RESPONSE__INIT;
  char msg[sizeof(res->message) + 1];

  if (res->code != 0) {                   /* an error carries no data */
    memcpy(msg, res->message, sizeof(res->message));
    msg[sizeof(res->message)] = '\0';
    return wire_encode_error(type, id, res->code, msg, len);
  }

  /* Sizes of the scratch block (note 3). */
  size_t ncells = 0, ndcs = 0, nsibs = 0;
  for (size_t i = 0; i < res->nrows; i++) {
    ncells += res->rows[i].ncells;
    for (size_t j = 0; j < res->rows[i].ncells; j++)
      nsibs += res->rows[i].cells[j].nsib;
  }
  for (size_t i = 0; i < res->nkeyspaces; i++)
    if (res->keyspaces[i].strategy == REPL_NETWORK_TOPOLOGY)
      ndcs += res->keyspaces[i].ndcs;
  size_t need =
      ALIGN_UP(res->nrows * sizeof(Cellar__Wire__Row)) +
      ALIGN_UP(res->nrows * sizeof(Cellar__Wire__Row *)) +
      ALIGN_UP(ncells * sizeof(Cellar__Wire__Cell)) +
      ALIGN_UP(ncells * sizeof(Cellar__Wire__Cell *)) +
      ALIGN_UP(nsibs * sizeof(Cellar__Wire__Version)) +
      ALIGN_UP(nsibs * sizeof(Cellar__Wire__Version *)) +
      ALIGN_UP(res->nkeyspaces * sizeof(Cellar__Wire__KeyspaceDef)) +
      ALIGN_UP(res->nkeyspaces * sizeof(Cellar__Wire__Replication)) +
      ALIGN_UP(res->nkeyspaces * sizeof(Cellar__Wire__KeyspaceDef *)) +
      ALIGN_UP(ndcs * sizeof(Cellar__Wire__Replication__DatacentersEntry)) +
      ALIGN_UP(ndcs * sizeof(Cellar__Wire__Replication__DatacentersEntry *)) +
      ALIGN_UP(res->ntables * sizeof(Cellar__Wire__TableDef)) +
      ALIGN_UP(res->ntables * sizeof(Cellar__Wire__TableDef *)) +
      ALIGN_UP(res->ninfo * sizeof(Cellar__Wire__Response__InfoEntry)) +
      ALIGN_UP(res->ninfo * sizeof(Cellar__Wire__Response__InfoEntry *)) +
      ALIGN_UP(res->nmembers * sizeof(Cellar__Wire__Member)) +
      ALIGN_UP(res->nmembers * sizeof(Cellar__Wire__Member *));
  uint8_t *scratch = NULL;
  if (need > 0 && (scratch = malloc(need)) == NULL) return NULL;
  uint8_t *cur = scratch;

  /* rows and cells */
  Cellar__Wire__Row *rows = carve(&cur, res->nrows * sizeof(*rows));
  Cellar__Wire__Row **rowp = carve(&cur, res->nrows * sizeof(*rowp));
  Cellar__Wire__Cell *cells = carve(&cur, ncells * sizeof(*cells));
  Cellar__Wire__Cell **cellp = carve(&cur, ncells * sizeof(*cellp));
  Cellar__Wire__Version *vers = carve(&cur, nsibs * sizeof(*vers));
  Cellar__Wire__Version **verp = carve(&cur, nsibs * sizeof(*verp));
  for (size_t i = 0; i < res->nrows; i++) {
    const res_row *rr = &res->rows[i];
    cellar__wire__row__init(&rows[i]);
    rows[i].clustering.data = (uint8_t *)rr->ck;
    rows[i].clustering.len = rr->nck;
    rows[i].context.data = (uint8_t *)rr->context;
    rows[i].context.len = rr->ncontext;
    rows[i].n_cells = rr->ncells;
    rows[i].cells = cellp;
    for (size_t j = 0; j < rr->ncells; j++) {
      const res_cell *rcell = &rr->cells[j];
      cellar__wire__cell__init(cells);
      cells->name.data = (uint8_t *)rcell->name;
      cells->name.len = rcell->nname;
      cells->value.data = (uint8_t *)rcell->value;
      cells->value.len = rcell->nvalue;
      cells->timestamp = rcell->timestamp;
      cells->expires_at = rcell->expires_at;
      cells->n_siblings = rcell->nsib;
      cells->siblings = rcell->nsib ? verp : NULL;
      for (size_t k = 0; k < rcell->nsib; k++) {
        const res_sib *rs = &rcell->sib[k];
        cellar__wire__version__init(vers);
        vers->value.data = (uint8_t *)rs->value;
        vers->value.len = rs->nvalue;
        vers->timestamp = rs->timestamp;
        vers->expires_at = rs->expires_at;
        vers->deleted = rs->deleted != 0;
        *verp++ = vers++;
      }
      *cellp++ = cells++;
    }
    rowp[i] = &rows[i];
  }
  resp.n_rows = res->nrows;
  resp.rows = res->nrows ? rowp : NULL;
  if (type == FRAME_GET && res->nrows == 1) {
    /* a single-row get's context also where a put takes it */
    resp.context.data = (uint8_t *)res->rows[0].context;
    resp.context.len = res->rows[0].ncontext;
  }

  if (res->cursor != NULL && res->ncursor > 0) {
    resp.cursor.data = (uint8_t *)res->cursor;
    resp.cursor.len = res->ncursor;
  }

  /* keyspaces */
  Cellar__Wire__KeyspaceDef *kss = carve(&cur, res->nkeyspaces * sizeof(*kss));
  Cellar__Wire__Replication *reps =
      carve(&cur, res->nkeyspaces * sizeof(*reps));
  Cellar__Wire__KeyspaceDef **ksp = carve(&cur, res->nkeyspaces * sizeof(*ksp));
  Cellar__Wire__Replication__DatacentersEntry *dcs =
      carve(&cur, ndcs * sizeof(*dcs));
  Cellar__Wire__Replication__DatacentersEntry **dcp =
      carve(&cur, ndcs * sizeof(*dcp));
  for (size_t i = 0; i < res->nkeyspaces; i++) {
    const keyspace_def *k = &res->keyspaces[i];
    cellar__wire__keyspace_def__init(&kss[i]);
    cellar__wire__replication__init(&reps[i]);
    kss[i].name = (char *)k->name;
    kss[i].replication = &reps[i];
    reps[i].strategy = (char *)strategy_name(k->strategy);
    if (k->strategy == REPL_SIMPLE) {
      reps[i].replication_factor = k->rf;
    } else if (k->strategy == REPL_NETWORK_TOPOLOGY) {
      reps[i].n_datacenters = k->ndcs;
      reps[i].datacenters = dcp;
      for (size_t j = 0; j < k->ndcs; j++) {
        cellar__wire__replication__datacenters_entry__init(dcs);
        dcs->key = (char *)k->dcs[j].name;
        dcs->value = k->dcs[j].rf;
        *dcp++ = dcs++;
      }
    }
    ksp[i] = &kss[i];
  }
  resp.n_keyspaces = res->nkeyspaces;
  resp.keyspaces = res->nkeyspaces ? ksp : NULL;

  /* tables */
  Cellar__Wire__TableDef *tds = carve(&cur, res->ntables * sizeof(*tds));
  Cellar__Wire__TableDef **tdp = carve(&cur, res->ntables * sizeof(*tdp));
  for (size_t i = 0; i < res->ntables; i++) {
    const table_def *t = &res->tables[i];
    cellar__wire__table_def__init(&tds[i]);
    tds[i].keyspace = (char *)t->keyspace;
    tds[i].name = (char *)t->name;
    tds[i].conflict_policy = (char *)schema_policy_name(t->policy);
    tds[i].gc_grace_seconds = t->gc_grace;
    tds[i].has_gc_grace = 1;              /* the server's value is literal */
    tds[i].default_ttl = t->default_ttl;
    tds[i].id = t->id;
    tdp[i] = &tds[i];
  }
  resp.n_tables = res->ntables;
  resp.tables = res->ntables ? tdp : NULL;

  /* info */
  Cellar__Wire__Response__InfoEntry *inf = carve(&cur, res->ninfo * sizeof(*inf));
  Cellar__Wire__Response__InfoEntry **infp =
      carve(&cur, res->ninfo * sizeof(*infp));
  for (size_t i = 0; i < res->ninfo; i++) {
    cellar__wire__response__info_entry__init(&inf[i]);
    inf[i].key = res->info[i].key ? res->info[i].key : (char *)"";
    inf[i].value = res->info[i].value ? res->info[i].value : (char *)"";
    infp[i] = &inf[i];
  }
  resp.n_info = res->ninfo;
  resp.info = res->ninfo ? infp : NULL;

  /* cluster members (ADMIN status, getendpoints) */
  Cellar__Wire__Member *mem = carve(&cur, res->nmembers * sizeof(*mem));
  Cellar__Wire__Member **memp = carve(&cur, res->nmembers * sizeof(*memp));
  for (size_t i = 0; i < res->nmembers; i++) {
    const res_member *m = &res->members[i];
    cellar__wire__member__init(&mem[i]);
    mem[i].host_id = (char *)m->host_id;
    mem[i].address = (char *)m->address;
    mem[i].peer_address = (char *)m->peer_address;
    mem[i].datacenter = (char *)m->dc;
    mem[i].rack = (char *)m->rack;
    mem[i].status = (char *)m->status;
    mem[i].up = m->up;
    mem[i].load = m->load;
    mem[i].tokens = m->tokens;
    mem[i].owns = m->owns;
    mem[i].generation = m->generation;
    mem[i].phi = m->phi;
    mem[i].schema = (char *)m->schema;
    memp[i] = &mem[i];
  }
  resp.n_members = res->nmembers;
  resp.members = res->nmembers ? memp : NULL;

  uint8_t *out = NULL;
  size_t packed = cellar__wire__response__get_packed_size(&resp);
  if (packed > CELLAR_MAX_FRAME_BYTES) {  /* note 4 */
    snprintf(msg, sizeof(msg),
             "response is %zu bytes, over the frame limit of %u bytes: "
             "ask for fewer rows",
             packed, CELLAR_MAX_FRAME_BYTES);
    out = wire_encode_error(type, id, CELLAR_ETOOBIG, msg, len);
  } else {
    out = pack_frame(type, id, &resp, packed, len);
  }
  free(scratch);
  return out;
}

/* ====================================================== forwarded writes */

#define FORWARD_VERSION 1

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

uint8_t *wire_forward_encode(uint64_t fid, const char *cluster,
                             const char *from, const request *req,
                             size_t *len) {
  size_t nc = strlen(cluster), nf = strlen(from);
  if (nc > 255 || nf > 255 || req->pb == NULL ||
      (req->type != FRAME_PUT && req->type != FRAME_DELETE))
    return NULL;
  size_t body = req->type == FRAME_PUT
                    ? cellar__wire__put_request__get_packed_size(req->pb)
                    : cellar__wire__delete_request__get_packed_size(req->pb);
  size_t head = 1 + 8 + 1 + nc + 1 + nf + 1;
  uint8_t *out = malloc(head + body + 1);
  if (out == NULL) return NULL;
  out[0] = FORWARD_VERSION;
  put_u64(out + 1, fid);
  size_t i = 9;
  out[i++] = (uint8_t)nc;
  memcpy(out + i, cluster, nc);
  i += nc;
  out[i++] = (uint8_t)nf;
  memcpy(out + i, from, nf);
  i += nf;
  out[i++] = req->type;
  i += req->type == FRAME_PUT
           ? cellar__wire__put_request__pack(req->pb, out + i)
           : cellar__wire__delete_request__pack(req->pb, out + i);
  *len = i;
  return out;
}

int wire_forward_decode(const uint8_t *p, size_t n, uint64_t *fid,
                        cbytes *cluster, cbytes *from, request **out,
                        char *err, size_t errlen) {
  *out = NULL;
  if (n < 12 || p[0] != FORWARD_VERSION)
    return fail(err, errlen, CELLAR_EPROTO, "malformed FORWARD_WRITE");
  *fid = get_u64(p + 1);
  size_t i = 9;
  size_t nc = p[i++];
  if (nc + 2 > n - i)
    return fail(err, errlen, CELLAR_EPROTO, "truncated FORWARD_WRITE");
  *cluster = CBYTES(p + i, nc);
  i += nc;
  size_t nf = p[i++];
  if (nf + 1 > n - i)
    return fail(err, errlen, CELLAR_EPROTO, "truncated FORWARD_WRITE");
  *from = CBYTES(p + i, nf);
  i += nf;
  unsigned type = p[i++];
  if (type != FRAME_PUT && type != FRAME_DELETE)
    return fail(err, errlen, CELLAR_EBADTYPE,
                "FORWARD_WRITE of frame type %u (PUT or DELETE only)", type);
  return wire_decode_request(type, 0, p + i, n - i, out, err, errlen);
}

uint8_t *wire_forward_reply_encode(uint64_t fid, const uint8_t *frame,
                                   size_t flen, size_t *len) {
  if (flen < FRAME_HEADER_SIZE) return NULL;
  size_t body = flen - FRAME_HEADER_SIZE;
  uint8_t *out = malloc(9 + body);
  if (out == NULL) return NULL;
  out[0] = FORWARD_VERSION;
  put_u64(out + 1, fid);
  if (body) memcpy(out + 9, frame + FRAME_HEADER_SIZE, body);
  *len = 9 + body;
  return out;
}

int wire_forward_reply_decode(const uint8_t *p, size_t n, uint64_t *fid,
                              cbytes *response) {
  if (n < 9 || p[0] != FORWARD_VERSION) return CELLAR_EPROTO;
  *fid = get_u64(p + 1);
  *response = CBYTES(p + 9, n - 9);
  return 0;
}
