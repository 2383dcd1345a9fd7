#include <criterion/criterion.h>

#include <string.h>

#include "lib/buf.h"

#include "in/smtpd.h"

static const char *const bdoms[] = { "bounce.example" };
static const char *const rdoms[] = { "reply.example" };

static struct smtpd_session *
mk(bool tls, uint64_t max_size, unsigned max_rcpt, unsigned max_cmd)
{
	struct smtpd_conf c = {
		.hostname = "mx.test", .bounce_domains = bdoms, .nbounce = 1,
		.reply_domains = rdoms, .nreply = 1, .max_size = max_size,
		.max_rcpt = max_rcpt, .max_commands = max_cmd,
		.tls_available = tls, .peer = "192.0.2.1",
	};
	struct smtpd_session *s = smtpd_session_new(&c);

	cr_assert_not_null(s);
	return s;
}

/* Feed a script whole or a byte at a time; collects flags. */
static unsigned
feed(struct smtpd_session *s, const char *script, bool bytewise,
    struct buf *out)
{
	unsigned	fl = 0;
	size_t		n = strlen(script);

	if (!bytewise)
		return smtpd_session_input(s, script, n, out);
	for (size_t i = 0; i < n; i++)
		fl |= smtpd_session_input(s, script + i, 1, out);
	return fl;
}

TestSuite(smtpd, .timeout = 20);

Test(smtpd, greeting_and_ehlo_lists_extensions)
{
	struct smtpd_session	*s = mk(true, 1000, 0, 0);
	struct buf		 out;

	buf_init(&out);
	smtpd_session_greeting(s, &out);
	cr_assert(strncmp(out.data, "220 mx.test ", 12) == 0);
	buf_reset(&out);
	cr_assert_eq(feed(s, "EHLO client.test\r\n", false, &out), 0);
	cr_assert_not_null(strstr(out.data, "250-SIZE 1000\r\n"));
	cr_assert_not_null(strstr(out.data, "250-PIPELINING\r\n"));
	cr_assert_not_null(strstr(out.data, "250-8BITMIME\r\n"));
	cr_assert_not_null(strstr(out.data, "250-STARTTLS\r\n"));
	buf_free(&out);
	smtpd_session_free(s);
}

static void
one_message(bool bytewise)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct smtpd_message	 m;
	struct buf		 out;
	unsigned		 fl;

	buf_init(&out);
	fl = feed(s, "EHLO c\r\nMAIL FROM:<>\r\n"
	    "RCPT TO:<b-abc@Bounce.Example>\r\nRCPT TO:<bob@reply.example>\r\n"
	    "DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n", bytewise,
	    &out);
	cr_assert(fl & SMTPD_F_MESSAGE);
	cr_assert_not_null(strstr(out.data, "354 "));
	cr_assert_null(strstr(out.data, "221"), "QUIT must wait: %s",
	    out.data);
	cr_assert_eq(smtpd_session_message(s, &m), 0);
	cr_assert_str_eq(m.mail_from, "");
	cr_assert_eq(m.nrcpt, 2);
	cr_assert_eq(m.rcpt[0].kind, SMTPD_RCPT_BOUNCE);
	cr_assert_eq(m.rcpt[0].local_len, 5);
	cr_assert_eq(m.rcpt[1].kind, SMTPD_RCPT_REPLY);
	cr_assert_eq(m.len, strlen("Subject: x\r\n\r\n.dot\r\n"));
	cr_assert(memcmp(m.data, "Subject: x\r\n\r\n.dot\r\n", m.len) == 0);
	buf_reset(&out);
	fl = smtpd_session_delivered(s, true, &out);
	cr_assert(fl & INSESS_CLOSE);
	cr_assert_str_eq(out.data, "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, pipelined_message_whole)
{
	one_message(false);
}

Test(smtpd, pipelined_message_bytewise)
{
	one_message(true);
}

Test(smtpd, relay_refused)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct buf		 out;

	buf_init(&out);
	feed(s, "HELO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@gmail.com>\r\n"
	    "RCPT TO:<x@bounce.example.evil.com>\r\nDATA\r\n", false, &out);
	cr_assert_not_null(strstr(out.data, "550 5.7.1 "));
	cr_assert_not_null(strstr(out.data, "554 5.5.1 No valid"));
	cr_assert_null(strstr(out.data, "354"));
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, postmaster_accepted)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct buf		 out;

	buf_init(&out);
	feed(s, "HELO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<Postmaster>\r\n",
	    false, &out);
	cr_assert_not_null(strstr(out.data, "250 2.1.5"));
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, smuggling_bare_lf_does_not_end_data)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct smtpd_message	 m;
	struct buf		 out;
	unsigned		 fl;

	buf_init(&out);
	fl = feed(s, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@reply.example>"
	    "\r\nDATA\r\nA\n.\nMAIL FROM:<evil>\r\nB\r\n.\n"
	    "C\n.\r\nD\r\n.\r\n", false, &out);
	cr_assert(fl & SMTPD_F_MESSAGE);
	cr_assert_eq(smtpd_session_message(s, &m), 0);
	/* Only the last CRLF.CRLF ended it; ".\n" after CRLF is an
	 * unstuffed dot line, after a bare LF it is kept. */
	cr_assert_eq(m.len, strlen("A\n.\nMAIL FROM:<evil>\r\nB\r\n\n"
	    "C\n.\r\nD\r\n"));
	cr_assert(memcmp(m.data, "A\n.\nMAIL FROM:<evil>\r\nB\r\n\nC\n.\r\n"
	    "D\r\n", m.len) == 0);
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, empty_message_and_dot_cr_data)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct smtpd_message	 m;
	struct buf		 out;

	buf_init(&out);
	feed(s, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@reply.example>"
	    "\r\nDATA\r\n.\rX\r\n.\r\n", false, &out);
	cr_assert_eq(smtpd_session_message(s, &m), 0);
	cr_assert_eq(m.len, 4);
	cr_assert(memcmp(m.data, "\rX\r\n", 4) == 0);
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, long_line_500_and_recovery)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct buf		 out, in;

	buf_init(&out);
	buf_init(&in);
	buf_puts(&in, "NOOP ");
	for (int i = 0; i < 1200; i++)
		buf_putc(&in, 'x');
	buf_puts(&in, "\r\nNOOP\r\n");
	smtpd_session_input(s, in.data, in.len, &out);
	cr_assert_str_eq(out.data, "500 5.5.2 Line too long\r\n"
	    "250 2.0.0 Ok\r\n");
	buf_free(&in);
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, size_limit)
{
	struct smtpd_session	*s = mk(false, 10, 0, 0);
	struct buf		 out;
	unsigned		 fl;

	buf_init(&out);
	feed(s, "EHLO c\r\nMAIL FROM:<a@b.c> SIZE=11\r\n", false, &out);
	cr_assert_not_null(strstr(out.data, "552 5.3.4"));
	buf_reset(&out);
	fl = feed(s, "MAIL FROM:<a@b.c> SIZE=5 BODY=8BITMIME SMTPUTF8\r\n"
	    "RCPT TO:<x@reply.example>\r\nDATA\r\n0123456789ABC\r\n.\r\n"
	    "NOOP\r\n", false, &out);
	cr_assert_eq(fl & SMTPD_F_MESSAGE, 0);
	cr_assert_not_null(strstr(out.data, "354"));
	cr_assert_not_null(strstr(out.data, "552 5.3.4"));
	cr_assert_not_null(strstr(out.data, "250 2.0.0 Ok\r\n"));
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, max_recipients)
{
	struct smtpd_session	*s = mk(false, 0, 2, 0);
	struct buf		 out;

	buf_init(&out);
	feed(s, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<1@reply.example>\r\n"
	    "RCPT TO:<2@reply.example>\r\nRCPT TO:<3@reply.example>\r\n",
	    false, &out);
	cr_assert_not_null(strstr(out.data, "452 4.5.3"));
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, command_bound_closes)
{
	struct smtpd_session	*s = mk(false, 0, 0, 3);
	struct buf		 out;
	unsigned		 fl;

	buf_init(&out);
	fl = feed(s, "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n", false, &out);
	cr_assert(fl & INSESS_CLOSE);
	cr_assert_not_null(strstr(out.data, "421 4.7.0"));
	buf_reset(&out);
	cr_assert_eq(feed(s, "NOOP\r\n", false, &out), INSESS_CLOSE);
	cr_assert_eq(out.len, 0);
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, sequence_errors)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct buf		 out;

	buf_init(&out);
	feed(s, "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@reply.example>\r\nDATA\r\n"
	    "FOO\r\nMAIL FROM:a@b.c\r\n", false, &out);
	cr_assert_str_eq(out.data, "503 5.5.1 Send EHLO first\r\n"
	    "503 5.5.1 Need MAIL first\r\n503 5.5.1 Need RCPT first\r\n"
	    "500 5.5.2 Command not recognized\r\n"
	    "503 5.5.1 Send EHLO first\r\n");
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, starttls_drops_pipelined_plaintext)
{
	struct smtpd_session	*s = mk(true, 0, 0, 0);
	struct buf		 out;
	unsigned		 fl;

	buf_init(&out);
	fl = feed(s, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\n", false,
	    &out);
	cr_assert(fl & INSESS_STARTTLS_NOW);
	cr_assert_null(strstr(out.data, "250 2.1.0"));
	smtpd_session_tls_started(s);
	buf_reset(&out);
	feed(s, "MAIL FROM:<a@b.c>\r\nEHLO c\r\n", false, &out);
	cr_assert(strncmp(out.data, "503 5.5.1 Send EHLO", 19) == 0);
	cr_assert_null(strstr(out.data, "STARTTLS"));
	buf_reset(&out);
	feed(s, "STARTTLS\r\n", false, &out);
	cr_assert(strncmp(out.data, "502", 3) == 0);
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, failed_store_answers_451)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct buf		 out;
	unsigned		 fl;

	buf_init(&out);
	fl = feed(s, "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@reply.example>"
	    "\r\nDATA\r\nhi\r\n.\r\nMAIL FROM:<a@b.c>\r\n"
	    "RCPT TO:<y@reply.example>\r\nDATA\r\nsecond\r\n.\r\n", false, &out);
	cr_assert(fl & SMTPD_F_MESSAGE);
	buf_reset(&out);
	fl = smtpd_session_delivered(s, false, &out);
	cr_assert(fl & SMTPD_F_MESSAGE, "the second message follows");
	cr_assert(strncmp(out.data, "451 4.3.0 ", 10) == 0);
	struct smtpd_message m;

	cr_assert_eq(smtpd_session_message(s, &m), 0);
	cr_assert_str_eq(m.rcpt[0].addr, "y@reply.example");
	cr_assert_eq(m.len, 8);
	buf_free(&out);
	smtpd_session_free(s);
}

Test(smtpd, bad_paths)
{
	struct smtpd_session	*s = mk(false, 0, 0, 0);
	struct buf		 out;

	buf_init(&out);
	feed(s, "EHLO c\r\nMAIL FROM:<a b@c>\r\nMAIL FROM:<a@b> FOO=1\r\n"
	    "MAIL FROM:<@r1,@r2:a@b.c>\r\nRCPT TO:<>\r\n"
	    "RCPT TO:<x@reply.example> NOTIFY=NEVER\r\n", false, &out);
	cr_assert_str_eq(strstr(out.data, "501 5.1.7"),
	    "501 5.1.7 Bad sender address syntax\r\n"
	    "555 5.5.4 Unsupported MAIL parameter\r\n250 2.1.0 Ok\r\n"
	    "501 5.1.3 Bad recipient address syntax\r\n"
	    "555 5.5.4 Unsupported RCPT parameter\r\n");
	buf_free(&out);
	smtpd_session_free(s);
}
