#define _POSIX_C_SOURCE 200809L
#include "import/import.h"
#include "config/config.h"
#include "core/error.h"
#include "core/util.h"
#include "import/ir.h"
#include "import/onnx.h"
#include "io/json.h"
#include "model/graph.h"
#include "model/weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};
/* one grey channel: the means of the three */
static const float IMAGENET_MEAN_GRAY = 0.449f;
static const float IMAGENET_STD_GRAY = 0.226f;

bool cnn_import_is_onnx(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}

int cnn_import_parse_preprocess(const char *s, cnn_preprocess *out)
{
    if (!strcmp(s, "imagenet")) *out = CNN_PRE_IMAGENET;
    else if (!strcmp(s, "none")) *out = CNN_PRE_NONE;
    else if (!strcmp(s, "raw")) *out = CNN_PRE_RAW;
    else return cnn_error_set(CNN_ERR_USAGE, "--preprocess '%s': expected imagenet, none or raw", s);
    return CNN_OK;
}

int cnn_import_parse_floats(const char *flag, const char *s, float out[3], int *n)
{
    const char *c = s;
    *n = 0;
    while (*n < 3) {
        char *end;
        double v = strtod(c, &end);
        if (end == c || !isfinite(v) || fabs(v) > 1e6)
            return cnn_error_set(CNN_ERR_USAGE, "%s '%s': expected 1 or 3 numbers separated by commas", flag, s);
        out[(*n)++] = (float)v;
        if (*end == '\0') break;
        if (*end != ',') return cnn_error_set(CNN_ERR_USAGE, "%s '%s': expected 1 or 3 numbers separated by commas",
                                              flag, s);
        c = end + 1;
    }
    if (*n == 2 || (*n == 3 && strchr(c, ',')))
        return cnn_error_set(CNN_ERR_USAGE, "%s '%s': expected 1 or 3 numbers separated by commas", flag, s);
    return CNN_OK;
}

int cnn_import_parse_size(const char *s, int out[2])
{
    char *end;
    long h = strtol(s, &end, 10), w = h;
    if (*end == ',') w = strtol(end + 1, &end, 10);
    if (end == s || *end || h < 1 || w < 1 || h > 65536 || w > 65536)
        return cnn_error_set(CNN_ERR_USAGE, "--size '%s': expected N or H,W (1..65536)", s);
    out[0] = (int)h;
    out[1] = (int)w;
    return CNN_OK;
}

void cnn_import_free(cnn_import *r)
{
    free(r->yaml);
    free(r->weights);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------------- */

typedef struct text {
    char *s;
    size_t len, cap;
    bool failed;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *b = realloc(t->s, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->s = b;
        t->cap = cap;
    }
}

/* The shortest spelling of f that reads back as f. */
static void add_float(text *t, float f)
{
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    add(t, "%s", buf);
}

static void add_floats(text *t, const float *v, int n)
{
    add(t, "[");
    for (int i = 0; i < n; i++) {
        add(t, "%s", i ? ", " : "");
        add_float(t, v[i]);
    }
    add(t, "]");
}

/* Printable ASCII only, for comments. */
static void ascii(const char *in, char *out, size_t size)
{
    size_t k = 0;
    for (const char *c = in ? in : ""; *c && k + 1 < size; c++) out[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    out[k] = '\0';
}

/* The safetensors image of the tensors: F32, little-endian, header padded
 * to 8 bytes so every tensor is aligned for float. */
static int build_weights(const cnn_ir_out *o, const char *source, cnn_import *r)
{
    cnn_json j;
    cnn_json_init(&j, false);
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "__metadata__");
    cnn_json_object_begin(&j);
    cnn_json_key(&j, "format");
    cnn_json_string(&j, "pt");
    cnn_json_key(&j, "source");
    cnn_json_string(&j, source);
    cnn_json_key(&j, "written_by");
    cnn_json_string(&j, CNN_IMPORT_MARK);
    cnn_json_object_end(&j);
    size_t off = 0;
    for (int i = 0; i < o->n_tensors; i++) {
        const cnn_ir_tensor *t = &o->tensors[i];
        cnn_json_key(&j, t->name);
        cnn_json_object_begin(&j);
        cnn_json_key(&j, "dtype");
        cnn_json_string(&j, "F32");
        cnn_json_key(&j, "shape");
        cnn_json_array_begin(&j);
        for (int d = 0; d < t->ndim; d++) cnn_json_int(&j, (long long)t->dims[d]);
        cnn_json_array_end(&j);
        cnn_json_key(&j, "data_offsets");
        cnn_json_array_begin(&j);
        cnn_json_int(&j, (long long)off);
        size_t bytes;
        if (!cnn_mul_size(t->numel, sizeof(float), &bytes) || !cnn_add_size(off, bytes, &off)) {
            cnn_json_free(&j);
            return cnn_error_set(CNN_ERR_INPUT, "the model's tensors are too large");
        }
        cnn_json_int(&j, (long long)off);
        cnn_json_array_end(&j);
        cnn_json_object_end(&j);
    }
    cnn_json_object_end(&j);
    if (j.failed) {
        cnn_json_free(&j);
        return CNN_ERR_NOMEM;
    }
    size_t hlen = (j.len + 7) / 8 * 8, total;
    if (!cnn_add_size(8 + hlen, off, &total)) {
        cnn_json_free(&j);
        return cnn_error_set(CNN_ERR_INPUT, "the model's tensors are too large");
    }
    /* 16-byte aligned like malloc's blocks, with room for the tail */
    unsigned char *img = cnn_malloc(total ? total : 1);
    if (!img) {
        cnn_json_free(&j);
        return CNN_ERR_NOMEM;
    }
    for (int b = 0; b < 8; b++) img[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
    memcpy(img + 8, j.buf, j.len);
    memset(img + 8 + j.len, ' ', hlen - j.len);
    cnn_json_free(&j);
    unsigned char *p = img + 8 + hlen;
    const uint32_t one = 1;
    unsigned char le;
    memcpy(&le, &one, 1);
    for (int i = 0; i < o->n_tensors; i++) {
        const cnn_ir_tensor *t = &o->tensors[i];
        size_t bytes = t->numel * sizeof(float);
        if (bytes) memcpy(p, t->data, bytes);
        if (le != 1)
            for (size_t k = 0; k < bytes; k += 4) {
                unsigned char a = p[k], b = p[k + 1];
                p[k] = p[k + 3];
                p[k + 1] = p[k + 2];
                p[k + 2] = b;
                p[k + 3] = a;
            }
        p += bytes;
    }
    r->weights = img;
    r->weights_len = total;
    return CNN_OK;
}

/* The model.input section and the line that says what it assumes. */
static int write_input(text *t, const cnn_ir_out *o, const cnn_ir *g, const cnn_import_opts *opt, cnn_import *r)
{
    bool image = g->vals[g->input].rank == 4 && (o->in_c == 1 || o->in_c == 3);
    t->failed |= false;
    add(t, "  input:\n");
    if (!image) {
        add(t, "    # A tensor input ([C, H, W] = the model's input without its batch axis): run it on .npy\n"
               "    # files holding float32 [C, H, W] or [N, C, H, W], fed as they are.\n");
        add(t, "    shape: [%d, %d, %d]\n    color: none\n    resize: none\n", o->in_c, o->in_h, o->in_w);
        snprintf(r->assumed, sizeof r->assumed, "no preprocessing: the input [%d, %d, %d] is a tensor, given as .npy",
                 o->in_c, o->in_h, o->in_w);
        if (opt->has_mean || opt->has_std || opt->pre != CNN_PRE_IMAGENET)
            return cnn_error_set(CNN_ERR_USAGE, "%s: the input [%d, %d, %d] is not an image: --preprocess, --mean "
                                 "and --std do not apply", g->path, o->in_c, o->in_h, o->in_w);
        return CNN_OK;
    }
    int c = o->in_c;
    float mean[3], std[3], scale = opt->pre == CNN_PRE_RAW ? 1.0f : 1.0f / 255.0f;
    for (int i = 0; i < c; i++) {
        mean[i] = opt->pre != CNN_PRE_IMAGENET ? 0.0f : c == 3 ? IMAGENET_MEAN[i] : IMAGENET_MEAN_GRAY;
        std[i] = opt->pre != CNN_PRE_IMAGENET ? 1.0f : c == 3 ? IMAGENET_STD[i] : IMAGENET_STD_GRAY;
    }
    if (opt->has_mean) {
        if (opt->n_mean != 1 && opt->n_mean != c)
            return cnn_error_set(CNN_ERR_USAGE, "--mean: %d values for an input of %d channel%s", opt->n_mean, c,
                                 c == 1 ? "" : "s");
        for (int i = 0; i < c; i++) mean[i] = opt->mean[opt->n_mean == 1 ? 0 : i];
    }
    if (opt->has_std) {
        if (opt->n_std != 1 && opt->n_std != c)
            return cnn_error_set(CNN_ERR_USAGE, "--std: %d values for an input of %d channel%s", opt->n_std, c,
                                 c == 1 ? "" : "s");
        for (int i = 0; i < c; i++) {
            std[i] = opt->std[opt->n_std == 1 ? 0 : i];
            if (!(std[i] > 0)) return cnn_error_set(CNN_ERR_USAGE, "--std: values must be > 0");
        }
    }
    int h = o->in_h, w = o->in_w, small = h < w ? h : w, big = h > w ? h : w;
    /* torchvision's eval transform: Resize(256) then CenterCrop(224), the same ratio at other sizes */
    int shorter = (int)lround(small * 256.0 / 224.0);
    if (shorter < big) shorter = big;
    const char *what = opt->pre == CNN_PRE_IMAGENET ? "ImageNet's defaults"
                       : opt->pre == CNN_PRE_NONE   ? "pixels / 255, no mean or std"
                                                    : "raw pixel values 0..255";
    add(t, "    # Preprocessing is not part of an ONNX model. Assumed: %s%s (torchvision's\n"
           "    # eval transform geometry); edit these to match how the model was trained.\n",
        what, opt->has_mean || opt->has_std ? ", with --mean/--std" : "");
    add(t, "    shape: [%d, %d, %d]\n    color: %s\n", c, h, w, c == 3 ? "rgb" : "gray");
    if (h == w) add(t, "    resize: {shorter: %d, crop: %d}\n", shorter, h);
    else add(t, "    resize: {shorter: %d, crop: [%d, %d]}\n", shorter, h, w);
    add(t, "    scale: ");
    add_float(t, scale);
    add(t, "\n    mean: ");
    add_floats(t, mean, c);
    add(t, "\n    std: ");
    add_floats(t, std, c);
    add(t, "\n");
    char m[96] = "", s[96] = "";
    size_t km = 0, ks = 0;
    for (int i = 0; i < c; i++) {
        km += (size_t)snprintf(m + km, sizeof m - km, "%s%.4g", i ? ", " : "", (double)mean[i]);
        ks += (size_t)snprintf(s + ks, sizeof s - ks, "%s%.4g", i ? ", " : "", (double)std[i]);
    }
    snprintf(r->assumed, sizeof r->assumed, "%s: resize the shorter side to %d, centre crop %dx%d, pixels %s, mean "
             "[%s], std [%s]", opt->pre == CNN_PRE_IMAGENET ? "ImageNet preprocessing" : opt->pre == CNN_PRE_NONE
             ? "preprocessing 'none'" : "preprocessing 'raw'", shorter, w, h,
             opt->pre == CNN_PRE_RAW ? "0..255" : "/ 255", m, s);
    return CNN_OK;
}

/* Parses the pipeline and builds its graph over the weights: the import
 * wrote what it meant to.  Skipped (r->checked false) when it uses ops
 * this build does not have. */
static int check(const char *path, cnn_import *r, const cnn_ir_out *o)
{
    /* The newer op set comes as a whole (ops and keys such as const: and
     * over: channels): a build that has its `mul` reads all of it. */
    bool known = !r->newer[0];
    for (int op = 0; op < CNN_OP_COUNT && !known; op++) known = !strcmp(cnn_op_name((cnn_op)op), "mul");
    cnn_pipeline p;
    char *dir = cnn_path_dir(path), *name = cnn_strfmt("%s (imported)", path);
    int status = dir && name ? cnn_pipeline_parse(name, dir, r->yaml, r->yaml_len, &p) : CNN_ERR_NOMEM;
    free(dir);
    free(name);
    if (status < 0 && !known) {
        /* an op or key of the newer set this build does not read yet */
        cnn_pipeline_free(&p);
        cnn_error_clear();
        return CNN_OK;
    }
    if (status < 0) {
        cnn_pipeline_free(&p);
        return cnn_error_prefix(status, "%s: the imported pipeline does not parse (an import bug)", path);
    }
    cnn_weights w;
    status = cnn_weights_open_memory(path, r->weights, r->weights_len, &w);
    if (status == CNN_OK) {
        cnn_graph gr;
        status = cnn_graph_build(&p, &w, &gr);
        if (status == CNN_OK) {
            const cnn_layer *last = &gr.layers[gr.n - 1];
            if (last->c != o->out_c || last->h != o->out_h || last->w != o->out_w)
                status = cnn_error_set(CNN_ERR_INPUT, "%s: the imported pipeline's output is [%d, %d, %d], the "
                                       "model's [%d, %d, %d] (an import bug)", path, last->c, last->h, last->w,
                                       o->out_c, o->out_h, o->out_w);
            r->n_params = gr.total_params;
            cnn_graph_free(&gr);
        }
        cnn_weights_close(&w);
    }
    cnn_pipeline_free(&p);
    if (status == CNN_OK) r->checked = true;
    return status;
}

int cnn_import_onnx(const char *path, const cnn_import_opts *opt, cnn_import *r)
{
    memset(r, 0, sizeof *r);
    cnn_onnx_file f;
    int status = cnn_onnx_open(path, &f);
    if (status == CNN_OK) status = cnn_import_file(&f, opt, r);
    cnn_onnx_close(&f);
    return cnn_onnx_one_line(status);
}

int cnn_import_file(cnn_onnx_file *file, const cnn_import_opts *opt, cnn_import *r)
{
    memset(r, 0, sizeof *r);
    const char *path = file->path;
    cnn_ir g;
    cnn_ir_out o;
    memset(&g, 0, sizeof g);
    memset(&o, 0, sizeof o);
    text t = {0};
    int status = CNN_OK;
    CNN_TRY(cnn_ir_build(file, opt->size, &g), done);
    CNN_TRY(cnn_ir_fuse(&g), done);
    CNN_TRY(cnn_ir_emit(&g, &o), done);
    snprintf(r->newer, sizeof r->newer, "%s", o.newer);

    char *stem = cnn_path_stem(path), *base = NULL;
    if (!stem) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    char name[128], prod[96] = "", pver[64] = "";
    cnn_sanitize_name(stem, name, sizeof name);
    free(stem);
    ascii(file->model->producer_name, prod, sizeof prod);
    ascii(file->model->producer_version, pver, sizeof pver);
    base = strrchr(path, '/') ? cnn_strdup(strrchr(path, '/') + 1) : cnn_strdup(path);
    if (!base) {
        status = CNN_ERR_NOMEM;
        goto done;
    }
    char shown[200];
    ascii(base, shown, sizeof shown);
    add(&t, "# Imported from %s by " CNN_IMPORT_MARK " (ONNX IR version %lld, opset %lld%s%s%s%s).\n", shown,
        (long long)(file->model->has_ir_version ? file->model->ir_version : 0), (long long)file->opset, prod[0] ? ", from " : "",
        prod, pver[0] ? " " : "", pver);
    add(&t, "# Each layer is named after the module (or node) it came from; the comment names the ONNX node.\n");
    add(&t, "version: 1\nmodel:\n  name: %s\n", name);
    if (opt->weights_file) {
        char wf[300];
        ascii(opt->weights_file, wf, sizeof wf);
        bool plain = wf[0] && !strchr("-.?:,[]{}#&*!|>'\"%@`~ ", wf[0]);
        for (const char *c = wf; *c && plain; c++) plain = !strchr(":#'\"", *c);
        add(&t, "  weights: %s", plain ? "" : "'");
        for (const char *c = wf; *c; c++) add(&t, *c == '\'' ? "''" : "%c", *c);
        add(&t, "%s\n", plain ? "" : "'");
    } else {
        add(&t, "  weights: %s.safetensors\n", name);
    }
    status = write_input(&t, &o, &g, opt, r);
    if (status < 0) {
        free(base);
        goto done;
    }
    add(&t, "layers:\n");
    if (!t.failed && o.layers) add(&t, "%s", o.layers);
    if (t.failed) {
        free(base);
        status = cnn_error_set(CNN_ERR_NOMEM, "out of memory writing the pipeline");
        goto done;
    }
    r->n_layers = o.n_layers;
    r->n_tensors = o.n_tensors;
    status = build_weights(&o, base, r);
    free(base);
    if (status < 0) goto done;
    r->yaml = t.s;
    r->yaml_len = t.len;
    t.s = NULL;
    for (int i = 0; i < o.n_tensors; i++) r->n_params += o.tensors[i].numel;
    status = check(path, r, &o);
done:
    free(t.s);
    cnn_ir_out_free(&o);
    cnn_ir_free(&g);
    if (status < 0) cnn_import_free(r);
    return cnn_onnx_one_line(status);
}
