/* The scheduler (pipeline/job.h): a job loads the model, takes the output
 * folder and a device, then runs the inputs in batches: each batch's
 * forward, its predictions and taps, the attribution methods' shared
 * backward passes (methods.c) and their own passes and curves (sampling.c);
 * at the end the predictions, the report and the commit (outputs.c).
 *
 * One file: it is the one place that decides the order of a batch's passes;
 * the pieces it calls live in methods.c, sampling.c, outputs.c and
 * devices.c. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/job_impl.h"
#include "viz/featvis.h"
#include "pipeline/methods.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/image.h"
#include "io/npy.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "ops/tune.h"
#include "viz/gradmap.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cnn_job_opts_init(cnn_job_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->png_level = -1;
    o->curves = -1;
    o->road = -1;
}

/* Preprocessing geometry of one image: resize target and crop origin. */
static int input_geometry(const cnn_input_spec *in, const char *path, int ih, int iw, int *rh, int *rw, int *top,
                          int *left)
{
    *rh = ih;
    *rw = iw;
    if (in->resize == CNN_RESIZE_SHORTER_CROP) {
        /* torchvision Resize(int): the shorter side becomes N, the longer
         * int(N * long / short). */
        if (ih <= iw) {
            *rh = in->shorter;
            *rw = (int)((double)in->shorter * iw / ih);
        } else {
            *rw = in->shorter;
            *rh = (int)((double)in->shorter * ih / iw);
        }
    } else if (in->resize == CNN_RESIZE_STRETCH) {
        *rh = in->stretch[0];
        *rw = in->stretch[1];
    }
    if (*rh < in->h || *rw < in->w)
        return cnn_error_set(CNN_ERR_INPUT, "%s: image is %dx%d; the network takes %dx%d (set model.input.resize)",
                             path, iw, ih, in->w, in->h);
    if (in->resize == CNN_RESIZE_NONE && (*rh != in->h || *rw != in->w))
        return cnn_error_set(CNN_ERR_INPUT, "%s: image is %dx%d; the network takes %dx%d (set model.input.resize)",
                             path, iw, ih, in->w, in->h);
    /* torchvision CenterCrop: int(round((H - h) / 2)), round half to even. */
    *top = (int)rint((*rh - in->h) / 2.0);
    *left = (int)rint((*rw - in->w) / 2.0);
    return CNN_OK;
}

/* Input k from its .npy file into slot `b`: as it is, no preprocessing. */
static int load_tensor(cnn_job *s, int k, int b)
{
    const cnn_input_spec *in = &s->l.pipe.input;
    const char *file = s->inputs.file[k];
    if (!s->npy || !s->npy_of || strcmp(s->npy_of, file) != 0) {
        free(s->npy);
        s->npy = NULL;
        s->npy_of = NULL;
        cnn_npy_info info;
        CNN_TRY_RET(cnn_npy_read_f32(file, (size_t)1 << 34, &info, &s->npy));
        const int64_t want[3] = {in->c, in->h, in->w};
        size_t first = info.ndim == 4 ? 1 : 0;
        if ((info.ndim != 3 && info.ndim != 4) || memcmp(info.shape + first, want, sizeof want) != 0)
            return cnn_error_set(CNN_ERR_INPUT, "%s: the file changed since the run began", file);
        s->npy_of = file;
    }
    size_t per = (size_t)in->c * in->h * in->w;
    size_t idx = s->inputs.sample[k] < 0 ? 0 : (size_t)s->inputs.sample[k];
    return cnn_cl_write(&s->cl, s->net.input, (size_t)b * per * sizeof(float), per * sizeof(float),
                        s->npy + idx * per, s->inputs.paths[k]);
}

int cnn_job_load_pixels(cnn_job *s, const cnn_image *img, const char *name, int b)
{
    const cnn_input_spec *in = &s->l.pipe.input;
    int rh = 0, rw = 0, top = 0, left = 0;
    cl_mem src = NULL, tmp = NULL;
    int status;
    CNN_TRY(input_geometry(in, name, img->h, img->w, &rh, &rw, &top, &left), done);
    if (s->colour_stats) {
        s->col_n += (double)img->w * img->h;
        cnn_fv_colour_add(img->px, img->w, img->h, img->c, s->col_sum, s->col_sxx);
    }
    size_t bytes = (size_t)img->w * img->h * img->c;
    CNN_TRY(cnn_cl_buffer(&s->cl, bytes, &src, "input image"), done);
    CNN_TRY(cnn_cl_write(&s->cl, src, 0, bytes, img->px, "input image"), done);
    CNN_TRY(cnn_cl_buffer(&s->cl, cnn_op_preprocess_scratch(img->h, img->w, img->c, rh, rw), &tmp, "resize scratch"),
            done);
    size_t off = (size_t)b * in->c * in->h * in->w;
    CNN_TRY(cnn_op_preprocess(&s->cl, src, img->h, img->w, img->c, rh, rw, top, left, in->c, in->h, in->w, in->scale,
                              in->mean, in->std, tmp, s->net.input, off, name),
            done);
    /* No wait here: OpenCL keeps a released buffer alive until the kernels
     * enqueued on it have finished, and the pixel upload was blocking. */
done:
    if (src) clReleaseMemObject(src);
    if (tmp) clReleaseMemObject(tmp);
    return status;
}

/* Uploads and preprocesses image k into slot `b` of the network input (a
 * .npy input goes in as it is), decoded ahead by the prefetcher when the
 * run has one (inputs taken in order: one device), else here.  An
 * unreadable image returns CNN_ERR_INPUT (the caller skips it). */
static int load_input(cnn_job *s, int k, int b)
{
    cnn_image img = {0};
    int status = CNN_OK;
    if (s->pf) status = cnn_prefetch_take(s->pf, k, &img);
    if (status == CNN_OK && s->inputs.file && s->inputs.file[k]) {
        status = load_tensor(s, k, b);
    } else if (status == CNN_OK) {
        if (!s->pf) status = cnn_image_load(s->inputs.paths[k], &img);
        if (status == CNN_OK) status = cnn_job_load_pixels(s, &img, s->inputs.paths[k], b);
    }
    cnn_image_free(&img);
    return status;
}

int cnn_job_reload_input(cnn_job *s, int k, int b)
{
    cnn_prefetch *pf = s->pf;
    s->pf = NULL;
    int status = load_input(s, k, b);
    s->pf = pf;
    return status;
}

/* The run's image inputs [first, end) decoded ahead, in order, two
 * batches at a time (a .npy entry is left to load_tensor). */
static int start_prefetch(cnn_job *s, int batch)
{
    s->decode_paths = cnn_calloc((size_t)s->inputs.n + 1, sizeof *s->decode_paths);
    if (!s->decode_paths) return CNN_ERR_NOMEM;
    for (int i = 0; i < s->inputs.n; i++)
        s->decode_paths[i] = s->inputs.file && s->inputs.file[i] ? NULL : s->inputs.paths[i];
    return cnn_prefetch_start(s->decode_paths, s->first, s->end,
                              cnn_prefetch_threads((s->cl.type & CL_DEVICE_TYPE_CPU) != 0), 2 * batch, &s->pf);
}

/* A probability as printed and written to predictions.csv: "nan" for NaN
 * whatever its sign bit (printf would write "-nan" for x86's default NaN). */
const char *cnn_job_fmt_prob(double p, int digits, char *buf, size_t size)
{
    if (isnan(p)) snprintf(buf, size, "nan");
    else snprintf(buf, size, "%.*f", digits, p);
    return buf;
}

/* qsort has no context argument: the values being ranked (one ranking at
 * a time per thread). */
static _Thread_local const float *g_sort_values;

/* Descending by value, ties by index, so the order is deterministic.  NaN
 * ranks above everything, as torch.topk and torch.argmax rank it; among
 * NaNs the order is the index's (torch.sort(descending=True, stable=True)
 * and argmax; topk's own order among NaNs varies with the length). */
static int cmp_idx(const void *a, const void *b)
{
    int ia = *(const int *)a, ib = *(const int *)b;
    float va = g_sort_values[ia], vb = g_sort_values[ib];
    bool na = isnan(va), nb = isnan(vb);
    if (na != nb) return na ? -1 : 1;
    if (!na && va != vb) return va < vb ? 1 : -1;
    return (ia > ib) - (ia < ib);
}

void cnn_job_rank(const float *v, size_t n, int *idx)
{
    for (size_t i = 0; i < n; i++) idx[i] = (int)i;
    g_sort_values = v;
    qsort(idx, n, sizeof *idx, cmp_idx);
}

/* Predictions, raw output and taps of image k (slot b of the batch). */
static int finish_input(cnn_job *s, int k, int b)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_layer *out = &g->layers[g->n - 1];
    size_t nout = cnn_layer_numel(out);
    const float *logits = s->logits + (size_t)b * nout;
    const char *stem = s->stems[k];
    const char *path = s->inputs.paths[k];
    char rel[512];
    int64_t shape[4];
    int status;

    /* Softmax in double over the network output, for the printed top-k.
     * As torch.softmax: a NaN or +Inf anywhere, or -Inf everywhere, makes
     * every probability NaN (fmax skips NaN; exp(nan) and inf - inf do
     * the rest). */
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < nout; i++) mx = fmax(mx, (double)logits[i]);
    for (size_t i = 0; i < nout; i++) sum += exp((double)logits[i] - mx);
    /* A network that ends in a softmax gives probabilities already. */
    bool probs = out->spec->op == CNN_OP_SOFTMAX;
    int top = s->o.top ? s->o.top : s->l.pipe.top;
    if ((size_t)top > nout) top = (int)nout;
    int *idx = cnn_malloc(nout * sizeof *idx);
    if (!idx) return CNN_ERR_NOMEM;
    for (size_t i = 0; i < nout; i++) idx[i] = (int)i;
    cnn_job_rank(logits, nout, idx);
    char shown[1200];
    cnn_escape_line(shown, sizeof shown, path);
    /* several devices: one input's lines together */
    if (s->print_mu) pthread_mutex_lock(s->print_mu);
    cnn_logf(CNN_LOG_PREDICTION, "%s", shown);
    cnn_json_object_begin(&s->preds);
    cnn_json_path(&s->preds, "input", path);
    cnn_json_key(&s->preds, "top");
    cnn_json_array_begin(&s->preds);
    for (int t = 0; t < top; t++) {
        int c = idx[t];
        double prob = probs ? (double)logits[c] : exp((double)logits[c] - mx) / sum;
        const char *label = c < s->l.n_labels ? s->l.labels[c] : "";
        char pb[32];
        cnn_escape_line(shown, sizeof shown, label);
        cnn_logf(CNN_LOG_PREDICTION, "  %2d. %5d  %-32s %s", t + 1, c, shown, cnn_job_fmt_prob(prob, 4, pb, sizeof pb));
        if (s->rpred) s->rpred[(size_t)s->n_rin * top + t] = (cnn_report_pred){c, label, prob};
        cnn_json_object_begin(&s->preds);
        cnn_json_key(&s->preds, "index");
        cnn_json_int(&s->preds, c);
        cnn_json_key(&s->preds, "label");
        cnn_json_string(&s->preds, label);
        cnn_json_key(&s->preds, "prob");
        cnn_json_number(&s->preds, prob);
        cnn_json_object_end(&s->preds);
    }
    cnn_json_array_end(&s->preds);
    cnn_json_object_end(&s->preds);
    if (s->print_mu) pthread_mutex_unlock(s->print_mu);
    int best = idx[0];
    free(idx);
    bool has_nan = false, has_inf = false;
    for (size_t i = 0; i < nout; i++) {
        has_nan |= isnan(logits[i]) != 0;
        has_inf |= isinf(logits[i]) != 0;
    }
    if (has_nan || has_inf) {
        if (!s->nonfinite_inputs++) s->first_nonfinite = k;
        s->output_nan |= has_nan;
        s->output_inf |= has_inf;
    }
    if (s->rin) {
        s->rin[s->n_rin] = (cnn_report_input){path, s->rpred + (size_t)s->n_rin * top, top};
        s->n_rin++;
    }
    if (s->n_done == s->cap_done) {
        int cap = s->cap_done ? 2 * s->cap_done : 64;
        int *d = cnn_realloc(s->done_of, (size_t)cap * sizeof *d);
        size_t *r = d ? cnn_realloc(s->row_at, (size_t)cap * sizeof *r) : NULL;
        if (d) s->done_of = d;
        if (r) s->row_at = r;
        if (!d || !r) return CNN_ERR_NOMEM;
        s->cap_done = cap;
    }
    s->done_of[s->n_done] = k;
    s->row_at[s->n_done++] = s->csv_len;
    status = cnn_job_csv_append(s, path, best, best < s->l.n_labels ? s->l.labels[best] : "",
                        probs ? (double)logits[best] : exp((double)logits[best] - mx) / sum);
    if (status < 0) return status;

    snprintf(rel, sizeof rel, "%s/output.npy", stem);
    shape[0] = (int64_t)nout;
    status = cnn_job_write_npy(s, rel, logits, shape, 1, "output", NULL, out->spec->name, path);
    if (status < 0) return status;

    if (s->input_png) {
        const cnn_input_spec *in = &s->l.pipe.input;
        status = cnn_vctx_input_image(&s->viz, in, s->net.input, (size_t)b * in->c * in->h * in->w, path, stem);
        if (status < 0) return status;
    }
    for (int t = 0; t < s->n_taps; t++) {
        if (s->taps[t].kind != CNN_TAP_ACTIVATIONS) continue;
        const cnn_layer *ly = &g->layers[s->taps[t].layer];
        status = cnn_vtap_activations(&s->viz, &s->taps[t], cnn_net_buffer(&s->net, s->taps[t].layer),
                                      (size_t)b * cnn_layer_numel(ly), path, stem);
        if (status < 0) return status;
    }

    if (!s->o.npy) return CNN_OK;
    for (int t = 0; t < s->n_taps; t++) {
        if (s->taps[t].kind != CNN_TAP_ACTIVATIONS) continue;
        const cnn_layer *ly = &g->layers[s->taps[t].layer];
        size_t n = cnn_layer_numel(ly);
        /* Read image b's slice of the tapped tensor. */
        status = cnn_cl_read(&s->cl, cnn_net_buffer(&s->net, s->taps[t].layer), (size_t)b * n * sizeof(float),
                             n * sizeof(float), s->host_tmp, ly->spec->name);
        if (status < 0) return status;
        snprintf(rel, sizeof rel, "%s/%s/activations.npy", stem, s->taps[t].dir);
        int ndim = ly->flat ? 1 : 3;
        shape[0] = ly->c;
        shape[1] = ly->h;
        shape[2] = ly->w;
        status = cnn_job_write_npy(s, rel, s->host_tmp, shape, ndim, "activations", "tensor", ly->spec->name, path);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* One line for the whole run, not one per input: how many outputs held
 * NaN or Inf, the first such input, and the likely cause. */
static void warn_nonfinite_outputs(const cnn_job *s, int done_inputs)
{
    const char *what = s->output_nan && s->output_inf ? "NaN and Inf" : s->output_nan ? "NaN" : "Inf";
    cnn_logf(CNN_LOG_WARN, "the network's output holds %s for %d of %d input%s (first: %s); classes rank as "
             "torch.topk ranks them (NaN first), probabilities are NaN where torch.softmax's are; %s",
             what, s->nonfinite_inputs, done_inputs, done_inputs == 1 ? "" : "s", s->inputs.paths[s->first_nonfinite],
             s->l.graph.n_nonfinite ? "the weights hold NaN or Inf (warning above)"
                                    : "the weights are finite, so an activation overflowed float32");
}

/* The process's peak resident memory (VmHWM of /proc/self/status) in
 * MiB, or -1 where the system does not say. */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = strtod(line + 6, NULL);
    fclose(f);
    return kib >= 0 ? kib / 1024.0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cnn_job_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The per-layer table of --profile (the last forward's times). */
static void print_profile(cnn_job *s)
{
    const cnn_graph *g = &s->l.graph;
    double total = 0;
    for (int i = 0; i < g->n; i++) total += s->net.layer_ms[i];
    cnn_logf(CNN_LOG_RESULT, "%-28s %-16s %-9s %-18s %10s %9s %7s", "layer", "op", "kernel", "output", "ms", "GFLOP/s",
             "share");
    for (int i = 0; i < g->n; i++) {
        const cnn_layer *ly = &g->layers[i];
        char shape[64];
        snprintf(shape, sizeof shape, "[%d, %d, %d]", ly->c, ly->h, ly->w);
        double ms = s->net.layer_ms[i];
        /* the packed convolution's algorithm (planned or measured: runtime/choose.h) */
        const char *kernel = !s->net.plan.packed[i] ? "" : s->net.plan.pack[i].winograd ? "winograd" : "im2col";
        if (!s->net.plan.computes[i]) {
            cnn_logf(CNN_LOG_RESULT, "%-28s %-16s %-9s %-18s %10s %9s %7s", ly->spec->name, cnn_op_name(ly->spec->op),
                     "", shape, "fused", "", "");
            continue;
        }
        /* macs count one image; the timed forward ran a batch */
        double gf = ms > 0 ? 2.0 * (double)ly->macs * s->net.layer_ms_images / (ms * 1e6) : 0;
        cnn_logf(CNN_LOG_RESULT, "%-28s %-16s %-9s %-18s %10.3f %9.1f %6.1f%%", ly->spec->name,
                 cnn_op_name(ly->spec->op), kernel, shape, ms, gf, total > 0 ? 100.0 * ms / total : 0);
    }
    cnn_logf(CNN_LOG_RESULT, "total device time %.2f ms", total);
}

static int run_repeat(cnn_job *s, int n)
{
    int reps = s->o.repeat, nl = s->l.graph.n;
    double *t = cnn_calloc((size_t)reps, sizeof *t);
    /* --profile: every layer's time in every run, for per-layer medians */
    double *lt = s->o.profile ? cnn_calloc((size_t)reps * nl, sizeof *lt) : NULL;
    if (!t || (s->o.profile && !lt)) {
        free(t);
        free(lt);
        return CNN_ERR_NOMEM;
    }
    int status = cnn_net_forward(&s->net, n); /* warm-up */
    cl_int err = status == CNN_OK ? clFinish(s->cl.queue) : CL_SUCCESS;
    for (int r = 0; r < reps && status == CNN_OK && err == CL_SUCCESS; r++) {
        double t0 = cnn_now_ms();
        status = cnn_net_forward(&s->net, n);
        if (status == CNN_OK) err = clFinish(s->cl.queue);
        t[r] = cnn_now_ms() - t0;
        if (lt) memcpy(lt + (size_t)r * nl, s->net.layer_ms, (size_t)nl * sizeof *lt);
    }
    if (status == CNN_OK && err != CL_SUCCESS)
        status = cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (forward)", cnn_cl_error_name(err));
    if (status == CNN_OK) {
        double med = cnn_job_median(t, reps);
        cnn_logf(CNN_LOG_RESULT, "forward: median %.2f ms over %d runs (batch %d, min %.2f, max %.2f)", med, reps, n,
                 t[0], t[reps - 1]);
    }
    if (status == CNN_OK && lt) {
        /* per-layer medians into layer_ms, then the table */
        for (int i = 0; i < nl; i++) {
            for (int r = 0; r < reps; r++) t[r] = lt[(size_t)r * nl + i];
            s->net.layer_ms[i] = cnn_job_median(t, reps);
        }
        cnn_logf(CNN_LOG_RESULT, "per-layer medians over %d runs (each layer waited for, so their sum exceeds the "
                 "forward's median):", reps);
        print_profile(s);
    }
    free(t);
    free(lt);
    return status;
}


/* Before any device allocation: the plan's memory at `batch` images (with
 * the gradient buffers, which mirror the activations, in gradient mode)
 * against the device's global memory, and its largest buffer against the
 * largest allocation the device allows. */
int cnn_job_check_memory(cnn_job *s, int batch)
{
    const cnn_graph *g = &s->l.graph;
    cnn_plan plan;
    CNN_TRY_RET(cnn_plan_build_for(g, s->keep, batch, cnn_blas_packing(&s->cl), &plan));
    size_t act = plan.peak_bytes - plan.weight_bytes;
    size_t need = plan.peak_bytes + (s->gradients ? act : 0);
    size_t biggest = plan.scratch_bytes > plan.input_bytes ? plan.scratch_bytes : plan.input_bytes;
    const char *what = "the convolution scratch";
    char wname[160] = "";
    for (int i = 0; i < plan.n_slots; i++)
        if (plan.slot_bytes[i] > biggest) {
            biggest = plan.slot_bytes[i];
            what = "an activation buffer";
        }
    for (int i = 0; i < g->n; i++)
        if ((size_t)g->layers[i].params * sizeof(float) > biggest) {
            biggest = (size_t)g->layers[i].params * sizeof(float);
            snprintf(wname, sizeof wname, "the weights of layer '%s'", g->layers[i].spec->name);
            what = wname;
        }
    size_t wbytes = plan.weight_bytes;
    cnn_plan_free(&plan);
    const double mib = 1048576.0;
    if (need > s->cl.global_mem)
        return cnn_error_set(CNN_ERR_DEVICE,
                             "the network needs %.0f MiB of device memory at batch %d (weights %.0f MiB, "
                             "activations%s %.0f MiB); %s has %.0f MiB: use a smaller --batch%s",
                             need / mib, batch, wbytes / mib, s->gradients ? " and gradients" : "",
                             (need - wbytes) / mib, s->cl.device_name, s->cl.global_mem / mib,
                             s->gradients ? " (gradient maps keep every tensor of the forward pass)" : "");
    if (biggest > s->cl.max_alloc)
        return cnn_error_set(CNN_ERR_DEVICE,
                             "%s needs one buffer of %.0f MiB at batch %d; %s allocates at most %.0f MiB at once: "
                             "use a smaller --batch",
                             what, biggest / mib, batch, s->cl.device_name, s->cl.max_alloc / mib);
    return CNN_OK;
}

/* A SIGINT/SIGTERM arrived: stop here (long loops poll this between
 * device passes); queued PNGs are dropped, temporary files removed. */
int cnn_job_interrupted(cnn_job *s)
{
    if (!cnn_signal_pending()) return CNN_OK;
    int status = cnn_error_interrupted();
    cnn_png_pool_cancel(s->pool, status, cnn_error_message());
    return status;
}

int cnn_job_px(const cnn_job *s) { return s->l.graph.in_h * s->l.graph.in_w; }

void cnn_job_free(cnn_job *s)
{
    cnn_prefetch_free(s->pf); /* before the inputs it reads */
    s->pf = NULL;
    free(s->decode_paths);
    if (!s->borrowed) cnn_png_pool_free(s->pool); /* waits for files still being encoded */
    cnn_outdir_close(&s->od);   /* without a commit, nothing of this run stays */
    cnn_job_free_gradients(s);
    cnn_sanity_free(s);
    cnn_examples_free(s);
    for (int t = 0; t < s->n_taps; t++) cnn_vtap_release(&s->taps[t]);
    if (s->viz_ready) cnn_vctx_free(&s->viz);
    if (s->net_ready) cnn_net_free(&s->net);
    if (s->cl_ready) cnn_cl_free(&s->cl);
    cnn_model_free(&s->l);
    free(s->out_dir);
    free(s->taps);
    free(s->keep);
    cnn_manifest_free(&s->manifest);
    cnn_json_free(&s->preds);
    free(s->csv);
    if (!s->borrowed) {
        for (int i = 0; s->stems && i < s->inputs.n; i++) free(s->stems[i]);
        free(s->stems);
        cnn_inputs_free(&s->inputs);
    }
    free(s->npy);
    free(s->logits);
    free(s->host_tmp);
    free(s->rin);
    free(s->rpred);
    free(s->skipped);
    cnn_stats_free(&s->ranges);
    free(s->done_of);
    free(s->row_at);
    free(s->devices);
}

/* Loads the readable inputs of the batch that starts at *k (the list's
 * inputs [*k, next multiple of `batch`), within the run's part) into the
 * network input; slot_of[j] is the input in slot j; returns the count in
 * *n.  Unreadable inputs are skipped (and counted when `report`), which
 * leaves the batch smaller: every batch holds the same inputs however the
 * list is split (shards, devices). */
static int load_batch(cnn_job *s, int batch, int *k, int *slot_of, int *n, bool report)
{
    int b = 0;
    int lim = (int)(((long long)*k / batch + 1) * batch);
    if (lim > s->end) lim = s->end;
    while (*k < lim) {
        int st = load_input(s, *k, b);
        if (st == CNN_ERR_INPUT) {
            if (report) {
                if (!s->first_skip[0]) snprintf(s->first_skip, sizeof s->first_skip, "%s", cnn_error_message());
                if (s->end - s->first > 1) cnn_print_line(stderr, "cnnviz-cl: skipped: ", cnn_error_message());
                s->failed_inputs++;
                int *p = cnn_realloc(s->skipped, ((size_t)s->n_skipped + 1) * sizeof *p);
                if (!p) return CNN_ERR_NOMEM;
                s->skipped = p;
                s->skipped[s->n_skipped++] = *k;
            }
            (*k)++;
            continue;
        }
        if (st < 0) return st;
        slot_of[b++] = (*k)++;
    }
    *n = b;
    return CNN_OK;
}

bool cnn_job_global_tap(const cnn_vtap *t)
{
    return t->kind == CNN_TAP_ACTIVATIONS && t->scope == CNN_SCOPE_GLOBAL;
}

/* Taps with the `global` scope need one range over every input: one pass
 * gathers min/max, a second the histogram when clipping, before any image
 * is drawn.  With --ranges the file gives what the passes would gather;
 * a --stats run gathers and draws nothing, and without a file stops after
 * the first pass (the histogram's bins need every part's range). */
static int global_passes(cnn_job *s, int batch, int *slot_of)
{
    bool any = false, hist = false;
    for (int t = 0; t < s->n_taps; t++) {
        any |= cnn_job_global_tap(&s->taps[t]);
        hist |= s->taps[t].kind == CNN_TAP_ACTIVATIONS && cnn_vtap_needs_hist(&s->taps[t]);
    }
    if (!any) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    bool run_pass[2] = {!s->have_ranges, hist && s->o.stats == s->have_ranges};
    for (int pass = 0; pass < 2; pass++) {
        if (!run_pass[pass]) continue;
        cnn_logf(CNN_LOG_INFO, "global range: %s over %d inputs", pass ? "histogram pass" : "min/max pass",
                 s->end - s->first);
        bool first = true;
        for (int k = s->first; k < s->end;) {
            int n = 0;
            int status = cnn_job_interrupted(s);
            if (status == CNN_OK) status = load_batch(s, batch, &k, slot_of, &n, false);
            if (status == CNN_OK && n) status = cnn_net_forward(&s->net, n);
            for (int j = 0; j < n && status == CNN_OK; j++) {
                for (int t = 0; t < s->n_taps && status == CNN_OK; t++) {
                    cnn_vtap *vt = &s->taps[t];
                    if (vt->kind != CNN_TAP_ACTIVATIONS || vt->scope != CNN_SCOPE_GLOBAL) continue;
                    size_t off = (size_t)j * cnn_layer_numel(&g->layers[vt->layer]);
                    cl_mem src = cnn_net_buffer(&s->net, vt->layer);
                    if (pass == 0) status = cnn_vtap_global_minmax(&s->viz, vt, src, off);
                    else if (cnn_vtap_needs_hist(vt)) status = cnn_vtap_global_hist(&s->viz, vt, src, off, first);
                }
                first = false;
                s->hist_inputs += pass;
            }
            if (status < 0) return status;
        }
    }
    for (int t = 0; t < s->n_taps && !s->o.stats; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (!cnn_job_global_tap(vt)) continue;
        int status = cnn_vtap_global_finish(&s->viz, vt);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* PNG pool and the input-independent taps (filters, weights), drawn from
 * the host parameters before the network takes them over. */
static int setup_viz(cnn_job *s)
{
    int level = s->o.png_level >= 0 ? s->o.png_level : s->l.pipe.png_level;
    if (!s->pool) CNN_TRY_RET(cnn_png_pool_create(0, level, 0, &s->pool));
    CNN_TRY_RET(cnn_vctx_init(&s->viz, &s->cl, &s->l.graph, s->pool, &s->manifest, s->wdir, s->o.quiet));
    s->viz.labels = s->l.labels;
    s->viz.n_labels = s->l.n_labels;
    s->viz_ready = true;
    for (int t = 0; t < s->n_taps && !s->o.stats && !s->no_model_taps; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (vt->kind == CNN_TAP_FILTERS) CNN_TRY_RET(cnn_vtap_filters(&s->viz, vt));
        else if (vt->kind == CNN_TAP_WEIGHTS) CNN_TRY_RET(cnn_vtap_weights(&s->viz, vt));
    }
    return CNN_OK;
}

/* Device buffers of the activations taps. */
static int prepare_taps(cnn_job *s)
{
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_ACTIVATIONS) CNN_TRY_RET(cnn_vtap_prepare(&s->viz, &s->taps[t]));
    return CNN_OK;
}

void cnn_job_shard_range(int total, int batch, int index, int count, int *first, int *end)
{
    long long batches = ((long long)total + batch - 1) / batch;
    long long a = batches * index / count, b = batches * (index + 1) / count;
    *first = (int)(a * batch < total ? a * batch : total);
    *end = (int)(b * batch < total ? b * batch : total);
}

int cnn_job_prepare(cnn_job *s, const cnn_job *lead)
{
    cnn_json_init(&s->preds, true);
    s->t_start = cnn_now_ms();
    const cnn_job_opts *o = &s->o;
    cnn_model_opts mo = {.config = o->config, .weights = o->weights, .imp = o->imp, .strict = o->strict,
                         .read_weights = o->read_weights};
    CNN_TRY_RET(cnn_model_load(&mo, &s->l));
    if (s->l.assumed[0])
        cnn_logf(CNN_LOG_INFO, "%s: preprocessing is not part of an ONNX model; assumed %s (--preprocess, --mean, "
                 "--std, --size change it)", s->o.config, s->l.assumed);
    CNN_TRY_RET(cnn_job_collect_taps(s));
    CNN_TRY_RET(cnn_sanity_prepare(s));
    if (!lead) CNN_TRY_RET(cnn_examples_prepare(s));
    if (!lead) CNN_TRY_RET(cnn_maximize_prepare(s));
    if (lead) {
        s->inputs = lead->inputs;
        s->stems = lead->stems;
        s->first = lead->first;
        s->end = lead->end;
        s->borrowed = true;
    } else {
        if (s->o.n_inputs == 0 && s->o.repeat == 0 && !s->maximize)
            return cnn_error_set(CNN_ERR_USAGE, "run: no input: give images with --input (files, folders or "
                                 "@list.txt)");
        for (int i = 0; i < s->o.n_inputs; i++) CNN_TRY_RET(cnn_inputs_add(&s->inputs, s->o.inputs[i]));
        /* .npy inputs checked against the network now, before anything runs */
        const cnn_input_spec *net_in = &s->l.pipe.input;
        CNN_TRY_RET(cnn_inputs_expand_tensors(&s->inputs, net_in->c, net_in->h, net_in->w, net_in->tensor));
        if (s->attrib && s->l.pipe.input.tensor)
            return cnn_error_set(CNN_ERR_USAGE, "run: gradient maps and occlusion are drawn over the input image; "
                                 "this network takes a tensor (color: none)");
        CNN_TRY_RET(cnn_job_make_stems(s));
        s->end = s->inputs.n;
    }
    if (s->o.shard_count && !lead) {
        cnn_job_shard_range(s->inputs.n, s->o.batch, s->o.shard_index, s->o.shard_count, &s->first, &s->end);
        if (s->first == s->end)
            cnn_logf(CNN_LOG_INFO, "shard %d/%d: no inputs (%d input%s in batches of %d make fewer batches than "
                     "parts); its folder records the part for merge", s->o.shard_index, s->o.shard_count,
                     s->inputs.n, s->inputs.n == 1 ? "" : "s", s->o.batch);
        else
            cnn_logf(CNN_LOG_INFO, "shard %d/%d: inputs %d to %d of %d", s->o.shard_index, s->o.shard_count,
                     s->first, s->end - 1, s->inputs.n);
    }
    int count = s->end - s->first;
    if (s->o.stats || s->o.ranges) {
        bool global = false;
        for (int t = 0; t < s->n_taps; t++) global |= cnn_job_global_tap(&s->taps[t]);
        if (!global && s->o.stats)
            return cnn_error_set(CNN_ERR_USAGE, "run --stats: no tap of %s has normalize: global (activations), so "
                                 "there is nothing to gather", s->o.config);
        if (!global)
            cnn_logf(CNN_LOG_WARN, "--ranges %s: no tap has normalize: global; the file is not used", s->o.ranges);
        if (global && s->o.ranges) CNN_TRY_RET(cnn_job_load_ranges(s));
    }
    if (s->o.npy) s->l.pipe.npy = true;
    s->o.npy = s->l.pipe.npy;
    s->report = s->l.pipe.report && !s->o.no_report && (count > 0 || s->maximize) && !s->o.stats;
    s->images = s->report || s->n_taps > 0;
    /* <stem>/input.png: for the report and beside the taps drawn per input
     * (not for a run of filters, weights or examples alone) */
    bool per_input = false;
    for (int t = 0; t < s->n_taps; t++)
        per_input |= s->taps[t].kind == CNN_TAP_ACTIVATIONS || s->taps[t].kind == CNN_TAP_GRADIENT ||
                     s->taps[t].kind == CNN_TAP_DREAM;
    s->input_png = (s->report || per_input) && !s->l.pipe.input.tensor;
    return CNN_OK;
}

int cnn_job_open(cnn_job *s)
{
    if (s->o.out) s->out_dir = cnn_strdup(s->o.out);
    else if (s->l.pipe.out_dir) s->out_dir = cnn_strdup(s->l.pipe.out_dir);
    else {
        char name[128];
        cnn_sanitize_name(s->l.pipe.model_name ? s->l.pipe.model_name : "model", name, sizeof name);
        s->out_dir = cnn_strfmt("out/%s", name);
    }
    if (!s->out_dir) return CNN_ERR_NOMEM;
    return cnn_job_open_output(s);
}

int cnn_job_device(cnn_job *s, const char *platform, const char *device, int *batch_out, bool *bad_device)
{
    s->t_loaded = cnn_now_ms();
    int status = cnn_cl_init(&s->cl, platform, device, s->o.profile);
    *bad_device = status == CNN_ERR_USAGE;
    if (status < 0) return status;
    s->cl_ready = true;
    cnn_blas_apply_defaults(&s->cl);
    cnn_tune_apply(&s->cl); /* a `cnnviz-cl tune` result for this device, if any */
    int count = s->end - s->first;
    int batch = s->o.batch;
    if (count && batch > count) batch = count;
    int net_batch = batch;
    if (s->attrib) {
        /* Gradient mode: every tensor is kept for the backward pass.
         * SmoothGrad / Integrated Gradients / occlusion / curve copies run
         * in chunks that fit in ~512 MiB of activations and gradients. */
        size_t per = 0;
        for (int i = 0; i < s->l.graph.n; i++) {
            if (s->gradients) s->keep[i] = true;
            per += (s->gradients ? 8 : 4) * cnn_layer_numel(&s->l.graph.layers[i]);
        }
        int samples = cnn_job_batch_copies(s);
        int fit = (int)((512u << 20) / (per ? per : 1));
        if (samples > net_batch) net_batch = samples < fit ? samples : (fit > net_batch ? fit : net_batch);
    }
    if (s->mx_batch || s->dream) {
        /* maximize: gradient mode, its channels as one batch; dream:
         * gradient mode at the run's batch */
        for (int i = 0; i < s->l.graph.n; i++) s->keep[i] = true;
        if (net_batch < s->mx_batch) net_batch = s->mx_batch;
    }
    /* before anything is written */
    CNN_TRY_RET(cnn_job_check_memory(s, net_batch));
    if (s->images) CNN_TRY_RET(setup_viz(s));
    /* Nothing reads the host parameters after this: the network releases
     * each layer's once it is on the device (float32 tensors upload
     * straight from the map), then the file is unmapped, unless buffers
     * of a CPU device are the file's pages. */
    s->t_device = cnn_now_ms();
    /* Maximize alone takes Winograd where it measures faster: its images
     * are an optimiser's, not maps compared with PyTorch digit for digit
     * (dream's are, in its test). */
    cnn_net_mode mode = !s->gradients ? CNN_NET_FORWARD
                        : s->mx_batch && !s->attrib && !s->dream && !s->n_san_layer ? CNN_NET_BACKWARD_FAST
                                                                                    : CNN_NET_BACKWARD;
    CNN_TRY_RET(cnn_net_create_consuming(&s->net, &s->cl, &s->l.graph, s->keep, net_batch, mode));
    if (!s->net.any_in_place && !s->mx_sized) cnn_weights_close(&s->l.weights);
    s->t_net = cnn_now_ms();
    s->net_ready = true;
    if (s->images) CNN_TRY_RET(prepare_taps(s));
    if (s->have_ranges) CNN_TRY_RET(cnn_job_apply_ranges(s));
    if (s->attrib) CNN_TRY_RET(cnn_job_setup_gradients(s, batch));
    cnn_logf(CNN_LOG_INFO, "%s on %s (%s), plan %.1f MiB", s->l.pipe.model_name ? s->l.pipe.model_name : "model",
             s->cl.device_name, s->cl.platform_name, (double)s->net.plan.peak_bytes / 1048576.0);
    if (s->net.choices_measured)
        cnn_logf(CNN_LOG_INFO, "timed %d convolution shape%s on this device to choose their kernels (%.0f ms; kept in "
                 "the cache for later runs)", s->net.choices_measured, s->net.choices_measured == 1 ? "" : "s",
                 s->net.choices_ms);

    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    size_t maxn = nout;
    for (int i = 0; i < g->n; i++)
        if (cnn_layer_numel(&g->layers[i]) > maxn) maxn = cnn_layer_numel(&g->layers[i]);
    int top = s->o.top ? s->o.top : s->l.pipe.top;
    if ((size_t)top > nout) top = (int)nout;
    s->logits = cnn_malloc((size_t)batch * nout * sizeof(float));
    s->host_tmp = cnn_malloc(maxn * sizeof(float));
    if (s->report) {
        s->rin = cnn_calloc((size_t)s->inputs.n + 1, sizeof *s->rin);
        s->rpred = cnn_calloc(((size_t)s->inputs.n + 1) * (size_t)top, sizeof *s->rpred);
    }
    if (!s->logits || !s->host_tmp || (s->report && (!s->rin || !s->rpred))) return CNN_ERR_NOMEM;
    cnn_json_array_begin(&s->preds);
    *batch_out = batch;
    return CNN_OK;
}

int cnn_job_global(cnn_job *s, int batch)
{
    if (!s->images) return CNN_OK;
    int *slot_of = cnn_calloc((size_t)batch + 1, sizeof *slot_of);
    int status = slot_of ? global_passes(s, batch, slot_of) : CNN_ERR_NOMEM;
    free(slot_of);
    return status;
}

/* A test of the recovery from a device that fails in the middle of a run:
 * CNNVIZ_TEST_FAIL_DEVICE=D:N makes device D (counted from 0 among those
 * of the run) fail its Nth batch after the first input's files. */
static bool test_failure(const cnn_job *s)
{
    const char *v = getenv("CNNVIZ_TEST_FAIL_DEVICE");
    int d = -1, n = -1;
    return v && s->print_mu && sscanf(v, "%d:%d", &d, &n) == 2 && d == s->device_rank && n == s->batches_run;
}

int cnn_job_batch(cnn_job *s, int batch, int *k, int *slot_of, int *b)
{
    const cnn_graph *g = &s->l.graph;
    *b = 0;
    CNN_TRY_RET(cnn_job_interrupted(s));
    CNN_TRY_RET(load_batch(s, batch, k, slot_of, b, true));
    if (*b == 0) return CNN_OK; /* every input of the batch unreadable */
    s->batches_run++;
    CNN_TRY_RET(cnn_net_forward(&s->net, *b));
    CNN_TRY_RET(cnn_net_read(&s->net, g->n - 1, *b, s->logits));
    CNN_TRY_RET(cnn_examples_batch(s, *b, slot_of));
    if (s->attrib) CNN_TRY_RET(cnn_job_gradient_maps(s, *b, slot_of));
    for (int j = 0; j < *b; j++) {
        CNN_TRY_RET(finish_input(s, slot_of[j], j));
        if (j == 0 && test_failure(s))
            return cnn_error_set(CNN_ERR_DEVICE, "%s: failed (CNNVIZ_TEST_FAIL_DEVICE)", s->cl.device_name);
    }
    if (s->attrib) CNN_TRY_RET(cnn_job_late_batch(s, *b, slot_of));
    if (s->n_san_layer) CNN_TRY_RET(cnn_sanity_batch(s, *b, slot_of));
    if (s->dream) CNN_TRY_RET(cnn_dream_batch(s, *b, slot_of));
    return CNN_OK;
}

int cnn_job_conclude(cnn_job *s, int batch, int done_inputs, double loop_ms, double t_first, cnn_job_result *res)
{
    int count = s->end - s->first;
    if (s->nonfinite_inputs) warn_nonfinite_outputs(s, done_inputs);
    if (done_inputs && !s->o.stats) CNN_TRY_RET(cnn_examples_finish(s));
    if (!s->o.stats) CNN_TRY_RET(cnn_maximize_run(s));
    if (s->pool) CNN_TRY_RET(cnn_png_pool_wait(s->pool));
    char measured[96] = "";
    if (s->net.choices_measured)
        snprintf(measured, sizeof measured, " (%d convolution shape%s timed to choose their kernel)",
                 s->net.choices_measured, s->net.choices_measured == 1 ? "" : "s");
    if (s->o.profile && done_inputs)
        cnn_logf(CNN_LOG_RESULT, "start-up: pipeline and weights read %.0f ms, device ready %.0f ms, network on the "
                 "device %.0f ms%s, first output %.0f ms", s->t_loaded - s->t_start, s->t_device - s->t_start,
                 s->t_net - s->t_start, measured, t_first);
    if (s->o.profile && done_inputs) {
        print_profile(s);
        CNN_TRY_RET(cnn_job_write_trace(s));
    }
    if (s->o.repeat) CNN_TRY_RET(run_repeat(s, batch));
    if (s->o.repeat && s->gradients && s->attrib) CNN_TRY_RET(cnn_job_repeat_gradients(s, batch));
    if (s->o.repeat && s->attrib) CNN_TRY_RET(cnn_job_repeat_late(s, batch));
    cnn_json_array_end(&s->preds);
    /* A shard publishes even when its part holds no input, or none that
     * could be read: merge needs its manifest to see the part covered. */
    bool publish = (count && done_inputs) || s->o.shard_count || s->o.stats || (s->maximize && !s->failed_inputs);
    if (publish) CNN_TRY_RET(cnn_job_publish(s, s->report));
    if (done_inputs)
        cnn_logf(CNN_LOG_INFO, "%d input%s in %.2f s (%.1f images/s), first output after %.0f ms; %ld PNG files; peak "
                 "memory %.0f MiB", done_inputs, done_inputs == 1 ? "" : "s", loop_ms / 1000.0,
                 done_inputs / (loop_ms / 1000.0), t_first, s->pool ? cnn_png_pool_written(s->pool) : 0L,
                 peak_rss_mib());
    if (publish) {
        if (s->report) cnn_logf(CNN_LOG_INFO, "wrote %s/index.html", s->out_dir);
        cnn_logf(CNN_LOG_INFO, "wrote %s/manifest.json", s->out_dir);
    }
    res->inputs_done = done_inputs;
    if (s->failed_inputs && count == 1) return cnn_error_set(CNN_ERR_INPUT, "%s", s->first_skip);
    if (s->failed_inputs)
        return cnn_error_set(CNN_ERR_INPUT, "%d of %d inputs could not be read (the 'skipped' lines above say why)%s",
                             s->failed_inputs, count, done_inputs || s->o.shard_count ? "" : "; nothing was written");
    return CNN_OK;
}

int cnn_job_run(const cnn_job_opts *o, cnn_job_result *res)
{
    memset(res, 0, sizeof *res);
    if (cnn_cl_wants_several(o->device)) return cnn_job_run_devices(o, res);
    cnn_job s;
    memset(&s, 0, sizeof s);
    s.o = *o;
    int batch = 1, *slot_of = NULL, done_inputs = 0;
    double t_first = 0, t_loop = 0;
    int status = cnn_job_prepare(&s, NULL);
    /* The output folder first: a folder that is in use or not ours is
     * refused before the device is touched. */
    if (status == CNN_OK) status = cnn_job_open(&s);
    if (status == CNN_OK) status = cnn_job_device(&s, s.o.platform, s.o.device, &batch, &res->bad_device);
    if (status == CNN_OK) status = (slot_of = cnn_calloc((size_t)batch, sizeof *slot_of)) ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_job_global(&s, batch);
    /* one device takes the inputs in order: the next batches decode while
     * it runs this one */
    if (status == CNN_OK && !s.o.stats) status = start_prefetch(&s, batch);
    t_loop = cnn_now_ms();
    int count = s.end - s.first;
    for (int k = s.first; k < s.end && status == CNN_OK && !s.o.stats;) {
        int b = 0;
        status = cnn_job_batch(&s, batch, &k, slot_of, &b);
        done_inputs += b;
        if (b && !t_first) t_first = cnn_now_ms() - s.t_start;
        if (status == CNN_OK && count > 1)
            cnn_log_progress(k - s.first, count, (k - s.first) / ((cnn_now_ms() - t_loop) / 1000.0 + 1e-9),
                             k == s.end);
    }
    free(slot_of);
    if (status == CNN_OK) status = cnn_job_conclude(&s, batch, done_inputs, cnn_now_ms() - t_loop, t_first, res);
    if (status < 0) cnn_outdir_fix_message(&s.od);
    cnn_job_free(&s);
    return status;
}
