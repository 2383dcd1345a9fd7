/*
 * bench_dkim: DKIM signatures/s on one core for each algorithm, through
 * dkim_sign() on a 10 KB message, with the OpenSSL allocations per
 * signature (counted with CRYPTO_set_mem_functions) and the VERP and
 * unsubscribe token rates. bench/bench_dkim.sh builds it by hand (for
 * now) and prints `openssl speed` for the same algorithms beside it:
 *   cc -O2 -Iengine -I. bench/bench_dkim.c build/libringmail.a \
 *       -lcrypto -o build/bench_dkim
 *   build/bench_dkim RSA.pem ED25519.pem [SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "lib/buf.h"
#include "mail/dkim.h"
#include "mail/token.h"

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

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
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
	while (m->len < 10 * 1024)
		buf_puts(m, "Hello Alice, our spring sale starts today with "
		    "up to 40% off  everything in the shop.   \r\n");
}

static void
bench_sign(const char *label, const char *path, const struct buf *m,
    double secs)
{
	struct dkim_key	*k;
	struct buf	 out;
	char		 err[256];
	double		 t0, t;
	long		 n = 0, a0;

	if ((k = dkim_key_load(path, "shop.example", "s1", err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "bench_dkim: %s\n", err);
		exit(1);
	}
	buf_init(&out);
	for (int i = 0; i < 10; i++) {		/* warm-up */
		buf_reset(&out);
		if (dkim_sign(k, m->data, m->len, 1, &out) != 0)
			exit(1);
	}
	a0 = bench_nalloc;
	t0 = bench_now();
	do {
		for (int i = 0; i < 20; i++, n++) {
			buf_reset(&out);
			(void)dkim_sign(k, m->data, m->len, 1, &out);
		}
		t = bench_now() - t0;
	} while (t < secs);
	printf("ringmail dkim_sign %-14s %9.0f sign/s  %7.1f us/sign  "
	    "%5.1f OpenSSL allocs/sign  (%zu-byte message)\n", label,
	    (double)n / t, 1e6 * t / (double)n,
	    (double)(bench_nalloc - a0) / (double)n, m->len);
	buf_free(&out);
	dkim_key_free(k);
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

	t0 = bench_now();
	do {
		for (int i = 0; i < 100; i++, n++) {
			verp_encode(k, "spring-sale-2026", (uint32_t)n, lp);
			verp_decode(k, lp, strlen(lp), camp, &idx);
			unsub_token_make(k, "spring-sale-2026",
			    "alice@example.net", 1700000000, t);
			unsub_token_check(k, t, strlen(t), 1700000000, 0, camp,
			    addr);
		}
		el = bench_now() - t0;
	} while (el < secs);
	printf("ringmail tokens (verp enc+dec, unsub make+check) %9.0f "
	    "sets/s  %5.2f us/set  %4.1f OpenSSL allocs/set\n",
	    (double)n / el, 1e6 * el / (double)n,
	    (double)(bench_nalloc - a0) / (double)n);
	token_key_free(k);
}

int
main(int argc, char **argv)
{
	struct buf	m, h;
	double		secs = argc > 3 ? atof(argv[3]) : 3.0;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_dkim RSA.pem ED25519.pem "
		    "[SECONDS]\n");
		return 2;
	}
	CRYPTO_set_mem_functions(bench_malloc, bench_realloc, bench_free);
	buf_init(&m);
	bench_message(&m);
	bench_sign("rsa-sha256", argv[1], &m, secs);
	bench_sign("ed25519-sha256", argv[2], &m, secs);
	/* Headers only: what signing costs beyond the body hash. */
	h.data = m.data;
	h.len = (size_t)(strstr(m.data, "\r\n\r\n") + 4 - m.data);
	bench_sign("rsa-sha256", argv[1], &h, secs);
	bench_sign("ed25519-sha256", argv[2], &h, secs);
	bench_tokens(secs);
	buf_free(&m);
	return 0;
}
