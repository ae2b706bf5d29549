/* The HTML report: a synthetic run (inputs, activation taps with montage and
 * channel PNGs, filters and weights taps, .npy tensors and outputs,
 * predictions, layers with and without profiling, names full of HTML
 * specials, file names with a space, '#' and '%') written with
 * cnn_report_write, checked as text here and then in headless Chromium by
 * test/report/check_report.py (which must also reject broken pages).
 * Chromium is required: cmake/install-deps.sh installs it. */
#define _XOPEN_SOURCE 700
#include "check.h"
#include "core/util.h"
#include "io/image.h"
#include "io/manifest.h"
#include "io/npy.h"
#include "viz/report.h"

#include <ftw.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[4096];

static char *in_dir(const char *rel) { return cnn_strfmt("%s/%s", g_dir, rel); }

/* mkdir -p of the file's folder, then a small PNG with a pattern. */
static void make_png(const char *rel, int w, int h, int c, unsigned seed)
{
    char *path = in_dir(rel);
    char *dir = path ? cnn_path_dir(path) : NULL;
    uint8_t *px = cnn_malloc((size_t)w * h * c);
    CHECK(path && dir && px, "allocation");
    if (path && dir && px) {
        CHECK_OK(cnn_mkdirs(dir, 0755));
        for (int i = 0; i < w * h * c; i++) px[i] = (uint8_t)((unsigned)i * 37u + seed * 101u);
        CHECK_OK(cnn_png_write(path, px, w, h, c, 1));
    }
    free(px);
    free(dir);
    free(path);
}

static void make_bytes(const char *rel, const void *data, size_t len)
{
    char *path = in_dir(rel);
    char *dir = path ? cnn_path_dir(path) : NULL;
    CHECK(path && dir, "allocation");
    if (path && dir) {
        CHECK_OK(cnn_mkdirs(dir, 0755));
        CHECK_OK(cnn_file_write_atomic(path, data, len));
    }
    free(dir);
    free(path);
}

static void make_file(const char *rel, const char *text) { make_bytes(rel, text, strlen(text)); }

static void make_npy(const char *rel, const int64_t *shape, int ndim)
{
    float data[256] = {0};
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    CHECK(n <= 256, "make_npy: %lld elements do not fit", (long long)n);
    if (n > 256) return;
    char *path = in_dir(rel);
    char *dir = path ? cnn_path_dir(path) : NULL;
    CHECK(path && dir, "allocation");
    if (path && dir) {
        CHECK_OK(cnn_mkdirs(dir, 0755));
        CHECK_OK(cnn_npy_write_f32(path, data, shape, ndim));
    }
    free(dir);
    free(path);
}

static cnn_manifest_entry entry(const char *path, const char *kind, const char *role, const char *layer,
                                const char *input, int channel, const char *format)
{
    return (cnn_manifest_entry){.path = (char *)path, .kind = (char *)kind, .role = (char *)role,
                                .layer = (char *)layer, .input = (char *)input, .channel = channel,
                                .format = (char *)format};
}

static void set_shape(cnn_manifest_entry *e, int ndim, int64_t a, int64_t b, int64_t c)
{
    e->ndim = ndim;
    e->shape[0] = a;
    e->shape[1] = b;
    e->shape[2] = c;
}

static void set_viz(cnn_manifest_entry *e, const char *normalize, float lo, float hi, double mean)
{
    e->normalize = (char *)normalize;
    e->has_range = 1;
    e->range[0] = lo;
    e->range[1] = hi;
    e->colormap = "viridis";
    e->has_stats = 1;
    e->stats[0] = lo;
    e->stats[1] = hi;
    e->stats[2] = mean;
    e->stats[3] = 0.25;
}

/* Percent-encodes bytes outside [A-Za-z0-9._~/-], as the page must. */
static void url_escape(const char *s, char *out, size_t n)
{
    size_t j = 0;
    for (; *s && j + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (strchr("._~/-", c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            out[j++] = (char)c;
        else j += (size_t)snprintf(out + j, n - j, "%%%02X", c);
    }
    out[j] = '\0';
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static char *read_text(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(cnn_file_read(path, 256u << 20, &data, &len));
    return data;
}

/* Text checks every page must pass. */
static void check_self_contained(const char *html, const char *what)
{
    CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0, "%s: no doctype", what);
    CHECK(!strstr(html, "http://") && !strstr(html, "https://"), "%s: network URL in the page", what);
    CHECK(!strstr(html, "<link"), "%s: <link> in the page", what);
    CHECK(!strstr(html, "src=\"//") && !strstr(html, "href=\"//"), "%s: protocol-relative URL", what);
    CHECK(!strstr(html, "<script src"), "%s: external script", what);
    CHECK(count_of(html, "<script") == 1, "%s: %d scripts", what, count_of(html, "<script"));
    CHECK(count_of(html, "<style") == 1, "%s: %d style elements", what, count_of(html, "<style"));
}

static char *shell_quote(const char *s)
{
    size_t n = 3;
    for (const char *p = s; *p; p++) n += *p == '\'' ? 4 : 1;
    char *q = cnn_malloc(n), *o = q;
    if (!q) return NULL;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

static bool have_chromium(void)
{
    const char *env = getenv("CNNVIZ_CHROMIUM");
    if (env && env[0]) return access(env, X_OK) == 0;
    return system("command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1") == 0;
}

/* Exit status of check_report.py on `dir` (-1: could not run it). */
static int run_checker(const char *dir)
{
    const char *src = getenv("CNNVIZ_SOURCE_DIR");
    CHECK(src && src[0], "CNNVIZ_SOURCE_DIR is not set (run the test through ctest)");
    if (!src || !src[0]) return -1;
    char *script = cnn_strfmt("%s/test/report/check_report.py", src);
    char *qs = script ? shell_quote(script) : NULL, *qd = shell_quote(dir);
    char *cmd = qs && qd ? cnn_strfmt("/usr/bin/python3 %s %s", qs, qd) : NULL;
    int rc = -1;
    if (cmd) {
        fflush(stdout);
        fflush(stderr);
        int w = system(cmd);
        rc = w != -1 && WIFEXITED(w) ? WEXITSTATUS(w) : -1;
    }
    free(cmd);
    free(qd);
    free(qs);
    free(script);
    return rc;
}

/* --------------------------------------------------------------- the run */

#define IN_CAT "samples/cat <1> & \"dog's\".jpg"
#define IN_PLAIN "samples/plain.png"
#define IN_ORPHAN "samples/orphan.png"
#define CONV "conv<1>&\"a\""

static const cnn_report_pred g_top_cat[] = {
    {281, "tabby <cat> & 'kitten'", 0.8125}, {282, "tiger cat", 0.125}, {7, "", 0.0625}};
static const cnn_report_pred g_top_plain[] = {{3, "plain \"thing\"", 1.0}, {1, "other", 0.0}};

static cnn_report_layer g_layers[] = {
    {.name = CONV, .op = "conv", .c = 4, .h = 6, .w = 6, .params = 112, .macs = 3888, .ms = 0.5},
    {.name = "relu1", .op = "relu", .c = 4, .h = 6, .w = 6, .ms = 0, .fused = true},
    {.name = "pool1", .op = "max_pool", .c = 4, .h = 3, .w = 3, .ms = 0.25},
    {.name = "fc", .op = "dense", .c = 10, .h = 1, .w = 1, .flat = true, .params = 370, .macs = 360,
     .ms = 0.125},
    {.name = "prob", .op = "softmax", .c = 10, .h = 1, .w = 1, .flat = true, .ms = 0.125},
};

/* Writes the files of one input's activation taps and adds their entries. */
static void add_input(cnn_manifest *m, const char *input, const char *stem, unsigned seed)
{
    char rel[256];
    cnn_manifest_entry e;

    snprintf(rel, sizeof rel, "%s/input.png", stem);
    make_png(rel, 8, 8, 3, seed);
    e = entry(rel, "input", "input", NULL, input, -1, "png");
    set_shape(&e, 3, 3, 8, 8);
    CHECK_OK(cnn_manifest_add(m, &e));

    /* conv activations: montage, 4 channels (one with NaN), tensor .npy */
    snprintf(rel, sizeof rel, "%s/conv_1_a/activations.png", stem);
    make_png(rel, 14, 14, 3, seed + 1);
    e = entry(rel, "activations", "montage", CONV, input, -1, "png");
    set_shape(&e, 3, 4, 6, 6);
    set_viz(&e, "per-channel", -1.5f, 2.5f, 0.125);
    e.nonfinite = 2;
    CHECK_OK(cnn_manifest_add(m, &e));
    for (int c = 3; c >= 0; c--) { /* out of order on purpose */
        snprintf(rel, sizeof rel, "%s/conv_1_a/channel_%03d.png", stem, c);
        make_png(rel, 6, 6, 1, seed + 2 + (unsigned)c);
        e = entry(rel, "activations", "channel", CONV, input, c, "png");
        set_shape(&e, 2, 6, 6, 0);
        set_viz(&e, "per-channel", 0.0f, 1.0f + (float)c, 0.5);
        e.nonfinite = c == 2 ? 2 : 0;
        CHECK_OK(cnn_manifest_add(m, &e));
    }
    snprintf(rel, sizeof rel, "%s/conv_1_a/activations.npy", stem);
    int64_t shape[3] = {4, 6, 6};
    make_npy(rel, shape, 3);
    e = entry(rel, "activations", "tensor", CONV, input, -1, "npy");
    set_shape(&e, 3, 4, 6, 6);
    CHECK_OK(cnn_manifest_add(m, &e));

    /* pool1: montage only, with a note */
    snprintf(rel, sizeof rel, "%s/pool1/activations.png", stem);
    make_png(rel, 7, 7, 1, seed + 9);
    e = entry(rel, "activations", "montage", "pool1", input, -1, "png");
    set_shape(&e, 3, 4, 3, 3);
    set_viz(&e, "per-layer", 0.0f, 3.0f, 1.0);
    e.colormap = "gray";
    e.note = "showing 4 of 4 channels <all>";
    CHECK_OK(cnn_manifest_add(m, &e));

    snprintf(rel, sizeof rel, "%s/output.npy", stem);
    shape[0] = 10;
    make_npy(rel, shape, 1);
    e = entry(rel, "output", NULL, "prob", input, -1, "npy");
    set_shape(&e, 1, 10, 0, 0);
    CHECK_OK(cnn_manifest_add(m, &e));
}

/* The input-independent taps and run-wide files. */
static void add_model(cnn_manifest *m)
{
    cnn_manifest_entry e;
    make_png("model/conv_1_a/filters.png", 9, 9, 3, 50);
    e = entry("model/conv_1_a/filters.png", "filters", "montage", CONV, NULL, -1, "png");
    set_shape(&e, 4, 4, 3, 3);
    e.shape[3] = 3;
    set_viz(&e, "per-filter", -0.5f, 0.5f, 0.0);
    e.colormap = "rdbu";
    CHECK_OK(cnn_manifest_add(m, &e));
    static const char *const filters[4] = {"model/conv_1_a/filter_000.png", "model/conv_1_a/filter #1 100%.png",
                                           "model/conv_1_a/filter_002.png", "model/conv_1_a/filter_003.png"};
    for (int f = 0; f < 4; f++) {
        make_png(filters[f], 3, 3, 3, 60 + (unsigned)f);
        e = entry(filters[f], "filters", "filter", CONV, NULL, f, "png");
        set_shape(&e, 3, 3, 3, 3);
        CHECK_OK(cnn_manifest_add(m, &e));
    }
    make_png("model/fc/weights.png", 36, 10, 3, 70);
    e = entry("model/fc/weights.png", "weights", "matrix", "fc", NULL, -1, "png");
    set_shape(&e, 2, 10, 36, 0);
    set_viz(&e, "per-layer", -0.25f, 0.25f, 0.0);
    e.note = "rows: units, columns: inputs";
    CHECK_OK(cnn_manifest_add(m, &e));
    for (int u = 0; u < 3; u++) {
        char rel[64];
        snprintf(rel, sizeof rel, "model/fc/unit_%03d.png", u);
        make_png(rel, 6, 6, 3, 80 + (unsigned)u);
        e = entry(rel, "weights", "unit", "fc", NULL, u, "png");
        set_shape(&e, 3, 4, 3, 3);
        CHECK_OK(cnn_manifest_add(m, &e));
    }
    make_file("predictions.json", "[]\n");
    e = entry("predictions.json", "predictions", NULL, NULL, NULL, -1, "json");
    CHECK_OK(cnn_manifest_add(m, &e));
    make_file("predictions.csv", "input,top1_index,top1_label,top1_prob\n");
    e = entry("predictions.csv", "predictions", NULL, NULL, NULL, -1, "csv");
    CHECK_OK(cnn_manifest_add(m, &e));
    make_file("trace.json", "{\"traceEvents\": []}\n");
    e = entry("trace.json", "trace", NULL, NULL, NULL, -1, "json");
    CHECK_OK(cnn_manifest_add(m, &e));
}

static void test_full_run(void)
{
    cnn_manifest m = {0};
    add_input(&m, IN_CAT, "cat 1", 1);
    add_model(&m);
    add_input(&m, IN_PLAIN, "plain", 20);
    /* An input the manifest knows but the predictions do not. */
    make_png("orphan/input.png", 5, 4, 1, 90);
    cnn_manifest_entry e = entry("orphan/input.png", "input", "input", NULL, IN_ORPHAN, -1, "png");
    CHECK_OK(cnn_manifest_add(&m, &e));

    cnn_report_input inputs[2] = {{IN_CAT, g_top_cat, 3}, {IN_PLAIN, g_top_plain, 2}};
    const char *notes[2] = {"taps capped at 64 channels", "NaN found in <conv1> & friends"};
    cnn_report r = {.title = "tiny <net> & co", .config = "configs/tiny \"net\".yaml",
                    .device = "Portable Computing Language (pthread)", .files = &m, .inputs = inputs,
                    .n_inputs = 2, .layers = g_layers, .n_layers = 5, .notes = notes, .n_notes = 2};
    char *index = in_dir("index.html");

    /* Without profiling first: no time column. */
    cnn_report_layer unprofiled[5];
    memcpy(unprofiled, g_layers, sizeof unprofiled);
    for (int i = 0; i < 5; i++) unprofiled[i].ms = -1;
    r.layers = unprofiled;
    CHECK_OK(cnn_report_write(index, &r));
    char *html = read_text(index);
    if (html) {
        check_self_contained(html, "unprofiled");
        CHECK(!strstr(html, "share of run time"), "time column without profiling");
        CHECK(!strstr(html, "device time"), "device time without profiling");
        CHECK(strstr(html, "class=\"tag\""), "fused layer not marked");
    }
    free(html);

    r.layers = g_layers;
    CHECK_OK(cnn_report_write(index, &r));
    html = read_text(index);
    if (html) {
        check_self_contained(html, "full run");
        /* Every image and file of the manifest is referenced, URL-escaped. */
        for (int i = 0; i < m.n; i++) {
            char u[1024], attr[1100];
            url_escape(m.e[i].path, u, sizeof u);
            snprintf(attr, sizeof attr, "href=\"%s\"", u);
            if (!strcmp(m.e[i].format, "png")) CHECK(strstr(html, u), "%s not referenced", m.e[i].path);
            else CHECK(strstr(html, attr), "%s not linked", m.e[i].path);
        }
        CHECK(strstr(html, "cat%201/input.png"), "space not escaped");
        CHECK(strstr(html, "filter%20%231%20100%25.png"), "'#' and '%%' not escaped");
        CHECK(!strstr(html, "\"cat 1/") && !strstr(html, " cat 1/"), "raw path with a space in an attribute");
        /* Text is escaped everywhere. */
        CHECK(strstr(html, "conv&lt;1&gt;&amp;&quot;a&quot;"), "layer name not escaped");
        CHECK(!strstr(html, "conv<1>"), "raw layer name in the page");
        CHECK(strstr(html, "samples/cat &lt;1&gt; &amp; &quot;dog&#39;s&quot;.jpg"), "input path not escaped");
        CHECK(strstr(html, "tabby &lt;cat&gt; &amp; &#39;kitten&#39;"), "label not escaped");
        CHECK(strstr(html, "<title>tiny &lt;net&gt; &amp; co"), "title not escaped");
        CHECK(strstr(html, "NaN found in &lt;conv1&gt; &amp; friends"), "note not escaped");
        CHECK(strstr(html, "showing 4 of 4 channels &lt;all&gt;"), "entry note missing");
        /* Structure. */
        CHECK(count_of(html, "<details class=\"in\"") == 3, "%d input sections",
              count_of(html, "<details class=\"in\""));
        CHECK(count_of(html, "No predictions for this input") == 1, "orphan input");
        CHECK(strstr(html, "id=\"model\""), "no Model section");
        CHECK(count_of(html, "class=\"drill\"") == 4, "%d drill-downs", count_of(html, "class=\"drill\""));
        CHECK(count_of(html, "class=\"card\"") == 6, "%d tap cards", count_of(html, "class=\"card\""));
        CHECK(strstr(html, "<dt>taps</dt><dd>4</dd>"), "distinct taps not counted");
        CHECK(strstr(html, "<dt>files</dt><dd>24 images, 7 other files</dd>"), "files not counted");
        CHECK(strstr(html, "share of run time"), "no time column");
        CHECK(strstr(html, "81.25%"), "top-1 probability missing");
        CHECK(strstr(html, "2 NaN/Inf values"), "NaN warning missing");
        CHECK(strstr(html, "range [-1.5, 2.5]"), "range missing");
        CHECK(strstr(html, "data-ch=\"0 1 2 3\""), "channels not in order");
        CHECK(strstr(html, "data-bad=\"2\""), "bad channel not flagged");
        /* The drill-downs load nothing up front: only inputs and main images are <img>. */
        CHECK(count_of(html, "<img") == 3 + 2 * 2 + 2, "%d <img> up front", count_of(html, "<img"));
        /* Model taps come once, not per input. */
        CHECK(count_of(html, "model/fc/weights.png") == 1, "weights shown %d times",
              count_of(html, "model/fc/weights.png"));
        /* Deterministic. */
        char *again = NULL;
        CHECK_OK(cnn_report_write(index, &r));
        again = read_text(index);
        CHECK(again && strcmp(html, again) == 0, "two writes differ");
        free(again);
    }
    free(html);

    int rc = run_checker(g_dir);
    CHECK(rc == 0, "check_report.py %s exited with %d (see its messages above)", g_dir, rc);

    /* Errors name the path. */
    char *bad = in_dir("no/such/folder/index.html");
    int s = cnn_report_write(bad, &r);
    CHECK(s == CNN_ERR_IO, "write into a missing folder: %d", s);
    CHECK(strstr(cnn_error_message(), "no/such/folder") && strstr(cnn_error_message(), "index.html"),
          "message does not name the path: %s", cnn_error_message());
    free(bad);
    free(index);
    cnn_manifest_free(&m);
}

/* No inputs, no files, no layers: still a valid page. */
static void test_empty(void)
{
    char *dir = in_dir("empty");
    char *index = in_dir("empty/index.html");
    CHECK_OK(cnn_mkdirs(dir, 0755));
    cnn_manifest m = {0};
    cnn_report r = {.files = &m};
    CHECK_OK(cnn_report_write(index, &r));
    char *html = read_text(index);
    if (html) check_self_contained(html, "empty");
    free(html);
    r.files = NULL;
    CHECK_OK(cnn_report_write(index, &r));
    CHECK(run_checker(dir) == 0, "check_report.py rejects the empty page");
    free(index);
    free(dir);
}

/* An output with NaN (probabilities NaN) next to a finite one: its title
 * names no class and its table says NaN, never 0 %; the finite input's
 * page is unchanged. */
static void test_nan_predictions(void)
{
    static const cnn_report_pred nan_top[] = {{4, "coat", NAN}, {1, "trouser", NAN}};
    const cnn_report_input inputs[] = {{"in/nan.png", nan_top, 2}, {"in/ok.png", g_top_plain, 2}};
    cnn_manifest m = {0};
    cnn_report r = {.title = "nan", .files = &m, .inputs = inputs, .n_inputs = 2};
    char *index = in_dir("nan.html");
    CHECK_OK(cnn_report_write(index, &r));
    char *html = read_text(index);
    if (html) {
        const char *nan_in = strstr(html, "in/nan.png"), *ok_in = strstr(html, "in/ok.png");
        const char *warn = strstr(html, "<span class=\"t1 warn\">output holds NaN or Inf</span>");
        CHECK(nan_in && ok_in && warn && nan_in < warn && warn < ok_in, "NaN input's title does not say so");
        CHECK(count_of(html, "t1 warn") == 1, "%d titles flagged", count_of(html, "t1 warn"));
        CHECK(count_of(html, "<span>NaN</span>") == 2, "%d NaN probabilities", count_of(html, "<span>NaN</span>"));
        CHECK(count_of(html, "No class is predicted") == 1, "NaN note shown %d times",
              count_of(html, "No class is predicted"));
        CHECK(!strstr(html, "coat 0.0%") && strstr(html, "<span>100.00%</span>"), "probabilities rendered wrong");
    }
    free(html);
    unlink(index);
    free(index);
}

/* 5000 inputs: fast to write, and nothing but one image per tap up front. */
static void test_many_inputs(void)
{
    enum { N = 5000, CH = 16 };
    cnn_manifest m = {0};
    int add_failed = 0;
    cnn_report_input *inputs = cnn_calloc(N, sizeof *inputs);
    char(*names)[32] = cnn_calloc(N, sizeof *names);
    CHECK(inputs && names, "allocation");
    if (!inputs || !names) {
        free(names);
        free(inputs);
        return;
    }
    for (int k = 0; k < N; k++) {
        char rel[96];
        snprintf(names[k], sizeof names[k], "in/%05d.png", k);
        inputs[k] = (cnn_report_input){names[k], g_top_cat, 3};
        snprintf(rel, sizeof rel, "x%05d/input.png", k);
        cnn_manifest_entry e = entry(rel, "input", "input", NULL, names[k], -1, "png");
        add_failed += cnn_manifest_add(&m, &e) != CNN_OK;
        snprintf(rel, sizeof rel, "x%05d/conv/activations.png", k);
        e = entry(rel, "activations", "montage", CONV, names[k], -1, "png");
        add_failed += cnn_manifest_add(&m, &e) != CNN_OK;
        for (int c = 0; c < CH; c++) {
            snprintf(rel, sizeof rel, "x%05d/conv/channel_%03d.png", k, c);
            e = entry(rel, "activations", "channel", CONV, names[k], c, "png");
            add_failed += cnn_manifest_add(&m, &e) != CNN_OK;
        }
    }
    CHECK(add_failed == 0, "%d manifest entries not added: %s", add_failed, cnn_error_message());
    cnn_report r = {.title = "many", .files = &m, .inputs = inputs, .n_inputs = N, .layers = g_layers,
                    .n_layers = 5};
    char *index = in_dir("many.html");
    double t0 = cnn_now_ms();
    CHECK_OK(cnn_report_write(index, &r));
    double ms = cnn_now_ms() - t0;
    printf("test_report: %d inputs, %d files: page written in %.0f ms\n", N, m.n, ms);
    CHECK(ms < 5000, "writing the page for %d inputs took %.0f ms", N, ms);
    char *html = read_text(index);
    if (html) {
        CHECK(count_of(html, "<img") == 2 * N, "%d <img> for %d inputs", count_of(html, "<img"), N);
        CHECK(count_of(html, "<details class=\"in\" id=\"input-") == N, "input sections");
        CHECK(count_of(html, " open>") == 8, "%d sections open", count_of(html, " open>"));
        CHECK(strstr(html, "x04999/conv/channel_015.png"), "last channel missing");
        size_t len = strlen(html);
        printf("test_report: page is %zu bytes (%.0f per file)\n", len, (double)len / m.n);
        CHECK(len < (size_t)m.n * 200, "page too large: %zu bytes", len);
        /* Input order is the command line's. */
        const char *a = strstr(html, "in/00000.png"), *b = strstr(html, "in/04999.png");
        CHECK(a && b && a < b, "inputs out of order");
    }
    free(html);
    unlink(index);
    free(index);
    free(names);
    free(inputs);
    cnn_manifest_free(&m);
}

/* The checker itself must fail broken pages. */
static void test_checker_rejects(void)
{
    static const struct {
        const char *name, *html;
    } cases[] = {
        {"missing-image", "<!DOCTYPE html><html><body><img src=\"nope.png\">"
                          "<script>document.body.setAttribute('data-selftest', 'ok 1')</script></body></html>"},
        {"external-script", "<!DOCTYPE html><html><body><script src=\"http://example.invalid/x.js\"></script>"
                            "<script>document.body.setAttribute('data-selftest', 'ok 0')</script></body></html>"},
        {"link", "<!DOCTYPE html><html><head><link rel=\"stylesheet\" href=\"a.css\"></head><body>"
                 "<script>document.body.setAttribute('data-selftest', 'ok 0')</script></body></html>"},
        {"outside", "<!DOCTYPE html><html><body><img src=\"../good/a.png\">"
                    "<script>document.body.setAttribute('data-selftest', 'ok 1')</script></body></html>"},
        {"js-error", "<!DOCTYPE html><html><body><img src=\"a.png\">"
                     "<script>document.body.setAttribute('data-selftest', 'ok 1'); null.x;</script></body></html>"},
        {"no-selftest", "<!DOCTYPE html><html><body><img src=\"a.png\"><script>var x = 1;</script></body></html>"},
        {"lazy-broken", "<!DOCTYPE html><html><body><details data-files=\"a.png broken.png\"><div class=\"grid\">"
                        "</div></details><script>document.body.setAttribute('data-selftest', 'ok 2')</script>"
                        "</body></html>"},
    };
    char rel[128];
    make_png("checker/good/a.png", 4, 4, 1, 3);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(rel, sizeof rel, "checker/%s/index.html", cases[i].name);
        make_file(rel, cases[i].html);
        snprintf(rel, sizeof rel, "checker/%s/a.png", cases[i].name);
        make_png(rel, 4, 4, 1, 3);
    }
    /* A PNG cut short: the signature is right, the data is not. */
    static const char cut[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\4\0\0\0\4\x08\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    make_bytes("checker/lazy-broken/broken.png", cut, sizeof cut - 1);
    fprintf(stderr, "test_report: the checker must now reject %zu broken pages (FAIL lines expected):\n",
            sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(rel, sizeof rel, "checker/%s", cases[i].name);
        char *dir = in_dir(rel);
        int rc = dir ? run_checker(dir) : -1;
        CHECK(rc == 1, "check_report.py accepted the broken page '%s' (exit %d)", cases[i].name, rc);
        free(dir);
    }
    /* ... and accept a good hand-written one. */
    make_file("checker/good/index.html",
              "<!DOCTYPE html><html><body><img src=\"a.png\"><details data-files=\"a.png\"></details>"
              "<script>document.body.setAttribute('data-selftest', 'ok 1')</script></body></html>");
    char *good = in_dir("checker/good");
    CHECK(good && run_checker(good) == 0, "check_report.py rejects a good page");
    free(good);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *base = getenv("CNNVIZ_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_report.%ld", base && base[0] ? base : "/tmp", (long)getpid());
    CHECK_OK(cnn_mkdirs(g_dir, 0755));
    bool chromium = have_chromium();
    CHECK(chromium, "chromium is not installed: the report test needs it; run cmake/install-deps.sh");

    test_full_run();
    test_empty();
    test_nan_predictions();
    test_many_inputs();
    if (chromium) test_checker_rejects();

    int rc = test_summary("test_report");
    if (rc == 0) nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else fprintf(stderr, "test_report: files kept in %s\n", g_dir);
    return rc;
}
