#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "in/mime.h"

static struct mime_tree	 T;

Test(mime, plain_message_defaults)
{
	static const char m[] = "Subject: x\r\n\r\nbody\r\n";

	mime_parse(&T, m, strlen(m));
	cr_assert_eq(T.n, 1);
	cr_assert_str_eq(T.nodes[0].type, "text");
	cr_assert_str_eq(T.nodes[0].subtype, "plain");
	cr_assert_not(T.nodes[0].has_ctype);
	cr_assert_eq(T.nodes[0].body_off, 14);
	cr_assert_eq(T.nodes[0].body_len, 6);
}

Test(mime, header_only_and_no_header)
{
	mime_parse(&T, "Subject: x\r\n", 12);
	cr_assert_eq(T.nodes[0].body_off, 12);
	cr_assert_eq(T.nodes[0].body_len, 0);
	mime_parse(&T, "\r\nbody", 6);
	cr_assert_eq(T.nodes[0].body_off, 2);
	cr_assert_eq(T.nodes[0].body_len, 4);
}

Test(mime, multipart_and_rfc822)
{
	static const char m[] =
	    "Content-Type: Multipart/Mixed;\r\n boundary=\"b 1\"\r\n\r\n"
	    "pre\r\n--b 1\r\n\r\none\r\n--b 1  \r\n"
	    "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\nContent-Type: text/html\r\n\r\n<p>\r\n"
	    "--b 1--\r\nepi\r\n";
	const struct mime_node	*r, *c1, *c2;

	mime_parse(&T, m, strlen(m));
	r = &T.nodes[0];
	cr_assert_str_eq(r->type, "multipart");
	cr_assert_str_eq(r->subtype, "mixed");
	cr_assert_eq(r->nchild, 2);
	c1 = r->child;
	c2 = c1->next;
	cr_assert_eq(c1->body_len, 3);
	cr_assert_eq(memcmp(m + c1->body_off, "one", 3), 0);
	cr_assert_str_eq(c2->type, "message");
	cr_assert_not_null(c2->msg);
	cr_assert_str_eq(c2->msg->subtype, "html");
	cr_assert_eq(c2->msg->body_len, 3);
	cr_assert_eq(memcmp(m + c2->msg->body_off, "<p>", 3), 0);
}

Test(mime, nesting_is_bounded)
{
	struct buf	 b;
	const struct mime_node *nd;
	unsigned	 depth = 0;

	buf_init(&b);
	for (int i = 0; i < 100; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=%d\r\n"
		    "\r\n--%d\r\n", i, i);
	mime_parse(&T, b.data, b.len);
	cr_assert_leq(T.n, MIME_NODES_MAX);
	for (nd = &T.nodes[0]; nd->child != NULL; nd = nd->child)
		depth++;
	cr_assert_leq(depth, MIME_DEPTH_MAX);
	cr_assert_geq(depth, 10);
	buf_free(&b);
}

Test(mime, header_get_unfolds_and_filter_keeps_raw)
{
	static const char h[] = "Subject: a\r\n  b\r\nX-Y:z\r\nsubject: 2\r\n"
	    "\r\n";
	const char	*names[] = { "subject" };
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(mime_header_get(h, strlen(h), "SUBJECT", &b), 0);
	cr_assert_str_eq(b.data, "a  b");
	buf_reset(&b);
	cr_assert_eq(mime_header_get(h, strlen(h), "X-Y", &b), 0);
	cr_assert_str_eq(b.data, "z");
	cr_assert_eq(mime_header_get(h, strlen(h), "X", &b), -ENOENT);
	buf_reset(&b);
	mime_header_filter(h, strlen(h), names, 1, false, &b);
	cr_assert_str_eq(b.data, "Subject: a\r\n  b\r\nsubject: 2\r\n\r\n");
	buf_reset(&b);
	mime_header_filter(h, strlen(h), names, 1, true, &b);
	cr_assert_str_eq(b.data, "X-Y:z\r\n\r\n");
	buf_free(&b);
}

static void
param_cb(const char *n, size_t nl, const char *v, size_t vl, void *arg)
{
	buf_printf(arg, "%.*s=%.*s;", (int)nl, n, (int)vl, v);
}

Test(mime, params)
{
	static const char v[] = "text/plain; charset=\"utf-8\"; "
	    "name=\"a \\\"q\\\".txt\";bad; x = y";
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(mime_params(v, strlen(v), param_cb, &b), 3);
	cr_assert_str_eq(b.data, "charset=utf-8;name=a \"q\".txt;x=y;");
	buf_free(&b);
	cr_assert_eq(mime_count_lines("a\r\nb", 4), 2);
	cr_assert_eq(mime_count_lines("a\r\n", 3), 1);
	cr_assert_eq(mime_count_lines("", 0), 0);
}
