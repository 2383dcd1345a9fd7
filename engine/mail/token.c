/*
 * token: VERP and unsubscribe tokens. See token.h for both formats.
 *
 * Decoding never trusts a field before the MAC is checked: the VERP
 * decoder parses only enough to re-encode the token with our key and then
 * compares the whole string in constant time, which also rejects every
 * non-canonical spelling; the unsubscribe checker verifies the MAC over
 * the raw bytes before it reads a single field.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "mail/addr.h"

#include "mail/token.h"

#define TOKEN_MAC_LEN		32
#define VERP_MAC_BITS		64
#define VERP_HASH_BYTES		10
#define VERP_BITS_MAX		(5 * (VERP_LOCAL_MAX - 2))	/* 310 */
#define VERP_INLINE_BITS_MAX	(VERP_BITS_MAX - 1 - 6 - 5 - 32 - \
				    VERP_MAC_BITS)		/* 202 */
#define UNSUB_VERSION		1
#define UNSUB_HDR		7	/* version, 5 time, campaign length */
#define UNSUB_MAC		16
#define UNSUB_RAW_MAX		(UNSUB_HDR + TOKEN_CAMPAIGN_MAX + \
				    TOKEN_ADDR_MAX + UNSUB_MAC)	/* 341 */

struct token_key {
	unsigned char	 secret[TOKEN_SECRET_MAX];	/* owns; wiped */
	size_t		 len;
	EVP_MAC		*mac;		/* owns (fetched HMAC) */
	EVP_MAC_CTX	*ctx;		/* owns; keyed once, reused */
};

static const char token_b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char token_b64u[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct token_key *
token_key_new(const void *secret, size_t len)
{
	struct token_key	*k;
	OSSL_PARAM		 p[2];

	if (secret == NULL || len < TOKEN_SECRET_MIN || len > TOKEN_SECRET_MAX)
		return NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	memcpy(k->secret, secret, len);
	k->len = len;
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_end();
	if ((k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (k->ctx = EVP_MAC_CTX_new(k->mac)) == NULL ||
	    EVP_MAC_init(k->ctx, k->secret, k->len, p) != 1) {
		token_key_free(k);
		return NULL;
	}
	return k;
}

struct token_key *
token_key_dup(const struct token_key *k)
{
	return token_key_new(k->secret, k->len);
}

void
token_key_free(struct token_key *k)
{
	if (k == NULL)
		return;
	EVP_MAC_CTX_free(k->ctx);
	EVP_MAC_free(k->mac);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

static void
token_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
token_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct token_key *
token_key_load(const char *path, char *err, size_t errlen)
{
	unsigned char	 buf[TOKEN_SECRET_MAX + 2];
	struct token_key *k = NULL;
	struct stat	 st;
	ssize_t		 r;
	size_t		 n = 0;
	int		 fd;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0') {
		token_errf(err, errlen, "no secret file given");
		return NULL;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		token_errf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		token_errf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
		token_errf(err, errlen, "%s: readable or writable by others; "
		    "chmod 600 it", path);
		goto out;
	}
	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			token_errf(err, errlen, "%s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	if (n > TOKEN_SECRET_MAX)
		token_errf(err, errlen, "%s: secret longer than %d bytes",
		    path, TOKEN_SECRET_MAX);
	else if (n < TOKEN_SECRET_MIN)
		token_errf(err, errlen, "%s: secret shorter than %d bytes "
		    "(make one with: openssl rand -hex 32)", path,
		    TOKEN_SECRET_MIN);
	else if ((k = token_key_new(buf, n)) == NULL)
		token_errf(err, errlen, "%s: cannot set up HMAC-SHA256", path);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return k;
}

/* HMAC-SHA256(key, dom || data) into out[32]. 0 or -EIO. */
static int
token_mac(const struct token_key *k, const char *dom, const void *data,
    size_t n, unsigned char out[TOKEN_MAC_LEN])
{
	size_t olen = 0;

	/* A NULL key re-keys from the saved state: no new context. */
	if (EVP_MAC_init(k->ctx, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(k->ctx, (const unsigned char *)dom,
	    strlen(dom) + 1) != 1 ||
	    EVP_MAC_update(k->ctx, data, n) != 1 ||
	    EVP_MAC_final(k->ctx, out, &olen, TOKEN_MAC_LEN) != 1 ||
	    olen != TOKEN_MAC_LEN)
		return -EIO;
	return 0;
}

static bool
token_campaign_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

int
token_campaign_ok(const char *campaign)
{
	size_t n;

	if (campaign == NULL)
		return 0;
	for (n = 0; campaign[n] != '\0'; n++)
		if (n == TOKEN_CAMPAIGN_MAX || !token_campaign_char(campaign[n]))
			return 0;
	return n > 0;
}

/* ---- VERP ---- */

struct token_bits {
	uint8_t	 b[(VERP_BITS_MAX + 7) / 8 + 1];
	size_t	 n;		/* bits written / available */
	size_t	 pos;		/* read cursor */
};

static void
token_put(struct token_bits *w, uint64_t v, unsigned nbits)
{
	while (nbits-- > 0) {
		if (w->n / 8 < sizeof(w->b) && ((v >> nbits) & 1))
			w->b[w->n / 8] |= (uint8_t)(0x80 >> (w->n % 8));
		w->n++;
	}
}

static int
token_get(struct token_bits *r, unsigned nbits, uint64_t *v)
{
	uint64_t x = 0;

	if (r->pos + nbits > r->n)
		return -EINVAL;
	while (nbits-- > 0) {
		x = (x << 1) | ((r->b[r->pos / 8] >> (7 - r->pos % 8)) & 1);
		r->pos++;
	}
	*v = x;
	return 0;
}

static int
verp_code(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return 10 + c - 'a';
	if (c >= 'A' && c <= 'Z')
		return 36 + c - 'A';
	if (c == '-')
		return 62;
	return c == '_' ? 63 : 64;	/* 64: '.', written 63,1 */
}

static char
verp_char(unsigned code)
{
	if (code < 10)
		return (char)('0' + code);
	if (code < 36)
		return (char)('a' + code - 10);
	if (code < 62)
		return (char)('A' + code - 36);
	return '-';
}

static size_t
verp_campaign_bits(const char *c, size_t n)
{
	size_t bits = 0;

	for (size_t i = 0; i < n; i++)
		bits += verp_code(c[i]) < 63 ? 6 : 7;
	return bits;
}

int
verp_campaign_inline(const char *campaign)
{
	return token_campaign_ok(campaign) && verp_campaign_bits(campaign,
	    strlen(campaign)) <= VERP_INLINE_BITS_MAX;
}

static int
verp_hash(const char *campaign, unsigned char h[VERP_HASH_BYTES])
{
	unsigned char	d[32];
	unsigned int	dl = 0;

	if (EVP_Digest(campaign, strlen(campaign), d, &dl, EVP_sha256(),
	    NULL) != 1 || dl != 32)
		return -EIO;
	memcpy(h, d, VERP_HASH_BYTES);
	return 0;
}

static void
verp_hex(const unsigned char h[VERP_HASH_BYTES], char out[TOKEN_CAMPAIGN_BUFSZ])
{
	static const char hx[] = "0123456789abcdef";

	out[0] = '~';
	for (size_t i = 0; i < VERP_HASH_BYTES; i++) {
		out[1 + 2 * i] = hx[h[i] >> 4];
		out[2 + 2 * i] = hx[h[i] & 15];
	}
	out[VERP_HASHED_LEN] = '\0';
}

int
verp_campaign_hashed(const char *campaign, char out[TOKEN_CAMPAIGN_BUFSZ])
{
	unsigned char	h[VERP_HASH_BYTES];
	int		rc;

	if (!token_campaign_ok(campaign))
		return -EINVAL;
	if ((rc = verp_hash(campaign, h)) != 0)
		return rc;
	verp_hex(h, out);
	return 0;
}

/*
 * The one canonical encoding: form 0 with the id's characters, or form 1
 * with its 10-byte hash in hb.
 */
static int
verp_pack(const struct token_key *k, int form, const char *camp, size_t clen,
    const unsigned char *hb, uint32_t index, char out[VERP_LOCAL_BUFSZ])
{
	struct token_bits	 w;
	unsigned char		 mac[TOKEN_MAC_LEN];
	unsigned char		 in[1 + TOKEN_CAMPAIGN_MAX + 1 + 4];
	size_t			 n = 0, nchar;
	unsigned		 L = 1;
	int			 rc;

	memset(&w, 0, sizeof(w));
	token_put(&w, (uint64_t)form, 1);
	in[n++] = (unsigned char)form;
	if (form == 0) {
		token_put(&w, clen - 1, 6);
		for (size_t i = 0; i < clen; i++) {
			int c = verp_code(camp[i]);

			if (c < 63)
				token_put(&w, (uint64_t)c, 6);
			else
				token_put(&w, c == 63 ? 126 : 127, 7);
		}
		memcpy(in + n, camp, clen);
		n += clen;
	} else {
		for (size_t i = 0; i < VERP_HASH_BYTES; i++)
			token_put(&w, hb[i], 8);
		memcpy(in + n, hb, VERP_HASH_BYTES);
		n += VERP_HASH_BYTES;
	}
	while (L < 32 && (index >> L) != 0)
		L++;
	token_put(&w, L - 1, 5);
	token_put(&w, index, L);
	in[n++] = '\0';
	in[n++] = (unsigned char)(index >> 24);
	in[n++] = (unsigned char)(index >> 16);
	in[n++] = (unsigned char)(index >> 8);
	in[n++] = (unsigned char)index;
	if ((rc = token_mac(k, "ringmail-verp-1", in, n, mac)) != 0)
		return rc;
	for (size_t i = 0; i < VERP_MAC_BITS / 8; i++)
		token_put(&w, mac[i], 8);
	if (w.n > VERP_BITS_MAX)
		return -EINVAL;		/* cannot happen: inline is capped */
	memcpy(out, VERP_PREFIX, 2);
	nchar = (w.n + 4) / 5;
	w.pos = 0;
	w.n = nchar * 5;		/* the pad bits are zero */
	for (size_t i = 0; i < nchar; i++) {
		uint64_t v = 0;

		(void)token_get(&w, 5, &v);
		out[2 + i] = token_b32[v];
	}
	out[2 + nchar] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

int
verp_encode(const struct token_key *k, const char *campaign, uint32_t index,
    char out[VERP_LOCAL_BUFSZ])
{
	unsigned char	h[VERP_HASH_BYTES];
	int		rc;

	if (!token_campaign_ok(campaign))
		return -EINVAL;
	if (verp_campaign_inline(campaign))
		return verp_pack(k, 0, campaign, strlen(campaign), NULL, index,
		    out);
	if ((rc = verp_hash(campaign, h)) != 0)
		return rc;
	return verp_pack(k, 1, NULL, 0, h, index, out);
}

int
verp_decode(const struct token_key *k, const char *local, size_t len,
    char campaign[TOKEN_CAMPAIGN_BUFSZ], uint32_t *index)
{
	struct token_bits	 r;
	char			 low[VERP_LOCAL_BUFSZ], again[VERP_LOCAL_BUFSZ];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ];
	unsigned char		 h[VERP_HASH_BYTES];
	uint64_t		 form, v, L;
	size_t			 clen = 0;
	int			 rc;

	if (local == NULL || len < 3 || len > VERP_LOCAL_MAX)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < len; i++) {
		char c = local[i];

		low[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	low[len] = '\0';
	if (low[0] != 'b' || low[1] != '-')
		return -EINVAL;
	for (size_t i = 2; i < len; i++) {
		const char *p = low[i] != '\0' ? strchr(token_b32, low[i]) :
		    NULL;

		if (p == NULL)
			return -EINVAL;
		token_put(&r, (uint64_t)(p - token_b32), 5);
	}
	if (token_get(&r, 1, &form) != 0)
		return -EINVAL;
	if (form == 0) {
		if (token_get(&r, 6, &v) != 0)
			return -EINVAL;
		clen = (size_t)v + 1;
		for (size_t i = 0; i < clen; i++) {
			if (token_get(&r, 6, &v) != 0)
				return -EINVAL;
			if (v == 63) {
				if (token_get(&r, 1, &v) != 0)
					return -EINVAL;
				camp[i] = v == 0 ? '_' : '.';
			} else {
				camp[i] = verp_char((unsigned)v);
			}
		}
		camp[clen] = '\0';
		/* verp_encode hashes longer ids: only one spelling. */
		if (verp_campaign_bits(camp, clen) > VERP_INLINE_BITS_MAX)
			return -EINVAL;
	} else {
		for (size_t i = 0; i < VERP_HASH_BYTES; i++) {
			if (token_get(&r, 8, &v) != 0)
				return -EINVAL;
			h[i] = (unsigned char)v;
		}
	}
	if (token_get(&r, 5, &L) != 0 || token_get(&r, (unsigned)L + 1,
	    &v) != 0)
		return -EINVAL;
	if ((rc = verp_pack(k, (int)form, camp, clen, h, (uint32_t)v,
	    again)) != 0)
		return rc == -EINVAL ? -EBADMSG : rc;
	/* Every bit of the token, MAC included, must be ours. */
	if (strlen(again) != len || CRYPTO_memcmp(again, low, len) != 0)
		return -EBADMSG;
	if (form == 0)
		memcpy(campaign, camp, clen + 1);
	else
		verp_hex(h, campaign);
	*index = (uint32_t)v;
	return 0;
}

/* ---- unsubscribe ---- */

static size_t
token_b64u_enc(const unsigned char *p, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
		    p[i + 2];

		out[o++] = token_b64u[v >> 18];
		out[o++] = token_b64u[(v >> 12) & 63];
		out[o++] = token_b64u[(v >> 6) & 63];
		out[o++] = token_b64u[v & 63];
	}
	if (n - i == 1) {
		out[o++] = token_b64u[p[i] >> 2];
		out[o++] = token_b64u[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];

		out[o++] = token_b64u[v >> 10];
		out[o++] = token_b64u[(v >> 4) & 63];
		out[o++] = token_b64u[(v & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

static int
token_b64u_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	return c == '_' ? 63 : -1;
}

/* Strict: no padding, no stray bits; -EINVAL otherwise. */
static int
token_b64u_dec(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	uint32_t	acc = 0;
	unsigned	nb = 0;
	size_t		o = 0;

	if (n % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int v = token_b64u_val(s[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		nb += 6;
		if (nb >= 8) {
			nb -= 8;
			out[o++] = (unsigned char)(acc >> nb);
			acc &= (1u << nb) - 1;
		}
	}
	if (acc != 0)
		return -EINVAL;
	*outlen = o;
	return 0;
}

static bool
token_addr_ok(const char *a, size_t n)
{
	const char *why = NULL;

	return n >= 3 && n <= TOKEN_ADDR_MAX &&
	    addr_validate(a, n, NULL, &why) == 0;
}

int
unsub_token_make(const struct token_key *k, const char *campaign,
    const char *address, int64_t issued_s, char out[UNSUB_TOKEN_BUFSZ])
{
	unsigned char	raw[UNSUB_RAW_MAX], mac[TOKEN_MAC_LEN];
	size_t		clen, alen, n = 0;
	int		rc;

	if (!token_campaign_ok(campaign) || address == NULL ||
	    !token_addr_ok(address, strlen(address)) || issued_s < 0 ||
	    issued_s >= (int64_t)1 << 40)
		return -EINVAL;
	clen = strlen(campaign);
	alen = strlen(address);
	raw[n++] = UNSUB_VERSION;
	for (int s = 32; s >= 0; s -= 8)
		raw[n++] = (unsigned char)((uint64_t)issued_s >> s);
	raw[n++] = (unsigned char)clen;
	memcpy(raw + n, campaign, clen);
	n += clen;
	memcpy(raw + n, address, alen);
	n += alen;
	if ((rc = token_mac(k, "ringmail-unsub-1", raw, n, mac)) != 0)
		return rc;
	memcpy(raw + n, mac, UNSUB_MAC);
	n += UNSUB_MAC;
	token_b64u_enc(raw, n, out);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

int
unsub_token_check(const struct token_key *k, const char *token, size_t len,
    int64_t now_s, int64_t max_age_s, char campaign[TOKEN_CAMPAIGN_BUFSZ],
    char address[TOKEN_ADDR_BUFSZ])
{
	unsigned char	 raw[UNSUB_RAW_MAX + 3], mac[TOKEN_MAC_LEN];
	size_t		 n = 0, body, clen, alen;
	int64_t		 issued = 0;
	const char	*c, *a;
	int		 rc;

	if (token == NULL || len > UNSUB_TOKEN_MAX ||
	    token_b64u_dec(token, len, raw, &n) != 0)
		return -EINVAL;
	if (n < UNSUB_HDR + 1 + 3 + UNSUB_MAC)
		return -EINVAL;
	body = n - UNSUB_MAC;
	if ((rc = token_mac(k, "ringmail-unsub-1", raw, body, mac)) != 0)
		return rc;
	rc = CRYPTO_memcmp(mac, raw + body, UNSUB_MAC) == 0 ? 0 : -EBADMSG;
	OPENSSL_cleanse(mac, sizeof(mac));
	if (rc != 0)
		return rc;
	/* Authentic from here on; still checked, as a second line. */
	if (raw[0] != UNSUB_VERSION)
		return -EINVAL;
	for (int i = 1; i <= 5; i++)
		issued = (issued << 8) | raw[i];
	clen = raw[6];
	if (clen == 0 || clen > TOKEN_CAMPAIGN_MAX || UNSUB_HDR + clen >= body)
		return -EINVAL;
	c = (const char *)raw + UNSUB_HDR;
	a = c + clen;
	alen = body - UNSUB_HDR - clen;
	for (size_t i = 0; i < clen; i++)
		if (!token_campaign_char(c[i]))
			return -EINVAL;
	if (!token_addr_ok(a, alen))
		return -EINVAL;
	if (issued > now_s + UNSUB_CLOCK_SKEW_S ||
	    (max_age_s > 0 && now_s - issued > max_age_s))
		return -ESTALE;
	memcpy(campaign, c, clen);
	campaign[clen] = '\0';
	memcpy(address, a, alen);
	address[alen] = '\0';
	return 0;
}
