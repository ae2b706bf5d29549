/* NumPy .npy files, format 1.0, little-endian float32, C order. */
#ifndef CNN_IO_NPY_H
#define CNN_IO_NPY_H

#include <stdint.h>

/* Writes atomically (temporary name then rename). ndim 1..8. */
int cnn_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim);

#endif
