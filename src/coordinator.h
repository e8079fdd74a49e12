/*
** coordinator: the state machine of one client request on the node that
** coordinates it, for every consistency level (issue 4). It does no I/O
** (STYLE.md rule 6): the owner feeds it events (a replica's answer, the
** deadline passing) and drains the actions it emits (send this to that
** replica, store a hint, answer the client). It reads no clock and draws
** no random number, so the same code runs under the deterministic
** simulator (tests/sim/test_coordinator_sim.c) and in cellard.
**
** Writes (coord_write_new):
**   - Unavailable before sending: too few replicas alive for the level
**     (cl_check_alive) answers CELLAR_EUNAVAILABLE at once.
**   - Every alive replica of the local datacenter gets COORD_SEND_WRITE.
**     Per remote datacenter, the first alive replica gets
**     COORD_SEND_WRITE_FORWARD with the list of the other alive replicas
**     of that datacenter, which it forwards the write to; they acknowledge
**     to the coordinator directly (one copy crosses the datacenter
**     boundary). Replicas believed down get COORD_STORE_HINT.
**   - The answer (COORD_ANSWER, code 0) goes out on the acknowledgement
**     that meets the level. Later acknowledgements are still recorded;
**     there is never a second answer.
**   - A replica that answers an error gets a hint; when the level can no
**     longer be met the client gets that error ("QUORUM failed: ...").
**   - At the deadline (coord_on_timeout) every replica that has not
**     answered gets a hint, and an unanswered client gets
**     CELLAR_ETIMEDOUT, "timed out: QUORUM required 2 acks, got 1".
**   - ANY: a hint that the owner reports stored (coord_on_hint_stored)
**     counts as an acknowledgement.
**
** Reads (coord_read_new):
**   - The replicas contacted are the first ones, in preference order, that
**     the level needs (local datacenter first; per datacenter for
**     EACH_QUORUM): full data from the first (COORD_SEND_DATA), a digest
**     from the others (COORD_SEND_DIGEST).
**   - All digests equal to the data's: the data is the answer.
**   - A mismatch: full data from every contacted replica (second round),
**     merged per cell with cell_merge; each contacted replica missing a
**     merged version gets COORD_READ_REPAIR with exactly those cells; the
**     client answer waits for the repair acknowledgements (blocking read
**     repair, at every level: a read that contacted k replicas leaves k
**     replicas with what it returned, so a following read whose replicas
**     intersect them cannot go back in time).
**   - A replica error fails the read with that error; the deadline fails
**     it with CELLAR_ETIMEDOUT ("timed out: QUORUM required 2 responses,
**     got 1"), and unacknowledged repairs then become hints carrying the
**     repair cells.
**
** Ownership: every pointer inside an action (forward lists, message,
** cells) is owned by the coordinator, valid until coord_free(). The owner
** frees a coordinator once coord_finished() says nothing more can happen.
** Replica indexes in events and actions are indexes into the replica list
** given at creation (coord_replica_index maps a ring member to its index).
*/
#ifndef CELLAR_COORDINATOR_H
#define CELLAR_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>
#include "cell.h"
#include "consistency.h"
#include "types.h"

/* ------------------------------------------------------------- cells */

/*
** One cell of a partition as replicas exchange it for reads: which cell
** (key: the clustering key and column, encoded by the caller so that
** memcmp orders them, shorter before its extensions) and its version
** (cell.h's decoded form: timestamp, tombstone, expiry, clock, value).
** Replicas answer reads with tombstones and expired cells included: the
** merge needs them. Row and partition tombstones travel as cells too
** (under keys the caller chooses); applying them to the cells they shadow
** is the caller's job after the merge.
*/
typedef struct coord_cell {
  cbytes key;          /* borrowed */
  cell v;              /* value and clock borrowed */
} coord_cell;

#define COORD_DIGEST_LEN 16

/*
** Digest of a replica's answer: MurmurHash3_x64_128 (seed 0, the two
** 64-bit halves written little-endian) over, for each cell in key order:
**     u32 big-endian key length | key | u32 big-endian encoding length |
**     cell_encode(v)
** The order of cells[] does not matter (sorted inside), the bytes hashed
** are the canonical encoding, so equal versions give equal digests on
** every node and platform. Not cryptographic: a collision (accidental
** odds 2^-128) only skips one read repair.
*/
void coord_digest(const coord_cell *cells, size_t n,
                  uint8_t out[COORD_DIGEST_LEN]);

/* ----------------------------------------------------------- actions */

typedef enum coord_action_kind {
  COORD_SEND_WRITE = 1,         /* send the mutation to replica */
  COORD_SEND_WRITE_FORWARD = 2, /* send it to replica, which forwards it to
                                   forward[] (its datacenter) */
  COORD_STORE_HINT = 3,         /* store a hint for replica: the mutation
                                   (writes) or cells (a timed-out repair) */
  COORD_SEND_DATA = 4,          /* read: ask replica for the full data */
  COORD_SEND_DIGEST = 5,        /* read: ask replica for coord_digest */
  COORD_READ_REPAIR = 6,        /* write cells to replica, await its ack */
  COORD_ANSWER = 7              /* answer the client: code, message, cells */
} coord_action_kind;

typedef struct coord_action {
  coord_action_kind kind;
  uint64_t id;                  /* the request id given at creation */
  uint32_t replica;             /* index in the replica list (not ANSWER) */
  uint32_t member;              /* that replica's ring member (not ANSWER) */
  size_t nforward;              /* SEND_WRITE_FORWARD */
  const uint32_t *forward;      /* replica indexes */
  const uint32_t *forward_members;  /* the same, as ring members */
  int code;                     /* ANSWER: 0 or a negative cellar code */
  const char *message;          /* ANSWER: "" or the error text */
  size_t ncells;                /* ANSWER of a read (merged, key order),
                                   READ_REPAIR, STORE_HINT of a repair */
  const coord_cell *cells;
} coord_action;

const char *coord_action_name(coord_action_kind k);

/* ------------------------------------------------------ the machine */

typedef struct coord_config {
  uint64_t id;                  /* request id, copied into every action */
  cellar_consistency_t level;
  const keyspace_def *ks;       /* borrowed for the call */
  const char *local_dc;         /* borrowed for the call; may be NULL */
  const cl_replica *replicas;   /* copied; order is preference: reads ask
                                   the first ones (local datacenter first) */
  size_t nreplicas;             /* at most CL_MAX_REPLICAS */
  uint64_t deadline_ns;         /* kept for the owner (coord_deadline) */
  size_t npending;              /* writes: the last npending replicas are
                                   pending (a node joining the ring gains
                                   this key): they get the write and each
                                   raises the acks required by one, as
                                   Cassandra does, so a level met now is
                                   still met by the replicas after the
                                   join */
  int no_forward;               /* writes: no forwarding, every remote
                                   replica gets its own SEND_WRITE */
} coord_config;

typedef enum coord_state {
  COORD_WAITING = 1,            /* write: acks; read: data and digests */
  COORD_READING_DATA = 2,       /* read: full data after a mismatch */
  COORD_REPAIRING = 3,          /* read: awaiting read repair acks */
  COORD_ANSWERED = 4,           /* write: answered, recording late acks */
  COORD_DONE = 5                /* nothing more happens: free it */
} coord_state;

typedef struct coord coord;

/*
** Creates a write / read coordinator and queues its first actions (sends,
** hints, or an answer when the level is invalid, CELLAR_EBADCL, or cannot
** be met, CELLAR_EUNAVAILABLE: request errors always come as an ANSWER).
** Returns 0 and *out (caller frees with coord_free), or CELLAR_EINVAL (no
** keyspace, more than CL_MAX_REPLICAS replicas), CELLAR_ENOMEM.
*/
int coord_write_new(const coord_config *cfg, coord **out);
int coord_read_new(const coord_config *cfg, coord **out);
void coord_free(coord *c);       /* NULL is fine */

/*
** Takes the next queued action into *out. Returns 1 when one was taken, 0
** when the queue is empty. Actions come out in the order they were
** emitted; drain after creation and after every event.
*/
int coord_next(coord *c, coord_action *out);

/*
** Events. Each returns 1 when it changed the request, 0 when it was
** ignored: a replica index out of range or not asked, a duplicate, a
** response of the wrong kind, anything after COORD_DONE.
**
** coord_on_ack: a write acknowledged by the replica (write), a read
**   repair applied by the replica (read).
** coord_on_error: the replica answered code (< 0) instead.
** coord_on_hint_stored: the hint emitted for the replica is durable
**   (counts for ANY; ignored otherwise).
** coord_on_hint_failed: the hint emitted for the replica was refused or
**   could not be written (code < 0). At ANY it cannot count: when no
**   replica or hint can meet the level any more the client gets
**   CELLAR_EUNAVAILABLE at once, not a timeout (ignored below ANY).
** coord_on_digest / coord_on_data: a read answer. Data cells are copied
**   (any order; a key given twice keeps its cell_merge winner).
** coord_on_timeout: the deadline passed. Call it once at the deadline
**   unless the coordinator is finished; afterwards it is COORD_DONE.
*/
int coord_on_ack(coord *c, uint32_t replica);
int coord_on_error(coord *c, uint32_t replica, int code);
int coord_on_hint_stored(coord *c, uint32_t replica);
int coord_on_hint_failed(coord *c, uint32_t replica, int code);
int coord_on_digest(coord *c, uint32_t replica,
                    const uint8_t digest[COORD_DIGEST_LEN]);
int coord_on_data(coord *c, uint32_t replica, const coord_cell *cells,
                  size_t n);
int coord_on_timeout(coord *c);

/* ------------------------------------------------------------ views */

coord_state coord_get_state(const coord *c);
const char *coord_state_name(coord_state s);
int coord_answered(const coord *c);      /* the ANSWER was emitted */
int coord_finished(const coord *c);      /* COORD_DONE */
uint64_t coord_id(const coord *c);
uint64_t coord_deadline(const coord *c);
/* The replica index of a ring member, or -1. */
int coord_replica_index(const coord *c, uint32_t member);

typedef struct coord_stats {
  uint32_t acks;                /* write acks / repair acks recorded */
  uint32_t ignored;             /* events ignored (duplicates, strays) */
  uint32_t hints;               /* STORE_HINT actions emitted */
  uint32_t repairs;             /* READ_REPAIR actions emitted */
  uint32_t repaired_cells;      /* cells in them */
  int digest_mismatch;          /* read: a second round was needed */
} coord_stats;

void coord_get_stats(const coord *c, coord_stats *out);

#endif
