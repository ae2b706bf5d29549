/* The files of a run beside the taps' PNGs: raw tensors, predictions,
 * the Chrome trace, the report, and the output folder that publishes them
 * (io/outdir.h). */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/npy.h"
#include "pipeline/merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cnn_job_write_npy(cnn_job *s, const char *rel, const float *data, const int64_t *shape, int ndim,
                      const char *kind, const char *role, const char *layer, const char *input)
{
    char *path = cnn_path_join(s->wdir, rel);
    if (!path) return CNN_ERR_NOMEM;
    char *dir = cnn_path_dir(path);
    int status = dir ? cnn_mkdirs(dir, 0755) : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_npy_write_f32(path, data, shape, ndim);
    free(dir);
    free(path);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = (char *)rel, .kind = (char *)kind, .role = (char *)role, .layer = (char *)layer,
                            .input = (char *)input, .channel = -1, .format = "npy", .ndim = ndim};
    for (int i = 0; i < ndim; i++) e.shape[i] = shape[i];
    return cnn_manifest_add(&s->manifest, &e);
}

int cnn_job_write_json(cnn_job *s, const char *rel, cnn_json *j, const char *kind, const char *role,
                       const char *layer)
{
    return cnn_job_write_json_of(s, rel, j, kind, role, layer, NULL);
}

int cnn_job_write_json_of(cnn_job *s, const char *rel, cnn_json *j, const char *kind, const char *role,
                          const char *layer, const char *input)
{
    char *path = cnn_path_join(s->wdir, rel);
    char *dir = path ? cnn_path_dir(path) : NULL;
    int status = dir ? cnn_mkdirs(dir, 0755) : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_json_write_file(j, path);
    free(dir);
    free(path);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = (char *)rel, .kind = (char *)kind, .role = (char *)role, .layer = (char *)layer,
                            .input = (char *)input, .channel = -1, .format = "json"};
    return cnn_manifest_add(&s->manifest, &e);
}

/* Appends one CSV row; fields with a comma, quote or newline are quoted. */
int cnn_job_csv_append(cnn_job *s, const char *input, int index, const char *label, double prob)
{
    char row[2048];
    size_t n = 0;
    const char *fields[2] = {input, label};
    for (int f = 0; f < 2; f++) {
        const char *v = fields[f];
        bool quote = strpbrk(v, ",\"\n\r") != NULL;
        if (quote && n < sizeof row) row[n++] = '"';
        for (; *v && n + 2 < sizeof row; v++) {
            if (*v == '"') row[n++] = '"';
            row[n++] = *v;
        }
        if (quote && n < sizeof row) row[n++] = '"';
        if (f == 0) n += (size_t)snprintf(row + n, sizeof row - n, ",%d,", index);
    }
    char pb[32];
    n += (size_t)snprintf(row + n, sizeof row - n, ",%s\n", cnn_job_fmt_prob(prob, 6, pb, sizeof pb));
    if (n >= sizeof row) n = sizeof row - 1;
    return cnn_job_csv_raw(s, row, n);
}

int cnn_job_csv_raw(cnn_job *s, const char *row, size_t n)
{
    if (s->csv_len + n + 1 > s->csv_cap) {
        size_t cap = s->csv_cap ? s->csv_cap * 2 : 4096;
        while (cap < s->csv_len + n + 1) cap *= 2;
        char *p = cnn_realloc(s->csv, cap);
        if (!p) return CNN_ERR_NOMEM;
        s->csv = p;
        s->csv_cap = cap;
    }
    memcpy(s->csv + s->csv_len, row, n);
    s->csv_len += n;
    return CNN_OK;
}

/* Chrome trace (chrome://tracing, Perfetto) of the last forward pass: the
 * layers one after another, as the profiled run executed them. */
int cnn_job_write_trace(cnn_job *s)
{
    const cnn_graph *g = &s->l.graph;
    cnn_json j;
    cnn_json_init(&j, false);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "traceEvents");
    cnn_json_array_begin(&j);
    double ts = 0;
    for (int i = 0; i < g->n; i++) {
        if (!s->net.plan.computes[i]) continue;
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "name");
        cnn_json_string(&j, g->layers[i].spec->name);
        cnn_json_key(&j, "cat");
        cnn_json_string(&j, cnn_op_name(g->layers[i].spec->op));
        cnn_json_key(&j, "ph");
        cnn_json_string(&j, "X");
        cnn_json_key(&j, "ts");
        cnn_json_number(&j, ts * 1000.0);
        cnn_json_key(&j, "dur");
        cnn_json_number(&j, s->net.layer_ms[i] * 1000.0);
        cnn_json_key(&j, "pid");
        cnn_json_int(&j, 1);
        cnn_json_key(&j, "tid");
        cnn_json_int(&j, 1);
        cnn_json_object_end(&j);
        ts += s->net.layer_ms[i];
    }
    cnn_json_array_end(&j);
    cnn_json_object_end(&j);
    char *p = cnn_path_join(s->wdir, "trace.json");
    int status = p ? cnn_json_write_file(&j, p) : CNN_ERR_NOMEM;
    cnn_json_free(&j);
    if (status == CNN_OK) {
        cnn_manifest_entry e = {.path = "trace.json", .kind = "trace", .channel = -1, .format = "json"};
        status = cnn_manifest_add(&s->manifest, &e);
        cnn_logf(CNN_LOG_INFO, "writing %s/trace.json (open in chrome://tracing)", s->out_dir);
    }
    free(p);
    return status;
}

/* Locks and prepares the output folder (see io/outdir.h) and refuses at
 * once when a top-level name the run will write is taken by a file that
 * is not the earlier run's. */
int cnn_job_open_output(cnn_job *s)
{
    CNN_TRY_RET(cnn_outdir_open(&s->od, s->out_dir, s->o.wait_lock, s->o.quiet));
    s->wdir = s->od.stage;
    /* a --stats run writes stats.json and none of the others */
    static const char *const fixed[] = {"predictions.json", "predictions.csv", "index.html", "trace.json", "model"};
    static const char *const stats[] = {"stats.json"};
    const char *const *top = s->o.stats ? stats : fixed;
    int n_top = s->o.stats ? 1 : 5, count = s->o.stats ? 0 : s->end - s->first;
    const char **names = cnn_calloc((size_t)count + (size_t)n_top, sizeof *names);
    bool *folder = cnn_calloc((size_t)count + (size_t)n_top, sizeof *folder);
    int status = names && folder ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        for (int i = 0; i < n_top; i++) {
            names[i] = top[i];
            folder[i] = top[i] == fixed[4];
        }
        for (int i = 0; i < count; i++) {
            names[n_top + i] = s->stems[s->first + i];
            folder[n_top + i] = true;
        }
        status = cnn_outdir_check_names(&s->od, names, folder, n_top + count);
    }
    free(names);
    free(folder);
    return status;
}

typedef struct stem_at {
    const char *stem;
    int input;
} stem_at;

static int cmp_stem(const void *a, const void *b)
{
    return strcmp(((const stem_at *)a)->stem, ((const stem_at *)b)->stem);
}

/* The files in input order whatever the batches (a batch's gradient maps
 * are drawn before its taps): the files of no input first (the model's),
 * then each input's, as a run of batch 1 lists them. */
static int order_files(cnn_job *s)
{
    int count = s->end - s->first;
    int *group = cnn_malloc(((size_t)s->manifest.n + 1) * sizeof *group);
    stem_at *sorted = cnn_malloc(((size_t)count + 1) * sizeof *sorted);
    int status = group && sorted ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        for (int i = 0; i < count; i++) sorted[i] = (stem_at){s->stems[s->first + i], s->first + i};
        qsort(sorted, (size_t)count, sizeof *sorted, cmp_stem);
        for (int i = 0; i < s->manifest.n; i++) {
            const char *path = s->manifest.e[i].path, *slash = strchr(path, '/');
            char top[256];
            group[i] = -1;
            if (!slash || (size_t)(slash - path) >= sizeof top) continue;
            memcpy(top, path, (size_t)(slash - path));
            top[slash - path] = '\0';
            stem_at key = {top, 0};
            const stem_at *hit = count ? bsearch(&key, sorted, (size_t)count, sizeof *sorted, cmp_stem) : NULL;
            if (hit) group[i] = hit->input;
        }
        status = cnn_manifest_order(&s->manifest, group);
    }
    free(group);
    free(sorted);
    return status;
}

void cnn_job_hashes(const cnn_job *s, char model[17], char list[17])
{
    uint64_t h = CNN_HASH64_INIT;
    for (int k = 0; k < s->inputs.n; k++) h = cnn_hash64(h, s->inputs.paths[k], strlen(s->inputs.paths[k]) + 1);
    snprintf(model, 17, "%016llx", (unsigned long long)s->l.hash);
    snprintf(list, 17, "%016llx", (unsigned long long)h);
}

/* The run's record in the manifest: what ran (the pipeline and weights by
 * hash, the options that change the files), on which inputs (the list's
 * length and hash, the shard), and what the report shows beside the files
 * (layers, notes), so that `cnnviz-cl merge` can check shards against each
 * other and write the report of the whole. */
static int describe_run(cnn_job *s)
{
    const cnn_graph *g = &s->l.graph;
    cnn_json j;
    cnn_json_init(&j, false);
    char model[17], list[17];
    cnn_job_hashes(s, model, list);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "model");
    cnn_json_string(&j, model);
    cnn_json_path(&j, "config", s->o.config);
    cnn_json_key(&j, "title");
    cnn_json_string(&j, s->l.pipe.model_name ? s->l.pipe.model_name : "model");
    const cnn_job *d = s->primary ? s->primary : s; /* several devices: the first one's layers and notes */
    char device[600];
    snprintf(device, sizeof device, "%s (%s)", s->cl.device_name, s->cl.platform_name);
    cnn_json_key(&j, "device");
    cnn_json_string(&j, s->devices ? s->devices : device);
    cnn_json_key(&j, "inputs");
    cnn_json_int(&j, s->inputs.n);
    cnn_json_key(&j, "input_list");
    cnn_json_string(&j, list);
    if (s->o.shard_count) {
        cnn_json_key(&j, "shard");
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "index");
        cnn_json_int(&j, s->o.shard_index);
        cnn_json_key(&j, "count");
        cnn_json_int(&j, s->o.shard_count);
        cnn_json_key(&j, "first");
        cnn_json_int(&j, s->first);
        cnn_json_key(&j, "end");
        cnn_json_int(&j, s->end);
        cnn_json_object_end(&j);
    }
    if (s->n_skipped) {
        cnn_json_key(&j, "skipped");
        cnn_json_array_begin(&j);
        for (int i = 0; i < s->n_skipped; i++) cnn_json_int(&j, s->skipped[i]);
        cnn_json_array_end(&j);
    }
    if (s->nonfinite_inputs) {
        cnn_json_key(&j, "nonfinite_inputs");
        cnn_json_int(&j, s->nonfinite_inputs);
    }
    cnn_json_key(&j, "settings");
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "taps");
    cnn_json_array_begin(&j);
    for (int t = 0; t < s->n_taps; t++) {
        char tap[400];
        snprintf(tap, sizeof tap, "%s:%s", s->taps[t].layer_name, s->taps[t].kind_name);
        cnn_json_string(&j, tap);
    }
    cnn_json_array_end(&j);
    cnn_json_key(&j, "class");
    cnn_json_string(&j, s->o.cls);
    cnn_json_key(&j, "score");
    cnn_json_string(&j, s->o.score);
    cnn_json_key(&j, "curves");
    if (s->o.curves >= 0) cnn_json_int(&j, s->o.curves);
    else cnn_json_null(&j);
    cnn_json_key(&j, "sanity");
    cnn_json_int(&j, s->o.sanity);
    cnn_json_key(&j, "road");
    if (s->o.road >= 0) cnn_json_bool(&j, s->o.road != 0);
    else cnn_json_null(&j);
    cnn_json_key(&j, "top");
    cnn_json_int(&j, s->o.top ? s->o.top : s->l.pipe.top);
    cnn_json_key(&j, "npy");
    cnn_json_bool(&j, s->o.npy);
    cnn_json_key(&j, "png_level");
    cnn_json_int(&j, s->o.png_level >= 0 ? s->o.png_level : s->l.pipe.png_level);
    cnn_json_key(&j, "batch");
    cnn_json_int(&j, s->o.batch);
    cnn_json_key(&j, "report");
    cnn_json_bool(&j, s->l.pipe.report && !s->o.no_report);
    if (s->o.stats) {
        cnn_json_key(&j, "stats");
        cnn_json_bool(&j, true);
    }
    cnn_json_object_end(&j);
    cnn_json_key(&j, "layers");
    cnn_json_array_begin(&j);
    for (int i = 0; i < g->n; i++) {
        const cnn_layer *ly = &g->layers[i];
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "name");
        cnn_json_string(&j, ly->spec->name);
        cnn_json_key(&j, "op");
        cnn_json_string(&j, cnn_op_name(ly->spec->op));
        cnn_json_key(&j, "shape");
        cnn_json_array_begin(&j);
        cnn_json_int(&j, ly->c);
        if (!ly->flat) {
            cnn_json_int(&j, ly->h);
            cnn_json_int(&j, ly->w);
        }
        cnn_json_array_end(&j);
        cnn_json_key(&j, "params");
        cnn_json_int(&j, (long long)ly->params);
        cnn_json_key(&j, "macs");
        cnn_json_int(&j, (long long)ly->macs);
        if (!d->net.plan.computes[i]) {
            cnn_json_key(&j, "fused");
            cnn_json_bool(&j, true);
        }
        cnn_json_object_end(&j);
    }
    cnn_json_array_end(&j);
    cnn_json_key(&j, "notes");
    cnn_json_array_begin(&j);
    for (int i = 0; i < d->viz.n_notes; i++) cnn_json_string(&j, d->viz.notes[i]);
    if (g->n_nonfinite) {
        char note[256];
        snprintf(note, sizeof note, "%d weight tensor%s hold%s NaN or Inf (the first: %.120s)", g->n_nonfinite,
                 g->n_nonfinite == 1 ? "" : "s", g->n_nonfinite == 1 ? "s" : "", g->nonfinite[0].tensor);
        cnn_json_string(&j, note);
    }
    cnn_json_array_end(&j);
    cnn_json_object_end(&j);
    int status = j.failed ? CNN_ERR_NOMEM : cnn_manifest_set_run(&s->manifest, j.buf, j.len);
    cnn_json_free(&j);
    return status;
}

/* The run's last files, then the commit that publishes everything. */
int cnn_job_publish(cnn_job *s, bool report)
{
    CNN_TRY_RET(order_files(s));
    CNN_TRY_RET(describe_run(s));
    if (s->o.stats) {
        CNN_TRY_RET(cnn_job_write_stats(s));
        return cnn_outdir_commit(&s->od, &s->manifest);
    }
    CNN_TRY_RET(cnn_write_predictions(s->wdir, &s->manifest, &s->preds, s->csv ? s->csv : "", s->csv_len));
    if (report)
        CNN_TRY_RET(cnn_report_of_run(s->wdir, &s->manifest, s->rin, s->n_rin,
                                      s->o.profile && s->net.layer_ms ? s->net.layer_ms : NULL));
    /* Everything is written: publish it (the earlier run's files stay
     * until here, and whatever failed before left them as they were). */
    return cnn_outdir_commit(&s->od, &s->manifest);
}
