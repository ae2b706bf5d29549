/* Decoding ahead on worker threads (io/prefetch.h).  A ring of `window`
 * slots: image k lives in slot k % window; a worker claims the next index
 * when its slot is free (the caller has taken image k - window), decodes
 * outside the lock and publishes the result. */
#define _POSIX_C_SOURCE 200809L
#include "io/prefetch.h"
#include "core/error.h"
#include "core/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct slot {
    int k;            /* the image held or being decoded; -1: free */
    bool ready;
    int status;
    cnn_image img;
    char *msg;        /* the decoder's message when status < 0 */
} slot;

struct cnn_prefetch {
    const char *const *paths;
    int next, end;    /* the next index to claim; one past the last */
    int window;
    slot *slots;
    pthread_t *threads;
    int n_threads;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t filled, freed;
};

static void *worker(void *arg)
{
    cnn_prefetch *pf = arg;
    /* signals go to the caller's thread, which polls them */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_mutex_lock(&pf->mu);
    for (;;) {
        while (!pf->stop && pf->next < pf->end && pf->slots[pf->next % pf->window].k >= 0)
            pthread_cond_wait(&pf->freed, &pf->mu);
        if (pf->stop || pf->next >= pf->end) break;
        int k = pf->next++;
        slot *s = &pf->slots[k % pf->window];
        s->k = k;
        s->ready = false;
        pthread_mutex_unlock(&pf->mu);
        cnn_image img = {0};
        int status = pf->paths[k] ? cnn_image_load(pf->paths[k], &img) : CNN_OK;
        char *msg = status < 0 ? cnn_strdup(cnn_error_message()) : NULL;
        pthread_mutex_lock(&pf->mu);
        s->img = img;
        s->status = status;
        s->msg = msg;
        s->ready = true;
        pthread_cond_broadcast(&pf->filled);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

int cnn_prefetch_start(const char *const *paths, int first, int n, int threads, int window, cnn_prefetch **out)
{
    *out = NULL;
    cnn_prefetch *pf = cnn_calloc(1, sizeof *pf);
    if (!pf) return CNN_ERR_NOMEM;
    pf->paths = paths;
    pf->next = first;
    pf->end = n;
    pf->window = window < 1 ? 1 : window;
    pf->slots = cnn_calloc((size_t)pf->window, sizeof *pf->slots);
    pf->threads = cnn_calloc((size_t)(threads < 1 ? 1 : threads), sizeof *pf->threads);
    if (!pf->slots || !pf->threads) {
        free(pf->slots);
        free(pf->threads);
        free(pf);
        return CNN_ERR_NOMEM;
    }
    for (int i = 0; i < pf->window; i++) pf->slots[i].k = -1;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->filled, NULL);
    pthread_cond_init(&pf->freed, NULL);
    for (int t = 0; t < (threads < 1 ? 1 : threads); t++) {
        int e = pthread_create(&pf->threads[t], NULL, worker, pf);
        if (e) {
            cnn_prefetch_free(pf);
            return cnn_error_set(CNN_ERR_NOMEM, "image decoding: cannot start a thread: %s", strerror(e));
        }
        pf->n_threads++;
    }
    *out = pf;
    return CNN_OK;
}

int cnn_prefetch_take(cnn_prefetch *pf, int k, cnn_image *img)
{
    memset(img, 0, sizeof *img);
    slot *s = &pf->slots[k % pf->window];
    pthread_mutex_lock(&pf->mu);
    CNN_ASSERT(k < pf->end);
    while (!(s->k == k && s->ready)) pthread_cond_wait(&pf->filled, &pf->mu);
    *img = s->img;
    int status = s->status;
    if (status < 0) cnn_error_set(status, "%s", s->msg ? s->msg : "image decoding failed");
    free(s->msg);
    memset(s, 0, sizeof *s);
    s->k = -1;
    pthread_cond_broadcast(&pf->freed);
    pthread_mutex_unlock(&pf->mu);
    return status;
}

void cnn_prefetch_free(cnn_prefetch *pf)
{
    if (!pf) return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = true;
    pthread_cond_broadcast(&pf->freed);
    pthread_mutex_unlock(&pf->mu);
    for (int t = 0; t < pf->n_threads; t++) pthread_join(pf->threads[t], NULL);
    for (int i = 0; i < pf->window; i++) {
        cnn_image_free(&pf->slots[i].img);
        free(pf->slots[i].msg);
    }
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->filled);
    pthread_cond_destroy(&pf->freed);
    free(pf->slots);
    free(pf->threads);
    free(pf);
}

int cnn_prefetch_threads(bool cpu_device)
{
    const char *env = getenv("CNNVIZ_DECODE_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == '\0' && v >= 1 && v <= 64) return (int)v;
    }
    if (cpu_device) return 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}
