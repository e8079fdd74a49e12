/* cell: stored value format, last-write-wins merge of plain cells, version
** merge of versioned cells (see cell.h). */
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cell.h"

cell cell_live(int64_t ts, uint32_t expires_at, cbytes value) {
  cell c;
  memset(&c, 0, sizeof c);
  c.ts = ts;
  c.expires_at = expires_at;
  c.value = value;
  return c;
}

cell cell_tombstone(int64_t ts, uint32_t deleted_at) {
  cell c;
  memset(&c, 0, sizeof c);
  c.ts = ts;
  c.tombstone = 1;
  c.deleted_at = deleted_at;
  return c;
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t cell_encode_prefix(const cell *c, uint8_t *out) {
  uint8_t flags = 0;
  if (c->tombstone) flags |= CELL_F_TOMBSTONE;
  else if (c->expires_at) flags |= CELL_F_HAS_EXPIRY;
  if (c->has_clock) flags |= CELL_F_HAS_CLOCK;
  out[0] = CELL_FORMAT_VERSION;
  out[1] = flags;
  uint64_t ts = (uint64_t)c->ts;
  for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(ts >> (56 - 8 * i));
  size_t n = 10;
  if (flags & (CELL_F_TOMBSTONE | CELL_F_HAS_EXPIRY)) {
    uint32_t t = c->tombstone ? c->deleted_at : c->expires_at;
    out[n++] = (uint8_t)(t >> 24);
    out[n++] = (uint8_t)(t >> 16);
    out[n++] = (uint8_t)(t >> 8);
    out[n++] = (uint8_t)t;
  }
  if (c->has_clock) {
    uint64_t v = c->clock.n;
    while (v >= 0x80) {
      out[n++] = (uint8_t)(v | 0x80);
      v >>= 7;
    }
    out[n++] = (uint8_t)v;
  }
  return n;
}

size_t cell_encoded_size(const cell *c) {
  size_t n = 10;
  if (c->tombstone || c->expires_at) n += 4;
  if (c->has_clock) n += varint_len(c->clock.n) + c->clock.n;
  if (!c->tombstone) n += c->value.n;
  return n;
}

size_t cell_encode(const cell *c, uint8_t *out) {
  size_t n = cell_encode_prefix(c, out);
  if (c->has_clock && c->clock.n) {
    memcpy(out + n, c->clock.p, c->clock.n);
    n += c->clock.n;
  }
  if (!c->tombstone && c->value.n) {
    memcpy(out + n, c->value.p, c->value.n);
    n += c->value.n;
  }
  return n;
}

int cell_decode(const uint8_t *p, size_t n, cell *out) {
  memset(out, 0, sizeof *out);
  if (n < 10 || p[0] != CELL_FORMAT_VERSION) return CELLAR_EPROTO;
  uint8_t flags = p[1];
  if (flags & ~(CELL_F_TOMBSTONE | CELL_F_HAS_EXPIRY | CELL_F_HAS_CLOCK))
    return CELLAR_EPROTO;
  if ((flags & CELL_F_TOMBSTONE) && (flags & CELL_F_HAS_EXPIRY))
    return CELLAR_EPROTO;
  uint64_t ts = 0;
  for (int i = 0; i < 8; i++) ts = (ts << 8) | p[2 + i];
  out->ts = (int64_t)ts;
  size_t i = 10;
  if (flags & (CELL_F_TOMBSTONE | CELL_F_HAS_EXPIRY)) {
    if (n - i < 4) return CELLAR_EPROTO;
    uint32_t t = (uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 |
                 (uint32_t)p[i + 2] << 8 | (uint32_t)p[i + 3];
    i += 4;
    if (flags & CELL_F_TOMBSTONE) {
      out->tombstone = 1;
      out->deleted_at = t;
    } else {
      if (t == 0) return CELLAR_EPROTO;   /* would encode without the flag */
      out->expires_at = t;
    }
  }
  if (flags & CELL_F_HAS_CLOCK) {
    uint64_t len = 0;
    int shift = 0;
    for (;;) {
      if (i >= n || shift > 63) return CELLAR_EPROTO;
      uint8_t b = p[i++];
      if (shift == 63 && (b & 0x7E)) return CELLAR_EPROTO;  /* > 64 bits */
      len |= (uint64_t)(b & 0x7F) << shift;
      if (!(b & 0x80)) {
        if (b == 0 && shift > 0) return CELLAR_EPROTO;  /* not minimal */
        break;
      }
      shift += 7;
    }
    if (len > n - i) return CELLAR_EPROTO;
    out->has_clock = 1;
    out->clock = CBYTES(p + i, (size_t)len);
    i += (size_t)len;
  }
  if (out->tombstone && i != n) return CELLAR_EPROTO;
  out->value = CBYTES(p + i, n - i);
  return 0;
}

/* memcmp order, a prefix below its extensions. */
static int bytes_cmp(cbytes a, cbytes b) {
  size_t m = a.n < b.n ? a.n : b.n;
  int r = m ? memcmp(a.p, b.p, m) : 0;
  if (r) return r;
  return (a.n > b.n) - (a.n < b.n);
}

#define CMP(x, y) do { if ((x) != (y)) return (x) > (y) ? 1 : -1; } while (0)

int cell_compare(const cell *a, const cell *b) {
  CMP(a->ts, b->ts);
  CMP(a->tombstone, b->tombstone);
  if (a->tombstone) {
    CMP(a->deleted_at, b->deleted_at);
  } else {
    /* 0 means never expires: later than any expiry */
    uint64_t ea = a->expires_at ? a->expires_at : UINT64_MAX;
    uint64_t eb = b->expires_at ? b->expires_at : UINT64_MAX;
    CMP(ea, eb);
    int r = bytes_cmp(a->value, b->value);
    if (r) return r > 0 ? 1 : -1;
  }
  CMP(a->has_clock, b->has_clock);
  if (a->has_clock) {
    int r = bytes_cmp(a->clock, b->clock);
    if (r) return r > 0 ? 1 : -1;
  }
  return 0;
}

const cell *cell_merge(const cell *a, const cell *b) {
  return cell_compare(a, b) >= 0 ? a : b;
}

int cell_is_live(const cell *c, uint32_t now_s) {
  return !c->tombstone && (c->expires_at == 0 || c->expires_at > now_s);
}

uint32_t cell_dead_since(const cell *c) {
  return c->tombstone ? c->deleted_at : c->expires_at;
}

/* ------------------------------------------------------ versioned cells */

void cell_buf_free(cell_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

int cell_is_versioned(const cell *c) {
  return c->has_clock && (c->tombstone || c->value.n == 0);
}

/* The header a versioned cell with set s must have (cell.h). */
static cell summary_of(const dvv *s) {
  size_t n = dvv_count(s);
  if (n == 0) return cell_tombstone(0, 0);
  int64_t ts = INT64_MIN;
  uint32_t latest = 0;
  int all_deleted = 1, all_expiring = 1;
  for (size_t i = 0; i < n; i++) {
    const dvv_sib *x = dvv_sibling(s, i);
    if (x->ts > ts) ts = x->ts;
    if (x->time > latest) latest = x->time;
    if (!x->tombstone) all_deleted = 0;
    if (x->tombstone || x->time == 0) all_expiring = 0;
  }
  if (all_deleted) return cell_tombstone(ts, latest);
  return cell_live(ts, all_expiring ? latest : 0, CBYTES(NULL, 0));
}

int cell_versions(const cell *c, dvv *out) {
  if (!c->has_clock) {
    dvv_write w = {c->ts, c->tombstone,
                   c->tombstone ? c->deleted_at : c->expires_at,
                   c->tombstone ? CBYTES(NULL, 0) : c->value};
    return dvv_new(out, CELL_LEGACY_ACTOR, &w);
  }
  if (!cell_is_versioned(c)) return CELLAR_EPROTO;
  int rc = dvv_decode(c->clock.p, c->clock.n, out);
  if (rc) return rc;
  cell h = summary_of(out);
  if (h.ts != c->ts || h.tombstone != c->tombstone ||
      h.deleted_at != c->deleted_at || h.expires_at != c->expires_at) {
    dvv_close(out);
    return CELLAR_EPROTO;
  }
  return 0;
}

static int buf_reserve(cell_buf *b, size_t n) {
  if (n <= b->cap) return 0;
  uint8_t *p = realloc(b->p, n);
  if (p == NULL) return CELLAR_ENOMEM;
  b->p = p;
  b->cap = n;
  return 0;
}

int cell_from_versions(const dvv *s, cell_buf *out) {
  cell c = summary_of(s);
  size_t nset = dvv_encoded_size(s);
  c.has_clock = 1;
  c.clock = CBYTES(NULL, nset);     /* only the length, for the prefix */
  size_t need = cell_encoded_size(&c);
  if (buf_reserve(out, need)) return CELLAR_ENOMEM;
  size_t n = cell_encode_prefix(&c, out->p);
  n += dvv_encode(s, out->p + n);
  out->n = n;
  return 0;
}

int cell_merge_versions(const cell *a, const cell *b, cell_buf *out,
                        const cell **win) {
  *win = NULL;
  if (!a->has_clock && !b->has_clock) {
    *win = cell_merge(a, b);
    return 0;
  }
  dvv sa, sb;
  dvv_init(&sa);
  dvv_init(&sb);
  int rc = cell_versions(a, &sa);
  if (rc == 0) rc = cell_versions(b, &sb);
  if (rc == 0) {
    /* sb becomes the merge; an input whose set is the merge is the
    ** answer when it is versioned (its bytes are then the canonical
    ** encoding of the merge) */
    dvv m;
    dvv_init(&m);
    rc = dvv_copy(&m, &sa);
    if (rc == 0) rc = dvv_merge(&m, &sb);
    if (rc == 0) {
      if (a->has_clock && dvv_equal(&m, &sa)) *win = a;
      else if (b->has_clock && dvv_equal(&m, &sb)) *win = b;
      else rc = cell_from_versions(&m, out) ? CELLAR_ENOMEM : 1;
    }
    dvv_close(&m);
  }
  dvv_close(&sa);
  dvv_close(&sb);
  return rc;
}

int cell_event(const cell *stored, const dvv_vv *ctx, dvv_actor self,
               const dvv_write *w, size_t limit, cell_buf *out, dvv_dot *dot) {
  dvv s;
  dvv_init(&s);
  int rc = stored ? cell_versions(stored, &s) : 0;
  if (rc == 0) rc = dvv_event(&s, ctx, self, w, limit, dot);
  if (rc == 0) rc = cell_from_versions(&s, out);
  dvv_close(&s);
  return rc;
}

/* -------------------------------------------------------- row contexts */

int cell_rowctx_add(cell_buf *b, cbytes column, const dvv_vv *vv,
                    uint32_t issued_s) {
  size_t nctx = dvv_ctx_encoded_size(vv);
  size_t need = b->n + 3 + 10 + column.n + 10 + nctx;
  if (buf_reserve(b, need)) return CELLAR_ENOMEM;
  if (b->n == 0) {
    b->p[b->n++] = CELL_ROWCTX_VERSION;
    b->p[b->n++] = 0;
    b->p[b->n++] = 0;
  }
  unsigned count = ((unsigned)b->p[1] << 8 | b->p[2]) + 1;
  if (count > CELL_ROWCTX_MAX_COLUMNS) return CELLAR_ETOOBIG;
  b->p[1] = (uint8_t)(count >> 8);
  b->p[2] = (uint8_t)count;
  b->n += dvv_varint_put(b->p + b->n, column.n);
  if (column.n) memcpy(b->p + b->n, column.p, column.n);
  b->n += column.n;
  b->n += dvv_varint_put(b->p + b->n, nctx);
  b->n += dvv_ctx_encode(vv, issued_s, b->p + b->n);
  return 0;
}

void cell_rowctx_close(cell_rowctx *c) {
  for (size_t i = 0; i < c->n; i++) dvv_vv_close(&c->c[i].vv);
  free(c->c);
  c->c = NULL;
  c->n = 0;
}

int cell_rowctx_decode(const uint8_t *p, size_t n, cell_rowctx *out) {
  out->n = 0;
  out->c = NULL;
  if (n == 0) return 0;
  if (n < 3 || p[0] != CELL_ROWCTX_VERSION) return CELLAR_EPROTO;
  size_t count = (size_t)p[1] << 8 | p[2];
  if (count == 0) return CELLAR_EPROTO;   /* an empty context is no bytes */
  if (count > CELL_ROWCTX_MAX_COLUMNS) return CELLAR_ETOOBIG;
  size_t i = 3, cap = 0;
  int rc = 0;
  while (rc == 0 && i < n) {
    uint64_t ncol, nctx;
    if ((rc = dvv_varint_get(p, n, &i, &ncol)) != 0) break;
    if (ncol > CELLAR_MAX_COLUMN_BYTES) { rc = CELLAR_ETOOBIG; break; }
    if (ncol > n - i) { rc = CELLAR_EPROTO; break; }
    cbytes col = CBYTES(p + i, (size_t)ncol);
    i += (size_t)ncol;
    if ((rc = dvv_varint_get(p, n, &i, &nctx)) != 0) break;
    if (nctx > n - i) { rc = CELLAR_EPROTO; break; }
    if (out->n &&
        bytes_cmp(out->c[out->n - 1].column, col) >= 0) {
      rc = CELLAR_EPROTO;   /* columns strictly ascending */
      break;
    }
    if (out->n == CELL_ROWCTX_MAX_COLUMNS) { rc = CELLAR_ETOOBIG; break; }
    if (out->n == cap) {
      size_t nc = cap ? 2 * cap : 4;
      cell_rowctx_col *c = realloc(out->c, nc * sizeof *c);
      if (c == NULL) { rc = CELLAR_ENOMEM; break; }
      out->c = c;
      cap = nc;
    }
    cell_rowctx_col *e = &out->c[out->n];
    e->column = col;
    dvv_vv_init(&e->vv);
    rc = dvv_ctx_decode(p + i, (size_t)nctx, &e->vv, &e->issued_s);
    if (rc) {
      dvv_vv_close(&e->vv);   /* not counted in out->n yet */
      break;
    }
    out->n++;
    i += (size_t)nctx;
  }
  if (rc == 0 && out->n != count) rc = CELLAR_EPROTO;   /* truncated */
  if (rc) cell_rowctx_close(out);
  return rc;
}

const cell_rowctx_col *cell_rowctx_find(const cell_rowctx *c, cbytes column) {
  size_t lo = 0, hi = c->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int d = bytes_cmp(c->c[mid].column, column);
    if (d == 0) return &c->c[mid];
    if (d < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}
