#!/usr/bin/python3
"""The ONNX standard's operator tests (Debian's libonnx-testdata) through
cnnviz-cl.

    /usr/bin/python3 test/onnx/test_conformance.py [--data DIR] [--only PATTERN]
                                                   [--table FILE] [-v]

Each case is a folder holding model.onnx and test_data_set_*/input_*.pb,
output_*.pb (TensorProto).  Sets: node/ (one operator per case) and
pytorch-converted/, pytorch-operator/ (small PyTorch modules).

A case is *eligible* when every node's op type is one the importer knows
(the list the binary prints when it refuses a node), at least one of them
one it writes as a layer (not only computed at import), the graph has one
input that is not an initializer and one output, and every input and
output of its data sets is float32 of rank <= 4.  An eligible case is
imported (`cnnviz-cl import`: the pipeline's input [C, H, W] says how the
tensor maps: axis 0 is the batch, the rest fill C, H, W), then run
(`cnnviz-cl run model.onnx --input x.npy`, x reshaped to [N, C, H, W]); the
outputs, stacked over the batch, must match output_0.pb at the ONNX backend
tests' default tolerance |got - want| <= 1e-7 + 1e-3 |want|.  The binary may
instead refuse it (exit 2, one error line): a semantics the pipeline does not
have (an op over the batch axis, a softmax over H); that is counted.

Every other case must be refused: exit 2 and exactly one
"cnnviz-cl: error: " line, never a signal or sanitizer report.

Cases with more than one graph input are run a second time "with
initializers": every input but the first becomes an initializer holding its
data set's values (how weights reach a Conv or Gemm in a real model), and
the same rules apply.

Counts per op type go to stdout (and to --table FILE as Markdown).  The test
fails on a wrong output, a crash, an eligible case that neither passes nor
is refused cleanly, or an ineligible case that is not refused.
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

DATA = "/usr/share/libonnx-testdata/data"
SETS = ("node", "pytorch-converted", "pytorch-operator")
RTOL, ATOL = 1e-3, 1e-7
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                       r"Segmentation fault|Aborted|core dumped")


def log(msg):
    print(msg, flush=True)


def load_pb(path):
    import onnx
    from onnx import numpy_helper
    t = onnx.TensorProto()
    try:
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        return numpy_helper.to_array(t)
    except Exception:  # noqa: BLE001  (a sequence or an optional: not a tensor)
        return None


def run(cmd, timeout=600):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout, errors="replace")
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return -999, "", "timeout"


def supported_ops(binary, workdir):
    """The op types the importer lowers or folds: from the line it prints
    when it refuses a node (a model with one node of an unknown type)."""
    import onnx
    from onnx import helper, TensorProto
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])
    g = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g", [x], [y])
    path = os.path.join(workdir, "probe.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    rc, _, err = run([binary, "info", path])
    m = re.search(r"supported: (.*); on constants also (.*)$", err.strip())
    if rc != 2 or not m:
        raise SystemExit("FAIL: could not read the supported ops from: %r" % err)
    return set(m.group(1).split(", ")), set(m.group(2).split(", "))


def case_dirs(data, only):
    for s in SETS:
        for d in sorted(glob.glob(os.path.join(data, s, "test_*"))):
            if os.path.exists(os.path.join(d, "model.onnx")) and (not only or re.search(only, d)):
                yield s, d


def op_label(model):
    types = sorted({n.op_type for n in model.graph.node} - {"Constant"})
    if not types:
        return "Constant"
    return types[0] if len(types) == 1 else "+".join(types)


def data_sets(d):
    out = []
    for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
        ins = [load_pb(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                                          key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))]
        outs = [load_pb(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")),
                                           key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))]
        out.append((ins, outs))
    return out


def graph_inputs(model):
    init = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in init]


def bake(model, sets, path):
    """The model with every graph input but the first turned into an
    initializer holding data set 0's values."""
    import onnx
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    ins = graph_inputs(m)
    keep = ins[0].name
    for k, vi in enumerate(ins[1:], start=1):
        if k >= len(sets[0][0]) or sets[0][0][k] is None:
            return None
        m.graph.initializer.append(numpy_helper.from_array(sets[0][0][k], vi.name))
    del m.graph.input[:]
    m.graph.input.extend([ins[0]])
    assert m.graph.input[0].name == keep
    onnx.save(m, path)
    return [([s[0][0]], s[1]) for s in sets]


def eligible(model, sets, ops):
    """-> None, or why the case is not one the importer should run: its op
    types must be ones it lowers to layers (ops it folds may feed them)."""
    lowered, folded = ops
    why = None
    types = {n.op_type for n in model.graph.node}
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        why = "an op of another domain"
    elif not types <= lowered | folded:
        why = "op(s) %s not supported" % ", ".join(sorted(types - lowered - folded))
    elif not types & lowered:
        why = "only ops computed at import (%s)" % ", ".join(sorted(types))
    elif len(graph_inputs(model)) != 1:
        why = "%d graph inputs" % len(graph_inputs(model))
    elif len(model.graph.output) != 1:
        why = "%d graph outputs" % len(model.graph.output)
    elif not sets:
        why = "no data set"
    else:
        for ins, outs in sets:
            for a in list(ins) + list(outs):
                if a is None:
                    why = "a data file that is not a tensor"
                elif a.dtype != np.float32 or a.ndim > 4 or a.ndim < 1:
                    why = "a tensor of %s, rank %d" % (a.dtype, a.ndim)
    return why


def one_error_line(rc, err):
    """-> None when (rc, err) is a clean refusal, else what is wrong."""
    if rc < 0 or rc >= 128:
        return "killed by signal %d" % (-rc if rc < 0 else rc - 128)
    if SANITIZER.search(err):
        return "sanitizer or crash report: " + SANITIZER.search(err).group(0)
    if rc != 2:
        return "exit %d, expected 2" % rc
    n = sum(1 for line in err.splitlines() if line.startswith("cnnviz-cl: error: "))
    if n != 1:
        return "%d error lines" % n
    return None


def check_case(binary, model_path, sets, work, verbose):
    """-> ("pass" | "refused" | "fail", detail)."""
    import yaml
    y = os.path.join(work, "case.yaml")
    rc, _, err = run([binary, "import", model_path, "-o", y])
    if rc != 0:
        bad = one_error_line(rc, err)
        return ("fail", "import: " + bad) if bad else ("refused", err.strip().splitlines()[-1])
    with open(y) as f:
        cfg = yaml.safe_load(f)
    c, h, w = cfg["model"]["input"]["shape"]
    for si, (ins, outs) in enumerate(sets):
        x = ins[0]
        if x.size != x.shape[0] * c * h * w:
            return "fail", "input of shape %s does not map to [N, %d, %d, %d]" % (x.shape, c, h, w)
        npy = os.path.join(work, "x.npy")
        np.save(npy, np.ascontiguousarray(x.reshape(x.shape[0], c, h, w), dtype=np.float32))
        out = os.path.join(work, "out")
        shutil.rmtree(out, ignore_errors=True)
        rc, _, err = run([binary, "run", model_path, "--input", npy, "--out", out, "--no-taps", "--no-report", "-q"])
        if rc != 0:
            bad = one_error_line(rc, err)
            return ("fail", "run: " + bad + ": " + err.strip()[-300:]) if bad else \
                ("refused", err.strip().splitlines()[-1])
        want = outs[0]
        try:
            got = np.stack([np.load(os.path.join(out, "x_%d" % k, "output.npy")) for k in range(x.shape[0])])
        except OSError as e:
            return "fail", "missing output: %s" % e
        if got.size != want.size:
            return "fail", "output of %d values, expected %s" % (got.size, want.shape)
        got = got.reshape(want.shape).astype(np.float64)
        wd = want.astype(np.float64)
        bad = ~(np.abs(got - wd) <= ATOL + RTOL * np.abs(wd))
        bad &= ~(np.isnan(got) & np.isnan(wd))
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), want.shape)
            return "fail", "data set %d: %d of %d values off, e.g. at %s: %.7g vs %.7g" % (
                si, int(bad.sum()), want.size, tuple(int(v) for v in i), got[i], wd[i])
    return "pass", ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--only", help="regular expression on the case folder")
    ap.add_argument("--table", help="write the per-op counts as Markdown here")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    import onnx
    binary = os.environ.get("CNNVIZ_BIN")
    if not binary or not os.path.exists(binary):
        log("FAIL: CNNVIZ_BIN is not set or does not exist (%r)" % binary)
        return 1
    if not os.path.isdir(os.path.join(args.data, "node")):
        log("FAIL: %s/node not found: apt-get install libonnx-testdata" % args.data)
        return 1
    base = os.environ.get("CNNVIZ_TEST_TMP") or tempfile.mkdtemp()
    work = os.path.join(base, "onnx-conformance")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ops = supported_ops(binary, work)
    counts = collections.defaultdict(collections.Counter)  # label -> Counter
    failures = []
    t0 = time.time()
    n = 0
    for s, d in case_dirs(args.data, args.only):
        name = "%s/%s" % (s, os.path.basename(d))
        model = onnx.load(os.path.join(d, "model.onnx"))
        sets = data_sets(d)
        label = op_label(model)
        variants = [("", os.path.join(d, "model.onnx"), sets)]
        if len(graph_inputs(model)) > 1 and sets:
            path = os.path.join(work, "baked.onnx")
            bsets = bake(model, sets, path)
            if bsets:
                variants.append((" (with initializers)", path, bsets))
        for suffix, path, vsets in variants:
            n += 1
            m = onnx.load(path) if suffix else model
            why = eligible(m, vsets, ops)
            col = "init" if suffix else "direct"
            if why:
                rc, _, err = run([binary, "info", path])
                bad = one_error_line(rc, err)
                if bad:
                    failures.append("%s%s (%s): not eligible (%s), yet: %s; %s" % (name, suffix, label, why, bad,
                                                                                 err.strip()[-300:]))
                    counts[label][col + " fail"] += 1
                else:
                    counts[label][col + " other"] += 1
                if args.verbose:
                    log("  %-60s %s: refused (%s)" % (name + suffix, label, why))
                continue
            result, detail = check_case(binary, path, vsets, work, args.verbose)
            counts[label][col + " " + result] += 1
            if result == "fail":
                failures.append("%s%s (%s): %s" % (name, suffix, label, detail))
            if args.verbose or result == "fail":
                log("  %-60s %s: %s %s" % (name + suffix, label, result, detail))
    cols = ["direct pass", "direct refused", "direct fail", "direct other",
            "init pass", "init refused", "init fail", "init other"]
    lines = ["| op | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
    tot = collections.Counter()
    for label in sorted(counts):
        c = counts[label]
        tot.update(c)
        lines.append("| %s | %s |" % (label, " | ".join(str(c[k]) if c[k] else "" for k in cols)))
    lines.append("| **all** | %s |" % " | ".join(str(tot[k]) for k in cols))
    log("\n".join(lines))
    log("%d cases in %.0f s: %d passed, %d refused (eligible), %d refused (not eligible), %d failed"
        % (n, time.time() - t0, tot["direct pass"] + tot["init pass"], tot["direct refused"] + tot["init refused"],
           tot["direct other"] + tot["init other"], len(failures)))
    if args.table:
        with open(args.table, "w") as f:
            f.write("\n".join(lines) + "\n")
    for f in failures:
        log("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
