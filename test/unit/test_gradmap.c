/* Attribution-map ops (host/viz/gradmap.c, cl/gradmap.cl) against C
 * references in double precision (in float where the contract fixes float
 * arithmetic), on random non-zero data, batches of 1 and 3 at non-zero
 * offsets, sizes that are not multiples of the work-group sizes.  Every
 * output buffer holds NaN where the op writes and a guard value before and
 * after; the guards must survive.
 *
 * Tolerances (eps = 2^-24, the float unit roundoff):
 *  - chan_maxabs: exact (a selection); a NaN among the channels gives NaN.
 *  - chan_dot: |err| <= 1e-6 * sum_c |g x| (c roundings of at most eps each).
 *  - cam: weights within 1e-5 * the weight's magnitude (Grad-CAM: mean |g|;
 *    Grad-CAM++: w (1 + sum|A| / |sum A|), the sum of A enters every
 *    alpha); cam within 1e-5 * sum_k magnitude_k |A_kp| (LayerCAM: sum_k
 *    |relu(g) A|).  A float tree sum over a plane of ~1000 values and a sum
 *    over <= 16 channels stay below ~2e-6 of those.  Exact zeros: all
 *    gradients negative -> cam exactly 0 everywhere, Grad-CAM++ weights
 *    exactly 0; gradients exactly 0 -> no NaN, a channel of zeros has
 *    Grad-CAM++ weight exactly 0.
 *  - resize: indices and lambdas in float exactly as the contract says, the
 *    blend in double: |err| <= 1e-6 * max of the 4 source values (6 float
 *    roundings); same size in and out: exact copy.
 *  - mul: exact (one rounding of an exact product).  axpby: 2 eps * (|dst
 *    keep| + |src scale|); keep 0 ignores a NaN in dst.
 *  - noise: the deviates equal a C Philox2x32-10 + Box-Muller reference in
 *    double within 1e-5 (the generator itself checked on Random123's known
 *    answers); over 160088 deviates: |mean| < 0.0125 and |std - 1| < 0.01
 *    (5 standard errors), P(|z| < 1) within 0.006 of 0.682689, kurtosis
 *    within 0.12 of 3, lag-1 correlations along elements and along copies
 *    below 0.0125, |z| <= 5.78; bitwise deterministic, bitwise equal when
 *    the copies are split (8 = 3 + 5).
 *  - path: |err| <= 4 eps * (|base| + |x - base|) + 1e-30.
 *  - overlay: bytes equal a C float reference of the documented expression;
 *    equal to the double expression rounded half up except within 1e-4 of a
 *    .5 tie, where float rounding may land on either side (+-1); alpha 0 / 1
 *    give img / heat exactly, alpha 0.5 gives (img + heat + 1) / 2 exactly.
 *  - sum_blocks: (n_sum + 2) eps * (scale sum_k |src| + |old out|).
 *  - positions: equal to the length of a list built step by step (i *
 *    stride while the window fits, then one window flush with the edge).
 *  - occlude: exact (a selection of x or base per element); split copies
 *    (w0 > 0) equal the same windows of one call.
 *  - occlusion_map: |err| <= (cnt + 6) eps * mean_k |d_k| over the cnt
 *    covering windows (cnt - 1 float additions, a division within 2.5 ulp
 *    as OpenCL allows); pixels covered by one window: d exactly; pixels in
 *    no window (stride > window): exactly 0.
 *  - blur: |err| <= 1e-5 * blur(|x|) (the same double blur of |x|): float
 *    exp and 2 (2 r + 1)-term float sums against double taps.
 *  - curve: exact (a selection of a or b per element); split steps equal one
 *    call; step 0 is b, step `steps` is a. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "viz/gradmap.h"
#include "viz/vizops.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static cnn_cl g_cl;

#define GUARD 1234.5f
#define EPS24 (1.0 / 16777216.0)

/* ---- helpers ---- */

/* Uniform in [lo, hi) but never within 1e-3 * max(|lo|, |hi|) of zero (a
 * bound relative to the range, unlike check.h's fill_nonzero). */
static void fill_nonzero_rel(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = rng_uniform(lo, hi);
        while (fabsf(v) < 1e-3f * (fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi)));
        x[i] = v;
    }
}

static size_t rng_index(size_t n) { return (size_t)rng_uniform(0.0f, (float)n) % n; }

static cl_mem buffer(size_t bytes)
{
    cl_mem b = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, bytes, &b, "test buffer"));
    return b;
}

static cl_mem upload(const void *h, size_t bytes)
{
    cl_mem b = buffer(bytes);
    if (b) CHECK_OK(cnn_cl_write(&g_cl, b, 0, bytes, h, "test input"));
    return b;
}

/* `off` floats before the data, `n` data and `after` floats: the data
 * uploaded from x (or NaN when x is NULL), GUARD around it. */
static cl_mem upload_guarded(const float *x, size_t off, size_t n, size_t after)
{
    size_t total = off + n + after;
    float *h = malloc(total * sizeof *h);
    for (size_t i = 0; i < total; i++) h[i] = GUARD;
    for (size_t i = 0; i < n; i++) h[off + i] = x ? x[i] : NAN;
    cl_mem b = upload(h, total * sizeof *h);
    free(h);
    return b;
}

static void *download(cl_mem b, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    CHECK_OK(cnn_cl_read(&g_cl, b, 0, bytes, h, "test output"));
    return h;
}

static void release(cl_mem b)
{
    if (b) clReleaseMemObject(b);
}

/* Downloads off + n + after floats and checks the guards; returns the
 * whole buffer (the data at + off). */
static float *download_guarded(cl_mem b, size_t off, size_t n, size_t after, const char *what)
{
    size_t total = off + n + after;
    float *h = download(b, total * sizeof(float));
    size_t bad = 0;
    for (size_t i = 0; i < total; i++)
        if ((i < off || i >= off + n) && memcmp(&h[i], &(float){GUARD}, sizeof(float)) != 0) bad++;
    CHECK(bad == 0, "%s: %zu guard values overwritten", what, bad);
    return h;
}

/* |got - ref| <= bound element-wise (NaN fails); reports the worst. */
static double g_worst_ratio; /* largest |err| / bound seen by check_bound */
static int check_bound(const float *got, const double *ref, const double *bound, size_t n, const char *what)
{
    size_t bad = 0, worst = 0;
    double worst_r = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double r = bound[i] > 0 ? err / bound[i] : (err > 0 ? INFINITY : 0);
        if (!(err <= bound[i])) {
            bad++;
            r = INFINITY; /* NaN too */
        }
        if (r > worst_r) {
            worst_r = r;
            worst = i;
        }
    }
    if (worst_r > g_worst_ratio && isfinite(worst_r)) g_worst_ratio = worst_r;
    if (bad)
        fprintf(stderr, "  %s: %zu of %zu out of tolerance; worst [%zu] got %.9g ref %.9g bound %.3g\n", what, bad,
                n, worst, (double)got[worst], ref[worst], bound[worst]);
    return bad == 0;
}

static bool any_nan(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i])) return true;
    return false;
}

/* ---- chan_maxabs, chan_dot ---- */

static void test_chan_case(int n, int c, int plane, size_t g_off, size_t x_off, size_t out_off)
{
    size_t n_in = (size_t)n * c * plane, n_px = (size_t)n * plane;
    float *g = malloc(n_in * sizeof *g), *x = malloc(n_in * sizeof *x);
    fill_nonzero_rel(g, n_in, -2.0f, 2.0f);
    fill_nonzero_rel(x, n_in, -1.5f, 3.0f);
    cl_mem bg = upload_guarded(g, g_off, n_in, 3), bx = upload_guarded(x, x_off, n_in, 3);
    cl_mem bm = upload_guarded(NULL, out_off, n_px, 5), bd = upload_guarded(NULL, out_off, n_px, 5);
    char what[96];
    snprintf(what, sizeof what, "chan n %d c %d plane %d", n, c, plane);
    CHECK_OK(cnn_gm_chan_maxabs(&g_cl, bg, g_off, n, c, plane, bm, out_off, what));
    CHECK_OK(cnn_gm_chan_dot(&g_cl, bg, g_off, bx, x_off, n, c, plane, bd, out_off, what));
    float *m = download_guarded(bm, out_off, n_px, 5, what), *d = download_guarded(bd, out_off, n_px, 5, what);
    double *ref = malloc(n_px * sizeof *ref), *bound = malloc(n_px * sizeof *bound);
    size_t bad_max = 0;
    for (int b = 0; b < n; b++)
        for (int p = 0; p < plane; p++) {
            float mx = 0;
            double s = 0, sa = 0;
            for (int k = 0; k < c; k++) {
                size_t i = ((size_t)b * c + k) * plane + p;
                if (fabsf(g[i]) > mx) mx = fabsf(g[i]);
                s += (double)g[i] * x[i];
                sa += fabs((double)g[i] * x[i]);
            }
            size_t o = (size_t)b * plane + p;
            if (m[out_off + o] != mx) bad_max++;
            ref[o] = s;
            bound[o] = 1e-6 * sa;
        }
    CHECK(bad_max == 0, "%s: maxabs: %zu pixels differ", what, bad_max);
    CHECK(check_bound(d + out_off, ref, bound, n_px, what), "%s: chan_dot", what);
    free(m);
    free(d);
    free(ref);
    free(bound);
    free(g);
    free(x);
    release(bg);
    release(bx);
    release(bm);
    release(bd);
}

static void test_chan_nan(void)
{
    /* 2 channels of 4 pixels; a NaN in channel 1 of pixel 2. */
    float g[8] = {1, -2, 3, -4, -5, 0.5f, NAN, 0.25f};
    cl_mem bg = upload(g, sizeof g), bo = upload_guarded(NULL, 0, 4, 1);
    CHECK_OK(cnn_gm_chan_maxabs(&g_cl, bg, 0, 1, 2, 4, bo, 0, "maxabs nan"));
    float *o = download_guarded(bo, 0, 4, 1, "maxabs nan");
    CHECK(o[0] == 5 && o[1] == 2 && isnan(o[2]) && o[3] == 4, "maxabs with NaN: %g %g %g %g", (double)o[0],
          (double)o[1], (double)o[2], (double)o[3]);
    free(o);
    release(bg);
    release(bo);
}

static void test_chan(void)
{
    test_chan_case(1, 5, 37 * 29, 17, 5, 9);
    test_chan_case(3, 7, 13 * 11, 17, 5, 9);
    test_chan_case(3, 1, 257, 1, 2, 3);
    test_chan_case(1, 3, 1, 4, 1, 2);
    test_chan_nan();
}

/* ---- cam ---- */

enum { CAM_RANDOM = 0, CAM_ZEROS = 1, CAM_NEGATIVE = 2 };

/* Reference in double: weights w[n * c], their magnitudes wmag (the error
 * scale), cam[n * plane] and its bound. */
static void ref_cam(cnn_cam_kind kind, const float *a, const float *g, int n, int c, int plane, double *w,
                    double *wmag, double *cam, double *bound)
{
    const double tol = 1e-5;
    for (int b = 0; b < n; b++) {
        for (int k = 0; k < c; k++) {
            const float *am = a + ((size_t)b * c + k) * plane, *gm = g + ((size_t)b * c + k) * plane;
            double s = 0, sa = 0, S = 0, Sa = 0;
            size_t m = (size_t)b * c + k;
            if (kind == CNN_CAM_GRADCAM) {
                for (int p = 0; p < plane; p++) {
                    s += gm[p];
                    sa += fabs(gm[p]);
                }
                w[m] = s / plane;
                wmag[m] = sa / plane;
            } else if (kind == CNN_CAM_GRADCAMPP) {
                for (int p = 0; p < plane; p++) {
                    S += am[p];
                    Sa += fabs(am[p]);
                }
                for (int p = 0; p < plane; p++) {
                    double gv = gm[p];
                    if (gv > 0) { /* relu(g) = 0 elsewhere; alpha = 0 where g == 0 */
                        double g2 = gv * gv, g3 = g2 * gv;
                        double den = 2 * g2 + S * g3 + 1e-6;
                        if (den != 0) s += gv * (g2 / den);
                    }
                }
                w[m] = s;
                wmag[m] = s * (1 + (S != 0 ? Sa / fabs(S) : 1));
            } else if (kind == CNN_CAM_XGRADCAM) {
                double t = 0, ta = 0;
                for (int p = 0; p < plane; p++) {
                    S += am[p];
                    Sa += fabs(am[p]);
                    t += (double)gm[p] * am[p];
                    ta += fabs((double)gm[p] * am[p]);
                }
                double den = S + 1e-7;
                w[m] = t / den;
                wmag[m] = (ta + fabs(t) * Sa / fabs(den)) / fabs(den);
            } else if (kind == CNN_CAM_WEIGHTED) {
                /* the caller's weights, passed in w */
                wmag[m] = fabs(w[m]);
            } else {
                w[m] = wmag[m] = 0;
            }
        }
        for (int p = 0; p < plane; p++) {
            double s = 0, sa = 0;
            for (int k = 0; k < c; k++) {
                size_t i = ((size_t)b * c + k) * plane + p;
                size_t m = (size_t)b * c + k;
                if (kind == CNN_CAM_LAYERCAM || kind == CNN_CAM_HIRESCAM) {
                    double r = kind == CNN_CAM_HIRESCAM ? g[i] : g[i] > 0 ? g[i] : 0;
                    s += r * a[i];
                    sa += fabs(r * a[i]);
                } else {
                    s += w[m] * a[i];
                    sa += wmag[m] * fabs(a[i]);
                }
            }
            cam[(size_t)b * plane + p] = s > 0 ? s : 0;
            bound[(size_t)b * plane + p] = tol * sa + 1e-30;
        }
    }
}

static const char *kind_name(cnn_cam_kind k)
{
    static const char *const names[] = {"gradcam", "gradcam++", "layercam", "xgradcam", "hirescam", "weighted"};
    return names[k];
}

static void test_cam_case(cnn_cam_kind kind, int n, int c, int plane, size_t a_off, size_t g_off, size_t out_off,
                          int mode, bool null_weights)
{
    size_t n_in = (size_t)n * c * plane, n_px = (size_t)n * plane, n_w = (size_t)n * c;
    float *a = malloc(n_in * sizeof *a), *g = malloc(n_in * sizeof *g);
    if (mode == CAM_NEGATIVE) {
        fill_nonzero_rel(a, n_in, 0.01f, 1.0f);
        fill_nonzero_rel(g, n_in, -1.0f, -0.01f);
    } else {
        fill_nonzero_rel(a, n_in, -0.2f, 1.0f);
        /* Gradients of several magnitudes per channel (1 .. 1e-4): with
         * g ~ 1e-4 Grad-CAM++'s eps dominates its denominator. */
        for (size_t m = 0; m < n_w; m++) {
            float sc = powf(10.0f, -(float)(m % 5));
            fill_nonzero_rel(g + m * plane, (size_t)plane, -sc, sc);
        }
        if (mode == CAM_ZEROS) {
            for (size_t i = 0; i < n_in; i++)
                if (rng_uniform(0, 1) < 0.3f) g[i] = 0.0f;
            size_t m = n_w > 1 ? 1 : 0; /* a whole channel of zeros */
            for (int p = 0; p < plane; p++) g[m * plane + p] = 0.0f;
        }
    }
    bool given = kind == CNN_CAM_WEIGHTED;
    float *win = malloc(n_w * sizeof *win);
    fill_nonzero_rel(win, n_w, -0.5f, 1.0f);
    cl_mem ba = upload_guarded(a, a_off, n_in, 2), bg = given ? NULL : upload_guarded(g, g_off, n_in, 2);
    cl_mem bo = upload_guarded(NULL, out_off, n_px, 7), bw = upload_guarded(given ? win : NULL, 0, n_w, 4);
    char what[128];
    snprintf(what, sizeof what, "%s n %d c %d plane %d mode %d", kind_name(kind), n, c, plane, mode);
    CHECK_OK(cnn_gm_cam(&g_cl, kind, ba, a_off, bg, given ? 0 : g_off, n, c, plane, null_weights ? NULL : bw, bo,
                        out_off, what));
    float *o = download_guarded(bo, out_off, n_px, 7, what);
    float *w = download(bw, (n_w + 4) * sizeof(float));
    double *rw = malloc(n_w * sizeof *rw), *rwm = malloc(n_w * sizeof *rwm);
    double *rc = malloc(n_px * sizeof *rc), *rb = malloc(n_px * sizeof *rb);
    for (size_t m = 0; m < n_w; m++) rw[m] = win[m];
    ref_cam(kind, a, g, n, c, plane, rw, rwm, rc, rb);
    CHECK(check_bound(o + out_off, rc, rb, n_px, what), "%s: cam", what);
    CHECK(!any_nan(o + out_off, n_px), "%s: NaN in the cam", what);
    if (given) {
        size_t changed = 0;
        for (size_t m = 0; m < n_w; m++) changed += w[m] != win[m];
        CHECK(changed == 0, "%s: %zu of the caller's weights changed", what, changed);
    } else if (kind == CNN_CAM_LAYERCAM || kind == CNN_CAM_HIRESCAM) {
        /* Weights left untouched (they stay NaN with guards after). */
        size_t touched = 0;
        for (size_t m = 0; m < n_w; m++) touched += !isnan(w[m]);
        for (size_t m = n_w; m < n_w + 4; m++) touched += w[m] != GUARD;
        CHECK(touched == 0, "%s: %zu weights written", what, touched);
    } else {
        double *wb = malloc(n_w * sizeof *wb);
        for (size_t m = 0; m < n_w; m++) wb[m] = 1e-5 * rwm[m] + 1e-30;
        CHECK(check_bound(w, rw, wb, n_w, what), "%s: weights", what);
        CHECK(!any_nan(w, n_w), "%s: NaN in the weights", what);
        size_t guards = 0;
        for (size_t m = n_w; m < n_w + 4; m++) guards += w[m] != GUARD;
        CHECK(guards == 0, "%s: %zu weight guards overwritten", what, guards);
        if (mode == CAM_ZEROS && kind == CNN_CAM_GRADCAMPP)
            CHECK(w[n_w > 1 ? 1 : 0] == 0.0f, "%s: all-zero channel has weight %g", what,
                  (double)w[n_w > 1 ? 1 : 0]);
        if (mode == CAM_NEGATIVE) {
            size_t bad = 0;
            bool neg = kind == CNN_CAM_GRADCAM || kind == CNN_CAM_XGRADCAM;
            for (size_t m = 0; m < n_w; m++)
                bad += neg ? !(w[m] < 0.0f) : !(w[m] == 0.0f);
            CHECK(bad == 0, "%s: %zu weights not %s", what, bad, neg ? "< 0" : "exactly 0");
        }
        free(wb);
    }
    if (mode == CAM_NEGATIVE && !given) {
        size_t nz = 0;
        for (size_t i = 0; i < n_px; i++) nz += o[out_off + i] != 0.0f;
        CHECK(nz == 0, "%s: %zu cam values not exactly 0", what, nz);
    }
    free(a);
    free(g);
    free(win);
    free(o);
    free(w);
    free(rw);
    free(rwm);
    free(rc);
    free(rb);
    release(ba);
    release(bg);
    release(bo);
    release(bw);
}

static void test_cam(void)
{
    static const cnn_cam_kind kinds[] = {CNN_CAM_GRADCAM,  CNN_CAM_GRADCAMPP, CNN_CAM_LAYERCAM,
                                         CNN_CAM_XGRADCAM, CNN_CAM_HIRESCAM,  CNN_CAM_WEIGHTED};
    for (int i = 0; i < 6; i++) {
        cnn_cam_kind k = kinds[i];
        test_cam_case(k, 1, 6, 7 * 7, 3, 11, 5, CAM_RANDOM, false);
        test_cam_case(k, 3, 5, 23 * 19, 29, 1, 13, CAM_RANDOM, false);
        test_cam_case(k, 3, 16, 14 * 14, 2, 7, 1, CAM_RANDOM, false);
        test_cam_case(k, 1, 4, 33 * 35, 1, 2, 3, CAM_RANDOM, false);
        test_cam_case(k, 3, 3, 1, 5, 6, 7, CAM_RANDOM, false);
        test_cam_case(k, 3, 6, 13 * 17, 4, 9, 2, CAM_ZEROS, false);
        test_cam_case(k, 1, 5, 9 * 9, 1, 1, 1, CAM_NEGATIVE, false);
        test_cam_case(k, 3, 4, 300, 8, 3, 6, CAM_NEGATIVE, false);
    }
    test_cam_case(CNN_CAM_LAYERCAM, 1, 5, 9 * 11, 1, 2, 3, CAM_RANDOM, true); /* weights NULL */
    test_cam_case(CNN_CAM_HIRESCAM, 3, 5, 9 * 11, 1, 2, 3, CAM_RANDOM, true);
}

/* ---- resize ---- */

/* The contract's float index rule for one axis. */
static void ref_axis(int dst, int in, int out, int *i0, int *i1, float *lambda)
{
    float scale = (float)in / (float)out;
    float src = (float)dst + 0.5f;
    src = scale * src;
    src = src - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i = (int)floorf(src);
    if (i > in - 1) i = in - 1;
    float l = src - (float)i;
    *lambda = fminf(fmaxf(l, 0.0f), 1.0f);
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
}

static void test_resize_case(int n, int h, int w, int H, int W, size_t in_off, size_t out_off)
{
    size_t n_in = (size_t)n * h * w, n_out = (size_t)n * H * W;
    float *x = malloc(n_in * sizeof *x);
    fill_nonzero_rel(x, n_in, -3.0f, 5.0f);
    cl_mem bi = upload_guarded(x, in_off, n_in, 2), bo = upload_guarded(NULL, out_off, n_out, 3);
    char what[96];
    snprintf(what, sizeof what, "resize n %d %dx%d -> %dx%d", n, h, w, H, W);
    CHECK_OK(cnn_gm_resize(&g_cl, bi, in_off, n, h, w, bo, out_off, H, W, what));
    float *o = download_guarded(bo, out_off, n_out, 3, what);
    double *ref = malloc(n_out * sizeof *ref), *bound = malloc(n_out * sizeof *bound);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < H; y++) {
            int y0, y1;
            float ly;
            ref_axis(y, h, H, &y0, &y1, &ly);
            for (int xx = 0; xx < W; xx++) {
                int x0, x1;
                float lx;
                ref_axis(xx, w, W, &x0, &x1, &lx);
                const float *m = x + (size_t)b * h * w;
                double v00 = m[y0 * w + x0], v01 = m[y0 * w + x1], v10 = m[y1 * w + x0], v11 = m[y1 * w + x1];
                double t0 = (1.0 - lx) * v00 + lx * v01, t1 = (1.0 - lx) * v10 + lx * v11;
                size_t i = ((size_t)b * H + y) * W + xx;
                ref[i] = (1.0 - ly) * t0 + ly * t1;
                double mx = fmax(fmax(fabs(v00), fabs(v01)), fmax(fabs(v10), fabs(v11)));
                bound[i] = 1e-6 * mx;
            }
        }
    CHECK(check_bound(o + out_off, ref, bound, n_out, what), "%s", what);
    if (h == H && w == W)
        CHECK(memcmp(o + out_off, x, n_in * sizeof *x) == 0, "%s: same size is not an exact copy", what);
    free(x);
    free(o);
    free(ref);
    free(bound);
    release(bi);
    release(bo);
}

static void test_resize(void)
{
    test_resize_case(1, 7, 5, 23, 31, 3, 5);
    test_resize_case(3, 37, 29, 11, 13, 7, 1);
    test_resize_case(3, 9, 9, 9, 9, 2, 4);
    test_resize_case(1, 1, 1, 4, 3, 1, 1);
    test_resize_case(3, 6, 1, 3, 7, 5, 2);
    test_resize_case(1, 2, 8, 8, 2, 1, 9);
    test_resize_case(1, 14, 14, 224, 224, 6, 3);
    test_resize_case(3, 7, 7, 227, 225, 1, 2);
}

/* align_corners=True against a double reference of its rule: source =
 * dst * (in - 1) / (out - 1) (0 for a side of 1). */
static void test_resize_corners_case(int n, int h, int w, int H, int W, size_t in_off, size_t out_off)
{
    size_t n_in = (size_t)n * h * w, n_out = (size_t)n * H * W;
    float *x = malloc(n_in * sizeof *x);
    fill_nonzero_rel(x, n_in, -3.0f, 5.0f);
    cl_mem bi = upload_guarded(x, in_off, n_in, 2), bo = upload_guarded(NULL, out_off, n_out, 3);
    char what[96];
    snprintf(what, sizeof what, "resize corners n %d %dx%d -> %dx%d", n, h, w, H, W);
    CHECK_OK(cnn_gm_resize_ex(&g_cl, bi, in_off, n, h, w, bo, out_off, H, W, true, what));
    float *o = download_guarded(bo, out_off, n_out, 3, what);
    double *ref = malloc(n_out * sizeof *ref), *bound = malloc(n_out * sizeof *bound);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < H; y++) {
            double sy = H > 1 ? (double)y * (h - 1) / (H - 1) : 0;
            int y0 = (int)floor(sy) < h - 1 ? (int)floor(sy) : h - 1, y1 = y0 < h - 1 ? y0 + 1 : y0;
            double ly = sy - y0;
            for (int xx = 0; xx < W; xx++) {
                double sx = W > 1 ? (double)xx * (w - 1) / (W - 1) : 0;
                int x0 = (int)floor(sx) < w - 1 ? (int)floor(sx) : w - 1, x1 = x0 < w - 1 ? x0 + 1 : x0;
                double lx = sx - x0;
                const float *m = x + (size_t)b * h * w;
                double v00 = m[y0 * w + x0], v01 = m[y0 * w + x1], v10 = m[y1 * w + x0], v11 = m[y1 * w + x1];
                size_t i = ((size_t)b * H + y) * W + xx;
                ref[i] = (1 - ly) * ((1 - lx) * v00 + lx * v01) + ly * ((1 - lx) * v10 + lx * v11);
                bound[i] = 2e-6 * fmax(fmax(fabs(v00), fabs(v01)), fmax(fabs(v10), fabs(v11)));
            }
        }
    CHECK(check_bound(o + out_off, ref, bound, n_out, what), "%s", what);
    /* the corners are the input's corners exactly */
    for (int b = 0; b < n && H > 1 && W > 1; b++) {
        const float *m = x + (size_t)b * h * w, *q = o + out_off + (size_t)b * H * W;
        CHECK(q[0] == m[0] && q[W - 1] == m[w - 1] && q[(size_t)(H - 1) * W] == m[(h - 1) * w] &&
                  q[(size_t)H * W - 1] == m[h * w - 1],
              "%s: corners differ", what);
    }
    free(x);
    free(o);
    free(ref);
    free(bound);
    release(bi);
    release(bo);
}

/* ---- the CAM family's own-pass ops ---- */

/* Per-map minimum and maximum of m maps of len floats into a host stats
 * array in cnn_viz_stats' layout (the rest NaN: not read). */
static float *host_minmax(const float *x, int m, size_t len)
{
    float *st = malloc((size_t)m * CNN_STATS_STRIDE * sizeof *st);
    for (int j = 0; j < m; j++) {
        float mn = x[(size_t)j * len], mx = mn;
        for (size_t i = 1; i < len; i++) {
            mn = fminf(mn, x[(size_t)j * len + i]);
            mx = fmaxf(mx, x[(size_t)j * len + i]);
        }
        for (int k = 0; k < CNN_STATS_STRIDE; k++) st[(size_t)j * CNN_STATS_STRIDE + k] = NAN;
        st[(size_t)j * CNN_STATS_STRIDE + CNN_ST_MIN] = mn;
        st[(size_t)j * CNN_STATS_STRIDE + CNN_ST_MAX] = mx;
    }
    return st;
}

static void test_score_inputs_case(int m, int c, int plane, size_t x_off)
{
    size_t len = (size_t)c * plane, n = (size_t)m * len;
    float *x = malloc(len * sizeof *x), *up = malloc((size_t)m * plane * sizeof *up);
    fill_nonzero_rel(x, len, -2.0f, 2.0f);
    fill_nonzero_rel(up, (size_t)m * plane, -1.0f, 3.0f);
    float *st = host_minmax(up, m, (size_t)plane);
    cl_mem bx = upload_guarded(x, x_off, len, 1), bu = upload(up, (size_t)m * plane * sizeof *up);
    cl_mem bs = upload(st, (size_t)m * CNN_STATS_STRIDE * sizeof *st), bo = upload_guarded(NULL, 0, n, 3);
    char what[96];
    snprintf(what, sizeof what, "score inputs m %d c %d plane %d", m, c, plane);
    CHECK_OK(cnn_gm_score_inputs(&g_cl, bx, x_off, c, plane, bu, m, bs, bo, what));
    float *o = download_guarded(bo, 0, n, 3, what);
    double *ref = malloc(n * sizeof *ref), *bound = malloc(n * sizeof *bound);
    for (int j = 0; j < m; j++) {
        double mn = st[(size_t)j * CNN_STATS_STRIDE + CNN_ST_MIN], mx = st[(size_t)j * CNN_STATS_STRIDE + CNN_ST_MAX];
        for (size_t i = 0; i < len; i++) {
            double mask = (up[(size_t)j * plane + i % plane] - mn) / (mx - mn + 1e-8);
            ref[(size_t)j * len + i] = x[i] * mask;
            bound[(size_t)j * len + i] = 1e-6 * fabs(x[i]) + 1e-30;
        }
    }
    CHECK(check_bound(o, ref, bound, n, what), "%s", what);
    free(x);
    free(up);
    free(st);
    free(o);
    free(ref);
    free(bound);
    release(bx);
    release(bu);
    release(bs);
    release(bo);
}

static void test_ablate_case(int m, int c, int plane, int k0, size_t off)
{
    size_t n = (size_t)m * c * plane;
    float *x = malloc(n * sizeof *x);
    fill_nonzero_rel(x, n, -2.0f, 2.0f);
    cl_mem b = upload_guarded(x, off, n, 2);
    char what[96];
    snprintf(what, sizeof what, "ablate m %d c %d plane %d k0 %d", m, c, plane, k0);
    CHECK_OK(cnn_gm_ablate(&g_cl, b, off, c, plane, k0, m, what));
    float *o = download_guarded(b, off, n, 2, what);
    size_t bad = 0;
    for (int j = 0; j < m; j++)
        for (int k = 0; k < c; k++)
            for (int p = 0; p < plane; p++) {
                size_t i = ((size_t)j * c + k) * plane + p;
                bad += o[off + i] != (k == k0 + j ? 0.0f : x[i]);
            }
    CHECK(bad == 0, "%s: %zu values wrong", what, bad);
    free(x);
    free(o);
    release(b);
}

static void test_absmul_case(int c, int plane, bool per_channel, size_t a_off, size_t b_off)
{
    size_t n = (size_t)c * plane, nb = per_channel ? (size_t)c : n;
    float *a = malloc(n * sizeof *a), *bv = malloc(nb * sizeof *bv);
    fill_nonzero_rel(a, n, -3.0f, 3.0f);
    fill_nonzero_rel(bv, nb, -2.0f, 2.0f);
    cl_mem ba = upload_guarded(a, a_off, n, 1), bb = upload_guarded(bv, b_off, nb, 1);
    cl_mem bo = upload_guarded(NULL, 0, n, 2);
    char what[96];
    snprintf(what, sizeof what, "absmul c %d plane %d per-channel %d", c, plane, per_channel);
    CHECK_OK(cnn_gm_absmul(&g_cl, ba, a_off, bb, b_off, c, plane, per_channel, bo, what));
    float *o = download_guarded(bo, 0, n, 2, what);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += o[i] != fabsf(a[i] * bv[per_channel ? i / plane : i]);
    CHECK(bad == 0, "%s: %zu values differ from |a * b| in float", what, bad);
    free(a);
    free(bv);
    free(o);
    release(ba);
    release(bb);
    release(bo);
}

static void test_fullgrad_acc_case(int c, int h, int w, int H, int W, size_t out_off, bool accumulate)
{
    size_t n = (size_t)c * h * w, n_out = (size_t)H * W;
    float *t = malloc(n * sizeof *t), *o0 = malloc(n_out * sizeof *o0);
    fill_nonzero_rel(t, n, 0.01f, 4.0f);
    fill_nonzero_rel(o0, n_out, -1.0f, 1.0f);
    float *st = host_minmax(t, c, (size_t)h * w);
    cl_mem bt = upload(t, n * sizeof *t), bs = upload(st, (size_t)c * CNN_STATS_STRIDE * sizeof *st);
    cl_mem bo = upload_guarded(o0, out_off, n_out, 3);
    char what[96];
    snprintf(what, sizeof what, "fullgrad sum c %d %dx%d -> %dx%d acc %d", c, h, w, H, W, accumulate);
    CHECK_OK(cnn_gm_fullgrad_acc(&g_cl, bt, 0, c, h, w, bs, bo, out_off, H, W, accumulate, what));
    float *o = download_guarded(bo, out_off, n_out, 3, what);
    double *ref = malloc(n_out * sizeof *ref), *bound = malloc(n_out * sizeof *bound);
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) {
            int y0, y1, x0, x1;
            float ly, lx;
            ref_axis(y, h, H, &y0, &y1, &ly);
            ref_axis(xx, w, W, &x0, &x1, &lx);
            size_t q = (size_t)y * W + xx;
            double sum = accumulate ? o0[q] : 0;
            for (int k = 0; k < c; k++) {
                /* pytorch-grad-cam's order: normalise, then resize */
                const float *m = t + (size_t)k * h * w;
                double mn = st[(size_t)k * CNN_STATS_STRIDE + CNN_ST_MIN];
                double mx = st[(size_t)k * CNN_STATS_STRIDE + CNN_ST_MAX];
                double v[4] = {m[y0 * w + x0], m[y0 * w + x1], m[y1 * w + x0], m[y1 * w + x1]};
                for (int i = 0; i < 4; i++) v[i] = (v[i] - mn) / (1e-7 + (mx - mn));
                sum += (1.0 - ly) * ((1.0 - lx) * v[0] + lx * v[1]) + ly * ((1.0 - lx) * v[2] + lx * v[3]);
            }
            ref[q] = sum;
            bound[q] = 1e-6 * (c + (accumulate ? fabs(o0[q]) : 0)) + 1e-30;
        }
    CHECK(check_bound(o + out_off, ref, bound, n_out, what), "%s", what);
    free(t);
    free(o0);
    free(st);
    free(o);
    free(ref);
    free(bound);
    release(bt);
    release(bs);
    release(bo);
}

static void test_cam_family_ops(void)
{
    test_resize_corners_case(1, 7, 7, 224, 224, 3, 5);
    test_resize_corners_case(3, 5, 9, 28, 31, 1, 2);
    test_resize_corners_case(2, 1, 1, 4, 3, 1, 1);
    test_resize_corners_case(1, 14, 14, 14, 14, 2, 2);
    test_score_inputs_case(5, 3, 17 * 19, 7);
    test_score_inputs_case(1, 1, 28 * 28, 0);
    test_ablate_case(4, 6, 7 * 5, 2, 3);
    test_ablate_case(1, 1, 9, 0, 0);
    test_absmul_case(5, 49, true, 3, 1);
    test_absmul_case(3, 33, false, 0, 9);
    test_fullgrad_acc_case(6, 7, 7, 28, 28, 5, false);
    test_fullgrad_acc_case(3, 28, 28, 28, 28, 0, true);
    test_fullgrad_acc_case(4, 5, 3, 17, 29, 2, true);
}

/* ---- mul, axpby ---- */

static void test_elementwise(void)
{
    const size_t n = 4099, ao = 3, bo = 17, oo = 5;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *d = malloc(n * sizeof *d);
    fill_nonzero_rel(a, n, -3, 3);
    fill_nonzero_rel(b, n, -2, 5);
    fill_nonzero_rel(d, n, -1, 1);
    cl_mem ba = upload_guarded(a, ao, n, 2), bb = upload_guarded(b, bo, n, 2), bout = upload_guarded(NULL, oo, n, 2);
    CHECK_OK(cnn_gm_mul(&g_cl, ba, ao, bb, bo, bout, oo, n, "mul"));
    float *o = download_guarded(bout, oo, n, 2, "mul");
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += o[oo + i] != (float)((double)a[i] * b[i]);
    CHECK(bad == 0, "mul: %zu values differ from the correctly rounded product", bad);
    free(o);
    /* in place: out = a */
    CHECK_OK(cnn_gm_mul(&g_cl, ba, ao, bb, bo, ba, ao, n, "mul in place"));
    o = download_guarded(ba, ao, n, 2, "mul in place");
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += o[ao + i] != (float)((double)a[i] * b[i]);
    CHECK(bad == 0, "mul in place: %zu values differ", bad);
    free(o);

    /* axpby: dst = dst * keep + src * scale, twice (a running mean). */
    cl_mem bd = upload_guarded(d, oo, n, 2);
    const float scale = 0.3f, keep = 0.7f;
    CHECK_OK(cnn_gm_axpby(&g_cl, bb, bo, scale, bd, oo, keep, n, "axpby"));
    o = download_guarded(bd, oo, n, 2, "axpby");
    double *ref = malloc(n * sizeof *ref), *bound = malloc(n * sizeof *bound);
    for (size_t i = 0; i < n; i++) {
        ref[i] = (double)d[i] * keep + (double)b[i] * scale;
        bound[i] = 2 * EPS24 * (fabs((double)d[i] * keep) + fabs((double)b[i] * scale));
    }
    CHECK(check_bound(o + oo, ref, bound, n, "axpby"), "axpby");
    free(o);
    /* keep 0 on a NaN destination: src * scale exactly. */
    cl_mem bnan = upload_guarded(NULL, 1, n, 2);
    CHECK_OK(cnn_gm_axpby(&g_cl, bb, bo, scale, bnan, 1, 0.0f, n, "axpby keep 0"));
    o = download_guarded(bnan, 1, n, 2, "axpby keep 0");
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += o[1 + i] != b[i] * scale;
    CHECK(bad == 0, "axpby keep 0: %zu values differ from src * scale", bad);
    free(o);
    free(a);
    free(b);
    free(d);
    free(ref);
    free(bound);
    release(ba);
    release(bb);
    release(bout);
    release(bd);
    release(bnan);
}

/* ---- noise ---- */

static void philox2x32_10(uint32_t c0, uint32_t c1, uint32_t k, uint32_t out[2])
{
    for (int r = 0; r < 10; r++) {
        uint64_t prod = (uint64_t)0xD256D193u * c0;
        uint32_t hi = (uint32_t)(prod >> 32), lo = (uint32_t)prod;
        c0 = hi ^ k ^ c1;
        c1 = lo;
        k += 0x9E3779B9u;
    }
    out[0] = c0;
    out[1] = c1;
}

static double ref_normal(uint32_t seed, uint32_t k, uint32_t i)
{
    uint32_t r[2];
    philox2x32_10(i, k, seed, r);
    double u1 = (double)((r[0] >> 8) + 1u) / 16777216.0, u2 = (double)((r[1] >> 8) + 1u) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

static void test_philox_kat(void)
{
    /* Random123's kat_vectors, philox2x32 with 10 rounds. */
    static const uint32_t kat[3][5] = {
        {0x00000000u, 0x00000000u, 0x00000000u, 0xff1dae59u, 0x6cd10df2u},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0x2c3f628bu, 0xab4fd7adu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0xdd7ce038u, 0xf62a4c12u},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t r[2];
        philox2x32_10(kat[i][0], kat[i][1], kat[i][2], r);
        CHECK(r[0] == kat[i][3] && r[1] == kat[i][4], "philox2x32-10 vector %d: got %08x %08x", i, r[0], r[1]);
    }
}

static void test_noise(void)
{
    test_philox_kat();
    /* Statistics: x = 0, sigma = 1. */
    const size_t len = 20011;
    const int copies = 8;
    const size_t N = len * copies;
    const uint32_t seed = 0xC0FFEEu;
    float *zero = calloc(len, sizeof *zero);
    cl_mem bz = upload(zero, len * sizeof *zero), bo = upload_guarded(NULL, 0, N, 3);
    CHECK_OK(cnn_gm_noise(&g_cl, bz, 0, len, copies, 0, 1.0f, seed, bo, 0, "noise stats"));
    float *z = download_guarded(bo, 0, N, 3, "noise stats");
    double s1 = 0, s2 = 0, s4 = 0, within = 0, cel = 0, ccp = 0, zmax = 0;
    size_t nel = 0, ncp = 0, far = 0;
    double worst = 0;
    for (size_t t = 0; t < N; t++) {
        double v = z[t];
        s1 += v;
        s2 += v * v;
        s4 += v * v * v * v;
        within += fabs(v) < 1.0;
        if (fabs(v) > zmax) zmax = fabs(v);
        size_t k = t / len, i = t % len;
        if (i + 1 < len) {
            cel += v * z[t + 1];
            nel++;
        }
        if (k + 1 < (size_t)copies) {
            ccp += v * z[t + len];
            ncp++;
        }
        double e = fabs(v - ref_normal(seed, (uint32_t)k, (uint32_t)i));
        if (e > worst) worst = e;
        far += !(e <= 1e-5);
    }
    double mean = s1 / N, var = s2 / N - mean * mean, sd = sqrt(var);
    double kurt = (s4 / N) / (var * var), frac = within / N;
    double r_el = (cel / nel - mean * mean) / var, r_cp = (ccp / ncp - mean * mean) / var;
    printf("noise: mean %.5f std %.5f P(|z|<1) %.5f kurtosis %.4f corr %.5f %.5f max|z| %.3f, worst vs C %.2g\n",
           mean, sd, frac, kurt, r_el, r_cp, zmax, worst);
    CHECK(far == 0, "noise: %zu deviates differ from the C reference by > 1e-5 (worst %g)", far, worst);
    CHECK(fabs(mean) < 0.0125, "noise mean %g", mean);
    CHECK(fabs(sd - 1) < 0.01, "noise std %g", sd);
    CHECK(fabs(frac - 0.682689) < 0.006, "noise P(|z| < 1) = %g", frac);
    CHECK(fabs(kurt - 3) < 0.12, "noise kurtosis %g", kurt);
    CHECK(fabs(r_el) < 0.0125 && fabs(r_cp) < 0.0125, "noise correlations %g (elements) %g (copies)", r_el, r_cp);
    CHECK(zmax <= 5.78, "noise max |z| %g", zmax);
    free(z);
    free(zero);
    release(bz);
    release(bo);

    /* Split, determinism and another seed on x != 0, sigma 0.3, offsets. */
    const size_t l2 = 1031, xo = 11, oo = 7;
    float *x = malloc(l2 * sizeof *x);
    fill_nonzero_rel(x, l2, -2, 2);
    cl_mem bx = upload_guarded(x, xo, l2, 2);
    cl_mem b8 = upload_guarded(NULL, oo, 8 * l2, 2), b8b = upload_guarded(NULL, oo, 8 * l2, 2);
    cl_mem bsplit = upload_guarded(NULL, oo, 8 * l2, 2), bseed = upload_guarded(NULL, oo, 8 * l2, 2);
    CHECK_OK(cnn_gm_noise(&g_cl, bx, xo, l2, 8, 0, 0.3f, 42, b8, oo, "noise 8"));
    CHECK_OK(cnn_gm_noise(&g_cl, bx, xo, l2, 8, 0, 0.3f, 42, b8b, oo, "noise 8 again"));
    CHECK_OK(cnn_gm_noise(&g_cl, bx, xo, l2, 3, 0, 0.3f, 42, bsplit, oo, "noise 3 of 8"));
    CHECK_OK(cnn_gm_noise(&g_cl, bx, xo, l2, 5, 3, 0.3f, 42, bsplit, oo + 3 * l2, "noise 5 of 8"));
    CHECK_OK(cnn_gm_noise(&g_cl, bx, xo, l2, 8, 0, 0.3f, 43, bseed, oo, "noise seed 43"));
    float *o8 = download_guarded(b8, oo, 8 * l2, 2, "noise 8");
    float *o8b = download_guarded(b8b, oo, 8 * l2, 2, "noise 8 again");
    float *osp = download_guarded(bsplit, oo, 8 * l2, 2, "noise split");
    float *osd = download_guarded(bseed, oo, 8 * l2, 2, "noise seed");
    CHECK(memcmp(o8, o8b, (oo + 8 * l2) * sizeof(float)) == 0, "noise: two runs differ");
    CHECK(memcmp(o8, osp, (oo + 8 * l2) * sizeof(float)) == 0, "noise: 3 + 5 copies differ from 8");
    size_t same = 0, far2 = 0;
    for (size_t t = 0; t < 8 * l2; t++) {
        same += o8[oo + t] == osd[oo + t];
        size_t k = t / l2, i = t % l2;
        double ref = (double)x[i] + 0.3 * ref_normal(42, (uint32_t)k, (uint32_t)i);
        far2 += !(fabs(o8[oo + t] - ref) <= 0.3 * 1e-5 + 2 * EPS24 * (fabs(ref) + 2));
    }
    CHECK(same < 8 * l2 / 100, "noise: seeds 42 and 43 agree on %zu of %zu values", same, 8 * l2);
    CHECK(far2 == 0, "noise x + sigma z: %zu values out of tolerance", far2);
    /* sigma 0: x exactly. */
    CHECK_OK(cnn_gm_noise(&g_cl, bx, xo, l2, 2, 5, 0.0f, 7, bseed, oo, "noise sigma 0"));
    free(osd);
    osd = download(bseed, (oo + 2 * l2) * sizeof(float));
    size_t bad0 = 0;
    for (size_t t = 0; t < 2 * l2; t++) bad0 += osd[oo + t] != x[t % l2];
    CHECK(bad0 == 0, "noise sigma 0: %zu values differ from x", bad0);
    free(o8);
    free(o8b);
    free(osp);
    free(osd);
    free(x);
    release(bx);
    release(b8);
    release(b8b);
    release(bsplit);
    release(bseed);
}

/* ---- path ---- */

static void test_path_case(size_t len, int copies, int k0, int steps, size_t xo, size_t bo, size_t oo)
{
    float *x = malloc(len * sizeof *x), *base = malloc(len * sizeof *base);
    fill_nonzero_rel(x, len, -2, 3);
    fill_nonzero_rel(base, len, -0.5f, 0.5f);
    size_t total = len * (size_t)copies;
    cl_mem bx = upload_guarded(x, xo, len, 1), bb = upload_guarded(base, bo, len, 1);
    cl_mem bout = upload_guarded(NULL, oo, total, 4);
    char what[96];
    snprintf(what, sizeof what, "path len %zu copies %d k0 %d steps %d", len, copies, k0, steps);
    CHECK_OK(cnn_gm_path(&g_cl, bx, xo, bb, bo, len, copies, k0, steps, bout, oo, what));
    float *o = download_guarded(bout, oo, total, 4, what);
    double *ref = malloc(total * sizeof *ref), *bound = malloc(total * sizeof *bound);
    for (size_t t = 0; t < total; t++) {
        size_t k = t / len, i = t % len;
        double alpha = ((double)k0 + (double)k + 0.5) / steps;
        double d = (double)x[i] - base[i];
        ref[t] = base[i] + alpha * d;
        bound[t] = 4 * EPS24 * (fabs(base[i]) + fabs(d)) + 1e-30;
    }
    CHECK(check_bound(o + oo, ref, bound, total, what), "%s", what);
    free(x);
    free(base);
    free(o);
    free(ref);
    free(bound);
    release(bx);
    release(bb);
    release(bout);
}

static void test_path(void)
{
    test_path_case(1001, 4, 2, 10, 3, 5, 7);
    test_path_case(3 * 32 * 32, 3, 47, 50, 1, 2, 9);
    test_path_case(257, 1, 0, 1, 4, 4, 4);
}

/* ---- overlay ---- */

static void test_overlay_case(int c_img, size_t n_px, float alpha, bool out_is_heat)
{
    size_t ni = n_px * (size_t)c_img, nh = n_px * 3;
    uint8_t *img = malloc(ni), *heat = malloc(nh);
    for (size_t i = 0; i < ni; i++) img[i] = (uint8_t)rng_index(256);
    for (size_t i = 0; i < nh; i++) heat[i] = (uint8_t)rng_index(256);
    cl_mem bi = upload(img, ni), bh = upload(heat, nh), bo = out_is_heat ? bh : buffer(nh + 8);
    if (!out_is_heat) {
        uint8_t *p = malloc(nh + 8);
        memset(p, 0xA5, nh + 8);
        CHECK_OK(cnn_cl_write(&g_cl, bo, 0, nh + 8, p, "poison"));
        free(p);
    }
    char what[96];
    snprintf(what, sizeof what, "overlay c %d n %zu alpha %g%s", c_img, n_px, (double)alpha,
             out_is_heat ? " in place" : "");
    CHECK_OK(cnn_gm_overlay(&g_cl, bi, c_img, bh, n_px, alpha, bo, what));
    uint8_t *o = download(bo, out_is_heat ? nh : nh + 8);
    size_t bad_f = 0, bad_d = 0, off1 = 0, guards = 0;
    for (size_t p = 0; p < n_px; p++)
        for (int ch = 0; ch < 3; ch++) {
            float iv = img[c_img == 3 ? p * 3 + ch : p], hv = heat[p * 3 + ch];
            float keep = 1.0f - alpha;
            float v = keep * iv;
            float hh = alpha * hv;
            v = v + hh;
            v = floorf(v + 0.5f);
            v = fminf(fmaxf(v, 0.0f), 255.0f);
            int got = o[p * 3 + ch];
            bad_f += got != (int)v;
            double exact = (1.0 - (double)alpha) * iv + (double)alpha * hv;
            double vd = floor(exact + 0.5);
            bool near_tie = fabs(exact - floor(exact) - 0.5) < 1e-4;
            if (got != (int)vd) off1++;
            if (abs(got - (int)vd) > (near_tie ? 1 : 0)) bad_d++;
            if (alpha == 0.0f) bad_d += got != (int)iv;
            if (alpha == 1.0f) bad_d += got != (int)hv;
            if (alpha == 0.5f) bad_d += got != ((int)iv + (int)hv + 1) / 2;
        }
    if (!out_is_heat)
        for (size_t i = nh; i < nh + 8; i++) guards += o[i] != 0xA5;
    CHECK(bad_f == 0, "%s: %zu components differ from the float reference", what, bad_f);
    CHECK(bad_d == 0, "%s: vs double: %zu bad (%zu off by one at .5 ties)", what, bad_d, off1);
    CHECK(guards == 0, "%s: %zu bytes past the output written", what, guards);
    free(img);
    free(heat);
    free(o);
    release(bi);
    release(bh);
    if (!out_is_heat) release(bo);
}

static void test_overlay(void)
{
    const float alphas[] = {0.0f, 0.37f, 0.5f, 1.0f, 0.8f};
    for (int c = 1; c <= 3; c += 2)
        for (int i = 0; i < 5; i++) test_overlay_case(c, 1237, alphas[i], false);
    test_overlay_case(3, 1000, 0.45f, true);
    test_overlay_case(1, 1, 0.6f, true);
}

/* ---- sum_blocks ---- */

static void test_sum_blocks_case(int n_sum, size_t len, size_t so, size_t oo, float scale)
{
    size_t total = (size_t)n_sum * len;
    float *s1 = malloc(total * sizeof *s1), *s2 = malloc(total * sizeof *s2);
    fill_nonzero_rel(s1, total, -4, 4);
    fill_nonzero_rel(s2, total, -1, 2);
    cl_mem b1 = upload_guarded(s1, so, total, 2), b2 = upload_guarded(s2, so, total, 2);
    cl_mem bo = upload_guarded(NULL, oo, len, 3);
    char what[96];
    snprintf(what, sizeof what, "sum_blocks %d x %zu", n_sum, len);
    CHECK_OK(cnn_gm_sum_blocks(&g_cl, b1, so, n_sum, len, scale, bo, oo, false, what));
    float *o = download_guarded(bo, oo, len, 3, what);
    double *ref = malloc(len * sizeof *ref), *bound = malloc(len * sizeof *bound);
    for (size_t i = 0; i < len; i++) {
        double s = 0, sa = 0;
        for (int k = 0; k < n_sum; k++) {
            s += s1[(size_t)k * len + i];
            sa += fabs(s1[(size_t)k * len + i]);
        }
        ref[i] = scale * s;
        bound[i] = (n_sum + 2) * EPS24 * fabs(scale) * sa + 1e-30;
    }
    CHECK(check_bound(o + oo, ref, bound, len, what), "%s", what);
    float *prev = malloc(len * sizeof *prev);
    memcpy(prev, o + oo, len * sizeof *prev);
    free(o);
    CHECK_OK(cnn_gm_sum_blocks(&g_cl, b2, so, n_sum, len, scale, bo, oo, true, what));
    o = download_guarded(bo, oo, len, 3, what);
    for (size_t i = 0; i < len; i++) {
        double s = 0, sa = 0;
        for (int k = 0; k < n_sum; k++) {
            s += s2[(size_t)k * len + i];
            sa += fabs(s2[(size_t)k * len + i]);
        }
        ref[i] = prev[i] + scale * s;
        bound[i] = (n_sum + 2) * EPS24 * (fabs(scale) * sa + fabs(prev[i])) + 1e-30;
    }
    CHECK(check_bound(o + oo, ref, bound, len, what), "%s accumulate", what);
    free(s1);
    free(s2);
    free(o);
    free(prev);
    free(ref);
    free(bound);
    release(b1);
    release(b2);
    release(bo);
}

static void test_sum_blocks(void)
{
    test_sum_blocks_case(5, 1237, 13, 3, 0.2f);
    test_sum_blocks_case(1, 300, 1, 1, 1.0f);
    test_sum_blocks_case(8, 3 * 28 * 28, 2, 9, 0.125f);
}

/* ---- occlusion: positions, occlude, occlusion_map ---- */

/* Window starts along an axis built one by one: i * stride while the
 * window ends inside the side, then one start flush with the edge.
 * pos must hold side entries; returns the count. */
static int ref_positions(int side, int window, int stride, int *pos)
{
    int n = 0;
    for (int p = 0;; p += stride) {
        if (p + window >= side) {
            pos[n++] = side - window;
            return n;
        }
        pos[n++] = p;
    }
}

static void test_positions(void)
{
    int pos[64];
    size_t bad = 0;
    for (int side = 1; side <= 40; side++)
        for (int window = 1; window <= side; window++)
            for (int stride = 1; stride <= 9; stride++) {
                int n = ref_positions(side, window, stride, pos);
                if (cnn_gm_positions(side, window, stride) != n) {
                    if (!bad)
                        fprintf(stderr, "  positions(%d, %d, %d) = %d, expected %d\n", side, window, stride,
                                cnn_gm_positions(side, window, stride), n);
                    bad++;
                }
            }
    CHECK(bad == 0, "cnn_gm_positions: %zu (side, window, stride) combinations give the wrong count", bad);
    /* the defaults at 28 (window 2, stride 1) and 224 (16, 8) */
    CHECK(cnn_gm_positions(28, 2, 1) == 27, "positions(28, 2, 1) = %d", cnn_gm_positions(28, 2, 1));
    CHECK(cnn_gm_positions(224, 16, 8) == 27, "positions(224, 16, 8) = %d", cnn_gm_positions(224, 16, 8));
    CHECK(cnn_gm_positions(13, 4, 3) == 4 && cnn_gm_positions(9, 4, 3) == 3, "positions 13/9, 4, 3");
}

/* Window wi of ny x nx (row-major) as [y0, y0 + window) x [x0, x0 + window). */
static void window_origin(const int *py, const int *px, int nx, int wi, int *y0, int *x0)
{
    *y0 = py[wi / nx];
    *x0 = px[wi % nx];
}

static void test_occlude_case(int c, int h, int w, int window, int stride, size_t xo, size_t bo, size_t oo)
{
    int *py = malloc((size_t)h * sizeof *py), *px = malloc((size_t)w * sizeof *px);
    int ny = ref_positions(h, window, stride, py), nx = ref_positions(w, window, stride, px), nw = ny * nx;
    size_t len = (size_t)c * h * w, total = len * (size_t)nw;
    float *x = malloc(len * sizeof *x), *base = malloc(len * sizeof *base);
    fill_nonzero_rel(x, len, -2, 3);
    fill_nonzero_rel(base, len, -0.5f, 0.5f);
    cl_mem bx = upload_guarded(x, xo, len, 2), bb = upload_guarded(base, bo, len, 2);
    cl_mem b1 = upload_guarded(NULL, oo, total, 3), b2 = upload_guarded(NULL, oo, total, 3);
    char what[128];
    snprintf(what, sizeof what, "occlude c %d %dx%d window %d stride %d (%d x %d windows)", c, h, w, window, stride,
             ny, nx);
    /* all windows in one call; the same as 1 + (nw - 1) and as 3 + rest */
    CHECK_OK(cnn_gm_occlude(&g_cl, bx, xo, bb, bo, c, h, w, window, stride, nw, 0, b1, oo, what));
    int split = nw > 3 ? 3 : 1;
    CHECK_OK(cnn_gm_occlude(&g_cl, bx, xo, bb, bo, c, h, w, window, stride, split, 0, b2, oo, what));
    if (nw > split)
        CHECK_OK(cnn_gm_occlude(&g_cl, bx, xo, bb, bo, c, h, w, window, stride, nw - split, split, b2,
                                oo + (size_t)split * len, what));
    float *o1 = download_guarded(b1, oo, total, 3, what), *o2 = download_guarded(b2, oo, total, 3, what);
    size_t bad = 0, covered_ref = 0, covered_got = 0;
    for (int k = 0; k < nw; k++) {
        int y0, x0;
        window_origin(py, px, nx, k, &y0, &x0);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    size_t i = ((size_t)ch * h + y) * w + xx;
                    bool cov = y >= y0 && y < y0 + window && xx >= x0 && xx < x0 + window;
                    float ref = cov ? base[i] : x[i];
                    float got = o1[oo + (size_t)k * len + i];
                    covered_ref += cov;
                    covered_got += got == base[i] && got != x[i];
                    if (memcmp(&got, &ref, sizeof got) != 0) {
                        if (!bad)
                            fprintf(stderr, "  %s: window %d (%d, %d) ch %d (%d, %d): got %.9g expected %.9g\n", what,
                                    k, y0, x0, ch, y, xx, (double)got, (double)ref);
                        bad++;
                    }
                }
    }
    CHECK(bad == 0, "%s: %zu of %zu values differ", what, bad, total);
    CHECK(covered_ref == (size_t)nw * c * window * window, "%s: %zu covered elements in the reference", what,
          covered_ref);
    CHECK(covered_got == covered_ref, "%s: %zu elements take the baseline, expected %zu", what, covered_got,
          covered_ref);
    CHECK(memcmp(o1 + oo, o2 + oo, total * sizeof *o1) == 0, "%s: split into %d + %d differs from one call", what,
          split, nw - split);
    free(py);
    free(px);
    free(x);
    free(base);
    free(o1);
    free(o2);
    release(bx);
    release(bb);
    release(b1);
    release(b2);
}

static void test_occlusion_map_case(int h, int w, int window, int stride, size_t dof, size_t oo)
{
    int *py = malloc((size_t)h * sizeof *py), *px = malloc((size_t)w * sizeof *px);
    int ny = ref_positions(h, window, stride, py), nx = ref_positions(w, window, stride, px), nw = ny * nx;
    size_t n_px = (size_t)h * w;
    float *d = malloc((size_t)nw * sizeof *d);
    fill_nonzero_rel(d, (size_t)nw, -3, 4);
    cl_mem bd = upload_guarded(d, dof, (size_t)nw, 2), bo = upload_guarded(NULL, oo, n_px, 4);
    char what[128];
    snprintf(what, sizeof what, "occlusion_map %dx%d window %d stride %d (%d x %d windows)", h, w, window, stride, ny,
             nx);
    CHECK_OK(cnn_gm_occlusion_map(&g_cl, bd, dof, h, w, window, stride, bo, oo, what));
    float *o = download_guarded(bo, oo, n_px, 4, what);
    double *ref = malloc(n_px * sizeof *ref), *bound = malloc(n_px * sizeof *bound);
    int *cnt = calloc(n_px, sizeof *cnt), *last = malloc(n_px * sizeof *last);
    for (size_t p = 0; p < n_px; p++) ref[p] = bound[p] = 0;
    for (int k = 0; k < nw; k++) {
        int y0, x0;
        window_origin(py, px, nx, k, &y0, &x0);
        for (int y = y0; y < y0 + window; y++)
            for (int xx = x0; xx < x0 + window; xx++) {
                size_t p = (size_t)y * w + xx;
                ref[p] += d[k];
                bound[p] += fabs(d[k]);
                cnt[p]++;
                last[p] = k;
            }
    }
    size_t gaps = 0, bad_gap = 0, single = 0, bad_single = 0;
    for (size_t p = 0; p < n_px; p++) {
        if (cnt[p]) {
            ref[p] /= cnt[p];
            bound[p] = (cnt[p] + 6) * EPS24 * bound[p] / cnt[p];
        }
        if (cnt[p] == 0) {
            gaps++;
            bad_gap += o[oo + p] != 0.0f;
        } else if (cnt[p] == 1) {
            single++;
            bad_single += o[oo + p] != d[last[p]];
        }
    }
    CHECK(check_bound(o + oo, ref, bound, n_px, what), "%s", what);
    CHECK(bad_gap == 0, "%s: %zu of %zu pixels in no window are not exactly 0", what, bad_gap, gaps);
    CHECK(bad_single == 0, "%s: %zu of %zu pixels in one window differ from its score", what, bad_single, single);
    CHECK(!any_nan(o + oo, n_px), "%s: NaN in the map", what);
    if (stride > window) CHECK(gaps > 0, "%s: the case should leave gaps", what);
    free(py);
    free(px);
    free(d);
    free(o);
    free(ref);
    free(bound);
    free(cnt);
    free(last);
    release(bd);
    release(bo);
}

static void test_occlusion(void)
{
    test_positions();
    /* c, h, w, window, stride, offsets */
    static const int cases[][5] = {
        {1, 28, 28, 2, 1},  /* the Fashion-MNIST default */
        {3, 13, 9, 4, 3},   /* non-square; rows end flush, the last column window clamped (6 -> 5) */
        {2, 10, 7, 2, 4},   /* stride > window: gaps in rows and columns */
        {1, 6, 11, 6, 2},   /* window == height: one row of windows */
        {3, 5, 5, 5, 1},    /* window == both sides: one window */
        {1, 1, 1, 1, 1},
        {1, 17, 23, 1, 1},  /* 1-pixel windows */
        {2, 9, 12, 3, 5},   /* gaps and a clamped last window (10 -> 9) */
        {3, 32, 20, 5, 3},  /* window 5 step 3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *q = cases[i];
        test_occlude_case(q[0], q[1], q[2], q[3], q[4], 1 + i, 7 + i, 3 + 2 * i);
        test_occlusion_map_case(q[1], q[2], q[3], q[4], 5 + i, 2 + i);
    }
    test_occlusion_map_case(224, 224, 16, 8, 1, 9);
    test_occlusion_map_case(28, 28, 5, 3, 0, 0);
}

/* ---- blur ---- */

/* Double reference of the separable blur (rows, then columns). */
static void ref_blur(const double *x, int c, int h, int w, double sigma, int radius, double *out)
{
    size_t plane = (size_t)h * w;
    double *wt = malloc((2 * (size_t)radius + 1) * sizeof *wt), norm = 0;
    for (int j = -radius; j <= radius; j++) norm += wt[j + radius] = exp(-(double)j * j / (2 * sigma * sigma));
    double *tmp = malloc((size_t)c * plane * sizeof *tmp);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                double s = 0;
                for (int j = -radius; j <= radius; j++) {
                    int q = xx + j < 0 ? 0 : xx + j > w - 1 ? w - 1 : xx + j;
                    s += wt[j + radius] * x[ch * plane + (size_t)y * w + q];
                }
                tmp[ch * plane + (size_t)y * w + xx] = s / norm;
            }
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                double s = 0;
                for (int j = -radius; j <= radius; j++) {
                    int q = y + j < 0 ? 0 : y + j > h - 1 ? h - 1 : y + j;
                    s += wt[j + radius] * tmp[ch * plane + (size_t)q * w + xx];
                }
                out[ch * plane + (size_t)y * w + xx] = s / norm;
            }
    free(wt);
    free(tmp);
}

static void test_blur_case(int c, int h, int w, float sigma, size_t xo, size_t oo)
{
    size_t len = (size_t)c * h * w;
    float *x = malloc(len * sizeof *x);
    fill_nonzero_rel(x, len, -2, 3);
    cl_mem bx = upload_guarded(x, xo, len, 2), bo = upload_guarded(NULL, oo, len, 3), bt = buffer(len * sizeof(float));
    char what[128];
    snprintf(what, sizeof what, "blur c %d %dx%d sigma %g", c, h, w, (double)sigma);
    CHECK_OK(cnn_gm_blur(&g_cl, bx, xo, c, h, w, sigma, bt, bo, oo, what));
    float *o = download_guarded(bo, oo, len, 3, what);
    float *xa = download_guarded(bx, xo, len, 2, what); /* the input is not written */
    CHECK(memcmp(xa + xo, x, len * sizeof *x) == 0, "%s: input changed", what);
    double *xd = malloc(len * sizeof *xd), *ad = malloc(len * sizeof *ad);
    double *ref = malloc(len * sizeof *ref), *bound = malloc(len * sizeof *bound);
    int radius = (int)ceil(3.0 * (double)sigma);
    for (size_t i = 0; i < len; i++) {
        xd[i] = x[i];
        ad[i] = fabs((double)x[i]);
    }
    ref_blur(xd, c, h, w, sigma, radius, ref);
    ref_blur(ad, c, h, w, sigma, radius, bound);
    for (size_t i = 0; i < len; i++) bound[i] *= 1e-5;
    CHECK(check_bound(o + oo, ref, bound, len, what), "%s", what);
    free(x);
    free(xa);
    free(o);
    free(xd);
    free(ad);
    free(ref);
    free(bound);
    release(bx);
    release(bo);
    release(bt);
}

static void test_blur(void)
{
    CHECK(cnn_gm_blur_sigma(28, 28) == 1.0f, "blur sigma 28x28: %g", (double)cnn_gm_blur_sigma(28, 28));
    CHECK(cnn_gm_blur_sigma(224, 224) == 7.0f, "blur sigma 224: %g", (double)cnn_gm_blur_sigma(224, 224));
    CHECK(cnn_gm_blur_sigma(100, 300) == 3.125f, "blur sigma 100x300: %g", (double)cnn_gm_blur_sigma(100, 300));
    CHECK(cnn_gm_blur_sigma(64, 20) == 1.0f, "blur sigma 64x20: %g", (double)cnn_gm_blur_sigma(64, 20));
    CHECK(cnn_gm_blur_sigma(48, 64) == 1.5f, "blur sigma 48x64: %g", (double)cnn_gm_blur_sigma(48, 64));
    test_blur_case(1, 28, 28, cnn_gm_blur_sigma(28, 28), 3, 5);
    test_blur_case(3, 17, 29, 2.5f, 1, 2);
    test_blur_case(2, 5, 7, 3.0f, 4, 1);   /* radius 9 > both sides: edges repeated many times */
    test_blur_case(1, 1, 9, 0.4f, 2, 2);   /* one row, radius 2 */
    test_blur_case(2, 11, 1, 1.25f, 0, 0); /* one column */
    test_blur_case(3, 48, 64, cnn_gm_blur_sigma(48, 64), 7, 9);
    test_blur_case(3, 224, 224, cnn_gm_blur_sigma(224, 224), 1, 1); /* radius 21 */
    test_blur_case(1, 9, 13, 0.1f, 1, 3); /* radius 1, side taps ~2e-22: a copy within the bound */
}

/* ---- deletion / insertion curves ---- */

static void test_curve_case(int c, int plane, int steps, int s0, int copies, size_t ao, size_t bo, size_t oo)
{
    size_t len = (size_t)c * plane, total = len * (size_t)copies;
    float *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
    fill_nonzero_rel(a, len, -2, 3);
    fill_nonzero_rel(b, len, 4, 9); /* disjoint from a: every selection shows */
    uint32_t *rank = malloc((size_t)plane * sizeof *rank);
    for (int p = 0; p < plane; p++) rank[p] = (uint32_t)p;
    for (int p = plane - 1; p > 0; p--) { /* a random permutation */
        size_t q = rng_index((size_t)p + 1);
        uint32_t t = rank[p];
        rank[p] = rank[q];
        rank[q] = t;
    }
    cl_mem ba = upload_guarded(a, ao, len, 2), bb = upload_guarded(b, bo, len, 2);
    cl_mem br = upload(rank, (size_t)plane * sizeof *rank);
    cl_mem b1 = upload_guarded(NULL, oo, total, 3), b2 = upload_guarded(NULL, oo, total, 3);
    char what[128];
    snprintf(what, sizeof what, "curve c %d plane %d steps %d [%d, %d)", c, plane, steps, s0, s0 + copies);
    CHECK_OK(cnn_gm_curve(&g_cl, ba, ao, bb, bo, br, c, plane, copies, s0, steps, b1, oo, what));
    int split = copies > 3 ? 3 : 1;
    CHECK_OK(cnn_gm_curve(&g_cl, ba, ao, bb, bo, br, c, plane, split, s0, steps, b2, oo, what));
    if (copies > split)
        CHECK_OK(cnn_gm_curve(&g_cl, ba, ao, bb, bo, br, c, plane, copies - split, s0 + split, steps, b2,
                              oo + (size_t)split * len, what));
    float *o1 = download_guarded(b1, oo, total, 3, what), *o2 = download_guarded(b2, oo, total, 3, what);
    size_t bad = 0, bad_count = 0;
    for (int k = 0; k < copies; k++) {
        int s = s0 + k;
        uint64_t count = (uint64_t)s * (uint64_t)plane / (uint64_t)steps;
        size_t from_a = 0;
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < plane; p++) {
                size_t i = (size_t)ch * plane + p;
                float ref = rank[p] < count ? a[i] : b[i];
                float got = o1[oo + (size_t)k * len + i];
                from_a += got == a[i];
                if (memcmp(&got, &ref, sizeof got) != 0) {
                    if (!bad)
                        fprintf(stderr, "  %s: step %d ch %d pixel %d (rank %u, count %llu): got %.9g expected %.9g\n",
                                what, s, ch, p, rank[p], (unsigned long long)count, (double)got, (double)ref);
                    bad++;
                }
            }
        bad_count += from_a != (size_t)c * count;
        if (s == 0) bad_count += from_a != 0;
        if (s == steps) bad_count += from_a != len;
    }
    CHECK(bad == 0, "%s: %zu of %zu values differ", what, bad, total);
    CHECK(bad_count == 0, "%s: %zu steps take the wrong number of pixels from a", what, bad_count);
    CHECK(memcmp(o1 + oo, o2 + oo, total * sizeof *o1) == 0, "%s: split %d + %d differs from one call", what, split,
          copies - split);
    free(a);
    free(b);
    free(rank);
    free(o1);
    free(o2);
    release(ba);
    release(bb);
    release(br);
    release(b1);
    release(b2);
}

static void test_curve(void)
{
    test_curve_case(1, 28 * 28, 16, 0, 17, 3, 5, 7);       /* Fashion-MNIST, --curves 16 */
    test_curve_case(3, 13 * 11, 7, 0, 8, 1, 2, 9);         /* 143 px in 7 steps: uneven counts */
    test_curve_case(2, 50, 64, 0, 65, 4, 1, 2);            /* more steps than pixels: repeated counts */
    test_curve_case(3, 37, 5, 2, 4, 0, 3, 1);              /* s0 > 0, up to the last step */
    test_curve_case(3, 5, 1, 0, 2, 2, 2, 2);               /* one step: all b, then all a */
    test_curve_case(1, 224 * 224, 1000, 990, 11, 1, 1, 5); /* s * plane > 2^25 */
}

/* ---- argument errors ---- */

static void expect_input_error(int st, const char *what)
{
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "tap X"), "%s: status %d, message '%s'", what, st,
          cnn_error_message());
}

static void test_errors(void)
{
    cl_mem b = buffer(4096), small = buffer(16), o = buffer(4096);
    /* chan ops */
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, b, 0, 0, 2, 4, o, 0, "tap X"), "n 0");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, b, 0, 1, 0, 4, o, 0, "tap X"), "c 0");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, b, 0, 1, 2, 0, o, 0, "tap X"), "plane 0");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, small, 0, 1, 2, 4, o, 0, "tap X"), "g too small");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, b, 1017, 1, 2, 4, o, 0, "tap X"), "g offset past the end");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, b, 0, 1, 2, 4, o, 1021, "tap X"), "out offset past the end");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, b, 0, 1, 2, 4, b, 4, "tap X"), "out overlaps g");
    expect_input_error(cnn_gm_chan_maxabs(&g_cl, NULL, 0, 1, 2, 4, o, 0, "tap X"), "g NULL");
    expect_input_error(cnn_gm_chan_dot(&g_cl, b, 0, small, 0, 1, 2, 4, o, 0, "tap X"), "x too small");
    expect_input_error(cnn_gm_chan_dot(&g_cl, b, 0, NULL, 0, 1, 2, 4, o, 0, "tap X"), "x NULL");
    expect_input_error(cnn_gm_chan_dot(&g_cl, b, 0, b, 0, 1, 2, 4, o, SIZE_MAX - 2, "tap X"), "offset overflow");
    /* cam */
    expect_input_error(cnn_gm_cam(&g_cl, (cnn_cam_kind)6, b, 0, b, 0, 1, 2, 4, o, o, 16, "tap X"), "kind 6");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_XGRADCAM, b, 0, NULL, 0, 1, 2, 4, o, o, 16, "tap X"),
                       "xgradcam without gradients");
    /* the CAM family's own-pass ops */
    expect_input_error(cnn_gm_ablate(&g_cl, b, 0, 2, 2, 1, 2, "tap X"), "ablate past the last channel");
    expect_input_error(cnn_gm_ablate(&g_cl, small, 0, 4, 4, 0, 2, "tap X"), "ablate buffer too small");
    expect_input_error(cnn_gm_score_inputs(&g_cl, b, 0, 3, 100, o, 8, small, o, "tap X"), "score stats too small");
    expect_input_error(cnn_gm_score_inputs(&g_cl, b, 0, 3, 100, b, 2, o, b, "tap X"), "score output over input");
    expect_input_error(cnn_gm_absmul(&g_cl, b, 0, small, 0, 2, 10, false, o, "tap X"), "absmul b too small");
    expect_input_error(cnn_gm_fullgrad_acc(&g_cl, b, 0, 3, 4, 4, small, o, 0, 8, 8, false, "tap X"),
                       "fullgrad stats too small");
    expect_input_error(cnn_gm_resize_ex(&g_cl, b, 0, 1, 0, 4, o, 0, 8, 8, true, "tap X"), "corners h 0");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_GRADCAM, b, 0, b, 0, 1, 2, 4, NULL, o, 16, "tap X"),
                       "weights NULL");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_GRADCAM, b, 0, b, 0, 3, 2, 4, small, o, 16, "tap X"),
                       "weights too small");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_GRADCAMPP, b, 0, small, 0, 1, 2, 4, o, o, 16, "tap X"),
                       "g too small");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_LAYERCAM, small, 0, b, 0, 1, 2, 4, NULL, o, 16, "tap X"),
                       "a too small");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_LAYERCAM, b, 0, b, 0, 1, 2, 4, NULL, b, 4, "tap X"),
                       "out overlaps a");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_GRADCAM, b, 0, b, 0, 1, -2, 4, o, o, 16, "tap X"), "c < 0");
    expect_input_error(cnn_gm_cam(&g_cl, CNN_CAM_GRADCAM, b, 0, b, 0, 1, 2, 4, o, o, 0, "tap X"),
                       "weights overlap out");
    /* resize */
    expect_input_error(cnn_gm_resize(&g_cl, b, 0, 1, 4, 4, o, 0, 0, 4, "tap X"), "H 0");
    expect_input_error(cnn_gm_resize(&g_cl, b, 0, 1, 4, 4, small, 0, 4, 4, "tap X"), "out too small");
    expect_input_error(cnn_gm_resize(&g_cl, b, 0, 1, 4, 4, b, 8, 4, 4, "tap X"), "out overlaps in");
    /* exact fit: 16 floats in 64 bytes works, one more does not */
    CHECK_OK(cnn_gm_resize(&g_cl, b, 0, 1, 4, 4, o, 1008, 4, 4, "tap X"));
    expect_input_error(cnn_gm_resize(&g_cl, b, 0, 1, 4, 4, o, 1009, 4, 4, "tap X"), "out one past the end");
    /* element-wise */
    expect_input_error(cnn_gm_mul(&g_cl, b, 0, b, 0, o, 0, 0, "tap X"), "mul n 0");
    expect_input_error(cnn_gm_mul(&g_cl, b, 0, b, 0, small, 0, 5, "tap X"), "mul out too small");
    expect_input_error(cnn_gm_mul(&g_cl, b, 0, b, 0, b, 1, 8, "tap X"), "mul shifted alias");
    expect_input_error(cnn_gm_axpby(&g_cl, b, 0, NAN, o, 0, 1, 8, "tap X"), "axpby scale NaN");
    expect_input_error(cnn_gm_axpby(&g_cl, b, 0, 1, o, 0, INFINITY, 8, "tap X"), "axpby keep inf");
    expect_input_error(cnn_gm_axpby(&g_cl, b, 0, 1, small, 2, 1, 3, "tap X"), "axpby dst too small");
    /* noise, path */
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 8, 0, 0, 1, 1, o, 0, "tap X"), "noise copies 0");
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 0, 2, 0, 1, 1, o, 0, "tap X"), "noise len 0");
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 8, 2, -1, 1, 1, o, 0, "tap X"), "noise k0 < 0");
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 8, 2, 0, -1, 1, o, 0, "tap X"), "noise sigma < 0");
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 8, 2, 0, NAN, 1, o, 0, "tap X"), "noise sigma NaN");
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 8, 2, 0, 1, 1, small, 0, "tap X"), "noise out too small");
    expect_input_error(cnn_gm_noise(&g_cl, b, 0, 8, 2, 0, 1, 1, b, 4, "tap X"), "noise out overlaps x");
    expect_input_error(cnn_gm_path(&g_cl, b, 0, b, 0, 8, 2, 0, 0, o, 0, "tap X"), "path steps 0");
    expect_input_error(cnn_gm_path(&g_cl, b, 0, b, 0, 8, 2, 9, 10, o, 0, "tap X"), "path k0 + copies > steps");
    expect_input_error(cnn_gm_path(&g_cl, b, 0, small, 0, 8, 2, 0, 10, o, 0, "tap X"), "path base too small");
    expect_input_error(cnn_gm_path(&g_cl, b, 0, o, 0, 8, 2, 0, 10, o, 4, "tap X"), "path out overlaps base");
    /* overlay */
    expect_input_error(cnn_gm_overlay(&g_cl, b, 2, b, 8, 0.5f, o, "tap X"), "overlay c_img 2");
    expect_input_error(cnn_gm_overlay(&g_cl, b, 3, b, 8, 1.5f, o, "tap X"), "overlay alpha 1.5");
    expect_input_error(cnn_gm_overlay(&g_cl, b, 3, b, 8, -0.1f, o, "tap X"), "overlay alpha < 0");
    expect_input_error(cnn_gm_overlay(&g_cl, b, 3, b, 8, NAN, o, "tap X"), "overlay alpha NaN");
    expect_input_error(cnn_gm_overlay(&g_cl, b, 3, small, 8, 0.5f, o, "tap X"), "overlay heat too small");
    expect_input_error(cnn_gm_overlay(&g_cl, b, 3, b, 0, 0.5f, o, "tap X"), "overlay 0 pixels");
    expect_input_error(cnn_gm_overlay(&g_cl, o, 1, b, 8, 0.5f, o, "tap X"), "overlay out is the gray image");
    /* sum_blocks */
    expect_input_error(cnn_gm_sum_blocks(&g_cl, b, 0, 0, 8, 1, o, 0, false, "tap X"), "sum 0 blocks");
    expect_input_error(cnn_gm_sum_blocks(&g_cl, b, 0, 2, 0, 1, o, 0, false, "tap X"), "sum len 0");
    expect_input_error(cnn_gm_sum_blocks(&g_cl, small, 0, 2, 4, 1, o, 0, false, "tap X"), "sum src too small");
    expect_input_error(cnn_gm_sum_blocks(&g_cl, b, 0, 2, 4, 1, b, 4, false, "tap X"), "sum out in block 1");
    expect_input_error(cnn_gm_sum_blocks(&g_cl, b, 0, 2, 4, NAN, o, 0, false, "tap X"), "sum scale NaN");
    /* occlude: b holds 1024 floats; 1 x 8 x 8 = 64 per copy */
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 4, 5, 1, 1, 0, o, 0, "tap X"), "occlude window > w");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 4, 8, 5, 1, 1, 0, o, 0, "tap X"), "occlude window > h");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 0, 1, 1, 0, o, 0, "tap X"), "occlude window 0");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 2, 0, 1, 0, o, 0, "tap X"), "occlude stride 0");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 0, 8, 8, 2, 1, 1, 0, o, 0, "tap X"), "occlude c 0");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 2, 1, 0, 0, o, 0, "tap X"), "occlude copies 0");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 2, 1, 1, -1, o, 0, "tap X"), "occlude w0 < 0");
    /* 8 x 8, window 4, stride 4: 2 x 2 windows */
    CHECK_OK(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 4, 4, 4, 0, o, 0, "tap X"));
    CHECK_OK(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 4, 4, 1, 3, o, 0, "tap X"));
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 4, 4, 5, 0, o, 0, "tap X"),
                       "occlude copies past the windows");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 4, 4, 2, 3, o, 0, "tap X"),
                       "occlude w0 + copies past the windows");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 4, 4, 1, 4, o, 0, "tap X"),
                       "occlude w0 past the windows");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 64, 1, 8, 8, 2, 1, 1, 0, small, 0, "tap X"),
                       "occlude out too small");
    expect_input_error(cnn_gm_occlude(&g_cl, small, 0, b, 64, 1, 8, 8, 2, 1, 1, 0, o, 0, "tap X"),
                       "occlude x too small");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, b, 990, 1, 8, 8, 2, 1, 1, 0, o, 0, "tap X"),
                       "occlude base past the end");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, o, 64, 1, 8, 8, 2, 1, 2, 0, o, 0, "tap X"),
                       "occlude out (2 copies) overlaps base");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, o, 0, 1, 8, 8, 2, 1, 1, 0, b, 32, "tap X"),
                       "occlude out overlaps x");
    expect_input_error(cnn_gm_occlude(&g_cl, b, 0, o, 0, 1, 8, 8, 2, 1, 1, 0, b, 0, "tap X"), "occlude out is x");
    /* occlusion_map: 8 x 8, window 2 stride 2: 16 window scores */
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 0, 8, 4, 5, 1, o, 0, "tap X"), "occlusion_map window > w");
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 0, 3, 8, 5, 1, o, 0, "tap X"), "occlusion_map window > h");
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 0, 8, 8, 2, 0, o, 0, "tap X"), "occlusion_map stride 0");
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 0, 0, 8, 2, 1, o, 0, "tap X"), "occlusion_map h 0");
    CHECK_OK(cnn_gm_occlusion_map(&g_cl, b, 1008, 8, 8, 2, 2, o, 0, "tap X"));
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 1009, 8, 8, 2, 2, o, 0, "tap X"),
                       "occlusion_map scores one past the end");
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 0, 8, 8, 2, 2, small, 0, "tap X"),
                       "occlusion_map out too small");
    expect_input_error(cnn_gm_occlusion_map(&g_cl, b, 0, 8, 8, 2, 2, b, 8, "tap X"),
                       "occlusion_map out overlaps the scores");
    /* blur: 2 x 8 x 8 = 128 floats */
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, 0.0f, o, b, 512, "tap X"), "blur sigma 0");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, -1.0f, o, b, 512, "tap X"), "blur sigma < 0");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, NAN, o, b, 512, "tap X"), "blur sigma NaN");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, INFINITY, o, b, 512, "tap X"), "blur sigma inf");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, 2e4f, o, b, 512, "tap X"), "blur sigma > 1e4");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 0, 8, 8, 1.0f, o, b, 512, "tap X"), "blur c 0");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 0, 1.0f, o, b, 512, "tap X"), "blur w 0");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, 1.0f, b, o, 0, "tap X"), "blur tmp is x");
    expect_input_error(cnn_gm_blur(&g_cl, b, 64, 2, 8, 8, 1.0f, b, o, 0, "tap X"), "blur tmp overlaps x");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, 1.0f, o, o, 100, "tap X"), "blur out overlaps tmp");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, 1.0f, small, o, 0, "tap X"), "blur tmp too small");
    expect_input_error(cnn_gm_blur(&g_cl, b, 0, 2, 8, 8, 1.0f, o, small, 0, "tap X"), "blur out too small");
    expect_input_error(cnn_gm_blur(&g_cl, b, 900, 2, 8, 8, 1.0f, o, small, 0, "tap X"), "blur x past the end");
    /* curve: 2 channels of 16 pixels (a 4-uint buffer is too small a rank) */
    uint32_t r16h[16];
    for (uint32_t i = 0; i < 16; i++) r16h[i] = 15 - i;
    cl_mem r16 = upload(r16h, sizeof r16h);
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 6, 0, 4, o, 0, "tap X"),
                       "curve 6 copies of 4 steps");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 2, 4, 4, o, 0, "tap X"),
                       "curve s0 + copies > n + 1");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 1, -1, 4, o, 0, "tap X"), "curve s0 < 0");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 1, 0, 0, o, 0, "tap X"), "curve steps 0");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 0, 0, 4, o, 0, "tap X"), "curve copies 0");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 0, 1, 0, 4, o, 0, "tap X"), "curve plane 0");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 0, 16, 1, 0, 4, o, 0, "tap X"), "curve c 0");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, small, 2, 16, 1, 0, 4, o, 0, "tap X"), "curve rank too small");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, NULL, 2, 16, 1, 0, 4, o, 0, "tap X"), "curve rank NULL");
    expect_input_error(cnn_gm_curve(&g_cl, small, 0, b, 32, r16, 2, 16, 1, 0, 4, o, 0, "tap X"), "curve a too small");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 1000, r16, 2, 16, 1, 0, 4, o, 0, "tap X"), "curve b past the end");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 5, 0, 4, o, 900, "tap X"),
                       "curve out past the end");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, o, 32, r16, 2, 16, 2, 0, 4, o, 0, "tap X"), "curve out overlaps b");
    expect_input_error(cnn_gm_curve(&g_cl, o, 40, b, 32, r16, 2, 16, 2, 0, 4, o, 0, "tap X"), "curve out overlaps a");
    expect_input_error(cnn_gm_curve(&g_cl, b, 0, b, 32, o, 2, 16, 1, 0, 4, o, 0, "tap X"), "curve out overlaps rank");
    CHECK_OK(cnn_gm_curve(&g_cl, b, 0, b, 32, r16, 2, 16, 5, 0, 4, o, 0, "tap X"));
    CHECK_OK(clFinish(g_cl.queue) == CL_SUCCESS ? CNN_OK : CNN_ERR_DEVICE);
    release(r16);
    release(b);
    release(small);
    release(o);
}

int main(void)
{
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    if (!g_cl.ctx) return test_summary("test_gradmap");
    printf("device: %s (%s)\n", g_cl.device_name, g_cl.platform_name);

    test_chan();
    test_cam();
    printf("cam and channel ops: worst error / bound %.3g\n", g_worst_ratio);
    g_worst_ratio = 0;
    test_resize();
    printf("resize: worst error / bound %.3g\n", g_worst_ratio);
    g_worst_ratio = 0;
    test_cam_family_ops();
    printf("align-corners resize, Score-CAM inputs, FullGrad sums: worst error / bound %.3g\n", g_worst_ratio);
    test_elementwise();
    test_noise();
    test_path();
    test_overlay();
    test_sum_blocks();
    printf("path, axpby, sum_blocks: worst error / bound %.3g\n", g_worst_ratio);
    g_worst_ratio = 0;
    test_occlusion();
    printf("occlusion map: worst error / bound %.3g\n", g_worst_ratio);
    g_worst_ratio = 0;
    test_blur();
    printf("blur: worst error / bound %.3g\n", g_worst_ratio);
    test_curve();
    test_errors();

    cnn_cl_free(&g_cl);
    return test_summary("test_gradmap");
}
