/* Input preprocessing: Pillow-exact bilinear resize of an 8-bit HWC image,
 * crop, gray<->rgb and normalisation into a float CHW network input.
 *
 * Pillow resamples 8-bit images in fixed point (libImaging/Resample.c):
 * per output sample a window [xmin, xmin + count) of the input with integer
 * coefficients that sum to about 1 << PRECISION_BITS, an accumulator that
 * starts at half a unit so the final shift rounds, and a clip to 0..255 after
 * each pass.  The coefficients depend only on the sizes, so the host computes
 * them in double exactly like Pillow and stores one table row per output
 * sample: [xmin, count, k_0 .. k_{ksize-1}] (int32, row stride ksize + 2).
 * Everything here is integer arithmetic, hence bit-exact on any device. */

#ifndef PRECISION_BITS
#define PRECISION_BITS 22 /* 32 - 8 - 2 in Pillow: 8-bit data, 2 bits headroom */
#endif

/* Pillow's clip8: the accumulator already holds the rounding half unit. */
inline uint clip8(int ss)
{
    if (ss >= (1 << PRECISION_BITS << 8)) return 255u;
    if (ss <= 0) return 0u;
    return (uint)(ss >> PRECISION_BITS);
}

/* Horizontal pass over every row: mid[row, ox, ch] from src[row, :, ch].
 * mid lives in tmp at byte mid_off, the table at int index tab_off. */
__kernel void kernel_resample_h_u8(__global const uchar *src, __global uchar *tmp,
                                   const uint total, const uint sw, const uint rw, const uint sc,
                                   const uint tab_off, const uint ksize, const uint mid_off)
{
    uint idx = get_global_id(0);
    if (idx >= total) return;
    uint ch = idx % sc;
    uint ox = (idx / sc) % rw;
    uint row = idx / (sc * rw);
    __global const int *t = (__global const int *)tmp + tab_off + ox * (ksize + 2);
    int xmin = t[0], count = t[1];
    __global const uchar *p = src + (row * sw + (uint)xmin) * sc + ch;
    int ss = 1 << (PRECISION_BITS - 1);
    for (int j = 0; j < count; j++) ss += (int)p[(uint)j * sc] * t[2 + j];
    tmp[mid_off + idx] = (uchar)clip8(ss);
}

/* Channel cc of pixel (sy, sx) of the resized image: the vertical pass on the
 * fly when there is one (vertical != 0), else a plain read of img, whose rows
 * are rw pixels of sc channels. */
inline uint resized_at(__global const uchar *img, __global const int *vt, uint vertical,
                       uint rw, uint sc, uint sy, uint sx, uint cc)
{
    if (!vertical) return img[(sy * rw + sx) * sc + cc];
    int ymin = vt[0], count = vt[1];
    __global const uchar *p = img + ((uint)ymin * rw + sx) * sc + cc;
    int ss = 1 << (PRECISION_BITS - 1);
    for (int j = 0; j < count; j++) ss += (int)p[(uint)j * rw * sc] * vt[2 + j];
    return clip8(ss);
}

/* y[y_off + (ch*oh + oy)*ow + ox] = (v * scale - mean[ch]) / std[ch] where v
 * is the resized pixel (top + oy, left + ox), channel ch, converted to c
 * channels: rgb -> gray with Pillow's convert("L") integer luma
 * (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, gray -> rgb by replication.
 * img is the horizontally resized image (in tmp at img_off) or the source. */
__kernel void kernel_preprocess_f32(__global const uchar *img, const uint img_off,
                                    __global const uchar *tmp, const uint vtab_off,
                                    const uint ksize, const uint vertical, const uint rw,
                                    const uint sc, const uint top, const uint left,
                                    const uint c, const uint oh, const uint ow, const float scale,
                                    const float4 mean, const float4 std, __global float *y,
                                    const uint y_off)
{
    uint idx = get_global_id(0);
    uint plane = oh * ow;
    if (idx >= c * plane) return;
    uint ch = idx / plane;
    uint sy = top + (idx % plane) / ow;
    uint sx = left + idx % ow;
    /* tmp may be any buffer when there is no vertical pass: no offset then. */
    __global const int *vt =
        (__global const int *)tmp + (vertical ? vtab_off + sy * (ksize + 2) : 0u);
    img += img_off;
    uint v;
    if (c == sc) {
        v = resized_at(img, vt, vertical, rw, sc, sy, sx, ch);
    } else if (sc == 1) {
        v = resized_at(img, vt, vertical, rw, sc, sy, sx, 0);
    } else {
        uint r = resized_at(img, vt, vertical, rw, sc, sy, sx, 0);
        uint g = resized_at(img, vt, vertical, rw, sc, sy, sx, 1);
        uint b = resized_at(img, vt, vertical, rw, sc, sy, sx, 2);
        v = (r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16;
    }
    float m = ch == 0 ? mean.x : ch == 1 ? mean.y : mean.z;
    float s = ch == 0 ? std.x : ch == 1 ? std.y : std.z;
    y[y_off + idx] = ((float)v * scale - m) / s;
}
