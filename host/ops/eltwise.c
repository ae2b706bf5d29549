#include "ops/ops.h"
#include "core/error.h"

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
