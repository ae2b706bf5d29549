/* Feature visualisation (host/viz/featvis.c): the image parameterisation,
 * the random transforms with their backward, the regularisers and Adam.
 *
 * Layouts: the pre-image t (the inverse DFT's output, or the pixel
 * parameters) is [H][N*C][W]; images and network inputs are [N][C][H][W].
 * Every kernel writes its output (no accumulation), each element by one
 * work-item in a fixed order: the same inputs give the same bits. */

/* img[n][c][y][x] = sigmoid(sum_j M[c][j] t[y][n*C + j][x] + u0[c]) (M: the
 * colour decorrelation, 3x3 row-major; C = 1: M is ignored; u0: the start
 * colour's logit). */
__kernel void fv_to_image(__global const float *t, __global float *img, __constant float *M, __constant float *u0,
                          uint N, uint C, uint H, uint W)
{
    uint i = get_global_id(0);
    if (i >= N * H * W) return;
    uint x = i % W, y = (i / W) % H, n = i / (W * H);
    size_t row = (size_t)y * N * C * W;
    for (uint c = 0; c < C; c++) {
        float u;
        if (C == 3) {
            u = 0.0f;
            for (uint j = 0; j < 3; j++) u += M[c * 3 + j] * t[row + (size_t)(n * C + j) * W + x];
        } else {
            u = t[row + (size_t)(n * C + c) * W + x];
        }
        img[(((size_t)n * C + c) * H + y) * W + x] = 1.0f / (1.0f + exp(-(u + u0[c])));
    }
}

/* One bilinear tap of image plane p at integer (yy, xx); outside: 0.5 (the
 * padding's grey). */
inline float fv_at(__global const float *p, int yy, int xx, int H, int W)
{
    return (yy >= 0 && yy < H && xx >= 0 && xx < W) ? p[yy * W + xx] : 0.5f;
}

/* Network input x[n][c][y][x] = gain[c] * bilinear(img[n][c], A_n (x, y)) +
 * bias[c], A_n = aff[6n..6n+6): sx = a0 x + a1 y + a2, sy = a3 x + a4 y + a5
 * in pixel centres.  gain, bias: the pipeline's normalisation of a pixel
 * value in [0, 1]. */
__kernel void fv_transform(__global const float *img, __global const float *aff, __global float *xo,
                           __constant float *gain, __constant float *bias, uint N, uint C, uint H, uint W)
{
    uint i = get_global_id(0);
    if (i >= N * C * H * W) return;
    uint x = i % W, y = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    __global const float *a = aff + 6 * n;
    float sx = a[0] * (float)x + a[1] * (float)y + a[2];
    float sy = a[3] * (float)x + a[4] * (float)y + a[5];
    float fx0 = floor(sx), fy0 = floor(sy);
    float fx = sx - fx0, fy = sy - fy0;
    int x0 = (int)fx0, y0 = (int)fy0;
    __global const float *p = img + ((size_t)n * C + c) * H * W;
    float v = (1.0f - fy) * ((1.0f - fx) * fv_at(p, y0, x0, H, W) + fx * fv_at(p, y0, x0 + 1, H, W)) +
              fy * ((1.0f - fx) * fv_at(p, y0 + 1, x0, H, W) + fx * fv_at(p, y0 + 1, x0 + 1, H, W));
    xo[i] = gain[c] * v + bias[c];
}

/* The transform's backward as a gather: gimg[n][c][py][px] = sum over the
 * outputs q that read (py, px) of their bilinear weight * gain[c] * dx[q].
 * inv[6n..]: A_n's inverse (the output point that maps to a source point);
 * the outputs that read a source pixel lie within 2 of its image there
 * (scale at least 1/1.4). */
__kernel void fv_transform_back(__global const float *dx, __global const float *aff, __global const float *inv,
                                __global float *gimg, __constant float *gain, uint N, uint C, uint H, uint W)
{
    uint i = get_global_id(0);
    if (i >= N * C * H * W) return;
    uint px = i % W, py = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    __global const float *a = aff + 6 * n, *b = inv + 6 * n;
    float qx = b[0] * (float)px + b[1] * (float)py + b[2];
    float qy = b[3] * (float)px + b[4] * (float)py + b[5];
    int cx = (int)floor(qx + 0.5f), cy = (int)floor(qy + 0.5f);
    __global const float *d = dx + ((size_t)n * C + c) * H * W;
    float acc = 0.0f;
    for (int yy = cy - 2; yy <= cy + 2; yy++) {
        if (yy < 0 || yy >= (int)H) continue;
        for (int xx = cx - 2; xx <= cx + 2; xx++) {
            if (xx < 0 || xx >= (int)W) continue;
            float sx = a[0] * (float)xx + a[1] * (float)yy + a[2];
            float sy = a[3] * (float)xx + a[4] * (float)yy + a[5];
            float fx0 = floor(sx), fy0 = floor(sy);
            int x0 = (int)fx0, y0 = (int)fy0;
            float fx = sx - fx0, fy = sy - fy0;
            float wx = (int)px == x0 ? 1.0f - fx : (int)px == x0 + 1 ? fx : 0.0f;
            float wy = (int)py == y0 ? 1.0f - fy : (int)py == y0 + 1 ? fy : 0.0f;
            acc += wx * wy * d[yy * (int)W + xx];
        }
    }
    gimg[i] = gain[c] * acc;
}

/* The ascent direction with respect to t, [H][N*C][W]: g = gimg - tv *
 * d TV / d img - l2 * d L2 / d img, through the sigmoid and the transposed
 * colour matrix.  TV = sum of squared differences of neighbouring pixels
 * (rows and columns); L2 = sum (img - 0.5)^2. */
__kernel void fv_image_back(__global const float *gimg, __global const float *img, __global float *gt,
                            __constant float *M, float tv, float l2, uint N, uint C, uint H, uint W)
{
    uint i = get_global_id(0);
    if (i >= N * H * W) return;
    uint x = i % W, y = (i / W) % H, n = i / (W * H);
    float gu[3];
    for (uint c = 0; c < C; c++) {
        size_t o = (((size_t)n * C + c) * H + y) * W + x;
        float v = img[o];
        float dtv = 0.0f;
        if (y > 0) dtv += v - img[o - W];
        if (y + 1 < H) dtv += v - img[o + W];
        if (x > 0) dtv += v - img[o - 1];
        if (x + 1 < W) dtv += v - img[o + 1];
        float g = gimg[o] - tv * 2.0f * dtv - l2 * 2.0f * (v - 0.5f);
        gu[c] = g * v * (1.0f - v);
    }
    size_t row = (size_t)y * N * C * W;
    for (uint j = 0; j < C; j++) {
        float g;
        if (C == 3) g = M[j] * gu[0] + M[3 + j] * gu[1] + M[6 + j] * gu[2];
        else g = gu[j];
        gt[row + (size_t)(n * C + j) * W + x] = g;
    }
}

/* Adam, ascending: on parameter i of [2][H][NC][K] (Fourier; pixel: [1][H]
 * [NC][K = W]) with gradient G[i] * sc, sc = scale[ky][kx]: m, v updated,
 * P += lr * mhat / (sqrt(vhat) + eps), and S = P * sc (the spectrum the
 * next step transforms). c1 = 1 - b1^t, c2 = 1 - b2^t. */
__kernel void fv_adam(__global float *P, __global float *S, __global const float *G, __global float *m,
                      __global float *v, __global const float *scale, uint count, uint H, uint NC, uint K, float lr,
                      float b1, float b2, float eps, float c1, float c2)
{
    uint i = get_global_id(0);
    if (i >= count) return;
    uint kx = i % K, ky = (i / (K * NC)) % H;
    float sc = scale[ky * K + kx];
    float g = G[i] * sc;
    float mi = b1 * m[i] + (1.0f - b1) * g;
    float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = P[i] + lr * (mi / c1) / (sqrt(vi / c2) + eps);
    P[i] = p;
    S[i] = p * sc;
}

/* Blur of the pre-image, Fourier parameters: P and S times the Gaussian's
 * frequency response g = exp(-2 pi^2 sigma^2 |f|^2), freq [H][K] holding
 * |f|^2 in cycles per pixel. */
__kernel void fv_blur_spectrum(__global float *P, __global float *S, __global const float *freq, uint count, uint H,
                               uint NC, uint K, float sigma)
{
    uint i = get_global_id(0);
    if (i >= count) return;
    uint kx = i % K, ky = (i / (K * NC)) % H;
    float g = exp(-19.7392088f * sigma * sigma * freq[ky * K + kx]);
    P[i] *= g;
    S[i] *= g;
}

/* Pixel parameters ([H][NC][W]): out = the 3 x 3 Gaussian of P (weights
 * w1 at distance 1, w2 on the diagonals, edges repeated), normalised. */
__kernel void fv_blur_pixels(__global const float *P, __global float *out, uint H, uint NC, uint W, float w1, float w2)
{
    uint i = get_global_id(0);
    if (i >= H * NC * W) return;
    uint x = i % W, p = (i / W) % NC, y = i / (W * NC);
    float acc = 0.0f, norm = 0.0f;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int yy = clamp((int)y + dy, 0, (int)H - 1), xx = clamp((int)x + dx, 0, (int)W - 1);
            float w = (dy == 0 && dx == 0) ? 1.0f : (dy == 0 || dx == 0) ? w1 : w2;
            acc += w * P[((size_t)yy * NC + p) * W + xx];
            norm += w;
        }
    out[i] = acc / norm;
}
