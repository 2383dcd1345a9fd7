/*
 * ringmail submit [--config F] [--strict] [--id ID] [--batch N]
 *                 [--start-at TIME] [--priority N] [--rate N/s|N/m|N/h]
 *                 [--suppress-list NAME] CAMPAIGN.yaml RECIPIENTS.csv
 *
 * Validates the campaign (templates compiled against the CSV's columns, so
 * a bad variable is reported here, with line and column, not at send
 * time), then streams the CSV into the campaign's job stream in pipelined
 * batches: memory does not grow with the file. Bad rows are reported as
 * "FILE:LINE: why" and skipped (or, with --strict, nothing is written at
 * all when any row is bad). Prints the campaign id on stdout.
 *
 * Control fields (issue 4) go into meta with the definition: start_ms
 * (the campaign is `scheduled`, and workers skip it, until then),
 * priority, rate_per_s and suppress_list. The final state is set by
 * RM_LUA_SUBMITTED so a pause or cancel during a long submission stands.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "campaigns/campaign.h"
#include "campaigns/csv.h"
#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/buf.h"
#include "lib/mono.h"
#include "mail/addr.h"
#include "out/fleet.h"
#include "out/schema.h"
#include "out/suppress.h"
#include "templates/tpl.h"

#define SUBMIT_PIPELINE	64	/* XADDs in flight before reading replies */

struct submit {
	const char	*csv_path;
	char		*cols[CSV_FIELDS_MAX];
	size_t		 ncols;
	size_t		 email_col;
	unsigned long	 nok, nbad;
	unsigned	 batch;
	redisContext	*rc;		/* NULL in the validation pass */
	char		 k_jobs[RM_KEY_MAX];
	struct buf	 data;		/* packed rows of the current batch */
	unsigned	 nin;		/* rows in data */
	unsigned long	 first;		/* index of data's first row */
	unsigned	 inflight;
};

static int
usage(void)
{
	fprintf(stderr, "usage: ringmail submit [--config FILE] [--strict] "
	    "[--id ID] [--batch N]\n"
	    "       [--start-at TIME] [--priority 0-9] [--rate N/s|N/m|N/h] "
	    "[--suppress-list NAME] [--pool NAME]\n"
	    "       CAMPAIGN.yaml RECIPIENTS.csv\n"
	    "TIME is ISO 8601 UTC (2026-12-01T09:00:00Z) or unix seconds\n");
	return 2;
}

static int
drain_replies(struct submit *s, unsigned keep)
{
	redisReply	*r;

	while (s->inflight > keep) {
		if (redisGetReply(s->rc, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "ringmail: redis: %s\n", s->rc->errstr);
			return -EIO;
		}
		s->inflight--;
		if (r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "ringmail: redis: %s\n", r->str);
			freeReplyObject(r);
			return -EIO;
		}
		freeReplyObject(r);
	}
	return 0;
}

static int
flush_batch(struct submit *s)
{
	char		 n[16], i[24];
	const char	*argv[12];
	size_t		 lens[12];

	if (s->nin == 0)
		return 0;
	snprintf(n, sizeof(n), "%u", s->nin);
	snprintf(i, sizeof(i), "%lu", s->first);
	argv[0] = "XADD"; argv[1] = s->k_jobs; argv[2] = "*";
	argv[3] = "n"; argv[4] = n;
	argv[5] = "i"; argv[6] = i;
	argv[7] = "a"; argv[8] = "0";
	argv[9] = "r"; argv[10] = s->data.data;
	for (int k = 0; k < 10; k++)
		lens[k] = strlen(argv[k]);
	lens[10] = s->data.len;
	redisAppendCommandArgv(s->rc, 11, argv, lens);
	s->inflight++;
	s->first += s->nin;
	s->nin = 0;
	buf_reset(&s->data);
	return drain_replies(s, SUBMIT_PIPELINE);
}

/* A column name usable as a template variable. */
static bool
column_name_ok(const char *c)
{
	if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
	    *c == '_'))
		return false;
	for (c++; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			return false;
	return true;
}

static int
read_header(struct submit *s, struct csv_reader *rd)
{
	struct csv_record	 rec;
	char			 err[512];
	int			 r;
	bool			 have_email = false;

	r = csv_next(rd, &rec, err, sizeof(err));
	if (r <= 0) {
		fprintf(stderr, "%s:%s\n", s->csv_path, r == 0 ?
		    "1: empty file: a header row with an 'email' column is "
		    "required" : err);
		return -EINVAL;
	}
	s->ncols = rec.nfields;
	for (size_t i = 0; i < rec.nfields; i++) {
		if ((s->cols[i] = strdup(rec.fields[i])) == NULL)
			return -ENOMEM;
		if (!column_name_ok(s->cols[i])) {
			fprintf(stderr, "%s:%lu: column %zu: '%s' is not a valid "
			    "column name (letters, digits, _ and -; not starting "
			    "with a digit)\n", s->csv_path, rec.line, i + 1,
			    s->cols[i]);
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(s->cols[k], s->cols[i]) == 0) {
				fprintf(stderr, "%s:%lu: duplicate column '%s'\n",
				    s->csv_path, rec.line, s->cols[i]);
				return -EINVAL;
			}
		if (strcasecmp(s->cols[i], "email") == 0 && !have_email) {
			s->email_col = i;
			have_email = true;
		}
	}
	if (!have_email) {
		fprintf(stderr, "%s:%lu: the header row has no 'email' column\n",
		    s->csv_path, rec.line);
		return -EINVAL;
	}
	return 0;
}

/*
 * One pass over the rows. With s->rc NULL only validates. Returns 0, or
 * -EIO (read or Redis failure), -EINVAL (strict mode saw a bad row).
 */
static int
pass_rows(struct submit *s, struct csv_reader *rd, bool strict, bool quiet)
{
	struct csv_record	 rec;
	char			 err[512];
	const char		*why;
	int			 r;

	while ((r = csv_next(rd, &rec, err, sizeof(err))) != 0) {
		if (r == -EIO) {
			fprintf(stderr, "%s: read error\n", s->csv_path);
			return -EIO;
		}
		if (r < 0) {
			/* err is "line N: why": print as FILE:N: why. */
			if (!quiet)
				fprintf(stderr, "%s:%s\n", s->csv_path,
				    strncmp(err, "line ", 5) == 0 ? err + 5 :
				    err);
			s->nbad++;
			continue;
		}
		if (rec.nfields != s->ncols) {
			if (!quiet)
				fprintf(stderr, "%s:%lu: expected %zu fields, "
				    "got %zu\n", s->csv_path, rec.line,
				    s->ncols, rec.nfields);
			s->nbad++;
			continue;
		}
		if (addr_validate(rec.fields[s->email_col],
		    rec.lens[s->email_col], NULL, &why) != 0) {
			if (!quiet)
				fprintf(stderr, "%s:%lu: invalid address "
				    "'%s': %s\n", s->csv_path, rec.line,
				    rec.fields[s->email_col], why);
			s->nbad++;
			continue;
		}
		s->nok++;
		if (s->rc == NULL)
			continue;
		if (s->nin > 0)
			buf_putc(&s->data, RM_RS);
		for (size_t i = 0; i < rec.nfields; i++) {
			if (i > 0)
				buf_putc(&s->data, RM_FS);
			buf_append(&s->data, rec.fields[i], rec.lens[i]);
		}
		if (++s->nin >= s->batch && flush_batch(s) != 0)
			return -EIO;
	}
	if (strict && s->nbad > 0)
		return -EINVAL;
	return 0;
}

static void
make_id(char *out, size_t len)
{
	time_t		t = time(NULL);
	struct tm	tm;
	unsigned	rnd;
	FILE		*f;

	gmtime_r(&t, &tm);
	rnd = (unsigned)random();
	if ((f = fopen("/dev/urandom", "rb")) != NULL) {
		if (fread(&rnd, sizeof(rnd), 1, f) != 1)
			rnd = (unsigned)random();
		fclose(f);
	}
	snprintf(out, len, "%04d%02d%02d-%02d%02d%02d-%06x",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, rnd & 0xffffff);
}

/* Attachments into meta (format in out/schema.h). */
static int
pack_files(redisContext *rc, const char *k_meta,
    const struct campaign_def *d)
{
	struct buf	 b;
	redisReply	*r;
	char		 field[32];

	buf_init(&b);
	for (size_t i = 0; i < d->nfiles; i++) {
		const struct campaign_file *f = &d->files[i];

		if (i > 0)
			buf_putc(&b, RM_RS);
		buf_printf(&b, "%s%c%s%c%s%c%zu", f->filename, RM_FS,
		    f->content_type, RM_FS, f->cid ? f->cid : "", RM_FS,
		    f->len);
		snprintf(field, sizeof(field), RM_META_ATTACHMENT_PFX "%zu", i);
		if ((r = cli_cmd(rc, "HSET %s %s %b", k_meta, field,
		    f->data, f->len)) == NULL) {
			buf_free(&b);
			return -EIO;
		}
		freeReplyObject(r);
	}
	r = cli_cmd(rc, "HSET %s %s %b", k_meta, RM_META_ATTACHMENTS,
	    b.data, b.len);
	buf_free(&b);
	if (r == NULL)
		return -EIO;
	freeReplyObject(r);
	return 0;
}

static int
compile_check(const struct campaign_def *d, const struct submit *s,
    const char *camp_path)
{
	struct {
		const char	*src, *what;
		enum tpl_ctx	 ctx;
	} parts[3] = {
		{ d->subject, "subject", TPL_CTX_HEADER },
		{ d->text, "text", TPL_CTX_TEXT },
		{ d->html, "html", TPL_CTX_HTML },
	};
	char	 name[512], err[1024];
	int	 bad = 0;

	for (int i = 0; i < 3; i++) {
		struct tpl	*t;

		if (parts[i].src == NULL)
			continue;
		snprintf(name, sizeof(name), "%s(%s)", camp_path, parts[i].what);
		t = tpl_compile(parts[i].src, strlen(parts[i].src), name,
		    parts[i].ctx, (const char *const *)s->cols, s->ncols, err,
		    sizeof(err));
		if (t == NULL) {
			fprintf(stderr, "%s\n", err);
			bad = 1;
		}
		tpl_free(t);
	}
	return bad ? -EINVAL : 0;
}

static void
pack_headers(struct buf *b, const struct campaign_def *d)
{
	for (size_t i = 0; i < d->nheaders; i++) {
		if (i > 0)
			buf_putc(b, RM_RS);
		buf_puts(b, d->headers[i].name);
		buf_putc(b, RM_FS);
		buf_puts(b, d->headers[i].value);
	}
}

int
cmd_submit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "strict", no_argument, NULL, 's' },
		{ "id", required_argument, NULL, 'i' },
		{ "batch", required_argument, NULL, 'b' },
		{ "start-at", required_argument, NULL, 'S' },
		{ "priority", required_argument, NULL, 'P' },
		{ "rate", required_argument, NULL, 'R' },
		{ "suppress-list", required_argument, NULL, 'L' },
		{ "pool", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*cfgpath = NULL, *id_opt = NULL;
	const char		*slist = NULL, *state = RM_STATE_SUBMITTING;
	const char		*pool = NULL;
	char			 rate[32] = "", prio[8], start[24] = "";
	int64_t			 start_ms = 0;
	double			 per_s;
	char			*endp;
	long			 pv;
	struct config		*cfg = NULL;
	struct campaign_def	*def = NULL;
	struct csv_reader	*rd = NULL;
	struct submit		 s;
	struct buf		 cols, hdrs;
	FILE			*f = NULL;
	redisReply		*r;
	char			 err[1024], id[RM_ID_MAX + 1];
	char			 k_meta[RM_KEY_MAX], k_stats[RM_KEY_MAX];
	char			 k_retry[RM_KEY_MAX], now[24], total[24];
	bool			 strict = false;
	mono_us			 t0 = mono_now();
	int			 c, rc = 1;

	memset(&s, 0, sizeof(s));
	s.batch = 100;
	snprintf(prio, sizeof(prio), "%d", RM_PRIORITY_DEFAULT);
	buf_init(&s.data);
	buf_init(&cols);
	buf_init(&hdrs);
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:si:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 's':
			strict = true;
			break;
		case 'i':
			id_opt = optarg;
			break;
		case 'b':
			s.batch = (unsigned)strtoul(optarg, NULL, 10);
			if (s.batch < 1 || s.batch > 10000) {
				fprintf(stderr, "ringmail: --batch must be "
				    "1..10000\n");
				return 2;
			}
			break;
		case 'S':
			if (fleet_parse_time(optarg, &start_ms) != 0) {
				fprintf(stderr, "ringmail: --start-at: expected "
				    "YYYY-MM-DDTHH:MM:SSZ (UTC) or unix "
				    "seconds, got '%s'\n", optarg);
				return 2;
			}
			snprintf(start, sizeof(start), "%lld",
			    (long long)start_ms);
			break;
		case 'P':
			pv = strtol(optarg, &endp, 10);
			if (endp == optarg || *endp != '\0' ||
			    pv < RM_PRIORITY_MIN || pv > RM_PRIORITY_MAX) {
				fprintf(stderr, "ringmail: --priority must be "
				    "%d..%d\n", RM_PRIORITY_MIN,
				    RM_PRIORITY_MAX);
				return 2;
			}
			snprintf(prio, sizeof(prio), "%ld", pv);
			break;
		case 'R':
			if (fleet_parse_rate(optarg, &per_s) != 0 ||
			    fleet_format_rate(rate, sizeof(rate), per_s) != 0) {
				fprintf(stderr, "ringmail: --rate: expected N/s, "
				    "N/m or N/h with N in 1..%d, got '%s'\n",
				    FLEET_RATE_MAX, optarg);
				return 2;
			}
			break;
		case 'L':
			if (!suppress_list_valid(optarg)) {
				fprintf(stderr, "ringmail: --suppress-list: 1 "
				    "to %d of [A-Za-z0-9_.-]\n",
				    SUPPRESS_LIST_MAX);
				return 2;
			}
			slist = optarg;
			break;
		case 'O':
			pool = optarg;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	s.csv_path = argv[optind + 1];
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if (pool != NULL && config_pool_find(cfg, pool) == NULL) {
		fprintf(stderr, "ringmail: --pool: config.yaml defines no pool "
		    "named '%s'\n", pool);
		config_free(cfg);
		return 2;
	}
	if (campaign_def_load(argv[optind], &def, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		rc = 2;
		goto out;
	}
	if ((f = fopen(s.csv_path, "rb")) == NULL) {
		fprintf(stderr, "ringmail: %s: %s\n", s.csv_path,
		    strerror(errno));
		rc = 2;
		goto out;
	}
	if ((rd = csv_new(f)) == NULL || read_header(&s, rd) != 0 ||
	    compile_check(def, &s, argv[optind]) != 0) {
		rc = 2;
		goto out;
	}
	if (strict) {
		/* Validate everything before writing anything. */
		if (pass_rows(&s, rd, true, false) != 0) {
			fprintf(stderr, "ringmail: --strict: %lu bad row(s); "
			    "nothing submitted\n", s.nbad);
			goto out;
		}
		csv_free(rd);
		rewind(f);
		if ((rd = csv_new(f)) == NULL)
			goto out;
		csv_next(rd, &(struct csv_record){ 0 }, err, sizeof(err));
		s.nok = s.nbad = 0;
	}
	if (id_opt != NULL) {
		if (!rm_id_valid(id_opt)) {
			fprintf(stderr, "ringmail: --id: 1 to 64 of "
			    "[A-Za-z0-9_.-]\n");
			rc = 2;
			goto out;
		}
		snprintf(id, sizeof(id), "%s", id_opt);
	} else {
		make_id(id, sizeof(id));
	}
	rm_key(k_meta, sizeof(k_meta), id, RM_SFX_META);
	rm_key(k_stats, sizeof(k_stats), id, RM_SFX_STATS);
	rm_key(k_retry, sizeof(k_retry), id, RM_SFX_RETRY);
	rm_key(s.k_jobs, sizeof(s.k_jobs), id, RM_SFX_JOBS);
	if ((s.rc = cli_redis(cfg)) == NULL)
		goto out;
	if ((r = cli_cmd(s.rc, "EXISTS %s", k_meta)) == NULL)
		goto out;
	if (r->integer != 0) {
		fprintf(stderr, "ringmail: campaign '%s' already exists\n", id);
		freeReplyObject(r);
		goto out;
	}
	freeReplyObject(r);
	for (size_t i = 0; i < s.ncols; i++) {
		if (i > 0)
			buf_putc(&cols, RM_FS);
		buf_puts(&cols, s.cols[i]);
	}
	pack_headers(&hdrs, def);
	snprintf(now, sizeof(now), "%lld", (long long)wall_ms());
	/* Scheduled from the start: workers must not begin while the CSV
	 * streams in. */
	if (start[0] != '\0' && start_ms > wall_ms())
		state = RM_STATE_SCHEDULED;
	if ((r = cli_cmd(s.rc, "XGROUP CREATE %s %s 0 MKSTREAM", s.k_jobs,
	    RM_GROUP)) == NULL)
		goto out;
	freeReplyObject(r);
	r = cli_cmd(s.rc, "HSET %s v %s id %s name %s from %s from_addr %s "
	    "subject %s columns %b email_col %u headers %b created_ms %s "
	    "priority %s state %s", k_meta, RM_SCHEMA_VERSION, id, def->name,
	    def->from, def->from_addr, def->subject, cols.data, cols.len,
	    (unsigned)s.email_col,
	    hdrs.data ? hdrs.data : "", hdrs.len, now, prio, state);
	if (r == NULL)
		goto out;
	freeReplyObject(r);
	if (def->text && (r = cli_cmd(s.rc, "HSET %s text %s", k_meta,
	    def->text)) != NULL)
		freeReplyObject(r);
	if (def->html && (r = cli_cmd(s.rc, "HSET %s html %s", k_meta,
	    def->html)) != NULL)
		freeReplyObject(r);
	if (def->reply_to && (r = cli_cmd(s.rc, "HSET %s reply_to %s",
	    k_meta, def->reply_to)) != NULL)
		freeReplyObject(r);
	if (start[0] && (r = cli_cmd(s.rc, "HSET %s %s %s", k_meta,
	    RM_META_START_MS, start)) != NULL)
		freeReplyObject(r);
	if (rate[0] && (r = cli_cmd(s.rc, "HSET %s %s %s", k_meta,
	    RM_META_RATE, rate)) != NULL)
		freeReplyObject(r);
	if (slist && (r = cli_cmd(s.rc, "HSET %s %s %s", k_meta,
	    RM_META_SUPPRESS_LIST, slist)) != NULL)
		freeReplyObject(r);
	if (pool && (r = cli_cmd(s.rc, "HSET %s pool %s", k_meta, pool)) !=
	    NULL)
		freeReplyObject(r);
	if (def->nfiles > 0 && pack_files(s.rc, k_meta, def) != 0)
		goto out;
	if ((r = cli_cmd(s.rc, "ZADD %s %s %s", RM_KEY_CAMPAIGNS, now, id)) ==
	    NULL)
		goto out;
	freeReplyObject(r);
	/* Workers may start while the rest of the file streams in. */
	if ((r = cli_cmd(s.rc, "SADD %s %s", RM_KEY_ACTIVE, id)) == NULL)
		goto out;
	freeReplyObject(r);
	if (pass_rows(&s, rd, false, strict) != 0 || flush_batch(&s) != 0 ||
	    drain_replies(&s, 0) != 0) {
		fprintf(stderr, "ringmail: submission of %s failed after %lu "
		    "recipients; the campaign stays in state 'submitting'\n",
		    id, s.nok);
		goto out;
	}
	snprintf(total, sizeof(total), "%lu", s.nok);
	snprintf(now, sizeof(now), "%lld", (long long)wall_ms());
	r = cli_cmd(s.rc, "EVAL %s 2 %s %s %s %lu %s", RM_LUA_SUBMITTED,
	    k_meta, k_stats, total, s.nbad, now);
	if (r == NULL)
		goto out;
	if (r->type == REDIS_REPLY_STRING &&
	    strcmp(r->str, RM_STATE_ACTIVE) != 0)
		fprintf(stderr, "ringmail: campaign %s is %s\n", id, r->str);
	freeReplyObject(r);
	/* An all-invalid list is done at once. */
	snprintf(now, sizeof(now), "%lld", (long long)wall_ms());
	if ((r = cli_cmd(s.rc, "EVAL %s 3 %s %s %s %s %s", RM_LUA_FINISH,
	    k_meta, k_stats, RM_KEY_ACTIVE, id, now)) != NULL)
		freeReplyObject(r);
	printf("%s\n", id);
	fflush(stdout);
	fprintf(stderr, "ringmail: campaign %s: %lu recipients queued, %lu "
	    "rows rejected, %.2f s\n", id, s.nok, s.nbad,
	    (double)(mono_now() - t0) / 1e6);
	rc = 0;
out:
	if (s.rc)
		redisFree(s.rc);
	csv_free(rd);
	if (f)
		fclose(f);
	for (size_t i = 0; i < s.ncols; i++)
		free(s.cols[i]);
	buf_free(&s.data);
	buf_free(&cols);
	buf_free(&hdrs);
	campaign_def_free(def);
	config_free(cfg);
	return rc;
}
