/*
** gossip: cluster membership by anti-entropy gossip, as a state machine that
** does no I/O (STYLE.md rule 6). The node's transport and the simulator feed
** it ticks and messages; it answers through the two callbacks of gossip_io.
**
** Every node keeps an endpoint state per member it knows: host id,
** generation (bumped at each start), heartbeat, and application states
** (status, addresses, datacenter, rack, tokens, load, schema version). Each
** value carries a version from its owner's single counter, so "what changed
** since version v" is well defined. A round is three messages:
**
**     A --SYN(digests: host, generation, max version)--> B
**     B --ACK(what B lacks as digests; what A lacks as deltas)--> A
**     A --ACK2(deltas B asked for)--> B
**
** so only what the other side lacks travels. Each tick (every second) a node
** bumps its heartbeat, gossips with one random live peer, maybe one
** unreachable peer (probability unreachable / (live + 1)), and maybe a seed
** (always when it knows no live peer; else with probability
** seeds / (live + unreachable) when the live peer chosen was not a seed),
** then runs the phi accrual failure detector over every peer.
**
** Up/down is this node's own view: a peer is marked down when its phi
** passes the threshold, or at once when it announces "shutdown", and up
** again when a newer heartbeat arrives. When this node's own ticks stop
** for longer than GOSSIP_MAX_LOCAL_PAUSE_NS (it was paused, or starved),
** the silence was its own: every peer's detector is rearmed instead of
** convicting everyone.
** A generation more than GOSSIP_MAX_GENERATION_AHEAD seconds ahead of this
** node's wall clock is refused (a corrupted or malicious state).
*/
#ifndef CELLAR_GOSSIP_H
#define CELLAR_GOSSIP_H

#include <stddef.h>
#include <stdint.h>
#include "fd.h"

#define GOSSIP_HOST_ID_MAX 40
#define GOSSIP_ADDR_MAX 64
#define GOSSIP_MAX_SEEDS 16
#define GOSSIP_MAX_GENERATION_AHEAD (365u * 86400u)
#define GOSSIP_MAX_LOCAL_PAUSE_NS (5000000000ull)

/* Application states. Never renumber: they travel on the wire. */
enum gossip_key {
  GK_STATUS = 0,      /* "joining" | "normal" | "shutdown" | "leaving" | "left" */
  GK_DC = 1,
  GK_RACK = 2,
  GK_TOKENS = 3,      /* comma-separated decimal tokens */
  GK_ADDR = 4,        /* client address host:port */
  GK_PEER_ADDR = 5,   /* node-to-node address host:port */
  GK_LOAD = 6,        /* bytes on disk, decimal */
  GK_SCHEMA = 7,      /* schema version, hex */
  GK_REMOVED = 8,     /* hosts this node removed: "host:generation,..." */
  GK_COUNT = 9
};

const char *gossip_key_name(int key);

typedef struct gossip_value {
  char *value;                 /* malloc'd by the gossip; NULL when unset */
  uint64_t version;
} gossip_value;

typedef struct gossip_endpoint {
  char host_id[GOSSIP_HOST_ID_MAX];
  uint64_t generation;
  uint64_t heartbeat;          /* version of the last heartbeat */
  gossip_value states[GK_COUNT];
  /* local view, not gossiped */
  int alive;
  int is_self;
  fd_history fd;
} gossip_endpoint;

typedef struct gossip_digest {
  char host_id[GOSSIP_HOST_ID_MAX];
  uint64_t generation;
  uint64_t max_version;
} gossip_digest;

/* What one endpoint's owner has newer than some version. */
typedef struct gossip_delta {
  char host_id[GOSSIP_HOST_ID_MAX];
  uint64_t generation;
  uint64_t heartbeat;
  size_t nitems;
  struct {
    int key;
    const char *value;         /* borrowed from the sender's gossip state */
    uint64_t version;
  } items[GK_COUNT];
} gossip_delta;

enum gossip_msg_type { GOSSIP_SYN = 1, GOSSIP_ACK = 2, GOSSIP_ACK2 = 3 };

typedef struct gossip_msg {
  int type;
  const char *cluster;         /* a node ignores messages of another cluster */
  size_t ndigests;
  gossip_digest *digests;      /* SYN: all known; ACK: requests */
  size_t ndeltas;
  gossip_delta *deltas;        /* ACK, ACK2 */
} gossip_msg;

enum gossip_event {
  GOSSIP_EV_JOIN = 1,          /* first heard of */
  GOSSIP_EV_UP = 2,
  GOSSIP_EV_DOWN = 3,
  GOSSIP_EV_CHANGE = 4,        /* an application state changed */
  GOSSIP_EV_RESTART = 5        /* a new generation */
};

/*
** The edges. send: deliver m to the node at address to (the message and
** everything it points to are borrowed for the call only). event: a
** member's view changed. wall_s: seconds since the epoch (generation check).
*/
typedef struct gossip_io {
  void *arg;
  void (*send)(void *arg, const char *to, const gossip_msg *m);
  void (*event)(void *arg, const char *host_id, int ev);
  uint64_t (*wall_s)(void *arg);
} gossip_io;

typedef struct gossip_config {
  const char *cluster;
  const char *host_id;
  uint64_t generation;
  const char *peer_addr;       /* this node's node-to-node address */
  size_t nseeds;
  const char *seeds[GOSSIP_MAX_SEEDS];
  double phi_threshold;        /* 0 = FD_DEFAULT_THRESHOLD */
  uint64_t interval_ns;        /* 0 = 1 s */
  uint64_t rng_seed;
} gossip_config;

typedef struct gossip gossip;

/* *out: caller frees with gossip_free(). Strings of cfg are copied. */
int gossip_new(const gossip_config *cfg, const gossip_io *io, uint64_t now_ns,
               gossip **out);
void gossip_free(gossip *g);

/* Sets one of this node's application states (copied); bumps its version. */
int gossip_set_local(gossip *g, int key, const char *value);

/* One round: heartbeat, gossip with chosen peers, failure detection. */
void gossip_tick(gossip *g, uint64_t now_ns);

/* Pushes this node's whole state (ACK2) to every live peer at once: used to
** announce "shutdown" without waiting for the next rounds. */
void gossip_push_self(gossip *g);

/* A message from the node at address from. */
void gossip_receive(gossip *g, const char *from, const gossip_msg *m,
                    uint64_t now_ns);

/* The view. Pointers are borrowed, valid until the next call into g. */
size_t gossip_count(const gossip *g);
const gossip_endpoint *gossip_at(const gossip *g, size_t i);
const gossip_endpoint *gossip_find(const gossip *g, const char *host_id);
double gossip_phi(const gossip *g, const char *host_id, uint64_t now_ns);
/* Highest version of any state of e. */
uint64_t gossip_max_version(const gossip_endpoint *e);

/* Forgets a member (after removenode or when it left long ago). */
int gossip_forget(gossip *g, const char *host_id);

/*
** Removes a member for good: forgets it (unless what is known of it has a
** newer generation than generation) and from then on refuses any state of
** it of that generation or older, from whoever gossips it. 0, or
** CELLAR_EINVAL for this node itself.
*/
int gossip_remove(gossip *g, const char *host_id, uint64_t generation);
/* host_id at generation was removed (gossip_remove). */
int gossip_is_removed(const gossip *g, const char *host_id, uint64_t generation);

#endif
