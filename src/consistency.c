/*
** consistency: consistency-level arithmetic. See consistency.h.
**
** Invariants:
**   1. need->total is the number of counting acknowledgements that meets
**      the level; for CL_SCOPE_EACH_DC it is the sum of dcs[].need, and the
**      level is met only when every datacenter has its own need.
**   2. A tracker records at most one acknowledgement per replica: got
**      never exceeds the number of counting replicas.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "consistency.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void copy_name(char *dst, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n > RING_NAME_MAX) n = RING_NAME_MAX;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

void cl_replicas_from_ring(const ring *r, const uint32_t *members, size_t n,
                           const uint8_t *alive, cl_replica *out) {
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].member = members[i];
    if (members[i] < r->nmembers) copy_name(out[i].dc, r->members[members[i]].dc);
    out[i].alive = alive ? alive[i] != 0 : 1;
  }
}

static uint32_t quorum_of(uint32_t rf) { return rf / 2 + 1; }

static uint32_t total_rf(const keyspace_def *ks) {
  if (ks->strategy != REPL_NETWORK_TOPOLOGY) return ks->rf;
  uint32_t s = 0;
  for (size_t i = 0; i < ks->ndcs; i++) s += ks->dcs[i].rf;
  return s;
}

static uint32_t dc_rf(const keyspace_def *ks, const char *dc) {
  for (size_t i = 0; i < ks->ndcs; i++)
    if (!strcmp(ks->dcs[i].name, dc)) return ks->dcs[i].rf;
  return 0;
}

int cl_need_init(cl_need *n, const keyspace_def *ks, const char *local_dc,
                 cellar_consistency_t level, int write, char *err,
                 size_t errlen) {
  memset(n, 0, sizeof *n);
  n->level = level;
  n->write = write != 0;
  n->scope = CL_SCOPE_ANY_DC;
  copy_name(n->local_dc, local_dc);
  const char *name = cellar_consistency_name(level);
  if (name == NULL) {
    seterr(err, errlen, "invalid consistency level %d", (int)level);
    return CELLAR_EBADCL;
  }
  if (level == CELLAR_CL_ANY && !write) {
    seterr(err, errlen, "consistency level ANY is only valid for writes");
    return CELLAR_EBADCL;
  }
  int nts = ks->strategy == REPL_NETWORK_TOPOLOGY;
  uint32_t rf = total_rf(ks);
  switch (level) {
  case CELLAR_CL_ONE:
  case CELLAR_CL_ANY:
    n->total = 1;
    break;
  case CELLAR_CL_TWO:
    n->total = 2;
    break;
  case CELLAR_CL_THREE:
    n->total = 3;
    break;
  case CELLAR_CL_QUORUM:
    n->total = quorum_of(rf);
    break;
  case CELLAR_CL_ALL:
    n->total = rf;
    break;
  case CELLAR_CL_LOCAL_ONE:
  case CELLAR_CL_LOCAL_QUORUM: {
    int one = level == CELLAR_CL_LOCAL_ONE;
    if (!nts) {                          /* decision 1: all is local */
      n->total = one ? 1 : quorum_of(rf);
      break;
    }
    if (n->local_dc[0] == '\0') {
      seterr(err, errlen, "%s needs the coordinator's datacenter", name);
      return CELLAR_EBADCL;
    }
    n->scope = CL_SCOPE_LOCAL_DC;
    n->total = one ? 1 : quorum_of(dc_rf(ks, n->local_dc));
    break;
  }
  case CELLAR_CL_EACH_QUORUM:
    if (!nts) {                          /* decision 1 */
      n->total = quorum_of(rf);
      break;
    }
    n->scope = CL_SCOPE_EACH_DC;
    for (size_t i = 0; i < ks->ndcs && n->ndcs < SCHEMA_DC_MAX; i++) {
      if (ks->dcs[i].rf == 0) continue;
      copy_name(n->dcs[n->ndcs].name, ks->dcs[i].name);
      n->dcs[n->ndcs].need = quorum_of(ks->dcs[i].rf);
      n->total += n->dcs[n->ndcs].need;
      n->ndcs++;
    }
    if (n->ndcs == 0) n->total = 1;    /* no replicas anywhere: unavailable */
    break;
  default:
    seterr(err, errlen, "invalid consistency level %d", (int)level);
    return CELLAR_EBADCL;
  }
  return 0;
}

int cl_group(const cl_need *n, const char *dc) {
  switch (n->scope) {
  case CL_SCOPE_LOCAL_DC:
    return dc && !strcmp(dc, n->local_dc) ? 0 : -1;
  case CL_SCOPE_EACH_DC:
    for (size_t i = 0; i < n->ndcs; i++)
      if (dc && !strcmp(dc, n->dcs[i].name)) return (int)i;
    return -1;
  default:
    return 0;
  }
}

int cl_check_alive(const cl_need *n, const cl_replica *reps, size_t nreps,
                   char *err, size_t errlen) {
  const char *name = cellar_consistency_name(n->level);
  if (n->level == CELLAR_CL_ANY) {
    /* a hint for any replica satisfies ANY, so only an empty set fails */
    if (nreps > 0) return 0;
    seterr(err, errlen, "ANY requires 1 replicas, 0 alive");
    return CELLAR_EUNAVAILABLE;
  }
  uint32_t alive = 0, alive_dc[SCHEMA_DC_MAX] = {0};
  for (size_t i = 0; i < nreps; i++) {
    if (!reps[i].alive) continue;
    int g = cl_group(n, reps[i].dc);
    if (g < 0) continue;
    alive++;
    alive_dc[g]++;
  }
  if (n->scope == CL_SCOPE_EACH_DC && n->ndcs > 0) {
    for (size_t d = 0; d < n->ndcs; d++) {
      if (alive_dc[d] >= n->dcs[d].need) continue;
      seterr(err, errlen, "%s requires %u replicas in %s, %u alive", name,
             n->dcs[d].need, n->dcs[d].name, alive_dc[d]);
      return CELLAR_EUNAVAILABLE;
    }
    return 0;
  }
  if (alive >= n->total) return 0;
  if (n->scope == CL_SCOPE_LOCAL_DC)
    seterr(err, errlen, "%s requires %u replicas in %s, %u alive", name, n->total,
           n->local_dc, alive);
  else
    seterr(err, errlen, "%s requires %u replicas, %u alive", name, n->total, alive);
  return CELLAR_EUNAVAILABLE;
}

int cl_tracker_init(cl_tracker *t, const cl_need *n, const cl_replica *reps,
                    size_t nreps) {
  memset(t, 0, sizeof *t);
  if (nreps > CL_MAX_REPLICAS) return CELLAR_EINVAL;
  t->need = *n;
  t->nreplicas = nreps;
  for (size_t i = 0; i < nreps; i++) {
    t->group[i] = (int8_t)cl_group(n, reps[i].dc);
    t->state[i] = CL_PENDING;
  }
  return 0;
}

int cl_tracker_ack(cl_tracker *t, uint32_t i) {
  if (i >= t->nreplicas || t->state[i] != CL_PENDING) return 0;
  t->state[i] = CL_ACKED;
  int g = t->group[i];
  if (g >= 0) {
    t->got++;
    t->got_dc[g]++;
  }
  return 1;
}

void cl_tracker_exclude(cl_tracker *t, uint32_t i) {
  if (i < t->nreplicas && t->state[i] == CL_PENDING) t->state[i] = CL_EXCLUDED;
}

/* Met, counting pending replicas as acknowledged when with_pending. */
static int met(const cl_tracker *t, int with_pending) {
  uint32_t got = t->got, got_dc[SCHEMA_DC_MAX];
  memcpy(got_dc, t->got_dc, sizeof got_dc);
  if (with_pending) {
    for (size_t i = 0; i < t->nreplicas; i++) {
      if (t->state[i] != CL_PENDING || t->group[i] < 0) continue;
      got++;
      got_dc[t->group[i]]++;
    }
  }
  if (t->need.scope == CL_SCOPE_EACH_DC && t->need.ndcs > 0) {
    for (size_t d = 0; d < t->need.ndcs; d++)
      if (got_dc[d] < t->need.dcs[d].need) return 0;
    return 1;
  }
  return got >= t->need.total;
}

int cl_tracker_met(const cl_tracker *t) { return met(t, 0); }

int cl_tracker_reachable(const cl_tracker *t) { return met(t, 1); }

uint32_t cl_tracker_required(const cl_tracker *t) { return t->need.total; }

uint32_t cl_tracker_received(const cl_tracker *t) { return t->got; }

void cl_tracker_describe(const cl_tracker *t, const char *noun, char *buf,
                         size_t len) {
  const cl_need *n = &t->need;
  const char *name = cellar_consistency_name(n->level);
  if (name == NULL) name = "?";
  if (n->scope == CL_SCOPE_EACH_DC) {
    for (size_t d = 0; d < n->ndcs; d++) {
      if (t->got_dc[d] >= n->dcs[d].need) continue;
      seterr(buf, len, "%s required %u %s in %s, got %u", name, n->dcs[d].need,
             noun, n->dcs[d].name, t->got_dc[d]);
      return;
    }
  }
  if (n->scope == CL_SCOPE_LOCAL_DC)
    seterr(buf, len, "%s required %u %s in %s, got %u", name, n->total, noun,
           n->local_dc, t->got);
  else
    seterr(buf, len, "%s required %u %s, got %u", name, n->total, noun, t->got);
}
