#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mail/token.h"

#include "in/inreport.h"

static struct token_key *key;

static void
setup(void)
{
	cr_assert_not_null(key = token_key_new("0123456789abcdef0123", 20));
}

static void
teardown(void)
{
	token_key_free(key);
}

TestSuite(inreport, .init = setup, .fini = teardown, .timeout = 20);

static const char dsn_fmt[] =
    "From: MAILER-DAEMON@mx.example\r\nTo: x\r\nSubject: failed\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
    "report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\n"
    "Content-Type: text/plain\r\n\r\nfailed\r\n--B\r\n"
    "Content-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example\r\n\r\n"
    "Final-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n"
    "Diagnostic-Code: smtp; %s\r\n\r\n--B--\r\n";

static void
analyze(const char *campaign, uint32_t idx, const char *msg,
    struct inreport *r)
{
	char local[VERP_LOCAL_BUFSZ];

	cr_assert_eq(verp_encode(key, campaign, idx, local), 0);
	cr_assert_eq(inreport_analyze(key, local, strlen(local), msg,
	    strlen(msg), r), 0);
}

Test(inreport, hard_bounce_is_suppressed)
{
	struct inreport	r;
	char		msg[1024];

	snprintf(msg, sizeof(msg), dsn_fmt, "bob@example.com", "failed",
	    "5.1.1", "550 5.1.1 user unknown");
	analyze("camp-1", 77, msg, &r);
	cr_assert_eq(r.kind, INREPORT_BOUNCED);
	cr_assert_str_eq(r.campaign, "camp-1");
	cr_assert_eq(r.index, 77);
	cr_assert_str_eq(r.rcpt, "bob@example.com");
	cr_assert_str_eq(r.esc, "5.1.1");
	cr_assert_eq(r.code, 550);
	cr_assert_str_eq(r.category, "invalid-recipient");
	cr_assert(r.suppress);
}

Test(inreport, delay_is_other)
{
	struct inreport	r;
	char		msg[1024];

	snprintf(msg, sizeof(msg), dsn_fmt, "bob@example.com", "delayed",
	    "4.4.1", "451 4.4.1 try later");
	analyze("c", 1, msg, &r);
	cr_assert_eq(r.kind, INREPORT_OTHER);
	cr_assert_not(r.suppress);
}

Test(inreport, autoreply)
{
	struct inreport r;

	analyze("c", 2, "From: b@example.com\r\nSubject: Out of office\r\n"
	    "Auto-Submitted: auto-replied\r\n\r\nAway\r\n", &r);
	cr_assert_eq(r.kind, INREPORT_AUTOREPLY);
	cr_assert_not(r.suppress);
}

Test(inreport, forged_or_missing_token_is_unattributed)
{
	struct inreport	r;
	char		local[VERP_LOCAL_BUFSZ];

	cr_assert_eq(verp_encode(key, "c", 5, local), 0);
	local[strlen(local) - 1] = local[strlen(local) - 1] == 'a' ? 'b' : 'a';
	cr_assert_eq(inreport_analyze(key, local, strlen(local), "x", 1, &r),
	    0);
	cr_assert_eq(r.kind, INREPORT_UNATTRIBUTED);
	cr_assert_str_eq(r.campaign, "");
	cr_assert_eq(inreport_analyze(key, "postmaster", 10, "x", 1, &r), 0);
	cr_assert_eq(r.kind, INREPORT_UNATTRIBUTED);
	cr_assert_eq(r.token_err, -EINVAL);
	cr_assert_eq(inreport_analyze(NULL, local, strlen(local), "x", 1, &r),
	    0);
	cr_assert_eq(r.kind, INREPORT_UNATTRIBUTED);
	cr_assert_str_eq(inreport_kind_name(INREPORT_COMPLAINED),
	    "complained");
}
