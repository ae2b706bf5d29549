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
} cnn_manifest_entry;

typedef struct cnn_manifest {
    cnn_manifest_entry *e;
    int n, cap;
} cnn_manifest;

/* Copies every string. */
int cnn_manifest_add(cnn_manifest *m, const cnn_manifest_entry *e);
int cnn_manifest_write(const cnn_manifest *m, const char *path);
void cnn_manifest_free(cnn_manifest *m);

#endif
