/*
 * ringmail unsubscribe-server [--config FILE]
 *   Serves one-click unsubscribe (in/unsubd.h) on unsubscribe.listen until
 *   SIGTERM/SIGINT, for URLs under the path of unsubscribe.url. Tokens are
 *   checked with unsubscribe.secret_file and unsubscribe.max_age.
 *
 * ringmail unsubscribe-token [--config FILE] [--issued UNIX] CAMPAIGN ADDR
 *   Prints the token (and the URL) the worker would put in the mail: a
 *   debugging and testing aid (--issued makes expired tokens).
 *
 * An unsubscribe is one EVAL (CMD_UNSUB_LUA), atomic and idempotent: the
 * HSETNX on rm:suppress decides; only a new entry appends to
 * rm:suppress:log and rm:events (type unsubscribed) and counts
 * `unsubscribed` in rm:{ID}:stats, so a repeated POST counts once. An
 * address already suppressed for another reason (a bounce, a manual
 * entry) keeps its entry and is not counted again.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "core/config.h"
#include "core/loop.h"
#include "core/rconn.h"
#include "in/unsubd.h"
#include "lib/log.h"
#include "mail/token.h"
#include "out/schema.h"
#include "out/suppress.h"

#define CMD_UNSUB_EVENTS_MAXLEN	"1000000"	/* as the worker's */

/*
 * KEYS: rm:suppress, rm:suppress:log, rm:events, rm:{ID}:stats
 * ARGV: address, value, ts_ms, campaign
 */
#define CMD_UNSUB_LUA \
	"if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then\n" \
	"  return 0\n" \
	"end\n" \
	"redis.call('XADD', KEYS[2], 'MAXLEN', '~', '" RM_SUPPRESS_LOG_MAXLEN \
	"', '*', 'op', 'add', 'addr', ARGV[1], 'list', '', 'ts', ARGV[3])\n" \
	"redis.call('XADD', KEYS[3], 'MAXLEN', '~', '" \
	CMD_UNSUB_EVENTS_MAXLEN "', '*', 'v', '" RM_SCHEMA_VERSION "', " \
	"'type', '" RM_EV_UNSUBSCRIBED "', 'campaign', ARGV[4], " \
	"'rcpt', ARGV[1], 'ts', ARGV[3])\n" \
	"redis.call('HINCRBY', KEYS[4], 'unsubscribed', 1)\n" \
	"return 1\n"

static volatile sig_atomic_t cmd_unsub_stop;

static void
cmd_unsub_on_signal(int sig)
{
	(void)sig;
	cmd_unsub_stop = 1;
}

static int64_t
cmd_unsub_wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
cmd_unsub_on_reply(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;

	(void)rc;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		log_error("unsubscribe: redis: %s", reply ? reply->str :
		    "connection lost");
		unsubd_applied(priv, -EIO);
		return;
	}
	unsubd_applied(priv, 0);
}

static int
cmd_unsub_apply(void *arg, struct unsubd_conn *c, const char *campaign,
    const char *address)
{
	struct rconn	*rc = arg;
	char		 addr[SUPPRESS_ADDR_MAX + 1], val[SUPPRESS_VALUE_MAX];
	char		 reason[128], k_stats[RM_KEY_MAX], ts[24];
	const char	*argv[11];
	size_t		 lens[11];
	int64_t		 now = cmd_unsub_wall_ms();
	int		 r;

	snprintf(reason, sizeof(reason), "one-click unsubscribe campaign=%s",
	    campaign);
	if ((r = suppress_normalize(addr, sizeof(addr), address,
	    strlen(address))) != 0 ||
	    (r = suppress_format_value(val, sizeof(val), reason,
	    SUPPRESS_SRC_UNSUBSCRIBE, now)) != 0)
		return r;
	if (!rm_key(k_stats, sizeof(k_stats), campaign, RM_SFX_STATS))
		return -EINVAL;
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	argv[0] = "EVAL";
	argv[1] = CMD_UNSUB_LUA;
	argv[2] = "4";
	argv[3] = RM_KEY_SUPPRESS;
	argv[4] = RM_KEY_SUPPRESS_LOG;
	argv[5] = RM_KEY_EVENTS;
	argv[6] = k_stats;
	argv[7] = addr;
	argv[8] = val;
	argv[9] = ts;
	argv[10] = campaign;
	for (int i = 0; i < 11; i++)
		lens[i] = strlen(argv[i]);
	return rconn_cmdargv(rc, cmd_unsub_on_reply, c, 11, argv, lens);
}

/* The path of unsubscribe.url: what comes before the token. */
static int
cmd_unsub_prefix(const char *url, char *out, size_t outlen)
{
	const char	*p;

	if (url == NULL || strncasecmp(url, "https://", 8) != 0)
		return -EINVAL;
	if ((p = strchr(url + 8, '/')) == NULL)
		p = "/";
	if (strchr(p, '?') != NULL || strlen(p) >= outlen)
		return -EINVAL;
	snprintf(out, outlen, "%s", p);
	return 0;
}

static struct token_key *
cmd_unsub_key(const struct config *cfg)
{
	struct token_key	*k;
	char			 err[256];

	if (cfg->unsub_secret_file == NULL) {
		fprintf(stderr, "ringmail: unsubscribe.secret_file is not "
		    "set\n");
		return NULL;
	}
	if ((k = token_key_load(cfg->unsub_secret_file, err,
	    sizeof(err))) == NULL)
		fprintf(stderr, "ringmail: %s: %s\n", cfg->unsub_secret_file,
		    err);
	return k;
}

int
cmd_unsub_server(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct config		*cfg;
	struct token_key	*key = NULL;
	struct loop		 loop;
	struct rconn		 rc;
	struct unsubd		*d = NULL;
	struct unsubd_opts	 o;
	struct sigaction	 sa;
	const char		*cfgpath = NULL;
	char			 host[CONFIG_LISTEN_HOST_MAX], prefix[256];
	char			 err[256];
	uint16_t		 port;
	int			 c, rv = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		default:
			fprintf(stderr, "usage: ringmail unsubscribe-server "
			    "[--config FILE]\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ringmail: unsubscribe-server takes no "
		    "arguments\n");
		return 2;
	}
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if (config_listen_parse(cfg->unsub_listen ? cfg->unsub_listen :
	    CONFIG_UNSUB_LISTEN_DEFAULT, host, &port) != 0 ||
	    cmd_unsub_prefix(cfg->unsub_url, prefix, sizeof(prefix)) != 0) {
		fprintf(stderr, "ringmail: unsubscribe.listen or "
		    "unsubscribe.url is not usable\n");
		config_free(cfg);
		return 2;
	}
	if ((key = cmd_unsub_key(cfg)) == NULL) {
		config_free(cfg);
		return 2;
	}
	if ((c = loop_init(&loop, 512)) != 0) {
		log_msgc(LOG_ERROR, -c, "io_uring");
		goto out_key;
	}
	memset(&rc, 0, sizeof(rc));
	if ((c = rconn_start(&rc, &loop, "unsub", cfg->redis_host,
	    cfg->redis_port, cfg->redis_password, cfg->redis_db)) != 0) {
		log_msgc(LOG_ERROR, -c, "redis %s:%u", cfg->redis_host,
		    (unsigned)cfg->redis_port);
		goto out_loop;
	}
	memset(&o, 0, sizeof(o));
	o.host = host;
	o.port = port;
	o.prefix = prefix;
	o.key = key;
	o.max_age_s = cfg->unsub_max_age_s;
	o.apply = cmd_unsub_apply;
	o.arg = &rc;
	if ((d = unsubd_new(&loop, &o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ringmail: %s\n", err);
		goto out_redis;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cmd_unsub_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("unsubscribe-server listen=%s:%u path=%s", host,
	    (unsigned)unsubd_port(d), prefix);
	while (!cmd_unsub_stop) {
		if ((c = loop_run_once(&loop, 500000)) < 0) {
			log_msgc(LOG_ERROR, -c, "loop");
			break;
		}
		unsubd_tick(d);
	}
	/* Finish what is in flight (bounded: 5 s). */
	for (int i = 0; i < 500 && !unsubd_shutdown(d); i++) {
		loop_run_once(&loop, 10000);
	}
	rv = 0;
out_redis:
	rconn_free(&rc);
	for (int i = 0; i < 100 && loop.ninflight > 0; i++)
		loop_run_once(&loop, 10000);
	if (d != NULL)
		unsubd_free(d);
out_loop:
	loop_fini(&loop);
out_key:
	token_key_free(key);
	config_free(cfg);
	return rv;
}

int
cmd_unsub_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "issued", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct config		*cfg;
	struct token_key	*key;
	const char		*cfgpath = NULL;
	char			 tok[UNSUB_TOKEN_BUFSZ], *end;
	long long		 issued = (long long)time(NULL);
	int			 c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'i':
			errno = 0;
			issued = strtoll(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg ||
			    issued < 0) {
				fprintf(stderr, "ringmail: --issued: expected "
				    "seconds since the epoch\n");
				return 2;
			}
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != 2)
		goto usage;
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if ((key = cmd_unsub_key(cfg)) == NULL) {
		config_free(cfg);
		return 2;
	}
	r = unsub_token_make(key, argv[optind], argv[optind + 1], issued,
	    tok);
	if (r == 0)
		printf("%s\n%s%s\n", tok, cfg->unsub_url ? cfg->unsub_url : "",
		    tok);
	else
		fprintf(stderr, "ringmail: cannot make a token: %s\n",
		    r == -EINVAL ? "bad campaign id, address or time" :
		    strerror(-r));
	token_key_free(key);
	config_free(cfg);
	return r == 0 ? 0 : 2;
usage:
	fprintf(stderr, "usage: ringmail unsubscribe-token [--config FILE] "
	    "[--issued UNIX] CAMPAIGN ADDRESS\n");
	return 2;
}
