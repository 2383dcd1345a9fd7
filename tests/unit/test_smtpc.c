#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "out/smtpc.h"

#define EHLO_FULL	"250-mx.example.net greets you\r\n" \
			"250-PIPELINING\r\n250-SIZE 1000000\r\n" \
			"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n" \
			"250 SMTPUTF8\r\n"
#define EHLO_PLAIN	"250-mx.example.net\r\n250 SIZE 1000000\r\n"
#define BODY		"Subject: hi\r\n\r\nhello\r\n.\r\n"

static unsigned
feed(struct smtpc *c, const char *s)
{
	return smtpc_recv(c, s, strlen(s));
}

/* The bytes the caller would write now; consumes them. */
static void
take_eq(struct smtpc *c, const char *want)
{
	size_t	 n = buf_unread(&c->out);

	cr_assert_eq(n, strlen(want), "out is \"%.*s\", want \"%s\"", (int)n,
	    buf_peek(&c->out), want);
	cr_assert_eq(memcmp(buf_peek(&c->out), want, n), 0,
	    "out is \"%.*s\", want \"%s\"", (int)n, buf_peek(&c->out), want);
	buf_consume(&c->out, n);
}

static void
start(struct smtpc *c, bool pipe, const char *ehlo)
{
	smtpc_init(c, "client.example", pipe);
	cr_assert_eq(c->state, SMTPC_BANNER);
	cr_assert_eq(smtpc_stage(c), SMTPC_ST_BANNER);
	cr_assert_eq(feed(c, "220 mx.example.net ESMTP\r\n"), 0);
	take_eq(c, "EHLO client.example\r\n");
	cr_assert_eq(feed(c, ehlo), SMTPC_EV_READY);
	cr_assert_eq(c->state, SMTPC_READY);
	cr_assert_eq(buf_unread(&c->out), 0);
}

/* A full successful pipelined message on a READY session. */
static void
deliver_pipelined(struct smtpc *c, const char *rcpt)
{
	char	 want[256];

	cr_assert_eq(smtpc_send_msg(c, "b@x.example", rcpt, BODY,
	    strlen(BODY)), 0);
	snprintf(want, sizeof(want), "MAIL FROM:<b@x.example> SIZE=%zu\r\n"
	    "RCPT TO:<%s>\r\nDATA\r\n", strlen(BODY) - 3, rcpt);
	take_eq(c, want);
	cr_assert_eq(feed(c, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"), 0);
	take_eq(c, BODY);
	cr_assert_eq(feed(c, "250 2.0.0 queued as X\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c->result.stage, SMTPC_ST_DOT);
	cr_assert_eq(c->result.code, 250);
	cr_assert_str_eq(c->result.esc, "2.0.0");
	cr_assert_str_eq(c->result.text, "queued as X");
	cr_assert_eq(c->state, SMTPC_READY);
	cr_assert_eq(c->in_msg, false);
}

Test(smtpc, ehlo_caps)
{
	struct smtpc	 c;

	start(&c, true, "250-mx.example.net PIPELINING\r\n"
	    "250-pipelining\r\n250-Size 35882577\r\n250-8bitmime\r\n"
	    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-SmtpUtf8\r\n"
	    "250-AUTH PLAIN LOGIN\r\n250-X-UNKNOWN\r\n250-PIPELININGX\r\n"
	    "250 CHUNKING\r\n");
	cr_assert_eq(c.caps, SMTPC_CAP_PIPELINING | SMTPC_CAP_SIZE |
	    SMTPC_CAP_8BITMIME | SMTPC_CAP_STARTTLS | SMTPC_CAP_ENHANCED |
	    SMTPC_CAP_SMTPUTF8 | SMTPC_CAP_CHUNKING);
	cr_assert_eq(c.size_max, 35882577UL);
	smtpc_fini(&c);
}

Test(smtpc, ehlo_greeting_line_is_not_a_cap)
{
	struct smtpc	 c;

	start(&c, true, "250 PIPELINING\r\n");
	cr_assert_eq(c.caps, 0);
	smtpc_fini(&c);

	start(&c, true, "250-x\r\n250-SIZE\r\n"
	    "250 SIZE 99999999999999999999999\r\n");
	cr_assert_eq(c.caps, SMTPC_CAP_SIZE);
	cr_assert_eq(c.size_max, 0);
	smtpc_fini(&c);

	start(&c, true, "250-x\r\n250 SIZE 1A000\r\n");
	cr_assert_eq(c.size_max, 0);
	smtpc_fini(&c);

	start(&c, true, "250-x\r\n250 SIZE 0\r\n");
	cr_assert_eq(c.caps, SMTPC_CAP_SIZE);
	cr_assert_eq(c.size_max, 0);
	smtpc_fini(&c);
}

Test(smtpc, helo_fallback)
{
	struct smtpc	 c;

	smtpc_init(&c, "client.example", true);
	cr_assert_eq(feed(&c, "220 old\r\n"), 0);
	take_eq(&c, "EHLO client.example\r\n");
	cr_assert_eq(feed(&c, "502 5.5.1 command not implemented\r\n"), 0);
	take_eq(&c, "HELO client.example\r\n");
	cr_assert_eq(c.state, SMTPC_HELO);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_EHLO);
	cr_assert_eq(feed(&c, "250 old\r\n"), SMTPC_EV_READY);
	cr_assert_eq(c.caps, 0);
	/* No PIPELINING: one command per reply. */
	cr_assert_eq(smtpc_send_msg(&c, "a@x", "b@y", BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<a@x>\r\n");
	smtpc_fini(&c);
}

Test(smtpc, helo_fallback_500_and_550)
{
	static const char *const codes[] = { "500 what\r\n", "550 no\r\n" };
	struct smtpc	 c;

	for (int i = 0; i < 2; i++) {
		smtpc_init(&c, "client.example", true);
		feed(&c, "220 x\r\n");
		take_eq(&c, "EHLO client.example\r\n");
		cr_assert_eq(feed(&c, codes[i]), 0);
		take_eq(&c, "HELO client.example\r\n");
		smtpc_fini(&c);
	}
}

Test(smtpc, helo_fails)
{
	struct smtpc	 c;

	smtpc_init(&c, "client.example", true);
	feed(&c, "220 x\r\n");
	take_eq(&c, "EHLO client.example\r\n");
	feed(&c, "502 no\r\n");
	take_eq(&c, "HELO client.example\r\n");
	cr_assert_eq(feed(&c, "550 5.7.1 go away\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_eq(c.result.code, 550);
	cr_assert_str_eq(c.result.text, "go away");
	take_eq(&c, "QUIT\r\n");
	cr_assert_eq(feed(&c, "221 bye\r\n"), SMTPC_EV_CLOSE);
	cr_assert_eq(c.state, SMTPC_CLOSED);
	smtpc_fini(&c);
}

Test(smtpc, ehlo_4xx_no_fallback)
{
	struct smtpc	 c;

	smtpc_init(&c, "client.example", true);
	feed(&c, "220 x\r\n");
	take_eq(&c, "EHLO client.example\r\n");
	cr_assert_eq(feed(&c, "454 4.7.0 later\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_eq(c.result.code, 454);
	take_eq(&c, "QUIT\r\n");
	smtpc_fini(&c);
}

Test(smtpc, banner_rejected)
{
	struct smtpc	 c;

	smtpc_init(&c, "client.example", true);
	cr_assert_eq(feed(&c, "554-5.7.1 no\r\n554 5.7.1 service\r\n"),
	    SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_BANNER);
	cr_assert_eq(c.result.code, 554);
	cr_assert_str_eq(c.result.esc, "5.7.1");
	cr_assert_str_eq(c.result.text, "no service");
	take_eq(&c, "QUIT\r\n");
	cr_assert_eq(c.state, SMTPC_QUIT);
	cr_assert_eq(feed(&c, "221 bye\r\n"), SMTPC_EV_CLOSE);
	smtpc_fini(&c);
}

Test(smtpc, banner_421)
{
	struct smtpc	 c;

	smtpc_init(&c, "client.example", true);
	cr_assert_eq(feed(&c, "421 4.3.2 busy\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_BANNER);
	cr_assert_eq(c.result.code, 421);
	cr_assert_eq(buf_unread(&c.out), 0);
	smtpc_fini(&c);
}

Test(smtpc, pipelined_happy_path_exact_bytes)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_MAIL);
	cr_assert_eq(smtpc_send_msg(&c, "bounce+t@x.example", "u@y.example",
	    BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<bounce+t@x.example> SIZE=22\r\n"
	    "RCPT TO:<u@y.example>\r\nDATA\r\n");
	cr_assert_eq(c.pending, 3);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_MAIL);
	cr_assert_eq(feed(&c, "250 2.1.0 ok\r\n"), 0);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_RCPT);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(feed(&c, "250 2.1.5 ok\r\n"), 0);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_DATA);
	cr_assert_eq(feed(&c, "354 go ahead\r\n"), 0);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_DOT);
	take_eq(&c, BODY);
	cr_assert_eq(feed(&c, "250 2.0.0 Ok: queued\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	cr_assert_eq(c.result.code, 250);
	cr_assert_str_eq(c.result.text, "Ok: queued");
	cr_assert_eq(c.nmsgs, 1);
	smtpc_fini(&c);
}

Test(smtpc, pipelined_rcpt_550_then_rset_and_reuse)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_send_msg(&c, "b@x", "nobody@y", BODY,
	    strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=22\r\nRCPT TO:<nobody@y>\r\n"
	    "DATA\r\n");
	/* All three replies in one read. */
	cr_assert_eq(feed(&c, "250 2.1.0 ok\r\n550 5.1.1 no such user\r\n"
	    "554 5.5.1 no valid recipients\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	cr_assert_eq(c.result.code, 550);
	cr_assert_str_eq(c.result.esc, "5.1.1");
	cr_assert_str_eq(c.result.text, "no such user");
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(c.state, SMTPC_RSET);
	cr_assert_eq(feed(&c, "250 2.0.0 flushed\r\n"), SMTPC_EV_READY);
	/* The result is left alone by RSET. */
	cr_assert_eq(c.result.code, 550);
	deliver_pipelined(&c, "ok@y");
	cr_assert_eq(c.nmsgs, 1);
	smtpc_fini(&c);
}

Test(smtpc, pipelined_mail_fails_first_stage_wins)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "b@x", "r@y", BODY, strlen(BODY));
	take_eq(&c, "MAIL FROM:<b@x> SIZE=22\r\nRCPT TO:<r@y>\r\nDATA\r\n");
	cr_assert_eq(feed(&c, "452 4.3.1 full\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_MAIL);
	cr_assert_eq(c.result.code, 452);
	cr_assert_eq(feed(&c, "503 5.5.1 need MAIL\r\n"), 0);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(feed(&c, "503 5.5.1 need RCPT\r\n"), 0);
	cr_assert_eq(c.result.stage, SMTPC_ST_MAIL);
	cr_assert_eq(c.result.code, 452);
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
	smtpc_fini(&c);
}

Test(smtpc, pipelined_354_after_failed_rcpt_sends_lone_dot)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "b@x", "r@y", BODY, strlen(BODY));
	take_eq(&c, "MAIL FROM:<b@x> SIZE=22\r\nRCPT TO:<r@y>\r\nDATA\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n"),
	    SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	cr_assert_eq(c.result.code, 550);
	/* Never the body: nobody accepted it. */
	take_eq(&c, ".\r\n");
	cr_assert_eq(c.state, SMTPC_DOT);
	cr_assert_eq(feed(&c, "554 5.5.1 no valid recipients\r\n"), 0);
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	cr_assert_eq(c.result.code, 550);
	cr_assert_eq(c.nmsgs, 0);
	smtpc_fini(&c);
}

Test(smtpc, not_pipelined_when_disabled)
{
	struct smtpc	 c;

	start(&c, false, EHLO_FULL);
	cr_assert_eq(smtpc_send_msg(&c, "b@x", "r@y", BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=22\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), 0);
	take_eq(&c, "RCPT TO:<r@y>\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), 0);
	take_eq(&c, "DATA\r\n");
	cr_assert_eq(feed(&c, "354 go\r\n"), 0);
	take_eq(&c, BODY);
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c.result.code, 250);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	smtpc_fini(&c);
}

Test(smtpc, not_pipelined_rcpt_fails_no_data)
{
	struct smtpc	 c;

	start(&c, true, EHLO_PLAIN);
	cr_assert_eq(smtpc_send_msg(&c, "", "r@y", BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<> SIZE=22\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), 0);
	take_eq(&c, "RCPT TO:<r@y>\r\n");
	cr_assert_eq(feed(&c, "550 5.1.1 unknown\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
	smtpc_fini(&c);
}

Test(smtpc, not_pipelined_mail_fails)
{
	struct smtpc	 c;

	start(&c, false, EHLO_PLAIN);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	take_eq(&c, "MAIL FROM:<a@b> SIZE=22\r\n");
	cr_assert_eq(feed(&c, "451 4.3.0 try later\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_MAIL);
	cr_assert_eq(c.result.code, 451);
	take_eq(&c, "RSET\r\n");
	smtpc_fini(&c);
}

Test(smtpc, data_rejected)
{
	struct smtpc	 c;

	start(&c, false, EHLO_PLAIN);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	take_eq(&c, "MAIL FROM:<a@b> SIZE=22\r\n");
	feed(&c, "250 ok\r\n");
	take_eq(&c, "RCPT TO:<r@y>\r\n");
	feed(&c, "250 ok\r\n");
	take_eq(&c, "DATA\r\n");
	cr_assert_eq(feed(&c, "554 5.7.1 no\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_DATA);
	take_eq(&c, "RSET\r\n");
	smtpc_fini(&c);
}

Test(smtpc, data_gets_250_is_protocol_error)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n250 ok\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 0);
	cr_assert_eq(c.result.stage, SMTPC_ST_DATA);
	cr_assert(strncmp(c.result.text, "protocol error: ", 16) == 0);
	smtpc_fini(&c);
}

Test(smtpc, dot_451)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	feed(&c, "250 ok\r\n250 ok\r\n354 go\r\n");
	take_eq(&c, BODY);
	cr_assert_eq(feed(&c, "451 4.3.0 local error\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	cr_assert_eq(c.result.code, 451);
	cr_assert_str_eq(c.result.esc, "4.3.0");
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
	cr_assert_eq(c.nmsgs, 0);
	deliver_pipelined(&c, "again@y");
	cr_assert_eq(c.nmsgs, 1);
	smtpc_fini(&c);
}

Test(smtpc, rset_fails_quits)
{
	struct smtpc	 c;

	start(&c, false, EHLO_PLAIN);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	feed(&c, "550 no\r\n");
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "500 what\r\n"), 0);
	take_eq(&c, "QUIT\r\n");
	cr_assert_eq(feed(&c, "221 bye\r\n"), SMTPC_EV_CLOSE);
	smtpc_fini(&c);
}

Test(smtpc, reply_421_mid_transaction)
{
	struct smtpc	 c;

	start(&c, false, EHLO_PLAIN);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	feed(&c, "250 ok\r\n");
	take_eq(&c, "RCPT TO:<r@y>\r\n");
	cr_assert_eq(feed(&c, "421 4.4.2 timeout, closing\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	cr_assert_eq(c.result.code, 421);
	cr_assert_str_eq(c.result.esc, "4.4.2");
	cr_assert_eq(c.state, SMTPC_CLOSED);
	cr_assert_eq(buf_unread(&c.out), 0);
	/* Dead session: more input is ignored, sending is refused. */
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_CLOSE);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY)),
	    -EBUSY);
	smtpc_fini(&c);
}

Test(smtpc, reply_421_while_idle)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	memset(&c.result, 0, sizeof(c.result));
	cr_assert_eq(feed(&c, "421 shutting down\r\n"), SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 0);
	smtpc_fini(&c);
}

Test(smtpc, reply_421_after_failed_rcpt_no_second_result)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "250 ok\r\n550 no\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(feed(&c, "421 bye\r\n"), SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 550);
	smtpc_fini(&c);
}

Test(smtpc, unsolicited_reply_when_idle)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	cr_assert_eq(feed(&c, "250 surprise\r\n"), SMTPC_EV_CLOSE);
	cr_assert_eq(c.state, SMTPC_CLOSED);
	smtpc_fini(&c);
}

Test(smtpc, garbage_mid_transaction)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "250 ok\r\nHTTP/1.0 200 OK\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 0);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	cr_assert(strncmp(c.result.text, "protocol error: malformed", 25) == 0,
	    "%s", c.result.text);
	smtpc_fini(&c);
}

Test(smtpc, garbage_in_banner)
{
	struct smtpc	 c;

	smtpc_init(&c, "client.example", true);
	cr_assert_eq(feed(&c, "SSH-2.0-OpenSSH_9.2\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_BANNER);
	cr_assert_eq(c.result.code, 0);
	smtpc_fini(&c);
}

Test(smtpc, size_too_big)
{
	struct smtpc	 c;
	char		 big[200];

	start(&c, true, "250-x\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 5, "\r\n.\r\n", 5);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", big, sizeof(big)),
	    -EMSGSIZE);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(c.state, SMTPC_READY);
	/* 100 octets before stuffing fits exactly: 98 + CRLF, then ".\r\n". */
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", big + 97, 103), 0);
	cr_assert(strstr(buf_peek(&c.out), " SIZE=100\r\n") != NULL);
	smtpc_fini(&c);
}

Test(smtpc, size_does_not_count_stuffing)
{
	struct smtpc	 c;
	/* Wire form of ".a\r\n.\r\nb\r\n" (10 octets). */
	const char	*body = "..a\r\n..\r\nb\r\n.\r\n";

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", body, strlen(body)), 0);
	cr_assert(strstr(buf_peek(&c.out), " SIZE=10\r\n") != NULL, "%s",
	    buf_peek(&c.out));
	smtpc_fini(&c);
}

Test(smtpc, body_8bitmime)
{
	struct smtpc	 c;
	const char	*body = "caf\xc3\xa9\r\n.\r\n";

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", body, strlen(body)), 0);
	take_eq(&c, "MAIL FROM:<a@b> SIZE=7 BODY=8BITMIME\r\nRCPT TO:<r@y>\r\n"
	    "DATA\r\n");
	smtpc_fini(&c);

	/* Peer without 8BITMIME: no parameter (conversion is issue 3). */
	start(&c, false, "250-x\r\n250 SIZE\r\n");
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", body, strlen(body)), 0);
	take_eq(&c, "MAIL FROM:<a@b> SIZE=7\r\n");
	smtpc_fini(&c);
}

Test(smtpc, smtputf8)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "j\xc3\xb6rg@y", BODY,
	    strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<a@b> SIZE=22 SMTPUTF8\r\n"
	    "RCPT TO:<j\xc3\xb6rg@y>\r\nDATA\r\n");
	smtpc_fini(&c);

	start(&c, true, "250-x\r\n250 PIPELINING\r\n");
	cr_assert_eq(smtpc_send_msg(&c, "\xc3\xa9@b", "r@y", BODY,
	    strlen(BODY)), -EPROTONOSUPPORT);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(c.state, SMTPC_READY);
	cr_assert_eq(c.in_msg, false);
	/* An ASCII message still goes. */
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<a@b>\r\nRCPT TO:<r@y>\r\nDATA\r\n");
	smtpc_fini(&c);
}

Test(smtpc, send_msg_rejects_bad_input)
{
	struct smtpc	 c;
	char		 longaddr[300];

	smtpc_init(&c, "client.example", true);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY)),
	    -EBUSY);
	smtpc_fini(&c);

	start(&c, true, EHLO_FULL);
	/* Command injection through an address. */
	cr_assert_eq(smtpc_send_msg(&c, "a@b>\r\nRCPT TO:<evil@x", "r@y", BODY,
	    strlen(BODY)), -EINVAL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y\n", BODY, strlen(BODY)),
	    -EINVAL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "", BODY, strlen(BODY)),
	    -EINVAL);
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	cr_assert_eq(smtpc_send_msg(&c, "a@b", longaddr, BODY, strlen(BODY)),
	    -EINVAL);
	/* Bodies that do not end in the terminator would hang or smuggle. */
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", "x\r\n", 3), -EINVAL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", "x.\r\n", 4), -EINVAL);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", "x\n.\r\n", 5),
	    -EINVAL);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(c.state, SMTPC_READY);
	/* The empty message is fine. */
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", ".\r\n", 3), 0);
	cr_assert_eq(smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY)),
	    -EBUSY);
	smtpc_fini(&c);
}

Test(smtpc, timeout_results)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	feed(&c, "250 ok\r\n250 ok\r\n");
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_DATA);
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_DATA);
	cr_assert_eq(c.result.code, 0);
	cr_assert_str_eq(c.result.text, "timeout waiting for data reply");
	cr_assert_eq(c.state, SMTPC_CLOSED);
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_CLOSE);
	smtpc_fini(&c);

	/* During setup: a result for the connection attempt. */
	smtpc_init(&c, "client.example", true);
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_BANNER);
	cr_assert_str_eq(c.result.text, "timeout waiting for banner reply");
	smtpc_fini(&c);

	/* Idle or in RSET: nothing to report. */
	start(&c, true, EHLO_FULL);
	memset(&c.result, 0, sizeof(c.result));
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_CLOSE);
	cr_assert_str_eq(c.result.text, "");
	smtpc_fini(&c);
}

Test(smtpc, conn_lost_results)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	feed(&c, "250 ok\r\n250 ok\r\n354 go\r\n");
	cr_assert_eq(smtpc_conn_lost(&c, "reset by peer"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	cr_assert_eq(c.result.code, 0);
	cr_assert_str_eq(c.result.text,
	    "connection lost during dot: reset by peer");
	smtpc_fini(&c);

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_conn_lost(&c, NULL), SMTPC_EV_CLOSE);
	smtpc_fini(&c);

	smtpc_init(&c, "client.example", true);
	feed(&c, "220 x\r\n");
	cr_assert_eq(smtpc_conn_lost(&c, NULL),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_str_eq(c.result.text, "connection lost during ehlo");
	smtpc_fini(&c);
}

Test(smtpc, quit)
{
	struct smtpc	 c;

	start(&c, true, EHLO_FULL);
	cr_assert_eq(smtpc_quit(&c), 0);
	take_eq(&c, "QUIT\r\n");
	cr_assert_eq(smtpc_quit(&c), 0);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_QUIT);
	cr_assert_eq(feed(&c, "221 2.0.0 bye\r\n"), SMTPC_EV_CLOSE);
	cr_assert_eq(smtpc_quit(&c), SMTPC_EV_CLOSE);
	smtpc_fini(&c);

	/* A lost connection after QUIT is no failure. */
	start(&c, true, EHLO_FULL);
	smtpc_quit(&c);
	cr_assert_eq(smtpc_conn_lost(&c, "eof"), SMTPC_EV_CLOSE);
	smtpc_fini(&c);

	/* Mid-transaction: the message gets its result. */
	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	cr_assert_eq(smtpc_quit(&c), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 0);
	cr_assert_eq(c.result.stage, SMTPC_ST_MAIL);
	smtpc_fini(&c);
}

Test(smtpc, several_messages_one_session_no_growth)
{
	struct smtpc	 c;
	size_t		 cap;
	char		 rcpt[32];

	start(&c, true, EHLO_FULL);
	deliver_pipelined(&c, "r0@y");
	cap = c.out.cap;
	for (int i = 1; i < 20; i++) {
		snprintf(rcpt, sizeof(rcpt), "r%d@y", i);
		deliver_pipelined(&c, rcpt);
	}
	cr_assert_eq(c.nmsgs, 20);
	cr_assert_eq(c.out.cap, cap);
	smtpc_fini(&c);
}

/* The whole conversation, the peer's bytes arriving one at a time. */
Test(smtpc, byte_at_a_time)
{
	static const char banner[] = "220-mx\r\n220 ESMTP\r\n";
	static const char ehlo[] = EHLO_FULL;
	static const char txn[] = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n";
	struct smtpc	 c;
	unsigned	 ev = 0;

	smtpc_init(&c, "client.example", true);
	for (size_t i = 0; i < sizeof(banner) - 1; i++)
		ev |= smtpc_recv(&c, banner + i, 1);
	cr_assert_eq(ev, 0);
	take_eq(&c, "EHLO client.example\r\n");
	for (size_t i = 0; i < sizeof(ehlo) - 1; i++) {
		ev = smtpc_recv(&c, ehlo + i, 1);
		cr_assert_eq(ev, i == sizeof(ehlo) - 2 ? SMTPC_EV_READY : 0u);
	}
	cr_assert(c.caps & SMTPC_CAP_PIPELINING);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	buf_consume(&c.out, buf_unread(&c.out));
	for (size_t i = 0; i < sizeof(txn) - 1; i++)
		cr_assert_eq(smtpc_recv(&c, txn + i, 1), 0);
	take_eq(&c, BODY);
	cr_assert_eq(feed(&c, "2"), 0);
	cr_assert_eq(feed(&c, "50 ok\r"), 0);
	cr_assert_eq(feed(&c, "\n"), SMTPC_EV_RESULT | SMTPC_EV_READY);
	smtpc_fini(&c);
}

Test(smtpc, result_text_bounded)
{
	struct smtpc	 c;
	char		 reply[1200];

	start(&c, true, EHLO_FULL);
	smtpc_send_msg(&c, "a@b", "r@y", BODY, strlen(BODY));
	memset(reply, 'z', sizeof(reply));
	memcpy(reply, "250 ok\r\n550 ", 12);
	memcpy(reply + sizeof(reply) - 2, "\r\n", 2);
	cr_assert_eq(smtpc_recv(&c, reply, sizeof(reply)), SMTPC_EV_RESULT);
	cr_assert_eq(strlen(c.result.text), sizeof(c.result.text) - 1);
	smtpc_fini(&c);
}

Test(smtpc, reset_reuses_buffer)
{
	struct smtpc	 c;
	char		*mem;

	start(&c, true, EHLO_FULL);
	mem = c.out.data;
	smtpc_conn_lost(&c, NULL);
	smtpc_reset(&c);
	cr_assert_eq(c.state, SMTPC_BANNER);
	cr_assert_eq(c.caps, 0);
	cr_assert_eq(c.out.data, mem);
	cr_assert_eq(feed(&c, "220 again\r\n"), 0);
	take_eq(&c, "EHLO client.example\r\n");
	cr_assert_eq(feed(&c, EHLO_FULL), SMTPC_EV_READY);
	cr_assert_eq(c.out.data, mem);
	smtpc_fini(&c);
}

Test(smtpc, stage_names)
{
	cr_assert_str_eq(smtpc_stage_name(SMTPC_ST_CONNECT), "connect");
	cr_assert_str_eq(smtpc_stage_name(SMTPC_ST_RCPT), "rcpt");
	cr_assert_str_eq(smtpc_stage_name(SMTPC_ST_DOT), "dot");
}

/* smtp_dotstuff: wire form and the anti-smuggling guard. */
static void
stuff_eq(const char *in, size_t inlen, const char *want)
{
	struct buf	 b;
	const char	*p;

	buf_init(&b);
	cr_assert_eq(smtp_dotstuff(&b, in, inlen), 0);
	cr_assert_eq(b.len, strlen(want), "got \"%s\" want \"%s\"", b.data,
	    want);
	cr_assert_eq(memcmp(b.data, want, b.len), 0, "got \"%s\" want \"%s\"",
	    b.data, want);
	/* Invariants: CR only in CRLF, LF only after CR, one terminator. */
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] == '\r')
			cr_assert(i + 1 < b.len && b.data[i + 1] == '\n');
		if (b.data[i] == '\n')
			cr_assert(i > 0 && b.data[i - 1] == '\r');
	}
	p = memmem(b.data, b.len, "\r\n.\r\n", 5);
	cr_assert(p == NULL || (size_t)(p - b.data) == b.len - 5);
	cr_assert(b.len == 3 || memcmp(b.data, ".\r\n", 3) != 0);
	buf_free(&b);
}

#define STUFF(in, want)	stuff_eq(in, sizeof(in) - 1, want)

Test(smtpc, dotstuff_basic)
{
	STUFF("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
	STUFF("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n");
	STUFF(".leading\r\n", "..leading\r\n.\r\n");
	STUFF("no final crlf", "no final crlf\r\n.\r\n");
	STUFF("", ".\r\n");
	STUFF("\r\n", "\r\n.\r\n");
	STUFF("a\r\n..\r\n", "a\r\n...\r\n.\r\n");
	STUFF("x.\r\n", "x.\r\n.\r\n");
	STUFF(".", "..\r\n.\r\n");
}

Test(smtpc, dotstuff_smuggling)
{
	STUFF("x\n.\ny", "x\r\n..\r\ny\r\n.\r\n");
	STUFF("x\r.\ry", "x\r\n..\r\ny\r\n.\r\n");
	STUFF("x\r\n.\r\ny", "x\r\n..\r\ny\r\n.\r\n");
	STUFF("x\r\n.\nMAIL FROM:<e@v>\r\n",
	    "x\r\n..\r\nMAIL FROM:<e@v>\r\n.\r\n");
	STUFF("x\n.\r\ny", "x\r\n..\r\ny\r\n.\r\n");
	STUFF("x\r.\r\ny", "x\r\n..\r\ny\r\n.\r\n");
	STUFF("a\r\r\nb", "a\r\n\r\nb\r\n.\r\n");
	STUFF("a\n\rb", "a\r\n\r\nb\r\n.\r\n");
	STUFF("end\r", "end\r\n.\r\n");
	STUFF("end\n", "end\r\n.\r\n");
}

Test(smtpc, dotstuff_appends)
{
	struct buf	 b;

	buf_init(&b);
	buf_puts(&b, "HDR");
	cr_assert_eq(smtp_dotstuff(&b, "x", 1), 0);
	cr_assert_str_eq(b.data, "HDRx\r\n.\r\n");
	buf_free(&b);
}

/* ---- STARTTLS (RFC 3207) ---- */

#define EHLO_TLS	"250-mx.example.net\r\n250-PIPELINING\r\n" \
			"250-STARTTLS\r\n250 SIZE 1000000\r\n"

/* Banner and first EHLO with a TLS mode; leaves what EHLO produced. */
static unsigned
start_tls(struct smtpc *c, enum smtpc_tls_mode mode, const char *ehlo)
{
	smtpc_init(c, "client.example", true);
	smtpc_set_tls(c, mode);
	cr_assert_eq(feed(c, "220 mx.example.net ESMTP\r\n"), 0);
	take_eq(c, "EHLO client.example\r\n");
	return feed(c, ehlo);
}

/* Up to the 220 to STARTTLS. */
static void
to_handshake(struct smtpc *c, enum smtpc_tls_mode mode)
{
	cr_assert_eq(start_tls(c, mode, EHLO_TLS), 0);
	cr_assert_eq(c->state, SMTPC_STARTTLS);
	cr_assert_eq(smtpc_stage(c), SMTPC_ST_EHLO);
	take_eq(c, "STARTTLS\r\n");
	cr_assert_eq(feed(c, "220 2.0.0 Ready to start TLS\r\n"),
	    SMTPC_EV_STARTTLS);
	cr_assert_eq(c->state, SMTPC_TLS_HANDSHAKE);
	cr_assert_eq(smtpc_stage(c), SMTPC_ST_EHLO);
	cr_assert_eq(buf_unread(&c->out), 0);
	cr_assert_eq(c->tls, false);
}

Test(smtpc, starttls_then_ehlo_again_with_new_caps)
{
	struct smtpc	 c;

	to_handshake(&c, SMTPC_TLS_OPPORTUNISTIC);
	cr_assert_eq(smtpc_tls_started(&c), 0);
	cr_assert(c.tls);
	/* RFC 3207 4.2: capabilities forgotten, EHLO again. */
	cr_assert_eq(c.caps, 0);
	cr_assert_eq(c.size_max, 0);
	cr_assert_eq(c.state, SMTPC_EHLO);
	take_eq(&c, "EHLO client.example\r\n");
	/* New caps; STARTTLS offered again is not used again. */
	cr_assert_eq(feed(&c, "250-mx.example.net\r\n250-STARTTLS\r\n"
	    "250-CHUNKING\r\n250 SIZE 2000\r\n"), SMTPC_EV_READY);
	cr_assert_eq(c.caps, SMTPC_CAP_STARTTLS | SMTPC_CAP_CHUNKING |
	    SMTPC_CAP_SIZE);
	cr_assert_eq(c.size_max, 2000);
	cr_assert_eq(buf_unread(&c.out), 0);
	/* No PIPELINING after TLS: one command at a time. */
	cr_assert_eq(smtpc_send_msg(&c, "a@x", "b@y", BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<a@x> SIZE=22\r\n");
	smtpc_fini(&c);
}

Test(smtpc, starttls_required_then_delivers)
{
	struct smtpc	 c;

	to_handshake(&c, SMTPC_TLS_REQUIRED);
	cr_assert_eq(smtpc_tls_started(&c), 0);
	take_eq(&c, "EHLO client.example\r\n");
	cr_assert_eq(feed(&c, EHLO_FULL), SMTPC_EV_READY);
	deliver_pipelined(&c, "r@y.example");
	cr_assert(c.tls);
	smtpc_fini(&c);
}

Test(smtpc, starttls_none_never_sends_it)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_NONE, EHLO_TLS), SMTPC_EV_READY);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(c.caps & SMTPC_CAP_STARTTLS, SMTPC_CAP_STARTTLS);
	smtpc_fini(&c);
}

Test(smtpc, starttls_not_offered_opportunistic_is_plain)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_FULL),
	    SMTPC_EV_READY);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(c.tls, false);
	deliver_pipelined(&c, "r@y.example");
	smtpc_fini(&c);
}

Test(smtpc, starttls_required_but_absent)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_REQUIRED, EHLO_FULL),
	    SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_eq(c.result.code, 0);
	cr_assert_str_eq(c.result.text,
	    "TLS required but STARTTLS not offered");
	take_eq(&c, "QUIT\r\n");
	cr_assert_eq(feed(&c, "221 bye\r\n"), SMTPC_EV_CLOSE);
	smtpc_fini(&c);
}

Test(smtpc, starttls_required_helo_fallback_fails)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_REQUIRED, "502 no EHLO\r\n"), 0);
	take_eq(&c, "HELO client.example\r\n");
	cr_assert_eq(feed(&c, "250 old\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_str_eq(c.result.text,
	    "TLS required but STARTTLS not offered");
	take_eq(&c, "QUIT\r\n");
	smtpc_fini(&c);
}

Test(smtpc, starttls_refused_opportunistic_goes_on_plain)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_TLS), 0);
	take_eq(&c, "STARTTLS\r\n");
	cr_assert_eq(feed(&c, "454 4.7.0 TLS not available\r\n"),
	    SMTPC_EV_READY);
	cr_assert_eq(c.state, SMTPC_READY);
	cr_assert_eq(c.tls, false);
	/* The caps from the plain EHLO still hold (PIPELINING). */
	deliver_pipelined(&c, "r@y.example");
	smtpc_fini(&c);

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_TLS), 0);
	take_eq(&c, "STARTTLS\r\n");
	cr_assert_eq(feed(&c, "502 5.5.1 not implemented\r\n"),
	    SMTPC_EV_READY);
	smtpc_fini(&c);
}

Test(smtpc, starttls_refused_required_fails)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_REQUIRED, EHLO_TLS), 0);
	take_eq(&c, "STARTTLS\r\n");
	cr_assert_eq(feed(&c, "454 4.7.0 TLS not available\r\n"),
	    SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_eq(c.result.code, 454);
	cr_assert_str_eq(c.result.esc, "4.7.0");
	cr_assert_str_eq(c.result.text, "STARTTLS refused: TLS not available");
	take_eq(&c, "QUIT\r\n");
	cr_assert_eq(feed(&c, "221 bye\r\n"), SMTPC_EV_CLOSE);
	smtpc_fini(&c);
}

Test(smtpc, starttls_421_closes)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_TLS), 0);
	take_eq(&c, "STARTTLS\r\n");
	cr_assert_eq(feed(&c, "421 4.3.2 shutting down\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_eq(c.result.code, 421);
	smtpc_fini(&c);
}

Test(smtpc, starttls_odd_reply_is_protocol_error)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_TLS), 0);
	take_eq(&c, "STARTTLS\r\n");
	cr_assert_eq(feed(&c, "250 sure\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 0);
	cr_assert_str_eq(c.result.text,
	    "protocol error: unexpected 250 reply to STARTTLS");
	smtpc_fini(&c);
}

/* Replies glued to the 220 would pass as sent under TLS: refuse them. */
Test(smtpc, starttls_response_injection)
{
	struct smtpc	 c;

	cr_assert_eq(start_tls(&c, SMTPC_TLS_REQUIRED, EHLO_TLS), 0);
	take_eq(&c, "STARTTLS\r\n");
	cr_assert_eq(feed(&c, "220 go ahead\r\n250-evil\r\n250 AUTH\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.state, SMTPC_CLOSED);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_str_eq(c.result.text,
	    "protocol error: plain text after STARTTLS 220 reply");
	cr_assert_eq(smtpc_tls_started(&c), SMTPC_EV_CLOSE);
	smtpc_fini(&c);

	/* The same in a later read, before the handshake is done. */
	to_handshake(&c, SMTPC_TLS_OPPORTUNISTIC);
	cr_assert_eq(feed(&c, "250 x\r\n"), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 0);
	smtpc_fini(&c);
}

Test(smtpc, starttls_handshake_failed)
{
	struct smtpc	 c;

	to_handshake(&c, SMTPC_TLS_REQUIRED);
	cr_assert_eq(smtpc_tls_failed(&c, "TLS handshake failed: certificate "
	    "verify failed for mx.example.net: hostname mismatch"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.state, SMTPC_CLOSED);
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	cr_assert_eq(c.result.code, 0);
	cr_assert_str_eq(c.result.text, "STARTTLS: TLS handshake failed: "
	    "certificate verify failed for mx.example.net: hostname mismatch");
	/* No QUIT in plain text over a broken TLS stream. */
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(smtpc_tls_failed(&c, NULL), SMTPC_EV_CLOSE);
	smtpc_fini(&c);

	to_handshake(&c, SMTPC_TLS_OPPORTUNISTIC);
	cr_assert_eq(smtpc_tls_failed(&c, NULL),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_str_eq(c.result.text, "STARTTLS: TLS handshake failed");
	smtpc_fini(&c);
}

Test(smtpc, starttls_timeouts_and_loss)
{
	struct smtpc	 c;

	to_handshake(&c, SMTPC_TLS_OPPORTUNISTIC);
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_str_eq(c.result.text, "timeout during TLS handshake");
	cr_assert_eq(c.result.stage, SMTPC_ST_EHLO);
	smtpc_fini(&c);

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_TLS), 0);
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_str_eq(c.result.text, "timeout waiting for STARTTLS reply");
	smtpc_fini(&c);

	cr_assert_eq(start_tls(&c, SMTPC_TLS_OPPORTUNISTIC, EHLO_TLS), 0);
	cr_assert_eq(smtpc_conn_lost(&c, "reset"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_str_eq(c.result.text, "connection lost during STARTTLS: "
	    "reset");
	smtpc_fini(&c);

	/* The caller giving up is not a setup failure. */
	to_handshake(&c, SMTPC_TLS_OPPORTUNISTIC);
	cr_assert_eq(smtpc_quit(&c), SMTPC_EV_CLOSE);
	smtpc_fini(&c);
}

Test(smtpc, reset_keeps_tls_mode_and_chunking)
{
	struct smtpc	 c;

	to_handshake(&c, SMTPC_TLS_REQUIRED);
	smtpc_set_chunking(&c, true);
	cr_assert_eq(smtpc_tls_started(&c), 0);
	smtpc_reset(&c);
	cr_assert_eq(c.tls, false);
	cr_assert_eq(c.tls_mode, SMTPC_TLS_REQUIRED);
	cr_assert_eq(c.use_chunking, true);
	cr_assert_eq(c.state, SMTPC_BANNER);
	cr_assert_eq(buf_unread(&c.out), 0);
	smtpc_fini(&c);
}

/* ---- CHUNKING / BDAT (RFC 3030) ---- */

#define RAW		"Subject: hi\r\n\r\n.hello\r\n"	/* not stuffed */
#define EHLO_CHUNK_PIPE	"250-mx.example.net\r\n250-PIPELINING\r\n" \
			"250-CHUNKING\r\n250 SIZE 1000000\r\n"
#define EHLO_CHUNK	"250-mx.example.net\r\n250 CHUNKING\r\n"

static void
start_chunk(struct smtpc *c, bool pipe, const char *ehlo)
{
	smtpc_init(c, "client.example", pipe);
	smtpc_set_chunking(c, true);
	cr_assert_eq(feed(c, "220 mx ESMTP\r\n"), 0);
	take_eq(c, "EHLO client.example\r\n");
	cr_assert_eq(feed(c, ehlo), SMTPC_EV_READY);
}

Test(smtpc, bdat_pipelined)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert(smtpc_will_chunk(&c));
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=23\r\nRCPT TO:<r@y>\r\n"
	    "BDAT 23 LAST\r\n" RAW);
	cr_assert_eq(feed(&c, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n"), 0);
	cr_assert_eq(c.state, SMTPC_BDAT);
	cr_assert_eq(smtpc_stage(&c), SMTPC_ST_DOT);
	cr_assert_eq(feed(&c, "250 2.0.0 queued as Y\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	cr_assert_eq(c.result.code, 250);
	cr_assert_str_eq(c.result.esc, "2.0.0");
	cr_assert_str_eq(c.result.text, "queued as Y");
	cr_assert_eq(c.nmsgs, 1);
	/* All three replies in one read work too. */
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n250 ok\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c.nmsgs, 2);
	smtpc_fini(&c);
}

Test(smtpc, bdat_unpipelined)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	take_eq(&c, "MAIL FROM:<b@x>\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), 0);
	take_eq(&c, "RCPT TO:<r@y>\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), 0);
	take_eq(&c, "BDAT 23 LAST\r\n" RAW);
	cr_assert_eq(c.state, SMTPC_BDAT);
	cr_assert_eq(feed(&c, "250 2.0.0 ok\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	cr_assert_eq(c.result.code, 250);
	smtpc_fini(&c);
}

Test(smtpc, bdat_final_reply_fails)
{
	static const char *const r[] = {
		"552 5.3.4 message too big\r\n", "451 4.3.0 try later\r\n",
	};
	struct smtpc	 c;

	for (int i = 0; i < 2; i++) {
		start_chunk(&c, true, EHLO_CHUNK_PIPE);
		cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW,
		    strlen(RAW)), 0);
		buf_consume(&c.out, buf_unread(&c.out));
		cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n"), 0);
		cr_assert_eq(feed(&c, r[i]), SMTPC_EV_RESULT);
		cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
		cr_assert_eq(c.result.code, i == 0 ? 552 : 451);
		take_eq(&c, "RSET\r\n");
		cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
		smtpc_fini(&c);
	}
}

Test(smtpc, bdat_pipelined_rcpt_fails)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "250 ok\r\n550 5.1.1 no such user\r\n"),
	    SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	cr_assert_eq(c.result.code, 550);
	cr_assert_str_eq(c.result.esc, "5.1.1");
	cr_assert_eq(buf_unread(&c.out), 0);
	/* The BDAT reply is consumed, whatever it says; then RSET. */
	cr_assert_eq(feed(&c, "554 5.5.1 no valid recipients\r\n"), 0);
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
	cr_assert_eq(c.nmsgs, 0);
	smtpc_fini(&c);
}

Test(smtpc, bdat_pipelined_mail_fails)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "451 4.3.0 later\r\n503 5.5.1 no MAIL\r\n"
	    "503 5.5.1 no RCPT\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_MAIL);
	cr_assert_eq(c.result.code, 451);
	take_eq(&c, "RSET\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_READY);
	smtpc_fini(&c);
}

Test(smtpc, bdat_unpipelined_rcpt_fails_no_bdat)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	take_eq(&c, "MAIL FROM:<b@x>\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), 0);
	take_eq(&c, "RCPT TO:<r@y>\r\n");
	cr_assert_eq(feed(&c, "550 5.1.1 nobody\r\n"), SMTPC_EV_RESULT);
	cr_assert_eq(c.result.stage, SMTPC_ST_RCPT);
	take_eq(&c, "RSET\r\n");
	smtpc_fini(&c);
}

Test(smtpc, bdat_timeout_and_421)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n"), 0);
	cr_assert_eq(smtpc_timeout(&c), SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	cr_assert_str_eq(c.result.text, "timeout waiting for BDAT reply");
	smtpc_fini(&c);

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n421 4.4.2 bye\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_eq(c.result.code, 421);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	smtpc_fini(&c);

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n354 what\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_CLOSE);
	cr_assert_str_eq(c.result.text,
	    "protocol error: unexpected 354 reply to BDAT");
	smtpc_fini(&c);
}

/* Raw message without CHUNKING: DATA, stuffed by smtpc at the 354. */
Test(smtpc, raw_without_chunking_uses_data)
{
	struct smtpc	 c;

	/* Offered, not enabled. */
	start(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_will_chunk(&c), false);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=23\r\nRCPT TO:<r@y>\r\nDATA\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n354 go\r\n"), 0);
	take_eq(&c, "Subject: hi\r\n\r\n..hello\r\n.\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n"), SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(c.result.stage, SMTPC_ST_DOT);
	smtpc_fini(&c);

	/* Enabled, not offered. */
	start_chunk(&c, false, EHLO_FULL);
	cr_assert_eq(smtpc_will_chunk(&c), false);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", RAW, strlen(RAW)),
	    0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=23\r\n");
	smtpc_fini(&c);
}

/* The wire-form API never uses BDAT: it cannot un-stuff. */
Test(smtpc, wire_form_with_chunking_uses_data)
{
	struct smtpc	 c;

	start_chunk(&c, true, EHLO_CHUNK_PIPE);
	cr_assert_eq(smtpc_send_msg(&c, "b@x", "r@y", BODY, strlen(BODY)), 0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=22\r\nRCPT TO:<r@y>\r\nDATA\r\n");
	smtpc_fini(&c);
}

Test(smtpc, raw_message_checks)
{
	struct smtpc	 c;

	start_chunk(&c, true, "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
	    "250-8BITMIME\r\n250 SIZE 30\r\n");
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "a\nb\r\n", 5),
	    -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "a\rb\r\n", 5),
	    -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "ab", 2), -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "\n", 1), -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "a\r\n\r", 4),
	    -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "", "a\r\n", 3), -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", NULL, 0), -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r\r\n@y", "a\r\n", 3),
	    -EINVAL);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r\xc3\xa9@y", "a\r\n", 3),
	    -EPROTONOSUPPORT);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y",
	    "0123456789012345678901234567\r\n", 30), 0);
	buf_consume(&c.out, buf_unread(&c.out));
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n250 ok\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y",
	    "01234567890123456789012345678\r\n", 31), -EMSGSIZE);
	cr_assert_eq(buf_unread(&c.out), 0);
	cr_assert_eq(c.state, SMTPC_READY);
	/* 8-bit: BODY=8BITMIME. */
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "\xc3\xa9\r\n", 4),
	    0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=4 BODY=8BITMIME\r\n"
	    "RCPT TO:<r@y>\r\nBDAT 4 LAST\r\n\xc3\xa9\r\n");
	cr_assert_eq(feed(&c, "250 ok\r\n250 ok\r\n250 ok\r\n"),
	    SMTPC_EV_RESULT | SMTPC_EV_READY);
	/* Empty message: BDAT 0 LAST. */
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "", 0), 0);
	take_eq(&c, "MAIL FROM:<b@x> SIZE=0\r\nRCPT TO:<r@y>\r\nBDAT 0 LAST\r\n");
	cr_assert_eq(smtpc_send_msg_raw(&c, "b@x", "r@y", "a\r\n", 3),
	    -EBUSY);
	smtpc_fini(&c);
}

static void
crlf_eq(const char *in, size_t len, const char *want)
{
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(smtp_crlf(&b, in, len), 0);
	cr_assert_eq(b.len, strlen(want));
	/* Nothing appended for "": data may still be NULL. */
	cr_assert(b.len == 0 || memcmp(b.data, want, b.len) == 0,
	    "got \"%s\"", b.data);
	buf_free(&b);
}

#define CRLF(in, want)	crlf_eq(in, sizeof(in) - 1, want)

Test(smtpc, crlf_canonical_form)
{
	CRLF("a\r\nb\r\n", "a\r\nb\r\n");
	CRLF(".x\r\n..\r\n", ".x\r\n..\r\n");
	CRLF("a\nb\rc", "a\r\nb\r\nc\r\n");
	CRLF("x\n.\r\ny", "x\r\n.\r\ny\r\n");
	CRLF("", "");
	CRLF("end\r", "end\r\n");
}
