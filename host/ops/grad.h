/* Backward ops (host/ops/grad.c, cl/grad.cl): gradients with respect to
 * activations and the input only (no weight gradients), for the gradient
 * maps.  Same conventions as ops.h: enqueue only, every call checked, `layer`
 * named in messages, float32 NCHW buffers.
 *
 * Every op ACCUMULATES into dx (dx += ...), never overwrites it: a tensor
 * read by several layers (residual adds, concat inputs, a tap and its
 * consumer) receives the sum of their gradients.  The caller zeroes each
 * gradient buffer once (cnn_grad_zero) before the backward pass.  Kernels
 * are written in the "gather" form (one work-item per dx element summing
 * what reaches it), so no atomics are needed and the order of summation is
 * fixed (results are deterministic). */
#ifndef CNN_OPS_GRAD_H
#define CNN_OPS_GRAD_H

#include "ops/ops.h"

/* dx[i] = 0 for n floats at element offset off. */
int cnn_grad_zero(cnn_cl *cl, cl_mem dx, size_t off, size_t n, const char *layer);

/* dx += dy (n floats): flatten, dropout, identity paths, and each input of
 * an `add`. */
int cnn_grad_accum(cnn_cl *cl, cl_mem dy, cl_mem dx, size_t n, const char *layer);

/* How the gradient passes a ReLU-family op (guided backprop and deconvnet
 * change the rule at every ReLU, ReLU6 and leaky ReLU). */
typedef enum cnn_grad_mode {
    CNN_GRAD_PLAIN = 0,   /* dx += dy * f'(x) */
    CNN_GRAD_GUIDED = 1,  /* dx += dy * f'(x) * [dy > 0] (relu family only) */
    CNN_GRAD_DECONV = 2   /* dx += dy * [dy > 0] (relu family only) */
} cnn_grad_mode;

/* Activation backward.  x: the op's input, y: its output (both n floats;
 * each act uses what it needs).  Derivatives follow PyTorch autograd,
 * kinks included:
 *   relu       [x > 0]                 relu6   [0 < x < 6]
 *   leaky_relu x > 0 ? 1 : slope       sigmoid y (1 - y)      tanh 1 - y^2
 *   hardswish  x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1
 *   silu       s (1 + x (1 - s)), s = sigmoid(x)
 *   gelu       Phi(x) + x phi(x)   (erf form; the tanh form: its own derivative)
 *   none       1
 * Guided and deconvnet modes change only the relu family: SiLU and GELU
 * pass the plain gradient, as guided backprop in Captum and
 * pytorch-grad-cam does (they replace ReLU modules only). */
int cnn_grad_act(cnn_cl *cl, cnn_act act, float slope, cnn_grad_mode mode, cl_mem x, cl_mem y, cl_mem dy,
                 cl_mem dx, size_t n, const char *layer);

/* dx[n, c, :] += dy[n, c, :] * scale[c] (eval batch norm; count = N*C*plane). */
int cnn_grad_scale(cnn_cl *cl, cl_mem dy, cl_mem scale, cl_mem dx, size_t count, size_t plane, int channels,
                   const char *layer);

/* Convolution backward-data: dx += conv_transpose(dy, w) for the geometry
 * of the forward conv (w [co, ci/groups, kh, kw], the weights the forward
 * used).  scratch: at least cnn_grad_conv2d_scratch(g) floats. */
size_t cnn_grad_conv2d_scratch(const cnn_conv_geom *g);
int cnn_grad_conv2d(cnn_cl *cl, const cnn_conv_geom *g, int n, cl_mem dy, cl_mem w, cl_mem dx, cl_mem scratch,
                    const char *layer);

/* Linear backward: dx[N, in] += dy[N, out] * w[out, in]. */
int cnn_grad_linear(cnn_cl *cl, int n, int in, int out, cl_mem dy, cl_mem w, cl_mem dx, const char *layer);

/* Max pool backward: the gradient of each output goes to the first
 * position (row-major within the window) holding the window's maximum, or
 * its last NaN, as PyTorch's CPU kernel picks it; needs the forward input. */
int cnn_grad_maxpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem x, cl_mem dy, cl_mem dx, const char *layer);
/* Avg pool backward (same divisor rules as cnn_op_avgpool). */
int cnn_grad_avgpool(cnn_cl *cl, const cnn_pool_geom *g, int n, cl_mem dy, cl_mem dx, const char *layer);
/* Adaptive avg pool backward (global pool is ho = wo = 1). */
int cnn_grad_adaptive_avgpool(cnn_cl *cl, int n, int c, int hi, int wi, int ho, int wo, cl_mem dy, cl_mem dx,
                              const char *layer);
/* Softmax over channels backward: dx += y * (dy - sum_c y * dy). */
int cnn_grad_softmax(cnn_cl *cl, int n, int c, int plane, cl_mem y, cl_mem dy, cl_mem dx, const char *layer);

/* LRN across channels (PyTorch LocalResponseNorm): dx += d y / d x applied
 * to dy, from the layer's input x [n, c, plane]. */
int cnn_grad_lrn(cnn_cl *cl, int n, int c, int plane, int size, float alpha, float beta, float k, cl_mem x,
                 cl_mem dy, cl_mem dx, const char *layer);
/* Concat backward for one input: dx [N, cx, plane] += dy [N, cy, plane] at
 * channel offset c0. */
int cnn_grad_concat_part(cnn_cl *cl, int n, int cx, int cy, int c0, int plane, cl_mem dy, cl_mem dx,
                         const char *layer);

/* clamp(a x + b, lo, hi) backward (hardsigmoid, clip): dx += dy * a where
 * the clamp passes, bounds included when `inclusive` (torch.clamp) and
 * excluded otherwise (F.hardsigmoid); x: the op's input. */
int cnn_grad_clamp(cnn_cl *cl, cl_mem x, cl_mem dy, cl_mem dx, size_t n, float a, float b, float lo, float hi,
                   bool inclusive, const char *layer);

/* Broadcasting binary op backward for operand `which` (0: a, 1: b; a
 * batched operand: a layer): dx += the gradient reduced over the
 * dimensions it was broadcast along (an SE gate [C, 1, 1] sums over H, W).
 * a, b: the forward's operands (the scalar's buffer is not read). */
int cnn_grad_binary(cnn_cl *cl, const cnn_bin_geom *g, int n, int which, cl_mem a, cl_mem b, cl_mem dy, cl_mem dx,
                    const char *layer);

/* Layer norm over channels backward (from its input x; w NULL: no affine). */
int cnn_grad_layernorm(cnn_cl *cl, int n, int c, int plane, float eps, cl_mem x, cl_mem w, cl_mem dy, cl_mem dx,
                       const char *layer);

/* Global max pool backward: dy to the forward's pick (the first maximum,
 * or the last NaN) of each plane; x: the forward input. */
int cnn_grad_global_maxpool(cnn_cl *cl, int n, int c, int plane, cl_mem x, cl_mem dy, cl_mem dx,
                            const char *layer);

/* Channel selection backward (slice, channel shuffle): dy back to the
 * channels the forward read. */
int cnn_grad_channel_gather(cnn_cl *cl, const cnn_chan_map *m, int n, int plane, cl_mem dy, cl_mem dx,
                            const char *layer);

/* Pad and resize backward (kernels in cl/resample.cl, beside the forward's
 * index functions): each input adds the outputs that read it, weighted as
 * the forward weighted it. */
int cnn_grad_pad(cnn_cl *cl, const cnn_pad_geom *g, int n, cl_mem dy, cl_mem dx, const char *layer);
int cnn_grad_resize(cnn_cl *cl, const cnn_resize_geom *g, int n, cl_mem dy, cl_mem dx, const char *layer);

#endif
