/*
** harness: starts and stops real cellard processes on loopback for the
** multi-process tests, and runs the command-line tools (harness.h).
**
** Every process started here is remembered; an atexit handler (and a
** handler for the fatal signals) kills what is still running, so a test
** that fails half-way leaves no cellard behind. Children also get
** PR_SET_PDEATHSIG, for the case where the test program itself is killed.
**
** The cluster helpers (last section) talk to the nodes through libcellar
** and poll: every wait has a deadline and says on stderr what it waited
** for when it runs out.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

#define HARNESS_MAX_PROCS 64
#define HARNESS_RUN_TIMEOUT_MS 60000

static pid_t g_pids[HARNESS_MAX_PROCS];
static int g_installed;

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void forget(pid_t pid) {
  for (int i = 0; i < HARNESS_MAX_PROCS; i++)
    if (g_pids[i] == pid) g_pids[i] = 0;
}

/* Kills every process still running. Async-signal-safe. */
static void kill_all(void) {
  for (int i = 0; i < HARNESS_MAX_PROCS; i++) {
    pid_t pid = g_pids[i];
    if (pid <= 0) continue;
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    waitpid(pid, NULL, 0);
    g_pids[i] = 0;
  }
}

static void on_fatal(int sig) {
  kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void remember(pid_t pid) {
  if (!g_installed) {
    g_installed = 1;
    atexit(kill_all);
    int sigs[] = {SIGINT, SIGTERM, SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_fatal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESETHAND;
      sigaction(sigs[i], &sa, NULL);
    }
  }
  for (int i = 0; i < HARNESS_MAX_PROCS; i++) {
    if (g_pids[i] == 0) {
      g_pids[i] = pid;
      return;
    }
  }
}

static int mkdir_p(const char *path) {
  char buf[512];
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

/* Binds port 0 on host and reads the port back. The port is free when
** the socket closes; another process could take it before cellard does,
** a race the tests accept (the start then fails visibly). */
static int free_port(const char *host) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(sa.sin_port);
}

static int can_connect(const char *host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &sa.sin_addr);
  int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

void harness_node_init(node_proc *n, const char *base, const char *host, int index) {
  memset(n, 0, sizeof *n);
  snprintf(n->host, sizeof n->host, "%s", host);
  n->port = free_port(host);
  do {
    n->peer_port = free_port(host);
  } while (n->peer_port == n->port && n->port > 0);
  snprintf(n->peer_addr, sizeof n->peer_addr, "%s:%d", host, n->peer_port);
  snprintf(n->data_dir, sizeof n->data_dir, "%s/node%d", base, index);
  snprintf(n->log_path, sizeof n->log_path, "%s/node%d.log", base, index);
  snprintf(n->addr, sizeof n->addr, "%s:%d", host, n->port);
  mkdir_p(n->data_dir);
}

/* The last lines of a node's log on stderr: the test's temp dir (and the
** log) is removed at exit, and CI keeps only the test's output. */
static void log_tail(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  char buf[2048];
  if (fseek(f, 0, SEEK_END) == 0) {
    long end = ftell(f);
    if (end > (long)sizeof buf - 1) fseek(f, end - (long)sizeof buf + 1, SEEK_SET);
    else rewind(f);
  }
  size_t k = fread(buf, 1, sizeof buf - 1, f);
  buf[k] = '\0';
  fclose(f);
  fprintf(stderr, "---- end of %s ----\n%s\n----\n", path, buf);
}

int harness_node_start(node_proc *n, const char *const *extra, int timeout_ms) {
  const char *bin = getenv("CELLARD");
  if (bin == NULL || *bin == '\0') {
    fprintf(stderr, "harness: $CELLARD is not set\n");
    return -1;
  }
  if (n->pid > 0 || n->port <= 0) return -1;
  const char *argv[64];
  int argc = 0;
  argv[argc++] = bin;
  argv[argc++] = "--listen";
  argv[argc++] = n->addr;
  argv[argc++] = "--data-dir";
  argv[argc++] = n->data_dir;
  argv[argc++] = "--peer-listen";
  argv[argc++] = n->peer_addr;
  for (int i = 0; extra && extra[i] && argc < 63; i++) argv[argc++] = extra[i];
  argv[argc] = NULL;

  int logfd = open(n->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) {
    fprintf(stderr, "harness: cannot open %s: %s\n", n->log_path, strerror(errno));
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(logfd);
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(logfd, STDOUT_FILENO);
    dup2(logfd, STDERR_FILENO);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, STDIN_FILENO);
    signal(SIGPIPE, SIG_DFL);
    execv(bin, (char *const *)argv);
    dprintf(STDERR_FILENO, "harness: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  close(logfd);
  n->pid = pid;
  remember(pid);

  long long deadline = mono_ms() + timeout_ms;
  for (;;) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      forget(pid);
      n->pid = 0;
      fprintf(stderr, "harness: cellard on %s exited during start (see %s)\n", n->addr,
              n->log_path);
      log_tail(n->log_path);
      return -1;
    }
    if (can_connect(n->host, n->port)) return 0;
    if (mono_ms() > deadline) {
      fprintf(stderr, "harness: cellard on %s not accepting after %d ms (see %s)\n",
              n->addr, timeout_ms, n->log_path);
      log_tail(n->log_path);
      harness_node_signal(n, SIGKILL);
      return -1;
    }
    sleep_ms(20);
  }
}

int harness_node_signal(node_proc *n, int sig) {
  if (n->pid <= 0) return -1;
  pid_t pid = n->pid;
  if (kill(pid, sig) != 0) return -1;
  if (sig != SIGTERM && sig != SIGKILL) return 0;
  kill(pid, SIGCONT);           /* a stopped process cannot act on TERM */
  int st = 0;
  long long deadline = mono_ms() + 30000;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      st = -1;
      break;
    }
    if (mono_ms() > deadline) {  /* a drain that never ends */
      fprintf(stderr, "harness: pid %d ignored signal %d, killing\n", (int)pid, sig);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    sleep_ms(10);
  }
  forget(pid);
  n->pid = 0;
  return st;
}

int harness_run(const char *const *argv, char **out) {
  if (out) *out = NULL;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, STDIN_FILENO);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], (char *const *)argv);
    dprintf(STDERR_FILENO, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  remember(pid);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  long long deadline = mono_ms() + HARNESS_RUN_TIMEOUT_MS;
  int timed_out = 0;
  for (;;) {
    struct pollfd pfd = {fds[0], POLLIN, 0};
    int left = (int)(deadline - mono_ms());
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    int pr = poll(&pfd, 1, left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    if (buf && len + 4096 > cap) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        buf = NULL;
      } else {
        buf = nb;
        cap *= 2;
      }
    }
    char scratch[4096];
    char *dst = buf ? buf + len : scratch;
    ssize_t r = read(fds[0], dst, buf ? cap - len - 1 : sizeof scratch);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (buf) len += (size_t)r;
  }
  close(fds[0]);
  if (timed_out) {
    fprintf(stderr, "harness: %s ran over %d ms, killing\n", argv[0], HARNESS_RUN_TIMEOUT_MS);
    kill(pid, SIGKILL);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  forget(pid);
  if (buf) {
    buf[len] = '\0';
    if (out) *out = buf;
    else free(buf);
  }
  if (timed_out || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

/* ========================================================= cluster helpers */

long harness_log_size(const node_proc *n) {
  struct stat st;
  return stat(n->log_path, &st) == 0 ? (long)st.st_size : 0;
}

/* Does the log, past offset from, have a line matching rx? */
static int log_has(const node_proc *n, long from, const regex_t *rx) {
  FILE *f = fopen(n->log_path, "r");
  if (f == NULL) return 0;
  int found = 0;
  if (fseek(f, from, SEEK_SET) == 0) {
    char line[4096];
    while (!found && fgets(line, sizeof line, f)) found = regexec(rx, line, 0, NULL, 0) == 0;
  }
  fclose(f);
  return found;
}

int harness_wait_log(const node_proc *n, long from, const char *re, int seconds) {
  regex_t rx;
  if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "harness: bad regex '%s'\n", re);
    return -1;
  }
  long long deadline = mono_ms() + (long long)seconds * 1000;
  int rc = -1;
  for (;;) {
    if (log_has(n, from, &rx)) {
      rc = 0;
      break;
    }
    if (mono_ms() > deadline) break;
    sleep_ms(50);
  }
  regfree(&rx);
  return rc;
}

void harness_seeds(const node_proc *nodes, int count, char *buf, size_t len) {
  size_t off = 0;
  if (len) buf[0] = '\0';
  for (int i = 0; i < count && off < len; i++) {
    int w = snprintf(buf + off, len - off, "%s%s", i ? "," : "", nodes[i].peer_addr);
    if (w < 0) break;
    off += (size_t)w;
  }
}

int harness_member_start(node_proc *n, const harness_member *m) {
  char gossip[16], rto[16], wto[16];
  const char *argv[64];
  int argc = 0;
  snprintf(gossip, sizeof gossip, "%d", m->gossip_interval_ms > 0 ? m->gossip_interval_ms : 200);
  argv[argc++] = "--gossip-interval";
  argv[argc++] = gossip;
  if (m->seeds && *m->seeds) {
    argv[argc++] = "--seeds";
    argv[argc++] = m->seeds;
  }
  if (m->dc) {
    argv[argc++] = "--dc";
    argv[argc++] = m->dc;
  }
  if (m->rack) {
    argv[argc++] = "--rack";
    argv[argc++] = m->rack;
  }
  if (m->read_timeout_ms > 0) {
    snprintf(rto, sizeof rto, "%d", m->read_timeout_ms);
    argv[argc++] = "--read-request-timeout";
    argv[argc++] = rto;
  }
  if (m->write_timeout_ms > 0) {
    snprintf(wto, sizeof wto, "%d", m->write_timeout_ms);
    argv[argc++] = "--write-request-timeout";
    argv[argc++] = wto;
  }
  for (int i = 0; m->extra && m->extra[i] && argc < 55; i++) argv[argc++] = m->extra[i];
  argv[argc] = NULL;
  /* a restarted node appends to its log: only this run's lines count */
  long from = harness_log_size(n);
  int secs = m->ready_seconds > 0 ? m->ready_seconds : 30;
  if (harness_node_start(n, argv, secs * 1000) != 0) return -1;
  if (harness_wait_log(n, from, "cluster: (normal|first node|restarting)", secs) != 0) {
    fprintf(stderr, "harness: %s not in the ring after %d s (see %s)\n", n->addr, secs,
            n->log_path);
    return -1;
  }
  return 0;
}

cellar_client_t *harness_connect(const node_proc *n, cellar_routing_t routing, int timeout_ms) {
  cellar_options_t o;
  cellar_options_init(&o);
  o.hosts = n->addr;
  o.request_timeout_ms = timeout_ms > 0 ? timeout_ms : 8000;
  o.routing = routing;
  cellar_client_t *c = NULL;
  if (cellar_connect(&o, &c) != 0) return NULL;
  return c;
}

int harness_view(const node_proc *from, const node_proc *who) {
  cellar_client_t *c = harness_connect(from, CELLAR_ROUTE_NONE, 5000);
  if (c == NULL) return -1;
  cellar_result_t *r = NULL;
  int seen = -1;
  if (cellar_admin(c, "status", NULL, &r) == 0)
    for (size_t k = 0; k < cellar_result_member_count(r); k++) {
      cellar_member_t m;
      cellar_result_member(r, k, &m);
      if (!strcmp(m.address, who->addr)) seen = m.up && !strcmp(m.status, "normal");
    }
  cellar_result_free(r);
  cellar_close(c);
  return seen;
}

int harness_wait_view(const node_proc *from, const node_proc *who, int up, int seconds) {
  long long deadline = mono_ms() + (long long)seconds * 1000;
  for (;;) {
    if (harness_view(from, who) == up) return 0;
    if (mono_ms() > deadline) return -1;
    sleep_ms(100);
  }
}

int harness_wait_all_up(const node_proc *nodes, int count, int seconds) {
  long long deadline = mono_ms() + (long long)seconds * 1000;
  for (int i = 0; i < count; i++)
    for (int j = 0; j < count; j++)
      while (harness_view(&nodes[i], &nodes[j]) != 1) {
        if (mono_ms() > deadline) {
          fprintf(stderr, "harness: %s does not see %s up after %d s\n", nodes[i].addr,
                  nodes[j].addr, seconds);
          return -1;
        }
        sleep_ms(100);
      }
  return 0;
}

/* Does node n describe every table of ks named in tables? */
static int has_tables(const node_proc *n, const char *ks, const char *const *tables) {
  cellar_client_t *c = harness_connect(n, CELLAR_ROUTE_NONE, 5000);
  if (c == NULL) return 0;
  cellar_result_t *d = NULL;
  int ok = cellar_describe(c, ks, &d) == 0;
  for (int t = 0; ok && tables && tables[t]; t++) {
    int found = 0;
    for (size_t i = 0; i < cellar_result_table_count(d) && !found; i++)
      found = !strcmp(cellar_result_table_name(d, i), tables[t]);
    ok = found;
  }
  cellar_result_free(d);
  cellar_close(c);
  return ok;
}

int harness_create_keyspace(const node_proc *nodes, int count, const char *ks,
                            const char *replication, const char *const *tables, int seconds) {
  return harness_create_keyspace_with(nodes, count, ks, replication, tables, NULL, seconds);
}

int harness_create_keyspace_with(const node_proc *nodes, int count, const char *ks,
                                 const char *replication, const char *const *tables,
                                 const cellar_table_options_t *t, int seconds) {
  cellar_client_t *c = harness_connect(&nodes[0], CELLAR_ROUTE_NONE, 10000);
  if (c == NULL) return CELLAR_ECONNECT;
  cellar_result_t *r = NULL;
  int rc = cellar_create_keyspace(c, ks, replication, 0, &r);
  if (rc) fprintf(stderr, "harness: create keyspace %s: %s\n", ks, cellar_result_message(r));
  cellar_result_free(r);
  for (int i = 0; rc == 0 && tables && tables[i]; i++) {
    r = NULL;
    rc = cellar_create_table(c, ks, tables[i], t, 0, &r);
    if (rc) fprintf(stderr, "harness: create table %s.%s: %s\n", ks, tables[i],
                    cellar_result_message(r));
    cellar_result_free(r);
  }
  cellar_close(c);
  if (rc) return rc;
  long long deadline = mono_ms() + (long long)seconds * 1000;
  for (int i = 0; i < count; i++)
    while (!has_tables(&nodes[i], ks, tables)) {
      if (mono_ms() > deadline) {
        fprintf(stderr, "harness: %s lacks the schema of %s after %d s\n", nodes[i].addr, ks,
                seconds);
        return -1;
      }
      sleep_ms(100);
    }
  return 0;
}

int harness_replica_of(cellar_client_t *c, const char *ks, const char *table, const char *key,
                       const node_proc *n) {
  char arg[512];
  snprintf(arg, sizeof arg, "%s %s %s", ks, table, key);
  cellar_result_t *r = NULL;
  int yes = 0;
  if (cellar_admin(c, "getendpoints", arg, &r) == 0)
    for (size_t m = 0; m < cellar_result_member_count(r); m++) {
      cellar_member_t mm;
      cellar_result_member(r, m, &mm);
      yes |= !strcmp(mm.address, n->addr);
    }
  cellar_result_free(r);
  return yes;
}

int harness_put(cellar_client_t *c, const char *ks, const char *table, const char *key,
                const char *value, cellar_consistency_t cl, char *msg, size_t msglen) {
  cellar_cell_t cell = {"v", 1, value, strlen(value)};
  cellar_row_t row = {NULL, 0, &cell, 1};
  cellar_put_t p = {.keyspace = ks, .table = table, .partition = key,
                    .partition_len = strlen(key), .rows = &row, .nrows = 1, .consistency = cl};
  cellar_result_t *r = NULL;
  int rc = cellar_put(c, &p, &r);
  if (msg && msglen) snprintf(msg, msglen, "%s", cellar_result_message(r));
  cellar_result_free(r);
  return rc;
}

int harness_get(cellar_client_t *c, const char *ks, const char *table, const char *key,
                cellar_consistency_t cl, char *out, size_t outlen, char *msg, size_t msglen) {
  cellar_get_t g = {.keyspace = ks, .table = table, .partition = key,
                    .partition_len = strlen(key), .consistency = cl};
  cellar_result_t *r = NULL;
  int rc = cellar_get(c, &g, &r);
  if (msg && msglen) snprintf(msg, msglen, "%s", cellar_result_message(r));
  if (rc == 0) {
    rc = cellar_result_row_count(r) > 0;
    if (rc && out && outlen) {
      size_t n = 0;
      const void *v = cellar_result_cell_value(r, 0, 0, &n);
      snprintf(out, outlen, "%.*s", (int)n, v ? (const char *)v : "");
    }
  }
  cellar_result_free(r);
  return rc;
}

/* ----------------------------------------------------- background writer */

void harness_writer_key(const harness_writer *w, int i, char *buf, size_t len) {
  snprintf(buf, len, "%s%06d", w->prefix ? w->prefix : "w", i);
}

static void *writer_main(void *arg) {
  harness_writer *w = arg;
  cellar_client_t *c = harness_connect(w->node, CELLAR_ROUTE_TOKEN_AWARE, 8000);
  if (c == NULL) {
    fprintf(stderr, "harness: the writer cannot connect to %s\n", w->node->addr);
    return NULL;
  }
  char k[64];
  for (int i = 0; i < w->max && !atomic_load(&w->stop); i++) {
    harness_writer_key(w, i, k, sizeof k);
    if (harness_put(c, w->ks, w->table, k, k, w->cl, NULL, 0) == 0) atomic_store(&w->acked[i], 1);
    else atomic_fetch_add(&w->failed, 1);
    atomic_store(&w->written, i + 1);
  }
  cellar_close(c);
  return NULL;
}

int harness_writer_start(harness_writer *w) {
  atomic_store(&w->stop, 0);
  atomic_store(&w->written, 0);
  atomic_store(&w->failed, 0);
  w->acked = calloc((size_t)(w->max > 0 ? w->max : 1), sizeof *w->acked);
  if (w->acked == NULL) return -1;
  if (pthread_create(&w->th, NULL, writer_main, w) != 0) return -1;
  w->started = 1;
  return 0;
}

int harness_writer_stop(harness_writer *w) {
  atomic_store(&w->stop, 1);
  if (w->started) pthread_join(w->th, NULL);
  w->started = 0;
  return atomic_load(&w->written);
}

int harness_writer_acked(const harness_writer *w, int i) {
  return i >= 0 && i < atomic_load(&w->written) && atomic_load(&w->acked[i]);
}

void harness_writer_free(harness_writer *w) {
  harness_writer_stop(w);
  free((void *)w->acked);
  w->acked = NULL;
}
