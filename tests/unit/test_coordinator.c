/* Unit tests of the coordinator state machines, driven by hand: replies in
** every order, late replies, errors, timeouts, duplicates and strays, read
** digests, merge and read repair; a property: exactly one answer. */
#include <murmurhash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "coordinator.h"
#include "testutil.h"

/* ----------------------------------------------------------- helpers */

#define MAXACTS 512

typedef struct acts {
  coord_action a[MAXACTS];
  size_t n;
} acts;

static void drain(coord *c, acts *x) {
  x->n = 0;
  while (x->n < MAXACTS && coord_next(c, &x->a[x->n])) x->n++;
}

static size_t count_kind(const acts *x, coord_action_kind k) {
  size_t n = 0;
  for (size_t i = 0; i < x->n; i++) n += x->a[i].kind == k;
  return n;
}

/* The action of kind k for replica (UINT32_MAX: any), or NULL. */
static const coord_action *find(const acts *x, coord_action_kind k, uint32_t replica) {
  for (size_t i = 0; i < x->n; i++)
    if (x->a[i].kind == k && (replica == UINT32_MAX || x->a[i].replica == replica))
      return &x->a[i];
  return NULL;
}

static keyspace_def simple(uint32_t rf) {
  keyspace_def k;
  memset(&k, 0, sizeof k);
  strcpy(k.name, "ks");
  k.strategy = REPL_SIMPLE;
  k.rf = rf;
  return k;
}

static keyspace_def nts(uint32_t rf1, uint32_t rf2) {
  keyspace_def k;
  memset(&k, 0, sizeof k);
  strcpy(k.name, "ks");
  k.strategy = REPL_NETWORK_TOPOLOGY;
  k.ndcs = 2;
  strcpy(k.dcs[0].name, "dc1");
  k.dcs[0].rf = rf1;
  strcpy(k.dcs[1].name, "dc2");
  k.dcs[1].rf = rf2;
  return k;
}

static cl_replica rep(uint32_t member, const char *dc, int alive) {
  cl_replica r;
  memset(&r, 0, sizeof r);
  r.member = member;
  snprintf(r.dc, sizeof r.dc, "%s", dc);
  r.alive = alive;
  return r;
}

/* n replicas in dc1, members 100.., alive unless in down (bit mask) */
static void reps_simple(cl_replica *r, size_t n, unsigned down) {
  for (size_t i = 0; i < n; i++) r[i] = rep((uint32_t)(100 + i), "dc1", !((down >> i) & 1));
}

static coord_config config(const keyspace_def *ks, const char *local,
                           cellar_consistency_t level, const cl_replica *r, size_t n) {
  coord_config c;
  memset(&c, 0, sizeof c);
  c.id = 42;
  c.level = level;
  c.ks = ks;
  c.local_dc = local;
  c.replicas = r;
  c.nreplicas = n;
  c.deadline_ns = 2000000000ull;
  return c;
}

static coord_cell live(const char *key, int64_t ts, const char *val) {
  coord_cell c;
  c.key = CBYTES(key, strlen(key));
  c.v = cell_live(ts, 0, CBYTES(val, strlen(val)));
  return c;
}

static coord_cell tomb(const char *key, int64_t ts) {
  coord_cell c;
  c.key = CBYTES(key, strlen(key));
  c.v = cell_tombstone(ts, 1700000000u);
  return c;
}

static int cell_is(const coord_cell *c, const char *key, int64_t ts, int tombstone) {
  return c->key.n == strlen(key) && !memcmp(c->key.p, key, c->key.n) && c->v.ts == ts &&
         c->v.tombstone == tombstone;
}

/* ------------------------------------------------------------ writes */

static void test_write_quorum_in_order(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 3);
  for (uint32_t i = 0; i < 3; i++) {
    const coord_action *a = find(&x, COORD_SEND_WRITE, i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->member, 100 + i);
    CU_ASSERT_EQUAL(a->id, 42);
  }
  CU_ASSERT_EQUAL(coord_get_state(c), COORD_WAITING);
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 0);            /* duplicate */
  CU_ASSERT_EQUAL(coord_on_ack(c, 2), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_STRING_EQUAL(x.a[0].message, "");
  CU_ASSERT_EQUAL(coord_get_state(c), COORD_ANSWERED);
  CU_ASSERT_FALSE(coord_finished(c));
  /* the late ack is recorded and finishes the request; no second answer */
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_TRUE(coord_finished(c));
  CU_ASSERT_EQUAL(coord_on_timeout(c), 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  coord_stats st;
  coord_get_stats(c, &st);
  CU_ASSERT_EQUAL(st.acks, 3);
  CU_ASSERT_EQUAL(st.ignored, 3);
  CU_ASSERT_EQUAL(coord_id(c), 42);
  CU_ASSERT_EQUAL(coord_deadline(c), 2000000000ull);
  CU_ASSERT_EQUAL(coord_replica_index(c, 102), 2);
  CU_ASSERT_EQUAL(coord_replica_index(c, 7), -1);
  coord_free(c);
}

static int next_perm(int *p, int n) {
  int i = n - 2;
  while (i >= 0 && p[i] >= p[i + 1]) i--;
  if (i < 0) return 0;
  int j = n - 1;
  while (p[j] <= p[i]) j--;
  int t = p[i];
  p[i] = p[j];
  p[j] = t;
  for (int a = i + 1, b = n - 1; a < b; a++, b--) {
    t = p[a];
    p[a] = p[b];
    p[b] = t;
  }
  return 1;
}

/* Every order of acks: the answer comes with the need-th ack, once. */
/* a joining replica gets the write and raises QUORUM from 2 to 3 acks */
static void test_write_pending_replica(void) {
  keyspace_def ks = simple(3);
  cl_replica r[4];
  reps_simple(r, 4, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 4);
  cfg.npending = 1;
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 4);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_WRITE, 3));
  coord_on_ack(c, 0);
  coord_on_ack(c, 3);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);                 /* 2 of 4: not yet */
  coord_on_ack(c, 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  coord_free(c);
  /* with two of four down, QUORUM + 1 pending is unavailable */
  reps_simple(r, 4, 0x6);
  cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 4);
  cfg.npending = 1;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  const coord_action *a = find(&x, COORD_ANSWER, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_EUNAVAILABLE);
  coord_free(c);
}

static void test_write_every_order(void) {
  static const struct {
    cellar_consistency_t level;
    uint32_t rf, need;
  } cases[] = {
    {CELLAR_CL_ONE, 3, 1}, {CELLAR_CL_QUORUM, 3, 2}, {CELLAR_CL_ALL, 3, 3},
    {CELLAR_CL_TWO, 5, 2}, {CELLAR_CL_QUORUM, 5, 3}, {CELLAR_CL_ALL, 5, 5},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    keyspace_def ks = simple(cases[k].rf);
    cl_replica r[5];
    reps_simple(r, cases[k].rf, 0);
    int p[5] = {0, 1, 2, 3, 4};
    size_t orders = 0;
    do {
      coord_config cfg = config(&ks, NULL, cases[k].level, r, cases[k].rf);
      coord *c;
      acts x;
      CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
      drain(c, &x);
      CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_WRITE), cases[k].rf);
      int answers = 0;
      for (uint32_t n = 0; n < cases[k].rf; n++) {
        CU_ASSERT_EQUAL(coord_on_ack(c, (uint32_t)p[n]), 1);
        drain(c, &x);
        size_t a = count_kind(&x, COORD_ANSWER);
        answers += (int)a;
        if (n + 1 == cases[k].need) CU_ASSERT_EQUAL(a, 1);
        if (n + 1 != cases[k].need) CU_ASSERT_EQUAL(a, 0);
      }
      CU_ASSERT_EQUAL(answers, 1);
      CU_ASSERT_TRUE(coord_finished(c));
      coord_free(c);
      orders++;
    } while (next_perm(p, (int)cases[k].rf));
    CU_ASSERT_EQUAL(orders, cases[k].rf == 3 ? 6 : 120);
  }
}

static void test_write_unavailable_before_sending(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0x5);       /* replicas 0 and 2 down */
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);                /* no send, no hint */
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, CELLAR_EUNAVAILABLE);
  CU_ASSERT_STRING_EQUAL(x.a[0].message, "QUORUM requires 2 replicas, 1 alive");
  CU_ASSERT_TRUE(coord_finished(c));
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 0);
  coord_free(c);
  /* same with reads, and an invalid level */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, CELLAR_EUNAVAILABLE);
  coord_free(c);
  cfg.level = CELLAR_CL_ANY;
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, CELLAR_EBADCL);
  CU_ASSERT_STRING_EQUAL(x.a[0].message, "consistency level ANY is only valid for writes");
  coord_free(c);
  /* arguments the owner got wrong are not answers */
  cfg.ks = NULL;
  CU_ASSERT_EQUAL(coord_write_new(&cfg, &c), CELLAR_EINVAL);
  CU_ASSERT_PTR_NULL(c);
  cfg.ks = &ks;
  cfg.nreplicas = CL_MAX_REPLICAS + 1;
  CU_ASSERT_EQUAL(coord_read_new(&cfg, &c), CELLAR_EINVAL);
  coord_free(NULL);
}

static void test_write_down_replica_gets_hint(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0x2);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 3);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_WRITE, 0));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_STORE_HINT, 1));
  CU_ASSERT_PTR_NULL(find(&x, COORD_SEND_WRITE, 1));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_WRITE, 2));
  CU_ASSERT_EQUAL(find(&x, COORD_STORE_HINT, 1)->member, 101);
  /* an ack from the replica not asked is a stray */
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 3), 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, UINT32_MAX), 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 2), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_TRUE(coord_finished(c));    /* every asked replica answered */
  coord_free(c);
}

static void test_write_timeout(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(coord_on_ack(c, 2), 1);
  CU_ASSERT_EQUAL(coord_on_timeout(c), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 3);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_STORE_HINT, 0));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_STORE_HINT, 1));
  CU_ASSERT_PTR_NULL(find(&x, COORD_STORE_HINT, 2));
  const coord_action *a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_ETIMEDOUT);
  CU_ASSERT_STRING_EQUAL(a->message, "timed out: QUORUM required 2 acks, got 1");
  CU_ASSERT_TRUE(coord_finished(c));
  /* late replies change nothing */
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 0);
  CU_ASSERT_EQUAL(coord_on_error(c, 1, CELLAR_ESTORAGE), 0);
  CU_ASSERT_EQUAL(coord_on_timeout(c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  coord_free(c);

  /* answered at ONE: the timeout only hints the silent replicas */
  cfg.level = CELLAR_CL_ONE;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_ack(c, 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 1);
  CU_ASSERT_EQUAL(coord_get_state(c), COORD_ANSWERED);
  CU_ASSERT_EQUAL(coord_on_timeout(c), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 2);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_STORE_HINT), 2);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 0);
  CU_ASSERT_TRUE(coord_finished(c));
  coord_free(c);
}

static void test_write_errors(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(coord_on_error(c, 0, CELLAR_ESTORAGE), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);                /* a hint, no answer yet */
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_STORE_HINT);
  CU_ASSERT_EQUAL(x.a[0].replica, 0);
  CU_ASSERT_EQUAL(coord_on_error(c, 0, CELLAR_ESTORAGE), 0);   /* duplicate */
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 0);                      /* after its error */
  CU_ASSERT_EQUAL(coord_on_error(c, 2, CELLAR_EOVERLOAD), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 2);
  const coord_action *a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_ESTORAGE);
  CU_ASSERT_STRING_EQUAL(a->message,
                         "failed: QUORUM required 2 acks, got 0 (2 replicas failed: storage error)");
  CU_ASSERT_EQUAL(coord_get_state(c), COORD_ANSWERED);
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 1);       /* still recorded */
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_TRUE(coord_finished(c));
  coord_free(c);

  /* an error after the answer: a hint, nothing else */
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_ack(c, 0);
  coord_on_ack(c, 1);
  coord_on_error(c, 2, CELLAR_EIO);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 2);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_EQUAL(x.a[1].kind, COORD_STORE_HINT);
  CU_ASSERT_TRUE(coord_finished(c));
  coord_free(c);
}

static void test_write_forwarding(void) {
  keyspace_def ks = nts(3, 3);
  /* ring order interleaves the datacenters */
  cl_replica r[6] = {rep(10, "dc2", 1), rep(11, "dc1", 1), rep(12, "dc2", 1),
                     rep(13, "dc1", 1), rep(14, "dc2", 1), rep(15, "dc1", 1)};
  coord_config cfg = config(&ks, "dc1", CELLAR_CL_EACH_QUORUM, r, 6);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 4);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_WRITE), 3);
  const coord_action *f = find(&x, COORD_SEND_WRITE_FORWARD, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(f->replica, 0);
  CU_ASSERT_EQUAL(f->member, 10);
  CU_ASSERT_EQUAL_FATAL(f->nforward, 2);
  CU_ASSERT_EQUAL(f->forward[0], 2);
  CU_ASSERT_EQUAL(f->forward[1], 4);
  CU_ASSERT_EQUAL(f->forward_members[0], 12);
  CU_ASSERT_EQUAL(f->forward_members[1], 14);
  for (uint32_t i = 1; i < 6; i += 2) CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_WRITE, i));
  /* local quorum alone is not EACH_QUORUM; forwarded acks count */
  coord_on_ack(c, 1);
  coord_on_ack(c, 3);
  coord_on_ack(c, 5);
  coord_on_ack(c, 4);                           /* forwarded replica */
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  coord_on_ack(c, 2);                           /* forwarded replica */
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 1);
  coord_on_timeout(c);                          /* the forwarder never acked */
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 1);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_STORE_HINT, 0));
  coord_free(c);

  /* the first remote replica down: the next one forwards, the down one
  ** gets a hint and is not in the forward list */
  r[0].alive = 0;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_STORE_HINT, 0));
  f = find(&x, COORD_SEND_WRITE_FORWARD, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(f->replica, 2);
  CU_ASSERT_EQUAL_FATAL(f->nforward, 1);
  CU_ASSERT_EQUAL(f->forward[0], 4);
  coord_free(c);

  /* only one alive remote replica: a plain send */
  r[4].alive = 0;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, CELLAR_EUNAVAILABLE);   /* EACH_QUORUM: dc2 has 1 */
  CU_ASSERT_STRING_EQUAL(x.a[0].message, "EACH_QUORUM requires 2 replicas in dc2, 1 alive");
  coord_free(c);
  cfg.level = CELLAR_CL_LOCAL_QUORUM;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_WRITE), 4);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_WRITE_FORWARD), 0);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_STORE_HINT), 2);
  /* LOCAL_QUORUM: the remote ack does not count */
  coord_on_ack(c, 2);
  coord_on_ack(c, 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  coord_on_ack(c, 5);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 1);
  coord_on_timeout(c);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_STORE_HINT), 1);   /* replica 3 */
  coord_free(c);

  /* no_forward: every replica its own copy */
  r[0].alive = r[4].alive = 1;
  cfg.no_forward = 1;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_WRITE), 6);
  coord_free(c);
}

static void test_write_local_quorum_timeout_message(void) {
  keyspace_def ks = nts(3, 3);
  cl_replica r[6] = {rep(0, "dc1", 1), rep(1, "dc1", 1), rep(2, "dc1", 1),
                     rep(3, "dc2", 1), rep(4, "dc2", 1), rep(5, "dc2", 1)};
  coord_config cfg = config(&ks, "dc1", CELLAR_CL_LOCAL_QUORUM, r, 6);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_ack(c, 0);
  coord_on_ack(c, 3);
  coord_on_ack(c, 4);
  coord_on_timeout(c);
  drain(c, &x);
  const coord_action *a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_STRING_EQUAL(a->message, "timed out: LOCAL_QUORUM required 2 acks in dc1, got 1");
  coord_free(c);
}

static void test_write_any(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0x7);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_ANY, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 3);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_STORE_HINT), 3);
  CU_ASSERT_FALSE(coord_answered(c));
  CU_ASSERT_EQUAL(coord_on_hint_stored(c, 1), 1);
  CU_ASSERT_EQUAL(coord_on_hint_stored(c, 1), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_TRUE(coord_finished(c));
  coord_free(c);

  /* ANY with replicas alive: the first ack */
  reps_simple(r, 3, 0x1);
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_WRITE), 2);
  coord_on_ack(c, 2);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 1);
  coord_free(c);

  /* ANY times out when neither an ack nor a stored hint came */
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_error(c, 1, CELLAR_EOVERLOAD);
  coord_on_timeout(c);
  drain(c, &x);
  const coord_action *a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_ETIMEDOUT);
  CU_ASSERT_STRING_EQUAL(a->message, "timed out: ANY required 1 acks, got 0");
  coord_free(c);

  /* ANY, every replica down: hints that could not be stored answer
  ** UNAVAILABLE at once, once none is left that could count */
  reps_simple(r, 3, 0x7);
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(coord_on_hint_failed(c, 0, CELLAR_ETOOBIG), 1);
  CU_ASSERT_EQUAL(coord_on_hint_failed(c, 0, CELLAR_ETOOBIG), 0);
  CU_ASSERT_EQUAL(coord_on_hint_failed(c, 2, CELLAR_ESTORAGE), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_EQUAL(coord_on_hint_failed(c, 1, CELLAR_EUNAVAILABLE), 1);
  drain(c, &x);
  a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_EUNAVAILABLE);
  CU_ASSERT_PTR_NOT_NULL(strstr(a->message, "no hint stored"));
  CU_ASSERT_TRUE(coord_finished(c));
  coord_free(c);
  /* one hint failed, another stored: the write succeeds */
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_hint_failed(c, 0, CELLAR_ETOOBIG);
  coord_on_hint_stored(c, 1);
  drain(c, &x);
  a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, 0);
  coord_free(c);
  /* an alive replica that failed, the others' hints failed: UNAVAILABLE */
  reps_simple(r, 3, 0x6);
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_error(c, 0, CELLAR_EOVERLOAD);
  coord_on_hint_failed(c, 1, CELLAR_ETOOBIG);
  coord_on_hint_failed(c, 2, CELLAR_ETOOBIG);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 0);   /* 0's hint may land */
  coord_on_hint_failed(c, 0, CELLAR_ESHUTDOWN);
  drain(c, &x);
  a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_EUNAVAILABLE);
  coord_free(c);
  reps_simple(r, 3, 0x1);

  /* a stored or failed hint means nothing below ANY */
  cfg.level = CELLAR_CL_ONE;
  CU_ASSERT_EQUAL_FATAL(coord_write_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(coord_on_hint_stored(c, 0), 0);
  CU_ASSERT_EQUAL(coord_on_hint_failed(c, 0, CELLAR_ETOOBIG), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  coord_free(c);
}

/* ------------------------------------------------------------- reads */

static void digest_of(const coord_cell *cells, size_t n, uint8_t out[COORD_DIGEST_LEN]) {
  coord_digest(cells, n, out);
}

static void test_digest_format(void) {
  coord_cell cells[3] = {live("b", 7, "hello"), tomb("a", 9), live("c", -3, "")};
  cells[2].v.expires_at = 1800000000u;
  uint8_t d[COORD_DIGEST_LEN];
  coord_digest(cells, 3, d);
  /* the documented serialization, in key order, hashed by libmurmurhash */
  uint8_t buf[512];
  size_t n = 0;
  const coord_cell *order[3] = {&cells[1], &cells[0], &cells[2]};
  for (int i = 0; i < 3; i++) {
    const coord_cell *c = order[i];
    uint32_t kl = (uint32_t)c->key.n, el = (uint32_t)cell_encoded_size(&c->v);
    uint8_t be[4] = {(uint8_t)(kl >> 24), (uint8_t)(kl >> 16), (uint8_t)(kl >> 8), (uint8_t)kl};
    memcpy(buf + n, be, 4);
    n += 4;
    memcpy(buf + n, c->key.p, c->key.n);
    n += c->key.n;
    uint8_t be2[4] = {(uint8_t)(el >> 24), (uint8_t)(el >> 16), (uint8_t)(el >> 8), (uint8_t)el};
    memcpy(buf + n, be2, 4);
    n += 4;
    n += cell_encode(&c->v, buf + n);
  }
  uint64_t h[2];
  lmmh_x64_128(buf, (unsigned)n, 0, h);
  uint8_t want[16];
  for (int i = 0; i < 8; i++) {
    want[i] = (uint8_t)(h[0] >> (8 * i));
    want[8 + i] = (uint8_t)(h[1] >> (8 * i));
  }
  CU_ASSERT_EQUAL(memcmp(d, want, 16), 0);
  /* the streaming hash agrees with the reference for every length and
  ** split (one long cell of 0..99 value bytes) */
  for (size_t len = 0; len < 100; len++) {
    char val[100];
    for (size_t i = 0; i < len; i++) val[i] = (char)(i * 37 + len);
    coord_cell one;
    one.key = CBYTES("k", 1);
    one.v = cell_live(1, 0, CBYTES(val, len));
    coord_digest(&one, 1, d);
    n = 0;
    uint32_t el = (uint32_t)cell_encoded_size(&one.v);
    buf[n++] = 0; buf[n++] = 0; buf[n++] = 0; buf[n++] = 1;
    buf[n++] = 'k';
    buf[n++] = (uint8_t)(el >> 24); buf[n++] = (uint8_t)(el >> 16);
    buf[n++] = (uint8_t)(el >> 8); buf[n++] = (uint8_t)el;
    n += cell_encode(&one.v, buf + n);
    lmmh_x64_128(buf, (unsigned)n, 0, h);
    for (int i = 0; i < 8; i++) {
      want[i] = (uint8_t)(h[0] >> (8 * i));
      want[8 + i] = (uint8_t)(h[1] >> (8 * i));
    }
    CU_ASSERT_EQUAL(memcmp(d, want, 16), 0);
  }
  /* order-free; any change of version changes it */
  coord_cell rev[3] = {cells[2], cells[1], cells[0]};
  uint8_t d2[16];
  coord_digest(cells, 3, d);
  coord_digest(rev, 3, d2);
  CU_ASSERT_EQUAL(memcmp(d, d2, 16), 0);
  rev[0].v.ts++;
  coord_digest(rev, 3, d2);
  CU_ASSERT_NOT_EQUAL(memcmp(d, d2, 16), 0);
  coord_digest(NULL, 0, d);
  coord_digest(cells, 2, d2);
  CU_ASSERT_NOT_EQUAL(memcmp(d, d2, 16), 0);
}

static void test_read_digest_match(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 2);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DATA, 0));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DIGEST, 1));
  coord_cell data[2] = {live("y", 5, "v2"), live("x", 4, "v1")};
  coord_cell same[2] = {data[1], data[0]};
  uint8_t d[COORD_DIGEST_LEN];
  digest_of(same, 2, d);
  /* the digest first, then the data */
  CU_ASSERT_EQUAL(coord_on_digest(c, 1, d), 1);
  CU_ASSERT_EQUAL(coord_on_digest(c, 1, d), 0);          /* duplicate */
  CU_ASSERT_EQUAL(coord_on_digest(c, 0, d), 0);          /* data replica owes data */
  CU_ASSERT_EQUAL(coord_on_data(c, 2, data, 2), 0);      /* not contacted */
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 0);                /* no repair sent */
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_EQUAL(coord_on_data(c, 0, data, 2), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_EQUAL_FATAL(x.a[0].ncells, 2);
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[0], "x", 4, 0));   /* key order */
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[1], "y", 5, 0));
  CU_ASSERT_EQUAL(memcmp(x.a[0].cells[1].v.value.p, "v2", 2), 0);
  CU_ASSERT_TRUE(coord_finished(c));
  CU_ASSERT_EQUAL(coord_on_data(c, 1, data, 2), 0);      /* late */
  coord_stats st;
  coord_get_stats(c, &st);
  CU_ASSERT_FALSE(st.digest_mismatch);
  coord_free(c);

  /* the empty partition everywhere */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, NULL, 0);
  digest_of(NULL, 0, d);
  coord_on_digest(c, 1, d);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_EQUAL(x.a[0].ncells, 0);
  coord_free(c);

  /* ONE: a single data request, no digest */
  cfg.level = CELLAR_CL_ONE;
  reps_simple(r, 3, 0x1);                                /* the first is down */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_SEND_DATA);
  CU_ASSERT_EQUAL(x.a[0].replica, 1);
  coord_on_data(c, 1, data, 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 1);
  coord_free(c);
}

static void test_read_choice_of_replicas(void) {
  keyspace_def ks = nts(3, 3);
  cl_replica r[6] = {rep(0, "dc1", 1), rep(1, "dc2", 1), rep(2, "dc1", 1),
                     rep(3, "dc2", 0), rep(4, "dc1", 1), rep(5, "dc2", 1)};
  coord *c;
  acts x;
  /* LOCAL_QUORUM from dc2: the two alive dc2 replicas, data from the first */
  coord_config cfg = config(&ks, "dc2", CELLAR_CL_LOCAL_QUORUM, r, 6);
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 2);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DATA, 1));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DIGEST, 5));
  coord_free(c);
  /* QUORUM (4) from dc2: local first, then dc1 in ring order */
  cfg.level = CELLAR_CL_QUORUM;
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 4);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_SEND_DATA);
  CU_ASSERT_EQUAL(x.a[0].replica, 1);
  CU_ASSERT_EQUAL(x.a[1].replica, 5);
  CU_ASSERT_EQUAL(x.a[2].replica, 0);
  CU_ASSERT_EQUAL(x.a[3].replica, 2);
  coord_free(c);
  /* EACH_QUORUM from dc1: two per datacenter */
  cfg.level = CELLAR_CL_EACH_QUORUM;
  cfg.local_dc = "dc1";
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 4);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DATA, 0));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DIGEST, 2));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DIGEST, 1));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DIGEST, 5));
  CU_ASSERT_PTR_NULL(find(&x, COORD_SEND_DIGEST, 4));
  coord_free(c);
}

/* Three replicas disagree: merge per cell, repair each with what it
** lacks, answer only when every repair is acknowledged. */
static void test_read_mismatch_merge_and_repair(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_ALL, r, 3);
  coord_cell d0[2] = {live("a", 10, "x"), live("b", 5, "old")};
  coord_cell d1[1] = {live("a", 20, "y")};
  coord_cell d2[2] = {tomb("b", 7), live("c", 1, "z")};
  uint8_t g1[16], g2[16];
  digest_of(d1, 1, g1);
  digest_of(d2, 2, g2);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 3);
  coord_on_digest(c, 2, g2);
  coord_on_data(c, 0, d0, 2);
  coord_on_digest(c, 1, g1);
  drain(c, &x);
  /* mismatch: full data from the two that sent digests only */
  CU_ASSERT_EQUAL(x.n, 2);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DATA, 1));
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DATA, 2));
  CU_ASSERT_EQUAL(coord_get_state(c), COORD_READING_DATA);
  CU_ASSERT_EQUAL(coord_on_digest(c, 1, g1), 0);         /* no digests now */
  CU_ASSERT_EQUAL(coord_on_data(c, 0, d0, 2), 0);        /* already have it */
  coord_on_data(c, 2, d2, 2);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  coord_on_data(c, 1, d1, 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 3);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_READ_REPAIR), 3);
  CU_ASSERT_EQUAL(coord_get_state(c), COORD_REPAIRING);
  const coord_action *p0 = find(&x, COORD_READ_REPAIR, 0);
  const coord_action *p1 = find(&x, COORD_READ_REPAIR, 1);
  const coord_action *p2 = find(&x, COORD_READ_REPAIR, 2);
  CU_ASSERT_FATAL(p0 && p1 && p2);
  CU_ASSERT_EQUAL_FATAL(p0->ncells, 3);                  /* a newer, b deleted, c missing */
  CU_ASSERT_TRUE(cell_is(&p0->cells[0], "a", 20, 0));
  CU_ASSERT_TRUE(cell_is(&p0->cells[1], "b", 7, 1));
  CU_ASSERT_TRUE(cell_is(&p0->cells[2], "c", 1, 0));
  CU_ASSERT_EQUAL_FATAL(p1->ncells, 2);
  CU_ASSERT_TRUE(cell_is(&p1->cells[0], "b", 7, 1));
  CU_ASSERT_TRUE(cell_is(&p1->cells[1], "c", 1, 0));
  CU_ASSERT_EQUAL_FATAL(p2->ncells, 1);
  CU_ASSERT_TRUE(cell_is(&p2->cells[0], "a", 20, 0));
  CU_ASSERT_EQUAL(memcmp(p2->cells[0].v.value.p, "y", 1), 0);
  /* blocking: no answer until the third repair ack */
  CU_ASSERT_EQUAL(coord_on_ack(c, 2), 1);
  CU_ASSERT_EQUAL(coord_on_ack(c, 2), 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 0);
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].code, 0);
  CU_ASSERT_EQUAL_FATAL(x.a[0].ncells, 3);
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[0], "a", 20, 0));
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[1], "b", 7, 1));  /* tombstones stay in */
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[2], "c", 1, 0));
  CU_ASSERT_TRUE(coord_finished(c));
  coord_stats st;
  coord_get_stats(c, &st);
  CU_ASSERT_TRUE(st.digest_mismatch);
  CU_ASSERT_EQUAL(st.repairs, 3);
  CU_ASSERT_EQUAL(st.repaired_cells, 6);
  coord_free(c);
}

/* One stale replica out of three: only it is repaired. */
static void test_read_repairs_only_the_stale(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_ALL, r, 3);
  coord_cell fresh[2] = {live("a", 2, "new"), live("b", 1, "b")};
  coord_cell stale[2] = {live("a", 1, "old"), live("b", 1, "b")};
  uint8_t gf[16], gs[16];
  digest_of(fresh, 2, gf);
  digest_of(stale, 2, gs);
  coord *c;
  acts x;
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, fresh, 2);
  coord_on_digest(c, 1, gf);
  coord_on_digest(c, 2, gs);
  drain(c, &x);
  CU_ASSERT_EQUAL(x.n, 2);               /* data from 1 and 2 */
  /* a duplicate key in an answer keeps the winner */
  coord_cell dup[3] = {live("b", 1, "b"), live("a", 2, "new"), live("a", 1, "old")};
  coord_on_data(c, 1, dup, 3);
  coord_on_data(c, 2, stale, 2);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_READ_REPAIR);
  CU_ASSERT_EQUAL(x.a[0].replica, 2);
  CU_ASSERT_EQUAL_FATAL(x.a[0].ncells, 1);
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[0], "a", 2, 0));
  CU_ASSERT_EQUAL(coord_on_ack(c, 1), 0);   /* no repair was sent to 1 */
  coord_on_ack(c, 2);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_ANSWER), 1);
  coord_free(c);

  /* digests differ but the full data agrees (the replica caught up
  ** between the rounds): no repair, the answer at once */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, fresh, 2);
  coord_on_digest(c, 1, gf);
  coord_on_digest(c, 2, gs);
  drain(c, &x);
  coord_on_data(c, 1, fresh, 2);
  coord_on_data(c, 2, fresh, 2);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[0].ncells, 2);
  coord_free(c);
}

static void test_read_errors_and_timeouts(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_QUORUM, r, 3);
  coord_cell a1[1] = {live("a", 1, "1")}, a2[1] = {live("a", 2, "2")};
  uint8_t g1[16], g2[16];
  digest_of(a1, 1, g1);
  digest_of(a2, 1, g2);
  coord *c;
  acts x;
  const coord_action *a;

  /* a digest replica fails */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, a1, 1);
  CU_ASSERT_EQUAL(coord_on_error(c, 2, CELLAR_ESTORAGE), 0);   /* not contacted */
  CU_ASSERT_EQUAL(coord_on_error(c, 1, CELLAR_ESTORAGE), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, CELLAR_ESTORAGE);
  CU_ASSERT_STRING_EQUAL(x.a[0].message,
                         "failed: QUORUM required 2 responses, got 1 (1 replicas failed: storage error)");
  CU_ASSERT_TRUE(coord_finished(c));
  CU_ASSERT_EQUAL(coord_on_digest(c, 1, g1), 0);
  coord_free(c);

  /* the first round times out */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_digest(c, 1, g1);
  coord_on_timeout(c);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].code, CELLAR_ETIMEDOUT);
  CU_ASSERT_STRING_EQUAL(x.a[0].message, "timed out: QUORUM required 2 responses, got 1");
  coord_free(c);

  /* the data round times out */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, a1, 1);
  coord_on_digest(c, 1, g2);
  drain(c, &x);
  CU_ASSERT_PTR_NOT_NULL(find(&x, COORD_SEND_DATA, 1));
  coord_on_timeout(c);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_STRING_EQUAL(x.a[0].message, "timed out: QUORUM required 2 responses, got 1 "
                                         "(full data after a digest mismatch)");
  coord_free(c);

  /* the repair times out: a hint carrying the repair cells */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, a1, 1);
  coord_on_digest(c, 1, g2);
  coord_on_data(c, 1, a2, 1);
  drain(c, &x);
  a = find(&x, COORD_READ_REPAIR, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->ncells, 1);
  coord_on_timeout(c);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 2);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_STORE_HINT);
  CU_ASSERT_EQUAL(x.a[0].replica, 0);
  CU_ASSERT_EQUAL_FATAL(x.a[0].ncells, 1);
  CU_ASSERT_TRUE(cell_is(&x.a[0].cells[0], "a", 2, 0));
  CU_ASSERT_EQUAL(x.a[1].kind, COORD_ANSWER);
  CU_ASSERT_EQUAL(x.a[1].code, CELLAR_ETIMEDOUT);
  CU_ASSERT_STRING_EQUAL(x.a[1].message, "timed out: QUORUM read repair required 1 acks, got 0");
  CU_ASSERT_EQUAL(coord_on_ack(c, 0), 0);
  coord_free(c);

  /* the repair fails */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  coord_on_data(c, 0, a1, 1);
  coord_on_digest(c, 1, g2);
  coord_on_data(c, 1, a2, 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(coord_on_error(c, 1, CELLAR_EIO), 0);   /* 1 was not repaired */
  CU_ASSERT_EQUAL(coord_on_error(c, 0, CELLAR_EIO), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL(count_kind(&x, COORD_STORE_HINT), 1);
  a = find(&x, COORD_ANSWER, UINT32_MAX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->code, CELLAR_EIO);
  CU_ASSERT_STRING_EQUAL(a->message, "failed: QUORUM read repair required 1 acks, got 0 "
                                     "(1 replicas failed: input/output error)");
  coord_free(c);

  /* a digest replica that sends data in the first round is fine */
  CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
  drain(c, &x);
  CU_ASSERT_EQUAL(coord_on_data(c, 1, a1, 1), 1);
  CU_ASSERT_EQUAL(coord_on_data(c, 0, a1, 1), 1);
  drain(c, &x);
  CU_ASSERT_EQUAL_FATAL(x.n, 1);
  CU_ASSERT_EQUAL(x.a[0].kind, COORD_ANSWER);
  coord_free(c);
}

/* ALL over 3 replicas that disagree, every order of the six replies the
** protocol needs (3 first-round, 2 data, 3 repair acks interleaved as the
** rounds allow): one answer, always the same merge. */
static void test_read_every_order(void) {
  keyspace_def ks = simple(3);
  cl_replica r[3];
  reps_simple(r, 3, 0);
  coord_config cfg = config(&ks, NULL, CELLAR_CL_ALL, r, 3);
  coord_cell d[3][2] = {{live("a", 3, "a3"), live("b", 1, "b1")},
                        {live("a", 1, "a1"), tomb("b", 2)},
                        {live("c", 9, "c9"), live("b", 1, "b1")}};
  uint8_t g[3][16];
  for (int i = 0; i < 3; i++) digest_of(d[i], 2, g[i]);
  int p[3] = {0, 1, 2};
  int runs = 0;
  do {
    int q[3] = {0, 1, 2};
    do {
      coord *c;
      acts x;
      int answers = 0;
      CU_ASSERT_EQUAL_FATAL(coord_read_new(&cfg, &c), 0);
      drain(c, &x);
      for (int k = 0; k < 3; k++) {
        int i = p[k];
        if (i == 0) coord_on_data(c, 0, d[0], 2);
        else coord_on_digest(c, (uint32_t)i, g[i]);
      }
      drain(c, &x);
      CU_ASSERT_EQUAL(count_kind(&x, COORD_SEND_DATA), 2);
      for (int k = 0; k < 3; k++)
        if (q[k] != 0) coord_on_data(c, (uint32_t)q[k], d[q[k]], 2);
      drain(c, &x);
      CU_ASSERT_EQUAL(count_kind(&x, COORD_READ_REPAIR), 3);
      for (int k = 0; k < 3; k++) {
        coord_on_ack(c, (uint32_t)q[k]);
        acts y;
        drain(c, &y);
        const coord_action *a = find(&y, COORD_ANSWER, UINT32_MAX);
        if (a == NULL) continue;
        answers++;
        CU_ASSERT_EQUAL(k, 2);
        CU_ASSERT_EQUAL_FATAL(a->ncells, 3);
        CU_ASSERT_TRUE(cell_is(&a->cells[0], "a", 3, 0));
        CU_ASSERT_TRUE(cell_is(&a->cells[1], "b", 2, 1));
        CU_ASSERT_TRUE(cell_is(&a->cells[2], "c", 9, 0));
      }
      CU_ASSERT_EQUAL(answers, 1);
      coord_free(c);
      runs++;
    } while (next_perm(q, 3));
  } while (next_perm(p, 3));
  CU_ASSERT_EQUAL(runs, 36);
}

/* ---------------------------------------------------------- property */

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/*
** Random requests (strategy, rf, level, replicas down, read or write) fed
** random events in random order: acks, errors, digests (right and wrong),
** data, stored hints, strays out of range, duplicates, and a timeout at a
** random point (always one at the end, as the owner does). Whatever
** happens: exactly one ANSWER, the request ends DONE, a write answered 0
** had at least the level's acks from replicas it asked, and no action
** names a replica outside the list.
*/
static void test_property_exactly_one_answer(void) {
  rng_state = 12345;
  static const cellar_consistency_t lv[9] = {
    CELLAR_CL_ONE, CELLAR_CL_TWO, CELLAR_CL_THREE, CELLAR_CL_QUORUM, CELLAR_CL_ALL,
    CELLAR_CL_LOCAL_ONE, CELLAR_CL_LOCAL_QUORUM, CELLAR_CL_EACH_QUORUM, CELLAR_CL_ANY};
  coord_cell versions[3][2] = {{live("a", 1, "x"), live("b", 1, "y")},
                               {live("a", 2, "z"), live("b", 1, "y")},
                               {tomb("a", 3), live("c", 1, "w")}};
  uint8_t g[3][16];
  for (int i = 0; i < 3; i++) digest_of(versions[i], 2, g[i]);
  long answered_ok = 0, answered_err = 0, iterations = 20000;
  for (long it = 0; it < iterations; it++) {
    keyspace_def ks = rnd() % 2 ? simple(1 + (uint32_t)(rnd() % 5))
                                : nts(1 + (uint32_t)(rnd() % 3), (uint32_t)(rnd() % 3));
    cl_replica r[8];
    size_t n = ks.strategy == REPL_SIMPLE ? ks.rf : ks.dcs[0].rf + ks.dcs[1].rf;
    if (rnd() % 8 == 0 && n > 1) n--;              /* a ring short of members */
    for (size_t i = 0; i < n; i++)
      r[i] = rep((uint32_t)(200 + i), rnd() % 2 ? "dc1" : "dc2", rnd() % 5 != 0);
    int is_read = rnd() % 2;
    coord_config cfg = config(&ks, rnd() % 4 ? "dc1" : "dc2", lv[rnd() % 9], r, n);
    cfg.no_forward = rnd() % 2;
    coord *c;
    int rc = is_read ? coord_read_new(&cfg, &c) : coord_write_new(&cfg, &c);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    int answers = 0, answer_code = 1, timed_out = 0;
    uint8_t sent[8] = {0}, acked[8] = {0};
    uint32_t acks_before_answer = 0;
    int steps = (int)(rnd() % 24);
    for (int s = 0; s <= steps; s++) {
      acts x;
      drain(c, &x);
      for (size_t k = 0; k < x.n; k++) {
        const coord_action *a = &x.a[k];
        if (a->kind != COORD_ANSWER) CU_ASSERT(a->replica < n);
        if (a->kind == COORD_SEND_WRITE || a->kind == COORD_SEND_WRITE_FORWARD)
          sent[a->replica] = 1;
        for (size_t f = 0; f < a->nforward; f++) sent[a->forward[f]] = 1;
        if (a->kind == COORD_ANSWER) {
          answers++;
          answer_code = a->code;
          uint32_t cnt = 0;
          for (size_t i = 0; i < n; i++) cnt += acked[i];
          acks_before_answer = cnt;
        }
      }
      if (s == steps) break;
      uint32_t i = (uint32_t)(rnd() % (n + 2));      /* sometimes out of range */
      switch (rnd() % 8) {
      case 0:
      case 1:
        if (coord_on_ack(c, i) && !is_read && i < n && sent[i]) acked[i] = 1;
        break;
      case 2:
        coord_on_error(c, i, CELLAR_ESTORAGE);
        break;
      case 3:
        coord_on_digest(c, i, g[rnd() % 3]);
        break;
      case 4:
      case 5: {
        int v = (int)(rnd() % 3);
        coord_on_data(c, i, versions[v], 2);
        break;
      }
      case 6:
        coord_on_hint_stored(c, i);
        break;
      default:
        if (rnd() % 4 == 0) {
          coord_on_timeout(c);
          timed_out = 1;
        }
      }
    }
    coord_on_timeout(c);                            /* the owner's deadline */
    acts x;
    drain(c, &x);
    for (size_t k = 0; k < x.n; k++)
      if (x.a[k].kind == COORD_ANSWER) {
        answers++;
        answer_code = x.a[k].code;
      }
    CU_ASSERT_EQUAL(answers, 1);
    CU_ASSERT_TRUE(coord_finished(c));
    (void)timed_out;
    if (answer_code == 0) answered_ok++;
    else answered_err++;
    /* a SimpleStrategy write answered 0 (not ANY) had its acks */
    if (!is_read && answer_code == 0 && ks.strategy == REPL_SIMPLE &&
        cfg.level != CELLAR_CL_ANY) {
      cl_need need;
      CU_ASSERT_EQUAL(cl_need_init(&need, &ks, "dc1", cfg.level, 1, NULL, 0), 0);
      CU_ASSERT(acks_before_answer >= need.total);
    }
    coord_free(c);
  }
  printf("\n  %ld random requests: %ld answered ok, %ld with an error, each exactly once\n",
         iterations, answered_ok, answered_err);
  CU_ASSERT(answered_ok > 100);
  CU_ASSERT(answered_err > 100);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    {"write_quorum_in_order", test_write_quorum_in_order},
    {"write_every_order", test_write_every_order},
    {"write_pending_replica", test_write_pending_replica},
    {"write_unavailable_before_sending", test_write_unavailable_before_sending},
    {"write_down_replica_gets_hint", test_write_down_replica_gets_hint},
    {"write_timeout", test_write_timeout},
    {"write_errors", test_write_errors},
    {"write_forwarding", test_write_forwarding},
    {"write_local_quorum_timeout_message", test_write_local_quorum_timeout_message},
    {"write_any", test_write_any},
    {"digest_format", test_digest_format},
    {"read_digest_match", test_read_digest_match},
    {"read_choice_of_replicas", test_read_choice_of_replicas},
    {"read_mismatch_merge_and_repair", test_read_mismatch_merge_and_repair},
    {"read_repairs_only_the_stale", test_read_repairs_only_the_stale},
    {"read_errors_and_timeouts", test_read_errors_and_timeouts},
    {"read_every_order", test_read_every_order},
    {"property_exactly_one_answer", test_property_exactly_one_answer},
    {NULL, NULL}};
  return testutil_run("coordinator", cases, argc, argv);
}
