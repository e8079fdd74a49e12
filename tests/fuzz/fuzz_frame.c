/*
** fuzz_frame: libFuzzer target for the frame reader and the wire decoders.
**
** The first byte of the input selects the mode:
**
**   bit 7 clear: the rest is a byte stream fed through a frame_reader
**                (max_len 1 MiB) in chunks of (selector & 0x7f) + 1 bytes
**                (selector 0: one feed of everything). Every frame goes to
**                wire_decode_request; a callback stop (request id ending in
**                0xF) is resumed with the rest of the chunk.
**   bit 7 set:   the rest is one payload of type (selector & 0x7f),
**                decoded directly.
**
** Every decoded request is walked (so ASan sees every pointer it holds),
** re-encoded as a response (PUT rows as result rows, schema definitions as
** a DESCRIBE answer, an empty success otherwise) and checked after unpacking;
** every failure is encoded as an error frame. Everything is freed: leaks
** are reported by libFuzzer's leak checker.
**
** Seeds: tests/fuzz/corpus (written by `test_wire write_corpus`).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cellar.pb-c.h"
#include "frame.h"
#include "wire.h"

#define FUZZ_MAX_LEN (1u << 20)

static volatile uint64_t sink;

static void touch(cbytes b) {
  uint64_t h = b.n;
  for (size_t i = 0; i < b.n; i++) h = h * 31 + b.p[i];
  sink += h;
}

static void walk(const request *r) {
  sink += strlen(r->keyspace) + strlen(r->table) + strlen(r->command) +
          strlen(r->argument);
  touch(r->partition);
  touch(r->ck);
  touch(r->start);
  touch(r->end);
  touch(r->cursor);
  for (size_t i = 0; i < r->ncols; i++) touch(r->cols[i]);
  for (size_t i = 0; i < r->nrows; i++) {
    touch(r->rows[i].ck);
    for (size_t j = 0; j < r->rows[i].ncells; j++) {
      touch(r->rows[i].cells[j].name);
      touch(r->rows[i].cells[j].value);
    }
  }
  if (r->consistency < CELLAR_CL_ONE || r->consistency > CELLAR_CL_ANY) abort();
}

static Cellar__Wire__Response *unpack_answer(const uint8_t *b, size_t n,
                                             const request *r) {
  frame_header h;
  if (b == NULL || n < FRAME_HEADER_SIZE) abort();
  if (frame_header_decode(b, CELLAR_MAX_FRAME_BYTES, &h) != 0) abort();
  if (h.type != r->type || h.request_id != r->id ||
      h.flags != FRAME_FLAG_RESPONSE || h.length != n - FRAME_HEADER_SIZE)
    abort();
  Cellar__Wire__Response *m =
      cellar__wire__response__unpack(NULL, h.length, b + FRAME_HEADER_SIZE);
  if (m == NULL) abort();
  return m;
}

static int bin_eq(ProtobufCBinaryData d, cbytes b) {
  return d.len == b.n && (b.n == 0 || memcmp(d.data, b.p, b.n) == 0);
}

/* PUT rows -> result rows -> Response -> the same bytes. */
static void echo_put(const request *r) {
  size_t ncells = 0;
  for (size_t i = 0; i < r->nrows; i++) ncells += r->rows[i].ncells;
  res_row *rows = calloc(r->nrows, sizeof(*rows));
  res_cell *cells = calloc(ncells ? ncells : 1, sizeof(*cells));
  if (rows == NULL || cells == NULL) abort();
  res_cell *c = cells;
  for (size_t i = 0; i < r->nrows; i++) {
    rows[i].ck = r->rows[i].ck.p;
    rows[i].nck = r->rows[i].ck.n;
    rows[i].cells = c;
    rows[i].ncells = rows[i].capcells = r->rows[i].ncells;
    for (size_t j = 0; j < r->rows[i].ncells; j++, c++) {
      c->name = r->rows[i].cells[j].name.p;
      c->nname = r->rows[i].cells[j].name.n;
      c->value = r->rows[i].cells[j].value.p;
      c->nvalue = r->rows[i].cells[j].value.n;
      c->timestamp = r->timestamp;
      c->expires_at = r->ttl;
    }
  }
  result res;
  memset(&res, 0, sizeof(res));
  res.rows = rows;
  res.nrows = r->nrows;
  res.cursor = r->partition.p;
  res.ncursor = r->partition.n;
  size_t n = 0;
  uint8_t *b = wire_encode_response(r->type, r->id, &res, &n);
  Cellar__Wire__Response *m = unpack_answer(b, n, r);
  if (m->code == 0) {
    if (m->n_rows != r->nrows || !bin_eq(m->cursor, r->partition)) abort();
    for (size_t i = 0; i < r->nrows; i++) {
      const Cellar__Wire__Row *row = m->rows[i];
      if (!bin_eq(row->clustering, r->rows[i].ck) ||
          row->n_cells != r->rows[i].ncells)
        abort();
      for (size_t j = 0; j < row->n_cells; j++)
        if (!bin_eq(row->cells[j]->name, r->rows[i].cells[j].name) ||
            !bin_eq(row->cells[j]->value, r->rows[i].cells[j].value) ||
            row->cells[j]->timestamp != r->timestamp ||
            row->cells[j]->expires_at != r->ttl)
          abort();
    }
  } else if (m->code != CELLAR_ETOOBIG) {
    abort();
  }
  cellar__wire__response__free_unpacked(m, NULL);
  free(b);
  free(rows);
  free(cells);
}

/* CREATE_KEYSPACE / CREATE_TABLE definitions -> DESCRIBE answer. */
static void echo_schema(const request *r) {
  result res;
  memset(&res, 0, sizeof(res));
  keyspace_def ks = r->ks_def;
  table_def tb = r->table_def;
  if (r->type == FRAME_CREATE_KEYSPACE) {
    res.keyspaces = &ks;
    res.nkeyspaces = 1;
  } else {
    res.tables = &tb;
    res.ntables = 1;
  }
  size_t n = 0;
  uint8_t *b = wire_encode_response(r->type, r->id, &res, &n);
  Cellar__Wire__Response *m = unpack_answer(b, n, r);
  if (r->type == FRAME_CREATE_KEYSPACE) {
    if (m->n_keyspaces != 1 || strcmp(m->keyspaces[0]->name, ks.name) != 0)
      abort();
    const Cellar__Wire__Replication *rep = m->keyspaces[0]->replication;
    if (rep == NULL) abort();
    if (ks.strategy == REPL_SIMPLE && rep->replication_factor != ks.rf) abort();
    if (ks.strategy == REPL_NETWORK_TOPOLOGY) {
      if (rep->n_datacenters != ks.ndcs) abort();
      for (size_t i = 0; i < ks.ndcs; i++)
        if (strcmp(rep->datacenters[i]->key, ks.dcs[i].name) != 0 ||
            rep->datacenters[i]->value != ks.dcs[i].rf)
          abort();
    }
  } else {
    if (m->n_tables != 1 || strcmp(m->tables[0]->name, tb.name) != 0 ||
        strcmp(m->tables[0]->keyspace, tb.keyspace) != 0 ||
        m->tables[0]->gc_grace_seconds != tb.gc_grace ||
        m->tables[0]->default_ttl != tb.default_ttl)
      abort();
  }
  cellar__wire__response__free_unpacked(m, NULL);
  free(b);
}

static void decode_one(unsigned type, uint32_t id, const uint8_t *p,
                       size_t n) {
  request *r = NULL;
  char err[256];
  int rc = wire_decode_request(type, id, p, n, &r, err, sizeof(err));
  if (rc != 0) {
    if (r != NULL || rc >= 0 || memchr(err, '\0', sizeof(err)) == NULL) abort();
    size_t len = 0;
    uint8_t *b = wire_encode_error(type, id, rc, err, &len);
    if (b == NULL || len < FRAME_HEADER_SIZE) abort();
    free(b);
    return;
  }
  if (r == NULL || r->type != type || r->id != id) abort();
  walk(r);
  if (r->type == FRAME_PUT) {
    echo_put(r);
  } else if (r->type == FRAME_CREATE_KEYSPACE ||
             r->type == FRAME_CREATE_TABLE) {
    echo_schema(r);
  } else {                              /* an empty success */
    result res;
    memset(&res, 0, sizeof(res));
    size_t len = 0;
    uint8_t *b = wire_encode_response(r->type, r->id, &res, &len);
    Cellar__Wire__Response *m = unpack_answer(b, len, r);
    if (m->code != 0 || len != FRAME_HEADER_SIZE) abort();
    cellar__wire__response__free_unpacked(m, NULL);
    free(b);
  }
  wire_request_free(r);
}

static int on_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  (void)arg;
  if (h->length > FUZZ_MAX_LEN) abort();
  decode_one(h->type, h->request_id, payload, h->length);
  return (h->request_id & 0xF) == 0xF ? 1 : 0;   /* exercise stop/resume */
}

static void feed_stream(const uint8_t *p, size_t n, size_t chunk) {
  frame_reader r;
  frame_reader_init(&r, FUZZ_MAX_LEN);
  size_t off = 0;
  while (off < n) {
    size_t len = chunk && chunk < n - off ? chunk : n - off;
    size_t pos = 0;
    while (pos < len) {
      size_t used = 0;
      int rc = frame_reader_feed(&r, p + off + pos, len - pos, on_frame, NULL,
                                 &used);
      if (used > len - pos) abort();
      pos += used;
      if (rc < 0) {                     /* broken stream: sticky */
        if (frame_reader_feed(&r, p, n, on_frame, NULL, &used) != rc ||
            used != 0)
          abort();
        frame_reader_close(&r);
        return;
      }
      if (rc == 0 && pos != len) abort();
    }
    off += len;
  }
  frame_reader_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t sel = data[0];
  if (sel & 0x80)
    decode_one(sel & 0x7fu, 0x01020304u, data + 1, size - 1);
  else
    feed_stream(data + 1, size - 1, sel ? (size_t)sel + 1 : 0);
  return 0;
}
