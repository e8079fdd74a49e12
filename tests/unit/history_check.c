/* history_check: see history_check.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "history_check.h"

static void violation(history_check *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(history_check *h, const char *fmt, ...) {
  if (h->violations++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->first, sizeof h->first, fmt, ap);
    va_end(ap);
  }
}

void hc_init(history_check *h) { memset(h, 0, sizeof *h); }

void hc_free(history_check *h) {
  for (size_t i = 0; i < h->n; i++) free(h->w[i].seen);
  free(h->w);
  memset(h, 0, sizeof *h);
}

long hc_write_add(history_check *h, int key, const char *val,
                  const char *const *seen, size_t nseen) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 256;
    hc_write *w = realloc(h->w, cap * sizeof *w);
    if (w == NULL) {
      violation(h, "out of memory recording a write");
      return -1;
    }
    h->w = w;
    h->cap = cap;
  }
  hc_write *w = &h->w[h->n];
  memset(w, 0, sizeof *w);
  w->key = key;
  snprintf(w->val, sizeof w->val, "%s", val);
  if (nseen) {
    w->seen = calloc(nseen, sizeof *w->seen);
    if (w->seen == NULL) {
      violation(h, "out of memory recording a write");
      return -1;
    }
    for (size_t i = 0; i < nseen; i++) snprintf(w->seen[i], HC_VAL, "%s", seen[i]);
    w->nseen = nseen;
  }
  return (long)h->n++;
}

void hc_write_done(history_check *h, long i, int acked, int retried) {
  if (i < 0 || (size_t)i >= h->n) return;
  h->w[i].acked = acked;
  h->w[i].retried = retried;
}

/* Index of the write of val on key, or -1. */
static long find(const history_check *h, int key, const char *val) {
  for (size_t i = 0; i < h->n; i++)
    if (h->w[i].key == key && !strcmp(h->w[i].val, val)) return (long)i;
  return -1;
}

void hc_read(history_check *h, int key, const char *const *vals, size_t n) {
  h->reads++;
  for (size_t i = 0; i < n; i++) {
    h->checked_values++;
    if (find(h, key, vals[i]) < 0)
      violation(h, "key %d: a read returned '%s', which no write wrote", key, vals[i]);
  }
}

typedef struct seen_by {
  const char *v;
  int acked;
} seen_by;

static int seen_cmp(const void *a, const void *b) {
  return strcmp(((const seen_by *)a)->v, ((const seen_by *)b)->v);
}

void hc_final(history_check *h, int key, const char *const *vals, size_t n) {
  hc_read(h, key, vals, n);
  /* every value a write of key carried in its context, and whether that
  ** write was acknowledged: sorted, for the lookups below */
  size_t ns = 0;
  for (size_t j = 0; j < h->n; j++)
    if (h->w[j].key == key) ns += h->w[j].nseen;
  seen_by *sb = malloc((ns ? ns : 1) * sizeof *sb);
  if (sb == NULL) {
    violation(h, "out of memory checking key %d", key);
    return;
  }
  ns = 0;
  for (size_t j = 0; j < h->n; j++)
    for (size_t k = 0; h->w[j].key == key && k < h->w[j].nseen; k++)
      sb[ns++] = (seen_by){h->w[j].seen[k], h->w[j].acked};
  qsort(sb, ns, sizeof *sb, seen_cmp);
  for (size_t i = 0; i < h->n; i++) {
    const hc_write *w = &h->w[i];
    if (w->key != key) continue;
    int present = 0;
    for (size_t k = 0; k < n && !present; k++) present = !strcmp(vals[k], w->val);
    /* the first entry for w's value, then every one after it */
    size_t lo = 0, hi = ns;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (strcmp(sb[mid].v, w->val) < 0) lo = mid + 1;
      else hi = mid;
    }
    int covered = 0, covered_acked = 0;
    for (size_t j = lo; j < ns && !strcmp(sb[j].v, w->val); j++) {
      covered = 1;
      covered_acked |= sb[j].acked;
    }
    h->present += present;
    h->superseded += !present && covered;
    if (w->acked && !present && !covered)
      violation(h, "key %d: acknowledged write '%s' (tag %ld) is lost (no write read it)",
                key, w->val, w->tag);
    if (present && covered_acked && !w->retried)
      violation(h, "key %d: '%s' survives an acknowledged write whose context had it", key,
                w->val);
  }
  free(sb);
}
