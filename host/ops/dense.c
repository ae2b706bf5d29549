#include "ops/ops.h"
#include "ops/blas.h"
#include "core/error.h"

/* Batch 1 is a matrix-vector product bound by reading W once; CLBlast's
 * Sgemv reaches ~2 GB/s on PoCL, so it gets a kernel of its own (one
 * work-item per row: VGG16 fc6, 411 MB, 36 ms against 237 ms for a
 * work-group per row). */
static int run_gemv(cnn_cl *cl, int in, int out, cl_mem x, cl_mem w, cl_mem y, const char *layer)
{
    cl_kernel k;
    bool cpu = (cl->type & CL_DEVICE_TYPE_CPU) != 0; /* GPUs: a work-group per row (coalesced reads) */
    int status = cpu ? cnn_cl_kernel(cl, "dense.cl", NULL, "kernel_gemv_rows_f32", &k)
                     : cnn_cl_kernel(cl, "dense.cl", "-DGEMV_WG=64", "kernel_gemv_f32", &k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint uin = (cl_uint)in, uout = (cl_uint)out;
    if ((status = CNN_ARG(k, 0, w, layer)) < 0 || (status = CNN_ARG(k, 1, x, layer)) < 0 ||
        (status = CNN_ARG(k, 2, y, layer)) < 0 || (status = CNN_ARG(k, 3, uin, layer)) < 0 ||
        (status = CNN_ARG(k, 4, uout, layer)) < 0)
        return status;
    if (cpu) return cnn_cl_run1d(cl, k, (size_t)out, layer);
    size_t global = (size_t)out * 64, local = 64;
    return cnn_cl_runnd(cl, k, 1, &global, &local, layer);
}

int cnn_op_linear(cnn_cl *cl, int n, int in, int out, cl_mem x, cl_mem w, cl_mem bias, cnn_act act,
                  float slope, cl_mem y, const char *layer)
{
    int status;
    if (n == 1)
        status = run_gemv(cl, in, out, x, w, y, layer);
    else
        status = cnn_blas_sgemm(cl, false, true, (size_t)n, (size_t)out, (size_t)in, x, 0, (size_t)in, w, 0,
                                (size_t)in, y, 0, (size_t)out, layer);
    if (status < 0) return status;
    if (bias) return cnn_op_affine_act(cl, y, y, NULL, bias, (size_t)n * out, 1, out, act, slope, layer);
    if (act != CNN_ACT_NONE) return cnn_op_act(cl, act, slope, y, y, (size_t)n * out, layer);
    return CNN_OK;
}
