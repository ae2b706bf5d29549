"""Writes host/viz/colormap_tables.c: the 256-entry RGB tables of the
colormaps of cnn_cmap (host/viz/vizops.h), sampled from matplotlib.

  /usr/bin/python3 tools/gen_colormaps.py [--output FILE] [--check]

matplotlib is needed only here, when the tables are regenerated; the build,
the tests and the program use the committed C file.  --check regenerates in
memory and exits 1 when the committed file differs (e.g. after an edit by
hand; the matplotlib version named in the header is not compared).

Sampling: level i (0..255) is the colormap at i / 255, each component
rounded to the nearest byte (floor(v * 255 + 0.5)).  matplotlib's own
to_rgba(..., bytes=True) truncates instead, which would turn viridis' last
blue 36.70 into 36; rounding gives the widely quoted (253, 231, 37).

rdbu is matplotlib's 'RdBu_r', not 'RdBu': our maps are drawn with level 0
at the most negative value (signed ranges are [-a, a]), and a diverging map
for signed data should show negative as blue and positive as red.  'RdBu'
runs from red at 0 to blue at 1; its reverse puts blue at level 0 and red
at level 255, near-white in the middle.
"""

import argparse
import math
import os
import sys

# (enum constant, name in configs, matplotlib colormap), in cnn_cmap order.
MAPS = [
    ("CNN_CMAP_GRAY", "gray", "gray"),
    ("CNN_CMAP_VIRIDIS", "viridis", "viridis"),
    ("CNN_CMAP_MAGMA", "magma", "magma"),
    ("CNN_CMAP_INFERNO", "inferno", "inferno"),
    ("CNN_CMAP_TURBO", "turbo", "turbo"),
    ("CNN_CMAP_JET", "jet", "jet"),
    ("CNN_CMAP_RDBU", "rdbu", "RdBu_r"),
]
LEVELS = 256
PER_LINE = 4  # RGB triples per line of the output


def sample(mpl_name):
    """LEVELS (r, g, b) byte triples of a matplotlib colormap."""
    import matplotlib

    cmap = matplotlib.colormaps[mpl_name]
    # A colormap of exactly LEVELS entries evaluated at integer indices gives
    # its lookup table as is: for a segmented map that table is computed at
    # i / (LEVELS - 1), for a listed one of LEVELS colours it is the list.
    # Float arguments would go through floor(x * N) and could land one entry
    # off.  resampled() is matplotlib >= 3.6; get_cmap(name, N) before it.
    if hasattr(cmap, "resampled"):
        cmap = cmap.resampled(LEVELS)
    else:
        cmap = matplotlib.cm.get_cmap(mpl_name, LEVELS)
    out = []
    for i in range(LEVELS):
        rgba = cmap(i)
        rgb = tuple(int(math.floor(float(v) * 255.0 + 0.5)) for v in rgba[:3])
        assert all(0 <= v <= 255 for v in rgb), (mpl_name, i, rgba)
        out.append(rgb)
    return out


def render():
    import matplotlib

    lines = [
        "/* GENERATED FILE: DO NOT EDIT BY HAND.",
        " *",
        " * Written by tools/gen_colormaps.py from matplotlib %s:" % matplotlib.__version__,
        " *   /usr/bin/python3 tools/gen_colormaps.py",
        " * Level i (0..255) is the matplotlib colormap at i / 255, each component",
        " * rounded to the nearest byte.  rdbu is matplotlib's 'RdBu_r': blue at",
        " * level 0 (most negative), near-white in the middle, red at level 255.",
        " * The lookup functions are in colormap.c. */",
        '#include "viz/colormap.h"',
        "",
        "/* Declared here as well as in colormap.c, its only user, so that the",
        " * definition is checked against the same declaration. */",
        "extern const uint8_t cnn_colormap_tables[CNN_CMAP_COUNT][256 * 3];",
        "",
        "_Static_assert(CNN_CMAP_COUNT == %d, \"tools/gen_colormaps.py knows %d colormaps\");"
        % (len(MAPS), len(MAPS)),
        "",
        "const uint8_t cnn_colormap_tables[CNN_CMAP_COUNT][256 * 3] = {",
    ]
    for enum, name, mpl_name in MAPS:
        rgb = sample(mpl_name)
        src = name if name == mpl_name else "%s: matplotlib '%s'" % (name, mpl_name)
        lines.append("    /* %s */" % src)
        lines.append("    [%s] = {" % enum)
        for i in range(0, LEVELS, PER_LINE):
            cells = ", ".join("%3d, %3d, %3d" % t for t in rgb[i : i + PER_LINE])
            lines.append("        /* %3d */ %s," % (i, cells))
        lines.append("    },")
    lines.append("};")
    return "\n".join(lines) + "\n"


def without_version(text):
    """The text less its matplotlib version line: another version that gives
    the same tables must not fail --check."""
    return "\n".join(l for l in text.split("\n") if not l.startswith(" * Written by tools/"))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=os.path.join(root, "host", "viz", "colormap_tables.c"))
    ap.add_argument("--check", action="store_true", help="compare with --output, write nothing")
    args = ap.parse_args()
    text = render()
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                same = without_version(f.read()) == without_version(text)
        except OSError as e:
            print("%s: %s" % (args.output, e), file=sys.stderr)
            return 1
        if not same:
            print("%s differs from what tools/gen_colormaps.py writes" % args.output, file=sys.stderr)
            return 1
        return 0
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
