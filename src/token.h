/*
** token: Apache Cassandra's Murmur3Partitioner token of a partition key,
** bit for bit. The token is the first 64 bits of MurmurHash3_x64_128 with
** seed 0, computed as Cassandra computes it: tail bytes are sign-extended
** (Java bytes are signed), an empty key gives the minimum token, and
** INT64_MIN is mapped to INT64_MAX.
*/
#ifndef CELLAR_TOKEN_H
#define CELLAR_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_MIN INT64_MIN

int64_t token_of(const void *key, size_t len);

/* Big-endian, sign-flipped encoding: memcmp order == numeric order. */
void token_encode(int64_t t, uint8_t out[8]);
int64_t token_decode(const uint8_t in[8]);

#endif
