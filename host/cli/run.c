/* `run` and `info`: load a pipeline, bind weights, plan, run inputs through
 * the network, write predictions, raw outputs, taps and the manifest. */
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "cli/inputs.h"
#include "config/config.h"
#include "core/error.h"
#include "core/util.h"
#include "import/import.h"
#include "io/image.h"
#include "io/json.h"
#include "io/manifest.h"
#include "io/outdir.h"
#include "io/npy.h"
#include "ops/ops.h"
#include "model/graph.h"
#include "model/weights.h"
#include "ops/blas.h"
#include "ops/tune.h"
#include "runtime/clrt.h"
#include "runtime/backward.h"
#include "runtime/net.h"
#include "viz/gradmap.h"
#include "io/pngpool.h"
#include "viz/colormap.h"
#include "viz/report.h"
#include "viz/taps.h"

#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char RUN_HELP[] =
    "usage: cnnviz-cl run CONFIG [options]\n"
    "\n"
    "Runs the pipeline CONFIG (YAML, see configs/README.md; or an ONNX model,\n"
    "MODEL.onnx, imported in memory: see 'cnnviz-cl import --help') on each input:\n"
    "prints the top classes, writes predictions.json, each input's raw network\n"
    "output (<out>/<image>/output.npy), the taps as PNG images, the report\n"
    "<out>/index.html, and lists every file in <out>/manifest.json.\n"
    "\n"
    "options:\n"
    "  --input PATH      image (PNG/JPEG), .npy (float32 [C,H,W] or [N,C,H,W], fed as\n"
    "                    it is), folder (searched recursively) or @list.txt; repeatable\n"
    "  --weights FILE    .safetensors weights (default: model.weights of CONFIG)\n"
    "  --strict          weights holding NaN or Inf are an error (exit 2), not a warning\n"
    "  --preprocess imagenet|none|raw, --mean M[,M,M], --std S[,S,S], --size N|H,W\n"
    "                    an ONNX model's input preprocessing (it is not in the model;\n"
    "                    default: ImageNet's, printed at the start)\n"
    "  --out DIR         output folder (default: output.dir of CONFIG, else out/<model>)\n"
    "  --wait-lock       when another run writes into DIR, wait for it instead of\n"
    "                    stopping at once\n"
    "  --tap LAYER[:KIND]  add a tap (repeatable); KIND defaults to activations\n"
    "  --npy             also write each tapped tensor as .npy\n"
    "  --no-taps         only predictions: ignore the taps of CONFIG\n"
    "  --no-report       do not write index.html\n"
    "  --png-level N     PNG compression 0..9 (default: output.png_level, else 1)\n"
    "  --top K           classes printed per input (default: output.top, else 5)\n"
    "  --batch N         images run together (default 1)\n"
    "  --repeat N        time N forward passes after one warm-up; print the median\n"
    "  --profile         per-layer device time table (with the kernel each\n"
    "                    convolution ran: winograd or im2col) and start-up\n"
    "                    phases (with --repeat: per-layer medians)\n"
    "  --platform SEL    OpenCL platform: index or part of its name\n"
    "  --device SEL      OpenCL device: index, part of its name, or gpu/cpu\n"
    "  -q, --quiet       no per-input lines\n"
    "\n";

/* The rest of the help (C11 caps a string literal's length). */
static const char RUN_HELP_TAPS[] =
    "tap kinds (YAML taps: show: KIND, or --tap LAYER:KIND):\n"
    "  activations   a layer's output per input: one PNG per channel + a montage\n"
    "  filters       a conv layer's weights: one tile per (filter, input channel),\n"
    "                RGB tiles when the layer takes 3 channels\n"
    "  weights       a linear layer's [out, in] matrix (units: N adds each unit's\n"
    "                weights as [C, H, W] when fed by a flatten)\n"
    "gradient maps (why this class?), as PNG + overlay on the input (+ .npy):\n"
    "  input:saliency, input:guided, input:deconvnet, input:gradxinput,\n"
    "  input:smoothgrad (25 noisy copies), input:integrated (50 steps, black\n"
    "  baseline), LAYER:gradcam, LAYER:gradcampp, LAYER:layercam,\n"
    "  LAYER:guided-gradcam (LAYER: a conv or pool layer, e.g. the last conv),\n"
    "  input:occlusion (score drop when a window is covered; forward passes only)\n"
    "  --class top1|topK|INDEX|LABEL  which class to explain (default top1)\n"
    "  --score logit|prob             explain the logit (default) or probability\n"
    "  --curves N        deletion/insertion curves of every map, N steps: the\n"
    "                    class probability as the most important pixels are\n"
    "                    removed (to 0) / inserted (into a blurred copy); areas\n"
    "                    under them in manifest.json and the report\n"
    "normalize (value range -> 0..255): per-channel (activations' default),\n"
    "  per-layer (filters' and weights' default), global (one range over all\n"
    "  inputs of the run), fixed (with range: [lo, hi]); clip: [0.5, 99.5] uses\n"
    "  percentiles instead of min/max; signed: true centres the range on 0.\n"
    "colormaps: gray (activations' default), viridis, magma, inferno, turbo, jet,\n"
    "  rdbu (diverging, filters' and weights' default).\n"
    "With no taps: key in CONFIG the run shows the first conv layer's filters and\n"
    "the activations of the conv and pool layers (a subset for large networks).\n"
    "\n"
    "The output folder: a run writes its files beside the folder's contents\n"
    "(DIR/.cnnviz-run.PID) and publishes them only when all are written, then\n"
    "removes the files of the earlier run it did not write again.  It replaces\n"
    "or removes only files an earlier manifest.json of its own lists, unchanged\n"
    "since; a DIR holding a manifest.json of anything else is refused.  A run\n"
    "that fails or is interrupted leaves DIR as it was.  One run at a time per\n"
    "DIR (DIR/.cnnviz.lock).\n";

static const char INFO_HELP[] =
    "usage: cnnviz-cl info CONFIG [--weights FILE] [--batch N] [--strict]\n"
    "       cnnviz-cl info MODEL.onnx [--preprocess ...] [--mean M] [--std S] [--size N|H,W]\n"
    "\n"
    "Checks CONFIG and its weights (or imports MODEL.onnx in memory) without\n"
    "touching a device and prints every layer: op, inputs, output shape,\n"
    "parameters and multiply-accumulates, the totals, and the device memory the\n"
    "plan needs at peak.  Tensors holding NaN or Inf are named in a warning\n"
    "(--strict: an error, exit 2), and so are tensors no layer uses.\n";

typedef struct run_opts {
    const char *config, *weights, *out, *platform, *device;
    const char **inputs;
    int n_inputs;
    const char **taps;
    int n_taps;
    const char *cls, *score;
    bool npy, no_taps, no_report, profile, quiet, wait_lock;
    bool strict; /* --strict: non-finite weights are an error */
    int top, batch, repeat, png_level;
    int curves; /* --curves N; -1: the pipeline's */
    cnn_import_opts imp;  /* --preprocess, --mean, --std, --size (ONNX models) */
    const char *imp_flag; /* the first of them given, for the message when CONFIG is YAML */
} run_opts;

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return cnn_error_set(CNN_ERR_USAGE, "%s '%s': expected an integer in [%d, %d]", flag, v, lo, hi);
    *out = (int)x;
    return CNN_OK;
}

static int parse_args(int argc, char **argv, run_opts *o, bool info)
{
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->png_level = -1;
    o->curves = -1;
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    o->taps = calloc((size_t)argc, sizeof *o->taps);
    if (!o->inputs || !o->taps) return cnn_error_set(CNN_ERR_NOMEM, "out of host memory");
    const char *cmd = info ? "info" : "run";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                                       \
    do {                                                                                                   \
        if (!v) return cnn_error_set(CNN_ERR_USAGE, "%s: option %s needs a value", cmd, a);               \
        i++;                                                                                               \
    } while (0)
        int used = cnn_cli_import_option(a, v, &o->imp);
        if (used < 0) return used;
        if (used) {
            if (!o->imp_flag) o->imp_flag = a;
            i++;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(info ? INFO_HELP : RUN_HELP, stdout);
            if (!info) fputs(RUN_HELP_TAPS, stdout);
            return 1;
        } else if (!strcmp(a, "--weights")) {
            NEED_VALUE();
            o->weights = v;
        } else if (!strcmp(a, "--batch")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 4096, &o->batch) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--strict")) {
            o->strict = true;
        } else if (info) {
            if (a[0] == '-' || o->config)
                return cnn_error_set(CNN_ERR_USAGE, "info: unexpected argument '%s' (see 'cnnviz-cl info --help')", a);
            o->config = a;
        } else if (!strcmp(a, "--input")) {
            NEED_VALUE();
            o->inputs[o->n_inputs++] = v;
        } else if (!strcmp(a, "--out")) {
            NEED_VALUE();
            o->out = v;
        } else if (!strcmp(a, "--tap")) {
            NEED_VALUE();
            o->taps[o->n_taps++] = v;
        } else if (!strcmp(a, "--platform")) {
            NEED_VALUE();
            o->platform = v;
        } else if (!strcmp(a, "--device")) {
            NEED_VALUE();
            o->device = v;
        } else if (!strcmp(a, "--top")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 1000, &o->top) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--repeat")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 100000, &o->repeat) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--npy")) {
            o->npy = true;
        } else if (!strcmp(a, "--no-taps")) {
            o->no_taps = true;
        } else if (!strcmp(a, "--class")) {
            NEED_VALUE();
            o->cls = v;
        } else if (!strcmp(a, "--score")) {
            NEED_VALUE();
            if (strcmp(v, "logit") != 0 && strcmp(v, "prob") != 0)
                return cnn_error_set(CNN_ERR_USAGE, "--score '%s': expected logit or prob", v);
            o->score = v;
        } else if (!strcmp(a, "--curves")) {
            NEED_VALUE();
            if (parse_int(a, v, 0, 1000, &o->curves) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--no-report")) {
            o->no_report = true;
        } else if (!strcmp(a, "--png-level")) {
            NEED_VALUE();
            if (parse_int(a, v, 0, 9, &o->png_level) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--profile")) {
            o->profile = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (!strcmp(a, "--wait-lock")) {
            o->wait_lock = true;
        } else if (a[0] == '-') {
            return cnn_error_set(CNN_ERR_USAGE, "run: unknown option '%s' (see 'cnnviz-cl run --help')", a);
        } else if (!o->config) {
            o->config = a;
        } else {
            return cnn_error_set(CNN_ERR_USAGE, "run: unexpected argument '%s' (inputs are given with --input)", a);
        }
#undef NEED_VALUE
    }
    if (!o->config)
        return cnn_error_set(CNN_ERR_USAGE, "%s: no pipeline file given (see 'cnnviz-cl %s --help')", cmd, cmd);
    if (o->imp_flag && !cnn_import_is_onnx(o->config))
        return cnn_error_set(CNN_ERR_USAGE, "%s: %s applies to ONNX models (MODEL.onnx); a pipeline file sets its "
                             "preprocessing under model.input", cmd, o->imp_flag);
    if (o->weights && cnn_import_is_onnx(o->config))
        return cnn_error_set(CNN_ERR_USAGE, "%s: --weights does not apply to an ONNX model: its weights are in it",
                             cmd);
    return CNN_OK;
}

/* Pipeline, weights and graph: everything that is checked before a device
 * is touched. */
typedef struct loaded {
    cnn_pipeline pipe;
    cnn_weights weights;
    cnn_graph graph;
    char **labels;
    int n_labels;
    unsigned char *onnx_weights; /* an ONNX model's weights, imported in memory (the weights read them) */
    char assumed[400];           /* ... and the preprocessing the import assumed */
} loaded;

static void loaded_free(loaded *l)
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
static int load_labels(loaded *l)
{
    if (!l->pipe.labels) return CNN_OK;
    const char *path = l->pipe.labels;
    char *text = NULL;
    size_t len = 0;
    int status = cnn_file_read(path, 16u << 20, &text, &len);
    if (status == CNN_ERR_INTERRUPTED) return status;
    if (status < 0) return cnn_pipeline_error_at(&l->pipe, l->pipe.labels_pos, "labels: %s", cnn_error_message());
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
static int check_nonfinite(const run_opts *o, const loaded *l)
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
    fprintf(stderr, "cnnviz-cl: warning: %s: %d tensor%s hold%s NaN or Inf (%s); the outputs %s reaches will "
            "hold NaN or Inf, as in PyTorch (--strict makes this an error)\n", l->weights.path, g->n_nonfinite,
            g->n_nonfinite == 1 ? "" : "s", g->n_nonfinite == 1 ? "s" : "", list,
            g->n_nonfinite == 1 ? "it" : "each");
    return CNN_OK;
}

/* Tensors of the weights file that no layer binds: one warning line with
 * their count and the first names (a layer left out of the pipeline, a
 * misspelt params: prefix).  PyTorch's batch-norm counters
 * (num_batches_tracked) are bookkeeping, never weights: not counted. */
static void warn_unused(const loaded *l)
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
static int load_onnx(const run_opts *o, loaded *l)
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

static int load_all(const run_opts *o, loaded *l)
{
    memset(l, 0, sizeof *l);
    if (cnn_import_is_onnx(o->config)) {
        int status = load_onnx(o, l);
        if (status == CNN_OK) status = cnn_graph_build(&l->pipe, &l->weights, &l->graph);
        if (status == CNN_OK && l->graph.n_nonfinite) status = check_nonfinite(o, l);
        return status;
    }
    int status = cnn_pipeline_load(o->config, &l->pipe);
    if (status < 0) return status;
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
        status = cnn_weights_open(l->pipe.weights, &l->weights);
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

static void fmt_count(uint64_t v, char *buf, size_t size)
{
    if (v >= 1000000000ull) snprintf(buf, size, "%.2fG", (double)v / 1e9);
    else if (v >= 1000000ull) snprintf(buf, size, "%.2fM", (double)v / 1e6);
    else if (v >= 1000ull) snprintf(buf, size, "%.1fk", (double)v / 1e3);
    else snprintf(buf, size, "%llu", (unsigned long long)v);
}

int cnn_cmd_info(int argc, char **argv)
{
    run_opts o;
    int status = parse_args(argc, argv, &o, true);
    if (status != CNN_OK) goto out;
    loaded l;
    status = load_all(&o, &l);
    if (status < 0) {
        loaded_free(&l);
        goto out;
    }
    const cnn_graph *g = &l.graph;
    printf("%s: model '%s', input [%d, %d, %d], %d layers\n", o.config, l.pipe.model_name ? l.pipe.model_name : "?",
           g->in_c, g->in_h, g->in_w, g->n);
    if (l.assumed[0]) {
        char line[700];
        snprintf(line, sizeof line, "preprocessing (not part of an ONNX model): %s", l.assumed);
        cnn_print_line(stdout, "", line);
    }
    printf("%-28s %-16s %-28s %-18s %10s %10s\n", "layer", "op", "inputs", "output", "params", "MACs");
    for (int i = 0; i < g->n; i++) {
        const cnn_layer *ly = &g->layers[i];
        char ins[256] = "", shape[64], pc[32], mc[32];
        size_t n = 0;
        for (int k = 0; k < ly->n_in && n < sizeof ins; k++)
            n += (size_t)snprintf(ins + n, sizeof ins - n, "%s%s", k ? "," : "",
                                  ly->in[k] < 0 ? "input" : g->layers[ly->in[k]].spec->name);
        if (ly->flat) snprintf(shape, sizeof shape, "[%d]", ly->c);
        else snprintf(shape, sizeof shape, "[%d, %d, %d]", ly->c, ly->h, ly->w);
        fmt_count(ly->params, pc, sizeof pc);
        fmt_count(ly->macs, mc, sizeof mc);
        printf("%-28s %-16s %-28s %-18s %10s %10s\n", ly->spec->name, cnn_op_name(ly->spec->op), ins, shape,
               ly->params ? pc : "-", mc);
    }
    cnn_plan plan;
    status = cnn_plan_build(g, NULL, o.batch, &plan);
    if (status == CNN_OK) {
        char pc[32], mc[32];
        fmt_count(g->total_params, pc, sizeof pc);
        fmt_count(g->total_macs, mc, sizeof mc);
        printf("total: %s parameters, %s MACs per image\n", pc, mc);
        printf("device memory at batch %d: %.1f MiB peak (weights %.1f MiB, activations %.1f MiB in %d buffers, "
               "scratch %.1f MiB)\n",
               o.batch, (double)plan.peak_bytes / 1048576.0, (double)plan.weight_bytes / 1048576.0,
               (double)(plan.peak_bytes - plan.weight_bytes - plan.scratch_bytes - plan.input_bytes) / 1048576.0,
               plan.n_slots, (double)plan.scratch_bytes / 1048576.0);
        cnn_plan_free(&plan);
    }
    loaded_free(&l);
out:
    free(o.inputs);
    free(o.taps);
    return status > 0 ? CNN_OK : status;
}

/* A map waiting for its deletion / insertion curves (they run their own
 * forward passes, so after everything else of the batch). */
typedef struct pending {
    cnn_vtap *t;
    int b, cls, entry;
    uint32_t *rank; /* [px] each pixel's place by importance */
} pending;

typedef struct run_state {
    run_opts o;
    loaded l;
    cnn_cl cl;
    bool cl_ready;
    cnn_net net;
    bool net_ready;
    char *out_dir;
    cnn_vtap *taps;
    int n_taps;
    bool *keep;
    cnn_manifest manifest;
    cnn_json preds;
    char *csv;            /* predictions.csv text */
    size_t csv_len, csv_cap;
    cnn_input_list inputs;
    char **stems; /* [inputs.n] unique output sub-folder names */
    float *npy;           /* the samples of the .npy file read last (consecutive inputs share it) */
    const char *npy_of;   /* ... its inputs.file entry */
    float *logits;
    float *host_tmp;
    int failed_inputs;
    cnn_png_pool *pool;
    cnn_vctx viz;
    bool viz_ready;
    bool attrib;          /* attribution taps (gradient maps, occlusion) */
    bool gradients;       /* ... some need the backward: the network keeps every tensor */
    bool timing;          /* --repeat of attribution maps: compute, draw nothing */
    cnn_backward bw;
    bool bw_ready;
    cl_mem *img8;         /* [batch] the inputs as 8-bit images (overlays) */
    cl_mem maps, cams, camw, xsave, acc, gsum, base; /* gradient-map scratch */
    cl_mem tmp, zero, occ, rankbuf; /* blur scratch, zeros, window scores, pixel ranks */
    int chunk;            /* copies per pass for smoothgrad / integrated / occlusion / curves */
    char first_skip[CNN_ERROR_MAX]; /* why the first unreadable input was skipped */
    cnn_outdir od;        /* the output folder: lock, stage, commit */
    const char *wdir;     /* where files are written: the stage (published at the commit) */
    pending *pend;        /* maps waiting for their deletion / insertion curves */
    int n_pend, cap_pend;
    int n_img8;
    int *rank;            /* [batch * 10] each image's classes by score */
    bool images;          /* write PNGs (taps or the report) */
    int nonfinite_inputs;  /* inputs whose network output holds NaN or Inf */
    int first_nonfinite;   /* ... the first of them (index into inputs) */
    bool output_nan, output_inf; /* ... which of the two occurred */
    cnn_report_input *rin; /* [inputs.n] predictions for the report */
    cnn_report_pred *rpred; /* [inputs.n * top] */
    int n_rin;
} run_state;

static int add_tap(run_state *s, const char *layer, const char *kind, const cnn_tap_spec *spec, const char *flag)
{
    const cnn_pipeline *p = &s->l.pipe;
    char where[300];
    if (spec) snprintf(where, sizeof where, "%s:%d:%d", p->path, spec->pos.line, spec->pos.col);
    else snprintf(where, sizeof where, "--tap %s", flag);
    int li = cnn_pipeline_find(p, layer);
    if (li < 0 && strcmp(layer, "input") != 0) {
        if (spec) return cnn_error_set(CNN_ERR_INPUT, "%s: tap on unknown layer '%s'", where, layer);
        return cnn_error_set(CNN_ERR_USAGE, "%s: no layer '%s' in %s (see 'cnnviz-cl info %s')", where, layer,
                             s->o.config, s->o.config);
    }
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].layer == li && !strcmp(s->taps[t].kind_name, kind)) return CNN_OK; /* asked twice */
    cnn_vtap *t = &s->taps[s->n_taps];
    int status = cnn_vtap_configure(t, &s->l.graph, li, kind, spec, where, s->l.labels, s->l.n_labels);
    if (status < 0) return status;
    t->kind_name = kind;
    if (t->kind == CNN_TAP_GRADIENT && (s->o.cls || s->o.score || s->o.curves >= 0)) {
        /* --class / --score / --curves override the pipeline's for every
         * gradient tap. */
        cnn_tap_spec over = spec ? *spec : (cnn_tap_spec){.alpha = 0.5f};
        if (s->o.cls) over.cls = (char *)s->o.cls;
        if (s->o.score) over.score = (char *)s->o.score;
        if (s->o.curves >= 0) over.curves = s->o.curves;
        status = cnn_vtap_configure(t, &s->l.graph, li, kind, &over, where, s->l.labels, s->l.n_labels);
        if (status < 0) return status;
        t->kind_name = kind;
    }
    /* Different names can sanitise alike ("a/b", "a_b"); a layer keeps the
     * folder an earlier tap of it got, and a new layer gets a free one. */
    char base[101];
    cnn_outdir_name(li < 0 ? "input" : p->layers[li].name, base, sizeof base);
    snprintf(t->dir, sizeof t->dir, "%s", base);
    for (int k = 2;; k++) {
        int clash = -1;
        for (int j = 0; j < s->n_taps && clash < 0; j++)
            if (!strcmp(s->taps[j].dir, t->dir)) clash = j;
        if (clash < 0 || s->taps[clash].layer == li) break;
        snprintf(t->dir, sizeof t->dir, "%s_%d", base, k);
    }
    s->n_taps++;
    if (t->kind == CNN_TAP_ACTIVATIONS) s->keep[li] = true;
    if (t->kind == CNN_TAP_GRADIENT) s->attrib = true;
    if (t->kind == CNN_TAP_GRADIENT && t->method != CNN_GM_OCCLUSION) s->gradients = true;
    return CNN_OK;
}

/* A pipeline without `taps:` shows the first conv layer's filters and the
 * activations of every conv and pool layer; a large network (more than 16
 * of them) shows its pooling layers and the last conv layer instead, which
 * sample every stage without writing thousands of files per image. */
static int default_taps(run_state *s)
{
    const cnn_graph *g = &s->l.graph;
    int n_cp = 0, first_conv = -1, last_conv = -1;
    for (int i = 0; i < g->n; i++) {
        cnn_op op = g->layers[i].spec->op;
        bool spatial = !g->layers[i].flat && g->layers[i].h * g->layers[i].w > 1;
        if (op == CNN_OP_CONV2D) {
            if (first_conv < 0) first_conv = i;
            last_conv = i;
        }
        if ((op == CNN_OP_CONV2D || op == CNN_OP_MAXPOOL || op == CNN_OP_AVGPOOL) && spatial) n_cp++;
    }
    int status = CNN_OK;
    if (first_conv >= 0 && g->layers[first_conv].weight)
        status = add_tap(s, g->layers[first_conv].spec->name, "filters", NULL, "(default)");
    for (int i = 0; i < g->n && status == CNN_OK; i++) {
        cnn_op op = g->layers[i].spec->op;
        bool spatial = !g->layers[i].flat && g->layers[i].h * g->layers[i].w > 1;
        bool pool = op == CNN_OP_MAXPOOL || op == CNN_OP_AVGPOOL;
        bool show = spatial && (n_cp <= 16 ? (pool || op == CNN_OP_CONV2D) : (pool || i == last_conv));
        if (show) status = add_tap(s, g->layers[i].spec->name, "activations", NULL, "(default)");
    }
    if (status == CNN_OK && !s->o.quiet && s->n_taps)
        fprintf(stderr, "cnnviz-cl: no taps in %s: showing %d default taps (first-layer filters, %s)\n", s->o.config,
                s->n_taps, n_cp <= 16 ? "conv and pool activations" : "pool and last conv activations");
    return status;
}

static int collect_taps(run_state *s)
{
    const cnn_pipeline *p = &s->l.pipe;
    int cap = s->o.n_taps + 1 + s->l.graph.n;
    for (int i = 0; i < p->n_taps; i++) cap += p->taps[i].n_layers;
    s->taps = cnn_calloc((size_t)cap, sizeof *s->taps);
    s->keep = cnn_calloc((size_t)p->n_layers, sizeof *s->keep);
    if (!s->taps || !s->keep) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    if (!s->o.no_taps) {
        for (int i = 0; i < p->n_taps && status == CNN_OK; i++)
            for (int k = 0; k < p->taps[i].n_layers && status == CNN_OK; k++)
                status = add_tap(s, p->taps[i].layers[k], p->taps[i].show, &p->taps[i], NULL);
        if (status == CNN_OK && !p->taps_given && s->o.n_taps == 0) status = default_taps(s);
    }
    for (int i = 0; i < s->o.n_taps && status == CNN_OK; i++) {
        char layer[256];
        snprintf(layer, sizeof layer, "%s", s->o.taps[i]);
        char *colon = strrchr(layer, ':');
        const char *kind = "activations";
        if (colon) {
            *colon = '\0';
            kind = NULL;
            for (int k = 0; cnn_tap_kinds[k]; k++)
                if (!strcmp(cnn_tap_kinds[k], colon + 1)) kind = cnn_tap_kinds[k];
            if (!kind) return cnn_error_set(CNN_ERR_USAGE, "--tap %s: unknown kind '%s' (see 'cnnviz-cl run --help')",
                                            s->o.taps[i], colon + 1);
        }
        status = add_tap(s, layer, kind, NULL, s->o.taps[i]);
        if (status == CNN_ERR_INPUT && !colon) status = CNN_ERR_USAGE;
    }
    return status;
}

/* Unique, sanitised output folder names for the inputs ("cat", "cat_2"). */
static int make_stems(run_state *s)
{
    s->stems = cnn_calloc((size_t)s->inputs.n + 1, sizeof *s->stems);
    if (!s->stems) return CNN_ERR_NOMEM;
    for (int i = 0; i < s->inputs.n; i++) {
        int sample = s->inputs.sample ? s->inputs.sample[i] : -1;
        char *stem = cnn_path_stem(sample >= 0 ? s->inputs.file[i] : s->inputs.paths[i]);
        if (stem && sample >= 0) {
            char *numbered = cnn_strfmt("%s_%d", stem, sample);
            free(stem);
            stem = numbered;
        }
        if (!stem) return CNN_ERR_NOMEM;
        char base[128];
        cnn_outdir_name(stem, base, sizeof base);
        free(stem);
        char cand[160];
        snprintf(cand, sizeof cand, "%s", base);
        for (int k = 2;; k++) {
            /* Names the run writes at the top level are not free. */
            static const char *const reserved[] = {"manifest.json", "predictions.json", "predictions.csv",
                                                   "index.html", "trace.json", "model", NULL};
            bool used = false;
            for (int r = 0; reserved[r]; r++) used |= !strcmp(cand, reserved[r]);
            for (int j = 0; j < i && !used; j++) used = !strcmp(s->stems[j], cand);
            if (!used) break;
            snprintf(cand, sizeof cand, "%s_%d", base, k);
        }
        if (!(s->stems[i] = cnn_strdup(cand))) return CNN_ERR_NOMEM;
    }
    return CNN_OK;
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
static int load_tensor(run_state *s, int k, int b)
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

/* Decodes, uploads and preprocesses image k into slot `b` of the network
 * input (a .npy input goes in as it is).  An unreadable image returns
 * CNN_ERR_INPUT (the caller skips it). */
static int load_input(run_state *s, int k, int b)
{
    if (s->inputs.file && s->inputs.file[k]) return load_tensor(s, k, b);
    cnn_image img = {0};
    int status = cnn_image_load(s->inputs.paths[k], &img);
    if (status < 0) return status;
    const cnn_input_spec *in = &s->l.pipe.input;
    int rh = 0, rw = 0, top = 0, left = 0;
    cl_mem src = NULL, tmp = NULL;
    CNN_TRY(input_geometry(in, s->inputs.paths[k], img.h, img.w, &rh, &rw, &top, &left), done);
    size_t bytes = (size_t)img.w * img.h * img.c;
    CNN_TRY(cnn_cl_buffer(&s->cl, bytes, &src, "input image"), done);
    CNN_TRY(cnn_cl_write(&s->cl, src, 0, bytes, img.px, "input image"), done);
    CNN_TRY(cnn_cl_buffer(&s->cl, cnn_op_preprocess_scratch(img.h, img.w, img.c, rh, rw), &tmp, "resize scratch"),
            done);
    size_t off = (size_t)b * in->c * in->h * in->w;
    CNN_TRY(cnn_op_preprocess(&s->cl, src, img.h, img.w, img.c, rh, rw, top, left, in->c, in->h, in->w, in->scale,
                              in->mean, in->std, tmp, s->net.input, off, s->inputs.paths[k]),
            done);
    /* No wait here: OpenCL keeps a released buffer alive until the kernels
     * enqueued on it have finished, and the pixel upload was blocking. */
done:
    if (src) clReleaseMemObject(src);
    if (tmp) clReleaseMemObject(tmp);
    cnn_image_free(&img);
    return status;
}

static int write_npy(run_state *s, const char *rel, const float *data, const int64_t *shape, int ndim,
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

/* A probability as printed and written to predictions.csv: "nan" for NaN
 * whatever its sign bit (printf would write "-nan" for x86's default NaN). */
static const char *fmt_prob(double p, int digits, char *buf, size_t size)
{
    if (isnan(p)) snprintf(buf, size, "nan");
    else snprintf(buf, size, "%.*f", digits, p);
    return buf;
}

/* Appends one CSV row; fields with a comma, quote or newline are quoted. */
static int csv_append(run_state *s, const char *input, int index, const char *label, double prob)
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
    n += (size_t)snprintf(row + n, sizeof row - n, ",%s\n", fmt_prob(prob, 6, pb, sizeof pb));
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

/* qsort has no context argument: the values being ranked. */
static const float *g_sort_values;

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

/* Predictions, raw output and taps of image k (slot b of the batch). */
static int finish_input(run_state *s, int k, int b)
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
    g_sort_values = logits;
    qsort(idx, nout, sizeof *idx, cmp_idx);
    if (!s->o.quiet) cnn_print_line(stdout, "", path);
    cnn_json_object_begin(&s->preds);
    cnn_json_path(&s->preds, "input", path);
    cnn_json_key(&s->preds, "top");
    cnn_json_array_begin(&s->preds);
    for (int t = 0; t < top; t++) {
        int c = idx[t];
        double prob = probs ? (double)logits[c] : exp((double)logits[c] - mx) / sum;
        const char *label = c < s->l.n_labels ? s->l.labels[c] : "";
        char pb[32];
        if (!s->o.quiet) printf("  %2d. %5d  %-32s %s\n", t + 1, c, label, fmt_prob(prob, 4, pb, sizeof pb));
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
    status = csv_append(s, path, best, best < s->l.n_labels ? s->l.labels[best] : "",
                        probs ? (double)logits[best] : exp((double)logits[best] - mx) / sum);
    if (status < 0) return status;

    snprintf(rel, sizeof rel, "%s/output.npy", stem);
    shape[0] = (int64_t)nout;
    status = write_npy(s, rel, logits, shape, 1, "output", NULL, out->spec->name, path);
    if (status < 0) return status;

    if (s->images && !s->l.pipe.input.tensor) {
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
        status = write_npy(s, rel, s->host_tmp, shape, ndim, "activations", "tensor", ly->spec->name, path);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* One line for the whole run, not one per input: how many outputs held
 * NaN or Inf, the first such input, and the likely cause. */
static void warn_nonfinite_outputs(const run_state *s, int done_inputs)
{
    const char *what = s->output_nan && s->output_inf ? "NaN and Inf" : s->output_nan ? "NaN" : "Inf";
    fprintf(stderr, "cnnviz-cl: warning: the network's output holds %s for %d of %d input%s (first: %s); classes "
            "rank as torch.topk ranks them (NaN first), probabilities are NaN where torch.softmax's are; %s\n",
            what, s->nonfinite_inputs, done_inputs, done_inputs == 1 ? "" : "s", s->inputs.paths[s->first_nonfinite],
            s->l.graph.n_nonfinite ? "the weights hold NaN or Inf (warning above)"
                                   : "the weights are finite, so an activation overflowed float32");
}

/* Progress on stderr: a bar redrawn in place on a terminal, a plain line
 * every ~5 s otherwise (logs). */
static void progress(run_state *s, int done, int total, double t0, bool last)
{
    static double last_print;
    if (s->o.quiet || total < 2) return;
    double now = cnn_now_ms();
    double rate = done / ((now - t0) / 1000.0 + 1e-9);
    if (isatty(STDERR_FILENO)) {
        if (!last && now - last_print < 100) return;
        int w = 30, fill = (int)((double)w * done / total);
        fprintf(stderr, "\r[%.*s%*s] %d/%d images, %.1f/s", fill, "##############################", w - fill, "",
                done, total, rate);
        if (last) fputc('\n', stderr);
    } else {
        if (!last && now - last_print < 5000) return;
        fprintf(stderr, "cnnviz-cl: %d/%d images, %.1f/s\n", done, total, rate);
    }
    last_print = now;
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

static void print_profile(run_state *s);

static int run_repeat(run_state *s, int n)
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
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        printf("forward: median %.2f ms over %d runs (batch %d, min %.2f, max %.2f)\n", med, reps, n, t[0],
               t[reps - 1]);
    }
    if (status == CNN_OK && lt) {
        /* per-layer medians into layer_ms, then the table */
        for (int i = 0; i < nl; i++) {
            for (int r = 0; r < reps; r++) t[r] = lt[(size_t)r * nl + i];
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            s->net.layer_ms[i] = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        }
        printf("per-layer medians over %d runs (each layer waited for, so their sum exceeds the forward's "
               "median):\n", reps);
        print_profile(s);
    }
    free(t);
    free(lt);
    return status;
}

static void print_profile(run_state *s)
{
    const cnn_graph *g = &s->l.graph;
    double total = 0;
    for (int i = 0; i < g->n; i++) total += s->net.layer_ms[i];
    printf("%-28s %-16s %-9s %-18s %10s %9s %7s\n", "layer", "op", "kernel", "output", "ms", "GFLOP/s", "share");
    for (int i = 0; i < g->n; i++) {
        const cnn_layer *ly = &g->layers[i];
        char shape[64];
        snprintf(shape, sizeof shape, "[%d, %d, %d]", ly->c, ly->h, ly->w);
        double ms = s->net.layer_ms[i];
        /* the packed convolution's algorithm (planned or measured: runtime/choose.h) */
        const char *kernel = !s->net.plan.packed[i] ? "" : s->net.plan.pack[i].winograd ? "winograd" : "im2col";
        if (!s->net.plan.computes[i]) {
            printf("%-28s %-16s %-9s %-18s %10s %9s %7s\n", ly->spec->name, cnn_op_name(ly->spec->op), "", shape,
                   "fused", "", "");
            continue;
        }
        /* macs count one image; the timed forward ran a batch */
        double gf = ms > 0 ? 2.0 * (double)ly->macs * s->net.layer_ms_images / (ms * 1e6) : 0;
        printf("%-28s %-16s %-9s %-18s %10.3f %9.1f %6.1f%%\n", ly->spec->name, cnn_op_name(ly->spec->op), kernel,
               shape, ms, gf, total > 0 ? 100.0 * ms / total : 0);
    }
    printf("total device time %.2f ms\n", total);
}

/* Chrome trace (chrome://tracing, Perfetto) of the last forward pass: the
 * layers one after another, as the profiled run executed them. */
static int write_trace(run_state *s)
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
        if (!s->o.quiet) fprintf(stderr, "cnnviz-cl: writing %s/trace.json (open in chrome://tracing)\n", s->out_dir);
    }
    free(p);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Gradient maps                                                          */

/* Before any device allocation: the plan's memory at `batch` images (with
 * the gradient buffers, which mirror the activations, in gradient mode)
 * against the device's global memory, and its largest buffer against the
 * largest allocation the device allows. */
static int check_memory(run_state *s, int batch)
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
static int interrupted(run_state *s)
{
    if (!cnn_signal_pending()) return CNN_OK;
    int status = cnn_error_interrupted();
    cnn_png_pool_cancel(s->pool, status, cnn_error_message());
    return status;
}

static int n_in_px(const run_state *s) { return s->l.graph.in_h * s->l.graph.in_w; }

/* Buffers of the gradient taps: the backward pass, the 8-bit inputs for
 * overlays, map scratch.  SmoothGrad and Integrated Gradients run their
 * copies in chunks of up to `chunk` images through the same network. */
static int setup_gradients(run_state *s, int batch)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    if (s->gradients) {
        CNN_TRY_RET(cnn_backward_create(&s->bw, &s->net));
        s->bw_ready = true;
    }
    size_t px = (size_t)n_in_px(s), len = (size_t)g->in_c * px;
    size_t n_win = 1;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].method == CNN_GM_OCCLUSION) {
            const cnn_vtap *v = &s->taps[t];
            size_t nw = (size_t)cnn_gm_positions(g->in_h, v->window, v->stride) *
                        (size_t)cnn_gm_positions(g->in_w, v->window, v->stride);
            if (nw > n_win) n_win = nw;
        }
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->tmp, "blur scratch"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->zero, "zero baseline"));
    CNN_TRY_RET(cnn_grad_zero(cl, s->zero, 0, len, "zero baseline"));
    CNN_TRY_RET(cnn_cl_buffer(cl, n_win * sizeof(float), &s->occ, "occlusion scores"));
    CNN_TRY_RET(cnn_cl_buffer(cl, px * sizeof(cl_uint), &s->rankbuf, "pixel ranks"));
    int nb = s->net.plan.max_batch;
    size_t maxplane = 1, maxc = 1;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].layer >= 0) {
            const cnn_layer *ly = &g->layers[s->taps[t].layer];
            if ((size_t)ly->h * ly->w > maxplane) maxplane = (size_t)ly->h * ly->w;
            if ((size_t)ly->c > maxc) maxc = (size_t)ly->c;
        }
    s->img8 = cnn_calloc((size_t)batch, sizeof *s->img8);
    s->n_img8 = batch;
    s->rank = cnn_calloc((size_t)nb * 10, sizeof *s->rank);
    if (!s->img8 || !s->rank) return CNN_ERR_NOMEM;
    for (int b = 0; b < batch; b++) CNN_TRY_RET(cnn_cl_buffer(cl, len, &s->img8[b], "input image"));
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * px * sizeof(float), &s->maps, "gradient maps"));
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * maxplane * sizeof(float), &s->cams, "class activation maps"));
    size_t nw = (size_t)nb * maxc < CNN_STATS_STRIDE ? CNN_STATS_STRIDE : (size_t)nb * maxc; /* also stats */
    CNN_TRY_RET(cnn_cl_buffer(cl, nw * sizeof(float), &s->camw, "class activation weights"));
    CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * len * sizeof(float), &s->xsave, "saved inputs"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->acc, "map sums"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->gsum, "gradient sums"));
    CNN_TRY_RET(cnn_cl_buffer(cl, len * sizeof(float), &s->base, "baseline"));
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_GRADIENT && s->taps[t].method == CNN_GM_GUIDED_GRADCAM)
            CNN_TRY_RET(cnn_cl_buffer(cl, (size_t)nb * px * sizeof(float), &s->taps[t].cam, "guided Grad-CAM"));
    s->chunk = nb;
    return CNN_OK;
}

static void free_gradients(run_state *s)
{
    if (s->bw_ready) cnn_backward_free(&s->bw);
    if (s->img8)
        for (int b = 0; b < s->n_img8; b++)
            if (s->img8[b]) clReleaseMemObject(s->img8[b]);
    free(s->img8);
    cl_mem *all[] = {&s->maps, &s->cams, &s->camw, &s->xsave, &s->acc, &s->gsum, &s->base,
                     &s->tmp,  &s->zero, &s->occ,  &s->rankbuf};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) clReleaseMemObject(*all[i]);
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].cam) clReleaseMemObject(s->taps[t].cam);
    free(s->rank);
    for (int i = 0; i < s->n_pend; i++) free(s->pend[i].rank);
    free(s->pend);
}

static cnn_grad_mode mode_of(cnn_gmethod m)
{
    return m == CNN_GM_GUIDED ? CNN_GRAD_GUIDED : m == CNN_GM_DECONVNET ? CNN_GRAD_DECONV : CNN_GRAD_PLAIN;
}

static bool is_sampling(cnn_gmethod m) { return m == CNN_GM_SMOOTHGRAD || m == CNN_GM_INTEGRATED; }

/* Methods that run their own forward passes after the batch's other maps
 * (they overwrite the network's tensors). */
static bool is_late(cnn_gmethod m) { return is_sampling(m) || m == CNN_GM_OCCLUSION; }

typedef struct ranked {
    float v;
    uint32_t i;
} ranked;

static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    bool na = isnan(a->v), nb = isnan(b->v); /* NaN last */
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Queues curves for the map just drawn by tap t for image b (h x w floats
 * at map + off on the device): its pixels ranked by value, largest first,
 * ties by position. */
static int queue_curves(run_state *s, cnn_vtap *t, int b, int cls, cl_mem map, size_t off)
{
    if (!t->curves || s->timing || t->entry < 0) return CNN_OK;
    size_t px = (size_t)n_in_px(s);
    float *v = cnn_malloc(px * sizeof *v);
    ranked *r = cnn_malloc(px * sizeof *r);
    uint32_t *rank = cnn_malloc(px * sizeof *rank);
    int status = v && r && rank ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK) status = cnn_cl_read(&s->cl, map, off * sizeof(float), px * sizeof(float), v, "curves");
    if (status == CNN_OK && s->n_pend == s->cap_pend) {
        int cap = s->cap_pend ? 2 * s->cap_pend : 16;
        pending *p = cnn_realloc(s->pend, (size_t)cap * sizeof *p);
        if (p) {
            s->pend = p;
            s->cap_pend = cap;
        } else {
            status = CNN_ERR_NOMEM;
        }
    }
    if (status == CNN_OK) {
        for (size_t i = 0; i < px; i++) r[i] = (ranked){v[i], (uint32_t)i};
        qsort(r, px, sizeof *r, cmp_ranked);
        for (size_t i = 0; i < px; i++) rank[r[i].i] = (uint32_t)i;
        s->pend[s->n_pend++] = (pending){.t = t, .b = b, .cls = cls, .entry = t->entry, .rank = rank};
        rank = NULL;
    }
    free(v);
    free(r);
    free(rank);
    return status;
}

/* Target of tap t for image b at rank r (r < topk), or -1 past the output. */
static int target(const run_state *s, const cnn_vtap *t, int b, int r)
{
    return t->cls_fixed >= 0 ? t->cls_fixed : s->rank[b * 10 + r];
}

/* Maps of one tap from the gradients of the last backward pass. */
static int tap_maps(run_state *s, cnn_vtap *t, int nb, const int *cls, const int *slot_of, cnn_grad_mode mode)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    int px = n_in_px(s), C = g->in_c;
    char what[256];
    snprintf(what, sizeof what, "%s %s", t->layer_name, cnn_gmethod_names[t->method]);
    cl_mem din = cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT);
    int raw_h = g->in_h, raw_w = g->in_w;
    cl_mem raw = s->maps;
    int plane = 0;
    switch (t->method) {
    case CNN_GM_SALIENCY:
    case CNN_GM_GUIDED:
    case CNN_GM_DECONVNET:
        CNN_TRY_RET(cnn_gm_chan_maxabs(cl, din, 0, nb, C, px, s->maps, 0, what));
        break;
    case CNN_GM_GRADXINPUT:
        CNN_TRY_RET(cnn_gm_chan_dot(cl, din, 0, s->net.input, 0, nb, C, px, s->maps, 0, what));
        break;
    case CNN_GM_GUIDED_GRADCAM:
        if (mode == CNN_GRAD_GUIDED) {
            CNN_TRY_RET(cnn_gm_chan_maxabs(cl, din, 0, nb, C, px, s->maps, 0, what));
            CNN_TRY_RET(cnn_gm_mul(cl, s->maps, 0, t->cam, 0, s->maps, 0, (size_t)nb * px, what));
            break;
        }
        /* the plain pass computes the cam */
        __attribute__((fallthrough));
    case CNN_GM_GRADCAM:
    case CNN_GM_GRADCAMPP:
    case CNN_GM_LAYERCAM: {
        const cnn_layer *ly = &g->layers[t->layer];
        plane = ly->h * ly->w;
        cnn_cam_kind kind = t->method == CNN_GM_GRADCAMPP ? CNN_CAM_GRADCAMPP
                            : t->method == CNN_GM_LAYERCAM ? CNN_CAM_LAYERCAM
                                                           : CNN_CAM_GRADCAM;
        CNN_TRY_RET(cnn_gm_cam(cl, kind, cnn_net_buffer(&s->net, t->layer), 0, cnn_backward_grad(&s->bw, t->layer),
                               0, nb, ly->c, plane, s->camw, s->cams, 0, what));
        cl_mem dst = t->method == CNN_GM_GUIDED_GRADCAM ? t->cam : s->maps;
        CNN_TRY_RET(cnn_gm_resize(cl, s->cams, 0, nb, ly->h, ly->w, dst, 0, g->in_h, g->in_w, what));
        if (t->method == CNN_GM_GUIDED_GRADCAM) return CNN_OK; /* drawn in the guided pass */
        raw = s->cams;
        raw_h = ly->h;
        raw_w = ly->w;
        break;
    }
    default:
        CNN_ASSERT(!"sampling methods have their own loop");
    }
    if (!slot_of) return CNN_OK; /* timing: the map is computed, not drawn */
    for (int b = 0; b < nb; b++) {
        int k = slot_of[b];
        size_t raw_off = raw == s->cams ? (size_t)b * plane : (size_t)b * px;
        CNN_TRY_RET(cnn_vtap_map(&s->viz, t, s->maps, (size_t)b * px, g->in_h, g->in_w, s->img8[b], C, cls[b],
                                 s->inputs.paths[k], s->stems[k], s->o.npy, raw, raw_off, raw_h, raw_w, NULL));
        CNN_TRY_RET(queue_curves(s, t, b, cls[b], s->maps, (size_t)b * px));
    }
    return CNN_OK;
}

/* Ranks of each image's classes by its output (top 10). */
static int rank_classes(run_state *s, int nb)
{
    const cnn_graph *g = &s->l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    int *idx = cnn_malloc(nout * sizeof *idx);
    if (!idx) return CNN_ERR_NOMEM;
    for (int b = 0; b < nb; b++) {
        for (size_t i = 0; i < nout; i++) idx[i] = (int)i;
        g_sort_values = s->logits + (size_t)b * nout;
        qsort(idx, nout, sizeof *idx, cmp_idx);
        for (int r = 0; r < 10; r++) s->rank[b * 10 + r] = idx[(size_t)r < nout ? r : 0];
    }
    free(idx);
    return CNN_OK;
}

/* Whether tap vt's maps come from the backward pass with ReLU rule `mode`,
 * score prob and target key (rank r >= 0, or fixed class f as -1 - f). */
static bool in_pass(const cnn_vtap *vt, cnn_grad_mode mode, bool prob, int key)
{
    if (vt->kind != CNN_TAP_GRADIENT || is_late(vt->method) || vt->prob != prob) return false;
    bool in_mode = mode_of(vt->method) == mode || (vt->method == CNN_GM_GUIDED_GRADCAM && mode == CNN_GRAD_GUIDED);
    bool key_ok = vt->cls_fixed >= 0 ? key == -1 - vt->cls_fixed : key >= 0 && key < vt->topk;
    return in_mode && key_ok;
}

/* The lowest layer whose gradient tap vt needs in a pass with ReLU rule
 * `mode` (CNN_GRAPH_INPUT: the input's). */
static int need_of(const cnn_vtap *vt, cnn_grad_mode mode)
{
    switch (vt->method) {
    case CNN_GM_GRADCAM:
    case CNN_GM_GRADCAMPP:
    case CNN_GM_LAYERCAM:
        return vt->layer;
    case CNN_GM_GUIDED_GRADCAM:
        return mode == CNN_GRAD_GUIDED ? CNN_GRAPH_INPUT : vt->layer;
    default:
        return CNN_GRAPH_INPUT;
    }
}

/* All single-pass gradient maps of a batch: one backward per (ReLU rule,
 * score, target rank or fixed class) that some tap asks for. */
static int gradient_maps(run_state *s, int nb, const int *slot_of)
{
    const cnn_input_spec *in = &s->l.pipe.input;
    size_t len = (size_t)in->c * in->h * in->w;
    for (int b = 0; b < nb; b++)
        CNN_TRY_RET(cnn_vctx_input_u8(&s->viz, in, s->net.input, (size_t)b * len, s->img8[b], "input image"));
    CNN_TRY_RET(rank_classes(s, nb));
    int cls[4096];
    static const cnn_grad_mode modes[] = {CNN_GRAD_PLAIN, CNN_GRAD_GUIDED, CNN_GRAD_DECONV};
    for (int mi = 0; mi < 3; mi++) {
        for (int prob = 0; prob < 2; prob++) {
            /* keys: rank r >= 0, or fixed class f as -1 - f */
            for (int key = -(int)cnn_layer_numel(&s->l.graph.layers[s->l.graph.n - 1]); key < 10; key++) {
                bool any = false;
                int stop = s->l.graph.n - 1;
                for (int t = 0; t < s->n_taps; t++)
                    if (in_pass(&s->taps[t], modes[mi], prob == 1, key)) {
                        any = true;
                        int need = need_of(&s->taps[t], modes[mi]);
                        if (need < stop) stop = need;
                    }
                if (!any) continue;
                CNN_TRY_RET(interrupted(s));
                for (int b = 0; b < nb; b++) cls[b] = key >= 0 ? s->rank[b * 10 + key] : -1 - key;
                CNN_TRY_RET(cnn_backward_run(&s->bw, nb, cls, prob == 1, s->logits, modes[mi], stop));
                for (int t = 0; t < s->n_taps; t++)
                    if (in_pass(&s->taps[t], modes[mi], prob == 1, key))
                        CNN_TRY_RET(tap_maps(s, &s->taps[t], nb, cls, slot_of, modes[mi]));
            }
        }
    }
    return CNN_OK;
}

/* --repeat with gradient taps: each single-pass method timed as the user
 * would run it (forward, backward down to what it needs, the map on the
 * device; no file written), median of the repeats after one warm-up. */
static int repeat_gradients(run_state *s, int nb)
{
    const cnn_graph *g = &s->l.graph;
    int reps = s->o.repeat, cls[4096];
    double *t = cnn_calloc((size_t)reps + 1, sizeof *t);
    if (!t) return CNN_ERR_NOMEM;
    int status = CNN_OK;
    for (int ti = 0; ti < s->n_taps && status == CNN_OK; ti++) {
        cnn_vtap *vt = &s->taps[ti];
        if (vt->kind != CNN_TAP_GRADIENT || is_late(vt->method) || vt->method == CNN_GM_GUIDED_GRADCAM) continue;
        cnn_grad_mode mode = mode_of(vt->method);
        for (int r = 0; r <= reps && status == CNN_OK; r++) {
            double t0 = cnn_now_ms();
            status = cnn_net_forward(&s->net, nb);
            if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, nb, s->logits);
            if (status == CNN_OK) status = rank_classes(s, nb);
            for (int b = 0; b < nb; b++) cls[b] = target(s, vt, b, 0);
            if (status == CNN_OK)
                status = cnn_backward_run(&s->bw, nb, cls, vt->prob, s->logits, mode, need_of(vt, mode));
            if (status == CNN_OK) status = tap_maps(s, vt, nb, cls, NULL, mode);
            cl_int err = status == CNN_OK ? clFinish(s->cl.queue) : CL_SUCCESS;
            if (err != CL_SUCCESS)
                status = cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (gradient)", cnn_cl_error_name(err));
            t[r] = cnn_now_ms() - t0; /* t[0]: the warm-up */
        }
        if (status != CNN_OK) break;
        qsort(t + 1, (size_t)reps, sizeof *t, cmp_double);
        double med = reps % 2 ? t[1 + reps / 2] : 0.5 * (t[reps / 2] + t[1 + reps / 2]);
        printf("gradient %s:%s: median %.2f ms over %d runs (batch %d; forward + backward + map)\n", vt->layer_name,
               cnn_gmethod_names[vt->method], med, reps, nb);
    }
    free(t);
    return status;
}

/* The score of class c for image b of the last forward (logit or prob). */
static double score_of(const float *logits, size_t nout, int c, bool prob)
{
    if (!prob) return logits[c];
    double mx = -INFINITY, sum = 0;
    for (size_t k = 0; k < nout; k++) mx = fmax(mx, logits[k]);
    for (size_t k = 0; k < nout; k++) sum += exp((double)logits[k] - mx);
    return exp((double)logits[c] - mx) / sum;
}

/* The baseline of tap t's method for the image at xsave + x_off into
 * s->base: the input blurred, 0 in network units, or a constant pixel
 * value through the input's normalisation (black = 0). */
static int fill_baseline(run_state *s, const cnn_vtap *t, size_t x_off, const char *what)
{
    const cnn_graph *g = &s->l.graph;
    const cnn_input_spec *in = &s->l.pipe.input;
    size_t px = (size_t)n_in_px(s), len = (size_t)g->in_c * px;
    if (t->base_blur)
        return cnn_gm_blur(&s->cl, s->xsave, x_off, g->in_c, g->in_h, g->in_w, cnn_gm_blur_sigma(g->in_h, g->in_w),
                           s->tmp, s->base, 0, what);
    float *base = cnn_malloc(len * sizeof *base);
    if (!base) return CNN_ERR_NOMEM;
    for (int c = 0; c < g->in_c; c++)
        for (size_t p = 0; p < px; p++)
            base[c * px + p] = t->base_zero ? 0.0f : (t->base_pixel * in->scale - in->mean[c]) / in->std[c];
    int status = cnn_cl_write(&s->cl, s->base, 0, len * sizeof(float), base, what);
    free(base);
    return status;
}

/* SmoothGrad and Integrated Gradients of image b (its input saved at
 * xsave + b * len): the copies run through the network in chunks; this
 * overwrites the network's tensors, so it comes after everything else of
 * the batch. */
static int sampling_maps(run_state *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)n_in_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    char what[256];
    snprintf(what, sizeof what, "input %s", cnn_gmethod_names[t->method]);
    size_t x_off = (size_t)b * len;
    float sigma = 0;
    if (t->method == CNN_GM_SMOOTHGRAD) {
        /* sigma is a fraction of the input's value range */
        float st[CNN_STATS_STRIDE];
        CNN_TRY_RET(cnn_viz_stats(&s->viz.viz, s->xsave, x_off, len, len, 1, s->camw, what));
        CNN_TRY_RET(cnn_cl_read(cl, s->camw, 0, sizeof st, st, what));
        sigma = t->sigma * (st[CNN_ST_MAX] - st[CNN_ST_MIN]);
    } else {
        CNN_TRY_RET(fill_baseline(s, t, x_off, what));
    }
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    int *cls = cnn_malloc((size_t)s->chunk * sizeof *cls);
    int status = lg && cls ? CNN_OK : CNN_ERR_NOMEM;
    for (int r = 0; r < (t->cls_fixed >= 0 ? 1 : t->topk) && status == CNN_OK; r++) {
        int c = target(s, t, b, r);
        for (int k0 = 0; k0 < t->samples && status == CNN_OK; k0 += s->chunk) {
            int m = t->samples - k0 < s->chunk ? t->samples - k0 : s->chunk;
            if ((status = interrupted(s)) < 0) break;
            if (t->method == CNN_GM_SMOOTHGRAD)
                status = cnn_gm_noise(cl, s->xsave, x_off, len, m, k0, sigma, 0x5eedu + (uint32_t)k, s->net.input, 0,
                                      what);
            else
                status = cnn_gm_path(cl, s->xsave, x_off, s->base, 0, len, m, k0, t->samples, s->net.input, 0, what);
            if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
            if (status == CNN_OK && t->prob) status = cnn_net_read(&s->net, g->n - 1, m, lg);
            for (int j = 0; j < m; j++) cls[j] = c;
            if (status == CNN_OK) status = cnn_backward_run(&s->bw, m, cls, t->prob, lg, CNN_GRAD_PLAIN, CNN_GRAPH_INPUT);
            cl_mem din = cnn_backward_grad(&s->bw, CNN_GRAPH_INPUT);
            if (status == CNN_OK && t->method == CNN_GM_SMOOTHGRAD) {
                status = cnn_gm_chan_maxabs(cl, din, 0, m, g->in_c, (int)px, s->maps, 0, what);
                if (status == CNN_OK)
                    status = cnn_gm_sum_blocks(cl, s->maps, 0, m, px, 1.0f / (float)t->samples, s->acc, 0, k0 > 0,
                                               what);
            } else if (status == CNN_OK) {
                status = cnn_gm_sum_blocks(cl, din, 0, m, len, 1.0f / (float)t->samples, s->gsum, 0, k0 > 0, what);
            }
        }
        char note[256] = "";
        if (status == CNN_OK && t->method == CNN_GM_INTEGRATED) {
            /* attribution = (x - x') * mean gradient, summed over channels;
             * completeness: its sum against score(x) - score(x') */
            CNN_CL_TRY(clEnqueueCopyBuffer(cl->queue, s->xsave, s->acc, x_off * sizeof(float), 0, len * sizeof(float),
                                           0, NULL, NULL),
                       what, done);
            status = cnn_gm_axpby(cl, s->base, 0, -1.0f, s->acc, 0, 1.0f, len, what);
            if (status == CNN_OK)
                status = cnn_gm_chan_dot(cl, s->gsum, 0, s->acc, 0, 1, g->in_c, (int)px, s->maps, 0, what);
            /* the baseline's score */
            if (status == CNN_OK)
                CNN_CL_TRY(clEnqueueCopyBuffer(cl->queue, s->base, s->net.input, 0, 0, len * sizeof(float), 0, NULL,
                                               NULL),
                           what, done);
            if (status == CNN_OK) status = cnn_net_forward(&s->net, 1);
            if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, 1, lg);
            float st[CNN_STATS_STRIDE];
            if (status == CNN_OK) status = cnn_viz_stats(&s->viz.viz, s->maps, 0, px, px, 1, s->camw, what);
            if (status == CNN_OK) status = cnn_cl_read(cl, s->camw, 0, sizeof st, st, what);
            if (status == CNN_OK) {
                double sum = (double)st[CNN_ST_MEAN] * st[CNN_ST_FINITE];
                double diff = score_of(logits0, nout, c, t->prob) - score_of(lg, nout, c, t->prob);
                snprintf(note, sizeof note, "completeness: attributions sum to %.6g, score difference %.6g (%.2f%%)",
                         sum, diff, fabs(diff) > 0 ? 100.0 * fabs(sum - diff) / fabs(diff) : 0.0);
            }
        } else if (status == CNN_OK) {
            CNN_CL_TRY(clEnqueueCopyBuffer(cl->queue, s->acc, s->maps, 0, 0, px * sizeof(float), 0, NULL, NULL), what,
                       done);
        }
        if (status == CNN_OK && !s->timing)
            status = cnn_vtap_map(&s->viz, t, s->maps, 0, g->in_h, g->in_w, s->img8[b], g->in_c, c,
                                  s->inputs.paths[k], s->stems[k], s->o.npy, s->maps, 0, g->in_h, g->in_w,
                                  note[0] ? note : NULL);
        if (status == CNN_OK) status = queue_curves(s, t, b, c, s->maps, 0);
    }
done:
    free(lg);
    free(cls);
    return status;
}

/* Occlusion of image b (input at xsave + b * len): every window position
 * covered by the baseline in turn, the copies run in chunks; the map is
 * each pixel's mean score drop over the windows that cover it, for each
 * target class from the same passes. */
static int occlusion_maps(run_state *s, cnn_vtap *t, int b, int k, const float *logits0)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)n_in_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    const char *what = "input occlusion";
    size_t x_off = (size_t)b * len;
    CNN_TRY_RET(fill_baseline(s, t, x_off, what));
    int ny = cnn_gm_positions(g->in_h, t->window, t->stride), nx = cnn_gm_positions(g->in_w, t->window, t->stride);
    int nw = ny * nx, nt = t->cls_fixed >= 0 ? 1 : t->topk;
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    float *d = cnn_malloc((size_t)nt * nw * sizeof *d);
    int status = lg && d ? CNN_OK : CNN_ERR_NOMEM;
    for (int w0 = 0; w0 < nw && status == CNN_OK; w0 += s->chunk) {
        int m = nw - w0 < s->chunk ? nw - w0 : s->chunk;
        if ((status = interrupted(s)) < 0) break;
        status = cnn_gm_occlude(cl, s->xsave, x_off, s->base, 0, g->in_c, g->in_h, g->in_w, t->window, t->stride, m,
                                w0, s->net.input, 0, what);
        if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
        if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
        for (int r = 0; r < nt && status == CNN_OK; r++) {
            int c = target(s, t, b, r);
            double s0 = score_of(logits0, nout, c, t->prob);
            for (int j = 0; j < m; j++)
                d[(size_t)r * nw + w0 + j] = (float)(s0 - score_of(lg + (size_t)j * nout, nout, c, t->prob));
        }
    }
    for (int r = 0; r < nt && status == CNN_OK; r++) {
        int c = target(s, t, b, r);
        char note[160];
        snprintf(note, sizeof note, "occlusion: %d x %d windows of %d px, stride %d, %s baseline", ny, nx, t->window,
                 t->stride, t->base_blur ? "blurred" : t->base_zero ? "zero" : "pixel-value");
        status = cnn_cl_write(cl, s->occ, 0, (size_t)nw * sizeof(float), d + (size_t)r * nw, what);
        if (status == CNN_OK)
            status = cnn_gm_occlusion_map(cl, s->occ, 0, g->in_h, g->in_w, t->window, t->stride, s->maps, 0, what);
        if (status == CNN_OK && !s->timing)
            status = cnn_vtap_map(&s->viz, t, s->maps, 0, g->in_h, g->in_w, s->img8[b], g->in_c, c,
                                  s->inputs.paths[k], s->stems[k], s->o.npy, s->maps, 0, g->in_h, g->in_w, note);
        if (status == CNN_OK) status = queue_curves(s, t, b, c, s->maps, 0);
    }
    free(lg);
    free(d);
    return status;
}

/* Deletion and insertion curves of the queued maps (RISE, Petsiuk et al.
 * 2018): at step i of n the first floor(i * px / n) pixels by rank are
 * replaced by 0 in network units (deletion) or taken from the input into
 * its blurred copy (insertion); the curve is the target's softmax
 * probability at each of the n + 1 steps, its area the trapezoid rule on
 * [0, 1]. */
static int run_curves(run_state *s)
{
    const cnn_graph *g = &s->l.graph;
    cnn_cl *cl = &s->cl;
    size_t px = (size_t)n_in_px(s), len = (size_t)g->in_c * px;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    const char *what = "deletion/insertion curves";
    float *lg = cnn_malloc((size_t)s->chunk * nout * sizeof *lg);
    int status = lg ? CNN_OK : CNN_ERR_NOMEM;
    for (int i = 0; i < s->n_pend && status == CNN_OK; i++) {
        const pending *p = &s->pend[i];
        int n = p->t->curves;
        size_t x_off = (size_t)p->b * len;
        float *curve = cnn_malloc(2 * ((size_t)n + 1) * sizeof *curve);
        if (!curve) {
            status = CNN_ERR_NOMEM;
            break;
        }
        status = cnn_cl_write(cl, s->rankbuf, 0, px * sizeof(uint32_t), p->rank, what);
        if (status == CNN_OK)
            status = cnn_gm_blur(cl, s->xsave, x_off, g->in_c, g->in_h, g->in_w, cnn_gm_blur_sigma(g->in_h, g->in_w),
                                 s->tmp, s->base, 0, what);
        double auc[2] = {0, 0};
        for (int ins = 0; ins < 2 && status == CNN_OK; ins++) {
            float *cv = curve + (size_t)ins * (n + 1);
            cl_mem a = ins ? s->xsave : s->zero, bb = ins ? s->base : s->xsave;
            size_t a_off = ins ? x_off : 0, b_off = ins ? 0 : x_off;
            for (int s0 = 0; s0 <= n && status == CNN_OK; s0 += s->chunk) {
                int m = n + 1 - s0 < s->chunk ? n + 1 - s0 : s->chunk;
                if ((status = interrupted(s)) < 0) break;
                status = cnn_gm_curve(cl, a, a_off, bb, b_off, s->rankbuf, g->in_c, (int)px, m, s0, n, s->net.input, 0,
                                      what);
                if (status == CNN_OK) status = cnn_net_forward(&s->net, m);
                if (status == CNN_OK) status = cnn_net_read(&s->net, g->n - 1, m, lg);
                for (int j = 0; j < m && status == CNN_OK; j++)
                    cv[s0 + j] = (float)score_of(lg + (size_t)j * nout, nout, p->cls, true);
            }
            for (int j = 0; j < n; j++) auc[ins] += 0.5 * ((double)cv[j] + cv[j + 1]) / n;
        }
        if (status == CNN_OK)
            status = cnn_manifest_set_curves(&s->manifest, p->entry, curve, curve + n + 1, n + 1, auc[0], auc[1]);
        free(curve);
    }
    for (int i = 0; i < s->n_pend; i++) free(s->pend[i].rank);
    s->n_pend = 0;
    free(lg);
    return status;
}

/* The batch's maps that run their own forward passes (SmoothGrad,
 * Integrated Gradients, occlusion), then the queued curves. */
static int late_batch(run_state *s, int nb, const int *slot_of)
{
    bool any = s->n_pend > 0;
    for (int t = 0; t < s->n_taps; t++) any |= s->taps[t].kind == CNN_TAP_GRADIENT && is_late(s->taps[t].method);
    if (!any) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    size_t len = (size_t)g->in_c * n_in_px(s), nout = cnn_layer_numel(&g->layers[g->n - 1]);
    int status = CNN_OK;
    CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, s->net.input, s->xsave, 0, 0, (size_t)nb * len * sizeof(float), 0,
                                   NULL, NULL),
               "saved inputs", done);
    for (int b = 0; b < nb && status == CNN_OK; b++)
        for (int t = 0; t < s->n_taps && status == CNN_OK; t++) {
            cnn_vtap *vt = &s->taps[t];
            if (vt->kind != CNN_TAP_GRADIENT || !is_late(vt->method)) continue;
            const float *lg0 = s->logits + (size_t)b * nout;
            status = vt->method == CNN_GM_OCCLUSION ? occlusion_maps(s, vt, b, slot_of[b], lg0)
                                                    : sampling_maps(s, vt, b, slot_of[b], lg0);
        }
    if (status == CNN_OK) status = run_curves(s);
    /* the network input as it was (a later --repeat times it) */
    if (status == CNN_OK)
        CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, s->xsave, s->net.input, 0, 0, (size_t)nb * len * sizeof(float), 0,
                                       NULL, NULL),
                   "saved inputs", done);
done:
    return status;
}

/* --repeat, the methods with their own passes: one timed run each of
 * image 0 (after the single-pass timings, so every kernel is built), the
 * map computed, nothing drawn, no curves. */
static int repeat_late(run_state *s, int nb)
{
    const cnn_graph *g = &s->l.graph;
    size_t len = (size_t)g->in_c * n_in_px(s);
    int status = CNN_OK;
    CNN_CL_TRY(clEnqueueCopyBuffer(s->cl.queue, s->net.input, s->xsave, 0, 0, (size_t)nb * len * sizeof(float), 0,
                                   NULL, NULL),
               "saved inputs", done);
    s->timing = true;
    for (int ti = 0; ti < s->n_taps && status == CNN_OK; ti++) {
        cnn_vtap *vt = &s->taps[ti];
        if (vt->kind != CNN_TAP_GRADIENT || !is_late(vt->method)) continue;
        int passes = vt->samples;
        bool occ = vt->method == CNN_GM_OCCLUSION;
        if (occ)
            passes = cnn_gm_positions(g->in_h, vt->window, vt->stride) * cnn_gm_positions(g->in_w, vt->window, vt->stride);
        double t0 = cnn_now_ms();
        status = occ ? occlusion_maps(s, vt, 0, 0, s->logits) : sampling_maps(s, vt, 0, 0, s->logits);
        cl_int err = status == CNN_OK ? clFinish(s->cl.queue) : CL_SUCCESS;
        if (err != CL_SUCCESS)
            status = cnn_error_set(CNN_ERR_DEVICE, "clFinish failed: %s (%s)", cnn_cl_error_name(err),
                                   cnn_gmethod_names[vt->method]);
        double ms = cnn_now_ms() - t0;
        if (status == CNN_OK)
            printf("gradient %s:%s: one run %.2f ms (%d %s in batches of up to %d, %.2f ms per copy)\n", vt->layer_name,
                   cnn_gmethod_names[vt->method], ms, passes, occ ? "forward passes" : "forward+backward passes",
                   s->chunk, ms / passes);
    }
    s->timing = false;
done:
    return status;
}

static void run_state_free(run_state *s)
{
    cnn_png_pool_free(s->pool); /* waits for files still being encoded */
    cnn_outdir_close(&s->od);   /* without a commit, nothing of this run stays */
    free_gradients(s);
    for (int t = 0; t < s->n_taps; t++) cnn_vtap_release(&s->taps[t]);
    if (s->viz_ready) cnn_vctx_free(&s->viz);
    if (s->net_ready) cnn_net_free(&s->net);
    if (s->cl_ready) cnn_cl_free(&s->cl);
    loaded_free(&s->l);
    free(s->out_dir);
    free(s->taps);
    free(s->keep);
    cnn_manifest_free(&s->manifest);
    cnn_json_free(&s->preds);
    free(s->csv);
    if (s->stems)
        for (int i = 0; i < s->inputs.n; i++) free(s->stems[i]);
    free(s->stems);
    free(s->npy);
    cnn_inputs_free(&s->inputs);
    free(s->logits);
    free(s->host_tmp);
    free(s->rin);
    free(s->rpred);
    free(s->o.inputs);
    free(s->o.taps);
}

/* Loads up to `batch` readable inputs from *k on into the network input;
 * slot_of[j] is the input in slot j; returns the count in *n.  Unreadable
 * inputs are skipped (and counted when `report`). */
static int load_batch(run_state *s, int batch, int *k, int *slot_of, int *n, bool report)
{
    int b = 0;
    while (b < batch && *k < s->inputs.n) {
        int st = load_input(s, *k, b);
        if (st == CNN_ERR_INPUT) {
            if (report) {
                if (!s->first_skip[0]) snprintf(s->first_skip, sizeof s->first_skip, "%s", cnn_error_message());
                if (s->inputs.n > 1) cnn_print_line(stderr, "cnnviz-cl: skipped: ", cnn_error_message());
                s->failed_inputs++;
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

/* Taps with the `global` scope need one range over every input: one pass
 * gathers min/max, a second the histogram when clipping, before any image
 * is drawn. */
static int global_passes(run_state *s, int batch, int *slot_of)
{
    bool any = false, hist = false;
    for (int t = 0; t < s->n_taps; t++) {
        any |= s->taps[t].kind == CNN_TAP_ACTIVATIONS && s->taps[t].scope == CNN_SCOPE_GLOBAL;
        hist |= s->taps[t].kind == CNN_TAP_ACTIVATIONS && cnn_vtap_needs_hist(&s->taps[t]);
    }
    if (!any) return CNN_OK;
    const cnn_graph *g = &s->l.graph;
    for (int pass = 0; pass < (hist ? 2 : 1); pass++) {
        if (!s->o.quiet)
            fprintf(stderr, "cnnviz-cl: global range: pass %d of %d over %d inputs\n", pass + 1, hist ? 3 : 2,
                    s->inputs.n);
        bool first = true;
        for (int k = 0; k < s->inputs.n;) {
            int n = 0;
            int status = interrupted(s);
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
            }
            if (status < 0) return status;
        }
    }
    for (int t = 0; t < s->n_taps; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (vt->kind != CNN_TAP_ACTIVATIONS || vt->scope != CNN_SCOPE_GLOBAL) continue;
        int status = cnn_vtap_global_finish(&s->viz, vt);
        if (status < 0) return status;
    }
    return CNN_OK;
}

/* PNG pool and the input-independent taps (filters, weights), drawn from
 * the host parameters before the network takes them over. */
static int setup_viz(run_state *s)
{
    int level = s->o.png_level >= 0 ? s->o.png_level : s->l.pipe.png_level;
    CNN_TRY_RET(cnn_png_pool_create(0, level, 0, &s->pool));
    CNN_TRY_RET(cnn_vctx_init(&s->viz, &s->cl, &s->l.graph, s->pool, &s->manifest, s->wdir, s->o.quiet));
    s->viz.labels = s->l.labels;
    s->viz.n_labels = s->l.n_labels;
    s->viz_ready = true;
    for (int t = 0; t < s->n_taps; t++) {
        cnn_vtap *vt = &s->taps[t];
        if (vt->kind == CNN_TAP_FILTERS) CNN_TRY_RET(cnn_vtap_filters(&s->viz, vt));
        else if (vt->kind == CNN_TAP_WEIGHTS) CNN_TRY_RET(cnn_vtap_weights(&s->viz, vt));
    }
    return CNN_OK;
}

/* Device buffers of the activations taps. */
static int prepare_taps(run_state *s)
{
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].kind == CNN_TAP_ACTIVATIONS) CNN_TRY_RET(cnn_vtap_prepare(&s->viz, &s->taps[t]));
    return CNN_OK;
}

static int write_report(run_state *s)
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
static int open_output(run_state *s)
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

int cnn_cmd_run(int argc, char **argv)
{
    run_state s;
    memset(&s, 0, sizeof s);
    cnn_json_init(&s.preds, true);
    int status = parse_args(argc, argv, &s.o, false);
    if (status != CNN_OK) goto done;
    double t_start = cnn_now_ms();
    CNN_TRY(load_all(&s.o, &s.l), done);
    if (s.l.assumed[0] && !s.o.quiet) {
        char line[700];
        snprintf(line, sizeof line, "%s: preprocessing is not part of an ONNX model; assumed %s (--preprocess, "
                 "--mean, --std, --size change it)", s.o.config, s.l.assumed);
        cnn_print_line(stderr, "cnnviz-cl: ", line);
    }
    CNN_TRY(collect_taps(&s), done);
    if (s.o.n_inputs == 0 && s.o.repeat == 0) {
        status = cnn_error_set(CNN_ERR_USAGE, "run: no input: give images with --input (files, folders or @list.txt)");
        goto done;
    }
    for (int i = 0; i < s.o.n_inputs; i++) CNN_TRY(cnn_inputs_add(&s.inputs, s.o.inputs[i]), done);
    /* .npy inputs checked against the network now, before anything runs */
    const cnn_input_spec *net_in = &s.l.pipe.input;
    CNN_TRY(cnn_inputs_expand_tensors(&s.inputs, net_in->c, net_in->h, net_in->w, net_in->tensor), done);
    if (s.attrib && s.l.pipe.input.tensor) {
        status = cnn_error_set(CNN_ERR_USAGE, "run: gradient maps and occlusion are drawn over the input image; this "
                               "network takes a tensor (color: none)");
        goto done;
    }
    CNN_TRY(make_stems(&s), done);
    if (s.o.out) s.out_dir = cnn_strdup(s.o.out);
    else if (s.l.pipe.out_dir) s.out_dir = cnn_strdup(s.l.pipe.out_dir);
    else {
        char name[128];
        cnn_sanitize_name(s.l.pipe.model_name ? s.l.pipe.model_name : "model", name, sizeof name);
        s.out_dir = cnn_strfmt("out/%s", name);
    }
    if (!s.out_dir) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    /* The output folder first: a folder that is in use or not ours is
     * refused before the device is touched. */
    CNN_TRY(open_output(&s), done);
    if (s.o.npy) s.l.pipe.npy = true;
    s.o.npy = s.l.pipe.npy;
    bool report = s.l.pipe.report && !s.o.no_report && s.inputs.n > 0;
    s.images = report || s.n_taps > 0;

    double t_loaded = cnn_now_ms();
    status = cnn_cl_init(&s.cl, s.o.platform, s.o.device, s.o.profile);
    if (status == CNN_ERR_USAGE) {
        char msg[CNN_ERROR_MAX];
        snprintf(msg, sizeof msg, "%s", cnn_error_message());
        fprintf(stderr, "available devices:\n");
        cnn_cl_print_devices(stderr);
        cnn_error_set(status, "%s", msg);
    }
    if (status < 0) goto done;
    s.cl_ready = true;
    cnn_blas_apply_defaults(&s.cl);
    cnn_tune_apply(&s.cl); /* a `cnnviz-cl tune` result for this device, if any */
    int batch = s.o.batch;
    if (s.inputs.n && batch > s.inputs.n) batch = s.inputs.n;
    int net_batch = batch;
    if (s.attrib) {
        /* Gradient mode: every tensor is kept for the backward pass.
         * SmoothGrad / Integrated Gradients / occlusion / curve copies run
         * in chunks that fit in ~512 MiB of activations and gradients. */
        size_t per = 0;
        int samples = 0;
        for (int i = 0; i < s.l.graph.n; i++) {
            if (s.gradients) s.keep[i] = true;
            per += (s.gradients ? 8 : 4) * cnn_layer_numel(&s.l.graph.layers[i]);
        }
        for (int t = 0; t < s.n_taps; t++) {
            const cnn_vtap *v = &s.taps[t];
            if (v->kind != CNN_TAP_GRADIENT) continue;
            int want = is_sampling(v->method) ? v->samples : 0;
            if (v->method == CNN_GM_OCCLUSION)
                want = cnn_gm_positions(s.l.graph.in_h, v->window, v->stride) *
                       cnn_gm_positions(s.l.graph.in_w, v->window, v->stride);
            if (v->curves + 1 > want && v->curves) want = v->curves + 1;
            if (want > samples) samples = want;
        }
        int fit = (int)((512u << 20) / (per ? per : 1));
        if (samples > net_batch) net_batch = samples < fit ? samples : (fit > net_batch ? fit : net_batch);
    }
    /* before anything is written */
    CNN_TRY(check_memory(&s, net_batch), done);
    if (s.images) CNN_TRY(setup_viz(&s), done);
    /* Nothing reads the host parameters after this: the network releases
     * each layer's once it is on the device (float32 tensors upload
     * straight from the map), then the file is unmapped, unless buffers
     * of a CPU device are the file's pages. */
    double t_device = cnn_now_ms();
    CNN_TRY(cnn_net_create_consuming(&s.net, &s.cl, &s.l.graph, s.keep, net_batch, s.gradients), done);
    if (!s.net.any_in_place) cnn_weights_close(&s.l.weights);
    double t_net = cnn_now_ms();
    s.net_ready = true;
    if (s.images) CNN_TRY(prepare_taps(&s), done);
    if (s.attrib) CNN_TRY(setup_gradients(&s, batch), done);
    if (!s.o.quiet)
        fprintf(stderr, "cnnviz-cl: %s on %s (%s), plan %.1f MiB\n", s.l.pipe.model_name ? s.l.pipe.model_name : "model",
                s.cl.device_name, s.cl.platform_name, (double)s.net.plan.peak_bytes / 1048576.0);
    if (!s.o.quiet && s.net.choices_measured)
        fprintf(stderr, "cnnviz-cl: timed %d convolution shape%s on this device to choose their kernels (%.0f ms; "
                "kept in the cache for later runs)\n", s.net.choices_measured, s.net.choices_measured == 1 ? "" : "s",
                s.net.choices_ms);

    const cnn_graph *g = &s.l.graph;
    size_t nout = cnn_layer_numel(&g->layers[g->n - 1]);
    size_t maxn = nout;
    for (int i = 0; i < g->n; i++)
        if (cnn_layer_numel(&g->layers[i]) > maxn) maxn = cnn_layer_numel(&g->layers[i]);
    int top = s.o.top ? s.o.top : s.l.pipe.top;
    if ((size_t)top > nout) top = (int)nout;
    s.logits = cnn_malloc((size_t)batch * nout * sizeof(float));
    s.host_tmp = cnn_malloc(maxn * sizeof(float));
    if (report) {
        s.rin = cnn_calloc((size_t)s.inputs.n + 1, sizeof *s.rin);
        s.rpred = cnn_calloc(((size_t)s.inputs.n + 1) * (size_t)top, sizeof *s.rpred);
    }
    if (!s.logits || !s.host_tmp || (report && (!s.rin || !s.rpred))) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    cnn_json_array_begin(&s.preds);
    int *slot_of = cnn_calloc((size_t)batch, sizeof *slot_of);
    if (!slot_of) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    if (s.images) CNN_TRY(global_passes(&s, batch, slot_of), loop_done);
    double t_first = 0, t_loop = cnn_now_ms();
    int done_inputs = 0;
    for (int k = 0; k < s.inputs.n && status == CNN_OK;) {
        int b = 0;
        CNN_TRY(interrupted(&s), loop_done);
        CNN_TRY(load_batch(&s, batch, &k, slot_of, &b, true), loop_done);
        if (b == 0) break;
        CNN_TRY(cnn_net_forward(&s.net, b), loop_done);
        CNN_TRY(cnn_net_read(&s.net, g->n - 1, b, s.logits), loop_done);
        if (s.attrib) CNN_TRY(gradient_maps(&s, b, slot_of), loop_done);
        for (int j = 0; j < b && status == CNN_OK; j++) status = finish_input(&s, slot_of[j], j);
        if (status == CNN_OK && s.attrib) status = late_batch(&s, b, slot_of);
        done_inputs += b;
        if (!t_first) t_first = cnn_now_ms() - t_start;
        progress(&s, k, s.inputs.n, t_loop, k == s.inputs.n);
    }
loop_done:
    free(slot_of);
    if (status < 0) goto done;
    if (s.nonfinite_inputs) warn_nonfinite_outputs(&s, done_inputs);
    if (s.pool) CNN_TRY(cnn_png_pool_wait(s.pool), done);
    double loop_ms = cnn_now_ms() - t_loop;
    char measured[96] = "";
    if (s.net.choices_measured)
        snprintf(measured, sizeof measured, " (%d convolution shape%s timed to choose their kernel)",
                 s.net.choices_measured, s.net.choices_measured == 1 ? "" : "s");
    if (s.o.profile && done_inputs)
        printf("start-up: pipeline and weights read %.0f ms, device ready %.0f ms, network on the device %.0f ms%s, "
               "first output %.0f ms\n",
               t_loaded - t_start, t_device - t_start, t_net - t_start, measured, t_first);
    if (s.o.profile && done_inputs) {
        print_profile(&s);
        CNN_TRY(write_trace(&s), done);
    }
    if (s.o.repeat) CNN_TRY(run_repeat(&s, batch), done);
    if (s.o.repeat && s.gradients) CNN_TRY(repeat_gradients(&s, batch), done);
    if (s.o.repeat && s.attrib) CNN_TRY(repeat_late(&s, batch), done);
    cnn_json_array_end(&s.preds);
    if (s.inputs.n && done_inputs) {
        char *p = cnn_path_join(s.wdir, "predictions.json");
        status = p ? cnn_json_write_file(&s.preds, p) : CNN_ERR_NOMEM;
        free(p);
        if (status < 0) goto done;
        cnn_manifest_entry e = {.path = "predictions.json", .kind = "predictions", .channel = -1, .format = "json"};
        CNN_TRY(cnn_manifest_add(&s.manifest, &e), done);
        static const char header[] = "input,top1_index,top1_label,top1_prob\n";
        char *csv = cnn_malloc(sizeof header + s.csv_len);
        if (!csv) {
            status = CNN_ERR_NOMEM;
            goto done;
        }
        memcpy(csv, header, sizeof header - 1);
        if (s.csv_len) memcpy(csv + sizeof header - 1, s.csv, s.csv_len);
        p = cnn_path_join(s.wdir, "predictions.csv");
        status = p ? cnn_file_write_atomic(p, csv, sizeof header - 1 + s.csv_len) : CNN_ERR_NOMEM;
        free(p);
        free(csv);
        if (status < 0) goto done;
        e.path = "predictions.csv";
        e.format = "csv";
        CNN_TRY(cnn_manifest_add(&s.manifest, &e), done);
        if (report) CNN_TRY(write_report(&s), done);
        /* Everything is written: publish it (the earlier run's files stay
         * until here, and whatever failed before left them as they were). */
        CNN_TRY(cnn_outdir_commit(&s.od, &s.manifest), done);
    }
    if (!s.o.quiet && done_inputs) {
        fprintf(stderr,
                "cnnviz-cl: %d input%s in %.2f s (%.1f images/s), first output after %.0f ms; %ld PNG files; "
                "peak memory %.0f MiB\n",
                done_inputs, done_inputs == 1 ? "" : "s", loop_ms / 1000.0, done_inputs / (loop_ms / 1000.0), t_first,
                s.pool ? cnn_png_pool_written(s.pool) : 0L, peak_rss_mib());
        char line[1200];
        if (report) {
            snprintf(line, sizeof line, "wrote %s/index.html", s.out_dir);
            cnn_print_line(stderr, "cnnviz-cl: ", line);
        }
        snprintf(line, sizeof line, "wrote %s/manifest.json", s.out_dir);
        cnn_print_line(stderr, "cnnviz-cl: ", line);
    }
    if (s.failed_inputs && s.inputs.n == 1)
        status = cnn_error_set(CNN_ERR_INPUT, "%s", s.first_skip);
    else if (s.failed_inputs)
        status = cnn_error_set(CNN_ERR_INPUT, "%d of %d inputs could not be read (the 'skipped' lines above say why)%s",
                               s.failed_inputs, s.inputs.n, done_inputs ? "" : "; nothing was written");
done:
    if (status < 0) cnn_outdir_fix_message(&s.od);
    run_state_free(&s);
    return status > 0 ? CNN_OK : status;
}
