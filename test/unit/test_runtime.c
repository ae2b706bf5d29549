/* The OpenCL runtime on whatever device the environment selects (PoCL in CI):
 * device choice, an embedded kernel run against C, the program cache. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "core/util.h"
#include "runtime/clrt.h"
#include "runtime/kernels.h"

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

/* One kernel per program: the scan keeps helpers, macros and comments and
 * blanks the other kernels, braces in comments and nested blocks included;
 * anything it does not understand leaves the source whole. */
#define KEEP_TEST_MAX 64

static void test_keep_kernel(void)
{
    const char *src =
        "#define ACT 1 /* { */\n"
        "float helper(float x) { return x > 0 ? x : 0; }\n"
        "__kernel void kernel_a(__global float *x) // {\n"
        "{\n"
        "    if (x[0] > 0) { x[0] = helper(x[0]); } /* } */\n"
        "}\n"
        "__kernel __attribute__((reqd_work_group_size(64, 1, 1)))\n"
        "void kernel_b(__global float *x)\n"
        "{ for (int i = 0; i < 4; i++) { x[i] = 0; } }\n"
        "__kernel void kernel_c(__global float *x) { x[1] = 2; }\n"
        "// __kernel void kernel_a in a comment is not a kernel\n";
    size_t len = strlen(src);
    char *buf = cnn_strdup(src);
    CHECK(cnn_cl_source_keep_kernel(buf, len, "kernel_b") == 2, "two kernels blanked");
    CHECK(strlen(buf) == len, "length kept");
    int lines = 0, src_lines = 0;
    for (size_t i = 0; i < len; i++) {
        lines += buf[i] == '\n';
        src_lines += src[i] == '\n';
    }
    CHECK(lines == src_lines, "line count kept (%d vs %d)", lines, src_lines);
    CHECK(strstr(buf, "kernel_a(") == NULL && strstr(buf, "kernel_c") == NULL, "others gone:\n%s", buf);
    CHECK(strstr(buf, "reqd_work_group_size(64, 1, 1)))\nvoid kernel_b(") != NULL &&
              strstr(buf, "{ for (int i = 0; i < 4; i++) { x[i] = 0; } }") != NULL,
          "kernel_b whole:\n%s", buf);
    CHECK(strstr(buf, "float helper(float x)") && strstr(buf, "#define ACT 1 /* { */") &&
              strstr(buf, "// __kernel void kernel_a in a comment"),
          "helpers, macros and comments stay:\n%s", buf);
    free(buf);

    buf = cnn_strdup(src);
    CHECK(cnn_cl_source_keep_kernel(buf, len, "kernel_a") == 2 && strstr(buf, "x[0] = helper(x[0]); } /* } */\n}") &&
              !strstr(buf, "kernel_b") && !strstr(buf, "x[1] = 2"),
          "keeping kernel_a:\n%s", buf);
    free(buf);

    /* Refusals leave the text alone. */
    const char *bad[] = {
        "__kernel void k(__global float *x) { x[0] = 1;\n",      /* unbalanced */
        "__kernel void k(__global float *x);\n",                  /* declaration only */
        "__kernel void k(__global float *x) { /* open comment }\n",
        "__kernel void other(__global float *x) { }\n",           /* keep not there */
        "__kernel void k(__global float *x) { }\n__kernel void k(__global float *y) { }\n", /* twice */
        "__kernel float k(__global float *x) { return x[0]; }\n",  /* no "void NAME" */
        "__kernel void k(__global float *x) { }\nvoid f(void) { }\n__kernel\n", /* ends after the keyword */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf = cnn_strdup(bad[i]);
        CHECK(cnn_cl_source_keep_kernel(buf, strlen(buf), "k") == -1 && strcmp(buf, bad[i]) == 0,
              "refused and untouched: %s", bad[i]);
        free(buf);
    }
    /* A file with that kernel alone: nothing to blank. */
    buf = cnn_strdup("__kernel void k(__global float *x) { x[0] = 1; }\n");
    CHECK(cnn_cl_source_keep_kernel(buf, strlen(buf), "k") == 0, "single kernel");
    free(buf);
}

/* Every shipped kernel file: each of its kernels can be kept alone. */
static void test_keep_shipped(void)
{
    int files = 0, kernels = 0;
    for (const cnn_kernel_file *f = cnn_kernel_files; f->name; f++, files++) {
        char names[KEEP_TEST_MAX][64];
        int n = 0;
        for (const char *p = f->data; (p = strstr(p, "__kernel")) != NULL; p += 8) {
            if (p != f->data && p[-1] != '\n') continue;
            const char *v = strstr(p, "void ");
            if (!v || n == KEEP_TEST_MAX) break;
            sscanf(v + 5, "%63[A-Za-z0-9_]", names[n++]);
        }
        for (int i = 0; i < n; i++, kernels++) {
            char *buf = cnn_strdup(f->data);
            int r = cnn_cl_source_keep_kernel(buf, f->len, names[i]);
            char sig[80];  /* "void " + a name of at most 63 + "(" */
            snprintf(sig, sizeof sig, "void %.63s(", names[i]);
            CHECK(r == n - 1 && strstr(buf, sig) != NULL, "cl/%s keeping %s: %d of %d blanked", f->name,
                  names[i], r, n - 1);
            free(buf);
        }
    }
    CHECK(files >= 8 && kernels >= 50, "only %d files, %d kernels seen", files, kernels);
}

int main(void)
{
    test_keep_kernel();
    test_keep_shipped();
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
    /* The same kernel again within one context: no second build at all. */
    cl_kernel k1, k2;
    CHECK_OK(cnn_cl_kernel(&cl, "eltwise.cl", "-DACT=1", "kernel_act_f32", &k1));
    CHECK(cl.cache_misses == 1 && cl.cache_hits == 0, "the same kernel rebuilt its program");
    /* Another kernel of the file: a program of its own. */
    CHECK_OK(cnn_cl_kernel(&cl, "eltwise.cl", "-DACT=1", "kernel_add_f32", &k2));
    CHECK(cl.cache_misses == 2 && cl.cache_writes == 2 && k2 != k1, "misses %d writes %d",
          cl.cache_misses, cl.cache_writes);
    cnn_cl_free(&cl);
    CHECK(count_files(cache) == 2, "cache folder has %d files", count_files(cache));

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
