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

/* Direct grouped convolution, one work-item per output element of the whole
 * batch; used when each group has few input channels (depthwise). */
__kernel void kernel_conv_direct_f32(__global const float *x, __global const float *w,
                                     __global float *y, const uint n, const uint ci,
                                     const uint hi, const uint wi, const uint co, const uint ho,
                                     const uint wo, const uint kh, const uint kw, const uint sh,
                                     const uint sw, const uint dh, const uint dw, const uint pt,
                                     const uint pl, const uint groups)
{
    uint idx = get_global_id(0);
    uint total = n * co * ho * wo;
    if (idx >= total) return;
    uint ox = idx % wo;
    uint oy = (idx / wo) % ho;
    uint o = (idx / (wo * ho)) % co;
    uint b = idx / (wo * ho * co);
    uint cig = ci / groups;
    uint cog = co / groups;
    uint g = o / cog;
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
    y[idx] = acc;
}
