/* ONNX model -> pipeline: the YAML text of a pipeline file and a
 * safetensors image of the tensors its layers bind, built in memory.  The
 * `import` command writes both to files; `run MODEL.onnx` parses them
 * where they lie (cnn_pipeline_parse, cnn_weights_open_memory), so the
 * graph, the plan and the device never learn where a model came from.
 *
 * What an ONNX model does not hold, the import assumes and says so: the
 * input preprocessing (ImageNet's by default).  Shape-only subgraphs are
 * computed at import; node chains that are one pipeline op are merged
 * (import/ir.h); anything else is refused naming the node. */
#ifndef CNN_IMPORT_IMPORT_H
#define CNN_IMPORT_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

/* What the files `import` writes say about themselves: the pipeline's
 * first line ("# Imported from M by cnnviz-cl import ...") and the weights'
 * metadata ("written_by"), so that a later import replaces only files of
 * its own. */
#define CNN_IMPORT_MARK "cnnviz-cl import"

typedef enum cnn_preprocess {
    CNN_PRE_IMAGENET, /* resize shorter side, centre crop, pixel/255, ImageNet mean and std */
    CNN_PRE_NONE,     /* the same geometry, pixel/255, no mean or std */
    CNN_PRE_RAW       /* the same geometry, pixel values 0..255 as they are */
} cnn_preprocess;

typedef struct cnn_import_opts {
    cnn_preprocess pre;
    bool has_mean, has_std;     /* --mean / --std given (per channel: 1 or 3 values) */
    float mean[3], std[3];
    int n_mean, n_std;
    int size[2];                /* --size H,W: the input size where the model leaves it open (0: none) */
    const char *weights_file;   /* model.weights as written in the YAML (NULL: "<stem>.safetensors") */
} cnn_import_opts;

typedef struct cnn_import {
    char *yaml;                 /* NUL-terminated pipeline text */
    size_t yaml_len;
    unsigned char *weights;     /* safetensors image (16-byte aligned) */
    size_t weights_len;
    char assumed[400];          /* one line: the preprocessing written into the pipeline */
    char newer[256];            /* ops of the newer op set it uses ("" when none) */
    bool checked;               /* the pipeline was parsed and its graph built with the weights */
    int n_layers, n_tensors;
    unsigned long long n_params;
} cnn_import;

/* True when `path` names an ONNX model (it ends in ".onnx", any case). */
bool cnn_import_is_onnx(const char *path);

/* Imports `path`.  Errors (exit 2): the reader's (import/onnx.h), a node
 * that is unsupported or cannot be computed ("MODEL: node 'NAME' (OP, opset
 * N): why; supported: ..."), a graph with other than one input and one
 * output, options that do not fit the model (--size on a fixed input,
 * --mean with the wrong count).  The pipeline is checked (parsed, its graph
 * built with the weights) unless it uses ops this build lacks (then
 * r->newer names them and r->checked is false). */
int cnn_import_onnx(const char *path, const cnn_import_opts *o, cnn_import *r);
void cnn_import_free(cnn_import *r);

/* The same for a model read already (cnn_onnx_open / cnn_onnx_parse; its
 * path names it in messages), for tests and fuzzing.  f stays the
 * caller's to close (after r no longer needs it: r holds copies). */
struct cnn_onnx_file;
int cnn_import_file(struct cnn_onnx_file *f, const cnn_import_opts *o, cnn_import *r);

/* Parses "imagenet" / "none" / "raw"; CNN_ERR_USAGE otherwise. */
int cnn_import_parse_preprocess(const char *s, cnn_preprocess *out);
/* Parses "0.5" or "0.485,0.456,0.406" into out[1 or 3] (*n set). */
int cnn_import_parse_floats(const char *flag, const char *s, float out[3], int *n);
/* Parses "224" or "224,320" (H,W). */
int cnn_import_parse_size(const char *s, int out[2]);

#endif
