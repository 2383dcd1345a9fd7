/*
 * dkim: DKIM-Signature (RFC 6376) for outgoing messages, relaxed/relaxed,
 * rsa-sha256 (RFC 8301: 2048..4096-bit keys) and ed25519-sha256
 * (RFC 8463: PureEdDSA over the SHA-256 of the header data).
 *
 * A struct dkim_key is one private key with its d= and s= and the list of
 * header names to sign. It also owns the OpenSSL contexts reused for every
 * message (body/header digest, signing context), so it is worker-local
 * and not thread-safe: each worker thread loads its own or uses
 * dkim_key_dup(). Signing allocates nothing of ours; OpenSSL 3.0 still
 * allocates inside (one per digest init, about 5 per Ed25519 and 20 per
 * RSA signature: BN_CTX), which it offers no way to avoid.
 *
 * Signed headers (h=): From, To, Cc, Reply-To, Subject, Date, Message-ID,
 * MIME-Version, Content-Type, List-Unsubscribe, List-Unsubscribe-Post,
 * Feedback-ID, then the extras from dkim_key_add_headers(), each listed
 * as often as it occurs. From, Subject, List-Unsubscribe and
 * List-Unsubscribe-Post are over-signed: listed once more than they occur
 * (once when absent), so a later hop cannot add one (RFC 6376 8.15).
 *
 * Owns: the key, its contexts, its strings. Must not touch: sockets,
 * Redis, the message (read only).
 */
#ifndef ENGINE_MAIL_DKIM_H
#define ENGINE_MAIL_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define DKIM_DOMAIN_MAX		253	/* d= */
#define DKIM_SELECTOR_MAX	63	/* s=: labels, <= 63 in all */
#define DKIM_HNAME_MAX		64	/* one header name */
#define DKIM_HEADERS_MAX	32	/* names signed, defaults included */
#define DKIM_SIGNED_MAX		64	/* h= entries per message */
#define DKIM_KEYFILE_MAX	(64 * 1024)	/* PEM file size limit */
#define DKIM_RSA_MIN_BITS	2048
#define DKIM_RSA_MAX_BITS	4096

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

struct dkim_key;

/*
 * Load a PEM private key (PKCS#8 or traditional RSA, unencrypted) and
 * detect the algorithm from it. domain and selector are validated (LDH
 * labels). Returns NULL with a one-line reason in err: file missing or
 * unreadable (strerror), not a regular file or too large, not a PEM
 * private key, encrypted, wrong type (neither RSA nor Ed25519), RSA
 * outside 2048..4096 bits, bad domain/selector. The key file contents
 * are never copied into err.
 */
struct dkim_key *dkim_key_load(const char *pem_path, const char *domain,
	    const char *selector, char *err, size_t errlen);
/* A second key sharing the same EVP_PKEY, for another thread. Or NULL. */
struct dkim_key *dkim_key_dup(const struct dkim_key *k);
void	dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
const char *dkim_key_domain(const struct dkim_key *k);
const char *dkim_key_selector(const struct dkim_key *k);
/* "rsa-sha256" / "ed25519-sha256" */
const char *dkim_alg_name(enum dkim_alg alg);

/*
 * Sign these extra header names too (not over-signed). Names are RFC 5322
 * field names up to DKIM_HNAME_MAX; repeats of a name already in the list
 * are ignored. DKIM-Signature cannot be listed. 0, or -EINVAL (bad name)
 * / -E2BIG (more than DKIM_HEADERS_MAX in all) with a reason in err.
 */
int	dkim_key_add_headers(struct dkim_key *k, const char *const *names,
	    size_t n, char *err, size_t errlen);

/*
 * The DNS TXT record for <selector>._domainkey.<domain>:
 * "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or
 * "v=DKIM1; k=ed25519; p=<base64 raw 32-byte key>" (RFC 8463 4.2),
 * appended to out. 0, -ENOMEM or -EIO (OpenSSL).
 */
int	dkim_key_dns_txt(const struct dkim_key *k, struct buf *out);

/*
 * Sign msg[0..len) (a complete message, CRLF line ends; a bare LF is read
 * as a line end too, as a verifier sees it once the transport has
 * normalised it) and append to header_out a folded
 * "DKIM-Signature: v=1; a=...; c=relaxed/relaxed; d=; s=; t=; h=; bh=;
 *  b=...\r\n" to prepend to the message. Lines stay under 80 octets.
 * A dual signature is two calls with two keys (either order).
 * Returns 0; -EINVAL when the message has no From or more than one;
 * -E2BIG when more than DKIM_SIGNED_MAX header instances would be signed;
 * -ENOMEM; -EIO when OpenSSL fails. header_out is unchanged on error.
 */
int	dkim_sign(const struct dkim_key *k, const char *msg, size_t len,
	    int64_t now_s, struct buf *header_out);

/*
 * Relaxed canonicalisation (RFC 6376 3.4.2 / 3.4.4) into out, for tests
 * and tools: the header field (name:value, a line end optional at the
 * end) and the body. Appends; 0 or -ENOMEM.
 */
int	dkim_canon_header(const char *field, size_t len, struct buf *out);
int	dkim_canon_body(const char *body, size_t len, struct buf *out);

#endif
