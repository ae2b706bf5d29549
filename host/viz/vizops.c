/* Visualization ops on the device (cl/viz.cl); contract in viz/vizops.h.
 *
 * All kernels live in one program, built with one option string per device
 * (-cl-fp32-correctly-rounded-divide-sqrt where the device offers it, so
 * that render levels, histogram bins and input pixels equal a C reference in
 * float), hence one PoCL compile, cached on disk afterwards.
 *
 * Nothing here blocks except cnn_viz_init (one upload of the colormaps):
 * every op enqueues on cl->queue. */
#include "viz/vizops.h"
#include "viz/colormap.h"
#include "core/error.h"
#include "core/util.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Work-group limits of cl/viz.cl (VIZ_WG there). */
#define VIZ_WG 256
/* Work-groups per launch of the per-map / per-group kernels: every device
 * takes 65535 groups in dimension 0; more maps are launched in chunks. */
#define VIZ_MAX_GROUPS 65535u
#define VIZ_MAX_BINS 4096

/* ---- helpers ---- */

static int viz_kernel(cnn_viz *v, const char *name, const char *what, cl_kernel *k)
{
    cl_device_fp_config fp = 0;
    cl_int err = clGetDeviceInfo(v->cl->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    if (err != CL_SUCCESS)
        return cnn_error_set(CNN_ERR_DEVICE, "clGetDeviceInfo(CL_DEVICE_SINGLE_FP_CONFIG) failed: %s (%s)",
                             cnn_cl_error_name(err), what);
    const char *opts = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) ? "-cl-fp32-correctly-rounded-divide-sqrt" : NULL;
    int status = cnn_cl_kernel(v->cl, "viz.cl", opts, name, k);
    if (status < 0) return cnn_error_prefix(status, "%s", what);
    return CNN_OK;
}

/* Kernel arguments in order; size with a NULL value is a __local buffer. */
typedef struct viz_arg {
    size_t size;
    const void *value;
} viz_arg;
#define VA(x) {sizeof(x), &(x)}

static int set_args(cl_kernel k, const viz_arg *a, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int status = cnn_cl_set_arg(k, (cl_uint)i, a[i].size, a[i].value, what);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* Largest power of two <= min(VIZ_WG, device and kernel limits). */
static int local_size(cnn_viz *v, cl_kernel k, bool pow2, const char *what, size_t *out)
{
    int status = CNN_OK;
    size_t kwg = 0;
    CNN_CL_TRY(clGetKernelWorkGroupInfo(k, v->cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg,
                                        NULL),
               what, done);
    size_t l = VIZ_WG;
    if (v->cl->max_work_group && v->cl->max_work_group < l) l = v->cl->max_work_group;
    if (kwg && kwg < l) l = kwg;
    if (pow2) {
        size_t p = 1;
        while (p * 2 <= l) p *= 2;
        l = p;
    }
    *out = l ? l : 1;
done:
    return status;
}

/* `buf` holds at least `bytes` (a kernel would otherwise read or write past
 * it, which no device reports). */
static int check_buffer(cl_mem buf, size_t bytes, const char *name, const char *what)
{
    int status = CNN_OK;
    size_t have = 0;
    if (!buf) return cnn_error_set(CNN_ERR_INPUT, "%s: no %s buffer", what, name);
    CNN_CL_TRY(clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof have, &have, NULL), what, done);
    if (have < bytes)
        status = cnn_error_set(CNN_ERR_INPUT, "%s: the %s buffer holds %zu bytes, %zu needed", what,
                               name, have, bytes);
done:
    return status;
}

/* n_maps maps of len floats at off, stride apart (stride ignored for one
 * map): sizes the kernels can index, and the buffer big enough. */
static int check_maps(cl_mem src, size_t off, size_t stride, size_t len, int n_maps, const char *what)
{
    if (n_maps <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: %d maps (must be > 0)", what, n_maps);
    if (len == 0) return cnn_error_set(CNN_ERR_INPUT, "%s: maps of 0 values", what);
    if (len > UINT_MAX / 4)
        return cnn_error_set(CNN_ERR_INPUT, "%s: maps of %zu values (at most %u)", what, len,
                             UINT_MAX / 4);
    if (n_maps > 1 && stride < len)
        return cnn_error_set(CNN_ERR_INPUT, "%s: map stride %zu is less than the map length %zu",
                             what, stride, len);
    size_t end = 0;
    if (!cnn_mul_size(n_maps > 1 ? stride : 0, (size_t)(n_maps - 1), &end) ||
        !cnn_add_size(end, off, &end) || !cnn_add_size(end, len, &end) ||
        !cnn_mul_size(end, sizeof(float), &end))
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d maps of stride %zu at offset %zu overflow", what,
                             n_maps, stride, off);
    return check_buffer(src, end, "source", what);
}

static int check_group(int n_maps, int group, const char *what)
{
    if (n_maps <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: %d maps (must be > 0)", what, n_maps);
    if (group <= 0 || n_maps % group != 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: a group of %d maps does not divide %d maps", what,
                             group, n_maps);
    return CNN_OK;
}

/* ---- init ---- */

int cnn_viz_init(cnn_viz *v, cnn_cl *cl)
{
    memset(v, 0, sizeof *v);
    v->cl = cl;
    uint8_t *rgba = malloc((size_t)CNN_CMAP_COUNT * 256 * 4);
    if (!rgba) return cnn_error_set(CNN_ERR_NOMEM, "out of host memory (colormaps)");
    for (int c = 0; c < CNN_CMAP_COUNT; c++) {
        const uint8_t *lut = cnn_colormap_lut((cnn_cmap)c);
        CNN_ASSERT(lut != NULL);
        for (int i = 0; i < 256; i++) {
            uint8_t *o = rgba + ((size_t)c * 256 + i) * 4;
            o[0] = lut[3 * i];
            o[1] = lut[3 * i + 1];
            o[2] = lut[3 * i + 2];
            o[3] = 255;
        }
    }
    size_t bytes = (size_t)CNN_CMAP_COUNT * 256 * 4;
    int status = cnn_cl_buffer(cl, bytes, &v->luts, "colormap tables");
    if (status == CNN_OK) status = cnn_cl_write(cl, v->luts, 0, bytes, rgba, "colormap tables");
    free(rgba);
    if (status < 0) cnn_viz_free(v);
    return status;
}

void cnn_viz_free(cnn_viz *v)
{
    if (v->luts) clReleaseMemObject(v->luts);
    v->luts = NULL;
    v->cl = NULL;
}

/* ---- statistics and ranges ---- */

int cnn_viz_stats(cnn_viz *v, cl_mem src, size_t off, size_t stride, size_t len, int n_maps,
                  cl_mem stats, const char *what)
{
    int status = check_maps(src, off, stride, len, n_maps, what);
    if (status < 0) return status;
    if ((status = check_buffer(stats, (size_t)n_maps * CNN_STATS_STRIDE * sizeof(float), "stats",
                               what)) < 0)
        return status;
    cl_kernel k;
    size_t wg;
    if ((status = viz_kernel(v, "kernel_viz_stats", what, &k)) < 0 ||
        (status = local_size(v, k, true, what, &wg)) < 0)
        return status;
    cl_ulong uoff = off, ustride = stride;
    cl_uint ulen = (cl_uint)len;
    for (size_t m0 = 0; m0 < (size_t)n_maps; m0 += VIZ_MAX_GROUPS) {
        cl_uint map0 = (cl_uint)m0;
        size_t n = (size_t)n_maps - m0 < VIZ_MAX_GROUPS ? (size_t)n_maps - m0 : VIZ_MAX_GROUPS;
        viz_arg a[] = {VA(src), VA(uoff), VA(ustride), VA(ulen), VA(map0), VA(stats)};
        size_t global = n * wg;
        if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0 ||
            (status = cnn_cl_runnd(v->cl, k, 1, &global, &wg, what)) < 0)
            return status;
    }
    return CNN_OK;
}

int cnn_viz_ranges_minmax(cnn_viz *v, cl_mem stats, int n_maps, int group, bool is_signed,
                          cl_mem ranges, const char *what)
{
    int status = check_group(n_maps, group, what);
    if (status < 0) return status;
    cl_uint n_groups = (cl_uint)(n_maps / group), ugroup = (cl_uint)group, usig = is_signed;
    if ((status = check_buffer(stats, (size_t)n_maps * CNN_STATS_STRIDE * sizeof(float), "stats",
                               what)) < 0 ||
        (status = check_buffer(ranges, (size_t)n_groups * 2 * sizeof(float), "ranges", what)) < 0)
        return status;
    cl_kernel k;
    if ((status = viz_kernel(v, "kernel_viz_ranges_minmax", what, &k)) < 0) return status;
    viz_arg a[] = {VA(stats), VA(n_groups), VA(ugroup), VA(usig), VA(ranges)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(v->cl, k, n_groups, what);
}

int cnn_viz_ranges_fixed(cnn_viz *v, cl_mem ranges, int n_groups, float lo, float hi,
                         const char *what)
{
    if (n_groups <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: %d groups (must be > 0)", what, n_groups);
    int status = check_buffer(ranges, (size_t)n_groups * 2 * sizeof(float), "ranges", what);
    if (status < 0) return status;
    cl_uint ng = (cl_uint)n_groups;
    cl_kernel k;
    if ((status = viz_kernel(v, "kernel_viz_ranges_fixed", what, &k)) < 0) return status;
    viz_arg a[] = {VA(ranges), VA(ng), VA(lo), VA(hi)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(v->cl, k, ng, what);
}

/* ---- histograms and percentiles ---- */

static int check_bins(int bins, const char *what)
{
    if (bins < 1 || bins > VIZ_MAX_BINS)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d histogram bins (1 to %d)", what, bins, VIZ_MAX_BINS);
    return CNN_OK;
}

int cnn_viz_histogram(cnn_viz *v, cl_mem src, size_t off, size_t stride, size_t len, int n_maps,
                      int group, cl_mem bounds, int bins, bool accumulate, cl_mem hist,
                      const char *what)
{
    int status;
    if ((status = check_group(n_maps, group, what)) < 0 || (status = check_bins(bins, what)) < 0 ||
        (status = check_maps(src, off, stride, len, n_maps, what)) < 0)
        return status;
    size_t total = (size_t)group * len;
    if (total > UINT_MAX / 4)
        return cnn_error_set(CNN_ERR_INPUT, "%s: a group of %d maps of %zu values is more than the "
                             "histogram kernel indexes (%u)", what, group, len, UINT_MAX / 4);
    int n_groups = n_maps / group;
    size_t hist_bytes = (size_t)n_groups * (size_t)bins * sizeof(cl_uint);
    if ((status = check_buffer(bounds, (size_t)n_groups * 2 * sizeof(float), "bounds", what)) < 0 ||
        (status = check_buffer(hist, hist_bytes, "histogram", what)) < 0)
        return status;
    cl_kernel k;
    size_t wg;
    if ((status = viz_kernel(v, "kernel_viz_histogram", what, &k)) < 0 ||
        (status = local_size(v, k, false, what, &wg)) < 0)
        return status;
    if ((size_t)bins * sizeof(cl_uint) > v->cl->local_mem)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d bins need more local memory than the device has",
                             what, bins);
    if (!accumulate) {
        cl_uint zero = 0;
        CNN_CL_TRY(clEnqueueFillBuffer(v->cl->queue, hist, &zero, sizeof zero, 0, hist_bytes, 0, NULL,
                                       NULL),
                   what, done);
    }
    /* Work-groups per group: enough that each sees >= 64 values per item and
     * its local histogram costs little next to them, at most ~16 work-groups
     * per compute unit over all groups. */
    size_t per = wg * 64 > (size_t)bins * 4 ? wg * 64 : (size_t)bins * 4;
    size_t parts = (total + per - 1) / per;
    size_t cu = v->cl->compute_units ? v->cl->compute_units : 1;
    size_t cap = (16 * cu + (size_t)n_groups - 1) / (size_t)n_groups;
    if (parts > cap) parts = cap;
    if (parts > VIZ_MAX_GROUPS) parts = VIZ_MAX_GROUPS;
    if (parts < 1) parts = 1;
    size_t groups_per_launch = VIZ_MAX_GROUPS / parts;
    cl_ulong uoff = off, ustride = stride;
    cl_uint ulen = (cl_uint)len, ugroup = (cl_uint)group, uparts = (cl_uint)parts, ubins = (cl_uint)bins;
    for (size_t g0 = 0; g0 < (size_t)n_groups; g0 += groups_per_launch) {
        size_t n = (size_t)n_groups - g0 < groups_per_launch ? (size_t)n_groups - g0 : groups_per_launch;
        cl_uint ug0 = (cl_uint)g0;
        viz_arg a[] = {VA(src),    VA(uoff),  VA(ustride), VA(ulen), VA(ugroup),
                       VA(ug0),    VA(uparts), VA(ubins),  VA(bounds), VA(hist),
                       {(size_t)bins * sizeof(cl_uint), NULL}};
        size_t global = n * parts * wg;
        if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0 ||
            (status = cnn_cl_runnd(v->cl, k, 1, &global, &wg, what)) < 0)
            return status;
    }
done:
    return status;
}

/* The rule (kernel_viz_ranges_percentile in cl/viz.cl): total = the group's
 * count; rank r = p / 100 * (total - 1), k = floor(r); the k-th smallest
 * value is estimated in the bin b that holds it (counts before b <= k <
 * counts through b) as lo + (b + (j + 1) / (c + 1)) * w, j = k - counts
 * before b, c = the bin's count, w = (hi - lo) / bins (the mean of the j-th
 * of c uniform values in the bin); the result is x_k + (r - k) (x_{k+1} -
 * x_k), numpy's 'linear' percentile on those estimates, hence within one bin
 * width of numpy's on the exact values. */
int cnn_viz_ranges_percentile(cnn_viz *v, cl_mem hist, int bins, cl_mem bounds, int n_groups,
                              float p_lo, float p_hi, bool is_signed, cl_mem ranges,
                              const char *what)
{
    int status;
    if (n_groups <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: %d groups (must be > 0)", what, n_groups);
    if ((status = check_bins(bins, what)) < 0) return status;
    if (!(p_lo >= 0.0f && p_lo < p_hi && p_hi <= 100.0f))
        return cnn_error_set(CNN_ERR_INPUT, "%s: percentiles %g and %g (need 0 <= low < high <= 100)",
                             what, (double)p_lo, (double)p_hi);
    if (ranges == bounds)
        return cnn_error_set(CNN_ERR_INPUT, "%s: the ranges buffer may not be the bounds buffer", what);
    if ((status = check_buffer(hist, (size_t)n_groups * (size_t)bins * sizeof(cl_uint), "histogram",
                               what)) < 0 ||
        (status = check_buffer(bounds, (size_t)n_groups * 2 * sizeof(float), "bounds", what)) < 0 ||
        (status = check_buffer(ranges, (size_t)n_groups * 2 * sizeof(float), "ranges", what)) < 0)
        return status;
    cl_kernel k;
    if ((status = viz_kernel(v, "kernel_viz_ranges_percentile", what, &k)) < 0) return status;
    cl_uint ubins = (cl_uint)bins, ng = (cl_uint)n_groups, usig = is_signed;
    viz_arg a[] = {VA(hist), VA(ubins), VA(bounds), VA(ng), VA(p_lo), VA(p_hi), VA(usig), VA(ranges)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(v->cl, k, ng, what);
}

/* ---- rendering ---- */

int cnn_viz_render(cnn_viz *v, cl_mem src, size_t off, size_t stride, int n_maps, int planes, int h,
                   int w, cl_mem ranges, int group, cnn_cmap cmap, cl_mem dst, size_t dst_off,
                   const char *what)
{
    int status;
    if (planes != 1 && planes != 3)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d planes per map (1 or 3)", what, planes);
    if ((int)cmap < 0 || cmap >= CNN_CMAP_COUNT)
        return cnn_error_set(CNN_ERR_INPUT, "%s: colormap %d out of range", what, (int)cmap);
    if (h <= 0 || w <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: maps of %dx%d", what, h, w);
    if ((status = check_group(n_maps, group, what)) < 0) return status;
    size_t hw = (size_t)h * (size_t)w;
    if (hw > UINT_MAX / 4 || hw * (size_t)n_maps > UINT_MAX / 2)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d maps of %dx%d is more than the render kernel "
                             "indexes", what, n_maps, h, w);
    size_t n_pix = hw * (size_t)n_maps;
    int ncomp = cnn_viz_ncomp(planes, cmap);
    if ((status = check_maps(src, off, stride, hw * (size_t)planes, n_maps, what)) < 0 ||
        (status = check_buffer(ranges, (size_t)(n_maps / group) * 2 * sizeof(float), "ranges",
                               what)) < 0 ||
        (status = check_buffer(dst, dst_off + n_pix * (size_t)ncomp, "destination", what)) < 0)
        return status;
    if (!v->luts) return cnn_error_set(CNN_ERR_INPUT, "%s: colormaps not initialised", what);
    cl_kernel k;
    if ((status = viz_kernel(v, "kernel_viz_render", what, &k)) < 0) return status;
    cl_ulong uoff = off, ustride = stride, udst_off = dst_off;
    cl_uint upix = (cl_uint)n_pix, uhw = (cl_uint)hw, uplanes = (cl_uint)planes,
            ugroup = (cl_uint)group, ucmap = (cl_uint)cmap;
    viz_arg a[] = {VA(src),    VA(uoff),  VA(ustride), VA(upix),    VA(uhw),      VA(uplanes),
                   VA(ugroup), VA(ranges), VA(ucmap),  VA(v->luts), VA(dst),      VA(udst_off)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(v->cl, k, n_pix, what);
}

/* ---- montages ---- */

/* ceil(sqrt(n)) for n >= 1, in integers. */
static int isqrt_ceil(int n)
{
    long long c = (long long)sqrt((double)n);
    while (c * c < n) c++;
    while (c > 1 && (c - 1) * (c - 1) >= n) c--;
    return (int)c;
}

/* Largest scale s with count * len * s + (count - 1) <= max_side (0: none). */
static long long max_scale(long long count, long long len, long long max_side)
{
    long long room = max_side - (count - 1);
    return room <= 0 ? 0 : room / (count * len);
}

/* Preconditions (a caller bug otherwise): n, h, w, max_side >= 1.
 * A single tile larger than max_side is still shown (n_shown = 1 at scale
 * 1): then width or height exceeds max_side. */
void cnn_montage_plan(int n, int h, int w, int columns, int min_tile, int max_side, cnn_montage *m)
{
    CNN_ASSERT(n >= 1 && h >= 1 && w >= 1 && max_side >= 1);
    int cols = columns > 0 ? columns : isqrt_ceil(n);
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int n_shown = n;
    long long side = h > w ? h : w;
    long long scale = min_tile > side ? (min_tile + side - 1) / side : 1;
    long long sx = max_scale(cols, w, max_side), sy = max_scale(rows, h, max_side);
    if (sx < scale) scale = sx;
    if (sy < scale) scale = sy;
    if (scale < 1) {
        /* Even scale 1 is too big: keep the first tiles that fit. */
        scale = 1;
        int cmax = (int)(((long long)max_side + 1) / ((long long)w + 1));
        int rmax = (int)(((long long)max_side + 1) / ((long long)h + 1));
        if (cmax < 1) cmax = 1;
        if (rmax < 1) rmax = 1;
        if (cols > cmax) {
            cols = cmax;
            rows = (n + cols - 1) / cols;
        }
        if (rows > rmax) rows = rmax;
        long long fit = (long long)rows * cols;
        n_shown = fit < n ? (int)fit : n;
        rows = (n_shown + cols - 1) / cols;
    }
    m->n = n;
    m->n_shown = n_shown;
    m->cols = cols;
    m->rows = rows;
    m->tile_h = h;
    m->tile_w = w;
    m->scale = (int)scale;
    m->width = (int)((long long)cols * w * scale + (cols - 1));
    m->height = (int)((long long)rows * h * scale + (rows - 1));
}

int cnn_viz_montage(cnn_viz *v, cl_mem tiles, size_t off, int ncomp, const cnn_montage *m,
                    uint8_t sep, cl_mem out, size_t out_off, const char *what)
{
    int status;
    if (ncomp != 1 && ncomp != 3)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %d components per pixel (1 or 3)", what, ncomp);
    if (m->n_shown < 1 || m->n_shown > m->n || m->cols < 1 || m->rows < 1 || m->tile_h < 1 ||
        m->tile_w < 1 || m->scale < 1 ||
        (long long)m->rows * m->cols < m->n_shown ||
        m->width != (long long)m->cols * m->tile_w * m->scale + m->cols - 1 ||
        m->height != (long long)m->rows * m->tile_h * m->scale + m->rows - 1)
        return cnn_error_set(CNN_ERR_INPUT, "%s: inconsistent montage plan (%d of %d tiles of %dx%d, "
                             "%d x %d cells, scale %d, %dx%d)", what, m->n_shown, m->n, m->tile_h,
                             m->tile_w, m->cols, m->rows, m->scale, m->width, m->height);
    size_t n_pix = (size_t)m->width * (size_t)m->height;
    if (n_pix > UINT_MAX / 2)
        return cnn_error_set(CNN_ERR_INPUT, "%s: a %dx%d montage is more than the kernel indexes", what,
                             m->width, m->height);
    size_t tile_bytes = (size_t)m->tile_h * (size_t)m->tile_w * (size_t)ncomp;
    if ((status = check_buffer(tiles, off + (size_t)m->n_shown * tile_bytes, "tiles", what)) < 0 ||
        (status = check_buffer(out, out_off + n_pix * (size_t)ncomp, "montage", what)) < 0)
        return status;
    cl_kernel k;
    if ((status = viz_kernel(v, "kernel_viz_montage", what, &k)) < 0) return status;
    cl_ulong uoff = off, uout_off = out_off;
    cl_uint uncomp = (cl_uint)ncomp, ushown = (cl_uint)m->n_shown, ucols = (cl_uint)m->cols,
            uth = (cl_uint)m->tile_h, utw = (cl_uint)m->tile_w, uscale = (cl_uint)m->scale,
            uwidth = (cl_uint)m->width, upix = (cl_uint)n_pix, usep = sep;
    viz_arg a[] = {VA(tiles), VA(uoff),   VA(uncomp), VA(ushown), VA(ucols), VA(uth),     VA(utw),
                   VA(uscale), VA(uwidth), VA(upix),   VA(usep),   VA(out),   VA(uout_off)};
    if ((status = set_args(k, a, sizeof a / sizeof a[0], what)) < 0) return status;
    return cnn_cl_run1d(v->cl, k, n_pix, what);
}

/* ---- the input image ---- */

int cnn_viz_input_image(cnn_viz *v, cl_mem src, size_t off, int c, int h, int w, const float *a,
                        const float *b, cl_mem dst, const char *what)
{
    int status;
    if (c != 1 && c != 3) return cnn_error_set(CNN_ERR_INPUT, "%s: %d channels (1 or 3)", what, c);
    if (h <= 0 || w <= 0) return cnn_error_set(CNN_ERR_INPUT, "%s: an image of %dx%d", what, h, w);
    size_t hw = (size_t)h * (size_t)w;
    if (hw > UINT_MAX / 4)
        return cnn_error_set(CNN_ERR_INPUT, "%s: an image of %dx%d is more than the kernel indexes",
                             what, h, w);
    if ((status = check_buffer(src, (off + hw * (size_t)c) * sizeof(float), "source", what)) < 0 ||
        (status = check_buffer(dst, hw * (size_t)c, "image", what)) < 0)
        return status;
    cl_kernel k;
    if ((status = viz_kernel(v, "kernel_viz_input_image", what, &k)) < 0) return status;
    cl_ulong uoff = off;
    cl_uint uc = (cl_uint)c, uhw = (cl_uint)hw;
    float a3[3], b3[3];
    for (int i = 0; i < 3; i++) {
        a3[i] = a[i < c ? i : 0];
        b3[i] = b[i < c ? i : 0];
    }
    viz_arg args[] = {VA(src),   VA(uoff),  VA(uc),    VA(uhw),   VA(a3[0]), VA(a3[1]),
                      VA(a3[2]), VA(b3[0]), VA(b3[1]), VA(b3[2]), VA(dst)};
    if ((status = set_args(k, args, sizeof args / sizeof args[0], what)) < 0) return status;
    return cnn_cl_run1d(v->cl, k, hw, what);
}
