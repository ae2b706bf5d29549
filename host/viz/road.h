/* ROAD, RemOve And Debias (Rong et al., "A Consistent and Efficient
 * Evaluation Strategy for Attribution Methods", ICML 2022), on the host:
 * which pixels a percentile of a map removes, and the noisy linear
 * imputation that fills them from their neighbours.
 *
 * Removal (pytorch-grad-cam's RemoveMostRelevantFirst /
 * RemoveLeastRelevantFirst): with P_q the q-th percentile of the map's
 * values, linearly interpolated as numpy's default,
 *     MoRF at p removes the pixels with  m >= P_p    (about 100 - p % of them,
 *                                                     the most relevant),
 *     LeRF at p removes the pixels with  m <= P_(100-p) (the least relevant).
 * (pytorch-grad-cam writes LeRF as 1 - m >= P_p(1 - m), the same set.)
 * Ties at the threshold are all removed; a map with NaN removes everything.
 *
 * Imputation: every removed pixel x_p, in each channel, is the weighted
 * mean of its 8 neighbours inside the image (weight 1/6 for the 4 sharing
 * an edge, 1/12 for the 4 diagonal ones), kept neighbours taking their own
 * values:
 *     D_p x_p - sum_{q removed} w_pq x_q = sum_{q kept} w_pq v_q,
 *     D_p = sum_{q in the image} w_pq,
 * a symmetric positive definite system on each 8-connected group of
 * removed pixels that touches a kept one.  Groups that touch none (every
 * pixel removed) have nothing to be debiased from and become 0, the mean
 * in network units.  The system is solved in double: envelope Cholesky with
 * the pixels ordered along the shorter side (band <= that side + 2), or
 * Jacobi-preconditioned conjugate gradients (relative residual 1e-10) when
 * the factor would pass `max_factor` doubles.  Then `noise` times a
 * standard normal (Box-Muller of Philox2x32-10 of counter (pixel, channel)
 * and key `seed`) is added to each filled value; pytorch-grad-cam adds
 * 0.01 with torch.randn. */
#ifndef CNN_VIZ_ROAD_H
#define CNN_VIZ_ROAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* numpy.percentile(v, q) with linear interpolation of n >= 1 values (q in
 * [0, 100]); NaN when any value is NaN (or memory ran out). */
double cnn_road_percentile(const float *v, size_t n, double q);

/* keep[i] = 1 where pixel i stays, 0 where percentile p (0 < p < 100)
 * removes it (MoRF, or LeRF when lerf); returns how many are removed, or
 * CNN_ERR_NOMEM. */
long cnn_road_mask(const float *map, size_t px, double p, bool lerf, uint8_t *keep);

/* Largest factor cnn_road_impute builds by default (doubles: 512 MiB). */
#define CNN_ROAD_MAX_FACTOR ((size_t)64 << 20)

/* img: c x h x w (planar); out: the same with the removed pixels filled
 * (out may be img).  max_factor: 0 for CNN_ROAD_MAX_FACTOR; a smaller one
 * forces conjugate gradients (tests).  Returns CNN_OK, CNN_ERR_NOMEM or
 * CNN_ERR_INPUT (bad arguments). */
int cnn_road_impute(const float *img, int c, int h, int w, const uint8_t *keep, double noise, uint32_t seed,
                    size_t max_factor, float *out);

#endif
