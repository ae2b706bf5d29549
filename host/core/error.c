#define _POSIX_C_SOURCE 200809L
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <clblast_c.h>

static _Thread_local char g_message[CNN_ERROR_MAX];

int cnn_error_set(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, ap);
    va_end(ap);
    return status;
}

int cnn_error_prefix(int status, const char *fmt, ...)
{
    /* An interruption is the same wherever it stopped the run. */
    if (status == CNN_ERR_INTERRUPTED) return status;
    char prefix[CNN_ERROR_MAX];
    char old[CNN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_message, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof g_message - 3) n = sizeof g_message - 3;
    memcpy(g_message, prefix, n);
    g_message[n] = ':';
    g_message[n + 1] = ' ';
    size_t rest = sizeof g_message - n - 2;
    size_t m = strnlen(old, rest - 1);
    memcpy(g_message + n + 2, old, m);
    g_message[n + 2 + m] = '\0';
    return status;
}

const char *cnn_error_message(void) { return g_message; }

void cnn_error_clear(void) { g_message[0] = '\0'; }

size_t cnn_escape_line(char *out, size_t size, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)text;
    size_t n = strlen(text), j = 0;
    if (size == 0) return 0;
    for (size_t i = 0; i < n;) {
        size_t seq = cnn_utf8_seq_len(p + i, n - i);
        unsigned char c = p[i];
        bool c1 = seq == 2 && c == 0xc2 && p[i + 1] < 0xa0;
        char esc[4] = {'\\', c == '\n' ? 'n' : c == '\r' ? 'r' : 't'};
        size_t len = seq;
        bool raw = false;
        if (seq == 1 && (c == '\n' || c == '\r' || c == '\t')) {
            len = 2;
        } else if (seq == 0 || c1 || (seq == 1 && (c < 0x20 || c == 0x7f))) {
            /* A C1 control is escaped byte by byte, like a stray byte. */
            seq = 1;
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            len = 4;
        } else {
            raw = true;
        }
        if (j + len >= size) break;
        memcpy(out + j, raw ? (const char *)p + i : esc, len);
        j += len;
        i += seq;
    }
    out[j] = '\0';
    return j;
}

void cnn_print_line(FILE *f, const char *prefix, const char *message)
{
    /* Four output bytes at most per input byte. */
    size_t cap = 4 * strlen(message) + 1;
    char stack[4 * CNN_ERROR_MAX + 1];
    char *buf = cap <= sizeof stack ? stack : malloc(cap);
    if (!buf) {
        buf = stack;
        cap = sizeof stack;
    }
    cnn_escape_line(buf, cap, message);
    fprintf(f, "%s%s\n", prefix, buf);
    if (buf != stack) free(buf);
}

void cnn_warn(const char *fmt, ...)
{
    char msg[CNN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cnn_logf(CNN_LOG_WARN, "%s", msg);
}

int cnn_status_exit_code(int status)
{
    switch (status) {
    case CNN_OK: return 0;
    case CNN_ERR_USAGE:
    case CNN_ERR_INPUT: return 2;
    case CNN_ERR_INTERRUPTED: return 130;
    default: return 1;
    }
}

/* The table is made by stringizing the constants themselves, so a name can
 * never disagree with its number. */
#define CNN_CL_ERR(name) { name, #name }
static const struct { cl_int code; const char *name; } g_cl_errors[] = {
    CNN_CL_ERR(CL_DEVICE_NOT_FOUND),
    CNN_CL_ERR(CL_DEVICE_NOT_AVAILABLE),
    CNN_CL_ERR(CL_COMPILER_NOT_AVAILABLE),
    CNN_CL_ERR(CL_MEM_OBJECT_ALLOCATION_FAILURE),
    CNN_CL_ERR(CL_OUT_OF_RESOURCES),
    CNN_CL_ERR(CL_OUT_OF_HOST_MEMORY),
    CNN_CL_ERR(CL_PROFILING_INFO_NOT_AVAILABLE),
    CNN_CL_ERR(CL_MEM_COPY_OVERLAP),
    CNN_CL_ERR(CL_IMAGE_FORMAT_MISMATCH),
    CNN_CL_ERR(CL_IMAGE_FORMAT_NOT_SUPPORTED),
    CNN_CL_ERR(CL_BUILD_PROGRAM_FAILURE),
    CNN_CL_ERR(CL_MAP_FAILURE),
    CNN_CL_ERR(CL_MISALIGNED_SUB_BUFFER_OFFSET),
    CNN_CL_ERR(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST),
    CNN_CL_ERR(CL_COMPILE_PROGRAM_FAILURE),
    CNN_CL_ERR(CL_LINKER_NOT_AVAILABLE),
    CNN_CL_ERR(CL_LINK_PROGRAM_FAILURE),
    CNN_CL_ERR(CL_DEVICE_PARTITION_FAILED),
    CNN_CL_ERR(CL_KERNEL_ARG_INFO_NOT_AVAILABLE),
    CNN_CL_ERR(CL_INVALID_VALUE),
    CNN_CL_ERR(CL_INVALID_DEVICE_TYPE),
    CNN_CL_ERR(CL_INVALID_PLATFORM),
    CNN_CL_ERR(CL_INVALID_DEVICE),
    CNN_CL_ERR(CL_INVALID_CONTEXT),
    CNN_CL_ERR(CL_INVALID_QUEUE_PROPERTIES),
    CNN_CL_ERR(CL_INVALID_COMMAND_QUEUE),
    CNN_CL_ERR(CL_INVALID_HOST_PTR),
    CNN_CL_ERR(CL_INVALID_MEM_OBJECT),
    CNN_CL_ERR(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR),
    CNN_CL_ERR(CL_INVALID_IMAGE_SIZE),
    CNN_CL_ERR(CL_INVALID_SAMPLER),
    CNN_CL_ERR(CL_INVALID_BINARY),
    CNN_CL_ERR(CL_INVALID_BUILD_OPTIONS),
    CNN_CL_ERR(CL_INVALID_PROGRAM),
    CNN_CL_ERR(CL_INVALID_PROGRAM_EXECUTABLE),
    CNN_CL_ERR(CL_INVALID_KERNEL_NAME),
    CNN_CL_ERR(CL_INVALID_KERNEL_DEFINITION),
    CNN_CL_ERR(CL_INVALID_KERNEL),
    CNN_CL_ERR(CL_INVALID_ARG_INDEX),
    CNN_CL_ERR(CL_INVALID_ARG_VALUE),
    CNN_CL_ERR(CL_INVALID_ARG_SIZE),
    CNN_CL_ERR(CL_INVALID_KERNEL_ARGS),
    CNN_CL_ERR(CL_INVALID_WORK_DIMENSION),
    CNN_CL_ERR(CL_INVALID_WORK_GROUP_SIZE),
    CNN_CL_ERR(CL_INVALID_WORK_ITEM_SIZE),
    CNN_CL_ERR(CL_INVALID_GLOBAL_OFFSET),
    CNN_CL_ERR(CL_INVALID_EVENT_WAIT_LIST),
    CNN_CL_ERR(CL_INVALID_EVENT),
    CNN_CL_ERR(CL_INVALID_OPERATION),
    CNN_CL_ERR(CL_INVALID_GL_OBJECT),
    CNN_CL_ERR(CL_INVALID_BUFFER_SIZE),
    CNN_CL_ERR(CL_INVALID_MIP_LEVEL),
    CNN_CL_ERR(CL_INVALID_GLOBAL_WORK_SIZE),
    CNN_CL_ERR(CL_INVALID_PROPERTY),
    CNN_CL_ERR(CL_INVALID_IMAGE_DESCRIPTOR),
    CNN_CL_ERR(CL_INVALID_COMPILER_OPTIONS),
    CNN_CL_ERR(CL_INVALID_LINKER_OPTIONS),
    CNN_CL_ERR(CL_INVALID_DEVICE_PARTITION_COUNT),
    CNN_CL_ERR(CL_PLATFORM_NOT_FOUND_KHR),
};
#undef CNN_CL_ERR

const char *cnn_cl_error_name(cl_int err)
{
    static _Thread_local char unknown[48];
    for (size_t i = 0; i < sizeof g_cl_errors / sizeof g_cl_errors[0]; i++)
        if (g_cl_errors[i].code == err) return g_cl_errors[i].name;
    snprintf(unknown, sizeof unknown, "CL_UNKNOWN_ERROR(%d)", (int)err);
    return unknown;
}

#define CNN_BLAST_ERR(name) { CLBlast##name, "CLBlast" #name }
static const struct { int code; const char *name; } g_blast_errors[] = {
    CNN_BLAST_ERR(NotImplemented),
    CNN_BLAST_ERR(InvalidMatrixA),
    CNN_BLAST_ERR(InvalidMatrixB),
    CNN_BLAST_ERR(InvalidMatrixC),
    CNN_BLAST_ERR(InvalidVectorX),
    CNN_BLAST_ERR(InvalidVectorY),
    CNN_BLAST_ERR(InvalidDimension),
    CNN_BLAST_ERR(InvalidLeadDimA),
    CNN_BLAST_ERR(InvalidLeadDimB),
    CNN_BLAST_ERR(InvalidLeadDimC),
    CNN_BLAST_ERR(InvalidIncrementX),
    CNN_BLAST_ERR(InvalidIncrementY),
    CNN_BLAST_ERR(InsufficientMemoryA),
    CNN_BLAST_ERR(InsufficientMemoryB),
    CNN_BLAST_ERR(InsufficientMemoryC),
    CNN_BLAST_ERR(InsufficientMemoryX),
    CNN_BLAST_ERR(InsufficientMemoryY),
    CNN_BLAST_ERR(InsufficientMemoryTemp),
    CNN_BLAST_ERR(InvalidBatchCount),
    CNN_BLAST_ERR(InvalidOverrideKernel),
    CNN_BLAST_ERR(MissingOverrideParameter),
    CNN_BLAST_ERR(InvalidLocalMemUsage),
    CNN_BLAST_ERR(NoHalfPrecision),
    CNN_BLAST_ERR(NoDoublePrecision),
    CNN_BLAST_ERR(InvalidVectorScalar),
    CNN_BLAST_ERR(InsufficientMemoryScalar),
    CNN_BLAST_ERR(DatabaseError),
    CNN_BLAST_ERR(UnknownError),
    CNN_BLAST_ERR(UnexpectedError),
};
#undef CNN_BLAST_ERR

const char *cnn_clblast_error_name(int code)
{
    for (size_t i = 0; i < sizeof g_blast_errors / sizeof g_blast_errors[0]; i++)
        if (g_blast_errors[i].code == code) return g_blast_errors[i].name;
    return cnn_cl_error_name((cl_int)code);
}

_Noreturn void cnn_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "cnnviz-cl: internal error: %s:%d: assertion '%s' failed\n",
            file, line, cond);
    abort();
}
