#include <criterion/criterion.h>

#include <sys/time.h>

#include <stdio.h>
#include <string.h>

#include "in/imapd.h"

#include "insess_test.h"

static struct insess_fix	 fx;
static struct buf		 O;
static unsigned			 FL;

static const char M1[] =
    "From: \"Alice A.\" <alice@example.com>\r\n"
    "To: bob@example.org, Carol <carol@x.test>\r\n"
    "Subject: Hello \"there\"\r\n"
    "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <m1@x>\r\n"
    "\r\n"
    "Hello body\r\n"
    ".line\r\n";
static const char M2[] =
    "From: bob@example.org\r\n"
    "Subject: multi\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"BB\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--BB\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "part one\r\n"
    "--BB\r\n"
    "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
    "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAAA\r\n"
    "--BB--\r\n"
    "epilogue\r\n";

static void
setup(void)
{
	insess_fix_init(&fx);
	buf_init(&O);
	insess_fix_deliver(&fx, NULL, M1);
	insess_fix_deliver(&fx, NULL, M2);
}

static void
teardown(void)
{
	buf_free(&O);
	insess_fix_fini(&fx);
}

TestSuite(imapd, .init = setup, .fini = teardown, .timeout = 20);

static struct imapd_session *
new_session(void)
{
	struct imapd_session *s = imapd_session_new(&fx.conf);

	cr_assert_not_null(s);
	return s;
}

/* Feed script, return everything the session answered. */
static const char *
run(struct imapd_session *s, const char *script)
{
	buf_reset(&O);
	FL = imapd_session_input(s, script, strlen(script), &O);
	return O.data ? O.data : "";
}

static const char *
run_bytes(struct imapd_session *s, const char *script)
{
	buf_reset(&O);
	FL = 0;
	for (size_t i = 0; script[i] != '\0'; i++)
		FL = imapd_session_input(s, script + i, 1, &O);
	return O.data ? O.data : "";
}

static uint32_t
uidvalidity(const char *dir)
{
	struct maildir_box	*b;
	uint32_t		 v;
	int			 err;

	cr_assert_not_null(b = maildir_box_open(dir, false, &err));
	v = b->uidvalidity;
	maildir_box_free(b);
	return v;
}

static struct imapd_session *
logged_in_selected(void)
{
	struct imapd_session *s = new_session();

	run(s, "a LOGIN alice secret\r\nb SELECT INBOX\r\n");
	cr_assert(strstr(O.data, "b OK [READ-WRITE]") != NULL, "%s", O.data);
	return s;
}

Test(imapd, greeting_and_plaintext_rules)
{
	struct imapd_session	*s;

	fx.conf.loopback = false;
	s = new_session();
	imapd_session_greeting(s, &O);
	cr_assert_str_eq(O.data, "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR "
	    "IDLE UNSELECT ID STARTTLS LOGINDISABLED] ringmail IMAP4rev1 "
	    "ready\r\n");
	cr_assert_str_eq(run(s, "a1 LOGIN alice secret\r\n"
	    "a2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"
	    "a3 SELECT INBOX\r\n"),
	    "a1 NO [PRIVACYREQUIRED] LOGIN is disabled, use STARTTLS\r\n"
	    "a2 NO [PRIVACYREQUIRED] use STARTTLS first\r\n"
	    "a3 BAD unknown command, bad arguments or wrong state\r\n");
	/* The pipelined LOGIN must not survive into the TLS session. */
	cr_assert_str_eq(run(s, "a4 STARTTLS\r\na5 LOGIN alice secret\r\n"),
	    "a4 OK begin TLS negotiation now\r\n");
	cr_assert_eq(FL, INSESS_STARTTLS_NOW);
	imapd_session_tls_started(s);
	cr_assert_str_eq(run(s, "a6 CAPABILITY\r\n"),
	    "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UNSELECT ID "
	    "AUTH=PLAIN\r\na6 OK CAPABILITY completed\r\n");
	cr_assert_str_eq(run(s, "a7 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
	    "a7 OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UNSELECT ID] "
	    "logged in\r\n");
	cr_assert_str_eq(run(s, "a8 LOGOUT\r\n"), "* BYE ringmail logging "
	    "out\r\na8 OK LOGOUT completed\r\n");
	cr_assert_eq(FL, INSESS_CLOSE);
	imapd_session_free(s);
}

Test(imapd, select_exact)
{
	struct imapd_session	*s = new_session();
	char			 want[1024];

	run(s, "a LOGIN alice secret\r\nb SELECT inbox\r\n");
	snprintf(want, sizeof(want),
	    "a OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UNSELECT ID] "
	    "logged in\r\n"
	    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	    "\\Draft)] flags permitted\r\n"
	    "* 2 EXISTS\r\n* 2 RECENT\r\n"
	    "* OK [UNSEEN 1] first unseen\r\n"
	    "* OK [UIDVALIDITY %u] UIDs valid\r\n"
	    "* OK [UIDNEXT 3] predicted next UID\r\n"
	    "b OK [READ-WRITE] SELECT completed\r\n", uidvalidity(fx.inbox));
	cr_assert_str_eq(O.data, want);
	imapd_session_free(s);
}

Test(imapd, fetch_items_and_seen)
{
	struct imapd_session *s = logged_in_selected();

	cr_assert_str_eq(run(s, "c FETCH 1:* (FLAGS UID RFC822.SIZE)\r\n"),
	    "* 1 FETCH (FLAGS (\\Recent) UID 1 RFC822.SIZE 185)\r\n"
	    "* 2 FETCH (FLAGS (\\Recent) UID 2 RFC822.SIZE 347)\r\n"
	    "c OK FETCH completed\r\n");
	cr_assert_str_eq(run(s, "d FETCH 1 (BODY.PEEK[TEXT] BODY.PEEK[]<4.6> "
	    "BODY.PEEK[HEADER.FIELDS (subject)])\r\n"),
	    "* 1 FETCH (BODY[TEXT] {19}\r\nHello body\r\n.line\r\n "
	    "BODY[]<4> {6}\r\n: \"Ali "
	    "BODY[HEADER.FIELDS (SUBJECT)] {26}\r\n"
	    "Subject: Hello \"there\"\r\n\r\n)\r\n"
	    "d OK FETCH completed\r\n");
	cr_assert_str_eq(run(s, "e FETCH 1 (BODY[]<500.10> FLAGS)\r\n"),
	    "* 1 FETCH (BODY[]<500> {0}\r\n FLAGS (\\Seen \\Recent))\r\n"
	    "e OK FETCH completed\r\n");
	/* Non-PEEK fetch sets \Seen and reports FLAGS unasked. */
	cr_assert_str_eq(run(s, "f FETCH 2 RFC822.HEADER\r\n"
	    "g FETCH 2 BODY[1]\r\n"),
	    "* 2 FETCH (RFC822.HEADER {106}\r\n"
	    "From: bob@example.org\r\nSubject: multi\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n)\r\n"
	    "f OK FETCH completed\r\n"
	    "* 2 FETCH (BODY[1] {8}\r\npart one FLAGS (\\Seen \\Recent))\r\n"
	    "g OK FETCH completed\r\n");
	cr_assert_str_eq(run(s, "h FETCH 2 (BODY.PEEK[2.MIME] BODY[3] "
	    "INTERNALDATE)\r\n") + 0, O.data);
	cr_assert(strstr(O.data, "BODY[2.MIME] {142}\r\nContent-Type: "
	    "application/octet-stream; name=\"a.bin\"\r\n") != NULL);
	cr_assert(strstr(O.data, " BODY[3] NIL INTERNALDATE \"") != NULL,
	    "%s", O.data);
	imapd_session_free(s);
}

Test(imapd, envelope_and_bodystructure)
{
	struct imapd_session *s = logged_in_selected();

	cr_assert_str_eq(run(s, "c FETCH 1 (ENVELOPE BODYSTRUCTURE)\r\n"),
	    "* 1 FETCH (ENVELOPE (\"Fri, 27 Nov 2026 10:00:00 +0000\" "
	    "\"Hello \\\"there\\\"\" "
	    "((\"Alice A.\" NIL \"alice\" \"example.com\")) "
	    "((\"Alice A.\" NIL \"alice\" \"example.com\")) "
	    "((\"Alice A.\" NIL \"alice\" \"example.com\")) "
	    "((NIL NIL \"bob\" \"example.org\")(\"Carol\" NIL \"carol\" "
	    "\"x.test\")) NIL NIL NIL \"<m1@x>\") "
	    "BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL "
	    "NIL \"7BIT\" 19 2 NIL NIL NIL NIL))\r\n"
	    "c OK FETCH completed\r\n");
	cr_assert_str_eq(run(s, "d FETCH 2 (BODYSTRUCTURE BODY)\r\n"),
	    "* 2 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" "
	    "\"utf-8\") NIL NIL \"7BIT\" 8 1 NIL NIL NIL NIL)"
	    "(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" \"a.bin\") NIL NIL "
	    "\"BASE64\" 4 NIL (\"attachment\" (\"FILENAME\" \"a.bin\")) NIL "
	    "NIL) \"MIXED\" (\"BOUNDARY\" \"BB\") NIL NIL NIL) "
	    "BODY ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL "
	    "\"7BIT\" 8 1)(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" "
	    "\"a.bin\") NIL NIL \"BASE64\" 4) \"MIXED\"))\r\n"
	    "d OK FETCH completed\r\n");
	imapd_session_free(s);
}

Test(imapd, search_keys)
{
	struct imapd_session *s = logged_in_selected();

	run(s, "c STORE 1 +FLAGS.SILENT (\\Flagged)\r\n");
	cr_assert_str_eq(O.data, "c OK STORE completed\r\n");
	cr_assert_str_eq(run(s,
	    "d SEARCH ALL\r\n"
	    "e SEARCH FLAGGED\r\n"
	    "f SEARCH OR FLAGGED SUBJECT multi\r\n"
	    "g SEARCH NOT FLAGGED LARGER 200\r\n"
	    "h SEARCH SMALLER 200 UNSEEN\r\n"
	    "i SEARCH SINCE 1-Jan-2020 BEFORE 1-Jan-2100 TEXT \"PART one\"\r\n"
	    "j SEARCH HEADER Message-ID m1@x\r\n"
	    "k UID SEARCH FROM bob TO carol\r\n"
	    "l SEARCH BODY {4}\r\nbody\r\n"
	    "m SEARCH 2 UID 1:*\r\n"
	    "n SEARCH CHARSET UTF-8 (SEEN)\r\n"
	    "o SEARCH ON 1-Jan-2000\r\n"
	    "p SEARCH FOO\r\n"
	    "q SEARCH OR SEEN\r\n"
	    "r SEARCH CHARSET KOI8-R ALL\r\n"
	    "s SEARCH SENTON 27-Nov-2026\r\n"
	    "t SEARCH SENTBEFORE 27-Nov-2026\r\n"
	    "u SEARCH SENTSINCE \"1-Jan-2026\"\r\n"),
	    "* SEARCH 1 2\r\nd OK SEARCH completed\r\n"
	    "* SEARCH 1\r\ne OK SEARCH completed\r\n"
	    "* SEARCH 1 2\r\nf OK SEARCH completed\r\n"
	    "* SEARCH 2\r\ng OK SEARCH completed\r\n"
	    "* SEARCH 1\r\nh OK SEARCH completed\r\n"
	    "* SEARCH 2\r\ni OK SEARCH completed\r\n"
	    "* SEARCH 1\r\nj OK SEARCH completed\r\n"
	    "* SEARCH\r\nk OK UID SEARCH completed\r\n"
	    "+ ready for literal data\r\n"
	    "* SEARCH 1\r\nl OK SEARCH completed\r\n"
	    "* SEARCH 2\r\nm OK SEARCH completed\r\n"
	    "* SEARCH\r\nn OK SEARCH completed\r\n"
	    "* SEARCH\r\no OK SEARCH completed\r\n"
	    "p BAD invalid search criteria\r\n"
	    "q BAD invalid search criteria\r\n"
	    "r NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset\r\n"
	    "* SEARCH 1\r\ns OK SEARCH completed\r\n"
	    "* SEARCH\r\nt OK SEARCH completed\r\n"
	    "* SEARCH 1\r\nu OK SEARCH completed\r\n");
	imapd_session_free(s);
}

Test(imapd, store_expunge_close)
{
	struct imapd_session	*s = logged_in_selected();
	struct maildir_box	*b;
	int			 err;

	cr_assert_str_eq(run(s, "c STORE 1 +FLAGS (\\Deleted \\Seen)\r\n"
	    "d STORE 1 -FLAGS (\\Seen)\r\n"
	    "e UID STORE 2 FLAGS (\\Answered $Label1)\r\n"
	    "f STORE 1 FLAGS (\\Bogus)\r\n"
	    "g EXPUNGE\r\n"
	    "h FETCH 1 (UID FLAGS)\r\n"),
	    "* 1 FETCH (FLAGS (\\Seen \\Deleted \\Recent))\r\n"
	    "c OK STORE completed\r\n"
	    "* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
	    "d OK STORE completed\r\n"
	    "* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent))\r\n"
	    "e OK UID STORE completed\r\n"
	    "f BAD invalid STORE arguments\r\n"
	    "* 1 EXPUNGE\r\n"
	    "g OK EXPUNGE completed\r\n"
	    "* 1 FETCH (UID 2 FLAGS (\\Answered \\Recent))\r\n"
	    "h OK FETCH completed\r\n");
	/* Flags live in the file name; CLOSE expunges silently. */
	cr_assert_not_null(b = maildir_box_open(fx.inbox, false, &err));
	cr_assert_eq(b->nmsg, 1);
	cr_assert(strstr(b->msgs[0].name, ":2,R") != NULL);
	maildir_box_free(b);
	cr_assert_str_eq(run(s, "i STORE 1 +FLAGS.SILENT \\Deleted\r\n"
	    "j CLOSE\r\nk FETCH 1 FLAGS\r\n"),
	    "i OK STORE completed\r\nj OK CLOSE completed\r\n"
	    "k BAD unknown command, bad arguments or wrong state\r\n");
	cr_assert_not_null(b = maildir_box_open(fx.inbox, false, &err));
	cr_assert_eq(b->nmsg, 0);
	maildir_box_free(b);
	imapd_session_free(s);
}

Test(imapd, examine_is_read_only)
{
	struct imapd_session *s = new_session();

	run(s, "a LOGIN alice secret\r\nb EXAMINE INBOX\r\n");
	cr_assert(strstr(O.data, "* OK [PERMANENTFLAGS ()] read-only\r\n"));
	cr_assert(strstr(O.data, "b OK [READ-ONLY] EXAMINE completed\r\n"));
	cr_assert_str_eq(run(s, "c STORE 1 +FLAGS (\\Seen)\r\nd EXPUNGE\r\n"
	    "e FETCH 1 (BODY[TEXT] FLAGS)\r\n"),
	    "c NO [READ-ONLY] mailbox is read-only\r\n"
	    "d NO [READ-ONLY] mailbox is read-only\r\n"
	    "* 1 FETCH (BODY[TEXT] {19}\r\nHello body\r\n.line\r\n "
	    "FLAGS (\\Recent))\r\ne OK FETCH completed\r\n");
	imapd_session_free(s);
}

Test(imapd, folders_list_status_copy)
{
	struct imapd_session	*s;
	char			 p[256], want[256];

	/* An old internal date that COPY must keep. */
	{
		struct maildir_box	*ib;
		char			 fp[512];
		struct timeval		 tv[2] = { { 978307200, 0 },
					    { 978307200, 0 } };
		int			 err;

		cr_assert_not_null(ib = maildir_box_open(fx.inbox, false,
		    &err));
		snprintf(fp, sizeof(fp), "%s/%s", fx.inbox, ib->msgs[1].name);
		cr_assert_eq(utimes(fp, tv), 0);
		maildir_box_free(ib);
	}
	s = logged_in_selected();

	cr_assert_str_eq(run(s, "c CREATE Archive\r\nd CREATE Archive.2026\r\n"
	    "e CREATE Archive\r\nf CREATE INBOX\r\n"
	    "g LIST \"\" *\r\nh LIST \"\" %\r\ni LSUB \"\" Archive.%\r\n"
	    "j LIST \"\" \"\"\r\n"),
	    "c OK CREATE completed\r\nd OK CREATE completed\r\n"
	    "e NO [ALREADYEXISTS] mailbox exists\r\n"
	    "f NO invalid mailbox name\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasChildren) \".\" \"Archive\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"Archive.2026\"\r\n"
	    "g OK LIST completed\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasChildren) \".\" \"Archive\"\r\n"
	    "h OK LIST completed\r\n"
	    "* LSUB (\\HasNoChildren) \".\" \"Archive.2026\"\r\n"
	    "i OK LSUB completed\r\n"
	    "* LIST (\\Noselect) \".\" \"\"\r\nj OK LIST completed\r\n");
	cr_assert_str_eq(run(s, "k STORE 2 +FLAGS.SILENT (\\Flagged)\r\n"
	    "l UID COPY 2 Archive.2026\r\nm COPY 1 Nope\r\n"),
	    "k OK STORE completed\r\nl OK UID COPY completed\r\n"
	    "m NO [TRYCREATE] no such mailbox\r\n");
	snprintf(p, sizeof(p), "%s/.Archive.2026", fx.inbox);
	snprintf(want, sizeof(want), "* STATUS \"Archive.2026\" (MESSAGES 1 "
	    "RECENT 0 UIDNEXT 2 UIDVALIDITY %u UNSEEN 1)\r\n"
	    "n OK STATUS completed\r\n", uidvalidity(p));
	cr_assert_str_eq(run(s, "n STATUS Archive.2026 (MESSAGES RECENT "
	    "UIDNEXT UIDVALIDITY UNSEEN)\r\n"), want);
	cr_assert_str_eq(run(s, "o SELECT Archive.2026\r\n"
	    "p FETCH 1 (FLAGS RFC822.SIZE INTERNALDATE)\r\n") + 0, O.data);
	cr_assert(strstr(O.data, "* 1 FETCH (FLAGS (\\Flagged) RFC822.SIZE "
	    "347 INTERNALDATE \" 1-Jan-2001 00:00:00 +0000\")\r\n") != NULL,
	    "%s", O.data);
	imapd_session_free(s);
}

Test(imapd, mailbox_escape_rejected)
{
	struct imapd_session *s = logged_in_selected();

	cr_assert_str_eq(run(s, "c SELECT ../alice\r\n"
	    "d SELECT \"..\"\r\ne CREATE \"a/b\"\r\nf CREATE ../../etc\r\n"
	    "g STATUS \".hidden\" (MESSAGES)\r\nh SELECT {2}\r\n..\r\n"
	    "i CREATE \"x\\\\y\"\r\n"),
	    "c NO invalid mailbox name\r\nd NO invalid mailbox name\r\n"
	    "e NO invalid mailbox name\r\nf NO invalid mailbox name\r\n"
	    "g NO invalid mailbox name\r\n+ ready for literal data\r\n"
	    "h NO invalid mailbox name\r\ni NO invalid mailbox name\r\n");
	imapd_session_free(s);
}

Test(imapd, idle_reports_new_mail)
{
	struct imapd_session *s = logged_in_selected();

	cr_assert_str_eq(run(s, "c IDLE\r\n"), "+ idling\r\n");
	cr_assert_eq(FL, INSESS_IDLE_WAIT);
	buf_reset(&O);
	cr_assert_eq(imapd_session_notify(s, &O), INSESS_IDLE_WAIT);
	cr_assert_eq(O.len, 0);
	insess_fix_deliver(&fx, NULL, "Subject: new\r\n\r\nx\r\n");
	cr_assert_eq(imapd_session_tick(s, &O), INSESS_IDLE_WAIT);
	cr_assert_str_eq(O.data, "* 3 EXISTS\r\n* 3 RECENT\r\n");
	cr_assert_str_eq(run_bytes(s, "DONE\r\n"), "c OK IDLE terminated\r\n");
	cr_assert_eq(FL, 0);
	cr_assert_str_eq(run(s, "d UID FETCH 3 UID\r\n"),
	    "* 3 FETCH (UID 3)\r\nd OK UID FETCH completed\r\n");
	imapd_session_free(s);
}

Test(imapd, noop_reports_expunge_by_other_session)
{
	struct imapd_session	*a = logged_in_selected();
	struct imapd_session	*b = logged_in_selected();

	run(b, "x STORE 1 +FLAGS.SILENT (\\Deleted)\r\ny EXPUNGE\r\n");
	cr_assert_str_eq(O.data, "x OK STORE completed\r\n"
	    "* 1 EXPUNGE\r\ny OK EXPUNGE completed\r\n");
	cr_assert_str_eq(run(a, "c NOOP\r\n"),
	    "* 1 EXPUNGE\r\nc OK NOOP completed\r\n");
	run(b, "z STORE 1 FLAGS.SILENT (\\Flagged)\r\n");
	cr_assert_str_eq(run(a, "d NOOP\r\n"),
	    "* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\nd OK NOOP completed\r\n");
	imapd_session_free(a);
	imapd_session_free(b);
}

Test(imapd, uids_stable_after_reopen)
{
	struct imapd_session *s = logged_in_selected();

	run(s, "c STORE 1 +FLAGS.SILENT (\\Deleted)\r\nd CLOSE\r\n"
	    "e LOGOUT\r\n");
	imapd_session_free(s);
	insess_fix_deliver(&fx, NULL, "Subject: third\r\n\r\n3\r\n");
	s = logged_in_selected();
	cr_assert(strstr(O.data, "* 2 EXISTS\r\n") != NULL);
	cr_assert(strstr(O.data, "[UIDNEXT 4]") != NULL);
	cr_assert_str_eq(run(s, "f FETCH 1:* UID\r\ng UID FETCH 3:* UID\r\n"
	    "h UID SEARCH UID 1:2\r\n"),
	    "* 1 FETCH (UID 2)\r\n* 2 FETCH (UID 3)\r\nf OK FETCH completed\r\n"
	    "* 2 FETCH (UID 3)\r\ng OK UID FETCH completed\r\n"
	    "* SEARCH 2\r\nh OK UID SEARCH completed\r\n");
	imapd_session_free(s);
}

Test(imapd, literals_and_bounds)
{
	struct imapd_session	*s = new_session();
	static char		 big[IMAPD_LINE_MAX + 100];

	cr_assert_str_eq(run(s, "z LOGIN {2000}\r\n"),
	    "z BAD literal too large\r\n");
	cr_assert_str_eq(run(s, "a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n"),
	    "+ ready for literal data\r\n"
	    "a OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UNSELECT ID] "
	    "logged in\r\n");
	cr_assert_str_eq(run(s, "b SELECT {999999}\r\nc NOOP\r\n"),
	    "b BAD literal too large\r\nc OK NOOP completed\r\n");
	memset(big, 'x', sizeof(big) - 3);
	memcpy(big, "d NOOP ", 7);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	cr_assert_str_eq(run(s, big), "d BAD line too long\r\n");
	cr_assert_str_eq(run(s, "e NOOP\r\n"), "e OK NOOP completed\r\n");
	cr_assert_str_eq(run(s, "\r\n* NOOP\r\nf\r\nf FROB\r\ng SELECT\r\n"
	    "h SELECT \"unterminated\r\ni SELECT \"a\\q\"\r\n"),
	    "* BAD invalid tag\r\n* BAD invalid tag\r\n* BAD invalid tag\r\n"
	    "f BAD unknown command, bad arguments or wrong state\r\n"
	    "g BAD invalid arguments\r\nh BAD invalid arguments\r\n"
	    "i BAD invalid arguments\r\n");
	cr_assert_str_eq(run(s, "j NOOP\r\n"), "j OK NOOP completed\r\n");
	cr_assert_str_eq(run(s, "j2 ID (\"name\" \"x\")\r\n"),
	    "* ID (\"name\" \"ringmail\")\r\nj2 OK ID completed\r\n");
	cr_assert_str_eq(run(s, "k SELECT {999999+}\r\n"),
	    "* BYE literal too large\r\n");
	cr_assert_eq(FL, INSESS_CLOSE);
	cr_assert_eq(imapd_session_input(s, "l NOOP\r\n", 8, &O), INSESS_CLOSE);
	imapd_session_free(s);
}

Test(imapd, authenticate_plain_continuation)
{
	struct imapd_session	*s = new_session();
	mono_us			 now = 1;

	mono_set_fake(&now);
	cr_assert_str_eq(run(s, "a AUTHENTICATE PLAIN\r\n*\r\n"),
	    "+ \r\na BAD authentication cancelled\r\n");
	cr_assert_str_eq(run(s, "b AUTHENTICATE PLAIN\r\nAGFsaWNlAHdyb25n\r\n"
	    "c NOOP\r\n"),
	    "+ \r\nb NO [AUTHENTICATIONFAILED] authentication failed\r\n");
	cr_assert_eq(FL, INSESS_DELAY);
	/* The pipelined NOOP waited for the delay. */
	cr_assert_str_eq(run(s, ""), "c OK NOOP completed\r\n");
	cr_assert_str_eq(run(s, "d AUTHENTICATE CRAM-MD5\r\n"
	    "e AUTHENTICATE PLAIN !!!!\r\n"),
	    "d NO unsupported mechanism\r\n"
	    "e NO [AUTHENTICATIONFAILED] invalid PLAIN response\r\n");
	cr_assert_str_eq(run_bytes(s, "f AUTHENTICATE PLAIN\r\n"
	    "AGFsaWNlAHNlY3JldA==\r\n"),
	    "+ \r\nf OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UNSELECT ID] "
	    "logged in\r\n");
	imapd_session_free(s);
	mono_set_fake(NULL);
}

Test(imapd, failed_logins_are_limited)
{
	struct imapd_session	*s = new_session();
	mono_us			 now = 1;

	mono_set_fake(&now);
	for (int i = 0; i < 3; i++) {
		run(s, "a LOGIN alice nope\r\n");
		cr_assert_eq(FL, INSESS_DELAY);
	}
	cr_assert_str_eq(run(s, "b LOGIN alice secret\r\n"),
	    "b NO [UNAVAILABLE] too many failed logins, try later\r\n");
	now += 61000000;
	cr_assert(strncmp(run(s, "c LOGIN alice secret\r\n"), "c OK", 4) == 0);
	imapd_session_free(s);
	mono_set_fake(NULL);
}

Test(imapd, byte_at_a_time_matches_whole)
{
	static const char script[] =
	    "a LOGIN {5}\r\nalice \"secret\"\r\n"
	    "b EXAMINE INBOX\r\n"
	    "c FETCH 1:* (UID FLAGS BODY.PEEK[HEADER] BODYSTRUCTURE)\r\n"
	    "d UID SEARCH OR SUBJECT {5+}\r\nmulti FROM alice\r\n"
	    "e FETCH 2 BODY.PEEK[2]<1.2>\r\n"
	    "f NOOP\r\ng LOGOUT\r\n";
	struct imapd_session	*s1 = new_session(), *s2 = new_session();
	char			*whole;

	whole = strdup(run(s1, script));
	cr_assert_str_eq(run_bytes(s2, script), whole);
	cr_assert_eq(FL, INSESS_CLOSE);
	cr_assert(strstr(whole, "* SEARCH 1 2\r\nd OK UID SEARCH") != NULL,
	    "%s", whole);
	cr_assert(strstr(whole, "BODY[2]<1> {2}\r\nAA)") != NULL);
	free(whole);
	imapd_session_free(s1);
	imapd_session_free(s2);
}

Test(imapd, big_fetch_is_streamed_in_bounded_steps)
{
	struct imapd_session	*s;
	char			*big;
	size_t			 n = 600 * 1024;
	const char		*p;

	big = malloc(n + 1);
	memset(big, 'x', n);
	memcpy(big, "Subject: big\r\n\r\n", 16);
	memcpy(big + n - 2, "\r\n", 2);
	big[n] = '\0';
	insess_fix_deliver(&fx, NULL, big);
	insess_fix_deliver(&fx, NULL, big);
	insess_fix_deliver(&fx, NULL, big);
	free(big);
	s = logged_in_selected();
	run(s, "c FETCH 1:* (BODY.PEEK[] UID)\r\nd NOOP\r\n");
	cr_assert_eq(FL, INSESS_MORE);
	cr_assert(O.len < IMAPD_OUT_HIWAT + n + 1024);
	cr_assert(strstr(O.data, "* 4 FETCH") != NULL);
	cr_assert_null(strstr(O.data, "* 5 FETCH"));
	cr_assert_null(strstr(O.data, "c OK"));
	run(s, "");
	cr_assert_eq(FL, 0);
	cr_assert(strncmp(O.data, "* 5 FETCH (BODY[] {614400}\r\nSubject: big",
	    40) == 0, "%.60s", O.data);
	{
		static const char tail[] = " UID 5)\r\nc OK FETCH completed\r\n"
		    "d OK NOOP completed\r\n";

		p = O.data + O.len - (sizeof(tail) - 1);
		cr_assert_str_eq(p, tail);
	}
	imapd_session_free(s);
}
