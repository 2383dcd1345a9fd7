#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mail/token.h"

static const char secret[] = "0123456789abcdef0123456789abcdef";
static const char other[] = "fedcba9876543210fedcba9876543210";

static struct token_key *
key(const char *s)
{
	struct token_key *k = token_key_new(s, strlen(s));

	cr_assert_not_null(k);
	return k;
}

static const char *const campaigns[] = {
	"a", "spring-sale-2026", "Camp_01.x", "ABCxyz-09",
	"123456789012345678901234567890123",		/* 33: inline */
	"1234567890123456789012345678901234",		/* 34: hashed */
	"a.b_c.d_e.f_g.h_i.j_k.l_m.n_o.p_q",		/* 7-bit chars */
	"x123456789012345678901234567890123456789012345678901234567890123",
};

Test(token, verp_round_trip_and_length)
{
	struct token_key	*k = key(secret);
	const uint32_t		 idx[] = { 0, 1, 2, 31, 32, 123456, 0x7fffffff,
	    UINT32_MAX };

	for (size_t c = 0; c < sizeof(campaigns) / sizeof(*campaigns); c++) {
		for (size_t i = 0; i < sizeof(idx) / sizeof(*idx); i++) {
			char		 lp[VERP_LOCAL_BUFSZ];
			char		 camp[TOKEN_CAMPAIGN_BUFSZ], want[72];
			uint32_t	 got = 7;
			size_t		 n;

			cr_assert_eq(verp_encode(k, campaigns[c], idx[i], lp),
			    0);
			n = strlen(lp);
			cr_assert_leq(n, VERP_LOCAL_MAX, "%s", lp);
			cr_assert_eq(strncmp(lp, "b-", 2), 0);
			for (size_t j = 2; j < n; j++)
				cr_assert(strchr("abcdefghijklmnopqrstuvwxyz"
				    "234567", lp[j]) != NULL);
			cr_assert_eq(verp_decode(k, lp, n, camp, &got), 0,
			    "%s", lp);
			cr_assert_eq(got, idx[i]);
			if (verp_campaign_inline(campaigns[c]))
				snprintf(want, sizeof(want), "%s",
				    campaigns[c]);
			else
				cr_assert_eq(verp_campaign_hashed(campaigns[c],
				    want), 0);
			cr_assert_str_eq(camp, want);
		}
	}
	token_key_free(k);
}

Test(token, verp_inline_rule_and_short_tokens)
{
	struct token_key	*k = key(secret);
	char			 lp[VERP_LOCAL_BUFSZ], h[TOKEN_CAMPAIGN_BUFSZ];

	cr_assert(verp_campaign_inline(campaigns[4]));
	cr_assert_not(verp_campaign_inline(campaigns[5]));
	cr_assert_not(verp_campaign_inline(campaigns[7]));
	cr_assert_eq(verp_campaign_hashed(campaigns[7], h), 0);
	cr_assert_eq(strlen(h), VERP_HASHED_LEN);
	cr_assert_eq(h[0], '~');
	/* The documented example: 1+6+96+5+17+64 = 189 bits, 38 chars. */
	cr_assert_eq(verp_encode(k, "spring-sale-2026", 123456, lp), 0);
	cr_assert_eq(strlen(lp), 2 + 38);
	cr_assert_eq(verp_encode(k, "a", 0, lp), 0);
	cr_assert_eq(strlen(lp), 2 + 17);	/* 1+6+6+5+1+64 = 83 bits */
	token_key_free(k);
}

Test(token, verp_bad_campaigns)
{
	struct token_key	*k = key(secret);
	char			 lp[VERP_LOCAL_BUFSZ];

	cr_assert_eq(verp_encode(k, "", 1, lp), -EINVAL);
	cr_assert_eq(verp_encode(k, "sp ace", 1, lp), -EINVAL);
	cr_assert_eq(verp_encode(k, "a@b", 1, lp), -EINVAL);
	cr_assert_eq(verp_encode(k, NULL, 1, lp), -EINVAL);
	cr_assert_eq(verp_encode(k, "x12345678901234567890123456789012345678901"
	    "234567890123456789012345", 1, lp), -EINVAL);	/* 65 */
	token_key_free(k);
}

Test(token, verp_upper_case_accepted)
{
	struct token_key	*k = key(secret);
	char			 lp[VERP_LOCAL_BUFSZ], camp[TOKEN_CAMPAIGN_BUFSZ];
	uint32_t		 idx = 0;

	cr_assert_eq(verp_encode(k, "Promo-A", 99, lp), 0);
	for (char *p = lp; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	cr_assert_eq(verp_decode(k, lp, strlen(lp), camp, &idx), 0);
	cr_assert_str_eq(camp, "Promo-A");	/* case kept inside */
	cr_assert_eq(idx, 99);
	token_key_free(k);
}

Test(token, verp_forged_modified_truncated)
{
	struct token_key	*k = key(secret), *k2 = key(other);
	char			 lp[VERP_LOCAL_BUFSZ], m[VERP_LOCAL_BUFSZ];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ] = "untouched";
	uint32_t		 idx = 42;
	size_t			 n;
	const char		*alpha = "abcdefghijklmnopqrstuvwxyz234567";

	cr_assert_eq(verp_encode(k, "spring-sale-2026", 123456, lp), 0);
	n = strlen(lp);
	/* Another key's token. */
	cr_assert_eq(verp_decode(k2, lp, n, camp, &idx), -EBADMSG);
	/* Every single-character change of the token body. */
	for (size_t i = 2; i < n; i++) {
		for (const char *a = alpha; *a; a++) {
			if (*a == lp[i])
				continue;
			memcpy(m, lp, n + 1);
			m[i] = *a;
			cr_assert_neq(verp_decode(k, m, n, camp, &idx), 0,
			    "accepted %s", m);
		}
	}
	/* Every truncation, and an extra character. */
	for (size_t i = 0; i < n; i++)
		cr_assert_neq(verp_decode(k, lp, i, camp, &idx), 0);
	memcpy(m, lp, n);
	m[n] = 'a';
	m[n + 1] = '\0';
	cr_assert_neq(verp_decode(k, m, n + 1, camp, &idx), 0);
	/* Wrong prefix, bad characters. */
	memcpy(m, lp, n + 1);
	m[0] = 'c';
	cr_assert_eq(verp_decode(k, m, n, camp, &idx), -EINVAL);
	memcpy(m, lp, n + 1);
	m[5] = '1';		/* not in the base32 alphabet */
	cr_assert_eq(verp_decode(k, m, n, camp, &idx), -EINVAL);
	cr_assert_eq(verp_decode(k, "b-\0abc", 6, camp, &idx), -EINVAL);
	cr_assert_str_eq(camp, "untouched");
	cr_assert_eq(idx, 42);
	token_key_free(k);
	token_key_free(k2);
}

Test(token, unsub_round_trip)
{
	struct token_key	*k = key(secret);
	char			 t[UNSUB_TOKEN_BUFSZ];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ], addr[TOKEN_ADDR_BUFSZ];
	const char		*addrs[] = { "a@b.c", "Alice.Smith+tag@Example.COM",
	    "\"quoted local\"@example.org", "j\xc3\xbcrgen@b\xc3\xbc.example" };

	for (size_t i = 0; i < sizeof(addrs) / sizeof(*addrs); i++) {
		cr_assert_eq(unsub_token_make(k, "spring-2026", addrs[i],
		    1700000000, t), 0);
		cr_assert_eq(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
		    "opqrstuvwxyz0123456789-_"), strlen(t));
		cr_assert_eq(unsub_token_check(k, t, strlen(t), 1700000100,
		    86400, camp, addr), 0);
		cr_assert_str_eq(camp, "spring-2026");
		cr_assert_str_eq(addr, addrs[i]);
	}
	token_key_free(k);
}

Test(token, unsub_longest_fits)
{
	struct token_key	*k = key(secret);
	char			 t[UNSUB_TOKEN_BUFSZ], a[TOKEN_ADDR_BUFSZ];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ], addr[TOKEN_ADDR_BUFSZ];
	char			 c64[65];

	memset(c64, 'c', 64);
	c64[64] = '\0';
	/* 64-char local part, @, then 189 domain chars in labels. */
	memset(a, 'l', 64);
	a[64] = '@';
	for (int i = 65; i < TOKEN_ADDR_MAX; i++)
		a[i] = (i - 65) % 60 == 59 ? '.' : 'd';
	a[TOKEN_ADDR_MAX - 1] = 'x';
	a[TOKEN_ADDR_MAX] = '\0';
	cr_assert_eq(unsub_token_make(k, c64, a, ((int64_t)1 << 40) - 1, t),
	    0);
	cr_assert_eq(strlen(t), UNSUB_TOKEN_MAX);
	cr_assert_eq(unsub_token_check(k, t, strlen(t), ((int64_t)1 << 40) - 1,
	    0, camp, addr), 0);
	cr_assert_str_eq(addr, a);
	cr_assert_str_eq(camp, c64);
	token_key_free(k);
}

Test(token, unsub_layout_is_documented_hmac)
{
	struct token_key	*k = key(secret);
	char			 t[UNSUB_TOKEN_BUFSZ], b64[UNSUB_TOKEN_BUFSZ + 4];
	unsigned char		 raw[400], in[400], mac[32];
	unsigned int		 maclen = 0;
	size_t			 n, tl;
	int			 m;

	cr_assert_eq(unsub_token_make(k, "c1", "a@b.example", 0x0102030405,
	    t), 0);
	/* base64url -> base64 with padding, decoded by OpenSSL. */
	tl = strlen(t);
	for (size_t i = 0; i < tl; i++)
		b64[i] = t[i] == '-' ? '+' : t[i] == '_' ? '/' : t[i];
	while (tl % 4 != 0)
		b64[tl++] = '=';
	b64[tl] = '\0';
	m = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)tl);
	cr_assert_gt(m, 0);
	n = (size_t)m - (tl - strlen(t));
	cr_assert_eq(n, 7 + 2 + 11 + 16);
	cr_assert_eq(memcmp(raw, "\x01\x01\x02\x03\x04\x05\x02" "c1"
	    "a@b.example", 20), 0);
	memcpy(in, "ringmail-unsub-1", 17);	/* with its NUL */
	memcpy(in + 17, raw, 20);
	cr_assert_not_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), in,
	    37, mac, &maclen));
	cr_assert_eq(memcmp(mac, raw + 20, 16), 0);
	token_key_free(k);
}

Test(token, unsub_forged_modified_truncated)
{
	struct token_key	*k = key(secret), *k2 = key(other);
	char			 t[UNSUB_TOKEN_BUFSZ], m[UNSUB_TOKEN_BUFSZ + 1];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ] = "keep";
	char			 addr[TOKEN_ADDR_BUFSZ] = "keep";
	size_t			 n;

	cr_assert_eq(unsub_token_make(k, "c", "victim@example.com", 1000, t),
	    0);
	n = strlen(t);
	cr_assert_eq(unsub_token_check(k2, t, n, 1000, 0, camp, addr),
	    -EBADMSG);
	for (size_t i = 0; i < n; i++) {
		memcpy(m, t, n + 1);
		m[i] = m[i] == 'A' ? 'B' : 'A';
		cr_assert_neq(unsub_token_check(k, m, n, 1000, 0, camp, addr),
		    0, "accepted change at %zu", i);
	}
	for (size_t i = 0; i < n; i++)
		cr_assert_neq(unsub_token_check(k, t, i, 1000, 0, camp, addr),
		    0);
	memcpy(m, t, n);
	m[n] = '=';
	cr_assert_eq(unsub_token_check(k, m, n + 1, 1000, 0, camp, addr),
	    -EINVAL);
	cr_assert_eq(unsub_token_check(k, "", 0, 1000, 0, camp, addr),
	    -EINVAL);
	cr_assert_eq(unsub_token_check(k, NULL, 0, 1000, 0, camp, addr),
	    -EINVAL);
	cr_assert_str_eq(camp, "keep");
	cr_assert_str_eq(addr, "keep");
	token_key_free(k);
	token_key_free(k2);
}

Test(token, unsub_expiry)
{
	struct token_key	*k = key(secret);
	char			 t[UNSUB_TOKEN_BUFSZ];
	char			 camp[TOKEN_CAMPAIGN_BUFSZ], addr[TOKEN_ADDR_BUFSZ];
	int64_t			 day = 86400, t0 = 1700000000;

	cr_assert_eq(unsub_token_make(k, "c", "a@b.example", t0, t), 0);
	cr_assert_eq(unsub_token_check(k, t, strlen(t), t0 + 90 * day,
	    90 * day, camp, addr), 0);
	cr_assert_eq(unsub_token_check(k, t, strlen(t), t0 + 90 * day + 1,
	    90 * day, camp, addr), -ESTALE);
	cr_assert_eq(unsub_token_check(k, t, strlen(t), t0 + 3650 * day, 0,
	    camp, addr), 0);		/* 0 = no expiry */
	cr_assert_eq(unsub_token_check(k, t, strlen(t),
	    t0 - UNSUB_CLOCK_SKEW_S, day, camp, addr), 0);
	cr_assert_eq(unsub_token_check(k, t, strlen(t),
	    t0 - UNSUB_CLOCK_SKEW_S - 1, day, camp, addr), -ESTALE);
	token_key_free(k);
}

Test(token, unsub_bad_inputs)
{
	struct token_key	*k = key(secret);
	char			 t[UNSUB_TOKEN_BUFSZ];

	cr_assert_eq(unsub_token_make(k, "c", "no-at-sign", 1, t), -EINVAL);
	cr_assert_eq(unsub_token_make(k, "c", "a@b.example\r\nBcc: x@y", 1,
	    t), -EINVAL);
	cr_assert_eq(unsub_token_make(k, "c/d", "a@b.example", 1, t), -EINVAL);
	cr_assert_eq(unsub_token_make(k, "c", "a@b.example", -1, t), -EINVAL);
	cr_assert_eq(unsub_token_make(k, "c", "a@b.example", (int64_t)1 << 40,
	    t), -EINVAL);
	token_key_free(k);
}

Test(token, key_new_limits)
{
	struct token_key *k;

	cr_assert_null(token_key_new("short", 5));
	cr_assert_null(token_key_new(NULL, 32));
	k = token_key_new(secret, TOKEN_SECRET_MIN);
	cr_assert_not_null(k);
	token_key_free(k);
}

static void
write_secret(const char *path, const char *data, mode_t mode)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(data, f);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(token, key_load_from_file)
{
	char			 dir[] = "/tmp/test_token.XXXXXX", p[64];
	char			 err[256], lp[VERP_LOCAL_BUFSZ], lp2[VERP_LOCAL_BUFSZ];
	struct token_key	*k, *ref = key(secret), *d;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/s", dir);
	write_secret(p, "0123456789abcdef0123456789abcdef\n", 0600);
	cr_assert_not_null(k = token_key_load(p, err, sizeof(err)), "%s", err);
	/* The trailing newline is not part of the key. */
	cr_assert_eq(verp_encode(k, "c", 5, lp), 0);
	cr_assert_eq(verp_encode(ref, "c", 5, lp2), 0);
	cr_assert_str_eq(lp, lp2);
	cr_assert_not_null(d = token_key_dup(k));
	cr_assert_eq(verp_encode(d, "c", 5, lp2), 0);
	cr_assert_str_eq(lp, lp2);
	token_key_free(d);
	token_key_free(k);

	write_secret(p, "0123456789abcdef0123456789abcdef\n", 0644);
	cr_assert_null(token_key_load(p, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "chmod 600"));
	cr_assert_null(strstr(err, "0123456789"), "secret leaked: %s", err);
	write_secret(p, "tooshort\n", 0600);
	cr_assert_null(token_key_load(p, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "shorter than 16"));
	cr_assert_null(strstr(err, "tooshort"));
	unlink(p);
	cr_assert_null(token_key_load(p, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "No such file"));
	cr_assert_null(token_key_load(dir, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "not a regular file"));
	rmdir(dir);
	token_key_free(ref);
}
