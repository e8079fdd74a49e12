/*
** log: one line per event on stderr:
**   2026-11-21T23:40:01.123Z INFO  node=ab12cd34 storage: opened /data
** Thread-safe (one write() per line).
*/
#ifndef CELLAR_LOG_H
#define CELLAR_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(int level);
int log_parse_level(const char *s);   /* -1 when unknown */
void log_set_node(const char *node_id);   /* copied */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
