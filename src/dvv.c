/* dvv: dotted version vector sets for one cell (see dvv.h). */
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "dvv.h"
#include "token.h"

/* ------------------------------------------------------------ actors */

dvv_actor dvv_actor_of(const char *host_id, uint32_t incarnation) {
  dvv_actor a;
  a.node = (uint64_t)token_of(host_id, strlen(host_id));
  a.inc = incarnation;
  return a;
}

int dvv_actor_cmp(dvv_actor a, dvv_actor b) {
  if (a.node != b.node) return a.node < b.node ? -1 : 1;
  if (a.inc != b.inc) return a.inc < b.inc ? -1 : 1;
  return 0;
}

/* The set's sibling order: actor ascending, counter descending. */
static int dot_order(dvv_dot a, dvv_dot b) {
  int r = dvv_actor_cmp(a.actor, b.actor);
  if (r) return r;
  if (a.counter != b.counter) return a.counter > b.counter ? -1 : 1;
  return 0;
}

/* ---------------------------------------------------- version vectors */

void dvv_vv_init(dvv_vv *v) { memset(v, 0, sizeof *v); }

void dvv_vv_close(dvv_vv *v) {
  free(v->e);
  memset(v, 0, sizeof *v);
}

/* Index of actor in v, or -(insertion point) - 1. */
static long vv_find(const dvv_vv *v, dvv_actor actor) {
  size_t lo = 0, hi = v->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = dvv_actor_cmp(v->e[mid].actor, actor);
    if (r == 0) return (long)mid;
    if (r < 0) lo = mid + 1;
    else hi = mid;
  }
  return -(long)lo - 1;
}

uint64_t dvv_vv_get(const dvv_vv *v, dvv_actor actor) {
  if (v == NULL) return 0;
  long i = vv_find(v, actor);
  return i >= 0 ? v->e[i].counter : 0;
}

static int vv_reserve(dvv_vv *v, size_t n) {
  if (n <= v->cap) return 0;
  size_t cap = v->cap ? v->cap * 2 : 4;
  while (cap < n) cap *= 2;
  dvv_entry *e = realloc(v->e, cap * sizeof *e);
  if (e == NULL) return CELLAR_ENOMEM;
  v->e = e;
  v->cap = cap;
  return 0;
}

int dvv_vv_raise(dvv_vv *v, dvv_actor actor, uint64_t counter) {
  if (counter == 0) return 0;
  long i = vv_find(v, actor);
  if (i >= 0) {
    if (v->e[i].counter < counter) v->e[i].counter = counter;
    return 0;
  }
  if (vv_reserve(v, v->n + 1)) return CELLAR_ENOMEM;
  size_t at = (size_t)(-i - 1);
  memmove(v->e + at + 1, v->e + at, (v->n - at) * sizeof *v->e);
  v->e[at].actor = actor;
  v->e[at].counter = counter;
  v->n++;
  return 0;
}

int dvv_vv_covers(const dvv_vv *v, dvv_dot d) {
  return dvv_vv_get(v, d.actor) >= d.counter;
}

static int vv_copy(dvv_vv *dst, const dvv_vv *src) {
  dst->n = 0;
  if (vv_reserve(dst, src->n)) return CELLAR_ENOMEM;
  if (src->n) memcpy(dst->e, src->e, src->n * sizeof *src->e);
  dst->n = src->n;
  return 0;
}

dvv_order dvv_vv_compare(const dvv_vv *a, const dvv_vv *b) {
  int a_more = 0, b_more = 0;   /* a has a dot b lacks, and vice versa */
  size_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    int r = i == a->n ? 1 : j == b->n ? -1
                                      : dvv_actor_cmp(a->e[i].actor, b->e[j].actor);
    if (r < 0) {
      a_more = 1;
      i++;
    } else if (r > 0) {
      b_more = 1;
      j++;
    } else {
      if (a->e[i].counter > b->e[j].counter) a_more = 1;
      else if (a->e[i].counter < b->e[j].counter) b_more = 1;
      i++;
      j++;
    }
  }
  if (a_more && b_more) return DVV_CONCURRENT;
  if (a_more) return DVV_GREATER;
  if (b_more) return DVV_LESS;
  return DVV_EQUAL;
}

int dvv_vv_equal(const dvv_vv *a, const dvv_vv *b) {
  return dvv_vv_compare(a, b) == DVV_EQUAL;
}

/* ------------------------------------------------------------- sets */

void dvv_init(dvv *s) { memset(s, 0, sizeof *s); }

static void sibs_free(dvv_sib *sib, size_t n) {
  for (size_t i = 0; i < n; i++) free(sib[i].value);
}

void dvv_close(dvv *s) {
  sibs_free(s->sib, s->nsib);
  free(s->sib);
  dvv_vv_close(&s->clock);
  memset(s, 0, sizeof *s);
}

static void dvv_empty(dvv *s) {
  sibs_free(s->sib, s->nsib);
  s->nsib = 0;
  s->clock.n = 0;
}

static int sib_reserve(dvv_sib **sib, size_t *cap, size_t n) {
  if (n <= *cap) return 0;
  size_t c = *cap ? *cap * 2 : 4;
  while (c < n) c *= 2;
  dvv_sib *p = realloc(*sib, c * sizeof *p);
  if (p == NULL) return CELLAR_ENOMEM;
  *sib = p;
  *cap = c;
  return 0;
}

/* A deep copy of one sibling's payload (the value bytes). */
static int sib_dup(dvv_sib *dst, const dvv_sib *src) {
  *dst = *src;
  dst->value = NULL;
  if (src->nvalue) {
    dst->value = malloc(src->nvalue);
    if (dst->value == NULL) return CELLAR_ENOMEM;
    memcpy(dst->value, src->value, src->nvalue);
  }
  return 0;
}

int dvv_copy(dvv *dst, const dvv *src) {
  if (dst == src) return 0;
  dvv_empty(dst);
  if (vv_copy(&dst->clock, &src->clock) ||
      sib_reserve(&dst->sib, &dst->capsib, src->nsib))
    goto nomem;
  for (size_t i = 0; i < src->nsib; i++) {
    if (sib_dup(&dst->sib[i], &src->sib[i])) goto nomem;
    dst->nsib = i + 1;
  }
  return 0;
nomem:
  dvv_empty(dst);
  return CELLAR_ENOMEM;
}

static int write_check(const dvv_write *w) {
  if (w->tombstone && w->value.n) return CELLAR_EINVAL;
  if (w->value.n > CELLAR_MAX_VALUE_BYTES) return CELLAR_EINVAL;
  if (w->value.n && w->value.p == NULL) return CELLAR_EINVAL;
  return 0;
}

int dvv_new(dvv *s, dvv_actor self, const dvv_write *w) {
  dvv_empty(s);
  return dvv_event(s, NULL, self, w, 0, NULL);
}

int dvv_join(const dvv *s, dvv_vv *out) { return vv_copy(out, &s->clock); }

size_t dvv_event_siblings(const dvv *s, const dvv_vv *ctx) {
  size_t kept = 0;
  for (size_t i = 0; i < s->nsib; i++)
    if (!dvv_vv_covers(ctx, s->sib[i].dot)) kept++;
  return kept + 1;
}

int dvv_event(dvv *s, const dvv_vv *ctx, dvv_actor self, const dvv_write *w,
              size_t limit, dvv_dot *dot) {
  int rc = write_check(w);
  if (rc) return rc;
  uint64_t mine = dvv_vv_get(&s->clock, self);
  uint64_t seen = dvv_vv_get(ctx, self);
  uint64_t c = (mine > seen ? mine : seen) + 1;
  if (c > DVV_MAX_COUNTER) return CELLAR_ETOOBIG;
  if (limit && dvv_event_siblings(s, ctx) > limit) return CELLAR_ETOOBIG;

  /* Everything that can fail first (allocations), then the changes: the
  ** set is untouched on error. The new clock is built aside. */
  dvv_vv clock;
  dvv_vv_init(&clock);
  dvv_sib nw;
  memset(&nw, 0, sizeof nw);
  if (vv_copy(&clock, &s->clock)) goto nomem;
  for (size_t i = 0; ctx && i < ctx->n; i++)
    if (dvv_vv_raise(&clock, ctx->e[i].actor, ctx->e[i].counter)) goto nomem;
  if (dvv_vv_raise(&clock, self, c)) goto nomem;
  if (sib_reserve(&s->sib, &s->capsib, s->nsib + 1)) goto nomem;
  if (w->value.n) {
    nw.value = malloc(w->value.n);
    if (nw.value == NULL) goto nomem;
    memcpy(nw.value, w->value.p, w->value.n);
    nw.nvalue = w->value.n;
  }
  nw.dot.actor = self;
  nw.dot.counter = c;
  nw.ts = w->ts;
  nw.tombstone = w->tombstone ? 1 : 0;
  nw.time = w->time;

  /* Supersede what the context saw, keep the rest in order, then insert
  ** the new sibling at its place (the first of its actor: the highest
  ** counter). */
  size_t k = 0;
  for (size_t i = 0; i < s->nsib; i++) {
    if (dvv_vv_covers(ctx, s->sib[i].dot)) free(s->sib[i].value);
    else s->sib[k++] = s->sib[i];
  }
  size_t at = 0;
  while (at < k && dot_order(s->sib[at].dot, nw.dot) < 0) at++;
  memmove(s->sib + at + 1, s->sib + at, (k - at) * sizeof *s->sib);
  s->sib[at] = nw;
  k++;
  s->nsib = k;
  dvv_vv_close(&s->clock);
  s->clock = clock;
  if (dot) *dot = nw.dot;
  return 0;
nomem:
  dvv_vv_close(&clock);
  free(nw.value);
  return CELLAR_ENOMEM;
}

int dvv_merge(dvv *a, const dvv *b) {
  if (a == b) return 0;
  dvv_vv clock;
  dvv_vv_init(&clock);
  dvv_sib *out = NULL;
  size_t nout = 0, capout = 0;
  /* from_a[k]: index in a of out[k] (its value is taken from a at the
  ** commit), or -1: a copy of b's (freed if the merge fails). */
  long *from_a = malloc((a->nsib + b->nsib + 1) * sizeof *from_a);
  if (from_a == NULL || vv_copy(&clock, &a->clock)) goto nomem;
  for (size_t i = 0; i < b->clock.n; i++)
    if (dvv_vv_raise(&clock, b->clock.e[i].actor, b->clock.e[i].counter))
      goto nomem;
  if (sib_reserve(&out, &capout, a->nsib + b->nsib)) goto nomem;

  /* Both sibling lists are sorted by dot_order: walk them together. A
  ** sibling held by one side only survives when the other side's history
  ** does not cover it (the other side never saw it); held by both, it
  ** survives. A dot held by both with different payloads (a collision,
  ** never in a correct cluster) keeps the LWW-greater payload, so the
  ** merge stays commutative even then. */
  size_t i = 0, j = 0;
  while (i < a->nsib || j < b->nsib) {
    int r = i == a->nsib ? 1 : j == b->nsib ? -1
                                            : dot_order(a->sib[i].dot, b->sib[j].dot);
    int take_a = 0, take_b = 0;
    if (r < 0) take_a = !dvv_vv_covers(&b->clock, a->sib[i].dot);
    else if (r > 0) take_b = !dvv_vv_covers(&a->clock, b->sib[j].dot);
    else if (dvv_sib_lww_cmp(&a->sib[i], &b->sib[j]) >= 0) take_a = 1;
    else take_b = 1;
    if (take_a) {
      out[nout] = a->sib[i];
      from_a[nout++] = (long)i;
    } else if (take_b) {
      if (sib_dup(&out[nout], &b->sib[j])) goto nomem;
      from_a[nout++] = -1;
    }
    if (r <= 0) i++;
    if (r >= 0) j++;
  }
  /* Commit: the kept values of a move to out, the others are freed. */
  for (size_t k = 0; k < nout; k++)
    if (from_a[k] >= 0) a->sib[from_a[k]].value = NULL;
  sibs_free(a->sib, a->nsib);
  free(a->sib);
  free(from_a);
  a->sib = out;
  a->nsib = nout;
  a->capsib = capout;
  dvv_vv_close(&a->clock);
  a->clock = clock;
  return 0;
nomem:
  for (size_t k = 0; k < nout; k++)
    if (from_a[k] < 0) free(out[k].value);
  free(out);
  free(from_a);
  dvv_vv_close(&clock);
  return CELLAR_ENOMEM;
}

dvv_order dvv_compare(const dvv *a, const dvv *b) {
  return dvv_vv_compare(&a->clock, &b->clock);
}

static int sib_same(const dvv_sib *a, const dvv_sib *b) {
  return dot_order(a->dot, b->dot) == 0 && a->ts == b->ts &&
         a->tombstone == b->tombstone && a->time == b->time &&
         a->nvalue == b->nvalue &&
         (a->nvalue == 0 || memcmp(a->value, b->value, a->nvalue) == 0);
}

int dvv_equal(const dvv *a, const dvv *b) {
  if (!dvv_vv_equal(&a->clock, &b->clock) || a->nsib != b->nsib) return 0;
  for (size_t i = 0; i < a->nsib; i++)
    if (!sib_same(&a->sib[i], &b->sib[i])) return 0;
  return 1;
}

size_t dvv_live_count(const dvv *s, uint32_t now_s) {
  size_t n = 0;
  for (size_t i = 0; i < s->nsib; i++) {
    const dvv_sib *x = &s->sib[i];
    if (!x->tombstone && (x->time == 0 || x->time > now_s)) n++;
  }
  return n;
}

#define CMP(x, y) do { if ((x) != (y)) return (x) > (y) ? 1 : -1; } while (0)

int dvv_sib_lww_cmp(const dvv_sib *a, const dvv_sib *b) {
  CMP(a->ts, b->ts);
  CMP(a->tombstone, b->tombstone);
  if (a->tombstone) {
    CMP(a->time, b->time);
  } else {
    uint64_t ea = a->time ? a->time : UINT64_MAX;
    uint64_t eb = b->time ? b->time : UINT64_MAX;
    CMP(ea, eb);
    size_t m = a->nvalue < b->nvalue ? a->nvalue : b->nvalue;
    int r = m ? memcmp(a->value, b->value, m) : 0;
    if (r) return r > 0 ? 1 : -1;
    CMP(a->nvalue, b->nvalue);
  }
  int r = dvv_actor_cmp(a->dot.actor, b->dot.actor);   /* greater dot wins */
  if (r) return r;
  CMP(a->dot.counter, b->dot.counter);
  return 0;
}

size_t dvv_lww(const dvv *s) {
  if (s->nsib == 0) return (size_t)-1;
  size_t w = 0;
  for (size_t i = 1; i < s->nsib; i++)
    if (dvv_sib_lww_cmp(&s->sib[i], &s->sib[w]) > 0) w = i;
  return w;
}

void dvv_discard(dvv *s, size_t i) {
  if (i >= s->nsib) return;
  free(s->sib[i].value);
  memmove(s->sib + i, s->sib + i + 1, (s->nsib - i - 1) * sizeof *s->sib);
  s->nsib--;
}

size_t dvv_purge(dvv *s, uint32_t cutoff_s) {
  size_t dropped = 0;
  for (size_t i = s->nsib; i-- > 0;) {
    const dvv_sib *x = &s->sib[i];
    /* a delete marker from its deletion time (even 0), a value from its
    ** expiry (0: never) */
    if (x->time < cutoff_s && (x->tombstone || x->time != 0)) {
      dvv_discard(s, i);
      dropped++;
    }
  }
  return dropped;
}

size_t dvv_prune(dvv *s, int (*retired)(void *arg, dvv_actor a), void *arg) {
  size_t k = 0, dropped = 0;
  for (size_t i = 0; i < s->clock.n; i++) {
    dvv_entry e = s->clock.e[i];
    int has_sib = 0;
    for (size_t j = 0; j < s->nsib && !has_sib; j++)
      has_sib = dvv_actor_cmp(s->sib[j].dot.actor, e.actor) == 0;
    if (!has_sib && retired(arg, e.actor)) {
      dropped++;
      continue;
    }
    s->clock.e[k++] = e;
  }
  s->clock.n = k;
  return dropped;
}

/* -------------------------------------------------------- encoding */

static size_t var_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t dvv_varint_put(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

static size_t put_be(uint8_t *out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
  return (size_t)bytes;
}

#define SIB_F_TOMBSTONE 0x01
#define SIB_F_EXPIRY 0x02

static size_t sib_size(const dvv_sib *x, uint64_t gap) {
  size_t n = var_len(gap) + 1 + 8;
  if (x->tombstone || x->time) n += 4;
  if (!x->tombstone) n += var_len(x->nvalue) + x->nvalue;
  return n;
}

/* End of the run of siblings of actor a that starts at from. */
static size_t sibs_of(const dvv *s, size_t from, dvv_actor a) {
  size_t k = from;
  while (k < s->nsib && dvv_actor_cmp(s->sib[k].dot.actor, a) == 0) k++;
  return k;
}

size_t dvv_encoded_size(const dvv *s) {
  size_t n = 1 + var_len(s->clock.n), j = 0;
  for (size_t i = 0; i < s->clock.n; i++) {
    const dvv_entry *e = &s->clock.e[i];
    size_t end = sibs_of(s, j, e->actor);
    n += 8 + var_len(e->actor.inc) + var_len(e->counter) + var_len(end - j);
    uint64_t prev = e->counter + 1;
    for (; j < end; j++) {
      n += sib_size(&s->sib[j], prev - 1 - s->sib[j].dot.counter);
      prev = s->sib[j].dot.counter;
    }
  }
  return n;
}

size_t dvv_encode(const dvv *s, uint8_t *out) {
  size_t n = 0, j = 0;
  out[n++] = DVV_FORMAT_VERSION;
  n += dvv_varint_put(out + n, s->clock.n);
  for (size_t i = 0; i < s->clock.n; i++) {
    const dvv_entry *e = &s->clock.e[i];
    size_t end = sibs_of(s, j, e->actor);
    n += put_be(out + n, e->actor.node, 8);
    n += dvv_varint_put(out + n, e->actor.inc);
    n += dvv_varint_put(out + n, e->counter);
    n += dvv_varint_put(out + n, end - j);
    uint64_t prev = e->counter + 1;
    for (; j < end; j++) {
      const dvv_sib *x = &s->sib[j];
      n += dvv_varint_put(out + n, prev - 1 - x->dot.counter);
      prev = x->dot.counter;
      uint8_t flags = x->tombstone ? SIB_F_TOMBSTONE : x->time ? SIB_F_EXPIRY : 0;
      out[n++] = flags;
      n += put_be(out + n, (uint64_t)x->ts, 8);
      if (flags) n += put_be(out + n, x->time, 4);
      if (!x->tombstone) {
        n += dvv_varint_put(out + n, x->nvalue);
        if (x->nvalue) memcpy(out + n, x->value, x->nvalue);
        n += x->nvalue;
      }
    }
  }
  return n;
}

typedef struct rd {
  const uint8_t *p;
  size_t n, i;
} rd;

/* A minimal LEB128 varint of at most 64 bits. */
static int get_var(rd *r, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    if (r->i >= r->n || shift > 63) return CELLAR_EPROTO;
    uint8_t b = r->p[r->i++];
    if (shift == 63 && (b & 0x7E)) return CELLAR_EPROTO;
    v |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      if (b == 0 && shift > 0) return CELLAR_EPROTO;   /* not minimal */
      break;
    }
  }
  *out = v;
  return 0;
}

int dvv_varint_get(const uint8_t *p, size_t n, size_t *i, uint64_t *out) {
  rd r = {p, n, *i};
  int rc = get_var(&r, out);
  if (rc == 0) *i = r.i;
  return rc;
}

static int get_be(rd *r, int bytes, uint64_t *out) {
  if (r->n - r->i < (size_t)bytes) return CELLAR_EPROTO;
  uint64_t v = 0;
  for (int k = 0; k < bytes; k++) v = (v << 8) | r->p[r->i++];
  *out = v;
  return 0;
}

/* One (node, incarnation) pair, strictly after *prev when have_prev. */
static int get_actor(rd *r, dvv_actor *a, const dvv_actor *prev) {
  uint64_t node, inc;
  int rc;
  if ((rc = get_be(r, 8, &node)) || (rc = get_var(r, &inc))) return rc;
  if (inc > UINT32_MAX) return CELLAR_EPROTO;
  a->node = node;
  a->inc = (uint32_t)inc;
  if (prev && dvv_actor_cmp(*prev, *a) >= 0) return CELLAR_EPROTO;
  return 0;
}

static int decode_sib(rd *r, dvv_sib *x) {
  uint64_t ts, t = 0, len;
  int rc;
  if (r->i >= r->n) return CELLAR_EPROTO;
  uint8_t flags = r->p[r->i++];
  if (flags & ~(SIB_F_TOMBSTONE | SIB_F_EXPIRY)) return CELLAR_EPROTO;
  if (flags == (SIB_F_TOMBSTONE | SIB_F_EXPIRY)) return CELLAR_EPROTO;
  if ((rc = get_be(r, 8, &ts))) return rc;
  if (flags && (rc = get_be(r, 4, &t))) return rc;
  if (flags == SIB_F_EXPIRY && t == 0) return CELLAR_EPROTO;
  x->ts = (int64_t)ts;
  x->tombstone = (flags & SIB_F_TOMBSTONE) ? 1 : 0;
  x->time = (uint32_t)t;
  if (x->tombstone) return 0;
  if ((rc = get_var(r, &len))) return rc;
  if (len > CELLAR_MAX_VALUE_BYTES) return CELLAR_ETOOBIG;
  if (len > r->n - r->i) return CELLAR_EPROTO;
  if (len) {
    x->value = malloc((size_t)len);
    if (x->value == NULL) return CELLAR_ENOMEM;
    memcpy(x->value, r->p + r->i, (size_t)len);
    x->nvalue = (size_t)len;
    r->i += (size_t)len;
  }
  return 0;
}

int dvv_decode(const uint8_t *p, size_t n, dvv *s) {
  dvv_empty(s);
  rd r = {p, n, 0};
  uint64_t nent, counter, k, gap;
  int rc = CELLAR_EPROTO;
  if (n < 2 || p[0] != DVV_FORMAT_VERSION) goto fail;
  r.i = 1;
  if ((rc = get_var(&r, &nent))) goto fail;
  if (nent > DVV_MAX_ACTORS) {
    rc = CELLAR_ETOOBIG;
    goto fail;
  }
  /* each entry takes at least 11 bytes: no allocation beyond the input */
  rc = CELLAR_EPROTO;
  if (nent > (n - r.i) / 11) goto fail;
  if ((rc = vv_reserve(&s->clock, (size_t)nent))) goto fail;
  for (uint64_t e = 0; e < nent; e++) {
    dvv_entry *en = &s->clock.e[e];
    if ((rc = get_actor(&r, &en->actor, e ? &s->clock.e[e - 1].actor : NULL)) ||
        (rc = get_var(&r, &counter)) || (rc = get_var(&r, &k)))
      goto fail;
    rc = CELLAR_EPROTO;
    if (counter == 0 || counter > DVV_MAX_COUNTER || k > counter) goto fail;
    en->counter = counter;
    s->clock.n = (size_t)e + 1;
    if (k > DVV_MAX_SIBLINGS - s->nsib) {
      rc = CELLAR_ETOOBIG;
      goto fail;
    }
    /* each sibling takes at least 10 bytes */
    if (k > (n - r.i) / 10) goto fail;
    if ((rc = sib_reserve(&s->sib, &s->capsib, s->nsib + (size_t)k))) goto fail;
    uint64_t prev = counter + 1;
    for (uint64_t m = 0; m < k; m++) {
      if ((rc = get_var(&r, &gap))) goto fail;
      rc = CELLAR_EPROTO;
      if (gap >= prev - 1) goto fail;    /* counter would be < 1 */
      dvv_sib *x = &s->sib[s->nsib];
      memset(x, 0, sizeof *x);
      x->dot.actor = en->actor;
      x->dot.counter = prev - 1 - gap;
      prev = x->dot.counter;
      s->nsib++;
      if ((rc = decode_sib(&r, x))) goto fail;
    }
  }
  if (r.i != n) {
    rc = CELLAR_EPROTO;
    goto fail;
  }
  return 0;
fail:
  dvv_empty(s);
  return rc;
}

size_t dvv_ctx_encoded_size(const dvv_vv *v) {
  size_t n = 1 + 4 + var_len(v->n);
  for (size_t i = 0; i < v->n; i++)
    n += 8 + var_len(v->e[i].actor.inc) + var_len(v->e[i].counter);
  return n;
}

size_t dvv_ctx_encode(const dvv_vv *v, uint32_t issued_s, uint8_t *out) {
  size_t n = 0;
  out[n++] = DVV_CTX_FORMAT_VERSION;
  n += put_be(out + n, issued_s, 4);
  n += dvv_varint_put(out + n, v->n);
  for (size_t i = 0; i < v->n; i++) {
    n += put_be(out + n, v->e[i].actor.node, 8);
    n += dvv_varint_put(out + n, v->e[i].actor.inc);
    n += dvv_varint_put(out + n, v->e[i].counter);
  }
  return n;
}

int dvv_ctx_decode(const uint8_t *p, size_t n, dvv_vv *v, uint32_t *issued_s) {
  v->n = 0;
  rd r = {p, n, 1};
  uint64_t t, nent, counter;
  int rc = CELLAR_EPROTO;
  if (n < 6 || p[0] != DVV_CTX_FORMAT_VERSION) goto fail;
  if ((rc = get_be(&r, 4, &t)) || (rc = get_var(&r, &nent))) goto fail;
  if (nent > DVV_MAX_ACTORS) {
    rc = CELLAR_ETOOBIG;
    goto fail;
  }
  rc = CELLAR_EPROTO;
  if (nent > (n - r.i) / 10) goto fail;
  if ((rc = vv_reserve(v, (size_t)nent))) goto fail;
  for (uint64_t e = 0; e < nent; e++) {
    dvv_entry *en = &v->e[e];
    if ((rc = get_actor(&r, &en->actor, e ? &v->e[e - 1].actor : NULL)) ||
        (rc = get_var(&r, &counter)))
      goto fail;
    rc = CELLAR_EPROTO;
    if (counter == 0 || counter > DVV_MAX_COUNTER) goto fail;
    en->counter = counter;
    v->n = (size_t)e + 1;
  }
  if (r.i != n) {
    rc = CELLAR_EPROTO;
    goto fail;
  }
  if (issued_s) *issued_s = (uint32_t)t;
  return 0;
fail:
  v->n = 0;
  return rc;
}
