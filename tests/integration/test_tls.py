"""STARTTLS against a real receiver (Python aiosmtpd with a certificate
made at test time): opportunistic, required and verify policies; the
negotiated protocol and cipher are recorded in every delivery event."""
import os
import unittest

from services import Redis, Sink, Workdir, make_cert, ringmail

CAMP = """name: tls
from: "T <t@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""


class TLS(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.crt, self.key = make_cert(self.wd.path)
        self.redis = Redis(self.wd.path)
        self.sink = Sink(self.wd.path, tls=(self.crt, self.key))
        self.plain = Sink(self.wd.path, name="plain")
        self.camp = self.wd.file("c.yaml", CAMP)

    def tearDown(self):
        self.sink.stop()
        self.plain.stop()
        self.redis.stop()
        self.wd.cleanup()

    def run_campaign(self, tls, port, n=20, ca=None):
        cfg = self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
smtp:
  tls: %s
  tls_ca_file: "%s"
retry: {delay: 1s, max_attempts: 2}
routes:
  tls.test: 127.0.0.1:%d
""" % (self.redis.port, tls, ca or "", port))
        rows = ["email,name"] + ["u%d@tls.test,N%d" % (i, i) for i in range(n)]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        cid = ringmail("submit", "--config", cfg, self.camp, csv).stdout.strip()
        ringmail("worker", "--config", cfg, "--until-done", timeout=120)
        return cid, self.redis.hgetall("rm:{%s}:stats" % cid)

    def tls_flags(self, sink):
        return [open(os.path.join(sink.outdir, f)).read() for f in
                sorted(os.listdir(sink.outdir)) if f.endswith(".tls")]

    def test_opportunistic_uses_tls_and_records_it(self):
        cid, st = self.run_campaign("opportunistic", self.sink.port)
        self.assertEqual(st["sent"], "20")
        self.assertEqual(self.tls_flags(self.sink), ["True"] * 20)
        ev = self.redis.raw("XRANGE", "rm:events", "-", "+")
        self.assertEqual(ev.count("\ntls\nTLSv1."), 20, "protocol and cipher in every event")

    def test_opportunistic_without_offer_sends_plain(self):
        cid, st = self.run_campaign("opportunistic", self.plain.port)
        self.assertEqual(st["sent"], "20")
        self.assertEqual(self.tls_flags(self.plain), ["False"] * 20)

    def test_required_refuses_plain_peer(self):
        cid, st = self.run_campaign("required", self.plain.port, n=3)
        self.assertEqual(st.get("failed"), "3", st)
        self.assertNotIn("sent", st)
        self.assertIn("STARTTLS not offered", self.redis.raw("XRANGE", "rm:events", "-", "+"))

    def test_verify_with_ca_delivers(self):
        cid, st = self.run_campaign("verify", self.sink.port, n=5, ca=self.crt)
        self.assertEqual(st["sent"], "5")

    def test_verify_with_untrusted_cert_does_not_deliver(self):
        # System CAs only: the receiver's self-signed certificate fails.
        cid, st = self.run_campaign("verify", self.sink.port, n=3)
        self.assertEqual(st.get("failed"), "3", st)
        self.assertIn("verify", self.redis.raw("XRANGE", "rm:events", "-", "+"))


if __name__ == "__main__":
    unittest.main()
