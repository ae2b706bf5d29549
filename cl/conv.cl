/* Convolution helpers: im2col for the GEMM path, a direct kernel for
 * depthwise and other thin grouped convolutions. */

/* col[(c*kh + i)*kw + j, oy*wo + ox] = x[c, oy*sh - pt + i*dh, ox*sw - pl + j*dw]
 * (0 outside).  One work-item per column element; x and col are one image. */
__kernel void kernel_im2col_f32(__global const float *x, const uint x_off, __global float *col,
                                const uint ci, const uint hi, const uint wi, const uint ho,
                                const uint wo, const uint kh, const uint kw, const uint sh,
                                const uint sw, const uint dh, const uint dw, const uint pt,
                                const uint pl)
{
    uint idx = get_global_id(0);
    uint p = ho * wo;
    uint total = ci * kh * kw * p;
    if (idx >= total) return;
    uint pos = idx % p;
    uint row = idx / p;
    uint j = row % kw;
    uint i = (row / kw) % kh;
    uint c = row / (kw * kh);
    int y = (int)((pos / wo) * sh + i * dh) - (int)pt;
    int xx = (int)((pos % wo) * sw + j * dw) - (int)pl;
    float v = 0.0f;
    if (y >= 0 && y < (int)hi && xx >= 0 && xx < (int)wi)
        v = x[x_off + (c * hi + (uint)y) * wi + (uint)xx];
    col[idx] = v;
}

/* Direct grouped convolution, one work-item per output row (b, o, oy) of
 * the whole batch (the index divisions, slow on CPU devices, once per row;
 * a 2-D range with one item per output ran 3.5x slower on PoCL); used when
 * each group has few input channels (depthwise). */
__kernel void kernel_conv_direct_f32(__global const float *x, __global const float *w,
                                     __global float *y, const uint n, const uint ci,
                                     const uint hi, const uint wi, const uint co, const uint ho,
                                     const uint wo, const uint kh, const uint kw, const uint sh,
                                     const uint sw, const uint dh, const uint dw, const uint pt,
                                     const uint pl, const uint groups)
{
    uint row = get_global_id(0);
    if (row >= n * co * ho) return;
    uint oy = row % ho;
    uint o = (row / ho) % co;
    uint b = row / (ho * co);
    uint cig = ci / groups;
    uint cog = co / groups;
    uint g = o / cog;
    __global float *dst = y + (size_t)row * wo;
    for (uint ox = 0; ox < wo; ox++) {
        float acc = 0.0f;
        for (uint c = 0; c < cig; c++) {
            __global const float *xc = x + ((size_t)b * ci + g * cig + c) * hi * wi;
            __global const float *wc = w + ((size_t)o * cig + c) * kh * kw;
            for (uint i = 0; i < kh; i++) {
                int yy = (int)(oy * sh + i * dh) - (int)pt;
                if (yy < 0 || yy >= (int)hi) continue;
                for (uint j = 0; j < kw; j++) {
                    int xx = (int)(ox * sw + j * dw) - (int)pl;
                    if (xx < 0 || xx >= (int)wi) continue;
                    acc += xc[yy * wi + xx] * wc[i * kw + j];
                }
            }
        }
        dst[ox] = acc;
    }
}

/* Column matrix of a whole batch for the packed GEMM path (host/ops/conv.c):
 * col[r, b*p + q] = x[b, c, oy*sh - pt + i*dh, ox*sw - pl + j*dw] with
 * r = (c*kh + i)*kw + j, q = oy*wo + ox, p = ho*wo; zeros outside the input
 * and in the padding rows r >= ci*kh*kw and columns >= n*p up to
 * [k_pad, p_pad].  One work-item per (r, b, oy) writes one output row of wo
 * columns: the index divisions (slow on CPUs) are paid once per row, not
 * once per element.  The item of the last (b, oy) of a row also zeros its
 * padding columns. */
__kernel void kernel_im2col_batch_f32(__global const float *x, __global float *col, const uint n,
                                      const uint ci, const uint hi, const uint wi, const uint ho,
                                      const uint wo, const uint kh, const uint kw, const uint sh,
                                      const uint sw, const uint dh, const uint dw, const uint pt,
                                      const uint pl, const uint k_pad, const uint p_pad)
{
    uint g = get_global_id(0);
    uint rows = n * ho;
    if (g >= k_pad * rows) return;
    uint seg = g % rows;
    uint r = g / rows;
    uint b = seg / ho;
    uint oy = seg - b * ho;
    __global float *dst = col + (size_t)r * p_pad + (size_t)seg * wo;
    if (r < ci * kh * kw) {
        uint j = r % kw;
        uint i = (r / kw) % kh;
        uint c = r / (kw * kh);
        int y = (int)(oy * sh + i * dh) - (int)pt;
        if (y >= 0 && y < (int)hi) {
            __global const float *src = x + ((size_t)(b * ci + c) * hi + (uint)y) * wi;
            int xx = (int)(j * dw) - (int)pl;
            for (uint ox = 0; ox < wo; ox++, xx += (int)sw)
                dst[ox] = (xx >= 0 && xx < (int)wi) ? src[xx] : 0.0f;
        } else {
            for (uint ox = 0; ox < wo; ox++) dst[ox] = 0.0f;
        }
    } else {
        for (uint ox = 0; ox < wo; ox++) dst[ox] = 0.0f;
    }
    if (seg == rows - 1)
        for (uint q = rows * wo; q < p_pad; q++) col[(size_t)r * p_pad + q] = 0.0f;
}

/* Winograd F(2x2, 3x3) input transform for 3x3 stride-1 convolutions: the
 * 4x4 input patch d of tile t = (b*th + ty)*tw + tx (rows 2*ty - pt + 0..3,
 * columns 2*tx - pl + 0..3, zeros outside) becomes V = B^T d B, stored as 16
 * matrices v[xi][c][t] (xi = 4*row + column of V) of [k_pad][t_pad]
 * floats `plane` floats apart, zeros in the padding rows c >= ci and
 * columns t >= n*th*tw.
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].  2-D range: dimension 0
 * is tx (neighbouring items store neighbouring floats, which CPU devices
 * vectorize), dimension 1 the tile row (c, b, ty); items past tw with
 * tx < t_pad - n*th*tw on the last row zero the padding columns. */
__kernel void kernel_winograd_in_f32(__global const float *x, __global float *v, const uint n,
                                     const uint ci, const uint hi, const uint wi, const uint th,
                                     const uint tw, const uint pt, const uint pl, const uint k_pad,
                                     const uint t_pad, const uint plane)
{
    uint tx = get_global_id(0);
    uint g = get_global_id(1);
    uint rows = n * th;
    if (g >= k_pad * rows) return;
    uint seg = g % rows;
    uint c = g / rows;
    __global float *row = v + (size_t)c * t_pad;
    if (seg == rows - 1) {
        /* the padding columns of row c, spread over this row's items */
        uint stride = get_global_size(0);
        for (uint t = rows * tw + tx; t < t_pad; t += stride)
            for (uint xi = 0; xi < 16; xi++) row[xi * plane + t] = 0.0f;
    }
    if (tx >= tw) return;
    __global float *dst = row + (size_t)seg * tw + tx;
    if (c >= ci) {
        for (uint xi = 0; xi < 16; xi++) dst[xi * plane] = 0.0f;
        return;
    }
    uint b = seg / th;
    uint ty = seg - b * th;
    __global const float *src = x + ((size_t)b * ci + c) * hi * wi;
    int y0 = (int)(2 * ty) - (int)pt;
    int x0 = (int)(2 * tx) - (int)pl;
    float4 d[4];
    bool cols_in = x0 >= 0 && x0 + 3 < (int)wi;
    for (int i = 0; i < 4; i++) {
        int yy = y0 + i;
        if (yy < 0 || yy >= (int)hi) {
            d[i] = (float4)(0.0f);
        } else if (cols_in) {
            d[i] = vload4(0, src + yy * (int)wi + x0);
        } else {
            __global const float *r = src + yy * (int)wi;
            d[i].x = x0 >= 0 && x0 < (int)wi ? r[x0] : 0.0f;
            d[i].y = x0 + 1 >= 0 && x0 + 1 < (int)wi ? r[x0 + 1] : 0.0f;
            d[i].z = x0 + 2 >= 0 && x0 + 2 < (int)wi ? r[x0 + 2] : 0.0f;
            d[i].w = x0 + 3 >= 0 && x0 + 3 < (int)wi ? r[x0 + 3] : 0.0f;
        }
    }
    float4 e[4] = {d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]}; /* B^T d */
    for (int i = 0; i < 4; i++) { /* (B^T d) B */
        dst[(4 * i + 0) * plane] = e[i].x - e[i].z;
        dst[(4 * i + 1) * plane] = e[i].y + e[i].z;
        dst[(4 * i + 2) * plane] = e[i].z - e[i].y;
        dst[(4 * i + 3) * plane] = e[i].y - e[i].w;
    }
}
