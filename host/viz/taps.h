/* Taps turned into files: a tap's normalisation settings resolved from the
 * pipeline (defaults per kind), and the renderers that run the device ops of
 * viz/vizops.h on a tensor and hand the 8-bit pixels to the PNG pool:
 *
 *   activations  <stem>/<layer>/activations.png      montage (role "montage")
 *                <stem>/<layer>/activations/c017.png one per channel ("channel")
 *   filters      model/<layer>/filters.png           grid, rows = filters
 *                model/<layer>/filters/f017.png      one per filter ("filter")
 *   weights      model/<layer>/weights.png           [out, in] matrix ("matrix")
 *                model/<layer>/units/u017.png        unit weights as [C,H,W] ("unit")
 *   input        <stem>/input.png                    the image as the network sees it
 *   examples     model/<layer>/examples.png          rows = channels, their top inputs' crops
 *                model/<layer>/examples/c017.png     one channel's crops ("channel")
 *                model/<layer>/examples.json         values, inputs, positions and boxes
 *   maximize     model/<layer>/maximize.png          the optimised images, one tile per channel
 *                model/<layer>/maximize/c017.png     one channel's ("channel")
 *                model/<layer>/maximize.json         objective values and their curves
 *   dream        <stem>/<layer>/dream.png            the input dreamt towards the layer
 *                <stem>/<layer>/dream.json           objective, octaves, shifts, curve
 *
 * Input-independent files live under model/ (an input stem can never be
 * "model": the run reserves it), so a layer and an input with the same name
 * cannot collide. */
#ifndef CNN_VIZ_TAPS_H
#define CNN_VIZ_TAPS_H

#include <stdbool.h>
#include "config/config.h"
#include "io/manifest.h"
#include "io/pngpool.h"
#include "model/graph.h"
#include "viz/vizops.h"

typedef enum cnn_tap_kind {
    CNN_TAP_ACTIVATIONS,
    CNN_TAP_FILTERS,
    CNN_TAP_WEIGHTS,
    CNN_TAP_GRADIENT,
    CNN_TAP_EXAMPLES, /* the run's inputs that excite each channel most (pipeline/examples.c) */
    CNN_TAP_MAXIMIZE, /* an image made to excite each channel (pipeline/maximize.c) */
    CNN_TAP_DREAM     /* each input changed to excite the layer more (pipeline/dream.c) */
} cnn_tap_kind;

/* Gradient methods (tap kinds of the same names). */
typedef enum cnn_gmethod {
    CNN_GM_SALIENCY,       /* max_c |d score / d input| */
    CNN_GM_GUIDED,         /* same through guided backprop */
    CNN_GM_DECONVNET,      /* same through the deconvnet rule */
    CNN_GM_SMOOTHGRAD,     /* mean saliency of `samples` noisy copies */
    CNN_GM_INTEGRATED,     /* sum_c (x - x') * mean gradient on the path */
    CNN_GM_GRADXINPUT,     /* sum_c x * d score / d x */
    CNN_GM_GRADCAM,
    CNN_GM_GRADCAMPP,
    CNN_GM_LAYERCAM,
    CNN_GM_GUIDED_GRADCAM, /* guided saliency * upsampled Grad-CAM */
    CNN_GM_OCCLUSION,      /* score drop when a window is covered (forward passes only) */
    CNN_GM_XGRADCAM,       /* CAM, w_k = sum g A / sum A */
    CNN_GM_HIRESCAM,       /* relu(sum_k g_k A_k) element-wise */
    CNN_GM_SCORECAM,       /* CAM, w = softmax over channels of the masked inputs' scores */
    CNN_GM_ABLATIONCAM,    /* CAM, w_k = (y - y with channel k zeroed) / y */
    CNN_GM_EIGENCAM,       /* first principal component of the activations */
    CNN_GM_FULLGRAD,       /* |x g| and every conv / batch-norm |bias g|, normalised, summed */
    CNN_GM_RISE,           /* mean of random masks weighted by the masked inputs' scores */
    CNN_GM_LIME,           /* weighted ridge coefficients of superpixels switched on and off */
    CNN_GM_KERNELSHAP,     /* Shapley values of superpixels by the Shapley kernel */
    CNN_GM_COUNT
} cnn_gmethod;
extern const char *const cnn_gmethod_names[]; /* "saliency", ... */
/* Methods that explain a conv or pool layer (layer: name). */
static inline bool cnn_gm_is_cam(cnn_gmethod m)
{
    return m == CNN_GM_GRADCAM || m == CNN_GM_GRADCAMPP || m == CNN_GM_LAYERCAM || m == CNN_GM_GUIDED_GRADCAM ||
           m == CNN_GM_XGRADCAM || m == CNN_GM_HIRESCAM || m == CNN_GM_SCORECAM || m == CNN_GM_ABLATIONCAM ||
           m == CNN_GM_EIGENCAM;
}
/* SmoothGrad's reductions of the copies' input gradients g_k [C, H, W]:
 * PAPER     max_c |mean_k g_k|      (Smilkov et al. 2017: average, then reduce)
 * PER_COPY  mean_k max_c |g_k|      (each copy's saliency, averaged)
 * MAGNITUDE max_c mean_k g_k^2      (the paper's squared variant) */
typedef enum cnn_sg_reduce { CNN_SG_PAPER, CNN_SG_PER_COPY, CNN_SG_MAGNITUDE } cnn_sg_reduce;
extern const char *const cnn_sg_reduce_names[]; /* "paper", "per-copy", "magnitude" */

typedef enum cnn_scope { CNN_SCOPE_CHANNEL, CNN_SCOPE_LAYER, CNN_SCOPE_GLOBAL, CNN_SCOPE_FIXED } cnn_scope;

extern const char *const cnn_scope_names[]; /* "per-channel", ... */

typedef struct cnn_vtap {
    int layer;               /* CNN_GRAPH_INPUT for input-gradient methods */
    const char *layer_name;
    const char *kind_name;   /* as asked: "activations", "gradcam", ... */
    cnn_tap_kind kind;
    char dir[128];           /* sanitised, unique output folder of the layer */
    cnn_scope scope;
    bool is_signed, clip;
    float clip_lo, clip_hi;  /* percentiles */
    float fixed[2];
    cnn_cmap cmap;
    int columns, max_channels, units;

    /* gradient maps */
    cnn_gmethod method;
    int cls_fixed;           /* >= 0: this class for every input */
    int topk;                /* else: the input's top-k classes, one map each */
    bool prob;               /* score = softmax probability (else the logit) */
    float alpha;             /* overlay */
    int samples;             /* smoothgrad copies / integrated steps */
    float sigma;             /* smoothgrad noise, fraction of (max - min) of the input */
    cnn_sg_reduce reduce;    /* smoothgrad: how copies and channels are reduced */
    bool base_zero;          /* integrated/occlusion baseline: 0 in network units */
    bool base_blur;          /* ... or the input blurred (cnn_gm_blur_sigma) */
    float base_pixel;        /* ... else this pixel value (0: black) */
    int window, stride;      /* occlusion window side and step, pixels */
    int chans;               /* the layer's channels (CAM methods; 0 for the input) */
    int n_fuse;              /* > 0: one map fused over these layers (`layers:`; layer = fuse[0]) */
    int fuse[CNN_MAX_FUSE];
    int cells;               /* rise: grid side */
    float keep;              /* rise: probability a cell is kept */
    int segments;            /* lime / kernelshap: SLIC superpixels wanted */
    float kernel_width;      /* lime: the exponential kernel's width on cosine distance */
    int curves;              /* deletion/insertion curve steps per map; 0: none */
    int n_road;              /* ROAD percentiles per map (viz/road.h); 0: none */
    float road[CNN_MAX_ROAD];
    float road_noise;        /* ROAD imputation noise, network units */
    int entry;               /* manifest index of the last map's PNG */

    /* examples and maximize: n_sel channels, sel[i] (borrowed from the
     * pipeline) or, when sel is NULL, channels 0 .. n_sel - 1 */
    const int *sel;
    int n_sel;
    int ch0;                 /* without sel: channels ch0 .. ch0 + n_sel - 1 (maximize's class: one) */
    /* examples: the top_k inputs per channel by the channel's max (or
     * mean, by_mean) over positions */
    int top_k;
    bool by_mean;
    struct cnn_examples *ex; /* their running lists (pipeline/examples.c) */
    /* maximize (pipeline/maximize.c) */
    int steps;
    float lr, tv, l2, blur_sigma;
    int blur_every;
    bool fourier, decorrelate, transforms, neuron, start_mean;
    bool colour_inputs;      /* decorrelate: inputs */
    int sign;
    int diversity;           /* images per channel (1: one) */
    float div_weight;        /* weight of their Gram similarity */
    uint32_t seed;
    int img_h, img_w;        /* the image (`size:`; the network's input by default) */
    bool own_net;            /* ... differs from the network's input: the tap builds the layers up to its
                              * own at that size (pipeline/maximize.c) */
    /* dream (pipeline/dream.c): ascent on 0.5 mean(A^2) of the layer (of
     * the n_sel channels sel when sel is set) over `octaves` scales */
    int octaves, jitter;
    float octave_scale;
    cl_mem cam;              /* guided-gradcam: the upsampled cams of the batch */

    /* activations: n_maps maps of h x w per input (flat layers: c maps of 1x1) */
    int n_maps, h, w;
    bool flat;
    int ncomp;
    cnn_montage mg;
    cl_mem stats, ranges, bounds, hist, tiles, mont; /* gradient taps: one map's, mont = overlay */
    float *host_stats, *host_ranges;
    /* global scope, gathered over every input before the rendering pass */
    double gmin, gmax;
    bool g_any;
    float grange[2];
    bool warned_nonfinite;
} cnn_vtap;

static inline int cnn_vtap_channel(const cnn_vtap *t, int i) { return t->sel ? t->sel[i] : t->ch0 + i; }

typedef struct cnn_vctx {
    cnn_cl *cl;               /* borrowed */
    const cnn_graph *g;       /* borrowed */
    cnn_viz viz;
    cnn_png_pool *pool;       /* borrowed */
    cnn_manifest *manifest;   /* borrowed */
    const char *out_dir;
    bool quiet;
    char *last_dir;           /* the folder the last file went to (made) */
    char **notes;             /* run-wide remarks for the report */
    int n_notes;
    char *const *labels;      /* borrowed class names (gradient maps' manifest label), or NULL */
    int n_labels;
} cnn_vctx;

/* Resolves kind, scope, range, clip, colormap and caps of `spec` (NULL: the
 * kind's defaults, for --tap) for layer `layer`; checks that the kind fits
 * the layer (filters: conv2d; weights: linear; units: a linear layer fed by
 * a flatten of [C, H, W]).  Errors name `where` ("file:line:col" or
 * "--tap X") and exit 2. */
int cnn_vtap_configure(cnn_vtap *t, const cnn_graph *g, int layer, const char *kind, const cnn_tap_spec *spec,
                       const char *where, char *const *labels, int n_labels);

int cnn_vctx_init(cnn_vctx *v, cnn_cl *cl, const cnn_graph *g, cnn_png_pool *pool, cnn_manifest *m,
                  const char *out_dir, bool quiet);
void cnn_vctx_free(cnn_vctx *v);
int cnn_vctx_note(cnn_vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Device buffers of an activations tap. */
int cnn_vtap_prepare(cnn_vctx *v, cnn_vtap *t);
void cnn_vtap_release(cnn_vtap *t);

/* Global scope, pass 1: widen [gmin, gmax] with one input's tensor at
 * src + off (blocks to read the small stats). */
int cnn_vtap_global_minmax(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off);
/* Pass 2 (clip only): add one input to the histogram over [gmin, gmax]. */
int cnn_vtap_global_hist(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off, bool first);
/* Fixes grange from the passes (reads the percentile range when clipping). */
int cnn_vtap_global_finish(cnn_vctx *v, cnn_vtap *t);
/* Global scope from statistics gathered elsewhere (run --ranges FILE):
 * the ends of the values and, for clip, the CNN_VIZ_BINS counts of their
 * histogram over [(float)gmin, (float)gmax], as pass 2 counts them. */
int cnn_vtap_global_set(cnn_vctx *v, cnn_vtap *t, double gmin, double gmax, bool any, const uint32_t *hist);
/* The histogram pass 2 gathered (CNN_VIZ_BINS counts). */
int cnn_vtap_global_read_hist(cnn_vctx *v, cnn_vtap *t, uint32_t *hist);
/* True when the tap needs a second gathering pass (global + clip). */
static inline bool cnn_vtap_needs_hist(const cnn_vtap *t) { return t->scope == CNN_SCOPE_GLOBAL && t->clip; }

/* Activations of one input (tensor at src + off) to PNGs and manifest
 * entries under <stem>/<dir>/. */
int cnn_vtap_activations(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off, const char *input, const char *stem);

/* Filters / weights: once per run, from the layer's float weights. */
int cnn_vtap_filters(cnn_vctx *v, cnn_vtap *t);
int cnn_vtap_weights(cnn_vctx *v, cnn_vtap *t);

/* One attribution map of h x w floats at src + off (device): written as
 * <stem>/<name>_c<cls>.png through the tap's colormap and range rules, as
 * <name>_c<cls>_overlay.png blended on the input image img8 (h x w x c_img
 * bytes on the device), and as .npy when `npy` (raw: raw_h x raw_w floats at
 * raw + raw_off; the map before upsampling for CAMs).  t->entry becomes the
 * PNG's manifest index (curves are attached to it later). */
int cnn_vtap_map(cnn_vctx *v, cnn_vtap *t, cl_mem src, size_t off, int h, int w, cl_mem img8, int c_img, int cls,
                 const char *input, const char *stem, bool npy, cl_mem raw, size_t raw_off, int raw_h, int raw_w,
                 const char *note);

/* Queues an 8-bit PNG of w x h x c bytes at data(buf) + off as `rel`
 * (under the output folder, its folder made) and lists it with e's
 * fields (path, format and shape are set here). */
int cnn_vctx_emit(cnn_vctx *v, const char *rel, cnn_png_buf *buf, size_t off, int w, int h, int c,
                  cnn_manifest_entry *e);

/* The input image as 8 bits on the device (for overlays). */
int cnn_vctx_input_u8(cnn_vctx *v, const cnn_input_spec *in, cl_mem src, size_t off, cl_mem dst, const char *input);

/* <stem>/input.png from the network input at src + off. */
int cnn_vctx_input_image(cnn_vctx *v, const cnn_input_spec *in, cl_mem src, size_t off, const char *input,
                         const char *stem);

/* Renders one h x w map (floats at src + off) for a caller that wants the
 * pixels, not a file: normalised over the map (min-max, symmetric around 0
 * when is_signed, the 0.5 and 99.5 percentiles when clip), coloured by
 * cmap, into out: h * w * 3 bytes (1 for CNN_CMAP_GRAY), or blended over
 * img8 (the input as 8-bit, c_img channels, same size) with the map's
 * weight alpha into h * w * 3 bytes.  Blocks until out is filled. */
int cnn_vctx_render_map(cnn_vctx *v, cl_mem src, size_t off, int h, int w, cnn_cmap cmap, bool is_signed, bool clip,
                        cl_mem img8, int c_img, float alpha, uint8_t *out);

#endif
