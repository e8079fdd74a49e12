/*
** harness: start and stop real cellard processes on loopback for the
** multi-process tests. The cellard binary comes from $CELLARD (set by
** ctest), the tools from $CELLAR_CLI, $CELLAR_ADMIN, $CELLAR_BENCH.
*/
#ifndef CELLAR_HARNESS_H
#define CELLAR_HARNESS_H

#include <sys/types.h>

typedef struct node_proc {
  pid_t pid;                   /* 0 when not running */
  char host[32];               /* "127.0.0.1" */
  int port;                    /* client port */
  char data_dir[512];
  char log_path[600];
  char addr[64];               /* "127.0.0.1:PORT" */
  int peer_port;               /* node-to-node port */
  char peer_addr[64];          /* "127.0.0.1:PEER_PORT" */
} node_proc;

/* Picks two free ports on host (client, peer), prepares a data dir under
** base (created). Does not start anything. */
void harness_node_init(node_proc *n, const char *base, const char *host,
                       int index);

/* Starts cellard with the node's settings plus extra flags (NULL-terminated
** array, may be NULL), waits until it accepts connections (timeout_ms).
** Returns 0 or -1 (the log path tells why). */
int harness_node_start(node_proc *n, const char *const *extra, int timeout_ms);

/* Sends sig; for SIGTERM/SIGKILL also waits for exit. Returns the exit
** status as given by waitpid (or -1). */
int harness_node_signal(node_proc *n, int sig);

/* Runs a command (argv NULL-terminated), captures stdout+stderr into a
** malloc'd string (*out, caller frees; may be NULL), returns exit status
** (0..255) or -1. */
int harness_run(const char *const *argv, char **out);

#endif
