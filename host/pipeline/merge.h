/* Joining the output folders of the parts of a run (`run --shard I/N`)
 * into the output folder of the whole run, as one run over every input
 * would have written it: the files of each input, the model's files once,
 * predictions.json and predictions.csv in input order, one manifest and
 * one report.
 *
 * Each part's manifest records what it ran ("run": the pipeline and
 * weights by hash, the options that change files, the length and hash of
 * the input list, its part [first, end)); the parts must agree on all of
 * it and cover every input exactly once.  Files go into the output folder
 * through its stage (io/outdir.h): hard links where the folders share a
 * file system, copies otherwise, and nothing is published unless all of
 * it is there. */
#ifndef CNN_PIPELINE_MERGE_H
#define CNN_PIPELINE_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include "io/manifest.h"
#include "viz/report.h"

typedef struct cnn_merge_opts {
    const char *out;
    const char *const *parts; /* [n_parts] output folders of `run --shard` (or of a whole run) */
    int n_parts;
    bool wait_lock, quiet;
    /* The parts are of run --stats: `out` is the file of their combined
     * statistics (pipeline/stats.h), written atomically; a file there is
     * replaced only when it is such a file. */
    bool stats;
} cnn_merge_opts;

/* What a merge did. */
typedef struct cnn_merge_result {
    int inputs, files, copied; /* inputs covered, files published, ... of them copied (not linked) */
} cnn_merge_result;

/* Errors: CNN_ERR_INPUT (exit 2) naming the folder, file or inputs: a
 * folder that is not this tool's output, parts of different pipelines,
 * weights, options or input lists, inputs missing or covered twice, a
 * file changed since its part wrote it; CNN_ERR_USAGE for OUT being one of
 * the parts or in use; CNN_ERR_IO.  Inputs that a part could not read are
 * published like a run publishes them, then reported as CNN_ERR_INPUT. */
int cnn_merge_run(const cnn_merge_opts *o, cnn_merge_result *res);

/* index.html into folder wdir from the run's record (m->run: title,
 * config, device, layers, notes, nonfinite_inputs), the files of m and the
 * inputs' predictions, and its entry into m; layer_ms: each layer's
 * profiled time, or NULL.  What `run`
 * and `merge` both write, so that the two pages agree. */
int cnn_report_of_run(const char *wdir, cnn_manifest *m, const cnn_report_input *in, int n_in,
                      const double *layer_ms);

/* predictions.json (the array `preds` holds) and predictions.csv (its
 * header, then `rows`) into folder wdir, and their entries into m. */
#define CNN_PREDICTIONS_CSV_HEADER "input,top1_index,top1_label,top1_prob\n"
struct cnn_json;
int cnn_write_predictions(const char *wdir, cnn_manifest *m, struct cnn_json *preds, const char *rows, size_t len);

#endif
