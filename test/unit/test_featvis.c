/* viz/featvis.c on the device against double references:
 *  - the inverse DFT of the Fourier parameterisation: x = irfft2(S, norm
 *    "ortho") / 4, numpy's definition (a complex inverse DFT over rows,
 *    then the real inverse over the half spectrum of each row, whose
 *    constant and Nyquist terms count once and by their real part),
 *    written here as direct sums in double;
 *  - the images (colour matrix, sigmoid) from the pre-image;
 *  - the transform (bilinear resampling under a random affine map, grey
 *    outside) against a double replica, and its backward against central
 *    finite differences of the device's own forward (the map is linear in
 *    the image: differences are exact up to float rounding);
 *  - the whole chain's gradient with respect to the parameters (inverse
 *    DFT, colours, sigmoid, transform, TV and L2) against central finite
 *    differences of a double replica of the objective;
 *  - two Adam steps against a double Adam on the same gradients.
 * Tolerances are stated at each check. */
#include "check.h"
#include "core/util.h"
#include "ops/blas.h"
#include "runtime/clrt.h"
#include "viz/featvis.h"

#include <math.h>
#include <string.h>

static cnn_cl g_cl;
static const double PI = 3.14159265358979323846;

static double rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 16777216.0;
}

static float *read_all(cl_mem b, size_t n)
{
    float *p = cnn_malloc(n * sizeof *p);
    if (p && cnn_cl_read(&g_cl, b, 0, n * sizeof *p, p, "test") < 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* t[h][nc][w] of the spectrum S ([2][H][NC][K]) in double */
static void ref_idft(const float *S, int H, int W, int NC, double *t)
{
    int K = W / 2 + 1;
    double norm = 1.0 / (4.0 * sqrt((double)H * W));
    for (int nc = 0; nc < NC; nc++)
        for (int h = 0; h < H; h++) {
            /* Y[k] = sum_ky S[ky][k] e^{2 pi i h ky / H} */
            for (int w = 0; w < W; w++) {
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    double yr = 0, yi = 0;
                    for (int ky = 0; ky < H; ky++) {
                        double a = 2 * PI * h * ky / H;
                        double sr = S[((size_t)ky * NC + nc) * K + k], si = S[((size_t)(H + ky) * NC + nc) * K + k];
                        yr += sr * cos(a) - si * sin(a);
                        yi += sr * sin(a) + si * cos(a);
                    }
                    double ck = (k == 0 || 2 * k == W) ? 1 : 2, b = 2 * PI * k * w / W;
                    acc += ck * (yr * cos(b) - yi * sin(b));
                }
                t[((size_t)h * NC + nc) * W + w] = acc * norm;
            }
        }
}

static const double k_M[9] = {0.26, 0.09, 0.02, 0.27, 0.00, -0.05, 0.27, -0.09, 0.03};

static void color_matrix(double M[9])
{
    double mx = 0;
    for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int c = 0; c < 3; c++) s += k_M[c * 3 + j] * k_M[c * 3 + j];
        if (sqrt(s) > mx) mx = sqrt(s);
    }
    for (int i = 0; i < 9; i++) M[i] = k_M[i] / mx;
}

/* img [N][C][H][W] from t [H][NC][W] */
static double g_u0[3]; /* the start colour's logits */

static void ref_image(const double *t, int N, int C, int H, int W, bool decor, double *img)
{
    double M[9];
    color_matrix(M);
    for (int n = 0; n < N; n++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    double u = 0;
                    if (decor)
                        for (int j = 0; j < 3; j++) u += M[c * 3 + j] * t[((size_t)y * N * C + n * C + j) * W + x];
                    else u = t[((size_t)y * N * C + n * C + c) * W + x];
                    img[(((size_t)n * C + c) * H + y) * W + x] = 1 / (1 + exp(-(u + g_u0[c])));
                }
}

static double at(const double *p, int y, int x, int H, int W)
{
    return y >= 0 && y < H && x >= 0 && x < W ? p[y * W + x] : 0.5;
}

/* x = gain * bilinear(img, aff) + bias */
static void ref_transform(const double *img, const float *aff, int N, int C, int H, int W, const float *gain,
                          const float *bias, double *xo)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const float *a = aff + 6 * n;
                    /* the device computes the source point in float */
                    float sx = a[0] * (float)x + a[1] * (float)y + a[2], sy = a[3] * (float)x + a[4] * (float)y + a[5];
                    double x0 = floor(sx), y0 = floor(sy), fx = sx - x0, fy = sy - y0;
                    const double *p = img + ((size_t)n * C + c) * H * W;
                    double v = (1 - fy) * ((1 - fx) * at(p, (int)y0, (int)x0, H, W) + fx * at(p, (int)y0, (int)x0 + 1, H, W)) +
                               fy * ((1 - fx) * at(p, (int)y0 + 1, (int)x0, H, W) + fx * at(p, (int)y0 + 1, (int)x0 + 1, H, W));
                    xo[(((size_t)n * C + c) * H + y) * W + x] = gain[c] * v + bias[c];
                }
}

/* L = sum r x - tv TV(img) - l2 sum (img - 0.5)^2 for spectrum S */
static double ref_objective(const float *S, const float *aff, const float *r, int N, int C, int H, int W, bool decor,
                            const float *gain, const float *bias, double tv, double l2)
{
    size_t px = (size_t)N * C * H * W;
    double *t = malloc(px * sizeof *t), *img = malloc(px * sizeof *img), *xo = malloc(px * sizeof *xo);
    ref_idft(S, H, W, N * C, t);
    ref_image(t, N, C, H, W, decor, img);
    ref_transform(img, aff, N, C, H, W, gain, bias, xo);
    double L = 0;
    for (size_t i = 0; i < px; i++) L += r[i] * xo[i];
    for (int p = 0; p < N * C; p++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double v = img[((size_t)p * H + y) * W + x];
                if (y + 1 < H) L -= tv * pow(img[((size_t)p * H + y + 1) * W + x] - v, 2);
                if (x + 1 < W) L -= tv * pow(img[((size_t)p * H + y) * W + x + 1] - v, 2);
                L -= l2 * (v - 0.5) * (v - 0.5);
            }
    free(t);
    free(img);
    free(xo);
    return L;
}

static void test_chain(int C, int H, int W)
{
    const int N = 2;
    const float gain[3] = {3.9f, 4.1f, 4.4f}, bias[3] = {-2.1f, -2.0f, -1.8f}, start[3] = {0.3f, 0.5f, 0.8f};
    for (int c = 0; c < 3; c++) g_u0[c] = log(start[c] / (1.0 - start[c]));
    cnn_fv f;
    CHECK_OK(cnn_fv_create(&f, &g_cl, N, C, H, W, true, cnn_fv_imagenet_colour, gain, bias, start, 7));
    if (!f.P) return;
    /* a spectrum large enough to give the images structure */
    size_t np = f.n_param, px = (size_t)N * C * H * W;
    float *P = read_all(f.P, np), *sc = read_all(f.scale, (size_t)H * f.K);
    uint32_t seed = 99;
    for (size_t i = 0; i < np; i++) P[i] = (float)(rnd(&seed) - 0.5) * 0.4f;
    float *S = malloc(np * sizeof *S);
    for (size_t i = 0; i < np; i++) {
        size_t kx = i % f.K, ky = (i / ((size_t)f.K * N * C)) % H;
        S[i] = P[i] * sc[ky * f.K + kx];
    }
    CHECK_OK(cnn_cl_write(&g_cl, f.P, 0, np * sizeof *P, P, "test"));
    CHECK_OK(cnn_cl_write(&g_cl, f.S, 0, np * sizeof *S, S, "test"));

    /* inverse DFT and images */
    CHECK_OK(cnn_fv_image(&f));
    float *t = read_all(f.t, px), *img = read_all(f.img, px);
    double *rt = malloc(px * sizeof *rt), *rimg = malloc(px * sizeof *rimg);
    ref_idft(S, H, W, N * C, rt);
    ref_image(rt, N, C, H, W, C == 3, rimg);
    double et = 0, mt = 0, ei = 0;
    for (size_t i = 0; i < px; i++) {
        et = fmax(et, fabs(t[i] - rt[i]));
        mt = fmax(mt, fabs(rt[i]));
        ei = fmax(ei, fabs(img[i] - rimg[i]));
    }
    /* float32 sums of H + K products of size ~|S|: 1e-5 of the largest value */
    CHECK(et <= 1e-5 * mt, "C=%d %dx%d: inverse DFT max error %.3g (values up to %.3g)", C, H, W, et, mt);
    CHECK(ei <= 1e-5, "C=%d %dx%d: images max error %.3g", C, H, W, ei);
    CHECK(mt > 0.05, "C=%d: the pre-image has structure (%.3g)", C, mt);

    /* the transform forward against a double replica */
    float aff[12];
    for (int n = 0; n < N; n++) cnn_fv_affine(5, 3 + n, n, H, W, true, aff + 6 * n);
    cl_mem x = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, px * sizeof(float), &x, "test"));
    CHECK_OK(cnn_fv_input(&f, aff, x));
    float *xv = read_all(x, px);
    double *rx = malloc(px * sizeof *rx), *dimg = malloc(px * sizeof *dimg);
    for (size_t i = 0; i < px; i++) dimg[i] = img[i];
    ref_transform(dimg, aff, N, C, H, W, gain, bias, rx);
    double ex = 0;
    for (size_t i = 0; i < px; i++) ex = fmax(ex, fabs(xv[i] - rx[i]));
    CHECK(ex <= 1e-5, "C=%d: transform max error %.3g", C, ex);

    /* the whole chain's gradient: r = d L / d x, then the step's G (d L / d S)
     * against central differences of the double objective in S; tv, l2 on */
    float *r = malloc(px * sizeof *r);
    for (size_t i = 0; i < px; i++) r[i] = (float)(rnd(&seed) - 0.5);
    CHECK_OK(cnn_cl_write(&g_cl, x, 0, px * sizeof *r, r, "test"));
    const float tv = 0.3f, l2 = 0.7f;
    float *P0 = read_all(f.P, np);
    CHECK_OK(cnn_fv_step(&f, x, tv, l2, 0.05f));
    float *G = read_all(f.G, np), *P1 = read_all(f.P, np), *m1 = read_all(f.m, np), *v1 = read_all(f.v, np);
    double worst = 0, gmax = 0;
    int probes = 0;
    for (size_t i = 0; i < np; i += np / 23 + 1) {
        float *Sp = malloc(np * sizeof *Sp);
        memcpy(Sp, S, np * sizeof *Sp);
        double h = 1e-3;
        Sp[i] = (float)(S[i] + h);
        double hp = Sp[i] - (double)S[i];
        double lp = ref_objective(Sp, aff, r, N, C, H, W, C == 3, gain, bias, tv, l2);
        Sp[i] = (float)(S[i] - h);
        double hm = (double)S[i] - Sp[i];
        double lm = ref_objective(Sp, aff, r, N, C, H, W, C == 3, gain, bias, tv, l2);
        double fd = (lp - lm) / (hp + hm);
        worst = fmax(worst, fabs(G[i] - fd));
        gmax = fmax(gmax, fabs(fd));
        probes++;
        free(Sp);
    }
    /* float32 chain, differences in double: 1e-3 of the largest gradient */
    CHECK(worst <= 1e-3 * gmax + 1e-6, "C=%d %dx%d: d L / d S max error %.3g over %d probes (largest %.3g)", C, H, W,
          worst, probes, gmax);
    CHECK(gmax > 1e-3, "C=%d: gradients are not all tiny (%.3g)", C, gmax);

    /* Adam: step 1 and a second step on a new gradient, in double */
    double b1 = 0.9, b2 = 0.999, eps = 1e-8, lr = 0.05, e1 = 0;
    double *m = calloc(np, sizeof *m), *v = calloc(np, sizeof *v), *pp = malloc(np * sizeof *pp);
    for (size_t i = 0; i < np; i++) {
        size_t kx = i % f.K, ky = (i / ((size_t)f.K * N * C)) % H;
        double g = (double)G[i] * sc[ky * f.K + kx];
        m[i] = (1 - b1) * g;
        v[i] = (1 - b2) * g * g;
        pp[i] = P0[i] + lr * (m[i] / (1 - b1)) / (sqrt(v[i] / (1 - b2)) + eps);
        e1 = fmax(e1, fabs(P1[i] - pp[i]) + fabs(m1[i] - m[i]) + fabs(v1[i] - v[i]));
    }
    CHECK(e1 <= 1e-6, "C=%d: Adam step 1 max error %.3g", C, e1);
    CHECK_OK(cnn_fv_image(&f));
    CHECK_OK(cnn_fv_input(&f, aff, x));
    for (size_t i = 0; i < px; i++) r[i] = (float)(rnd(&seed) - 0.5);
    CHECK_OK(cnn_cl_write(&g_cl, x, 0, px * sizeof *r, r, "test"));
    CHECK_OK(cnn_fv_step(&f, x, 0, 0, 0.05f));
    float *G2 = read_all(f.G, np), *P2 = read_all(f.P, np), *S2 = read_all(f.S, np);
    double e2 = 0;
    for (size_t i = 0; i < np; i++) {
        size_t kx = i % f.K, ky = (i / ((size_t)f.K * N * C)) % H;
        double g = (double)G2[i] * sc[ky * f.K + kx];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double p = P1[i] + lr * (m[i] / (1 - b1 * b1)) / (sqrt(v[i] / (1 - b2 * b2)) + eps);
        e2 = fmax(e2, fabs(P2[i] - p) + fabs(S2[i] - p * sc[ky * f.K + kx]) / sc[ky * f.K + kx]);
    }
    CHECK(e2 <= 1e-5, "C=%d: Adam step 2 max error %.3g", C, e2);

    free(P);
    free(sc);
    free(S);
    free(t);
    free(img);
    free(rt);
    free(rimg);
    free(xv);
    free(rx);
    free(dimg);
    free(r);
    free(P0);
    free(G);
    free(P1);
    free(m1);
    free(v1);
    free(m);
    free(v);
    free(pp);
    free(G2);
    free(P2);
    free(S2);
    if (x) clReleaseMemObject(x);
    cnn_fv_free(&f);
}

/* The transform's backward against central differences of the device's
 * forward in the image, pixel parameters (no DFT). */
static void test_transform_grad(void)
{
    const int N = 2, C = 3, H = 11, W = 13;
    const float gain[3] = {2, 3, 4}, bias[3] = {0, 0, 0};
    cnn_fv f;
    CHECK_OK(cnn_fv_create(&f, &g_cl, N, C, H, W, false, NULL, gain, bias, NULL, 3));
    if (!f.P) return;
    size_t px = (size_t)N * C * H * W;
    uint32_t seed = 5;
    float *img = malloc(px * sizeof *img), *r = malloc(px * sizeof *r), *xo = malloc(px * sizeof *xo);
    for (size_t i = 0; i < px; i++) {
        img[i] = (float)rnd(&seed);
        r[i] = (float)(rnd(&seed) - 0.5);
    }
    cl_mem x = NULL;
    CHECK_OK(cnn_cl_buffer(&g_cl, px * sizeof(float), &x, "test"));
    double worst = 0, big = 0;
    for (int trial = 0; trial < 4; trial++) {
        float aff[12];
        for (int n = 0; n < N; n++) cnn_fv_affine(11, trial * 7 + 1, n, H, W, true, aff + 6 * n);
        CHECK_OK(cnn_cl_write(&g_cl, f.img, 0, px * sizeof *img, img, "test"));
        CHECK_OK(cnn_fv_input(&f, aff, x));
        CHECK_OK(cnn_cl_write(&g_cl, x, 0, px * sizeof *r, r, "test"));
        /* fv_step writes the transform's backward into gimg first */
        CHECK_OK(cnn_fv_step(&f, x, 0, 0, 0.0f));
        float *g = read_all(f.gimg, px);
        for (size_t p = trial; p < px; p += 17) {
            double L[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                float keep = img[p];
                img[p] = keep + (sgn ? -0.25f : 0.25f);
                CHECK_OK(cnn_cl_write(&g_cl, f.img, 0, px * sizeof *img, img, "test"));
                CHECK_OK(cnn_fv_input(&f, aff, x));
                CHECK_OK(cnn_cl_read(&g_cl, x, 0, px * sizeof *xo, xo, "test"));
                img[p] = keep;
                double s = 0;
                for (size_t i = 0; i < px; i++) s += (double)r[i] * xo[i];
                L[sgn] = s;
            }
            double fd = (L[0] - L[1]) / 0.5;
            worst = fmax(worst, fabs(g[p] - fd));
            big = fmax(big, fabs(fd));
        }
        free(g);
    }
    /* linear in the image: float rounding of sums over ~600 outputs */
    CHECK(worst <= 1e-4 * (1 + big), "transform backward vs differences: max error %.3g (largest %.3g)", worst, big);
    CHECK(big > 0.1, "the transform moves gradient (%.3g)", big);
    free(img);
    free(r);
    free(xo);
    if (x) clReleaseMemObject(x);
    cnn_fv_free(&f);
}

/* Blur: Fourier parameters times exp(-2 pi^2 sigma^2 |f|^2); pixels through
 * the normalised 3 x 3 Gaussian, edges repeated; both in double. */
static void test_blur(void)
{
    const int N = 2, C = 3, H = 8, W = 9;
    const float gain[3] = {1, 1, 1}, bias[3] = {0, 0, 0}, sigma = 0.8f;
    for (int fourier = 0; fourier < 2; fourier++) {
        cnn_fv f;
        CHECK_OK(cnn_fv_create(&f, &g_cl, N, C, H, W, fourier != 0, NULL, gain, bias, NULL, 1));
        if (!f.P) return;
        size_t np = f.n_param;
        float *P = malloc(np * sizeof *P);
        uint32_t seed = 17;
        for (size_t i = 0; i < np; i++) P[i] = (float)(rnd(&seed) - 0.5);
        float *sc = read_all(f.scale, (size_t)H * f.K), *S = malloc(np * sizeof *S);
        int NC = N * C, K = f.K;
        for (size_t i = 0; i < np; i++) S[i] = P[i] * sc[((i / ((size_t)K * NC)) % H) * K + i % K];
        CHECK_OK(cnn_cl_write(&g_cl, f.P, 0, np * sizeof *P, P, "test"));
        CHECK_OK(cnn_cl_write(&g_cl, f.S, 0, np * sizeof *S, S, "test"));
        CHECK_OK(cnn_fv_blur(&f, sigma));
        float *P1 = read_all(f.P, np), *S1 = read_all(f.S, np);
        double err = 0, moved = 0;
        for (size_t i = 0; i < np; i++) {
            double want;
            if (fourier) {
                size_t kx = i % K, ky = (i / ((size_t)K * NC)) % H;
                double fy = ((int)ky <= (H - 1) / 2 ? (double)ky : (double)ky - H) / H, fx = (double)kx / W;
                want = P[i] * exp(-2 * PI * PI * sigma * sigma * (fy * fy + fx * fx));
            } else {
                size_t x = i % W, p = (i / W) % NC, y = i / ((size_t)W * NC);
                double w1 = exp(-1.0 / (2.0 * sigma * sigma)), acc = 0, norm = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = (int)y + dy, xx = (int)x + dx;
                        yy = yy < 0 ? 0 : yy >= H ? H - 1 : yy;
                        xx = xx < 0 ? 0 : xx >= W ? W - 1 : xx;
                        double w = dy == 0 && dx == 0 ? 1 : dy == 0 || dx == 0 ? w1 : w1 * w1;
                        acc += w * P[((size_t)yy * NC + p) * W + xx];
                        norm += w;
                    }
                want = acc / norm;
            }
            double sci = sc[((i / ((size_t)K * NC)) % H) * K + i % K];
            err = fmax(err, fabs(P1[i] - want) + fabs(S1[i] - want * sci) / sci);
            moved = fmax(moved, fabs(want - P[i]));
        }
        CHECK(err <= 1e-6, "%s blur: max error %.3g", fourier ? "Fourier" : "pixel", err);
        CHECK(moved > 0.05, "%s blur changes the parameters (%.3g)", fourier ? "Fourier" : "pixel", moved);
        free(P);
        free(sc);
        free(S);
        free(P1);
        free(S1);
        cnn_fv_free(&f);
    }
}

/* The transforms drawn: deterministic, inverse right, within Lucid's ranges. */
static void test_affine(void)
{
    float a[6], b[6], inv[6];
    int scales_seen = 0, rotations = 0;
    for (int step = 0; step < 200; step++) {
        cnn_fv_affine(1, step, 3, 224, 224, true, a);
        cnn_fv_affine(1, step, 3, 224, 224, true, b);
        CHECK(!memcmp(a, b, sizeof a), "same seed, same map");
        cnn_fv_affine_inverse(a, inv);
        double px = 17.5, py = 101.25;
        double qx = inv[0] * px + inv[1] * py + inv[2], qy = inv[3] * px + inv[4] * py + inv[5];
        double rx = a[0] * qx + a[1] * qy + a[2], ry = a[3] * qx + a[4] * qy + a[5];
        CHECK(fabs(rx - px) < 1e-3 && fabs(ry - py) < 1e-3, "inverse: %.5f %.5f", rx, ry);
        double det = (double)a[0] * a[4] - (double)a[1] * a[3], s = 1 / sqrt(det);
        CHECK(s > 0.899 && s < 1.101, "scale %.4f", s);
        double deg = atan2(a[1], a[0]) * 180 / PI;
        CHECK(fabs(deg) < 10.001, "angle %.3f", deg);
        scales_seen += fabs(s - 1) > 1e-3;
        rotations += fabs(deg) > 1e-3;
    }
    CHECK(scales_seen > 100 && rotations > 100, "maps vary: %d scaled, %d rotated of 200", scales_seen, rotations);
    cnn_fv_affine(1, 0, 0, 224, 224, false, a);
    CHECK(a[0] == 1 && a[1] == 0 && a[2] == 0 && a[3] == 0 && a[4] == 1 && a[5] == 0, "no transforms: identity");
}

/* decorrelate: inputs: the colour matrix from pixel moments.  Pixels drawn
 * around a random covariance; the matrix M must give M M^T = their sample
 * covariance (computed here in long double from the pixels), orthogonal
 * columns by falling norm, each summing to >= 0.  Also a rank-1 (grey)
 * set: one column, the others zero. */
static void test_colour_moments(void)
{
    uint32_t seed = 1234;
    for (int trial = 0; trial < 3; trial++) {
        double L[9] = {0};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j <= i; j++) L[i * 3 + j] = rnd(&seed) - 0.5 + (i == j ? 0.6 : 0);
        const int n = 5000;
        double sum[3] = {0}, sxx[9] = {0};
        long double ms[3] = {0}, mxx[9] = {0};
        for (int k = 0; k < n; k++) {
            double z[3], x[3];
            for (int c = 0; c < 3; c++) z[c] = rnd(&seed) - 0.5;
            for (int c = 0; c < 3; c++) {
                x[c] = 0.5;
                for (int j = 0; j < 3; j++) x[c] += 0.3 * L[c * 3 + j] * z[j];
                if (trial == 2) x[c] = 0.5 + 0.3 * z[0]; /* grey */
            }
            for (int c = 0; c < 3; c++) {
                sum[c] += x[c];
                ms[c] += x[c];
                for (int d = 0; d < 3; d++) {
                    sxx[c * 3 + d] += x[c] * x[d];
                    mxx[c * 3 + d] += (long double)x[c] * x[d];
                }
            }
        }
        double M[9];
        cnn_fv_colour_from_moments(n, sum, sxx, M);
        double err = 0, scale = 0, orth = 0;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                long double cov = (mxx[i * 3 + j] - ms[i] * ms[j] / n) / (n - 1);
                double mm = 0;
                for (int k = 0; k < 3; k++) mm += M[i * 3 + k] * M[j * 3 + k];
                err = fmax(err, fabs(mm - (double)cov));
                scale = fmax(scale, fabs((double)cov));
                double cc = 0; /* columns i, j */
                for (int k = 0; k < 3; k++) cc += M[k * 3 + i] * M[k * 3 + j];
                if (i != j) orth = fmax(orth, fabs(cc));
            }
        double norm[3], csum[3];
        for (int j = 0; j < 3; j++) {
            norm[j] = sqrt(M[j] * M[j] + M[3 + j] * M[3 + j] + M[6 + j] * M[6 + j]);
            csum[j] = M[j] + M[3 + j] + M[6 + j];
        }
        CHECK(err <= 1e-12 * scale, "colour moments trial %d: |M M^T - cov| %.3g of %.3g (bound 1e-12 relative)",
              trial, err, scale);
        CHECK(orth <= 1e-12 * scale, "colour moments trial %d: columns not orthogonal (%.3g)", trial, orth);
        CHECK(norm[0] >= norm[1] && norm[1] >= norm[2], "colour moments trial %d: columns not by falling norm "
              "(%.4g %.4g %.4g)", trial, norm[0], norm[1], norm[2]);
        CHECK(csum[0] >= 0 && csum[1] >= -1e-12 && csum[2] >= -1e-12, "colour moments trial %d: column sums %.3g %.3g "
              "%.3g", trial, csum[0], csum[1], csum[2]);
        if (trial == 2)
            CHECK(norm[1] <= 1e-6 * norm[0] && fabs(M[0] - M[3]) <= 1e-12 && fabs(M[0] - M[6]) <= 1e-12,
                  "colour moments: grey pixels gave more than one colour direction (%.3g %.3g)", norm[1], norm[2]);
    }
}

int main(void)
{
    test_affine();
    test_colour_moments();
    CHECK_OK(cnn_cl_init(&g_cl, NULL, NULL, false));
    if (!g_cl.ctx) return test_summary("test_featvis");
    printf("device: %s (%s)\n", g_cl.device_name, g_cl.platform_name);
    cnn_blas_apply_defaults(&g_cl);
    test_transform_grad();
    test_blur();
    test_chain(3, 9, 10);
    test_chain(1, 7, 7);
    int rc = test_summary("test_featvis");
    cnn_cl_free(&g_cl);
    return rc;
}
