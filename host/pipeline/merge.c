/* `cnnviz-cl merge` (pipeline/merge.h): the parts' manifests read and
 * checked against each other, their files put into the output folder's
 * stage, predictions and report written for the whole, one commit.
 *
 * One file: the checks of the parts (same run, inputs covered once, global
 * statistics) and the joining all read the same loaded parts, and every
 * refusal has to happen before the first file is taken. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/merge.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "io/json.h"
#include "io/jsonparse.h"
#include "io/outdir.h"
#include "pipeline/job.h"
#include "pipeline/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* The report and predictions: written alike by run and merge             */

int cnn_report_of_run(const char *wdir, cnn_manifest *m, const cnn_report_input *in, int n_in,
                      const double *layer_ms)
{
    const cnn_jv *run = m->run, *layers = cnn_jv_get(run, "layers"), *notes = cnn_jv_get(run, "notes");
    int n_layers = layers && layers->type == CNN_JV_ARRAY ? layers->n : 0;
    int n_given = notes && notes->type == CNN_JV_ARRAY ? notes->n : 0;
    cnn_report_layer *ly = cnn_calloc((size_t)n_layers + 1, sizeof *ly);
    const char **nt = cnn_calloc((size_t)n_given + 2, sizeof *nt);
    char *config = cnn_jv_path(run, "config");
    int status = ly && nt ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; i < n_layers && status == CNN_OK; i++) {
        const cnn_jv *l = &layers->items[i], *shape = cnn_jv_get(l, "shape"), *fused = cnn_jv_get(l, "fused");
        long long dim[3] = {0, 1, 1}, params = 0, macs = 0;
        int nd = shape && shape->type == CNN_JV_ARRAY && (shape->n == 1 || shape->n == 3) ? shape->n : 0;
        bool ok = nd && cnn_jv_str(l, "name") && cnn_jv_str(l, "op") &&
                  cnn_jv_int(cnn_jv_get(l, "params"), 0, 1LL << 53, &params) &&
                  cnn_jv_int(cnn_jv_get(l, "macs"), 0, 1LL << 53, &macs);
        for (int d = 0; ok && d < nd; d++) ok = cnn_jv_int(&shape->items[d], 0, 1 << 30, &dim[d]);
        if (!ok) {
            status = cnn_error_set(CNN_ERR_INPUT, "manifest.json: run.layers[%d] is not a layer as run writes one", i);
            break;
        }
        ly[i] = (cnn_report_layer){cnn_jv_str(l, "name"), cnn_jv_str(l, "op"), (int)dim[0], (int)dim[1], (int)dim[2],
                                   nd == 1, params, macs, layer_ms ? layer_ms[i] : -1.0,
                                   fused && fused->type == CNN_JV_BOOL && fused->b};
    }
    int n_notes = 0;
    for (int i = 0; i < n_given && status == CNN_OK; i++)
        if (notes->items[i].type == CNN_JV_STRING) nt[n_notes++] = notes->items[i].str;
    long long nonfinite = 0;
    char onote[160];
    if (status == CNN_OK && cnn_jv_int(cnn_jv_get(run, "nonfinite_inputs"), 1, 1LL << 31, &nonfinite)) {
        snprintf(onote, sizeof onote, "the network's output holds NaN or Inf for %lld of %d inputs", nonfinite, n_in);
        nt[n_notes++] = onote;
    }
    if (status == CNN_OK) {
        const char *title = cnn_jv_str(run, "title"), *device = cnn_jv_str(run, "device");
        cnn_report r = {.title = title ? title : "model", .config = config ? config : "", .device = device ? device : "",
                        .files = m, .inputs = in, .n_inputs = n_in, .layers = ly, .n_layers = n_layers, .notes = nt,
                        .n_notes = n_notes};
        char *p = cnn_path_join(wdir, "index.html");
        status = p ? cnn_report_write(p, &r) : CNN_ERR_NOMEM;
        free(p);
    }
    free(ly);
    free(nt);
    free(config);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = "index.html", .kind = "report", .channel = -1, .format = "html"};
    return cnn_manifest_add(m, &e);
}

int cnn_write_predictions(const char *wdir, cnn_manifest *m, cnn_json *preds, const char *rows, size_t len)
{
    char *p = cnn_path_join(wdir, "predictions.json");
    int status = p ? cnn_json_write_file(preds, p) : CNN_ERR_NOMEM;
    free(p);
    if (status < 0) return status;
    cnn_manifest_entry e = {.path = "predictions.json", .kind = "predictions", .channel = -1, .format = "json"};
    CNN_TRY_RET(cnn_manifest_add(m, &e));
    static const char header[] = CNN_PREDICTIONS_CSV_HEADER;
    char *csv = cnn_malloc(sizeof header + len);
    if (!csv) return CNN_ERR_NOMEM;
    memcpy(csv, header, sizeof header - 1);
    if (len) memcpy(csv + sizeof header - 1, rows, len);
    p = cnn_path_join(wdir, "predictions.csv");
    status = p ? cnn_file_write_atomic(p, csv, sizeof header - 1 + len) : CNN_ERR_NOMEM;
    free(p);
    free(csv);
    if (status < 0) return status;
    e.path = "predictions.csv";
    e.format = "csv";
    return cnn_manifest_add(m, &e);
}

/* ---------------------------------------------------------------------- */
/* The parts                                                              */

typedef struct part {
    const char *dir;      /* as given */
    int dfd;
    char *text;           /* manifest.json */
    cnn_jv m;
    const cnn_jv *run, *files, *skipped;
    int first, end;       /* its inputs: [first, end) of the list */
    int index, count;     /* --shard index/count; count 0: a whole run */
    int n_done;           /* inputs it wrote (its part less those it could not read) */
} part;

/* "shard 1/4" or "the whole run" for messages. */
static const char *part_name(const part *p, char *buf, size_t size)
{
    if (p->count) snprintf(buf, size, "shard %d/%d", p->index, p->count);
    else snprintf(buf, size, "a run of every input");
    return buf;
}

/* A running cnnviz-cl holds the folder's lock. */
static int check_idle(const part *p)
{
    int fd = openat(p->dfd, ".cnnviz.lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return CNN_OK;
    int r = flock(fd, LOCK_SH | LOCK_NB), e = errno;
    close(fd);
    if (r != 0 && e == EWOULDBLOCK)
        return cnn_error_set(CNN_ERR_USAGE, "%s is in use by a cnnviz-cl run: merge once it has finished", p->dir);
    return CNN_OK;
}

/* An integer field of the run record, in [lo, hi]. */
static bool run_int(const cnn_jv *o, const char *key, long long lo, long long hi, int *out)
{
    long long v;
    if (!cnn_jv_int(cnn_jv_get(o, key), lo, hi, &v)) return false;
    *out = (int)v;
    return true;
}

static int load_part(part *p, const char *dir)
{
    p->dir = dir;
    p->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->dfd < 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: %s", dir, errno == ENOTDIR ? "not a folder" : strerror(errno));
    CNN_TRY_RET(check_idle(p));
    int fd = openat(p->dfd, "manifest.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s: not an output folder of cnnviz-cl (%s)", dir,
                             errno == ENOENT ? "no manifest.json" : "manifest.json cannot be read");
    struct stat st;
    size_t len = 0;
    char *name = cnn_path_join(dir, "manifest.json");
    int status = !name ? CNN_ERR_NOMEM
                 : fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
                     ? cnn_error_set(CNN_ERR_INPUT, "%s: not a regular file", name)
                     : cnn_file_read_fd(fd, name, (long long)st.st_size, 256u << 20, &p->text, &len);
    close(fd);
    if (status == CNN_OK) {
        status = cnn_jv_parse(p->text, len, &p->m);
        if (status == CNN_ERR_INPUT) status = cnn_error_prefix(status, "%s: not valid JSON", name);
    }
    free(name);
    if (status < 0) return status;
    const char *tool = cnn_jv_str(&p->m, "tool"), *version = cnn_jv_str(&p->m, "version");
    long long schema = 0;
    p->run = cnn_jv_get(&p->m, "run");
    p->files = cnn_jv_get(&p->m, "files");
    if (!tool || strcmp(tool, CNN_MANIFEST_TOOL) != 0 || !p->files || p->files->type != CNN_JV_ARRAY ||
        !cnn_jv_int(cnn_jv_get(&p->m, "schema"), 1, 1000000, &schema))
        return cnn_error_set(CNN_ERR_INPUT, "%s: not an output folder of cnnviz-cl (its manifest.json is another "
                             "program's)", dir);
    if (schema != CNN_MANIFEST_SCHEMA || !version || strcmp(version, CNN_VERSION_STRING) != 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s was written by cnnviz-cl %.40s (manifest schema %lld); this is %s: "
                             "merge with the version that ran the parts", dir, version ? version : "?", schema,
                             CNN_VERSION_STRING);
    const cnn_jv *shard = cnn_jv_get(p->run, "shard"), *list = cnn_jv_get(p->run, "layers");
    int total = 0;
    bool ok = p->run && p->run->type == CNN_JV_OBJECT && cnn_jv_str(p->run, "model") &&
              cnn_jv_str(p->run, "input_list") && run_int(p->run, "inputs", 0, 1 << 30, &total) &&
              cnn_jv_get(p->run, "settings") && list && list->type == CNN_JV_ARRAY;
    if (!ok)
        return cnn_error_set(CNN_ERR_INPUT, "%s/manifest.json: no record of the run that wrote it (\"run\"): not "
                             "the output of 'cnnviz-cl run'", dir);
    p->first = 0;
    p->end = total;
    if (shard && !(run_int(shard, "index", 0, 1000000, &p->index) && run_int(shard, "count", 1, 1000000, &p->count) &&
                   p->index < p->count && run_int(shard, "first", 0, total, &p->first) &&
                   run_int(shard, "end", p->first, total, &p->end)))
        return cnn_error_set(CNN_ERR_INPUT, "%s/manifest.json: run.shard is not a part as 'run --shard' records one",
                             dir);
    p->skipped = cnn_jv_get(p->run, "skipped");
    int prev = p->first - 1, k;
    for (int i = 0; p->skipped && i < p->skipped->n; i++) {
        long long v;
        if (p->skipped->type != CNN_JV_ARRAY || !cnn_jv_int(&p->skipped->items[i], prev + 1, p->end - 1, &v))
            return cnn_error_set(CNN_ERR_INPUT, "%s/manifest.json: run.skipped is not a list of its inputs", dir);
        prev = k = (int)v;
    }
    (void)k;
    for (int i = 0; i < p->files->n; i++) {
        const char *path = cnn_jv_str(&p->files->items[i], "path");
        if (!path || !cnn_manifest_path_ok(path))
            return cnn_error_set(CNN_ERR_INPUT, "%s/manifest.json: file entry %d has no usable path", dir, i + 1);
    }
    p->n_done = p->end - p->first - (p->skipped ? p->skipped->n : 0);
    return CNN_OK;
}

/* A value for a message: compact JSON, cut short. */
static void show_value(const cnn_jv *v, char *buf, size_t size)
{
    cnn_json j;
    cnn_json_init(&j, false);
    if (v) cnn_json_value(&j, v);
    snprintf(buf, size, "%.*s%s", (int)(size > 8 ? size - 8 : 0), j.buf ? j.buf : "(none)",
             j.buf && j.len > size - 8 ? "..." : "");
    cnn_json_free(&j);
}

/* The parts ran the same pipeline and weights, options and input list. */
static int check_same_run(const part *a, const part *b)
{
    if (strcmp(cnn_jv_str(a->run, "model"), cnn_jv_str(b->run, "model")) != 0)
        return cnn_error_set(CNN_ERR_INPUT, "%s ran another pipeline or other weights than %s (model hash %s, %s)",
                             b->dir, a->dir, cnn_jv_str(b->run, "model"), cnn_jv_str(a->run, "model"));
    if (!cnn_jv_equal(cnn_jv_get(a->run, "inputs"), cnn_jv_get(b->run, "inputs")) ||
        strcmp(cnn_jv_str(a->run, "input_list"), cnn_jv_str(b->run, "input_list")) != 0) {
        int na = 0, nb = 0;
        run_int(a->run, "inputs", 0, 1 << 30, &na);
        run_int(b->run, "inputs", 0, 1 << 30, &nb);
        return cnn_error_set(CNN_ERR_INPUT, "%s ran on another input list than %s (%d inputs against %d%s): give every "
                             "part the same --input, and let no file come or go between them", b->dir, a->dir, nb, na,
                             na == nb ? ", other names or order" : "");
    }
    const cnn_jv *sa = cnn_jv_get(a->run, "settings"), *sb = cnn_jv_get(b->run, "settings");
    if (cnn_jv_equal(sa, sb)) return CNN_OK;
    const char *key = "settings";
    const cnn_jv *va = sa, *vb = sb;
    for (int i = 0; sb->type == CNN_JV_OBJECT && i < sb->n; i++) {
        const cnn_jv *x = cnn_jv_get(sa, sb->keys[i]);
        if (!x || !cnn_jv_equal(x, &sb->items[i])) {
            key = sb->keys[i];
            va = x;
            vb = &sb->items[i];
            break;
        }
    }
    char x[100], y[100];
    show_value(vb, x, sizeof x);
    show_value(va, y, sizeof y);
    return cnn_error_set(CNN_ERR_INPUT, "%s ran with %s %s, %s with %s: the parts of a run must be run alike", b->dir,
                         key, x, a->dir, y);
}

static int cmp_part(const void *x, const void *y)
{
    const part *a = *(part *const *)x, *b = *(part *const *)y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return (a > b) - (a < b);
}

/* The shards of count N whose inputs meet [lo, hi), as "1/4, 2/4". */
static void shards_meeting(int total, int batch, int count, int lo, int hi, char *buf, size_t size)
{
    size_t n = 0;
    int listed = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && n < size; i++) {
        int a, b;
        cnn_job_shard_range(total, batch, i, count, &a, &b);
        if (a >= hi || b <= lo || a == b) continue;
        if (listed++ == 6) {
            n += (size_t)snprintf(buf + n, size - n, ", ...");
            break;
        }
        n += (size_t)snprintf(buf + n, size - n, "%s%d/%d", listed > 1 ? ", " : "", i, count);
    }
}

/* "inputs 5 to 9" or "input 5" (counted from 0, as the parts count them). */
static const char *inputs_text(int lo, int hi, char *buf, size_t size)
{
    if (hi - lo == 1) snprintf(buf, size, "input %d", lo);
    else snprintf(buf, size, "inputs %d to %d", lo, hi - 1);
    return buf;
}

/* Every input exactly once: the parts, sorted by their first input, tile
 * [0, total). */
static int check_cover(part **sorted, int n, int total, int batch)
{
    char a[64], b[64], r[64];
    /* the same shard twice: the same inputs, so neighbours in the order */
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n && sorted[k]->first == sorted[i]->first && sorted[k]->end == sorted[i]->end; k++)
            if (sorted[i]->count && sorted[i]->count == sorted[k]->count && sorted[i]->index == sorted[k]->index)
                return cnn_error_set(CNN_ERR_INPUT, "%s is given twice: %s and %s", part_name(sorted[i], a, sizeof a),
                                     sorted[i]->dir, sorted[k]->dir);
    int reached = 0;
    const part *last = NULL;
    for (int i = 0; i <= n; i++) {
        const part *p = i < n ? sorted[i] : NULL;
        if (p && p->first == p->end) continue;
        int first = p ? p->first : total;
        if (first > reached) {
            int count = p ? p->count : last ? last->count : 0;
            char which[200] = "";
            if (count) shards_meeting(total, batch, count, reached, first, which, sizeof which);
            return cnn_error_set(CNN_ERR_INPUT, "%s of %d %s in none of the folders given%s%s%s",
                                 inputs_text(reached, first, r, sizeof r), total, first - reached > 1 ? "are" : "is",
                                 which[0] ? ": shard " : "", which,
                                 which[0] ? " missing (not given, or it did not finish)" : "");
        }
        if (p && first < reached) {
            int end = p->end < reached ? p->end : reached;
            return cnn_error_set(CNN_ERR_INPUT, "%s of %d %s in two folders: %s (%s) and %s (%s)",
                                 inputs_text(first, end, r, sizeof r), total, end - first > 1 ? "are" : "is",
                                 last->dir, part_name(last, a, sizeof a), p->dir, part_name(p, b, sizeof b));
        }
        if (p && p->end > reached) {
            reached = p->end;
            last = p;
        }
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------------- */
/* Files                                                                  */

/* Kinds of entries: the model's (written alike by every part), an
 * input's, and the run's own files at the top (predictions, report,
 * trace), which merge writes again or leaves out. */
typedef enum { E_MODEL, E_INPUT, E_TOP } entry_kind;

static entry_kind kind_of(const char *path)
{
    const char *slash = strchr(path, '/');
    if (!slash) return E_TOP;
    return (size_t)(slash - path) == 5 && !strncmp(path, "model", 5) ? E_MODEL : E_INPUT;
}

/* An entry of a part's manifest as the output folder checks it. */
static int owned_of(const part *p, const cnn_jv *e, cnn_owned_file *f)
{
    const cnn_jv *mt = cnn_jv_get(e, "mtime");
    long long bytes, sec, nsec;
    const char *path = cnn_jv_str(e, "path");
    if (!path || !cnn_manifest_path_ok(path) || !cnn_jv_int(cnn_jv_get(e, "bytes"), 0, 1LL << 53, &bytes) || !mt ||
        mt->type != CNN_JV_ARRAY || mt->n != 2 || !cnn_jv_int(&mt->items[0], -(1LL << 53), 1LL << 53, &sec) ||
        !cnn_jv_int(&mt->items[1], 0, 999999999, &nsec))
        return cnn_error_set(CNN_ERR_INPUT, "%s/manifest.json: a file entry without a usable path, size and time",
                             p->dir);
    *f = (cnn_owned_file){(char *)path, bytes, sec, nsec};
    return CNN_OK;
}

/* A file of the run's own (predictions.json, ...) of part p, read after
 * checking that it is the one its manifest lists. */
static int read_listed(const part *p, const char *name, char **text, size_t *len)
{
    cnn_owned_file f = {0};
    for (int i = 0; i < p->files->n && !f.path; i++) {
        const char *path = cnn_jv_str(&p->files->items[i], "path");
        if (path && !strcmp(path, name)) CNN_TRY_RET(owned_of(p, &p->files->items[i], &f));
    }
    if (!f.path) return cnn_error_set(CNN_ERR_INPUT, "%s: its manifest.json lists no %s", p->dir, name);
    int fd = openat(p->dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    bool same = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == f.bytes &&
                st.st_mtim.tv_sec == f.mtime_s && st.st_mtim.tv_nsec == f.mtime_ns;
    char *full = cnn_path_join(p->dir, name);
    int status = !full ? CNN_ERR_NOMEM
                 : !same ? cnn_error_set(CNN_ERR_INPUT, "%s: %s since its run wrote it; run that part again", full,
                                         fd < 0 ? "missing" : "changed")
                         : cnn_file_read_fd(fd, full, (long long)st.st_size, (size_t)1 << 31, text, len);
    if (fd >= 0) close(fd);
    free(full);
    return status;
}

/* Rows of predictions.csv after its header: each ends at a newline outside
 * quotes.  Returns the count, or -1 when the text is not such a file. */
static long csv_rows(const char *text, size_t len, size_t *body)
{
    static const char header[] = CNN_PREDICTIONS_CSV_HEADER;
    if (len < sizeof header - 1 || memcmp(text, header, sizeof header - 1) != 0) return -1;
    *body = sizeof header - 1;
    long rows = 0;
    bool quoted = false;
    for (size_t i = *body; i < len; i++) {
        if (text[i] == '"') quoted = !quoted;
        else if (text[i] == '\n' && !quoted) rows++;
    }
    return quoted || (len > *body && text[len - 1] != '\n') ? -1 : rows;
}

/* One layer's `normalize: global` range: the same in every part, or the
 * parts' images do not compare. */
typedef struct global_range {
    const char *layer, *kind;
    const cnn_jv *range;
    const part *from;
} global_range;

typedef struct merge {
    const cnn_merge_opts *o;
    part *parts;
    part **sorted;
    cnn_outdir od;
    cnn_manifest m;
    global_range *ranges;
    int n_ranges;
    cnn_merge_result *res;
} merge;

static int check_global(merge *g, const part *p, const cnn_jv *e)
{
    const char *norm = cnn_jv_str(e, "normalize");
    const cnn_jv *range = cnn_jv_get(e, "range");
    if (!norm || strcmp(norm, "global") != 0 || !range) return CNN_OK;
    const char *layer = cnn_jv_str(e, "layer"), *kind = cnn_jv_str(e, "kind");
    layer = layer ? layer : "";
    kind = kind ? kind : "";
    for (int i = 0; i < g->n_ranges; i++) {
        global_range *r = &g->ranges[i];
        if (strcmp(r->layer, layer) != 0 || strcmp(r->kind, kind) != 0) continue;
        if (cnn_jv_equal(r->range, range)) return CNN_OK;
        char x[80], y[80];
        show_value(range, x, sizeof x);
        show_value(r->range, y, sizeof y);
        return cnn_error_set(CNN_ERR_INPUT, "%s drew layer '%s' with the global range %s, %s with %s: 'normalize: "
                             "global' ranges over one run's inputs; for parts, gather the range first (run --stats, "
                             "merge --stats, run --ranges: README, global normalisation across parts)",
                             p->dir, layer, x, r->from->dir, y);
    }
    global_range *more = cnn_realloc(g->ranges, ((size_t)g->n_ranges + 1) * sizeof *more);
    if (!more) return CNN_ERR_NOMEM;
    g->ranges = more;
    g->ranges[g->n_ranges++] = (global_range){layer, kind, range, p};
    return CNN_OK;
}

/* Entry e of part p into the stage and the merged manifest. */
static int take_entry(merge *g, const part *p, const cnn_jv *e)
{
    cnn_owned_file f;
    bool copied = false;
    CNN_TRY_RET(owned_of(p, e, &f));
    CNN_TRY_RET(check_global(g, p, e));
    CNN_TRY_RET(cnn_outdir_take_file(&g->od, p->dfd, p->dir, &f, &copied));
    g->res->copied += copied;
    int status = cnn_manifest_add_jv(&g->m, e);
    if (status == CNN_ERR_INPUT) return cnn_error_prefix(status, "%s/manifest.json", p->dir);
    return status;
}

/* The model's files: the first part's, which every other part must have
 * written alike (same paths and sizes). */
static int take_model_files(merge *g)
{
    const part *a = g->sorted[0];
    for (int i = 1; i < g->o->n_parts; i++) {
        const part *b = g->sorted[i];
        int ia = 0, ib = 0;
        for (;;) {
            while (ia < a->files->n && kind_of(cnn_jv_str(&a->files->items[ia], "path")) != E_MODEL) ia++;
            while (ib < b->files->n && kind_of(cnn_jv_str(&b->files->items[ib], "path")) != E_MODEL) ib++;
            if (ia == a->files->n && ib == b->files->n) break;
            const cnn_jv *x = ia < a->files->n ? &a->files->items[ia] : NULL;
            const cnn_jv *y = ib < b->files->n ? &b->files->items[ib] : NULL;
            if (!x || !y || strcmp(cnn_jv_str(x, "path"), cnn_jv_str(y, "path")) != 0 ||
                !cnn_jv_equal(cnn_jv_get(x, "bytes"), cnn_jv_get(y, "bytes")))
                return cnn_error_set(CNN_ERR_INPUT, "%s/%s: the model's files differ between the parts (%s has %s)",
                                     b->dir, y ? cnn_jv_str(y, "path") : "model/", a->dir,
                                     x ? cnn_jv_str(x, "path") : "no such file");
            ia++;
            ib++;
        }
    }
    for (int i = 0; i < a->files->n; i++)
        if (kind_of(cnn_jv_str(&a->files->items[i], "path")) == E_MODEL)
            CNN_TRY_RET(take_entry(g, a, &a->files->items[i]));
    return CNN_OK;
}

/* The top-level names the merge writes, refused early when taken by a
 * file that is not OUT's earlier run's. */
static int check_names(merge *g)
{
    static const char *const fixed[] = {"predictions.json", "predictions.csv", "index.html", "model"};
    int cap = 4, n = 0;
    for (int i = 0; i < g->o->n_parts; i++) cap += g->parts[i].files->n;
    const char **names = cnn_calloc((size_t)cap, sizeof *names);
    bool *folder = cnn_calloc((size_t)cap, sizeof *folder);
    char **own = cnn_calloc((size_t)cap, sizeof *own);
    int n_own = 0, status = names && folder && own ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; i < 4 && status == CNN_OK; i++) {
        names[n] = fixed[i];
        folder[n++] = i == 3;
    }
    for (int i = 0; i < g->o->n_parts && status == CNN_OK; i++) {
        const cnn_jv *files = g->parts[i].files;
        const char *prev = NULL;
        for (int k = 0; k < files->n && status == CNN_OK; k++) {
            const char *path = cnn_jv_str(&files->items[k], "path");
            if (!path || kind_of(path) != E_INPUT) continue;
            size_t len = (size_t)(strchr(path, '/') - path);
            if (prev && strlen(prev) == len && !strncmp(prev, path, len)) continue;
            char *top = cnn_strfmt("%.*s", (int)len, path);
            if (!top) status = CNN_ERR_NOMEM;
            own[n_own++] = top;
            names[n] = prev = top;
            folder[n++] = true;
        }
    }
    if (status == CNN_OK) status = cnn_outdir_check_names(&g->od, names, folder, n);
    for (int i = 0; i < n_own; i++) free(own[i]);
    free(own);
    free(names);
    free(folder);
    return status;
}

/* predictions.json and .csv of every part, in input order. */
static int join_predictions(merge *g, cnn_json *preds, cnn_jv *all)
{
    char *rows = NULL;
    size_t len = 0;
    int status = CNN_OK;
    cnn_json_array_begin(preds);
    for (int i = 0; i < g->o->n_parts && status == CNN_OK; i++) {
        const part *p = g->sorted[i];
        char *text = NULL, *csv = NULL;
        size_t tlen = 0, clen = 0, body = 0;
        cnn_jv v;
        memset(&v, 0, sizeof v);
        status = read_listed(p, "predictions.json", &text, &tlen);
        if (status == CNN_OK) {
            status = cnn_jv_parse(text, tlen, &v);
            if (status == CNN_ERR_INPUT) status = cnn_error_prefix(status, "%s/predictions.json", p->dir);
        }
        if (status == CNN_OK && (v.type != CNN_JV_ARRAY || v.n != p->n_done))
            status = cnn_error_set(CNN_ERR_INPUT, "%s/predictions.json: %d inputs, but the part wrote %d", p->dir,
                                   v.type == CNN_JV_ARRAY ? v.n : 0, p->n_done);
        if (status == CNN_OK) status = read_listed(p, "predictions.csv", &csv, &clen);
        long n = status == CNN_OK ? csv_rows(csv, clen, &body) : 0;
        if (status == CNN_OK && n != p->n_done)
            status = cnn_error_set(CNN_ERR_INPUT, "%s/predictions.csv: %ld rows, but the part wrote %d inputs", p->dir,
                                   n, p->n_done);
        if (status == CNN_OK && clen > body) {
            char *more = cnn_realloc(rows, len + (clen - body) + 1);
            if (!more) status = CNN_ERR_NOMEM;
            else {
                rows = more;
                memcpy(rows + len, csv + body, clen - body);
                len += clen - body;
            }
        }
        /* the elements move into `all` (for the report) */
        if (status == CNN_OK && v.n) {
            cnn_jv *items = cnn_realloc(all->items, ((size_t)all->n + (size_t)v.n) * sizeof *items);
            if (!items) status = CNN_ERR_NOMEM;
            else {
                all->items = items;
                for (int k = 0; k < v.n; k++) {
                    cnn_json_value(preds, &v.items[k]);
                    all->items[all->n++] = v.items[k];
                }
                free(v.items);
                v.items = NULL;
                v.n = 0;
            }
        }
        cnn_jv_free(&v);
        free(text);
        free(csv);
    }
    cnn_json_array_end(preds);
    if (status == CNN_OK) status = cnn_write_predictions(g->od.stage, &g->m, preds, rows ? rows : "", len);
    free(rows);
    return status;
}

/* The report's inputs from the joined predictions. */
static int write_report(merge *g, const cnn_jv *all)
{
    cnn_report_input *in = cnn_calloc((size_t)all->n + 1, sizeof *in);
    char **paths = cnn_calloc((size_t)all->n + 1, sizeof *paths);
    cnn_report_pred **preds = cnn_calloc((size_t)all->n + 1, sizeof *preds);
    int status = in && paths && preds ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; i < all->n && status == CNN_OK; i++) {
        const cnn_jv *e = &all->items[i], *top = cnn_jv_get(e, "top");
        paths[i] = cnn_jv_path(e, "input");
        int nt = top && top->type == CNN_JV_ARRAY ? top->n : 0;
        preds[i] = cnn_calloc((size_t)nt + 1, sizeof **preds);
        if (!paths[i] || !preds[i] || !top) {
            status = paths[i] && preds[i] ? cnn_error_set(CNN_ERR_INPUT, "predictions.json: an entry without input "
                                                          "and top") : CNN_ERR_NOMEM;
            break;
        }
        for (int t = 0; t < nt; t++) {
            const cnn_jv *x = &top->items[t], *prob = cnn_jv_get(x, "prob");
            long long c = 0;
            cnn_jv_int(cnn_jv_get(x, "index"), 0, 1 << 30, &c);
            const char *label = cnn_jv_str(x, "label");
            preds[i][t] = (cnn_report_pred){(int)c, label ? label : "",
                                            prob && prob->type == CNN_JV_NUMBER ? prob->num : NAN};
        }
        in[i] = (cnn_report_input){paths[i], preds[i], nt};
    }
    if (status == CNN_OK) status = cnn_report_of_run(g->od.stage, &g->m, in, all->n, NULL);
    for (int i = 0; i < all->n; i++) {
        if (paths) free(paths[i]);
        if (preds) free(preds[i]);
    }
    free(in);
    free(paths);
    free(preds);
    return status;
}

/* The run record of the whole: the first part's, without its shard, with
 * the inputs every part skipped, their NaN counts, devices and notes. */
static int describe_whole(merge *g, int *n_skipped)
{
    const cnn_jv *first = g->sorted[0]->run;
    cnn_json j;
    cnn_json_init(&j, false);
    cnn_json_object_begin(&j);
    long long nonfinite = 0;
    *n_skipped = 0;
    for (int k = 0; k < first->n; k++) {
        const char *key = first->keys[k];
        if (!strcmp(key, "shard") || !strcmp(key, "skipped") || !strcmp(key, "nonfinite_inputs")) continue;
        if (!strcmp(key, "settings")) {
            for (int i = 0; i < g->o->n_parts; i++) {
                const cnn_jv *sk = g->sorted[i]->skipped;
                long long v = 0;
                *n_skipped += sk ? sk->n : 0;
                if (cnn_jv_int(cnn_jv_get(g->sorted[i]->run, "nonfinite_inputs"), 0, 1LL << 31, &v)) nonfinite += v;
            }
            if (*n_skipped) {
                cnn_json_key(&j, "skipped");
                cnn_json_array_begin(&j);
                for (int i = 0; i < g->o->n_parts; i++)
                    for (int s = 0; g->sorted[i]->skipped && s < g->sorted[i]->skipped->n; s++)
                        cnn_json_value(&j, &g->sorted[i]->skipped->items[s]);
                cnn_json_array_end(&j);
            }
            if (nonfinite) {
                cnn_json_key(&j, "nonfinite_inputs");
                cnn_json_int(&j, nonfinite);
            }
        }
        cnn_json_key(&j, key);
        if (!strcmp(key, "device") || !strcmp(key, "notes")) {
            /* every part's, each once, in the parts' order */
            bool device = key[0] == 'd';
            if (!device) cnn_json_array_begin(&j);
            char *joined = NULL;
            for (int i = 0; i < g->o->n_parts; i++) {
                const cnn_jv *v = cnn_jv_get(g->sorted[i]->run, key);
                for (int s = 0; v && s < (device ? 1 : v->n); s++) {
                    const cnn_jv *x = device ? v : &v->items[s];
                    bool seen = false;
                    for (int e = 0; e < i && !seen; e++) {
                        const cnn_jv *w = cnn_jv_get(g->sorted[e]->run, key);
                        for (int t = 0; w && t < (device ? 1 : w->n) && !seen; t++)
                            seen = cnn_jv_equal(device ? w : &w->items[t], x);
                    }
                    for (int t = 0; t < s && !seen; t++) seen = cnn_jv_equal(&v->items[t], x);
                    if (seen || x->type != CNN_JV_STRING) continue;
                    if (!device) {
                        cnn_json_string(&j, x->str);
                        continue;
                    }
                    char *more = joined ? cnn_strfmt("%s; %s", joined, x->str) : cnn_strdup(x->str);
                    free(joined);
                    if (!(joined = more)) j.failed = true;
                }
            }
            if (device) cnn_json_string(&j, joined ? joined : "");
            else cnn_json_array_end(&j);
            free(joined);
            continue;
        }
        cnn_json_value(&j, &first->items[k]);
    }
    cnn_json_object_end(&j);
    int status = j.failed ? CNN_ERR_NOMEM : cnn_manifest_set_run(&g->m, j.buf, j.len);
    cnn_json_free(&j);
    return status;
}

/* The parts read, of the kind asked for (--stats or not), checked against
 * each other and sorted; *total: the input list's length. */
static int load_parts(merge *g, int *total)
{
    const cnn_merge_opts *o = g->o;
    for (int i = 0; i < o->n_parts; i++) {
        part *p = &g->parts[i];
        CNN_TRY_RET(load_part(p, o->parts[i]));
        const cnn_jv *st = cnn_jv_get(cnn_jv_get(p->run, "settings"), "stats");
        bool stats = st && st->type == CNN_JV_BOOL && st->b;
        if (stats && !o->stats)
            return cnn_error_set(CNN_ERR_INPUT, "%s holds statistics (run --stats), not a run's files: join such "
                                 "parts with 'cnnviz-cl merge --stats FILE ...'", p->dir);
        if (!stats && o->stats)
            return cnn_error_set(CNN_ERR_INPUT, "%s holds a run's files, not statistics: 'merge --stats' joins the "
                                 "folders of 'run --stats'", p->dir);
    }
    for (int i = 1; i < o->n_parts; i++) CNN_TRY_RET(check_same_run(&g->parts[0], &g->parts[i]));
    for (int i = 0; i < o->n_parts; i++) g->sorted[i] = &g->parts[i];
    qsort(g->sorted, (size_t)o->n_parts, sizeof *g->sorted, cmp_part);
    int batch = 1;
    *total = g->parts[0].end;
    run_int(g->parts[0].run, "inputs", 0, 1 << 30, total);
    run_int(cnn_jv_get(g->parts[0].run, "settings"), "batch", 1, 1 << 30, &batch);
    return check_cover(g->sorted, o->n_parts, *total, batch);
}

/* merge --stats: every part's stats.json, combined. */
static int merge_stats(merge *g)
{
    const cnn_merge_opts *o = g->o;
    int total = 0;
    CNN_TRY_RET(load_parts(g, &total));
    cnn_stats acc, one;
    memset(&acc, 0, sizeof acc);
    int status = CNN_OK;
    for (int i = 0; i < o->n_parts && status == CNN_OK; i++) {
        const part *p = g->sorted[i];
        char *text = NULL, *name = cnn_path_join(p->dir, "stats.json");
        size_t len = 0;
        status = name ? read_listed(p, "stats.json", &text, &len) : CNN_ERR_NOMEM;
        if (status == CNN_OK && (status = cnn_stats_parse(name, text, len, &one)) == CNN_OK) {
            status = cnn_stats_combine(&acc, &one, name);
            cnn_stats_free(&one);
        }
        free(text);
        free(name);
    }
    /* an existing file at `out` is replaced only when it is one of ours */
    char *old = NULL;
    size_t old_len = 0;
    struct stat st;
    if (status == CNN_OK && lstat(o->out, &st) == 0) {
        status = S_ISREG(st.st_mode) ? cnn_file_read(o->out, 64u << 20, &old, &old_len)
                                     : cnn_error_set(CNN_ERR_USAGE, "%s exists and is not a file", o->out);
        if (status == CNN_OK && cnn_stats_parse(o->out, old, old_len, &one) == CNN_OK) cnn_stats_free(&one);
        else if (status == CNN_OK)
            status = cnn_error_set(CNN_ERR_USAGE, "%s exists and is not a statistics file of cnnviz-cl: move it away "
                                   "or choose another name", o->out);
        free(old);
    }
    char *text = NULL;
    size_t len = 0;
    if (status == CNN_OK) status = cnn_stats_text(&acc, &text, &len);
    if (status == CNN_OK) status = cnn_file_write_atomic(o->out, text, len);
    if (status == CNN_OK) {
        const char *wants = NULL;
        for (int i = 0; i < acc.n && !wants; i++)
            if (acc.taps[i].clip && !acc.taps[i].hist) wants = acc.taps[i].layer;
        if (wants)
            cnn_logf(CNN_LOG_INFO, "layer '%s' clips to percentiles: its histogram needs a second round: each part "
                     "with run --stats --ranges %s, then merge --stats again", wants, o->out);
        else
            cnn_logf(CNN_LOG_INFO, "statistics of %d tap%s over %d inputs: draw each part with run --ranges %s",
                     acc.n, acc.n == 1 ? "" : "s", total, o->out);
        g->res->inputs = total;
        g->res->files = 1;
    }
    free(text);
    cnn_stats_free(&acc);
    return status;
}

static int merge_files(merge *g)
{
    const cnn_merge_opts *o = g->o;
    int total = 0;
    CNN_TRY_RET(load_parts(g, &total));

    struct stat ost;
    for (int i = 0; i < o->n_parts && stat(o->out, &ost) == 0; i++) {
        struct stat pst;
        if (fstat(g->parts[i].dfd, &pst) == 0 && pst.st_dev == ost.st_dev && pst.st_ino == ost.st_ino)
            return cnn_error_set(CNN_ERR_USAGE, "merge: %s is also given as a part (%s): write the whole into a "
                                 "folder of its own", o->out, o->parts[i]);
    }
    CNN_TRY_RET(cnn_outdir_open(&g->od, o->out, o->wait_lock, o->quiet));
    CNN_TRY_RET(check_names(g));
    CNN_TRY_RET(take_model_files(g));
    bool trace = false;
    for (int i = 0; i < o->n_parts; i++) {
        const part *p = g->sorted[i];
        for (int k = 0; k < p->files->n; k++) {
            const cnn_jv *e = &p->files->items[k];
            const char *path = cnn_jv_str(e, "path");
            if (!path) return cnn_error_set(CNN_ERR_INPUT, "%s/manifest.json: a file entry without a path", p->dir);
            if (kind_of(path) == E_INPUT) CNN_TRY_RET(take_entry(g, p, e));
            trace |= !strcmp(path, "trace.json");
            if (cnn_signal_pending()) return cnn_error_interrupted();
        }
    }
    if (trace) cnn_logf(CNN_LOG_INFO, "left out the parts' trace.json (--profile): each times one part");
    cnn_json preds;
    cnn_json_init(&preds, true);
    cnn_jv all;
    memset(&all, 0, sizeof all);
    all.type = CNN_JV_ARRAY;
    int n_skipped = 0;
    int status = join_predictions(g, &preds, &all);
    if (status == CNN_OK) status = describe_whole(g, &n_skipped);
    const cnn_jv *settings = cnn_jv_get(g->sorted[0]->run, "settings"), *report = cnn_jv_get(settings, "report");
    if (status == CNN_OK && report && report->type == CNN_JV_BOOL && report->b && all.n)
        status = write_report(g, &all);
    cnn_json_free(&preds);
    cnn_jv_free(&all);
    if (status == CNN_OK) status = cnn_outdir_commit(&g->od, &g->m);
    if (status < 0) return status;
    g->res->inputs = total;
    g->res->files = g->m.n;
    if (n_skipped)
        return cnn_error_set(CNN_ERR_INPUT, "%d of %d inputs could not be read when the parts ran (run.skipped in "
                             "%s/manifest.json lists them); the others are merged", n_skipped, total, o->out);
    return CNN_OK;
}

int cnn_merge_run(const cnn_merge_opts *o, cnn_merge_result *res)
{
    memset(res, 0, sizeof *res);
    if (o->n_parts < 1) return cnn_error_set(CNN_ERR_USAGE, "merge: no folders to merge (see 'cnnviz-cl merge --help')");
    merge g;
    memset(&g, 0, sizeof g);
    g.o = o;
    g.res = res;
    g.parts = cnn_calloc((size_t)o->n_parts, sizeof *g.parts);
    g.sorted = cnn_calloc((size_t)o->n_parts, sizeof *g.sorted);
    int status = g.parts && g.sorted ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; g.parts && i < o->n_parts; i++) g.parts[i].dfd = -1;
    if (status == CNN_OK) status = o->stats ? merge_stats(&g) : merge_files(&g);
    if (status < 0) cnn_outdir_fix_message(&g.od);
    cnn_outdir_close(&g.od);
    cnn_manifest_free(&g.m);
    for (int i = 0; g.parts && i < o->n_parts; i++) {
        if (g.parts[i].dfd >= 0) close(g.parts[i].dfd);
        cnn_jv_free(&g.parts[i].m);
        free(g.parts[i].text);
    }
    free(g.parts);
    free(g.sorted);
    free(g.ranges);
    return status;
}
