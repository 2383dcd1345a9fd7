/*
 * cmd_bounce: `ringmail bounce parse FILE...` output (one JSON line per
 * file, escaping) and exit codes. Runs from the repository root.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"

Test(cmd_bounce, usage_errors_exit_2)
{
	char	*a1[] = { (char[]){ "bounce" }, NULL };
	char	*a2[] = { (char[]){ "bounce" }, (char[]){ "frobnicate" },
	    (char[]){ "x" }, NULL };
	char	*a3[] = { (char[]){ "bounce" }, (char[]){ "parse" }, NULL };

	cr_redirect_stderr();
	cr_assert_eq(cmd_bounce(1, a1), 2);
	cr_assert_eq(cmd_bounce(3, a2), 2);
	cr_assert_eq(cmd_bounce(2, a3), 2);
}

Test(cmd_bounce, one_line_per_file_and_exit_1_on_unreadable,
    .init = cr_redirect_stdout)
{
	char	*argv[] = { (char[]){ "bounce" }, (char[]){ "parse" },
	    (char[]){ "tests/data/dsn/rfc3464_postfix_user_unknown.eml" },
	    (char[]){ "/nonexistent/file.eml" },
	    (char[]){ "tests/data/dsn/human_reply.eml" }, NULL };

	cr_redirect_stderr();
	cr_assert_eq(cmd_bounce(5, argv), 1);
	fflush(stdout);
	cr_assert_stdout_eq_str(
	    "{\"file\":\"tests/data/dsn/rfc3464_postfix_user_unknown.eml\","
	    "\"is_bounce\":true,\"kind\":\"dsn\",\"format\":\"rfc3464\","
	    "\"recipient\":\"nosuchuser@example.org\",\"status\":\"5.1.1\","
	    "\"category\":\"invalid-recipient\","
	    "\"action\":\"bounce,suppress\",\"retry_after_s\":0,"
	    "\"nrcpt\":1,"
	    "\"reason\":\"550 5.1.1 <nosuchuser@example.org>: Recipient "
	    "address rejected: User unknown in virtual mailbox table\","
	    "\"message_id\":\"<c42.j1001.a7f3@sender.example>\"}\n"
	    "{\"file\":\"tests/data/dsn/human_reply.eml\",\"is_bounce\":false,"
	    "\"kind\":\"none\",\"format\":null,\"recipient\":null,"
	    "\"status\":null,\"category\":\"unknown\",\"action\":\"none\","
	    "\"retry_after_s\":0,\"nrcpt\":0,\"reason\":null,\"message_id\":null}\n");
}

Test(cmd_bounce, json_escaping, .init = cr_redirect_stdout)
{
	char	 path[] = "/tmp/test_cmd_bounce_XXXXXX";
	int	 fd = mkstemp(path);
	/* The auto-reply's reason is its subject: quotes, a backslash, a
	 * control character, valid UTF-8 and one invalid byte. */
	static const char msg[] =
	    "From: \"A\\\"b\" <a@example.com>\r\n"
	    "Subject: Out of Office \"x\" \\ \x01 caf\xc3\xa9 \xff!\r\n"
	    "Auto-Submitted: auto-replied\r\n\r\nbody\r\n";
	char	*argv[] = { (char[]){ "bounce" }, (char[]){ "parse" }, path,
	    NULL };

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, msg, sizeof(msg) - 1),
	    (ssize_t)(sizeof(msg) - 1));
	close(fd);
	cr_assert_eq(cmd_bounce(3, argv), 0);
	unlink(path);
	fflush(stdout);
	char	 want[512];
	snprintf(want, sizeof(want),
	    "{\"file\":\"%s\",\"is_bounce\":false,\"kind\":\"auto-reply\","
	    "\"format\":\"rfc3834\",\"recipient\":\"a@example.com\","
	    "\"status\":null,\"category\":\"unknown\",\"action\":\"none\","
	    "\"retry_after_s\":0,\"nrcpt\":1,\"reason\":\"Out of Office \\\"x\\\" \\\\ "
	    "caf\xc3\xa9 \\ufffd!\",\"message_id\":null}\n", path);
	cr_assert_stdout_eq_str(want);
}

Test(cmd_bounce, dash_reads_stdin, .init = cr_redirect_stdout)
{
	FILE	*in;
	char	*argv[] = { (char[]){ "bounce" }, (char[]){ "parse" },
	    (char[]){ "-" }, NULL };

	cr_redirect_stdin();
	in = cr_get_redirected_stdin();
	fputs("From: MAILER-DAEMON@x.example\r\n"
	    "Subject: failure notice\r\n\r\n"
	    "Hi. This is the qmail-send program at x.example.\r\n"
	    "I've given up. Sorry it didn't work out.\r\n\r\n"
	    "<bob@example.com>:\r\nRemote host said: 552 5.2.2 mailbox full"
	    "\r\n", in);
	fclose(in);
	cr_assert_eq(cmd_bounce(3, argv), 0);
	fflush(stdout);
	cr_assert_stdout_eq_str("{\"file\":\"-\",\"is_bounce\":true,"
	    "\"kind\":\"heuristic\",\"format\":\"qmail\","
	    "\"recipient\":\"bob@example.com\",\"status\":\"5.2.2\","
	    "\"category\":\"mailbox-full\",\"action\":\"bounce\","
	    "\"retry_after_s\":0,\"nrcpt\":1,\"reason\":\"552 5.2.2 mailbox full\","
	    "\"message_id\":null}\n");
}
