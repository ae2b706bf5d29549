/* index.html: one self-contained static page (inline CSS and script, no
 * network, no external files but the PNGs of the output folder it links by
 * relative path) that shows a run: the inputs as the network sees them, the
 * top-k predictions, every tap's montage with click-to-zoom and a
 * per-channel drill-down, the layer table with shapes, value ranges and,
 * when profiled, each layer's share of the run time.
 *
 * The page is built from the manifest (what files exist and what they are)
 * plus the few facts the manifest does not hold (predictions, layers). */
#ifndef CNN_VIZ_REPORT_H
#define CNN_VIZ_REPORT_H

#include <stdbool.h>
#include "io/manifest.h"

typedef struct cnn_report_pred {
    int index;
    const char *label; /* may be "" */
    double prob;
} cnn_report_pred;

typedef struct cnn_report_input {
    const char *path;     /* as given on the command line (matches manifest entry.input) */
    const cnn_report_pred *top;
    int n_top;
} cnn_report_input;

typedef struct cnn_report_layer {
    const char *name, *op;
    int c, h, w;
    bool flat;            /* [c] rather than [c, h, w] */
    long long params, macs;
    double ms;            /* device time of the last forward; < 0: not profiled */
    bool fused;           /* ran inside the previous layer's epilogue */
} cnn_report_layer;

typedef struct cnn_report {
    const char *title;       /* the model name */
    const char *config;      /* pipeline path */
    const char *device;      /* "NVIDIA ... (platform)" */
    const cnn_manifest *files;
    const cnn_report_input *inputs;
    int n_inputs;
    const cnn_report_layer *layers;
    int n_layers;
    const char *const *notes; /* run-wide remarks (capped taps, NaN found, ...) */
    int n_notes;
} cnn_report;

/* Writes the page atomically to `path` (…/index.html).  Paths in the page
 * are the manifest's (relative to the output folder), each URL-escaped;
 * every text is HTML-escaped.  Errors: CNN_ERR_IO naming the path. */
int cnn_report_write(const char *path, const cnn_report *r);

#endif
