#!/usr/bin/python3
"""Checks an HTML report written by cnnviz-cl: check_report.py OUTDIR

Static part (html.parser): the page is one self-contained file: no <link>,
<base>, frames or objects, no <script src>, no url()/@import in styles, no
network APIs in the script; every src/href (and every path of a drill-down's
data-files) is a relative path to an existing file inside OUTDIR, images
are valid PNG/JPEG files (PNG: chunk CRCs and the inflated size checked),
"#anchor" links name an id of the page.

Browser part: loads OUTDIR/index.html?selftest in headless Chromium; the
page's own script then loads every image it knows (drill-downs included;
Chromium's load event means the header decoded, the static part has checked
the image data), builds the drill-downs, exercises the zoom and writes the
outcome into <body data-selftest="ok N" | "fail: ...">, read back from
--dump-dom.  Any
console message (the page writes none; uncaught exceptions show up there)
fails the check.

Exit status: 0 when the page passes, 1 with one line per problem otherwise,
2 on bad usage.  Chromium is required (cmake/install-deps.sh installs it);
CNNVIZ_CHROMIUM may name the binary."""

import html.parser
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.parse
import zlib

URL_ATTRS = {"src", "href", "data-src", "srcset", "poster", "action", "formaction", "background", "cite",
             "data", "ping", "xlink:href", "longdesc", "manifest", "icon", "lowsrc", "dynsrc", "codebase"}
FORBIDDEN_TAGS = {"link", "base", "iframe", "frame", "frameset", "object", "embed", "applet", "portal"}
NETWORK_JS = re.compile(r"\b(?:https?|wss?|ftp|file|data|blob):|['\"`]//|\bfetch\s*\(|XMLHttpRequest|WebSocket|"
                        r"EventSource|sendBeacon|\bimport\s*\(|importScripts|\.open\s*\(\s*['\"](?:GET|POST)")
STYLE_REFS = re.compile(r"url\s*\(|@import|image-set\s*\(|\bsrc\s*:", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

problems = []


def fail(msg):
    problems.append(msg)


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.anchors = []      # "#x" hrefs
        self.images = []       # (url, where)
        self.links = []        # (url, where): other files
        self.in_script = self.in_style = False
        self.scripts = []
        self.styles = []
        self.n_img = 0

    def handle_starttag(self, tag, attrs):
        where = "<%s>" % tag
        if tag in FORBIDDEN_TAGS:
            fail("forbidden element %s (the page must be self-contained)" % where)
        if tag == "meta":
            d = dict(attrs)
            if (d.get("http-equiv") or "").lower() == "refresh":
                fail("<meta http-equiv=refresh> is not allowed")
        if tag == "script":
            self.in_script = True
            self.scripts.append("")
        if tag == "style":
            self.in_style = True
            self.styles.append("")
        if tag == "img":
            self.n_img += 1
            if not dict(attrs).get("src"):
                fail("<img> without src")
        for name, value in attrs:
            value = value or ""
            if name == "id":
                self.ids.add(value)
            elif name == "style":
                if STYLE_REFS.search(value):
                    fail("style attribute references a resource: %r" % value)
            elif name.startswith("on"):
                fail("inline event handler %s=%r on %s (the one script holds all code)" % (name, value, where))
            elif name == "data-files":
                for u in value.split(" "):
                    self.images.append((u, "drill-down data-files"))
            elif name in URL_ATTRS:
                if tag == "script" and name == "src":
                    fail("<script src=%r>: scripts must be inline" % value)
                    continue
                if name == "srcset":
                    fail("srcset is not used by the report: %r" % value)
                    continue
                if value.startswith("#"):
                    self.anchors.append(value)
                elif tag == "img" and name == "src":
                    self.images.append((value, where))
                else:
                    self.links.append((value, "%s %s" % (where, name)))

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False
        if tag == "style":
            self.in_style = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts[-1] += data
        elif self.in_style:
            self.styles[-1] += data


def check_png(data):
    """None when `data` is a complete, consistent PNG, else what is wrong."""
    if len(data) < 8 + 25 or data[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG"
    pos, idat, ihdr, end = 8, [], None, False
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n or pos + 12 + n > len(data):
            return "truncated %s chunk" % kind.decode("latin-1")
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return "bad CRC in %s chunk" % kind.decode("latin-1")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            end = True
            break
        pos += 12 + n
    if not ihdr or not idat or not end:
        return "missing IHDR, IDAT or IEND"
    w, h, depth, ctype, _, _, interlace = ihdr
    if w == 0 or h == 0:
        return "zero size"
    chans = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if chans is None:
        return "bad colour type %d" % ctype
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        return "bad image data: %s" % e
    if interlace == 0 and len(raw) != h * (1 + (w * chans * depth + 7) // 8):
        return "image data is %d bytes, %dx%d needs %d" % (len(raw), w, h, h * (1 + (w * chans * depth + 7) // 8))
    return None


def resolve(outdir, url, where):
    """Path of the file `url` names inside outdir, or None (problem recorded)."""
    if not url:
        fail("empty URL in %s" % where)
        return None
    if SCHEME.match(url):
        fail("%s references %r: only relative paths inside the output folder are allowed" % (where, url))
        return None
    if url.startswith("/") or url.startswith("\\"):
        fail("%s references %r: absolute or protocol-relative URL" % (where, url))
        return None
    if re.search(r"[\s\"'<>\\]", url):
        fail("%s: %r is not URL-escaped" % (where, url))
    path = url.split("#", 1)[0].split("?", 1)[0]
    try:
        rel = urllib.parse.unquote_to_bytes(path)
    except Exception as e:  # noqa: BLE001 - any decoding problem is a finding
        fail("%s: cannot decode %r: %s" % (where, url, e))
        return None
    full = os.path.realpath(os.path.join(os.fsencode(outdir), rel))
    root = os.path.realpath(os.fsencode(outdir))
    if not full.startswith(root + b"/"):
        fail("%s: %r points outside the output folder" % (where, url))
        return None
    if not os.path.isfile(full):
        fail("%s: %r: no such file in the output folder" % (where, url))
        return None
    return full


def static_checks(outdir, text):
    page = Page()
    page.feed(text)
    page.close()
    if len(page.scripts) != 1:
        fail("expected exactly one inline <script>, found %d" % len(page.scripts))
    for s in page.scripts:
        m = NETWORK_JS.search(s)
        if m:
            fail("script contains %r (no network access, no external resources)" % m.group(0))
    for s in page.styles:
        m = STYLE_REFS.search(s)
        if m:
            fail("<style> contains %r (no external resources)" % m.group(0))
    for a in page.anchors:
        if len(a) > 1 and urllib.parse.unquote(a[1:]) not in page.ids:
            fail("link %r names no id of the page" % a)
    unique = set()
    for url, where in page.images:
        unique.add(url)
    checked = {}
    for url, where in page.images:
        if url in checked:
            continue
        full = resolve(outdir, url, where)
        checked[url] = full
        if not full:
            continue
        with open(full, "rb") as f:
            data = f.read()
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            why = check_png(data)
            if why:
                fail("%s: %r: %s" % (where, url, why))
        elif not data.startswith(b"\xff\xd8\xff"):
            fail("%s: %r is neither PNG nor JPEG" % (where, url))
    for url, where in page.links:
        resolve(outdir, url, where)
    return len(unique), page


def find_chromium():
    env = os.environ.get("CNNVIZ_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def browser_checks(outdir, n_images):
    chromium = find_chromium()
    if not chromium:
        fail("chromium not found: the report test needs it; run cmake/install-deps.sh")
        return
    page = os.path.join(os.path.realpath(outdir), "index.html")
    url = "file://" + urllib.parse.quote(page) + "?selftest"
    with tempfile.TemporaryDirectory(prefix="cnnviz-chromium-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-extensions", "--disable-sync",
               "--disable-component-update", "--no-default-browser-check", "--mute-audio",
               "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0", "--window-size=1280,1600",
               "--virtual-time-budget=60000", "--dump-dom", url]
        env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile)
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, env=env)
        except subprocess.TimeoutExpired:
            fail("chromium did not finish within 300 s")
            return
        except OSError as e:
            fail("cannot start %s: %s (run cmake/install-deps.sh)" % (chromium, e))
            return
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    for line in err.splitlines():
        m = re.search(r":CONSOLE[^\]]*\]\s*(.*)", line)
        if m:
            fail("console: %s" % m.group(1))
    if r.returncode != 0:
        fail("chromium exited with %d:\n%s" % (r.returncode, err[-3000:]))
        return
    m = re.search(r"<body[^>]*\sdata-selftest=\"([^\"]*)\"", out)
    if not m:
        fail("the page's selftest did not finish (no data-selftest on <body>; a script error?)")
        return
    verdict = html.unescape(m.group(1))
    if not verdict.startswith("ok "):
        fail("page selftest: %s" % verdict)
    elif verdict != "ok %d" % n_images:
        fail("page selftest checked %s images, the page references %d" % (verdict[3:], n_images))
    else:
        print("check_report: browser loaded %d images" % n_images)


def main():
    if len(sys.argv) != 2:
        print("usage: check_report.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    index = os.path.join(outdir, "index.html")
    try:
        with open(index, "rb") as f:
            raw = f.read()
    except OSError as e:
        print("check_report: FAIL: %s" % e, file=sys.stderr)
        return 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail("index.html is not UTF-8: %s" % e)
        text = raw.decode("utf-8", "replace")
    if not text.lstrip().lower().startswith("<!doctype html>"):
        fail("index.html does not start with <!DOCTYPE html>")
    n_images, _ = static_checks(outdir, text)
    if problems:
        # A page that already failed may reference the network: not opened.
        print("check_report: browser check skipped (static checks failed)", file=sys.stderr)
    else:
        browser_checks(outdir, n_images)
    if problems:
        for p in problems:
            print("check_report: FAIL: %s" % p, file=sys.stderr)
        print("check_report: %s: %d problem(s)" % (index, len(problems)), file=sys.stderr)
        return 1
    print("check_report: %s: ok (%d images)" % (index, n_images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
