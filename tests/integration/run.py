#!/usr/bin/python3
"""Integration suite runner: every tests/integration/test_*.py, with real
components (redis-server, SMTP receivers) the tests start themselves on free
loopback ports. Prints 'integration: N passed, N failed' last."""
import argparse
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("pattern", nargs="?", default="test_*.py")
args = ap.parse_args()
root = os.path.dirname(os.path.dirname(here))
os.environ["RINGMAIL_BIN"] = os.path.join(root, args.build, "ringmail")
sys.path.insert(0, here)
suite = unittest.defaultTestLoader.discover(here, pattern=args.pattern)
res = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
passed = res.testsRun - failed - len(res.skipped)
# A skipped test is a failure here: tests install and start what they need.
failed += len(res.skipped)
print(f"integration: {passed} passed, {failed} failed")
sys.exit(1 if failed or res.testsRun == 0 else 0)
