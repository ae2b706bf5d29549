"""samples/python/explore_fashion.ipynb runs: its code cells, in order, in one
namespace, from the repository root, as Jupyter would run them (no Jupyter
needed).  Each cell's last expression is evaluated like Jupyter's display
and must be something Jupyter shows (a PIL image with _repr_png_, a Model,
text)."""
import ast
import json
import os

from PIL import Image

import cnnviz
from conftest import ROOT

NOTEBOOK = os.path.join(ROOT, "samples", "python", "explore_fashion.ipynb")


def code_cells():
    with open(NOTEBOOK, encoding="utf-8") as f:
        nb = json.load(f)
    assert nb["nbformat"] == 4
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "test_notebook.py" in "".join(nb["cells"][0]["source"]), "the first cell must say the notebook is a test"
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] != "code":
            continue
        assert not c.get("outputs"), "the notebook is stored without outputs"
        cells.append("".join(c["source"]))
    return cells


def run_cell(src, ns, name):
    tree = ast.parse(src, name)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), ns)
    return eval(compile(last, name, "eval"), ns) if last is not None else None


def test_notebook_runs(monkeypatch, capsys):
    monkeypatch.chdir(os.path.join(ROOT, "samples", "python"))  # the cell finds the root itself
    cells = code_cells()
    assert len(cells) >= 6
    for src in cells:
        for line in src.splitlines():
            assert not line.lstrip().startswith(("%", "!")), "IPython syntax in a cell: %s" % line
    ns = {"__name__": "__notebook__"}
    shown = []
    for i, src in enumerate(cells):
        value = run_cell(src, ns, "<cell %d>" % i)
        if value is not None:
            assert hasattr(value, "_repr_png_") or isinstance(value, (cnnviz.Model, str)), \
                "cell %d ends in a %s, which Jupyter would not show usefully" % (i, type(value).__name__)
            shown.append(value)
    assert os.path.realpath(os.getcwd()) == os.path.realpath(ROOT)
    images = [v for v in shown if isinstance(v, Image.Image)]
    assert len(images) >= 4, "the notebook shows %d images" % len(images)
    for im in images:
        assert im._repr_png_()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "T-shirt/top" in printed and "conv2" in printed
    assert ns["cam"].shape == (14, 14) and ns["acts"].shape == (32, 28, 28)
