/* PNG files encoded on worker threads while the main thread keeps the
 * device busy.  Pixels live in reference-counted blocks so that many files
 * (the channels of one tap) can share one buffer read from the device.
 * Every file is written with cnn_png_write (temporary name, then rename). */
#ifndef CNN_IO_PNGPOOL_H
#define CNN_IO_PNGPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct cnn_png_buf cnn_png_buf;
typedef struct cnn_png_pool cnn_png_pool;

/* A block of `bytes` bytes with one reference (the caller's). NULL + error
 * message when out of memory. */
cnn_png_buf *cnn_png_buf_new(size_t bytes);
uint8_t *cnn_png_buf_data(cnn_png_buf *b);
/* Drops one reference; the block is freed with the last. NULL is a no-op. */
void cnn_png_buf_release(cnn_png_buf *b);

/* threads: worker count (0: the number of online CPUs, at most 16); level:
 * zlib level 0..9; max_pending: bytes of pixels queued but not yet encoded
 * before cnn_png_pool_submit blocks (0: 256 MiB). */
int cnn_png_pool_create(int threads, int level, size_t max_pending, cnn_png_pool **out);

/* Queues the PNG `path` (copied) of w x h x c bytes at data(buf) + offset,
 * taking a reference on buf.  Blocks while too much is pending.  Returns
 * the first error of an earlier job instead (and queues nothing), so a
 * failure stops the run early. */
int cnn_png_pool_submit(cnn_png_pool *p, const char *path, cnn_png_buf *buf, size_t offset, int w,
                        int h, int c);

/* Waits until every queued job is done; returns the first error (its
 * message, "path: what", is set in the calling thread) or CNN_OK. */
int cnn_png_pool_wait(cnn_png_pool *p);

/* Waits, stops the threads, frees. NULL is a no-op. */
void cnn_png_pool_free(cnn_png_pool *p);

/* Drops the queued jobs (files not started are not written; those being
 * encoded finish or are removed): the run was interrupted.  wait() then
 * returns `status` with `message`. */
void cnn_png_pool_cancel(cnn_png_pool *p, int status, const char *message);

/* Files written so far (for progress and the summary line). */
long cnn_png_pool_written(cnn_png_pool *p);

#endif
