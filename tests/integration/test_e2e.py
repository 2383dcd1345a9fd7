"""End to end: ringmail submit -> Redis -> ringmail worker -> real SMTP
receiver (aiosmtpd), checking exactly-once arrival, well-formed messages,
personalisation, counters and events in Redis."""
import email
import email.policy
import os
import signal
import subprocess
import time
import unittest

from services import Redis, Sink, Workdir, ringmail, write_config, BIN

DOMAINS = ["alpha.test", "beta.test", "gamma.test", "delta.test", "epsilon.test"]

CAMPAIGN = """name: e2e test
from: "Ringmail Test <news@sender.test>"
subject: "Hello {{first_name}} from {{city}}"
text: |
  Hi {{first_name}},
  your token is {{token}}.
  .
  .a line that starts with a dot
html: |
  <p>Hi {{first_name}} &amp; welcome, token {{token}}</p>
headers:
  X-Campaign: e2e
"""


def make_csv(n, special=None):
    rows = ["email,first_name,city,token"]
    names = ["Alice", "Bob", "Zoë", "José", "Ærle"]
    for i in range(n):
        local = "user%05d" % i
        if special:
            local = special(i) or local
        rows.append("%s@%s,%s,\"City, %d\",tok%06d" %
                    (local, DOMAINS[i % len(DOMAINS)], names[i % len(names)], i, i))
    return "\n".join(rows) + "\n"


class E2E(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.sink = Sink(self.wd.path)
        self.cfg = os.path.join(self.wd.path, "config.yaml")
        write_config(self.cfg, self.redis.port, {d: self.sink.port for d in DOMAINS})
        self.camp = self.wd.file("campaign.yaml", CAMPAIGN)

    def tearDown(self):
        self.sink.stop()
        self.redis.stop()
        self.wd.cleanup()

    def submit(self, csv_text, *extra):
        csv_path = self.wd.file("rcpts.csv", csv_text)
        r = ringmail("submit", "--config", self.cfg, *extra, self.camp, csv_path)
        cid = r.stdout.strip()
        self.assertRegex(cid, r"^[A-Za-z0-9_.-]+$")
        return cid, r

    def run_worker(self, timeout=120):
        return ringmail("worker", "--config", self.cfg, "--until-done", timeout=timeout)

    def test_exactly_once_1000(self):
        n = 1000
        cid, _ = self.submit(make_csv(n))
        self.run_worker()
        msgs = self.sink.messages()
        rcpts = [m["rcpt_tos"][0] for m in msgs]
        self.assertEqual(len(msgs), n, "every recipient arrives")
        self.assertEqual(len(set(rcpts)), n, "no recipient twice")
        expect = {"user%05d@%s" % (i, DOMAINS[i % 5]) for i in range(n)}
        self.assertEqual(set(rcpts), expect)
        names = ["Alice", "Bob", "Zoë", "José", "Ærle"]
        for m in msgs:
            raw = m["data"]
            self.assertEqual(m["mail_from"], "news@sender.test")
            # CRLF everywhere, no bare CR or LF, no line over 998 octets.
            self.assertNotRegex(raw, rb"[^\r]\n")
            self.assertNotRegex(raw, rb"\r[^\n]")
            for line in raw.split(b"\r\n"):
                self.assertLessEqual(len(line), 998)
            msg = email.message_from_bytes(raw, policy=email.policy.strict)
            i = int(m["rcpt_tos"][0][4:9])
            self.assertEqual(msg["To"], m["rcpt_tos"][0])
            self.assertEqual(str(msg["Subject"]),
                             "Hello %s from City, %d" % (names[i % 5], i))
            self.assertTrue(msg["Message-ID"])
            self.assertTrue(msg["Date"])
            self.assertEqual(msg["MIME-Version"], "1.0")
            self.assertEqual(msg["X-Campaign"], "e2e")
            self.assertEqual(msg.get_content_type(), "multipart/alternative")
            text = msg.get_body(("plain",)).get_content()
            html = msg.get_body(("html",)).get_content()
            self.assertIn("your token is tok%06d." % i, text)
            self.assertIn("Hi %s," % names[i % 5], text)
            # Dot-stuffing was undone by the receiver: content intact.
            self.assertIn("\n.\n.a line that starts with a dot", text.replace("\r\n", "\n"))
            self.assertIn("token tok%06d" % i, html)
        # Message-IDs unique.
        ids = {email.message_from_bytes(m["data"])["Message-ID"] for m in msgs}
        self.assertEqual(len(ids), n)
        # Redis: counters, state, events, nothing pending.
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(self.redis.hget("rm:{%s}:meta" % cid, "state"), "done")
        self.assertEqual(self.redis.hget("rm:{%s}:meta" % cid, "total"), str(n))
        self.assertEqual(stats.get("sent"), str(n))
        self.assertNotIn("bounced", stats)
        self.assertEqual(self.redis.raw("XLEN", "rm:events").strip(), str(n))
        pend = self.redis.raw("XPENDING", "rm:{%s}:jobs" % cid, "workers").split("\n")
        self.assertEqual(pend[0].strip(), "0")
        self.assertEqual(self.redis.raw("SISMEMBER", "rm:active", cid).strip(), "0")
        self.assertEqual(self.redis.raw("BITCOUNT", "rm:{%s}:done" % cid).strip(), str(n))
        st = ringmail("status", "--config", self.cfg, cid).stdout
        self.assertIn("campaign=%s state=done total=%d sent=%d" % (cid, n, n), st)
        self.assertIn("progress=100.0", st)

    def test_bounce_defer_fail(self):
        # bounce* -> 550 at RCPT, defer* -> 451 (3 attempts, then failed).
        def special(i):
            if i % 10 == 1:
                return "bounce%03d" % i
            if i % 10 == 2:
                return "defer%03d" % i
            return None
        n = 100
        cid, _ = self.submit(make_csv(n, special))
        t0 = time.time()
        self.run_worker(timeout=90)
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(int(stats["sent"]), 80)
        self.assertEqual(int(stats["bounced"]), 10)
        self.assertEqual(int(stats["failed"]), 10)
        # Each defer* recipient was deferred twice, then failed on the 3rd.
        self.assertEqual(int(stats["deferred"]), 20)
        self.assertGreaterEqual(time.time() - t0, 2.0, "retries waited for the delay")
        self.assertEqual(len(self.sink.messages()), 80)
        ev = self.redis.raw("XRANGE", "rm:events", "-", "+")
        self.assertEqual(ev.count("\nbounced\n"), 10)
        self.assertEqual(ev.count("\nfailed\n"), 10)
        self.assertIn("5.1.1", ev)
        self.assertIn("User unknown", ev)
        self.assertEqual(self.redis.hget("rm:{%s}:meta" % cid, "state"), "done")
        # One final outcome per recipient.
        self.assertEqual(self.redis.raw("BITCOUNT", "rm:{%s}:done" % cid).strip(), str(n))

    def test_unreachable_destination_defers(self):
        # A route to a port where nothing listens: deferred, then failed.
        write_config(self.cfg, self.redis.port, {d: 1 for d in DOMAINS},
                     extra="smtp:\n  host_penalty: 200ms\n")
        with open(self.cfg, "a") as f:
            f.write("")
        n = 20
        cid, _ = self.submit(make_csv(n))
        self.run_worker(timeout=90)
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(int(stats["failed"]), n)
        self.assertNotIn("sent", stats)
        ev = self.redis.raw("XRANGE", "rm:events", "-", "+")
        self.assertIn("Connection refused", ev)

    def test_sigterm_drains_then_resumes(self):
        n = 300
        self.sink.stop()
        self.sink = Sink(self.wd.path, name="slow", delay=0.02)
        write_config(self.cfg, self.redis.port, {d: self.sink.port for d in DOMAINS})
        cid, _ = self.submit(make_csv(n))
        p = subprocess.Popen([BIN, "worker", "--config", self.cfg],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.time() + 30
        while time.time() < end and len(os.listdir(self.sink.outdir)) < 40:
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("draining", err)
        got = len(self.sink.messages())
        self.assertLess(got, n, "the drain stopped the campaign part way")
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(int(stats.get("sent", 0)), got, "every delivery was recorded")
        # A second worker finishes; nobody is delivered twice.
        self.run_worker()
        msgs = self.sink.messages()
        rcpts = [m["rcpt_tos"][0] for m in msgs]
        self.assertEqual(len(rcpts), n)
        self.assertEqual(len(set(rcpts)), n)
        self.assertEqual(self.redis.hgetall("rm:{%s}:stats" % cid)["sent"], str(n))


    def test_records_written_by_another_client(self):
        """The README's redis-cli recipe: a producer that is not ringmail."""
        r = self.redis
        r.cli("XGROUP", "CREATE", "rm:{demo}:jobs", "workers", "0", "MKSTREAM")
        r.cli("HSET", "rm:{demo}:meta", "v", "1", "id", "demo", "name", "Demo",
              "from", "Demo <news@example.org>", "from_addr", "news@example.org",
              "subject", "Hi {{name}}", "text", "Hello {{name}}!",
              "columns", "email\x1fname", "email_col", "0", "state", "active", "total", "2")
        r.cli("HSET", "rm:{demo}:stats", "queued", "2")
        r.cli("XADD", "rm:{demo}:jobs", "*", "n", "2", "i", "0", "a", "0",
              "r", "ann@alpha.test\x1fAnn\x1ebob@beta.test\x1fBob")
        r.cli("ZADD", "rm:campaigns", "1", "demo")
        r.cli("SADD", "rm:active", "demo")
        self.run_worker()
        msgs = {m["rcpt_tos"][0]: m["data"] for m in self.sink.messages()}
        self.assertEqual(sorted(msgs), ["ann@alpha.test", "bob@beta.test"])
        self.assertIn(b"Hello Ann!", msgs["ann@alpha.test"])
        self.assertIn(b"Subject: Hi Bob", msgs["bob@beta.test"])
        self.assertEqual(r.hget("rm:{demo}:meta", "state"), "done")


class Submit(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.cfg = os.path.join(self.wd.path, "config.yaml")
        write_config(self.cfg, self.redis.port, {})
        self.camp = self.wd.file("campaign.yaml", CAMPAIGN)

    def tearDown(self):
        self.redis.stop()
        self.wd.cleanup()

    BAD = ("email,first_name,city,token\n"
           "ok1@alpha.test,A,B,t1\n"
           "not-an-address,A,B,t2\n"
           "ok2@alpha.test,A,B\n"
           "ok3@alpha.test,\"A\nB\",C,t3\n"
           "ok4@alpha.test,\xff,C,t4\n")

    def test_bad_rows_reported_and_skipped(self):
        csv_path = self.wd.file("r.csv", self.BAD.encode("latin-1"))
        r = ringmail("submit", "--config", self.cfg, self.camp, csv_path)
        cid = r.stdout.strip()
        self.assertIn("r.csv:3:", r.stderr)
        self.assertIn("r.csv:4:", r.stderr)
        self.assertIn("r.csv:7", r.stderr)
        self.assertIn("2 recipients queued, 3 rows rejected", r.stderr)
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(stats["queued"], "2")
        self.assertEqual(stats["invalid"], "3")

    def test_strict_writes_nothing(self):
        csv_path = self.wd.file("r.csv", self.BAD.encode("latin-1"))
        r = ringmail("submit", "--strict", "--config", self.cfg, self.camp, csv_path,
                     check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertIn("nothing submitted", r.stderr)
        self.assertEqual(self.redis.raw("KEYS", "rm:*").strip(), "")

    def test_unknown_variable_is_a_submit_error(self):
        camp = self.wd.file("c2.yaml", CAMPAIGN.replace("{{token}}.", "{{tokn}}."))
        csv_path = self.wd.file("r.csv", "email,first_name,city,token\na@b.test,x,y,z\n")
        r = ringmail("submit", "--config", self.cfg, camp, csv_path, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"c2\.yaml\(text\):2:\d+: .*tokn")
        self.assertEqual(self.redis.raw("KEYS", "rm:*").strip(), "")

    def test_missing_email_column(self):
        csv_path = self.wd.file("r.csv", "mail,first_name\na@b.test,x\n")
        r = ringmail("submit", "--config", self.cfg, self.camp, csv_path, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no 'email' column", r.stderr)

    def test_config_error_exit_2(self):
        bad = self.wd.file("bad.yaml", "redis:\n  port: 70000\nsmtp:\n  bogus: 1\n")
        r = ringmail("worker", "--config", bad, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"bad\.yaml:2:\d+: .*port")

    def test_env_overrides_redis(self):
        env = dict(os.environ, RINGMAIL_REDIS="127.0.0.1:%d" % self.redis.port)
        cfg = self.wd.file("noredis.yaml", "log:\n  level: warn\n")
        csv_path = self.wd.file("r.csv", "email,first_name,city,token\na@b.test,x,y,z\n")
        r = ringmail("submit", "--config", cfg, self.camp, csv_path, env=env)
        cid = r.stdout.strip()
        self.assertEqual(self.redis.hgetall("rm:{%s}:stats" % cid)["queued"], "1")


if __name__ == "__main__":
    unittest.main()
