/*
 * lease: argv for the fleet-wide shaping scripts. See lease.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "out/lease.h"
#include "out/schema.h"

__extension__ typedef unsigned __int128 lease_u128;

#define LEASE_MS_MAX	3600000u
#define LEASE_N_MAX	100000u
#define LEASE_WANT_MAX	1000000u

static int
lease_name_ok(const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char ch = (unsigned char)s[n];

		if (n >= max || ch <= 0x20 || ch >= 0x7f || ch == '{' ||
		    ch == '}')
			return 0;
	}
	return n > 0;
}

int
lease_site_ok(const char *site)
{
	return lease_name_ok(site, LEASE_SITE_MAX);
}

static void
lease_arg(struct lease_cmd *c, const char *s)
{
	c->argv[c->argc] = s;
	c->argvlen[c->argc] = strlen(s);
	c->argc++;
}

static const char *
lease_num(struct lease_cmd *c, int i, int64_t v)
{
	snprintf(c->num[i], sizeof(c->num[i]), "%" PRId64, v);
	return c->num[i];
}

/* rm:shape:{SITE}:SFX */
static void
lease_key(struct lease_cmd *c, int i, const char *site, const char *sfx)
{
	snprintf(c->key[i], sizeof(c->key[i]), RM_KEY_SHAPE_PFX "{%s}:%s",
	    site, sfx);
}

int
lease_tokens_cmd(struct lease_cmd *c, const char *site, uint32_t want,
    int64_t now_ms, uint64_t rate_mpd, uint32_t burst, uint32_t lease_ms)
{
	uint64_t ns;

	memset(c, 0, sizeof(*c));
	if (!lease_site_ok(site) || want == 0 || want > LEASE_WANT_MAX ||
	    now_ms < 0 || rate_mpd == 0 || burst == 0 || lease_ms == 0 ||
	    lease_ms > LEASE_MS_MAX)
		return -EINVAL;
	/* One message every 86400e3 s * 1e9 / mpd ns; at least 1 ns. */
	ns = (uint64_t)(((lease_u128)86400000ull *
	    1000000000ull + rate_mpd / 2) / rate_mpd);
	if (ns == 0)
		ns = 1;
	if (ns > (uint64_t)INT64_MAX)
		return -EINVAL;
	lease_key(c, 0, site, RM_SFX_SHAPE_TOKENS);
	lease_arg(c, "EVAL");
	lease_arg(c, RM_LUA_SHAPE_LEASE);
	lease_arg(c, "1");
	lease_arg(c, c->key[0]);
	lease_arg(c, lease_num(c, 0, now_ms));
	lease_arg(c, lease_num(c, 1, want));
	lease_arg(c, lease_num(c, 2, (int64_t)ns));
	lease_arg(c, lease_num(c, 3, burst));
	lease_arg(c, lease_num(c, 4, lease_ms));
	return 0;
}

int
lease_slots_cmd(struct lease_cmd *c, enum lease_slot_op op, const char *site,
    const char *holder, uint32_t n, uint32_t cap, uint32_t ttl_ms,
    int64_t now_ms)
{
	const char *ops = NULL;

	memset(c, 0, sizeof(*c));
	switch (op) {
	case LEASE_ACQUIRE:
		ops = "acquire";
		break;
	case LEASE_RENEW:
		ops = "renew";
		n = n == 0 ? 1 : n;
		cap = cap == 0 ? 1 : cap;
		break;
	case LEASE_RELEASE:
		ops = "release";
		cap = cap == 0 ? 1 : cap;
		break;
	}
	if (ops == NULL || !lease_site_ok(site) ||
	    !lease_name_ok(holder, LEASE_HOLDER_MAX) || n == 0 ||
	    n > LEASE_N_MAX || cap == 0 || cap > LEASE_N_MAX || ttl_ms == 0 ||
	    ttl_ms > LEASE_MS_MAX || now_ms < 0)
		return -EINVAL;
	lease_key(c, 0, site, RM_SFX_SHAPE_SLOTS);
	lease_key(c, 1, site, RM_SFX_SHAPE_HELD);
	lease_key(c, 2, site, RM_SFX_SHAPE_WAIT);
	snprintf(c->holder, sizeof(c->holder), "%s", holder);
	lease_arg(c, "EVAL");
	lease_arg(c, RM_LUA_SHAPE_SLOTS);
	lease_arg(c, "3");
	lease_arg(c, c->key[0]);
	lease_arg(c, c->key[1]);
	lease_arg(c, c->key[2]);
	lease_arg(c, ops);
	lease_arg(c, lease_num(c, 0, now_ms));
	lease_arg(c, c->holder);
	lease_arg(c, lease_num(c, 1, n));
	lease_arg(c, lease_num(c, 2, cap));
	lease_arg(c, lease_num(c, 3, ttl_ms));
	return 0;
}

/* An array of exactly n integers in [lo, hi]. */
static int
lease_ints(const struct redisReply *r, size_t n, long long lo, long long hi,
    long long *v)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != n)
		return -EPROTO;
	for (size_t i = 0; i < n; i++) {
		const struct redisReply *e = r->element[i];

		if (e == NULL || e->type != REDIS_REPLY_INTEGER ||
		    e->integer < lo || e->integer > hi)
			return -EPROTO;
		v[i] = e->integer;
	}
	return 0;
}

int
lease_tokens_parse(const struct redisReply *r, struct lease_tokens *out)
{
	long long v[2];

	if (lease_ints(r, 2, 0, INT64_MAX, v) != 0 ||
	    v[0] > (long long)LEASE_WANT_MAX)
		return -EPROTO;
	out->n = (uint32_t)v[0];
	out->until_ms = v[1];
	return 0;
}

int
lease_slots_parse(const struct redisReply *r, struct lease_slots *out)
{
	long long v[4];

	if (lease_ints(r, 4, 0, UINT32_MAX, v) != 0 || v[3] == 0)
		return -EPROTO;
	out->changed = (uint32_t)v[0];
	out->held = (uint32_t)v[1];
	out->total = (uint32_t)v[2];
	out->fair = (uint32_t)v[3];
	return 0;
}

/* rm:warmup:{IP} */
static int
lease_warm_key(struct lease_cmd *c, const char *ip)
{
	if (!lease_name_ok(ip, 64) || (strchr(ip, '.') == NULL &&
	    strchr(ip, ':') == NULL))
		return -EINVAL;
	snprintf(c->key[0], sizeof(c->key[0]), RM_KEY_WARMUP_PFX "{%s}", ip);
	return 0;
}

int
lease_warmup_cmd(struct lease_cmd *c, const char *ip, uint32_t today,
    uint32_t want, uint32_t max_def_pct, uint32_t max_bnc_pct,
    const uint32_t *sched, size_t nsched)
{
	size_t	off = 0;

	memset(c, 0, sizeof(*c));
	if (lease_warm_key(c, ip) != 0 || today < 19700101 ||
	    today > 99991231 || want == 0 || want > 1000 ||
	    max_def_pct > 100 || max_bnc_pct > 100 || nsched == 0 ||
	    nsched > 365)
		return -EINVAL;
	for (size_t i = 0; i < nsched; i++)
		off += (size_t)snprintf(c->sched + off, sizeof(c->sched) - off,
		    "%s%" PRIu32, i ? "," : "", sched[i]);
	lease_arg(c, "EVAL");
	lease_arg(c, RM_LUA_WARMUP_TAKE);
	lease_arg(c, "1");
	lease_arg(c, c->key[0]);
	lease_arg(c, lease_num(c, 0, today));
	lease_arg(c, lease_num(c, 1, want));
	lease_arg(c, lease_num(c, 2, max_def_pct));
	lease_arg(c, lease_num(c, 3, max_bnc_pct));
	lease_arg(c, c->sched);
	return 0;
}

int
lease_warmup_report_cmd(struct lease_cmd *c, const char *ip, uint32_t today,
    uint32_t sent, uint32_t deferred, uint32_t bounced)
{
	memset(c, 0, sizeof(*c));
	if (lease_warm_key(c, ip) != 0 || today < 19700101 ||
	    today > 99991231)
		return -EINVAL;
	lease_arg(c, "EVAL");
	lease_arg(c, RM_LUA_WARMUP_REPORT);
	lease_arg(c, "1");
	lease_arg(c, c->key[0]);
	lease_arg(c, lease_num(c, 0, today));
	lease_arg(c, lease_num(c, 1, sent));
	lease_arg(c, lease_num(c, 2, deferred));
	lease_arg(c, lease_num(c, 3, bounced));
	return 0;
}

int
lease_warmup_parse(const struct redisReply *r, struct lease_warmup *out)
{
	long long v[3];

	if (lease_ints(r, 3, -1, INT64_MAX, v) != 0 || v[0] < 0 ||
	    v[0] > 1000 || v[1] < 0 || v[1] > 100000)
		return -EPROTO;
	out->n = (uint32_t)v[0];
	out->day = (uint32_t)v[1];
	out->cap = v[2];
	return 0;
}
