/* manifest.json: one entry per file written in the output folder. */
#ifndef CNN_IO_MANIFEST_H
#define CNN_IO_MANIFEST_H

#include <stdint.h>

typedef struct cnn_manifest_entry {
    char *path;      /* relative to the output folder */
    char *kind;      /* "output", "activations", "filters", ... */
    char *layer;     /* or NULL */
    char *input;     /* input image path or NULL */
    int channel;     /* -1: none */
    char *format;    /* "png", "npy", "json" */
    int64_t shape[4];
    int ndim;
    char *normalize; /* or NULL */
    float range[2];
    int has_range;
    char *colormap;  /* or NULL */
    char *role;      /* what the file is within its kind, or NULL:
                        "montage" (all channels of a tap in one grid),
                        "channel" (one channel, `channel` set), "filter" (one
                        filter, `channel` = its index), "matrix" (a linear
                        layer's weights), "unit" (one unit's weights as a
                        montage), "input" (the image as the network sees it),
                        "tensor" (.npy of a tapped tensor) */
    char *note;      /* human-readable remark (e.g. "showing 64 of 512 filters") or NULL */
    int has_stats;   /* stats below are set */
    double stats[4]; /* min, max, mean, std of the finite values shown */
    int64_t nonfinite; /* NaN/Inf values found (not drawn: see the report) */
    int has_cls;     /* gradient maps: cls is the target class */
    int cls;
    char *label;     /* the target class's label, or NULL */
    /* Faithfulness (deletion / insertion curves, n_curve = steps + 1
     * points each; 0: none): the target's probability as the map's most
     * important pixels are removed / inserted, and the areas under them. */
    int n_curve;
    float *deletion, *insertion;
    double auc[2];   /* deletion, insertion */
} cnn_manifest_entry;

typedef struct cnn_manifest {
    cnn_manifest_entry *e;
    int n, cap;
} cnn_manifest;

/* Copies every string and curve. */
int cnn_manifest_add(cnn_manifest *m, const cnn_manifest_entry *e);
/* Sets entry i's curves (copied). */
int cnn_manifest_set_curves(cnn_manifest *m, int i, const float *deletion, const float *insertion, int n,
                            double auc_deletion, double auc_insertion);
int cnn_manifest_write(const cnn_manifest *m, const char *path);
void cnn_manifest_free(cnn_manifest *m);

#endif
