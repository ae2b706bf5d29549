/* ROAD's masks and noisy linear imputation (viz/road.h), no device:
 *
 *  - percentiles equal numpy's linear rule on hand-worked values;
 *  - MoRF / LeRF masks remove the top / bottom share, ties at the
 *    threshold included (a constant map removes everything);
 *  - imputation of random images under random masks (blobs and scattered
 *    pixels, taller and wider images so both orderings run): kept pixels
 *    are untouched and every filled pixel solves its equation
 *    D_p x_p - sum w_pq x_q = sum w_pq v_q (checked in double on the output,
 *    tolerance 2e-5 for float32 rounding of values in [-2, 2]); the
 *    conjugate-gradient path (forced) equals the Cholesky one to 1e-5;
 *  - a linear ramp is reproduced exactly away from the border (the
 *    symmetric stencil's mean of a plane is the plane), a constant image
 *    everywhere;
 *  - nothing kept: zeros (nothing to debias from);
 *  - noise: mean ~0 and standard deviation within 5 % of the asked one over
 *    the filled pixels; the same seed gives the same image, another seed
 *    another;
 *  - bad arguments: CNN_ERR_INPUT. */
#include "check.h"
#include "viz/road.h"

#include <stdbool.h>
#include <string.h>

static const int dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1}, dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1};
static const double wt[8] = {1.0 / 12, 1.0 / 6, 1.0 / 12, 1.0 / 6, 1.0 / 6, 1.0 / 12, 1.0 / 6, 1.0 / 12};

/* Largest residual of the imputation equations over the removed pixels
 * that have a kept pixel in their group (all of them unless none is kept). */
static double max_residual(const float *out, int c, int h, int w, const uint8_t *keep)
{
    double worst = 0;
    for (int ch = 0; ch < c; ch++) {
        const float *o = out + (size_t)ch * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                if (keep[y * w + x]) continue;
                double d = 0, s = 0;
                for (int k = 0; k < 8; k++) {
                    int yy = y + dy[k], xx = x + dx[k];
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    d += wt[k];
                    s += wt[k] * o[yy * w + xx];
                }
                double r = fabs(d * o[y * w + x] - s);
                if (r > worst) worst = r;
            }
    }
    return worst;
}

static void check_percentiles(void)
{
    const float v[8] = {3, 1, 4, 1, 5, 9, 2, 6}; /* sorted: 1 1 2 3 4 5 6 9 */
    const double q[7] = {0, 30, 50, 60, 75, 90, 100}, want[7] = {1, 2.1, 3.5, 4.2, 5.25, 6.9, 9};
    for (int i = 0; i < 7; i++)
        CHECK(fabs(cnn_road_percentile(v, 8, q[i]) - want[i]) < 1e-12, "P%g = %.17g, want %g", q[i],
              cnn_road_percentile(v, 8, q[i]), want[i]);
    const float one = 7;
    CHECK(cnn_road_percentile(&one, 1, 40) == 7, "one value");
    float withnan[3] = {1, NAN, 2};
    CHECK(isnan(cnn_road_percentile(withnan, 3, 50)), "NaN in, NaN out");

    float m[10];
    uint8_t keep[10];
    for (int i = 0; i < 10; i++) m[i] = (float)((i * 7) % 10); /* 0..9 shuffled */
    long r = cnn_road_mask(m, 10, 50, false, keep);            /* P50 = 4.5: removes 5..9 */
    bool ok = r == 5;
    for (int i = 0; i < 10; i++) ok &= keep[i] == (m[i] < 4.5f);
    CHECK(ok, "MoRF 50 removes the top half (removed %ld)", r);
    r = cnn_road_mask(m, 10, 80, false, keep); /* P80 = 7.2: removes 8, 9 */
    CHECK(r == 2, "MoRF 80 removes 2 (got %ld)", r);
    r = cnn_road_mask(m, 10, 80, true, keep); /* P20 = 1.8: removes 0, 1 */
    ok = r == 2;
    for (int i = 0; i < 10; i++) ok &= keep[i] == (m[i] > 1.8f);
    CHECK(ok, "LeRF 80 removes the bottom 2 (removed %ld)", r);
    r = cnn_road_mask(m, 10, 10, true, keep); /* P90 = 8.1: keeps 9 only */
    CHECK(r == 9 && keep[(9 * 3) % 10] == 1, "LeRF 10 keeps the top pixel (removed %ld)", r);
    for (int i = 0; i < 10; i++) m[i] = 0.25f;
    CHECK(cnn_road_mask(m, 10, 50, false, keep) == 10, "a constant map: MoRF removes every tie");
    CHECK(cnn_road_mask(m, 10, 50, true, keep) == 10, "a constant map: LeRF removes every tie");
}

/* Random image and mask: blobs (discs) removed, plus scattered pixels. */
static void random_case(int c, int h, int w, float *img, uint8_t *keep)
{
    for (int i = 0; i < c * h * w; i++) img[i] = rng_uniform(-2, 2);
    for (int i = 0; i < h * w; i++) keep[i] = rng_uniform(0, 1) > 0.2f;
    for (int d = 0; d < 4; d++) {
        float cy = rng_uniform(0, (float)h), cx = rng_uniform(0, (float)w), r = rng_uniform(2, (float)(h + w) / 6);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if ((y - cy) * (y - cy) + (x - cx) * (x - cx) < r * r) keep[y * w + x] = 0;
    }
}

static void check_imputation(int c, int h, int w)
{
    size_t px = (size_t)h * w, len = (size_t)c * px;
    float *img = xmalloc(len * sizeof *img), *out = xmalloc(len * sizeof *out), *cg = xmalloc(len * sizeof *cg);
    uint8_t *keep = xmalloc(px);
    random_case(c, h, w, img, keep);
    CHECK_OK(cnn_road_impute(img, c, h, w, keep, 0, 1, 0, out));
    bool same = true;
    for (int ch = 0; ch < c; ch++)
        for (size_t p = 0; p < px; p++)
            if (keep[p]) same &= out[ch * px + p] == img[ch * px + p];
    CHECK(same, "%dx%dx%d: kept pixels unchanged", c, h, w);
    double res = max_residual(out, c, h, w, keep);
    CHECK(res < 2e-5, "%dx%dx%d: Cholesky residual %.3g", c, h, w, res);
    CHECK_OK(cnn_road_impute(img, c, h, w, keep, 0, 1, 1, cg)); /* factor limit 1: CG */
    double diff = 0;
    for (size_t i = 0; i < len; i++) diff = fmax(diff, fabs((double)cg[i] - out[i]));
    CHECK(diff < 1e-5, "%dx%dx%d: CG against Cholesky %.3g", c, h, w, diff);
    res = max_residual(cg, c, h, w, keep);
    CHECK(res < 2e-5, "%dx%dx%d: CG residual %.3g", c, h, w, res);

    /* a plane, holes away from the border: filled exactly */
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) img[ch * px + y * w + x] = 0.03f * (float)x - 0.02f * (float)y + (float)ch;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (y == 0 || x == 0 || y == h - 1 || x == w - 1) keep[y * w + x] = 1;
    CHECK_OK(cnn_road_impute(img, c, h, w, keep, 0, 1, 0, out));
    diff = 0;
    for (size_t i = 0; i < len; i++) diff = fmax(diff, fabs((double)out[i] - img[i]));
    CHECK(diff < 1e-5, "%dx%dx%d: a plane is reproduced (%.3g)", c, h, w, diff);
    free(img);
    free(out);
    free(cg);
    free(keep);
}

static void check_edges(void)
{
    enum { C = 3, H = 20, W = 30 };
    size_t px = H * W;
    float *img = xmalloc(C * px * sizeof *img), *out = xmalloc(C * px * sizeof *out);
    float *out2 = xmalloc(C * px * sizeof *out2);
    uint8_t *keep = xmalloc(px);
    /* a constant image: constant everywhere whatever the mask */
    random_case(C, H, W, img, keep);
    for (size_t i = 0; i < C * px; i++) img[i] = 0.75f;
    CHECK_OK(cnn_road_impute(img, C, H, W, keep, 0, 1, 0, out));
    double diff = 0;
    for (size_t i = 0; i < C * px; i++) diff = fmax(diff, fabs(out[i] - 0.75));
    CHECK(diff < 1e-6, "constant image stays constant (%.3g)", diff);
    /* nothing kept: 0 */
    memset(keep, 0, px);
    CHECK_OK(cnn_road_impute(img, C, H, W, keep, 0, 1, 0, out));
    bool zero = true;
    for (size_t i = 0; i < C * px; i++) zero &= out[i] == 0;
    CHECK(zero, "nothing kept: zeros");
    /* noise */
    random_case(C, H, W, img, keep);
    size_t removed = 0;
    for (size_t p = 0; p < px; p++) removed += !keep[p];
    CHECK_OK(cnn_road_impute(img, C, H, W, keep, 0, 1, 0, out));
    CHECK_OK(cnn_road_impute(img, C, H, W, keep, 0.5, 7, 0, out2));
    double s = 0, ss = 0;
    for (int ch = 0; ch < C; ch++)
        for (size_t p = 0; p < px; p++) {
            double d = (double)out2[ch * px + p] - out[ch * px + p];
            if (keep[p]) {
                CHECK(d == 0, "noise on a kept pixel");
                continue;
            }
            s += d;
            ss += d * d;
        }
    double n = (double)C * removed, mean = s / n, sd = sqrt(ss / n - mean * mean);
    CHECK(fabs(mean) < 0.05 && fabs(sd - 0.5) < 0.025, "noise: mean %.4f, sd %.4f over %.0f values", mean, sd, n);
    CHECK_OK(cnn_road_impute(img, C, H, W, keep, 0.5, 7, 0, out));
    CHECK(!memcmp(out, out2, C * px * sizeof *out), "the same seed gives the same image");
    CHECK_OK(cnn_road_impute(img, C, H, W, keep, 0.5, 8, 0, out));
    CHECK(memcmp(out, out2, C * px * sizeof *out) != 0, "another seed gives another image");
    CHECK(cnn_road_impute(img, 0, H, W, keep, 0, 1, 0, out) == CNN_ERR_INPUT, "0 channels refused");
    CHECK(cnn_road_impute(img, C, H, W, keep, -1, 1, 0, out) == CNN_ERR_INPUT, "negative noise refused");
    free(img);
    free(out);
    free(out2);
    free(keep);
}

int main(void)
{
    rng_seed(2022);
    check_percentiles();
    check_imputation(3, 41, 29); /* taller: along rows */
    check_imputation(1, 23, 57); /* wider: along columns */
    check_imputation(3, 64, 64);
    check_edges();
    return test_summary("test_road");
}
