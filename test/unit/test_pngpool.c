/* PNG writer pool: hundreds of small and a few large random images, cut from
 * one shared block and from one block each, with 1, 2 and the automatic
 * number of threads and a tiny max_pending so that submit has to block; each
 * file is decoded back and compared pixel for pixel, and the folder must
 * hold exactly the expected files (no temporary ones).  Then the failure
 * path: a job in a missing folder makes wait() and later submits fail with
 * CNN_ERR_IO naming the path, and the jobs behind it are dropped.  Blocks
 * are released by the caller right after submitting, so a lost or extra
 * reference shows up as a leak or a use-after-free under the sanitizers. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "core/util.h"
#include "io/image.h"
#include "io/pngpool.h"

#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_SMALL 500
#define N_LARGE 4
#define N_IMAGES (N_SMALL + N_LARGE)

static char g_root[4096];

typedef struct spec {
    int w, h, c;
    size_t offset; /* in the shared block */
    char path[4200];
} spec;

static uint8_t rng_byte(void) { return (uint8_t)rng_uniform(0.0f, 256.0f); }
static int rng_int(int lo, int hi)
{
    return lo + (int)rng_uniform(0.0f, (float)(hi - lo + 1)) % (hi - lo + 1);
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = rng_byte();
}

/* Removes the plain files of `dir` (left by an earlier run) and makes it. */
static void fresh_dir(const char *dir)
{
    CHECK_OK(cnn_mkdirs(dir, 0755));
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    struct dirent *e;
    char path[8400];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Every entry of `dir` except . and ..; hidden ones (temporary files are
 * ".name.tmp.pid.n") are counted separately. */
static void count_entries(const char *dir, int *visible, int *hidden)
{
    *visible = *hidden = 0;
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (e->d_name[0] == '.') {
            fprintf(stderr, "  left behind: %s/%s\n", dir, e->d_name);
            (*hidden)++;
        } else {
            (*visible)++;
        }
    }
    closedir(d);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Decodes `path` and compares it with the w x h x c pixels `px`.  The reader
 * drops alpha, so RGBA comes back as its RGB. */
static bool same_image(const char *path, const uint8_t *px, int w, int h, int c)
{
    cnn_image img;
    int status = cnn_image_load(path, &img);
    CHECK(status == CNN_OK, "%s", cnn_error_message());
    if (status != CNN_OK) return false;
    int want_c = c == 4 ? 3 : c;
    bool ok = img.w == w && img.h == h && img.c == want_c;
    CHECK(ok, "%s: %dx%dx%d read back as %dx%dx%d", path, w, h, c, img.w, img.h, img.c);
    for (size_t i = 0; ok && i < (size_t)w * (size_t)h; i++) {
        if (memcmp(img.px + i * (size_t)want_c, px + i * (size_t)c, (size_t)want_c) != 0) {
            CHECK(false, "%s: pixel %zu differs", path, i);
            ok = false;
        }
    }
    cnn_image_free(&img);
    return ok;
}

/* N_SMALL images of 1..40 pixels a side and N_LARGE of a few hundred, gray,
 * RGB and RGBA mixed, laid out one after the other (as the channels of a
 * tap are in one read-back buffer). */
static size_t make_specs(spec *s, const char *dir)
{
    size_t off = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        bool large = i % (N_IMAGES / N_LARGE) == N_IMAGES / N_LARGE / 2;
        static const int cs[3] = {1, 3, 4};
        s[i].w = large ? rng_int(300, 640) : rng_int(1, 40);
        s[i].h = large ? rng_int(200, 480) : rng_int(1, 40);
        s[i].c = cs[rng_int(0, 2)];
        s[i].offset = off;
        off += (size_t)s[i].w * (size_t)s[i].h * (size_t)s[i].c;
        snprintf(s[i].path, sizeof s[i].path, "%s/img%03d.png", dir, i);
    }
    return off;
}

static void check_folder(const char *dir, const spec *s, uint8_t *const *px, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (!same_image(s[i].path, px[i], s[i].w, s[i].h, s[i].c)) bad++;
    CHECK(bad == 0, "%d of %d images differ", bad, n);
    int visible, hidden;
    count_entries(dir, &visible, &hidden);
    CHECK(visible == n, "%s holds %d files, expected %d", dir, visible, n);
    CHECK(hidden == 0, "%s holds %d temporary files", dir, hidden);
}

/* All images in one block; the caller's reference is dropped right after
 * the last submit, so the pool's references alone keep the pixels alive. */
static void test_one_block(int threads, size_t max_pending)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/one-t%d", g_root, threads);
    fresh_dir(dir);
    spec *s = calloc(N_IMAGES, sizeof *s);
    size_t total = s ? make_specs(s, dir) : 0;
    cnn_png_buf *buf = s ? cnn_png_buf_new(total) : NULL;
    uint8_t *copy = malloc(total ? total : 1); /* the reference: the block is gone by the check */
    if (!s || !buf || !copy) {
        CHECK(false, "out of memory");
        cnn_png_buf_release(buf);
        goto done;
    }
    fill_random(cnn_png_buf_data(buf), total);
    memcpy(copy, cnn_png_buf_data(buf), total);

    cnn_png_pool *p;
    CHECK_OK(cnn_png_pool_create(threads, 1, max_pending, &p));
    int submitted = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        int status = cnn_png_pool_submit(p, s[i].path, buf, s[i].offset, s[i].w, s[i].h, s[i].c);
        CHECK(status == CNN_OK, "submit %d: %s", i, cnn_error_message());
        submitted += status == CNN_OK;
    }
    cnn_png_buf_release(buf);
    CHECK_OK(cnn_png_pool_wait(p));
    CHECK(cnn_png_pool_written(p) == submitted, "written %ld, submitted %d",
          cnn_png_pool_written(p), submitted);
    cnn_png_pool_free(p);

    uint8_t *px[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) px[i] = copy + s[i].offset;
    check_folder(dir, s, px, N_IMAGES);
done:
    free(copy);
    free(s);
}

/* One block per image, released as soon as it is submitted; the pool is
 * freed without wait(), which must still encode everything queued. */
static void test_many_blocks(int threads, size_t max_pending)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/many-t%d", g_root, threads);
    fresh_dir(dir);
    spec *s = calloc(N_IMAGES, sizeof *s);
    uint8_t **copies = calloc(N_IMAGES, sizeof *copies);
    if (!s || !copies) goto done;
    make_specs(s, dir);

    cnn_png_pool *p;
    CHECK_OK(cnn_png_pool_create(threads, 3, max_pending, &p));
    for (int i = 0; i < N_IMAGES; i++) {
        size_t n = (size_t)s[i].w * (size_t)s[i].h * (size_t)s[i].c;
        /* A margin on both sides, so that a wrong offset reads bytes that
         * are not in the reference copy. */
        cnn_png_buf *b = cnn_png_buf_new(n + 64);
        copies[i] = malloc(n);
        if (!b || !copies[i]) {
            CHECK(false, "out of memory");
            cnn_png_buf_release(b);
            break;
        }
        fill_random(cnn_png_buf_data(b), n + 64);
        memcpy(copies[i], cnn_png_buf_data(b) + 32, n);
        CHECK_OK(cnn_png_pool_submit(p, s[i].path, b, 32, s[i].w, s[i].h, s[i].c));
        cnn_png_buf_release(b);
    }
    long written_early = cnn_png_pool_written(p);
    CHECK(written_early >= 0 && written_early <= N_IMAGES, "written %ld", written_early);
    cnn_png_pool_free(p); /* no wait(): free() waits */

    check_folder(dir, s, copies, N_IMAGES);
done:
    for (int i = 0; copies && i < N_IMAGES; i++) free(copies[i]);
    free(copies);
    free(s);
}

/* Several threads submitting to one pool at once. */
struct submitter {
    cnn_png_pool *pool;
    cnn_png_buf *buf;
    const spec *s;
    int first, count, failures;
};

static void *submit_range(void *arg)
{
    struct submitter *t = arg;
    for (int i = t->first; i < t->first + t->count; i++)
        if (cnn_png_pool_submit(t->pool, t->s[i].path, t->buf, t->s[i].offset, t->s[i].w, t->s[i].h,
                                t->s[i].c) != CNN_OK)
            t->failures++;
    return NULL;
}

static void test_concurrent_submitters(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/submitters", g_root);
    fresh_dir(dir);
    spec *s = calloc(N_IMAGES, sizeof *s);
    size_t total = s ? make_specs(s, dir) : 0;
    cnn_png_buf *buf = s ? cnn_png_buf_new(total) : NULL;
    uint8_t *copy = malloc(total ? total : 1);
    if (!s || !buf || !copy) {
        CHECK(false, "out of memory");
        goto done;
    }
    fill_random(cnn_png_buf_data(buf), total);
    memcpy(copy, cnn_png_buf_data(buf), total);

    cnn_png_pool *p;
    CHECK_OK(cnn_png_pool_create(2, 1, 32 << 10, &p));
    enum { T = 4 };
    struct submitter sub[T];
    pthread_t tid[T];
    int per = (N_IMAGES + T - 1) / T;
    for (int t = 0; t < T; t++) {
        int first = t * per;
        int count = first + per > N_IMAGES ? N_IMAGES - first : per;
        sub[t] = (struct submitter){.pool = p, .buf = buf, .s = s, .first = first, .count = count};
        CHECK(pthread_create(&tid[t], NULL, submit_range, &sub[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < T; t++) {
        pthread_join(tid[t], NULL);
        CHECK(sub[t].failures == 0, "submitter %d: %d failures", t, sub[t].failures);
    }
    cnn_png_buf_release(buf);
    buf = NULL;
    CHECK_OK(cnn_png_pool_wait(p));
    CHECK(cnn_png_pool_written(p) == N_IMAGES, "written %ld", cnn_png_pool_written(p));
    cnn_png_pool_free(p);

    uint8_t *px[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) px[i] = copy + s[i].offset;
    check_folder(dir, s, px, N_IMAGES);
done:
    cnn_png_buf_release(buf);
    free(copy);
    free(s);
}

/* One worker, so jobs run in submission order: the good job before the bad
 * one is written, every job after it is dropped (or refused by submit). */
static void test_failure(void)
{
    char dir[4200], bad[4300], path[4300];
    snprintf(dir, sizeof dir, "%s/fail", g_root);
    fresh_dir(dir);
    snprintf(bad, sizeof bad, "%s/no-such-folder/bad.png", dir);

    enum { W = 64, H = 48, C = 3, N_AFTER = 50 };
    cnn_png_buf *buf = cnn_png_buf_new(W * H * C);
    if (!buf) {
        CHECK(false, "%s", cnn_error_message());
        return;
    }
    fill_random(cnn_png_buf_data(buf), W * H * C);

    cnn_png_pool *p;
    CHECK_OK(cnn_png_pool_create(1, 1, 0, &p));
    snprintf(path, sizeof path, "%s/before.png", dir);
    CHECK_OK(cnn_png_pool_submit(p, path, buf, 0, W, H, C));
    CHECK_OK(cnn_png_pool_submit(p, bad, buf, 0, W, H, C));
    int refused = 0;
    for (int i = 0; i < N_AFTER; i++) {
        snprintf(path, sizeof path, "%s/after%02d.png", dir, i);
        cnn_error_clear();
        int status = cnn_png_pool_submit(p, path, buf, 0, W, H, C);
        CHECK(status == CNN_OK || status == CNN_ERR_IO, "submit after the bad job: %d", status);
        if (status != CNN_OK) {
            refused++;
            CHECK(strstr(cnn_error_message(), bad) != NULL, "message: %s", cnn_error_message());
        }
    }

    cnn_error_clear();
    int status = cnn_png_pool_wait(p);
    CHECK(status == CNN_ERR_IO, "wait returned %d", status);
    CHECK(strstr(cnn_error_message(), bad) != NULL, "message does not name %s: '%s'", bad,
          cnn_error_message());
    /* Sticky: asking again gives the same answer. */
    cnn_error_clear();
    CHECK(cnn_png_pool_wait(p) == CNN_ERR_IO, "second wait");
    CHECK(strstr(cnn_error_message(), bad) != NULL, "second wait message: '%s'",
          cnn_error_message());

    cnn_error_clear();
    snprintf(path, sizeof path, "%s/late.png", dir);
    status = cnn_png_pool_submit(p, path, buf, 0, W, H, C);
    CHECK(status == CNN_ERR_IO, "submit after the failure returned %d", status);
    CHECK(strstr(cnn_error_message(), bad) != NULL, "submit message: '%s'", cnn_error_message());
    CHECK(cnn_png_pool_written(p) == 1, "written %ld, expected 1", cnn_png_pool_written(p));
    cnn_png_pool_free(p);
    cnn_png_buf_release(buf);

    snprintf(path, sizeof path, "%s/before.png", dir);
    CHECK(file_exists(path), "%s missing", path);
    int found = 0;
    for (int i = 0; i < N_AFTER; i++) {
        snprintf(path, sizeof path, "%s/after%02d.png", dir, i);
        found += file_exists(path);
    }
    CHECK(found == 0, "%d jobs after the failure were written (%d refused at submit)", found,
          refused);
    int visible, hidden;
    count_entries(dir, &visible, &hidden);
    CHECK(visible == 1 && hidden == 0, "%d files, %d temporary", visible, hidden);
}

/* A failure with a long queue behind it, freed without wait(): the queue
 * is dropped and every reference returned. */
static void test_failure_then_free(void)
{
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/fail-free", g_root);
    fresh_dir(dir);
    cnn_png_buf *buf = cnn_png_buf_new(256 * 256);
    if (!buf) {
        CHECK(false, "%s", cnn_error_message());
        return;
    }
    fill_random(cnn_png_buf_data(buf), 256 * 256);
    cnn_png_pool *p;
    CHECK_OK(cnn_png_pool_create(2, 9, 1 << 20, &p));
    snprintf(path, sizeof path, "%s/missing/first.png", dir);
    CHECK_OK(cnn_png_pool_submit(p, path, buf, 0, 256, 256, 1));
    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof path, "%s/x%03d.png", dir, i);
        if (cnn_png_pool_submit(p, path, buf, 0, 256, 256, 1) != CNN_OK) {
            CHECK(strstr(cnn_error_message(), "missing/first.png") != NULL, "message: '%s'",
                  cnn_error_message());
            break;
        }
    }
    cnn_png_buf_release(buf);
    cnn_png_pool_free(p);
    int visible, hidden;
    count_entries(dir, &visible, &hidden);
    CHECK(hidden == 0, "%d temporary files", hidden);
}

/* Blocks on their own: one reference, freed by the one release; NULL is a
 * no-op; a zero-size block is valid. */
static void test_buffers(void)
{
    cnn_png_buf *b = cnn_png_buf_new(100);
    CHECK(b != NULL && cnn_png_buf_data(b) != NULL, "new");
    if (b) {
        CHECK(((uintptr_t)cnn_png_buf_data(b) & (sizeof(double) - 1)) == 0, "data not aligned");
        memset(cnn_png_buf_data(b), 7, 100);
    }
    cnn_png_buf_release(b);
    cnn_png_buf_release(NULL);
    cnn_png_buf *z = cnn_png_buf_new(0);
    CHECK(z != NULL, "zero-size block");
    cnn_png_buf_release(z);

    /* An idle pool is created and freed cleanly, with or without wait(). */
    cnn_png_pool *p;
    CHECK_OK(cnn_png_pool_create(3, 1, 0, &p));
    CHECK_OK(cnn_png_pool_wait(p));
    CHECK(cnn_png_pool_written(p) == 0, "written");
    cnn_png_pool_free(p);
    CHECK_OK(cnn_png_pool_create(0, 1, 0, &p));
    cnn_png_pool_free(p);
    cnn_png_pool_free(NULL);
}

int main(void)
{
    const char *tmp = getenv("CNNVIZ_TEST_TMP");
    snprintf(g_root, sizeof g_root, "%s/pngpool", tmp && *tmp ? tmp : "test-tmp");
    CHECK_OK(cnn_mkdirs(g_root, 0755));
    rng_seed(12345);

    test_buffers();
    /* 16 KiB pending: far below one large image, so submit blocks often
     * and the larger-than-the-limit case must get through an empty pool. */
    const int threads[3] = {1, 2, 0};
    for (int i = 0; i < 3; i++) {
        test_one_block(threads[i], 16 << 10);
        test_many_blocks(threads[i], 16 << 10);
    }
    test_concurrent_submitters();
    test_failure();
    test_failure_then_free();
    return test_summary("test_pngpool");
}
