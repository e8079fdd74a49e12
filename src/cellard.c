/*
** cellard: one cellar node. Reads its settings, opens the storage and the
** schema, serves clients until SIGTERM/SIGINT, then drains: stops
** accepting, finishes the requests in work, sends their answers, closes
** RocksDB (which flushes nothing it has not already logged in the WAL).
*/
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <uv.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "dvv.h"
#include "engine.h"
#include "handoff.h"
#include "log.h"
#include "proxy.h"
#include "repair.h"
#include "stream.h"
#include "schema.h"
#include "server.h"
#include "storage.h"

typedef struct node {
  uv_loop_t *loop;
  server *srv;
  cluster *cl;
  proxy *px;
  handoff *ho;
  stream *st;
  repair *rp;
  uv_async_t stop_async;       /* woken by the signal handler */
  int stopping;
  int exit_code;
} node;

static int mkdir_p(const char *path) {
  char buf[600];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

static int gc_lookup(void *arg, uint64_t id, uint32_t *gc_grace) {
  return schema_gc_grace_by_id(arg, id, gc_grace);
}

/* The node's host id, made once and kept in the system column family; and
** its generation, bumped at every start. */
typedef struct identity {
  char host_id[40];
  uint64_t generation;
  uint32_t incarnation;   /* versions: the actor is (host id, incarnation) */
} identity;

static int scan_one(void *arg, const uint8_t *k, size_t nk, const uint8_t *v,
                    size_t nv) {
  char *out = arg;
  (void)k;
  (void)nk;
  size_t n = nv < 39 ? nv : 39;
  memcpy(out, v, n);
  out[n] = '\0';
  return 0;
}

/* The file a snapshot carries (engine.c, ENGINE_SNAPSHOT_MARKER): a node
** started on a restored snapshot finds it in its db directory. */
static int restored_from_snapshot(const char *dbpath) {
  char marker[700];
  snprintf(marker, sizeof marker, "%s/%s", dbpath, ENGINE_SNAPSHOT_MARKER);
  return access(marker, F_OK) == 0;
}

/* restored: the data is a snapshot (it went back in time), so the node's
** actor takes a new incarnation: dots it minted after the snapshot are
** gone from here but live on other replicas, and minting them again would
** lose writes (KV679, docs/versions.md). */
static int load_identity(storage *st, identity *id, int restored) {
  char buf[40] = "";
  int rc = storage_system_scan(st, "node/host_id", 12, scan_one, buf);
  if (rc) return rc;
  if (buf[0] == '\0') {
    uint64_t a = clock_random64(), b = clock_random64();
    snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)(0x4000 | (a & 0x0fff)),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffull));
    rc = storage_system_put(st, "node/host_id", 12, buf, strlen(buf));
    if (rc) return rc;
  }
  snprintf(id->host_id, sizeof id->host_id, "%s", buf);
  /* The incarnation of the node's dot-minting actor (docs/versions.md).
  ** A wiped data directory has no host id, so the node comes back under
  ** a new host id and a new actor; the incarnation is kept with the host
  ** id so that a procedure reusing a host id on lost data can bump it. */
  char inc[16] = "";
  rc = storage_system_scan(st, "node/incarnation", 16, scan_one, inc);
  if (rc) return rc;
  unsigned long iv = strtoul(inc, NULL, 10);
  if (iv == 0 || iv > UINT32_MAX || restored) {
    iv = iv == 0 || iv >= UINT32_MAX ? 1 : iv + 1;
    int n = snprintf(inc, sizeof inc, "%lu", iv);
    rc = storage_system_put(st, "node/incarnation", 16, inc, (size_t)n);
    if (rc) return rc;
  }
  id->incarnation = (uint32_t)iv;
  char gen[40] = "";
  rc = storage_system_scan(st, "node/generation", 15, scan_one, gen);
  if (rc) return rc;
  uint64_t g = strtoull(gen, NULL, 10);
  uint64_t now = clock_now_s();
  id->generation = now > g ? now : g + 1;
  int n = snprintf(gen, sizeof gen, "%llu", (unsigned long long)id->generation);
  return storage_system_put(st, "node/generation", 15, gen, (size_t)n);
}

static atomic_int stop_async_live;

static void close_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (h->type == UV_ASYNC) atomic_store(&stop_async_live, 0);
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Node-to-node frames the cluster does not handle itself. */
static void on_peer_frame(void *arg, const frame_header *h, const uint8_t *payload) {
  node *n = arg;
  if (h->type == FRAME_STREAM_PULL || h->type == FRAME_STREAM_CHUNK ||
      h->type == FRAME_STREAM_ORDER)
    stream_on_frame(n->st, h, payload);
  else if ((h->type >= FRAME_MERKLE_REQUEST && h->type <= FRAME_REPAIR_ROWS_REPLY) ||
           h->type == FRAME_STREAM_ORDER_DONE)
    repair_on_frame(n->rp, h, payload);
  else
    proxy_on_frame(n->px, h, payload);
}

static void bootstrapped(void *arg, int rc, uint64_t entries) {
  node *n = arg;
  (void)entries;
  cluster_bootstrap_done(n->cl, rc);
}

static int bootstrap(void *arg, const cluster_range *r, size_t count) {
  node *n = arg;
  return stream_bootstrap(n->st, r, count, bootstrapped, n);
}

static void cluster_stopped(void *arg) {
  node *n = arg;
  log_info("cellard: drained, closing");
  uv_walk(n->loop, close_handle, NULL);
}

static void drained(void *arg) {
  node *n = arg;
  if (n->st) stream_stop(n->st);
  handoff_stop(n->ho);
  if (n->rp) repair_stop(n->rp);
  if (n->cl) cluster_stop(n->cl, cluster_stopped, n);
  else cluster_stopped(n);
}

static void stop_node(node *n) {
  if (n->stopping) return;
  n->stopping = 1;
  server_drain(n->srv, drained, n);
}

/*
** SIGTERM/SIGINT: a plain handler that wakes the loop (uv_async_send is
** async-signal-safe). Not uv_signal: closing a uv_signal handle puts the
** default disposition back, and a second SIGTERM arriving while the node
** closes RocksDB would then kill it half way. This handler stays installed
** for the life of the process; once the loop is closing it does nothing.
*/
static node *the_node;
static volatile sig_atomic_t last_signal;

static void on_signal(int signum) {
  last_signal = signum;
  if (atomic_load(&stop_async_live)) uv_async_send(&the_node->stop_async);
}

static void on_stop_async(uv_async_t *a) {
  node *n = a->data;
  if (n->stopping) return;
  log_info("cellard: %s received, draining", last_signal == SIGINT ? "SIGINT" : "SIGTERM");
  stop_node(n);
}

/* The cluster found a reason this node must not run (loop thread). */
static void on_fatal(void *arg, const char *msg) {
  node *n = arg;
  log_error("cellard: %s", msg);
  fprintf(stderr, "cellard: %s\n", msg);
  n->exit_code = 1;
  stop_node(n);
}

/* The node was decommissioned and has announced "left": it stops. */
static void on_left(void *arg) {
  node *n = arg;
  log_info("cellard: decommissioned, stopping");
  n->exit_code = 0;
  stop_node(n);
}

int main(int argc, char **argv) {
  config cfg;
  char err[512];
  config_defaults(&cfg);
  int rc = config_parse_args(&cfg, argc, argv, err, sizeof err);
  if (rc == 1) {
    fputs(config_usage(), stdout);
    return 0;
  }
  if (rc) {
    fprintf(stderr, "cellard: %s\n", err);
    return 2;
  }
  log_set_level(cfg.log_level);
  signal(SIGPIPE, SIG_IGN);
  config_finish(&cfg);

  char workers[16];
  snprintf(workers, sizeof workers, "%d", cfg.workers);
  setenv("UV_THREADPOOL_SIZE", workers, 1);

  if (mkdir_p(cfg.data_dir) != 0) {
    fprintf(stderr, "cellard: cannot create data_dir %s: %s\n", cfg.data_dir, strerror(errno));
    return 2;
  }
  char dbpath[600];
  snprintf(dbpath, sizeof dbpath, "%s/db", cfg.data_dir);
  storage_options so;
  storage_options_init(&so);
  so.path = dbpath;
  so.cache_bytes = cfg.cache_bytes;
  so.write_buffer_bytes = cfg.write_buffer_bytes;
  so.sync_writes = cfg.sync_writes;
  storage *st = NULL;
  rc = storage_open(&so, &st);
  if (rc) {
    fprintf(stderr, "cellard: cannot open storage in %s: %s (is another cellard "
            "using it?)\n", dbpath, cellar_strerror(rc));
    return 1;
  }
  identity id;
  int restored = restored_from_snapshot(dbpath);
  rc = load_identity(st, &id, restored);
  if (rc == 0 && restored) {
    char marker[700];
    snprintf(marker, sizeof marker, "%s/%s", dbpath, ENGINE_SNAPSHOT_MARKER);
    unlink(marker);   /* the incarnation is bumped and stored */
  }
  if (rc) {
    fprintf(stderr, "cellard: cannot read node identity: %s\n", cellar_strerror(rc));
    storage_close(st);
    return 1;
  }
  log_set_node(cfg.node_name[0] ? cfg.node_name : id.host_id);
  log_info("cellard: host id %s generation %llu data %s", id.host_id,
           (unsigned long long)id.generation, cfg.data_dir);
  if (restored)
    log_warn("cellard: started on a restored snapshot: new incarnation %u",
             (unsigned)id.incarnation);

  schema *sc = NULL;
  rc = schema_open(st, &sc);
  if (rc) {
    fprintf(stderr, "cellard: cannot load schema: %s\n", cellar_strerror(rc));
    storage_close(st);
    return 1;
  }
  storage_set_gc_lookup(st, gc_lookup, sc);

  engine eng = {.st = st, .sc = sc, .node_id = id.host_id,
                .data_dir = cfg.data_dir, .max_slice_rows = cfg.max_slice_rows,
                .self = dvv_actor_of(id.host_id, id.incarnation),
                .siblings_warn = cfg.siblings_warn,
                .siblings_limit = cfg.siblings_limit};
  node n = {.loop = uv_default_loop()};
  cluster_options co = {.loop = n.loop, .cfg = &cfg, .st = st, .sc = sc,
                        .host_id = id.host_id, .generation = id.generation,
                        .fatal = on_fatal, .fatal_arg = &n, .left = on_left};
  rc = cluster_new(&co, &n.cl);
  if (rc) {
    fprintf(stderr, "cellard: cannot set up the cluster state: %s\n", cellar_strerror(rc));
    schema_free(sc);
    storage_close(st);
    return 1;
  }
  eng.cl = n.cl;
  proxy *px = NULL;
  rc = proxy_new(n.loop, &cfg, &eng, n.cl, &px);
  if (rc) {
    fprintf(stderr, "cellard: out of memory\n");
    return 1;
  }
  n.px = px;
  /* hinted handoff: counts the hints a previous run left (blocking) */
  rc = handoff_new(n.loop, &cfg, &eng, n.cl, &n.ho);
  if (rc) {
    fprintf(stderr, "cellard: cannot read the hints: %s\n", cellar_strerror(rc));
    return 1;
  }
  proxy_set_handoff(px, n.ho);
  eng.ho = n.ho;
  cluster_set_member_handler(n.cl, handoff_on_member, n.ho);
  if (stream_new(n.loop, &eng, n.cl, &n.st) != 0 ||
      repair_new(n.loop, &cfg, &eng, n.cl, &n.rp) != 0 || repair_start_timer(n.rp) != 0) {
    fprintf(stderr, "cellard: out of memory\n");
    return 1;
  }
  eng.rp = n.rp;
  cluster_set_handler(n.cl, on_peer_frame, &n);
  cluster_set_fail_handler(n.cl, proxy_on_peer_failed, px);
  cluster_set_fail_handler(n.cl, repair_on_peer_failed, n.rp);
  cluster_set_bootstrap(n.cl, bootstrap, &n);
  rc = server_new(n.loop, &cfg, &eng, &n.srv);
  if (rc == 0) server_set_proxy(n.srv, px);
  if (rc == 0) rc = server_start(n.srv);
  if (rc == 0) rc = cluster_start(n.cl);
  if (rc == 0) rc = handoff_start(n.ho);
  if (rc) {
    fprintf(stderr, "cellard: cannot listen on %s:%d (clients) or %s:%d (peers)\n",
            cfg.listen_host, cfg.listen_port, cfg.peer_host, cfg.peer_port);
    uv_walk(n.loop, close_handle, NULL);
    uv_run(n.loop, UV_RUN_DEFAULT);
    server_free(n.srv);
    cluster_free(n.cl);
    schema_free(sc);
    storage_close(st);
    return 1;
  }
  uv_async_init(n.loop, &n.stop_async, on_stop_async);
  n.stop_async.data = &n;
  the_node = &n;
  atomic_store(&stop_async_live, 1);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  log_info("cellard: ready");

  uv_run(n.loop, UV_RUN_DEFAULT);

  server_free(n.srv);
  proxy_free(px);
  handoff_free(n.ho);
  stream_free(n.st);
  repair_free(n.rp);
  cluster_free(n.cl);
  schema_free(sc);
  storage_close(st);
  rc = uv_loop_close(n.loop);
  if (rc) log_warn("cellard: loop closed with handles open: %s", uv_strerror(rc));
  log_info("cellard: stopped");
  return n.exit_code;
}
