/* Visualization kernels (host/viz/vizops.c, contract in host/viz/vizops.h):
 * per-map statistics, the [lo, hi] range of each group of maps, histograms
 * and percentiles, 8-bit rendering through a colormap, montages and the
 * network input as an image.
 *
 * Every value the host reproduces bit for bit (render levels, histogram bins,
 * input pixels) is computed with single IEEE operations in a fixed order: no
 * contraction into fma (the pragma below), and the host builds this file with
 * -cl-fp32-correctly-rounded-divide-sqrt where the device offers it, so that
 * a C reference in float gets the same bytes.
 *
 * 1-D kernels return early past their item count (the host rounds the global
 * size up to the work-group). */
#pragma OPENCL FP_CONTRACT OFF

/* Largest work-group of the reducing kernels (their local arrays); the host
 * uses a power of two <= this. */
#define VIZ_WG 256
/* Values a work-item folds with Welford before merging them into its running
 * state with Chan's formula: keeps the rounding error of a 16M-value map at
 * ~sqrt(VIZ_CHUNK) ulp instead of ~sqrt(len / VIZ_WG). */
#define VIZ_CHUNK 256

/* Chan et al.: merges (nb, mb, qb) into (na, ma, qa), q being the sum of
 * squared deviations from the mean (M2).  Counts up to 2^24 are exact in
 * float; na * (nb / n) cannot overflow. */
inline void chan_merge(uint *na, float *ma, float *qa, uint nb, float mb, float qb)
{
    if (nb == 0) return;
    if (*na == 0) {
        *na = nb;
        *ma = mb;
        *qa = qb;
        return;
    }
    uint n = *na + nb;
    float fb = (float)nb / (float)n;
    float delta = mb - *ma;
    *ma = *ma + delta * fb;
    *qa = *qa + qb + delta * delta * ((float)*na * fb);
    *na = n;
}

/* A work-item's partial statistics. */
typedef struct viz_part {
    uint n, nan, pinf, ninf;
    float mean, m2, mn, mx;
} viz_part;

/* One work-group per map: map m = map0 + group id is len floats at
 * src[off + m * stride].  Each work-item strides over the map (Welford in
 * chunks of VIZ_CHUNK, Chan across chunks), min/max over finite values,
 * counts of NaN / +Inf / -Inf; then a tree merge in local memory.
 * get_local_size(0) must be a power of two <= VIZ_WG.
 * Writes stats[m * 8 + CNN_ST_*] (host/viz/vizops.h). */
__kernel void kernel_viz_stats(__global const float *src, const ulong off, const ulong stride,
                               const uint len, const uint map0, __global float *stats)
{
    __local viz_part l_p[VIZ_WG];
    const uint lid = get_local_id(0), wg = get_local_size(0);
    const uint m = map0 + get_group_id(0);
    __global const float *x = src + off + (ulong)m * stride;

    uint n = 0, nnan = 0, npinf = 0, nninf = 0;
    float mean = 0.0f, m2 = 0.0f, mn = INFINITY, mx = -INFINITY;
    uint i = lid;
    while (i < len) {
        uint cn = 0;
        float cmean = 0.0f, cm2 = 0.0f;
        for (uint k = 0; k < VIZ_CHUNK && i < len; k++, i += wg) {
            float v = x[i];
            if (isfinite(v)) {
                cn++;
                float d = v - cmean;
                cmean = cmean + d / (float)cn;
                cm2 = cm2 + d * (v - cmean);
                mn = fmin(mn, v);
                mx = fmax(mx, v);
            } else if (isnan(v)) {
                nnan++;
            } else if (v > 0.0f) {
                npinf++;
            } else {
                nninf++;
            }
        }
        chan_merge(&n, &mean, &m2, cn, cmean, cm2);
    }

    /* Tree merge in local memory: each round the first half merges the
     * second half's partials and publishes its own. */
    l_p[lid] = (viz_part){n, nnan, npinf, nninf, mean, m2, mn, mx};
    for (uint s = wg / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) {
            viz_part o = l_p[lid + s];
            chan_merge(&n, &mean, &m2, o.n, o.mean, o.m2);
            mn = fmin(mn, o.mn);
            mx = fmax(mx, o.mx);
            nnan += o.nan;
            npinf += o.pinf;
            nninf += o.ninf;
            l_p[lid] = (viz_part){n, nnan, npinf, nninf, mean, m2, mn, mx};
        }
    }
    if (lid == 0) {
        __global float *st = stats + (ulong)m * 8;
        bool any = n > 0;
        st[0] = any ? mn : 0.0f;
        st[1] = any ? mx : 0.0f;
        st[2] = any ? mean : 0.0f;
        st[3] = any ? sqrt(fmax(m2, 0.0f) / (float)n) : 0.0f;
        st[4] = (float)n;
        st[5] = (float)nnan;
        st[6] = (float)npinf;
        st[7] = (float)nninf;
    }
}

inline float2 viz_signed(float lo, float hi, uint is_signed)
{
    if (is_signed) {
        float a = fmax(fabs(lo), fabs(hi));
        return (float2)(-a, a);
    }
    return (float2)(lo, hi);
}

/* One work-item per group: [min of the mins, max of the maxes] of the
 * group's maps that have a finite value; [0, 0] when none has. */
__kernel void kernel_viz_ranges_minmax(__global const float *stats, const uint n_groups,
                                       const uint group, const uint is_signed,
                                       __global float *ranges)
{
    uint g = get_global_id(0);
    if (g >= n_groups) return;
    float lo = INFINITY, hi = -INFINITY;
    bool any = false;
    for (uint j = 0; j < group; j++) {
        __global const float *st = stats + ((ulong)g * group + j) * 8;
        if (st[4] > 0.0f) {
            lo = fmin(lo, st[0]);
            hi = fmax(hi, st[1]);
            any = true;
        }
    }
    if (!any) lo = hi = 0.0f;
    float2 r = viz_signed(lo, hi, is_signed);
    ranges[2 * (ulong)g] = r.x;
    ranges[2 * (ulong)g + 1] = r.y;
}

__kernel void kernel_viz_ranges_fixed(__global float *ranges, const uint n_groups, const float lo,
                                      const float hi)
{
    uint g = get_global_id(0);
    if (g >= n_groups) return;
    ranges[2 * (ulong)g] = lo;
    ranges[2 * (ulong)g + 1] = hi;
}

/* Histogram of the finite values of groups g0 .. : work-group w handles part
 * w % parts of group g0 + w / parts, a contiguous slice of the group's
 * `group * len` values taken map after map.  Counts go to a local histogram
 * (lh: bins uints) and are then added into hist[g * bins + b].
 * Bin: b = (int)((v - lo) / (hi - lo) * bins) clamped to [0, bins - 1] (the
 * float clamped before the conversion, which is the same thing without the
 * undefined conversion of huge values); hi - lo not > 0 gives bin 0. */
__kernel void kernel_viz_histogram(__global const float *src, const ulong off, const ulong stride,
                                   const uint len, const uint group, const uint g0,
                                   const uint parts, const uint bins,
                                   __global const float *bounds, __global uint *hist,
                                   __local uint *lh)
{
    const uint lid = get_local_id(0), wg = get_local_size(0);
    const uint g = g0 + get_group_id(0) / parts, part = get_group_id(0) % parts;
    for (uint b = lid; b < bins; b += wg) lh[b] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);

    const float lo = bounds[2 * (ulong)g], hi = bounds[2 * (ulong)g + 1];
    const float d = hi - lo, fbins = (float)bins, last = (float)(bins - 1);
    const bool flat = !(d > 0.0f);
    const uint total = group * len; /* the host checks it fits */
    const uint per = total / parts + (total % parts != 0);
    const uint start = part * per;
    const uint end = min(total, start + per); /* start + per <= total + parts: no wrap */
    /* Element e of the slice is value i of map mi of the group; stepping by
     * wg advances (mi, i) by (q, r) with a carry. */
    const uint q = wg / len, r = wg % len;
    uint e = start + lid;
    uint mi = e / len, i = e - mi * len;
    __global const float *base = src + off + (ulong)g * group * stride;
    for (; e < end; e += wg) {
        float v = base[(ulong)mi * stride + i];
        if (isfinite(v)) {
            float f = flat ? 0.0f : (v - lo) / d * fbins;
            f = fmin(fmax(f, 0.0f), last); /* NaN (inf / inf) -> 0 */
            atomic_inc(&lh[(uint)f]);
        }
        i += r;
        mi += q;
        if (i >= len) {
            i -= len;
            mi++;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __global uint *h = hist + (ulong)g * bins;
    for (uint b = lid; b < bins; b += wg) {
        uint c = lh[b];
        if (c) atomic_add(&h[b], c);
    }
}

/* Estimate of the k-th smallest (0-based) counted value: the bin b holding it
 * (cumulative count before b <= k < cumulative count through b), the c values
 * of the bin taken as spread uniformly over [lo + b w, lo + (b + 1) w): the
 * j-th of them (j = k - count before b) is placed at the mean of the j-th
 * order statistic of c uniform values, lo + (b + (j + 1) / (c + 1)) w. */
inline float viz_order_stat(__global const uint *h, uint bins, uint k, float lo, float w)
{
    uint cum = 0;
    for (uint b = 0; b < bins; b++) {
        uint c = h[b];
        if (k - cum < c) /* k >= cum always */
            return lo + w * ((float)b + (float)(k - cum + 1) / (float)(c + 1));
        cum += c;
    }
    return lo + w * (float)bins; /* k >= total: not reached */
}

/* numpy's default ('linear') percentile of the total counted values: rank
 * r = p / 100 * (total - 1), k = floor(r), value = x_k + (r - k) (x_{k+1} -
 * x_k), with x_k estimated by viz_order_stat.  Each estimate lies in the bin
 * of the true x_k, so the result is within one bin width of numpy's on the
 * exact values (when no value fell outside the bounds). */
inline float viz_percentile(__global const uint *h, uint bins, uint total, float p, float lo,
                            float w)
{
    float r = p / 100.0f * (float)(total - 1);
    float kf = floor(r);
    uint k = (uint)kf;
    float frac = r - kf;
    if (k >= total - 1) {
        k = total - 1;
        frac = 0.0f;
    }
    float x0 = viz_order_stat(h, bins, k, lo, w);
    if (frac == 0.0f) return x0;
    float x1 = viz_order_stat(h, bins, k + 1, lo, w);
    return x0 + frac * (x1 - x0);
}

/* One work-item per group: ranges[g] = [p_lo-th, p_hi-th percentile]; an
 * empty histogram gives the bounds. */
__kernel void kernel_viz_ranges_percentile(__global const uint *hist, const uint bins,
                                           __global const float *bounds, const uint n_groups,
                                           const float p_lo, const float p_hi,
                                           const uint is_signed, __global float *ranges)
{
    uint g = get_global_id(0);
    if (g >= n_groups) return;
    __global const uint *h = hist + (ulong)g * bins;
    float blo = bounds[2 * (ulong)g], bhi = bounds[2 * (ulong)g + 1];
    uint total = 0;
    for (uint b = 0; b < bins; b++) total += h[b];
    float lo = blo, hi = bhi;
    if (total > 0) {
        float w = bhi > blo ? (bhi - blo) / (float)bins : 0.0f;
        lo = viz_percentile(h, bins, total, p_lo, blo, w);
        hi = viz_percentile(h, bins, total, p_hi, blo, w);
    }
    float2 rg = viz_signed(lo, hi, is_signed);
    ranges[2 * (ulong)g] = rg.x;
    ranges[2 * (ulong)g + 1] = rg.y;
}

/* The 8-bit level of v in [lo, hi] (vizops.h): NaN -> 0, +Inf -> 255,
 * -Inf -> 0 (these first, whatever the range); hi - lo not > 0 -> t = 0.5;
 * else t = (v - lo) / (hi - lo) clamped to [0, 1]; level = (int)(t * 255 +
 * 0.5).  A range so wide that hi - lo overflows is computed on halved values
 * (the same t, exact but for subnormals). */
inline uint viz_level(float v, float lo, float hi)
{
    float t;
    if (isnan(v)) {
        t = 0.0f;
    } else if (isinf(v)) {
        t = v > 0.0f ? 1.0f : 0.0f;
    } else {
        float d = hi - lo;
        if (!(d > 0.0f)) {
            t = 0.5f;
        } else {
            if (isinf(d)) t = (v * 0.5f - lo * 0.5f) / (hi * 0.5f - lo * 0.5f);
            else t = (v - lo) / d;
            t = fmin(fmax(t, 0.0f), 1.0f);
        }
    }
    return (uint)(t * 255.0f + 0.5f);
}

/* One work-item per pixel p of n_pix = n_maps * hw: map m = p / hw, pixel
 * i = p % hw at src[off + m * stride + i] (+ c * hw for plane c of an RGB
 * map), range of group m / group.  Writes ncomp bytes at dst[dst_off + p *
 * ncomp]: planes 3 -> 3 levels; cmap 0 (gray) -> 1 level; else the rgb of
 * luts[cmap * 256 + level]. */
__kernel void kernel_viz_render(__global const float *src, const ulong off, const ulong stride,
                                const uint n_pix, const uint hw, const uint planes,
                                const uint group, __global const float *ranges, const uint cmap,
                                __global const uchar4 *luts, __global uchar *dst,
                                const ulong dst_off)
{
    uint p = get_global_id(0);
    if (p >= n_pix) return;
    uint m = p / hw, i = p - m * hw;
    uint g = m / group;
    float lo = ranges[2 * (ulong)g], hi = ranges[2 * (ulong)g + 1];
    __global const float *x = src + off + (ulong)m * stride + i;
    if (planes == 3) {
        __global uchar *o = dst + dst_off + (ulong)p * 3;
        o[0] = (uchar)viz_level(x[0], lo, hi);
        o[1] = (uchar)viz_level(x[hw], lo, hi);
        o[2] = (uchar)viz_level(x[2 * (ulong)hw], lo, hi);
    } else if (cmap == 0) {
        dst[dst_off + p] = (uchar)viz_level(x[0], lo, hi);
    } else {
        uchar4 c = luts[cmap * 256 + viz_level(x[0], lo, hi)];
        __global uchar *o = dst + dst_off + (ulong)p * 3;
        o[0] = c.x;
        o[1] = c.y;
        o[2] = c.z;
    }
}

/* One work-item per output pixel p of width x height: tile pitch is
 * tile_w * scale + 1 across (tile_h * scale + 1 down); the last column (row)
 * of a pitch is a separator; cells at or past n_shown are empty (sep); else
 * the nearest-neighbour source pixel of tile row * cols + col. */
__kernel void kernel_viz_montage(__global const uchar *tiles, const ulong off, const uint ncomp,
                                 const uint n_shown, const uint cols, const uint tile_h,
                                 const uint tile_w, const uint scale, const uint width,
                                 const uint n_pix, const uint sep, __global uchar *out,
                                 const ulong out_off)
{
    uint p = get_global_id(0);
    if (p >= n_pix) return;
    uint y = p / width, x = p - y * width;
    uint sw = tile_w * scale, sh = tile_h * scale;
    uint col = x / (sw + 1), xi = x - col * (sw + 1);
    uint row = y / (sh + 1), yi = y - row * (sh + 1);
    uint t = row * cols + col;
    __global uchar *o = out + out_off + (ulong)p * ncomp;
    if (xi == sw || yi == sh || t >= n_shown) {
        for (uint c = 0; c < ncomp; c++) o[c] = (uchar)sep;
        return;
    }
    __global const uchar *s =
        tiles + off + (((ulong)t * tile_h + yi / scale) * tile_w + xi / scale) * ncomp;
    for (uint c = 0; c < ncomp; c++) o[c] = s[c];
}

/* One work-item per pixel: dst[p * c + ch] = clamp((int)(x * a + b + 0.5),
 * 0, 255) in float, left to right; the float is clamped before the
 * conversion (same result, no undefined conversion; NaN -> 0). */
__kernel void kernel_viz_input_image(__global const float *src, const ulong off, const uint c,
                                     const uint hw, const float a0, const float a1,
                                     const float a2, const float b0, const float b1,
                                     const float b2, __global uchar *dst)
{
    uint p = get_global_id(0);
    if (p >= hw) return;
    for (uint ch = 0; ch < c; ch++) {
        float a = ch == 0 ? a0 : ch == 1 ? a1 : a2;
        float b = ch == 0 ? b0 : ch == 1 ? b1 : b2;
        float f = src[off + (ulong)ch * hw + p] * a;
        f = f + b;
        f = f + 0.5f;
        f = fmin(fmax(f, 0.0f), 255.0f);
        dst[(ulong)p * c + ch] = (uchar)(int)f;
    }
}
