/* cell: stored value format and last-write-wins merge (see cell.h). */
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
