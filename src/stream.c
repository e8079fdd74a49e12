/*
** stream: range streaming for bootstrap. See stream.h for the protocol.
**
** Invariants:
**   1. At most one pull is outstanding per job; a chunk is accepted only if
**      it answers the outstanding pull of a job (pull ids are unique across
**      jobs), anything else is dropped.
**   2. The next pull is sent only after the previous chunk is applied, so
**      the receiver holds at most one chunk in memory and a crash resumes
**      from the last applied key (chunks are idempotent merges).
**   3. Keys start with the table id (8 bytes) and the token (8 bytes): the
**      token of the last key received is where the next pull starts.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "log.h"
#include "storage.h"
#include "stream.h"
#include "token.h"
#include "wire_peer.h"

/* One pull job: a list of ranges fetched in order. */
typedef struct job {
  struct job *next;
  stream *s;
  uv_timer_t timer;
  cluster_range *ranges;
  size_t n, i;
  uint64_t pull_id;
  uint8_t *after;              /* last key applied in range i, malloc'd */
  size_t nafter;
  int64_t lo;                  /* where the next pull of range i starts */
  int tries;
  int applying;                /* a chunk is being applied */
  int finished;                /* done was called; freed when idle */
  int is_boot;
  uint64_t entries;
  void (*done)(void *, int, uint64_t);
  void *done_arg;
} job;

struct stream {
  uv_loop_t *loop;
  engine *eng;
  cluster *cl;
  int stopping;
  job *jobs;
  uint64_t next_id;
};

int stream_new(uv_loop_t *loop, engine *eng, cluster *cl, stream **out) {
  stream *s = calloc(1, sizeof *s);
  if (s == NULL) return CELLAR_ENOMEM;
  s->loop = loop;
  s->eng = eng;
  s->cl = cl;
  s->next_id = 1;
  *out = s;
  return 0;
}

/* Jobs still listed at this point have had their timers closed by the
** loop's final walk. */
void stream_free(stream *s) {
  if (s == NULL) return;
  while (s->jobs) {
    job *j = s->jobs;
    s->jobs = j->next;
    free(j->ranges);
    free(j->after);
    free(j);
  }
  free(s);
}

static void job_closed(uv_handle_t *h) {
  job *j = h->data;
  free(j->ranges);
  free(j->after);
  free(j);
}

/* Unlinks and frees j once nothing refers to it (no apply in flight). */
static void job_release(job *j) {
  if (!j->finished || j->applying) return;
  /* closed by the loop's final walk: stream_free frees it */
  if (uv_is_closing((uv_handle_t *)&j->timer)) return;
  stream *s = j->s;
  for (job **p = &s->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  uv_close((uv_handle_t *)&j->timer, job_closed);
}

static void finish(job *j, int rc) {
  if (j->finished) return;
  j->finished = 1;
  uv_timer_stop(&j->timer);
  const char *what = j->is_boot ? "bootstrap" : "pull job";
  if (rc) log_error("stream: %s failed at range %zu of %zu: %s", what, j->i + 1, j->n,
                    cellar_strerror(rc));
  else log_info("stream: %s received %llu entries in %zu ranges", what,
                (unsigned long long)j->entries, j->n);
  if (j->done) j->done(j->done_arg, rc, j->entries);
  job_release(j);
}

static void send_pull(job *j);

static void on_timeout(uv_timer_t *t) {
  job *j = t->data;
  if (j->finished || j->applying) return;
  if (++j->tries > STREAM_RETRIES) {
    finish(j, CELLAR_ETIMEDOUT);
    return;
  }
  log_warn("stream: no answer from %s, asking again", j->ranges[j->i].source);
  send_pull(j);
}

static void send_pull(job *j) {
  stream *s = j->s;
  if (s->stopping) {
    finish(j, CELLAR_ESHUTDOWN);
    return;
  }
  while (j->i < j->n && j->ranges[j->i].source[0] == '\0') {   /* no source */
    j->i++;
    if (j->i < j->n) j->lo = j->ranges[j->i].lo;
  }
  if (j->i == j->n) {
    finish(j, 0);
    return;
  }
  const cluster_range *r = &j->ranges[j->i];
  j->pull_id = s->next_id++;
  wire_pull w = {.id = j->pull_id, .from = cluster_peer_addr(s->cl),
                 .cluster = cluster_name(s->cl), .table_id = r->table_id, .lo = j->lo,
                 .hi = r->hi, .after_key = CBYTES(j->after, j->nafter),
                 .max_bytes = STREAM_CHUNK_BYTES};
  size_t len = 0;
  uint8_t *p = wire_pull_encode(&w, &len);
  if (p) cluster_send(s->cl, r->source, FRAME_STREAM_PULL, 0, p, len);
  free(p);
  uv_timer_start(&j->timer, on_timeout, STREAM_TIMEOUT_MS, 0);
}

static void next_range(job *j) {
  j->i++;
  free(j->after);
  j->after = NULL;
  j->nafter = 0;
  j->tries = 0;
  if (j->i < j->n) j->lo = j->ranges[j->i].lo;
  send_pull(j);
}

static int start_job(stream *s, const cluster_range *ranges, size_t n, int is_boot,
                     void (*done)(void *arg, int rc, uint64_t entries), void *arg) {
  if (s->stopping) return CELLAR_ESHUTDOWN;
  job *j = calloc(1, sizeof *j);
  if (j == NULL) return CELLAR_ENOMEM;
  j->ranges = malloc((n ? n : 1) * sizeof *ranges);
  if (j->ranges == NULL) {
    free(j);
    return CELLAR_ENOMEM;
  }
  if (n) memcpy(j->ranges, ranges, n * sizeof *ranges);
  j->s = s;
  j->n = n;
  j->is_boot = is_boot;
  j->done = done;
  j->done_arg = arg;
  j->lo = n ? ranges[0].lo : 0;
  uv_timer_init(s->loop, &j->timer);
  j->timer.data = j;
  j->next = s->jobs;
  s->jobs = j;
  log_info("stream: %s pulls %zu ranges", is_boot ? "bootstrap" : "pull job", n);
  send_pull(j);
  return 0;
}

int stream_pull(stream *s, const cluster_range *ranges, size_t n,
                void (*done)(void *arg, int rc, uint64_t entries), void *arg) {
  return start_job(s, ranges, n, 0, done, arg);
}

int stream_bootstrap(stream *s, const cluster_range *ranges, size_t n,
                     void (*done)(void *arg, int rc, uint64_t entries), void *arg) {
  for (job *j = s->jobs; j; j = j->next)
    if (j->is_boot && !j->finished) return CELLAR_EINVAL;
  return start_job(s, ranges, n, 1, done, arg);
}

/* ----------------------------------------------------------- receiving */

typedef struct apply_job {
  uv_work_t work;
  job *j;
  wire_chunk c;
  int rc;
} apply_job;

static void apply_work(uv_work_t *w) {
  apply_job *a = w->data;
  a->rc = storage_apply_entries(a->j->s->eng->st, a->c.e, a->c.n, NULL);
}

static void apply_done(uv_work_t *w, int status) {
  apply_job *a = w->data;
  job *j = a->j;
  (void)status;
  j->applying = 0;
  if (!j->finished) {
    if (a->rc) {
      if (++j->tries > STREAM_RETRIES) finish(j, a->rc);
      else send_pull(j);
    } else {
      j->entries += a->c.n;
      j->tries = 0;
      if (a->c.done || a->c.n == 0) {
        next_range(j);
      } else {
        /* invariant 3: resume after the last key, from its token */
        const storage_entry *last = &a->c.e[a->c.n - 1];
        uint8_t *k = malloc(last->key.n);
        if (k == NULL || last->key.n < 16) {
          free(k);
          finish(j, CELLAR_EPROTO);
        } else {
          memcpy(k, last->key.p, last->key.n);
          free(j->after);
          j->after = k;
          j->nafter = last->key.n;
          j->lo = token_decode(k + 8);
          send_pull(j);
        }
      }
    }
  } else {
    job_release(j);
  }
  wire_chunk_free(&a->c);
  free(a);
}

static void on_chunk(stream *s, const uint8_t *payload, size_t len) {
  apply_job *a = calloc(1, sizeof *a);
  if (a == NULL) return;
  job *j = NULL;
  if (wire_chunk_decode(payload, len, &a->c) == 0)
    for (j = s->jobs; j; j = j->next)
      if (!j->finished && j->pull_id == a->c.id) break;
  if (j == NULL || j->applying) {
    wire_chunk_free(&a->c);
    free(a);
    return;   /* invariant 1 */
  }
  a->j = j;
  uv_timer_stop(&j->timer);
  if (a->c.code) {
    log_warn("stream: %s answered %s: %s", j->ranges[j->i].source, cellar_err_name(a->c.code),
             a->c.message);
    wire_chunk_free(&a->c);
    free(a);
    if (++j->tries > STREAM_RETRIES) finish(j, CELLAR_EIO);
    else send_pull(j);
    return;
  }
  j->applying = 1;
  a->work.data = a;
  if (uv_queue_work(s->loop, &a->work, apply_work, apply_done) != 0) {
    j->applying = 0;
    wire_chunk_free(&a->c);
    free(a);
    finish(j, CELLAR_EINTERNAL);
  }
}

/* ------------------------------------------------------- stream orders */

typedef struct order_ctx {
  stream *s;
  uint64_t id;
  char to[80];
} order_ctx;

static void send_order_done(stream *s, const char *to, uint64_t id, int rc, uint64_t entries) {
  wire_order_done d = {.id = id, .host_id = cluster_host_id(s->cl), .code = rc,
                       .message = rc ? cellar_strerror(rc) : "", .entries = entries};
  size_t len = 0;
  uint8_t *p = wire_order_done_encode(&d, &len);
  if (p) cluster_send(s->cl, to, FRAME_STREAM_ORDER_DONE, 0, p, len);
  free(p);
}

static void order_done(void *arg, int rc, uint64_t entries) {
  order_ctx *o = arg;
  if (!o->s->stopping) send_order_done(o->s, o->to, o->id, rc, entries);
  free(o);
}

static void on_order(stream *s, const uint8_t *payload, size_t len) {
  wire_order w;
  if (wire_order_decode(payload, len, &w) != 0) {
    log_warn("stream: malformed stream order ignored");
    return;
  }
  if (strcmp(w.cluster, cluster_name(s->cl)) || w.from[0] == '\0' || strlen(w.from) >= 80) {
    wire_order_free(&w);
    return;
  }
  cluster_range *r = calloc(w.n ? w.n : 1, sizeof *r);
  order_ctx *o = calloc(1, sizeof *o);
  int rc = r && o ? 0 : CELLAR_ENOMEM;
  for (size_t i = 0; i < w.n && rc == 0; i++) {
    r[i].table_id = w.r[i].table_id;
    r[i].lo = w.r[i].lo;
    r[i].hi = w.r[i].hi;
    snprintf(r[i].source, sizeof r[i].source, "%s", w.r[i].source);
  }
  if (rc == 0) {
    o->s = s;
    o->id = w.id;
    snprintf(o->to, sizeof o->to, "%s", w.from);
    log_info("stream: %s orders a pull of %zu ranges", w.from, w.n);
    rc = stream_pull(s, r, w.n, order_done, o);
  }
  if (rc) {
    send_order_done(s, w.from, w.id, rc, 0);
    free(o);
  }
  free(r);
  wire_order_free(&w);
}

/* ------------------------------------------------------------- sending */

typedef struct send_job {
  uv_work_t work;
  stream *s;
  wire_pull p;
  storage_entries got;
  size_t bytes;
  int done, rc;
  uint8_t *out;
  size_t outlen;
} send_job;

static int cmp_key(cbytes a, cbytes b) {
  int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
  return c ? c : (a.n > b.n) - (a.n < b.n);
}

static int collect(void *arg, cbytes key, cbytes value) {
  send_job *j = arg;
  if (j->p.after_key.n && cmp_key(key, j->p.after_key) <= 0) return 0;
  if (j->bytes >= j->p.max_bytes) return 1;   /* full: stop here */
  int rc = storage_entries_add(&j->got, key, value);
  if (rc) return rc;
  j->bytes += key.n + value.n;
  return 0;
}

static void send_work(uv_work_t *w) {
  send_job *j = w->data;
  storage_entries_init(&j->got);
  /* storage_scan_range takes (start, end]: lo - 1 is safe, lo > INT64_MIN */
  int rc = storage_scan_range(j->s->eng->st, j->p.table_id, j->p.lo - 1, j->p.hi, collect, j);
  j->done = rc == 0;
  j->rc = rc < 0 ? rc : 0;
  wire_chunk c = {.id = j->p.id, .host_id = cluster_host_id(j->s->cl), .code = j->rc,
                  .message = j->rc ? cellar_strerror(j->rc) : "", .n = j->rc ? 0 : j->got.n,
                  .e = j->got.e, .done = j->done};
  j->out = wire_chunk_encode(&c, &j->outlen);
  storage_entries_free(&j->got);
}

static void send_done(uv_work_t *w, int status) {
  send_job *j = w->data;
  (void)status;
  if (j->out && !j->s->stopping)
    cluster_send(j->s->cl, j->p.from, FRAME_STREAM_CHUNK, 0, j->out, j->outlen);
  free(j->out);
  wire_pull_free(&j->p);
  free(j);
}

static void on_pull(stream *s, const uint8_t *payload, size_t len) {
  send_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->s = s;
  if (wire_pull_decode(payload, len, &j->p) != 0 || strcmp(j->p.cluster, cluster_name(s->cl)) ||
      j->p.from[0] == '\0' || j->p.lo == INT64_MIN || s->stopping) {
    wire_pull_free(&j->p);
    free(j);
    return;
  }
  if (j->p.max_bytes > 16u * STREAM_CHUNK_BYTES) j->p.max_bytes = 16u * STREAM_CHUNK_BYTES;
  j->work.data = j;
  if (uv_queue_work(s->loop, &j->work, send_work, send_done) != 0) {
    wire_pull_free(&j->p);
    free(j);
  }
}

void stream_on_frame(stream *s, const frame_header *h, const uint8_t *payload) {
  if (h->type == FRAME_STREAM_PULL) on_pull(s, payload, h->length);
  else if (h->type == FRAME_STREAM_CHUNK) on_chunk(s, payload, h->length);
  else if (h->type == FRAME_STREAM_ORDER && !s->stopping) on_order(s, payload, h->length);
}

void stream_stop(stream *s) {
  s->stopping = 1;
  job *next;
  for (job *j = s->jobs; j; j = next) {
    next = j->next;            /* finish may free j */
    finish(j, CELLAR_ESHUTDOWN);
  }
}
