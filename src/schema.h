/*
** schema: the catalogue of keyspaces and tables.
**
** The catalogue lives in memory behind a read-write lock and is persisted in
** the storage's system column family (one key per keyspace and per table,
** see docs/storage.md), so it survives restarts. Each table carries a random
** 64-bit id chosen at creation: the data keys of a table start with it, so a
** table dropped and created again never sees the old table's rows.
**
** Every function is thread-safe. Lookups copy the definition out, so the
** caller never holds a pointer into the catalogue.
*/
#ifndef CELLAR_SCHEMA_H
#define CELLAR_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#define SCHEMA_NAME_MAX 48     /* bytes, CELLAR_MAX_NAME_BYTES */
#define SCHEMA_DC_MAX 16       /* datacenters in one NetworkTopologyStrategy */
#define SCHEMA_DEFAULT_GC_GRACE 864000u   /* 10 days */

typedef enum repl_strategy {
  REPL_SIMPLE = 1,
  REPL_NETWORK_TOPOLOGY = 2
} repl_strategy;

typedef struct keyspace_def {
  char name[SCHEMA_NAME_MAX + 1];
  repl_strategy strategy;
  uint32_t rf;                 /* SimpleStrategy */
  size_t ndcs;                 /* NetworkTopologyStrategy */
  struct {
    char name[SCHEMA_NAME_MAX + 1];
    uint32_t rf;
  } dcs[SCHEMA_DC_MAX];
  int64_t modified;            /* µs, set by the schema; newest wins on merge */
  int dropped;                 /* a tombstone (kept so a drop spreads) */
} keyspace_def;

typedef enum conflict_policy {
  POLICY_SIBLINGS = 1,
  POLICY_LWW = 2
} conflict_policy;

typedef struct table_def {
  char keyspace[SCHEMA_NAME_MAX + 1];
  char name[SCHEMA_NAME_MAX + 1];
  uint64_t id;
  conflict_policy policy;
  uint32_t gc_grace;           /* seconds */
  uint32_t default_ttl;        /* seconds, 0 = none */
  int64_t modified;            /* µs, set by the schema; newest wins on merge */
  int dropped;                 /* a tombstone (kept so a drop spreads) */
} table_def;

/* Names: 1..48 bytes of [A-Za-z0-9_], not starting with a digit.
** Returns 0 or CELLAR_EBADNAME. */
int schema_check_name(const char *name);

/* "SimpleStrategy:3" / "NetworkTopologyStrategy:dc1=3,dc2=3" <-> def.
** Parse returns 0 or CELLAR_EINVAL with a message in err (errlen bytes). */
int schema_parse_replication(const char *spec, keyspace_def *out, char *err,
                             size_t errlen);
/* Writes the spec form of def into buf (always NUL-terminated). */
void schema_format_replication(const keyspace_def *def, char *buf, size_t len);
/* "siblings" / "lww" */
const char *schema_policy_name(conflict_policy p);
int schema_parse_policy(const char *s, conflict_policy *out);

/* Serialisation of one definition for the system column family. The
** encode functions return malloc'd bytes (caller frees with free()) and set
** *len; decode returns 0 or CELLAR_EPROTO. */
uint8_t *schema_encode_keyspace(const keyspace_def *d, size_t *len);
int schema_decode_keyspace(const uint8_t *p, size_t n, keyspace_def *out);
uint8_t *schema_encode_table(const table_def *d, size_t *len);
int schema_decode_table(const uint8_t *p, size_t n, table_def *out);

typedef struct storage storage;
typedef struct schema schema;

/* Loads the catalogue from st (borrowed, must outlive the schema).
** *out: caller frees with schema_free(). */
int schema_open(storage *st, schema **out);
void schema_free(schema *s);

/* Mutations persist before they return; they return 0 or a cellar code
** (CELLAR_EEXISTS, CELLAR_ENOKEYSPACE, CELLAR_EBADNAME, CELLAR_ESTORAGE...).
** create_table assigns def->id. drop_keyspace drops its tables' data.
** *dropped (may be NULL) is set to 1 when something was removed. */
int schema_create_keyspace(schema *s, const keyspace_def *def, int if_not_exists);
int schema_drop_keyspace(schema *s, const char *name, int if_exists);
int schema_create_table(schema *s, table_def *def, int if_not_exists);
int schema_drop_table(schema *s, const char *ks, const char *name, int if_exists);

/* Copies the definition out. 0, CELLAR_ENOKEYSPACE or CELLAR_ENOTABLE. */
int schema_get_keyspace(schema *s, const char *name, keyspace_def *out);
int schema_get_table(schema *s, const char *ks, const char *name, table_def *out);
/* A live table by id (replica reads name tables by id). 0 or
** CELLAR_ENOTABLE. */
int schema_get_table_by_id(schema *s, uint64_t id, table_def *out);
/* gc_grace of a table by id; 0 when found, CELLAR_ENOTABLE otherwise.
** Called from RocksDB's compaction threads. */
int schema_gc_grace_by_id(schema *s, uint64_t id, uint32_t *gc_grace);

/* Copies of every keyspace (ks NULL) or one keyspace and its tables.
** *kss and *tables: malloc'd arrays, caller frees with free(). */
int schema_list(schema *s, const char *ks, keyspace_def **kss, size_t *nks,
                table_def **tables, size_t *ntables);

/* A digest of the live definitions, changes whenever they change: two
** nodes with the same version have the same schema. */
uint64_t schema_version(schema *s);

/*
** Schema agreement between nodes. Every definition carries a modification
** time and a drop leaves a tombstone record, so merging is "newest record
** wins" per name (ties: the higher table id, then the tombstone):
** commutative, idempotent, and a drop is never undone by an older create.
** schema_export calls cb with every record (live and tombstones), in key
** order, bytes borrowed for the call. schema_merge_record applies a record
** from another node if it is newer than ours (persisting it, dropping a
** table's data when its tombstone wins); *changed (may be NULL) tells.
** Both block on storage: worker threads only.
*/
int schema_export(schema *s, int (*cb)(void *arg, const uint8_t *k, size_t nk,
                                       const uint8_t *v, size_t nv),
                  void *arg);
int schema_merge_record(schema *s, const uint8_t *k, size_t nk,
                        const uint8_t *v, size_t nv, int *changed);

#endif
