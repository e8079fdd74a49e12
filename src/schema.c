/*
** schema: the catalogue of keyspaces and tables, in memory and in the
** system column family.
**
** Invariants:
**   1. Every definition in memory is also in the system CF: a mutation
**      writes the system CF first and changes memory only if that worked.
**   2. Mutations are serialised by the write lock; lookups take the read
**      lock and copy the definition out.
**   3. A table's id is random and never reused, so data keys (which start
**      with the id) of a dropped table can never be read by a new table.
**   4. A drop keeps a tombstone (dropped=1) in memory and on disk, with a
**      modification time above the definition it replaces; lookups, lists
**      and the version see live definitions only. Tombstones are what lets
**      a drop spread to nodes that were down (schema_merge_record).
**
** System CF keys:  "schema/ks/<ks>"  and  "schema/tb/<ks>/<table>".
** Values are text, one "key=value" per line, first line "v1"; unknown keys
** are ignored when read, so later versions can add settings.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cellar/cellar.h"
#include "clock.h"
#include "log.h"
#include "schema.h"
#include "storage.h"

struct schema {
  storage *st;
  pthread_rwlock_t lock;
  keyspace_def *ks;
  size_t nks, capks;
  table_def *tb;
  size_t ntb, captb;
  uint64_t version;
};

/* ------------------------------------------------------------- names */

int schema_check_name(const char *name) {
  if (name == NULL) return CELLAR_EBADNAME;
  size_t n = strlen(name);
  if (n == 0 || n > SCHEMA_NAME_MAX) return CELLAR_EBADNAME;
  if (name[0] >= '0' && name[0] <= '9') return CELLAR_EBADNAME;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return CELLAR_EBADNAME;
  }
  return 0;
}

const char *schema_policy_name(conflict_policy p) {
  return p == POLICY_LWW ? "lww" : "siblings";
}

int schema_parse_policy(const char *s, conflict_policy *out) {
  if (s == NULL || *s == '\0' || !strcmp(s, "siblings")) *out = POLICY_SIBLINGS;
  else if (!strcmp(s, "lww")) *out = POLICY_LWW;
  else return CELLAR_EINVAL;
  return 0;
}

/* ------------------------------------------------ replication specs */

static int parse_rf(const char *s, size_t n, uint32_t *out) {
  if (n == 0 || n > 3) return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v < 1 || v > 100) return -1;
  *out = v;
  return 0;
}

int schema_parse_replication(const char *spec, keyspace_def *out, char *err,
                             size_t errlen) {
  const char *colon = spec ? strchr(spec, ':') : NULL;
  if (colon == NULL) {
    snprintf(err, errlen, "replication '%s': expected SimpleStrategy:RF or "
             "NetworkTopologyStrategy:DC=RF[,DC=RF...]", spec ? spec : "");
    return CELLAR_EINVAL;
  }
  size_t cls = (size_t)(colon - spec);
  const char *rest = colon + 1;
  if (cls == strlen("SimpleStrategy") && !strncmp(spec, "SimpleStrategy", cls)) {
    out->strategy = REPL_SIMPLE;
    out->ndcs = 0;
    if (parse_rf(rest, strlen(rest), &out->rf)) {
      snprintf(err, errlen, "replication factor '%s' must be 1..100", rest);
      return CELLAR_EINVAL;
    }
    return 0;
  }
  if (cls == strlen("NetworkTopologyStrategy") &&
      !strncmp(spec, "NetworkTopologyStrategy", cls)) {
    out->strategy = REPL_NETWORK_TOPOLOGY;
    out->rf = 0;
    out->ndcs = 0;
    const char *p = rest;
    while (*p) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      const char *eq = memchr(p, '=', len);
      if (eq == NULL || eq == p || (size_t)(eq - p) > SCHEMA_NAME_MAX) {
        snprintf(err, errlen, "datacenter entry '%.*s': expected DC=RF", (int)len, p);
        return CELLAR_EINVAL;
      }
      if (out->ndcs == SCHEMA_DC_MAX) {
        snprintf(err, errlen, "at most %d datacenters", SCHEMA_DC_MAX);
        return CELLAR_EINVAL;
      }
      size_t nl = (size_t)(eq - p);
      memcpy(out->dcs[out->ndcs].name, p, nl);
      out->dcs[out->ndcs].name[nl] = '\0';
      if (parse_rf(eq + 1, len - nl - 1, &out->dcs[out->ndcs].rf)) {
        snprintf(err, errlen, "replication factor of %s must be 1..100",
                 out->dcs[out->ndcs].name);
        return CELLAR_EINVAL;
      }
      for (size_t i = 0; i < out->ndcs; i++)
        if (!strcmp(out->dcs[i].name, out->dcs[out->ndcs].name)) {
          snprintf(err, errlen, "datacenter %s given twice", out->dcs[i].name);
          return CELLAR_EINVAL;
        }
      out->ndcs++;
      p = comma ? comma + 1 : p + len;
    }
    if (out->ndcs == 0) {
      snprintf(err, errlen, "NetworkTopologyStrategy needs at least one DC=RF");
      return CELLAR_EINVAL;
    }
    return 0;
  }
  snprintf(err, errlen, "unknown replication strategy '%.*s'", (int)cls, spec);
  return CELLAR_EINVAL;
}

void schema_format_replication(const keyspace_def *d, char *buf, size_t len) {
  if (d->strategy == REPL_SIMPLE) {
    snprintf(buf, len, "SimpleStrategy:%u", d->rf);
    return;
  }
  size_t off = (size_t)snprintf(buf, len, "NetworkTopologyStrategy:");
  for (size_t i = 0; i < d->ndcs && off < len; i++)
    off += (size_t)snprintf(buf + off, len - off, "%s%s=%u", i ? "," : "",
                            d->dcs[i].name, d->dcs[i].rf);
}

/* ------------------------------------------------------ serialisation */

uint8_t *schema_encode_keyspace(const keyspace_def *d, size_t *len) {
  char repl[1200];
  schema_format_replication(d, repl, sizeof repl);
  char *out = NULL;
  int n = asprintf(&out, "v1\nname=%s\nreplication=%s\nmodified=%lld\n%s", d->name,
                   repl, (long long)d->modified, d->dropped ? "dropped=1\n" : "");
  if (n < 0) return NULL;
  *len = (size_t)n;
  return (uint8_t *)out;
}

uint8_t *schema_encode_table(const table_def *d, size_t *len) {
  char *out = NULL;
  int n = asprintf(&out, "v1\nkeyspace=%s\nname=%s\nid=%016llx\npolicy=%s\n"
                   "gc_grace=%u\ndefault_ttl=%u\nmodified=%lld\n%s", d->keyspace, d->name,
                   (unsigned long long)d->id, schema_policy_name(d->policy),
                   d->gc_grace, d->default_ttl, (long long)d->modified,
                   d->dropped ? "dropped=1\n" : "");
  if (n < 0) return NULL;
  *len = (size_t)n;
  return (uint8_t *)out;
}

/* Calls fn(key, value) for each line "key=value" of a v1 record. */
static int each_line(const uint8_t *p, size_t n,
                     int (*fn)(void *, const char *, const char *), void *arg) {
  if (n < 3 || n > 8192 || memcmp(p, "v1\n", 3) != 0) return CELLAR_EPROTO;
  char buf[8193];
  memcpy(buf, p, n);
  buf[n] = '\0';
  char *save = NULL;
  for (char *line = strtok_r(buf + 3, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    if (eq == NULL) return CELLAR_EPROTO;
    *eq = '\0';
    int rc = fn(arg, line, eq + 1);
    if (rc) return rc;
  }
  return 0;
}

static int ks_field(void *arg, const char *k, const char *v) {
  keyspace_def *d = arg;
  char err[128];
  if (!strcmp(k, "name")) {
    if (schema_check_name(v)) return CELLAR_EPROTO;
    snprintf(d->name, sizeof d->name, "%s", v);
  } else if (!strcmp(k, "replication")) {
    if (schema_parse_replication(v, d, err, sizeof err)) return CELLAR_EPROTO;
  } else if (!strcmp(k, "modified")) {
    d->modified = strtoll(v, NULL, 10);
  } else if (!strcmp(k, "dropped")) {
    d->dropped = !strcmp(v, "1");
  }
  return 0;
}

int schema_decode_keyspace(const uint8_t *p, size_t n, keyspace_def *out) {
  memset(out, 0, sizeof *out);
  int rc = each_line(p, n, ks_field, out);
  if (rc == 0 && (out->name[0] == '\0' || out->strategy == 0)) rc = CELLAR_EPROTO;
  return rc;
}

static int tb_field(void *arg, const char *k, const char *v) {
  table_def *d = arg;
  char *end;
  if (!strcmp(k, "keyspace") || !strcmp(k, "name")) {
    if (schema_check_name(v)) return CELLAR_EPROTO;
    snprintf(!strcmp(k, "name") ? d->name : d->keyspace, SCHEMA_NAME_MAX + 1, "%s", v);
  } else if (!strcmp(k, "id")) {
    d->id = strtoull(v, &end, 16);
    if (*end) return CELLAR_EPROTO;
  } else if (!strcmp(k, "policy")) {
    if (schema_parse_policy(v, &d->policy)) return CELLAR_EPROTO;
  } else if (!strcmp(k, "gc_grace")) {
    d->gc_grace = (uint32_t)strtoul(v, &end, 10);
    if (*end) return CELLAR_EPROTO;
  } else if (!strcmp(k, "default_ttl")) {
    d->default_ttl = (uint32_t)strtoul(v, &end, 10);
    if (*end) return CELLAR_EPROTO;
  } else if (!strcmp(k, "modified")) {
    d->modified = strtoll(v, NULL, 10);
  } else if (!strcmp(k, "dropped")) {
    d->dropped = !strcmp(v, "1");
  }
  return 0;
}

int schema_decode_table(const uint8_t *p, size_t n, table_def *out) {
  memset(out, 0, sizeof *out);
  out->policy = POLICY_SIBLINGS;
  out->gc_grace = SCHEMA_DEFAULT_GC_GRACE;
  int rc = each_line(p, n, tb_field, out);
  if (rc == 0 && (out->name[0] == '\0' || out->keyspace[0] == '\0' || out->id == 0))
    rc = CELLAR_EPROTO;
  return rc;
}

/* ------------------------------------------------------------ catalogue */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* Caller holds the write lock. Order-independent digest of all defs. */
static void do_recompute_version(schema *s) {
  uint64_t v = 0;
  size_t n;
  for (size_t i = 0; i < s->nks; i++) {
    if (s->ks[i].dropped) continue;
    keyspace_def k = s->ks[i];
    k.modified = 0;   /* the same definition made at two times is the same */
    uint8_t *e = schema_encode_keyspace(&k, &n);
    if (e) v += fnv(0xcbf29ce484222325ull, e, n);
    free(e);
  }
  for (size_t i = 0; i < s->ntb; i++) {
    if (s->tb[i].dropped) continue;
    table_def t = s->tb[i];
    t.modified = 0;
    uint8_t *e = schema_encode_table(&t, &n);
    if (e) v += fnv(0xcbf29ce484222325ull, e, n);
    free(e);
  }
  s->version = v;
}

static int do_add_ks(schema *s, const keyspace_def *d) {
  if (s->nks == s->capks) {
    size_t cap = s->capks ? s->capks * 2 : 8;
    keyspace_def *k = realloc(s->ks, cap * sizeof *k);
    if (k == NULL) return CELLAR_ENOMEM;
    s->ks = k;
    s->capks = cap;
  }
  s->ks[s->nks++] = *d;
  return 0;
}

static int do_add_tb(schema *s, const table_def *d) {
  if (s->ntb == s->captb) {
    size_t cap = s->captb ? s->captb * 2 : 8;
    table_def *t = realloc(s->tb, cap * sizeof *t);
    if (t == NULL) return CELLAR_ENOMEM;
    s->tb = t;
    s->captb = cap;
  }
  s->tb[s->ntb++] = *d;
  return 0;
}

/* Any record of that name, live or tombstone. */
static keyspace_def *do_find_ks_any(schema *s, const char *name) {
  for (size_t i = 0; i < s->nks; i++)
    if (!strcmp(s->ks[i].name, name)) return &s->ks[i];
  return NULL;
}

static keyspace_def *do_find_ks(schema *s, const char *name) {
  keyspace_def *k = do_find_ks_any(s, name);
  return k && !k->dropped ? k : NULL;
}

static table_def *do_find_tb_any(schema *s, const char *ks, const char *name) {
  for (size_t i = 0; i < s->ntb; i++)
    if (!strcmp(s->tb[i].keyspace, ks) && !strcmp(s->tb[i].name, name))
      return &s->tb[i];
  return NULL;
}

static table_def *do_find_tb(schema *s, const char *ks, const char *name) {
  table_def *t = do_find_tb_any(s, ks, name);
  return t && !t->dropped ? t : NULL;
}

/* A modification time after now and after the record it replaces. */
static int64_t next_modified(int64_t previous) {
  int64_t now = clock_now_us();
  return now > previous ? now : previous + 1;
}

static int load_ks(void *arg, const uint8_t *k, size_t nk, const uint8_t *v,
                   size_t nv) {
  keyspace_def d;
  if (schema_decode_keyspace(v, nv, &d)) {
    log_error("schema: unreadable keyspace record %.*s, skipped", (int)nk, k);
    return 0;
  }
  return do_add_ks(arg, &d);
}

static int load_tb(void *arg, const uint8_t *k, size_t nk, const uint8_t *v,
                   size_t nv) {
  table_def d;
  if (schema_decode_table(v, nv, &d)) {
    log_error("schema: unreadable table record %.*s, skipped", (int)nk, k);
    return 0;
  }
  return do_add_tb(arg, &d);
}

int schema_open(storage *st, schema **out) {
  *out = NULL;
  schema *s = calloc(1, sizeof *s);
  if (s == NULL) return CELLAR_ENOMEM;
  s->st = st;
  pthread_rwlock_init(&s->lock, NULL);
  int rc = storage_system_scan(st, "schema/ks/", 10, load_ks, s);
  if (rc == 0) rc = storage_system_scan(st, "schema/tb/", 10, load_tb, s);
  if (rc) {
    schema_free(s);
    return rc;
  }
  do_recompute_version(s);
  log_info("schema: loaded %zu keyspaces, %zu tables", s->nks, s->ntb);
  *out = s;
  return 0;
}

void schema_free(schema *s) {
  if (s == NULL) return;
  pthread_rwlock_destroy(&s->lock);
  free(s->ks);
  free(s->tb);
  free(s);
}

static int ks_key(char *buf, size_t len, const char *ks) {
  return snprintf(buf, len, "schema/ks/%s", ks);
}

static int tb_key(char *buf, size_t len, const char *ks, const char *tb) {
  return snprintf(buf, len, "schema/tb/%s/%s", ks, tb);
}

int schema_create_keyspace(schema *s, const keyspace_def *def, int if_not_exists) {
  if (schema_check_name(def->name)) return CELLAR_EBADNAME;
  pthread_rwlock_wrlock(&s->lock);
  int rc = 0;
  if (do_find_ks(s, def->name)) {
    rc = if_not_exists ? 0 : CELLAR_EEXISTS;
    goto out;
  }
  keyspace_def *tomb = do_find_ks_any(s, def->name);
  keyspace_def d = *def;
  d.dropped = 0;
  d.modified = next_modified(tomb ? tomb->modified : 0);
  size_t n;
  uint8_t *enc = schema_encode_keyspace(&d, &n);
  if (enc == NULL) {
    rc = CELLAR_ENOMEM;
    goto out;
  }
  char key[128];
  int nk = ks_key(key, sizeof key, def->name);
  rc = storage_system_put(s->st, key, (size_t)nk, enc, n);
  free(enc);
  if (rc == 0) {
    if (tomb) *tomb = d;
    else rc = do_add_ks(s, &d);
  }
  if (rc == 0) {
    do_recompute_version(s);
    log_info("schema: created keyspace %s", def->name);
  }
out:
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

/* Caller holds the write lock. Turns table i into a tombstone (record and
** memory) and removes its data. */
static int do_drop_table(schema *s, size_t i) {
  table_def t = s->tb[i];
  t.dropped = 1;
  t.modified = next_modified(t.modified);
  size_t n;
  uint8_t *enc = schema_encode_table(&t, &n);
  if (enc == NULL) return CELLAR_ENOMEM;
  char key[128];
  int nk = tb_key(key, sizeof key, t.keyspace, t.name);
  int rc = storage_system_put(s->st, key, (size_t)nk, enc, n);
  free(enc);
  if (rc) return rc;
  s->tb[i] = t;
  rc = storage_drop_table(s->st, t.id);
  if (rc) log_error("schema: dropped %s.%s but its data was not removed", t.keyspace, t.name);
  log_info("schema: dropped table %s.%s", t.keyspace, t.name);
  return 0;
}

int schema_drop_keyspace(schema *s, const char *name, int if_exists) {
  pthread_rwlock_wrlock(&s->lock);
  int rc = 0;
  keyspace_def *k = do_find_ks(s, name);
  if (k == NULL) {
    rc = if_exists ? 0 : CELLAR_ENOKEYSPACE;
    goto out;
  }
  for (size_t i = 0; i < s->ntb && rc == 0; i++)
    if (!s->tb[i].dropped && !strcmp(s->tb[i].keyspace, name)) rc = do_drop_table(s, i);
  if (rc) goto out;
  keyspace_def d = *k;
  d.dropped = 1;
  d.modified = next_modified(d.modified);
  size_t n;
  uint8_t *enc = schema_encode_keyspace(&d, &n);
  if (enc == NULL) {
    rc = CELLAR_ENOMEM;
    goto out;
  }
  char key[128];
  int nk = ks_key(key, sizeof key, name);
  rc = storage_system_put(s->st, key, (size_t)nk, enc, n);
  free(enc);
  if (rc == 0) {
    *k = d;
    do_recompute_version(s);
    log_info("schema: dropped keyspace %s", name);
  }
out:
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

int schema_create_table(schema *s, table_def *def, int if_not_exists) {
  if (schema_check_name(def->name) || schema_check_name(def->keyspace))
    return CELLAR_EBADNAME;
  pthread_rwlock_wrlock(&s->lock);
  int rc = 0;
  if (do_find_ks(s, def->keyspace) == NULL) {
    rc = CELLAR_ENOKEYSPACE;
    goto out;
  }
  table_def *old = do_find_tb(s, def->keyspace, def->name);
  if (old) {
    if (if_not_exists) *def = *old;
    rc = if_not_exists ? 0 : CELLAR_EEXISTS;
    goto out;
  }
  do {
    def->id = clock_random64();
  } while (def->id == 0);
  table_def *tomb = do_find_tb_any(s, def->keyspace, def->name);
  def->dropped = 0;
  def->modified = next_modified(tomb ? tomb->modified : 0);
  size_t n;
  uint8_t *enc = schema_encode_table(def, &n);
  if (enc == NULL) {
    rc = CELLAR_ENOMEM;
    goto out;
  }
  char key[128];
  int nk = tb_key(key, sizeof key, def->keyspace, def->name);
  rc = storage_system_put(s->st, key, (size_t)nk, enc, n);
  free(enc);
  if (rc == 0) {
    if (tomb) *tomb = *def;
    else rc = do_add_tb(s, def);
  }
  if (rc == 0) {
    do_recompute_version(s);
    log_info("schema: created table %s.%s id=%016llx policy=%s", def->keyspace,
             def->name, (unsigned long long)def->id, schema_policy_name(def->policy));
  }
out:
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

int schema_drop_table(schema *s, const char *ks, const char *name, int if_exists) {
  pthread_rwlock_wrlock(&s->lock);
  int rc = 0;
  if (do_find_ks(s, ks) == NULL) {
    rc = if_exists ? 0 : CELLAR_ENOKEYSPACE;
    goto out;
  }
  table_def *t = do_find_tb(s, ks, name);
  if (t == NULL) {
    rc = if_exists ? 0 : CELLAR_ENOTABLE;
    goto out;
  }
  rc = do_drop_table(s, (size_t)(t - s->tb));
  if (rc == 0) do_recompute_version(s);
out:
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

int schema_get_keyspace(schema *s, const char *name, keyspace_def *out) {
  pthread_rwlock_rdlock(&s->lock);
  keyspace_def *k = do_find_ks(s, name);
  if (k) *out = *k;
  pthread_rwlock_unlock(&s->lock);
  return k ? 0 : CELLAR_ENOKEYSPACE;
}

int schema_get_table(schema *s, const char *ks, const char *name, table_def *out) {
  pthread_rwlock_rdlock(&s->lock);
  int rc = 0;
  table_def *t = NULL;
  if (do_find_ks(s, ks) == NULL) rc = CELLAR_ENOKEYSPACE;
  else if ((t = do_find_tb(s, ks, name)) == NULL) rc = CELLAR_ENOTABLE;
  else *out = *t;
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

int schema_get_table_by_id(schema *s, uint64_t id, table_def *out) {
  pthread_rwlock_rdlock(&s->lock);
  int rc = CELLAR_ENOTABLE;
  for (size_t i = 0; i < s->ntb; i++)
    if (s->tb[i].id == id && !s->tb[i].dropped) {
      *out = s->tb[i];
      rc = 0;
      break;
    }
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

int schema_gc_grace_by_id(schema *s, uint64_t id, uint32_t *gc_grace) {
  pthread_rwlock_rdlock(&s->lock);
  int rc = CELLAR_ENOTABLE;
  for (size_t i = 0; i < s->ntb; i++)
    if (s->tb[i].id == id && !s->tb[i].dropped) {
      *gc_grace = s->tb[i].gc_grace;
      rc = 0;
      break;
    }
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

int schema_list(schema *s, const char *ks, keyspace_def **kss, size_t *nks,
                table_def **tables, size_t *ntables) {
  *kss = NULL;
  *tables = NULL;
  *nks = *ntables = 0;
  pthread_rwlock_rdlock(&s->lock);
  int rc = 0;
  if (ks && *ks && do_find_ks(s, ks) == NULL) {
    rc = CELLAR_ENOKEYSPACE;
    goto out;
  }
  *kss = malloc((s->nks + 1) * sizeof **kss);
  *tables = malloc((s->ntb + 1) * sizeof **tables);
  if (*kss == NULL || *tables == NULL) {
    free(*kss);
    free(*tables);
    *kss = NULL;
    *tables = NULL;
    rc = CELLAR_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < s->nks; i++)
    if (!s->ks[i].dropped && (!ks || !*ks || !strcmp(s->ks[i].name, ks)))
      (*kss)[(*nks)++] = s->ks[i];
  for (size_t i = 0; i < s->ntb; i++)
    if (!s->tb[i].dropped && (!ks || !*ks || !strcmp(s->tb[i].keyspace, ks)))
      (*tables)[(*ntables)++] = s->tb[i];
out:
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

uint64_t schema_version(schema *s) {
  pthread_rwlock_rdlock(&s->lock);
  uint64_t v = s->version;
  pthread_rwlock_unlock(&s->lock);
  return v;
}

/* ------------------------------------------------------ agreement */

int schema_export(schema *s, int (*cb)(void *arg, const uint8_t *k, size_t nk,
                                       const uint8_t *v, size_t nv),
                  void *arg) {
  pthread_rwlock_rdlock(&s->lock);
  int rc = storage_system_scan(s->st, "schema/", 7, cb, arg);
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

/* Is a (the incoming record) newer than b (ours)? */
static int ks_newer(const keyspace_def *a, const keyspace_def *b) {
  if (a->modified != b->modified) return a->modified > b->modified;
  return a->dropped > b->dropped;
}

static int tb_newer(const table_def *a, const table_def *b) {
  if (a->modified != b->modified) return a->modified > b->modified;
  if (a->id != b->id) return a->id > b->id;
  return a->dropped > b->dropped;
}

int schema_merge_record(schema *s, const uint8_t *k, size_t nk,
                        const uint8_t *v, size_t nv, int *changed) {
  if (changed) *changed = 0;
  char key[160];
  int rc = 0;
  if (nk > 10 && !memcmp(k, "schema/ks/", 10)) {
    keyspace_def d;
    if (schema_decode_keyspace(v, nv, &d)) return CELLAR_EPROTO;
    int n = ks_key(key, sizeof key, d.name);
    if ((size_t)n != nk || memcmp(key, k, nk)) return CELLAR_EPROTO;
    pthread_rwlock_wrlock(&s->lock);
    keyspace_def *mine = do_find_ks_any(s, d.name);
    if (mine == NULL || ks_newer(&d, mine)) {
      rc = storage_system_put(s->st, key, (size_t)n, v, nv);
      if (rc == 0) {
        if (mine) *mine = d;
        else rc = do_add_ks(s, &d);
      }
      if (rc == 0) {
        do_recompute_version(s);
        if (changed) *changed = 1;
        log_info("schema: %s keyspace %s from a peer", d.dropped ? "dropped" : "took",
                 d.name);
      }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
  }
  if (nk > 10 && !memcmp(k, "schema/tb/", 10)) {
    table_def d;
    if (schema_decode_table(v, nv, &d)) return CELLAR_EPROTO;
    int n = tb_key(key, sizeof key, d.keyspace, d.name);
    if ((size_t)n != nk || memcmp(key, k, nk)) return CELLAR_EPROTO;
    pthread_rwlock_wrlock(&s->lock);
    table_def *mine = do_find_tb_any(s, d.keyspace, d.name);
    if (mine == NULL || tb_newer(&d, mine)) {
      uint64_t old_id = mine && !mine->dropped ? mine->id : 0;
      rc = storage_system_put(s->st, key, (size_t)n, v, nv);
      if (rc == 0) {
        if (mine) *mine = d;
        else rc = do_add_tb(s, &d);
      }
      if (rc == 0) {
        /* the data of a table that lost (dropped, or replaced) goes */
        if (old_id && (d.dropped || d.id != old_id)) storage_drop_table(s->st, old_id);
        do_recompute_version(s);
        if (changed) *changed = 1;
        log_info("schema: %s table %s.%s from a peer", d.dropped ? "dropped" : "took",
                 d.keyspace, d.name);
      }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
  }
  return CELLAR_EPROTO;
}
