/*
 * tls: TLS over an OpenSSL BIO pair, sans-I/O (no sockets, no ring).
 *
 * Owns: one connection's SSL object, the network half of its BIO pair,
 * the ciphertext waiting to be sent (net_out), ciphertext received that
 * the pair could not take yet, and plaintext that SSL_write could not take
 * yet. Ciphertext goes in with tls_conn_input(), plaintext comes out into
 * the caller's buffer; plaintext goes in with tls_conn_write(), ciphertext
 * comes out in t->net_out, which the caller sends and consumes.
 *
 * The network BIO is flushed into net_out after EVERY SSL_* call, whatever
 * it returned (BIO_s_bio.pod WARNINGS; STYLE.md 2.4 and 4.4): a caller
 * that sees net_out non-empty after any tls_conn_* call must send it.
 *
 * Also: the client SSL_CTX (tls_client_ctx_new) and a bounded per-host
 * session cache for resumption (struct tls_session_cache).
 * Must not touch: sockets, io_uring, SMTP state, policy (whether to
 * verify, retry in plain text, ... is the caller's decision).
 *
 * Thread affinity: a tls_conn and a tls_session_cache are worker-local,
 * not thread-safe. An SSL_CTX may be shared by threads once set up.
 * OpenSSL's error queue is per thread: every call here clears it first, so
 * connections on one worker never see each other's errors.
 */
#ifndef ENGINE_CORE_TLS_H
#define ENGINE_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "lib/buf.h"

#define TLS_HOST_MAX	255	/* DNS name limit */

struct tls_conn {
	SSL		*ssl;		/* owns (and, through it, the SSL
					   half of the BIO pair) */
	BIO		*net;		/* owns: network half of the pair */
	struct buf	 net_out;	/* owns: ciphertext the caller must
					   send, then buf_consume() */
	struct buf	 net_in;	/* owns: ciphertext the pair could not
					   take yet (it holds ~17 KiB) */
	struct buf	 plain_in;	/* owns: plaintext SSL_write has not
					   taken yet (before the handshake is
					   done, or after WANT_READ) */
	bool		 handshake_done;
	bool		 failed;	/* sticky; reason says why */
	bool		 peer_closed;	/* close_notify received */
	bool		 verify;	/* chain + host name were required */
	bool		 server;	/* accept side (tests, inbound) */
	char		 host[TLS_HOST_MAX + 1]; /* SNI / verified name */
	char		 reason[256];	/* why failed; "" otherwise */
};

/*
 * Client context: TLS 1.2 or later, forward-secret AEAD/CBC ciphers
 * (no aNULL, RC4, 3DES, MD5), no compression, no renegotiation, client-side
 * session cache without the internal store (sessions are kept per host by
 * tls_session_cache). ca_file: PEM bundle for verification, or NULL for
 * the system default paths. Returns NULL with a message in err.
 */
SSL_CTX	*tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);

/*
 * Start a client connection: SNI = sni_host (not sent for IP literals;
 * may be NULL), verify = require a valid chain and a certificate matching
 * sni_host (SSL_set1_host; IP literals are matched as addresses), resume =
 * a session to offer (borrowed: OpenSSL takes its own reference; may be
 * NULL). Queues the ClientHello in t->net_out. t must be zeroed or fini'd.
 * Returns 0, -EINVAL (verify without a host), -ENOMEM or -EPROTO (reason
 * in t->reason). On error t is left fini'd.
 */
int	tls_conn_start(struct tls_conn *t, SSL_CTX *ctx, const char *sni_host,
	    bool verify, SSL_SESSION *resume);
/*
 * Accept side (tests; later inbound STARTTLS): the peer speaks first.
 * Same returns as tls_conn_start.
 */
int	tls_conn_accept(struct tls_conn *t, SSL_CTX *ctx);
/*
 * Ciphertext arrived: feed it (keeping what the pair cannot take), drive
 * the handshake, then SSL_read everything available, appending plaintext
 * to plain_out. Any ciphertext produced (handshake flights, alerts,
 * post-handshake replies, queued tls_conn_write data) lands in t->net_out.
 * n may be 0 (just pump). Returns:
 *   0        fine; check t->handshake_done / t->peer_closed;
 *   -EPROTO  TLS failed (handshake or record layer); t->reason says why
 *            (for verify failures it names the host and the X509 error).
 *            Sticky: later calls return -EPROTO and do nothing. net_out
 *            may hold an alert worth sending before closing.
 *   -ENOMEM.
 * After peer_closed, input is ignored (returns 0).
 */
int	tls_conn_input(struct tls_conn *t, const char *net, size_t n,
	    struct buf *plain_out);
/*
 * Encrypt plaintext into t->net_out. Before the handshake is done the
 * bytes are queued and written when it completes; after a partial write or
 * WANT_READ the rest is kept and written on a later tls_conn_input().
 * All n bytes are always taken. Returns 0, -EPROTO (sticky failure; also
 * when the connection was shut down) or -ENOMEM.
 */
int	tls_conn_write(struct tls_conn *t, const char *plain, size_t n);
/* Plaintext accepted but not yet encrypted (see tls_conn_write). */
size_t	tls_conn_write_pending(const struct tls_conn *t);
/*
 * Queue our close_notify in net_out (no need to wait for the peer's).
 * Returns 0 or -EPROTO when there is no usable connection.
 */
int	tls_conn_shutdown(struct tls_conn *t);
/* "TLSv1.3" and "TLS_AES_256_GCM_SHA384", or "" before the handshake. */
const char *tls_conn_protocol(const struct tls_conn *t);
const char *tls_conn_cipher(const struct tls_conn *t);
/* Handshake done with a resumed session. */
bool	tls_conn_reused(const struct tls_conn *t);
/* Started with verify and the chain and host name checked out. */
bool	tls_conn_verified(const struct tls_conn *t);
/*
 * A new reference to the connection's session if it can be resumed, or
 * NULL. The caller owns it (SSL_SESSION_free, or give it to
 * tls_session_cache_put). With TLS 1.3 the ticket arrives after the
 * handshake, so take the session late (before tls_conn_fini).
 */
SSL_SESSION *tls_conn_session_take(struct tls_conn *t);
/* Free everything; t is zeroed and may be started again. Idempotent. */
void	tls_conn_fini(struct tls_conn *t);

/*
 * Sessions by host name (case-insensitive), at most `max` entries, least
 * recently used evicted first. Lookups are a linear scan: keep max modest
 * (hundreds) per worker.
 */
struct tls_session_entry {
	char		 host[TLS_HOST_MAX + 1];
	SSL_SESSION	*sess;		/* owns one reference */
	uint64_t	 used;		/* LRU tick */
};

struct tls_session_cache {
	struct tls_session_entry *ent;	/* owns: max entries */
	size_t		 n, max;
	uint64_t	 tick;
};

/* 0, -EINVAL (max == 0) or -ENOMEM. */
int	tls_session_cache_init(struct tls_session_cache *sc, size_t max);
void	tls_session_cache_fini(struct tls_session_cache *sc);
/*
 * The session for host, borrowed until the next put/remove/fini (pass it
 * straight to tls_conn_start, which takes its own reference), or NULL.
 */
SSL_SESSION *tls_session_cache_get(struct tls_session_cache *sc,
	    const char *host);
/*
 * Store sess for host, taking the caller's reference (also on failure,
 * where sess is freed). Replaces an older one. 0 or -EINVAL (bad host,
 * NULL sess).
 */
int	tls_session_cache_put(struct tls_session_cache *sc, const char *host,
	    SSL_SESSION *sess);
/* Forget host's session (e.g. after a failed handshake). */
void	tls_session_cache_remove(struct tls_session_cache *sc,
	    const char *host);

#endif
