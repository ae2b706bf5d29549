/* A run's side of global normalisation across parts (pipeline/stats.h):
 * --ranges FILE read, checked and given to the taps, and the stats.json of
 * a --stats run. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "viz/vizops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cnn_job_load_ranges(cnn_job *s)
{
    const char *path = s->o.ranges;
    char *text = NULL;
    size_t len = 0;
    CNN_TRY_RET(cnn_file_read(path, 64u << 20, &text, &len));
    int status = cnn_stats_parse(path, text, len, &s->ranges);
    free(text);
    if (status < 0) return status;
    s->have_ranges = true;
    char model[17], list[17];
    cnn_job_hashes(s, model, list);
    if (strcmp(model, s->ranges.model) != 0)
        return cnn_error_set(CNN_ERR_INPUT, "--ranges %s: gathered with another pipeline or other weights (model hash "
                             "%s; this run's is %s)", path, s->ranges.model, model);
    if (strcmp(list, s->ranges.input_list) != 0)
        cnn_logf(CNN_LOG_WARN, "--ranges %s: gathered over another input list (%d inputs; this run has %d): its "
                 "ranges are used as they are", path, s->ranges.inputs, s->inputs.n);
    else if (s->ranges.first != 0 || s->ranges.end != s->inputs.n)
        cnn_logf(CNN_LOG_WARN, "--ranges %s: gathered over inputs %d to %d of %d only (one part's stats.json? "
                 "'merge --stats' joins every part's)", path, s->ranges.first, s->ranges.end - 1, s->ranges.inputs);
    for (int t = 0; t < s->n_taps; t++) {
        const cnn_vtap *vt = &s->taps[t];
        if (!cnn_job_global_tap(vt)) continue;
        const cnn_tap_stats *ts = cnn_stats_find(&s->ranges, vt->layer_name);
        if (!ts)
            return cnn_error_set(CNN_ERR_INPUT, "--ranges %s: no statistics of layer '%s' (gathered for other taps?)",
                                 path, vt->layer_name);
        if (cnn_vtap_needs_hist(vt) && !ts->hist && !s->o.stats)
            return cnn_error_set(CNN_ERR_INPUT, "--ranges %s: layer '%s' clips to percentiles, which needs the "
                                 "histogram of a second round: run each part with --stats --ranges %s, then merge "
                                 "--stats again (README: global normalisation across parts)", path, vt->layer_name,
                                 path);
    }
    return CNN_OK;
}

int cnn_job_apply_ranges(cnn_job *s)
{
    uint32_t *hist = cnn_malloc(CNN_VIZ_BINS * sizeof *hist);
    if (!hist) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (int t = 0; t < s->n_taps && status == CNN_OK; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (!cnn_job_global_tap(vt)) continue;
        const cnn_tap_stats *ts = cnn_stats_find(&s->ranges, vt->layer_name);
        /* a --stats run of the second round counts its own histogram */
        bool use_hist = ts->hist && cnn_vtap_needs_hist(vt) && !s->o.stats;
        for (int b = 0; use_hist && b < CNN_VIZ_BINS; b++) hist[b] = (uint32_t)ts->hist[b];
        status = cnn_vtap_global_set(&s->viz, vt, ts->min, ts->max, ts->any, use_hist ? hist : NULL);
    }
    free(hist);
    return status;
}

/* stats.json of a --stats run, and its entry. */
int cnn_job_write_stats(cnn_job *s)
{
    cnn_stats st;
    memset(&st, 0, sizeof st);
    cnn_job_hashes(s, st.model, st.input_list);
    st.inputs = s->inputs.n;
    st.first = s->first;
    st.end = s->end;
    uint32_t *hist = cnn_calloc(CNN_VIZ_BINS, sizeof *hist);
    int status = hist ? CNN_OK : CNN_ERR_NOMEM;
    for (int t = 0; t < s->n_taps && status == CNN_OK; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (!cnn_job_global_tap(vt)) continue;
        /* the histogram of the second round (its bins are the file's range) */
        bool counted = s->have_ranges && cnn_vtap_needs_hist(vt);
        if (counted && s->hist_inputs) status = cnn_vtap_global_read_hist(&s->viz, vt, hist);
        if (status == CNN_OK) {
            float lo = vt->g_any ? (float)vt->gmin : 0, hi = vt->g_any ? (float)vt->gmax : 0;
            status = cnn_stats_add(&st, vt->layer_name, cnn_vtap_needs_hist(vt), vt->gmin, vt->gmax, vt->g_any,
                                   counted ? hist : NULL, lo, hi);
        }
    }
    char *text = NULL, *path = NULL;
    size_t len = 0;
    if (status == CNN_OK) status = cnn_stats_text(&st, &text, &len);
    if (status == CNN_OK) status = (path = cnn_path_join(s->wdir, "stats.json")) ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_file_write_atomic(path, text, len);
    free(path);
    free(text);
    free(hist);
    cnn_stats_free(&st);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = "stats.json", .kind = "stats", .channel = -1, .format = "json"};
    return cnn_manifest_add(&s->manifest, &e);
}
