/*
 * cmd_bounce: `ringmail bounce parse FILE...` prints one JSON line per
 * file with what dsn_parse() made of it, so operators can check any
 * returned message by hand ("-" reads stdin). Files over 64 MiB are
 * refused. Exit 0; 1 when a file could not be read (the others are still
 * printed); 2 on usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/classify.h"
#include "mail/dsn.h"
#include "cli/cmd.h"

#define CMD_BOUNCE_FILE_MAX	(64u * 1024 * 1024)

static void
cmd_bounce_usage(FILE *f)
{
	fprintf(f, "usage: ringmail bounce parse FILE...  (- for stdin)\n"
	    "prints one JSON line per file: file, is_bounce, kind, format,\n"
	    "recipient, status, category, action, retry_after_s, nrcpt,\n"
	    "reason, message_id (missing strings are null)\n");
}

/* Length of the valid UTF-8 sequence at p (RFC 3629 4), 0 if invalid. */
static size_t
cmd_bounce_utf8_len(const unsigned char *p)
{
	size_t	 n;
	unsigned cp;

	if (*p < 0xc2 || *p > 0xf4)
		return 0;
	n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
	cp = *p & (0x3fu >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)	/* also stops at NUL */
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Append s as a JSON string (RFC 8259 7): quotes, backslashes and control
 * characters escaped, valid UTF-8 passed through, invalid bytes replaced
 * by U+FFFD so the output is always valid JSON.
 */
static int
cmd_bounce_json_str(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int	 rc = buf_putc(b, '"');

	for (const unsigned char *p = (const unsigned char *)s;
	    *p && rc == 0; p++) {
		size_t	 u;

		switch (*p) {
		case '"':
			rc = buf_puts(b, "\\\"");
			break;
		case '\\':
			rc = buf_puts(b, "\\\\");
			break;
		case '\n':
			rc = buf_puts(b, "\\n");
			break;
		case '\r':
			rc = buf_puts(b, "\\r");
			break;
		case '\t':
			rc = buf_puts(b, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				char e[7] = { '\\', 'u', '0', '0',
				    hex[*p >> 4], hex[*p & 15], 0 };
				rc = buf_puts(b, e);
			} else if (*p < 0x80) {
				rc = buf_putc(b, (char)*p);
			} else if ((u = cmd_bounce_utf8_len(p)) > 0) {
				rc = buf_append(b, p, u);
				p += u - 1;
			} else {
				rc = buf_puts(b, "\\ufffd");
			}
			break;
		}
	}
	if (rc == 0)
		rc = buf_putc(b, '"');
	return rc;
}

static int
cmd_bounce_json_opt(struct buf *b, const char *key, const char *v)
{
	int	 rc = buf_printf(b, ",\"%s\":", key);

	if (rc == 0)
		rc = v[0] ? cmd_bounce_json_str(b, v) : buf_puts(b, "null");
	return rc;
}

/* Read a whole file (bounded); "-" is stdin. 0 or -errno. */
static int
cmd_bounce_read(const char *path, struct buf *b)
{
	FILE	*f;
	char	 chunk[65536];
	size_t	 n;
	int	 rc = 0;

	buf_reset(b);
	if (strcmp(path, "-") == 0)
		f = stdin;
	else if ((f = fopen(path, "rb")) == NULL)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b->len + n > CMD_BOUNCE_FILE_MAX) {
			rc = -EFBIG;
			break;
		}
		if ((rc = buf_append(b, chunk, n)) != 0)
			break;
	}
	if (rc == 0 && ferror(f))
		rc = -EIO;
	if (f != stdin)
		fclose(f);
	return rc;
}

/*
 * Format one result line (without the newline) into out.
 * 0 or -ENOMEM.
 */
static int
cmd_bounce_format(struct buf *out, const char *file,
    const struct dsn_result *r)
{
	char	 act[64];
	int	 rc;

	rc = buf_puts(out, "{\"file\":");
	if (rc == 0)
		rc = cmd_bounce_json_str(out, file);
	if (rc == 0)
		rc = buf_printf(out, ",\"is_bounce\":%s,\"kind\":\"%s\"",
		    r->is_bounce ? "true" : "false", dsn_kind_name(r->kind));
	if (rc == 0)
		rc = cmd_bounce_json_opt(out, "format", r->format);
	if (rc == 0)
		rc = cmd_bounce_json_opt(out, "recipient", r->recipient);
	if (rc == 0)
		rc = cmd_bounce_json_opt(out, "status", r->status);
	if (rc == 0)
		rc = buf_printf(out, ",\"category\":\"%s\",\"action\":\"%s\"",
		    classify_category_name(r->cls.category),
		    classify_actions_str(r->cls.actions, act, sizeof(act)));
	if (rc == 0)
		rc = buf_printf(out, ",\"retry_after_s\":%u",
		    r->cls.retry_after_s);
	if (rc == 0)
		rc = buf_printf(out, ",\"nrcpt\":%u", r->nrcpt);
	if (rc == 0)
		rc = cmd_bounce_json_opt(out, "reason", r->reason);
	if (rc == 0)
		rc = cmd_bounce_json_opt(out, "message_id",
		    r->orig_message_id);
	if (rc == 0)
		rc = buf_putc(out, '}');
	return rc;
}

int
cmd_bounce(int argc, char **argv)
{
	struct buf in, line;
	struct dsn_result *r;
	int	 status = 0;

	if (argc < 3 || strcmp(argv[1], "parse") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "-h") == 0 ||
		    strcmp(argv[1], "--help") == 0)) {
			cmd_bounce_usage(stdout);
			return 0;
		}
		cmd_bounce_usage(stderr);
		return 2;
	}
	if ((r = malloc(sizeof(*r))) == NULL) {
		fprintf(stderr, "ringmail bounce: out of memory\n");
		return 1;
	}
	buf_init(&in);
	buf_init(&line);
	for (int i = 2; i < argc; i++) {
		int	 rc = cmd_bounce_read(argv[i], &in);

		if (rc != 0) {
			fprintf(stderr, "ringmail bounce: %s: %s\n", argv[i],
			    strerror(-rc));
			status = 1;
			continue;
		}
		buf_reset(&line);
		if (dsn_parse(in.data ? in.data : "", in.len, r) != 0 ||
		    cmd_bounce_format(&line, argv[i], r) != 0) {
			fprintf(stderr, "ringmail bounce: %s: out of memory\n",
			    argv[i]);
			status = 1;
			continue;
		}
		buf_putc(&line, '\n');
		fwrite(line.data, 1, line.len, stdout);
	}
	fflush(stdout);
	if (ferror(stdout))
		status = 1;
	buf_free(&line);
	buf_free(&in);
	free(r);
	return status;
}
