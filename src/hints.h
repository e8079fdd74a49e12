/*
** hints: hinted handoff as a state machine that does no I/O (STYLE.md
** rule 6). A coordinator that could not deliver a write to a replica (the
** target) keeps the mutation as a hint in RocksDB's "hints" column family
** and replays it to the target once the target is back. This module holds
** what needs no I/O: the key and value formats, the admission rules
** (hint window, per-target disk cap), and the replay of each target's
** hints (load a batch, send, delete after the ack, back off after a
** failure, drop expired hints), with a token bucket shared by every target
** throttling the bytes sent. The owner (handoff.c in cellard, the
** simulator in tests/sim/test_handoff_sim.c) feeds it events and carries
** out the actions it emits. docs/handoff.md has the whole design.
**
** Key (memcmp order = replay order for one target):
**     u8 len | target host id (len bytes, 1..HINT_HOST_MAX-1)
**   | u64 big-endian creation time (ms since the epoch, wall clock)
**   | u64 big-endian sequence (unique per hint on this node)
** A target's hints are one key range (hint_key_prefix), oldest first.
**
** Value:
**     u8 version (1) | u64 big-endian expiry (ms since the epoch, 0 never)
**   | u32 big-endian n | n x (u32 key length | key | u32 value length | value)
** where the n pairs are the raw data entries of the mutation (storage.h):
** the target merges them with storage_apply_entries, as any replica write.
**
** Replay of one target (states as hints_target_state):
**
**   IDLE --hints_on_stored--> (has hints) --target not alive--> WAITING
**     WAITING --hints_set_alive(1)--> REPLAYING
**     REPLAYING: LOAD after the cursor --hints_on_loaded--> window
**       window --tokens > 0--> SEND (a batch, id) --hints_on_ack(0)-->
**         DELETE its keys --hints_on_deleted--> counts go down
**       expired hint in a loaded batch --> DELETE (counted expired)
**       a batch refused (permanent error, hints_code_permanent) -->
**         batches of one hint, one in flight; one hint refused 3 times in
**         a row --> DELETE (counted dropped); a temporary error answer
**         only backs off (the hint is kept)
**       end of the range, nothing in flight --> a new pass from the start
**         after a pause (hints stored meanwhile, or none left: IDLE)
**     REPLAYING --ack error, send failure, send timeout,
**                 target down--> BACKOFF (window and sends forgotten;
**                 the next pass starts from the first hint not deleted)
**     BACKOFF --backoff elapsed (hints_tick)--> REPLAYING
**   WAITING --every sweep_interval_ms--> a sweep: LOADs over the range,
**     expired hints DELETEd, nothing sent (hints.c note 8)
**   any --hints_drop (target left the cluster)--> DROP action, IDLE
**
** Invariants:
**  1. A hint is deleted only after the target acknowledged the batch that
**     carried it (or it expired): a crash anywhere loses no hint. A hint
**     may be sent twice (an ack lost, a crash between ack and delete);
**     the target's merge is idempotent, so that is harmless.
**  2. Every key is deleted at most once by the machine: a LOAD is not
**     issued while deletes of that target are in flight, and answers of a
**     forgotten send or load (older generation) are ignored.
**  3. The token bucket is shared: the sum of bytes sent to all targets
**     over any interval T is at most rate * T + burst + one batch.
**
** The owner's part: the keys of one target are stored in increasing order
** (a hint stored later has a greater key than every hint of that target
** already stored or loaded). The machine relies on it to start scans
** after the keys it knows are deleted (hints.c note 10).
**
** Ownership: pointers inside actions (target, keys, entries, after) are
** owned by the machine and valid until the next call into it.
*/
#ifndef CELLAR_HINTS_H
#define CELLAR_HINTS_H

#include <stddef.h>
#include <stdint.h>
#include "storage.h"
#include "types.h"

#define HINT_HOST_MAX 40                    /* host id, NUL included */
#define HINT_KEY_MAX (1 + HINT_HOST_MAX + 16)
#define HINT_VALUE_VERSION 1

/* ------------------------------------------------------------ formats */

/* Writes the key of a hint into out; returns its length, or 0 when host is
** empty or longer than HINT_HOST_MAX - 1. */
size_t hint_key_encode(const char *host, uint64_t created_ms, uint64_t seq,
                       uint8_t out[HINT_KEY_MAX]);
/* The prefix every key of host's hints starts with; length or 0. */
size_t hint_key_prefix(const char *host, uint8_t out[HINT_KEY_MAX]);
/* Splits a key. 0, or CELLAR_EPROTO when it is not a hint key. */
int hint_key_decode(const uint8_t *k, size_t n, char host[HINT_HOST_MAX],
                    uint64_t *created_ms, uint64_t *seq);

/* Encodes a value. Returns malloc'd bytes (caller frees) and *len, or
** NULL when out of memory. */
uint8_t *hint_value_encode(uint64_t expires_ms, const storage_entry *e,
                           size_t n, size_t *len);
/* Decodes a value: *out is a malloc'd array of n entries borrowing from v
** (caller frees the array; v must outlive it). 0, CELLAR_EPROTO for a
** malformed or unknown-version value, CELLAR_ENOMEM. */
int hint_value_decode(const uint8_t *v, size_t len, uint64_t *expires_ms,
                      storage_entry **out, size_t *n);

/* ----------------------------------------------------------- machine */

typedef struct hints_config {
  uint64_t throttle_bytes_per_s;  /* shared by all targets; 0 = unlimited */
  uint64_t burst_bytes;           /* bucket size; 0 = rate / 10, at least
                                     one batch */
  uint64_t max_bytes_per_target;  /* disk cap; 0 = none */
  uint64_t window_ms;             /* no hint for a target down longer */
  size_t batch_bytes;             /* bytes of hints per SEND (64 KiB) */
  size_t load_count;              /* hints per LOAD (512) */
  uint32_t max_inflight;          /* SENDs in flight per target (4) */
  uint64_t send_timeout_ms;       /* an unanswered SEND fails (10 s) */
  uint64_t backoff_min_ms;        /* first backoff (1 s), doubling */
  uint64_t backoff_max_ms;        /* (30 s) */
  uint64_t pass_pause_ms;         /* between passes over a range (1 s) */
  uint64_t sweep_interval_ms;     /* expiry sweep of a target not alive
                                     (1 h) */
} hints_config;

/* Fills the defaults above (no throttle, no cap, 3 h window). */
void hints_config_init(hints_config *c);

/* 1 when a replay answered with code is refused for good (the mutation
** itself is bad: malformed, too big, too many siblings...): such a hint
** may be dropped after repeated refusals. 0 for a temporary error (disk,
** I/O, overload, shutdown, unknown codes): the hint is kept and retried. */
int hints_code_permanent(int code);

typedef enum hints_action_kind {
  HINTS_LOAD = 1,     /* read up to count hints of target, keys after
                         `after` (nafter 0: from the start of its range),
                         then call hints_on_loaded with id */
  HINTS_SEND = 2,     /* send entries[] to target in one replica write
                         with id; its answer -> hints_on_ack, a failure
                         to send -> hints_on_send_failed */
  HINTS_DELETE = 3,   /* delete keys[] of target, then hints_on_deleted
                         with id */
  HINTS_DROP = 4      /* delete every hint of target (it left the
                         cluster); nothing to report back */
} hints_action_kind;

typedef struct hints_action {
  hints_action_kind kind;
  const char *target;
  uint64_t id;                  /* LOAD, SEND, DELETE */
  const uint8_t *after;         /* LOAD */
  size_t nafter;
  size_t count;                 /* LOAD: at most this many hints */
  const storage_entry *entries; /* SEND: the batch's data entries */
  size_t nentries;
  size_t nhints;                /* SEND, DELETE: hints concerned */
  uint64_t bytes;               /* SEND, DELETE: their bytes (key+value) */
  const cbytes *keys;           /* DELETE */
  size_t nkeys;
  size_t replayed, expired;     /* DELETE: why (with dropped, sums to */
  size_t dropped;               /* nkeys); dropped: refused by the target
                                   every time it was sent alone */
} hints_action;

const char *hints_action_name(hints_action_kind k);

typedef struct hints hints;

/* *out: caller frees with hints_free(). */
int hints_new(const hints_config *cfg, hints **out);
void hints_free(hints *h);
/* Changes the throttle (bytes/s, 0 = unlimited) from now on. */
void hints_set_throttle(hints *h, uint64_t bytes_per_s);

/* Takes the next queued action. 1 when one was taken, 0 when empty. */
int hints_next(hints *h, hints_action *out);

/* ------------------------------------------------------------ events */

enum {
  HINT_ADMIT_OK = 0,
  HINT_ADMIT_WINDOW = 1,        /* target down longer than the window */
  HINT_ADMIT_CAP = 2            /* the target's hints would pass the cap */
};

/*
** May a hint of `bytes` be stored for target, down for down_ms (0: up)?
** On HINT_ADMIT_OK the bytes are reserved against the cap until
** hints_on_stored reports the write. Emits nothing and frees nothing, so
** unlike the other events it may be called while actions are drained.
*/
int hints_admit(hints *h, const char *target, uint64_t bytes, uint64_t down_ms);

/* A hint admitted by hints_admit was written (ok) or not; also used at
** start for every hint found on disk (hints_recovered), with ok = 1 and no
** reservation (reserved = 0). */
void hints_on_stored(hints *h, const char *target, uint64_t bytes, int ok,
                     int reserved, uint64_t now_ms);

/* The target's liveness as the failure detector sees it. */
void hints_set_alive(hints *h, const char *target, int alive, uint64_t now_ms);

/* A LOAD answered: n hints in key order (keys and values copied), end = 1
** when the range holds nothing after the last one. wall_ms decides which
** hints have expired. An unknown or stale id is ignored. */
typedef struct hint_record {
  cbytes key, value;
} hint_record;
void hints_on_loaded(hints *h, uint64_t id, const hint_record *r, size_t n,
                     int end, uint64_t wall_ms, uint64_t now_ms);
/* A LOAD failed (storage error, or the owner could not start it): the
** target backs off. A LOAD unanswered for send_timeout_ms fails too. */
void hints_on_load_failed(hints *h, uint64_t id, uint64_t now_ms);

/* The target answered SEND id with code (0: applied; an error backs the
** target off; see hints_code_permanent for what may drop a hint).
** Returns 1 when the id was a send of this machine still in flight, 0
** when unknown (a forgotten send: ignored). */
int hints_on_ack(hints *h, uint64_t id, int code, uint64_t now_ms);

/* Sending to target failed (connection): its sends in flight are lost. */
void hints_on_send_failed(hints *h, const char *target, uint64_t now_ms);

/* DELETE id done (rc 0) or failed (the keys stay; a later pass resends
** them). */
void hints_on_deleted(hints *h, uint64_t id, int rc, uint64_t now_ms);

/* The target left the cluster: emits DROP, forgets its hints. */
void hints_drop(hints *h, const char *target);

/* Time passes: refills the bucket, ends backoffs, fails sends past their
** timeout, starts passes. Call every few tens of ms. */
void hints_tick(hints *h, uint64_t now_ms);

/* -------------------------------------------------------------- view */

typedef enum hints_target_state {
  HINTS_IDLE = 0,               /* nothing to replay */
  HINTS_WAITING = 1,            /* hints, target not alive */
  HINTS_REPLAYING = 2,
  HINTS_BACKOFF = 3
} hints_target_state;

const char *hints_state_name(hints_target_state s);

typedef struct hints_target_stats {
  char target[HINT_HOST_MAX];
  hints_target_state state;
  uint64_t count;               /* hints stored and not deleted */
  uint64_t bytes;
  uint64_t reserved;            /* admitted, not yet written */
  uint64_t inflight;            /* hints in sends awaiting an ack */
  uint64_t replayed, expired, failures;   /* since start */
  uint64_t dropped;             /* refused by the target (hints.c note 7) */
  uint8_t floor[HINT_KEY_MAX];  /* every hint key <= floor is deleted: a */
  size_t nfloor;                /* scan may start after it (0: none) */
} hints_target_stats;

size_t hints_target_count(const hints *h);
/* 0, or CELLAR_EINVAL when i is out of range. */
int hints_target_at(const hints *h, size_t i, hints_target_stats *out);
/* 0, or CELLAR_ENOTFOUND. */
int hints_target_find(const hints *h, const char *target,
                      hints_target_stats *out);
/* Hints stored and not deleted, all targets. */
uint64_t hints_total(const hints *h);
/* Tokens in the bucket now (may be negative: bytes owed). */
int64_t hints_tokens(const hints *h);

#endif
