/* Attribution-map kernels (host/viz/gradmap.c, contract in
 * host/viz/gradmap.h): saliency and gradient x input over channels, class
 * activation maps (Grad-CAM, Grad-CAM++, LayerCAM), bilinear resize,
 * SmoothGrad noise, integrated-gradients path points, 8-bit overlays and
 * block sums.
 *
 * Every float expression is evaluated as written, one IEEE operation at a
 * time (no contraction into fma: the pragma below); the host builds this file
 * with -cl-fp32-correctly-rounded-divide-sqrt where the device offers it.
 * Sums run in a fixed order, so a result depends only on the inputs and the
 * work-group size the host picks (a function of the device and the sizes).
 *
 * 1-D kernels return early past their item count (the host rounds the global
 * size up to the work-group).  Offsets are in floats (bytes for uchar
 * buffers); flat indexes are ulong. */
#pragma OPENCL FP_CONTRACT OFF

/* Largest work-group of the reducing kernel (its local array); the host uses
 * a power of two <= this. */
#define GM_WG 256
/* Grad-CAM++ eps, pytorch-grad-cam's (grad_cam_plusplus.py: eps = 0.000001). */
#define GM_CAMPP_EPS 1e-6f

/* Kinds (cnn_cam_kind in gradmap.h). */
#define GM_GRADCAM 0
#define GM_GRADCAMPP 1
#define GM_LAYERCAM 2
#define GM_XGRADCAM 3
#define GM_HIRESCAM 4
#define GM_WEIGHTED 5
/* XGrad-CAM eps, pytorch-grad-cam's (xgrad_cam.py: eps = 1e-7). */
#define GM_XGRAD_EPS 1e-7f

/* max(x, 0) that keeps NaN (numpy's np.maximum(x, 0)); -0 -> +0. */
inline float gm_relu(float x) { return (x > 0.0f || isnan(x)) ? x : 0.0f; }

/* out[b, p] = max_c |g[b, c, p]|; a NaN among the |g| gives NaN. */
__kernel void kernel_gm_chan_maxabs(__global const float *g, const ulong g_off, const uint c,
                                    const uint plane, const ulong n_px, __global float *out,
                                    const ulong out_off)
{
    const ulong t = get_global_id(0);
    if (t >= n_px) return;
    const ulong b = t / plane, p = t - b * plane;
    __global const float *x = g + g_off + b * c * plane + p;
    float m = fabs(x[0]);
    for (uint k = 1; k < c; k++) {
        float v = fabs(x[(ulong)k * plane]);
        m = (v > m || isnan(v)) ? v : m; /* once NaN, stays NaN */
    }
    out[out_off + t] = m;
}

/* out[b, p] = sum_c g[b, c, p] * x[b, c, p], c in order. */
__kernel void kernel_gm_chan_dot(__global const float *g, const ulong g_off,
                                 __global const float *x, const ulong x_off, const uint c,
                                 const uint plane, const ulong n_px, __global float *out,
                                 const ulong out_off)
{
    const ulong t = get_global_id(0);
    if (t >= n_px) return;
    const ulong b = t / plane, p = t - b * plane;
    const ulong base = b * c * plane + p;
    __global const float *gg = g + g_off + base;
    __global const float *xx = x + x_off + base;
    float s = 0.0f;
    for (uint k = 0; k < c; k++) {
        ulong i = (ulong)k * plane;
        float prod = gg[i] * xx[i];
        s = s + prod;
    }
    out[out_off + t] = s;
}

/* Sum of v over the work-group: a tree in local memory (get_local_size(0) a
 * power of two <= GM_WG).  Every work-item gets the sum; `l` may be reused
 * right after the call. */
inline float gm_group_sum(__local float *l, float v, uint lid, uint wg)
{
    l[lid] = v;
    for (uint s = wg / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) l[lid] = l[lid] + l[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float r = l[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* One work-group per map m = map0 + group id (map m is channel m % c of
 * image m / c): plane floats at a[a_off + m * plane] and g[g_off + m *
 * plane].  Work-item lid sums values lid, lid + wg, ... in order, then the
 * tree.  Writes weights[m]:
 *   GM_GRADCAM:   (sum_p g) / plane
 *   GM_GRADCAMPP: S = sum_p a; sum over p with g > 0 (or NaN) of
 *                 g * (g^2 / (2 g^2 + S g^3 + eps)), a zero denominator
 *                 contributing 0 (relu(g) is 0 elsewhere, so alpha is not
 *                 needed there; this is also alpha = 0 where g == 0).
 *   GM_XGRADCAM:  (sum_p g a) / (S + 1e-7)
 * (One barrier sequence for the last two: PoCL 3.1's work-group loops fail
 * to compile a third branch with its own pair of reductions.) */
__kernel void kernel_gm_cam_weights(__global const float *a, const ulong a_off,
                                    __global const float *g, const ulong g_off, const uint plane,
                                    const uint kind, const uint map0, __global float *weights)
{
    __local float l_s[GM_WG];
    const uint lid = get_local_id(0), wg = get_local_size(0);
    const uint m = map0 + get_group_id(0);
    __global const float *gm = g + g_off + (ulong)m * plane;
    float w;
    if (kind == GM_GRADCAM) {
        float s = 0.0f;
        for (uint i = lid; i < plane; i += wg) s = s + gm[i];
        s = gm_group_sum(l_s, s, lid, wg);
        w = s / (float)plane;
    } else {
        __global const float *am = a + a_off + (ulong)m * plane;
        float s = 0.0f;
        for (uint i = lid; i < plane; i += wg) s = s + am[i];
        const float S = gm_group_sum(l_s, s, lid, wg);
        float t = 0.0f;
        for (uint i = lid; i < plane; i += wg) {
            float gv = gm[i];
            if (kind == GM_XGRADCAM) {
                float ga = gv * am[i];
                t = t + ga;
            } else if (!(gv <= 0.0f)) {
                float g2 = gv * gv;
                float g3 = g2 * gv;
                float den = 2.0f * g2;
                float sg3 = S * g3;
                den = den + sg3;
                den = den + GM_CAMPP_EPS;
                if (den != 0.0f) {
                    float alpha = g2 / den;
                    float term = gv * alpha;
                    t = t + term;
                }
            }
        }
        w = gm_group_sum(l_s, t, lid, wg);
        if (kind == GM_XGRADCAM) {
            float den = S + GM_XGRAD_EPS;
            w = w / den;
        }
    }
    if (lid == 0) weights[m] = w;
}

/* One work-item per (b, p) of n_px = n * plane: out[b, p] = relu(sum_k
 * coef_k * a[b, k, p]), k in order; coef_k = weights[b * c + k], or
 * relu(g[b, k, p]) for GM_LAYERCAM, g[b, k, p] for GM_HIRESCAM (weights not
 * read).  GM_WEIGHTED does not read g (NULL). */
__kernel void kernel_gm_cam_combine(__global const float *a, const ulong a_off,
                                    __global const float *g, const ulong g_off,
                                    __global const float *weights, const uint c,
                                    const uint plane, const ulong n_px, const uint kind,
                                    __global float *out, const ulong out_off)
{
    const ulong t = get_global_id(0);
    if (t >= n_px) return;
    const ulong b = t / plane, p = t - b * plane;
    const ulong base = b * c * plane + p;
    __global const float *aa = a + a_off + base;
    float s = 0.0f;
    if (kind == GM_LAYERCAM || kind == GM_HIRESCAM) {
        __global const float *gg = g + g_off + base;
        for (uint k = 0; k < c; k++) {
            ulong i = (ulong)k * plane;
            float gv = kind == GM_LAYERCAM ? gm_relu(gg[i]) : gg[i];
            float prod = gv * aa[i];
            s = s + prod;
        }
    } else {
        __global const float *w = weights + b * c;
        for (uint k = 0; k < c; k++) {
            float prod = w[k] * aa[(ulong)k * plane];
            s = s + prod;
        }
    }
    out[out_off + t] = gm_relu(s);
}

/* Source index and weight along one axis, PyTorch's upsample_bilinear2d
 * (align_corners=False): src = scale * (dst + 0.5) - 0.5 with scale = in /
 * out (a float from the host), clamped below at 0; with corners
 * (align_corners=True, UpsamplingBilinear2d) src = scale * dst with scale =
 * (in - 1) / (out - 1); i0 = floor(src) (at most
 * in - 1), i1 = min(i0 + 1, in - 1), lambda = src - i0 clamped to [0, 1]. */
inline void gm_axis(uint dst, uint in, float scale, uint corners, uint *i0, uint *i1, float *lambda)
{
    float src;
    if (corners) {
        src = scale * (float)dst; /* align_corners=True: scale = (in - 1) / (out - 1) */
    } else {
        src = (float)dst + 0.5f;
        src = scale * src;
        src = src - 0.5f;
    }
    if (src < 0.0f) src = 0.0f;
    uint i = (uint)src; /* src >= 0: truncation is floor */
    if (i > in - 1) i = in - 1;
    float l = src - (float)i;
    *lambda = fmin(fmax(l, 0.0f), 1.0f);
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
}

/* The bilinear mix of the four corner values in PyTorch's order (height
 * outer): (1 - ly) * ((1 - lx) v00 + lx v01) + ly * ((1 - lx) v10 + lx v11),
 * one IEEE operation at a time. */
inline float gm_mix4(float v00, float v01, float v10, float v11, float ly, float lx)
{
    const float hy0 = 1.0f - ly, wx0 = 1.0f - lx;
    float t0 = wx0 * v00;
    float t0b = lx * v01;
    t0 = t0 + t0b;
    float t1 = wx0 * v10;
    float t1b = lx * v11;
    t1 = t1 + t1b;
    float o = hy0 * t0;
    float ob = ly * t1;
    return o + ob;
}

/* One work-item per output pixel t of n_px = n * H * W: map b = t / (H W).
 * out = (1 - ly) * ((1 - lx) * x00 + lx * x01) + ly * ((1 - lx) * x10 +
 * lx * x11), PyTorch's order (height outer). */
__kernel void kernel_gm_resize(__global const float *in, const ulong in_off, const uint h,
                               const uint w, const float sy, const float sx,
                               __global float *out, const ulong out_off, const uint H,
                               const uint W, const ulong n_px, const uint corners)
{
    const ulong t = get_global_id(0);
    if (t >= n_px) return;
    const ulong HW = (ulong)H * W;
    const ulong b = t / HW, r = t - b * HW;
    const uint y = (uint)(r / W), x = (uint)(r - (ulong)y * W);
    uint y0, y1, x0, x1;
    float ly, lx;
    gm_axis(y, h, sy, corners, &y0, &y1, &ly);
    gm_axis(x, w, sx, corners, &x0, &x1, &lx);
    __global const float *m = in + in_off + b * h * w;
    __global const float *r0 = m + (ulong)y0 * w, *r1 = m + (ulong)y1 * w;
    out[out_off + t] = gm_mix4(r0[x0], r0[x1], r1[x0], r1[x1], ly, lx);
}

/* out[i] = a[i] * b[i] */
__kernel void kernel_gm_mul(__global const float *a, const ulong a_off, __global const float *b,
                            const ulong b_off, __global float *out, const ulong out_off,
                            const ulong n)
{
    const ulong i = get_global_id(0);
    if (i >= n) return;
    out[out_off + i] = a[a_off + i] * b[b_off + i];
}

/* dst[i] = dst[i] * keep + src[i] * scale; keep == 0 does not read dst (so a
 * NaN left there does not survive), as BLAS does for beta == 0. */
__kernel void kernel_gm_axpby(__global const float *src, const ulong src_off, const float scale,
                              __global float *dst, const ulong dst_off, const float keep,
                              const ulong n)
{
    const ulong i = get_global_id(0);
    if (i >= n) return;
    float v = src[src_off + i] * scale;
    if (keep != 0.0f) {
        float d = dst[dst_off + i] * keep;
        v = d + v;
    }
    dst[dst_off + i] = v;
}

/* Philox2x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011): counter (c0, c1), key k. */
inline uint2 gm_philox2x32_10(uint c0, uint c1, uint k)
{
    for (int r = 0; r < 10; r++) {
        uint hi = mul_hi(0xD256D193u, c0);
        uint lo = 0xD256D193u * c0;
        c0 = hi ^ k ^ c1;
        c1 = lo;
        k += 0x9E3779B9u;
    }
    return (uint2)(c0, c1);
}

/* Standard normal deviate number `i` of copy `k` under `seed`: Philox of
 * counter (i, k) and key seed gives two words; u = ((word >> 8) + 1) / 2^24
 * (in (0, 1], exact in float); z = sqrt(-2 log u1) * cospi(2 u2). */
inline float gm_normal(uint seed, uint k, uint i)
{
    uint2 r = gm_philox2x32_10(i, k, seed);
    float u1 = (float)((r.x >> 8) + 1u) * 0x1.0p-24f;
    float u2 = (float)((r.y >> 8) + 1u) * 0x1.0p-24f;
    float rad = -2.0f * log(u1);
    rad = sqrt(rad);
    float ang = cospi(2.0f * u2);
    return rad * ang;
}

/* One work-item per element t of copies * len: copy k = t / len, element
 * i = t % len: out[out_off + t] = x[x_off + i] + sigma * normal(seed, k0 + k, i). */
__kernel void kernel_gm_noise(__global const float *x, const ulong x_off, const ulong len,
                              const uint k0, const float sigma, const uint seed,
                              __global float *out, const ulong out_off, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong k = t / len, i = t - k * len;
    float z = gm_normal(seed, k0 + (uint)k, (uint)i);
    float d = sigma * z;
    out[out_off + t] = x[x_off + i] + d;
}

/* One work-item per element t of copies * len: alpha = ((float)(k0 + k) +
 * 0.5) / steps; out = base + alpha * (x - base). */
__kernel void kernel_gm_path(__global const float *x, const ulong x_off,
                             __global const float *base, const ulong base_off, const ulong len,
                             const uint k0, const uint steps, __global float *out,
                             const ulong out_off, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong k = t / len, i = t - k * len;
    float alpha = (float)(k0 + (uint)k) + 0.5f;
    alpha = alpha / (float)steps;
    float b = base[base_off + i];
    float d = x[x_off + i] - b;
    d = alpha * d;
    out[out_off + t] = b + d;
}

/* One work-item per pixel: for each of the 3 components, v = (1 - alpha) *
 * img + alpha * heat in float (img's one component for every channel when
 * c_img == 1), out = (uchar)clamp(floor(v + 0.5), 0, 255).  All inputs are
 * read before the pixel is written (out may be img or heat). */
__kernel void kernel_gm_overlay(__global const uchar *img, const uint c_img,
                                __global const uchar *heat, const ulong n_px, const float alpha,
                                __global uchar *out)
{
    const ulong p = get_global_id(0);
    if (p >= n_px) return;
    const float keep = 1.0f - alpha;
    float iv[3], hv[3];
    for (uint ch = 0; ch < 3; ch++) {
        iv[ch] = (float)img[c_img == 3 ? p * 3 + ch : p];
        hv[ch] = (float)heat[p * 3 + ch];
    }
    for (uint ch = 0; ch < 3; ch++) {
        float v = keep * iv[ch];
        float h = alpha * hv[ch];
        v = v + h;
        v = floor(v + 0.5f);
        v = fmin(fmax(v, 0.0f), 255.0f);
        out[p * 3 + ch] = (uchar)v;
    }
}

/* One work-item per i < len: s = sum_k src[src_off + k * len + i], k in
 * order; out[out_off + i] = s * scale (+ the old out, added after, when
 * accumulate). */
__kernel void kernel_gm_sum_blocks(__global const float *src, const ulong src_off,
                                   const uint n_sum, const ulong len, const float scale,
                                   const uint accumulate, __global float *out,
                                   const ulong out_off)
{
    const ulong i = get_global_id(0);
    if (i >= len) return;
    __global const float *s0 = src + src_off + i;
    float s = s0[0];
    for (uint k = 1; k < n_sum; k++) s = s + s0[(ulong)k * len];
    s = s * scale;
    if (accumulate) s = out[out_off + i] + s;
    out[out_off + i] = s;
}

/* Occlusion: one work-item per element t of copies * c * h * w.  Copy k
 * covers window wi = w0 + k (row-major over ny x nx positions; position i
 * on an axis starts at min(i * stride, side - window)) with base. */
__kernel void kernel_gm_occlude(__global const float *x, const ulong x_off,
                                __global const float *base, const ulong base_off, const uint h,
                                const uint w, const ulong len, const uint window, const uint stride,
                                const uint nx, const uint w0, __global float *out, const ulong out_off,
                                const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong k = t / len, i = t - k * len;
    const uint p = (uint)(i % ((ulong)h * w));
    const uint y = p / w, xx = p - y * w;
    const uint wi = w0 + (uint)k, iy = wi / nx, ix = wi - iy * nx;
    const uint y0 = min(iy * stride, h - window), x0 = min(ix * stride, w - window);
    const bool covered = y >= y0 && y < y0 + window && xx >= x0 && xx < x0 + window;
    out[out_off + t] = covered ? base[base_off + i] : x[x_off + i];
}

/* One work-item per pixel: the mean of d over the windows that cover it,
 * summed in window order. */
__kernel void kernel_gm_occlusion_map(__global const float *d, const ulong d_off, const uint h,
                                      const uint w, const uint window, const uint stride,
                                      const uint ny, const uint nx, __global float *out,
                                      const ulong out_off)
{
    const uint p = get_global_id(0);
    if (p >= h * w) return;
    const uint y = p / w, x = p - y * w;
    float sum = 0.0f;
    uint cnt = 0;
    for (uint iy = 0; iy < ny; iy++) {
        const uint y0 = min(iy * stride, h - window);
        if (y < y0 || y >= y0 + window) continue;
        for (uint ix = 0; ix < nx; ix++) {
            const uint x0 = min(ix * stride, w - window);
            if (x < x0 || x >= x0 + window) continue;
            sum += d[d_off + (ulong)iy * nx + ix];
            cnt++;
        }
    }
    out[out_off + p] = cnt ? sum / (float)cnt : 0.0f;
}

/* Separable Gaussian blur, one direction per launch (dir 0: along rows, 1:
 * along columns); one work-item per element of c planes [h, w]; taps
 * exp(-j^2 / (2 sigma^2)) for |j| <= radius, normalised to sum 1, edge
 * pixels repeated; summed from j = -radius up. */
__kernel void kernel_gm_blur(__global const float *in, const ulong in_off, const uint h, const uint w,
                             const ulong n, const float sigma, const int radius, const uint dir,
                             __global float *out, const ulong out_off)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong plane = (ulong)h * w, c = t / plane;
    const uint p = (uint)(t - c * plane), y = p / w, x = p - y * w;
    const ulong base = in_off + c * plane;
    float norm = 0.0f, sum = 0.0f;
    for (int j = -radius; j <= radius; j++) {
        const float wt = exp(-(float)(j * j) / (2.0f * sigma * sigma));
        int yy = (int)y, xx = (int)x;
        if (dir) yy = clamp(yy + j, 0, (int)h - 1);
        else xx = clamp(xx + j, 0, (int)w - 1);
        sum += wt * in[base + (ulong)yy * w + (ulong)xx];
        norm += wt;
    }
    out[out_off + t] = sum / norm;
}

/* Deletion / insertion inputs: one work-item per element t of copies * c *
 * plane; copy k is step s = s0 + k of `steps`: the first
 * floor(s * plane / steps) pixels by rank take a, the others b. */
__kernel void kernel_gm_curve(__global const float *a, const ulong a_off, __global const float *b,
                              const ulong b_off, __global const uint *rank, const uint plane,
                              const ulong len, const uint s0, const uint steps, __global float *out,
                              const ulong out_off, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong k = t / len, i = t - k * len;
    const ulong count = (ulong)(s0 + (uint)k) * plane / steps;
    const uint p = (uint)(i % plane);
    out[out_off + t] = rank[p] < count ? a[a_off + i] : b[b_off + i];
}

/* ---- the CAM family's own passes (host/pipeline/cams.c) ---- */

/* Score-CAM inputs: one work-item per element t of m * len (len = c *
 * plane): copy j = t / len, element i, pixel p = i % plane:
 * out = x[i] * ((up[j, p] - mn_j) / ((mx_j - mn_j) + 1e-8)), mn_j and mx_j
 * at st[j * stride + i_min], st[j * stride + i_max] (pytorch-grad-cam's
 * ScoreCAM order of operations). */
__kernel void kernel_gm_score_inputs(__global const float *x, const ulong x_off, const ulong len,
                                     const uint plane, __global const float *up,
                                     __global const float *st, const uint stride, const uint i_min,
                                     const uint i_max, __global float *out, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong j = t / len, i = t - j * len;
    const ulong p = i % plane;
    const float mn = st[j * stride + i_min], mx = st[j * stride + i_max];
    float d = up[j * plane + p] - mn;
    float r = mx - mn;
    r = r + 1e-8f;
    float v = d / r;
    out[t] = x[x_off + i] * v;
}

/* Ablation: one work-item per element t of m * plane: channel k0 + j of
 * image j of buf ([m, c, plane] at off) set to 0, j = t / plane. */
__kernel void kernel_gm_ablate(__global float *buf, const ulong off, const uint c, const uint plane,
                               const uint k0, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong j = t / plane, p = t - j * plane;
    buf[off + (j * c + k0 + j) * plane + p] = 0.0f;
}

/* out[i] = |a[i] * b[k]| (per_channel: k = i / plane) or |a[i] * b[i]|, one
 * work-item per element of n = c * plane (FullGrad's bias and input terms). */
__kernel void kernel_gm_absmul(__global const float *a, const ulong a_off, __global const float *b,
                               const ulong b_off, const uint plane, const uint per_channel,
                               __global float *out, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const float bv = per_channel ? b[b_off + t / plane] : b[b_off + t];
    out[t] = fabs(a[a_off + t] * bv);
}

/* FullGrad's sum: one work-item per output pixel (y, x) of H x W:
 * out (+)= sum over maps k of (bilinear(t_k)(y, x) - mn_k) / (1e-7 + (mx_k -
 * mn_k)), t: c maps of h x w, bilinear as kernel_gm_resize (align_corners
 * False); mn_k, mx_k from st as in kernel_gm_score_inputs.  k in order. */
__kernel void kernel_gm_fullgrad_acc(__global const float *t, const ulong t_off, const uint c, const uint h,
                                     const uint w, const float sy, const float sx,
                                     __global const float *st, const uint stride, const uint i_min,
                                     const uint i_max, __global float *out, const ulong out_off,
                                     const uint H, const uint W, const uint accumulate)
{
    const ulong q = get_global_id(0);
    if (q >= (ulong)H * W) return;
    const uint y = (uint)(q / W), x = (uint)(q - (ulong)y * W);
    uint y0, y1, x0, x1;
    float ly, lx;
    gm_axis(y, h, sy, 0, &y0, &y1, &ly);
    gm_axis(x, w, sx, 0, &x0, &x1, &lx);
    float s = accumulate ? out[out_off + q] : 0.0f;
    for (uint k = 0; k < c; k++) {
        __global const float *m = t + t_off + (ulong)k * h * w;
        __global const float *r0 = m + (ulong)y0 * w, *r1 = m + (ulong)y1 * w;
        float o = gm_mix4(r0[x0], r0[x1], r1[x0], r1[x1], ly, lx);
        const float mn = st[k * stride + i_min], mx = st[k * stride + i_max];
        float d = o - mn;
        float r = mx - mn;
        r = 1e-7f + r;
        d = d / r;
        s = s + d;
    }
    out[out_off + q] = s;
}

/* ---- RISE (host/pipeline/cams.c) ---- */

/* RISE, step 1: one work-item per entry e of m * (s * s + 2): for mask i =
 * i0 + e / (s s + 2), entry q < s s is cell q's bit (1 when u <= keep, u =
 * ((word0 >> 8) + 1) / 2^24 of Philox2x32-10 of counter (q, i) and key
 * seed); entries s s and s s + 1 are the shift (dy, dx) from counter
 * (0xFFFFFFFF, i): dy = ((word0 >> 8) * ch) >> 24 < ch, dx the same of
 * word1 and cw (ch = ceil(H / s), cw = ceil(W / s)). */
__kernel void kernel_gm_rise_grid(const uint seed, const uint s, const uint ch, const uint cw,
                                  const float keep, const uint i0, __global float *grid, const ulong n)
{
    const ulong e = get_global_id(0);
    if (e >= n) return;
    const uint per = s * s + 2;
    const uint i = i0 + (uint)(e / per), q = (uint)(e % per);
    if (q < s * s) {
        uint2 g = gm_philox2x32_10(q, i, seed);
        float u = (float)((g.x >> 8) + 1u) * 0x1.0p-24f;
        grid[e] = u <= keep ? 1.0f : 0.0f;
    } else {
        uint2 sh = gm_philox2x32_10(0xFFFFFFFFu, i, seed);
        grid[e] = q == s * s ? (float)(((ulong)(sh.x >> 8) * ch) >> 24) : (float)(((ulong)(sh.y >> 8) * cw) >> 24);
    }
}

/* RISE, step 2: one work-item per element t of m * H * W: mask j = t /
 * (H W), pixel (y, x): the grid of step 1 upsampled bilinearly
 * (align_corners=False, edges clamped) to (s + 1) ch x (s + 1) cw, scale
 * sy = s / ((s + 1) ch) from the host, read at (y + dy, x + dx). */
__kernel void kernel_gm_rise_masks(__global const float *grid, const uint s, const float sy,
                                   const float sx, const uint H, const uint W,
                                   __global float *out, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong HW = (ulong)H * W;
    const ulong j = t / HW, r = t - j * HW;
    const uint y = (uint)(r / W), x = (uint)(r - (ulong)y * W);
    __global const float *g = grid + j * (s * s + 2);
    const uint dy = (uint)g[s * s], dx = (uint)g[s * s + 1];
    uint y0, y1, x0, x1;
    float ly, lx;
    gm_axis(y + dy, s, sy, 0, &y0, &y1, &ly);
    gm_axis(x + dx, s, sx, 0, &x0, &x1, &lx);
    out[t] = gm_mix4(g[y0 * s + x0], g[y0 * s + x1], g[y1 * s + x0], g[y1 * s + x1], ly, lx);
}

/* out[j, c, p] = x[x_off + c * plane + p] * mk[j, p], one work-item per
 * element of m * len (len = c * plane). */
__kernel void kernel_gm_mask_mul(__global const float *x, const ulong x_off, const ulong len,
                                 const uint plane, __global const float *mk,
                                 __global float *out, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong j = t / len, i = t - j * len;
    out[t] = x[x_off + i] * mk[j * plane + i % plane];
}

/* out[p] (+)= sum over j < m of w[j] * mk[j, p], j in order; one work-item
 * per pixel p of plane. */
__kernel void kernel_gm_weighted_sum(__global const float *mk, const uint m, const uint plane,
                                     __global const float *w, __global float *out,
                                     const ulong out_off, const uint accumulate)
{
    const uint p = get_global_id(0);
    if (p >= plane) return;
    float s = accumulate ? out[out_off + p] : 0.0f;
    for (uint j = 0; j < m; j++) {
        float v = w[j] * mk[(ulong)j * plane + p];
        s = s + v;
    }
    out[out_off + p] = s;
}

/* ---- LIME and KernelSHAP (host/pipeline/perturb.c) ---- */

/* One work-item per element t of m * len (len = c * plane): copy j = t /
 * len, element i, pixel p = i % plane: out = x[i] where sample j keeps
 * segment seg[p] (z[j * nseg + seg[p]] != 0), else base[i]. */
__kernel void kernel_gm_segment_mix(__global const float *x, const ulong x_off,
                                    __global const float *base, const ulong len, const uint plane,
                                    __global const int *seg, __global const float *z,
                                    const uint nseg, __global float *out, const ulong n)
{
    const ulong t = get_global_id(0);
    if (t >= n) return;
    const ulong j = t / len, i = t - j * len;
    const int s = seg[i % plane];
    out[t] = z[j * nseg + (uint)s] != 0.0f ? x[x_off + i] : base[i];
}
