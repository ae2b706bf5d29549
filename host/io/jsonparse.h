/* A small JSON reader for the files this tool reads back (an earlier run's
 * manifest.json).  It parses the whole text into a tree of values; every
 * size is bounded (depth, string length, element count by the text itself)
 * and any input either parses or fails with a position.
 *
 * Strings are UTF-8 with escapes decoded; "\u0000" and invalid UTF-8 are
 * refused, so every string is a C string.  Numbers are doubles. */
#ifndef CNN_IO_JSONPARSE_H
#define CNN_IO_JSONPARSE_H

#include <stdbool.h>
#include <stddef.h>

#define CNN_JV_MAX_DEPTH 64

typedef enum cnn_jv_type {
    CNN_JV_NULL,
    CNN_JV_BOOL,
    CNN_JV_NUMBER,
    CNN_JV_STRING,
    CNN_JV_ARRAY,
    CNN_JV_OBJECT
} cnn_jv_type;

typedef struct cnn_jv {
    cnn_jv_type type;
    bool b;               /* BOOL */
    double num;           /* NUMBER */
    char *str;            /* STRING (NUL-terminated, valid UTF-8); NUMBER: its text as written */
    struct cnn_jv *items; /* ARRAY / OBJECT: [n] values */
    char **keys;          /* OBJECT: [n] keys, in the text's order */
    int n;
} cnn_jv;

/* Parses `len` bytes (no NUL needed) into *out (free with cnn_jv_free).
 * Errors: CNN_ERR_INPUT with "line L, column C: what" as the message
 * (callers prefix the file name), CNN_ERR_NOMEM. */
int cnn_jv_parse(const char *text, size_t len, cnn_jv *out);
void cnn_jv_free(cnn_jv *v);

/* The value of `key` in an object (the first, if repeated), or NULL when v
 * is not an object or has no such key. */
const cnn_jv *cnn_jv_get(const cnn_jv *v, const char *key);

/* A number that is an integer in [lo, hi]: true and *out set. */
bool cnn_jv_int(const cnn_jv *v, long long lo, long long hi, long long *out);

/* The string of `key` in an object, or NULL when it is missing or not a
 * string. */
const char *cnn_jv_str(const cnn_jv *v, const char *key);

/* True when a and b are the same value (numbers by their text, objects
 * with the same keys in the same order). */
bool cnn_jv_equal(const cnn_jv *a, const cnn_jv *b);

/* A file name written with cnn_json_path: the bytes of "KEY_b64" when the
 * object has it (the name is not UTF-8), else the string of KEY; heap,
 * NULL when neither is there or the base64 is not valid (or holds a NUL). */
char *cnn_jv_path(const cnn_jv *obj, const char *key);

#endif
