#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "out/lease.h"
#include "out/schema.h"

static void
argv_is(const struct lease_cmd *c, const char *const *want, int n)
{
	cr_assert_eq(c->argc, n);
	for (int i = 0; i < n; i++) {
		if (want[i] == NULL)
			continue;	/* the script text */
		cr_assert_eq(c->argvlen[i], strlen(want[i]), "arg %d", i);
		cr_assert_eq(memcmp(c->argv[i], want[i], c->argvlen[i]), 0,
		    "arg %d: %s != %s", i, c->argv[i], want[i]);
	}
}

Test(lease, tokens_argv)
{
	struct lease_cmd	 c;
	static const char *const want[] = { "EVAL", NULL, "1",
		"rm:shape:{mx1.a.test,mx2.a.test}:tokens", "1700000000000",
		"50", "10000000", "100", "1000" };

	/* 100/s = 8.64e9 mpd: one every 10 ms = 1e7 ns. */
	cr_assert_eq(lease_tokens_cmd(&c, "mx1.a.test,mx2.a.test", 50,
	    1700000000000ll, 100ull * 86400 * 1000, 100, 1000), 0);
	argv_is(&c, want, 9);
	cr_assert_str_eq(c.argv[1], RM_LUA_SHAPE_LEASE);
	/* 3/s: 333333333 ns (rounded); 1/d: 86400 s. */
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, 3ull * 86400 * 1000, 1,
	    1), 0);
	cr_assert_str_eq(c.argv[4], "0");
	cr_assert_str_eq(c.argv[6], "333333333");
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, 1000, 1, 1), 0);
	cr_assert_str_eq(c.argv[6], "86400000000000");
}

Test(lease, tokens_argv_rejects)
{
	struct lease_cmd	 c;
	char			 big[LEASE_SITE_MAX + 2];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(lease_tokens_cmd(&c, big, 1, 0, 1000, 1, 1), -EINVAL);
	big[LEASE_SITE_MAX] = '\0';
	cr_assert_eq(lease_tokens_cmd(&c, big, 1, 0, 1000, 1, 1), 0);
	cr_assert_eq(lease_tokens_cmd(&c, "a}b", 1, 0, 1000, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a b", 1, 0, 1000, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "", 1, 0, 1000, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, NULL, 1, 0, 1000, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a", 0, 0, 1000, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, -1, 1000, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, 0, 1, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, 1000, 0, 1), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, 1000, 1, 0), -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, 1000, 1, 3600001),
	    -EINVAL);
	cr_assert_eq(lease_tokens_cmd(&c, "a\r\n", 1, 0, 1000, 1, 1), -EINVAL);
	/* The fastest rate still gives a positive interval. */
	cr_assert_eq(lease_tokens_cmd(&c, "a", 1, 0, UINT64_MAX, 1, 1), 0);
	cr_assert_str_eq(c.argv[6], "1");
}

Test(lease, slots_argv)
{
	struct lease_cmd	 c;
	static const char *const acq[] = { "EVAL", NULL, "3",
		"rm:shape:{a.test}:slots", "rm:shape:{a.test}:held",
		"rm:shape:{a.test}:wait", "acquire", "0", "w1/3", "2", "10",
		"30000" };

	cr_assert_eq(lease_slots_cmd(&c, LEASE_ACQUIRE, "a.test", "w1/3", 2,
	    10, 30000, 0), 0);
	argv_is(&c, acq, 12);
	cr_assert_str_eq(c.argv[1], RM_LUA_SHAPE_SLOTS);
	cr_assert_eq(lease_slots_cmd(&c, LEASE_RENEW, "a.test", "w1/3", 0, 0,
	    30000, 5), 0);
	cr_assert_str_eq(c.argv[6], "renew");
	cr_assert_str_eq(c.argv[7], "5");
	cr_assert_eq(lease_slots_cmd(&c, LEASE_RELEASE, "a.test", "w1/3", 1,
	    0, 30000, 0), 0);
	cr_assert_str_eq(c.argv[6], "release");
	cr_assert_eq(lease_slots_cmd(&c, LEASE_ACQUIRE, "a.test", "w 1", 1,
	    10, 1, 0), -EINVAL);
	cr_assert_eq(lease_slots_cmd(&c, LEASE_ACQUIRE, "a.test", "w", 0, 10,
	    1, 0), -EINVAL);
	cr_assert_eq(lease_slots_cmd(&c, LEASE_ACQUIRE, "a.test", "w", 1, 0,
	    1, 0), -EINVAL);
	cr_assert_eq(lease_slots_cmd(&c, LEASE_ACQUIRE, "a.test", "w", 1, 1,
	    0, 0), -EINVAL);
	cr_assert_eq(lease_slots_cmd(&c, (enum lease_slot_op)7, "a.test", "w",
	    1, 1, 1, 0), -EINVAL);
}

static redisReply *
ints(redisReply *a, redisReply **el, redisReply *e, const long long *v,
    size_t n)
{
	memset(a, 0, sizeof(*a));
	a->type = REDIS_REPLY_ARRAY;
	a->elements = n;
	a->element = el;
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].type = REDIS_REPLY_INTEGER;
		e[i].integer = v[i];
		el[i] = &e[i];
	}
	return a;
}

Test(lease, parse_replies)
{
	redisReply		 a, e[5], *el[5];
	struct lease_tokens	 t;
	struct lease_slots	 s;
	static const long long	 tok[] = { 50, 1700000001000ll };
	static const long long	 sl[] = { 2, 3, 9, 5 };
	static const long long	 nofair[] = { 2, 3, 9, 0 };
	static const long long	 neg[] = { -1, 5 };

	cr_assert_eq(lease_tokens_parse(ints(&a, el, e, tok, 2), &t), 0);
	cr_assert_eq(t.n, 50);
	cr_assert_eq(t.until_ms, 1700000001000ll);
	cr_assert_eq(lease_slots_parse(ints(&a, el, e, sl, 4), &s), 0);
	cr_assert_eq(s.changed, 2);
	cr_assert_eq(s.held, 3);
	cr_assert_eq(s.total, 9);
	cr_assert_eq(s.fair, 5);
	/* A fair share of 0 cannot be: the script's floor is 1. */
	cr_assert_eq(lease_slots_parse(ints(&a, el, e, nofair, 4), &s),
	    -EPROTO);
	cr_assert_eq(lease_slots_parse(ints(&a, el, e, sl, 3), &s), -EPROTO);
	/* Wrong shapes. */
	cr_assert_eq(lease_tokens_parse(ints(&a, el, e, sl, 3), &t), -EPROTO);
	cr_assert_eq(lease_slots_parse(ints(&a, el, e, tok, 2), &s), -EPROTO);
	cr_assert_eq(lease_tokens_parse(ints(&a, el, e, neg, 2), &t), -EPROTO);
	ints(&a, el, e, tok, 2);
	e[1].type = REDIS_REPLY_STRING;
	cr_assert_eq(lease_tokens_parse(&a, &t), -EPROTO);
	el[1] = NULL;
	cr_assert_eq(lease_tokens_parse(&a, &t), -EPROTO);
	memset(&a, 0, sizeof(a));
	a.type = REDIS_REPLY_ERROR;
	cr_assert_eq(lease_tokens_parse(&a, &t), -EPROTO);
	cr_assert_eq(lease_slots_parse(NULL, &s), -EPROTO);
}

Test(lease, warmup_argv_and_parse)
{
	struct lease_cmd	 c;
	struct lease_warmup	 lw;
	redisReply		 a, e[3], *el[3];
	static const uint32_t	 sched[] = { 50, 100, 1000000000 };
	static const long long	 ok[] = { 10, 2, 1000 };
	static const long long	 warm[] = { 10, 3, -1 };
	static const long long	 neg[] = { -1, 0, 5 };

	cr_assert_eq(lease_warmup_cmd(&c, "192.0.2.10", 20261128, 10, 10, 5,
	    sched, 3), 0);
	cr_assert_eq(c.argc, 9);
	cr_assert_str_eq(c.argv[1], RM_LUA_WARMUP_TAKE);
	cr_assert_str_eq(c.argv[3], "rm:warmup:{192.0.2.10}");
	cr_assert_str_eq(c.argv[4], "20261128");
	cr_assert_str_eq(c.argv[8], "50,100,1000000000");
	/* A 365-day schedule of the largest volumes fits. */
	{
		uint32_t	big[365];

		for (size_t i = 0; i < 365; i++)
			big[i] = 1000000000;
		cr_assert_eq(lease_warmup_cmd(&c, "2001:db8::1", 20261128, 1,
		    0, 0, big, 365), 0);
		cr_assert_eq(strlen(c.argv[8]), 365 * 11 - 1);
	}
	cr_assert_eq(lease_warmup_cmd(&c, "no-ip", 20261128, 1, 1, 1, sched,
	    3), -EINVAL);
	cr_assert_eq(lease_warmup_cmd(&c, "192.0.2.1", 20261128, 0, 1, 1,
	    sched, 3), -EINVAL);
	cr_assert_eq(lease_warmup_cmd(&c, "192.0.2.1", 20261128, 1, 101, 1,
	    sched, 3), -EINVAL);
	cr_assert_eq(lease_warmup_cmd(&c, "192.0.2.1", 20261128, 1, 1, 1,
	    sched, 0), -EINVAL);
	cr_assert_eq(lease_warmup_report_cmd(&c, "192.0.2.1", 20261128, 7, 1,
	    0), 0);
	cr_assert_str_eq(c.argv[1], RM_LUA_WARMUP_REPORT);
	cr_assert_str_eq(c.argv[5], "7");
	cr_assert_eq(lease_warmup_parse(ints(&a, el, e, ok, 3), &lw), 0);
	cr_assert_eq(lw.n, 10);
	cr_assert_eq(lw.day, 2);
	cr_assert_eq(lw.cap, 1000);
	cr_assert_eq(lease_warmup_parse(ints(&a, el, e, warm, 3), &lw), 0);
	cr_assert_eq(lw.cap, -1);
	cr_assert_eq(lease_warmup_parse(ints(&a, el, e, neg, 3), &lw), -EPROTO);
	cr_assert_eq(lease_warmup_parse(ints(&a, el, e, ok, 2), &lw), -EPROTO);
}
