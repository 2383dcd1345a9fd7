/*
 * ringmail status [--config FILE] [--all] [CAMPAIGN]
 * ringmail status [--config FILE] --workers
 *
 * Counts per campaign (the 20 newest, --all for every one, or the one
 * named), after a header line about the live workers (rm:workers). Per
 * campaign: counters, queue depths (job stream entries, entries pending
 * in the consumer group, recipients in the retry schedule), the send rate
 * since submission and, for an active campaign, the ETA. Progress counts
 * every final outcome: sent, bounced, failed and the stats fields
 * expired, suppressed and cancelled when the worker writes them.
 * --workers lists
 * every registered worker instead. On a terminal: a table with a progress
 * bar; otherwise one key=value line per campaign (or worker), for
 * scripts; new keys are only ever appended to a line.
 *
 * One pipelined round trip per campaign.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/mono.h"
#include "out/fleet.h"
#include "out/schema.h"

#define STATUS_NAMES_MAX	8	/* worker names in the header line */

struct cstat {
	char		 state[24], name[64];
	long long	 total, queued, sent, bounced, failed, deferred;
	long long	 invalid, retrying;
	long long	 expired, suppressed, cancelled;	/* issue 4 */
	long long	 jobs, pending;	/* stream entries, unacked */
	long long	 submitted_ms, finished_ms, priority;
	char		 rate_cap[32];		/* meta rate_per_s, or "" */
};

static long long
hnum(const redisReply *h, const char *f)
{
	if (h == NULL || h->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i + 1 < h->elements; i += 2)
		if (strcmp(h->element[i]->str, f) == 0)
			return strtoll(h->element[i + 1]->str, NULL, 10);
	return 0;
}

static void
hstr(const redisReply *h, const char *f, char *out, size_t len)
{
	out[0] = '\0';
	if (h == NULL || h->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < h->elements; i += 2)
		if (strcmp(h->element[i]->str, f) == 0)
			snprintf(out, len, "%s", h->element[i + 1]->str);
}

/* 0 ok, 1 no such campaign, -1 Redis failure (reported). */
static int
load(redisContext *rc, const char *id, struct cstat *s)
{
	char		 k_meta[RM_KEY_MAX], k_stats[RM_KEY_MAX];
	char		 k_retry[RM_KEY_MAX], k_jobs[RM_KEY_MAX];
	redisReply	*rep[5] = { NULL };
	int		 ret = -1, n = 0;

	memset(s, 0, sizeof(*s));
	rm_key(k_meta, sizeof(k_meta), id, RM_SFX_META);
	rm_key(k_stats, sizeof(k_stats), id, RM_SFX_STATS);
	rm_key(k_retry, sizeof(k_retry), id, RM_SFX_RETRY);
	rm_key(k_jobs, sizeof(k_jobs), id, RM_SFX_JOBS);
	redisAppendCommand(rc, "HGETALL %s", k_meta);
	redisAppendCommand(rc, "HGETALL %s", k_stats);
	redisAppendCommand(rc, "ZCARD %s", k_retry);
	redisAppendCommand(rc, "XLEN %s", k_jobs);
	redisAppendCommand(rc, "XPENDING %s %s", k_jobs, RM_GROUP);
	for (; n < 5; n++) {
		if (redisGetReply(rc, (void **)&rep[n]) != REDIS_OK) {
			fprintf(stderr, "ringmail: redis: %s\n", rc->errstr);
			goto out;
		}
		/* XPENDING without the group (no stream yet) is an error. */
		if (rep[n]->type == REDIS_REPLY_ERROR && n < 4) {
			fprintf(stderr, "ringmail: redis: %s\n", rep[n]->str);
			n++;
			for (; n < 5; n++)
				if (redisGetReply(rc, (void **)&rep[n]) !=
				    REDIS_OK)
					break;
			goto out;
		}
	}
	if (rep[0]->type != REDIS_REPLY_ARRAY || rep[0]->elements == 0) {
		ret = 1;
		goto out;
	}
	hstr(rep[0], "state", s->state, sizeof(s->state));
	hstr(rep[0], "name", s->name, sizeof(s->name));
	hstr(rep[0], RM_META_RATE, s->rate_cap, sizeof(s->rate_cap));
	s->total = hnum(rep[0], "total");
	s->submitted_ms = hnum(rep[0], "submitted_ms");
	s->finished_ms = hnum(rep[0], "finished_ms");
	s->priority = RM_PRIORITY_DEFAULT;
	for (size_t i = 0; i + 1 < rep[0]->elements; i += 2)
		if (strcmp(rep[0]->element[i]->str, RM_META_PRIORITY) == 0)
			s->priority = hnum(rep[0], RM_META_PRIORITY);
	s->queued = hnum(rep[1], "queued");
	s->sent = hnum(rep[1], "sent");
	s->bounced = hnum(rep[1], "bounced");
	s->failed = hnum(rep[1], "failed");
	s->deferred = hnum(rep[1], "deferred");
	s->invalid = hnum(rep[1], "invalid");
	s->expired = hnum(rep[1], RM_EV_EXPIRED);
	s->suppressed = hnum(rep[1], RM_EV_SUPPRESSED);
	s->cancelled = hnum(rep[1], RM_EV_CANCELLED);
	s->retrying = rep[2]->type == REDIS_REPLY_INTEGER ? rep[2]->integer : 0;
	s->jobs = rep[3]->type == REDIS_REPLY_INTEGER ? rep[3]->integer : 0;
	if (rep[4]->type == REDIS_REPLY_ARRAY && rep[4]->elements >= 1 &&
	    rep[4]->element[0]->type == REDIS_REPLY_INTEGER)
		s->pending = rep[4]->element[0]->integer;
	ret = 0;
out:
	for (int i = 0; i < 5; i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	return ret;
}

/*
 * Final outcomes per second since submission (until finished_ms for a
 * finished campaign) into *rate (sent only) and *orate (all outcomes).
 */
static void
rates(const struct cstat *s, int64_t now_ms, double *rate, double *orate)
{
	int64_t		end = s->finished_ms > 0 ? s->finished_ms : now_ms;
	double		secs;

	*rate = *orate = 0;
	if (s->submitted_ms <= 0 || end <= s->submitted_ms)
		return;
	secs = (double)(end - s->submitted_ms) / 1000.0;
	*rate = (double)s->sent / secs;
	*orate = (double)(s->sent + s->bounced + s->failed + s->expired +
	    s->suppressed + s->cancelled) / secs;
}

static void
fmt_eta(char *out, size_t len, long long secs)
{
	if (secs < 0)
		snprintf(out, len, "-");
	else if (secs < 3600)
		snprintf(out, len, "%lldm%02llds", secs / 60, secs % 60);
	else
		snprintf(out, len, "%lldh%02lldm", secs / 3600,
		    (secs % 3600) / 60);
}

static void
print_one(const char *id, const struct cstat *s, bool tty, int64_t now_ms)
{
	/* Every final outcome; complaints and unsubscribes come later. */
	long long	done = s->sent + s->bounced + s->failed + s->expired +
			    s->suppressed + s->cancelled;
	long long	total = s->total > 0 ? s->total : s->queued;
	double		pct = total > 0 ? 100.0 * (double)done / (double)total :
			    (strcmp(s->state, "done") == 0 ? 100.0 : 0.0);
	double		rate, orate;
	long long	eta = -1;
	char		etas[24];

	rates(s, now_ms, &rate, &orate);
	/* ETA from the outcome rate: bounces and failures finish too. */
	if (strcmp(s->state, RM_STATE_ACTIVE) == 0 && orate > 0 &&
	    total >= done)
		eta = (long long)((double)(total - done) / orate + 0.5);
	if (!tty) {
		if (eta >= 0)
			snprintf(etas, sizeof(etas), "%lld", eta);
		else
			snprintf(etas, sizeof(etas), "-");
		printf("campaign=%s state=%s total=%lld sent=%lld bounced=%lld "
		    "failed=%lld deferred=%lld retrying=%lld invalid=%lld "
		    "done=%lld progress=%.1f jobs=%lld pending=%lld "
		    "rate=%.1f eta=%s priority=%lld rate_cap=%s expired=%lld "
		    "suppressed=%lld cancelled=%lld\n", id,
		    s->state, total, s->sent, s->bounced, s->failed,
		    s->deferred, s->retrying, s->invalid, done, pct, s->jobs,
		    s->pending, rate, etas, s->priority,
		    s->rate_cap[0] ? s->rate_cap : "-", s->expired,
		    s->suppressed, s->cancelled);
		return;
	}
	{
		char	bar[21];
		int	fill = (int)(pct * 20 / 100);

		for (int i = 0; i < 20; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[20] = '\0';
		fmt_eta(etas, sizeof(etas), eta);
		printf("%-24s %-10s %8lld %8lld %8lld %7lld %8lld %8lld %6lld "
		    "%7lld %8.1f %7s [%s] %5.1f%%\n", id, s->state, total,
		    s->sent, s->bounced, s->failed, s->deferred, s->retrying,
		    s->jobs, s->pending, rate, etas, bar, pct);
	}
}

/* HGETALL rm:workers, or NULL (reported). */
static redisReply *
workers_get(redisContext *rc)
{
	redisReply	*w = cli_cmd(rc, "HGETALL %s", RM_KEY_WORKERS);

	if (w != NULL && w->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(w);
		return NULL;
	}
	return w;
}

/* One line about the fleet before the campaigns. */
static void
workers_header(const redisReply *w, bool tty, int64_t now_ms)
{
	struct fleet_worker	fw;
	unsigned long		live = 0, stale = 0, threads = 0, held = 0;
	char			names[STATUS_NAMES_MAX * 72] = "";
	size_t			nl = 0;
	unsigned		nnames = 0;

	for (size_t i = 0; i + 1 < w->elements; i += 2) {
		const redisReply	*k = w->element[i];
		const redisReply	*v = w->element[i + 1];

		if (fleet_worker_parse(v->str, v->len, &fw) != 0 ||
		    !fleet_worker_live(&fw, now_ms)) {
			stale++;
			continue;
		}
		live++;
		threads += fw.threads;
		held += fw.held;
		if (nnames < STATUS_NAMES_MAX && nl < sizeof(names)) {
			int	n = snprintf(names + nl, sizeof(names) - nl,
				    "%s%.64s", nnames ? "," : "", k->str);

			if (n > 0)
				nl += (size_t)n;
			nnames++;
		} else if (nnames == STATUS_NAMES_MAX) {
			if (nl + 4 < sizeof(names))
				nl += (size_t)snprintf(names + nl,
				    sizeof(names) - nl, ",...");
			nnames++;
		}
	}
	if (tty)
		printf("workers: %lu live (%lu threads, %lu recipients held), "
		    "%lu stale%s%s\n\n", live, threads, held, stale,
		    live ? ": " : "", names);
	else
		printf("workers live=%lu stale=%lu threads=%lu held=%lu "
		    "names=%s\n", live, stale, threads, held,
		    names[0] ? names : "-");
}

/* --workers: every registered worker, sorted by Redis' hash order. */
static void
workers_list(const redisReply *w, bool tty, int64_t now_ms)
{
	struct fleet_worker	fw;

	if (tty)
		printf("%-32s %-5s %7s %7s %-24s %8s %10s %7s\n", "WORKER",
		    "STATE", "AGE", "THREADS", "HOST", "PID", "DELIVERED",
		    "HELD");
	for (size_t i = 0; i + 1 < w->elements; i += 2) {
		const redisReply	*k = w->element[i];
		const redisReply	*v = w->element[i + 1];
		double			 age;
		bool			 live;

		if (fleet_worker_parse(v->str, v->len, &fw) != 0) {
			if (tty)
				printf("%-32.64s %-5s (unreadable entry)\n",
				    k->str, "bad");
			else
				printf("worker=%.64s state=bad\n", k->str);
			continue;
		}
		live = fleet_worker_live(&fw, now_ms);
		age = (double)(now_ms - fw.ts_ms) / 1000.0;
		if (tty)
			printf("%-32.64s %-5s %6.1fs %7u %-24.64s %8ld %10llu "
			    "%7llu\n", k->str, live ? "live" : "stale", age,
			    fw.threads, fw.host, fw.pid,
			    (unsigned long long)fw.delivered,
			    (unsigned long long)fw.held);
		else
			printf("worker=%.64s state=%s age=%.1f threads=%u "
			    "host=%.64s pid=%ld delivered=%llu held=%llu\n",
			    k->str, live ? "live" : "stale", age, fw.threads,
			    fw.host, fw.pid, (unsigned long long)fw.delivered,
			    (unsigned long long)fw.held);
	}
}

static int
status_usage(void)
{
	fprintf(stderr, "usage: ringmail status [--config FILE] [--all] "
	    "[CAMPAIGN]\n"
	    "       ringmail status [--config FILE] --workers\n"
	    "       ringmail status [--config FILE] --sites\n");
	return 2;
}

/*
 * --sites: one line per site a worker published (RM_KEY_SITES): queue,
 * sessions, the binding constraint and the controller's last change.
 */
static int
sites_list(redisContext *rc, int64_t now_ms)
{
	redisReply	*r = cli_cmd(rc, "HGETALL %s", RM_KEY_SITES);

	if (r == NULL)
		return 1;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		char	*v = strdup(r->element[i + 1]->str), *f[7] = { 0 };
		char	*p = v;
		size_t	 n = 0;

		while (p != NULL && n < 7) {
			char	*fs = strchr(p, RM_FS);

			f[n++] = p;
			if (fs != NULL)
				*fs++ = '\0';
			p = fs;
		}
		if (n >= 6)
			printf("site=%.*s age=%llds queued=%s sessions=%s bind=%s "
			    "explain=\"%s\" last=\"%s\" worker=%s\n",
			    (int)strcspn(r->element[i]->str, "\x1f"),
			    r->element[i]->str, (long long)(now_ms -
			    strtoll(f[0], NULL, 10)) / 1000, f[2], f[3], f[4],
			    f[5], n > 6 ? f[6] : "", f[1]);
		free(v);
	}
	freeReplyObject(r);
	return 0;
}

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },
		{ "workers", no_argument, NULL, 'w' },
		{ "sites", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*cfgpath = NULL;
	struct config	*cfg;
	redisContext	*rc;
	redisReply	*ids = NULL, *wk = NULL;
	struct cstat	 s;
	bool		 all = false, workers = false, sites = false;
	bool		 tty = isatty(STDOUT_FILENO);
	int64_t		 now_ms;
	int		 c, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:awsh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'a':
			all = true;
			break;
		case 'w':
			workers = true;
			break;
		case 's':
			sites = true;
			break;
		default:
			return status_usage();
		}
	}
	if (argc - optind > 1 || (workers && (all || argc - optind > 0)) ||
	    (sites && (workers || all || argc - optind > 0)))
		return status_usage();
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if ((rc = cli_redis(cfg)) == NULL)
		goto out;
	if ((wk = workers_get(rc)) == NULL)
		goto out;
	now_ms = wall_ms();
	if (workers) {
		workers_list(wk, tty, now_ms);
		ret = 0;
		goto out;
	}
	if (sites) {
		ret = sites_list(rc, now_ms);
		goto out;
	}
	workers_header(wk, tty, now_ms);
	if (tty)
		printf("%-24s %-10s %8s %8s %8s %7s %8s %8s %6s %7s %8s %7s "
		    "%-22s %6s\n", "CAMPAIGN", "STATE", "TOTAL", "SENT",
		    "BOUNCED", "FAILED", "DEFERRED", "RETRYING", "JOBS",
		    "PENDING", "RATE/S", "ETA", "PROGRESS", "");
	if (argc - optind == 1) {
		const char	*id = argv[optind];

		if (!rm_id_valid(id) || (c = load(rc, id, &s)) == 1) {
			fprintf(stderr, "ringmail: no campaign '%s'\n", id);
			goto out;
		}
		if (c < 0)
			goto out;
		print_one(id, &s, tty, now_ms);
		ret = 0;
		goto out;
	}
	if ((ids = cli_cmd(rc, "ZREVRANGE %s 0 %d", RM_KEY_CAMPAIGNS,
	    all ? -1 : 19)) == NULL)
		goto out;
	for (size_t i = ids->elements; i-- > 0;) {
		if ((c = load(rc, ids->element[i]->str, &s)) == 0)
			print_one(ids->element[i]->str, &s, tty, now_ms);
		else if (c < 0)
			goto out;
	}
	ret = 0;
out:
	if (wk)
		freeReplyObject(wk);
	if (ids)
		freeReplyObject(ids);
	if (rc)
		redisFree(rc);
	config_free(cfg);
	return ret;
}
