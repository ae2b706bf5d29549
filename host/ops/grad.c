/* Backward ops (cl/grad.cl): gradients with respect to activations and the
 * input, every one ADDING into dx.  One program (grad.cl without options)
 * serves most kernels; the activation and the mode are run-time arguments.
 * A few backward kernels live beside their forwards to share its index or
 * math functions: SiLU and GELU (eltwise.cl), layer norm and channel
 * selection (pool.cl), pad and resize (resample.cl).
 *
 * Convolution backward-data has three paths, chosen like the forward's:
 *  - thin groups (depthwise; the forward's direct kernel): a direct gather
 *    kernel over dx, no scratch;
 *  - 1x1, stride 1, no padding: dx_g += W_g^T dY_g, one GEMM with beta 1
 *    per image and group, no scratch;
 *  - otherwise: cols = W_g^T dY_g (cnn_blas_sgemm: the own kernel on PoCL
 *    CPUs, CLBlast elsewhere; into the scratch) then a col2im kernel in
 *    gather form that adds cols into dx, per image and group.
 * Max pooling's backward is the one scatter (cl/grad.cl says why). */
#include "ops/grad.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "core/error.h"

#include <limits.h>
#include <stdio.h>

/* Kernels index with uint: refuse anything that would wrap. */
static int check_count(size_t count, const char *op, const char *layer)
{
    if (count > UINT_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "%s layer '%s': %zu elements is more than this kernel "
                             "indexes (2^32 - 1)", op, layer, count);
    return CNN_OK;
}

static int grad_kernel(cnn_cl *cl, const char *name, const char *layer, cl_kernel *k)
{
    int status = cnn_cl_kernel(cl, "grad.cl", NULL, name, k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    return CNN_OK;
}

/* Sets the buffers bufs[0..nb) then the uints v[0..nv) as consecutive
 * arguments from 0. */
static int set_args(cl_kernel k, const cl_mem *bufs, size_t nb, const cl_uint *v, size_t nv,
                    const char *layer)
{
    int status;
    for (size_t i = 0; i < nb; i++)
        if ((status = CNN_ARG(k, (cl_uint)i, bufs[i], layer)) < 0) return status;
    for (size_t i = 0; i < nv; i++)
        if ((status = CNN_ARG(k, (cl_uint)(nb + i), v[i], layer)) < 0) return status;
    return CNN_OK;
}

int cnn_grad_zero(cnn_cl *cl, cl_mem dx, size_t off, size_t n, const char *layer)
{
    if (n == 0) return CNN_OK;
    const float zero = 0.0f;
    cl_int err = clEnqueueFillBuffer(cl->queue, dx, &zero, sizeof zero, off * sizeof zero, n * sizeof zero, 0,
                                     NULL, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clEnqueueFillBuffer(%zu floats at %zu) failed: %s (grad zero, "
                             "layer '%s')", n, off, cnn_cl_error_name(err), layer);
    return CNN_OK;
}

int cnn_grad_accum(cnn_cl *cl, cl_mem dy, cl_mem dx, size_t n, const char *layer)
{
    int status = check_count(n, "grad accum", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_grad_accum_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {dy, dx};
    cl_uint v[] = {(cl_uint)n};
    if ((status = set_args(k, b, 2, v, 1, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, layer);
}

int cnn_grad_act(cnn_cl *cl, cnn_act act, float slope, cnn_grad_mode mode, cl_mem x, cl_mem y, cl_mem dy,
                 cl_mem dx, size_t n, const char *layer)
{
    int status = check_count(n, "grad act", layer);
    if (status < 0) return status;
    if ((unsigned)act > CNN_ACT_LAST || (unsigned)mode > CNN_GRAD_DECONV)
        return cnn_error_set(CNN_ERR_USAGE, "grad act layer '%s': unknown activation %d or mode %d", layer,
                             (int)act, (int)mode);
    cl_kernel k;
    if (act >= CNN_ACT_SILU) {
        /* SiLU and GELU: their derivatives live with their forwards
         * (eltwise.cl, one program per activation); no mode changes them */
        char opts[32];
        snprintf(opts, sizeof opts, "-DACT=%d", (int)act);
        if ((status = cnn_cl_kernel(cl, "eltwise.cl", opts, "kernel_act_bwd_f32", &k)) < 0)
            return cnn_error_prefix(status, "layer '%s'", layer);
        cl_mem b[] = {x, dy, dx};
        cl_uint v[] = {(cl_uint)n};
        if ((status = set_args(k, b, 3, v, 1, layer)) < 0) return status;
        return cnn_cl_run1d(cl, k, n, layer);
    }
    if ((status = grad_kernel(cl, "kernel_grad_act_f32", layer, &k)) < 0) return status;
    /* Each activation reads x or y only; the other may be NULL. */
    cl_mem xb = x ? x : y, yb = y ? y : x;
    cl_mem b[] = {xb, yb, dy, dx};
    cl_uint v[] = {(cl_uint)n, (cl_uint)act, (cl_uint)mode};
    if ((status = set_args(k, b, 4, v, 3, layer)) < 0 || (status = CNN_ARG(k, 7, slope, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, n, layer);
}

int cnn_grad_scale(cnn_cl *cl, cl_mem dy, cl_mem scale, cl_mem dx, size_t count, size_t plane, int channels,
                   const char *layer)
{
    int status = check_count(count, "grad scale", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_grad_scale_f32", layer, &k)) < 0) return status;
    if (!plane) plane = 1;
    cl_mem b[] = {dy, scale, dx};
    cl_uint v[] = {(cl_uint)(count / plane), (cl_uint)plane, (cl_uint)channels};
    if ((status = set_args(k, b, 3, v, 3, layer)) < 0) return status;
    return cnn_op_run_rows(cl, k, plane, count / plane, layer);
}

/* ---- convolution ---- */

/* The forward's choice (conv.c): thin groups run direct. */
static int use_direct(const cnn_conv_geom *g)
{
    return g->groups > 1 && g->ci / g->groups <= 4;
}

static int is_pointwise(const cnn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pb == 0 && g->pl == 0 &&
           g->pr == 0;
}

size_t cnn_grad_conv2d_scratch(const cnn_conv_geom *g)
{
    if (use_direct(g) || is_pointwise(g)) return 0;
    return (size_t)(g->ci / g->groups) * g->kh * g->kw * g->ho * g->wo;
}

static int conv_bwd_direct(cnn_cl *cl, const cnn_conv_geom *g, int n, cl_mem dy, cl_mem w, cl_mem dx,
                           const char *layer)
{
    cl_kernel k;
    int status = grad_kernel(cl, "kernel_conv_bwd_direct_f32", layer, &k);
    if (status < 0) return status;
    cl_mem b[] = {dy, w, dx};
    cl_uint v[] = {(cl_uint)n,      (cl_uint)g->ci, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->co,
                   (cl_uint)g->ho,  (cl_uint)g->wo, (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh,
                   (cl_uint)g->sw,  (cl_uint)g->dh, (cl_uint)g->dw, (cl_uint)g->pt, (cl_uint)g->pl,
                   (cl_uint)g->groups};
    if ((status = set_args(k, b, 3, v, sizeof v / sizeof v[0], layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)n * g->ci * g->hi * g->wi, layer);
}

static int col2im_add(cnn_cl *cl, const cnn_conv_geom *g, cl_mem col, cl_mem dx, size_t dx_off,
                      const char *layer)
{
    cl_kernel k;
    int status = grad_kernel(cl, "kernel_col2im_add_f32", layer, &k);
    if (status < 0) return status;
    cl_uint cig = (cl_uint)(g->ci / g->groups);
    cl_mem b[] = {col, dx};
    cl_uint v[] = {(cl_uint)dx_off,  cig,            (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho,
                   (cl_uint)g->wo,   (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh, (cl_uint)g->sw,
                   (cl_uint)g->dh,   (cl_uint)g->dw, (cl_uint)g->pt, (cl_uint)g->pl};
    if ((status = set_args(k, b, 2, v, sizeof v / sizeof v[0], layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)cig * g->hi * g->wi, layer);
}

int cnn_grad_conv2d(cnn_cl *cl, const cnn_conv_geom *g, int n, cl_mem dy, cl_mem w, cl_mem dx, cl_mem scratch,
                    const char *layer)
{
    if (g->groups < 1 || g->ci % g->groups || g->co % g->groups || g->sh < 1 || g->sw < 1 || g->dh < 1 ||
        g->dw < 1)
        return cnn_error_set(CNN_ERR_INPUT, "grad conv layer '%s': bad geometry (ci %d co %d groups %d "
                             "stride %dx%d dilation %dx%d)", layer, g->ci, g->co, g->groups, g->sh, g->sw,
                             g->dh, g->dw);
    size_t plane_in = (size_t)g->hi * g->wi, plane_out = (size_t)g->ho * g->wo;
    size_t nx = (size_t)n * g->ci * plane_in, ny = (size_t)n * g->co * plane_out;
    int status = check_count(nx > ny ? nx : ny, "grad conv", layer);
    if (status < 0) return status;
    if (use_direct(g)) return conv_bwd_direct(cl, g, n, dy, w, dx, layer);

    size_t cig = (size_t)(g->ci / g->groups), cog = (size_t)(g->co / g->groups);
    size_t kdim = cig * g->kh * g->kw;
    bool pointwise = is_pointwise(g);
    if (!pointwise && (status = check_count(cnn_grad_conv2d_scratch(g), "grad conv", layer)) < 0) return status;
    for (int b = 0; b < n; b++) {
        for (int gi = 0; gi < g->groups; gi++) {
            size_t dy_off = ((size_t)b * g->co + gi * cog) * plane_out;
            size_t dx_off = ((size_t)b * g->ci + gi * cig) * plane_in;
            size_t w_off = gi * cog * kdim;
            if (pointwise) {
                /* dx_g [cig, P] += W_g^T [cig, cog] * dY_g [cog, P] */
                status = cnn_blas_sgemm_beta(cl, true, false, cig, plane_out, cog, w, w_off, kdim, dy, dy_off,
                                             plane_out, 1.0f, dx, dx_off, plane_in, layer);
            } else {
                /* cols [kdim, P] = W_g^T [kdim, cog] * dY_g [cog, P] */
                status = cnn_blas_sgemm(cl, true, false, kdim, plane_out, cog, w, w_off, kdim, dy, dy_off,
                                        plane_out, scratch, 0, plane_out, layer);
                if (status == CNN_OK) status = col2im_add(cl, g, scratch, dx, dx_off, layer);
            }
            if (status < 0) return status;
        }
    }
    return CNN_OK;
}

/* ---- linear ---- */

#define LIN_WG 64   /* grad.cl */
#define LIN_COLS 64 /* LIN_CB * 16 columns per work-group */
#define LIN_MAX_BATCH 4

int cnn_grad_linear(cnn_cl *cl, int n, int in, int out, cl_mem dy, cl_mem w, cl_mem dx, const char *layer)
{
    if (n <= 0 || in <= 0 || out <= 0) return CNN_OK;
    int status = check_count((size_t)n * in > (size_t)n * out ? (size_t)n * in : (size_t)n * out, "grad linear",
                             layer);
    if (status < 0) return status;
    if (n > LIN_MAX_BATCH)
        /* dx [n, in] += dy [n, out] * W [out, in] */
        return cnn_blas_sgemm_beta(cl, false, false, (size_t)n, (size_t)in, (size_t)out, dy, 0, (size_t)out, w,
                                   0, (size_t)in, 1.0f, dx, 0, (size_t)in, layer);
    /* Small batches are bound by reading W: a kernel that reads it once per
     * image in cache-line rows. */
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_linear_bwd_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {dy, w, dx};
    cl_uint v[] = {(cl_uint)in, (cl_uint)out};
    if ((status = set_args(k, b, 3, v, 2, layer)) < 0) return status;
    size_t global[2] = {((size_t)in + LIN_COLS - 1) / LIN_COLS * LIN_WG, (size_t)n};
    size_t local[2] = {LIN_WG, 1};
    return cnn_cl_runnd(cl, k, 2, global, local, layer);
}

/* ---- pooling ---- */

/* Checks shared by the pool backward ops: counts within 32 bits, strides
 * of at least 1.  Sets the dilations (0 in a geometry means 1, as in the
 * forward). */
static int pool_bwd_check(const cnn_pool_geom *g, int n, const char *what, const char *layer, cl_uint *dh,
                          cl_uint *dw)
{
    size_t total = (size_t)n * g->c * g->hi * g->wi;
    size_t outs = (size_t)n * g->c * g->ho * g->wo;
    int status = check_count(total > outs ? total : outs, what, layer);
    if (status < 0) return status;
    if (g->sh < 1 || g->sw < 1)
        return cnn_error_set(CNN_ERR_INPUT, "grad pool layer '%s': stride %dx%d", layer, g->sh, g->sw);
    *dh = g->dh > 0 ? (cl_uint)g->dh : 1u;
    *dw = g->dw > 0 ? (cl_uint)g->dw : 1u;
    return CNN_OK;
}

int cnn_grad_maxpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem x, cl_mem dy, cl_mem dx, const char *layer)
{
    cl_uint dh = 1, dw = 1;
    int status = pool_bwd_check(g, n, "grad maxpool", layer, &dh, &dw);
    if (status < 0) return status;
    /* Phases (cl/grad.cl): outputs py rows (px columns) apart have
     * disjoint windows. */
    cl_uint span_y = ((cl_uint)g->kh - 1) * dh + 1, span_x = ((cl_uint)g->kw - 1) * dw + 1;
    cl_uint py = (span_y + (cl_uint)g->sh - 1) / (cl_uint)g->sh, px = (span_x + (cl_uint)g->sw - 1) / (cl_uint)g->sw;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_maxpool_bwd_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {x, dy, dx};
    for (cl_uint ay = 0; ay < py && ay < (cl_uint)g->ho; ay++)
        for (cl_uint ax = 0; ax < px && ax < (cl_uint)g->wo; ax++) {
            cl_uint qh = ((cl_uint)g->ho - ay + py - 1) / py, qw = ((cl_uint)g->wo - ax + px - 1) / px;
            size_t rows = (size_t)n * g->c * qh;
            cl_uint v[] = {(cl_uint)rows,  qh,        qw,     (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho,
                           (cl_uint)g->wo, (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh, (cl_uint)g->sw,
                           dh,             dw,        (cl_uint)g->pt, (cl_uint)g->pl, py, px, ay, ax};
            if ((status = set_args(k, b, 3, v, sizeof v / sizeof v[0], layer)) < 0 ||
                (status = cnn_op_run_rows(cl, k, qw, rows, layer)) < 0)
                return status;
        }
    return CNN_OK;
}

int cnn_grad_avgpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem dy, cl_mem dx, const char *layer)
{
    cl_uint dh = 1, dw = 1;
    int status = pool_bwd_check(g, n, "grad avgpool", layer, &dh, &dw);
    if (status < 0) return status;
    size_t total = (size_t)n * g->c * g->hi * g->wi;
    cl_uint v[] = {(cl_uint)total, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho,
                   (cl_uint)g->wo,  (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh,
                   (cl_uint)g->sw,  dh,             dw,             (cl_uint)g->pt,
                   (cl_uint)g->pl,  (cl_uint)g->pb, (cl_uint)g->pr, (cl_uint)!!g->count_include_pad};
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_avgpool_bwd_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {dy, dx};
    if ((status = set_args(k, b, 2, v, sizeof v / sizeof v[0], layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_grad_adaptive_avgpool(cnn_cl *cl, int n, int c, int hi, int wi, int ho, int wo, cl_mem dy, cl_mem dx,
                              const char *layer)
{
    size_t total = (size_t)n * c * hi * wi, outs = (size_t)n * c * ho * wo;
    int status = check_count(total > outs ? total : outs, "grad adaptive avgpool", layer);
    if (status < 0) return status;
    /* (o + 1) * h must not wrap in the kernel, in either direction. */
    if ((status = check_count((size_t)(ho + 1) * hi + ho, "grad adaptive avgpool", layer)) < 0 ||
        (status = check_count((size_t)(wo + 1) * wi + wo, "grad adaptive avgpool", layer)) < 0 ||
        (status = check_count((size_t)(hi + 1) * ho + hi, "grad adaptive avgpool", layer)) < 0 ||
        (status = check_count((size_t)(wi + 1) * wo + wi, "grad adaptive avgpool", layer)) < 0)
        return status;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_adaptive_avgpool_bwd_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {dy, dx};
    cl_uint v[] = {(cl_uint)total, (cl_uint)hi, (cl_uint)wi, (cl_uint)ho, (cl_uint)wo};
    if ((status = set_args(k, b, 2, v, 5, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_grad_softmax(cnn_cl *cl, int n, int c, int plane, cl_mem y, cl_mem dy, cl_mem dx, const char *layer)
{
    int status = check_count((size_t)n * c * plane, "grad softmax", layer);
    if (status < 0) return status;
    size_t items = (size_t)n * plane;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_softmax_bwd_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {y, dy, dx};
    cl_uint v[] = {(cl_uint)items, (cl_uint)c, (cl_uint)plane};
    if ((status = set_args(k, b, 3, v, 3, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, items, layer);
}

int cnn_grad_lrn(cnn_cl *cl, int n, int c, int plane, int size, float alpha, float beta, float k, cl_mem x,
                 cl_mem dy, cl_mem dx, const char *layer)
{
    size_t total = (size_t)n * c * plane;
    int status = check_count(total, "grad lrn", layer);
    if (status < 0) return status;
    if (size < 1) return cnn_error_set(CNN_ERR_INPUT, "layer '%s': lrn size %d", layer, size);
    cl_kernel kk;
    if ((status = grad_kernel(cl, "kernel_lrn_bwd_f32", layer, &kk)) < 0) return status;
    cl_mem b[] = {x, dy, dx};
    cl_uint v[] = {(cl_uint)total, (cl_uint)c, (cl_uint)plane, (cl_uint)size};
    if ((status = set_args(kk, b, 3, v, 4, layer)) < 0) return status;
    if ((status = CNN_ARG(kk, 7, alpha, layer)) < 0 || (status = CNN_ARG(kk, 8, beta, layer)) < 0 ||
        (status = CNN_ARG(kk, 9, k, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, kk, total, layer);
}

int cnn_grad_concat_part(cnn_cl *cl, int n, int cx, int cy, int c0, int plane, cl_mem dy, cl_mem dx,
                         const char *layer)
{
    size_t total = (size_t)n * cx * plane;
    int status = check_count((size_t)n * cy * plane, "grad concat", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_concat_bwd_f32", layer, &k)) < 0) return status;
    cl_mem b[] = {dy, dx};
    cl_uint v[] = {(cl_uint)total, (cl_uint)cx * (cl_uint)plane, (cl_uint)cy * (cl_uint)plane,
                   (cl_uint)c0 * (cl_uint)plane};
    if ((status = set_args(k, b, 2, v, 4, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

/* ---- clamp, binary ops, layer norm, global max pool, channel selection ---- */

int cnn_grad_clamp(cnn_cl *cl, cl_mem x, cl_mem dy, cl_mem dx, size_t n, float a, float b, float lo, float hi,
                   bool inclusive, const char *layer)
{
    int status = check_count(n, "grad clamp", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_clamp_bwd_f32", layer, &k)) < 0) return status;
    cl_mem bufs[] = {x, dy, dx};
    cl_uint v[] = {(cl_uint)n};
    cl_uint inc = inclusive;
    if ((status = set_args(k, bufs, 3, v, 1, layer)) < 0 || (status = CNN_ARG(k, 4, a, layer)) < 0 ||
        (status = CNN_ARG(k, 5, b, layer)) < 0 || (status = CNN_ARG(k, 6, lo, layer)) < 0 ||
        (status = CNN_ARG(k, 7, hi, layer)) < 0 || (status = CNN_ARG(k, 8, inc, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, n, layer);
}

int cnn_grad_binary(cnn_cl *cl, const cnn_bin_geom *g, int n, int which, cl_mem a, cl_mem b, cl_mem dy, cl_mem dx,
                    const char *layer)
{
    int status = cnn_bin_check(g, n, layer);
    if (status < 0) return status;
    if ((which != 0 && which != 1) || !g->batched[which] || g->scalar[which])
        return cnn_error_set(CNN_ERR_USAGE, "grad binary layer '%s': operand %d is not a layer", layer, which);
    const int *t = g->shape[which];
    size_t total = (size_t)n * t[0] * t[1] * t[2];
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_binary_bwd_f32", layer, &k)) < 0) return status;
    if (g->scalar[0]) a = b;
    if (g->scalar[1]) b = a;
    cl_mem bufs[] = {a, b, dy, dx};
    cl_uint v[] = {(cl_uint)total, (cl_uint)g->c, (cl_uint)g->h, (cl_uint)g->w,
                   (cl_uint)t[0],  (cl_uint)t[1], (cl_uint)t[2]};
    cl_uint4 sa, sb;
    cnn_bin_strides(g, 0, sa.s);
    cnn_bin_strides(g, 1, sb.s);
    cl_uint op = (cl_uint)g->op, wh = (cl_uint)which, side = g->scalar[0] ? 1u : g->scalar[1] ? 2u : 0u;
    if ((status = set_args(k, bufs, 4, v, 7, layer)) < 0 || (status = CNN_ARG(k, 11, sa, layer)) < 0 ||
        (status = CNN_ARG(k, 12, sb, layer)) < 0 || (status = CNN_ARG(k, 13, op, layer)) < 0 ||
        (status = CNN_ARG(k, 14, wh, layer)) < 0 || (status = CNN_ARG(k, 15, side, layer)) < 0 ||
        (status = CNN_ARG(k, 16, g->value, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_grad_layernorm(cnn_cl *cl, int n, int c, int plane, float eps, cl_mem x, cl_mem w, cl_mem dy, cl_mem dx,
                       const char *layer)
{
    size_t items = (size_t)n * plane;
    int status = check_count(items * (size_t)c, "grad layernorm", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = cnn_cl_kernel(cl, "pool.cl", NULL, "kernel_layernorm_bwd_f32", &k)) < 0)
        return cnn_error_prefix(status, "layer '%s'", layer);
    cl_mem bufs[] = {x, w ? w : x, dy, dx};
    cl_uint v[] = {(cl_uint)items, (cl_uint)c, (cl_uint)plane};
    cl_uint affine = w != NULL;
    if ((status = set_args(k, bufs, 4, v, 3, layer)) < 0 || (status = CNN_ARG(k, 7, eps, layer)) < 0 ||
        (status = CNN_ARG(k, 8, affine, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, items, layer);
}

int cnn_grad_global_maxpool(cnn_cl *cl, int n, int c, int plane, cl_mem x, cl_mem dy, cl_mem dx,
                            const char *layer)
{
    size_t total = (size_t)n * c;
    int status = check_count(total * (size_t)plane, "grad global maxpool", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = grad_kernel(cl, "kernel_global_maxpool_bwd_f32", layer, &k)) < 0) return status;
    cl_mem bufs[] = {x, dy, dx};
    cl_uint v[] = {(cl_uint)total, (cl_uint)plane};
    if ((status = set_args(k, bufs, 3, v, 2, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_grad_channel_gather(cnn_cl *cl, const cnn_chan_map *m, int n, int plane, cl_mem dy, cl_mem dx,
                            const char *layer)
{
    int status = cnn_chan_map_check(m, n, plane, layer);
    if (status < 0) return status;
    size_t rows = (size_t)n * m->cy;
    cl_kernel k;
    if ((status = cnn_cl_kernel(cl, "pool.cl", NULL, "kernel_channel_gather_bwd_f32", &k)) < 0)
        return cnn_error_prefix(status, "layer '%s'", layer);
    cl_mem bufs[] = {dy, dx};
    cl_uint v[] = {(cl_uint)rows,     (cl_uint)plane,   (cl_uint)m->cx,     (cl_uint)m->cy,
                   (cl_uint)m->start, (cl_uint)m->step, (cl_uint)m->groups, (cl_uint)m->k};
    if ((status = set_args(k, bufs, 2, v, 8, layer)) < 0) return status;
    return cnn_op_run_rows(cl, k, (size_t)plane, rows, layer);
}

/* ---- pad, resize (cl/resample.cl) ---- */

static int resample_kernel(cnn_cl *cl, const char *name, const char *layer, cl_kernel *k)
{
    int status = cnn_cl_kernel(cl, "resample.cl", NULL, name, k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    return CNN_OK;
}

int cnn_grad_pad(cnn_cl *cl, const cnn_pad_geom *g, int n, cl_mem dy, cl_mem dx, const char *layer)
{
    size_t total = (size_t)n * g->c * g->hi * g->wi;
    int status = check_count((size_t)n * g->c * g->ho * g->wo, "grad pad", layer);
    if (status < 0) return status;
    if (g->pt < 0 || g->pl < 0 || g->ho < g->hi + g->pt || g->wo < g->wi + g->pl)
        return cnn_error_set(CNN_ERR_INPUT, "grad pad layer '%s': [%d, %d] -> [%d, %d] at (%d, %d)", layer, g->hi,
                             g->wi, g->ho, g->wo, g->pt, g->pl);
    cl_kernel k;
    if ((status = resample_kernel(cl, "kernel_pad_bwd_f32", layer, &k)) < 0) return status;
    cl_mem bufs[] = {dy, dx};
    cl_uint v[] = {(cl_uint)total,  (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho,
                   (cl_uint)g->wo, (cl_uint)g->pt, (cl_uint)g->pl, (cl_uint)g->mode};
    if ((status = set_args(k, bufs, 2, v, 8, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_grad_resize(cnn_cl *cl, const cnn_resize_geom *g, int n, cl_mem dy, cl_mem dx, const char *layer)
{
    size_t total = (size_t)n * g->c * g->hi * g->wi, outs = (size_t)n * g->c * g->ho * g->wo;
    int status = check_count(total > outs ? total : outs, "grad resize", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = resample_kernel(cl, "kernel_resize_bwd_f32", layer, &k)) < 0) return status;
    cl_mem bufs[] = {dy, dx};
    cl_uint v[] = {(cl_uint)total, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho, (cl_uint)g->wo};
    cl_uint bil = g->bilinear, ac = g->align_corners;
    if ((status = set_args(k, bufs, 2, v, 5, layer)) < 0 || (status = CNN_ARG(k, 7, g->rh, layer)) < 0 ||
        (status = CNN_ARG(k, 8, g->rw, layer)) < 0 || (status = CNN_ARG(k, 9, bil, layer)) < 0 ||
        (status = CNN_ARG(k, 10, ac, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, total, layer);
}
