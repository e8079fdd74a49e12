/*
** result: what one request produced (see result.h).
**
** Every byte a result points to lives in its arena: a list of blocks, the
** newest first, each filled front to back. Small copies share blocks that
** grow geometrically (4 KiB up to 1 MiB); a copy larger than a quarter of
** the current block size gets a block of its own, linked behind the head so
** the head's free space is not wasted. Cell arrays of rows live in the arena
** too (a row's array doubles when full; the old one is simply left behind,
** so the waste is at most the final array's size). Only the rows array, the
** keyspace/table arrays and the blocks themselves are malloc'd.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "result.h"

struct arena_block {
  arena_block *next;
  size_t used, cap;
  _Alignas(16) uint8_t data[];
};

#define ARENA_FIRST 4096u
#define ARENA_MAX (1u << 20)
#define ARENA_ALIGN 8u

void result_init(result *r) { memset(r, 0, sizeof *r); }

void result_free(result *r) {
  arena_block *b = r->arena;
  while (b) {
    arena_block *next = b->next;
    free(b);
    b = next;
  }
  free(r->rows);
  free(r->keyspaces);
  free(r->tables);
  free(r->info);
  free(r->members);
  result_init(r);
}

int result_error(result *r, int code, const char *fmt, ...) {
  r->code = code;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->message, sizeof r->message, fmt, ap);
  va_end(ap);
  if (n < 0) r->message[0] = '\0';
  return code;
}

/* n bytes from the arena, aligned to ARENA_ALIGN; NULL when out of memory. */
static void *arena_alloc(result *r, size_t n) {
  arena_block *h = r->arena;
  if (h) {
    size_t at = (h->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (at <= h->cap && h->cap - at >= n) {
      h->used = at + n;
      return h->data + at;
    }
  }
  /* double the head's size, capped; a first block is ARENA_FIRST */
  size_t cap = !h ? ARENA_FIRST
               : h->cap <= ARENA_MAX / 2 ? h->cap * 2 : ARENA_MAX;
  int alone = n > cap / 4;
  if (alone) cap = n;
  if (cap > SIZE_MAX - sizeof(arena_block)) return NULL;
  arena_block *b = malloc(sizeof(arena_block) + (cap ? cap : 1));
  if (b == NULL) return NULL;
  b->cap = cap;
  b->used = n;
  if (alone && h) {
    /* keep filling the head: the big block goes second in the list */
    b->next = h->next;
    h->next = b;
  } else {
    b->next = h;
    r->arena = b;
  }
  return b->data;
}

const uint8_t *result_copy(result *r, const void *p, size_t n) {
  uint8_t *d = arena_alloc(r, n);
  if (d && n) memcpy(d, p, n);
  return d;
}

res_row *result_add_row(result *r, const void *ck, size_t nck) {
  if (r->nrows == r->caprows) {
    size_t cap = r->caprows ? r->caprows * 2 : 16;
    res_row *rows = realloc(r->rows, cap * sizeof *rows);
    if (rows == NULL) return NULL;
    r->rows = rows;
    r->caprows = cap;
  }
  const uint8_t *c = result_copy(r, ck, nck);
  if (c == NULL) return NULL;
  res_row *row = &r->rows[r->nrows++];
  memset(row, 0, sizeof *row);
  row->ck = c;
  row->nck = nck;
  return row;
}

int result_add_cell(result *r, res_row *row, const void *name, size_t nname,
                    const void *value, size_t nvalue, int64_t ts,
                    uint32_t expires_at) {
  if (row->ncells == row->capcells) {
    size_t cap = row->capcells ? row->capcells * 2 : 4;
    res_cell *cells = arena_alloc(r, cap * sizeof *cells);
    if (cells == NULL) return CELLAR_ENOMEM;
    if (row->ncells) memcpy(cells, row->cells, row->ncells * sizeof *cells);
    row->cells = cells;
    row->capcells = cap;
  }
  const uint8_t *n = result_copy(r, name, nname);
  const uint8_t *v = n ? result_copy(r, value, nvalue) : NULL;
  if (v == NULL) return CELLAR_ENOMEM;
  res_cell *c = &row->cells[row->ncells++];
  c->name = n;
  c->nname = nname;
  c->value = v;
  c->nvalue = nvalue;
  c->timestamp = ts;
  c->expires_at = expires_at;
  c->nsib = 0;
  c->sib = NULL;
  return 0;
}

int result_set_siblings(result *r, res_row *row, const res_sib *sib,
                        size_t n) {
  if (row->ncells == 0 || n == 0) return 0;
  res_sib *s = arena_alloc(r, n * sizeof *s);
  if (s == NULL) return CELLAR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    s[i] = sib[i];
    s[i].value = result_copy(r, sib[i].value, sib[i].nvalue);
    if (s[i].value == NULL) return CELLAR_ENOMEM;
  }
  row->cells[row->ncells - 1].sib = s;
  row->cells[row->ncells - 1].nsib = n;
  return 0;
}

int result_set_row_context(result *r, res_row *row, const void *p, size_t n) {
  const uint8_t *c = result_copy(r, p, n);
  if (c == NULL) return CELLAR_ENOMEM;
  row->context = c;
  row->ncontext = n;
  return 0;
}

void result_drop_last_row(result *r) {
  if (r->nrows) r->nrows--;
}

int result_set_cursor(result *r, const void *p, size_t n) {
  const uint8_t *c = result_copy(r, p, n);
  if (c == NULL) return CELLAR_ENOMEM;
  r->cursor = c;
  r->ncursor = n;
  return 0;
}

int result_add_info(result *r, const char *key, const char *fmt, ...) {
  if (r->ninfo == r->capinfo) {
    size_t cap = r->capinfo ? r->capinfo * 2 : 16;
    res_info *info = realloc(r->info, cap * sizeof *info);
    if (info == NULL) return CELLAR_ENOMEM;
    r->info = info;
    r->capinfo = cap;
  }
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *v = n >= 0 ? arena_alloc(r, (size_t)n + 1) : NULL;
  if (v) vsnprintf(v, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  char *k = v ? (char *)result_copy(r, key, strlen(key) + 1) : NULL;
  if (k == NULL) return CELLAR_ENOMEM;
  r->info[r->ninfo].key = k;
  r->info[r->ninfo].value = v;
  r->ninfo++;
  return 0;
}
