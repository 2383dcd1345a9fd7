/*
 * lease: the Redis side of fleet-wide shaping, sans-I/O. Formats the
 * argv of the two scripts in out/schema.h (RM_LUA_SHAPE_LEASE,
 * RM_LUA_SHAPE_SLOTS) and parses their replies; the caller sends the
 * argv with redisAsyncCommandArgv/rconn and feeds the reply back.
 *
 * Use (per site, next to out/shape.h's local controller):
 *   tokens  when the local batch of leased tokens is used up or expired:
 *           lease_tokens_cmd(&cmd, site, 50, 0, max_rate_mpd, burst,
 *           1000) -> send -> lease_tokens_parse(): use up to n tokens
 *           before until_ms; with n == 0 park the site until until_ms.
 *           The rate passed is the configured fleet-wide maximum, not the
 *           controller's current (local, adaptive) rate.
 *   slots   before opening a connection beyond those held:
 *           lease_slots_cmd(&cmd, LEASE_ACQUIRE, site, holder, 1, cap,
 *           ttl, 0); renew every ttl/3 while holding any; release on
 *           close. Holder = "<consumer>/<thread>", unique in the fleet.
 * Pass now_ms = 0 to let Redis use its own clock (recommended: no skew
 * between workers).
 *
 * Owns: nothing beyond struct lease_cmd (embed it; argv points into it,
 * and into the static script text). Must not touch: sockets, Redis,
 * the clock. Thread-safe (no shared state).
 */
#ifndef ENGINE_OUT_LEASE_H
#define ENGINE_OUT_LEASE_H

#include <stddef.h>
#include <stdint.h>

#define LEASE_ARGV_MAX	12
#define LEASE_SITE_MAX	511	/* dns_route.site without the NUL */
#define LEASE_HOLDER_MAX	128
#define LEASE_KEY_MAX	(LEASE_SITE_MAX + 32)
#define LEASE_SCHED_MAX	(365 * 11 + 1)	/* "N,N,...": 365 days */

/* One command: argv[0..argc) with lengths, storage included. */
struct lease_cmd {
	int		 argc;
	const char	*argv[LEASE_ARGV_MAX];	/* borrows: this struct and
						   the script literal */
	size_t		 argvlen[LEASE_ARGV_MAX];
	char		 key[3][LEASE_KEY_MAX];
	char		 holder[LEASE_HOLDER_MAX + 1];
	char		 num[6][24];
	char		 sched[LEASE_SCHED_MAX];	/* warm-up schedule */
};

enum lease_slot_op {
	LEASE_ACQUIRE,
	LEASE_RENEW,
	LEASE_RELEASE,
};

/* Reply of a token lease. */
struct lease_tokens {
	uint32_t	 n;		/* tokens granted, 0 = none free */
	int64_t		 until_ms;	/* n > 0: use before; else retry at */
};

/* Reply of a slot operation. */
struct lease_slots {
	uint32_t	 changed;	/* granted / released / (renew) held */
	uint32_t	 held;		/* the holder's slots now; 0 after a
					   renew = the lease was lost */
	uint32_t	 total;		/* the site's slots in use */
	uint32_t	 fair;		/* ceil(cap / holders and waiters),
					   >= 1: hold no more when asked */
};

struct redisReply;

/*
 * A site is 1..LEASE_SITE_MAX printable ASCII bytes without space, '{'
 * or '}' (it becomes a hash tag). A holder is 1..LEASE_HOLDER_MAX of the
 * same.
 */
int	lease_site_ok(const char *site);
/*
 * EVAL RM_LUA_SHAPE_LEASE for want (1..1000000) tokens of site at
 * rate_mpd (milli-messages per day, as out/shape.h; > 0) with burst
 * (>= 1) and a lease of lease_ms (1..3600000). now_ms: wall ms, or 0.
 * 0, or -EINVAL (bad site or argument).
 */
int	lease_tokens_cmd(struct lease_cmd *c, const char *site, uint32_t want,
	    int64_t now_ms, uint64_t rate_mpd, uint32_t burst,
	    uint32_t lease_ms);
/*
 * EVAL RM_LUA_SHAPE_SLOTS: op for holder on site; n slots (acquire,
 * release; 1..100000), cap (1..100000), ttl_ms (1..3600000). 0 or
 * -EINVAL.
 */
int	lease_slots_cmd(struct lease_cmd *c, enum lease_slot_op op,
	    const char *site, const char *holder, uint32_t n, uint32_t cap,
	    uint32_t ttl_ms, int64_t now_ms);
/*
 * Parse the replies. 0, or -EPROTO for anything but the documented
 * array of integers (an error reply included: r->type is then
 * REDIS_REPLY_ERROR and its text is the caller's to log).
 */
int	lease_tokens_parse(const struct redisReply *r,
	    struct lease_tokens *out);

/* Reply of a warm-up take. */
struct lease_warmup {
	uint32_t	 n;		/* granted; 0 = today's budget used */
	uint32_t	 day;		/* schedule day, 0-based */
	int64_t		 cap;		/* that day's volume; -1 = warm */
};

/*
 * EVAL RM_LUA_WARMUP_TAKE for source ip (an IP literal): want (1..1000)
 * messages of today's budget; today as YYYYMMDD (UTC); thresholds in
 * percent (0..100); sched[0..nsched) daily volumes (1..365 of them).
 * 0 or -EINVAL.
 */
int	lease_warmup_cmd(struct lease_cmd *c, const char *ip, uint32_t today,
	    uint32_t want, uint32_t max_def_pct, uint32_t max_bnc_pct,
	    const uint32_t *sched, size_t nsched);
/* EVAL RM_LUA_WARMUP_REPORT: today's outcome counts. 0 or -EINVAL. */
int	lease_warmup_report_cmd(struct lease_cmd *c, const char *ip,
	    uint32_t today, uint32_t sent, uint32_t deferred, uint32_t bounced);
/* 0, or -EPROTO unless {n, day, cap} integers. */
int	lease_warmup_parse(const struct redisReply *r,
	    struct lease_warmup *out);
int	lease_slots_parse(const struct redisReply *r, struct lease_slots *out);

#endif
