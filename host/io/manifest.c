#include "io/manifest.h"
#include "io/json.h"
#include "io/jsonparse.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
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
    d->n_road = 0;
    d->road_pct = d->road_morf = d->road_lerf = NULL;
    d->n_sanity = 0;
    d->sanity_layer = NULL;
    d->sanity_rho = NULL;
    m->n++;
    if (fail) return CNN_ERR_NOMEM;
    if (e->n_curve > 0)
        CNN_TRY_RET(cnn_manifest_set_curves(m, m->n - 1, e->deletion, e->insertion, e->n_curve, e->auc[0], e->auc[1]));
    if (e->n_road > 0) {
        cnn_manifest_entry *r = &m->e[m->n - 1];
        r->road_pct = cnn_malloc((size_t)e->n_road * sizeof(float));
        r->road_morf = cnn_malloc((size_t)e->n_road * sizeof(float));
        r->road_lerf = cnn_malloc((size_t)e->n_road * sizeof(float));
        if (!r->road_pct || !r->road_morf || !r->road_lerf) return CNN_ERR_NOMEM;
        memcpy(r->road_pct, e->road_pct, (size_t)e->n_road * sizeof(float));
        memcpy(r->road_morf, e->road_morf, (size_t)e->n_road * sizeof(float));
        memcpy(r->road_lerf, e->road_lerf, (size_t)e->n_road * sizeof(float));
        r->n_road = e->n_road;
    }
    if (e->n_sanity > 0)
        return cnn_manifest_set_sanity(m, m->n - 1, (const char *const *)e->sanity_layer, e->sanity_rho, e->n_sanity);
    return CNN_OK;
}

static void free_sanity(cnn_manifest_entry *d)
{
    for (int k = 0; k < d->n_sanity && d->sanity_layer; k++) free(d->sanity_layer[k]);
    free(d->sanity_layer);
    free(d->sanity_rho);
    d->sanity_layer = NULL;
    d->sanity_rho = NULL;
    d->n_sanity = 0;
}

int cnn_manifest_set_sanity(cnn_manifest *m, int i, const char *const *layers, const float *rho, int n)
{
    cnn_manifest_entry *d = &m->e[i];
    free_sanity(d);
    d->sanity_layer = cnn_calloc((size_t)n, sizeof *d->sanity_layer);
    d->sanity_rho = cnn_malloc((size_t)n * sizeof *d->sanity_rho);
    if (!d->sanity_layer || !d->sanity_rho) {
        free_sanity(d);
        return CNN_ERR_NOMEM;
    }
    d->n_sanity = n;
    for (int k = 0; k < n; k++) {
        d->sanity_layer[k] = cnn_strdup(layers[k]);
        d->sanity_rho[k] = rho[k];
        if (!d->sanity_layer[k]) {
            free_sanity(d);
            return CNN_ERR_NOMEM;
        }
    }
    return CNN_OK;
}

int cnn_manifest_set_road(cnn_manifest *m, int i, const float *pct, const double *morf, const double *lerf, int n,
                          double combined)
{
    cnn_manifest_entry *d = &m->e[i];
    float *a = cnn_malloc((size_t)n * sizeof *a), *b = cnn_malloc((size_t)n * sizeof *b);
    float *c = cnn_malloc((size_t)n * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return CNN_ERR_NOMEM;
    }
    for (int k = 0; k < n; k++) {
        a[k] = pct[k];
        b[k] = (float)morf[k];
        c[k] = (float)lerf[k];
    }
    free(d->road_pct);
    free(d->road_morf);
    free(d->road_lerf);
    d->road_pct = a;
    d->road_morf = b;
    d->road_lerf = c;
    d->n_road = n;
    d->road = combined;
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

int cnn_manifest_text(const cnn_manifest *m, char **text, size_t *len)
{
    cnn_json j;
    cnn_json_init(&j, true);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "tool");
    cnn_json_string(&j, CNN_MANIFEST_TOOL);
    cnn_json_key(&j, "version");
    cnn_json_string(&j, CNN_VERSION_STRING);
    cnn_json_key(&j, "schema");
    cnn_json_int(&j, CNN_MANIFEST_SCHEMA);
    if (m->run) {
        cnn_json_key(&j, "run");
        cnn_json_value(&j, m->run);
    }
    cnn_json_key(&j, "files");
    cnn_json_array_begin(&j);
    for (int i = 0; i < m->n; i++) {
        const cnn_manifest_entry *e = &m->e[i];
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "path");
        cnn_json_string(&j, e->path);
        cnn_json_key(&j, "kind");
        cnn_json_string(&j, e->kind);
        if (e->has_stat) {
            cnn_json_key(&j, "bytes");
            cnn_json_int(&j, (long long)e->bytes);
            cnn_json_key(&j, "mtime");
            cnn_json_array_begin(&j);
            cnn_json_int(&j, (long long)e->mtime_s);
            cnn_json_int(&j, (long long)e->mtime_ns);
            cnn_json_array_end(&j);
        }
        if (e->role) {
            cnn_json_key(&j, "role");
            cnn_json_string(&j, e->role);
        }
        cnn_json_key(&j, "layer");
        cnn_json_string(&j, e->layer);
        if (e->input) {
            cnn_json_path(&j, "input", e->input);
        } else {
            cnn_json_key(&j, "input");
            cnn_json_null(&j);
        }
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
        if (e->n_road > 0) {
            cnn_json_key(&j, "road");
            cnn_json_number(&j, e->road);
            json_curve(&j, "road_percentiles", e->road_pct, e->n_road);
            json_curve(&j, "road_morf", e->road_morf, e->n_road);
            json_curve(&j, "road_lerf", e->road_lerf, e->n_road);
        }
        if (e->n_sanity > 0) {
            cnn_json_key(&j, "sanity");
            cnn_json_array_begin(&j);
            for (int k = 0; k < e->n_sanity; k++) {
                cnn_json_object_begin(&j);
                cnn_json_key(&j, "randomized");
                cnn_json_string(&j, e->sanity_layer[k]);
                cnn_json_key(&j, "spearman");
                cnn_json_number(&j, e->sanity_rho[k]);
                cnn_json_object_end(&j);
            }
            cnn_json_array_end(&j);
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
    if (j.failed || !j.buf) {
        cnn_json_free(&j);
        return cnn_error_set(CNN_ERR_NOMEM, "manifest.json: out of host memory");
    }
    *text = j.buf;
    *len = j.len;
    return CNN_OK;
}

void cnn_manifest_truncate(cnn_manifest *m, int n)
{
    for (int i = n; i < m->n; i++) {
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
        free(e->road_pct);
        free(e->road_morf);
        free(e->road_lerf);
        free_sanity(e);
    }
    if (n < m->n) m->n = n;
}

void cnn_manifest_free(cnn_manifest *m)
{
    cnn_manifest_truncate(m, 0);
    free(m->e);
    cnn_jv_free(m->run);
    free(m->run);
    memset(m, 0, sizeof *m);
}

int cnn_manifest_set_run(cnn_manifest *m, const char *text, size_t len)
{
    cnn_jv *run = cnn_calloc(1, sizeof *run);
    if (!run) return CNN_ERR_NOMEM;
    int status = cnn_jv_parse(text, len, run);
    if (status < 0) {
        free(run);
        return status;
    }
    cnn_jv_free(m->run);
    free(m->run);
    m->run = run;
    return CNN_OK;
}

/* Entries sorted by (group, place): the index array's order. */
static _Thread_local const int *g_groups;

static int cmp_group(const void *a, const void *b)
{
    int ia = *(const int *)a, ib = *(const int *)b;
    if (g_groups[ia] != g_groups[ib]) return g_groups[ia] < g_groups[ib] ? -1 : 1;
    return (ia > ib) - (ia < ib);
}

int cnn_manifest_order(cnn_manifest *m, const int *group)
{
    if (m->n < 2) return CNN_OK;
    int *idx = cnn_malloc((size_t)m->n * sizeof *idx);
    cnn_manifest_entry *e = cnn_malloc((size_t)m->cap * sizeof *e);
    if (!idx || !e) {
        free(idx);
        free(e);
        return CNN_ERR_NOMEM;
    }
    for (int i = 0; i < m->n; i++) idx[i] = i;
    g_groups = group;
    qsort(idx, (size_t)m->n, sizeof *idx, cmp_group);
    for (int i = 0; i < m->n; i++) e[i] = m->e[idx[i]];
    free(m->e);
    m->e = e;
    free(idx);
    return CNN_OK;
}

/* A number of an entry read back: null is how NaN was written. */
static bool jv_double(const cnn_jv *v, double *out)
{
    if (v->type == CNN_JV_NULL) *out = NAN;
    else if (v->type == CNN_JV_NUMBER) *out = v->num;
    else return false;
    return true;
}

/* A float array ("range", "deletion", ...) into a new buffer. */
static bool jv_floats(const cnn_jv *v, int max, float **out, int *n)
{
    if (v->type != CNN_JV_ARRAY || v->n > max) return false;
    *out = cnn_malloc((size_t)(v->n ? v->n : 1) * sizeof **out);
    if (!*out) return false;
    for (int i = 0; i < v->n; i++) {
        double d;
        if (!jv_double(&v->items[i], &d)) return false;
        (*out)[i] = (float)d;
    }
    *n = v->n;
    return true;
}

static bool jv_string_or_null(const cnn_jv *v, char **out)
{
    if (v->type == CNN_JV_NULL) *out = NULL;
    else if (v->type == CNN_JV_STRING) *out = v->str;
    else return false;
    return true;
}

int cnn_manifest_add_jv(cnn_manifest *m, const cnn_jv *v)
{
    if (v->type != CNN_JV_OBJECT) return cnn_error_set(CNN_ERR_INPUT, "a file entry that is not an object");
    cnn_manifest_entry e = {.channel = -1};
    float *range = NULL, *del = NULL, *ins = NULL, *rp = NULL, *rm = NULL, *rl = NULL;
    char *input = NULL;
    int n_range = 0, n_del = -1, n_ins = -1, n_stats = 0, n_rp = -1, n_rm = -1, n_rl = -1;
    bool has_road = false;
    char *san_layer[64];
    float san_rho[64];
    int n_san = 0;
    const char *bad = NULL;
    for (int i = 0; i < v->n && !bad; i++) {
        const char *k = v->keys[i];
        const cnn_jv *x = &v->items[i];
        bool ok = true;
        long long ll;
        if (!strcmp(k, "path") || !strcmp(k, "kind") || !strcmp(k, "format")) {
            ok = x->type == CNN_JV_STRING;
            if (ok) *(k[0] == 'p' ? &e.path : k[0] == 'k' ? &e.kind : &e.format) = x->str;
        } else if (!strcmp(k, "bytes") || !strcmp(k, "mtime") || !strcmp(k, "input_b64")) {
            /* recorded again at the commit; the name's bytes are read with "input" */
        } else if (!strcmp(k, "role")) {
            ok = jv_string_or_null(x, &e.role);
        } else if (!strcmp(k, "layer")) {
            ok = jv_string_or_null(x, &e.layer);
        } else if (!strcmp(k, "normalize")) {
            ok = jv_string_or_null(x, &e.normalize);
        } else if (!strcmp(k, "colormap")) {
            ok = jv_string_or_null(x, &e.colormap);
        } else if (!strcmp(k, "label")) {
            ok = jv_string_or_null(x, &e.label);
        } else if (!strcmp(k, "note")) {
            ok = jv_string_or_null(x, &e.note);
        } else if (!strcmp(k, "input")) {
            ok = !input && (x->type == CNN_JV_NULL ||
                            (x->type == CNN_JV_STRING && (input = cnn_jv_path(v, "input")) != NULL));
            e.input = input;
        } else if (!strcmp(k, "channel")) {
            ok = x->type == CNN_JV_NULL || cnn_jv_int(x, 0, INT32_MAX, &ll);
            if (ok && x->type != CNN_JV_NULL) e.channel = (int)ll;
        } else if (!strcmp(k, "class")) {
            ok = cnn_jv_int(x, INT32_MIN, INT32_MAX, &ll);
            e.has_cls = 1;
            e.cls = (int)ll;
        } else if (!strcmp(k, "nonfinite")) {
            ok = cnn_jv_int(x, 0, INT64_MAX, &ll);
            e.nonfinite = ll;
        } else if (!strcmp(k, "shape")) {
            ok = x->type == CNN_JV_ARRAY && x->n <= 4;
            for (int d = 0; ok && d < x->n; d++) {
                ok = cnn_jv_int(&x->items[d], -(1LL << 53), 1LL << 53, &ll);
                e.shape[d] = ll;
            }
            e.ndim = ok ? x->n : 0;
        } else if (!strcmp(k, "range")) {
            ok = !range && jv_floats(x, 2, &range, &n_range) && n_range == 2;
            if (ok) {
                e.has_range = 1;
                e.range[0] = range[0];
                e.range[1] = range[1];
            }
        } else if (!strcmp(k, "min") || !strcmp(k, "max") || !strcmp(k, "mean") || !strcmp(k, "std")) {
            int at = k[1] == 'i' ? 0 : k[1] == 'a' ? 1 : k[1] == 'e' ? 2 : 3;
            ok = jv_double(x, &e.stats[at]);
            n_stats++;
        } else if (!strcmp(k, "deletion_auc") || !strcmp(k, "insertion_auc")) {
            ok = jv_double(x, &e.auc[k[0] == 'd' ? 0 : 1]);
        } else if (!strcmp(k, "deletion")) {
            ok = !del && jv_floats(x, 1 << 20, &del, &n_del);
        } else if (!strcmp(k, "insertion")) {
            ok = !ins && jv_floats(x, 1 << 20, &ins, &n_ins);
        } else if (!strcmp(k, "road")) {
            ok = !has_road && jv_double(x, &e.road);
            has_road = true;
        } else if (!strcmp(k, "road_percentiles")) {
            ok = !rp && jv_floats(x, 1000, &rp, &n_rp);
        } else if (!strcmp(k, "road_morf")) {
            ok = !rm && jv_floats(x, 1000, &rm, &n_rm);
        } else if (!strcmp(k, "road_lerf")) {
            ok = !rl && jv_floats(x, 1000, &rl, &n_rl);
        } else if (!strcmp(k, "sanity")) {
            ok = !n_san && x->type == CNN_JV_ARRAY && x->n > 0 && x->n <= 64;
            for (int s = 0; ok && s < x->n; s++) {
                const cnn_jv *o = &x->items[s], *ly = cnn_jv_get(o, "randomized"), *r = cnn_jv_get(o, "spearman");
                double d = 0;
                ok = o->type == CNN_JV_OBJECT && o->n == 2 && ly && ly->type == CNN_JV_STRING && r && jv_double(r, &d);
                if (ok) {
                    san_layer[s] = ly->str;
                    san_rho[s] = (float)d;
                }
            }
            if (ok) n_san = x->n;
        } else {
            ok = false;
        }
        if (!ok) bad = k;
    }
    int status;
    if (bad)
        status = cnn_error_set(CNN_ERR_INPUT, "a file entry with a field this version does not write so: '%.60s'",
                               bad);
    else if (!e.path || !e.kind || !e.format || !cnn_manifest_path_ok(e.path))
        status = cnn_error_set(CNN_ERR_INPUT, "a file entry without a usable path, kind and format");
    else if ((n_stats != 0 && n_stats != 4) || n_del != n_ins || n_rp != n_rm || n_rp != n_rl ||
             has_road != (n_rp >= 0))
        status = cnn_error_set(CNN_ERR_INPUT, "%s: an entry with part of its statistics, curves or ROAD", e.path);
    else {
        e.has_stats = n_stats == 4;
        e.n_curve = n_del > 0 ? n_del : 0;
        e.deletion = del;
        e.insertion = ins;
        e.n_road = n_rp > 0 ? n_rp : 0;
        e.road_pct = rp;
        e.road_morf = rm;
        e.road_lerf = rl;
        e.n_sanity = n_san;
        e.sanity_layer = san_layer;
        e.sanity_rho = san_rho;
        status = cnn_manifest_add(m, &e);
    }
    free(input);
    free(range);
    free(del);
    free(ins);
    free(rp);
    free(rm);
    free(rl);
    return status;
}

bool cnn_manifest_path_ok(const char *rel)
{
    if (!rel[0] || strlen(rel) > 4096) return false;
    for (const char *c = rel; *c;) {
        /* one component: [A-Za-z0-9._-]+, not starting with '.' */
        const char *end = strchr(c, '/');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 0 || c[0] == '.') return false;
        for (size_t i = 0; i < n; i++) {
            char ch = c[i];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '.' || ch == '_' || ch == '-';
            if (!ok) return false;
        }
        c += n;
        if (*c == '/') c++;
        else break;
        if (!*c) return false; /* trailing slash */
    }
    return true;
}

int cnn_manifest_parse_owned(const char *text, size_t len, cnn_owned *out)
{
    memset(out, 0, sizeof *out);
    cnn_jv root;
    int status = cnn_jv_parse(text, len, &root);
    if (status == CNN_ERR_NOMEM) return status;
    if (status < 0) return cnn_error_prefix(CNN_ERR_INPUT, "not valid JSON");
    const cnn_jv *tool = cnn_jv_get(&root, "tool"), *files = cnn_jv_get(&root, "files");
    long long schema = 0;
    if (!tool || tool->type != CNN_JV_STRING || !cnn_jv_int(cnn_jv_get(&root, "schema"), 1, 1000000, &schema) ||
        !files || files->type != CNN_JV_ARRAY) {
        /* The unmarked manifest of versions before the marker: {"files":
         * [{"path", "kind", "format", ...}]} and nothing else. */
        bool earlier = root.type == CNN_JV_OBJECT && root.n == 1 && files && files->type == CNN_JV_ARRAY;
        for (int i = 0; earlier && i < files->n; i++)
            earlier = cnn_jv_get(&files->items[i], "path") && cnn_jv_get(&files->items[i], "kind") &&
                      cnn_jv_get(&files->items[i], "format");
        cnn_jv_free(&root);
        if (earlier)
            return cnn_error_set(CNN_ERR_INPUT, "an earlier version's, which does not record the sizes and times of "
                                                "the files it wrote");
        return cnn_error_set(CNN_ERR_INPUT, "no \"tool\": \"%s\" marker with a schema and files", CNN_MANIFEST_TOOL);
    }
    if (strcmp(tool->str, CNN_MANIFEST_TOOL) != 0) {
        char name[64];
        snprintf(name, sizeof name, "%s", tool->str);
        for (char *c = name; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        cnn_jv_free(&root);
        return cnn_error_set(CNN_ERR_INPUT, "written by another tool ('%s')", name);
    }
    if (schema > CNN_MANIFEST_SCHEMA) {
        cnn_jv_free(&root);
        return cnn_error_set(CNN_ERR_INPUT, "schema %lld is newer than this version's %d (a newer cnnviz-cl wrote it)",
                             schema, CNN_MANIFEST_SCHEMA);
    }
    out->f = cnn_calloc((size_t)files->n + 1, sizeof *out->f);
    if (!out->f) {
        cnn_jv_free(&root);
        return CNN_ERR_NOMEM;
    }
    for (int i = 0; i < files->n; i++) {
        const cnn_jv *e = &files->items[i], *path = cnn_jv_get(e, "path"), *mt = cnn_jv_get(e, "mtime");
        long long bytes, sec, nsec;
        bool ok = path && path->type == CNN_JV_STRING && cnn_manifest_path_ok(path->str) &&
                  strcmp(path->str, "manifest.json") != 0 &&
                  cnn_jv_int(cnn_jv_get(e, "bytes"), 0, (1LL << 53), &bytes) && mt && mt->type == CNN_JV_ARRAY &&
                  mt->n == 2 && cnn_jv_int(&mt->items[0], -(1LL << 53), (1LL << 53), &sec) &&
                  cnn_jv_int(&mt->items[1], 0, 999999999, &nsec);
        if (!ok) {
            out->skipped++;
            continue;
        }
        cnn_owned_file *f = &out->f[out->n];
        if (!(f->path = cnn_strdup(path->str))) {
            cnn_jv_free(&root);
            cnn_owned_free(out);
            return CNN_ERR_NOMEM;
        }
        f->bytes = bytes;
        f->mtime_s = sec;
        f->mtime_ns = nsec;
        out->n++;
    }
    cnn_jv_free(&root);
    return CNN_OK;
}

void cnn_owned_free(cnn_owned *o)
{
    for (int i = 0; i < o->n; i++) free(o->f[i].path);
    free(o->f);
    memset(o, 0, sizeof *o);
}
