/*
** token: Apache Cassandra's Murmur3Partitioner token of a partition key.
**
** Design notes
**  1. The hash is MurmurHash3_x64_128 with seed 0, written here from the
**     algorithm's public-domain definition. Only h1 (the first 64 bits) is
**     used as the token.
**  2. Body blocks are read as little-endian unsigned 64-bit words, exactly as
**     the reference. The tail (len % 16 bytes) is where Cassandra differs:
**     its Java code does `k ^= ((long) key.get(i)) << n`, and a Java byte is
**     signed, so a tail byte >= 0x80 is sign-extended to 64 bits before the
**     shift and its high ones are XORed into every higher bit of k. We do
**     the same with (int64_t)(int8_t)byte. For keys whose tail bytes are all
**     < 0x80 the result equals the reference (and libmurmurhash).
**  3. An empty key has the minimum token (TOKEN_MIN) without hashing; a hash
**     equal to INT64_MIN is mapped to INT64_MAX, so TOKEN_MIN never belongs
**     to a real key.
**  4. token_encode() writes the token big-endian with the sign bit flipped,
**     so memcmp() of two encodings orders them as the signed integers.
*/
#include <string.h>
#include "token.h"

#define C1 0x87c37b91114253d5ULL
#define C2 0x4cf5ad432745937fULL

static inline uint64_t rotl64(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

static inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static inline uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* A tail byte as Java sees it: signed, widened to 64 bits (note 2). */
static inline uint64_t jbyte(uint8_t b) {
  return (uint64_t)(int64_t)(int8_t)b;
}

/* First 64 bits of MurmurHash3_x64_128(key, len, seed 0), Cassandra style. */
static uint64_t murmur3_cassandra_h1(const uint8_t *key, size_t len) {
  uint64_t h1 = 0, h2 = 0;
  size_t nblocks = len / 16;

  for (size_t i = 0; i < nblocks; i++) {
    uint64_t k1 = load_le64(key + i * 16);
    uint64_t k2 = load_le64(key + i * 16 + 8);

    k1 *= C1; k1 = rotl64(k1, 31); k1 *= C2; h1 ^= k1;
    h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;

    k2 *= C2; k2 = rotl64(k2, 33); k2 *= C1; h2 ^= k2;
    h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
  }

  const uint8_t *tail = key + nblocks * 16;
  uint64_t k1 = 0, k2 = 0;
  switch (len & 15) {
    case 15: k2 ^= jbyte(tail[14]) << 48; /* fall through */
    case 14: k2 ^= jbyte(tail[13]) << 40; /* fall through */
    case 13: k2 ^= jbyte(tail[12]) << 32; /* fall through */
    case 12: k2 ^= jbyte(tail[11]) << 24; /* fall through */
    case 11: k2 ^= jbyte(tail[10]) << 16; /* fall through */
    case 10: k2 ^= jbyte(tail[9]) << 8;   /* fall through */
    case 9:
      k2 ^= jbyte(tail[8]);
      k2 *= C2; k2 = rotl64(k2, 33); k2 *= C1; h2 ^= k2;
      /* fall through */
    case 8: k1 ^= jbyte(tail[7]) << 56; /* fall through */
    case 7: k1 ^= jbyte(tail[6]) << 48; /* fall through */
    case 6: k1 ^= jbyte(tail[5]) << 40; /* fall through */
    case 5: k1 ^= jbyte(tail[4]) << 32; /* fall through */
    case 4: k1 ^= jbyte(tail[3]) << 24; /* fall through */
    case 3: k1 ^= jbyte(tail[2]) << 16; /* fall through */
    case 2: k1 ^= jbyte(tail[1]) << 8;  /* fall through */
    case 1:
      k1 ^= jbyte(tail[0]);
      k1 *= C1; k1 = rotl64(k1, 31); k1 *= C2; h1 ^= k1;
      break;
    default:
      break;
  }

  h1 ^= (uint64_t)len;
  h2 ^= (uint64_t)len;
  h1 += h2;
  h2 += h1;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 += h2;
  return h1;
}

int64_t token_of(const void *key, size_t len) {
  if (len == 0) return TOKEN_MIN;
  int64_t t = (int64_t)murmur3_cassandra_h1((const uint8_t *)key, len);
  return t == INT64_MIN ? INT64_MAX : t;
}

void token_encode(int64_t t, uint8_t out[8]) {
  uint64_t u = (uint64_t)t ^ 0x8000000000000000ULL;
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)u;
    u >>= 8;
  }
}

int64_t token_decode(const uint8_t in[8]) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = (u << 8) | in[i];
  return (int64_t)(u ^ 0x8000000000000000ULL);
}
