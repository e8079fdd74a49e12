/*
** stream: range streaming for bootstrap. See stream.h for the protocol.
**
** Invariants:
**   1. At most one pull is outstanding; a chunk is accepted only if it
**      answers that pull (same id), anything else is dropped.
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

struct stream {
  uv_loop_t *loop;
  engine *eng;
  cluster *cl;
  uv_timer_t timer;
  int timer_init;
  int stopping;
  /* the bootstrap in progress */
  int active;
  cluster_range *ranges;
  size_t n, i;
  uint64_t pull_id, next_id;
  uint8_t *after;              /* last key applied in range i, malloc'd */
  size_t nafter;
  int64_t lo;                  /* where the next pull of range i starts */
  int tries;
  int applying;                /* a chunk is being applied */
  uint64_t entries;
  void (*done)(void *, int, uint64_t);
  void *done_arg;
};

int stream_new(uv_loop_t *loop, engine *eng, cluster *cl, stream **out) {
  stream *s = calloc(1, sizeof *s);
  if (s == NULL) return CELLAR_ENOMEM;
  s->loop = loop;
  s->eng = eng;
  s->cl = cl;
  s->next_id = 1;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->timer_init = 1;
  *out = s;
  return 0;
}

void stream_free(stream *s) {
  if (s == NULL) return;
  free(s->ranges);
  free(s->after);
  free(s);
}

static void finish(stream *s, int rc) {
  if (!s->active) return;
  s->active = 0;
  uv_timer_stop(&s->timer);
  if (rc) log_error("stream: bootstrap failed at range %zu of %zu: %s", s->i + 1, s->n,
                    cellar_strerror(rc));
  else log_info("stream: bootstrap received %llu entries in %zu ranges",
                (unsigned long long)s->entries, s->n);
  if (s->done) s->done(s->done_arg, rc, s->entries);
}

static void send_pull(stream *s);

static void on_timeout(uv_timer_t *t) {
  stream *s = t->data;
  if (!s->active || s->applying) return;
  if (++s->tries > STREAM_RETRIES) {
    finish(s, CELLAR_ETIMEDOUT);
    return;
  }
  log_warn("stream: no answer from %s, asking again", s->ranges[s->i].source);
  send_pull(s);
}

static void send_pull(stream *s) {
  if (s->stopping) {
    finish(s, CELLAR_ESHUTDOWN);
    return;
  }
  while (s->i < s->n && s->ranges[s->i].source[0] == '\0') s->i++;   /* no source */
  if (s->i == s->n) {
    finish(s, 0);
    return;
  }
  const cluster_range *r = &s->ranges[s->i];
  s->pull_id = s->next_id++;
  wire_pull w = {.id = s->pull_id, .from = cluster_peer_addr(s->cl),
                 .cluster = cluster_name(s->cl), .table_id = r->table_id, .lo = s->lo,
                 .hi = r->hi, .after_key = CBYTES(s->after, s->nafter),
                 .max_bytes = STREAM_CHUNK_BYTES};
  size_t len = 0;
  uint8_t *p = wire_pull_encode(&w, &len);
  if (p) cluster_send(s->cl, r->source, FRAME_STREAM_PULL, 0, p, len);
  free(p);
  uv_timer_start(&s->timer, on_timeout, STREAM_TIMEOUT_MS, 0);
}

static void next_range(stream *s) {
  s->i++;
  free(s->after);
  s->after = NULL;
  s->nafter = 0;
  s->tries = 0;
  if (s->i < s->n) s->lo = s->ranges[s->i].lo;
  send_pull(s);
}

int stream_bootstrap(stream *s, const cluster_range *ranges, size_t n,
                     void (*done)(void *arg, int rc, uint64_t entries), void *arg) {
  if (s->active) return CELLAR_EINVAL;
  free(s->ranges);
  s->ranges = malloc((n ? n : 1) * sizeof *ranges);
  if (s->ranges == NULL) return CELLAR_ENOMEM;
  if (n) memcpy(s->ranges, ranges, n * sizeof *ranges);
  s->n = n;
  s->i = 0;
  s->entries = 0;
  s->tries = 0;
  free(s->after);
  s->after = NULL;
  s->nafter = 0;
  s->done = done;
  s->done_arg = arg;
  s->active = 1;
  s->lo = n ? ranges[0].lo : 0;
  log_info("stream: bootstrap pulls %zu ranges", n);
  send_pull(s);
  return 0;
}

/* ----------------------------------------------------------- receiving */

typedef struct apply_job {
  uv_work_t work;
  stream *s;
  wire_chunk c;
  int rc;
} apply_job;

static void apply_work(uv_work_t *w) {
  apply_job *j = w->data;
  j->rc = storage_apply_entries(j->s->eng->st, j->c.e, j->c.n, NULL);
}

static void apply_done(uv_work_t *w, int status) {
  apply_job *j = w->data;
  stream *s = j->s;
  (void)status;
  s->applying = 0;
  if (s->active) {
    if (j->rc) {
      if (++s->tries > STREAM_RETRIES) finish(s, j->rc);
      else send_pull(s);
    } else {
      s->entries += j->c.n;
      s->tries = 0;
      if (j->c.done || j->c.n == 0) {
        next_range(s);
      } else {
        /* invariant 3: resume after the last key, from its token */
        const storage_entry *last = &j->c.e[j->c.n - 1];
        uint8_t *k = malloc(last->key.n);
        if (k == NULL || last->key.n < 16) {
          free(k);
          finish(s, CELLAR_EPROTO);
        } else {
          memcpy(k, last->key.p, last->key.n);
          free(s->after);
          s->after = k;
          s->nafter = last->key.n;
          s->lo = token_decode(k + 8);
          send_pull(s);
        }
      }
    }
  }
  wire_chunk_free(&j->c);
  free(j);
}

static void on_chunk(stream *s, const uint8_t *payload, size_t len) {
  apply_job *j = calloc(1, sizeof *j);
  if (j == NULL) return;
  j->s = s;
  if (wire_chunk_decode(payload, len, &j->c) != 0 || !s->active || s->applying ||
      j->c.id != s->pull_id) {
    wire_chunk_free(&j->c);
    free(j);
    return;   /* invariant 1 */
  }
  uv_timer_stop(&s->timer);
  if (j->c.code) {
    log_warn("stream: %s answered %s: %s", s->ranges[s->i].source, cellar_err_name(j->c.code),
             j->c.message);
    wire_chunk_free(&j->c);
    free(j);
    if (++s->tries > STREAM_RETRIES) finish(s, CELLAR_EIO);
    else send_pull(s);
    return;
  }
  s->applying = 1;
  j->work.data = j;
  if (uv_queue_work(s->loop, &j->work, apply_work, apply_done) != 0) {
    s->applying = 0;
    wire_chunk_free(&j->c);
    free(j);
    finish(s, CELLAR_EINTERNAL);
  }
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
}

void stream_stop(stream *s) {
  s->stopping = 1;
  finish(s, CELLAR_ESHUTDOWN);
  if (s->timer_init) {
    s->timer_init = 0;
    uv_close((uv_handle_t *)&s->timer, NULL);
  }
}
