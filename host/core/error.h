/* Status codes and the one place a human-readable error message lives.
 *
 * Every public function of the project returns 0 (CNN_OK) or a negative
 * cnn_status.  The function that detects a failure writes one line into a
 * thread-local buffer with cnn_error_set(); callers up the stack may prefix
 * context with cnn_error_prefix().  The CLI prints the message once, at the
 * top, and maps the status to an exit code with cnn_status_exit_code(). */
#ifndef CNN_CORE_ERROR_H
#define CNN_CORE_ERROR_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <CL/cl.h>
#include <CL/cl_ext.h>

typedef enum cnn_status {
    CNN_OK = 0,
    CNN_ERR_USAGE = -1,  /* bad command line: unknown flag, bad value   -> exit 2 */
    CNN_ERR_INPUT = -2,  /* bad user file: config, weights, image, path -> exit 2 */
    CNN_ERR_IO = -3,     /* the system failed to read or write a file   -> exit 1 */
    CNN_ERR_DEVICE = -4, /* OpenCL or CLBlast call failed               -> exit 1 */
    CNN_ERR_NOMEM = -5,  /* host allocation failed                      -> exit 1 */
    CNN_ERR_NODEV = -6,  /* no OpenCL platform or device at all         -> exit 1 */
    CNN_ERR_INTERRUPTED = -7 /* SIGINT/SIGTERM arrived                  -> 130/143 */
} cnn_status;

#define CNN_ERROR_MAX 1024

/* Formats the message (printf-style) into the thread-local buffer and returns
 * `status`, so that `return cnn_error_set(CNN_ERR_INPUT, "...")` reads well. */
int cnn_error_set(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " (printf-style) to the current message; returns `status`.
 * CNN_ERR_INTERRUPTED keeps its message as it is. */
int cnn_error_prefix(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The current message ("" when none was set). */
const char *cnn_error_message(void);
void cnn_error_clear(void);

/* Copies text into out (NUL-terminated, cut to fit `size`) so that it is
 * safe on one terminal line: a newline, CR and tab become \n, \r, \t; the
 * other control bytes (C0, DEL, and C1 written as UTF-8), and bytes that are
 * not well-formed UTF-8, become \xHH; everything else (valid UTF-8 text,
 * backslashes too) is kept.  Returns the length written. */
size_t cnn_escape_line(char *out, size_t size, const char *text);

/* Prints "<prefix><message>\n" with the message escaped as above, so that a
 * file name with a newline or an escape sequence in it can neither split the
 * line nor drive the terminal.  For the error, skipped and warning lines. */
void cnn_print_line(FILE *f, const char *prefix, const char *message);

/* A warning line, printf-style, through this thread's log sink (core/log.h;
 * by default "cnnviz-cl: warning: <message>" on stderr, escaped). */
void cnn_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 0 for CNN_OK, 2 for usage and input errors, 1 for the rest. */
int cnn_status_exit_code(int status);

/* "CL_OUT_OF_RESOURCES" for -5, ... ; "CL_UNKNOWN_ERROR(-1234)" otherwise
 * (the returned pointer stays valid until the next call on this thread). */
const char *cnn_cl_error_name(cl_int err);

/* Name of a CLBlastStatusCode ("CLBlastInvalidLocalMemUsage", ...). Negative
 * CLBlast codes that equal OpenCL codes are named as OpenCL errors. */
const char *cnn_clblast_error_name(int code);

/* Checked OpenCL call.  `call` is an expression returning cl_int; on failure
 * the message names the call, the error by name and `what` (op and layer),
 * status is set to CNN_ERR_DEVICE and control jumps to `label`:
 *   CNN_CL_TRY(clFinish(q), "conv 'conv1_1'", cleanup);                    */
#define CNN_CL_TRY(call, what, label)                                          \
    do {                                                                       \
        cl_int cnn__e = (call);                                                \
        if (cnn__e != CL_SUCCESS) {                                            \
            status = cnn_error_set(CNN_ERR_DEVICE, "%s failed: %s (%s)",      \
                                   #call, cnn_cl_error_name(cnn__e), (what));  \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* Same, for calls that return their error through an out-parameter:
 *   buf = clCreateBuffer(ctx, flags, n, NULL, &err);
 *   CNN_CL_CHECK_ERR(err, "clCreateBuffer", "tensor 'pool1'", cleanup);      */
#define CNN_CL_CHECK_ERR(err, callname, what, label)                           \
    do {                                                                       \
        if ((err) != CL_SUCCESS) {                                             \
            status = cnn_error_set(CNN_ERR_DEVICE, "%s failed: %s (%s)",      \
                                   (callname), cnn_cl_error_name(err), (what));\
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* Propagate a cnn_status: `CNN_TRY(f(x), cleanup);` */
#define CNN_TRY(expr, label)                                                   \
    do {                                                                       \
        status = (expr);                                                       \
        if (status < 0) goto label;                                            \
    } while (0)

/* Return early on failure, when there is nothing to clean up. */
#define CNN_TRY_RET(expr)                                                      \
    do {                                                                       \
        int cnn__s = (expr);                                                   \
        if (cnn__s < 0) return cnn__s;                                         \
    } while (0)

/* Broken invariant (a programmer error, never a user error): abort with
 * file:line. */
#define CNN_ASSERT(cond)                                                       \
    do {                                                                       \
        if (!(cond)) cnn_assert_fail(#cond, __FILE__, __LINE__);               \
    } while (0)
_Noreturn void cnn_assert_fail(const char *cond, const char *file, int line);

#endif
