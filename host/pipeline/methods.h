/* Attribution methods as the scheduler sees them.
 *
 * A method is one row of a table: the scheduler asks it which passes it
 * needs and hands it the batch at the right moment, so adding a method is
 * adding a row (and its tap kind in viz/taps.c), not editing the run loop.
 * Two shapes exist:
 *
 *  - shared: the map comes from the gradients of one backward pass, and
 *    every tap that agrees on the ReLU rule, the score (logit or
 *    probability) and the target class shares that pass.  The scheduler
 *    runs one backward per such key, down to the lowest layer any of its
 *    taps reads (`lowest`), then calls `from_pass` of each.
 *  - own passes: the method writes inputs of its own into the network
 *    (noisy copies, path points, occluded copies) and runs them, so it
 *    comes after the batch's shared maps and the forward's outputs, one
 *    image at a time (`own_passes`), in chunks of the network's batch.
 *
 * Either kind hands each finished map to cnn_method_emit (drawn, listed,
 * curves queued).  The job's state is pipeline/job_impl.h. */
#ifndef CNN_PIPELINE_METHODS_H
#define CNN_PIPELINE_METHODS_H

#include <stdbool.h>
#include "ops/grad.h"
#include "pipeline/job_impl.h"

typedef struct cnn_method {
    cnn_gmethod id;
    bool backward;  /* needs the backward pass (the network keeps every tensor) */
    bool shared;    /* its maps come from shared backward passes (else own_passes) */
    /* Whether a shared pass with ReLU rule `mode` serves tap t. */
    bool (*in_mode)(const cnn_vtap *t, cnn_grad_mode mode);
    /* The lowest layer whose gradient t reads in such a pass
     * (CNN_GRAPH_INPUT: the input's). */
    int (*lowest)(const cnn_vtap *t, cnn_grad_mode mode);
    /* t's maps of images [0, nb) from the last backward pass (target cls[b]);
     * slot_of NULL: timing, compute the maps and draw nothing. */
    int (*from_pass)(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of, cnn_grad_mode mode);
    /* t's maps of image b (input k of the run; its input saved in s->xsave,
     * the forward's output logits0) by passes of its own. */
    int (*own_passes)(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
    /* Forward copies one image's map runs (sizes the network's batch). */
    int (*copies)(const cnn_vtap *t, int in_h, int in_w);
} cnn_method;

const cnn_method *cnn_method_of(cnn_gmethod id);

/* Tap t's target for image b at rank r (its fixed class, else the image's
 * r-th class by the last forward's output). */
int cnn_method_target(const cnn_job *s, const cnn_vtap *t, int b, int r);

/* The own-pass methods (sampling.c): SmoothGrad and Integrated Gradients,
 * occlusion. */
int cnn_method_sampling_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
int cnn_method_occlusion_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);

/* The CAM family's methods with passes of their own (cams.c): Score-CAM,
 * Ablation-CAM, Eigen-CAM; and FullGrad's map from a shared plain pass. */
int cnn_method_scorecam_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
int cnn_method_ablationcam_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
int cnn_method_eigencam_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
/* RISE (perturb.c): random masks scored in batches. */
int cnn_method_rise_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
int cnn_method_fullgrad_from_pass(cnn_job *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of,
                                  cnn_grad_mode mode);

/* The baseline of tap t's method for the input saved at s->xsave + x_off
 * into s->base: blurred, 0 in network units, or a pixel value (black: 0)
 * through the input's normalisation (sampling.c). */
int cnn_method_baseline(cnn_job *s, const cnn_vtap *t, size_t x_off, const char *what);

/* LIME and KernelSHAP (perturb.c): superpixels switched on and off (at most
 * CNN_MAX_SEGMENTS of them; SLIC may return a few more than asked). */
#define CNN_MAX_SEGMENTS 1100
int cnn_method_lime_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);
int cnn_method_kernelshap_passes(cnn_job *s, cnn_vtap *t, int b, int k, const float *logits0);

/* The score of class c in one image's output (nout logits): the logit, or
 * its softmax probability (prob), in double. */
double cnn_method_score(const float *logits, size_t nout, int c, bool prob);

/* Draws map b (h x w at map + off, the input's size) of tap t for target
 * cls and image k, with the raw map (raw_h x raw_w at raw + raw_off) for
 * .npy, and queues its curves.  Nothing when s->timing. */
int cnn_method_emit(cnn_job *s, cnn_vtap *t, int b, int k, int cls, cl_mem map, size_t off, cl_mem raw,
                    size_t raw_off, int raw_h, int raw_w, const char *note);

#endif
