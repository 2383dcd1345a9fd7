/*
 * tls: client and server tls_conn joined through memory only. The server
 * key and certificate are made here at test time (no keys in git).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"

#include "core/tls.h"

#define HOST		"mx.test"
#define BIG		(100 * 1024)

static EVP_PKEY	*srv_key;
static X509	*srv_cert;

/* A P-256 key and a self-signed certificate for HOST, made once. */
static void
make_cert(void)
{
	X509_NAME	*name;
	X509_EXTENSION	*ext;
	X509V3_CTX	 v3;

	if (srv_cert != NULL)
		return;
	srv_key = EVP_EC_gen("P-256");
	cr_assert_not_null(srv_key);
	srv_cert = X509_new();
	cr_assert_not_null(srv_cert);
	cr_assert_eq(X509_set_version(srv_cert, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(srv_cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(srv_cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(srv_cert), 86400);
	cr_assert_eq(X509_set_pubkey(srv_cert, srv_key), 1);
	name = X509_get_subject_name(srv_cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)HOST, -1, -1, 0);
	cr_assert_eq(X509_set_issuer_name(srv_cert, name), 1);
	X509V3_set_ctx(&v3, srv_cert, srv_cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "DNS:" HOST);
	cr_assert_not_null(ext);
	X509_add_ext(srv_cert, ext, -1);
	X509_EXTENSION_free(ext);
	cr_assert_gt(X509_sign(srv_cert, srv_key, EVP_sha256()), 0);
}

static SSL_CTX *
server_ctx(int max_version)
{
	SSL_CTX	*ctx;

	make_cert();
	ctx = SSL_CTX_new(TLS_server_method());
	cr_assert_not_null(ctx);
	cr_assert_eq(SSL_CTX_use_certificate(ctx, srv_cert), 1);
	cr_assert_eq(SSL_CTX_use_PrivateKey(ctx, srv_key), 1);
	if (max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1);
	return ctx;
}

/* Client context trusting our self-signed certificate (or not). */
static SSL_CTX *
client_ctx(bool trust)
{
	SSL_CTX	*ctx;
	char	 err[256] = "";

	make_cert();
	ctx = tls_client_ctx_new(NULL, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	if (trust)
		cr_assert_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx),
		    srv_cert), 1);
	return ctx;
}

struct pair {
	struct tls_conn	 cli, srv;
	struct buf	 cli_plain, srv_plain;	/* what each side read */
	int		 cli_rc, srv_rc;
};

/* Move up to chunk bytes at a time from a's net_out into b. */
static bool
move(struct tls_conn *a, struct tls_conn *b, struct buf *plain, int *rc,
    size_t chunk)
{
	size_t	 n = buf_unread(&a->net_out);

	if (n == 0 || *rc != 0)
		return false;
	if (n > chunk)
		n = chunk;
	*rc = tls_conn_input(b, buf_peek(&a->net_out), n, plain);
	buf_consume(&a->net_out, n);
	return true;
}

/*
 * Shuttle bytes both ways until nothing moves (bounded: never hangs).
 * Returns the number of rounds.
 */
static size_t
run(struct pair *p, size_t chunk)
{
	size_t	 i;
	bool	 moved = true;

	for (i = 0; moved && i < 10u * 1000 * 1000; i++) {
		moved = move(&p->cli, &p->srv, &p->srv_plain, &p->srv_rc,
		    chunk);
		moved |= move(&p->srv, &p->cli, &p->cli_plain, &p->cli_rc,
		    chunk);
	}
	cr_assert(!moved, "still moving after %zu rounds", i);
	return i;
}

static void
pair_start(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *host,
    bool verify, SSL_SESSION *resume)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->cli_plain);
	buf_init(&p->srv_plain);
	cr_assert_eq(tls_conn_accept(&p->srv, sctx), 0);
	cr_assert_eq(tls_conn_start(&p->cli, cctx, host, verify, resume), 0,
	    "%s", p->cli.reason);
	/* The ClientHello is waiting before any input (STYLE.md 2.4). */
	cr_assert_gt(buf_unread(&p->cli.net_out), 0);
	cr_assert_eq(p->cli.handshake_done, false);
}

static void
pair_fini(struct pair *p)
{
	tls_conn_fini(&p->cli);
	tls_conn_fini(&p->srv);
	buf_free(&p->cli_plain);
	buf_free(&p->srv_plain);
}

static char *
pattern(size_t n, unsigned seed)
{
	char	*s = malloc(n);

	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)((i * 31 + seed) & 0xff);
	return s;
}

/* Handshake, then BIG bytes each way, moved `chunk` bytes at a time. */
static void
exchange(size_t chunk, int max_version, const char *want_proto)
{
	SSL_CTX		*cctx = client_ctx(true), *sctx = server_ctx(max_version);
	struct pair	 p;
	char		*up = pattern(BIG, 1), *down = pattern(BIG, 7);
	size_t		 rounds;

	pair_start(&p, cctx, sctx, HOST, true, NULL);
	/* Written before the handshake: queued, sent once it is done. */
	cr_assert_eq(tls_conn_write(&p.cli, up, 1000), 0);
	cr_assert_eq(tls_conn_write_pending(&p.cli), 1000);
	run(&p, chunk);
	cr_assert_eq(p.cli_rc, 0, "client: %s", p.cli.reason);
	cr_assert_eq(p.srv_rc, 0, "server: %s", p.srv.reason);
	cr_assert(p.cli.handshake_done);
	cr_assert(p.srv.handshake_done);
	cr_assert(tls_conn_verified(&p.cli));
	/* SNI reached the server. */
	cr_assert_str_eq(SSL_get_servername(p.srv.ssl,
	    TLSEXT_NAMETYPE_host_name), HOST);
	cr_assert_str_eq(tls_conn_protocol(&p.cli), want_proto);
	cr_assert_neq(tls_conn_cipher(&p.cli)[0], '\0');
	cr_assert_eq(tls_conn_write_pending(&p.cli), 0);

	cr_assert_eq(tls_conn_write(&p.cli, up + 1000, BIG - 1000), 0);
	cr_assert_eq(tls_conn_write(&p.srv, down, BIG), 0);
	/* More than 17 KiB each way: the pair cannot take it at once. */
	cr_assert_gt(buf_unread(&p.srv.net_out), 17 * 1024);
	rounds = run(&p, chunk);
	/* One byte at a time really was: at least a round per byte. */
	if (chunk == 1)
		cr_assert_geq(rounds, BIG, "rounds %zu", rounds);
	cr_assert_eq(p.cli_rc, 0, "client: %s", p.cli.reason);
	cr_assert_eq(p.srv_rc, 0, "server: %s", p.srv.reason);
	cr_assert_eq(p.srv_plain.len, BIG);
	cr_assert_eq(memcmp(p.srv_plain.data, up, BIG), 0);
	cr_assert_eq(p.cli_plain.len, BIG);
	cr_assert_eq(memcmp(p.cli_plain.data, down, BIG), 0);

	/* close_notify reaches the client as peer_closed. */
	cr_assert_eq(tls_conn_shutdown(&p.srv), 0);
	run(&p, chunk);
	cr_assert(p.cli.peer_closed);
	cr_assert_eq(p.cli_rc, 0);
	cr_assert_eq(tls_conn_input(&p.cli, "x", 1, &p.cli_plain), 0);

	pair_fini(&p);
	free(up);
	free(down);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

Test(tls, big_chunks_tls13)
{
	exchange(1 << 20, 0, "TLSv1.3");
}

Test(tls, big_chunks_tls12)
{
	exchange(1 << 20, TLS1_2_VERSION, "TLSv1.2");
}

Test(tls, one_byte_at_a_time, .timeout = 60)
{
	exchange(1, 0, "TLSv1.3");
}

Test(tls, one_byte_at_a_time_tls12, .timeout = 60)
{
	exchange(1, TLS1_2_VERSION, "TLSv1.2");
}

/* Odd sizes straddle record boundaries in both directions. */
Test(tls, odd_chunks)
{
	exchange(7, 0, "TLSv1.3");
	exchange(17 * 1024 + 3, 0, "TLSv1.3");
}

static void
verify_fails(const char *host, bool trust, const char *want1,
    const char *want2)
{
	SSL_CTX		*cctx = client_ctx(trust), *sctx = server_ctx(0);
	struct pair	 p;

	pair_start(&p, cctx, sctx, host, true, NULL);
	run(&p, 4096);
	cr_assert_eq(p.cli_rc, -EPROTO);
	cr_assert(p.cli.failed);
	cr_assert_eq(p.cli.handshake_done, false);
	cr_assert_not_null(strstr(p.cli.reason, want1), "reason: %s",
	    p.cli.reason);
	cr_assert_not_null(strstr(p.cli.reason, want2), "reason: %s",
	    p.cli.reason);
	/* Sticky. */
	cr_assert_eq(tls_conn_input(&p.cli, "x", 1, &p.cli_plain), -EPROTO);
	cr_assert_eq(tls_conn_write(&p.cli, "x", 1), -EPROTO);
	cr_assert_eq(tls_conn_session_take(&p.cli), NULL);
	pair_fini(&p);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

Test(tls, verify_wrong_host_fails)
{
	verify_fails("other.test", true, "other.test", "hostname mismatch");
}

Test(tls, verify_untrusted_fails)
{
	verify_fails(HOST, false, HOST, "self-signed");
}

/* Without verify, the same wrong name and unknown chain are accepted. */
Test(tls, no_verify_accepts_anything)
{
	SSL_CTX		*cctx = client_ctx(false), *sctx = server_ctx(0);
	struct pair	 p;

	pair_start(&p, cctx, sctx, "other.test", false, NULL);
	run(&p, 4096);
	cr_assert_eq(p.cli_rc, 0, "%s", p.cli.reason);
	cr_assert(p.cli.handshake_done);
	cr_assert_eq(tls_conn_verified(&p.cli), false);
	pair_fini(&p);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

/* An IP literal: no SNI (RFC 6066 3), matched against IP SANs. */
Test(tls, ip_literal_host)
{
	SSL_CTX		*cctx = client_ctx(true), *sctx = server_ctx(0);
	struct pair	 p;

	pair_start(&p, cctx, sctx, "192.0.2.1", true, NULL);
	run(&p, 4096);
	cr_assert_eq(p.cli_rc, -EPROTO);
	cr_assert_not_null(strstr(p.cli.reason, "192.0.2.1"), "%s",
	    p.cli.reason);
	cr_assert_not_null(strstr(p.cli.reason, "IP address mismatch"), "%s",
	    p.cli.reason);
	cr_assert_null(SSL_get_servername(p.srv.ssl,
	    TLSEXT_NAMETYPE_host_name));
	pair_fini(&p);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

Test(tls, verify_needs_host)
{
	SSL_CTX		*cctx = client_ctx(true);
	struct tls_conn	 t;

	cr_assert_eq(tls_conn_start(&t, cctx, NULL, true, NULL), -EINVAL);
	cr_assert_eq(t.ssl, NULL);
	tls_conn_fini(&t);
	SSL_CTX_free(cctx);
}

/* A plain-text "server" answers the ClientHello: clean error, no hang. */
Test(tls, garbage_from_server)
{
	static const struct {
		const char	*s;
		size_t		 n;
	} junk[] = {
		{ "220 mx.test ESMTP not TLS at all\r\n", 34 },
		/* A handshake record holding a nonsense message. */
		{ "\x16\x03\x03\x00\x05" "hello", 10 },
		{ "\x15\x03\x03\x00\x02\x02\x28", 7 },	/* fatal alert */
	};
	SSL_CTX		*cctx = client_ctx(true);
	struct tls_conn	 t;
	struct buf	 plain;

	buf_init(&plain);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		cr_assert_eq(tls_conn_start(&t, cctx, HOST, true, NULL), 0);
		buf_consume(&t.net_out, buf_unread(&t.net_out));
		cr_assert_eq(tls_conn_input(&t, junk[i].s, junk[i].n, &plain),
		    -EPROTO, "junk %zu", i);
		cr_assert(t.failed);
		cr_assert_not_null(strstr(t.reason, "TLS handshake failed"),
		    "%s", t.reason);
		cr_assert_eq(plain.len, 0);
		cr_assert_str_eq(tls_conn_protocol(&t), "");
		tls_conn_fini(&t);
	}
	/* The same one byte at a time. */
	cr_assert_eq(tls_conn_start(&t, cctx, HOST, true, NULL), 0);
	{
		int	 rc = 0;
		size_t	 i;

		for (i = 0; i < junk[0].n && rc == 0; i++)
			rc = tls_conn_input(&t, junk[0].s + i, 1, &plain);
		cr_assert_eq(rc, -EPROTO);
		cr_assert_lt(i, 10, "failed only after %zu bytes", i);
	}
	tls_conn_fini(&t);
	buf_free(&plain);
	SSL_CTX_free(cctx);
}

/* The server side sees a failing client: also clean. */
Test(tls, garbage_from_client)
{
	SSL_CTX		*sctx = server_ctx(0);
	struct tls_conn	 t;
	struct buf	 plain;

	buf_init(&plain);
	cr_assert_eq(tls_conn_accept(&t, sctx), 0);
	cr_assert_eq(tls_conn_input(&t, "EHLO x\r\n", 8, &plain), -EPROTO);
	cr_assert_neq(t.reason[0], '\0');
	tls_conn_fini(&t);
	buf_free(&plain);
	SSL_CTX_free(sctx);
}

static void
resume(int max_version)
{
	SSL_CTX		*cctx = client_ctx(true), *sctx = server_ctx(max_version);
	struct tls_session_cache sc;
	struct pair	 p;
	SSL_SESSION	*s;

	cr_assert_eq(tls_session_cache_init(&sc, 4), 0);
	pair_start(&p, cctx, sctx, HOST, true, NULL);
	run(&p, 1);
	cr_assert(p.cli.handshake_done, "%s", p.cli.reason);
	cr_assert_eq(tls_conn_reused(&p.cli), false);
	/* Some traffic, so TLS 1.3 tickets have been read by the client. */
	cr_assert_eq(tls_conn_write(&p.srv, "220 hi\r\n", 8), 0);
	run(&p, 1);
	cr_assert_eq(p.cli_plain.len, 8);
	s = tls_conn_session_take(&p.cli);
	cr_assert_not_null(s);
	cr_assert_eq(tls_session_cache_put(&sc, "MX.test", s), 0);
	pair_fini(&p);

	s = tls_session_cache_get(&sc, HOST);
	cr_assert_not_null(s);
	pair_start(&p, cctx, sctx, HOST, true, s);
	run(&p, 1);
	cr_assert(p.cli.handshake_done, "%s", p.cli.reason);
	cr_assert(tls_conn_reused(&p.cli));
	cr_assert(tls_conn_verified(&p.cli));
	pair_fini(&p);

	tls_session_cache_fini(&sc);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

Test(tls, resumption_tls13)
{
	resume(0);
}

Test(tls, resumption_tls12)
{
	resume(TLS1_2_VERSION);
}

Test(tls, session_cache_lru)
{
	struct tls_session_cache sc;
	char		 host[32];

	cr_assert_eq(tls_session_cache_init(&sc, 0), -EINVAL);
	cr_assert_eq(tls_session_cache_init(&sc, 3), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(host, sizeof(host), "h%d", i);
		cr_assert_eq(tls_session_cache_put(&sc, host,
		    SSL_SESSION_new()), 0);
	}
	cr_assert_not_null(tls_session_cache_get(&sc, "h0"));	/* h1 oldest */
	cr_assert_eq(tls_session_cache_put(&sc, "h3", SSL_SESSION_new()), 0);
	cr_assert_eq(sc.n, 3);
	cr_assert_null(tls_session_cache_get(&sc, "h1"));
	cr_assert_not_null(tls_session_cache_get(&sc, "H0"));
	cr_assert_not_null(tls_session_cache_get(&sc, "h2"));
	cr_assert_not_null(tls_session_cache_get(&sc, "h3"));
	/* Replace keeps the count. */
	cr_assert_eq(tls_session_cache_put(&sc, "h3", SSL_SESSION_new()), 0);
	cr_assert_eq(sc.n, 3);
	tls_session_cache_remove(&sc, "h0");
	cr_assert_eq(sc.n, 2);
	cr_assert_null(tls_session_cache_get(&sc, "h0"));
	cr_assert_not_null(tls_session_cache_get(&sc, "h3"));
	cr_assert_eq(tls_session_cache_put(&sc, "", SSL_SESSION_new()),
	    -EINVAL);
	cr_assert_eq(tls_session_cache_put(&sc, "x", NULL), -EINVAL);
	tls_session_cache_fini(&sc);
}

Test(tls, ctx_bad_ca_file)
{
	char	 err[256] = "";

	cr_assert_null(tls_client_ctx_new("/nonexistent/ca.pem", err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, "CA file"), "%s", err);
}
