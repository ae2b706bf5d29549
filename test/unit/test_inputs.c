/* --input expansion: the @list parser on its own (line numbers, stripping,
 * comments, the errors), then files, folders and lists on disk: lists that
 * name themselves or each other (also through a symlink), nesting past the
 * limit, a diamond of lists (allowed), missing entries and special files
 * with the list's file and line in the message. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "io/inputs.h"
#include "core/util.h"

#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[4096];

static char *in_dir(const char *name) { return cnn_strfmt("%s/%s", g_dir, name); }

static void write_text(const char *name, const char *text)
{
    char *p = in_dir(name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL, "cannot create %s", p);
    if (f) {
        fwrite(text, 1, strlen(text), f);
        fclose(f);
    }
    free(p);
}

/* ------------------------------------------------------------ the parser */

typedef struct seen {
    int n;
    int line[16];
    char entry[16][64];
} seen;

static int collect(void *ctx, int line, const char *entry)
{
    seen *s = ctx;
    if (s->n < 16) {
        s->line[s->n] = line;
        snprintf(s->entry[s->n], sizeof s->entry[s->n], "%s", entry);
    }
    s->n++;
    return CNN_OK;
}

static int stop_at_second(void *ctx, int line, const char *entry)
{
    (void)entry;
    int *calls = ctx;
    if (++*calls == 2) return cnn_error_set(CNN_ERR_INPUT, "stopped at line %d", line);
    return CNN_OK;
}

static void test_parse(void)
{
    static const char text[] = "\xef\xbb\xbf"
                               "a.png\r\n"
                               "  # a comment\n"
                               "\n"
                               "\t  \r\n"
                               "  b c.jpg \t \r\n"
                               "#x.png\n"
                               "@more.txt\t\n"
                               "sub/\r\n"
                               "last.png"; /* no newline at the end */
    seen s = {0};
    CHECK_OK(cnn_inputs_parse_list("l.txt", text, sizeof text - 1, collect, &s));
    static const int want_line[] = {1, 5, 7, 8, 9};
    static const char *const want[] = {"a.png", "b c.jpg", "@more.txt", "sub/", "last.png"};
    CHECK(s.n == 5, "%d entries", s.n);
    for (int i = 0; i < 5 && i < s.n; i++)
        CHECK(s.line[i] == want_line[i] && strcmp(s.entry[i], want[i]) == 0, "entry %d: line %d '%s'", i, s.line[i],
              s.entry[i]);

    /* Not NUL-terminated: the parser reads len bytes only. */
    char buf[8] = {'x', '.', 'p', 'n', 'g', '\n', 'y', 'z'};
    memset(&s, 0, sizeof s);
    CHECK_OK(cnn_inputs_parse_list("l.txt", buf, 7, collect, &s));
    CHECK(s.n == 2 && strcmp(s.entry[1], "y") == 0, "length-bounded: %d '%s'", s.n, s.entry[1]);

    memset(&s, 0, sizeof s);
    CHECK_OK(cnn_inputs_parse_list("l.txt", "", 0, collect, &s));
    CHECK(s.n == 0, "empty text: %d entries", s.n);

    static const char nul[] = "a.png\nb\0c.png\n";
    int st = cnn_inputs_parse_list("l.txt", nul, sizeof nul - 1, collect, &s);
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "l.txt:2: ") && strstr(cnn_error_message(), "NUL"),
          "NUL byte: %d %s", st, cnn_error_message());

    st = cnn_inputs_parse_list("l.txt", "a\n  @ \n", 7, collect, &s);
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "l.txt:2: '@' without a list file"), "bare @: %s",
          cnn_error_message());

    size_t n = CNN_INPUTS_MAX_LINE + 10;
    char *longline = malloc(n + 8);
    memcpy(longline, "ok\n", 3);
    memset(longline + 3, 'x', n);
    memcpy(longline + 3 + n, "\n", 1);
    st = cnn_inputs_parse_list("l.txt", longline, n + 4, collect, &s);
    CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "l.txt:2: the entry is"), "long line: %s",
          cnn_error_message());
    /* Exactly the limit is fine, spaces around it do not count. */
    longline[3] = ' ';
    memset(longline + 4, 'y', CNN_INPUTS_MAX_LINE);
    longline[4 + CNN_INPUTS_MAX_LINE] = '\n';
    memset(&s, 0, sizeof s);
    st = cnn_inputs_parse_list("l.txt", longline, 5 + CNN_INPUTS_MAX_LINE, collect, &s);
    CHECK(st == CNN_OK && s.n == 2, "line at the limit: %d %s", st, cnn_error_message());
    free(longline);

    int calls = 0;
    st = cnn_inputs_parse_list("l.txt", "a\nb\nc\n", 6, stop_at_second, &calls);
    CHECK(st == CNN_ERR_INPUT && calls == 2 && strstr(cnn_error_message(), "stopped at line 2"),
          "callback error: %d after %d calls", st, calls);
}

/* ------------------------------------------------------- files on disk */

/* Expands one argument into a fresh list: its status; *out the list. */
static int expand(const char *arg, cnn_input_list *out)
{
    memset(out, 0, sizeof *out);
    return cnn_inputs_add(out, arg);
}

static void expect_fail(const char *arg, const char *const *phrases, const char *what)
{
    cnn_input_list l;
    double t0 = cnn_now_ms();
    int st = expand(arg, &l);
    bool all = true;
    for (int i = 0; phrases[i]; i++) all &= strstr(cnn_error_message(), phrases[i]) != NULL;
    CHECK(st == CNN_ERR_INPUT && all, "%s: status %d, message '%s'", what, st, cnn_error_message());
    CHECK(strchr(cnn_error_message(), '\n') == NULL, "%s: message of more than one line", what);
    CHECK(cnn_now_ms() - t0 < 5000, "%s: took %.0f ms", what, cnn_now_ms() - t0);
    cnn_inputs_free(&l);
}

/* Writes the list `name` (unless text is NULL) and expects "@<dir>/name"
 * to fail so. */
static void list_fails(const char *name, const char *text, const char *const *phrases, const char *what)
{
    if (text) write_text(name, text);
    char *arg = cnn_strfmt("@%s/%s", g_dir, name);
    expect_fail(arg, phrases, what);
    free(arg);
}

static void test_files(void)
{
    char *sub = in_dir("imgs/sub");
    CHECK_OK(cnn_mkdirs(sub, 0755));
    write_text("imgs/b.png", "x");
    write_text("imgs/a.JPG", "x");
    write_text("imgs/notes.txt", "x");
    write_text("imgs/.hidden.png", "x");
    write_text("imgs/sub/c.jpeg", "x");
    write_text("one.png", "x");

    cnn_input_list l;
    char *imgs = in_dir("imgs");
    CHECK_OK(expand(imgs, &l));
    CHECK(l.n == 3 && strstr(l.paths[0], "imgs/a.JPG") && strstr(l.paths[1], "imgs/b.png") &&
              strstr(l.paths[2], "imgs/sub/c.jpeg"),
          "folder: %d entries", l.n);
    cnn_inputs_free(&l);

    /* Entries relative to the list's folder, lists reading lists, a
     * diamond (two lists naming one third) is no cycle. */
    write_text("top.txt", "one.png\n@lists/left.txt\n@lists/right.txt\n");
    char *lists = in_dir("lists");
    CHECK_OK(cnn_mkdirs(lists, 0755));
    write_text("lists/left.txt", "@shared.txt\n");
    write_text("lists/right.txt", "  @shared.txt  \n../imgs/sub\n");
    write_text("lists/shared.txt", "../imgs/b.png\n");
    char *arg = cnn_strfmt("@%s/top.txt", g_dir);
    CHECK_OK(expand(arg, &l));
    CHECK(l.n == 4 && strstr(l.paths[0], "/one.png") && strstr(l.paths[1], "lists/../imgs/b.png") &&
              strstr(l.paths[2], "lists/../imgs/b.png") && strstr(l.paths[3], "imgs/sub/c.jpeg"),
          "lists: %d entries", l.n);
    cnn_inputs_free(&l);
    free(arg);

    /* A list naming itself, two naming each other, a symlink to itself. */
    list_fails("self.txt", "one.png\n\n@self.txt\n",
               (const char *const[]){"self.txt:3: @", "self.txt: this list is being read already", NULL},
               "list naming itself");
    write_text("pong.txt", "one.png\n@ping.txt\n");
    list_fails("ping.txt", "# ping\n@pong.txt\n",
               (const char *const[]){"pong.txt:2: @", "ping.txt: this list is being read already", NULL},
               "lists naming each other");
    char *link = in_dir("alias.txt");
    CHECK(symlink("via.txt", link) == 0, "symlink %s", link);
    list_fails("via.txt", "@./alias.txt\n",
               (const char *const[]){"via.txt:1: @", "alias.txt: this list is being read already", NULL},
               "list naming itself through a symlink");
    free(link);

    /* A chain one deeper than allowed. */
    for (int i = 0; i <= CNN_INPUTS_MAX_LIST_DEPTH; i++) {
        char name[32], text[32];
        snprintf(name, sizeof name, "chain%d.txt", i);
        snprintf(text, sizeof text, "@chain%d.txt\n", i + 1);
        write_text(name, i == CNN_INPUTS_MAX_LIST_DEPTH ? "one.png\n" : text);
    }
    char want[64];
    snprintf(want, sizeof want, "chain%d.txt:1: @", CNN_INPUTS_MAX_LIST_DEPTH - 1);
    list_fails("chain0.txt", NULL, (const char *const[]){want, "nested more than", NULL}, "lists nested too deep");
    /* One level less is fine. */
    arg = cnn_strfmt("@%s/chain1.txt", g_dir);
    CHECK_OK(expand(arg, &l));
    CHECK(l.n == 1, "chain of %d lists: %d entries", CNN_INPUTS_MAX_LIST_DEPTH, l.n);
    cnn_inputs_free(&l);
    free(arg);

    /* A missing entry, a FIFO entry, a FIFO in a folder, a FIFO list. */
    list_fails("missing.txt", "one.png\n# gone:\nmissing.png\n",
               (const char *const[]){"missing.txt:3: ", "/missing.png: No such file or directory", NULL},
               "missing entry");
    char *fifo = in_dir("pipe.png");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    list_fails("fifo.txt", "one.png\npipe.png\n",
               (const char *const[]){"fifo.txt:2: ", "pipe.png: is a FIFO (named pipe), not a regular file", NULL},
               "FIFO in a list");
    expect_fail(fifo, (const char *const[]){"--input ", "pipe.png: is a FIFO", NULL}, "FIFO as --input");
    arg = cnn_strfmt("@%s", fifo);
    expect_fail(arg, (const char *const[]){"--input @", "pipe.png: is a FIFO", NULL}, "FIFO as the list");
    free(arg);
    char *fifo_in_dir = in_dir("imgs/sub/late.png");
    CHECK(mkfifo(fifo_in_dir, 0600) == 0, "mkfifo %s", fifo_in_dir);
    expect_fail(imgs, (const char *const[]){"imgs/sub/late.png: is a FIFO", NULL}, "FIFO in a folder");
    unlink(fifo_in_dir);
    char *fifo_other = in_dir("imgs/sub/other.fifo"); /* not an image name: left out */
    CHECK(mkfifo(fifo_other, 0600) == 0, "mkfifo %s", fifo_other);
    CHECK_OK(expand(imgs, &l));
    CHECK(l.n == 3, "folder with a FIFO of another name: %d entries", l.n);
    cnn_inputs_free(&l);
    unlink(fifo_other);
    expect_fail("/dev/null", (const char *const[]){"--input /dev/null: is a character device", NULL},
                "device as --input");
    expect_fail("@", (const char *const[]){"--input @: no list file", NULL}, "bare @");

    unlink(fifo);
    free(fifo);
    free(fifo_in_dir);
    free(fifo_other);
    free(imgs);
    free(lists);
    free(sub);
}

int main(void)
{
    const char *base = getenv("CNNVIZ_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_inputs.%ld", base && base[0] ? base : "/tmp", (long)getpid());
    CHECK_OK(cnn_mkdirs(g_dir, 0755));
    test_parse();
    test_files();
    int rc = test_summary("test_inputs");
    if (rc == 0) {
        char *cmd = cnn_strfmt("rm -rf '%s'", g_dir);
        if (cmd && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
        free(cmd);
    }
    return rc;
}
