/*
 * ringmail suppress [--config FILE] [--list NAME] ACTION ...
 *
 *   add ADDR [--reason R] [--source S]	suppress ADDR (source "manual")
 *   remove ADDR				lift it
 *   check ADDR				JSON: where ADDR is suppressed;
 *					exit 0 suppressed, 1 not, 2 error
 *   import [--reason R] [--source S] FILE	CSV email[,reason,source,ts]
 *   export					CSV to stdout
 *
 * Without --list the global list rm:suppress is meant (check looks at the
 * global list and every named one, or the one named). Every change is
 * written to the list's hash and then logged to rm:suppress:log, which
 * workers tail to learn about late suppressions (see out/suppress.h).
 * import and export stream: pipelined batches and HSCAN, so memory stays
 * flat for millions of rows.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "campaigns/csv.h"
#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/buf.h"
#include "lib/json.h"
#include "lib/mono.h"
#include "mail/addr.h"
#include "out/fleet.h"
#include "out/schema.h"
#include "out/suppress.h"

#define SUP_PIPELINE	2048	/* commands in flight during import */
#define SUP_SCAN_COUNT	1000

struct sup {
	redisContext	*rc;
	const char	*list;		/* NULL: global */
	char		 key[SUPPRESS_KEY_MAX];
	const char	*reason, *source;
	unsigned	 inflight;
	unsigned long	 nnew, nupdated, nbad;
};

static int
sup_usage(void)
{
	fprintf(stderr,
	    "usage: ringmail suppress [--config FILE] [--list NAME] ACTION\n"
	    "  add ADDR [--reason R] [--source S]\n"
	    "  remove ADDR\n"
	    "  check ADDR\n"
	    "  import [--reason R] [--source S] FILE.csv  (email[,reason,"
	    "source,ts]; - for stdin)\n"
	    "  export\n");
	return 2;
}

/* Normalised and, when strict, syntactically valid address into out. */
static int
sup_addr(char *out, size_t outsz, const char *a, size_t len, bool strict,
    const char **why)
{
	*why = "not an address";
	if (suppress_normalize(out, outsz, a, len) != 0)
		return -EINVAL;
	if (strict && addr_validate(out, strlen(out), NULL, why) != 0)
		return -EINVAL;
	return 0;
}

/* Queue the log entry of one change (the reply is read by the caller). */
static void
sup_append_log(struct sup *s, const char *op, const char *addr,
    const char *ts)
{
	redisAppendCommand(s->rc, "XADD %s MAXLEN ~ %s * op %s addr %s "
	    "list %s ts %s", RM_KEY_SUPPRESS_LOG, RM_SUPPRESS_LOG_MAXLEN, op,
	    addr, s->list ? s->list : "", ts);
	s->inflight++;
}

/*
 * Read replies until at most keep are outstanding. HSET replies (integer
 * 1 new, 0 updated) are counted; XADD replies are strings.
 */
static int
sup_drain(struct sup *s, unsigned keep)
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
		if (r->type == REDIS_REPLY_INTEGER) {
			if (r->integer > 0)
				s->nnew++;
			else
				s->nupdated++;
		}
		freeReplyObject(r);
	}
	return 0;
}

/* Queue HSET + log of one entry. */
static int
sup_put(struct sup *s, const char *addr, const char *reason,
    const char *source, int64_t ts_ms)
{
	char	val[SUPPRESS_VALUE_MAX], ts[24];

	if (suppress_format_value(val, sizeof(val), reason, source,
	    ts_ms) != 0)
		return -EINVAL;
	snprintf(ts, sizeof(ts), "%lld", (long long)wall_ms());
	redisAppendCommand(s->rc, "HSET %s %s %s", s->key, addr, val);
	s->inflight++;
	sup_append_log(s, "add", addr, ts);
	return 0;
}

static const char *
sup_where(const struct sup *s)
{
	return s->list ? s->list : "global";
}

static int
sup_add(struct sup *s, const char *a)
{
	char		 addr[SUPPRESS_ADDR_MAX + 1];
	const char	*why;

	if (sup_addr(addr, sizeof(addr), a, strlen(a), true, &why) != 0) {
		fprintf(stderr, "ringmail: invalid address '%s': %s\n", a, why);
		return 2;
	}
	if (sup_put(s, addr, s->reason, s->source ? s->source :
	    SUPPRESS_SRC_MANUAL, wall_ms()) != 0)
		return 2;
	if (sup_drain(s, 0) != 0)
		return 1;
	printf("%s %s (%s)\n", s->nnew ? "added" : "updated", addr,
	    sup_where(s));
	return 0;
}

static int
sup_remove(struct sup *s, const char *a)
{
	char		 addr[SUPPRESS_ADDR_MAX + 1], ts[24];
	const char	*why;
	redisReply	*r;
	long long	 n;

	if (sup_addr(addr, sizeof(addr), a, strlen(a), false, &why) != 0) {
		fprintf(stderr, "ringmail: invalid address '%s': %s\n", a, why);
		return 2;
	}
	if ((r = cli_cmd(s->rc, "HDEL %s %s", s->key, addr)) == NULL)
		return 1;
	n = r->integer;
	freeReplyObject(r);
	if (n == 0) {
		fprintf(stderr, "ringmail: %s is not suppressed (%s)\n", addr,
		    sup_where(s));
		return 1;
	}
	snprintf(ts, sizeof(ts), "%lld", (long long)wall_ms());
	sup_append_log(s, "remove", addr, ts);
	if (sup_drain(s, 0) != 0)
		return 1;
	printf("removed %s (%s)\n", addr, sup_where(s));
	return 0;
}

/* Append the JSON object of one stored value. */
static void
sup_json_entry(struct buf *b, const char *v, size_t len)
{
	struct suppress_entry	e;

	if (suppress_parse_value(v, len, &e) != 0) {
		buf_puts(b, "{\"raw\":");
		json_put_str(b, v, len);
		buf_putc(b, '}');
		return;
	}
	buf_puts(b, "{\"reason\":");
	json_put_str(b, e.reason, strlen(e.reason));
	buf_puts(b, ",\"source\":");
	json_put_str(b, e.source, strlen(e.source));
	buf_printf(b, ",\"ts\":%lld}", (long long)e.ts_ms);
}

/* Every named list (SCAN), or just s->list, into names. */
static int
sup_lists(struct sup *s, struct buf *names, size_t *n)
{
	redisReply	*r;
	char		 cursor[32] = "0";
	size_t		 pfx = strlen(RM_KEY_SUPPRESS_LIST);

	*n = 0;
	if (s->list) {
		buf_append(names, s->list, strlen(s->list) + 1);
		*n = 1;
		return 0;
	}
	do {
		if ((r = cli_cmd(s->rc, "SCAN %s MATCH %s* COUNT %d", cursor,
		    RM_KEY_SUPPRESS_LIST, SUP_SCAN_COUNT)) == NULL)
			return -EIO;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			freeReplyObject(r);
			return -EIO;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const char	*k = r->element[1]->element[i]->str;

			if (strlen(k) > pfx && suppress_list_valid(k + pfx)) {
				buf_append(names, k + pfx, strlen(k + pfx) + 1);
				(*n)++;
			}
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static int
sup_check(struct sup *s, const char *a)
{
	char		 addr[SUPPRESS_ADDR_MAX + 1];
	char		 key[SUPPRESS_KEY_MAX];
	const char	*why, *name;
	struct buf	 out, names;
	redisReply	*r;
	size_t		 nl, nfound = 0;
	int		 ret = 2;

	if (sup_addr(addr, sizeof(addr), a, strlen(a), false, &why) != 0) {
		fprintf(stderr, "ringmail: invalid address '%s': %s\n", a, why);
		return 2;
	}
	buf_init(&out);
	buf_init(&names);
	if (sup_lists(s, &names, &nl) != 0)
		goto out;
	if ((r = cli_cmd(s->rc, "HGET %s %s", RM_KEY_SUPPRESS, addr)) == NULL)
		goto out;
	buf_puts(&out, "{\"address\":");
	json_put_str(&out, addr, strlen(addr));
	buf_puts(&out, ",\"global\":");
	if (r->type == REDIS_REPLY_STRING) {
		sup_json_entry(&out, r->str, r->len);
		nfound++;
	} else
		buf_puts(&out, "null");
	freeReplyObject(r);
	buf_puts(&out, ",\"lists\":{");
	name = names.data;
	for (size_t i = 0; i < nl; i++, name += strlen(name) + 1) {
		suppress_key(key, sizeof(key), name);
		if ((r = cli_cmd(s->rc, "HGET %s %s", key, addr)) == NULL)
			goto out;
		if (r->type == REDIS_REPLY_STRING) {
			if (nfound > 0 && out.data[out.len - 1] != '{')
				buf_putc(&out, ',');
			json_put_str(&out, name, strlen(name));
			buf_putc(&out, ':');
			sup_json_entry(&out, r->str, r->len);
			nfound++;
		}
		freeReplyObject(r);
	}
	buf_printf(&out, "},\"suppressed\":%s}\n", nfound ? "true" : "false");
	fwrite(out.data, 1, out.len, stdout);
	ret = nfound ? 0 : 1;
out:
	buf_free(&out);
	buf_free(&names);
	return ret;
}

/* Column indexes of an import file; -1 when absent. */
struct sup_cols {
	int	email, reason, source, ts;
	size_t	n;	/* fields per row with a header row, else 0 */
};

/* A header row names "email"; map the columns we know. */
static bool
sup_header(const struct csv_record *rec, struct sup_cols *c,
    const char *path)
{
	bool	hdr = false;

	c->email = 0;
	c->reason = 1;
	c->source = 2;
	c->ts = 3;
	c->n = 0;
	for (size_t i = 0; i < rec->nfields; i++)
		if (strcasecmp(rec->fields[i], "email") == 0)
			hdr = true;
	if (!hdr)
		return false;
	c->email = c->reason = c->source = c->ts = -1;
	c->n = rec->nfields;
	for (size_t i = 0; i < rec->nfields; i++) {
		const char	*f = rec->fields[i];

		if (strcasecmp(f, "email") == 0 && c->email < 0)
			c->email = (int)i;
		else if (strcasecmp(f, "reason") == 0 && c->reason < 0)
			c->reason = (int)i;
		else if (strcasecmp(f, "source") == 0 && c->source < 0)
			c->source = (int)i;
		else if (strcasecmp(f, "ts") == 0 && c->ts < 0)
			c->ts = (int)i;
		else
			fprintf(stderr, "%s:%lu: column '%s' ignored\n", path,
			    rec->line, f);
	}
	return true;
}

static const char *
sup_field(const struct csv_record *rec, int i)
{
	return i >= 0 && (size_t)i < rec->nfields ? rec->fields[i] : "";
}

/* One data row: 0 queued, -EINVAL bad (reported), -EIO. */
static int
sup_row(struct sup *s, const struct csv_record *rec,
    const struct sup_cols *c, const char *path)
{
	char		 addr[SUPPRESS_ADDR_MAX + 1];
	const char	*why, *em, *src, *tss;
	int64_t		 ts_ms;

	if ((c->n && rec->nfields != c->n) || (!c->n && rec->nfields > 4)) {
		fprintf(stderr, "%s:%lu: expected %zu fields, got %zu\n", path,
		    rec->line, c->n ? c->n : 4, rec->nfields);
		return -EINVAL;
	}
	em = sup_field(rec, c->email);
	if (sup_addr(addr, sizeof(addr), em, strlen(em), true, &why) != 0) {
		fprintf(stderr, "%s:%lu: invalid address '%.*s': %s\n", path,
		    rec->line, 320, em, why);
		return -EINVAL;
	}
	src = sup_field(rec, c->source);
	if (src[0] == '\0')
		src = s->source ? s->source : SUPPRESS_SRC_IMPORT;
	else if (!suppress_source_valid(src)) {
		fprintf(stderr, "%s:%lu: invalid source (1 to %d of "
		    "[a-z0-9_.-])\n", path, rec->line, SUPPRESS_SOURCE_MAX);
		return -EINVAL;
	}
	tss = sup_field(rec, c->ts);
	if (tss[0] == '\0')
		ts_ms = wall_ms();
	else if (strspn(tss, "0123456789") == strlen(tss)) {
		/* Milliseconds, as export writes them. */
		if (strlen(tss) > 15) {
			fprintf(stderr, "%s:%lu: ts out of range\n", path,
			    rec->line);
			return -EINVAL;
		}
		ts_ms = strtoll(tss, NULL, 10);
	} else if (fleet_parse_time(tss, &ts_ms) != 0) {
		fprintf(stderr, "%s:%lu: invalid ts (milliseconds since the "
		    "epoch or YYYY-MM-DDTHH:MM:SSZ)\n", path, rec->line);
		return -EINVAL;
	}
	if (sup_put(s, addr, c->reason >= 0 && sup_field(rec, c->reason)[0] ?
	    sup_field(rec, c->reason) : s->reason, src, ts_ms) != 0)
		return -EINVAL;
	return sup_drain(s, SUP_PIPELINE);
}

static int
sup_import(struct sup *s, const char *path)
{
	struct csv_reader	*rd = NULL;
	struct csv_record	 rec;
	struct sup_cols		 cols;
	FILE			*f;
	char			 err[512];
	bool			 first = true;
	int			 r, ret = 1;

	if (strcmp(path, "-") == 0)
		f = stdin;
	else if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "ringmail: %s: %s\n", path, strerror(errno));
		return 2;
	}
	if ((rd = csv_new(f)) == NULL)
		goto out;
	while ((r = csv_next(rd, &rec, err, sizeof(err))) != 0) {
		if (r == -EIO) {
			fprintf(stderr, "%s: read error\n", path);
			goto out;
		}
		if (r < 0) {
			fprintf(stderr, "%s:%s\n", path,
			    strncmp(err, "line ", 5) == 0 ? err + 5 : err);
			s->nbad++;
			continue;
		}
		if (first) {
			first = false;
			if (sup_header(&rec, &cols, path)) {
				if (cols.email < 0)
					goto out;
				continue;
			}
		}
		if ((r = sup_row(s, &rec, &cols, path)) == -EIO)
			goto out;
		if (r != 0)
			s->nbad++;
	}
	if (sup_drain(s, 0) != 0)
		goto out;
	ret = 0;
out:
	/* The pairs of replies count one HSET each. */
	printf("imported=%lu new=%lu updated=%lu rejected=%lu list=%s\n",
	    s->nnew + s->nupdated, s->nnew, s->nupdated, s->nbad,
	    sup_where(s));
	csv_free(rd);
	if (f != stdin)
		fclose(f);
	return ret;
}

/* RFC 4180 field: quoted when it has a comma, quote, CR, LF or blank. */
static void
sup_csv_field(struct buf *b, const char *v, size_t len)
{
	if (strcspn(v, ",\"\r\n ") >= len) {
		buf_append(b, v, len);
		return;
	}
	buf_putc(b, '"');
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '"')
			buf_putc(b, '"');
		buf_putc(b, v[i]);
	}
	buf_putc(b, '"');
}

static int
sup_export(struct sup *s)
{
	struct suppress_entry	 e;
	struct buf		 b;
	redisReply		*r;
	char			 cursor[32] = "0";
	unsigned long		 n = 0, nraw = 0;
	int			 ret = 1;

	buf_init(&b);
	fputs("email,reason,source,ts\n", stdout);
	do {
		redisReply	*kv;

		if ((r = cli_cmd(s->rc, "HSCAN %s %s COUNT %d", s->key, cursor,
		    SUP_SCAN_COUNT)) == NULL)
			goto out;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			fprintf(stderr, "ringmail: redis: unexpected reply\n");
			freeReplyObject(r);
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		kv = r->element[1];
		buf_reset(&b);
		for (size_t i = 0; i + 1 < kv->elements; i += 2) {
			sup_csv_field(&b, kv->element[i]->str,
			    kv->element[i]->len);
			if (suppress_parse_value(kv->element[i + 1]->str,
			    kv->element[i + 1]->len, &e) == 0) {
				buf_putc(&b, ',');
				sup_csv_field(&b, e.reason, strlen(e.reason));
				buf_printf(&b, ",%s,%lld\n", e.source,
				    (long long)e.ts_ms);
			} else {
				buf_puts(&b, ",,,\n");
				nraw++;
			}
			n++;
		}
		freeReplyObject(r);
		if (fwrite(b.data, 1, b.len, stdout) != b.len)
			goto out;
	} while (strcmp(cursor, "0") != 0);
	if (fflush(stdout) != 0)
		goto out;
	if (nraw)
		fprintf(stderr, "ringmail: %lu entries with an unreadable "
		    "value exported without reason, source and ts\n", nraw);
	fprintf(stderr, "ringmail: %lu entries exported (%s)\n", n,
	    sup_where(s));
	ret = 0;
out:
	buf_free(&b);
	return ret;
}

int
cmd_suppress(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "list", required_argument, NULL, 'l' },
		{ "reason", required_argument, NULL, 'r' },
		{ "source", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*cfgpath = NULL, *act;
	struct config	*cfg;
	struct sup	 s;
	int		 c, nargs, ret = 1;

	memset(&s, 0, sizeof(s));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:l:r:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'l':
			if (!suppress_list_valid(optarg)) {
				fprintf(stderr, "ringmail: --list: 1 to %d of "
				    "[A-Za-z0-9_.-]\n", SUPPRESS_LIST_MAX);
				return 2;
			}
			s.list = optarg;
			break;
		case 'r':
			s.reason = optarg;
			break;
		case 's':
			if (!suppress_source_valid(optarg)) {
				fprintf(stderr, "ringmail: --source: 1 to %d "
				    "of [a-z0-9_.-]\n", SUPPRESS_SOURCE_MAX);
				return 2;
			}
			s.source = optarg;
			break;
		default:
			return sup_usage();
		}
	}
	if (optind >= argc)
		return sup_usage();
	act = argv[optind];
	nargs = argc - optind - 1;
	if (strcmp(act, "export") == 0 ? nargs != 0 :
	    (strcmp(act, "add") == 0 || strcmp(act, "remove") == 0 ||
	    strcmp(act, "check") == 0 || strcmp(act, "import") == 0) ?
	    nargs != 1 : true)
		return sup_usage();
	if ((s.reason || s.source) && strcmp(act, "add") != 0 &&
	    strcmp(act, "import") != 0)
		return sup_usage();
	suppress_key(s.key, sizeof(s.key), s.list);
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if ((s.rc = cli_redis(cfg)) == NULL) {
		ret = strcmp(act, "check") == 0 ? 2 : 1;
		goto out;
	}
	if (strcmp(act, "add") == 0)
		ret = sup_add(&s, argv[optind + 1]);
	else if (strcmp(act, "remove") == 0)
		ret = sup_remove(&s, argv[optind + 1]);
	else if (strcmp(act, "check") == 0)
		ret = sup_check(&s, argv[optind + 1]);
	else if (strcmp(act, "import") == 0)
		ret = sup_import(&s, argv[optind + 1]);
	else
		ret = sup_export(&s);
out:
	if (s.rc)
		redisFree(s.rc);
	config_free(cfg);
	return ret;
}
