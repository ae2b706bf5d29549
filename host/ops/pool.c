/* Pooling, softmax, layer norm, LRN, concat and channel selection on the
 * device (cl/pool.cl).  Every op is one launch over its output elements
 * (softmax and layer norm: over (n, position); max pooling: over output
 * rows; global max pooling: over planes). */
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

/* The kernel `name` of pool.cl with x, y as arguments 0 and 1 and the uints
 * v[0..nv) after them. */
static int pool_kernel_opts(cnn_cl *cl, const char *opts, const char *name, cl_mem x, cl_mem y,
                            const cl_uint *v, size_t nv, const char *layer, cl_kernel *k)
{
    int status = cnn_cl_kernel(cl, "pool.cl", opts, name, k);
    if (status < 0) return cnn_error_prefix(status, "layer '%s'", layer);
    if ((status = CNN_ARG(*k, 0, x, layer)) < 0 || (status = CNN_ARG(*k, 1, y, layer)) < 0)
        return status;
    for (size_t i = 0; i < nv; i++)
        if ((status = CNN_ARG(*k, (cl_uint)(2 + i), v[i], layer)) < 0) return status;
    return CNN_OK;
}

static int pool_kernel(cnn_cl *cl, const char *name, cl_mem x, cl_mem y, const cl_uint *v, size_t nv,
                       const char *layer, cl_kernel *k)
{
    return pool_kernel_opts(cl, NULL, name, x, y, v, nv, layer, k);
}

/* Max and avg share the window arguments (POOL_GEOM_ARGS in pool.cl). */
static int run_pool(cnn_cl *cl, const char *name, const cnn_pool_geom *g, int n, cl_mem x,
                    cl_mem y, int avg, const char *layer)
{
    size_t total = (size_t)n * g->c * g->ho * g->wo;
    size_t in = (size_t)n * g->c * g->hi * g->wi;
    int status = check_count(total > in ? total : in, avg ? "avgpool" : "maxpool", layer);
    if (status < 0) return status;
    /* Dilation means nothing to PyTorch's avg pool: a caller may leave it 0,
     * which would stack every tap on one pixel. */
    cl_uint dh = g->dh > 0 ? (cl_uint)g->dh : 1u, dw = g->dw > 0 ? (cl_uint)g->dw : 1u;
    /* The max kernel runs one item per output row. */
    size_t items = avg ? total : (size_t)n * g->c * g->ho;
    cl_uint v[] = {(cl_uint)items, (cl_uint)g->hi, (cl_uint)g->wi, (cl_uint)g->ho,
                   (cl_uint)g->wo,  (cl_uint)g->kh, (cl_uint)g->kw, (cl_uint)g->sh,
                   (cl_uint)g->sw,  dh,             dw,             (cl_uint)g->pt,
                   (cl_uint)g->pl,  (cl_uint)g->pb, (cl_uint)g->pr, (cl_uint)!!g->count_include_pad};
    size_t nv = avg ? sizeof v / sizeof v[0] : 13; /* max stops after pl */
    cl_kernel k;
    /* Max pooling with a small undilated window: the window size is built
     * into the program (one per size) and the interior loop unrolled
     * (3x3/2 on 64 x 112 x 112: 0.87 -> 0.46 ms; test/bench/NOTES.md 8). */
    char opts[64];
    if (!avg && dh == 1 && dw == 1 && g->kh <= 4 && g->kw <= 4) {
        /* stride 2 across with windows 2 or 3 wide: eight outputs a step
         * (test/bench/NOTES.md 14) */
        bool s2 = g->sw == 2 && (g->kw == 2 || g->kw == 3);
        snprintf(opts, sizeof opts, "-DPOOL_KH=%d -DPOOL_KW=%d%s", g->kh, g->kw, s2 ? " -DPOOL_S2" : "");
        status = pool_kernel_opts(cl, opts, "kernel_maxpool_fixed_f32", x, y, v, nv, layer, &k);
    } else {
        status = pool_kernel(cl, name, x, y, v, nv, layer, &k);
    }
    if (status < 0) return status;
    return cnn_cl_run1d(cl, k, items, layer);
}

int cnn_op_maxpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem x, cl_mem y, const char *layer)
{
    return run_pool(cl, "kernel_maxpool_f32", g, n, x, y, 0, layer);
}

int cnn_op_avgpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem x, cl_mem y, const char *layer)
{
    return run_pool(cl, "kernel_avgpool_f32", g, n, x, y, 1, layer);
}

int cnn_op_adaptive_avgpool(cnn_cl *cl, int n, int c, int hi, int wi, int ho, int wo, cl_mem x,
                            cl_mem y, const char *layer)
{
    size_t total = (size_t)n * c * ho * wo, in = (size_t)n * c * hi * wi;
    int status = check_count(total > in ? total : in, "adaptive avgpool", layer);
    if (status < 0) return status;
    /* (oy + 1) * hi must not wrap in the kernel either. */
    if ((status = check_count((size_t)(ho + 1) * hi + ho, "adaptive avgpool", layer)) < 0 ||
        (status = check_count((size_t)(wo + 1) * wi + wo, "adaptive avgpool", layer)) < 0)
        return status;
    cl_uint v[] = {(cl_uint)total, (cl_uint)hi, (cl_uint)wi, (cl_uint)ho, (cl_uint)wo};
    cl_kernel k;
    if ((status = pool_kernel(cl, "kernel_adaptive_avgpool_f32", x, y, v, 5, layer, &k)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_op_softmax(cnn_cl *cl, int n, int c, int plane, cl_mem x, cl_mem y, const char *layer)
{
    int status = check_count((size_t)n * c * plane, "softmax", layer);
    if (status < 0) return status;
    size_t items = (size_t)n * plane;
    cl_uint v[] = {(cl_uint)items, (cl_uint)c, (cl_uint)plane};
    cl_kernel k;
    if ((status = pool_kernel(cl, "kernel_softmax_f32", x, y, v, 3, layer, &k)) < 0) return status;
    return cnn_cl_run1d(cl, k, items, layer);
}

int cnn_op_lrn(cnn_cl *cl, int n, int c, int plane, int size, float alpha, float beta, float k,
               cl_mem x, cl_mem y, const char *layer)
{
    size_t total = (size_t)n * c * plane;
    int status = check_count(total, "lrn", layer);
    if (status < 0) return status;
    cl_uint v[] = {(cl_uint)total, (cl_uint)c, (cl_uint)plane, (cl_uint)size};
    cl_kernel kern;
    if ((status = pool_kernel(cl, "kernel_lrn_f32", x, y, v, 4, layer, &kern)) < 0 ||
        (status = CNN_ARG(kern, 6, alpha, layer)) < 0 ||
        (status = CNN_ARG(kern, 7, beta, layer)) < 0 || (status = CNN_ARG(kern, 8, k, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, kern, total, layer);
}

/* One kernel over all of x rather than a buffer copy per image: a single
 * launch whatever the batch size. */
int cnn_op_concat_part(cnn_cl *cl, int n, int cx, int cy, int c0, int plane, cl_mem x, cl_mem y,
                       const char *layer)
{
    size_t total = (size_t)n * cx * plane;
    int status = check_count((size_t)n * cy * plane, "concat", layer);
    if (status < 0) return status;
    cl_uint v[] = {(cl_uint)total, (cl_uint)cx * (cl_uint)plane, (cl_uint)cy * (cl_uint)plane,
                   (cl_uint)c0 * (cl_uint)plane};
    cl_kernel k;
    if ((status = pool_kernel(cl, "kernel_concat_f32", x, y, v, 4, layer, &k)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_op_global_maxpool(cnn_cl *cl, int n, int c, int plane, cl_mem x, cl_mem y, const char *layer)
{
    size_t total = (size_t)n * c;
    int status = check_count(total * (size_t)plane, "global maxpool", layer);
    if (status < 0) return status;
    cl_uint v[] = {(cl_uint)total, (cl_uint)plane};
    cl_kernel k;
    if ((status = pool_kernel(cl, "kernel_global_maxpool_f32", x, y, v, 2, layer, &k)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, layer);
}

int cnn_op_layernorm(cnn_cl *cl, int n, int c, int plane, float eps, cl_mem x, cl_mem w, cl_mem b, cl_mem y,
                     const char *layer)
{
    size_t items = (size_t)n * plane;
    int status = check_count(items * (size_t)c, "layernorm", layer);
    if (status < 0) return status;
    cl_kernel k;
    if ((status = cnn_cl_kernel(cl, "pool.cl", NULL, "kernel_layernorm_f32", &k)) < 0)
        return cnn_error_prefix(status, "layer '%s'", layer);
    cl_uint affine = w != NULL, ui = (cl_uint)items, uc = (cl_uint)c, up = (cl_uint)plane;
    /* Without affine the kernel reads neither w nor b. */
    cl_mem wb = w ? w : x, bb = b ? b : x;
    if ((status = CNN_ARG(k, 0, x, layer)) < 0 || (status = CNN_ARG(k, 1, wb, layer)) < 0 ||
        (status = CNN_ARG(k, 2, bb, layer)) < 0 || (status = CNN_ARG(k, 3, y, layer)) < 0 ||
        (status = CNN_ARG(k, 4, ui, layer)) < 0 || (status = CNN_ARG(k, 5, uc, layer)) < 0 ||
        (status = CNN_ARG(k, 6, up, layer)) < 0 || (status = CNN_ARG(k, 7, eps, layer)) < 0 ||
        (status = CNN_ARG(k, 8, affine, layer)) < 0)
        return status;
    return cnn_cl_run1d(cl, k, items, layer);
}

int cnn_chan_map_check(const cnn_chan_map *m, int n, int plane, const char *layer)
{
    size_t big = (size_t)n * (m->cx > m->cy ? m->cx : m->cy) * (size_t)plane;
    int status = check_count(big, "channel selection", layer);
    if (status < 0) return status;
    /* the last channel read must exist */
    long last = m->start + (long)((m->cy - 1) / m->groups) * m->step + (long)(m->groups - 1) * m->k;
    if (m->cy < 1 || m->groups < 1 || m->step < 1 || m->start < 0 || m->k < 0 || m->cy % m->groups || last >= m->cx)
        return cnn_error_set(CNN_ERR_INPUT, "channel selection layer '%s': map start %d step %d groups %d k %d "
                             "reads past %d channels", layer, m->start, m->step, m->groups, m->k, m->cx);
    return CNN_OK;
}

int cnn_op_channel_gather(cnn_cl *cl, const cnn_chan_map *m, int n, int plane, cl_mem x, cl_mem y,
                          const char *layer)
{
    int status = cnn_chan_map_check(m, n, plane, layer);
    if (status < 0) return status;
    size_t rows = (size_t)n * m->cy;
    cl_uint v[] = {(cl_uint)rows,  (cl_uint)plane,  (cl_uint)m->cx, (cl_uint)m->cy,
                   (cl_uint)m->start, (cl_uint)m->step, (cl_uint)m->groups, (cl_uint)m->k};
    cl_kernel k;
    if ((status = pool_kernel(cl, "kernel_channel_gather_f32", x, y, v, 8, layer, &k)) < 0) return status;
    return cnn_op_run_rows(cl, k, (size_t)plane, rows, layer);
}
