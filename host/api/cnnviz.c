/* The public C API (include/cnnviz.h) over a session (pipeline/session.h)
 * and the job (pipeline/job.h): argument checks, the per-model lock, the
 * caller's log callback as this thread's sink for the call, statuses.
 * Nothing else of the project is visible to a library user. */
#define _POSIX_C_SOURCE 200809L
#include "cnnviz.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/image.h"
#include "pipeline/job.h"
#include "pipeline/session.h"
#include "runtime/clrt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)CNNVIZ_ERR_USAGE == (int)CNN_ERR_USAGE && (int)CNNVIZ_ERR_INPUT == (int)CNN_ERR_INPUT &&
                   (int)CNNVIZ_ERR_IO == (int)CNN_ERR_IO && (int)CNNVIZ_ERR_DEVICE == (int)CNN_ERR_DEVICE &&
                   (int)CNNVIZ_ERR_NOMEM == (int)CNN_ERR_NOMEM && (int)CNNVIZ_ERR_NODEV == (int)CNN_ERR_NODEV &&
                   (int)CNNVIZ_ERR_INTERRUPTED == (int)CNN_ERR_INTERRUPTED,
               "the public statuses are the engine's");

struct cnnviz_model {
    pthread_mutex_t lock;
    cnn_session *ss;
    cnnviz_log_fn log;
    void *log_user;
    cnnviz_layer_info *layers; /* [n] names and ops point into the pipeline */
    int n_layers;
};

/* ---------------------------------------------------------------------- */
/* Errors and the log                                                      */

const char *cnnviz_version(void) { return CNN_VERSION_STRING; }

const char *cnnviz_last_error(void) { return cnn_error_message(); }

/* A status with no message from below gets one. */
static int finish(int status)
{
    if (status == CNN_OK) cnn_error_clear();
    else if (!cnn_error_message()[0]) cnn_error_set(status, "failed (status %d)", status);
    return status;
}

typedef struct sink {
    cnnviz_log_fn fn;
    void *user;
} sink;

static void sink_emit(void *ctx, cnn_log_kind kind, const char *text)
{
    const sink *k = ctx;
    int level = kind == CNN_LOG_WARN ? 1 : 0;
    if (k->fn) {
        k->fn(k->user, level, text);
    } else if (level) {
        cnn_print_line(stderr, "cnnviz: warning: ", text);
    }
}

/* The call's sink on this thread: the caller's callback, else warnings on
 * stderr. */
#define WITH_LOG(fn_, user_)                                                   \
    sink sink_ = {(fn_), (user_)};                                             \
    const cnn_log log_ = {sink_emit, NULL, &sink_};                            \
    const cnn_log *prev_log_ = cnn_log_use(&log_)
#define END_LOG() cnn_log_use(prev_log_)

#define CHECK_ARG(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond)) return cnn_error_set(CNN_ERR_USAGE, __VA_ARGS__);          \
    } while (0)

int cnnviz_devices(char *buf, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return finish(cnn_error_set(CNN_ERR_NOMEM, "devices: out of memory"));
    int status = cnn_cl_print_devices(f);
    fclose(f);
    if (status < 0) {
        free(text);
        return finish(status);
    }
    if (buf && size) snprintf(buf, size, "%s", text ? text : "");
    free(text);
    finish(CNN_OK);
    return (int)len;
}

/* ---------------------------------------------------------------------- */
/* Opening                                                                 */

void cnnviz_open_opts_init(cnnviz_open_opts *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->max_batch = 1;
    o->gradients = 1;
}

/* The ONNX preprocessing fields, shared by the open and write options. */
typedef struct pre_fields {
    const char *preprocess;
    const float *mean, *std;
    int n_mean, n_std;
    const int *size;
} pre_fields;

static int import_opts(const pre_fields *o, cnn_import_opts *imp)
{
    memset(imp, 0, sizeof *imp);
    if (o->preprocess) {
        static const char *const names[] = {"imagenet", "none", "raw"};
        static const cnn_preprocess values[] = {CNN_PRE_IMAGENET, CNN_PRE_NONE, CNN_PRE_RAW};
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(o->preprocess, names[i])) found = i;
        CHECK_ARG(found >= 0, "preprocess '%s': imagenet, none or raw", o->preprocess);
        imp->pre = values[found];
    }
    CHECK_ARG(o->n_mean == 0 || o->n_mean == 1 || o->n_mean == 3, "mean: give 1 or 3 values, not %d", o->n_mean);
    CHECK_ARG(o->n_std == 0 || o->n_std == 1 || o->n_std == 3, "std: give 1 or 3 values, not %d", o->n_std);
    for (int i = 0; i < o->n_std; i++) CHECK_ARG(o->std[i] > 0, "std: %g is not positive", o->std[i]);
    imp->has_mean = o->n_mean > 0;
    imp->has_std = o->n_std > 0;
    imp->n_mean = o->n_mean;
    imp->n_std = o->n_std;
    memcpy(imp->mean, o->mean, sizeof imp->mean);
    memcpy(imp->std, o->std, sizeof imp->std);
    CHECK_ARG((o->size[0] == 0) == (o->size[1] == 0) && o->size[0] >= 0 && o->size[1] >= 0 && o->size[0] <= 16384 &&
                  o->size[1] <= 16384,
              "size %d x %d: give both sides, 1 to 16384", o->size[0], o->size[1]);
    imp->size[0] = o->size[0];
    imp->size[1] = o->size[1];
    return CNN_OK;
}

static int open_model(const char *path, const cnnviz_open_opts *opts, cnnviz_model **out)
{
    const cnnviz_open_opts o = *opts;
    CHECK_ARG(path && *path, "cnnviz_open: no model path");
    cnn_session_opts so = {.model = {.config = path, .weights = o.weights, .strict = o.strict != 0},
                           .platform = o.platform,
                           .device = o.device,
                           .max_batch = o.max_batch,
                           .gradients = o.gradients != 0};
    pre_fields pf = {o.preprocess, o.mean, o.std, o.n_mean, o.n_std, o.size};
    CNN_TRY_RET(import_opts(&pf, &so.model.imp));
    cnnviz_model *m = cnn_calloc(1, sizeof *m);
    if (!m) return CNN_ERR_NOMEM;
    m->log = o.log;
    m->log_user = o.log_user;
    int status = cnn_session_open(&so, &m->ss);
    if (status == CNN_OK) {
        const cnn_model *md = cnn_session_model(m->ss);
        const cnn_graph *g = &md->graph;
        if (md->assumed[0])
            cnn_logf(CNN_LOG_INFO, "%s: preprocessing is not part of an ONNX model; assumed %s", path, md->assumed);
        m->n_layers = g->n;
        m->layers = cnn_calloc((size_t)g->n, sizeof *m->layers);
        if (!m->layers) status = CNN_ERR_NOMEM;
        for (int i = 0; m->layers && i < g->n; i++) {
            const cnn_layer *ly = &g->layers[i];
            m->layers[i] = (cnnviz_layer_info){ly->spec->name, cnn_op_name(ly->spec->op), ly->c, ly->h, ly->w,
                                               ly->flat, (long long)ly->params, ly->weight != NULL,
                                               ly->bias != NULL};
        }
    }
    if (status == CNN_OK && pthread_mutex_init(&m->lock, NULL) != 0)
        status = cnn_error_set(CNN_ERR_NOMEM, "cnnviz_open: no mutex");
    if (status < 0) {
        cnn_session_close(m->ss);
        free(m->layers);
        free(m);
        return status;
    }
    *out = m;
    return CNN_OK;
}

int cnnviz_open(const char *path, const cnnviz_open_opts *opts, cnnviz_model **out)
{
    if (!out) return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_open: out is NULL"));
    *out = NULL;
    cnnviz_open_opts o;
    cnnviz_open_opts_init(&o);
    if (opts) {
        if (opts->struct_size < sizeof(size_t) || opts->struct_size > sizeof o)
            return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_open_opts.struct_size is %zu: initialise the options "
                                        "with cnnviz_open_opts_init", opts->struct_size));
        memcpy(&o, opts, opts->struct_size);
    }
    WITH_LOG(o.log, o.log_user);
    int status = open_model(path, &o, out);
    END_LOG();
    return finish(status);
}

void cnnviz_close(cnnviz_model *m)
{
    if (!m) return;
    cnn_session_close(m->ss);
    pthread_mutex_destroy(&m->lock);
    free(m->layers);
    free(m);
}

/* ---------------------------------------------------------------------- */
/* What the model is (immutable after open: no lock)                       */

int cnnviz_num_layers(const cnnviz_model *m) { return m ? m->n_layers : finish(CNN_ERR_USAGE); }

int cnnviz_layer(const cnnviz_model *m, int i, cnnviz_layer_info *out)
{
    if (!m || !out) return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_layer: NULL argument"));
    if (i < 0 || i >= m->n_layers)
        return finish(cnn_error_set(CNN_ERR_USAGE, "layer %d: the model has layers 0 to %d", i, m->n_layers - 1));
    *out = m->layers[i];
    return finish(CNN_OK);
}

/* The layer's index into *li; "input" (when no layer has that name) is
 * CNN_GRAPH_INPUT. */
static int find_layer(const cnnviz_model *m, const char *name, bool input_ok, int *li)
{
    if (!name) return cnn_error_set(CNN_ERR_USAGE, "no layer name");
    for (int i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].name, name)) {
            *li = i;
            return CNN_OK;
        }
    if (input_ok && !strcmp(name, "input")) {
        *li = CNN_GRAPH_INPUT;
        return CNN_OK;
    }
    char shown[300];
    cnn_escape_line(shown, sizeof shown, name);
    return cnn_error_set(CNN_ERR_USAGE, "no layer '%s' in %s (%d layers, from '%s' to '%s')", shown,
                         cnn_session_model(m->ss)->pipe.path, m->n_layers, m->layers[0].name,
                         m->layers[m->n_layers - 1].name);
}

int cnnviz_find_layer(const cnnviz_model *m, const char *name)
{
    if (!m) return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_find_layer: no model"));
    int i = 0, status = find_layer(m, name, false, &i);
    return status < 0 ? finish(status) : (finish(CNN_OK), i);
}

int cnnviz_input_shape(const cnnviz_model *m, int *c, int *h, int *w)
{
    if (!m) return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_input_shape: no model"));
    const cnn_graph *g = &cnn_session_model(m->ss)->graph;
    if (c) *c = g->in_c;
    if (h) *h = g->in_h;
    if (w) *w = g->in_w;
    return finish(CNN_OK);
}

int cnnviz_num_classes(const cnnviz_model *m)
{
    if (!m) return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_num_classes: no model"));
    const cnnviz_layer_info *last = &m->layers[m->n_layers - 1];
    return last->c * last->h * last->w;
}

const char *cnnviz_class_label(const cnnviz_model *m, int i)
{
    if (!m) return NULL;
    const cnn_model *md = cnn_session_model(m->ss);
    return i >= 0 && i < md->n_labels ? md->labels[i] : NULL;
}

const char *cnnviz_model_name(const cnnviz_model *m)
{
    if (!m) return NULL;
    const char *name = cnn_session_model(m->ss)->pipe.model_name;
    return name ? name : "model";
}

const char *cnnviz_device_name(const cnnviz_model *m) { return m ? cnn_session_cl(m->ss)->device_name : NULL; }

int cnnviz_max_batch(const cnnviz_model *m) { return m ? cnn_session_max_batch(m->ss) : finish(CNN_ERR_USAGE); }

int cnnviz_outputs_probabilities(const cnnviz_model *m)
{
    return m && !strcmp(m->layers[m->n_layers - 1].op, "softmax");
}

/* ---------------------------------------------------------------------- */
/* Calls that use the device: under the model's lock, with its log sink    */

#define LOCKED_BEGIN(m)                                                        \
    if (!(m)) return finish(cnn_error_set(CNN_ERR_USAGE, "%s: no model", __func__)); \
    pthread_mutex_lock(&(m)->lock);                                            \
    WITH_LOG((m)->log, (m)->log_user)
#define LOCKED_END(m, status)                                                  \
    END_LOG();                                                                 \
    pthread_mutex_unlock(&(m)->lock);                                          \
    return finish(status)

int cnnviz_run_tensor(cnnviz_model *m, const float *x, int n)
{
    LOCKED_BEGIN(m);
    cnn_session_forget(m->ss);
    int status = x ? cnn_session_run_tensor(m->ss, x, n) : cnn_error_set(CNN_ERR_USAGE, "cnnviz_run_tensor: x is NULL");
    LOCKED_END(m, status);
}

static int run_images(cnnviz_model *m, const uint8_t *const *images, const int *h, const int *w, int channels, int n)
{
    cnn_session_forget(m->ss);
    CHECK_ARG(images && h && w, "cnnviz_run_images: NULL argument");
    CHECK_ARG(channels == 1 || channels == 3 || channels == 4, "images with %d channels: give 1, 3 or 4", channels);
    CHECK_ARG(n >= 1 && n <= cnn_session_max_batch(m->ss), "%d images: a run takes 1 to %d (the model's max_batch)",
              n, cnn_session_max_batch(m->ss));
    cnn_image *imgs = cnn_calloc((size_t)n, sizeof *imgs);
    char(*names)[32] = cnn_calloc((size_t)n, sizeof *names);
    const char **np = cnn_calloc((size_t)n, sizeof *np);
    int status = imgs && names && np ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; i < n && status == CNN_OK; i++) {
        snprintf(names[i], sizeof names[i], "image %d", i);
        np[i] = names[i];
        if (!images[i] || h[i] < 1 || w[i] < 1 || h[i] > 65535 || w[i] > 65535) {
            status = cnn_error_set(CNN_ERR_USAGE, "image %d: %s", i,
                                   images[i] ? "each side must be 1 to 65535 pixels" : "no pixels (NULL)");
            break;
        }
        imgs[i].h = h[i];
        imgs[i].w = w[i];
        imgs[i].c = channels == 1 ? 1 : 3;
        if (channels == 4) {
            /* alpha dropped, as the image reader drops it */
            size_t px = (size_t)h[i] * w[i];
            imgs[i].px = cnn_malloc(px * 3);
            if (!imgs[i].px) {
                status = CNN_ERR_NOMEM;
                break;
            }
            for (size_t p = 0; p < px; p++) memcpy(imgs[i].px + 3 * p, images[i] + 4 * p, 3);
        } else {
            imgs[i].px = (uint8_t *)images[i];
        }
    }
    if (status == CNN_OK) status = cnn_session_run_images(m->ss, imgs, np, n);
    for (int i = 0; imgs && channels == 4 && i < n; i++) free(imgs[i].px);
    free(imgs);
    free(names);
    free(np);
    return status;
}

int cnnviz_run_images(cnnviz_model *m, const uint8_t *const *images, const int *h, const int *w, int channels,
                      int n)
{
    LOCKED_BEGIN(m);
    int status = run_images(m, images, h, w, channels, n);
    LOCKED_END(m, status);
}

static int run_files(cnnviz_model *m, const char *const *paths, int n)
{
    cnn_session_forget(m->ss);
    CHECK_ARG(paths, "cnnviz_run_files: paths is NULL");
    CHECK_ARG(n >= 1 && n <= cnn_session_max_batch(m->ss), "%d files: a run takes 1 to %d (the model's max_batch)",
              n, cnn_session_max_batch(m->ss));
    cnn_image *imgs = cnn_calloc((size_t)n, sizeof *imgs);
    if (!imgs) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (int i = 0; i < n && status == CNN_OK; i++)
        status = paths[i] ? cnn_image_load(paths[i], &imgs[i]) : cnn_error_set(CNN_ERR_USAGE, "file %d is NULL", i);
    if (status == CNN_OK) status = cnn_session_run_images(m->ss, imgs, paths, n);
    for (int i = 0; i < n; i++) cnn_image_free(&imgs[i]);
    free(imgs);
    return status;
}

int cnnviz_run_files(cnnviz_model *m, const char *const *paths, int n)
{
    LOCKED_BEGIN(m);
    int status = run_files(m, paths, n);
    LOCKED_END(m, status);
}

int cnnviz_batch_size(const cnnviz_model *m) { return m ? cnn_session_batch(m->ss) : finish(CNN_ERR_USAGE); }

static int need(size_t count, size_t want, const char *what)
{
    if (count < want)
        return cnn_error_set(CNN_ERR_USAGE, "%s: the buffer holds %zu floats; %zu are needed", what, count, want);
    return CNN_OK;
}

int cnnviz_output(cnnviz_model *m, float *out, size_t count)
{
    LOCKED_BEGIN(m);
    size_t want = (size_t)cnn_session_batch(m->ss) * (size_t)cnnviz_num_classes(m);
    int status = out ? need(count, want, "cnnviz_output") : cnn_error_set(CNN_ERR_USAGE, "cnnviz_output: out is NULL");
    if (status == CNN_OK) status = cnn_session_output(m->ss, out);
    LOCKED_END(m, status);
}

static int activations(cnnviz_model *m, const char *layer, float *out, size_t count, int64_t shape[4])
{
    int li = 0;
    CNN_TRY_RET(find_layer(m, layer, true, &li));
    int nb = cnn_session_batch(m->ss);
    if (!nb) return cnn_error_set(CNN_ERR_USAGE, "nothing has run yet: run a batch first");
    int64_t s[4] = {nb, 0, 0, 0};
    const cnn_graph *g = &cnn_session_model(m->ss)->graph;
    if (li == CNN_GRAPH_INPUT) {
        s[1] = g->in_c;
        s[2] = g->in_h;
        s[3] = g->in_w;
    } else {
        s[1] = m->layers[li].c;
        s[2] = m->layers[li].flat ? 1 : m->layers[li].h;
        s[3] = m->layers[li].flat ? 1 : m->layers[li].w;
    }
    if (shape) memcpy(shape, s, sizeof s);
    if (!out) return CNN_OK;
    CNN_TRY_RET(need(count, (size_t)(s[0] * s[1] * s[2] * s[3]), layer));
    return cnn_session_activations(m->ss, li, out);
}

int cnnviz_activations(cnnviz_model *m, const char *layer, float *out, size_t count, int64_t shape[4])
{
    LOCKED_BEGIN(m);
    int status = activations(m, layer, out, count, shape);
    LOCKED_END(m, status);
}

static int parameter(cnnviz_model *m, const char *layer, const char *which, float *out, size_t count,
                     int64_t shape[4], int *ndim)
{
    int li = 0;
    CNN_TRY_RET(find_layer(m, layer, false, &li));
    CHECK_ARG(which, "cnnviz_parameter: which is NULL (\"weight\" or \"bias\")");
    const cnn_layer *ly = &cnn_session_model(m->ss)->graph.layers[li];
    const float *src = NULL;
    int64_t s[4] = {0, 0, 0, 0};
    int nd = 1;
    if (!strcmp(which, "weight")) {
        src = ly->weight;
        if (ly->spec->op == CNN_OP_CONV2D) {
            const cnn_conv_geom *c = &ly->conv;
            s[0] = c->co;
            s[1] = c->ci / c->groups;
            s[2] = c->kh;
            s[3] = c->kw;
            nd = 4;
        } else if (ly->spec->op == CNN_OP_LINEAR) {
            s[0] = ly->c;
            s[1] = ly->c ? (int64_t)(ly->n_weight / (size_t)ly->c) : 0;
            nd = 2;
        } else {
            s[0] = (int64_t)ly->n_weight;
        }
    } else if (!strcmp(which, "bias") || !strcmp(which, "running_mean") || !strcmp(which, "running_var")) {
        src = !strcmp(which, "bias") ? ly->bias : !strcmp(which, "running_mean") ? ly->mean : ly->var;
        s[0] = ly->spec->op == CNN_OP_CONV2D ? ly->conv.co : ly->c;
    } else {
        return cnn_error_set(CNN_ERR_USAGE, "parameter '%s': weight, bias, running_mean or running_var", which);
    }
    if (!src) return cnn_error_set(CNN_ERR_USAGE, "layer '%s' (%s) has no %s", layer, cnn_op_name(ly->spec->op), which);
    if (shape) memcpy(shape, s, sizeof s);
    if (ndim) *ndim = nd;
    if (!out) return CNN_OK;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)s[i];
    CNN_TRY_RET(need(count, n, layer));
    memcpy(out, src, n * sizeof *out);
    return CNN_OK;
}

int cnnviz_parameter(cnnviz_model *m, const char *layer, const char *which, float *out, size_t count,
                     int64_t shape[4], int *ndim)
{
    LOCKED_BEGIN(m);
    int status = parameter(m, layer, which, out, count, shape, ndim);
    LOCKED_END(m, status);
}

/* ---------------------------------------------------------------------- */
/* Attribution and rendering                                               */

void cnnviz_attr_opts_init(cnnviz_attr_opts *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
}

static int attribute(cnnviz_model *m, const char *method, const char *layer, const int *targets,
                     const cnnviz_attr_opts *opts, float *out, size_t count, int64_t shape[3])
{
    cnnviz_attr_opts o;
    cnnviz_attr_opts_init(&o);
    if (opts) {
        CHECK_ARG(opts->struct_size >= sizeof(size_t) && opts->struct_size <= sizeof o,
                  "cnnviz_attr_opts.struct_size is %zu: initialise the options with cnnviz_attr_opts_init",
                  opts->struct_size);
        memcpy(&o, opts, opts->struct_size);
    }
    CHECK_ARG(method, "cnnviz_attribute: no method");
    int li = CNN_GRAPH_INPUT;
    if (layer) CNN_TRY_RET(find_layer(m, layer, true, &li));
    int nb = cnn_session_batch(m->ss);
    if (!nb) return cnn_error_set(CNN_ERR_USAGE, "nothing has run yet: run a batch first");
    CHECK_ARG(o.samples >= 0 && o.samples <= 100000, "samples %d: give 1 to 100000 (0: the default)", o.samples);
    CHECK_ARG(o.sigma >= 0 && o.sigma <= 10, "sigma %g: give a fraction of the input's range, 0 to 10", o.sigma);
    CHECK_ARG(o.window >= 0 && o.stride >= 0, "window and stride must not be negative");
    if (o.baseline) {
        char *end = NULL;
        bool named = !strcmp(o.baseline, "zero") || !strcmp(o.baseline, "blur") || !strcmp(o.baseline, "black");
        if (!named) (void)strtof(o.baseline, &end);
        CHECK_ARG(named || (end != o.baseline && *end == '\0'),
                  "baseline '%s': black, zero, blur or a pixel value such as 0.5", o.baseline);
    }
    if (o.reduce)
        CHECK_ARG(!strcmp(o.reduce, "paper") || !strcmp(o.reduce, "per-copy") || !strcmp(o.reduce, "magnitude"),
                  "reduce '%s': paper, per-copy or magnitude", o.reduce);
    CHECK_ARG(o.cells >= 0 && o.cells <= 256, "cells %d: give 1 to 256 (0: the default)", o.cells);
    CHECK_ARG(o.keep >= 0 && o.keep <= 1, "keep %g: give a probability in (0, 1] (0: the default)", o.keep);
    cnn_tap_spec spec = {.alpha = 0.5f, .score = o.prob ? "prob" : "logit", .samples = o.samples, .sigma = o.sigma,
                         .baseline = (char *)o.baseline, .window = o.window, .step = o.stride,
                         .reduce = (char *)o.reduce, .cells = o.cells, .keep = o.keep};
    int *top = NULL;
    if (!targets) {
        /* each image's top class, as the command line's top1 ranks them */
        int nout = cnnviz_num_classes(m);
        float *lg = cnn_malloc((size_t)nb * nout * sizeof *lg);
        top = cnn_malloc((size_t)nb * sizeof *top);
        int status = lg && top ? cnn_session_output(m->ss, lg) : CNN_ERR_NOMEM;
        for (int b = 0; b < nb && status == CNN_OK; b++) {
            int best = 0;
            for (int c = 1; c < nout; c++) {
                float v = lg[(size_t)b * nout + c], bv = lg[(size_t)b * nout + best];
                if ((v != v && bv == bv) || v > bv) best = c; /* NaN first, then the largest, first on ties */
            }
            top[b] = best;
        }
        free(lg);
        if (status < 0) {
            free(top);
            return status;
        }
        targets = top;
    }
    int h = 0, w = 0;
    int status = cnn_session_attribute(m->ss, method, li, targets, &spec, o.upsample != 0, NULL, &h, &w);
    if (status == CNN_OK && shape) {
        shape[0] = nb;
        shape[1] = h;
        shape[2] = w;
    }
    if (status == CNN_OK && out) status = need(count, (size_t)nb * h * w, method);
    if (status == CNN_OK && out)
        status = cnn_session_attribute(m->ss, method, li, targets, &spec, o.upsample != 0, out, &h, &w);
    free(top);
    return status;
}

int cnnviz_attribute(cnnviz_model *m, const char *method, const char *layer, const int *targets,
                     const cnnviz_attr_opts *opts, float *out, size_t count, int64_t shape[3])
{
    LOCKED_BEGIN(m);
    int status = attribute(m, method, layer, targets, opts, out, count, shape);
    LOCKED_END(m, status);
}

static int render(cnnviz_model *m, const float *map, int h, int w, const char *colormap, const char *normalize,
                  int overlay, float alpha, uint8_t *rgba)
{
    CHECK_ARG(map && rgba, "cnnviz_render: NULL argument");
    CHECK_ARG(h >= 1 && w >= 1 && (size_t)h * w <= ((size_t)1 << 28), "a map of %d x %d cannot be rendered", h, w);
    size_t px = (size_t)h * w;
    uint8_t *rgb = cnn_malloc(px * 3);
    if (!rgb) return CNN_ERR_NOMEM;
    int ncomp = 3;
    int status = cnn_session_render(m->ss, map, h, w, colormap, normalize, overlay, alpha, rgb, &ncomp);
    for (size_t p = 0; p < px && status == CNN_OK; p++) {
        for (int c = 0; c < 3; c++) rgba[4 * p + c] = rgb[ncomp == 3 ? 3 * p + c : p];
        rgba[4 * p + 3] = 255;
    }
    free(rgb);
    return status;
}

int cnnviz_render(cnnviz_model *m, const float *map, int h, int w, const char *colormap, const char *normalize,
                  int overlay, float alpha, uint8_t *rgba)
{
    LOCKED_BEGIN(m);
    int status = render(m, map, h, w, colormap, normalize, overlay, alpha, rgba);
    LOCKED_END(m, status);
}

/* ---------------------------------------------------------------------- */
/* The command line's folder                                               */

void cnnviz_write_opts_init(cnnviz_write_opts *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->report = 1;
    o->batch = 1;
    o->curves = -1;
    o->png_level = -1;
    o->road = -1;
}

static void write_emit(void *ctx, cnn_log_kind kind, const char *text)
{
    const sink *k = ctx;
    if (k->fn) k->fn(k->user, kind == CNN_LOG_WARN ? 1 : 0, text);
    else if (kind == CNN_LOG_WARN) cnn_print_line(stderr, "cnnviz: warning: ", text);
}

int cnnviz_write_run(const char *model, const char *const *inputs, int n_inputs, const char *out_dir,
                     const cnnviz_write_opts *opts)
{
    cnnviz_write_opts o;
    cnnviz_write_opts_init(&o);
    if (opts) {
        if (opts->struct_size < sizeof(size_t) || opts->struct_size > sizeof o)
            return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_write_opts.struct_size is %zu: initialise the options "
                                        "with cnnviz_write_opts_init", opts->struct_size));
        memcpy(&o, opts, opts->struct_size);
    }
    if (!model || !*model) return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_write_run: no model path"));
    if (n_inputs < 0 || (n_inputs && !inputs) || o.n_taps < 0 || (o.n_taps && !o.taps))
        return finish(cnn_error_set(CNN_ERR_USAGE, "cnnviz_write_run: inputs or taps given as NULL"));
    if (o.batch < 1 || o.batch > 4096) return finish(cnn_error_set(CNN_ERR_USAGE, "batch %d: 1 to 4096", o.batch));
    cnn_job_opts jo;
    cnn_job_opts_init(&jo);
    jo.config = model;
    jo.weights = o.weights;
    jo.out = out_dir;
    jo.platform = o.platform;
    jo.device = o.device;
    jo.inputs = (const char **)inputs;
    jo.n_inputs = n_inputs;
    jo.taps = (const char **)o.taps;
    jo.n_taps = o.n_taps;
    jo.no_taps = o.no_taps != 0;
    jo.cls = o.cls;
    jo.npy = o.npy != 0;
    jo.no_report = !o.report;
    jo.batch = o.batch;
    jo.top = o.top;
    jo.wait_lock = o.wait_lock != 0;
    jo.read_weights = true;
    jo.score = o.score;
    jo.curves = o.curves;
    jo.road = o.road;
    jo.sanity = o.sanity;
    jo.png_level = o.png_level;
    jo.strict = o.strict != 0;
    if (o.score && strcmp(o.score, "logit") != 0 && strcmp(o.score, "prob") != 0)
        return finish(cnn_error_set(CNN_ERR_USAGE, "score '%s': logit or prob", o.score));
    if (o.sanity < 0 || o.sanity > 64)
        return finish(cnn_error_set(CNN_ERR_USAGE, "sanity %d: 0 to 64 layers", o.sanity));
    if (o.road < -1 || o.road > 1)
        return finish(cnn_error_set(CNN_ERR_USAGE, "road %d: 1, 0 or -1 (each tap's)", o.road));
    if (o.curves < -1 || o.curves > 1000 || o.png_level < -1 || o.png_level > 9)
        return finish(cnn_error_set(CNN_ERR_USAGE, "curves %d or png_level %d out of range (-1: the pipeline's)",
                                    o.curves, o.png_level));
    pre_fields pf = {o.preprocess, o.mean, o.std, o.n_mean, o.n_std, o.size};
    int st = import_opts(&pf, &jo.imp);
    if (st < 0) return finish(st);
    sink k = {o.log, o.log_user};
    const cnn_log lg = {write_emit, NULL, &k};
    const cnn_log *prev = cnn_log_use(&lg);
    cnn_job_result res;
    int status = cnn_job_run(&jo, &res);
    cnn_log_use(prev);
    return finish(status);
}
