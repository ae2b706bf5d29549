/* Pooling and channel-wise ops: max/avg/adaptive-avg/global-max pooling,
 * softmax, layer norm and local response norm over channels, concat and
 * channel selection (slice, shuffle).  One work-item per output
 * element (softmax: per (n, position)); every kernel returns early past its
 * item count because the host rounds the global size up to the work-group. */

/* Window geometry shared by max and avg pooling, in the order the host
 * passes it.  Padding is only "virtual": out-of-range taps are skipped. */
#define POOL_GEOM_ARGS                                                                       \
    const uint total, const uint hi, const uint wi, const uint ho, const uint wo,            \
        const uint kh, const uint kw, const uint sh, const uint sw, const uint dh,           \
        const uint dw, const uint pt, const uint pl

/* y[nc, oy, ox] = max over the dilated window of x[nc]; padding is -inf, so a
 * window that only touches padding would give -inf (PyTorch forbids that
 * geometry).  NaN propagates like in PyTorch.  One work-item per output row
 * (nc, oy): `total` counts rows here, and the index divisions (slow on CPU
 * devices) are paid once per row. */
__kernel void kernel_maxpool_f32(__global const float *x, __global float *y, POOL_GEOM_ARGS)
{
    uint row = get_global_id(0);
    if (row >= total) return;
    uint oy = row % ho;
    uint nc = row / ho;
    __global const float *plane = x + (size_t)nc * hi * wi;
    __global float *dst = y + (size_t)row * wo;
    int y0 = (int)(oy * sh) - (int)pt;
    for (uint ox = 0; ox < wo; ox++) {
        int x0 = (int)(ox * sw) - (int)pl;
        float m = -INFINITY;
        for (uint i = 0; i < kh; i++) {
            int yy = y0 + (int)(i * dh);
            if (yy < 0 || yy >= (int)hi) continue;
            __global const float *src = plane + yy * (int)wi;
            for (uint j = 0; j < kw; j++) {
                int xx = x0 + (int)(j * dw);
                if (xx < 0 || xx >= (int)wi) continue;
                float v = src[xx];
                if (v > m || isnan(v)) m = v;
            }
        }
        dst[ox] = m;
    }
}

#ifdef POOL_KH
/* One output: the POOL_KH x POOL_KW window at (y0, x0); unrolled without
 * bounds tests when it lies wholly inside the input. */
inline float fixed_window_max(__global const float *plane, uint hi, uint wi, int y0, int x0, bool rows_in)
{
    float m = -INFINITY;
    if (rows_in && x0 >= 0 && x0 + POOL_KW <= (int)wi) {
        __global const float *src = plane + y0 * (int)wi + x0;
#pragma unroll
        for (int i = 0; i < POOL_KH; i++)
#pragma unroll
            for (int j = 0; j < POOL_KW; j++) {
                float v = src[i * (int)wi + j];
                if (v > m || isnan(v)) m = v;
            }
        return m;
    }
    for (int i = 0; i < POOL_KH; i++) {
        int yy = y0 + i;
        if (yy < 0 || yy >= (int)hi) continue;
        for (int j = 0; j < POOL_KW; j++) {
            int xx = x0 + j;
            if (xx < 0 || xx >= (int)wi) continue;
            float v = plane[yy * (int)wi + xx];
            if (v > m || isnan(v)) m = v;
        }
    }
    return m;
}

#ifdef POOL_S2
/* Maximum with PyTorch's NaN rule (a NaN wins), for vectors. */
inline float8 pool_nmax8(float8 m, float8 v) { return select(m, v, isgreater(v, m) | isnan(v)); }
inline float16 pool_nmax16(float16 m, float16 v) { return select(m, v, isgreater(v, m) | isnan(v)); }
#endif

/* The same max pooling for a window of POOL_KH x POOL_KW taps known when
 * the program is built and no dilation: windows wholly inside the input
 * (all but the border) take the unrolled loop without bounds tests. */
__kernel void kernel_maxpool_fixed_f32(__global const float *x, __global float *y, POOL_GEOM_ARGS)
{
    uint row = get_global_id(0);
    if (row >= total) return;
    uint oy = row % ho;
    uint nc = row / ho;
    __global const float *plane = x + (size_t)nc * hi * wi;
    __global float *dst = y + (size_t)row * wo;
    int y0 = (int)(oy * sh) - (int)pt;
    bool rows_in = y0 >= 0 && y0 + POOL_KH <= (int)hi;
    uint ox = 0;
#ifdef POOL_S2
    /* Stride 2 across, windows 2 or 3 wide (VGG's 2x2/2, ResNet's 3x3/2):
     * eight outputs from one 16-float load per window row (and one more
     * float for width 3), the rows' maximum first, then the columns' as
     * even/odd lanes.  Outputs left of the first whole window and past the
     * last whole block are made one at a time (fixed_window_max). */
    if (rows_in) {
        uint head = (pl + 1) / 2; /* first ox whose window starts at x >= 0 */
        uint stop = head < wo ? head : wo;
        for (; ox < stop; ox++) dst[ox] = fixed_window_max(plane, hi, wi, y0, (int)(2 * ox) - (int)pl, rows_in);
        for (; ox + 8 <= wo && (int)(2 * ox) - (int)pl + 14 + POOL_KW <= (int)wi; ox += 8) {
            __global const float *src = plane + y0 * (int)wi + ((int)(2 * ox) - (int)pl);
            float16 c = vload16(0, src);
#if POOL_KW == 3
            float e = src[16];
#endif
            for (int i = 1; i < POOL_KH; i++) {
                c = pool_nmax16(c, vload16(0, src + i * (int)wi));
#if POOL_KW == 3
                float v = src[i * (int)wi + 16];
                if (v > e || isnan(v)) e = v;
#endif
            }
            float8 r = pool_nmax8(c.even, c.odd);
#if POOL_KW == 3
            r = pool_nmax8(r, (float8)(c.s2468, c.sACE, e));
#endif
            vstore8(r, 0, dst + ox);
        }
    }
#endif
    for (; ox < wo; ox++) dst[ox] = fixed_window_max(plane, hi, wi, y0, (int)(ox * sw) - (int)pl, rows_in);
}
#endif

/* Taps of a (dilated) window along one axis that fall inside [lo, hi). */
inline int taps_inside(int start, int k, int d, int lo, int hi)
{
    int n = 0;
    for (int i = 0; i < k; i++) {
        int p = start + i * d;
        n += (p >= lo && p < hi);
    }
    return n;
}

/* PyTorch's avg_pool2d divisor: with count_include_pad the taps inside the
 * padded input [-pt, hi + pb) count (not the ceil_mode overhang past it),
 * otherwise only the taps inside the input.  With dilation 1 this is
 * PyTorch's (hend - hstart) * (wend - wstart) formula; dilation extends it
 * tap by tap.  A window with no input tap gives 0, as in PyTorch. */
__kernel void kernel_avgpool_f32(__global const float *x, __global float *y, POOL_GEOM_ARGS,
                                 const uint pb, const uint pr, const uint count_include_pad)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint ox = idx % wo;
    uint oy = (idx / wo) % ho;
    uint nc = idx / (wo * ho);
    __global const float *plane = x + nc * hi * wi;
    int y0 = (int)(oy * sh) - (int)pt;
    int x0 = (int)(ox * sw) - (int)pl;
    float s = 0.0f;
    for (uint i = 0; i < kh; i++) {
        int yy = y0 + (int)(i * dh);
        if (yy < 0 || yy >= (int)hi) continue;
        for (uint j = 0; j < kw; j++) {
            int xx = x0 + (int)(j * dw);
            if (xx < 0 || xx >= (int)wi) continue;
            s += plane[yy * (int)wi + xx];
        }
    }
    int ny = taps_inside(y0, (int)kh, (int)dh, 0, (int)hi);
    int nx = taps_inside(x0, (int)kw, (int)dw, 0, (int)wi);
    if (ny == 0 || nx == 0) {
        y[idx] = 0.0f;
        return;
    }
    if (count_include_pad) {
        ny = taps_inside(y0, (int)kh, (int)dh, -(int)pt, (int)(hi + pb));
        nx = taps_inside(x0, (int)kw, (int)dw, -(int)pl, (int)(wi + pr));
    }
    y[idx] = s / (float)(ny * nx);
}

/* Adaptive average pooling: output row oy averages input rows
 * [floor(oy*hi/ho), ceil((oy+1)*hi/ho)), the same for columns. */
__kernel void kernel_adaptive_avgpool_f32(__global const float *x, __global float *y,
                                          const uint total, const uint hi, const uint wi,
                                          const uint ho, const uint wo)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint ox = idx % wo;
    uint oy = (idx / wo) % ho;
    uint nc = idx / (wo * ho);
    __global const float *plane = x + nc * hi * wi;
    uint ys = oy * hi / ho, ye = ((oy + 1) * hi + ho - 1) / ho;
    uint xs = ox * wi / wo, xe = ((ox + 1) * wi + wo - 1) / wo;
    float s = 0.0f;
    for (uint yy = ys; yy < ye; yy++)
        for (uint xx = xs; xx < xe; xx++) s += plane[yy * wi + xx];
    y[idx] = s / (float)((ye - ys) * (xe - xs));
}

/* Softmax over the channels of x[n, c, plane], one work-item per
 * (n, position); the max is subtracted first so exp never overflows. */
__kernel void kernel_softmax_f32(__global const float *x, __global float *y, const uint total,
                                 const uint c, const uint plane)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint base = (idx / plane) * c * plane + idx % plane;
    float m = -INFINITY;
    for (uint i = 0; i < c; i++) m = fmax(m, x[base + i * plane]);
    float s = 0.0f;
    for (uint i = 0; i < c; i++) {
        float e = exp(x[base + i * plane] - m);
        y[base + i * plane] = e;
        s += e;
    }
    float r = 1.0f / s;
    for (uint i = 0; i < c; i++) y[base + i * plane] *= r;
}

/* PyTorch LocalResponseNorm: the squares are zero-padded by size/2 channels
 * before and (size-1)/2 after and averaged over `size` (padding counts), so
 * y_c = x_c / (k + alpha/size * sum_{c'=c-size/2}^{c+(size-1)/2} x_c'^2)^beta. */
__kernel void kernel_lrn_f32(__global const float *x, __global float *y, const uint total,
                             const uint c, const uint plane, const uint size, const float alpha,
                             const float beta, const float k)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    int ch = (int)((idx / plane) % c);
    uint base = idx - (uint)ch * plane; /* channel 0 at this (n, position) */
    int lo = max(ch - (int)(size / 2), 0);
    int hi = min(ch + (int)((size - 1) / 2), (int)c - 1);
    float s = 0.0f;
    for (int i = lo; i <= hi; i++) {
        float v = x[base + (uint)i * plane];
        s += v * v;
    }
    y[idx] = x[idx] / pow(k + alpha / (float)size * s, beta);
}

/* y[b, c0 + ch, p] = x[b, ch, p] for x [n, cx, plane] and y [n, cy, plane];
 * block = cx * plane is one image of x. */
__kernel void kernel_concat_f32(__global const float *x, __global float *y, const uint total,
                                const uint block, const uint ystride, const uint yoffset)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    y[(idx / block) * ystride + yoffset + idx % block] = x[idx];
}

/* Global max pool, one work-item per (n, c) plane: NaN wins, as in the
 * window kernels above. */
__kernel void kernel_global_maxpool_f32(__global const float *x, __global float *y, const uint total,
                                        const uint plane)
{
    uint i = get_global_id(0);
    if (i >= total) return;
    __global const float *src = x + (size_t)i * plane;
    float m = -INFINITY;
    for (uint p = 0; p < plane; p++) {
        float v = src[p];
        if (v > m || isnan(v)) m = v;
    }
    y[i] = m;
}

/* Layer norm's statistics over the c channels at x[base + ch * plane]:
 * the mean, then the biased variance of the deviations (two passes, as
 * exact as float allows); returns 1 / sqrt(var + eps). */
inline float layernorm_stats(__global const float *x, size_t base, uint c, uint plane, float eps, float *mean)
{
    float m = 0.0f;
    for (uint ch = 0; ch < c; ch++) m += x[base + (size_t)ch * plane];
    m /= (float)c;
    float var = 0.0f;
    for (uint ch = 0; ch < c; ch++) {
        float d = x[base + (size_t)ch * plane] - m;
        var += d * d;
    }
    *mean = m;
    return 1.0f / sqrt(var / (float)c + eps);
}

/* Layer norm over channels, one work-item per (n, position):
 * y = (x - mean) * rstd (* w[c] + b[c] when affine). */
__kernel void kernel_layernorm_f32(__global const float *x, __global const float *w, __global const float *b,
                                   __global float *y, const uint total, const uint c, const uint plane,
                                   const float eps, const uint affine)
{
    uint i = get_global_id(0);
    if (i >= total) return;
    size_t base = (size_t)(i / plane) * c * plane + i % plane;
    float mean;
    float rstd = layernorm_stats(x, base, c, plane, eps, &mean);
    for (uint ch = 0; ch < c; ch++) {
        size_t k = base + (size_t)ch * plane;
        float v = (x[k] - mean) * rstd;
        y[k] = affine ? v * w[ch] + b[ch] : v;
    }
}

/* Layer norm backward (here, beside the forward, for the same
 * statistics), ADDING into dx as cl/grad.cl's kernels do: with xhat =
 * (x - mean) rstd and g = dy * w (dy without affine),
 *   dx_c += rstd (g_c - mean_c(g) - xhat_c mean_c(g xhat)). */
__kernel void kernel_layernorm_bwd_f32(__global const float *x, __global const float *w, __global const float *dy,
                                       __global float *dx, const uint total, const uint c, const uint plane,
                                       const float eps, const uint affine)
{
    uint i = get_global_id(0);
    if (i >= total) return;
    size_t base = (size_t)(i / plane) * c * plane + i % plane;
    float mean;
    float rstd = layernorm_stats(x, base, c, plane, eps, &mean);
    float s1 = 0.0f, s2 = 0.0f;
    for (uint ch = 0; ch < c; ch++) {
        size_t k = base + (size_t)ch * plane;
        float g = affine ? dy[k] * w[ch] : dy[k];
        s1 += g;
        s2 += g * (x[k] - mean) * rstd;
    }
    s1 /= (float)c;
    s2 /= (float)c;
    for (uint ch = 0; ch < c; ch++) {
        size_t k = base + (size_t)ch * plane;
        float g = affine ? dy[k] * w[ch] : dy[k];
        dx[k] += rstd * (g - s1 - (x[k] - mean) * rstd * s2);
    }
}

/* Channel selection (slice, channel shuffle): output channel j of cy
 * reads input channel start + (j / groups) * step + (j % groups) * k. */
inline uint chan_src(uint j, uint start, uint step, uint groups, uint k)
{
    return start + (j / groups) * step + (j % groups) * k;
}

/* y[n, j, q] = x[n, chan_src(j), q].  2-D range: dimension 0 is q,
 * dimension 1 the row (n, j). */
__kernel void kernel_channel_gather_f32(__global const float *x, __global float *y, const uint rows,
                                        const uint plane, const uint cx, const uint cy, const uint start,
                                        const uint step, const uint groups, const uint k)
{
    uint q = get_global_id(0);
    uint r = get_global_id(1);
    if (q >= plane || r >= rows) return;
    uint src = chan_src(r % cy, start, step, groups, k);
    y[(size_t)r * plane + q] = x[((size_t)(r / cy) * cx + src) * plane + q];
}

/* Its backward (here for the same map), ADDING as cl/grad.cl's kernels
 * do: dx[n, chan_src(j), q] += dy[n, j, q].  A scatter, but the map is
 * one-to-one, so no two items write the same element. */
__kernel void kernel_channel_gather_bwd_f32(__global const float *dy, __global float *dx, const uint rows,
                                            const uint plane, const uint cx, const uint cy, const uint start,
                                            const uint step, const uint groups, const uint k)
{
    uint q = get_global_id(0);
    uint r = get_global_id(1);
    if (q >= plane || r >= rows) return;
    uint src = chan_src(r % cy, start, step, groups, k);
    dx[((size_t)(r / cy) * cx + src) * plane + q] += dy[(size_t)r * plane + q];
}
