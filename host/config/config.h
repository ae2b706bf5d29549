/* The pipeline file (YAML) as plain C structs.  This module knows YAML and
 * nothing else: it checks syntax, keys, value types and ranges, and that
 * layer names are unique and `in:` names an earlier layer.  Shapes and
 * weights are checked later by the graph (model/graph.h), which reports
 * through cnn_pipeline_error_at() so every message carries file:line:col.
 * The schema is documented in configs/README.md. */
#ifndef CNN_CONFIG_CONFIG_H
#define CNN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cnn_pos {
    int line, col; /* 1-based; 0 when unknown (e.g. set from the command line) */
} cnn_pos;

typedef enum cnn_op {
    CNN_OP_CONV2D,
    CNN_OP_BATCHNORM,
    CNN_OP_RELU,
    CNN_OP_RELU6,
    CNN_OP_LEAKY_RELU,
    CNN_OP_SIGMOID,
    CNN_OP_TANH,
    CNN_OP_HARDSWISH,
    CNN_OP_MAXPOOL,
    CNN_OP_AVGPOOL,
    CNN_OP_GLOBAL_AVGPOOL,
    CNN_OP_ADAPTIVE_AVGPOOL,
    CNN_OP_FLATTEN,
    CNN_OP_LINEAR,
    CNN_OP_ADD,
    CNN_OP_CONCAT,
    CNN_OP_SOFTMAX,
    CNN_OP_DROPOUT,
    CNN_OP_LRN,
    CNN_OP_MUL,
    CNN_OP_SUB,
    CNN_OP_DIV,
    CNN_OP_SILU,
    CNN_OP_GELU,
    CNN_OP_HARDSIGMOID,
    CNN_OP_CLIP,
    CNN_OP_LAYERNORM,
    CNN_OP_SLICE,
    CNN_OP_CHANNEL_SHUFFLE,
    CNN_OP_PAD,
    CNN_OP_RESIZE,
    CNN_OP_GLOBAL_MAXPOOL,
    CNN_OP_COUNT
} cnn_op;

/* "conv2d" for CNN_OP_CONV2D ... (the YAML spelling). */
const char *cnn_op_name(cnn_op op);

/* pad's `mode` */
typedef enum cnn_pad_mode { CNN_PAD_CONSTANT = 0, CNN_PAD_REFLECT = 1, CNN_PAD_REPLICATE = 2 } cnn_pad_mode;

typedef struct cnn_layer_spec {
    char *name;
    cnn_pos pos;        /* the layer's mapping */
    cnn_op op;
    cnn_pos op_pos;
    char **in;          /* [n_in] names; n_in == 0: the previous layer (or the input) */
    cnn_pos *in_pos;    /* [n_in] */
    int n_in;
    char *params;       /* state_dict prefix, NULL when absent */
    cnn_pos params_pos;
    int out;            /* conv2d: out channels; linear: out features (0 if not given) */
    int kernel[2];      /* [h, w] (0 if not given) */
    int stride[2];      /* [h, w]; when not given: 1 for conv2d, = kernel for pools */
    int dilation[2];    /* [h, w], default 1 */
    int pad[4];         /* top, bottom, left, right; default 0 */
    int groups;         /* default 1 */
    bool bias;          /* default true */
    bool ceil_mode;     /* default false */
    bool count_include_pad; /* default true */
    int out_hw[2];      /* adaptive_avgpool output [h, w]; resize `size` */
    float eps;          /* batchnorm, default 1e-5 */
    float slope;        /* leaky_relu, default 0.01 */
    int size;           /* lrn */
    float alpha, beta, k; /* lrn: defaults 1e-4, 0.75, 1.0; hardsigmoid alpha 1/6, beta 0.5 */
    float p;            /* dropout (ignored) */
    /* add, sub, mul, div: the second operand when `in` names one layer */
    char *cnst;         /* `const:` a tensor of the weights file (full name), or NULL */
    cnn_pos cnst_pos;
    bool has_value;     /* `value:` given (binary ops: the scalar operand; pad: the fill) */
    float value;
    bool const_first;   /* y = const op x (default: x op const) */
    bool gelu_tanh;     /* gelu `approximate: tanh` (default none: erf) */
    float lo, hi;       /* clip `min`, `max`; default -inf, +inf */
    bool affine;        /* layernorm, default true */
    bool over_channels; /* linear `over: channels` (a 1x1 convolution), default over features */
    int start, end, step; /* slice, along channels: end exclusive; negative counts from the end */
    bool has_end;       /* end given (else: to the last channel) */
    cnn_pad_mode pad_mode; /* pad, default constant */
    bool bilinear;      /* resize `mode: bilinear` (default nearest) */
    bool align_corners; /* resize, default false */
    double scale[2];    /* resize `scale: [sh, sw]` (0 when `size` is given: out_hw) */
} cnn_layer_spec;

typedef enum cnn_resize_mode {
    CNN_RESIZE_NONE,          /* image must already be H x W */
    CNN_RESIZE_SHORTER_CROP,  /* shorter side to `shorter`, then centre crop */
    CNN_RESIZE_STRETCH        /* to exactly stretch[0] x stretch[1] */
} cnn_resize_mode;

typedef struct cnn_input_spec {
    int c, h, w;             /* the network input shape */
    bool gray;               /* color: gray (else rgb); must agree with c (1 or 3) */
    bool tensor;             /* color: none: a tensor input (.npy files), any c, no resize */
    cnn_resize_mode resize;
    int shorter;             /* CNN_RESIZE_SHORTER_CROP */
    int crop[2];             /* [h, w] after resize; must equal [h, w] */
    int stretch[2];          /* [h, w] */
    float scale;             /* default 1/255 */
    float mean[3], std[3];   /* per channel; defaults 0 and 1 */
    cnn_pos pos;
} cnn_input_spec;

/* Layers one fused CAM may take (`layers:`). */
#define CNN_MAX_FUSE 16

/* ROAD percentiles one tap may ask for, and the default list. */
#define CNN_MAX_ROAD 32
#define CNN_MAX_CHANNEL_LIST 1024 /* `channels:` entries */
#define CNN_MAX_EXAMPLES 64 /* examples: most inputs kept per channel (`top:`) */
#define CNN_ROAD_DEFAULT {10, 20, 30, 40, 50, 60, 70, 80, 90}
#define CNN_ROAD_N_DEFAULT 9

/* A tap: what to show of which layer.  Kinds and scopes are checked against
 * the lists below; the visualization module interprets them. */
typedef struct cnn_tap_spec {
    char **layers;      /* [n_layers]; n_layers == 0 for input-level methods */
    int n_layers;
    bool fuse;          /* given as `layers:`: one CAM fused over them (else `layer:`, one tap each) */
    cnn_pos pos;
    char *show;         /* kind: "activations", "filters", "weights", ... */
    char *normalize;    /* scope or NULL (kind's default) */
    float fixed[2];     /* normalize: fixed -> range: [lo, hi] */
    bool has_fixed;
    float clip[2];      /* percentiles, e.g. 0.5, 99.5 */
    bool has_clip;
    char *colormap;     /* NULL: kind's default */
    int columns;        /* montage columns, 0 = ceil(sqrt(n)) */
    int max_channels;   /* cap on tiles, 0 = default */
    bool is_signed;     /* `signed:` symmetric range around 0 (default: true for filters/weights) */
    bool has_signed;
    int units;          /* weights: per-unit montages of the first N units (0 = none) */
    char *cls;          /* class: "top1", "top3", an index or a label (gradient taps) */
    char *score;        /* "logit" (default) or "prob" */
    float alpha;        /* overlay alpha, default 0.5 */
    int samples;        /* smoothgrad n / integrated steps; 0 = default */
    float sigma;        /* smoothgrad noise level; 0 = default */
    char *baseline;     /* integrated/occlusion/deletion baseline */
    int window, step;   /* occlusion */
    int curves;         /* deletion/insertion curve steps; 0 = none */
    char *reduce;       /* smoothgrad: "paper" (default), "per-copy", "magnitude" */
    int cells;          /* rise: grid side; 0 = default (7) */
    float keep;         /* rise: probability a cell is kept; 0 = default (0.5) */
    int segments;       /* lime / kernelshap: superpixels; 0 = default (50) */
    float kernel_width; /* lime: kernel width; 0 = default (0.25) */
    int n_road;         /* ROAD percentiles (`road:`); 0 = none */
    float road[CNN_MAX_ROAD];
    float road_noise;   /* ROAD imputation noise when has_road_noise (default 0.01) */
    bool has_road_noise;
    int *channels;      /* examples, maximize: these channels (`channels: [..]`), else the first max_channels */
    int n_channels;
    /* maximize (pipeline/maximize.c) */
    int steps;          /* 0 = default (256; dream: 10 per octave) */
    float lr;           /* 0 = default (0.05; dream: 1.5 grey levels of 255 per step) */
    char *param;        /* "fourier" (default) or "pixel" */
    char *start;        /* "grey" or "mean" (the normalisation's mean colour; default) */
    bool decorrelate, has_decorrelate; /* default true */
    bool decorrelate_inputs;           /* decorrelate: inputs (the run's images' colour covariance) */
    bool transforms, has_transforms;   /* default true */
    float tv, l2;       /* regulariser weights, default 0 */
    int blur_every;     /* blur the pre-image every this many steps (0: never) */
    float blur_sigma;   /* ... by a Gaussian of this many pixels; 0 = default (0.5) */
    char *objective;    /* "channel" (default: its mean) or "neuron" (the centre position) */
    int sign;           /* 0 = default (1), or -1 */
    int seed;           /* with has_seed; default 0 */
    bool has_seed;
    int diversity;      /* maximize: images per channel, 0 = default (1) */
    float diversity_weight; /* ... weight of their Gram matrices' similarity, with has_diversity_weight (100) */
    bool has_diversity_weight;
    int size[2];        /* maximize: the image's [h, w]; 0 = the network's input */
    int octaves;        /* dream: image scales; 0 = default (4) */
    float octave_scale; /* dream: ratio of one octave's size to the next smaller; 0 = default (1.4) */
    int jitter;         /* dream: largest random shift in pixels, with has_jitter (default 32 at 224) */
    bool has_jitter;
    int top;            /* examples: inputs kept per channel; 0 = default (9) */
    char *by;           /* examples: "max" (default) or "mean" of the channel */
} cnn_tap_spec;

/* Known tap kinds and normalisation scopes and colormaps (NULL-terminated). */
extern const char *const cnn_tap_kinds[];
extern const char *const cnn_norm_scopes[];
extern const char *const cnn_colormaps[];

typedef struct cnn_pipeline {
    char *path;         /* the YAML file as given (used in messages) */
    char *dir;          /* its folder: relative paths are resolved against it */
    int version;        /* must be 1 */
    char *model_name;
    char *weights;      /* resolved path (NULL if absent: --weights must give it) */
    cnn_pos weights_pos;
    char *labels;       /* resolved path or NULL */
    cnn_pos labels_pos;
    cnn_input_spec input;
    cnn_layer_spec *layers; /* [n_layers], execution order */
    int n_layers;
    cnn_tap_spec *taps;     /* [n_taps] */
    int n_taps;
    bool taps_given;        /* a `taps:` key was present (even if empty) */
    char *out_dir;          /* output.dir as written (relative to the cwd) or NULL */
    bool npy;
    bool report;            /* default true */
    int top;                /* top-k printed, default 5 */
    int png_level;          /* zlib level 0..9, default 1 */
} cnn_pipeline;

/* Parses and checks `path`.  On error returns CNN_ERR_INPUT with a message
 * "path:line:col: what" (CNN_ERR_INPUT "path: cannot open" when unreadable).
 * Limits: file <= 4 MiB, nesting depth <= 32, aliases refused, <= 10000
 * layers, names <= 128 bytes.  `p` is always safe to cnn_pipeline_free(). */
int cnn_pipeline_load(const char *path, cnn_pipeline *p);

/* Same, from memory (`name` is used in messages; relative paths resolve
 * against `dir`). For tests and fuzzing. */
int cnn_pipeline_parse(const char *name, const char *dir, const char *text, size_t len,
                       cnn_pipeline *p);

void cnn_pipeline_free(cnn_pipeline *p);

/* Index of layer `name` or -1; "input" is -1 too (check with strcmp). */
int cnn_pipeline_find(const cnn_pipeline *p, const char *name);

/* Sets the message "path:line:col: <fmt>" and returns CNN_ERR_INPUT. */
int cnn_pipeline_error_at(const cnn_pipeline *p, cnn_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
