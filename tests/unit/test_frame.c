/* Unit tests of frame.c: the 16-byte header and the streaming reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "frame.h"
#include "testutil.h"

/* ------------------------------------------------ allocation counting
** To prove that a header is checked before anything is allocated, and that
** a spanning payload costs exactly one malloc of `length` bytes, mallocs are
** counted around the feeds under test: through the sanitizer's allocation
** hooks in ASan builds, by interposing malloc over glibc's otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif

/* volatile: the compiler knows malloc and would move plain accesses
** across the call. */
static volatile int counting;
static volatile size_t n_mallocs, last_malloc_size;

static void counted(size_t n) {
  if (counting) {
    n_mallocs++;
    last_malloc_size = n;
  }
}

#if defined(ASAN_BUILD)
#define COUNT_MALLOC 1
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n) { (void)p; counted(n); }
static void on_free(const volatile void *p) { (void)p; }
static void count_setup(void) {
  __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#elif defined(__GLIBC__)
#define COUNT_MALLOC 1
extern void *__libc_malloc(size_t n);
void *malloc(size_t n) {
  counted(n);
  return __libc_malloc(n);
}
static void count_setup(void) {}
#else
#define COUNT_MALLOC 0
static void count_setup(void) {}
#endif

static void count_start(void) {
  n_mallocs = 0;
  last_malloc_size = 0;
  counting = 1;
}
static void count_stop(void) { counting = 0; }

/* ------------------------------------------------------------ helpers */

/* Appends one frame (header + payload of n bytes of pattern) to buf. */
static size_t put_frame(uint8_t *buf, uint8_t type, uint16_t flags,
                        uint32_t id, uint32_t n, uint8_t seed) {
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, type, flags, id, n};
  frame_header_encode(&h, buf);
  for (uint32_t i = 0; i < n; i++) buf[FRAME_HEADER_SIZE + i] = (uint8_t)(seed + i * 7);
  return FRAME_HEADER_SIZE + n;
}

typedef struct got_frame {
  frame_header h;
  uint8_t *payload;            /* copy */
  int in_place;                /* payload pointed into the fed bytes */
} got_frame;

typedef struct collector {
  got_frame f[64];
  size_t n;
  const uint8_t *in_lo, *in_hi; /* bytes of the current feed */
  size_t stop_at;              /* return stop_rc when frame #stop_at arrives */
  int stop_rc;
} collector;

static int collect(void *arg, const frame_header *h, const uint8_t *payload) {
  collector *c = arg;
  CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
  CU_ASSERT_FATAL(c->n < 64);
  got_frame *g = &c->f[c->n++];
  g->h = *h;
  int was_counting = counting;             /* our copy is not the reader's */
  counting = 0;
  g->payload = malloc(h->length ? h->length : 1);
  counting = was_counting;
  memcpy(g->payload, payload, h->length);
  g->in_place = h->length == 0 ||
                (payload >= c->in_lo && payload + h->length <= c->in_hi);
  if (c->stop_rc != 0 && c->n == c->stop_at) return c->stop_rc;
  return 0;
}

static void collector_free(collector *c) {
  for (size_t i = 0; i < c->n; i++) free(c->f[i].payload);
  c->n = 0;
}

static int feed(frame_reader *r, collector *c, const uint8_t *p, size_t n,
                size_t *consumed) {
  c->in_lo = p;
  c->in_hi = p + n;
  return frame_reader_feed(r, p, n, collect, c, consumed);
}

static void assert_same(const collector *a, const collector *b) {
  CU_ASSERT_EQUAL_FATAL(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    CU_ASSERT_EQUAL(memcmp(&a->f[i].h, &b->f[i].h, sizeof(frame_header)), 0);
    CU_ASSERT_EQUAL(memcmp(a->f[i].payload, b->f[i].payload, a->f[i].h.length), 0);
  }
}

/* A stream of frames of awkward sizes: empty, 1 byte, exactly a header's
** size, and large ones. */
static const uint32_t sizes[] = {0, 1, 16, 15, 17, 1000, 0, 70000, 3, 65536};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static uint8_t *make_stream(size_t *n) {
  size_t total = 0;
  for (size_t i = 0; i < NSIZES; i++) total += FRAME_HEADER_SIZE + sizes[i];
  uint8_t *buf = malloc(total);
  size_t off = 0;
  for (size_t i = 0; i < NSIZES; i++)
    off += put_frame(buf + off, (uint8_t)(1 + i % 11), (uint16_t)i,
                     0xA0000000u + (uint32_t)i, sizes[i], (uint8_t)i);
  *n = off;
  return buf;
}

/* -------------------------------------------------------------- tests */

static void test_header_round_trip(void) {
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, FRAME_SLICE,
                    FRAME_FLAG_RESPONSE | 0x8000u, 0x01020304u, 0x00A0B0C0u};
  uint8_t b[FRAME_HEADER_SIZE];
  frame_header_encode(&h, b);
  static const uint8_t want[FRAME_HEADER_SIZE] = {
      0x43, 0x45, 0x4C, 0x52, 0x01, 0x09, 0x80, 0x01,
      0x01, 0x02, 0x03, 0x04, 0x00, 0xA0, 0xB0, 0xC0};
  CU_ASSERT_EQUAL(memcmp(b, want, sizeof(want)), 0);
  CU_ASSERT_EQUAL(memcmp(b, "CELR", 4), 0);
  frame_header d;
  memset(&d, 0xEE, sizeof(d));
  CU_ASSERT_EQUAL(frame_header_decode(b, 0x00A0B0C0u, &d), 0);
  CU_ASSERT_EQUAL(d.magic, FRAME_MAGIC);
  CU_ASSERT_EQUAL(d.version, FRAME_VERSION);
  CU_ASSERT_EQUAL(d.type, FRAME_SLICE);
  CU_ASSERT_EQUAL(d.flags, 0x8001u);
  CU_ASSERT_EQUAL(d.request_id, 0x01020304u);
  CU_ASSERT_EQUAL(d.length, 0x00A0B0C0u);
  /* unknown types decode: they are answered, not fatal */
  h.type = 200;
  frame_header_encode(&h, b);
  CU_ASSERT_EQUAL(frame_header_decode(b, UINT32_MAX, &d), 0);
  CU_ASSERT_EQUAL(d.type, 200);
}

static void test_header_rejects(void) {
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, FRAME_PUT, 0, 77, 100};
  uint8_t b[FRAME_HEADER_SIZE];
  frame_header d;

  frame_header_encode(&h, b);
  CU_ASSERT_EQUAL(frame_header_decode(b, 100, &d), 0);
  CU_ASSERT_EQUAL(frame_header_decode(b, 99, &d), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(d.request_id, 77);           /* filled even on error */
  CU_ASSERT_EQUAL(d.length, 100);

  b[0] = 'X';
  CU_ASSERT_EQUAL(frame_header_decode(b, 1000, &d), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(d.request_id, 77);
  /* a bad magic wins over every other fault */
  b[4] = 9;
  CU_ASSERT_EQUAL(frame_header_decode(b, 0, &d), CELLAR_EPROTO);

  h.version = 2;
  frame_header_encode(&h, b);
  CU_ASSERT_EQUAL(frame_header_decode(b, 1000, &d), CELLAR_EBADVERSION);
  CU_ASSERT_EQUAL(frame_header_decode(b, 0, &d), CELLAR_EBADVERSION);
  h.version = 0;
  frame_header_encode(&h, b);
  CU_ASSERT_EQUAL(frame_header_decode(b, 1000, &d), CELLAR_EBADVERSION);
  CU_ASSERT_EQUAL(d.version, 0);
}

static void test_type_names(void) {
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_PING), "PING");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_CREATE_KEYSPACE), "CREATE_KEYSPACE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_DROP_KEYSPACE), "DROP_KEYSPACE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_CREATE_TABLE), "CREATE_TABLE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_DROP_TABLE), "DROP_TABLE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_DESCRIBE), "DESCRIBE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_PUT), "PUT");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_GET), "GET");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_SLICE), "SLICE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_DELETE), "DELETE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_ADMIN), "ADMIN");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_GOSSIP), "GOSSIP");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_SCHEMA_PULL), "SCHEMA_PULL");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_SCHEMA_PUSH), "SCHEMA_PUSH");
  CU_ASSERT_STRING_EQUAL(frame_type_name(0), "UNKNOWN");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_PEER_FIRST - 1), "UNKNOWN");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_REPLICA_APPLY), "REPLICA_APPLY");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_REPLICA_READ_REPLY), "REPLICA_READ_REPLY");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_STREAM_CHUNK), "STREAM_CHUNK");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_STREAM_ORDER_DONE), "STREAM_ORDER_DONE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_MERKLE_REQUEST), "MERKLE_REQUEST");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_MERKLE_REPLY), "MERKLE_REPLY");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_REPAIR_ROWS), "REPAIR_ROWS");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_REPAIR_ROWS_REPLY), "REPAIR_ROWS_REPLY");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_FORWARD_WRITE), "FORWARD_WRITE");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_FORWARD_REPLY), "FORWARD_REPLY");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_FORWARD_REPLY + 1), "UNKNOWN");
  CU_ASSERT_STRING_EQUAL(frame_type_name(FRAME_TYPE_END), "UNKNOWN");
  CU_ASSERT_STRING_EQUAL(frame_type_name(255), "UNKNOWN");
  CU_ASSERT_STRING_EQUAL(frame_type_name(0xFFFFFFFFu), "UNKNOWN");
}

/* A header announcing 4 GiB is refused before anything is allocated. */
static void test_huge_length_no_alloc(void) {
  uint8_t b[FRAME_HEADER_SIZE];
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, FRAME_PUT, 0, 5, 0xFFFFFFFFu};
  frame_header_encode(&h, b);
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    frame_reader r;
    frame_reader_init(&r, CELLAR_MAX_FRAME_BYTES);
    collector c = {0};
    size_t used = 0;
    int rc = 0;
    count_start();
    if (bytewise) {
      for (size_t i = 0; i < sizeof(b) && rc == 0; i++) rc = feed(&r, &c, b + i, 1, &used);
    } else {
      rc = feed(&r, &c, b, sizeof(b), &used);
    }
    count_stop();
    CU_ASSERT_EQUAL(rc, CELLAR_ETOOBIG);
    CU_ASSERT_EQUAL(used, bytewise ? 1 : FRAME_HEADER_SIZE);
    CU_ASSERT_EQUAL(n_mallocs, 0);
    CU_ASSERT_PTR_NULL(r.body);
    CU_ASSERT_EQUAL(r.cur.length, 0xFFFFFFFFu);
    CU_ASSERT_EQUAL(r.cur.request_id, 5);
    CU_ASSERT_EQUAL(c.n, 0);
    frame_reader_close(&r);
  }
  /* bad magic and version: same, nothing allocated, nothing delivered */
  for (int fault = 0; fault < 2; fault++) {
    frame_header_encode(&h, b);
    if (fault == 0) b[3] ^= 1;
    else b[4] = 3;
    frame_reader r;
    frame_reader_init(&r, UINT32_MAX);
    collector c = {0};
    count_start();
    int rc = feed(&r, &c, b, sizeof(b), NULL);
    count_stop();
    CU_ASSERT_EQUAL(rc, fault == 0 ? CELLAR_EPROTO : CELLAR_EBADVERSION);
    CU_ASSERT_EQUAL(n_mallocs, 0);
    CU_ASSERT_PTR_NULL(r.body);
    frame_reader_close(&r);
  }
}

/* Whole input: every payload is passed in place, nothing allocated. */
static void test_several_frames_one_chunk(void) {
  size_t n;
  uint8_t *s = make_stream(&n);
  frame_reader r;
  frame_reader_init(&r, 1u << 20);
  collector c = {0};
  size_t used = 0;
  count_start();
  int rc = feed(&r, &c, s, n, &used);
  count_stop();
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_EQUAL(used, n);
  CU_ASSERT_EQUAL(n_mallocs, 0);
  CU_ASSERT_EQUAL_FATAL(c.n, NSIZES);
  for (size_t i = 0; i < NSIZES; i++) {
    CU_ASSERT_EQUAL(c.f[i].h.length, sizes[i]);
    CU_ASSERT_EQUAL(c.f[i].h.request_id, 0xA0000000u + i);
    CU_ASSERT_EQUAL(c.f[i].h.type, 1 + i % 11);
    CU_ASSERT_EQUAL(c.f[i].h.flags, i);
    CU_ASSERT(c.f[i].in_place);
    for (uint32_t j = 0; j < sizes[i]; j++)
      if (c.f[i].payload[j] != (uint8_t)(i + j * 7)) {
        CU_FAIL("payload differs");
        break;
      }
  }
  CU_ASSERT_EQUAL(r.state, 0);
  CU_ASSERT_PTR_NULL(r.body);
  collector_free(&c);
  frame_reader_close(&r);
  free(s);
}

/* One byte at a time, and random splits, give the same frames. */
static void test_byte_by_byte_and_random_splits(void) {
  size_t n;
  uint8_t *s = make_stream(&n);
  frame_reader r;
  collector whole = {0}, c = {0};

  frame_reader_init(&r, 1u << 20);
  CU_ASSERT_EQUAL(feed(&r, &whole, s, n, NULL), 0);
  frame_reader_close(&r);

  frame_reader_init(&r, 1u << 20);
  for (size_t i = 0; i < n; i++) {
    size_t used = 99;
    CU_ASSERT_EQUAL_FATAL(feed(&r, &c, s + i, 1, &used), 0);
    CU_ASSERT_EQUAL_FATAL(used, 1);
  }
  frame_reader_close(&r);
  assert_same(&whole, &c);
  for (size_t i = 0; i < c.n; i++)         /* 1-byte feeds: all copied */
    if (c.f[i].h.length > 1) CU_ASSERT(!c.f[i].in_place);
  collector_free(&c);

  uint64_t seed = 0x9E3779B97F4A7C15u;
  for (int round = 0; round < 200; round++) {
    frame_reader_init(&r, 1u << 20);
    size_t off = 0;
    while (off < n) {
      seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
      /* mostly small chunks, sometimes big ones */
      size_t chunk = (seed & 1) ? (size_t)(seed >> 8) % 40 : (size_t)(seed >> 8) % 90000;
      if (chunk > n - off) chunk = n - off;
      size_t used = 0;
      CU_ASSERT_EQUAL_FATAL(feed(&r, &c, s + off, chunk, &used), 0);
      CU_ASSERT_EQUAL_FATAL(used, chunk);
      off += chunk;
    }
    CU_ASSERT_EQUAL(r.hdr_have, 0);
    CU_ASSERT_PTR_NULL(r.body);
    frame_reader_close(&r);
    assert_same(&whole, &c);
    collector_free(&c);
  }
  collector_free(&whole);
  free(s);
}

/* A payload spanning feeds: one malloc of exactly its length. A header that
** spanned feeds but whose payload is whole in the next feed: no copy. */
static void test_spanning_payload_one_alloc(void) {
  uint8_t buf[FRAME_HEADER_SIZE + 5000];
  size_t n = put_frame(buf, FRAME_PUT, 0, 42, 5000, 3);
  frame_reader r;
  frame_reader_init(&r, 1u << 20);
  collector c = {0};
  count_start();
  CU_ASSERT_EQUAL(feed(&r, &c, buf, 100, NULL), 0);
  count_stop();
  CU_ASSERT_EQUAL(n_mallocs, COUNT_MALLOC ? 1 : 0);
  CU_ASSERT_EQUAL(last_malloc_size, COUNT_MALLOC ? 5000 : 0);
  CU_ASSERT_PTR_NOT_NULL(r.body);
  CU_ASSERT_EQUAL(r.body_have, 100 - FRAME_HEADER_SIZE);
  CU_ASSERT_EQUAL(feed(&r, &c, buf + 100, 2000, NULL), 0);
  CU_ASSERT_EQUAL(c.n, 0);
  CU_ASSERT_EQUAL(feed(&r, &c, buf + 2100, n - 2100, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(c.n, 1);
  CU_ASSERT_EQUAL(memcmp(c.f[0].payload, buf + FRAME_HEADER_SIZE, 5000), 0);
  CU_ASSERT_PTR_NULL(r.body);
  collector_free(&c);

  /* header in two pieces, then the whole payload at once: in place */
  count_start();
  CU_ASSERT_EQUAL(feed(&r, &c, buf, 10, NULL), 0);
  CU_ASSERT_EQUAL(feed(&r, &c, buf + 10, n - 10, NULL), 0);
  count_stop();
  CU_ASSERT_EQUAL(n_mallocs, 0);
  CU_ASSERT_EQUAL_FATAL(c.n, 1);
  CU_ASSERT(c.f[0].in_place);
  collector_free(&c);

  /* close in the middle of a body frees it (leak-checked under ASan) */
  CU_ASSERT_EQUAL(feed(&r, &c, buf, 1000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL(r.body);
  frame_reader_close(&r);
  CU_ASSERT_PTR_NULL(r.body);
}

static void test_empty_payload_pointer(void) {
  uint8_t buf[FRAME_HEADER_SIZE];
  put_frame(buf, FRAME_PING, 0, 1, 0, 0);
  frame_reader r;
  frame_reader_init(&r, 0);                /* max 0: only empty payloads */
  collector c = {0};
  CU_ASSERT_EQUAL(feed(&r, &c, buf, sizeof(buf), NULL), 0);
  CU_ASSERT_EQUAL(feed(&r, &c, buf, 7, NULL), 0);
  CU_ASSERT_EQUAL(feed(&r, &c, buf + 7, 9, NULL), 0);
  CU_ASSERT_EQUAL(c.n, 2);                 /* collect() asserts non-NULL */
  CU_ASSERT_EQUAL(frame_reader_feed(&r, NULL, 0, collect, &c, NULL), 0);
  collector_free(&c);
  frame_reader_close(&r);
}

/* A broken stream stays broken: sticky error, r->cur for the answer. */
static void test_sticky_error(void) {
  uint8_t buf[3 * FRAME_HEADER_SIZE + 30];
  size_t a = put_frame(buf, FRAME_GET, 0, 1, 10, 0);
  size_t b = put_frame(buf + a, FRAME_GET, 0, 2, 10, 0);
  size_t n = a + b + put_frame(buf + a + b, FRAME_GET, 0, 3, 10, 0);
  buf[a + 4] = 7;                          /* second frame: version 7 */

  for (int bytewise = 0; bytewise < 2; bytewise++) {
    frame_reader r;
    frame_reader_init(&r, 1000);
    collector c = {0};
    size_t used = 0, total = 0;
    int rc = 0;
    if (bytewise) {
      for (size_t i = 0; i < n && rc == 0; i++) {
        rc = feed(&r, &c, buf + i, 1, &used);
        total += used;
      }
    } else {
      rc = feed(&r, &c, buf, n, &used);
      total = used;
    }
    CU_ASSERT_EQUAL(rc, CELLAR_EBADVERSION);
    CU_ASSERT_EQUAL(total, a + FRAME_HEADER_SIZE);
    CU_ASSERT_EQUAL(c.n, 1);
    CU_ASSERT_EQUAL(r.cur.request_id, 2);
    CU_ASSERT_EQUAL(r.cur.version, 7);
    CU_ASSERT_EQUAL(r.err, CELLAR_EBADVERSION);
    /* later feeds: same code, nothing consumed, no callback */
    used = 99;
    CU_ASSERT_EQUAL(feed(&r, &c, buf + a + b, n - a - b, &used), CELLAR_EBADVERSION);
    CU_ASSERT_EQUAL(used, 0);
    CU_ASSERT_EQUAL(feed(&r, &c, buf, 0, &used), CELLAR_EBADVERSION);
    CU_ASSERT_EQUAL(c.n, 1);
    collector_free(&c);
    frame_reader_close(&r);
  }
}

/* The callback stops the feed; the caller resumes with the rest. */
static void test_callback_stop_resume(void) {
  size_t n;
  uint8_t *s = make_stream(&n);
  collector whole = {0};
  frame_reader r;
  frame_reader_init(&r, 1u << 20);
  CU_ASSERT_EQUAL(feed(&r, &whole, s, n, NULL), 0);
  frame_reader_close(&r);

  /* stop at every frame in turn, with positive and negative codes, feeding
  ** in chunks of 1, 7, 5000 and all */
  static const size_t chunks[] = {1, 7, 5000, 1u << 30};
  for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
    for (size_t stop = 1; stop <= NSIZES; stop++) {
      collector c = {0};
      c.stop_at = stop;
      c.stop_rc = (stop & 1) ? 5 : -1000;
      frame_reader_init(&r, 1u << 20);
      size_t off = 0;
      int stopped = 0;
      while (off < n) {
        size_t chunk = chunks[ci] < n - off ? chunks[ci] : n - off;
        size_t used = 0;
        int rc = feed(&r, &c, s + off, chunk, &used);
        CU_ASSERT_FATAL(used <= chunk);
        off += used;
        if (rc != 0) {                     /* FATAL: no endless loop */
          CU_ASSERT_EQUAL_FATAL(rc, c.stop_rc);
          CU_ASSERT_EQUAL(c.n, stop);
          /* consumed ends exactly at the end of the stopping frame */
          size_t end = 0;
          for (size_t i = 0; i < stop; i++) end += FRAME_HEADER_SIZE + sizes[i];
          CU_ASSERT_EQUAL(off, end);
          CU_ASSERT_EQUAL(r.state, 0);     /* not sticky */
          CU_ASSERT_PTR_NULL(r.body);
          c.stop_rc = 0;
          stopped = 1;
        } else {
          CU_ASSERT_EQUAL(used, chunk);
        }
      }
      CU_ASSERT(stopped);
      assert_same(&whole, &c);
      collector_free(&c);
      frame_reader_close(&r);
    }
  }
  collector_free(&whole);
  free(s);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"header_round_trip", test_header_round_trip},
    {"header_rejects", test_header_rejects},
    {"type_names", test_type_names},
    {"huge_length_no_alloc", test_huge_length_no_alloc},
    {"several_frames_one_chunk", test_several_frames_one_chunk},
    {"byte_by_byte_and_random_splits", test_byte_by_byte_and_random_splits},
    {"spanning_payload_one_alloc", test_spanning_payload_one_alloc},
    {"empty_payload_pointer", test_empty_payload_pointer},
    {"sticky_error", test_sticky_error},
    {"callback_stop_resume", test_callback_stop_resume},
    {NULL, NULL}
  };
  count_setup();
  return testutil_run("frame", cases, argc, argv);
}
