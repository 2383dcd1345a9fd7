/*
 * ringmail status [--config FILE] [--all] [CAMPAIGN]
 *
 * Counts per campaign (the 20 newest, --all for every one, or the one
 * named). On a terminal: a table with a progress bar; otherwise one
 * key=value line per campaign, for scripts.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "out/schema.h"

struct cstat {
	char		 state[24], name[64];
	long long	 total, queued, sent, bounced, failed, deferred;
	long long	 invalid, retrying;
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

static int
load(redisContext *rc, const char *id, struct cstat *s)
{
	char		 k[RM_KEY_MAX];
	redisReply	*m, *st, *z;

	memset(s, 0, sizeof(*s));
	rm_key(k, sizeof(k), id, RM_SFX_META);
	if ((m = cli_cmd(rc, "HGETALL %s", k)) == NULL)
		return -1;
	if (m->elements == 0) {
		freeReplyObject(m);
		return 1;
	}
	hstr(m, "state", s->state, sizeof(s->state));
	hstr(m, "name", s->name, sizeof(s->name));
	s->total = hnum(m, "total");
	freeReplyObject(m);
	rm_key(k, sizeof(k), id, RM_SFX_STATS);
	if ((st = cli_cmd(rc, "HGETALL %s", k)) == NULL)
		return -1;
	s->queued = hnum(st, "queued");
	s->sent = hnum(st, "sent");
	s->bounced = hnum(st, "bounced");
	s->failed = hnum(st, "failed");
	s->deferred = hnum(st, "deferred");
	s->invalid = hnum(st, "invalid");
	freeReplyObject(st);
	rm_key(k, sizeof(k), id, RM_SFX_RETRY);
	if ((z = cli_cmd(rc, "ZCARD %s", k)) == NULL)
		return -1;
	s->retrying = z->integer;
	freeReplyObject(z);
	return 0;
}

static void
print_one(const char *id, const struct cstat *s, bool tty)
{
	long long	done = s->sent + s->bounced + s->failed;
	long long	total = s->total > 0 ? s->total : s->queued;
	double		pct = total > 0 ? 100.0 * (double)done / (double)total :
			    (strcmp(s->state, "done") == 0 ? 100.0 : 0.0);

	if (!tty) {
		printf("campaign=%s state=%s total=%lld sent=%lld bounced=%lld "
		    "failed=%lld deferred=%lld retrying=%lld invalid=%lld "
		    "done=%lld progress=%.1f\n", id, s->state, total, s->sent,
		    s->bounced, s->failed, s->deferred, s->retrying,
		    s->invalid, done, pct);
		return;
	}
	{
		char	bar[31];
		int	fill = (int)(pct * 30 / 100);

		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		printf("%-24s %-10s %8lld %8lld %8lld %7lld %8lld %8lld "
		    "[%s] %5.1f%%\n", id, s->state, total, s->sent, s->bounced,
		    s->failed, s->deferred, s->retrying, bar, pct);
	}
}

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*cfgpath = NULL;
	struct config	*cfg;
	redisContext	*rc;
	redisReply	*ids = NULL;
	struct cstat	 s;
	bool		 all = false, tty = isatty(STDOUT_FILENO);
	int		 c, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:ah", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'a':
			all = true;
			break;
		default:
			fprintf(stderr, "usage: ringmail status [--config FILE] "
			    "[--all] [CAMPAIGN]\n");
			return 2;
		}
	}
	if (argc - optind > 1)
		return 2;
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if ((rc = cli_redis(cfg)) == NULL)
		goto out;
	if (tty)
		printf("%-24s %-10s %8s %8s %8s %7s %8s %8s %-32s %6s\n",
		    "CAMPAIGN", "STATE", "TOTAL", "SENT", "BOUNCED", "FAILED",
		    "DEFERRED", "RETRYING", "PROGRESS", "");
	if (argc - optind == 1) {
		const char	*id = argv[optind];

		if (!rm_id_valid(id) || (c = load(rc, id, &s)) == 1) {
			fprintf(stderr, "ringmail: no campaign '%s'\n", id);
			goto out;
		}
		if (c < 0)
			goto out;
		print_one(id, &s, tty);
		ret = 0;
		goto out;
	}
	if ((ids = cli_cmd(rc, "ZREVRANGE %s 0 %d", RM_KEY_CAMPAIGNS,
	    all ? -1 : 19)) == NULL)
		goto out;
	for (size_t i = ids->elements; i-- > 0;) {
		if (load(rc, ids->element[i]->str, &s) == 0)
			print_one(ids->element[i]->str, &s, tty);
	}
	ret = 0;
out:
	if (ids)
		freeReplyObject(ids);
	if (rc)
		redisFree(rc);
	config_free(cfg);
	return ret;
}
