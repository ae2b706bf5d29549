#!/usr/bin/python3
"""ROAD (remove and debias, Rong et al. 2022) against a float64 reference
written here from the paper's and pytorch-grad-cam's definitions, not from
this project's code:

  * removal as pytorch-grad-cam's RemoveMostRelevantFirst(p): keep the
    pixels with m < np.percentile(m, p); RemoveLeastRelevantFirst(p): the
    same on 1 - m;
  * noisy linear imputation: each removed pixel equals the weighted mean of
    its neighbours inside the image (1/6 edge, 1/12 diagonal), kept ones
    at their values, solved here as one dense float64 system per image;
    then noise * N(0, 1) on the filled pixels, with the tool's generator
    (Philox2x32-10 of (pixel, channel), key 0x70ad + 2 * percentile index
    + LeRF, Box-Muller as viz/road.h documents it);
  * scores: the target's softmax probability after minus before, float64;
    ROAD = (mean LeRF - mean MoRF) / 2 (ROADCombined).

On the shipped Fashion-MNIST model, three inputs, three input maps
(saliency, gradient x input, integrated gradients: each .npy is the map
ROAD ranks):
  1. `road: [20, 40, 60, 80]` and `road_noise: 0` in the pipeline;
  2. `--road` (percentiles 10..90, noise 0.01).
Every map's MoRF and LeRF scores within 1e-4 relative L2 of the reference,
the combined value within 1e-5; measured up to about 1e-6.
Also: the report ranks a row by ROAD when there are no curves; two shards
merged keep every ROAD value; hostile `road:` values name their position
and exit 2.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402
from checks import check  # noqa: E402
import checks  # noqa: E402
import test_attribution as ta  # noqa: E402
import test_networks as tn  # noqa: E402

BIN = ta.BIN
IMAGES = ["9_ankle_boot", "0_tshirt", "3_dress"]
MAPS = {"saliency": "saliency", "gradxinput": "gradxinput", "integrated": "integrated"}
NB = [((-1, -1), 1 / 12), ((-1, 0), 1 / 6), ((-1, 1), 1 / 12), ((0, -1), 1 / 6),
      ((0, 1), 1 / 6), ((1, -1), 1 / 12), ((1, 0), 1 / 6), ((1, 1), 1 / 12)]
SEED = 0x70AD



def load_input(cfg, stem):
    from PIL import Image
    spec = cfg["model"]["input"]
    img = np.asarray(Image.open(os.path.join(tn.source_dir(), "samples", "fashion_mnist", "images", stem + ".png"))
                     .convert("L"), dtype=np.float64)
    x = torch.from_numpy(img).view(1, 1, *img.shape) * float(spec["scale"])
    mean = torch.tensor(spec["mean"], dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float64).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def noise(C, H, W, seed):
    """The tool's standard normals for each (channel, pixel)."""
    px = np.arange(H * W, dtype=np.uint64)
    out = np.empty((C, H * W))
    for c in range(C):
        r0, r1 = ta.philox2x32_10(px, np.full(H * W, c, dtype=np.uint64), seed)
        u1 = ((r0 >> np.uint64(8)) + 1).astype(np.float64) / 2.0 ** 24
        u2 = (r1 >> np.uint64(8)).astype(np.float64) / 2.0 ** 24
        out[c] = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return out.reshape(C, H, W)


def impute(img, keep, sigma, seed):
    """img [C, H, W] float64, keep [H, W] bool: removed pixels solved from
    their neighbours (dense system), plus sigma * the tool's noise."""
    C, H, W = img.shape
    unknown = [(y, x) for y in range(H) for x in range(W) if not keep[y, x]]
    idx = {p: i for i, p in enumerate(unknown)}
    n = len(unknown)
    out = img.copy()
    if n == 0:
        return out
    if not keep.any():
        out[:, ~keep] = 0.0
    else:
        A = np.zeros((n, n))
        b = np.zeros((n, C))
        for i, (y, x) in enumerate(unknown):
            for (dy, dx), w in NB:
                yy, xx = y + dy, x + dx
                if not (0 <= yy < H and 0 <= xx < W):
                    continue
                A[i, i] += w
                if keep[yy, xx]:
                    b[i] += w * img[:, yy, xx]
                else:
                    A[i, idx[(yy, xx)]] -= w
        sol = np.linalg.solve(A, b)
        for i, (y, x) in enumerate(unknown):
            out[:, y, x] = sol[i]
    if sigma:
        out[:, ~keep] += sigma * noise(C, H, W, seed)[:, ~keep]
    return out


def prob(cfg, sd, xs, cls):
    with torch.no_grad():
        y, _ = netref.run_config(cfg["layers"], sd, torch.from_numpy(xs))
    return torch.softmax(y, dim=1)[:, cls].numpy()


def reference(cfg, sd, x, m, cls, pcts, sigma):
    """(MoRF diffs, LeRF diffs, ROAD) of map m [H, W] for input x."""
    m = m.astype(np.float64)
    img = x[0].numpy()
    p0 = prob(cfg, sd, x.numpy(), cls)[0]
    imgs = []
    for lerf in (0, 1):
        for i, p in enumerate(pcts):
            mm = 1.0 - m if lerf else m
            keep = mm < np.percentile(mm, p)
            imgs.append(impute(img, keep, sigma, SEED + 2 * i + lerf))
    d = prob(cfg, sd, np.stack(imgs), cls) - p0
    morf, lerf = d[:len(pcts)], d[len(pcts):]
    return morf, lerf, (lerf.mean() - morf.mean()) / 2


def run(args, out):
    p = subprocess.run([BIN, "run"] + args + ["--out", out, "-q"], capture_output=True, text=True)
    check(p.returncode == 0, "%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.returncode == 0


def inputs(paths):
    return [a for p in paths for a in ("--input", p)]


def manifest(out):
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f)["files"]


def test_values(work, cfg, sd, pipe_path, label, pcts, sigma, extra):
    out = os.path.join(work, "road_%d" % len(label))
    imgs = [os.path.join(tn.source_dir(), "samples", "fashion_mnist", "images", s + ".png") for s in IMAGES]
    if not run([pipe_path] + inputs(imgs) + ["--npy"] + extra, out):
        return
    files = manifest(out)
    worst = worst_c = 0.0
    for stem in IMAGES:
        x = load_input(cfg, stem)
        for kind in MAPS:
            e = [f for f in files if f.get("kind") == kind and f.get("role") == "map" and
                 f["path"].startswith(stem + "/")]
            check(len(e) == 1, "%s %s %s: %d map entries" % (label, stem, kind, len(e)))
            if len(e) != 1:
                continue
            e = e[0]
            check("road" in e and e.get("road_percentiles") == pcts,
                  "%s %s %s: ROAD percentiles %s, want %s" % (label, stem, kind, e.get("road_percentiles"), pcts))
            if "road" not in e:
                continue
            cls = e["class"]
            m = np.load(os.path.join(out, stem, "%s_c%d.npy" % (kind, cls)))
            morf, lerf, road = reference(cfg, sd, x, m, cls, pcts, sigma)
            got = np.array(e["road_morf"] + e["road_lerf"], dtype=np.float64)
            want = np.concatenate([morf, lerf])
            err = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))
            worst = max(worst, err)
            worst_c = max(worst_c, abs(e["road"] - road))
            check(err <= 1e-4, "%s %s %s: MoRF/LeRF rel. L2 %.2e > 1e-4 (got %s, want %s)" %
                  (label, stem, kind, err, got.round(4), want.round(4)))
            check(abs(e["road"] - road) <= 1e-5, "%s %s %s: ROAD %.6f, reference %.6f" %
                  (label, stem, kind, e["road"], road))
            check(abs(e["road"] - (np.mean(e["road_lerf"]) - np.mean(e["road_morf"])) / 2) < 1e-6,
                  "%s %s %s: ROAD is not (mean LeRF - mean MoRF) / 2" % (label, stem, kind))
    tn.log("  %s: %d maps, MoRF/LeRF worst rel. L2 %.2e, ROAD worst abs. %.2e" %
           (label, len(IMAGES) * len(MAPS), worst, worst_c))


def test_report_and_merge(work, pipe_path):
    src = tn.source_dir()
    imgs = [os.path.join(src, "samples", "fashion_mnist", "images", s + ".png") for s in IMAGES]
    base = [pipe_path] + inputs(imgs) + ["--no-taps", "--tap", "input:saliency", "--tap", "conv4:gradcam",
                                            "--tap", "input:gradxinput", "--road"]
    whole = os.path.join(work, "road_whole")
    if not run(base, whole):
        return
    with open(os.path.join(whole, "index.html"), encoding="utf-8") as f:
        page = f.read()
    m = re.search(r'<table class="rank">(.*?)</table>', page, re.S)
    check(m is not None and "ROAD" in m.group(1), "report: no ROAD ranking table")
    if m:
        rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>(-?[0-9.]+)</td></tr>", m.group(1))
        vals = [float(r[2]) for r in rows]
        check(len(rows) == 3 and vals == sorted(vals, reverse=True), "report: ROAD rows %s not by ROAD" % rows)
    r = subprocess.run([sys.executable, os.path.join(src, "test", "report", "check_report.py"), whole],
                       capture_output=True, text=True)
    check(r.returncode == 0, "check_report.py: %s%s" % (r.stdout, r.stderr))
    parts = []
    for i in range(2):
        parts.append(os.path.join(work, "road_part%d" % i))
        if not run(base + ["--shard", "%d/2" % i], parts[-1]):
            return
    merged = os.path.join(work, "road_merged")
    p = subprocess.run([BIN, "merge", merged] + parts + ["-q"], capture_output=True, text=True)
    check(p.returncode == 0, "merge: exit %d: %s" % (p.returncode, p.stderr))
    if p.returncode != 0:
        return
    a = {e["path"]: e for e in manifest(whole) if "road" in e}
    b = {e["path"]: e for e in manifest(merged) if "road" in e}
    check(len(a) == 9 and set(a) == set(b), "merge: ROAD entries %d whole, %d merged" % (len(a), len(b)))
    for k in a:
        if k in b:
            check(a[k]["road"] == b[k]["road"] and a[k]["road_morf"] == b[k]["road_morf"],
                  "merge: %s ROAD %s vs %s" % (k, a[k]["road"], b[k]["road"]))


def test_hostile(work, pipe):
    for bad, what in (("[0, 50]", "between 0 and 100"), ("[20, 100]", "between 0 and 100"), ("maybe", "true or false"),
                      ("{a: 1}", "list of 1 to"), ("[]", "list of 1 to")):
        doc = dict(pipe, taps=[{"layer": "input", "show": "saliency", "road": "PLACEHOLDER"}])
        text = yaml.safe_dump(doc, default_flow_style=False).replace("PLACEHOLDER", bad)
        line_no = next(i + 1 for i, l in enumerate(text.splitlines()) if "road:" in l)
        path = os.path.join(work, "road_bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([BIN, "info", path], capture_output=True, text=True)
        line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        check(p.returncode == 2 and ("road_bad.yaml:%d:" % line_no) in line and what in line,
              "road: %s: exit %d, %r" % (bad, p.returncode, line))


def main():
    work = tn.work_dir()
    src = tn.source_dir()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with open(os.path.join(src, "configs", "fashion_mnist.yaml"), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    sd, _ = netref.load_safetensors(os.path.join(src, "samples", "fashion_mnist", "fashion_mnist.safetensors"))
    sd = {k: v.double() for k, v in sd.items()}
    pipe = json.loads(json.dumps(cfg))
    for key in ("weights", "labels"):
        if key in pipe["model"]:
            pipe["model"][key] = os.path.join(src, "configs", pipe["model"][key])
    pipe["taps"] = [{"layer": "input", "show": k, "road": [20, 40, 60, 80], "road_noise": 0} for k in MAPS]
    path = os.path.join(work, "road_fixed.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(pipe, f)
    test_values(work, cfg, sd, path, "road [20, 40, 60, 80], noise 0", [20, 40, 60, 80], 0.0, [])
    pipe["taps"] = [{"layer": "input", "show": k} for k in MAPS]
    path = os.path.join(work, "road_default.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(pipe, f)
    test_values(work, cfg, sd, path, "--road", [10, 20, 30, 40, 50, 60, 70, 80, 90], 0.01, ["--road"])
    test_report_and_merge(work, os.path.join(src, "configs", "fashion_mnist.yaml"))
    test_hostile(work, pipe)
    checks.finish("test_road")


if __name__ == "__main__":
    main()
