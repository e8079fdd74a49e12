/*
** wire: protobuf payloads <-> the node's request and result structs.
** The protobuf-c types of proto/cellar.proto stay inside this module (and
** inside the client library's protocol edge, src/client.c).
**
** Decoding validates everything a request's shape can be checked for
** without the schema: required fields, name syntax, key/column/value sizes
** against the CELLAR_MAX_* limits, consistency level range, delete scope.
*/
#ifndef CELLAR_WIRE_H
#define CELLAR_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "types.h"
#include "schema.h"
#include "result.h"

/* A decoded request. Every pointer is borrowed from the request itself and
** valid until wire_request_free(). */
typedef struct request {
  uint8_t type;                /* enum frame_type */
  uint32_t id;                 /* request id of the frame */
  const char *keyspace;        /* data ops and drops; "" when absent */
  const char *table;
  cbytes partition;
  uint8_t consistency;         /* cellar_consistency_t, never DEFAULT (ONE) */
  /* PUT */
  size_t nrows;
  req_row *rows;
  uint32_t ttl;
  int64_t timestamp;           /* 0 = server clock */
  /* GET, DELETE */
  cbytes ck;
  size_t ncols;
  cbytes *cols;
  /* SLICE */
  int has_start, has_end;
  cbytes start, end;
  uint32_t limit;
  cbytes cursor;
  /* DELETE */
  int scope;                   /* enum storage_delete_scope */
  /* PUT, DELETE: causal contexts from reads (siblings tables; empty =
  ** blind). context: the request's (PutRequest / DeleteRequest.context),
  ** row_ctx[i]: row i's own (Row.context), NULL when no row has one. */
  cbytes context;
  cbytes *row_ctx;
  int forwarded;               /* set by the proxy: came in a FORWARD_WRITE */
  /* CREATE_KEYSPACE, CREATE_TABLE, DROP_*, DESCRIBE */
  keyspace_def ks_def;
  table_def table_def;
  int if_not_exists, if_exists;
  /* ADMIN */
  const char *command, *argument;
  void *pb;                    /* the unpacked protobuf message (owned) */
} request;

/*
** Decodes the payload of a frame of the given type into a new request.
** Returns 0 and *out (caller frees with wire_request_free), or a negative
** code with a message in err (errlen bytes, NUL-terminated) and *out NULL:
** CELLAR_EBADTYPE, CELLAR_EPROTO, CELLAR_ETOOBIG, CELLAR_EBADNAME,
** CELLAR_EBADCL, CELLAR_EINVAL.
*/
int wire_decode_request(unsigned type, uint32_t id, const uint8_t *payload,
                        size_t len, request **out, char *err, size_t errlen);
void wire_request_free(request *r);

/*
** Encodes a complete response frame (header with FRAME_FLAG_RESPONSE, type,
** id, then the Response message) for res. Returns malloc'd bytes (caller
** frees with free()) and sets *len; NULL when out of memory.
*/
uint8_t *wire_encode_response(unsigned type, uint32_t id, const result *res,
                              size_t *len);

/*
** Peer frames of siblings tables (docs/versions.md): the coordinator of a
** write is a replica, so a node that is not one forwards the client's
** request whole (FRAME_FORWARD_WRITE) and relays the answer
** (FRAME_FORWARD_REPLY). Layout, big-endian:
**   FORWARD_WRITE  u8 version 1 | u64 forward id | u8 n, cluster name |
**                  u8 n, sender's peer address | u8 frame type (PUT,
**                  DELETE) | the client's request message (the rest)
**   FORWARD_REPLY  u8 version 1 | u64 forward id | the client Response
**                  message (the rest)
** Encoders return malloc'd bytes (caller frees) or NULL (out of memory).
** wire_forward_decode checks the envelope, then decodes the request with
** wire_decode_request (*out: caller frees with wire_request_free);
** cluster and from are borrowed from p. Errors as wire_decode_request.
*/
uint8_t *wire_forward_encode(uint64_t fid, const char *cluster,
                             const char *from, const request *req,
                             size_t *len);
int wire_forward_decode(const uint8_t *p, size_t n, uint64_t *fid,
                        cbytes *cluster, cbytes *from, request **out,
                        char *err, size_t errlen);
/* frame: a complete response frame (wire_encode_response). */
uint8_t *wire_forward_reply_encode(uint64_t fid, const uint8_t *frame,
                                   size_t flen, size_t *len);
/* *response: the Response payload, borrowed from p. 0 or CELLAR_EPROTO. */
int wire_forward_reply_decode(const uint8_t *p, size_t n, uint64_t *fid,
                              cbytes *response);

/* Same for an error alone (code and message), used before a request could
** be decoded. */
uint8_t *wire_encode_error(unsigned type, uint32_t id, int code,
                           const char *message, size_t *len);

#endif
