/*
 * token: HMAC-SHA256 signed tokens that carry their own data, so the
 * inbound side needs no lookup: the VERP envelope sender (bounces) and the
 * one-click unsubscribe token (RFC 8058).
 *
 * VERP local part, "b-" + lower-case base32 (RFC 4648 alphabet, no
 * padding; decoding also accepts upper case since some receivers change
 * the case of local parts). The base32 text is a bit string:
 *   1 bit   form: 0 = campaign inline, 1 = campaign hashed
 *   inline: 6 bits (length - 1), then each campaign character in 6 bits
 *           (0-9 a-z A-Z '-' = codes 0..62) or 7 ('_' = 63,0; '.' = 63,1)
 *   hashed: 80 bits, the first 10 bytes of SHA-256(campaign id)
 *   5 bits  (L - 1), L = significant bits of the recipient index (>= 1)
 *   L bits  the recipient index
 *   64 bits HMAC-SHA256(key, "ringmail-verp-1" NUL form campaign-or-hash
 *           NUL index as 4 bytes big-endian), truncated
 *   zero bits to a multiple of 5.
 * A campaign id is inline when it fits with any 32-bit index (at most 33
 * characters of 6 bits, fewer with '_' or '.'): the local part is then
 * at most 64 octets (RFC 5321 4.5.3.1.1). Longer ids use the hashed form;
 * verp_decode then returns "~" + 20 lower-case hex digits (the hash) as
 * the campaign, which verp_campaign_hashed() computes from an id so the
 * inbound side can map it back (e.g. a table filled at submit time).
 * Only the exact encoding of the data is accepted (no alternative
 * spellings). Example: campaign "spring-sale-2026", index 123456 ->
 * "b-" + 38 characters.
 *
 * Unsubscribe token, base64url (RFC 4648 5, no padding) of
 *   1 byte   version 1
 *   5 bytes  issued time, seconds since the epoch, big-endian
 *   1 byte   campaign id length (1..64)
 *   n bytes  campaign id
 *   m bytes  recipient address (the rest; valid RFC 5321 mailbox)
 *   16 bytes HMAC-SHA256(key, "ringmail-unsub-1" NUL all of the above),
 *            truncated to 128 bits
 * URL- and mailto-safe, at most UNSUB_TOKEN_MAX characters. The address
 * is readable by whoever has the token (it is the recipient's own); only
 * the MAC protects it.
 *
 * Both checks compare MACs with CRYPTO_memcmp and fill their outputs only
 * on success. Keys come from secret files (token_key_load), never logged.
 *
 * Owns: the key bytes (wiped on free) and one EVP_MAC_CTX reused for every
 * token, so a struct token_key is worker-local and not thread-safe (use
 * token_key_dup per thread). OpenSSL 3.0 still allocates twice inside
 * each MAC; nothing else allocates per token. Must not touch: sockets,
 * Redis, logs.
 */
#ifndef ENGINE_MAIL_TOKEN_H
#define ENGINE_MAIL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_SECRET_MIN	16	/* bytes after trimming */
#define TOKEN_SECRET_MAX	1024
#define TOKEN_CAMPAIGN_MAX	64	/* [A-Za-z0-9_.-] */
#define TOKEN_CAMPAIGN_BUFSZ	(TOKEN_CAMPAIGN_MAX + 1)
#define TOKEN_ADDR_MAX		254	/* RFC 5321 path without <> */
#define TOKEN_ADDR_BUFSZ	(TOKEN_ADDR_MAX + 1)
#define VERP_PREFIX		"b-"
#define VERP_LOCAL_MAX		64	/* RFC 5321 local-part limit */
#define VERP_LOCAL_BUFSZ	(VERP_LOCAL_MAX + 1)
#define VERP_HASHED_LEN		21	/* "~" + 20 hex */
#define UNSUB_TOKEN_MAX		455	/* base64url of 341 bytes */
#define UNSUB_TOKEN_BUFSZ	(UNSUB_TOKEN_MAX + 1)
#define UNSUB_CLOCK_SKEW_S	3600	/* "issued" may be ahead by */

struct token_key;

/* A key from raw secret bytes (TOKEN_SECRET_MIN..MAX), or NULL. */
struct token_key *token_key_new(const void *secret, size_t len);
/*
 * A key from a secret file: its bytes with trailing whitespace removed
 * (so `openssl rand -hex 32 > file` works). The file must be a regular
 * file not readable or writable by others (mode 0600 or 0640). NULL with
 * a reason in err that never contains the secret.
 */
struct token_key *token_key_load(const char *path, char *err, size_t errlen);
struct token_key *token_key_dup(const struct token_key *k);
void	token_key_free(struct token_key *k);

/* A campaign id is 1..TOKEN_CAMPAIGN_MAX of [A-Za-z0-9_.-]. */
int	token_campaign_ok(const char *campaign);

/*
 * VERP local part for (campaign, index) into out (NUL-terminated, at
 * most VERP_LOCAL_MAX). 0, -EINVAL (bad campaign id), -EIO (OpenSSL).
 */
int	verp_encode(const struct token_key *k, const char *campaign,
	    uint32_t index, char out[VERP_LOCAL_BUFSZ]);
/*
 * Check and decode a local part (without "@domain"). 0 with campaign and
 * *index set; -EINVAL when it is not a VERP local part at all (wrong
 * prefix, length, characters, layout); -EBADMSG when it is well formed
 * but forged, altered or truncated. Outputs untouched on error.
 */
int	verp_decode(const struct token_key *k, const char *local, size_t len,
	    char campaign[TOKEN_CAMPAIGN_BUFSZ], uint32_t *index);
/* The "~hex" name verp_decode returns for an id in hashed form. */
int	verp_campaign_hashed(const char *campaign,
	    char out[TOKEN_CAMPAIGN_BUFSZ]);
/* 1 when verp_encode puts this campaign id inline, else 0. */
int	verp_campaign_inline(const char *campaign);

/*
 * Unsubscribe token for (campaign, address, issued_s) into out
 * (NUL-terminated). 0, -EINVAL (bad campaign, address, or issued_s
 * outside 0..2^40), -EIO (OpenSSL).
 */
int	unsub_token_make(const struct token_key *k, const char *campaign,
	    const char *address, int64_t issued_s,
	    char out[UNSUB_TOKEN_BUFSZ]);
/*
 * Check a token. 0 with campaign and address filled; -EINVAL malformed;
 * -EBADMSG forged/altered/truncated; -ESTALE when older than max_age_s
 * (0 = never expires) or issued more than UNSUB_CLOCK_SKEW_S after
 * now_s. Outputs untouched on error.
 */
int	unsub_token_check(const struct token_key *k, const char *token,
	    size_t len, int64_t now_s, int64_t max_age_s,
	    char campaign[TOKEN_CAMPAIGN_BUFSZ],
	    char address[TOKEN_ADDR_BUFSZ]);

#endif
