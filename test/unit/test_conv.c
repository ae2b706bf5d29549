/* Convolution, linear and elementwise ops (host/ops/conv.c, dense.c,
 * eltwise.c) on whatever device the environment selects (PoCL in CI), each
 * against a plain C reference in double precision on random data.
 *
 * Tolerance.  Inputs, weights and biases are uniform in [-1, 1] (never all
 * zeros), so each output is a float32 sum of K products of magnitude <= 1.
 * The float32 rounding error of such a sum behaves like a random walk:
 * about sqrt(K) * eps32 * |partial sums| ~ sqrt(K) * 6e-8 * sqrt(K / 9),
 * i.e. ~1e-5 at K = 600 whatever order the device (im2col + CLBlast GEMM,
 * the direct kernel, the GEMV tree reduction) adds in.  We allow
 *     atol = max(1e-4, 2e-7 * K),  rtol = 1e-4
 * (K = reduction length: ci/groups * kh * kw, or `in` for linear), which is
 * about 10x that estimate and still far below any indexing bug (an error of
 * one product is ~0.25 on average).  Activations are evaluated in float on
 * the device (exp/tanh within a few ulp), which rtol 1e-4 covers.  Pure
 * elementwise ops (act, affine, add) are one or two float roundings plus an
 * activation: atol 1e-6, rtol 1e-5.  Cases with NaN and +-Inf in inputs,
 * weights or biases (PyTorch's semantics in act_ref and conv_ref) must
 * match every NaN and infinity of the reference exactly: whether a sum is
 * NaN, +Inf or -Inf does not depend on the order it is added in. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "ops/blas.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

#define GUARD 16            /* sentinel floats after every output buffer */
#define SENTINEL 12345.0f   /* must survive in the guard area */

static const char *act_name(cnn_act a)
{
    static const char *const names[] = {"none", "relu",      "relu6", "leaky_relu", "sigmoid",
                                        "tanh", "hardswish", "silu",  "gelu",       "gelu_tanh"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

/* PyTorch 1.13's activations, NaN and Inf included: the clamps of relu,
 * relu6 and hardswish pass NaN through (torch.relu(nan) is nan), relu(-inf)
 * is 0, relu6(inf) 6, leaky_relu(-inf) -inf, sigmoid(-+inf) 0 and 1,
 * tanh(+-inf) +-1, hardswish(inf) inf and hardswish(-inf) = -inf * 0 = nan,
 * silu and both gelus give inf at inf and nan at -inf (-inf / inf and
 * -inf * 0 in PyTorch's formulas; each checked against torch). */
static double relu6_ref(double x) { return x <= 0 ? 0.0 : x >= 6 ? 6.0 : x; }

static double act_ref(cnn_act a, double x, double slope)
{
    switch (a) {
    case CNN_ACT_RELU: return x <= 0 ? 0.0 : x;
    case CNN_ACT_RELU6: return relu6_ref(x);
    case CNN_ACT_LEAKY_RELU: return x >= 0 ? x : x * slope;
    case CNN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case CNN_ACT_TANH: return tanh(x);
    case CNN_ACT_HARDSWISH: return x * relu6_ref(x + 3.0) / 6.0;
    case CNN_ACT_SILU: return x / (1.0 + exp(-x));
    case CNN_ACT_GELU: return x * 0.5 * (1.0 + erf(x * sqrt(0.5)));
    case CNN_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    case CNN_ACT_NONE:
    default: return x;
    }
}

static double mm_atol(size_t k)
{
    double a = 2e-7 * (double)k;
    return a > 1e-4 ? a : 1e-4;
}

/* Device buffer holding `n` floats of `data` (NULL: NaN poison) followed by
 * GUARD sentinels. */
static cl_mem upload(cnn_cl *cl, const float *data, size_t n, const char *what)
{
    float *tmp = xmalloc((n + GUARD) * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = data ? data[i] : NAN;
    for (size_t i = 0; i < GUARD; i++) tmp[n + i] = SENTINEL;
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(cl, (n + GUARD) * sizeof *tmp, &b, what));
    if (b) CHECK_OK(cnn_cl_write(cl, b, 0, (n + GUARD) * sizeof *tmp, tmp, what));
    free(tmp);
    return b;
}

/* Reads `n` floats back and checks them against ref, and the guard. */
static void download_check(cnn_cl *cl, cl_mem b, size_t n, const double *ref, double atol,
                           double rtol, const char *what)
{
    float *got = xmalloc((n + GUARD) * sizeof *got);
    for (size_t i = 0; i < n + GUARD; i++) got[i] = NAN;
    CHECK_OK(cnn_cl_read(cl, b, 0, (n + GUARD) * sizeof *got, got, what));
    CHECK(close_enough_nf(got, ref, n, atol, rtol, what), "%s differs from the C reference", what);
    int guard_ok = 1;
    for (size_t i = 0; i < GUARD; i++) guard_ok &= got[n + i] == SENTINEL;
    CHECK(guard_ok, "%s wrote past the end of its output", what);
    free(got);
}

/* The buffer still holds exactly `data` (inputs must be left alone). */
static void check_unchanged(cnn_cl *cl, cl_mem b, const float *data, size_t n, const char *what)
{
    float *got = xmalloc(n * sizeof *got);
    CHECK_OK(cnn_cl_read(cl, b, 0, n * sizeof *got, got, what));
    CHECK(memcmp(got, data, n * sizeof *got) == 0, "%s: the op changed its input", what);
    free(got);
}

static void finish(cnn_cl *cl)
{
    cl_int err = clFinish(cl->queue);
    CHECK(err == CL_SUCCESS, "clFinish: %s", cnn_cl_error_name(err));
}

static void release(cl_mem b)
{
    if (b) clReleaseMemObject(b);
}

/* ---------------------------------------------------------------- conv --- */

typedef struct conv_case {
    int n, ci, hi, wi, co, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, groups;
    int bias;
    cnn_act act;
    float slope;
    const char *what;
    int specials; /* 0: finite data; 1: NaN/Inf in the input, one +Inf weight, NaN/-Inf biases;
                     2: NaN weights and NaN/+-Inf biases, finite input */
} conv_case;

static void conv_ref(const cnn_conv_geom *g, int n, const float *x, const float *w,
                     const float *bias, cnn_act act, float slope, double *y)
{
    int cig = g->ci / g->groups, cog = g->co / g->groups;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < g->co; o++) {
            int grp = o / cog;
            for (int oy = 0; oy < g->ho; oy++)
                for (int ox = 0; ox < g->wo; ox++) {
                    double acc = bias ? bias[o] : 0.0;
                    /* Taps in the padding multiply a zero, as PyTorch's
                     * convolutions do (0 * Inf weight = NaN there; only
                     * its float32 depthwise kernel skips them). */
                    for (int c = 0; c < cig; c++) {
                        int cin = grp * cig + c;
                        for (int i = 0; i < g->kh; i++) {
                            int iy = oy * g->sh - g->pt + i * g->dh;
                            for (int j = 0; j < g->kw; j++) {
                                int ix = ox * g->sw - g->pl + j * g->dw;
                                bool in = iy >= 0 && iy < g->hi && ix >= 0 && ix < g->wi;
                                double v = in ? x[(((size_t)b * g->ci + cin) * g->hi + iy) * g->wi + ix] : 0.0;
                                acc += v * (double)w[(((size_t)o * cig + c) * g->kh + i) * g->kw + j];
                            }
                        }
                    }
                    y[(((size_t)b * g->co + o) * g->ho + oy) * g->wo + ox] = act_ref(act, acc, slope);
                }
        }
}

static void run_conv_case(cnn_cl *cl, const conv_case *c)
{
    cnn_conv_geom g = {.ci = c->ci, .hi = c->hi, .wi = c->wi, .co = c->co, .kh = c->kh,
                       .kw = c->kw, .sh = c->sh, .sw = c->sw, .dh = c->dh, .dw = c->dw,
                       .pt = c->pt, .pb = c->pb, .pl = c->pl, .pr = c->pr, .groups = c->groups};
    g.ho = (c->hi + c->pt + c->pb - c->dh * (c->kh - 1) - 1) / c->sh + 1;
    g.wo = (c->wi + c->pl + c->pr - c->dw * (c->kw - 1) - 1) / c->sw + 1;
    char what[256];
    snprintf(what, sizeof what,
             "conv %s: n%d ci%d %dx%d co%d k%dx%d s%d,%d d%d,%d pad t%d b%d l%d r%d g%d -> %dx%d %s%s",
             c->what, c->n, c->ci, c->hi, c->wi, c->co, c->kh, c->kw, c->sh, c->sw, c->dh, c->dw,
             c->pt, c->pb, c->pl, c->pr, c->groups, g.ho, g.wo, c->bias ? "bias " : "",
             act_name(c->act));
    if (g.ho < 1 || g.wo < 1 || c->ci % c->groups || c->co % c->groups) {
        CHECK(0, "bad test case %s", what);
        return;
    }
    size_t nx = (size_t)c->n * c->ci * c->hi * c->wi;
    size_t nw = (size_t)c->co * (c->ci / c->groups) * c->kh * c->kw;
    size_t ny = (size_t)c->n * c->co * g.ho * g.wo;
    float *x = xmalloc(nx * sizeof *x), *w = xmalloc(nw * sizeof *w);
    float *bias = xmalloc((size_t)c->co * sizeof *bias);
    double *ref = xmalloc(ny * sizeof *ref);
    fill_nonzero(x, nx, -1.0f, 1.0f);
    fill_nonzero(w, nw, -1.0f, 1.0f);
    fill_nonzero(bias, (size_t)c->co, -1.0f, 1.0f);
    if (c->specials == 1) {
        sprinkle_nonfinite(x, nx, 60);
        w[nw / 3] = INFINITY;
        bias[0] = NAN;
        bias[c->co - 1] = -INFINITY;
    } else if (c->specials == 2) {
        w[nw / 5] = NAN;
        w[nw - 1] = NAN;
        bias[1] = NAN;
        bias[2] = INFINITY;
        bias[c->co - 2] = -INFINITY;
    }
    conv_ref(&g, c->n, x, w, c->bias ? bias : NULL, c->act, c->slope, ref);

    size_t scratch_n = cnn_op_conv2d_scratch(&g);
    cl_mem bx = upload(cl, x, nx, "x"), bw = upload(cl, w, nw, "w");
    cl_mem bb = c->bias ? upload(cl, bias, (size_t)c->co, "bias") : NULL;
    cl_mem by = upload(cl, NULL, ny, "y");
    cl_mem bs = upload(cl, NULL, scratch_n ? scratch_n : 1, "scratch");
    CHECK_OK(cnn_op_conv2d(cl, &g, c->n, bx, bw, bb, c->act, c->slope, by, bs, "test_conv"));
    finish(cl);
    size_t k = (size_t)(c->ci / c->groups) * c->kh * c->kw;
    download_check(cl, by, ny, ref, mm_atol(k), 1e-4, what);
    /* The input must be left alone. */
    check_unchanged(cl, bx, x, nx, what);
    /* The packed GEMM path on the same data, with the layout planned for
     * this batch, for a 5x larger one without Winograd (other padding, maybe
     * the other GEMM orientation), and Winograd wherever the geometry allows
     * it; scratch and output start as NaN. */
    bool own = cl->own_gemm;
    for (int v = 0; v < (own ? 6 : 3); v++) {
        /* v = 0: planned for n images; 1: for 5n, Winograd off; 2: Winograd
         * forced; 3-5 the same on CLBlast where the own GEMM runs 0-2 */
        cl->own_gemm = own && v < 3;
        int mb = v % 3 == 1 ? 5 : 1;
        cnn_conv_pack pk;
        bool ok = v % 3 == 0   ? cnn_op_conv2d_pack_layout(&g, c->n, cl->own_gemm, &pk)
                  : v % 3 == 1 ? cnn_op_conv2d_pack_plain(&g, c->n * mb, cl->own_gemm, &pk)
                               : cnn_op_conv2d_pack_winograd(&g, c->n, cl->own_gemm, &pk);
        /* Winograd's input transform mixes a tile: NaN and Inf in the
         * input reach outputs a direct product keeps finite (the network
         * runs no Winograd when its weights hold them). */
        if (!ok || (c->specials == 1 && pk.winograd))
            continue;
        char pwhat[320];
        snprintf(pwhat, sizeof pwhat, "%s packed(%sk%d co%d p%d max_batch %d, %s GEMM)", what,
                 pk.winograd ? "winograd " : "", pk.k_pad, pk.co_pad, pk.p_align, c->n * mb,
                 cl->own_gemm ? "own" : "CLBlast");
        size_t npacked = cnn_op_conv2d_packed_weights(&pk);
        float *packed = xmalloc(npacked * sizeof *packed);
        cnn_op_conv2d_pack_weights(&g, &pk, w, packed);
        size_t ncol = cnn_op_conv2d_packed_col(&g, &pk, c->n), nout = cnn_op_conv2d_packed_out(&g, &pk, c->n);
        cl_mem bp = upload(cl, packed, npacked, "packed w");
        cl_mem bcol = upload(cl, NULL, ncol ? ncol : 1, "col"), bout = upload(cl, NULL, nout, "gemm out");
        cl_mem by2 = upload(cl, NULL, ny, "y packed");
        CHECK_OK(cnn_op_conv2d_packed(cl, &g, &pk, c->n, bx, bp, bb, c->act, c->slope, by2, bcol, bout,
                                      "test_conv"));
        finish(cl);
        download_check(cl, by2, ny, ref, mm_atol(k), 1e-4, pwhat);
        check_unchanged(cl, bx, x, nx, pwhat);
        release(bp), release(bcol), release(bout), release(by2);
        free(packed);
    }
    cl->own_gemm = own;
    release(bx), release(bw), release(bb), release(by), release(bs);
    free(x), free(w), free(bias), free(ref);
}

static void test_conv(cnn_cl *cl)
{
    static const conv_case cases[] = {
        /* n  ci  hi  wi  co kh kw sh sw dh dw pt pb pl pr  g  bias act */
        {1, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_NONE, 0, "3x3 same", 0},
        {3, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "3x3 batch", 0},
        {3, 5, 7, 9, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, CNN_ACT_NONE, 0, "3x3 valid", 0},
        {3, 5, 7, 9, 3, 5, 5, 2, 2, 1, 1, 2, 1, 1, 2, 1, 1, CNN_ACT_RELU6, 0, "5x5 s2 asym", 0},
        {1, 3, 9, 7, 5, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_NONE, 0, "5x5 valid", 0},
        {1, 3, 7, 9, 5, 1, 3, 1, 2, 1, 1, 0, 0, 1, 1, 1, 1, CNN_ACT_LEAKY_RELU, 0.1f, "1x3 sw2", 0},
        {3, 5, 9, 7, 4, 3, 1, 2, 1, 1, 1, 1, 0, 0, 0, 1, 0, CNN_ACT_TANH, 0, "3x1 sh2", 0},
        {1, 3, 9, 7, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0, CNN_ACT_SIGMOID, 0, "dil2", 0},
        {3, 3, 9, 11, 4, 3, 3, 2, 1, 2, 1, 3, 0, 0, 2, 1, 1, CNN_ACT_TANH, 0, "dil2,1 asym", 0},
        {1, 5, 8, 8, 3, 3, 3, 2, 2, 1, 1, 1, 0, 1, 0, 1, 1, CNN_ACT_HARDSWISH, 0, "s2 tl-pad", 0},
        {3, 4, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, CNN_ACT_HARDSWISH, 0, "groups2 direct", 0},
        {1, 4, 7, 9, 6, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 2, 0, CNN_ACT_LEAKY_RELU, 0.1f, "groups2 s2", 0},
        {3, 10, 7, 9, 6, 3, 3, 2, 2, 1, 1, 1, 0, 0, 1, 2, 1, CNN_ACT_RELU, 0, "groups2 gemm", 0},
        {1, 12, 7, 9, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 3, 0, CNN_ACT_NONE, 0, "groups3 gemm dil2", 0},
        {3, 8, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, CNN_ACT_RELU6, 0, "depthwise", 0},
        {1, 8, 9, 7, 8, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 8, 0, CNN_ACT_NONE, 0, "depthwise 5x5 s2", 0},
        {3, 8, 7, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, CNN_ACT_SIGMOID, 0, "depthwise x2", 0},
        {1, 8, 9, 11, 16, 3, 3, 2, 1, 2, 2, 2, 1, 1, 2, 8, 0, CNN_ACT_LEAKY_RELU, 0.1f,
         "depthwise x2 dil2 asym", 0},
        {1, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, CNN_ACT_NONE, 0, "pointwise", 0},
        {3, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_RELU, 0, "pointwise batch", 0},
        {3, 12, 7, 9, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 1, CNN_ACT_NONE, 0, "pointwise groups2", 0},
        {3, 5, 7, 9, 7, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_NONE, 0, "1x1 s2 (im2col)", 0},
        {1, 5, 7, 9, 7, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, CNN_ACT_TANH, 0, "1x1 padded (im2col)", 0},
        /* K = 576 and m = 70 > one GEMM tile */
        {1, 64, 11, 13, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "wide K", 0},
        {3, 16, 13, 11, 33, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1, CNN_ACT_LEAKY_RELU, 0.1f,
         "5x5 s2 K400", 0},
        /* packed path: K, co and n*ho*wo off the 32/64/128 tiles, several tiles */
        {2, 40, 15, 15, 130, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "K360 co130 batch", 0},
        {1, 3, 30, 30, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "K27 first layer", 0},
        {2, 3, 29, 29, 64, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 0, CNN_ACT_NONE, 0, "7x7 s2 stem", 0},
        {1, 96, 7, 7, 200, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU6, 0, "7x7 map co200", 0},
        {3, 64, 9, 9, 128, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_NONE, 0, "1x1 s2 downsample", 0},
        /* K = 1152 > CNN_GEMM_KSPLIT: the GEMM runs in K slices on PoCL */
        {1, 128, 6, 5, 64, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "K1152 sliced", 0},
        /* Winograd F(2x2, 3x3): odd and even sizes, asymmetric/no/large padding, batch, ci > 512 */
        {1, 32, 9, 7, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "winograd odd", 0},
        {3, 40, 8, 10, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, CNN_ACT_LEAKY_RELU, 0.1f, "winograd batch", 0},
        {2, 33, 11, 6, 130, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_NONE, 0, "winograd valid", 0},
        {1, 64, 7, 9, 64, 3, 3, 1, 1, 1, 1, 2, 0, 0, 1, 1, 1, CNN_ACT_TANH, 0, "winograd asym pad", 0},
        {1, 64, 5, 5, 32, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, CNN_ACT_SIGMOID, 0, "winograd pad 3", 0},
        {1, 520, 4, 4, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "winograd ci520 sliced", 0},
        {2, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "winograd resnet layer3", 0},
        /* NaN and Inf as PyTorch propagates them (GEMM paths; the direct
         * kernel skips padded taps, as PyTorch's float32 depthwise does) */
        {2, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "nan/inf 3x3", 1},
        {1, 40, 9, 7, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU6, 0, "nan/inf K360", 1},
        {1, 32, 8, 16, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_HARDSWISH, 0, "nan/inf pointwise", 1},
        {1, 128, 6, 5, 64, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "nan/inf K1152 sliced", 1},
        {1, 32, 9, 7, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU, 0, "nan weights winograd", 2},
        {2, 64, 7, 9, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_RELU6, 0, "nan weights winograd batch", 2},
        /* 1x1 on one image with ci and h*w on the tile: the input is the column matrix */
        {1, 32, 8, 16, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_RELU, 0, "pointwise as col", 0},
        {4, 32, 8, 16, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, CNN_ACT_HARDSWISH, 0, "pointwise batch4", 0},
        /* SiLU and GELU in each epilogue: direct, im2col, packed GEMM, Winograd */
        {3, 8, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, CNN_ACT_SILU, 0, "depthwise silu", 0},
        {1, 8, 9, 7, 8, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 8, 1, CNN_ACT_GELU, 0, "depthwise 5x5 gelu", 0},
        {3, 5, 7, 9, 3, 5, 5, 2, 2, 1, 1, 2, 1, 1, 2, 1, 1, CNN_ACT_GELU_TANH, 0, "5x5 s2 gelu tanh", 0},
        {2, 40, 15, 15, 130, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_SILU, 0, "K360 co130 silu", 0},
        {3, 40, 8, 10, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, CNN_ACT_GELU, 0, "winograd gelu", 0},
        {4, 32, 8, 16, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_SILU, 0, "pointwise batch4 silu", 0},
        {1, 32, 8, 16, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, CNN_ACT_GELU, 0, "nan/inf pointwise gelu", 1},
    };
    rng_seed(1234);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(cl, &cases[i]);
}

/* ---------------------------------------------------------------- gemm --- */

/* cnn_blas_sgemm_native_n against a double reference: C_z[j][i] = sum_l
 * A_z[l][i] B_z[l][j] for `count` blocks, K sliced over several launches
 * (k > 1024 on the own kernel, > CNN_GEMM_KSPLIT on CLBlast), C poisoned
 * with NaN (the result must not depend on what C held) and guarded.  The
 * own kernel gets block strides that are not multiples of 16 floats
 * (unaligned vector loads); CLBlast's blocks are sub-buffers, whose origins
 * must be aligned (128 floats).  Tolerance as for the convolutions: atol
 * max(1e-4, 2e-7 K), rtol 1e-4. */
static void run_gemm_variant(cnn_cl *cl, size_t count, size_t m, size_t n, size_t k)
{
    bool own = cnn_blas_own_gemm_fits(cl, m, n);
    size_t as = m * k + 5, bs = n * k + 3, cs = m * n + 7;
    if (!own) as = (as + 127) / 128 * 128, bs = (bs + 127) / 128 * 128, cs = (cs + 127) / 128 * 128;
    size_t na = (count - 1) * as + m * k, nb = (count - 1) * bs + n * k, nc = (count - 1) * cs + m * n;
    float *a = xmalloc(na * sizeof *a), *b = xmalloc(nb * sizeof *b);
    double *ref = xmalloc(nc * sizeof *ref);
    fill_nonzero(a, na, -1.0f, 1.0f);
    fill_nonzero(b, nb, -1.0f, 1.0f);
    for (size_t z = 0; z < count; z++)
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < m; i++) {
                double acc = 0.0;
                for (size_t l = 0; l < k; l++) acc += (double)a[z * as + l * m + i] * b[z * bs + l * n + j];
                ref[z * cs + j * m + i] = acc;
            }
    char what[160];
    snprintf(what, sizeof what, "gemm %zu x (%zu x %zu x %zu) on %s", count, m, n, k,
             own ? "the own kernel" : "CLBlast");
    cl_mem ba = upload(cl, a, na, "a"), bb = upload(cl, b, nb, "b"), bc = upload(cl, NULL, nc, "c");
    CHECK_OK(cnn_blas_sgemm_native_n(cl, count, m, n, k, ba, as, bb, bs, bc, cs, "test_gemm"));
    finish(cl);
    float *got = xmalloc((nc + GUARD) * sizeof *got);
    CHECK_OK(cnn_cl_read(cl, bc, 0, (nc + GUARD) * sizeof *got, got, what));
    double atol = mm_atol(k);
    int bad = 0;
    for (size_t z = 0; z < count && !bad; z++)
        for (size_t q = 0; q < m * n && !bad; q++) {
            double r = ref[z * cs + q], d = fabs((double)got[z * cs + q] - r);
            if (!(d <= atol + 1e-4 * fabs(r))) {
                CHECK(0, "%s: block %zu element %zu is %.9g, reference %.9g", what, z, q, (double)got[z * cs + q],
                      r);
                bad = 1;
            }
        }
    if (!bad) CHECK(1, "%s", what);
    int guard_ok = 1;
    for (size_t i = 0; i < GUARD; i++) guard_ok &= got[nc + i] == SENTINEL;
    CHECK(guard_ok, "%s wrote past the end of C", what);
    release(ba), release(bb), release(bc);
    free(got), free(a), free(b), free(ref);
}

/* The own kernel where this device runs it, and CLBlast on the same shape. */
static void run_gemm_case(cnn_cl *cl, size_t count, size_t m, size_t n, size_t k)
{
    bool own = cl->own_gemm;
    run_gemm_variant(cl, count, m, n, k);
    if (own) {
        cl->own_gemm = false;
        run_gemm_variant(cl, count, m, n, k);
        cl->own_gemm = own;
    }
}

/* Row-major C[M][N] = A^T B + beta C through cnn_blas_sgemm_beta (ta, not
 * tb: the backward pass's product), operands at offsets and with rows
 * longer than the matrix (the gaps must stay untouched), on the own
 * kernel where it applies and on CLBlast.  beta = 1 must add to C. */
static void run_atb_case(cnn_cl *cl, size_t M, size_t N, size_t K, float beta)
{
    size_t lda = M + 3, ldb = N + 5, ldc = N + 2, ao = 7, bo = 11, co = 13;
    size_t na = ao + K * lda, nb = bo + K * ldb, nc = co + M * ldc;
    float *a = xmalloc(na * sizeof *a), *b = xmalloc(nb * sizeof *b), *c0 = xmalloc(nc * sizeof *c0);
    double *ref = xmalloc(nc * sizeof *ref);
    fill_nonzero(a, na, -1.0f, 1.0f);
    fill_nonzero(b, nb, -1.0f, 1.0f);
    fill_nonzero(c0, nc, -1.0f, 1.0f);
    for (size_t q = 0; q < nc; q++) ref[q] = c0[q]; /* outside the matrix: unchanged */
    for (size_t r = 0; r < M; r++)
        for (size_t col = 0; col < N; col++) {
            double acc = 0.0;
            for (size_t l = 0; l < K; l++) acc += (double)a[ao + l * lda + r] * b[bo + l * ldb + col];
            ref[co + r * ldc + col] = acc + (beta == 1.0f ? (double)c0[co + r * ldc + col] : 0.0);
        }
    bool own = cl->own_gemm;
    for (int v = 0; v < (own ? 2 : 1); v++) {
        cl->own_gemm = own && v == 0;
        char what[160];
        snprintf(what, sizeof what, "gemm A^T B %zu x %zu x %zu beta %g on %s", M, N, K, beta,
                 cnn_blas_own_gemm_fits(cl, N, M) ? "the own kernel" : "CLBlast");
        cl_mem ba = upload(cl, a, na, "a"), bb = upload(cl, b, nb, "b"), bc = upload(cl, c0, nc, "c");
        CHECK_OK(cnn_blas_sgemm_beta(cl, true, false, M, N, K, ba, ao, lda, bb, bo, ldb, beta, bc, co, ldc,
                                     "test_gemm"));
        finish(cl);
        download_check(cl, bc, nc, ref, mm_atol(K), 1e-4, what);
        release(ba), release(bb), release(bc);
    }
    cl->own_gemm = own;
    free(a), free(b), free(c0), free(ref);
}

static void test_gemm(cnn_cl *cl)
{
    rng_seed(77);
    run_gemm_case(cl, 1, 64, 8, 1);       /* one work-item, one step */
    run_gemm_case(cl, 1, 128, 136, 37);   /* several items each way, odd K */
    run_gemm_case(cl, 3, 64, 24, 160);    /* batched, unaligned block strides */
    run_gemm_case(cl, 1, 64, 16, 2100);   /* K in 3 slices on the own kernel */
    run_gemm_case(cl, 2, 192, 8, 1030);   /* batched and sliced */
    run_gemm_case(cl, 1, 49, 27, 64);     /* m and n off the tile: edge blocks moved back */
    run_gemm_case(cl, 2, 100, 13, 1100);  /* the same, batched and sliced */
    run_gemm_case(cl, 1, 32, 8, 5);       /* the smallest the own kernel takes */
    run_gemm_case(cl, 1, 20, 12, 9);      /* m < 32: CLBlast */
    run_atb_case(cl, 27, 49, 64, 0.0f);   /* conv backward: kdim x pixels, k = channels */
    run_atb_case(cl, 72, 196, 130, 1.0f); /* pointwise backward adds to dx */
    run_atb_case(cl, 13, 40, 2100, 1.0f); /* sliced K adds once */
    run_atb_case(cl, 5, 40, 16, 0.0f);    /* M < 8: CLBlast */
}

/* -------------------------------------------------------------- linear --- */

/* specials: +Inf and NaN weights in rows 1 and 2, a -Inf last bias, and
 * NaN/Inf in the second image's input (batch > 1). */
static void run_linear_case(cnn_cl *cl, int n, int in, int out, int with_bias, cnn_act act,
                            float slope, int specials)
{
    char what[160];
    snprintf(what, sizeof what, "linear n%d in%d out%d %s%s%s", n, in, out, with_bias ? "bias " : "",
             act_name(act), specials ? " NaN/Inf" : "");
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    float *x = xmalloc(nx * sizeof *x), *w = xmalloc(nw * sizeof *w);
    float *bias = xmalloc((size_t)out * sizeof *bias);
    double *ref = xmalloc(ny * sizeof *ref);
    rng_fill(x, nx, -1.0f, 1.0f);
    rng_fill(w, nw, -1.0f, 1.0f);
    rng_fill(bias, (size_t)out, -1.0f, 1.0f);
    if (specials) {
        w[(size_t)in + 3] = INFINITY;
        w[2 * (size_t)in + 5] = NAN;
        bias[out - 1] = -INFINITY;
        if (n > 1) sprinkle_nonfinite(x + in, (size_t)in, 100);
    }
    for (int b = 0; b < n; b++)
        for (int o = 0; o < out; o++) {
            double acc = with_bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++)
                acc += (double)x[(size_t)b * in + i] * (double)w[(size_t)o * in + i];
            ref[(size_t)b * out + o] = act_ref(act, acc, slope);
        }
    cl_mem bx = upload(cl, x, nx, "x"), bw = upload(cl, w, nw, "w");
    cl_mem bb = with_bias ? upload(cl, bias, (size_t)out, "bias") : NULL;
    cl_mem by = upload(cl, NULL, ny, "y");
    CHECK_OK(cnn_op_linear(cl, n, in, out, bx, bw, bb, act, slope, by, "test_fc"));
    finish(cl);
    download_check(cl, by, ny, ref, mm_atol((size_t)in), 1e-4, what);
    release(bx), release(bw), release(bb), release(by);
    free(x), free(w), free(bias), free(ref);
}

static void test_linear(cnn_cl *cl)
{
    rng_seed(777);
    /* batch 1: the GEMV kernel (work-group 64 striding over `in`) */
    run_linear_case(cl, 1, 1000, 37, 1, CNN_ACT_RELU, 0, 0);
    run_linear_case(cl, 1, 1000, 37, 0, CNN_ACT_NONE, 0, 0);
    run_linear_case(cl, 1, 1000, 37, 0, CNN_ACT_RELU, 0, 0);
    run_linear_case(cl, 1, 64, 5, 1, CNN_ACT_NONE, 0, 0);
    run_linear_case(cl, 1, 30, 3, 1, CNN_ACT_TANH, 0, 0);  /* in < work-group */
    run_linear_case(cl, 1, 1, 7, 1, CNN_ACT_NONE, 0, 0);   /* in = 1 */
    run_linear_case(cl, 1, 577, 130, 1, CNN_ACT_LEAKY_RELU, 0.1f, 0);
    /* batch 4: CLBlast GEMM with B transposed */
    run_linear_case(cl, 4, 1000, 37, 1, CNN_ACT_RELU, 0, 0);
    run_linear_case(cl, 4, 1000, 37, 0, CNN_ACT_NONE, 0, 0);
    run_linear_case(cl, 4, 300, 37, 0, CNN_ACT_RELU, 0, 0);
    run_linear_case(cl, 4, 577, 130, 1, CNN_ACT_SIGMOID, 0, 0);
    run_linear_case(cl, 3, 9, 1, 1, CNN_ACT_NONE, 0, 0);
    /* NaN and Inf: the GEMV (batch 1) and the GEMM (batch 4), through relu */
    run_linear_case(cl, 1, 577, 130, 1, CNN_ACT_RELU, 0, 1);
    run_linear_case(cl, 4, 577, 130, 1, CNN_ACT_RELU, 0, 1);
}

/* ---------------------------------------------------------- elementwise --- */

static const cnn_act ALL_ACTS[] = {CNN_ACT_NONE, CNN_ACT_RELU,      CNN_ACT_RELU6, CNN_ACT_LEAKY_RELU,
                                   CNN_ACT_SIGMOID, CNN_ACT_TANH, CNN_ACT_HARDSWISH, CNN_ACT_SILU,
                                   CNN_ACT_GELU, CNN_ACT_GELU_TANH};
#define N_ACTS (sizeof ALL_ACTS / sizeof ALL_ACTS[0])

static void test_act(cnn_cl *cl)
{
    enum { N = 1000 }; /* not a multiple of the work-group */
    float x[N];
    double ref[N];
    rng_seed(99);
    rng_fill(x, N, -8.0f, 8.0f); /* covers relu6's clip and hardswish's three pieces */
    for (size_t a = 0; a < N_ACTS; a++) {
        cnn_act act = ALL_ACTS[a];
        float slope = act == CNN_ACT_LEAKY_RELU ? 0.1f : 0.0f;
        for (int i = 0; i < N; i++) ref[i] = act_ref(act, x[i], slope);
        char what[64];
        /* out of place */
        snprintf(what, sizeof what, "act %s", act_name(act));
        cl_mem bx = upload(cl, x, N, "x"), by = upload(cl, NULL, N, "y");
        CHECK_OK(cnn_op_act(cl, act, slope, bx, by, N, "test_act"));
        download_check(cl, by, N, ref, 1e-6, 1e-5, what);
        /* in place */
        snprintf(what, sizeof what, "act %s in place", act_name(act));
        CHECK_OK(cnn_op_act(cl, act, slope, bx, bx, N, "test_act"));
        download_check(cl, bx, N, ref, 1e-6, 1e-5, what);
        release(bx), release(by);
    }
    /* A different leaky slope reaches the kernel. */
    for (int i = 0; i < N; i++) ref[i] = act_ref(CNN_ACT_LEAKY_RELU, x[i], 0.25);
    cl_mem bx = upload(cl, x, N, "x"), by = upload(cl, NULL, N, "y");
    CHECK_OK(cnn_op_act(cl, CNN_ACT_LEAKY_RELU, 0.25f, bx, by, N, "test_act"));
    download_check(cl, by, N, ref, 1e-6, 1e-5, "act leaky_relu slope 0.25");
    release(bx), release(by);
}

/* Batch-norm form: scale = gamma / sqrt(var + eps), shift = beta - mean * scale. */
static void test_affine(cnn_cl *cl)
{
    enum { NB = 3, C = 5, PLANE = 7 * 9, COUNT = NB * C * PLANE };
    static float x[COUNT];
    static double ref[COUNT];
    float scale[C], shift[C];
    rng_seed(2024);
    rng_fill(x, COUNT, -3.0f, 3.0f);
    for (int c = 0; c < C; c++) {
        double gamma = rng_uniform(0.5f, 1.5f), beta = rng_uniform(-1.0f, 1.0f);
        double mean = rng_uniform(-1.0f, 1.0f), var = rng_uniform(0.1f, 2.0f);
        scale[c] = (float)(gamma / sqrt(var + 1e-5));
        shift[c] = (float)(beta - mean * scale[c]);
    }
    for (size_t a = 0; a < N_ACTS; a++) {
        cnn_act act = ALL_ACTS[a];
        float slope = act == CNN_ACT_LEAKY_RELU ? 0.1f : 0.0f;
        for (int with_scale = 0; with_scale < 2; with_scale++) {
            for (int i = 0; i < COUNT; i++) {
                int c = (i / PLANE) % C;
                double v = (double)x[i] * (with_scale ? (double)scale[c] : 1.0) + (double)shift[c];
                ref[i] = act_ref(act, v, slope);
            }
            char what[96];
            snprintf(what, sizeof what, "affine_act %s %s", with_scale ? "scale+shift" : "shift",
                     act_name(act));
            cl_mem bx = upload(cl, x, COUNT, "x"), by = upload(cl, NULL, COUNT, "y");
            cl_mem bsc = with_scale ? upload(cl, scale, C, "scale") : NULL;
            cl_mem bsh = upload(cl, shift, C, "shift");
            CHECK_OK(cnn_op_affine_act(cl, bx, by, bsc, bsh, COUNT, PLANE, C, act, slope, "test_bn"));
            download_check(cl, by, COUNT, ref, 1e-6, 1e-5, what);
            snprintf(what, sizeof what, "affine_act %s %s in place",
                     with_scale ? "scale+shift" : "shift", act_name(act));
            CHECK_OK(cnn_op_affine_act(cl, bx, bx, bsc, bsh, COUNT, PLANE, C, act, slope, "test_bn"));
            download_check(cl, bx, COUNT, ref, 1e-6, 1e-5, what);
            release(bx), release(by), release(bsc), release(bsh);
        }
    }
    /* Flattened [N, C] with plane 1 (linear bias). */
    enum { FN = 4, FC = 37 };
    float fx[FN * FC], fb[FC];
    double fref[FN * FC];
    rng_fill(fx, FN * FC, -1.0f, 1.0f);
    rng_fill(fb, FC, -1.0f, 1.0f);
    for (int i = 0; i < FN * FC; i++) fref[i] = (double)fx[i] + fb[i % FC];
    cl_mem bx = upload(cl, fx, FN * FC, "x"), by = upload(cl, NULL, FN * FC, "y");
    cl_mem bb = upload(cl, fb, FC, "bias");
    CHECK_OK(cnn_op_affine_act(cl, bx, by, NULL, bb, FN * FC, 1, FC, CNN_ACT_NONE, 0, "test_fc"));
    download_check(cl, by, FN * FC, fref, 1e-6, 1e-5, "affine_act plane 1");
    release(bx), release(by), release(bb);
}

static void test_add(cnn_cl *cl)
{
    enum { N = 1237 };
    static float a[N], b[N];
    static double ref[N];
    rng_seed(5);
    rng_fill(a, N, -1.0f, 1.0f);
    rng_fill(b, N, -1.0f, 1.0f);
    for (int i = 0; i < N; i++) ref[i] = (double)a[i] + b[i];
    cl_mem ba = upload(cl, a, N, "a"), bb = upload(cl, b, N, "b"), by = upload(cl, NULL, N, "y");
    CHECK_OK(cnn_op_add(cl, ba, bb, by, N, "test_add"));
    download_check(cl, by, N, ref, 1e-6, 1e-5, "add");
    /* in place into a (residual connections) */
    CHECK_OK(cnn_op_add(cl, ba, bb, ba, N, "test_add"));
    download_check(cl, ba, N, ref, 1e-6, 1e-5, "add in place");
    release(ba), release(bb), release(by);
    /* with the activation after it fused (residual add + ReLU) */
    fill_nonzero(a, N, -1.0f, 1.0f);
    fill_nonzero(b, N, -1.0f, 1.0f);
    ba = upload(cl, a, N, "a"), bb = upload(cl, b, N, "b"), by = upload(cl, NULL, N, "y");
    for (size_t t = 0; t < sizeof ALL_ACTS / sizeof ALL_ACTS[0]; t++) {
        cnn_act act = ALL_ACTS[t];
        for (int i = 0; i < N; i++) ref[i] = act_ref(act, (double)a[i] + b[i], 0.1);
        char what[64];
        snprintf(what, sizeof what, "add + %s", act_name(act));
        CHECK_OK(cnn_op_add_act(cl, ba, bb, by, N, act, 0.1f, "test_add"));
        download_check(cl, by, N, ref, 1e-6, 1e-5, what);
    }
    release(ba), release(bb), release(by);
}

/* NaN and +-Inf through every activation, alone and in the fused forms
 * (scale + shift as batch norm, a shift that is itself NaN or Inf, a
 * residual add), against act_ref's PyTorch semantics: NaN exactly where
 * the reference has NaN, the same infinity where it has one. */
static void test_act_nonfinite(cnn_cl *cl)
{
    enum { NB = 2, C = 6, PLANE = 7 * 13, COUNT = NB * C * PLANE };
    static float x[COUNT], b[COUNT];
    static double ref[COUNT];
    float scale[C], shift[C];
    rng_seed(4242);
    fill_nonzero(x, COUNT, -8.0f, 8.0f);
    sprinkle_nonfinite(x, COUNT, 9);
    fill_nonzero(b, COUNT, -1.0f, 1.0f);
    for (int c = 0; c < C; c++) {
        scale[c] = rng_uniform(0.5f, 1.5f) * (c % 2 ? -1.0f : 1.0f); /* a negative scale flips an Inf */
        shift[c] = rng_uniform(-1.0f, 1.0f);
    }
    shift[1] = NAN;
    shift[4] = INFINITY;
    shift[5] = -INFINITY;
    for (size_t a = 0; a < N_ACTS; a++) {
        cnn_act act = ALL_ACTS[a];
        float slope = act == CNN_ACT_LEAKY_RELU ? 0.1f : 0.0f;
        char what[96];
        cl_mem bx = upload(cl, x, COUNT, "x"), by = upload(cl, NULL, COUNT, "y");
        for (int i = 0; i < COUNT; i++) ref[i] = act_ref(act, x[i], slope);
        snprintf(what, sizeof what, "act %s on NaN/Inf", act_name(act));
        CHECK_OK(cnn_op_act(cl, act, slope, bx, by, COUNT, "test_act_nf"));
        download_check(cl, by, COUNT, ref, 1e-6, 1e-5, what);

        cl_mem bsc = upload(cl, scale, C, "scale"), bsh = upload(cl, shift, C, "shift");
        for (int i = 0; i < COUNT; i++) {
            int c = (i / PLANE) % C;
            ref[i] = act_ref(act, (double)x[i] * scale[c] + shift[c], slope);
        }
        snprintf(what, sizeof what, "affine_act %s on NaN/Inf", act_name(act));
        CHECK_OK(cnn_op_affine_act(cl, bx, by, bsc, bsh, COUNT, PLANE, C, act, slope, "test_act_nf"));
        download_check(cl, by, COUNT, ref, 1e-6, 1e-5, what);
        for (int i = 0; i < COUNT; i++) ref[i] = act_ref(act, (double)x[i] + shift[(i / PLANE) % C], slope);
        snprintf(what, sizeof what, "bias_act %s on NaN/Inf", act_name(act));
        CHECK_OK(cnn_op_affine_act(cl, bx, by, NULL, bsh, COUNT, PLANE, C, act, slope, "test_act_nf"));
        download_check(cl, by, COUNT, ref, 1e-6, 1e-5, what);

        cl_mem bb = upload(cl, b, COUNT, "b");
        for (int i = 0; i < COUNT; i++) ref[i] = act_ref(act, (double)x[i] + b[i], slope);
        snprintf(what, sizeof what, "add + %s on NaN/Inf", act_name(act));
        CHECK_OK(cnn_op_add_act(cl, bx, bb, by, COUNT, act, slope, "test_act_nf"));
        download_check(cl, by, COUNT, ref, 1e-6, 1e-5, what);
        release(bx), release(by), release(bsc), release(bsh), release(bb);
    }
}

static void test_zero(cnn_cl *cl)
{
    /* lengths around the 4-float step, on NaN poison, guard intact */
    static const size_t lens[] = {1, 3, 4, 5, 1237, 4096};
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        size_t n = lens[t];
        double *ref = xmalloc(n * sizeof *ref);
        for (size_t i = 0; i < n; i++) ref[i] = 0.0;
        cl_mem b = upload(cl, NULL, n, "zero");
        CHECK_OK(cnn_op_zero(cl, b, n, "test_zero"));
        char what[48];
        snprintf(what, sizeof what, "zero %zu", n);
        download_check(cl, b, n, ref, 0.0, 0.0, what);
        release(b);
        free(ref);
    }
}

/* -------------------------------------------------------------- errors --- */

static int is_invalid_msg(const char *msg)
{
    return strstr(msg, "CL_INVALID") != NULL || strstr(msg, "CLBlastInvalid") != NULL;
}

static void test_errors(cnn_cl *cl)
{
    /* Pointwise conv hands x straight to CLBlast, which validates buffers
     * and reports its own code (CLBlastInvalidMatrixB for a NULL B, not a
     * CL_INVALID_* name).  The kernel paths cannot be probed this way: a NULL
     * cl_mem is legal in clSetKernelArg and the kernel would fault on the
     * device, and PoCL 3.1 accepts a buffer of another context unchecked. */
    cnn_conv_geom g = {.ci = 4, .hi = 5, .wi = 5, .co = 3, .ho = 5, .wo = 5, .kh = 1, .kw = 1,
                       .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1};
    float w[12];
    rng_fill(w, 12, -1.0f, 1.0f);
    cl_mem bw = upload(cl, w, 12, "w"), by = upload(cl, NULL, 3 * 25, "y");
    cl_mem bs = upload(cl, NULL, 1, "scratch");
    cnn_error_clear();
    int s = cnn_op_conv2d(cl, &g, 1, NULL, bw, NULL, CNN_ACT_NONE, 0, by, bs, "conv_err_7");
    const char *msg = cnn_error_message();
    CHECK(s == CNN_ERR_DEVICE, "conv with NULL x returned %d", s);
    CHECK(is_invalid_msg(msg), "message lacks CL_INVALID/CLBlastInvalid: %s", msg);
    CHECK(strstr(msg, "conv_err_7") != NULL, "message lacks the layer name: %s", msg);

    /* Same for linear at batch 4 (CLBlast GEMM). */
    cl_mem fw = upload(cl, w, 12, "w"), fy = upload(cl, NULL, 4 * 3, "y");
    cnn_error_clear();
    s = cnn_op_linear(cl, 4, 4, 3, NULL, fw, NULL, CNN_ACT_NONE, 0, fy, "fc_err_8");
    msg = cnn_error_message();
    CHECK(s == CNN_ERR_DEVICE, "linear with NULL x returned %d", s);
    CHECK(is_invalid_msg(msg), "message lacks CL_INVALID/CLBlastInvalid: %s", msg);
    CHECK(strstr(msg, "fc_err_8") != NULL, "message lacks the layer name: %s", msg);
    finish(cl);
    release(bw), release(by), release(bs), release(fw), release(fy);
}

int main(void)
{
    cnn_cl cl;
    CHECK_OK(cnn_cl_init(&cl, NULL, NULL, false));
    if (!cl.ctx) return test_summary("test_conv");
    printf("device: %s (%s)\n", cl.device_name, cl.platform_name);
    cnn_blas_apply_defaults(&cl);
    test_gemm(&cl);
    test_conv(&cl);
    test_linear(&cl);
    test_act(&cl);
    test_affine(&cl);
    test_add(&cl);
    test_act_nonfinite(&cl);
    test_zero(&cl);
    test_errors(&cl);
    cnn_cl_free(&cl);
    return test_summary("test_conv");
}
