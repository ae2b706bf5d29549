/* libFuzzer target: an ONNX model from bytes, through the whole import: the
 * protobuf walk and decode, tensors (raw, typed and external data), constant
 * folding, shape inference, patterns, the pipeline text and its weights,
 * and the check that parses the pipeline and builds its graph.
 *
 * External data resolves in a folder made once per process holding a small
 * data file, one in a subfolder, a symbolic link to a file outside and one
 * to a folder outside, so that locations the mutator writes ("w.bin",
 * "sub/w.bin", "out", "../x", "/etc/passwd") meet real files.  Any input must
 * end in CNN_OK or a negative status with a one-line message. */
#define _POSIX_C_SOURCE 200809L
#include "core/error.h"
#include "core/util.h"
#include "import/import.h"
#include "import/onnx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[256];

static void write_file(const char *rel, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    for (size_t i = 0; i < n; i++) fputc((int)(i * 37 % 251), f);
    fclose(f);
}

static void make_folder(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/cnnviz-fuzz-onnx.%ld", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)getpid());
    mkdir(g_dir, 0700);
    char p[400], q[400];
    snprintf(p, sizeof p, "%s/sub", g_dir);
    mkdir(p, 0700);
    write_file("w.bin", 4096);
    write_file("sub/w.bin", 256);
    write_file("empty.bin", 0);
    snprintf(p, sizeof p, "%s/out", g_dir);
    if (symlink("/etc/hostname", p) != 0) { /* the folder may exist from an earlier run */
    }
    snprintf(q, sizeof q, "%s/outdir", g_dir);
    if (symlink("/etc", q) != 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) make_folder();
    cnn_error_clear();
    cnn_onnx_file f;
    char name[300];
    snprintf(name, sizeof name, "%s/fuzz.onnx", g_dir);
    int status = cnn_onnx_parse(name, g_dir, data, size, &f);
    if (status == CNN_OK) {
        cnn_import_opts o;
        memset(&o, 0, sizeof o);
        cnn_import r;
        status = cnn_import_file(&f, &o, &r);
        if (status == CNN_OK) {
            CNN_ASSERT(r.yaml && r.yaml_len == strlen(r.yaml));
            CNN_ASSERT(r.weights && r.weights_len >= 8);
            cnn_import_free(&r);
        }
    }
    cnn_onnx_close(&f);
    if (status < 0 && status != CNN_ERR_NOMEM) {
        const char *msg = cnn_error_message();
        CNN_ASSERT(msg[0] != '\0');
        CNN_ASSERT(strchr(msg, '\n') == NULL);
    }
    return 0;
}
