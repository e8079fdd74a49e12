/*
** cellar-cli: the data shell. One-shot commands (`cellar-cli put ks.t pk
** ck a=1`) or, with no command, an interactive shell taking the same
** commands one per line (readline and history when built with it).
**
** Keys and values are text, or hex with a 0x prefix. Output is one row per
** line, `ck  col=value col=value`; a byte string is printed as text when
** every byte is printable, quoted when it holds a space, a quote, a
** backslash or '=', and as 0x... hex otherwise (or when the text itself
** starts with 0x), so any printed key can be typed back.
**
** Siblings tables (docs/versions.md): a cell written concurrently prints
** as `col=[v1 | v2 | <deleted @ts>] (3 siblings)` and its row is followed
** by `  context: 0x...` (every row with get --context); `put ... --context
** 0x...` writes with it (replacing exactly those versions), `put ...
** --resolve` reads the row again and writes with its context.
**
** Exit codes: 0 success, 1 server or client error (`error: CELLAR_X:
** message` on stderr), 2 usage error.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cellar/cellar.h"
#ifdef HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

/* ------------------------------------------------------------ settings */

static const char *g_hosts;
static cellar_consistency_t g_cl = CELLAR_CL_DEFAULT;
static int g_timeout_ms = 10000;
static int g_shell;            /* running the shell: print row counts */
static cellar_client_t *g_client;

static const char usage_text[] =
    "usage: cellar-cli [-h host:port[,...]] [--consistency LEVEL] [--timeout MS]\n"
    "                  [COMMAND [ARGS...]]\n"
    "\n"
    "With no command (or `shell`), reads commands from an interactive shell.\n"
    "Keys and values are text, or hex with a 0x prefix (0x00ff).\n"
    "\n"
    "Commands:\n"
    "  put KS.TABLE PK [CK] col=value ... [--ttl S] [--timestamp US]\n"
    "                    [--context 0xHEX | --resolve]\n"
    "  get KS.TABLE PK [CK] [col ...] [--context]\n"
    "  slice KS.TABLE PK [col ...] [--start CK] [--end CK] [--limit N]\n"
    "                    [--cursor HEX] [--all]\n"
    "  delete KS.TABLE PK [CK [col ...]] [--timestamp US] [--context 0xHEX]\n"
    "  create-keyspace KS [SPEC] [--if-not-exists]\n"
    "        SPEC: SimpleStrategy:RF (default SimpleStrategy:1) or\n"
    "              NetworkTopologyStrategy:DC=RF[,DC=RF...]\n"
    "  drop-keyspace KS [--if-exists]\n"
    "  create-table KS.TABLE [--policy siblings|lww] [--gc-grace S] [--ttl S]\n"
    "                        [--if-not-exists]\n"
    "  drop-table KS.TABLE [--if-exists]\n"
    "  describe [KS]\n"
    "  ping\n"
    "  info\n"
    "  admin COMMAND [ARG]      compact, flush, snapshot NAME, info\n"
    "\n"
    "Options:\n"
    "  -h, --hosts H:P[,...]    nodes to connect to ($CELLAR_HOSTS, else\n"
    "                           127.0.0.1:7400)\n"
    "  --consistency LEVEL      ONE TWO THREE QUORUM ALL LOCAL_ONE\n"
    "                           LOCAL_QUORUM EACH_QUORUM ANY (default ONE)\n"
    "  --timeout MS             request timeout (default 10000, 0 = none)\n"
    "  --help                   this text\n"
    "\n"
    "Shell only: help, consistency [LEVEL], quit.\n"
    "Exit status: 0 success, 1 error (printed as `error: CODE: message`),\n"
    "2 usage error.\n";

/* ------------------------------------------------------------- helpers */

/* Allocations of one command, freed together when it ends. */
typedef struct scratch {
  void **p;
  size_t n, cap;
} scratch;

static void *scratch_keep(scratch *s, void *p) {
  if (p == NULL) return NULL;
  if (s->n == s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : 16;
    void **np = realloc(s->p, ncap * sizeof *np);
    if (np == NULL) {
      fprintf(stderr, "cellar-cli: out of memory\n");
      exit(EXIT_ERR);
    }
    s->p = np;
    s->cap = ncap;
  }
  s->p[s->n++] = p;
  return p;
}

static void scratch_free(scratch *s) {
  for (size_t i = 0; i < s->n; i++) free(s->p[i]);
  free(s->p);
  s->p = NULL;
  s->n = s->cap = 0;
}

static int usage_error(const char *cmd_usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd_usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("cellar-cli: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (cmd_usage) fprintf(stderr, "usage: %s\n", cmd_usage);
  else if (!g_shell) fputs("try: cellar-cli --help\n", stderr);
  return EXIT_USAGE;
}

static int print_error(int code, const char *message) {
  fprintf(stderr, "error: %s: %s\n", cellar_err_name(code),
          (message && *message) ? message : cellar_strerror(code));
  return EXIT_ERR;
}

static int result_error(int rc, cellar_result_t *res) {
  int code = cellar_result_code(res);
  if (code == 0) code = rc;
  print_error(code, cellar_result_message(res));
  cellar_result_free(res);
  return EXIT_ERR;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Decodes n hex digits into a malloc'd buffer. Returns NULL on bad hex. */
static uint8_t *hex_decode(const char *s, size_t n, size_t *len) {
  if (n % 2 != 0) return NULL;
  uint8_t *out = malloc(n / 2 + 1);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n; i += 2) {
    int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
    if (hi < 0 || lo < 0) {
      free(out);
      return NULL;
    }
    out[i / 2] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return out;
}

typedef struct bytes {
  const uint8_t *p;
  size_t n;
} bytes;

/* A key or value argument: text, or hex after 0x. 0 or -1 (bad hex). */
static int arg_bytes(scratch *s, const char *arg, size_t n, bytes *out) {
  if (n >= 2 && arg[0] == '0' && (arg[1] == 'x' || arg[1] == 'X')) {
    size_t len = 0;
    uint8_t *p = hex_decode(arg + 2, n - 2, &len);
    if (p == NULL) return -1;
    scratch_keep(s, p);
    out->p = p;
    out->n = len;
    return 0;
  }
  out->p = (const uint8_t *)arg;
  out->n = n;
  return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (s == NULL || *s == '\0' || *s == '-' || *s == '+') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end != '\0' || v > max) return -1;
  *out = v;
  return 0;
}

static int parse_i64(const char *s, int64_t *out) {
  if (s == NULL || *s == '\0') return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end != '\0') return -1;
  *out = v;
  return 0;
}

/* Prints a byte string as described at the top of the file. */
static void print_bytes(FILE *f, const void *vp, size_t n) {
  const uint8_t *p = vp;
  if (n == 0) {
    fputs("\"\"", f);
    return;
  }
  int hex = n >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
  int quote = 0;
  for (size_t i = 0; i < n && !hex; i++) {
    if (p[i] < 0x20 || p[i] > 0x7e) hex = 1;
    else if (p[i] == ' ' || p[i] == '"' || p[i] == '\\' || p[i] == '=' || p[i] == '\'')
      quote = 1;
  }
  if (hex) {
    fputs("0x", f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%02x", p[i]);
  } else if (quote) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
      if (p[i] == '"' || p[i] == '\\') fputc('\\', f);
      fputc(p[i], f);
    }
    fputc('"', f);
  } else {
    fwrite(p, 1, n, f);
  }
}

/* A cell written concurrently (siblings tables): every version, the
** last-write-wins one first as the server sends it. */
static void print_siblings(const cellar_result_t *res, size_t row, size_t cell,
                           size_t n) {
  fputc('[', stdout);
  for (size_t k = 0; k < n; k++) {
    const void *v;
    size_t vl;
    int64_t ts;
    int deleted;
    if (cellar_result_cell_sibling(res, row, cell, k, &v, &vl, &ts, &deleted) != 0) continue;
    if (k) fputs(" | ", stdout);
    if (deleted) printf("<deleted @%lld>", (long long)ts);
    else print_bytes(stdout, v, vl);
  }
  printf("] (%zu siblings)", n);
}

/* Rows; a row with siblings (or every row when show_context) is followed
** by its context, to give back with put/delete --context. */
static void print_rows_ctx(const cellar_result_t *res, int show_context) {
  size_t nrows = cellar_result_row_count(res);
  for (size_t i = 0; i < nrows; i++) {
    int sibs = 0;
    size_t cklen;
    const void *ck = cellar_result_clustering(res, i, &cklen);
    print_bytes(stdout, ck, cklen);
    fputs(" ", stdout);
    size_t ncells = cellar_result_cell_count(res, i);
    for (size_t j = 0; j < ncells; j++) {
      size_t nl, vl;
      const void *name = cellar_result_cell_name(res, i, j, &nl);
      const void *value = cellar_result_cell_value(res, i, j, &vl);
      fputc(' ', stdout);
      print_bytes(stdout, name, nl);
      fputc('=', stdout);
      size_t ns = cellar_result_cell_sibling_count(res, i, j);
      if (ns) print_siblings(res, i, j, ns);
      else print_bytes(stdout, value, vl);
      sibs += ns > 0;
    }
    fputc('\n', stdout);
    size_t nctx;
    const uint8_t *ctx = cellar_result_row_context(res, i, &nctx);
    if (ctx && (sibs || show_context)) {
      fputs("  context: 0x", stdout);
      for (size_t k = 0; k < nctx; k++) printf("%02x", ctx[k]);
      fputc('\n', stdout);
    }
  }
}

static void print_rows(const cellar_result_t *res) { print_rows_ctx(res, 0); }

/* "KS.TABLE" -> two strings in a scratch copy. */
static int split_table(scratch *s, const char *arg, const char **ks, const char **table) {
  const char *dot = strchr(arg, '.');
  if (dot == NULL || dot == arg || dot[1] == '\0') return -1;
  char *copy = scratch_keep(s, strdup(arg));
  if (copy == NULL) return -1;
  copy[dot - arg] = '\0';
  *ks = copy;
  *table = copy + (dot - arg) + 1;
  return 0;
}

/* ------------------------------------------------------- argument parsing */

/* A command's flags: name, whether it takes a value, what was given. */
typedef struct flag {
  const char *name;
  int takes_value;
  int seen;
  const char *value;
} flag;

/* Separates flags (anywhere after the command; `--` ends them) from
** positional arguments (written into pos, at most maxpos). Returns 0 or
** EXIT_USAGE after printing why. */
static int parse_args(int argc, char **argv, flag *flags, const char *cmd_usage,
                      char **pos, int maxpos, int *npos) {
  int np = 0, only_pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    if (!only_pos && a[0] == '-' && a[1] == '-' && a[2] != '\0') {
      flag *f = NULL;
      for (flag *g = flags; g && g->name; g++)
        if (strcmp(g->name, a + 2) == 0) f = g;
      if (f == NULL) return usage_error(cmd_usage, "%s: unknown option %s", argv[0], a);
      f->seen = 1;
      if (f->takes_value) {
        if (i + 1 >= argc) return usage_error(cmd_usage, "%s: %s needs a value", argv[0], a);
        f->value = argv[++i];
      }
      continue;
    }
    if (np == maxpos) return usage_error(cmd_usage, "%s: too many arguments", argv[0]);
    pos[np++] = argv[i];
  }
  *npos = np;
  return 0;
}

/* ------------------------------------------------------------ the client */

static cellar_client_t *client(void) {
  if (g_client) return g_client;
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = g_hosts;
  o.request_timeout_ms = g_timeout_ms;
  if (g_timeout_ms > 0 && g_timeout_ms < o.connect_timeout_ms)
    o.connect_timeout_ms = g_timeout_ms;
  int rc = cellar_connect(&o, &g_client);
  if (rc != 0) {
    char msg[600];
    snprintf(msg, sizeof msg, "cannot connect to %s (%s)", g_hosts, cellar_strerror(rc));
    print_error(rc, msg);
    g_client = NULL;
  }
  return g_client;
}

/* ------------------------------------------------------------- commands */

#define MAXPOS 1024

static int cmd_ping(int argc, char **argv) {
  const char *u = "ping";
  char *pos[1];
  int np;
  if (parse_args(argc, argv, NULL, u, pos, 0, &np)) return EXIT_USAGE;
  cellar_client_t *c = client();
  if (c == NULL) return EXIT_ERR;
  cellar_result_t *res = NULL;
  int rc = cellar_ping(c, &res);
  if (rc != 0) return result_error(rc, res);
  cellar_result_free(res);
  puts("PONG");
  return EXIT_OK;
}

/* The first arguments of put, get, slice and delete: KS.TABLE PK, then a
** clustering key when want_ck says pos[2] is one. Fills *t (bytes in s) and
** returns the index of the next positional argument, or -1 after printing
** a usage error. */
typedef struct target {
  const char *ks, *table;
  bytes pk, ck;
} target;

static int parse_target(scratch *s, char **pos, int np, int want_ck, const char *u,
                        const char *cmd, target *t) {
  memset(t, 0, sizeof *t);
  if (split_table(s, pos[0], &t->ks, &t->table) != 0) {
    usage_error(u, "%s: expected KS.TABLE, got '%s'", cmd, pos[0]);
    return -1;
  }
  int next = want_ck && np > 2 ? 3 : 2;
  for (int i = 1; i < next; i++) {
    if (arg_bytes(s, pos[i], strlen(pos[i]), i == 1 ? &t->pk : &t->ck) != 0) {
      usage_error(u, "%s: bad hex in '%s'", cmd, pos[i]);
      return -1;
    }
  }
  return next;
}

/* --context 0xHEX (as printed by get) into *ctx; 0 or -1 after a usage
** error. */
static int context_flag(scratch *s, const flag *f, const char *u, const char *cmd,
                        const void **ctx, size_t *n) {
  bytes b = {NULL, 0};
  if (f->seen && arg_bytes(s, f->value, strlen(f->value), &b) != 0) {
    usage_error(u, "%s: bad hex in --context", cmd);
    return -1;
  }
  *ctx = b.p;
  *n = b.n;
  return 0;
}

/* --resolve: the context of the row as it is now (a fresh read). */
static int read_context(cellar_client_t *c, scratch *s, const target *t,
                        const void **ctx, size_t *n) {
  cellar_get_t g;
  memset(&g, 0, sizeof g);
  g.consistency = g_cl;
  g.keyspace = t->ks;
  g.table = t->table;
  g.partition = t->pk.p;
  g.partition_len = t->pk.n;
  g.clustering = t->ck.p;
  g.clustering_len = t->ck.n;
  cellar_result_t *res = NULL;
  int e = cellar_get(c, &g, &res);
  if (e != 0) return result_error(e, res);
  size_t len = 0;
  const void *p = cellar_result_row_context(res, 0, &len);
  *ctx = NULL;
  *n = 0;
  if (p && len) {
    void *copy = scratch_keep(s, malloc(len));
    if (copy) {
      memcpy(copy, p, len);
      *ctx = copy;
      *n = len;
    }
  }
  cellar_result_free(res);
  return 0;
}

static int cmd_put(int argc, char **argv) {
  const char *u = "put KS.TABLE PK [CK] col=value ... [--ttl S] [--timestamp US] "
                  "[--context 0xHEX | --resolve]";
  flag flags[] = {{"ttl", 1, 0, NULL}, {"timestamp", 1, 0, NULL}, {"context", 1, 0, NULL},
                  {"resolve", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[MAXPOS];
  int np;
  if (parse_args(argc, argv, flags, u, pos, MAXPOS, &np)) return EXIT_USAGE;
  if (np < 3) return usage_error(u, "put: needs a table, a partition key and a cell");
  scratch s = {0};
  int rc = EXIT_USAGE;
  cellar_put_t p;
  memset(&p, 0, sizeof p);
  p.consistency = g_cl;
  uint64_t v;
  cellar_cell_t *cells = NULL;
  target t;
  int first_cell = parse_target(&s, pos, np, strchr(pos[2], '=') == NULL, u, "put", &t);
  if (first_cell < 0) goto out;
  p.keyspace = t.ks;
  p.table = t.table;
  if (first_cell >= np) {
    usage_error(u, "put: no col=value given");
    goto out;
  }
  cells = scratch_keep(&s, calloc((size_t)(np - first_cell), sizeof *cells));
  for (int i = first_cell; i < np; i++) {
    const char *eq = strchr(pos[i], '=');
    bytes name, value;
    if (eq == NULL || eq == pos[i]) {
      usage_error(u, "put: expected col=value, got '%s'", pos[i]);
      goto out;
    }
    if (arg_bytes(&s, pos[i], (size_t)(eq - pos[i]), &name) != 0 ||
        arg_bytes(&s, eq + 1, strlen(eq + 1), &value) != 0) {
      usage_error(u, "put: bad hex in '%s'", pos[i]);
      goto out;
    }
    cells[i - first_cell] = (cellar_cell_t){name.p, name.n, value.p, value.n};
  }
  if (flags[0].seen) {
    if (parse_u64(flags[0].value, UINT32_MAX, &v) != 0) {
      usage_error(u, "put: bad --ttl '%s'", flags[0].value);
      goto out;
    }
    p.ttl = (uint32_t)v;
  }
  if (flags[1].seen && parse_i64(flags[1].value, &p.timestamp) != 0) {
    usage_error(u, "put: bad --timestamp '%s'", flags[1].value);
    goto out;
  }
  if (flags[2].seen && flags[3].seen) {
    usage_error(u, "put: --context and --resolve exclude each other");
    goto out;
  }
  if (context_flag(&s, &flags[2], u, "put", &p.context, &p.context_len)) goto out;
  cellar_row_t row = {t.ck.p, t.ck.n, cells, (size_t)(np - first_cell)};
  p.partition = t.pk.p;
  p.partition_len = t.pk.n;
  p.rows = &row;
  p.nrows = 1;
  rc = EXIT_ERR;
  cellar_client_t *c = client();
  if (c == NULL) goto out;
  if (flags[3].seen && read_context(c, &s, &t, &p.context, &p.context_len) != 0) goto out;
  cellar_result_t *res = NULL;
  int e = cellar_put(c, &p, &res);
  if (e != 0) {
    result_error(e, res);
    goto out;
  }
  cellar_result_free(res);
  puts("OK");
  rc = EXIT_OK;
out:
  scratch_free(&s);
  return rc;
}

/* Column names given as positional arguments from pos[from]. */
static int columns_from(scratch *s, char **pos, int from, int np, cellar_cell_t **cols,
                        size_t *n, const char *u, const char *cmd) {
  *cols = NULL;
  *n = 0;
  if (from >= np) return 0;
  cellar_cell_t *c = scratch_keep(s, calloc((size_t)(np - from), sizeof *c));
  for (int i = from; i < np; i++) {
    bytes b;
    if (arg_bytes(s, pos[i], strlen(pos[i]), &b) != 0)
      return usage_error(u, "%s: bad hex in '%s'", cmd, pos[i]);
    if (b.n == 0) return usage_error(u, "%s: empty column name", cmd);
    c[i - from].name = b.p;
    c[i - from].name_len = b.n;
  }
  *cols = c;
  *n = (size_t)(np - from);
  return 0;
}

static int cmd_get(int argc, char **argv) {
  const char *u = "get KS.TABLE PK [CK] [col ...] [--context]";
  flag flags[] = {{"context", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[MAXPOS];
  int np;
  if (parse_args(argc, argv, flags, u, pos, MAXPOS, &np)) return EXIT_USAGE;
  if (np < 2) return usage_error(u, "get: needs a table and a partition key");
  scratch s = {0};
  int rc = EXIT_USAGE;
  cellar_get_t g;
  memset(&g, 0, sizeof g);
  g.consistency = g_cl;
  target t;
  cellar_cell_t *cols;
  size_t ncols;
  if (parse_target(&s, pos, np, 1, u, "get", &t) < 0 ||
      columns_from(&s, pos, 3, np, &cols, &ncols, u, "get"))
    goto out;
  g.keyspace = t.ks;
  g.table = t.table;
  g.partition = t.pk.p;
  g.partition_len = t.pk.n;
  g.clustering = t.ck.p;
  g.clustering_len = t.ck.n;
  g.columns = cols;
  g.ncolumns = ncols;
  rc = EXIT_ERR;
  cellar_client_t *c = client();
  if (c == NULL) goto out;
  cellar_result_t *res = NULL;
  int e = cellar_get(c, &g, &res);
  if (e != 0) {
    result_error(e, res);
    goto out;
  }
  print_rows_ctx(res, flags[0].seen);
  if (g_shell) printf("(%zu row%s)\n", cellar_result_row_count(res),
                      cellar_result_row_count(res) == 1 ? "" : "s");
  cellar_result_free(res);
  rc = EXIT_OK;
out:
  scratch_free(&s);
  return rc;
}

static int cmd_slice(int argc, char **argv) {
  const char *u = "slice KS.TABLE PK [col ...] [--start CK] [--end CK] [--limit N] "
                  "[--cursor HEX] [--all]";
  flag flags[] = {{"start", 1, 0, NULL}, {"end", 1, 0, NULL},    {"limit", 1, 0, NULL},
                  {"cursor", 1, 0, NULL}, {"all", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[MAXPOS];
  int np;
  if (parse_args(argc, argv, flags, u, pos, MAXPOS, &np)) return EXIT_USAGE;
  if (np < 2) return usage_error(u, "slice: needs a table and a partition key");
  scratch s = {0};
  int rc = EXIT_USAGE;
  cellar_slice_t q;
  memset(&q, 0, sizeof q);
  q.consistency = g_cl;
  bytes b;
  uint64_t v;
  target t;
  if (parse_target(&s, pos, np, 0, u, "slice", &t) < 0) goto out;
  q.keyspace = t.ks;
  q.table = t.table;
  q.partition = t.pk.p;
  q.partition_len = t.pk.n;
  if (flags[0].seen) {
    if (arg_bytes(&s, flags[0].value, strlen(flags[0].value), &b) != 0) {
      usage_error(u, "slice: bad hex in --start");
      goto out;
    }
    q.start = b.p ? (const void *)b.p : (const void *)"";
    q.start_len = b.n;
  }
  if (flags[1].seen) {
    if (arg_bytes(&s, flags[1].value, strlen(flags[1].value), &b) != 0) {
      usage_error(u, "slice: bad hex in --end");
      goto out;
    }
    q.end = b.p ? (const void *)b.p : (const void *)"";
    q.end_len = b.n;
  }
  if (flags[2].seen) {
    if (parse_u64(flags[2].value, UINT32_MAX, &v) != 0) {
      usage_error(u, "slice: bad --limit '%s'", flags[2].value);
      goto out;
    }
    q.limit = (uint32_t)v;
  }
  if (flags[3].seen) {
    const char *h = flags[3].value;
    if (h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) h += 2;
    size_t len = 0;
    uint8_t *cur = scratch_keep(&s, hex_decode(h, strlen(h), &len));
    if (cur == NULL || len == 0) {
      usage_error(u, "slice: --cursor wants the hex printed by a previous slice");
      goto out;
    }
    q.cursor = cur;
    q.cursor_len = len;
  }
  cellar_cell_t *cols;
  size_t ncols;
  if (columns_from(&s, pos, 2, np, &cols, &ncols, u, "slice")) goto out;
  q.columns = cols;
  q.ncolumns = ncols;
  rc = EXIT_ERR;
  cellar_client_t *c = client();
  if (c == NULL) goto out;
  size_t total = 0;
  uint8_t *next = NULL;
  for (;;) {
    cellar_result_t *res = NULL;
    int e = cellar_slice(c, &q, &res);
    if (e != 0) {
      free(next);
      result_error(e, res);
      goto out;
    }
    print_rows(res);
    total += cellar_result_row_count(res);
    size_t clen;
    const uint8_t *cur = cellar_result_cursor(res, &clen);
    free(next);
    next = NULL;
    if (cur && flags[4].seen) {
      next = malloc(clen);
      if (next == NULL) {
        cellar_result_free(res);
        print_error(CELLAR_ENOMEM, NULL);
        goto out;
      }
      memcpy(next, cur, clen);
      q.cursor = next;
      q.cursor_len = clen;
      cellar_result_free(res);
      continue;
    }
    if (g_shell) printf("(%zu row%s)\n", total, total == 1 ? "" : "s");
    if (cur) {
      fputs("cursor: 0x", stdout);
      for (size_t i = 0; i < clen; i++) printf("%02x", cur[i]);
      fputc('\n', stdout);
    }
    cellar_result_free(res);
    break;
  }
  rc = EXIT_OK;
out:
  scratch_free(&s);
  return rc;
}

static int cmd_delete(int argc, char **argv) {
  const char *u = "delete KS.TABLE PK [CK [col ...]] [--timestamp US] [--context 0xHEX]";
  flag flags[] = {{"timestamp", 1, 0, NULL}, {"context", 1, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[MAXPOS];
  int np;
  if (parse_args(argc, argv, flags, u, pos, MAXPOS, &np)) return EXIT_USAGE;
  if (np < 2) return usage_error(u, "delete: needs a table and a partition key");
  scratch s = {0};
  int rc = EXIT_USAGE;
  cellar_delete_t d;
  memset(&d, 0, sizeof d);
  d.consistency = g_cl;
  target t;
  cellar_cell_t *cols;
  size_t ncols;
  if (parse_target(&s, pos, np, 1, u, "delete", &t) < 0 ||
      columns_from(&s, pos, 3, np, &cols, &ncols, u, "delete"))
    goto out;
  d.keyspace = t.ks;
  d.table = t.table;
  if (flags[0].seen && parse_i64(flags[0].value, &d.timestamp) != 0) {
    usage_error(u, "delete: bad --timestamp '%s'", flags[0].value);
    goto out;
  }
  if (context_flag(&s, &flags[1], u, "delete", &d.context, &d.context_len)) goto out;
  d.partition = t.pk.p;
  d.partition_len = t.pk.n;
  d.scope = np == 2 ? CELLAR_DELETE_PARTITION : ncols ? CELLAR_DELETE_CELLS : CELLAR_DELETE_ROW;
  d.clustering = t.ck.p;
  d.clustering_len = t.ck.n;
  d.columns = cols;
  d.ncolumns = ncols;
  rc = EXIT_ERR;
  cellar_client_t *c = client();
  if (c == NULL) goto out;
  cellar_result_t *res = NULL;
  int e = cellar_delete(c, &d, &res);
  if (e != 0) {
    result_error(e, res);
    goto out;
  }
  cellar_result_free(res);
  puts("OK");
  rc = EXIT_OK;
out:
  scratch_free(&s);
  return rc;
}

/* Takes the result by address: callers write f(call(&res), &res), and
** the order in which C evaluates those two arguments is unspecified. */
static int finish_simple(int e, cellar_result_t **resp) {
  cellar_result_t *res = *resp;
  if (e != 0) return result_error(e, res);
  cellar_result_free(res);
  puts("OK");
  return EXIT_OK;
}

static int cmd_create_keyspace(int argc, char **argv) {
  const char *u = "create-keyspace KS [SPEC] [--if-not-exists]";
  flag flags[] = {{"if-not-exists", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[2];
  int np;
  if (parse_args(argc, argv, flags, u, pos, 2, &np)) return EXIT_USAGE;
  if (np < 1) return usage_error(u, "create-keyspace: needs a keyspace name");
  cellar_client_t *c = client();
  if (c == NULL) return EXIT_ERR;
  cellar_result_t *res = NULL;
  int e = cellar_create_keyspace(c, pos[0], np > 1 ? pos[1] : "SimpleStrategy:1",
                                 flags[0].seen, &res);
  return finish_simple(e, &res);
}

static int cmd_drop_keyspace(int argc, char **argv) {
  const char *u = "drop-keyspace KS [--if-exists]";
  flag flags[] = {{"if-exists", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[1];
  int np;
  if (parse_args(argc, argv, flags, u, pos, 1, &np)) return EXIT_USAGE;
  if (np < 1) return usage_error(u, "drop-keyspace: needs a keyspace name");
  cellar_client_t *c = client();
  if (c == NULL) return EXIT_ERR;
  cellar_result_t *res = NULL;
  return finish_simple(cellar_drop_keyspace(c, pos[0], flags[0].seen, &res), &res);
}

static int cmd_create_table(int argc, char **argv) {
  const char *u = "create-table KS.TABLE [--policy siblings|lww] [--gc-grace S] [--ttl S] "
                  "[--if-not-exists]";
  flag flags[] = {{"policy", 1, 0, NULL}, {"gc-grace", 1, 0, NULL}, {"ttl", 1, 0, NULL},
                  {"if-not-exists", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[1];
  int np;
  if (parse_args(argc, argv, flags, u, pos, 1, &np)) return EXIT_USAGE;
  if (np < 1) return usage_error(u, "create-table: needs KS.TABLE");
  scratch s = {0};
  const char *ks, *table;
  int rc = EXIT_USAGE;
  uint64_t v;
  cellar_table_options_t t;
  cellar_table_options_init(&t);
  if (split_table(&s, pos[0], &ks, &table) != 0) {
    usage_error(u, "create-table: expected KS.TABLE, got '%s'", pos[0]);
    goto out;
  }
  if (flags[0].seen) {
    if (strcmp(flags[0].value, "siblings") != 0 && strcmp(flags[0].value, "lww") != 0) {
      usage_error(u, "create-table: --policy is siblings or lww");
      goto out;
    }
    t.conflict_policy = flags[0].value;
  }
  if (flags[1].seen) {
    if (parse_u64(flags[1].value, UINT32_MAX, &v) != 0) {
      usage_error(u, "create-table: bad --gc-grace '%s'", flags[1].value);
      goto out;
    }
    t.gc_grace_seconds = (int64_t)v;
  }
  if (flags[2].seen) {
    if (parse_u64(flags[2].value, UINT32_MAX, &v) != 0) {
      usage_error(u, "create-table: bad --ttl '%s'", flags[2].value);
      goto out;
    }
    t.default_ttl = (uint32_t)v;
  }
  rc = EXIT_ERR;
  cellar_client_t *c = client();
  if (c == NULL) goto out;
  cellar_result_t *res = NULL;
  rc = finish_simple(cellar_create_table(c, ks, table, &t, flags[3].seen, &res), &res);
out:
  scratch_free(&s);
  return rc;
}

static int cmd_drop_table(int argc, char **argv) {
  const char *u = "drop-table KS.TABLE [--if-exists]";
  flag flags[] = {{"if-exists", 0, 0, NULL}, {NULL, 0, 0, NULL}};
  char *pos[1];
  int np;
  if (parse_args(argc, argv, flags, u, pos, 1, &np)) return EXIT_USAGE;
  if (np < 1) return usage_error(u, "drop-table: needs KS.TABLE");
  scratch s = {0};
  const char *ks, *table;
  int rc;
  if (split_table(&s, pos[0], &ks, &table) != 0) {
    rc = usage_error(u, "drop-table: expected KS.TABLE, got '%s'", pos[0]);
  } else {
    cellar_client_t *c = client();
    cellar_result_t *res = NULL;
    rc = c ? finish_simple(cellar_drop_table(c, ks, table, flags[0].seen, &res), &res)
           : EXIT_ERR;
  }
  scratch_free(&s);
  return rc;
}

static int cmd_describe(int argc, char **argv) {
  const char *u = "describe [KS]";
  char *pos[1];
  int np;
  if (parse_args(argc, argv, NULL, u, pos, 1, &np)) return EXIT_USAGE;
  cellar_client_t *c = client();
  if (c == NULL) return EXIT_ERR;
  cellar_result_t *res = NULL;
  int e = cellar_describe(c, np ? pos[0] : NULL, &res);
  if (e != 0) return result_error(e, res);
  size_t nks = cellar_result_keyspace_count(res), nt = cellar_result_table_count(res);
  for (size_t i = 0; i < nks; i++) {
    const char *name = cellar_result_keyspace_name(res, i);
    printf("keyspace %s replication=%s\n", name, cellar_result_keyspace_replication(res, i));
    for (size_t j = 0; j < nt; j++) {
      if (strcmp(cellar_result_table_keyspace(res, j), name) != 0) continue;
      printf("  table %s.%s policy=%s gc_grace=%u default_ttl=%u\n", name,
             cellar_result_table_name(res, j), cellar_result_table_policy(res, j),
             cellar_result_table_gc_grace(res, j), cellar_result_table_default_ttl(res, j));
    }
  }
  cellar_result_free(res);
  return EXIT_OK;
}

static const cellar_result_t *g_sort_res;

static int cmp_info(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return strcmp(cellar_result_info_key(g_sort_res, x), cellar_result_info_key(g_sort_res, y));
}

static int print_info(int e, cellar_result_t **resp) {
  cellar_result_t *res = *resp;
  if (e != 0) return result_error(e, res);
  size_t n = cellar_result_info_count(res);
  size_t *idx = malloc((n ? n : 1) * sizeof *idx);
  if (idx == NULL) {
    cellar_result_free(res);
    return print_error(CELLAR_ENOMEM, NULL);
  }
  for (size_t i = 0; i < n; i++) idx[i] = i;
  g_sort_res = res;
  qsort(idx, n, sizeof *idx, cmp_info);
  for (size_t i = 0; i < n; i++)
    printf("%s: %s\n", cellar_result_info_key(res, idx[i]), cellar_result_info_value(res, idx[i]));
  if (n == 0) puts("OK");
  free(idx);
  cellar_result_free(res);
  return EXIT_OK;
}

static int cmd_info(int argc, char **argv) {
  char *pos[1];
  int np;
  if (parse_args(argc, argv, NULL, "info", pos, 0, &np)) return EXIT_USAGE;
  cellar_client_t *c = client();
  if (c == NULL) return EXIT_ERR;
  cellar_result_t *res = NULL;
  return print_info(cellar_admin(c, "info", NULL, &res), &res);
}

static int cmd_admin(int argc, char **argv) {
  const char *u = "admin COMMAND [ARG]";
  char *pos[2];
  int np;
  if (parse_args(argc, argv, NULL, u, pos, 2, &np)) return EXIT_USAGE;
  if (np < 1) return usage_error(u, "admin: needs a command");
  cellar_client_t *c = client();
  if (c == NULL) return EXIT_ERR;
  cellar_result_t *res = NULL;
  return print_info(cellar_admin(c, pos[0], np > 1 ? pos[1] : NULL, &res), &res);
}

typedef struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
} command;

static const command commands[] = {
  {"put", cmd_put},
  {"get", cmd_get},
  {"slice", cmd_slice},
  {"delete", cmd_delete},
  {"create-keyspace", cmd_create_keyspace},
  {"drop-keyspace", cmd_drop_keyspace},
  {"create-table", cmd_create_table},
  {"drop-table", cmd_drop_table},
  {"describe", cmd_describe},
  {"ping", cmd_ping},
  {"info", cmd_info},
  {"admin", cmd_admin},
  {NULL, NULL},
};

static int run_command(int argc, char **argv) {
  for (const command *c = commands; c->name; c++)
    if (strcmp(c->name, argv[0]) == 0) return c->fn(argc, argv);
  return usage_error(NULL, "unknown command '%s'", argv[0]);
}

/* ---------------------------------------------------------------- shell */

/* Splits a line into words: blanks separate, "..." (with \" and \\) and
** '...' quote. Returns the word count, -1 on an unterminated quote. The
** words point into buf (the line is rewritten in place). */
static int tokenize(char *line, char **words, int max) {
  int n = 0;
  char *r = line, *w = line;
  for (;;) {
    while (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r') r++;
    if (*r == '\0') break;
    if (n == max) return -1;
    words[n++] = w;
    while (*r && *r != ' ' && *r != '\t' && *r != '\n' && *r != '\r') {
      if (*r == '"' || *r == '\'') {
        char q = *r++;
        while (*r && *r != q) {
          if (q == '"' && *r == '\\' && r[1]) r++;
          *w++ = *r++;
        }
        if (*r != q) return -1;
        r++;
      } else {
        *w++ = *r++;
      }
    }
    if (*r) r++;
    *w++ = '\0';
  }
  return n;
}

static char *read_line(int interactive, const char *prompt) {
#ifdef HAVE_READLINE
  if (interactive) {
    char *line = readline(prompt);
    if (line && *line) add_history(line);
    return line;
  }
#endif
  if (interactive) {
    fputs(prompt, stdout);
    fflush(stdout);
  }
  char *line = NULL;
  size_t cap = 0;
  if (getline(&line, &cap, stdin) < 0) {
    free(line);
    return NULL;
  }
  return line;
}

static int shell(void) {
  int interactive = isatty(STDIN_FILENO);
  int worst = EXIT_OK;
  g_shell = 1;
#ifdef HAVE_READLINE
  char hist[1024] = "";
  const char *home = getenv("HOME");
  if (interactive && home && *home) {
    snprintf(hist, sizeof hist, "%s/.cellar_history", home);
    using_history();
    read_history(hist);
  }
#endif
  /* Interactive: connect now, so a dead server shows at once (commands
  ** retry the connect later anyway). */
  if (interactive && client() != NULL)
    printf("cellar-cli: connected to %s; `help` for commands\n", cellar_client_peer(g_client));
  char prompt[300];
  snprintf(prompt, sizeof prompt, "cellar %s> ", g_hosts);
  for (;;) {
    char *line = read_line(interactive, prompt);
    if (line == NULL) break;
    char *words[MAXPOS];
    int n = tokenize(line, words, MAXPOS);
    int rc = EXIT_OK;
    if (n < 0) {
      rc = usage_error(NULL, "unterminated quote or too many words");
    } else if (n == 0 || words[0][0] == '#') {
      rc = EXIT_OK;
    } else if (strcmp(words[0], "quit") == 0 || strcmp(words[0], "exit") == 0) {
      free(line);
      break;
    } else if (strcmp(words[0], "help") == 0) {
      fputs(usage_text, stdout);
    } else if (strcmp(words[0], "consistency") == 0) {
      if (n == 1) {
        printf("%s\n", cellar_consistency_name(g_cl == CELLAR_CL_DEFAULT ? CELLAR_CL_ONE : g_cl));
      } else if (cellar_consistency_parse(words[1], &g_cl) != 0) {
        rc = usage_error("consistency [LEVEL]", "unknown consistency level '%s'", words[1]);
      }
    } else {
      rc = run_command(n, words);
    }
    if (rc > worst) worst = rc;
    fflush(stdout);
    free(line);
  }
#ifdef HAVE_READLINE
  if (interactive && hist[0]) {
    write_history(hist);
    history_truncate_file(hist, 1000);
  }
#endif
  if (interactive) {
    fputc('\n', stdout);
    return EXIT_OK;
  }
  return worst;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv) {
  g_hosts = getenv("CELLAR_HOSTS");
  if (g_hosts == NULL || *g_hosts == '\0') g_hosts = "127.0.0.1:7400";
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "help") == 0) {
      fputs(usage_text, stdout);
      return EXIT_OK;
    }
    if (a[0] != '-') break;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc) return usage_error(NULL, "option %s needs a value", a);
    const char *v = argv[++i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--hosts") == 0 || strcmp(a, "--host") == 0) {
      if (*v == '\0') return usage_error(NULL, "empty host list");
      g_hosts = v;
    } else if (strcmp(a, "--consistency") == 0) {
      if (cellar_consistency_parse(v, &g_cl) != 0)
        return usage_error(NULL, "unknown consistency level '%s'", v);
    } else if (strcmp(a, "--timeout") == 0) {
      uint64_t t;
      if (parse_u64(v, INT32_MAX, &t) != 0) return usage_error(NULL, "bad --timeout '%s'", v);
      g_timeout_ms = (int)t;
    } else {
      return usage_error(NULL, "unknown option %s", a);
    }
  }
  int rc;
  if (i >= argc || strcmp(argv[i], "shell") == 0) {
    if (i < argc && i + 1 < argc) return usage_error(NULL, "shell takes no arguments");
    rc = shell();
  } else {
    rc = run_command(argc - i, argv + i);
  }
  fflush(stdout);
  if (g_client) cellar_close(g_client);
  return rc;
}
