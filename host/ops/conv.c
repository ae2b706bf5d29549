#include "ops/ops.h"
#include "ops/blas.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Depthwise and other groups with few input channels: a GEMM per group
 * would be tiny, the direct kernel reads each input a few times instead. */
static int use_direct(const cnn_conv_geom *g)
{
    return g->groups > 1 && g->ci / g->groups <= 4;
}

bool cnn_op_conv2d_is_direct(const cnn_conv_geom *g) { return use_direct(g); }

/* 1x1, stride 1, no padding: the input already is the column matrix. */
static int is_pointwise(const cnn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pb == 0 &&
           g->pl == 0 && g->pr == 0;
}

int cnn_op_run_rows(cnn_cl *cl, cl_kernel k, size_t cols, size_t rows, const char *layer)
{
    size_t l0 = 1;
    while (l0 < cols && l0 < 64) l0 *= 2;
    size_t l1 = 256 / l0;
    while (l0 * l1 > cl->max_work_group && l1 > 1) l1 /= 2;
    while (l0 * l1 > cl->max_work_group && l0 > 1) l0 /= 2;
    size_t global[2] = {cols, rows}, local[2] = {l0, l1};
    return cnn_cl_runnd(cl, k, 2, global, local, layer);
}

size_t cnn_op_conv2d_scratch(const cnn_conv_geom *g)
{
    if (use_direct(g) || is_pointwise(g)) return 0;
    return (size_t)g->ci * g->kh * g->kw * g->ho * g->wo;
}

static int run_direct(cnn_cl *cl, const cnn_conv_geom *g, int n, cl_mem x, cl_mem w, cl_mem y,
                      const char *layer)
{
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "conv.cl", NULL, "kernel_conv_direct_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint v[] = {(cl_uint)n, (cl_uint)g->ci, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->co,
                   (cl_uint)g->ho, (cl_uint)g->wo, (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh,
                   (cl_uint)g->sw, (cl_uint)g->dh, (cl_uint)g->dw, (cl_uint)g->pt, (cl_uint)g->pl,
                   (cl_uint)g->groups};
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, w, layer)) < 0 ||
        (status = CNN_ARG(k, 2, y, layer)) < 0)
        return status;
    for (cl_uint i = 0; i < sizeof v / sizeof v[0]; i++)
        if ((status = CNN_ARG(k, 3 + i, v[i], layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)n * g->co * g->ho, layer);
}

static int run_im2col(cnn_cl *cl, const cnn_conv_geom *g, cl_mem x, size_t x_off, cl_mem col,
                      const char *layer)
{
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "conv.cl", NULL, "kernel_im2col_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint off = (cl_uint)x_off;
    cl_uint v[] = {(cl_uint)g->ci, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho, (cl_uint)g->wo,
                   (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh, (cl_uint)g->sw, (cl_uint)g->dh,
                   (cl_uint)g->dw, (cl_uint)g->pt, (cl_uint)g->pl};
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, off, layer)) < 0 ||
        (status = CNN_ARG(k, 2, col, layer)) < 0)
        return status;
    for (cl_uint i = 0; i < sizeof v / sizeof v[0]; i++)
        if ((status = CNN_ARG(k, 3 + i, v[i], layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, cnn_op_conv2d_scratch(g), layer);
}

int cnn_op_conv2d(cnn_cl *cl, const cnn_conv_geom *g, int n, cl_mem x, cl_mem w, cl_mem bias,
                  cnn_act act, float slope, cl_mem y, cl_mem scratch, const char *layer)
{
    int status;
    size_t plane_in = (size_t)g->hi * g->wi, plane_out = (size_t)g->ho * g->wo;
    if (use_direct(g)) {
        status = run_direct(cl, g, n, x, w, y, layer);
    } else {
        size_t cig = (size_t)(g->ci / g->groups), cog = (size_t)(g->co / g->groups);
        size_t kdim = cig * g->kh * g->kw;
        bool pointwise = is_pointwise(g);
        status = CNN_OK;
        for (int b = 0; b < n && status == CNN_OK; b++) {
            size_t x_off = (size_t)b * g->ci * plane_in;
            cl_mem col = x;
            size_t col_off = x_off;
            if (!pointwise) {
                status = run_im2col(cl, g, x, x_off, scratch, layer);
                if (status < 0) return status;
                col = scratch;
                col_off = 0;
            }
            for (int gi = 0; gi < g->groups && status == CNN_OK; gi++) {
                status = cnn_blas_sgemm(cl, false, false, cog, plane_out, kdim, w, gi * cog * kdim, kdim, col,
                                        col_off + gi * kdim * plane_out, plane_out, y,
                                        ((size_t)b * g->co + gi * cog) * plane_out, plane_out, layer);
            }
        }
    }
    if (status < 0) return status;
    if (bias || act != CNN_ACT_NONE) {
        if (bias)
            return cnn_op_affine_act(cl, y, y, NULL, bias, (size_t)n * g->co * plane_out, plane_out, g->co,
                                     act, slope, layer);
        return cnn_op_act(cl, act, slope, y, y, (size_t)n * g->co * plane_out, layer);
    }
    return CNN_OK;
}

/* ------------------------------------------------- packed GEMM path --- */

/* Winograd's 16 transformed matrices lie WINO_SKEW floats further apart
 * than their size: at exact multiples of 4 KiB the 16 streams of each
 * transform hit the same cache sets (the input transform of a 128 x 112 x
 * 112 conv ran 5x slower).  512 bytes keeps every block a valid sub-buffer
 * origin. */
#define WINO_SKEW 128

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* Winograd F(2x2, 3x3): 3x3, stride 1, no dilation, and enough input
 * channels that k = ci is not mostly padding.  CNNVIZ_WINOGRAD=0 turns it
 * off (before/after timings in one build: test/bench/NOTES.md). */
static bool use_winograd(const cnn_conv_geom *g)
{
    const char *env = getenv("CNNVIZ_WINOGRAD");
    if (env && !strcmp(env, "0")) return false;
    return g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           g->ci >= 32;
}

static int tiles_h(const cnn_conv_geom *g) { return (g->ho + 1) / 2; }
static int tiles_w(const cnn_conv_geom *g) { return (g->wo + 1) / 2; }

/* GEMM columns per image: pixels, or 2x2 tiles for Winograd. */
static size_t gemm_p(const cnn_conv_geom *g, bool winograd)
{
    return winograd ? (size_t)tiles_h(g) * tiles_w(g) : (size_t)g->ho * g->wo;
}

/* GEMM layout of `blocks` products with reduction k over p columns: the
 * spatial side as m or as n, whichever pads less (cnn_conv_pack).
 * Returns the padded multiply-adds, 0 when too large for the kernels'
 * 32-bit indexing. */
static size_t gemm_layout(size_t blocks, size_t k, size_t p, size_t co, size_t x_n, bool own, cnn_conv_pack *pk)
{
    size_t mt = own ? 32 : CNN_GEMM_MWG, nt = own ? 8 : CNN_GEMM_NWG;
    size_t cost_pm = round_up(p, mt) * round_up(co, nt);
    size_t cost_pn = round_up(p, nt) * round_up(co, mt);
    /* The own kernel reads rows of 64 floats of A but 8 of B: the spatial
     * side streams better as A (m).  VGG16 conv2_2 by Winograd (3136 tiles
     * x 128 channels, no padding either way): 23 ms with the tiles as m,
     * 36 ms as n (test/bench/NOTES.md 20).  So there, m unless it pads 25 %
     * more. */
    bool p_m = own ? 4 * cost_pm <= 5 * cost_pn : cost_pm < cost_pn;
    size_t k_pad = own ? k : round_up(k, CNN_GEMM_KWG);
    size_t co_pad = round_up(co, p_m ? nt : mt);
    size_t p_pad = round_up(p, p_m ? mt : nt);
    const size_t lim = (size_t)1 << 31;
    if (blocks * (k_pad * p_pad + WINO_SKEW) >= lim || blocks * (co_pad * p_pad + WINO_SKEW) >= lim || x_n >= lim ||
        blocks * co_pad * k_pad >= lim)
        return 0;
    pk->winograd = blocks > 1;
    pk->k_pad = (int)k_pad;
    pk->co_pad = (int)co_pad;
    pk->p_align = (int)(p_m ? mt : nt);
    pk->p_major = p_m;
    return blocks * k_pad * co_pad * p_pad;
}

static bool pack_layout(const cnn_conv_geom *g, int max_batch, bool winograd, bool own, cnn_conv_pack *pk)
{
    if (g->groups != 1 || use_direct(g) || max_batch < 1) return false;
    size_t x_n = (size_t)max_batch * g->ci * g->hi * g->wi, co = (size_t)g->co;
    size_t cost =
        gemm_layout(1, (size_t)g->ci * g->kh * g->kw, (size_t)max_batch * gemm_p(g, false), co, x_n, own, pk);
    if (!cost) return false;
    /* Winograd where its padded GEMM work is at most 0.6 of im2col's and
     * k = ci >= 128: the transforms cost memory traffic and its 16 GEMMs 16
     * launches, so on small maps (ResNet-18 layer4, 7x7: 16 tiles padded to
     * 64) it loses, and so do thin GEMMs (ci = 64: VGG16 conv1_2 235 ms
     * against 106 with im2col; ci >= 128: 1.1-1.6x faster; bench NOTES.md 7). */
    cnn_conv_pack w;
    if (winograd && use_winograd(g) && g->ci >= 128) {
        size_t wcost = gemm_layout(16, (size_t)g->ci, (size_t)max_batch * gemm_p(g, true), co, x_n, own, &w);
        if (wcost && 5 * wcost <= 3 * cost) *pk = w;
    }
    return true;
}

bool cnn_op_conv2d_pack_layout(const cnn_conv_geom *g, int max_batch, bool own, cnn_conv_pack *pk)
{
    return pack_layout(g, max_batch, true, own, pk);
}

bool cnn_op_conv2d_pack_plain(const cnn_conv_geom *g, int max_batch, bool own, cnn_conv_pack *pk)
{
    return pack_layout(g, max_batch, false, own, pk);
}

bool cnn_op_conv2d_pack_winograd(const cnn_conv_geom *g, int max_batch, bool own, cnn_conv_pack *pk)
{
    if (!use_winograd(g) || max_batch < 1) return false;
    size_t x_n = (size_t)max_batch * g->ci * g->hi * g->wi;
    return gemm_layout(16, (size_t)g->ci, (size_t)max_batch * gemm_p(g, true), (size_t)g->co, x_n, own, pk) != 0;
}

size_t cnn_op_conv2d_packed_weights(const cnn_conv_pack *pk)
{
    return (pk->winograd ? 16u : 1u) * (size_t)pk->k_pad * pk->co_pad;
}

/* U = G w G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
/* U = G g G^T for OB output channels at once (lanes: o), G = [[1, 0, 0],
 * [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]] spelled out: halving is
 * exact, so each entry is its double sum rounded once.  g[j][o] holds tap
 * j of filter o. */
enum { OB = 16 };
static void winograd_weights(const double g[9][OB], float u[16][OB])
{
    double t[4][3][OB];
    for (int j = 0; j < 3; j++)
        for (int o = 0; o < OB; o++) {
            double a = g[j][o], b = g[3 + j][o], c = g[6 + j][o];
            t[0][j][o] = a;
            t[1][j][o] = (a + b + c) * 0.5;
            t[2][j][o] = (a - b + c) * 0.5;
            t[3][j][o] = c;
        }
    for (int i = 0; i < 4; i++)
        for (int o = 0; o < OB; o++) {
            double a = t[i][0][o], b = t[i][1][o], c = t[i][2][o];
            u[i * 4 + 0][o] = (float)a;
            u[i * 4 + 1][o] = (float)((a + b + c) * 0.5);
            u[i * 4 + 2][o] = (float)((a - b + c) * 0.5);
            u[i * 4 + 3][o] = (float)c;
        }
}

void cnn_op_conv2d_pack_weights(const cnn_conv_geom *g, const cnn_conv_pack *pk, const float *w, float *packed)
{
    /* Row by row of the packed matrices, so that every write is
     * sequential; the reads (one short run per output channel) stay in
     * cache from one row to the next.  Padding is zeroed as it is
     * passed. */
    size_t co = (size_t)g->co, co_pad = (size_t)pk->co_pad, tail = (co_pad - co) * sizeof(float);
    if (pk->winograd) {
        size_t block = (size_t)pk->k_pad * co_pad;
        for (int c = 0; c < pk->k_pad; c++) {
            float *row = packed + (size_t)c * co_pad;
            if (c >= g->ci) {
                for (int xi = 0; xi < 16; xi++) memset(row + xi * block, 0, co_pad * sizeof(float));
                continue;
            }
            for (size_t o0 = 0; o0 < co; o0 += OB) {
                size_t no = co - o0 < OB ? co - o0 : OB;
                double taps[9][OB] = {{0}};
                float u[16][OB];
                for (size_t o = 0; o < no; o++)
                    for (int j = 0; j < 9; j++) taps[j][o] = w[((o0 + o) * (size_t)g->ci + (size_t)c) * 9 + j];
                winograd_weights((const double(*)[OB])taps, u);
                for (int xi = 0; xi < 16; xi++) memcpy(row + xi * block + o0, u[xi], no * sizeof(float));
            }
            for (int xi = 0; xi < 16; xi++) memset(row + xi * block + co, 0, tail);
        }
        return;
    }
    size_t k = (size_t)g->ci * g->kh * g->kw;
    for (size_t r = 0; r < (size_t)pk->k_pad; r++) {
        float *row = packed + r * co_pad;
        if (r >= k) {
            memset(row, 0, co_pad * sizeof(float));
            continue;
        }
        for (size_t o = 0; o < co; o++) row[o] = w[o * k + r];
        memset(row + co, 0, tail);
    }
}

static size_t packed_p(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n)
{
    return round_up((size_t)n * gemm_p(g, pk->winograd), (size_t)pk->p_align);
}

/* One image whose column matrix is its input: 1x1 stride 1 unpadded with
 * ci and ho*wo already on the tile. */
static bool input_is_col(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n)
{
    return n == 1 && !pk->winograd && is_pointwise(g) && pk->k_pad == g->ci &&
           packed_p(g, pk, 1) == (size_t)g->ho * g->wo;
}


static size_t wino_block(size_t rows, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n)
{
    return rows * packed_p(g, pk, n) + WINO_SKEW;
}

size_t cnn_op_conv2d_packed_col(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n)
{
    if (pk->winograd) return 16 * wino_block((size_t)pk->k_pad, g, pk, n);
    return input_is_col(g, pk, n) ? 0 : (size_t)pk->k_pad * packed_p(g, pk, n);
}

size_t cnn_op_conv2d_packed_out(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n)
{
    if (pk->winograd) return 16 * wino_block((size_t)pk->co_pad, g, pk, n);
    return (size_t)pk->co_pad * packed_p(g, pk, n);
}


static int run_winograd_in(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem x,
                           cl_mem v, size_t t_pad, const char *layer)
{
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "conv.cl", NULL, "kernel_winograd_in_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint a[] = {(cl_uint)n,          (cl_uint)g->ci,          (cl_uint)g->hi,    (cl_uint)g->wi,
                   (cl_uint)tiles_h(g), (cl_uint)tiles_w(g),     (cl_uint)g->pt,    (cl_uint)g->pl,
                   (cl_uint)pk->k_pad,  (cl_uint)t_pad,          (cl_uint)wino_block((size_t)pk->k_pad, g, pk, n)};
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, v, layer)) < 0) return status;
    for (cl_uint i = 0; i < sizeof a / sizeof a[0]; i++)
        if ((status = CNN_ARG(k, 2 + i, a[i], layer)) < 0) return status;
    return cnn_op_run_rows(cl, k, (size_t)tiles_w(g), (size_t)pk->k_pad * n * tiles_h(g), layer);
}

static int run_winograd_out(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem m,
                            cl_mem bias, cnn_act act, float slope, cl_mem y, size_t t_pad, const char *layer)
{
    char opts[32];
    snprintf(opts, sizeof opts, "-DACT=%d", (int)act);
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "eltwise.cl", opts, "kernel_winograd_out_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint a[] = {(cl_uint)n,           (cl_uint)g->co,      (cl_uint)g->ho,
                   (cl_uint)g->wo,       (cl_uint)tiles_h(g), (cl_uint)tiles_w(g),
                   (cl_uint)pk->co_pad,  (cl_uint)t_pad,      (cl_uint)wino_block((size_t)pk->co_pad, g, pk, n),
                   (cl_uint)(pk->p_major),
                   (cl_uint)(bias != NULL)};
    if ((status = CNN_ARG(k, 0, m, layer)) < 0 || (status = CNN_ARG(k, 1, bias, layer)) < 0 ||
        (status = CNN_ARG(k, 2, y, layer)) < 0)
        return status;
    for (cl_uint i = 0; i < sizeof a / sizeof a[0]; i++)
        if ((status = CNN_ARG(k, 3 + i, a[i], layer)) < 0) return status;
    if ((status = CNN_ARG(k, 14, slope, layer)) < 0) return status;
    return cnn_op_run_rows(cl, k, (size_t)tiles_w(g), (size_t)n * g->co * tiles_h(g), layer);
}

static int run_im2col_batch(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem x,
                            cl_mem col, size_t p_pad, const char *layer)
{
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "conv.cl", NULL, "kernel_im2col_batch_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint v[] = {(cl_uint)n,     (cl_uint)g->ci, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho,
                   (cl_uint)g->wo, (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh, (cl_uint)g->sw,
                   (cl_uint)g->dh, (cl_uint)g->dw, (cl_uint)g->pt, (cl_uint)g->pl, (cl_uint)pk->k_pad,
                   (cl_uint)p_pad};
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, col, layer)) < 0) return status;
    for (cl_uint i = 0; i < sizeof v / sizeof v[0]; i++)
        if ((status = CNN_ARG(k, 2 + i, v[i], layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)pk->k_pad * n * g->ho, layer);
}

static int run_gemm_store(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem out,
                          cl_mem bias, cnn_act act, float slope, cl_mem y, size_t p_pad, const char *layer)
{
    char opts[32];
    snprintf(opts, sizeof opts, "-DACT=%d", (int)act);
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "eltwise.cl", opts, "kernel_gemm_store_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    bool p_major = pk->p_major;
    cl_uint v[] = {(cl_uint)n,
                   (cl_uint)g->co,
                   (cl_uint)g->ho,
                   (cl_uint)g->wo,
                   (cl_uint)(p_major ? p_pad : (size_t)pk->co_pad),
                   (cl_uint)p_major,
                   (cl_uint)(bias != NULL)};
    if ((status = CNN_ARG(k, 0, out, layer)) < 0 || (status = CNN_ARG(k, 1, bias, layer)) < 0 ||
        (status = CNN_ARG(k, 2, y, layer)) < 0)
        return status;
    for (cl_uint i = 0; i < sizeof v / sizeof v[0]; i++)
        if ((status = CNN_ARG(k, 3 + i, v[i], layer)) < 0) return status;
    if ((status = CNN_ARG(k, 10, slope, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)n * g->co * g->ho, layer);
}

int cnn_op_conv2d_packed(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem x,
                         cl_mem wpack, cl_mem bias, cnn_act act, float slope, cl_mem y, cl_mem col, cl_mem out,
                         const char *layer)
{
    size_t p_pad = packed_p(g, pk, n);
    int status;
    if (pk->winograd) {
        if ((status = run_winograd_in(cl, g, pk, n, x, col, p_pad, layer)) < 0) return status;
        size_t vs = wino_block((size_t)pk->k_pad, g, pk, n), ms = wino_block((size_t)pk->co_pad, g, pk, n);
        size_t us = (size_t)pk->k_pad * pk->co_pad;
        if (pk->p_major)
            status = cnn_blas_sgemm_native_n(cl, 16, p_pad, (size_t)pk->co_pad, (size_t)pk->k_pad, col, vs, wpack,
                                             us, out, ms, layer);
        else
            status = cnn_blas_sgemm_native_n(cl, 16, (size_t)pk->co_pad, p_pad, (size_t)pk->k_pad, wpack, us, col,
                                             vs, out, ms, layer);
        if (status < 0) return status;
        return run_winograd_out(cl, g, pk, n, out, bias, act, slope, y, p_pad, layer);
    }
    cl_mem a = x;
    if (!input_is_col(g, pk, n)) {
        if ((status = run_im2col_batch(cl, g, pk, n, x, col, p_pad, layer)) < 0) return status;
        a = col;
    }
    if (pk->p_major)
        status = cnn_blas_sgemm_native(cl, p_pad, (size_t)pk->co_pad, (size_t)pk->k_pad, a, wpack, out, layer);
    else
        status = cnn_blas_sgemm_native(cl, (size_t)pk->co_pad, p_pad, (size_t)pk->k_pad, wpack, a, out, layer);
    if (status < 0) return status;
    return run_gemm_store(cl, g, pk, n, out, bias, act, slope, y, p_pad, layer);
}
