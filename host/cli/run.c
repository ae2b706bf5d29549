/* `run` and `info` on the command line: the options, the help, and the
 * printing; the work is the pipeline module's (pipeline/job.h, model.h). */
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "import/import.h"
#include "pipeline/job.h"
#include "pipeline/model.h"
#include "runtime/clrt.h"
#include "runtime/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "  --shard I/N       run part I (counted from 0) of N of the inputs: the expanded\n"
    "                    list (folders sorted by name) cut into N contiguous runs of\n"
    "                    whole batches; needs --out (one folder per part), which\n"
    "                    'cnnviz-cl merge' joins into the run of the whole list\n"
    "  --stats           gather the statistics of the taps drawn with normalize:\n"
    "                    global into DIR/stats.json and draw nothing (with\n"
    "                    --shard: one part's, for 'merge --stats')\n"
    "  --ranges FILE     draw normalize: global taps with the statistics of FILE\n"
    "                    (merge --stats) instead of gathering them: the parts of a\n"
    "                    run then share one range (README: global normalisation)\n"
    "  --repeat N        time N forward passes after one warm-up; print the median\n"
    "  --profile         per-layer device time table (with the kernel each\n"
    "                    convolution ran: winograd or im2col) and start-up\n"
    "                    phases (with --repeat: per-layer medians)\n"
    "  --platform SEL    OpenCL platform: index or part of its name\n"
    "  --device SEL      OpenCL device: index, part of its name, or gpu/cpu; 'all'\n"
    "                    or a list (0,2) runs on several devices, batches going to\n"
    "                    whichever is free, the output as one device writes it\n"
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
    "  examples      the run's inputs that excite each channel most (top: 9 by\n"
    "                the channel's max, by: mean for its mean; the first 16\n"
    "                channels, max_channels: N), each cut to the receptive field\n"
    "                of its best position: a row of crops per channel in\n"
    "                model/LAYER/examples.png, values in examples.json\n"
    "  maximize      an image optimised on the device to excite each channel\n"
    "                (the first 16, max_channels: N or channels: [..]; 256\n"
    "                Adam steps on a Fourier-space image with decorrelated\n"
    "                colours and random jitter, scale and rotation, as Lucid):\n"
    "                model/LAYER/maximize.png, objective values and curves in\n"
    "                maximize.json; a run of maximize taps needs no --input;\n"
    "                diversity: K makes K different images per channel;\n"
    "                size: 128 makes them 128 x 128 (the layers up to LAYER\n"
    "                run at that size)\n"
    "  dream         each input changed to excite the layer more (DeepDream: 4\n"
    "                octaves of 1.4, 10 steps each, random shifts):\n"
    "                INPUT/LAYER/dream.png, objective and shifts in dream.json\n"
    "gradient maps (why this class?), as PNG + overlay on the input (+ .npy):\n"
    "  input:saliency, input:guided, input:deconvnet, input:gradxinput,\n"
    "  input:smoothgrad (25 noisy copies), input:integrated (50 steps, black\n"
    "  baseline), input:fullgrad, LAYER:gradcam, LAYER:gradcampp,\n"
    "  LAYER:layercam, LAYER:xgradcam, LAYER:hirescam, LAYER:guided-gradcam\n"
    "  (LAYER: a conv or pool layer, e.g. the last conv)\n"
    "without gradients (forward passes only, as batches):\n"
    "  LAYER:scorecam, LAYER:ablationcam (one pass per channel), LAYER:eigencam,\n"
    "  input:occlusion (score drop when a window is covered), input:rise (4000\n"
    "  random masks), input:lime (1000 samples), input:kernelshap (2 M + 2048\n"
    "  samples) on 50 SLIC superpixels; configs/README.md gives each formula\n"
    "  --class top1|topK|INDEX|LABEL  which class to explain (default top1)\n"
    "  --score logit|prob             explain the logit (default) or probability\n"
    "  --curves N        deletion/insertion curves of every map, N steps: the\n"
    "                    class probability as the most important pixels are\n"
    "                    removed (to 0) / inserted (into a blurred copy); areas\n"
    "                    under them in manifest.json and the report\n"
    "  --road            ROAD of every map (remove and debias): the probability\n"
    "                    change as 10..90 % of the most (MoRF) or least (LeRF)\n"
    "                    relevant pixels are filled from their neighbours;\n"
    "                    (LeRF - MoRF) / 2 in manifest.json and the report,\n"
    "                    higher is more faithful (18 passes per map)\n"
    "  --sanity N        model randomisation check: every map computed again\n"
    "                    with the top conv/linear layer's weights random, then\n"
    "                    the next one down too, N layers; the Spearman rank\n"
    "                    correlation with the map drawn after each (near 0:\n"
    "                    the map depends on what the model learnt) in\n"
    "                    manifest.json and the report\n"
    "";

static const char RUN_HELP_MORE[] =
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
    cnn_job_opts job;
    const char *imp_flag; /* the first of --preprocess/--mean/--std/--size given, for the message when CONFIG is YAML */
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

/* "I/N": part I (from 0) of N. */
static int parse_shard(const char *v, int *index, int *count)
{
    char *end;
    long i = strtol(v, &end, 10), n = -1;
    bool ok = end != v && *end == '/' && v[0] >= '0' && v[0] <= '9';
    if (ok) {
        const char *d = end + 1;
        n = strtol(d, &end, 10);
        ok = end != d && !*end && d[0] >= '1' && d[0] <= '9' && n <= 1000000;
    }
    if (!ok) return cnn_error_set(CNN_ERR_USAGE, "--shard '%s': expected I/N, part I (from 0) of N parts, e.g. 0/4", v);
    if (i >= n)
        return cnn_error_set(CNN_ERR_USAGE, "--shard '%s': parts are counted from 0: I must be 0 to %ld", v, n - 1);
    *index = (int)i;
    *count = (int)n;
    return CNN_OK;
}

static int parse_args(int argc, char **argv, run_opts *o, bool info)
{
    cnn_job_opts_init(&o->job);
    o->imp_flag = NULL;
    o->job.inputs = calloc((size_t)argc, sizeof *o->job.inputs);
    o->job.taps = calloc((size_t)argc, sizeof *o->job.taps);
    if (!o->job.inputs || !o->job.taps) return cnn_error_set(CNN_ERR_NOMEM, "out of host memory");
    const char *cmd = info ? "info" : "run";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                                       \
    do {                                                                                                   \
        if (!v) return cnn_error_set(CNN_ERR_USAGE, "%s: option %s needs a value", cmd, a);               \
        i++;                                                                                               \
    } while (0)
        int used = cnn_cli_import_option(a, v, &o->job.imp);
        if (used < 0) return used;
        if (used) {
            if (!o->imp_flag) o->imp_flag = a;
            i++;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(info ? INFO_HELP : RUN_HELP, stdout);
            if (!info) fputs(RUN_HELP_TAPS, stdout);
            if (!info) fputs(RUN_HELP_MORE, stdout);
            return 1;
        } else if (!strcmp(a, "--weights")) {
            NEED_VALUE();
            o->job.weights = v;
        } else if (!strcmp(a, "--batch")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 4096, &o->job.batch) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--strict")) {
            o->job.strict = true;
        } else if (info) {
            if (a[0] == '-' || o->job.config)
                return cnn_error_set(CNN_ERR_USAGE, "info: unexpected argument '%s' (see 'cnnviz-cl info --help')", a);
            o->job.config = a;
        } else if (!strcmp(a, "--input")) {
            NEED_VALUE();
            o->job.inputs[o->job.n_inputs++] = v;
        } else if (!strcmp(a, "--out")) {
            NEED_VALUE();
            o->job.out = v;
        } else if (!strcmp(a, "--tap")) {
            NEED_VALUE();
            o->job.taps[o->job.n_taps++] = v;
        } else if (!strcmp(a, "--platform")) {
            NEED_VALUE();
            o->job.platform = v;
        } else if (!strcmp(a, "--device")) {
            NEED_VALUE();
            o->job.device = v;
        } else if (!strcmp(a, "--shard")) {
            NEED_VALUE();
            if (parse_shard(v, &o->job.shard_index, &o->job.shard_count) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--stats")) {
            o->job.stats = true;
        } else if (!strcmp(a, "--ranges")) {
            NEED_VALUE();
            o->job.ranges = v;
        } else if (!strcmp(a, "--top")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 1000, &o->job.top) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--repeat")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 100000, &o->job.repeat) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--npy")) {
            o->job.npy = true;
        } else if (!strcmp(a, "--no-taps")) {
            o->job.no_taps = true;
        } else if (!strcmp(a, "--class")) {
            NEED_VALUE();
            o->job.cls = v;
        } else if (!strcmp(a, "--score")) {
            NEED_VALUE();
            if (strcmp(v, "logit") != 0 && strcmp(v, "prob") != 0)
                return cnn_error_set(CNN_ERR_USAGE, "--score '%s': expected logit or prob", v);
            o->job.score = v;
        } else if (!strcmp(a, "--curves")) {
            NEED_VALUE();
            if (parse_int(a, v, 0, 1000, &o->job.curves) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--sanity")) {
            NEED_VALUE();
            if (parse_int(a, v, 1, 64, &o->job.sanity) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--road")) {
            o->job.road = 1;
        } else if (!strcmp(a, "--no-report")) {
            o->job.no_report = true;
        } else if (!strcmp(a, "--png-level")) {
            NEED_VALUE();
            if (parse_int(a, v, 0, 9, &o->job.png_level) < 0) return CNN_ERR_USAGE;
        } else if (!strcmp(a, "--profile")) {
            o->job.profile = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->job.quiet = true;
        } else if (!strcmp(a, "--wait-lock")) {
            o->job.wait_lock = true;
        } else if (a[0] == '-') {
            return cnn_error_set(CNN_ERR_USAGE, "run: unknown option '%s' (see 'cnnviz-cl run --help')", a);
        } else if (!o->job.config) {
            o->job.config = a;
        } else {
            return cnn_error_set(CNN_ERR_USAGE, "run: unexpected argument '%s' (inputs are given with --input)", a);
        }
#undef NEED_VALUE
    }
    if (!o->job.config)
        return cnn_error_set(CNN_ERR_USAGE, "%s: no pipeline file given (see 'cnnviz-cl %s --help')", cmd, cmd);
    if (o->imp_flag && !cnn_import_is_onnx(o->job.config))
        return cnn_error_set(CNN_ERR_USAGE, "%s: %s applies to ONNX models (MODEL.onnx); a pipeline file sets its "
                             "preprocessing under model.input", cmd, o->imp_flag);
    if (o->job.shard_count && !o->job.out)
        return cnn_error_set(CNN_ERR_USAGE, "run: --shard %d/%d needs --out: each part writes a folder of its own "
                             "(e.g. --out out/part%d), and 'cnnviz-cl merge' joins them",
                             o->job.shard_index, o->job.shard_count, o->job.shard_index);
    if (o->job.weights && cnn_import_is_onnx(o->job.config))
        return cnn_error_set(CNN_ERR_USAGE, "%s: --weights does not apply to an ONNX model: its weights are in it",
                             cmd);
    return CNN_OK;
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
    cnn_model l;
    cnn_model_opts mo = {.config = o.job.config, .weights = o.job.weights, .imp = o.job.imp, .strict = o.job.strict};
    status = cnn_model_load(&mo, &l);
    if (status < 0) {
        cnn_model_free(&l);
        goto out;
    }
    const cnn_graph *g = &l.graph;
    printf("%s: model '%s', input [%d, %d, %d], %d layers\n", o.job.config, l.pipe.model_name ? l.pipe.model_name : "?",
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
    status = cnn_plan_build(g, NULL, o.job.batch, &plan);
    if (status == CNN_OK) {
        char pc[32], mc[32];
        fmt_count(g->total_params, pc, sizeof pc);
        fmt_count(g->total_macs, mc, sizeof mc);
        printf("total: %s parameters, %s MACs per image\n", pc, mc);
        printf("device memory at batch %d: %.1f MiB peak (weights %.1f MiB, activations %.1f MiB in %d buffers, "
               "scratch %.1f MiB)\n",
               o.job.batch, (double)plan.peak_bytes / 1048576.0, (double)plan.weight_bytes / 1048576.0,
               (double)(plan.peak_bytes - plan.weight_bytes - plan.scratch_bytes - plan.input_bytes) / 1048576.0,
               plan.n_slots, (double)plan.scratch_bytes / 1048576.0);
        cnn_plan_free(&plan);
    }
    cnn_model_free(&l);
out:
    free(o.job.inputs);
    free(o.job.taps);
    return status > 0 ? CNN_OK : status;
}

/* The command line's log sink: info lines on stderr unless --quiet,
 * warnings always, predictions on stdout unless --quiet, results always; a
 * progress bar redrawn in place on a terminal, a plain line every ~5 s
 * otherwise (logs). */
typedef struct cli_log {
    bool quiet;
    double last_print;
} cli_log;

static void cli_emit(void *ctx, cnn_log_kind kind, const char *text)
{
    const cli_log *c = ctx;
    switch (kind) {
    case CNN_LOG_INFO:
        if (!c->quiet) cnn_print_line(stderr, "cnnviz-cl: ", text);
        break;
    case CNN_LOG_WARN: cnn_print_line(stderr, "cnnviz-cl: warning: ", text); break;
    case CNN_LOG_PREDICTION:
        if (!c->quiet) printf("%s\n", text);
        break;
    case CNN_LOG_RESULT: printf("%s\n", text); break;
    }
}

static void cli_progress(void *ctx, int done, int total, double rate, bool last)
{
    cli_log *c = ctx;
    if (c->quiet) return;
    double now = cnn_now_ms();
    if (isatty(STDERR_FILENO)) {
        if (!last && now - c->last_print < 100) return;
        int w = 30, fill = (int)((double)w * done / total);
        fprintf(stderr, "\r[%.*s%*s] %d/%d images, %.1f/s", fill, "##############################", w - fill, "",
                done, total, rate);
        if (last) fputc('\n', stderr);
    } else {
        if (!last && now - c->last_print < 5000) return;
        fprintf(stderr, "cnnviz-cl: %d/%d images, %.1f/s\n", done, total, rate);
    }
    c->last_print = now;
}

int cnn_cmd_run(int argc, char **argv)
{
    run_opts o;
    int status = parse_args(argc, argv, &o, false);
    if (status == CNN_OK) {
        cli_log c = {.quiet = o.job.quiet};
        cnn_log sink = {.emit = cli_emit, .progress = cli_progress, .ctx = &c};
        const cnn_log *old = cnn_log_use(&sink);
        cnn_job_result res;
        status = cnn_job_run(&o.job, &res);
        cnn_log_use(old);
        if (res.bad_device) {
            char msg[CNN_ERROR_MAX];
            snprintf(msg, sizeof msg, "%s", cnn_error_message());
            fprintf(stderr, "available devices:\n");
            cnn_cl_print_devices(stderr);
            cnn_error_set(status, "%s", msg);
        }
    }
    free(o.job.inputs);
    free(o.job.taps);
    return status > 0 ? CNN_OK : status;
}
