/* ringmail: command-line entry point; dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"

static const struct {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*help;
} cmds[] = {
	{ "submit", cmd_submit, "queue a campaign: submit CAMPAIGN.yaml RECIPIENTS.csv" },
	{ "worker", cmd_worker, "run the sending engine" },
	{ "status", cmd_status, "campaign progress and counters" },
	{ "explain", cmd_explain, "explain CAMPAIGN|SITE|ADDRESS|SOURCE-IP: what holds mail back" },
	{ "bounce", cmd_bounce, "bounce parse FILE...: classify bounce messages" },
	{ "passwd", cmd_passwd, "passwd USER: hash a mailbox password" },
	{ "route", cmd_route, "route DOMAIN...: MX resolution and site" },
	{ "campaign", cmd_campaign, "campaign pause|resume|cancel ID" },
	{ "suppress", cmd_suppress, "suppress add|remove|check|import|export: suppression lists" },
	{ "events", cmd_events, "events [--follow] [--campaign ID]: outcome events as JSON lines" },
	{ "dkim-sign", cmd_dkim, "dkim-sign --key K --domain D --selector S FILE" },
	{ "inbound", cmd_inbound, "run the inbound SMTP/IMAP/POP3 server (bounces, replies)" },
	{ "unsubscribe-server", cmd_unsub_server, "serve one-click unsubscribe (RFC 8058) on unsubscribe.listen" },
	{ "unsubscribe-token", cmd_unsub_token, "unsubscribe-token [--issued UNIX] CAMPAIGN ADDRESS: debug" },
	{ "render", cmd_render, "render CAMPAIGN.yaml RECIPIENTS.csv [--row N]: print one message" },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: ringmail COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\nEvery command takes --config FILE (default ./config.yaml); "
	    "RINGMAIL_REDIS=host:port overrides the Redis address.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ringmail: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
