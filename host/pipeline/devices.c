/* A run over several devices of one machine (--device all, --device 0,2):
 * the lead prepares the run and opens the output folder; each device gets
 * a worker, a job of its own (context, queue, network, tap buffers) that
 * borrows the lead's input list, stage and PNG pool; worker threads take
 * the next batch whoever is free; at the end the lead puts every input's
 * files, predictions and report lines in input order and publishes, so
 * that the folder is the one a single device writes.
 *
 * The batches are the single run's (multiples of --batch); global ranges
 * are gathered once, on the first device, and given to the others.  A
 * device that fails (an OpenCL error) is reported and stops; what it had
 * begun of its batch is dropped and the batch is run again on a device
 * that still works, once the others are done. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/jsonparse.h"
#include "viz/vizops.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEVICES 16

typedef struct shared {
    atomic_int next;          /* the next batch to take */
    atomic_int done_inputs;
    atomic_bool stop;         /* an error: every worker stops after its batch */
    atomic_int running;       /* workers not done */
    int n_batches, batch;
    double t0;                /* when the lead began */
    pthread_mutex_t mu;       /* failed[], t_first, prediction lines */
    double t_first;           /* when the first batch was done (ms since the lead began) */
    int failed[MAX_DEVICES];  /* batches a failing device left */
    int n_failed;
} shared;

typedef struct worker {
    cnn_job s;
    shared *sh;
    const cnn_log *sink;
    pthread_t thread;
    bool started, dead;
    int status;               /* the first error (not a device failure) */
    char message[CNN_ERROR_MAX];
    int batches, inputs;      /* what it ran */
    double busy_ms;
} worker;

/* What a worker keeps of its outputs, to drop a batch a failure cut short. */
typedef struct mark {
    int manifest, done, rin, skipped, failed, nonfinite;
    size_t preds, csv;
    int depth;
    bool first, after_key;
} mark;

static mark mark_of(const cnn_job *s)
{
    return (mark){s->manifest.n, s->n_done, s->n_rin, s->n_skipped, s->failed_inputs, s->nonfinite_inputs,
                  s->preds.len, s->csv_len, s->preds.depth, s->preds.first[s->preds.depth], s->preds.after_key};
}

static void drop_after(cnn_job *s, const mark *m)
{
    cnn_manifest_truncate(&s->manifest, m->manifest);
    s->n_done = m->done;
    s->n_rin = m->rin;
    s->n_skipped = m->skipped;
    s->failed_inputs = m->failed;
    s->nonfinite_inputs = m->nonfinite;
    s->preds.len = m->preds;
    if (s->preds.buf) s->preds.buf[m->preds] = '\0';
    s->preds.depth = m->depth;
    s->preds.first[m->depth] = m->first;
    s->preds.after_key = m->after_key;
    s->csv_len = m->csv;
    s->n_pend = 0;
}

/* Runs batch j on worker w; a device failure leaves the batch to others. */
static int run_one(worker *w, int j, int *slot_of)
{
    shared *sh = w->sh;
    int k = w->s.first + j * sh->batch, b = 0;
    mark m = mark_of(&w->s);
    double t0 = cnn_now_ms();
    int status = cnn_job_batch(&w->s, sh->batch, &k, slot_of, &b);
    w->busy_ms += cnn_now_ms() - t0;
    if (status == CNN_ERR_DEVICE) {
        cnn_logf(CNN_LOG_WARN, "device %d (%s) failed: %s; its batch and the rest go to the other devices",
                 w->s.device_rank, w->s.cl.device_name, cnn_error_message());
        drop_after(&w->s, &m);
        pthread_mutex_lock(&sh->mu);
        sh->failed[sh->n_failed++] = j;
        pthread_mutex_unlock(&sh->mu);
        w->dead = true;
        return CNN_OK;
    }
    if (status < 0) return status;
    w->batches++;
    w->inputs += b;
    if (atomic_fetch_add(&sh->done_inputs, b) == 0 && b) {
        pthread_mutex_lock(&sh->mu);
        if (!sh->t_first) sh->t_first = cnn_now_ms() - sh->t0;
        pthread_mutex_unlock(&sh->mu);
    }
    return CNN_OK;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    cnn_log_use(w->sink);
    int *slot_of = cnn_calloc((size_t)sh->batch, sizeof *slot_of);
    int status = slot_of ? CNN_OK : CNN_ERR_NOMEM;
    while (status == CNN_OK && !w->dead && !atomic_load(&sh->stop)) {
        int j = atomic_fetch_add(&sh->next, 1);
        if (j >= sh->n_batches) break;
        status = run_one(w, j, slot_of);
    }
    free(slot_of);
    if (status < 0) {
        w->status = status;
        snprintf(w->message, sizeof w->message, "%s", cnn_error_message());
        atomic_store(&sh->stop, true);
    }
    atomic_fetch_sub(&sh->running, 1);
    return NULL;
}

/* The other devices draw with the first one's global ranges. */
static int share_ranges(worker *from, worker *to)
{
    if (to->s.have_ranges) return cnn_job_global(&to->s, to->sh->batch); /* the file's, as the first one did */
    uint32_t *hist = cnn_malloc(CNN_VIZ_BINS * sizeof *hist);
    int status = hist ? CNN_OK : CNN_ERR_NOMEM;
    for (int t = 0; t < to->s.n_taps && status == CNN_OK; t++) {
        cnn_vtap *a = &from->s.taps[t], *b = &to->s.taps[t];
        if (!cnn_job_global_tap(b)) continue;
        bool h = cnn_vtap_needs_hist(a);
        if (h) status = cnn_vtap_global_read_hist(&from->s.viz, a, hist);
        if (status == CNN_OK) status = cnn_vtap_global_set(&to->s.viz, b, a->gmin, a->gmax, a->g_any, h ? hist : NULL);
        if (status == CNN_OK) status = cnn_vtap_global_finish(&to->s.viz, b);
    }
    free(hist);
    return status;
}

static void quiet_emit(void *ctx, cnn_log_kind kind, const char *text)
{
    (void)ctx, (void)kind, (void)text;
}

/* Everything the workers finished, in input order, into the lead. */
static int gather(cnn_job *lead, worker *ws, int n)
{
    int total = lead->inputs.n;
    int *who = cnn_malloc(((size_t)total + 1) * sizeof *who), *at = cnn_malloc(((size_t)total + 1) * sizeof *at);
    cnn_jv *preds = cnn_calloc((size_t)n, sizeof *preds);
    int status = who && at && preds ? CNN_OK : CNN_ERR_NOMEM;
    for (int k = 0; status == CNN_OK && k < total; k++) who[k] = -1;
    for (int i = 0; i < n && status == CNN_OK; i++) {
        cnn_job *s = &ws[i].s;
        for (int d = 0; d < s->n_done; d++) {
            who[s->done_of[d]] = i;
            at[s->done_of[d]] = d;
        }
        cnn_json_array_end(&s->preds);
        status = s->preds.failed ? CNN_ERR_NOMEM : cnn_jv_parse(s->preds.buf, s->preds.len, &preds[i]);
        /* the files: the first device's (the model's among them), then the others' */
        for (int e = 0; e < s->manifest.n && status == CNN_OK; e++) status = cnn_manifest_add(&lead->manifest, &s->manifest.e[e]);
        for (int k = 0; k < s->n_skipped && status == CNN_OK; k++) {
            int *p = cnn_realloc(lead->skipped, ((size_t)lead->n_skipped + 1) * sizeof *p);
            if (!p) status = CNN_ERR_NOMEM;
            else (lead->skipped = p)[lead->n_skipped++] = s->skipped[k];
        }
        if (s->failed_inputs && !lead->first_skip[0]) snprintf(lead->first_skip, sizeof lead->first_skip, "%s", s->first_skip);
        lead->failed_inputs += s->failed_inputs;
        if (s->nonfinite_inputs && (!lead->nonfinite_inputs || s->first_nonfinite < lead->first_nonfinite))
            lead->first_nonfinite = s->first_nonfinite;
        lead->nonfinite_inputs += s->nonfinite_inputs;
        lead->output_nan |= s->output_nan;
        lead->output_inf |= s->output_inf;
        /* notes: the first device's, then those of the others it lacks */
        for (int k = 0; i && k < s->viz.n_notes && status == CNN_OK; k++) {
            bool seen = false;
            for (int m = 0; m < ws[0].s.viz.n_notes && !seen; m++) seen = !strcmp(ws[0].s.viz.notes[m], s->viz.notes[k]);
            if (!seen) status = cnn_vctx_note(&ws[0].s.viz, "%s", s->viz.notes[k]);
        }
    }
    /* skipped inputs in order */
    for (int a = 1; a < lead->n_skipped; a++)
        for (int b = a; b > 0 && lead->skipped[b - 1] > lead->skipped[b]; b--) {
            int t = lead->skipped[b];
            lead->skipped[b] = lead->skipped[b - 1];
            lead->skipped[b - 1] = t;
        }
    if (status == CNN_OK && lead->report) {
        lead->rin = cnn_calloc((size_t)total + 1, sizeof *lead->rin);
        if (!lead->rin) status = CNN_ERR_NOMEM;
    }
    cnn_json_array_begin(&lead->preds);
    for (int k = 0; k < total && status == CNN_OK; k++) {
        if (who[k] < 0) continue;
        cnn_job *s = &ws[who[k]].s;
        int d = at[k];
        cnn_json_value(&lead->preds, &preds[who[k]].items[d]);
        size_t end = d + 1 < s->n_done ? s->row_at[d + 1] : s->csv_len;
        status = cnn_job_csv_raw(lead, s->csv + s->row_at[d], end - s->row_at[d]);
        if (lead->rin && s->rin) lead->rin[lead->n_rin++] = s->rin[d];
    }
    for (int i = 0; i < n; i++) cnn_jv_free(&preds[i]);
    free(preds);
    free(who);
    free(at);
    return status;
}

int cnn_job_run_devices(const cnn_job_opts *o, cnn_job_result *res)
{
    int plats[MAX_DEVICES], devs[MAX_DEVICES], n = 0;
    int status = cnn_cl_select_several(o->platform, o->device, plats, devs, MAX_DEVICES, &n);
    res->bad_device = status == CNN_ERR_USAGE;
    if (status < 0) return status;
    if (n > 1 && (o->profile || o->repeat || o->stats))
        return cnn_error_set(CNN_ERR_USAGE, "run: %s on one device: choose one with --device N (a --stats pass "
                             "is one forward per input; --profile and --repeat time one device)",
                             o->profile ? "--profile runs" : o->repeat ? "--repeat runs" : "--stats gathers");
    cnn_job lead;
    memset(&lead, 0, sizeof lead);
    lead.o = *o;
    worker *ws = cnn_calloc((size_t)n, sizeof *ws);
    shared sh;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.mu, NULL);
    const cnn_log *sink = cnn_log_use(NULL);
    cnn_log_use(sink);
    cnn_log quiet = {.emit = quiet_emit};
    if (!ws) status = CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_job_prepare(&lead, NULL);
    sh.t0 = lead.t_start;
    if (status == CNN_OK) status = cnn_job_open(&lead);
    int level = o->png_level >= 0 ? o->png_level : lead.l.pipe.png_level;
    if (status == CNN_OK && lead.images) status = cnn_png_pool_create(0, level, 0, &lead.pool);
    /* the devices one after another: the first times the convolutions'
     * kernels (kept in the cache), the others read its choice */
    int batch = 1;
    for (int i = 0; i < n && status == CNN_OK; i++) {
        worker *w = &ws[i];
        w->sh = &sh;
        w->sink = sink;
        w->s.o = *o;
        w->s.device_rank = i;
        w->s.print_mu = &sh.mu;
        w->s.no_model_taps = i > 0;
        cnn_log_use(&quiet); /* the lead said it all once */
        status = cnn_job_prepare(&w->s, &lead);
        cnn_log_use(sink);
        w->s.pool = lead.pool;
        w->s.wdir = lead.wdir;
        char p[16], d[16];
        snprintf(p, sizeof p, "%d", plats[i]);
        snprintf(d, sizeof d, "%d", devs[i]);
        bool bad = false;
        if (status == CNN_OK) status = cnn_job_device(&w->s, p, d, &batch, &bad);
    }
    if (status == CNN_OK) status = cnn_job_global(&ws[0].s, batch);
    for (int i = 1; i < n && status == CNN_OK; i++) status = share_ranges(&ws[0], &ws[i]);
    int count = lead.end - lead.first;
    sh.batch = batch;
    sh.n_batches = (count + batch - 1) / batch;
    double t_loop = cnn_now_ms();
    atomic_store(&sh.running, n);
    for (int i = 0; i < n; i++) {
        if (status == CNN_OK && pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) == 0) ws[i].started = true;
        else if (status == CNN_OK) status = cnn_error_set(CNN_ERR_NOMEM, "cannot start a thread for device %d", i);
        if (!ws[i].started) atomic_fetch_sub(&sh.running, 1);
    }
    /* the progress, from here, while the workers run */
    while (status == CNN_OK && atomic_load(&sh.running) > 0) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int done = atomic_load(&sh.done_inputs);
        if (count > 1) cnn_log_progress(done, count, done / ((cnn_now_ms() - t_loop) / 1000.0 + 1e-9), false);
    }
    if (status < 0) atomic_store(&sh.stop, true);
    for (int i = 0; i < n; i++)
        if (ws[i].started) pthread_join(ws[i].thread, NULL);
    for (int i = 0; i < n && status == CNN_OK; i++)
        if (ws[i].status < 0) status = cnn_error_set(ws[i].status, "%s", ws[i].message);
    /* batches of failed devices, on one that works, once every file queued before is written */
    int alive = -1;
    for (int i = 0; i < n && alive < 0; i++)
        if (!ws[i].dead) alive = i;
    if (status == CNN_OK && sh.n_failed && alive < 0)
        status = cnn_error_set(CNN_ERR_DEVICE, "every device failed (the warnings above say how)");
    if (status == CNN_OK && sh.n_failed && lead.pool) status = cnn_png_pool_wait(lead.pool);
    int *slot_of = status == CNN_OK && sh.n_failed ? cnn_calloc((size_t)batch, sizeof *slot_of) : NULL;
    for (int f = 0; f < sh.n_failed && status == CNN_OK; f++) {
        ws[alive].s.print_mu = NULL; /* one thread from here */
        status = slot_of ? run_one(&ws[alive], sh.failed[f], slot_of) : CNN_ERR_NOMEM;
        if (status == CNN_OK && ws[alive].dead) status = cnn_error_set(CNN_ERR_DEVICE, "every device failed");
    }
    free(slot_of);
    double loop_ms = cnn_now_ms() - t_loop;
    int done = atomic_load(&sh.done_inputs);
    if (status == CNN_OK) {
        if (count > 1) cnn_log_progress(done, count, done / (loop_ms / 1000.0 + 1e-9), true);
        for (int i = 0; i < n; i++)
            cnn_logf(CNN_LOG_INFO, "device %d (%s): %d batch%s, %d inputs, %.1f images/s while busy%s", i,
                     ws[i].s.cl.device_name, ws[i].batches, ws[i].batches == 1 ? "" : "es", ws[i].inputs,
                     ws[i].busy_ms > 0 ? ws[i].inputs / (ws[i].busy_ms / 1000.0) : 0.0, ws[i].dead ? "; failed" : "");
        size_t len = 0;
        for (int i = 0; i < n; i++) len += strlen(ws[i].s.cl.device_name) + strlen(ws[i].s.cl.platform_name) + 8;
        lead.devices = cnn_malloc(len + 1);
        if (!lead.devices) status = CNN_ERR_NOMEM;
        for (int i = 0, at = 0; lead.devices && i < n; i++)
            at += snprintf(lead.devices + at, len + 1 - (size_t)at, "%s%s (%s)", i ? "; " : "", ws[i].s.cl.device_name,
                           ws[i].s.cl.platform_name);
        lead.primary = &ws[0].s;
    }
    if (status == CNN_OK && lead.pool) status = cnn_png_pool_wait(lead.pool);
    if (status == CNN_OK) status = gather(&lead, ws, n);
    if (status == CNN_OK) status = cnn_job_conclude(&lead, batch, done, loop_ms, sh.t_first, res);
    if (status < 0) cnn_outdir_fix_message(&lead.od);
    /* the workers' files are the lead's now (its manifest holds copies) */
    for (int i = 0; ws && i < n; i++) cnn_job_free(&ws[i].s);
    cnn_job_free(&lead);
    free(ws);
    pthread_mutex_destroy(&sh.mu);
    return status;
}
