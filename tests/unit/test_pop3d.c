#include <criterion/criterion.h>

#include <dirent.h>
#include <string.h>

#include "in/pop3d.h"

#include "insess_test.h"

static struct insess_fix	 fx;

static void
setup(void)
{
	insess_fix_init(&fx);
}

static void
teardown(void)
{
	insess_fix_fini(&fx);
}

TestSuite(pop3d, .init = setup, .fini = teardown, .timeout = 20);

/* Feed script (whole or byte at a time); out gets everything. */
static unsigned
feed(struct pop3d_session *s, const char *script, bool bytewise,
    struct buf *out)
{
	unsigned	 fl = 0;
	size_t		 n = strlen(script);

	if (!bytewise)
		return pop3d_session_input(s, script, n, out);
	for (size_t i = 0; i < n; i++)
		fl |= pop3d_session_input(s, script + i, 1, out);
	return fl;
}

static size_t
count_files(const char *sub)
{
	char		 p[256];
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0;

	snprintf(p, sizeof(p), "%s/%s", fx.inbox, sub);
	cr_assert_not_null(d = opendir(p));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static const char msg1[] = "From: a@example.com\r\nSubject: one\r\n\r\n"
    "line1\r\n.dot line\r\nline3\r\n";
static const char msg2[] = "Subject: two\n\nbody\n";

static void
session_transcript(bool bytewise)
{
	struct pop3d_session	*s;
	struct buf		 out;
	unsigned		 fl;

	insess_fix_deliver(&fx, NULL, msg1);
	insess_fix_deliver(&fx, NULL, msg2);
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	buf_init(&out);
	pop3d_session_greeting(s, &out);
	fl = feed(s, "USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\n"
	    "LIST 2\r\nRETR 1\r\nTOP 1 1\r\nDELE 2\r\nSTAT\r\nLIST 2\r\n"
	    "NOOP\r\n", bytewise, &out);
	cr_assert_eq(fl, 0);
	cr_assert_str_eq(out.data,
	    "+OK ringmail POP3 server ready\r\n"
	    "+OK send PASS\r\n"
	    "+OK alice has 2 messages\r\n"
	    "+OK 2 84\r\n"
	    "+OK\r\n1 62\r\n2 22\r\n.\r\n"
	    "+OK 2 22\r\n"
	    "+OK 62 octets\r\n"
	    "From: a@example.com\r\nSubject: one\r\n\r\n"
	    "line1\r\n..dot line\r\nline3\r\n.\r\n"
	    "+OK top of message follows\r\n"
	    "From: a@example.com\r\nSubject: one\r\n\r\nline1\r\n.\r\n"
	    "+OK message 2 deleted\r\n"
	    "+OK 1 62\r\n"
	    "-ERR no such message\r\n"
	    "+OK\r\n");
	/* Not yet deleted on disk. */
	cr_assert_eq(count_files("cur"), 2);
	buf_reset(&out);
	fl = feed(s, "QUIT\r\n", bytewise, &out);
	cr_assert_eq(fl, INSESS_CLOSE);
	cr_assert_str_eq(out.data, "+OK ringmail POP3 server signing off "
	    "(1 messages left)\r\n");
	cr_assert_eq(count_files("cur"), 1);
	cr_assert_eq(pop3d_session_input(s, "NOOP\r\n", 6, &out),
	    INSESS_CLOSE);
	pop3d_session_free(s);
	buf_free(&out);
}

Test(pop3d, transcript_whole)
{
	session_transcript(false);
}

Test(pop3d, transcript_byte_at_a_time)
{
	session_transcript(true);
}

Test(pop3d, dele_without_quit_keeps_messages_and_rset)
{
	struct pop3d_session	*s;
	struct buf		 out;

	insess_fix_deliver(&fx, NULL, msg1);
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	buf_init(&out);
	feed(s, "USER alice\r\nPASS secret\r\nDELE 1\r\nRSET\r\nSTAT\r\n"
	    "DELE 1\r\n", false, &out);
	cr_assert(strstr(out.data, "+OK maildrop has 1 messages\r\n"
	    "+OK 1 62\r\n+OK message 1 deleted\r\n") != NULL, "%s", out.data);
	pop3d_session_free(s);	/* connection dropped */
	cr_assert_eq(count_files("cur"), 1);
	buf_free(&out);
}

Test(pop3d, uidl_stable_across_sessions)
{
	struct pop3d_session	*s;
	struct buf		 a, b;

	insess_fix_deliver(&fx, NULL, msg1);
	insess_fix_deliver(&fx, NULL, msg2);
	buf_init(&a);
	buf_init(&b);
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	feed(s, "USER alice\r\nPASS secret\r\nUIDL\r\nDELE 1\r\nQUIT\r\n",
	    false, &a);
	pop3d_session_free(s);
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	feed(s, "USER alice\r\nPASS secret\r\nUIDL\r\nUIDL 1\r\n", false, &b);
	pop3d_session_free(s);
	/* Message 2 of the first session is message 1 now, same UIDL. */
	{
		const char *p = strstr(a.data, "\r\n2 "), *q;
		char	    uidl[64];

		cr_assert_not_null(p);
		p += 4;
		q = strstr(p, "\r\n");
		snprintf(uidl, sizeof(uidl), "+OK\r\n1 %.*s\r\n.\r\n",
		    (int)(q - p), p);
		cr_assert(strstr(b.data, uidl) != NULL, "%s / %s", a.data,
		    b.data);
		snprintf(uidl, sizeof(uidl), "+OK 1 %.*s\r\n", (int)(q - p), p);
		cr_assert(strstr(b.data, uidl) != NULL);
	}
	buf_free(&a);
	buf_free(&b);
}

Test(pop3d, plaintext_login_refused_until_stls)
{
	struct pop3d_session	*s;
	struct buf		 out;
	unsigned		 fl;

	fx.conf.loopback = false;
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	buf_init(&out);
	fl = feed(s, "CAPA\r\nUSER alice\r\nPASS secret\r\n", false, &out);
	cr_assert_eq(fl, 0);
	cr_assert_str_eq(out.data, "+OK Capability list follows\r\n"
	    "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nSTLS\r\n"
	    "IMPLEMENTATION ringmail\r\n.\r\n"
	    "-ERR [AUTH] plaintext login disabled, use STLS\r\n"
	    "-ERR [AUTH] plaintext login disabled, use STLS\r\n");
	buf_reset(&out);
	/* Pipelined bytes after STLS are dropped, not run after TLS. */
	fl = feed(s, "STLS\r\nUSER alice\r\n", false, &out);
	cr_assert_eq(fl, INSESS_STARTTLS_NOW);
	cr_assert_str_eq(out.data, "+OK Begin TLS negotiation\r\n");
	pop3d_session_tls_started(s);
	buf_reset(&out);
	fl = feed(s, "PASS secret\r\nCAPA\r\nUSER alice\r\nPASS secret\r\n",
	    false, &out);
	cr_assert_eq(fl, 0);
	cr_assert_str_eq(out.data, "-ERR USER first\r\n"
	    "+OK Capability list follows\r\nUSER\r\n"
	    "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
	    "IMPLEMENTATION ringmail\r\n.\r\n"
	    "+OK send PASS\r\n+OK alice has 0 messages\r\n");
	pop3d_session_free(s);
	buf_free(&out);
}

Test(pop3d, bad_password_delays_and_limits)
{
	struct pop3d_session	*s;
	struct buf		 out;
	unsigned		 fl;
	mono_us			 now = 5000000;

	mono_set_fake(&now);
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	buf_init(&out);
	fl = feed(s, "USER alice\r\nPASS wrong\r\nNOOP\r\n", false, &out);
	cr_assert_eq(fl, INSESS_DELAY);
	cr_assert_str_eq(out.data, "+OK send PASS\r\n"
	    "-ERR [AUTH] invalid user name or password\r\n");
	buf_reset(&out);
	/* The held-back NOOP runs after the delay. */
	fl = pop3d_session_input(s, "", 0, &out);
	cr_assert_eq(fl, 0);
	cr_assert_str_eq(out.data, "-ERR unknown command or not logged in\r\n");
	buf_reset(&out);
	feed(s, "USER alice\r\nPASS x\r\n", false, &out);
	feed(s, "USER alice\r\nPASS x\r\n", false, &out);
	buf_reset(&out);
	/* Three failures: even the right password is refused now. */
	fl = feed(s, "USER alice\r\nPASS secret\r\n", false, &out);
	cr_assert_eq(fl, INSESS_DELAY);
	cr_assert_str_eq(out.data, "+OK send PASS\r\n"
	    "-ERR [AUTH] too many failed logins, try later\r\n");
	pop3d_session_free(s);
	buf_free(&out);
	mono_set_fake(NULL);
}

Test(pop3d, long_lines_and_garbage)
{
	struct pop3d_session	*s;
	struct buf		 out;
	char			 big[2000];

	memset(big, 'A', sizeof(big) - 3);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	buf_init(&out);
	cr_assert_eq(feed(s, big, false, &out), 0);
	cr_assert_eq(feed(s, "BOGUS\r\nRETR 1\r\nUSER ../etc\r\n"
	    "USER alice\r\nPASS secret\r\nRETR 0\r\nRETR x\r\nTOP 1\r\n"
	    "RETR 99999999999999999999\r\n", false, &out), 0);
	cr_assert_str_eq(out.data, "-ERR line too long\r\n"
	    "-ERR unknown command or not logged in\r\n"
	    "-ERR unknown command or not logged in\r\n"
	    "-ERR [AUTH] invalid user name\r\n"
	    "+OK send PASS\r\n+OK alice has 0 messages\r\n"
	    "-ERR no such message\r\n"
	    "-ERR message number required\r\n"
	    "-ERR usage: TOP msg n\r\n"
	    "-ERR no such message\r\n");
	pop3d_session_free(s);
	buf_free(&out);
}

Test(pop3d, command_count_bound)
{
	struct pop3d_session	*s;
	struct buf		 out;
	unsigned		 fl = 0;

	fx.conf.max_commands = 5;
	cr_assert_not_null(s = pop3d_session_new(&fx.conf));
	buf_init(&out);
	for (int i = 0; i < 6; i++)
		fl = feed(s, "CAPA\r\n", false, &out);
	cr_assert_eq(fl, INSESS_CLOSE);
	cr_assert(strstr(out.data, "-ERR too many commands\r\n") != NULL);
	pop3d_session_free(s);
	buf_free(&out);
}

Test(pop3d, maildrop_locked_while_in_use)
{
	struct pop3d_session	*a, *b;
	struct buf		 out;

	buf_init(&out);
	cr_assert_not_null(a = pop3d_session_new(&fx.conf));
	cr_assert_not_null(b = pop3d_session_new(&fx.conf));
	feed(a, "USER alice\r\nPASS secret\r\n", false, &out);
	buf_reset(&out);
	cr_assert_eq(feed(b, "USER alice\r\nPASS secret\r\n", false, &out),
	    0);
	cr_assert_str_eq(out.data, "+OK send PASS\r\n"
	    "-ERR [IN-USE] maildrop already in use\r\n");
	pop3d_session_free(a);
	buf_reset(&out);
	feed(b, "USER alice\r\nPASS secret\r\n", false, &out);
	cr_assert_str_eq(out.data, "+OK send PASS\r\n"
	    "+OK alice has 0 messages\r\n");
	pop3d_session_free(b);
	buf_free(&out);
}
