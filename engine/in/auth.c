/* auth: users file, scrypt hashes, failed-login limiter. See auth.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/mono.h"

#include "in/auth.h"

#define AUTH_SALT_LEN	16
#define AUTH_KEY_LEN	32
/* Refuse absurd parameters from a users file: they would pin a CPU or eat
 * gigabytes on every login. */
#define AUTH_N_MAX	(1u << 20)
#define AUTH_R_MAX	32u
#define AUTH_P_MAX	16u
#define AUTH_MEM_MAX	(256u << 20)	/* scrypt's V array, 128*r*N bytes */

#define AUTH_LIM_SLOTS	4096
#define AUTH_LIM_PROBE	8
#define AUTH_ADDR_MAX	64

struct auth_user {
	char	*name;	/* owns */
	char	*hash;	/* owns */
};

/*
 * Successful logins are remembered for AUTH_CACHE_TTL_US as a keyed
 * SHA-256 of (secret, user, password, stored hash), so a client that logs
 * in again and again (IMAP clients do, per folder) costs one hash lookup,
 * not one scrypt run. Failures are never cached: guessing still pays.
 */
#define AUTH_CACHE_SLOTS	1024
#define AUTH_CACHE_TTL_US	(10 * 60 * (mono_us)1000000)

struct auth_cache_ent {
	unsigned char	 key[32];
	mono_us		 expires;	/* 0 = free */
};

struct auth_users {
	struct auth_user	*v;	/* owns */
	size_t			 n;
	unsigned char		 secret[32];
	struct auth_cache_ent	*cache;	/* owns; AUTH_CACHE_SLOTS */
	unsigned long		 nhit;
};

struct auth_lim_slot {
	char	 addr[AUTH_ADDR_MAX];	/* "" = free */
	unsigned tokens;
	mono_us	 refill_at;	/* when the last token was counted */
	mono_us	 blocked_until;
	mono_us	 touched;
};

struct auth_limiter {
	unsigned		 burst;
	mono_us			 refill_us;
	mono_us			 block_us;
	struct auth_lim_slot	 slot[AUTH_LIM_SLOTS];
};

bool
auth_user_valid(const char *user)
{
	size_t	 n = strlen(user);

	if (n == 0 || n > AUTH_USER_MAX || user[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = user[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* Standard base64 decode of exactly len chars; -1 on bad input. */
static int
auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	int	 n, pad = 0;

	if (len == 0)
		return 0;
	if (len % 4 != 0 || len / 4 * 3 > outlen || len > 4096)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '=') {
			if (i < len - 2 || (i == len - 2 && in[len - 1] != '='))
				return -1;
			pad++;
		} else if (!((c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/')) {
			return -1;
		}
	}
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	return n - pad;
}

static int
auth_scrypt(const char *pass, size_t passlen, const unsigned char *salt,
    size_t saltlen, uint64_t n, uint64_t r, uint64_t p, unsigned char *key,
    size_t keylen)
{
	uint64_t maxmem = 128 * r * (n + p + 2) + (1u << 20);

	if (EVP_PBE_scrypt(pass, passlen, salt, saltlen, n, r, p, maxmem, key,
	    keylen) != 1)
		return -EIO;
	return 0;
}

static bool
auth_params_ok(uint64_t n, uint64_t r, uint64_t p)
{
	return n >= 2 && n <= AUTH_N_MAX && (n & (n - 1)) == 0 && r >= 1 &&
	    r <= AUTH_R_MAX && p >= 1 && p <= AUTH_P_MAX &&
	    128 * r * n <= AUTH_MEM_MAX;
}

int
auth_hash_password_params(const char *pass, size_t passlen, uint64_t n,
    uint64_t r, uint64_t p, char *out, size_t outlen)
{
	unsigned char	 salt[AUTH_SALT_LEN], key[AUTH_KEY_LEN];
	char		 s64[64], k64[64];
	int		 len, ret;

	if (!auth_params_ok(n, r, p) || passlen > AUTH_PASS_MAX)
		return -EINVAL;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -EIO;
	if ((ret = auth_scrypt(pass, passlen, salt, sizeof(salt), n, r, p, key,
	    sizeof(key))) != 0)
		return ret;
	EVP_EncodeBlock((unsigned char *)s64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)k64, key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
	len = snprintf(out, outlen, "$scrypt$%llu$%llu$%llu$%s$%s",
	    (unsigned long long)n, (unsigned long long)r,
	    (unsigned long long)p, s64, k64);
	if (len < 0 || (size_t)len >= outlen)
		return -ENOSPC;
	return 0;
}

int
auth_hash_password(const char *pass, size_t passlen, char *out, size_t outlen)
{
	return auth_hash_password_params(pass, passlen, AUTH_SCRYPT_N,
	    AUTH_SCRYPT_R, AUTH_SCRYPT_P, out, outlen);
}

/* Parse a decimal field ending at '$'; advances *pp past the '$'. */
static int
auth_field_u64(const char **pp, uint64_t *v)
{
	const char	*p = *pp;
	uint64_t	 x = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (x > 100000000)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '$')
		return -1;
	*pp = p + 1;
	*v = x;
	return 0;
}

int
auth_verify(const char *hash, const char *pass, size_t passlen)
{
	unsigned char	 salt[64], want[64], got[64];
	const char	*p = hash, *d;
	uint64_t	 n, r, pp;
	int		 saltlen, keylen;

	if (strncmp(p, "$scrypt$", 8) != 0)
		return -EINVAL;
	p += 8;
	if (auth_field_u64(&p, &n) != 0 || auth_field_u64(&p, &r) != 0 ||
	    auth_field_u64(&p, &pp) != 0 || !auth_params_ok(n, r, pp))
		return -EINVAL;
	if ((d = strchr(p, '$')) == NULL)
		return -EINVAL;
	saltlen = auth_b64_decode(p, (size_t)(d - p), salt, sizeof(salt));
	keylen = auth_b64_decode(d + 1, strlen(d + 1), want, sizeof(want));
	if (saltlen < 8 || keylen < 16)
		return -EINVAL;
	if (passlen > AUTH_PASS_MAX)
		return -EACCES;
	if (auth_scrypt(pass, passlen, salt, (size_t)saltlen, n, r, pp, got,
	    (size_t)keylen) != 0)
		return -EINVAL;
	if (CRYPTO_memcmp(got, want, (size_t)keylen) != 0) {
		OPENSSL_cleanse(got, sizeof(got));
		return -EACCES;
	}
	OPENSSL_cleanse(got, sizeof(got));
	return 0;
}

void
auth_users_free(struct auth_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		free(u->v[i].hash);
	}
	free(u->v);
	if (u->cache != NULL)
		OPENSSL_cleanse(u->cache, AUTH_CACHE_SLOTS *
		    sizeof(*u->cache));
	free(u->cache);
	OPENSSL_cleanse(u->secret, sizeof(u->secret));
	free(u);
}

struct auth_users *
auth_users_parse(const char *text, size_t len, int *err, unsigned *err_line)
{
	struct auth_users	*u;
	const char		*p = text, *end = text + len;
	unsigned		 lineno = 0;

	if ((u = calloc(1, sizeof(*u))) == NULL ||
	    (u->cache = calloc(AUTH_CACHE_SLOTS, sizeof(*u->cache))) == NULL) {
		free(u);
		*err = -ENOMEM;
		return NULL;
	}
	if (RAND_bytes(u->secret, sizeof(u->secret)) != 1) {
		auth_users_free(u);
		*err = -EIO;
		return NULL;
	}
	while (p < end) {
		const char	*nl = memchr(p, '\n', (size_t)(end - p));
		const char	*le = nl ? nl : end, *colon;
		size_t		 ll;
		struct auth_user *v;

		lineno++;
		ll = (size_t)(le - p);
		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll == 0 || p[0] == '#')
			goto next;
		colon = memchr(p, ':', ll);
		if (colon == NULL || colon == p ||
		    (size_t)(colon - p) > AUTH_USER_MAX ||
		    (size_t)(p + ll - colon - 1) > AUTH_HASH_MAX)
			goto bad;
		if ((v = realloc(u->v, (u->n + 1) * sizeof(*v))) == NULL) {
			*err = -ENOMEM;
			auth_users_free(u);
			return NULL;
		}
		u->v = v;
		v = &u->v[u->n];
		v->name = strndup(p, (size_t)(colon - p));
		v->hash = strndup(colon + 1, (size_t)(p + ll - colon - 1));
		if (v->name == NULL || v->hash == NULL) {
			free(v->name);
			free(v->hash);
			*err = -ENOMEM;
			auth_users_free(u);
			return NULL;
		}
		u->n++;
		if (!auth_user_valid(v->name) ||
		    strncmp(v->hash, "$scrypt$", 8) != 0)
			goto bad;
next:
		p = nl ? nl + 1 : end;
	}
	*err = 0;
	return u;
bad:
	if (err_line != NULL)
		*err_line = lineno;
	*err = -EINVAL;
	auth_users_free(u);
	return NULL;
}

struct auth_users *
auth_users_load(const char *path, int *err, unsigned *err_line)
{
	struct auth_users	*u;
	FILE			*f;
	char			*text = NULL;
	size_t			 len = 0, cap = 0, k;
	char			 chunk[4096];

	if ((f = fopen(path, "r")) == NULL) {
		*err = -errno;
		return NULL;
	}
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + k > cap) {
			char *t;

			cap = (len + k) * 2;
			if (cap > (64u << 20) ||
			    (t = realloc(text, cap)) == NULL) {
				free(text);
				fclose(f);
				*err = -ENOMEM;
				return NULL;
			}
			text = t;
		}
		memcpy(text + len, chunk, k);
		len += k;
	}
	fclose(f);
	u = auth_users_parse(text ? text : "", len, err, err_line);
	free(text);
	return u;
}

static int
auth_cache_key(const struct auth_users *u, const struct auth_user *au,
    const char *pass, size_t passlen, unsigned char key[32])
{
	EVP_MD_CTX	*c;
	int		 ok;

	if ((c = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, u->secret, sizeof(u->secret)) == 1 &&
	    EVP_DigestUpdate(c, au->name, strlen(au->name) + 1) == 1 &&
	    EVP_DigestUpdate(c, au->hash, strlen(au->hash) + 1) == 1 &&
	    EVP_DigestUpdate(c, pass, passlen) == 1 &&
	    EVP_DigestFinal_ex(c, key, NULL) == 1;
	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

int
auth_users_check(const struct auth_users *u, const char *user,
    const char *pass, size_t passlen)
{
	struct auth_users	*mu = (struct auth_users *)(uintptr_t)u;
	unsigned char		 key[32];
	struct auth_cache_ent	*e;
	mono_us			 now;

	for (size_t i = 0; i < u->n; i++) {
		if (strcmp(u->v[i].name, user) != 0)
			continue;
		if (passlen > AUTH_PASS_MAX ||
		    auth_cache_key(u, &u->v[i], pass, passlen, key) != 0)
			return auth_verify(u->v[i].hash, pass, passlen) == 0 ?
			    0 : -EACCES;
		now = mono_now();
		e = &u->cache[(key[0] | (unsigned)key[1] << 8) %
		    AUTH_CACHE_SLOTS];
		if (e->expires > now && CRYPTO_memcmp(e->key, key,
		    sizeof(key)) == 0) {
			mu->nhit++;
			OPENSSL_cleanse(key, sizeof(key));
			return 0;
		}
		if (auth_verify(u->v[i].hash, pass, passlen) != 0) {
			OPENSSL_cleanse(key, sizeof(key));
			return -EACCES;
		}
		memcpy(e->key, key, sizeof(key));
		e->expires = now + AUTH_CACHE_TTL_US;
		OPENSSL_cleanse(key, sizeof(key));
		return 0;
	}
	/* Unknown user: spend the same time as a real check (with the
	 * first user's parameters), then refuse whatever it says. */
	if (u->n > 0)
		(void)auth_verify(u->v[0].hash, pass, passlen);
	return -EACCES;
}

unsigned long
auth_users_cache_hits(const struct auth_users *u)
{
	return u->nhit;
}

struct auth_limiter *
auth_limiter_new(unsigned burst, mono_us refill_us, mono_us block_us)
{
	struct auth_limiter	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->burst = burst ? burst : 1;
	l->refill_us = refill_us;
	l->block_us = block_us;
	return l;
}

void
auth_limiter_free(struct auth_limiter *l)
{
	free(l);
}

static uint32_t
auth_addr_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Find addr's slot; create (evicting the stalest in the window) if asked. */
static struct auth_lim_slot *
auth_limiter_slot(struct auth_limiter *l, const char *addr, bool create)
{
	uint32_t		 h = auth_addr_hash(addr);
	struct auth_lim_slot	*victim = NULL;

	for (unsigned i = 0; i < AUTH_LIM_PROBE; i++) {
		struct auth_lim_slot *s = &l->slot[(h + i) % AUTH_LIM_SLOTS];

		if (s->addr[0] != '\0' && strcmp(s->addr, addr) == 0)
			return s;
		if (s->addr[0] == '\0') {
			if (victim == NULL || victim->addr[0] != '\0')
				victim = s;
		} else if (victim == NULL || (victim->addr[0] != '\0' &&
		    s->touched < victim->touched)) {
			victim = s;
		}
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
	victim->tokens = l->burst;
	victim->refill_at = mono_now();
	return victim;
}

int
auth_limiter_check(struct auth_limiter *l, const char *addr)
{
	struct auth_lim_slot	*s;

	if (l == NULL || addr == NULL || addr[0] == '\0')
		return 0;
	if ((s = auth_limiter_slot(l, addr, false)) == NULL)
		return 0;
	return mono_now() < s->blocked_until ? -EAGAIN : 0;
}

void
auth_limiter_fail(struct auth_limiter *l, const char *addr)
{
	struct auth_lim_slot	*s;
	mono_us			 now = mono_now();

	if (l == NULL || addr == NULL || addr[0] == '\0')
		return;
	s = auth_limiter_slot(l, addr, true);
	if (l->refill_us > 0 && now > s->refill_at) {
		mono_us k = (now - s->refill_at) / l->refill_us;

		if (k > 0) {
			if ((uint64_t)k >= l->burst - s->tokens)
				s->tokens = l->burst;
			else
				s->tokens += (unsigned)k;
			s->refill_at += k * l->refill_us;
		}
	}
	s->touched = now;
	if (s->tokens > 0)
		s->tokens--;
	if (s->tokens == 0)
		s->blocked_until = now + l->block_us;
}

void
auth_limiter_success(struct auth_limiter *l, const char *addr)
{
	struct auth_lim_slot	*s;

	if (l == NULL || addr == NULL)
		return;
	if ((s = auth_limiter_slot(l, addr, false)) != NULL)
		memset(s, 0, sizeof(*s));
}

int
auth_sasl_plain(const char *b64, size_t len, char *user, size_t userlen,
    char *pass, size_t passlen)
{
	unsigned char	 raw[3 * 1024];
	int		 n;
	const unsigned char *a, *b, *end;
	size_t		 ul, pl;

	n = auth_b64_decode(b64, len, raw, sizeof(raw) - 1);
	if (n < 0)
		return -EINVAL;
	end = raw + n;
	/* RFC 4616: [authzid] NUL authcid NUL passwd */
	if ((a = memchr(raw, '\0', (size_t)n)) == NULL)
		return -EINVAL;
	a++;
	if ((b = memchr(a, '\0', (size_t)(end - a))) == NULL)
		return -EINVAL;
	ul = (size_t)(b - a);
	b++;
	pl = (size_t)(end - b);
	/* An authzid other than the user itself is not supported. */
	if (a - 1 != raw && ((size_t)(a - 1 - raw) != ul ||
	    memcmp(raw, a, ul) != 0))
		return -EPERM;
	if (ul == 0 || ul >= userlen || pl >= passlen ||
	    memchr(b, '\0', pl) != NULL)
		return -EINVAL;
	memcpy(user, a, ul);
	user[ul] = '\0';
	memcpy(pass, b, pl);
	pass[pl] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}
