/* libFuzzer target: a pipeline file (YAML) from bytes, then the graph built
 * from it without weights (every shape inferred and checked), then freed.
 * Any input must end in CNN_OK or a negative status with a one-line message;
 * crashes, leaks, sanitizer reports and hangs are bugs. */
#include "config/config.h"
#include "core/error.h"
#include "model/graph.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cnn_pipeline p;
    cnn_error_clear();
    int status = cnn_pipeline_parse("fuzz.yaml", "/nonexistent", (const char *)data, size, &p);
    if (status == CNN_OK) {
        cnn_graph g;
        status = cnn_graph_build(&p, NULL, &g);
        if (status == CNN_OK) {
            /* An accepted graph has sizes the runtime can allocate: every
             * output at most 2^31 values, computed without wrapping. */
            for (int i = 0; i < g.n; i++) {
                const cnn_layer *l = &g.layers[i];
                CNN_ASSERT(l->c >= 1 && l->h >= 1 && l->w >= 1);
                uint64_t ch = (uint64_t)l->c * (uint64_t)l->h;
                CNN_ASSERT(ch <= (1ull << 31) && ch * (uint64_t)l->w <= (1ull << 31));
                CNN_ASSERT(l->n_weight <= (1ull << 31));
            }
            cnn_graph_free(&g);
        }
    }
    /* Every failure says what went wrong, on one line. */
    if (status < 0 && status != CNN_ERR_NOMEM) {
        const char *msg = cnn_error_message();
        CNN_ASSERT(msg[0] != '\0');
        CNN_ASSERT(strchr(msg, '\n') == NULL);
    }
    cnn_pipeline_free(&p);
    return 0;
}
