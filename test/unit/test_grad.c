/* Backward ops (host/ops/grad.c, cl/grad.cl) against plain C references in
 * double precision.  Each reference is the transpose of the FORWARD op,
 * written from the forward's definition: loop over the outputs and scatter
 * each output gradient into the inputs that produced it (conv: w * dy into
 * every tap; pools: along the forward's window or argmax).  Data are random
 * and never zero; dx is pre-filled with random values and every check is
 * dx_after == dx_before + reference (the ops accumulate), and the floats
 * after dx (a guard of sentinels) must survive.
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *  - conv and linear: each dx element is a float32 sum of K products of
 *    magnitude <= 1 (K = the contributions reaching it: co/groups * taps, or
 *    `out`); as in test_conv.c, atol = max(1e-5, 2e-7 * K), rtol 1e-4,
 *    about 10x the random-walk rounding estimate and far below one missed or
 *    misplaced product (~0.25);
 *  - pools, softmax, act, scale, concat, accum: a few float operations per
 *    element: atol 1e-6, rtol 1e-5 (division in OpenCL C is within 2.5 ulp);
 *  - lrn: pow() on the device (within a few ulp in OpenCL C) and a sum of
 *    up to `size` cross-channel terms: atol 1e-5, rtol 1e-4;
 *  - finite differences: (f(x + h e) - f(x - h e)) / 2h of f = <dy, forward(x)>
 *    with h = 1e-2 against dx[e]; only outputs that change are summed (the
 *    others are bit-identical), so the float32 noise is ~1e-5 / h ~ 1e-3 at
 *    worst: atol 2e-3, rtol 1e-2.  Data for relu and max pool stay away
 *    from the kinks and ties by more than h.
 *
 * `test_grad bench` times conv and linear backward against their forward
 * (not run by ctest). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "ops/blas.h"
#include "ops/grad.h"
#include "ops/ops.h"

#include <string.h>
#include <time.h>

#define GUARD 16
#define SENTINEL 12345.0f
#define ATOL 1e-6
#define RTOL 1e-5
#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

static cnn_cl g_cl;


static float *rand_buf(size_t n, float lo, float hi)
{
    float *x = xmalloc(n * sizeof *x);
    fill_nonzero(x, n, lo, hi);
    return x;
}

/* Device buffer with n floats of data (NULL: NaN) followed by GUARD sentinels. */
static cl_mem upload(const float *data, size_t n)
{
    float *tmp = xmalloc((n + GUARD) * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = data ? data[i] : NAN;
    for (size_t i = 0; i < GUARD; i++) tmp[n + i] = SENTINEL;
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, (n + GUARD) * sizeof *tmp, &b, "test buffer"));
    if (b) CHECK_OK(cnn_cl_write(&g_cl, b, 0, (n + GUARD) * sizeof *tmp, tmp, "test buffer"));
    free(tmp);
    return b;
}

/* n floats (and the guard after them, checked) read back. */
static float *download(cl_mem b, size_t n, const char *what)
{
    float *got = xmalloc((n + GUARD) * sizeof *got);
    for (size_t i = 0; i < n + GUARD; i++) got[i] = NAN;
    CHECK_OK(cnn_cl_read(&g_cl, b, 0, (n + GUARD) * sizeof *got, got, "test output"));
    int guard_ok = 1;
    for (size_t i = 0; i < GUARD; i++) guard_ok &= got[n + i] == SENTINEL;
    CHECK(guard_ok, "%s wrote past the end of dx", what);
    return got;
}

/* dx (device) == before + ref element-wise, within atol + rtol * |want|. */
static void check_accum(cl_mem dx, const float *before, const double *ref, size_t n, double atol, double rtol,
                        const char *what)
{
    float *got = download(dx, n, what);
    double *want = xmalloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) want[i] = (double)before[i] + ref[i];
    CHECK(close_enough_nf(got, want, n, atol, rtol, what), "%s differs from dx_before + reference", what);
    free(want);
    free(got);
}

static void check_unchanged(cl_mem b, const float *data, size_t n, const char *what)
{
    float *got = xmalloc(n * sizeof *got);
    CHECK_OK(cnn_cl_read(&g_cl, b, 0, n * sizeof *got, got, "test input"));
    CHECK(memcmp(got, data, n * sizeof *got) == 0, "%s: the op changed an input", what);
    free(got);
}

static void finish(void)
{
    cl_int err = clFinish(g_cl.queue);
    CHECK(err == CL_SUCCESS, "clFinish: %s", cnn_cl_error_name(err));
}

static void release(cl_mem b)
{
    if (b) clReleaseMemObject(b);
}

static double tol_k(size_t k)
{
    double a = 2e-7 * (double)k;
    return a > 1e-5 ? a : 1e-5;
}

/* ------------------------------------------------------ finite differences --- */

/* forward(ctx, x, y): the op's forward on device buffers. */
typedef int (*fwd_fn)(const void *ctx, cl_mem x, cl_mem y);

/* Compares dx[idx] (the backward's result from dx = 0) with the central
 * difference of f(x) = <dy, forward(x)> for the elements idx[0..nidx). */
static void fd_check(const char *what, fwd_fn fwd, const void *ctx, const float *x, size_t nx, size_t ny,
                     const float *dy, const float *dx, const size_t *idx, int nidx)
{
    float *xp = xmalloc(nx * sizeof *xp);
    cl_mem bx = upload(NULL, nx), by = upload(NULL, ny);
    int bad = 0;
    for (int t = 0; t < nidx; t++) {
        size_t e = idx[t] % nx;
        float *yv[2];
        float xs[2];
        for (int s = 0; s < 2; s++) {
            memcpy(xp, x, nx * sizeof *xp);
            xp[e] = x[e] + (s ? -FD_H : FD_H);
            xs[s] = xp[e];
            CHECK_OK(cnn_cl_write(&g_cl, bx, 0, nx * sizeof *xp, xp, "fd x"));
            CHECK_OK(fwd(ctx, bx, by));
            yv[s] = xmalloc(ny * sizeof *yv[s]);
            CHECK_OK(cnn_cl_read(&g_cl, by, 0, ny * sizeof *yv[s], yv[s], "fd y"));
        }
        double f = 0;
        for (size_t o = 0; o < ny; o++)
            if (yv[0][o] != yv[1][o]) f += (double)dy[o] * ((double)yv[0][o] - (double)yv[1][o]);
        f /= (double)xs[0] - (double)xs[1];
        double err = fabs(f - dx[e]);
        if (!(err <= FD_ATOL + FD_RTOL * fabs(f))) {
            fprintf(stderr, "  %s: finite difference at [%zu] %.7g, backward %.7g\n", what, e, f, (double)dx[e]);
            bad++;
        }
        free(yv[0]);
        free(yv[1]);
    }
    CHECK(bad == 0, "%s: %d of %d finite differences disagree with the backward", what, bad, nidx);
    release(bx), release(by);
    free(xp);
}

/* dx on the host once the queue is done (the caller zeroed dx with
 * cnn_grad_zero and ran the backward into it). */
static float *grad_from_zero(cl_mem dx, size_t nx, const char *what)
{
    finish();
    return download(dx, nx, what);
}

/* ---------------------------------------------------------------- conv --- */

typedef struct conv_case {
    int n, ci, hi, wi, co, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, groups;
    const char *what;
} conv_case;

static cnn_conv_geom conv_geom(const conv_case *c)
{
    cnn_conv_geom g = {.ci = c->ci, .hi = c->hi, .wi = c->wi, .co = c->co, .kh = c->kh, .kw = c->kw,
                       .sh = c->sh, .sw = c->sw, .dh = c->dh, .dw = c->dw, .pt = c->pt, .pb = c->pb,
                       .pl = c->pl, .pr = c->pr, .groups = c->groups};
    g.ho = (c->hi + c->pt + c->pb - c->dh * (c->kh - 1) - 1) / c->sh + 1;
    g.wo = (c->wi + c->pl + c->pr - c->dw * (c->kw - 1) - 1) / c->sw + 1;
    return g;
}

/* The transpose of the forward conv: each output gradient scattered along
 * the forward's taps. */
static void conv_bwd_ref(const cnn_conv_geom *g, int n, const float *dy, const float *w, double *dx)
{
    int cig = g->ci / g->groups, cog = g->co / g->groups;
    memset(dx, 0, (size_t)n * g->ci * g->hi * g->wi * sizeof *dx);
    for (int b = 0; b < n; b++)
        for (int o = 0; o < g->co; o++) {
            int grp = o / cog;
            for (int oy = 0; oy < g->ho; oy++)
                for (int ox = 0; ox < g->wo; ox++) {
                    double d = dy[(((size_t)b * g->co + o) * g->ho + oy) * g->wo + ox];
                    for (int c = 0; c < cig; c++) {
                        int cin = grp * cig + c;
                        for (int i = 0; i < g->kh; i++) {
                            int iy = oy * g->sh - g->pt + i * g->dh;
                            if (iy < 0 || iy >= g->hi) continue;
                            for (int j = 0; j < g->kw; j++) {
                                int ix = ox * g->sw - g->pl + j * g->dw;
                                if (ix < 0 || ix >= g->wi) continue;
                                dx[(((size_t)b * g->ci + cin) * g->hi + iy) * g->wi + ix] +=
                                    d * (double)w[(((size_t)o * cig + c) * g->kh + i) * g->kw + j];
                            }
                        }
                    }
                }
        }
}

typedef struct conv_fwd_ctx {
    const cnn_conv_geom *g;
    int n;
    cl_mem w, scratch;
} conv_fwd_ctx;

static int conv_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const conv_fwd_ctx *c = ctx;
    return cnn_op_conv2d(&g_cl, c->g, c->n, x, c->w, NULL, CNN_ACT_NONE, 0, y, c->scratch, "fd conv");
}

static void run_conv_case(const conv_case *c, int fd)
{
    cnn_conv_geom g = conv_geom(c);
    char what[256];
    snprintf(what, sizeof what, "grad conv %s: n%d ci%d %dx%d co%d k%dx%d s%d,%d d%d,%d pad t%d b%d l%d r%d g%d -> %dx%d",
             c->what, c->n, c->ci, c->hi, c->wi, c->co, c->kh, c->kw, c->sh, c->sw, c->dh, c->dw, c->pt, c->pb,
             c->pl, c->pr, c->groups, g.ho, g.wo);
    if (g.ho < 1 || g.wo < 1 || c->ci % c->groups || c->co % c->groups) {
        CHECK(0, "bad test case %s", what);
        return;
    }
    size_t nx = (size_t)c->n * c->ci * c->hi * c->wi;
    size_t nw = (size_t)c->co * (c->ci / c->groups) * c->kh * c->kw;
    size_t ny = (size_t)c->n * c->co * g.ho * g.wo;
    float *w = rand_buf(nw, -1, 1), *dy = rand_buf(ny, -1, 1), *before = rand_buf(nx, -1, 1);
    double *ref = xmalloc(nx * sizeof *ref);
    conv_bwd_ref(&g, c->n, dy, w, ref);
    size_t scratch_n = cnn_grad_conv2d_scratch(&g);
    cl_mem bw = upload(w, nw), bdy = upload(dy, ny), bdx = upload(before, nx);
    cl_mem bs = upload(NULL, scratch_n ? scratch_n : 1);
    CHECK_OK(cnn_grad_conv2d(&g_cl, &g, c->n, bdy, bw, bdx, bs, "test_grad_conv"));
    finish();
    /* contributions per dx element: co/groups outputs times the taps that
     * land on it (at most ceil(kh/sh) * ceil(kw/sw)) */
    size_t k = (size_t)(c->co / c->groups) * ((c->kh + c->sh - 1) / c->sh) * ((c->kw + c->sw - 1) / c->sw);
    check_accum(bdx, before, ref, nx, tol_k(k), 1e-4, what);
    check_unchanged(bdy, dy, ny, what);
    check_unchanged(bw, w, nw, what);

    if (fd) {
        /* finite differences through the forward conv, from dx = 0 */
        CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, nx, "fd conv"));
        CHECK_OK(cnn_grad_conv2d(&g_cl, &g, c->n, bdy, bw, bdx, bs, "fd conv"));
        float *dx = grad_from_zero(bdx, nx, what);
        float *x = rand_buf(nx, -1, 1);
        size_t fscratch = cnn_op_conv2d_scratch(&g);
        conv_fwd_ctx ctx = {&g, c->n, bw, upload(NULL, fscratch ? fscratch : 1)};
        size_t idx[] = {0, nx - 1, nx / 2, nx / 3 + 1, 7 * nx / 9};
        char fwhat[300];
        snprintf(fwhat, sizeof fwhat, "finite differences, %s", what);
        fd_check(fwhat, conv_fwd, &ctx, x, nx, ny, dy, dx, idx, 5);
        release(ctx.scratch);
        free(x), free(dx);
    }
    release(bw), release(bdy), release(bdx), release(bs);
    free(w), free(dy), free(before), free(ref);
}

static void test_conv(void)
{
    static const conv_case cases[] = {
        /* n  ci  hi  wi  co kh kw sh sw dh dw pt pb pl pr  g */
        {1, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, "1x1 (GEMM into dx)"},
        {3, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, "1x1 batch"},
        {3, 12, 7, 9, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, "1x1 groups2"},
        {3, 5, 7, 9, 7, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, "1x1 s2 (col2im)"},
        {1, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, "1x1 padded"},
        {1, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "3x3 pad1"},
        {3, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "3x3 pad1 batch"},
        {3, 5, 7, 9, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, "3x3 valid"},
        {1, 5, 9, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, "3x3 s2"},
        {3, 5, 10, 11, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1, "3x3 s2 unreached last row/col"},
        {3, 5, 7, 9, 3, 5, 5, 2, 2, 1, 1, 2, 1, 1, 2, 1, "5x5 s2 asym"},
        {1, 3, 9, 7, 5, 5, 5, 1, 1, 1, 1, 2, 0, 0, 1, 1, "5x5 asym"},
        {1, 3, 7, 9, 5, 1, 3, 1, 2, 1, 1, 0, 0, 1, 1, 1, "1x3 sw2"},
        {3, 5, 9, 7, 4, 3, 1, 2, 1, 1, 1, 1, 0, 0, 0, 1, "3x1 sh2"},
        {1, 3, 9, 7, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, "dil2"},
        {3, 3, 9, 11, 4, 3, 3, 2, 1, 2, 1, 3, 0, 0, 2, 1, "dil2,1 asym"},
        {3, 4, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, "groups2 (direct)"},
        {1, 4, 7, 9, 6, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 2, "groups2 s2 (direct)"},
        {3, 10, 7, 9, 6, 3, 3, 2, 2, 1, 1, 1, 0, 0, 1, 2, "groups2 (GEMM)"},
        {1, 12, 7, 9, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 3, "groups3 dil2 (GEMM)"},
        {3, 8, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, "depthwise"},
        {1, 8, 9, 7, 8, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 8, "depthwise 5x5 s2"},
        {3, 8, 7, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, "depthwise x2"},
        {1, 8, 9, 11, 16, 3, 3, 2, 1, 2, 2, 2, 1, 1, 2, 8, "depthwise x2 dil2 asym"},
        {1, 3, 23, 21, 16, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, "7x7 s2 pad3 rgb"},
        {3, 3, 23, 21, 16, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, "7x7 s2 pad3 rgb batch"},
        {1, 64, 11, 13, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "wide (K 630)"},
        {3, 16, 13, 11, 33, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 1, "5x5 s2 co33"},
    };
    rng_seed(1234);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(&cases[i], 0);
    /* finite differences: the GEMM + col2im path, the pointwise GEMM, the
     * direct path */
    static const conv_case fd_cases[] = {
        {2, 3, 6, 7, 4, 3, 3, 2, 1, 1, 2, 1, 0, 2, 1, 1, "fd gemm"},
        {1, 4, 5, 6, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, "fd pointwise"},
        {2, 4, 6, 5, 8, 3, 3, 1, 2, 2, 1, 2, 1, 0, 1, 4, "fd direct"},
    };
    for (size_t i = 0; i < sizeof fd_cases / sizeof fd_cases[0]; i++) run_conv_case(&fd_cases[i], 1);
}

/* -------------------------------------------------------------- linear --- */

typedef struct lin_ctx {
    int n, in, out;
    cl_mem w;
} lin_ctx;

static int lin_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const lin_ctx *c = ctx;
    return cnn_op_linear(&g_cl, c->n, c->in, c->out, x, c->w, NULL, CNN_ACT_NONE, 0, y, "fd linear");
}

static void run_linear_case(int n, int in, int out, int fd)
{
    char what[128];
    snprintf(what, sizeof what, "grad linear n%d in%d out%d", n, in, out);
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    float *w = rand_buf(nw, -1, 1), *dy = rand_buf(ny, -1, 1), *before = rand_buf(nx, -1, 1);
    double *ref = xmalloc(nx * sizeof *ref);
    memset(ref, 0, nx * sizeof *ref);
    for (int b = 0; b < n; b++)          /* forward: y[b,o] = sum_i x[b,i] w[o,i] */
        for (int o = 0; o < out; o++) { /* so dy[b,o] goes to x[b,i] times w[o,i] */
            double d = dy[(size_t)b * out + o];
            for (int i = 0; i < in; i++) ref[(size_t)b * in + i] += d * (double)w[(size_t)o * in + i];
        }
    cl_mem bw = upload(w, nw), bdy = upload(dy, ny), bdx = upload(before, nx);
    CHECK_OK(cnn_grad_linear(&g_cl, n, in, out, bdy, bw, bdx, "test_grad_fc"));
    finish();
    check_accum(bdx, before, ref, nx, tol_k((size_t)out), 1e-4, what);
    check_unchanged(bdy, dy, ny, what);
    if (fd) {
        CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, nx, "fd linear"));
        CHECK_OK(cnn_grad_linear(&g_cl, n, in, out, bdy, bw, bdx, "fd linear"));
        float *dx = grad_from_zero(bdx, nx, what);
        float *x = rand_buf(nx, -1, 1);
        lin_ctx ctx = {n, in, out, bw};
        size_t idx[] = {0, nx - 1, nx / 2, nx / 3};
        fd_check(what, lin_fwd, &ctx, x, nx, ny, dy, dx, idx, 4);
        free(x), free(dx);
    }
    release(bw), release(bdy), release(bdx);
    free(w), free(dy), free(before), free(ref);
}

static void test_linear(void)
{
    rng_seed(777);
    run_linear_case(1, 3000, 500, 0);
    run_linear_case(4, 3000, 500, 0);
    run_linear_case(1, 1000, 37, 0);
    run_linear_case(1, 577, 130, 0); /* a partial column block */
    run_linear_case(2, 577, 130, 0);
    run_linear_case(1, 30, 3, 0);    /* fewer columns than a block */
    run_linear_case(1, 1, 7, 0);
    run_linear_case(3, 9, 1, 0);
    run_linear_case(5, 577, 130, 0); /* GEMM path (beta 1) */
    run_linear_case(8, 3000, 500, 0);
    run_linear_case(1, 40, 9, 1);
    run_linear_case(6, 40, 9, 1);
}

/* ---------------------------------------------------------------- pools --- */

/* Output size like PyTorch with asymmetric padding (test_pool.c). */
static int pool_out(int in, int k, int s, int d, int p0, int p1, int ceil_mode)
{
    int span = in + p0 + p1 - d * (k - 1) - 1;
    if (span < 0) return 0;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    return o;
}

/* PyTorch's CPU max pool scan: index starts at the first in-range tap,
 * replaced when `val > maxval || isnan(val)`.  The gradient of the output
 * goes to that index.  Returns 0 for a window without input taps. */
static int maxpool_bwd_ref(const cnn_pool_geom *g, int n, const float *x, const float *dy, double *dx)
{
    memset(dx, 0, (size_t)n * g->c * g->hi * g->wi * sizeof *dx);
    for (int nc = 0; nc < n * g->c; nc++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                double m = -INFINITY;
                long arg = -1;
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++) {
                        int yy = oy * g->sh - g->pt + i * g->dh, xx = ox * g->sw - g->pl + j * g->dw;
                        if (yy < 0 || yy >= g->hi || xx < 0 || xx >= g->wi) continue;
                        long p = ((long)nc * g->hi + yy) * g->wi + xx;
                        if (arg < 0) arg = p;
                        double v = x[p];
                        if (v > m || isnan(v)) {
                            m = v;
                            arg = p;
                        }
                    }
                if (arg < 0) return 0;
                dx[arg] += dy[((size_t)nc * g->ho + oy) * g->wo + ox];
            }
    return 1;
}

static int taps_in(int start, int k, int d, int lo, int hi)
{
    int n = 0;
    for (int i = 0; i < k; i++) n += start + i * d >= lo && start + i * d < hi;
    return n;
}

/* dy / divisor scattered over the window; the divisor as test_pool.c's
 * reference forward computes it (PyTorch's formula at dilation 1). */
static void avgpool_bwd_ref(const cnn_pool_geom *g, int n, const float *dy, double *dx)
{
    memset(dx, 0, (size_t)n * g->c * g->hi * g->wi * sizeof *dx);
    for (int nc = 0; nc < n * g->c; nc++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                int hs = oy * g->sh - g->pt, ws = ox * g->sw - g->pl;
                double div;
                if (g->dh == 1 && g->dw == 1) {
                    int he = hs + g->kh < g->hi + g->pb ? hs + g->kh : g->hi + g->pb;
                    int we = ws + g->kw < g->wi + g->pr ? ws + g->kw : g->wi + g->pr;
                    int pool_size = (he - hs) * (we - ws);
                    int hs0 = hs > 0 ? hs : 0, ws0 = ws > 0 ? ws : 0;
                    int he0 = he < g->hi ? he : g->hi, we0 = we < g->wi ? we : g->wi;
                    if (hs0 >= he0 || ws0 >= we0) continue;
                    div = g->count_include_pad ? pool_size : (he0 - hs0) * (we0 - ws0);
                } else {
                    int ny = taps_in(hs, g->kh, g->dh, 0, g->hi), nx = taps_in(ws, g->kw, g->dw, 0, g->wi);
                    if (!ny || !nx) continue;
                    if (g->count_include_pad) {
                        ny = taps_in(hs, g->kh, g->dh, -g->pt, g->hi + g->pb);
                        nx = taps_in(ws, g->kw, g->dw, -g->pl, g->wi + g->pr);
                    }
                    div = ny * nx;
                }
                double d = dy[((size_t)nc * g->ho + oy) * g->wo + ox] / div;
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++) {
                        int yy = hs + i * g->dh, xx = ws + j * g->dw;
                        if (yy >= 0 && yy < g->hi && xx >= 0 && xx < g->wi)
                            dx[((size_t)nc * g->hi + yy) * g->wi + xx] += d;
                    }
            }
}

typedef struct pool_ctx {
    const cnn_pool_geom *g;
    int n, avg;
} pool_ctx;

static int pool_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const pool_ctx *c = ctx;
    return c->avg ? cnn_op_avgpool(&g_cl, c->g, c->n, x, y, "fd avgpool")
                  : cnn_op_maxpool(&g_cl, c->g, c->n, x, y, "fd maxpool");
}

/* Max pool backward on x, adding to a dx that is not zero; returns 0 when
 * the geometry has a window without input taps. */
static int run_maxpool(const cnn_pool_geom *g, int n, const float *x, const char *what)
{
    size_t nx = (size_t)n * g->c * g->hi * g->wi, ny = (size_t)n * g->c * g->ho * g->wo;
    float *dy = rand_buf(ny, -1, 1), *before = rand_buf(nx, -1, 1);
    double *ref = xmalloc(nx * sizeof *ref);
    int ok = maxpool_bwd_ref(g, n, x, dy, ref);
    if (ok) {
        cl_mem bx = upload(x, nx), bdy = upload(dy, ny), bdx = upload(before, nx);
        CHECK_OK(cnn_grad_maxpool(&g_cl, g, n, bx, bdy, bdx, "test_grad_maxpool"));
        finish();
        check_accum(bdx, before, ref, nx, ATOL, RTOL, what);
        release(bx), release(bdy), release(bdx);
    }
    free(dy), free(before), free(ref);
    return ok;
}

static void run_avgpool(const cnn_pool_geom *g, int n, const char *what)
{
    size_t nx = (size_t)n * g->c * g->hi * g->wi, ny = (size_t)n * g->c * g->ho * g->wo;
    float *dy = rand_buf(ny, -1, 1), *before = rand_buf(nx, -1, 1);
    double *ref = xmalloc(nx * sizeof *ref);
    avgpool_bwd_ref(g, n, dy, ref);
    cl_mem bdy = upload(dy, ny), bdx = upload(before, nx);
    CHECK_OK(cnn_grad_avgpool(&g_cl, g, n, bdy, bdx, "test_grad_avgpool"));
    finish();
    check_accum(bdx, before, ref, nx, ATOL, RTOL, what);
    release(bdy), release(bdx);
    free(dy), free(before), free(ref);
}

/* Distinct values at least 0.05 apart (shuffled), so no two taps tie and a
 * step of FD_H changes no argmax. */
static float *distinct_values(size_t n)
{
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = -0.5f * (float)n * 0.05f + 0.05f * (float)i + 0.025f;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_uniform(0, 1) * (float)(i + 1)) % (i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    return x;
}

static cnn_pool_geom pool_geom(int c, int hi, int wi, int kh, int kw, int sh, int sw, int dh, int dw, int pt,
                               int pb, int pl, int pr, int ceil_mode, int cip)
{
    cnn_pool_geom g = {.c = c, .hi = hi, .wi = wi, .kh = kh, .kw = kw, .sh = sh, .sw = sw, .dh = dh, .dw = dw,
                       .pt = pt, .pl = pl, .pb = pb, .pr = pr, .count_include_pad = cip};
    g.ho = pool_out(hi, kh, sh, dh, pt, pb, ceil_mode);
    g.wo = pool_out(wi, kw, sw, dw, pl, pr, ceil_mode);
    return g;
}

static void test_pools(void)
{
    enum { N = 2, C = 3, H = 7, W = 9 };
    size_t nx = (size_t)N * C * H * W;
    rng_seed(7);
    float *x = rand_buf(nx, -2, 2);
    char what[200];
    /* named cases */
    struct {
        int kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, ceil_mode;
        const char *what;
    } named[] = {
        {2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, "2x2 s2"},
        {3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, "3x3 s2 pad1"},
        {3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1, "3x3 s2 ceil overhang"},
        {2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, "2x2 s2 ceil overhang"},
        {3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, "3x3 s2 pad1 ceil"},
        {3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 0, "3x3 dil2 pad2"},
        {2, 3, 2, 1, 2, 1, 1, 0, 0, 1, 1, "2x3 s2,1 dil2,1 asym ceil"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        cnn_pool_geom g = pool_geom(C, H, W, named[i].kh, named[i].kw, named[i].sh, named[i].sw, named[i].dh,
                                    named[i].dw, named[i].pt, named[i].pb, named[i].pl, named[i].pr,
                                    named[i].ceil_mode, 0);
        snprintf(what, sizeof what, "grad maxpool %s -> %dx%d", named[i].what, g.ho, g.wo);
        CHECK(run_maxpool(&g, N, x, what), "%s: bad test geometry", what);
        for (int cip = 0; cip < 2; cip++) {
            g.count_include_pad = cip;
            snprintf(what, sizeof what, "grad avgpool %s count_include_pad %d -> %dx%d", named[i].what, cip,
                     g.ho, g.wo);
            run_avgpool(&g, N, what);
        }
    }
    /* a grid of geometries as PyTorch allows them */
    static const int strides[][2] = {{1, 1}, {2, 2}, {3, 3}, {2, 1}};
    static const int dils[][2] = {{1, 1}, {2, 2}, {1, 2}};
    int runs = 0;
    for (int kh = 1; kh <= 3; kh++)
        for (int kw = 2; kw <= 3; kw++)
            for (int si = 0; si < 4; si++)
                for (int di = 0; di < 3; di++)
                    for (int pads = 0; pads < 16; pads += 3) /* 0, 3, 6, 9, 12, 15 */
                        for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
                            int pt = pads & 1, pb = pads >> 1 & 1, pl = pads >> 2 & 1, pr = pads >> 3 & 1;
                            int eh = dils[di][0] * (kh - 1) + 1, ew = dils[di][1] * (kw - 1) + 1;
                            if (2 * pt > eh || 2 * pb > eh || 2 * pl > ew || 2 * pr > ew) continue;
                            cnn_pool_geom g = pool_geom(C, H, W, kh, kw, strides[si][0], strides[si][1],
                                                        dils[di][0], dils[di][1], pt, pb, pl, pr, ceil_mode, 0);
                            snprintf(what, sizeof what, "k%dx%d s%dx%d d%dx%d pad t%d b%d l%d r%d ceil %d -> %dx%d",
                                     kh, kw, g.sh, g.sw, g.dh, g.dw, pt, pb, pl, pr, ceil_mode, g.ho, g.wo);
                            char w2[260];
                            snprintf(w2, sizeof w2, "grad maxpool %s", what);
                            runs += run_maxpool(&g, 1, x, w2);
                            for (int cip = 0; cip < 2; cip++) {
                                g.count_include_pad = cip;
                                snprintf(w2, sizeof w2, "grad avgpool %s cip %d", what, cip);
                                run_avgpool(&g, 1, w2);
                                runs++;
                            }
                        }
    printf("pool backward geometries: %d runs\n", runs);
    free(x);

    /* finite differences (distinct values: no tie within FD_H) */
    {
        cnn_pool_geom g = pool_geom(C, H, W, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1);
        size_t ny = (size_t)N * C * g.ho * g.wo;
        float *xd = distinct_values(nx), *dy = rand_buf(ny, -1, 1);
        cl_mem bx = upload(xd, nx), bdy = upload(dy, ny), bdx = upload(NULL, nx);
        size_t idx[] = {0, 10, 77, 200, 301, nx - 1, nx / 2, 123};
        for (int avg = 0; avg < 2; avg++) {
            CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, nx, "fd pool"));
            if (avg) {
                CHECK_OK(cnn_grad_avgpool(&g_cl, &g, N, bdy, bdx, "fd avgpool"));
            } else {
                CHECK_OK(cnn_grad_maxpool(&g_cl, &g, N, bx, bdy, bdx, "fd maxpool"));
            }
            float *dx = grad_from_zero(bdx, nx, "fd pool");
            pool_ctx ctx = {&g, N, avg};
            fd_check(avg ? "finite differences, avgpool 3x3 s2 pad1 ceil cip"
                         : "finite differences, maxpool 3x3 s2 pad1 ceil",
                     pool_fwd, &ctx, xd, nx, ny, dy, dx, idx, 8);
            free(dx);
        }
        release(bx), release(bdy), release(bdx);
        free(xd), free(dy);
    }
}

/* Ties everywhere: the first maximum in row-major window order wins.  Then
 * NaN (the last NaN tap wins, as PyTorch's scan ends there) and a window
 * of -inf only (its first tap). */
static void test_maxpool_ties(void)
{
    enum { N = 2, C = 2, H = 8, W = 9 };
    size_t nx = (size_t)N * C * H * W;
    static const float levels[] = {-1.5f, -0.5f, 0.5f, 1.5f};
    float *x = xmalloc(nx * sizeof *x);
    rng_seed(31);
    for (size_t i = 0; i < nx; i++) x[i] = levels[(int)rng_uniform(0, 4) % 4];
    for (size_t i = 0; i < 12; i++) x[i] = 1.5f; /* a run of equal maxima */
    static const int geo[][6] = {
        /* kh kw sh sw pad ceil */
        {2, 2, 2, 2, 0, 0}, {3, 3, 1, 1, 1, 0}, {3, 3, 2, 2, 1, 0}, {3, 3, 2, 2, 0, 1}, {2, 3, 1, 2, 1, 1},
    };
    char what[160];
    for (size_t i = 0; i < sizeof geo / sizeof geo[0]; i++) {
        int p = geo[i][4];
        for (int d = 1; d <= 2; d++) {
            if (2 * p > d * (geo[i][0] - 1) + 1 || 2 * p > d * (geo[i][1] - 1) + 1) continue;
            cnn_pool_geom g =
                pool_geom(C, H, W, geo[i][0], geo[i][1], geo[i][2], geo[i][3], d, d, p, p, p, p, geo[i][5], 0);
            snprintf(what, sizeof what, "grad maxpool ties k%dx%d s%dx%d d%d pad%d ceil %d", g.kh, g.kw, g.sh,
                     g.sw, d, p, geo[i][5]);
            CHECK(run_maxpool(&g, N, x, what), "%s: bad test geometry", what);
        }
    }
    /* NaN and -inf */
    float *y2 = xmalloc(nx * sizeof *y2);
    memcpy(y2, x, nx * sizeof *y2);
    y2[0] = NAN;                                 /* window (0,0) of 2x2 s2: two NaNs */
    y2[W + 1] = NAN;
    y2[2 * W + 4] = NAN;                         /* one NaN, in several 3x3 windows */
    y2[4 * W + 6] = y2[4 * W + 7] = -INFINITY;   /* a 2x2 window of -inf only */
    y2[5 * W + 6] = y2[5 * W + 7] = -INFINITY;
    for (int k = 0; k < 2; k++) {
        cnn_pool_geom g = k ? pool_geom(C, H, W, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
                            : pool_geom(C, H, W, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0);
        snprintf(what, sizeof what, "grad maxpool NaN and -inf k%d", g.kh);
        CHECK(run_maxpool(&g, N, y2, what), "%s: bad test geometry", what);
    }
    free(y2);
    free(x);
}

static void run_adaptive(int hi, int wi, int ho, int wo)
{
    int n = 2, c = 3;
    size_t nx = (size_t)n * c * hi * wi, ny = (size_t)n * c * ho * wo;
    float *dy = rand_buf(ny, -1, 1), *before = rand_buf(nx, -1, 1);
    double *ref = xmalloc(nx * sizeof *ref);
    memset(ref, 0, nx * sizeof *ref);
    for (int nc = 0; nc < n * c; nc++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                int ys = (int)floor((double)oy * hi / ho), ye = (int)ceil((double)(oy + 1) * hi / ho);
                int xs = (int)floor((double)ox * wi / wo), xe = (int)ceil((double)(ox + 1) * wi / wo);
                double d = dy[((size_t)nc * ho + oy) * wo + ox] / ((ye - ys) * (xe - xs));
                for (int yy = ys; yy < ye; yy++)
                    for (int xx = xs; xx < xe; xx++) ref[((size_t)nc * hi + yy) * wi + xx] += d;
            }
    cl_mem bdy = upload(dy, ny), bdx = upload(before, nx);
    CHECK_OK(cnn_grad_adaptive_avgpool(&g_cl, n, c, hi, wi, ho, wo, bdy, bdx, "test_grad_adaptive"));
    finish();
    char what[96];
    snprintf(what, sizeof what, "grad adaptive avgpool %dx%d -> %dx%d", hi, wi, ho, wo);
    check_accum(bdx, before, ref, nx, ATOL, RTOL, what);
    release(bdy), release(bdx);
    free(dy), free(before), free(ref);
}

typedef struct adaptive_ctx {
    int n, c, hi, wi, ho, wo;
} adaptive_ctx;

static int adaptive_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const adaptive_ctx *a = ctx;
    return cnn_op_adaptive_avgpool(&g_cl, a->n, a->c, a->hi, a->wi, a->ho, a->wo, x, y, "fd adaptive");
}

static void test_adaptive(void)
{
    rng_seed(11);
    run_adaptive(7, 7, 3, 3);
    run_adaptive(5, 5, 2, 2);
    run_adaptive(7, 7, 1, 1);   /* global */
    run_adaptive(13, 9, 1, 1);
    run_adaptive(13, 13, 6, 6);
    run_adaptive(7, 9, 4, 5);
    run_adaptive(5, 4, 7, 9);   /* upsampling: overlapping windows */
    run_adaptive(7, 7, 7, 7);   /* identity */
    adaptive_ctx a = {2, 3, 7, 6, 3, 4};
    size_t nx = 2 * 3 * 7 * 6, ny = 2 * 3 * 3 * 4;
    float *x = rand_buf(nx, -1, 1), *dy = rand_buf(ny, -1, 1);
    cl_mem bdy = upload(dy, ny), bdx = upload(NULL, nx);
    CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, nx, "fd adaptive"));
    CHECK_OK(cnn_grad_adaptive_avgpool(&g_cl, a.n, a.c, a.hi, a.wi, a.ho, a.wo, bdy, bdx, "fd adaptive"));
    float *dx = grad_from_zero(bdx, nx, "fd adaptive");
    size_t idx[] = {0, 5, 41, 100, nx - 1, 222};
    fd_check("finite differences, adaptive avgpool 7x6 -> 3x4", adaptive_fwd, &a, x, nx, ny, dy, dx, idx, 6);
    release(bdy), release(bdx);
    free(x), free(dy), free(dx);
}

/* -------------------------------------------------------------- softmax --- */

typedef struct softmax_ctx {
    int n, c, plane;
} softmax_ctx;

static int softmax_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const softmax_ctx *s = ctx;
    return cnn_op_softmax(&g_cl, s->n, s->c, s->plane, x, y, "fd softmax");
}

static void run_softmax(int n, int c, int plane, int fd)
{
    size_t total = (size_t)n * c * plane;
    float *x = rand_buf(total, -4, 4), *dy = rand_buf(total, -1, 1), *before = rand_buf(total, -1, 1);
    double *ref = xmalloc(total * sizeof *ref);
    cl_mem bx = upload(x, total), by = upload(NULL, total), bdy = upload(dy, total), bdx = upload(before, total);
    CHECK_OK(cnn_op_softmax(&g_cl, n, c, plane, bx, by, "test_grad_softmax"));
    finish();
    float *y = download(by, total, "softmax y");
    /* y_c = e_c / sum e: dy_c' y_c' (delta_cc' - y_c) summed over c' */
    for (int b = 0; b < n; b++)
        for (int p = 0; p < plane; p++) {
            double s = 0;
            for (int i = 0; i < c; i++) {
                size_t j = ((size_t)b * c + i) * plane + p;
                s += (double)y[j] * dy[j];
            }
            for (int i = 0; i < c; i++) {
                size_t j = ((size_t)b * c + i) * plane + p;
                ref[j] = (double)y[j] * ((double)dy[j] - s);
            }
        }
    CHECK_OK(cnn_grad_softmax(&g_cl, n, c, plane, by, bdy, bdx, "test_grad_softmax"));
    finish();
    char what[96];
    snprintf(what, sizeof what, "grad softmax n%d c%d plane %d", n, c, plane);
    check_accum(bdx, before, ref, total, ATOL, RTOL, what);
    if (fd) {
        CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, total, "fd softmax"));
        CHECK_OK(cnn_grad_softmax(&g_cl, n, c, plane, by, bdy, bdx, "fd softmax"));
        float *dx = grad_from_zero(bdx, total, what);
        softmax_ctx ctx = {n, c, plane};
        size_t idx[] = {0, 3, total / 2, total - 1, 17};
        fd_check("finite differences, softmax", softmax_fwd, &ctx, x, total, total, dy, dx, idx, 5);
        free(dx);
    }
    release(bx), release(by), release(bdy), release(bdx);
    free(x), free(y), free(dy), free(before), free(ref);
}

/* ------------------------------------------------------------------ lrn --- */

typedef struct lrn_ctx {
    int n, c, plane, size;
    float alpha, beta, k;
} lrn_ctx;

static int lrn_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const lrn_ctx *l = ctx;
    return cnn_op_lrn(&g_cl, l->n, l->c, l->plane, l->size, l->alpha, l->beta, l->k, x, y, "fd lrn");
}

/* Reference: the forward's definition differentiated in double; alpha is
 * large enough here (0.5) that the cross-channel term matters. */
static void run_lrn(int n, int c, int plane, int size, float alpha, float beta, float k, int fd)
{
    size_t total = (size_t)n * c * plane;
    float *x = rand_buf(total, -2, 2), *dy = rand_buf(total, -1, 1), *before = rand_buf(total, -1, 1);
    double *ref = xmalloc(total * sizeof *ref), *d = xmalloc(total * sizeof *d);
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < plane; p++) {
                double s = 0;
                for (int i = ch - size / 2; i <= ch + (size - 1) / 2; i++)
                    if (i >= 0 && i < c) {
                        double v = x[((size_t)b * c + i) * plane + p];
                        s += v * v;
                    }
                d[((size_t)b * c + ch) * plane + p] = k + alpha / size * s;
            }
    /* y_i = x_i d_i^-beta: dy_i/dx_c = [i == c] d_i^-beta
     * - beta x_i d_i^(-beta-1) * 2 alpha / size * x_c  for c in W(i) */
    for (size_t j = 0; j < total; j++) ref[j] = 0;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < c; i++)
            for (int p = 0; p < plane; p++) {
                size_t ji = ((size_t)b * c + i) * plane + p;
                ref[ji] += dy[ji] * pow(d[ji], -beta);
                for (int ch = i - size / 2; ch <= i + (size - 1) / 2; ch++) {
                    if (ch < 0 || ch >= c) continue;
                    size_t jc = ((size_t)b * c + ch) * plane + p;
                    ref[jc] -= dy[ji] * beta * x[ji] * pow(d[ji], -beta - 1) * 2.0 * alpha / size * x[jc];
                }
            }
    cl_mem bx = upload(x, total), bdy = upload(dy, total), bdx = upload(before, total);
    CHECK_OK(cnn_grad_lrn(&g_cl, n, c, plane, size, alpha, beta, k, bx, bdy, bdx, "test_grad_lrn"));
    finish();
    char what[96];
    snprintf(what, sizeof what, "grad lrn n%d c%d plane %d size %d", n, c, plane, size);
    check_accum(bdx, before, ref, total, 1e-5, 1e-4, what);
    if (fd) {
        CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, total, "fd lrn"));
        CHECK_OK(cnn_grad_lrn(&g_cl, n, c, plane, size, alpha, beta, k, bx, bdy, bdx, "fd lrn"));
        float *dx = grad_from_zero(bdx, total, what);
        lrn_ctx ctx = {n, c, plane, size, alpha, beta, k};
        size_t idx[] = {0, 3, total / 2, total - 1, 17};
        fd_check("finite differences, lrn", lrn_fwd, &ctx, x, total, total, dy, dx, idx, 5);
        free(dx);
    }
    release(bx), release(bdy), release(bdx);
    free(x), free(dy), free(before), free(ref), free(d);
}

/* --------------------------------------------------------- activations --- */

static const char *act_name(cnn_act a)
{
    static const char *const names[] = {"none", "relu",      "relu6", "leaky_relu", "sigmoid",
                                        "tanh", "hardswish", "silu",  "gelu",       "gelu_tanh"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

/* PyTorch's forward, NaN and Inf included (test_conv.c's act_ref). */
static double relu6_fwd_ref(double x) { return x <= 0 ? 0.0 : x >= 6 ? 6.0 : x; }

static double act_fwd_ref(cnn_act a, double x, double slope)
{
    switch (a) {
    case CNN_ACT_RELU: return x <= 0 ? 0.0 : x;
    case CNN_ACT_RELU6: return relu6_fwd_ref(x);
    case CNN_ACT_LEAKY_RELU: return x >= 0 ? x : x * slope;
    case CNN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case CNN_ACT_TANH: return tanh(x);
    case CNN_ACT_HARDSWISH: return x * relu6_fwd_ref(x + 3.0) / 6.0;
    case CNN_ACT_SILU: return x / (1.0 + exp(-x));
    case CNN_ACT_GELU: return x * 0.5 * (1.0 + erf(x * sqrt(0.5)));
    case CNN_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    case CNN_ACT_NONE:
    default: return x;
    }
}

/* grad.h's table (PyTorch autograd at the kinks, and at NaN: relu and
 * relu6 pass dy, as threshold_backward and hardtanh_backward do) and the
 * modes (deconvnet and guided keep a NaN dy, as relu(dy) does). */
static double act_bwd_ref(cnn_act a, cnn_grad_mode mode, double x, double y, double dy, double slope)
{
    int relu_family = a == CNN_ACT_RELU || a == CNN_ACT_RELU6 || a == CNN_ACT_LEAKY_RELU;
    if (relu_family && mode == CNN_GRAD_DECONV) return dy <= 0 ? 0.0 : dy;
    double d;
    switch (a) {
    case CNN_ACT_RELU: d = x <= 0 ? 0 : 1; break;
    case CNN_ACT_RELU6: d = x <= 0 || x >= 6 ? 0 : 1; break;
    case CNN_ACT_LEAKY_RELU: d = x > 0 ? 1 : slope; break;
    case CNN_ACT_SIGMOID: d = y * (1 - y); break;
    case CNN_ACT_TANH: d = 1 - y * y; break;
    case CNN_ACT_HARDSWISH: d = x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1; break;
    case CNN_ACT_SILU: {
        double s = 1.0 / (1.0 + exp(-x));
        d = s * (1.0 + x * (1.0 - s));
        break;
    }
    case CNN_ACT_GELU: d = 0.5 * (1.0 + erf(x * sqrt(0.5))) + x * exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846); break;
    case CNN_ACT_GELU_TANH: {
        double k = sqrt(2.0 / 3.14159265358979323846), t = tanh(k * (x + 0.044715 * x * x * x));
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
        break;
    }
    case CNN_ACT_NONE:
    default: d = 1; break;
    }
    if (relu_family && mode == CNN_GRAD_GUIDED && dy <= 0) return 0.0;
    /* a select, not a product: a blocked NaN or Inf dy gives 0 */
    return d == 0 ? 0.0 : dy * d;
}

static const cnn_act ALL_ACTS[] = {CNN_ACT_NONE, CNN_ACT_RELU,      CNN_ACT_RELU6, CNN_ACT_LEAKY_RELU,
                                   CNN_ACT_SIGMOID, CNN_ACT_TANH, CNN_ACT_HARDSWISH, CNN_ACT_SILU,
                                   CNN_ACT_GELU, CNN_ACT_GELU_TANH};
#define N_ACTS (sizeof ALL_ACTS / sizeof ALL_ACTS[0])

typedef struct act_ctx {
    cnn_act act;
    float slope;
    size_t n;
} act_ctx;

static int act_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const act_ctx *a = ctx;
    return cnn_op_act(&g_cl, a->act, a->slope, x, y, a->n, "fd act");
}

static void test_act(void)
{
    enum { N = 1000 }; /* not a multiple of the work-group */
    static const float kinks[] = {0.0f, -0.0f, 6.0f, -3.0f, 3.0f, 1e-30f, -1e-30f, 5.9999995f, 6.0000005f,
                                  -3.0000002f, 3.0000002f, NAN, INFINITY, -INFINITY};
    enum { NK = sizeof kinks / sizeof kinks[0] };
    float x[N], y[N];
    double ref[N];
    rng_seed(99);
    fill_nonzero(x, N, -8, 8);
    float *dy = rand_buf(N, -1, 1), *before = rand_buf(N, -1, 1);
    /* every kink with a positive and a negative dy */
    for (int i = 0; i < NK; i++) {
        x[2 * i] = x[2 * i + 1] = kinks[i];
        dy[2 * i] = fabsf(dy[2 * i]);
        dy[2 * i + 1] = -fabsf(dy[2 * i + 1]);
    }
    cl_mem bx = upload(x, N), by = upload(NULL, N), bdy = upload(dy, N), bdx = upload(NULL, N);
    for (size_t a = 0; a < N_ACTS; a++)
        for (int mode = 0; mode < 3; mode++)
            for (int sl = 0; sl < (ALL_ACTS[a] == CNN_ACT_LEAKY_RELU ? 2 : 1); sl++) {
                cnn_act act = ALL_ACTS[a];
                float slope = act == CNN_ACT_LEAKY_RELU ? (sl ? 0.25f : 0.1f) : 0.0f;
                for (int i = 0; i < N; i++) y[i] = (float)act_fwd_ref(act, x[i], slope);
                for (int i = 0; i < N; i++) ref[i] = act_bwd_ref(act, (cnn_grad_mode)mode, x[i], y[i], dy[i], slope);
                CHECK_OK(cnn_cl_write(&g_cl, by, 0, sizeof y, y, "y"));
                CHECK_OK(cnn_cl_write(&g_cl, bdx, 0, N * sizeof *before, before, "dx"));
                CHECK_OK(cnn_grad_act(&g_cl, act, slope, (cnn_grad_mode)mode, bx, by, bdy, bdx, N, "test_grad_act"));
                finish();
                char what[96];
                snprintf(what, sizeof what, "grad act %s mode %d slope %g", act_name(act), mode, (double)slope);
                check_accum(bdx, before, ref, N, ATOL, RTOL, what);
            }
    check_unchanged(bdy, dy, N, "grad act");
    release(bx), release(by), release(bdy), release(bdx);

    /* finite differences, away from the kinks by more than FD_H */
    enum { NF = 64 };
    float xf[NF];
    float *dyf = rand_buf(NF, -1, 1);
    for (int i = 0; i < NF; i++) {
        float v;
        do v = rng_uniform(-8, 8);
        while (fabsf(v) < 0.05f || fabsf(v - 6) < 0.05f || fabsf(v + 3) < 0.05f || fabsf(v - 3) < 0.05f);
        xf[i] = v;
    }
    cl_mem fx = upload(xf, NF), fy = upload(NULL, NF), fdy = upload(dyf, NF), fdx = upload(NULL, NF);
    for (size_t a = 0; a < N_ACTS; a++) {
        act_ctx ctx = {ALL_ACTS[a], ALL_ACTS[a] == CNN_ACT_LEAKY_RELU ? 0.1f : 0.0f, NF};
        CHECK_OK(act_fwd(&ctx, fx, fy));
        CHECK_OK(cnn_grad_zero(&g_cl, fdx, 0, NF, "fd act"));
        CHECK_OK(cnn_grad_act(&g_cl, ctx.act, ctx.slope, CNN_GRAD_PLAIN, fx, fy, fdy, fdx, NF, "fd act"));
        float *dx = grad_from_zero(fdx, NF, "fd act");
        size_t idx[] = {0, 9, 20, 33, 47, 63};
        char what[64];
        snprintf(what, sizeof what, "finite differences, act %s", act_name(ctx.act));
        fd_check(what, act_fwd, &ctx, xf, NF, NF, dyf, dx, idx, 6);
        free(dx);
    }
    release(fx), release(fy), release(fdy), release(fdx);
    free(dy), free(before), free(dyf);

    /* unknown activation or mode: refused */
    int s = cnn_grad_act(&g_cl, (cnn_act)17, 0, CNN_GRAD_PLAIN, NULL, NULL, NULL, NULL, 1, "act_err");
    CHECK(s == CNN_ERR_USAGE && strstr(cnn_error_message(), "act_err"), "unknown act: %d %s", s,
          cnn_error_message());
}

/* ------------------------------------------------- scale, concat, accum --- */

typedef struct scale_ctx {
    cl_mem scale, shift;
    size_t count, plane;
    int channels;
} scale_ctx;

static int scale_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const scale_ctx *s = ctx;
    return cnn_op_affine_act(&g_cl, x, y, s->scale, s->shift, s->count, s->plane, s->channels, CNN_ACT_NONE, 0,
                             "fd scale");
}

static void run_scale(int n, int c, int plane, int fd)
{
    size_t count = (size_t)n * c * plane;
    float *dy = rand_buf(count, -1, 1), *before = rand_buf(count, -1, 1), *scale = rand_buf((size_t)c, -2, 2);
    double *ref = xmalloc(count * sizeof *ref);
    for (size_t i = 0; i < count; i++) ref[i] = (double)dy[i] * scale[(i / (size_t)plane) % (size_t)c];
    cl_mem bdy = upload(dy, count), bdx = upload(before, count), bs = upload(scale, (size_t)c);
    CHECK_OK(cnn_grad_scale(&g_cl, bdy, bs, bdx, count, (size_t)plane, c, "test_grad_scale"));
    finish();
    char what[96];
    snprintf(what, sizeof what, "grad scale n%d c%d plane %d", n, c, plane);
    check_accum(bdx, before, ref, count, ATOL, RTOL, what);
    if (fd) {
        float *shift = rand_buf((size_t)c, -1, 1), *x = rand_buf(count, -1, 1);
        cl_mem bsh = upload(shift, (size_t)c);
        CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, count, "fd scale"));
        CHECK_OK(cnn_grad_scale(&g_cl, bdy, bs, bdx, count, (size_t)plane, c, "fd scale"));
        float *dx = grad_from_zero(bdx, count, what);
        scale_ctx ctx = {bs, bsh, count, (size_t)plane, c};
        size_t idx[] = {0, count / 2, count - 1, 13};
        fd_check("finite differences, batch-norm scale", scale_fwd, &ctx, x, count, count, dy, dx, idx, 4);
        release(bsh);
        free(shift), free(x), free(dx);
    }
    release(bdy), release(bdx), release(bs);
    free(dy), free(before), free(scale), free(ref);
}

typedef struct concat_ctx {
    int n, cx, cy, c0, plane;
    cl_mem y;
} concat_ctx;

/* y is a fixed [n, cy, plane] buffer; the forward writes x into its slice */
static int concat_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const concat_ctx *c = ctx;
    int s = cnn_op_concat_part(&g_cl, c->n, c->cx, c->cy, c->c0, c->plane, x, c->y, "fd concat");
    if (s < 0) return s;
    cl_int err = clEnqueueCopyBuffer(g_cl.queue, c->y, y, 0, 0, (size_t)c->n * c->cy * c->plane * sizeof(float), 0,
                                     NULL, NULL);
    return err == CL_SUCCESS ? 0 : cnn_error_set(CNN_ERR_DEVICE, "copy: %s", cnn_cl_error_name(err));
}

static void test_concat(void)
{
    enum { N = 2, CA = 3, CB = 5, CY = CA + CB, PLANE = 7 * 9 };
    size_t na = N * CA * PLANE, nb = N * CB * PLANE, ny = N * CY * PLANE;
    float *dy = rand_buf(ny, -1, 1), *ba4 = rand_buf(na, -1, 1), *bb4 = rand_buf(nb, -1, 1);
    double *ra = xmalloc(na * sizeof *ra), *rb = xmalloc(nb * sizeof *rb);
    /* forward: y[n, c] = c < CA ? a[n, c] : b[n, c - CA] */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < CY; c++)
            for (int p = 0; p < PLANE; p++) {
                double d = dy[(n * CY + c) * PLANE + p];
                if (c < CA)
                    ra[(n * CA + c) * PLANE + p] = d;
                else
                    rb[(n * CB + c - CA) * PLANE + p] = d;
            }
    cl_mem bdy = upload(dy, ny), bda = upload(ba4, na), bdb = upload(bb4, nb);
    CHECK_OK(cnn_grad_concat_part(&g_cl, N, CA, CY, 0, PLANE, bdy, bda, "concat a"));
    CHECK_OK(cnn_grad_concat_part(&g_cl, N, CB, CY, CA, PLANE, bdy, bdb, "concat b"));
    finish();
    check_accum(bda, ba4, ra, na, ATOL, RTOL, "grad concat part a");
    check_accum(bdb, bb4, rb, nb, ATOL, RTOL, "grad concat part b");
    /* finite differences for part b */
    float *xb = rand_buf(nb, -1, 1), *yfix = rand_buf(ny, -1, 1);
    cl_mem fyfix = upload(yfix, ny);
    CHECK_OK(cnn_grad_zero(&g_cl, bdb, 0, nb, "fd concat"));
    CHECK_OK(cnn_grad_concat_part(&g_cl, N, CB, CY, CA, PLANE, bdy, bdb, "fd concat"));
    float *dx = grad_from_zero(bdb, nb, "fd concat");
    concat_ctx ctx = {N, CB, CY, CA, PLANE, fyfix};
    size_t idx[] = {0, nb / 2, nb - 1};
    fd_check("finite differences, concat", concat_fwd, &ctx, xb, nb, ny, dy, dx, idx, 3);
    release(bdy), release(bda), release(bdb), release(fyfix);
    free(dy), free(ba4), free(bb4), free(ra), free(rb), free(xb), free(yfix), free(dx);
}

static void test_accum_zero(void)
{
    enum { N = 1237 };
    float *dy = rand_buf(N, -1, 1), *before = rand_buf(N, -1, 1);
    double ref[N];
    for (int i = 0; i < N; i++) ref[i] = dy[i];
    cl_mem bdy = upload(dy, N), bdx = upload(before, N);
    CHECK_OK(cnn_grad_accum(&g_cl, bdy, bdx, N, "test_grad_accum"));
    finish();
    check_accum(bdx, before, ref, N, ATOL, RTOL, "grad accum");
    /* twice: accumulates again */
    CHECK_OK(cnn_grad_accum(&g_cl, bdy, bdx, N, "test_grad_accum"));
    finish();
    for (int i = 0; i < N; i++) ref[i] = 2.0 * dy[i];
    check_accum(bdx, before, ref, N, ATOL, RTOL, "grad accum twice");
    /* zero only [17, 17 + 500) */
    CHECK_OK(cnn_cl_write(&g_cl, bdx, 0, N * sizeof *before, before, "dx"));
    CHECK_OK(cnn_grad_zero(&g_cl, bdx, 17, 500, "test_grad_zero"));
    finish();
    for (int i = 0; i < N; i++) ref[i] = i >= 17 && i < 517 ? -(double)before[i] : 0.0;
    check_accum(bdx, before, ref, N, 0, 0, "grad zero at an offset");
    release(bdy), release(bdx);
    free(dy), free(before);
}

/* -------------------------------------------------------------- errors --- */

static void test_errors(void)
{
    /* The GEMM path of linear hands the buffers to CLBlast, which names the
     * bad one; the message must name the layer. */
    float w[12];
    rng_fill(w, 12, -1, 1);
    cl_mem bw = upload(w, 12), bdx = upload(NULL, 8 * 4);
    cnn_error_clear();
    int s = cnn_grad_linear(&g_cl, 8, 4, 3, NULL, bw, bdx, "fc_err_9");
    const char *msg = cnn_error_message();
    CHECK(s == CNN_ERR_DEVICE, "grad linear with NULL dy returned %d", s);
    CHECK(strstr(msg, "CLBlast") && strstr(msg, "fc_err_9"), "message: %s", msg);
    finish();
    release(bw), release(bdx);
}

/* --------------------------------------------------------------- bench --- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef int (*bench_fn)(const void *ctx);

/* best of `reps` after one warm-up, in ms */
static double bench(bench_fn f, const void *ctx, int reps)
{
    CHECK_OK(f(ctx));
    finish();
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        CHECK_OK(f(ctx));
        finish();
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    return best * 1e3;
}

typedef struct bench_conv {
    cnn_conv_geom g;
    int n;
    cl_mem x, w, y, dy, dx, fscratch, bscratch;
} bench_conv;

static int bench_conv_fwd(const void *ctx)
{
    const bench_conv *b = ctx;
    return cnn_op_conv2d(&g_cl, &b->g, b->n, b->x, b->w, NULL, CNN_ACT_NONE, 0, b->y, b->fscratch, "bench");
}

static int bench_conv_bwd(const void *ctx)
{
    const bench_conv *b = ctx;
    return cnn_grad_conv2d(&g_cl, &b->g, b->n, b->dy, b->w, b->dx, b->bscratch, "bench");
}

static void bench_conv_case(const conv_case *c, int reps)
{
    bench_conv b = {conv_geom(c), c->n, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t nx = (size_t)c->n * c->ci * c->hi * c->wi;
    size_t nw = (size_t)c->co * (c->ci / c->groups) * c->kh * c->kw;
    size_t ny = (size_t)c->n * c->co * b.g.ho * b.g.wo;
    float *x = rand_buf(nx, -1, 1), *w = rand_buf(nw, -1, 1), *dy = rand_buf(ny, -1, 1);
    size_t fs = cnn_op_conv2d_scratch(&b.g), bs = cnn_grad_conv2d_scratch(&b.g);
    b.x = upload(x, nx), b.w = upload(w, nw), b.y = upload(NULL, ny), b.dy = upload(dy, ny);
    b.dx = upload(x, nx), b.fscratch = upload(NULL, fs ? fs : 1), b.bscratch = upload(NULL, bs ? bs : 1);
    double tf = bench(bench_conv_fwd, &b, reps), tb = bench(bench_conv_bwd, &b, reps);
    printf("conv %-28s fwd %8.2f ms  bwd-data %8.2f ms  (bwd/fwd %.2f)\n", c->what, tf, tb, tb / tf);
    release(b.x), release(b.w), release(b.y), release(b.dy), release(b.dx), release(b.fscratch),
        release(b.bscratch);
    free(x), free(w), free(dy);
}

typedef struct bench_lin {
    int n, in, out;
    cl_mem x, w, y, dy, dx;
} bench_lin;

static int bench_lin_fwd(const void *ctx)
{
    const bench_lin *b = ctx;
    return cnn_op_linear(&g_cl, b->n, b->in, b->out, b->x, b->w, NULL, CNN_ACT_NONE, 0, b->y, "bench");
}

static int bench_lin_bwd(const void *ctx)
{
    const bench_lin *b = ctx;
    return cnn_grad_linear(&g_cl, b->n, b->in, b->out, b->dy, b->w, b->dx, "bench");
}

static void bench_linear_case(int n, int in, int out, int reps)
{
    bench_lin b = {n, in, out, NULL, NULL, NULL, NULL, NULL};
    size_t nx = (size_t)n * in, nw = (size_t)in * out, ny = (size_t)n * out;
    float *x = rand_buf(nx, -1, 1), *w = rand_buf(nw, -1, 1), *dy = rand_buf(ny, -1, 1);
    b.x = upload(x, nx), b.w = upload(w, nw), b.y = upload(NULL, ny), b.dy = upload(dy, ny), b.dx = upload(x, nx);
    double tf = bench(bench_lin_fwd, &b, reps), tb = bench(bench_lin_bwd, &b, reps);
    printf("linear n%d %dx%d: fwd %8.2f ms  bwd %8.2f ms  (bwd/fwd %.2f; W %.0f MB)\n", n, out, in, tf, tb, tb / tf,
           (double)nw * 4 / 1e6);
    release(b.x), release(b.w), release(b.y), release(b.dy), release(b.dx);
    free(x), free(w), free(dy);
}

static int bench_main(int argc, char **argv)
{
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    static const conv_case cases[] = {
        {1, 64, 112, 112, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "vgg 64->64 112x112 3x3"},
        {1, 64, 224, 224, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "vgg 64->64 224x224 3x3"},
        {1, 3, 224, 224, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "vgg 3->64 224x224 3x3"},
        {1, 256, 56, 56, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "vgg 256->256 56x56 3x3"},
        {1, 512, 14, 14, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "vgg 512->512 14x14 3x3"},
        {1, 3, 224, 224, 64, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, "resnet 7x7 s2 3->64"},
        {1, 256, 56, 56, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, "resnet 1x1 256->64 56x56"},
        {1, 144, 56, 56, 144, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 144, "depthwise 144 56x56"},
        {4, 64, 112, 112, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "vgg 64->64 112x112 batch 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bench_conv_case(&cases[i], reps);
    bench_linear_case(1, 25088, 4096, reps);
    bench_linear_case(1, 4096, 4096, reps);
    bench_linear_case(4, 25088, 4096, reps);
    bench_linear_case(8, 25088, 4096, reps);
    bench_linear_case(1, 1280, 1000, reps);
    return test_summary("test_grad bench");
}

int main(int argc, char **argv)
{
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    if (!g_cl.ctx) return test_summary("test_grad");
    printf("device: %s (%s)\n", g_cl.device_name, g_cl.platform_name);
    cnn_blas_apply_defaults(&g_cl);
    int rc;
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        rc = bench_main(argc, argv);
    } else {
        double t0 = now_s();
        test_conv();
        test_linear();
        test_pools();
        test_maxpool_ties();
        test_adaptive();
        rng_seed(5);
        run_softmax(2, 10, 7 * 9, 0);
        run_softmax(3, 1000, 1, 0);
        run_softmax(1, 6, 5, 1);
        run_lrn(2, 16, 7 * 5, 5, 0.5f, 0.75f, 2.0f, 0);
        run_lrn(1, 7, 9, 4, 0.3f, 0.75f, 1.0f, 0); /* even size: asymmetric window */
        run_lrn(1, 6, 5, 3, 0.5f, 0.75f, 1.0f, 1);
        test_act();
        rng_seed(2024);
        run_scale(3, 5, 63, 1);
        run_scale(4, 37, 1, 0);
        test_concat();
        test_accum_zero();
        test_errors();
        printf("test_grad: %.1f s\n", now_s() - t0);
        rc = test_summary("test_grad");
    }
    cnn_cl_free(&g_cl);
    return rc;
}
