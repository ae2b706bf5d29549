/* A network ready to run on a device: the memory plan (which layer output
 * lives in which device buffer, what is fused), the uploaded weights, and the
 * forward pass.
 *
 * Plan rules: a layer's output buffer is reused once its last reader ran;
 * layers in `keep` (taps, the network output) are pinned and never fused
 * away; batch norm right after a convolution is folded into its weights and
 * an activation right after a conv/linear/batchnorm/add runs in its epilogue
 * when no kept tensor sits between; 3x3 convolutions may run Winograd
 * F(2x2, 3x3) unless every layer is kept (gradient mode) or the weights
 * hold NaN or Inf (g->nonfinite); flatten, dropout and a concat of one
 * input are views of their input.  An activation fuses into a
 * convolution (conv2d, linear over channels), linear, batch norm or binary
 * op (add, sub, mul, div); SiLU and GELU as well as the ReLU family. */
#ifndef CNN_RUNTIME_NET_H
#define CNN_RUNTIME_NET_H

#include <stdbool.h>
#include "model/graph.h"
#include "runtime/clrt.h"

typedef struct cnn_plan {
    int n;                /* layers */
    int max_batch;
    int *root;            /* [n] layer whose buffer holds layer i's output (i itself when it computes;
                             CNN_GRAPH_INPUT when it is a view of the input) */
    bool *computes;       /* [n] enqueues work in the forward pass */
    int *fold_bn;         /* [n] conv i: index of the batchnorm folded into it, else -1 */
    cnn_act *act;         /* [n] activation run in layer i's epilogue */
    float *slope;         /* [n] leaky_relu slope for act */
    int *slot;            /* [n] buffer slot of computing layers, else -1 */
    size_t *slot_bytes;   /* [n_slots] */
    int n_slots;
    bool *packed;         /* [n] conv i runs the packed GEMM path (pack[i] valid) */
    cnn_conv_pack *pack;  /* [n] its GEMM layout for max_batch images */
    size_t input_bytes, scratch_bytes, weight_bytes, peak_bytes;
    size_t gemm_bytes;    /* GEMM result of the packed path (its own buffer: CLBlast wants offset 0) */
} cnn_plan;

/* The activation a layer computes (CNN_ACT_NONE for every other op). */
cnn_act cnn_act_of(const cnn_layer_spec *s);

/* keep: [g->n] layers whose outputs must be readable after the forward pass
 * (NULL: only the last layer).  Host only: `info` uses it without a device. */
int cnn_plan_build(const cnn_graph *g, const bool *keep, int max_batch, cnn_plan *plan);
/* Same, for a device of the given kind (cnn_blas_packing): the packed,
 * batched convolution path and Winograd were built and measured for CPUs
 * (PoCL); other devices (GPUs, CNN_PACK_NONE) keep one im2col + GEMM per
 * image, which measured 3x faster on an NVIDIA H100 (test/bench/NOTES.md
 * 10).  cnn_plan_build plans for a PoCL CPU (the own GEMM's packing). */
int cnn_plan_build_for(const cnn_graph *g, const bool *keep, int max_batch, cnn_packing packing, cnn_plan *plan);
/* Same, with the kernel of each 3x3 convolution chosen by measurement
 * (wino[i]: 1 Winograd, 0 im2col, -1 the rule; see runtime/choose.h) when
 * wino is not NULL.  exact: a plan that keeps every layer (gradient mode)
 * runs every convolution as im2col, whose rounding is a dot product's;
 * false lets it take Winograd as a forward plan would. */
int cnn_plan_build_with(const cnn_graph *g, const bool *keep, int max_batch, cnn_packing packing,
                        const signed char *wino, bool exact, cnn_plan *plan);
void cnn_plan_free(cnn_plan *plan);

typedef struct cnn_net {
    cnn_cl *cl;              /* borrowed */
    const cnn_graph *g;      /* borrowed */
    cnn_plan plan;
    cl_mem input;            /* [max_batch, C, H, W] network input */
    cl_mem scratch;          /* im2col columns (one image, or the batch on the packed path) */
    cl_mem gemm_out;         /* packed path: GEMM result before the epilogue */
    cl_mem *slots;           /* [plan.n_slots] */
    cl_mem *w, *b;           /* [n] per-layer weight / bias-or-shift (NULL when none) */
    cl_mem *scale;           /* [n] batchnorm scale when not folded */
    cl_mem *wpack;           /* [n] packed conv weights (plan.packed); w[i] keeps the plain layout
                              * only for the backward */
    bool backward;           /* created for cnn_backward: every layer's plain weights are there */
    bool fast;               /* ... as CNN_NET_BACKWARD_FAST */
    bool *in_place;          /* [n] a parameter buffer is the weights file's memory (CPU devices):
                              * the file stays mapped until the network is freed */
    bool any_in_place;
    int choices_measured;    /* convolution shapes timed while creating it (runtime/choose.h) */
    double choices_ms;       /* ... and how long that took */
    double *layer_ms;        /* [n] last forward's per-layer time when cl->profiling */
    int layer_ms_images;     /* ... and that forward's batch */
} cnn_net;

/* What a network is created for: the forward alone; the backward too, with
 * every convolution an im2col dot product so that ReLU and max-pool
 * decisions round as PyTorch's do (gradient maps compared digit for
 * digit); or the backward with each 3x3 convolution's kernel chosen by
 * measurement, Winograd included (feature visualisation: an optimiser
 * needs the gradient of what the forward computed, not PyTorch's
 * rounding). */
typedef enum cnn_net_mode { CNN_NET_FORWARD, CNN_NET_BACKWARD, CNN_NET_BACKWARD_FAST } cnn_net_mode;

/* Plans, allocates every buffer and uploads the weights (folded where the
 * plan fuses; a packed conv's plain weights only for the backward).  Errors
 * name the layer and the OpenCL call. */
int cnn_net_create(cnn_net *net, cnn_cl *cl, const cnn_graph *g, const bool *keep, int max_batch, cnn_net_mode mode);

/* Same, and frees each layer's host parameters as soon as they are on the
 * device (cnn_graph_release_params), so the host never holds the model
 * twice: the peak is the device copy plus one layer.  Use when nothing
 * needs the host parameters afterwards. */
int cnn_net_create_consuming(cnn_net *net, cnn_cl *cl, cnn_graph *g, const bool *keep, int max_batch,
                             cnn_net_mode mode);
void cnn_net_free(cnn_net *net);

/* Runs the forward pass on the first n images of net->input (enqueued; the
 * caller reads results with cnn_net_read, which blocks). */
int cnn_net_forward(cnn_net *net, int n);

/* Runs only layers [first, last) on the first n images: their inputs must
 * hold what a full forward leaves there (an ablation changes a kept
 * layer's output between two ranges). */
int cnn_net_forward_range(cnn_net *net, int first, int last, int n);
/* The operands of binary layer i (add, sub, mul, div) in the order of
 * g->layers[i].bin: its input layers' buffers, or that of its one input
 * and its constant's (NULL for `value`). */
void cnn_net_operands(const cnn_net *net, int i, cl_mem ops[2]);

/* Conv or linear layer i's weights on the device, in the layout of the
 * weights file: read into w (write false), or replaced by w (write true:
 * the plain buffer and the packed copy; a buffer that was the weights
 * file's memory gets a device copy instead, the file is never written).
 * Needs a network that holds them unfolded (one created for the
 * backward): CNN_ERR_USAGE naming the layer otherwise.  For --sanity's
 * model randomisation. */
int cnn_net_layer_weights(cnn_net *net, int i, float *w, bool write);

/* The buffer holding layer i's output ([N, c, h, w]). */
cl_mem cnn_net_buffer(const cnn_net *net, int layer);

/* Reads layer i's output for images [0, n) into dst (n * numel floats). */
int cnn_net_read(cnn_net *net, int layer, int n, float *dst);

#endif
