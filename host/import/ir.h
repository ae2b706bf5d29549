/* The importer's view of an ONNX graph (internal to host/import).
 *
 * Three passes over the nodes, in topological order:
 *   build (ir.c)   values and nodes, producers and uses, cycles and missing
 *                  inputs, the nodes the output depends on; then constant
 *                  folding (fold.c) and shape inference (infer.c) in one
 *                  walk, so that Shape of a computed tensor folds like Shape
 *                  of a constant;
 *   fuse (fuse.c)  node patterns that are one pipeline op (LayerNorm, GELU,
 *                  SiLU, hardswish, channel shuffle, Pad + pool, MatMul +
 *                  bias);
 *   emit (emit.c, lower.c)  pipeline layers and tensors.
 * Tensors are ONNX tensors with their batch axis (axis 0); a pipeline layer
 * holds one image [C, H, W], so every computed value also records which
 * of C, H, W each of its other axes is (`phys`): a Transpose that keeps the
 * batch axis first changes only that record, no layer is written. */
#ifndef CNN_IMPORT_IR_H
#define CNN_IMPORT_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "import/onnx.h"

#define IR_MAX_RANK 8
#define IR_LAYER_INPUT (-1) /* a value that is the network input */
#define IR_LAYER_NONE (-2)

/* The ONNX operators the importer knows, folded or lowered. */
typedef enum ir_op {
    OP_UNKNOWN,
    /* lowered to pipeline ops (and folded when all inputs are constant, where noted in ir.c) */
    OP_CONV, OP_BATCHNORM, OP_RELU, OP_LEAKYRELU, OP_SIGMOID, OP_TANH, OP_HARDSIGMOID, OP_HARDSWISH, OP_CLIP,
    OP_MAXPOOL, OP_AVGPOOL, OP_GLOBALAVGPOOL, OP_GLOBALMAXPOOL, OP_FLATTEN, OP_GEMM, OP_MATMUL, OP_ADD, OP_SUB,
    OP_MUL, OP_DIV, OP_CONCAT, OP_SOFTMAX, OP_DROPOUT, OP_IDENTITY, OP_LRN, OP_REDUCEMEAN, OP_TRANSPOSE,
    OP_RESHAPE, OP_SQUEEZE, OP_UNSQUEEZE, OP_SPLIT, OP_SLICE, OP_PAD, OP_LAYERNORM, OP_ERF, OP_POW, OP_SQRT,
    /* folded only (their inputs must be constant) */
    OP_CONSTANT, OP_SHAPE, OP_SIZE, OP_GATHER, OP_CAST, OP_NEG, OP_RECIPROCAL, OP_ABS, OP_FLOOR, OP_CEIL,
    OP_EXP, OP_MIN, OP_MAX, OP_EQUAL, OP_LESS, OP_GREATER, OP_WHERE, OP_NOT, OP_RANGE, OP_CONSTANTOFSHAPE,
    OP_EXPAND,
    OP_COUNT
} ir_op;

/* Patterns found by fuse.c; set on the last node of the pattern, whose
 * output is the pattern's output. */
typedef enum ir_fused {
    FUSED_NONE,
    FUSED_SILU,         /* x * Sigmoid(x) */
    FUSED_HARDSWISH,    /* x * HardSigmoid(x, 1/6, 1/2) */
    FUSED_GELU,         /* x * 0.5 * (1 + Erf(x / sqrt 2)) */
    FUSED_LAYERNORM,    /* (x - mean) / sqrt(var + eps) [* gamma + beta] over the last axis */
    FUSED_LINEAR,       /* MatMul(x, W) [+ b] */
    FUSED_SHUFFLE,      /* Reshape [N, g, C/g, H, W], Transpose [0, 2, 1, 3, 4], Reshape back */
    FUSED_PADPOOL,      /* Pad then AveragePool / MaxPool, into the pool's padding */
} ir_fused;

typedef struct ir_val {
    const char *name;           /* borrowed from the model ("" never: absent inputs are -1) */
    int dtype;                  /* ONNX type; computed values are FLOAT */
    int rank;
    int64_t dims[IR_MAX_RANK];
    size_t numel;
    bool known;                 /* shape and, for constants, data are known */
    bool is_const;
    float *f;                   /* constant of a float type: [numel] */
    int64_t *i;                 /* constant of an integer or bool type: [numel] */
    bool owned;                 /* f / i are ours to free */
    bool from_init;             /* an initializer (or an Identity of one): its name is a weights name */
    const Onnx__TensorProto *init; /* the initializer, read when a node first needs it */
    int producer;               /* node index; -1 for initializers and graph inputs */
    int n_uses;                 /* by the nodes the output depends on (and the graph output) */
    /* emission */
    int layer;                  /* IR_LAYER_INPUT, a layer index or IR_LAYER_NONE */
    int8_t phys[IR_MAX_RANK];   /* axis -> 0 (C), 1 (H), 2 (W); -1 for the batch axis */
    bool flat;                  /* the layer holding it is a feature vector */
    /* A flatten of a tensor whose axes a Transpose reordered (Keras' NHWC
     * Flatten before its Dense): the layer holds the features in [C, H, W]
     * order, the model means them in the order of logical axes 1..3 of
     * dims fperm_dims on physical axes fperm_phys.  Only a matrix product
     * with constant weights may read it; its columns are reordered. */
    bool fperm;
    int8_t fperm_phys[3];
    int64_t fperm_dims[3];
} ir_val;

typedef struct ir_node {
    const Onnx__NodeProto *p;
    ir_op op;
    int *in, n_in;              /* value indices; -1 for an optional input left empty */
    int *out, n_out;
    bool live;                  /* the graph output depends on it */
    bool folded;                /* computed at import: its outputs are constants */
    bool skip;                  /* part of a fused pattern that ends at a later node */
    ir_fused fused;
    int fhead;                  /* fused: the pattern's first node (its name names the layer) */
    /* fused: the pattern's input value, its constants, its other numbers */
    int fx;                     /* the pattern's input */
    int fa, fb;                 /* LayerNorm gamma / beta, Linear W / b, PadPool: the Pad node */
    double feps;                /* LayerNorm eps; Linear: 1 when W is [out, in] already */
    int fgroups;                /* channel shuffle */
} ir_node;

typedef struct cnn_ir {
    cnn_onnx_file *file;        /* borrowed */
    const char *path;           /* for messages */
    int64_t opset;
    ir_val *vals;
    int n_vals, cap_vals;
    ir_node *nodes;             /* in topological order */
    int n_nodes;
    int *val_slots;             /* hash of value names -> index (-1 free) */
    size_t slot_mask;
    int input;                  /* the network input value */
    int output;                 /* the network output value */
    int64_t batch;              /* the input's batch size as the model states it (1 when symbolic) */
    bool batch_symbolic;
    int size_hw[2];             /* H, W to use where the model's are symbolic (0: none given) */
} cnn_ir;

/* ir.c: builds g from f (reading, then folding and shape inference).
 * size_hw: the input's H and W where the model leaves them symbolic (0, 0:
 * refused then). */
int cnn_ir_build(cnn_onnx_file *f, const int size_hw[2], cnn_ir *g);
void cnn_ir_free(cnn_ir *g);

/* Geometry of Conv / MaxPool / AveragePool on input dims[rank] ([N, C, H,
 * W], or [N, C, L] taken as [N, C, L, 1]; kernel: the weight's spatial
 * sizes for Conv): kernel_shape, strides, dilations, pads or auto_pad,
 * ceil_mode, count_include_pad, group, checked; out = ONNX's output size,
 * which must agree with PyTorch's (else an error). */
typedef struct ir_window {
    int k[2], s[2], d[2];
    int pad[4];                 /* top, bottom, left, right */
    bool ceil_mode, count_include_pad;
    int64_t out[2];
    int group;
} ir_window;
int cnn_ir_window(const cnn_ir *g, int node, const int64_t *dims, int rank, const int64_t *kernel, ir_window *w);

/* Pad's parameters: pads[2 * rank] (begins, then ends), the constant
 * value, the mode ("constant", "reflect", "edge"). */
int cnn_ir_pad_params(const cnn_ir *g, int node, int rank, int64_t *pads, double *value, char *mode, size_t msize);

/* Between ir.c (values, the walk), fold.c (folding and its helpers) and
 * infer.c (shape inference): */
bool cnn_ir_numel_of(int rank, const int64_t *dims, size_t *out);  /* false on overflow */
void cnn_ir_dims_str(int rank, const int64_t *dims, char *buf, size_t size); /* "[1, 3, 224, 224]" */
/* Value v becomes a constant of type dtype and shape dims, data allocated (not set). */
int cnn_ir_make_const(cnn_ir *g, int node, int v, int dtype, int rank, const int64_t *dims);
/* Value dst is src's data under another shape (not owned). */
void cnn_ir_alias_const(cnn_ir *g, int dst, int src, int rank, const int64_t *dims);
int cnn_ir_load_tensor(cnn_ir *g, int v, const Onnx__TensorProto *t); /* an initializer / Constant's data */
int cnn_ir_in_val(const cnn_ir *g, int node, int k);                /* input k's value or -1 */
int cnn_ir_norm_axis(const cnn_ir *g, int node, int64_t axis, int rank, int *out);
/* A constant integer input k (a shape, axes, pads) into out[max]; *n = -1 when absent. */
int cnn_ir_const_ints(const cnn_ir *g, int node, int k, const char *what, int64_t *out, int max, int *n);
/* Axes of Squeeze / Unsqueeze / ReduceMean: an attribute before opset_input, input k from it on. */
int cnn_ir_axes_of(const cnn_ir *g, int node, int opset_input, int k, int64_t *out, int *n);
/* numpy broadcasting of the shapes of values vs[n]. */
int cnn_ir_broadcast(const cnn_ir *g, int node, const int *vs, int n, int *rank, int64_t *out);
/* Output shape of Reshape / Flatten / Squeeze / Unsqueeze for input x. */
int cnn_ir_view_shape(cnn_ir *g, int node, const ir_val *x, int *rank, int64_t *dims);
/* Slice parameters per axis, resolved as ONNX clamps them. */
typedef struct ir_slice {
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
} ir_slice;
int cnn_ir_slice_params(cnn_ir *g, int node, const ir_val *x, ir_slice *s);
int cnn_ir_perm_of(cnn_ir *g, int node, int rank, int *perm);     /* Transpose's perm, checked */
int cnn_ir_fold(cnn_ir *g, int node);                             /* every input constant */
int cnn_ir_fold_shape(cnn_ir *g, int node);                       /* Shape and Size of any value */
int cnn_ir_infer(cnn_ir *g, int node);                            /* a computed output's shape */

/* fuse.c */
int cnn_ir_fuse(cnn_ir *g);

/* emit.c (with lower.c): the pipeline's layers (YAML lines) and the
 * tensors they bind. */
typedef struct cnn_ir_tensor {
    char *name;
    int ndim;
    int64_t dims[4];
    size_t numel;
    const float *data;          /* [numel]: the model's (borrowed) or `owned` */
    float *owned;
} cnn_ir_tensor;

typedef struct cnn_ir_out {
    char *layers;               /* "  - {name: ..., op: ...}  # node\n" lines */
    size_t len, cap;
    int n_layers;
    cnn_ir_tensor *tensors;     /* [n_tensors] in the order the layers bind them */
    int n_tensors, cap_tensors;
    int in_c, in_h, in_w;       /* the network input, one image */
    int out_c, out_h, out_w;    /* the network output, one image */
    bool out_flat;
    char newer[256];            /* ops and keys written that came with the newer op set ("mul, gelu") */
} cnn_ir_out;

int cnn_ir_emit(cnn_ir *g, cnn_ir_out *out);
void cnn_ir_out_free(cnn_ir_out *o);

/* "PATH: node 'NAME' (OP, opset N): <fmt>" as CNN_ERR_INPUT. */
int cnn_ir_node_error(const cnn_ir *g, int node, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The one line for an operator that is not supported, with the list of
 * those that are. */
int cnn_ir_unsupported(const cnn_ir *g, int node, const char *why);

/* ONNX spelling of an op ("Conv"). */
const char *cnn_ir_op_name(ir_op op);

/* Attribute helpers: the value or the default; CNN_ERR_INPUT naming the
 * node when the attribute has another type or too many values. */
int cnn_ir_attr_int(const cnn_ir *g, int node, const char *name, int64_t def, int64_t *out);
int cnn_ir_attr_float(const cnn_ir *g, int node, const char *name, double def, double *out);
int cnn_ir_attr_ints(const cnn_ir *g, int node, const char *name, int64_t *out, int max, int *n);
int cnn_ir_attr_string(const cnn_ir *g, int node, const char *name, const char *def, char *out, size_t size);

/* The other input of a binary node (not value v), or -1. */
int cnn_ir_other_input(const ir_node *n, int v);

/* A constant's value k as a double (float or integer constants). */
double cnn_ir_const_at(const ir_val *v, size_t k);

/* True when value v is a constant holding one value (any shape of one
 * element), written to *x. */
bool cnn_ir_scalar(const ir_val *v, double *x);

#endif
