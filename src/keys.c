/* keys: order-preserving encoding of data keys (layout and invariants in
** keys.h and docs/storage.md). */
#include <string.h>
#include "cellar/cellar.h"
#include "keys.h"
#include "token.h"

static void put_be64(uint8_t *out, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

size_t keys_esc(uint8_t *out, const uint8_t *p, size_t n) {
  uint8_t *o = out;
  while (n > 0) {
    /* copy runs without 0x00 in one memcpy: keys rarely hold zero bytes */
    const uint8_t *z = memchr(p, 0, n);
    size_t run = z ? (size_t)(z - p) : n;
    memcpy(o, p, run);
    o += run;
    p += run;
    n -= run;
    if (z) {
      *o++ = 0x00;
      *o++ = 0xFF;
      p++;
      n--;
    }
  }
  *o++ = 0x00;
  *o++ = 0x01;
  return (size_t)(o - out);
}

void keys_table_prefix(uint8_t out[8], uint64_t table_id) {
  put_be64(out, table_id);
}

int keys_table_end(uint8_t out[8], uint64_t table_id) {
  if (table_id == UINT64_MAX) return 0;
  put_be64(out, table_id + 1);
  return 1;
}

size_t keys_head(uint8_t out[KEYS_HEAD_BYTES], uint64_t table_id,
                 int64_t token) {
  put_be64(out, table_id);
  token_encode(token, out + 8);
  return KEYS_HEAD_BYTES;
}

size_t keys_base(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk) {
  put_be64(out, table_id);
  token_encode(token, out + 8);
  return KEYS_HEAD_BYTES + keys_esc(out + KEYS_HEAD_BYTES, pk.p, pk.n);
}

size_t keys_partition(uint8_t *out, uint64_t table_id, int64_t token,
                      cbytes pk) {
  size_t n = keys_base(out, table_id, token, pk);
  out[n++] = KEYS_TAG_TOMBSTONE;
  return n;
}

size_t keys_partition_end(uint8_t *out, uint64_t table_id, int64_t token,
                          cbytes pk) {
  size_t n = keys_base(out, table_id, token, pk);
  out[n++] = KEYS_TAG_END;
  return n;
}

size_t keys_rows_from(uint8_t *out, uint64_t table_id, int64_t token,
                      cbytes pk, cbytes ck) {
  size_t n = keys_base(out, table_id, token, pk);
  out[n++] = KEYS_TAG_NEXT;
  return n + keys_esc(out + n, ck.p, ck.n);
}

size_t keys_row(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk,
                cbytes ck) {
  size_t n = keys_rows_from(out, table_id, token, pk, ck);
  out[n++] = KEYS_TAG_TOMBSTONE;
  return n;
}

size_t keys_row_end(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk,
                    cbytes ck) {
  size_t n = keys_rows_from(out, table_id, token, pk, ck);
  out[n++] = KEYS_TAG_END;
  return n;
}

size_t keys_cell(uint8_t *out, uint64_t table_id, int64_t token, cbytes pk,
                 cbytes ck, cbytes column) {
  size_t n = keys_rows_from(out, table_id, token, pk, ck);
  out[n++] = KEYS_TAG_NEXT;
  if (column.n) memcpy(out + n, column.p, column.n);
  return n + column.n;
}

/*
** Scans one escaped component starting at k[i]. On success sets *esc_end
** to the offset of its 0x00 0x01 terminator, *plain to its unescaped length
** and returns the offset just past the terminator; returns 0 on garbage.
*/
static size_t scan_esc(const uint8_t *k, size_t n, size_t i, size_t *esc_end,
                       size_t *plain) {
  size_t len = 0;
  while (i < n) {
    const uint8_t *z = memchr(k + i, 0, n - i);
    if (z == NULL) return 0;
    size_t at = (size_t)(z - k);
    len += at - i;
    if (at + 1 >= n) return 0;
    if (k[at + 1] == 0x01) {
      *esc_end = at;
      *plain = len;
      return at + 2;
    }
    if (k[at + 1] != 0xFF) return 0;
    len++;
    i = at + 2;
  }
  return 0;
}

int keys_decode(const uint8_t *k, size_t n, keys_parts *out) {
  memset(out, 0, sizeof *out);
  if (n < KEYS_HEAD_BYTES + 3) return CELLAR_EPROTO;
  out->table_id = get_be64(k);
  out->token = token_decode(k + 8);
  size_t esc_end, i;
  i = scan_esc(k, n, KEYS_HEAD_BYTES, &esc_end, &out->npk);
  if (i == 0 || i >= n) return CELLAR_EPROTO;
  out->pk_esc = CBYTES(k + KEYS_HEAD_BYTES, esc_end - KEYS_HEAD_BYTES);
  out->base_len = i;
  if (k[i] == KEYS_TAG_TOMBSTONE) {
    if (i + 1 != n) return CELLAR_EPROTO;
    out->kind = KEYS_KIND_PARTITION;
    return 0;
  }
  if (k[i] != KEYS_TAG_NEXT) return CELLAR_EPROTO;
  size_t ck_start = i + 1;
  i = scan_esc(k, n, ck_start, &esc_end, &out->nck);
  if (i == 0 || i >= n) return CELLAR_EPROTO;
  out->ck_esc = CBYTES(k + ck_start, esc_end - ck_start);
  out->row_len = i;
  if (k[i] == KEYS_TAG_TOMBSTONE) {
    if (i + 1 != n) return CELLAR_EPROTO;
    out->kind = KEYS_KIND_ROW;
    return 0;
  }
  if (k[i] != KEYS_TAG_NEXT) return CELLAR_EPROTO;
  out->kind = KEYS_KIND_CELL;
  out->column = CBYTES(k + i + 1, n - i - 1);
  return 0;
}

size_t keys_base_len(const uint8_t *k, size_t n) {
  size_t esc_end, plain;
  if (n < KEYS_HEAD_BYTES + 2) return 0;
  return scan_esc(k, n, KEYS_HEAD_BYTES, &esc_end, &plain);
}

size_t keys_unescape(cbytes esc, uint8_t *out) {
  const uint8_t *p = esc.p;
  size_t n = esc.n;
  uint8_t *o = out;
  while (n > 0) {
    const uint8_t *z = memchr(p, 0, n);
    size_t run = z ? (size_t)(z - p) : n;
    memcpy(o, p, run);
    o += run;
    p += run;
    n -= run;
    if (z) {               /* 0x00 0xFF, checked by keys_decode */
      *o++ = 0x00;
      p += 2;
      n = n >= 2 ? n - 2 : 0;
    }
  }
  return (size_t)(o - out);
}
