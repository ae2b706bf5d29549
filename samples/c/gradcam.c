/* The library in a few lines: open a model, run one image, print its top
 * class and where Grad-CAM puts that class, and render the map over the
 * image as a PPM file.
 *   cc gradcam.c $(pkg-config --cflags --libs cnnviz) -o gradcam
 *   ./gradcam configs/fashion_mnist.yaml samples/fashion_mnist/images/0_tshirt.png relu4 cam.ppm */
#include <cnnviz.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "gradcam: %s: %s\n", what, cnnviz_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: gradcam MODEL IMAGE LAYER OUT.ppm\n");
        return 2;
    }
    cnnviz_model *m = NULL;
    if (cnnviz_open(argv[1], NULL, &m) != CNNVIZ_OK) return fail("open");
    int status = 1;
    int n = cnnviz_num_classes(m), c, h, w;
    float *out = malloc((size_t)n * sizeof *out), *map = NULL;
    unsigned char *rgba = NULL;
    const char *files[] = {argv[2]};
    if (!out || cnnviz_run_files(m, files, 1) != CNNVIZ_OK || cnnviz_output(m, out, (size_t)n) != CNNVIZ_OK) {
        fail("run");
        goto done;
    }
    int top = 0;
    for (int i = 1; i < n; i++)
        if (out[i] > out[top]) top = i;
    const char *label = cnnviz_class_label(m, top);
    printf("class %d (%s), score %.4f\n", top, label ? label : "-", out[top]);

    /* Grad-CAM of that class at LAYER, upsampled to the input for the overlay */
    cnnviz_attr_opts opts;
    cnnviz_attr_opts_init(&opts);
    opts.upsample = 1;
    cnnviz_input_shape(m, &c, &h, &w);
    map = malloc((size_t)h * w * sizeof *map);
    rgba = malloc((size_t)h * w * 4);
    int64_t shape[3];
    if (!map || !rgba || cnnviz_attribute(m, "gradcam", argv[3], &top, &opts, map, (size_t)h * w, shape) != CNNVIZ_OK) {
        fail("gradcam");
        goto done;
    }
    int peak = 0;
    for (int i = 1; i < h * w; i++)
        if (map[i] > map[peak]) peak = i;
    printf("Grad-CAM at %s peaks at row %d, column %d\n", argv[3], peak / w, peak % w);
    if (cnnviz_render(m, map, h, w, "turbo", "minmax", 0, 0.5f, rgba) != CNNVIZ_OK) {
        fail("render");
        goto done;
    }
    FILE *f = fopen(argv[4], "wb");
    if (!f) {
        perror(argv[4]);
        goto done;
    }
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    for (int i = 0; i < h * w; i++) fwrite(rgba + 4 * i, 1, 3, f);
    status = fclose(f) == 0 ? 0 : 1;
done:
    free(out);
    free(map);
    free(rgba);
    cnnviz_close(m);
    return status;
}
