/*
 * cmd_inbound: `ringmail inbound [--config FILE]` runs the inbound server
 * (in/server.h): SMTP for the bounce and reply domains, IMAP and POP3 for
 * the mailboxes. Reports from bounce-domain mail are recorded in Redis
 * here, batched once per loop turn over one synchronous hiredis
 * connection, pipelined (this thread does nothing else while it waits,
 * and inbound volume is small). Reports wait in memory (bounded) while
 * Redis is unreachable; the messages themselves are already in the
 * Maildir.
 *
 * `ringmail inbound --verp-encode CAMPAIGN INDEX` prints the VERP address
 * for a recipient (debugging and tests).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "lib/log.h"
#include "lib/mono.h"
#include "core/config.h"
#include "mail/token.h"
#include "in/auth.h"
#include "in/inreport.h"
#include "in/server.h"
#include "out/schema.h"
#include "out/suppress.h"

#include "cli/cli.h"
#include "cli/cmd.h"

#define INB_PENDING_MAX		4096	/* reports held while Redis is down */
#define INB_RETRY_US		5000000
#define INB_KEY_STATS		"rm:inbound"	/* hash: inbound counters */
/* KEYS: suppress hash, log. ARGV: addr, value, log maxlen, ts. */
#define INB_LUA_SUPPRESS \
	"if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n" \
	"  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', " \
	"    'op', 'add', 'addr', ARGV[1], 'list', '', 'ts', ARGV[4])\n" \
	"  return 1\n" \
	"end\n" \
	"return 0\n"

struct inb_ctx {
	const struct config	*cfg;
	redisContext		*rc;
	mono_us			 retry_at;
	struct inreport		*pend;		/* owns: INB_PENDING_MAX */
	size_t			 npend;
	unsigned long		 ndropped;
};

static struct inbound_server *inb_server;

static void
inb_on_signal(int sig)
{
	(void)sig;
	if (inb_server != NULL)
		inbound_server_stop(inb_server);
}

static void
inb_on_report(void *arg, const struct inreport *r)
{
	struct inb_ctx *x = arg;

	if (x->npend == INB_PENDING_MAX) {
		x->ndropped++;
		log_warn("inbound redis backlog full: report dropped "
		    "campaign=%s idx=%u kind=%s", r->campaign, r->index,
		    inreport_kind_name(r->kind));
		return;
	}
	x->pend[x->npend++] = *r;
}

static int64_t
inb_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Queue the commands of one report; returns how many were appended. */
static unsigned
inb_append(struct inb_ctx *x, const struct inreport *r, int64_t now)
{
	const char	*type, *counter, *src;
	char		 key[RM_KEY_MAX], ts[24], idx[16], code[8];
	char		 addr[SUPPRESS_ADDR_MAX + 1], val[SUPPRESS_VALUE_MAX];
	unsigned	 n = 0;

	switch (r->kind) {
	case INREPORT_BOUNCED:
		type = RM_EV_BOUNCED;
		counter = "bounced";
		src = SUPPRESS_SRC_BOUNCE;
		break;
	case INREPORT_COMPLAINED:
		type = RM_EV_COMPLAINED;
		counter = "complained";
		src = SUPPRESS_SRC_COMPLAINT;
		break;
	case INREPORT_AUTOREPLY:
		redisAppendCommand(x->rc, "HINCRBY %s autoreplies 1",
		    INB_KEY_STATS);
		return 1;
	case INREPORT_OTHER:
		redisAppendCommand(x->rc, "HINCRBY %s other 1", INB_KEY_STATS);
		return 1;
	case INREPORT_UNATTRIBUTED:
	default:
		redisAppendCommand(x->rc, "HINCRBY %s unattributed 1",
		    INB_KEY_STATS);
		return 1;
	}
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	snprintf(idx, sizeof(idx), "%u", r->index);
	snprintf(code, sizeof(code), "%d", r->code);
	redisAppendCommand(x->rc, "XADD %s MAXLEN ~ 1000000 * v %s type %s "
	    "campaign %s rcpt %s idx %s attempt 0 code %s esc %s stage dsn "
	    "dest %s text %s category %s ts %s", RM_KEY_EVENTS,
	    RM_SCHEMA_VERSION, type, r->campaign, r->rcpt, idx, code, r->esc,
	    r->dest, r->text, r->category, ts);
	n++;
	if (rm_id_valid(r->campaign) && rm_key(key, sizeof(key), r->campaign,
	    RM_SFX_STATS)) {
		redisAppendCommand(x->rc, "HINCRBY %s %s 1", key, counter);
		n++;
	}
	if (r->suppress && r->rcpt[0] != '\0' &&
	    suppress_normalize(addr, sizeof(addr), r->rcpt,
	    strlen(r->rcpt)) == 0 &&
	    suppress_format_value(val, sizeof(val), r->text[0] ? r->text :
	    r->category, src, now) == 0) {
		/* As the worker does (RM_LUA_RECORD): an address already
		 * suppressed keeps its first reason and gets no log entry. */
		redisAppendCommand(x->rc, "EVAL %s 2 %s %s %s %s %s %s",
		    INB_LUA_SUPPRESS, RM_KEY_SUPPRESS, RM_KEY_SUPPRESS_LOG,
		    addr, val, RM_SUPPRESS_LOG_MAXLEN, ts);
		n++;
	}
	return n;
}

/* End of a loop turn: write the batch, one round trip. */
static void
inb_on_turn(void *arg)
{
	struct inb_ctx	*x = arg;
	unsigned	 ncmd = 0;
	int64_t		 now = inb_now_ms();
	bool		 failed = false;

	if (x->npend == 0 || mono_now() < x->retry_at)
		return;
	if (x->rc == NULL && (x->rc = cli_redis(x->cfg)) == NULL) {
		x->retry_at = mono_now() + INB_RETRY_US;
		log_warn("inbound redis unreachable: %zu reports wait",
		    x->npend);
		return;
	}
	for (size_t i = 0; i < x->npend; i++)
		ncmd += inb_append(x, &x->pend[i], now);
	for (unsigned i = 0; i < ncmd; i++) {
		redisReply *rep = NULL;

		if (redisGetReply(x->rc, (void **)&rep) != REDIS_OK) {
			failed = true;
			break;
		}
		if (rep->type == REDIS_REPLY_ERROR)
			log_warn("inbound redis error: %s", rep->str);
		freeReplyObject(rep);
	}
	if (failed) {
		/* Reports may be written twice on the retry; counters are
		 * advisory, events carry the report. */
		log_warn("inbound redis: %s; retrying", x->rc->errstr);
		redisFree(x->rc);
		x->rc = NULL;
		x->retry_at = mono_now() + INB_RETRY_US;
		return;
	}
	x->npend = 0;
}

static int
inb_verp_encode(const struct config *cfg, const char *campaign,
    const char *index)
{
	struct token_key	*k;
	char			 err[256], out[VERP_LOCAL_BUFSZ], *end;
	unsigned long		 idx;

	if (cfg->verp_secret_file == NULL) {
		fprintf(stderr, "ringmail: verp.secret_file is not set\n");
		return 2;
	}
	errno = 0;
	idx = strtoul(index, &end, 10);
	if (*index == '\0' || *end != '\0' || errno != 0 ||
	    idx > UINT32_MAX) {
		fprintf(stderr, "ringmail: INDEX must be 0..4294967295\n");
		return 2;
	}
	if ((k = token_key_load(cfg->verp_secret_file, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "ringmail: %s\n", err);
		return 2;
	}
	if (verp_encode(k, campaign, (uint32_t)idx, out) != 0) {
		fprintf(stderr, "ringmail: bad campaign id\n");
		token_key_free(k);
		return 2;
	}
	printf("%s@%s\n", out, cfg->verp_bounce_domain != NULL ?
	    cfg->verp_bounce_domain : "bounce.invalid");
	token_key_free(k);
	return 0;
}

int
cmd_inbound(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verp-encode", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct inbound_conf	 ic;
	struct inb_ctx		 x;
	struct config		*cfg;
	struct token_key	*key = NULL;
	struct auth_users	*users = NULL;
	struct auth_limiter	*lim = NULL;
	SSL_CTX			*tls = NULL;
	struct sigaction	 sa;
	struct inbound_stats	 st;
	const char		*cfgpath = NULL;
	const char		*bdom[1];
	char			 err[512];
	bool			 verp = false;
	int			 c, rc = 1, e;
	unsigned		 eline = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'V':
			verp = true;
			break;
		default:
			fprintf(stderr, "usage: ringmail inbound [--config "
			    "FILE]\n       ringmail inbound [--config FILE] "
			    "--verp-encode CAMPAIGN INDEX\n");
			return 2;
		}
	}
	if ((verp && argc - optind != 2) || (!verp && optind != argc)) {
		fprintf(stderr, "ringmail: inbound: wrong arguments\n");
		return 2;
	}
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	log_set_level((enum log_level)cfg->log_level);
	if (verp) {
		rc = inb_verp_encode(cfg, argv[optind], argv[optind + 1]);
		config_free(cfg);
		return rc;
	}
	memset(&x, 0, sizeof(x));
	x.cfg = cfg;
	memset(&ic, 0, sizeof(ic));
	ic.listen[INBOUND_SMTP] = cfg->in_listen_smtp;
	ic.listen[INBOUND_IMAP] = cfg->in_listen_imap;
	ic.listen[INBOUND_IMAPS] = cfg->in_listen_imaps;
	ic.listen[INBOUND_POP3] = cfg->in_listen_pop3;
	ic.listen[INBOUND_POP3S] = cfg->in_listen_pop3s;
	ic.hostname = cfg->ehlo_name;
	ic.root = cfg->in_maildir_root;
	ic.bounce_domains = (const char *const *)cfg->in_bounce_domains;
	ic.nbounce = cfg->nin_bounce_domains;
	if (ic.nbounce == 0 && cfg->verp_bounce_domain != NULL) {
		bdom[0] = cfg->verp_bounce_domain;
		ic.bounce_domains = bdom;
		ic.nbounce = 1;
	}
	ic.reply_domains = (const char *const *)cfg->in_reply_domains;
	ic.nreply = cfg->nin_reply_domains;
	ic.bounce_mailbox = cfg->in_bounce_mailbox;
	ic.reply_mailbox = cfg->in_reply_mailbox;
	ic.max_message_size = cfg->in_max_message_size;
	ic.max_recipients = cfg->in_max_recipients;
	ic.max_connections = cfg->in_max_connections;
	ic.max_connections_per_ip = cfg->in_max_connections_per_ip;
	ic.on_report = inb_on_report;
	ic.on_turn = inb_on_turn;
	ic.arg = &x;
	if (getenv("RINGMAIL_INBOUND_IDLE_POLL_MS") != NULL)	/* tests */
		ic.idle_poll_ms = (unsigned)strtoul(
		    getenv("RINGMAIL_INBOUND_IDLE_POLL_MS"), NULL, 10);
	if (cfg->verp_secret_file != NULL && (key = token_key_load(
	    cfg->verp_secret_file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ringmail: verp.secret_file: %s\n", err);
		rc = 2;
		goto out;
	}
	if (key == NULL)
		log_warn("inbound: verp.secret_file not set: bounces cannot "
		    "be attributed");
	ic.verp_key = key;
	if (cfg->in_users_file != NULL)
		users = auth_users_load(cfg->in_users_file, &e, &eline);
	else
		users = auth_users_parse("", 0, &e, &eline);
	if (users == NULL) {
		fprintf(stderr, "ringmail: %s:%u: cannot load users: %s\n",
		    cfg->in_users_file ? cfg->in_users_file : "users", eline,
		    strerror(-e));
		rc = 2;
		goto out;
	}
	ic.users = users;
	/* 10 failures, one back every 30 s, then 5 minutes out. */
	if ((lim = auth_limiter_new(10, 30000000, 300000000)) == NULL)
		goto out;
	ic.limiter = lim;
	if (cfg->in_tls_cert_file != NULL && (tls = inbound_tls_ctx_new(
	    cfg->in_tls_cert_file, cfg->in_tls_key_file, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "ringmail: %s\n", err);
		rc = 2;
		goto out;
	}
	ic.tls = tls;
	if ((x.pend = calloc(INB_PENDING_MAX, sizeof(*x.pend))) == NULL)
		goto out;
	if ((inb_server = inbound_server_new(&ic, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ringmail: inbound: %s\n", err);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = inb_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("inbound ready maildir=%s bounce_domains=%zu "
	    "reply_domains=%zu tls=%d", ic.root, ic.nbounce, ic.nreply,
	    tls != NULL);
	if ((e = inbound_server_run(inb_server)) != 0)
		log_msgc(LOG_ERROR, -e, "inbound loop");
	x.retry_at = 0;
	inb_on_turn(&x);	/* last batch */
	inbound_server_stats(inb_server, &st);
	log_info("inbound done connections=%llu refused=%llu messages=%llu "
	    "store_failures=%llu unrecorded=%zu",
	    (unsigned long long)st.naccepted, (unsigned long long)st.nrefused,
	    (unsigned long long)st.nmessages,
	    (unsigned long long)st.nstore_fail, x.npend);
	inbound_server_free(inb_server);
	inb_server = NULL;
	rc = e == 0 ? 0 : 1;
out:
	if (x.rc != NULL)
		redisFree(x.rc);
	free(x.pend);
	SSL_CTX_free(tls);
	auth_limiter_free(lim);
	auth_users_free(users);
	token_key_free(key);
	config_free(cfg);
	return rc;
}
