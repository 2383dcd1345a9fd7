/*
 * campaign: campaign.yaml -> struct campaign_def. See campaign.h.
 *
 * Loaded with libyaml's document API and walked against the fixed key
 * set, so the walk is bounded by the schema whatever the input (aliases
 * included). Everything that ends up in a header line is checked here,
 * once, so the renderer can trust it: no CR/LF or other control
 * characters in name, subject, addresses or extra headers, and extra
 * header names are RFC 5322 field names we do not generate ourselves.
 *
 * Limits: the yaml file and each body file at most CAMPAIGN_FILE_MAX
 * bytes; at most CAMPAIGN_HEADERS_MAX extra headers, names up to
 * CAMPAIGN_HNAME_MAX and values up to CAMPAIGN_HVALUE_MAX bytes; name and
 * subject up to CAMPAIGN_LINE_MAX bytes.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "mail/addr.h"

#include "campaigns/campaign.h"

#define CAMPAIGN_FILE_MAX	(4 * 1024 * 1024)
#define CAMPAIGN_HEADERS_MAX	64
#define CAMPAIGN_HNAME_MAX	64
#define CAMPAIGN_HVALUE_MAX	900	/* header line stays under 998 */
#define CAMPAIGN_LINE_MAX	900

/* Headers the renderer writes itself; a campaign may not set them. */
static const char *const campaign_reserved[] = {
	"From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding", "Reply-To", NULL
};

struct campaign_ctx {
	yaml_document_t	*doc;
	const char	*name;
	const char	*basedir;
	char		*err;
	size_t		 errlen;
};

static int
campaign_errat(struct campaign_ctx *x, size_t line, size_t col, int rc,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
campaign_errat(struct campaign_ctx *x, size_t line, size_t col, int rc,
    const char *fmt, ...)
{
	va_list	ap;
	int	m;

	if (x->err == NULL || x->errlen == 0)
		return rc;
	m = snprintf(x->err, x->errlen, "%s:%zu:%zu: ", x->name, line + 1,
	    col + 1);
	if (m >= 0 && (size_t)m < x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err + m, x->errlen - (size_t)m, fmt, ap);
		va_end(ap);
	}
	return rc;
}

#define campaign_err(x, n, ...) campaign_errat((x), (n)->start_mark.line, \
	(n)->start_mark.column, -EINVAL, __VA_ARGS__)

static const char *
campaign_sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* Well-formed UTF-8 (RFC 3629), no NUL. */
static bool
campaign_utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char	c = s[i], lo = 0x80, hi = 0xbf;
		size_t		need;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3;
		else
			return false;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (len - i <= need || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= need; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += need + 1;
	}
	return true;
}

/* One header-line value: no C0 controls but TAB, no DEL. */
static bool
campaign_line_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* Scalar value of key `key`, checked as a single header-safe line. */
static int
campaign_line(struct campaign_ctx *x, const char *key, yaml_node_t *v,
    bool empty_ok, char **out)
{
	size_t len;

	if (v->type != YAML_SCALAR_NODE)
		return campaign_err(x, v, "%s: expected a string", key);
	len = v->data.scalar.length;
	if (!empty_ok && len == 0)
		return campaign_err(x, v, "%s: must not be empty", key);
	if (len > CAMPAIGN_LINE_MAX)
		return campaign_err(x, v, "%s: longer than %d bytes", key,
		    CAMPAIGN_LINE_MAX);
	if (!campaign_line_ok(campaign_sval(v), len))
		return campaign_err(x, v,
		    "%s: must be one line without control characters", key);
	if ((*out = strndup(campaign_sval(v), len)) == NULL)
		return -ENOMEM;
	return 0;
}

/*
 * A mailbox as written: "addr", "<addr>", "Display Name <addr>" or
 * "\"Display, Name\" <addr>". Sets *addr to the bare address (allocated).
 */
static int
campaign_mailbox(struct campaign_ctx *x, const char *key, yaml_node_t *v,
    char **written, char **addr)
{
	const char	*s, *lt, *a, *why = NULL;
	size_t		 len, alen;
	int		 rc;

	if ((rc = campaign_line(x, key, v, false, written)) != 0)
		return rc;
	s = *written;
	len = strlen(s);
	if ((lt = strrchr(s, '<')) != NULL) {
		if (s[len - 1] != '>')
			return campaign_err(x, v,
			    "%s: expected \"Name <address>\" or an address",
			    key);
		a = lt + 1;
		alen = (size_t)(s + len - 1 - a);
		/* The display name must not hide another address part. */
		for (const char *p = s; p < lt; p++)
			if (*p == '<' || *p == '>')
				return campaign_err(x, v,
				    "%s: stray '%c' in display name", key, *p);
		if (lt > s && *s == '"') {
			const char *q = lt;

			while (q > s && (q[-1] == ' ' || q[-1] == '\t'))
				q--;
			if (q - s < 2 || q[-1] != '"')
				return campaign_err(x, v,
				    "%s: unbalanced quotes in display name",
				    key);
		}
	} else {
		a = s;
		alen = len;
		/* Surrounding blanks are a typo, not part of the address. */
		while (alen > 0 && (*a == ' ' || *a == '\t')) {
			a++;
			alen--;
		}
		while (alen > 0 && (a[alen - 1] == ' ' || a[alen - 1] == '\t'))
			alen--;
	}
	if (addr_validate(a, alen, NULL, &why) != 0)
		return campaign_err(x, v, "%s: invalid address: %s", key, why);
	if ((*addr = strndup(a, alen)) == NULL)
		return -ENOMEM;
	return 0;
}

/*
 * Read a file relative to basedir into *out (NUL-terminated, *outlen
 * bytes), at most max bytes. Errors point at the yaml node naming it.
 */
static int
campaign_read_file(struct campaign_ctx *x, const char *key, yaml_node_t *v,
    size_t max, char **out, size_t *outlen, char path[PATH_MAX])
{
	const char	*rel;
	struct stat	 st;
	FILE		*f;
	char		*data;
	size_t		 n;
	int		 fd, m, rc;

	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0)
		return campaign_err(x, v, "%s: expected a file name", key);
	rel = campaign_sval(v);
	if (strlen(rel) != v->data.scalar.length)
		return campaign_err(x, v, "%s: NUL in file name", key);
	if (rel[0] == '/' || x->basedir == NULL || x->basedir[0] == '\0')
		m = snprintf(path, PATH_MAX, "%s", rel);
	else
		m = snprintf(path, PATH_MAX, "%s/%s", x->basedir, rel);
	if (m < 0 || (size_t)m >= PATH_MAX)
		return campaign_err(x, v, "%s: path too long", key);
	/*
	 * O_NONBLOCK so a FIFO named here cannot hang us in open(); only
	 * regular files are read (no /dev/zero, no /dev/stdin).
	 */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		rc = -errno;
		return campaign_errat(x, v->start_mark.line,
		    v->start_mark.column, rc, "%s: cannot open %s: %s", key,
		    path, strerror(-rc));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return campaign_err(x, v, "%s: %s is not a regular file", key,
		    path);
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return campaign_err(x, v, "%s: %s is larger than %zu bytes",
		    key, path, max);
	}
	if ((f = fdopen(fd, "rb")) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	/* Sized by fstat; one byte more tells a file that grew. */
	if ((data = malloc((size_t)st.st_size + 2)) == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(data, 1, (size_t)st.st_size + 1, f);
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc != 0) {
		free(data);
		return campaign_errat(x, v->start_mark.line,
		    v->start_mark.column, rc, "%s: cannot read %s", key, path);
	}
	if (n > (size_t)st.st_size) {
		free(data);
		return campaign_err(x, v, "%s: %s changed while being read",
		    key, path);
	}
	data[n] = '\0';
	*out = data;
	*outlen = n;
	return 0;
}

/* A body file: as above, and valid UTF-8 text. */
static int
campaign_read_body(struct campaign_ctx *x, const char *key, yaml_node_t *v,
    char **out)
{
	char	*data, path[PATH_MAX];
	size_t	 n;
	int	 rc;

	if ((rc = campaign_read_file(x, key, v, CAMPAIGN_FILE_MAX, &data,
	    &n, path)) != 0)
		return rc;
	if (!campaign_utf8_ok((unsigned char *)data, n)) {
		free(data);
		return campaign_err(x, v, "%s: %s is not valid UTF-8 text", key,
		    path);
	}
	*out = data;
	return 0;
}

static int
campaign_body(struct campaign_ctx *x, const char *key, yaml_node_t *v,
    char **out)
{
	if (v->type != YAML_SCALAR_NODE)
		return campaign_err(x, v, "%s: expected a string", key);
	if (strlen(campaign_sval(v)) != v->data.scalar.length)
		return campaign_err(x, v, "%s: NUL not allowed", key);
	if ((*out = strndup(campaign_sval(v), v->data.scalar.length)) == NULL)
		return -ENOMEM;
	return 0;
}

/* RFC 2045 5.1: token "/" token. */
static bool
campaign_ctype_ok(const char *s)
{
	size_t	 n, slash = 0;

	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] == '/') {
			if (slash++ > 0 || n == 0)
				return false;
			continue;
		}
		if ((unsigned char)s[n] <= 32 || (unsigned char)s[n] >= 127 ||
		    strchr("()<>@,;:\\\"[]?=", s[n]) != NULL)
			return false;
	}
	return slash == 1 && s[n - 1] != '/' && n <= 127;
}

static bool
campaign_cid_ok(const char *s, size_t len)
{
	if (len == 0 || len > CAMPAIGN_CID_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    strchr("._@-", s[i]) != NULL))
			return false;
	return true;
}

/* Content type from the file name, for common image types. */
static const char *
campaign_guess_ctype(const char *name)
{
	static const char *const map[][2] = {
		{ ".png", "image/png" }, { ".jpg", "image/jpeg" },
		{ ".jpeg", "image/jpeg" }, { ".gif", "image/gif" },
		{ ".webp", "image/webp" }, { ".svg", "image/svg+xml" },
		{ ".pdf", "application/pdf" },
	};
	size_t	 n = strlen(name), k;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		k = strlen(map[i][0]);
		if (n > k && strcasecmp(name + n - k, map[i][0]) == 0)
			return map[i][1];
	}
	return NULL;
}

/* attachments: / inline: a sequence of {file, content_type, cid}. */
static int
campaign_files(struct campaign_ctx *x, struct campaign_def *d,
    const char *key, yaml_node_t *seq, bool inl, size_t *total)
{
	size_t	 n;

	if (seq->type != YAML_SEQUENCE_NODE)
		return campaign_err(x, seq, "%s: expected a list of "
		    "{file: ..., %s}", key, inl ? "cid: ..." :
		    "content_type: ...");
	n = (size_t)(seq->data.sequence.items.top -
	    seq->data.sequence.items.start);
	if (d->nfiles + n > CAMPAIGN_FILES_MAX)
		return campaign_err(x, seq, "%s: at most %d attachment and "
		    "inline files in all", key, CAMPAIGN_FILES_MAX);
	if (d->files == NULL && (d->files = calloc(CAMPAIGN_FILES_MAX,
	    sizeof(*d->files))) == NULL)
		return -ENOMEM;
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	    it < seq->data.sequence.items.top; it++) {
		yaml_node_t	*m = yaml_document_get_node(x->doc, *it);
		yaml_node_t	*vfile = NULL, *vct = NULL, *vcid = NULL;
		struct campaign_file *f = &d->files[d->nfiles];
		const char	*base, *ct;
		char		 path[PATH_MAX];
		int		 rc;

		if (m == NULL || m->type != YAML_MAPPING_NODE)
			return campaign_err(x, m ? m : seq, "%s: each entry is "
			    "a mapping", key);
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
		    p < m->data.mapping.pairs.top; p++) {
			yaml_node_t *kn = yaml_document_get_node(x->doc,
			    p->key);
			yaml_node_t *v = yaml_document_get_node(x->doc,
			    p->value);
			const char *k;

			if (kn == NULL || v == NULL ||
			    kn->type != YAML_SCALAR_NODE)
				return campaign_err(x, m, "%s: bad entry", key);
			k = campaign_sval(kn);
			if (v->type != YAML_SCALAR_NODE)
				return campaign_err(x, v, "%s.%s: expected a "
				    "string", key, k);
			if (strcmp(k, "file") == 0 && vfile == NULL)
				vfile = v;
			else if (strcmp(k, "content_type") == 0 && vct == NULL)
				vct = v;
			else if (strcmp(k, "cid") == 0 && inl && vcid == NULL)
				vcid = v;
			else
				return campaign_err(x, kn, "%s.%s: unknown or "
				    "duplicate key", key, k);
		}
		if (vfile == NULL)
			return campaign_err(x, m, "%s: missing file", key);
		if (inl && vcid == NULL)
			return campaign_err(x, m, "%s: missing cid", key);
		base = strrchr(campaign_sval(vfile), '/');
		base = base ? base + 1 : campaign_sval(vfile);
		if (*base == '\0' || !campaign_line_ok(base, strlen(base)) ||
		    strlen(base) > 255)
			return campaign_err(x, vfile, "%s.file: the file name "
			    "must be 1..255 bytes of UTF-8 without control "
			    "characters", key);
		ct = vct ? campaign_sval(vct) : campaign_guess_ctype(base);
		if (ct == NULL && !inl)
			ct = "application/octet-stream";
		if (ct == NULL)
			return campaign_err(x, vfile, "%s: content_type "
			    "required for %s", key, base);
		if (!campaign_ctype_ok(ct))
			return campaign_err(x, vct ? vct : vfile, "%s."
			    "content_type: expected type/subtype", key);
		if (vcid != NULL) {
			if (!campaign_cid_ok(campaign_sval(vcid),
			    vcid->data.scalar.length))
				return campaign_err(x, vcid, "%s.cid: 1..%d of "
				    "letters, digits and ._@-", key,
				    CAMPAIGN_CID_MAX);
			for (size_t i = 0; i < d->nfiles; i++)
				if (d->files[i].cid != NULL &&
				    strcmp(d->files[i].cid,
				    campaign_sval(vcid)) == 0)
					return campaign_err(x, vcid, "%s.cid: "
					    "duplicate cid %s", key,
					    campaign_sval(vcid));
		}
		if ((rc = campaign_read_file(x, key, vfile,
		    CAMPAIGN_ATTACH_MAX, &f->data, &f->len, path)) != 0)
			return rc;
		d->nfiles++;
		if ((f->filename = strdup(base)) == NULL ||
		    (f->content_type = strdup(ct)) == NULL ||
		    (vcid != NULL && (f->cid = strdup(campaign_sval(vcid))) ==
		    NULL))
			return -ENOMEM;
		*total += f->len;
		if (*total > CAMPAIGN_ATTACH_TOTAL)
			return campaign_err(x, vfile, "%s: attachment and "
			    "inline files exceed %d bytes in all", key,
			    CAMPAIGN_ATTACH_TOTAL);
	}
	return 0;
}


/* RFC 5322 2.2 field-name = 1*ftext; ftext = %d33-57 / %d59-126 */
static bool
campaign_hname_ok(const char *s, size_t len)
{
	if (len == 0 || len > CAMPAIGN_HNAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == ':')
			return false;
	}
	return true;
}

static int
campaign_headers(struct campaign_ctx *x, struct campaign_def *d,
    yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	size_t			 n;

	if (m->type != YAML_MAPPING_NODE)
		return campaign_err(x, m,
		    "headers: expected a mapping of Name: value");
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	n = (size_t)(e - b);
	if (n > CAMPAIGN_HEADERS_MAX)
		return campaign_err(x, m, "headers: at most %d headers",
		    CAMPAIGN_HEADERS_MAX);
	if (n == 0)
		return 0;
	if ((d->headers = calloc(n, sizeof(*d->headers))) == NULL)
		return -ENOMEM;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		struct campaign_header	*h = &d->headers[d->nheaders];
		yaml_node_t		*k, *v;
		const char		*name;
		size_t			 len;

		k = yaml_document_get_node(x->doc, p->key);
		v = yaml_document_get_node(x->doc, p->value);
		if (k == NULL || v == NULL)
			return campaign_err(x, m, "headers: bad entry");
		if (k->type != YAML_SCALAR_NODE)
			return campaign_err(x, k,
			    "headers: names must be strings");
		name = campaign_sval(k);
		len = k->data.scalar.length;
		if (!campaign_hname_ok(name, len))
			return campaign_err(x, k, "headers: invalid header "
			    "name (printable ASCII without ':' or space, "
			    "at most %d)", CAMPAIGN_HNAME_MAX);
		for (const char *const *r = campaign_reserved; *r; r++)
			if (strcasecmp(*r, name) == 0)
				return campaign_err(x, k, "headers.%s: set by "
				    "ringmail itself; use the campaign keys",
				    name);
		for (size_t i = 0; i < d->nheaders; i++)
			if (strcasecmp(d->headers[i].name, name) == 0)
				return campaign_err(x, k,
				    "headers.%s: duplicate header", name);
		if (v->type != YAML_SCALAR_NODE)
			return campaign_err(x, v, "headers.%s: expected a "
			    "string", name);
		if (v->data.scalar.length > CAMPAIGN_HVALUE_MAX ||
		    !campaign_line_ok(campaign_sval(v), v->data.scalar.length))
			return campaign_err(x, v, "headers.%s: value must be "
			    "one line without control characters, at most %d "
			    "bytes", name, CAMPAIGN_HVALUE_MAX);
		if ((h->name = strndup(name, len)) == NULL ||
		    (h->value = strndup(campaign_sval(v),
		    v->data.scalar.length)) == NULL) {
			free(h->name);
			h->name = NULL;
			return -ENOMEM;
		}
		d->nheaders++;
	}
	return 0;
}

enum campaign_key {
	CAMPAIGN_K_NAME,
	CAMPAIGN_K_FROM,
	CAMPAIGN_K_REPLY_TO,
	CAMPAIGN_K_SUBJECT,
	CAMPAIGN_K_TEXT,
	CAMPAIGN_K_TEXT_FILE,
	CAMPAIGN_K_HTML,
	CAMPAIGN_K_HTML_FILE,
	CAMPAIGN_K_HEADERS,
	CAMPAIGN_K_ATTACHMENTS,
	CAMPAIGN_K_INLINE,
	CAMPAIGN_K_COUNT
};

static const char *const campaign_keys[CAMPAIGN_K_COUNT] = {
	"name", "from", "reply_to", "subject", "text", "text_file", "html",
	"html_file", "headers", "attachments", "inline"
};

static int
campaign_walk(struct campaign_ctx *x, struct campaign_def *d,
    yaml_node_t *root)
{
	yaml_node_t	*seen[CAMPAIGN_K_COUNT] = { NULL };
	yaml_node_t	*kn, *v;
	char		*junk = NULL;
	size_t		 line = 0, col = 0, total = 0;
	int		 rc;

	if (root != NULL) {
		if (root->type != YAML_MAPPING_NODE)
			return campaign_err(x, root, "expected a mapping");
		line = root->start_mark.line;
		col = root->start_mark.column;
		for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
		    p < root->data.mapping.pairs.top; p++) {
			int k;

			kn = yaml_document_get_node(x->doc, p->key);
			v = yaml_document_get_node(x->doc, p->value);
			if (kn == NULL || v == NULL)
				return campaign_err(x, root, "bad mapping");
			if (kn->type != YAML_SCALAR_NODE)
				return campaign_err(x, kn,
				    "keys must be strings");
			for (k = 0; k < CAMPAIGN_K_COUNT; k++)
				if (strcmp(campaign_keys[k],
				    campaign_sval(kn)) == 0)
					break;
			if (k == CAMPAIGN_K_COUNT)
				return campaign_err(x, kn, "%s: unknown key",
				    campaign_sval(kn));
			if (seen[k] != NULL)
				return campaign_err(x, kn, "%s: duplicate key",
				    campaign_keys[k]);
			if ((k == CAMPAIGN_K_TEXT && seen[CAMPAIGN_K_TEXT_FILE])
			    || (k == CAMPAIGN_K_TEXT_FILE &&
			    seen[CAMPAIGN_K_TEXT]))
				return campaign_err(x, kn, "%s: use either "
				    "text or text_file, not both",
				    campaign_keys[k]);
			if ((k == CAMPAIGN_K_HTML && seen[CAMPAIGN_K_HTML_FILE])
			    || (k == CAMPAIGN_K_HTML_FILE &&
			    seen[CAMPAIGN_K_HTML]))
				return campaign_err(x, kn, "%s: use either "
				    "html or html_file, not both",
				    campaign_keys[k]);
			seen[k] = v;
		}
	}
	/* Required keys, reported at the top of the document. */
	if (seen[CAMPAIGN_K_NAME] == NULL)
		return campaign_errat(x, line, col, -EINVAL,
		    "missing required key: name");
	if (seen[CAMPAIGN_K_FROM] == NULL)
		return campaign_errat(x, line, col, -EINVAL,
		    "missing required key: from");
	if (seen[CAMPAIGN_K_SUBJECT] == NULL)
		return campaign_errat(x, line, col, -EINVAL,
		    "missing required key: subject");
	if (seen[CAMPAIGN_K_TEXT] == NULL && seen[CAMPAIGN_K_TEXT_FILE] ==
	    NULL && seen[CAMPAIGN_K_HTML] == NULL &&
	    seen[CAMPAIGN_K_HTML_FILE] == NULL)
		return campaign_errat(x, line, col, -EINVAL,
		    "missing body: one of text, text_file, html, html_file");

	/* Values, in file order of importance. */
	if ((rc = campaign_line(x, "name", seen[CAMPAIGN_K_NAME], false,
	    &d->name)) != 0)
		return rc;
	if ((rc = campaign_mailbox(x, "from", seen[CAMPAIGN_K_FROM], &d->from,
	    &d->from_addr)) != 0)
		return rc;
	if (seen[CAMPAIGN_K_REPLY_TO] != NULL) {
		rc = campaign_mailbox(x, "reply_to", seen[CAMPAIGN_K_REPLY_TO],
		    &d->reply_to, &junk);
		free(junk);
		if (rc != 0)
			return rc;
	}
	if ((rc = campaign_line(x, "subject", seen[CAMPAIGN_K_SUBJECT], false,
	    &d->subject)) != 0)
		return rc;
	if (seen[CAMPAIGN_K_TEXT] != NULL)
		rc = campaign_body(x, "text", seen[CAMPAIGN_K_TEXT], &d->text);
	else if (seen[CAMPAIGN_K_TEXT_FILE] != NULL)
		rc = campaign_read_body(x, "text_file",
		    seen[CAMPAIGN_K_TEXT_FILE], &d->text);
	if (rc != 0)
		return rc;
	if (seen[CAMPAIGN_K_HTML] != NULL)
		rc = campaign_body(x, "html", seen[CAMPAIGN_K_HTML], &d->html);
	else if (seen[CAMPAIGN_K_HTML_FILE] != NULL)
		rc = campaign_read_body(x, "html_file",
		    seen[CAMPAIGN_K_HTML_FILE], &d->html);
	if (rc != 0)
		return rc;
	if (seen[CAMPAIGN_K_HEADERS] != NULL &&
	    (rc = campaign_headers(x, d, seen[CAMPAIGN_K_HEADERS])) != 0)
		return rc;
	if (seen[CAMPAIGN_K_ATTACHMENTS] != NULL &&
	    (rc = campaign_files(x, d, "attachments",
	    seen[CAMPAIGN_K_ATTACHMENTS], false, &total)) != 0)
		return rc;
	if (seen[CAMPAIGN_K_INLINE] != NULL) {
		if (seen[CAMPAIGN_K_HTML] == NULL &&
		    seen[CAMPAIGN_K_HTML_FILE] == NULL)
			return campaign_err(x, seen[CAMPAIGN_K_INLINE],
			    "inline: images need an html body");
		rc = campaign_files(x, d, "inline", seen[CAMPAIGN_K_INLINE],
		    true, &total);
	}
	return rc;
}

void
campaign_def_free(struct campaign_def *d)
{
	if (d == NULL)
		return;
	free(d->name);
	free(d->from);
	free(d->from_addr);
	free(d->reply_to);
	free(d->subject);
	free(d->text);
	free(d->html);
	for (size_t i = 0; i < d->nheaders; i++) {
		free(d->headers[i].name);
		free(d->headers[i].value);
	}
	free(d->headers);
	for (size_t i = 0; i < d->nfiles; i++) {
		free(d->files[i].filename);
		free(d->files[i].content_type);
		free(d->files[i].cid);
		free(d->files[i].data);
	}
	free(d->files);
	free(d);
}

int
campaign_def_load_string(const char *yaml, size_t len, const char *name,
    const char *basedir, struct campaign_def **out, char *err, size_t errlen)
{
	struct campaign_ctx	 x;
	yaml_parser_t		 parser;
	yaml_document_t		 doc, extra;
	struct campaign_def	*d;
	yaml_node_t		*root;
	int			 rc;

	if (name == NULL)
		name = "campaign.yaml";
	x = (struct campaign_ctx){ &doc, name, basedir, err, errlen };
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	if (!yaml_parser_initialize(&parser)) {
		free(d);
		return -ENOMEM;
	}
	if (yaml == NULL) {	/* libyaml asserts on a NULL input */
		yaml = "";
		len = 0;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml,
	    len);
	if (!yaml_parser_load(&parser, &doc)) {
		size_t line = parser.problem_mark.line;
		size_t col = parser.problem_mark.column;

		/* Reader errors (bad UTF-8) carry only a byte offset. */
		if (parser.error == YAML_READER_ERROR) {
			size_t off = parser.problem_offset < len ?
			    parser.problem_offset : len;

			line = col = 0;
			for (size_t i = 0; i < off; i++) {
				if (yaml[i] == '\n') {
					line++;
					col = 0;
				} else if (((unsigned char)yaml[i] & 0xc0) !=
				    0x80) {
					col++;
				}
			}
		}
		rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
		campaign_errat(&x, line, col, rc, "%s%s%s",
		    parser.problem != NULL ? parser.problem : "syntax error",
		    parser.context != NULL ? " " : "",
		    parser.context != NULL ? parser.context : "");
		yaml_parser_delete(&parser);
		free(d);
		return rc;
	}
	root = yaml_document_get_root_node(&doc);
	rc = campaign_walk(&x, d, root);
	if (rc == 0) {
		if (!yaml_parser_load(&parser, &extra)) {
			rc = campaign_errat(&x, parser.problem_mark.line,
			    parser.problem_mark.column, -EINVAL,
			    "invalid YAML after the first document");
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&extra);

			if (r2 != NULL)
				rc = campaign_err(&x, r2,
				    "only one YAML document allowed");
			yaml_document_delete(&extra);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc != 0) {
		campaign_def_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int
campaign_def_load(const char *path, struct campaign_def **out, char *err,
    size_t errlen)
{
	FILE		*f;
	char		*data, *dir, *slash;
	size_t		 n;
	int		 rc;

	if ((f = fopen(path, "rb")) == NULL) {
		rc = -errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if ((data = malloc(CAMPAIGN_FILE_MAX + 1)) == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(data, 1, CAMPAIGN_FILE_MAX + 1, f);
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc == 0 && n > CAMPAIGN_FILE_MAX)
		rc = -EFBIG;
	if (rc != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, rc == -EIO ?
			    "read error" : "file too large");
		free(data);
		return rc;
	}
	/* Body files are relative to the yaml file's directory. */
	if ((dir = strdup(path)) == NULL) {
		free(data);
		return -ENOMEM;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	rc = campaign_def_load_string(data, n, path, dir, out, err, errlen);
	free(dir);
	free(data);
	return rc;
}
