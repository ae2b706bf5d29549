/* The scheduler's state, shared by the files of host/pipeline/ (job.c: the
 * batch loop and the forward's outputs; request.c: taps and names; methods.c:
 * the attribution methods; outputs.c: files and the report).  Not for other
 * modules: they use pipeline/job.h. */
#ifndef CNN_PIPELINE_JOB_IMPL_H
#define CNN_PIPELINE_JOB_IMPL_H

#include "io/inputs.h"

#include <pthread.h>
#include "core/error.h"
#include "io/image.h"
#include "io/json.h"
#include "io/manifest.h"
#include "io/outdir.h"
#include "io/prefetch.h"
#include "io/pngpool.h"
#include "pipeline/job.h"
#include "pipeline/model.h"
#include "pipeline/stats.h"
#include "runtime/backward.h"
#include "runtime/clrt.h"
#include "runtime/net.h"
#include "viz/report.h"
#include "viz/taps.h"

typedef struct cnn_job cnn_job;

/* A map waiting for its deletion / insertion curves and ROAD (they run
 * their own forward passes, so after everything else of the batch). */
typedef struct pending {
    cnn_vtap *t;
    int b, cls, entry;
    uint32_t *rank; /* [px] each pixel's place by importance (curves), or NULL */
    float *map;     /* [px] the map (ROAD), or NULL */
} pending;

struct cnn_job {
    cnn_job_opts o;
    cnn_model l;
    cnn_cl cl;
    bool cl_ready;
    cnn_net net;
    bool net_ready;
    char *out_dir;
    cnn_vtap *taps;
    int n_taps;
    bool *keep;
    cnn_manifest manifest;
    cnn_json preds;
    char *csv;            /* predictions.csv text */
    size_t csv_len, csv_cap;
    cnn_input_list inputs;
    char **stems; /* [inputs.n] unique output sub-folder names */
    cnn_prefetch *pf;     /* images decoded ahead (one device's run), or NULL */
    const char **decode_paths; /* [inputs.n] the image files it decodes (NULL for a .npy entry) */
    int first, end;       /* the inputs this run does: [first, end) of the list (a shard's part) */
    int *skipped;         /* [n_skipped] inputs that could not be read (indices into the list) */
    int n_skipped;
    bool report;          /* write index.html */
    double t_start, t_loaded, t_device, t_net; /* start-up phases (--profile) */
    /* Several devices (pipeline/devices.c): each has a job of its own (a
     * worker) that borrows the lead's input list, stems, stage and PNG
     * pool; what it finishes is kept with the input's index, and the lead
     * puts everything in input order before it publishes. */
    bool borrowed;        /* inputs, stems and PNG pool are the lead's */
    bool no_model_taps;   /* filters and weights: drawn by the first device only */
    int *done_of;         /* [n_done] the inputs finished, in that order */
    size_t *row_at;       /* [n_done] where each one's predictions.csv row starts in csv */
    int n_done, cap_done;
    pthread_mutex_t *print_mu; /* one input's prediction lines together; NULL: one device */
    const cnn_job *primary; /* the lead's first worker: its layers and notes go in the record */
    char *devices;        /* the lead's device list for the record, or NULL */
    int device_rank;      /* a worker's place among the devices */
    int batches_run;      /* batches this job has run */
    cnn_stats ranges;     /* --ranges FILE */
    bool have_ranges;
    int hist_inputs;      /* inputs counted into the global histograms */
    float *npy;           /* the samples of the .npy file read last (consecutive inputs share it) */
    const char *npy_of;   /* ... its inputs.file entry */
    float *logits;
    float *host_tmp;
    int failed_inputs;
    cnn_png_pool *pool;
    cnn_vctx viz;
    bool viz_ready;
    bool attrib;          /* attribution taps (gradient maps, occlusion) */
    bool gradients;       /* ... some need the backward: the network keeps every tensor */
    bool timing;          /* --repeat of attribution maps: compute, draw nothing */
    cnn_backward bw;
    bool bw_ready;
    cl_mem *img8;         /* [batch] the inputs as 8-bit images (overlays) */
    cl_mem maps, cams, camw, xsave, acc, gsum, base; /* gradient-map scratch */
    cl_mem tmp, zero, occ, rankbuf; /* blur scratch, zeros, window scores, pixel ranks */
    cl_mem acts, mstats;  /* the CAM family's: one image's layer tensor, per-map statistics (cams.c) */
    cl_mem tsum;          /* perturbation methods: one input-size sum per target class (10) */
    cl_mem segbuf, zbuf;  /* LIME / KernelSHAP: one image's superpixel labels, a batch of samples */
    cl_mem rgrid;         /* RISE: a batch of masks' cells and shifts */
    int rgrid_cells;      /* ... for grids up to this side */
    int chunk;            /* copies per pass for smoothgrad / integrated / occlusion / curves */
    char first_skip[CNN_ERROR_MAX]; /* why the first unreadable input was skipped */
    cnn_outdir od;        /* the output folder: lock, stage, commit */
    const char *wdir;     /* where files are written: the stage (published at the commit) */
    pending *pend;        /* maps waiting for their deletion / insertion curves */
    int n_pend, cap_pend;
    int n_img8;
    int *rank;            /* [batch * 10] each image's classes by score */
    bool images;          /* write PNGs (taps or the report) */
    bool input_png;       /* write <stem>/input.png for each input */
    bool dream;           /* dream taps: gradient mode, every tensor kept */
    int mx_batch;         /* maximize taps on this network: the most channels of one (its batch); 0: none */
    bool maximize;        /* any maximize tap */
    bool mx_sized;        /* ... one at its own size: the weights file stays open for its network */
    bool colour_stats;    /* ... one with decorrelate: inputs: the inputs' colour moments, in [0, 1]: */
    double col_n, col_sum[3], col_sxx[9]; /* pixels, their sum and sum of products (RGB networks) */
    int nonfinite_inputs;  /* inputs whose network output holds NaN or Inf */
    int first_nonfinite;   /* ... the first of them (index into inputs) */
    bool output_nan, output_inf; /* ... which of the two occurred */
    cnn_report_input *rin; /* [inputs.n] predictions for the report */
    cnn_report_pred *rpred; /* [inputs.n * top] */
    int n_rin;
    /* A library session (pipeline/session.h): no output folder, no files;
     * the maps of cnn_method_emit are copied into `capture` instead. */
    bool session;
    float *capture;       /* [n, capture_h, capture_w] host maps, by image slot */
    bool capture_input;   /* capture the map at the input's size (else the raw map, a CAM's at its layer's) */
    int capture_h, capture_w; /* the captured maps' size (set by cnn_method_emit) */
    size_t occ_cap;       /* occlusion windows s->occ holds */
    /* --sanity (pipeline/sanity.c): the weight layers randomised, top
     * first; their own weights; the batch's maps as drawn and, per step,
     * their rank correlation with the maps of the randomised model. */
    int *san_layer;       /* [n_san_layer] */
    int n_san_layer;
    float **san_orig;     /* [n_san_layer] each layer's weights, read once */
    struct sanity_map *san; /* [n_san] the batch's maps, in the order they were emitted */
    int n_san, cap_san;
    int san_step;         /* 0: a normal pass (maps kept); k >= 1: the top k layers are random (maps compared) */
    int san_seq;          /* maps compared so far in this step */
};


/* request.c: the taps the run is asked for (the pipeline's, --tap, or the
 * defaults) and the inputs' output folder names. */
int cnn_job_collect_taps(cnn_job *s);
int cnn_job_make_stems(cnn_job *s);

/* job.c: the phases of a run, which one device runs in a row and several
 * devices share (devices.c): prepare (model, taps, inputs; a worker
 * borrows the lead's inputs), the output folder, a device, the batches,
 * the end (PNGs waited for, commit, summary). */
int cnn_job_prepare(cnn_job *s, const cnn_job *lead);
int cnn_job_open(cnn_job *s);
int cnn_job_device(cnn_job *s, const char *platform, const char *device, int *batch, bool *bad_device);
int cnn_job_global(cnn_job *s, int batch);
int cnn_job_batch(cnn_job *s, int batch, int *k, int *slot_of, int *b);
int cnn_job_conclude(cnn_job *s, int batch, int done_inputs, double loop_ms, double t_first, cnn_job_result *res);

/* sanity.c: the model randomisation check (--sanity N).  The layers are
 * chosen once the graph is known; a map drawn in a normal pass is kept,
 * one computed with random weights compared (cnn_method_emit); after a
 * batch's outputs the steps run and the weights are put back. */
int cnn_sanity_prepare(cnn_job *s);
int cnn_sanity_map(cnn_job *s, const cnn_vtap *t, cl_mem map, size_t off);
int cnn_sanity_batch(cnn_job *s, int nb, const int *slot_of);
void cnn_sanity_free(cnn_job *s);
/* examples.c: dataset examples (show: examples).  prepare: the lists, once
 * the taps are known (refuses tensor inputs, shards, several devices);
 * batch: each input of the batch offered to them, right after the
 * forward; finish: the crops drawn and written, before the publish. */
int cnn_examples_prepare(cnn_job *s);
int cnn_examples_batch(cnn_job *s, int nb, const int *slot_of);
int cnn_examples_finish(cnn_job *s);
void cnn_examples_free(cnn_job *s);
/* The best value kept for `channel` of an examples tap (NAN: none). */
double cnn_examples_best(const cnn_vtap *t, int channel);
/* maximize.c: activation maximisation (show: maximize).  prepare: checks,
 * the batch it needs (s->mx_batch) and gradient mode; run: every tap's
 * images, after the inputs (a run of maximize taps may have none). */
int cnn_maximize_prepare(cnn_job *s);
int cnn_maximize_run(cnn_job *s);
/* dream.c: DeepDream (show: dream) on each input of a batch, after its
 * other taps (it overwrites the network's tensors). */
int cnn_dream_batch(cnn_job *s, int nb, const int *slot_of);
/* Input k into slot b again, after the batches (no prefetcher). */
int cnn_job_reload_input(cnn_job *s, int k, int b);
void cnn_job_free(cnn_job *s);
/* devices.c: a run over several devices (--device all, --device 0,2). */
int cnn_job_run_devices(const cnn_job_opts *o, cnn_job_result *res);
/* An 8-bit image (decoded, or handed over by a caller) through the
 * pipeline's preprocessing into slot b of the network input; name is used
 * in messages.  An image the network cannot take is CNN_ERR_INPUT. */
int cnn_job_load_pixels(cnn_job *s, const cnn_image *img, const char *name, int b);
/* The plan's memory at `batch` against the device's, before allocating. */
int cnn_job_check_memory(cnn_job *s, int batch);
int cnn_job_interrupted(cnn_job *s);     /* a signal arrived: the interruption as an error */
int cnn_job_px(const cnn_job *s);        /* input pixels (h * w) */
void cnn_job_rank(const float *v, size_t n, int *idx); /* idx: 0..n-1 by v, largest first (NaN first) */
double cnn_job_median(double *v, int n); /* sorts v */
/* A probability as printed and in predictions.csv ("nan" whatever its sign bit). */
const char *cnn_job_fmt_prob(double p, int digits, char *buf, size_t size);

/* methods.c: the attribution methods (pipeline/methods.h) run for a batch. */
int cnn_job_setup_gradients(cnn_job *s, int batch);
void cnn_job_free_gradients(cnn_job *s);
int cnn_job_batch_copies(const cnn_job *s); /* most forward copies one image's map runs at once */
int cnn_job_gradient_maps(cnn_job *s, int nb, const int *slot_of);
int cnn_job_late_batch(cnn_job *s, int nb, const int *slot_of);
int cnn_job_repeat_gradients(cnn_job *s, int nb);
int cnn_job_repeat_late(cnn_job *s, int nb);
/* sampling.c: the batch's inputs into s->xsave (save) or back */
int cnn_job_save_inputs(cnn_job *s, int nb, bool save);

/* outputs.c */
int cnn_job_open_output(cnn_job *s);
int cnn_job_write_npy(cnn_job *s, const char *rel, const float *data, const int64_t *shape, int ndim,
                      const char *kind, const char *role, const char *layer, const char *input);
/* The JSON text j as the file rel of the run (its folder made), listed in
 * the manifest with format "json". */
int cnn_job_write_json(cnn_job *s, const char *rel, cnn_json *j, const char *kind, const char *role,
                       const char *layer);
/* The same, listed as a file of input `input` (its path). */
int cnn_job_write_json_of(cnn_job *s, const char *rel, cnn_json *j, const char *kind, const char *role,
                          const char *layer, const char *input);
int cnn_job_csv_append(cnn_job *s, const char *input, int index, const char *label, double prob);
int cnn_job_csv_raw(cnn_job *s, const char *rows, size_t n); /* rows as they are */
int cnn_job_write_trace(cnn_job *s);
/* predictions.json, predictions.csv, the report (a --stats run:
 * stats.json), then the commit. */
int cnn_job_publish(cnn_job *s, bool report);
/* The pipeline + weights hash and the input list's, as 16 hex digits. */
void cnn_job_hashes(const cnn_job *s, char model[17], char list[17]);
/* --ranges FILE: read and checked against the run (load), then given to
 * the taps once their buffers exist (apply). */
int cnn_job_load_ranges(cnn_job *s);
int cnn_job_apply_ranges(cnn_job *s);
/* stats.json of a --stats run into the stage, and its manifest entry. */
int cnn_job_write_stats(cnn_job *s);
/* True for a tap drawn with one range over every input. */
bool cnn_job_global_tap(const cnn_vtap *t);

#endif
