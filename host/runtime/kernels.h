/* The kernel files of cl/, embedded at build time (cmake/EmbedKernels.cmake). */
#ifndef CNN_RUNTIME_KERNELS_H
#define CNN_RUNTIME_KERNELS_H

#include <stddef.h>

typedef struct cnn_kernel_file {
    const char *name; /* "conv.cl" */
    const char *data; /* bytes, NUL-terminated */
    size_t len;       /* without the NUL */
} cnn_kernel_file;

/* Terminated by an entry whose name is NULL. */
extern const cnn_kernel_file cnn_kernel_files[];

#endif
