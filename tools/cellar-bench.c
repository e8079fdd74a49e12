/*
** cellar-bench: a load generator for cellar, built on libcellar's async API.
**
** Design notes
**  1. One client with --connections TCP connections. The load comes from
**     connections * pipeline logical "slots"; each slot has at most one
**     operation in flight and issues its next one from the completion
**     callback of the previous one, so the number of operations in flight is
**     constant (a closed loop, like redis-benchmark -c N -P D). With --rate
**     the starts are paced instead (note 8).
**  2. Callbacks run on the client's I/O thread. A callback never calls a
**     request function directly: it pushes its slot on a per-thread pending
**     list, and the outermost caller drains that list (slot_kick). Thus a
**     client that completes a request inline, inside the *_async call,
**     cannot make the stack grow without bound.
**  3. Latency is measured per request from just before the *_async call to
**     the start of its callback, in µs, into histograms per op type (the
**     whole run and the current second), per op type and consistency level
**     ("read@QUORUM", the run), and for the top-level operations together
**     ("total"). The main thread wakes every second, swaps out the
**     per-second ones and prints a progress line on stderr (text, or one
**     JSON object with --progress-json). A mutex guards the histograms and
**     counters (the I/O thread writes, the main thread reads once a second:
**     contention is negligible).
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
**     keys are spread over the key space (YCSB's ScrambledZipfian). latest
**     picks a zipfian rank r over K items and reads the key r places below
**     the newest acknowledged insert (YCSB's SkewedLatest, with the item
**     count of the zipfian kept at K while inserts extend the key space).
**  8. Operations (YCSB's names in brackets): read, write [update: a put of
**     an existing key], insert [a put of key K, K+1, ... in order: workload
**     D] and rmw [read-modify-write: a read, then a put of the same key once
**     the read answered; the pair's latency is the rmw's, its two requests
**     are also counted as a read and a write]. A run's ops/s and "total"
**     count top-level operations (an rmw once); "errors" counts failed
**     requests. A consistency level is drawn per operation from
**     --read-consistency / --write-consistency (a list: weights by
**     repetition).
**  9. --rate R: a pacer thread grants starts at t0 + k/R (k = 0, 1, ...).
**     A slot that finishes waits for a grant; when every slot is busy at a
**     start's due time the start is late (counted, with the largest lag) and
**     the backlog is caught up as slots free (open-loop-ish: the slots bound
**     the requests in flight). Latency is still measured from the request's
**     own start.
** 10. SIGUSR1 marks a moment (a script kills a node and signals the bench):
**     the top-level operations and failed requests completing before and
**     after the mark are reported apart ("before_mark" / "after_mark"). The
**     signal is blocked in every thread and taken by sigwait on a thread of
**     its own, so it never interrupts libcellar's event loop.
** 11. Routing is libcellar's: token-aware by default, which keeps a request
**     on the node connected to whenever that node is a replica of its key
**     (with RF = nodes, every request: one node coordinates the whole
**     load). --spread (libcellar's CELLAR_ROUTE_SPREAD) rotates over the
**     live local replicas instead, so coordination is shared as real
**     clients spread over a cluster would share it. The report gives the
**     requests the run sent to each node.
*/
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "cellar/cellar.h"
#include "histogram.h"

/* ------------------------------------------------------------ settings */

/* Operation types (design note 8). Requests are READ, WRITE and INSERT. */
enum { OP_READ, OP_WRITE, OP_INSERT, OP_RMW, OP__N };
static const char *const op_names[OP__N] = {"read", "write", "insert", "rmw"};

enum { DIST_UNIFORM, DIST_ZIPFIAN, DIST_LATEST };

/* Indexed by cellar_routing_t. */
static const char *const routing_names[] = {"token-aware", "spread", "none"};
static const char *const dist_names[] = {"uniform", "zipfian", "latest"};

#define NCL 10                   /* cellar_consistency_t values 0..9 */
#define CL_LIST_MAX 16
#define MAX_NODES 64             /* nodes whose requests the report counts */

/* The levels an op type draws from, uniformly (repeat one to weight it). */
typedef struct cl_list {
  int n;
  cellar_consistency_t v[CL_LIST_MAX];
} cl_list;

typedef struct settings {
  const char *hosts;
  int connections;
  int pipeline;
  uint64_t keys;
  size_t key_size;
  size_t value_size;
  unsigned ratio[OP__N];       /* weights of the top-level operations */
  const char *workload;        /* the --workload name, or "custom" */
  int dist;
  int dist_set;                /* --distribution given */
  double duration;             /* seconds; 0 = until --ops */
  uint64_t ops;                /* 0 = until --duration */
  double rate;                 /* starts per second; 0 = closed loop */
  const char *keyspace;
  const char *table;
  const char *replication;
  int load;
  cl_list cl;                  /* --consistency */
  cl_list rcl, wcl;            /* the levels in force for reads / writes */
  int rcl_set, wcl_set;
  int timeout_ms;
  cellar_routing_t routing;    /* --routing / --spread (design note 11) */
  int json;
  int progress_json;
  uint64_t seed;
} settings;

static void usage(FILE *f) {
  fputs(
    "usage: cellar-bench [options]\n"
    "  --hosts H:P[,H:P..]    nodes to connect to; the client uses the first\n"
    "                         reachable one (default 127.0.0.1:7400)\n"
    "  --connections N        TCP connections (default 50)\n"
    "  --pipeline D           operations in flight per connection (default 1)\n"
    "  --keys K               number of distinct keys (default 100000)\n"
    "  --key-size B           key size in bytes (default 16)\n"
    "  --value-size B         value size in bytes (default 100)\n"
    "  --ratio R:W[:I[:M]]    weights of reads, writes (updates), inserts of\n"
    "                         new keys, read-modify-writes (default 1:1)\n"
    "  --workload W           read (1:0), write (0:1), mixed (1:1), or YCSB:\n"
    "                         a  50% read, 50% update\n"
    "                         b  95% read, 5% update\n"
    "                         c  100% read\n"
    "                         d  95% read of the latest keys, 5% insert\n"
    "                         f  50% read, 50% read-modify-write\n"
    "                         (YCSB workloads default to --distribution\n"
    "                         zipfian, d to latest; load with --load)\n"
    "  --distribution D       uniform (default), zipfian (theta 0.99) or\n"
    "                         latest (zipfian back from the newest insert)\n"
    "  --duration S           run for S seconds (default 10 unless --ops)\n"
    "  --ops N                run N operations\n"
    "  --rate R               start R operations per second at most, paced\n"
    "                         evenly (default: as fast as the slots allow)\n"
    "  --keyspace KS          keyspace (default bench; created if missing)\n"
    "  --replication S        of the keyspace if it is created\n"
    "                         (default SimpleStrategy:1; the report gives\n"
    "                         the keyspace's actual one)\n"
    "  --table T              table (default kv; created if missing, lww)\n"
    "  --load                 first write keys 0..K-1 so that reads hit\n"
    "  --consistency L[,L..]  level of reads and writes: ONE, QUORUM, ALL, ...\n"
    "                         (default ONE); a list: one drawn per operation\n"
    "  --read-consistency L[,L..]   reads only (overrides --consistency)\n"
    "  --write-consistency L[,L..]  writes and inserts only\n"
    "  --timeout MS           request timeout (default 10000)\n"
    "  --routing R            token-aware (default: a replica of the key, the\n"
    "                         node connected to when it is one), spread\n"
    "                         (rotate over the live replicas) or none (every\n"
    "                         request to the node connected to)\n"
    "  --spread               same as --routing spread\n"
    "  --seed N               random seed (default 1)\n"
    "  --json                 print the summary as one JSON object on stdout\n"
    "  --progress-json        per-second progress as JSON lines on stderr\n"
    "  --help\n"
    "SIGUSR1 marks a moment: the summary then also reports what completed\n"
    "before and after it.\n", f);
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

static double parse_positive(const char *opt, const char *s, double hi) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0) || v > hi)
    bad_arg("%s: '%s' is not a positive number up to %g", opt, s, hi);
  return v;
}

/* "QUORUM" or "ONE,QUORUM,QUORUM" */
static void parse_cl_list(const char *opt, const char *s, cl_list *out) {
  char buf[256];
  if (strlen(s) >= sizeof buf) bad_arg("%s: '%s' is too long", opt, s);
  strcpy(buf, s);
  out->n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    if (out->n == CL_LIST_MAX)
      bad_arg("%s: at most %d levels", opt, CL_LIST_MAX);
    if (cellar_consistency_parse(tok, &out->v[out->n]) != 0 ||
        out->v[out->n] <= CELLAR_CL_DEFAULT || out->v[out->n] >= NCL)
      bad_arg("%s: unknown level '%s' (ONE, TWO, THREE, QUORUM, ALL, "
          "LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM, ANY)", opt, tok);
    out->n++;
  }
  if (out->n == 0) bad_arg("%s: no level in '%s'", opt, s);
}

static void set_ratio(settings *st, unsigned r, unsigned w, unsigned i,
                      unsigned m) {
  st->ratio[OP_READ] = r;
  st->ratio[OP_WRITE] = w;
  st->ratio[OP_INSERT] = i;
  st->ratio[OP_RMW] = m;
}

/* A YCSB workload letter: its mix and default distribution. */
static int set_ycsb(settings *st, const char *w) {
  if (strlen(w) != 1) return -1;
  switch (w[0] | 0x20) {
    case 'a': set_ratio(st, 50, 50, 0, 0); st->dist = DIST_ZIPFIAN; break;
    case 'b': set_ratio(st, 95, 5, 0, 0); st->dist = DIST_ZIPFIAN; break;
    case 'c': set_ratio(st, 1, 0, 0, 0); st->dist = DIST_ZIPFIAN; break;
    case 'd': set_ratio(st, 95, 0, 5, 0); st->dist = DIST_LATEST; break;
    case 'f': set_ratio(st, 50, 0, 0, 50); st->dist = DIST_ZIPFIAN; break;
    case 'e': bad_arg("--workload: YCSB E (short scans) is not implemented");
    default: return -1;
  }
  return 0;
}

static void parse_args(settings *st, int argc, char **argv) {
  enum {
    O_HOSTS = 256, O_CONN, O_PIPE, O_KEYS, O_KSIZE, O_VSIZE, O_RATIO,
    O_WORKLOAD, O_DIST, O_DURATION, O_OPS, O_RATE, O_KS, O_REPL, O_TABLE,
    O_LOAD, O_CL, O_RCL, O_WCL, O_TIMEOUT, O_SEED, O_JSON, O_PJSON, O_HELP,
    O_ROUTING, O_SPREAD
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
    {"rate", required_argument, NULL, O_RATE},
    {"keyspace", required_argument, NULL, O_KS},
    {"replication", required_argument, NULL, O_REPL},
    {"table", required_argument, NULL, O_TABLE},
    {"load", no_argument, NULL, O_LOAD},
    {"consistency", required_argument, NULL, O_CL},
    {"read-consistency", required_argument, NULL, O_RCL},
    {"write-consistency", required_argument, NULL, O_WCL},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"routing", required_argument, NULL, O_ROUTING},
    {"spread", no_argument, NULL, O_SPREAD},
    {"seed", required_argument, NULL, O_SEED},
    {"json", no_argument, NULL, O_JSON},
    {"progress-json", no_argument, NULL, O_PJSON},
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
  set_ratio(st, 1, 1, 0, 0);
  st->workload = "mixed";
  st->keyspace = "bench";
  st->table = "kv";
  st->replication = "SimpleStrategy:1";
  st->cl.n = 1;
  st->cl.v[0] = CELLAR_CL_ONE;
  st->timeout_ms = 10000;
  st->routing = CELLAR_ROUTE_TOKEN_AWARE;
  st->seed = 1;
  int have_duration = 0, dist = DIST_UNIFORM;

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
        unsigned v[4] = {0, 0, 0, 0};
        char extra;
        int n = sscanf(optarg, "%u:%u:%u:%u%c", &v[0], &v[1], &v[2], &v[3],
                       &extra);
        int colons = 0;
        for (const char *p = optarg; *p; p++) colons += *p == ':';
        if (n < 2 || n > 4 || n != colons + 1 || v[0] + v[1] + v[2] + v[3] == 0 ||
            v[0] > 1000000 || v[1] > 1000000 || v[2] > 1000000 ||
            v[3] > 1000000)
          bad_arg("--ratio: '%s' is not R:W[:I[:M]] (numbers, not all 0)",
              optarg);
        set_ratio(st, v[0], v[1], v[2], v[3]);
        st->workload = "custom";
        break;
      }
      case O_WORKLOAD:
        if (!strcmp(optarg, "read")) set_ratio(st, 1, 0, 0, 0);
        else if (!strcmp(optarg, "write")) set_ratio(st, 0, 1, 0, 0);
        else if (!strcmp(optarg, "mixed")) set_ratio(st, 1, 1, 0, 0);
        else if (set_ycsb(st, optarg) == 0) {
          if (!st->dist_set) dist = st->dist;
        }
        else bad_arg("--workload: '%s' is not read, write, mixed, a, b, c, d "
                 "or f", optarg);
        st->workload = optarg;
        break;
      case O_DIST:
        if (!strcmp(optarg, "uniform")) st->dist = DIST_UNIFORM;
        else if (!strcmp(optarg, "zipfian")) st->dist = DIST_ZIPFIAN;
        else if (!strcmp(optarg, "latest")) st->dist = DIST_LATEST;
        else bad_arg("--distribution: '%s' is not uniform, zipfian or latest",
                 optarg);
        st->dist_set = 1;
        dist = st->dist;
        break;
      case O_DURATION:
        st->duration = parse_positive("--duration", optarg, 1e7);
        have_duration = 1;
        break;
      case O_OPS: st->ops = parse_u64("--ops", optarg, 1, UINT64_MAX / 2); break;
      case O_RATE: st->rate = parse_positive("--rate", optarg, 1e8); break;
      case O_KS: st->keyspace = optarg; break;
      case O_REPL: st->replication = optarg; break;
      case O_TABLE: st->table = optarg; break;
      case O_LOAD: st->load = 1; break;
      case O_CL: parse_cl_list("--consistency", optarg, &st->cl); break;
      case O_RCL:
        parse_cl_list("--read-consistency", optarg, &st->rcl);
        st->rcl_set = 1;
        break;
      case O_WCL:
        parse_cl_list("--write-consistency", optarg, &st->wcl);
        st->wcl_set = 1;
        break;
      case O_TIMEOUT:
        st->timeout_ms = (int)parse_u64("--timeout", optarg, 1, 3600000);
        break;
      case O_SEED: st->seed = parse_u64("--seed", optarg, 0, UINT64_MAX); break;
      case O_ROUTING:
        if (!strcmp(optarg, "token-aware")) st->routing = CELLAR_ROUTE_TOKEN_AWARE;
        else if (!strcmp(optarg, "spread")) st->routing = CELLAR_ROUTE_SPREAD;
        else if (!strcmp(optarg, "none")) st->routing = CELLAR_ROUTE_NONE;
        else bad_arg("--routing: '%s' is not token-aware, spread or none", optarg);
        break;
      case O_SPREAD: st->routing = CELLAR_ROUTE_SPREAD; break;
      case O_JSON: st->json = 1; break;
      case O_PJSON: st->progress_json = 1; break;
      case O_HELP: usage(stdout); exit(0);
      default: usage(stderr); exit(2);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "cellar-bench: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    exit(2);
  }
  /* an explicit --distribution wins over a workload's default, in any order */
  st->dist = dist;
  if (!st->rcl_set) st->rcl = st->cl;
  if (!st->wcl_set) st->wcl = st->cl;
  if (st->ratio[OP_READ] || st->ratio[OP_RMW])
    for (int i = 0; i < st->rcl.n; i++)
      if (st->rcl.v[i] == CELLAR_CL_ANY)
        bad_arg("reads cannot use ANY (see --read-consistency)");
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

#define NERR 32                  /* error counts by -code; the last: others */
#define VALUE_POOL (1u << 20)
#define PARK_NS 100000000u       /* 100 ms */
#define NTAG (NCL * NCL)         /* level tags: a level, or rmw's read*NCL+write */
#define LATE_NS 1000000u         /* a paced start this late is counted late */

typedef enum phase { PHASE_LOAD, PHASE_RUN } phase;

typedef struct bench bench;

typedef struct slot {
  bench *b;
  struct slot *next_pending;   /* slot_kick's list; the parked / idle lists */
  uint64_t rng;
  uint64_t t0;                 /* ns, when the current request was issued */
  uint64_t t_op;               /* ns, when the operation started */
  int op;                      /* the operation (OP_*) */
  int req;                     /* the request in flight: READ, WRITE, INSERT */
  int stage;                   /* rmw: 0 reading, 1 writing */
  int granted;                 /* --rate: the pacer granted the next start */
  cellar_consistency_t rcl, wcl;   /* levels of this operation */
  uint64_t index;              /* key index */
  char *key;                   /* key_size bytes */
  uint8_t *ctx;                /* rmw: the read's row context (siblings
                                  tables), given to its write; malloc'd */
  size_t nctx;
} slot;

/* Counters and histograms of one stretch of the run (all of it, or the
** part before or after the SIGUSR1 mark). */
typedef struct stats {
  histogram *op[OP__N];        /* per op type */
  histogram *all;              /* top-level operations */
  uint64_t done[OP__N];        /* successful */
  uint64_t failed[OP__N];      /* rmw: failed operations; others: requests */
  uint64_t errors[NERR];       /* failed requests by code */
} stats;

struct bench {
  settings st;
  cellar_client_t *client;
  zipf zipf;
  char *value_pool;            /* VALUE_POOL + value_size bytes */
  slot *slots;
  int nslots;
  uint64_t key_limit;          /* 10^key_size, capped */

  phase phase;
  atomic_int stop;             /* the run is over: slots retire */
  atomic_uint_fast64_t next_index;   /* load: next key; run: ops issued */
  atomic_uint_fast64_t insert_next;  /* next key index an insert writes */
  atomic_uint_fast64_t insert_acked; /* highest acknowledged insert (latest) */
  atomic_uint_fast64_t run_t0;       /* ns, start of the run phase (0: not yet) */
  atomic_uint_fast64_t mark_ns;      /* ns of the SIGUSR1 mark, 0 = none */

  pthread_mutex_t mu;          /* guards everything below */
  pthread_cond_t cond;         /* signalled when active drops to 0 */
  int active;                  /* slots not retired */
  slot *parked;                /* slots resting after a connection error */
  uint64_t t_end;              /* ns, when the last slot retired */
  stats run;                   /* the whole phase */
  stats before, after;         /* run phase, before / after the mark */
  histogram *second[OP__N];    /* the current second */
  histogram *second_all;
  histogram *lvl[OP__N][NTAG]; /* per op type and level tag (NULL: unused) */
  uint64_t lvl_failed[OP__N][NTAG];
  uint64_t misses;             /* reads that found no row */
  uint64_t issue_errors;       /* *_async refused a request */
  int last_issue_error;

  /* --rate (design note 9) */
  pthread_mutex_t pace_mu;     /* guards the fields below */
  pthread_cond_t pace_cond;    /* CLOCK_MONOTONIC; a slot became idle */
  slot *idle;                  /* slots waiting for a grant */
  int pace_quit;
  uint64_t late_starts;        /* grants more than LATE_NS after their due time */
  uint64_t max_lag_ns;
  uint64_t grants;

  /* the client's per-node counters at the start and the end of the run
  ** (design note 11) */
  cellar_node_stats_t nodes_t0[MAX_NODES], nodes_t1[MAX_NODES];
  size_t nnodes_t0, nnodes_t1;
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

/* The level tag of an op type: reads their read level, writes and inserts
** their write level, rmw the pair. */
static int level_tag(int op, cellar_consistency_t rcl, cellar_consistency_t wcl) {
  switch (op) {
    case OP_READ: return (int)rcl;
    case OP_RMW: return (int)rcl * NCL + (int)wcl;
    default: return (int)wcl;
  }
}

/* "QUORUM", or for rmw "QUORUM" / "ONE/QUORUM" (read/write). */
static void level_name(int op, int tag, char *buf, size_t size) {
  if (op != OP_RMW) {
    snprintf(buf, size, "%s", cellar_consistency_name((cellar_consistency_t)tag));
    return;
  }
  cellar_consistency_t r = (cellar_consistency_t)(tag / NCL);
  cellar_consistency_t w = (cellar_consistency_t)(tag % NCL);
  if (r == w) snprintf(buf, size, "%s", cellar_consistency_name(r));
  else snprintf(buf, size, "%s/%s", cellar_consistency_name(r),
                cellar_consistency_name(w));
}

static int stats_init(stats *s) {
  memset(s, 0, sizeof *s);
  for (int op = 0; op < OP__N; op++)
    if (!(s->op[op] = histogram_new())) return -1;
  return (s->all = histogram_new()) ? 0 : -1;
}

static void stats_reset(stats *s) {
  for (int op = 0; op < OP__N; op++) histogram_reset(s->op[op]);
  histogram_reset(s->all);
  memset(s->done, 0, sizeof s->done);
  memset(s->failed, 0, sizeof s->failed);
  memset(s->errors, 0, sizeof s->errors);
}

static void stats_free(stats *s) {
  for (int op = 0; op < OP__N; op++) histogram_free(s->op[op]);
  histogram_free(s->all);
}

/* Failed requests (rmw failures are already counted as their request's). */
static uint64_t stats_failed_requests(const stats *s) {
  return s->failed[OP_READ] + s->failed[OP_WRITE] + s->failed[OP_INSERT];
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

static cellar_consistency_t pick_level(slot *s, const cl_list *l) {
  return l->n == 1 ? l->v[0] : l->v[rnd_below(&s->rng, (uint64_t)l->n)];
}

static int pick_op(slot *s, const settings *st) {
  uint64_t sum = 0;
  for (int op = 0; op < OP__N; op++) sum += st->ratio[op];
  uint64_t r = rnd_below(&s->rng, sum);
  for (int op = 0; op < OP__N; op++) {
    if (r < st->ratio[op]) return op;
    r -= st->ratio[op];
  }
  return OP_READ;
}

static uint64_t pick_key(bench *b, slot *s, int op) {
  const settings *st = &b->st;
  if (op == OP_INSERT) {
    uint64_t i = atomic_fetch_add(&b->insert_next, 1);
    return i < b->key_limit ? i : i % st->keys;   /* out of digits: wrap */
  }
  switch (st->dist) {
    case DIST_ZIPFIAN:
      return fnv1a64(zipf_next(&b->zipf, &s->rng)) % st->keys;
    case DIST_LATEST: {
      uint64_t latest = atomic_load(&b->insert_acked);
      uint64_t r = zipf_next(&b->zipf, &s->rng);
      return r <= latest ? latest - r : 0;
    }
    default:
      return rnd_below(&s->rng, st->keys);
  }
}

/* --rate: the slot waits for the pacer's grant (design note 9). */
static void slot_wait_grant(slot *s) {
  bench *b = s->b;
  pthread_mutex_lock(&b->pace_mu);
  s->next_pending = b->idle;
  b->idle = s;
  pthread_cond_signal(&b->pace_cond);
  pthread_mutex_unlock(&b->pace_mu);
}

/* Sends the slot's request of kind req (READ, WRITE or INSERT). */
static void slot_send(slot *s, int req) {
  bench *b = s->b;
  const settings *st = &b->st;
  int rc;
  s->req = req;
  s->t0 = now_ns();
  if (req == OP_READ) {
    cellar_get_t g = {
      .keyspace = st->keyspace, .table = st->table,
      .partition = s->key, .partition_len = st->key_size,
      .consistency = s->rcl,
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
      .rows = &row, .nrows = 1, .consistency = s->wcl,
    };
    if (s->op == OP_RMW && s->nctx) {   /* replaces what its read saw */
      p.context = s->ctx;
      p.context_len = s->nctx;
    }
    rc = cellar_put_async(b->client, &p, on_done, s);
    s->nctx = 0;
  }
  if (rc != 0) {
    /* The callback will not run (libcellar's rule). Retiring the slot,
    ** rather than retrying, keeps a broken client from spinning. */
    pthread_mutex_lock(&b->mu);
    b->issue_errors++;
    b->last_issue_error = rc;
    b->run.errors[err_slot(rc)]++;
    b->run.failed[req]++;
    if (s->op == OP_RMW) b->run.failed[OP_RMW]++;
    pthread_mutex_unlock(&b->mu);
    s->stage = 0;
    slot_retire(s);
  }
}

/* Issues the slot's next operation (or the write of its rmw), or retires it. */
static void slot_issue(slot *s) {
  bench *b = s->b;
  const settings *st = &b->st;

  if (s->op == OP_RMW && s->stage == 1) {   /* finish the rmw, even if stopping */
    slot_send(s, OP_WRITE);
    return;
  }
  if (atomic_load(&b->stop)) {
    slot_retire(s);
    return;
  }
  if (b->phase == PHASE_LOAD) {
    s->index = atomic_fetch_add(&b->next_index, 1);
    if (s->index >= st->keys) {
      slot_retire(s);
      return;
    }
    s->op = OP_WRITE;
    s->wcl = pick_level(s, &st->wcl);
  } else {
    if (st->rate > 0 && !s->granted) {
      slot_wait_grant(s);
      return;
    }
    s->granted = 0;
    if (st->ops && atomic_fetch_add(&b->next_index, 1) >= st->ops) {
      slot_retire(s);
      return;
    }
    s->op = pick_op(s, st);
    s->index = pick_key(b, s, s->op);
    if (s->op == OP_READ || s->op == OP_RMW) s->rcl = pick_level(s, &st->rcl);
    if (s->op != OP_READ) s->wcl = pick_level(s, &st->wcl);
  }
  format_key(b, s->index, s->key);
  s->stage = 0;
  s->t_op = now_ns();
  slot_send(s, s->op == OP_RMW ? OP_READ : s->op);
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

/* Records a request's outcome into one stats (under b->mu). */
static void stats_request(stats *s, int req, int status, uint64_t us) {
  if (status == 0) {
    histogram_record(s->op[req], us);
    s->done[req]++;
  } else {
    s->failed[req]++;
    s->errors[err_slot(status)]++;
  }
}

/* Records a finished top-level operation into one stats (under b->mu). */
static void stats_op(stats *s, int op, int ok, uint64_t us) {
  if (op == OP_RMW) {
    if (ok) {
      histogram_record(s->op[OP_RMW], us);
      s->done[OP_RMW]++;
    } else {
      s->failed[OP_RMW]++;
    }
  }
  if (ok) histogram_record(s->all, us);
}

static void on_done(int status, cellar_result_t *res, void *arg) {
  slot *s = arg;
  bench *b = s->b;
  uint64_t now = now_ns();
  uint64_t us = (now - s->t0) / 1000;
  uint64_t op_us = (now - s->t_op) / 1000;
  int req = s->req, op = s->op;
  int miss = 0;
  if (req == OP_READ) {
    if (status == CELLAR_ENOTFOUND) {
      miss = 1;
      status = 0;
    } else if (status == 0 && cellar_result_row_count(res) == 0) {
      miss = 1;
    }
  }
  int park = status == CELLAR_ECONNECT || status == CELLAR_ECLOSED ||
             status == CELLAR_EOVERLOAD;
  /* an rmw whose read succeeded goes on to its write, with the read's
  ** context (a siblings table's versions it saw are replaced, not kept) */
  int cont = op == OP_RMW && s->stage == 0 && status == 0;
  if (cont && !miss) {
    size_t n = 0;
    const void *ctx = cellar_result_row_context(res, 0, &n);
    uint8_t *keep = ctx && n ? realloc(s->ctx, n) : NULL;
    if (keep) {
      memcpy(keep, ctx, n);
      s->ctx = keep;
      s->nctx = n;
    }
  }
  int finished = !cont;
  int op_ok = status == 0;
  int req_tag = level_tag(req, s->rcl, s->wcl);
  int op_tag = level_tag(op, s->rcl, s->wcl);
  s->stage = cont ? 1 : 0;     /* before the slot may be seen by others */
  uint64_t mark = atomic_load(&b->mark_ns);
  int run = b->phase == PHASE_RUN;

  if (req == OP_INSERT && status == 0) {
    uint64_t cur = atomic_load(&b->insert_acked);
    while (s->index > cur &&
           !atomic_compare_exchange_weak(&b->insert_acked, &cur, s->index)) {
    }
  }

  pthread_mutex_lock(&b->mu);
  if (park) {
    s->next_pending = b->parked;
    b->parked = s;
  }
  stats_request(&b->run, req, status, us);
  if (status == 0) {
    histogram_record(b->second[req], us);
    if (b->lvl[req][req_tag]) histogram_record(b->lvl[req][req_tag], us);
    b->misses += (uint64_t)miss;
  } else {
    b->lvl_failed[req][req_tag]++;
  }
  stats *side = NULL;
  if (run && mark) side = now >= mark ? &b->after : &b->before;
  else if (run) side = &b->before;
  if (side) stats_request(side, req, status, us);
  if (finished) {
    stats_op(&b->run, op, op_ok, op_us);
    if (side) stats_op(side, op, op_ok, op_us);
    if (op_ok) histogram_record(b->second_all, op_us);
    if (op == OP_RMW) {
      if (op_ok) {
        histogram_record(b->second[OP_RMW], op_us);
        if (b->lvl[OP_RMW][op_tag])
          histogram_record(b->lvl[OP_RMW][op_tag], op_us);
      } else {
        b->lvl_failed[OP_RMW][op_tag]++;
      }
    }
  }
  pthread_mutex_unlock(&b->mu);
  if (cont || !park) slot_kick(s);
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

/* ----------------------------------------------------------- the pacer */

/* Sleeps until the monotonic time t_ns, at most max_ns. */
static void sleep_until(uint64_t t_ns, uint64_t max_ns) {
  uint64_t now = now_ns();
  if (t_ns <= now) return;
  if (t_ns - now > max_ns) t_ns = now + max_ns;
  struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                        .tv_nsec = (long)(t_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

typedef struct pacer_arg {
  bench *b;
  uint64_t t0;
} pacer_arg;

/* Grants start k at t0 + k/rate to one idle slot (design note 9); once the
** run stops, hands every idle slot back so that it retires. */
static void *pacer_main(void *arg) {
  pacer_arg *pa = arg;
  bench *b = pa->b;
  const double interval = 1e9 / b->st.rate;
  uint64_t k = 0;
  pthread_mutex_lock(&b->pace_mu);
  while (!b->pace_quit) {
    slot *s = NULL;
    uint64_t due = pa->t0 + (uint64_t)((double)k * interval);
    uint64_t now = now_ns();
    if (atomic_load(&b->stop)) {
      s = b->idle;
      b->idle = NULL;
      pthread_mutex_unlock(&b->pace_mu);
      while (s) {
        slot *x = s;
        s = s->next_pending;
        slot_kick(x);           /* it sees stop and retires */
      }
      sleep_until(now_ns() + 10000000u, 10000000u);
      pthread_mutex_lock(&b->pace_mu);
      continue;
    }
    if (now < due) {
      pthread_mutex_unlock(&b->pace_mu);
      sleep_until(due, 10000000u);
      pthread_mutex_lock(&b->pace_mu);
      continue;
    }
    if (!b->idle) {             /* every slot busy: this start is late */
      struct timespec ts;
      uint64_t t = now + 1000000u;
      ts.tv_sec = (time_t)(t / 1000000000u);
      ts.tv_nsec = (long)(t % 1000000000u);
      pthread_cond_timedwait(&b->pace_cond, &b->pace_mu, &ts);
      continue;
    }
    s = b->idle;
    b->idle = s->next_pending;
    k++;
    b->grants++;
    if (now - due > LATE_NS) b->late_starts++;
    if (now - due > b->max_lag_ns) b->max_lag_ns = now - due;
    s->granted = 1;
    pthread_mutex_unlock(&b->pace_mu);
    slot_kick(s);
    pthread_mutex_lock(&b->pace_mu);
  }
  pthread_mutex_unlock(&b->pace_mu);
  return NULL;
}

/* ------------------------------------------------------------ SIGUSR1 */

static void *mark_main(void *arg) {
  bench *b = arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0) continue;
    uint64_t now = now_ns(), t0 = atomic_load(&b->run_t0);
    uint64_t expected = 0;
    if (!t0) {
      fprintf(stderr, "cellar-bench: SIGUSR1 before the run: ignored\n");
    } else if (atomic_compare_exchange_strong(&b->mark_ns, &expected, now)) {
      fprintf(stderr, "cellar-bench: mark at %.3f s\n", (double)(now - t0) / 1e9);
    } else {
      fprintf(stderr, "cellar-bench: SIGUSR1 again: ignored (one mark only)\n");
    }
  }
  return NULL;
}

/* -------------------------------------------------------------- phases */

typedef struct tick {
  uint64_t done[OP__N], failed[OP__N];
} tick;

static void reset_stats(bench *b) {
  pthread_mutex_lock(&b->mu);
  stats_reset(&b->run);
  stats_reset(&b->before);
  stats_reset(&b->after);
  for (int op = 0; op < OP__N; op++) {
    histogram_reset(b->second[op]);
    for (int t = 0; t < NTAG; t++) {
      if (b->lvl[op][t]) histogram_reset(b->lvl[op][t]);
      b->lvl_failed[op][t] = 0;
    }
  }
  histogram_reset(b->second_all);
  b->misses = 0;
  b->issue_errors = 0;
  pthread_mutex_unlock(&b->mu);
}

/* One progress line on stderr from the last second's histograms. */
static void progress(bench *b, double t, double dt, tick *prev,
                     histogram *scratch[OP__N + 1], int *mark_seen) {
  tick cur;
  pthread_mutex_lock(&b->mu);
  for (int op = 0; op < OP__N; op++) {
    histogram_copy(scratch[op], b->second[op]);
    histogram_reset(b->second[op]);
    cur.done[op] = b->run.done[op];
    cur.failed[op] = b->run.failed[op];
  }
  histogram_copy(scratch[OP__N], b->second_all);
  histogram_reset(b->second_all);
  pthread_mutex_unlock(&b->mu);

  uint64_t d[OP__N], errs = 0;
  for (int op = 0; op < OP__N; op++) d[op] = cur.done[op] - prev->done[op];
  for (int op = OP_READ; op <= OP_INSERT; op++)
    errs += cur.failed[op] - prev->failed[op];
  /* top-level operations: an rmw's read and write are not operations */
  uint64_t ops = histogram_count(scratch[OP__N]);
  int marked = 0;
  if (!*mark_seen && atomic_load(&b->mark_ns)) marked = *mark_seen = 1;
  int load = b->phase == PHASE_LOAD;

  if (b->st.progress_json) {
    char line[2048];
    int n = snprintf(line, sizeof line,
                     "{\"phase\":\"%s\",\"t\":%.3f,\"ops_per_sec\":%.1f,"
                     "\"errors\":%" PRIu64 ",\"mark\":%s",
                     load ? "load" : "run", t, (double)ops / dt, errs,
                     marked ? "true" : "false");
    if (load)
      n += snprintf(line + n, sizeof line - (size_t)n, ",\"rows\":%" PRIu64,
                    cur.done[OP_WRITE]);
    const histogram *all = scratch[OP__N];
    n += snprintf(line + n, sizeof line - (size_t)n,
                  ",\"total\":{\"ops\":%" PRIu64 ",\"p50\":%" PRIu64
                  ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}",
                  ops, histogram_percentile(all, 50), histogram_percentile(all, 99),
                  histogram_percentile(all, 99.9), histogram_max(all));
    for (int op = 0; op < OP__N && n < (int)sizeof line; op++) {
      uint64_t f = cur.failed[op] - prev->failed[op];
      if (d[op] == 0 && f == 0) continue;
      n += snprintf(line + n, sizeof line - (size_t)n,
                    ",\"%s\":{\"ops\":%" PRIu64 ",\"errors\":%" PRIu64
                    ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64
                    "}",
                    op_names[op], d[op], f, histogram_percentile(scratch[op], 50),
                    histogram_percentile(scratch[op], 99),
                    histogram_percentile(scratch[op], 99.9));
    }
    if (n < (int)sizeof line) fprintf(stderr, "%s}\n", line);
    *prev = cur;
    return;
  }

  char line[512];
  int n = 0;
  if (load) {
    n += snprintf(line + n, sizeof line - (size_t)n,
                  "load %5.0fs  %" PRIu64 "/%" PRIu64 " rows  %.0f rows/s", t,
                  cur.done[OP_WRITE], b->st.keys, (double)ops / dt);
  } else {
    n += snprintf(line + n, sizeof line - (size_t)n, "run  %5.0fs  %.0f ops/s",
                  t, (double)ops / dt);
  }
  for (int op = 0; op < OP__N; op++) {
    if (d[op] == 0 && (load || histogram_count(b->run.op[op]) == 0)) continue;
    n += snprintf(line + n, sizeof line - (size_t)n,
                  "  | %s %.0f/s p50 %" PRIu64 " p99 %" PRIu64 " us",
                  op_names[op], (double)d[op] / dt,
                  histogram_percentile(scratch[op], 50),
                  histogram_percentile(scratch[op], 99));
    if (n >= (int)sizeof line) break;
  }
  if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
  fprintf(stderr, "%s%s", line, marked ? "  | mark" : "");
  if (errs) fprintf(stderr, "  | errors %" PRIu64 "\n", errs);
  else fputc('\n', stderr);
  *prev = cur;
}

/*
** Runs one phase: starts every slot (and the pacer), prints progress every
** second, ends the phase at the deadline (duration) and waits for the slots
** to retire. Returns the phase's elapsed seconds.
*/
static double run_phase(bench *b, phase ph) {
  const settings *st = &b->st;
  histogram *scratch[OP__N + 1];
  for (int op = 0; op <= OP__N; op++)
    if (!(scratch[op] = histogram_new())) die("out of memory");
  tick prev;
  memset(&prev, 0, sizeof prev);
  int mark_seen = 0;

  b->phase = ph;
  atomic_store(&b->stop, 0);
  atomic_store(&b->next_index, 0);
  b->active = b->nslots;
  uint64_t t0 = now_ns();
  b->t_end = 0;
  if (ph == PHASE_RUN) atomic_store(&b->run_t0, t0);

  pthread_t pacer;
  pacer_arg pa = {.b = b, .t0 = t0};
  int pacing = ph == PHASE_RUN && st->rate > 0;
  if (pacing) {
    b->pace_quit = 0;
    if (pthread_create(&pacer, NULL, pacer_main, &pa) != 0)
      die("cannot start the pacer thread");
  }
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
               &prev, scratch, &mark_seen);
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
  if (pacing) {
    pthread_mutex_lock(&b->pace_mu);
    b->pace_quit = 1;
    pthread_cond_signal(&b->pace_cond);
    pthread_mutex_unlock(&b->pace_mu);
    pthread_join(pacer, NULL);
  }
  for (int op = 0; op <= OP__N; op++) histogram_free(scratch[op]);
  pthread_mutex_lock(&b->mu);
  uint64_t t_end = b->t_end ? b->t_end : now_ns();
  pthread_mutex_unlock(&b->mu);
  return (double)(t_end - t0) / 1e9;
}

/* ------------------------------------------------------------- reports */

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p999"};
#define NPCT 4

/* "QUORUM" or "ONE,QUORUM" */
static void cl_list_name(const cl_list *l, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < l->n && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "",
                          cellar_consistency_name(l->v[i]));
}

static int cl_list_eq(const cl_list *a, const cl_list *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++)
    if (a->v[i] != b->v[i]) return 0;
  return 1;
}

/* "1:1" or "95:0:5:0" */
static void ratio_name(const settings *st, char *buf, size_t size) {
  if (st->ratio[OP_INSERT] == 0 && st->ratio[OP_RMW] == 0)
    snprintf(buf, size, "%u:%u", st->ratio[OP_READ], st->ratio[OP_WRITE]);
  else
    snprintf(buf, size, "%u:%u:%u:%u", st->ratio[OP_READ], st->ratio[OP_WRITE],
             st->ratio[OP_INSERT], st->ratio[OP_RMW]);
}

/* Level tags of an op type in use (a histogram allocated), in tag order. */
static int op_tags(const bench *b, int op, int tags[NTAG]) {
  int n = 0;
  for (int t = 0; t < NTAG; t++)
    if (b->lvl[op][t] && (histogram_count(b->lvl[op][t]) || b->lvl_failed[op][t]))
      tags[n++] = t;
  return n;
}

static void text_row(const char *name, const histogram *h, double secs,
                     uint64_t failed) {
  printf("%-16s %10.0f %10" PRIu64, name,
         secs > 0 ? (double)histogram_count(h) / secs : 0.0, histogram_count(h));
  for (int i = 0; i < NPCT; i++)
    printf(" %8" PRIu64, histogram_percentile(h, pcts[i]));
  printf(" %8" PRIu64 " %10.1f %8" PRIu64 "\n", histogram_max(h),
         histogram_mean(h), failed);
}

static void text_table(bench *b, const stats *s, double secs, int levels) {
  printf("%-16s %10s %10s %8s %8s %8s %8s %8s %10s %8s  (latency in us)\n",
         "op", "ops/s", "count", "p50", "p90", "p99", "p99.9", "max", "mean",
         "errors");
  for (int op = 0; op < OP__N; op++) {
    if (histogram_count(s->op[op]) == 0 && s->failed[op] == 0) continue;
    int tags[NTAG], nt = levels ? op_tags(b, op, tags) : 0;
    char name[64], lv[40];
    if (nt == 1) {
      level_name(op, tags[0], lv, sizeof lv);
      snprintf(name, sizeof name, "%s@%s", op_names[op], lv);
    } else {
      snprintf(name, sizeof name, "%s", op_names[op]);
    }
    text_row(name, s->op[op], secs, s->failed[op]);
    for (int i = 0; nt > 1 && i < nt; i++) {
      level_name(op, tags[i], lv, sizeof lv);
      snprintf(name, sizeof name, " %s@%s", op_names[op], lv);
      text_row(name, b->lvl[op][tags[i]], secs, b->lvl_failed[op][tags[i]]);
    }
  }
  text_row("total", s->all, secs, stats_failed_requests(s));
}

static void text_errors(const stats *s) {
  if (!stats_failed_requests(s)) return;
  printf("errors:");
  for (int i = 0; i < NERR; i++) {
    if (s->errors[i] == 0) continue;
    printf(" %s %" PRIu64 ";", i == NERR - 1 ? "other" : cellar_err_name(-i),
           s->errors[i]);
  }
  printf("\n");
}

/* Requests the run sent to node i of nodes_t1 (counters are cumulative:
** the load phase's are taken off). */
static uint64_t run_requests(const bench *b, size_t i) {
  uint64_t before = 0;
  for (size_t j = 0; j < b->nnodes_t0 && j < MAX_NODES; j++)
    if (!strcmp(b->nodes_t0[j].address, b->nodes_t1[i].address))
      before = b->nodes_t0[j].requests;
  return b->nodes_t1[i].requests - before;
}

static size_t nodes_known(const bench *b) {
  return b->nnodes_t1 < MAX_NODES ? b->nnodes_t1 : MAX_NODES;
}

static void print_text(bench *b, const char *peer, double secs, double load_secs,
                       uint64_t load_rows, uint64_t t_end) {
  const settings *st = &b->st;
  char ratio[64], rcl[200], wcl[200], cls[420];
  ratio_name(st, ratio, sizeof ratio);
  cl_list_name(&st->rcl, rcl, sizeof rcl);
  cl_list_name(&st->wcl, wcl, sizeof wcl);
  if (cl_list_eq(&st->rcl, &st->wcl)) snprintf(cls, sizeof cls, "%s", rcl);
  else snprintf(cls, sizeof cls, "read %s, write %s", rcl, wcl);
  printf("cellar-bench: %s (connected to %s), %d connections x pipeline %d = "
         "%d in flight, %" PRIu64 " keys of %zu B, values %zu B, workload %s, "
         "%s, ratio %s, CL %s, keyspace %s (%s)\n",
         st->hosts, peer, st->connections, st->pipeline, b->nslots, st->keys,
         st->key_size, st->value_size, st->workload, dist_names[st->dist],
         ratio, cls, st->keyspace, st->replication);
  if (st->load)
    printf("load: %" PRIu64 " rows in %.2f s (%.0f rows/s)\n", load_rows,
           load_secs, load_secs > 0 ? (double)load_rows / load_secs : 0.0);
  uint64_t ok = histogram_count(b->run.all), bad = stats_failed_requests(&b->run);
  printf("run: %.2f s, %" PRIu64 " ops, %.0f ops/s, %" PRIu64 " errors\n",
         secs, ok, secs > 0 ? (double)ok / secs : 0.0, bad);
  if (st->rate > 0)
    printf("rate: target %.0f ops/s; %" PRIu64 " of %" PRIu64 " starts more "
           "than 1 ms late, the latest by %.1f ms\n", st->rate, b->late_starts,
           b->grants, (double)b->max_lag_ns / 1e6);
  text_table(b, &b->run, secs, 1);
  printf("requests per node (routing %s):", routing_names[st->routing]);
  for (size_t i = 0; i < nodes_known(b); i++)
    printf(" %s %" PRIu64 ";", b->nodes_t1[i].address, run_requests(b, i));
  printf("\n");
  if (b->run.done[OP_READ] || b->run.failed[OP_READ]) {
    uint64_t reads = b->run.done[OP_READ];
    printf("reads that found no row: %" PRIu64 " (%.1f%%)\n", b->misses,
           reads ? 100.0 * (double)b->misses / (double)reads : 0.0);
  }
  text_errors(&b->run);
  uint64_t mark = atomic_load(&b->mark_ns), t0 = atomic_load(&b->run_t0);
  if (mark) {
    double at = (double)(mark - t0) / 1e9;
    double after = t_end > mark ? (double)(t_end - mark) / 1e9 : 0.0;
    printf("\nbefore the mark (0 .. %.2f s):\n", at);
    text_table(b, &b->before, at, 0);
    text_errors(&b->before);
    printf("after the mark (%.2f s .. end, %.2f s):\n", at, after);
    text_table(b, &b->after, after, 0);
    text_errors(&b->after);
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

static void json_error_codes(const stats *s) {
  printf("{");
  int first = 1;
  for (int i = 0; i < NERR; i++) {
    if (s->errors[i] == 0) continue;
    printf("%s\"%s\":%" PRIu64, first ? "" : ",",
           i == NERR - 1 ? "other" : cellar_err_name(-i), s->errors[i]);
    first = 0;
  }
  printf("}");
}

/* "total":{..,"errors":N},"read":{..},... of one stats */
static void json_stats(const stats *s, double secs, const uint64_t *misses) {
  printf("\"total\":");
  json_hist(s->all, secs);
  printf(",\"errors\":%" PRIu64 "}", stats_failed_requests(s));
  for (int op = 0; op < OP__N; op++) {
    printf(",\"%s\":", op_names[op]);
    json_hist(s->op[op], secs);
    printf(",\"errors\":%" PRIu64, s->failed[op]);
    if (op == OP_READ && misses) printf(",\"misses\":%" PRIu64, *misses);
    printf("}");
  }
}

static void print_json(bench *b, const char *peer, double secs, double load_secs,
                       uint64_t load_rows, uint64_t t_end) {
  const settings *st = &b->st;
  char ratio[64], rcl[200], wcl[200];
  ratio_name(st, ratio, sizeof ratio);
  cl_list_name(&st->rcl, rcl, sizeof rcl);
  cl_list_name(&st->wcl, wcl, sizeof wcl);
  printf("{\"hosts\":");
  json_string(st->hosts);
  printf(",\"connected\":");
  json_string(peer);
  printf(",\"connections\":%d,\"pipeline\":%d,\"keys\":%" PRIu64
         ",\"key_size\":%zu,\"value_size\":%zu,\"workload\":",
         st->connections, st->pipeline, st->keys, st->key_size, st->value_size);
  json_string(st->workload);
  printf(",\"ratio\":\"%s\",\"distribution\":\"%s\",\"consistency\":", ratio,
         dist_names[st->dist]);
  /* the one level of reads and writes, else "mixed" */
  json_string(cl_list_eq(&st->rcl, &st->wcl) && st->rcl.n == 1 ? rcl : "mixed");
  printf(",\"read_consistency\":");
  json_string(rcl);
  printf(",\"write_consistency\":");
  json_string(wcl);
  printf(",\"routing\":\"%s\",\"requests_by_node\":{", routing_names[st->routing]);
  for (size_t i = 0; i < nodes_known(b); i++) {
    printf("%s", i ? "," : "");
    json_string(b->nodes_t1[i].address);
    printf(":%" PRIu64, run_requests(b, i));
  }
  printf("}");
  printf(",\"rate\":%.1f,\"keyspace\":", st->rate);
  json_string(st->keyspace);
  printf(",\"replication\":");
  json_string(st->replication);
  printf(",\"table\":");
  json_string(st->table);
  if (st->load)
    printf(",\"load\":{\"rows\":%" PRIu64 ",\"seconds\":%.3f,"
           "\"rows_per_sec\":%.1f}",
           load_rows, load_secs,
           load_secs > 0 ? (double)load_rows / load_secs : 0.0);
  if (st->rate > 0)
    printf(",\"pacing\":{\"target_ops_per_sec\":%.1f,\"starts\":%" PRIu64
           ",\"late_starts\":%" PRIu64 ",\"max_lag_us\":%" PRIu64 "}",
           st->rate, b->grants, b->late_starts, b->max_lag_ns / 1000);
  printf(",\"seconds\":%.3f,", secs);
  json_stats(&b->run, secs, &b->misses);
  printf(",\"by_level\":{");
  int first = 1;
  for (int op = 0; op < OP__N; op++) {
    int tags[NTAG], nt = op_tags(b, op, tags);
    for (int i = 0; i < nt; i++) {
      char lv[40];
      level_name(op, tags[i], lv, sizeof lv);
      printf("%s\"%s@%s\":", first ? "" : ",", op_names[op], lv);
      json_hist(b->lvl[op][tags[i]], secs);
      printf(",\"errors\":%" PRIu64 "}", b->lvl_failed[op][tags[i]]);
      first = 0;
    }
  }
  printf("},\"errors\":");
  json_error_codes(&b->run);
  uint64_t mark = atomic_load(&b->mark_ns), t0 = atomic_load(&b->run_t0);
  if (mark) {
    double at = (double)(mark - t0) / 1e9;
    double after = t_end > mark ? (double)(t_end - mark) / 1e9 : 0.0;
    printf(",\"mark_at\":%.3f,\"before_mark\":{\"seconds\":%.3f,", at, at);
    json_stats(&b->before, at, NULL);
    printf(",\"errors\":");
    json_error_codes(&b->before);
    printf("},\"after_mark\":{\"seconds\":%.3f,", after);
    json_stats(&b->after, after, NULL);
    printf(",\"errors\":");
    json_error_codes(&b->after);
    printf("}");
  }
  printf("}\n");
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

/* Allocates the per-level histograms of the levels the settings can use. */
static void alloc_levels(bench *b) {
  const settings *st = &b->st;
  for (int op = 0; op < OP__N; op++) {
    if (op == OP_READ || op == OP_RMW) {
      for (int i = 0; i < st->rcl.n; i++) {
        if (op == OP_READ) {
          int t = level_tag(op, st->rcl.v[i], 0);
          if (!b->lvl[op][t] && !(b->lvl[op][t] = histogram_new()))
            die("out of memory");
          continue;
        }
        for (int j = 0; j < st->wcl.n; j++) {
          int t = level_tag(op, st->rcl.v[i], st->wcl.v[j]);
          if (!b->lvl[op][t] && !(b->lvl[op][t] = histogram_new()))
            die("out of memory");
        }
      }
    } else {
      for (int j = 0; j < st->wcl.n; j++) {
        int t = level_tag(op, 0, st->wcl.v[j]);
        if (!b->lvl[op][t] && !(b->lvl[op][t] = histogram_new()))
          die("out of memory");
      }
    }
  }
}

int main(int argc, char **argv) {
  static bench b;              /* large and long-lived: not on the stack */
  settings *st = &b.st;

  /* design note 10: SIGUSR1 blocked here, before any thread exists, so
  ** every thread inherits the mask and only mark_main's sigwait takes it */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);

  parse_args(st, argc, argv);

  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.cond, NULL);
  pthread_mutex_init(&b.pace_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b.pace_cond, &ca);
  pthread_condattr_destroy(&ca);
  if (stats_init(&b.run) || stats_init(&b.before) || stats_init(&b.after))
    die("out of memory");
  for (int op = 0; op < OP__N; op++)
    if (!(b.second[op] = histogram_new())) die("out of memory");
  if (!(b.second_all = histogram_new())) die("out of memory");
  alloc_levels(&b);

  uint64_t seed = st->seed;
  b.value_pool = malloc(VALUE_POOL + st->value_size + 1);
  if (!b.value_pool) die("out of memory");
  static const char alnum[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (size_t i = 0; i < VALUE_POOL + st->value_size; i++)
    b.value_pool[i] = alnum[splitmix64(&seed) % 62];
  if (st->dist != DIST_UNIFORM) zipf_init(&b.zipf, st->keys, 0.99);
  b.key_limit = UINT64_MAX;
  if (st->key_size < 20) {
    b.key_limit = 1;
    for (size_t i = 0; i < st->key_size; i++) b.key_limit *= 10;
  }
  atomic_store(&b.insert_next, st->keys);
  atomic_store(&b.insert_acked, st->keys - 1);

  b.nslots = st->connections * st->pipeline;
  b.slots = calloc((size_t)b.nslots, sizeof *b.slots);
  if (!b.slots) die("out of memory");
  for (int i = 0; i < b.nslots; i++) {
    b.slots[i].b = &b;
    b.slots[i].rng = st->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 1;
    b.slots[i].key = malloc(st->key_size);
    if (!b.slots[i].key) die("out of memory");
  }

  pthread_t marker;
  if (pthread_create(&marker, NULL, mark_main, &b) != 0)
    die("cannot start the signal thread");
  pthread_detach(marker);

  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = st->hosts;
  o.connections = st->connections;
  o.consistency = st->wcl.v[0];
  o.request_timeout_ms = st->timeout_ms;
  o.max_in_flight = 0;
  o.routing = st->routing;
  int rc = cellar_connect(&o, &b.client);
  if (rc != 0)
    die("cannot connect to %s: %s%s", st->hosts, cellar_err_name(rc),
        rc == CELLAR_ECONNECT ? " (is a cellard listening there?)" : "");

  cellar_result_t *res = NULL;
  rc = cellar_create_keyspace(b.client, st->keyspace, st->replication, 1, &res);
  check(rc, res, "create keyspace");
  cellar_table_options_t to;
  cellar_table_options_init(&to);
  to.conflict_policy = "lww";
  res = NULL;
  rc = cellar_create_table(b.client, st->keyspace, st->table, &to, 1, &res);
  check(rc, res, "create table");
  /* the keyspace may have existed: report its real replication */
  static char replication[256];
  res = NULL;
  if (cellar_describe(b.client, st->keyspace, &res) == 0) {
    for (size_t i = 0; i < cellar_result_keyspace_count(res); i++) {
      const char *name = cellar_result_keyspace_name(res, i);
      const char *r = cellar_result_keyspace_replication(res, i);
      if (name && r && !strcmp(name, st->keyspace)) {
        snprintf(replication, sizeof replication, "%s", r);
        st->replication = replication;
      }
    }
  }
  cellar_result_free(res);

  double load_secs = 0;
  uint64_t load_rows = 0;
  if (st->load) {
    load_secs = run_phase(&b, PHASE_LOAD);
    pthread_mutex_lock(&b.mu);
    load_rows = b.run.done[OP_WRITE];
    uint64_t load_failed = b.run.failed[OP_WRITE];
    pthread_mutex_unlock(&b.mu);
    fprintf(stderr, "load: %" PRIu64 " rows in %.2f s (%.0f rows/s)%s\n",
            load_rows, load_secs, (double)load_rows / load_secs,
            load_failed ? ", with errors" : "");
    if (load_failed)
      fprintf(stderr, "cellar-bench: %" PRIu64 " load writes failed\n",
              load_failed);
    reset_stats(&b);
  }

  cellar_client_stats(b.client, NULL, b.nodes_t0, MAX_NODES, &b.nnodes_t0);
  double secs = run_phase(&b, PHASE_RUN);
  uint64_t t_end = atomic_load(&b.run_t0) + (uint64_t)(secs * 1e9);
  cellar_client_stats(b.client, NULL, b.nodes_t1, MAX_NODES, &b.nnodes_t1);

  /* stop the I/O thread before reading the final numbers; the peer's name
  ** is kept for the report */
  char peer[256];
  snprintf(peer, sizeof peer, "%s", cellar_client_peer(b.client));
  cellar_close(b.client);
  b.client = NULL;

  if (b.issue_errors)
    fprintf(stderr, "cellar-bench: %" PRIu64 " requests refused by the client "
            "(last: %s)\n", b.issue_errors, cellar_err_name(b.last_issue_error));
  if (st->json) print_json(&b, peer, secs, load_secs, load_rows, t_end);
  else print_text(&b, peer, secs, load_secs, load_rows, t_end);

  uint64_t ok = histogram_count(b.run.all);
  stats_free(&b.run);
  stats_free(&b.before);
  stats_free(&b.after);
  for (int op = 0; op < OP__N; op++) {
    histogram_free(b.second[op]);
    for (int t = 0; t < NTAG; t++) histogram_free(b.lvl[op][t]);
  }
  histogram_free(b.second_all);
  for (int i = 0; i < b.nslots; i++) {
    free(b.slots[i].key);
    free(b.slots[i].ctx);
  }
  free(b.slots);
  free(b.value_pool);
  pthread_mutex_destroy(&b.pace_mu);
  pthread_cond_destroy(&b.pace_cond);
  pthread_cond_destroy(&b.cond);
  pthread_mutex_destroy(&b.mu);
  return ok > 0 ? 0 : 1;
}
