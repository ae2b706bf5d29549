#!/usr/bin/python3
"""The Python package (python/): installs offline into a fresh virtual
environment and passes its pytest suite (python/tests) against the built
library and binary.

    /usr/bin/python3 test/python/test_package.py [pytest arguments]

  1. a venv with --system-site-packages (Debian's numpy, Pillow, pytest,
     torch) under $CNNVIZ_TEST_TMP/python-venv, made anew each run;
  2. `pip install --no-build-isolation --no-index` of a copy of python/
     (offline; the copy keeps setuptools' build/ and *.egg-info out of the
     source tree); the installed package must be the one imported;
  3. pytest on python/tests with the venv's interpreter, from a scratch
     folder; the exit code is pytest's (1 for a failed step before it, or
     for a skipped test: the suite skips nothing).

Environment: CNNVIZ_SOURCE_DIR (repo root; default: from this file),
CNNVIZ_BIN (cnnviz-cl), CNNVIZ_LIBRARY (libcnnviz.so; default: beside
CNNVIZ_BIN), CNNVIZ_TEST_TMP (scratch; default: a temporary folder),
POCL_CACHE_DIR, CNNVIZ_CACHE_DIR (passed on).  A sanitizer build of the
library gets its AddressSanitizer runtime preloaded into the interpreter.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("CNNVIZ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))


def fail(msg):
    print("test_package: FAILED: " + msg, flush=True)
    sys.exit(1)


def step(what, cmd, **kw):
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, **kw)
    if r.returncode != 0:
        fail("%s: `%s` exited %d:\n%s" % (what, " ".join(cmd), r.returncode, r.stdout[-6000:]))
    print("test_package: %s (%.1f s)" % (what, time.time() - t0), flush=True)
    return r.stdout


def asan_runtime(lib):
    """The AddressSanitizer runtime a sanitizer build of the library links
    (None for a plain build).  The interpreter is not built with it, so it
    must be preloaded, or the library refuses to load."""
    try:
        r = subprocess.run(["ldd", lib], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    except OSError as e:
        fail("ldd %s: %s" % (lib, e))
    for line in r.stdout.splitlines():
        m = re.match(r"\s*libasan\.so\S*\s+=>\s+(\S+)", line)
        if m:
            return m.group(1)
    return None


def main():
    tmp = os.environ.get("CNNVIZ_TEST_TMP") or tempfile.mkdtemp(prefix="cnnviz-pkg-")
    os.makedirs(tmp, exist_ok=True)
    binary = os.environ.get("CNNVIZ_BIN") or os.path.join(ROOT, "build", "cnnviz-cl")
    if not os.path.exists(binary):
        fail("no cnnviz-cl at %s: build the project (or set CNNVIZ_BIN)" % binary)
    lib = os.environ.get("CNNVIZ_LIBRARY") or os.path.join(os.path.dirname(binary), "libcnnviz.so.0")
    if not os.path.exists(lib):
        fail("no libcnnviz at %s: build the `cnnviz` target (or set CNNVIZ_LIBRARY)" % lib)

    venv = os.path.join(tmp, "python-venv")
    src = os.path.join(tmp, "python-src")
    for d in (venv, src):
        shutil.rmtree(d, ignore_errors=True)
    step("venv", ["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
    py = os.path.join(venv, "bin", "python")
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    step("pip install (offline)", [py, "-m", "pip", "install", "--no-build-isolation", "--no-index", src], env=env)
    where = step("import check", [py, "-c", "import cnnviz; print(cnnviz.__file__, cnnviz.__version__)"],
                 cwd=tmp).strip()
    if not os.path.realpath(where.split()[0]).startswith(os.path.realpath(venv) + os.sep):
        fail("the venv imports cnnviz from %s, not from its own site-packages" % where)
    print("test_package: installed %s" % where, flush=True)

    env = dict(os.environ, CNNVIZ_BIN=binary, CNNVIZ_LIBRARY=lib, CNNVIZ_SOURCE_DIR=ROOT, CNNVIZ_TEST_TMP=tmp)
    env.pop("PYTHONPATH", None)
    asan = asan_runtime(lib)
    if asan:
        print("test_package: sanitizer build: LD_PRELOAD=%s, leak checks off (the interpreter's own)" % asan,
              flush=True)
        env["LD_PRELOAD"] = ":".join(p for p in (asan, env.get("LD_PRELOAD")) if p)
        env["ASAN_OPTIONS"] = ":".join(p for p in (env.get("ASAN_OPTIONS"), "detect_leaks=0") if p)
    work = tempfile.mkdtemp(prefix="pytest-run.", dir=tmp)
    cmd = [py, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", "--durations=8",
           os.path.join(ROOT, "python", "tests")] + sys.argv[1:]
    print("test_package: " + " ".join(cmd), flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    sys.stdout.write(p.stdout)
    print("test_package: pytest exited %d after %.1f s" % (p.returncode, time.time() - t0), flush=True)
    if p.returncode != 0:
        print("test_package: FAILED: pytest exited %d (see above)" % p.returncode, flush=True)
        sys.exit(p.returncode)
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if "skipped" in tail or "xfail" in tail or ("deselected" in tail and not sys.argv[1:]):
        fail("tests were skipped: %s" % tail)
    shutil.rmtree(work, ignore_errors=True)
    print("test_package: ok", flush=True)


if __name__ == "__main__":
    main()
