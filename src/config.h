/*
** config: the node's settings, from a file of `key = value` lines and from
** command-line flags (`--key value` or `--key=value`, same names, '-' and
** '_' interchangeable). Flags override the file. Every setting is checked;
** an unknown key or a bad value is refused with a message naming it.
*/
#ifndef CELLAR_CONFIG_H
#define CELLAR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct config {
  char listen_host[64];        /* listen = 127.0.0.1:7400 */
  int listen_port;
  char data_dir[512];          /* data_dir = ./data */
  size_t cache_bytes;          /* cache_size = 64MiB */
  size_t write_buffer_bytes;   /* write_buffer_size = 32MiB */
  int sync_writes;             /* sync_writes = false */
  uint32_t max_frame_bytes;    /* max_frame_size = 16MiB (2MiB..64MiB) */
  int max_connections;         /* max_connections = 1024 */
  size_t max_output_bytes;     /* max_connection_output = 64MiB */
  int max_inflight;            /* max_inflight_per_connection = 1024 */
  int workers;                 /* workers = cores - 1 (storage threads); 0 = auto */
  uint32_t max_slice_rows;     /* max_slice_rows = 1000 */
  uint32_t siblings_warn;      /* siblings_warn = 25: log and count a cell
                                  written with more siblings */
  uint32_t siblings_limit;     /* siblings_limit = 100: refuse a write that
                                  would leave more (1..4096) */
  int log_level;               /* log_level = info */
  char node_name[64];          /* node_name = (host id) */
  /* cluster */
  char cluster_name[64];       /* cluster_name = cellar */
  char peer_host[64];          /* peer_listen = <listen host>:<listen port + 1> */
  int peer_port;               /* 0 until set: derived from listen */
  char seeds[512];             /* seeds = host:port,... (peer addresses); "" = self */
  char dc[49];                 /* dc = dc1 */
  char rack[49];               /* rack = rack1 */
  int num_tokens;              /* num_tokens = 16 */
  double phi_threshold;        /* phi_convict_threshold = 8 */
  int gossip_interval_ms;      /* gossip_interval = 1000 (ms) */
  int read_timeout_ms;         /* read_request_timeout = 5000 (ms) */
  int write_timeout_ms;        /* write_request_timeout = 2000 (ms) */
  /* hinted handoff (docs/handoff.md) */
  int hints_enabled;           /* hinted_handoff_enabled = true */
  uint64_t max_hint_window_ms; /* max_hint_window = 3h: no hint for a node
                                  down longer */
  uint64_t max_hints_bytes;    /* max_hints_size_per_host = 1GiB (per target) */
  uint64_t hint_throttle_kib;  /* hinted_handoff_throttle = 1024 (KiB/s, all
                                  targets together; 0 = unthrottled) */
  uint64_t repair_bytes_per_s; /* repair_stream_throughput = 16MiB (per second) */
  int repair_parallel;         /* repair_parallel_ranges = 1 */
  uint64_t repair_scan_bytes_per_s; /* repair_scan_throughput = 16MiB (per second) */
} config;

void config_defaults(config *c);

/* Applies one setting. Returns 0 or CELLAR_ECONFIG with a message in err. */
int config_set(config *c, const char *key, const char *value, char *err,
               size_t errlen);

/* Reads a config file. 0 or CELLAR_ECONFIG (message names file and line). */
int config_load_file(config *c, const char *path, char *err, size_t errlen);

/*
** Parses argv: `--config FILE` is read first, then every other flag is
** applied in order. `--help` returns 1 (caller prints usage). Returns 0,
** 1, or CELLAR_ECONFIG with a message.
*/
int config_parse_args(config *c, int argc, char **argv, char *err,
                      size_t errlen);

/* Parses "64MiB", "512k", "1g", "1048576" into bytes. 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

/* Fills derived settings (peer port = listen port + 1 when unset). */
void config_finish(config *c);

/* Usage text for --help (static). */
const char *config_usage(void);

#endif
