/* Colormap tables: 256 RGB entries each, index = level 0..255, in the order
 * of cnn_cmap (host/viz/vizops.h) and cnn_colormaps[] (config/config.h). */
#ifndef CNN_VIZ_COLORMAP_H
#define CNN_VIZ_COLORMAP_H

#include <stdint.h>
#include "viz/vizops.h"

/* 256 x 3 bytes (R, G, B) of colormap `cmap`; NULL when out of range. */
const uint8_t *cnn_colormap_lut(cnn_cmap cmap);

/* "viridis" -> CNN_CMAP_VIRIDIS, -1 when unknown. */
int cnn_colormap_find(const char *name);
const char *cnn_colormap_name(cnn_cmap cmap);

#endif
