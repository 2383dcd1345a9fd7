"""Fleet control from the operator's side (issue 4): ringmail campaign
pause/resume/cancel, submit's control flags, suppression lists
(add/remove/check/import/export), ringmail events as JSON lines, and
status with the worker registry. Real redis-server; no worker runs here
(the worker's side of these records is tested with the worker)."""
import calendar
import csv
import io
import json
import os
import select
import signal
import subprocess
import sys
import time
import unittest

from services import Redis, Workdir, ringmail, write_config, BIN

CAMPAIGN = """name: fleet test
from: "Fleet <news@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""

FS = "\x1f"


class FleetBase(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.cfg = os.path.join(self.wd.path, "config.yaml")
        write_config(self.cfg, self.redis.port, {})
        self.camp = self.wd.file("campaign.yaml", CAMPAIGN)
        self.csv = self.wd.file("r.csv", "email,name\n" + "".join(
            "u%d@a.test,U%d\n" % (i, i) for i in range(10)))

    def tearDown(self):
        self.redis.stop()
        self.wd.cleanup()

    def rm(self, *args, check=True, **kw):
        return ringmail(args[0], "--config", self.cfg, *args[1:], check=check, **kw)

    def rcli(self, *args):
        """redis-cli with byte-exact arguments; returns raw stdout bytes."""
        argv = [b"redis-cli", b"-p", str(self.redis.port).encode(), b"--raw"]
        argv += [a if isinstance(a, bytes) else str(a).encode() for a in args]
        return subprocess.run(argv, capture_output=True, check=True).stdout

    def meta(self, cid, field):
        return self.redis.hget("rm:{%s}:meta" % cid, field)

    def submit(self, cid, *extra, check=True):
        return self.rm("submit", "--id", cid, *extra, self.camp, self.csv, check=check)


class CampaignControl(FleetBase):
    def test_pause_resume_cancel(self):
        self.submit("c1")
        self.assertEqual(self.meta("c1", "state"), "active")
        r = self.rm("campaign", "pause", "c1")
        self.assertEqual(r.stdout, "paused\n")
        self.assertEqual(self.meta("c1", "state"), "paused")
        self.assertRegex(self.meta("c1", "paused_ms"), r"^\d{13}$")
        self.assertEqual(self.redis.raw("SISMEMBER", "rm:active", "c1").strip(), "1")
        # Pausing twice is an error that names the state.
        r = self.rm("campaign", "pause", "c1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already paused", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.rm("campaign", "resume", "c1")
        self.assertEqual(r.stdout, "active\n")
        self.assertEqual(self.meta("c1", "state"), "active")
        self.assertEqual(self.meta("c1", "paused_ms"), "")
        self.assertRegex(self.meta("c1", "resumed_ms"), r"^\d{13}$")
        r = self.rm("campaign", "resume", "c1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("only a paused campaign can be resumed", r.stderr)
        r = self.rm("campaign", "cancel", "c1")
        self.assertEqual(r.stdout, "cancelling\n")
        self.assertEqual(self.meta("c1", "state"), "cancelling")
        self.assertRegex(self.meta("c1", "cancel_ms"), r"^\d{13}$")
        self.assertEqual(self.redis.raw("SISMEMBER", "rm:active", "c1").strip(), "1")
        for op in ("cancel", "pause", "resume"):
            r = self.rm("campaign", op, "c1", check=False)
            self.assertEqual(r.returncode, 1, op)
            self.assertIn("in state 'cancelling'", r.stderr)
        self.assertEqual(self.meta("c1", "state"), "cancelling")

    def test_cancel_paused_and_finished(self):
        self.submit("c2")
        self.rm("campaign", "pause", "c2")
        self.assertEqual(self.rm("campaign", "cancel", "c2").stdout, "cancelling\n")
        # What a worker does at the end; nothing is allowed afterwards.
        self.redis.cli("HSET", "rm:{c2}:meta", "state", "cancelled")
        for op in ("cancel", "pause", "resume"):
            r = self.rm("campaign", op, "c2", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("in state 'cancelled': it is finished", r.stderr)
        self.redis.cli("HSET", "rm:{c2}:meta", "state", "done")
        r = self.rm("campaign", "cancel", "c2", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("it is finished", r.stderr)
        self.assertEqual(self.meta("c2", "state"), "done")

    def test_errors(self):
        r = self.rm("campaign", "pause", "nope", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no campaign 'nope'", r.stderr)
        self.assertEqual(self.redis.raw("EXISTS", "rm:{nope}:meta").strip(), "0")
        self.assertEqual(self.rm("campaign", "stop", "x", check=False).returncode, 2)
        self.assertEqual(self.rm("campaign", "pause", "bad id!", check=False).returncode, 2)
        self.assertEqual(self.rm("campaign", "pause", check=False).returncode, 2)

    def test_scheduled_pause_resume_keeps_schedule(self):
        self.submit("s1", "--start-at", "2099-01-01T00:00:00Z")
        self.assertEqual(self.meta("s1", "state"), "scheduled")
        self.assertEqual(self.meta("s1", "total"), "10")
        self.assertEqual(self.rm("campaign", "pause", "s1").stdout, "paused\n")
        self.assertEqual(self.rm("campaign", "resume", "s1").stdout, "scheduled\n")
        # Once start_ms is past, resume goes straight to active.
        self.rm("campaign", "pause", "s1")
        self.redis.cli("HSET", "rm:{s1}:meta", "start_ms", "1000")
        self.assertEqual(self.rm("campaign", "resume", "s1").stdout, "active\n")

    def test_pause_while_submit_streams(self):
        # The end of submit must not overwrite an operator's pause.
        big = self.wd.file("big.csv", "email,name\n" + "".join(
            "u%d@a.test,U%d\n" % (i, i) for i in range(100000)))
        p = subprocess.Popen([BIN, "submit", "--config", self.cfg, "--id", "big",
                              "--batch", "1", self.camp, big],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            end = time.time() + 30
            while time.time() < end and self.meta("big", "state") != "submitting":
                time.sleep(0.01)
            self.assertEqual(self.rm("campaign", "pause", "big").stdout, "paused\n")
            self.assertEqual(self.meta("big", "submitted_ms"), "",
                             "the pause landed while the CSV was streaming")
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(self.meta("big", "state"), "paused")
        self.assertEqual(self.meta("big", "total"), "100000")
        self.assertRegex(self.meta("big", "submitted_ms"), r"^\d{13}$")
        self.assertEqual(self.rm("campaign", "resume", "big").stdout, "active\n")

    def test_pause_during_submission_survives(self):
        # A campaign paused while submitting stays paused when the CSV
        # has streamed in: hand-made "submitting" campaign, then resume.
        self.redis.cli("HSET", "rm:{m1}:meta", "state", "submitting")
        self.assertEqual(self.rm("campaign", "pause", "m1").stdout, "paused\n")
        self.assertEqual(self.rm("campaign", "resume", "m1").stdout, "submitting\n")


class SubmitFlags(FleetBase):
    def test_flags_recorded(self):
        self.submit("f1", "--priority", "8", "--rate", "120/m",
                    "--suppress-list", "news-2026", "--start-at", "2099-12-01T09:00:00Z")
        self.assertEqual(self.meta("f1", "priority"), "8")
        self.assertEqual(self.meta("f1", "rate_per_s"), "2")
        self.assertEqual(self.meta("f1", "suppress_list"), "news-2026")
        self.assertEqual(self.meta("f1", "start_ms"),
                         str(calendar.timegm((2099, 12, 1, 9, 0, 0)) * 1000))
        self.assertEqual(self.meta("f1", "state"), "scheduled")

    def test_defaults_and_unix_start(self):
        self.submit("f2", "--start-at", "1000", "--rate", "1/h")
        self.assertEqual(self.meta("f2", "priority"), "5")
        self.assertEqual(self.meta("f2", "start_ms"), "1000000")
        self.assertAlmostEqual(float(self.meta("f2", "rate_per_s")), 1 / 3600, places=9)
        # A start time in the past: active at once.
        self.assertEqual(self.meta("f2", "state"), "active")
        self.submit("f3")
        self.assertEqual(self.meta("f3", "priority"), "5")
        self.assertEqual(self.meta("f3", "start_ms"), "")
        self.assertEqual(self.meta("f3", "rate_per_s"), "")
        self.assertEqual(self.meta("f3", "suppress_list"), "")

    def test_bad_flags_write_nothing(self):
        for flag, val in (("--priority", "10"), ("--priority", "x"), ("--rate", "5"),
                          ("--rate", "0/s"), ("--rate", "3/d"),
                          ("--start-at", "2026-02-30T00:00:00Z"),
                          ("--start-at", "tomorrow"), ("--suppress-list", "a b")):
            r = self.submit("bad", flag, val, check=False)
            self.assertEqual(r.returncode, 2, (flag, val))
            self.assertIn(flag, r.stderr)
        self.assertEqual(self.redis.raw("KEYS", "rm:*").strip(), "")


class Suppress(FleetBase):
    def check(self, addr, *extra):
        r = self.rm("suppress", *extra, "check", addr, check=False)
        return r.returncode, json.loads(r.stdout) if r.stdout else None

    def test_add_check_remove(self):
        r = self.rm("suppress", "add", "Ann@Example.ORG", "--reason", 'said "stop", twice')
        self.assertIn("added ann@example.org", r.stdout)
        rc, j = self.check("ANN@example.org")
        self.assertEqual(rc, 0)
        self.assertTrue(j["suppressed"])
        self.assertEqual(j["address"], "ann@example.org")
        self.assertEqual(j["global"]["reason"], 'said "stop", twice')
        self.assertEqual(j["global"]["source"], "manual")
        self.assertAlmostEqual(j["global"]["ts"] / 1000, time.time(), delta=60)
        self.assertEqual(j["lists"], {})
        # The stored value is the documented format.
        v = self.rcli("HGET", "rm:suppress", "ann@example.org").rstrip(b"\n").split(b"\x1f")
        self.assertEqual(v[:2], [b'said "stop", twice', b"manual"])
        # A list entry is separate from the global one.
        self.rm("suppress", "--list", "news", "add", "bob@example.org", "--source", "unsubscribe")
        rc, j = self.check("bob@example.org")
        self.assertEqual(rc, 0)
        self.assertIsNone(j["global"])
        self.assertEqual(j["lists"]["news"]["source"], "unsubscribe")
        rc, j = self.check("bob@example.org", "--list", "other")
        self.assertEqual(rc, 1)
        self.assertFalse(j["suppressed"])
        # Remove, then it is no longer suppressed; a second remove fails.
        self.rm("suppress", "remove", "ann@EXAMPLE.org")
        rc, j = self.check("ann@example.org")
        self.assertEqual(rc, 1)
        self.assertFalse(j["suppressed"])
        self.assertEqual(self.rm("suppress", "remove", "ann@example.org", check=False).returncode, 1)
        # The change log, in order.
        log = self.rcli("XRANGE", "rm:suppress:log", "-", "+").decode().split("\n")
        ops = [(log[i + 2], log[i + 4], log[i + 6]) for i in range(0, len(log) - 1, 9)]
        self.assertEqual(ops, [("add", "ann@example.org", ""), ("add", "bob@example.org", "news"),
                               ("remove", "ann@example.org", "")])

    def test_usage_errors(self):
        self.assertEqual(self.rm("suppress", "add", "not-an-address", check=False).returncode, 2)
        self.assertEqual(self.rm("suppress", "add", "a@b.test", "--source", "Bad Src",
                                 check=False).returncode, 2)
        self.assertEqual(self.rm("suppress", "--list", "a:b", "export", check=False).returncode, 2)
        self.assertEqual(self.rm("suppress", "frob", check=False).returncode, 2)
        self.assertEqual(self.rm("suppress", "check", "a@b.test", "--reason", "x",
                                 check=False).returncode, 2)
        self.assertEqual(self.redis.raw("KEYS", "rm:*").strip(), "")

    def test_import_bad_rows(self):
        path = self.wd.file("s.csv", (
            "email,reason,source,ts\n"
            "one@a.test,\"quoted, \"\"reason\"\"\",bounce,1700000000000\n"
            "not-an-address,,,\n"
            "two@a.test,,,2026-01-01T00:00:00Z\n"
            "three@a.test,,BAD SOURCE,\n"
            "four@a.test,,,yesterday\n"
            "five@a.test,x\n"
            "six@a.test,\"bad \xff\",,\n"
            "ONE@A.TEST,again,complaint,5\n").encode("latin-1"))
        r = self.rm("suppress", "--list", "imp", "import", path)
        for line in (3, 5, 6, 7, 8):
            self.assertIn("s.csv:%d:" % line, r.stderr)
        self.assertNotIn("s.csv:2:", r.stderr)
        self.assertNotIn("s.csv:4:", r.stderr)
        self.assertIn("imported=3 new=2 updated=1 rejected=5 list=imp", r.stdout)
        rc, j = self.check("one@a.test", "--list", "imp")
        self.assertEqual(j["lists"]["imp"], {"reason": "again", "source": "complaint", "ts": 5})
        rc, j = self.check("two@a.test")
        self.assertEqual(j["lists"]["imp"]["ts"], 1767225600000)
        self.assertEqual(j["lists"]["imp"]["source"], "import")

    def test_import_export_round_trip_100k(self):
        n = 100000
        rows = ["email,reason,source,ts"]
        expect = {}
        for i in range(n):
            reason = ["", "hard bounce", 'says "no", loudly', "é unicode"][i % 4]
            src = ["bounce", "complaint", "unsubscribe", "manual"][i % 4]
            ts = 1700000000000 + i
            addr = "user%06d@d%d.test" % (i, i % 7)
            q = '"%s"' % reason.replace('"', '""') if ("," in reason or '"' in reason) else reason
            rows.append("%s,%s,%s,%d" % (addr.upper() if i % 3 == 0 else addr, q, src, ts))
            expect[addr] = (reason, src, str(ts))
        path = self.wd.file("big.csv", "\n".join(rows) + "\n")
        small = self.wd.file("small.csv", "\n".join(rows[:1001]) + "\n")
        rss_small = self.maxrss("suppress", "--list", "small", "import", small)
        t0 = time.time()
        rss_big = self.maxrss("suppress", "import", path)
        took = time.time() - t0
        self.assertEqual(self.redis.raw("HLEN", "rm:suppress").strip(), str(n))
        # Flat memory: 100x the rows, no more than a few MB more.
        self.assertLess(rss_big, rss_small + 8 * 1024, (rss_small, rss_big))
        self.assertLess(took, 60)
        self.assertEqual(self.redis.raw("XLEN", "rm:suppress:log").strip() != "0", True)
        r = self.rm("suppress", "export")
        got = {}
        rd = csv.reader(io.StringIO(r.stdout))
        self.assertEqual(next(rd), ["email", "reason", "source", "ts"])
        for row in rd:
            self.assertEqual(len(row), 4)
            got[row[0]] = tuple(row[1:])
        self.assertEqual(len(got), n)
        self.assertEqual(got, expect)
        # And back: exporting into a file and importing it into a list
        # gives the same entries.
        out = self.wd.file("exp.csv", r.stdout)
        self.rm("suppress", "--list", "copy", "import", out)
        r2 = self.rm("suppress", "--list", "copy", "export")
        got2 = {row[0]: tuple(row[1:]) for row in list(csv.reader(io.StringIO(r2.stdout)))[1:]}
        self.assertEqual(got2, expect)

    def maxrss(self, *args):
        """Peak RSS (KiB) of one ringmail run, measured in a child python."""
        code = ("import resource,subprocess,sys;"
                "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE);"
                "sys.stderr.write(r.stderr.decode()[-2000:]);"
                "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        # Under ASan freed blocks sit in a quarantine (256 MB by default),
        # which would hide whether the import itself stays flat.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "quarantine_size_mb=0"]))
        r = subprocess.run([sys.executable, "-c", code, BIN, args[0], "--config", self.cfg]
                           + list(args[1:]), capture_output=True, text=True, timeout=300,
                           env=env)
        rc, rss = r.stdout.split()
        self.assertEqual(rc, "0", r.stderr)
        return int(rss)


class Events(FleetBase):
    TEXT = 'he said "hi"\r\nline2\t\\end \x01 é'

    def add_event(self, *fields):
        out = self.rcli("XADD", "rm:events", "*", *fields)
        return out.decode().strip()

    def events(self, *args):
        r = self.rm("events", *args)
        return [json.loads(line) for line in r.stdout.splitlines()]

    def test_json_lines(self):
        ids = []
        for i in range(5):
            ids.append(self.add_event("v", "1", "type", "delivered" if i % 2 else "bounced",
                                      "campaign", "c%d" % (i % 2), "rcpt", "u%d@x.test" % i,
                                      "code", "250", "text", self.TEXT, "ts", str(1000 + i)))
        # Invalid UTF-8 straight into the stream.
        bad = self.add_event("v", "1", "type", "failed", "campaign", "c9",
                             "text", b"bad \xff\xfe bytes \xc3")
        evs = self.events()
        self.assertEqual([e["id"] for e in evs], ids + [bad])
        self.assertEqual(evs[0], {"id": ids[0], "v": "1", "type": "bounced", "campaign": "c0",
                                  "rcpt": "u0@x.test", "code": "250", "text": self.TEXT,
                                  "ts": "1000"})
        self.assertEqual(evs[-1]["text"], "bad \ufffd\ufffd bytes \ufffd")
        # Every line is one JSON object, nothing else.
        r = self.rm("events")
        self.assertEqual(len(r.stdout.splitlines()), 6)
        for line in r.stdout.splitlines():
            self.assertIsInstance(json.loads(line), dict)
        # Filters.
        self.assertEqual([e["id"] for e in self.events("--campaign", "c1")], [ids[1], ids[3]])
        self.assertEqual([e["id"] for e in self.events("--last", "2")], [ids[4], bad])
        self.assertEqual([e["id"] for e in self.events("--last", "1", "--campaign", "c0")], [ids[4]])
        self.assertEqual([e["id"] for e in self.events("--since", ids[2])], [ids[3], ids[4], bad])
        self.assertEqual([e["id"] for e in self.events("--count", "2")], ids[:2])
        self.assertEqual([e["id"] for e in self.events("--since", ids[0], "--count", "1",
                                                     "--campaign", "c0")], [ids[2]])
        self.assertEqual(self.rm("events", "--since", "x", check=False).returncode, 2)
        self.assertEqual(self.rm("events", "--since", "1", "--last", "1",
                                 check=False).returncode, 2)

    def test_paging_over_many(self):
        # More than one XRANGE page (1000).
        pipe = "".join("XADD rm:events * v 1 type delivered campaign p idx %d\n" % i
                       for i in range(2500))
        subprocess.run(["redis-cli", "-p", str(self.redis.port)], input=pipe, text=True,
                       capture_output=True, check=True)
        evs = self.events()
        self.assertEqual([int(e["idx"]) for e in evs], list(range(2500)))
        evs = self.events("--last", "1500")
        self.assertEqual([int(e["idx"]) for e in evs], list(range(1000, 2500)))

    def readline(self, p, timeout=10):
        """One line from p's unbuffered stdout, without blocking forever."""
        buf = self.pending.setdefault(p.pid, b"")
        end = time.time() + timeout
        while b"\n" not in buf and time.time() < end:
            if select.select([p.stdout], [], [], 0.2)[0]:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
        if b"\n" not in buf:
            self.fail("no line from ringmail events --follow within %ds" % timeout)
        line, buf = buf.split(b"\n", 1)
        self.pending[p.pid] = buf
        return line.decode()

    def follow(self, *args):
        self.pending = getattr(self, "pending", {})
        return subprocess.Popen([BIN, "events", "--config", self.cfg, "--follow"] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)

    def test_follow_then_sigterm(self):
        first = self.add_event("v", "1", "type", "delivered", "campaign", "c1", "ts", "1")
        p = self.follow("--last", "1")
        try:
            self.assertEqual(json.loads(self.readline(p))["id"], first)
            other = self.add_event("v", "1", "type", "bounced", "campaign", "other", "ts", "2")
            new = self.add_event("v", "1", "type", "cancelled", "campaign", "c1",
                                 "text", 'a "quoted"\nnewline', "ts", "3")
            # Both new entries arrive, in order (no campaign filter here).
            e = json.loads(self.readline(p))
            e2 = json.loads(self.readline(p))
            self.assertEqual((e["id"], e["type"]), (other, "bounced"))
            self.assertEqual((e2["id"], e2["text"]), (new, 'a "quoted"\nnewline'))
            t0 = time.time()
            p.send_signal(signal.SIGTERM)
            p.wait(10)
            self.assertEqual(p.returncode, 0, p.stderr.read().decode())
            self.assertLess(time.time() - t0, 3)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_follow_campaign_filter_sigint(self):
        p = self.follow("--last", "0", "--campaign", "c1")
        try:
            time.sleep(0.5)  # let it take its position at the stream's end
            self.add_event("v", "1", "type", "delivered", "campaign", "c2")
            want = self.add_event("v", "1", "type", "expired", "campaign", "c1")
            self.assertEqual(json.loads(self.readline(p))["id"], want)
            p.send_signal(signal.SIGINT)
            p.wait(10)
            self.assertEqual(p.returncode, 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


class Status(FleetBase):
    def test_workers(self):
        now = int(time.time() * 1000)
        self.rcli("HSET", "rm:workers",
                  "hostA-101-0", FS.join([str(now), "8", "hostA", "101", "5000", "40"]),
                  "hostB-202-0", FS.join([str(now - 60000), "4", "hostB", "202", "7", "0"]),
                  "junk", "not a heartbeat")
        r = self.rm("status", "--workers")
        lines = {l.split()[0]: dict(kv.split("=", 1) for kv in l.split())
                 for l in r.stdout.splitlines()}
        a = lines["worker=hostA-101-0"]
        self.assertEqual((a["state"], a["threads"], a["host"], a["pid"], a["delivered"], a["held"]),
                         ("live", "8", "hostA", "101", "5000", "40"))
        self.assertLess(float(a["age"]), 15)
        self.assertEqual(lines["worker=hostB-202-0"]["state"], "stale")
        self.assertEqual(lines["worker=junk"]["state"], "bad")
        self.assertEqual(len(lines), 3)
        # The overview's header line counts live workers only.
        self.submit("st1")
        r = self.rm("status")
        first, rest = r.stdout.split("\n", 1)
        self.assertEqual(first, "workers live=1 stale=2 threads=8 held=40 names=hostA-101-0")
        self.assertIn("campaign=st1 state=active total=10 sent=0", rest)
        self.assertRegex(rest, r"jobs=1 pending=0 rate=0\.0 eta=- priority=5 rate_cap=-")

    def test_rate_eta_queue_depths(self):
        self.submit("st2", "--batch", "3", "--rate", "10/s")
        now = int(time.time() * 1000)
        # 4 of 10 final after 2 s: rate 1.5 sent/s, ETA 6 / 2 per s = 3 s.
        self.redis.cli("HSET", "rm:{st2}:meta", "submitted_ms", str(now - 2000))
        self.redis.cli("HSET", "rm:{st2}:stats", "sent", "3", "bounced", "1")
        self.redis.cli("ZADD", "rm:{st2}:retry", "1", "x")
        self.redis.cli("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2",
                       "STREAMS", "rm:{st2}:jobs", ">")
        r = self.rm("status", "st2")
        line = [l for l in r.stdout.splitlines() if l.startswith("campaign=")][0]
        kv = dict(x.split("=", 1) for x in line.split())
        self.assertEqual((kv["jobs"], kv["pending"], kv["retrying"]), ("4", "2", "1"))
        self.assertAlmostEqual(float(kv["rate"]), 1.5, delta=0.2)
        self.assertTrue(2 <= int(kv["eta"]) <= 4, kv["eta"])
        self.assertEqual(kv["rate_cap"], "10")
        self.assertEqual(kv["progress"], "40.0")
        # Expired, suppressed and cancelled outcomes count as done.
        self.redis.cli("HSET", "rm:{st2}:stats", "expired", "1", "suppressed", "2",
                       "cancelled", "1")
        kv = dict(x.split("=", 1) for x in
                  [l for l in self.rm("status", "st2").stdout.splitlines()
                   if l.startswith("campaign=")][0].split())
        self.assertEqual((kv["done"], kv["progress"], kv["expired"], kv["suppressed"],
                          kv["cancelled"]), ("8", "80.0", "1", "2", "1"))
        # Paused: no ETA.
        self.rm("campaign", "pause", "st2")
        kv = dict(x.split("=", 1) for x in
                  [l for l in self.rm("status", "st2").stdout.splitlines()
                   if l.startswith("campaign=")][0].split())
        self.assertEqual((kv["state"], kv["eta"]), ("paused", "-"))


if __name__ == "__main__":
    unittest.main()
