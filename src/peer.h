/*
** peer: node-to-node messaging on the libuv loop, with the same 16-byte
** frames as the client protocol (src/frame.h) on the node's peer port.
**
** The model is "send to an address": peer_send() queues a frame for the
** node at host:port over this node's one outbound connection to it
** (opened on first use, re-opened after a failure). Inbound connections
** are only read. A message that needs an answer carries the sender's peer
** address, and the answer travels over the answerer's own outbound
** connection. Sends are best effort: when a connection fails, its queued
** frames are dropped (gossip and every later protocol on top tolerate
** loss; they retry).
**
** Everything runs on the loop thread.
*/
#ifndef CELLAR_PEER_H
#define CELLAR_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "frame.h"

typedef struct peer peer;

/* Called on the loop thread for each inbound frame. payload: borrowed,
** valid during the call. */
typedef void (*peer_handler)(void *arg, const frame_header *h,
                             const uint8_t *payload);

/* loop borrowed. *out: caller frees with peer_free() after peer_close's
** callback ran. */
int peer_new(uv_loop_t *loop, uint32_t max_frame, size_t max_queue_bytes,
             peer_handler fn, void *arg, peer **out);

/* Listens on host:port. 0 or CELLAR_EIO (logged). */
int peer_listen(peer *p, const char *host, int port);

/* Queues one frame (header + payload, copied) to addr "host:port".
** 0, CELLAR_EINVAL (bad address), CELLAR_EOVERLOAD (queue for that
** address is full: the frame is dropped). */
int peer_send(peer *p, const char *addr, unsigned type, uint32_t id,
              const uint8_t *payload, size_t len);

/* Drops the outbound connection to addr and what is queued for it (the
** peer was marked down: a connection stuck in TCP retransmission backoff
** would otherwise delay the first messages after it comes back). The next
** send reconnects. */
void peer_reset(peer *p, const char *addr);

/*
** Connection-level liveness, faster than the failure detector: fn(arg,
** addr) is called on the loop when the outbound connection to addr fails
** (refused, reset, timed out); peer_failing says whether the last attempt
** to reach addr failed within the last PEER_FAILING_NS and no connection
** has succeeded since.
*/
#define PEER_FAILING_NS (10ull * 1000000000ull)
void peer_set_fail_cb(peer *p, void (*fn)(void *arg, const char *addr), void *arg);
int peer_failing(const peer *p, const char *addr, uint64_t now_ns);
/* The peer at addr is known to be back (the failure detector marked it up:
** it restarted, or was heard of again): forgets the last failure to reach
** it, and a connection attempt already under way, begun before this news,
** does not count as a failure when it fails (its frames are retried on a
** fresh attempt). Without this, a failure from while the peer was down
** would keep it "failing" for up to PEER_FAILING_NS after it is back,
** until this node happened to connect to it again. */
void peer_clear_failing(peer *p, const char *addr);

/* Closes every handle; done(arg) runs on the loop once all are closed. */
void peer_close(peer *p, void (*done)(void *), void *arg);
void peer_free(peer *p);

typedef struct peer_stats {
  uint64_t frames_sent, frames_received, frames_dropped;
  uint64_t connects, connect_failures;
} peer_stats;
void peer_get_stats(const peer *p, peer_stats *out);

#endif
