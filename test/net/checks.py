"""The checks of one test script: check() counts each and prints the ones
that fail at once; finish() prints the tally and exits 1 when any failed."""
import sys

failures = []
count = 0


def check(cond, msg):
    global count
    count += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr, flush=True)


def finish(name):
    print("%s: %d checks, %d failures" % (name, count, len(failures)))
    sys.exit(1 if failures else 0)
