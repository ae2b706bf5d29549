/* Where the lines a run prints go.  The engine never writes to stdout or
 * stderr itself: it says what kind of line it has, and the sink in force
 * on the calling thread prints it (the command line: stderr with the
 * "cnnviz-cl: " prefix, stdout for results; a library caller: its own
 * callback, or nothing).  Without a sink, lines go where the command line
 * would print them, unfiltered. */
#ifndef CNN_CORE_LOG_H
#define CNN_CORE_LOG_H

#include <stdbool.h>

typedef enum cnn_log_kind {
    CNN_LOG_INFO,       /* what the run is doing (stderr; --quiet drops it) */
    CNN_LOG_WARN,       /* something to know about the results (stderr, always) */
    CNN_LOG_RESULT,     /* a measurement that was asked for (stdout, always) */
    CNN_LOG_PREDICTION  /* one input's predictions (stdout; --quiet drops it) */
} cnn_log_kind;

typedef struct cnn_log {
    /* One line, without its newline; text may hold any byte (a path). */
    void (*emit)(void *ctx, cnn_log_kind kind, const char *text);
    /* Inputs done so far (NULL: not shown). */
    void (*progress)(void *ctx, int done, int total, double per_second, bool last);
    void *ctx;
} cnn_log;

/* Makes `log` this thread's sink (NULL: the default) and returns the one
 * it replaces, to be put back when the caller is done. */
const cnn_log *cnn_log_use(const cnn_log *log);

void cnn_logf(cnn_log_kind kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cnn_log_progress(int done, int total, double per_second, bool last);

#endif
