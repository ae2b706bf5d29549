/* Decoding ahead (io/prefetch.h): 40 PNGs of distinct content, one file
 * that is not an image and two entries without a path, taken in order
 * through windows of 1 to 7 images and 1 to 4 threads: every image's
 * pixels, the bad file's error with its name, the empty entries; then a
 * prefetcher freed halfway (workers stopped, nothing leaked: ASan). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "io/prefetch.h"
#include "core/util.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 43

static char g_dir[4096];
static char *g_paths[N];

static void pixels_of(int i, uint8_t *px, int *w, int *h)
{
    *w = 5 + i % 7;
    *h = 3 + i % 5;
    for (int p = 0; p < *w * *h * 3; p++) px[p] = (uint8_t)(i * 31 + p * 7);
}

static void make_files(void)
{
    uint8_t px[12 * 8 * 3];
    for (int i = 0; i < N; i++) {
        if (i == 10 || i == 30) continue; /* no path: a .npy entry's place */
        g_paths[i] = cnn_strfmt("%s/%02d.png", g_dir, i);
        if (i == 20) {
            FILE *f = fopen(g_paths[i], "wb");
            CHECK(f != NULL, "cannot create %s", g_paths[i]);
            if (f) {
                fputs("not an image", f);
                fclose(f);
            }
            continue;
        }
        int w, h;
        pixels_of(i, px, &w, &h);
        CHECK_OK(cnn_png_write(g_paths[i], px, w, h, 3, 1));
    }
}

static void take_all(int threads, int window, int first)
{
    cnn_prefetch *pf = NULL;
    CHECK_OK(cnn_prefetch_start((const char *const *)g_paths, first, N, threads, window, &pf));
    if (!pf) return;
    uint8_t want[12 * 8 * 3];
    for (int i = first; i < N; i++) {
        cnn_image img;
        int st = cnn_prefetch_take(pf, i, &img);
        if (i == 20) {
            CHECK(st == CNN_ERR_INPUT && strstr(cnn_error_message(), "20.png"), "bad file %d: %s", st,
                  cnn_error_message());
        } else if (!g_paths[i]) {
            CHECK(st == CNN_OK && img.px == NULL, "entry %d without a path", i);
        } else {
            int w, h;
            pixels_of(i, want, &w, &h);
            CHECK(st == CNN_OK && img.w == w && img.h == h && img.c == 3 && !memcmp(img.px, want, (size_t)w * h * 3),
                  "image %d (threads %d, window %d)", i, threads, window);
        }
        cnn_image_free(&img);
    }
    cnn_prefetch_free(pf);
}

int main(void)
{
    const char *base = getenv("CNNVIZ_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/test_prefetch.%ld", base && base[0] ? base : "/tmp", (long)getpid());
    CHECK_OK(cnn_mkdirs(g_dir, 0755));
    make_files();
    for (int threads = 1; threads <= 4; threads++)
        for (int window = 1; window <= 7; window += 3) take_all(threads, window, threads == 2 ? 5 : 0);
    /* freed with images decoded, decoding and not yet claimed */
    for (int r = 0; r < 20; r++) {
        cnn_prefetch *pf = NULL;
        CHECK_OK(cnn_prefetch_start((const char *const *)g_paths, 0, N, 3, 8, &pf));
        cnn_image img;
        CHECK_OK(cnn_prefetch_take(pf, 0, &img));
        cnn_image_free(&img);
        if (r % 2) nanosleep(&(struct timespec){0, 2000000}, NULL);
        cnn_prefetch_free(pf);
    }
    CHECK(cnn_prefetch_threads(true) == 1 || getenv("CNNVIZ_DECODE_THREADS"), "one thread beside a CPU device");
    CHECK(cnn_prefetch_threads(false) >= 1 && cnn_prefetch_threads(false) <= 64, "threads beside a GPU");
    int rc = test_summary("test_prefetch");
    for (int i = 0; i < N; i++) {
        if (g_paths[i]) unlink(g_paths[i]);
        free(g_paths[i]);
    }
    rmdir(g_dir);
    return rc;
}
