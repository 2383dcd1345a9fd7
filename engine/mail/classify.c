/*
 * classify: rule-driven SMTP outcome classification. See classify.h.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "mail/classify.h"
#include "mail/reply.h"

#define CLASSIFY_PAT_MAX	8	/* code=/esc= alternatives per rule */
#define CLASSIFY_RULES_MAX	4096
#define CLASSIFY_FILE_MAX	(1024 * 1024)
#define CLASSIFY_LINE_MAX	4096
#define CLASSIFY_ANY		(-1)

/* Provided by bounce_rules_data.S. */
extern const char classify_rules_data_start[];
extern const char classify_rules_data_end[];

struct classify_esc {
	int	 cls, subj, det;	/* CLASSIFY_ANY matches anything */
};

struct classify_rule {
	enum classify_category cat;
	unsigned	 actions;
	unsigned	 line;
	unsigned	 ncode;
	char		 code[CLASSIFY_PAT_MAX][3];	/* digit or 'x' */
	unsigned	 nesc;
	struct classify_esc esc[CLASSIFY_PAT_MAX];
	bool		 has_re;
	regex_t		 re;
	/*
	 * Prefilter (owns): lower-case literals, NUL-separated, ending with
	 * an empty one; the regex can only match when the text contains at
	 * least one. NULL = always run the regex. Most replies fail most
	 * rules, and strstr() is far cheaper than regexec().
	 */
	char		*lit;
};

struct classify_rules {
	struct classify_rule *v;	/* owns */
	size_t		 n;
	bool		 noprefilter;	/* tests: regexec every rule */
};

#define CLASSIFY_LIT_MIN	3	/* shorter literals filter too little */
#define CLASSIFY_LOWER_MAX	4096	/* longer texts skip the prefilter */

static const char *const classify_names[CLASSIFY__COUNT] = {
	[CLASSIFY_UNKNOWN] = "unknown",
	[CLASSIFY_DELIVERED] = "delivered",
	[CLASSIFY_INVALID_RECIPIENT] = "invalid-recipient",
	[CLASSIFY_INVALID_DOMAIN] = "invalid-domain",
	[CLASSIFY_MAILBOX_FULL] = "mailbox-full",
	[CLASSIFY_MESSAGE_TOO_LARGE] = "message-too-large",
	[CLASSIFY_RATE_LIMITED] = "rate-limited",
	[CLASSIFY_REPUTATION] = "reputation",
	[CLASSIFY_POLICY] = "policy",
	[CLASSIFY_CONTENT_REJECTED] = "content-rejected",
	[CLASSIFY_TRANSIENT] = "transient",
	[CLASSIFY_PROTOCOL] = "protocol",
	[CLASSIFY_COMPLAINT] = "complaint",
};

static const struct {
	const char	*name;
	unsigned	 bit;
} classify_action_names[] = {
	{ "bounce", CLASSIFY_A_BOUNCE },
	{ "defer", CLASSIFY_A_DEFER },
	{ "suppress", CLASSIFY_A_SUPPRESS },
	{ "slow-down", CLASSIFY_A_SLOW_DOWN },
};
#define CLASSIFY_NACTIONS \
	(sizeof(classify_action_names) / sizeof(classify_action_names[0]))

const char *
classify_category_name(enum classify_category c)
{
	if ((unsigned)c >= CLASSIFY__COUNT)
		return "unknown";
	return classify_names[c];
}

int
classify_category_parse(const char *s, size_t len, enum classify_category *out)
{
	for (unsigned i = 0; i < CLASSIFY__COUNT; i++) {
		if (strlen(classify_names[i]) == len &&
		    strncasecmp(classify_names[i], s, len) == 0) {
			*out = (enum classify_category)i;
			return 0;
		}
	}
	return -EINVAL;
}

char *
classify_actions_str(unsigned actions, char *out, size_t outsz)
{
	size_t	 off = 0;

	if (outsz == 0)
		return out;
	out[0] = '\0';
	for (size_t i = 0; i < CLASSIFY_NACTIONS; i++) {
		if (!(actions & classify_action_names[i].bit))
			continue;
		int n = snprintf(out + off, outsz - off, "%s%s",
		    off ? "," : "", classify_action_names[i].name);
		if (n < 0 || (size_t)n >= outsz - off) {
			out[off] = '\0';	/* drop the partial name */
			return out;
		}
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(out, outsz, "none");
	return out;
}

unsigned
classify_action_parse(const char *s, size_t len)
{
	for (size_t i = 0; i < CLASSIFY_NACTIONS; i++) {
		if (strlen(classify_action_names[i].name) == len &&
		    strncasecmp(classify_action_names[i].name, s, len) == 0)
			return classify_action_names[i].bit;
	}
	/* Accept the underscore spelling used in log keys. */
	if (len == 9 && strncasecmp(s, "slow_down", 9) == 0)
		return CLASSIFY_A_SLOW_DOWN;
	return 0;
}

/*
 * Parse "5.1.1" (RFC 3463 2: class "." subject "." detail, subject and
 * detail 1-3 digits) from s[0..len), or a pattern where any component may
 * be '*'. 0 or -EINVAL.
 */
static int
classify_esc_parse(const char *s, size_t len, bool pattern,
    struct classify_esc *out)
{
	int	 comp[3];
	size_t	 i = 0;

	for (int c = 0; c < 3; c++) {
		if (c > 0) {
			if (i >= len || s[i] != '.')
				return -EINVAL;
			i++;
		}
		if (pattern && i < len && s[i] == '*') {
			comp[c] = CLASSIFY_ANY;
			i++;
			continue;
		}
		size_t	 start = i;
		int	 v = 0;
		while (i < len && isdigit((unsigned char)s[i]) && i - start < 3)
			v = v * 10 + (s[i++] - '0');
		if (i == start || (c == 0 && i - start != 1))
			return -EINVAL;
		comp[c] = v;
	}
	if (i != len)
		return -EINVAL;
	if (comp[0] != CLASSIFY_ANY && comp[0] != 2 && comp[0] != 4 &&
	    comp[0] != 5)
		return -EINVAL;
	out->cls = comp[0];
	out->subj = comp[1];
	out->det = comp[2];
	return 0;
}

static bool
classify_esc_match(const struct classify_esc *pat, const struct classify_esc *e)
{
	return (pat->cls == CLASSIFY_ANY || pat->cls == e->cls) &&
	    (pat->subj == CLASSIFY_ANY || pat->subj == e->subj) &&
	    (pat->det == CLASSIFY_ANY || pat->det == e->det);
}

/* code: 3 digits or 0; cls: the effective class (code/100 or esc class). */
static bool
classify_code_match(const char pat[3], int code, int cls)
{
	char	 d[3];

	if (code == 0) {
		/* Only a pure class pattern ("5xx") can match a bare esc. */
		return cls != 0 && pat[0] == (char)('0' + cls) &&
		    pat[1] == 'x' && pat[2] == 'x';
	}
	d[0] = (char)('0' + code / 100 % 10);
	d[1] = (char)('0' + code / 10 % 10);
	d[2] = (char)('0' + code % 10);
	for (int i = 0; i < 3; i++)
		if (pat[i] != 'x' && pat[i] != d[i])
			return false;
	return true;
}

static void
classify_seterr(char *err, size_t errsz, unsigned line, const char *what)
{
	if (errsz > 0)
		snprintf(err, errsz, "line %u: %s", line, what);
}

static bool
classify_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Split a comma list into the rule's code patterns. */
static int
classify_parse_codes(struct classify_rule *r, const char *s, size_t len)
{
	size_t	 i = 0;

	while (i < len) {
		size_t	 j = i;
		while (j < len && s[j] != ',')
			j++;
		if (j - i != 3 || r->ncode >= CLASSIFY_PAT_MAX)
			return -EINVAL;
		for (size_t k = 0; k < 3; k++) {
			char c = (char)tolower((unsigned char)s[i + k]);
			if (!(isdigit((unsigned char)c) || c == 'x'))
				return -EINVAL;
			if (k == 0 && c != '2' && c != '3' && c != '4' &&
			    c != '5')
				return -EINVAL;
			r->code[r->ncode][k] = c;
		}
		r->ncode++;
		i = j + 1;
	}
	return r->ncode ? 0 : -EINVAL;
}

static int
classify_parse_escs(struct classify_rule *r, const char *s, size_t len)
{
	size_t	 i = 0;

	while (i < len) {
		size_t	 j = i;
		while (j < len && s[j] != ',')
			j++;
		if (r->nesc >= CLASSIFY_PAT_MAX ||
		    classify_esc_parse(s + i, j - i, true, &r->esc[r->nesc]))
			return -EINVAL;
		r->nesc++;
		i = j + 1;
	}
	return r->nesc ? 0 : -EINVAL;
}

/*
 * glibc's regcomp copies a subexpression once per repetition it must
 * count and recurses on stacked quantifiers ("a++++"), so a crafted (or
 * mistyped) pattern can take gigabytes. Refuse stacked quantifiers, which
 * POSIX leaves undefined anyway, and keep the product of all interval
 * bounds small. Returns NULL or what is wrong.
 */
static const char *
classify_re_check(const char *re)
{
	unsigned long product = 1;
	bool	 quant = false;	/* previous atom was a quantifier */

	for (const char *p = re; *p; p++) {
		switch (*p) {
		case '\\':
			if (p[1] != '\0')
				p++;
			quant = false;
			break;
		case '[':
			/* Bracket expression: ']' right after '[' or '[^'
			 * is literal; skip "[:class:]" and friends whole. */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '[' && (p[1] == ':' || p[1] == '.' ||
				    p[1] == '=')) {
					char	 close = p[1];
					p += 2;
					while (*p && !(p[0] == close &&
					    p[1] == ']'))
						p++;
					if (*p)
						p++;
				}
				if (*p)
					p++;
			}
			if (*p == '\0')
				return "unterminated [";
			quant = false;
			break;
		case '*':
		case '+':
		case '?':
			if (quant)
				return "stacked quantifiers";
			quant = true;
			break;
		case '{': {
			unsigned long lo = 0, hi;
			if (quant)
				return "stacked quantifiers";
			p++;
			while (*p >= '0' && *p <= '9' && lo < 100000)
				lo = lo * 10 + (unsigned long)(*p++ - '0');
			hi = lo;
			if (*p == ',') {
				p++;
				hi = 0;
				while (*p >= '0' && *p <= '9' && hi < 100000)
					hi = hi * 10 + (unsigned long)(*p++ -
					    '0');
				if (hi < lo)
					hi = lo;
			}
			if (*p != '}')
				return "bad {m,n} interval";
			product *= hi + 1;
			if (product > 1000)
				return "repetition counts too large";
			quant = true;
			break;
		}
		default:
			quant = false;
			break;
		}
		if (*p == '\0')
			break;
	}
	return NULL;
}

struct classify_litbuf {
	char	 run[CLASSIFY_LINE_MAX];	/* literal being read */
	size_t	 rl;
	char	 best[CLASSIFY_LINE_MAX];	/* longest in this branch */
	size_t	 bl;
};

static void
classify_lit_end(struct classify_litbuf *b)
{
	if (b->rl > b->bl) {
		memcpy(b->best, b->run, b->rl);
		b->bl = b->rl;
	}
	b->rl = 0;
}

/* Skip a bracket expression starting at p ('['); returns its last char. */
static const char *
classify_skip_bracket(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	while (*p && *p != ']') {
		if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			char	 close = p[1];
			p += 2;
			while (*p && !(p[0] == close && p[1] == ']'))
				p++;
			if (*p)
				p++;
		}
		if (*p)
			p++;
	}
	return *p ? p : p - 1;
}

/*
 * Build the prefilter of a regex: for each top-level alternative, the
 * longest run of literal characters that every match must contain.
 * Returns a malloc'd literal list (see struct classify_rule) or NULL when
 * some alternative has no usable literal (or on ENOMEM: the prefilter is
 * only an optimisation).
 */
static char *
classify_re_literals(const char *re)
{
	struct classify_litbuf *b;
	char	*out = NULL;
	size_t	 olen = 0;
	const char *p;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if ((out = malloc(strlen(re) + 2)) == NULL)
		goto none;
	for (p = re;; p++) {
		char	 c = *p;

		if (c == '\0' || c == '|') {
			classify_lit_end(b);
			if (b->bl < CLASSIFY_LIT_MIN)
				goto none;
			memcpy(out + olen, b->best, b->bl);
			olen += b->bl;
			out[olen++] = '\0';
			b->bl = 0;
			if (c == '\0')
				break;
			continue;
		}
		switch (c) {
		case '\\':
			if (p[1] == '\0' || isalnum((unsigned char)p[1]) ||
			    (unsigned char)p[1] >= 0x80) {
				classify_lit_end(b);	/* \w, \b, ... */
				if (p[1] != '\0')
					p++;
				break;
			}
			p++;
			b->run[b->rl++] = (char)tolower((unsigned char)*p);
			break;
		case '[':
			classify_lit_end(b);
			p = classify_skip_bracket(p);
			break;
		case '(': {
			int	 depth = 1;
			classify_lit_end(b);
			for (p++; *p && depth > 0; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '[')
					p = classify_skip_bracket(p);
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
			}
			p--;		/* at ')' (or the NUL's predecessor) */
			if (*p != ')')
				goto none;
			break;
		}
		case '*':
		case '?':
		case '{':
			/* The atom before may be absent: drop it. */
			if (b->rl > 0)
				b->rl--;
			classify_lit_end(b);
			if (c == '{')
				while (p[1] && *p != '}')
					p++;
			break;
		case '+':
		case '.':
		case '^':
		case '$':
		case ')':
			classify_lit_end(b);
			if (c == ')')
				goto none;	/* unbalanced: be safe */
			break;
		default:
			if ((unsigned char)c >= 0x80)
				goto none;	/* case folding beyond ASCII */
			b->run[b->rl++] = (char)tolower((unsigned char)c);
			break;
		}
	}
	out[olen] = '\0';
	free(b);
	return out;
none:
	free(out);
	free(b);
	return NULL;
}

/*
 * Parse one non-blank line into *r. Returns 1 when the line holds a rule,
 * 0 for a blank/comment line, -EINVAL with err set otherwise.
 */
static int
classify_parse_line(struct classify_rule *r, const char *s, size_t len,
    unsigned lineno, char *err, size_t errsz)
{
	char	 re[CLASSIFY_LINE_MAX];
	size_t	 i = 0, ntok = 0;
	int	 rc;

	memset(r, 0, sizeof(*r));
	r->line = lineno;
	for (;;) {
		while (i < len && classify_isspace(s[i]))
			i++;
		if (i >= len || s[i] == '#')
			break;
		size_t	 start = i;
		if (s[i] == '/') {
			/* The regex runs to the last '/' on the line. */
			size_t	 end = len;
			while (end > start + 1 && s[end - 1] != '/')
				end--;
			if (end <= start + 1 || ntok < 2) {
				classify_seterr(err, errsz, lineno,
				    ntok < 2 ? "regex before category/action"
					     : "unterminated /regex/");
				return -EINVAL;
			}
			/* Unescape "\/" so a regex can contain a slash. */
			size_t	 o = 0;
			for (size_t k = start + 1; k < end - 1; k++) {
				if (s[k] == '\\' && k + 1 < end - 1 &&
				    s[k + 1] == '/')
					k++;
				if (o + 1 >= sizeof(re))
					break;
				re[o++] = s[k];
			}
			re[o] = '\0';
			i = end;
			/* Flags (only "i", implied anyway), then a comment. */
			while (i < len && isalpha((unsigned char)s[i]))
				i++;
			while (i < len && classify_isspace(s[i]))
				i++;
			if (i < len && s[i] != '#') {
				classify_seterr(err, errsz, lineno,
				    "text after /regex/");
				return -EINVAL;
			}
			if (r->has_re) {
				classify_seterr(err, errsz, lineno,
				    "two regexes");
				return -EINVAL;
			}
			const char *bad = classify_re_check(re);
			if (bad != NULL) {
				classify_seterr(err, errsz, lineno, bad);
				return -EINVAL;
			}
			if ((rc = regcomp(&r->re, re,
			    REG_EXTENDED | REG_ICASE | REG_NOSUB)) != 0) {
				char	 msg[128];
				regerror(rc, NULL, msg, sizeof(msg));
				classify_seterr(err, errsz, lineno, msg);
				return -EINVAL;
			}
			r->has_re = true;
			r->lit = classify_re_literals(re);
			break;
		}
		while (i < len && !classify_isspace(s[i]))
			i++;
		const char *tok = s + start;
		size_t	 tlen = i - start;
		if (ntok == 0) {
			if (classify_category_parse(tok, tlen, &r->cat)) {
				classify_seterr(err, errsz, lineno,
				    "unknown category");
				return -EINVAL;
			}
		} else if (ntok == 1) {
			if (!(tlen == 4 && strncmp(tok, "none", 4) == 0)) {
				size_t	 k = 0;
				while (k < tlen) {
					size_t	 j = k;
					while (j < tlen && tok[j] != ',')
						j++;
					unsigned a = classify_action_parse(
					    tok + k, j - k);
					if (a == 0) {
						classify_seterr(err, errsz,
						    lineno, "unknown action");
						return -EINVAL;
					}
					r->actions |= a;
					k = j + 1;
				}
			}
		} else if (tlen > 5 && strncmp(tok, "code=", 5) == 0) {
			if (classify_parse_codes(r, tok + 5, tlen - 5)) {
				classify_seterr(err, errsz, lineno,
				    "bad code= (want 550, 5xx, 55x,...)");
				goto fail;
			}
		} else if (tlen > 4 && strncmp(tok, "esc=", 4) == 0) {
			if (classify_parse_escs(r, tok + 4, tlen - 4)) {
				classify_seterr(err, errsz, lineno,
				    "bad esc= (want 5.1.1, 5.1.*,...)");
				goto fail;
			}
		} else {
			classify_seterr(err, errsz, lineno, "unknown field");
			goto fail;
		}
		ntok++;
	}
	if (ntok == 0)
		return 0;
	if (ntok < 2) {
		classify_seterr(err, errsz, lineno, "missing action");
		goto fail;
	}
	return 1;
fail:
	if (r->has_re)
		regfree(&r->re);
	free(r->lit);
	return -EINVAL;
}

static void
classify_rule_fini(struct classify_rule *r)
{
	if (r->has_re)
		regfree(&r->re);
	free(r->lit);
}

void
classify_rules_free(struct classify_rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		classify_rule_fini(&r->v[i]);
	free(r->v);
	free(r);
}

struct classify_rules *
classify_rules_parse(const char *data, size_t len, char *err, size_t errsz)
{
	struct classify_rules *r;
	size_t	 cap = 0, off = 0;
	unsigned lineno = 0;

	if (errsz > 0)
		err[0] = '\0';
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		off = 3;	/* UTF-8 BOM from a Windows editor */
	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t	 llen = nl ? (size_t)(nl - (data + off)) : len - off;
		struct classify_rule rule;
		int	 rc;

		lineno++;
		if (llen >= CLASSIFY_LINE_MAX) {
			classify_seterr(err, errsz, lineno, "line too long");
			goto fail;
		}
		if (memchr(data + off, '\0', llen) != NULL) {
			classify_seterr(err, errsz, lineno, "NUL byte");
			goto fail;
		}
		rc = classify_parse_line(&rule, data + off, llen, lineno, err,
		    errsz);
		off += llen + (nl != NULL);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			continue;
		if (r->n == cap) {
			struct classify_rule *nv;
			if (cap >= CLASSIFY_RULES_MAX) {
				classify_seterr(err, errsz, lineno,
				    "too many rules");
				classify_rule_fini(&rule);
				goto fail;
			}
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(r->v, cap * sizeof(*nv))) == NULL) {
				classify_rule_fini(&rule);
				goto fail;
			}
			r->v = nv;
		}
		r->v[r->n++] = rule;
	}
	return r;
fail:
	classify_rules_free(r);
	return NULL;
}

struct classify_rules *
classify_rules_load(const char *path, char *err, size_t errsz)
{
	struct classify_rules *r;
	FILE	*f;
	char	*data;
	size_t	 n;

	if ((f = fopen(path, "re")) == NULL) {
		if (errsz > 0)
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((data = malloc(CLASSIFY_FILE_MAX + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(data, 1, CLASSIFY_FILE_MAX + 1, f);
	if (ferror(f) || n > CLASSIFY_FILE_MAX) {
		if (errsz > 0)
			snprintf(err, errsz, "%s: %s", path,
			    ferror(f) ? "read error" : "file too large");
		fclose(f);
		free(data);
		return NULL;
	}
	fclose(f);
	r = classify_rules_parse(data, n, err, errsz);
	free(data);
	return r;
}

void
classify_rules_set_prefilter(struct classify_rules *r, bool on)
{
	r->noprefilter = !on;
}

size_t
classify_rules_count(const struct classify_rules *r)
{
	return r ? r->n : 0;
}

static struct classify_rules *classify_builtin;
static const struct classify_rules *classify_active;
static pthread_once_t classify_once = PTHREAD_ONCE_INIT;

static void
classify_builtin_init(void)
{
	char	 err[256];
	/* Two symbols, one object: subtract addresses, not pointers. */
	size_t	 len = (size_t)((uintptr_t)classify_rules_data_end -
	    (uintptr_t)classify_rules_data_start);

	classify_builtin = classify_rules_parse(classify_rules_data_start, len,
	    err, sizeof(err));
	if (classify_builtin == NULL)
		log_fatalx("classify: built-in bounce-rules.txt: %s",
		    err[0] ? err : "out of memory");
}

const struct classify_rules *
classify_rules_builtin(void)
{
	pthread_once(&classify_once, classify_builtin_init);
	return classify_builtin;
}

void
classify_set_rules(const struct classify_rules *r)
{
	classify_active = r;
}

static unsigned
classify_unit(const char *s, size_t *used)
{
	static const struct {
		const char	*w;
		unsigned	 mul;
	} units[] = {
		{ "seconds", 1 }, { "second", 1 }, { "secs", 1 },
		{ "sec", 1 }, { "s", 1 },
		{ "minutes", 60 }, { "minute", 60 }, { "mins", 60 },
		{ "min", 60 }, { "m", 60 },
		{ "hours", 3600 }, { "hour", 3600 }, { "hrs", 3600 },
		{ "hr", 3600 }, { "h", 3600 },
	};
	size_t	 n = 0;

	while (isalpha((unsigned char)s[n]))
		n++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strlen(units[i].w) == n &&
		    strncasecmp(s, units[i].w, n) == 0) {
			*used = n;
			return units[i].mul;
		}
	}
	return 0;
}

/* Does the window before a number say this is about retrying? */
static bool
classify_retry_context(const char *text, size_t pos)
{
	static const char *const cues[] = {
		"retry", "try ", "wait", "again", "later", "defer", "after",
		"back off", "delay",
	};
	char	 win[64];
	size_t	 start = pos > sizeof(win) - 1 ? pos - (sizeof(win) - 1) : 0;
	size_t	 n = pos - start;

	for (size_t i = 0; i < n; i++)
		win[i] = (char)tolower((unsigned char)text[start + i]);
	win[n] = '\0';
	for (size_t i = 0; i < sizeof(cues) / sizeof(cues[0]); i++)
		if (strstr(win, cues[i]) != NULL)
			return true;
	return false;
}

unsigned
classify_retry_hint(const char *text)
{
	if (text == NULL)
		return 0;
	for (size_t i = 0; text[i] != '\0'; i++) {
		if (!isdigit((unsigned char)text[i]) ||
		    (i > 0 && (isalnum((unsigned char)text[i - 1]) ||
		    text[i - 1] == '.')))
			continue;
		uint64_t v = 0;
		size_t	 j = i;
		while (isdigit((unsigned char)text[j])) {
			if (v < UINT32_MAX)
				v = v * 10 + (uint64_t)(text[j] - '0');
			j++;
		}
		size_t	 k = j, used = 0;
		while (text[k] == ' ')
			k++;
		unsigned mul = classify_unit(text + k, &used);
		if (mul == 0 || !classify_retry_context(text, i)) {
			i = j - 1;
			continue;
		}
		v *= mul;
		if (v == 0)
			return 0;
		return v > CLASSIFY_RETRY_MAX_S ? CLASSIFY_RETRY_MAX_S
						: (unsigned)v;
	}
	return 0;
}

/*
 * Used when no rule matches: RFC 3463 subject/detail first (the most
 * specific signal), then the basic reply code (RFC 5321 4.2.2/4.2.3).
 */
static void
classify_fallback(int code, const struct classify_esc *e, int cls,
    struct classify_result *out)
{
	enum classify_category c = CLASSIFY_UNKNOWN;
	unsigned a = 0;

	if (e != NULL && e->cls != 2) {
		switch (e->subj) {
		case 1:		/* addressing status */
			/* 5.1.2 bad domain, 5.1.10 null MX (RFC 7505) */
			if (e->det == 2 || e->det == 10)
				c = CLASSIFY_INVALID_DOMAIN;
			else if (e->det == 7 || e->det == 8)	/* sender */
				c = CLASSIFY_POLICY;
			else
				c = CLASSIFY_INVALID_RECIPIENT;
			break;
		case 2:		/* mailbox status */
			if (e->det == 2)
				c = CLASSIFY_MAILBOX_FULL;
			else if (e->det == 3)
				c = CLASSIFY_MESSAGE_TOO_LARGE;
			else if (e->det == 1)
				c = CLASSIFY_INVALID_RECIPIENT;
			break;
		case 3:		/* mail system status */
			if (e->det == 4)
				c = CLASSIFY_MESSAGE_TOO_LARGE;
			else if (e->cls == 4)
				c = CLASSIFY_TRANSIENT;
			break;
		case 4:		/* network and routing */
			if (e->det == 4 && e->cls == 5)	/* unable to route */
				c = CLASSIFY_INVALID_DOMAIN;
			else
				c = CLASSIFY_TRANSIENT;
			break;
		case 5:		/* mail delivery protocol */
			c = CLASSIFY_PROTOCOL;
			break;
		case 6:		/* message content or media */
			c = CLASSIFY_CONTENT_REJECTED;
			break;
		case 7:		/* security or policy */
			if (e->cls == 4)
				c = CLASSIFY_RATE_LIMITED;
			else
				c = CLASSIFY_POLICY;
			break;
		}
	}
	if (c == CLASSIFY_UNKNOWN && code != 0) {
		switch (code) {
		case 421:
			c = CLASSIFY_TRANSIENT;
			a = CLASSIFY_A_SLOW_DOWN;
			break;
		case 500: case 501: case 502: case 503: case 504: case 555:
			c = CLASSIFY_PROTOCOL;
			break;
		case 551: case 553:
			c = CLASSIFY_INVALID_RECIPIENT;
			break;
		case 552:
			c = CLASSIFY_MAILBOX_FULL;
			break;
		default:
			if (cls == 4)
				c = CLASSIFY_TRANSIENT;
			break;
		}
	} else if (c == CLASSIFY_UNKNOWN && cls == 4) {
		c = CLASSIFY_TRANSIENT;
	}
	switch (c) {
	case CLASSIFY_INVALID_RECIPIENT:
	case CLASSIFY_INVALID_DOMAIN:
		a |= CLASSIFY_A_BOUNCE | CLASSIFY_A_SUPPRESS;
		break;
	case CLASSIFY_RATE_LIMITED:
		a |= CLASSIFY_A_DEFER | CLASSIFY_A_SLOW_DOWN;
		break;
	case CLASSIFY_REPUTATION:
		a |= CLASSIFY_A_BOUNCE | CLASSIFY_A_SLOW_DOWN;
		break;
	case CLASSIFY_TRANSIENT:
		a |= CLASSIFY_A_DEFER;
		break;
	case CLASSIFY_UNKNOWN:
	case CLASSIFY_DELIVERED:
	case CLASSIFY_MAILBOX_FULL:
	case CLASSIFY_MESSAGE_TOO_LARGE:
	case CLASSIFY_POLICY:
	case CLASSIFY_CONTENT_REJECTED:
	case CLASSIFY_PROTOCOL:
	case CLASSIFY_COMPLAINT:
	case CLASSIFY__COUNT:
		if (cls == 5)
			a |= CLASSIFY_A_BOUNCE;
		else if (cls == 4)
			a |= CLASSIFY_A_DEFER;
		break;
	}
	out->category = c;
	out->actions = a;
	out->rule_line = 0;
}

void
classify_reply_rules(const struct classify_rules *r, int code, const char *esc,
    const char *text, struct classify_result *out)
{
	struct classify_esc e;
	bool	 have_esc = false;
	int	 cls = 0;

	if (r == NULL)
		r = classify_rules_builtin();
	memset(out, 0, sizeof(*out));
	if (code < 200 || code > 599)
		code = 0;
	if (esc != NULL && esc[0] != '\0' &&
	    classify_esc_parse(esc, strlen(esc), false, &e) == 0)
		have_esc = true;
	cls = code ? code / 100 : (have_esc ? e.cls : 0);
	if (cls == 2 || cls == 3) {
		out->category = CLASSIFY_DELIVERED;
		return;
	}
	if (text == NULL)
		text = "";
	/* One lower-case copy for the literal prefilters. */
	char	 lower[CLASSIFY_LOWER_MAX];
	bool	 prefilter = !r->noprefilter;
	for (size_t i = 0; prefilter; i++) {
		if (i == sizeof(lower)) {
			prefilter = false;	/* too long: regexec all */
			break;
		}
		lower[i] = (char)tolower((unsigned char)text[i]);
		if (text[i] == '\0')
			break;
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct classify_rule *ru = &r->v[i];
		bool	 ok;
		unsigned k;

		if (ru->ncode) {
			for (ok = false, k = 0; k < ru->ncode && !ok; k++)
				ok = classify_code_match(ru->code[k], code,
				    cls);
			if (!ok)
				continue;
		}
		if (ru->nesc) {
			if (!have_esc)
				continue;
			for (ok = false, k = 0; k < ru->nesc && !ok; k++)
				ok = classify_esc_match(&ru->esc[k], &e);
			if (!ok)
				continue;
		}
		if (ru->lit != NULL && prefilter) {
			const char *l = ru->lit;
			while (*l != '\0' && strstr(lower, l) == NULL)
				l += strlen(l) + 1;
			if (*l == '\0')
				continue;	/* no literal: cannot match */
		}
		if (ru->has_re && regexec(&ru->re, text, 0, NULL, 0) != 0)
			continue;
		out->category = ru->cat;
		out->actions = ru->actions;
		out->rule_line = ru->line;
		goto done;
	}
	classify_fallback(code, have_esc ? &e : NULL, cls, out);
done:
	if (cls == 4 && (out->actions & (CLASSIFY_A_BOUNCE |
	    CLASSIFY_A_SUPPRESS))) {
		/* A 4xx is transient by definition: retry, never drop. */
		out->actions &= ~(CLASSIFY_A_BOUNCE | CLASSIFY_A_SUPPRESS);
		out->actions |= CLASSIFY_A_DEFER;
	}
	if (cls == 5 && (out->actions & CLASSIFY_A_DEFER) &&
	    out->category != CLASSIFY_RATE_LIMITED) {
		/*
		 * A 5xx is permanent (RFC 5321 4.2.1): retrying the same
		 * transaction will not help, whatever the text says. Only
		 * throttling sent as 5xx ("550 too many connections") is
		 * worth another try.
		 */
		out->actions &= ~CLASSIFY_A_DEFER;
		out->actions |= CLASSIFY_A_BOUNCE;
	}
	if (cls == 4 || (out->actions & CLASSIFY_A_DEFER))
		out->retry_after_s = classify_retry_hint(text);
}

void
classify_from_reply(const struct reply *rp, struct classify_result *out)
{
	classify_reply(rp->code, rp->esc, rp->text, out);
}

void
classify_reply(int code, const char *esc, const char *text,
    struct classify_result *out)
{
	classify_reply_rules(classify_active, code, esc, text, out);
}
