/* A small JSON writer (manifest.json, predictions.json, traces): builds the
 * text in memory with correct escaping and commas; numbers that are NaN or
 * infinite are written as null.  The text is always valid UTF-8, so strict
 * readers accept it: in strings, each byte that does not begin a well-formed
 * UTF-8 sequence is written as U+FFFD, and control characters are escaped
 * (\n, \t, ..., \u00XX).  A file name is a string of bytes, not of
 * characters: cnn_json_path() keeps the exact bytes of a name that is not
 * UTF-8 in a second, base64 field. */
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
void cnn_json_string(cnn_json *j, const char *s); /* NULL -> null; see above for bytes that are not UTF-8 */
/* True when s is well-formed UTF-8 throughout. */
bool cnn_json_is_utf8(const char *s);
/* n bytes as a string value in standard base64 (RFC 4648, '+/', padded). */
void cnn_json_base64(cnn_json *j, const void *data, size_t n);
/* "key": path, and when path is not valid UTF-8 (its string then holds
 * U+FFFD for the odd bytes) also "key_b64": the path's raw bytes in base64,
 * so that a reader can find the file again: key "input" gives
 * "input_b64". */
void cnn_json_path(cnn_json *j, const char *key, const char *path);
void cnn_json_number(cnn_json *j, double v);     /* %.9g; NaN/inf -> null */
void cnn_json_int(cnn_json *j, long long v);
void cnn_json_bool(cnn_json *j, bool v);
void cnn_json_null(cnn_json *j);
/* A value read by io/jsonparse.h, written back: numbers as their text,
 * strings, arrays and objects as the writer writes them, so a document
 * this writer wrote and the reader read comes out byte for byte. */
struct cnn_jv;
void cnn_json_value(cnn_json *j, const struct cnn_jv *v);
/* Writes the text atomically to path (CNN_ERR_NOMEM if building failed). */
int cnn_json_write_file(cnn_json *j, const char *path);

#endif
