/*
 * ringmail events [--config FILE] [--follow] [--campaign ID]
 *                 [--since STREAM-ID | --last N] [--count N]
 *
 * Prints entries of the rm:events stream as JSON lines: every field of
 * the entry as a string, plus "id" (the stream id). Without --since or
 * --last it starts at the oldest entry, or, with --follow, at the next
 * new one. --since starts after the given id, --last N prints the newest N
 * (of the campaign, with --campaign) first. --follow then waits for new
 * entries (XREAD BLOCK) until SIGINT or SIGTERM, which exit 0. --count
 * stops after N printed entries.
 *
 * Memory stays flat while following: entries are printed page by page;
 * only --last N keeps its N lines to print them oldest first.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/buf.h"
#include "lib/json.h"
#include "out/schema.h"

#define EV_PAGE		1000	/* entries per XRANGE / XREAD */
#define EV_BLOCK_MS	500	/* bounds how long a signal waits */
#define EV_ID_MAX	48	/* "ms-seq", two 20-digit numbers */

static volatile sig_atomic_t ev_stop;

struct ev {
	redisContext	*rc;
	const char	*campaign;	/* filter, or NULL */
	unsigned long	 count;		/* 0: unlimited */
	unsigned long	 nprinted;
	struct buf	 line;
};

static void
ev_on_signal(int sig)
{
	(void)sig;
	ev_stop = 1;
}

/* "ms[-seq]" into its two numbers. */
static int
ev_parse_id(const char *s, uint64_t *ms, uint64_t *seq)
{
	char	*end;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	*ms = strtoull(s, &end, 10);
	*seq = 0;
	if (errno != 0)
		return -EINVAL;
	if (*end == '-') {
		if (end[1] < '0' || end[1] > '9')
			return -EINVAL;
		*seq = strtoull(end + 1, &end, 10);
		if (errno != 0)
			return -EINVAL;
	}
	return *end == '\0' ? 0 : -EINVAL;
}

/* The smallest id after s (XRANGE's "(" needs Redis 6.2; this does not). */
static int
ev_next_id(char *out, size_t outsz, const char *s)
{
	uint64_t	ms, seq;

	if (ev_parse_id(s, &ms, &seq) != 0)
		return -EINVAL;
	if (seq == UINT64_MAX) {
		if (ms == UINT64_MAX)
			return -ERANGE;
		ms++;
		seq = 0;
	} else
		seq++;
	snprintf(out, outsz, "%" PRIu64 "-%" PRIu64, ms, seq);
	return 0;
}

/*
 * Format one entry ([id, [f, v, ...]]) into ev->line; returns 1 when it
 * passes the campaign filter, 0 when not, -EINVAL for a malformed one.
 */
static int
ev_format(struct ev *ev, const redisReply *e)
{
	const redisReply	*kv;
	bool			 match = ev->campaign == NULL;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return -EINVAL;
	kv = e->element[1];
	buf_reset(&ev->line);
	buf_puts(&ev->line, "{\"id\":");
	json_put_str(&ev->line, e->element[0]->str, e->element[0]->len);
	/* A deleted entry still listed by XREAD has no fields (nil). */
	if (kv->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i + 1 < kv->elements; i += 2) {
			const redisReply	*f = kv->element[i];
			const redisReply	*v = kv->element[i + 1];

			if (f->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING)
				continue;
			buf_putc(&ev->line, ',');
			json_put_str(&ev->line, f->str, f->len);
			buf_putc(&ev->line, ':');
			json_put_str(&ev->line, v->str, v->len);
			if (!match && strcmp(f->str, "campaign") == 0 &&
			    strcmp(v->str, ev->campaign) == 0)
				match = true;
		}
	}
	buf_puts(&ev->line, "}\n");
	return match ? 1 : 0;
}

static bool
ev_done(const struct ev *ev)
{
	return ev_stop || (ev->count > 0 && ev->nprinted >= ev->count);
}

/*
 * Print the entries of one page (an array of entries) in order; last gets
 * the id of the page's last entry. Returns 0 or -EIO (stdout closed).
 */
static int
ev_print_page(struct ev *ev, const redisReply *page, char *last,
    size_t lastsz)
{
	for (size_t i = 0; i < page->elements && !ev_done(ev); i++) {
		const redisReply	*e = page->element[i];

		if (ev_format(ev, e) == 1) {
			if (fwrite(ev->line.data, 1, ev->line.len, stdout) !=
			    ev->line.len)
				return -EIO;
			ev->nprinted++;
		}
		if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
		    e->element[0]->type == REDIS_REPLY_STRING)
			snprintf(last, lastsz, "%s", e->element[0]->str);
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/* Everything after `from` ("-" for all) up to now; last = id read last. */
static int
ev_range(struct ev *ev, const char *from, char *last, size_t lastsz)
{
	char		 start[EV_ID_MAX];
	redisReply	*r;
	size_t		 n;

	snprintf(start, sizeof(start), "%s", from);
	do {
		if ((r = cli_cmd(ev->rc, "XRANGE %s %s + COUNT %d",
		    RM_KEY_EVENTS, start, EV_PAGE)) == NULL)
			return -EIO;
		n = r->elements;
		if (ev_print_page(ev, r, last, lastsz) != 0) {
			freeReplyObject(r);
			return -EIO;
		}
		freeReplyObject(r);
		if (n > 0 && ev_next_id(start, sizeof(start), last) != 0)
			break;
	} while (n == EV_PAGE && !ev_done(ev));
	return 0;
}

/*
 * The newest n matching entries, printed oldest first; last = the newest
 * id in the stream ("0-0" when empty), where --follow continues.
 */
static int
ev_last(struct ev *ev, unsigned long n, char *last, size_t lastsz)
{
	char		**lines = NULL, end[EV_ID_MAX] = "+";
	unsigned long	  nl = 0;
	redisReply	 *r;
	size_t		  got;
	int		  ret = -EIO;

	snprintf(last, lastsz, "0-0");
	if (n > 0 && (lines = calloc(n, sizeof(*lines))) == NULL)
		return -ENOMEM;
	while (nl < n) {
		uint64_t	ms, seq;

		if ((r = cli_cmd(ev->rc, "XREVRANGE %s %s - COUNT %d",
		    RM_KEY_EVENTS, end, EV_PAGE)) == NULL)
			goto out;
		got = r->elements;
		for (size_t i = 0; i < got && nl < n; i++) {
			const redisReply	*e = r->element[i];

			if (ev_format(ev, e) == 1 &&
			    (lines[nl++] = strdup(ev->line.data)) == NULL) {
				freeReplyObject(r);
				goto out;
			}
		}
		if (got > 0 && strcmp(end, "+") == 0)
			snprintf(last, lastsz, "%s",
			    r->element[0]->element[0]->str);
		/* Continue just before the oldest entry of this page. */
		if (got > 0 && ev_parse_id(r->element[got - 1]->element[0]->str,
		    &ms, &seq) == 0 && (ms > 0 || seq > 0)) {
			if (seq > 0)
				seq--;
			else {
				ms--;
				seq = UINT64_MAX;
			}
			snprintf(end, sizeof(end), "%" PRIu64 "-%" PRIu64, ms,
			    seq);
		} else
			got = 0;
		freeReplyObject(r);
		if (got < EV_PAGE)
			break;
	}
	if (n == 0) {
		/* Only the position: the newest id. */
		if ((r = cli_cmd(ev->rc, "XREVRANGE %s + - COUNT 1",
		    RM_KEY_EVENTS)) == NULL)
			goto out;
		if (r->elements == 1)
			snprintf(last, lastsz, "%s",
			    r->element[0]->element[0]->str);
		freeReplyObject(r);
	}
	ret = 0;
	for (unsigned long i = nl; i-- > 0 && !ev_done(ev);) {
		if (fputs(lines[i], stdout) == EOF) {
			ret = -EIO;
			break;
		}
		ev->nprinted++;
	}
	if (fflush(stdout) != 0)
		ret = -EIO;
out:
	for (unsigned long i = 0; i < n && lines; i++)
		free(lines[i]);
	free(lines);
	return ret;
}

static int
ev_follow(struct ev *ev, char *last, size_t lastsz)
{
	redisReply	*r;

	while (!ev_done(ev)) {
		r = redisCommand(ev->rc,
		    "XREAD COUNT %d BLOCK %d STREAMS %s %s", EV_PAGE, EV_BLOCK_MS, RM_KEY_EVENTS, last);
		if (r == NULL) {
			if (ev_stop)
				break;
			fprintf(stderr, "ringmail: redis: %s\n",
			    ev->rc->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "ringmail: redis: %s\n", r->str);
			freeReplyObject(r);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY &&
		    r->element[0]->elements == 2 &&
		    ev_print_page(ev, r->element[0]->element[1], last,
		    lastsz) != 0) {
			freeReplyObject(r);
			return -EIO;
		}
		freeReplyObject(r);
	}
	return 0;
}

static int
ev_usage(void)
{
	fprintf(stderr, "usage: ringmail events [--config FILE] [--follow] "
	    "[--campaign ID]\n"
	    "       [--since STREAM-ID | --last N] [--count N]\n");
	return 2;
}

int
cmd_events(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "follow", no_argument, NULL, 'f' },
		{ "campaign", required_argument, NULL, 'C' },
		{ "since", required_argument, NULL, 's' },
		{ "last", required_argument, NULL, 'l' },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*cfgpath = NULL, *since = NULL;
	struct config		*cfg;
	struct sigaction	 sa;
	struct ev		 ev;
	char			 last[EV_ID_MAX] = "0-0", from[EV_ID_MAX];
	char			*end;
	unsigned long		 nlast = 0;
	bool			 follow = false, have_last = false;
	uint64_t		 ms, seq;
	int			 c, ret = 1;

	memset(&ev, 0, sizeof(ev));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:fC:s:l:n:h", opts,
	    NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'C':
			if (!rm_id_valid(optarg)) {
				fprintf(stderr, "ringmail: --campaign: invalid "
				    "campaign id\n");
				return 2;
			}
			ev.campaign = optarg;
			break;
		case 's':
			if (ev_parse_id(optarg, &ms, &seq) != 0 ||
			    strlen(optarg) >= EV_ID_MAX) {
				fprintf(stderr, "ringmail: --since: a stream "
				    "id (MS or MS-SEQ)\n");
				return 2;
			}
			since = optarg;
			break;
		case 'l':
		case 'n':
			errno = 0;
			nlast = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end != '\0' ||
			    optarg[0] == '-' || nlast > 10000000) {
				fprintf(stderr, "ringmail: --%s: 0..10000000\n",
				    c == 'l' ? "last" : "count");
				return 2;
			}
			if (c == 'n') {
				if (nlast == 0)
					return ev_usage();
				ev.count = nlast;
				nlast = 0;
			} else
				have_last = true;
			break;
		default:
			return ev_usage();
		}
	}
	if (optind != argc || (since && have_last))
		return ev_usage();
	if (have_last && nlast == 0 && !follow)
		return 0;
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ev_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	buf_init(&ev.line);
	if ((ev.rc = cli_redis(cfg)) == NULL)
		goto out;
	if (have_last) {
		if (ev_last(&ev, nlast, last, sizeof(last)) != 0)
			goto out;
	} else if (since != NULL) {
		snprintf(last, sizeof(last), "%s", since);
		if (ev_next_id(from, sizeof(from), since) == 0 &&
		    ev_range(&ev, from, last, sizeof(last)) != 0)
			goto out;
	} else if (follow) {
		/* Only what comes next: start at the newest id now. */
		if (ev_last(&ev, 0, last, sizeof(last)) != 0)
			goto out;
	} else if (ev_range(&ev, "-", last, sizeof(last)) != 0)
		goto out;
	if (follow && ev_follow(&ev, last, sizeof(last)) != 0)
		goto out;
	ret = 0;
out:
	buf_free(&ev.line);
	if (ev.rc)
		redisFree(ev.rc);
	config_free(cfg);
	return ret;
}
