/* Backward ops for the gradient maps (host/ops/grad.c).  Every kernel but
 * max pooling's is in the "gather" form: one work-item per element of dx
 * (or per block of dx) sums, in a fixed order, everything that reaches it
 * and ADDS the sum to dx.  No atomics, so results are deterministic.
 * Every kernel returns early past its item count because the host rounds
 * the global size up. */

/* dx[i] += dy[i] */
__kernel void kernel_grad_accum_f32(__global const float *dy, __global float *dx, const uint n)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    dx[i] += dy[i];
}

/* Activation backward; act (cnn_act) and mode (cnn_grad_mode) are run-time
 * arguments: the branch is uniform over the launch and the op is bound by
 * memory, so one program serves every variant.  Selects rather than
 * products by 0/1, like PyTorch's threshold_backward, so an infinite dy
 * blocked by the derivative gives 0, not NaN.  The tests that block are
 * those of PyTorch, false for NaN: relu and relu6 pass dy at a NaN input
 * (threshold_backward, hardtanh_backward), leaky_relu scales it by the
 * slope; the deconvnet and guided rules keep a NaN dy (relu(dy)). */
__kernel void kernel_grad_act_f32(__global const float *x, __global const float *y,
                                  __global const float *dy, __global float *dx, const uint n,
                                  const uint act, const uint mode, const float slope)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    float g = dy[i];
    float d;
    if (act >= 1 && act <= 3) {
        /* relu family: 1 relu, 2 relu6, 3 leaky_relu */
        if (mode == 2) {
            d = g <= 0.0f ? 0.0f : g;
        } else {
            float v = x[i];
            if (act == 1)
                d = v <= 0.0f ? 0.0f : g;
            else if (act == 2)
                d = (v <= 0.0f || v >= 6.0f) ? 0.0f : g;
            else
                d = v > 0.0f ? g : g * slope;
            if (mode == 1 && g <= 0.0f) d = 0.0f;
        }
    } else if (act == 4) {
        float v = y[i];
        d = g * (1.0f - v) * v; /* PyTorch's sigmoid_backward order */
    } else if (act == 5) {
        float v = y[i];
        d = g * (1.0f - v * v);
    } else if (act == 6) {
        float v = x[i];
        d = v < -3.0f ? 0.0f : v <= 3.0f ? g * (v / 3.0f + 0.5f) : g;
    } else {
        d = g;
    }
    dx[i] += d;
}

/* dx[r][q] += dy[r][q] * scale[r % channels] for the rows r = (b, c) of
 * `plane` floats.  2-D range: dimension 0 is q, dimension 1 is r, so no
 * item divides (one division per element ran ResNet-18's bn1 backward,
 * 0.8 M elements, in 1.5 ms). */
__kernel void kernel_grad_scale_f32(__global const float *dy, __global const float *scale,
                                    __global float *dx, const uint rows, const uint plane,
                                    const uint channels)
{
    uint q = get_global_id(0);
    uint r = get_global_id(1);
    if (q >= plane || r >= rows) return;
    size_t i = (size_t)r * plane + q;
    dx[i] += dy[i] * scale[r % channels];
}

/* ---- convolution backward-data ---- */

/* col2im in gather form, ADDING into dx: col is the [c*kh*kw, ho*wo] matrix
 * W_g^T dY_g of one image and group, dx + dx_off its c input channels.
 * Input pixel (y, x) gets col[(ch*kh + i)*kw + j, oy*wo + ox] for every tap
 * (i, j) with oy*sh - pt + i*dh == y and ox*sw - pl + j*dw == x inside the
 * output; taps in increasing (i, j) order. */
__kernel void kernel_col2im_add_f32(__global const float *col, __global float *dx,
                                    const uint dx_off, const uint c, const uint hi, const uint wi,
                                    const uint ho, const uint wo, const uint kh, const uint kw,
                                    const uint sh, const uint sw, const uint dh, const uint dw,
                                    const uint pt, const uint pl)
{
    uint idx = get_global_id(0);
    uint plane = hi * wi;
    if (idx >= c * plane) return;
    uint xx = idx % wi;
    uint yy = (idx / wi) % hi;
    uint ch = idx / plane;
    uint p = ho * wo;
    __global const float *cc = col + (size_t)ch * kh * kw * p;
    float acc = 0.0f;
    for (uint i = 0; i < kh; i++) {
        int ty = (int)(yy + pt) - (int)(i * dh);
        if (ty < 0) break; /* decreases with i */
        uint oy = (uint)ty;
        if (sh != 1) { /* no integer division at stride 1 */
            if (oy % sh) continue;
            oy /= sh;
        }
        if (oy >= ho) continue;
        for (uint j = 0; j < kw; j++) {
            int tx = (int)(xx + pl) - (int)(j * dw);
            if (tx < 0) break;
            uint ox = (uint)tx;
            if (sw != 1) {
                if (ox % sw) continue;
                ox /= sw;
            }
            if (ox >= wo) continue;
            acc += cc[(i * kw + j) * p + oy * wo + ox];
        }
    }
    dx[dx_off + idx] += acc;
}

/* Direct backward-data for depthwise and other thin groups (the shapes the
 * forward runs with kernel_conv_direct_f32), one work-item per dx element
 * of the whole batch: dx[b, c, y, x] += sum over the outputs o of c's group
 * and the taps (i, j) reaching (y, x) of w[o, c % cig, i, j] * dy[b, o, oy, ox]. */
__kernel void kernel_conv_bwd_direct_f32(__global const float *dy, __global const float *w,
                                         __global float *dx, const uint n, const uint ci,
                                         const uint hi, const uint wi, const uint co,
                                         const uint ho, const uint wo, const uint kh,
                                         const uint kw, const uint sh, const uint sw,
                                         const uint dh, const uint dw, const uint pt,
                                         const uint pl, const uint groups)
{
    uint idx = get_global_id(0);
    uint total = n * ci * hi * wi;
    if (idx >= total) return;
    uint xx = idx % wi;
    uint yy = (idx / wi) % hi;
    uint c = (idx / (wi * hi)) % ci;
    uint b = idx / (wi * hi * ci);
    uint cig = ci / groups;
    uint cog = co / groups;
    uint g = c / cig;
    uint cl = c % cig;
    float acc = 0.0f;
    for (uint i = 0; i < kh; i++) {
        int ty = (int)(yy + pt) - (int)(i * dh);
        if (ty < 0) break;
        uint oy = (uint)ty;
        if (sh != 1) { /* no integer division at stride 1 */
            if (oy % sh) continue;
            oy /= sh;
        }
        if (oy >= ho) continue;
        for (uint j = 0; j < kw; j++) {
            int tx = (int)(xx + pl) - (int)(j * dw);
            if (tx < 0) break;
            uint ox = (uint)tx;
            if (sw != 1) {
                if (ox % sw) continue;
                ox /= sw;
            }
            if (ox >= wo) continue;
            __global const float *dyp = dy + ((size_t)b * co + g * cog) * ho * wo + oy * wo + ox;
            __global const float *wp = w + ((size_t)(g * cog) * cig + cl) * kh * kw + i * kw + j;
            for (uint o = 0; o < cog; o++)
                acc += wp[(size_t)o * cig * kh * kw] * dyp[(size_t)o * ho * wo];
        }
    }
    dx[idx] += acc;
}

/* ---- linear backward at small batch ---- */

/* dx[b, :] += dy[b, :] W for W [out, in], bound by reading W once.  A
 * work-group of LIN_WG items covers LIN_CB * 16 columns: item (r, cb) sums
 * the rows r, r + LIN_RL, ... of its 16 columns with a float16 (one cache
 * line per row on a CPU), then the LIN_RL partial sums of each column are
 * added in order of r.  Batch index = group id 1. */
#define LIN_WG 64
#define LIN_CB 4
#define LIN_RL (LIN_WG / LIN_CB)

__kernel __attribute__((reqd_work_group_size(LIN_WG, 1, 1)))
void kernel_linear_bwd_f32(__global const float *dy, __global const float *w,
                           __global float *dx, const uint in, const uint out)
{
    __local float16 part[LIN_WG];
    uint lid = get_local_id(0);
    uint cb = lid % LIN_CB, r = lid / LIN_CB;
    uint b = get_group_id(1);
    uint c0 = (get_group_id(0) * LIN_CB + cb) * 16;
    __global const float *dyb = dy + (size_t)b * out;
    float16 acc = (float16)(0.0f);
    if (c0 + 16 <= in) {
        for (uint o = r; o < out; o += LIN_RL)
            acc += dyb[o] * vload16(0, w + (size_t)o * in + c0);
    } else if (c0 < in) {
        float t[16];
        for (uint j = 0; j < 16; j++) t[j] = 0.0f;
        for (uint o = r; o < out; o += LIN_RL) {
            float d = dyb[o];
            __global const float *wr = w + (size_t)o * in;
            for (uint j = 0; c0 + j < in; j++) t[j] += d * wr[c0 + j];
        }
        acc = vload16(0, t);
    }
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (r == 0 && c0 < in) {
        float16 s = part[cb];
        for (uint k = 1; k < LIN_RL; k++) s += part[k * LIN_CB + cb];
        __global float *dxb = dx + (size_t)b * in;
        if (c0 + 16 <= in) {
            vstore16(vload16(0, dxb + c0) + s, 0, dxb + c0);
        } else {
            float t[16];
            vstore16(s, 0, t);
            for (uint j = 0; c0 + j < in; j++) dxb[c0 + j] += t[j];
        }
    }
}

/* ---- pooling ---- */

/* The window geometry of pool.cl's POOL_GEOM_ARGS, over the input elements
 * (total = n * c * hi * wi). */
#define GRAD_POOL_ARGS                                                                       \
    const uint total, const uint hi, const uint wi, const uint ho, const uint wo,            \
        const uint kh, const uint kw, const uint sh, const uint sw, const uint dh,           \
        const uint dw, const uint pt, const uint pl

/* Max pool backward, the one scatter of this file: one work-item per
 * output of a phase, the outputs (oy, ox) with oy % py == ay and
 * ox % px == ax, where py, px are the least steps at which two windows no
 * longer overlap (py * sh >= (kh - 1) * dh + 1): no two items of a launch
 * write the same dx element, so no atomics are needed and the result is
 * deterministic.  Each item scans its window as the forward and PyTorch's
 * CPU kernel do (index from the first tap inside the input, replaced when
 * `v > m || isnan(v)`: the first tap equal to the maximum, the last NaN)
 * and adds dy[o] to that tap.  The gather form (every input re-scanning
 * each window that may have picked it) ran ResNet-18's stem pool backward
 * in 9.4 ms, this one in 4.0-4.5 (launches of one index add alone: 1.5).
 * 2-D range: dimension 0 the phase column qx, dimension 1 (nc, qy). */
__kernel void kernel_maxpool_bwd_f32(__global const float *x, __global const float *dy,
                                     __global float *dx, const uint rows, const uint qh,
                                     const uint qw, const uint hi, const uint wi, const uint ho,
                                     const uint wo, const uint kh, const uint kw, const uint sh,
                                     const uint sw, const uint dh, const uint dw, const uint pt,
                                     const uint pl, const uint py, const uint px, const uint ay,
                                     const uint ax)
{
    uint qx = get_global_id(0);
    uint g = get_global_id(1);
    if (qx >= qw || g >= rows) return;
    uint qy = g % qh;
    uint nc = g / qh;
    uint oy = qy * py + ay, ox = qx * px + ax;
    if (oy >= ho || ox >= wo) return;
    __global const float *xp = x + (size_t)nc * hi * wi;
    int y0 = (int)(oy * sh) - (int)pt, x0 = (int)(ox * sw) - (int)pl;
    int arg = -1;
    float m = -INFINITY;
    for (uint i = 0; i < kh; i++) {
        int yy = y0 + (int)(i * dh);
        if (yy < 0 || yy >= (int)hi) continue;
        for (uint j = 0; j < kw; j++) {
            int xx = x0 + (int)(j * dw);
            if (xx < 0 || xx >= (int)wi) continue;
            int p = yy * (int)wi + xx;
            float v = xp[p];
            if (arg < 0) arg = p;
            if (v > m || isnan(v)) {
                m = v;
                arg = p;
            }
        }
    }
    if (arg >= 0) dx[(size_t)nc * hi * wi + (uint)arg] += dy[((size_t)nc * ho + oy) * wo + ox];
}

/* Taps of a (dilated) window along one axis that fall inside [lo, hi). */
inline int grad_taps_inside(int start, int k, int d, int lo, int hi)
{
    int n = 0;
    for (int i = 0; i < k; i++) {
        int p = start + i * d;
        n += (p >= lo && p < hi);
    }
    return n;
}

/* Avg pool backward: each window holding the input position passes
 * dy[o] / divisor, the divisor computed exactly as kernel_avgpool_f32 does. */
__kernel void kernel_avgpool_bwd_f32(__global const float *dy, __global float *dx,
                                     GRAD_POOL_ARGS, const uint pb, const uint pr,
                                     const uint count_include_pad)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint xx = idx % wi;
    uint yy = (idx / wi) % hi;
    uint nc = idx / (wi * hi);
    __global const float *dyp = dy + (size_t)nc * ho * wo;
    float acc = 0.0f;
    for (uint i = 0; i < kh; i++) {
        int ty = (int)(yy + pt) - (int)(i * dh);
        if (ty < 0) break;
        uint oy = (uint)ty;
        if (sh != 1) { /* no integer division at stride 1 */
            if (oy % sh) continue;
            oy /= sh;
        }
        if (oy >= ho) continue;
        int y0 = (int)(oy * sh) - (int)pt;
        int ny = count_include_pad
                     ? grad_taps_inside(y0, (int)kh, (int)dh, -(int)pt, (int)(hi + pb))
                     : grad_taps_inside(y0, (int)kh, (int)dh, 0, (int)hi);
        for (uint j = 0; j < kw; j++) {
            int tx = (int)(xx + pl) - (int)(j * dw);
            if (tx < 0) break;
            uint ox = (uint)tx;
            if (sw != 1) {
                if (ox % sw) continue;
                ox /= sw;
            }
            if (ox >= wo) continue;
            int x0 = (int)(ox * sw) - (int)pl;
            int nx = count_include_pad
                         ? grad_taps_inside(x0, (int)kw, (int)dw, -(int)pl, (int)(wi + pr))
                         : grad_taps_inside(x0, (int)kw, (int)dw, 0, (int)wi);
            acc += dyp[oy * wo + ox] / (float)(ny * nx);
        }
    }
    dx[idx] += acc;
}

/* Adaptive avg pool backward: output row oy covers input rows
 * [floor(oy*hi/ho), ceil((oy+1)*hi/ho)); the rows holding yy are
 * oy in [floor(yy*ho/hi), ceil((yy+1)*ho/hi)), checked again exactly. */
__kernel void kernel_adaptive_avgpool_bwd_f32(__global const float *dy, __global float *dx,
                                              const uint total, const uint hi, const uint wi,
                                              const uint ho, const uint wo)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint xx = idx % wi;
    uint yy = (idx / wi) % hi;
    uint nc = idx / (wi * hi);
    __global const float *dyp = dy + (size_t)nc * ho * wo;
    uint oy0 = yy * ho / hi, oy1 = min(((yy + 1) * ho + hi - 1) / hi, ho);
    uint ox0 = xx * wo / wi, ox1 = min(((xx + 1) * wo + wi - 1) / wi, wo);
    float acc = 0.0f;
    for (uint oy = oy0; oy < oy1; oy++) {
        uint ys = oy * hi / ho, ye = ((oy + 1) * hi + ho - 1) / ho;
        if (yy < ys || yy >= ye) continue;
        for (uint ox = ox0; ox < ox1; ox++) {
            uint xs = ox * wi / wo, xe = ((ox + 1) * wi + wo - 1) / wo;
            if (xx < xs || xx >= xe) continue;
            acc += dyp[oy * wo + ox] / (float)((ye - ys) * (xe - xs));
        }
    }
    dx[idx] += acc;
}

/* Softmax over channels backward, one work-item per (n, position):
 * dx_c += y_c * (dy_c - sum_k y_k dy_k). */
__kernel void kernel_softmax_bwd_f32(__global const float *y, __global const float *dy,
                                     __global float *dx, const uint total, const uint c,
                                     const uint plane)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    size_t base = (size_t)(idx / plane) * c * plane + idx % plane;
    float s = 0.0f;
    for (uint i = 0; i < c; i++) s += y[base + (size_t)i * plane] * dy[base + (size_t)i * plane];
    for (uint i = 0; i < c; i++) {
        size_t k = base + (size_t)i * plane;
        dx[k] += y[k] * (dy[k] - s);
    }
}

/* Concat backward for one input: dx[idx] += dy[b, c0 + ch, p] where
 * block = cx * plane is one image of dx. */
__kernel void kernel_concat_bwd_f32(__global const float *dy, __global float *dx, const uint total,
                                    const uint block, const uint ystride, const uint yoffset)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    dx[idx] += dy[(idx / block) * ystride + yoffset + idx % block];
}

/* LRN backward (PyTorch LocalResponseNorm), one work-item per element c of
 * dx: with d_i = k + alpha/size * sum_{j in W(i)} x_j^2 over the window
 * W(i) = [i - size/2, i + (size-1)/2] (zero padding) and y_i = x_i d_i^-beta,
 *   dx_c += dy_c d_c^-beta
 *           - 2 alpha beta / size * x_c * sum_{i : c in W(i)} dy_i x_i d_i^(-beta-1),
 * the channels i with c in W(i) being [c - (size-1)/2, c + size/2]. */
inline float lrn_denom(__global const float *x, uint base, uint plane, int ch, int c, uint size, float alpha,
                       float k)
{
    int lo = max(ch - (int)(size / 2), 0), hi = min(ch + (int)((size - 1) / 2), c - 1);
    float s = 0.0f;
    for (int i = lo; i <= hi; i++) {
        float v = x[base + (uint)i * plane];
        s += v * v;
    }
    return k + alpha / (float)size * s;
}

__kernel void kernel_lrn_bwd_f32(__global const float *x, __global const float *dy, __global float *dx,
                                 const uint total, const uint c, const uint plane, const uint size,
                                 const float alpha, const float beta, const float k)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    int ch = (int)((idx / plane) % c);
    uint base = idx - (uint)ch * plane;
    float d = lrn_denom(x, base, plane, ch, (int)c, size, alpha, k);
    float g = dy[idx] * pow(d, -beta);
    int lo = max(ch - (int)((size - 1) / 2), 0), hi = min(ch + (int)(size / 2), (int)c - 1);
    float s = 0.0f;
    for (int i = lo; i <= hi; i++) {
        uint j = base + (uint)i * plane;
        float di = lrn_denom(x, base, plane, i, (int)c, size, alpha, k);
        s += dy[j] * x[j] * pow(di, -beta - 1.0f);
    }
    dx[idx] += g - 2.0f * alpha * beta / (float)size * x[idx] * s;
}

/* ---- clamp, broadcasting binary ops, global max pool ---- */

/* y = clamp(a x + b, lo, hi): dx += dy * a where the clamp passes; the
 * bounds themselves pass when `inclusive` (torch.clamp's backward) and
 * block otherwise (F.hardsigmoid's).  NaN blocks (its tests are false), a
 * select so that a blocked infinite dy gives 0. */
__kernel void kernel_clamp_bwd_f32(__global const float *x, __global const float *dy, __global float *dx,
                                   const uint n, const float a, const float b, const float lo, const float hi,
                                   const uint inclusive)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    float v = a * x[i] + b;
    bool pass = inclusive ? (v >= lo && v <= hi) : (v > lo && v < hi);
    dx[i] += pass ? dy[i] * a : 0.0f;
}

/* Gradient of one operand (`which`: 0 for a, 1 for b) of y = a op b with
 * broadcasting (kernel_binary_bcast_f32's strides sa, sb; scalar_side as
 * there).  One work-item per element (n, c, h, w) of that operand, of
 * shape [tc, th, tw] per image: it sums, in a fixed order, over the
 * outputs it was broadcast to (the whole output axis where its size is 1)
 *   add: dy   sub: +-dy   mul: dy * other   div: dy / b, -dy * a / (b * b)
 * (PyTorch's div_backward forms). */
__kernel void kernel_binary_bwd_f32(__global const float *a, __global const float *b, __global const float *dy,
                                    __global float *dx, const uint total, const uint c, const uint h,
                                    const uint w, const uint tc, const uint th, const uint tw, const uint4 sa,
                                    const uint4 sb, const uint op, const uint which, const uint scalar_side,
                                    const float value)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint xx = idx % tw;
    uint yy = (idx / tw) % th;
    uint ch = (idx / (tw * th)) % tc;
    uint bn = idx / (tw * th * tc);
    uint c0 = tc == c ? ch : 0, c1 = tc == c ? ch + 1 : c;
    uint y0 = th == h ? yy : 0, y1 = th == h ? yy + 1 : h;
    uint x0 = tw == w ? xx : 0, x1 = tw == w ? xx + 1 : w;
    float acc = 0.0f;
    for (uint oc = c0; oc < c1; oc++)
        for (uint oy = y0; oy < y1; oy++)
            for (uint ox = x0; ox < x1; ox++) {
                float g = dy[((size_t)(bn * c + oc) * h + oy) * w + ox];
                float va = scalar_side == 1 ? value : a[bn * sa.x + oc * sa.y + oy * sa.z + ox * sa.w];
                float vb = scalar_side == 2 ? value : b[bn * sb.x + oc * sb.y + oy * sb.z + ox * sb.w];
                float d;
                if (op == 0)
                    d = g;
                else if (op == 1)
                    d = which ? -g : g;
                else if (op == 2)
                    d = g * (which ? va : vb);
                else
                    d = which ? -g * va / (vb * vb) : g / vb;
                acc += d;
            }
    dx[idx] += acc;
}

/* Global max pool backward, one work-item per (n, c): dy goes to the
 * position the forward's scan picks (the first maximum, or the last NaN,
 * as kernel_maxpool_bwd_f32). */
__kernel void kernel_global_maxpool_bwd_f32(__global const float *x, __global const float *dy, __global float *dx,
                                            const uint total, const uint plane)
{
    uint i = get_global_id(0);
    if (i >= total) return;
    __global const float *src = x + (size_t)i * plane;
    float m = -INFINITY;
    uint arg = 0;
    for (uint p = 0; p < plane; p++) {
        float v = src[p];
        if (v > m || isnan(v)) {
            m = v;
            arg = p;
        }
    }
    dx[(size_t)i * plane + arg] += dy[i];
}
