/* log: leveled, one line per event, with the node id, on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

static int min_level = LOG_INFO;
static char node[40] = "-";

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(int level) { min_level = level; }

int log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, level_names[i]) == 0) return i;
  if (strcasecmp(s, "warning") == 0) return LOG_WARN;
  return -1;
}

void log_set_node(const char *node_id) {
  snprintf(node, sizeof node, "%s", node_id ? node_id : "-");
}

void log_msg(int level, const char *fmt, ...) {
  if (level < min_level) return;
  if (level < 0 || level > LOG_ERROR) level = LOG_ERROR;
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s node=%s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   level_names[level], node);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  /* one event, one line: newlines inside a message become spaces */
  for (size_t i = (size_t)n; i < len; i++)
    if (line[i] == '\n') line[i] = ' ';
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
