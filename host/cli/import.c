/* `import`: an ONNX model -> a pipeline file and its weights, beside each
 * other, for reading, editing and running like any pipeline. */
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "core/error.h"
#include "core/util.h"
#include "import/import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char IMPORT_HELP[] =
    "usage: cnnviz-cl import MODEL.onnx [-o PIPELINE.yaml] [--preprocess imagenet|none|raw]\n"
    "                        [--mean M[,M,M]] [--std S[,S,S]] [--size N|H,W]\n"
    "\n"
    "Reads an ONNX model (e.g. from torch.onnx.export) and writes a pipeline file\n"
    "(default: MODEL.yaml beside the model) and its weights in safetensors beside\n"
    "it (PIPELINE.safetensors), replacing files of those names only when an\n"
    "earlier import wrote them.  Layers are named after the PyTorch modules they\n"
    "came from where the exporter recorded them (features.0.0), else after the\n"
    "node; weights keep the model's tensor names where a layer's tensors share a\n"
    "prefix (a torchvision export's state_dict names), else the layer's name.\n"
    "Shape computations are done at import; chains of nodes that are one op\n"
    "(LayerNorm, GELU, SiLU, hardswish, channel shuffle) become that op.  A node\n"
    "that cannot be imported is named with its op type and the supported ops.\n"
    "\n"
    "An ONNX model does not hold its input preprocessing.  The pipeline gets:\n"
    "  --preprocess imagenet  resize the shorter side (256 for 224), centre crop,\n"
    "                         pixels / 255, ImageNet mean and std (default)\n"
    "  --preprocess none      the same geometry, pixels / 255, no mean or std\n"
    "  --preprocess raw       the same geometry, pixel values 0..255\n"
    "  --mean, --std          per-channel values (one value: every channel)\n"
    "  --size N|H,W           the input size, where the model leaves it open\n"
    "A model whose input is not an image ([N, C, H, W] with C = 1 or 3) gets a\n"
    "tensor input (color: none): run it on .npy files.\n"
    "\n"
    "'cnnviz-cl run MODEL.onnx ...' imports in memory and runs, with the same options.\n";

int cnn_cli_import_option(const char *a, const char *v, cnn_import_opts *o)
{
    int status;
    if (!strcmp(a, "--preprocess")) {
        if (!v) return cnn_error_set(CNN_ERR_USAGE, "option %s needs a value", a);
        status = cnn_import_parse_preprocess(v, &o->pre);
    } else if (!strcmp(a, "--mean")) {
        if (!v) return cnn_error_set(CNN_ERR_USAGE, "option %s needs a value", a);
        status = cnn_import_parse_floats(a, v, o->mean, &o->n_mean);
        o->has_mean = true;
    } else if (!strcmp(a, "--std")) {
        if (!v) return cnn_error_set(CNN_ERR_USAGE, "option %s needs a value", a);
        status = cnn_import_parse_floats(a, v, o->std, &o->n_std);
        o->has_std = true;
    } else if (!strcmp(a, "--size")) {
        if (!v) return cnn_error_set(CNN_ERR_USAGE, "option %s needs a value", a);
        status = cnn_import_parse_size(v, o->size);
    } else {
        return 0;
    }
    return status < 0 ? status : 1;
}

/* "dir/name.yaml" -> "dir/name.safetensors" (heap). */
static char *weights_path(const char *yaml)
{
    const char *slash = strrchr(yaml, '/');
    const char *base = slash ? slash + 1 : yaml;
    const char *dot = strrchr(base, '.');
    size_t keep = dot && dot != base ? (size_t)(dot - yaml) : strlen(yaml);
    return cnn_strfmt("%.*s.safetensors", (int)keep, yaml);
}

/* An output file may be replaced only when an earlier import wrote it (its
 * mark is in its first bytes): a pipeline file of the user's, or any other
 * file, under the name is refused. */
static int replaceable(const char *path, const char *what)
{
    struct stat st;
    if (lstat(path, &st) != 0) return CNN_OK; /* a new file */
    if (!S_ISREG(st.st_mode))
        return cnn_error_set(CNN_ERR_USAGE, "import: %s exists and is not a regular file (the %s would go there)",
                             path, what);
    /* the mark is in the first line / in the header's metadata, near the start */
    int fd = cnn_file_open_read(path, &st);
    if (fd < 0) return fd;
    char head[4096];
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    bool ours = false;
    for (ssize_t i = 0; !ours && i + (ssize_t)sizeof CNN_IMPORT_MARK - 1 <= got; i++)
        ours = !memcmp(head + i, CNN_IMPORT_MARK, sizeof CNN_IMPORT_MARK - 1);
    if (!ours)
        return cnn_error_set(CNN_ERR_USAGE, "import: %s exists and was not written by cnnviz-cl import: remove it or "
                             "give another -o", path);
    return CNN_OK;
}

int cnn_cmd_import(int argc, char **argv)
{
    const char *model = NULL, *out = NULL;
    cnn_import_opts opts;
    memset(&opts, 0, sizeof opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(IMPORT_HELP, stdout);
            return CNN_OK;
        }
        int used = cnn_cli_import_option(a, v, &opts);
        if (used < 0) return used;
        if (used) {
            i++;
            continue;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (!v) return cnn_error_set(CNN_ERR_USAGE, "import: option %s needs a value", a);
            out = v;
            i++;
        } else if (a[0] == '-' || model) {
            return cnn_error_set(CNN_ERR_USAGE, "import: unexpected argument '%s' (see 'cnnviz-cl import --help')", a);
        } else {
            model = a;
        }
    }
    if (!model) return cnn_error_set(CNN_ERR_USAGE, "import: no model given (see 'cnnviz-cl import --help')");
    char *yaml_path = NULL, *w_path = NULL;
    if (out) {
        yaml_path = cnn_strdup(out);
    } else {
        /* MODEL.onnx -> MODEL.yaml beside it */
        size_t n = strlen(model);
        yaml_path = cnn_import_is_onnx(model) ? cnn_strfmt("%.*s.yaml", (int)(n - 5), model)
                                              : cnn_strfmt("%s.yaml", model);
    }
    int status = yaml_path ? CNN_OK : CNN_ERR_NOMEM;
    if (status == CNN_OK && !(w_path = weights_path(yaml_path))) status = CNN_ERR_NOMEM;
    struct stat a, b;
    if (status == CNN_OK && (!strcmp(yaml_path, model) || !strcmp(w_path, model) ||
                             (stat(model, &a) == 0 && ((stat(yaml_path, &b) == 0 && a.st_dev == b.st_dev &&
                                                        a.st_ino == b.st_ino) ||
                                                       (stat(w_path, &b) == 0 && a.st_dev == b.st_dev &&
                                                        a.st_ino == b.st_ino)))))
        status = cnn_error_set(CNN_ERR_USAGE, "import: the output would replace the model %s", model);
    if (status == CNN_OK) status = replaceable(yaml_path, "pipeline");
    if (status == CNN_OK) status = replaceable(w_path, "weights");
    cnn_import r;
    memset(&r, 0, sizeof r);
    if (status == CNN_OK) {
        const char *slash = strrchr(w_path, '/');
        opts.weights_file = slash ? slash + 1 : w_path;
        status = cnn_import_onnx(model, &opts, &r);
    }
    char *dir = status == CNN_OK ? cnn_path_dir(yaml_path) : NULL;
    if (status == CNN_OK) status = dir ? cnn_mkdirs(dir, 0755) : CNN_ERR_NOMEM;
    free(dir);
    /* the weights first: a pipeline file never names weights that are not there */
    if (status == CNN_OK) status = cnn_file_write_atomic(w_path, r.weights, r.weights_len);
    if (status == CNN_OK) status = cnn_file_write_atomic(yaml_path, r.yaml, r.yaml_len);
    if (status == CNN_OK) {
        char line[1400], params[32];
        if (r.n_params >= 1000000) snprintf(params, sizeof params, "%.2f M", (double)r.n_params / 1e6);
        else snprintf(params, sizeof params, "%llu", r.n_params);
        snprintf(line, sizeof line, "%s: %d layers, %s parameters in %d tensors -> %s, %s", model, r.n_layers, params,
                 r.n_tensors, yaml_path, w_path);
        cnn_print_line(stdout, "", line);
        snprintf(line, sizeof line, "preprocessing (not in the model): %s", r.assumed);
        cnn_print_line(stdout, "", line);
        if (r.newer[0] && !r.checked)
            cnn_warn("the pipeline uses %s, which this build of cnnviz-cl cannot run yet", r.newer);
    }
    cnn_import_free(&r);
    free(yaml_path);
    free(w_path);
    return status;
}
