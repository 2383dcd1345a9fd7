#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "in/unsubd.h"
#include "lib/buf.h"

static int
parse(const char *s, struct unsubd_req *req, int *status)
{
	*status = 0;
	return unsubd_parse_head(s, strlen(s), req, status);
}

Test(unsubd, post_one_click_head)
{
	const char	*s = "POST /u/TOKEN HTTP/1.1\r\nHost: u.example\r\n"
	    "Content-Type: application/x-www-form-urlencoded\r\n"
	    "Content-Length: 26\r\n\r\nList-Unsubscribe=One-Click";
	struct unsubd_req req;
	int		 st;

	cr_assert_eq(parse(s, &req, &st), 0);
	cr_assert_eq(req.method, UNSUBD_M_POST);
	cr_assert_eq(req.targetlen, 8);
	cr_assert(memcmp(req.target, "/u/TOKEN", 8) == 0);
	cr_assert(req.http11 && req.keep_alive);
	cr_assert_eq(req.content_length, 26);
	cr_assert_eq(req.ctype, UNSUBD_CT_URLENCODED);
	cr_assert_eq(req.headlen, strlen(s) - 26);
	cr_assert(unsubd_body_one_click(&req, s + req.headlen, 26));
	cr_assert_not(unsubd_body_one_click(&req, "List-Unsubscribe=Two", 20));
}

Test(unsubd, incomplete_needs_more)
{
	const char	*full = "GET /u/T HTTP/1.1\r\nHost: h\r\n\r\n";
	struct unsubd_req req;
	int		 st;

	for (size_t n = 0; n < strlen(full); n++)
		cr_assert_eq(unsubd_parse_head(full, n, &req, &st), -EAGAIN,
		    "at %zu", n);
	cr_assert_eq(unsubd_parse_head(full, strlen(full), &req, &st), 0);
}

Test(unsubd, malformed_statuses)
{
	static const struct {
		const char	*req;
		int		 status;
	} cases[] = {
		{ "GET /u/T HTTP/1.1\nHost: h\r\n\r\n", 400 },	/* bare LF */
		{ "GET /u/T HTTP/1.1\r\nHost : h\r\n\r\n", 400 },
		{ "GET /u/T HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400 },
		{ "GET /u/T HTTP/1.1\r\n\r\n", 400 },	/* no Host */
		{ "GET u/T HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET /u/T HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
		{ "GET /u/T HTTP/1.2\r\nHost: h\r\n\r\n", 505 },
		{ "GET /u/T FTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "GET  /u/T HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "G@T /u/T HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
		{ "POST /u/T HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n", 400 },
		{ "POST /u/T HTTP/1.1\r\nHost: h\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n", 501 },
		{ "POST /u/T HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
		  "Content-Length: 6\r\n\r\n", 400 },
		{ "POST /u/T HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
		  400 },
		{ "POST /u/T HTTP/1.1\r\nHost: h\r\nContent-Length: 99999\r\n\r\n",
		  413 },
		{ "GET /u/T HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400 },
		{ "GET /u/T HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", 400 },
	};
	struct unsubd_req req;
	int		 st;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(parse(cases[i].req, &req, &st), -EBADMSG,
		    "case %zu", i);
		cr_assert_eq(st, cases[i].status, "case %zu: %d", i, st);
	}
}

Test(unsubd, size_limits_414_431)
{
	static char	 big[UNSUBD_HEAD_MAX + 100];
	struct unsubd_req req;
	int		 st;

	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "GET /", 5);
	cr_assert_eq(unsubd_parse_head(big, UNSUBD_LINE_MAX, &req, &st),
	    -EBADMSG);
	cr_assert_eq(st, 414);
	/* A short line, then headers that never end. */
	memcpy(big, "GET /u/T HTTP/1.1\r\nX-A: ", 24);
	cr_assert_eq(unsubd_parse_head(big, UNSUBD_HEAD_MAX, &req, &st),
	    -EBADMSG);
	cr_assert_eq(st, 431);
	cr_assert_eq(unsubd_parse_head(big, UNSUBD_HEAD_MAX - 1, &req, &st),
	    -EAGAIN);
}

Test(unsubd, too_many_headers_431)
{
	struct buf	 b;
	struct unsubd_req req;
	int		 st;

	buf_init(&b);
	buf_puts(&b, "GET /u/T HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < UNSUBD_HEADERS_MAX; i++)
		buf_printf(&b, "X-%d: v\r\n", i);
	buf_puts(&b, "\r\n");
	cr_assert_eq(unsubd_parse_head(b.data, b.len, &req, &st), -EBADMSG);
	cr_assert_eq(st, 431);
	buf_free(&b);
}

Test(unsubd, keep_alive_rules)
{
	struct unsubd_req req;
	int		 st;

	cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close"
	    "\r\n\r\n", &req, &st), 0);
	cr_assert_not(req.keep_alive);
	cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n", &req, &st), 0);
	cr_assert_not(req.keep_alive);
	cr_assert_eq(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	    &req, &st), 0);
	cr_assert(req.keep_alive);
	cr_assert_eq(parse("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", &req, &st),
	    0);
	cr_assert_eq(req.method, UNSUBD_M_HEAD);
	cr_assert_eq(parse("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", &req, &st),
	    0);
	cr_assert_eq(req.method, UNSUBD_M_OTHER);
	cr_assert_eq(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n", &req, &st),
	    0);
	cr_assert_eq(req.method, UNSUBD_M_OTHER, "methods are case-sensitive");
}

Test(unsubd, urlencoded_variants)
{
	struct unsubd_req req = { .ctype = UNSUBD_CT_URLENCODED };

	cr_assert(unsubd_body_one_click(&req, "a=b&List-Unsubscribe=One-Click",
	    30));
	cr_assert(unsubd_body_one_click(&req,
	    "List%2DUnsubscribe=One%2dClick\r\n", 32));
	cr_assert_not(unsubd_body_one_click(&req, "List-Unsubscribe=One-Clic",
	    25));
	cr_assert_not(unsubd_body_one_click(&req, "List-Unsubscribe=One-Click%",
	    27));
	cr_assert_not(unsubd_body_one_click(&req, "List-Unsubscribe", 16));
	cr_assert_not(unsubd_body_one_click(&req, "", 0));
	req.ctype = UNSUBD_CT_OTHER;
	cr_assert_not(unsubd_body_one_click(&req, "List-Unsubscribe=One-Click",
	    26));
}

Test(unsubd, multipart_form_data)
{
	const char	*h = "POST /u/T HTTP/1.1\r\nHost: h\r\nContent-Type: "
	    "multipart/form-data; boundary=\"----x1\"\r\n"
	    "Content-Length: 10\r\n\r\n";
	const char	*body = "------x1\r\n"
	    "Content-Disposition: form-data; name=\"other\"\r\n\r\n"
	    "One-Click\r\n"
	    "------x1\r\n"
	    "Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
	    "\r\nOne-Click\r\n------x1--\r\n";
	const char	*bad = "------x1\r\n"
	    "Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
	    "\r\nTwo-Click\r\n------x1--\r\n";
	struct unsubd_req req;
	int		 st;

	cr_assert_eq(parse(h, &req, &st), 0);
	cr_assert_eq(req.ctype, UNSUBD_CT_MULTIPART);
	cr_assert_str_eq(req.boundary, "----x1");
	cr_assert(unsubd_body_one_click(&req, body, strlen(body)));
	cr_assert_not(unsubd_body_one_click(&req, bad, strlen(bad)));
	/* Truncated anywhere: never a match, never a crash. */
	for (size_t n = 0; n < strlen(body) - 14; n++)
		cr_assert_not(unsubd_body_one_click(&req, body, n), "%zu", n);
}

Test(unsubd, target_token)
{
	const char	*tok;
	size_t		 n;

	cr_assert_eq(unsubd_target_token("/u/", "/u/AbC-_9?x=1", 13, &tok,
	    &n), 0);
	cr_assert_eq(n, 6);
	cr_assert(memcmp(tok, "AbC-_9", 6) == 0);
	cr_assert_eq(unsubd_target_token("/u/", "/u/", 3, &tok, &n), -ENOENT);
	cr_assert_eq(unsubd_target_token("/u/", "/x/abc", 6, &tok, &n),
	    -ENOENT);
	cr_assert_eq(unsubd_target_token("/u/", "/u/a/b", 6, &tok, &n),
	    -ENOENT);
	cr_assert_eq(unsubd_target_token("/u/", "/u/a%41", 7, &tok, &n),
	    -ENOENT);
}

Test(unsubd, respond_and_landing_escape)
{
	struct buf	 b, page;

	buf_init(&b);
	buf_init(&page);
	cr_assert_eq(unsubd_landing_page(&page, "a<script>\"&'@x.y"), 0);
	cr_assert_null(strstr(page.data, "<script>"));
	cr_assert_not_null(strstr(page.data,
	    "a&lt;script&gt;&quot;&amp;&#39;@x.y"));
	cr_assert_not_null(strstr(page.data, "<form method=\"post\">"));
	cr_assert_not_null(strstr(page.data,
	    "name=\"List-Unsubscribe\" value=\"One-Click\""));
	cr_assert_eq(unsubd_respond(&b, 200, true, false, "text/html",
	    page.data, page.len), 0);
	cr_assert(strncmp(b.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
	cr_assert_not_null(strstr(b.data, "Connection: keep-alive\r\n"));
	cr_assert_not_null(strstr(b.data, "Cache-Control: no-store\r\n"));
	cr_assert_eq(b.len - (size_t)(strstr(b.data, "\r\n\r\n") + 4 - b.data),
	    page.len);
	buf_reset(&b);
	cr_assert_eq(unsubd_respond(&b, 431, false, true, "text/html",
	    page.data, page.len), 0);
	cr_assert(strncmp(b.data, "HTTP/1.1 431 Request Header Fields Too "
	    "Large\r\n", 46) == 0);
	cr_assert(strstr(b.data, "\r\n\r\n")[4] == '\0', "HEAD: no body");
	buf_free(&b);
	buf_free(&page);
}

/* Found by fuzz_http: a version shorter than "HTTP/" was compared as 5. */
Test(unsubd, short_version_is_400)
{
	static const char s[] = "GET /u/T?x=1 H\r\n";
	char		*copy = malloc(sizeof(s) - 1);
	struct unsubd_req req;
	int		 st;

	memcpy(copy, s, sizeof(s) - 1);
	cr_assert_eq(unsubd_parse_head(copy, sizeof(s) - 1, &req, &st),
	    -EBADMSG);
	cr_assert_eq(st, 400);
	free(copy);
}
