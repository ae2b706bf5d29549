/* The model of a run: its pipeline (a YAML file, or an ONNX model imported
 * in memory), weights, graph and class names, everything checked before a
 * device is touched.  Warnings (weights holding NaN or Inf, tensors no
 * layer uses) go to the log sink (core/log.h). */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/model.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cnn_model_free(cnn_model *l)
{
    cnn_graph_free(&l->graph);
    cnn_weights_close(&l->weights);
    free(l->onnx_weights);
    cnn_pipeline_free(&l->pipe);
    for (int i = 0; i < l->n_labels; i++) free(l->labels[i]);
    free(l->labels);
    memset(l, 0, sizeof *l);
}

/* One class name per line, as many lines as the network has outputs: a
 * count that differs means the file belongs to another network (or lost a
 * line), and every name after the gap would be wrong.  Each '\n' ends a
 * line (an empty line in the middle is a class without a name, counted);
 * empty lines at the end, a CR before the newline and a UTF-8 byte order
 * mark are not part of the names. */
static int load_labels(cnn_model *l)
{
    if (!l->pipe.labels) return CNN_OK;
    const char *path = l->pipe.labels;
    char *text = NULL;
    size_t len = 0;
    int status = cnn_file_read(path, 16u << 20, &text, &len);
    if (status == CNN_ERR_INTERRUPTED) return status;
    if (status < 0) return cnn_pipeline_error_at(&l->pipe, l->pipe.labels_pos, "labels: %s", cnn_error_message());
    l->hash = cnn_hash64_wide(l->hash, text, len);
    size_t pos = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    while (len > pos && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    text[len] = '\0';
    const cnn_layer *last = &l->graph.layers[l->graph.n - 1];
    size_t nout = cnn_layer_numel(last);
    int n = 0;
    for (size_t i = pos; i < len; i++) n += text[i] == '\n';
    n += len > pos;
    if (memchr(text, '\0', len)) {
        status = cnn_pipeline_error_at(&l->pipe, l->pipe.labels_pos, "labels: %s: holds a NUL byte (not a text file?)",
                                       path);
    } else if ((size_t)n != nout) {
        status = cnn_pipeline_error_at(&l->pipe, l->pipe.labels_pos,
                                       "labels: %s has %d line%s, but the network has %zu outputs (layer '%s'): "
                                       "one class name per output, in order",
                                       path, n, n == 1 ? "" : "s", nout, last->spec->name);
    } else if (n > 0 && !(l->labels = cnn_calloc((size_t)n, sizeof *l->labels))) {
        status = CNN_ERR_NOMEM;
    }
    char *save = NULL;
    for (char *line = n && status == CNN_OK ? text + pos : NULL; line && l->n_labels < n; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        size_t m = strlen(line);
        if (m && line[m - 1] == '\r') line[m - 1] = '\0';
        if (!(l->labels[l->n_labels] = cnn_strdup(line))) {
            status = CNN_ERR_NOMEM;
            break;
        }
        l->n_labels++;
    }
    free(text);
    return status;
}

/* "12 NaN, 1 +Inf" for tensor e (the kinds it holds). */
static void fmt_nonfinite(const cnn_nonfinite *e, char *buf, size_t size)
{
    const size_t v[3] = {e->count.nan, e->count.pos_inf, e->count.neg_inf};
    static const char *const kind[3] = {"NaN", "+Inf", "-Inf"};
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < 3; k++)
        if (v[k] && n < size) n += (size_t)snprintf(buf + n, size - n, "%s%zu %s", n ? ", " : "", v[k], kind[k]);
}

/* Weights holding NaN or Inf: one warning line naming the first tensors
 * and their counts (the run goes on and its outputs follow the NaN as
 * PyTorch's would), or with --strict one error naming the first tensor. */
static int check_nonfinite(const cnn_model_opts *o, const cnn_model *l)
{
    const cnn_graph *g = &l->graph;
    enum { SHOWN = 3 };
    char counts[96], list[1024];
    size_t n = 0;
    fmt_nonfinite(&g->nonfinite[0], counts, sizeof counts);
    if (o->strict) {
        char more[64] = "";
        if (g->n_nonfinite > 1) snprintf(more, sizeof more, " (%d tensors in all)", g->n_nonfinite);
        return cnn_error_set(CNN_ERR_INPUT, "%s: tensor '%.160s' holds %s%s; --strict refuses NaN and Inf in the "
                             "weights", l->weights.path, g->nonfinite[0].tensor, counts, more);
    }
    list[0] = '\0';
    for (int i = 0; i < g->n_nonfinite && i < SHOWN && n < sizeof list; i++) {
        fmt_nonfinite(&g->nonfinite[i], counts, sizeof counts);
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%.160s: %s", i ? "; " : "", g->nonfinite[i].tensor,
                              counts);
    }
    if (g->n_nonfinite > SHOWN && n < sizeof list)
        snprintf(list + n, sizeof list - n, "; and %d more", g->n_nonfinite - SHOWN);
    cnn_logf(CNN_LOG_WARN, "%s: %d tensor%s hold%s NaN or Inf (%s); the outputs %s reaches will hold NaN or Inf, "
             "as in PyTorch (--strict makes this an error)", l->weights.path, g->n_nonfinite,
             g->n_nonfinite == 1 ? "" : "s", g->n_nonfinite == 1 ? "s" : "", list, g->n_nonfinite == 1 ? "it" : "each");
    return CNN_OK;
}

/* Tensors of the weights file that no layer binds: one warning line with
 * their count and the first names (a layer left out of the pipeline, a
 * misspelt params: prefix).  PyTorch's batch-norm counters
 * (num_batches_tracked) are bookkeeping, never weights: not counted. */
static void warn_unused(const cnn_model *l)
{
    enum { SHOWN = 3 };
    const cnn_weights *w = &l->weights;
    char list[600] = "";
    size_t n = 0;
    int count = 0;
    static const char skip[] = ".num_batches_tracked";
    for (int i = 0; i < w->n; i++) {
        const char *name = w->tensors[i].name;
        size_t len = strlen(name);
        if (l->graph.used[i] || (len >= sizeof skip - 1 && !strcmp(name + len - (sizeof skip - 1), skip))) continue;
        if (count++ < SHOWN && n < sizeof list)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%.160s", n ? ", " : "", name);
    }
    if (!count) return;
    char more[48] = "";
    if (count > SHOWN) snprintf(more, sizeof more, ", and %d more", count - SHOWN);
    cnn_warn("%s: %d tensor%s no layer uses: %s%s (a layer missing from the pipeline, or a params: prefix that "
             "does not match?)", w->path, count, count == 1 ? "" : "s", list, more);
}

/* An ONNX model: imported in memory, then parsed and opened as a pipeline
 * file and its weights would be. */
static int load_onnx(const cnn_model_opts *o, cnn_model *l)
{
    cnn_import imp;
    int status = cnn_import_onnx(o->config, &o->imp, &imp);
    if (status < 0) return status;
    if (imp.newer[0] && !imp.checked) {
        status = cnn_error_set(CNN_ERR_INPUT, "%s: the model needs %s, which this build of cnnviz-cl cannot run",
                               o->config, imp.newer);
        cnn_import_free(&imp);
        return status;
    }
    snprintf(l->assumed, sizeof l->assumed, "%s", imp.assumed);
    l->hash = cnn_hash64_wide(l->hash, imp.yaml, imp.yaml_len);
    l->hash = cnn_hash64_wide(l->hash, imp.weights, imp.weights_len);
    char *name = cnn_strfmt("%s (imported)", o->config), *dir = cnn_path_dir(o->config);
    status = name && dir ? cnn_pipeline_parse(name, dir, imp.yaml, imp.yaml_len, &l->pipe) : CNN_ERR_NOMEM;
    free(name);
    free(dir);
    l->onnx_weights = imp.weights;
    size_t len = imp.weights_len;
    imp.weights = NULL;
    cnn_import_free(&imp);
    if (status < 0) return status;
    return cnn_weights_open_memory(o->config, l->onnx_weights, len, &l->weights);
}

int cnn_model_load(const cnn_model_opts *o, cnn_model *l)
{
    memset(l, 0, sizeof *l);
    l->hash = CNN_HASH64_INIT;
    if (cnn_import_is_onnx(o->config)) {
        int status = load_onnx(o, l);
        if (status == CNN_OK) status = cnn_graph_build(&l->pipe, &l->weights, &l->graph);
        if (status == CNN_OK && l->graph.n_nonfinite) status = check_nonfinite(o, l);
        return status;
    }
    int status = cnn_pipeline_load(o->config, &l->pipe);
    if (status < 0) return status;
    /* The text the pipeline was parsed from, read again for the hash (a
     * few kilobytes). */
    char *text = NULL;
    size_t text_len = 0;
    CNN_TRY_RET(cnn_file_read(o->config, 16u << 20, &text, &text_len));
    l->hash = cnn_hash64_wide(l->hash, text, text_len);
    free(text);
    if (o->weights) {
        free(l->pipe.weights);
        l->pipe.weights = cnn_strdup(o->weights);
        l->pipe.weights_pos = (cnn_pos){0, 0};
        if (!l->pipe.weights) return CNN_ERR_NOMEM;
    }
    bool needs_weights = false;
    for (int i = 0; i < l->pipe.n_layers; i++)
        needs_weights |= l->pipe.layers[i].params != NULL || l->pipe.layers[i].cnst != NULL;
    if (needs_weights) {
        if (!l->pipe.weights)
            return cnn_error_set(CNN_ERR_INPUT, "%s: model.weights is not set: give the weights with --weights FILE",
                                 o->config);
        if (o->read_weights) {
            /* into memory: a file rewritten later cannot fault the process */
            char *buf = NULL;
            size_t len = 0;
            status = cnn_file_read(l->pipe.weights, (size_t)1 << 40, &buf, &len);
            l->onnx_weights = (unsigned char *)buf;
            if (status == CNN_OK) status = cnn_weights_open_memory(l->pipe.weights, buf, len, &l->weights);
            if (status == CNN_OK) l->hash = cnn_hash64_wide(l->hash, buf, len);
        } else {
            status = cnn_weights_open(l->pipe.weights, &l->weights);
            if (status == CNN_OK) l->hash = cnn_hash64_wide(l->hash, l->weights.map, l->weights.map_len);
        }
        if (status < 0) {
            if (l->pipe.weights_pos.line)
                return cnn_error_prefix(status, "%s:%d:%d: model.weights", o->config, l->pipe.weights_pos.line,
                                        l->pipe.weights_pos.col);
            return status;
        }
    }
    status = cnn_graph_build(&l->pipe, needs_weights ? &l->weights : NULL, &l->graph);
    if (status < 0) return status;
    if (l->graph.n_nonfinite) CNN_TRY_RET(check_nonfinite(o, l));
    if (needs_weights) warn_unused(l);
    return load_labels(l);
}
