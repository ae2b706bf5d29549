/* ONNX model files: the protobuf decoded by protobuf-c (C structs generated
 * at build time from Debian's onnx/onnx.proto), tensors read from the file
 * or from external data beside it.  Everything here is untrusted input:
 * nesting depth, decoded size, tensor sizes and external paths are bounded
 * before anything is allocated or opened.  The importer (import/import.h)
 * turns the graph into a pipeline; this module only reads. */
#ifndef CNN_IMPORT_ONNX_H
#define CNN_IMPORT_ONNX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx/onnx.pb-c.h"

#define CNN_ONNX_MAX_DIMS 8
#define CNN_ONNX_MAX_DEPTH 48               /* message nesting (a model needs about 10) */
#define CNN_ONNX_MAX_FILE (2ull << 30)      /* protobuf's own limit; bigger models use external data */
#define CNN_ONNX_MAX_VALUES (1ull << 31)    /* elements of one tensor (as the graph's limit) */

/* One external data file, mapped read-only. */
typedef struct cnn_onnx_ext {
    char *location;             /* as written in the model */
    const unsigned char *map;
    size_t len;
    int guard;                  /* SIGBUS guard slot + 1 (0: none) */
} cnn_onnx_ext;

typedef struct cnn_onnx_file {
    char *path;                 /* for messages */
    char *dir;                  /* external data is resolved inside this folder */
    Onnx__ModelProto *model;    /* decoded; graph checked non-NULL */
    int64_t opset;              /* version of the default ("" / "ai.onnx") operator set */
    cnn_onnx_ext *ext;          /* [n_ext] */
    int n_ext;
    size_t decoded_bytes;       /* heap the decoded model holds */
    void *alloc_state;          /* the counting allocator protobuf-c used */
} cnn_onnx_file;

/* Reads and decodes `path` (a regular file, at most CNN_ONNX_MAX_FILE).
 * Errors (CNN_ERR_INPUT, the message starts with the path): not a protobuf
 * (truncated, a field cut short, bad wire type, nesting deeper than
 * CNN_ONNX_MAX_DEPTH), decoding that would need more than 1 GiB + 4 times the
 * file size of memory, no graph, no default-domain operator set. */
int cnn_onnx_open(const char *path, cnn_onnx_file *f);

/* Same from memory (`name` in messages; external data resolved in `dir`,
 * which may be NULL to refuse external data).  For tests and fuzzing. */
int cnn_onnx_parse(const char *name, const char *dir, const void *buf, size_t len, cnn_onnx_file *f);

void cnn_onnx_close(cnn_onnx_file *f);

/* Shape and type of a tensor, checked: 0 <= dims, ndim <= CNN_ONNX_MAX_DIMS,
 * numel <= CNN_ONNX_MAX_VALUES, and its data present in exactly the size the
 * shape needs (raw_data, the typed field, or external data: relative path
 * inside the model's folder, no "..", no symbolic link on the way, offset
 * and length inside the file).  `bytes` points to its little-endian raw
 * bytes (in the decoded model or an external map) when it has them, else
 * NULL (the typed fields hold the values).  Errors name the tensor. */
typedef struct cnn_onnx_tensor {
    const char *name;
    int dtype;                  /* ONNX TensorProto.DataType */
    int ndim;
    int64_t dims[CNN_ONNX_MAX_DIMS];
    size_t numel;
    const unsigned char *bytes; /* [numel * item size] or NULL */
} cnn_onnx_tensor;

int cnn_onnx_tensor_get(cnn_onnx_file *f, const Onnx__TensorProto *t, cnn_onnx_tensor *out);

/* True for the types cnn_onnx_to_f32 converts (float, float16, bfloat16,
 * double); cnn_onnx_to_i64 takes the integer types and bool. */
bool cnn_onnx_is_float_type(int dtype);
bool cnn_onnx_is_int_type(int dtype);

/* The values of a tensor got with cnn_onnx_tensor_get(), converted into
 * out[numel].  CNN_ERR_INPUT naming the tensor for other types. */
int cnn_onnx_to_f32(const Onnx__TensorProto *t, const cnn_onnx_tensor *info, float *out);
int cnn_onnx_to_i64(const Onnx__TensorProto *t, const cnn_onnx_tensor *info, int64_t *out);

/* "FLOAT", "INT64", ... ("type 42" for unknown ones; static or thread-local). */
const char *cnn_onnx_type_name(int dtype);

/* Names in an ONNX file are any bytes: a message that quotes one is made
 * one line (cnn_escape_line) before it leaves the importer.  Returns
 * status. */
int cnn_onnx_one_line(int status);

/* The attribute called `name` of node n, or NULL. */
const Onnx__AttributeProto *cnn_onnx_attr(const Onnx__NodeProto *n, const char *name);

#endif
