#define _POSIX_C_SOURCE 200809L
/* The C API as a user sees it: only <cnnviz.h>, linked with libcnnviz.so.
 * Opens the shipped Fashion-MNIST model, runs images and tensors, reads
 * outputs, activations, parameters and gradient maps, renders one, and
 * checks the errors of bad calls; two threads share one model and a second
 * model runs beside it.  Run under ASan+UBSan in CI and under valgrind by
 * test/valgrind.
 *   test_capi SOURCE_DIR */
#include <cnnviz.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " [last error: %s]\n", cnnviz_last_error());       \
        }                                                                      \
    } while (0)

#define OK(call) CHECK((call) == CNNVIZ_OK, "%s", #call)

static char cfg[4096], img0[4096], img1[4096];

static float *alloc_f(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Errors: each a status and a message that names what was wrong. */
static void test_errors(cnnviz_model *m)
{
    cnnviz_model *bad = (cnnviz_model *)1;
    CHECK(cnnviz_open("/nonexistent/model.yaml", NULL, &bad) == CNNVIZ_ERR_INPUT && bad == NULL, "missing file");
    CHECK(strstr(cnnviz_last_error(), "/nonexistent/model.yaml") != NULL, "message names the file");
    CHECK(cnnviz_find_layer(m, "nope") == CNNVIZ_ERR_USAGE && strstr(cnnviz_last_error(), "'nope'"),
          "unknown layer");
    float x[10];
    int64_t shape[4];
    CHECK(cnnviz_output(m, x, 10) == CNNVIZ_ERR_USAGE && strstr(cnnviz_last_error(), "run a batch first"),
          "output before a run");
    CHECK(cnnviz_attribute(m, "saliency", NULL, NULL, NULL, NULL, 0, shape) == CNNVIZ_ERR_USAGE,
          "attribute before a run");
    const char *files[] = {img0};
    OK(cnnviz_run_files(m, files, 1));
    CHECK(cnnviz_output(m, x, 9) == CNNVIZ_ERR_USAGE && strstr(cnnviz_last_error(), "9 floats"), "buffer too small");
    CHECK(cnnviz_attribute(m, "nosuch", NULL, NULL, NULL, NULL, 0, shape) == CNNVIZ_ERR_USAGE &&
              strstr(cnnviz_last_error(), "gradcam"),
          "unknown method lists the known ones");
    int t = 10;
    CHECK(cnnviz_attribute(m, "saliency", NULL, &t, NULL, NULL, 0, shape) == CNNVIZ_ERR_USAGE, "target out of range");
    CHECK(cnnviz_attribute(m, "gradcam", "fc2", NULL, NULL, NULL, 0, shape) == CNNVIZ_ERR_USAGE &&
              strstr(cnnviz_last_error(), "fc2"),
          "gradcam of a flat layer");
    CHECK(cnnviz_attribute(m, "saliency", "conv4", NULL, NULL, NULL, 0, shape) == CNNVIZ_ERR_USAGE,
          "saliency given a layer");
    CHECK(cnnviz_attribute(m, "gradcam", NULL, NULL, NULL, NULL, 0, shape) < 0, "gradcam needs a layer");
    CHECK(cnnviz_run_files(m, files, 2) == CNNVIZ_ERR_USAGE && strstr(cnnviz_last_error(), "max_batch"),
          "more inputs than max_batch");
    const char *missing[] = {"/nonexistent.png"};
    int st = cnnviz_run_files(m, missing, 1);
    CHECK(st == CNNVIZ_ERR_INPUT && cnnviz_batch_size(m) == 0, "missing image: status %d", st);
    CHECK(cnnviz_parameter(m, "relu1", "weight", NULL, 0, shape, NULL) == CNNVIZ_ERR_USAGE, "no weight");
    cnnviz_open_opts o = {0};
    CHECK(cnnviz_open(cfg, &o, &bad) == CNNVIZ_ERR_USAGE && strstr(cnnviz_last_error(), "cnnviz_open_opts_init"),
          "uninitialised options");
    OK(cnnviz_run_files(m, files, 1));
    CHECK(cnnviz_last_error()[0] == '\0', "success clears the message");
}

/* Runs, outputs, activations, parameters: consistent with each other. */
static void test_forward(cnnviz_model *m)
{
    int c = 0, h = 0, w = 0;
    OK(cnnviz_input_shape(m, &c, &h, &w));
    CHECK(c == 1 && h == 28 && w == 28, "input [%d, %d, %d]", c, h, w);
    CHECK(cnnviz_num_classes(m) == 10, "classes %d", cnnviz_num_classes(m));
    CHECK(cnnviz_num_layers(m) == 19, "layers %d", cnnviz_num_layers(m));
    cnnviz_layer_info li;
    OK(cnnviz_layer(m, cnnviz_find_layer(m, "conv2"), &li));
    CHECK(!strcmp(li.name, "conv2") && !strcmp(li.op, "conv2d") && li.c == 32 && li.h == 28 && li.params == 9248,
          "conv2 info");
    CHECK(cnnviz_class_label(m, 0) && !strcmp(cnnviz_class_label(m, 0), "T-shirt/top"), "label 0");

    const char *files[] = {img0, img1};
    OK(cnnviz_run_files(m, files, 2));
    CHECK(cnnviz_batch_size(m) == 2, "batch %d", cnnviz_batch_size(m));
    float out[20], out2[20];
    OK(cnnviz_output(m, out, 20));
    for (int i = 0; i < 20; i++) CHECK(isfinite(out[i]), "output %d finite", i);
    CHECK(argmax(out, 10) == 0 && argmax(out + 10, 10) == 1, "classes %d %d (files 0_tshirt, 1_trouser)",
          argmax(out, 10), argmax(out + 10, 10));
    /* the preprocessed input back as a tensor: the same output, bit for bit */
    int64_t shape[4];
    OK(cnnviz_activations(m, "input", NULL, 0, shape));
    CHECK(shape[0] == 2 && shape[1] == 1 && shape[2] == 28 && shape[3] == 28, "input shape");
    float *x = alloc_f(2 * 784);
    OK(cnnviz_activations(m, "input", x, 2 * 784, shape));
    float *a = alloc_f(2 * 32 * 784), *a2 = alloc_f(2 * 32 * 784);
    OK(cnnviz_activations(m, "relu2", a, 2 * 32 * 784, shape));
    CHECK(shape[1] == 32 && shape[2] == 28, "relu2 shape");
    OK(cnnviz_run_tensor(m, x, 2));
    OK(cnnviz_output(m, out2, 20));
    CHECK(!memcmp(out, out2, sizeof out), "tensor run equals the image run");
    OK(cnnviz_activations(m, "relu2", a2, 2 * 32 * 784, shape));
    CHECK(!memcmp(a, a2, 2 * 32 * 784 * sizeof(float)), "activations equal");
    float mn = INFINITY;
    for (int i = 0; i < 2 * 32 * 784; i++) mn = fminf(mn, a[i]);
    CHECK(mn >= 0, "relu2 >= 0 (min %g)", mn);
    /* gray 8-bit pixels: the same as the PNG file (decoded by the reader);
     * compared at batch 1 (a batch of another size may round differently) */
    const char *one[] = {img0};
    OK(cnnviz_run_files(m, one, 1));
    OK(cnnviz_output(m, out, 10));
    uint8_t px[784];
    for (int i = 0; i < 784; i++) {
        float v = x[i] * 0.3530f + 0.2860f; /* the pipeline's std and mean, scale 1/255 */
        px[i] = (uint8_t)lrintf(v * 255.0f);
    }
    const uint8_t *imgs[] = {px};
    int hh[] = {28}, ww[] = {28};
    OK(cnnviz_run_images(m, imgs, hh, ww, 1, 1));
    OK(cnnviz_output(m, out2, 10));
    CHECK(!memcmp(out, out2, 10 * sizeof(float)), "8-bit pixels give the file's output (%.9g vs %.9g)", out[0],
          out2[0]);
    /* parameters */
    int nd = 0;
    OK(cnnviz_parameter(m, "conv1", "weight", NULL, 0, shape, &nd));
    CHECK(nd == 4 && shape[0] == 32 && shape[1] == 1 && shape[2] == 3 && shape[3] == 3, "conv1 weight shape");
    float wt[288];
    OK(cnnviz_parameter(m, "conv1", "weight", wt, 288, shape, &nd));
    double norm = 0;
    for (int i = 0; i < 288; i++) norm += (double)wt[i] * wt[i];
    CHECK(norm > 0 && isfinite(norm), "conv1 weights");
    OK(cnnviz_parameter(m, "fc2", "weight", NULL, 0, shape, &nd));
    CHECK(nd == 2 && shape[0] == 10 && shape[1] == 128, "fc2 weight shape");
    free(x);
    free(a);
    free(a2);
}

/* Gradient maps: shapes, one against a finite difference, rendering. */
static void test_maps(cnnviz_model *m)
{
    const char *files[] = {img0};
    OK(cnnviz_run_files(m, files, 1));
    int64_t shape[3];
    float sal[784], gxi[784], x[784];
    OK(cnnviz_attribute(m, "saliency", NULL, NULL, NULL, sal, 784, shape));
    CHECK(shape[0] == 1 && shape[1] == 28 && shape[2] == 28, "saliency shape");
    OK(cnnviz_attribute(m, "gradcam", "relu4", NULL, NULL, NULL, 0, shape));
    CHECK(shape[1] == 14 && shape[2] == 14, "gradcam at relu4's size, got %lld x %lld", (long long)shape[1],
          (long long)shape[2]);
    float cam[784];
    cnnviz_attr_opts ao;
    cnnviz_attr_opts_init(&ao);
    ao.upsample = 1;
    OK(cnnviz_attribute(m, "gradcam", "relu4", NULL, &ao, cam, 784, shape));
    CHECK(shape[1] == 28, "upsampled gradcam");
    /* gradient x input of the top class: a finite difference along x
     * itself (score(x) - score(0.99 x)) ~ 0.01 * sum(x * grad) */
    OK(cnnviz_attribute(m, "gradxinput", NULL, NULL, NULL, gxi, 784, shape));
    int64_t ishape[4];
    OK(cnnviz_activations(m, "input", x, 784, ishape));
    float out[10], out2[10];
    OK(cnnviz_output(m, out, 10));
    int top = argmax(out, 10);
    double dot = 0;
    for (int i = 0; i < 784; i++) dot += gxi[i];
    for (int i = 0; i < 784; i++) x[i] *= 0.999f;
    OK(cnnviz_run_tensor(m, x, 1));
    OK(cnnviz_output(m, out2, 10));
    double fd = (double)out[top] - out2[top];
    CHECK(fabs(fd - 0.001 * dot) <= 0.05 * fabs(0.001 * dot) + 1e-5, "finite difference %g vs gradient %g", fd,
          0.001 * dot);
    /* own-pass methods leave the batch as it was */
    OK(cnnviz_run_files(m, files, 1));
    float a[784 * 32], a2[784 * 32];
    int64_t as[4];
    OK(cnnviz_activations(m, "relu1", a, 784 * 32, as));
    float sg[784];
    ao.upsample = 0;
    ao.samples = 4;
    OK(cnnviz_attribute(m, "smoothgrad", "input", NULL, &ao, sg, 784, shape));
    OK(cnnviz_activations(m, "relu1", a2, 784 * 32, as));
    CHECK(!memcmp(a, a2, sizeof a), "activations after smoothgrad");
    OK(cnnviz_attribute(m, "occlusion", NULL, NULL, NULL, sg, 784, shape));
    /* rendering */
    uint8_t *rgba = malloc(784 * 4);
    OK(cnnviz_render(m, sal, 28, 28, "viridis", "minmax", -1, 0, rgba));
    int opaque = 1, distinct = 0;
    for (int i = 0; i < 784; i++) {
        opaque &= rgba[4 * i + 3] == 255;
        distinct |= memcmp(rgba, rgba + 4 * i, 3) != 0;
    }
    CHECK(opaque && distinct, "rendered map");
    OK(cnnviz_render(m, cam, 28, 28, NULL, NULL, 0, 0.5f, rgba));
    CHECK(cnnviz_render(m, sal, 14, 14, NULL, NULL, 0, 0.5f, rgba) == CNNVIZ_ERR_USAGE, "overlay size");
    CHECK(cnnviz_render(m, sal, 28, 28, "nocolor", NULL, -1, 0, rgba) == CNNVIZ_ERR_USAGE, "unknown colormap");
    free(rgba);
}

typedef struct worker {
    cnnviz_model *m;
    const float *want;
    int bad;
} worker;

static pthread_mutex_t pair_lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg)
{
    worker *w = arg;
    const char *files[] = {img1};
    for (int r = 0; r < 20; r++) {
        float out[10];
        /* a run and its read together, as the header asks of sharing threads */
        pthread_mutex_lock(&pair_lock);
        int st = cnnviz_run_files(w->m, files, 1);
        if (st == CNNVIZ_OK) st = cnnviz_output(w->m, out, 10);
        pthread_mutex_unlock(&pair_lock);
        if (st != CNNVIZ_OK || memcmp(out, w->want, sizeof out)) w->bad++;
        /* metadata needs no lock */
        if (cnnviz_num_classes(w->m) != 10) w->bad++;
    }
    return NULL;
}

static void test_sharing(cnnviz_model *m)
{
    cnnviz_model *m2 = NULL;
    OK(cnnviz_open(cfg, NULL, &m2));
    if (!m2) return;
    const char *files[] = {img1};
    float want[10], got[10];
    OK(cnnviz_run_files(m, files, 1));
    OK(cnnviz_output(m, want, 10));
    OK(cnnviz_run_files(m2, files, 1));
    OK(cnnviz_output(m2, got, 10));
    CHECK(!memcmp(want, got, sizeof want), "a second model gives the same output");
    worker w[3] = {{m, want, 0}, {m, want, 0}, {m2, want, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, work, &w[i]);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) CHECK(w[i].bad == 0, "thread %d: %d bad results", i, w[i].bad);
    cnnviz_close(m2);
}

/* The library leaves the host's signals alone, and a weights file
 * rewritten after the open cannot fault the process: it was read, not
 * mapped. */
static void test_host_process(void)
{
    struct sigaction before, after;
    sigaction(SIGBUS, NULL, &before);
    char wcopy[4200], src[4200];
    snprintf(wcopy, sizeof wcopy, "%s/test_capi.%ld.safetensors", getenv("CNNVIZ_TEST_TMP") ? getenv("CNNVIZ_TEST_TMP")
                                                                                               : "/tmp",
             (long)getpid());
    snprintf(src, sizeof src, "%.4000s", cfg);
    char *slash = strrchr(src, '/');
    snprintf(slash ? slash + 1 : src, 200, "../samples/fashion_mnist/fashion_mnist.safetensors");
    FILE *in = fopen(src, "rb"), *out = fopen(wcopy, "wb");
    CHECK(in && out, "copy of the weights (%s)", src);
    if (!in || !out) {
        if (in) fclose(in);
        if (out) fclose(out);
        return;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    cnnviz_open_opts o;
    cnnviz_open_opts_init(&o);
    o.weights = wcopy;
    cnnviz_model *m = NULL;
    OK(cnnviz_open(cfg, &o, &m));
    sigaction(SIGBUS, NULL, &after);
    CHECK(after.sa_handler == before.sa_handler, "SIGBUS handler changed by the library");
    CHECK(truncate(wcopy, 100) == 0, "truncate");
    if (m) {
        float w[288];
        int64_t shape[4];
        int nd;
        OK(cnnviz_parameter(m, "conv1", "weight", w, 288, shape, &nd));
        const char *files[] = {img0};
        OK(cnnviz_run_files(m, files, 1));
    }
    cnnviz_close(m);
    unlink(wcopy);
}

static void log_line(void *user, int level, const char *line)
{
    (void)level;
    (void)line;
    ++*(int *)user;
}

int main(int argc, char **argv)
{
    const char *src = argc > 1 ? argv[1] : getenv("CNNVIZ_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "usage: test_capi SOURCE_DIR\n");
        return 2;
    }
    snprintf(cfg, sizeof cfg, "%s/configs/fashion_mnist.yaml", src);
    snprintf(img0, sizeof img0, "%s/samples/fashion_mnist/images/0_tshirt.png", src);
    snprintf(img1, sizeof img1, "%s/samples/fashion_mnist/images/1_trouser.png", src);
    CHECK(!strcmp(cnnviz_version(), CNNVIZ_VERSION_STRING), "library %s, header %s", cnnviz_version(),
          CNNVIZ_VERSION_STRING);
    char devs[4096];
    CHECK(cnnviz_devices(devs, sizeof devs) > 0 && strstr(devs, "device"), "devices");
    cnnviz_open_opts o;
    cnnviz_open_opts_init(&o);
    o.max_batch = 2;
    int lines = 0;
    o.log = log_line;
    o.log_user = &lines;
    cnnviz_model *m = NULL;
    OK(cnnviz_open(cfg, &o, &m));
    if (!m) return 1;
    CHECK(cnnviz_max_batch(m) == 2 && cnnviz_device_name(m) && !strcmp(cnnviz_model_name(m), "fashion_mnist"),
          "model facts");
    test_forward(m);
    test_maps(m);
    cnnviz_close(m);
    o.max_batch = 1;
    OK(cnnviz_open(cfg, &o, &m));
    if (!m) return 1;
    test_errors(m);
    test_sharing(m);
    test_host_process();
    cnnviz_close(m);
    cnnviz_close(NULL);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("test_capi: all checks passed\n");
    return failures ? 1 : 0;
}
