/* libFuzzer target: an earlier run's manifest.json from bytes, read as the
 * output folder reads it before deciding what it may replace or remove.
 * Any input must end in CNN_OK or CNN_ERR_INPUT with a one-line message;
 * an accepted manifest yields only plain relative paths (never "..", an
 * absolute path, a hidden component or manifest.json itself) with sizes
 * and times in range. */
#include "core/error.h"
#include "io/manifest.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cnn_owned o;
    cnn_error_clear();
    int status = cnn_manifest_parse_owned((const char *)data, size, &o);
    if (status == CNN_OK) {
        for (int i = 0; i < o.n; i++) {
            const cnn_owned_file *f = &o.f[i];
            CNN_ASSERT(cnn_manifest_path_ok(f->path));
            CNN_ASSERT(f->path[0] != '/' && strstr(f->path, "..") != f->path && strcmp(f->path, "manifest.json"));
            CNN_ASSERT(!strstr(f->path, "/.") && !strstr(f->path, "//"));
            CNN_ASSERT(f->bytes >= 0 && f->mtime_ns >= 0 && f->mtime_ns < 1000000000);
        }
        cnn_owned_free(&o);
    } else {
        CNN_ASSERT(status == CNN_ERR_INPUT || status == CNN_ERR_NOMEM);
        const char *msg = cnn_error_message();
        CNN_ASSERT(status == CNN_ERR_NOMEM || (msg[0] != '\0' && strchr(msg, '\n') == NULL));
    }
    return 0;
}
