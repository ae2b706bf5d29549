/* Colormap lookups.  The tables themselves are data sampled from matplotlib
 * and live in the generated colormap_tables.c (tools/gen_colormaps.py). */
#include "viz/colormap.h"
#include <string.h>

/* Defined in colormap_tables.c, indexed by cnn_cmap. */
extern const uint8_t cnn_colormap_tables[CNN_CMAP_COUNT][256 * 3];

/* Same spelling and order as cnn_colormaps[] (config/config.c), which is
 * what a pipeline file names; test_colormap checks the two agree. */
static const char *const g_names[CNN_CMAP_COUNT] = {
    [CNN_CMAP_GRAY] = "gray",   [CNN_CMAP_VIRIDIS] = "viridis", [CNN_CMAP_MAGMA] = "magma",
    [CNN_CMAP_INFERNO] = "inferno", [CNN_CMAP_TURBO] = "turbo", [CNN_CMAP_JET] = "jet",
    [CNN_CMAP_RDBU] = "rdbu"};

const uint8_t *cnn_colormap_lut(cnn_cmap cmap)
{
    /* The cast catches negative values, whichever integer type the
     * compiler picked for the enum. */
    if ((int)cmap < 0 || (int)cmap >= CNN_CMAP_COUNT) return NULL;
    return cnn_colormap_tables[cmap];
}

int cnn_colormap_find(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < CNN_CMAP_COUNT; i++)
        if (!strcmp(g_names[i], name)) return i;
    return -1;
}

const char *cnn_colormap_name(cnn_cmap cmap)
{
    return (int)cmap >= 0 && (int)cmap < CNN_CMAP_COUNT ? g_names[cmap] : "?";
}
