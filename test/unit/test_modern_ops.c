/* The ops of modern CNNs (ops.h, grad.h): clamp (hardsigmoid, clip),
 * broadcasting add/sub/mul/div, layer norm over channels, global max
 * pooling, channel selection (slice, shuffle), pad and resize, each against
 * a plain C reference in double precision on random data that is never
 * zero, forward and backward.
 *
 * Every case runs four checks:
 *  1. forward: the device output (poisoned with NaN before) against the
 *     double forward;
 *  2. backward: dx pre-filled with random values, the device backward must
 *     give dx_before + the double reference backward (written as the
 *     transpose of the forward: each output gradient scattered along the
 *     taps it came from), and the floats after dx (a guard) must survive;
 *  3. finite differences in double: for sampled elements e,
 *     (f(x + h e) - f(x - h e)) / 2h of f = <dy, forward_double(x)> with
 *     h = 1e-6 |x_e| against the device gradient from dx = 0; this checks
 *     the reference backward's formula and the device at once;
 *  4. the inputs of the backward are left unchanged.
 *
 * Tolerances (|got - want| <= atol + rtol |want|): forwards and backwards
 * are a few float operations per element, or a sum of at most a few dozen
 * (layer norm over 7 channels, a [C, 1, 1] operand's gradient over H x W,
 * a resize gradient over the outputs reading a pixel): atol 1e-5, rtol
 * 1e-5 (division within 2.5 ulp in OpenCL C, sqrt within 3).  Finite
 * differences: the double estimate is exact to ~1e-9, the device gradient
 * is float: atol 3e-5, rtol 1e-4, far below a missed or misrouted term
 * (~0.1).  Kinks (clamp bounds, max ties) are away from the data by far
 * more than h.  NaN and Inf: forwards keep them as PyTorch does, matched
 * exactly (close_enough_nf). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "ops/grad.h"
#include "ops/ops.h"

#include <string.h>

#define GUARD 16
#define SENTINEL 12345.0f
#define ATOL 1e-5
#define RTOL 1e-5
#define FD_ATOL 3e-5
#define FD_RTOL 1e-4

static cnn_cl g_cl;

static float *randf(size_t n, float lo, float hi)
{
    float *x = xmalloc(n * sizeof *x);
    fill_nonzero(x, n, lo, hi);
    return x;
}

/* n floats on the device (NULL: NaN), then GUARD sentinels. */
static cl_mem dev(const float *h, size_t n)
{
    float *tmp = xmalloc((n + GUARD) * sizeof *tmp);
    for (size_t i = 0; i < n + GUARD; i++) tmp[i] = i < n ? (h ? h[i] : NAN) : SENTINEL;
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, (n + GUARD) * sizeof *tmp, &b, "test buffer"));
    if (b) CHECK_OK(cnn_cl_write(&g_cl, b, 0, (n + GUARD) * sizeof *tmp, tmp, "test buffer"));
    free(tmp);
    return b;
}

static void rel(cl_mem b)
{
    if (b) clReleaseMemObject(b);
}

/* The n floats of b (after the queue drains), the guard checked. */
static float *host(cl_mem b, size_t n, const char *what)
{
    float *h = xmalloc((n + GUARD) * sizeof *h);
    CHECK_OK(cnn_cl_read(&g_cl, b, 0, (n + GUARD) * sizeof *h, h, what));
    int ok = 1;
    for (size_t i = n; i < n + GUARD; i++) ok &= h[i] == SENTINEL;
    CHECK(ok, "%s: wrote past the end of its buffer", what);
    return h;
}

static void expect(cl_mem b, const double *ref, size_t n, double atol, double rtol, const char *what)
{
    float *got = host(b, n, what);
    CHECK(close_enough_nf(got, ref, n, atol, rtol, what), "%s differs from the double reference", what);
    free(got);
}

/* ---------------------------------------------------------- the harness --- */

/* One op under test as a function of one input x (the other operands, if
 * any, fixed in ctx). */
typedef struct op_case {
    const char *what;
    const void *ctx;
    size_t nx, ny;
    void (*fwd_ref)(const void *ctx, const double *x, double *y);
    void (*bwd_ref)(const void *ctx, const double *x, const double *dy, double *dx); /* dx += */
    int (*fwd_dev)(const void *ctx, cl_mem x, cl_mem y);
    int (*bwd_dev)(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx); /* dx += */
} op_case;

static double *widen(const float *x, size_t n)
{
    double *d = xmalloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static double dot(const float *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Finite differences in double of <dy, fwd_ref(x)> at ~12 elements
 * (first, last and a spread) against dx. */
static void fd_double(const op_case *c, const float *x, const float *dy, const float *dx)
{
    double *xd = widen(x, c->nx), *y = xmalloc(c->ny * sizeof *y);
    int bad = 0, tried = 0;
    for (size_t t = 0; t < 12 && t < c->nx; t++) {
        size_t e = t == 0 ? 0 : t == 1 ? c->nx - 1 : (t * 7919 + 13) % c->nx;
        double h = 1e-6 * (fabs(xd[e]) > 1 ? fabs(xd[e]) : 1), keep = xd[e], f[2];
        for (int s = 0; s < 2; s++) {
            xd[e] = keep + (s ? -h : h);
            c->fwd_ref(c->ctx, xd, y);
            f[s] = dot(dy, y, c->ny);
        }
        xd[e] = keep;
        double fd = (f[0] - f[1]) / (2 * h), err = fabs(fd - dx[e]);
        tried++;
        if (!(err <= FD_ATOL + FD_RTOL * fabs(fd))) {
            if (!bad) fprintf(stderr, "  %s: finite difference at [%zu] %.9g, device gradient %.9g\n", c->what, e, fd,
                              (double)dx[e]);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %d of %d finite differences (double) disagree with the device gradient", c->what, bad,
          tried);
    free(xd), free(y);
}

static void run_case(const op_case *c, const float *x)
{
    char what[160];
    double *xd = widen(x, c->nx), *ref = xmalloc((c->ny > c->nx ? c->ny : c->nx) * sizeof *ref);
    /* 1. forward */
    c->fwd_ref(c->ctx, xd, ref);
    cl_mem bx = dev(x, c->nx), by = dev(NULL, c->ny);
    CHECK_OK(c->fwd_dev(c->ctx, bx, by));
    snprintf(what, sizeof what, "%s forward", c->what);
    expect(by, ref, c->ny, ATOL, RTOL, what);
    if (!c->bwd_dev) {
        rel(bx), rel(by);
        free(xd), free(ref);
        return;
    }
    /* 2. backward onto random dx */
    float *dy = randf(c->ny, -1, 1), *before = randf(c->nx, -1, 1);
    double *dyd = widen(dy, c->ny);
    for (size_t i = 0; i < c->nx; i++) ref[i] = before[i];
    c->bwd_ref(c->ctx, xd, dyd, ref);
    cl_mem bdy = dev(dy, c->ny), bdx = dev(before, c->nx);
    CHECK_OK(c->bwd_dev(c->ctx, bx, bdy, bdx));
    snprintf(what, sizeof what, "%s backward", c->what);
    expect(bdx, ref, c->nx, ATOL, RTOL, what);
    /* 3. finite differences from dx = 0 */
    CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, c->nx, "fd"));
    CHECK_OK(c->bwd_dev(c->ctx, bx, bdy, bdx));
    float *dx = host(bdx, c->nx, c->what);
    fd_double(c, x, dy, dx);
    /* 4. inputs untouched */
    float *xa = host(bx, c->nx, c->what), *dya = host(bdy, c->ny, c->what);
    CHECK(!memcmp(xa, x, c->nx * sizeof *x) && !memcmp(dya, dy, c->ny * sizeof *dy), "%s: an input changed",
          c->what);
    rel(bx), rel(by), rel(bdy), rel(bdx);
    free(xd), free(ref), free(dy), free(before), free(dyd), free(dx), free(xa), free(dya);
}

/* --------------------------------------------------------------- clamp --- */

typedef struct clamp_ctx {
    size_t n;
    float a, b, lo, hi;
    bool inclusive;
} clamp_ctx;

static double clamp_val(const clamp_ctx *k, double x)
{
    double v = (double)k->a * x + k->b;
    if (isnan(v)) return v;
    return v < k->lo ? k->lo : v > k->hi ? k->hi : v;
}

static void clamp_fwd_ref(const void *ctx, const double *x, double *y)
{
    const clamp_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) y[i] = clamp_val(k, x[i]);
}

static void clamp_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx)
{
    const clamp_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) {
        double v = (double)k->a * x[i] + k->b;
        bool pass = k->inclusive ? v >= k->lo && v <= k->hi : v > k->lo && v < k->hi;
        dx[i] += pass ? dy[i] * k->a : 0.0;
    }
}

static int clamp_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const clamp_ctx *k = ctx;
    return cnn_op_clamp(&g_cl, x, y, k->n, k->a, k->b, k->lo, k->hi, "test clamp");
}

static int clamp_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    const clamp_ctx *k = ctx;
    return cnn_grad_clamp(&g_cl, x, dy, dx, k->n, k->a, k->b, k->lo, k->hi, k->inclusive, "test clamp");
}

static void test_clamp(void)
{
    enum { N = 1000 };
    static const clamp_ctx cases[] = {
        {N, 1.0f / 6.0f, 0.5f, 0.0f, 1.0f, false}, /* F.hardsigmoid */
        {N, 0.2f, 0.5f, 0.0f, 1.0f, false},        /* ONNX HardSigmoid's defaults */
        {N, 1.0f, 0.0f, -1.5f, 2.0f, true},        /* clip */
        {N, 1.0f, 0.0f, -INFINITY, 0.5f, true},    /* clip, max only */
    };
    static const char *names[] = {"hardsigmoid", "hardsigmoid 0.2", "clip [-1.5, 2]", "clip max 0.5"};
    rng_seed(31);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        /* away from the kinks by more than the finite-difference step */
        float *x = xmalloc(N * sizeof *x);
        for (int i = 0; i < N; i++) {
            float v;
            double lo, hi;
            do {
                v = rng_uniform(-6, 6);
                lo = fabs((double)cases[t].a * v + cases[t].b - cases[t].lo);
                hi = fabs((double)cases[t].a * v + cases[t].b - cases[t].hi);
            } while (fabsf(v) < 1e-3f || lo < 1e-3 || hi < 1e-3);
            x[i] = v;
        }
        op_case c = {names[t], &cases[t], N, N, clamp_fwd_ref, clamp_bwd_ref, clamp_fwd, clamp_bwd};
        run_case(&c, x);
        /* NaN and +-Inf: NaN stays NaN, infinities clamp (forward) */
        sprinkle_nonfinite(x, N, 7);
        char what[64];
        snprintf(what, sizeof what, "%s NaN/Inf", names[t]);
        op_case cn = {what, &cases[t], N, N, clamp_fwd_ref, NULL, clamp_fwd, NULL};
        run_case(&cn, x);
        free(x);
    }
    /* clip's bounds pass the gradient (torch.clamp), hardsigmoid's block it */
    float xb[4] = {-1.5f, 2.0f, -3.0f, 3.0f}, dyb[4] = {0.25f, -0.5f, 0.75f, 1.0f};
    cl_mem bx = dev(xb, 4), bdy = dev(dyb, 4), bdx = dev(NULL, 4), bx2 = dev(xb + 2, 2), bdx2 = dev(NULL, 2);
    CHECK_OK(cnn_grad_zero(&g_cl, bdx, 0, 4, "bounds"));
    CHECK_OK(cnn_grad_zero(&g_cl, bdx2, 0, 2, "bounds"));
    CHECK_OK(cnn_grad_clamp(&g_cl, bx, bdy, bdx, 4, 1.0f, 0.0f, -1.5f, 2.0f, true, "clip bounds"));
    CHECK_OK(cnn_grad_clamp(&g_cl, bx2, bdy, bdx2, 2, 1.0f / 6.0f, 0.5f, 0.0f, 1.0f, false, "hardsigmoid bounds"));
    float *g = host(bdx, 4, "bounds"), *g2 = host(bdx2, 2, "bounds");
    CHECK(g[0] == 0.25f && g[1] == -0.5f && g[2] == 0.0f && g[3] == 0.0f && g2[0] == 0.0f && g2[1] == 0.0f,
          "gradient at the bounds: clip passes (%g %g; %g %g outside), hardsigmoid blocks (%g %g)", (double)g[0],
          (double)g[1], (double)g[2], (double)g[3], (double)g2[0], (double)g2[1]);
    free(g), free(g2);
    rel(bx), rel(bdy), rel(bdx), rel(bx2), rel(bdx2);
}

/* -------------------------------------------------------------- binary --- */

enum { BN = 2 }; /* images */

typedef struct bin_ctx {
    cnn_bin_geom g;
    int which;           /* the operand under test (x) */
    const float *other;  /* the other operand (NULL: the scalar) */
    cl_mem other_dev;
} bin_ctx;

static size_t operand_size(const cnn_bin_geom *g, int k)
{
    if (g->scalar[k]) return 0;
    return (size_t)(g->batched[k] ? BN : 1) * g->shape[k][0] * g->shape[k][1] * g->shape[k][2];
}

/* Operand k's element at output position (b, c, y, x). */
static double operand_at(const cnn_bin_geom *g, int k, const double *v, int b, int c, int y, int x)
{
    if (g->scalar[k]) return g->value;
    const int *d = g->shape[k];
    size_t i = (((size_t)(g->batched[k] ? b : 0) * d[0] + (d[0] == 1 ? 0 : c)) * d[1] + (d[1] == 1 ? 0 : y)) * d[2] +
               (d[2] == 1 ? 0 : x);
    return v[i];
}

static size_t operand_index(const cnn_bin_geom *g, int k, int b, int c, int y, int x)
{
    const int *d = g->shape[k];
    return (((size_t)b * d[0] + (d[0] == 1 ? 0 : c)) * d[1] + (d[1] == 1 ? 0 : y)) * d[2] + (d[2] == 1 ? 0 : x);
}

static double bin_val(cnn_binop op, double a, double b)
{
    return op == CNN_BIN_ADD ? a + b : op == CNN_BIN_SUB ? a - b : op == CNN_BIN_MUL ? a * b : a / b;
}

/* Both operands as doubles: x as operand `which`, the other from ctx. */
static void bin_operands(const bin_ctx *k, const double *x, const double **a, const double **b, double **tmp)
{
    const cnn_bin_geom *g = &k->g;
    size_t no = operand_size(g, 1 - k->which);
    *tmp = no ? xmalloc(no * sizeof **tmp) : NULL;
    for (size_t i = 0; i < no; i++) (*tmp)[i] = k->other[i];
    *a = k->which == 0 ? x : *tmp;
    *b = k->which == 0 ? *tmp : x;
}

static void bin_fwd_ref(const void *ctx, const double *x, double *y)
{
    const bin_ctx *k = ctx;
    const cnn_bin_geom *g = &k->g;
    const double *a, *b;
    double *tmp;
    bin_operands(k, x, &a, &b, &tmp);
    size_t i = 0;
    for (int n = 0; n < BN; n++)
        for (int c = 0; c < g->c; c++)
            for (int yy = 0; yy < g->h; yy++)
                for (int xx = 0; xx < g->w; xx++, i++)
                    y[i] = bin_val(g->op, operand_at(g, 0, a, n, c, yy, xx), operand_at(g, 1, b, n, c, yy, xx));
    free(tmp);
}

static void bin_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx)
{
    const bin_ctx *k = ctx;
    const cnn_bin_geom *g = &k->g;
    const double *a, *b;
    double *tmp;
    bin_operands(k, x, &a, &b, &tmp);
    size_t i = 0;
    for (int n = 0; n < BN; n++)
        for (int c = 0; c < g->c; c++)
            for (int yy = 0; yy < g->h; yy++)
                for (int xx = 0; xx < g->w; xx++, i++) {
                    double va = operand_at(g, 0, a, n, c, yy, xx), vb = operand_at(g, 1, b, n, c, yy, xx), d;
                    switch (g->op) {
                    case CNN_BIN_ADD: d = dy[i]; break;
                    case CNN_BIN_SUB: d = k->which ? -dy[i] : dy[i]; break;
                    case CNN_BIN_MUL: d = dy[i] * (k->which ? va : vb); break;
                    default: d = k->which ? -dy[i] * va / (vb * vb) : dy[i] / vb; break;
                    }
                    dx[operand_index(g, k->which, n, c, yy, xx)] += d;
                }
    free(tmp);
}

static int bin_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const bin_ctx *k = ctx;
    return cnn_op_binary(&g_cl, &k->g, BN, k->which ? k->other_dev : x, k->which ? x : k->other_dev, y,
                         CNN_ACT_NONE, 0.0f, "test binary");
}

static int bin_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    const bin_ctx *k = ctx;
    return cnn_grad_binary(&g_cl, &k->g, BN, k->which, k->which ? k->other_dev : x, k->which ? x : k->other_dev,
                           dy, dx, "test binary");
}

typedef struct bin_shape {
    int a[3], b[3];
    bool batched_b, scalar_a, scalar_b;
    const char *what;
} bin_shape;

static void test_binary(void)
{
    static const bin_shape shapes[] = {
        {{4, 5, 6}, {4, 5, 6}, true, false, false, "same shape"},
        {{4, 5, 6}, {4, 1, 1}, true, false, false, "x * SE gate [C, 1, 1]"},
        {{4, 1, 1}, {4, 5, 6}, true, false, false, "gate [C, 1, 1] first"},
        {{4, 5, 6}, {1, 5, 6}, true, false, false, "[1, H, W]"},
        {{4, 1, 6}, {1, 5, 1}, true, false, false, "both broadcast"},
        {{1, 1, 1}, {4, 5, 6}, true, false, false, "[1, 1, 1] layer"},
        {{4, 5, 6}, {4, 1, 1}, false, false, false, "constant [C, 1, 1]"},
        {{4, 5, 6}, {4, 5, 6}, false, false, false, "constant of the output's shape"},
        {{4, 5, 6}, {1, 1, 1}, false, false, true, "value second"},
        {{1, 1, 1}, {4, 5, 6}, true, true, false, "value first"},
    };
    static const char *ops[] = {"add", "sub", "mul", "div"};
    rng_seed(77);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int op = 0; op < 4; op++) {
            const bin_shape *sh = &shapes[s];
            cnn_bin_geom g = {.op = (cnn_binop)op, .value = -1.75f};
            memcpy(g.shape[0], sh->a, sizeof sh->a);
            memcpy(g.shape[1], sh->b, sizeof sh->b);
            g.batched[0] = !sh->scalar_a;
            g.batched[1] = sh->batched_b && !sh->scalar_b;
            g.scalar[0] = sh->scalar_a;
            g.scalar[1] = sh->scalar_b;
            for (int i = 0; i < 3; i++) (&g.c)[i] = sh->a[i] > sh->b[i] ? sh->a[i] : sh->b[i];
            size_t ny = (size_t)BN * g.c * g.h * g.w;
            /* divisors in +-[0.5, 2]: away from 0 */
            float *ops_h[2];
            for (int k = 0; k < 2; k++) {
                size_t n = operand_size(&g, k);
                ops_h[k] = randf(n + 1, 0.5f, 2.0f); /* one more: a scalar's buffer is still passed */
                for (size_t i = 0; i < n; i++)
                    if (rng_uniform(0, 1) < 0.5f) ops_h[k][i] = -ops_h[k][i];
            }
            cl_mem bd[2] = {dev(ops_h[0], operand_size(&g, 0) + 1), dev(ops_h[1], operand_size(&g, 1) + 1)};
            for (int which = 0; which < 2; which++) {
                if (!g.batched[which]) continue; /* constants and scalars get no gradient */
                bin_ctx k = {g, which, g.scalar[1 - which] ? NULL : ops_h[1 - which], bd[1 - which]};
                char what[128];
                snprintf(what, sizeof what, "%s %s, operand %d", ops[op], sh->what, which);
                op_case c = {what, &k, operand_size(&g, which), ny, bin_fwd_ref, bin_bwd_ref, bin_fwd, bin_bwd};
                run_case(&c, ops_h[which]);
            }
            rel(bd[0]), rel(bd[1]);
            free(ops_h[0]), free(ops_h[1]);
        }
    /* a fused activation and NaN/Inf through the broadcast kernel */
    cnn_bin_geom g = {.op = CNN_BIN_MUL, .c = 4, .h = 5, .w = 6, .shape = {{4, 5, 6}, {4, 1, 1}},
                      .batched = {true, true}};
    size_t na = (size_t)BN * 120, nb = (size_t)BN * 4;
    float *a = randf(na, -3, 3), *b = randf(nb, -2, 2);
    sprinkle_nonfinite(a, na, 9);
    b[1] = NAN, b[2] = INFINITY;
    double *ref = xmalloc(na * sizeof *ref);
    for (size_t i = 0; i < na; i++) {
        double v = (double)a[i] * b[i / 30];
        ref[i] = v / (1.0 + exp(-v)); /* silu, NaN and Inf as PyTorch's formula gives them */
    }
    cl_mem ba = dev(a, na), bb = dev(b, nb), by = dev(NULL, na);
    CHECK_OK(cnn_op_binary(&g_cl, &g, BN, ba, bb, by, CNN_ACT_SILU, 0.0f, "mul silu"));
    expect(by, ref, na, ATOL, RTOL, "mul [C, 1, 1] + silu with NaN/Inf");
    rel(ba), rel(bb), rel(by);
    free(a), free(b), free(ref);
    /* operands that do not broadcast are refused, naming the layer */
    cnn_bin_geom bad = {.op = CNN_BIN_ADD, .c = 4, .h = 5, .w = 6, .shape = {{4, 5, 6}, {3, 1, 1}},
                        .batched = {true, true}};
    int st = cnn_op_binary(&g_cl, &bad, 1, NULL, NULL, NULL, CNN_ACT_NONE, 0.0f, "bad_bcast_7");
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "bad_bcast_7"), "refused: %d %s", st,
          cnn_error_message());
}

/* ----------------------------------------------------------- layernorm --- */

typedef struct ln_ctx {
    int n, c, plane;
    float eps;
    const float *w, *b; /* NULL: no affine */
    cl_mem wd, bd;
} ln_ctx;

static void ln_stats(const ln_ctx *k, const double *x, size_t base, double *mean, double *rstd)
{
    double m = 0, v = 0;
    for (int c = 0; c < k->c; c++) m += x[base + (size_t)c * k->plane];
    m /= k->c;
    for (int c = 0; c < k->c; c++) v += (x[base + (size_t)c * k->plane] - m) * (x[base + (size_t)c * k->plane] - m);
    *mean = m;
    *rstd = 1.0 / sqrt(v / k->c + k->eps);
}

static void ln_fwd_ref(const void *ctx, const double *x, double *y)
{
    const ln_ctx *k = ctx;
    for (int n = 0; n < k->n; n++)
        for (int p = 0; p < k->plane; p++) {
            size_t base = (size_t)n * k->c * k->plane + p;
            double m, r;
            ln_stats(k, x, base, &m, &r);
            for (int c = 0; c < k->c; c++) {
                size_t i = base + (size_t)c * k->plane;
                y[i] = (x[i] - m) * r * (k->w ? k->w[c] : 1.0) + (k->b ? k->b[c] : 0.0);
            }
        }
}

/* The textbook form: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w. */
static void ln_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx)
{
    const ln_ctx *k = ctx;
    for (int n = 0; n < k->n; n++)
        for (int p = 0; p < k->plane; p++) {
            size_t base = (size_t)n * k->c * k->plane + p;
            double m, r, s1 = 0, s2 = 0;
            ln_stats(k, x, base, &m, &r);
            for (int c = 0; c < k->c; c++) {
                size_t i = base + (size_t)c * k->plane;
                double g = dy[i] * (k->w ? k->w[c] : 1.0);
                s1 += g;
                s2 += g * (x[i] - m) * r;
            }
            for (int c = 0; c < k->c; c++) {
                size_t i = base + (size_t)c * k->plane;
                double g = dy[i] * (k->w ? k->w[c] : 1.0);
                dx[i] += r * (g - s1 / k->c - (x[i] - m) * r * s2 / k->c);
            }
        }
}

static int ln_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const ln_ctx *k = ctx;
    return cnn_op_layernorm(&g_cl, k->n, k->c, k->plane, k->eps, x, k->wd, k->bd, y, "test layernorm");
}

static int ln_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    const ln_ctx *k = ctx;
    return cnn_grad_layernorm(&g_cl, k->n, k->c, k->plane, k->eps, x, k->wd, dy, dx, "test layernorm");
}

static void test_layernorm(void)
{
    static const struct {
        int n, c, plane, affine;
        float eps, lo, hi;
        const char *what;
    } cases[] = {
        {2, 7, 15, 1, 1e-5f, -2, 2, "layernorm affine"},
        {2, 7, 15, 0, 1e-5f, -2, 2, "layernorm no affine"},
        {3, 96, 4, 1, 1e-6f, 1, 3, "layernorm 96 channels, offset mean (ConvNeXt)"},
        {4, 16, 1, 1, 1e-3f, -1, 1, "layernorm flat [C]"},
    };
    rng_seed(501);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        size_t nx = (size_t)cases[t].n * cases[t].c * cases[t].plane;
        float *x = randf(nx, cases[t].lo, cases[t].hi), *w = randf((size_t)cases[t].c, 0.5f, 1.5f),
              *b = randf((size_t)cases[t].c, -0.5f, 0.5f);
        ln_ctx k = {cases[t].n, cases[t].c, cases[t].plane, cases[t].eps, cases[t].affine ? w : NULL,
                    cases[t].affine ? b : NULL, NULL, NULL};
        if (cases[t].affine) k.wd = dev(w, (size_t)k.c), k.bd = dev(b, (size_t)k.c);
        op_case c = {cases[t].what, &k, nx, nx, ln_fwd_ref, ln_bwd_ref, ln_fwd, ln_bwd};
        run_case(&c, x);
        rel(k.wd), rel(k.bd);
        free(x), free(w), free(b);
    }
}

/* ------------------------------------------------------ global maxpool --- */

typedef struct gmp_ctx {
    int n, c, plane;
} gmp_ctx;

/* PyTorch's pick: the first maximum, or the last NaN. */
static size_t gmp_arg(const double *v, int plane)
{
    size_t arg = 0;
    double m = -INFINITY;
    for (int p = 0; p < plane; p++)
        if (v[p] > m || isnan(v[p])) m = v[p], arg = (size_t)p;
    return arg;
}

static void gmp_fwd_ref(const void *ctx, const double *x, double *y)
{
    const gmp_ctx *k = ctx;
    for (int i = 0; i < k->n * k->c; i++) y[i] = x[(size_t)i * k->plane + gmp_arg(x + (size_t)i * k->plane, k->plane)];
}

static void gmp_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx)
{
    const gmp_ctx *k = ctx;
    for (int i = 0; i < k->n * k->c; i++) dx[(size_t)i * k->plane + gmp_arg(x + (size_t)i * k->plane, k->plane)] += dy[i];
}

static int gmp_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const gmp_ctx *k = ctx;
    return cnn_op_global_maxpool(&g_cl, k->n, k->c, k->plane, x, y, "test global_maxpool");
}

static int gmp_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    const gmp_ctx *k = ctx;
    return cnn_grad_global_maxpool(&g_cl, k->n, k->c, k->plane, x, dy, dx, "test global_maxpool");
}

static void test_global_maxpool(void)
{
    rng_seed(8);
    gmp_ctx k = {2, 5, 7 * 9};
    size_t nx = (size_t)k.n * k.c * k.plane;
    float *x = randf(nx, -4, 4);
    op_case c = {"global_maxpool", &k, nx, (size_t)k.n * k.c, gmp_fwd_ref, gmp_bwd_ref, gmp_fwd, gmp_bwd};
    run_case(&c, x);
    sprinkle_nonfinite(x, nx, 20);
    op_case cn = {"global_maxpool NaN/Inf", &k, nx, (size_t)k.n * k.c, gmp_fwd_ref, NULL, gmp_fwd, NULL};
    run_case(&cn, x);
    free(x);
}

/* --------------------------------------------------- channel selection --- */

typedef struct chan_ctx {
    cnn_chan_map m;
    int n, plane;
} chan_ctx;

static int chan_src(const cnn_chan_map *m, int j) { return m->start + (j / m->groups) * m->step + (j % m->groups) * m->k; }

static void chan_fwd_ref(const void *ctx, const double *x, double *y)
{
    const chan_ctx *k = ctx;
    for (int n = 0; n < k->n; n++)
        for (int j = 0; j < k->m.cy; j++)
            for (int q = 0; q < k->plane; q++)
                y[((size_t)n * k->m.cy + j) * k->plane + q] = x[((size_t)n * k->m.cx + chan_src(&k->m, j)) * k->plane + q];
}

static void chan_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx)
{
    (void)x;
    const chan_ctx *k = ctx;
    for (int n = 0; n < k->n; n++)
        for (int j = 0; j < k->m.cy; j++)
            for (int q = 0; q < k->plane; q++)
                dx[((size_t)n * k->m.cx + chan_src(&k->m, j)) * k->plane + q] += dy[((size_t)n * k->m.cy + j) * k->plane + q];
}

static int chan_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const chan_ctx *k = ctx;
    return cnn_op_channel_gather(&g_cl, &k->m, k->n, k->plane, x, y, "test channels");
}

static int chan_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    (void)x;
    const chan_ctx *k = ctx;
    return cnn_grad_channel_gather(&g_cl, &k->m, k->n, k->plane, dy, dx, "test channels");
}

static void test_channels(void)
{
    static const chan_ctx cases[] = {
        {{10, 3, 1, 3, 1, 0}, 2, 35},   /* x[1:10:3] */
        {{10, 5, 5, 1, 1, 0}, 3, 6},    /* x[5:] (ShuffleNet's split) */
        {{12, 12, 0, 1, 3, 4}, 2, 35},  /* channel shuffle, 3 groups */
        {{8, 8, 0, 1, 2, 4}, 1, 1},     /* channel shuffle of a flat [8] */
    };
    static const char *names[] = {"slice 1:10:3", "slice 5:", "channel_shuffle 3", "channel_shuffle flat"};
    rng_seed(12);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        size_t nx = (size_t)cases[t].n * cases[t].m.cx * cases[t].plane;
        float *x = randf(nx, -1, 1);
        op_case c = {names[t], &cases[t], nx, (size_t)cases[t].n * cases[t].m.cy * cases[t].plane, chan_fwd_ref,
                     chan_bwd_ref, chan_fwd, chan_bwd};
        run_case(&c, x);
        free(x);
    }
    /* a map that reads past the channels is refused */
    cnn_chan_map bad = {10, 4, 2, 3, 1, 0};
    int st = cnn_op_channel_gather(&g_cl, &bad, 1, 4, NULL, NULL, "slice_bad_3");
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "slice_bad_3"), "refused: %d %s", st,
          cnn_error_message());
}

/* ----------------------------------------------------------------- pad --- */

typedef struct pad_ctx {
    cnn_pad_geom g;
    int n;
} pad_ctx;

/* F.pad's source index along an axis, -1 for the constant fill. */
static int pad_index(int o, int pad, int n, cnn_pad_mode mode)
{
    int i = o - pad;
    if (mode == CNN_PAD_REFLECT) return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
    if (mode == CNN_PAD_REPLICATE) return i < 0 ? 0 : i >= n ? n - 1 : i;
    return i >= 0 && i < n ? i : -1;
}

static void pad_walk(const pad_ctx *k, const double *x, double *y, const double *dy, double *dx)
{
    const cnn_pad_geom *g = &k->g;
    for (int nc = 0; nc < k->n * g->c; nc++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                int iy = pad_index(oy, g->pt, g->hi, g->mode), ix = pad_index(ox, g->pl, g->wi, g->mode);
                size_t o = ((size_t)nc * g->ho + oy) * g->wo + ox;
                size_t i = ((size_t)nc * g->hi + (iy < 0 ? 0 : iy)) * g->wi + (ix < 0 ? 0 : ix);
                bool in = iy >= 0 && ix >= 0;
                if (y) y[o] = in ? x[i] : g->value;
                if (dx && in) dx[i] += dy[o];
            }
}

static void pad_fwd_ref(const void *ctx, const double *x, double *y) { pad_walk(ctx, x, y, NULL, NULL); }
static void pad_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx) { pad_walk(ctx, x, NULL, dy, dx); }

static int pad_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const pad_ctx *k = ctx;
    return cnn_op_pad(&g_cl, &k->g, k->n, x, y, "test pad");
}

static int pad_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    (void)x;
    const pad_ctx *k = ctx;
    return cnn_grad_pad(&g_cl, &k->g, k->n, dy, dx, "test pad");
}

static void test_pad(void)
{
    /* [t, b, l, r] */
    static const int pads[][4] = {{2, 1, 0, 3}, {1, 1, 1, 1}, {0, 4, 5, 0}, {7, 2, 9, 1}};
    static const char *modes[] = {"constant", "reflect", "replicate"};
    rng_seed(64);
    for (int m = 0; m < 3; m++)
        for (size_t t = 0; t < sizeof pads / sizeof pads[0]; t++) {
            int hi = 5, wi = 6;
            if (m == CNN_PAD_REFLECT && (pads[t][0] >= hi || pads[t][1] >= hi || pads[t][2] >= wi || pads[t][3] >= wi))
                continue; /* F.pad refuses: reflect needs pad < size */
            pad_ctx k = {{3, hi, wi, hi + pads[t][0] + pads[t][1], wi + pads[t][2] + pads[t][3], pads[t][0],
                          pads[t][2], (cnn_pad_mode)m, 0.375f},
                         2};
            size_t nx = (size_t)k.n * k.g.c * hi * wi, ny = (size_t)k.n * k.g.c * k.g.ho * k.g.wo;
            float *x = randf(nx, -1, 1);
            char what[96];
            snprintf(what, sizeof what, "pad %s [%d, %d, %d, %d]", modes[m], pads[t][0], pads[t][1], pads[t][2],
                     pads[t][3]);
            op_case c = {what, &k, nx, ny, pad_fwd_ref, pad_bwd_ref, pad_fwd, pad_bwd};
            run_case(&c, x);
            free(x);
        }
}

/* -------------------------------------------------------------- resize --- */

typedef struct rs_ctx {
    cnn_resize_geom g;
    int n;
} rs_ctx;

/* PyTorch's index math (UpSample.h), float where it is float. */
static int nearest_index(int dst, int in, int out, float r)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    int s = (int)floorf((float)dst * r);
    return s < in - 1 ? s : in - 1;
}

static void linear_index(int dst, int in, float r, bool align, int *i0, int *i1, double *l0, double *l1)
{
    double s = align ? (double)r * dst : (double)r * (dst + 0.5) - 0.5;
    if (s < 0) s = 0;
    *i0 = (int)s;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = s - *i0;
    *l0 = 1 - *l1;
}

static void rs_walk(const rs_ctx *k, const double *x, double *y, const double *dy, double *dx)
{
    const cnn_resize_geom *g = &k->g;
    for (int nc = 0; nc < k->n * g->c; nc++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                size_t o = ((size_t)nc * g->ho + oy) * g->wo + ox, base = (size_t)nc * g->hi * g->wi;
                int ys[2], xs[2];
                double wy[2], wx[2];
                if (g->bilinear) {
                    linear_index(oy, g->hi, g->rh, g->align_corners, &ys[0], &ys[1], &wy[0], &wy[1]);
                    linear_index(ox, g->wi, g->rw, g->align_corners, &xs[0], &xs[1], &wx[0], &wx[1]);
                } else {
                    ys[0] = ys[1] = nearest_index(oy, g->hi, g->ho, g->rh);
                    xs[0] = xs[1] = nearest_index(ox, g->wi, g->wo, g->rw);
                    wy[0] = wx[0] = 1, wy[1] = wx[1] = 0;
                }
                double acc = 0;
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++) {
                        size_t i = base + (size_t)ys[a] * g->wi + xs[b];
                        if (y) acc += wy[a] * wx[b] * x[i];
                        if (dx) dx[i] += wy[a] * wx[b] * dy[o];
                    }
                if (y) y[o] = acc;
            }
}

static void rs_fwd_ref(const void *ctx, const double *x, double *y) { rs_walk(ctx, x, y, NULL, NULL); }
static void rs_bwd_ref(const void *ctx, const double *x, const double *dy, double *dx) { rs_walk(ctx, x, NULL, dy, dx); }

static int rs_fwd(const void *ctx, cl_mem x, cl_mem y)
{
    const rs_ctx *k = ctx;
    return cnn_op_resize(&g_cl, &k->g, k->n, x, y, "test resize");
}

static int rs_bwd(const void *ctx, cl_mem x, cl_mem dy, cl_mem dx)
{
    (void)x;
    const rs_ctx *k = ctx;
    return cnn_grad_resize(&g_cl, &k->g, k->n, dy, dx, "test resize");
}

static void test_resize(void)
{
    static const struct {
        int hi, wi, ho, wo;
        double sh, sw; /* scale factors given (0: sizes given) */
        bool bilinear, align;
    } cases[] = {
        {5, 6, 10, 12, 0, 0, false, false},    /* doubled: PyTorch's exact shift */
        {5, 6, 5, 6, 0, 0, false, false},      /* equal */
        {5, 6, 7, 4, 0, 0, false, false},      /* up and down */
        {5, 6, 7, 9, 1.5, 1.5, false, false},  /* scale 1.5: source scale 1 / 1.5 */
        {9, 8, 4, 3, 0, 0, false, false},      /* down */
        {5, 6, 15, 18, 3, 3, false, false},    /* scale 3 */
        {5, 6, 11, 13, 0, 0, true, false},     /* bilinear up */
        {9, 8, 4, 5, 0, 0, true, false},       /* bilinear down */
        {5, 6, 10, 12, 2, 2, true, false},     /* bilinear scale 2 */
        {5, 6, 11, 13, 0, 0, true, true},      /* align_corners */
        {9, 8, 4, 1, 0, 0, true, true},        /* align_corners, one output column */
        {1, 6, 3, 6, 0, 0, true, false},       /* one input row */
    };
    rng_seed(404);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        rs_ctx k = {{3, cases[t].hi, cases[t].wi, cases[t].ho, cases[t].wo, cases[t].bilinear, cases[t].align, 0, 0},
                    2};
        k.g.rh = cnn_resize_scale(k.g.hi, k.g.ho, cases[t].sh, k.g.align_corners);
        k.g.rw = cnn_resize_scale(k.g.wi, k.g.wo, cases[t].sw, k.g.align_corners);
        size_t nx = (size_t)k.n * k.g.c * k.g.hi * k.g.wi, ny = (size_t)k.n * k.g.c * k.g.ho * k.g.wo;
        float *x = randf(nx, -1, 1);
        char what[128];
        snprintf(what, sizeof what, "resize %s%s [%d, %d] -> [%d, %d]%s", cases[t].bilinear ? "bilinear" : "nearest",
                 cases[t].align ? " align_corners" : "", k.g.hi, k.g.wi, k.g.ho, k.g.wo,
                 cases[t].sh > 0 ? " (scale given)" : "");
        op_case c = {what, &k, nx, ny, rs_fwd_ref, rs_bwd_ref, rs_fwd, rs_bwd};
        run_case(&c, x);
        free(x);
    }
    /* the source scales PyTorch uses */
    CHECK(cnn_resize_scale(5, 7, 1.5, false) == (float)(1.0 / 1.5) && cnn_resize_scale(5, 7, 0, false) == 5.0f / 7.0f &&
              cnn_resize_scale(5, 11, 0, true) == 0.4f && cnn_resize_scale(5, 1, 0, true) == 0.0f,
          "resize source scales");
}

int main(void)
{
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    if (!g_cl.ctx) return test_summary("test_modern_ops");
    printf("device: %s (%s)\n", g_cl.device_name, g_cl.platform_name);
    test_clamp();
    test_binary();
    test_layernorm();
    test_global_maxpool();
    test_channels();
    test_pad();
    test_resize();
    int rc = test_summary("test_modern_ops");
    cnn_cl_free(&g_cl);
    return rc;
}
