/* Pad and resize on the device (cl/resample.cl): one 2-D launch over the
 * output (dimension 0 a row's columns, dimension 1 the rows), so a
 * work-item divides once per row, not per element. */
#include "ops/ops.h"
#include "core/error.h"

#include <limits.h>

static int check_count(size_t count, const char *op, const char *layer)
{
    if (count > UINT_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "%s layer '%s': %zu elements is more than this kernel indexes "
                             "(2^32 - 1)", op, layer, count);
    return CNN_OK;
}

float cnn_resize_scale(int in, int out, double factor, bool align_corners)
{
    /* area_pixel_compute_scale and compute_scales_value of PyTorch, in the
     * float they use for float tensors */
    if (align_corners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    if (factor > 0) return (float)(1.0 / factor);
    return (float)in / (float)out;
}

int cnn_op_pad(cnn_cl *cl, const cnn_pad_geom *g, int n, cl_mem x, cl_mem y, const char *layer)
{
    size_t rows = (size_t)n * g->c * g->ho;
    int status = check_count(rows * (size_t)g->wo, "pad", layer);
    if (status < 0) return status;
    if (g->pt < 0 || g->pl < 0 || g->ho < g->hi + g->pt || g->wo < g->wi + g->pl ||
        (g->mode == CNN_PAD_REFLECT && (g->pt >= g->hi || g->pl >= g->wi || g->ho - g->hi - g->pt >= g->hi ||
                                        g->wo - g->wi - g->pl >= g->wi)))
        return cnn_error_set(CNN_ERR_INPUT, "pad layer '%s': [%d, %d] -> [%d, %d] at (%d, %d) mode %d", layer,
                             g->hi, g->wi, g->ho, g->wo, g->pt, g->pl, (int)g->mode);
    cl_kernel k;
    if ((status = cnn_cl_kernel(cl, "resample.cl", NULL, "kernel_pad_f32", &k)) < 0)
        return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint v[] = {(cl_uint)rows, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho, (cl_uint)g->wo,
                   (cl_uint)g->pt, (cl_uint)g->pl, (cl_uint)g->mode};
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, y, layer)) < 0) return status;
    for (cl_uint i = 0; i < sizeof v / sizeof v[0]; i++)
        if ((status = CNN_ARG(k, 2 + i, v[i], layer)) < 0) return status;
    if ((status = CNN_ARG(k, 10, g->value, layer)) < 0) return status;
    return cnn_op_run_rows(cl, k, (size_t)g->wo, rows, layer);
}

int cnn_op_resize(cnn_cl *cl, const cnn_resize_geom *g, int n, cl_mem x, cl_mem y, const char *layer)
{
    size_t rows = (size_t)n * g->c * g->ho;
    size_t in = (size_t)n * g->c * g->hi * g->wi;
    int status = check_count(rows * (size_t)g->wo > in ? rows * (size_t)g->wo : in, "resize", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = cnn_cl_kernel(cl, "resample.cl", NULL, "kernel_resize_f32", &k)) < 0)
        return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint v[] = {(cl_uint)rows, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho, (cl_uint)g->wo};
    cl_uint bil = g->bilinear, ac = g->align_corners;
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, y, layer)) < 0) return status;
    for (cl_uint i = 0; i < 5; i++)
        if ((status = CNN_ARG(k, 2 + i, v[i], layer)) < 0) return status;
    if ((status = CNN_ARG(k, 7, g->rh, layer)) < 0 || (status = CNN_ARG(k, 8, g->rw, layer)) < 0 ||
        (status = CNN_ARG(k, 9, bil, layer)) < 0 || (status = CNN_ARG(k, 10, ac, layer)) < 0)
        return status;
    return cnn_op_run_rows(cl, k, (size_t)g->wo, rows, layer);
}
