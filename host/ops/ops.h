/* Device ops of the forward pass.  Each function enqueues work on cl->queue
 * (no clFinish), checks every OpenCL/CLBlast call and names `layer` in its
 * message.  Tensors are float32 NCHW in plain cl_mem buffers; a flattened
 * tensor is [N, C*H*W, 1, 1].  Kernels come from cl/<family>.cl through
 * cnn_cl_kernel(). */
#ifndef CNN_OPS_OPS_H
#define CNN_OPS_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include "config/config.h"
#include "runtime/clrt.h"

typedef enum cnn_act {
    CNN_ACT_NONE = 0,
    CNN_ACT_RELU = 1,
    CNN_ACT_RELU6 = 2,
    CNN_ACT_LEAKY_RELU = 3,
    CNN_ACT_SIGMOID = 4,
    CNN_ACT_TANH = 5,
    CNN_ACT_HARDSWISH = 6,
    CNN_ACT_SILU = 7,
    CNN_ACT_GELU = 8,       /* erf form */
    CNN_ACT_GELU_TANH = 9   /* tanh approximation */
} cnn_act;
#define CNN_ACT_LAST CNN_ACT_GELU_TANH

/* 2-D launch of `k` over [cols, rows] (the kernel checks both bounds) with
 * about 256 items per work-group, dimension 0 as wide as a row up to 64:
 * PoCL vectorizes along dimension 0 and runs small groups slowly. */
int cnn_op_run_rows(cnn_cl *cl, cl_kernel k, size_t cols, size_t rows, const char *layer);

/* ---- elementwise (host/ops/eltwise.c, cl/eltwise.cl) ---- */

/* y = act(x), n elements; x == y allowed. */
int cnn_op_act(cnn_cl *cl, cnn_act act, float slope, cl_mem x, cl_mem y, size_t n, const char *layer);

/* y[n,c,:] = act(x[n,c,:] * scale[c] + shift[c]); scale may be NULL (= 1).
 * Used for conv/linear bias (+activation) and eval batch norm.  x == y allowed.
 * count = N*C*plane. */
int cnn_op_affine_act(cnn_cl *cl, cl_mem x, cl_mem y, cl_mem scale, cl_mem shift, size_t count,
                      size_t plane, int channels, cnn_act act, float slope, const char *layer);

/* y = a + b (n elements). */
int cnn_op_add(cnn_cl *cl, cl_mem a, cl_mem b, cl_mem y, size_t n, const char *layer);
/* y[0, n) = 0 (n < 2^32). */
int cnn_op_zero(cnn_cl *cl, cl_mem y, size_t n, const char *layer);

/* y = act(a + b): a residual add with its activation fused. */
int cnn_op_add_act(cnn_cl *cl, cl_mem a, cl_mem b, cl_mem y, size_t n, cnn_act act, float slope,
                   const char *layer);

/* y = clamp(a * x + b, lo, hi) with NaN kept (a NaN input gives NaN, as
 * torch.clamp and F.hardsigmoid do): hardsigmoid (a = alpha, b = beta,
 * [0, 1]) and clip (a = 1, b = 0, [min, max]).  x == y allowed. */
int cnn_op_clamp(cnn_cl *cl, cl_mem x, cl_mem y, size_t n, float a, float b, float lo, float hi, const char *layer);

/* Binary elementwise ops with numpy broadcasting over one image's [C, H, W]. */
typedef enum cnn_binop { CNN_BIN_ADD = 0, CNN_BIN_SUB = 1, CNN_BIN_MUL = 2, CNN_BIN_DIV = 3 } cnn_binop;

typedef struct cnn_bin_geom {
    cnn_binop op;
    int c, h, w;        /* output of one image */
    int shape[2][3];    /* operand k's [c, h, w]: each dim the output's or 1 */
    bool batched[2];    /* operand k has one tensor per image (a layer); else one for all (a constant) */
    bool scalar[2];     /* operand k is `value` (no buffer) */
    float value;
} cnn_bin_geom;

/* y = act(a op b) for n images (a: operand 0, b: operand 1; the scalar
 * operand's buffer is not read and may be NULL). */
int cnn_op_binary(cnn_cl *cl, const cnn_bin_geom *g, int n, cl_mem a, cl_mem b, cl_mem y, cnn_act act, float slope,
                  const char *layer);
/* Operand k's element strides [n, c, h, w] in the kernels (0 along a
 * broadcast dimension, and along n for a constant). */
void cnn_bin_strides(const cnn_bin_geom *g, int k, cl_uint s[4]);
/* CNN_ERR_INPUT naming `layer` unless both operands broadcast to the
 * output and n images index in 32 bits. */
int cnn_bin_check(const cnn_bin_geom *g, int n, const char *layer);

/* ---- convolution and linear (host/ops/conv.c, host/ops/dense.c) ---- */

typedef struct cnn_conv_geom {
    int ci, hi, wi;         /* input  [N, ci, hi, wi] */
    int co, ho, wo;         /* output [N, co, ho, wo] */
    int kh, kw, sh, sw, dh, dw;
    int pt, pb, pl, pr;     /* padding top, bottom, left, right */
    int groups;
} cnn_conv_geom;

/* Scratch floats the conv needs (im2col column buffer), 0 if none. */
size_t cnn_op_conv2d_scratch(const cnn_conv_geom *g);

/* y = act(conv(x, w) + bias); w [co, ci/groups, kh, kw]; bias [co] or NULL. */
int cnn_op_conv2d(cnn_cl *cl, const cnn_conv_geom *g, int n, cl_mem x, cl_mem w, cl_mem bias,
                  cnn_act act, float slope, cl_mem y, cl_mem scratch, const char *layer);

/* The forward runs the direct kernel (depthwise and thin grouped
 * convolutions: ci / groups <= 4), which reads the weights element by
 * element; other convolutions are GEMMs (the own kernel on PoCL CPUs,
 * CLBlast elsewhere: ops/blas.h). */
bool cnn_op_conv2d_is_direct(const cnn_conv_geom *g);

/* How a plan packs its convolutions: not at all (GPUs: one im2col + GEMM
 * per image), for CLBlast's tiles, or for the own CPU GEMM kernel. */
typedef enum cnn_packing { CNN_PACK_NONE = 0, CNN_PACK_CLBLAST, CNN_PACK_OWN } cnn_packing;

/* Packed GEMM path for groups == 1 convolutions (not the direct kernel):
 * the whole batch is one im2col column matrix [k_pad][p_pad] (column
 * b*ho*wo + q) and one GEMM in the native layout of cnn_blas_sgemm_native
 * against weights packed once as [k_pad][co_pad] (zeros in the padding);
 * an epilogue adds the bias, applies the activation and writes NCHW.
 * p_major: the spatial side is the GEMM's m (result [co_pad][p_pad]),
 * else its n (result [p_pad][co_pad]); p_pad is a multiple of p_align.
 * `own` (the packing functions' argument): padded for the own CPU kernel
 * (m to 32, n to 8, k not at all; cnn_blas_own_gemm_fits), else for
 * CLBlast's Xgemm tiles (m to CNN_GEMM_MWG, n to CNN_GEMM_NWG, k to
 * CNN_GEMM_KWG), which then needs none of its pad/copy kernels.  The
 * layout with fewer padded products is chosen for max_batch images. */
typedef struct cnn_conv_pack {
    int k_pad, co_pad, p_align;
    bool p_major;
    /* 3x3 stride 1 with ci >= 32: Winograd F(2x2, 3x3), 16 GEMMs with
     * k = ci over the 2x2 output tiles instead of one with k = 9 ci over the
     * pixels (2.25x fewer products); "p" then counts tiles. */
    bool winograd;
} cnn_conv_pack;

/* False when the conv runs the direct kernel or per-group GEMMs (groups > 1)
 * or is too large for 32-bit indexing at max_batch. */
bool cnn_op_conv2d_pack_layout(const cnn_conv_geom *g, int max_batch, bool own, cnn_conv_pack *pk);
/* The same without Winograd: the im2col GEMM, whose rounding is that of a
 * plain dot product (gradient maps: Winograd's larger rounding flips
 * near-zero ReLUs of VGG16). */
bool cnn_op_conv2d_pack_plain(const cnn_conv_geom *g, int max_batch, bool own, cnn_conv_pack *pk);
/* The Winograd layout whenever the geometry allows it, cheaper or not
 * (tests; cnn_op_conv2d_pack_layout picks it only where it pays). */
bool cnn_op_conv2d_pack_winograd(const cnn_conv_geom *g, int max_batch, bool own, cnn_conv_pack *pk);
/* Floats of the packed weights. */
size_t cnn_op_conv2d_packed_weights(const cnn_conv_pack *pk);
/* Host: packed[(c*kh + i)*kw + j][o] = w[o, c, i, j], zeros elsewhere
 * (k_pad * co_pad floats); Winograd: 16 such matrices [xi][c][o] of
 * U = G w[o, c] G^T (computed in double). */
void cnn_op_conv2d_pack_weights(const cnn_conv_geom *g, const cnn_conv_pack *pk, const float *w, float *packed);
/* Floats of the two scratch buffers of n images: the column matrix (0 when
 * the input is used as it is) and the GEMM result. */
size_t cnn_op_conv2d_packed_col(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n);
size_t cnn_op_conv2d_packed_out(const cnn_conv_geom *g, const cnn_conv_pack *pk, int n);
/* y = act(conv(x, w) + bias) on n images; wpack from cnn_op_conv2d_pack_weights;
 * col and out: buffers (offset 0) of the sizes above. */
int cnn_op_conv2d_packed(cnn_cl *cl, const cnn_conv_geom *g, const cnn_conv_pack *pk, int n, cl_mem x,
                         cl_mem wpack, cl_mem bias, cnn_act act, float slope, cl_mem y, cl_mem col, cl_mem out,
                         const char *layer);

/* y[N, out] = act(x[N, in] * w[out, in]^T + bias); bias may be NULL. */
int cnn_op_linear(cnn_cl *cl, int n, int in, int out, cl_mem x, cl_mem w, cl_mem bias, cnn_act act,
                  float slope, cl_mem y, const char *layer);

/* ---- pooling and friends (host/ops/pool.c, cl/pool.cl) ---- */

typedef struct cnn_pool_geom {
    int c, hi, wi, ho, wo;
    int kh, kw, sh, sw, dh, dw;
    int pt, pl;             /* padding top, left (bottom/right are implied by ho/wo) */
    int count_include_pad;  /* avg only */
    int pb, pr;             /* padding bottom, right: window clipping for count_include_pad */
} cnn_pool_geom;

/* Max pool (padding is -inf, PyTorch semantics). */
int cnn_op_maxpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem x, cl_mem y, const char *layer);
/* Avg pool with PyTorch's divisor rules (count_include_pad counts padding
 * inside the padded input but not the ceil_mode overhang). */
int cnn_op_avgpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem x, cl_mem y, const char *layer);
/* Adaptive avg pool to [ho, wo]: window [floor(i*H/ho), ceil((i+1)*H/ho)). */
int cnn_op_adaptive_avgpool(cnn_cl *cl, int n, int c, int hi, int wi, int ho, int wo, cl_mem x,
                            cl_mem y, const char *layer);
/* Softmax over channels for each (n, h, w). */
int cnn_op_softmax(cnn_cl *cl, int n, int c, int plane, cl_mem x, cl_mem y, const char *layer);
/* Local response norm across channels (PyTorch LocalResponseNorm). */
int cnn_op_lrn(cnn_cl *cl, int n, int c, int plane, int size, float alpha, float beta, float k,
               cl_mem x, cl_mem y, const char *layer);
/* Copies x [N, cx, plane] into y [N, cy, plane] at channel offset c0. */
int cnn_op_concat_part(cnn_cl *cl, int n, int cx, int cy, int c0, int plane, cl_mem x, cl_mem y,
                       const char *layer);

/* Max over each channel's plane (global max pool): NaN wins, as in
 * PyTorch's max pooling. */
int cnn_op_global_maxpool(cnn_cl *cl, int n, int c, int plane, cl_mem x, cl_mem y, const char *layer);
/* Layer norm over channels at each position: y = (x - mean) / sqrt(var +
 * eps) * w[c] + b[c], biased variance; w, b NULL: no affine. */
int cnn_op_layernorm(cnn_cl *cl, int n, int c, int plane, float eps, cl_mem x, cl_mem w, cl_mem b, cl_mem y,
                     const char *layer);

/* A channel selection: y channel j of cy reads x channel
 * start + (j / groups) * step + (j % groups) * k (of cx).  Slice: groups 1;
 * channel shuffle: start 0, step 1, k = cx / groups. */
typedef struct cnn_chan_map {
    int cx, cy, start, step, groups, k;
} cnn_chan_map;
int cnn_op_channel_gather(cnn_cl *cl, const cnn_chan_map *m, int n, int plane, cl_mem x, cl_mem y,
                          const char *layer);
/* CNN_ERR_INPUT naming `layer` unless the map reads channels of x only
 * and n images index in 32 bits. */
int cnn_chan_map_check(const cnn_chan_map *m, int n, int plane, const char *layer);

/* ---- spatial resampling (host/ops/resample.c, cl/resample.cl) ---- */

/* F.pad on H and W: [c, hi, wi] -> [c, ho, wo] with pt rows above and pl
 * columns left; constant (value), reflect (no edge repeat) or replicate. */
typedef struct cnn_pad_geom {
    int c, hi, wi, ho, wo, pt, pl;
    cnn_pad_mode mode;
    float value;
} cnn_pad_geom;
int cnn_op_pad(cnn_cl *cl, const cnn_pad_geom *g, int n, cl_mem x, cl_mem y, const char *layer);

/* F.interpolate: nearest (PyTorch's 'nearest': src = min(floor(dst * rh),
 * hi - 1) in float, with its exact cases for equal and doubled sizes) or
 * bilinear (align_corners: src = dst * rh; else max((dst + 0.5) * rh - 0.5,
 * 0)).  rh, rw: PyTorch's float source scales (cnn_resize_scale). */
typedef struct cnn_resize_geom {
    int c, hi, wi, ho, wo;
    bool bilinear, align_corners;
    float rh, rw;
} cnn_resize_geom;
/* PyTorch's source scale along one axis: align_corners: (in - 1) / (out -
 * 1) (0 for out 1); a given scale factor s: 1 / s; else in / out. */
float cnn_resize_scale(int in, int out, double factor, bool align_corners);
int cnn_op_resize(cnn_cl *cl, const cnn_resize_geom *g, int n, cl_mem x, cl_mem y, const char *layer);

/* ---- input preprocessing (host/ops/preprocess.c, cl/preprocess.cl) ---- */

/* From an 8-bit HWC image already on the device (src, [sh, sw, sc], sc 1|3)
 * to the network input y[c, oh, ow] (one image; y_offset in floats):
 *  1. resize to [rh, rw] like PIL's BILINEAR with antialiasing (torchvision's
 *     Resize on PIL images): separable, horizontal then vertical pass, each
 *     rounded to uint8 as PIL does (rh == sh && rw == sw: no resize);
 *  2. crop [oh, ow] at (top, left) of the resized image;
 *  3. gray<->rgb as c asks (gray = ITU-R 601-2 luma like PIL's convert("L"),
 *     rgb from gray = replicate);
 *  4. y = (v * scale - mean[c]) / std[c].
 * tmp: device scratch of at least cnn_op_preprocess_scratch() bytes. */
size_t cnn_op_preprocess_scratch(int sh, int sw, int sc, int rh, int rw);
int cnn_op_preprocess(cnn_cl *cl, cl_mem src, int sh, int sw, int sc, int rh, int rw, int top,
                      int left, int c, int oh, int ow, float scale, const float *mean,
                      const float *std, cl_mem tmp, cl_mem y, size_t y_offset, const char *what);

#endif
