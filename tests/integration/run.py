#!/usr/bin/python3
"""Integration suite runner: every tests/integration/test_*.py, with real
components (redis-server, SMTP receivers) the tests start themselves on free
loopback ports. Prints per-test and per-module wall times, the slowest last,
then 'integration: N passed, N failed' as the final line; exit status 1 if
anything failed or was skipped.

    run.py [--build DIR] [-j N] [--slowest N] [PATTERN]

-j N (default 3, or $RINGMAIL_TEST_JOBS) runs N test modules at once, each
in a process of its own (this script with --report); a module's output is
printed in one piece when it ends. Most of the suite waits on timers and
peers rather than the CPU, so this pays off even on two cores. Every test
starts its own redis-server and receivers; each process picks ports from
its own range (services.free_port, RINGMAIL_TEST_SLOT). Modules start
longest first, by the times of the last run (BUILD/integration-times.json).
A module with a line 'RUN_ALONE = True' (its assertions hold only if it is
not starved of CPU for a few hundred ms) runs at the end, by itself.
-j 1 runs everything in this process, one module after another.

Work directories (TMPDIR for the tests and everything they start) go to a
fresh directory under $RINGMAIL_TEST_TMPDIR, default /dev/shm when it is
there: tens of thousands of small files per run and Redis/Postfix fsyncs
then cost no disk I/O on a shared machine. It is removed at the end unless
RINGMAIL_KEEP=1. RINGMAIL_TEST_TMPDIR= (empty) keeps the usual TMPDIR."""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("-j", "--jobs", type=int,
                default=int(os.environ.get("RINGMAIL_TEST_JOBS", "3")),
                help="test modules run at once (processes)")
ap.add_argument("--slowest", type=int, default=15,
                help="how many of the slowest tests to list at the end")
ap.add_argument("--report", help=argparse.SUPPRESS)   # child: results as JSON
ap.add_argument("pattern", nargs="?", default="test_*.py")
args = ap.parse_args()
root = os.path.dirname(os.path.dirname(here))
os.environ["RINGMAIL_BIN"] = os.path.join(root, args.build, "ringmail")
sys.path.insert(0, here)
TIMES = os.path.join(root, args.build, "integration-times.json")


class TimedResult(unittest.TextTestResult):
    """Records each test's wall time (setUp + test + tearDown)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.times = []

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.times.append((time.monotonic() - self._t0, test.id()))


def module_of(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            m = module_of(t)
            if m:
                return m
        else:
            return t.__class__.__module__
    return None


def run_here():
    """Run the matching modules in this process, one after another.
    Returns a summary dict (also what a child writes to --report)."""
    top = unittest.defaultTestLoader.discover(here, pattern=args.pattern)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult)
    res = runner._makeResult()
    mod_times = []
    unittest.registerResult(res)
    res.startTestRun()
    try:
        # Each module runs as its own top-level suite so that its class
        # and module fixtures (setUpClass, tearDownModule) count in its
        # own time.
        for mod in top:
            name = module_of(mod) or "?"    # before: a run suite drops its tests
            t0 = time.monotonic()
            mod(res)
            mod_times.append((time.monotonic() - t0, name))
    finally:
        res.stopTestRun()
    res.printErrors()
    sys.stdout.flush()
    sys.stderr.flush()
    bad = [t.id() for t, _ in res.failures + res.errors]
    bad += [t.id() for t in res.unexpectedSuccesses]
    return {"run": res.testsRun,
            "failed": len(bad),
            "skipped": [t.id() for t, _ in res.skipped],
            "bad": bad,
            "times": res.times,
            "modules": mod_times}


def load_times():
    try:
        with open(TIMES) as f:
            return {k: float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_times(mod_times):
    # Keep entries of modules not run this time (a PATTERN run).
    known = load_times()
    known.update({name: round(dt, 1) for dt, name in mod_times})
    try:
        with open(TIMES + ".tmp", "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
        os.replace(TIMES + ".tmp", TIMES)
    except OSError:
        pass


def run_parallel(jobs):
    """One child process per test module, at most `jobs` at once."""
    files = sorted(glob.glob(os.path.join(here, args.pattern)))
    mods = [os.path.basename(f) for f in files
            if os.path.basename(f).startswith("test_") and f.endswith(".py")]
    known = load_times()
    alone = set()
    for m in mods:
        with open(os.path.join(here, m), errors="replace") as f:
            if re.search(r"^RUN_ALONE\s*=\s*True\b", f.read(), re.M):
                alone.add(m)
    # Longest first; a module without a recorded time first of all; the
    # ones that run alone last.
    mods.sort(key=lambda m: (m in alone, -known.get(m[:-3], 1e9)))
    tmp = tempfile.mkdtemp(prefix="ringmail-run-")
    total = {"run": 0, "failed": 0, "skipped": [], "bad": [], "times": [],
             "modules": []}
    free = list(range(jobs))
    running = []        # (proc, module, slot, out path, report path, t0)
    t_start = time.monotonic()
    print("integration: %d modules, %d at a time (%s alone at the end)"
          % (len(mods), jobs, ", ".join(sorted(m[:-3] for m in alone)) or "none"),
          flush=True)
    while mods or running:
        while mods and free:
            if mods[0] in alone and running:
                break               # wait for the others to end
            if running and running[0][1] in alone:
                break
            m = mods.pop(0)
            slot = free.pop(0)
            out = os.path.join(tmp, m + ".out")
            rep = os.path.join(tmp, m + ".json")
            env = dict(os.environ, RINGMAIL_TEST_SLOT=str(slot),
                       PYTHONUNBUFFERED="1")
            with open(out, "w") as f:
                p = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                      "--build", args.build, "-j", "1",
                                      "--report", rep, m],
                                     stdout=f, stderr=subprocess.STDOUT, env=env)
            running.append((p, m, slot, out, rep, time.monotonic()))
        time.sleep(0.05)
        for entry in [e for e in running if e[0].poll() is not None]:
            running.remove(entry)
            p, m, slot, out, rep, t0 = entry
            free.append(slot)
            dt = time.monotonic() - t0
            try:
                with open(rep) as f:
                    r = json.load(f)
            except (OSError, ValueError):
                # The child died before it could report: the module fails.
                r = {"run": 1, "failed": 1, "skipped": [],
                     "bad": ["%s (runner exit status %s, no report)"
                             % (m, p.returncode)],
                     "times": [], "modules": [(dt, m[:-3])]}
            with open(out, errors="replace") as f:
                text = f.read()
            print("\n== %s: %d run, %d failed, %d skipped, %.1fs (at %.0fs) =="
                  % (m[:-3], r["run"], r["failed"], len(r["skipped"]), dt,
                     time.monotonic() - t_start))
            sys.stdout.write(text)
            sys.stdout.flush()
            for k in ("run", "failed"):
                total[k] += r[k]
            total["skipped"] += r["skipped"]
            total["bad"] += r["bad"]
            for k in ("times", "modules"):
                total[k] += [tuple(x) for x in r[k]]
    for f in glob.glob(os.path.join(tmp, "*")):
        os.remove(f)
    os.rmdir(tmp)
    return total


def private_tmp():
    """A fresh TMPDIR on RAM (see the top), or None."""
    base = os.environ.get("RINGMAIL_TEST_TMPDIR", "/dev/shm")
    if not base or not os.path.isdir(base) or not os.access(base, os.W_OK):
        return None
    d = tempfile.mkdtemp(prefix="rmt-", dir=base)
    os.chmod(d, 0o755)      # like /tmp: Postfix's delivery user walks through
    os.environ["TMPDIR"] = d
    tempfile.tempdir = None     # gettempdir() looks at TMPDIR again
    return d


t_start = time.monotonic()
if args.report:
    r = run_here()
    with open(args.report + ".tmp", "w") as f:
        json.dump(r, f)
    os.replace(args.report + ".tmp", args.report)
    sys.exit(0)
tmpdir = private_tmp()
try:
    if args.jobs > 1:
        r = run_parallel(args.jobs)
    else:
        r = run_here()
finally:
    if tmpdir and os.environ.get("RINGMAIL_KEEP") == "1":
        print("work directories kept in %s" % tmpdir)
    elif tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
wall = time.monotonic() - t_start
if r["modules"]:
    save_times(r["modules"])
print()
if args.slowest > 0:
    print("slowest tests:")
    for dt, name in sorted(r["times"], reverse=True)[:args.slowest]:
        print("  %7.1fs  %s" % (dt, name))
print("modules (incl. class/module fixtures):")
for dt, name in sorted(r["modules"], reverse=True):
    print("  %7.1fs  %s" % (dt, name))
if r["bad"] or r["skipped"]:
    print("failed:")
    for name in r["bad"]:
        print("  " + name)
    for name in r["skipped"]:
        print("  %s (skipped)" % name)
print("integration wall time: %.1fs (%d at a time)" % (wall, max(1, args.jobs)))
failed = r["failed"]
passed = r["run"] - failed - len(r["skipped"])
# A skipped test is a failure here: tests install and start what they need.
failed += len(r["skipped"])
print(f"integration: {passed} passed, {failed} failed")
sys.exit(1 if failed or r["run"] == 0 else 0)
