/* libFuzzer target: a .safetensors file from bytes (the in-memory reader
 * shares every check with the mmap one), then each tensor looked up by name
 * and converted to float32 when its dtype allows, then closed. */
#include "core/error.h"
#include "core/util.h"
#include "model/weights.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cnn_weights w;
    cnn_error_clear();
    int status = cnn_weights_open_memory("fuzz.safetensors", data, size, &w);
    if (status < 0) {
        const char *msg = cnn_error_message();
        CNN_ASSERT(msg[0] != '\0');
        CNN_ASSERT(strchr(msg, '\n') == NULL);
        return 0;
    }
    for (int i = 0; i < w.n; i++) {
        const cnn_weight_tensor *t = &w.tensors[i];
        CNN_ASSERT(cnn_weights_find(&w, t->name) == t);
        CNN_ASSERT(t->offset <= w.data_len && t->nbytes <= w.data_len - t->offset);
        if (t->dtype == CNN_DTYPE_OTHER) {
            float dummy;
            CNN_ASSERT(cnn_weights_to_f32(&w, t, &dummy) == CNN_ERR_INPUT);
            continue;
        }
        float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!out) continue;
        CNN_ASSERT(cnn_weights_to_f32(&w, t, out) == CNN_OK);
        free(out);
    }
    cnn_weights_close(&w);
    return 0;
}
