"""Per-site transport policy (issue 3): the stages of smtp.timeouts and
the STARTTLS policy smtp.tls can be overridden in shaping layers
(defaults, sites by site key or domain, sources). A peer that never
answers the final dot costs the site's own data_dot, not the global 10
minutes; one site can require TLS while others use it opportunistically
or not at all."""
import os
import time
import unittest

from services import Redis, Sink, Workdir, make_cert, ringmail
from transport_util import EvilSMTP, events, run_worker, stats

CAMP = """name: site timeouts
from: "T <t@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""


class SiteTimeouts(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.evil = []

    def tearDown(self):
        for e in self.evil:
            e.stop()
        self.redis.stop()
        self.wd.cleanup()

    def test_domain_overrides_final_dot_timeout(self):
        slow = EvilSMTP(self.wd.path, "stall_dot")
        self.evil.append(slow)
        cfg = self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
smtp:
  timeouts: {data_dot: 10m, idle: 1s}
retry: {delay: 1s, max_delay: 1s, max_attempts: 1}
shaping:
  sites:
    slow.test:
      timeouts: {data_dot: 1500ms}
routes:
  slow.test: 127.0.0.1:%d
""" % (self.redis.port, slow.port))
        camp = self.wd.file("c.yaml", CAMP)
        csv = self.wd.file("r.csv", "email,name\na@slow.test,A\nb@slow.test,B\n")
        cid = ringmail("submit", "--config", cfg, camp, csv).stdout.strip()
        t0 = time.time()
        rc, log = run_worker(cfg, os.path.join(self.wd.path, "w.log"), 60)
        took = time.time() - t0
        self.assertEqual(rc, 0, log[-2000:])
        # Without the override the first message alone would wait 10 min.
        self.assertLess(took, 30, "the site's data_dot applied")
        st = stats(self.redis.port, cid)
        self.assertEqual(st.get("failed", 0), 2, st)
        final = [e for e in events(self.redis.port, cid) if e["type"] == "failed"]
        self.assertEqual(len(final), 2)
        for e in final:
            self.assertEqual(e["stage"], "dot", e)
            self.assertRegex(e["text"], "(?i)timeout")
        # The timeout fired after ~1.5 s, not at once.
        self.assertGreaterEqual(took, 1.5)

    def test_tls_policy_per_site(self):
        crt, key = make_cert(self.wd.path)
        plain = Sink(self.wd.path, name="plain")
        tls_a = Sink(self.wd.path, name="tls_a", tls=(crt, key))
        tls_b = Sink(self.wd.path, name="tls_b", tls=(crt, key))
        self.evil += [plain, tls_a, tls_b]
        cfg = self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
smtp: {tls: opportunistic, host_penalty: 200ms}
retry: {delay: 1s, max_delay: 1s, max_attempts: 1}
shaping:
  sites:
    secure.test: {tls: required}
    legacy.test: {tls: none}
routes:
  secure.test: 127.0.0.1:%d
  open.test: 127.0.0.1:%d
  legacy.test: 127.0.0.1:%d
""" % (self.redis.port, plain.port, tls_a.port, tls_b.port))
        camp = self.wd.file("c.yaml", CAMP)
        rows = ["email,name"] + ["u%d@%s,N" % (i, d) for d in
                                 ("secure.test", "open.test", "legacy.test") for i in range(3)]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        cid = ringmail("submit", "--config", cfg, camp, csv).stdout.strip()
        ringmail("worker", "--config", cfg, "--until-done", timeout=120)
        st = stats(self.redis.port, cid)
        self.assertEqual((st.get("sent"), st.get("failed")), (6, 3), st)

        def flags(sink):
            return [open(os.path.join(sink.outdir, f)).read() for f in
                    sorted(os.listdir(sink.outdir)) if f.endswith(".tls")]
        self.assertEqual(plain.messages(), [], "required: nothing in plain text")
        self.assertEqual(flags(tls_a), ["True"] * 3, "the global opportunistic policy")
        self.assertEqual(flags(tls_b), ["False"] * 3, "tls: none for legacy.test")
        failed = [e for e in events(self.redis.port, cid) if e["type"] == "failed"]
        self.assertEqual({e["rcpt"].split("@")[1] for e in failed}, {"secure.test"})
        for e in failed:
            self.assertIn("STARTTLS not offered", e["text"])


if __name__ == "__main__":
    unittest.main()
