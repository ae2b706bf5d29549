/* The files of a run beside the taps' PNGs: raw tensors, predictions,
 * the Chrome trace, the report, and the output folder that publishes them
 * (io/outdir.h). */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/job_impl.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/npy.h"

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

static int write_report(cnn_job *s)
{
    const cnn_graph *g = &s->l.graph;
    cnn_report_layer *layers = cnn_calloc((size_t)g->n, sizeof *layers);
    if (!layers) return CNN_ERR_NOMEM;
    for (int i = 0; i < g->n; i++) {
        const cnn_layer *ly = &g->layers[i];
        layers[i] = (cnn_report_layer){ly->spec->name, cnn_op_name(ly->spec->op), ly->c, ly->h, ly->w, ly->flat,
                                       (long long)ly->params, (long long)ly->macs,
                                       s->o.profile && s->net.layer_ms ? s->net.layer_ms[i] : -1.0,
                                       !s->net.plan.computes[i]};
    }
    char device[600];
    snprintf(device, sizeof device, "%s (%s)", s->cl.device_name, s->cl.platform_name);
    /* The taps' notes, then what the warnings of NaN and Inf said. */
    const char **notes = cnn_calloc((size_t)s->viz.n_notes + 2, sizeof *notes);
    if (!notes) {
        free(layers);
        return CNN_ERR_NOMEM;
    }
    int n_notes = 0;
    for (int i = 0; i < s->viz.n_notes; i++) notes[n_notes++] = s->viz.notes[i];
    char wnote[256], onote[256];
    if (g->n_nonfinite) {
        snprintf(wnote, sizeof wnote, "%d weight tensor%s hold%s NaN or Inf (the first: %.120s)", g->n_nonfinite,
                 g->n_nonfinite == 1 ? "" : "s", g->n_nonfinite == 1 ? "s" : "", g->nonfinite[0].tensor);
        notes[n_notes++] = wnote;
    }
    if (s->nonfinite_inputs) {
        snprintf(onote, sizeof onote, "the network's output holds NaN or Inf for %d of %d inputs", s->nonfinite_inputs,
                 s->n_rin);
        notes[n_notes++] = onote;
    }
    cnn_report r = {.title = s->l.pipe.model_name ? s->l.pipe.model_name : "model", .config = s->o.config,
                    .device = device, .files = &s->manifest, .inputs = s->rin, .n_inputs = s->n_rin,
                    .layers = layers, .n_layers = g->n, .notes = notes, .n_notes = n_notes};
    char *p = cnn_path_join(s->wdir, "index.html");
    int status = p ? cnn_report_write(p, &r) : CNN_ERR_NOMEM;
    free(p);
    free(layers);
    free(notes);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = "index.html", .kind = "report", .channel = -1, .format = "html"};
    return cnn_manifest_add(&s->manifest, &e);
}

/* Locks and prepares the output folder (see io/outdir.h) and refuses at
 * once when a top-level name the run will write is taken by a file that
 * is not the earlier run's. */
int cnn_job_open_output(cnn_job *s)
{
    CNN_TRY_RET(cnn_outdir_open(&s->od, s->out_dir, s->o.wait_lock, s->o.quiet));
    s->wdir = s->od.stage;
    enum { FIXED = 5 };
    static const char *const fixed[FIXED] = {"predictions.json", "predictions.csv", "index.html", "trace.json",
                                             "model"};
    const char **names = cnn_calloc((size_t)s->inputs.n + FIXED, sizeof *names);
    bool *folder = cnn_calloc((size_t)s->inputs.n + FIXED, sizeof *folder);
    int status = names && folder ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) {
        for (int i = 0; i < FIXED; i++) {
            names[i] = fixed[i];
            folder[i] = i == FIXED - 1;
        }
        for (int i = 0; i < s->inputs.n; i++) {
            names[FIXED + i] = s->stems[i];
            folder[FIXED + i] = true;
        }
        status = cnn_outdir_check_names(&s->od, names, folder, FIXED + s->inputs.n);
    }
    free(names);
    free(folder);
    return status;
}

/* The run's last files, then the commit that publishes everything. */
int cnn_job_publish(cnn_job *s, bool report)
{
    char *p = cnn_path_join(s->wdir, "predictions.json");
    int status = p ? cnn_json_write_file(&s->preds, p) : CNN_ERR_NOMEM;
    free(p);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = "predictions.json", .kind = "predictions", .channel = -1, .format = "json"};
    CNN_TRY_RET(cnn_manifest_add(&s->manifest, &e));
    static const char header[] = "input,top1_index,top1_label,top1_prob\n";
    char *csv = cnn_malloc(sizeof header + s->csv_len);
    if (!csv) return CNN_ERR_NOMEM;
    memcpy(csv, header, sizeof header - 1);
    if (s->csv_len) memcpy(csv + sizeof header - 1, s->csv, s->csv_len);
    p = cnn_path_join(s->wdir, "predictions.csv");
    status = p ? cnn_file_write_atomic(p, csv, sizeof header - 1 + s->csv_len) : CNN_ERR_NOMEM;
    free(p);
    free(csv);
    if (status < 0) return status;
    e.path = "predictions.csv";
    e.format = "csv";
    CNN_TRY_RET(cnn_manifest_add(&s->manifest, &e));
    if (report) CNN_TRY_RET(write_report(s));
    /* Everything is written: publish it (the earlier run's files stay
     * until here, and whatever failed before left them as they were). */
    return cnn_outdir_commit(&s->od, &s->manifest);
}
