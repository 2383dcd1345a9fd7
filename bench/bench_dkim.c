/*
 * bench_dkim: what a DKIM signature costs on one core, split so that each
 * part can be held against `openssl speed` for the same algorithm:
 *
 *   sign call   the bare OpenSSL call dkim_sign() makes on the 32-byte
 *               header hash (EVP_PKEY_sign for RSA, EVP_DigestSign for
 *               Ed25519) with a reused context: what `openssl speed`
 *               times, measured here the same way as the rows below;
 *   (a) no body dkim_sign() on the headers of the test message and an
 *               empty body: the whole per-signature cost (header scan,
 *               canonicalisation, header hash, tags, base64) with no body
 *               work. This is the "signing cost" to compare with
 *               `openssl speed`;
 *   (b)         dkim_sign() on a whole message: the total DKIM cost per
 *               message, body hash included. Two messages: 10 KB of
 *               text with WSP to rewrite on every line (the worst case
 *               for relaxed canonicalisation) and the render pipeline's
 *               13 KB msg_build() MIME message (HTML + text parts, as in
 *               bench/bench_render.c);
 *   (c) body    SHA-256 of the same body bytes in one EVP call: the part
 *               of (b) - (a) no signer can avoid (`openssl speed -evp
 *               sha256` does this work; the sign rows do not).
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), as `openssl
 * speed` divides by user CPU time, so time lost to other processes on a
 * shared machine is not counted. The machine is shared: each row is run
 * in ROUNDS short rounds, interleaved with the other rows, and the best
 * round is reported (the median beside it). OpenSSL allocations per
 * operation are counted with CRYPTO_set_mem_functions.
 *
 * bench/bench_dkim.sh builds it and passes the `openssl speed` figures
 * (best of ROUNDS runs too) so the ratios are printed beside them:
 *   build/bench_dkim RSA.pem ED25519.pem [SECONDS [ROUNDS
 *       [OSSL_RSA_SIGN_S OSSL_ED25519_SIGN_S OSSL_SHA256_BYTES_S]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lib/buf.h"
#include "mail/dkim.h"
#include "mail/msg.h"
#include "mail/token.h"

#define BENCH_ROUNDS_MAX	32
#define BENCH_PER_ALG		4	/* sign call, (a), (b) text, (b) MIME */
#define BENCH_NROW		(2 * BENCH_PER_ALG + 2)

static long bench_nalloc;

static void *
bench_malloc(size_t n, const char *f, int l)
{
	(void)f;
	(void)l;
	bench_nalloc++;
	return malloc(n);
}

static void *
bench_realloc(void *p, size_t n, const char *f, int l)
{
	(void)f;
	(void)l;
	bench_nalloc++;
	return realloc(p, n);
}

static void
bench_free(void *p, const char *f, int l)
{
	(void)f;
	(void)l;
	free(p);
}

/* CPU time of this thread, like `openssl speed` (user time) by default. */
static double
bench_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 10 KB message as msg_build makes them: headers and a text body. */
static void
bench_message(struct buf *m)
{
	buf_puts(m, "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
	    "Message-ID: <20261127100000.abc123@shop.example>\r\n"
	    "From: Shop <news@shop.example>\r\n"
	    "To: alice@example.net\r\n"
	    "Subject: =?UTF-8?B?w4ljaGFudGlsbG9uIGdyYXR1aXQ=?=\r\n"
	    "List-Unsubscribe: <https://unsub.example/u/AQAAAGVjYhBzcHJpbmc>,"
	    "\r\n <mailto:unsubscribe@shop.example?subject=AQAAAGVjYhBzcHJp>"
	    "\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	    "Feedback-ID: spring:shop:ringmail\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n");
	/* Double spaces and trailing WSP on every line: relaxed body
	 * canonicalisation has work to do on each (the worst case). */
	while (m->len < 10 * 1024)
		buf_puts(m, "Hello Alice, our spring sale starts today with "
		    "up to 40% off  everything in the shop.   \r\n");
}

/*
 * The render pipeline's message (bench/bench_render.c): msg_build() with
 * a 10 KB HTML part and a text part, so quoted-printable MIME.
 */
static void
bench_mime(struct buf *m)
{
	struct buf		 html, text;
	struct msg_input	 in;

	buf_init(&html);
	buf_init(&text);
	buf_puts(&html, "<!DOCTYPE html>\n<html><body>\n<table width=\"100%\">"
	    "\n");
	while (html.len < 10 * 1024)
		buf_puts(&html, "  <tr><td style=\"padding: 8px; font-family: "
		    "Arial, sans-serif;\">Hello Alice, our spring sale starts "
		    "today with up to 40% off everything.</td></tr>\n");
	buf_puts(&html, "</table></body></html>\n");
	while (text.len < 2 * 1024)
		buf_puts(&text, "Hello Alice, our spring sale starts today "
		    "with up to 40% off everything in the shop.\n");
	memset(&in, 0, sizeof(in));
	in.from = "Shop <news@shop.example>";
	in.to = "alice@example.net";
	in.subject = "Spring sale: 40% off";
	in.text = text.data;
	in.textlen = text.len;
	in.html = html.data;
	in.htmllen = html.len;
	in.msgid_domain = "shop.example";
	in.msgid_local = "spring.1.1.0badcafe";
	in.date_ms = 1800000000000LL;
	in.unsub_url = "https://unsub.shop.example/u/AQAAAGVjYhBzcHJpbmc";
	in.unsub_mailto = "mailto:unsubscribe@shop.example";
	in.feedback_id = "spring:shop:news:ringmail";
	if (msg_build(m, &in) != 0) {
		fprintf(stderr, "bench_dkim: msg_build failed\n");
		exit(1);
	}
	buf_free(&html);
	buf_free(&text);
}

enum bench_kind {
	BENCH_SIGCALL,		/* the bare OpenSSL signature call */
	BENCH_DKIM,		/* dkim_sign() on msg[0..len) */
	BENCH_SHA256,		/* one EVP_Digest over msg[0..len) */
};

struct bench_row {
	const char	*label;
	enum bench_kind	 kind;
	struct dkim_key	*key;		/* BENCH_DKIM: borrows */
	EVP_PKEY_CTX	*rsa;		/* BENCH_SIGCALL, RSA: owns */
	EVP_MD_CTX	*ed;		/* BENCH_SIGCALL, Ed25519: owns */
	const char	*msg;		/* borrows */
	size_t		 len;
	double		 us[BENCH_ROUNDS_MAX];	/* per op, each round */
	double		 allocs;	/* per op, last round */
};

static struct dkim_key *
bench_key(const char *path)
{
	struct dkim_key	*k;
	char		 err[256];

	if ((k = dkim_key_load(path, "shop.example", "s1", err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "bench_dkim: %s\n", err);
		exit(1);
	}
	return k;
}

/* The context dkim.c keeps for the key, set up the same way. */
static void
bench_sigcall_init(struct bench_row *r, const char *path)
{
	EVP_PKEY	*pk;
	FILE		*f;

	if ((f = fopen(path, "r")) == NULL ||
	    (pk = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "bench_dkim: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	if (EVP_PKEY_is_a(pk, "RSA")) {
		if ((r->rsa = EVP_PKEY_CTX_new_from_pkey(NULL, pk,
		    NULL)) == NULL || EVP_PKEY_sign_init(r->rsa) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(r->rsa,
		    RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(r->rsa, EVP_sha256()) != 1)
			exit(1);
	} else if ((r->ed = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit_ex(r->ed, NULL, NULL, NULL, NULL, pk,
	    NULL) != 1) {
		exit(1);
	}
	EVP_PKEY_free(pk);
}

static int
bench_op(struct bench_row *r, struct buf *out)
{
	static const unsigned char hh[32] = { 1, 2, 3, 4 };
	unsigned char	 sig[DKIM_RSA_MAX_BITS / 8], md[32];
	size_t		 siglen = sizeof(sig);

	switch (r->kind) {
	case BENCH_SIGCALL:
		if (r->rsa != NULL)
			return EVP_PKEY_sign(r->rsa, sig, &siglen, hh, 32) ==
			    1 ? 0 : -1;
		return EVP_DigestSign(r->ed, sig, &siglen, hh, 32) == 1 ? 0 :
		    -1;
	case BENCH_DKIM:
		buf_reset(out);
		return dkim_sign(r->key, r->msg, r->len, 1700000000, out);
	case BENCH_SHA256:
		return EVP_Digest(r->msg, r->len, md, NULL, EVP_sha256(),
		    NULL) == 1 ? 0 : -1;
	}
	return -1;
}

/* One round of about secs CPU seconds. */
static void
bench_round(struct bench_row *r, int round, double secs, struct buf *out)
{
	double	t0, t;
	long	n = 0, a0;

	for (int i = 0; i < 5; i++)		/* warm-up */
		if (bench_op(r, out) != 0) {
			fprintf(stderr, "bench_dkim: %s failed\n", r->label);
			exit(1);
		}
	a0 = bench_nalloc;
	t0 = bench_cpu();
	do {
		for (int i = 0; i < 10; i++, n++)
			(void)bench_op(r, out);
		t = bench_cpu() - t0;
	} while (t < secs);
	r->us[round] = 1e6 * t / (double)n;
	r->allocs = (double)(bench_nalloc - a0) / (double)n;
}

static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Best and median of the rounds. */
static void
bench_stats(const struct bench_row *r, int rounds, double *best,
    double *median)
{
	double v[BENCH_ROUNDS_MAX];

	memcpy(v, r->us, sizeof(double) * (size_t)rounds);
	qsort(v, (size_t)rounds, sizeof(double), bench_cmp);
	*best = v[0];
	*median = v[rounds / 2];
}

static void
bench_tokens(double secs)
{
	struct token_key	*k = token_key_new("0123456789abcdef0123456789ab",
	    28);
	char			 lp[VERP_LOCAL_BUFSZ], t[UNSUB_TOKEN_BUFSZ];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ], addr[TOKEN_ADDR_BUFSZ];
	uint32_t		 idx;
	double			 t0, el;
	long			 n = 0, a0 = bench_nalloc;

	t0 = bench_cpu();
	do {
		for (int i = 0; i < 100; i++, n++) {
			verp_encode(k, "spring-sale-2026", (uint32_t)n, lp);
			verp_decode(k, lp, strlen(lp), camp, &idx);
			unsub_token_make(k, "spring-sale-2026",
			    "alice@example.net", 1700000000, t);
			unsub_token_check(k, t, strlen(t), 1700000000, 0, camp,
			    addr);
		}
		el = bench_cpu() - t0;
	} while (el < secs);
	printf("tokens (verp enc+dec, unsub make+check) %9.0f sets/s  "
	    "%5.2f us/set  %4.1f OpenSSL allocs/set\n",
	    (double)n / el, 1e6 * el / (double)n,
	    (double)(bench_nalloc - a0) / (double)n);
	token_key_free(k);
}

/* Headers' length: up to and including the empty line. */
static size_t
bench_hlen(const struct buf *m)
{
	const char *p = strstr(m->data, "\r\n\r\n");

	return p != NULL ? (size_t)(p + 4 - m->data) : m->len;
}

int
main(int argc, char **argv)
{
	struct bench_row	 rows[BENCH_NROW];
	struct dkim_key		*key[2];
	struct buf		 m, mime, out;
	const char		*alg[2] = { "rsa-sha256", "ed25519-sha256" };
	double			 secs = argc > 3 ? atof(argv[3]) : 3.0;
	double			 ossl[2] = { 0, 0 }, ossl_sha = 0;
	double			 best[BENCH_NROW], med[BENCH_NROW];
	size_t			 hlen, mhlen;
	int			 rounds = argc > 4 ? atoi(argv[4]) : 5;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_dkim RSA.pem ED25519.pem "
		    "[SECONDS [ROUNDS [OSSL_RSA_SIGN_S OSSL_ED25519_SIGN_S "
		    "OSSL_SHA256_BYTES_S]]]\n");
		return 2;
	}
	if (rounds < 1 || rounds > BENCH_ROUNDS_MAX)
		rounds = 5;
	if (argc > 7) {
		ossl[0] = atof(argv[5]);
		ossl[1] = atof(argv[6]);
		ossl_sha = atof(argv[7]);
	}
	CRYPTO_set_mem_functions(bench_malloc, bench_realloc, bench_free);
	buf_init(&m);
	buf_init(&mime);
	buf_init(&out);
	bench_message(&m);
	bench_mime(&mime);
	hlen = bench_hlen(&m);
	mhlen = bench_hlen(&mime);
	key[0] = bench_key(argv[1]);
	key[1] = bench_key(argv[2]);

	memset(rows, 0, sizeof(rows));
	for (int a = 0; a < 2; a++) {
		struct bench_row *r = &rows[BENCH_PER_ALG * a];

		r[0].label = "sign call";
		r[0].kind = BENCH_SIGCALL;
		bench_sigcall_init(&r[0], argv[1 + a]);
		r[1].label = "(a) dkim_sign, no body";
		r[1].kind = BENCH_DKIM;
		r[1].msg = m.data;
		r[1].len = hlen;
		r[2].label = "(b) 10 KB text";
		r[2].kind = BENCH_DKIM;
		r[2].msg = m.data;
		r[2].len = m.len;
		r[3].label = "(b) 13 KB MIME";
		r[3].kind = BENCH_DKIM;
		r[3].msg = mime.data;
		r[3].len = mime.len;
		for (int j = 1; j < 4; j++)
			r[j].key = key[a];
	}
	rows[BENCH_NROW - 2].label = "(c) SHA-256, text body";
	rows[BENCH_NROW - 2].kind = BENCH_SHA256;
	rows[BENCH_NROW - 2].msg = m.data + hlen;
	rows[BENCH_NROW - 2].len = m.len - hlen;
	rows[BENCH_NROW - 1].label = "(c) SHA-256, MIME body";
	rows[BENCH_NROW - 1].kind = BENCH_SHA256;
	rows[BENCH_NROW - 1].msg = mime.data + mhlen;
	rows[BENCH_NROW - 1].len = mime.len - mhlen;

	/* Interleaved, so a busy spell on the machine hits every row. */
	for (int i = 0; i < rounds; i++)
		for (size_t j = 0; j < BENCH_NROW; j++)
			bench_round(&rows[j], i, secs / rounds, &out);
	for (size_t j = 0; j < BENCH_NROW; j++)
		bench_stats(&rows[j], rounds, &best[j], &med[j]);

	printf("One core, thread CPU time; best of %d rounds of %.2f s "
	    "(median in brackets).\n"
	    "10 KB text message: %zu bytes = %zu of headers + %zu of body "
	    "(WSP to rewrite on every line).\n"
	    "13 KB MIME message (msg_build, HTML + text, quoted-printable): "
	    "%zu bytes = %zu + %zu.\n\n", rounds, secs / rounds, m.len, hlen,
	    m.len - hlen, mime.len, mhlen, mime.len - mhlen);
	printf("%-15s %-23s %7s %17s %6s  %s\n", "algorithm", "row", "ops/s",
	    "us/op (median)", "allocs", "vs openssl speed sign");
	for (int a = 0; a < 2; a++) {
		const double	*bb = &best[BENCH_PER_ALG * a];
		double		 os_us = ossl[a] > 0 ? 1e6 / ossl[a] : 0;

		for (int j = 0; j < BENCH_PER_ALG; j++) {
			const struct bench_row	*r = &rows[BENCH_PER_ALG * a +
			    j];
			char			 vs[64] = "";

			if (os_us > 0)
				snprintf(vs, sizeof(vs), "%+6.1f%% of %.1f us",
				    100.0 * (bb[j] - os_us) / os_us, os_us);
			printf("%-15s %-23s %7.0f %7.1f (%7.1f) %6.1f  %s\n",
			    alg[a], r->label, 1e6 / bb[j], bb[j],
			    med[BENCH_PER_ALG * a + j], r->allocs, vs);
		}
		printf("%-15s (a) - sign call: %.1f us (%+.1f%%); body work "
		    "(b) - (a): text %.1f us, MIME %.1f us\n", alg[a],
		    bb[1] - bb[0], 100.0 * (bb[1] - bb[0]) / bb[0],
		    bb[2] - bb[1], bb[3] - bb[1]);
	}
	for (size_t j = BENCH_NROW - 2; j < BENCH_NROW; j++) {
		printf("%-15s %-23s %7.0f %7.1f (%7.1f) %6.1f  %.2f GB/s",
		    "sha256", rows[j].label, 1e6 / best[j], best[j], med[j],
		    rows[j].allocs, (double)rows[j].len / best[j] / 1e3);
		if (ossl_sha > 0)
			printf("; openssl speed -evp: %.1f us",
			    1e6 * (double)rows[j].len / ossl_sha);
		printf("\n");
	}
	printf("\n(a) is the signing cost to hold against openssl speed; "
	    "(b) is the total per message;\n(b) - (a) is the body: relaxed "
	    "canonicalisation plus SHA-256 of it, of which (c)\nis the "
	    "SHA-256 alone, which openssl speed's sign rows do not do.\n\n");
	bench_tokens(secs / rounds);

	for (int a = 0; a < 2; a++) {
		EVP_PKEY_CTX_free(rows[BENCH_PER_ALG * a].rsa);
		EVP_MD_CTX_free(rows[BENCH_PER_ALG * a].ed);
		dkim_key_free(key[a]);
	}
	buf_free(&out);
	buf_free(&mime);
	buf_free(&m);
	return 0;
}
