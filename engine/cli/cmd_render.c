/*
 * ringmail render [--config FILE] [--row N] [--campaign ID] [--date UNIX]
 *                 CAMPAIGN.yaml RECIPIENTS.csv
 *
 * Prints (CRLF, not dot-stuffed) the message the worker would build for
 * data row N (1-based, default 1) of the CSV: the same templates
 * (templates/tpl.h, compiled against the CSV's columns with the contexts
 * the worker uses: subject HEADER, text TEXT, html HTML) and the same
 * builder (mail/msg.h), with attachments and inline images from the
 * campaign file. When unsubscribe.secret_file is configured, the
 * List-Unsubscribe URL carries a token for (--campaign, address), and a
 * mailto: when unsubscribe.mailto_domain is set; the token is issued at
 * the Date, so --date makes the output reproducible. Message-ID is
 * ID.ROW.0.render@domain; Date is now or --date. Nothing touches Redis.
 * Exit 0, 1 when the row cannot be rendered, 2 for usage/config/file
 * errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "campaigns/campaign.h"
#include "campaigns/csv.h"
#include "cli/cli.h"
#include "cli/cmd.h"
#include "lib/buf.h"
#include "mail/msg.h"
#include "mail/token.h"
#include "templates/tpl.h"

static int
cmd_render_usage(void)
{
	fprintf(stderr, "usage: ringmail render [--config FILE] [--row N] "
	    "[--campaign ID] [--date UNIX] CAMPAIGN.yaml RECIPIENTS.csv\n");
	return 2;
}

/* The header row's names, copied (the reader reuses its storage). */
static char **
cmd_render_columns(const struct csv_record *rec, size_t *email_col)
{
	char	**cols;
	bool	  have = false;

	if ((cols = calloc(rec->nfields + 1, sizeof(*cols))) == NULL)
		return NULL;
	for (size_t i = 0; i < rec->nfields; i++) {
		if ((cols[i] = strdup(rec->fields[i])) == NULL)
			return cols;
		if (!have && strcasecmp(cols[i], "email") == 0) {
			*email_col = i;
			have = true;
		}
	}
	if (!have)
		*email_col = SIZE_MAX;
	return cols;
}

static void
cmd_render_free_columns(char **cols, size_t n)
{
	if (cols == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(cols[i]);
	free(cols);
}

int
cmd_render(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "row", required_argument, NULL, 'r' },
		{ "campaign", required_argument, NULL, 'i' },
		{ "date", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct config		*cfg = NULL;
	struct campaign_def	*def = NULL;
	struct csv_reader	*rd = NULL;
	struct csv_record	 rec;
	struct tpl		*t_subj = NULL, *t_text = NULL, *t_html = NULL;
	struct token_key	*key = NULL;
	struct msg_attachment	*att = NULL;
	struct msg_header	*hdrs = NULL;
	struct msg_input	 in;
	struct tpl_row		 row;
	struct buf		 b_subj, b_text, b_html, b_msg;
	FILE			*f = NULL;
	const char		*cfgpath = NULL, *camp = "render", *at;
	char			**cols = NULL, err[512], local[160];
	char			 tok[UNSUB_TOKEN_BUFSZ], url[1024], mailto[1024];
	size_t			 ncols = 0, email_col = 0;
	unsigned long		 want = 1, n = 0;
	long long		 date_s = (long long)time(NULL);
	char			*end;
	int			 c, r, rc = 2;

	buf_init(&b_subj);
	buf_init(&b_text);
	buf_init(&b_html);
	buf_init(&b_msg);
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:r:i:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'r':
			errno = 0;
			want = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || want == 0)
				return cmd_render_usage();
			break;
		case 'i':
			camp = optarg;
			if (!token_campaign_ok(camp)) {
				fprintf(stderr, "ringmail: --campaign: 1 to 64 "
				    "of [A-Za-z0-9_.-]\n");
				return 2;
			}
			break;
		case 'd':
			errno = 0;
			date_s = strtoll(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || date_s < 0)
				return cmd_render_usage();
			break;
		default:
			return cmd_render_usage();
		}
	}
	if (argc - optind != 2)
		return cmd_render_usage();
	if ((cfg = cli_config(cfgpath)) == NULL)
		return 2;
	if (campaign_def_load(argv[optind], &def, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if ((f = fopen(argv[optind + 1], "rb")) == NULL ||
	    (rd = csv_new(f)) == NULL) {
		fprintf(stderr, "ringmail: %s: %s\n", argv[optind + 1],
		    strerror(errno));
		goto out;
	}
	if (csv_next(rd, &rec, err, sizeof(err)) != 1) {
		fprintf(stderr, "%s: no header row\n", argv[optind + 1]);
		goto out;
	}
	ncols = rec.nfields;
	if ((cols = cmd_render_columns(&rec, &email_col)) == NULL)
		goto out;
	if (email_col == SIZE_MAX) {
		fprintf(stderr, "%s: the header row has no 'email' column\n",
		    argv[optind + 1]);
		goto out;
	}
	if ((t_subj = tpl_compile(def->subject, strlen(def->subject),
	    "subject", TPL_CTX_HEADER, (const char *const *)cols, ncols, err,
	    sizeof(err))) == NULL ||
	    (def->text != NULL && (t_text = tpl_compile(def->text,
	    strlen(def->text), "text", TPL_CTX_TEXT, (const char *const *)cols,
	    ncols, err, sizeof(err))) == NULL) ||
	    (def->html != NULL && (t_html = tpl_compile(def->html,
	    strlen(def->html), "html", TPL_CTX_HTML, (const char *const *)cols,
	    ncols, err, sizeof(err))) == NULL)) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	for (;;) {
		r = csv_next(rd, &rec, err, sizeof(err));
		if (r == 0) {
			fprintf(stderr, "%s: no data row %lu (%lu rows)\n",
			    argv[optind + 1], want, n);
			goto out;
		}
		if (r < 0) {
			fprintf(stderr, "%s: %s\n", argv[optind + 1], err);
			if (r == -EIO)
				goto out;
			continue;
		}
		if (++n == want)
			break;
	}
	if (rec.nfields != ncols) {
		fprintf(stderr, "%s:%lu: %zu fields, the header has %zu\n",
		    argv[optind + 1], rec.line, rec.nfields, ncols);
		rc = 1;
		goto out;
	}
	row.n = ncols;
	row.values = rec.fields;
	row.lens = rec.lens;
	if (def->nheaders > 0 &&
	    (hdrs = calloc(def->nheaders, sizeof(*hdrs))) == NULL)
		goto out;
	for (size_t i = 0; i < def->nheaders; i++) {
		hdrs[i].name = def->headers[i].name;
		hdrs[i].value = def->headers[i].value;
	}
	if (def->nfiles > 0 &&
	    (att = calloc(def->nfiles, sizeof(*att))) == NULL)
		goto out;
	for (size_t i = 0; i < def->nfiles; i++)
		att[i] = (struct msg_attachment){ def->files[i].filename,
		    def->files[i].content_type, def->files[i].data,
		    def->files[i].len, def->files[i].cid };
	memset(&in, 0, sizeof(in));
	at = strrchr(def->from_addr, '@');
	snprintf(local, sizeof(local), "%s.%lu.0.render", camp, want);
	in.from = def->from;
	in.to = rec.fields[email_col];
	in.reply_to = def->reply_to;
	in.headers = hdrs;
	in.nheaders = def->nheaders;
	in.msgid_domain = cfg->message_id_domain ? cfg->message_id_domain :
	    at ? at + 1 : "localhost";
	in.msgid_local = local;
	in.date_ms = (int64_t)date_s * 1000;
	in.attachments = att;
	in.nattachments = def->nfiles;
	if (cfg->unsub_secret_file != NULL) {
		if ((key = token_key_load(cfg->unsub_secret_file, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "ringmail: %s: %s\n",
			    cfg->unsub_secret_file, err);
			goto out;
		}
		if (unsub_token_make(key, camp, in.to, (int64_t)date_s,
		    tok) != 0) {
			fprintf(stderr, "ringmail: row %lu: cannot make an "
			    "unsubscribe token for '%s'\n", want, in.to);
			rc = 1;
			goto out;
		}
		if (cfg->unsub_url != NULL) {
			snprintf(url, sizeof(url), "%s%s", cfg->unsub_url, tok);
			in.unsub_url = url;
		}
		if (cfg->unsub_mailto_domain != NULL) {
			snprintf(mailto, sizeof(mailto), "mailto:unsubscribe@%s"
			    "?subject=unsubscribe-%s", cfg->unsub_mailto_domain,
			    tok);
			in.unsub_mailto = mailto;
		}
	}
	r = tpl_render(t_subj, &row, &b_subj);
	if (r == 0 && t_text != NULL) {
		r = tpl_render(t_text, &row, &b_text);
		in.text = b_text.data ? b_text.data : "";
		in.textlen = b_text.len;
	}
	if (r == 0 && t_html != NULL) {
		r = tpl_render(t_html, &row, &b_html);
		in.html = b_html.data ? b_html.data : "";
		in.htmllen = b_html.len;
	}
	in.subject = b_subj.data ? b_subj.data : "";
	if (r == 0)
		r = msg_build(&b_msg, &in);
	if (r != 0) {
		fprintf(stderr, "ringmail: row %lu: message could not be "
		    "built: %s\n", want, strerror(-r));
		rc = 1;
		goto out;
	}
	rc = fwrite(b_msg.data, 1, b_msg.len, stdout) == b_msg.len &&
	    fflush(stdout) == 0 ? 0 : 1;
out:
	free(att);
	free(hdrs);
	token_key_free(key);
	tpl_free(t_subj);
	tpl_free(t_text);
	tpl_free(t_html);
	cmd_render_free_columns(cols, ncols);
	csv_free(rd);
	if (f != NULL)
		fclose(f);
	campaign_def_free(def);
	config_free(cfg);
	buf_free(&b_subj);
	buf_free(&b_text);
	buf_free(&b_html);
	buf_free(&b_msg);
	return rc;
}
