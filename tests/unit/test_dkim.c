#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/buf.h"
#include "mail/dkim.h"

/* Keys are made once per process (RSA key generation is slow). */
static char	 dkim_dir[64];
static char	 rsa_path[128], ed_path[128];

static void
write_key(const char *path, EVP_PKEY *pk, int pub)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	if (pub)
		cr_assert_eq(PEM_write_PUBKEY(f, pk), 1);
	else
		cr_assert_eq(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL,
		    NULL), 1);
	fclose(f);
}

static void
make_keys(void)
{
	EVP_PKEY *pk;

	if (dkim_dir[0] != '\0')
		return;
	snprintf(dkim_dir, sizeof(dkim_dir), "/tmp/test_dkim.XXXXXX");
	cr_assert_not_null(mkdtemp(dkim_dir));
	snprintf(rsa_path, sizeof(rsa_path), "%s/rsa.pem", dkim_dir);
	snprintf(ed_path, sizeof(ed_path), "%s/ed.pem", dkim_dir);
	cr_assert_not_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
	    (size_t)2048));
	write_key(rsa_path, pk, 0);
	EVP_PKEY_free(pk);
	cr_assert_not_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	write_key(ed_path, pk, 0);
	EVP_PKEY_free(pk);
}

static void
rm_keys(void)
{
	char p[192];

	if (dkim_dir[0] == '\0')
		return;
	for (const char *const *n = (const char *const[]){ "rsa.pem",
	    "ed.pem", "small.pem", "ec.pem", "pub.pem", "junk.pem", NULL };
	    *n != NULL; n++) {
		snprintf(p, sizeof(p), "%s/%s", dkim_dir, *n);
		unlink(p);
	}
	rmdir(dkim_dir);
	dkim_dir[0] = '\0';
}

static struct dkim_key *
load(const char *path)
{
	char		 err[256] = "";
	struct dkim_key	*k = dkim_key_load(path, "example.com", "sel", err,
	    sizeof(err));

	cr_assert_not_null(k, "load %s: %s", path, err);
	return k;
}

static void
canon_h(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b);
	cr_assert_eq(dkim_canon_header(in, strlen(in), &b), 0);
	cr_assert_str_eq(b.data != NULL ? b.data : "", want, "for [%s]", in);
	buf_free(&b);
}

static void
canon_b(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b);
	cr_assert_eq(dkim_canon_body(in, strlen(in), &b), 0);
	cr_assert_str_eq(b.data != NULL ? b.data : "", want, "for [%s]", in);
	buf_free(&b);
}

/* RFC 6376 3.4.5, the relaxed example. */
Test(dkim, rfc6376_example_headers)
{
	canon_h("A: X\r\n", "a:X\r\n");
	canon_h("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
}

Test(dkim, rfc6376_example_body)
{
	canon_b(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

Test(dkim, header_canon_cases)
{
	canon_h("SUBJECT:hello", "subject:hello\r\n");
	canon_h("Subject:\r\n   folded\r\n\tline  ", "subject:folded line\r\n");
	canon_h("X:  a \t b  c\t", "x:a b c\r\n");
	canon_h("To:\t\r\n", "to:\r\n");
	canon_h("X: a\rb", "x:a\rb\r\n");	/* a lone CR is text */
	canon_h("X: caf\xc3\xa9  \xe2\x9c\x93", "x:caf\xc3\xa9 \xe2\x9c\x93\r\n");
	canon_h("From: a\n b\n", "from:a b\r\n");
}

Test(dkim, header_without_colon_is_rejected)
{
	struct buf b;

	buf_init(&b);
	cr_assert_eq(dkim_canon_header("nocolon", 7, &b), -EINVAL);
	buf_free(&b);
}

Test(dkim, body_canon_cases)
{
	canon_b("", "");
	canon_b("\r\n", "");
	canon_b("\r\n\r\n \t \r\n", "");
	canon_b("abc", "abc\r\n");
	canon_b("abc  ", "abc\r\n");
	canon_b("a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n");
	canon_b("\r\n\r\nx", "\r\n\r\nx\r\n");
	canon_b("  lead\t\tmid  end \r\n", " lead mid end\r\n");
	canon_b("lf\nonly\n\n", "lf\r\nonly\r\n");
	canon_b("bare\rcr\r\n", "bare\rcr\r\n");
	/* More deferred line ends than one constant block holds. */
	{
		char	in[200], want[200];
		size_t	n = 0;

		in[n++] = 'a';
		for (int i = 0; i < 40; i++) {
			in[n++] = '\r';
			in[n++] = '\n';
		}
		in[n++] = 'b';
		in[n] = '\0';
		memcpy(want, in, n);
		want[n++] = '\r';
		want[n++] = '\n';
		want[n] = '\0';
		canon_b(in, want);
	}
}

/*
 * RFC 6376 3.4.4 done the slow, obvious way (line by line, byte by
 * byte), to hold the fast canonicaliser to.
 */
static void
ref_body(const char *s, size_t n, struct buf *out)
{
	size_t i = 0, keep = 0;

	while (i < n) {
		size_t	j = i, end;
		bool	wsp = false;

		while (j < n && s[j] != '\n' &&
		    !(s[j] == '\r' && j + 1 < n && s[j + 1] == '\n'))
			j++;
		end = j;
		while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		for (size_t k = i; k < end; k++) {
			if (s[k] == ' ' || s[k] == '\t') {
				wsp = true;
				continue;
			}
			if (wsp)
				buf_putc(out, ' ');
			wsp = false;
			buf_putc(out, s[k]);
		}
		buf_append(out, "\r\n", 2);
		if (end > i)
			keep = out->len;
		i = j < n ? j + (s[j] == '\r' ? 2 : 1) : n;
	}
	out->len = keep;
	if (out->data != NULL)
		out->data[keep] = '\0';
}

/* The input in a heap block of exactly n bytes, for ASan to bound. */
static void
canon_b_ref(const char *in, size_t n)
{
	struct buf	 a, b;
	char		*copy = malloc(n > 0 ? n : 1);

	cr_assert_not_null(copy);
	memcpy(copy, in, n);
	buf_init(&a);
	buf_init(&b);
	cr_assert_eq(dkim_canon_body(copy, n, &a), 0);
	ref_body(in, n, &b);
	cr_assert_eq(a.len, b.len, "length %zu, want %zu", a.len, b.len);
	cr_assert(a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
	buf_free(&a);
	buf_free(&b);
	free(copy);
}

/*
 * The run search looks at 16 (SSE2) or 8 (SWAR) bytes a step: put each
 * kind of WSP run at every offset across those steps, and at the ends.
 */
Test(dkim, body_canon_runs_at_every_offset)
{
	static const char *const runs[] = { "  ", "\t", " \t", "\t ",
	    "   ", " ", "\r", " \r", "\r " };
	char line[80];

	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
		size_t rl = strlen(runs[r]);

		for (size_t len = 1; len < 48; len++) {
			for (size_t at = 0; at <= len; at++) {
				memset(line, 'x', len);
				memcpy(line + at, runs[r], rl);
				memset(line + at + rl, 'y', len - at);
				memcpy(line + len + rl, "\r\nz\r\n", 5);
				canon_b_ref(line, len + rl + 5);
				canon_b_ref(line, len + rl + 2);
				canon_b_ref(line, len + rl);
			}
		}
	}
}

/* Many small bodies over the awkward bytes, against the reference. */
Test(dkim, body_canon_matches_reference)
{
	static const char alpha[] = { 'a', 'b', ' ', '\t', '\r', '\n' };
	char		 in[600];
	uint32_t	 x = 12345;

	for (int iter = 0; iter < 20000; iter++) {
		size_t n;

		x = x * 1103515245u + 12345u;
		n = (x >> 8) % sizeof(in);
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			/* Mostly text, so long lines and long spans occur. */
			in[i] = (x >> 16) % 4 != 0 ? 'a' :
			    alpha[(x >> 20) % sizeof(alpha)];
		}
		canon_b_ref(in, n);
	}
}

/*
 * RFC 6376 3.4.2 on a header value the slow way, byte by byte: breaks
 * (WSP, LF, CR before LF) end a word; a run of them is one SP when it
 * holds WSP and lies between words.
 */
static void
ref_value(const char *v, size_t n, struct buf *out)
{
	bool pending = false, any = false, inword = false;

	for (size_t i = 0; i < n; i++) {
		char	c = v[i];
		bool	brk = c == ' ' || c == '\t' || c == '\n' ||
		    (c == '\r' && i + 1 < n && v[i + 1] == '\n');

		if (brk) {
			if (inword)
				any = true;
			inword = false;
			if (c == ' ' || c == '\t')
				pending = true;
			continue;
		}
		if (!inword && pending && any)
			buf_putc(out, ' ');
		if (!inword)
			pending = false;
		inword = true;
		buf_putc(out, c);
	}
}

/* Random header values against the reference, at every SIMD offset. */
Test(dkim, header_canon_matches_reference)
{
	static const char alpha[] = { 'a', 'Z', ' ', '\t', '\r', '\n', ':' };
	char		 in[200];
	uint32_t	 x = 777;

	for (int iter = 0; iter < 20000; iter++) {
		struct buf	 a, b;
		size_t		 n, vn;
		char		*copy;

		x = x * 1103515245u + 12345u;
		vn = (x >> 8) % (sizeof(in) - 3);
		memcpy(in, "X-Y:", 4);
		for (size_t i = 0; i < vn; i++) {
			x = x * 1103515245u + 12345u;
			in[4 + i] = (x >> 16) % 3 != 0 ? 'a' :
			    alpha[(x >> 20) % sizeof(alpha)];
		}
		n = 4 + vn;
		/* dkim_canon_header() takes off one final line end first. */
		if (n > 4 && in[n - 1] == '\n')
			n--;
		if (n > 4 && in[n - 1] == '\r' && n == 4 + vn - 1)
			n--;
		cr_assert_not_null(copy = malloc(n));
		memcpy(copy, in, n);
		buf_init(&a);
		buf_init(&b);
		cr_assert_eq(dkim_canon_header(copy, n, &a), 0);
		buf_puts(&b, "x-y:");
		ref_value(in + 4, n - 4, &b);
		buf_puts(&b, "\r\n");
		cr_assert_eq(a.len, b.len, "[%.*s]: [%s], want [%s]", (int)n,
		    in, a.data, b.data);
		cr_assert(memcmp(a.data, b.data, a.len) == 0,
		    "[%.*s]: [%s], want [%s]", (int)n, in, a.data, b.data);
		buf_free(&a);
		buf_free(&b);
		free(copy);
	}
}

/* bh= of "<body>" with "From: a@example.com" over it. */
static void
check_bh(const struct dkim_key *k, const char *body, size_t n)
{
	struct buf	 msg, canon, out;
	unsigned char	 md[32];
	char		 want[64], *bh;
	unsigned int	 mdlen = 0;

	buf_init(&msg);
	buf_init(&canon);
	buf_init(&out);
	buf_puts(&msg, "From: a@example.com\r\n\r\n");
	buf_append(&msg, body, n);
	cr_assert_eq(dkim_canon_body(body, n, &canon), 0);
	cr_assert_eq(EVP_Digest(canon.len > 0 ? canon.data : "", canon.len,
	    md, &mdlen, EVP_sha256(), NULL), 1);
	EVP_EncodeBlock((unsigned char *)want, md, 32);
	cr_assert_eq(dkim_sign(k, msg.data, msg.len, 1, &out), 0);
	cr_assert_not_null(bh = strstr(out.data, "bh="));
	cr_assert_eq(strncmp(bh + 3, want, 44), 0, "bh= %.44s, want %s",
	    bh + 3, want);
	buf_free(&msg);
	buf_free(&canon);
	buf_free(&out);
}

/*
 * Signing hashes through a staging buffer and hashes long spans in
 * place; the tests above read the canonical form through a buf. Both
 * must give the same bytes: short pieces that fill the stage many
 * times over, long clean spans, a mix, and empty lines between.
 */
Test(dkim, body_hash_equals_canonical_form, .init = make_keys,
    .fini = rm_keys)
{
	struct dkim_key	*k = load(ed_path);
	struct buf	 b;

	buf_init(&b);
	check_bh(k, "", 0);
	check_bh(k, "x", 1);
	for (int i = 0; i < 400; i++)		/* pieces: 2 per line */
		buf_puts(&b, "a  b \r\n");
	check_bh(k, b.data, b.len);
	buf_reset(&b);
	for (int i = 0; i < 300; i++)		/* one clean span */
		buf_puts(&b, "Hello there, a clean line of text.\r\n");
	check_bh(k, b.data, b.len);
	buf_reset(&b);
	for (int i = 0; i < 300; i++) {		/* both, and blank lines */
		buf_puts(&b, i % 7 == 0 ? "x\t y\r\n\r\n\r\n" :
		    "Hello there, a clean line of text.\r\n");
		if (i % 50 == 0)
			for (int j = 0; j < 300; j++)
				buf_putc(&b, (char)('a' + j % 26));
	}
	buf_puts(&b, "\r\n\r\n  \r\n");
	check_bh(k, b.data, b.len);
	buf_free(&b);
	dkim_key_free(k);
}

static const char msg_basic[] =
    "From: Shop <news@example.com>\r\n"
    "To: a@example.net\r\n"
    "Received: from x by y\r\n"
    "Subject: Hi\r\n"
    "List-Unsubscribe: <https://u.example/x>\r\n"
    "X-Extra: one\r\n"
    "X-Extra: two\r\n"
    "\r\n"
    "Body\r\n";

/* The h= value with folding removed. */
static void
h_tag(const char *sig, char *out, size_t outlen)
{
	const char	*p = strstr(sig, " h=");
	size_t		 n = 0;

	cr_assert_not_null(p);
	for (p += 3; *p != ';' && *p != '\0' && n + 1 < outlen; p++)
		if (*p != '\r' && *p != '\n' && *p != ' ')
			out[n++] = *p;
	out[n] = '\0';
}

Test(dkim, h_oversigning, .init = make_keys, .fini = rm_keys)
{
	struct dkim_key	*k = load(ed_path);
	struct buf	 out;
	char		 h[512];
	const char	*extra[] = { "X-Extra", "from" };

	buf_init(&out);
	cr_assert_eq(dkim_sign(k, msg_basic, strlen(msg_basic), 1700000000,
	    &out), 0);
	h_tag(out.data, h, sizeof(h));
	cr_assert_str_eq(h, "from:from:to:subject:subject:list-unsubscribe:"
	    "list-unsubscribe:list-unsubscribe-post");
	/* Extras are signed as often as they occur, never over-signed. */
	cr_assert_eq(dkim_key_add_headers(k, extra, 2, NULL, 0), 0);
	buf_reset(&out);
	cr_assert_eq(dkim_sign(k, msg_basic, strlen(msg_basic), 1700000000,
	    &out), 0);
	h_tag(out.data, h, sizeof(h));
	cr_assert_str_eq(h, "from:from:to:subject:subject:list-unsubscribe:"
	    "list-unsubscribe:list-unsubscribe-post:x-extra:x-extra");
	buf_free(&out);
	dkim_key_free(k);
}

Test(dkim, header_format_and_folding, .init = make_keys, .fini = rm_keys)
{
	const char	*paths[] = { rsa_path, ed_path };
	const char	*algs[] = { "a=rsa-sha256;", "a=ed25519-sha256;" };

	for (int i = 0; i < 2; i++) {
		struct dkim_key	*k = load(paths[i]);
		struct buf	 out;
		const char	*p, *line;

		buf_init(&out);
		cr_assert_eq(dkim_sign(k, msg_basic, strlen(msg_basic),
		    1700000000, &out), 0);
		cr_assert_eq(strncmp(out.data, "DKIM-Signature: v=1; ", 21), 0);
		cr_assert_not_null(strstr(out.data, algs[i]));
		cr_assert_not_null(strstr(out.data, " c=relaxed/relaxed;"));
		cr_assert_not_null(strstr(out.data, " d=example.com;"));
		cr_assert_not_null(strstr(out.data, " s=sel;"));
		cr_assert_not_null(strstr(out.data, " t=1700000000;"));
		cr_assert_not_null(strstr(out.data, " bh="));
		cr_assert_not_null(strstr(out.data, " b="));
		cr_assert(strstr(out.data, " b=") > strstr(out.data, " bh="));
		cr_assert_eq(out.len, strlen(out.data));
		cr_assert_eq(memcmp(out.data + out.len - 2, "\r\n", 2), 0);
		/* Every line CRLF-ended, <= 78, continuations start with SP. */
		for (line = out.data; *line != '\0'; line = p + 2) {
			p = strstr(line, "\r\n");
			cr_assert_not_null(p);
			cr_assert_leq(p - line, 78, "line %.*s", (int)(p - line),
			    line);
			cr_assert_null(memchr(line, '\n', (size_t)(p - line)));
			cr_assert_null(memchr(line, '\r', (size_t)(p - line)));
			if (line != out.data)
				cr_assert_eq(line[0], ' ');
		}
		buf_free(&out);
		dkim_key_free(k);
	}
}

Test(dkim, empty_body_hash, .init = make_keys, .fini = rm_keys)
{
	struct dkim_key	*k = load(ed_path);
	struct buf	 out;
	const char	*m = "From: a@example.com\r\n\r\n\r\n  \r\n";

	buf_init(&out);
	cr_assert_eq(dkim_sign(k, m, strlen(m), 1, &out), 0);
	/* SHA-256 of the empty string: relaxed drops all the empty lines. */
	cr_assert_not_null(strstr(out.data,
	    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"));
	buf_reset(&out);
	cr_assert_eq(dkim_sign(k, "From: a@x.example", 17, 1, &out), 0);
	cr_assert_not_null(strstr(out.data,
	    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"));
	buf_free(&out);
	dkim_key_free(k);
}

/* Both signatures are deterministic: reused contexts must not drift. */
Test(dkim, reuse_and_dup_are_deterministic, .init = make_keys,
    .fini = rm_keys)
{
	const char *paths[] = { rsa_path, ed_path };

	for (int i = 0; i < 2; i++) {
		struct dkim_key	*k = load(paths[i]), *d;
		struct buf	 a, b;

		buf_init(&a);
		buf_init(&b);
		cr_assert_eq(dkim_sign(k, msg_basic, strlen(msg_basic), 5,
		    &a), 0);
		for (int j = 0; j < 3; j++) {
			buf_reset(&b);
			cr_assert_eq(dkim_sign(k, msg_basic, strlen(msg_basic),
			    5, &b), 0);
			cr_assert_str_eq(a.data, b.data);
		}
		cr_assert_not_null(d = dkim_key_dup(k));
		buf_reset(&b);
		cr_assert_eq(dkim_sign(d, msg_basic, strlen(msg_basic), 5,
		    &b), 0);
		cr_assert_str_eq(a.data, b.data);
		/* A different message gives a different signature. */
		buf_reset(&b);
		cr_assert_eq(dkim_sign(d, msg_basic, strlen(msg_basic) - 3, 5,
		    &b), 0);
		cr_assert_str_neq(a.data, b.data);
		dkim_key_free(d);
		buf_free(&a);
		buf_free(&b);
		dkim_key_free(k);
	}
}

Test(dkim, dual_signature_appends, .init = make_keys, .fini = rm_keys)
{
	struct dkim_key	*r = load(rsa_path), *e = load(ed_path);
	struct buf	 out;
	const char	*second;

	buf_init(&out);
	cr_assert_eq(dkim_sign(r, msg_basic, strlen(msg_basic), 9, &out), 0);
	cr_assert_eq(dkim_sign(e, msg_basic, strlen(msg_basic), 9, &out), 0);
	second = strstr(out.data + 1, "\r\nDKIM-Signature: ");
	cr_assert_not_null(second);
	cr_assert_not_null(strstr(second, "a=ed25519-sha256;"));
	cr_assert_not_null(strstr(out.data, "a=rsa-sha256;"));
	buf_free(&out);
	dkim_key_free(r);
	dkim_key_free(e);
}

Test(dkim, from_required_once, .init = make_keys, .fini = rm_keys)
{
	struct dkim_key	*k = load(ed_path);
	struct buf	 out;
	const char	*none = "To: a@example.net\r\n\r\nx\r\n";
	const char	*two = "From: a@x.example\r\nfrom: b@x.example\r\n\r\n";
	const char	*folded = "X: a\r\n From: b@x.example\r\n\r\n";

	buf_init(&out);
	buf_puts(&out, "keep");
	cr_assert_eq(dkim_sign(k, none, strlen(none), 1, &out), -EINVAL);
	cr_assert_eq(dkim_sign(k, two, strlen(two), 1, &out), -EINVAL);
	/* A continuation line is not a From field. */
	cr_assert_eq(dkim_sign(k, folded, strlen(folded), 1, &out), -EINVAL);
	/* A From in the body is not a header. */
	cr_assert_eq(dkim_sign(k, "\r\nFrom: a@x.example\r\n", 21, 1, &out),
	    -EINVAL);
	cr_assert_str_eq(out.data, "keep");
	cr_assert_eq(out.len, 4);
	buf_free(&out);
	dkim_key_free(k);
}

Test(dkim, too_many_signed_instances, .init = make_keys, .fini = rm_keys)
{
	struct dkim_key	*k = load(ed_path);
	struct buf	 msg, out;

	buf_init(&msg);
	buf_init(&out);
	buf_puts(&msg, "From: a@x.example\r\n");
	for (int i = 0; i < DKIM_SIGNED_MAX + 1; i++)
		buf_puts(&msg, "To: b@x.example\r\n");
	buf_puts(&msg, "\r\n");
	cr_assert_eq(dkim_sign(k, msg.data, msg.len, 1, &out), -E2BIG);
	cr_assert_eq(out.len, 0);
	buf_free(&msg);
	buf_free(&out);
	dkim_key_free(k);
}

Test(dkim, add_headers_validation, .init = make_keys, .fini = rm_keys)
{
	struct dkim_key	*k = load(ed_path);
	char		 err[256];
	const char	*bad1[] = { "X Space" };
	const char	*bad2[] = { "DKIM-Signature" };
	const char	*bad3[] = { "" };
	const char	*many[DKIM_HEADERS_MAX];
	char		 names[DKIM_HEADERS_MAX][16];

	cr_assert_eq(dkim_key_add_headers(k, bad1, 1, err, sizeof(err)),
	    -EINVAL);
	cr_assert_not_null(strstr(err, "not a header name"));
	cr_assert_eq(dkim_key_add_headers(k, bad2, 1, err, sizeof(err)),
	    -EINVAL);
	cr_assert_eq(dkim_key_add_headers(k, bad3, 1, err, sizeof(err)),
	    -EINVAL);
	for (int i = 0; i < DKIM_HEADERS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "X-H%d", i);
		many[i] = names[i];
	}
	cr_assert_eq(dkim_key_add_headers(k, many, DKIM_HEADERS_MAX, err,
	    sizeof(err)), -E2BIG);
	dkim_key_free(k);
}

static void
load_err(const char *path, const char *want)
{
	char err[512] = "";

	cr_assert_null(dkim_key_load(path, "example.com", "sel", err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, want), "got '%s'", err);
}

Test(dkim, key_load_errors, .init = make_keys, .fini = rm_keys)
{
	char		 p[192], err[256];
	EVP_PKEY	*pk;
	FILE		*f;

	snprintf(p, sizeof(p), "%s/missing.pem", dkim_dir);
	load_err(p, "No such file or directory");
	load_err(dkim_dir, "not a regular file");

	snprintf(p, sizeof(p), "%s/small.pem", dkim_dir);
	cr_assert_not_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
	    (size_t)1024));
	write_key(p, pk, 0);
	EVP_PKEY_free(pk);
	load_err(p, "RSA key has 1024 bits");

	snprintf(p, sizeof(p), "%s/ec.pem", dkim_dir);
	cr_assert_not_null(pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	write_key(p, pk, 0);
	load_err(p, "EC key; DKIM needs RSA or Ed25519");
	snprintf(p, sizeof(p), "%s/pub.pem", dkim_dir);
	write_key(p, pk, 1);
	EVP_PKEY_free(pk);
	load_err(p, "(this is a public key)");

	snprintf(p, sizeof(p), "%s/junk.pem", dkim_dir);
	cr_assert_not_null(f = fopen(p, "w"));
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64\n", f);
	fclose(f);
	load_err(p, "not a PEM private key");

	cr_assert_null(dkim_key_load(ed_path, "bad domain", "sel", err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, "bad DKIM domain"));
	cr_assert_null(dkim_key_load(ed_path, "example.com", "s;x", err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, "bad DKIM selector"));
	cr_assert_null(dkim_key_load(ed_path, "example.com", "", err,
	    sizeof(err)));
}

Test(dkim, algorithm_detected_and_dns_record, .init = make_keys,
    .fini = rm_keys)
{
	struct dkim_key	*r = load(rsa_path), *e = load(ed_path);
	struct buf	 b;

	cr_assert_eq(dkim_key_alg(r), DKIM_ALG_RSA_SHA256);
	cr_assert_eq(dkim_key_alg(e), DKIM_ALG_ED25519_SHA256);
	cr_assert_str_eq(dkim_key_domain(r), "example.com");
	cr_assert_str_eq(dkim_key_selector(e), "sel");
	buf_init(&b);
	cr_assert_eq(dkim_key_dns_txt(e, &b), 0);
	cr_assert_eq(strncmp(b.data, "v=DKIM1; k=ed25519; p=", 22), 0);
	cr_assert_eq(b.len, 22 + 44);	/* 32 raw bytes in base64 */
	buf_reset(&b);
	cr_assert_eq(dkim_key_dns_txt(r, &b), 0);
	/* SPKI of a 2048-bit key: 294 bytes, 392 base64 characters. */
	cr_assert_eq(strncmp(b.data, "v=DKIM1; k=rsa; p=MIIBIjAN", 26), 0);
	cr_assert_eq(b.len, 18 + 392);
	buf_free(&b);
	dkim_key_free(r);
	dkim_key_free(e);
}

/* Every line within 78 columns whatever the h= length (fold positions). */
Test(dkim, folding_at_every_column, .init = make_keys, .fini = rm_keys)
{
	const char	*m = "From: a@example.com\r\nSubject: a\r\nSubject: b\r\n"
	    "To: x@example.net\r\nCc: y@example.net\r\n\r\nbody\r\n";
	char		 sel[64], err[256], h[256];

	for (int n = 1; n <= 40; n++) {
		struct dkim_key	*k;
		struct buf	 out;
		const char	*p, *line;

		memset(sel, 's', (size_t)n);
		sel[n] = '\0';
		k = dkim_key_load(ed_path, "example.com", sel, err,
		    sizeof(err));
		cr_assert_not_null(k, "%s", err);
		buf_init(&out);
		cr_assert_eq(dkim_sign(k, m, strlen(m), 1700000000, &out), 0);
		for (line = out.data; *line != '\0'; line = p + 2) {
			p = strstr(line, "\r\n");
			cr_assert_not_null(p);
			cr_assert_leq(p - line, 78, "selector %d: %.*s", n,
			    (int)(p - line), line);
		}
		h_tag(out.data, h, sizeof(h));
		cr_assert_str_eq(h, "from:from:to:cc:subject:subject:subject:"
		    "list-unsubscribe:list-unsubscribe-post");
		buf_free(&out);
		dkim_key_free(k);
	}
}
