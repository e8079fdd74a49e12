/*
** frame: the 16-byte frame header and the streaming frame reader (see
** frame.h for the layout and docs/protocol.md for the rules around it).
**
** Design notes (reader):
**
**   1. The header is checked (magic, version, length <= max_len) before a
**      single payload byte is buffered or allocated, so a peer announcing a
**      4 GiB frame costs nothing.
**   2. A payload that lies whole inside the bytes of one feed is handed to
**      the callback in place: no copy, no allocation. Only a payload that
**      spans feeds is gathered, into one malloc of exactly `length` bytes.
**   3. A header split across feeds is gathered in r->hdr (16 bytes, inline).
**   4. Before the callback runs, the reader is already back in HEADER state
**      and owns no buffer: whatever the callback returns, that frame is
**      consumed, and the reader can be fed again (or closed) at once.
**   5. ERROR is sticky: once a header failed its check the stream cannot be
**      resynchronised, every later feed returns the same code and consumes
**      nothing. r->cur keeps the offending header, so the caller can answer
**      its request id before closing the connection.
**
**      HEADER --16 bytes, frame_header_decode()--+--bad--> ERROR (sticky)
**        ^                                       |
**        |  length 0, or payload whole in input  v
**        +<---------- on_frame() <----------- (ok) --payload spans feeds-->
**        |                                                                |
**        +<---- on_frame(), free(body) <---- BODY (gathering r->body) <---+
*/
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "frame.h"

enum { ST_HEADER = 0, ST_BODY = 1, ST_ERROR = 2 };

static const char *const type_names[FRAME_TYPE_END] = {
  [FRAME_PING] = "PING",
  [FRAME_CREATE_KEYSPACE] = "CREATE_KEYSPACE",
  [FRAME_DROP_KEYSPACE] = "DROP_KEYSPACE",
  [FRAME_CREATE_TABLE] = "CREATE_TABLE",
  [FRAME_DROP_TABLE] = "DROP_TABLE",
  [FRAME_DESCRIBE] = "DESCRIBE",
  [FRAME_PUT] = "PUT",
  [FRAME_GET] = "GET",
  [FRAME_SLICE] = "SLICE",
  [FRAME_DELETE] = "DELETE",
  [FRAME_ADMIN] = "ADMIN",
};

const char *frame_type_name(unsigned type) {
  if (type < FRAME_TYPE_END && type_names[type] != NULL) return type_names[type];
  switch (type) {                           /* peer port */
    case FRAME_GOSSIP: return "GOSSIP";
    case FRAME_SCHEMA_PULL: return "SCHEMA_PULL";
    case FRAME_SCHEMA_PUSH: return "SCHEMA_PUSH";
    case FRAME_REPLICA_APPLY: return "REPLICA_APPLY";
    case FRAME_REPLICA_ACK: return "REPLICA_ACK";
    case FRAME_REPLICA_READ: return "REPLICA_READ";
    case FRAME_REPLICA_READ_REPLY: return "REPLICA_READ_REPLY";
    case FRAME_STREAM_PULL: return "STREAM_PULL";
    case FRAME_STREAM_CHUNK: return "STREAM_CHUNK";
    case FRAME_STREAM_ORDER: return "STREAM_ORDER";
    case FRAME_STREAM_ORDER_DONE: return "STREAM_ORDER_DONE";
    case FRAME_MERKLE_REQUEST: return "MERKLE_REQUEST";
    case FRAME_MERKLE_REPLY: return "MERKLE_REPLY";
    case FRAME_REPAIR_ROWS: return "REPAIR_ROWS";
    case FRAME_REPAIR_ROWS_REPLY: return "REPAIR_ROWS_REPLY";
    case FRAME_FORWARD_WRITE: return "FORWARD_WRITE";
    case FRAME_FORWARD_REPLY: return "FORWARD_REPLY";
  }
  return "UNKNOWN";
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void frame_header_encode(const frame_header *h, uint8_t out[FRAME_HEADER_SIZE]) {
  put_be32(out, h->magic);
  out[4] = h->version;
  out[5] = h->type;
  out[6] = (uint8_t)(h->flags >> 8);
  out[7] = (uint8_t)h->flags;
  put_be32(out + 8, h->request_id);
  put_be32(out + 12, h->length);
}

int frame_header_decode(const uint8_t in[FRAME_HEADER_SIZE], uint32_t max_len,
                        frame_header *h) {
  h->magic = get_be32(in);
  h->version = in[4];
  h->type = in[5];
  h->flags = (uint16_t)(((unsigned)in[6] << 8) | in[7]);
  h->request_id = get_be32(in + 8);
  h->length = get_be32(in + 12);
  if (h->magic != FRAME_MAGIC) return CELLAR_EPROTO;
  if (h->version != FRAME_VERSION) return CELLAR_EBADVERSION;
  if (h->length > max_len) return CELLAR_ETOOBIG;
  return 0;
}

void frame_reader_init(frame_reader *r, uint32_t max_len) {
  memset(r, 0, sizeof(*r));
  r->max_len = max_len;
  r->state = ST_HEADER;
}

void frame_reader_close(frame_reader *r) {
  free(r->body);
  r->body = NULL;
  r->body_have = 0;
  r->hdr_have = 0;
}

/* Delivers one complete frame (design note 4): the reader is reset to
** HEADER before cb runs; a gathered body is freed after it returns. */
static int deliver(frame_reader *r, const uint8_t *payload, uint8_t *owned,
                   frame_cb cb, void *arg) {
  /* An empty payload still gets a valid pointer, never NULL. */
  static const uint8_t empty[1];
  frame_header h = r->cur;
  r->state = ST_HEADER;
  r->hdr_have = 0;
  r->body = NULL;
  r->body_have = 0;
  int rc = cb(arg, &h, h.length ? payload : empty);
  free(owned);
  return rc;
}

int frame_reader_feed(frame_reader *r, const uint8_t *p, size_t n,
                      frame_cb cb, void *arg, size_t *consumed) {
  size_t off = 0;
  int rc = 0;

  while (rc == 0 && r->state != ST_ERROR) {
    size_t avail = n - off;
    if (r->state == ST_HEADER) {
      const uint8_t *hp;
      if (r->hdr_have == 0 && avail >= FRAME_HEADER_SIZE) {
        hp = p + off;                         /* whole header in place */
        off += FRAME_HEADER_SIZE;
      } else {
        if (avail == 0) break;
        size_t take = FRAME_HEADER_SIZE - r->hdr_have;
        if (take > avail) take = avail;
        memcpy(r->hdr + r->hdr_have, p + off, take);
        r->hdr_have += take;
        off += take;
        if (r->hdr_have < FRAME_HEADER_SIZE) break;
        hp = r->hdr;
      }
      r->hdr_have = 0;
      int bad = frame_header_decode(hp, r->max_len, &r->cur);
      if (bad != 0) {
        r->state = ST_ERROR;
        r->err = bad;
        break;
      }
      avail = n - off;
      if (r->cur.length == 0 || avail >= r->cur.length) {
        const uint8_t *payload = p + off;     /* design note 2 */
        off += r->cur.length;
        rc = deliver(r, payload, NULL, cb, arg);
        continue;
      }
      r->body = malloc(r->cur.length);        /* after the check: note 1 */
      if (r->body == NULL) {
        r->state = ST_ERROR;
        r->err = CELLAR_ENOMEM;
        break;
      }
      r->body_have = 0;
      r->state = ST_BODY;
    } else {                                  /* ST_BODY */
      if (avail == 0) break;
      size_t take = r->cur.length - r->body_have;
      if (take > avail) take = avail;
      memcpy(r->body + r->body_have, p + off, take);
      r->body_have += take;
      off += take;
      if (r->body_have == r->cur.length) {
        uint8_t *body = r->body;
        rc = deliver(r, body, body, cb, arg);
      }
    }
  }
  if (consumed) *consumed = off;
  if (rc != 0) return rc;
  return r->state == ST_ERROR ? r->err : 0;
}
