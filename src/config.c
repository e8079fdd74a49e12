/* config: settings from a file and flags, each validated by its own rule. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cellar/cellar.h"
#include "config.h"
#include "log.h"

void config_defaults(config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
  c->listen_port = 7400;
  snprintf(c->data_dir, sizeof c->data_dir, "./data");
  c->cache_bytes = 64u << 20;
  c->write_buffer_bytes = 32u << 20;
  c->sync_writes = 0;
  c->max_frame_bytes = CELLAR_MAX_FRAME_BYTES;
  c->max_connections = 1024;
  c->max_output_bytes = 64u << 20;
  c->max_inflight = 1024;
  c->workers = 0;              /* auto: config_finish */
  c->max_slice_rows = 1000;
  c->siblings_warn = 25;
  c->siblings_limit = 100;
  c->log_level = LOG_INFO;
  snprintf(c->cluster_name, sizeof c->cluster_name, "cellar");
  snprintf(c->dc, sizeof c->dc, "dc1");
  snprintf(c->rack, sizeof c->rack, "rack1");
  c->num_tokens = 16;
  c->phi_threshold = 8.0;
  c->gossip_interval_ms = 1000;
  c->read_timeout_ms = 5000;
  c->write_timeout_ms = 2000;
  c->hints_enabled = 1;
  c->max_hint_window_ms = 3ull * 3600 * 1000;
  c->max_hints_bytes = 1ull << 30;
  c->hint_throttle_kib = 1024;
  c->repair_bytes_per_s = 16u << 20;
  c->repair_parallel = 1;
  c->repair_scan_bytes_per_s = 16u << 20;
}

void config_finish(config *c) {
  /* one storage thread per core but one: the loop thread needs a core of
  ** its own (measured in docs/benchmarks.md: on 2 cores, 1 worker gives
  ** 45k unpipelined puts/s, 2 give 36k, 4 give 34k) */
  if (c->workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = n > 1 ? (int)(n - 1) : 1;
    if (c->workers > 16) c->workers = 16;
  }
  /* a warning above the hard limit would never fire */
  if (c->siblings_warn > c->siblings_limit) c->siblings_warn = c->siblings_limit;
  if (c->peer_port == 0) {
    snprintf(c->peer_host, sizeof c->peer_host, "%s", c->listen_host);
    c->peer_port = c->listen_port < 65535 ? c->listen_port + 1 : c->listen_port - 1;
  }
}

/* Checks HOST:PORT and splits it. 0 or -1. */
static int split_addr(const char *value, char *host, size_t hostlen, int *port) {
  const char *colon = strrchr(value, ':');
  if (colon == NULL || colon == value || (size_t)(colon - value) >= hostlen) return -1;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p < 1 || p > 65535) return -1;
  memcpy(host, value, (size_t)(colon - value));
  host[colon - value] = '\0';
  *port = (int)p;
  return 0;
}

static int check_ident(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return -1;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return -1;
  return 0;
}

int config_parse_size(const char *s, uint64_t *out) {
  if (s == NULL || !isdigit((unsigned char)*s)) return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  uint64_t mul = 1;
  if (*end) {
    if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib")) mul = 1ull << 10;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") || !strcasecmp(end, "mib")) mul = 1ull << 20;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") || !strcasecmp(end, "gib")) mul = 1ull << 30;
    else return -1;
  }
  if (v > UINT64_MAX / mul) return -1;
  *out = (uint64_t)v * mul;
  return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
  if (s == NULL || *s == '\0') return -1;
  errno = 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1") || !strcasecmp(s, "on")) *out = 1;
  else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0") || !strcasecmp(s, "off")) *out = 0;
  else return -1;
  return 0;
}

static int bad(char *err, size_t errlen, const char *key, const char *value,
               const char *why) {
  snprintf(err, errlen, "invalid setting %s = '%s': %s", key, value, why);
  return CELLAR_ECONFIG;
}

static int size_in(const char *key, const char *value, uint64_t lo, uint64_t hi,
                   uint64_t *out, char *err, size_t errlen) {
  char why[96];
  snprintf(why, sizeof why, "expected a size from %llu to %llu bytes (suffix k, m, g allowed)",
           (unsigned long long)lo, (unsigned long long)hi);
  if (config_parse_size(value, out) != 0 || *out < lo || *out > hi)
    return bad(err, errlen, key, value, why);
  return 0;
}

/* Parses "3h", "90m", "30s", "500ms" or a plain number of milliseconds. */
static int parse_duration_ms(const char *s, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9') return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  uint64_t mul = 1;
  if (*end == '\0' || !strcmp(end, "ms")) mul = 1;
  else if (!strcmp(end, "s")) mul = 1000;
  else if (!strcmp(end, "m")) mul = 60000;
  else if (!strcmp(end, "h")) mul = 3600000;
  else if (!strcmp(end, "d")) mul = 86400000;
  else return -1;
  if (v > UINT64_MAX / mul) return -1;
  *out = (uint64_t)v * mul;
  return 0;
}

int config_set(config *c, const char *key_in, const char *value, char *err,
               size_t errlen) {
  char key[64];
  size_t i = 0;
  for (; key_in[i] && i < sizeof key - 1; i++)
    key[i] = key_in[i] == '-' ? '_' : key_in[i];
  key[i] = '\0';
  uint64_t sz;
  long n;
  int rc;

  if (!strcmp(key, "listen")) {
    const char *colon = strrchr(value, ':');
    if (colon == NULL || colon == value || (size_t)(colon - value) >= sizeof c->listen_host)
      return bad(err, errlen, key, value, "expected HOST:PORT");
    if (parse_int(colon + 1, 1, 65535, &n) != 0)
      return bad(err, errlen, key, value, "port must be 1..65535");
    memcpy(c->listen_host, value, (size_t)(colon - value));
    c->listen_host[colon - value] = '\0';
    c->listen_port = (int)n;
  } else if (!strcmp(key, "data_dir")) {
    if (*value == '\0' || strlen(value) >= sizeof c->data_dir - 64)
      return bad(err, errlen, key, value, "expected a directory path of at most 440 bytes");
    snprintf(c->data_dir, sizeof c->data_dir, "%s", value);
  } else if (!strcmp(key, "cache_size")) {
    if ((rc = size_in(key, value, 1u << 20, 1ull << 40, &sz, err, errlen))) return rc;
    c->cache_bytes = (size_t)sz;
  } else if (!strcmp(key, "write_buffer_size")) {
    if ((rc = size_in(key, value, 1u << 20, 4ull << 30, &sz, err, errlen))) return rc;
    c->write_buffer_bytes = (size_t)sz;
  } else if (!strcmp(key, "sync_writes")) {
    if (parse_bool(value, &c->sync_writes)) return bad(err, errlen, key, value, "expected true or false");
  } else if (!strcmp(key, "max_frame_size")) {
    if ((rc = size_in(key, value, 2u << 20, 64u << 20, &sz, err, errlen))) return rc;
    c->max_frame_bytes = (uint32_t)sz;
  } else if (!strcmp(key, "max_connections")) {
    if (parse_int(value, 1, 1000000, &n)) return bad(err, errlen, key, value, "expected 1..1000000");
    c->max_connections = (int)n;
  } else if (!strcmp(key, "max_connection_output")) {
    if ((rc = size_in(key, value, 1u << 20, 4ull << 30, &sz, err, errlen))) return rc;
    c->max_output_bytes = (size_t)sz;
  } else if (!strcmp(key, "max_inflight_per_connection")) {
    if (parse_int(value, 1, 65536, &n)) return bad(err, errlen, key, value, "expected 1..65536");
    c->max_inflight = (int)n;
  } else if (!strcmp(key, "workers")) {
    if (parse_int(value, 1, 128, &n)) return bad(err, errlen, key, value, "expected 1..128");
    c->workers = (int)n;
  } else if (!strcmp(key, "repair_stream_throughput")) {
    if ((rc = size_in(key, value, 64u << 10, 4ull << 30, &sz, err, errlen))) return rc;
    c->repair_bytes_per_s = sz;
  } else if (!strcmp(key, "repair_scan_throughput")) {
    if ((rc = size_in(key, value, 64u << 10, 4ull << 30, &sz, err, errlen))) return rc;
    c->repair_scan_bytes_per_s = sz;
  } else if (!strcmp(key, "repair_parallel_ranges")) {
    if (parse_int(value, 1, 64, &n)) return bad(err, errlen, key, value, "expected 1..64");
    c->repair_parallel = (int)n;
  } else if (!strcmp(key, "siblings_warn")) {
    if (parse_int(value, 1, 4096, &n)) return bad(err, errlen, key, value, "expected 1..4096");
    c->siblings_warn = (uint32_t)n;
  } else if (!strcmp(key, "siblings_limit")) {
    if (parse_int(value, 1, 4096, &n)) return bad(err, errlen, key, value, "expected 1..4096");
    c->siblings_limit = (uint32_t)n;
  } else if (!strcmp(key, "max_slice_rows")) {
    if (parse_int(value, 1, 100000, &n)) return bad(err, errlen, key, value, "expected 1..100000");
    c->max_slice_rows = (uint32_t)n;
  } else if (!strcmp(key, "log_level")) {
    int l = log_parse_level(value);
    if (l < 0) return bad(err, errlen, key, value, "expected debug, info, warn or error");
    c->log_level = l;
  } else if (!strcmp(key, "peer_listen")) {
    if (split_addr(value, c->peer_host, sizeof c->peer_host, &c->peer_port))
      return bad(err, errlen, key, value, "expected HOST:PORT with port 1..65535");
  } else if (!strcmp(key, "seeds")) {
    if (strlen(value) >= sizeof c->seeds) return bad(err, errlen, key, value, "too long");
    char buf[512], host[64];
    int port, nseeds = 0;
    snprintf(buf, sizeof buf, "%s", value);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      if (split_addr(t, host, sizeof host, &port))
        return bad(err, errlen, key, value, "expected HOST:PORT[,HOST:PORT...] (peer ports)");
      nseeds++;
    }
    if (nseeds > 16) return bad(err, errlen, key, value, "at most 16 seeds");
    snprintf(c->seeds, sizeof c->seeds, "%s", value);
  } else if (!strcmp(key, "cluster_name")) {
    if (check_ident(value, 63)) return bad(err, errlen, key, value, "1..63 of [A-Za-z0-9_-]");
    snprintf(c->cluster_name, sizeof c->cluster_name, "%s", value);
  } else if (!strcmp(key, "dc") || !strcmp(key, "rack")) {
    if (check_ident(value, 48)) return bad(err, errlen, key, value, "1..48 of [A-Za-z0-9_-]");
    snprintf(!strcmp(key, "dc") ? c->dc : c->rack, 49, "%s", value);
  } else if (!strcmp(key, "num_tokens")) {
    if (parse_int(value, 1, 256, &n)) return bad(err, errlen, key, value, "expected 1..256");
    c->num_tokens = (int)n;
  } else if (!strcmp(key, "phi_convict_threshold")) {
    char *end;
    double d = strtod(value, &end);
    if (*end || !(d >= 1.0 && d <= 100.0)) return bad(err, errlen, key, value, "expected 1..100");
    c->phi_threshold = d;
  } else if (!strcmp(key, "read_request_timeout") || !strcmp(key, "write_request_timeout")) {
    if (parse_int(value, 10, 600000, &n)) return bad(err, errlen, key, value, "expected 10..600000 (ms)");
    if (key[0] == 'r') c->read_timeout_ms = (int)n;
    else c->write_timeout_ms = (int)n;
  } else if (!strcmp(key, "gossip_interval")) {
    if (parse_int(value, 10, 60000, &n)) return bad(err, errlen, key, value, "expected 10..60000 (ms)");
    c->gossip_interval_ms = (int)n;
  } else if (!strcmp(key, "hinted_handoff_enabled")) {
    if (parse_bool(value, &c->hints_enabled)) return bad(err, errlen, key, value, "expected true or false");
  } else if (!strcmp(key, "max_hint_window")) {
    uint64_t ms;
    if (parse_duration_ms(value, &ms) || ms > 30ull * 86400000)
      return bad(err, errlen, key, value, "expected a duration up to 30d (e.g. 3h, 90m, 30s, 500ms)");
    c->max_hint_window_ms = ms;
  } else if (!strcmp(key, "max_hints_size_per_host")) {
    if ((rc = size_in(key, value, 64u << 10, 1ull << 40, &sz, err, errlen))) return rc;
    c->max_hints_bytes = sz;
  } else if (!strcmp(key, "hinted_handoff_throttle")) {
    if (parse_int(value, 0, 100000000, &n))
      return bad(err, errlen, key, value, "expected 0..100000000 (KiB/s; 0 = unthrottled)");
    c->hint_throttle_kib = (uint64_t)n;
  } else if (!strcmp(key, "node_name")) {
    if (strlen(value) >= sizeof c->node_name) return bad(err, errlen, key, value, "at most 63 bytes");
    snprintf(c->node_name, sizeof c->node_name, "%s", value);
  } else {
    snprintf(err, errlen, "unknown setting '%s'", key_in);
    return CELLAR_ECONFIG;
  }
  return 0;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

int config_load_file(config *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
    return CELLAR_ECONFIG;
  }
  char line[1024];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *s = trim(line);
    if (*s == '\0') continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
      rc = CELLAR_ECONFIG;
      break;
    }
    *eq = '\0';
    char msg[400];
    rc = config_set(c, trim(s), trim(eq + 1), msg, sizeof msg);
    if (rc) snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
  }
  fclose(f);
  return rc;
}

int config_parse_args(config *c, int argc, char **argv, char *err,
                      size_t errlen) {
  /* the file first, so that flags override it wherever they stand */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    if (!strncmp(argv[i], "--config=", 9)) {
      int rc = config_load_file(c, argv[i] + 9, err, errlen);
      if (rc) return rc;
    } else if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc) {
        snprintf(err, errlen, "--config needs a file");
        return CELLAR_ECONFIG;
      }
      int rc = config_load_file(c, argv[++i], err, errlen);
      if (rc) return rc;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s'", a);
      return CELLAR_ECONFIG;
    }
    char key[64];
    const char *value;
    const char *eq = strchr(a, '=');
    if (eq) {
      snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
      value = eq + 1;
    } else {
      snprintf(key, sizeof key, "%s", a + 2);
      if (i + 1 >= argc) {
        snprintf(err, errlen, "flag --%s needs a value", key);
        return CELLAR_ECONFIG;
      }
      value = argv[++i];
    }
    if (!strcmp(key, "config")) continue;
    int rc = config_set(c, key, value, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

const char *config_usage(void) {
  return
    "usage: cellard [--config FILE] [--SETTING VALUE ...]\n"
    "settings (file: 'setting = value'; flags override the file):\n"
    "  listen HOST:PORT                 client address (127.0.0.1:7400)\n"
    "  data_dir DIR                     data directory (./data)\n"
    "  cache_size SIZE                  RocksDB block cache (64MiB)\n"
    "  write_buffer_size SIZE           memtable size (32MiB)\n"
    "  sync_writes BOOL                 fsync the WAL before each ack (false)\n"
    "  max_frame_size SIZE              largest frame accepted (16MiB)\n"
    "  max_connections N                (1024)\n"
    "  max_connection_output SIZE       unsent answers before a connection is\n"
    "                                   cut (64MiB)\n"
    "  max_inflight_per_connection N    requests in work before reading pauses\n"
    "                                   (1024)\n"
    "  workers N                        storage threads (cores - 1, at least 1)\n"
    "  max_slice_rows N                 rows per slice page at most (1000)\n"
    "  siblings_warn N                  log cells written with more siblings (25)\n"
    "  siblings_limit N                 refuse writes leaving more siblings (100)\n"
    "  log_level LEVEL                  debug|info|warn|error (info)\n"
    "  node_name NAME                   name in logs (the host id)\n"
    "cluster:\n"
    "  cluster_name NAME                nodes of other clusters are ignored (cellar)\n"
    "  peer_listen HOST:PORT            node-to-node address (listen port + 1)\n"
    "  seeds HOST:PORT,...              peer addresses of seed nodes (none: alone)\n"
    "  dc NAME / rack NAME              placement of this node (dc1 / rack1)\n"
    "  num_tokens N                     virtual nodes (16)\n"
    "  phi_convict_threshold X          failure detector threshold (8)\n"
    "  gossip_interval MS               (1000)\n"
    "  hinted_handoff_enabled BOOL      keep writes for down replicas (true)\n"
    "  max_hint_window DURATION         no hints for a replica down longer (3h)\n"
    "  max_hints_size_per_host SIZE     disk for one replica's hints (1GiB)\n"
    "  hinted_handoff_throttle KIB      replay rate, KiB/s for all (1024; 0 = off)\n"
    "  read_request_timeout MS          replicas' answers to a read (5000)\n"
    "  write_request_timeout MS         replicas' acks to a write (2000)\n"
    "  repair_stream_throughput SIZE    repair streaming per second (16MiB)\n"
    "  repair_parallel_ranges N         ranges a repair compares at once (1)\n"
    "  repair_scan_throughput SIZE      repair's reads of this node's data to build\n"
    "                                   trees, per second (16MiB)\n";
}
