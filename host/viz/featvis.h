/* Feature visualisation on the device: an image made to excite a channel
 * (Olah et al. 2017, "Feature Visualization"; the Lucid / Lucent
 * libraries).  The image is parameterised as a spectrum (Fourier space,
 * amplitudes scaled by 1 / frequency) or as pixels; the pre-image goes
 * through the colour decorrelation (ImageNet's colour covariance square
 * root, normalised) and a sigmoid into [0, 1].  Each step draws a random
 * transform (jitter, scale, rotation: Lucid's standard set, folded into one
 * bilinear resampling to the network's input size, grey outside), the
 * caller runs the network forward and backward to the network input, and
 * the gradient goes back through the transform, the sigmoid, the colour
 * matrix and the inverse DFT to an Adam step on the parameters.
 *
 * The inverse DFT is two matrix products (rows: a complex DFT over the
 * frequencies; columns: the real inverse of the half spectrum), orthonormal
 * and divided by 4 as Lucid does; its adjoint is the same products
 * transposed.  Everything runs on the device; the host draws the
 * transforms (Philox, from the seed, the step and the image) and uploads
 * six numbers per image and step.  The same seed gives the same bits on one
 * device. */
#ifndef CNN_VIZ_FEATVIS_H
#define CNN_VIZ_FEATVIS_H

#include <stdbool.h>
#include <stdint.h>
#include "runtime/clrt.h"

typedef struct cnn_fv {
    cnn_cl *cl;               /* borrowed */
    int N, C, H, W, K;        /* images, channels (1 or 3), size; K: W / 2 + 1 (Fourier) or W (pixels) */
    bool fourier, decorrelate;
    float colour[9];          /* the colour matrix used (decorrelate), its largest column norm 1 */
    size_t n_param;           /* floats of P */
    int step;                 /* Adam steps taken */
    uint32_t seed;
    cl_mem P, S, G, m, v;     /* parameters, spectrum (P * scale), their gradient, Adam's moments */
    cl_mem scale;             /* [H][K] */
    cl_mem mh, amat, bmat;    /* the inverse DFT's matrices: [2H][2H], [K][W], [K][W] */
    cl_mem Y, t, img, aff, inv, gimg, M, gain, bias, u0;
    cl_mem freq;              /* [H][K] |f|^2 (made by the first Fourier blur) */
} cnn_fv;

/* Lucid's colour matrix: the square root of ImageNet's colour covariance
 * (U sqrt(S) of its SVD; rows R, G, B), row-major. */
extern const double cnn_fv_imagenet_colour[9];

/* Adds an 8-bit image's pixels ([h][w][c], c 1 or 3; a grey pixel counts
 * as R = G = B), scaled to [0, 1], to sum[3] and sxx[3][3]. */
void cnn_fv_colour_add(const uint8_t *px, int w, int h, int c, double sum[3], double sxx[9]);

/* The colour matrix of pixels with these moments (n pixels in [0, 1]:
 * sum[3] and sum of products sxx[3][3]): U sqrt(S) of their covariance's
 * eigen-decomposition, columns by falling eigenvalue, each column's sign
 * making its sum >= 0 (as the ImageNet matrix's).  Needs n >= 2. */
void cnn_fv_colour_from_moments(double n, const double sum[3], const double sxx[9], double out[9]);

/* Images [N][C][H][W]; colour: the 3x3 matrix (row-major, rows R, G, B)
 * that mixes an RGB pre-image's channels, scaled so that its largest
 * column norm is 1 (NULL: none; cnn_fv_imagenet_colour: Lucid's);
 * gain, bias [C]: the network input of a pixel value
 * v in [0, 1] is gain * v + bias.  Parameters start as N(0, 0.01^2) from
 * Philox (counter: the parameter's index, key: seed) around the colour
 * start [C] (values in [0, 1], kept within [0.01, 0.99]; NULL: grey). */
int cnn_fv_create(cnn_fv *f, cnn_cl *cl, int N, int C, int H, int W, bool fourier, const double *colour,
                  const float *gain, const float *bias, const float *start, uint32_t seed);
void cnn_fv_free(cnn_fv *f);

/* The current images into f->img ([N][C][H][W], values in [0, 1]). */
int cnn_fv_image(cnn_fv *f);

/* The network input x ([N][C][H][W]) from f->img through the affine maps
 * aff (host, 6 per image: sx = a0 x + a1 y + a2, sy = a3 x + a4 y + a5 from
 * an output pixel to the image; NULL: the identity). */
int cnn_fv_input(cnn_fv *f, const float *aff, cl_mem x);

/* One ascent step from dx (d objective / d network input of the batch the
 * last cnn_fv_input made), minus tv * d TV / d img and l2 * d L2 / d img,
 * with Adam at learning rate lr. */
int cnn_fv_step(cnn_fv *f, cl_mem dx, float tv, float l2, float lr);

/* Blurs the pre-image by a Gaussian of sigma pixels: Fourier parameters
 * times its frequency response exp(-2 pi^2 sigma^2 |f|^2) (exact, periodic
 * edges); pixel parameters through its 3 x 3 truncation, normalised, edges
 * repeated.  Adam's moments are kept. */
int cnn_fv_blur(cnn_fv *f, float sigma);

/* The transform of `step` for image n: Lucid's standard transforms as one
 * map (jitter of up to 8 and 4 pixels at 224 scaled to the image, scale
 * 0.9..1.1 in steps of 0.02, rotation -10..10 degrees with 0 drawn six
 * times as often), from Philox(step, n; seed).  transforms false: the
 * identity. */
void cnn_fv_affine(uint32_t seed, int step, int n, int H, int W, bool transforms, float aff[6]);

/* The inverse of an affine map (the output point of a source point). */
void cnn_fv_affine_inverse(const float a[6], float inv[6]);

#endif
