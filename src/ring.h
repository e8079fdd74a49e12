/*
** ring: the token ring of a cluster and the placement of replicas on it.
**
** A ring is a set of members (host id, datacenter, rack, state) each owning
** several tokens (virtual nodes). The member owning the first token at or
** after a key's token, walking clockwise, is its primary replica; the
** others follow per replication strategy:
**   SimpleStrategy{rf}: the next rf distinct members;
**   NetworkTopologyStrategy{dc: rf}: per datacenter, the next rf distinct
**     members, taking each rack once before taking a rack twice (Cassandra's
**     rule: a member whose rack was already used is set aside and used only
**     once every rack of the datacenter has a replica).
**
** The ring is a plain value: no locks, no I/O. Build it, then query it;
** rebuild it when membership changes.
*/
#ifndef CELLAR_RING_H
#define CELLAR_RING_H

#include <stddef.h>
#include <stdint.h>
#include "schema.h"

#define RING_NAME_MAX 48

typedef struct ring_member {
  char host_id[40];
  char dc[RING_NAME_MAX + 1];
  char rack[RING_NAME_MAX + 1];
  size_t ntokens;
  int64_t *tokens;             /* owned by the ring */
} ring_member;

typedef struct ring_token {
  int64_t token;
  uint32_t member;             /* index into members */
} ring_token;

typedef struct ring {
  size_t nmembers, capmembers;
  ring_member *members;
  size_t ntokens;
  ring_token *tokens;          /* sorted by token */
} ring;

void ring_init(ring *r);
void ring_free(ring *r);

/* Adds a member with its tokens (copied). Returns the member index, or a
** negative code: CELLAR_EEXISTS (host id or a token already taken),
** CELLAR_ENOMEM. */
int ring_add(ring *r, const char *host_id, const char *dc, const char *rack,
             const int64_t *tokens, size_t ntokens);
/* Removes a member and its tokens. 0 or CELLAR_ENOTFOUND. */
int ring_remove(ring *r, const char *host_id);
/* Index of a member, or -1. */
int ring_find(const ring *r, const char *host_id);

/*
** Replicas of token t for the keyspace's strategy, in ring order (primary
** first). Writes at most max member indexes into out and returns how many
** (fewer than asked when the ring has too few members).
*/
size_t ring_replicas(const ring *r, const keyspace_def *ks, int64_t t,
                     uint32_t *out, size_t max);

/*
** Chooses ntokens tokens for a new member so that ownership stays balanced:
** each new token is placed inside the largest range of the member that
** owns the most, so that the new member ends with about 1/(members+1) of
** the ring (what one token could not take, the next ones do).
** An empty ring gets evenly spaced tokens offset by seed. out must hold
** ntokens. Returns 0 or CELLAR_EINVAL.
*/
int ring_allocate_tokens(const ring *r, size_t ntokens, uint64_t seed,
                         int64_t *out);

/*
** Fraction of the token space each member holds a replica of, for the
** keyspace (ks NULL: primary ownership). own[i] for member i; the values
** sum to the replication factor (1 for primary).
*/
void ring_ownership(const ring *r, const keyspace_def *ks, double *own);

#endif
