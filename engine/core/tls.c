/* tls: TLS over a BIO pair, sans-I/O. See tls.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"

#include "core/tls.h"

/* One TLS record's worth of plaintext per SSL_read/SSL_write call. */
#define TLS_CHUNK	16384

/*
 * TLS 1.2 suites; TLS 1.3 uses OpenSSL's default (all AEAD). Mail servers
 * in the wild still run ECDHE-RSA-AES-CBC, so CBC stays, but nothing
 * without authentication, forward secrecy breakers like RC4/3DES, or MD5.
 */
#define TLS_CIPHERS	"HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!PSK:!SRP:" \
			"!CAMELLIA:!ARIA:!kRSA"

static void
tls_errbuf(char *err, size_t errlen, const char *what)
{
	unsigned long	 e = ERR_peek_last_error();
	char		 ebuf[160];

	if (err == NULL || errlen == 0)
		return;
	if (e != 0) {
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(err, errlen, "%s: %s", what, ebuf);
	} else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_errbuf(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_errbuf(err, errlen, "TLS 1.2 minimum");
		goto fail;
	}
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1) {
		tls_errbuf(err, errlen, "cipher list");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	/*
	 * Partial writes and moving buffers: tls_conn_write retries from its
	 * own buffer, which may move when it grows. RELEASE_BUFFERS keeps an
	 * idle pooled connection small (issue 3: <= 128 KiB per TLS conn).
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* Sessions are kept per host by tls_session_cache, not in ctx. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	if (ca_file != NULL && ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			tls_errbuf(err, errlen, "loading CA file");
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_errbuf(err, errlen, "loading default CA paths");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Move everything the SSL side wrote into net_out. Bytes moved, or -ENOMEM. */
static long
tls_flush(struct tls_conn *t)
{
	size_t	 p;
	long	 moved = 0;
	int	 r;

	while ((p = BIO_ctrl_pending(t->net)) > 0) {
		if (p > INT_MAX)
			p = INT_MAX;
		if (buf_reserve(&t->net_out, p) != 0)
			return -ENOMEM;
		r = BIO_read(t->net, t->net_out.data + t->net_out.len, (int)p);
		if (r <= 0)
			break;
		t->net_out.len += (size_t)r;
		t->net_out.data[t->net_out.len] = '\0';
		moved += r;
	}
	return moved;
}

/* Give the pair as much of net_in as it takes. Returns bytes fed. */
static size_t
tls_feed(struct tls_conn *t)
{
	size_t	 room, n = buf_unread(&t->net_in);
	int	 r;

	if (n == 0)
		return 0;
	room = BIO_ctrl_get_write_guarantee(t->net);
	if (room == 0)
		return 0;
	if (n > room)
		n = room;
	if (n > INT_MAX)
		n = INT_MAX;
	r = BIO_write(t->net, buf_peek(&t->net_in), (int)n);
	if (r <= 0)
		return 0;
	buf_consume(&t->net_in, (size_t)r);
	return (size_t)r;
}

/* Record why TLS failed after SSL_* returned r with SSL_get_error() e. */
static int
tls_fail(struct tls_conn *t, int e)
{
	const char	*phase = t->handshake_done ? "TLS error" :
			    "TLS handshake failed";
	unsigned long	 ee = ERR_peek_last_error();
	long		 vr = SSL_get_verify_result(t->ssl);
	char		 ebuf[160];

	t->failed = true;
	if (!t->handshake_done && t->verify && vr != X509_V_OK)
		snprintf(t->reason, sizeof(t->reason),
		    "%s: certificate verify failed for %s: %s", phase,
		    t->host, X509_verify_cert_error_string(vr));
	else if (ee != 0) {
		ERR_error_string_n(ee, ebuf, sizeof(ebuf));
		snprintf(t->reason, sizeof(t->reason), "%s: %s", phase, ebuf);
	} else if (e == SSL_ERROR_SYSCALL)
		snprintf(t->reason, sizeof(t->reason),
		    "%s: unexpected end of stream", phase);
	else
		snprintf(t->reason, sizeof(t->reason), "%s: SSL error %d",
		    phase, e);
	ERR_clear_error();
	/* An alert may have been written: let the caller send it. */
	if (tls_flush(t) < 0)
		return -ENOMEM;
	return -EPROTO;
}

/*
 * SSL_write as much of plain_in as the connection takes now. Returns 0
 * (all written, or stopped on WANT_READ), -EPROTO or -ENOMEM.
 */
static int
tls_write_some(struct tls_conn *t)
{
	size_t	 n;
	long	 fl;
	int	 r, e;

	while ((n = buf_unread(&t->plain_in)) > 0) {
		if (n > TLS_CHUNK)
			n = TLS_CHUNK;
		ERR_clear_error();
		r = SSL_write(t->ssl, buf_peek(&t->plain_in), (int)n);
		/* BIO_s_bio.pod WARNINGS: flush before looking at r. */
		if ((fl = tls_flush(t)) < 0)
			return -ENOMEM;
		if (r > 0) {
			buf_consume(&t->plain_in, (size_t)r);
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE && fl > 0)
			continue;	/* the pair had no room; it has now */
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;	/* retried from tls_conn_input */
		return tls_fail(t, e);
	}
	return 0;
}

/*
 * The pump: feed, handshake or read, flush, until nothing moves. Every
 * SSL call is followed by a flush, before its result is looked at.
 */
static int
tls_pump(struct tls_conn *t, struct buf *plain_out)
{
	size_t	 fed, room;
	long	 fl;
	int	 r, e, rc;

	for (;;) {
		if (t->failed)
			return -EPROTO;
		if (t->peer_closed)
			return 0;
		fed = tls_feed(t);
		if (!t->handshake_done) {
			ERR_clear_error();
			r = SSL_do_handshake(t->ssl);
			if ((fl = tls_flush(t)) < 0)
				return -ENOMEM;
			if (r == 1) {
				t->handshake_done = true;
				continue;
			}
			e = SSL_get_error(t->ssl, r);
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				return tls_fail(t, e);
			if (fed == 0 && fl == 0)
				return 0;	/* needs more from the peer */
			continue;
		}
		/* Writes that waited for the handshake or for a read. */
		if ((rc = tls_write_some(t)) != 0)
			return rc;
		if (plain_out == NULL)
			return 0;
		if (buf_reserve(plain_out, TLS_CHUNK) != 0)
			return -ENOMEM;
		room = plain_out->cap - plain_out->len - 1;
		if (room > INT_MAX)
			room = INT_MAX;
		ERR_clear_error();
		r = SSL_read(t->ssl, plain_out->data + plain_out->len,
		    (int)room);
		if ((fl = tls_flush(t)) < 0)
			return -ENOMEM;
		if (r > 0) {
			plain_out->len += (size_t)r;
			plain_out->data[plain_out->len] = '\0';
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN) {
			/* close_notify: nothing more will come. */
			t->peer_closed = true;
			buf_reset(&t->net_in);
			return 0;
		}
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return tls_fail(t, e);
		if (fed == 0 && fl == 0)
			return 0;
	}
}

static int
tls_conn_setup(struct tls_conn *t, SSL_CTX *ctx)
{
	BIO	*ibio = NULL, *nbio = NULL;
	SSL	*ssl;

	memset(t, 0, sizeof(*t));
	buf_init(&t->net_out);
	buf_init(&t->net_in);
	buf_init(&t->plain_in);
	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL)
		return -ENOMEM;
	/* 0 = default size, 17 KiB: one full TLS record. */
	if (BIO_new_bio_pair(&ibio, 0, &nbio, 0) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_bio(ssl, ibio, ibio);	/* ssl owns ibio (one ref, r == w) */
	t->ssl = ssl;
	t->net = nbio;
	return 0;
}

/* Undo a failed start but keep the reason for the caller. */
static void
tls_fini_keep_reason(struct tls_conn *t)
{
	char	 why[sizeof(t->reason)];

	memcpy(why, t->reason, sizeof(why));
	tls_conn_fini(t);
	memcpy(t->reason, why, sizeof(why));
}

static bool
tls_is_ip(const char *s)
{
	unsigned char	 a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int
tls_conn_start(struct tls_conn *t, SSL_CTX *ctx, const char *sni_host,
    bool verify, SSL_SESSION *resume)
{
	X509_VERIFY_PARAM *vp;
	bool	 ip;
	int	 rc;

	if (sni_host != NULL && (sni_host[0] == '\0' ||
	    strlen(sni_host) > TLS_HOST_MAX))
		sni_host = NULL;
	if (verify && sni_host == NULL) {
		memset(t, 0, sizeof(*t));
		return -EINVAL;
	}
	if ((rc = tls_conn_setup(t, ctx)) != 0)
		return rc;
	t->verify = verify;
	if (sni_host != NULL) {
		snprintf(t->host, sizeof(t->host), "%s", sni_host);
		ip = tls_is_ip(sni_host);
		/* RFC 6066 3: no IP literals in SNI. */
		if (!ip && SSL_set_tlsext_host_name(t->ssl, sni_host) != 1)
			goto fail;
		if (verify) {
			vp = SSL_get0_param(t->ssl);
			if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp,
			    sni_host) != 1 : SSL_set1_host(t->ssl,
			    sni_host) != 1)
				goto fail;
		}
	}
	SSL_set_verify(t->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	if (resume != NULL && SSL_set_session(t->ssl, resume) != 1)
		ERR_clear_error();	/* not fatal: a full handshake */
	SSL_set_connect_state(t->ssl);
	/* Writes the ClientHello into net_out. */
	if ((rc = tls_pump(t, NULL)) != 0)
		tls_fini_keep_reason(t);
	return rc;
fail:
	tls_errbuf(t->reason, sizeof(t->reason), "TLS setup");
	tls_fini_keep_reason(t);
	return -EPROTO;
}

int
tls_conn_accept(struct tls_conn *t, SSL_CTX *ctx)
{
	int	 rc;

	if ((rc = tls_conn_setup(t, ctx)) != 0)
		return rc;
	t->server = true;
	SSL_set_accept_state(t->ssl);
	return 0;
}

int
tls_conn_input(struct tls_conn *t, const char *net, size_t n,
    struct buf *plain_out)
{
	if (t->ssl == NULL || t->failed)
		return -EPROTO;
	if (t->peer_closed)
		return 0;
	if (n > 0) {
		/* tls_pump feeds what the pair takes; the rest waits. */
		buf_compact(&t->net_in);
		if (buf_append(&t->net_in, net, n) != 0)
			return -ENOMEM;
	}
	return tls_pump(t, plain_out);
}

int
tls_conn_write(struct tls_conn *t, const char *plain, size_t n)
{
	if (t->ssl == NULL || t->failed)
		return -EPROTO;
	if (n > 0) {
		/*
		 * Appending may move the buffer while a retry is pending:
		 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows that, and the
		 * retry passes at least as many bytes as before.
		 */
		if (buf_append(&t->plain_in, plain, n) != 0)
			return -ENOMEM;
	}
	if (!t->handshake_done)
		return 0;
	return tls_write_some(t);
}

size_t
tls_conn_write_pending(const struct tls_conn *t)
{
	return buf_unread(&t->plain_in);
}

int
tls_conn_shutdown(struct tls_conn *t)
{
	if (t->ssl == NULL || t->failed || !t->handshake_done)
		return -EPROTO;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);	/* 0: sent ours; we do not wait */
	ERR_clear_error();
	if (tls_flush(t) < 0)
		return -ENOMEM;
	return 0;
}

const char *
tls_conn_protocol(const struct tls_conn *t)
{
	if (t->ssl == NULL || !t->handshake_done)
		return "";
	return SSL_get_version(t->ssl);
}

const char *
tls_conn_cipher(const struct tls_conn *t)
{
	const char	*s;

	if (t->ssl == NULL || !t->handshake_done)
		return "";
	s = SSL_get_cipher_name(t->ssl);
	return s != NULL ? s : "";
}

bool
tls_conn_reused(const struct tls_conn *t)
{
	return t->ssl != NULL && t->handshake_done &&
	    SSL_session_reused(t->ssl) == 1;
}

bool
tls_conn_verified(const struct tls_conn *t)
{
	X509	*peer;

	/* Without verify the host name was never checked. */
	if (t->ssl == NULL || !t->handshake_done || !t->verify)
		return false;
	if ((peer = SSL_get1_peer_certificate(t->ssl)) == NULL)
		return false;
	X509_free(peer);
	return SSL_get_verify_result(t->ssl) == X509_V_OK;
}

SSL_SESSION *
tls_conn_session_take(struct tls_conn *t)
{
	SSL_SESSION	*s;

	if (t->ssl == NULL || !t->handshake_done || t->failed)
		return NULL;
	if ((s = SSL_get1_session(t->ssl)) == NULL)
		return NULL;
	if (SSL_SESSION_is_resumable(s) != 1) {
		SSL_SESSION_free(s);
		return NULL;
	}
	return s;
}

void
tls_conn_fini(struct tls_conn *t)
{
	/*
	 * SSL_free on a connection that never sent close_notify marks its
	 * session not resumable (ssl_clear_bad_session), which would spoil
	 * the reference tls_conn_session_take handed out: SMTP peers close
	 * after QUIT without close_notify, and TLS 1.1+ no longer ties
	 * resumability to it (RFC 5246 7.2.1). A failed connection keeps
	 * the default, so its session is dropped.
	 */
	if (t->ssl != NULL && t->handshake_done && !t->failed)
		SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN |
		    SSL_RECEIVED_SHUTDOWN);
	SSL_free(t->ssl);	/* frees the SSL half of the pair */
	BIO_free(t->net);
	buf_free(&t->net_out);
	buf_free(&t->net_in);
	buf_free(&t->plain_in);
	memset(t, 0, sizeof(*t));
}

/* ---- per-host session cache ---- */

int
tls_session_cache_init(struct tls_session_cache *sc, size_t max)
{
	memset(sc, 0, sizeof(*sc));
	if (max == 0)
		return -EINVAL;
	if ((sc->ent = calloc(max, sizeof(*sc->ent))) == NULL)
		return -ENOMEM;
	sc->max = max;
	return 0;
}

void
tls_session_cache_fini(struct tls_session_cache *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		SSL_SESSION_free(sc->ent[i].sess);
	free(sc->ent);
	memset(sc, 0, sizeof(*sc));
}

static struct tls_session_entry *
tls_session_find(struct tls_session_cache *sc, const char *host)
{
	for (size_t i = 0; i < sc->n; i++)
		if (strcasecmp(sc->ent[i].host, host) == 0)
			return &sc->ent[i];
	return NULL;
}

SSL_SESSION *
tls_session_cache_get(struct tls_session_cache *sc, const char *host)
{
	struct tls_session_entry *e;

	if (host == NULL || (e = tls_session_find(sc, host)) == NULL)
		return NULL;
	e->used = ++sc->tick;
	return e->sess;
}

int
tls_session_cache_put(struct tls_session_cache *sc, const char *host,
    SSL_SESSION *sess)
{
	struct tls_session_entry *e;
	size_t	 i;

	if (sess == NULL)
		return -EINVAL;
	if (host == NULL || host[0] == '\0' || strlen(host) > TLS_HOST_MAX ||
	    sc->max == 0) {
		SSL_SESSION_free(sess);
		return -EINVAL;
	}
	if ((e = tls_session_find(sc, host)) != NULL)
		SSL_SESSION_free(e->sess);
	else if (sc->n < sc->max)
		e = &sc->ent[sc->n++];
	else {
		/* Full: evict the least recently used. */
		e = &sc->ent[0];
		for (i = 1; i < sc->n; i++)
			if (sc->ent[i].used < e->used)
				e = &sc->ent[i];
		SSL_SESSION_free(e->sess);
	}
	snprintf(e->host, sizeof(e->host), "%s", host);
	e->sess = sess;
	e->used = ++sc->tick;
	return 0;
}

void
tls_session_cache_remove(struct tls_session_cache *sc, const char *host)
{
	struct tls_session_entry *e;

	if (host == NULL || (e = tls_session_find(sc, host)) == NULL)
		return;
	SSL_SESSION_free(e->sess);
	*e = sc->ent[--sc->n];
}
