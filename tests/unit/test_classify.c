/*
 * classify: the built-in table over real provider replies, the fallbacks,
 * the rule-file format (errors, ordering, overrides) and retry hints.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/classify.h"
#include "mail/reply.h"

#define B	CLASSIFY_A_BOUNCE
#define D	CLASSIFY_A_DEFER
#define S	CLASSIFY_A_SUPPRESS
#define SD	CLASSIFY_A_SLOW_DOWN

struct test_classify_case {
	int		 code;
	const char	*esc;
	const char	*text;
	enum classify_category cat;
	unsigned	 actions;
};

static const struct test_classify_case test_classify_table[] = {
	/* Gmail */
	{ 550, "5.1.1", "The email account that you tried to reach does not "
	    "exist. Please try double-checking the recipient's email address "
	    "for typos or unnecessary spaces. https://support.google.com/mail"
	    "/?p=NoSuchUser", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "5.2.1", "The email account that you tried to reach is "
	    "disabled.", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 452, "4.2.2", "The email account that you tried to reach is over "
	    "quota. Please direct the recipient to https://support.google.com"
	    "/mail/?p=OverQuotaTemp", CLASSIFY_MAILBOX_FULL, D },
	{ 552, "5.2.2", "The email account that you tried to reach is over "
	    "quota and inactive.", CLASSIFY_MAILBOX_FULL, B },
	{ 421, "4.7.28", "Our system has detected an unusual rate of "
	    "unsolicited mail originating from your IP address. To protect "
	    "our users from spam, mail sent from your IP address has been "
	    "temporarily rate limited.", CLASSIFY_RATE_LIMITED, D | SD },
	{ 550, "5.7.28", "There's an unusual rate of unsolicited mail from "
	    "your IP netblock.", CLASSIFY_REPUTATION, B | SD },
	{ 550, "5.7.26", "This mail has been blocked because the sender is "
	    "unauthenticated. Gmail requires all senders to authenticate with "
	    "either SPF or DKIM.", CLASSIFY_POLICY, B },
	{ 550, "5.7.26", "Unauthenticated email from example.com is not "
	    "accepted due to domain's DMARC policy.", CLASSIFY_POLICY, B },
	{ 421, "4.7.26", "This mail has been rate limited because it is "
	    "unauthenticated.", CLASSIFY_POLICY, D },
	{ 550, "5.7.25", "The IP address sending this message does not have "
	    "a PTR record setup.", CLASSIFY_POLICY, B },
	{ 421, "4.7.0", "Try again later, closing connection. (EHLO)",
	    CLASSIFY_RATE_LIMITED, D | SD },
	{ 452, "4.2.1", "The recipient you are trying to contact is receiving "
	    "mail at a rate that prevents additional messages from being "
	    "delivered.", CLASSIFY_RATE_LIMITED, D | SD },
	{ 552, "5.7.0", "This message was blocked because its content "
	    "presents a potential security issue.", CLASSIFY_CONTENT_REJECTED,
	    B },
	{ 550, "5.7.1", "Our system has detected that this message is likely "
	    "unsolicited mail.", CLASSIFY_CONTENT_REJECTED, B },
	{ 552, "5.2.3", "Your message exceeded Google's message size limits.",
	    CLASSIFY_MESSAGE_TOO_LARGE, B },
	/* Yahoo / AOL */
	{ 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred "
	    "due to unexpected volume or user complaints - 4.16.55.1; see "
	    "https://postmaster.yahooinc.com/error-codes",
	    CLASSIFY_RATE_LIMITED, D | SD },
	{ 421, "4.7.0", "[TSS09] All messages from 192.0.2.1 will be "
	    "permanently deferred; Retrying will NOT succeed.",
	    CLASSIFY_REPUTATION, D | SD },
	{ 553, "5.7.1", "[BL21] Connections will not be accepted from "
	    "192.0.2.1, because the ip is in Spamhaus's list",
	    CLASSIFY_REPUTATION, B | SD },
	{ 554, "", "delivery error: dd This user doesn't have a yahoo.com "
	    "account (x@yahoo.com) [0] - mta1234.mail.ne1.yahoo.com",
	    CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 554, "", "delivery error: dd Sorry your message to x@yahoo.com "
	    "cannot be delivered. This mailbox is disabled (554.30).",
	    CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 552, "1", "Requested mail action aborted, mailbox not found",
	    CLASSIFY_INVALID_RECIPIENT, B | S },
	/* Microsoft */
	{ 550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't "
	    "sent. Please contact your Internet service provider since part "
	    "of their network is on our block list (S3150).",
	    CLASSIFY_REPUTATION, B | SD },
	{ 550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't "
	    "sent. (S3140)", CLASSIFY_REPUTATION, B | SD },
	{ 550, "", "SC-001 (BAY004-MC1F12) Unfortunately, messages from "
	    "192.0.2.1 weren't sent. Please contact your Internet service "
	    "provider. Mail rejected by Windows Live Hotmail for policy "
	    "reasons.", CLASSIFY_REPUTATION, B | SD },
	{ 421, "", "RP-001 (COL004-MC1F37) Unfortunately, some messages from "
	    "192.0.2.1 weren't sent. Please try again. We have limits for how "
	    "many messages can be sent per hour and per day.",
	    CLASSIFY_RATE_LIMITED, D | SD },
	{ 451, "4.7.500", "Server busy. Please try again later from "
	    "[192.0.2.1]. (S77719)", CLASSIFY_RATE_LIMITED, D | SD },
	{ 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not "
	    "found by SMTP address lookup", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "5.4.1", "Recipient address rejected: Access denied. "
	    "AS(201806281)", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "5.7.606", "Access denied, banned sending IP [192.0.2.1].",
	    CLASSIFY_REPUTATION, B | SD },
	{ 550, "5.5.0", "Requested action not taken: mailbox unavailable "
	    "(S2017062302)", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "5.7.509", "Access denied, sending domain example.com does not "
	    "pass DMARC verification", CLASSIFY_POLICY, B },
	/* Generic MTA texts */
	{ 552, "5.2.2", "mailbox full", CLASSIFY_MAILBOX_FULL, B },
	{ 552, "", "Requested mail action aborted: exceeded storage "
	    "allocation", CLASSIFY_MAILBOX_FULL, B },
	{ 552, "5.3.4", "Message size exceeds fixed limit",
	    CLASSIFY_MESSAGE_TOO_LARGE, B },
	{ 554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked "
	    "using zen.spamhaus.org; https://www.spamhaus.org/query/ip/"
	    "192.0.2.1", CLASSIFY_REPUTATION, B | SD },
	{ 550, "", "Mail from 192.0.2.1 refused, see http://www.spamhaus.org",
	    CLASSIFY_REPUTATION, B | SD },
	{ 554, "", "Your access to this mail system has been rejected due to "
	    "the sending MTA's poor reputation.", CLASSIFY_REPUTATION, B | SD },
	{ 450, "4.2.0", "<x@example.com>: Recipient address rejected: "
	    "Greylisted, see http://postgrey.schweikert.ch/help/example.com",
	    CLASSIFY_TRANSIENT, D },
	{ 451, "4.3.0", "Temporary local problem - please try later",
	    CLASSIFY_TRANSIENT, D },
	{ 452, "4.3.1", "Insufficient system storage", CLASSIFY_TRANSIENT, D },
	{ 421, "", "Too many connections from your IP", CLASSIFY_RATE_LIMITED,
	    D | SD },
	{ 450, "", "rate limited, please slow down", CLASSIFY_RATE_LIMITED,
	    D | SD },
	{ 550, "", "Too many concurrent SMTP connections; please try again "
	    "later", CLASSIFY_RATE_LIMITED, D | SD },
	{ 550, "5.1.1", "<x@example.org>: Recipient address rejected: User "
	    "unknown in virtual mailbox table", CLASSIFY_INVALID_RECIPIENT,
	    B | S },
	{ 550, "", "No such user here", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "5.1.1", "Recipient rejected: mailbox blocked",
	    CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "", "Recipient rejected: mailbox blocked",
	    CLASSIFY_REPUTATION, B | SD },
	{ 553, "5.1.3", "Bad destination mailbox address syntax",
	    CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 554, "5.7.1", "<x@example.org>: Relay access denied",
	    CLASSIFY_POLICY, B },
	{ 550, "5.7.23", "The message was rejected because of Sender Policy "
	    "Framework violation", CLASSIFY_POLICY, B },
	{ 550, "5.7.1", "Message rejected: SPF check failed", CLASSIFY_POLICY,
	    B },
	{ 554, "5.7.1", "Message rejected because it contains a virus: "
	    "Eicar-Test-Signature", CLASSIFY_CONTENT_REJECTED, B },
	{ 550, "5.7.1", "Message classified as spam by content filter",
	    CLASSIFY_CONTENT_REJECTED, B },
	{ 550, "5.1.2", "Host or domain name not found", 
	    CLASSIFY_INVALID_DOMAIN, B | S },
	{ 0, "5.4.4", "Host or domain name not found. Name service error for "
	    "name=nx.example type=MX: Host not found",
	    CLASSIFY_INVALID_DOMAIN, B | S },
	{ 556, "5.1.10", "Recipient address has null MX",
	    CLASSIFY_INVALID_DOMAIN, B | S },
	{ 0, "4.4.1", "connect to mx.example.com[192.0.2.9]:25: Connection "
	    "timed out", CLASSIFY_TRANSIENT, D },
	{ 500, "5.5.2", "Syntax error, command unrecognized",
	    CLASSIFY_PROTOCOL, B },
	{ 503, "5.5.1", "Error: need MAIL command", CLASSIFY_PROTOCOL, B },
	{ 250, "2.0.0", "OK 1700000000 a1b2 - gsmtp", CLASSIFY_DELIVERED, 0 },
	{ 354, "", "End data with <CR><LF>.<CR><LF>", CLASSIFY_DELIVERED, 0 },
	{ 550, "", "5.7.1 Client host rejected: cannot find your reverse "
	    "hostname, [192.0.2.1]", CLASSIFY_POLICY, B },
	{ 550, "", "Administrative prohibition", CLASSIFY_POLICY, B },
	{ 554, "5.7.1", "Message rejected. For more information see https://"
	    "www.barracudanetworks.com/reputation/?ip=192.0.2.1",
	    CLASSIFY_REPUTATION, B | SD },
	{ 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily "
	    "rate limited due to IP reputation.", CLASSIFY_RATE_LIMITED,
	    D | SD },
	{ 554, "5.7.1", "The message from (<n@sender.example>) with the "
	    "subject of (Hello) matches a profile the Internet community may "
	    "consider spam.", CLASSIFY_REPUTATION, B | SD },
	/* 5xx is final even when the text sounds transient... */
	{ 550, "5.4.300", "Message expired -> 451 4.4.397 Error communicating "
	    "with target host", CLASSIFY_TRANSIENT, B },
	{ 554, "5.4.14", "Hop count exceeded - possible mail loop",
	    CLASSIFY_TRANSIENT, B },
	/* ...except throttling sent as 5xx. */
	{ 554, "", "Too many connections, slow down", CLASSIFY_RATE_LIMITED,
	    D | SD },
	/* Fallbacks: texts no rule knows. */
	{ 550, "5.1.1", "zzz", CLASSIFY_INVALID_RECIPIENT, B | S },
	{ 550, "5.1.2", "", CLASSIFY_INVALID_DOMAIN, B | S },
	{ 552, "5.2.2", "zzz", CLASSIFY_MAILBOX_FULL, B },
	{ 552, "5.3.4", "zzz", CLASSIFY_MESSAGE_TOO_LARGE, B },
	{ 550, "5.7.1", "zzz", CLASSIFY_POLICY, B },
	{ 451, "4.7.1", "zzz", CLASSIFY_RATE_LIMITED, D | SD },
	{ 554, "5.6.0", "zzz", CLASSIFY_CONTENT_REJECTED, B },
	{ 421, "", "zzz", CLASSIFY_TRANSIENT, D | SD },
	{ 451, "", "zzz", CLASSIFY_TRANSIENT, D },
	{ 550, "", "zzz", CLASSIFY_UNKNOWN, B },
	{ 501, "", "zzz", CLASSIFY_PROTOCOL, B },
	{ 552, "", "zzz", CLASSIFY_MAILBOX_FULL, B },
	{ 0, "", "zzz", CLASSIFY_UNKNOWN, 0 },
	{ 0, NULL, NULL, CLASSIFY_UNKNOWN, 0 },
	/* A 4xx never bounces or suppresses, whatever the rule says. */
	{ 450, "4.1.1", "<x@example.org>: Recipient address rejected: User "
	    "unknown; try later", CLASSIFY_INVALID_RECIPIENT, D },
	/* Out-of-range code: treated as absent, esc decides. */
	{ 999, "5.1.1", "zzz", CLASSIFY_INVALID_RECIPIENT, B | S },
};

Test(classify, builtin_table)
{
	size_t	 n = sizeof(test_classify_table) /
	    sizeof(test_classify_table[0]);

	for (size_t i = 0; i < n; i++) {
		const struct test_classify_case *c = &test_classify_table[i];
		struct classify_result r;
		char	 got[64], want[64];

		classify_reply(c->code, c->esc, c->text, &r);
		cr_expect_eq(r.category, c->cat,
		    "[%zu] %d %s \"%s\": category %s, want %s", i, c->code,
		    c->esc ? c->esc : "", c->text ? c->text : "",
		    classify_category_name(r.category),
		    classify_category_name(c->cat));
		cr_expect_eq(r.actions, c->actions,
		    "[%zu] %d %s \"%s\": actions %s, want %s", i, c->code,
		    c->esc ? c->esc : "", c->text ? c->text : "",
		    classify_actions_str(r.actions, got, sizeof(got)),
		    classify_actions_str(c->actions, want, sizeof(want)));
	}
}

Test(classify, builtin_rules_compile)
{
	const struct classify_rules *r = classify_rules_builtin();

	cr_assert_not_null(r);
	cr_assert_gt(classify_rules_count(r), 20);
	cr_assert_eq(classify_rules_builtin(), r, "compiled once");
}

Test(classify, names_round_trip)
{
	for (int i = 0; i < CLASSIFY__COUNT; i++) {
		const char *n = classify_category_name(
		    (enum classify_category)i);
		enum classify_category c;
		cr_assert_eq(classify_category_parse(n, strlen(n), &c), 0, "%s",
		    n);
		cr_assert_eq((int)c, i);
	}
	cr_assert_str_eq(classify_category_name(CLASSIFY__COUNT), "unknown");
	cr_assert_str_eq(classify_category_name(CLASSIFY_INVALID_RECIPIENT),
	    "invalid-recipient");
	enum classify_category c;
	cr_assert_eq(classify_category_parse("nope", 4, &c), -EINVAL);
}

Test(classify, actions_str)
{
	char	 b[64];

	cr_assert_str_eq(classify_actions_str(0, b, sizeof(b)), "none");
	cr_assert_str_eq(classify_actions_str(B | S, b, sizeof(b)),
	    "bounce,suppress");
	cr_assert_str_eq(classify_actions_str(CLASSIFY_A_ALL, b, sizeof(b)),
	    "bounce,defer,suppress,slow-down");
	/* Truncation still terminates. */
	cr_assert_str_eq(classify_actions_str(CLASSIFY_A_ALL, b, 8), "bounce");
	cr_assert_eq(classify_action_parse("slow-down", 9),
	    CLASSIFY_A_SLOW_DOWN);
	cr_assert_eq(classify_action_parse("slow_down", 9),
	    CLASSIFY_A_SLOW_DOWN);
	cr_assert_eq(classify_action_parse("explode", 7), 0);
}

Test(classify, retry_hints)
{
	cr_assert_eq(classify_retry_hint("Please try again in 5 minutes"),
	    300);
	cr_assert_eq(classify_retry_hint("retry in 60 seconds"), 60);
	cr_assert_eq(classify_retry_hint("try again later (in 2 hours)"),
	    7200);
	cr_assert_eq(classify_retry_hint("Wait 30s before retrying"), 30);
	cr_assert_eq(classify_retry_hint("deferred, retry after 10 min"), 600);
	cr_assert_eq(classify_retry_hint("Try again later"), 0);
	cr_assert_eq(classify_retry_hint("Message size 5 m exceeds"), 0,
	    "a number without a retry cue is not a hint");
	cr_assert_eq(classify_retry_hint("4.16.55.1 try later in 1.5 minutes"),
	    0, "fractions are not parsed as '5 minutes'");
	cr_assert_eq(classify_retry_hint("retry in 999999999999 hours"),
	    CLASSIFY_RETRY_MAX_S);
	cr_assert_eq(classify_retry_hint(NULL), 0);
	cr_assert_eq(classify_retry_hint(""), 0);

	struct classify_result r;
	classify_reply(451, "4.7.1", "Greylisted, please try again in 300 "
	    "seconds", &r);
	cr_assert_eq(r.retry_after_s, 300);
	classify_reply(550, "5.1.1", "User unknown, try again in 5 minutes",
	    &r);
	cr_assert_eq(r.retry_after_s, 0, "hints only matter for deferrals");
}

Test(classify, rule_format_and_first_match)
{
	static const char rules[] =
	    "# comment\n"
	    "\n"
	    "   # indented comment\n"
	    "rate-limited defer,slow-down code=4xx esc=4.7.* /slow ?down/i "
	    "# trailing comment\n"
	    "policy bounce code=55x,554 /a\\/b/\n"
	    "content-rejected bounce /slow down/\n"
	    "unknown none esc=*.9.9\n";
	char	 err[128];
	struct classify_rules *r = classify_rules_parse(rules,
	    sizeof(rules) - 1, err, sizeof(err));
	struct classify_result res;

	cr_assert_not_null(r, "%s", err);
	cr_assert_eq(classify_rules_count(r), 4);
	{
		/* Quantifier-looking text inside brackets and escapes, and
		 * modest intervals, are fine. */
		static const char ok[] = "policy bounce "
		    "/[+*?{]+ \\++ [[:digit:]]{3}(x{2,4})? [^]*+]/\n";
		struct classify_rules *r2 = classify_rules_parse(ok,
		    sizeof(ok) - 1, err, sizeof(err));
		cr_assert_not_null(r2, "%s", err);
		classify_rules_free(r2);
	}
	classify_reply_rules(r, 451, "4.7.1", "please SLOW DOWN", &res);
	cr_assert_eq(res.category, CLASSIFY_RATE_LIMITED);
	cr_assert_eq(res.rule_line, 4);
	/* Code mismatch: the next rule matching the text wins. */
	classify_reply_rules(r, 550, "5.7.1", "please slow down", &res);
	cr_assert_eq(res.category, CLASSIFY_CONTENT_REJECTED);
	cr_assert_eq(res.rule_line, 6);
	/* Escaped slash, code list. */
	classify_reply_rules(r, 554, "", "x a/b y", &res);
	cr_assert_eq(res.category, CLASSIFY_POLICY);
	classify_reply_rules(r, 553, "", "x a/b y", &res);
	cr_assert_eq(res.category, CLASSIFY_POLICY);
	classify_reply_rules(r, 550, "5.9.9", "", &res);
	cr_assert_eq(res.category, CLASSIFY_UNKNOWN);
	cr_assert_eq(res.actions, 0);
	cr_assert_eq(res.rule_line, 7);
	/* A bare DSN status only matches class patterns. */
	classify_reply_rules(r, 0, "4.7.1", "slow down", &res);
	cr_assert_eq(res.category, CLASSIFY_RATE_LIMITED);
	classify_reply_rules(r, 0, "5.7.1", "a/b", &res);
	cr_assert_eq(res.rule_line, 0, "code=55x needs a code");
	cr_assert_eq(res.category, CLASSIFY_POLICY, "5.7.x fallback");
	/* No rule: fallback, rule_line 0. */
	classify_reply_rules(r, 550, "5.1.1", "zzz", &res);
	cr_assert_eq(res.category, CLASSIFY_INVALID_RECIPIENT);
	cr_assert_eq(res.rule_line, 0);
	classify_rules_free(r);
}

Test(classify, rule_errors_name_the_line)
{
	static const struct {
		const char	*text;
		const char	*want;
	} bad[] = {
		{ "nosuch bounce\n", "line 1: unknown category" },
		{ "\n\npolicy explode\n", "line 3: unknown action" },
		{ "policy\n", "line 1: missing action" },
		{ "policy bounce code=5\n", "line 1: bad code=" },
		{ "policy bounce code=650\n", "line 1: bad code=" },
		{ "policy bounce esc=5.1\n", "line 1: bad esc=" },
		{ "policy bounce esc=7.1.1\n", "line 1: bad esc=" },
		{ "policy bounce /(unclosed/\n", "line 1: " },
		{ "policy bounce /abc\n", "line 1: unterminated" },
		{ "policy bounce /a/ junk\n", "line 1: text after" },
		{ "policy bounce foo=bar\n", "line 1: unknown field" },
		{ "/a/ policy bounce\n", "line 1: regex before" },
		{ "policy bounce /u++/\n", "line 1: stacked quantifiers" },
		{ "policy bounce /u*{2}/\n", "line 1: stacked quantifiers" },
		{ "policy bounce /((a{30}){30}){30}/\n",
		    "line 1: repetition counts too large" },
		{ "policy bounce /a{1,99999}/\n",
		    "line 1: repetition counts too large" },
		{ "policy bounce /a{2/\n", "line 1: bad {m,n}" },
		{ "policy bounce /[abc/\n", "line 1: unterminated [" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char	 err[128] = "";
		struct classify_rules *r = classify_rules_parse(bad[i].text,
		    strlen(bad[i].text), err, sizeof(err));
		cr_expect_null(r, "accepted: %s", bad[i].text);
		cr_expect(strncmp(err, bad[i].want, strlen(bad[i].want)) == 0,
		    "%s: got \"%s\", want \"%s...\"", bad[i].text, err,
		    bad[i].want);
		classify_rules_free(r);
	}
	char	 err[64];
	cr_assert_null(classify_rules_parse("policy bounce\0x", 15, err,
	    sizeof(err)));
}

Test(classify, load_file_and_override_active_set)
{
	char	 path[] = "/tmp/test_classify_XXXXXX";
	int	 fd = mkstemp(path);
	static const char rules[] = "protocol bounce /zzz/\n";
	char	 err[256];
	struct classify_result res;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, rules, sizeof(rules) - 1),
	    (ssize_t)(sizeof(rules) - 1));
	close(fd);
	struct classify_rules *r = classify_rules_load(path, err, sizeof(err));
	unlink(path);
	cr_assert_not_null(r, "%s", err);
	classify_set_rules(r);
	classify_reply(550, "5.1.1", "zzz", &res);
	cr_assert_eq(res.category, CLASSIFY_PROTOCOL);
	/* The user file replaces the built-in set entirely. */
	classify_reply(550, "", "mailbox full", &res);
	cr_assert_eq(res.category, CLASSIFY_UNKNOWN);
	classify_set_rules(NULL);
	classify_reply(550, "", "mailbox full", &res);
	cr_assert_eq(res.category, CLASSIFY_MAILBOX_FULL);
	classify_rules_free(r);

	cr_assert_null(classify_rules_load("/nonexistent/rules.txt", err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, "/nonexistent/rules.txt"));
}

extern const char classify_rules_data_start[];
extern const char classify_rules_data_end[];

Test(classify, shipped_file_matches_embedded_copy)
{
	char	 err[256];
	struct classify_rules *r = classify_rules_load(
	    "engine/mail/bounce-rules.txt", err, sizeof(err));
	FILE	*f = fopen("engine/mail/bounce-rules.txt", "rb");
	size_t	 elen = (size_t)((uintptr_t)classify_rules_data_end -
	    (uintptr_t)classify_rules_data_start);
	char	*buf = malloc(elen + 2);

	cr_assert_not_null(r, "%s", err);
	cr_assert_eq(classify_rules_count(r),
	    classify_rules_count(classify_rules_builtin()));
	classify_rules_free(r);
	/* The Makefile does not know the .S depends on the .txt. */
	cr_assert_not_null(f);
	cr_assert_eq(fread(buf, 1, elen + 1, f), elen,
	    "embedded rules are stale: touch engine/mail/bounce_rules_data.S");
	cr_assert_eq(memcmp(buf, classify_rules_data_start, elen), 0,
	    "embedded rules are stale: touch engine/mail/bounce_rules_data.S");
	fclose(f);
	free(buf);
}

/* Same outcome with and without the literal prefilter. */
static void
test_classify_same(struct classify_rules *fast, struct classify_rules *slow,
    int code, const char *esc, const char *text)
{
	struct classify_result a, b;

	classify_reply_rules(fast, code, esc, text, &a);
	classify_reply_rules(slow, code, esc, text, &b);
	cr_expect_eq(a.rule_line, b.rule_line, "%d %s \"%s\": line %u vs %u",
	    code, esc, text, a.rule_line, b.rule_line);
	cr_expect_eq(a.category, b.category);
	cr_expect_eq(a.actions, b.actions);
}

Test(classify, prefilter_never_changes_the_outcome)
{
	static const char tricky[] =
	    "policy bounce /abb*cde|x?yzz{0,1}www|(foo|bar)baz|[q]uux|"
	    "a\\.b\\+c/\n"
	    "reputation bounce /^start|end$|mid.dle|\\(S3[0-9]{3}\\)/\n"
	    "protocol bounce /caf\xc3\xa9|((nested)) group|ab+c/\n"
	    "transient defer /x/\n";
	static const char *const texts[] = {
		"acde", "abcde", "abbbcde", "abd", "yzwww", "xyzzwww",
		"yzzzwww", "ywww", "foobaz", "barbaz",
		"baz", "quux", "uux", "a.b+c", "aXb+c", "start here",
		"not start", "at the end", "end!", "midXdle", "middle",
		"(S3150)", "s3150", "CAF\xc3\xa9", "nested group", "group",
		"abc", "abbbc", "ac", "", "zzz",
	};
	char	 err[128];
	struct classify_rules *fast, *slow;

	fast = classify_rules_parse(tricky, sizeof(tricky) - 1, err,
	    sizeof(err));
	slow = classify_rules_parse(tricky, sizeof(tricky) - 1, err,
	    sizeof(err));
	cr_assert_not_null(fast, "%s", err);
	cr_assert_not_null(slow);
	classify_rules_set_prefilter(slow, false);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		test_classify_same(fast, slow, 550, "", texts[i]);
	classify_rules_free(fast);
	classify_rules_free(slow);

	fast = classify_rules_load("engine/mail/bounce-rules.txt", err,
	    sizeof(err));
	slow = classify_rules_load("engine/mail/bounce-rules.txt", err,
	    sizeof(err));
	cr_assert_not_null(fast, "%s", err);
	cr_assert_not_null(slow);
	classify_rules_set_prefilter(slow, false);
	for (size_t i = 0; i < sizeof(test_classify_table) /
	    sizeof(test_classify_table[0]); i++) {
		const struct test_classify_case *c = &test_classify_table[i];
		test_classify_same(fast, slow, c->code, c->esc ? c->esc : "",
		    c->text ? c->text : "");
		test_classify_same(fast, slow, 0, "", c->text ? c->text : "");
	}
	classify_rules_free(fast);
	classify_rules_free(slow);
}

Test(classify, from_reply_parser_struct)
{
	struct reply rp = { .code = 552, .esc = "5.2.2" };
	struct classify_result r;

	snprintf(rp.text, sizeof(rp.text), "mailbox full");
	classify_from_reply(&rp, &r);
	cr_assert_eq(r.category, CLASSIFY_MAILBOX_FULL);
	cr_assert_eq(r.actions, CLASSIFY_A_BOUNCE);
}

Test(classify, rule_file_with_bom_and_crlf)
{
	static const char rules[] = "\xef\xbb\xbf# edited on Windows\r\n"
	    "policy bounce code=5xx /dmarc/  \r\n"
	    "transient defer esc=4.*.*\r\n";
	char	 err[128];
	struct classify_rules *r = classify_rules_parse(rules,
	    sizeof(rules) - 1, err, sizeof(err));
	struct classify_result res;

	cr_assert_not_null(r, "%s", err);
	cr_assert_eq(classify_rules_count(r), 2);
	classify_reply_rules(r, 550, "", "DMARC fail", &res);
	cr_assert_eq(res.category, CLASSIFY_POLICY);
	cr_assert_eq(res.rule_line, 2);
	classify_reply_rules(r, 451, "4.3.0", "x", &res);
	cr_assert_eq(res.category, CLASSIFY_TRANSIENT);
	cr_assert_eq(res.rule_line, 3);
	classify_rules_free(r);
}
