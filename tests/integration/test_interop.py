"""Interoperability with two independent real SMTP servers from Debian
packages, plain and with STARTTLS (issue 3, Tests):

  * Postfix smtpd: a private Postfix instance configured by the test in a
    temp directory (postfix -c CONFDIR start): 127.0.0.1 on a free port,
    virtual mailbox delivery to per-recipient Maildirs under the temp dir,
    a certificate from a CA made with openssl at test time,
    smtpd_tls_security_level=may and smtpd_tls_received_header=yes (so the
    receiver itself records whether and how TLS was used);
  * Python's aiosmtpd (tests/integration/sink.py, tls_context).

For each: a campaign is delivered; every message arrives exactly once, in
the right mailbox, its body byte-exact (aiosmtpd keeps CRLF; Postfix stores
LF), its headers parse under email.policy.strict, and with STARTTLS the
delivery events carry the negotiated protocol and cipher (event field
`tls`) and the receiver saw TLS. Policies: opportunistic, required, verify
(smtp.tls_ca_file = the test CA; a certificate from another CA fails)."""
import email
import email.policy
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from services import Redis, Sink, Workdir, free_port, ringmail, wait_port
from transport_util import (FINAL, events, make_ca, make_cert, redis_cmd,
                            run_worker, stats, transport_config)

CAMP = """name: interop
from: "Interop <news@sender.test>"
subject: "Hello {{name}}"
text: |
  Dear {{name}},
  .
  ..two dots stay two dots
  .leading dot
  trailing spaces   
  \ttab and a long line %s
  the end.
""" % ("x" * 900)


def expected_text(name):
    return ("Dear %s,\r\n.\r\n..two dots stay two dots\r\n.leading dot\r\n"
            "trailing spaces   \r\n\ttab and a long line %s\r\nthe end.\r\n"
            % (name, "x" * 900))


def split_message(raw):
    """(header bytes, body bytes) of a message, CRLF or LF."""
    m = re.search(rb"\r?\n\r?\n", raw)
    return raw[:m.start()], raw[m.end():]


class Postfix:
    """A private Postfix instance under `root`, receiving for `domains`
    on 127.0.0.1:port and delivering to root/mail/<domain>/<local>/."""

    MASTER = """127.0.0.1:%(port)d inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

    def __init__(self, root, domains, recipients, cert=None):
        self.root = root
        self.master_pid = None
        self.conf = os.path.join(root, "conf")
        self.mail = os.path.join(root, "mail")
        self.log = os.path.join(root, "postfix.log")
        for d in ("conf", "q", "data", "mail"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.chown(os.path.join(root, "data"), "postfix")
        shutil.chown(self.mail, 65534, 65534)
        os.chmod(root, 0o755)
        self.port = free_port()
        with open(os.path.join(self.conf, "vmailbox"), "w") as f:
            for r in recipients:
                local, dom = r.split("@")
                f.write("%s %s/%s/\n" % (r, dom, local))
        lines = [
            "compatibility_level = 3.6",
            "queue_directory = %s/q" % root,
            "data_directory = %s/data" % root,
            "command_directory = /usr/sbin",
            "daemon_directory = /usr/lib/postfix/sbin",
            "meta_directory = /etc/postfix",
            "shlib_directory = /usr/lib/postfix",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = mx.interop.test",
            "mydomain = interop.test",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "virtual_mailbox_domains = %s" % " ".join(domains),
            "virtual_mailbox_base = %s" % self.mail,
            "virtual_mailbox_maps = texthash:%s/vmailbox" % self.conf,
            "virtual_uid_maps = static:65534",
            "virtual_gid_maps = static:65534",
            "virtual_minimum_uid = 100",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            # Bounces and anything else leaving this instance: dropped.
            "default_transport = discard",
            "relay_transport = discard",
            "maillog_file = %s" % self.log,
            "maillog_file_prefixes = %s" % root,
            "smtpd_banner = $myhostname ESMTP interop",
            "smtpd_tls_received_header = yes",
        ]
        if cert:
            lines += ["smtpd_tls_security_level = may",
                      "smtpd_tls_cert_file = %s" % cert[1],
                      "smtpd_tls_key_file = %s" % cert[0]]
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(self.MASTER % {"port": self.port})
        r = subprocess.run(["postfix", "-c", self.conf, "start"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s%s\n%s" % (
                r.stdout, r.stderr, self.read_log()))
        # master's pid, so stop() works even if the conf dir is gone.
        with open(os.path.join(root, "q", "pid", "master.pid")) as f:
            self.master_pid = int(f.read().strip())
        wait_port(self.port, 20)

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def delivered(self):
        """{recipient: [raw message bytes, ...]} from the Maildirs."""
        out = {}
        for p in glob.glob(os.path.join(self.mail, "*", "*", "new", "*")):
            parts = p.split(os.sep)
            rcpt = "%s@%s" % (parts[-3], parts[-4])
            with open(p, "rb") as f:
                out.setdefault(rcpt, []).append(f.read())
        return out

    def wait_delivered(self, n, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if sum(len(v) for v in self.delivered().values()) >= n:
                time.sleep(0.5)     # a late duplicate would show up too
                return
            time.sleep(0.2)

    def stop(self):
        """postfix stop, then make sure this instance's master is gone
        (SIGTERM to its own pid, bounded wait)."""
        if self.master_pid is None:
            return
        subprocess.run(["postfix", "-c", self.conf, "stop"], capture_output=True,
                       timeout=60)
        for _ in range(100):
            try:
                os.kill(self.master_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(self.master_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.master_pid = None


class InteropBase(unittest.TestCase):
    N = 12
    DOMAINS = ("pf.test", "pf2.test")

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="ringmail-interop-ca-")
        os.chmod(cls.certdir, 0o755)
        cls.ca = make_ca(cls.certdir)
        cls.cert = make_cert(cls.certdir, "mx", cls.ca)
        cls.other_ca = make_ca(cls.certdir, "other")
        cls.other_cert = make_cert(cls.certdir, "mx-other", cls.other_ca)
        for f in os.listdir(cls.certdir):
            os.chmod(os.path.join(cls.certdir, f), 0o644)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        os.chmod(self.wd.path, 0o755)
        self.redis = Redis(self.wd.path)
        self.rcpts = ["u%02d@%s" % (i, self.DOMAINS[i % 2]) for i in range(self.N)]
        self.names = {r: "Näme %d" % i if i % 3 == 0 else "Name %d" % i
                      for i, r in enumerate(self.rcpts)}

    def tearDown(self):
        self.redis.stop()
        self.wd.cleanup()

    def run_campaign(self, port, tls, ca=None, bound=90):
        cfg = os.path.join(self.wd.path, "config.yaml")
        transport_config(cfg, self.redis.port, {d: port for d in self.DOMAINS},
                         timeouts="20s", tls=tls, ca_file=ca, connection_limit=3,
                         host_penalty="1s")   # verify failures retry in 1 s, not 15
        camp = self.wd.file("c.yaml", CAMP)
        rows = ["email,name"] + ["%s,%s" % (r, self.names[r]) for r in self.rcpts]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        cid = ringmail("submit", "--config", cfg, camp, csv).stdout.strip()
        rc, log = run_worker(cfg, os.path.join(self.wd.path, "worker.log"), bound)
        self.assertIsNotNone(rc, "worker hung:\n" + log[-2000:])
        self.assertEqual(rc, 0, log[-2000:])
        st = stats(self.redis.port, cid)
        self.assertEqual(sum(st.get(k, 0) for k in FINAL), self.N, st)
        self.assertEqual(redis_cmd(self.redis.port, "BITCOUNT", "rm:{%s}:done" % cid),
                         self.N)
        return cid, st, events(self.redis.port, cid), log

    def check_message(self, rcpt, raw, crlf):
        """Headers parse strictly; body byte-exact."""
        hdr, body = split_message(raw)
        want = expected_text(self.names[rcpt]).encode()
        if not crlf:
            want = want.replace(b"\r\n", b"\n")
        msg = email.message_from_bytes(raw, policy=email.policy.strict)
        self.assertEqual(msg["To"], rcpt)
        self.assertEqual(str(msg["Subject"]), "Hello %s" % self.names[rcpt])
        self.assertTrue(msg["Message-ID"])
        self.assertTrue(msg["Date"])
        self.assertEqual(msg.get_content_type(), "text/plain")
        # The ASCII text goes as 7bit: the receiver has it byte for byte.
        cte = (msg["Content-Transfer-Encoding"] or "7bit").lower()
        if cte in ("7bit", "8bit"):
            self.assertEqual(body, want, "body byte-exact for %s" % rcpt)
            return True
        self.assertEqual(msg.get_content().replace("\r\n", "\n"),
                         want.decode().replace("\r\n", "\n"))
        return False

    def assert_exact_count(self, n_exact):
        # Every recipient with an ASCII name gets a 7bit body, compared
        # byte for byte (the others are quoted-printable: compared decoded).
        ascii_n = sum(1 for r in self.rcpts if self.names[r].isascii())
        self.assertGreaterEqual(n_exact, ascii_n)

    def check_tls_events(self, evs, want_tls):
        delivered = [e for e in evs if e["type"] == "delivered"]
        self.assertEqual(len(delivered), self.N)
        for e in delivered:
            self.assertIn("tls", e, "delivery events carry a tls field")
            if want_tls:
                # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384": protocol and cipher.
                self.assertRegex(e["tls"], r"TLSv1\.[23]")
                self.assertRegex(e["tls"], r"[A-Z0-9]+[-_][A-Z0-9_-]+")
            else:
                self.assertEqual(e["tls"], "")


class PostfixInterop(InteropBase):
    def setUp(self):
        super().setUp()
        self.pf = None

    def tearDown(self):
        if self.pf:             # before the workdir (its queue) goes
            self.pf.stop()
        super().tearDown()

    def start_postfix(self, cert=None):
        self.pf = Postfix(os.path.join(self.wd.path, "pf"), self.DOMAINS,
                          self.rcpts, cert=cert)
        return self.pf

    def check_postfix(self, pf, tls):
        pf.wait_delivered(self.N)
        got = pf.delivered()
        self.assertEqual(sorted(got), sorted(self.rcpts), pf.read_log()[-3000:])
        exact = 0
        for rcpt, msgs in got.items():
            self.assertEqual(len(msgs), 1, "exactly once: %s" % rcpt)
            raw = msgs[0]
            exact += self.check_message(rcpt, raw, crlf=False)
            received = email.message_from_bytes(raw)["Received"]
            self.assertIn("mx.interop.test", received)
            if tls:
                self.assertRegex(received, r"using TLSv1\.[23] with cipher")
            else:
                self.assertNotIn("using TLS", received)
        self.assert_exact_count(exact)
        return got

    def test_plain(self):
        pf = self.start_postfix()           # no certificate: no STARTTLS
        cid, st, evs, _ = self.run_campaign(pf.port, "opportunistic")
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_postfix(pf, tls=False)
        self.check_tls_events(evs, want_tls=False)

    def test_tls_none_policy_stays_plain(self):
        pf = self.start_postfix(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(pf.port, "none")
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_postfix(pf, tls=False)

    def test_starttls_opportunistic(self):
        pf = self.start_postfix(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(pf.port, "opportunistic")
        self.assertEqual(st.get("sent"), self.N, st)
        got = self.check_postfix(pf, tls=True)
        self.check_tls_events(evs, want_tls=True)
        # The event names what the receiver saw.
        proto = re.search(rb"using (TLSv1\.[23])", list(got.values())[0][0]).group(1)
        self.assertIn(proto.decode(), evs[-1]["tls"])

    def test_starttls_required(self):
        pf = self.start_postfix(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(pf.port, "required")
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_postfix(pf, tls=True)
        self.check_tls_events(evs, want_tls=True)

    def test_starttls_verify_with_test_ca(self):
        pf = self.start_postfix(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(pf.port, "verify", ca=self.ca[1])
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_postfix(pf, tls=True)
        self.check_tls_events(evs, want_tls=True)

    def test_verify_rejects_other_ca(self):
        pf = self.start_postfix(cert=self.other_cert)
        cid, st, evs, _ = self.run_campaign(pf.port, "verify", ca=self.ca[1])
        self.assertEqual(st.get("failed"), self.N, st)
        self.assertEqual(pf.delivered(), {}, "nothing delivered to an unverified peer")
        first = [e for e in evs if e["type"] == "deferred"]
        self.assertTrue(first)
        self.assertRegex(first[0]["text"], r"(?i)verif|certificate")


class AiosmtpdInterop(InteropBase):
    def setUp(self):
        super().setUp()
        self.sink = None

    def tearDown(self):
        if self.sink:
            self.sink.stop()
        super().tearDown()

    def start_sink(self, cert=None):
        self.sink = Sink(self.wd.path, name="aio",
                         tls=(cert[1], cert[0]) if cert else None)
        return self.sink

    def check_sink(self, sink, tls):
        msgs = sink.messages()
        rcpts = [m["rcpt_tos"][0] for m in msgs]
        self.assertEqual(sorted(rcpts), sorted(self.rcpts), "every message once")
        exact = 0
        for m in msgs:
            self.assertEqual(m["mail_from"], "news@sender.test")
            exact += self.check_message(m["rcpt_tos"][0], m["data"], crlf=True)
        self.assert_exact_count(exact)
        flags = [open(p).read() for p in glob.glob(os.path.join(sink.outdir, "*.tls"))]
        if flags:      # sink.py records TLS per message
            self.assertEqual(flags, [str(tls)] * self.N)

    def test_plain(self):
        sink = self.start_sink()
        cid, st, evs, _ = self.run_campaign(sink.port, "opportunistic")
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_sink(sink, tls=False)
        self.check_tls_events(evs, want_tls=False)

    def test_starttls_opportunistic(self):
        sink = self.start_sink(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(sink.port, "opportunistic")
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_sink(sink, tls=True)
        self.check_tls_events(evs, want_tls=True)

    def test_starttls_required(self):
        sink = self.start_sink(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(sink.port, "required")
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_sink(sink, tls=True)
        self.check_tls_events(evs, want_tls=True)

    def test_starttls_verify_with_test_ca(self):
        sink = self.start_sink(cert=self.cert)
        cid, st, evs, _ = self.run_campaign(sink.port, "verify", ca=self.ca[1])
        self.assertEqual(st.get("sent"), self.N, st)
        self.check_sink(sink, tls=True)
        self.check_tls_events(evs, want_tls=True)

    def test_verify_rejects_other_ca(self):
        sink = self.start_sink(cert=self.other_cert)
        cid, st, evs, _ = self.run_campaign(sink.port, "verify", ca=self.ca[1])
        self.assertEqual(st.get("failed"), self.N, st)
        self.assertEqual(sink.messages(), [])

    def test_verify_rejects_name_mismatch(self):
        # Signed by the trusted CA but for another name: the route's host
        # (127.0.0.1) is not in the certificate.
        bad = make_cert(self.wd.path, "elsewhere", self.ca,
                        sans=("DNS:elsewhere.test",))
        sink = self.start_sink(cert=bad)
        cid, st, evs, _ = self.run_campaign(sink.port, "verify", ca=self.ca[1])
        self.assertEqual(st.get("failed"), self.N, st)
        self.assertEqual(sink.messages(), [])


if __name__ == "__main__":
    unittest.main()
