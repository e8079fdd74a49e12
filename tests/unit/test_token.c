/* Unit tests of token: Cassandra Murmur3Partitioner tokens and encoding. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <murmurhash.h>
#include "testutil.h"
#include "token.h"

/* Small deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The reference hash (libmurmurhash, unsigned tail), after Cassandra's
** INT64_MIN -> INT64_MAX mapping. */
static int64_t reference_token(const void *key, size_t len) {
  uint64_t out[2];
  lmmh_x64_128(key, (unsigned)len, 0, out);
  int64_t t = (int64_t)out[0];
  return t == INT64_MIN ? INT64_MAX : t;
}

static size_t unhex(const char *hex, uint8_t *out) {
  size_t n = 0;
  for (; hex[0] && hex[1]; hex += 2) {
    unsigned v;
    sscanf(hex, "%2x", &v);
    out[n++] = (uint8_t)v;
  }
  return n;
}

static void test_vector_hello(void) {
  CU_ASSERT_EQUAL(token_of("hello", 5), INT64_C(-3758069500696749310));
}

/* A key whose tail holds bytes >= 0x80: only right with sign extension. */
static void test_vector_signed_tail(void) {
  uint8_t key[64];
  size_t n = unhex("00104327529fb645dd00b883ec39ae448bb800000400066a6b00", key);
  CU_ASSERT_EQUAL(n, 26);
  CU_ASSERT_EQUAL(token_of(key, n), INT64_C(-9223371632693506265));
  /* and the unsigned reference gets it wrong */
  CU_ASSERT_NOT_EQUAL(reference_token(key, n), INT64_C(-9223371632693506265));
}

static void test_empty_key(void) {
  CU_ASSERT_EQUAL(token_of("", 0), TOKEN_MIN);
  CU_ASSERT_EQUAL(token_of(NULL, 0), INT64_MIN);
  /* one zero byte is a real key, not the empty one */
  CU_ASSERT_NOT_EQUAL(token_of("\0", 1), TOKEN_MIN);
  /* plain MurmurHash3 of nothing is 0; Cassandra never hashes it */
  CU_ASSERT_EQUAL(reference_token("", 0), 0);
}

/* With every byte < 0x80 Cassandra's hash is the plain MurmurHash3. */
static void test_ascii_keys_match_reference(void) {
  uint8_t key[64];
  for (size_t len = 1; len <= 64; len++) {
    for (int round = 0; round < 200; round++) {
      for (size_t i = 0; i < len; i++) key[i] = (uint8_t)(rnd() & 0x7f);
      int64_t got = token_of(key, len), want = reference_token(key, len);
      if (got != want) {
        fprintf(stderr, "len %zu round %d: %" PRId64 " != %" PRId64 "\n", len,
                round, got, want);
        CU_FAIL("ascii key differs from libmurmurhash");
        return;
      }
    }
  }
  CU_PASS("all lengths agree");
}

/* Body blocks are read unsigned: keys that are whole 16-byte blocks agree
** with the reference whatever their bytes. */
static void test_full_blocks_match_reference(void) {
  uint8_t key[64];
  for (size_t len = 16; len <= 64; len += 16) {
    for (int round = 0; round < 200; round++) {
      for (size_t i = 0; i < len; i++) key[i] = (uint8_t)(rnd() | 0x80);
      CU_ASSERT_EQUAL_FATAL(token_of(key, len), reference_token(key, len));
    }
  }
}

/*
** One tail byte >= 0x80 at tail position p. Sign extension sets bits above
** the byte in its 64-bit word, so the token differs from the reference,
** except for the top byte of a word (p == 7 for k1; k2 holds at most 7
** tail bytes, so it has no such position): there, the extended ones are
** shifted out.
*/
static void test_high_tail_byte_differs(void) {
  uint8_t key[64];
  for (size_t len = 1; len <= 64; len++) {
    size_t ntail = len % 16;
    if (ntail == 0) continue;
    size_t base = len - ntail;
    for (size_t p = 0; p < ntail; p++) {
      for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < len; i++) key[i] = (uint8_t)(rnd() & 0x7f);
        key[base + p] = (uint8_t)(0x80 | rnd());
        int64_t got = token_of(key, len), ref = reference_token(key, len);
        if (p == 7) {
          CU_ASSERT_EQUAL_FATAL(got, ref);
        } else {
          if (got == ref)
            fprintf(stderr, "len %zu pos %zu: unexpected equality\n", len, p);
          CU_ASSERT_NOT_EQUAL_FATAL(got, ref);
        }
      }
    }
  }
}

static void test_encode_roundtrip_edges(void) {
  const int64_t v[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1,
                       INT64_MAX};
  uint8_t b[8];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    token_encode(v[i], b);
    CU_ASSERT_EQUAL(token_decode(b), v[i]);
  }
  token_encode(INT64_MIN, b);
  static const uint8_t zeros[8] = {0};
  CU_ASSERT_EQUAL(memcmp(b, zeros, 8), 0);
  token_encode(0, b);
  static const uint8_t mid[8] = {0x80, 0, 0, 0, 0, 0, 0, 0};
  CU_ASSERT_EQUAL(memcmp(b, mid, 8), 0);
  token_encode(INT64_MAX, b);
  static const uint8_t ones[8] = {0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff};
  CU_ASSERT_EQUAL(memcmp(b, ones, 8), 0);
}

static int sign(long v) { return (v > 0) - (v < 0); }

/* memcmp order of encodings == numeric order of tokens. */
static void test_encode_order(void) {
  uint8_t ea[8], eb[8];
  for (int i = 0; i < 100000; i++) {
    int64_t a = (int64_t)rnd(), b = (int64_t)rnd();
    if (i % 4 == 1) b = a;
    if (i % 4 == 2) b = (int64_t)((uint64_t)a + (rnd() & 0xff));
    if (i % 4 == 3) b = -a;
    token_encode(a, ea);
    token_encode(b, eb);
    int want = (a > b) - (a < b);
    CU_ASSERT_EQUAL_FATAL(sign(memcmp(ea, eb, 8)), want);
    CU_ASSERT_EQUAL_FATAL(token_decode(ea), a);
    CU_ASSERT_EQUAL_FATAL(token_decode(eb), b);
  }
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"vector_hello", test_vector_hello},
    {"vector_signed_tail", test_vector_signed_tail},
    {"empty_key", test_empty_key},
    {"ascii_keys_match_reference", test_ascii_keys_match_reference},
    {"full_blocks_match_reference", test_full_blocks_match_reference},
    {"high_tail_byte_differs", test_high_tail_byte_differs},
    {"encode_roundtrip_edges", test_encode_roundtrip_edges},
    {"encode_order", test_encode_order},
    {NULL, NULL}
  };
  return testutil_run("token", cases, argc, argv);
}
