/*
** stream: moving token ranges of data between nodes, for bootstrap,
** decommission and removenode. The
** receiving node pulls each range chunk by chunk (STREAM_PULL ->
** STREAM_CHUNK), applies every chunk through storage_apply_entries (the
** same merge as every write) before it asks for the next one: flow control
** comes from the pull, and a chunk applied twice changes nothing.
**
** Receiver, per range:
**
**   PULL(lo, hi, after=none) --chunk--> apply --> done? next range
**        ^                                 |
**        +---- PULL(lo=token(last), after=last key) <---+
**   no chunk within STREAM_TIMEOUT or an error: the same pull again, up to
**   STREAM_RETRIES times; then the bootstrap fails.
**
** Several pull jobs may run at once (a bootstrap, and any number of
** STREAM_ORDERs from nodes that decommission or remove a node), each with
** its own ranges, pull ids and done callback. A STREAM_ORDER from node X
** runs as a job whose end is answered to X with a STREAM_ORDER_DONE of the
** same id.
**
** The sending side answers STREAM_PULL from a storage scan on a worker.
** Everything else runs on the loop thread.
*/
#ifndef CELLAR_STREAM_H
#define CELLAR_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "cluster.h"
#include "engine.h"
#include "frame.h"

#define STREAM_CHUNK_BYTES (1u << 20)
#define STREAM_TIMEOUT_MS 10000
#define STREAM_RETRIES 3

typedef struct stream stream;

/* All borrowed: they outlive the stream. */
int stream_new(uv_loop_t *loop, engine *eng, cluster *cl, stream **out);
void stream_free(stream *s);

/*
** Starts a pull job: pulls every range (the array is copied) and calls
** done(arg, rc, entries) on the loop once all are applied (rc 0), or when
** one fails for good. Jobs run concurrently. 0, or a code (done is then
** not called).
*/
int stream_pull(stream *s, const cluster_range *ranges, size_t n,
                void (*done)(void *arg, int rc, uint64_t entries), void *arg);

/* The bootstrap's job: like stream_pull, but one bootstrap at a time
** (CELLAR_EINVAL while another runs; done is then not called). */
int stream_bootstrap(stream *s, const cluster_range *ranges, size_t n,
                     void (*done)(void *arg, int rc, uint64_t entries),
                     void *arg);

/* STREAM_PULL, STREAM_CHUNK and STREAM_ORDER frames (from the cluster's
** handler). */
void stream_on_frame(stream *s, const frame_header *h, const uint8_t *payload);

/* Stops: every job in progress ends with CELLAR_ESHUTDOWN. */
void stream_stop(stream *s);

#endif
