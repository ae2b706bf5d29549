/* Feature visualisation on the device (viz/featvis.h; kernels in
 * cl/featvis.cl). */
#include "viz/featvis.h"
#include "ops/blas.h"
#include "ops/grad.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Lucid's square root of ImageNet's colour covariance (its
 * color_correlation_svd_sqrt), divided by its largest column norm. */
const double cnn_fv_imagenet_colour[9] = {0.26, 0.09, 0.02, 0.27, 0.00, -0.05, 0.27, -0.09, 0.03};

static const double k_pi = 3.14159265358979323846;

static int kern(cnn_fv *f, const char *name, cl_kernel *k)
{
    return cnn_cl_kernel(f->cl, "featvis.cl", NULL, name, k);
}

/* Sets the buffers b[0..nb) then the uints u[0..nu) as consecutive
 * arguments from `first`; the next argument's index in *next. */
static int args(cl_kernel k, cl_uint first, const cl_mem *b, int nb, const cl_uint *u, int nu, cl_uint *next,
                const char *what)
{
    cl_uint i = first;
    for (int j = 0; j < nb; j++, i++) CNN_TRY_RET(CNN_ARG(k, i, b[j], what));
    for (int j = 0; j < nu; j++, i++) CNN_TRY_RET(CNN_ARG(k, i, u[j], what));
    if (next) *next = i;
    return CNN_OK;
}

/* A buffer holding a copy of data (n floats). */
static int upload(cnn_fv *f, const float *data, size_t n, cl_mem *out, const char *what)
{
    CNN_TRY_RET(cnn_cl_buffer(f->cl, n * sizeof(float), out, what));
    return cnn_cl_write(f->cl, *out, 0, n * sizeof(float), data, what);
}

/* A buffer of n floats, zeroed (a device may not read a buffer nothing
 * wrote: PoCL asserts; CLBlast reads C even with beta 0). */
static int buffer(cnn_fv *f, size_t n, cl_mem *out, const char *what)
{
    CNN_TRY_RET(cnn_cl_buffer(f->cl, n * sizeof(float), out, what));
    return cnn_grad_zero(f->cl, *out, 0, n, what);
}

void cnn_fv_free(cnn_fv *f)
{
    cl_mem *all[] = {&f->P,   &f->S, &f->G,   &f->m,   &f->v,   &f->scale, &f->mh,   &f->amat, &f->bmat, &f->Y,
                     &f->t,   &f->img, &f->aff, &f->inv, &f->gimg, &f->M,   &f->gain, &f->bias, &f->u0, &f->freq};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) clReleaseMemObject(*all[i]);
    memset(f, 0, sizeof *f);
}

/* The DFT matrices and the frequency scale. */
static int make_fourier(cnn_fv *f)
{
    int H = f->H, W = f->W, K = f->K;
    size_t n_mh = (size_t)4 * H * H, n_ab = (size_t)K * W, n_sc = (size_t)H * K;
    float *mh = cnn_malloc(n_mh * sizeof *mh), *am = cnn_malloc(n_ab * sizeof *am);
    float *bm = cnn_malloc(n_ab * sizeof *bm), *sc = cnn_malloc(n_sc * sizeof *sc);
    int status = mh && am && bm && sc ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        /* [Yr; Yi] = [[C, -S], [S, C]] [Sr; Si]: Y[h] = sum_k S[k] e^{+2 pi i h k / H} */
        for (int h = 0; h < H; h++)
            for (int k = 0; k < H; k++) {
                double ang = 2 * k_pi * (double)((long long)h * k % H) / H;
                float c = (float)cos(ang), s = (float)sin(ang);
                mh[(size_t)h * 2 * H + k] = c;
                mh[(size_t)h * 2 * H + H + k] = -s;
                mh[(size_t)(H + h) * 2 * H + k] = s;
                mh[(size_t)(H + h) * 2 * H + H + k] = c;
            }
        /* x[w] = sum_k c_k Re(Y[k] e^{+2 pi i k w / W}) / (4 sqrt(H W)); c_k = 1 for the constant and (W
         * even) the Nyquist column, else 2 */
        double norm = 1.0 / (4.0 * sqrt((double)H * W));
        for (int k = 0; k < K; k++) {
            double ck = (k == 0 || 2 * k == W) ? 1.0 : 2.0;
            for (int w = 0; w < W; w++) {
                double ang = 2 * k_pi * (double)((long long)k * w % W) / W;
                am[(size_t)k * W + w] = (float)(norm * ck * cos(ang));
                bm[(size_t)k * W + w] = (float)(-norm * ck * sin(ang));
            }
        }
        /* 1 / max(|f|, 1 / max(H, W)), f in cycles per pixel (numpy's fftfreq) */
        for (int ky = 0; ky < H; ky++)
            for (int kx = 0; kx < K; kx++) {
                double fy = (ky <= (H - 1) / 2 ? ky : ky - H) / (double)H, fx = kx / (double)W;
                double fr = sqrt(fy * fy + fx * fx), lo = 1.0 / (H > W ? H : W);
                sc[(size_t)ky * K + kx] = (float)(1.0 / (fr > lo ? fr : lo));
            }
        status = upload(f, mh, n_mh, &f->mh, "feature visualisation: DFT rows");
    }
    if (status == CNN_OK) status = upload(f, am, n_ab, &f->amat, "feature visualisation: DFT columns");
    if (status == CNN_OK) status = upload(f, bm, n_ab, &f->bmat, "feature visualisation: DFT columns");
    if (status == CNN_OK) status = upload(f, sc, n_sc, &f->scale, "feature visualisation: frequency scale");
    free(mh);
    free(am);
    free(bm);
    free(sc);
    return status;
}

void cnn_fv_colour_add(const uint8_t *px, int w, int h, int c, double sum[3], double sxx[9])
{
    /* integer products summed per row in double: exact for any image */
    double s3[3] = {0}, sx[6] = {0};
    for (size_t y = 0; y < (size_t)h; y++) {
        double rs[3] = {0}, rx[6] = {0};
        const uint8_t *row = px + y * (size_t)w * c;
        for (int x = 0; x < w; x++) {
            const uint8_t *q = row + (size_t)x * c;
            double r = q[0], g = c == 3 ? q[1] : r, b = c == 3 ? q[2] : r;
            rs[0] += r;
            rs[1] += g;
            rs[2] += b;
            rx[0] += r * r;
            rx[1] += r * g;
            rx[2] += r * b;
            rx[3] += g * g;
            rx[4] += g * b;
            rx[5] += b * b;
        }
        for (int k = 0; k < 3; k++) s3[k] += rs[k];
        for (int k = 0; k < 6; k++) sx[k] += rx[k];
    }
    static const int at[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};
    for (int k = 0; k < 3; k++) sum[k] += s3[k] / 255.0;
    for (int k = 0; k < 6; k++) {
        double v = sx[k] / (255.0 * 255.0);
        sxx[at[k][0] * 3 + at[k][1]] += v;
        if (at[k][0] != at[k][1]) sxx[at[k][1] * 3 + at[k][0]] += v;
    }
}

void cnn_fv_colour_from_moments(double n, const double sum[3], const double sxx[9], double out[9])
{
    double A[9], V[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) A[i * 3 + j] = (sxx[i * 3 + j] - sum[i] * sum[j] / n) / (n - 1);
    /* cyclic Jacobi rotations: A -> V^T A V diagonal */
    for (int sweep = 0; sweep < 32; sweep++) {
        double off = fabs(A[1]) + fabs(A[2]) + fabs(A[5]);
        if (off <= 1e-300 || off <= 1e-15 * (fabs(A[0]) + fabs(A[4]) + fabs(A[8]))) break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                double apq = A[p * 3 + q];
                if (apq == 0) continue;
                double theta = (A[q * 3 + q] - A[p * 3 + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), sn = t * c;
                for (int k = 0; k < 3; k++) { /* columns p, q */
                    double akp = A[k * 3 + p], akq = A[k * 3 + q];
                    A[k * 3 + p] = c * akp - sn * akq;
                    A[k * 3 + q] = sn * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) { /* rows p, q */
                    double apk = A[p * 3 + k], aqk = A[q * 3 + k];
                    A[p * 3 + k] = c * apk - sn * aqk;
                    A[q * 3 + k] = sn * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) {
                    double vkp = V[k * 3 + p], vkq = V[k * 3 + q];
                    V[k * 3 + p] = c * vkp - sn * vkq;
                    V[k * 3 + q] = sn * vkp + c * vkq;
                }
            }
    }
    int ord[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (A[ord[j] * 4] > A[ord[i] * 4]) {
                int t = ord[i];
                ord[i] = ord[j];
                ord[j] = t;
            }
    for (int j = 0; j < 3; j++) {
        int e = ord[j];
        double lam = A[e * 4] > 0 ? sqrt(A[e * 4]) : 0;
        double cs = V[e] + V[3 + e] + V[6 + e];
        double sg = cs < 0 ? -1 : 1;
        for (int c = 0; c < 3; c++) out[c * 3 + j] = sg * lam * V[c * 3 + e];
    }
}

int cnn_fv_create(cnn_fv *f, cnn_cl *cl, int N, int C, int H, int W, bool fourier, const double *colour,
                  const float *gain, const float *bias, const float *start, uint32_t seed)
{
    memset(f, 0, sizeof *f);
    CNN_ASSERT(N >= 1 && (C == 1 || C == 3) && H >= 1 && W >= 1);
    f->cl = cl;
    f->N = N;
    f->C = C;
    f->H = H;
    f->W = W;
    f->fourier = fourier;
    f->decorrelate = colour && C == 3;
    f->seed = seed;
    f->K = fourier ? W / 2 + 1 : W;
    size_t NC = (size_t)N * C, px = NC * H * W;
    f->n_param = (fourier ? 2 : 1) * (size_t)H * NC * f->K;
    if (f->n_param > UINT32_MAX || px > UINT32_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "feature visualisation: %d images of %dx%dx%d are more than the kernels "
                             "index", N, C, H, W);
    float *p0 = cnn_malloc(f->n_param * sizeof *p0);
    if (!p0) return CNN_ERR_NOMEM;
    for (size_t i = 0; i < f->n_param; i += 2) { /* Box-Muller on Philox pairs */
        uint32_t r[2];
        cnn_philox2x32((uint32_t)(i / 2), (uint32_t)((uint64_t)i >> 33), seed, r);
        double u1 = ((r[0] >> 8) + 1) / 16777216.0, u2 = (r[1] >> 8) / 16777216.0;
        double rad = sqrt(-2 * log(u1));
        p0[i] = (float)(0.01 * rad * cos(2 * k_pi * u2));
        if (i + 1 < f->n_param) p0[i + 1] = (float)(0.01 * rad * sin(2 * k_pi * u2));
    }
    float Mn[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    if (f->decorrelate) {
        double mx = 0;
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int c = 0; c < 3; c++) s += colour[c * 3 + j] * colour[c * 3 + j];
            if (sqrt(s) > mx) mx = sqrt(s);
        }
        for (int i = 0; i < 9; i++) Mn[i] = (float)(mx > 0 ? colour[i] / mx : i % 4 == 0);
        memcpy(f->colour, Mn, sizeof Mn);
    }
    int status = upload(f, p0, f->n_param, &f->P, "feature visualisation: parameters");
    if (status == CNN_OK && fourier) status = make_fourier(f);
    if (status == CNN_OK && !fourier) {
        /* pixels: the scale is 1 everywhere */
        float *one = cnn_malloc((size_t)H * W * sizeof *one);
        if (!one) status = CNN_ERR_NOMEM;
        for (size_t i = 0; one && i < (size_t)H * W; i++) one[i] = 1.0f;
        if (status == CNN_OK) status = upload(f, one, (size_t)H * W, &f->scale, "feature visualisation: scale");
        free(one);
    }
    /* S = P * scale, as the Adam kernel keeps it */
    if (status == CNN_OK) {
        float *sc = cnn_malloc((size_t)H * f->K * sizeof *sc);
        if (!sc) status = CNN_ERR_NOMEM;
        if (status == CNN_OK)
            status = cnn_cl_read(cl, f->scale, 0, (size_t)H * f->K * sizeof *sc, sc, "feature visualisation");
        for (size_t i = 0; status == CNN_OK && i < f->n_param; i++) {
            size_t kx = i % f->K, ky = (i / ((size_t)f->K * NC)) % H;
            p0[i] *= sc[ky * f->K + kx];
        }
        if (status == CNN_OK) status = upload(f, p0, f->n_param, &f->S, "feature visualisation: spectrum");
        free(sc);
    }
    free(p0);
    if (status == CNN_OK) status = buffer(f, f->n_param, &f->G, "feature visualisation: gradient");
    if (status == CNN_OK) status = buffer(f, f->n_param, &f->m, "feature visualisation: Adam m");
    if (status == CNN_OK) status = buffer(f, f->n_param, &f->v, "feature visualisation: Adam v");
    if (status == CNN_OK && fourier) status = buffer(f, (size_t)2 * H * NC * f->K, &f->Y, "feature visualisation");
    if (status == CNN_OK && fourier) status = buffer(f, px, &f->t, "feature visualisation: pre-image");
    if (status == CNN_OK) status = buffer(f, px, &f->img, "feature visualisation: images");
    if (status == CNN_OK) status = buffer(f, px, &f->gimg, "feature visualisation: image gradient");
    if (status == CNN_OK) status = buffer(f, (size_t)6 * N, &f->aff, "feature visualisation: transforms");
    if (status == CNN_OK) status = buffer(f, (size_t)6 * N, &f->inv, "feature visualisation: transforms");
    if (status == CNN_OK) status = upload(f, Mn, 9, &f->M, "feature visualisation: colour matrix");
    if (status == CNN_OK) status = upload(f, gain, (size_t)C, &f->gain, "feature visualisation: normalisation");
    if (status == CNN_OK) status = upload(f, bias, (size_t)C, &f->bias, "feature visualisation: normalisation");
    float u0[3] = {0, 0, 0};
    for (int c = 0; c < C && start; c++) {
        double v = start[c] < 0.01f ? 0.01 : start[c] > 0.99f ? 0.99 : start[c];
        u0[c] = (float)log(v / (1 - v));
    }
    if (status == CNN_OK) status = upload(f, u0, (size_t)C, &f->u0, "feature visualisation: start colour");
    if (status < 0) cnn_fv_free(f);
    return status;
}

/* The pre-image t ([H][N*C][W]) of the parameters. */
static cl_mem pre_image(cnn_fv *f) { return f->fourier ? f->t : f->S; }

int cnn_fv_image(cnn_fv *f)
{
    size_t NC = (size_t)f->N * f->C, H = (size_t)f->H, K = (size_t)f->K, W = (size_t)f->W;
    const char *what = "feature visualisation: inverse DFT";
    if (f->fourier) {
        /* [Yr; Yi] (2H x NC*K) = Mh (2H x 2H) [Sr; Si]; t (H*NC x W) = Yr A + Yi B */
        CNN_TRY_RET(cnn_blas_sgemm(f->cl, false, false, 2 * H, NC * K, 2 * H, f->mh, 0, 2 * H, f->S, 0, NC * K, f->Y,
                                   0, NC * K, what));
        CNN_TRY_RET(cnn_blas_sgemm(f->cl, false, false, H * NC, W, K, f->Y, 0, K, f->amat, 0, W, f->t, 0, W, what));
        CNN_TRY_RET(cnn_blas_sgemm_beta(f->cl, false, false, H * NC, W, K, f->Y, H * NC * K, K, f->bmat, 0, W, 1.0f,
                                        f->t, 0, W, what));
    }
    cl_kernel k;
    CNN_TRY_RET(kern(f, "fv_to_image", &k));
    cl_mem t = pre_image(f);
    what = "feature visualisation: image";
    const cl_mem b[] = {t, f->img, f->M, f->u0};
    const cl_uint u[] = {(cl_uint)f->N, (cl_uint)f->C, (cl_uint)f->H, (cl_uint)f->W};
    CNN_TRY_RET(args(k, 0, b, 4, u, 4, NULL, what));
    return cnn_cl_run1d(f->cl, k, (size_t)f->N * H * W, what);
}

void cnn_fv_affine_inverse(const float a[6], float inv[6])
{
    double det = (double)a[0] * a[4] - (double)a[1] * a[3];
    double i0 = a[4] / det, i1 = -a[1] / det, i3 = -a[3] / det, i4 = a[0] / det;
    inv[0] = (float)i0;
    inv[1] = (float)i1;
    inv[2] = (float)(-(i0 * a[2] + i1 * a[5]));
    inv[3] = (float)i3;
    inv[4] = (float)i4;
    inv[5] = (float)(-(i3 * a[2] + i4 * a[5]));
}

void cnn_fv_affine(uint32_t seed, int step, int n, int H, int W, bool transforms, float aff[6])
{
    static const float ident[6] = {1, 0, 0, 0, 1, 0};
    memcpy(aff, ident, sizeof ident);
    if (!transforms) return;
    uint32_t r[2], q[2];
    cnn_philox2x32((uint32_t)step, (uint32_t)n, seed ^ 0x7f4a7c15u, r);
    cnn_philox2x32((uint32_t)step, (uint32_t)n | 0x80000000u, seed ^ 0x7f4a7c15u, q);
    int side = H < W ? H : W;
    int j1 = (int)lround(8.0 * side / 224), j2 = (int)lround(4.0 * side / 224);
    if (j1 < 2) j1 = 2;
    if (j2 < 1) j2 = 1;
    /* shifts: -j/2 .. j/2 - 1 (whole pixels), then scale and angle */
    double t1x = (double)(r[0] % (uint32_t)j1) - j1 / 2, t1y = (double)((r[0] >> 8) % (uint32_t)j1) - j1 / 2;
    double t2x = (double)((r[0] >> 16) % (uint32_t)j2) - j2 / 2, t2y = (double)((r[0] >> 24) % (uint32_t)j2) - j2 / 2;
    double s = 1.0 + ((int)(r[1] % 11u) - 5) / 50.0;
    int ai = (int)(q[0] % 26u); /* -10..10 and 0 five more times */
    double deg = ai <= 20 ? ai - 10 : 0;
    double th = deg * k_pi / 180.0, c = cos(th) / s, sn = sin(th) / s;
    double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    /* src = centre + t1 + R(-th) (q - centre - t2) / s */
    double ux = cx + t2x, uy = cy + t2y;
    aff[0] = (float)c;
    aff[1] = (float)sn;
    aff[2] = (float)(cx + t1x - (c * ux + sn * uy));
    aff[3] = (float)-sn;
    aff[4] = (float)c;
    aff[5] = (float)(cy + t1y - (-sn * ux + c * uy));
}

int cnn_fv_input(cnn_fv *f, const float *aff, cl_mem x)
{
    const char *what = "feature visualisation: transform";
    float *a = cnn_malloc((size_t)12 * f->N * sizeof *a);
    if (!a) return CNN_ERR_NOMEM;
    for (int n = 0; n < f->N; n++) {
        float *an = a + 6 * n;
        if (aff) memcpy(an, aff + 6 * n, 6 * sizeof *an);
        else cnn_fv_affine(0, 0, n, f->H, f->W, false, an);
        cnn_fv_affine_inverse(an, a + 6 * (f->N + n));
    }
    int status = cnn_cl_write(f->cl, f->aff, 0, (size_t)6 * f->N * sizeof *a, a, what);
    if (status == CNN_OK) status = cnn_cl_write(f->cl, f->inv, 0, (size_t)6 * f->N * sizeof *a, a + 6 * f->N, what);
    free(a);
    CNN_TRY_RET(status);
    cl_kernel k;
    CNN_TRY_RET(kern(f, "fv_transform", &k));
    const cl_mem b[] = {f->img, f->aff, x, f->gain, f->bias};
    const cl_uint u[] = {(cl_uint)f->N, (cl_uint)f->C, (cl_uint)f->H, (cl_uint)f->W};
    CNN_TRY_RET(args(k, 0, b, 5, u, 4, NULL, what));
    return cnn_cl_run1d(f->cl, k, (size_t)f->N * f->C * f->H * f->W, what);
}

int cnn_fv_blur(cnn_fv *f, float sigma)
{
    const char *what = "feature visualisation: blur";
    size_t NC = (size_t)f->N * f->C, H = (size_t)f->H, K = (size_t)f->K, W = (size_t)f->W;
    cl_kernel k;
    if (f->fourier) {
        if (!f->freq) {
            float *fr = cnn_malloc(H * K * sizeof *fr);
            if (!fr) return CNN_ERR_NOMEM;
            for (size_t ky = 0; ky < H; ky++)
                for (size_t kx = 0; kx < K; kx++) {
                    double fy = (ky <= (H - 1) / 2 ? (double)ky : (double)ky - (double)H) / (double)H,
                           fx = (double)kx / (double)W;
                    fr[ky * K + kx] = (float)(fy * fy + fx * fx);
                }
            int status = upload(f, fr, H * K, &f->freq, what);
            free(fr);
            CNN_TRY_RET(status);
        }
        CNN_TRY_RET(kern(f, "fv_blur_spectrum", &k));
        const cl_mem b[] = {f->P, f->S, f->freq};
        const cl_uint u[] = {(cl_uint)f->n_param, (cl_uint)H, (cl_uint)NC, (cl_uint)K};
        cl_uint next;
        CNN_TRY_RET(args(k, 0, b, 3, u, 4, &next, what));
        CNN_TRY_RET(CNN_ARG(k, next, sigma, what));
        return cnn_cl_run1d(f->cl, k, f->n_param, what);
    }
    /* pixels: blurred into G (free between steps), then back into P and S */
    float w1 = (float)exp(-1.0 / (2.0 * sigma * sigma)), w2 = w1 * w1;
    CNN_TRY_RET(kern(f, "fv_blur_pixels", &k));
    const cl_mem b[] = {f->P, f->G};
    const cl_uint u[] = {(cl_uint)H, (cl_uint)NC, (cl_uint)W};
    cl_uint next;
    CNN_TRY_RET(args(k, 0, b, 2, u, 3, &next, what));
    CNN_TRY_RET(CNN_ARG(k, next, w1, what));
    CNN_TRY_RET(CNN_ARG(k, next + 1, w2, what));
    CNN_TRY_RET(cnn_cl_run1d(f->cl, k, f->n_param, what));
    for (int i = 0; i < 2; i++) {
        cl_int err = clEnqueueCopyBuffer(f->cl->queue, f->G, i ? f->S : f->P, 0, 0, f->n_param * sizeof(float), 0,
                                         NULL, NULL);
        if (err != CL_SUCCESS)
            return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueCopyBuffer failed: %s (%s)", cnn_cl_error_name(err), what);
    }
    return CNN_OK;
}

int cnn_fv_step(cnn_fv *f, cl_mem dx, float tv, float l2, float lr)
{
    const char *what = "feature visualisation: step";
    size_t NC = (size_t)f->N * f->C, H = (size_t)f->H, K = (size_t)f->K, W = (size_t)f->W;
    const cl_uint dims[] = {(cl_uint)f->N, (cl_uint)f->C, (cl_uint)f->H, (cl_uint)f->W};
    cl_kernel k;
    cl_uint next;
    CNN_TRY_RET(kern(f, "fv_transform_back", &k));
    const cl_mem tb[] = {dx, f->aff, f->inv, f->gimg, f->gain};
    CNN_TRY_RET(args(k, 0, tb, 5, dims, 4, NULL, what));
    CNN_TRY_RET(cnn_cl_run1d(f->cl, k, NC * H * W, what));
    /* d / d t, into t's gradient: G itself for pixels, else Y's slot */
    cl_mem gt = f->fourier ? f->t : f->G;
    CNN_TRY_RET(kern(f, "fv_image_back", &k));
    const cl_mem ib[] = {f->gimg, f->img, gt, f->M};
    CNN_TRY_RET(args(k, 0, ib, 4, NULL, 0, &next, what));
    CNN_TRY_RET(CNN_ARG(k, next, tv, what));
    CNN_TRY_RET(CNN_ARG(k, next + 1, l2, what));
    CNN_TRY_RET(args(k, next + 2, NULL, 0, dims, 4, NULL, what));
    CNN_TRY_RET(cnn_cl_run1d(f->cl, k, (size_t)f->N * H * W, what));
    if (f->fourier) {
        /* dYr = G A^T, dYi = G B^T (H*NC x K); [dSr; dSi] = Mh^T [dYr; dYi] */
        CNN_TRY_RET(cnn_blas_sgemm(f->cl, false, true, H * NC, K, W, f->t, 0, W, f->amat, 0, W, f->Y, 0, K, what));
        CNN_TRY_RET(cnn_blas_sgemm(f->cl, false, true, H * NC, K, W, f->t, 0, W, f->bmat, 0, W, f->Y, H * NC * K, K,
                                   what));
        CNN_TRY_RET(cnn_blas_sgemm(f->cl, true, false, 2 * H, NC * K, 2 * H, f->mh, 0, 2 * H, f->Y, 0, NC * K, f->G,
                                   0, NC * K, what));
    }
    f->step++;
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = (float)(1.0 - pow(b1, f->step)), c2 = (float)(1.0 - pow(b2, f->step));
    CNN_TRY_RET(kern(f, "fv_adam", &k));
    const cl_mem ab[] = {f->P, f->S, f->G, f->m, f->v, f->scale};
    const cl_uint au[] = {(cl_uint)f->n_param, (cl_uint)H, (cl_uint)NC, (cl_uint)K};
    CNN_TRY_RET(args(k, 0, ab, 6, au, 4, &next, what));
    const float af[] = {lr, b1, b2, eps, c1, c2};
    for (int i = 0; i < 6; i++) CNN_TRY_RET(CNN_ARG(k, next + (cl_uint)i, af[i], what));
    return cnn_cl_run1d(f->cl, k, f->n_param, what);
}
