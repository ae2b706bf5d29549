#define _POSIX_C_SOURCE 200809L
#include "io/json.h"
#include "io/jsonparse.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cnn_json_init(cnn_json *j, bool pretty)
{
    memset(j, 0, sizeof *j);
    j->pretty = pretty;
    j->first[0] = true;
}

void cnn_json_free(cnn_json *j)
{
    free(j->buf);
    memset(j, 0, sizeof *j);
}

/* Keeps buf NUL-terminated at all times so callers may print it directly.
 * After the first failure every call is a no-op. */
static bool reserve(cnn_json *j, size_t extra)
{
    if (j->failed) return false;
    size_t need;
    if (!cnn_add_size(j->len, extra, &need) || !cnn_add_size(need, 1, &need)) {
        j->failed = true;
        return false;
    }
    if (need <= j->cap) return true;
    size_t cap = j->cap ? j->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = cnn_realloc(j->buf, cap);
    if (!p) {
        j->failed = true;
        return false;
    }
    j->buf = p;
    j->cap = cap;
    return true;
}

static void put(cnn_json *j, const char *s, size_t n)
{
    if (!reserve(j, n)) return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void put_str(cnn_json *j, const char *s) { put(j, s, strlen(s)); }

static void newline_indent(cnn_json *j, int depth)
{
    if (!j->pretty) return;
    put(j, "\n", 1);
    for (int i = 0; i < depth; i++) put(j, "  ", 2);
}

/* Comma and line break before an element of the current container. */
static void element_sep(cnn_json *j)
{
    if (!j->first[j->depth]) put(j, ",", 1);
    j->first[j->depth] = false;
    newline_indent(j, j->depth);
}

/* Called before every value: after a key the value follows directly; at top
 * level only one value is allowed. */
static bool value_begin(cnn_json *j)
{
    if (j->failed) return false;
    if (j->after_key) {
        j->after_key = false;
        return true;
    }
    if (j->depth == 0) {
        if (!j->first[0]) {
            j->failed = true;
            return false;
        }
        j->first[0] = false;
        return true;
    }
    element_sep(j);
    return !j->failed;
}

/* Strings are written as valid UTF-8 whatever the bytes: a byte that does
 * not start a well-formed sequence becomes U+FFFD.  Control characters are
 * escaped as JSON requires. */
static void put_escaped(cnn_json *j, const char *s)
{
    put(j, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t run = 0; /* start of bytes that go out as they are */
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        size_t seq = cnn_utf8_seq_len(p + i, n - i);
        if (seq > 1 || (seq == 1 && ch != '"' && ch != '\\' && ch >= 0x20)) {
            i += seq;
            continue;
        }
        put(j, s + run, i - run);
        char esc[8];
        switch (seq == 0 ? 0x100 : ch) {
        case 0x100: put_str(j, "\xef\xbf\xbd"); break;
        case '"': put_str(j, "\\\""); break;
        case '\\': put_str(j, "\\\\"); break;
        case '\b': put_str(j, "\\b"); break;
        case '\f': put_str(j, "\\f"); break;
        case '\n': put_str(j, "\\n"); break;
        case '\r': put_str(j, "\\r"); break;
        case '\t': put_str(j, "\\t"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put_str(j, esc);
            break;
        }
        run = ++i;
    }
    put(j, s + run, n - run);
    put(j, "\"", 1);
}

static void container_begin(cnn_json *j, char open)
{
    if (!value_begin(j)) return;
    if (j->depth + 1 >= CNN_JSON_MAX_DEPTH) {
        j->failed = true;
        return;
    }
    put(j, &open, 1);
    j->depth++;
    j->first[j->depth] = true;
}

static void container_end(cnn_json *j, char close)
{
    if (j->failed) return;
    if (j->depth == 0 || j->after_key) {
        j->failed = true;
        return;
    }
    bool empty = j->first[j->depth];
    j->depth--;
    if (!empty) newline_indent(j, j->depth);
    put(j, &close, 1);
}

void cnn_json_object_begin(cnn_json *j) { container_begin(j, '{'); }
void cnn_json_object_end(cnn_json *j) { container_end(j, '}'); }
void cnn_json_array_begin(cnn_json *j) { container_begin(j, '['); }
void cnn_json_array_end(cnn_json *j) { container_end(j, ']'); }

void cnn_json_key(cnn_json *j, const char *key)
{
    if (j->failed) return;
    if (j->depth == 0 || j->after_key || !key) {
        j->failed = true;
        return;
    }
    element_sep(j);
    put_escaped(j, key);
    put_str(j, j->pretty ? ": " : ":");
    j->after_key = true;
}

void cnn_json_string(cnn_json *j, const char *s)
{
    if (!value_begin(j)) return;
    if (s)
        put_escaped(j, s);
    else
        put_str(j, "null");
}

void cnn_json_number(cnn_json *j, double v)
{
    if (!value_begin(j)) return;
    if (!isfinite(v)) {
        put_str(j, "null");
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.9g", v);
    /* A program that called setlocale() may get a decimal comma from
     * printf; JSON only knows the point. */
    for (char *p = tmp; *p; p++)
        if (*p == ',') *p = '.';
    put_str(j, tmp);
}

void cnn_json_int(cnn_json *j, long long v)
{
    if (!value_begin(j)) return;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", v);
    put_str(j, tmp);
}

bool cnn_json_is_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0, seq; i < n; i += seq)
        if ((seq = cnn_utf8_seq_len(p + i, n - i)) == 0) return false;
    return true;
}

void cnn_json_base64(cnn_json *j, const void *data, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!value_begin(j)) return;
    const unsigned char *p = data;
    put(j, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63]};
        if (i + 1 >= n) q[2] = '=';
        if (i + 2 >= n) q[3] = '=';
        put(j, q, 4);
    }
    put(j, "\"", 1);
}

void cnn_json_path(cnn_json *j, const char *key, const char *path)
{
    cnn_json_key(j, key);
    cnn_json_string(j, path);
    if (j->failed || !path || cnn_json_is_utf8(path)) return;
    char key_b64[128];
    snprintf(key_b64, sizeof key_b64, "%s_b64", key);
    cnn_json_key(j, key_b64);
    cnn_json_base64(j, path, strlen(path));
}

void cnn_json_bool(cnn_json *j, bool v)
{
    if (!value_begin(j)) return;
    put_str(j, v ? "true" : "false");
}

void cnn_json_null(cnn_json *j)
{
    if (!value_begin(j)) return;
    put_str(j, "null");
}

void cnn_json_value(cnn_json *j, const cnn_jv *v)
{
    switch (v->type) {
    case CNN_JV_NULL: cnn_json_null(j); break;
    case CNN_JV_BOOL: cnn_json_bool(j, v->b); break;
    case CNN_JV_STRING: cnn_json_string(j, v->str); break;
    case CNN_JV_NUMBER:
        if (value_begin(j)) put_str(j, v->str);
        break;
    case CNN_JV_ARRAY:
    case CNN_JV_OBJECT:
        if (v->type == CNN_JV_OBJECT) cnn_json_object_begin(j);
        else cnn_json_array_begin(j);
        for (int i = 0; i < v->n; i++) {
            if (v->type == CNN_JV_OBJECT) cnn_json_key(j, v->keys[i]);
            cnn_json_value(j, &v->items[i]);
        }
        if (v->type == CNN_JV_OBJECT) cnn_json_object_end(j);
        else cnn_json_array_end(j);
        break;
    }
}

int cnn_json_write_file(cnn_json *j, const char *path)
{
    /* An unfinished document (open containers, a key without value, nothing
     * at all) is a writer misuse just like an out-of-memory failure: either
     * way the text would not parse. */
    if (j->failed || j->depth != 0 || j->after_key || j->first[0] || !j->buf)
        return cnn_error_set(CNN_ERR_NOMEM,
                             "%s: JSON document could not be built (out of memory or incomplete)",
                             path);
    /* Trailing newline so the file is a proper text file; buf keeps the
     * document itself. */
    put(j, "\n", 1);
    if (j->failed)
        return cnn_error_set(CNN_ERR_NOMEM, "%s: out of memory building JSON", path);
    int status = cnn_file_write_atomic(path, j->buf, j->len);
    j->len--;
    j->buf[j->len] = '\0';
    return status;
}
