#include "io/jsonparse.h"
#include "core/error.h"
#include "core/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t len, pos;
} parser;

/* Sets the error at the current position ("line L, column C: ..."). */
static int fail(const parser *p, const char *what)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return cnn_error_set(CNN_ERR_INPUT, "line %d, column %d: %s", line, col, what);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return false;
    p->pos += n;
    return true;
}

/* Length of the UTF-8 sequence at s (at most `avail` bytes), 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool hex4(parser *p, uint32_t *out)
{
    if (p->len - p->pos < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return false;
        v = v * 16 + (uint32_t)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

/* At the opening quote.  The decoded string is never longer than its text,
 * so one allocation of the text's length suffices. */
static int parse_string(parser *p, char **out)
{
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, "unterminated string");
    char *buf = cnn_malloc(end - start + 1);
    if (!buf) return CNN_ERR_NOMEM;
    size_t n = 0;
    while (p->s[p->pos] != '"') {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            free(buf);
            return fail(p, "control character in a string");
        }
        if (c != '\\') {
            size_t k = utf8_len((const unsigned char *)p->s + p->pos, end - p->pos);
            if (!k) {
                free(buf);
                return fail(p, "invalid UTF-8 in a string");
            }
            memcpy(buf + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
            continue;
        }
        char e = p->s[++p->pos];
        p->pos++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            buf[n++] = map[simple - "\"\\/bfnrt"];
            continue;
        }
        uint32_t cp = 0, lo = 0;
        bool ok = e == 'u' && hex4(p, &cp) && cp != 0;
        if (ok && cp >= 0xd800 && cp <= 0xdbff) {
            ok = p->pos + 2 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u';
            if (ok) p->pos += 2;
            ok = ok && hex4(p, &lo) && lo >= 0xdc00 && lo <= 0xdfff;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (ok && cp >= 0xdc00 && cp <= 0xdfff) {
            ok = false;
        }
        if (!ok) {
            free(buf);
            return fail(p, "invalid escape in a string");
        }
        n += put_utf8(buf + n, cp);
    }
    p->pos++;
    buf[n] = '\0';
    *out = buf;
    return CNN_OK;
}

/* A number: its value, and its text as written (so that it can be written
 * back byte for byte). */
static int parse_number(parser *p, double *out, char **text)
{
    size_t i = p->pos;
    const char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    size_t digits = i;
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    bool ok = i > digits && !(s[digits] == '0' && i - digits > 1);
    if (ok && i < p->len && s[i] == '.') {
        size_t f = ++i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
        ok = i > f;
    }
    if (ok && i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        size_t e = i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
        ok = i > e;
    }
    if (!ok || i - p->pos > 64) return fail(p, "invalid number");
    char tmp[65];
    memcpy(tmp, s + p->pos, i - p->pos);
    tmp[i - p->pos] = '\0';
    *out = strtod(tmp, NULL);
    p->pos = i;
    *text = cnn_strdup(tmp);
    return *text ? CNN_OK : CNN_ERR_NOMEM;
}

static int parse_value(parser *p, cnn_jv *v, int depth);

/* Arrays and objects: elements are gathered in a growing array. */
static int parse_container(parser *p, cnn_jv *v, int depth, bool object)
{
    if (depth >= CNN_JV_MAX_DEPTH) return fail(p, "nested too deep");
    v->type = object ? CNN_JV_OBJECT : CNN_JV_ARRAY;
    char close = object ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return CNN_OK;
    }
    int cap = 0;
    for (;;) {
        if (v->n == cap) {
            if (cap > (1 << 28)) return fail(p, "too many elements");
            cap = cap ? 2 * cap : 8;
            cnn_jv *items = cnn_realloc(v->items, (size_t)cap * sizeof *items);
            if (!items) return CNN_ERR_NOMEM;
            v->items = items;
            if (object) {
                char **keys = cnn_realloc(v->keys, (size_t)cap * sizeof *keys);
                if (!keys) return CNN_ERR_NOMEM;
                v->keys = keys;
            }
        }
        skip_ws(p);
        char *key = NULL;
        if (object) {
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a key");
            int status = parse_string(p, &key);
            if (status < 0) return status;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return fail(p, "expected ':'");
            }
            p->pos++;
            v->keys[v->n] = key;
        }
        memset(&v->items[v->n], 0, sizeof v->items[v->n]);
        v->n++; /* counted before parsing, so that a failure frees it */
        int status = parse_value(p, &v->items[v->n - 1], depth + 1);
        if (status < 0) return status;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return CNN_OK;
        }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *p, cnn_jv *v, int depth)
{
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end of text");
    char c = p->s[p->pos];
    if (c == '{' || c == '[') return parse_container(p, v, depth, c == '{');
    if (c == '"') {
        v->type = CNN_JV_STRING;
        return parse_string(p, &v->str);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        v->type = CNN_JV_NUMBER;
        return parse_number(p, &v->num, &v->str);
    }
    if (literal(p, "true") || literal(p, "false")) {
        v->type = CNN_JV_BOOL;
        v->b = c == 't';
        return CNN_OK;
    }
    if (literal(p, "null")) {
        v->type = CNN_JV_NULL;
        return CNN_OK;
    }
    return fail(p, "unexpected character");
}

int cnn_jv_parse(const char *text, size_t len, cnn_jv *out)
{
    memset(out, 0, sizeof *out);
    parser p = {text, len, 0};
    int status = parse_value(&p, out, 0);
    if (status == CNN_OK) {
        skip_ws(&p);
        if (p.pos != p.len) status = fail(&p, "text after the value");
    }
    if (status < 0) cnn_jv_free(out);
    return status;
}

void cnn_jv_free(cnn_jv *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        cnn_jv_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const cnn_jv *cnn_jv_get(const cnn_jv *v, const char *key)
{
    if (!v || v->type != CNN_JV_OBJECT) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->items[i];
    return NULL;
}

bool cnn_jv_int(const cnn_jv *v, long long lo, long long hi, long long *out)
{
    if (!v || v->type != CNN_JV_NUMBER || !isfinite(v->num) || v->num != floor(v->num)) return false;
    if (v->num < (double)lo || v->num > (double)hi) return false;
    *out = (long long)v->num;
    return true;
}

const char *cnn_jv_str(const cnn_jv *v, const char *key)
{
    const cnn_jv *s = cnn_jv_get(v, key);
    return s && s->type == CNN_JV_STRING ? s->str : NULL;
}

bool cnn_jv_equal(const cnn_jv *a, const cnn_jv *b)
{
    if (a->type != b->type || a->n != b->n) return false;
    switch (a->type) {
    case CNN_JV_NULL: return true;
    case CNN_JV_BOOL: return a->b == b->b;
    case CNN_JV_NUMBER:
    case CNN_JV_STRING: return strcmp(a->str, b->str) == 0;
    case CNN_JV_ARRAY:
    case CNN_JV_OBJECT:
        for (int i = 0; i < a->n; i++) {
            if (a->type == CNN_JV_OBJECT && strcmp(a->keys[i], b->keys[i]) != 0) return false;
            if (!cnn_jv_equal(&a->items[i], &b->items[i])) return false;
        }
        return true;
    }
    return false;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

char *cnn_jv_path(const cnn_jv *obj, const char *key)
{
    char key_b64[128];
    snprintf(key_b64, sizeof key_b64, "%s_b64", key);
    const char *b64 = cnn_jv_str(obj, key_b64);
    if (!b64) {
        const char *s = cnn_jv_str(obj, key);
        return s ? cnn_strdup(s) : NULL;
    }
    size_t n = strlen(b64);
    if (n % 4) return NULL;
    char *out = cnn_malloc(n / 4 * 3 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            v[j] = b64_value(b64[i + j]);
            if (b64[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (v[j] < 0 || pad) {
                free(out);
                return NULL;
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        out[k++] = (char)(w >> 16);
        if (pad < 2) out[k++] = (char)(w >> 8);
        if (pad < 1) out[k++] = (char)w;
    }
    out[k] = '\0';
    if (strlen(out) != k) {
        free(out);
        return NULL;
    }
    return out;
}
