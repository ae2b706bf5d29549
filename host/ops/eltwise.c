#include "ops/ops.h"
#include "core/error.h"

#include <limits.h>
#include <stdio.h>

/* Activation is a compile-time choice (-DACT=k) so the inner loop has no
 * branch; each variant is one cached program. */
static int act_kernel(cnn_cl *cl, cnn_act act, const char *name, cl_kernel *k)
{
    char opts[32];
    snprintf(opts, sizeof opts, "-DACT=%d", (int)act);
    return cnn_cl_kernel(cl, "eltwise.cl", opts, name, k);
}

int cnn_op_act(cnn_cl *cl, cnn_act act, float slope, cl_mem x, cl_mem y, size_t n, const char *layer)
{
    cl_kernel k;
    int status = act_kernel(cl, act, "kernel_act_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint un = (cl_uint)n;
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, y, layer)) < 0 ||
        (status = CNN_ARG(k, 2, un, layer)) < 0 || (status = CNN_ARG(k, 3, slope, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, n, layer);
}

int cnn_op_affine_act(cnn_cl *cl, cl_mem x, cl_mem y, cl_mem scale, cl_mem shift, size_t count,
                      size_t plane, int channels, cnn_act act, float slope, const char *layer)
{
    cl_kernel k;
    int status = act_kernel(cl, act, scale ? "kernel_affine_act_f32" : "kernel_bias_act_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint un = (cl_uint)count, up = (cl_uint)plane, uc = (cl_uint)channels;
    cl_uint a = 0;
    if ((status = CNN_ARG(k, a++, x, layer)) < 0 || (status = CNN_ARG(k, a++, y, layer)) < 0)
        return status;
    if (scale && (status = CNN_ARG(k, a++, scale, layer)) < 0) return status;
    if ((status = CNN_ARG(k, a++, shift, layer)) < 0 || (status = CNN_ARG(k, a++, un, layer)) < 0 ||
        (status = CNN_ARG(k, a++, up, layer)) < 0 || (status = CNN_ARG(k, a++, uc, layer)) < 0 ||
        (status = CNN_ARG(k, a++, slope, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, count, layer);
}

int cnn_op_add(cnn_cl *cl, cl_mem a, cl_mem b, cl_mem y, size_t n, const char *layer)
{
    return cnn_op_add_act(cl, a, b, y, n, CNN_ACT_NONE, 0.0f, layer);
}

int cnn_op_add_act(cnn_cl *cl, cl_mem a, cl_mem b, cl_mem y, size_t n, cnn_act act, float slope,
                   const char *layer)
{
    cl_kernel k;
    int status = act_kernel(cl, act, "kernel_add_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint un = (cl_uint)n;
    if ((status = CNN_ARG(k, 0, a, layer)) < 0 || (status = CNN_ARG(k, 1, b, layer)) < 0 ||
        (status = CNN_ARG(k, 2, y, layer)) < 0 || (status = CNN_ARG(k, 3, un, layer)) < 0 ||
        (status = CNN_ARG(k, 4, slope, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, n, layer);
}

int cnn_op_zero(cnn_cl *cl, cl_mem y, size_t n, const char *layer)
{
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "eltwise.cl", "-DACT=0", "kernel_zero_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint un = (cl_uint)n;
    if ((status = CNN_ARG(k, 0, y, layer)) < 0 || (status = CNN_ARG(k, 1, un, layer)) < 0) return status;
    return cnn_cl_run1d(cl, k, (n + 3) / 4, layer);
}

int cnn_op_clamp(cnn_cl *cl, cl_mem x, cl_mem y, size_t n, float a, float b, float lo, float hi, const char *layer)
{
    cl_kernel k;
    int status = cnn_cl_kernel(cl, "eltwise.cl", "-DACT=0", "kernel_clamp_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    if (n > UINT_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "layer '%s': %zu elements is more than the kernel indexes", layer, n);
    cl_uint un = (cl_uint)n;
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, y, layer)) < 0 ||
        (status = CNN_ARG(k, 2, un, layer)) < 0 || (status = CNN_ARG(k, 3, a, layer)) < 0 ||
        (status = CNN_ARG(k, 4, b, layer)) < 0 || (status = CNN_ARG(k, 5, lo, layer)) < 0 ||
        (status = CNN_ARG(k, 6, hi, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, n, layer);
}

void cnn_bin_strides(const cnn_bin_geom *g, int k, cl_uint s[4])
{
    const int *d = g->shape[k];
    s[3] = d[2] == 1 ? 0u : 1u;
    s[2] = d[1] == 1 ? 0u : (cl_uint)d[2];
    s[1] = d[0] == 1 ? 0u : (cl_uint)d[1] * (cl_uint)d[2];
    s[0] = g->batched[k] ? (cl_uint)d[0] * (cl_uint)d[1] * (cl_uint)d[2] : 0u;
}

int cnn_bin_check(const cnn_bin_geom *g, int n, const char *layer)
{
    size_t out = (size_t)n * g->c * g->h * g->w;
    bool ok = out <= UINT_MAX && !(g->scalar[0] && g->scalar[1]) && (unsigned)g->op <= CNN_BIN_DIV;
    for (int k = 0; k < 2 && ok; k++)
        for (int i = 0; i < 3; i++) {
            int o = i == 0 ? g->c : i == 1 ? g->h : g->w;
            ok = ok && (g->shape[k][i] == o || g->shape[k][i] == 1);
        }
    if (!ok)
        return cnn_error_set(CNN_ERR_INPUT, "binary op layer '%s': operands [%d, %d, %d] and [%d, %d, %d] do not "
                             "broadcast to [%d, %d, %d] x %d in 32-bit indexing", layer, g->shape[0][0],
                             g->shape[0][1], g->shape[0][2], g->shape[1][0], g->shape[1][1], g->shape[1][2], g->c,
                             g->h, g->w, n);
    return CNN_OK;
}

/* Operand k has the output's layout: its full shape, and one tensor per
 * image unless there is only one image. */
static bool same_layout(const cnn_bin_geom *g, int n, int k)
{
    return g->scalar[k] || (g->shape[k][0] == g->c && g->shape[k][1] == g->h && g->shape[k][2] == g->w &&
                            (g->batched[k] || n == 1));
}

int cnn_op_binary(cnn_cl *cl, const cnn_bin_geom *g, int n, cl_mem a, cl_mem b, cl_mem y, cnn_act act, float slope,
                  const char *layer)
{
    int status = cnn_bin_check(g, n, layer);
    if (status < 0) return status;
    size_t count = (size_t)n * g->c * g->h * g->w;
    cl_uint op = (cl_uint)g->op, side = g->scalar[0] ? 1u : g->scalar[1] ? 2u : 0u;
    /* The scalar's buffer is not read; the kernel still takes one. */
    if (g->scalar[0]) a = b;
    if (g->scalar[1]) b = a;
    bool flat = same_layout(g, n, 0) && same_layout(g, n, 1);
    cl_kernel k;
    status = act_kernel(cl, act, flat ? "kernel_binary_flat_f32" : "kernel_binary_bcast_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint i = 0;
    if ((status = CNN_ARG(k, i++, a, layer)) < 0 || (status = CNN_ARG(k, i++, b, layer)) < 0 ||
        (status = CNN_ARG(k, i++, y, layer)) < 0)
        return status;
    if (flat) {
        cl_uint un = (cl_uint)count;
        if ((status = CNN_ARG(k, i++, un, layer)) < 0) return status;
    } else {
        cl_uint rows = (cl_uint)((size_t)n * g->c * g->h), c = (cl_uint)g->c, h = (cl_uint)g->h, w = (cl_uint)g->w;
        cl_uint4 sa, sb;
        cnn_bin_strides(g, 0, sa.s);
        cnn_bin_strides(g, 1, sb.s);
        if ((status = CNN_ARG(k, i++, rows, layer)) < 0 || (status = CNN_ARG(k, i++, c, layer)) < 0 ||
            (status = CNN_ARG(k, i++, h, layer)) < 0 || (status = CNN_ARG(k, i++, w, layer)) < 0 ||
            (status = CNN_ARG(k, i++, sa, layer)) < 0 || (status = CNN_ARG(k, i++, sb, layer)) < 0)
            return status;
    }
    if ((status = CNN_ARG(k, i++, op, layer)) < 0 || (status = CNN_ARG(k, i++, side, layer)) < 0 ||
        (status = CNN_ARG(k, i++, g->value, layer)) < 0 || (status = CNN_ARG(k, i++, slope, layer)) < 0)
        return status;
    if (flat) return cnn_cl_run1d(cl, k, count, layer);
    return cnn_op_run_rows(cl, k, (size_t)g->w, (size_t)n * g->c * g->h, layer);
}
