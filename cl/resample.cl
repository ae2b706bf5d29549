/* Spatial resampling: pad (constant, reflect, replicate) and resize
 * (nearest, bilinear), forward and backward.  The backward kernels live
 * here with the forwards so that both use the same index functions: a
 * gradient must flow back along exactly the taps the forward read.  Every
 * backward is in gather form (one work-item per input element sums the
 * outputs that read it and ADDS to dx), so no atomics are needed and the
 * order of summation is fixed.  Kernels return early past their item
 * count (the host rounds the global size up). */

/* pad_mode: 0 constant, 1 reflect, 2 replicate (cnn_pad_mode). */

/* The input index output o reads along an axis of n inputs with `pad`
 * before: reflect mirrors without repeating the edge (pad < n, checked by
 * the host), replicate clamps, constant leaves it out of range. */
inline int pad_src(int o, int pad, int n, uint mode)
{
    int i = o - pad;
    if (mode == 1) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    } else if (mode == 2) {
        i = clamp(i, 0, n - 1);
    }
    return i;
}

/* 2-D range: dimension 0 is ox, dimension 1 the output row (n, c, oy). */
__kernel void kernel_pad_f32(__global const float *x, __global float *y, const uint rows, const uint hi,
                             const uint wi, const uint ho, const uint wo, const uint pt, const uint pl,
                             const uint mode, const float value)
{
    uint ox = get_global_id(0);
    uint r = get_global_id(1);
    if (ox >= wo || r >= rows) return;
    int iy = pad_src((int)(r % ho), (int)pt, (int)hi, mode);
    int ix = pad_src((int)ox, (int)pl, (int)wi, mode);
    float v = value;
    if (iy >= 0 && iy < (int)hi && ix >= 0 && ix < (int)wi)
        v = x[((size_t)(r / ho) * hi + (uint)iy) * wi + (uint)ix];
    y[(size_t)r * wo + ox] = v;
}

/* The outputs along an axis whose source (pad_src) is input i: the range
 * [*lo, *hi] (the direct one, widened at the edges by replicate) and up to
 * two mirrored ones (reflect) in extra[0, *n_extra). */
inline void pad_readers(uint mode, int i, int n, int pad, int no, int *lo, int *hi, int *extra, int *n_extra)
{
    *lo = *hi = i + pad;
    *n_extra = 0;
    if (mode == 2) {
        if (i == 0) *lo = 0;
        if (i == n - 1) *hi = no - 1;
    } else if (mode == 1) {
        if (i > 0 && i <= pad) extra[(*n_extra)++] = pad - i;
        int o = pad + 2 * (n - 1) - i;
        if (i < n - 1 && o < no) extra[(*n_extra)++] = o;
    }
}

inline float pad_row_sum(__global const float *row, int lo, int hi, const int *extra, int n_extra)
{
    float s = 0.0f;
    for (int o = lo; o <= hi; o++) s += row[o];
    for (int k = 0; k < n_extra; k++) s += row[extra[k]];
    return s;
}

/* dx[n, c, iy, ix] += the sum of dy over the outputs that read it. */
__kernel void kernel_pad_bwd_f32(__global const float *dy, __global float *dx, const uint total, const uint hi,
                                 const uint wi, const uint ho, const uint wo, const uint pt, const uint pl,
                                 const uint mode)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    int ix = (int)(idx % wi);
    int iy = (int)((idx / wi) % hi);
    __global const float *d = dy + (size_t)(idx / (wi * hi)) * ho * wo;
    int ylo, yhi, ny, xlo, xhi, nx, ey[2], ex[2];
    pad_readers(mode, iy, (int)hi, (int)pt, (int)ho, &ylo, &yhi, ey, &ny);
    pad_readers(mode, ix, (int)wi, (int)pl, (int)wo, &xlo, &xhi, ex, &nx);
    float acc = 0.0f;
    for (int oy = ylo; oy <= yhi; oy++) acc += pad_row_sum(d + (size_t)oy * wo, xlo, xhi, ex, nx);
    for (int k = 0; k < ny; k++) acc += pad_row_sum(d + (size_t)ey[k] * wo, xlo, xhi, ex, nx);
    dx[idx] += acc;
}

/* PyTorch's nearest source index (nearest_idx): exact for equal and
 * doubled sizes, else min(floor(dst * r), in - 1) in float. */
inline int nearest_src(int dst, int in, int out, float r)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    return min((int)floor((float)dst * r), in - 1);
}

/* PyTorch's bilinear source coordinate (area_pixel_compute_source_index). */
inline float linear_src(int dst, float r, uint align_corners)
{
    if (align_corners) return r * (float)dst;
    float s = r * ((float)dst + 0.5f) - 0.5f;
    return s < 0.0f ? 0.0f : s;
}

/* Bilinear taps along an axis: i0 with weight l0, i0 + p with l1. */
inline void linear_taps(int dst, int in, float r, uint align_corners, int *i0, int *p, float *l0, float *l1)
{
    float s = linear_src(dst, r, align_corners);
    *i0 = (int)s;
    *p = *i0 < in - 1 ? 1 : 0;
    *l1 = s - (float)*i0;
    *l0 = 1.0f - *l1;
}

/* 2-D range: dimension 0 is ox, dimension 1 the output row (n, c, oy). */
__kernel void kernel_resize_f32(__global const float *x, __global float *y, const uint rows, const uint hi,
                                const uint wi, const uint ho, const uint wo, const float rh, const float rw,
                                const uint bilinear, const uint align_corners)
{
    uint ox = get_global_id(0);
    uint r = get_global_id(1);
    if (ox >= wo || r >= rows) return;
    int oy = (int)(r % ho);
    __global const float *src = x + (size_t)(r / ho) * hi * wi;
    float v;
    if (!bilinear) {
        v = src[(size_t)nearest_src(oy, (int)hi, (int)ho, rh) * wi + (uint)nearest_src((int)ox, (int)wi, (int)wo, rw)];
    } else {
        int y0, py, x0, px;
        float hl0, hl1, wl0, wl1;
        linear_taps(oy, (int)hi, rh, align_corners, &y0, &py, &hl0, &hl1);
        linear_taps((int)ox, (int)wi, rw, align_corners, &x0, &px, &wl0, &wl1);
        __global const float *r0 = src + (size_t)y0 * wi, *r1 = src + (size_t)(y0 + py) * wi;
        v = hl0 * (wl0 * r0[x0] + wl1 * r0[x0 + px]) + hl1 * (wl0 * r1[x0] + wl1 * r1[x0 + px]);
    }
    y[(size_t)r * wo + ox] = v;
}

/* The first output along an axis whose source index is >= i (sources are
 * non-decreasing in the output index), by bisection. */
inline int first_reader(int i, int in, int out, float r, uint bilinear, uint align_corners)
{
    int lo = 0, hi = out;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        int s = bilinear ? (int)linear_src(mid, r, align_corners) : nearest_src(mid, in, out, r);
        if (s >= i) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* The weight with which output o reads input i along an axis (0 when it
 * does not): nearest 1; bilinear the sum of its taps' weights that land
 * on i (both at the last input). */
inline float reader_weight(int o, int i, int in, int out, float r, uint bilinear, uint align_corners)
{
    if (!bilinear) return nearest_src(o, in, out, r) == i ? 1.0f : 0.0f;
    int i0, p;
    float l0, l1;
    linear_taps(o, in, r, align_corners, &i0, &p, &l0, &l1);
    return (i0 == i ? l0 : 0.0f) + (i0 + p == i ? l1 : 0.0f);
}

/* dx[n, c, iy, ix] += sum over the outputs (oy, ox) reading it of
 * w_y(oy) w_x(ox) dy[oy, ox].  The readers of row iy are those whose first
 * source row is iy (or iy - 1 for bilinear): a contiguous range. */
__kernel void kernel_resize_bwd_f32(__global const float *dy, __global float *dx, const uint total,
                                    const uint hi, const uint wi, const uint ho, const uint wo, const float rh,
                                    const float rw, const uint bilinear, const uint align_corners)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    int ix = (int)(idx % wi);
    int iy = (int)((idx / wi) % hi);
    __global const float *d = dy + (size_t)(idx / (wi * hi)) * ho * wo;
    int back = bilinear ? 1 : 0;
    int oy0 = first_reader(iy - back, (int)hi, (int)ho, rh, bilinear, align_corners);
    int ox0 = first_reader(ix - back, (int)wi, (int)wo, rw, bilinear, align_corners);
    float acc = 0.0f;
    for (int oy = oy0; oy < (int)ho; oy++) {
        int sy = bilinear ? (int)linear_src(oy, rh, align_corners) : nearest_src(oy, (int)hi, (int)ho, rh);
        if (sy > iy) break;
        float wy = reader_weight(oy, iy, (int)hi, (int)ho, rh, bilinear, align_corners);
        if (wy == 0.0f) continue;
        float row = 0.0f;
        for (int ox = ox0; ox < (int)wo; ox++) {
            int sx = bilinear ? (int)linear_src(ox, rw, align_corners) : nearest_src(ox, (int)wi, (int)wo, rw);
            if (sx > ix) break;
            row += reader_weight(ox, ix, (int)wi, (int)wo, rw, bilinear, align_corners) * d[(size_t)oy * wo + ox];
        }
        acc += wy * row;
    }
    dx[idx] += acc;
}
