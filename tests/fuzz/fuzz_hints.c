/*
** fuzz_hints: libFuzzer target for the hinted-handoff formats (hints.h):
** hint keys and values read back from RocksDB's hints column family, and
** the raw data entries a value carries (what the target checks before
** merging them: a data key, a canonical cell, its version set).
**
** Input: u8 mode, u16 big-endian split, then bytes.
**   mode % 3 == 0: bytes are a hint key;
**   mode % 3 == 1: bytes are a hint value;
**   mode % 3 == 2: bytes[0..split) and bytes[split..) are the key and the
**                  value of one loaded hint, fed to a replay machine
**                  (hints_on_loaded) whose target is the key's host.
**
** A decoded key must re-encode to exactly its input and start with its
** host's prefix; a decoded value must re-encode (hint_value_encode) to
** exactly its input, with every entry inside it. Anything refused must be
** refused with CELLAR_EPROTO (values: or CELLAR_ENOMEM). The machine must
** send a hint both decoders accept and that has not expired, whole (its
** entries, in order), and delete one they refuse without sending it. Any
** failed check aborts; libFuzzer's leak checker sees every allocation.
**
** Seeds: tests/fuzz/corpus-hints, made with hint_key_encode,
** hint_value_encode, keys_cell/keys_row/keys_partition and cell_encode:
** three keys, three values (no entry; a cell; a cell, a row and a
** partition tombstone and a cell with a TTL), two loaded hints.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "cell.h"
#include "dvv.h"
#include "hints.h"
#include "keys.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static int same(cbytes a, cbytes b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void fuzz_key(const uint8_t *p, size_t n) {
  char host[HINT_HOST_MAX];
  uint64_t created, seq;
  int rc = hint_key_decode(p, n, host, &created, &seq);
  CHECK(rc == 0 || rc == CELLAR_EPROTO);
  if (rc) return;
  uint8_t k[HINT_KEY_MAX], pre[HINT_KEY_MAX];
  size_t m = hint_key_encode(host, created, seq, k);
  CHECK(m == n && memcmp(k, p, n) == 0);
  size_t np = hint_key_prefix(host, pre);
  CHECK(np > 0 && np <= n && memcmp(pre, p, np) == 0);
}

/* The checks a target makes on one raw entry before merging it (storage.h,
** storage_apply_entries): whatever passes must re-encode canonically. */
static void check_entry(const storage_entry *e) {
  keys_parts kp;
  int rc = keys_decode(e->key.p, e->key.n, &kp);
  CHECK(rc == 0 || rc == CELLAR_EPROTO);
  if (rc == 0) {
    CHECK(kp.base_len <= e->key.n && kp.pk_esc.n <= kp.base_len);
    if (kp.kind != KEYS_KIND_PARTITION) CHECK(kp.row_len <= e->key.n);
    if (kp.kind == KEYS_KIND_CELL)
      CHECK(kp.column.n == 0 ||
            (kp.column.p >= e->key.p && kp.column.p + kp.column.n <= e->key.p + e->key.n));
  }
  cell c;
  if (cell_decode(e->value.p, e->value.n, &c) != 0) return;
  size_t m = cell_encoded_size(&c);
  CHECK(m == e->value.n);
  uint8_t *b = malloc(m ? m : 1);
  CHECK(b != NULL);
  CHECK(cell_encode(&c, b) == m);
  CHECK(memcmp(b, e->value.p, m) == 0);
  free(b);
  if (c.has_clock) {
    dvv d;
    dvv_init(&d);
    rc = cell_versions(&c, &d);
    CHECK(rc == 0 || rc == CELLAR_EPROTO || rc == CELLAR_ETOOBIG || rc == CELLAR_ENOMEM);
    dvv_close(&d);
  }
}

/* Decodes value p[0..n); 0 and the entries (caller frees *e), or the code. */
static int fuzz_value(const uint8_t *p, size_t n, uint64_t *exp, storage_entry **e,
                      size_t *ne) {
  int rc = hint_value_decode(p, n, exp, e, ne);
  CHECK(rc == 0 || rc == CELLAR_EPROTO || rc == CELLAR_ENOMEM);
  if (rc) {
    CHECK(*e == NULL && *ne == 0);
    return rc;
  }
  for (size_t i = 0; i < *ne; i++) {
    const storage_entry *x = &(*e)[i];
    CHECK(x->key.n == 0 || (x->key.p >= p && x->key.p + x->key.n <= p + n));
    CHECK(x->value.n == 0 || (x->value.p >= p && x->value.p + x->value.n <= p + n));
    check_entry(x);
  }
  size_t m = 0;
  uint8_t *b = hint_value_encode(*exp, *e, *ne, &m);
  CHECK(b != NULL);
  CHECK(m == n && memcmp(b, p, n) == 0);
  free(b);
  return 0;
}

/* One loaded hint through a replay machine: sent whole, or deleted. */
static void fuzz_loaded(const uint8_t *k, size_t nk, const uint8_t *v, size_t nv) {
  char host[HINT_HOST_MAX] = "fz-target";
  uint64_t created, seq, exp = 0;
  int key_ok = hint_key_decode(k, nk, host, &created, &seq) == 0;
  if (!key_ok) strcpy(host, "fz-target");
  storage_entry *e = NULL;
  size_t ne = 0;
  int val_ok = fuzz_value(v, nv, &exp, &e, &ne) == 0;
  const uint64_t wall = 1000000;
  int good = key_ok && val_ok && (exp == 0 || exp > wall);

  hints_config cfg;
  hints_config_init(&cfg);
  hints *h;
  CHECK(hints_new(&cfg, &h) == 0);
  hints_on_stored(h, host, nk + nv, 1, 0, 0);
  hints_set_alive(h, host, 1, 0);
  hints_tick(h, 0);
  hints_action a;
  uint64_t load = 0;
  while (hints_next(h, &a))
    if (a.kind == HINTS_LOAD) load = a.id;
  CHECK(load != 0);
  hint_record r = {CBYTES(k, nk), CBYTES(v, nv)};
  hints_on_loaded(h, load, &r, 1, 1, wall, 0);
  int sent = 0, deleted = 0;
  while (hints_next(h, &a)) {
    if (a.kind == HINTS_SEND) {
      sent++;
      CHECK(good && a.nhints == 1 && a.nentries == ne);
      for (size_t i = 0; i < ne; i++)
        CHECK(same(a.entries[i].key, e[i].key) && same(a.entries[i].value, e[i].value));
    } else if (a.kind == HINTS_DELETE) {
      deleted++;
      CHECK(!good && a.nkeys == 1 && same(a.keys[0], CBYTES(k, nk)));
    }
  }
  CHECK(good ? sent == 1 && deleted == 0 : sent == 0 && deleted == 1);
  free(e);
  hints_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > (1u << 16)) return 0;
  uint8_t mode = data[0];
  size_t split = (size_t)data[1] << 8 | data[2];
  const uint8_t *p = data + 3;
  size_t n = size - 3;
  if (split > n) split = n;
  if (mode % 3 == 0) {
    fuzz_key(p, n);
  } else if (mode % 3 == 1) {
    uint64_t exp;
    storage_entry *e = NULL;
    size_t ne = 0;
    fuzz_value(p, n, &exp, &e, &ne);
    free(e);
  } else {
    fuzz_loaded(p, split, p + split, n - split);
  }
  return 0;
}
