/*
** server: the client-facing TCP listener of a node, on the libuv loop.
**
** Each connection is a small state machine (see server.c). Frames are cut
** and decoded on the loop thread; the requests decoded from one read go to
** a worker thread as one batch (uv_queue_work), where the engine runs them
** and encodes the answers; the loop thread only writes the bytes out. The
** loop never touches RocksDB.
*/
#ifndef CELLAR_SERVER_H
#define CELLAR_SERVER_H

#include <uv.h>
#include "config.h"
#include "engine.h"

typedef struct server server;

/* loop, cfg and eng are borrowed and must outlive the server.
** *out: caller frees with server_free() after the drain completed. */
int server_new(uv_loop_t *loop, const config *cfg, engine *eng, server **out);

/* Binds and listens on cfg->listen_host:listen_port. 0 or CELLAR_EIO
** (logged with the reason). */
int server_start(server *s);

/*
** Stops accepting, stops reading, lets requests already in work finish and
** their answers be written, closes every connection, then calls done(arg)
** on the loop thread. Called once.
*/
void server_drain(server *s, void (*done)(void *arg), void *arg);

void server_free(server *s);

/* Data requests whose replicas include other nodes go to p (borrowed). */
typedef struct proxy proxy;
void server_set_proxy(server *s, proxy *p);

/* Counters for info and tests. */
typedef struct server_stats {
  uint64_t connections_total;
  uint64_t connections_open;
  uint64_t requests;
  uint64_t errors;             /* error answers sent */
  uint64_t protocol_errors;    /* connections closed for a broken stream */
} server_stats;
void server_get_stats(server *s, server_stats *out);

#endif
