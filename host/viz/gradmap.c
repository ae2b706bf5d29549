/* Attribution-map ops on the device (cl/gradmap.cl); contract in
 * viz/gradmap.h.
 *
 * All kernels live in one program, built with one option string per device
 * (-cl-fp32-correctly-rounded-divide-sqrt where the device offers it: the
 * Grad-CAM mean, the Grad-CAM++ alpha and the path alphas are then correctly
 * rounded divisions), hence one compile, cached on disk afterwards.
 *
 * Every op validates its arguments (sizes > 0, offsets and extents within
 * the buffers, read by CL_MEM_SIZE, no partial overlap of an output with an
 * input) and reports CNN_ERR_INPUT with `what` first; every OpenCL call is
 * checked.  Nothing blocks: every op enqueues on cl->queue. */
#include "viz/gradmap.h"
#include "core/error.h"
#include "core/util.h"
#include "viz/vizops.h"

#include <math.h>

/* Work-group limit of the reducing kernel (GM_WG in cl/gradmap.cl). */
#define GM_WG 256
/* Work-groups per launch of the per-map kernel: every device takes 65535
 * groups in dimension 0; more maps are launched in chunks. */
#define GM_MAX_GROUPS 65535u

/* ---- helpers ---- */

static int gm_kernel(cnn_cl *cl, const char *name, const char *what, cl_kernel *k)
{
    cl_device_fp_config fp = 0;
    cl_int err = clGetDeviceInfo(cl->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clGetDeviceInfo(CL_DEVICE_SINGLE_FP_CONFIG) failed: %s (%s)",
                             cnn_cl_error_name(err), what);
    const char *opts = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) ? "-cl-fp32-correctly-rounded-divide-sqrt" : NULL;
    int status = cnn_cl_kernel(cl, "gradmap.cl", opts, name, k);
    if (status < 0) return cnn_error_prefix(status, "%s", what);
    return CNN_OK;
}

/* Kernel arguments in order. */
typedef struct gm_arg {
    size_t size;
    const void *value;
} gm_arg;
#define GA(x) {sizeof(x), &(x)}

static int set_args(cl_kernel k, const gm_arg *a, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int status = cnn_cl_set_arg(k, (cl_uint)i, a[i].size, a[i].value, what);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* a * b * c, or an input error naming `name` when it overflows size_t. */
static int count3(size_t a, size_t b, size_t c, size_t *out, const char *name, const char *what)
{
    size_t ab;
    if (!cnn_mul_size(a, b, &ab) || !cnn_mul_size(ab, c, out))
        return cnn_error_set(CNN_ERR_INPUT, "%s: the %s size overflows (%zu x %zu x %zu)", what, name, a,
                             b, c);
    return CNN_OK;
}

/* `buf` holds `count` elements of `elem` bytes from element `off` (a kernel
 * would otherwise read or write past it, which no device reports). */
static int check_span(cl_mem buf, size_t off, size_t count, size_t elem, const char *name,
                      const char *what)
{
    int status = CNN_OK;
    size_t have = 0, end = 0;
    if (!buf) return cnn_error_set(CNN_ERR_INPUT, "%s: no %s buffer", what, name);
    if (!cnn_add_size(off, count, &end) || !cnn_mul_size(end, elem, &end))
        return cnn_error_set(CNN_ERR_INPUT, "%s: %zu %s values at offset %zu overflow", what, count, name,
                             off);
    CNN_CL_TRY(clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof have, &have, NULL), what, done);
    if (have < end)
        status = cnn_error_set(CNN_ERR_INPUT,
                               "%s: the %s buffer holds %zu bytes, %zu needed (%zu values at offset %zu)",
                               what, name, have, end, count, off);
done:
    return status;
}

/* An output range that overlaps an input range of the same buffer is a
 * race between work-items, except where `same_ok` and the ranges coincide
 * (element-wise ops). Ranges in elements (spans already checked). */
static int check_overlap(cl_mem out, size_t out_off, size_t out_n, const char *out_name, cl_mem in,
                         size_t in_off, size_t in_n, const char *in_name, bool same_ok, const char *what)
{
    if (out != in) return CNN_OK;
    if (same_ok && out_off == in_off && out_n == in_n) return CNN_OK;
    if (out_off < in_off + in_n && in_off < out_off + out_n)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the %s range [%zu, %zu) overlaps the %s range [%zu, %zu)",
                             what, out_name, out_off, out_off + out_n, in_name, in_off, in_off + in_n);
    return CNN_OK;
}

static int check_pos(int v, const char *name, const char *what)
{
    if (v <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: %s is %d (must be > 0)", what, name, v);
    return CNN_OK;
}

/* Largest power of two <= min(GM_WG, device and kernel limits) that is not
 * above the next power of two >= want. */
static int reduce_local_size(cnn_cl *cl, cl_kernel k, size_t want, const char *what, size_t *out)
{
    int status = CNN_OK;
    size_t kwg = 0;
    CNN_CL_TRY(clGetKernelWorkGroupInfo(k, cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL),
               what, done);
    size_t l = GM_WG;
    if (cl->max_work_group && cl->max_work_group < l) l = cl->max_work_group;
    if (kwg && kwg < l) l = kwg;
    size_t p = 1;
    while (p * 2 <= l) p *= 2;
    while (p > 1 && p / 2 >= want) p /= 2;
    *out = p;
done:
    return status;
}

/* ---- channel reductions ---- */

/* Shared by chan_maxabs and chan_dot: x may be NULL (maxabs). */
static int chan_op(cnn_cl *cl, const char *kname, cl_mem g, size_t g_off, cl_mem x, size_t x_off, int n,
                   int c, int plane, cl_mem out, size_t out_off, const char *what)
{
    int status;
    size_t n_in, n_px;
    if ((status = check_pos(n, "the batch n", what)) < 0 || (status = check_pos(c, "the channel count c", what)) < 0 ||
        (status = check_pos(plane, "the plane size", what)) < 0 ||
        (status = count3((size_t)n, (size_t)c, (size_t)plane, &n_in, "tensor", what)) < 0 ||
        (status = count3((size_t)n, 1, (size_t)plane, &n_px, "map", what)) < 0 ||
        (status = check_span(g, g_off, n_in, sizeof(float), "gradient", what)) < 0 ||
        (x && (status = check_span(x, x_off, n_in, sizeof(float), "input", what)) < 0) ||
        (status = check_span(out, out_off, n_px, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, n_px, "output", g, g_off, n_in, "gradient", false, what)) < 0 ||
        (x && (status = check_overlap(out, out_off, n_px, "output", x, x_off, n_in, "input", false, what)) < 0))
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, kname, what, &k)) < 0) return status;
    cl_ulong ug_off = g_off, ux_off = x_off, uout_off = out_off, un_px = n_px;
    cl_uint uc = (cl_uint)c, uplane = (cl_uint)plane;
    if (x) {
        gm_arg a[] = {GA(g), GA(ug_off), GA(x), GA(ux_off), GA(uc), GA(uplane), GA(un_px), GA(out), GA(uout_off)};
        status = set_args(k, a, sizeof a / sizeof a[0], what);
    } else {
        gm_arg a[] = {GA(g), GA(ug_off), GA(uc), GA(uplane), GA(un_px), GA(out), GA(uout_off)};
        status = set_args(k, a, sizeof a / sizeof a[0], what);
    }
    if (status < 0) return status;
    return cnn_cl_run1d(cl, k, n_px, what);
}

int cnn_gm_chan_maxabs(cnn_cl *cl, cl_mem g, size_t g_off, int n, int c, int plane, cl_mem out, size_t out_off,
                       const char *what)
{
    return chan_op(cl, "kernel_gm_chan_maxabs", g, g_off, NULL, 0, n, c, plane, out, out_off, what);
}

int cnn_gm_chan_dot(cnn_cl *cl, cl_mem g, size_t g_off, cl_mem x, size_t x_off, int n, int c, int plane,
                    cl_mem out, size_t out_off, const char *what)
{
    if (!x) return cnn_error_set(CNN_ERR_INPUT, "%s: no input buffer", what);
    return chan_op(cl, "kernel_gm_chan_dot", g, g_off, x, x_off, n, c, plane, out, out_off, what);
}

/* ---- class activation maps ---- */

int cnn_gm_cam(cnn_cl *cl, cnn_cam_kind kind, cl_mem a, size_t a_off, cl_mem g, size_t g_off, int n, int c,
               int plane, cl_mem weights, cl_mem out, size_t out_off, const char *what)
{
    int status;
    if ((int)kind < CNN_CAM_GRADCAM || kind > CNN_CAM_WEIGHTED)
        return cnn_error_set(CNN_ERR_INPUT,
                             "%s: CAM kind %d (0 gradcam, 1 gradcam++, 2 layercam, 3 xgradcam, 4 hirescam, 5 weighted)",
                             what, (int)kind);
    bool use_g = kind != CNN_CAM_WEIGHTED;
    size_t n_in, n_px, n_w;
    if ((status = check_pos(n, "the batch n", what)) < 0 || (status = check_pos(c, "the channel count c", what)) < 0 ||
        (status = check_pos(plane, "the plane size", what)) < 0 ||
        (status = count3((size_t)n, (size_t)c, (size_t)plane, &n_in, "tensor", what)) < 0 ||
        (status = count3((size_t)n, 1, (size_t)plane, &n_px, "map", what)) < 0 ||
        (status = count3((size_t)n, (size_t)c, 1, &n_w, "weights", what)) < 0 ||
        (status = check_span(a, a_off, n_in, sizeof(float), "activation", what)) < 0 ||
        (use_g && (status = check_span(g, g_off, n_in, sizeof(float), "gradient", what)) < 0) ||
        (status = check_span(out, out_off, n_px, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, n_px, "output", a, a_off, n_in, "activation", false, what)) < 0 ||
        (use_g &&
         (status = check_overlap(out, out_off, n_px, "output", g, g_off, n_in, "gradient", false, what)) < 0))
        return status;
    if (n_w > UINT32_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d x %d channels (at most %u maps)", what, n, c, UINT32_MAX);
    bool use_w = kind != CNN_CAM_LAYERCAM && kind != CNN_CAM_HIRESCAM;
    if (use_w) {
        if ((status = check_span(weights, 0, n_w, sizeof(float), "weights", what)) < 0 ||
            (status = check_overlap(weights, 0, n_w, "weights", a, a_off, n_in, "activation", false, what)) < 0 ||
            (use_g &&
             (status = check_overlap(weights, 0, n_w, "weights", g, g_off, n_in, "gradient", false, what)) < 0) ||
            (status = check_overlap(weights, 0, n_w, "weights", out, out_off, n_px, "output", false, what)) < 0)
            return status;
    }
    cl_ulong ua_off = a_off, ug_off = g_off, uout_off = out_off, un_px = n_px;
    cl_uint uc = (cl_uint)c, uplane = (cl_uint)plane, ukind = (cl_uint)kind;
    if (use_w && use_g) {
        cl_kernel kw;
        size_t wg;
        if ((status = gm_kernel(cl, "kernel_gm_cam_weights", what, &kw)) < 0 ||
            (status = reduce_local_size(cl, kw, (size_t)plane, what, &wg)) < 0)
            return status;
        for (size_t m0 = 0; m0 < n_w; m0 += GM_MAX_GROUPS) {
            cl_uint map0 = (cl_uint)m0;
            size_t cnt = n_w - m0 < GM_MAX_GROUPS ? n_w - m0 : GM_MAX_GROUPS;
            gm_arg a1[] = {GA(a), GA(ua_off), GA(g), GA(ug_off), GA(uplane), GA(ukind), GA(map0), GA(weights)};
            size_t global = cnt * wg;
            if ((status = set_args(kw, a1, sizeof a1 / sizeof a1[0], what)) < 0 ||
                (status = cnn_cl_runnd(cl, kw, 1, &global, &wg, what)) < 0)
                return status;
        }
    }
    cl_kernel kc;
    if ((status = gm_kernel(cl, "kernel_gm_cam_combine", what, &kc)) < 0) return status;
    /* LayerCAM and HiResCAM read no weights, the weighted kind no gradient:
     * those arguments are NULL. */
    cl_mem wbuf = use_w ? weights : NULL, gbuf = use_g ? g : NULL;
    gm_arg a2[] = {GA(a), GA(ua_off), GA(gbuf), GA(ug_off), GA(wbuf), GA(uc), GA(uplane), GA(un_px), GA(ukind),
                   GA(out), GA(uout_off)};
    if ((status = set_args(kc, a2, sizeof a2 / sizeof a2[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, kc, n_px, what);
}

/* ---- resize ---- */

int cnn_gm_resize(cnn_cl *cl, cl_mem in, size_t in_off, int n, int h, int w, cl_mem out, size_t out_off, int H,
                  int W, const char *what)
{
    return cnn_gm_resize_ex(cl, in, in_off, n, h, w, out, out_off, H, W, false, what);
}

int cnn_gm_resize_ex(cnn_cl *cl, cl_mem in, size_t in_off, int n, int h, int w, cl_mem out, size_t out_off, int H,
                     int W, bool corners, const char *what)
{
    int status;
    size_t n_in, n_out;
    if ((status = check_pos(n, "the batch n", what)) < 0 || (status = check_pos(h, "the input height", what)) < 0 ||
        (status = check_pos(w, "the input width", what)) < 0 ||
        (status = check_pos(H, "the output height", what)) < 0 ||
        (status = check_pos(W, "the output width", what)) < 0 ||
        (status = count3((size_t)n, (size_t)h, (size_t)w, &n_in, "input", what)) < 0 ||
        (status = count3((size_t)n, (size_t)H, (size_t)W, &n_out, "output", what)) < 0 ||
        (status = check_span(in, in_off, n_in, sizeof(float), "input", what)) < 0 ||
        (status = check_span(out, out_off, n_out, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, n_out, "output", in, in_off, n_in, "input", false, what)) < 0)
        return status;
    /* PyTorch's scale: (float)in / out, one correctly rounded division
     * here, whatever the device's division. */
    float sy = (float)h / (float)H, sx = (float)w / (float)W;
    if (corners) {
        sy = H > 1 ? (float)(h - 1) / (float)(H - 1) : 0.0f;
        sx = W > 1 ? (float)(w - 1) / (float)(W - 1) : 0.0f;
    }
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_resize", what, &k)) < 0) return status;
    cl_ulong uin_off = in_off, uout_off = out_off, un = n_out;
    cl_uint uh = (cl_uint)h, uw = (cl_uint)w, uH = (cl_uint)H, uW = (cl_uint)W, ucorners = corners ? 1u : 0u;
    gm_arg a[] = {GA(in),       GA(uin_off), GA(uh), GA(uw), GA(sy), GA(sx), GA(out),
                  GA(uout_off), GA(uH),      GA(uW), GA(un), GA(ucorners)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n_out, what);
}

/* ---- element-wise ---- */

static int check_len(size_t n, const char *what)
{
    if (n == 0) return cnn_error_set(CNN_ERR_INPUT, "%s: 0 values (must be > 0)", what);
    return CNN_OK;
}

static int check_finite(float v, const char *name, const char *what)
{
    if (!isfinite(v)) return cnn_error_set(CNN_ERR_INPUT, "%s: %s is %g (must be finite)", what, name, (double)v);
    return CNN_OK;
}

int cnn_gm_mul(cnn_cl *cl, cl_mem a, size_t a_off, cl_mem b, size_t b_off, cl_mem out, size_t out_off, size_t n,
               const char *what)
{
    int status;
    if ((status = check_len(n, what)) < 0 || (status = check_span(a, a_off, n, sizeof(float), "first", what)) < 0 ||
        (status = check_span(b, b_off, n, sizeof(float), "second", what)) < 0 ||
        (status = check_span(out, out_off, n, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, n, "output", a, a_off, n, "first", true, what)) < 0 ||
        (status = check_overlap(out, out_off, n, "output", b, b_off, n, "second", true, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_mul", what, &k)) < 0) return status;
    cl_ulong ua = a_off, ub = b_off, uo = out_off, un = n;
    gm_arg args[] = {GA(a), GA(ua), GA(b), GA(ub), GA(out), GA(uo), GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, what);
}

int cnn_gm_axpby(cnn_cl *cl, cl_mem src, size_t src_off, float scale, cl_mem dst, size_t dst_off, float keep,
                 size_t n, const char *what)
{
    int status;
    if ((status = check_len(n, what)) < 0 || (status = check_finite(scale, "the scale", what)) < 0 ||
        (status = check_finite(keep, "the keep factor", what)) < 0 ||
        (status = check_span(src, src_off, n, sizeof(float), "source", what)) < 0 ||
        (status = check_span(dst, dst_off, n, sizeof(float), "destination", what)) < 0 ||
        (status = check_overlap(dst, dst_off, n, "destination", src, src_off, n, "source", true, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_axpby", what, &k)) < 0) return status;
    cl_ulong us = src_off, ud = dst_off, un = n;
    gm_arg args[] = {GA(src), GA(us), GA(scale), GA(dst), GA(ud), GA(keep), GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, what);
}

/* ---- SmoothGrad and integrated-gradients inputs ---- */

/* copies of len floats from out_off, and the flat size; len must fit the
 * 32-bit element counter of the noise generator. */
static int check_copies(size_t len, int copies, int k0, cl_mem out, size_t out_off, size_t *total,
                        const char *what)
{
    int status;
    if ((status = check_len(len, what)) < 0 || (status = check_pos(copies, "the copy count", what)) < 0)
        return status;
    if (k0 < 0) return cnn_error_set(CNN_ERR_INPUT, "%s: first copy index %d (must be >= 0)", what, k0);
    if (len > UINT32_MAX)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %zu values per copy (at most %u)", what, len, UINT32_MAX);
    if ((status = count3(len, (size_t)copies, 1, total, "output", what)) < 0) return status;
    return check_span(out, out_off, *total, sizeof(float), "output", what);
}

/* Two sources of len floats each (a, b) read by every copy of an output
 * of `total` floats: both within their buffers, neither overlapping it. */
static int check_sources(cl_mem a, size_t a_off, const char *a_name, cl_mem b, size_t b_off, const char *b_name,
                         size_t len, cl_mem out, size_t out_off, size_t total, const char *what)
{
    int status;
    if ((status = check_span(a, a_off, len, sizeof(float), a_name, what)) < 0 ||
        (status = check_span(b, b_off, len, sizeof(float), b_name, what)) < 0 ||
        (status = check_overlap(out, out_off, total, "output", a, a_off, len, a_name, false, what)) < 0 ||
        (status = check_overlap(out, out_off, total, "output", b, b_off, len, b_name, false, what)) < 0)
        return status;
    return CNN_OK;
}

int cnn_gm_noise(cnn_cl *cl, cl_mem x, size_t x_off, size_t len, int copies, int k0, float sigma, uint32_t seed,
                 cl_mem out, size_t out_off, const char *what)
{
    int status;
    size_t total = 0;
    if (!(sigma >= 0.0f) || !isfinite(sigma))
        return cnn_error_set(CNN_ERR_INPUT, "%s: noise sigma %g (must be finite and >= 0)", what, (double)sigma);
    if ((status = check_copies(len, copies, k0, out, out_off, &total, what)) < 0 ||
        (status = check_span(x, x_off, len, sizeof(float), "input", what)) < 0 ||
        (status = check_overlap(out, out_off, total, "output", x, x_off, len, "input", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_noise", what, &k)) < 0) return status;
    cl_ulong ux = x_off, ulen = len, uo = out_off, un = total;
    cl_uint uk0 = (cl_uint)k0, useed = seed;
    gm_arg args[] = {GA(x), GA(ux), GA(ulen), GA(uk0), GA(sigma), GA(useed), GA(out), GA(uo), GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, what);
}

int cnn_gm_path(cnn_cl *cl, cl_mem x, size_t x_off, cl_mem base, size_t base_off, size_t len, int copies, int k0,
                int steps, cl_mem out, size_t out_off, const char *what)
{
    int status;
    size_t total = 0;
    if ((status = check_pos(steps, "the step count", what)) < 0) return status;
    if (steps > (1 << 24))
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d steps (at most 2^24, exact in float)", what, steps);
    if ((status = check_copies(len, copies, k0, out, out_off, &total, what)) < 0) return status;
    if ((long long)k0 + copies > steps)
        return cnn_error_set(CNN_ERR_INPUT, "%s: copies [%d, %lld) past the %d steps", what, k0,
                             (long long)k0 + copies, steps);
    if ((status = check_sources(x, x_off, "input", base, base_off, "baseline", len, out, out_off, total, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_path", what, &k)) < 0) return status;
    cl_ulong ux = x_off, ub = base_off, ulen = len, uo = out_off, un = total;
    cl_uint uk0 = (cl_uint)k0, usteps = (cl_uint)steps;
    gm_arg args[] = {GA(x), GA(ux), GA(base), GA(ub), GA(ulen), GA(uk0), GA(usteps), GA(out), GA(uo), GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, what);
}

/* ---- overlay ---- */

int cnn_gm_overlay(cnn_cl *cl, cl_mem img, int c_img, cl_mem heat, size_t n_px, float alpha, cl_mem out,
                   const char *what)
{
    int status;
    if (c_img != 1 && c_img != 3)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d image components (1 or 3)", what, c_img);
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return cnn_error_set(CNN_ERR_INPUT, "%s: overlay alpha %g (must be in [0, 1])", what, (double)alpha);
    size_t n_rgb;
    if ((status = check_len(n_px, what)) < 0 || (status = count3(n_px, 3, 1, &n_rgb, "overlay", what)) < 0 ||
        (status = check_span(img, 0, c_img == 3 ? n_rgb : n_px, 1, "image", what)) < 0 ||
        (status = check_span(heat, 0, n_rgb, 1, "heatmap", what)) < 0 ||
        (status = check_span(out, 0, n_rgb, 1, "output", what)) < 0)
        return status;
    /* out may be img (RGB) or heat: each work-item reads its pixel before
     * writing it.  A gray img in out's buffer would be overwritten by the
     * pixels before it. */
    if (out == img && c_img == 1)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the output may not be the gray image's buffer", what);
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_overlay", what, &k)) < 0) return status;
    cl_uint uc = (cl_uint)c_img;
    cl_ulong un = n_px;
    gm_arg args[] = {GA(img), GA(uc), GA(heat), GA(un), GA(alpha), GA(out)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n_px, what);
}

/* ---- block sums ---- */

int cnn_gm_sum_blocks(cnn_cl *cl, cl_mem src, size_t src_off, int n_sum, size_t len, float scale, cl_mem out,
                      size_t out_off, bool accumulate, const char *what)
{
    int status;
    size_t total;
    if ((status = check_pos(n_sum, "the block count", what)) < 0 || (status = check_len(len, what)) < 0 ||
        (status = check_finite(scale, "the scale", what)) < 0 ||
        (status = count3(len, (size_t)n_sum, 1, &total, "source", what)) < 0 ||
        (status = check_span(src, src_off, total, sizeof(float), "source", what)) < 0 ||
        (status = check_span(out, out_off, len, sizeof(float), "output", what)) < 0)
        return status;
    /* out may be exactly block 0 (item i reads src[i] before writing it and
     * no other item reads it); any other overlap is a race. */
    if (!(out == src && out_off == src_off) &&
        (status = check_overlap(out, out_off, len, "output", src, src_off, total, "source", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_sum_blocks", what, &k)) < 0) return status;
    cl_ulong us = src_off, ulen = len, uo = out_off;
    cl_uint un = (cl_uint)n_sum, uacc = accumulate ? 1u : 0u;
    gm_arg args[] = {GA(src), GA(us), GA(un), GA(ulen), GA(scale), GA(uacc), GA(out), GA(uo)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, len, what);
}

/* ---- occlusion, blur, curves ---- */

static int check_window(int h, int w, int window, int stride, const char *what)
{
    int status;
    if ((status = check_pos(h, "the height", what)) < 0 || (status = check_pos(w, "the width", what)) < 0 ||
        (status = check_pos(window, "the window", what)) < 0 || (status = check_pos(stride, "the stride", what)) < 0)
        return status;
    if (window > h || window > w)
        return cnn_error_set(CNN_ERR_INPUT, "%s: window %d larger than the %d x %d map", what, window, h, w);
    return CNN_OK;
}

int cnn_gm_occlude(cnn_cl *cl, cl_mem x, size_t x_off, cl_mem base, size_t base_off, int c, int h, int w,
                   int window, int stride, int copies, int w0, cl_mem out, size_t out_off, const char *what)
{
    int status;
    size_t len = 0, total = 0;
    if ((status = check_window(h, w, window, stride, what)) < 0 ||
        (status = check_pos(c, "the channel count c", what)) < 0 ||
        (status = count3((size_t)c, (size_t)h, (size_t)w, &len, "image", what)) < 0 ||
        (status = check_copies(len, copies, w0, out, out_off, &total, what)) < 0)
        return status;
    int ny = cnn_gm_positions(h, window, stride), nx = cnn_gm_positions(w, window, stride);
    if ((long long)w0 + copies > (long long)ny * nx)
        return cnn_error_set(CNN_ERR_INPUT, "%s: windows [%d, %lld) past the %d windows", what, w0,
                             (long long)w0 + copies, ny * nx);
    if ((status = check_sources(x, x_off, "input", base, base_off, "baseline", len, out, out_off, total, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_occlude", what, &k)) < 0) return status;
    cl_ulong ux = x_off, ub = base_off, ulen = len, uo = out_off, un = total;
    cl_uint uh = (cl_uint)h, uw = (cl_uint)w, uwin = (cl_uint)window, ust = (cl_uint)stride, unx = (cl_uint)nx,
            uw0 = (cl_uint)w0;
    gm_arg args[] = {GA(x), GA(ux), GA(base), GA(ub), GA(uh), GA(uw), GA(ulen), GA(uwin), GA(ust), GA(unx),
                     GA(uw0), GA(out), GA(uo), GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, what);
}

int cnn_gm_occlusion_map(cnn_cl *cl, cl_mem d, size_t d_off, int h, int w, int window, int stride, cl_mem out,
                         size_t out_off, const char *what)
{
    int status;
    size_t px = 0;
    if ((status = check_window(h, w, window, stride, what)) < 0 ||
        (status = count3((size_t)h, (size_t)w, 1, &px, "map", what)) < 0)
        return status;
    if (px > UINT32_MAX) return cnn_error_set(CNN_ERR_INPUT, "%s: %zu pixels (at most %u)", what, px, UINT32_MAX);
    int ny = cnn_gm_positions(h, window, stride), nx = cnn_gm_positions(w, window, stride);
    if ((status = check_span(d, d_off, (size_t)ny * nx, sizeof(float), "window score", what)) < 0 ||
        (status = check_span(out, out_off, px, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, px, "output", d, d_off, (size_t)ny * nx, "window score", false, what)) <
            0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_occlusion_map", what, &k)) < 0) return status;
    cl_ulong ud = d_off, uo = out_off;
    cl_uint uh = (cl_uint)h, uw = (cl_uint)w, uwin = (cl_uint)window, ust = (cl_uint)stride, uny = (cl_uint)ny,
            unx = (cl_uint)nx;
    gm_arg args[] = {GA(d), GA(ud), GA(uh), GA(uw), GA(uwin), GA(ust), GA(uny), GA(unx), GA(out), GA(uo)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, px, what);
}

int cnn_gm_blur(cnn_cl *cl, cl_mem x, size_t x_off, int c, int h, int w, float sigma, cl_mem tmp, cl_mem out,
                size_t out_off, const char *what)
{
    int status;
    size_t len = 0;
    if (!(sigma > 0.0f) || !isfinite(sigma) || sigma > 1e4f)
        return cnn_error_set(CNN_ERR_INPUT, "%s: blur sigma %g (must be in (0, 1e4])", what, (double)sigma);
    if ((status = check_pos(c, "the channel count c", what)) < 0 || (status = check_pos(h, "the height", what)) < 0 ||
        (status = check_pos(w, "the width", what)) < 0 ||
        (status = count3((size_t)c, (size_t)h, (size_t)w, &len, "image", what)) < 0 ||
        (status = check_span(x, x_off, len, sizeof(float), "input", what)) < 0 ||
        (status = check_span(tmp, 0, len, sizeof(float), "scratch", what)) < 0 ||
        (status = check_span(out, out_off, len, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(tmp, 0, len, "scratch", x, x_off, len, "input", false, what)) < 0 ||
        (status = check_overlap(out, out_off, len, "output", tmp, 0, len, "scratch", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_blur", what, &k)) < 0) return status;
    cl_int radius = (cl_int)ceilf(3.0f * sigma);
    cl_uint uh = (cl_uint)h, uw = (cl_uint)w;
    cl_ulong un = len;
    for (cl_uint dir = 0; dir < 2; dir++) {
        cl_mem src = dir ? tmp : x, dst = dir ? out : tmp;
        cl_ulong so = dir ? 0 : x_off, dso = dir ? out_off : 0;
        gm_arg args[] = {GA(src), GA(so), GA(uh), GA(uw), GA(un), GA(sigma), GA(radius), GA(dir), GA(dst), GA(dso)};
        if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
        if ((status = cnn_cl_run1d(cl, k, len, what)) < 0) return status;
    }
    return CNN_OK;
}

int cnn_gm_curve(cnn_cl *cl, cl_mem a, size_t a_off, cl_mem b, size_t b_off, cl_mem rank, int c, int plane,
                 int copies, int s0, int steps, cl_mem out, size_t out_off, const char *what)
{
    int status;
    size_t len = 0, total = 0;
    if ((status = check_pos(c, "the channel count c", what)) < 0 ||
        (status = check_pos(plane, "the plane size", what)) < 0 ||
        (status = check_pos(steps, "the step count", what)) < 0 ||
        (status = count3((size_t)c, (size_t)plane, 1, &len, "image", what)) < 0 ||
        (status = check_copies(len, copies, s0, out, out_off, &total, what)) < 0)
        return status;
    if ((long long)s0 + copies > (long long)steps + 1)
        return cnn_error_set(CNN_ERR_INPUT, "%s: steps [%d, %lld) past the %d steps", what, s0,
                             (long long)s0 + copies, steps);
    if ((status = check_sources(a, a_off, "first", b, b_off, "second", len, out, out_off, total, what)) < 0 ||
        (status = check_span(rank, 0, (size_t)plane, sizeof(cl_uint), "rank", what)) < 0 ||
        (status = check_overlap(out, out_off, total, "output", rank, 0, (size_t)plane, "rank", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_curve", what, &k)) < 0) return status;
    cl_ulong ua = a_off, ub = b_off, ulen = len, uo = out_off, un = total;
    cl_uint uplane = (cl_uint)plane, us0 = (cl_uint)s0, usteps = (cl_uint)steps;
    gm_arg args[] = {GA(a), GA(ua), GA(b), GA(ub), GA(rank), GA(uplane), GA(ulen), GA(us0), GA(usteps), GA(out), GA(uo),
                     GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, total, what);
}

/* ---- the CAM family's own passes ---- */

/* The checks of the ops that write m masked copies (c x plane floats each,
 * out at offset 0) of x (at x_off) with masks mk (m x plane floats at
 * offset 0); len and n: floats per copy and in all. */
static int check_masked_copies(cl_mem x, size_t x_off, int c, int plane, cl_mem mk, int m, cl_mem out, size_t *len,
                               size_t *n, const char *what)
{
    int status;
    if ((status = check_pos(c, "the channel count", what)) < 0 || (status = check_pos(plane, "the plane", what)) < 0 ||
        (status = check_pos(m, "the copies", what)) < 0 ||
        (status = count3((size_t)c, (size_t)plane, 1, len, "input", what)) < 0 ||
        (status = count3((size_t)m, *len, 1, n, "copies", what)) < 0 ||
        (status = check_span(x, x_off, *len, sizeof(float), "input", what)) < 0 ||
        (status = check_span(mk, 0, (size_t)m * plane, sizeof(float), "masks", what)) < 0 ||
        (status = check_span(out, 0, *n, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, 0, *n, "output", x, x_off, *len, "input", false, what)) < 0 ||
        (status = check_overlap(out, 0, *n, "output", mk, 0, (size_t)m * plane, "masks", false, what)) < 0)
        return status;
    return CNN_OK;
}

int cnn_gm_score_inputs(cnn_cl *cl, cl_mem x, size_t x_off, int c, int plane, cl_mem up, int m, cl_mem st,
                        cl_mem out, const char *what)
{
    int status;
    size_t len, n;
    if ((status = check_masked_copies(x, x_off, c, plane, up, m, out, &len, &n, what)) < 0 ||
        (status = check_span(st, 0, (size_t)m * CNN_STATS_STRIDE, sizeof(float), "mask statistics", what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_score_inputs", what, &k)) < 0) return status;
    cl_ulong ux = x_off, ulen = len, un = n;
    cl_uint uplane = (cl_uint)plane, ustride = CNN_STATS_STRIDE, imin = CNN_ST_MIN, imax = CNN_ST_MAX;
    gm_arg a[] = {GA(x), GA(ux), GA(ulen), GA(uplane), GA(up), GA(st), GA(ustride), GA(imin), GA(imax), GA(out), GA(un)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, what);
}

int cnn_gm_ablate(cnn_cl *cl, cl_mem buf, size_t off, int c, int plane, int k0, int m, const char *what)
{
    int status;
    size_t n_in;
    if ((status = check_pos(c, "the channel count", what)) < 0 || (status = check_pos(plane, "the plane", what)) < 0 ||
        (status = check_pos(m, "the copies", what)) < 0 ||
        (status = count3((size_t)m, (size_t)c, (size_t)plane, &n_in, "tensor", what)) < 0 ||
        (status = check_span(buf, off, n_in, sizeof(float), "tensor", what)) < 0)
        return status;
    if (k0 < 0 || k0 + m > c)
        return cnn_error_set(CNN_ERR_INPUT, "%s: channels %d to %d of %d", what, k0, k0 + m - 1, c);
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_ablate", what, &k)) < 0) return status;
    cl_ulong uoff = off, un = (size_t)m * plane;
    cl_uint uc = (cl_uint)c, uplane = (cl_uint)plane, uk0 = (cl_uint)k0;
    gm_arg a[] = {GA(buf), GA(uoff), GA(uc), GA(uplane), GA(uk0), GA(un)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)un, what);
}

int cnn_gm_absmul(cnn_cl *cl, cl_mem a, size_t a_off, cl_mem b, size_t b_off, int c, int plane, bool per_channel,
                  cl_mem out, const char *what)
{
    int status;
    size_t n;
    if ((status = check_pos(c, "the channel count", what)) < 0 || (status = check_pos(plane, "the plane", what)) < 0 ||
        (status = count3((size_t)c, (size_t)plane, 1, &n, "tensor", what)) < 0 ||
        (status = check_span(a, a_off, n, sizeof(float), "first", what)) < 0 ||
        (status = check_span(b, b_off, per_channel ? (size_t)c : n, sizeof(float), "second", what)) < 0 ||
        (status = check_span(out, 0, n, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, 0, n, "output", a, a_off, n, "first", false, what)) < 0 ||
        (status = check_overlap(out, 0, n, "output", b, b_off, per_channel ? (size_t)c : n, "second", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_absmul", what, &k)) < 0) return status;
    cl_ulong ua = a_off, ub = b_off, un = n;
    cl_uint uplane = (cl_uint)plane, upc = per_channel ? 1u : 0u;
    gm_arg args[] = {GA(a), GA(ua), GA(b), GA(ub), GA(uplane), GA(upc), GA(out), GA(un)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, what);
}

int cnn_gm_fullgrad_acc(cnn_cl *cl, cl_mem t, size_t t_off, int c, int h, int w, cl_mem st, cl_mem out,
                        size_t out_off, int H, int W, bool accumulate, const char *what)
{
    int status;
    size_t n_in, n_out;
    if ((status = check_pos(c, "the channel count", what)) < 0 || (status = check_pos(h, "the height", what)) < 0 ||
        (status = check_pos(w, "the width", what)) < 0 || (status = check_pos(H, "the output height", what)) < 0 ||
        (status = check_pos(W, "the output width", what)) < 0 ||
        (status = count3((size_t)c, (size_t)h, (size_t)w, &n_in, "maps", what)) < 0 ||
        (status = count3(1, (size_t)H, (size_t)W, &n_out, "output", what)) < 0 ||
        (status = check_span(t, t_off, n_in, sizeof(float), "maps", what)) < 0 ||
        (status = check_span(st, 0, (size_t)c * CNN_STATS_STRIDE, sizeof(float), "statistics", what)) < 0 ||
        (status = check_span(out, out_off, n_out, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, n_out, "output", t, t_off, n_in, "maps", false, what)) < 0)
        return status;
    float sy = (float)h / (float)H, sx = (float)w / (float)W;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_fullgrad_acc", what, &k)) < 0) return status;
    cl_uint uc = (cl_uint)c, uh = (cl_uint)h, uw = (cl_uint)w, uH = (cl_uint)H, uW = (cl_uint)W;
    cl_uint ustride = CNN_STATS_STRIDE, imin = CNN_ST_MIN, imax = CNN_ST_MAX, uacc = accumulate ? 1u : 0u;
    cl_ulong uoff = out_off, ut_off = t_off;
    gm_arg a[] = {GA(t),       GA(ut_off), GA(uc),   GA(uh),  GA(uw),   GA(sy), GA(sx), GA(st),
                  GA(ustride), GA(imin),   GA(imax), GA(out), GA(uoff), GA(uH), GA(uW), GA(uacc)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n_out, what);
}

/* ---- RISE ---- */

int cnn_gm_rise_masks(cnn_cl *cl, uint32_t seed, int cells, float keep, int H, int W, int i0, int m, cl_mem grid,
                      cl_mem out, const char *what)
{
    int status;
    size_t n, ng;
    if ((status = check_pos(cells, "the grid side", what)) < 0 || (status = check_pos(H, "the height", what)) < 0 ||
        (status = check_pos(W, "the width", what)) < 0 || (status = check_pos(m, "the masks", what)) < 0 ||
        (status = count3((size_t)m, (size_t)H, (size_t)W, &n, "masks", what)) < 0 ||
        (status = count3((size_t)m, (size_t)cells * cells + 2, 1, &ng, "grids", what)) < 0 ||
        (status = check_span(out, 0, n, sizeof(float), "masks", what)) < 0 ||
        (status = check_span(grid, 0, ng, sizeof(float), "grids", what)) < 0 ||
        (status = check_overlap(out, 0, n, "masks", grid, 0, ng, "grids", false, what)) < 0)
        return status;
    if (!(keep > 0 && keep <= 1) || i0 < 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: keep %g (0 < keep <= 1), first mask %d", what, (double)keep, i0);
    cl_uint s = (cl_uint)cells, chh = (cl_uint)((H + cells - 1) / cells), cww = (cl_uint)((W + cells - 1) / cells);
    float sy = (float)cells / (float)((cells + 1) * (int)chh), sx = (float)cells / (float)((cells + 1) * (int)cww);
    cl_uint useed = seed, ui0 = (cl_uint)i0, uH = (cl_uint)H, uW = (cl_uint)W;
    cl_ulong un = n, ung = ng;
    cl_kernel kg, km;
    if ((status = gm_kernel(cl, "kernel_gm_rise_grid", what, &kg)) < 0 ||
        (status = gm_kernel(cl, "kernel_gm_rise_masks", what, &km)) < 0)
        return status;
    gm_arg a1[] = {GA(useed), GA(s), GA(chh), GA(cww), GA(keep), GA(ui0), GA(grid), GA(ung)};
    gm_arg a2[] = {GA(grid), GA(s), GA(sy), GA(sx), GA(uH), GA(uW), GA(out), GA(un)};
    if ((status = set_args(kg, a1, sizeof a1 / sizeof a1[0], what)) < 0 ||
        (status = cnn_cl_run1d(cl, kg, ng, what)) < 0 ||
        (status = set_args(km, a2, sizeof a2 / sizeof a2[0], what)) < 0)
        return status;
    return cnn_cl_run1d(cl, km, n, what);
}

int cnn_gm_mask_mul(cnn_cl *cl, cl_mem x, size_t x_off, int c, int plane, cl_mem mk, int m, cl_mem out,
                    const char *what)
{
    int status;
    size_t len, n;
    if ((status = check_masked_copies(x, x_off, c, plane, mk, m, out, &len, &n, what)) < 0) return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_mask_mul", what, &k)) < 0) return status;
    cl_ulong ux = x_off, ulen = len, un = n;
    cl_uint uplane = (cl_uint)plane;
    gm_arg a[] = {GA(x), GA(ux), GA(ulen), GA(uplane), GA(mk), GA(out), GA(un)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, what);
}

int cnn_gm_weighted_sum(cnn_cl *cl, cl_mem mk, int m, int plane, cl_mem w, cl_mem out, size_t out_off,
                        bool accumulate, const char *what)
{
    int status;
    if ((status = check_pos(m, "the masks", what)) < 0 || (status = check_pos(plane, "the plane", what)) < 0 ||
        (status = check_span(mk, 0, (size_t)m * plane, sizeof(float), "masks", what)) < 0 ||
        (status = check_span(w, 0, (size_t)m, sizeof(float), "weights", what)) < 0 ||
        (status = check_span(out, out_off, (size_t)plane, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, out_off, (size_t)plane, "output", mk, 0, (size_t)m * plane, "masks", false,
                                what)) < 0 ||
        (status = check_overlap(out, out_off, (size_t)plane, "output", w, 0, (size_t)m, "weights", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_weighted_sum", what, &k)) < 0) return status;
    cl_uint um = (cl_uint)m, uplane = (cl_uint)plane, uacc = accumulate ? 1u : 0u;
    cl_ulong uoff = out_off;
    gm_arg a[] = {GA(mk), GA(um), GA(uplane), GA(w), GA(out), GA(uoff), GA(uacc)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, (size_t)plane, what);
}

/* ---- LIME and KernelSHAP ---- */

int cnn_gm_segment_mix(cnn_cl *cl, cl_mem x, size_t x_off, cl_mem base, int c, int plane, cl_mem seg, cl_mem z,
                       int nseg, int m, cl_mem out, const char *what)
{
    int status;
    size_t len, n;
    if ((status = check_pos(c, "the channel count", what)) < 0 || (status = check_pos(plane, "the plane", what)) < 0 ||
        (status = check_pos(m, "the samples", what)) < 0 || (status = check_pos(nseg, "the segments", what)) < 0 ||
        (status = count3((size_t)c, (size_t)plane, 1, &len, "input", what)) < 0 ||
        (status = count3((size_t)m, len, 1, &n, "copies", what)) < 0 ||
        (status = check_span(x, x_off, len, sizeof(float), "input", what)) < 0 ||
        (status = check_span(base, 0, len, sizeof(float), "baseline", what)) < 0 ||
        (status = check_span(seg, 0, (size_t)plane, sizeof(cl_int), "segments", what)) < 0 ||
        (status = check_span(z, 0, (size_t)m * nseg, sizeof(float), "samples", what)) < 0 ||
        (status = check_span(out, 0, n, sizeof(float), "output", what)) < 0 ||
        (status = check_overlap(out, 0, n, "output", x, x_off, len, "input", false, what)) < 0 ||
        (status = check_overlap(out, 0, n, "output", base, 0, len, "baseline", false, what)) < 0)
        return status;
    cl_kernel k;
    if ((status = gm_kernel(cl, "kernel_gm_segment_mix", what, &k)) < 0) return status;
    cl_ulong ux = x_off, ulen = len, un = n;
    cl_uint uplane = (cl_uint)plane, useg = (cl_uint)nseg;
    gm_arg a[] = {GA(x), GA(ux), GA(base), GA(ulen), GA(uplane), GA(seg), GA(z), GA(useg), GA(out), GA(un)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(cl, k, n, what);
}
