/*
 * mime_parse: header folding, Content-Type parameters, transfer
 * decodings, multipart walking (nesting, prefix boundaries, truncation,
 * depth cap).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mime_parse.h"

Test(mime_parse, headers_fold_and_body_offset)
{
	static const char m[] =
	    "From MAILER-DAEMON Mon May 13 10:00:00 2024\n"
	    "Subject: a\r\n  folded\r\n\tvalue  \r\n"
	    "X-Empty:\r\n"
	    "Name With Space: x\r\n"
	    "\r\n"
	    "body";
	char	 v[64];
	size_t	 off = 0;
	struct mime_hdr h;

	cr_assert_eq(mime_hdr_get(m, sizeof(m) - 1, "subject", v, sizeof(v)),
	    14);
	cr_assert_str_eq(v, "a folded value");
	cr_assert_eq(mime_hdr_get(m, sizeof(m) - 1, "X-Empty", v, sizeof(v)),
	    0);
	cr_assert_eq(mime_hdr_get(m, sizeof(m) - 1, "X-None", v, sizeof(v)),
	    -1);
	/* A line that is not a field ends the header block. */
	cr_assert(mime_hdr_next(m, sizeof(m) - 1, &off, &h));
	cr_assert_eq(h.namelen, 7);
	cr_assert(mime_hdr_next(m, sizeof(m) - 1, &off, &h));
	cr_assert_not(mime_hdr_next(m, sizeof(m) - 1, &off, &h));
	cr_assert_eq(strncmp(m + off, "Name With Space", 15), 0);
	/* Truncation to the out buffer. */
	cr_assert_eq(mime_hdr_get(m, sizeof(m) - 1, "Subject", v, 4), 3);
	cr_assert_str_eq(v, "a f");
	static const char m2[] = "A: 1\nB: 2\n\nbody";
	cr_assert_eq(mime_body_offset(m2, sizeof(m2) - 1), 11);
	cr_assert_eq(mime_body_offset("A: 1", 4), 4, "no body at all");
}

Test(mime_parse, content_type_params)
{
	struct mime_ctype ct;
	char	 v[64];

	mime_ctype_parse("Multipart/Report; report-type=\"Delivery-Status\";"
	    "\r\n\tboundary=\"a \\\"q\\\"; b\"", &ct);
	cr_assert_str_eq(ct.type, "multipart");
	cr_assert_str_eq(ct.subtype, "report");
	cr_assert_str_eq(ct.report_type, "delivery-status");
	cr_assert_str_eq(ct.boundary, "a \"q\"; b");
	mime_ctype_parse("garbage", &ct);
	cr_assert_str_eq(ct.type, "text");
	cr_assert_str_eq(ct.subtype, "plain");
	mime_ctype_parse("/", &ct);
	cr_assert_str_eq(ct.type, "text");
	cr_assert_eq(mime_param_get("text/plain; charset = utf-8 ; x=1",
	    "charset", v, sizeof(v)), 5);
	cr_assert_str_eq(v, "utf-8");
	cr_assert_eq(mime_param_get("text/plain; a=\"x;charset=no\"; "
	    "charset=yes", "charset", v, sizeof(v)), 3);
	cr_assert_str_eq(v, "yes");
	cr_assert_eq(mime_param_get("text/plain; a=\"unterminated", "b", v,
	    sizeof(v)), -1);
	cr_assert_eq(mime_param_get("x/y; boundary=\"unterminated", "boundary",
	    v, sizeof(v)), 12);
	cr_assert_eq(mime_cte_parse(" BASE64"), MIME_CTE_BASE64);
	cr_assert_eq(mime_cte_parse("Quoted-Printable"), MIME_CTE_QP);
	cr_assert_eq(mime_cte_parse("8bit"), MIME_CTE_IDENTITY);
}

Test(mime_parse, decode)
{
	char	 out[64];
	size_t	 n;

	n = mime_decode(MIME_CTE_BASE64, "aGVs\r\nbG8g\nd29y bGQ=", 21, out,
	    sizeof(out));
	cr_assert_eq(n, 11);
	cr_assert_eq(memcmp(out, "hello world", 11), 0);
	n = mime_decode(MIME_CTE_BASE64, "aGVsbG8gd29ybGQ=", 16, out, 5);
	cr_assert_eq(n, 5, "bounded by outsz");
	n = mime_decode(MIME_CTE_QP, "a=3Db=\r\nc=\nd=ZZ=4", 17, out,
	    sizeof(out));
	cr_assert_eq(n, 10);
	cr_assert_eq(memcmp(out, "a=bcd=ZZ=4", 10), 0);
	n = mime_decode(MIME_CTE_IDENTITY, "abc", 3, out, 2);
	cr_assert_eq(n, 2);
}

struct test_mime_seen {
	char	 types[16][128];
	unsigned depth[16];
	char	 bodies[16][80];
	unsigned n;
};

static int
test_mime_collect(const struct mime_part *p, void *arg)
{
	struct test_mime_seen *s = arg;

	if (s->n < 16) {
		snprintf(s->types[s->n], sizeof(s->types[0]), "%s/%s",
		    p->ct.type, p->ct.subtype);
		snprintf(s->bodies[s->n], sizeof(s->bodies[0]), "%.*s",
		    (int)(p->bodylen < 79 ? p->bodylen : 79), p->body);
		s->depth[s->n] = p->depth;
	}
	s->n++;
	return 0;
}

Test(mime_parse, walk_nested_and_prefix_boundaries)
{
	static const char m[] =
	    "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
	    "preamble\r\n--b\r\n"
	    "Content-Type: multipart/alternative; boundary=\"b_2\"\r\n\r\n"
	    "--b_2\r\nContent-Type: text/plain\r\n\r\none\r\n"
	    "--b_2  \r\n\r\ntwo\r\n--b_2--\r\n"
	    "--b\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
	    "not walked\r\n"
	    "--b--\r\nepilogue";
	struct test_mime_seen s = { 0 };

	cr_assert_eq(mime_walk(m, sizeof(m) - 1, test_mime_collect, &s), 0);
	cr_assert_eq(s.n, 5);
	cr_assert_str_eq(s.types[0], "multipart/mixed");
	cr_assert_str_eq(s.types[1], "multipart/alternative");
	cr_assert_str_eq(s.types[2], "text/plain");
	cr_assert_str_eq(s.bodies[2], "one");
	cr_assert_eq(s.depth[2], 2);
	cr_assert_str_eq(s.types[3], "text/plain", "no headers: default");
	cr_assert_str_eq(s.bodies[3], "two");
	cr_assert_str_eq(s.types[4], "message/rfc822");
}

Test(mime_parse, truncated_multipart_keeps_last_part)
{
	static const char m[] =
	    "Content-Type: multipart/report; boundary=x\n\n"
	    "--x\nContent-Type: text/plain\n\nhello\n"
	    "--x\nContent-Type: message/delivery-status\n\nFinal-Rec";
	struct test_mime_seen s = { 0 };

	mime_walk(m, sizeof(m) - 1, test_mime_collect, &s);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.types[2], "message/delivery-status");
	cr_assert_str_eq(s.bodies[2], "Final-Rec");
}

static int
test_mime_stop(const struct mime_part *p, void *arg)
{
	(void)arg;
	return p->index == 1 ? 42 : 0;
}

Test(mime_parse, visitor_can_stop)
{
	static const char m[] =
	    "Content-Type: multipart/mixed; boundary=x\n\n"
	    "--x\n\na\n--x\n\nb\n--x--\n";

	cr_assert_eq(mime_walk(m, sizeof(m) - 1, test_mime_stop, NULL), 42);
}

Test(mime_parse, depth_and_part_caps)
{
	/* 40 levels of nesting with the same boundary. */
	char	*m = malloc(40 * 64 + 64);
	size_t	 n = 0;
	struct test_mime_seen s = { 0 };

	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(m + n, "Content-Type: multipart/mixed; "
		    "boundary=z%d\n\n--z%d\n", i, i);
	n += (size_t)sprintf(m + n, "\nleaf\n");
	mime_walk(m, n, test_mime_collect, &s);
	cr_assert_eq(s.n, MIME_DEPTH_MAX);
	free(m);

	/* Thousands of tiny parts: capped. */
	m = malloc(5000 * 6 + 64);
	n = (size_t)sprintf(m, "Content-Type: multipart/mixed; boundary=q\n\n");
	for (int i = 0; i < 5000; i++)
		n += (size_t)sprintf(m + n, "--q\n\n");
	memset(&s, 0, sizeof(s));
	mime_walk(m, n, test_mime_collect, &s);
	cr_assert_eq(s.n, MIME_PARTS_MAX);
	free(m);
}

Test(mime_parse, memcasemem)
{
	static const char h[] = "abc Hello WORLD";

	cr_assert_eq(mime_memcasemem(h, sizeof(h) - 1, "world", 5), h + 10);
	cr_assert_null(mime_memcasemem(h, sizeof(h) - 1, "worlds", 6));
	cr_assert_null(mime_memcasemem(h, 3, "abcd", 4));
	cr_assert_null(mime_memcasemem(h, sizeof(h) - 1, "", 0));
}

Test(mime_parse, encoded_words)
{
	char	 out[128];

	cr_assert_eq(mime_decode_words("=?utf-8?B?QXV0b21hdGlzY2hlIEFudHdvcnQ="
	    "?= x", out, sizeof(out)), 22);
	cr_assert_str_eq(out, "Automatische Antwort x");
	/* Space between adjacent words goes (RFC 2047 6.2); Q "_" is SP. */
	mime_decode_words("=?ISO-8859-1?Q?R=E9ponse_?=  =?ISO-8859-1?q?auto?= "
	    "end", out, sizeof(out));
	cr_assert_str_eq(out, "R\xe9ponse auto end");
	/* Malformed words stay literal; controls are blanked. */
	mime_decode_words("=?x?Z?abc?= =?utf-8?B?YQ==", out, sizeof(out));
	cr_assert_str_eq(out, "=?x?Z?abc?= =?utf-8?B?YQ==");
	mime_decode_words("=?utf-8?Q?a=0Db=00c?=", out, sizeof(out));
	cr_assert_str_eq(out, "a b c");
	/* Bounded output. */
	cr_assert_eq(mime_decode_words("=?utf-8?B?QUJDREVGRw==?=", out, 4), 3);
	cr_assert_str_eq(out, "ABC");
	cr_assert_eq(mime_decode_words("plain", out, sizeof(out)), 5);
}
