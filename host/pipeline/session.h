/* A model held open on a device for a caller that passes arrays and wants
 * arrays back (the library, include/cnnviz.h): a job without an output
 * folder.  The network keeps every tensor, so any layer's activations can
 * be read after a run, and in gradient mode any method's maps computed
 * through the same method table as `cnnviz-cl run` (pipeline/methods.h),
 * with the same values as its .npy files.  Not thread-safe: one caller at
 * a time (the library locks). */
#ifndef CNN_PIPELINE_SESSION_H
#define CNN_PIPELINE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include "io/image.h"
#include "pipeline/model.h"
#include "runtime/clrt.h"

typedef struct cnn_session cnn_session;

typedef struct cnn_session_opts {
    cnn_model_opts model;
    const char *platform, *device; /* as cnn_cl_init */
    int max_batch;                 /* images per run (>= 1) */
    bool gradients;                /* keep what the backward pass needs */
} cnn_session_opts;

/* Loads the model, takes the device and builds the network. *out is NULL
 * on failure. */
int cnn_session_open(const cnn_session_opts *o, cnn_session **out);
void cnn_session_close(cnn_session *s);

const cnn_model *cnn_session_model(const cnn_session *s);
const cnn_cl *cnn_session_cl(const cnn_session *s);
int cnn_session_max_batch(const cnn_session *s);
int cnn_session_batch(const cnn_session *s); /* images in the last run (0: none yet) */
/* Drops the last run (a run that failed before it began leaves none). */
void cnn_session_forget(cnn_session *s);

/* Runs n inputs: x is [n, C, H, W] in network units. */
int cnn_session_run_tensor(cnn_session *s, const float *x, int n);
/* Runs n 8-bit images through the pipeline's preprocessing; names[i] is
 * used in messages. */
int cnn_session_run_images(cnn_session *s, const cnn_image *imgs, const char *const *names, int n);

/* The last run's output [n, classes]. */
int cnn_session_output(cnn_session *s, float *out);
/* The last run's output of layer i (CNN_GRAPH_INPUT: the network input),
 * [n, c, h, w]. */
int cnn_session_activations(cnn_session *s, int layer, float *out);

/* Maps of the last run's images by `method` (a gradient tap kind:
 * "saliency", "gradcam", ...) at layer (CNN_GRAPH_INPUT for the input
 * methods), targets[n] the class of each; spec carries the tap keys
 * (score, samples, sigma, baseline, window, step; NULL: defaults).
 * upsample: the map at the input's size.  out NULL: only the size, in
 * *h, *w; else out receives [n, h, w]. */
int cnn_session_attribute(cnn_session *s, const char *method, int layer, const int *targets,
                          const cnn_tap_spec *spec, bool upsample, float *out, int *h, int *w);

/* Renders an h x w map (host floats) to RGB8 (h * w * 3; gray: h * w),
 * or over image `overlay` of the last run (>= 0; the map must have the
 * input's size). */
int cnn_session_render(cnn_session *s, const float *map, int h, int w, const char *colormap, const char *normalize,
                       int overlay, float alpha, uint8_t *out, int *ncomp);

#endif
