/*
** frame: the fixed 16-byte header in front of every message on a cellar
** socket, and a streaming reader that cuts a byte stream into frames.
**
**   offset size field
**      0    4  magic      0x43454C52 ("CELR"), big-endian
**      4    1  version    FRAME_VERSION (1)
**      5    1  type       enum frame_type
**      6    2  flags      FRAME_FLAG_RESPONSE on answers
**      8    4  request_id chosen by the client, echoed in the answer
**     12    4  length     payload bytes that follow (protobuf message)
**
** All integers big-endian. The length is checked against the reader's
** maximum before any byte of the payload is buffered or allocated.
**
** Reader states:
**
**     HEADER --16 bytes--> (check) --bad--> ERROR (sticky)
**        ^                    |
**        |                  BODY --length bytes--> on_frame() --+
**        +------------------------------------------------------+
*/
#ifndef CELLAR_FRAME_H
#define CELLAR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC 0x43454C52u
#define FRAME_VERSION 1
#define FRAME_HEADER_SIZE 16
#define FRAME_FLAG_RESPONSE 0x0001u

enum frame_type {
  FRAME_PING = 1,
  FRAME_CREATE_KEYSPACE = 2,
  FRAME_DROP_KEYSPACE = 3,
  FRAME_CREATE_TABLE = 4,
  FRAME_DROP_TABLE = 5,
  FRAME_DESCRIBE = 6,
  FRAME_PUT = 7,
  FRAME_GET = 8,
  FRAME_SLICE = 9,
  FRAME_DELETE = 10,
  FRAME_ADMIN = 11,
  FRAME_TYPE_END,           /* one past the last client type */
  /* node-to-node, on the peer port only */
  FRAME_PEER_FIRST = 32,
  FRAME_GOSSIP = 32,        /* GossipMessage */
  FRAME_SCHEMA_PULL = 33,   /* SchemaSync without records: send me yours */
  FRAME_SCHEMA_PUSH = 34,   /* SchemaSync with every schema record */
  FRAME_REPLICA_APPLY = 35, /* ReplicaMutation */
  FRAME_REPLICA_ACK = 36,   /* ReplicaAck */
  FRAME_REPLICA_READ = 37,  /* ReplicaRead */
  FRAME_REPLICA_READ_REPLY = 38, /* ReplicaReadReply */
  FRAME_STREAM_PULL = 39,   /* StreamPull */
  FRAME_STREAM_CHUNK = 40,  /* StreamChunk */
  FRAME_STREAM_ORDER = 41,  /* StreamOrder: pull these ranges from there */
  FRAME_STREAM_ORDER_DONE = 42, /* StreamOrderDone */
  FRAME_MERKLE_REQUEST = 43,   /* repair: build a Merkle tree of a range */
  FRAME_MERKLE_REPLY = 44,     /* repair: the tree (or an error) */
  FRAME_REPAIR_ROWS = 45,      /* repair: row digests of differing leaves */
  FRAME_REPAIR_ROWS_REPLY = 46, /* repair: the answer to REPAIR_ROWS */
  FRAME_FORWARD_WRITE = 47,    /* versions: a client write for a replica to
                                  coordinate (wire_forward_encode) */
  FRAME_FORWARD_REPLY = 48     /* versions: its client response */
};

typedef struct frame_header {
  uint32_t magic;
  uint8_t version;
  uint8_t type;
  uint16_t flags;
  uint32_t request_id;
  uint32_t length;
} frame_header;

/* Name of a frame type ("PUT"...), "UNKNOWN" otherwise. Static. */
const char *frame_type_name(unsigned type);

void frame_header_encode(const frame_header *h, uint8_t out[FRAME_HEADER_SIZE]);

/* Decodes and checks a header: CELLAR_EPROTO on a bad magic,
** CELLAR_EBADVERSION on another version, CELLAR_ETOOBIG when length >
** max_len. The type is not checked (an unknown type is answered, not fatal).
** *h is filled even on error, so the caller can answer the request id. */
int frame_header_decode(const uint8_t in[FRAME_HEADER_SIZE], uint32_t max_len,
                        frame_header *h);

/*
** Called once per complete frame. payload: borrowed, valid only during the
** call. Returning non-zero stops the feed; that value is returned by
** frame_reader_feed and the reader stays usable.
*/
typedef int (*frame_cb)(void *arg, const frame_header *h,
                        const uint8_t *payload);

typedef struct frame_reader {
  uint32_t max_len;
  int state;                  /* 0 HEADER, 1 BODY, 2 ERROR */
  int err;                    /* sticky error once in ERROR */
  frame_header cur;           /* header of the frame being read; valid in
                                 BODY and, after an error, for reporting */
  uint8_t hdr[FRAME_HEADER_SIZE];
  size_t hdr_have;
  uint8_t *body;              /* malloc'd; only when a payload spans feeds */
  size_t body_have;
} frame_reader;

void frame_reader_init(frame_reader *r, uint32_t max_len);
void frame_reader_close(frame_reader *r);

/*
** Feeds n bytes. Complete frames go to cb, in order; a payload that lies
** whole inside p is passed without a copy. Returns 0 when all bytes were
** consumed, a negative cellar code when the stream is broken (sticky: later
** feeds return it again; r->cur holds the offending header), or cb's
** non-zero value. *consumed (may be NULL) is set to the bytes used.
*/
int frame_reader_feed(frame_reader *r, const uint8_t *p, size_t n,
                      frame_cb cb, void *arg, size_t *consumed);

#endif
