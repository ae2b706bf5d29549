/* The backward pass of a network built in gradient mode: d score / d (every
 * layer's output) and d score / d input, for a batch whose images each pick
 * their own target class.
 *
 * Gradient mode: the network is created with every layer kept (keep[] all
 * true), so no tensor is overwritten, no activation is fused and no batch
 * norm is folded: each layer's backward reads the exact forward tensors it
 * needs.  Gradient buffers mirror the forward's: one per computing layer, and
 * views (flatten, dropout) share their source's (the identity passes the
 * gradient unchanged, so contributions to the view and to its source land in
 * the same sum).  Layers are visited in reverse order; each ADDS its inputs'
 * gradients, so fan-out (residual adds, concat, a tap and its consumer) sums
 * correctly. */
#ifndef CNN_RUNTIME_BACKWARD_H
#define CNN_RUNTIME_BACKWARD_H

#include "ops/grad.h"
#include "runtime/net.h"

typedef struct cnn_backward {
    cnn_net *net;        /* borrowed; built with every layer kept */
    cl_mem *d;           /* [n] gradient of layer i's root buffer (NULL for views) */
    cl_mem d_input;      /* [max_batch, C, H, W] */
    cl_mem scratch;      /* conv backward-data columns */
    /* A network created CNN_NET_BACKWARD_FAST: a 3x3 stride-1 conv whose
     * input no other layer reads gets its input gradient as a forward
     * convolution of dy (the forward's packed kernels, Winograd where the
     * rule takes it): tg[i] has ci and co swapped and padding 2 - p, its
     * weights twpack[i] are w[o][c] flipped in both axes and transposed. */
    cnn_conv_geom *tg;
    cnn_conv_pack *tpk;
    cl_mem *twpack;      /* [n] NULL: the GEMM and col2im path */
    cl_mem zbias;        /* zeros, one per channel of the widest input */
    bool *own;           /* [n] its scratch is tcol / tout, not the forward's */
    cl_mem tcol, tout;
    size_t col_bytes, out_bytes;
    float *seed;         /* host [max_batch * n_out] */
} cnn_backward;

int cnn_backward_create(cnn_backward *bw, cnn_net *net);
void cnn_backward_free(cnn_backward *bw);

/* Backward for images [0, n) of the last forward pass: image b's score is
 * the last layer's output for class cls[b] (prob = false: the logit), or
 * its softmax probability (prob = true; logits: the last layer's output as
 * read from the device, n * n_out floats).  mode: plain, guided or
 * deconvnet ReLU rule.  stop: the lowest layer whose gradient is needed
 * (CNN_GRAPH_INPUT: all the way to the input); layers at or below it are
 * not visited, and gradients of tensors below it are left undefined.  A
 * layer's gradient is complete once every layer above it has run, since
 * consumers always come later in the graph's order. */
int cnn_backward_run(cnn_backward *bw, int n, const int *cls, bool prob, const float *logits,
                     cnn_grad_mode mode, int stop);

/* The same from layer `top`: seed holds d score / d top's output for
 * images [0, n) (host, n * its elements); layers above top are not
 * visited.  Feature visualisation seeds a channel, a position or a unit. */
int cnn_backward_seeded(cnn_backward *bw, int n, int top, const float *seed, cnn_grad_mode mode, int stop);

/* The same, with add(ctx, grad) called once the seed is in top's gradient
 * buffer (grad: [n][its elements]) and before the layers run: a term of
 * the score that depends on the device's tensors adds its part there
 * (maximize's diversity). */
typedef int (*cnn_seed_add)(void *ctx, cl_mem grad);
int cnn_backward_seeded_add(cnn_backward *bw, int n, int top, const float *seed, cnn_seed_add add, void *ctx,
                            cnn_grad_mode mode, int stop);

/* Gradient of layer i's output ([N, c, h, w]); CNN_GRAPH_INPUT: of the
 * network input. */
cl_mem cnn_backward_grad(const cnn_backward *bw, int layer);

#endif
