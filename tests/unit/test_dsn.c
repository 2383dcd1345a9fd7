/*
 * dsn: every message of the corpus in tests/data/dsn against
 * expected.tsv, plus targeted cases (truncation at every offset, result
 * fields not covered by the table). Run from the repository root.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/classify.h"
#include "mail/dsn.h"

#define DSN_DIR "tests/data/dsn"

static char *
test_dsn_slurp(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	char	*p;
	long	 n;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	cr_assert_not_null(p);
	cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	p[n] = '\0';
	*len = (size_t)n;
	return p;
}

static const char *
test_dsn_or_dash(const char *s)
{
	return s[0] ? s : "-";
}

Test(dsn, corpus_matches_expectations)
{
	FILE	*f = fopen(DSN_DIR "/expected.tsv", "r");
	char	 line[2048];
	unsigned nrows = 0;

	cr_assert_not_null(f, "run from the repository root");
	while (fgets(line, sizeof(line), f) != NULL) {
		char	*col[9], *save = NULL, *s = line, path[512], act[64];
		char	 nr[16];
		struct dsn_result *r;
		size_t	 len;
		int	 n = 0;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = '\0';
		for (char *tok; n < 9 && (tok = strtok_r(s, "\t", &save));
		    s = NULL)
			col[n++] = tok;
		cr_assert_eq(n, 9, "bad expected.tsv row: %s", line);
		snprintf(path, sizeof(path), DSN_DIR "/%s", col[0]);
		char	*msg = test_dsn_slurp(path, &len);
		r = malloc(sizeof(*r));
		cr_assert_eq(dsn_parse(msg, len, r), 0);
		snprintf(nr, sizeof(nr), "%u", r->nrcpt);
		cr_expect_str_eq(dsn_kind_name(r->kind), col[1], "%s: kind",
		    col[0]);
		cr_expect_eq(r->is_bounce, col[2][0] == '1', "%s: is_bounce",
		    col[0]);
		cr_expect_str_eq(test_dsn_or_dash(r->recipient), col[3],
		    "%s: recipient", col[0]);
		cr_expect_str_eq(test_dsn_or_dash(r->status), col[4],
		    "%s: status", col[0]);
		cr_expect_str_eq(classify_category_name(r->cls.category),
		    col[5], "%s: category", col[0]);
		cr_expect_str_eq(classify_actions_str(r->cls.actions, act,
		    sizeof(act)), col[6], "%s: action", col[0]);
		cr_expect_str_eq(nr, col[7], "%s: nrcpt", col[0]);
		cr_expect_str_eq(test_dsn_or_dash(r->orig_message_id), col[8],
		    "%s: message_id", col[0]);
		free(r);
		free(msg);
		nrows++;
	}
	fclose(f);
	cr_assert_geq(nrows, 20, "corpus too small: %u rows", nrows);
}

Test(dsn, every_corpus_file_has_a_row)
{
	DIR	*d = opendir(DSN_DIR);
	struct dirent *e;
	size_t	 tlen;
	char	*tsv = test_dsn_slurp(DSN_DIR "/expected.tsv", &tlen);
	unsigned n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t	 l = strlen(e->d_name);
		char	 key[300];

		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0)
			continue;
		snprintf(key, sizeof(key), "\n%s\t", e->d_name);
		cr_expect_not_null(strstr(tsv, key), "%s not in expected.tsv",
		    e->d_name);
		n++;
	}
	closedir(d);
	free(tsv);
	cr_assert_geq(n, 20);
}

Test(dsn, multi_recipient_reports_first_failed_and_counts)
{
	size_t	 len;
	char	*msg = test_dsn_slurp(DSN_DIR "/rfc3464_multi_rcpt.eml", &len);
	struct dsn_result *r = malloc(sizeof(*r));

	cr_assert_eq(dsn_parse(msg, len, r), 0);
	cr_assert_eq(r->nrcpt, 3);
	cr_assert_eq(r->nfailed, 2);
	cr_assert_str_eq(r->recipient, "full@example.com");
	cr_assert_str_eq(r->dsn_action, "failed");
	cr_assert_eq(r->smtp_code, 552);
	cr_assert_str_eq(r->remote_mta, "mx.example.com");
	free(r);
	free(msg);
}

Test(dsn, original_headers_are_kept_for_verp)
{
	size_t	 len;
	char	*msg = test_dsn_slurp(DSN_DIR "/rfc3464_gmail_dmarc.eml", &len);
	struct dsn_result *r = malloc(sizeof(*r));

	cr_assert_eq(dsn_parse(msg, len, r), 0);
	cr_assert_gt(r->orig_hdrlen, 0);
	cr_assert_not_null(strstr(r->orig_hdr, "X-Ringmail-Job: c7.j55"));
	cr_assert_not_null(strstr(r->orig_hdr,
	    "Return-Path: <bounces+c7.j55=dest.example@sender.example>"));
	/* The header block only: the body is not included. */
	cr_assert_null(strstr(r->orig_hdr, "Hello Carol"));
	cr_assert_str_eq(r->orig_message_id, "<c7.j55.77aa@sender.example>");
	free(r);
	free(msg);
}

Test(dsn, arf_fields)
{
	size_t	 len;
	char	*msg = test_dsn_slurp(DSN_DIR "/arf_abuse.eml", &len);
	struct dsn_result *r = malloc(sizeof(*r));

	cr_assert_eq(dsn_parse(msg, len, r), 0);
	cr_assert_eq(r->kind, DSN_KIND_ARF);
	cr_assert_str_eq(r->feedback_type, "abuse");
	cr_assert_eq(r->cls.category, CLASSIFY_COMPLAINT);
	cr_assert(r->cls.actions & CLASSIFY_A_SUPPRESS);
	cr_assert_not(r->is_bounce);
	free(r);
	free(msg);
}

Test(dsn, retry_hint_from_delay_notice)
{
	size_t	 len;
	char	*msg = test_dsn_slurp(DSN_DIR "/gmail_delay_heuristic.eml",
	    &len);
	struct dsn_result *r = malloc(sizeof(*r));

	cr_assert_eq(dsn_parse(msg, len, r), 0);
	cr_assert_eq(r->cls.retry_after_s, 900);
	cr_assert_str_eq(r->dsn_action, "delayed");
	free(r);
	free(msg);
}

/*
 * Cut every corpus message at many lengths: must never crash (ASan
 * checks bounds) and a DSN cut after its Final-Recipient still names it.
 */
Test(dsn, truncation_at_every_offset, .timeout = 120)
{
	struct dsn_result *r = malloc(sizeof(*r));
	DIR	*d = opendir(DSN_DIR);
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		char	 path[512];
		size_t	 len, l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0)
			continue;
		snprintf(path, sizeof(path), DSN_DIR "/%s", e->d_name);
		char	*msg = test_dsn_slurp(path, &len);
		for (size_t cut = 0; cut <= len; cut += 3) {
			/* A fresh heap copy so ASan sees reads past the end. */
			char	*c = malloc(cut ? cut : 1);
			memcpy(c, msg, cut);
			cr_assert_eq(dsn_parse(c, cut, r), 0);
			free(c);
		}
		free(msg);
	}
	closedir(d);
	size_t	 len;
	char	*msg = test_dsn_slurp(DSN_DIR
	    "/rfc3464_postfix_user_unknown.eml", &len);
	const char *fr = strstr(msg, "Final-Recipient: rfc822; nosuch");
	cr_assert_not_null(fr);
	size_t	 cut = (size_t)(fr - msg) + strlen("Final-Recipient: rfc822; "
	    "nosuchuser@example.org\r\n");
	cr_assert_eq(dsn_parse(msg, cut, r), 0);
	cr_assert_str_eq(r->recipient, "nosuchuser@example.org");
	cr_assert(r->is_bounce);
	free(msg);
	free(r);
}

Test(dsn, empty_and_tiny_inputs)
{
	struct dsn_result r;

	cr_assert_eq(dsn_parse("", 0, &r), 0);
	cr_assert_eq(r.kind, DSN_KIND_NONE);
	cr_assert_eq(dsn_parse("\n", 1, &r), 0);
	cr_assert_eq(r.kind, DSN_KIND_NONE);
	cr_assert_not(r.is_bounce);
	cr_assert_eq(dsn_parse("Subject: hi\r\n\r\nhello", 20, &r), 0);
	cr_assert_eq(r.kind, DSN_KIND_NONE);
}

Test(dsn, human_reply_mentioning_delivery_is_not_a_bounce)
{
	static const char m[] =
	    "From: Ann <ann@example.com>\r\nSubject: Re: hello\r\n\r\n"
	    "Your message could not be opened, please resend.\r\n";
	struct dsn_result r;

	cr_assert_eq(dsn_parse(m, sizeof(m) - 1, &r), 0);
	cr_assert_eq(r.kind, DSN_KIND_NONE);
	cr_assert_not(r.is_bounce);
}

Test(dsn, kind_names)
{
	cr_assert_str_eq(dsn_kind_name(DSN_KIND_DSN), "dsn");
	cr_assert_str_eq(dsn_kind_name(DSN_KIND_AUTOREPLY), "auto-reply");
	cr_assert_str_eq(dsn_kind_name(DSN_KIND_HEURISTIC), "heuristic");
	cr_assert_str_eq(dsn_kind_name((enum dsn_kind)99), "none");
}
