#include "io/manifest.h"
#include "io/json.h"
#include "core/error.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s, bool *fail)
{
    if (!s) return NULL;
    char *d = cnn_strdup(s);
    if (!d) *fail = true;
    return d;
}

int cnn_manifest_add(cnn_manifest *m, const cnn_manifest_entry *e)
{
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 64;
        cnn_manifest_entry *p = cnn_realloc(m->e, (size_t)cap * sizeof *p);
        if (!p) return CNN_ERR_NOMEM;
        m->e = p;
        m->cap = cap;
    }
    cnn_manifest_entry *d = &m->e[m->n];
    *d = *e;
    bool fail = false;
    d->path = dup_or_null(e->path, &fail);
    d->kind = dup_or_null(e->kind, &fail);
    d->layer = dup_or_null(e->layer, &fail);
    d->input = dup_or_null(e->input, &fail);
    d->format = dup_or_null(e->format, &fail);
    d->normalize = dup_or_null(e->normalize, &fail);
    d->colormap = dup_or_null(e->colormap, &fail);
    d->role = dup_or_null(e->role, &fail);
    d->note = dup_or_null(e->note, &fail);
    d->label = dup_or_null(e->label, &fail);
    d->n_curve = 0;
    d->deletion = d->insertion = NULL;
    m->n++;
    if (fail) return CNN_ERR_NOMEM;
    if (e->n_curve > 0)
        return cnn_manifest_set_curves(m, m->n - 1, e->deletion, e->insertion, e->n_curve, e->auc[0], e->auc[1]);
    return CNN_OK;
}

int cnn_manifest_set_curves(cnn_manifest *m, int i, const float *deletion, const float *insertion, int n,
                            double auc_deletion, double auc_insertion)
{
    cnn_manifest_entry *d = &m->e[i];
    float *a = cnn_malloc((size_t)n * sizeof *a), *b = cnn_malloc((size_t)n * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return CNN_ERR_NOMEM;
    }
    memcpy(a, deletion, (size_t)n * sizeof *a);
    memcpy(b, insertion, (size_t)n * sizeof *b);
    free(d->deletion);
    free(d->insertion);
    d->deletion = a;
    d->insertion = b;
    d->n_curve = n;
    d->auc[0] = auc_deletion;
    d->auc[1] = auc_insertion;
    return CNN_OK;
}

static void json_curve(cnn_json *j, const char *key, const float *v, int n)
{
    cnn_json_key(j, key);
    cnn_json_array_begin(j);
    for (int k = 0; k < n; k++) cnn_json_number(j, v[k]);
    cnn_json_array_end(j);
}

int cnn_manifest_write(const cnn_manifest *m, const char *path)
{
    cnn_json j;
    cnn_json_init(&j, true);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "files");
    cnn_json_array_begin(&j);
    for (int i = 0; i < m->n; i++) {
        const cnn_manifest_entry *e = &m->e[i];
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "path");
        cnn_json_string(&j, e->path);
        cnn_json_key(&j, "kind");
        cnn_json_string(&j, e->kind);
        if (e->role) {
            cnn_json_key(&j, "role");
            cnn_json_string(&j, e->role);
        }
        cnn_json_key(&j, "layer");
        cnn_json_string(&j, e->layer);
        cnn_json_key(&j, "input");
        cnn_json_string(&j, e->input);
        cnn_json_key(&j, "channel");
        if (e->channel >= 0) cnn_json_int(&j, e->channel);
        else cnn_json_null(&j);
        cnn_json_key(&j, "format");
        cnn_json_string(&j, e->format);
        cnn_json_key(&j, "shape");
        cnn_json_array_begin(&j);
        for (int k = 0; k < e->ndim; k++) cnn_json_int(&j, (long long)e->shape[k]);
        cnn_json_array_end(&j);
        if (e->normalize) {
            cnn_json_key(&j, "normalize");
            cnn_json_string(&j, e->normalize);
        }
        if (e->has_range) {
            cnn_json_key(&j, "range");
            cnn_json_array_begin(&j);
            cnn_json_number(&j, e->range[0]);
            cnn_json_number(&j, e->range[1]);
            cnn_json_array_end(&j);
        }
        if (e->colormap) {
            cnn_json_key(&j, "colormap");
            cnn_json_string(&j, e->colormap);
        }
        if (e->has_stats) {
            static const char *const names[4] = {"min", "max", "mean", "std"};
            for (int k = 0; k < 4; k++) {
                cnn_json_key(&j, names[k]);
                cnn_json_number(&j, e->stats[k]);
            }
        }
        if (e->has_cls) {
            cnn_json_key(&j, "class");
            cnn_json_int(&j, e->cls);
        }
        if (e->label) {
            cnn_json_key(&j, "label");
            cnn_json_string(&j, e->label);
        }
        if (e->n_curve > 0) {
            cnn_json_key(&j, "deletion_auc");
            cnn_json_number(&j, e->auc[0]);
            cnn_json_key(&j, "insertion_auc");
            cnn_json_number(&j, e->auc[1]);
            json_curve(&j, "deletion", e->deletion, e->n_curve);
            json_curve(&j, "insertion", e->insertion, e->n_curve);
        }
        if (e->nonfinite) {
            cnn_json_key(&j, "nonfinite");
            cnn_json_int(&j, (long long)e->nonfinite);
        }
        if (e->note) {
            cnn_json_key(&j, "note");
            cnn_json_string(&j, e->note);
        }
        cnn_json_object_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_object_end(&j);
    int status = cnn_json_write_file(&j, path);
    cnn_json_free(&j);
    return status;
}

void cnn_manifest_free(cnn_manifest *m)
{
    for (int i = 0; i < m->n; i++) {
        cnn_manifest_entry *e = &m->e[i];
        free(e->path);
        free(e->kind);
        free(e->layer);
        free(e->input);
        free(e->format);
        free(e->normalize);
        free(e->colormap);
        free(e->role);
        free(e->note);
        free(e->label);
        free(e->deletion);
        free(e->insertion);
    }
    free(m->e);
    memset(m, 0, sizeof *m);
}
