/* A tiny test harness: CHECK(cond, fmt, ...) records a failure with file:line
 * and goes on; CHECK_OK(status) prints the error message; test_summary()
 * prints "N passed, N failed" and returns the exit code. */
#ifndef CNN_TEST_CHECK_H
#define CNN_TEST_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/error.h"

static int g_checks_passed, g_checks_failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            g_checks_passed++;                                                 \
        } else {                                                               \
            g_checks_failed++;                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

#define CHECK_OK(expr)                                                         \
    do {                                                                       \
        int check__s = (expr);                                                 \
        CHECK(check__s == 0, "%s returned %d: %s", #expr, check__s,            \
              cnn_error_message());                                            \
    } while (0)

static inline int test_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, g_checks_passed, g_checks_failed);
    return g_checks_failed ? 1 : 0;
}

/* malloc that never returns NULL (a test has nothing to do without the
 * memory): stops the test with a message. */
static inline void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Deterministic random numbers (xorshift64*), uniform in [lo, hi). */
static uint64_t g_rng_state = 0x9e3779b97f4a7c15ULL;
static inline void rng_seed(uint64_t s) { g_rng_state = s ? s : 1; }
static inline float rng_uniform(float lo, float hi)
{
    g_rng_state ^= g_rng_state >> 12;
    g_rng_state ^= g_rng_state << 25;
    g_rng_state ^= g_rng_state >> 27;
    uint64_t r = g_rng_state * 0x2545F4914F6CDD1DULL;
    return lo + (hi - lo) * (float)((double)(r >> 40) / (double)(1ULL << 24));
}
static inline void rng_fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform(lo, hi);
}

/* Uniform in [lo, hi) but never within 1e-3 of zero, so a missed term,
 * tap or element shows in the result. */
static inline void fill_nonzero(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = rng_uniform(lo, hi);
        while (fabsf(v) < 1e-3f);
        x[i] = v;
    }
}

/* |a - b| <= atol + rtol * |ref| element-wise; reports the worst element. */
static inline int close_enough(const float *got, const double *ref, size_t n, double atol,
                               double rtol, const char *what)
{
    size_t worst = 0;
    double worst_excess = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double lim = atol + rtol * fabs(ref[i]);
        if (!(err <= lim)) { /* NaN fails too */
            if (!bad || err - lim > worst_excess) {
                worst = i;
                worst_excess = err - lim;
            }
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %d of %zu elements out of tolerance; worst [%zu] got %.9g ref %.9g\n",
                what, bad, n, worst, (double)got[worst], ref[worst]);
    return bad == 0;
}

/* Replaces about one element in `every` of x (at random positions) with
 * NaN, +Inf and -Inf in turn: the values PyTorch propagates. */
static inline void sprinkle_nonfinite(float *x, size_t n, int every)
{
    static const float special[3] = {NAN, INFINITY, -INFINITY};
    int k = 0;
    for (size_t i = (size_t)rng_uniform(0.0f, (float)every); i < n; i += 1 + (size_t)rng_uniform(0.0f, 2.0f * every))
        x[i] = special[k++ % 3];
}

/* close_enough for outputs that may hold NaN and Inf: where ref is NaN, got
 * must be NaN; where ref is infinite, got must be the same infinity; the
 * rest within atol + rtol * |ref|.  Reports the first mismatch. */
static inline int close_enough_nf(const float *got, const double *ref, size_t n, double atol, double rtol,
                                  const char *what)
{
    int bad = 0;
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        int ok = isnan(r) ? isnan(g) : isinf(r) ? g == r : fabs(g - r) <= atol + rtol * fabs(r);
        if (!ok && !bad++) first = i;
    }
    if (bad)
        fprintf(stderr, "  %s: %d of %zu elements differ; first [%zu] got %.9g ref %.9g\n", what, bad, n, first,
                (double)got[first], ref[first]);
    return bad == 0;
}

#endif
