/*
 * ringmail campaign [--config FILE] pause|resume|cancel ID
 *
 * Operator control of one campaign. Each transition is one Lua script
 * (RM_LUA_CONTROL) that checks the current state and sets the new one
 * atomically, so two operators (or an operator and a worker finishing the
 * campaign) cannot interleave. Workers read the state on every turn: a
 * pause or cancel takes effect fleet-wide within their poll interval.
 * Prints the new state; an invalid transition is an error (exit 1).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/mono.h"
#include "out/schema.h"

static int
cmd_campaign_usage(void)
{
	fprintf(stderr, "usage: ringmail campaign [--config FILE] "
	    "pause|resume|cancel ID\n");
	return 2;
}

/* Why op is refused from state st, for the error message. */
static const char *
cmd_campaign_why(const char *op, const char *st)
{
	if (strcmp(st, RM_STATE_DONE) == 0 ||
	    strcmp(st, RM_STATE_CANCELLED) == 0)
		return "it is finished";
	if (strcmp(op, "pause") == 0)
		return strcmp(st, RM_STATE_PAUSED) == 0 ?
		    "it is already paused" : "only a submitting, scheduled "
		    "or active campaign can be paused";
	if (strcmp(op, "resume") == 0)
		return "only a paused campaign can be resumed";
	return strcmp(st, RM_STATE_CANCELLING) == 0 ?
	    "it is already being cancelled" : "it cannot be cancelled";
}

int
cmd_campaign(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*cfgpath = NULL, *op, *id;
	struct config	*cfg;
	redisContext	*rc = NULL;
	redisReply	*r = NULL;
	char		 k_meta[RM_KEY_MAX], now[24];
	int		 c, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		default:
			return cmd_campaign_usage();
		}
	}
	if (argc - optind != 2)
		return cmd_campaign_usage();
	op = argv[optind];
	id = argv[optind + 1];
	if (strcmp(op, "pause") != 0 && strcmp(op, "resume") != 0 &&
	    strcmp(op, "cancel") != 0) {
		fprintf(stderr, "ringmail campaign: unknown action '%s'\n", op);
		return cmd_campaign_usage();
	}
	if (!rm_id_valid(id)) {
		fprintf(stderr, "ringmail campaign: invalid campaign id\n");
		return 2;
	}
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if ((rc = cli_redis(cfg)) == NULL)
		goto out;
	rm_key(k_meta, sizeof(k_meta), id, RM_SFX_META);
	snprintf(now, sizeof(now), "%lld", (long long)wall_ms());
	if ((r = cli_cmd(rc, "EVAL %s 2 %s %s %s %s %s", RM_LUA_CONTROL,
	    k_meta, RM_KEY_ACTIVE, id, op, now)) == NULL)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "ringmail: redis: unexpected reply\n");
		goto out;
	}
	if (r->element[0]->integer < 0) {
		fprintf(stderr, "ringmail: no campaign '%s'\n", id);
		goto out;
	}
	if (r->element[0]->integer == 0) {
		fprintf(stderr, "ringmail: cannot %s campaign '%s' in state "
		    "'%s': %s\n", op, id, r->element[1]->str,
		    cmd_campaign_why(op, r->element[1]->str));
		goto out;
	}
	printf("%s\n", r->element[1]->str);
	ret = 0;
out:
	if (r)
		freeReplyObject(r);
	if (rc)
		redisFree(rc);
	config_free(cfg);
	return ret;
}
