"""BENCHMARKS.md sections: each benchmark script owns one '## Title' section
and replaces it (or appends it) without touching the others."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_section(title, text):
    """text starts with '## ' + title."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        old = f.read()
    i = old.find("\n## " + title)
    if i >= 0:
        j = old.find("\n## ", i + 1)
        old = old[:i] + (old[j:] if j >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)
