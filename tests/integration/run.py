#!/usr/bin/python3
"""Integration suite runner: every tests/integration/test_*.py, with real
components (redis-server, SMTP receivers) the tests start themselves on free
loopback ports. Prints per-test and per-module wall times, the slowest last,
then 'integration: N passed, N failed' as the final line."""
import argparse
import os
import sys
import time
import unittest

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("--slowest", type=int, default=15,
                help="how many of the slowest tests to list at the end")
ap.add_argument("pattern", nargs="?", default="test_*.py")
args = ap.parse_args()
root = os.path.dirname(os.path.dirname(here))
os.environ["RINGMAIL_BIN"] = os.path.join(root, args.build, "ringmail")
sys.path.insert(0, here)


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


t_start = time.monotonic()
top = unittest.defaultTestLoader.discover(here, pattern=args.pattern)
runner = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult)
res = runner._makeResult()
res.failfast, res.buffer, res.tb_locals = False, False, False
mod_times = []
unittest.registerResult(res)
res.startTestRun()
try:
    # Each module runs as its own top-level suite so that its class and
    # module fixtures (setUpClass, tearDownModule) count in its own time.
    for mod in top:
        name = module_of(mod) or "?"     # before: a run suite drops its tests
        t0 = time.monotonic()
        mod(res)
        mod_times.append((time.monotonic() - t0, name))
finally:
    res.stopTestRun()
res.printErrors()
wall = time.monotonic() - t_start
print()
print("slowest tests:")
for dt, name in sorted(res.times, reverse=True)[:args.slowest]:
    print("  %7.1fs  %s" % (dt, name))
print("modules (incl. class/module fixtures):")
for dt, name in sorted(mod_times, reverse=True):
    print("  %7.1fs  %s" % (dt, name))
print("integration wall time: %.1fs" % wall)
failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
passed = res.testsRun - failed - len(res.skipped)
# A skipped test is a failure here: tests install and start what they need.
failed += len(res.skipped)
print(f"integration: {passed} passed, {failed} failed")
sys.exit(1 if failed or res.testsRun == 0 else 0)
