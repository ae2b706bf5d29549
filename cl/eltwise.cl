/* Elementwise ops: activations, bias, scale.  One work-item per element;
 * every kernel returns early past n (the host rounds the global size up). */

#ifndef ACT
#define ACT 0 /* 0 none, 1 relu, 2 relu6, 3 leaky_relu, 4 sigmoid, 5 tanh, 6 hardswish,
                 7 silu, 8 gelu (erf), 9 gelu (tanh) */
#endif

/* NaN goes through every activation as in PyTorch (torch.relu(nan) is nan;
 * fmax(nan, 0) would be 0): the clamps are comparisons that are false for
 * NaN, so it falls through to x.  Infinities: relu(-inf) = 0, relu6(+inf) =
 * 6, hardswish(-inf) = -inf * 0 = nan, all as PyTorch gives them.  Written
 * `c > x ? c : x` (and `c < x ? c : x`), the form of the x86 max/min
 * instructions, which return their second operand for NaN: one instruction
 * each, as fast as fmax/fmin on PoCL (`x <= 0 ? 0 : x` measured 7-23 %
 * slower on cached data). */
inline float act_relu(float x) { return 0.0f > x ? 0.0f : x; }
inline float act_relu6(float x) { return act_relu(6.0f < x ? 6.0f : x); }

/* erfc(x) with a relative error below 1.2e-7 in exact arithmetic
 * (Numerical Recipes' erfcc, a Chebyshev fit times exp): PoCL's erf is a
 * scalar library call that made a GELU epilogue 4x slower than SiLU's,
 * this vectorizes like exp.  GELU uses 1 + erf(x) = erfc(-x): no
 * cancellation for x < 0, and erfc(+inf) = 0 gives PyTorch's nan at -inf. */
inline float erfc_fast(float x)
{
    float z = fabs(x);
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f +
              t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    float r = t * exp(-z * z + p);
    return x >= 0.0f ? r : 2.0f - r;
}

inline float act_apply(float x, float slope)
{
#if ACT == 1
    return act_relu(x);
#elif ACT == 2
    return act_relu6(x);
#elif ACT == 3
    return x >= 0.0f ? x : x * slope;
#elif ACT == 4
    return 1.0f / (1.0f + exp(-x));
#elif ACT == 5
    return tanh(x);
#elif ACT == 6
    return x * act_relu6(x + 3.0f) / 6.0f;
#elif ACT == 7
    /* PyTorch's form: silu(-inf) = -inf / inf = nan there too */
    return x / (1.0f + exp(-x));
#elif ACT == 8
    return 0.5f * x * erfc_fast(-x * M_SQRT1_2_F);
#elif ACT == 9
    /* 0.5 (1 + tanh(u)) = sigmoid(2u), u = sqrt(2 / pi) (x + 0.044715 x^3)
     * (PyTorch's kBeta and kKappa): no tanh call, no cancellation, and
     * -inf / inf gives PyTorch's nan at -inf */
    return x / (1.0f + exp(-2.0f * 0.7978845608f * (x + 0.044715f * x * x * x)));
#else
    return x;
#endif
}

/* Derivative of the smooth activations (SiLU, the GELUs) at x, here
 * beside their forwards so both use erfc_fast and the same forms:
 *   silu       s (1 + x (1 - s)), s = sigmoid(x)      (PyTorch's silu_backward)
 *   gelu       Phi(x) + x phi(x), Phi(x) = erfc(-x / sqrt 2) / 2
 *   gelu tanh  s + 2 x s (1 - s) k (1 + 3 kappa x^2), s = sigmoid(2u):
 *              PyTorch's 0.5 (1 + t) + 0.5 x (1 - t^2) k (...) with
 *              t = tanh(u) = 2s - 1
 * At +-inf each gives PyTorch's nan (inf * 0). */
inline float act_derivative(float x)
{
#if ACT == 7
    float s = 1.0f / (1.0f + exp(-x));
    return s * (1.0f + x * (1.0f - s));
#elif ACT == 8
    return 0.5f * erfc_fast(-x * M_SQRT1_2_F) + x * exp(-0.5f * x * x) * (M_2_SQRTPI_F * M_SQRT1_2_F * 0.5f);
#elif ACT == 9
    float s = 1.0f / (1.0f + exp(-2.0f * 0.7978845608f * (x + 0.044715f * x * x * x)));
    return s + 2.0f * x * s * (1.0f - s) * 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
#else
    return 1.0f;
#endif
}

/* dx[i] += dy[i] * act'(x[i]) for the smooth activations (cl/grad.cl
 * conventions: the backward ADDS into dx). */
__kernel void kernel_act_bwd_f32(__global const float *x, __global const float *dy, __global float *dx,
                                 const uint n)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    dx[i] += dy[i] * act_derivative(x[i]);
}

/* y[i] = act(x[i]) */
__kernel void kernel_act_f32(__global const float *x, __global float *y, const uint n,
                             const float slope)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    y[i] = act_apply(x[i], slope);
}

/* y[i] = act(x[i] * scale[c] + shift[c]), c = (i / plane) % channels.
 * Bias (scale NULL-like: all ones) and eval-mode batch norm both land here. */
__kernel void kernel_affine_act_f32(__global const float *x, __global float *y,
                                    __global const float *scale, __global const float *shift,
                                    const uint n, const uint plane, const uint channels,
                                    const float slope)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    uint c = (i / plane) % channels;
    y[i] = act_apply(x[i] * scale[c] + shift[c], slope);
}

/* y[i] = act(x[i] + shift[c]): bias (+ activation) after a GEMM. */
__kernel void kernel_bias_act_f32(__global const float *x, __global float *y,
                                  __global const float *shift, const uint n, const uint plane,
                                  const uint channels, const float slope)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    uint c = (i / plane) % channels;
    y[i] = act_apply(x[i] + shift[c], slope);
}

/* y[i] = clamp(a * x[i] + b, lo, hi): hardsigmoid and clip.  The clamps
 * are comparisons in the form of act_relu, so a NaN passes through. */
__kernel void kernel_clamp_f32(__global const float *x, __global float *y, const uint n, const float a,
                               const float b, const float lo, const float hi)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    float v = a * x[i] + b;
    v = lo > v ? lo : v;
    y[i] = hi < v ? hi : v;
}

/* cnn_binop: 0 add, 1 sub, 2 mul, 3 div; the branch is uniform over a
 * launch. */
inline float bin_apply(uint op, float a, float b)
{
    return op == 0 ? a + b : op == 1 ? a - b : op == 2 ? a * b : a / b;
}

/* y[i] = act(a[i] op b[i]) where both operands have y's shape, or one is
 * the scalar `value` (scalar_side 1: a, 2: b; its buffer is not read). */
__kernel void kernel_binary_flat_f32(__global const float *a, __global const float *b, __global float *y,
                                     const uint n, const uint op, const uint scalar_side, const float value,
                                     const float slope)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    float va = scalar_side == 1 ? value : a[i];
    float vb = scalar_side == 2 ? value : b[i];
    y[i] = act_apply(bin_apply(op, va, vb), slope);
}

/* y[n, c, h, w] = act(a[.] op b[.]) with numpy broadcasting: operand k is
 * read at n * s.x + c * s.y + h * s.z + w * s.w, a stride 0 along each of
 * its dimensions of size 1 (and along n for a constant).  2-D range:
 * dimension 0 is w, dimension 1 the row (n, c, h). */
__kernel void kernel_binary_bcast_f32(__global const float *a, __global const float *b, __global float *y,
                                      const uint rows, const uint c, const uint h, const uint w, const uint4 sa,
                                      const uint4 sb, const uint op, const uint scalar_side, const float value,
                                      const float slope)
{
    uint xx = get_global_id(0);
    uint r = get_global_id(1);
    if (xx >= w || r >= rows) return;
    uint yy = r % h;
    uint rest = r / h;
    uint ch = rest % c;
    uint bn = rest / c;
    float va = scalar_side == 1 ? value : a[bn * sa.x + ch * sa.y + yy * sa.z + xx * sa.w];
    float vb = scalar_side == 2 ? value : b[bn * sb.x + ch * sb.y + yy * sb.z + xx * sb.w];
    y[(size_t)r * w + xx] = act_apply(bin_apply(op, va, vb), slope);
}

/* y[0, n) = 0, four floats per item: clEnqueueFillBuffer runs on one
 * thread of PoCL's CPU device, this on all of them. */
__kernel void kernel_zero_f32(__global float *y, const uint n)
{
    uint i = get_global_id(0) * 4;
    if (i + 4 <= n) {
        vstore4((float4)(0.0f), 0, y + i);
    } else {
        for (; i < n; i++) y[i] = 0.0f;
    }
}

/* y[i] = act(a[i] + b[i]) (a residual add with the ReLU after it fused) */
__kernel void kernel_add_f32(__global const float *a, __global const float *b, __global float *y,
                             const uint n, const float slope)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    y[i] = act_apply(a[i] + b[i], slope);
}

/* Epilogue of the packed convolution GEMM: y[b, c, oy, :] = act(out + bias[c])
 * for b < n, c < co, reading the GEMM result `out` of the whole batch
 * (column j = b*p + oy*wo + ox, p = ho*wo) laid out [co_pad][ld] when
 * p_major (ld >= n*p) or [ld][co_pad] otherwise (ld = co_pad).  One
 * work-item per output row of wo floats (divisions once per row); the
 * channel is the fastest index so neighbouring items read neighbouring
 * floats of a transposed result.  has_bias = 0: bias is not read. */
__kernel void kernel_gemm_store_f32(__global const float *out, __global const float *bias,
                                    __global float *y, const uint n, const uint co, const uint ho,
                                    const uint wo, const uint ld, const uint p_major,
                                    const uint has_bias, const float slope)
{
    uint g = get_global_id(0);
    if (g >= n * co * ho) return;
    uint c = g % co;
    uint rest = g / co;
    uint oy = rest % ho;
    uint b = rest / ho;
    size_t j = (size_t)b * ho * wo + (size_t)oy * wo;
    __global float *dst = y + (((size_t)b * co + c) * ho + oy) * wo;
    float add = has_bias ? bias[c] : 0.0f;
    if (p_major) {
        __global const float *src = out + (size_t)c * ld + j;
        for (uint ox = 0; ox < wo; ox++) dst[ox] = act_apply(src[ox] + add, slope);
    } else {
        __global const float *src = out + j * ld + c;
        for (uint ox = 0; ox < wo; ox++) dst[ox] = act_apply(src[(size_t)ox * ld] + add, slope);
    }
}

/* Winograd F(2x2, 3x3) output transform (host/ops/conv.c): the 16 GEMM
 * results m[xi] of tile t = (b*th + ty)*tw + tx and channel c (matrix xi at
 * xi * plane floats, element [c][t] when p_major, [t][c] otherwise)
 * give the 2x2 outputs Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1], then
 * y = act(Y + bias[c]) clipped to [ho, wo].  2-D range: dimension 0 is tx,
 * dimension 1 the tile row (b, c, ty). */
__kernel void kernel_winograd_out_f32(__global const float *m, __global const float *bias,
                                      __global float *y, const uint n, const uint co,
                                      const uint ho, const uint wo, const uint th, const uint tw,
                                      const uint co_pad, const uint t_pad, const uint plane,
                                      const uint p_major, const uint has_bias, const float slope)
{
    uint tx = get_global_id(0);
    uint g = get_global_id(1);
    if (tx >= tw || g >= n * co * th) return;
    uint ty = g % th;
    uint rest = g / th;
    uint c = rest % co;
    uint b = rest / co;
    size_t t = ((size_t)b * th + ty) * tw + tx;
    float add = has_bias ? bias[c] : 0.0f;
    __global const float *src = m + (p_major ? (size_t)c * t_pad + t : t * co_pad + c);
    float v[16];
    for (int xi = 0; xi < 16; xi++) v[xi] = src[xi * plane];
    float r[2][4]; /* A^T m */
    for (int j = 0; j < 4; j++) {
        r[0][j] = v[j] + v[4 + j] + v[8 + j];
        r[1][j] = v[4 + j] - v[8 + j] - v[12 + j];
    }
    __global float *dst = y + ((size_t)b * co + c) * ho * wo;
    uint oy = 2 * ty, ox = 2 * tx;
    for (uint i = 0; i < 2 && oy + i < ho; i++) {
        float o0 = r[i][0] + r[i][1] + r[i][2];
        float o1 = r[i][1] - r[i][2] - r[i][3];
        dst[(oy + i) * wo + ox] = act_apply(o0 + add, slope);
        if (ox + 1 < wo) dst[(oy + i) * wo + ox + 1] = act_apply(o1 + add, slope);
    }
}
