/* NumPy .npy files, format 1.0, little-endian float32, C order. */
#ifndef CNN_IO_NPY_H
#define CNN_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

/* Writes atomically (temporary name then rename). ndim 1..8. */
int cnn_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim);

#define CNN_NPY_MAX_HEADER 65536 /* NumPy writes about 128 bytes */

/* The header of a .npy file: what cnn_npy_parse_header accepts. */
typedef struct cnn_npy_info {
    int ndim;                   /* 0..8 */
    int64_t shape[8];
    size_t numel;
    size_t data_offset;         /* bytes before the data */
} cnn_npy_info;

/* Parses the header at the start of buf[len] (a file's first bytes)
 * strictly: magic "\x93NUMPY", version 1.0, 2.0 or 3.0, a header of at most
 * CNN_NPY_MAX_HEADER bytes holding exactly the Python dict {'descr': '<f4',
 * 'fortran_order': False, 'shape': (d0, d1, ...)} (keys in any order,
 * spaces and a trailing comma allowed, nothing else) and ending in '\n';
 * at most 8 dimensions whose product (elements) fits in size_t when
 * multiplied by 4.  Errors (CNN_ERR_INPUT) start with `name` and say what:
 * "not a .npy file", "dtype '<f8': float32 ('<f4') is needed", "Fortran
 * order", ... */
int cnn_npy_parse_header(const char *name, const unsigned char *buf, size_t len, cnn_npy_info *info);

/* Reads a whole float32 .npy file: its header as above, and exactly
 * numel * 4 bytes of data after it (a file longer or shorter than that is
 * refused).  data: heap [numel] (free it); the file must be at most
 * max_bytes and a regular file (cnn_file_open_read). */
int cnn_npy_read_f32(const char *path, size_t max_bytes, cnn_npy_info *info, float **data);

/* Only the header of the file at path (the first bytes are read). */
int cnn_npy_read_info(const char *path, cnn_npy_info *info);

#endif
