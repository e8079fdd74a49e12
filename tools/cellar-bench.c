/*
** cellar-bench: a closed-loop load generator for cellar, built on libcellar's
** async API.
**
** Design notes
**  1. One client with --connections TCP connections. The load comes from
**     connections * pipeline logical "slots"; each slot has at most one
**     request in flight and issues its next request from the completion
**     callback of the previous one, so the number of requests in flight is
**     constant (a closed loop, like redis-benchmark -c N -P D).
**  2. Callbacks run on the client's I/O thread. A callback never calls a
**     request function directly: it pushes its slot on a per-thread pending
**     list, and the outermost caller drains that list (slot_kick). Thus a
**     client that completes a request inline, inside the *_async call,
**     cannot make the stack grow without bound.
**  3. Latency is measured per op type from just before the *_async call to
**     the start of its callback, in µs, into two histograms: the whole run
**     and the current second. The main thread wakes every second, swaps out
**     the per-second ones and prints a progress line on stderr. A mutex
**     guards the histograms and counters (the I/O thread writes, the main
**     thread reads once a second: contention is negligible).
**  4. Phases: optional --load (write keys 0..K-1 in order, each slot taking
**     the next index), then the measured run, ended by --duration or --ops,
**     whichever comes first. When the run ends slots retire at their next
**     completion; the main thread waits for all of them (bounded by the
**     request timeout), then prints the summary.
**  5. A slot whose request failed for want of a connection (ECONNECT,
**     ECLOSED, EOVERLOAD) is parked instead of retrying at once, and the main
**     thread kicks parked slots again every PARK_NS: a dead node costs the
**     bench a few requests per slot per second, not a busy loop.
**  6. Keys are the key index in zero-padded decimal, --key-size bytes;
**     partition key = that key, clustering key empty, one column "v".
**     Values are slices of a 1 MiB random pool (like db_bench), so RocksDB
**     cannot compress them to nothing.
**  7. zipfian picks a rank with the Gray et al. / YCSB ZipfianGenerator
**     (theta 0.99), then scrambles it by FNV-1a hash modulo K so the hot
**     keys are spread over the key space (YCSB's ScrambledZipfian).
*/
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cellar/cellar.h"
#include "histogram.h"

/* ------------------------------------------------------------ settings */

typedef struct settings {
  const char *hosts;
  int connections;
  int pipeline;
  uint64_t keys;
  size_t key_size;
  size_t value_size;
  unsigned ratio_read, ratio_write;
  int zipfian;
  double duration;             /* seconds; 0 = until --ops */
  uint64_t ops;                /* 0 = until --duration */
  const char *keyspace;
  const char *table;
  int load;
  cellar_consistency_t consistency;
  int timeout_ms;
  int json;
  uint64_t seed;
} settings;

static void usage(FILE *f) {
  fprintf(f,
    "usage: cellar-bench [options]\n"
    "  --hosts H:P[,H:P..]    nodes to connect to (default 127.0.0.1:7400)\n"
    "  --connections N        TCP connections (default 50)\n"
    "  --pipeline D           requests in flight per connection (default 1)\n"
    "  --keys K               number of distinct keys (default 100000)\n"
    "  --key-size B           key size in bytes (default 16)\n"
    "  --value-size B         value size in bytes (default 100)\n"
    "  --ratio R:W            reads:writes (default 1:1)\n"
    "  --workload W           read (1:0), write (0:1) or mixed (1:1)\n"
    "  --distribution D       uniform (default) or zipfian (theta 0.99)\n"
    "  --duration S           run for S seconds (default 10 unless --ops)\n"
    "  --ops N                run N operations\n"
    "  --keyspace KS          keyspace (default bench; created if missing,\n"
    "                         SimpleStrategy:1)\n"
    "  --table T              table (default kv; created if missing, lww)\n"
    "  --load                 first write keys 0..K-1 so that reads hit\n"
    "  --consistency LEVEL    ONE, QUORUM, ALL, ... (default ONE)\n"
    "  --timeout MS           request timeout (default 10000)\n"
    "  --seed N               random seed (default 1)\n"
    "  --json                 print the summary as one JSON object on stdout\n"
    "  --help\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bad_arg(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("cellar-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* A bad command line: the message, exit status 2. */
static void bad_arg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("cellar-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t lo,
                          uint64_t hi) {
  char *end;
  errno = 0;
  if (s[0] == '-') bad_arg("%s: '%s' is not a number from %" PRIu64 " to %" PRIu64,
                       opt, s, lo, hi);
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    bad_arg("%s: '%s' is not a number from %" PRIu64 " to %" PRIu64, opt, s, lo,
        hi);
  return v;
}

static void parse_args(settings *st, int argc, char **argv) {
  enum {
    O_HOSTS = 256, O_CONN, O_PIPE, O_KEYS, O_KSIZE, O_VSIZE, O_RATIO,
    O_WORKLOAD, O_DIST, O_DURATION, O_OPS, O_KS, O_TABLE, O_LOAD, O_CL,
    O_TIMEOUT, O_SEED, O_JSON, O_HELP
  };
  static const struct option longopts[] = {
    {"hosts", required_argument, NULL, O_HOSTS},
    {"connections", required_argument, NULL, O_CONN},
    {"pipeline", required_argument, NULL, O_PIPE},
    {"keys", required_argument, NULL, O_KEYS},
    {"key-size", required_argument, NULL, O_KSIZE},
    {"value-size", required_argument, NULL, O_VSIZE},
    {"ratio", required_argument, NULL, O_RATIO},
    {"workload", required_argument, NULL, O_WORKLOAD},
    {"distribution", required_argument, NULL, O_DIST},
    {"duration", required_argument, NULL, O_DURATION},
    {"ops", required_argument, NULL, O_OPS},
    {"keyspace", required_argument, NULL, O_KS},
    {"table", required_argument, NULL, O_TABLE},
    {"load", no_argument, NULL, O_LOAD},
    {"consistency", required_argument, NULL, O_CL},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"seed", required_argument, NULL, O_SEED},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0}
  };
  memset(st, 0, sizeof *st);
  st->hosts = "127.0.0.1:7400";
  st->connections = 50;
  st->pipeline = 1;
  st->keys = 100000;
  st->key_size = 16;
  st->value_size = 100;
  st->ratio_read = st->ratio_write = 1;
  st->keyspace = "bench";
  st->table = "kv";
  st->consistency = CELLAR_CL_ONE;
  st->timeout_ms = 10000;
  st->seed = 1;
  int have_duration = 0;

  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
      case O_HOSTS: st->hosts = optarg; break;
      case O_CONN:
        st->connections = (int)parse_u64("--connections", optarg, 1, 10000);
        break;
      case O_PIPE:
        st->pipeline = (int)parse_u64("--pipeline", optarg, 1, 10000);
        break;
      case O_KEYS:
        st->keys = parse_u64("--keys", optarg, 1, UINT64_C(1) << 48);
        break;
      case O_KSIZE:
        st->key_size = parse_u64("--key-size", optarg, 1, CELLAR_MAX_KEY_BYTES);
        break;
      case O_VSIZE:
        st->value_size =
            parse_u64("--value-size", optarg, 0, CELLAR_MAX_VALUE_BYTES);
        break;
      case O_RATIO: {
        unsigned r, w;
        char extra;
        if (sscanf(optarg, "%u:%u%c", &r, &w, &extra) != 2 || r + w == 0 ||
            r > 1000000 || w > 1000000)
          bad_arg("--ratio: '%s' is not R:W (two numbers, not both 0)", optarg);
        st->ratio_read = r;
        st->ratio_write = w;
        break;
      }
      case O_WORKLOAD:
        if (!strcmp(optarg, "read")) st->ratio_read = 1, st->ratio_write = 0;
        else if (!strcmp(optarg, "write")) st->ratio_read = 0, st->ratio_write = 1;
        else if (!strcmp(optarg, "mixed")) st->ratio_read = 1, st->ratio_write = 1;
        else bad_arg("--workload: '%s' is not read, write or mixed", optarg);
        break;
      case O_DIST:
        if (!strcmp(optarg, "uniform")) st->zipfian = 0;
        else if (!strcmp(optarg, "zipfian")) st->zipfian = 1;
        else bad_arg("--distribution: '%s' is not uniform or zipfian", optarg);
        break;
      case O_DURATION: {
        char *end;
        errno = 0;
        st->duration = strtod(optarg, &end);
        if (errno || end == optarg || *end || !(st->duration > 0) ||
            st->duration > 1e7)
          bad_arg("--duration: '%s' is not a positive number of seconds", optarg);
        have_duration = 1;
        break;
      }
      case O_OPS: st->ops = parse_u64("--ops", optarg, 1, UINT64_MAX / 2); break;
      case O_KS: st->keyspace = optarg; break;
      case O_TABLE: st->table = optarg; break;
      case O_LOAD: st->load = 1; break;
      case O_CL:
        if (cellar_consistency_parse(optarg, &st->consistency) != 0)
          bad_arg("--consistency: unknown level '%s' (ONE, TWO, THREE, QUORUM, "
              "ALL, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM, ANY)", optarg);
        break;
      case O_TIMEOUT:
        st->timeout_ms = (int)parse_u64("--timeout", optarg, 1, 3600000);
        break;
      case O_SEED: st->seed = parse_u64("--seed", optarg, 0, UINT64_MAX); break;
      case O_JSON: st->json = 1; break;
      case O_HELP: usage(stdout); exit(0);
      default: usage(stderr); exit(2);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "cellar-bench: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    exit(2);
  }
  if (!have_duration && st->ops == 0) st->duration = 10;
  /* the largest key index must fit in key_size decimal digits */
  char digits[32];
  int nd = snprintf(digits, sizeof digits, "%" PRIu64, st->keys - 1);
  if ((size_t)nd > st->key_size)
    bad_arg("--key-size %zu is too small for %" PRIu64 " keys (needs %d digits)",
        st->key_size, st->keys, nd);
}

/* ---------------------------------------------------------- randomness */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform double in [0, 1). */
static double rnd_unit(uint64_t *s) {
  return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), without modulo bias worth caring about for
** n < 2^48 (the bias is below 2^-16). */
static uint64_t rnd_below(uint64_t *s, uint64_t n) {
  return (uint64_t)(((unsigned __int128)splitmix64(s) * n) >> 64);
}

typedef struct zipf {
  uint64_t n;
  double theta, alpha, zetan, eta, half_pow_theta;
} zipf;

static double zeta(uint64_t n, double theta) {
  double sum = 0;
  for (uint64_t i = 1; i <= n; i++) sum += 1.0 / pow((double)i, theta);
  return sum;
}

static void zipf_init(zipf *z, uint64_t n, double theta) {
  z->n = n;
  z->theta = theta;
  z->alpha = 1.0 / (1.0 - theta);
  z->zetan = zeta(n, theta);
  double zeta2 = zeta(2, theta);
  z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
  z->half_pow_theta = 1.0 + pow(0.5, theta);
}

/* A rank in [0, n): rank 0 is the most popular. */
static uint64_t zipf_next(const zipf *z, uint64_t *s) {
  double u = rnd_unit(s);
  double uz = u * z->zetan;
  if (uz < 1.0) return 0;
  if (uz < z->half_pow_theta) return z->n > 1 ? 1 : 0;
  uint64_t r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
  return r < z->n ? r : z->n - 1;
}

static uint64_t fnv1a64(uint64_t v) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < 8; i++) {
    h ^= v & 0xff;
    h *= 0x100000001b3ULL;
    v >>= 8;
  }
  return h;
}

/* ---------------------------------------------------------------- state */

enum { OP_READ, OP_WRITE, OP__N };
static const char *const op_names[OP__N] = {"read", "write"};

#define NERR 32                  /* error counts by -code; the last: others */
#define VALUE_POOL (1u << 20)
#define PARK_NS 100000000u       /* 100 ms */

typedef enum phase { PHASE_LOAD, PHASE_RUN } phase;

typedef struct bench bench;

typedef struct slot {
  bench *b;
  struct slot *next_pending;   /* slot_kick's list */
  uint64_t rng;
  uint64_t t0;                 /* ns, when the request was issued */
  int op;
  char *key;                   /* key_size bytes */
} slot;

struct bench {
  settings st;
  cellar_client_t *client;
  zipf zipf;
  char *value_pool;            /* VALUE_POOL + value_size bytes */
  slot *slots;
  int nslots;

  phase phase;
  atomic_int stop;             /* the run is over: slots retire */
  atomic_uint_fast64_t next_index;   /* load: next key; run: ops issued */

  pthread_mutex_t mu;          /* guards everything below */
  pthread_cond_t cond;         /* signalled when active drops to 0 */
  int active;                  /* slots not retired */
  slot *parked;                /* slots resting after a connection error */
  uint64_t t_end;              /* ns, when the last slot retired */
  histogram *total[OP__N];
  histogram *second[OP__N];
  uint64_t done[OP__N];        /* successful ops */
  uint64_t failed[OP__N];
  uint64_t misses;             /* reads that found no row */
  uint64_t errors[NERR];
  uint64_t issue_errors;       /* *_async refused a request */
  int last_issue_error;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void format_key(const bench *b, uint64_t index, char *out) {
  /* zero-padded decimal, exactly key_size bytes (no terminator kept) */
  size_t n = b->st.key_size;
  for (size_t i = n; i-- > 0;) {
    out[i] = (char)('0' + index % 10);
    index /= 10;
  }
}

static int err_slot(int code) {
  int i = -code;
  return (i > 0 && i < NERR - 1) ? i : NERR - 1;
}

/* ------------------------------------------------------------ the slots */

static void on_done(int status, cellar_result_t *res, void *arg);
static void slot_kick(slot *s);

/* The slot stops issuing; the last one wakes the main thread. */
static void slot_retire(slot *s) {
  bench *b = s->b;
  pthread_mutex_lock(&b->mu);
  if (--b->active == 0) {
    b->t_end = now_ns();
    pthread_cond_broadcast(&b->cond);
  }
  pthread_mutex_unlock(&b->mu);
}

/* Issues the slot's next request, or retires it. */
static void slot_issue(slot *s) {
  bench *b = s->b;
  const settings *st = &b->st;
  uint64_t index;

  if (atomic_load(&b->stop)) {
    slot_retire(s);
    return;
  }
  if (b->phase == PHASE_LOAD) {
    index = atomic_fetch_add(&b->next_index, 1);
    if (index >= st->keys) {
      slot_retire(s);
      return;
    }
    s->op = OP_WRITE;
  } else {
    if (st->ops && atomic_fetch_add(&b->next_index, 1) >= st->ops) {
      slot_retire(s);
      return;
    }
    if (st->ratio_write == 0) s->op = OP_READ;
    else if (st->ratio_read == 0) s->op = OP_WRITE;
    else
      s->op = rnd_below(&s->rng, st->ratio_read + st->ratio_write) <
                      st->ratio_read ? OP_READ : OP_WRITE;
    if (st->zipfian)
      index = fnv1a64(zipf_next(&b->zipf, &s->rng)) % st->keys;
    else
      index = rnd_below(&s->rng, st->keys);
  }
  format_key(b, index, s->key);

  int rc;
  s->t0 = now_ns();
  if (s->op == OP_READ) {
    cellar_get_t g = {
      .keyspace = st->keyspace, .table = st->table,
      .partition = s->key, .partition_len = st->key_size,
      .consistency = st->consistency,
    };
    rc = cellar_get_async(b->client, &g, on_done, s);
  } else {
    cellar_cell_t cell = {
      .name = "v", .name_len = 1,
      .value = b->value_pool + rnd_below(&s->rng, VALUE_POOL),
      .value_len = st->value_size,
    };
    cellar_row_t row = {.clustering = NULL, .clustering_len = 0,
                        .cells = &cell, .ncells = 1};
    cellar_put_t p = {
      .keyspace = st->keyspace, .table = st->table,
      .partition = s->key, .partition_len = st->key_size,
      .rows = &row, .nrows = 1, .consistency = st->consistency,
    };
    rc = cellar_put_async(b->client, &p, on_done, s);
  }
  if (rc != 0) {
    /* The callback will not run (libcellar's rule). Retiring the slot,
    ** rather than retrying, keeps a broken client from spinning. */
    pthread_mutex_lock(&b->mu);
    b->issue_errors++;
    b->last_issue_error = rc;
    b->errors[err_slot(rc)]++;
    b->failed[s->op]++;
    pthread_mutex_unlock(&b->mu);
    slot_retire(s);
  }
}

/* Design note 2: issue from the outermost frame only. */
static __thread slot *tl_pending;
static __thread int tl_draining;

static void slot_kick(slot *s) {
  s->next_pending = tl_pending;
  tl_pending = s;
  if (tl_draining) return;
  tl_draining = 1;
  while (tl_pending) {
    slot *x = tl_pending;
    tl_pending = x->next_pending;
    slot_issue(x);
  }
  tl_draining = 0;
}

static void on_done(int status, cellar_result_t *res, void *arg) {
  slot *s = arg;
  bench *b = s->b;
  uint64_t us = (now_ns() - s->t0) / 1000;
  int miss = 0;
  if (s->op == OP_READ) {
    if (status == CELLAR_ENOTFOUND) {
      miss = 1;
      status = 0;
    } else if (status == 0 && cellar_result_row_count(res) == 0) {
      miss = 1;
    }
  }
  int park = status == CELLAR_ECONNECT || status == CELLAR_ECLOSED ||
             status == CELLAR_EOVERLOAD;
  pthread_mutex_lock(&b->mu);
  if (park) {
    s->next_pending = b->parked;
    b->parked = s;
  }
  if (status == 0) {
    histogram_record(b->total[s->op], us);
    histogram_record(b->second[s->op], us);
    b->done[s->op]++;
    b->misses += (uint64_t)miss;
  } else {
    b->failed[s->op]++;
    b->errors[err_slot(status)]++;
  }
  pthread_mutex_unlock(&b->mu);
  if (!park) slot_kick(s);
}

/* Main thread: kicks the parked slots again (design note 5). */
static void unpark_all(bench *b) {
  pthread_mutex_lock(&b->mu);
  slot *list = b->parked;
  b->parked = NULL;
  pthread_mutex_unlock(&b->mu);
  while (list) {
    slot *s = list;
    list = s->next_pending;
    slot_kick(s);
  }
}

/* -------------------------------------------------------------- phases */

typedef struct tick {
  uint64_t done[OP__N], failed[OP__N];
} tick;

static void reset_stats(bench *b) {
  pthread_mutex_lock(&b->mu);
  for (int op = 0; op < OP__N; op++) {
    histogram_reset(b->total[op]);
    histogram_reset(b->second[op]);
    b->done[op] = b->failed[op] = 0;
  }
  b->misses = 0;
  memset(b->errors, 0, sizeof b->errors);
  b->issue_errors = 0;
  pthread_mutex_unlock(&b->mu);
}

/* One progress line on stderr from the last second's histograms. */
static void progress(bench *b, double t, double dt, tick *prev,
                     histogram *scratch[OP__N]) {
  tick cur;
  pthread_mutex_lock(&b->mu);
  for (int op = 0; op < OP__N; op++) {
    histogram_copy(scratch[op], b->second[op]);
    histogram_reset(b->second[op]);
    cur.done[op] = b->done[op];
    cur.failed[op] = b->failed[op];
  }
  pthread_mutex_unlock(&b->mu);

  char line[512];
  int n = 0;
  uint64_t all = 0, errs = 0;
  for (int op = 0; op < OP__N; op++) {
    all += cur.done[op] - prev->done[op];
    errs += cur.failed[op] - prev->failed[op];
  }
  if (b->phase == PHASE_LOAD) {
    n += snprintf(line + n, sizeof line - (size_t)n,
                  "load %5.0fs  %" PRIu64 "/%" PRIu64 " rows  %.0f rows/s", t,
                  cur.done[OP_WRITE], b->st.keys, (double)all / dt);
  } else {
    n += snprintf(line + n, sizeof line - (size_t)n, "run  %5.0fs  %.0f ops/s",
                  t, (double)all / dt);
  }
  for (int op = 0; op < OP__N; op++) {
    uint64_t d = cur.done[op] - prev->done[op];
    if (d == 0 && (b->phase == PHASE_LOAD || histogram_count(b->total[op]) == 0))
      continue;
    n += snprintf(line + n, sizeof line - (size_t)n,
                  "  | %s %.0f/s p50 %" PRIu64 " p99 %" PRIu64 " us",
                  op_names[op], (double)d / dt,
                  histogram_percentile(scratch[op], 50),
                  histogram_percentile(scratch[op], 99));
    if (n >= (int)sizeof line) break;
  }
  if (errs)
    fprintf(stderr, "%s  | errors %" PRIu64 "\n", line, errs);
  else
    fprintf(stderr, "%s\n", line);
  *prev = cur;
}

/*
** Runs one phase: starts every slot, prints progress every second, ends
** the phase at the deadline (duration) and waits for the slots to retire.
** Returns the phase's elapsed seconds.
*/
static double run_phase(bench *b, phase ph) {
  const settings *st = &b->st;
  histogram *scratch[OP__N];
  for (int op = 0; op < OP__N; op++) scratch[op] = histogram_new();
  tick prev;
  memset(&prev, 0, sizeof prev);

  b->phase = ph;
  atomic_store(&b->stop, 0);
  atomic_store(&b->next_index, 0);
  b->active = b->nslots;
  uint64_t t0 = now_ns();
  b->t_end = 0;
  for (int i = 0; i < b->nslots; i++) slot_kick(&b->slots[i]);

  uint64_t next_tick = t0 + 1000000000u, last_tick = t0;
  uint64_t deadline = (ph == PHASE_RUN && st->duration > 0)
                          ? t0 + (uint64_t)(st->duration * 1e9)
                          : UINT64_MAX;
  uint64_t drain_limit = UINT64_MAX;
  uint64_t next_unpark = t0 + PARK_NS;
  for (;;) {
    uint64_t wake = next_tick < deadline ? next_tick : deadline;
    if (wake > drain_limit) wake = drain_limit;
    if (wake > next_unpark) wake = next_unpark;
    pthread_mutex_lock(&b->mu);
    while (b->active > 0 && now_ns() < wake) {
      /* condvar waits are on CLOCK_REALTIME: convert the delay */
      uint64_t delay = wake - now_ns();
      if ((int64_t)delay <= 0) break;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      uint64_t abs_ns = (uint64_t)ts.tv_nsec + delay % 1000000000u;
      ts.tv_sec += (time_t)(delay / 1000000000u + abs_ns / 1000000000u);
      ts.tv_nsec = (long)(abs_ns % 1000000000u);
      pthread_cond_timedwait(&b->cond, &b->mu, &ts);
    }
    int active = b->active;
    pthread_mutex_unlock(&b->mu);

    uint64_t now = now_ns();
    if (now >= next_unpark) {
      unpark_all(b);
      next_unpark = now + PARK_NS;
    }
    if (now >= next_tick && active > 0) {
      progress(b, (double)(now - t0) / 1e9, (double)(now - last_tick) / 1e9,
               &prev, scratch);
      last_tick = now;
      next_tick += 1000000000u;
      if (next_tick <= now) next_tick = now + 1000000000u;
    }
    if (active == 0) break;
    if (now >= deadline && !atomic_load(&b->stop)) {
      atomic_store(&b->stop, 1);
      /* slots retire at their next completion, at the latest after one
      ** request timeout; give it some slack before giving up */
      drain_limit = now + (uint64_t)st->timeout_ms * 1000000u + 2000000000u;
      unpark_all(b);           /* parked slots retire now */
    }
    if (now >= drain_limit) {
      fprintf(stderr, "cellar-bench: %d requests did not complete after the "
              "run ended\n", active);
      break;
    }
  }
  atomic_store(&b->stop, 1);
  for (int op = 0; op < OP__N; op++) histogram_free(scratch[op]);
  pthread_mutex_lock(&b->mu);
  uint64_t t_end = b->t_end ? b->t_end : now_ns();
  pthread_mutex_unlock(&b->mu);
  return (double)(t_end - t0) / 1e9;
}

/* ------------------------------------------------------------- reports */

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p999"};
#define NPCT 4

static void print_text(bench *b, const histogram *all, double secs,
                       double load_secs, uint64_t load_rows) {
  const settings *st = &b->st;
  printf("cellar-bench: %s, %d connections x pipeline %d = %d in flight, "
         "%" PRIu64 " keys of %zu B, values %zu B, %s, ratio %u:%u, CL %s\n",
         st->hosts, st->connections, st->pipeline, b->nslots, st->keys,
         st->key_size, st->value_size, st->zipfian ? "zipfian" : "uniform",
         st->ratio_read, st->ratio_write,
         cellar_consistency_name(st->consistency));
  if (st->load)
    printf("load: %" PRIu64 " rows in %.2f s (%.0f rows/s)\n", load_rows,
           load_secs, load_secs > 0 ? (double)load_rows / load_secs : 0.0);
  uint64_t ok = histogram_count(all), bad = 0;
  for (int op = 0; op < OP__N; op++) bad += b->failed[op];
  printf("run: %.2f s, %" PRIu64 " ops, %.0f ops/s, %" PRIu64 " errors\n",
         secs, ok, secs > 0 ? (double)ok / secs : 0.0, bad);
  printf("%-6s %12s %12s %8s %8s %8s %8s %8s %10s  (latency in us)\n", "op",
         "ops/s", "count", "p50", "p90", "p99", "p99.9", "max", "mean");
  for (int op = 0; op <= OP__N; op++) {
    const histogram *h = op < OP__N ? b->total[op] : all;
    if (op < OP__N && histogram_count(h) == 0 && b->failed[op] == 0) continue;
    printf("%-6s %12.0f %12" PRIu64, op < OP__N ? op_names[op] : "total",
           secs > 0 ? (double)histogram_count(h) / secs : 0.0,
           histogram_count(h));
    for (int i = 0; i < NPCT; i++)
      printf(" %8" PRIu64, histogram_percentile(h, pcts[i]));
    printf(" %8" PRIu64 " %10.1f\n", histogram_max(h), histogram_mean(h));
  }
  if (b->done[OP_READ]) {
    printf("reads that found no row: %" PRIu64 " (%.1f%%)\n", b->misses,
           100.0 * (double)b->misses / (double)b->done[OP_READ]);
  }
  if (bad) {
    printf("errors:");
    for (int i = 0; i < NERR; i++) {
      if (b->errors[i] == 0) continue;
      printf(" %s %" PRIu64 ";", i == NERR - 1 ? "other" : cellar_err_name(-i),
             b->errors[i]);
    }
    printf("\n");
  }
}

static void json_hist(const histogram *h, double secs) {
  printf("{\"ops\":%" PRIu64 ",\"ops_per_sec\":%.1f,\"latency_us\":{",
         histogram_count(h), secs > 0 ? (double)histogram_count(h) / secs : 0.0);
  for (int i = 0; i < NPCT; i++)
    printf("\"%s\":%" PRIu64 ",", pct_names[i], histogram_percentile(h, pcts[i]));
  printf("\"max\":%" PRIu64 ",\"mean\":%.1f}", histogram_max(h),
         histogram_mean(h));
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch < 0x20) printf("\\u%04x", ch);
    else putchar(ch);
  }
  putchar('"');
}

static void print_json(bench *b, const histogram *all, double secs,
                       double load_secs, uint64_t load_rows) {
  const settings *st = &b->st;
  printf("{\"hosts\":");
  json_string(st->hosts);
  printf(",\"connections\":%d,\"pipeline\":%d,\"keys\":%" PRIu64
         ",\"key_size\":%zu,\"value_size\":%zu,\"ratio\":\"%u:%u\","
         "\"distribution\":\"%s\",\"consistency\":\"%s\",\"keyspace\":",
         st->connections, st->pipeline, st->keys, st->key_size,
         st->value_size, st->ratio_read, st->ratio_write,
         st->zipfian ? "zipfian" : "uniform",
         cellar_consistency_name(st->consistency));
  json_string(st->keyspace);
  printf(",\"table\":");
  json_string(st->table);
  if (st->load)
    printf(",\"load\":{\"rows\":%" PRIu64 ",\"seconds\":%.3f,"
           "\"rows_per_sec\":%.1f}",
           load_rows, load_secs,
           load_secs > 0 ? (double)load_rows / load_secs : 0.0);
  uint64_t bad = 0;
  for (int op = 0; op < OP__N; op++) bad += b->failed[op];
  printf(",\"seconds\":%.3f,\"total\":", secs);
  json_hist(all, secs);
  printf(",\"errors\":%" PRIu64 "}", bad);
  for (int op = 0; op < OP__N; op++) {
    printf(",\"%s\":", op_names[op]);
    json_hist(b->total[op], secs);
    printf(",\"errors\":%" PRIu64, b->failed[op]);
    if (op == OP_READ) printf(",\"misses\":%" PRIu64, b->misses);
    printf("}");
  }
  printf(",\"errors\":{");
  int first = 1;
  for (int i = 0; i < NERR; i++) {
    if (b->errors[i] == 0) continue;
    printf("%s\"%s\":%" PRIu64, first ? "" : ",",
           i == NERR - 1 ? "other" : cellar_err_name(-i), b->errors[i]);
    first = 0;
  }
  printf("}}\n");
}

/* ---------------------------------------------------------------- main */

static void check(int rc, cellar_result_t *res, const char *what) {
  if (rc == 0) {
    cellar_result_free(res);
    return;
  }
  const char *msg = res ? cellar_result_message(res) : "";
  fprintf(stderr, "cellar-bench: %s: %s (%s)%s%s\n", what, cellar_strerror(rc),
          cellar_err_name(rc), *msg ? ": " : "", msg);
  cellar_result_free(res);
  exit(1);
}

int main(int argc, char **argv) {
  static bench b;              /* large and long-lived: not on the stack */
  settings *st = &b.st;
  parse_args(st, argc, argv);

  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.cond, NULL);
  for (int op = 0; op < OP__N; op++) {
    b.total[op] = histogram_new();
    b.second[op] = histogram_new();
    if (!b.total[op] || !b.second[op]) die("out of memory");
  }
  uint64_t seed = st->seed;
  b.value_pool = malloc(VALUE_POOL + st->value_size + 1);
  if (!b.value_pool) die("out of memory");
  static const char alnum[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (size_t i = 0; i < VALUE_POOL + st->value_size; i++)
    b.value_pool[i] = alnum[splitmix64(&seed) % 62];
  if (st->zipfian) zipf_init(&b.zipf, st->keys, 0.99);

  b.nslots = st->connections * st->pipeline;
  b.slots = calloc((size_t)b.nslots, sizeof *b.slots);
  if (!b.slots) die("out of memory");
  for (int i = 0; i < b.nslots; i++) {
    b.slots[i].b = &b;
    b.slots[i].rng = st->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 1;
    b.slots[i].key = malloc(st->key_size);
    if (!b.slots[i].key) die("out of memory");
  }

  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = st->hosts;
  o.connections = st->connections;
  o.consistency = st->consistency;
  o.request_timeout_ms = st->timeout_ms;
  o.max_in_flight = 0;
  int rc = cellar_connect(&o, &b.client);
  if (rc != 0)
    die("cannot connect to %s: %s%s", st->hosts, cellar_err_name(rc),
        rc == CELLAR_ECONNECT ? " (is a cellard listening there?)" : "");

  cellar_result_t *res = NULL;
  rc = cellar_create_keyspace(b.client, st->keyspace, "SimpleStrategy:1", 1,
                              &res);
  check(rc, res, "create keyspace");
  cellar_table_options_t to;
  cellar_table_options_init(&to);
  to.conflict_policy = "lww";
  res = NULL;
  rc = cellar_create_table(b.client, st->keyspace, st->table, &to, 1, &res);
  check(rc, res, "create table");

  double load_secs = 0;
  uint64_t load_rows = 0;
  if (st->load) {
    load_secs = run_phase(&b, PHASE_LOAD);
    pthread_mutex_lock(&b.mu);
    load_rows = b.done[OP_WRITE];
    uint64_t load_failed = b.failed[OP_WRITE];
    pthread_mutex_unlock(&b.mu);
    fprintf(stderr, "load: %" PRIu64 " rows in %.2f s (%.0f rows/s)%s\n",
            load_rows, load_secs, (double)load_rows / load_secs,
            load_failed ? ", with errors" : "");
    if (load_failed)
      fprintf(stderr, "cellar-bench: %" PRIu64 " load writes failed\n",
              load_failed);
    reset_stats(&b);
  }

  double secs = run_phase(&b, PHASE_RUN);

  /* stop the I/O thread before reading the final numbers */
  cellar_close(b.client);
  b.client = NULL;

  histogram *all = histogram_new();
  for (int op = 0; op < OP__N; op++) histogram_merge(all, b.total[op]);
  if (b.issue_errors)
    fprintf(stderr, "cellar-bench: %" PRIu64 " requests refused by the client "
            "(last: %s)\n", b.issue_errors, cellar_err_name(b.last_issue_error));
  if (st->json) print_json(&b, all, secs, load_secs, load_rows);
  else print_text(&b, all, secs, load_secs, load_rows);

  uint64_t ok = histogram_count(all);
  histogram_free(all);
  for (int op = 0; op < OP__N; op++) {
    histogram_free(b.total[op]);
    histogram_free(b.second[op]);
  }
  for (int i = 0; i < b.nslots; i++) free(b.slots[i].key);
  free(b.slots);
  free(b.value_pool);
  pthread_cond_destroy(&b.cond);
  pthread_mutex_destroy(&b.mu);
  return ok > 0 ? 0 : 1;
}
