#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "mail/msg.h"

static struct msg_input
msg_test_input(void)
{
	struct msg_input in = {
		.from = "News <news@example.com>",
		.to = "rcpt@example.org",
		.subject = "Hello",
		.text = "Hi there\r\n",
		.textlen = 10,
		.msgid_domain = "mx.example.com",
		.msgid_local = "abc.123",
		.date_ms = 1700000000123LL,	/* Tue, 14 Nov 2023 22:13:20 */
	};

	return in;
}

/*
 * Structural checks every message must pass: CRLF only, no line over 998,
 * header lines within 78 when they were given the chance.
 */
static void
msg_test_check_lines(const struct buf *b, size_t hdrmax)
{
	size_t	 i, line = 0;
	int	 inhdr = 1;

	cr_assert(b->len >= 2);
	cr_assert(b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n',
	    "message must end in CRLF");
	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r') {
			cr_assert(i + 1 < b->len && b->data[i + 1] == '\n',
			    "bare CR at %zu", i);
			if (inhdr) {
				cr_assert(line <= hdrmax,
				    "header line of %zu octets", line);
				if (line == 0)
					inhdr = 0;
			}
			line = 0;
			i++;
			continue;
		}
		cr_assert(b->data[i] != '\n', "bare LF at %zu", i);
		line++;
		cr_assert(line <= 998, "line over 998 at %zu", i);
	}
}

/* Unfolded value of the first header called name, or NULL; caller frees. */
static char *
msg_test_header(const struct buf *b, const char *name)
{
	const char	*p = b->data, *end, *eol;
	size_t		 nl = strlen(name);
	char		*out, *o;

	for (;;) {
		eol = strstr(p, "\r\n");
		if (eol == NULL || eol == p)
			return NULL;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			break;
		p = eol + 2;
	}
	end = eol;
	while (end[2] == ' ' || end[2] == '\t')
		end = strstr(end + 2, "\r\n");
	out = o = calloc(1, (size_t)(end - p) + 1);
	for (p += nl + 1; p < end; p++) {
		if (p[0] == '\r' && p[1] == '\n') {
			p++;
			continue;
		}
		*o++ = *p;
	}
	while (out[0] == ' ')
		memmove(out, out + 1, strlen(out));
	return out;
}

static int
msg_test_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
msg_test_b64val(char c)
{
	const char	*a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char	*p = strchr(a, c);

	return p != NULL && c != '\0' ? (int)(p - a) : -1;
}

/*
 * Decode a header value made only of encoded-words (whitespace between
 * them ignored, RFC 2047 6.2) or plain text. Checks each word's length.
 */
static void
msg_test_decode_2047(const char *v, struct buf *out)
{
	buf_init(out);
	while (*v != '\0') {
		const char	*q, *end;
		int		 bq;

		if (strncmp(v, "=?UTF-8?", 8) != 0) {
			buf_putc(out, *v++);
			continue;
		}
		bq = v[8];
		cr_assert(bq == 'Q' || bq == 'B');
		cr_assert_eq(v[9], '?');
		end = strstr(v + 10, "?=");
		cr_assert_not_null(end);
		cr_assert(end + 2 - v <= 75, "encoded-word too long");
		for (q = v + 10; q < end;) {
			if (bq == 'Q') {
				if (*q == '_') {
					buf_putc(out, ' ');
					q++;
				} else if (*q == '=') {
					buf_putc(out, (char)(msg_test_hexval(q[1]) * 16 +
					    msg_test_hexval(q[2])));
					q += 3;
				} else
					buf_putc(out, *q++);
			} else {
				int	 a = msg_test_b64val(q[0]),
					 b = msg_test_b64val(q[1]),
					 c = q[2] == '=' ? -1 : msg_test_b64val(q[2]),
					 d = q[3] == '=' ? -1 : msg_test_b64val(q[3]);

				cr_assert(a >= 0 && b >= 0);
				buf_putc(out, (char)(a << 2 | b >> 4));
				if (c >= 0)
					buf_putc(out, (char)((b & 15) << 4 | c >> 2));
				if (d >= 0)
					buf_putc(out, (char)((c & 3) << 6 | d));
				q += 4;
			}
		}
		v = end + 2;
		while (*v == ' ' && strncmp(v + 1, "=?", 2) == 0)
			v++;
	}
}

/* Every encoded-word must hold whole UTF-8 characters. */
static void
msg_test_words_whole_utf8(const char *v)
{
	struct buf	 one;
	char		 w[128];
	const char	*p = v, *end;
	size_t		 i;

	while ((p = strstr(p, "=?UTF-8?")) != NULL) {
		end = strstr(p + 10, "?=");
		cr_assert_not_null(end);
		cr_assert((size_t)(end + 2 - p) < sizeof(w));
		memcpy(w, p, (size_t)(end + 2 - p));
		w[end + 2 - p] = '\0';
		msg_test_decode_2047(w, &one);
		/* The decoded word starts and ends on character boundaries. */
		if (one.len > 0) {
			cr_assert(((unsigned char)one.data[0] & 0xc0) != 0x80);
			for (i = one.len; i > 0 &&
			    ((unsigned char)one.data[i - 1] & 0xc0) == 0x80; i--)
				;
			if (i > 0 && (unsigned char)one.data[i - 1] >= 0xc0) {
				unsigned char	 c = (unsigned char)one.data[i - 1];
				size_t		 want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

				cr_assert_eq(one.len - (i - 1), want,
				    "word splits a UTF-8 char: %s", w);
			}
		}
		buf_free(&one);
		p = end + 2;
	}
}

/* Quoted-printable decode (RFC 2045 6.7) and line-length check. */
static void
msg_test_qp_decode(const char *s, size_t n, struct buf *out)
{
	size_t	 i, line = 0;

	buf_init(out);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			cr_assert(line <= 76, "QP line of %zu", line);
			line = 0;
			buf_append(out, "\r\n", 2);
			i++;
			continue;
		}
		line++;
		if (s[i] == '=') {
			if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
				cr_assert(line <= 76, "QP line of %zu", line);
				line = 0;
				i += 2;
				continue;
			}
			cr_assert(i + 2 < n && msg_test_hexval(s[i + 1]) >= 0 &&
			    msg_test_hexval(s[i + 2]) >= 0);
			buf_putc(out, (char)(msg_test_hexval(s[i + 1]) * 16 +
			    msg_test_hexval(s[i + 2])));
			i += 2;
			line += 2;
			continue;
		}
		cr_assert((unsigned char)s[i] >= 32 && (unsigned char)s[i] < 127,
		    "raw 0x%02x in QP", (unsigned char)s[i]);
		/* RFC 2045 6.7 (3): no whitespace right before a hard break. */
		if (s[i] == ' ' || s[i] == '\t')
			cr_assert(!(i + 1 < n && s[i + 1] == '\r'));
		buf_putc(out, s[i]);
	}
}

static const char *
msg_test_body(const struct buf *b)
{
	const char	*p = strstr(b->data, "\r\n\r\n");

	cr_assert_not_null(p);
	return p + 4;
}

Test(msg, golden_single_text)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_str_eq(b.data,
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "Message-ID: <abc.123@mx.example.com>\r\n"
	    "From: News <news@example.com>\r\n"
	    "To: rcpt@example.org\r\n"
	    "Subject: Hello\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "Hi there\r\n");
	msg_test_check_lines(&b, 78);
	buf_free(&b);
}

Test(msg, appends_to_existing_content)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	buf_init(&b);
	buf_puts(&b, "X: y\r\n");
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert(strncmp(b.data, "X: y\r\nDate: ", 12) == 0);
	buf_free(&b);
}

Test(msg, multipart_alternative)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;
	char		*ct, *bnd, delim[128];
	const char	*p, *t, *h;

	in.html = "<p>Hi</p>";
	in.htmllen = strlen(in.html);
	in.reply_to = "help@example.com";
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	ct = msg_test_header(&b, "Content-Type");
	cr_assert_not_null(ct);
	cr_assert(strncmp(ct, "multipart/alternative;", 22) == 0, "%s", ct);
	bnd = strstr(ct, "boundary=\"");
	cr_assert_not_null(bnd);
	bnd += 10;
	*strchr(bnd, '"') = '\0';
	cr_assert(strlen(bnd) >= 20 && strlen(bnd) <= 70);
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", bnd);
	p = msg_test_body(&b);
	t = strstr(p - 2, delim);
	cr_assert_eq(t, p - 2, "body starts with the first delimiter");
	t = strstr(b.data, "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\nHi there\r\n\r\n--");
	cr_assert_not_null(t);
	h = strstr(b.data, "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n<p>Hi</p>\r\n--");
	cr_assert_not_null(h);
	cr_assert(t < h, "text part comes first (RFC 2046 5.1.4)");
	snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", bnd);
	cr_assert(b.len > strlen(delim));
	cr_assert_str_eq(b.data + b.len - strlen(delim), delim);
	cr_assert_not_null(strstr(b.data, "\r\nReply-To: help@example.com\r\n"));
	cr_assert_not_null(strstr(b.data, "\r\nMIME-Version: 1.0\r\n"));
	free(ct);
	buf_free(&b);
}

Test(msg, html_only_single_part)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.text = NULL;
	in.html = "<p>x</p>";
	in.htmllen = 8;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_not_null(strstr(b.data, "MIME-Version: 1.0\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n<p>x</p>\r\n"));
	cr_assert_null(strstr(b.data, "multipart"));
	msg_test_check_lines(&b, 78);
	buf_free(&b);
}

Test(msg, boundary_deterministic)
{
	struct msg_input in = msg_test_input();
	struct buf	 a, b;

	in.html = "<p>Hi</p>";
	in.htmllen = 9;
	buf_init(&a);
	buf_init(&b);
	cr_assert_eq(msg_build(&a, &in), 0);
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_str_eq(a.data, b.data);
	buf_reset(&b);
	in.msgid_local = "abc.124";
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_str_neq(strstr(a.data, "boundary="),
	    strstr(b.data, "boundary="));
	buf_free(&a);
	buf_free(&b);
}

/* A body that contains the boundary we would pick forces another one. */
Test(msg, boundary_never_in_content)
{
	struct msg_input in = msg_test_input();
	struct buf	 a, b;
	char		*ct, *bnd, body[256];
	int		 round;

	in.html = "<p>Hi</p>";
	in.htmllen = 9;
	buf_init(&a);
	cr_assert_eq(msg_build(&a, &in), 0);
	/* Feed the chosen boundaries back as content, several rounds. */
	body[0] = '\0';
	for (round = 0; round < 12; round++) {
		ct = msg_test_header(&a, "Content-Type");
		bnd = strstr(ct, "boundary=\"") + 10;
		*strchr(bnd, '"') = '\0';
		if (strlen(body) + strlen(bnd) + 8 < sizeof(body)) {
			strcat(body, "--");
			strcat(body, bnd);
			strcat(body, "\r\n");
		}
		in.text = body;
		in.textlen = strlen(body);
		buf_init(&b);
		cr_assert_eq(msg_build(&b, &in), 0);
		msg_test_check_lines(&b, 78);
		free(ct);
		ct = msg_test_header(&b, "Content-Type");
		bnd = strstr(ct, "boundary=\"") + 10;
		*strchr(bnd, '"') = '\0';
		/* Only the delimiters themselves may contain it. */
		{
			const char	*p = msg_test_body(&b);
			size_t		 count = 0;

			while ((p = strstr(p, bnd)) != NULL) {
				count++;
				p++;
			}
			cr_assert_eq(count, 3, "boundary occurs in content");
		}
		free(ct);
		buf_free(&a);
		a = b;
	}
	buf_free(&a);
}

Test(msg, subject_injection_cannot_add_header)
{
	struct msg_input in = msg_test_input();
	struct msg_header hdr = { "X-Campaign", "c1\r\nBcc: evil@x" };
	struct buf	 b;

	in.subject = "x\r\nBcc: evil@x";
	in.headers = &hdr;
	in.nheaders = 1;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	cr_assert_null(strstr(b.data, "\r\nBcc:"));
	cr_assert(strncmp(b.data, "Bcc:", 4) != 0);
	cr_assert_not_null(strstr(b.data, "\r\nSubject: x  Bcc: evil@x\r\n"));
	buf_free(&b);
}

Test(msg, from_or_to_with_crlf_refused)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	buf_init(&b);
	buf_puts(&b, "keep");
	in.to = "a@x\r\nBcc: evil@x";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	cr_assert_str_eq(b.data, "keep");
	in = msg_test_input();
	in.to = "a@x, b@y";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	in = msg_test_input();
	in.from = "News <n@x>\nBcc: evil@x";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	cr_assert_str_eq(b.data, "keep");
	in = msg_test_input();
	in.reply_to = "r@x\r\n";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	in = msg_test_input();
	in.msgid_local = "a>b";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	cr_assert_str_eq(b.data, "keep");
	buf_free(&b);
}

Test(msg, bad_header_names)
{
	static const char *const bad[] = { "", "Bad Name", "X:y", "Bcc",
		"content-type", "X-\x01", "X-\xc3\xa9",
		"X-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		NULL };
	struct msg_input in = msg_test_input();
	struct msg_header hdr;
	struct buf	 b;
	size_t		 i;

	buf_init(&b);
	in.headers = &hdr;
	in.nheaders = 1;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hdr.name = bad[i];
		hdr.value = "v";
		cr_assert_eq(msg_build(&b, &in), -EINVAL, "name %zu", i);
		cr_assert_eq(b.len, 0);
	}
	hdr.name = "List-Unsubscribe";
	hdr.value = "<mailto:u@example.com>";
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_not_null(strstr(b.data,
	    "\r\nList-Unsubscribe: <mailto:u@example.com>\r\n"));
	buf_free(&b);
}

Test(msg, non_ascii_subject_encoded_and_decodable)
{
	static const char *const subjects[] = {
		"Grüße aus Zürich",
		"日本語のメールの件名はとても長くなることがあります。日本語のメールの件名はとても長くなることがあります。",
		"Ünïcödé and a fairly long ASCII tail that keeps going and going past the fold width",
		"emoji 😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
		"bad utf8 \xff\xfe\xc3 tail",
	};
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	char		*v;
	size_t		 i;

	for (i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
		in.subject = subjects[i];
		buf_init(&b);
		cr_assert_eq(msg_build(&b, &in), 0);
		msg_test_check_lines(&b, 78);
		v = msg_test_header(&b, "Subject");
		cr_assert_not_null(v);
		for (size_t k = 0; v[k] != '\0'; k++)
			cr_assert((unsigned char)v[k] < 0x80, "raw 8-bit");
		msg_test_decode_2047(v, &dec);
		cr_assert_str_eq(dec.data, subjects[i], "subject %zu: %s", i, v);
		msg_test_words_whole_utf8(v);
		buf_free(&dec);
		free(v);
		buf_free(&b);
	}
}

Test(msg, q_encoding_golden)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.subject = "Café ok";
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_not_null(strstr(b.data,
	    "\r\nSubject: =?UTF-8?Q?Caf=C3=A9_ok?=\r\n"), "%s", b.data);
	buf_free(&b);
}

/* Merge data that looks like an encoded-word is encoded itself. */
Test(msg, subject_encoded_word_lookalike)
{
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	char		*v;

	in.subject = "Hi =?UTF-8?B?QmNjOiBldmls?=";
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	v = msg_test_header(&b, "Subject");
	cr_assert_null(strstr(v, "QmNjOiBldmls?="), "%s", v);
	msg_test_decode_2047(v, &dec);
	cr_assert_str_eq(dec.data, in.subject);
	buf_free(&dec);
	free(v);
	buf_free(&b);
}

Test(msg, long_ascii_subject_folded)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;
	char		 subj[600], *v;
	size_t		 i;

	for (i = 0; i + 6 < sizeof(subj); i += 6)
		memcpy(subj + i, "word  ", 6);
	subj[i] = '\0';
	memcpy(subj + i - 6, "last! ", 6);
	in.subject = subj;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	v = msg_test_header(&b, "Subject");
	/* Unfolding gives back the value (trailing whitespace dropped). */
	subj[strlen(subj) - 1] = '\0';
	cr_assert_str_eq(v, subj);
	free(v);
	buf_free(&b);
}

Test(msg, huge_word_subject_stays_under_998)
{
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	char		*subj, *v;

	subj = malloc(5001);
	memset(subj, 'a', 5000);
	subj[5000] = '\0';
	in.subject = subj;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	v = msg_test_header(&b, "Subject");
	msg_test_decode_2047(v, &dec);
	cr_assert_str_eq(dec.data, subj);
	buf_free(&dec);
	free(v);
	free(subj);
	buf_free(&b);
}

Test(msg, non_ascii_extra_header_and_display_name)
{
	struct msg_input in = msg_test_input();
	struct msg_header hdr = { "X-Note", "für dich" };
	struct buf	 b, dec;
	char		*v;

	in.from = "\"Jürgen Müller\" <j@example.com>";
	in.headers = &hdr;
	in.nheaders = 1;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	v = msg_test_header(&b, "X-Note");
	msg_test_decode_2047(v, &dec);
	cr_assert_str_eq(dec.data, "für dich");
	buf_free(&dec);
	free(v);
	v = msg_test_header(&b, "From");
	cr_assert(strstr(v, " <j@example.com>") != NULL, "%s", v);
	*strstr(v, " <j@example.com>") = '\0';
	msg_test_decode_2047(v, &dec);
	cr_assert_str_eq(dec.data, "Jürgen Müller");
	buf_free(&dec);
	free(v);
	buf_free(&b);
}

Test(msg, quoted_pairs_in_display_name)
{
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	char		*v;

	in.reply_to = "\"Caf\xc3\xa9 \\\"Le Bon\\\"\" <c@example.com>";
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	v = msg_test_header(&b, "Reply-To");
	cr_assert_not_null(strstr(v, " <c@example.com>"), "%s", v);
	*strstr(v, " <c@example.com>") = '\0';
	msg_test_decode_2047(v, &dec);
	cr_assert_str_eq(dec.data, "Caf\xc3\xa9 \"Le Bon\"");
	buf_free(&dec);
	free(v);
	buf_free(&b);
}

Test(msg, long_header_name_folds_early)
{
	struct msg_input in = msg_test_input();
	struct msg_header hdr = {
		"X-A-Rather-Long-Header-Name-That-Eats-Most-Of-The-Line-abcdefghij",
		"ééééé"
	};
	struct buf	 b, dec;
	char		*v;

	in.headers = &hdr;
	in.nheaders = 1;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	v = msg_test_header(&b, hdr.name);
	msg_test_decode_2047(v, &dec);
	cr_assert_str_eq(dec.data, "ééééé");
	buf_free(&dec);
	free(v);
	buf_free(&b);
}

Test(msg, long_lines_become_qp)
{
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	char		*text;
	const char	*body;

	text = malloc(3003);
	memset(text, 'x', 3000);
	memcpy(text + 3000, "\r\n", 3);
	text[1500] = ' ';
	text[1501] = '=';
	in.text = text;
	in.textlen = 3002;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	cr_assert_not_null(strstr(b.data,
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"));
	body = msg_test_body(&b);
	msg_test_qp_decode(body, strlen(body), &dec);
	cr_assert_eq(dec.len, 3002);
	cr_assert_eq(memcmp(dec.data, text, 3002), 0);
	buf_free(&dec);
	free(text);
	buf_free(&b);
}

Test(msg, qp_utf8_trailing_ws_and_bare_lf)
{
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	const char	*body, *want;

	in.text = "Grüße \nline two\t\r\nbare cr\rend =";
	in.textlen = strlen(in.text);
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	body = msg_test_body(&b);
	cr_assert_str_eq(body,
	    "Gr=C3=BC=C3=9Fe=20\r\nline two=09\r\nbare cr\r\nend =3D\r\n");
	msg_test_qp_decode(body, strlen(body), &dec);
	want = "Grüße \r\nline two\t\r\nbare cr\r\nend =\r\n";
	cr_assert_str_eq(dec.data, want);
	buf_free(&dec);
	buf_free(&b);
}

Test(msg, qp_soft_breaks_never_split_escapes)
{
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	char		 text[1200];
	const char	*body;
	size_t		 i;

	/* Mixed widths so that "=XX" lands on every column. */
	for (i = 0; i + 3 < sizeof(text); ) {
		if (i % 7 == 0) {
			memcpy(text + i, "\xc3\xa9", 2);
			i += 2;
		} else {
			text[i] = (i % 11 == 0) ? ' ' : 'a';
			i++;
		}
	}
	text[i] = '\0';
	in.text = text;
	in.textlen = i;
	in.html = text;
	in.htmllen = i;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	body = strstr(b.data, "quoted-printable\r\n\r\n") + 20;
	msg_test_qp_decode(body, (size_t)(strstr(body, "\r\n--") - body),
	    &dec);
	cr_assert_eq(dec.len, i);
	cr_assert_eq(memcmp(dec.data, text, i), 0);
	buf_free(&dec);
	buf_free(&b);
}

Test(msg, bare_lf_ascii_stays_7bit_normalised)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.text = "a\nb\n";
	in.textlen = 4;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	cr_assert_str_eq(msg_test_body(&b), "a\r\nb\r\n");
	/* LF line ends are hard breaks written as CRLF: no QP needed. */
	cr_assert_null(strstr(b.data, "quoted-printable"));
	cr_assert_not_null(strstr(b.data, "Content-Transfer-Encoding: 7bit"));
	buf_free(&b);
}

Test(msg, nul_byte_is_encoded)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.text = "a\0b";
	in.textlen = 3;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_str_eq(msg_test_body(&b), "a=00b\r\n");
	buf_free(&b);
}

Test(msg, date_formats)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	buf_init(&b);
	in.date_ms = 0;
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert(strncmp(b.data, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n",
	    39) == 0, "%s", b.data);
	buf_reset(&b);
	in.date_ms = -1;
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert(strncmp(b.data, "Date: Wed, 31 Dec 1969 23:59:59 +0000\r\n",
	    39) == 0, "%s", b.data);
	buf_reset(&b);
	in.date_ms = 951782400000LL;	/* leap day 2000 */
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert(strncmp(b.data, "Date: Tue, 29 Feb 2000 00:00:00 +0000\r\n",
	    39) == 0, "%s", b.data);
	buf_free(&b);
}

Test(msg, no_parts_gives_empty_text)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.text = NULL;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	cr_assert_not_null(strstr(b.data, "Content-Type: text/plain"));
	buf_free(&b);
}

Test(msg, reuse_does_not_reallocate)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;
	char		*data;
	int		 i;

	in.html = "<p>Grüße</p>";
	in.htmllen = strlen(in.html);
	in.subject = "Grüße";
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	data = b.data;
	for (i = 0; i < 50; i++) {
		buf_reset(&b);
		cr_assert_eq(msg_build(&b, &in), 0);
		cr_assert_eq(b.data, data);
	}
	buf_free(&b);
}

/* Found by fuzz_msg: an 8-bit From without <addr> and a 1000-octet word. */
Test(msg, unfoldable_mailbox_refused)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;
	char		 from[1200];

	memset(from, 'a', sizeof(from) - 1);
	from[sizeof(from) - 1] = '\0';
	from[10] = (char)0xc3;
	from[11] = (char)0xa9;
	in.from = from;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	from[11] = 'a';
	from[10] = 'a';
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	/* A long display name is fine: it is encoded and folded. */
	memcpy(from + 1100, " <j@x.org>", 11);
	from[10] = ' ';
	from[500] = (char)0xc3;
	from[501] = (char)0xa9;
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	buf_free(&b);
}

/* ---- issue 5: List-Unsubscribe, Feedback-ID, attachments ---- */

Test(msg, list_unsubscribe_one_click)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;
	char		*v;

	in.unsub_url = "https://u.example/u/TOKEN";
	in.unsub_mailto = "mailto:u+TOKEN@example.com";
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	cr_assert_not_null(strstr(b.data, "List-Unsubscribe: "
	    "<https://u.example/u/TOKEN>, <mailto:u+TOKEN@example.com>\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "%s",
	    b.data);
	v = msg_test_header(&b, "Feedback-ID");
	cr_assert_null(v);
	/* A long token: each URI folds onto its own line. */
	buf_reset(&b);
	in.unsub_url = "https://u.example/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 998);
	cr_assert_not_null(strstr(b.data, "AAAA>,\r\n <mailto:u+TOKEN@"));
	buf_free(&b);
}

Test(msg, list_unsubscribe_mailto_only_has_no_post)
{
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.unsub_mailto = "u@example.com";	/* "mailto:" is added */
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_not_null(strstr(b.data,
	    "List-Unsubscribe: <mailto:u@example.com>\r\n"));
	cr_assert_null(strstr(b.data, "List-Unsubscribe-Post"));
	buf_free(&b);
}

Test(msg, list_unsubscribe_bad_uris_refused)
{
	static const char *const bad[] = { "http://u.example/x",
		"https://u.example/a b", "https://u.example/a>b",
		"https://u.example/\r\nX-Evil: 1", "https://u.example/a,b",
		"javascript:alert(1)", "" };
	struct msg_input in = msg_test_input();
	struct buf	 b;

	buf_init(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in.unsub_url = bad[i];
		cr_assert_eq(msg_build(&b, &in), -EINVAL, "%s", bad[i]);
		cr_assert_eq(b.len, 0);
	}
	in.unsub_url = NULL;
	in.unsub_mailto = "mailto:a@b>\r\nBcc: x@y";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	buf_free(&b);
}

Test(msg, generated_headers_shadow_extra_ones)
{
	struct msg_header hdrs[] = {
		{ "List-Unsubscribe", "<mailto:old@example.com>" },
		{ "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" },
		{ "Feedback-ID", "old:id" },
		{ "X-Campaign", "spring" },
	};
	struct msg_input in = msg_test_input();
	struct buf	 b;
	char		*v;

	in.headers = hdrs;
	in.nheaders = 4;
	buf_init(&b);
	/* Without generated values the extra headers are written. */
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_not_null(strstr(b.data, "old@example.com"));
	buf_reset(&b);
	in.unsub_url = "https://u.example/u/T";
	in.feedback_id = "spring:shop:news:rm";
	cr_assert_eq(msg_build(&b, &in), 0);
	cr_assert_null(strstr(b.data, "old@example.com"));
	cr_assert_null(strstr(b.data, "old:id"));
	cr_assert_not_null(strstr(b.data, "X-Campaign: spring\r\n"));
	v = msg_test_header(&b, "Feedback-ID");
	cr_assert_str_eq(v, "spring:shop:news:rm");
	free(v);
	cr_assert_eq(strstr(strstr(b.data, "List-Unsubscribe-Post") + 1,
	    "List-Unsubscribe-Post"), NULL, "one Post header only");
	in.feedback_id = "a b";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	buf_free(&b);
}

/* Decode base64 lines of at most 76 characters up to the next "--". */
static void
msg_test_b64_decode(const char *s, struct buf *out)
{
	int	 q[4], k = 0;
	size_t	 line = 0;

	buf_init(out);
	for (; *s != '\0' && !(s[0] == '-' && s[1] == '-'); s++) {
		if (*s == '\r') {
			cr_assert_eq(s[1], '\n');
			cr_assert(line <= 76, "base64 line of %zu", line);
			line = 0;
			s++;
			continue;
		}
		line++;
		q[k++] = *s == '=' ? -1 : msg_test_b64val(*s);
		cr_assert(*s == '=' || q[k - 1] >= 0, "bad b64 0x%02x", *s);
		if (k == 4) {
			buf_putc(out, (char)(q[0] << 2 | q[1] >> 4));
			if (q[2] >= 0)
				buf_putc(out, (char)((q[1] & 15) << 4 | q[2] >> 2));
			if (q[3] >= 0)
				buf_putc(out, (char)((q[2] & 3) << 6 | q[3]));
			k = 0;
		}
	}
	cr_assert_eq(k, 0);
}

Test(msg, attachments_mixed_related_base64)
{
	static char	 pdf[1000], png[57];
	struct msg_attachment att[] = {
		{ "report.pdf", "application/pdf", pdf, sizeof(pdf), NULL },
		{ "logo.png", "image/png", png, sizeof(png), "logo" },
	};
	struct msg_input in = msg_test_input();
	struct buf	 b, dec;
	const char	*p;

	for (size_t i = 0; i < sizeof(pdf); i++)
		pdf[i] = (char)(i * 7);
	for (size_t i = 0; i < sizeof(png); i++)
		png[i] = (char)(255 - i);
	in.html = "<p>Hi <img src=\"cid:logo\"></p>\r\n";
	in.htmllen = strlen(in.html);
	in.attachments = att;
	in.nattachments = 2;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	p = strstr(b.data, "Content-Type: multipart/mixed;");
	cr_assert_not_null(p);
	cr_assert_not_null(strstr(p, "multipart/alternative;"));
	cr_assert_not_null(strstr(p, "Content-Type: multipart/related;\r\n"
	    " type=\"text/html\";"));
	cr_assert_not_null(strstr(p, "Content-ID: <logo>\r\n"));
	cr_assert_not_null(strstr(p, "Content-Disposition: inline;\r\n"
	    " filename=\"logo.png\""));
	p = strstr(b.data, "Content-Disposition: attachment;\r\n"
	    " filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64"
	    "\r\n\r\n");
	cr_assert_not_null(p);
	msg_test_b64_decode(strstr(p, "\r\n\r\n") + 4, &dec);
	cr_assert_eq(dec.len, sizeof(pdf));
	cr_assert(memcmp(dec.data, pdf, sizeof(pdf)) == 0);
	buf_free(&dec);
	p = strstr(b.data, "Content-ID: <logo>\r\n\r\n");
	msg_test_b64_decode(p + strlen("Content-ID: <logo>\r\n\r\n"), &dec);
	cr_assert_eq(dec.len, sizeof(png));
	cr_assert(memcmp(dec.data, png, sizeof(png)) == 0);
	buf_free(&dec);
	buf_free(&b);
}

Test(msg, attachment_non_ascii_filename_rfc2231)
{
	struct msg_attachment att[] = {
		{ "Rechnung für März – sehr langer Dateiname, der umbrochen "
		  "werden muss.pdf", "application/pdf", "x", 1, NULL },
		{ "a\"b\\c.txt", "text/plain", "", 0, NULL },
	};
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.attachments = att;
	in.nattachments = 2;
	buf_init(&b);
	cr_assert_eq(msg_build(&b, &in), 0);
	msg_test_check_lines(&b, 78);
	cr_assert_not_null(strstr(b.data,
	    " filename*0*=utf-8''Rechnung%20f%C3%BCr%20M%C3%A4rz"));
	cr_assert_not_null(strstr(b.data, " filename*1*="));
	cr_assert_not_null(strstr(b.data, " filename=\"a\\\"b\\\\c.txt\""));
	/* Text alone plus attachments: mixed, no alternative. */
	cr_assert_null(strstr(b.data, "multipart/alternative"));
	buf_free(&b);
}

Test(msg, attachment_bad_fields_refused)
{
	struct msg_attachment att = { "a.pdf", "application/pdf", "x", 1,
		NULL };
	struct msg_input in = msg_test_input();
	struct buf	 b;

	in.attachments = &att;
	in.nattachments = 1;
	buf_init(&b);
	att.content_type = "application/pdf\r\nX-Evil: 1";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	att.content_type = "pdf";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	att.content_type = "application/pdf";
	att.filename = "a\r\nb.pdf";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	att.filename = "a.pdf";
	att.content_id = "lo>go";
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	att.content_id = NULL;
	in.nattachments = MSG_ATTACH_MAX + 1;
	cr_assert_eq(msg_build(&b, &in), -EINVAL);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}

Test(msg, attachment_boundary_never_in_content)
{
	struct msg_attachment att = { "a.bin", "application/octet-stream",
		"\0\1\2", 3, NULL };
	struct msg_input in = msg_test_input();
	struct buf	 b, text;
	const char	*p, *e;
	char		 bnd[64];
	int		 round;

	/* Feed the message its own boundaries as 7bit text, twice over. */
	buf_init(&text);
	buf_init(&b);
	in.attachments = &att;
	in.nattachments = 1;
	for (round = 0; round < 12; round++) {
		in.text = text.len ? text.data : "x\r\n";
		in.textlen = text.len ? text.len : 3;
		buf_reset(&b);
		cr_assert_eq(msg_build(&b, &in), 0);
		p = strstr(b.data, "boundary=\"");
		cr_assert_not_null(p);
		p += 10;
		e = strchr(p, '"');
		cr_assert((size_t)(e - p) < sizeof(bnd) - 1);
		memcpy(bnd, p, (size_t)(e - p));
		bnd[e - p] = '\0';
		/* The boundary occurs only in delimiter lines. */
		for (p = strstr(b.data, bnd); p != NULL;
		    p = strstr(p + 1, bnd))
			cr_assert(p[-1] == '"' || (p[-1] == '-' &&
			    p[-2] == '-' && p[-3] == '\n'), "clash: %s", bnd);
		buf_printf(&text, "--%s\r\n", bnd);
	}
	buf_free(&text);
	buf_free(&b);
}

/* ---- fast path: prepared segments and text_enc / html_enc ------------- */

/* Encode s as one segment with msg_enc_*, as tpl_render_mime does. */
static void
msg_test_encode(const char *s, struct buf *store, struct buf *out,
    struct msg_encoded *res)
{
	struct msg_seg	 sg;
	struct msg_enc	 e;
	int		 qp, r;

	buf_reset(store);
	buf_puts(store, s);
	cr_assert_eq(msg_seg_make(store, 0, strlen(s), &sg), 0);
	for (qp = 0; qp < 2; qp++) {
		msg_enc_begin(&e, out, qp);
		cr_assert_eq(msg_enc_seg(&e, store->data, &sg), 0);
		if ((r = msg_enc_end(&e, res)) == 0)
			return;
		cr_assert_eq(r, 1);
	}
	cr_assert_fail("no encoding fits");
}

/* The boundary of a built multipart message (a static copy). */
static const char *
msg_test_boundary(const struct buf *b)
{
	static char	 bnd[64];
	const char	*p = strstr(b->data, "boundary=\"");

	cr_assert_not_null(p);
	p += 10;
	cr_assert(strchr(p, '"') - p < (long)sizeof(bnd));
	memcpy(bnd, p, (size_t)(strchr(p, '"') - p));
	bnd[strchr(p, '"') - p] = '\0';
	return bnd;
}

Test(msg, enc_boundary_clash_matches_plain)
{
	struct msg_input in = msg_test_input();
	struct msg_encoded enc;
	struct buf	 text, store, out, m1, m2;
	int		 round;

	/*
	 * A text that holds the boundary msg_build picks, then that one and
	 * the next, ...: after MSG_BOUNDARY_TRIES clashes every part is QP.
	 * At each step the prepared 7bit body must give the same message as
	 * the raw text (it has to notice "=_" and look).
	 */
	buf_init(&text);
	buf_init(&store);
	buf_init(&out);
	buf_init(&m1);
	buf_init(&m2);
	buf_puts(&text, "start\n");
	in.html = "<p>x</p>";
	in.htmllen = 8;
	for (round = 0; round < 10; round++) {
		in.text = text.data;
		in.textlen = text.len;
		in.text_enc = NULL;
		buf_reset(&m1);
		cr_assert_eq(msg_build(&m1, &in), 0);
		buf_reset(&out);
		msg_test_encode(text.data, &store, &out, &enc);
		cr_assert_eq(enc.qp, 0);
		cr_assert_eq(enc.bnd, round > 0);
		in.text = NULL;
		in.text_enc = &enc;
		buf_reset(&m2);
		cr_assert_eq(msg_build(&m2, &in), 0);
		cr_assert_str_eq(m1.data, m2.data, "round %d", round);
		buf_puts(&text, "--");
		buf_puts(&text, msg_test_boundary(&m1));
		buf_puts(&text, "\n");
	}
	/* By now the text part had to become QP. */
	cr_assert_not_null(strstr(m1.data, "quoted-printable"));
	buf_free(&text);
	buf_free(&store);
	buf_free(&out);
	buf_free(&m1);
	buf_free(&m2);
}

Test(msg, enc_segments_join_like_raw_text)
{
	static const char *const pieces[] = { "a \r", "\n", "b=", "_c ",
		"\n\xc3\xa4", "", " end" };
	struct msg_input in = msg_test_input();
	struct msg_seg	 sg[7];
	struct msg_encoded enc;
	struct msg_enc	 e;
	struct buf	 store, out, raw, m1, m2;
	size_t		 i, off;
	int		 qp = 0, r;

	buf_init(&store);
	buf_init(&out);
	buf_init(&raw);
	buf_init(&m1);
	buf_init(&m2);
	for (i = 0; i < 7; i++) {
		off = store.len;
		buf_puts(&store, pieces[i]);
		buf_puts(&raw, pieces[i]);
		cr_assert_eq(msg_seg_make(&store, off, strlen(pieces[i]),
		    &sg[i]), 0);
	}
	cr_assert(sg[0].flags & MSG_SEG_CR1);
	cr_assert(sg[1].flags & MSG_SEG_LF0);
	cr_assert(sg[4].flags & MSG_SEG_8BIT);
	cr_assert_eq(sg[5].raw, 0);
	for (;; qp = !qp) {
		msg_enc_begin(&e, &out, qp);
		for (i = 0; i < 7; i++)
			cr_assert_eq(msg_enc_seg(&e, store.data, &sg[i]), 0);
		if ((r = msg_enc_end(&e, &enc)) == 0)
			break;
		cr_assert_eq(r, 1);
		cr_assert_eq(qp, 0, "QP must fit 8-bit text");
	}
	cr_assert_eq(enc.qp, 1);
	/* CR then LF across two segments is one line end. */
	cr_assert_str_eq(out.data, "a=20\r\nb=3D_c=20\r\n=C3=A4 end");
	in.text = raw.data;
	in.textlen = raw.len;
	cr_assert_eq(msg_build(&m1, &in), 0);
	in.text = NULL;
	in.text_enc = &enc;
	cr_assert_eq(msg_build(&m2, &in), 0);
	cr_assert_str_eq(m1.data, m2.data);
	buf_free(&store);
	buf_free(&out);
	buf_free(&raw);
	buf_free(&m1);
	buf_free(&m2);
}
