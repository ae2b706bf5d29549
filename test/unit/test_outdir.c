/* The output folder's safety: the JSON reader (valid and hostile texts),
 * the ownership parse of a manifest (marker, schema, path shapes), file
 * names that cannot collide, and cnn_outdir itself on a real folder:
 * a commit publishes exactly the manifest's files, replaces only the
 * earlier run's unchanged files, removes the stale ones and nothing else,
 * never follows a link out of the folder, and a run that is closed without
 * a commit leaves the folder byte for byte as it was. */
#define _DEFAULT_SOURCE
#include "check.h"
#include "core/util.h"
#include "io/jsonparse.h"
#include "io/manifest.h"
#include "io/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[4096];

static void test_json_valid(void)
{
    const char *text = "{\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
                       " \"o\": {}, \"e\": [], \"a\": 7}";
    cnn_jv v;
    CHECK_OK(cnn_jv_parse(text, strlen(text), &v));
    const cnn_jv *a = cnn_jv_get(&v, "a"), *s = cnn_jv_get(&v, "s");
    CHECK(a && a->type == CNN_JV_ARRAY && a->n == 5, "array");
    if (a && a->n == 5) {
        CHECK(a->items[0].num == 1 && a->items[1].num == -2500, "numbers");
        CHECK(a->items[2].type == CNN_JV_BOOL && a->items[2].b && !a->items[3].b, "bools");
        CHECK(a->items[4].type == CNN_JV_NULL, "null");
    }
    CHECK(s && !strcmp(s->str, "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80"), "escapes decode to UTF-8");
    CHECK(cnn_jv_get(&v, "o")->type == CNN_JV_OBJECT && cnn_jv_get(&v, "e")->n == 0, "empty containers");
    long long x;
    CHECK(!cnn_jv_int(&a->items[1], -100, 100, &x) && cnn_jv_int(&a->items[0], 0, 1, &x) && x == 1, "int range");
    cnn_jv_free(&v);
}

static void test_json_hostile(void)
{
    static const char *const bad[] = {
        "",  "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "1e", "\"abc", "\"\\x\"", "\"\\u12\"",
        "\"\\ud800\"", "\"\\udc00x\"", "\"\\u0000\"", "\"a\nb\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
        "[1] 2", "tru", "nul", "{1:2}", "\"\\",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cnn_jv v;
        int st = cnn_jv_parse(bad[i], strlen(bad[i]), &v);
        CHECK(st == CNN_ERR_INPUT, "'%s' parsed (status %d)", bad[i], st);
        CHECK(strstr(cnn_error_message(), "line 1, column") != NULL, "'%s': position in '%s'", bad[i],
              cnn_error_message());
    }
    /* Depth is bounded: 10000 nested arrays fail without exhausting the stack. */
    size_t n = 10000;
    char *deep = malloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    cnn_jv v;
    CHECK(cnn_jv_parse(deep, 2 * n, &v) == CNN_ERR_INPUT && strstr(cnn_error_message(), "deep"), "depth: %s",
          cnn_error_message());
    free(deep);
}

static void test_owned(void)
{
    const char *text =
        "{\"tool\": \"cnnviz-cl\", \"schema\": 2, \"files\": ["
        "{\"path\": \"a/b.png\", \"bytes\": 10, \"mtime\": [1700000000, 5]},"
        "{\"path\": \"../x\", \"bytes\": 1, \"mtime\": [1, 1]},"
        "{\"path\": \"/etc/passwd\", \"bytes\": 1, \"mtime\": [1, 1]},"
        "{\"path\": \"a/.git\", \"bytes\": 1, \"mtime\": [1, 1]},"
        "{\"path\": \"a//b\", \"bytes\": 1, \"mtime\": [1, 1]},"
        "{\"path\": \"a/b c\", \"bytes\": 1, \"mtime\": [1, 1]},"
        "{\"path\": \"manifest.json\", \"bytes\": 1, \"mtime\": [1, 1]},"
        "{\"path\": \"nostat.png\"},"
        "{\"path\": \"c.npy\", \"bytes\": 3, \"mtime\": [2, 1000000000]},"
        "{\"path\": \"d.npy\", \"bytes\": 4, \"mtime\": [2, 7]}]}";
    cnn_owned o;
    CHECK_OK(cnn_manifest_parse_owned(text, strlen(text), &o));
    CHECK(o.n == 2 && o.skipped == 8, "2 usable entries, 8 skipped: %d, %d", o.n, o.skipped);
    if (o.n == 2) {
        CHECK(!strcmp(o.f[0].path, "a/b.png") && o.f[0].bytes == 10 && o.f[0].mtime_s == 1700000000 &&
                  o.f[0].mtime_ns == 5,
              "first entry");
        CHECK(!strcmp(o.f[1].path, "d.npy"), "last entry");
    }
    cnn_owned_free(&o);
    static const char *const foreign[] = {
        "{\"files\": [{\"path\": \"README.md\"}]}",
        "{\"tool\": \"other\", \"schema\": 2, \"files\": []}",
        "{\"tool\": \"cnnviz-cl\", \"schema\": 99, \"files\": []}",
        "{\"tool\": \"cnnviz-cl\", \"files\": []}",
        "[1, 2]",
        "not json",
    };
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++)
        CHECK(cnn_manifest_parse_owned(foreign[i], strlen(foreign[i]), &o) == CNN_ERR_INPUT, "foreign %zu accepted",
              i);
}

static void test_names(void)
{
    static const char *const in[][2] = {
        {"input.png", "input.png_"}, {"conv1", "conv1"},     {"a/b", "a_b"},         {"..", "_.."},
        {".hidden", "_hidden"},      {"x.JSON", "x.JSON_"},  {"features.0", "features.0"},
        {"index.html", "index.html_"},
    };
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        char out[101];
        cnn_outdir_name(in[i][0], out, sizeof out);
        CHECK(!strcmp(out, in[i][1]), "'%s' -> '%s', expected '%s'", in[i][0], out, in[i][1]);
    }
}

/* --- cnn_outdir on a real folder ---------------------------------------- */

static char *at(const char *rel) { return cnn_strfmt("%s/%s", g_dir, rel); }

static void put(const char *path, const char *text)
{
    char *d = cnn_path_dir(path);
    cnn_mkdirs(d, 0755);
    free(d);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static bool has(const char *path, const char *text)
{
    char *data = NULL;
    size_t len = 0;
    if (cnn_file_read(path, 1 << 20, &data, &len) < 0) {
        cnn_error_clear();
        return false;
    }
    bool same = len == strlen(text) && !memcmp(data, text, len);
    free(data);
    return same;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A run: writes files (rel, text) into the stage, lists them, commits. */
static int run(const char *out, const char *const *rels, const char *const *texts, int n, bool commit)
{
    cnn_outdir o;
    int status = cnn_outdir_open(&o, out, false, true);
    cnn_manifest m = {0};
    for (int i = 0; i < n && status == CNN_OK; i++) {
        char *p = cnn_strfmt("%s/%s", o.stage, rels[i]);
        put(p, texts[i]);
        free(p);
        cnn_manifest_entry e = {.path = (char *)rels[i], .kind = "test", .channel = -1, .format = "txt"};
        status = cnn_manifest_add(&m, &e);
    }
    if (status == CNN_OK && commit) status = cnn_outdir_commit(&o, &m);
    cnn_manifest_free(&m);
    cnn_outdir_close(&o);
    return status;
}

static void test_commit(void)
{
    char *out = at("out"), *victim = at("victim"), *user = at("out/user.txt");
    const char *r1[] = {"a/x.png", "a/y.png", "b/z.npy", "index.html"};
    const char *t1[] = {"x1", "y1", "z1", "i1"};
    CHECK_OK(run(out, r1, t1, 4, true));
    char *ax = at("out/a/x.png"), *ay = at("out/a/y.png"), *bz = at("out/b/z.npy"), *ix = at("out/index.html");
    CHECK(has(ax, "x1") && has(ay, "y1") && has(bz, "z1") && has(ix, "i1"), "first commit published the files");
    char *lock = at("out/.cnnviz.lock");
    CHECK(!exists(lock), "the lock file is gone after the run");
    put(user, "mine");

    /* A second run writes fewer files: b/z.npy goes, b/ with it; a/y.png
     * was edited by the user after the first run, so it stays. */
    put(ay, "edited");
    const char *r2[] = {"a/x.png", "index.html"};
    const char *t2[] = {"x2", "i2"};
    CHECK_OK(run(out, r2, t2, 2, true));
    CHECK(has(ax, "x2") && has(ix, "i2"), "second commit replaced the files");
    CHECK(!exists(bz), "stale file removed");
    char *bdir = at("out/b");
    CHECK(!exists(bdir), "emptied folder removed");
    CHECK(has(ay, "edited"), "a file changed since the tool wrote it is left alone");
    CHECK(has(user, "mine"), "the user's file is untouched");

    /* A run that is not committed leaves everything as it was. */
    const char *r3[] = {"a/x.png", "c/new.png"};
    const char *t3[] = {"x3", "n3"};
    CHECK_OK(run(out, r3, t3, 2, false));
    char *cn = at("out/c/new.png");
    CHECK(has(ax, "x2") && !exists(cn), "an uncommitted run changed nothing");
    DIR *d = opendir(out);
    int hidden = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) hidden++;
    if (d) closedir(d);
    CHECK(hidden == 0, "no stage or lock left (%d hidden entries)", hidden);

    /* A file the run would replace that is not its own: refused, nothing moved. */
    put(ay, "y-user");
    const char *r4[] = {"a/x.png", "a/y.png"};
    const char *t4[] = {"x4", "y4"};
    int st = run(out, r4, t4, 2, true);
    CHECK(st == CNN_ERR_USAGE && strstr(cnn_error_message(), "a/y.png"), "replacing a changed file: %d %s", st,
          cnn_error_message());
    CHECK(has(ax, "x2") && has(ay, "y-user"), "a refused commit moved nothing");

    /* A link inside OUT is never followed: a forged entry of the earlier
     * manifest naming a file through it, with the file's true size and
     * time, does not remove the file outside. */
    char *vfile = at("victim/v.txt"), *link = at("out/l");
    put(vfile, "precious");
    CHECK(symlink(victim, link) == 0, "symlink: %s", strerror(errno));
    struct stat vs;
    stat(vfile, &vs);
    char *mpath = at("out/manifest.json");
    char *forged = cnn_strfmt("{\"tool\": \"cnnviz-cl\", \"schema\": 2, \"files\": [{\"path\": \"l/v.txt\", "
                              "\"bytes\": %lld, \"mtime\": [%lld, %ld]}]}",
                              (long long)vs.st_size, (long long)vs.st_mtim.tv_sec, (long)vs.st_mtim.tv_nsec);
    put(mpath, forged);
    const char *r6[] = {"n/new.png"};
    const char *t6[] = {"n"};
    CHECK_OK(run(out, r6, t6, 1, true));
    CHECK(has(vfile, "precious"), "a file outside OUT reached through a link was removed");
    /* ... and a run that would write through the link is refused. */
    const char *r5[] = {"l/w.png"};
    const char *t5[] = {"w"};
    st = run(out, r5, t5, 1, true);
    CHECK(st == CNN_ERR_USAGE && strstr(cnn_error_message(), "symbolic link"), "writing through a link: %s",
          cnn_error_message());
    char *vw = at("victim/w.png");
    CHECK(!exists(vw), "nothing written outside OUT");

    /* A manifest of another tool: refused before anything is written. */
    put(mpath, "{\"files\": [{\"path\": \"user.txt\"}]}");
    st = run(out, r2, t2, 2, true);
    CHECK(st == CNN_ERR_USAGE && strstr(cnn_error_message(), "not written by"), "foreign manifest: %s",
          cnn_error_message());
    CHECK(has(user, "mine"), "a foreign manifest's files are untouched");

    free(forged);
    free(mpath);
    free(vw);
    free(vfile);
    free(link);
    free(cn);
    free(bdir);
    free(lock);
    free(ax);
    free(ay);
    free(bz);
    free(ix);
    free(out);
    free(victim);
    free(user);
}

/* The lock: a second open fails at once and names the holder's pid. */
static void test_lock(void)
{
    char *out = at("locked");
    cnn_outdir a;
    CHECK_OK(cnn_outdir_open(&a, out, false, true));
    pid_t child = fork();
    if (child == 0) {
        cnn_outdir b;
        int st = cnn_outdir_open(&b, out, false, true);
        char pid[32];
        snprintf(pid, sizeof pid, "pid %ld", (long)getppid());
        int ok = st == CNN_ERR_USAGE && strstr(cnn_error_message(), "in use") && strstr(cnn_error_message(), pid);
        cnn_outdir_close(&b);
        _exit(ok ? 0 : 1);
    }
    int ws = 0;
    waitpid(child, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "a second open while the lock is held must fail naming the pid");
    cnn_outdir_close(&a);
    cnn_outdir b;
    CHECK_OK(cnn_outdir_open(&b, out, false, true));
    cnn_outdir_close(&b);
    CHECK(!exists(out), "an output folder that only a failed or empty run made is removed");
    free(out);
}

/* kill -9 during a commit: the stage holds its manifest and some files were
 * already moved.  The next open finishes the move. */
static void test_recovery(void)
{
    char *out = at("rec");
    const char *r1[] = {"a/x.png", "b/y.png"};
    const char *t1[] = {"x1", "y1"};
    CHECK_OK(run(out, r1, t1, 2, true)); /* an earlier complete run */
    /* A dead run's stage: its manifest lists a/x.png (moved already) and
     * c/z.png (still in the stage); b/y.png is the earlier run's stale file. */
    char *stage = at("rec/.cnnviz-run.999999"), *sz = at("rec/.cnnviz-run.999999/c/z.png");
    char *ax = at("rec/a/x.png"), *by = at("rec/b/y.png"), *cz = at("rec/c/z.png");
    put(ax, "x2");
    put(sz, "z2");
    struct stat s1, s2;
    stat(ax, &s1);
    stat(sz, &s2);
    char *m = cnn_strfmt("{\"tool\": \"cnnviz-cl\", \"schema\": 2, \"files\": ["
                         "{\"path\": \"a/x.png\", \"bytes\": 2, \"mtime\": [%lld, %ld]},"
                         "{\"path\": \"c/z.png\", \"bytes\": 2, \"mtime\": [%lld, %ld]}]}",
                         (long long)s1.st_mtim.tv_sec, (long)s1.st_mtim.tv_nsec, (long long)s2.st_mtim.tv_sec,
                         (long)s2.st_mtim.tv_nsec);
    char *sm = at("rec/.cnnviz-run.999999/manifest.json");
    put(sm, m);
    /* and a temporary file of a dead writer */
    char *tmp = at("rec/a/.x.png.tmp.999999.4");
    put(tmp, "partial");
    cnn_outdir o;
    CHECK_OK(cnn_outdir_open(&o, out, false, true));
    cnn_outdir_close(&o);
    CHECK(has(ax, "x2") && has(cz, "z2"), "the interrupted commit was finished");
    CHECK(!exists(by), "the stale file of the run before was removed");
    CHECK(!exists(stage), "the dead stage is gone");
    CHECK(!exists(tmp), "a dead writer's temporary file is gone");
    char *mm = at("rec/manifest.json");
    cnn_owned own;
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(cnn_file_read(mm, 1 << 20, &text, &len));
    CHECK(text && cnn_manifest_parse_owned(text, len, &own) == CNN_OK && own.n == 2, "the switched manifest");
    if (text) cnn_owned_free(&own);
    free(text);
    free(mm);
    free(m);
    free(sm);
    free(tmp);
    free(stage);
    free(sz);
    free(ax);
    free(by);
    free(cz);
    free(out);
}

int main(void)
{
    const char *base = getenv("CNNVIZ_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_outdir.%ld", base && *base ? base : "/tmp", (long)getpid());
    cnn_mkdirs(g_dir, 0755);
    test_json_valid();
    test_json_hostile();
    test_owned();
    test_names();
    test_commit();
    test_lock();
    test_recovery();
    char *cmd = cnn_strfmt("rm -rf '%s'", g_dir);
    if (cmd && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    free(cmd);
    return test_summary("test_outdir");
}
