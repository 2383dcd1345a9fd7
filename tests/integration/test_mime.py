"""Every message `ringmail render` produces (the worker's tpl + msg path)
parsed by an independent parser: Python's email package with the strict
policy (raise_on_defect). Covers multipart/alternative, attachments
(multipart/mixed, base64), inline images (multipart/related, Content-ID),
RFC 2231 file names, RFC 2047 subjects, List-Unsubscribe + RFC 8058 Post
header, merge-field injection attempts, and golden files in
tests/data/render/ (regenerate with RINGMAIL_GOLDEN=update)."""
import email
import email.policy
import os
import subprocess
import unittest

from services import BIN, ROOT, Workdir, ringmail

GOLDEN = os.path.join(ROOT, "tests", "data", "render")
DATE = "1700000000"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
PDF = b"%PDF-1.4\n" + bytes(range(255, -1, -1)) * 40 + b"=_rm--\r\n.\r\n"

CSV = ("email,first_name,city\n"
       "alice@example.com,Alice,Berlin\n"
       "bob@example.org,\"Bob\r\nBcc: victim@evil.test\",\"=?UTF-8?B?SGk=?=\"\n"
       "carol@example.net,Zoë 日本,<script>alert(1)</script>\n"
       "dave@example.com,\"" + "x" * 1200 + "\",Köln\n")


def parse(raw):
    pol = email.policy.strict.clone(raise_on_defect=True)
    return email.message_from_bytes(raw, policy=pol)


class MimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("mime")
        w = cls.wd
        os.makedirs(os.path.join(w.path, "img"))
        w.file("img/logo.png", PNG)
        w.file("terms.pdf", PDF)
        w.file("Übersicht März.pdf", b"%PDF-x\n" * 100)
        w.file("recipients.csv", CSV)
        w.file("body.html", "<p>Hi {{first_name}} from {{city}}"
               " <img src=\"cid:logo\"></p>\n" + "<p>filler</p>\n" * 50)
        w.file("plain.yaml", "\n".join([
            "name: plain", "from: \"News Déjà <news@shop.test>\"",
            "subject: \"Hello {{first_name}} in {{city}} ✓\"",
            "text: |", "  Hi {{first_name}}, {{city}}.", "  " + "y" * 1100,
            "html_file: body.html", ""]))
        w.file("attach.yaml", "\n".join([
            "name: attach", "from: news@shop.test",
            "subject: \"Files for {{first_name}}\"",
            "text: \"Hello {{first_name}}\\n\"", "html_file: body.html",
            "headers:", "  X-Campaign: attach",
            "attachments:",
            "  - { file: terms.pdf, content_type: application/pdf }",
            "  - { file: \"Übersicht März.pdf\" }",
            "inline:", "  - { file: img/logo.png, cid: logo }", ""]))
        w.file("textonly.yaml", "\n".join([
            "name: t", "from: news@shop.test", "subject: \"T {{city}}\"",
            "text: \"Only text for {{first_name}}\\n\"",
            "attachments:", "  - { file: terms.pdf }", ""]))
        secret = w.file("secret", "0123456789abcdef0123456789abcdef\n")
        os.chmod(secret, 0o600)
        w.file("config.yaml", "\n".join([
            "unsubscribe:", "  url: https://u.shop.test/u/",
            "  mailto_domain: shop.test", "  secret_file: %s" % secret, ""]))

    @classmethod
    def tearDownClass(cls):
        cls.wd.cleanup()

    def render(self, camp, row, config=True):
        args = ["render", "--date", DATE, "--campaign", "c1", "--row",
                str(row)]
        if config:
            args += ["--config", os.path.join(self.wd.path, "config.yaml")]
        r = subprocess.run([BIN] + args + [
            os.path.join(self.wd.path, camp),
            os.path.join(self.wd.path, "recipients.csv")],
            capture_output=True, timeout=60, cwd=self.wd.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        raw = r.stdout
        self.check_wire(raw)
        return raw, parse(raw)

    def check_wire(self, raw):
        self.assertTrue(raw.endswith(b"\r\n"))
        for line in raw.split(b"\r\n"):
            self.assertNotIn(b"\n", line, "bare LF")
            self.assertNotIn(b"\r", line, "bare CR")
            self.assertLessEqual(len(line), 998)
        head = raw.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            self.assertTrue(all(b < 0x80 for b in line), line)

    def test_every_row_parses_strictly(self):
        for camp in ("plain.yaml", "attach.yaml", "textonly.yaml"):
            for row in (1, 2, 3, 4):
                with self.subTest(camp=camp, row=row):
                    raw, m = self.render(camp, row)
                    self.assertEqual(m.defects, [])
                    for p in m.walk():
                        self.assertEqual(p.defects, [], p.get_content_type())
                        if not p.is_multipart():
                            p.get_content()  # decodes QP/base64 strictly
                    self.assertEqual(m["List-Unsubscribe-Post"],
                                     "List-Unsubscribe=One-Click")
                    lu = str(m["List-Unsubscribe"])
                    self.assertTrue(lu.startswith("<https://u.shop.test/u/"))
                    self.assertIn("<mailto:unsubscribe@shop.test?", lu)

    def test_injection_stays_in_its_field(self):
        raw, m = self.render("plain.yaml", 2)
        self.assertIsNone(m["Bcc"])
        self.assertNotIn(b"\r\nBcc:", raw.split(b"\r\n\r\n", 1)[0])
        self.assertIn("Bcc: victim", str(m["Subject"]))
        # An encoded-word look-alike in merge data is shown, not decoded.
        self.assertIn("=?UTF-8?B?SGk=?=", str(m["Subject"]))
        raw, m = self.render("plain.yaml", 3)
        html = m.get_body(("html",)).get_content()
        self.assertNotIn("<script>", html)
        self.assertIn("&lt;script&gt;", html)
        self.assertEqual(str(m["Subject"]),
                         "Hello Zoë 日本 in <script>alert(1)</script> ✓")
        self.assertEqual(m["From"].addresses[0].display_name, "News Déjà")

    def test_attachments_and_inline(self):
        raw, m = self.render("attach.yaml", 1)
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        alt = m.get_payload()[0]
        self.assertEqual(alt.get_content_type(), "multipart/alternative")
        rel = alt.get_payload()[1]
        self.assertEqual(rel.get_content_type(), "multipart/related")
        self.assertEqual(rel.get_param("type"), "text/html")
        img = rel.get_payload()[1]
        self.assertEqual(img["Content-ID"], "<logo>")
        self.assertEqual(img.get_content(), PNG)
        files = {p.get_filename(): p for p in m.iter_attachments()}
        self.assertEqual(set(files), {"terms.pdf", "Übersicht März.pdf"})
        self.assertEqual(files["terms.pdf"].get_content(), PDF)
        self.assertEqual(files["terms.pdf"].get_content_type(),
                         "application/pdf")
        self.assertEqual(files["Übersicht März.pdf"].get_content(),
                         b"%PDF-x\n" * 100)
        for p in m.walk():
            if p.get("Content-Transfer-Encoding") == "base64":
                body = p.as_bytes().split(b"\n\n", 1)[1]
                for line in body.splitlines():
                    self.assertLessEqual(len(line), 76)
        raw, m = self.render("textonly.yaml", 4)
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        self.assertEqual(m.get_payload()[0].get_content_type(), "text/plain")

    def test_golden_files(self):
        for camp, row, name in (("plain.yaml", 3, "plain_utf8.eml"),
                                ("attach.yaml", 1, "attach_inline.eml"),
                                ("textonly.yaml", 2, "textonly_attach.eml")):
            raw, _ = self.render(camp, row)
            path = os.path.join(GOLDEN, name)
            if os.environ.get("RINGMAIL_GOLDEN") == "update":
                with open(path, "wb") as f:
                    f.write(raw)
            with open(path, "rb") as f:
                self.assertEqual(raw, f.read(), name)

    def test_bad_campaign_files_are_clear_errors(self):
        w = self.wd
        w.file("bad.yaml", "\n".join([
            "name: b", "from: a@b.test", "subject: s", "html: x",
            "inline:", "  - { file: nothere.png, cid: x }", ""]))
        r = ringmail("render", os.path.join(w.path, "bad.yaml"),
                     os.path.join(w.path, "recipients.csv"), check=False,
                     cwd=w.path)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"bad\.yaml:6:\d+: inline: cannot open")
        r = ringmail("render", "--row", "9", os.path.join(w.path,
                     "plain.yaml"), os.path.join(w.path, "recipients.csv"),
                     check=False, cwd=w.path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no data row 9", r.stderr)


if __name__ == "__main__":
    unittest.main()
