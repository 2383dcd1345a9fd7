#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mail/reply.h"

/* Feed all of s at once; expect exactly one reply using all bytes. */
static int
feed_one(struct reply_parser *p, const char *s, struct reply *r)
{
	size_t	 used;
	int	 rc;

	rc = reply_parser_feed(p, s, strlen(s), &used, r);
	if (rc == 1)
		cr_assert_eq(used, strlen(s), "used %zu of %zu", used,
		    strlen(s));
	return rc;
}

/*
 * Feed s in pieces cut at the given offsets and collect the replies.
 * Returns the number of replies, or -EPROTO.
 */
static int
feed_split(const char *s, const size_t *cuts, size_t ncuts,
    struct reply *out, size_t max)
{
	struct reply_parser	 p;
	size_t			 off = 0, end, used, n = 0;
	int			 rc;

	reply_parser_init(&p);
	for (size_t k = 0; k <= ncuts; k++) {
		end = k < ncuts ? cuts[k] : strlen(s);
		while (off < end) {
			rc = reply_parser_feed(&p, s + off, end - off, &used,
			    &out[n < max ? n : max - 1]);
			if (rc < 0)
				return rc;
			cr_assert(used <= end - off);
			off += used;
			if (rc == 1)
				n++;
			else
				cr_assert_eq(off, end);
		}
	}
	return (int)n;
}

Test(reply, single_line)
{
	struct reply_parser	 p;
	struct reply		 r;

	reply_parser_init(&p);
	cr_assert_eq(feed_one(&p, "250 OK\r\n", &r), 1);
	cr_assert_eq(r.code, 250);
	cr_assert_str_eq(r.text, "OK");
	cr_assert_eq(r.textlen, 2);
	cr_assert_str_eq(r.esc, "");
	cr_assert_eq(r.nlines, 1);
}

Test(reply, bare_code_and_empty_continuation)
{
	struct reply_parser	 p;
	struct reply		 r;

	reply_parser_init(&p);
	cr_assert_eq(feed_one(&p, "250\r\n", &r), 1);
	cr_assert_eq(r.code, 250);
	cr_assert_str_eq(r.text, "");
	cr_assert_eq(feed_one(&p, "250-\r\n250 ok\r\n", &r), 1);
	cr_assert_str_eq(r.text, "ok");
	cr_assert_eq(r.nlines, 2);
}

Test(reply, multiline_joined)
{
	struct reply_parser	 p;
	struct reply		 r;

	reply_parser_init(&p);
	cr_assert_eq(feed_one(&p, "250-mx.example.com hi\r\n250-SIZE 100\r\n"
	    "250 PIPELINING\r\n", &r), 1);
	cr_assert_eq(r.code, 250);
	cr_assert_eq(r.nlines, 3);
	cr_assert_str_eq(r.text, "mx.example.com hi SIZE 100 PIPELINING");
}

Test(reply, incomplete_returns_zero)
{
	struct reply_parser	 p;
	struct reply		 r;
	size_t			 used;

	reply_parser_init(&p);
	cr_assert_eq(reply_parser_feed(&p, "250-a\r\n250 b", 12, &used, &r),
	    0);
	cr_assert_eq(used, 12);
	cr_assert_eq(reply_parser_feed(&p, "\r\n", 2, &used, &r), 1);
	cr_assert_eq(used, 2);
	cr_assert_str_eq(r.text, "a b");
}

/* Every split point, and every pair of split points, gives the same. */
Test(reply, multiline_split_at_every_offset)
{
	static const char s[] = "250-first line\r\n250-2.0.0 second\r\n"
	    "250 third\r\n550 5.1.1 nope\n";
	struct reply	 out[4];
	size_t		 cuts[2], len = strlen(s);

	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			cuts[0] = i;
			cuts[1] = j;
			memset(out, 0, sizeof(out));
			cr_assert_eq(feed_split(s, cuts, 2, out, 4), 2,
			    "cuts %zu %zu", i, j);
			cr_assert_eq(out[0].code, 250);
			cr_assert_str_eq(out[0].text,
			    "first line second third");
			cr_assert_str_eq(out[0].esc, "2.0.0");
			cr_assert_eq(out[0].nlines, 3);
			cr_assert_eq(out[1].code, 550);
			cr_assert_str_eq(out[1].esc, "5.1.1");
			cr_assert_str_eq(out[1].text, "nope");
		}
	}
}

Test(reply, one_byte_at_a_time)
{
	static const char s[] = "220-a\r\n220 b\r\n250 c\r\n";
	struct reply	 out[3];
	size_t		 cuts[sizeof(s)];

	for (size_t i = 0; i < sizeof(s) - 1; i++)
		cuts[i] = i + 1;
	cr_assert_eq(feed_split(s, cuts, sizeof(s) - 1, out, 3), 2);
	cr_assert_str_eq(out[0].text, "a b");
	cr_assert_eq(out[1].code, 250);
}

Test(reply, several_replies_in_one_feed)
{
	struct reply_parser	 p;
	struct reply		 r;
	const char		*s = "250 a\r\n251 b\r\n354 go\r\n";
	size_t			 used, off = 0;
	int			 codes[3], n = 0;

	reply_parser_init(&p);
	while (off < strlen(s)) {
		cr_assert_eq(reply_parser_feed(&p, s + off, strlen(s) - off,
		    &used, &r), 1);
		codes[n++] = r.code;
		off += used;
	}
	cr_assert_eq(n, 3);
	cr_assert_eq(codes[0], 250);
	cr_assert_eq(codes[1], 251);
	cr_assert_eq(codes[2], 354);
	cr_assert_str_eq(r.text, "go");
}

Test(reply, bare_lf)
{
	struct reply_parser	 p;
	struct reply		 r;

	reply_parser_init(&p);
	cr_assert_eq(feed_one(&p, "250-one\n250 two\n", &r), 1);
	cr_assert_str_eq(r.text, "one two");
	cr_assert_eq(r.nlines, 2);
}

Test(reply, enhanced_codes)
{
	struct reply_parser	 p;
	struct reply		 r;

	reply_parser_init(&p);
	cr_assert_eq(feed_one(&p, "550 5.1.1 User unknown\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "5.1.1");
	cr_assert_str_eq(r.text, "User unknown");
	/* Removed from every line, the first one kept. */
	cr_assert_eq(feed_one(&p, "451-4.7.1 Try\r\n451 4.7.1 later\r\n", &r),
	    1);
	cr_assert_str_eq(r.esc, "4.7.1");
	cr_assert_str_eq(r.text, "Try later");
	/* Three-digit parts. */
	cr_assert_eq(feed_one(&p, "550 5.123.456 x\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "5.123.456");
	cr_assert_str_eq(r.text, "x");
	/* Code alone on the line. */
	cr_assert_eq(feed_one(&p, "550 5.7.1\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "5.7.1");
	cr_assert_str_eq(r.text, "");
}

Test(reply, enhanced_code_must_match_class)
{
	struct reply_parser	 p;
	struct reply		 r;

	reply_parser_init(&p);
	cr_assert_eq(feed_one(&p, "250 5.1.1 odd\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "");
	cr_assert_str_eq(r.text, "5.1.1 odd");
	cr_assert_eq(feed_one(&p, "354 3.0.0 go\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "");
	cr_assert_eq(feed_one(&p, "550 5.1.1234 x\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "");
	cr_assert_eq(feed_one(&p, "550 5.1.1x y\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "");
	cr_assert_eq(feed_one(&p, "550 5..1 y\r\n", &r), 1);
	cr_assert_str_eq(r.esc, "");
	cr_assert_str_eq(r.text, "5..1 y");
}

static void
expect_eproto(const char *s, const char *why)
{
	struct reply_parser	 p;
	struct reply		 r;
	size_t			 used;

	reply_parser_init(&p);
	cr_assert_eq(reply_parser_feed(&p, s, strlen(s), &used, &r), -EPROTO,
	    "input %s", s);
	cr_assert_eq(r.code, 0);
	cr_assert(strstr(r.text, why) != NULL, "text %s", r.text);
	/* Sticky: nothing more is parsed. */
	cr_assert_eq(reply_parser_feed(&p, "250 ok\r\n", 8, &used, &r),
	    -EPROTO);
	cr_assert_eq(used, 0);
}

Test(reply, garbage)
{
	expect_eproto("HTTP/1.1 400 Bad Request\r\n", "malformed");
	expect_eproto("2x0 ok\r\n", "malformed");
	expect_eproto("250x ok\r\n", "malformed");
	expect_eproto("150 ok\r\n", "malformed");
	expect_eproto("650 ok\r\n", "malformed");
	expect_eproto("\r\n", "malformed");
	expect_eproto("25\r\n", "malformed");
	expect_eproto("\n", "malformed");
}

Test(reply, garbage_reason_is_sanitised)
{
	struct reply_parser	 p;
	struct reply		 r;
	size_t			 used;

	reply_parser_init(&p);
	cr_assert_eq(reply_parser_feed(&p, "x\x1b[2J\r\n", 7, &used, &r),
	    -EPROTO);
	cr_assert(strchr(r.text, '\x1b') == NULL);
	cr_assert(strstr(r.text, "x?[2J") != NULL, "%s", r.text);
}

Test(reply, code_change_in_multiline)
{
	expect_eproto("250-a\r\n550 b\r\n", "changed");
	expect_eproto("250-a\r\n251-b\r\n", "changed");
}

Test(reply, overlong_line)
{
	struct reply_parser	 p;
	struct reply		 r;
	char			 big[REPLY_LINE_MAX + 10];
	size_t			 used;

	memset(big, 'a', sizeof(big));
	memcpy(big, "250 ", 4);
	reply_parser_init(&p);
	cr_assert_eq(reply_parser_feed(&p, big, sizeof(big), &used, &r),
	    -EPROTO);
	cr_assert(strstr(r.text, "too long") != NULL);

	/* Same, arriving in small pieces without a line end. */
	reply_parser_init(&p);
	for (size_t off = 0; off < REPLY_LINE_MAX; off += 100) {
		size_t n = REPLY_LINE_MAX - off < 100 ? REPLY_LINE_MAX - off :
		    100;

		cr_assert_eq(reply_parser_feed(&p, big + off, n, &used, &r),
		    0);
	}
	cr_assert_eq(reply_parser_feed(&p, "a", 1, &used, &r), -EPROTO);

	/* Exactly at the limit is fine. */
	reply_parser_init(&p);
	big[REPLY_LINE_MAX] = '\n';
	cr_assert_eq(reply_parser_feed(&p, big, REPLY_LINE_MAX + 1, &used, &r),
	    1);
	cr_assert_eq(r.textlen, REPLY_TEXT_MAX - 1);
}

Test(reply, text_bounded_across_lines)
{
	struct reply_parser	 p;
	struct reply		 r;
	char			 line[600];
	size_t			 used;

	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	line[sizeof(line) - 2] = '\r';
	line[sizeof(line) - 1] = '\n';
	reply_parser_init(&p);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(reply_parser_feed(&p, line, sizeof(line), &used,
		    &r), 0);
	cr_assert_eq(reply_parser_feed(&p, "250 end\r\n", 9, &used, &r), 1);
	cr_assert_eq(r.textlen, REPLY_TEXT_MAX - 1);
	cr_assert_eq(strlen(r.text), r.textlen);
	cr_assert_eq(r.nlines, 11);
}

Test(reply, cut_never_splits_utf8)
{
	struct reply_parser	 p;
	struct reply		 r;
	char			 line[REPLY_TEXT_MAX + 10];
	size_t			 used, n;

	/* "250 a" and 3-octet euro signs: the cut lands inside one. */
	memcpy(line, "250 a", 5);
	for (n = 5; n + 3 <= REPLY_TEXT_MAX + 6; n += 3)
		memcpy(line + n, "\xe2\x82\xac", 3);
	line[n++] = '\n';
	reply_parser_init(&p);
	cr_assert_eq(reply_parser_feed(&p, line, n, &used, &r), 1);
	cr_assert(r.textlen < REPLY_TEXT_MAX - 1);
	cr_assert_eq((r.textlen - 1) % 3, 0, "textlen %zu", r.textlen);
}

Test(reply, control_chars_replaced)
{
	struct reply_parser	 p;
	struct reply		 r;
	size_t			 used;

	reply_parser_init(&p);
	cr_assert_eq(reply_parser_feed(&p, "250 a\rb\0c\td\r\n", 13, &used,
	    &r), 1);
	cr_assert_eq(r.textlen, 7);
	cr_assert_eq(memcmp(r.text, "a?b?c\td", 7), 0);
}

struct lines {
	int		 n;
	unsigned	 lineno[4];
	char		 text[4][32];
};

static void
collect(void *arg, int code, unsigned lineno, const char *text, size_t len)
{
	struct lines	*l = arg;

	cr_assert_eq(code, 250);
	if (l->n < 4) {
		l->lineno[l->n] = lineno;
		snprintf(l->text[l->n], sizeof(l->text[0]), "%.*s", (int)len,
		    text);
		l->n++;
	}
}

Test(reply, line_callback)
{
	struct reply_parser	 p;
	struct reply		 r;
	struct lines		 l = { 0 };

	reply_parser_init(&p);
	reply_parser_set_line_cb(&p, collect, &l);
	cr_assert_eq(feed_one(&p, "250-host\r\n250-2.0.0 SIZE 10\r\n250 X\n",
	    &r), 1);
	cr_assert_eq(l.n, 3);
	cr_assert_eq(l.lineno[2], 2);
	cr_assert_str_eq(l.text[0], "host");
	cr_assert_str_eq(l.text[1], "2.0.0 SIZE 10");
	cr_assert_str_eq(l.text[2], "X");
}
