/* Weights from a .safetensors file: mmapped, the header validated strictly
 * (it is untrusted input), tensors converted to float32 on demand.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {...}}
 * then the data section; offsets are relative to its start. */
#ifndef CNN_MODEL_WEIGHTS_H
#define CNN_MODEL_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CNN_WEIGHTS_MAX_DIMS 8
#define CNN_WEIGHTS_MAX_HEADER (100u << 20) /* 100 MiB of JSON is absurd already */

typedef enum cnn_dtype {
    CNN_DTYPE_F32,
    CNN_DTYPE_F16,
    CNN_DTYPE_BF16,
    CNN_DTYPE_OTHER /* known safetensors dtype we do not compute with (I64, U8, F64, BOOL, ...) */
} cnn_dtype;

typedef struct cnn_weight_tensor {
    char *name;
    cnn_dtype dtype;
    char dtype_name[8];                   /* as written: "F32", "I64", ... */
    int ndim;
    int64_t shape[CNN_WEIGHTS_MAX_DIMS];
    size_t numel;
    size_t offset;                        /* into the data section */
    size_t nbytes;
} cnn_weight_tensor;

typedef struct cnn_weights {
    char *path;                 /* for messages */
    void *map;                  /* mmap of the whole file (NULL for memory input) */
    size_t map_len;
    int map_guard;              /* SIGBUS guard slot + 1 (0: none) */
    const unsigned char *data;  /* data section */
    size_t data_len;
    cnn_weight_tensor *tensors; /* [n], in header order */
    int n;
} cnn_weights;

/* Opens and validates.  Errors (CNN_ERR_INPUT, message starts with the path):
 * file shorter than 8 bytes; header length 0, > CNN_WEIGHTS_MAX_HEADER or past
 * the end of the file; header not a JSON object; entry without dtype/shape/
 * data_offsets or with extra keys; unknown dtype string; negative or
 * non-integer shape; numel*itemsize overflowing or != end-begin; begin > end;
 * end past the data section; two tensors overlapping; duplicate names. */
int cnn_weights_open(const char *path, cnn_weights *w);

/* Same over a caller-owned buffer that must outlive `w` (tests, fuzzing). */
int cnn_weights_open_memory(const char *name, const void *buf, size_t len, cnn_weights *w);

void cnn_weights_close(cnn_weights *w);

/* The tensor called `name`, or NULL. */
const cnn_weight_tensor *cnn_weights_find(const cnn_weights *w, const char *name);

/* Converts tensor t (F32, F16 or BF16) to `numel` floats in `out`.
 * CNN_ERR_INPUT naming the tensor for other dtypes. */
int cnn_weights_to_f32(const cnn_weights *w, const cnn_weight_tensor *t, float *out);

/* Non-finite values among floats: NaN (any payload, either sign) and
 * infinities by sign. */
typedef struct cnn_nonfinite_count {
    size_t nan, pos_inf, neg_inf;
} cnn_nonfinite_count;

/* Counts the NaN and Inf among v[0, n) into *c; true when there is any.
 * v needs only float alignment (it may point into the file's map).  A
 * vectorised test over the whole tensor, and a second, counting pass only
 * over a tensor that holds some. */
bool cnn_weights_scan_f32(const float *v, size_t n, cnn_nonfinite_count *c);

/* Drops the file pages of tensor t from memory once it has been converted
 * (they are read again if touched), so that loading a model never holds
 * the file and its float copy at once.  No-op for memory input. */
void cnn_weights_drop_pages(const cnn_weights *w, const cnn_weight_tensor *t);

/* The same for `nbytes` of the data section from `p` (a tensor used in
 * place, once it is on the device). */
void cnn_weights_drop_range(const cnn_weights *w, const void *p, size_t nbytes);

#endif
