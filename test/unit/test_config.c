/* Pipeline files: a valid pipeline read field by field (block and flow
 * styles, every op and every key), the defaults, then malformed documents
 * that must each fail with CNN_ERR_INPUT at the right line and column, and
 * finally every configs/ YAML file in the source tree. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "config/config.h"
#include "viz/taps.h"
#include "model/graph.h"
#include "core/util.h"

#include <dirent.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *text, cnn_pipeline *p)
{
    return cnn_pipeline_parse("t.yaml", "cfgdir", text, strlen(text), p);
}

static bool feq(float a, double b) { return fabs((double)a - b) <= 1e-6 * (1 + fabs(b)); }

static void test_block_style(void)
{
    const char *text =
        "# every op, every key\n"                                      /* 1 */
        "version: 1\n"                                                 /* 2 */
        "model:\n"                                                     /* 3 */
        "  name: everything\n"                                         /* 4 */
        "  weights: w/model.safetensors\n"                             /* 5 */
        "  labels: /abs/labels.txt\n"                                  /* 6 */
        "  input:\n"                                                   /* 7 */
        "    shape: [3, 32, 48]\n"                                     /* 8 */
        "    color: rgb\n"                                             /* 9 */
        "    resize: {shorter: 64, crop: [32, 48]}\n"                  /* 10 */
        "    scale: 0.5\n"                                             /* 11 */
        "    mean: [0.485, 0.456, 0.406]\n"                            /* 12 */
        "    std: [0.229, 0.224, 0.225]\n"                             /* 13 */
        "layers:\n"                                                    /* 14 */
        "  - name: conv1\n"                                            /* 15 */
        "    op: conv2d\n"                                             /* 16 */
        "    in: input\n"                                              /* 17 */
        "    out: 8\n"                                                 /* 18 */
        "    kernel: [3, 5]\n"                                         /* 19 */
        "    stride: [1, 2]\n"                                         /* 20 */
        "    pad: [1, 2, 3, 4]\n"                                      /* 21 */
        "    dilation: 2\n"                                            /* 22 */
        "    groups: 2\n"                                              /* 23 */
        "    bias: false\n"                                            /* 24 */
        "    params: features.0\n"                                     /* 25 */
        "  - name: bn1\n"                                              /* 26 */
        "    op: batchnorm\n"                                          /* 27 */
        "    eps: 0.001\n"                                             /* 28 */
        "    params: features.1\n"                                     /* 29 */
        "  - {name: relu1, op: relu}\n"                                /* 30 */
        "  - {name: r6, op: relu6}\n"                                  /* 31 */
        "  - {name: leaky, op: leaky_relu, slope: 0.2}\n"              /* 32 */
        "  - {name: sig, op: sigmoid}\n"                               /* 33 */
        "  - {name: tanh1, op: tanh}\n"                                /* 34 */
        "  - {name: hsw, op: hardswish}\n"                             /* 35 */
        "  - {name: pool1, op: maxpool, kernel: 3, stride: 2, pad: 1, dilation: 1, ceil_mode: true}\n" /* 36 */
        "  - {name: pool2, op: avgpool, in: hsw, kernel: [2, 3], pad: [0, 1], ceil_mode: false, "
        "count_include_pad: false}\n"                                  /* 37 */
        "  - {name: add1, op: add, in: [pool1, pool2]}\n"              /* 38 */
        "  - {name: cat1, op: concat, in: [add1, pool1, pool2]}\n"     /* 39 */
        "  - {name: lrn1, op: lrn, size: 5, alpha: 0.0002, beta: 0.5, k: 2}\n" /* 40 */
        "  - {name: gap, op: global_avgpool}\n"                        /* 41 */
        "  - {name: aap, op: adaptive_avgpool, in: lrn1, out: [7, 6]}\n" /* 42 */
        "  - {name: aap2, op: adaptive_avgpool, out: 3}\n"             /* 43 */
        "  - {name: flat, op: flatten}\n"                              /* 44 */
        "  - {name: drop-1.x, op: dropout, p: 0.25}\n"                 /* 45 */
        "  - {name: fc, op: linear, out: 10, bias: true, params: classifier.1}\n" /* 46 */
        "  - {name: fc2, op: linear, out: 4, params: fc2}\n"           /* 47 */
        "  - {name: prob, op: softmax}\n"                              /* 48 */
        "taps:\n"                                                      /* 49 */
        "  - {layer: conv1, show: filters}\n"                          /* 50 */
        "  - layer: [conv1, pool1, input]\n"                           /* 51 */
        "    show: activations\n"
        "    normalize: per-layer\n"
        "    clip: [0.5, 99.5]\n"
        "    colormap: viridis\n"
        "    columns: 8\n"
        "    max_channels: 64\n"
        "  - {show: gradcam, layer: conv1, class: top3, score: prob, alpha: 0.3}\n" /* 58 */
        "  - {show: smoothgrad, samples: 25, sigma: 0.15}\n"
        "  - {show: integrated, samples: 50, baseline: blur}\n"
        "  - {show: occlusion, window: 8, step: 4, baseline: 0.5}\n"
        "  - {layer: fc, show: weights, range: [-1, 1]}\n"
        "  - {layer: fc, show: weights, normalize: fixed, range: [-2, 2.5], colormap: rdbu}\n"
        "output:\n"
        "  dir: out/x\n"
        "  npy: true\n"
        "  report: false\n"
        "  top: 10\n";
    cnn_pipeline p;
    CHECK_OK(parse(text, &p));
    CHECK(strcmp(p.path, "t.yaml") == 0, "path %s", p.path);
    CHECK(strcmp(p.dir, "cfgdir") == 0, "dir %s", p.dir);
    CHECK(p.version == 1, "version");
    CHECK(p.model_name && strcmp(p.model_name, "everything") == 0, "model name");
    CHECK(p.weights && strcmp(p.weights, "cfgdir/w/model.safetensors") == 0, "weights %s",
          p.weights ? p.weights : "(null)");
    CHECK(p.weights_pos.line == 5 && p.weights_pos.col == 12, "weights pos %d:%d",
          p.weights_pos.line, p.weights_pos.col);
    CHECK(p.labels && strcmp(p.labels, "/abs/labels.txt") == 0, "absolute labels kept");
    CHECK(p.labels_pos.line == 6, "labels pos");

    const cnn_input_spec *in = &p.input;
    CHECK(in->c == 3 && in->h == 32 && in->w == 48, "shape %d %d %d", in->c, in->h, in->w);
    CHECK(!in->gray, "rgb");
    CHECK(in->resize == CNN_RESIZE_SHORTER_CROP && in->shorter == 64, "resize");
    CHECK(in->crop[0] == 32 && in->crop[1] == 48, "crop");
    CHECK(feq(in->scale, 0.5), "scale");
    CHECK(feq(in->mean[0], 0.485) && feq(in->mean[1], 0.456) && feq(in->mean[2], 0.406), "mean");
    CHECK(feq(in->std[0], 0.229) && feq(in->std[1], 0.224) && feq(in->std[2], 0.225), "std");
    CHECK(in->pos.line == 8 && in->pos.col == 5, "input pos %d:%d", in->pos.line, in->pos.col);

    CHECK(p.n_layers == 21, "n_layers %d", p.n_layers);
    if (p.n_layers != 21) goto done;
    const cnn_layer_spec *L = p.layers;
    /* conv1 */
    CHECK(strcmp(L[0].name, "conv1") == 0 && L[0].op == CNN_OP_CONV2D, "conv1");
    CHECK(L[0].pos.line == 15 && L[0].pos.col == 5, "conv1 pos %d:%d", L[0].pos.line, L[0].pos.col);
    CHECK(L[0].op_pos.line == 16 && L[0].op_pos.col == 9, "conv1 op pos");
    CHECK(L[0].n_in == 1 && strcmp(L[0].in[0], "input") == 0, "conv1 in");
    CHECK(L[0].in_pos[0].line == 17 && L[0].in_pos[0].col == 9, "conv1 in pos");
    CHECK(L[0].out == 8, "conv1 out");
    CHECK(L[0].kernel[0] == 3 && L[0].kernel[1] == 5, "conv1 kernel");
    CHECK(L[0].stride[0] == 1 && L[0].stride[1] == 2, "conv1 stride");
    CHECK(L[0].pad[0] == 1 && L[0].pad[1] == 2 && L[0].pad[2] == 3 && L[0].pad[3] == 4, "conv1 pad");
    CHECK(L[0].dilation[0] == 2 && L[0].dilation[1] == 2, "conv1 dilation");
    CHECK(L[0].groups == 2 && !L[0].bias, "conv1 groups/bias");
    CHECK(strcmp(L[0].params, "features.0") == 0 && L[0].params_pos.line == 25, "conv1 params");
    /* bn1 */
    CHECK(L[1].op == CNN_OP_BATCHNORM && feq(L[1].eps, 0.001) && L[1].n_in == 0, "bn1");
    CHECK(strcmp(L[1].params, "features.1") == 0, "bn1 params");
    CHECK(L[2].op == CNN_OP_RELU && L[3].op == CNN_OP_RELU6, "relu, relu6");
    CHECK(L[4].op == CNN_OP_LEAKY_RELU && feq(L[4].slope, 0.2), "leaky");
    CHECK(L[5].op == CNN_OP_SIGMOID && L[6].op == CNN_OP_TANH && L[7].op == CNN_OP_HARDSWISH,
          "sigmoid, tanh, hardswish");
    /* pool1: everything given */
    CHECK(L[8].op == CNN_OP_MAXPOOL && L[8].kernel[0] == 3 && L[8].kernel[1] == 3, "pool1");
    CHECK(L[8].stride[0] == 2 && L[8].stride[1] == 2 && L[8].ceil_mode, "pool1 stride/ceil");
    CHECK(L[8].pad[0] == 1 && L[8].pad[3] == 1 && L[8].dilation[0] == 1, "pool1 pad/dilation");
    /* pool2: stride = kernel; pad [h, w] */
    CHECK(L[9].op == CNN_OP_AVGPOOL && L[9].n_in == 1 && strcmp(L[9].in[0], "hsw") == 0, "pool2");
    CHECK(L[9].stride[0] == 2 && L[9].stride[1] == 3, "pool2 stride defaults to kernel");
    CHECK(L[9].pad[0] == 0 && L[9].pad[1] == 0 && L[9].pad[2] == 1 && L[9].pad[3] == 1,
          "pool2 pad [h, w]");
    CHECK(!L[9].ceil_mode && !L[9].count_include_pad, "pool2 flags");
    CHECK(L[10].op == CNN_OP_ADD && L[10].n_in == 2 && strcmp(L[10].in[1], "pool2") == 0, "add");
    CHECK(L[10].in_pos[1].line == 38 && L[10].in_pos[1].col == 39, "add in pos %d:%d",
          L[10].in_pos[1].line, L[10].in_pos[1].col);
    CHECK(L[11].op == CNN_OP_CONCAT && L[11].n_in == 3, "concat");
    CHECK(L[12].op == CNN_OP_LRN && L[12].size == 5 && feq(L[12].alpha, 0.0002) &&
              feq(L[12].beta, 0.5) && feq(L[12].k, 2),
          "lrn");
    CHECK(L[13].op == CNN_OP_GLOBAL_AVGPOOL, "gap");
    CHECK(L[14].op == CNN_OP_ADAPTIVE_AVGPOOL && L[14].out_hw[0] == 7 && L[14].out_hw[1] == 6,
          "aap");
    CHECK(L[15].out_hw[0] == 3 && L[15].out_hw[1] == 3, "aap2 integer out");
    CHECK(L[16].op == CNN_OP_FLATTEN, "flatten");
    CHECK(L[17].op == CNN_OP_DROPOUT && feq(L[17].p, 0.25) && strcmp(L[17].name, "drop-1.x") == 0,
          "dropout");
    CHECK(L[18].op == CNN_OP_LINEAR && L[18].out == 10 && L[18].bias, "fc");
    CHECK(L[19].out == 4 && L[19].bias && strcmp(L[19].params, "fc2") == 0, "fc2");
    CHECK(L[20].op == CNN_OP_SOFTMAX, "softmax");

    CHECK(cnn_pipeline_find(&p, "conv1") == 0, "find conv1");
    CHECK(cnn_pipeline_find(&p, "prob") == 20, "find prob");
    CHECK(cnn_pipeline_find(&p, "input") == -1, "find input");
    CHECK(cnn_pipeline_find(&p, "nope") == -1, "find nope");

    CHECK(p.taps_given && p.n_taps == 8, "n_taps %d", p.n_taps);
    if (p.n_taps != 8) goto done;
    const cnn_tap_spec *T = p.taps;
    CHECK(T[0].n_layers == 1 && strcmp(T[0].layers[0], "conv1") == 0 &&
              strcmp(T[0].show, "filters") == 0,
          "tap 0");
    CHECK(T[0].pos.line == 50 && T[0].pos.col == 5, "tap 0 pos");
    CHECK(!T[0].normalize && !T[0].colormap && !T[0].has_fixed && !T[0].has_clip, "tap 0 defaults");
    CHECK(strcmp(T[0].score, "logit") == 0 && feq(T[0].alpha, 0.5) && !T[0].cls, "tap 0 defaults 2");
    CHECK(T[0].columns == 0 && T[0].max_channels == 0 && T[0].samples == 0, "tap 0 defaults 3");
    CHECK(T[1].n_layers == 3 && strcmp(T[1].layers[2], "input") == 0, "tap 1 layers");
    CHECK(strcmp(T[1].show, "activations") == 0 && strcmp(T[1].normalize, "per-layer") == 0,
          "tap 1 show");
    CHECK(T[1].has_clip && feq(T[1].clip[0], 0.5) && feq(T[1].clip[1], 99.5), "tap 1 clip");
    CHECK(strcmp(T[1].colormap, "viridis") == 0 && T[1].columns == 8 && T[1].max_channels == 64,
          "tap 1 montage");
    CHECK(strcmp(T[2].cls, "top3") == 0 && strcmp(T[2].score, "prob") == 0 && feq(T[2].alpha, 0.3),
          "tap 2");
    CHECK(T[3].n_layers == 0 && T[3].samples == 25 && feq(T[3].sigma, 0.15), "tap 3");
    CHECK(T[4].samples == 50 && strcmp(T[4].baseline, "blur") == 0, "tap 4");
    CHECK(T[5].window == 8 && T[5].step == 4 && strcmp(T[5].baseline, "0.5") == 0, "tap 5");
    CHECK(T[6].has_fixed && feq(T[6].fixed[0], -1) && feq(T[6].fixed[1], 1) &&
              strcmp(T[6].normalize, "fixed") == 0,
          "tap 6: range implies normalize fixed");
    CHECK(T[7].has_fixed && feq(T[7].fixed[1], 2.5) && strcmp(T[7].colormap, "rdbu") == 0, "tap 7");

    CHECK(p.out_dir && strcmp(p.out_dir, "out/x") == 0, "out dir");
    CHECK(p.npy && !p.report && p.top == 10, "output flags");
done:
    cnn_pipeline_free(&p);
    CHECK(p.layers == NULL && p.path == NULL, "free zeroes the struct");
    cnn_pipeline_free(&p); /* twice is harmless */
}

static void test_flow_style_defaults(void)
{
    const char *text =
        "{version: 1, model: {name: f, input: {shape: [1, 28, 28]}},\n"
        " layers: [{name: c, op: conv2d, out: 4, kernel: 3, params: c},\n"
        "          {name: b, op: batchnorm, params: b}, {name: lk, op: leaky_relu},\n"
        "          {name: n, op: lrn, size: 3}, {name: ap, op: avgpool, kernel: [2, 2]},\n"
        "          {name: mp, op: maxpool, kernel: 2}, {name: d, op: dropout},\n"
        "          {name: f, op: flatten}, {name: l, op: linear, out: 10, params: l}],\n"
        " taps: []}\n";
    cnn_pipeline p;
    CHECK_OK(parse(text, &p));
    CHECK(p.version == 1 && strcmp(p.model_name, "f") == 0, "model");
    CHECK(!p.weights && !p.labels, "no weights, no labels");
    CHECK(p.input.c == 1 && p.input.h == 28 && p.input.w == 28 && p.input.gray, "input gray by C");
    CHECK(p.input.resize == CNN_RESIZE_NONE, "resize none by default");
    CHECK(feq(p.input.scale, 1.0 / 255.0), "scale 1/255");
    CHECK(p.input.mean[0] == 0 && p.input.std[0] == 1, "mean 0, std 1");
    CHECK(p.taps_given && p.n_taps == 0 && !p.taps, "taps: [] is given and empty");
    CHECK(!p.out_dir && !p.npy && p.report && p.top == 5, "output defaults");
    CHECK(p.n_layers == 9, "n_layers %d", p.n_layers);
    if (p.n_layers == 9) {
        const cnn_layer_spec *L = p.layers;
        CHECK(L[0].n_in == 0 && !L[0].in, "first layer reads the input by default");
        CHECK(L[0].stride[0] == 1 && L[0].stride[1] == 1, "conv stride 1");
        CHECK(L[0].dilation[0] == 1 && L[0].dilation[1] == 1, "conv dilation 1");
        CHECK(L[0].pad[0] == 0 && L[0].pad[1] == 0 && L[0].pad[2] == 0 && L[0].pad[3] == 0, "pad 0");
        CHECK(L[0].groups == 1 && L[0].bias, "groups 1, bias true");
        CHECK(L[0].pos.line == 2 && L[0].pos.col == 11, "flow layer pos %d:%d", L[0].pos.line,
              L[0].pos.col);
        CHECK(feq(L[1].eps, 1e-5), "eps 1e-5");
        CHECK(feq(L[2].slope, 0.01), "slope 0.01");
        CHECK(feq(L[3].alpha, 1e-4) && feq(L[3].beta, 0.75) && feq(L[3].k, 1.0), "lrn defaults");
        CHECK(L[4].stride[0] == 2 && L[4].stride[1] == 2 && L[4].count_include_pad &&
                  !L[4].ceil_mode,
              "avgpool defaults");
        CHECK(L[5].stride[0] == 2 && L[5].dilation[0] == 1, "maxpool stride = kernel");
        CHECK(L[8].out == 10 && L[8].bias, "linear");
    }
    cnn_pipeline_free(&p);

    /* Without a taps key; stretch resize; default color from C = 3. */
    const char *text2 = "version: 1\n"
                        "model: {name: s, input: {shape: [3, 20, 30], resize: {stretch: [20, 30]}}}\n"
                        "layers: [{name: x, op: relu}]\n";
    CHECK_OK(parse(text2, &p));
    CHECK(!p.taps_given && p.n_taps == 0, "taps not given");
    CHECK(!p.input.gray && p.input.resize == CNN_RESIZE_STRETCH && p.input.stretch[0] == 20 &&
              p.input.stretch[1] == 30,
          "stretch");
    cnn_pipeline_free(&p);

    cnn_pipeline z;
    memset(&z, 0, sizeof z);
    cnn_pipeline_free(&z); /* a zeroed struct is fine */

    for (int op = 0; op < CNN_OP_COUNT; op++)
        CHECK(cnn_op_name((cnn_op)op) && strcmp(cnn_op_name((cnn_op)op), "?") != 0, "op %d", op);
    CHECK(strcmp(cnn_op_name(CNN_OP_ADAPTIVE_AVGPOOL), "adaptive_avgpool") == 0, "op name");
    CHECK(strcmp(cnn_op_name(CNN_OP_COUNT), "?") == 0, "op out of range");
    /* the tap kinds are activations, filters, weights, every gradient
     * method in the order of viz/taps.h, then examples, maximize and dream */
    int gm = 0;
    while (cnn_gmethod_names[gm] && cnn_tap_kinds[3 + gm] && !strcmp(cnn_tap_kinds[3 + gm], cnn_gmethod_names[gm])) gm++;
    CHECK(gm == CNN_GM_COUNT && !cnn_gmethod_names[gm] && cnn_tap_kinds[3 + gm] &&
              !strcmp(cnn_tap_kinds[3 + gm], "examples") && cnn_tap_kinds[4 + gm] &&
              !strcmp(cnn_tap_kinds[4 + gm], "maximize") && cnn_tap_kinds[5 + gm] &&
              !strcmp(cnn_tap_kinds[5 + gm], "dream") && !cnn_tap_kinds[6 + gm],
          "kinds: %d methods agree of %d, then examples, maximize and dream", gm, (int)CNN_GM_COUNT);
    CHECK(strcmp(cnn_tap_kinds[13], "occlusion") == 0, "kinds");
    CHECK(strcmp(cnn_norm_scopes[3], "fixed") == 0 && !cnn_norm_scopes[4], "scopes");
    CHECK(strcmp(cnn_colormaps[6], "rdbu") == 0 && !cnn_colormaps[7], "colormaps");
}

/* Expects CNN_ERR_INPUT and a message with "t.yaml:<at>:" and `keyword`. */
static void expect_error_at(int line, const char *text, size_t len, const char *at,
                            const char *keyword)
{
    cnn_pipeline p;
    cnn_error_clear();
    int status = cnn_pipeline_parse("t.yaml", ".", text, len, &p);
    const char *msg = cnn_error_message();
    char want[64];
    snprintf(want, sizeof want, "t.yaml:%s:", at);
    CHECK(status == CNN_ERR_INPUT, "case at line %d: status %d (%s)", line, status, msg);
    CHECK(strstr(msg, want) != NULL, "case at line %d: want '%s' in: %s", line, want, msg);
    CHECK(strstr(msg, keyword) != NULL, "case at line %d: want '%s' in: %s", line, keyword, msg);
    cnn_pipeline_free(&p);
}

#define EXPECT_ERROR(text, at, keyword) expect_error_at(__LINE__, text, strlen(text), at, keyword)

/* Five lines of valid header; `layers:` goes on line 6, the first layer on 7. */
#define H "version: 1\nmodel:\n  name: m\n  input:\n    shape: [1, 8, 8]\n"
#define H3 "version: 1\nmodel:\n  name: m\n  input:\n    shape: [3, 8, 8]\n"
#define RELU "layers:\n  - {name: a, op: relu}\n"

static void test_errors(void)
{
    /* YAML itself */
    EXPECT_ERROR("version: 1\nmodel: {name: [x}\n", "2:17", "did not find expected");
    EXPECT_ERROR(H "layers:\n\t- {name: a, op: relu}\n", "7:1", "cannot start any token");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu}\n  -\t{name: b, op: relu}\n", "8:4",
                 "cannot start any token");
    EXPECT_ERROR("a: &a [\"lol\", \"lol\"]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\n", "1:4",
                 "aliases are not allowed");
    EXPECT_ERROR("version: *v\n", "1:10", "aliases are not allowed");
    EXPECT_ERROR(H "layers:\n  - &y {name: a, op: relu}\n", "7:5", "aliases are not allowed");
    EXPECT_ERROR("version: !!str 1\n", "1:10", "tags are not allowed");
    {
        char deep[256] = "version: 1\nx: ";
        size_t n = strlen(deep);
        for (int i = 0; i < 100; i++) deep[n++] = '[';
        for (int i = 0; i < 100; i++) deep[n++] = ']';
        deep[n++] = '\n';
        deep[n] = '\0';
        /* root mapping + 31 lists = 32 levels; the 32nd '[' (column 3 + 32)
         * would be the 33rd */
        EXPECT_ERROR(deep, "2:35", "nesting deeper than 32");
    }
    EXPECT_ERROR(H RELU "---\nversion: 1\n", "8:1", "second YAML document");
    EXPECT_ERROR("- version: 1\n", "1:1", "must be a mapping");
    EXPECT_ERROR("# nothing\n", "1:1", "empty");
    EXPECT_ERROR("version: 1\nmodel: \xff\n", "2:8", "invalid");

    /* top level */
    EXPECT_ERROR(H RELU "extra: 1\n", "8:1", "unknown key 'extra'");
    EXPECT_ERROR("model: {name: m, input: {shape: [1, 8, 8]}}\n" RELU, "1:1",
                 "missing required key 'version'");
    EXPECT_ERROR("version: 2\n", "1:10", "unsupported version 2");
    EXPECT_ERROR("version: 1.0\n", "1:10", "'version' must be an integer");
    EXPECT_ERROR(H "layers: []\n", "6:9", "'layers' must not be empty");
    EXPECT_ERROR(H "layers: {a: 1}\n", "6:9", "must be a list");
    EXPECT_ERROR(H "layers:\n  - relu\n", "7:5", "must be a mapping");
    EXPECT_ERROR("version: 1\nversion: 1\n", "2:1", "appears twice");

    /* model and input */
    EXPECT_ERROR("version: 1\nmodel:\n  name: m\n  input:\n    shape: [2, 8, 8]\n" RELU, "5:13",
                 "must be 1 or 3");
    EXPECT_ERROR(H "    color: rgb\n" RELU, "6:12", "color: rgb needs C = 3");
    EXPECT_ERROR(H3 "    color: purple\n" RELU, "6:12", "unknown color");
    EXPECT_ERROR(H3 "    resize: {shorter: 256, crop: 224}\n" RELU, "6:34",
                 "must equal the input size");
    EXPECT_ERROR(H3 "    resize: {stretch: [8, 9]}\n" RELU, "6:23", "must equal the input size");
    EXPECT_ERROR(H3 "    resize: {shorter: 4, crop: 8}\n" RELU, "6:23", "at least the crop");
    EXPECT_ERROR(H3 "    resize: {shorter: 8}\n" RELU, "6:13", "needs {shorter");
    EXPECT_ERROR(H3 "    resize: fit\n" RELU, "6:13", "'resize' must be none");
    EXPECT_ERROR(H3 "    mean: [0.5, nan, 0.5]\n" RELU, "6:17", "must be a number");
    EXPECT_ERROR(H3 "    mean: [0.5, 0.5]\n" RELU, "6:11", "list of 3 numbers");
    EXPECT_ERROR(H3 "    std: [0.5, 0, 0.5]\n" RELU, "6:16", "'std' values must be > 0");
    EXPECT_ERROR(H "    scale: 1e999\n" RELU, "6:12", "finite");
    EXPECT_ERROR(H "    scale: .inf\n" RELU, "6:12", "must be a number");
    EXPECT_ERROR(H "    size: 3\n" RELU, "6:5", "unknown key 'size' in 'input'");
    EXPECT_ERROR("version: 1\nmodel: {input: {shape: [1, 8, 8]}}\n" RELU, "2:8", "needs 'name'");
    EXPECT_ERROR("version: 1\nmodel: {name: m}\n" RELU, "2:8", "needs 'input'");
    EXPECT_ERROR("version: 1\nmodel: {name: m, input: {shape: [1, 8]}}\n" RELU, "2:33",
                 "[C, H, W]");
    EXPECT_ERROR("version: 1\nmodel: {name: m, weights: ~, input: {shape: [1, 8, 8]}}\n" RELU,
                 "2:27", "'weights' must be a string");

    /* layers */
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu, strides: 3}\n", "7:25",
                 "unknown key 'strides' in layer 'a' (known: name, op, in,");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: conv}\n", "7:19", "unknown op 'conv'");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: conv}\n", "7:19", "known: conv2d, batchnorm,");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu}\n  - {name: a, op: relu}\n", "8:12",
                 "layer name 'a' already used at line 7");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu, in: b}\n  - {name: b, op: relu}\n", "7:29",
                 "input 'b' of layer 'a' is not defined above (it is defined later, at line 8");
    EXPECT_ERROR(H "layers:\n  - {name: conv3, op: relu, in: pool9}\n", "7:33",
                 "input 'pool9' of layer 'conv3' is not defined above");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu, in: a}\n", "7:29", "not defined above");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: conv2d, out: 8, kernel: 3}\n", "7:5",
                 "layer 'c' (conv2d) needs 'params'");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: linear, params: x}\n", "7:5", "needs 'out'");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: batchnorm}\n", "7:5", "needs 'params'");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: avgpool}\n", "7:5", "needs 'kernel'");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: adaptive_avgpool}\n", "7:5", "needs 'out'");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: lrn}\n", "7:5", "needs 'size'");
    EXPECT_ERROR(H "layers:\n  - {op: relu}\n", "7:5", "has no 'name'");
    EXPECT_ERROR(H "layers:\n  - {name: a}\n", "7:5", "has no 'op'");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu}\n  - {name: b, op: add, in: a}\n", "8:28",
                 "needs 'in': a list of two or more");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu}\n  - {name: b, op: mul}\n", "8:5",
                 "needs 'in': a list of two layers, or one layer and 'const' or 'value'");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu}\n  - {name: b, op: relu, in: [a, a]}\n",
                 "8:29", "takes one input");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: 2, groups: 2}\n", "7:39",
                 "key 'groups' is not valid for op 'maxpool' in layer 'p' (valid: name, op, in, "
                 "kernel, stride, pad, dilation, ceil_mode)");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu, params: x}\n", "7:25", "not valid for op 'relu'");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: 0}\n", "7:36", "'kernel' must be >= 1");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: [2, 0]}\n", "7:40", "must be >= 1");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: 2, pad: -1}\n", "7:44",
                 "'pad' must be >= 0 (got -1)");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: 2, pad: [1, 1, 1]}\n", "7:44",
                 "[top, bottom, left, right]");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: linear, out: 99999999999999999999, params: x}\n",
                 "7:32", "'out' is too large");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: linear, out: 1048577, params: x}\n", "7:32",
                 "too large");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: 2.5}\n", "7:36",
                 "'kernel' must be an integer or [h, w]");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: \"2\"}\n", "7:36",
                 "must be an integer");
    EXPECT_ERROR(H "layers:\n  - {name: p, op: maxpool, kernel: [1, 2, 3]}\n", "7:36",
                 "must be an integer or [h, w]");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: conv2d, out: 8, kernel: 3, params: c, bias: yes}\n",
                 "7:63", "'bias' must be true or false");
    EXPECT_ERROR(H "layers:\n  - {name: c, op: conv2d, out: 8, kernel: 3, params: c, groups: 3}\n",
                 "7:65", "must divide 'out'");
    EXPECT_ERROR(H "layers:\n  - {name: b, op: batchnorm, params: b, eps: 0}\n", "7:46", "'eps' must be > 0");
    EXPECT_ERROR(H "layers:\n  - {name: d, op: dropout, p: 1.5}\n", "7:31", "between 0 and 1");
    EXPECT_ERROR(H "layers:\n  - {name: input, op: relu}\n", "7:12", "reserved");
    EXPECT_ERROR(H "layers:\n  - {name: \"a b\", op: relu}\n", "7:12", "letters, digits");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu, op: relu}\n", "7:25", "appears twice");
    EXPECT_ERROR(H "layers:\n  - {name: a, op: relu, [x]: 1}\n", "7:25", "keys must be strings");

    /* taps */
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: heatmap}\n", "9:22",
                 "unknown tap kind 'heatmap' (known: activations, filters,");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: zz, show: activations}\n", "9:13",
                 "layer 'zz', which is not defined");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: [a, input, zz], show: activations}\n", "9:24",
                 "not defined");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, clip: [99, 1]}\n", "9:41",
                 "0 <= lo < hi <= 100");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, clip: [1, 101]}\n", "9:41",
                 "0 <= lo < hi <= 100");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a}\n", "9:5", "needs 'show'");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, normalize: max}\n", "9:46",
                 "unknown normalize scope");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, normalize: global, range: [0, 1]}\n",
                 "9:61", "'range' needs normalize: fixed");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, normalize: fixed}\n", "9:46",
                 "needs 'range");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, range: [1, 1]}\n", "9:42",
                 "lo < hi");
    EXPECT_ERROR(H RELU "taps:\n  - {layer: a, show: activations, colormap: hot}\n", "9:45",
                 "unknown colormap");
    EXPECT_ERROR(H RELU "taps:\n  - {show: gradcam, layer: a, score: softmax}\n", "9:38",
                 "unknown score");
    EXPECT_ERROR(H RELU "taps:\n  - {show: gradcam, layer: a, alpha: 2}\n", "9:38",
                 "between 0 and 1");
    EXPECT_ERROR(H RELU "taps:\n  - {show: integrated, baseline: white}\n", "9:34", "black, zero, blur");
    EXPECT_ERROR(H RELU "taps:\n  - {show: occlusion, window: 0}\n", "9:31", ">= 1");
    EXPECT_ERROR(H RELU "taps:\n  - {show: occlusion, windw: 3}\n", "9:23", "unknown key 'windw' in tap #1");
    EXPECT_ERROR(H RELU "taps: {layer: a}\n", "8:7", "must be a list");

    /* output */
    EXPECT_ERROR(H RELU "output: {npy: 1}\n", "8:15", "'npy' must be true or false");
    EXPECT_ERROR(H RELU "output: {report: \"true\"}\n", "8:18", "true or false");
    EXPECT_ERROR(H RELU "output: {top: 0}\n", "8:15", "'top' must be >= 1");
    EXPECT_ERROR(H RELU "output: {top: 1001}\n", "8:15", "'top' must be <= 1000");
    EXPECT_ERROR(H RELU "output: {format: png}\n", "8:10", "unknown key 'format' in 'output'");
}

static void test_limits(void)
{
    /* 10001 layers: refused at the first one too many. */
    size_t cap = 64 + 10001 * 40;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, H "layers:\n");
    for (int i = 0; i < 10001; i++)
        n += (size_t)snprintf(text + n, cap - n, "  - {name: l%d, op: relu}\n", i);
    expect_error_at(__LINE__, text, n, "10007:5", "more than 10000 layers");
    /* exactly 10000 is fine */
    n = (size_t)snprintf(text, cap, H "layers:\n  - {name: l0, op: relu, in: input}\n");
    for (int i = 1; i < 10000; i++) /* each reads the one before: exercises the name table */
        n += (size_t)snprintf(text + n, cap - n, "  - {name: l%d, op: relu, in: l%d}\n", i, i - 1);
    cnn_pipeline p;
    CHECK_OK(cnn_pipeline_parse("t.yaml", ".", text, n, &p));
    CHECK(p.n_layers == 10000, "10000 layers");
    cnn_pipeline_free(&p);
    free(text);

    /* 1001 taps */
    cap = 128 + 1001 * 48;
    text = malloc(cap);
    n = (size_t)snprintf(text, cap, H RELU "taps:\n");
    for (int i = 0; i < 1001; i++)
        n += (size_t)snprintf(text + n, cap - n, "  - {layer: a, show: activations}\n");
    expect_error_at(__LINE__, text, n, "1009:5", "more than 1000 taps");
    free(text);

    /* names: 128 bytes are fine, 129 are not */
    char name[130];
    memset(name, 'n', 129);
    name[129] = '\0';
    char doc[512];
    snprintf(doc, sizeof doc, H "layers:\n  - {name: %s, op: relu}\n", name);
    EXPECT_ERROR(doc, "7:12", "more than the 128 allowed");
    name[128] = '\0';
    snprintf(doc, sizeof doc, H "layers:\n  - {name: %s, op: relu}\n", name);
    CHECK_OK(parse(doc, &p));
    cnn_pipeline_free(&p);

    /* text over 4 MiB: refused before parsing (no position) */
    size_t big = (4u << 20) + 1;
    text = malloc(big);
    memset(text, ' ', big);
    cnn_error_clear();
    CHECK(cnn_pipeline_parse("t.yaml", ".", text, big, &p) == CNN_ERR_INPUT, "4 MiB + 1");
    CHECK(strstr(cnn_error_message(), "t.yaml: ") && strstr(cnn_error_message(), "4194304"),
          "big text: %s", cnn_error_message());
    cnn_pipeline_free(&p);
    free(text);

    /* many nodes in one flat list: bounded too */
    size_t count = 1000001;
    text = malloc(count * 2 + 16);
    n = 0;
    text[n++] = '[';
    for (size_t i = 0; i < count; i++) {
        text[n++] = '1';
        text[n++] = ',';
    }
    text[n - 1] = ']';
    cnn_error_clear();
    CHECK(cnn_pipeline_parse("t.yaml", ".", text, n, &p) == CNN_ERR_INPUT, "node count");
    CHECK(strstr(cnn_error_message(), "YAML nodes") != NULL, "nodes: %s", cnn_error_message());
    cnn_pipeline_free(&p);
    free(text);
}

static void test_load(void)
{
    const char *tmp = getenv("CNNVIZ_TEST_TMP");
    char *dir = cnn_strfmt("%s/config-%ld", tmp ? tmp : "/tmp", (long)getpid());
    CHECK_OK(cnn_mkdirs(dir, 0755));
    char *path = cnn_strfmt("%s/p.yaml", dir);
    const char *text = H "  weights: w.safetensors\n" RELU;
    CHECK_OK(cnn_file_write_atomic(path, text, strlen(text)));
    cnn_pipeline p;
    CHECK_OK(cnn_pipeline_load(path, &p));
    CHECK(p.path && strcmp(p.path, path) == 0, "load path");
    CHECK(p.dir && strcmp(p.dir, dir) == 0, "load dir %s", p.dir ? p.dir : "(null)");
    char *want = cnn_strfmt("%s/w.safetensors", dir);
    CHECK(p.weights && strcmp(p.weights, want) == 0, "weights resolved: %s",
          p.weights ? p.weights : "(null)");
    cnn_pipeline_free(&p);
    free(want);

    /* errors from a file carry its path */
    const char *bad = H "layers:\n  - {name: a, op: nope}\n";
    CHECK_OK(cnn_file_write_atomic(path, bad, strlen(bad)));
    CHECK(cnn_pipeline_load(path, &p) == CNN_ERR_INPUT, "bad file");
    char *where = cnn_strfmt("%s:7:19:", path);
    CHECK(strstr(cnn_error_message(), where) != NULL, "load error: %s", cnn_error_message());
    cnn_pipeline_free(&p);
    free(where);
    unlink(path);
    rmdir(dir);

    CHECK(cnn_pipeline_load("/nonexistent/x.yaml", &p) == CNN_ERR_INPUT, "missing file");
    CHECK(strstr(cnn_error_message(), "/nonexistent/x.yaml") != NULL, "missing: %s",
          cnn_error_message());
    cnn_pipeline_free(&p);
    free(path);
    free(dir);
}

/* Every pipeline shipped in configs/ must load. */
static void test_shipped_configs(void)
{
    const char *src = getenv("CNNVIZ_SOURCE_DIR");
    if (!src) {
        printf("CNNVIZ_SOURCE_DIR not set: skipping configs/*.yaml\n");
        return;
    }
    char *cfg = cnn_strfmt("%s/configs", src);
    DIR *d = opendir(cfg);
    CHECK(d != NULL, "cannot open %s", cfg);
    int loaded = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char *path = cnn_strfmt("%s/%s", cfg, e->d_name);
        cnn_pipeline p;
        CHECK_OK(cnn_pipeline_load(path, &p));
        CHECK(p.n_layers > 0, "%s has layers", path);
        if (strcmp(e->d_name, "fashion_mnist.yaml") == 0 && p.n_layers > 0) {
            CHECK(p.input.c == 1 && p.input.gray, "fashion_mnist input");
            CHECK(p.layers[0].op == CNN_OP_CONV2D, "fashion_mnist first layer");
            CHECK(p.weights && strstr(p.weights, "/configs/../samples/fashion_mnist/"),
                  "fashion_mnist weights resolved against configs/: %s",
                  p.weights ? p.weights : "(null)");
        }
        cnn_pipeline_free(&p);
        free(path);
        loaded++;
    }
    if (d) closedir(d);
    printf("loaded %d file(s) from %s\n", loaded, cfg);
    free(cfg);
}

/* The keys of the ops of modern CNNs, their defaults and the rules between
 * them. */
static void test_modern_ops(void)
{
    const char *text = H3 "layers:\n"
                          "  - {name: c, op: conv2d, out: 8, kernel: 1, params: c}\n"          /* 0 */
                          "  - {name: s, op: silu}\n"                                          /* 1 */
                          "  - {name: g, op: gelu}\n"                                          /* 2 */
                          "  - {name: gt, op: gelu, approximate: tanh}\n"                      /* 3 */
                          "  - {name: hs, op: hardsigmoid}\n"                                  /* 4 */
                          "  - {name: hs2, op: hardsigmoid, alpha: 0.2, beta: 0.4}\n"          /* 5 */
                          "  - {name: cl, op: clip, max: 6}\n"                                 /* 6 */
                          "  - {name: m, op: mul, in: [c, hs]}\n"                              /* 7 */
                          "  - {name: mc, op: mul, const: blk.layer_scale}\n"                  /* 8 */
                          "  - {name: dv, op: div, value: 2.5, const_first: true}\n"           /* 9 */
                          "  - {name: ad, op: add, in: c, value: -1}\n"                        /* 10 */
                          "  - {name: ln, op: layernorm, eps: 1.0e-6, params: n}\n"           /* 11 */
                          "  - {name: ln2, op: layernorm, affine: false}\n"                    /* 12 */
                          "  - {name: lc, op: linear, over: channels, out: 4, params: l}\n"   /* 13 */
                          "  - {name: sl, op: slice, start: -6, end: -1, step: 2}\n"           /* 14 */
                          "  - {name: sh, op: channel_shuffle, groups: 2}\n"                   /* 15 */
                          "  - {name: pd, op: pad, pad: [1, 2, 3, 4], mode: reflect}\n"        /* 16 */
                          "  - {name: pc, op: pad, pad: 1, value: 0.5}\n"                      /* 17 */
                          "  - {name: rz, op: resize, scale: [2, 1.5]}\n"                      /* 18 */
                          "  - {name: rb, op: resize, size: [5, 7], mode: bilinear, align_corners: true}\n"
                          "  - {name: gm, op: global_maxpool}\n"                               /* 20 */
                          "  - {name: cc, op: concat, in: gm}\n";                              /* 21 */
    cnn_pipeline p;
    CHECK_OK(parse(text, &p));
    const cnn_layer_spec *L = p.layers;
    CHECK(p.n_layers == 22, "22 layers");
    if (p.n_layers == 22) {
        CHECK(L[1].op == CNN_OP_SILU && L[2].op == CNN_OP_GELU && !L[2].gelu_tanh && L[3].gelu_tanh, "silu, gelu");
        CHECK(feq(L[4].alpha, 1.0 / 6.0) && feq(L[4].beta, 0.5) && feq(L[5].alpha, 0.2) && feq(L[5].beta, 0.4),
              "hardsigmoid alpha, beta");
        CHECK(L[6].op == CNN_OP_CLIP && isinf(L[6].lo) && L[6].lo < 0 && feq(L[6].hi, 6), "clip");
        CHECK(L[7].op == CNN_OP_MUL && L[7].n_in == 2 && !L[7].cnst && !L[7].has_value, "mul of two");
        CHECK(L[8].cnst && strcmp(L[8].cnst, "blk.layer_scale") == 0 && L[8].n_in == 0, "mul const");
        CHECK(L[9].op == CNN_OP_DIV && L[9].has_value && feq(L[9].value, 2.5) && L[9].const_first, "div value first");
        CHECK(L[10].op == CNN_OP_ADD && L[10].n_in == 1 && feq(L[10].value, -1), "add value");
        CHECK(L[11].op == CNN_OP_LAYERNORM && feq(L[11].eps, 1e-6) && L[11].affine && !L[12].affine, "layernorm");
        CHECK(L[13].over_channels && L[13].out == 4, "linear over channels");
        CHECK(L[14].start == -6 && L[14].end == -1 && L[14].has_end && L[14].step == 2, "slice");
        CHECK(L[15].groups == 2, "channel_shuffle");
        CHECK(L[16].pad_mode == CNN_PAD_REFLECT && L[16].pad[0] == 1 && L[16].pad[3] == 4 &&
                  L[17].pad_mode == CNN_PAD_CONSTANT && feq(L[17].value, 0.5),
              "pad");
        CHECK(L[18].scale[0] == 2.0 && L[18].scale[1] == 1.5 && !L[18].bilinear, "resize scale");
        CHECK(L[19].out_hw[0] == 5 && L[19].out_hw[1] == 7 && L[19].bilinear && L[19].align_corners, "resize size");
        CHECK(L[20].op == CNN_OP_GLOBAL_MAXPOOL && L[21].op == CNN_OP_CONCAT && L[21].n_in == 1, "gmp, concat of one");
    }
    cnn_pipeline_free(&p);

    EXPECT_ERROR(H RELU "  - {name: b, op: mul, in: a, const: x, value: 1}\n", "8:48", "not both");
    EXPECT_ERROR(H RELU "  - {name: b, op: sub, in: [a, a], value: 1}\n", "8:28", "takes one layer in 'in'");
    EXPECT_ERROR(H RELU "  - {name: b, op: div, in: [a, a, a]}\n", "8:28", "a list of two layers");
    EXPECT_ERROR(H RELU "  - {name: b, op: mul, in: [a, a], const_first: true}\n", "8:49", "'const_first' needs");
    EXPECT_ERROR(H RELU "  - {name: b, op: gelu, approximate: fast}\n", "8:38", "unknown gelu approximation 'fast'");
    EXPECT_ERROR(H RELU "  - {name: b, op: clip, min: 2, max: 1}\n", "8:5", "'min' (2) must not exceed 'max' (1)");
    EXPECT_ERROR(H RELU "  - {name: b, op: layernorm}\n", "8:5", "needs 'params' (or affine: false)");
    EXPECT_ERROR(H RELU "  - {name: b, op: layernorm, affine: false, params: x}\n", "8:53", "binds no 'params'");
    EXPECT_ERROR(H RELU "  - {name: b, op: linear, over: pixels, out: 2, params: x}\n", "8:33", "unknown linear axis");
    EXPECT_ERROR(H RELU "  - {name: b, op: slice, step: 0}\n", "8:32", "'step' must be >= 1");
    EXPECT_ERROR(H RELU "  - {name: b, op: channel_shuffle}\n", "8:5", "needs 'groups'");
    EXPECT_ERROR(H RELU "  - {name: b, op: pad, pad: 1, mode: wrap}\n", "8:38", "unknown pad mode 'wrap'");
    EXPECT_ERROR(H RELU "  - {name: b, op: pad, pad: 1, mode: reflect, value: 1}\n", "8:54", "fills only mode: constant");
    EXPECT_ERROR(H RELU "  - {name: b, op: pad}\n", "8:5", "needs 'pad'");
    EXPECT_ERROR(H RELU "  - {name: b, op: resize}\n", "8:5", "needs 'size: [h, w]' or 'scale: [sh, sw]'");
    EXPECT_ERROR(H RELU "  - {name: b, op: resize, scale: 0}\n", "8:34", "'scale' values must be > 0");
    EXPECT_ERROR(H RELU "  - {name: b, op: resize, scale: [1, 2, 3]}\n", "8:34", "'scale' must be a number or [sh, sw]");
    EXPECT_ERROR(H RELU "  - {name: b, op: resize, size: 4, align_corners: true}\n", "8:51", "needs mode: bilinear");
    EXPECT_ERROR(H RELU "  - {name: b, op: resize, size: 4, mode: cubic}\n", "8:42", "unknown resize mode 'cubic'");
    EXPECT_ERROR(H RELU "  - {name: b, op: silu, value: 1}\n", "8:25", "key 'value' is not valid for op 'silu'");
}

/* cnn_graph_field on ops beyond conv and pool stacks (those are checked
 * against the analytic formula in test/net/test_examples.py). */
static void test_field(void)
{
    const char *text = "version: 1\nmodel:\n  name: m\n  input:\n    shape: [1, 24, 24]\n"
                       "layers:\n"
                       "  - {name: c1, op: conv2d, out: 2, kernel: 3, stride: 2, pad: 1, params: c1}\n" /* 12 */
                       "  - {name: pd, op: pad, pad: [2, 1, 3, 0]}\n"                                  /* 15x15 */
                       "  - {name: ap, op: adaptive_avgpool, out: [4, 5]}\n"
                       "  - {name: rz, op: resize, scale: 2}\n"                                        /* 8x10 */
                       "  - {name: rb, op: resize, size: [16, 20], mode: bilinear}\n"
                       "  - {name: gp, op: global_avgpool}\n"
                       "  - {name: mul, op: mul, in: [c1, gp]}\n"
                       "  - {name: fl, op: flatten}\n"
                       "  - {name: fc, op: linear, out: 3, params: fc}\n";
    cnn_pipeline p;
    cnn_graph g;
    CHECK_OK(parse(text, &p));
    CHECK_OK(cnn_graph_build(&p, NULL, &g));
    int b[4];
    /* c1: rows [2y - 1, 2y + 1] */
    CHECK_OK(cnn_graph_field(&g, 0, 3, 0, b));
    CHECK(b[0] == 5 && b[2] == 7 && b[1] == -1 && b[3] == 1, "conv: %d %d %d %d", b[0], b[1], b[2], b[3]);
    /* pd (pad: [top, bottom, left, right]) shifts back, then c1 */
    CHECK_OK(cnn_graph_field(&g, 1, 4, 4, b));
    int pt = g.layers[1].pad.pt, pl = g.layers[1].pad.pl;
    CHECK(b[0] == 2 * (4 - pt) - 1 && b[2] == 2 * (4 - pt) + 1 && b[1] == 2 * (4 - pl) - 1 && b[3] == 2 * (4 - pl) + 1,
          "pad: %d %d %d %d", b[0], b[1], b[2], b[3]);
    /* ap: window i of 4 over 15 rows: [floor(15 i / 4), ceil(15 (i + 1) / 4) - 1] = [3, 7] for i = 1; columns
     * of 5 over 15: i = 4 -> [12, 14] */
    CHECK_OK(cnn_graph_field(&g, 2, 1, 4, b));
    int r0 = 3 - pt, r1 = 7 - pt, q0 = 12 - pl, q1 = 14 - pl;
    CHECK(b[0] == 2 * r0 - 1 && b[2] == 2 * r1 + 1 && b[1] == 2 * q0 - 1 && b[3] == 2 * q1 + 1, "adaptive: %d %d %d %d",
          b[0], b[1], b[2], b[3]);
    /* rz nearest x2: row 3 reads row 1 of ap; a bilinear resize of 8x10 to 16x20 at row 5 reads rows
     * floor(2.25) = 2 and 3 of rz, which read ap rows 1 and 1 */
    int c[4];
    CHECK_OK(cnn_graph_field(&g, 3, 3, 9, b));
    CHECK_OK(cnn_graph_field(&g, 2, 1, 4, c));
    CHECK(b[0] == c[0] && b[2] == c[2] && b[1] == c[1] && b[3] == c[3], "nearest resize: %d %d %d %d", b[0], b[1],
          b[2], b[3]);
    CHECK_OK(cnn_graph_field(&g, 4, 5, 19, b));
    CHECK(b[0] == c[0] && b[2] == c[2] && b[1] == c[1] && b[3] == c[3], "bilinear resize: %d %d %d %d", b[0], b[1],
          b[2], b[3]);
    /* a global pool, a broadcast operand, a flat layer: the whole input */
    CHECK_OK(cnn_graph_field(&g, 5, 0, 0, b));
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 23 && b[3] == 23, "global pool: %d %d %d %d", b[0], b[1], b[2], b[3]);
    CHECK_OK(cnn_graph_field(&g, 6, 3, 0, b));
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 23 && b[3] == 23, "mul by a pooled operand: %d %d %d %d", b[0], b[1],
          b[2], b[3]);
    CHECK_OK(cnn_graph_field(&g, 8, 0, 0, b));
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 23 && b[3] == 23, "flat: %d %d %d %d", b[0], b[1], b[2], b[3]);
    cnn_graph_free(&g);
    cnn_pipeline_free(&p);
}

int main(void)
{
    test_field();
    test_modern_ops();
    test_block_style();
    test_flow_style_defaults();
    test_errors();
    test_limits();
    test_load();
    test_shipped_configs();
    return test_summary("test_config");
}
