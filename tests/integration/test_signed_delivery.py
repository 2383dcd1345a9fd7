"""Messages as the worker sends them are DKIM-signed (RSA and Ed25519,
dual) and carry a VERP envelope sender: checked end to end with an
independent verifier (python3-dkim) on what the receiver got."""
import base64
import os
import re
import subprocess
import unittest

import dkim

from services import Redis, Sink, Workdir, ringmail

CAMP = """name: signed
attachments:
  - {file: terms.txt, content_type: text/plain}
from: "Zoë Shop <news@shop.test>"
subject: "Grüße, {{name}}"
text: |
  Hello {{name}},
  a long line: %s
html: "<p>Hello {{name}}</p>"
""" % ("x" * 300)


def record(pem, k):
    der = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    if k == "ed25519":
        der = der[-32:]
    return ("v=DKIM1; k=%s; p=%s" % (k, base64.b64encode(der).decode())).encode()


class Signed(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        w = self.wd.path
        self.rsa = os.path.join(w, "rsa.pem")
        self.ed = os.path.join(w, "ed.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.rsa], check=True, capture_output=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", self.ed],
                       check=True, capture_output=True)
        os.chmod(self.rsa, 0o600)
        os.chmod(self.ed, 0o600)
        secret = self.wd.file("verp.secret", os.urandom(16).hex() + "\n")
        os.chmod(secret, 0o600)
        self.txt = {"rsa1._domainkey.shop.test.": record(self.rsa, "rsa"),
                    "ed1._domainkey.shop.test.": record(self.ed, "ed25519")}
        self.redis = Redis(w)
        self.sink = Sink(w)
        from services import free_port
        self.unsub_port = free_port()
        self.cfg = self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
dkim:
  - {domain: shop.test, selector: rsa1, key_file: %s, algorithm: rsa}
  - {domain: shop.test, selector: ed1, key_file: %s}
dkim_dual: true
verp: {bounce_domain: bounces.shop.test, secret_file: %s}
unsubscribe:
  url: "https://unsub.shop.test/u/"
  mailto_domain: shop.test
  secret_file: %s
  listen: "127.0.0.1:%d"
routes:
  example.test: 127.0.0.1:%d
""" % (self.redis.port, self.rsa, self.ed, secret, secret, self.unsub_port, self.sink.port))

    def tearDown(self):
        self.sink.stop()
        self.redis.stop()
        self.wd.cleanup()

    def dns(self, name, timeout=5):
        return self.txt.get(name.decode() if isinstance(name, bytes) else name)

    def test_dual_signed_and_verp(self):
        self.wd.file("terms.txt", "Terms and conditions\n")
        camp = self.wd.file("c.yaml", CAMP)
        rows = ["email,name"] + ["u%d@example.test,Jürgen %d" % (i, i) for i in range(10)]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        ringmail("submit", "--config", self.cfg, camp, csv)
        ringmail("worker", "--config", self.cfg, "--until-done", timeout=120)
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 10)
        senders = set()
        for m in msgs:
            raw = m["data"]
            self.assertEqual(raw.count(b"DKIM-Signature:"), 2)
            d = dkim.DKIM(raw)
            self.assertTrue(d.verify(0, dnsfunc=self.dns), "first signature")
            self.assertTrue(d.verify(1, dnsfunc=self.dns), "second signature")
            algs = set(re.findall(rb"a=([a-z0-9-]+);", raw))
            self.assertEqual(algs, {b"rsa-sha256", b"ed25519-sha256"})
            self.assertRegex(m["mail_from"], r"^b-[a-z2-7]+@bounces\.shop\.test$")
            senders.add(m["mail_from"])
            # Tampering breaks it.
            bad = raw.replace(b"Hello", b"Hallo", 1)
            self.assertFalse(dkim.verify(bad, dnsfunc=self.dns))
        self.assertEqual(len(senders), 10, "one VERP address per recipient")
        # RFC 8058 headers, signed; Feedback-ID; the attachment.
        import email
        import email.policy
        raw = msgs[0]["data"]
        msg = email.message_from_bytes(raw, policy=email.policy.strict)
        lu = msg["List-Unsubscribe"]
        self.assertRegex(lu, r"^<https://unsub\.shop\.test/u/[A-Za-z0-9_-]+>, "
                             r"<mailto:unsubscribe@shop\.test\?subject=unsubscribe-")
        self.assertEqual(msg["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
        self.assertTrue(msg["Feedback-ID"].endswith(":ringmail"))
        self.assertIn(b"list-unsubscribe-post", raw.lower().split(b"dkim-signature")[1])
        atts = [p for p in msg.iter_attachments()]
        self.assertEqual([a.get_filename() for a in atts], ["terms.txt"])
        self.assertEqual(atts[0].get_content(), "Terms and conditions\n")
        # One click, end to end: POST the link to the unsubscribe server.
        token = re.search(r"/u/([A-Za-z0-9_-]+)>", lu).group(1)
        rcpt = msgs[0]["rcpt_tos"][0]
        srv = subprocess.Popen([os.environ["RINGMAIL_BIN"], "unsubscribe-server", "--config",
                                self.cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            from services import wait_port
            wait_port(self.unsub_port)
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                "-d", "List-Unsubscribe=One-Click",
                                "http://127.0.0.1:%d/u/%s" % (self.unsub_port, token)],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.stdout, "200")
        finally:
            srv.terminate()
            srv.wait(10)
        self.assertIn("unsubscribe", self.redis.hget("rm:suppress", rcpt.lower()))

    def test_wrong_key_type_is_a_startup_error(self):
        cfg = open(self.cfg).read().replace("key_file: %s}" % self.ed,
                                            "key_file: %s, algorithm: rsa}" % self.ed)
        cfg = cfg.replace("dkim_dual: true", "dkim_dual: false")
        p = self.wd.file("bad.yaml", cfg)
        r = ringmail("worker", "--config", p, "--until-done", check=False, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not the configured algorithm", r.stderr)


if __name__ == "__main__":
    unittest.main()
