/* Device ops of the forward pass.  Each function enqueues work on cl->queue
 * (no clFinish), checks every OpenCL/CLBlast call and names `layer` in its
 * message.  Tensors are float32 NCHW in plain cl_mem buffers; a flattened
 * tensor is [N, C*H*W, 1, 1].  Kernels come from cl/<family>.cl through
 * cnn_cl_kernel(). */
#ifndef CNN_OPS_OPS_H
#define CNN_OPS_OPS_H

#include <stdint.h>
#include "runtime/clrt.h"

typedef enum cnn_act {
    CNN_ACT_NONE = 0,
    CNN_ACT_RELU = 1,
    CNN_ACT_RELU6 = 2,
    CNN_ACT_LEAKY_RELU = 3,
    CNN_ACT_SIGMOID = 4,
    CNN_ACT_TANH = 5,
    CNN_ACT_HARDSWISH = 6
} cnn_act;

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
