/* libFuzzer target: the text of an @list file, parsed by
 * cnn_inputs_parse_list() and checked against a plain reference of the
 * contract in io/inputs.h (lines split at '\n', a byte order mark, spaces
 * and tabs around an entry and CRs at its end stripped, empty and '#' lines
 * skipped).  Each entry also goes through cnn_escape_line(), as it would
 * into a message: the result must be one line of valid UTF-8 without
 * control bytes.  Crashes, leaks, sanitizer reports and hangs are bugs. */
#include "io/inputs.h"
#include "core/error.h"
#include "core/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct expect {
    const uint8_t *data;
    size_t size, pos; /* where the reference continues */
    int line;         /* its line number at pos */
    int calls;
} expect;

static bool blank(uint8_t c) { return c == ' ' || c == '\t'; }

/* The next entry by the contract, or false at the end: its line, bytes and
 * length.  Lines with a NUL or too long are left to the parser's errors. */
static bool next_entry(expect *e, int *line, const uint8_t **s, size_t *n)
{
    if (e->pos == 0 && e->size >= 3 && memcmp(e->data, "\xef\xbb\xbf", 3) == 0) e->pos = 3;
    while (e->pos < e->size) {
        const uint8_t *p = e->data + e->pos;
        const uint8_t *nl = memchr(p, '\n', e->size - e->pos);
        size_t len = nl ? (size_t)(nl - p) : e->size - e->pos;
        e->pos += len + (nl != NULL);
        int this_line = ++e->line;
        while (len && blank(*p)) {
            p++;
            len--;
        }
        while (len && (blank(p[len - 1]) || p[len - 1] == '\r')) len--;
        if (len == 0 || p[0] == '#') continue;
        *line = this_line;
        *s = p;
        *n = len;
        return true;
    }
    return false;
}

static void check_shown(const char *text)
{
    size_t cap = 4 * strlen(text) + 1;
    char *out = malloc(cap);
    if (!out) return;
    size_t n = cnn_escape_line(out, cap, text);
    CNN_ASSERT(n == strlen(out));
    for (size_t i = 0; i < n;) {
        size_t seq = cnn_utf8_seq_len((const unsigned char *)out + i, n - i);
        CNN_ASSERT(seq > 0);
        unsigned char c = (unsigned char)out[i];
        CNN_ASSERT(seq > 1 || (c >= 0x20 && c != 0x7f));
        CNN_ASSERT(!(seq == 2 && c == 0xc2 && (unsigned char)out[i + 1] < 0xa0));
        i += seq;
    }
    free(out);
}

static int on_entry(void *ctx, int line, const char *entry)
{
    expect *e = ctx;
    int want_line;
    const uint8_t *want;
    size_t n;
    CNN_ASSERT(next_entry(e, &want_line, &want, &n));
    CNN_ASSERT(line == want_line);
    CNN_ASSERT(strlen(entry) == n && memcmp(entry, want, n) == 0);
    CNN_ASSERT(n <= CNN_INPUTS_MAX_LINE && !(n == 1 && entry[0] == '@'));
    check_shown(entry);
    e->calls++;
    /* A stop from the callback ends the parse with its status. */
    if (e->calls == 1000) return cnn_error_set(CNN_ERR_INPUT, "enough");
    return CNN_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    expect e = {.data = data, .size = size};
    cnn_error_clear();
    int status = cnn_inputs_parse_list("fuzz.txt", (const char *)data, size, on_entry, &e);
    if (status == CNN_OK) {
        /* Nothing the reference finds was left out. */
        int line;
        const uint8_t *s;
        size_t n;
        CNN_ASSERT(!next_entry(&e, &line, &s, &n));
    } else {
        const char *msg = cnn_error_message();
        CNN_ASSERT(status == CNN_ERR_INPUT && msg[0] != '\0' && strchr(msg, '\n') == NULL);
        if (e.calls < 1000) {
            /* The parser's own error: at a line that holds a NUL, an entry
             * over the limit or a bare '@'. */
            CNN_ASSERT(strncmp(msg, "fuzz.txt:", 9) == 0);
            int bad = atoi(msg + 9);
            CNN_ASSERT(bad > e.line);
            const uint8_t *p = data, *end = data + size;
            for (int l = 1; l < bad; l++) {
                const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
                CNN_ASSERT(nl != NULL);
                p = nl + 1;
            }
            if (bad == 1 && size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) p += 3;
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            bool nul = memchr(p, '\0', len) != NULL;
            while (len && blank(*p)) {
                p++;
                len--;
            }
            while (len && (blank(p[len - 1]) || p[len - 1] == '\r')) len--;
            CNN_ASSERT(nul || (len > CNN_INPUTS_MAX_LINE && p[0] != '#') || (len == 1 && p[0] == '@'));
        }
    }
    return 0;
}
