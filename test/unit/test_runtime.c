/* The OpenCL runtime on whatever device the environment selects (PoCL in CI):
 * device choice, an embedded kernel run against C, the program cache. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "core/util.h"
#include "runtime/clrt.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void run_relu(cnn_cl *cl)
{
    enum { N = 1000 }; /* not a multiple of the work-group */
    float x[N], y[N];
    double ref[N];
    rng_seed(42);
    rng_fill(x, N, -3.0f, 3.0f);
    for (int i = 0; i < N; i++) {
        ref[i] = x[i] > 0 ? x[i] : 0.0;
        y[i] = NAN; /* poison */
    }
    cl_mem bx = NULL, by = NULL;
    cl_kernel k;
    CHECK_OK(cnn_cl_buffer(cl, sizeof x, &bx, "x"));
    CHECK_OK(cnn_cl_buffer(cl, sizeof y, &by, "y"));
    CHECK_OK(cnn_cl_write(cl, bx, 0, sizeof x, x, "x"));
    CHECK_OK(cnn_cl_write(cl, by, 0, sizeof y, y, "y"));
    CHECK_OK(cnn_cl_kernel(cl, "eltwise.cl", "-DACT=1", "kernel_act_f32", &k));
    cl_uint n = N;
    float slope = 0;
    CHECK_OK(CNN_ARG(k, 0, bx, "x"));
    CHECK_OK(CNN_ARG(k, 1, by, "y"));
    CHECK_OK(CNN_ARG(k, 2, n, "n"));
    CHECK_OK(CNN_ARG(k, 3, slope, "slope"));
    CHECK_OK(cnn_cl_run1d(cl, k, N, "relu test"));
    CHECK_OK(cnn_cl_read(cl, by, 0, sizeof y, y, "y"));
    CHECK(close_enough(y, ref, N, 0, 0, "relu"), "relu differs from C (exact expected)");
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".bin")) n++;
    closedir(d);
    return n;
}

/* The cache folder is flat: its files, then the folder. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = cnn_strfmt("%s/%s", dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static void (*bus_handler(void))(int, siginfo_t *, void *)
{
    struct sigaction sa;
    sigaction(SIGBUS, NULL, &sa);
    return (sa.sa_flags & SA_SIGINFO) ? sa.sa_sigaction : NULL;
}

static void corrupt_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".bin")) continue;
        char *p = cnn_strfmt("%s/%s", dir, e->d_name);
        FILE *f = fopen(p, "r+b");
        if (f) {
            fseek(f, 40, SEEK_SET);
            fputs("garbage garbage garbage", f);
            fclose(f);
        }
        free(p);
    }
    closedir(d);
}

int main(void)
{
    const char *tmp = getenv("CNNVIZ_TEST_TMP");
    char *cache = cnn_strfmt("%s/runtime-cache-%ld", tmp ? tmp : "/tmp", (long)getpid());
    setenv("CNNVIZ_CACHE_DIR", cache, 1);
    cnn_signals_install();
    void (*ours)(int, siginfo_t *, void *) = bus_handler();
    CHECK(ours != NULL, "cnn_signals_install left SIGBUS without a handler");

    /* First build: a miss that writes the cache. */
    cnn_cl cl;
    CHECK_OK(cnn_cl_init(&cl, NULL, NULL, false));
    if (!cl.ctx) return test_summary("test_runtime");
    printf("device: %s (%s)\n", cl.device_name, cl.platform_name);
    /* The OpenCL runtime may take SIGBUS (PoCL's compiler does): the guard
     * for mapped weights files is back after init and after a build. */
    CHECK(bus_handler() == ours, "SIGBUS handler replaced during cnn_cl_init");
    run_relu(&cl);
    CHECK(bus_handler() == ours, "SIGBUS handler replaced during a program build");
    CHECK(cl.cache_misses == 1 && cl.cache_writes == 1, "misses %d writes %d", cl.cache_misses,
          cl.cache_writes);
    /* Same program again within one context: no second build at all. */
    cl_kernel k2;
    CHECK_OK(cnn_cl_kernel(&cl, "eltwise.cl", "-DACT=1", "kernel_add_f32", &k2));
    CHECK(cl.cache_misses == 1 && cl.cache_hits == 0, "second kernel rebuilt the program");
    cnn_cl_free(&cl);
    CHECK(count_files(cache) == 1, "cache folder has %d files", count_files(cache));

    /* Second context: a cache hit, and the kernel still computes right. */
    CHECK_OK(cnn_cl_init(&cl, NULL, NULL, false));
    run_relu(&cl);
    CHECK(cl.cache_hits == 1 && cl.cache_misses == 0, "hits %d misses %d", cl.cache_hits,
          cl.cache_misses);
    cnn_cl_free(&cl);

    /* A corrupted cache file is ignored and rebuilt. */
    corrupt_files(cache);
    CHECK_OK(cnn_cl_init(&cl, NULL, NULL, false));
    run_relu(&cl);
    CHECK(cl.cache_hits == 0 && cl.cache_misses == 1 && cl.cache_writes == 1,
          "corrupt cache: hits %d misses %d writes %d", cl.cache_hits, cl.cache_misses,
          cl.cache_writes);
    cnn_cl_free(&cl);

    /* "off" disables the cache. */
    setenv("CNNVIZ_CACHE_DIR", "off", 1);
    CHECK_OK(cnn_cl_init(&cl, NULL, NULL, false));
    CHECK(cl.cache_dir == NULL, "cache dir should be NULL when off");
    run_relu(&cl);
    CHECK(cl.cache_hits == 0 && cl.cache_writes == 0, "off: hits %d writes %d", cl.cache_hits,
          cl.cache_writes);
    cnn_cl_free(&cl);

    /* Selection by index and by substring; bad selections. */
    CHECK_OK(cnn_cl_init(&cl, "0", "0", false));
    cnn_cl_free(&cl);
    CHECK_OK(cnn_cl_init(&cl, NULL, "cpu", false));
    cnn_cl_free(&cl);
    CHECK(cnn_cl_init(&cl, "97", NULL, false) == CNN_ERR_USAGE, "platform 97 should be a usage error");
    CHECK(strstr(cnn_error_message(), "--platform '97'") != NULL, "message: %s", cnn_error_message());
    CHECK(cnn_cl_init(&cl, NULL, "no-such-device-xyz", false) == CNN_ERR_USAGE,
          "bad device substring should be a usage error");

    /* A kernel that does not compile: the error names the call, the file and
     * the options (the driver's log goes to stderr). */
    {
        char *kdir = cnn_strfmt("%s/broken-kernels-%ld", tmp ? tmp : "/tmp", (long)getpid());
        CHECK_OK(cnn_mkdirs(kdir, 0755));
        char *kpath = cnn_strfmt("%s/eltwise.cl", kdir);
        const char *bad = "__kernel void kernel_act_f32(__global float *x) { x[0] = undefined_name; }\n";
        CHECK_OK(cnn_file_write_atomic(kpath, bad, strlen(bad)));
        setenv("CNNVIZ_KERNEL_DIR", kdir, 1);
        CHECK_OK(cnn_cl_init(&cl, NULL, NULL, false));
        cl_kernel kb;
        int st = cnn_cl_kernel(&cl, "eltwise.cl", "-DACT=1", "kernel_act_f32", &kb);
        CHECK(st == CNN_ERR_DEVICE, "broken kernel returned %d", st);
        CHECK(strstr(cnn_error_message(), "clBuildProgram") && strstr(cnn_error_message(), "CL_BUILD_PROGRAM_FAILURE") &&
              strstr(cnn_error_message(), "eltwise.cl") && strstr(cnn_error_message(), "-DACT=1"),
              "message: %s", cnn_error_message());
        cnn_cl_free(&cl);
        unsetenv("CNNVIZ_KERNEL_DIR");
        unlink(kpath);
        rmdir(kdir);
        free(kpath);
        free(kdir);
    }

    /* Error names come from the constants. */
    CHECK(strcmp(cnn_cl_error_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES") == 0, "name");
    CHECK(strcmp(cnn_cl_error_name(-9999), "CL_UNKNOWN_ERROR(-9999)") == 0, "unknown name");
    remove_dir(cache);
    free(cache);
    return test_summary("test_runtime");
}
