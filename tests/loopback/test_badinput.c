/*
** Bad input against a real node: malformed and truncated frames, unknown
** types, oversized lengths and values, bad names and levels. Each gets an
** error with a code (or a closed connection for a broken stream), other
** connections keep being served and stored data is untouched.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "cellar.pb-c.h"
#include "cellar/cellar.h"
#include "frame.h"
#include "harness.h"
#include "testutil.h"

static node_proc node;
static char *base;
static cellar_client_t *good;

static void cleanup(void) {
  if (node.pid) harness_node_signal(&node, SIGKILL);
  if (base) testutil_rmrf(base);
}

static int raw_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)node.port)};
  inet_pton(AF_INET, node.host, &a.sin_addr);
  CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    b += w;
    n -= (size_t)w;
  }
}

static void send_frame(int fd, unsigned type, uint32_t id, const void *payload,
                       size_t len) {
  frame_header h = {FRAME_MAGIC, FRAME_VERSION, (uint8_t)type, 0, id, (uint32_t)len};
  uint8_t hdr[FRAME_HEADER_SIZE];
  frame_header_encode(&h, hdr);
  send_all(fd, hdr, sizeof hdr);
  if (len) send_all(fd, payload, len);
}

static int read_exact(int fd, uint8_t *p, size_t n, int timeout_ms) {
  while (n) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, timeout_ms) <= 0) return -1;
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Reads one answer; returns its code and message, sets *id. -1000 on EOF. */
static int read_answer(int fd, uint32_t *id, char *msg, size_t msglen) {
  uint8_t hdr[FRAME_HEADER_SIZE];
  if (read_exact(fd, hdr, sizeof hdr, 5000)) return -1000;
  frame_header h;
  CU_ASSERT_EQUAL_FATAL(frame_header_decode(hdr, 64u << 20, &h), 0);
  CU_ASSERT(h.flags & FRAME_FLAG_RESPONSE);
  uint8_t *p = malloc(h.length + 1);
  CU_ASSERT_EQUAL_FATAL(read_exact(fd, p, h.length, 5000), 0);
  Cellar__Wire__Response *r = cellar__wire__response__unpack(NULL, h.length, p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  int code = r->code;
  if (msg) snprintf(msg, msglen, "%s", r->message ? r->message : "");
  if (id) *id = h.request_id;
  cellar__wire__response__free_unpacked(r, NULL);
  free(p);
  return code;
}

static int closed_by_peer(int fd) {
  uint8_t b;
  struct pollfd pf = {fd, POLLIN, 0};
  if (poll(&pf, 1, 5000) <= 0) return 0;
  return recv(fd, &b, 1, 0) == 0;
}

static void good_client_still_works(void) {
  CU_ASSERT_EQUAL(cellar_ping(good, NULL), 0);
  cellar_get_t g = {.keyspace = "ks", .table = "t", .partition = "keep",
                    .partition_len = 4};
  cellar_result_t *r = NULL;
  CU_ASSERT_EQUAL(cellar_get(good, &g, &r), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_result_row_count(r), 1);
  size_t n;
  const void *v = cellar_result_cell_value(r, 0, 0, &n);
  CU_ASSERT_EQUAL(n, 8);
  CU_ASSERT_EQUAL(memcmp(v, "original", 8), 0);
  cellar_result_free(r);
}

static void start(void) {
  base = testutil_tmpdir("badinput");
  atexit(cleanup);
  harness_node_init(&node, base, "127.0.0.1", 1);
  CU_ASSERT_EQUAL_FATAL(harness_node_start(&node, NULL, 10000), 0);
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = node.addr;
  CU_ASSERT_EQUAL_FATAL(cellar_connect(&o, &good), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_create_keyspace(good, "ks", "SimpleStrategy:1", 0, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cellar_create_table(good, "ks", "t", NULL, 0, NULL), 0);
  cellar_cell_t cell = {"v", 1, "original", 8};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = "ks", .table = "t", .partition = "keep",
                    .partition_len = 4, .rows = &row, .nrows = 1};
  CU_ASSERT_EQUAL_FATAL(cellar_put(good, &p, NULL), 0);
}

static void test_broken_streams_close_only_their_connection(void) {
  start();
  /* bad magic */
  int fd = raw_connect();
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
  CU_ASSERT_EQUAL(read_answer(fd, NULL, NULL, 0), CELLAR_EPROTO);
  CU_ASSERT(closed_by_peer(fd));
  close(fd);
  good_client_still_works();

  /* bad version */
  fd = raw_connect();
  frame_header h = {FRAME_MAGIC, 77, FRAME_PING, 0, 5, 0};
  uint8_t hdr[FRAME_HEADER_SIZE];
  frame_header_encode(&h, hdr);
  send_all(fd, hdr, sizeof hdr);
  CU_ASSERT_EQUAL(read_answer(fd, NULL, NULL, 0), CELLAR_EBADVERSION);
  CU_ASSERT(closed_by_peer(fd));
  close(fd);

  /* a 4 GiB length: refused before anything is allocated */
  fd = raw_connect();
  h = (frame_header){FRAME_MAGIC, FRAME_VERSION, FRAME_PUT, 0, 6, 0xFFFFFFF0u};
  frame_header_encode(&h, hdr);
  send_all(fd, hdr, sizeof hdr);
  uint32_t id = 0;
  char msg[256];
  CU_ASSERT_EQUAL(read_answer(fd, &id, msg, sizeof msg), CELLAR_ETOOBIG);
  CU_ASSERT_EQUAL(id, 6);
  CU_ASSERT(closed_by_peer(fd));
  close(fd);

  /* truncated frames, then the client goes away */
  for (int i = 0; i < 20; i++) {
    fd = raw_connect();
    h = (frame_header){FRAME_MAGIC, FRAME_VERSION, FRAME_PUT, 0, 7, 1000};
    frame_header_encode(&h, hdr);
    send_all(fd, hdr, (size_t)(i % FRAME_HEADER_SIZE) + 1);
    if (i % 2) send_all(fd, "abc", 3);
    close(fd);
  }
  good_client_still_works();
}

static void test_bad_requests_get_errors_and_connection_goes_on(void) {
  if (!node.pid) start();
  int fd = raw_connect();
  char msg[256];
  uint32_t id;
  /* unknown type */
  send_frame(fd, 99, 11, "xyz", 3);
  CU_ASSERT_EQUAL(read_answer(fd, &id, msg, sizeof msg), CELLAR_EBADTYPE);
  CU_ASSERT_EQUAL(id, 11);
  /* garbage payload for a PUT */
  send_frame(fd, FRAME_PUT, 12, "\xff\xff\xff\xff\xff\x01", 6);
  CU_ASSERT_EQUAL(read_answer(fd, &id, msg, sizeof msg), CELLAR_EPROTO);
  CU_ASSERT_EQUAL(id, 12);

  /* well-formed protobuf, bad contents */
  Cellar__Wire__PutRequest p = CELLAR__WIRE__PUT_REQUEST__INIT;
  Cellar__Wire__Row row = CELLAR__WIRE__ROW__INIT;
  Cellar__Wire__Cell cell = CELLAR__WIRE__CELL__INIT;
  Cellar__Wire__Row *rows[] = {&row};
  Cellar__Wire__Cell *cells[] = {&cell};
  row.n_cells = 1;
  row.cells = cells;
  p.n_rows = 1;
  p.rows = rows;
  p.keyspace = "ks";
  p.table = "t";
  p.partition.data = (uint8_t *)"keep";
  p.partition.len = 4;
  cell.name.data = (uint8_t *)"v";
  cell.name.len = 1;
  cell.value.data = (uint8_t *)"clobbered";
  cell.value.len = 9;
  struct { const char *ks, *table; uint32_t cl; size_t vlen; int code; } cases[] = {
    {"bad name", "t", 0, 9, CELLAR_EBADNAME},
    {"nope", "t", 0, 9, CELLAR_ENOKEYSPACE},
    {"ks", "nope", 0, 9, CELLAR_ENOTABLE},
    {"ks", "t", 42, 9, CELLAR_EBADCL},
    {"ks", "t", 0, CELLAR_MAX_VALUE_BYTES + 1, CELLAR_ETOOBIG},
  };
  uint8_t *big = calloc(1, CELLAR_MAX_VALUE_BYTES + 1);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    p.keyspace = (char *)cases[i].ks;
    p.table = (char *)cases[i].table;
    p.consistency = cases[i].cl;
    cell.value.len = cases[i].vlen;
    cell.value.data = cases[i].vlen > 9 ? big : (uint8_t *)"clobbered";
    size_t n = cellar__wire__put_request__get_packed_size(&p);
    uint8_t *buf = malloc(n);
    cellar__wire__put_request__pack(&p, buf);
    send_frame(fd, FRAME_PUT, 100 + (uint32_t)i, buf, n);
    free(buf);
    int code = read_answer(fd, &id, msg, sizeof msg);
    CU_ASSERT_EQUAL(code, cases[i].code);
    CU_ASSERT_EQUAL(id, 100 + i);
    CU_ASSERT(strlen(msg) > 0);
    if (code != cases[i].code) printf("\n  case %zu: got %d (%s)\n", i, code, msg);
  }
  free(big);
  /* an oversized key */
  uint8_t *bigkey = calloc(1, CELLAR_MAX_KEY_BYTES + 1);
  p.keyspace = "ks";
  p.table = "t";
  p.consistency = 0;
  cell.value.len = 9;
  cell.value.data = (uint8_t *)"clobbered";
  p.partition.data = bigkey;
  p.partition.len = CELLAR_MAX_KEY_BYTES + 1;
  size_t n = cellar__wire__put_request__get_packed_size(&p);
  uint8_t *buf = malloc(n);
  cellar__wire__put_request__pack(&p, buf);
  send_frame(fd, FRAME_PUT, 200, buf, n);
  free(buf);
  free(bigkey);
  CU_ASSERT_EQUAL(read_answer(fd, &id, msg, sizeof msg), CELLAR_ETOOBIG);

  /* the same connection still works */
  send_frame(fd, FRAME_PING, 300, NULL, 0);
  CU_ASSERT_EQUAL(read_answer(fd, &id, msg, sizeof msg), 0);
  CU_ASSERT_EQUAL(id, 300);
  close(fd);
  good_client_still_works();
}

static void test_random_garbage_many_connections(void) {
  if (!node.pid) start();
  srand(42);
  for (int i = 0; i < 200; i++) {
    int fd = raw_connect();
    uint8_t junk[512];
    size_t n = (size_t)(rand() % (int)sizeof junk) + 1;
    for (size_t j = 0; j < n; j++) junk[j] = (uint8_t)rand();
    if (i % 3 == 0) {   /* a valid header in front of random bytes */
      frame_header h = {FRAME_MAGIC, FRAME_VERSION, (uint8_t)(1 + rand() % 12), 0,
                        (uint32_t)i, (uint32_t)n};
      frame_header_encode(&h, junk);
      if (n < FRAME_HEADER_SIZE) n = FRAME_HEADER_SIZE;
      h.length = (uint32_t)(n - FRAME_HEADER_SIZE);
      frame_header_encode(&h, junk);
    }
    send_all(fd, junk, n);
    close(fd);
  }
  good_client_still_works();
  CU_ASSERT_EQUAL(kill(node.pid, 0), 0);
  cellar_close(good);
  good = NULL;
  CU_ASSERT_EQUAL(harness_node_signal(&node, SIGTERM), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"broken_streams_close_only_their_connection", test_broken_streams_close_only_their_connection},
    {"bad_requests_get_errors_and_connection_goes_on", test_bad_requests_get_errors_and_connection_goes_on},
    {"random_garbage_many_connections", test_random_garbage_many_connections},
    {NULL, NULL}};
  return testutil_run("badinput", cases, argc, argv);
}
