/* SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to
 * State-of-the-Art Superpixel Methods", TPAMI 2012) on the host, for the
 * perturbation methods that switch image regions on and off (LIME,
 * KernelSHAP).
 *
 * The image is converted to CIELAB (sRGB, D65; a gray image has L only);
 * k-means runs on (L, a, b, y, x) with the distance
 *     D^2 = d_lab^2 + (d_xy / S)^2 * m^2,  S = sqrt(H W / K),
 * each centre searching a 2S x 2S window, for `iters` rounds from centres on
 * a regular grid moved to the lowest colour gradient of their 3 x 3
 * neighbourhood.  Afterwards connectivity is enforced: each 4-connected
 * piece of a label becomes its own segment, and pieces smaller than a
 * quarter of S^2 join the segment of their first neighbour in raster order.
 * Segments are numbered 0 .. n - 1 in raster order of their first pixel.
 * Deterministic: no random numbers. */
#ifndef CNN_VIZ_SLIC_H
#define CNN_VIZ_SLIC_H

#include <stdint.h>

/* img: h x w pixels of c = 1 (gray) or 3 (RGB) interleaved bytes; k: the
 * wanted number of segments (>= 1); compactness m > 0 (10: the paper's
 * and scikit-image's default for Lab); iters >= 1 (10).  labels: h * w
 * ints.  Returns the number of segments (>= 1), or CNN_ERR_NOMEM /
 * CNN_ERR_INPUT (bad arguments). */
int cnn_slic(const uint8_t *img, int h, int w, int c, int k, double compactness, int iters, int32_t *labels);

#endif
