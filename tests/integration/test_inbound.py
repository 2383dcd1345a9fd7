"""`ringmail inbound` against real clients on loopback: Python smtplib
(DSN, ARF, auto-reply and relay attempts; events checked in Redis),
imaplib and poplib (plain, STARTTLS/STLS, implicit TLS), curl imap:// and
pop3://, and fetchmail retrieving every message byte-exact. The server,
redis-server, the certificate and the users file are made per class."""
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import imaplib
import poplib
import unittest

from services import Inbound, Redis, Workdir

ALICE_PW = "alice-secret-pw"


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def dsn(to, rcpt="bob@example.com", status="5.1.1",
        diag="550 5.1.1 <bob@example.com>: user unknown"):
    return ("From: MAILER-DAEMON@mx.example\r\nTo: %s\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            "report-type=delivery-status; boundary=\"BB\"\r\n\r\n"
            "--BB\r\nContent-Type: text/plain\r\n\r\nYour message failed."
            "\r\n--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example\r\n\r\n"
            "Final-Recipient: rfc822; %s\r\nAction: failed\r\n"
            "Status: %s\r\nRemote-MTA: dns; mx.example\r\n"
            "Diagnostic-Code: smtp; %s\r\n\r\n--BB--\r\n" % (
                to, rcpt, status, diag))


def arf(to, rcpt):
    return ("From: fbl@isp.example\r\nTo: %s\r\nSubject: complaint\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            "report-type=feedback-report; boundary=\"FF\"\r\n\r\n"
            "--FF\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
            "--FF\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n"
            "Original-Rcpt-To: %s\r\n\r\n--FF\r\n"
            "Content-Type: message/rfc822\r\n\r\nFrom: shop@shop.example\r\n"
            "To: %s\r\nSubject: sale\r\n\r\nbuy\r\n--FF--\r\n" % (
                to, rcpt, rcpt))


def plain(to, subject, body="hello\r\n.leading dot\r\nlast line\r\n"):
    return ("From: someone@elsewhere.example\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@elsewhere.example>\r\n\r\n%s" % (
                to, subject, subject.replace(" ", "-"), body))


class InboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workdir("inbound")
        cls.redis = Redis(cls.w.path)
        cls.ib = Inbound(cls.w.path, cls.redis.port,
                         {"alice": ALICE_PW, "bounces": "bounce-pw",
                          "replies": "reply-pw", "fm": "fm-pw",
                          "big": "big-pw"})
        # alice's maildir exists once she has logged in: mail to
        # alice@reply.test then lands there instead of in replies.
        m = imaplib.IMAP4("127.0.0.1", cls.ib.ports["imap"])
        m.login("alice", ALICE_PW)
        m.logout()

    @classmethod
    def tearDownClass(cls):
        rc = cls.ib.stop()
        cls.redis.stop()
        if rc != 0:
            print(cls.ib.logtext())
        cls.w.cleanup()

    def smtp(self):
        return smtplib.SMTP("127.0.0.1", self.ib.ports["smtp"], timeout=10)

    def send(self, frm, to, data, starttls=False):
        s = self.smtp()
        if starttls:
            s.starttls(context=tls_ctx())
        s.sendmail(frm, to, data.encode())
        s.quit()

    def wait_for(self, fn, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            v = fn()
            if v:
                return v
            time.sleep(0.05)
        return fn()

    def events(self):
        out = []
        # One line per entry: field=value pairs joined by 0x1f.
        r = self.redis.raw("EVAL", "local t = {} for _, e in ipairs("
                           "redis.call('XRANGE', 'rm:events', '-', '+')) do "
                           "local f = e[2] local s = '' for i = 1, #f, 2 do "
                           "s = s .. f[i] .. '=' .. f[i+1] .. '\\31' end "
                           "t[#t+1] = s end return t", "0")
        for line in r.split("\n"):
            if not line:
                continue
            d = {}
            for kv in line.split("\x1f"):
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    d[k] = v
            out.append(d)
        return out

    def read_file(self, path):
        with open(path, "rb") as f:
            return f.read()

    # ------------------------------------------------------------------
    # SMTP: bounces, complaints, auto-replies, refusals

    def test_dsn_bounce_records_event_and_suppression(self):
        addr = self.ib.verp("spring-sale", 42)
        self.assertTrue(addr.startswith("b-") and addr.endswith(
            "@" + Inbound.BOUNCE), addr)
        before = len(self.ib.mailbox_files("bounces"))
        self.send("", [addr], dsn(addr, rcpt="Bob@Example.com"))
        ev = self.wait_for(lambda: [e for e in self.events()
                                    if e.get("campaign") == "spring-sale"])
        self.assertEqual(len(ev), 1, ev)
        e = ev[0]
        self.assertEqual(e["type"], "bounced")
        self.assertEqual(e["idx"], "42")
        self.assertEqual(e["rcpt"], "Bob@Example.com")
        self.assertEqual(e["esc"], "5.1.1")
        self.assertEqual(e["code"], "550")
        self.assertEqual(e["category"], "invalid-recipient")
        for k in ("v", "attempt", "stage", "dest", "text", "ts"):
            self.assertIn(k, e)
        self.assertEqual(self.redis.hget("rm:{spring-sale}:stats",
                                         "bounced"), "1")
        v = self.redis.hget("rm:suppress", "bob@example.com")
        self.assertIn("\x1fbounce\x1f", v)
        self.assertIn("bob@example.com", self.redis.raw(
            "XRANGE", "rm:suppress:log", "-", "+"))
        # the message itself is kept in the bounce mailbox
        self.assertEqual(len(self.ib.mailbox_files("bounces")), before + 1)

    def test_existing_suppression_is_kept(self):
        self.redis.raw("HSET", "rm:suppress", "kept@example.com",
                       "by hand\x1fmanual\x1f1")
        addr = self.ib.verp("keep-camp", 9)
        self.send("", [addr], dsn(addr, rcpt="kept@example.com"))
        self.assertTrue(self.wait_for(lambda: [
            e for e in self.events() if e.get("campaign") == "keep-camp"]))
        self.assertEqual(self.redis.hget("rm:suppress", "kept@example.com"),
                         "by hand\x1fmanual\x1f1")
        self.assertNotIn("kept@example.com", self.redis.raw(
            "XRANGE", "rm:suppress:log", "-", "+"))

    def test_soft_bounce_is_not_suppressed(self):
        addr = self.ib.verp("soft-camp", 7)
        self.send("", [addr], dsn(addr, rcpt="full@example.com",
                                  status="5.2.2",
                                  diag="552 5.2.2 mailbox full"))
        ev = self.wait_for(lambda: [e for e in self.events()
                                    if e.get("campaign") == "soft-camp"])
        self.assertEqual(ev[0]["type"], "bounced")
        self.assertEqual(self.redis.hget("rm:suppress", "full@example.com"),
                         "")

    def test_arf_complaint(self):
        addr = self.ib.verp("fbl-camp", 3)
        self.send("", [addr], arf(addr, "angry@example.com"))
        ev = self.wait_for(lambda: [e for e in self.events()
                                    if e.get("campaign") == "fbl-camp"])
        self.assertEqual(ev[0]["type"], "complained")
        self.assertEqual(ev[0]["rcpt"], "angry@example.com")
        self.assertEqual(self.redis.hget("rm:{fbl-camp}:stats",
                                         "complained"), "1")
        self.assertIn("\x1fcomplaint\x1f",
                      self.redis.hget("rm:suppress", "angry@example.com"))

    def test_autoreply_and_unattributed_are_counted_and_kept(self):
        addr = self.ib.verp("vac-camp", 1)
        auto0 = int(self.redis.hget("rm:inbound", "autoreplies") or 0)
        un0 = int(self.redis.hget("rm:inbound", "unattributed") or 0)
        n0 = len(self.ib.mailbox_files("bounces"))
        self.send("bob@example.com", [addr],
                  "From: bob@example.com\r\nTo: %s\r\nSubject: Out of office"
                  "\r\nAuto-Submitted: auto-replied\r\n\r\nAway.\r\n" % addr)
        self.send("x@example.com", ["b-forged0000@" + Inbound.BOUNCE],
                  plain("b-forged@bounce.test", "not attributable"))
        self.assertTrue(self.wait_for(lambda: int(self.redis.hget(
            "rm:inbound", "unattributed") or 0) == un0 + 1))
        self.assertEqual(int(self.redis.hget("rm:inbound", "autoreplies")),
                         auto0 + 1)
        self.assertFalse([e for e in self.events()
                          if e.get("campaign") == "vac-camp"])
        self.assertEqual(len(self.ib.mailbox_files("bounces")), n0 + 2)

    def test_relay_refused(self):
        s = self.smtp()
        s.ehlo("relay.test")
        s.mail("spammer@evil.example")
        code, msg = s.rcpt("victim@gmail.com")
        self.assertEqual(code, 550)
        self.assertIn(b"5.7.1", msg)
        code, msg = s.rcpt("x@reply.test.evil.example")
        self.assertEqual(code, 550)
        code, _ = s.docmd("DATA")
        self.assertEqual(code, 554)
        s.quit()

    def test_size_limit_and_long_line(self):
        s = self.smtp()
        s.ehlo("c.test")
        self.assertEqual(s.docmd("MAIL FROM:<a@b.example> SIZE=2000000")[0],
                         552)
        self.assertEqual(s.docmd("NOOP " + "x" * 1200)[0], 500)
        self.assertEqual(s.noop()[0], 250)
        s.quit()

    def test_smuggling_bare_lf_dot_is_data(self):
        n0 = len(self.ib.mailbox_files("replies"))
        sock = socket.create_connection(("127.0.0.1", self.ib.ports["smtp"]))
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n"
                     b"RCPT TO:<smuggle@reply.test>\r\nDATA\r\n"
                     b"Subject: s\r\n\r\nA\n.\nMAIL FROM:<evil@x>\r\n"
                     b".\r\nQUIT\r\n")
        lines = []
        while True:
            line = f.readline()
            if not line:
                break
            lines.append(line)
        sock.close()
        codes = [ln[:3] for ln in lines if ln[3:4] == b" "]
        self.assertEqual(codes, [b"250", b"250", b"250", b"354", b"250",
                                 b"221"], lines)
        files = self.ib.mailbox_files("replies")
        self.assertEqual(len(files), n0 + 1)
        self.assertTrue(self.read_file(files[-1]).endswith(
            b"A\n.\nMAIL FROM:<evil@x>\r\n"))

    def test_storage_failure_answers_451(self):
        box = os.path.join(self.ib.root, "failbox")
        os.makedirs(os.path.join(box, "tmp"))
        os.chmod(os.path.join(box, "tmp"), 0o500)
        for d in ("new", "cur"):
            os.makedirs(os.path.join(box, d))
        try:
            if os.geteuid() == 0:
                # root ignores modes: make tmp/ a file instead
                os.chmod(os.path.join(box, "tmp"), 0o700)
                os.rmdir(os.path.join(box, "tmp"))
                open(os.path.join(box, "tmp"), "w").close()
            s = self.smtp()
            s.ehlo("c.test")
            s.mail("a@b.example")
            s.rcpt("failbox@reply.test")
            code, msg = s.data(b"Subject: x\r\n\r\nbody\r\n")
            self.assertEqual(code, 451, msg)
            self.assertIn(b"4.3.0", msg)
            s.quit()
        finally:
            p = os.path.join(box, "tmp")
            if os.path.isfile(p):
                os.unlink(p)
            shutil.rmtree(box, ignore_errors=True)

    def test_per_ip_connection_cap(self):
        socks = []
        try:
            for _ in range(60):
                socks.append(socket.create_connection(
                    ("127.0.0.1", self.ib.ports["smtp"])))
            for s in socks:
                s.settimeout(5)
                self.assertTrue(s.recv(100).startswith(b"220"))
            extra = socket.create_connection(
                ("127.0.0.1", self.ib.ports["smtp"]))
            extra.settimeout(5)
            self.assertTrue(extra.recv(100).startswith(b"421"))
            extra.close()
        finally:
            for s in socks:
                s.close()
        time.sleep(0.6)     # closed connections are reaped per loop turn

    # ------------------------------------------------------------------
    # Reply mailboxes over IMAP and POP3

    def deliver_to_alice(self, subject, starttls=False):
        self.send("someone@elsewhere.example", ["alice@reply.test"],
                  plain("alice@reply.test", subject), starttls=starttls)

    def imap_session(self, m):
        self.assertEqual(m.login("alice", ALICE_PW)[0], "OK")
        self.deliver_to_alice("imap one")
        self.deliver_to_alice("imap two", starttls=True)
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        n = int(data[0])
        self.assertGreaterEqual(n, 2)
        typ, data = m.search(None, "SUBJECT", '"imap two"')
        self.assertEqual(typ, "OK")
        seq = data[0].split()[-1]
        typ, data = m.fetch(seq, "(UID BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        body = data[0][1]
        self.assertIn(b"Subject: imap two\r\n", body)
        self.assertTrue(body.endswith(b"hello\r\n.leading dot\r\nlast line\r\n"))
        self.assertIn(b"Received: from ", body)
        typ, data = m.fetch(seq, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(data[0][1], b"Subject: imap two\r\n\r\n")
        self.assertEqual(m.store(seq, "+FLAGS", "\\Deleted")[0], "OK")
        typ, data = m.expunge()
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0], seq)
        typ, data = m.search(None, "ALL")
        self.assertEqual(len(data[0].split()), n - 1)
        m.logout()

    def test_imap_plain_loopback(self):
        self.imap_session(imaplib.IMAP4("127.0.0.1", self.ib.ports["imap"]))

    def test_imap_starttls(self):
        m = imaplib.IMAP4("127.0.0.1", self.ib.ports["imap"])
        self.assertIn("STARTTLS", m.capabilities)
        m.starttls(ssl_context=tls_ctx())
        self.imap_session(m)

    def test_imap_implicit_tls(self):
        self.imap_session(imaplib.IMAP4_SSL(
            "127.0.0.1", self.ib.ports["imaps"], ssl_context=tls_ctx()))

    def test_imap_large_fetch_over_tls(self):
        # 3 x 600 KB: FETCH 1:* goes out in INSESS_MORE parts
        m = imaplib.IMAP4_SSL("127.0.0.1", self.ib.ports["imaps"],
                              ssl_context=tls_ctx())
        m.login("big", "big-pw")
        line = "y" * 78 + "\r\n"
        for i in range(3):
            self.send("a@b.example", ["big@reply.test"],
                      "Subject: big %d\r\n\r\n" % i + line * 7500)
        typ, data = m.select("INBOX")
        self.assertEqual(int(data[0]), 3)
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        bodies = [d[1] for d in data if isinstance(d, tuple)]
        self.assertEqual(len(bodies), 3)
        disk = sorted(self.read_file(q) for q in
                      self.ib.mailbox_files("big"))
        self.assertEqual(sorted(bodies), disk)
        m.logout()

    def test_imap_bad_login_is_delayed(self):
        m = imaplib.IMAP4("127.0.0.1", self.ib.ports["imap"])
        t0 = time.time()
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("alice", "wrong")
        self.assertGreaterEqual(time.time() - t0, 1.5)
        self.assertEqual(m.login("alice", ALICE_PW)[0], "OK")
        m.logout()

    def test_imap_idle_sees_new_mail(self):
        m = imaplib.IMAP4("127.0.0.1", self.ib.ports["imap"])
        m.login("alice", ALICE_PW)
        typ, data = m.select("INBOX")
        n = int(data[0])
        m.send(b"I1 IDLE\r\n")
        self.assertTrue(m.readline().startswith(b"+"))
        self.deliver_to_alice("while idling")
        m.sock.settimeout(10)
        line = m.readline()
        while b"EXISTS" not in line:
            line = m.readline()
        self.assertEqual(line.strip(), b"* %d EXISTS" % (n + 1))
        m.send(b"DONE\r\n")
        line = m.readline()
        while not line.startswith(b"I1 "):
            line = m.readline()
        self.assertTrue(line.startswith(b"I1 OK"), line)
        m.logout()

    def pop3_session(self, p):
        self.deliver_to_alice("pop one")
        p.user("alice")
        p.pass_(ALICE_PW)
        count, _ = p.stat()
        self.assertGreaterEqual(count, 1)
        _, listing, _ = p.uidl()
        self.assertEqual(len(listing), count)
        # RETR is byte-exact: it equals one of the files on disk.
        _, lines, _ = p.retr(count)
        got = b"\r\n".join(lines) + b"\r\n"
        self.assertIn(b"Subject: pop one\r\n", got)
        disk = [self.read_file(q) for q in self.ib.mailbox_files("alice")]
        self.assertIn(got, disk)
        p.quit()

    def test_pop3_plain(self):
        self.pop3_session(poplib.POP3("127.0.0.1", self.ib.ports["pop3"]))

    def test_pop3_stls(self):
        p = poplib.POP3("127.0.0.1", self.ib.ports["pop3"])
        p.stls(context=tls_ctx())
        self.pop3_session(p)

    def test_pop3_implicit_tls(self):
        self.pop3_session(poplib.POP3_SSL("127.0.0.1", self.ib.ports["pop3s"],
                                          context=tls_ctx()))

    # ------------------------------------------------------------------
    # curl and fetchmail

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--max-time", "20", *args],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_curl_imap_and_pop3(self):
        self.deliver_to_alice("curl check")
        listing = self.curl("-u", "alice:" + ALICE_PW,
                            "imap://127.0.0.1:%d/" % self.ib.ports["imap"])
        self.assertIn(b"INBOX", listing)
        uids = self.curl("-u", "alice:" + ALICE_PW, "-X", "UID SEARCH ALL",
                         "imap://127.0.0.1:%d/INBOX" % self.ib.ports["imap"])
        uid = uids.split()[-1].decode()
        body = self.curl("-u", "alice:" + ALICE_PW,
                         "imap://127.0.0.1:%d/INBOX;UID=%s" % (
                             self.ib.ports["imap"], uid))
        self.assertIn(b"hello\r\n.leading dot\r\nlast line\r\n", body)
        body = self.curl("--ssl-reqd", "-k", "-u", "alice:" + ALICE_PW,
                         "imap://127.0.0.1:%d/INBOX;UID=%s" % (
                             self.ib.ports["imap"], uid))
        self.assertIn(b"Subject: ", body)
        lst = self.curl("-u", "alice:" + ALICE_PW,
                        "pop3://127.0.0.1:%d/" % self.ib.ports["pop3"])
        n = len(lst.strip().split(b"\r\n"))
        msg = self.curl("-u", "alice:" + ALICE_PW,
                        "pop3://127.0.0.1:%d/%d" % (self.ib.ports["pop3"], n))
        self.assertIn(b"Subject: ", msg)
        msg2 = self.curl("-k", "-u", "alice:" + ALICE_PW,
                         "pop3s://127.0.0.1:%d/%d" % (
                             self.ib.ports["pop3s"], n))
        self.assertEqual(msg, msg2)

    def test_fetchmail_every_message_byte_exact(self):
        if shutil.which("fetchmail") is None:
            r = subprocess.run(["apt-get", "install", "-y", "fetchmail"],
                               capture_output=True, text=True,
                               env=dict(os.environ,
                                        DEBIAN_FRONTEND="noninteractive"))
            self.assertEqual(r.returncode, 0,
                             "fetchmail is needed and apt-get failed:\n" +
                             r.stdout + r.stderr)
        # user fm gets three messages with awkward bytes
        m = imaplib.IMAP4("127.0.0.1", self.ib.ports["imap"])
        m.login("fm", "fm-pw")
        m.logout()
        bodies = ["line\r\n", ".\r\n..two dots\r\n.\r\nend\r\n",
                  "x" * 998 + "\r\n" + "8bit caf\xe9\r\n"]
        for i, b in enumerate(bodies):
            s = self.smtp()
            s.sendmail("a@b.example", ["fm@reply.test"],
                       ("Subject: fm %d\r\n\r\n" % i).encode() +
                       b.encode("latin-1"))
            s.quit()
        want = sorted(self.read_file(p) for p in self.ib.mailbox_files("fm"))
        self.assertEqual(len(want), 3)
        out = os.path.join(self.w.path, "fetched")
        os.makedirs(out, exist_ok=True)
        mda = os.path.join(self.w.path, "mda.sh")
        with open(mda, "w") as f:
            f.write("#!/bin/sh\ncat > %s/msg.$$.$(date +%%s%%N)\n" % out)
        os.chmod(mda, 0o755)
        rc = os.path.join(self.w.path, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("set no bouncemail\npoll 127.0.0.1 with proto POP3 "
                    "port %d\n  user fm there with password \"fm-pw\" is "
                    "fm here\n  options keep no rewrite no stripcr "
                    "sslproto '' mda \"%s\"\n" % (self.ib.ports["pop3"],
                                                  mda))
        os.chmod(rc, 0o600)
        r = subprocess.run(["fetchmail", "-f", rc, "--invisible", "-a",
                            "--nosyslog", "--pidfile",
                            os.path.join(self.w.path, "fm.pid")],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, HOME=self.w.path))
        self.assertIn(r.returncode, (0,), r.stdout + r.stderr)
        got = []
        for name in os.listdir(out):
            got.append(self.read_file(os.path.join(out, name)))
        self.assertEqual(len(got), 3, r.stdout + r.stderr)
        # invisible + no rewrite + no stripcr: fetchmail adds nothing
        # and keeps CRLF, so the MDA sees the stored bytes exactly.
        self.assertEqual(sorted(got), sorted(want))


class InboundRedisOutageTest(unittest.TestCase):
    """Reports wait in memory while Redis is down and are written once it
    is back; the message is accepted (250) and stored meanwhile."""

    def test_reports_wait_for_redis(self):
        w = Workdir("inbound-outage")
        redis = Redis(w.path)
        ib = Inbound(w.path, redis.port, {"bounces": "b-pw"})
        try:
            redis.stop()
            addr = ib.verp("outage", 5)
            s = smtplib.SMTP("127.0.0.1", ib.ports["smtp"], timeout=10)
            s.sendmail("", [addr], dsn(addr, rcpt="gone@example.com"))
            s.quit()
            self.assertEqual(len(ib.mailbox_files("bounces")), 1)
            time.sleep(0.5)
            redis.start()
            end = time.time() + 15
            while time.time() < end and redis.hget(
                    "rm:{outage}:stats", "bounced") != "1":
                time.sleep(0.1)
            self.assertEqual(redis.hget("rm:{outage}:stats", "bounced"), "1")
            self.assertIn("\x1fbounce\x1f",
                          redis.hget("rm:suppress", "gone@example.com"))
        finally:
            ib.stop()
            redis.stop()
            w.cleanup()


if __name__ == "__main__":
    unittest.main()
