/* Statistics of the taps drawn with `normalize: global`, gathered by
 * parts of a run and combined, so that parts draw with the range one run
 * over every input would use (README: "Global normalisation across
 * parts").
 *
 * For each such tap: the smallest and largest finite value over the
 * inputs covered (pass 1) and, for taps that clip to percentiles, the
 * CNN_VIZ_BINS-bin histogram of the values over [(float)min, (float)max]
 * (pass 2: its bins need the range of every input first, hence a second
 * gathering round).  Both combine exactly: min of mins, max of maxes, sums
 * of counts over the same bins.
 *
 * The file (JSON): {"tool": "cnnviz-cl", "kind": "stats", "version",
 * "model", "input_list", "inputs", "covers": [first, end], "taps": [{"layer",
 * "clip", "min", "max", "any", "hist_range": [lo, hi], "hist": [counts]}]}: `run
 * --stats` writes one per part (stats.json, listed in its manifest),
 * `merge --stats` one for the whole, and `run --ranges FILE` reads it. */
#ifndef CNN_PIPELINE_STATS_H
#define CNN_PIPELINE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cnn_tap_stats {
    char *layer;
    double min, max;    /* finite values only; meaningful when `any` */
    bool any;           /* some finite value was seen */
    bool clip;          /* the tap clips to percentiles: its range needs the histogram */
    uint64_t *hist;     /* [CNN_VIZ_BINS] counts over [hist_lo, hist_hi], or NULL (pass 1 only) */
    float hist_lo, hist_hi;
} cnn_tap_stats;

typedef struct cnn_stats {
    char model[17], input_list[17]; /* hashes, as the run record has them */
    int inputs, first, end;         /* the input list's length; the inputs covered [first, end) */
    cnn_tap_stats *taps;
    int n;
} cnn_stats;

/* Adds a tap (layer copied; hist copied when not NULL). */
int cnn_stats_add(cnn_stats *st, const char *layer, bool clip, double min, double max, bool any, const uint32_t *hist,
                  float lo, float hi);
/* The file's text (heap). */
int cnn_stats_text(const cnn_stats *st, char **text, size_t *len);
/* Reads a stats file; errors (CNN_ERR_INPUT) name `name`. */
int cnn_stats_parse(const char *name, const char *text, size_t len, cnn_stats *st);
/* Adds the statistics of `part` (over other inputs of the same list) to
 * `acc`; an empty acc takes part as it is.  Parts with other taps, or
 * histograms over other bins, are CNN_ERR_INPUT naming `part_name`. */
int cnn_stats_combine(cnn_stats *acc, const cnn_stats *part, const char *part_name);
const cnn_tap_stats *cnn_stats_find(const cnn_stats *st, const char *layer);
void cnn_stats_free(cnn_stats *st);

#endif
