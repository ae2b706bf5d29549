/* Input preprocessing on the device (cl/preprocess.cl): Pillow-exact
 * BILINEAR resize, crop, gray<->rgb, normalisation.
 *
 * The resize reproduces Pillow's ImagingResample for 8-bit images (Pillow
 * >= 7 with reducing_gap=None, i.e. what torchvision's Resize calls): the
 * coefficients are computed here in double with the same expressions in the
 * same order as Pillow's precompute_coeffs(), then converted to 22-bit fixed
 * point like normalize_coeffs_8bpc(); the device only does integer sums, so
 * the result is bit-identical to Pillow.
 *
 * Scratch layout (tmp): int32 table of the horizontal pass (rw rows), int32
 * table of the vertical pass (rh rows), then the uint8 horizontal result
 * [sh, rw, sc].  A pass Pillow skips (size unchanged on that axis) has no
 * table; the vertical pass is fused into the final kernel, which only
 * computes the cropped pixels. */
#include "ops/ops.h"
#include "core/error.h"
#include "core/util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

#define PRECISION_BITS 22 /* Pillow: 32 - 8 - 2 */

typedef struct pre_plan {
    int need_h, need_v;     /* Pillow resizes an axis only when its size changes */
    int ksize_h, ksize_v;   /* coefficient slots per output sample */
    size_t vtab_off;        /* in int32 units; the horizontal table is at 0 */
    size_t tab_ints;        /* both tables */
    size_t mid_off;         /* bytes: the horizontal result */
    size_t bytes;           /* scratch total */
} pre_plan;

/* Pillow's ksize: (int)ceil(support) * 2 + 1 with support = 1.0 * filterscale
 * for the bilinear (triangle) filter. */
static int axis_ksize(int in, int out)
{
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(1.0 * filterscale) * 2 + 1;
}

static void make_plan(int sh, int sw, int sc, int rh, int rw, pre_plan *p)
{
    p->need_h = rw != sw;
    p->need_v = rh != sh;
    p->ksize_h = p->need_h ? axis_ksize(sw, rw) : 0;
    p->ksize_v = p->need_v ? axis_ksize(sh, rh) : 0;
    p->vtab_off = p->need_h ? (size_t)rw * (size_t)(p->ksize_h + 2) : 0;
    p->tab_ints = p->vtab_off + (p->need_v ? (size_t)rh * (size_t)(p->ksize_v + 2) : 0);
    p->mid_off = p->tab_ints * sizeof(int32_t);
    p->bytes = p->mid_off + (p->need_h ? (size_t)sh * rw * sc : 0);
}

size_t cnn_op_preprocess_scratch(int sh, int sw, int sc, int rh, int rw)
{
    if (sh < 1 || sw < 1 || rh < 1 || rw < 1) return 0; /* cnn_op_preprocess refuses these */
    pre_plan p;
    make_plan(sh, sw, sc, rh, rw, &p);
    return p.bytes;
}

static double triangle(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* One table row per output sample: [xmin, count, k_0 .. k_{ksize-1}].  The
 * expressions and their order follow Pillow's precompute_coeffs() so the
 * doubles, and thus the rounded integers, are the same bit for bit. */
static int axis_table(int in, int out, int ksize, int32_t *tab)
{
    double *w = cnn_malloc((size_t)ksize * sizeof *w);
    if (!w) return CNN_ERR_NOMEM;
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        int count = xmax - xmin;
        CNN_ASSERT(count >= 1 && count <= ksize);
        double ww = 0.0;
        for (int x = 0; x < count; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *row = tab + (size_t)xx * (size_t)(ksize + 2);
        row[0] = xmin;
        row[1] = count;
        for (int x = 0; x < ksize; x++) {
            double k = x < count && ww != 0.0 ? w[x] / ww : 0.0;
            /* The weights are never negative: Pillow's round half up. */
            row[2 + x] = (int32_t)(0.5 + k * (1 << PRECISION_BITS));
        }
    }
    free(w);
    return CNN_OK;
}

static int set_uints(cl_kernel k, cl_uint first, const cl_uint *v, size_t n, const char *what)
{
    int status = CNN_OK;
    for (size_t i = 0; i < n && status == CNN_OK; i++)
        status = CNN_ARG(k, first + (cl_uint)i, v[i], what);
    return status;
}

static int check_args(int sh, int sw, int sc, int rh, int rw, int top, int left, int c, int oh,
                      int ow, const char *what)
{
    if ((sc != 1 && sc != 3) || (c != 1 && c != 3))
        return cnn_error_set(CNN_ERR_INPUT, "preprocess %s: %d -> %d channels (1 or 3 expected)",
                             what, sc, c);
    if (sh < 1 || sw < 1 || rh < 1 || rw < 1 || oh < 1 || ow < 1)
        return cnn_error_set(CNN_ERR_INPUT, "preprocess %s: empty size (image %dx%d, resize "
                             "%dx%d, crop %dx%d)", what, sw, sh, rw, rh, ow, oh);
    if (top < 0 || left < 0 || top > rh - oh || left > rw - ow)
        return cnn_error_set(CNN_ERR_INPUT, "preprocess %s: crop %dx%d at (%d, %d) is outside the "
                             "resized %dx%d image", what, ow, oh, left, top, rw, rh);
    return CNN_OK;
}

/* The kernels index bytes and floats with uint. */
static int check_sizes(int sh, int sw, int sc, int c, int oh, int ow, const pre_plan *p,
                       size_t y_offset, const char *what)
{
    size_t src = (size_t)sh * sw * sc, out = (size_t)c * oh * ow;
    if (src > UINT_MAX || p->bytes > UINT_MAX || y_offset > UINT_MAX || out > UINT_MAX - y_offset)
        return cnn_error_set(CNN_ERR_INPUT, "preprocess %s: sizes beyond 2^32 elements", what);
    return CNN_OK;
}

int cnn_op_preprocess(cnn_cl *cl, cl_mem src, int sh, int sw, int sc, int rh, int rw, int top,
                      int left, int c, int oh, int ow, float scale, const float *mean,
                      const float *std, cl_mem tmp, cl_mem y, size_t y_offset, const char *what)
{
    char label[256];
    snprintf(label, sizeof label, "preprocess %s", what);
    int status = check_args(sh, sw, sc, rh, rw, top, left, c, oh, ow, what);
    if (status < 0) return status;
    pre_plan p;
    make_plan(sh, sw, sc, rh, rw, &p);
    if ((status = check_sizes(sh, sw, sc, c, oh, ow, &p, y_offset, what)) < 0) return status;
    if (p.bytes) {
        size_t have = 0;
        CNN_ASSERT(tmp != NULL);
        CNN_CL_TRY(clGetMemObjectInfo(tmp, CL_MEM_SIZE, sizeof have, &have, NULL), label, done);
        CNN_ASSERT(have >= p.bytes);
    }

    /* Tables first; blocking so the host copy can go at once (a few KiB). */
    if (p.tab_ints) {
        int32_t *tab = cnn_malloc(p.tab_ints * sizeof *tab);
        if (!tab) return CNN_ERR_NOMEM;
        status = CNN_OK;
        if (p.need_h) status = axis_table(sw, rw, p.ksize_h, tab);
        if (status == CNN_OK && p.need_v) status = axis_table(sh, rh, p.ksize_v, tab + p.vtab_off);
        if (status == CNN_OK) status = cnn_cl_write(cl, tmp, 0, p.tab_ints * sizeof *tab, tab, label);
        free(tab);
        if (status < 0) return status;
    }

    cl_kernel k;
    if (p.need_h) {
        if ((status = cnn_cl_kernel(cl, "preprocess.cl", NULL, "kernel_resample_h_u8", &k)) < 0)
            return cnn_error_prefix(status, "%s", label);
        size_t total = (size_t)sh * rw * sc;
        cl_uint v[] = {(cl_uint)total, (cl_uint)sw, (cl_uint)rw, (cl_uint)sc, 0u,
                       (cl_uint)p.ksize_h, (cl_uint)p.mid_off};
        if ((status = CNN_ARG(k, 0, src, label)) < 0 || (status = CNN_ARG(k, 1, tmp, label)) < 0 ||
            (status = set_uints(k, 2, v, sizeof v / sizeof v[0], label)) < 0 ||
            (status = cnn_cl_run1d(cl, k, total, label)) < 0)
            return status;
    }

    if ((status = cnn_cl_kernel(cl, "preprocess.cl", NULL, "kernel_preprocess_f32", &k)) < 0)
        return cnn_error_prefix(status, "%s", label);
    /* Without a horizontal pass the source is the image (rw == sw then);
     * without a vertical pass the table argument is never read. */
    cl_mem img = p.need_h ? tmp : src;
    cl_mem tabs = p.need_v ? tmp : src;
    cl_uint img_off = p.need_h ? (cl_uint)p.mid_off : 0u;
    cl_uint v[] = {(cl_uint)p.vtab_off, (cl_uint)p.ksize_v, (cl_uint)p.need_v, (cl_uint)rw,
                   (cl_uint)sc, (cl_uint)top, (cl_uint)left, (cl_uint)c, (cl_uint)oh,
                   (cl_uint)ow};
    cl_float4 m, s;
    for (int i = 0; i < 4; i++) {
        int j = i < c ? i : 0;
        m.s[i] = mean[j];
        s.s[i] = std[j];
    }
    cl_uint yoff = (cl_uint)y_offset;
    if ((status = CNN_ARG(k, 0, img, label)) < 0 || (status = CNN_ARG(k, 1, img_off, label)) < 0 ||
        (status = CNN_ARG(k, 2, tabs, label)) < 0 ||
        (status = set_uints(k, 3, v, sizeof v / sizeof v[0], label)) < 0 ||
        (status = CNN_ARG(k, 13, scale, label)) < 0 || (status = CNN_ARG(k, 14, m, label)) < 0 ||
        (status = CNN_ARG(k, 15, s, label)) < 0 || (status = CNN_ARG(k, 16, y, label)) < 0 ||
        (status = CNN_ARG(k, 17, yoff, label)) < 0)
        return status;
    status = cnn_cl_run1d(cl, k, (size_t)c * oh * ow, label);
done:
    return status;
}
