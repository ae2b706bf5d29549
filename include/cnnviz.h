/* cnnviz: run a convolutional network on an OpenCL device and read what it
 * holds and sees (activations, filters, weights, gradient maps) as float32
 * arrays, or render them as RGBA images.  The library behind `cnnviz-cl`.
 *
 * Conventions
 *  - Every function that can fail returns a cnnviz_status: CNNVIZ_OK (0) or
 *    a negative code.  cnnviz_last_error() then holds one line saying what
 *    went wrong (file, layer, OpenCL call); it is per thread and stays
 *    valid until the next cnnviz call on the same thread.
 *  - Handles are opaque.  A cnnviz_model owns its device context, its
 *    network and its buffers; cnnviz_close frees all of it.  Strings the
 *    library returns (layer names, labels, device name) belong to the model
 *    and live until cnnviz_close.
 *  - Every array is allocated by the caller and filled by the library:
 *    each function takes the element count of the caller's buffer and
 *    fails with CNNVIZ_ERR_USAGE when it is too small.  Passing a NULL
 *    buffer asks only for the shape.
 *  - Tensors are float32, C order: a batch of inputs is [N, C, H, W] in
 *    network units (after the pipeline's preprocessing); images are 8-bit,
 *    H x W x channels, row by row.
 *  - No global state: two models (on one device or two) are independent.
 *    One model serialises its calls: a second thread calling into a model
 *    waits until the first call returns.  The result of a run (the batch
 *    whose activations and maps are read) belongs to the model, so threads
 *    sharing a model should each run and read under their own lock.
 *  - Nothing is printed unless a log callback is given (cnnviz_open_opts);
 *    warnings otherwise go to stderr as "cnnviz: warning: ...".
 *  - The library installs no signal handler and maps no file: a weights
 *    file is read whole at open, so rewriting it later harms nothing.
 *
 * Link with -lcnnviz (pkg-config cnnviz). */
#ifndef CNNVIZ_H
#define CNNVIZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNNVIZ_VERSION_MAJOR 0
#define CNNVIZ_VERSION_MINOR 4
#define CNNVIZ_VERSION_PATCH 0
#define CNNVIZ_VERSION_STRING "0.4.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define CNNVIZ_VERSION 400

#if defined(__GNUC__)
#define CNNVIZ_API __attribute__((visibility("default")))
#else
#define CNNVIZ_API
#endif

typedef enum cnnviz_status {
    CNNVIZ_OK = 0,
    CNNVIZ_ERR_USAGE = -1,      /* a bad argument: unknown layer or method, a buffer too small */
    CNNVIZ_ERR_INPUT = -2,      /* a bad file: pipeline, model, weights, image */
    CNNVIZ_ERR_IO = -3,         /* the system failed to read or write a file */
    CNNVIZ_ERR_DEVICE = -4,     /* an OpenCL or CLBlast call failed */
    CNNVIZ_ERR_NOMEM = -5,      /* a host allocation failed */
    CNNVIZ_ERR_NODEV = -6,      /* no OpenCL platform or device */
    CNNVIZ_ERR_INTERRUPTED = -7,/* a signal arrived during cnnviz_write_run */
    CNNVIZ_ERR_STATE = -8       /* called out of order: nothing run yet, or a map over another batch */
} cnnviz_status;

/* "0.4.0": the library's version, which may differ from the header's. */
CNNVIZ_API const char *cnnviz_version(void);

/* The last error of this thread ("" after success). */
CNNVIZ_API const char *cnnviz_last_error(void);

/* Every OpenCL platform and device, as `cnnviz-cl devices` prints them
 * (a "platform P: ..." line, then "  device D: NAME" and its details).
 * Copies at most `size` bytes (NUL-terminated) into buf and returns the
 * full length, or a negative status. */
CNNVIZ_API int cnnviz_devices(char *buf, size_t size);

/* ---------------------------------------------------------------------- */
/* Opening a model                                                         */

typedef struct cnnviz_model cnnviz_model;

/* Log lines: level 0 information, 1 warning.  Called on the thread that
 * made the cnnviz call, during that call. */
typedef void (*cnnviz_log_fn)(void *user, int level, const char *line);

typedef struct cnnviz_open_opts {
    size_t struct_size;   /* sizeof(cnnviz_open_opts): set by cnnviz_open_opts_init */
    const char *weights;  /* a .safetensors file instead of the pipeline's (NULL: the pipeline's) */
    const char *platform; /* NULL, an index or a name substring (as `--platform`); NULL: $CNNVIZ_PLATFORM, */
    const char *device;   /* ... then the first GPU, else the first device ("gpu", "cpu", an index) */
    int max_batch;        /* most images one run takes (default 1) */
    int gradients;        /* 1 (default): keep every tensor so that gradient maps can be computed;
                           * 0: forward only (activations of every layer are still readable) */
    int strict;           /* 1: weights holding NaN or Inf are an error (default 0: a warning) */
    /* An ONNX model's preprocessing (ignored for a pipeline YAML, which
     * states its own): "imagenet" (default: resize the shorter side to
     * 256, crop 224, pixel / 255, ImageNet mean and std), "none" (pixel /
     * 255 only) or "raw" (pixel values 0..255); mean / std per channel
     * when n_mean / n_std is 1 or 3;
     * size {H, W} where the model leaves its input size open. */
    const char *preprocess;
    float mean[3], std[3];
    int n_mean, n_std;
    int size[2];
    cnnviz_log_fn log;    /* NULL: warnings to stderr, nothing else */
    void *log_user;
} cnnviz_open_opts;

CNNVIZ_API void cnnviz_open_opts_init(cnnviz_open_opts *o);

/* Opens a pipeline YAML or an ONNX model (imported in memory) on a device.
 * opts may be NULL (defaults).  On success *out is a new model; on failure
 * *out is NULL. */
CNNVIZ_API int cnnviz_open(const char *path, const cnnviz_open_opts *opts, cnnviz_model **out);

/* Frees the model and everything it owns; NULL is allowed. */
CNNVIZ_API void cnnviz_close(cnnviz_model *m);

/* ---------------------------------------------------------------------- */
/* What the model is                                                       */

typedef struct cnnviz_layer_info {
    const char *name;     /* as in the pipeline: "layer4", "features.0.0" */
    const char *op;       /* "conv2d", "relu", "linear", ... */
    int c, h, w;          /* one image's output: [c, h, w] (flat layers: [c, 1, 1]) */
    int flat;             /* 1 when the output is a vector */
    long long params;     /* parameter count */
    int has_weight, has_bias;
} cnnviz_layer_info;

CNNVIZ_API int cnnviz_num_layers(const cnnviz_model *m);
/* Layer i (0 .. num_layers - 1), in the order they run. */
CNNVIZ_API int cnnviz_layer(const cnnviz_model *m, int i, cnnviz_layer_info *out);
/* The index of the layer named `name`, or CNNVIZ_ERR_USAGE. */
CNNVIZ_API int cnnviz_find_layer(const cnnviz_model *m, const char *name);
/* The network's input [c, h, w] (one image, network units). */
CNNVIZ_API int cnnviz_input_shape(const cnnviz_model *m, int *c, int *h, int *w);
/* Outputs per image (the last layer's size). */
CNNVIZ_API int cnnviz_num_classes(const cnnviz_model *m);
/* Class i's name from the pipeline's labels, or NULL when there are none. */
CNNVIZ_API const char *cnnviz_class_label(const cnnviz_model *m, int i);
CNNVIZ_API const char *cnnviz_model_name(const cnnviz_model *m);
CNNVIZ_API const char *cnnviz_device_name(const cnnviz_model *m);
CNNVIZ_API int cnnviz_max_batch(const cnnviz_model *m);
/* 1 when the last layer is a softmax (its outputs are probabilities). */
CNNVIZ_API int cnnviz_outputs_probabilities(const cnnviz_model *m);

/* ---------------------------------------------------------------------- */
/* Running a batch                                                         */

/* The network keeps every layer's output (any layer can be read), so its
 * arithmetic is that of a `cnnviz-cl run` with a gradient tap: no fusion
 * of a layer into the next, batch norm unfolded.  A command-line run with
 * activation taps only fuses and may differ from these values in the last
 * bits (relative 1e-6). */

/* Runs n (1 .. max_batch) inputs given as float32 [n, C, H, W] in network
 * units (no preprocessing). */
CNNVIZ_API int cnnviz_run_tensor(cnnviz_model *m, const float *x, int n);

/* Runs n 8-bit images, image i being h[i] x w[i] x channels (1 gray, 3
 * RGB, 4 RGBA: alpha dropped), through the pipeline's preprocessing on
 * the device (resize, crop, scale, mean, std), as the command line does
 * with decoded files. */
CNNVIZ_API int cnnviz_run_images(cnnviz_model *m, const uint8_t *const *images, const int *h, const int *w,
                                 int channels, int n);

/* Runs n image files (PNG or JPEG) as the command line reads them. */
CNNVIZ_API int cnnviz_run_files(cnnviz_model *m, const char *const *paths, int n);

/* Images in the last run (0 before any, and after a run that failed: a
 * failed run leaves nothing to read). */
CNNVIZ_API int cnnviz_batch_size(const cnnviz_model *m);

/* The last run's network output, [n, classes]: count must be at least
 * n * classes. */
CNNVIZ_API int cnnviz_output(cnnviz_model *m, float *out, size_t count);

/* The last run's output of `layer` ("input": the network input), [n, c,
 * h, w] (flat layers [n, c]).  shape (may be NULL) receives {n, c, h, w};
 * out NULL asks only for the shape. */
CNNVIZ_API int cnnviz_activations(cnnviz_model *m, const char *layer, float *out, size_t count, int64_t shape[4]);

/* A layer's parameter: which = "weight", "bias", "running_mean" or
 * "running_var" (batch norm), as the weights file holds it (conv2d weight
 * [out, in/groups, kh, kw]; linear weight [out, in]; per-channel vectors
 * [c]).  shape receives up to 4 dims, *ndim
 * their count; out NULL asks only for the shape. */
CNNVIZ_API int cnnviz_parameter(cnnviz_model *m, const char *layer, const char *which, float *out, size_t count,
                                int64_t shape[4], int *ndim);

/* ---------------------------------------------------------------------- */
/* Gradient maps and other attributions                                    */

typedef struct cnnviz_attr_opts {
    size_t struct_size;   /* sizeof(cnnviz_attr_opts): set by cnnviz_attr_opts_init */
    int prob;             /* 1: the score is the softmax probability; 0 (default): the logit */
    int samples;          /* smoothgrad copies / integrated steps (0: 25 / 50) */
    float sigma;          /* smoothgrad noise, fraction of the input's range (0: 0.15) */
    const char *baseline; /* integrated / occlusion: "black" (integrated's default: pixel value 0 through
                           * the normalisation), "zero" (occlusion's: 0 in network units), "blur", or a
                           * pixel value such as "0.5" */
    int window, stride;   /* occlusion window side and step in pixels (0: ~1/14 of the shorter side, half
                           * of the window) */
    int upsample;         /* 1: CAM-type maps at the input's size (bilinear); 0 (default): the layer's */
    const char *reduce;   /* smoothgrad: "paper" (NULL: max over channels of |mean gradient|), "per-copy"
                           * (mean of each copy's saliency) or "magnitude" (max over channels of the mean
                           * squared gradient) */
    int cells;            /* rise: the masks' grid side (0: 7) */
    float keep;           /* rise: the probability that a cell is kept (0: 0.5) */
} cnnviz_attr_opts;

CNNVIZ_API void cnnviz_attr_opts_init(cnnviz_attr_opts *o);

/* Maps of the last run's images for one method:
 *   saliency, guided, deconvnet, gradxinput, smoothgrad, integrated,
 *   fullgrad, occlusion, rise: [n, H, W] at the input's size (`layer` NULL
 *   or "input");
 *   gradcam, gradcampp, layercam, xgradcam, hirescam, scorecam, ablationcam,
 *   eigencam: [n, h, w] at `layer`'s size (upsample: the input's);
 *   guided-gradcam: [n, H, W] with the CAM of `layer`.
 * targets[n]: the class of each image's map (NULL: each image's top class);
 * opts may be NULL.  The values are those the command line writes to
 * .npy.  shape receives {n, h, w}; out NULL asks only for the shape.  Needs
 * a model opened with gradients = 1 (occlusion excepted).  A method that
 * does not fit the layer (a CAM of a vector, an input method given a
 * layer) is CNNVIZ_ERR_USAGE. */
CNNVIZ_API int cnnviz_attribute(cnnviz_model *m, const char *method, const char *layer, const int *targets,
                                const cnnviz_attr_opts *opts, float *out, size_t count, int64_t shape[3]);

/* ---------------------------------------------------------------------- */
/* Rendering                                                               */

/* Renders an h x w map to RGBA8 (rgba: h * w * 4 bytes) on the device:
 * normalised to [0, 1] ("minmax"; "signed": symmetric around 0;
 * "clip": the 0.5 and 99.5 percentiles), coloured by `colormap` (NULL:
 * "turbo"; or gray, viridis, magma, inferno, jet, rdbu).  overlay >= 0 blends the map with image
 * `overlay` of the last run (alpha: the map's weight, 0 .. 1): the map
 * must then have the input's size (upsample CAMs first). */
CNNVIZ_API int cnnviz_render(cnnviz_model *m, const float *map, int h, int w, const char *colormap,
                             const char *normalize, int overlay, float alpha, uint8_t *rgba);

/* ---------------------------------------------------------------------- */
/* The command line's output folder                                        */

typedef struct cnnviz_write_opts {
    size_t struct_size;       /* sizeof(cnnviz_write_opts): set by cnnviz_write_opts_init */
    const char *const *taps;  /* [n_taps] "LAYER[:KIND]" as --tap */
    int n_taps;
    int no_taps;              /* only the taps given here, not the pipeline's */
    const char *cls;          /* --class for every gradient tap (NULL: each tap's) */
    int npy;                  /* 1: .npy beside the PNGs */
    int report;               /* 1 (default): index.html */
    int batch;                /* images per forward pass (default 1) */
    int top;                  /* predictions listed (0: the pipeline's) */
    const char *platform, *device, *weights;
    int wait_lock;            /* 1: wait for another run on the folder instead of failing */
    cnnviz_log_fn log;        /* progress and results lines (NULL: silent) */
    void *log_user;
    const char *score;        /* --score for every gradient tap: "logit" or "prob" (NULL: each tap's) */
    int curves;               /* --curves: deletion/insertion steps (-1, the default: each tap's) */
    int png_level;            /* --png-level 0..9 (-1, the default: the pipeline's) */
    int strict;               /* --strict: weights holding NaN or Inf are an error */
    /* an ONNX model's preprocessing, as in cnnviz_open_opts */
    const char *preprocess;
    float mean[3], std[3];
    int n_mean, n_std;
    int size[2];
    int road;                 /* --road: 1 ROAD of every map, 0 none (-1, the default: each tap's) */
    int sanity;               /* --sanity N: model randomisation check over the top N layers (0: none) */
} cnnviz_write_opts;

CNNVIZ_API void cnnviz_write_opts_init(cnnviz_write_opts *o);

/* What `cnnviz-cl run MODEL --input ... --out OUT` writes: the inputs
 * (images, .npy files, folders, @lists) through the model into the output
 * folder out_dir (NULL: the pipeline's), published whole at the end or
 * not at all.  A separate device context; no cnnviz_model is needed. */
CNNVIZ_API int cnnviz_write_run(const char *model, const char *const *inputs, int n_inputs, const char *out_dir,
                                const cnnviz_write_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
