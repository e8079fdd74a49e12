/*
** cellar-admin: operations on a cellar node, like Cassandra's nodetool.
**
**   cellar-admin token [--hex] KEY        token of a partition key (offline)
**   cellar-admin [-h HOST:PORT] info      the node's ADMIN "info" map
**   cellar-admin [-h HOST:PORT] describe [KS]   keyspaces and tables
**   cellar-admin [-h HOST:PORT] compact | flush | snapshot NAME
**
** Options may come before or after the command; --json prints one JSON
** object on stdout instead of text. Exit status: 0 done, 1 failed (the
** message on stderr names what), 2 usage error.
**   cellar-admin [-h HOST:PORT] status [KS] | ring | getendpoints KS TABLE KEY
**   cellar-admin [-h HOST:PORT] decommission | removenode HOSTID
**   cellar-admin [-h HOST:PORT] hints
**   cellar-admin [-h HOST:PORT] repair [KS [TABLE]] [--range LO:HI] [--dc DC]
**                [--primary]
*/
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include "cellar/cellar.h"
#include "token.h"

#define DEFAULT_HOST "127.0.0.1:7400"

static void usage(FILE *f) {
  fprintf(f,
    "usage: cellar-admin [-h HOST:PORT] [--json] COMMAND [ARGS]\n"
    "commands:\n"
    "  token [--hex] KEY   Murmur3 token of a partition key (no node needed;\n"
    "                      --hex: KEY is given in hexadecimal)\n"
    "  info                node information\n"
    "  metrics             the node's counters (hints, repair, versions)\n"
    "  describe [KS]       keyspaces and tables (all, or keyspace KS)\n"
    "  compact             compact the node's storage\n"
    "  flush               flush memtables to disk\n"
    "  snapshot NAME       take a snapshot (RocksDB checkpoint) named NAME\n"
    "  hints               hints this node holds for other nodes: per target,\n"
    "                      count, bytes, age of the oldest, replay state\n"
    "  status [KS]         members per datacenter, like nodetool status\n"
    "                      (ownership effective for keyspace KS when given)\n"
    "  ring                every token of the ring and its owner\n"
    "  getendpoints KS TABLE KEY   the replicas of a partition key\n"
    "  decommission        stream this node's ranges to their new owners, then\n"
    "                      the node leaves the cluster and exits\n"
    "  removenode HOSTID   remove a dead member: its ranges are copied from\n"
    "                      surviving replicas to their new owners\n"
    "  repair [KS [TABLE]] [--range LO:HI] [--dc DC] [--primary]\n"
    "                      anti-entropy repair coordinated by this node: compare\n"
    "                      replicas with Merkle trees, stream the differences\n"
    "                      (tokens LO..HI only; replicas in DC only; only the\n"
    "                      ranges this node owns as primary)\n"
    "options:\n"
    "  -h, --host HOST:PORT  node to talk to (default " DEFAULT_HOST ")\n"
    "  --timeout MS          request timeout (default 60000)\n"
    "  --json                machine-readable output\n"
    "  --help                this text\n");
}

static void usage_error(const char *fmt, const char *arg) {
  fputs("cellar-admin: ", stderr);
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  usage(stderr);
  exit(2);
}

/* ------------------------------------------------------------ output */

static void json_bytes(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch (ch) {
      case '"': fputs("\\\"", stdout); break;
      case '\\': fputs("\\\\", stdout); break;
      case '\n': fputs("\\n", stdout); break;
      case '\t': fputs("\\t", stdout); break;
      case '\r': fputs("\\r", stdout); break;
      default:
        if (ch < 0x20 || ch == 0x7f) printf("\\u%04x", ch);
        else putchar(ch);   /* UTF-8 passes through */
    }
  }
  putchar('"');
}

static void json_string(const char *s) {
  json_bytes(s ? s : "", s ? strlen(s) : 0);
}

/* ------------------------------------------------------------- token */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int cmd_token(const char *key, int hex, int json) {
  size_t n = strlen(key);
  uint8_t *buf = malloc(n / 2 + 1);
  const void *bytes = key;
  size_t len = n;
  if (buf == NULL) {
    fprintf(stderr, "cellar-admin: out of memory\n");
    return 1;
  }
  if (hex) {
    const char *h = key;
    if (h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) h += 2;
    size_t hn = strlen(h);
    if (hn % 2) {
      fprintf(stderr, "cellar-admin: token: hex key '%s' has an odd number "
              "of digits\n", key);
      free(buf);
      return 2;
    }
    for (size_t i = 0; i < hn / 2; i++) {
      int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        fprintf(stderr, "cellar-admin: token: '%s' is not hexadecimal\n", key);
        free(buf);
        return 2;
      }
      buf[i] = (uint8_t)(hi << 4 | lo);
    }
    bytes = buf;
    len = hn / 2;
  }
  int64_t t = token_of(bytes, len);
  if (json) {
    printf("{\"key\":");
    json_string(key);
    printf(",\"hex\":%s,\"bytes\":%zu,\"token\":%" PRId64 "}\n",
           hex ? "true" : "false", len, t);
  } else {
    printf("%" PRId64 "\n", t);
  }
  free(buf);
  return 0;
}

/* ------------------------------------------------------------ connect */

/*
** libcellar says only that it could not connect; a plain TCP connect to the
** first host tells the user why (refused, unreachable, timed out, unknown
** host), which is what they need to act.
*/
static void connect_reason(const char *hostport, char *out, size_t outlen) {
  char host[256];
  const char *colon = strrchr(hostport, ':');
  snprintf(out, outlen, "no reason known");
  if (colon == NULL || (size_t)(colon - hostport) >= sizeof host) {
    snprintf(out, outlen, "'%s' is not HOST:PORT", hostport);
    return;
  }
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  int gai = getaddrinfo(host, colon + 1, &hints, &ai);
  if (gai != 0) {
    snprintf(out, outlen, "%s", gai_strerror(gai));
    return;
  }
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK,
                  ai->ai_protocol);
  if (fd < 0) {
    snprintf(out, outlen, "%s", strerror(errno));
    freeaddrinfo(ai);
    return;
  }
  int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
  int err = rc == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 2000) <= 0) {
      err = ETIMEDOUT;
    } else {
      socklen_t sl = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
    }
  }
  if (err) snprintf(out, outlen, "%s", strerror(err));
  else snprintf(out, outlen, "TCP connects, but the cellar handshake failed");
  close(fd);
  freeaddrinfo(ai);
}

static cellar_client_t *connect_or_die(const char *host, int timeout_ms) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = host;
  o.request_timeout_ms = timeout_ms;
  cellar_client_t *c = NULL;
  int rc = cellar_connect(&o, &c);
  if (rc != 0) {
    char why[256];
    if (rc == CELLAR_ECONNECT || rc == CELLAR_ETIMEDOUT)
      connect_reason(host, why, sizeof why);
    else
      snprintf(why, sizeof why, "%s (%s)", cellar_strerror(rc),
               cellar_err_name(rc));
    fprintf(stderr, "cellar-admin: cannot connect to %s: %s\n", host, why);
    exit(1);
  }
  return c;
}

/* Reports a failed request; returns the exit status 1. */
static int failed(const char *what, const char *host, int rc,
                  cellar_result_t *res) {
  const char *msg = res ? cellar_result_message(res) : "";
  fprintf(stderr, "cellar-admin: %s on %s failed: %s: %s\n", what, host,
          cellar_err_name(rc), *msg ? msg : cellar_strerror(rc));
  return 1;
}

/* --------------------------------------------------------- commands */

static void print_info(cellar_result_t *res, int json, const char *command,
                       const char *host) {
  size_t n = cellar_result_info_count(res);
  if (json) {
    printf("{\"node\":");
    json_string(host);
    printf(",\"command\":");
    json_string(command);
    printf(",\"ok\":true,\"info\":{");
    for (size_t i = 0; i < n; i++) {
      if (i) putchar(',');
      json_string(cellar_result_info_key(res, i));
      putchar(':');
      json_string(cellar_result_info_value(res, i));
    }
    printf("}}\n");
    return;
  }
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(cellar_result_info_key(res, i));
    if (l > w) w = l;
  }
  for (size_t i = 0; i < n; i++)
    printf("%-*s : %s\n", (int)w, cellar_result_info_key(res, i),
           cellar_result_info_value(res, i));
}

static int cmd_admin(cellar_client_t *c, const char *host, const char *command,
                     const char *arg, int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_admin(c, command, arg, &res);
  if (rc != 0) {
    int st = failed(command, host, rc, res);
    cellar_result_free(res);
    return st;
  }
  if (!json && strcmp(command, "info") != 0 && strcmp(command, "metrics") != 0 &&
      cellar_result_info_count(res) == 0) {
    printf("%s: done\n", command);
  } else {
    print_info(res, json, command, host);
  }
  cellar_result_free(res);
  return 0;
}

/* ------------------------------------------- decommission, removenode */

static const char *info_get(cellar_result_t *res, const char *key) {
  for (size_t i = 0; i < cellar_result_info_count(res); i++)
    if (!strcmp(cellar_result_info_key(res, i), key)) return cellar_result_info_value(res, i);
  return "";
}

static void json_failure(const char *host, const char *command, int rc, const char *msg) {
  printf("{\"node\":");
  json_string(host);
  printf(",\"command\":");
  json_string(command);
  printf(",\"ok\":false,\"error\":");
  json_string(cellar_err_name(rc));
  printf(",\"message\":");
  json_string(msg);
  printf("}\n");
}

/*
** Starts the operation, then polls the node's "operation" state every
** 250 ms, printing progress (text mode) until it is done or failed.
*/
static int cmd_lifecycle(cellar_client_t *c, const char *host, const char *command,
                         const char *hostid, int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_admin(c, command, hostid, &res);
  if (rc != 0) {
    int st = failed(command, host, rc, res);
    if (json) json_failure(host, command, rc, res ? cellar_result_message(res) : "");
    cellar_result_free(res);
    return st;
  }
  if (!json) {
    printf("%s: %s ranges to stream to %s nodes%s\n", command, info_get(res, "ranges"),
           info_get(res, "nodes"),
           strcmp(command, "decommission") ? "" : " (announcing \"leaving\" first)");
    fflush(stdout);
  }
  char last[64] = "";
  for (;;) {
    cellar_result_free(res);
    res = NULL;
    usleep(250000);
    rc = cellar_admin(c, "operation", NULL, &res);
    if (rc != 0) {
      int st = failed(command, host, rc, res);
      fprintf(stderr, "cellar-admin: lost track of the %s on %s; check its state with "
              "'cellar-admin status'\n", command, host);
      if (json) json_failure(host, command, rc, "lost track of the operation");
      cellar_result_free(res);
      return st;
    }
    const char *state = info_get(res, "state");
    char now[64];
    snprintf(now, sizeof now, "%s %s", state, info_get(res, "nodes_done"));
    if (!json && strcmp(now, last)) {
      printf("%s: %s, %s of %s nodes done, %s entries\n", command, state,
             info_get(res, "nodes_done"), info_get(res, "nodes"), info_get(res, "entries"));
      fflush(stdout);
      snprintf(last, sizeof last, "%s", now);
    }
    if (!strcmp(state, "done") || !strcmp(state, "failed")) break;
    if (!strcmp(state, "") || !strcmp(info_get(res, "operation"), "none")) {
      fprintf(stderr, "cellar-admin: %s on %s: the node forgot the operation (restarted?)\n",
              command, host);
      cellar_result_free(res);
      return 1;
    }
  }
  int ok = !strcmp(info_get(res, "state"), "done");
  if (ok) {
    print_info(res, json, command, host);
    if (!json) printf("%s: done\n", command);
  } else {
    fprintf(stderr, "cellar-admin: %s on %s failed: %s\n", command, host, info_get(res, "error"));
    if (json) json_failure(host, command, CELLAR_EIO, info_get(res, "error"));
  }
  cellar_result_free(res);
  return ok ? 0 : 1;
}

/* -------------------------------------------------------------- repair */

/* Starts a repair, polls "repair_status" every 500 ms printing progress
** (text mode) until it is done or failed, then prints the summary. */
static int cmd_repair(cellar_client_t *c, const char *host, const char *args, int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_admin(c, "repair", args, &res);
  if (rc != 0) {
    int st = failed("repair", host, rc, res);
    if (json) json_failure(host, "repair", rc, res ? cellar_result_message(res) : "");
    cellar_result_free(res);
    return st;
  }
  if (!json) {
    printf("repair: %s, %s ranges\n", info_get(res, "scope"), info_get(res, "ranges"));
    fflush(stdout);
  }
  char last[64] = "";
  for (;;) {
    cellar_result_free(res);
    res = NULL;
    rc = cellar_admin(c, "repair_status", NULL, &res);
    if (rc != 0) {
      int st = failed("repair", host, rc, res);
      if (json) json_failure(host, "repair", rc, "lost track of the repair");
      cellar_result_free(res);
      return st;
    }
    const char *state = info_get(res, "repair");
    if (!strcmp(state, "none")) {
      fprintf(stderr, "cellar-admin: repair on %s: the node forgot the repair (restarted?)\n",
              host);
      cellar_result_free(res);
      return 1;
    }
    if (!json && strcmp(info_get(res, "ranges_done"), last)) {
      printf("repair: %s of %s ranges, %s mismatches, %s rows streamed\n",
             info_get(res, "ranges_done"), info_get(res, "ranges"), info_get(res, "mismatches"),
             info_get(res, "rows_streamed"));
      fflush(stdout);
      snprintf(last, sizeof last, "%s", info_get(res, "ranges_done"));
    }
    if (strcmp(state, "running")) break;
    usleep(500000);
  }
  int ok = !strcmp(info_get(res, "repair"), "done");
  if (json) {
    print_info(res, json, "repair", host);
  } else {
    printf("repair: %s: %s ranges compared, %s failed, %s mismatching leaves, %s partitions "
           "differing, %s rows and %s bytes streamed (%s entries applied) in %.1f s\n",
           ok ? "done" : "FAILED", info_get(res, "ranges_compared"),
           info_get(res, "ranges_failed"), info_get(res, "mismatches"),
           info_get(res, "partitions_differing"), info_get(res, "rows_streamed"),
           info_get(res, "bytes_streamed"), info_get(res, "entries_applied"),
           strtod(info_get(res, "elapsed_ms"), NULL) / 1000.0);
    if (!ok) fprintf(stderr, "cellar-admin: repair on %s: %s\n", host, info_get(res, "error"));
  }
  cellar_result_free(res);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------- cluster views */

static void human_bytes(uint64_t b, char *out, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  snprintf(out, n, i ? "%.2f %s" : "%.0f %s", v, u[i]);
}

static char state_letter(const char *status) {
  /* a node shut down cleanly still owns its ranges: DN, as nodetool */
  if (!strcmp(status, "normal") || !strcmp(status, "shutdown")) return 'N';
  if (!strcmp(status, "joining")) return 'J';
  if (!strcmp(status, "leaving")) return 'L';
  if (!strcmp(status, "moving")) return 'M';
  return '?';
}

static int member_cmp(const void *a, const void *b) {
  const cellar_member_t *x = a, *y = b;
  int c = strcmp(x->datacenter, y->datacenter);
  return c ? c : strcmp(x->address, y->address);
}

/* Hints the answering node holds for member host_id ("hints.<host id>" of
** an ADMIN status answer), 0 when none. */
static unsigned long long member_hints(cellar_result_t *res, const char *host_id) {
  char key[64];
  snprintf(key, sizeof key, "hints.%s", host_id);
  return res ? strtoull(info_get(res, key), NULL, 10) : 0;
}

static void print_members_json(const cellar_member_t *m, size_t n, cellar_result_t *res) {
  printf("[");
  for (size_t i = 0; i < n; i++) {
    printf("%s{\"host_id\":", i ? "," : "");
    json_string(m[i].host_id);
    printf(",\"address\":");
    json_string(m[i].address);
    printf(",\"peer_address\":");
    json_string(m[i].peer_address);
    printf(",\"datacenter\":");
    json_string(m[i].datacenter);
    printf(",\"rack\":");
    json_string(m[i].rack);
    printf(",\"status\":");
    json_string(m[i].status);
    printf(",\"up\":%s,\"load\":%llu,\"tokens\":%u,\"owns\":%.6f,"
           "\"generation\":%llu,\"phi\":%.3f,\"schema\":",
           m[i].up ? "true" : "false", (unsigned long long)m[i].load, m[i].tokens,
           m[i].owns, (unsigned long long)m[i].generation, m[i].phi);
    json_string(m[i].schema);
    if (res) printf(",\"hints\":%llu", member_hints(res, m[i].host_id));
    printf("}");
  }
  printf("]");
}

static int cmd_members(cellar_client_t *c, const char *host, const char *command,
                       const char *arg, const char *ks, int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_admin(c, command, arg, &res);
  if (rc != 0) {
    int st = failed(command, host, rc, res);
    cellar_result_free(res);
    return st;
  }
  size_t n = cellar_result_member_count(res);
  cellar_member_t *m = calloc(n + 1, sizeof *m);
  for (size_t i = 0; i < n; i++) cellar_result_member(res, i, &m[i]);
  if (!strcmp(command, "status")) qsort(m, n, sizeof *m, member_cmp);
  if (json) {
    printf("{\"node\":");
    json_string(host);
    printf(",\"command\":");
    json_string(command);
    if (ks) {
      printf(",\"keyspace\":");
      json_string(ks);
    }
    printf(",\"members\":");
    print_members_json(m, n, strcmp(command, "status") ? NULL : res);
    printf("}\n");
  } else if (!strcmp(command, "getendpoints")) {
    for (size_t i = 0; i < n; i++) printf("%s\n", m[i].address);
  } else {
    for (size_t i = 0; i < n; i++) {
      if (i == 0 || strcmp(m[i].datacenter, m[i - 1].datacenter)) {
        size_t l = strlen(m[i].datacenter) + 12;
        printf("%sDatacenter: %s\n", i ? "\n" : "", m[i].datacenter);
        for (size_t k = 0; k < l; k++) putchar('=');
        printf("\nStatus=Up/Down\n|/ State=Normal/Leaving/Joining/Moving\n");
        printf("--  %-21s  %-10s  %-6s  %-16s  %-36s  %-8s  %s\n", "Address", "Load", "Tokens",
               ks ? "Owns (effective)" : "Owns", "Host ID", "Rack", "Hints");
      }
      char load[32];
      human_bytes(m[i].load, load, sizeof load);
      char owns[16];
      snprintf(owns, sizeof owns, "%.1f%%", m[i].owns * 100);
      /* Hints: how many this node holds for the member (cellar-admin hints) */
      printf("%c%c  %-21s  %-10s  %-6u  %-16s  %-36s  %-8s  %llu\n", m[i].up ? 'U' : 'D',
             state_letter(m[i].status), m[i].address, load, m[i].tokens, owns,
             m[i].host_id, m[i].rack, member_hints(res, m[i].host_id));
    }
  }
  free(m);
  cellar_result_free(res);
  return 0;
}

/* ---------------------------------------------------------------- hints */

/* "hints": the ADMIN answer's "hints.<host id>" pairs, whose values are
** "count bytes oldest_age_s state replayed expired failures". */
static int cmd_hints(cellar_client_t *c, const char *host, int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_admin(c, "hints", NULL, &res);
  if (rc != 0) {
    int st = failed("hints", host, rc, res);
    if (json) json_failure(host, "hints", rc, res ? cellar_result_message(res) : "");
    cellar_result_free(res);
    return st;
  }
  if (json) {
    printf("{\"node\":");
    json_string(host);
    printf(",\"command\":\"hints\",\"total\":%s,\"throttle_kib\":%s,\"targets\":[",
           *info_get(res, "hints.total") ? info_get(res, "hints.total") : "0",
           *info_get(res, "hints.throttle_kib") ? info_get(res, "hints.throttle_kib") : "0");
  } else {
    printf("hints pending: %s, for %s nodes (replay throttle %s KiB/s)\n",
           info_get(res, "hints.total"), info_get(res, "hints.targets"),
           info_get(res, "hints.throttle_kib"));
  }
  int first = 1;
  for (size_t i = 0; i < cellar_result_info_count(res); i++) {
    const char *k = cellar_result_info_key(res, i);
    if (strncmp(k, "hints.", 6) || !strcmp(k, "hints.total") || !strcmp(k, "hints.targets") ||
        !strcmp(k, "hints.throttle_kib"))
      continue;
    unsigned long long count = 0, bytes = 0, replayed = 0, expired = 0, failures = 0;
    long long oldest = -1;
    char state[24] = "?";
    sscanf(cellar_result_info_value(res, i), "%llu %llu %lld %23s %llu %llu %llu", &count, &bytes,
           &oldest, state, &replayed, &expired, &failures);
    if (json) {
      printf("%s{\"host_id\":", first ? "" : ",");
      json_string(k + 6);
      printf(",\"hints\":%llu,\"bytes\":%llu,\"oldest_age_s\":%lld,\"state\":", count, bytes,
             oldest);
      json_string(state);
      printf(",\"replayed\":%llu,\"expired\":%llu,\"failures\":%llu}", replayed, expired,
             failures);
    } else {
      if (first)
        printf("%-36s  %10s  %10s  %10s  %-9s  %10s  %8s  %8s\n", "Target host id", "Hints",
               "Bytes", "Oldest (s)", "State", "Replayed", "Expired", "Failures");
      char hb[32];
      human_bytes(bytes, hb, sizeof hb);
      printf("%-36s  %10llu  %10s  %10lld  %-9s  %10llu  %8llu  %8llu\n", k + 6, count, hb, oldest,
             state, replayed, expired, failures);
    }
    first = 0;
  }
  if (json) printf("]}\n");
  cellar_result_free(res);
  return 0;
}

typedef struct ring_line {
  long long token;
  const char *value;
} ring_line;

static int ring_cmp(const void *a, const void *b) {
  long long x = ((const ring_line *)a)->token, y = ((const ring_line *)b)->token;
  return (x > y) - (x < y);
}

static int cmd_ring(cellar_client_t *c, const char *host, int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_admin(c, "ring", NULL, &res);
  if (rc != 0) {
    int st = failed("ring", host, rc, res);
    cellar_result_free(res);
    return st;
  }
  size_t n = cellar_result_info_count(res);
  ring_line *l = calloc(n + 1, sizeof *l);
  for (size_t i = 0; i < n; i++) {
    l[i].token = strtoll(cellar_result_info_key(res, i), NULL, 10);
    l[i].value = cellar_result_info_value(res, i);
  }
  qsort(l, n, sizeof *l, ring_cmp);
  if (json) printf("{\"node\":\"%s\",\"command\":\"ring\",\"tokens\":[", host);
  else printf("%-21s  %-8s  %-8s  %-6s  %-36s  %s\n", "Address", "DC", "Rack", "Status",
              "Host ID", "Token");
  for (size_t i = 0; i < n; i++) {
    char hid[64] = "", addr[80] = "", dc[64] = "", rack[64] = "", st[16] = "";
    sscanf(l[i].value, "%63s %79s %63s %63s %15s", hid, addr, dc, rack, st);
    if (json) {
      printf("%s{\"token\":\"%lld\",\"host_id\":", i ? "," : "", l[i].token);
      json_string(hid);
      printf(",\"address\":");
      json_string(addr);
      printf(",\"datacenter\":");
      json_string(dc);
      printf(",\"rack\":");
      json_string(rack);
      printf(",\"up\":%s}", strcmp(st, "up") ? "false" : "true");
    } else {
      printf("%-21s  %-8s  %-8s  %-6s  %-36s  %lld\n", addr, dc, rack, st, hid, l[i].token);
    }
  }
  if (json) printf("]}\n");
  free(l);
  cellar_result_free(res);
  return 0;
}

static void ttl_text(uint32_t s, char *out, size_t n) {
  if (s == 0) snprintf(out, n, "none");
  else snprintf(out, n, "%" PRIu32 "s", s);
}

static int cmd_describe(cellar_client_t *c, const char *host, const char *ks,
                        int json) {
  cellar_result_t *res = NULL;
  int rc = cellar_describe(c, ks, &res);
  if (rc != 0) {
    char what[128];
    snprintf(what, sizeof what, ks ? "describe %s" : "describe", ks);
    int st = failed(what, host, rc, res);
    cellar_result_free(res);
    return st;
  }
  size_t nks = cellar_result_keyspace_count(res);
  size_t nt = cellar_result_table_count(res);
  if (json) {
    printf("{\"node\":");
    json_string(host);
    printf(",\"keyspaces\":[");
    for (size_t i = 0; i < nks; i++) {
      const char *name = cellar_result_keyspace_name(res, i);
      printf("%s{\"name\":", i ? "," : "");
      json_string(name);
      printf(",\"replication\":");
      json_string(cellar_result_keyspace_replication(res, i));
      printf(",\"tables\":[");
      int first = 1;
      for (size_t j = 0; j < nt; j++) {
        if (strcmp(cellar_result_table_keyspace(res, j), name) != 0) continue;
        printf("%s{\"name\":", first ? "" : ",");
        json_string(cellar_result_table_name(res, j));
        printf(",\"conflict_policy\":");
        json_string(cellar_result_table_policy(res, j));
        printf(",\"gc_grace_seconds\":%" PRIu32 ",\"default_ttl\":%" PRIu32
               "}",
               cellar_result_table_gc_grace(res, j),
               cellar_result_table_default_ttl(res, j));
        first = 0;
      }
      printf("]}");
    }
    printf("]}\n");
    cellar_result_free(res);
    return 0;
  }
  if (nks == 0) printf(ks ? "no keyspace %s\n" : "no keyspaces\n", ks);
  for (size_t i = 0; i < nks; i++) {
    const char *name = cellar_result_keyspace_name(res, i);
    printf("%skeyspace %s  replication %s\n", i ? "\n" : "", name,
           cellar_result_keyspace_replication(res, i));
    for (size_t j = 0; j < nt; j++) {
      if (strcmp(cellar_result_table_keyspace(res, j), name) != 0) continue;
      char ttl[32];
      ttl_text(cellar_result_table_default_ttl(res, j), ttl, sizeof ttl);
      printf("  table %-24s conflict_policy %-8s gc_grace %" PRIu32
             "s  default_ttl %s\n",
             cellar_result_table_name(res, j),
             cellar_result_table_policy(res, j),
             cellar_result_table_gc_grace(res, j), ttl);
    }
  }
  cellar_result_free(res);
  return 0;
}

/* --------------------------------------------------------------- main */

int main(int argc, char **argv) {
  enum { O_JSON = 256, O_HEX, O_TIMEOUT, O_HELP, O_RANGE, O_DC, O_PRIMARY };
  static const struct option longopts[] = {
    {"host", required_argument, NULL, 'h'},
    {"json", no_argument, NULL, O_JSON},
    {"hex", no_argument, NULL, O_HEX},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"help", no_argument, NULL, O_HELP},
    {"range", required_argument, NULL, O_RANGE},
    {"dc", required_argument, NULL, O_DC},
    {"primary", no_argument, NULL, O_PRIMARY},
    {NULL, 0, NULL, 0}
  };
  const char *host = DEFAULT_HOST;
  int json = 0, hex = 0, timeout_ms = 60000, primary = 0;
  const char *range = NULL, *dc = NULL;
  const char *pos[8];
  int npos = 0;
  int c;
  /* '-' in optstring: positionals come back in order as 1, so options may
  ** follow the command; "--" ends options (a token KEY may start with '-') */
  while ((c = getopt_long(argc, argv, "-h:", longopts, NULL)) != -1) {
    switch (c) {
      case 'h': host = optarg; break;
      case O_JSON: json = 1; break;
      case O_HEX: hex = 1; break;
      case O_TIMEOUT: {
        char *end;
        long v = strtol(optarg, &end, 10);
        if (*optarg == '\0' || *end || v < 1 || v > 3600000)
          usage_error("--timeout: '%s' is not a number of milliseconds "
                      "(1..3600000)", optarg);
        timeout_ms = (int)v;
        break;
      }
      case O_HELP: usage(stdout); return 0;
      case O_RANGE: range = optarg; break;
      case O_DC: dc = optarg; break;
      case O_PRIMARY: primary = 1; break;
      case 1:
        if (npos == (int)(sizeof pos / sizeof pos[0]))
          usage_error("too many arguments (at '%s')", optarg);
        pos[npos++] = optarg;
        break;
      default: usage(stderr); return 2;
    }
  }
  for (; optind < argc; optind++) {      /* after "--" */
    if (npos == (int)(sizeof pos / sizeof pos[0]))
      usage_error("too many arguments (at '%s')", argv[optind]);
    pos[npos++] = argv[optind];
  }
  if (npos == 0) {
    usage(stderr);
    return 2;
  }
  const char *cmd = pos[0];

  if (!strcmp(cmd, "token")) {
    if (npos != 2) usage_error("%s: expects one KEY", cmd);
    return cmd_token(pos[1], hex, json);
  }
  if (hex) usage_error("--hex is only for the token command%s", "");
  if ((range || dc || primary) && strcmp(cmd, "repair"))
    usage_error("--range, --dc and --primary are only for the repair command%s", "");

  if (!strcmp(cmd, "repair")) {
    if (npos > 3) usage_error("%s: expects at most KEYSPACE TABLE", cmd);
    if ((range && strchr(range, ' ')) || (dc && strchr(dc, ' ')))
      usage_error("%s: a range or datacenter has no spaces", cmd);
    char arg[512];
    snprintf(arg, sizeof arg, "%s %s%s%s%s%s%s", npos > 1 ? pos[1] : "", npos > 2 ? pos[2] : "",
             range ? " --range " : "", range ? range : "", dc ? " --dc " : "", dc ? dc : "",
             primary ? " --primary" : "");
    cellar_client_t *cl = connect_or_die(host, timeout_ms);
    int st = cmd_repair(cl, host, arg, json);
    cellar_close(cl);
    return st;
  }

  if (!strcmp(cmd, "status") || !strcmp(cmd, "ring") || !strcmp(cmd, "getendpoints")) {
    char arg[512] = "";
    const char *ks = NULL;
    if (!strcmp(cmd, "status")) {
      if (npos > 2) usage_error("%s: expects at most one keyspace", cmd);
      if (npos == 2) {
        ks = pos[1];
        snprintf(arg, sizeof arg, "%s", ks);
      }
    } else if (!strcmp(cmd, "getendpoints")) {
      if (npos != 4) usage_error("%s: expects KEYSPACE TABLE KEY", cmd);
      ks = pos[1];
      snprintf(arg, sizeof arg, "%s %s %s", pos[1], pos[2], pos[3]);
    } else if (npos != 1) {
      usage_error("%s: takes no arguments", cmd);
    }
    cellar_client_t *cl = connect_or_die(host, timeout_ms);
    int st = !strcmp(cmd, "ring") ? cmd_ring(cl, host, json)
                                  : cmd_members(cl, host, cmd, arg, ks, json);
    cellar_close(cl);
    return st;
  }

  if (!strcmp(cmd, "decommission") || !strcmp(cmd, "removenode")) {
    int rm = !strcmp(cmd, "removenode");
    if (rm && npos != 2) usage_error("%s: expects the HOSTID of a dead member", cmd);
    if (!rm && npos != 1) usage_error("%s: takes no arguments", cmd);
    cellar_client_t *cl = connect_or_die(host, timeout_ms);
    int st = cmd_lifecycle(cl, host, cmd, rm ? pos[1] : NULL, json);
    cellar_close(cl);
    return st;
  }

  if (!strcmp(cmd, "hints")) {
    if (npos != 1) usage_error("%s: takes no arguments", cmd);
    cellar_client_t *cl = connect_or_die(host, timeout_ms);
    int st = cmd_hints(cl, host, json);
    cellar_close(cl);
    return st;
  }

  int is_admin = !strcmp(cmd, "info") || !strcmp(cmd, "metrics") ||
                 !strcmp(cmd, "compact") ||
                 !strcmp(cmd, "flush") || !strcmp(cmd, "snapshot");
  if (!is_admin && strcmp(cmd, "describe") != 0)
    usage_error("unknown command '%s'", cmd);
  if (!strcmp(cmd, "snapshot") && npos != 2)
    usage_error("%s: expects a snapshot NAME", cmd);
  if (!strcmp(cmd, "describe") && npos > 2)
    usage_error("%s: expects at most one keyspace", cmd);
  if (strcmp(cmd, "snapshot") != 0 && strcmp(cmd, "describe") != 0 &&
      npos != 1)
    usage_error("%s: takes no arguments", cmd);

  cellar_client_t *cl = connect_or_die(host, timeout_ms);
  int st;
  if (is_admin)
    st = cmd_admin(cl, host, cmd, npos > 1 ? pos[1] : NULL, json);
  else
    st = cmd_describe(cl, host, npos > 1 ? pos[1] : NULL, json);
  cellar_close(cl);
  return st;
}
