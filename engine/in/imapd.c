/* imapd: sans-I/O IMAP4rev1 session. See imapd.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "lib/buf.h"
#include "lib/log.h"

#include "in/auth.h"
#include "in/imapd.h"
#include "in/maildir.h"
#include "in/mime.h"

/* Consecutive BAD/NO answers before we hang up on the client. */
#define IMAPD_MAX_ERRORS	50
#define IMAPD_TAG_MAX		64
#define IMAPD_FETCH_ITEMS_MAX	32
#define IMAPD_FIELDS_MAX	32
#define IMAPD_FIELD_LEN		78
#define IMAPD_PARTS_MAX		MIME_DEPTH_MAX
#define IMAPD_SEARCH_DEPTH	32
#define IMAPD_SET_MAX		4096

enum imapd_state {
	IMAPD_NOTAUTH,
	IMAPD_AUTH,
	IMAPD_SELECTED,
	IMAPD_LOGOUT,
};

struct imapd_range {
	uint32_t	 lo, hi;	/* 0 = '*' */
};

struct imapd_set {
	struct imapd_range	 r[IMAPD_SET_MAX];
	size_t			 n;
};

enum imapd_fi_kind {
	IMAPD_FI_FLAGS,
	IMAPD_FI_UID,
	IMAPD_FI_SIZE,
	IMAPD_FI_INTERNALDATE,
	IMAPD_FI_ENVELOPE,
	IMAPD_FI_BODYSTRUCTURE,
	IMAPD_FI_BODY,		/* non-extensible BODYSTRUCTURE */
	IMAPD_FI_SECTION,	/* BODY[...] / BODY.PEEK[...] */
	IMAPD_FI_RFC822,
	IMAPD_FI_RFC822_HEADER,
	IMAPD_FI_RFC822_TEXT,
};

enum imapd_sec {
	IMAPD_SEC_ALL,		/* [] or [1.2] */
	IMAPD_SEC_HEADER,
	IMAPD_SEC_FIELDS,
	IMAPD_SEC_FIELDS_NOT,
	IMAPD_SEC_TEXT,
	IMAPD_SEC_MIME,
};

struct imapd_fitem {
	enum imapd_fi_kind	 kind;
	bool			 peek;
	enum imapd_sec		 sec;
	uint32_t		 part[IMAPD_PARTS_MAX];
	size_t			 npart;
	char			 field[IMAPD_FIELDS_MAX][IMAPD_FIELD_LEN + 1];
	size_t			 nfield;
	bool			 partial;
	uint32_t		 pstart, pcount;
};

struct imapd_session {
	struct insess_conf	 conf;		/* copy; pointers borrowed */
	char			 peer[64];
	enum imapd_state	 state;
	bool			 tls_active;
	struct buf		 in;		/* owns: the command so far */
	struct buf		 pend;		/* owns: held back by a delay */
	size_t			 line_off;	/* current line in in */
	size_t			 lit_left;	/* literal bytes still due */
	bool			 discarding;	/* dropping an over-long line */
	char			 bad_tag[IMAPD_TAG_MAX + 1];
	bool			 cont_auth;	/* AUTHENTICATE continuation */
	bool			 idling;
	char			 tag[IMAPD_TAG_MAX + 1];	/* current */
	char			 saved_tag[IMAPD_TAG_MAX + 1];	/* IDLE/AUTH */
	char			 user[AUTH_USER_MAX + 1];
	char			 home[MAILDIR_PATH_MAX];	/* root/user */
	struct maildir_box	*box;		/* owns: selected mailbox */
	bool			 readonly;
	size_t			 nknown;	/* messages the client knows */
	unsigned		 ncmd;
	unsigned		 nerr;
	struct buf		 msg;		/* owns: cached message text */
	uint32_t		 msg_uid;	/* uid in msg, 0 = none */
	struct mime_tree	*tree;		/* owns: msg's structure */
	bool			 tree_ok;
	struct buf		 a1, a2;	/* owns: string scratch */
	struct imapd_set	*set;		/* owns: scratch */
	struct imapd_fitem	*items;		/* owns: scratch */
	bool			 fetch_active;	/* a FETCH awaits INSESS_MORE */
	bool			 fetch_uid;
	int			 fetch_n;	/* items in use */
	size_t			 fetch_next;	/* next message index */
};

struct imapd_p {
	const char	*p;
	const char	*end;
};

static const char imapd_month[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* ---- session lifecycle ------------------------------------------------- */

struct imapd_session *
imapd_session_new(const struct insess_conf *conf)
{
	struct imapd_session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->tree = malloc(sizeof(*s->tree))) == NULL ||
	    (s->set = malloc(sizeof(*s->set))) == NULL ||
	    (s->items = calloc(IMAPD_FETCH_ITEMS_MAX,
	    sizeof(*s->items))) == NULL) {
		free(s->tree);
		free(s->set);
		free(s);
		return NULL;
	}
	s->conf = *conf;
	snprintf(s->peer, sizeof(s->peer), "%s",
	    conf->peer ? conf->peer : "");
	s->conf.peer = s->peer;
	if (s->conf.max_commands == 0)
		s->conf.max_commands = INSESS_MAX_COMMANDS;
	s->tls_active = conf->tls_active;
	buf_init(&s->in);
	buf_init(&s->pend);
	buf_init(&s->msg);
	buf_init(&s->a1);
	buf_init(&s->a2);
	return s;
}

void
imapd_session_free(struct imapd_session *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s->in.data, s->in.cap);
	buf_free(&s->in);
	buf_free(&s->pend);
	buf_free(&s->msg);
	buf_free(&s->a1);
	buf_free(&s->a2);
	maildir_box_free(s->box);
	free(s->tree);
	free(s->set);
	free(s->items);
	free(s);
}

static bool
imapd_secure(const struct imapd_session *s)
{
	return s->tls_active || s->conf.loopback;
}

static void
imapd_put_caps(struct imapd_session *s, struct buf *out)
{
	buf_puts(out, "IMAP4rev1 LITERAL+ SASL-IR IDLE UNSELECT ID");
	if (s->state == IMAPD_NOTAUTH) {
		if (s->conf.tls_available && !s->tls_active)
			buf_puts(out, " STARTTLS");
		/* RFC 3501 6.2.3 / RFC 2595 3.2: no plaintext logins. */
		if (imapd_secure(s))
			buf_puts(out, " AUTH=PLAIN");
		else
			buf_puts(out, " LOGINDISABLED");
	}
}

void
imapd_session_greeting(struct imapd_session *s, struct buf *out)
{
	buf_puts(out, "* OK [CAPABILITY ");
	imapd_put_caps(s, out);
	buf_puts(out, "] ringmail IMAP4rev1 ready\r\n");
}

void
imapd_session_tls_started(struct imapd_session *s)
{
	s->tls_active = true;
	buf_reset(&s->in);
	buf_reset(&s->pend);
	s->line_off = 0;
	s->lit_left = 0;
	s->discarding = false;
}

/* ---- output helpers ---------------------------------------------------- */

static void
imapd_tagged(struct imapd_session *s, struct buf *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
imapd_tagged(struct imapd_session *s, struct buf *out, const char *fmt, ...)
{
	va_list	 ap;

	buf_puts(out, s->tag);
	buf_putc(out, ' ');
	va_start(ap, fmt);
	buf_vprintf(out, fmt, ap);
	va_end(ap);
	buf_puts(out, "\r\n");
	if (strncmp(fmt, "OK", 2) == 0)
		s->nerr = 0;
	else
		s->nerr++;
}

/* A string as quoted or, when it must be, as a literal. */
static void
imapd_put_string(struct buf *out, const char *p, size_t n)
{
	bool	 lit = n > 1024;

	for (size_t i = 0; i < n && !lit; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			lit = true;
	}
	if (lit) {
		buf_printf(out, "{%zu}\r\n", n);
		buf_append(out, p, n);
		return;
	}
	buf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			buf_putc(out, '\\');
		buf_putc(out, p[i]);
	}
	buf_putc(out, '"');
}

static void
imapd_put_cstr(struct buf *out, const char *s)
{
	imapd_put_string(out, s, strlen(s));
}

static void
imapd_put_upper(struct buf *out, const char *s)
{
	buf_putc(out, '"');
	for (; *s != '\0'; s++)
		buf_putc(out, (char)toupper((unsigned char)*s));
	buf_putc(out, '"');
}

static void
imapd_put_flags(struct buf *out, const struct maildir_msg *m)
{
	bool	 sp = false;

	buf_putc(out, '(');
#define IMAPD_FLAG(cond, name) do {					\
	if (cond) {							\
		if (sp)							\
			buf_putc(out, ' ');				\
		buf_puts(out, name);					\
		sp = true;						\
	}								\
} while (0)
	IMAPD_FLAG(m->flags & MAILDIR_F_SEEN, "\\Seen");
	IMAPD_FLAG(m->flags & MAILDIR_F_ANSWERED, "\\Answered");
	IMAPD_FLAG(m->flags & MAILDIR_F_FLAGGED, "\\Flagged");
	IMAPD_FLAG(m->flags & MAILDIR_F_DELETED, "\\Deleted");
	IMAPD_FLAG(m->flags & MAILDIR_F_DRAFT, "\\Draft");
	IMAPD_FLAG(m->recent, "\\Recent");
#undef IMAPD_FLAG
	buf_putc(out, ')');
}

/* ---- parser ------------------------------------------------------------ */

static bool
imapd_atom_char(char c)
{
	unsigned char	 u = (unsigned char)c;

	return u > 0x20 && u < 0x7f && strchr("(){ %*\"\\]", u) == NULL;
}

static bool
imapd_p_eol(const struct imapd_p *P)
{
	return P->p >= P->end;
}

static bool
imapd_p_sp(struct imapd_p *P)
{
	if (P->p < P->end && *P->p == ' ') {
		P->p++;
		return true;
	}
	return false;
}

static bool
imapd_p_char(struct imapd_p *P, char c)
{
	if (P->p < P->end && *P->p == c) {
		P->p++;
		return true;
	}
	return false;
}

/* An atom into out (NUL-terminated). false if empty or too long. */
static bool
imapd_p_atom(struct imapd_p *P, char *out, size_t cap)
{
	size_t	 n = 0;

	while (P->p < P->end && imapd_atom_char(*P->p)) {
		if (n + 1 >= cap)
			return false;
		out[n++] = *P->p++;
	}
	out[n] = '\0';
	return n > 0;
}

/* quoted / literal into out (reset first). */
static bool
imapd_p_string(struct imapd_p *P, struct buf *out)
{
	buf_reset(out);
	if (imapd_p_char(P, '"')) {
		while (P->p < P->end && *P->p != '"') {
			char c = *P->p++;

			if (c == '\r' || c == '\n' || c == '\0')
				return false;
			if (c == '\\') {
				if (P->p >= P->end ||
				    (*P->p != '"' && *P->p != '\\'))
					return false;
				c = *P->p++;
			}
			buf_putc(out, c);
		}
		if (out->data == NULL)
			buf_puts(out, "");
		return imapd_p_char(P, '"');
	}
	if (imapd_p_char(P, '{')) {
		uint64_t	 n = 0;
		bool		 digit = false;

		while (P->p < P->end && *P->p >= '0' && *P->p <= '9') {
			n = n * 10 + (uint64_t)(*P->p++ - '0');
			digit = true;
			if (n > IMAPD_LITERAL_MAX)
				return false;
		}
		(void)imapd_p_char(P, '+');
		if (!digit || !imapd_p_char(P, '}'))
			return false;
		(void)imapd_p_char(P, '\r');
		if (!imapd_p_char(P, '\n') || (uint64_t)(P->end - P->p) < n)
			return false;
		buf_append(out, P->p, (size_t)n);
		P->p += n;
		if (out->data == NULL)
			buf_puts(out, "");
		return true;
	}
	return false;
}

/* astring (atom chars plus ']') or, with list, list-mailbox chars too. */
static bool
imapd_p_astring_x(struct imapd_p *P, struct buf *out, bool list)
{
	if (P->p < P->end && (*P->p == '"' || *P->p == '{'))
		return imapd_p_string(P, out);
	buf_reset(out);
	while (P->p < P->end && (imapd_atom_char(*P->p) || *P->p == ']' ||
	    (list && (*P->p == '%' || *P->p == '*'))))
		buf_putc(out, *P->p++);
	return out->len > 0;
}

static bool
imapd_p_astring(struct imapd_p *P, struct buf *out)
{
	return imapd_p_astring_x(P, out, false);
}

/* A string usable as a C string: no NUL inside. */
static bool
imapd_cstr_ok(const struct buf *b)
{
	return b->data != NULL && strlen(b->data) == b->len;
}

static bool
imapd_p_number(struct imapd_p *P, uint32_t *v)
{
	uint64_t	 n = 0;
	bool		 digit = false;

	while (P->p < P->end && *P->p >= '0' && *P->p <= '9') {
		n = n * 10 + (uint64_t)(*P->p++ - '0');
		if (n > UINT32_MAX)
			return false;
		digit = true;
	}
	*v = (uint32_t)n;
	return digit;
}

static bool
imapd_p_seqnum(struct imapd_p *P, uint32_t *v)
{
	if (imapd_p_char(P, '*')) {
		*v = 0;
		return true;
	}
	return imapd_p_number(P, v) && *v != 0;
}

static bool
imapd_p_set(struct imapd_p *P, struct imapd_set *set)
{
	set->n = 0;
	do {
		struct imapd_range	 r;

		if (!imapd_p_seqnum(P, &r.lo))
			return false;
		r.hi = r.lo;
		if (imapd_p_char(P, ':') && !imapd_p_seqnum(P, &r.hi))
			return false;
		if (set->n >= IMAPD_SET_MAX)
			return false;
		set->r[set->n++] = r;
	} while (imapd_p_char(P, ','));
	return true;
}

static bool
imapd_set_has(const struct imapd_set *set, uint32_t v, uint32_t star)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo ? set->r[i].lo : star;
		uint32_t hi = set->r[i].hi ? set->r[i].hi : star;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (v >= lo && v <= hi)
			return true;
	}
	return false;
}

/* Does message i (0-based) fall in set, by UID or sequence number? */
static bool
imapd_in_set(const struct imapd_session *s, const struct imapd_set *set,
    size_t i, bool uid)
{
	if (uid) {
		uint32_t star = s->nknown ? s->box->msgs[s->nknown - 1].uid : 0;

		return imapd_set_has(set, s->box->msgs[i].uid, star);
	}
	return imapd_set_has(set, (uint32_t)(i + 1), (uint32_t)s->nknown);
}

/* ---- messages ---------------------------------------------------------- */

/* Load message i into s->msg (cached by UID). 0 or -errno. */
static int
imapd_load(struct imapd_session *s, size_t i)
{
	int	 r;

	if (s->msg_uid == s->box->msgs[i].uid && s->msg_uid != 0)
		return 0;
	buf_reset(&s->msg);
	s->msg_uid = 0;
	s->tree_ok = false;
	if ((r = maildir_msg_read(s->box, i, &s->msg)) != 0)
		return r;
	if (s->msg.data == NULL)
		buf_puts(&s->msg, "");
	s->msg_uid = s->box->msgs[i].uid;
	return 0;
}

static struct mime_tree *
imapd_tree(struct imapd_session *s)
{
	if (!s->tree_ok) {
		mime_parse(s->tree, s->msg.data, s->msg.len);
		s->tree_ok = true;
	}
	return s->tree;
}

static void
imapd_put_date(struct buf *out, int64_t t)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	gmtime_r(&tt, &tm);
	buf_printf(out, "\"%2d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
	    imapd_month[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

/* nstring of a header field of the header block [h, h + n). */
static void
imapd_put_hfield(struct buf *out, const char *h, size_t n, const char *name)
{
	struct buf	 v;

	buf_init(&v);
	if (mime_header_get(h, n, name, &v) == 0)
		imapd_put_string(out, v.data ? v.data : "", v.len);
	else
		buf_puts(out, "NIL");
	buf_free(&v);
}

static void
imapd_trim(const char **s, const char **e)
{
	while (*s < *e && isspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

/* One address item [s, e) as ("name" NIL "mailbox" "host"). */
static void
imapd_put_addr1(struct buf *out, const char *s, const char *e)
{
	const char	*lt = NULL, *gt = NULL, *at;
	const char	*ns = s, *ne = s, *as, *ae;
	struct buf	 name, addr;
	int		 depth = 0;
	bool		 q = false;

	for (const char *p = s; p < e; p++) {
		if (q) {
			if (*p == '\\' && p + 1 < e)
				p++;
			else if (*p == '"')
				q = false;
		} else if (*p == '"') {
			q = true;
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')' && depth > 0) {
			depth--;
		} else if (depth == 0 && *p == '<' && lt == NULL) {
			lt = p;
		} else if (depth == 0 && *p == '>' && lt != NULL) {
			gt = p;
			break;
		}
	}
	buf_init(&name);
	buf_init(&addr);
	if (lt != NULL) {
		ne = lt;
		as = lt + 1;
		ae = gt ? gt : e;
		/* Drop an obsolete source route "@a,@b:". */
		for (const char *p = as; p < ae; p++)
			if (*p == ':' && *as == '@') {
				as = p + 1;
				break;
			}
	} else {
		as = s;
		ae = e;
	}
	imapd_trim(&ns, &ne);
	/* Unquote the display name. */
	q = false;
	for (const char *p = ns; p < ne; p++) {
		if (*p == '"') {
			q = !q;
			continue;
		}
		if (q && *p == '\\' && p + 1 < ne)
			p++;
		buf_putc(&name, *p);
	}
	/* Address without comments and white space. */
	depth = 0;
	for (const char *p = as; p < ae; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !isspace((unsigned char)*p) &&
		    *p != '"')
			buf_putc(&addr, *p);
	}
	buf_putc(out, '(');
	if (name.len > 0)
		imapd_put_string(out, name.data, name.len);
	else
		buf_puts(out, "NIL");
	buf_puts(out, " NIL ");
	if (addr.len > 0 && (at = strrchr(addr.data, '@')) != NULL) {
		imapd_put_string(out, addr.data, (size_t)(at - addr.data));
		buf_putc(out, ' ');
		imapd_put_cstr(out, at + 1);
	} else {
		imapd_put_string(out, addr.data ? addr.data : "", addr.len);
		buf_puts(out, " \"\"");
	}
	buf_putc(out, ')');
	buf_free(&name);
	buf_free(&addr);
}

/* An address-list field as ((..)(..)) or NIL; groups per RFC 3501 7.4.2. */
static void
imapd_put_addrs(struct buf *out, const char *h, size_t hn, const char *field)
{
	struct buf	 v;
	const char	*p, *e, *item;
	int		 depth = 0, angle = 0, n = 0;
	bool		 q = false, group = false;

	buf_init(&v);
	if (mime_header_get(h, hn, field, &v) != 0 || v.len == 0) {
		buf_puts(out, "NIL");
		buf_free(&v);
		return;
	}
	p = item = v.data;
	e = v.data + v.len;
	for (; p <= e && n < 1000; p++) {
		char c = p < e ? *p : ',';

		if (p < e && q) {
			if (c == '\\' && p + 1 < e)
				p++;
			else if (c == '"')
				q = false;
			continue;
		}
		if (p < e && c == '"') {
			q = true;
		} else if (p < e && c == '(') {
			depth++;
		} else if (p < e && c == ')' && depth > 0) {
			depth--;
		} else if (depth == 0 && c == '<') {
			angle = 1;
		} else if (depth == 0 && c == '>') {
			angle = 0;
		} else if (depth == 0 && angle == 0 && c == ':' && !group) {
			const char *gs = item, *ge = p;

			imapd_trim(&gs, &ge);
			if (n++ == 0)
				buf_putc(out, '(');
			buf_puts(out, "(NIL NIL ");
			imapd_put_string(out, gs, (size_t)(ge - gs));
			buf_puts(out, " NIL)");
			group = true;
			item = p + 1;
		} else if (depth == 0 && angle == 0 && (c == ',' ||
		    (c == ';' && group))) {
			const char *is = item, *ie = p;

			imapd_trim(&is, &ie);
			if (ie > is) {
				if (n++ == 0)
					buf_putc(out, '(');
				imapd_put_addr1(out, is, ie);
			}
			if (c == ';' && group) {
				buf_puts(out, "(NIL NIL NIL NIL)");
				group = false;
			}
			item = p + 1;
		}
	}
	if (group)
		buf_puts(out, "(NIL NIL NIL NIL)");
	buf_puts(out, n > 0 ? ")" : "NIL");
	buf_free(&v);
}

static void
imapd_put_envelope(struct buf *out, const char *h, size_t n)
{
	struct buf	 t;
	const char	*from;

	buf_putc(out, '(');
	imapd_put_hfield(out, h, n, "Date");
	buf_putc(out, ' ');
	imapd_put_hfield(out, h, n, "Subject");
	buf_putc(out, ' ');
	imapd_put_addrs(out, h, n, "From");
	/* RFC 3501 7.4.2: Sender and Reply-To default to From. */
	buf_init(&t);
	from = "From";
	buf_putc(out, ' ');
	imapd_put_addrs(out, h, n, mime_header_get(h, n, "Sender", &t) == 0 &&
	    t.len > 0 ? "Sender" : from);
	buf_reset(&t);
	buf_putc(out, ' ');
	imapd_put_addrs(out, h, n, mime_header_get(h, n, "Reply-To", &t) ==
	    0 && t.len > 0 ? "Reply-To" : from);
	buf_free(&t);
	buf_putc(out, ' ');
	imapd_put_addrs(out, h, n, "To");
	buf_putc(out, ' ');
	imapd_put_addrs(out, h, n, "Cc");
	buf_putc(out, ' ');
	imapd_put_addrs(out, h, n, "Bcc");
	buf_putc(out, ' ');
	imapd_put_hfield(out, h, n, "In-Reply-To");
	buf_putc(out, ' ');
	imapd_put_hfield(out, h, n, "Message-ID");
	buf_putc(out, ')');
}

struct imapd_pctx {
	struct buf	*out;
	size_t		 n;
};

static void
imapd_param_cb(const char *name, size_t nlen, const char *val, size_t vlen,
    void *arg)
{
	struct imapd_pctx	*c = arg;

	if (c->n >= 32)
		return;
	buf_puts(c->out, c->n++ == 0 ? "(" : " ");
	buf_putc(c->out, '"');
	for (size_t i = 0; i < nlen; i++) {
		char ch = (char)toupper((unsigned char)name[i]);

		if (ch == '"' || ch == '\\')
			buf_putc(c->out, '\\');
		buf_putc(c->out, ch);
	}
	buf_puts(c->out, "\" ");
	imapd_put_string(c->out, val, vlen);
}

/* The parameter list of a structured field, or NIL. */
static void
imapd_put_params(struct buf *out, const char *h, size_t n, const char *field,
    const char *dflt)
{
	struct buf		 v;
	struct imapd_pctx	 c = { out, 0 };

	buf_init(&v);
	if (mime_header_get(h, n, field, &v) == 0 && v.len > 0)
		mime_params(v.data, v.len, imapd_param_cb, &c);
	buf_free(&v);
	if (c.n > 0)
		buf_putc(out, ')');
	else
		buf_puts(out, dflt);
}

static void
imapd_put_disposition(struct buf *out, const char *h, size_t n)
{
	struct buf	 v;
	size_t		 tl;

	buf_init(&v);
	if (mime_header_get(h, n, "Content-Disposition", &v) != 0 ||
	    (tl = strcspn(v.data, "; \t")) == 0) {
		buf_puts(out, "NIL");
		buf_free(&v);
		return;
	}
	buf_putc(out, '(');
	imapd_put_string(out, v.data, tl);
	buf_putc(out, ' ');
	imapd_put_params(out, h, n, "Content-Disposition", "NIL");
	buf_putc(out, ')');
	buf_free(&v);
}

static void
imapd_put_structure(struct buf *out, const struct mime_tree *t,
    const struct mime_node *nd, bool ext, unsigned depth)
{
	const char	*h = t->base + nd->hdr_off;
	size_t		 hn = nd->body_off - nd->hdr_off;
	struct buf	 v;

	if (strcmp(nd->type, "multipart") == 0 && nd->child != NULL &&
	    depth < MIME_DEPTH_MAX + 2) {
		buf_putc(out, '(');
		for (const struct mime_node *c = nd->child; c; c = c->next)
			imapd_put_structure(out, t, c, ext, depth + 1);
		buf_putc(out, ' ');
		imapd_put_upper(out, nd->subtype);
		if (ext) {
			buf_putc(out, ' ');
			imapd_put_params(out, h, hn, "Content-Type", "NIL");
			buf_putc(out, ' ');
			imapd_put_disposition(out, h, hn);
			buf_puts(out, " NIL NIL");
		}
		buf_putc(out, ')');
		return;
	}
	buf_putc(out, '(');
	imapd_put_upper(out, nd->type);
	buf_putc(out, ' ');
	imapd_put_upper(out, nd->subtype);
	buf_putc(out, ' ');
	imapd_put_params(out, h, hn, "Content-Type",
	    strcmp(nd->type, "text") == 0 ? "(\"CHARSET\" \"us-ascii\")" :
	    "NIL");
	buf_putc(out, ' ');
	imapd_put_hfield(out, h, hn, "Content-ID");
	buf_putc(out, ' ');
	imapd_put_hfield(out, h, hn, "Content-Description");
	buf_putc(out, ' ');
	buf_init(&v);
	if (mime_header_get(h, hn, "Content-Transfer-Encoding", &v) == 0 &&
	    v.len > 0 && v.len < 64)
		imapd_put_upper(out, v.data);
	else
		buf_puts(out, "\"7BIT\"");
	buf_free(&v);
	buf_printf(out, " %zu", nd->body_len);
	if (nd->msg != NULL && depth < MIME_DEPTH_MAX + 2) {
		const struct mime_node *m = nd->msg;

		buf_putc(out, ' ');
		imapd_put_envelope(out, t->base + m->hdr_off,
		    m->body_off - m->hdr_off);
		buf_putc(out, ' ');
		imapd_put_structure(out, t, m, ext, depth + 1);
		buf_printf(out, " %zu", mime_count_lines(t->base +
		    nd->body_off, nd->body_len));
	} else if (strcmp(nd->type, "text") == 0) {
		buf_printf(out, " %zu", mime_count_lines(t->base +
		    nd->body_off, nd->body_len));
	}
	if (ext) {
		buf_puts(out, " NIL ");
		imapd_put_disposition(out, h, hn);
		buf_puts(out, " NIL NIL");
	}
	buf_putc(out, ')');
}

/* ---- FETCH ------------------------------------------------------------- */

static bool
imapd_p_section(struct imapd_p *P, struct imapd_fitem *it)
{
	char	 kw[32];

	it->npart = 0;
	it->nfield = 0;
	it->sec = IMAPD_SEC_ALL;
	while (P->p < P->end && *P->p >= '0' && *P->p <= '9') {
		uint32_t	 n;

		if (!imapd_p_number(P, &n) || n == 0 ||
		    it->npart >= IMAPD_PARTS_MAX)
			return false;
		it->part[it->npart++] = n;
		if (!imapd_p_char(P, '.'))
			break;
		if (P->p < P->end && !(*P->p >= '0' && *P->p <= '9'))
			break;
	}
	if (P->p < P->end && *P->p == ']')
		return it->npart > 0 || P->p[-1] == '[';
	{
		size_t	 n = 0;

		while (P->p < P->end && (isalpha((unsigned char)*P->p) ||
		    *P->p == '.') && n + 1 < sizeof(kw))
			kw[n++] = (char)toupper((unsigned char)*P->p++);
		kw[n] = '\0';
	}
	if (strcmp(kw, "HEADER") == 0) {
		it->sec = IMAPD_SEC_HEADER;
	} else if (strcmp(kw, "TEXT") == 0) {
		it->sec = IMAPD_SEC_TEXT;
	} else if (strcmp(kw, "MIME") == 0 && it->npart > 0) {
		it->sec = IMAPD_SEC_MIME;
	} else if (strcmp(kw, "HEADER.FIELDS") == 0 ||
	    strcmp(kw, "HEADER.FIELDS.NOT") == 0) {
		it->sec = kw[13] ? IMAPD_SEC_FIELDS_NOT : IMAPD_SEC_FIELDS;
		if (!imapd_p_sp(P) || !imapd_p_char(P, '('))
			return false;
		do {
			struct buf	 f;
			bool		 ok;

			buf_init(&f);
			ok = imapd_p_astring(P, &f) &&
			    f.len <= IMAPD_FIELD_LEN && imapd_cstr_ok(&f) &&
			    it->nfield < IMAPD_FIELDS_MAX;
			if (ok)
				strcpy(it->field[it->nfield++], f.data);
			buf_free(&f);
			if (!ok)
				return false;
		} while (imapd_p_sp(P));
		if (!imapd_p_char(P, ')'))
			return false;
	} else {
		return false;
	}
	return true;
}

static bool
imapd_p_fitem(struct imapd_p *P, struct imapd_fitem *it)
{
	char	 nm[32];
	size_t	 n = 0;

	memset(it, 0, offsetof(struct imapd_fitem, field));
	it->nfield = 0;
	it->partial = false;
	while (P->p < P->end && (isalnum((unsigned char)*P->p) ||
	    *P->p == '.') && n + 1 < sizeof(nm))
		nm[n++] = (char)toupper((unsigned char)*P->p++);
	nm[n] = '\0';
	if (strcmp(nm, "FLAGS") == 0)
		it->kind = IMAPD_FI_FLAGS;
	else if (strcmp(nm, "UID") == 0)
		it->kind = IMAPD_FI_UID;
	else if (strcmp(nm, "RFC822.SIZE") == 0)
		it->kind = IMAPD_FI_SIZE;
	else if (strcmp(nm, "INTERNALDATE") == 0)
		it->kind = IMAPD_FI_INTERNALDATE;
	else if (strcmp(nm, "ENVELOPE") == 0)
		it->kind = IMAPD_FI_ENVELOPE;
	else if (strcmp(nm, "BODYSTRUCTURE") == 0)
		it->kind = IMAPD_FI_BODYSTRUCTURE;
	else if (strcmp(nm, "RFC822") == 0)
		it->kind = IMAPD_FI_RFC822;
	else if (strcmp(nm, "RFC822.HEADER") == 0)
		it->kind = IMAPD_FI_RFC822_HEADER;
	else if (strcmp(nm, "RFC822.TEXT") == 0)
		it->kind = IMAPD_FI_RFC822_TEXT;
	else if (strcmp(nm, "BODY") == 0 || strcmp(nm, "BODY.PEEK") == 0) {
		it->peek = nm[4] == '.';
		if (!imapd_p_char(P, '[')) {
			if (it->peek)
				return false;
			it->kind = IMAPD_FI_BODY;
			return true;
		}
		it->kind = IMAPD_FI_SECTION;
		if (!imapd_p_section(P, it) || !imapd_p_char(P, ']'))
			return false;
		if (imapd_p_char(P, '<')) {
			if (!imapd_p_number(P, &it->pstart) ||
			    !imapd_p_char(P, '.') ||
			    !imapd_p_number(P, &it->pcount) ||
			    it->pcount == 0 || !imapd_p_char(P, '>'))
				return false;
			it->partial = true;
		}
	} else
		return false;
	return true;
}

/* Parse the fetch attributes; returns the item count or -1. */
static int
imapd_p_fetch_atts(struct imapd_p *P, struct imapd_fitem *items)
{
	static const enum imapd_fi_kind all[] = { IMAPD_FI_FLAGS,
	    IMAPD_FI_INTERNALDATE, IMAPD_FI_SIZE, IMAPD_FI_ENVELOPE,
	    IMAPD_FI_BODY };
	const char	*save = P->p;
	char		 mac[8];
	int		 n = 0;

	if (imapd_p_atom(P, mac, sizeof(mac)) && imapd_p_eol(P)) {
		int k = -1;

		if (strcasecmp(mac, "ALL") == 0)
			k = 4;
		else if (strcasecmp(mac, "FAST") == 0)
			k = 3;
		else if (strcasecmp(mac, "FULL") == 0)
			k = 5;
		if (k > 0) {
			for (int i = 0; i < k; i++) {
				memset(&items[i], 0, sizeof(items[i]));
				items[i].kind = all[i];
			}
			return k;
		}
	}
	P->p = save;
	if (imapd_p_char(P, '(')) {
		do {
			if (n >= IMAPD_FETCH_ITEMS_MAX ||
			    !imapd_p_fitem(P, &items[n]))
				return -1;
			n++;
		} while (imapd_p_sp(P));
		if (!imapd_p_char(P, ')'))
			return -1;
		return n;
	}
	if (!imapd_p_fitem(P, &items[0]))
		return -1;
	return 1;
}

/* Resolve a section to [*off, *off + *len) of s->msg. false: no data. */
static bool
imapd_section(struct imapd_session *s, const struct imapd_fitem *it,
    struct buf *tmp, const char **data, size_t *len)
{
	struct mime_tree	*t = imapd_tree(s);
	struct mime_node	*nd = &t->nodes[0];
	const char		*b = s->msg.data;

	for (size_t i = 0; i < it->npart; i++) {
		if (i > 0 && nd->msg != NULL)
			nd = nd->msg;
		if (strcmp(nd->type, "multipart") == 0 && nd->child != NULL) {
			struct mime_node *c = nd->child;

			for (uint32_t k = 1; c != NULL && k < it->part[i]; k++)
				c = c->next;
			if (c == NULL)
				return false;
			nd = c;
		} else if (it->part[i] != 1) {
			return false;
		}
	}
	if (it->npart > 0 && (it->sec == IMAPD_SEC_HEADER ||
	    it->sec == IMAPD_SEC_TEXT || it->sec == IMAPD_SEC_FIELDS ||
	    it->sec == IMAPD_SEC_FIELDS_NOT)) {
		/* part.HEADER etc. address an encapsulated message. */
		if (nd->msg == NULL)
			return false;
		nd = nd->msg;
	}
	switch (it->sec) {
	case IMAPD_SEC_ALL:
		if (it->npart == 0) {
			*data = b;
			*len = s->msg.len;
		} else {
			*data = b + nd->body_off;
			*len = nd->body_len;
		}
		return true;
	case IMAPD_SEC_HEADER:
	case IMAPD_SEC_MIME:
		*data = b + nd->hdr_off;
		*len = nd->body_off - nd->hdr_off;
		return true;
	case IMAPD_SEC_TEXT:
		*data = b + nd->body_off;
		*len = nd->body_len;
		return true;
	case IMAPD_SEC_FIELDS:
	case IMAPD_SEC_FIELDS_NOT: {
		const char	*names[IMAPD_FIELDS_MAX];

		for (size_t i = 0; i < it->nfield; i++)
			names[i] = it->field[i];
		buf_reset(tmp);
		mime_header_filter(b + nd->hdr_off, nd->body_off -
		    nd->hdr_off, names, it->nfield,
		    it->sec == IMAPD_SEC_FIELDS_NOT, tmp);
		*data = tmp->data;
		*len = tmp->len;
		return true;
	}
	}
	return false;
}

static void
imapd_put_section_name(struct buf *out, const struct imapd_fitem *it)
{
	static const char *const sn[] = { "", "HEADER", "HEADER.FIELDS",
	    "HEADER.FIELDS.NOT", "TEXT", "MIME" };

	buf_puts(out, "BODY[");
	for (size_t i = 0; i < it->npart; i++)
		buf_printf(out, "%s%u", i ? "." : "", it->part[i]);
	if (it->sec != IMAPD_SEC_ALL)
		buf_printf(out, "%s%s", it->npart ? "." : "", sn[it->sec]);
	if (it->sec == IMAPD_SEC_FIELDS || it->sec == IMAPD_SEC_FIELDS_NOT) {
		buf_puts(out, " (");
		for (size_t i = 0; i < it->nfield; i++) {
			const char	*f = it->field[i];
			bool		 atom = true;

			if (i > 0)
				buf_putc(out, ' ');
			for (const char *c = f; *c != '\0' && atom; c++)
				atom = imapd_atom_char(*c);
			if (!atom) {
				imapd_put_cstr(out, f);
				continue;
			}
			/* As Dovecot does: field names as upper-case atoms. */
			for (const char *c = f; *c != '\0'; c++)
				buf_putc(out, (char)toupper((unsigned char)*c));
		}
		buf_putc(out, ')');
	}
	buf_putc(out, ']');
	if (it->partial)
		buf_printf(out, "<%u>", it->pstart);
}

static void
imapd_put_literal(struct buf *out, const char *p, size_t n)
{
	buf_printf(out, "{%zu}\r\n", n);
	buf_append(out, p, n);
}

static bool
imapd_needs_msg(const struct imapd_fitem *it, int n)
{
	for (int i = 0; i < n; i++)
		if (it[i].kind >= IMAPD_FI_ENVELOPE)
			return true;
	return false;
}

/* FETCH one message; false when it could not be read (vanished). */
static bool
imapd_fetch_one(struct imapd_session *s, size_t i, struct imapd_fitem *it,
    int n, bool uid, struct buf *out)
{
	struct maildir_msg	*m = &s->box->msgs[i];
	struct buf		 tmp;
	bool			 set_seen = false, has_flags = false;
	bool			 has_uid = false, first = true;

	if (imapd_needs_msg(it, n) && imapd_load(s, i) != 0)
		return false;
	for (int k = 0; k < n; k++) {
		if (it[k].kind == IMAPD_FI_FLAGS)
			has_flags = true;
		if (it[k].kind == IMAPD_FI_UID)
			has_uid = true;
		if (!s->readonly && !(m->flags & MAILDIR_F_SEEN) &&
		    ((it[k].kind == IMAPD_FI_SECTION && !it[k].peek) ||
		    it[k].kind == IMAPD_FI_RFC822 ||
		    it[k].kind == IMAPD_FI_RFC822_TEXT))
			set_seen = true;
	}
	if (set_seen && maildir_msg_set_flags(s->box, i,
	    m->flags | MAILDIR_F_SEEN) == 0) {
		m = &s->box->msgs[i];
	} else {
		set_seen = false;
	}
	buf_init(&tmp);
	buf_printf(out, "* %zu FETCH (", i + 1);
#define IMAPD_SEP() do { if (!first) buf_putc(out, ' '); first = false; } \
	while (0)
	if (uid && !has_uid) {
		IMAPD_SEP();
		buf_printf(out, "UID %u", m->uid);
	}
	for (int k = 0; k < n; k++) {
		const char	*d;
		size_t		 dl;
		uint64_t	 sz = 0;

		IMAPD_SEP();
		switch (it[k].kind) {
		case IMAPD_FI_FLAGS:
			buf_puts(out, "FLAGS ");
			imapd_put_flags(out, m);
			break;
		case IMAPD_FI_UID:
			buf_printf(out, "UID %u", m->uid);
			break;
		case IMAPD_FI_SIZE:
			(void)maildir_msg_size(s->box, i, &sz);
			buf_printf(out, "RFC822.SIZE %llu",
			    (unsigned long long)sz);
			break;
		case IMAPD_FI_INTERNALDATE:
			buf_puts(out, "INTERNALDATE ");
			imapd_put_date(out, m->mtime);
			break;
		case IMAPD_FI_ENVELOPE: {
			struct mime_node *r = &imapd_tree(s)->nodes[0];

			buf_puts(out, "ENVELOPE ");
			imapd_put_envelope(out, s->msg.data, r->body_off);
			break;
		}
		case IMAPD_FI_BODYSTRUCTURE:
		case IMAPD_FI_BODY: {
			struct mime_tree *t = imapd_tree(s);

			buf_puts(out, it[k].kind == IMAPD_FI_BODY ? "BODY " :
			    "BODYSTRUCTURE ");
			imapd_put_structure(out, t, &t->nodes[0],
			    it[k].kind == IMAPD_FI_BODYSTRUCTURE, 0);
			break;
		}
		case IMAPD_FI_SECTION:
			imapd_put_section_name(out, &it[k]);
			buf_putc(out, ' ');
			if (!imapd_section(s, &it[k], &tmp, &d, &dl)) {
				buf_puts(out, "NIL");	/* no such part */
				break;
			}
			if (it[k].partial) {
				if (it[k].pstart >= dl) {
					dl = 0;
				} else {
					d += it[k].pstart;
					dl -= it[k].pstart;
					if (dl > it[k].pcount)
						dl = it[k].pcount;
				}
			}
			imapd_put_literal(out, d ? d : "", dl);
			break;
		case IMAPD_FI_RFC822:
			buf_puts(out, "RFC822 ");
			imapd_put_literal(out, s->msg.data, s->msg.len);
			break;
		case IMAPD_FI_RFC822_HEADER:
		case IMAPD_FI_RFC822_TEXT: {
			struct mime_node *r = &imapd_tree(s)->nodes[0];

			if (it[k].kind == IMAPD_FI_RFC822_HEADER) {
				buf_puts(out, "RFC822.HEADER ");
				imapd_put_literal(out, s->msg.data,
				    r->body_off);
			} else {
				buf_puts(out, "RFC822.TEXT ");
				imapd_put_literal(out, s->msg.data +
				    r->body_off, r->body_len);
			}
			break;
		}
		}
	}
	if (set_seen && !has_flags) {
		IMAPD_SEP();
		buf_puts(out, "FLAGS ");
		imapd_put_flags(out, m);
	}
#undef IMAPD_SEP
	buf_puts(out, ")\r\n");
	buf_free(&tmp);
	return true;
}

/*
 * Run (or resume) the FETCH set up in the session. Stops with INSESS_MORE
 * once IMAPD_OUT_HIWAT bytes were appended, so FETCH 1:* BODY[] over a big
 * mailbox never builds more than about one message past that in memory.
 */
static unsigned
imapd_fetch_run(struct imapd_session *s, struct buf *out)
{
	size_t	 start = out->len;

	for (size_t i = s->fetch_next; i < s->nknown; i++) {
		if (out->len - start >= IMAPD_OUT_HIWAT) {
			s->fetch_next = i;
			return INSESS_MORE;
		}
		if (s->box->msgs[i].gone ||
		    !imapd_in_set(s, s->set, i, s->fetch_uid))
			continue;
		(void)imapd_fetch_one(s, i, s->items, s->fetch_n, s->fetch_uid,
		    out);
	}
	s->fetch_active = false;
	imapd_tagged(s, out, "OK %sFETCH completed", s->fetch_uid ? "UID " :
	    "");
	return 0;
}

static unsigned
imapd_cmd_fetch(struct imapd_session *s, struct imapd_p *P, bool uid,
    struct buf *out)
{
	int	 n;

	if (!imapd_p_sp(P) || !imapd_p_set(P, s->set) || !imapd_p_sp(P) ||
	    (n = imapd_p_fetch_atts(P, s->items)) < 0 || !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid FETCH arguments");
		return 0;
	}
	s->fetch_active = true;
	s->fetch_next = 0;
	s->fetch_n = n;
	s->fetch_uid = uid;
	return imapd_fetch_run(s, out);
}

/* ---- STORE / COPY / EXPUNGE -------------------------------------------- */

static bool
imapd_p_flags(struct imapd_p *P, unsigned *flags)
{
	bool	 paren = imapd_p_char(P, '(');
	char	 f[64];

	*flags = 0;
	if (paren && imapd_p_char(P, ')'))
		return true;
	do {
		bool bs = imapd_p_char(P, '\\');

		if (!imapd_p_atom(P, f, sizeof(f)))
			return false;
		if (!bs)
			continue;	/* keywords are not kept */
		if (strcasecmp(f, "Seen") == 0)
			*flags |= MAILDIR_F_SEEN;
		else if (strcasecmp(f, "Answered") == 0)
			*flags |= MAILDIR_F_ANSWERED;
		else if (strcasecmp(f, "Flagged") == 0)
			*flags |= MAILDIR_F_FLAGGED;
		else if (strcasecmp(f, "Deleted") == 0)
			*flags |= MAILDIR_F_DELETED;
		else if (strcasecmp(f, "Draft") == 0)
			*flags |= MAILDIR_F_DRAFT;
		else if (strcasecmp(f, "Recent") != 0)
			return false;
	} while (imapd_p_sp(P));
	return !paren || imapd_p_char(P, ')');
}

static void
imapd_cmd_store(struct imapd_session *s, struct imapd_p *P, bool uid,
    struct buf *out)
{
	char		 what[32];
	unsigned	 fl;
	int		 mode;	/* 0 set, 1 add, -1 remove */
	bool		 silent;
	size_t		 nfail = 0;

	if (!imapd_p_sp(P) || !imapd_p_set(P, s->set) || !imapd_p_sp(P)) {
		imapd_tagged(s, out, "BAD invalid STORE arguments");
		return;
	}
	mode = imapd_p_char(P, '+') ? 1 : imapd_p_char(P, '-') ? -1 : 0;
	if (!imapd_p_atom(P, what, sizeof(what)) ||
	    (strcasecmp(what, "FLAGS") != 0 &&
	    strcasecmp(what, "FLAGS.SILENT") != 0) || !imapd_p_sp(P) ||
	    !imapd_p_flags(P, &fl) || !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid STORE arguments");
		return;
	}
	silent = strcasecmp(what, "FLAGS.SILENT") == 0;
	if (s->readonly) {
		imapd_tagged(s, out, "NO [READ-ONLY] mailbox is read-only");
		return;
	}
	for (size_t i = 0; i < s->nknown; i++) {
		struct maildir_msg	*m = &s->box->msgs[i];
		unsigned		 nf;

		if (m->gone || !imapd_in_set(s, s->set, i, uid))
			continue;
		nf = mode > 0 ? m->flags | fl : mode < 0 ? m->flags & ~fl : fl;
		if (maildir_msg_set_flags(s->box, i, nf) != 0) {
			nfail++;
			continue;
		}
		m = &s->box->msgs[i];
		if (silent)
			continue;
		buf_printf(out, "* %zu FETCH (", i + 1);
		if (uid)
			buf_printf(out, "UID %u ", m->uid);
		buf_puts(out, "FLAGS ");
		imapd_put_flags(out, m);
		buf_puts(out, ")\r\n");
	}
	if (nfail > 0)
		imapd_tagged(s, out, "NO some messages could not be updated");
	else
		imapd_tagged(s, out, "OK %sSTORE completed", uid ? "UID " : "");
}

/* Map a mailbox name from the wire to a path; false when invalid. */
static bool
imapd_box_path(struct imapd_session *s, const struct buf *name, char *path,
    size_t cap)
{
	if (!imapd_cstr_ok(name))
		return false;
	return maildir_box_path(s->home, name->data, path, cap) == 0;
}

static bool
imapd_box_exists(const char *path)
{
	char	 p[MAILDIR_PATH_MAX + 8];
	FILE	*f;

	/* A maildir has cur/; opening it as a directory stream is enough. */
	snprintf(p, sizeof(p), "%s/cur/.", path);
	if ((f = fopen(p, "r")) == NULL)
		return false;
	fclose(f);
	return true;
}

static void
imapd_cmd_copy(struct imapd_session *s, struct imapd_p *P, bool uid,
    struct buf *out)
{
	char			 path[MAILDIR_PATH_MAX];
	struct maildir_delivery	 d;
	size_t			 ncopied = 0;
	bool			 fail = false;

	if (!imapd_p_sp(P) || !imapd_p_set(P, s->set) || !imapd_p_sp(P) ||
	    !imapd_p_astring(P, &s->a1) || !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid COPY arguments");
		return;
	}
	if (!imapd_box_path(s, &s->a1, path, sizeof(path))) {
		imapd_tagged(s, out, "NO invalid mailbox name");
		return;
	}
	if (!imapd_box_exists(path)) {
		imapd_tagged(s, out, "NO [TRYCREATE] no such mailbox");
		return;
	}
	for (size_t i = 0; i < s->nknown && !fail; i++) {
		if (s->box->msgs[i].gone || !imapd_in_set(s, s->set, i, uid))
			continue;
		if (imapd_load(s, i) != 0)
			continue;	/* vanished meanwhile */
		if (maildir_deliver_open(&d, path) != 0 ||
		    maildir_deliver_write(&d, s->msg.data, s->msg.len) != 0 ||
		    /* RFC 3501 6.4.7: the copy keeps the internal date. */
		    maildir_deliver_set_time(&d, s->box->msgs[i].mtime) != 0 ||
		    maildir_deliver_sync(&d) != 0 ||
		    maildir_deliver_commit(&d, true,
		    s->box->msgs[i].flags) != 0) {
			maildir_deliver_abort(&d);
			fail = true;
			break;
		}
		ncopied++;
	}
	if (ncopied > 0)
		(void)maildir_deliver_syncdir(&d);
	if (fail)
		imapd_tagged(s, out, "NO [SERVERBUG] copy failed part way");
	else
		imapd_tagged(s, out, "OK %sCOPY completed", uid ? "UID " : "");
}

/* Remove \Deleted messages; with report, send EXPUNGE responses. */
static int
imapd_expunge(struct imapd_session *s, bool report, struct buf *out)
{
	int	 r = 0;

	for (size_t i = 0; i < s->nknown;) {
		if (!(s->box->msgs[i].flags & MAILDIR_F_DELETED) ||
		    s->box->msgs[i].gone) {
			i++;
			continue;
		}
		if (maildir_msg_unlink(s->box, i) != 0) {
			r = -EIO;
			i++;
			continue;
		}
		if (s->msg_uid == s->box->msgs[i].uid)
			s->msg_uid = 0;
		maildir_box_forget(s->box, i);
		s->nknown--;
		if (report)
			buf_printf(out, "* %zu EXPUNGE\r\n", i + 1);
	}
	return r;
}

/*
 * Tell the client about changes found by a rescan: vanished messages as
 * EXPUNGE, new ones as EXISTS/RECENT. Only where RFC 3501 7.4.1 allows
 * EXPUNGE (not during FETCH, STORE, SEARCH).
 */
static void
imapd_sync(struct imapd_session *s, bool rescan, struct buf *out)
{
	size_t		 old = s->nknown, nsnap = 0;
	uint32_t	*snap = NULL;	/* uid, flags pairs before the rescan */

	if (s->box == NULL)
		return;
	if (rescan) {
		/* Remember flags to report other sessions' STOREs. */
		if (s->nknown > 0 && (snap = malloc(s->nknown * 2 *
		    sizeof(*snap))) != NULL) {
			for (size_t i = 0; i < s->nknown; i++) {
				snap[2 * i] = s->box->msgs[i].uid;
				snap[2 * i + 1] = s->box->msgs[i].flags;
			}
			nsnap = s->nknown;
		}
		(void)maildir_box_rescan(s->box, NULL);
	}
	for (size_t i = 0; i < s->nknown;) {
		if (!s->box->msgs[i].gone) {
			i++;
			continue;
		}
		if (s->msg_uid == s->box->msgs[i].uid)
			s->msg_uid = 0;
		maildir_box_forget(s->box, i);
		s->nknown--;
		old--;
		buf_printf(out, "* %zu EXPUNGE\r\n", i + 1);
	}
	for (size_t i = 0, j = 0; i < s->nknown && j < nsnap; i++) {
		const struct maildir_msg *m = &s->box->msgs[i];

		while (j < nsnap && snap[2 * j] < m->uid)
			j++;
		if (j < nsnap && snap[2 * j] == m->uid &&
		    snap[2 * j + 1] != m->flags) {
			buf_printf(out, "* %zu FETCH (FLAGS ", i + 1);
			imapd_put_flags(out, m);
			buf_puts(out, ")\r\n");
		}
	}
	free(snap);
	if (s->box->nmsg != s->nknown) {
		size_t nrecent = 0;

		/* Drop any that vanished again before we announce them. */
		for (size_t i = s->nknown; i < s->box->nmsg;) {
			if (s->box->msgs[i].gone)
				maildir_box_forget(s->box, i);
			else
				i++;
		}
		s->nknown = s->box->nmsg;
		for (size_t i = 0; i < s->nknown; i++)
			nrecent += s->box->msgs[i].recent;
		if (s->nknown != old) {
			buf_printf(out, "* %zu EXISTS\r\n", s->nknown);
			buf_printf(out, "* %zu RECENT\r\n", nrecent);
		}
	}
}

/* ---- SEARCH ------------------------------------------------------------ */

static bool
imapd_ci_find(const char *h, size_t hl, const char *n, size_t nl)
{
	if (nl == 0)
		return true;
	if (nl > hl)
		return false;
	for (size_t i = 0; i + nl <= hl; i++) {
		size_t k = 0;

		while (k < nl && tolower((unsigned char)h[i + k]) ==
		    tolower((unsigned char)n[k]))
			k++;
		if (k == nl)
			return true;
	}
	return false;
}

/* "1-Feb-1994" (maybe quoted) -> days since the epoch. */
static bool
imapd_p_date(struct imapd_p *P, int64_t *days)
{
	char		 d[40];
	int		 day, year, mon = -1;
	char		 ms[4];
	struct tm	 tm;
	bool		 q = imapd_p_char(P, '"');
	size_t		 n = 0;

	while (P->p < P->end && *P->p != '"' && *P->p != ' ' &&
	    *P->p != ')' && n + 1 < sizeof(d))
		d[n++] = *P->p++;
	d[n] = '\0';
	if (q && !imapd_p_char(P, '"'))
		return false;
	if (sscanf(d, "%2d-%3s-%4d", &day, ms, &year) != 3)
		return false;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(ms, imapd_month[i]) == 0)
			mon = i;
	if (mon < 0 || day < 1 || day > 31 || year < 1900 || year > 9999)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = day;
	tm.tm_mon = mon;
	tm.tm_year = year - 1900;
	*days = (int64_t)timegm(&tm) / 86400;
	return true;
}

/* The day (since the epoch) of message i's Date: header. */
static bool
imapd_sent_day(struct imapd_session *s, size_t i, int64_t *days)
{
	struct buf	 v;
	struct tm	 tm;
	const char	*p;
	char		 ms[4];
	int		 d, y, mon = -1;
	bool		 ok = false;

	if (imapd_load(s, i) != 0)
		return false;
	buf_init(&v);
	if (mime_header_get(s->msg.data, imapd_tree(s)->nodes[0].body_off,
	    "Date", &v) == 0) {
		/* "[Tue, ]1 Feb 1994 ..." */
		p = v.data;
		if ((p = strchr(v.data, ',')) != NULL)
			p++;
		else
			p = v.data;
		if (sscanf(p, "%2d %3s %4d", &d, ms, &y) == 3) {
			for (int k = 0; k < 12; k++)
				if (strcasecmp(ms, imapd_month[k]) == 0)
					mon = k;
			if (y < 100)
				/* RFC 5322 4.3: two-digit years */
				y += y < 50 ? 2000 : 1900;
			if (mon >= 0 && d >= 1 && d <= 31 && y >= 1900 &&
			    y <= 9999) {
				memset(&tm, 0, sizeof(tm));
				tm.tm_mday = d;
				tm.tm_mon = mon;
				tm.tm_year = y - 1900;
				*days = (int64_t)timegm(&tm) / 86400;
				ok = true;
			}
		}
	}
	buf_free(&v);
	return ok;
}

static bool imapd_search_key(struct imapd_session *s, struct imapd_p *P,
	    long i, bool eval, unsigned depth, bool *match);

/* Match header field of message i containing text (s->a1). */
static bool
imapd_search_header(struct imapd_session *s, size_t i, const char *field,
    const struct buf *text)
{
	struct mime_tree	*t;
	struct buf		 v;
	bool			 hit;

	if (imapd_load(s, i) != 0)
		return false;
	t = imapd_tree(s);
	buf_init(&v);
	hit = mime_header_get(s->msg.data, t->nodes[0].body_off, field,
	    &v) == 0 && imapd_ci_find(v.data ? v.data : "", v.len,
	    text->data ? text->data : "", text->len);
	buf_free(&v);
	return hit;
}

static bool
imapd_search_key(struct imapd_session *s, struct imapd_p *P, long i,
    bool eval, unsigned depth, bool *match)
{
	char			 k[32];
	struct maildir_msg	*m = (i >= 0 && eval) ? &s->box->msgs[i] : NULL;
	static const struct {
		const char	*name;
		unsigned	 flag;
		bool		 set;
	} fk[] = {
		{ "SEEN", MAILDIR_F_SEEN, true },
		{ "UNSEEN", MAILDIR_F_SEEN, false },
		{ "DELETED", MAILDIR_F_DELETED, true },
		{ "UNDELETED", MAILDIR_F_DELETED, false },
		{ "FLAGGED", MAILDIR_F_FLAGGED, true },
		{ "UNFLAGGED", MAILDIR_F_FLAGGED, false },
		{ "ANSWERED", MAILDIR_F_ANSWERED, true },
		{ "UNANSWERED", MAILDIR_F_ANSWERED, false },
		{ "DRAFT", MAILDIR_F_DRAFT, true },
		{ "UNDRAFT", MAILDIR_F_DRAFT, false },
	};
	static const char *const hk[] = { "FROM", "TO", "CC", "BCC",
	    "SUBJECT" };

	*match = false;
	if (depth > IMAPD_SEARCH_DEPTH || P->p >= P->end)
		return false;
	if (imapd_p_char(P, '(')) {
		bool all = true, sub;

		do {
			if (!imapd_search_key(s, P, i, eval && all, depth + 1,
			    &sub))
				return false;
			all = all && sub;
		} while (imapd_p_sp(P));
		*match = all;
		return imapd_p_char(P, ')');
	}
	if (*P->p == '*' || (*P->p >= '0' && *P->p <= '9')) {
		struct imapd_set	*set;
		bool			 ok;

		/* A sequence set key; parse into a private set. */
		if ((set = malloc(sizeof(*set))) == NULL)
			return false;
		ok = imapd_p_set(P, set);
		if (ok && m != NULL)
			*match = imapd_in_set(s, set, (size_t)i, false);
		free(set);
		return ok;
	}
	if (!imapd_p_atom(P, k, sizeof(k)))
		return false;
	for (size_t j = 0; j < sizeof(fk) / sizeof(fk[0]); j++) {
		if (strcasecmp(k, fk[j].name) == 0) {
			if (m != NULL)
				*match = ((m->flags & fk[j].flag) != 0) ==
				    fk[j].set;
			return true;
		}
	}
	if (strcasecmp(k, "ALL") == 0) {
		*match = m != NULL;
		return true;
	}
	if (strcasecmp(k, "RECENT") == 0 || strcasecmp(k, "NEW") == 0 ||
	    strcasecmp(k, "OLD") == 0) {
		if (m != NULL) {
			if (strcasecmp(k, "OLD") == 0)
				*match = !m->recent;
			else if (strcasecmp(k, "NEW") == 0)
				*match = m->recent &&
				    !(m->flags & MAILDIR_F_SEEN);
			else
				*match = m->recent;
		}
		return true;
	}
	if (strcasecmp(k, "NOT") == 0) {
		bool sub;

		if (!imapd_p_sp(P) || !imapd_search_key(s, P, i, eval,
		    depth + 1, &sub))
			return false;
		*match = m != NULL && !sub;
		return true;
	}
	if (strcasecmp(k, "OR") == 0) {
		bool a, b;

		if (!imapd_p_sp(P) || !imapd_search_key(s, P, i, eval,
		    depth + 1, &a) || !imapd_p_sp(P) ||
		    !imapd_search_key(s, P, i, eval && !a, depth + 1, &b))
			return false;
		*match = m != NULL && (a || b);
		return true;
	}
	if (strcasecmp(k, "UID") == 0) {
		struct imapd_set	*set;
		bool			 ok;

		if (!imapd_p_sp(P) || (set = malloc(sizeof(*set))) == NULL)
			return false;
		ok = imapd_p_set(P, set);
		if (ok && m != NULL)
			*match = imapd_in_set(s, set, (size_t)i, true);
		free(set);
		return ok;
	}
	if (strcasecmp(k, "LARGER") == 0 || strcasecmp(k, "SMALLER") == 0) {
		uint32_t	 n;
		uint64_t	 sz = 0;

		if (!imapd_p_sp(P) || !imapd_p_number(P, &n))
			return false;
		if (m != NULL && maildir_msg_size(s->box, (size_t)i, &sz) == 0)
			*match = k[0] == 'L' || k[0] == 'l' ? sz > n : sz < n;
		return true;
	}
	if (strcasecmp(k, "SINCE") == 0 || strcasecmp(k, "BEFORE") == 0 ||
	    strcasecmp(k, "ON") == 0) {
		int64_t	 day, md;

		if (!imapd_p_sp(P) || !imapd_p_date(P, &day))
			return false;
		if (m != NULL) {
			md = m->mtime >= 0 ? m->mtime / 86400 :
			    (m->mtime - 86399) / 86400;
			if (strcasecmp(k, "SINCE") == 0)
				*match = md >= day;
			else if (strcasecmp(k, "BEFORE") == 0)
				*match = md < day;
			else
				*match = md == day;
		}
		return true;
	}
	if (strcasecmp(k, "SENTSINCE") == 0 ||
	    strcasecmp(k, "SENTBEFORE") == 0 || strcasecmp(k, "SENTON") == 0) {
		int64_t	 day, sd;

		if (!imapd_p_sp(P) || !imapd_p_date(P, &day))
			return false;
		/* RFC 3501 6.4.4: the Date: header's day, time zone ignored;
		 * a message without a usable Date: matches none of these. */
		if (m != NULL && imapd_sent_day(s, (size_t)i, &sd)) {
			if (k[4] == 'S' || k[4] == 's')
				*match = sd >= day;
			else if (k[4] == 'B' || k[4] == 'b')
				*match = sd < day;
			else
				*match = sd == day;
		}
		return true;
	}
	if (strcasecmp(k, "KEYWORD") == 0 || strcasecmp(k, "UNKEYWORD") == 0) {
		char kw[128];

		if (!imapd_p_sp(P) || !imapd_p_atom(P, kw, sizeof(kw)))
			return false;
		*match = m != NULL && (k[0] == 'U' || k[0] == 'u');
		return true;
	}
	for (size_t j = 0; j < sizeof(hk) / sizeof(hk[0]); j++) {
		if (strcasecmp(k, hk[j]) == 0) {
			if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a1))
				return false;
			if (m != NULL)
				*match = imapd_search_header(s, (size_t)i,
				    hk[j], &s->a1);
			return true;
		}
	}
	if (strcasecmp(k, "HEADER") == 0) {
		if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a2) ||
		    !imapd_cstr_ok(&s->a2) || !imapd_p_sp(P) ||
		    !imapd_p_astring(P, &s->a1))
			return false;
		if (m != NULL)
			*match = imapd_search_header(s, (size_t)i, s->a2.data,
			    &s->a1);
		return true;
	}
	if (strcasecmp(k, "BODY") == 0 || strcasecmp(k, "TEXT") == 0) {
		bool body = k[0] == 'B' || k[0] == 'b';

		if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a1))
			return false;
		if (m != NULL && imapd_load(s, (size_t)i) == 0) {
			size_t off = body ? imapd_tree(s)->nodes[0].body_off :
			    0;

			*match = imapd_ci_find(s->msg.data + off,
			    s->msg.len - off, s->a1.data ? s->a1.data : "",
			    s->a1.len);
		}
		return true;
	}
	return false;
}

static void
imapd_cmd_search(struct imapd_session *s, struct imapd_p *P, bool uid,
    struct buf *out)
{
	const char	*start;
	bool		 match, ok = true;
	struct buf	 res;

	if (!imapd_p_sp(P)) {
		imapd_tagged(s, out, "BAD missing search criteria");
		return;
	}
	start = P->p;
	{
		char	 cs[16];

		if (imapd_p_atom(P, cs, sizeof(cs)) &&
		    strcasecmp(cs, "CHARSET") == 0) {
			if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a1) ||
			    !imapd_p_sp(P)) {
				imapd_tagged(s, out, "BAD invalid CHARSET");
				return;
			}
			if (strcasecmp(s->a1.data, "UTF-8") != 0 &&
			    strcasecmp(s->a1.data, "US-ASCII") != 0) {
				imapd_tagged(s, out, "NO [BADCHARSET "
				    "(US-ASCII UTF-8)] unsupported charset");
				return;
			}
			start = P->p;
		} else {
			P->p = start;
		}
	}
	/* Validate once, then evaluate for each message. */
	do {
		ok = imapd_search_key(s, P, -1, false, 0, &match);
	} while (ok && imapd_p_sp(P));
	if (!ok || !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid search criteria");
		return;
	}
	buf_init(&res);
	buf_puts(&res, "* SEARCH");
	for (size_t i = 0; i < s->nknown; i++) {
		bool all = true;

		if (s->box->msgs[i].gone)
			continue;
		P->p = start;
		do {
			(void)imapd_search_key(s, P, (long)i, all, 0, &match);
			all = all && match;
		} while (imapd_p_sp(P));
		if (all) {
			if (uid)
				buf_printf(&res, " %u", s->box->msgs[i].uid);
			else
				buf_printf(&res, " %zu", i + 1);
		}
	}
	buf_puts(&res, "\r\n");
	buf_append(out, res.data, res.len);
	buf_free(&res);
	imapd_tagged(s, out, "OK %sSEARCH completed", uid ? "UID " : "");
}

/* ---- mailbox commands -------------------------------------------------- */

static void
imapd_unselect(struct imapd_session *s)
{
	maildir_box_free(s->box);
	s->box = NULL;
	s->nknown = 0;
	s->msg_uid = 0;
	if (s->state == IMAPD_SELECTED)
		s->state = IMAPD_AUTH;
}

static void
imapd_cmd_select(struct imapd_session *s, struct imapd_p *P, bool examine,
    struct buf *out)
{
	char		 path[MAILDIR_PATH_MAX];
	size_t		 nrecent = 0, unseen = 0;
	int		 err;

	if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a1) ||
	    !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid arguments");
		return;
	}
	/* RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected. */
	imapd_unselect(s);
	if (!imapd_box_path(s, &s->a1, path, sizeof(path))) {
		imapd_tagged(s, out, "NO invalid mailbox name");
		return;
	}
	if ((s->box = maildir_box_open(path, !examine, &err)) == NULL) {
		imapd_tagged(s, out, "NO [NONEXISTENT] no such mailbox");
		return;
	}
	s->readonly = examine;
	s->nknown = s->box->nmsg;
	s->state = IMAPD_SELECTED;
	for (size_t i = 0; i < s->nknown; i++) {
		nrecent += s->box->msgs[i].recent;
		if (unseen == 0 && !(s->box->msgs[i].flags & MAILDIR_F_SEEN))
			unseen = i + 1;
	}
	buf_puts(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	    "\\Draft)\r\n");
	buf_printf(out, "* OK [PERMANENTFLAGS (%s)] %s\r\n", examine ? "" :
	    "\\Answered \\Flagged \\Deleted \\Seen \\Draft",
	    examine ? "read-only" : "flags permitted");
	buf_printf(out, "* %zu EXISTS\r\n* %zu RECENT\r\n", s->nknown,
	    nrecent);
	if (unseen > 0)
		buf_printf(out, "* OK [UNSEEN %zu] first unseen\r\n", unseen);
	buf_printf(out, "* OK [UIDVALIDITY %u] UIDs valid\r\n"
	    "* OK [UIDNEXT %u] predicted next UID\r\n", s->box->uidvalidity,
	    s->box->uidnext);
	imapd_tagged(s, out, "OK [%s] %s completed", examine ? "READ-ONLY" :
	    "READ-WRITE", examine ? "EXAMINE" : "SELECT");
}

static void
imapd_cmd_status(struct imapd_session *s, struct imapd_p *P, struct buf *out)
{
	char			 path[MAILDIR_PATH_MAX], it[16];
	struct maildir_box	*b;
	unsigned		 want = 0;
	size_t			 recent = 0, unseen = 0;
	int			 err;
	bool			 first = true;

	if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a1) ||
	    !imapd_p_sp(P) || !imapd_p_char(P, '(')) {
		imapd_tagged(s, out, "BAD invalid arguments");
		return;
	}
	do {
		if (!imapd_p_atom(P, it, sizeof(it)))
			break;
		if (strcasecmp(it, "MESSAGES") == 0)
			want |= 1;
		else if (strcasecmp(it, "RECENT") == 0)
			want |= 2;
		else if (strcasecmp(it, "UIDNEXT") == 0)
			want |= 4;
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			want |= 8;
		else if (strcasecmp(it, "UNSEEN") == 0)
			want |= 16;
		else
			want |= 0x100;
	} while (imapd_p_sp(P));
	if (want == 0 || want & 0x100 || !imapd_p_char(P, ')') ||
	    !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid STATUS items");
		return;
	}
	if (!imapd_box_path(s, &s->a1, path, sizeof(path))) {
		imapd_tagged(s, out, "NO invalid mailbox name");
		return;
	}
	if ((b = maildir_box_open(path, false, &err)) == NULL) {
		imapd_tagged(s, out, "NO [NONEXISTENT] no such mailbox");
		return;
	}
	for (size_t i = 0; i < b->nmsg; i++) {
		recent += b->msgs[i].recent;
		unseen += !(b->msgs[i].flags & MAILDIR_F_SEEN);
	}
	buf_puts(out, "* STATUS ");
	imapd_put_cstr(out, s->a1.data);
	buf_puts(out, " (");
#define IMAPD_ST(bit, fmt, v) do {					\
	if (want & (bit)) {						\
		buf_printf(out, "%s" fmt, first ? "" : " ", v);		\
		first = false;						\
	}								\
} while (0)
	IMAPD_ST(1, "MESSAGES %zu", b->nmsg);
	IMAPD_ST(2, "RECENT %zu", recent);
	IMAPD_ST(4, "UIDNEXT %u", b->uidnext);
	IMAPD_ST(8, "UIDVALIDITY %u", b->uidvalidity);
	IMAPD_ST(16, "UNSEEN %zu", unseen);
#undef IMAPD_ST
	buf_puts(out, ")\r\n");
	maildir_box_free(b);
	imapd_tagged(s, out, "OK STATUS completed");
}

struct imapd_names {
	char	**v;
	size_t	 n;
};

static int
imapd_names_cb(const char *name, void *arg)
{
	struct imapd_names	*nm = arg;
	char			**v;

	if (nm->n >= 10000)
		return 0;
	if ((v = realloc(nm->v, (nm->n + 1) * sizeof(*v))) == NULL)
		return -ENOMEM;
	nm->v = v;
	if ((v[nm->n] = strdup(name)) == NULL)
		return -ENOMEM;
	nm->n++;
	return 0;
}

/* RFC 3501 6.3.8 wildcards: '*' anything, '%' anything but '.'. */
static bool
imapd_wild(const char *pat, const char *name, bool inbox)
{
	size_t	 pl = strlen(pat), nl = strlen(name);
	bool	*prev, *cur, r;

	if ((prev = calloc(nl + 1, 1)) == NULL)
		return false;
	if ((cur = calloc(nl + 1, 1)) == NULL) {
		free(prev);
		return false;
	}
	prev[0] = true;
	for (size_t j = 1; j <= nl; j++)
		prev[j] = false;
	for (size_t i = 1; i <= pl; i++) {
		char	 pc = pat[i - 1];
		bool	*t;

		cur[0] = prev[0] && (pc == '*' || pc == '%');
		for (size_t j = 1; j <= nl; j++) {
			char nc = name[j - 1];

			if (pc == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (pc == '%')
				cur[j] = prev[j] || (cur[j - 1] && nc != '.');
			else if (inbox)
				cur[j] = prev[j - 1] && toupper((unsigned char)
				    pc) == toupper((unsigned char)nc);
			else
				cur[j] = prev[j - 1] && pc == nc;
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	r = prev[nl];
	free(prev);
	free(cur);
	return r;
}

static void
imapd_cmd_list(struct imapd_session *s, struct imapd_p *P, bool lsub,
    struct buf *out)
{
	struct imapd_names	 nm = { NULL, 0 };
	struct buf		 pat;

	if (!imapd_p_sp(P) || !imapd_p_astring_x(P, &s->a1, false) ||
	    !imapd_p_sp(P) || !imapd_p_astring_x(P, &s->a2, true) ||
	    !imapd_p_eol(P) || !imapd_cstr_ok(&s->a1) ||
	    !imapd_cstr_ok(&s->a2)) {
		imapd_tagged(s, out, "BAD invalid arguments");
		return;
	}
	if (s->a2.len == 0) {
		if (!lsub)
			buf_puts(out, "* LIST (\\Noselect) \".\" \"\"\r\n");
		imapd_tagged(s, out, "OK %s completed", lsub ? "LSUB" : "LIST");
		return;
	}
	buf_init(&pat);
	buf_printf(&pat, "%s%s", s->a1.data ? s->a1.data : "", s->a2.data);
	if (maildir_list(s->home, imapd_names_cb, &nm) != 0) {
		imapd_tagged(s, out, "NO [SERVERBUG] cannot list mailboxes");
	} else {
		for (size_t i = 0; i < nm.n; i++) {
			bool	 inbox = maildir_name_is_inbox(nm.v[i]);
			bool	 kids = false;
			size_t	 l = strlen(nm.v[i]);

			if (!imapd_wild(pat.data, nm.v[i], inbox))
				continue;
			for (size_t j = 0; j < nm.n && !kids; j++)
				kids = strncmp(nm.v[j], nm.v[i], l) == 0 &&
				    nm.v[j][l] == '.';
			buf_printf(out, "* %s (%s) \".\" ", lsub ? "LSUB" :
			    "LIST", kids ? "\\HasChildren" :
			    "\\HasNoChildren");
			imapd_put_cstr(out, nm.v[i]);
			buf_puts(out, "\r\n");
		}
		imapd_tagged(s, out, "OK %s completed", lsub ? "LSUB" : "LIST");
	}
	for (size_t i = 0; i < nm.n; i++)
		free(nm.v[i]);
	free(nm.v);
	buf_free(&pat);
}

static void
imapd_cmd_create(struct imapd_session *s, struct imapd_p *P, struct buf *out)
{
	char	 path[MAILDIR_PATH_MAX];

	if (!imapd_p_sp(P) || !imapd_p_astring(P, &s->a1) ||
	    !imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid arguments");
		return;
	}
	if (!imapd_box_path(s, &s->a1, path, sizeof(path)) ||
	    maildir_name_is_inbox(s->a1.data)) {
		imapd_tagged(s, out, "NO invalid mailbox name");
		return;
	}
	if (imapd_box_exists(path)) {
		imapd_tagged(s, out, "NO [ALREADYEXISTS] mailbox exists");
		return;
	}
	if (maildir_create(path) != 0)
		imapd_tagged(s, out, "NO [SERVERBUG] cannot create mailbox");
	else
		imapd_tagged(s, out, "OK CREATE completed");
}

/* ---- authentication ---------------------------------------------------- */

/* Check credentials; answers the tagged response. Returns INSESS_*. */
static unsigned
imapd_login(struct imapd_session *s, const char *user, const char *pass,
    size_t passlen, struct buf *out)
{
	/* Only a valid name is logged: the rest is client-controlled. */
	const char *lu = auth_user_valid(user) ? user : "-";

	if (auth_limiter_check(s->conf.limiter, s->peer) != 0) {
		log_info("imapd login user=%s src=%s result=blocked", lu,
		    s->peer);
		imapd_tagged(s, out, "NO [UNAVAILABLE] too many failed logins, "
		    "try later");
		return INSESS_DELAY;
	}
	if (!auth_user_valid(user) || s->conf.users == NULL ||
	    auth_users_check(s->conf.users, user, pass, passlen) != 0) {
		auth_limiter_fail(s->conf.limiter, s->peer);
		log_info("imapd login user=%s src=%s result=fail", lu, s->peer);
		imapd_tagged(s, out, "NO [AUTHENTICATIONFAILED] "
		    "authentication failed");
		return INSESS_DELAY;
	}
	auth_limiter_success(s->conf.limiter, s->peer);
	log_info("imapd login user=%s src=%s tls=%d result=ok", lu, s->peer,
	    s->tls_active);
	if ((size_t)snprintf(s->home, sizeof(s->home), "%s/%s", s->conf.root,
	    user) >= sizeof(s->home) || maildir_create(s->home) != 0) {
		imapd_tagged(s, out, "NO [UNAVAILABLE] mail store unavailable");
		return 0;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->state = IMAPD_AUTH;
	imapd_tagged(s, out, "OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE "
	    "UNSELECT ID] logged in");
	return 0;
}

static unsigned
imapd_auth_plain(struct imapd_session *s, const char *b64, size_t len,
    struct buf *out)
{
	char		 user[AUTH_USER_MAX + 2], pass[AUTH_PASS_MAX + 2];
	unsigned	 fl;

	if (auth_sasl_plain(b64, len, user, sizeof(user), pass,
	    sizeof(pass)) != 0) {
		imapd_tagged(s, out, "NO [AUTHENTICATIONFAILED] invalid "
		    "PLAIN response");
		return INSESS_DELAY;
	}
	fl = imapd_login(s, user, pass, strlen(pass), out);
	OPENSSL_cleanse(pass, sizeof(pass));
	return fl;
}

static unsigned
imapd_cmd_authenticate(struct imapd_session *s, struct imapd_p *P,
    struct buf *out)
{
	char	 mech[32];

	if (!imapd_p_sp(P) || !imapd_p_atom(P, mech, sizeof(mech))) {
		imapd_tagged(s, out, "BAD invalid arguments");
		return 0;
	}
	if (strcasecmp(mech, "PLAIN") != 0) {
		imapd_tagged(s, out, "NO unsupported mechanism");
		return 0;
	}
	if (!imapd_secure(s)) {
		imapd_tagged(s, out, "NO [PRIVACYREQUIRED] use STARTTLS "
		    "first");
		return 0;
	}
	if (imapd_p_sp(P)) {
		/* RFC 4959 SASL-IR; "=" is an empty response. */
		const char *ir = P->p;
		size_t	    n = (size_t)(P->end - P->p);

		if (n == 1 && ir[0] == '=')
			n = 0;
		return imapd_auth_plain(s, ir, n, out);
	}
	if (!imapd_p_eol(P)) {
		imapd_tagged(s, out, "BAD invalid arguments");
		return 0;
	}
	memcpy(s->saved_tag, s->tag, sizeof(s->tag));
	s->cont_auth = true;
	buf_puts(out, "+ \r\n");
	return 0;
}

/* ---- dispatch ---------------------------------------------------------- */

static bool
imapd_tag_char(char c)
{
	return imapd_atom_char(c) && c != '+';
}

static unsigned
imapd_dispatch(struct imapd_session *s, const char *cmd, size_t len,
    struct buf *out)
{
	struct imapd_p	 P = { cmd, cmd + len };
	char		 name[32];
	size_t		 tl = 0;
	bool		 uid = false;
	bool		 noauth, auth, sel;

	while (tl < len && imapd_tag_char(cmd[tl]))
		tl++;
	if (tl == 0 || tl > IMAPD_TAG_MAX || tl >= len || cmd[tl] != ' ') {
		buf_puts(out, "* BAD invalid tag\r\n");
		return ++s->nerr >= IMAPD_MAX_ERRORS ? INSESS_CLOSE : 0;
	}
	memcpy(s->tag, cmd, tl);
	s->tag[tl] = '\0';
	P.p += tl + 1;
	if (++s->ncmd > s->conf.max_commands) {
		buf_puts(out, "* BYE too many commands\r\n");
		s->state = IMAPD_LOGOUT;
		return INSESS_CLOSE;
	}
	if (!imapd_p_atom(&P, name, sizeof(name))) {
		imapd_tagged(s, out, "BAD missing command");
		return 0;
	}
	noauth = s->state == IMAPD_NOTAUTH;
	auth = s->state == IMAPD_AUTH || s->state == IMAPD_SELECTED;
	sel = s->state == IMAPD_SELECTED;
	if (strcasecmp(name, "UID") == 0 && sel) {
		if (!imapd_p_sp(&P) || !imapd_p_atom(&P, name, sizeof(name))) {
			imapd_tagged(s, out, "BAD missing UID command");
			return 0;
		}
		uid = true;
		if (strcasecmp(name, "FETCH") != 0 &&
		    strcasecmp(name, "STORE") != 0 &&
		    strcasecmp(name, "SEARCH") != 0 &&
		    strcasecmp(name, "COPY") != 0) {
			imapd_tagged(s, out, "BAD unknown UID command");
			return 0;
		}
	}
	if (strcasecmp(name, "CAPABILITY") == 0 && imapd_p_eol(&P)) {
		buf_puts(out, "* CAPABILITY ");
		imapd_put_caps(s, out);
		buf_puts(out, "\r\n");
		imapd_tagged(s, out, "OK CAPABILITY completed");
	} else if (strcasecmp(name, "ID") == 0 && imapd_p_sp(&P)) {
		/* RFC 2971: the client's list is ignored (only logged by
		 * servers that care); ours names the software. */
		buf_puts(out, "* ID (\"name\" \"ringmail\")\r\n");
		imapd_tagged(s, out, "OK ID completed");
	} else if (strcasecmp(name, "NOOP") == 0 && imapd_p_eol(&P)) {
		imapd_sync(s, true, out);
		imapd_tagged(s, out, "OK NOOP completed");
	} else if (strcasecmp(name, "LOGOUT") == 0 && imapd_p_eol(&P)) {
		buf_puts(out, "* BYE ringmail logging out\r\n");
		imapd_tagged(s, out, "OK LOGOUT completed");
		s->state = IMAPD_LOGOUT;
		return INSESS_CLOSE;
	} else if (strcasecmp(name, "STARTTLS") == 0 && noauth &&
	    imapd_p_eol(&P)) {
		if (!s->conf.tls_available || s->tls_active) {
			imapd_tagged(s, out, "NO STARTTLS not available");
			return 0;
		}
		imapd_tagged(s, out, "OK begin TLS negotiation now");
		return INSESS_STARTTLS_NOW;
	} else if (strcasecmp(name, "LOGIN") == 0 && noauth) {
		unsigned	 fl;

		if (!imapd_p_sp(&P) || !imapd_p_astring(&P, &s->a1) ||
		    !imapd_p_sp(&P) || !imapd_p_astring(&P, &s->a2) ||
		    !imapd_p_eol(&P) || !imapd_cstr_ok(&s->a1) ||
		    s->a1.len > AUTH_USER_MAX || s->a2.len > AUTH_PASS_MAX) {
			imapd_tagged(s, out, "BAD invalid LOGIN arguments");
			return 0;
		}
		if (!imapd_secure(s)) {
			imapd_tagged(s, out, "NO [PRIVACYREQUIRED] LOGIN is "
			    "disabled, use STARTTLS");
			return 0;
		}
		fl = imapd_login(s, s->a1.data, s->a2.data ? s->a2.data : "",
		    s->a2.len, out);
		OPENSSL_cleanse(s->a2.data, s->a2.cap);
		return fl;
	} else if (strcasecmp(name, "AUTHENTICATE") == 0 && noauth) {
		return imapd_cmd_authenticate(s, &P, out);
	} else if ((strcasecmp(name, "SELECT") == 0 ||
	    strcasecmp(name, "EXAMINE") == 0) && auth) {
		imapd_cmd_select(s, &P, toupper((unsigned char)name[0]) == 'E',
		    out);
	} else if ((strcasecmp(name, "LIST") == 0 ||
	    strcasecmp(name, "LSUB") == 0) && auth) {
		imapd_cmd_list(s, &P, toupper((unsigned char)name[1]) == 'S',
		    out);
	} else if (strcasecmp(name, "STATUS") == 0 && auth) {
		imapd_cmd_status(s, &P, out);
	} else if (strcasecmp(name, "CREATE") == 0 && auth) {
		imapd_cmd_create(s, &P, out);
	} else if ((strcasecmp(name, "SUBSCRIBE") == 0 ||
	    strcasecmp(name, "UNSUBSCRIBE") == 0) && auth) {
		/* Every mailbox counts as subscribed (LSUB = LIST). */
		if (!imapd_p_sp(&P) || !imapd_p_astring(&P, &s->a1) ||
		    !imapd_p_eol(&P))
			imapd_tagged(s, out, "BAD invalid arguments");
		else
			imapd_tagged(s, out, "OK %s completed", name);
	} else if (strcasecmp(name, "IDLE") == 0 && auth && imapd_p_eol(&P)) {
		memcpy(s->saved_tag, s->tag, sizeof(s->tag));
		s->idling = true;
		buf_puts(out, "+ idling\r\n");
		imapd_sync(s, true, out);
		return INSESS_IDLE_WAIT;
	} else if (strcasecmp(name, "CHECK") == 0 && sel && imapd_p_eol(&P)) {
		imapd_sync(s, true, out);
		imapd_tagged(s, out, "OK CHECK completed");
	} else if ((strcasecmp(name, "CLOSE") == 0 ||
	    strcasecmp(name, "UNSELECT") == 0) && sel && imapd_p_eol(&P)) {
		/* RFC 3501 6.4.2: CLOSE expunges silently. */
		if (toupper((unsigned char)name[0]) == 'C' && !s->readonly)
			(void)imapd_expunge(s, false, out);
		imapd_unselect(s);
		imapd_tagged(s, out, "OK %s completed", name);
	} else if (strcasecmp(name, "EXPUNGE") == 0 && sel &&
	    imapd_p_eol(&P)) {
		if (s->readonly) {
			imapd_tagged(s, out, "NO [READ-ONLY] mailbox is "
			    "read-only");
		} else if (imapd_expunge(s, true, out) != 0) {
			imapd_tagged(s, out, "NO some messages could not be "
			    "expunged");
		} else {
			imapd_sync(s, false, out);
			imapd_tagged(s, out, "OK EXPUNGE completed");
		}
	} else if (strcasecmp(name, "FETCH") == 0 && sel) {
		return imapd_cmd_fetch(s, &P, uid, out);
	} else if (strcasecmp(name, "STORE") == 0 && sel) {
		imapd_cmd_store(s, &P, uid, out);
	} else if (strcasecmp(name, "SEARCH") == 0 && sel) {
		imapd_cmd_search(s, &P, uid, out);
	} else if (strcasecmp(name, "COPY") == 0 && sel) {
		imapd_cmd_copy(s, &P, uid, out);
	} else {
		imapd_tagged(s, out, "BAD unknown command, bad arguments or "
		    "wrong state");
	}
	if (s->nerr >= IMAPD_MAX_ERRORS) {
		buf_puts(out, "* BYE too many errors\r\n");
		s->state = IMAPD_LOGOUT;
		return INSESS_CLOSE;
	}
	return 0;
}

/* A line while in IDLE or an AUTHENTICATE continuation. */
static unsigned
imapd_special_line(struct imapd_session *s, const char *line, size_t len,
    struct buf *out)
{
	memcpy(s->tag, s->saved_tag, sizeof(s->tag));
	if (s->idling) {
		s->idling = false;
		if (len == 4 && strncasecmp(line, "DONE", 4) == 0) {
			imapd_tagged(s, out, "OK IDLE terminated");
		} else {
			imapd_tagged(s, out, "BAD expected DONE");
		}
		return 0;
	}
	s->cont_auth = false;
	if (len == 1 && line[0] == '*') {
		imapd_tagged(s, out, "BAD authentication cancelled");
		return 0;
	}
	return imapd_auth_plain(s, line, len, out);
}

/* The line ending at s->in.len is complete. Returns INSESS_* flags. */
static unsigned
imapd_line(struct imapd_session *s, struct buf *out)
{
	char		*line = s->in.data + s->line_off;
	size_t		 cl = s->in.len - s->line_off - 1;	/* no LF */
	unsigned	 fl;

	if (cl > 0 && line[cl - 1] == '\r')
		cl--;
	if (s->idling || s->cont_auth) {
		fl = imapd_special_line(s, line, cl, out);
		goto reset;
	}
	if (cl >= 3 && line[cl - 1] == '}') {
		size_t		 j = cl - 2;
		bool		 nonsync = false;
		uint64_t	 n = 0, mul = 1;
		size_t		 nd = 0;

		if (line[j] == '+') {
			nonsync = true;
			j--;
		}
		while (j > 0 && line[j] >= '0' && line[j] <= '9' && nd < 12) {
			n += (uint64_t)(line[j] - '0') * mul;
			mul *= 10;
			nd++;
			j--;
		}
		if (nd > 0 && line[j] == '{') {
			/* Before login only short strings make sense. */
			uint64_t max = s->state == IMAPD_NOTAUTH ?
			    IMAPD_LITERAL_PREAUTH_MAX : IMAPD_LITERAL_MAX;

			if (nd > 10 || n > max ||
			    s->in.len + n > IMAPD_CMD_MAX) {
				if (nonsync) {
					buf_puts(out, "* BYE literal too "
					    "large\r\n");
					s->state = IMAPD_LOGOUT;
					return INSESS_CLOSE;
				}
				/* The tag, if there is one, starts the
				 * command. */
				{
					size_t tl = 0;

					while (tl < s->in.len && tl <
					    IMAPD_TAG_MAX && imapd_tag_char(
					    s->in.data[tl]))
						tl++;
					if (tl > 0 && s->in.data[tl] == ' ') {
						memcpy(s->tag, s->in.data, tl);
						s->tag[tl] = '\0';
					} else {
						strcpy(s->tag, "*");
					}
				}
				imapd_tagged(s, out, "BAD literal too large");
				fl = s->nerr >= IMAPD_MAX_ERRORS ?
				    INSESS_CLOSE : 0;
				goto reset;
			}
			s->lit_left = (size_t)n;
			if (!nonsync)
				buf_puts(out, "+ ready for literal data\r\n");
			if (n == 0)
				s->line_off = s->in.len;
			return 0;
		}
	}
	fl = imapd_dispatch(s, s->in.data, s->line_off + cl, out);
reset:
	OPENSSL_cleanse(s->in.data, s->in.len);
	buf_reset(&s->in);
	s->line_off = 0;
	if (fl & INSESS_CLOSE)
		s->state = IMAPD_LOGOUT;
	return fl;
}

static unsigned
imapd_process(struct imapd_session *s, const char *data, size_t len,
    struct buf *out)
{
	unsigned	 fl = 0;

	while (len > 0 && s->state != IMAPD_LOGOUT) {
		const char	*nl;
		size_t		 k;

		if (s->lit_left > 0) {
			k = len < s->lit_left ? len : s->lit_left;
			buf_append(&s->in, data, k);
			data += k;
			len -= k;
			s->lit_left -= k;
			if (s->lit_left == 0)
				s->line_off = s->in.len;
			continue;
		}
		nl = memchr(data, '\n', len);
		k = nl ? (size_t)(nl - data) + 1 : len;
		if (s->discarding) {
			data += k;
			len -= k;
			if (nl != NULL) {
				s->discarding = false;
				buf_printf(out, "%s BAD line too long\r\n",
				    s->bad_tag);
				if (++s->nerr >= IMAPD_MAX_ERRORS) {
					s->state = IMAPD_LOGOUT;
					fl |= INSESS_CLOSE;
				}
			}
			continue;
		}
		if (s->in.len - s->line_off + k > IMAPD_LINE_MAX) {
			/* The tag starts the command: in what we kept, or
			 * in this chunk when nothing was kept yet. */
			const char	*c = s->in.len ? s->in.data : data;
			size_t		 cl = s->in.len ? s->in.len : k, tl = 0;

			while (tl < cl && tl < IMAPD_TAG_MAX &&
			    imapd_tag_char(c[tl]))
				tl++;
			if (tl > 0 && tl < cl && c[tl] == ' ' &&
			    !s->idling && !s->cont_auth) {
				memcpy(s->bad_tag, c, tl);
				s->bad_tag[tl] = '\0';
			} else {
				strcpy(s->bad_tag, "*");
			}
			/* A continuation or IDLE ends with the bad line. */
			if (s->idling || s->cont_auth) {
				strcpy(s->bad_tag, s->saved_tag);
				s->idling = false;
				s->cont_auth = false;
			}
			OPENSSL_cleanse(s->in.data, s->in.len);
			buf_reset(&s->in);
			s->line_off = 0;
			s->discarding = true;
			continue;
		}
		buf_append(&s->in, data, k);
		data += k;
		len -= k;
		if (nl == NULL)
			break;
		fl |= imapd_line(s, out);
		if (fl & (INSESS_STARTTLS_NOW | INSESS_CLOSE | INSESS_DELAY |
		    INSESS_MORE))
			break;
	}
	if (fl & (INSESS_STARTTLS_NOW | INSESS_CLOSE)) {
		/* Plaintext pipelined after STARTTLS is dropped (RFC 3501
		 * 6.2.1, CVE-2011-0411 class). */
		buf_reset(&s->in);
		s->line_off = 0;
		s->lit_left = 0;
	} else if (fl & (INSESS_DELAY | INSESS_MORE) && len > 0) {
		buf_append(&s->pend, data, len);
	}
	if (s->state == IMAPD_LOGOUT)
		fl |= INSESS_CLOSE;
	if (s->idling)
		fl |= INSESS_IDLE_WAIT;
	else
		fl &= ~INSESS_IDLE_WAIT;
	return fl;
}

unsigned
imapd_session_input(struct imapd_session *s, const char *data, size_t len,
    struct buf *out)
{
	struct buf	 work;
	unsigned	 fl;

	if (s->state == IMAPD_LOGOUT)
		return INSESS_CLOSE;
	if (s->fetch_active && imapd_fetch_run(s, out) == INSESS_MORE) {
		/* Still streaming a FETCH: the client's next commands wait. */
		if (len > 0 && buf_append(&s->pend, data, len) != 0) {
			s->state = IMAPD_LOGOUT;
			return INSESS_CLOSE;
		}
		if (buf_unread(&s->pend) > IMAPD_CMD_MAX) {
			buf_puts(out, "* BYE too much pipelined input\r\n");
			s->state = IMAPD_LOGOUT;
			return INSESS_CLOSE;
		}
		return INSESS_MORE;
	}
	if (buf_unread(&s->pend) == 0)
		return imapd_process(s, data, len, out);
	work = s->pend;
	buf_init(&s->pend);
	if (buf_append(&work, data, len) != 0) {
		buf_free(&work);
		s->state = IMAPD_LOGOUT;
		return INSESS_CLOSE;
	}
	fl = imapd_process(s, buf_peek(&work), buf_unread(&work), out);
	OPENSSL_cleanse(work.data, work.cap);
	buf_free(&work);
	return fl;
}

unsigned
imapd_session_notify(struct imapd_session *s, struct buf *out)
{
	if (s->state == IMAPD_LOGOUT)
		return INSESS_CLOSE;
	if (!s->idling)
		return 0;
	imapd_sync(s, true, out);
	return INSESS_IDLE_WAIT;
}

unsigned
imapd_session_tick(struct imapd_session *s, struct buf *out)
{
	return imapd_session_notify(s, out);
}
