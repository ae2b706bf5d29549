/* The safetensors reader: files built byte by byte here, a valid one read back
 * exactly, and malformed ones each refused with a message that names the
 * file and the tensor or the problem. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "core/util.h"
#include "model/weights.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BAD "bad.safetensors"

/* A safetensors image: u64 little-endian `declared`, then `hlen` header bytes
 * (which may hold a NUL), then the data section. */
static unsigned char *build_raw(uint64_t declared, const char *hdr, size_t hlen, const void *data,
                                size_t dlen, size_t *len)
{
    *len = 8 + hlen + dlen;
    unsigned char *b = malloc(*len);
    if (!b) abort();
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(declared >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    return b;
}

static unsigned char *build(const char *hdr, const void *data, size_t dlen, size_t *len)
{
    return build_raw(strlen(hdr), hdr, strlen(hdr), data, dlen, len);
}

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

/* Decodes a half independently of cnn_half_to_float (exact in double). */
static float half_ref(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1024 + m, e - 25);
    return (float)((h & 0x8000) ? -v : v);
}

static float bf16_ref(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t rng_u16(void)
{
    return (uint16_t)rng_uniform(0.0f, 65536.0f);
}

/* Bitwise equality: -0 vs +0 and infinities must match exactly. */
static bool same_floats(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- a valid file ------------------------------------------------------- */

enum { N_F32 = 24, N_F16 = 32, N_BF16 = 24 };

typedef struct good_file {
    unsigned char *buf;
    size_t len;
    float f32[N_F32], f16_ref[N_F16], bf16_ref[N_BF16];
} good_file;

static void make_good(good_file *g)
{
    static const uint16_t f16_known[8] = {
        0x3c00, /* 1 */
        0x0001, /* smallest subnormal, 2^-24 */
        0x8000, /* -0 */
        0x7c00, /* +inf */
        0xc000, /* -2 */
        0x3555, /* 0.333251953125 */
        0x03ff, /* largest subnormal */
        0xfc00, /* -inf */
    };
    static const uint16_t bf16_known[6] = {0x3f80, 0xc040, 0x8000, 0x7f80, 0x0001, 0x4049};
    unsigned char data[256];
    memset(data, 0xa5, sizeof data);

    rng_seed(1234);
    rng_fill(g->f32, N_F32, -2.0f, 2.0f);
    /* bf16 [4, 6] at [0, 48] */
    for (int i = 0; i < N_BF16; i++) {
        uint16_t b;
        if (i < 6) {
            b = bf16_known[i];
        } else {
            float x = rng_uniform(-100.0f, 100.0f);
            uint32_t bits;
            memcpy(&bits, &x, sizeof bits);
            b = (uint16_t)(bits >> 16);
        }
        put_u16(data + 2 * i, b);
        g->bf16_ref[i] = bf16_ref(b);
    }
    /* f16 [4, 8] at [48, 112] */
    for (int i = 0; i < N_F16; i++) {
        uint16_t h = i < 8 ? f16_known[i] : rng_u16();
        if (((h >> 10) & 31) == 31 && i >= 8) h ^= 0x4000; /* no NaNs */
        put_u16(data + 48 + 2 * i, h);
        g->f16_ref[i] = half_ref(h);
    }
    /* i64 scalar at [112, 120] */
    int64_t steps = 123456789012345;
    memcpy(data + 112, &steps, 8);
    /* f32 [2, 3, 2, 2] at [120, 216] */
    memcpy(data + 120, g->f32, sizeof g->f32);

    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"conv.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3, 2, 2], "
                     "\"data_offsets\": [120, 216]},\n"
                     " \"__metadata__\": {\"format\": \"pt\", \"note\": \"random \\\"values\\\"\"},\n"
                     " \"conv.bias\": {\"dtype\": \"F16\", \"shape\": [4, 8], \"data_offsets\": [48, 112]},\n"
                     " \"fc.weight\": {\"shape\": [4, 6], \"data_offsets\": [0, 48], \"dtype\": \"BF16\"},\n"
                     " \"steps\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [112, 120]},\n"
                     " \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [60, 60]}}");
    /* Pad with spaces, as writers do, but to an odd total so that the data
     * section (and the F32 tensor) is misaligned in memory. */
    while ((8 + n) % 4 != 1) hdr[n++] = ' ';
    hdr[n] = '\0';
    g->buf = build(hdr, data, 216, &g->len);
}

static void check_good(const cnn_weights *w, const good_file *g)
{
    CHECK(w->n == 5, "n = %d", w->n);
    if (w->n != 5) return;
    /* header order */
    CHECK(strcmp(w->tensors[0].name, "conv.weight") == 0, "%s", w->tensors[0].name);
    CHECK(strcmp(w->tensors[1].name, "conv.bias") == 0, "%s", w->tensors[1].name);
    CHECK(strcmp(w->tensors[4].name, "empty") == 0, "%s", w->tensors[4].name);
    CHECK(w->data_len == 216, "data_len %zu", w->data_len);

    const cnn_weight_tensor *t = cnn_weights_find(w, "conv.weight");
    CHECK(t == &w->tensors[0], "find conv.weight");
    if (t) {
        CHECK(t->dtype == CNN_DTYPE_F32 && strcmp(t->dtype_name, "F32") == 0, "dtype %s", t->dtype_name);
        CHECK(t->ndim == 4 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 2 && t->shape[3] == 2,
              "shape");
        CHECK(t->numel == 24 && t->offset == 120 && t->nbytes == 96, "numel %zu offset %zu nbytes %zu",
              t->numel, t->offset, t->nbytes);
        CHECK(((uintptr_t)(w->data + t->offset)) % 4 != 0, "test meant the F32 data to be misaligned");
        float out[N_F32];
        CHECK_OK(cnn_weights_to_f32(w, t, out));
        CHECK(same_floats(out, g->f32, N_F32), "F32 values differ");
    }
    t = cnn_weights_find(w, "conv.bias");
    if (t) {
        CHECK(t->dtype == CNN_DTYPE_F16 && t->numel == 32 && t->nbytes == 64, "conv.bias");
        float out[N_F16];
        CHECK_OK(cnn_weights_to_f32(w, t, out));
        CHECK(same_floats(out, g->f16_ref, N_F16), "F16 values differ");
        CHECK(out[0] == 1.0f && out[1] == ldexpf(1.0f, -24) && out[2] == 0.0f && signbit(out[2]) &&
                  isinf(out[3]) && out[3] > 0 && out[4] == -2.0f && out[5] == 0.333251953125f &&
                  out[6] == ldexpf(1023.0f, -24) && isinf(out[7]) && out[7] < 0,
              "F16 known patterns: %g %g %g %g %g %g %g %g", (double)out[0], (double)out[1],
              (double)out[2], (double)out[3], (double)out[4], (double)out[5], (double)out[6],
              (double)out[7]);
    } else {
        CHECK(0, "conv.bias not found");
    }
    t = cnn_weights_find(w, "fc.weight");
    if (t) {
        CHECK(t->dtype == CNN_DTYPE_BF16 && t->numel == 24 && t->nbytes == 48, "fc.weight");
        float out[N_BF16];
        CHECK_OK(cnn_weights_to_f32(w, t, out));
        CHECK(same_floats(out, g->bf16_ref, N_BF16), "BF16 values differ");
        CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.0f && signbit(out[2]) && isinf(out[3]) &&
                  out[4] == ldexpf(1.0f, -133) && out[5] == 3.140625f,
              "BF16 known patterns");
    } else {
        CHECK(0, "fc.weight not found");
    }
    t = cnn_weights_find(w, "steps");
    if (t) {
        CHECK(t->dtype == CNN_DTYPE_OTHER && strcmp(t->dtype_name, "I64") == 0 && t->ndim == 0 &&
                  t->numel == 1 && t->nbytes == 8,
              "steps");
        int64_t v;
        memcpy(&v, w->data + t->offset, 8);
        CHECK(v == 123456789012345, "steps = %lld", (long long)v);
        float out[1];
        int s = cnn_weights_to_f32(w, t, out);
        const char *msg = cnn_error_message();
        CHECK(s == CNN_ERR_INPUT && strstr(msg, "'steps'") && strstr(msg, "I64"), "to_f32(I64): %d %s", s,
              msg);
    } else {
        CHECK(0, "steps not found");
    }
    t = cnn_weights_find(w, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->ndim == 2, "empty tensor");
    if (t) CHECK_OK(cnn_weights_to_f32(w, t, NULL));
    CHECK(cnn_weights_find(w, "__metadata__") == NULL, "metadata is not a tensor");
    CHECK(cnn_weights_find(w, "conv") == NULL, "prefix is not a match");
    CHECK(cnn_weights_find(w, "") == NULL, "empty name");
}

static void test_valid_memory(void)
{
    good_file g;
    make_good(&g);
    cnn_weights w;
    CHECK_OK(cnn_weights_open_memory("good.safetensors", g.buf, g.len, &w));
    CHECK(w.map == NULL, "memory input is not mapped");
    CHECK(w.data == g.buf + (g.len - 216), "data points into the caller's buffer (no copy)");
    check_good(&w, &g);
    cnn_weights_close(&w);
    cnn_weights_close(&w); /* idempotent */
    free(g.buf);
}

/* Smaller valid headers: JSON spellings and layouts that must be accepted. */
static void expect_ok(const char *hdr, size_t dlen, int n_tensors)
{
    static const unsigned char zeros[256];
    size_t len;
    unsigned char *buf = build(hdr, zeros, dlen, &len);
    cnn_weights w;
    int s = cnn_weights_open_memory("ok.safetensors", buf, len, &w);
    CHECK(s == 0, "%s -> %d: %s", hdr, s, cnn_error_message());
    if (s == 0) CHECK(w.n == n_tensors, "%s: n = %d", hdr, w.n);
    cnn_weights_close(&w);
    free(buf);
}

static void test_valid_variants(void)
{
    expect_ok("{}", 0, 0);
    expect_ok("  {\"__metadata__\": {}}  \n", 16, 0);
    /* serde_json's compact form, padded with spaces */
    expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}        ", 8, 1);
    /* tabs and CRLF between tokens */
    expect_ok("{\r\n\t\"a\":\t{\"dtype\": \"U8\",\r\n\t\"shape\": [3], \"data_offsets\": [0, 3]}\r\n}", 3, 1);
    /* a zero dimension makes huge others harmless; empty tensors overlap nothing */
    expect_ok("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
              " \"z\": {\"dtype\": \"F32\", \"shape\": [4294967296, 0, 4294967296],"
              " \"data_offsets\": [8, 8]},"
              " \"z2\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [8, 8]}}",
              16, 3);
    /* gaps between tensors and unused bytes at the end are allowed */
    expect_ok("{\"a\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [4, 5]}}", 100, 1);

    /* JSON escapes in a name are decoded */
    {
        const char *hdr = "{\"a\\/b\\u00e9\\\"q\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
        float one = 1.0f;
        size_t len;
        unsigned char *buf = build(hdr, &one, 4, &len);
        cnn_weights w;
        CHECK_OK(cnn_weights_open_memory("esc.safetensors", buf, len, &w));
        const cnn_weight_tensor *t = cnn_weights_find(&w, "a/b\xc3\xa9\"q");
        CHECK(t != NULL, "escaped name not decoded");
        cnn_weights_close(&w);
        free(buf);
    }

    /* Every other known dtype, with its item size. */
    static const struct {
        const char *name;
        size_t size;
    } others[] = {{"F64", 8}, {"I64", 8}, {"I32", 4},  {"I16", 2},     {"I8", 1},     {"U8", 1},
                  {"U16", 2}, {"U32", 4}, {"U64", 8},  {"BOOL", 1},    {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char hdr[256];
        snprintf(hdr, sizeof hdr, "{\"t\": {\"dtype\": \"%s\", \"shape\": [3], \"data_offsets\": [0, %zu]}}",
                 others[i].name, 3 * others[i].size);
        size_t len;
        unsigned char *buf = build(hdr, zeros, 3 * others[i].size, &len);
        cnn_weights w;
        int s = cnn_weights_open_memory("other.safetensors", buf, len, &w);
        CHECK(s == 0, "%s: %s", others[i].name, cnn_error_message());
        if (s == 0) {
            const cnn_weight_tensor *t = cnn_weights_find(&w, "t");
            CHECK(t && t->dtype == CNN_DTYPE_OTHER && t->nbytes == 3 * others[i].size &&
                      strcmp(t->dtype_name, others[i].name) == 0,
                  "%s", others[i].name);
            float out[3];
            s = t ? cnn_weights_to_f32(&w, t, out) : 0;
            CHECK(s == CNN_ERR_INPUT && strstr(cnn_error_message(), others[i].name) &&
                      strstr(cnn_error_message(), "'t'"),
                  "to_f32(%s): %s", others[i].name, cnn_error_message());
        }
        cnn_weights_close(&w);
        free(buf);
    }
}

/* ---- malformed input ---------------------------------------------------- */

static int g_rejections;

static void expect_reject_buf(const char *label, const unsigned char *buf, size_t len, const char *want1,
                              const char *want2)
{
    cnn_weights w;
    cnn_error_clear();
    memset(&w, 0x5a, sizeof w); /* open must not rely on a zeroed struct */
    int s = cnn_weights_open_memory(BAD, buf, len, &w);
    const char *msg = cnn_error_message();
    CHECK(s == CNN_ERR_INPUT, "%s: status %d (%s)", label, s, msg);
    if (getenv("CNNVIZ_TEST_VERBOSE")) printf("  %-34s %s\n", label, msg);
    CHECK(strncmp(msg, BAD ": ", strlen(BAD ": ")) == 0, "%s: message does not start with the path: %s",
          label, msg);
    CHECK(strstr(msg, want1) != NULL, "%s: message lacks \"%s\": %s", label, want1, msg);
    if (want2) CHECK(strstr(msg, want2) != NULL, "%s: message lacks \"%s\": %s", label, want2, msg);
    CHECK(w.n == 0 && w.tensors == NULL && w.path == NULL, "%s: w not cleared after failure", label);
    if (s == 0) cnn_weights_close(&w);
    g_rejections++;
}

static void expect_reject(const char *label, const char *hdr, size_t dlen, const char *want1,
                          const char *want2)
{
    static const unsigned char zeros[256];
    size_t len;
    unsigned char *buf = build(hdr, zeros, dlen, &len);
    expect_reject_buf(label, buf, len, want1, want2);
    free(buf);
}

#define ENTRY(dtype, shape, offsets)                                                                    \
    "{\"dtype\": \"" dtype "\", \"shape\": " shape ", \"data_offsets\": " offsets "}"
#define W(entry) "{\"w\": " entry "}"

static void test_lengths(void)
{
    static const unsigned char five[5] = {1, 0, 0, 0, 0};
    expect_reject_buf("5-byte file", five, sizeof five, "5 bytes, too short", NULL);
    expect_reject_buf("empty buffer", NULL, 0, "0 bytes, too short", NULL);

    size_t len;
    unsigned char *buf = build_raw(0, "", 0, "abcdefgh", 8, &len);
    expect_reject_buf("header length 0", buf, len, "header length is 0", NULL);
    free(buf);

    buf = build_raw(100, "{}", 2, "abcdefgh", 8, &len);
    expect_reject_buf("header length past the file", buf, len, "header length 100 runs past the end", NULL);
    free(buf);

    buf = build_raw(1ULL << 63, "{}", 2, NULL, 0, &len);
    expect_reject_buf("header length 2^63", buf, len, "header length 9223372036854775808 is more than", NULL);
    free(buf);

    buf = build_raw((uint64_t)CNN_WEIGHTS_MAX_HEADER + 1, "{}", 2, NULL, 0, &len);
    expect_reject_buf("header length just over the limit", buf, len, "is more than", NULL);
    free(buf);

    static const char nul_hdr[] = "{\"w\0\": " ENTRY("F32", "[1]", "[0, 4]") "}";
    buf = build_raw(sizeof nul_hdr - 1, nul_hdr, sizeof nul_hdr - 1, "abcd", 4, &len);
    expect_reject_buf("NUL byte in the header", buf, len, "NUL byte at offset 3", NULL);
    free(buf);
}

static void test_header_syntax(void)
{
    expect_reject("not JSON", "hello world", 0, "not a JSON object", NULL);
    expect_reject("JSON array", "[1, 2]", 0, "not a JSON object", NULL);
    expect_reject("JSON string", "\"w\"", 0, "not a JSON object", NULL);
    expect_reject("missing comma", W("{\"dtype\": \"F32\", \"shape\": [1] \"data_offsets\": [0, 4]}"), 4,
                  "not valid JSON", "line 1");
    expect_reject("mismatched brackets", "{\"__metadata__\": {\"a\": \"b\"]}", 0, "not valid JSON", NULL);
    expect_reject("unterminated object", "{\"w\": " ENTRY("F32", "[1]", "[0, 4]"), 4, "not valid JSON", NULL);
    expect_reject("bad UTF-8", "{\"w\xff\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "not valid UTF-8 (byte 3)",
                  NULL);
    expect_reject("overlong UTF-8", "{\"w\xc0\xaf\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "UTF-8", NULL);
    expect_reject("raw newline in a string", "{\"w\nx\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4,
                  "control character inside a string", NULL);
    expect_reject("YAML escape", "{\"w\\x41\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "escape that is not JSON",
                  NULL);
    expect_reject("comment", "{\"w\": " ENTRY("F32", "[1]", "[0, 4]") " # hi\n}", 4, "comment", NULL);
    expect_reject("trailing comma", "{\"w\": " ENTRY("F32", "[1, ]", "[0, 4]") "}", 4, "trailing comma", NULL);
    expect_reject("two objects", "{} {}", 0, "data after the JSON object", NULL);
    expect_reject("document end marker", "{}\n...\n", 0, "data after the JSON object", NULL);
    expect_reject("anchor", "{\"w\": &a " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "anchor", NULL);
    expect_reject("alias", "{\"w\": " ENTRY("F32", "[1]", "[0, 4]") ", \"v\": *a}", 4, "alias", NULL);
    expect_reject("tag", "{\"w\": !!map " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "tag", NULL);
    expect_reject("deep nesting", W(ENTRY("F32", "[[[[1]]]]", "[0, 4]")), 4, "nests deeper than 4", NULL);
    expect_reject("depth 4 but wrong shape", W(ENTRY("F32", "[[1]]", "[0, 4]")), 4, "tensor 'w'",
                  "shape[0] must be a non-negative integer, not a list");
    expect_reject("unquoted key", "{w: " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "keys must be strings", NULL);
    expect_reject("single-quoted dtype", W("{\"dtype\": 'F32', \"shape\": [1], \"data_offsets\": [0, 4]}"), 4,
                  "tensor 'w'", "dtype must be a string");
}

static void test_header_schema(void)
{
    expect_reject("entry not an object", "{\"w\": 5}", 0, "tensor 'w'", "must be an object");
    expect_reject("missing dtype", W("{\"shape\": [2], \"data_offsets\": [0, 8]}"), 8, "tensor 'w'",
                  "missing 'dtype'");
    expect_reject("missing shape", W("{\"dtype\": \"F32\", \"data_offsets\": [0, 8]}"), 8, "tensor 'w'",
                  "missing 'shape'");
    expect_reject("missing data_offsets", W("{\"dtype\": \"F32\", \"shape\": [2]}"), 8, "tensor 'w'",
                  "missing 'data_offsets'");
    expect_reject("extra key",
                  W("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"extra\": 1}"), 8,
                  "tensor 'w'", "unexpected key 'extra'");
    expect_reject("repeated key",
                  W("{\"dtype\": \"F32\", \"shape\": [2], \"dtype\": \"F16\", \"data_offsets\": [0, 8]}"), 8,
                  "tensor 'w'", "duplicate key 'dtype'");
    expect_reject("unknown dtype", W(ENTRY("F33", "[2]", "[0, 8]")), 8, "tensor 'w'", "unknown dtype 'F33'");
    expect_reject("lower-case dtype", W(ENTRY("f32", "[2]", "[0, 8]")), 8, "tensor 'w'", "unknown dtype 'f32'");
    expect_reject("dtype as number", W("{\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}"), 4,
                  "tensor 'w'", "dtype must be a string");
    expect_reject("negative dim", W(ENTRY("F32", "[-1, 2]", "[0, 8]")), 8, "tensor 'w'",
                  "shape[0] must be a non-negative integer, not -1");
    expect_reject("float dim", W(ENTRY("F32", "[2, 2.0]", "[0, 16]")), 16, "tensor 'w'",
                  "shape[1] must be a non-negative integer, not 2.0");
    expect_reject("exponent dim", W(ENTRY("F32", "[1e3]", "[0, 4000]")), 8, "tensor 'w'", "not 1e3");
    expect_reject("hex dim", W(ENTRY("F32", "[0x10]", "[0, 64]")), 8, "tensor 'w'", "not 0x10");
    expect_reject("leading zero", W(ENTRY("F32", "[02]", "[0, 8]")), 8, "tensor 'w'", "not 02");
    expect_reject("quoted dim", W(ENTRY("F32", "[\"2\"]", "[0, 8]")), 8, "tensor 'w'", "not \"2\"");
    expect_reject("null dim", W(ENTRY("F32", "[null]", "[0, 8]")), 8, "tensor 'w'", "not null");
    expect_reject("huge dim", W(ENTRY("F32", "[99999999999999999999]", "[0, 8]")), 8, "tensor 'w'", "too large");
    expect_reject("dim over int64", W(ENTRY("U8", "[9223372036854775808]", "[0, 8]")), 8, "tensor 'w'",
                  "too large");
    expect_reject("shape not a list", W(ENTRY("F32", "2", "[0, 8]")), 8, "tensor 'w'", "shape must be a list");
    expect_reject("nine dims", W(ENTRY("F32", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "[0, 4]")), 4, "tensor 'w'",
                  "more than 8 dimensions");
    expect_reject("element count overflow", W(ENTRY("F32", "[4294967296, 4294967296, 16]", "[0, 8]")), 8,
                  "tensor 'w'", "element count overflows");
    expect_reject("byte size overflow", W(ENTRY("F32", "[4611686018427387904]", "[0, 8]")), 8, "tensor 'w'",
                  "byte size overflows");
    expect_reject("one offset", W(ENTRY("F32", "[2]", "[0]")), 8, "tensor 'w'", "has 1 item");
    expect_reject("three offsets", W(ENTRY("F32", "[2]", "[0, 8, 8]")), 8, "tensor 'w'", "more than 2 items");
    expect_reject("negative offset", W(ENTRY("F32", "[2]", "[-8, 0]")), 8, "tensor 'w'",
                  "data_offsets[0] must be a non-negative integer");
    expect_reject("offset too large", W(ENTRY("F32", "[2]", "[0, 18446744073709551616]")), 8, "tensor 'w'",
                  "data_offsets[1] = 18446744073709551616 is too large");
    expect_reject("offsets reversed", W(ENTRY("F32", "[0]", "[8, 0]")), 8, "tensor 'w'",
                  "data_offsets [8, 0] are reversed");
    expect_reject("end past the data", W(ENTRY("F32", "[32]", "[0, 128]")), 64, "tensor 'w'",
                  "run past the end of the 64-byte data section");
    expect_reject("I64 byte length", W(ENTRY("I64", "[2]", "[0, 8]")), 8, "tensor 'w'",
                  "hold 8 bytes but I64 [2] needs 16");
    /* The exact message, as a user sees it. */
    {
        static const unsigned char zeros[128];
        size_t len;
        unsigned char *buf =
            build("{\"features.0.weight\": " ENTRY("F32", "[64, 3, 3, 3]", "[0, 100]") "}", zeros, 128, &len);
        expect_reject_buf("byte length mismatch", buf, len,
                          BAD ": tensor 'features.0.weight': data_offsets [0, 100] hold 100 bytes but "
                              "F32 [64, 3, 3, 3] needs 6912",
                          NULL);
        free(buf);
    }
    expect_reject("overlap",
                  "{\"a\": " ENTRY("F32", "[4]", "[0, 16]") ", \"c\": " ENTRY("F32", "[2]", "[24, 32]")
                  ", \"b\": " ENTRY("F32", "[4]", "[8, 24]") "}",
                  32, "tensors 'a' [0, 16] and 'b' [8, 24] overlap", NULL);
    expect_reject("contained overlap",
                  "{\"big\": " ENTRY("U8", "[32]", "[0, 32]") ", \"small\": " ENTRY("U8", "[1]", "[31, 32]") "}",
                  32, "'big'", "'small'");
    expect_reject("duplicate names",
                  "{\"w\": " ENTRY("F32", "[1]", "[0, 4]") ", \"v\": " ENTRY("F32", "[1]", "[4, 8]")
                  ", \"w\": " ENTRY("F32", "[1]", "[8, 12]") "}",
                  12, "tensor 'w'", "more than once");
    expect_reject("empty name", "{\"\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4, "empty name", NULL);
    expect_reject("control character in a name", "{\"a\\u0001b\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4,
                  "tensor name 'a?b' contains a control character", NULL);
    expect_reject("NUL escape in a name", "{\"a\\u0000b\": " ENTRY("F32", "[1]", "[0, 4]") "}", 4,
                  "control character", NULL);
    expect_reject("metadata value not a string", "{\"__metadata__\": {\"epochs\": 10}}", 0,
                  "'__metadata__' values must be strings", NULL);
    expect_reject("metadata not an object", "{\"__metadata__\": [\"a\"]}", 0, "'__metadata__' must be an object",
                  NULL);
    expect_reject("metadata twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "'__metadata__' twice",
                  NULL);
}

/* More than 1,000,000 entries, in metadata (which would otherwise be skipped). */
static void test_entry_limit(void)
{
    size_t pairs = 1000001;
    size_t cap = 32 + pairs * 6;
    char *hdr = malloc(cap);
    if (!hdr) abort();
    size_t n = (size_t)sprintf(hdr, "{\"__metadata__\": {");
    for (size_t i = 0; i < pairs; i++) {
        memcpy(hdr + n, i ? ",\"\":\"\"" : "\"\":\"\"", i ? 6 : 5);
        n += i ? 6 : 5;
    }
    memcpy(hdr + n, "}}", 3);
    expect_reject("too many entries", hdr, 0, "more than 1000000 entries", NULL);
    free(hdr);
}

/* ---- files -------------------------------------------------------------- */

static bool write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static void test_files(void)
{
    const char *tmp = getenv("CNNVIZ_TEST_TMP");
    if (!tmp || !*tmp) tmp = "/tmp";
    CHECK_OK(cnn_mkdirs(tmp, 0755));
    char *path = cnn_strfmt("%s/weights-%ld.safetensors", tmp, (long)getpid());
    char *missing = cnn_strfmt("%s/no-such-weights-%ld.safetensors", tmp, (long)getpid());

    good_file g;
    make_good(&g);
    CHECK(write_file(path, g.buf, g.len), "cannot write %s", path);
    cnn_weights w;
    CHECK_OK(cnn_weights_open(path, &w));
    CHECK(w.map != NULL && w.map_len == g.len, "mapped %zu bytes", w.map_len);
    CHECK(w.path && strcmp(w.path, path) == 0, "path kept");
    check_good(&w, &g);
    cnn_weights_close(&w);

    /* truncated: the last tensor runs past the end */
    CHECK(write_file(path, g.buf, g.len - 1), "cannot write %s", path);
    int s = cnn_weights_open(path, &w);
    const char *msg = cnn_error_message();
    CHECK(s == CNN_ERR_INPUT && strncmp(msg, path, strlen(path)) == 0 && strstr(msg, "'conv.weight'") &&
              strstr(msg, "past the end"),
          "truncated file: %d %s", s, msg);

    CHECK(write_file(path, "abc", 3), "cannot write %s", path);
    s = cnn_weights_open(path, &w);
    msg = cnn_error_message();
    CHECK(s == CNN_ERR_INPUT && strncmp(msg, path, strlen(path)) == 0 && strstr(msg, "too short"),
          "3-byte file: %d %s", s, msg);
    CHECK(w.map == NULL && w.n == 0, "w cleared");
    unlink(path);

    s = cnn_weights_open(missing, &w);
    msg = cnn_error_message();
    CHECK(s == CNN_ERR_INPUT && strncmp(msg, missing, strlen(missing)) == 0, "missing file: %d %s", s, msg);

    s = cnn_weights_open(tmp, &w);
    msg = cnn_error_message();
    CHECK(s == CNN_ERR_INPUT && strstr(msg, tmp) && strstr(msg, "not a regular file"), "directory: %d %s", s,
          msg);

    free(g.buf);
    free(path);
    free(missing);
}

/* ---- NaN and Inf scan ---------------------------------------------------- */

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* cnn_weights_scan_f32 against isnan/isinf on random lengths (0, around the
 * vector widths, large) of random non-zero floats with NaN of several
 * payloads and signs (quiet, signalling, x86's negative default), +-Inf,
 * and the finite values nearest them (FLT_MAX, subnormals), which must not
 * count. */
static void test_scan(void)
{
    static const size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 65537};
    const float special[] = {NAN, from_bits(0x7f800001u), from_bits(0xffc00000u), from_bits(0x7fffffffu),
                             INFINITY, -INFINITY, 3.4028235e38f, -3.4028235e38f, from_bits(1u),
                             from_bits(0x807fffffu)};
    enum { N_SPECIAL = sizeof special / sizeof special[0] };
    rng_seed(31);
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++)
        for (int density = 0; density < 3; density++) {
            size_t n = lens[t];
            float *v = malloc((n ? n : 1) * sizeof *v);
            fill_nonzero(v, n, -5.0f, 5.0f);
            /* density 0: none; 1: one special at a random place; 2: many */
            size_t put = density == 0 ? 0 : density == 1 ? (n > 0) : n / 5 + 1;
            for (size_t k = 0; k < put && n; k++)
                v[(size_t)rng_uniform(0.0f, (float)n) % n] = special[(size_t)rng_uniform(0.0f, N_SPECIAL) % N_SPECIAL];
            size_t nan = 0, pinf = 0, ninf = 0;
            for (size_t i = 0; i < n; i++) {
                nan += isnan(v[i]) != 0;
                pinf += isinf(v[i]) && v[i] > 0;
                ninf += isinf(v[i]) && v[i] < 0;
            }
            cnn_nonfinite_count c;
            bool any = cnn_weights_scan_f32(v, n, &c);
            CHECK(any == (nan + pinf + ninf > 0) && c.nan == nan && c.pos_inf == pinf && c.neg_inf == ninf,
                  "scan of %zu floats (density %d): any %d, %zu NaN %zu +Inf %zu -Inf; expected %zu %zu %zu", n,
                  density, any, c.nan, c.pos_inf, c.neg_inf, nan, pinf, ninf);
            free(v);
        }
}

int main(void)
{
    test_scan();
    test_valid_memory();
    test_valid_variants();
    test_lengths();
    test_header_syntax();
    test_header_schema();
    test_entry_limit();
    test_files();
    printf("%d malformed inputs rejected\n", g_rejections);
    return test_summary("test_weights");
}
