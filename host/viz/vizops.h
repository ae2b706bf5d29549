/* Visualization ops on the device (cl/viz.cl): statistics of maps, the
 * [lo, hi] range each map is drawn with (min-max, symmetric, percentile via
 * histograms, fixed), 8-bit rendering through a colormap, montages.  The
 * host never reads a raw tensor to normalise it: it reads back only the
 * small stats buffers and the finished 8-bit pixels.
 *
 * Every function enqueues on cl->queue (no clFinish), checks every OpenCL
 * call and names `what` (the tap: "conv1 activations") in its message.
 *
 * Maps: map m (0 <= m < n_maps) is `len` floats at element
 * src[off + m * stride] (stride >= len).  A "group" is `group` consecutive
 * maps that share one range: group = 1 is per-channel, group = n_maps is
 * per-layer.  n_maps must be a multiple of group; n_groups = n_maps / group. */
#ifndef CNN_VIZ_VIZOPS_H
#define CNN_VIZ_VIZOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "runtime/clrt.h"

/* Colormaps, in the order of cnn_colormaps[] (config/config.h). */
typedef enum cnn_cmap {
    CNN_CMAP_GRAY = 0,
    CNN_CMAP_VIRIDIS,
    CNN_CMAP_MAGMA,
    CNN_CMAP_INFERNO,
    CNN_CMAP_TURBO,
    CNN_CMAP_JET,
    CNN_CMAP_RDBU,
    CNN_CMAP_COUNT
} cnn_cmap;

/* Floats per map in a stats buffer, and their meaning. */
#define CNN_STATS_STRIDE 8
enum {
    CNN_ST_MIN = 0,   /* over finite values; 0 when there is none */
    CNN_ST_MAX = 1,
    CNN_ST_MEAN = 2,
    CNN_ST_STD = 3,   /* population standard deviation */
    CNN_ST_FINITE = 4, /* count of finite values (exact up to 2^24) */
    CNN_ST_NAN = 5,   /* count of NaN */
    CNN_ST_POSINF = 6,
    CNN_ST_NEGINF = 7
};

/* Histogram bins used for percentiles: a percentile is exact to within
 * (hi - lo) / CNN_VIZ_BINS of the group's value range. */
#define CNN_VIZ_BINS 2048

typedef struct cnn_viz {
    cnn_cl *cl;     /* borrowed */
    cl_mem luts;    /* CNN_CMAP_COUNT x 256 x 4 bytes (RGBA, A unused) */
} cnn_viz;

/* Uploads the colormap tables (host/viz/colormap.h). */
int cnn_viz_init(cnn_viz *v, cnn_cl *cl);
void cnn_viz_free(cnn_viz *v);

/* stats[m * CNN_STATS_STRIDE + k] for each map (see CNN_ST_*).  NaN and Inf
 * are counted, never folded into min/max/mean/std.  Mean and std use
 * Welford/Chan merges (relative error ~1e-6 even for 16M-element maps). */
int cnn_viz_stats(cnn_viz *v, cl_mem src, size_t off, size_t stride, size_t len, int n_maps,
                  cl_mem stats, const char *what);

/* ranges[g * 2 + 0/1] = [lo, hi] of each group from stats: lo = min of the
 * group's mins, hi = max of its maxes (maps with no finite value ignored).
 * is_signed: [-a, a] with a = max(|lo|, |hi|).
 * (vizops.c: a group with no finite value at all gets [0, 0].) */
int cnn_viz_ranges_minmax(cnn_viz *v, cl_mem stats, int n_maps, int group, bool is_signed,
                          cl_mem ranges, const char *what);

/* ranges[g] = [lo, hi] for every group (a fill: no host write). */
int cnn_viz_ranges_fixed(cnn_viz *v, cl_mem ranges, int n_groups, float lo, float hi,
                         const char *what);

/* hist[g * bins + b] (uint32): finite values of group g counted in bin b of
 * the group's bounds [bounds[2g], bounds[2g+1]] split in `bins` equal bins;
 * values below/above fall in the first/last bin; bounds lo == hi puts
 * everything in bin 0.  accumulate = false zeroes the groups' bins first
 * (true adds: one histogram across several inputs).  bins <= 4096. */
int cnn_viz_histogram(cnn_viz *v, cl_mem src, size_t off, size_t stride, size_t len, int n_maps,
                      int group, cl_mem bounds, int bins, bool accumulate, cl_mem hist,
                      const char *what);

/* ranges[g] = [p_lo-th, p_hi-th percentile] of group g from its histogram
 * (linear interpolation inside the bin; 0 <= p_lo < p_hi <= 100).
 * is_signed: [-a, a] with a = max(|lo|, |hi|).  ranges may not alias
 * bounds.  An empty histogram gives [bounds lo, bounds hi].
 * (cl/viz.cl: numpy's 'linear' rule, rank r = p/100 (count - 1), between
 * the order statistics floor(r) and floor(r) + 1, each estimated inside its
 * bin; values outside the bounds count as at the bounds.) */
int cnn_viz_ranges_percentile(cnn_viz *v, cl_mem hist, int bins, cl_mem bounds, int n_groups,
                              float p_lo, float p_hi, bool is_signed, cl_mem ranges,
                              const char *what);

/* 8-bit pixels.  planes = 1: map m is h*w values drawn through colormap
 * `cmap`; planes = 3: map m is 3 planes of h*w (plane p at +p*h*w) drawn as
 * RGB directly (no colormap).  For a value v and the range [lo, hi] of the
 * map's group (ranges[(m / group) * 2]):
 *   t = (v - lo) / (hi - lo) clamped to [0, 1]; hi - lo not > 0 gives t = 0.5
 *   (a constant map is mid-grey); NaN gives t = 0, +Inf 1, -Inf 0;
 *   level = (int)(t * 255 + 0.5).
 *   (vizops.c: the NaN/Inf rules come first, also when hi - lo is not > 0;
 *   t and level are computed in float, correctly rounded, no fma.)
 * ncomp = cnn_viz_ncomp(planes, cmap) bytes per pixel: gray -> level;
 * colormap -> lut[cmap][level].rgb; planes = 3 -> one level per plane.
 * dst bytes [n_maps, h, w, ncomp] at byte offset dst_off. */
int cnn_viz_render(cnn_viz *v, cl_mem src, size_t off, size_t stride, int n_maps, int planes, int h,
                   int w, cl_mem ranges, int group, cnn_cmap cmap, cl_mem dst, size_t dst_off,
                   const char *what);
static inline int cnn_viz_ncomp(int planes, cnn_cmap cmap)
{
    return planes == 3 || cmap != CNN_CMAP_GRAY ? 3 : 1;
}

/* Montage layout of n tiles of h x w: cols = columns (0: ceil(sqrt(n)),
 * capped at n), rows = ceil(n_shown / cols); tiles enlarged by the integer
 * `scale` (nearest neighbour) chosen as the smallest making the longer tile
 * side >= min_tile, then lowered until width and height <= max_side;
 * 1-px separators between tiles (none on the border):
 *   width = cols * w * scale + (cols - 1), height likewise.
 * If even scale 1 exceeds max_side, n_shown < n tiles are kept (the first
 * ones) and rows/cols shrink to fit; n_shown >= 1 always.
 * (vizops.c: at scale 1, columns first shrink to what fits the width and
 * rows grow to hold all n tiles; only when those rows exceed the height are
 * tiles dropped, so n_shown == n whenever some grid holds them all.
 * Preconditions: n, h, w, max_side >= 1; a single tile larger than
 * max_side is still shown, exceeding it.) */
typedef struct cnn_montage {
    int n, n_shown, cols, rows, tile_h, tile_w, scale, width, height;
} cnn_montage;
void cnn_montage_plan(int n, int h, int w, int columns, int min_tile, int max_side, cnn_montage *m);

/* Lays out the first m->n_shown rendered tiles ([n, tile_h, tile_w, ncomp]
 * bytes at tiles + off) row-major into out ([height, width, ncomp] bytes at
 * out_off); separators and unused cells are `sep` in every component. */
int cnn_viz_montage(cnn_viz *v, cl_mem tiles, size_t off, int ncomp, const cnn_montage *m,
                    uint8_t sep, cl_mem out, size_t out_off, const char *what);

/* The network input as an 8-bit image: dst[(y * w + x) * c + ch] =
 * clamp((int)(src[off + ch * h * w + y * w + x] * a[ch] + b[ch] + 0.5), 0, 255)
 * (c = 1 or 3): with a = std / scale and b = mean / scale this undoes the
 * input normalisation. */
int cnn_viz_input_image(cnn_viz *v, cl_mem src, size_t off, int c, int h, int w, const float *a,
                        const float *b, cl_mem dst, const char *what);

#endif
