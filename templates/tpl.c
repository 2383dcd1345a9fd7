/*
 * tpl: compile templates into a flat op program, render per recipient.
 *
 * Compilation does all the thinking: names are resolved to column, list
 * or list-field indexes, blocks become jumps, and in HTML templates a
 * small HTML tokenizer decides per tag how its value is escaped (text,
 * quoted or unquoted attribute, URL attribute start or middle). Partials
 * are compiled inline. Rendering is then a loop over ops that only appends
 * to the caller's buffer: no lookups, no allocation once it has grown
 * (filters work in the buffer's own tail). See tpl.h and README.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/buf.h"
#include "mail/msg.h"

#include "templates/tpl.h"

#define TPL_MAXBLOCK	32		/* nested blocks */
#define TPL_MAXSCOPE	8		/* nested list sections */
#define TPL_MAXPARTIAL	8		/* nested partials */
#define TPL_MAXINCLUDE	4096		/* partial expansions in all */
#define TPL_MAXFILTER	16		/* filters in one tag */
#define TPL_MAXOPS	((size_t)1 << 20)
#define TPL_MAXTEXT	((size_t)16 << 20)
#define TPL_MAXDATEFMT	64
#define TPL_DATEOUT	(TPL_MAXDATEFMT * 9 + 16)
#define TPL_NONE	((size_t)-1)

/*
 * Ops. Jumps hold op indexes. A list section is
 *	LBEGIN(list, level) -> else/end when empty
 *	body
 *	LNEXT(level) -> body while items are left
 * so the item cursor lives in a fixed per-level array during rendering.
 */
enum tpl_opkind {
	TPL_OP_LIT,	/* append text[off, off+len) */
	TPL_OP_VAR,	/* value of src, through filters, escaped by esc */
	TPL_OP_JF,	/* jump to target when src is false */
	TPL_OP_JT,	/* jump to target when src is true */
	TPL_OP_JMP,
	TPL_OP_LBEGIN,
	TPL_OP_LNEXT,
};

enum tpl_srckind { TPL_SRC_COL, TPL_SRC_FIELD, TPL_SRC_LIST, TPL_SRC_META };

/* Loop variables (TPL_SRC_META idx), about the innermost loop. */
enum tpl_meta { TPL_META_INDEX, TPL_META_NUMBER, TPL_META_FIRST,
	TPL_META_LAST };

enum tpl_esc {
	TPL_ESC_NONE,		/* TEXT context, or {{{raw}}} */
	TPL_ESC_HTML,		/* text and quoted attribute values */
	TPL_ESC_HTML_UNQ,	/* unquoted attribute values */
	TPL_ESC_HEADER,		/* controls become spaces */
	TPL_ESC_URL_PART,	/* inside a URL attribute: percent-encode */
	TPL_ESC_URL_START,	/* a URL attribute's start: check, normalise */
	TPL_ESC_URL_START_UNQ,	/* the same, unquoted */
};

enum tpl_fkind {
	TPL_F_DEFAULT, TPL_F_UPPER, TPL_F_LOWER, TPL_F_TITLE, TPL_F_URL,
	TPL_F_DATE,
};

struct tpl_src {
	enum tpl_srckind kind;
	uint32_t	 level;		/* FIELD: list scope level */
	uint32_t	 idx;		/* column, list or field index */
	uint32_t	 nfields;	/* FIELD: the list's width */
};

struct tpl_op {
	enum tpl_opkind	 kind;
	enum tpl_esc	 esc;		/* VAR */
	struct tpl_src	 src;		/* VAR, JF, JT, LBEGIN, LNEXT(level) */
	uint32_t	 filt;		/* VAR: first filter */
	uint32_t	 nfilt;		/* VAR */
	size_t		 off;		/* LIT */
	size_t		 len;		/* LIT */
	size_t		 target;	/* jumps */
	uint32_t	 slot;		/* tpl_render_mime: LIT: its segment;
					   VAR: its value slot or TPL_NOSLOT */
};

#define TPL_NOSLOT	UINT32_MAX

struct tpl_filter {
	enum tpl_fkind	 kind;
	size_t		 off;		/* argument in tpl->text */
	size_t		 len;
};

struct tpl {
	struct buf	 text;		/* owns: literals, filter arguments */
	struct tpl_op	*ops;		/* owns */
	size_t		 nops;
	size_t		 capops;
	struct tpl_filter *filts;	/* owns */
	size_t		 nfilts;
	size_t		 capfilts;
	size_t		 ncols;		/* a row needs at least this many */
	size_t		 nlists;	/* lists needed at render time */
	/* tpl_render_mime(): */
	struct buf	 mime;		/* owns: the literals, prepared */
	struct msg_seg	*segs;		/* owns: one per LIT op */
	size_t		 nsegs;
	uint32_t	*slotop;	/* owns: an op per value slot */
	size_t		 nslots;
	unsigned	 mflags;	/* MSG_SEG_* of all literals */
	/* owns: the segments in order when there are no blocks or lists
	   (NULL otherwise): literals, and slots with MSG_PLAN_ALT */
	uint32_t	*plan;
	size_t		 nplan;
	/* With a plan: the longest line's literal octets and most values
	   on one line, to bound line lengths without tracking them */
	size_t		 maxstatic;
	size_t		 maxvars;
};

/* ---- compiler state ---------------------------------------------------- */

/*
 * HTML tokenizer state, enough to know what a tag's value lands in.
 * Transitions (per literal byte; see tpl_html_step):
 *	TEXT -'<'-> LT -alpha|'/'-> TAGNAME -ws-> TAG -name-> ATTRNAME
 *	ATTRNAME -'='-> BEFOREVAL -'"'-> VAL_DQ -'"'-> TAG  (also SQ, UNQ)
 *	TAG|TAGNAME|... -'>'-> TEXT, or RAWTEXT after <script>/<style>
 *	LT -'!'-> BANG -'-'-> BANGDASH -'-'-> COMMENT -"-->"-> TEXT
 *	BANG|BANGDASH -other-> BOGUS -'>'-> TEXT
 */
enum tpl_hs {
	TPL_HS_TEXT, TPL_HS_LT, TPL_HS_BANG, TPL_HS_BANGDASH, TPL_HS_BOGUS,
	TPL_HS_COMMENT, TPL_HS_TAGNAME, TPL_HS_TAG, TPL_HS_ATTRNAME,
	TPL_HS_AFTERNAME, TPL_HS_BEFOREVAL, TPL_HS_VAL_DQ, TPL_HS_VAL_SQ,
	TPL_HS_VAL_UNQ, TPL_HS_RAWTEXT,
};

enum tpl_attr { TPL_ATTR_PLAIN, TPL_ATTR_URL, TPL_ATTR_JS };

struct tpl_html {
	enum tpl_hs	 st;
	enum tpl_attr	 attr;
	int		 vstart;	/* in a value, nothing written yet */
	int		 closing;	/* in an end tag */
	int		 raw;		/* RAWTEXT: 1 script, 2 style */
	size_t		 rawmatch;	/* progress matching "</script" */
	int		 dash;		/* COMMENT: '-' seen in a row */
	size_t		 nlen;
	char		 name[24];	/* tag or attribute name, lower case */
};

/* One source being compiled: the template or a partial. */
struct tpl_file {
	const char	*s;		/* borrows: caller's or loader's text */
	size_t		 len;
	const char	*name;		/* borrows: for error messages */
};

enum tpl_bkind { TPL_B_COND, TPL_B_LIST };

/* How a block was opened. */
enum tpl_open {
	TPL_OPEN_SECTION,	/* {{#x}}: loop over a list, else if */
	TPL_OPEN_INVERTED,	/* {{^x}}: unless */
	TPL_OPEN_IF,
	TPL_OPEN_UNLESS,
	TPL_OPEN_EACH,		/* {{#each list}} */
};

struct tpl_block {
	enum tpl_bkind	 kind;
	const char	*tag;		/* borrows from file: name the close
					   tag must repeat */
	size_t		 taglen;
	const struct tpl_file *file;	/* borrows: blocks never outlive
					   the file that opened them */
	size_t		 pos;		/* of the open tag, for errors */
	size_t		 jop;		/* JF/JT/LBEGIN to patch */
	size_t		 body;		/* LIST: first op of the body */
	size_t		 elsejmp;	/* JMP at {{else}}, or TPL_NONE */
	struct tpl_html	 hs_open;
	struct tpl_html	 hs_then;
};

/* Compiler state, on the stack of tpl_compile_ex(). */
struct tpl_cc {
	struct tpl	*t;		/* owns until returned */
	enum tpl_ctx	 ctx;
	const char *const *cols;	/* borrows */
	size_t		 ncols;
	const struct tpl_opts *o;	/* borrows; never NULL */
	char		*err;		/* borrows: the caller's buffer */
	size_t		 errlen;
	struct tpl_html	 hs;
	struct tpl_block blk[TPL_MAXBLOCK];
	size_t		 nblk;
	uint32_t	 scope[TPL_MAXSCOPE];	/* list index per level */
	size_t		 nscope;
	int		 npartial;	/* current nesting */
	size_t		 ninclude;	/* expansions so far: bounds the
					   work of partials that fan out */
};

/* ---- errors -------------------------------------------------------------- */

static void
tpl_where(const struct tpl_file *f, size_t pos, size_t *line, size_t *col)
{
	size_t	 i, l = 1, c = 1;

	for (i = 0; i < pos && i < f->len; i++) {
		if (f->s[i] == '\n') {
			l++;
			c = 1;
		} else
			c++;
	}
	*line = l;
	*col = c;
}

static int
tpl_err(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Write "name:LINE:COL: message" once; always returns -1. */
static int
tpl_err(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    const char *fmt, ...)
{
	va_list	 ap;
	size_t	 line, col;
	int	 n;

	if (cc->err == NULL || cc->errlen == 0 || cc->err[0] != '\0')
		return -1;
	tpl_where(f, pos, &line, &col);
	n = snprintf(cc->err, cc->errlen, "%s:%zu:%zu: ",
	    f->name != NULL ? f->name : "template", line, col);
	if (n < 0 || (size_t)n >= cc->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(cc->err + n, cc->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A byte for an error message: itself when printable, else '?'. */
static int
tpl_shown(char c)
{
	return c > 0x20 && c < 0x7f ? c : '?';
}

/* ---- program building ---------------------------------------------------- */

static int
tpl_push(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    const struct tpl_op *op)
{
	struct tpl	*t = cc->t;
	struct tpl_op	*p;
	size_t		 ncap;

	if (t->nops >= TPL_MAXOPS)
		return tpl_err(cc, f, pos, "template too large");
	if (t->nops == t->capops) {
		ncap = t->capops ? t->capops * 2 : 32;
		if ((p = realloc(t->ops, ncap * sizeof(*p))) == NULL)
			return tpl_err(cc, f, pos, "out of memory");
		t->ops = p;
		t->capops = ncap;
	}
	t->ops[t->nops++] = *op;
	return 0;
}

static int
tpl_push_filter(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    const struct tpl_filter *fl)
{
	struct tpl	 *t = cc->t;
	struct tpl_filter *p;
	size_t		  ncap;

	if (t->nfilts >= TPL_MAXOPS)
		return tpl_err(cc, f, pos, "template too large");
	if (t->nfilts == t->capfilts) {
		ncap = t->capfilts ? t->capfilts * 2 : 16;
		if ((p = realloc(t->filts, ncap * sizeof(*p))) == NULL)
			return tpl_err(cc, f, pos, "out of memory");
		t->filts = p;
		t->capfilts = ncap;
	}
	t->filts[t->nfilts++] = *fl;
	return 0;
}

/* Copy bytes into the program's text; *off gets where they went. */
static int
tpl_put_text(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    const char *s, size_t n, size_t *off)
{
	if (cc->t->text.len + n > TPL_MAXTEXT)
		return tpl_err(cc, f, pos, "template too large");
	*off = cc->t->text.len;
	if (buf_append(&cc->t->text, s, n) != 0)
		return tpl_err(cc, f, pos, "out of memory");
	return 0;
}

/* ---- HTML context tracking ---------------------------------------------- */

static int
tpl_isalpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
tpl_isdigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
tpl_isspace(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

static unsigned char
tpl_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static void
tpl_html_name_add(struct tpl_html *h, unsigned char c)
{
	if (h->nlen < sizeof(h->name) - 1)
		h->name[h->nlen++] = (char)tpl_lower(c);
	h->name[h->nlen] = '\0';
}

static int
tpl_html_name_is(const struct tpl_html *h, const char *s)
{
	return strcmp(h->name, s) == 0;
}

/* Which attributes take URLs (and so a scheme check and %-encoding). */
static enum tpl_attr
tpl_html_attrkind(const struct tpl_html *h)
{
	static const char *const url[] = { "href", "src", "action",
		"formaction", "background", "cite", "poster", "longdesc",
		"usemap", "xlink:href", "data", "codebase", "manifest", "icon",
		"srcset", "ping", "profile", "dynsrc", "lowsrc" };
	size_t	 i;

	if (h->nlen > 2 && h->name[0] == 'o' && h->name[1] == 'n')
		return TPL_ATTR_JS;
	for (i = 0; i < sizeof(url) / sizeof(url[0]); i++)
		if (tpl_html_name_is(h, url[i]))
			return TPL_ATTR_URL;
	return TPL_ATTR_PLAIN;
}

static void
tpl_html_step(struct tpl_html *h, unsigned char c)
{
	static const char *const rawend[] = { "", "</script", "</style" };
	const char	*e;

	switch (h->st) {
	case TPL_HS_TEXT:
		if (c == '<')
			h->st = TPL_HS_LT;
		break;
	case TPL_HS_LT:
		h->closing = 0;
		h->nlen = 0;
		h->name[0] = '\0';
		h->raw = 0;
		if (c == '!')
			h->st = TPL_HS_BANG;
		else if (c == '/') {
			h->closing = 1;
			h->st = TPL_HS_TAGNAME;
		} else if (tpl_isalpha(c)) {
			tpl_html_name_add(h, c);
			h->st = TPL_HS_TAGNAME;
		} else if (c != '<')
			h->st = TPL_HS_TEXT;
		break;
	case TPL_HS_BANG:
		h->st = c == '-' ? TPL_HS_BANGDASH : c == '>' ? TPL_HS_TEXT :
		    TPL_HS_BOGUS;
		break;
	case TPL_HS_BANGDASH:
		if (c == '-') {
			h->st = TPL_HS_COMMENT;
			h->dash = 0;
		} else
			h->st = c == '>' ? TPL_HS_TEXT : TPL_HS_BOGUS;
		break;
	case TPL_HS_BOGUS:
		if (c == '>')
			h->st = TPL_HS_TEXT;
		break;
	case TPL_HS_COMMENT:
		if (c == '>' && h->dash >= 2)
			h->st = TPL_HS_TEXT;
		else if (c == '-')
			h->dash++;
		else
			h->dash = 0;
		break;
	case TPL_HS_TAGNAME:
		if (tpl_isspace(c) || c == '/')
			h->st = TPL_HS_TAG;
		else if (c == '>')
			goto tagend;
		else
			tpl_html_name_add(h, c);
		if (h->st == TPL_HS_TAG && !h->closing) {
			/* Remember the element while its attributes go by. */
			h->raw = tpl_html_name_is(h, "script") ? 1 :
			    tpl_html_name_is(h, "style") ? 2 : 0;
		}
		break;
	case TPL_HS_TAG:
		if (c == '>')
			goto tagend;
		if (!tpl_isspace(c) && c != '/') {
			h->nlen = 0;
			tpl_html_name_add(h, c);
			h->st = TPL_HS_ATTRNAME;
		}
		break;
	case TPL_HS_ATTRNAME:
		if (c == '=') {
			h->attr = tpl_html_attrkind(h);
			h->st = TPL_HS_BEFOREVAL;
		} else if (tpl_isspace(c))
			h->st = TPL_HS_AFTERNAME;
		else if (c == '>')
			goto tagend;
		else if (c == '/')
			h->st = TPL_HS_TAG;
		else
			tpl_html_name_add(h, c);
		break;
	case TPL_HS_AFTERNAME:
		if (c == '=') {
			h->attr = tpl_html_attrkind(h);
			h->st = TPL_HS_BEFOREVAL;
		} else if (c == '>')
			goto tagend;
		else if (c == '/')
			h->st = TPL_HS_TAG;
		else if (!tpl_isspace(c)) {
			h->nlen = 0;
			tpl_html_name_add(h, c);
			h->st = TPL_HS_ATTRNAME;
		}
		break;
	case TPL_HS_BEFOREVAL:
		if (c == '"') {
			h->st = TPL_HS_VAL_DQ;
			h->vstart = 1;
		} else if (c == '\'') {
			h->st = TPL_HS_VAL_SQ;
			h->vstart = 1;
		} else if (c == '>')
			goto tagend;
		else if (!tpl_isspace(c)) {
			h->st = TPL_HS_VAL_UNQ;
			h->vstart = 0;
		}
		break;
	case TPL_HS_VAL_DQ:
	case TPL_HS_VAL_SQ:
		if (c == (h->st == TPL_HS_VAL_DQ ? '"' : '\'')) {
			h->st = TPL_HS_TAG;
			h->attr = TPL_ATTR_PLAIN;
		}
		h->vstart = 0;
		break;
	case TPL_HS_VAL_UNQ:
		if (tpl_isspace(c)) {
			h->st = TPL_HS_TAG;
			h->attr = TPL_ATTR_PLAIN;
		} else if (c == '>')
			goto tagend;
		h->vstart = 0;
		break;
	case TPL_HS_RAWTEXT:
		e = rawend[h->raw];
		if (tpl_lower(c) == (unsigned char)e[h->rawmatch]) {
			if (e[++h->rawmatch] == '\0') {
				/* "</script" seen: the rest is an end tag. */
				h->closing = 1;
				h->raw = 0;
				h->nlen = 0;
				h->name[0] = '\0';
				h->st = TPL_HS_TAG;
			}
		} else
			h->rawmatch = c == '<' ? 1 : 0;
		break;
	}
	return;
tagend:
	h->attr = TPL_ATTR_PLAIN;
	if (!h->closing && h->st == TPL_HS_TAGNAME)
		h->raw = tpl_html_name_is(h, "script") ? 1 :
		    tpl_html_name_is(h, "style") ? 2 : 0;
	if (!h->closing && h->raw != 0) {
		h->st = TPL_HS_RAWTEXT;
		h->rawmatch = 0;
		return;
	}
	h->st = TPL_HS_TEXT;
	h->raw = 0;
}

/* Same state for the purpose of what comes next? (vstart is merged.) */
static int
tpl_html_same(const struct tpl_html *a, const struct tpl_html *b)
{
	int	 named;

	if (a->st != b->st || a->attr != b->attr || a->raw != b->raw)
		return 0;
	named = a->st == TPL_HS_TAGNAME || a->st == TPL_HS_ATTRNAME ||
	    a->st == TPL_HS_AFTERNAME;
	if (named && strcmp(a->name, b->name) != 0)
		return 0;
	if ((named || a->st == TPL_HS_TAG) && a->closing != b->closing)
		return 0;
	if (a->st == TPL_HS_RAWTEXT && a->rawmatch != b->rawmatch)
		return 0;
	return a->st != TPL_HS_COMMENT || a->dash == b->dash;
}

/* ---- lexing inside tags ------------------------------------------------ */

static size_t
tpl_skip_ws(const struct tpl_file *f, size_t i)
{
	while (i < f->len && tpl_isspace((unsigned char)f->s[i]))
		i++;
	return i;
}

static int
tpl_isname(unsigned char c)
{
	return tpl_isalpha(c) || tpl_isdigit(c) || c == '_' || c == '-' ||
	    c == '.' || c == '@' || c >= 0x80;
}

static size_t
tpl_lex_name(const struct tpl_file *f, size_t i)
{
	while (i < f->len && tpl_isname((unsigned char)f->s[i]))
		i++;
	return i;
}

static int
tpl_word_is(const struct tpl_file *f, size_t a, size_t b, const char *w)
{
	return b - a == strlen(w) && memcmp(f->s + a, w, b - a) == 0;
}

/*
 * A string argument, "..." or '...', with \\ and \" (\') escapes. Stored
 * decoded in the program's text. Returns the index after it, or 0.
 */
static size_t
tpl_lex_string(struct tpl_cc *cc, const struct tpl_file *f, size_t i,
    size_t *off, size_t *len)
{
	char	 q = f->s[i];
	size_t	 start = i, j;
	int	 r;

	*off = cc->t->text.len;
	for (j = i + 1; j < f->len && f->s[j] != q; j++) {
		if (f->s[j] == '\\' && j + 1 < f->len)
			j++;
		if (cc->t->text.len >= TPL_MAXTEXT) {
			tpl_err(cc, f, start, "template too large");
			return 0;
		}
		if ((r = buf_putc(&cc->t->text, f->s[j])) != 0) {
			tpl_err(cc, f, start, "out of memory");
			return 0;
		}
	}
	if (j >= f->len) {
		tpl_err(cc, f, start, "unterminated string");
		return 0;
	}
	*len = cc->t->text.len - *off;
	return j + 1;
}

/* ---- name resolution ----------------------------------------------------- */

static int
tpl_name_eq(const char *name, const char *s, size_t n)
{
	return name != NULL && strlen(name) == n && memcmp(name, s, n) == 0;
}

/* Innermost list field, then column, then list. 0, or -1 when unknown. */
static int
tpl_resolve(struct tpl_cc *cc, const char *s, size_t n, struct tpl_src *src)
{
	static const char *const meta[] = { "@index", "@number", "@first",
		"@last" };
	const struct tpl_listdef *ld;
	size_t			  lvl, k;

	for (k = 0; k < sizeof(meta) / sizeof(meta[0]) && cc->nscope > 0; k++)
		if (tpl_name_eq(meta[k], s, n)) {
			*src = (struct tpl_src){ TPL_SRC_META,
			    (uint32_t)(cc->nscope - 1), (uint32_t)k, 0 };
			return 0;
		}
	if (n == 1 && s[0] == '.' && cc->nscope > 0) {
		ld = &cc->o->lists[cc->scope[cc->nscope - 1]];
		if (ld->nfields == 0)
			return -1;
		*src = (struct tpl_src){ TPL_SRC_FIELD,
		    (uint32_t)(cc->nscope - 1), 0, (uint32_t)ld->nfields };
		return 0;
	}
	for (lvl = cc->nscope; lvl-- > 0;) {
		ld = &cc->o->lists[cc->scope[lvl]];
		for (k = 0; k < ld->nfields; k++)
			if (tpl_name_eq(ld->fields[k], s, n)) {
				*src = (struct tpl_src){ TPL_SRC_FIELD,
				    (uint32_t)lvl, (uint32_t)k,
				    (uint32_t)ld->nfields };
				return 0;
			}
	}
	for (k = 0; k < cc->ncols; k++)
		if (tpl_name_eq(cc->cols[k], s, n)) {
			*src = (struct tpl_src){ TPL_SRC_COL, 0, (uint32_t)k,
			    0 };
			if (k + 1 > cc->t->ncols)
				cc->t->ncols = k + 1;
			return 0;
		}
	for (k = 0; cc->o != NULL && k < cc->o->nlists; k++)
		if (tpl_name_eq(cc->o->lists[k].name, s, n)) {
			*src = (struct tpl_src){ TPL_SRC_LIST, 0, (uint32_t)k,
			    0 };
			if (k + 1 > cc->t->nlists)
				cc->t->nlists = k + 1;
			return 0;
		}
	return -1;
}

/* ---- expressions: {{name | filter "arg" | "default"}} ------------------- */

static int
tpl_date_fmt_ok(const char *s, size_t n)
{
	size_t	 i;

	if (n > TPL_MAXDATEFMT)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] == '%' && (++i >= n ||
		    strchr("YymdeHIMSpbBaAjZz%", s[i]) == NULL || s[i] == '\0'))
			return 0;
	return 1;
}

/* Decide the escaping of a value written at the current HTML state. */
static int
tpl_html_esc(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    enum tpl_esc *esc)
{
	struct tpl_html	*h = &cc->hs;

	switch (h->st) {
	case TPL_HS_TEXT:
	case TPL_HS_COMMENT:
	case TPL_HS_BOGUS:
		*esc = TPL_ESC_HTML;
		return 0;
	case TPL_HS_VAL_DQ:
	case TPL_HS_VAL_SQ:
	case TPL_HS_BEFOREVAL:
	case TPL_HS_VAL_UNQ:
		break;
	case TPL_HS_RAWTEXT:
		return tpl_err(cc, f, pos,
		    "variable inside <script> or <style> is not supported");
	case TPL_HS_LT:
	case TPL_HS_BANG:
	case TPL_HS_BANGDASH:
	case TPL_HS_TAGNAME:
	case TPL_HS_TAG:
	case TPL_HS_ATTRNAME:
	case TPL_HS_AFTERNAME:
		return tpl_err(cc, f, pos, "variable inside an HTML tag: "
		    "put it in a quoted attribute value");
	}
	if (h->attr == TPL_ATTR_JS)
		return tpl_err(cc, f, pos,
		    "variable inside an event handler attribute");
	if (h->st == TPL_HS_VAL_DQ || h->st == TPL_HS_VAL_SQ) {
		if (h->attr == TPL_ATTR_URL)
			*esc = h->vstart ? TPL_ESC_URL_START : TPL_ESC_URL_PART;
		else
			*esc = TPL_ESC_HTML;
	} else {
		if (h->attr == TPL_ATTR_URL)
			*esc = h->st == TPL_HS_BEFOREVAL ?
			    TPL_ESC_URL_START_UNQ : TPL_ESC_URL_PART;
		else
			*esc = TPL_ESC_HTML_UNQ;
	}
	return 0;
}

/* After a value: it is content of whatever attribute value it sits in. */
static void
tpl_html_after_value(struct tpl_html *h)
{
	if (h->st == TPL_HS_BEFOREVAL)
		h->st = TPL_HS_VAL_UNQ;
	h->vstart = 0;
}

static size_t
tpl_cc_expr(struct tpl_cc *cc, const struct tpl_file *f, size_t i, int raw)
{
	static const struct {
		const char	*name;
		enum tpl_fkind	 kind;
		int		 arg;
	} fl[] = {
		{ "default", TPL_F_DEFAULT, 1 }, { "upper", TPL_F_UPPER, 0 },
		{ "lower", TPL_F_LOWER, 0 }, { "title", TPL_F_TITLE, 0 },
		{ "urlencode", TPL_F_URL, 0 }, { "url", TPL_F_URL, 0 },
		{ "date", TPL_F_DATE, 1 },
	};
	struct tpl_op	 op = { .kind = TPL_OP_VAR };
	struct tpl_filter filt;
	size_t		 a, b, k, start = i;

	a = i;
	b = tpl_lex_name(f, a);
	if (b == a) {
		if (a < f->len && f->s[a] != '}')
			tpl_err(cc, f, a, "unexpected '%c' in tag",
			    tpl_shown(f->s[a]));
		else
			tpl_err(cc, f, a, "expected a variable name");
		return 0;
	}
	if (tpl_resolve(cc, f->s + a, b - a, &op.src) != 0) {
		tpl_err(cc, f, a, "unknown variable '%.*s'", (int)(b - a),
		    f->s + a);
		return 0;
	}
	if (op.src.kind == TPL_SRC_LIST) {
		tpl_err(cc, f, a, "'%.*s' is a list: use {{#%.*s}}...{{/%.*s}}",
		    (int)(b - a), f->s + a, (int)(b - a), f->s + a,
		    (int)(b - a), f->s + a);
		return 0;
	}
	op.filt = (uint32_t)cc->t->nfilts;
	i = tpl_skip_ws(f, b);
	while (i < f->len && f->s[i] == '|') {
		i = tpl_skip_ws(f, i + 1);
		if (op.nfilt == TPL_MAXFILTER) {
			tpl_err(cc, f, i, "too many filters");
			return 0;
		}
		filt = (struct tpl_filter){ .kind = TPL_F_DEFAULT };
		if (i < f->len && (f->s[i] == '"' || f->s[i] == '\'')) {
			/* {{x | "there"}}: a default. */
			if ((i = tpl_lex_string(cc, f, i, &filt.off,
			    &filt.len)) == 0)
				return 0;
		} else {
			a = i;
			b = tpl_lex_name(f, a);
			for (k = 0; k < sizeof(fl) / sizeof(fl[0]); k++)
				if (tpl_word_is(f, a, b, fl[k].name))
					break;
			if (b == a || k == sizeof(fl) / sizeof(fl[0])) {
				if (b == a)
					tpl_err(cc, f, a,
					    "expected a filter after '|'");
				else
					tpl_err(cc, f, a,
					    "unknown filter '%.*s'",
					    (int)(b - a), f->s + a);
				return 0;
			}
			filt.kind = fl[k].kind;
			i = tpl_skip_ws(f, b);
			if (fl[k].arg) {
				if (i >= f->len ||
				    (f->s[i] != '"' && f->s[i] != '\'')) {
					tpl_err(cc, f, i, "filter '%s' needs "
					    "a quoted argument", fl[k].name);
					return 0;
				}
				a = i;
				if ((i = tpl_lex_string(cc, f, i, &filt.off,
				    &filt.len)) == 0)
					return 0;
				if (filt.kind == TPL_F_DATE &&
				    !tpl_date_fmt_ok(cc->t->text.data +
				    filt.off, filt.len)) {
					tpl_err(cc, f, a, "bad date format "
					    "(use %%Y %%m %%d %%H %%M %%S %%b "
					    "%%a ..., at most %d bytes)",
					    TPL_MAXDATEFMT);
					return 0;
				}
			}
		}
		if (tpl_push_filter(cc, f, i, &filt) != 0)
			return 0;
		op.nfilt++;
		i = tpl_skip_ws(f, i);
	}
	switch (cc->ctx) {
	case TPL_CTX_TEXT:
		op.esc = TPL_ESC_NONE;
		break;
	case TPL_CTX_HEADER:
		/* Even {{{raw}}}: header injection must stay impossible. */
		op.esc = TPL_ESC_HEADER;
		break;
	case TPL_CTX_HTML:
		/*
		 * Raw, or already percent-encoded by a final url filter
		 * (only unreserved bytes and %XX: safe in any attribute).
		 */
		if (raw || (op.nfilt > 0 &&
		    cc->t->filts[op.filt + op.nfilt - 1].kind == TPL_F_URL))
			op.esc = TPL_ESC_NONE;
		else if (tpl_html_esc(cc, f, start, &op.esc) != 0)
			return 0;
		tpl_html_after_value(&cc->hs);
		break;
	}
	if (tpl_push(cc, f, start, &op) != 0)
		return 0;
	return i;
}

/* ---- blocks -------------------------------------------------------------- */

static int
tpl_cc_open(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    const char *kw, size_t kwlen, size_t a, size_t b, enum tpl_open how)
{
	int		  negate = how == TPL_OPEN_INVERTED ||
			      how == TPL_OPEN_UNLESS;
	struct tpl_block *bl;
	struct tpl_op	  op = { 0 };
	struct tpl_src	  src;

	if (cc->nblk == TPL_MAXBLOCK)
		return tpl_err(cc, f, pos, "blocks nested too deeply");
	if (b == a)
		return tpl_err(cc, f, a, "expected a name");
	if (tpl_resolve(cc, f->s + a, b - a, &src) != 0)
		return tpl_err(cc, f, a, "unknown variable '%.*s'",
		    (int)(b - a), f->s + a);
	if (how == TPL_OPEN_EACH && src.kind != TPL_SRC_LIST)
		return tpl_err(cc, f, a, "'%.*s' is not a list", (int)(b - a),
		    f->s + a);
	bl = &cc->blk[cc->nblk];
	*bl = (struct tpl_block){ .tag = kw, .taglen = kwlen, .file = f,
	    .pos = pos, .elsejmp = TPL_NONE, .hs_open = cc->hs };
	op.src = src;
	if (src.kind == TPL_SRC_LIST && (how == TPL_OPEN_EACH ||
	    how == TPL_OPEN_SECTION)) {
		/* {{#items}} or {{#each items}}: a loop with its own scope. */
		if (cc->nscope == TPL_MAXSCOPE)
			return tpl_err(cc, f, pos,
			    "list sections nested too deeply");
		bl->kind = TPL_B_LIST;
		op.kind = TPL_OP_LBEGIN;
		op.src.level = (uint32_t)cc->nscope;
		bl->jop = cc->t->nops;
		if (tpl_push(cc, f, pos, &op) != 0)
			return -1;
		bl->body = cc->t->nops;
		cc->scope[cc->nscope++] = src.idx;
	} else {
		bl->kind = TPL_B_COND;
		op.kind = negate ? TPL_OP_JT : TPL_OP_JF;
		bl->jop = cc->t->nops;
		if (tpl_push(cc, f, pos, &op) != 0)
			return -1;
	}
	cc->nblk++;
	return 0;
}

/* End of a loop body: LNEXT back to the body, leave the list's scope. */
static int
tpl_cc_loop_end(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    struct tpl_block *bl)
{
	struct tpl_op	 op = { .kind = TPL_OP_LNEXT, .target = bl->body };

	op.src.level = (uint32_t)(cc->nscope - 1);
	if (tpl_push(cc, f, pos, &op) != 0)
		return -1;
	cc->nscope--;
	if (cc->ctx == TPL_CTX_HTML && !tpl_html_same(&cc->hs, &bl->hs_open))
		return tpl_err(cc, f, pos, "the body of {{#%.*s}} ends in "
		    "another HTML context than it starts in",
		    (int)bl->taglen, bl->tag);
	return 0;
}

static int
tpl_cc_else(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    size_t base)
{
	struct tpl_block *bl;
	struct tpl_op	  op = { .kind = TPL_OP_JMP };

	if (cc->nblk == base)
		return tpl_err(cc, f, pos, "{{else}} outside a block");
	bl = &cc->blk[cc->nblk - 1];
	if (bl->elsejmp != TPL_NONE)
		return tpl_err(cc, f, pos, "second {{else}} in one block");
	if (bl->kind == TPL_B_LIST && tpl_cc_loop_end(cc, f, pos, bl) != 0)
		return -1;
	bl->elsejmp = cc->t->nops;
	if (tpl_push(cc, f, pos, &op) != 0)
		return -1;
	cc->t->ops[bl->jop].target = cc->t->nops;
	bl->hs_then = cc->hs;
	cc->hs = bl->hs_open;
	return 0;
}

static int
tpl_cc_close(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    size_t a, size_t b, size_t base)
{
	struct tpl_block *bl;
	size_t		  line, col;
	const struct tpl_html *other;

	if (cc->nblk == base)
		return tpl_err(cc, f, pos, "{{/%.*s}} without an open block",
		    (int)(b - a), f->s + a);
	bl = &cc->blk[cc->nblk - 1];
	if (b - a != bl->taglen || memcmp(f->s + a, bl->tag, b - a) != 0) {
		tpl_where(bl->file, bl->pos, &line, &col);
		return tpl_err(cc, f, pos, "{{/%.*s}} does not close "
		    "{{#%.*s}} opened at %zu:%zu", (int)(b - a), f->s + a,
		    (int)bl->taglen, bl->tag, line, col);
	}
	if (bl->elsejmp == TPL_NONE) {
		if (bl->kind == TPL_B_LIST &&
		    tpl_cc_loop_end(cc, f, pos, bl) != 0)
			return -1;
		cc->t->ops[bl->jop].target = cc->t->nops;
		other = &bl->hs_open;
	} else {
		cc->t->ops[bl->elsejmp].target = cc->t->nops;
		other = &bl->hs_then;
	}
	if (cc->ctx == TPL_CTX_HTML) {
		if (!tpl_html_same(&cc->hs, other))
			return tpl_err(cc, f, pos, "the branches of "
			    "{{#%.*s}} end in different HTML contexts",
			    (int)bl->taglen, bl->tag);
		/* "Nothing written yet" only if true on both paths. */
		cc->hs.vstart = cc->hs.vstart && other->vstart;
	}
	cc->nblk--;
	return 0;
}

/* ---- files and tags ------------------------------------------------------ */

static int	tpl_cc_file(struct tpl_cc *cc, const struct tpl_file *f);

static int
tpl_cc_partial(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    size_t a, size_t b)
{
	struct tpl_file	 pf;
	char		 name[128];
	int		 r;

	if (b == a)
		return tpl_err(cc, f, a, "expected a partial name");
	if (cc->o == NULL || cc->o->load == NULL)
		return tpl_err(cc, f, pos, "partial '%.*s' but no loader",
		    (int)(b - a), f->s + a);
	if (cc->npartial == TPL_MAXPARTIAL)
		return tpl_err(cc, f, pos, "partials nested too deeply");
	if (++cc->ninclude > TPL_MAXINCLUDE)
		return tpl_err(cc, f, pos, "more than %d partial inclusions",
		    TPL_MAXINCLUDE);
	if (b - a >= sizeof(name))
		return tpl_err(cc, f, a, "partial name too long");
	memcpy(name, f->s + a, b - a);
	name[b - a] = '\0';
	pf = (struct tpl_file){ NULL, 0, name };
	if (cc->o->load(cc->o->load_arg, name, &pf.s, &pf.len) != 0 ||
	    (pf.s == NULL && pf.len > 0))
		return tpl_err(cc, f, a, "unknown partial '%s'", name);
	if (pf.s == NULL)
		pf.s = "";
	cc->npartial++;
	r = tpl_cc_file(cc, &pf);
	cc->npartial--;
	return r;
}

/*
 * The tag at f->s[pos] ("{{"). *end gets the index after it.
 */
static int
tpl_cc_tag(struct tpl_cc *cc, const struct tpl_file *f, size_t pos,
    size_t base, size_t *end)
{
	const char	*s = f->s, *close = "}}", *p;
	size_t		 i = pos + 2, a, b, closelen;
	int		 raw = 0, r = 0;
	char		 c;

	if (i < f->len && s[i] == '!') {
		/* {{! comment }} or {{!-- may contain }} --}} */
		close = f->len - i >= 3 && memcmp(s + i, "!--", 3) == 0 ?
		    "--}}" : "}}";
		p = memmem(s + i, f->len - i, close, strlen(close));
		if (p == NULL)
			return tpl_err(cc, f, pos, "unterminated comment");
		*end = (size_t)(p - s) + strlen(close);
		return 0;
	}
	if (i < f->len && s[i] == '{') {
		raw = 1;
		close = "}}}";
		i++;
	}
	closelen = strlen(close);
	if (memmem(s + i, f->len - i, close, closelen) == NULL)
		return tpl_err(cc, f, pos, "unterminated tag");
	i = tpl_skip_ws(f, i);
	c = i < f->len ? s[i] : '\0';
	if (!raw && (c == '#' || c == '^' || c == '/' || c == '>')) {
		i = tpl_skip_ws(f, i + 1);
		a = i;
		b = c == '>' ? a : tpl_lex_name(f, a);
		if (c == '>')
			while (b < f->len && (tpl_isname((unsigned char)s[b]) ||
			    s[b] == '/'))
				b++;
		i = tpl_skip_ws(f, b);
		if (c == '>')
			r = tpl_cc_partial(cc, f, pos, a, b);
		else if (c == '/')
			r = tpl_cc_close(cc, f, pos, a, b, base);
		else if (c == '^')
			r = tpl_cc_open(cc, f, pos, s + a, b - a, a, b,
			    TPL_OPEN_INVERTED);
		else if (tpl_word_is(f, a, b, "if") ||
		    tpl_word_is(f, a, b, "unless") ||
		    tpl_word_is(f, a, b, "each")) {
			size_t	 na = i, nb = tpl_lex_name(f, i);

			i = tpl_skip_ws(f, nb);
			r = tpl_cc_open(cc, f, pos, s + a, b - a, na, nb,
			    s[a] == 'i' ? TPL_OPEN_IF : s[a] == 'u' ?
			    TPL_OPEN_UNLESS : TPL_OPEN_EACH);
		} else
			r = tpl_cc_open(cc, f, pos, s + a, b - a, a, b,
			    TPL_OPEN_SECTION);
		if (r != 0)
			return -1;
	} else if (!raw && tpl_word_is(f, i, tpl_lex_name(f, i), "else")) {
		if (tpl_cc_else(cc, f, pos, base) != 0)
			return -1;
		i = tpl_skip_ws(f, i + 4);
	} else {
		if ((i = tpl_cc_expr(cc, f, i, raw)) == 0)
			return -1;
	}
	if (i >= f->len)
		return tpl_err(cc, f, pos, "unterminated tag");
	if (f->len - i < closelen || memcmp(s + i, close, closelen) != 0)
		return tpl_err(cc, f, i, "unexpected '%c' in tag",
		    tpl_shown(s[i]));
	*end = i + closelen;
	return 0;
}

static int
tpl_cc_lit(struct tpl_cc *cc, const struct tpl_file *f, size_t a, size_t b)
{
	struct tpl_op	 op = { .kind = TPL_OP_LIT };
	size_t		 i;
	char		*p;

	if (b <= a)
		return 0;
	if (tpl_put_text(cc, f, a, f->s + a, b - a, &op.off) != 0)
		return -1;
	op.len = b - a;
	p = cc->t->text.data + op.off;
	for (i = 0; i < op.len; i++) {
		if (cc->ctx == TPL_CTX_HTML)
			tpl_html_step(&cc->hs, (unsigned char)p[i]);
		else if (cc->ctx == TPL_CTX_HEADER &&
		    ((unsigned char)p[i] < 0x20 || p[i] == 0x7f))
			/* A HEADER template's own text obeys the same rule. */
			p[i] = ' ';
	}
	return tpl_push(cc, f, a, &op);
}

static int
tpl_cc_file(struct tpl_cc *cc, const struct tpl_file *f)
{
	const char	*p;
	size_t		 pos = 0, a, base = cc->nblk;
	struct tpl_block *bl;

	while (pos < f->len) {
		p = memmem(f->s + pos, f->len - pos, "{{", 2);
		if (p == NULL) {
			if (tpl_cc_lit(cc, f, pos, f->len) != 0)
				return -1;
			break;
		}
		a = (size_t)(p - f->s);
		if (a > pos && f->s[a - 1] == '\\') {
			/* \{{ is a literal "{{". */
			if (tpl_cc_lit(cc, f, pos, a - 1) != 0 ||
			    tpl_cc_lit(cc, f, a, a + 2) != 0)
				return -1;
			pos = a + 2;
			continue;
		}
		if (tpl_cc_lit(cc, f, pos, a) != 0 ||
		    tpl_cc_tag(cc, f, a, base, &pos) != 0)
			return -1;
	}
	if (cc->nblk > base) {
		bl = &cc->blk[cc->nblk - 1];
		return tpl_err(cc, bl->file, bl->pos, "unclosed {{#%.*s}}",
		    (int)bl->taglen, bl->tag);
	}
	return 0;
}

/* Same value, filters and escaping: rendered once per message. */
static int
tpl_same_value(const struct tpl *t, const struct tpl_op *a,
    const struct tpl_op *b)
{
	const struct tpl_filter	*fa, *fb;
	uint32_t		 k;

	if (a->src.idx != b->src.idx || a->esc != b->esc ||
	    a->nfilt != b->nfilt)
		return 0;
	for (k = 0; k < a->nfilt; k++) {
		fa = &t->filts[a->filt + k];
		fb = &t->filts[b->filt + k];
		if (fa->kind != fb->kind || fa->len != fb->len ||
		    memcmp(t->text.data + fa->off, t->text.data + fb->off,
		    fa->len) != 0)
			return 0;
	}
	return 1;
}

/*
 * Rewrite t->mime as [every 7bit form][every QP form], in program order:
 * a message reads one of the two from start to end, so it streams
 * through memory instead of skipping over the raw text and the other
 * encoding. 0 or -ENOMEM.
 */
static int
tpl_mime_pack(struct tpl *t)
{
	struct buf	 nb;
	struct msg_seg	*sg;
	size_t		 i, n;
	int		 r;

	buf_init(&nb);
	for (i = 0; i < t->nsegs; i++) {
		sg = &t->segs[i];
		if (nb.len > UINT32_MAX - (size_t)sg->n7 ||
		    (r = buf_append(&nb, t->mime.data + sg->o7, sg->n7)) != 0)
			goto fail;
		sg->o7 = (uint32_t)(nb.len - sg->n7);
	}
	for (i = 0; i < t->nsegs; i++) {
		sg = &t->segs[i];
		n = (size_t)sg->nqp + sg->lastw;
		if (nb.len > UINT32_MAX - n ||
		    (r = buf_append(&nb, t->mime.data + sg->oqp, n)) != 0)
			goto fail;
		sg->oqp = (uint32_t)(nb.len - n);
	}
	/* The encoder may read MSG_STORE_PAD octets past a segment. */
	if (buf_reserve(&nb, MSG_STORE_PAD) != 0)
		goto fail;
	buf_free(&t->mime);
	t->mime = nb;
	return 0;
fail:
	buf_free(&nb);
	return -ENOMEM;
}

/* Line bounds of a template without blocks (struct tpl). */
static void
tpl_mime_lines(struct tpl *t)
{
	const struct msg_seg	*sg;
	size_t			 i, cur = 0, nv = 0;

	for (i = 0; i < t->nops; i++) {
		if (t->ops[i].kind != TPL_OP_LIT) {
			nv++;
			continue;
		}
		sg = &t->segs[t->ops[i].slot];
		if (!(sg->flags & MSG_SEG_EOL)) {
			cur += sg->raw;
			continue;
		}
		cur += sg->h1;
		if (cur > t->maxstatic)
			t->maxstatic = cur;
		if (nv > t->maxvars)
			t->maxvars = nv;
		cur = sg->hend;
		nv = 0;
	}
	if (cur > t->maxstatic)
		t->maxstatic = cur;
	if (nv > t->maxvars)
		t->maxvars = nv;
}

/*
 * For tpl_render_mime(): prepare every literal for both transfer
 * encodings (mail/msg.h), and give each VAR op of a column a value slot
 * shared by the ops that render the same thing. 0 or -ENOMEM.
 */
static int
tpl_mime_prepare(struct tpl *t)
{
	struct tpl_op	*op;
	size_t		 i, k, nlit = 0, off;
	int		 r, straight = 1;

	for (i = 0; i < t->nops; i++) {
		if (t->ops[i].kind == TPL_OP_LIT)
			nlit++;
		else if (t->ops[i].kind != TPL_OP_VAR ||
		    t->ops[i].src.kind != TPL_SRC_COL)
			straight = 0;
	}
	if ((t->segs = calloc(nlit + 1, sizeof(*t->segs))) == NULL ||
	    (t->slotop = calloc(t->nops + 1, sizeof(*t->slotop))) == NULL)
		return -ENOMEM;
	for (i = 0; i < t->nops; i++) {
		op = &t->ops[i];
		op->slot = TPL_NOSLOT;
		if (op->kind == TPL_OP_LIT) {
			off = t->mime.len;
			if ((r = buf_append(&t->mime, t->text.data + op->off,
			    op->len)) != 0 ||
			    (r = msg_seg_make(&t->mime, off, op->len,
			    &t->segs[t->nsegs])) != 0)
				return r;
			t->mflags |= t->segs[t->nsegs].flags;
			op->slot = (uint32_t)t->nsegs++;
		} else if (op->kind == TPL_OP_VAR &&
		    op->src.kind == TPL_SRC_COL) {
			for (k = 0; k < t->nslots; k++)
				if (tpl_same_value(t, &t->ops[t->slotop[k]],
				    op))
					break;
			if (k == t->nslots)
				t->slotop[t->nslots++] = (uint32_t)i;
			op->slot = (uint32_t)k;
		}
	}
	if (t->nsegs >= MSG_PLAN_ALT || t->nslots >= MSG_PLAN_ALT)
		return -ENOMEM;
	if ((r = tpl_mime_pack(t)) != 0)
		return r;
	if (straight) {
		/* The common case: the plan is the program itself. */
		if ((t->plan = calloc(t->nops + 1, sizeof(*t->plan))) == NULL)
			return -ENOMEM;
		for (i = 0; i < t->nops; i++)
			t->plan[t->nplan++] = t->ops[i].kind == TPL_OP_LIT ?
			    t->ops[i].slot : t->ops[i].slot | MSG_PLAN_ALT;
		tpl_mime_lines(t);
	}
	return buf_reserve(&t->mime, 0);
}

struct tpl *
tpl_compile_ex(const char *src, size_t len, const char *name,
    enum tpl_ctx ctx, const char *const *columns, size_t ncolumns,
    const struct tpl_opts *opts, char *err, size_t errlen)
{
	static const struct tpl_opts noopts;
	struct tpl_cc	 cc;
	struct tpl_file	 f = { src != NULL ? src : "", len, name };
	char		 dummy[1];

	if (err == NULL || errlen == 0) {
		/* Errors are still detected by whether one was written. */
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	memset(&cc, 0, sizeof(cc));
	cc.ctx = ctx;
	cc.cols = columns;
	cc.ncols = columns != NULL ? ncolumns : 0;
	cc.o = opts != NULL ? opts : &noopts;
	cc.err = err;
	cc.errlen = errlen;
	if ((cc.t = calloc(1, sizeof(*cc.t))) == NULL) {
		tpl_err(&cc, &f, 0, "out of memory");
		return NULL;
	}
	buf_init(&cc.t->text);
	buf_init(&cc.t->mime);
	if (tpl_cc_file(&cc, &f) != 0 || buf_reserve(&cc.t->text, 0) != 0 ||
	    tpl_mime_prepare(cc.t) != 0) {
		if (err[0] == '\0' && errlen > 1)
			tpl_err(&cc, &f, 0, "out of memory");
		tpl_free(cc.t);
		return NULL;
	}
	return cc.t;
}

struct tpl *
tpl_compile(const char *src, size_t len, const char *name, enum tpl_ctx ctx,
    const char *const *columns, size_t ncolumns, char *err, size_t errlen)
{
	return tpl_compile_ex(src, len, name, ctx, columns, ncolumns, NULL,
	    err, errlen);
}

void
tpl_free(struct tpl *t)
{
	if (t == NULL)
		return;
	buf_free(&t->text);
	buf_free(&t->mime);
	free(t->segs);
	free(t->slotop);
	free(t->plan);
	free(t->ops);
	free(t->filts);
	free(t);
}

/* ---- rendering: escapes -------------------------------------------------- */

static const char tpl_hex[] = "0123456789ABCDEF";

static size_t
tpl_pct(char *d, unsigned char c)
{
	d[0] = '%';
	d[1] = tpl_hex[c >> 4];
	d[2] = tpl_hex[c & 15];
	return 3;
}

static int
tpl_url_unreserved(unsigned char c)
{
	return tpl_isalpha(c) || tpl_isdigit(c) || c == '-' || c == '.' ||
	    c == '_' || c == '~';
}

/* RFC 3986 2.2 reserved characters, and '%' (assumed already encoded). */
static int
tpl_url_keep(unsigned char c)
{
	static const unsigned char keep[256] = {
		[':'] = 1, ['/'] = 1, ['?'] = 1, ['#'] = 1, ['['] = 1,
		[']'] = 1, ['@'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1,
		['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
		[','] = 1, [';'] = 1, ['='] = 1, ['%'] = 1,
	};

	return tpl_url_unreserved(c) || keep[c];
}

/*
 * HTML escaping classes: 1 is escaped everywhere, 2 only in unquoted
 * attribute values (tpl_isspace, NUL, '`' and '=').
 */
static const unsigned char tpl_html_cls[256] = {
	['&'] = 1, ['<'] = 1, ['>'] = 1, ['"'] = 1, ['\''] = 1,
	['`'] = 2, ['='] = 2, [' '] = 2, ['\t'] = 2, ['\r'] = 2, ['\n'] = 2,
	['\f'] = 2, [0] = 2,
};

/*
 * HTML: & < > " ' (and, unquoted, also ` = NUL and whitespace) as
 * entities. Runs of other bytes are copied whole.
 */
static size_t
tpl_esc_html(char *d, const char *s, size_t n, int unq)
{
	unsigned	 mask = unq ? 3 : 1;
	size_t		 i = 0, j, o = 0;
	unsigned char	 c;

	while (i < n) {
		/* Values are short: a byte loop beats a memcpy call. */
		for (j = i; j < n &&
		    !(tpl_html_cls[(unsigned char)s[j]] & mask); j++)
			d[o++] = s[j];
		if (j == n)
			break;
		c = (unsigned char)s[j];
		switch (c) {
		case '&': memcpy(d + o, "&amp;", 5); o += 5; break;
		case '<': memcpy(d + o, "&lt;", 4); o += 4; break;
		case '>': memcpy(d + o, "&gt;", 4); o += 4; break;
		case '"': memcpy(d + o, "&quot;", 6); o += 6; break;
		case '\'': memcpy(d + o, "&#39;", 5); o += 5; break;
		default:
			/* "&#%d;" */
			d[o++] = '&';
			d[o++] = '#';
			if (c >= 10)
				d[o++] = (char)('0' + c / 10);
			d[o++] = (char)('0' + c % 10);
			d[o++] = ';';
			break;
		}
		i = j + 1;
	}
	return o;
}

static int
tpl_url_scheme_ok(const char *s, size_t n)
{
	static const char *const ok[] = { "http", "https", "mailto", "tel",
		"sms", "cid", "ftp" };
	size_t	 i, k;

	if (n == 0 || !tpl_isalpha((unsigned char)s[0]))
		return 1;	/* relative: no scheme */
	for (i = 1; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c == ':')
			break;
		if (!tpl_isalpha(c) && !tpl_isdigit(c) && c != '+' &&
		    c != '-' && c != '.')
			return 1;
	}
	if (i == n)
		return 1;
	for (k = 0; k < sizeof(ok) / sizeof(ok[0]); k++)
		if (strlen(ok[k]) == i && strncasecmp(s, ok[k], i) == 0)
			return 1;
	return 0;
}

/*
 * A URL attribute's start: a javascript:, data: (or any other unknown)
 * scheme is replaced by "#blocked"; bytes that cannot appear in a URL are
 * percent-encoded, then the result is HTML-escaped for the attribute.
 */
static size_t
tpl_esc_url_start(char *d, const char *s, size_t n, int unq)
{
	size_t	 i, o = 0;
	char	 one[3];

	if (!tpl_url_scheme_ok(s, n)) {
		memcpy(d, "#blocked", 8);
		return 8;
	}
	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (tpl_url_keep(c))
			o += tpl_esc_html(d + o, (const char *)&s[i], 1, unq);
		else {
			tpl_pct(one, c);
			memcpy(d + o, one, 3);
			o += 3;
		}
	}
	return o;
}

static size_t
tpl_esc_url_part(char *d, const char *s, size_t n)
{
	size_t	 i, o = 0;

	for (i = 0; i < n; i++) {
		if (tpl_url_unreserved((unsigned char)s[i]))
			d[o++] = s[i];
		else
			o += tpl_pct(d + o, (unsigned char)s[i]);
	}
	return o;
}

/* Worst-case output bytes of escaping n bytes. */
static size_t
tpl_esc_max(enum tpl_esc esc, size_t n)
{
	switch (esc) {
	case TPL_ESC_NONE:
	case TPL_ESC_HEADER:
		return n;
	case TPL_ESC_URL_PART:
		return 3 * n;
	case TPL_ESC_HTML:
	case TPL_ESC_HTML_UNQ:
	case TPL_ESC_URL_START:
	case TPL_ESC_URL_START_UNQ:
		return 6 * n + 8;
	}
	return 6 * n + 8;
}

static size_t
tpl_escape(enum tpl_esc esc, char *d, const char *s, size_t n)
{
	size_t	 i;

	switch (esc) {
	case TPL_ESC_NONE:
		memmove(d, s, n);
		return n;
	case TPL_ESC_HEADER:
		/*
		 * Every C0 control (CR and LF included) and DEL becomes a
		 * space, so a value can never end the header line.
		 */
		for (i = 0; i < n; i++) {
			unsigned char	 c = (unsigned char)s[i];

			d[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
		}
		return n;
	case TPL_ESC_HTML:
		return tpl_esc_html(d, s, n, 0);
	case TPL_ESC_HTML_UNQ:
		return tpl_esc_html(d, s, n, 1);
	case TPL_ESC_URL_PART:
		return tpl_esc_url_part(d, s, n);
	case TPL_ESC_URL_START:
		return tpl_esc_url_start(d, s, n, 0);
	case TPL_ESC_URL_START_UNQ:
		return tpl_esc_url_start(d, s, n, 1);
	}
	return 0;
}

/* ---- rendering: filters -------------------------------------------------- */

/*
 * Case mapping for ASCII, Latin-1 letters (U+00C0..U+00FE) and basic
 * Cyrillic (U+0400..U+045F): all keep their UTF-8 length, so a value is
 * mapped in place. Other characters are copied unchanged.
 */
static size_t
tpl_f_case(enum tpl_fkind kind, char *d, const char *s, size_t n)
{
	size_t	 i;
	int	 inword = 0, up;

	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		up = kind == TPL_F_UPPER || (kind == TPL_F_TITLE && !inword);
		if (c < 0x80) {
			if (up && c >= 'a' && c <= 'z')
				c = (unsigned char)(c - 32);
			else if (!up && c >= 'A' && c <= 'Z')
				c = (unsigned char)(c + 32);
			d[i] = (char)c;
			inword = tpl_isalpha(c) || tpl_isdigit(c) || c == '\'';
			continue;
		}
		inword = 1;
		if (i + 1 < n && ((unsigned char)s[i + 1] & 0xc0) == 0x80 &&
		    (c == 0xc3 || c == 0xd0 || c == 0xd1)) {
			unsigned	 cp = (unsigned)(c & 0x1f) << 6 |
			    ((unsigned char)s[i + 1] & 0x3f);

			if (up && ((cp >= 0xe0 && cp <= 0xfe && cp != 0xf7) ||
			    (cp >= 0x430 && cp <= 0x44f)))
				cp -= 0x20;
			else if (up && cp >= 0x450 && cp <= 0x45f)
				cp -= 0x50;
			else if (!up && ((cp >= 0xc0 && cp <= 0xde &&
			    cp != 0xd7) || (cp >= 0x410 && cp <= 0x42f)))
				cp += 0x20;
			else if (!up && cp >= 0x400 && cp <= 0x40f)
				cp += 0x50;
			d[i] = (char)(0xc0 | cp >> 6);
			d[i + 1] = (char)(0x80 | (cp & 0x3f));
			i++;
			continue;
		}
		d[i] = (char)c;
	}
	return n;
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t
tpl_days(int64_t y, unsigned m, unsigned dd)
{
	int64_t		 era;
	unsigned	 yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
tpl_num(const char *s, size_t n, size_t *i, size_t digits, int *v)
{
	size_t	 k;

	*v = 0;
	for (k = 0; k < digits; k++, (*i)++) {
		if (*i >= n || !tpl_isdigit((unsigned char)s[*i]))
			return -1;
		*v = *v * 10 + (s[*i] - '0');
	}
	return 0;
}

/* "YYYY-MM-DD[( |T)HH:MM[:SS]]..." or Unix seconds, into tm (UTC). */
static int
tpl_parse_date(const char *s, size_t n, struct tm *tm)
{
	int	 y, mo, d, h = 0, mi = 0, se = 0;
	size_t	 i = 0, k;
	int64_t	 days, secs;
	time_t	 t;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
		30, 31 };

	while (n > 0 && tpl_isspace((unsigned char)s[n - 1]))
		n--;
	while (i < n && tpl_isspace((unsigned char)s[i]))
		i++;
	for (k = i; k < n && tpl_isdigit((unsigned char)s[k]); k++)
		;
	if (k == n && k > i && k - i <= 12) {
		for (secs = 0; i < n; i++)
			secs = secs * 10 + (s[i] - '0');
		t = (time_t)secs;
		return gmtime_r(&t, tm) != NULL ? 0 : -1;
	}
	if (tpl_num(s, n, &i, 4, &y) || i >= n || s[i++] != '-' ||
	    tpl_num(s, n, &i, 2, &mo) || i >= n || s[i++] != '-' ||
	    tpl_num(s, n, &i, 2, &d))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 ||
	    y % 400 == 0))))
		return -1;
	if (i < n && (s[i] == 'T' || s[i] == ' ')) {
		i++;
		if (tpl_num(s, n, &i, 2, &h) || i >= n || s[i++] != ':' ||
		    tpl_num(s, n, &i, 2, &mi))
			return -1;
		if (i < n && s[i] == ':') {
			i++;
			if (tpl_num(s, n, &i, 2, &se))
				return -1;
		}
		if (h > 23 || mi > 59 || se > 60)
			return -1;
	}
	memset(tm, 0, sizeof(*tm));
	days = tpl_days(y, (unsigned)mo, (unsigned)d);
	tm->tm_year = y - 1900;
	tm->tm_mon = mo - 1;
	tm->tm_mday = d;
	tm->tm_hour = h;
	tm->tm_min = mi;
	tm->tm_sec = se;
	tm->tm_wday = (int)(((days % 7) + 11) % 7);	/* 1970-01-01: Thu */
	tm->tm_yday = (int)(days - tpl_days(y, 1, 1));
	return 0;
}

/*
 * date "fmt": a small, locale-free strftime (English names, UTC). A value
 * that is not a date is copied unchanged.
 */
static size_t
tpl_f_date(char *d, const char *s, size_t n, const char *fmt, size_t flen)
{
	static const char *const mon[] = { "January", "February", "March",
		"April", "May", "June", "July", "August", "September",
		"October", "November", "December" };
	static const char *const wday[] = { "Sunday", "Monday", "Tuesday",
		"Wednesday", "Thursday", "Friday", "Saturday" };
	struct tm	 tm;
	size_t		 i, o = 0;
	int		 k;

	if (tpl_parse_date(s, n, &tm) != 0 || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		memmove(d, s, n);
		return n;
	}
	for (i = 0; i < flen; i++) {
		if (fmt[i] != '%' || i + 1 >= flen) {
			d[o++] = fmt[i];
			continue;
		}
		k = 0;
		switch (fmt[++i]) {
		case 'Y': k = sprintf(d + o, "%04d", tm.tm_year + 1900); break;
		case 'y': k = sprintf(d + o, "%02d", (tm.tm_year + 1900) % 100);
			break;
		case 'm': k = sprintf(d + o, "%02d", tm.tm_mon + 1); break;
		case 'd': k = sprintf(d + o, "%02d", tm.tm_mday); break;
		case 'e': k = sprintf(d + o, "%d", tm.tm_mday); break;
		case 'H': k = sprintf(d + o, "%02d", tm.tm_hour); break;
		case 'I': k = sprintf(d + o, "%02d",
			    tm.tm_hour % 12 ? tm.tm_hour % 12 : 12); break;
		case 'M': k = sprintf(d + o, "%02d", tm.tm_min); break;
		case 'S': k = sprintf(d + o, "%02d", tm.tm_sec); break;
		case 'p': k = sprintf(d + o, "%s", tm.tm_hour < 12 ? "AM" :
			    "PM"); break;
		case 'j': k = sprintf(d + o, "%03d", tm.tm_yday + 1); break;
		case 'b': k = sprintf(d + o, "%.3s", mon[tm.tm_mon]); break;
		case 'B': k = sprintf(d + o, "%s", mon[tm.tm_mon]); break;
		case 'a': k = sprintf(d + o, "%.3s", wday[tm.tm_wday]); break;
		case 'A': k = sprintf(d + o, "%s", wday[tm.tm_wday]); break;
		case 'Z': k = sprintf(d + o, "UTC"); break;
		case 'z': k = sprintf(d + o, "+0000"); break;
		default: d[o] = fmt[i]; k = 1; break;	/* %% */
		}
		o += (size_t)k;
	}
	return o;
}

static size_t
tpl_filter_max(const struct tpl_filter *fl, size_t n)
{
	switch (fl->kind) {
	case TPL_F_DEFAULT:
		return fl->len;
	case TPL_F_UPPER:
	case TPL_F_LOWER:
	case TPL_F_TITLE:
		return n;
	case TPL_F_URL:
		return 3 * n;
	case TPL_F_DATE:
		return n > TPL_DATEOUT ? n : TPL_DATEOUT;
	}
	return 3 * n;
}

/* ---- rendering ----------------------------------------------------------- */

/* Render state, on the stack of tpl_render_ex(). */
struct tpl_rs {
	const struct tpl_row	*row;		/* borrows */
	const struct tpl_list	*lists;		/* borrows */
	/* borrows: the list of each open loop level */
	const struct tpl_list	*lst[TPL_MAXSCOPE];
	size_t			 item[TPL_MAXSCOPE];
	char			 num[24];	/* a loop variable's text */
};

static void
tpl_value(struct tpl_rs *rs, const struct tpl_src *src,
    const char **v, size_t *n)
{
	const struct tpl_list	*l;
	size_t			 k, it, cnt;
	int			 w;

	*v = NULL;
	*n = 0;
	switch (src->kind) {
	case TPL_SRC_COL:
		*v = rs->row->values[src->idx];
		if (*v != NULL)
			*n = rs->row->lens != NULL ? rs->row->lens[src->idx] :
			    strlen(*v);
		break;
	case TPL_SRC_FIELD:
		l = rs->lst[src->level];
		k = rs->item[src->level] * src->nfields + src->idx;
		*v = l->values[k];
		if (*v != NULL)
			*n = l->lens != NULL ? l->lens[k] : strlen(*v);
		break;
	case TPL_SRC_LIST:
		break;
	case TPL_SRC_META:
		it = rs->item[src->level];
		cnt = rs->lst[src->level]->n;
		w = 0;
		switch ((enum tpl_meta)src->idx) {
		case TPL_META_INDEX:
		case TPL_META_NUMBER:
			w = snprintf(rs->num, sizeof(rs->num), "%zu",
			    it + (src->idx == TPL_META_NUMBER));
			break;
		case TPL_META_FIRST:
		case TPL_META_LAST:
			/* "1" or "": true or false for {{#if @last}}. */
			if (src->idx == TPL_META_FIRST ? it == 0 :
			    it + 1 == cnt)
				w = snprintf(rs->num, sizeof(rs->num), "1");
			break;
		}
		*v = rs->num;
		*n = w > 0 ? (size_t)w : 0;
		break;
	}
	if (*v == NULL)
		*v = "";
}

/* False: empty, "0", "false" or "no" (any case, whitespace ignored). */
static int
tpl_truthy(struct tpl_rs *rs, const struct tpl_src *src)
{
	const char	*v;
	size_t		 n;

	if (src->kind == TPL_SRC_LIST)
		return rs->lists[src->idx].n > 0;
	tpl_value(rs, src, &v, &n);
	while (n > 0 && tpl_isspace((unsigned char)v[n - 1]))
		n--;
	while (n > 0 && tpl_isspace((unsigned char)*v)) {
		v++;
		n--;
	}
	return !(n == 0 || (n == 1 && v[0] == '0') ||
	    (n == 5 && strncasecmp(v, "false", 5) == 0) ||
	    (n == 2 && strncasecmp(v, "no", 2) == 0));
}

/*
 * One VAR op. Filters run in the output buffer's tail: the value is
 * rewritten at out->data[start..] by each stage (worst case reserved
 * first, so pointers stay valid), then escaped into place. Once the buffer
 * is large enough nothing here allocates.
 */
static int
tpl_render_var(const struct tpl *t, const struct tpl_op *op,
    struct tpl_rs *rs, struct buf *out)
{
	const struct tpl_filter	*fl;
	const char		*v;
	size_t			 n, start = out->len, m = 0, k, need;
	int			 inbuf = 0, r;
	char			*d;

	tpl_value(rs, &op->src, &v, &n);
	for (k = 0; k < op->nfilt; k++) {
		fl = &t->filts[op->filt + k];
		if (fl->kind == TPL_F_DEFAULT) {
			if (n == 0) {
				v = t->text.data + fl->off;
				n = fl->len;
				inbuf = 0;
			}
			continue;
		}
		if (n > ((size_t)-1) / 8 - TPL_DATEOUT)
			return -ENOMEM;
		need = (inbuf ? n : 0) + tpl_filter_max(fl, n);
		if ((r = buf_room(out, need)) != 0)
			return r;
		if (inbuf)
			v = out->data + start;
		d = out->data + start + (inbuf ? n : 0);
		switch (fl->kind) {
		case TPL_F_UPPER:
		case TPL_F_LOWER:
		case TPL_F_TITLE:
			m = tpl_f_case(fl->kind, d, v, n);
			break;
		case TPL_F_URL:
			m = tpl_esc_url_part(d, v, n);
			break;
		case TPL_F_DATE:
			m = tpl_f_date(d, v, n, t->text.data + fl->off,
			    fl->len);
			break;
		case TPL_F_DEFAULT:
			m = 0;
			break;
		}
		if (inbuf)
			memmove(out->data + start, d, m);
		n = m;
		inbuf = 1;
	}
	if (n > ((size_t)-1) / 8)
		return -ENOMEM;
	need = (inbuf ? n : 0) + tpl_esc_max(op->esc, n);
	if ((r = buf_room(out, need)) != 0)
		return r;
	if (inbuf) {
		v = out->data + start;
		d = out->data + start + n;
		m = tpl_escape(op->esc, d, v, n);
		memmove(out->data + start, d, m);
	} else
		m = tpl_escape(op->esc, out->data + start, v, n);
	out->len = start + m;
	out->data[out->len] = '\0';
	return 0;
}

int
tpl_render_ex(const struct tpl *t, const struct tpl_row *row,
    const struct tpl_list *lists, size_t nlists, struct buf *out)
{
	const struct tpl_op	*op;
	struct tpl_rs		 rs;
	size_t			 pc = 0, start = out->len, lv;
	int			 r = 0;

	if (t->ncols > 0 && (row == NULL || row->n < t->ncols ||
	    row->values == NULL))
		return -EINVAL;
	if (t->nlists > 0 && (lists == NULL || nlists < t->nlists))
		return -EINVAL;
	rs.row = row;
	rs.lists = lists;
	if ((r = buf_reserve(out, 0)) != 0)
		return r;
	while (pc < t->nops && r == 0) {
		op = &t->ops[pc++];
		switch (op->kind) {
		case TPL_OP_LIT:
			r = buf_append(out, t->text.data + op->off, op->len);
			break;
		case TPL_OP_VAR:
			r = tpl_render_var(t, op, &rs, out);
			break;
		case TPL_OP_JF:
			if (!tpl_truthy(&rs, &op->src))
				pc = op->target;
			break;
		case TPL_OP_JT:
			if (tpl_truthy(&rs, &op->src))
				pc = op->target;
			break;
		case TPL_OP_JMP:
			pc = op->target;
			break;
		case TPL_OP_LBEGIN:
			lv = op->src.level;
			rs.lst[lv] = &lists[op->src.idx];
			rs.item[lv] = 0;
			if (rs.lst[lv]->n == 0)
				pc = op->target;
			else if (rs.lst[lv]->values == NULL)
				r = -EINVAL;
			break;
		case TPL_OP_LNEXT:
			lv = op->src.level;
			if (++rs.item[lv] < rs.lst[lv]->n)
				pc = op->target;
			break;
		}
	}
	if (r != 0) {
		out->len = start;
		out->data[start] = '\0';
	}
	return r;
}

int
tpl_render(const struct tpl *t, const struct tpl_row *row, struct buf *out)
{
	return tpl_render_ex(t, row, NULL, 0, out);
}

/* ---- rendering into a MIME part (tpl.h fast path) ------------------------ */

void
tpl_scratch_init(struct tpl_scratch *sc)
{
	buf_init(&sc->vals);
	buf_init(&sc->segs);
	buf_init(&sc->plan);
}

void
tpl_scratch_fini(struct tpl_scratch *sc)
{
	buf_free(&sc->vals);
	buf_free(&sc->segs);
	buf_free(&sc->plan);
}

/* Append a plan entry to sc->plan. */
static int
tpl_plan_add(struct tpl_scratch *sc, uint32_t x)
{
	return buf_append(&sc->plan, &x, sizeof(x));
}

/*
 * Run the program as tpl_render_ex() does, recording the segments it
 * writes in sc->plan. Values inside lists are rendered and prepared here,
 * their segments appended to sc->segs after the slots'.
 */
static int
tpl_mime_walk(const struct tpl *t, struct tpl_rs *rs,
    const struct tpl_list *lists, struct tpl_scratch *sc, unsigned *flags)
{
	const struct tpl_op	*op;
	struct msg_seg		 sg;
	size_t			 pc = 0, lv, off, nseg;
	int			 r = 0;

	while (pc < t->nops && r == 0) {
		op = &t->ops[pc++];
		switch (op->kind) {
		case TPL_OP_LIT:
			r = tpl_plan_add(sc, op->slot);
			break;
		case TPL_OP_VAR:
			if (op->slot != TPL_NOSLOT) {
				r = tpl_plan_add(sc, op->slot | MSG_PLAN_ALT);
				break;
			}
			/* A list field or loop variable: per item. */
			nseg = sc->segs.len / sizeof(sg);
			off = sc->vals.len;
			if (nseg >= MSG_PLAN_ALT)
				r = -ENOMEM;
			if (r == 0)
				r = tpl_render_var(t, op, rs, &sc->vals);
			if (r == 0)
				r = msg_seg_make(&sc->vals, off,
				    sc->vals.len - off, &sg);
			if (r == 0)
				r = buf_append(&sc->segs, &sg, sizeof(sg));
			if (r == 0)
				r = tpl_plan_add(sc, (uint32_t)nseg |
				    MSG_PLAN_ALT);
			*flags |= sg.flags;
			break;
		case TPL_OP_JF:
			if (!tpl_truthy(rs, &op->src))
				pc = op->target;
			break;
		case TPL_OP_JT:
			if (tpl_truthy(rs, &op->src))
				pc = op->target;
			break;
		case TPL_OP_JMP:
			pc = op->target;
			break;
		case TPL_OP_LBEGIN:
			lv = op->src.level;
			rs->lst[lv] = &lists[op->src.idx];
			rs->item[lv] = 0;
			if (rs->lst[lv]->n == 0)
				pc = op->target;
			else if (rs->lst[lv]->values == NULL)
				r = -EINVAL;
			break;
		case TPL_OP_LNEXT:
			lv = op->src.level;
			if (++rs->item[lv] < rs->lst[lv]->n)
				pc = op->target;
			break;
		}
	}
	return r;
}

int
tpl_render_mime(const struct tpl *t, const struct tpl_row *row,
    const struct tpl_list *lists, size_t nlists, struct tpl_scratch *sc,
    struct buf *out, struct msg_encoded *res)
{
	struct tpl_rs	 rs;
	struct msg_enc	 e;
	struct msg_seg	*slots;
	const uint32_t	*plan;
	size_t		 k, off, nplan, start = out->len;
	unsigned	 flags = t->mflags, sflags = 0, all;
	size_t		 maxslot = 0;
	int		 r, qp, pass, lean;

	if (t->ncols > 0 && (row == NULL || row->n < t->ncols ||
	    row->values == NULL))
		return -EINVAL;
	if (t->nlists > 0 && (lists == NULL || nlists < t->nlists))
		return -EINVAL;
	rs.row = row;
	rs.lists = lists;
	buf_reset(&sc->vals);
	buf_reset(&sc->segs);
	buf_reset(&sc->plan);
	if ((r = buf_reserve(&sc->segs, (t->nslots + 1) *
	    sizeof(*slots))) != 0)
		return r;
	slots = (struct msg_seg *)(void *)sc->segs.data;
	/* Each distinct value once: escaped, then prepared. */
	for (k = 0; k < t->nslots; k++) {
		off = sc->vals.len;
		if ((r = tpl_render_var(t, &t->ops[t->slotop[k]], &rs,
		    &sc->vals)) != 0 ||
		    (r = msg_seg_make(&sc->vals, off, sc->vals.len - off,
		    &slots[k])) != 0)
			return r;
		sflags |= slots[k].flags;
		if (slots[k].raw > maxslot)
			maxslot = slots[k].raw;
	}
	flags |= sflags;
	sc->segs.len = t->nslots * sizeof(*slots);
	if (t->plan != NULL) {
		plan = t->plan;
		nplan = t->nplan;
	} else {
		if ((r = tpl_mime_walk(t, &rs, lists, sc, &flags)) != 0)
			return r;
		plan = (const uint32_t *)(void *)sc->plan.data;
		nplan = sc->plan.len / sizeof(*plan);
	}
	slots = (struct msg_seg *)(void *)sc->segs.data;
	/*
	 * Guess the encoding from what the parts hold; a long line made of
	 * several parts (or an 8-bit value in a branch not taken) costs a
	 * second pass in the other encoding.
	 */
	qp = (flags & (MSG_SEG_8BIT | MSG_SEG_LONG)) != 0;
	/*
	 * The usual case knows every fact in advance: all of a plain
	 * template's literals and values are written, values hold no line
	 * end, and no line can reach 998 octets even if each value on it
	 * were the longest one. Then the encoder need not track them.
	 */
	all = t->mflags | sflags;
	lean = t->plan != NULL && !(sflags & MSG_SEG_EOL) &&
	    !(all & (MSG_SEG_CR1 | MSG_SEG_LONG)) &&
	    t->maxstatic + t->maxvars * maxslot <= 998;
	for (pass = 0; pass < 2; pass++, qp = !qp, lean = 0) {
		msg_enc_begin(&e, out, qp);
		if (lean)
			msg_enc_lean(&e, (all & MSG_SEG_8BIT) |
			    (all & (MSG_SEG_EQ1 | MSG_SEG_US0 |
			    MSG_SEG_EQUS) ? MSG_SEG_EQUS : 0));
		if ((r = msg_enc_plan(&e, t->segs, t->mime.data, slots,
		    sc->vals.data, plan, nplan)) != 0 ||
		    (r = msg_enc_end(&e, res)) <= 0)
			break;
	}
	if (r != 0) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
		return r > 0 ? -EINVAL : r;
	}
	return 0;
}
