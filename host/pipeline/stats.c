/* Global-range statistics of parts (pipeline/stats.h): the file, read,
 * written and combined. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/stats.h"
#include "core/error.h"
#include "core/util.h"
#include "io/json.h"
#include "io/jsonparse.h"
#include "io/manifest.h"
#include "viz/vizops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cnn_stats_add(cnn_stats *st, const char *layer, bool clip, double min, double max, bool any, const uint32_t *hist,
                  float lo, float hi)
{
    cnn_tap_stats *more = cnn_realloc(st->taps, ((size_t)st->n + 1) * sizeof *more);
    if (!more) return CNN_ERR_NOMEM;
    st->taps = more;
    cnn_tap_stats *t = &st->taps[st->n];
    *t = (cnn_tap_stats){.layer = cnn_strdup(layer), .min = min, .max = max, .any = any, .clip = clip,
                         .hist_lo = lo, .hist_hi = hi};
    if (hist && (t->hist = cnn_malloc(CNN_VIZ_BINS * sizeof *t->hist)) != NULL)
        for (int b = 0; b < CNN_VIZ_BINS; b++) t->hist[b] = hist[b];
    st->n++;
    return t->layer && (!hist || t->hist) ? CNN_OK : CNN_ERR_NOMEM;
}

int cnn_stats_text(const cnn_stats *st, char **text, size_t *len)
{
    cnn_json j;
    cnn_json_init(&j, true);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "tool");
    cnn_json_string(&j, CNN_MANIFEST_TOOL);
    cnn_json_key(&j, "kind");
    cnn_json_string(&j, "stats");
    cnn_json_key(&j, "version");
    cnn_json_string(&j, CNN_VERSION_STRING);
    cnn_json_key(&j, "model");
    cnn_json_string(&j, st->model);
    cnn_json_key(&j, "input_list");
    cnn_json_string(&j, st->input_list);
    cnn_json_key(&j, "inputs");
    cnn_json_int(&j, st->inputs);
    cnn_json_key(&j, "covers");
    cnn_json_array_begin(&j);
    cnn_json_int(&j, st->first);
    cnn_json_int(&j, st->end);
    cnn_json_array_end(&j);
    cnn_json_key(&j, "taps");
    cnn_json_array_begin(&j);
    for (int i = 0; i < st->n; i++) {
        const cnn_tap_stats *t = &st->taps[i];
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "layer");
        cnn_json_string(&j, t->layer);
        cnn_json_key(&j, "clip");
        cnn_json_bool(&j, t->clip);
        cnn_json_key(&j, "any");
        cnn_json_bool(&j, t->any);
        cnn_json_key(&j, "min");
        cnn_json_number(&j, t->any ? t->min : NAN);
        cnn_json_key(&j, "max");
        cnn_json_number(&j, t->any ? t->max : NAN);
        if (t->hist) {
            cnn_json_key(&j, "hist_range");
            cnn_json_array_begin(&j);
            cnn_json_number(&j, t->hist_lo);
            cnn_json_number(&j, t->hist_hi);
            cnn_json_array_end(&j);
            cnn_json_key(&j, "hist");
            /* 2048 numbers: one line, not one each */
            j.pretty = false;
            cnn_json_array_begin(&j);
            for (int b = 0; b < CNN_VIZ_BINS; b++) cnn_json_int(&j, (long long)t->hist[b]);
            cnn_json_array_end(&j);
            j.pretty = true;
        }
        cnn_json_object_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_object_end(&j);
    if (j.failed || !j.buf) {
        cnn_json_free(&j);
        return CNN_ERR_NOMEM;
    }
    /* a text file: a newline at the end */
    char *t = cnn_realloc(j.buf, j.len + 2);
    if (!t) {
        cnn_json_free(&j);
        return CNN_ERR_NOMEM;
    }
    t[j.len] = '\n';
    t[j.len + 1] = '\0';
    *text = t;
    *len = j.len + 1;
    return CNN_OK;
}

static bool jv_float_or_nan(const cnn_jv *v, double *out)
{
    if (v && v->type == CNN_JV_NULL) *out = NAN;
    else if (v && v->type == CNN_JV_NUMBER) *out = v->num;
    else return false;
    return true;
}

int cnn_stats_parse(const char *name, const char *text, size_t len, cnn_stats *st)
{
    memset(st, 0, sizeof *st);
    cnn_jv root;
    int status = cnn_jv_parse(text, len, &root);
    if (status == CNN_ERR_INPUT) return cnn_error_prefix(status, "%s: not valid JSON", name);
    if (status < 0) return status;
    const char *tool = cnn_jv_str(&root, "tool"), *kind = cnn_jv_str(&root, "kind");
    const char *model = cnn_jv_str(&root, "model"), *list = cnn_jv_str(&root, "input_list");
    const cnn_jv *covers = cnn_jv_get(&root, "covers"), *taps = cnn_jv_get(&root, "taps");
    long long inputs = 0, first = 0, end = 0;
    bool ok = tool && !strcmp(tool, CNN_MANIFEST_TOOL) && kind && !strcmp(kind, "stats");
    if (!ok) {
        cnn_jv_free(&root);
        return cnn_error_set(CNN_ERR_INPUT, "%s: not a statistics file of cnnviz-cl (run --stats or merge --stats "
                             "writes one)", name);
    }
    ok = model && strlen(model) == 16 && list && strlen(list) == 16 &&
         cnn_jv_int(cnn_jv_get(&root, "inputs"), 0, 1 << 30, &inputs) && covers && covers->type == CNN_JV_ARRAY &&
         covers->n == 2 && cnn_jv_int(&covers->items[0], 0, inputs, &first) &&
         cnn_jv_int(&covers->items[1], first, inputs, &end) && taps && taps->type == CNN_JV_ARRAY;
    if (ok) {
        snprintf(st->model, sizeof st->model, "%s", model);
        snprintf(st->input_list, sizeof st->input_list, "%s", list);
        st->inputs = (int)inputs;
        st->first = (int)first;
        st->end = (int)end;
    }
    uint32_t *hist = cnn_malloc(CNN_VIZ_BINS * sizeof *hist);
    if (!hist) status = CNN_ERR_NOMEM;
    for (int i = 0; ok && status == CNN_OK && i < taps->n; i++) {
        const cnn_jv *t = &taps->items[i], *any = cnn_jv_get(t, "any"), *h = cnn_jv_get(t, "hist");
        const cnn_jv *clip = cnn_jv_get(t, "clip");
        const cnn_jv *hr = cnn_jv_get(t, "hist_range");
        const char *layer = cnn_jv_str(t, "layer");
        double mn, mx, lo = 0, hi = 0;
        ok = layer && any && any->type == CNN_JV_BOOL && clip && clip->type == CNN_JV_BOOL &&
             jv_float_or_nan(cnn_jv_get(t, "min"), &mn) && jv_float_or_nan(cnn_jv_get(t, "max"), &mx) &&
             (!any->b || (isfinite(mn) && isfinite(mx) && mn <= mx));
        if (ok && h) {
            ok = h->type == CNN_JV_ARRAY && h->n == CNN_VIZ_BINS && hr && hr->type == CNN_JV_ARRAY && hr->n == 2 &&
                 jv_float_or_nan(&hr->items[0], &lo) && jv_float_or_nan(&hr->items[1], &hi);
            for (int b = 0; ok && b < CNN_VIZ_BINS; b++) {
                long long c;
                ok = cnn_jv_int(&h->items[b], 0, UINT32_MAX, &c);
                hist[b] = (uint32_t)c;
            }
        }
        if (ok) status = cnn_stats_add(st, layer, clip->b, mn, mx, any->b, h ? hist : NULL, (float)lo, (float)hi);
    }
    free(hist);
    cnn_jv_free(&root);
    if (status == CNN_OK && !ok) status = cnn_error_set(CNN_ERR_INPUT, "%s: not a statistics file as cnnviz-cl %s "
                                                        "writes one", name, CNN_VERSION_STRING);
    if (status < 0) cnn_stats_free(st);
    return status;
}

const cnn_tap_stats *cnn_stats_find(const cnn_stats *st, const char *layer)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->taps[i].layer, layer)) return &st->taps[i];
    return NULL;
}

int cnn_stats_combine(cnn_stats *acc, const cnn_stats *part, const char *part_name)
{
    if (!acc->taps && !acc->n && !acc->model[0]) {
        *acc = *part;
        acc->taps = NULL;
        acc->n = 0;
        for (int i = 0; i < part->n; i++) {
            const cnn_tap_stats *t = &part->taps[i];
            CNN_TRY_RET(cnn_stats_add(acc, t->layer, t->clip, t->min, t->max, t->any, NULL, t->hist_lo, t->hist_hi));
            if (t->hist) {
                if (!(acc->taps[i].hist = cnn_malloc(CNN_VIZ_BINS * sizeof *t->hist))) return CNN_ERR_NOMEM;
                memcpy(acc->taps[i].hist, t->hist, CNN_VIZ_BINS * sizeof *t->hist);
            }
        }
        return CNN_OK;
    }
    if (part->n != acc->n)
        return cnn_error_set(CNN_ERR_INPUT, "%s: statistics of %d taps, the other parts' of %d", part_name, part->n,
                             acc->n);
    for (int i = 0; i < acc->n; i++) {
        cnn_tap_stats *a = &acc->taps[i];
        const cnn_tap_stats *b = &part->taps[i];
        if (strcmp(a->layer, b->layer) != 0 || a->clip != b->clip)
            return cnn_error_set(CNN_ERR_INPUT, "%s: statistics of layer '%s' where the other parts have '%s'",
                                 part_name, b->layer, a->layer);
        if (!a->hist != !b->hist || (a->hist && (a->hist_lo != b->hist_lo || a->hist_hi != b->hist_hi)))
            return cnn_error_set(CNN_ERR_INPUT, "%s: the histogram of layer '%s' is %s the other parts': each part of "
                                 "the second round takes the same --ranges FILE", part_name, b->layer,
                                 a->hist && b->hist ? "over other bins than" : !b->hist ? "missing, unlike" :
                                                                                         "there, unlike");
        if (b->any) {
            a->min = a->any ? fmin(a->min, b->min) : b->min;
            a->max = a->any ? fmax(a->max, b->max) : b->max;
            a->any = true;
        }
        for (int k = 0; a->hist && k < CNN_VIZ_BINS; k++)
            if ((a->hist[k] += b->hist[k]) > UINT32_MAX)
                return cnn_error_set(CNN_ERR_INPUT, "%s: layer '%s' has more values in one bin than a histogram "
                                     "counts (2^32): too many inputs for a percentile clip", part_name, b->layer);
    }
    if (part->first < acc->first) acc->first = part->first;
    if (part->end > acc->end) acc->end = part->end;
    return CNN_OK;
}

void cnn_stats_free(cnn_stats *st)
{
    for (int i = 0; i < st->n; i++) {
        free(st->taps[i].layer);
        free(st->taps[i].hist);
    }
    free(st->taps);
    memset(st, 0, sizeof *st);
}
