/* Images decoded ahead of their use on worker threads, so that the decoder
 * works while the device runs the batch before (a folder of JPEGs on a GPU
 * is otherwise bound by decoding on one thread).
 *
 * The caller takes images in order, k = first, first + 1, ...; workers
 * decode at most `window` images ahead of the one taken last.  Entries
 * whose path is NULL (inputs that are not image files) are skipped by the
 * workers and given back as empty.  Workers block SIGINT and SIGTERM, so
 * a signal interrupts the caller's thread, which polls it as before; a
 * decode error is kept with its message and given back with the image. */
#ifndef CNN_IO_PREFETCH_H
#define CNN_IO_PREFETCH_H

#include <stdbool.h>
#include "io/image.h"

typedef struct cnn_prefetch cnn_prefetch;

/* paths[first .. n - 1] are borrowed until cnn_prefetch_free.  threads:
 * decoding threads (>= 1); window: images decoded ahead (>= 1). */
int cnn_prefetch_start(const char *const *paths, int first, int n, int threads, int window, cnn_prefetch **out);

/* Image k (the next one in order after the last taken): waits for it and
 * moves it into *img (the caller frees it).  Returns the decoder's status,
 * its message set as this thread's error; an entry with a NULL path gives
 * CNN_OK and an empty image. */
int cnn_prefetch_take(cnn_prefetch *pf, int k, cnn_image *img);

/* Stops the workers (an image being decoded is finished and dropped) and
 * frees everything not taken. */
void cnn_prefetch_free(cnn_prefetch *pf);

/* Decoding threads for a run: 1 beside a CPU device (its kernels use every
 * core; one thread overlaps decoding with them without taking more), else
 * the processors online up to 8; $CNNVIZ_DECODE_THREADS overrides (1-64). */
int cnn_prefetch_threads(bool cpu_device);

#endif
