/* The network as a checked graph: each layer's inputs resolved to indices,
 * its output shape inferred, its parameters bound from the weights file as
 * float32 (in place where the file holds aligned float32, else converted).
 * Every error carries the YAML position of the layer (or of the key at
 * fault) and names the tensor. */
#ifndef CNN_MODEL_GRAPH_H
#define CNN_MODEL_GRAPH_H

#include <stdint.h>
#include "config/config.h"
#include "model/weights.h"
#include "ops/ops.h"

#define CNN_GRAPH_INPUT (-1) /* an input index meaning "the network input" */

enum { CNN_OWN_WEIGHT = 1, CNN_OWN_BIAS = 2, CNN_OWN_MEAN = 4, CNN_OWN_VAR = 8 };

typedef struct cnn_layer {
    const cnn_layer_spec *spec; /* borrowed from the pipeline */
    int *in;                    /* [n_in] layer indices or CNN_GRAPH_INPUT */
    int n_in;
    int c, h, w;                /* output shape of one image; flattened: [c, 1, 1] */
    bool flat;                  /* output is a feature vector [c] */
    cnn_conv_geom conv;         /* conv2d */
    cnn_pool_geom pool;         /* maxpool / avgpool */
    cnn_bin_geom bin;           /* add (two operands), sub, mul, div */
    cnn_chan_map chan;          /* slice, channel_shuffle */
    cnn_pad_geom pad;           /* pad */
    cnn_resize_geom resize;     /* resize */
    /* Parameters in float32 (NULL when the op has none).  Float32 tensors
     * aligned in the weights file point into its map (read-only, valid
     * while it stays open); others are converted copies, marked in
     * `owned`. */
    float *weight;              /* conv [co, ci/groups, kh, kw]; linear [out, in]; bn and layernorm gamma [c];
                                   a binary op's `const` (bin.shape[1], or [0] when const_first) */
    float *bias;                /* [co] / [out] / bn and layernorm beta [c]; NULL when bias: false */
    float *mean, *var;          /* batchnorm running stats [c] */
    unsigned owned;             /* CNN_OWN_* bits: which parameters are copies */
    size_t n_weight;            /* elements of weight */
    uint64_t params;            /* parameter count (for info) */
    uint64_t macs;              /* multiply-accumulates for one image */
} cnn_layer;

/* A bound tensor that holds NaN or Inf. */
typedef struct cnn_nonfinite {
    char *tensor;              /* its name in the weights file */
    cnn_nonfinite_count count;
} cnn_nonfinite;

typedef struct cnn_graph {
    const cnn_pipeline *pipe;   /* borrowed */
    const cnn_weights *weights; /* borrowed; the parameters may point into it */
    cnn_layer *layers;          /* [n], same order as pipe->layers */
    int n;
    int in_c, in_h, in_w;       /* network input */
    uint64_t total_params, total_macs;
    cnn_nonfinite *nonfinite;   /* [n_nonfinite] bound tensors holding NaN or Inf, in binding order */
    int n_nonfinite;
    bool *used;                 /* [weights->n] tensors some layer binds (NULL without weights) */
} cnn_graph;

/* Builds the graph.  `weights` may be NULL to check shapes only (then no
 * parameter is bound and no tensor is checked).  NaN and Inf in a bound
 * tensor are no error: they are listed in g->nonfinite for the caller to
 * warn about or refuse.  Errors: CNN_ERR_INPUT with
 * "config:line:col: ..." (impossible geometry, mismatched shapes, missing or
 * misshapen tensors, unsupported dtypes). */
int cnn_graph_build(const cnn_pipeline *pipe, const cnn_weights *weights, cnn_graph *g);
void cnn_graph_free(cnn_graph *g);

/* Releases layer i's float parameters (weight, bias, mean, var become
 * NULL; shapes, params and macs stay): copies are freed, parameters used
 * in place have their file pages dropped.  For callers done with them,
 * e.g. once they live on the device.  Close the weights only after every
 * layer's parameters are released or the graph is freed. */
void cnn_graph_release_params(cnn_graph *g, int i);

/* Elements of one image's output of layer i (c*h*w). */
size_t cnn_layer_numel(const cnn_layer *l);

/* The layer runs as a convolution (l->conv): conv2d, or linear over
 * channels (a 1x1 convolution with weights [out, in]). */
bool cnn_layer_is_conv(const cnn_layer *l);

/* The part of the network input that position (y, x) of layer `layer`
 * depends on, found by carrying an interval per axis back through the
 * graph: a convolution or pool maps [a, b] to [a*s - pad, b*s - pad +
 * (k-1)*d], an adaptive pool to its windows, a pad shifts, a resize takes
 * the source rows it reads, a global pool or a flat tensor takes all of
 * its input, and every other op keeps positions (a broadcast operand of
 * size 1 gives its one position).  Several inputs of a layer (add,
 * concat) take the union.  Padding is included: the box may reach outside
 * the image, but one that covers the whole input along an axis is the input
 * on that axis (a flat layer's units take the whole input).  box = {y0, x0,
 * y1, x1}, inclusive, in input pixels.  CNN_ERR_NOMEM or CNN_OK. */
int cnn_graph_field(const cnn_graph *g, int layer, int y, int x, int box[4]);

#endif
