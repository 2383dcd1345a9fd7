/*
 * bench_render: render + MIME per message on one core, the worker's
 * per-recipient path (templates/tpl.h into reused buffers, then
 * mail/msg.h), for a 10 KB HTML template with 10 variables, a text part
 * and a 2-variable subject, List-Unsubscribe with a per-recipient token
 * made beforehand. Rows: without DKIM, with Ed25519, with RSA-2048, all
 * with the fast path (tpl_render_mime into msg_build's text_enc and
 * html_enc); then the plain path (tpl_render, msg_build on the raw text)
 * without DKIM for comparison. Before timing, every row's message is
 * built both ways and must be byte for byte the same (exit 1 if not).
 *
 * Heap allocations per message after warm-up are counted two ways:
 * -Wl,--wrap=malloc,--wrap=realloc,--wrap=calloc catches every call from
 * code linked statically (ringmail's library and this file); OpenSSL's
 * own allocations inside libcrypto.so are counted through
 * CRYPTO_set_mem_functions. The first must be 0 (STYLE.md 3.3); the
 * exit status is 1 when it is not.
 *
 *   bench/bench_render.sh [BUILD] [SECONDS]   (make bench-render)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "lib/buf.h"
#include "mail/dkim.h"
#include "mail/msg.h"
#include "mail/token.h"
#include "templates/tpl.h"

#define BENCH_NROWS	1000
#define BENCH_NCOLS	10

/* ---- allocation counters ---- */

static int	bench_counting;
static long	bench_nmalloc;		/* --wrap: our code */
static long	bench_nossl;		/* OpenSSL's, via its hooks */

void	*__real_malloc(size_t n);
void	*__real_realloc(void *p, size_t n);
void	*__real_calloc(size_t a, size_t b);
void	*__wrap_malloc(size_t n);
void	*__wrap_realloc(void *p, size_t n);
void	*__wrap_calloc(size_t a, size_t b);

void *
__wrap_malloc(size_t n)
{
	if (bench_counting)
		bench_nmalloc++;
	return __real_malloc(n);
}

void *
__wrap_realloc(void *p, size_t n)
{
	if (bench_counting)
		bench_nmalloc++;
	return __real_realloc(p, n);
}

void *
__wrap_calloc(size_t a, size_t b)
{
	if (bench_counting)
		bench_nmalloc++;
	return __real_calloc(a, b);
}

static void *
bench_ossl_malloc(size_t n, const char *f, int l)
{
	(void)f;
	(void)l;
	if (bench_counting)
		bench_nossl++;
	return __real_malloc(n);
}

static void *
bench_ossl_realloc(void *p, size_t n, const char *f, int l)
{
	(void)f;
	(void)l;
	if (bench_counting)
		bench_nossl++;
	return __real_realloc(p, n);
}

static void
bench_ossl_free(void *p, const char *f, int l)
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

/*
 * This thread's CPU time: on a shared machine wall time also counts the
 * time other processes had the core, so both are printed.
 */
static double
bench_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the workload ---- */

static const char *const bench_cols[BENCH_NCOLS] = {
	"email", "first_name", "last_name", "city", "country", "plan",
	"coupon", "order_id", "amount", "url",
};

struct bench {
	struct tpl	*t_subj, *t_text, *t_html;
	char		*vals[BENCH_NROWS][BENCH_NCOLS];
	size_t		 lens[BENCH_NROWS][BENCH_NCOLS];
	char		 urls[BENCH_NROWS][600];
	struct buf	 b_subj, b_text, b_html, b_msg, b_sig;
	struct tpl_scratch sc;
	size_t		 nbytes;
};

static void
bench_templates(struct bench *b)
{
	struct buf	 h;
	char		 err[256];
	const char	*text = "Hello {{first_name}} {{last_name}},\n\n"
	    "your {{plan}} order {{order_id}} of {{amount}} ships to "
	    "{{city}}, {{country}}.\nCode: {{coupon}}\n{{url}}\n";
	const char	*subj = "{{first_name}}, your order {{order_id}}";

	buf_init(&h);
	buf_puts(&h, "<!DOCTYPE html>\n<html><body>\n<p>Hello "
	    "{{first_name}} {{last_name}},</p>\n");
	/* Filler paragraphs with the variables spread through them. */
	while (h.len < 10 * 1024 - 200) {
		buf_puts(&h, "<p style=\"font-family:Arial;color:#333\">We "
		    "picked a few things for {{city}} ({{country}}) this "
		    "month. Your plan: {{plan}}.</p>\n<table><tr><td>Order "
		    "{{order_id}}</td><td>{{amount}}</td></tr></table>\n");
		buf_puts(&h, "<p>Use <b>{{coupon}}</b> at <a href=\"{{url}}\">"
		    "our shop</a>. Sent to {{email}}.</p>\n");
	}
	buf_puts(&h, "</body></html>\n");
	if ((b->t_html = tpl_compile(h.data, h.len, "html", TPL_CTX_HTML,
	    bench_cols, BENCH_NCOLS, err, sizeof(err))) == NULL ||
	    (b->t_text = tpl_compile(text, strlen(text), "text", TPL_CTX_TEXT,
	    bench_cols, BENCH_NCOLS, err, sizeof(err))) == NULL ||
	    (b->t_subj = tpl_compile(subj, strlen(subj), "subject",
	    TPL_CTX_HEADER, bench_cols, BENCH_NCOLS, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "bench_render: %s\n", err);
		exit(2);
	}
	printf("template: html %zu bytes + text + subject, 10 variables\n",
	    h.len);
	buf_free(&h);
}

static void
bench_rows(struct bench *b, const struct token_key *k)
{
	static const char *const first[] = { "Alice", "Bob", "Zoë", "Jürgen",
		"Ana", "Li" };
	char	 v[BENCH_NCOLS][128], tok[UNSUB_TOKEN_BUFSZ];

	for (int i = 0; i < BENCH_NROWS; i++) {
		snprintf(v[0], sizeof(v[0]), "user%04d@example%d.test", i,
		    i % 7);
		snprintf(v[1], sizeof(v[1]), "%s", first[i % 6]);
		snprintf(v[2], sizeof(v[2]), "Smith-%d", i);
		snprintf(v[3], sizeof(v[3]), "%s", i % 2 ? "Berlin" : "Köln");
		snprintf(v[4], sizeof(v[4]), "DE");
		snprintf(v[5], sizeof(v[5]), "%s", i % 3 ? "Pro" : "Free");
		snprintf(v[6], sizeof(v[6]), "SAVE%03d", i % 1000);
		snprintf(v[7], sizeof(v[7]), "%08d", 10000000 + i);
		snprintf(v[8], sizeof(v[8]), "%d.%02d EUR", i % 500, i % 100);
		snprintf(v[9], sizeof(v[9]), "https://shop.example/o/%d?ref=m&x"
		    "=<y>", i);
		for (int c = 0; c < BENCH_NCOLS; c++) {
			b->vals[i][c] = strdup(v[c]);
			b->lens[i][c] = strlen(v[c]);
		}
		if (unsub_token_make(k, "spring-sale-2026", v[0], 1800000000,
		    tok) != 0) {
			fprintf(stderr, "bench_render: token\n");
			exit(2);
		}
		snprintf(b->urls[i], sizeof(b->urls[i]),
		    "https://unsub.shop.example/u/%s", tok);
	}
}

/*
 * One message for row i; with k, DKIM-signed too. fast: the parts are
 * rendered straight into their transfer encodings (tpl_render_mime).
 */
static void
bench_one(struct bench *b, int i, const struct dkim_key *k, int fast)
{
	static const struct msg_header hdrs[] = {
		{ "X-Campaign", "spring-sale-2026" },
	};
	struct tpl_row	 row = { BENCH_NCOLS,
		(const char *const *)b->vals[i], b->lens[i] };
	struct msg_input in;
	struct msg_encoded e_text, e_html;
	char		 local[64];

	buf_reset(&b->b_subj);
	buf_reset(&b->b_text);
	buf_reset(&b->b_html);
	buf_reset(&b->b_msg);
	buf_reset(&b->b_sig);
	snprintf(local, sizeof(local), "spring.%d.1.0badcafe", i);
	memset(&in, 0, sizeof(in));
	in.from = "Shop <news@shop.example>";
	in.to = b->vals[i][0];
	in.headers = hdrs;
	in.nheaders = 1;
	in.msgid_domain = "shop.example";
	in.msgid_local = local;
	in.date_ms = 1800000000000LL + i;
	in.unsub_url = b->urls[i];
	in.unsub_mailto = "mailto:unsubscribe@shop.example";
	in.feedback_id = "spring:shop:news:ringmail";
	if (tpl_render(b->t_subj, &row, &b->b_subj) != 0)
		abort();
	in.subject = b->b_subj.data;
	if (fast) {
		if (tpl_render_mime(b->t_text, &row, NULL, 0, &b->sc,
		    &b->b_text, &e_text) != 0 ||
		    tpl_render_mime(b->t_html, &row, NULL, 0, &b->sc,
		    &b->b_html, &e_html) != 0)
			abort();
		in.text_enc = &e_text;
		in.html_enc = &e_html;
	} else {
		if (tpl_render(b->t_text, &row, &b->b_text) != 0 ||
		    tpl_render(b->t_html, &row, &b->b_html) != 0)
			abort();
		in.text = b->b_text.data;
		in.textlen = b->b_text.len;
		in.html = b->b_html.data;
		in.htmllen = b->b_html.len;
	}
	if (msg_build(&b->b_msg, &in) != 0)
		abort();
	if (k != NULL && dkim_sign(k, b->b_msg.data, b->b_msg.len,
	    1800000000, &b->b_sig) != 0)
		abort();
	b->nbytes += b->b_msg.len + b->b_sig.len;
}

/* Both paths must give the same bytes for every row. 0 or 1. */
static int
bench_same(struct bench *b)
{
	struct buf	 plain;
	int		 nqp = 0;

	buf_init(&plain);
	for (int i = 0; i < BENCH_NROWS; i++) {
		bench_one(b, i, NULL, 0);
		buf_reset(&plain);
		buf_append(&plain, b->b_msg.data, b->b_msg.len);
		bench_one(b, i, NULL, 1);
		if (plain.len != b->b_msg.len ||
		    memcmp(plain.data, b->b_msg.data, plain.len) != 0) {
			printf("FAIL: row %d: fast path output differs\n", i);
			buf_free(&plain);
			return 1;
		}
		nqp += strstr(plain.data, "quoted-printable") != NULL;
	}
	printf("fast path output identical for all %d rows (%d with a "
	    "quoted-printable part)\n", BENCH_NROWS, nqp);
	buf_free(&plain);
	return 0;
}

static int
bench_row(struct bench *b, const char *name, const struct dkim_key *k,
    int fast, double secs)
{
	double	 t0, t, c0, c;
	long	 n = 0;

	for (int i = 0; i < 2 * BENCH_NROWS; i++)	/* warm-up */
		bench_one(b, i % BENCH_NROWS, k, fast);
	b->nbytes = 0;
	bench_nmalloc = bench_nossl = 0;
	bench_counting = 1;
	c0 = bench_cpu();
	t0 = bench_now();
	do {
		for (int i = 0; i < 100; i++, n++)
			bench_one(b, (int)(n % BENCH_NROWS), k, fast);
		t = bench_now() - t0;
	} while (t < secs);
	c = bench_cpu() - c0;
	bench_counting = 0;
	printf("ringmail render+mime %-13s %9.0f msg/s  %7.2f us/msg  "
	    "%6zu B/msg  mallocs/msg %.3f (openssl %.2f)  cpu %9.0f msg/s\n",
	    name, (double)n / t, t * 1e6 / (double)n, b->nbytes / (size_t)n,
	    (double)bench_nmalloc / (double)n,
	    (double)bench_nossl / (double)n, (double)n / c);
	return bench_nmalloc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static struct bench b;
	struct token_key *tk;
	struct dkim_key	*rsa = NULL, *ed = NULL;
	char		 err[256];
	double		 secs = argc > 3 ? atof(argv[3]) : 3.0;
	int		 rc = 0;

	CRYPTO_set_mem_functions(bench_ossl_malloc, bench_ossl_realloc,
	    bench_ossl_free);
	if (argc < 3) {
		fprintf(stderr, "usage: bench_render RSA.pem ED25519.pem "
		    "[SECONDS]\n");
		return 2;
	}
	if ((tk = token_key_new("0123456789abcdef0123456789abcdef", 32)) ==
	    NULL ||
	    (rsa = dkim_key_load(argv[1], "shop.example", "rsa1", err,
	    sizeof(err))) == NULL ||
	    (ed = dkim_key_load(argv[2], "shop.example", "ed1", err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "bench_render: keys: %s\n", err);
		return 2;
	}
	buf_init(&b.b_subj);
	buf_init(&b.b_text);
	buf_init(&b.b_html);
	buf_init(&b.b_msg);
	buf_init(&b.b_sig);
	tpl_scratch_init(&b.sc);
	bench_templates(&b);
	bench_rows(&b, tk);
	rc |= bench_same(&b);
	rc |= bench_row(&b, "no-dkim", NULL, 1, secs);
	rc |= bench_row(&b, "ed25519", ed, 1, secs);
	rc |= bench_row(&b, "rsa-2048", rsa, 1, secs);
	rc |= bench_row(&b, "plain-no-dkim", NULL, 0, secs);
	if (rc != 0)
		printf("FAIL: heap allocations or differing output\n");
	dkim_key_free(rsa);
	dkim_key_free(ed);
	token_key_free(tk);
	return rc;
}
