#define _POSIX_C_SOURCE 200809L
#include "io/pngpool.h"
#include "core/error.h"
#include "core/util.h"
#include "io/image.h"

#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_MAX_AUTO_THREADS 16
#define POOL_DEFAULT_PENDING ((size_t)256 << 20)

/* ------------------------------------------------------------- buffers */

/* One allocation: the count, then the pixels, aligned for any type so that
 * a producer may fill the block through wider pointers. */
struct cnn_png_buf {
    atomic_size_t refs;
    size_t bytes;
    alignas(max_align_t) uint8_t data[];
};

cnn_png_buf *cnn_png_buf_new(size_t bytes)
{
    size_t total;
    if (!cnn_add_size(sizeof(cnn_png_buf), bytes, &total)) {
        cnn_error_set(CNN_ERR_NOMEM, "out of host memory (%zu bytes of pixels)", bytes);
        return NULL;
    }
    cnn_png_buf *b = cnn_malloc(total);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->bytes = bytes;
    return b;
}

uint8_t *cnn_png_buf_data(cnn_png_buf *b) { return b->data; }

static void buf_retain(cnn_png_buf *b)
{
    /* The caller already holds a reference, so nothing can free the block
     * concurrently and no ordering is needed for the increment itself. */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void cnn_png_buf_release(cnn_png_buf *b)
{
    if (!b) return;
    /* acq_rel: every holder's reads of the pixels happen before the free by
     * whichever holder drops the last reference. */
    size_t old = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    CNN_ASSERT(old > 0);
    if (old == 1) free(b);
}

/* ---------------------------------------------------------------- pool */

struct job {
    struct job *next;
    cnn_png_buf *buf; /* one reference, owned by the job */
    size_t offset, bytes;
    int w, h, c;
    char path[]; /* copied, so the caller may reuse its string at once */
};

/* Everything below `mu` is guarded by it.  Three conditions, so that a
 * finished job wakes only those who can act on it: workers wait for work,
 * submitters for room, waiters for the queue to drain. */
struct cnn_png_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t room;
    pthread_cond_t idle;
    struct job *head, *tail;
    size_t pending;     /* bytes of jobs queued or being encoded */
    size_t max_pending;
    long active;        /* jobs queued or being encoded */
    long written;
    int level;
    bool stop;
    int status;         /* first failure of a job; sticky */
    char message[CNN_ERROR_MAX];
    int n_threads;      /* started, and to be joined */
    pthread_t threads[];
};

/* The worker's own message lives in its thread-local buffer, which dies
 * with the thread: copy the first one into the pool (under mu). */
static void pool_record_error(cnn_png_pool *p, int status)
{
    if (p->status != CNN_OK) return;
    p->status = status;
    snprintf(p->message, sizeof p->message, "%s", cnn_error_message());
}

/* Re-raises the first job failure in the calling thread. */
static int pool_raise(cnn_png_pool *p)
{
    return cnn_error_set(p->status, "%s", p->message);
}

static void *pool_worker(void *arg)
{
    cnn_png_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work, &p->mu);
        struct job *j = p->head;
        if (!j) break; /* stopping and nothing left */
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        /* After a failure the run is over: the remaining jobs are dropped
         * rather than encoded, so that wait() and free() return quickly. */
        bool skip = p->status != CNN_OK;
        pthread_mutex_unlock(&p->mu);

        int status = CNN_OK;
        if (!skip)
            status = cnn_png_write(j->path, j->buf->data + j->offset, j->w, j->h, j->c, p->level);
        cnn_png_buf_release(j->buf);
        size_t bytes = j->bytes;
        free(j);

        pthread_mutex_lock(&p->mu);
        if (status < 0)
            pool_record_error(p, status);
        else if (!skip)
            p->written++;
        p->pending -= bytes;
        p->active--;
        pthread_cond_broadcast(&p->room);
        if (p->active == 0) pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Tells the workers to leave once the queue is empty and joins them. */
static void pool_stop(cnn_png_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    p->n_threads = 0;
}

static void pool_destroy(cnn_png_pool *p)
{
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->room);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int cnn_png_pool_create(int threads, int level, size_t max_pending, cnn_png_pool **out)
{
    *out = NULL;
    CNN_ASSERT(threads >= 0);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > POOL_MAX_AUTO_THREADS ? POOL_MAX_AUTO_THREADS : (int)n;
    }
    cnn_png_pool *p = cnn_calloc(1, sizeof *p + sizeof(pthread_t) * (size_t)threads);
    if (!p) return CNN_ERR_NOMEM;
    p->level = level;
    p->max_pending = max_pending ? max_pending : POOL_DEFAULT_PENDING;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return cnn_error_set(CNN_ERR_NOMEM, "cannot create the PNG writer pool's mutex");
    }
    /* Conditions with default attributes cannot fail to initialise on
     * Linux/glibc; there is nothing to unwind them against anyway. */
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->room, NULL);
    pthread_cond_init(&p->idle, NULL);

    /* Workers start with every signal blocked, so that SIGINT/SIGTERM are
     * delivered to the main thread, which owns the interruption logic, and
     * never interrupt a worker in the middle of libpng. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    for (int i = 0; i < threads; i++) {
        err = pthread_create(&p->threads[i], NULL, pool_worker, p);
        if (err != 0) break;
        p->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        pool_stop(p);
        pool_destroy(p);
        return cnn_error_set(CNN_ERR_NOMEM, "cannot start %d PNG writer threads: %s", threads,
                             strerror(err));
    }
    *out = p;
    return CNN_OK;
}

int cnn_png_pool_submit(cnn_png_pool *p, const char *path, cnn_png_buf *buf, size_t offset, int w,
                        int h, int c)
{
    CNN_ASSERT(p && path && buf && w > 0 && h > 0 && (c == 1 || c == 3 || c == 4));
    size_t npix, bytes, end;
    CNN_ASSERT(cnn_mul_size((size_t)w, (size_t)h, &npix) && cnn_mul_size(npix, (size_t)c, &bytes));
    CNN_ASSERT(cnn_add_size(offset, bytes, &end) && end <= buf->bytes);

    /* Allocated before taking the lock, and thrown away if the pool has
     * failed meanwhile: the common path then holds mu only briefly. */
    size_t len = strlen(path) + 1;
    struct job *j = cnn_malloc(sizeof *j + len);
    if (!j) return CNN_ERR_NOMEM;
    *j = (struct job){.buf = buf, .offset = offset, .bytes = bytes, .w = w, .h = h, .c = c};
    memcpy(j->path, path, len);

    pthread_mutex_lock(&p->mu);
    /* An empty pool always takes the job, even one larger than max_pending,
     * or a single huge image would wait forever. */
    while (p->status == CNN_OK && p->pending > 0 &&
           (p->pending >= p->max_pending || bytes > p->max_pending - p->pending))
        pthread_cond_wait(&p->room, &p->mu);
    if (p->status != CNN_OK) {
        int status = pool_raise(p);
        pthread_mutex_unlock(&p->mu);
        free(j);
        return status;
    }
    buf_retain(buf);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->pending += bytes;
    p->active++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return CNN_OK;
}

int cnn_png_pool_wait(cnn_png_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->idle, &p->mu);
    int status = p->status == CNN_OK ? CNN_OK : pool_raise(p);
    pthread_mutex_unlock(&p->mu);
    return status;
}

void cnn_png_pool_free(cnn_png_pool *p)
{
    if (!p) return;
    /* The workers drain the queue before they leave (encoding, or dropping
     * after a failure), so stopping is the wait; the status is for the
     * caller's wait(), not ours to report. */
    pool_stop(p);
    CNN_ASSERT(p->active == 0 && !p->head);
    pool_destroy(p);
}

void cnn_png_pool_cancel(cnn_png_pool *p, int status, const char *message)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    if (p->status == CNN_OK) {
        p->status = status;
        snprintf(p->message, sizeof p->message, "%s", message);
    }
    pthread_mutex_unlock(&p->mu);
}

long cnn_png_pool_written(cnn_png_pool *p)
{
    pthread_mutex_lock(&p->mu);
    long n = p->written;
    pthread_mutex_unlock(&p->mu);
    return n;
}
