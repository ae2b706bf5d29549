#include "ops/ops.h"
#include "ops/blas.h"
#include "core/error.h"

/* Depthwise and other groups with few input channels: a GEMM per group
 * would be tiny, the direct kernel reads each input a few times instead. */
static int use_direct(const cnn_conv_geom *g)
{
    return g->groups > 1 && g->ci / g->groups <= 4;
}

/* 1x1, stride 1, no padding: the input already is the column matrix. */
static int is_pointwise(const cnn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pb == 0 &&
           g->pl == 0 && g->pr == 0;
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
    return cnn_cl_run1d(cl, k, (size_t)n * g->co * g->ho * g->wo, layer);
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
