/*
 * tpl: compile `{{name}}` templates into an op list, render per recipient.
 *
 * Compilation resolves every variable to a column index, so rendering is a
 * walk over ops with appends only: no lookups, no allocation once the
 * output buffer has grown. Escaping is decided by the template's context.
 * See tpl.h for the contract and templates/README.md for the language.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

#include "templates/tpl.h"

enum tpl_opkind { TPL_OP_LIT, TPL_OP_VAR };

struct tpl_op {
	enum tpl_opkind	 kind;
	size_t		 off;	/* LIT: offset into tpl->text */
	size_t		 len;	/* LIT: length */
	size_t		 col;	/* VAR: column index */
	enum tpl_ctx	 esc;	/* VAR: escaping applied */
};

struct tpl {
	char		*text;	/* owns: copy of the source (literals) */
	struct tpl_op	*ops;	/* owns */
	size_t		 nops;
	size_t		 capops;
	size_t		 ncols;	/* a row must have at least this many */
};

static void
tpl_errf(char *err, size_t errlen, const char *name, size_t line, size_t col,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
tpl_errf(char *err, size_t errlen, const char *name, size_t line, size_t col,
    const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (err == NULL || errlen == 0)
		return;
	n = snprintf(err, errlen, "%s:%zu:%zu: ", name ? name : "template",
	    line, col);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static int
tpl_push(struct tpl *t, const struct tpl_op *op)
{
	struct tpl_op	*p;
	size_t		 ncap;

	if (t->nops == t->capops) {
		ncap = t->capops ? t->capops * 2 : 16;
		if ((p = realloc(t->ops, ncap * sizeof(*p))) == NULL)
			return -ENOMEM;
		t->ops = p;
		t->capops = ncap;
	}
	t->ops[t->nops++] = *op;
	return 0;
}

/* Line and column (1-based, in bytes) of src[pos]. */
static void
tpl_where(const char *src, size_t pos, size_t *line, size_t *col)
{
	size_t	 i, l = 1, c = 1;

	for (i = 0; i < pos; i++) {
		if (src[i] == '\n') {
			l++;
			c = 1;
		} else
			c++;
	}
	*line = l;
	*col = c;
}

static int
tpl_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
tpl_isname(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static const char *
tpl_memmem2(const char *s, size_t len, char c)
{
	size_t	 i;

	for (i = 0; i + 1 < len; i++)
		if (s[i] == c && s[i + 1] == c)
			return s + i;
	return NULL;
}

struct tpl *
tpl_compile(const char *src, size_t len, const char *name, enum tpl_ctx ctx,
    const char *const *columns, size_t ncolumns, char *err, size_t errlen)
{
	struct tpl	*t;
	struct tpl_op	 op;
	const char	*open, *close;
	size_t		 pos = 0, a, b, i, line, col;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto nomem;
	if ((t->text = malloc(len + 1)) == NULL)
		goto nomem;
	if (len > 0)
		memcpy(t->text, src, len);
	t->text[len] = '\0';

	while (pos < len) {
		open = tpl_memmem2(t->text + pos, len - pos, '{');
		if (open == NULL) {
			op = (struct tpl_op){ .kind = TPL_OP_LIT, .off = pos,
			    .len = len - pos };
			if (tpl_push(t, &op) != 0)
				goto nomem;
			break;
		}
		a = (size_t)(open - t->text);
		if (a > pos) {
			op = (struct tpl_op){ .kind = TPL_OP_LIT, .off = pos,
			    .len = a - pos };
			if (tpl_push(t, &op) != 0)
				goto nomem;
		}
		close = tpl_memmem2(t->text + a + 2, len - a - 2, '}');
		if (close == NULL) {
			tpl_where(t->text, a, &line, &col);
			tpl_errf(err, errlen, name, line, col,
			    "unterminated tag");
			goto fail;
		}
		b = (size_t)(close - t->text);
		/* Trim the tag's inside: "{{ name }}" == "{{name}}". */
		i = a + 2;
		while (i < b && tpl_isspace(t->text[i]))
			i++;
		pos = i;
		while (pos < b && tpl_isname(t->text[pos]))
			pos++;
		if (pos == i) {
			tpl_where(t->text, i, &line, &col);
			tpl_errf(err, errlen, name, line, col,
			    "expected a variable name");
			goto fail;
		}
		{
			size_t	 nend = pos, k;

			while (pos < b && tpl_isspace(t->text[pos]))
				pos++;
			if (pos != b) {
				tpl_where(t->text, pos, &line, &col);
				tpl_errf(err, errlen, name, line, col,
				    "unexpected '%c' in tag", t->text[pos]);
				goto fail;
			}
			for (k = 0; k < ncolumns; k++)
				if (columns[k] != NULL &&
				    strlen(columns[k]) == nend - i &&
				    memcmp(columns[k], t->text + i,
				    nend - i) == 0)
					break;
			if (k == ncolumns) {
				tpl_where(t->text, i, &line, &col);
				tpl_errf(err, errlen, name, line, col,
				    "unknown variable '%.*s'",
				    (int)(nend - i), t->text + i);
				goto fail;
			}
			op = (struct tpl_op){ .kind = TPL_OP_VAR, .col = k,
			    .esc = ctx };
			if (tpl_push(t, &op) != 0)
				goto nomem;
			if (k + 1 > t->ncols)
				t->ncols = k + 1;
		}
		pos = b + 2;
	}
	/* A HEADER template's own text obeys the same rule as its values. */
	if (ctx == TPL_CTX_HEADER)
		for (i = 0; i < len; i++)
			if ((unsigned char)t->text[i] < 0x20 ||
			    t->text[i] == 0x7f)
				t->text[i] = ' ';
	return t;
nomem:
	tpl_errf(err, errlen, name, 0, 0, "out of memory");
fail:
	tpl_free(t);
	return NULL;
}

void
tpl_free(struct tpl *t)
{
	if (t == NULL)
		return;
	free(t->ops);
	free(t->text);
	free(t);
}

/* HTML: & < > " ' become entities; everything else is copied in runs. */
static int
tpl_put_html(struct buf *out, const char *s, size_t n)
{
	size_t		 i, run = 0;
	const char	*ent;
	int		 r;

	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': ent = "&amp;"; break;
		case '<': ent = "&lt;"; break;
		case '>': ent = "&gt;"; break;
		case '"': ent = "&quot;"; break;
		case '\'': ent = "&#39;"; break;
		default: continue;
		}
		if ((r = buf_append(out, s + run, i - run)) != 0 ||
		    (r = buf_puts(out, ent)) != 0)
			return r;
		run = i + 1;
	}
	return buf_append(out, s + run, n - run);
}

/*
 * HEADER: every C0 control (CR and LF included) and DEL becomes a space, so
 * a merge value can never end the header line and start another one.
 */
static int
tpl_put_header(struct buf *out, const char *s, size_t n)
{
	size_t	 i, start = out->len;
	int	 r;

	if ((r = buf_append(out, s, n)) != 0)
		return r;
	for (i = start; i < out->len; i++) {
		unsigned char	 c = (unsigned char)out->data[i];

		if (c < 0x20 || c == 0x7f)
			out->data[i] = ' ';
	}
	return 0;
}

int
tpl_render(const struct tpl *t, const struct tpl_row *row, struct buf *out)
{
	const struct tpl_op	*op;
	const char		*v;
	size_t			 i, vlen, start = out->len;
	int			 r = 0;

	if (t->ncols > 0 && (row == NULL || row->n < t->ncols ||
	    row->values == NULL))
		return -EINVAL;
	for (i = 0; i < t->nops && r == 0; i++) {
		op = &t->ops[i];
		switch (op->kind) {
		case TPL_OP_LIT:
			r = buf_append(out, t->text + op->off, op->len);
			break;
		case TPL_OP_VAR:
			v = row->values[op->col];
			if (v == NULL)
				break;
			vlen = row->lens != NULL ? row->lens[op->col] :
			    strlen(v);
			switch (op->esc) {
			case TPL_CTX_TEXT:
				r = buf_append(out, v, vlen);
				break;
			case TPL_CTX_HTML:
				r = tpl_put_html(out, v, vlen);
				break;
			case TPL_CTX_HEADER:
				r = tpl_put_header(out, v, vlen);
				break;
			}
			break;
		}
	}
	if (r != 0) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return r;
}
