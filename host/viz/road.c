/* ROAD's removal masks and noisy linear imputation (viz/road.h). */
#include "viz/road.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

/* numpy's "linear" percentile of n sorted values: index q/100 (n - 1),
 * and its two-sided lerp. */
static double percentile_sorted(const float *s, size_t n, double q)
{
    double idx = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(idx), hi = lo + 1 < n ? lo + 1 : n - 1;
    double t = idx - (double)lo, a = s[lo], b = s[hi], d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/* The n values sorted (a new array), or NULL: out of memory; *nan when any
 * is NaN (then nothing is sorted). */
static float *sorted_copy(const float *v, size_t n, bool *nan)
{
    *nan = false;
    for (size_t i = 0; i < n && !*nan; i++) *nan = isnan(v[i]);
    float *s = malloc((n ? n : 1) * sizeof *s);
    if (!s || *nan) return s;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_float);
    return s;
}

double cnn_road_percentile(const float *v, size_t n, double q)
{
    bool nan;
    float *s = sorted_copy(v, n, &nan);
    double r = s && !nan ? percentile_sorted(s, n, q) : NAN;
    free(s);
    return r;
}

long cnn_road_mask(const float *map, size_t px, double p, bool lerf, uint8_t *keep)
{
    bool nan;
    float *s = sorted_copy(map, px, &nan);
    if (!s) return cnn_error_set(CNN_ERR_NOMEM, "out of memory (ROAD mask of %zu pixels)", px);
    double thr = nan ? NAN : percentile_sorted(s, px, lerf ? 100.0 - p : p);
    free(s);
    long removed = 0;
    for (size_t i = 0; i < px; i++) {
        double m = map[i];
        keep[i] = lerf ? m > thr : m < thr;
        removed += !keep[i];
    }
    return removed;
}

/* The 8 neighbours and their weights. */
static const int g_dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1}, g_dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1};
static const double g_wt[8] = {1.0 / 12, 1.0 / 6, 1.0 / 12, 1.0 / 6, 1.0 / 6, 1.0 / 12, 1.0 / 6, 1.0 / 12};

/* The system over the n anchored removed pixels: pix[i] the pixel of
 * unknown i; nb[8 i + k] the unknown index of its k-th neighbour (-1: kept
 * or outside), diag[i] = D_p. */
typedef struct sys {
    int n;
    int *pix, *nb;
    double *diag;
} sys;

/* The factor and its solves built for AVX-512, AVX2 and the baseline,
 * chosen at load time (GCC on glibc; Clang 14 refuses the "avx2,fma"
 * spelling under -Werror and gets the baseline only). */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(__SANITIZE_ADDRESS__)
#define CNN_ROAD_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define CNN_ROAD_CLONES
#endif

/* Dot product in eight lanes of a vector (GCC's vector extension: one
 * AVX-512 register, two AVX2 or four SSE2 ones), the envelope factor's
 * time. */
typedef double cnn_v8d __attribute__((vector_size(64)));

static inline double dot(const double *a, const double *b, int n)
{
    cnn_v8d acc = {0, 0, 0, 0, 0, 0, 0, 0}, acc2 = acc;
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        cnn_v8d va, vb, vc, vd;
        memcpy(&va, a + k, sizeof va);
        memcpy(&vb, b + k, sizeof vb);
        memcpy(&vc, a + k + 8, sizeof vc);
        memcpy(&vd, b + k + 8, sizeof vd);
        acc += va * vb;
        acc2 += vc * vd;
    }
    for (; k + 8 <= n; k += 8) {
        cnn_v8d va, vb;
        memcpy(&va, a + k, sizeof va);
        memcpy(&vb, b + k, sizeof vb);
        acc += va * vb;
    }
    acc += acc2;
    double s = 0;
    for (; k < n; k++) s += a[k] * b[k];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Envelope Cholesky: row i of L holds columns first[i] .. i at
 * L + start[i].  Returns false when a pivot is not positive (rounding on
 * a nearly singular system: the caller falls back to CG). */
CNN_ROAD_CLONES static bool cholesky(const sys *S, const int *first, const size_t *start, double *L,
                                     double *inv)
{
    for (int i = 0; i < S->n; i++) {
        double *Li = L + start[i];
        int fi = first[i];
        memset(Li, 0, (size_t)(i - fi + 1) * sizeof *Li);
        for (int k = 0; k < 8; k++) {
            int j = S->nb[8 * i + k];
            if (j >= 0 && j < i) Li[j - fi] = -g_wt[k];
        }
        for (int j = fi; j < i; j++) {
            const double *Lj = L + start[j];
            int lo = fi > first[j] ? fi : first[j];
            double s = Li[j - fi] - dot(Li + (lo - fi), Lj + (lo - first[j]), j - lo);
            Li[j - fi] = s * inv[j]; /* a multiply: a division here was half the time */
        }
        double d = S->diag[i] - dot(Li, Li, i - fi);
        if (!(d > 0)) return false;
        Li[i - fi] = sqrt(d);
        inv[i] = 1.0 / Li[i - fi];
    }
    return true;
}

/* L L^T x = b in place. */
CNN_ROAD_CLONES static void chol_solve(const sys *S, const int *first, const size_t *start, const double *L, double *x)
{
    for (int i = 0; i < S->n; i++) {
        const double *Li = L + start[i];
        x[i] = (x[i] - dot(Li, x + first[i], i - first[i])) / Li[i - first[i]];
    }
    for (int i = S->n - 1; i >= 0; i--) {
        const double *Li = L + start[i];
        x[i] /= Li[i - first[i]];
        for (int k = first[i]; k < i; k++) x[k] -= Li[k - first[i]] * x[i];
    }
}

static void matvec(const sys *S, const double *x, double *y)
{
    for (int i = 0; i < S->n; i++) {
        double s = S->diag[i] * x[i];
        for (int k = 0; k < 8; k++) {
            int j = S->nb[8 * i + k];
            if (j >= 0) s -= g_wt[k] * x[j];
        }
        y[i] = s;
    }
}

/* Jacobi-preconditioned conjugate gradients from x = b / D to a relative
 * residual of 1e-10 (at most 20 n iterations); x holds b on entry. */
static int cg_solve(const sys *S, double *x)
{
    int n = S->n;
    double *b = malloc((size_t)n * sizeof *b), *r = malloc((size_t)n * sizeof *r);
    double *z = malloc((size_t)n * sizeof *z), *p = malloc((size_t)n * sizeof *p);
    double *q = malloc((size_t)n * sizeof *q);
    int status = b && r && z && p && q ? CNN_OK : cnn_error_set(CNN_ERR_NOMEM, "out of memory (ROAD imputation)");
    if (status == CNN_OK) {
        memcpy(b, x, (size_t)n * sizeof *b);
        double bb = dot(b, b, n);
        for (int i = 0; i < n; i++) x[i] = b[i] / S->diag[i];
        matvec(S, x, q);
        for (int i = 0; i < n; i++) {
            r[i] = b[i] - q[i];
            z[i] = r[i] / S->diag[i];
            p[i] = z[i];
        }
        double rz = dot(r, z, n);
        for (long it = 0; it < 20L * n && dot(r, r, n) > 1e-20 * bb; it++) {
            matvec(S, p, q);
            double alpha = rz / dot(p, q, n);
            for (int i = 0; i < n; i++) {
                x[i] += alpha * p[i];
                r[i] -= alpha * q[i];
                z[i] = r[i] / S->diag[i];
            }
            double rz1 = dot(r, z, n), beta = rz1 / rz;
            rz = rz1;
            for (int i = 0; i < n; i++) p[i] = z[i] + beta * p[i];
        }
    }
    free(b);
    free(r);
    free(z);
    free(p);
    free(q);
    return status;
}

/* A standard normal: Box-Muller of Philox of (pixel, channel). */
static double gauss(uint32_t pixel, uint32_t channel, uint32_t seed)
{
    uint32_t r[2];
    cnn_philox2x32(pixel, channel, seed, r);
    double u1 = ((double)(r[0] >> 8) + 1.0) / 16777216.0, u2 = (double)(r[1] >> 8) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int cnn_road_impute(const float *img, int c, int h, int w, const uint8_t *keep, double noise, uint32_t seed,
                    size_t max_factor, float *out)
{
    if (c < 1 || h < 1 || w < 1 || !(noise >= 0) || (size_t)h * w > (size_t)INT32_MAX / 8)
        return cnn_error_set(CNN_ERR_INPUT, "ROAD imputation: bad arguments (%d x %d x %d, noise %g)", c, h, w, noise);
    if (!max_factor) max_factor = CNN_ROAD_MAX_FACTOR;
    size_t px = (size_t)h * w;
    if (out != img) memcpy(out, img, (size_t)c * px * sizeof *out);
    int *vidx = malloc(px * sizeof *vidx), *queue = malloc(px * sizeof *queue);
    sys S = {0};
    int *first = NULL;
    size_t *start = NULL;
    double *L = NULL, *inv = NULL, *x = NULL;
    int status = vidx && queue ? CNN_OK : cnn_error_set(CNN_ERR_NOMEM, "out of memory (ROAD imputation)");
    if (status < 0) goto done;
    /* the removed pixels that reach a kept one through removed ones
     * (breadth first from those next to a kept pixel): vidx 1, others 0,
     * kept -1 */
    int nq = 0;
    for (size_t p = 0; p < px; p++) {
        vidx[p] = keep[p] ? -1 : 0;
        if (keep[p]) continue;
        int y = (int)(p / w), xx = (int)(p % w);
        bool touches = false;
        for (int k = 0; k < 8 && !touches; k++) {
            int yy = y + g_dy[k], x2 = xx + g_dx[k];
            touches = yy >= 0 && yy < h && x2 >= 0 && x2 < w && keep[(size_t)yy * w + x2];
        }
        if (touches) {
            vidx[p] = 1;
            queue[nq++] = (int)p;
        }
    }
    for (int qi = 0; qi < nq; qi++) {
        int p = queue[qi], y = p / w, xx = p % w;
        for (int k = 0; k < 8; k++) {
            int yy = y + g_dy[k], x2 = xx + g_dx[k];
            if (yy < 0 || yy >= h || x2 < 0 || x2 >= w) continue;
            int q = yy * w + x2;
            if (vidx[q] == 0) {
                vidx[q] = 1;
                queue[nq++] = q;
            }
        }
    }
    /* unknowns numbered along rows when the image is at most as wide as
     * tall, else along columns: the envelope is then the shorter side */
    bool rows = w <= h;
    S.n = nq;
    S.pix = malloc((size_t)(nq ? nq : 1) * sizeof *S.pix);
    S.nb = malloc((size_t)(nq ? nq : 1) * 8 * sizeof *S.nb);
    S.diag = malloc((size_t)(nq ? nq : 1) * sizeof *S.diag);
    first = malloc((size_t)(nq ? nq : 1) * sizeof *first);
    start = malloc(((size_t)nq + 1) * sizeof *start);
    x = malloc((size_t)(nq ? nq : 1) * sizeof *x);
    if (!S.pix || !S.nb || !S.diag || !first || !start || !x) {
        status = cnn_error_set(CNN_ERR_NOMEM, "out of memory (ROAD imputation)");
        goto done;
    }
    int n = 0;
    for (int a = 0; a < (rows ? h : w); a++)
        for (int bq = 0; bq < (rows ? w : h); bq++) {
            int p = rows ? a * w + bq : bq * w + a;
            if (vidx[p] == 1) {
                S.pix[n] = p;
                vidx[p] = 2 + n++;
            }
        }
    size_t env = 0;
    for (int i = 0; i < n; i++) {
        int p = S.pix[i], y = p / w, xx = p % w;
        double d = 0;
        first[i] = i;
        for (int k = 0; k < 8; k++) {
            int yy = y + g_dy[k], x2 = xx + g_dx[k];
            int j = -1;
            if (yy >= 0 && yy < h && x2 >= 0 && x2 < w) {
                d += g_wt[k];
                int v = vidx[yy * w + x2];
                if (v >= 2) j = v - 2;
            }
            S.nb[8 * i + k] = j;
            if (j >= 0 && j < first[i]) first[i] = j;
        }
        S.diag[i] = d;
        start[i] = env;
        env += (size_t)(i - first[i] + 1);
    }
    start[n] = env;
    bool direct = env <= max_factor;
    if (direct && n) {
        L = malloc(env * sizeof *L);
        inv = malloc((size_t)n * sizeof *inv);
        direct = L && inv && cholesky(&S, first, start, L, inv);
    }
    for (int ch = 0; ch < c && status == CNN_OK; ch++) {
        const float *v = img + (size_t)ch * px;
        for (int i = 0; i < n; i++) {
            int p = S.pix[i], y = p / w, xx = p % w;
            double b = 0;
            for (int k = 0; k < 8; k++) {
                int yy = y + g_dy[k], x2 = xx + g_dx[k];
                if (yy >= 0 && yy < h && x2 >= 0 && x2 < w && keep[yy * w + x2]) b += g_wt[k] * v[yy * w + x2];
            }
            x[i] = b;
        }
        if (direct) chol_solve(&S, first, start, L, x);
        else if (n) status = cg_solve(&S, x);
        float *o = out + (size_t)ch * px;
        for (size_t p = 0; p < px && status == CNN_OK; p++) {
            if (keep[p]) continue;
            double val = vidx[p] >= 2 ? x[vidx[p] - 2] : 0.0;
            if (noise > 0) val += noise * gauss((uint32_t)p, (uint32_t)ch, seed);
            o[p] = (float)val;
        }
    }
done:
    free(vidx);
    free(queue);
    free(S.pix);
    free(S.nb);
    free(S.diag);
    free(first);
    free(start);
    free(L);
    free(inv);
    free(x);
    return status;
}
