/*
** ring: tokens, replica placement and token allocation. See ring.h.
**
** Invariants:
**   1. r->tokens is sorted by token and holds every token of every member
**      exactly once; no two members share a token.
**   2. The range owned (as primary) through token i is (tokens[i-1].token,
**      tokens[i].token], wrapping from the last token to the first.
*/
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "ring.h"

void ring_init(ring *r) { memset(r, 0, sizeof *r); }

void ring_free(ring *r) {
  for (size_t i = 0; i < r->nmembers; i++) free(r->members[i].tokens);
  free(r->members);
  free(r->tokens);
  memset(r, 0, sizeof *r);
}

int ring_find(const ring *r, const char *host_id) {
  for (size_t i = 0; i < r->nmembers; i++)
    if (!strcmp(r->members[i].host_id, host_id)) return (int)i;
  return -1;
}

static int cmp_token(const void *a, const void *b) {
  int64_t x = ((const ring_token *)a)->token, y = ((const ring_token *)b)->token;
  return (x > y) - (x < y);
}

/* Rebuilds the sorted token array from the members (invariant 1). */
static int rebuild(ring *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->nmembers; i++) n += r->members[i].ntokens;
  ring_token *t = malloc((n ? n : 1) * sizeof *t);
  if (t == NULL) return CELLAR_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < r->nmembers; i++)
    for (size_t j = 0; j < r->members[i].ntokens; j++)
      t[k++] = (ring_token){r->members[i].tokens[j], (uint32_t)i};
  qsort(t, n, sizeof *t, cmp_token);
  free(r->tokens);
  r->tokens = t;
  r->ntokens = n;
  return 0;
}

static int token_taken(const ring *r, int64_t t) {
  size_t lo = 0, hi = r->ntokens;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r->tokens[mid].token < t) lo = mid + 1;
    else hi = mid;
  }
  return lo < r->ntokens && r->tokens[lo].token == t;
}

int ring_add(ring *r, const char *host_id, const char *dc, const char *rack,
             const int64_t *tokens, size_t ntokens) {
  if (ring_find(r, host_id) >= 0) return CELLAR_EEXISTS;
  for (size_t i = 0; i < ntokens; i++) {
    if (token_taken(r, tokens[i])) return CELLAR_EEXISTS;
    for (size_t j = 0; j < i; j++)
      if (tokens[j] == tokens[i]) return CELLAR_EEXISTS;
  }
  if (r->nmembers == r->capmembers) {
    size_t cap = r->capmembers ? r->capmembers * 2 : 8;
    ring_member *m = realloc(r->members, cap * sizeof *m);
    if (m == NULL) return CELLAR_ENOMEM;
    r->members = m;
    r->capmembers = cap;
  }
  ring_member *m = &r->members[r->nmembers];
  memset(m, 0, sizeof *m);
  strncpy(m->host_id, host_id, sizeof m->host_id - 1);
  strncpy(m->dc, dc, sizeof m->dc - 1);
  strncpy(m->rack, rack, sizeof m->rack - 1);
  m->tokens = malloc((ntokens ? ntokens : 1) * sizeof *m->tokens);
  if (m->tokens == NULL) return CELLAR_ENOMEM;
  memcpy(m->tokens, tokens, ntokens * sizeof *tokens);
  m->ntokens = ntokens;
  r->nmembers++;
  int rc = rebuild(r);
  if (rc) {
    free(m->tokens);
    r->nmembers--;
    return rc;
  }
  return (int)(r->nmembers - 1);
}

int ring_remove(ring *r, const char *host_id) {
  int i = ring_find(r, host_id);
  if (i < 0) return CELLAR_ENOTFOUND;
  free(r->members[i].tokens);
  memmove(&r->members[i], &r->members[i + 1],
          (r->nmembers - (size_t)i - 1) * sizeof *r->members);
  r->nmembers--;
  return rebuild(r);
}

/* Index of the first token >= t, wrapping to 0. */
static size_t first_at_or_after(const ring *r, int64_t t) {
  size_t lo = 0, hi = r->ntokens;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r->tokens[mid].token < t) lo = mid + 1;
    else hi = mid;
  }
  return lo == r->ntokens ? 0 : lo;
}

static int chosen(const uint32_t *out, size_t n, uint32_t m) {
  for (size_t i = 0; i < n; i++)
    if (out[i] == m) return 1;
  return 0;
}

static size_t simple_replicas(const ring *r, uint32_t rf, size_t start,
                              uint32_t *out, size_t max) {
  size_t n = 0, want = rf < max ? rf : max;
  for (size_t k = 0; k < r->ntokens && n < want; k++) {
    uint32_t m = r->tokens[(start + k) % r->ntokens].member;
    if (!chosen(out, n, m)) out[n++] = m;
  }
  return n;
}

/* Distinct racks of a datacenter. */
static size_t racks_in_dc(const ring *r, const char *dc) {
  size_t n = 0;
  for (size_t i = 0; i < r->nmembers; i++) {
    if (strcmp(r->members[i].dc, dc)) continue;
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = !strcmp(r->members[j].dc, dc) && !strcmp(r->members[j].rack, r->members[i].rack);
    if (!seen) n++;
  }
  return n;
}

static size_t members_in_dc(const ring *r, const char *dc) {
  size_t n = 0;
  for (size_t i = 0; i < r->nmembers; i++) n += !strcmp(r->members[i].dc, dc);
  return n;
}

static size_t nts_replicas(const ring *r, const keyspace_def *ks, size_t start,
                           uint32_t *out, size_t max) {
  size_t n = 0;
  for (size_t d = 0; d < ks->ndcs && n < max; d++) {
    const char *dc = ks->dcs[d].name;
    size_t need = ks->dcs[d].rf, have = 0;
    size_t inDc = members_in_dc(r, dc);
    if (need > inDc) need = inDc;
    size_t nracks = racks_in_dc(r, dc), seen_racks = 0;
    const char **racks = calloc(nracks + 1, sizeof *racks);
    uint32_t *skipped = calloc(inDc + 1, sizeof *skipped);
    size_t nskipped = 0;
    if (racks == NULL || skipped == NULL) {
      free(racks);
      free(skipped);
      return n;
    }
    for (size_t k = 0; k < r->ntokens && have < need && n < max; k++) {
      uint32_t m = r->tokens[(start + k) % r->ntokens].member;
      const ring_member *mm = &r->members[m];
      if (strcmp(mm->dc, dc) || chosen(out, n, m) || chosen(skipped, nskipped, m)) continue;
      int rack_seen = 0;
      for (size_t j = 0; j < seen_racks && !rack_seen; j++) rack_seen = !strcmp(racks[j], mm->rack);
      if (!rack_seen) {
        out[n++] = m;
        have++;
        racks[seen_racks++] = mm->rack;
        if (seen_racks == nracks) {
          /* every rack used: members set aside come next, in ring order */
          for (size_t j = 0; j < nskipped && have < need && n < max; j++) {
            out[n++] = skipped[j];
            have++;
          }
          nskipped = 0;
        }
      } else if (seen_racks == nracks) {
        out[n++] = m;
        have++;
      } else {
        skipped[nskipped++] = m;
      }
    }
    for (size_t j = 0; j < nskipped && have < need && n < max; j++) {
      out[n++] = skipped[j];
      have++;
    }
    free(racks);
    free(skipped);
  }
  return n;
}

size_t ring_replicas(const ring *r, const keyspace_def *ks, int64_t t,
                     uint32_t *out, size_t max) {
  if (r->ntokens == 0 || max == 0) return 0;
  size_t start = first_at_or_after(r, t);
  if (ks == NULL) {
    out[0] = r->tokens[start].member;
    return 1;
  }
  if (ks->strategy == REPL_NETWORK_TOPOLOGY) return nts_replicas(r, ks, start, out, max);
  return simple_replicas(r, ks->rf, start, out, max);
}

/* Size of the range ending at token index i, as a fraction of the ring. */
static double range_size(const ring_token *t, size_t n, size_t i) {
  if (n == 1) return 1.0;
  uint64_t prev = (uint64_t)t[(i + n - 1) % n].token;
  uint64_t cur = (uint64_t)t[i].token;
  return (double)(cur - prev) / 18446744073709551616.0;
}

void ring_ownership(const ring *r, const keyspace_def *ks, double *own) {
  for (size_t i = 0; i < r->nmembers; i++) own[i] = 0;
  uint32_t *reps = malloc((r->nmembers + 1) * sizeof *reps);
  if (reps == NULL) return;
  for (size_t i = 0; i < r->ntokens; i++) {
    double sz = range_size(r->tokens, r->ntokens, i);
    size_t n = ring_replicas(r, ks, r->tokens[i].token, reps, r->nmembers);
    for (size_t k = 0; k < n; k++) own[reps[k]] += sz;
  }
  free(reps);
}

int ring_allocate_tokens(const ring *r, size_t ntokens, uint64_t seed,
                         int64_t *out) {
  if (ntokens == 0) return CELLAR_EINVAL;
  if (r->ntokens == 0) {
    uint64_t step = UINT64_MAX / ntokens;
    uint64_t off = seed % step;
    for (size_t i = 0; i < ntokens; i++)
      out[i] = (int64_t)((uint64_t)INT64_MIN + off + i * step);
    return 0;
  }
  /* work on a copy: existing tokens plus the new ones placed so far;
  ** member index r->nmembers stands for the new member */
  size_t cap = r->ntokens + ntokens;
  ring_token *t = malloc(cap * sizeof *t);
  double *own = calloc(r->nmembers + 1, sizeof *own);
  if (t == NULL || own == NULL) {
    free(t);
    free(own);
    return CELLAR_ENOMEM;
  }
  memcpy(t, r->tokens, r->ntokens * sizeof *t);
  size_t n = r->ntokens;
  uint32_t newm = (uint32_t)r->nmembers;
  double target = 1.0 / (double)(r->nmembers + 1);
  for (size_t k = 0; k < ntokens; k++) {
    for (size_t i = 0; i <= r->nmembers; i++) own[i] = 0;
    for (size_t i = 0; i < n; i++) own[t[i].member] += range_size(t, n, i);
    /* the member that owns the most, and its largest range */
    uint32_t big = 0;
    for (uint32_t i = 1; i < r->nmembers; i++)
      if (own[i] > own[big]) big = i;
    size_t best = n;
    double bestsz = -1;
    for (size_t i = 0; i < n; i++)
      if (t[i].member == big && range_size(t, n, i) > bestsz) {
        bestsz = range_size(t, n, i);
        best = i;
      }
    /* spread what is still missing over the tokens still to place; never
    ** swallow a whole range */
    double want = (target - own[newm]) / (double)(ntokens - k);
    double take = want < bestsz * 0.9 ? want : bestsz * 0.9;
    if (take <= 0) take = bestsz / 2;
    uint64_t prev = (uint64_t)t[(best + n - 1) % n].token;
    uint64_t delta = (uint64_t)(take * 18446744073709551616.0);
    if (delta == 0) delta = 1;
    int64_t nt = (int64_t)(prev + delta + (seed % 97));   /* a little jitter */
    /* never collide with an existing token */
    for (int tries = 0; tries < 64; tries++) {
      int clash = 0;
      for (size_t i = 0; i < n && !clash; i++) clash = t[i].token == nt;
      if (!clash) break;
      nt++;
    }
    out[k] = nt;
    t[n++] = (ring_token){nt, newm};
    qsort(t, n, sizeof *t, cmp_token);
  }
  free(t);
  free(own);
  return 0;
}
