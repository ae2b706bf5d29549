/* A run of a pipeline over inputs into an output folder: what `cnnviz-cl
 * run` does, as a library call.  The scheduler decides the order of the
 * passes of each batch (forward, the shared backward passes of the
 * gradient maps, the methods with passes of their own, the curves) and the
 * outputs (predictions, taps, report, manifest), published at the end by
 * the output folder (io/outdir.h).  Every line it prints goes through this
 * thread's log sink (core/log.h). */
#ifndef CNN_PIPELINE_JOB_H
#define CNN_PIPELINE_JOB_H

#include <stdbool.h>
#include "import/import.h"

typedef struct cnn_job_opts {
    const char *config, *weights, *out, *platform, *device;
    const char **inputs;   /* [n_inputs] images, .npy files, folders, @lists */
    int n_inputs;
    const char **taps;     /* [n_taps] "LAYER[:KIND]" added to the pipeline's */
    int n_taps;
    const char *cls, *score; /* gradient maps' class and score for every tap (NULL: each tap's) */
    bool npy, no_taps, no_report, profile, quiet, wait_lock;
    bool strict;           /* weights holding NaN or Inf are an error */
    bool read_weights;     /* read the weights into memory, not mapped (a library's run: cnn_model_opts) */
    int top, batch, repeat, png_level; /* 0 / -1 (png_level): the pipeline's */
    int curves;            /* deletion/insertion steps for every gradient tap; -1: the pipeline's */
    int road;              /* ROAD of every gradient map: 1 the default percentiles, 0 none; -1: the pipeline's */
    int sanity;            /* model randomisation check: the top N weight layers in turn (0: none) */
    /* --shard I/N: run part I (from 0) of N of the expanded input list:
     * whole batches of `batch` inputs, a contiguous run of them per part
     * (cnn_job_shard_range).  shard_count 0: everything. */
    int shard_index, shard_count;
    /* Taps with normalize: global across parts (pipeline/stats.h): `stats`
     * gathers their statistics into stats.json and draws nothing;
     * `ranges` (a file of merge --stats) gives them instead of gathering. */
    bool stats;
    const char *ranges;
    cnn_import_opts imp;   /* an ONNX model's preprocessing */
} cnn_job_opts;

/* The defaults of the command line (batch 1, the pipeline's PNG level and
 * curves). */
void cnn_job_opts_init(cnn_job_opts *o);

/* What a job did, beside its status. */
typedef struct cnn_job_result {
    int inputs_done;  /* inputs run and written */
    bool bad_device;  /* --platform / --device matched nothing (the caller may list the devices) */
} cnn_job_result;

/* The inputs [*first, *end) of part `index` of `count` of a list of
 * `total` inputs run in batches of `batch`: the list's batches are cut
 * into `count` contiguous runs whose lengths differ by one batch at most,
 * so that a part's batches are exactly those a single run would form. */
void cnn_job_shard_range(int total, int batch, int index, int count, int *first, int *end);

/* Runs the job.  Errors: the usual statuses with one message (exit codes
 * of core/error.h); inputs that could not be read end the run with
 * CNN_ERR_INPUT after the others are written and published. */
int cnn_job_run(const cnn_job_opts *o, cnn_job_result *res);

#endif
