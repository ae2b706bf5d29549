/* A model ready for a device: the pipeline (YAML, or an ONNX model
 * imported in memory), its weights, the checked graph and the class names. */
#ifndef CNN_PIPELINE_MODEL_H
#define CNN_PIPELINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include "config/config.h"
#include "import/import.h"
#include "model/graph.h"
#include "model/weights.h"

typedef struct cnn_model_opts {
    const char *config;   /* pipeline file or MODEL.onnx */
    const char *weights;  /* overrides model.weights (NULL: the pipeline's) */
    cnn_import_opts imp;  /* an ONNX model's preprocessing */
    bool strict;          /* weights holding NaN or Inf are an error, not a warning */
    bool read_weights;    /* read the weights file into memory instead of mapping it (a library: no
                           * process-wide SIGBUS guard, and nothing to fault if the file is rewritten) */
} cnn_model_opts;

typedef struct cnn_model {
    cnn_pipeline pipe;
    cnn_weights weights;
    cnn_graph graph;
    char **labels;               /* [n_labels] class names, or NULL */
    int n_labels;
    unsigned char *onnx_weights; /* weights held in memory: an ONNX model's imported ones, or the file read
                                  * whole (read_weights); the weights read them */
    char assumed[400];           /* ... and the preprocessing the import assumed ("" for a YAML file) */
    uint64_t hash;               /* what was run: the pipeline text (an ONNX model's as imported), the
                                    weights file's bytes and the class names (cnn_hash64_wide) */
} cnn_model;

/* Loads and checks everything (pipeline, weights, graph, labels); errors
 * name the file and position (CNN_ERR_INPUT), and `m` is always safe to
 * free.  Weights holding NaN or Inf are a warning (strict: an error);
 * tensors no layer binds a warning. */
int cnn_model_load(const cnn_model_opts *o, cnn_model *m);
void cnn_model_free(cnn_model *m);

#endif
