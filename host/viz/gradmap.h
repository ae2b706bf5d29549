/* Device ops that turn gradients and activations into attribution maps
 * (cl/gradmap.cl).  Enqueue only; every OpenCL call checked; `what` names
 * the tap in messages.  Buffers are float32; "maps" are [n, plane] with
 * plane = h * w; tensors are [n, c, plane] (NCHW).  Element offsets (in
 * floats) let a caller address one image of a batch.
 * Every op checks its arguments (sizes > 0, each range within its buffer by
 * CL_MEM_SIZE, no output range partly overlapping an input range) and
 * returns CNN_ERR_INPUT naming `what` otherwise. */
#ifndef CNN_VIZ_GRADMAP_H
#define CNN_VIZ_GRADMAP_H

#include <stdbool.h>
#include <stdint.h>
#include "runtime/clrt.h"

/* out[b, p] = max_c |g[b, c, p]|  (saliency: one value per pixel); a NaN
 * among the channels gives NaN. */
int cnn_gm_chan_maxabs(cnn_cl *cl, cl_mem g, size_t g_off, int n, int c, int plane, cl_mem out, size_t out_off,
                       const char *what);

/* out[b, p] = sum_c g[b, c, p] * x[b, c, p]  (gradient x input). */
int cnn_gm_chan_dot(cnn_cl *cl, cl_mem g, size_t g_off, cl_mem x, size_t x_off, int n, int c, int plane,
                    cl_mem out, size_t out_off, const char *what);

typedef enum cnn_cam_kind {
    CNN_CAM_GRADCAM = 0,   /* w_k = mean_p g_k;                   cam = relu(sum_k w_k A_k) */
    CNN_CAM_GRADCAMPP = 1, /* w_k = sum_p alpha_kp relu(g_kp),
                              alpha = g^2 / (2 g^2 + (sum_p A_kp) g^3 + eps), 0 where g == 0
                              (or where the denominator is 0), eps = 1e-6 as in
                              pytorch-grad-cam's GradCAMPlusPlus;     cam = relu(sum_k w_k A_k) */
    CNN_CAM_LAYERCAM = 2,  /* cam = relu(sum_k relu(g_kp) A_kp) */
    CNN_CAM_XGRADCAM = 3,  /* w_k = sum_p g_kp A_kp / (sum_p A_kp + eps), eps = 1e-7 as in
                              pytorch-grad-cam's XGradCAM;          cam = relu(sum_k w_k A_k) */
    CNN_CAM_HIRESCAM = 4,  /* cam = relu(sum_k g_kp A_kp) */
    CNN_CAM_WEIGHTED = 5   /* the caller's w_k (Score-CAM, Ablation-CAM): cam = relu(sum_k w_k A_k);
                              g is not read and may be NULL */
} cnn_cam_kind;

/* Class activation map of images [0, n): a, g [n, c, plane] (the layer's
 * activations and the score's gradient with respect to them; element
 * offsets a_off, g_off) -> out [n, plane].  weights: scratch of n * c
 * floats (the w_k; left there for callers that report them; CNN_CAM_WEIGHTED
 * reads the caller's there).  LayerCAM and HiResCAM have no w_k: weights is
 * neither read nor written and may be NULL.  relu keeps
 * NaN (np.maximum).  Sums over the plane and over k run in a fixed order. */
int cnn_gm_cam(cnn_cl *cl, cnn_cam_kind kind, cl_mem a, size_t a_off, cl_mem g, size_t g_off, int n, int c,
               int plane, cl_mem weights, cl_mem out, size_t out_off, const char *what);

/* Bilinear resize of n maps [h, w] -> [H, W] with PyTorch's
 * F.interpolate(mode="bilinear", align_corners=False) rule (half-pixel
 * centres, source coordinates clamped at 0, no antialiasing). */
int cnn_gm_resize(cnn_cl *cl, cl_mem in, size_t in_off, int n, int h, int w, cl_mem out, size_t out_off, int H,
                  int W, const char *what);

/* Same, with align_corners = true when `corners` (torch.nn.UpsamplingBilinear2d:
 * source = dst * (in - 1) / (out - 1), which Score-CAM's masks use). */
int cnn_gm_resize_ex(cnn_cl *cl, cl_mem in, size_t in_off, int n, int h, int w, cl_mem out, size_t out_off, int H,
                     int W, bool corners, const char *what);

/* out[i] = a[i] * b[i] (n floats; out may be exactly a or b). */
int cnn_gm_mul(cnn_cl *cl, cl_mem a, size_t a_off, cl_mem b, size_t b_off, cl_mem out, size_t out_off, size_t n,
               const char *what);

/* dst[i] = dst[i] * keep + src[i] * scale (n floats): running sums and means.
 * keep == 0 does not read dst (a NaN there does not survive), as BLAS does
 * for beta == 0; scale and keep must be finite. */
int cnn_gm_axpby(cnn_cl *cl, cl_mem src, size_t src_off, float scale, cl_mem dst, size_t dst_off, float keep,
                 size_t n, const char *what);

/* SmoothGrad inputs: out[k] = x + sigma * N(0, 1) for copies k in [0, copies)
 * of one image x (len floats at x_off); out [copies, len] at out_off.  The
 * normal deviates come from a counter-based generator (a hash of seed, copy
 * index k0 + k and element index, Box-Muller), so results do not depend on
 * the device, the work-group size or how the copies are split into batches.
 * Generator: Philox2x32-10 of counter (element index, k0 + k) and key seed;
 * u = ((word >> 8) + 1) / 2^24 for each of its two words; z = sqrt(-2 ln u1)
 * cos(2 pi u2).  sigma must be finite and >= 0; len < 2^32. */
int cnn_gm_noise(cnn_cl *cl, cl_mem x, size_t x_off, size_t len, int copies, int k0, float sigma, uint32_t seed,
                 cl_mem out, size_t out_off, const char *what);

/* Integrated-gradients path points: out[k] = base + alpha_k * (x - base),
 * alpha_k = (k0 + k + 0.5) / steps (midpoint Riemann sum), for k in
 * [0, copies); x, base: len floats; out [copies, len].  Needs k0 >= 0 and
 * k0 + copies <= steps <= 2^24. */
int cnn_gm_path(cnn_cl *cl, cl_mem x, size_t x_off, cl_mem base, size_t base_off, size_t len, int copies, int k0,
                int steps, cl_mem out, size_t out_off, const char *what);

/* 8-bit overlay: out[p] = round((1 - alpha * m) * img[p] + alpha * m * heat[p])
 * per component, where m = 1 (plain alpha blend); img has c_img = 1 (gray,
 * replicated) or 3 components, heat and out are RGB; n_px pixels.  These
 * three are uint8 buffers (no offsets); the blend is float, rounded half up
 * (floor(v + 0.5)) and clamped to [0, 255]; alpha in [0, 1].  out may be heat,
 * or img when c_img == 3. */
int cnn_gm_overlay(cnn_cl *cl, cl_mem img, int c_img, cl_mem heat, size_t n_px, float alpha, cl_mem out,
                   const char *what);

/* out[i] = sum over the n_sum consecutive blocks of src (n_sum blocks of
 * len floats at src_off) of src[k * len + i], times scale: averages the
 * maps of a batch of copies.  The sum runs over k in order, is then scaled,
 * and with accumulate added to the old out (out = out + scale * sum); without
 * it out is not read.  out may be exactly block 0, no other part of src. */
int cnn_gm_sum_blocks(cnn_cl *cl, cl_mem src, size_t src_off, int n_sum, size_t len, float scale, cl_mem out,
                      size_t out_off, bool accumulate, const char *what);

/* ---- occlusion, blurred baselines, deletion / insertion curves ---- */

/* Window positions along an axis of `side` pixels: i * stride for i = 0, 1,
 * ... clamped to side - window, the last one flush with the edge (every
 * pixel covered).  window <= side, stride >= 1. */
static inline int cnn_gm_positions(int side, int window, int stride)
{
    return side <= window ? 1 : (side - window + stride - 1) / stride + 1;
}

/* Occlusion inputs: out[k] (copies of c x h x w floats at out_off) = x with
 * window w0 + k covered by base (x, base: c x h x w floats), windows
 * numbered row-major over cnn_gm_positions(h) x cnn_gm_positions(w). */
int cnn_gm_occlude(cnn_cl *cl, cl_mem x, size_t x_off, cl_mem base, size_t base_off, int c, int h, int w,
                   int window, int stride, int copies, int w0, cl_mem out, size_t out_off, const char *what);

/* Occlusion map: out[p] (h x w) = mean of d[window] over the windows that
 * cover pixel p (d: one value per window, row-major), summed in window
 * order. */
int cnn_gm_occlusion_map(cnn_cl *cl, cl_mem d, size_t d_off, int h, int w, int window, int stride, cl_mem out,
                         size_t out_off, const char *what);

/* Gaussian blur of c planes of h x w: separable, taps exp(-j^2 / 2 sigma^2)
 * for |j| <= ceil(3 sigma), normalised to sum 1, edge pixels repeated; rows
 * first into tmp (c * h * w floats, not x or out), then columns.  sigma > 0. */
int cnn_gm_blur(cnn_cl *cl, cl_mem x, size_t x_off, int c, int h, int w, float sigma, cl_mem tmp, cl_mem out,
                size_t out_off, const char *what);

/* The blur of blurred baselines: sigma = min(h, w) / 32 pixels, at least 1
 * (7 px at 224). */
static inline float cnn_gm_blur_sigma(int h, int w) { return (h < w ? h : w) / 32.0f > 1.0f ? (h < w ? h : w) / 32.0f : 1.0f; }

/* Deletion / insertion inputs: copy k (of c x plane floats) is step
 * s = s0 + k of `steps`: pixel p takes a where rank[p] < floor(s * plane /
 * steps), else b (a, b: c x plane floats; rank: plane uints, a permutation
 * of 0 .. plane-1 by importance).  s0 + copies <= steps + 1. */
int cnn_gm_curve(cnn_cl *cl, cl_mem a, size_t a_off, cl_mem b, size_t b_off, cl_mem rank, int c, int plane,
                 int copies, int s0, int steps, cl_mem out, size_t out_off, const char *what);

/* ---- the CAM family's own passes (pipeline/cams.c) ---- */

/* Score-CAM inputs: out[j] (copy j of c x plane floats at offset 0) = x (c x
 * plane at x_off) times mask j, mask j = (up[j] - min_j) / ((max_j - min_j) +
 * 1e-8) for the m maps up[j] (plane floats each at offset 0) and their
 * minimum and maximum in st (cnn_viz_stats, CNN_STATS_STRIDE per map). */
int cnn_gm_score_inputs(cnn_cl *cl, cl_mem x, size_t x_off, int c, int plane, cl_mem up, int m, cl_mem st,
                        cl_mem out, const char *what);

/* Ablation: in buf ([m, c, plane] at off) channel k0 + j of image j set to
 * 0 for j in [0, m); k0 + m <= c. */
int cnn_gm_ablate(cnn_cl *cl, cl_mem buf, size_t off, int c, int plane, int k0, int m, const char *what);

/* out[i] = |a[i] * b[i / plane]| (per_channel) or |a[i] * b[i]| for the c *
 * plane values of a (out at offset 0). */
int cnn_gm_absmul(cnn_cl *cl, cl_mem a, size_t a_off, cl_mem b, size_t b_off, int c, int plane, bool per_channel,
                  cl_mem out, const char *what);

/* FullGrad's sum of normalised maps: out (H x W at out_off; accumulate: added
 * to) = sum over the c maps t_k (h x w each, from t_off) of (bilinear
 * t_k - min_k) / (1e-7 + (max_k - min_k)), min and max from st
 * (cnn_viz_stats of the maps), bilinear as cnn_gm_resize.  Equal, up to
 * rounding, to pytorch-grad-cam's scale_cam_image (normalise, then resize). */
int cnn_gm_fullgrad_acc(cnn_cl *cl, cl_mem t, size_t t_off, int c, int h, int w, cl_mem st, cl_mem out,
                        size_t out_off, int H, int W, bool accumulate, const char *what);

/* ---- RISE (Petsiuk et al. 2018) ---- */

/* Masks i0 .. i0 + m - 1 (out: m x H x W floats at offset 0), each a
 * cells x cells grid of cells kept with probability keep (Philox2x32-10 of
 * counter (cell, i) and key seed: u = ((word0 >> 8) + 1) / 2^24 <= keep),
 * upsampled bilinearly (align_corners=False, edges clamped) to (cells + 1)
 * ceil(H / cells) x (cells + 1) ceil(W / cells) and cropped at a random
 * shift (dy, dx) < the cell (counter (0xFFFFFFFF, i): dy = ((word0 >> 8) *
 * ch) >> 24, dx the same of word1 and cw).  cl/gradmap.cl spells it out.
 * grid: scratch of m * (cells^2 + 2) floats (each mask's cells and shift,
 * made first, so a pixel reads them instead of hashing). */
int cnn_gm_rise_masks(cnn_cl *cl, uint32_t seed, int cells, float keep, int H, int W, int i0, int m, cl_mem grid,
                      cl_mem out, const char *what);

/* out[j] (c x plane floats at offset 0, j < m) = x (c x plane at x_off) *
 * mask j (plane floats of mk at j * plane), per channel. */
int cnn_gm_mask_mul(cnn_cl *cl, cl_mem x, size_t x_off, int c, int plane, cl_mem mk, int m, cl_mem out,
                    const char *what);

/* out[p] (plane floats at out_off) = (accumulate: out[p] +) sum over j < m,
 * in order, of w[j] * mk[j * plane + p]. */
int cnn_gm_weighted_sum(cnn_cl *cl, cl_mem mk, int m, int plane, cl_mem w, cl_mem out, size_t out_off,
                        bool accumulate, const char *what);

/* ---- LIME and KernelSHAP ---- */

/* Copies j < m (c x plane floats each, out at offset 0) of x (at x_off)
 * with the segments sample j leaves out taken from base (c x plane at
 * offset 0): pixel p keeps x where z[j * nseg + seg[p]] != 0.  seg: plane
 * ints in [0, nseg) (not checked on the device: the caller's); z: m * nseg
 * floats. */
int cnn_gm_segment_mix(cnn_cl *cl, cl_mem x, size_t x_off, cl_mem base, int c, int plane, cl_mem seg, cl_mem z,
                       int nseg, int m, cl_mem out, const char *what);

#endif
