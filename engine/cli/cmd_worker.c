/*
 * ringmail worker [--config FILE] [--threads N] [--until-done]
 *
 * Runs the sending engine until SIGTERM/SIGINT (graceful drain: sessions
 * finish their current message, queued recipients go back to Redis, the
 * last outcomes are recorded; a second signal exits at once and leaves
 * the rest to be reclaimed by other workers) or, with --until-done, until
 * no campaign is active.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/log.h"
#include "out/worker.h"

static volatile sig_atomic_t nsignals;

static void
on_signal(int sig)
{
	(void)sig;
	if (nsignals++ > 0)
		_exit(1);
	worker_request_drain();
}

int
cmd_worker(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "until-done", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct worker_opts	 o;
	struct config		*cfg;
	struct sigaction	 sa;
	const char		*cfgpath = NULL;
	int			 c, rc;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:t:uh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 't':
			o.threads = (unsigned)strtoul(optarg, NULL, 10);
			if (o.threads < 1 || o.threads > 256) {
				fprintf(stderr, "ringmail: --threads must be "
				    "1..256\n");
				return 2;
			}
			break;
		case 'u':
			o.until_done = true;
			break;
		default:
			fprintf(stderr, "usage: ringmail worker [--config FILE] "
			    "[--threads N] [--until-done]\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ringmail: worker takes no arguments\n");
		return 2;
	}
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = worker_run(cfg, &o);
	config_free(cfg);
	return rc;
}
