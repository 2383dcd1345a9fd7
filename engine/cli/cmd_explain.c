/*
 * ringmail explain [--config FILE] CAMPAIGN|SITE|ADDRESS|SOURCE-IP
 *
 * Names what holds mail back and when it will next be tried:
 *   CAMPAIGN  its state (paused, scheduled, cancelling), its rate cap, its
 *             queue (jobs not yet read, held by workers, waiting for a
 *             retry and when the next one is due), then the sites with
 *             waiting mail and the constraint binding each;
 *   SITE      the site's binding constraint (rate, concurrency, connection
 *             rate, backoff, hint) as published by the worker serving it
 *             (rm:sites, refreshed every second), its queue and sessions,
 *             and the controller's last change;
 *   ADDRESS   whether it is suppressed (globally), and the sites whose
 *             name contains its domain.
 * Exit status: 0, 1 when nothing matches, 2 on usage errors.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/mono.h"
#include "out/schema.h"

/* Split a FS-joined site value into at most n fields (in place). */
static size_t
fields(char *v, char **out, size_t n)
{
	size_t	k = 0;

	while (k < n) {
		char	*fs = strchr(v, RM_FS);

		out[k++] = v;
		if (fs == NULL)
			break;
		*fs = '\0';
		v = fs + 1;
	}
	return k;
}

static void
print_site(const char *name, const char *value)
{
	char	*v = strdup(value), *f[7];
	size_t	 n;
	long long age;

	if (v == NULL)
		return;
	n = fields(v, f, 7);
	age = (wall_ms() - strtoll(f[0], NULL, 10)) / 1000;
	/* The field is "site FS consumer": one per worker thread. */
	printf("site %.*s\n", (int)strcspn(name, "\x1f"), name);
	if (n < 6) {
		printf("  (unreadable state record)\n");
		free(v);
		return;
	}
	printf("  binding: %s\n", f[5]);
	printf("  queued in worker memory: %s, sessions: %s (worker %s, %llds "
	    "ago%s)\n", f[2], f[3], f[1], age, age > 15 ? ", STALE: no "
	    "worker serves it now" : "");
	if (n > 6 && f[6][0] != '\0')
		printf("  last controller change: %s\n", f[6]);
	free(v);
}

static int
explain_sites(redisContext *rc, const char *match, bool only_waiting)
{
	redisReply	*r;
	int		 found = 0;

	if ((r = cli_cmd(rc, "HGETALL %s", RM_KEY_SITES)) == NULL)
		return -1;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const char	*name = r->element[i]->str;
		const char	*val = r->element[i + 1]->str;

		if (match != NULL && strstr(name, match) == NULL)
			continue;
		if (only_waiting) {
			char	*v = strdup(val), *f[7];

			if (v == NULL)
				continue;
			if (fields(v, f, 7) < 6 || strcmp(f[2], "0") == 0) {
				free(v);
				continue;
			}
			free(v);
		}
		print_site(name, val);
		found++;
	}
	freeReplyObject(r);
	return found;
}

static const char *
hget(const redisReply *h, const char *f)
{
	for (size_t i = 0; h && i + 1 < h->elements; i += 2)
		if (strcmp(h->element[i]->str, f) == 0)
			return h->element[i + 1]->str;
	return NULL;
}

static void
print_secs(double s)
{
	long	n = (long)(s + 0.5);

	if (n < 60)
		printf("%ld s", n);
	else if (n < 3600)
		printf("%ldm%02lds", n / 60, n % 60);
	else
		printf("%ldh%02ldm", n / 3600, (n % 3600) / 60);
}

/*
 * Campaign ETA two ways: at the rate outcomes have come so far, and from
 * the live budgets: the campaign's own rate cap, and each busy site's
 * current allowed rate (the adaptive controller's, within the configured
 * fleet-wide one) for the mail workers hold for it. The budgets give a
 * floor: the campaign cannot finish sooner than its slowest constraint.
 */
static void
explain_eta(redisContext *rc, long long left, long long done,
    long long submitted_ms, double cap, long long now)
{
	redisReply	*r;
	double		 floor_s = 0, obs;
	char		 slow[256] = "";
	double		 slow_s = 0, slow_rate = 0;
	long long	 slow_q = 0;

	if (left <= 0)
		return;
	if (cap > 0)
		floor_s = (double)left / cap;
	if ((r = cli_cmd(rc, "HGETALL %s", RM_KEY_SITES)) != NULL) {
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			char	*v = strdup(r->element[i + 1]->str), *f[8];
			double	 rate, t;
			long long q;

			if (v == NULL)
				continue;
			/* Fresh records with mail waiting and a finite rate. */
			if (fields(v, f, 8) == 8 && (q = strtoll(f[2], NULL,
			    10)) > 0 && now - strtoll(f[0], NULL, 10) < 15000 &&
			    (rate = strtod(f[7], NULL) / 86400000.0) > 0 &&
			    (t = (double)q / rate) > slow_s) {
				slow_s = t;
				slow_rate = rate;
				slow_q = q;
				snprintf(slow, sizeof(slow), "%.*s",
				    (int)strcspn(r->element[i]->str, "\x1f"),
				    r->element[i]->str);
			}
			free(v);
		}
		freeReplyObject(r);
	}
	if (slow_s > floor_s)
		floor_s = slow_s;
	printf("  ETA: ");
	if (submitted_ms > 0 && now > submitted_ms && done > 0) {
		obs = (double)done / ((double)(now - submitted_ms) / 1e3);
		print_secs((double)left / obs);
		printf(" at the rate so far (%.1f outcomes/s)", obs);
	} else {
		printf("unknown from the rate so far (no outcome yet)");
	}
	printf("\n  live budgets: ");
	if (floor_s <= 0) {
		printf("no rate limit binds; connections and the receivers "
		    "set the pace\n");
		return;
	}
	printf("not before ");
	print_secs(floor_s);
	if (slow_s >= floor_s && slow[0] != '\0')
		printf(" (site %s: %lld queued in workers at its current "
		    "%.1f/s; mail not yet fetched comes on top)\n", slow,
		    slow_q, slow_rate);
	else
		printf(" (campaign rate cap %.1f/s for %lld recipients left)\n",
		    cap, left);
}

/* A hash field, or "0" when absent (counters). */
static const char *
hget0(const redisReply *h, const char *f)
{
	const char	*v = hget(h, f);

	return v != NULL ? v : "0";
}

static int
explain_campaign(redisContext *rc, const char *id)
{
	char		 k[RM_KEY_MAX];
	redisReply	*m, *st, *x;
	const char	*state, *v;
	long long	 now = wall_ms();

	rm_key(k, sizeof(k), id, RM_SFX_META);
	if ((m = cli_cmd(rc, "HMGET %s state start_ms rate_per_s priority "
	    "total suppress_list pool submitted_ms", k)) == NULL)
		return -1;
	if (m->element[0]->type != REDIS_REPLY_STRING) {
		freeReplyObject(m);
		return 0;
	}
	state = m->element[0]->str;
	printf("campaign %s: state %s\n", id, state);
	if (strcmp(state, RM_STATE_PAUSED) == 0)
		printf("  binding: paused by an operator (ringmail campaign "
		    "resume %s)\n", id);
	else if (strcmp(state, RM_STATE_SCHEDULED) == 0 &&
	    m->element[1]->type == REDIS_REPLY_STRING)
		printf("  binding: scheduled; starts in %.0f s\n",
		    (double)(strtoll(m->element[1]->str, NULL, 10) - now) / 1e3);
	else if (strcmp(state, RM_STATE_CANCELLING) == 0)
		printf("  binding: cancelling: remaining recipients end as "
		    "cancelled\n");
	else if (strcmp(state, RM_STATE_DONE) == 0 ||
	    strcmp(state, RM_STATE_CANCELLED) == 0)
		printf("  nothing waits: the campaign is over\n");
	if (m->element[2]->type == REDIS_REPLY_STRING)
		printf("  rate cap: %s messages/s across the fleet\n",
		    m->element[2]->str);
	if (m->element[3]->type == REDIS_REPLY_STRING)
		printf("  priority: %s\n", m->element[3]->str);
	if (m->element[6]->type == REDIS_REPLY_STRING)
		printf("  IP pool: %s\n", m->element[6]->str);
	rm_key(k, sizeof(k), id, RM_SFX_STATS);
	if ((st = cli_cmd(rc, "HGETALL %s", k)) != NULL) {
		long long done = 0;
		const char *fin[] = { "sent", "bounced", "failed", "expired",
		    "suppressed", "cancelled" };

		for (size_t i = 0; i < 6; i++)
			if ((v = hget(st, fin[i])) != NULL)
				done += strtoll(v, NULL, 10);
		printf("  progress: %lld of %s have a final outcome\n", done,
		    m->element[4]->type == REDIS_REPLY_STRING ?
		    m->element[4]->str : "?");
		if (strcmp(state, RM_STATE_ACTIVE) == 0 &&
		    m->element[4]->type == REDIS_REPLY_STRING)
			explain_eta(rc, strtoll(m->element[4]->str, NULL, 10) -
			    done, done, m->element[7]->type ==
			    REDIS_REPLY_STRING ? strtoll(m->element[7]->str,
			    NULL, 10) : 0, m->element[2]->type ==
			    REDIS_REPLY_STRING ? strtod(m->element[2]->str,
			    NULL) : 0, now);
		freeReplyObject(st);
	}
	rm_key(k, sizeof(k), id, RM_SFX_JOBS);
	if ((x = cli_cmd(rc, "XLEN %s", k)) != NULL) {
		printf("  job stream: %lld entries", x->integer);
		freeReplyObject(x);
		if ((x = cli_cmd(rc, "XPENDING %s %s", k, RM_GROUP)) != NULL) {
			if (x->type == REDIS_REPLY_ARRAY && x->elements > 0)
				printf(", %lld held by workers",
				    x->element[0]->integer);
			freeReplyObject(x);
		}
		printf("\n");
	}
	rm_key(k, sizeof(k), id, RM_SFX_RETRY);
	if ((x = cli_cmd(rc, "ZRANGE %s 0 0 WITHSCORES", k)) != NULL) {
		redisReply *n = cli_cmd(rc, "ZCARD %s", k);

		if (n != NULL && n->integer > 0 && x->elements == 2)
			printf("  waiting for a retry: %lld; next due in %.0f s\n",
			    n->integer, (double)(strtoll(x->element[1]->str,
			    NULL, 10) - now) / 1e3);
		if (n)
			freeReplyObject(n);
		freeReplyObject(x);
	}
	freeReplyObject(m);
	printf("sites with mail waiting in workers:\n");
	if (explain_sites(rc, NULL, true) == 0)
		printf("  none\n");
	return 1;
}

/*
 * A source IP on a warm-up schedule (config warmup:): where it stands
 * today and how the previous active day was judged. 0 when the argument
 * is not an IP address, or the address has no warm-up record.
 */
static int
explain_source(redisContext *rc, const struct config *cfg, const char *arg)
{
	unsigned char	 a[sizeof(struct in6_addr)];
	char		 ip[INET6_ADDRSTRLEN];
	redisReply	*r;
	const char	*day, *v;
	long long	 d;
	bool		 listed = false;

	if (inet_pton(AF_INET, arg, a) == 1)
		inet_ntop(AF_INET, a, ip, sizeof(ip));
	else if (inet_pton(AF_INET6, arg, a) == 1)
		inet_ntop(AF_INET6, a, ip, sizeof(ip));
	else
		return 0;
	for (size_t i = 0; i < cfg->nwarmup_sources; i++)
		listed |= strcmp(cfg->warmup_sources[i], ip) == 0;
	if ((r = cli_cmd(rc, "HGETALL %s{%s}", RM_KEY_WARMUP_PFX, ip)) == NULL)
		return -1;
	if (r->elements == 0) {
		freeReplyObject(r);
		if (!listed)
			return 0;
		printf("source %s: on the warm-up schedule, nothing sent from it "
		    "yet (day 1: %u messages)\n", ip, cfg->warmup_schedule[0]);
		return 1;
	}
	day = hget(r, "day");
	d = day ? strtoll(day, NULL, 10) : 0;
	printf("source %s\n", ip);
	if (!listed)
		printf("  no longer in warmup.sources: no daily limit\n");
	else if ((size_t)d >= cfg->nwarmup_schedule)
		printf("  warm: past the %zu-day schedule, no daily limit\n",
		    cfg->nwarmup_schedule);
	else {
		long long taken = strtoll(hget0(r, "taken"), NULL, 10);

		printf("  warm-up day %lld of %zu: %u messages a day; %lld "
		    "taken today (UTC %s)%s\n", d + 1, cfg->nwarmup_schedule,
		    cfg->warmup_schedule[d], taken, (v = hget(r, "date")) ?
		    v : "?", taken >= cfg->warmup_schedule[d] ? ": used up, "
		    "the pool's other sources carry on until 00:00 UTC" : "");
	}
	printf("  today: sent %s, deferred %s, bounced %s\n",
	    hget0(r, "sent"), hget0(r, "deferred"), hget0(r, "bounced"));
	if ((v = hget(r, "last_date")) != NULL) {
		const char	*adv = hget(r, "last_advanced");

		printf("  last active day %s: sent %s, deferred %s, bounced %s: "
		    "%s (maxima: deferrals %u%%, bounces %u%%)\n", v,
		    hget0(r, "last_sent"), hget0(r, "last_deferred"),
		    hget0(r, "last_bounced"), adv != NULL && strcmp(adv,
		    "1") == 0 ? "advanced a day" : "stayed on its day",
		    cfg->warmup_max_deferral_pct, cfg->warmup_max_bounce_pct);
	}
	freeReplyObject(r);
	return 1;
}

static int
explain_address(redisContext *rc, const char *addr)
{
	char		 low[512];
	redisReply	*r;
	size_t		 n = strlen(addr);

	if (n >= sizeof(low))
		return 0;
	for (size_t i = 0; i <= n; i++)
		low[i] = (char)tolower((unsigned char)addr[i]);
	printf("address %s\n", low);
	if ((r = cli_cmd(rc, "HGET %s %s", RM_KEY_SUPPRESS, low)) == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING) {
		char	*f[3], *v = strdup(r->str);

		if (v != NULL && fields(v, f, 3) == 3)
			printf("  binding: suppressed (reason %s, source %s): "
			    "never sent\n", f[0], f[1]);
		free(v);
	} else {
		printf("  not on the global suppression list\n");
	}
	freeReplyObject(r);
	printf("sites for its domain:\n");
	if (explain_sites(rc, strchr(low, '@') ? strchr(low, '@') + 1 : low,
	    false) == 0)
		printf("  none busy (MX sites are named by their MX hosts: "
		    "ringmail route %s)\n", strchr(low, '@') ?
		    strchr(low, '@') + 1 : low);
	return 1;
}

int
cmd_explain(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*cfgpath = NULL, *what;
	struct config	*cfg;
	redisContext	*rc = NULL;
	int		 c, found = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		if (c != 'c') {
			fprintf(stderr, "usage: ringmail explain [--config FILE] "
			    "CAMPAIGN|SITE|ADDRESS|SOURCE-IP\n");
			return 2;
		}
		cfgpath = optarg;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: ringmail explain [--config FILE] "
		    "CAMPAIGN|SITE|ADDRESS|SOURCE-IP\n");
		return 2;
	}
	what = argv[optind];
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if ((rc = cli_redis(cfg)) == NULL)
		goto out;
	if (strchr(what, '@') != NULL)
		found = explain_address(rc, what);
	else if (rm_id_valid(what) && (found = explain_campaign(rc, what)) != 0)
		;
	else if ((found = explain_source(rc, cfg, what)) != 0)
		;
	else
		found = explain_sites(rc, what, false);
	if (found == 0)
		fprintf(stderr, "ringmail: no campaign or site matches '%s'\n",
		    what);
out:
	if (rc)
		redisFree(rc);
	config_free(cfg);
	return found > 0 ? 0 : 1;
}
