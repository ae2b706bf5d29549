/* manifest.json: one entry per file written in the output folder, under a
 * marker ("tool": "cnnviz-cl", "schema") that says who wrote it.  Each entry
 * records the file's size and modification time as written, so that a
 * later run removes only files it can prove are still the ones it wrote
 * (see io/outdir.h). */
#ifndef CNN_IO_MANIFEST_H
#define CNN_IO_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
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
    /* ROAD (viz/road.h; n_road percentiles, 0: none): the probability
     * change with the MoRF and the LeRF pixels of each percentile imputed,
     * and (mean LeRF - mean MoRF) / 2. */
    int n_road;
    float *road_pct, *road_morf, *road_lerf;
    double road;
    /* --sanity (pipeline/sanity.c): the layers randomised in turn, top
     * first, and the Spearman correlation of the map after each step
     * (NaN: undefined, a constant map). */
    int n_sanity;
    char **sanity_layer;
    float *sanity_rho;
    /* The file as written (set by the output folder when the run commits). */
    int has_stat;
    int64_t bytes;
    int64_t mtime_s, mtime_ns;
} cnn_manifest_entry;

struct cnn_jv;

typedef struct cnn_manifest {
    cnn_manifest_entry *e;
    int n, cap;
    struct cnn_jv *run; /* what the run was ("run": {...}: model hash, inputs, shard, ...), owned; or NULL */
} cnn_manifest;

/* Copies every string and curve. */
int cnn_manifest_add(cnn_manifest *m, const cnn_manifest_entry *e);
/* Adds an entry read back from a manifest this version wrote (an element
 * of its "files"), every field as it was but the size and time, which the
 * output folder records again at the commit.  A field this version does
 * not write, or one of the wrong type: CNN_ERR_INPUT naming it. */
int cnn_manifest_add_jv(cnn_manifest *m, const struct cnn_jv *v);
/* Keeps `text`, a JSON object, as the run's description (written after
 * the schema).  Replaces an earlier one. */
int cnn_manifest_set_run(cnn_manifest *m, const char *text, size_t len);
/* Reorders the entries by group[i] (entry i's group), keeping the order
 * within a group: a run's files in input order whatever the batches. */
int cnn_manifest_order(cnn_manifest *m, const int *group);
/* Sets entry i's curves (copied). */
int cnn_manifest_set_curves(cnn_manifest *m, int i, const float *deletion, const float *insertion, int n,
                            double auc_deletion, double auc_insertion);
/* Sets entry i's ROAD (copied as floats). */
int cnn_manifest_set_road(cnn_manifest *m, int i, const float *pct, const double *morf, const double *lerf, int n,
                          double combined);
/* Sets entry i's --sanity record (copied). */
int cnn_manifest_set_sanity(cnn_manifest *m, int i, const char *const *layers, const float *rho, int n);
/* The manifest's JSON text (heap, NUL-terminated), marker included. */
int cnn_manifest_text(const cnn_manifest *m, char **text, size_t *len);
void cnn_manifest_free(cnn_manifest *m);
/* Drops the entries from the n-th on. */
void cnn_manifest_truncate(cnn_manifest *m, int n);

/* Schema of the manifests this version writes; older unmarked manifests
 * (schema 1) and foreign ones are never trusted. */
#define CNN_MANIFEST_SCHEMA 2
#define CNN_MANIFEST_TOOL "cnnviz-cl"

/* What an earlier run's manifest proves it wrote: the files it lists with
 * their size and modification time. */
typedef struct cnn_owned_file {
    char *path; /* relative, plain components (no "", ".", "..", leading '.') */
    int64_t bytes, mtime_s, mtime_ns;
} cnn_owned_file;

typedef struct cnn_owned {
    cnn_owned_file *f;
    int n;
    int skipped; /* entries without a usable path or stat (never deleted) */
} cnn_owned;

/* Reads manifest text written by this tool.  Text that is not JSON, has no
 * marker, names another tool or a newer schema: CNN_ERR_INPUT with a
 * message that says which (callers prefix the file name).  Entries whose
 * path is not a plain relative path of the shape this tool writes, or
 * that have no size and time, are counted in `skipped` and not returned,
 * so that an edited manifest can never name anything else. */
int cnn_manifest_parse_owned(const char *text, size_t len, cnn_owned *out);
void cnn_owned_free(cnn_owned *o);
/* True when rel is a plain relative path this tool could have written. */
bool cnn_manifest_path_ok(const char *rel);

#endif
