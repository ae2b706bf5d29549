/* Pooling, softmax, LRN, concat and the no-resize preprocessing paths
 * against plain C references in double precision, on random non-zero data,
 * with every output poisoned with NaN before each run.
 *
 * Tolerances: max pool, concat and preprocessing without resize are exact
 * (no arithmetic, or integer arithmetic before one float normalisation,
 * 1e-6); float accumulations (avg pools, softmax, LRN) use atol 1e-6 and
 * rtol 1e-5: a handful of float adds, exp/pow within a few ulp.  With NaN,
 * +Inf and -Inf among the inputs the references follow PyTorch (a NaN in a
 * max-pool window wins; sums and softmax propagate them) and every NaN and
 * infinity of the reference must be matched exactly.
 *
 * `test_pool preprocess IN SH SW SC RH RW TOP LEFT C OH OW OUT` runs
 * cnn_op_preprocess on the raw uint8 HWC pixels of IN and writes the float
 * CHW result to OUT; test/ops/test_preprocess.py drives it against Pillow. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#define ATOL 1e-6
#define RTOL 1e-5

static cnn_cl g_cl;


static cl_mem upload(const float *h, size_t n)
{
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, n * sizeof *h, &b, "test input"));
    if (b) CHECK_OK(cnn_cl_write(&g_cl, b, 0, n * sizeof *h, h, "test input"));
    return b;
}

static void poison(cl_mem b, size_t n)
{
    float *nan = malloc(n * sizeof *nan);
    for (size_t i = 0; i < n; i++) nan[i] = NAN;
    CHECK_OK(cnn_cl_write(&g_cl, b, 0, n * sizeof *nan, nan, "poison"));
    free(nan);
}

static float *download(cl_mem b, size_t n)
{
    float *h = malloc(n * sizeof *h);
    CHECK_OK(cnn_cl_read(&g_cl, b, 0, n * sizeof *h, h, "test output"));
    return h;
}

/* ---- pooling ---- */

enum { PN = 2, PC = 3, PH = 7, PW = 9 };

/* Output size like PyTorch with asymmetric padding: floor or ceil, and in
 * ceil mode the last window must start inside the input or the left pad. */
static int pool_out(int in, int k, int s, int d, int p0, int p1, int ceil_mode)
{
    int span = in + p0 + p1 - d * (k - 1) - 1;
    if (span < 0) return 0;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    return o;
}

/* PyTorch's max_pool2d: -inf padding, and a NaN in the window wins.
 * Returns 0 when some window has no input tap (PyTorch refuses such
 * geometry; the test skips it). */
static int ref_maxpool(const cnn_pool_geom *g, const float *x, double *y)
{
    for (int nc = 0; nc < PN * g->c; nc++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                double m = -INFINITY;
                int taps = 0;
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++) {
                        int yy = oy * g->sh - g->pt + i * g->dh, xx = ox * g->sw - g->pl + j * g->dw;
                        if (yy < 0 || yy >= g->hi || xx < 0 || xx >= g->wi) continue;
                        double v = x[(nc * g->hi + yy) * g->wi + xx];
                        if (v > m || isnan(v)) m = v;
                        taps++;
                    }
                if (!taps) return 0;
                y[(nc * g->ho + oy) * g->wo + ox] = m;
            }
    return 1;
}

/* Taps of a dilated window along one axis inside [lo, hi). */
static int taps_in(int start, int k, int d, int lo, int hi)
{
    int n = 0;
    for (int i = 0; i < k; i++) n += start + i * d >= lo && start + i * d < hi;
    return n;
}

/* Dilation 1: PyTorch's avg_pool2d code literally (with pb/pr for its
 * symmetric pad at the far end).  Dilation 2 (ONNX-style, PyTorch has none):
 * the same rule counted tap by tap, which is what the kernel does. */
static void ref_avgpool(const cnn_pool_geom *g, const float *x, double *y)
{
    for (int nc = 0; nc < PN * g->c; nc++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                int hs = oy * g->sh - g->pt, ws = ox * g->sw - g->pl;
                double sum = 0;
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++) {
                        int yy = hs + i * g->dh, xx = ws + j * g->dw;
                        if (yy >= 0 && yy < g->hi && xx >= 0 && xx < g->wi)
                            sum += x[(nc * g->hi + yy) * g->wi + xx];
                    }
                double div;
                if (g->dh == 1 && g->dw == 1) {
                    int he = hs + g->kh < g->hi + g->pb ? hs + g->kh : g->hi + g->pb;
                    int we = ws + g->kw < g->wi + g->pr ? ws + g->kw : g->wi + g->pr;
                    int pool_size = (he - hs) * (we - ws);
                    int hs0 = hs > 0 ? hs : 0, ws0 = ws > 0 ? ws : 0;
                    int he0 = he < g->hi ? he : g->hi, we0 = we < g->wi ? we : g->wi;
                    if (hs0 >= he0 || ws0 >= we0) {
                        y[(nc * g->ho + oy) * g->wo + ox] = 0;
                        continue;
                    }
                    div = g->count_include_pad ? pool_size : (he0 - hs0) * (we0 - ws0);
                } else {
                    int ny = taps_in(hs, g->kh, g->dh, 0, g->hi);
                    int nx = taps_in(ws, g->kw, g->dw, 0, g->wi);
                    if (g->count_include_pad) {
                        ny = taps_in(hs, g->kh, g->dh, -g->pt, g->hi + g->pb);
                        nx = taps_in(ws, g->kw, g->dw, -g->pl, g->wi + g->pr);
                    }
                    div = ny * nx;
                }
                y[(nc * g->ho + oy) * g->wo + ox] = sum / div;
            }
}

static void test_pools(void)
{
    size_t nin = (size_t)PN * PC * PH * PW, nout_max = (size_t)PN * PC * (PH + 2) * (PW + 2);
    float *x = malloc(nin * sizeof *x), *xs = malloc(nin * sizeof *xs);
    double *ref = malloc(nout_max * sizeof *ref);
    rng_seed(7);
    fill_nonzero(x, nin, -2.0f, 2.0f);
    /* the same values with NaN, +Inf and -Inf sprinkled in */
    memcpy(xs, x, nin * sizeof *x);
    sprinkle_nonfinite(xs, nin, 12);
    cl_mem bx = upload(x, nin), bxs = upload(xs, nin), by = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, nout_max * sizeof(float), &by, "y"));
    static const int strides[][2] = {{1, 1}, {2, 2}, {3, 3}, {2, 1}, {1, 3}};
    static const int dils[][2] = {{1, 1}, {2, 2}, {1, 2}};
    int runs = 0, skipped = 0;
    for (int kh = 1; kh <= 3; kh++)
        for (int kw = 1; kw <= 3; kw++)
            for (int si = 0; si < 5; si++)
                for (int di = 0; di < 3; di++)
                    for (int pads = 0; pads < 16; pads++)
                        for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
                            cnn_pool_geom g = {0};
                            g.c = PC, g.hi = PH, g.wi = PW, g.kh = kh, g.kw = kw;
                            g.sh = strides[si][0], g.sw = strides[si][1];
                            g.dh = dils[di][0], g.dw = dils[di][1];
                            g.pt = pads & 1, g.pb = pads >> 1 & 1;
                            g.pl = pads >> 2 & 1, g.pr = pads >> 3 & 1;
                            /* PyTorch: padding at most half the (dilated) kernel. */
                            int eh = g.dh * (kh - 1) + 1, ew = g.dw * (kw - 1) + 1;
                            if (2 * g.pt > eh || 2 * g.pb > eh || 2 * g.pl > ew || 2 * g.pr > ew) {
                                skipped++;
                                continue;
                            }
                            g.ho = pool_out(PH, kh, g.sh, g.dh, g.pt, g.pb, ceil_mode);
                            g.wo = pool_out(PW, kw, g.sw, g.dw, g.pl, g.pr, ceil_mode);
                            size_t nout = (size_t)PN * PC * g.ho * g.wo;
                            char what[160];
                            snprintf(what, sizeof what,
                                     "k%dx%d s%dx%d d%dx%d pad t%d b%d l%d r%d ceil %d -> %dx%d",
                                     kh, kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pb, g.pl, g.pr,
                                     ceil_mode, g.ho, g.wo);
                            if (ref_maxpool(&g, x, ref)) {
                                poison(by, nout);
                                CHECK_OK(cnn_op_maxpool(&g_cl, &g, PN, bx, by, "maxpool"));
                                float *y = download(by, nout);
                                CHECK(close_enough(y, ref, nout, 0, 0, "maxpool"), "maxpool %s", what);
                                free(y);
                                runs++;
                            } else {
                                skipped++;
                            }
                            for (int cip = 0; cip < 2; cip++) {
                                g.count_include_pad = cip;
                                ref_avgpool(&g, x, ref);
                                poison(by, nout);
                                CHECK_OK(cnn_op_avgpool(&g_cl, &g, PN, bx, by, "avgpool"));
                                float *y = download(by, nout);
                                CHECK(close_enough(y, ref, nout, ATOL, RTOL, "avgpool"),
                                      "avgpool %s count_include_pad %d", what, cip);
                                free(y);
                                runs++;
                            }
                            /* NaN and Inf (no padding, or all four sides) */
                            if (pads % 15 == 0 && ref_maxpool(&g, xs, ref)) {
                                poison(by, nout);
                                CHECK_OK(cnn_op_maxpool(&g_cl, &g, PN, bxs, by, "maxpool"));
                                float *y = download(by, nout);
                                CHECK(close_enough_nf(y, ref, nout, 0, 0, "maxpool nan/inf"), "maxpool NaN/Inf %s",
                                      what);
                                free(y);
                                ref_avgpool(&g, xs, ref);
                                poison(by, nout);
                                CHECK_OK(cnn_op_avgpool(&g_cl, &g, PN, bxs, by, "avgpool"));
                                y = download(by, nout);
                                CHECK(close_enough_nf(y, ref, nout, ATOL, RTOL, "avgpool nan/inf"),
                                      "avgpool NaN/Inf %s count_include_pad 1", what);
                                free(y);
                                runs += 2;
                            }
                        }
    printf("pool geometries: %d runs, %d skipped (PyTorch would refuse them)\n", runs, skipped);
    clReleaseMemObject(bx);
    clReleaseMemObject(bxs);
    clReleaseMemObject(by);
    free(x);
    free(xs);
    free(ref);
}

/* Refusals: a crop outside the resized image, a channel count not 1|3. */
/* Max pooling over rows wide enough for the stride-2 kernel's eight-output
 * steps (VGG's 2x2/2, ResNet's 3x3/2 and mixed windows), with and without
 * padding and ceil mode, and with NaN, +Inf and -Inf sprinkled in:
 * compared exactly (a maximum is one of its inputs) with a double reference
 * in which a NaN in the window wins, as in PyTorch. */
static void test_maxpool_wide(void)
{
    static const int sizes[][2] = {{6, 40}, {5, 37}, {4, 56}, {3, 17}, {7, 33}};
    static const int wins[][2] = {{2, 2}, {3, 3}, {2, 3}, {3, 2}, {1, 3}};
    enum { C = 3 };
    int runs = 0;
    for (int si = 0; si < 5; si++)
        for (int wk = 0; wk < 5; wk++)
            for (int pad = 0; pad < 2; pad++)
                for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++)
                    for (int nans = 0; nans < 2; nans++) {
                        cnn_pool_geom g = {0};
                        g.c = C, g.hi = sizes[si][0], g.wi = sizes[si][1];
                        g.kh = wins[wk][0], g.kw = wins[wk][1], g.sh = 2, g.sw = 2, g.dh = 1, g.dw = 1;
                        g.pt = g.pb = pad && g.kh > 1 ? 1 : 0;
                        g.pl = g.pr = pad && g.kw > 1 ? 1 : 0;
                        g.ho = pool_out(g.hi, g.kh, 2, 1, g.pt, g.pb, ceil_mode);
                        g.wo = pool_out(g.wi, g.kw, 2, 1, g.pl, g.pr, ceil_mode);
                        size_t nin = (size_t)PN * C * g.hi * g.wi, nout = (size_t)PN * C * g.ho * g.wo;
                        float *x = malloc(nin * sizeof *x);
                        double *ref = malloc(nout * sizeof *ref);
                        rng_seed((uint64_t)(1000 + runs));
                        fill_nonzero(x, nin, -2.0f, 2.0f);
                        if (nans) sprinkle_nonfinite(x, nin, 48);
                        for (int nc = 0; nc < PN * C; nc++)
                            for (int oy = 0; oy < g.ho; oy++)
                                for (int ox = 0; ox < g.wo; ox++) {
                                    double m = -INFINITY;
                                    for (int i = 0; i < g.kh; i++)
                                        for (int j = 0; j < g.kw; j++) {
                                            int yy = oy * 2 - g.pt + i, xx = ox * 2 - g.pl + j;
                                            if (yy < 0 || yy >= g.hi || xx < 0 || xx >= g.wi) continue;
                                            double v = x[((size_t)nc * g.hi + yy) * g.wi + xx];
                                            if (v > m || isnan(v)) m = v;
                                        }
                                    ref[((size_t)nc * g.ho + oy) * g.wo + ox] = m;
                                }
                        cl_mem bx = upload(x, nin), by = NULL;
                        CHECK_OK(cnn_cl_buffer(&g_cl, nout * sizeof(float), &by, "y"));
                        poison(by, nout);
                        CHECK_OK(cnn_op_maxpool(&g_cl, &g, PN, bx, by, "maxpool"));
                        float *y = download(by, nout);
                        size_t bad = nout;
                        for (size_t i = 0; i < nout && bad == nout; i++)
                            if (isnan(ref[i]) ? !isnan(y[i]) : (double)y[i] != ref[i]) bad = i;
                        CHECK(bad == nout, "maxpool %dx%d/2 on %dx%d pad %d ceil %d nans %d: [%zu] = %g, expected %g",
                              g.kh, g.kw, g.hi, g.wi, pad, ceil_mode, nans, bad, bad < nout ? (double)y[bad] : 0.0,
                              bad < nout ? ref[bad] : 0.0);
                        free(y);
                        clReleaseMemObject(bx);
                        clReleaseMemObject(by);
                        free(x);
                        free(ref);
                        runs++;
                    }
    printf("wide stride-2 max pools: %d runs\n", runs);
}

static void test_preprocess_refusals(void)
{
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, 64, &b, "dummy"));
    float m[3] = {0, 0, 0}, s[3] = {1, 1, 1};
    int st = cnn_op_preprocess(&g_cl, b, 4, 4, 3, 4, 4, 1, 0, 3, 4, 4, 1.0f, m, s, NULL, b, 0, "x.png");
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "x.png"), "crop outside: %d %s", st,
          cnn_error_message());
    st = cnn_op_preprocess(&g_cl, b, 4, 4, 2, 4, 4, 0, 0, 3, 4, 4, 1.0f, m, s, NULL, b, 0, "x.png");
    CHECK(st == CNN_ERR_INPUT, "2 channels: %d %s", st, cnn_error_message());
    clReleaseMemObject(b);
}

/* A caller that leaves the dilation of an avg pool at 0 gets dilation 1. */
static void test_avgpool_zero_dilation(void)
{
    cnn_pool_geom g = {.c = PC, .hi = PH, .wi = PW, .ho = 4, .wo = 5, .kh = 3, .kw = 3, .sh = 2,
                       .sw = 2, .dh = 1, .dw = 1, .pt = 1, .pl = 1, .pb = 1, .pr = 1};
    size_t nin = (size_t)PN * PC * PH * PW, nout = (size_t)PN * PC * 4 * 5;
    float *x = malloc(nin * sizeof *x);
    double *ref = malloc(nout * sizeof *ref);
    fill_nonzero(x, nin, -2.0f, 2.0f);
    ref_avgpool(&g, x, ref);
    g.dh = g.dw = 0;
    cl_mem bx = upload(x, nin), by = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, nout * sizeof(float), &by, "y"));
    poison(by, nout);
    CHECK_OK(cnn_op_avgpool(&g_cl, &g, PN, bx, by, "avgpool d0"));
    float *y = download(by, nout);
    CHECK(close_enough(y, ref, nout, ATOL, RTOL, "avgpool d0"), "avgpool with dilation 0");
    free(y);
    free(x);
    free(ref);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
}

/* specials: NaN, +Inf and -Inf among the inputs (as in the three tests
 * below); the reference then has them where PyTorch has them. */
static void test_adaptive(int hi, int wi, int ho, int wo, int specials)
{
    int n = 2, c = 3;
    size_t nin = (size_t)n * c * hi * wi, nout = (size_t)n * c * ho * wo;
    float *x = malloc(nin * sizeof *x);
    double *ref = malloc(nout * sizeof *ref);
    fill_nonzero(x, nin, -2.0f, 2.0f);
    if (specials) sprinkle_nonfinite(x, nin, 40);
    for (int nc = 0; nc < n * c; nc++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                /* PyTorch: start = floor(i*H/o), end = ceil((i+1)*H/o) */
                int ys = (int)floor((double)oy * hi / ho), ye = (int)ceil((double)(oy + 1) * hi / ho);
                int xs = (int)floor((double)ox * wi / wo), xe = (int)ceil((double)(ox + 1) * wi / wo);
                double s = 0;
                for (int yy = ys; yy < ye; yy++)
                    for (int xx = xs; xx < xe; xx++) s += x[(nc * hi + yy) * wi + xx];
                ref[(nc * ho + oy) * wo + ox] = s / ((ye - ys) * (xe - xs));
            }
    cl_mem bx = upload(x, nin), by = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, nout * sizeof(float), &by, "y"));
    poison(by, nout);
    CHECK_OK(cnn_op_adaptive_avgpool(&g_cl, n, c, hi, wi, ho, wo, bx, by, "adaptive"));
    float *y = download(by, nout);
    CHECK(close_enough_nf(y, ref, nout, ATOL, RTOL, "adaptive"), "adaptive %dx%d -> %dx%d%s", hi, wi, ho, wo,
          specials ? " NaN/Inf" : "");
    free(y);
    free(x);
    free(ref);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
}

/* As torch.softmax: a NaN or +Inf in a column, or -Inf everywhere in it,
 * makes the whole column NaN; -Inf alone gives 0. */
static void test_softmax(int n, int c, int plane, float lo, float hi, int specials)
{
    size_t total = (size_t)n * c * plane;
    float *x = malloc(total * sizeof *x);
    double *ref = malloc(total * sizeof *ref);
    fill_nonzero(x, total, lo, hi);
    if (specials) sprinkle_nonfinite(x, total, specials);
    for (int b = 0; b < n; b++)
        for (int p = 0; p < plane; p++) {
            double m = -INFINITY, s = 0;
            for (int i = 0; i < c; i++) m = fmax(m, x[((size_t)b * c + i) * plane + p]);
            for (int i = 0; i < c; i++) s += exp(x[((size_t)b * c + i) * plane + p] - m);
            for (int i = 0; i < c; i++) {
                size_t j = ((size_t)b * c + i) * plane + p;
                ref[j] = exp(x[j] - m) / s;
            }
        }
    cl_mem bx = upload(x, total), by = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, total * sizeof(float), &by, "y"));
    poison(by, total);
    CHECK_OK(cnn_op_softmax(&g_cl, n, c, plane, bx, by, "softmax"));
    float *y = download(by, total);
    CHECK(close_enough_nf(y, ref, total, ATOL, RTOL, "softmax"), "softmax n%d c%d plane %d [%g, %g)%s", n, c,
          plane, lo, hi, specials ? " NaN/Inf" : "");
    double worst = 0;
    for (int b = 0; b < n; b++)
        for (int p = 0; p < plane; p++) {
            double s = 0;
            for (int i = 0; i < c; i++) s += y[((size_t)b * c + i) * plane + p];
            double e = fabs(s - 1);
            if (isnan(ref[(size_t)b * c * plane + p])) continue; /* a NaN column (checked above) */
            if (isnan(e) || e > worst) worst = e; /* a NaN sticks */
        }
    CHECK(worst <= 1e-5, "softmax sums differ from 1 by %g", worst);
    free(y);
    free(x);
    free(ref);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
}

/* The reference follows torch.nn.functional.local_response_norm step by
 * step: square, zero-pad channels by size//2 before and (size-1)//2 after,
 * average over windows of `size` (padding counted), then k + alpha * avg. */
static void test_lrn(int size, float alpha, float beta, float k, int specials)
{
    int n = 2, c = 7, plane = 5 * 3;
    size_t total = (size_t)n * c * plane;
    int padded = c + size / 2 + (size - 1) / 2;
    float *x = malloc(total * sizeof *x);
    double *ref = malloc(total * sizeof *ref), *sq = malloc((size_t)padded * sizeof *sq);
    fill_nonzero(x, total, -3.0f, 3.0f);
    if (specials) sprinkle_nonfinite(x, total, 30);
    for (int b = 0; b < n; b++)
        for (int p = 0; p < plane; p++) {
            for (int i = 0; i < padded; i++) {
                int ch = i - size / 2;
                double v = ch >= 0 && ch < c ? x[((size_t)b * c + ch) * plane + p] : 0.0;
                sq[i] = v * v;
            }
            for (int ch = 0; ch < c; ch++) {
                double avg = 0;
                for (int i = 0; i < size; i++) avg += sq[ch + i];
                avg /= size;
                size_t j = ((size_t)b * c + ch) * plane + p;
                ref[j] = x[j] / pow(k + alpha * avg, beta);
            }
        }
    cl_mem bx = upload(x, total), by = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, total * sizeof(float), &by, "y"));
    poison(by, total);
    CHECK_OK(cnn_op_lrn(&g_cl, n, c, plane, size, alpha, beta, k, bx, by, "lrn"));
    float *y = download(by, total);
    CHECK(close_enough_nf(y, ref, total, ATOL, RTOL, "lrn"), "lrn size %d alpha %g beta %g k %g%s", size, alpha,
          beta, k, specials ? " NaN/Inf" : "");
    free(y);
    free(x);
    free(ref);
    free(sq);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
}

static void test_concat(void)
{
    enum { N = 2, CA = 3, CB = 5, CY = CA + CB, PLANE = 7 * 9 };
    float a[N * CA * PLANE], b[N * CB * PLANE];
    double ref[N * CY * PLANE];
    fill_nonzero(a, sizeof a / sizeof a[0], -2.0f, 2.0f);
    fill_nonzero(b, sizeof b / sizeof b[0], -2.0f, 2.0f);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < CY; c++)
            for (int p = 0; p < PLANE; p++)
                ref[(n * CY + c) * PLANE + p] = c < CA ? a[(n * CA + c) * PLANE + p]
                                                       : b[(n * CB + c - CA) * PLANE + p];
    cl_mem ba = upload(a, sizeof a / sizeof a[0]), bb = upload(b, sizeof b / sizeof b[0]), by = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, N * CY * PLANE * sizeof(float), &by, "y"));
    poison(by, N * CY * PLANE);
    CHECK_OK(cnn_op_concat_part(&g_cl, N, CA, CY, 0, PLANE, ba, by, "concat a"));
    CHECK_OK(cnn_op_concat_part(&g_cl, N, CB, CY, CA, PLANE, bb, by, "concat b"));
    float *y = download(by, N * CY * PLANE);
    CHECK(close_enough(y, ref, N * CY * PLANE, 0, 0, "concat"), "concat (exact expected)");
    free(y);
    clReleaseMemObject(ba);
    clReleaseMemObject(bb);
    clReleaseMemObject(by);
}

/* ---- preprocessing ---- */

static const float k_mean[3] = {0.485f, 0.456f, 0.406f};
static const float k_std[3] = {0.229f, 0.224f, 0.225f};
static const float k_mean1[1] = {0.5f};
static const float k_std1[1] = {0.25f};

/* Runs cnn_op_preprocess into a poisoned buffer at float offset `off` and
 * checks the floats around the output are still NaN.  Returns the output
 * (c*oh*ow floats) or NULL. */
static float *run_preprocess(const uint8_t *px, int sh, int sw, int sc, int rh, int rw, int top,
                             int left, int c, int oh, int ow)
{
    enum { OFF = 17, TAIL = 5 };
    size_t in = (size_t)sh * sw * sc, n = (size_t)c * oh * ow, tot = OFF + n + TAIL;
    size_t scratch = cnn_op_preprocess_scratch(sh, sw, sc, rh, rw);
    cl_mem bsrc = NULL, btmp = NULL, by = NULL;
    float *out = NULL, *all = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, in, &bsrc, "src"));
    CHECK_OK(cnn_cl_buffer(&g_cl, scratch, &btmp, "tmp"));
    CHECK_OK(cnn_cl_buffer(&g_cl, tot * sizeof(float), &by, "y"));
    if (!bsrc || !btmp || !by) goto done;
    CHECK_OK(cnn_cl_write(&g_cl, bsrc, 0, in, px, "src"));
    poison(by, tot);
    int status = cnn_op_preprocess(&g_cl, bsrc, sh, sw, sc, rh, rw, top, left, c, oh, ow,
                                   1.0f / 255.0f, c == 3 ? k_mean : k_mean1,
                                   c == 3 ? k_std : k_std1, scratch ? btmp : NULL, by, OFF, "test");
    CHECK(status == 0, "cnn_op_preprocess: %s", cnn_error_message());
    if (status) goto done;
    all = download(by, tot);
    int untouched = 1;
    for (size_t i = 0; i < tot; i++)
        if ((i < OFF || i >= OFF + n) && !isnan(all[i])) untouched = 0;
    CHECK(untouched, "preprocess wrote outside [y_offset, y_offset + c*oh*ow)");
    out = malloc(n * sizeof *out);
    memcpy(out, all + OFF, n * sizeof *out);
done:
    free(all);
    if (bsrc) clReleaseMemObject(bsrc);
    if (btmp) clReleaseMemObject(btmp);
    if (by) clReleaseMemObject(by);
    return out;
}

/* No resize: crop, conversion (Pillow's convert("L") luma in integers) and
 * normalisation need no Pillow to check. */
static void test_preprocess_noresize(int sc, int c)
{
    enum { SH = 23, SW = 31, TOP = 3, LEFT = 5, OH = 17, OW = 19 };
    uint8_t px[SH * SW * 3];
    for (int i = 0; i < SH * SW * sc; i++) px[i] = (uint8_t)((int)rng_uniform(0.0f, 256.0f) & 255);
    float *y = run_preprocess(px, SH, SW, sc, SH, SW, TOP, LEFT, c, OH, OW);
    if (!y) return;
    double ref[3 * OH * OW];
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const uint8_t *p = px + ((TOP + oy) * SW + LEFT + ox) * sc;
                int v;
                if (sc == c) v = p[ch];
                else if (sc == 1) v = p[0];
                else v = (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
                double m = c == 3 ? k_mean[ch] : k_mean1[0], s = c == 3 ? k_std[ch] : k_std1[0];
                ref[(ch * OH + oy) * OW + ox] = (v / 255.0 - m) / s;
            }
    CHECK(close_enough(y, ref, (size_t)c * OH * OW, 1e-6, 0, "preprocess"),
          "preprocess no resize %d -> %d channels", sc, c);
    free(y);
}

static int read_file(const char *path, uint8_t *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(buf, 1, n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    return got == n && !extra;
}

/* test_pool preprocess IN SH SW SC RH RW TOP LEFT C OH OW OUT */
static int preprocess_main(int argc, char **argv)
{
    if (argc != 14) {
        fprintf(stderr, "usage: %s preprocess IN SH SW SC RH RW TOP LEFT C OH OW OUT\n", argv[0]);
        return 2;
    }
    int v[10];
    for (int i = 0; i < 10; i++) v[i] = atoi(argv[3 + i]);
    int sh = v[0], sw = v[1], sc = v[2], rh = v[3], rw = v[4], top = v[5], left = v[6], c = v[7],
        oh = v[8], ow = v[9];
    size_t in = (size_t)sh * sw * sc, n = (size_t)c * oh * ow;
    uint8_t *px = malloc(in);
    if (!px || !read_file(argv[2], px, in)) {
        fprintf(stderr, "%s: cannot read %zu bytes\n", argv[2], in);
        return 1;
    }
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    float *y = g_cl.ctx ? run_preprocess(px, sh, sw, sc, rh, rw, top, left, c, oh, ow) : NULL;
    if (y) {
        FILE *f = fopen(argv[13], "wb");
        CHECK(f && fwrite(y, sizeof *y, n, f) == n, "cannot write %s", argv[13]);
        if (f) fclose(f);
    }
    free(y);
    free(px);
    if (g_cl.ctx) cnn_cl_free(&g_cl);
    return g_checks_failed || !y ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "preprocess") == 0) return preprocess_main(argc, argv);
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    if (!g_cl.ctx) return test_summary("test_pool");
    printf("device: %s (%s)\n", g_cl.device_name, g_cl.platform_name);

    test_pools();
    test_maxpool_wide();
    test_avgpool_zero_dilation();
    rng_seed(11);
    test_adaptive(13, 13, 7, 7, 0);
    test_adaptive(13, 13, 6, 6, 0);
    test_adaptive(13, 13, 1, 1, 0);
    test_adaptive(7, 9, 4, 5, 0);
    test_adaptive(5, 4, 7, 9, 0); /* upsampling: overlapping single-tap windows */
    test_adaptive(13, 13, 6, 6, 1);
    test_softmax(2, 10, 7 * 9, -10.0f, 10.0f, 0);
    test_softmax(3, 1000, 1, -10.0f, 10.0f, 0);
    test_softmax(2, 5, 13, 50.0f, 100.0f, 0); /* exp would overflow without the max */
    test_softmax(2, 10, 7 * 9, -10.0f, 10.0f, 60); /* some columns NaN, some with a -Inf */
    test_lrn(5, 1e-4f, 0.75f, 2.0f, 0);       /* AlexNet */
    test_lrn(4, 0.5f, 0.75f, 1.0f, 0);
    test_lrn(3, 1.0f, 0.5f, 1.0f, 0);
    test_lrn(1, 0.3f, 1.0f, 1.5f, 0);
    test_lrn(5, 1e-4f, 0.75f, 2.0f, 1);
    test_concat();
    test_preprocess_noresize(3, 3);
    test_preprocess_noresize(3, 1);
    test_preprocess_noresize(1, 3);
    test_preprocess_noresize(1, 1);
    test_preprocess_refusals();

    cnn_cl_free(&g_cl);
    return test_summary("test_pool");
}
