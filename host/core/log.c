#include "core/log.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local const cnn_log *g_log;

const cnn_log *cnn_log_use(const cnn_log *log)
{
    const cnn_log *old = g_log;
    g_log = log;
    return old;
}

void cnn_logf(cnn_log_kind kind, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (g_log) {
        if (g_log->emit) g_log->emit(g_log->ctx, kind, line);
        return;
    }
    switch (kind) {
    case CNN_LOG_INFO: cnn_print_line(stderr, "cnnviz-cl: ", line); break;
    case CNN_LOG_WARN: cnn_print_line(stderr, "cnnviz-cl: warning: ", line); break;
    default: fprintf(stdout, "%s\n", line); break;
    }
}

void cnn_log_progress(int done, int total, double per_second, bool last)
{
    if (g_log && g_log->progress) g_log->progress(g_log->ctx, done, total, per_second, last);
}
