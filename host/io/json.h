/* A small JSON writer (manifest.json, predictions.json, traces): builds the
 * text in memory with correct escaping and commas; numbers that are NaN or
 * infinite are written as null. */
#ifndef CNN_IO_JSON_H
#define CNN_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define CNN_JSON_MAX_DEPTH 64

typedef struct cnn_json {
    char *buf;
    size_t len, cap;
    int depth;
    bool first[CNN_JSON_MAX_DEPTH]; /* no element written yet at this depth */
    bool after_key;
    bool failed;                    /* out of memory or misuse */
    bool pretty;                    /* newlines + 2-space indent */
} cnn_json;

void cnn_json_init(cnn_json *j, bool pretty);
void cnn_json_free(cnn_json *j);
void cnn_json_object_begin(cnn_json *j);
void cnn_json_object_end(cnn_json *j);
void cnn_json_array_begin(cnn_json *j);
void cnn_json_array_end(cnn_json *j);
void cnn_json_key(cnn_json *j, const char *key);
void cnn_json_string(cnn_json *j, const char *s); /* NULL -> null */
void cnn_json_number(cnn_json *j, double v);     /* %.9g; NaN/inf -> null */
void cnn_json_int(cnn_json *j, long long v);
void cnn_json_bool(cnn_json *j, bool v);
void cnn_json_null(cnn_json *j);
/* Writes the text atomically to path (CNN_ERR_NOMEM if building failed). */
int cnn_json_write_file(cnn_json *j, const char *path);

#endif
