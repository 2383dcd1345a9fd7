/*
 * config: config.yaml -> struct config. See config.h.
 *
 * The document is loaded with libyaml's document API and walked against a
 * fixed schema (the key tables below), so the walk is bounded by the
 * schema, not by the input: a recursive alias or a deep nest can only
 * ever meet a "must be a mapping/scalar" check. Every error names the
 * offending node's position (libyaml marks are 0-based; we print 1-based).
 *
 * Ranges (all inclusive; a value outside is an error):
 *   redis.port                     1 .. 65535
 *   redis.db                       0 .. 65535
 *   worker.threads                 0 .. 256      (0 = one per core)
 *   worker.fetch_batch             1 .. 1000
 *   worker.max_queued              1 .. 1000000
 *   worker.claim_idle              1 s .. 1 d
 *   smtp.connection_limit          1 .. 10000
 *   smtp.max_deliveries_per_connection 1 .. 100000
 *   smtp.timeouts.*                1 ms .. 1 d
 *   smtp.tls                       opportunistic|required|verify|none
 *   smtp.tls_ca_file               path, at most PATH_MAX - 1 bytes, no
 *                                  control characters; "" = system CAs.
 *                                  Readability is checked by the worker
 *                                  (tls_client_ctx_new) at startup, not
 *                                  here, so parsing never touches files.
 *   dkim                           at most CONFIG_DKIM_MAX entries
 *   dkim_headers                   at most CONFIG_DKIM_HEADERS_MAX names
 *   unsubscribe.max_age            0 .. 3650 d   (0 = never expires)
 *   unsubscribe.listen             "IP:port" or "[IPv6]:port", IP literal,
 *                                  port 1 .. 65535 ("127.0.0.1:8025"):
 *                                  where unsubscribe-server listens
 *   inbound.listen_*               host:port, [v6]:port or "" (off)
 *   inbound.max_message_size       1KB .. 1GB   (K/M/GB are x1024)
 *   inbound.max_connections_per_ip 1 .. 100000
 *   inbound.max_connections        1 .. 100000
 *   inbound.max_recipients         1 .. 10000
 *   inbound.{bounce,reply}_domains at most CONFIG_IN_DOMAINS_MAX each,
 *                                  no domain in both lists
 *   inbound.tls_cert_file/key_file together; imaps/pop3s need them
 * Cross-field rules: verp.bounce_domain and verp.secret_file go together;
 * unsubscribe.secret_file needs a url or a mailto_domain; dkim_dual needs
 * two keys for every DKIM domain (not both of one explicit algorithm).
 * Secrets are never in this file, only the paths of files holding them.
 *   retry.delay                    100 ms .. 30 d
 *   retry.max_delay                100 ms .. 30 d
 *   retry.max_age                  1 s .. 30 d
 *   retry.max_attempts             1 .. 1000
 *   routes                         at most CONFIG_ROUTES_MAX entries
 *   dns.resolvers                  at most CONFIG_DNS_RESOLVERS_MAX IP
 *                                  addresses, port 1 .. 65535 (53)
 *   dns.timeout                    100 ms .. 1 min
 *   dns.tries                      1 .. 10
 *   dns.cache_size                 0 .. 10000000   (0 = no cache)
 * Strings that end up on the wire (ehlo_name, message_id_domain, route
 * hosts) are restricted to host-name characters, so a config file can
 * never inject a CR/LF into an SMTP command or a header.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "lib/log.h"

#include "core/config.h"

#define CONFIG_FILE_MAX		(1024 * 1024)	/* bytes; a config is small */
#define CONFIG_STR_MAX		255		/* host names, domains */
#define CONFIG_PASSWORD_MAX	512

#define MS_SEC	1000u
#define MS_MIN	(60u * MS_SEC)
#define MS_HOUR	(60u * MS_MIN)
#define MS_DAY	(24u * MS_HOUR)

enum config_type {
	CONFIG_T_STR,		/* free string, no control chars */
	CONFIG_T_HOST,		/* host name / IP literal, non-empty */
	CONFIG_T_DOMAIN_OPT,	/* host name or "" (= NULL) */
	CONFIG_T_SECRET,	/* "" = NULL; never printed */
	CONFIG_T_PORT,
	CONFIG_T_U32,
	CONFIG_T_DURATION,	/* stored as milliseconds */
	CONFIG_T_BOOL,
	CONFIG_T_LOGLEVEL,
	CONFIG_T_TLSMODE,	/* enum config_tls_mode */
	CONFIG_T_PATH_OPT,	/* file path or "" (= NULL) */
	CONFIG_T_URL,		/* https URL or "" (= NULL) */
	CONFIG_T_DURATION_S,	/* stored as seconds */
	CONFIG_T_SECTION,	/* nested mapping: sub */
	CONFIG_T_ROUTES,
	CONFIG_T_DKIM,		/* sequence of key mappings */
	CONFIG_T_POOLS,		/* mapping name -> sequence of sources */
	CONFIG_T_LISTEN,	/* "host:port" or "" (= NULL) */
	CONFIG_T_SIZE,		/* bytes: 1000, 64KB, 25MB, 1GB (x1024) */
	CONFIG_T_USER,		/* mailbox user name */
	CONFIG_T_DOMAINS,	/* list of domain names */
	CONFIG_T_HNAMES,	/* sequence of header names */
	CONFIG_T_RESOLVERS,	/* list of IP[:port] */
	CONFIG_T_SHAPING,	/* shaping: defaults, sites, sources */
	CONFIG_T_WARMUP,	/* warmup: sources, schedule, thresholds */
};

struct config_key {
	const char		*name;
	enum config_type	 type;
	size_t			 off;	/* into struct config */
	uint64_t		 min, max;
	const struct config_key	*sub;	/* CONFIG_T_SECTION */
};

#define K(n, t, f, lo, hi) \
	{ n, t, offsetof(struct config, f), lo, hi, NULL }
#define KT(n, f) { n, CONFIG_T_DURATION, \
	offsetof(struct config, timeouts) + \
	offsetof(struct config_timeouts, f), 1, MS_DAY, NULL }

static const struct config_key config_redis[] = {
	K("host", CONFIG_T_HOST, redis_host, 0, 0),
	K("port", CONFIG_T_PORT, redis_port, 1, 65535),
	K("db", CONFIG_T_U32, redis_db, 0, 65535),
	K("password", CONFIG_T_SECRET, redis_password, 0, 0),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_worker[] = {
	K("threads", CONFIG_T_U32, worker_threads, 0, 256),
	K("fetch_batch", CONFIG_T_U32, fetch_batch, 1, 1000),
	K("max_queued", CONFIG_T_U32, max_queued, 1, 1000000),
	K("claim_idle", CONFIG_T_DURATION, claim_idle_ms, MS_SEC, MS_DAY),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_timeouts[] = {
	KT("connect", connect),
	KT("banner", banner),
	KT("ehlo", ehlo),
	KT("mail_from", mail_from),
	KT("rcpt_to", rcpt_to),
	KT("data", data),
	KT("data_block", data_block),
	KT("data_dot", data_dot),
	KT("idle", idle),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_smtp[] = {
	K("ehlo_name", CONFIG_T_DOMAIN_OPT, ehlo_name, 0, 0),
	K("pipelining", CONFIG_T_BOOL, pipelining, 0, 0),
	K("pool", CONFIG_T_DOMAIN_OPT, pool, 0, 0),
	K("remote_port", CONFIG_T_PORT, remote_port, 1, 65535),
	K("host_penalty", CONFIG_T_DURATION, host_penalty_ms, 100, MS_HOUR),
	K("connection_limit", CONFIG_T_U32, connection_limit, 1, 10000),
	K("max_deliveries_per_connection", CONFIG_T_U32,
	    max_deliveries_per_connection, 1, 100000),
	{ "timeouts", CONFIG_T_SECTION, 0, 0, 0, config_timeouts },
	K("tls", CONFIG_T_TLSMODE, tls, 0, 0),
	K("tls_ca_file", CONFIG_T_PATH_OPT, tls_ca_file, 0, 0),
	K("chunking", CONFIG_T_BOOL, chunking, 0, 0),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_message[] = {
	K("message_id_domain", CONFIG_T_DOMAIN_OPT, message_id_domain, 0, 0),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_retry[] = {
	K("delay", CONFIG_T_DURATION, retry_delay_ms, 100, 30ull * MS_DAY),
	K("max_delay", CONFIG_T_DURATION, retry_max_delay_ms, 100,
	    30ull * MS_DAY),
	K("max_age", CONFIG_T_DURATION, retry_max_age_ms, MS_SEC,
	    30ull * MS_DAY),
	K("max_attempts", CONFIG_T_U32, retry_max_attempts, 1, 1000),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_dns[] = {
	{ "resolvers", CONFIG_T_RESOLVERS, 0, 0, 0, NULL },
	K("timeout", CONFIG_T_DURATION, dns_timeout_ms, 100, MS_MIN),
	K("tries", CONFIG_T_U32, dns_tries, 1, 10),
	K("cache_size", CONFIG_T_U32, dns_cache_size, 0, 10000000),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_log[] = {
	K("level", CONFIG_T_LOGLEVEL, log_level, 0, 0),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_verp[] = {
	K("bounce_domain", CONFIG_T_DOMAIN_OPT, verp_bounce_domain, 0, 0),
	K("secret_file", CONFIG_T_PATH_OPT, verp_secret_file, 0, 0),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_unsub[] = {
	K("url", CONFIG_T_URL, unsub_url, 0, 0),
	K("mailto_domain", CONFIG_T_DOMAIN_OPT, unsub_mailto_domain, 0, 0),
	K("secret_file", CONFIG_T_PATH_OPT, unsub_secret_file, 0, 0),
	K("max_age", CONFIG_T_DURATION_S, unsub_max_age_s, 0, 3650ull * 86400),
	K("listen", CONFIG_T_STR, unsub_listen, 0, 0),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_inbound[] = {
	K("listen_smtp", CONFIG_T_LISTEN, in_listen_smtp, 0, 0),
	K("listen_imap", CONFIG_T_LISTEN, in_listen_imap, 0, 0),
	K("listen_imaps", CONFIG_T_LISTEN, in_listen_imaps, 0, 0),
	K("listen_pop3", CONFIG_T_LISTEN, in_listen_pop3, 0, 0),
	K("listen_pop3s", CONFIG_T_LISTEN, in_listen_pop3s, 0, 0),
	K("tls_cert_file", CONFIG_T_PATH_OPT, in_tls_cert_file, 0, 0),
	K("tls_key_file", CONFIG_T_PATH_OPT, in_tls_key_file, 0, 0),
	K("maildir_root", CONFIG_T_PATH_OPT, in_maildir_root, 0, 0),
	K("users_file", CONFIG_T_PATH_OPT, in_users_file, 0, 0),
	K("bounce_domains", CONFIG_T_DOMAINS, in_bounce_domains, 0, 0),
	K("reply_domains", CONFIG_T_DOMAINS, in_reply_domains, 0, 0),
	K("bounce_mailbox", CONFIG_T_USER, in_bounce_mailbox, 0, 0),
	K("reply_mailbox", CONFIG_T_USER, in_reply_mailbox, 0, 0),
	K("max_message_size", CONFIG_T_SIZE, in_max_message_size, 1024,
	    1024ull * 1024 * 1024),
	K("max_connections_per_ip", CONFIG_T_U32, in_max_connections_per_ip,
	    1, 100000),
	K("max_connections", CONFIG_T_U32, in_max_connections, 1, 100000),
	K("max_recipients", CONFIG_T_U32, in_max_recipients, 1, 10000),
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

static const struct config_key config_top[] = {
	{ "redis", CONFIG_T_SECTION, 0, 0, 0, config_redis },
	{ "worker", CONFIG_T_SECTION, 0, 0, 0, config_worker },
	{ "smtp", CONFIG_T_SECTION, 0, 0, 0, config_smtp },
	{ "message", CONFIG_T_SECTION, 0, 0, 0, config_message },
	{ "retry", CONFIG_T_SECTION, 0, 0, 0, config_retry },
	{ "routes", CONFIG_T_ROUTES, 0, 0, 0, NULL },
	{ "dns", CONFIG_T_SECTION, 0, 0, 0, config_dns },
	{ "log", CONFIG_T_SECTION, 0, 0, 0, config_log },
	{ "dkim", CONFIG_T_DKIM, 0, 0, 0, NULL },
	{ "pools", CONFIG_T_POOLS, 0, 0, 0, NULL },
	K("dkim_dual", CONFIG_T_BOOL, dkim_dual, 0, 0),
	{ "dkim_headers", CONFIG_T_HNAMES, 0, 0, 0, NULL },
	{ "verp", CONFIG_T_SECTION, 0, 0, 0, config_verp },
	{ "inbound", CONFIG_T_SECTION, 0, 0, 0, config_inbound },
	{ "unsubscribe", CONFIG_T_SECTION, 0, 0, 0, config_unsub },
	{ "shaping", CONFIG_T_SHAPING, 0, 0, 0, NULL },
	{ "warmup", CONFIG_T_WARMUP, 0, 0, 0, NULL },
	{ NULL, CONFIG_T_STR, 0, 0, 0, NULL }
};

#undef K
#undef KT

/* One load in progress: where messages go. */
struct config_ctx {
	yaml_document_t	*doc;
	const char	*name;
	char		*err;
	size_t		 errlen;
	yaml_node_t	*dual;		/* dkim_dual's value, for messages */
};

static int
config_errf(struct config_ctx *x, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
config_errf(struct config_ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
	va_list	ap;
	int	m;

	if (x->err == NULL || x->errlen == 0)
		return -EINVAL;
	m = snprintf(x->err, x->errlen, "%s:%zu:%zu: ", x->name,
	    n->start_mark.line + 1, n->start_mark.column + 1);
	if (m >= 0 && (size_t)m < x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err + m, x->errlen - (size_t)m, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char *
config_sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* A plain "", "~" or "null" scalar: a key written with nothing after it. */
static bool
config_is_null(const yaml_node_t *n)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = config_sval(n);
	return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

/*
 * Host-name characters (LDH, dots) plus ':' for bare IPv6 literals and
 * '_' which some internal names use. Bounded, non-empty.
 */
static bool
config_host_ok(const char *s, size_t len)
{
	if (len == 0 || len > CONFIG_STR_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != ':' &&
		    c != '_')
			return false;
	}
	return true;
}

/* LDH labels separated by dots, no empty label, labels <= 63. */
static bool
config_domain_ok(const char *s, size_t len)
{
	size_t lab = 0;

	if (len == 0 || len > CONFIG_STR_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && lab > 0) && c != '_')
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0 && s[len - 1] != '-';
}

/* Unsigned decimal, digits only (no sign, no spaces). */
static int
config_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "30" (seconds), "250ms", "30s", "5m", "1h", "2d" -> milliseconds. */
static int
config_parse_duration(const char *s, size_t len, uint64_t *ms)
{
	size_t		 n = 0;
	uint64_t	 v, mul;
	const char	*u;

	while (n < len && s[n] >= '0' && s[n] <= '9')
		n++;
	/* 12 digits of days still fit in 64 bits as ms. */
	if (n == 0 || n > 12 || config_parse_u64(s, n, &v) != 0)
		return -EINVAL;
	u = s + n;
	switch (len - n) {
	case 0:
		mul = MS_SEC;
		break;
	case 1:
		if (*u == 's')
			mul = MS_SEC;
		else if (*u == 'm')
			mul = MS_MIN;
		else if (*u == 'h')
			mul = MS_HOUR;
		else if (*u == 'd')
			mul = MS_DAY;
		else
			return -EINVAL;
		break;
	case 2:
		if (u[0] != 'm' || u[1] != 's')
			return -EINVAL;
		mul = 1;
		break;
	default:
		return -EINVAL;
	}
	*ms = v * mul;
	return 0;
}

/*
 * "host:port" or "[v6]:port" -> host (brackets stripped, allocated) and
 * port 1..65535. 0, -EINVAL or -ENOMEM.
 */
static int
config_parse_hostport(const char *s, size_t len, char **host, uint16_t *port)
{
	const char	*h, *colon;
	size_t		 hlen;
	uint64_t	 p;
	char		 tmp[INET6_ADDRSTRLEN + 1];

	if (len > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL || rb + 1 >= s + len || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
		if (hlen == 0 || hlen >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, h, hlen);
		tmp[hlen] = '\0';
		{
			struct in6_addr a6;

			if (inet_pton(AF_INET6, tmp, &a6) != 1)
				return -EINVAL;
		}
	} else {
		colon = memchr(s, ':', len);
		if (colon == NULL)
			return -EINVAL;
		h = s;
		hlen = (size_t)(colon - s);
		/* A second ':' means an unbracketed IPv6 literal. */
		if (memchr(colon + 1, ':', len - hlen - 1) != NULL ||
		    !config_host_ok(h, hlen))
			return -EINVAL;
	}
	if (config_parse_u64(colon + 1, (size_t)(s + len - colon - 1), &p) !=
	    0 || p == 0 || p > 65535)
		return -EINVAL;
	if ((*host = strndup(h, hlen)) == NULL)
		return -ENOMEM;
	*port = (uint16_t)p;
	return 0;
}

/* "25MB", "64KB", "1GB" (powers of 1024), "1000" (bytes) -> bytes. */
static int
config_parse_size(const char *s, size_t len, uint64_t *out)
{
	size_t		n = 0;
	uint64_t	v, mul = 1;

	while (n < len && s[n] >= '0' && s[n] <= '9')
		n++;
	if (n == 0 || n > 12 || config_parse_u64(s, n, &v) != 0)
		return -EINVAL;
	if (len - n == 2 && s[n + 1] == 'B') {
		if (s[n] == 'K')
			mul = 1024;
		else if (s[n] == 'M')
			mul = 1024 * 1024;
		else if (s[n] == 'G')
			mul = 1024 * 1024 * 1024;
		else
			return -EINVAL;
	} else if (len - n == 1 && s[n] == 'B') {
		mul = 1;
	} else if (len != n) {
		return -EINVAL;
	}
	*out = v * mul;
	return 0;
}

/* A mailbox user name: the rule of in/auth.h auth_user_valid (core/ may
 * not include in/). */
static bool
config_user_ok(const char *s, size_t len)
{
	if (len == 0 || len > 64 || strlen(s) != len || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '@' && s[i] != '+' && s[i] != '-')
			return false;
	return true;
}

/* Scalar text check shared by string kinds: no NUL, no control chars. */
static bool
config_text_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * An https URL (http only for a loopback host, for tests) that can sit
 * inside List-Unsubscribe's <...> (RFC 2369) with the token appended:
 * printable ASCII without SP, quotes, <, >, ',' or backslash.
 */
static bool
config_url_ok(const char *s, size_t len)
{
	static const char *const pre[] = { "https://", "http://localhost",
	    "http://127.0.0.1", "http://[::1]" };
	size_t plen = 0;

	if (len > CONFIG_URL_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		size_t n = strlen(pre[i]);

		if (len >= n && strncasecmp(s, pre[i], n) == 0) {
			plen = n;
			/* http://localhost.evil.example is not loopback */
			if (i > 0 && len > n && s[n] != ':' && s[n] != '/')
				return false;
			break;
		}
	}
	if (plen == 0 || (plen == 8 && (len == 8 || s[8] == '/')))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("\"<>,\\", c) != NULL)
			return false;
	}
	return true;
}

static int
config_set_str(char **dst, const char *s, size_t len)
{
	char *v = NULL;

	if (len > 0 && (v = strndup(s, len)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = v;
	return 0;
}

/* smtp.tls value -> enum config_tls_mode, or -1. */
static int
config_tls_parse(const char *s)
{
	static const char *const names[] = {
		[CONFIG_TLS_OPPORTUNISTIC] = "opportunistic",
		[CONFIG_TLS_REQUIRED] = "required",
		[CONFIG_TLS_VERIFY] = "verify",
		[CONFIG_TLS_NONE] = "none",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

static int
config_scalar(struct config_ctx *x, struct config *c, const char *path,
    const struct config_key *k, yaml_node_t *v)
{
	const char	*s;
	size_t		 len;
	uint64_t	 u;
	void		*dst = (char *)c + k->off;
	int		 lvl;

	if (v->type != YAML_SCALAR_NODE)
		return config_errf(x, v, "%s: expected a scalar value", path);
	s = config_sval(v);
	len = v->data.scalar.length;
	switch (k->type) {
	case CONFIG_T_STR:
		if (!config_text_ok(s, len))
			return config_errf(x, v,
			    "%s: control characters not allowed", path);
		return config_set_str(dst, s, len);
	case CONFIG_T_HOST:
		if (!config_host_ok(s, len))
			return config_errf(x, v,
			    "%s: expected a host name or IP address", path);
		return config_set_str(dst, s, len);
	case CONFIG_T_DOMAIN_OPT:
		if (config_is_null(v) || len == 0)
			return config_set_str(dst, s, 0);
		if (!config_domain_ok(s, len))
			return config_errf(x, v, "%s: expected a domain name",
			    path);
		return config_set_str(dst, s, len);
	case CONFIG_T_SECRET:
		if (config_is_null(v))
			len = 0;
		if (len > CONFIG_PASSWORD_MAX || memchr(s, '\0', len) ||
		    memchr(s, '\r', len) || memchr(s, '\n', len))
			/* Never echo the value. */
			return config_errf(x, v,
			    "%s: must be at most %d bytes without NUL/CR/LF",
			    path, CONFIG_PASSWORD_MAX);
		return config_set_str(dst, s, len);
	case CONFIG_T_PORT:
	case CONFIG_T_U32:
		if (config_parse_u64(s, len, &u) != 0)
			return config_errf(x, v, "%s: expected an integer",
			    path);
		if (u < k->min || u > k->max)
			return config_errf(x, v,
			    "%s: must be between %llu and %llu", path,
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
		if (k->type == CONFIG_T_PORT)
			*(uint16_t *)dst = (uint16_t)u;
		else
			*(uint32_t *)dst = (uint32_t)u;
		return 0;
	case CONFIG_T_DURATION:
		if (config_parse_duration(s, len, &u) != 0)
			return config_errf(x, v,
			    "%s: expected a duration like 30s, 5m, 250ms",
			    path);
		if (u < k->min || u > k->max)
			return config_errf(x, v,
			    "%s: must be between %llums and %llums", path,
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
		*(uint32_t *)dst = (uint32_t)u;
		return 0;
	case CONFIG_T_BOOL:
		if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
			*(bool *)dst = true;
		else if (strcasecmp(s, "false") == 0 ||
		    strcasecmp(s, "no") == 0)
			*(bool *)dst = false;
		else
			return config_errf(x, v,
			    "%s: expected true, false, yes or no", path);
		return 0;
	case CONFIG_T_LOGLEVEL:
		if (strlen(s) != len || (lvl = log_level_parse(s)) < 0)
			return config_errf(x, v,
			    "%s: expected error, warn, info or debug", path);
		*(int *)dst = lvl;
		return 0;
	case CONFIG_T_TLSMODE:
		if (strlen(s) != len || (lvl = config_tls_parse(s)) < 0)
			return config_errf(x, v, "%s: expected opportunistic, "
			    "required, verify or none", path);
		*(enum config_tls_mode *)dst = (enum config_tls_mode)lvl;
		return 0;
	case CONFIG_T_PATH_OPT:
		if (config_is_null(v) || len == 0)
			return config_set_str(dst, s, 0);
		if (len >= PATH_MAX || strlen(s) != len ||
		    !config_text_ok(s, len))
			return config_errf(x, v, "%s: expected a file path "
			    "(no control characters, under %d bytes)", path,
			    PATH_MAX);
		return config_set_str(dst, s, len);
	case CONFIG_T_URL:
		if (config_is_null(v) || len == 0)
			return config_set_str(dst, s, 0);
		if (!config_url_ok(s, len))
			return config_errf(x, v, "%s: expected an https:// URL "
			    "(http:// only for localhost) of at most %d "
			    "characters without spaces, quotes, <, > or ','",
			    path, CONFIG_URL_MAX);
		return config_set_str(dst, s, len);
	case CONFIG_T_DURATION_S:
		if (config_parse_duration(s, len, &u) != 0)
			return config_errf(x, v,
			    "%s: expected a duration like 90d, 12h, 30m",
			    path);
		if (u < k->min * MS_SEC || u > k->max * MS_SEC)
			return config_errf(x, v,
			    "%s: must be between %llus and %llus", path,
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
		*(uint32_t *)dst = (uint32_t)(u / MS_SEC);
		return 0;
	case CONFIG_T_LISTEN: {
		char		*h = NULL;
		uint16_t	 port;

		if (config_is_null(v) || len == 0)
			return config_set_str(dst, s, 0);
		if (strlen(s) != len ||
		    config_parse_hostport(s, len, &h, &port) != 0)
			return config_errf(x, v, "%s: expected host:port or "
			    "[v6]:port (\"\" = off)", path);
		free(h);
		return config_set_str(dst, s, len);
	}
	case CONFIG_T_SIZE:
		if (config_parse_size(s, len, &u) != 0)
			return config_errf(x, v, "%s: expected a size like "
			    "1000, 64KB, 25MB, 1GB", path);
		if (u < k->min || u > k->max)
			return config_errf(x, v, "%s: must be between %llu "
			    "and %llu bytes", path,
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
		*(uint64_t *)dst = u;
		return 0;
	case CONFIG_T_USER:
		if (!config_user_ok(s, len))
			return config_errf(x, v, "%s: expected a user name "
			    "(1..64 of A-Z a-z 0-9 . _ @ + -, not starting "
			    "with '.')", path);
		return config_set_str(dst, s, len);
	case CONFIG_T_SECTION:
	case CONFIG_T_ROUTES:
	case CONFIG_T_DKIM:
	case CONFIG_T_POOLS:
	case CONFIG_T_HNAMES:
	case CONFIG_T_RESOLVERS:
	case CONFIG_T_SHAPING:
	case CONFIG_T_WARMUP:
	case CONFIG_T_DOMAINS:
		break;
	}
	return config_errf(x, v, "%s: internal error", path);
}

/*
 * Check that the mapping's key at index i is a scalar and not a repeat
 * of an earlier key. Mappings here are schema-sized or capped
 * (CONFIG_ROUTES_MAX), so the quadratic scan stays small.
 */
static int
config_key_check(struct config_ctx *x, const char *path, yaml_node_pair_t *b,
    yaml_node_pair_t *p, yaml_node_t **kp)
{
	yaml_node_t *k = yaml_document_get_node(x->doc, p->key);

	if (k == NULL || k->type != YAML_SCALAR_NODE)
		return config_errf(x, k != NULL ? k :
		    yaml_document_get_root_node(x->doc),
		    "%s%smapping keys must be scalars", path,
		    *path ? ": " : "");
	for (yaml_node_pair_t *q = b; q < p; q++) {
		yaml_node_t *o = yaml_document_get_node(x->doc, q->key);

		if (o != NULL && o->type == YAML_SCALAR_NODE &&
		    o->data.scalar.length == k->data.scalar.length &&
		    memcmp(o->data.scalar.value, k->data.scalar.value,
		    k->data.scalar.length) == 0)
			return config_errf(x, k, "%s%s%s: duplicate key",
			    path, *path ? "." : "", config_sval(k));
	}
	*kp = k;
	return 0;
}

static int
config_routes(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	size_t			 n;
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m,
		    "routes: expected a mapping of domain: host:port");
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	n = (size_t)(e - b);
	if (n > CONFIG_ROUTES_MAX)
		return config_errf(x, m, "routes: at most %d routes",
		    CONFIG_ROUTES_MAX);
	if (n == 0)
		return 0;
	if ((c->routes = calloc(n, sizeof(*c->routes))) == NULL)
		return -ENOMEM;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		struct config_route	*r = &c->routes[c->nroutes];
		yaml_node_t		*k, *v;
		const char		*d;
		size_t			 dlen;

		/* Duplicate check is case-insensitive below, after lowering. */
		if ((rc = config_key_check(x, "routes", b, p, &k)) != 0)
			return rc;
		d = config_sval(k);
		dlen = k->data.scalar.length;
		if (!(dlen == 1 && d[0] == '*') && !config_domain_ok(d, dlen))
			return config_errf(x, k,
			    "routes: '%s' is not a domain name or \"*\"", d);
		if ((r->domain = strndup(d, dlen)) == NULL)
			return -ENOMEM;
		for (char *q = r->domain; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		for (size_t i = 0; i < c->nroutes; i++) {
			if (strcmp(c->routes[i].domain, r->domain) == 0) {
				free(r->domain);
				r->domain = NULL;
				return config_errf(x, k,
				    "routes.%s: duplicate key", d);
			}
		}
		v = yaml_document_get_node(x->doc, p->value);
		if (v == NULL || v->type != YAML_SCALAR_NODE) {
			free(r->domain);
			r->domain = NULL;
			return config_errf(x, v != NULL ? v : k,
			    "routes.%s: expected host:port", d);
		}
		rc = config_parse_hostport(config_sval(v),
		    v->data.scalar.length, &r->host, &r->port);
		if (rc != 0) {
			free(r->domain);
			r->domain = NULL;
			if (rc == -ENOMEM)
				return rc;
			return config_errf(x, v, "routes.%s: expected host:port"
			    " or [IPv6]:port with port 1..65535", d);
		}
		c->nroutes++;
	}
	return 0;
}

/*
 * One resolver: "192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53" or a
 * bare "2001:db8::1" (port 53), appended to b as c-ares' CSV wants it.
 * c-ares takes IP addresses only, so names are refused here.
 */
static int
config_resolver(const char *s, size_t len, char *out, size_t outlen)
{
	char		 ip[INET6_ADDRSTRLEN + 1];
	const char	*host = s, *ps = NULL, *colon;
	size_t		 hlen = len;
	uint64_t	 port = 53;
	struct in6_addr	 a6;
	struct in_addr	 a4;
	bool		 bracket = false, v6;

	if (len == 0 || memchr(s, '\0', len) != NULL)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL)
			return -EINVAL;
		bracket = true;
		host = s + 1;
		hlen = (size_t)(rb - host);
		if (rb + 1 < s + len) {
			if (rb[1] != ':')
				return -EINVAL;
			ps = rb + 2;
		}
	} else if ((colon = memchr(s, ':', len)) != NULL &&
	    memrchr(s, ':', len) == colon) {
		/* One ':' is a port; more are a bare IPv6 address. */
		hlen = (size_t)(colon - s);
		ps = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, host, hlen);
	ip[hlen] = '\0';
	if (ps != NULL && (config_parse_u64(ps, (size_t)(s + len - ps),
	    &port) != 0 || port == 0 || port > 65535))
		return -EINVAL;
	v6 = inet_pton(AF_INET6, ip, &a6) == 1;
	if (!v6 && (bracket || inet_pton(AF_INET, ip, &a4) != 1))
		return -EINVAL;
	snprintf(out, outlen, v6 ? "[%s]:%u" : "%s:%u", ip, (unsigned)port);
	return 0;
}

static int
config_resolvers(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_item_t	*b, *e;
	char			 one[INET6_ADDRSTRLEN + 16];
	char			*csv = NULL, *t;
	size_t			 n, len = 0;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_SEQUENCE_NODE)
		return config_errf(x, m, "dns.resolvers: expected a list of "
		    "IP addresses with optional ports");
	b = m->data.sequence.items.start;
	e = m->data.sequence.items.top;
	n = (size_t)(e - b);
	if (n > CONFIG_DNS_RESOLVERS_MAX)
		return config_errf(x, m, "dns.resolvers: at most %d resolvers",
		    CONFIG_DNS_RESOLVERS_MAX);
	for (yaml_node_item_t *p = b; p < e; p++) {
		yaml_node_t *v = yaml_document_get_node(x->doc, *p);

		if (v == NULL || v->type != YAML_SCALAR_NODE ||
		    config_resolver(config_sval(v), v->data.scalar.length,
		    one, sizeof(one)) != 0) {
			free(csv);
			return config_errf(x, v != NULL ? v : m,
			    "dns.resolvers: expected an IP address with an "
			    "optional port, like 192.0.2.1:53 or "
			    "[2001:db8::1]:53");
		}
		if ((t = realloc(csv, len + strlen(one) + 2)) == NULL) {
			free(csv);
			return -ENOMEM;
		}
		csv = t;
		len += (size_t)sprintf(csv + len, "%s%s", len > 0 ? "," : "",
		    one);
	}
	free(c->dns_servers);
	c->dns_servers = csv;
	c->ndns_resolvers = n;
	return 0;
}

/* One dkim: entry, a mapping of domain, selector, key_file, algorithm. */
static int
config_dkim_entry(struct config_ctx *x, struct config_dkim *d, size_t idx,
    yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	char			 path[32];
	int			 rc;

	snprintf(path, sizeof(path), "dkim[%zu]", idx);
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "%s: expected a mapping with domain, "
		    "selector, key_file and algorithm", path);
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		yaml_node_t	*k, *v;
		const char	*key, *s;
		size_t		 len;

		if ((rc = config_key_check(x, path, b, p, &k)) != 0)
			return rc;
		key = config_sval(k);
		v = yaml_document_get_node(x->doc, p->value);
		if (v == NULL || v->type != YAML_SCALAR_NODE)
			return config_errf(x, v != NULL ? v : k,
			    "%s.%s: expected a scalar value", path, key);
		s = config_sval(v);
		len = v->data.scalar.length;
		if (strcmp(key, "domain") == 0) {
			if (!config_domain_ok(s, len))
				return config_errf(x, v,
				    "%s.domain: expected a domain name", path);
			if ((rc = config_set_str(&d->domain, s, len)) != 0)
				return rc;
			for (char *q = d->domain; *q; q++)
				*q = (char)tolower((unsigned char)*q);
		} else if (strcmp(key, "selector") == 0) {
			/* RFC 6376 3.1: labels; DKIM_SELECTOR_MAX is 63 */
			if (len > 63 || !config_domain_ok(s, len))
				return config_errf(x, v, "%s.selector: expected "
				    "DNS labels, at most 63 characters", path);
			if ((rc = config_set_str(&d->selector, s, len)) != 0)
				return rc;
		} else if (strcmp(key, "key_file") == 0) {
			if (len == 0 || len > PATH_MAX ||
			    !config_text_ok(s, len) || strlen(s) != len)
				return config_errf(x, v,
				    "%s.key_file: expected a file name", path);
			if ((rc = config_set_str(&d->key_file, s, len)) != 0)
				return rc;
		} else if (strcmp(key, "algorithm") == 0) {
			if (strcmp(s, "auto") == 0)
				d->algorithm = CONFIG_DKIM_AUTO;
			else if (strcmp(s, "rsa") == 0 ||
			    strcmp(s, "rsa-sha256") == 0)
				d->algorithm = CONFIG_DKIM_RSA;
			else if (strcmp(s, "ed25519") == 0 ||
			    strcmp(s, "ed25519-sha256") == 0)
				d->algorithm = CONFIG_DKIM_ED25519;
			else
				return config_errf(x, v, "%s.algorithm: "
				    "expected auto, rsa or ed25519", path);
		} else {
			return config_errf(x, k, "%s.%s: unknown key", path,
			    key);
		}
	}
	if (d->domain == NULL || d->selector == NULL || d->key_file == NULL)
		return config_errf(x, m, "%s: %s is required", path,
		    d->domain == NULL ? "domain" : d->selector == NULL ?
		    "selector" : "key_file");
	return 0;
}

/* A pool or list name: 1..64 of [A-Za-z0-9_.-]. */
static bool
config_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/* An IP address in canonical (inet_ntop) form into out; false if none. */
static bool
config_ip_canon(const char *s, char *out, size_t outsz)
{
	struct in6_addr a6;
	struct in_addr	a4;

	if (inet_pton(AF_INET, s, &a4) == 1)
		return inet_ntop(AF_INET, &a4, out, (socklen_t)outsz) != NULL;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return inet_ntop(AF_INET6, &a6, out, (socklen_t)outsz) !=
		    NULL;
	return false;
}

static int
config_source(struct config_ctx *x, struct config_source *src,
    const char *path, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	int			 rc;

	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "%s: expected {source, ehlo_name}",
		    path);
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		yaml_node_t	*k, *v;
		const char	*key, *sv;
		size_t		 len;

		if ((rc = config_key_check(x, path, b, p, &k)) != 0)
			return rc;
		key = config_sval(k);
		v = yaml_document_get_node(x->doc, p->value);
		if (v == NULL || v->type != YAML_SCALAR_NODE)
			return config_errf(x, v != NULL ? v : k,
			    "%s.%s: expected a scalar value", path, key);
		sv = config_sval(v);
		len = v->data.scalar.length;
		if (strcmp(key, "source") == 0) {
			char	ip[INET6_ADDRSTRLEN];

			/* Kept in canonical form: sources are compared as
			 * text (shaping.sources, warmup.sources). */
			if (strlen(sv) != len || !config_ip_canon(sv, ip,
			    sizeof(ip)))
				return config_errf(x, v, "%s.source: expected "
				    "an IPv4 or IPv6 address", path);
			if ((rc = config_set_str(&src->addr, ip,
			    strlen(ip))) != 0)
				return rc;
		} else if (strcmp(key, "ehlo_name") == 0) {
			if (!config_domain_ok(sv, len))
				return config_errf(x, v, "%s.ehlo_name: "
				    "expected a domain name", path);
			if ((rc = config_set_str(&src->ehlo_name, sv, len)) != 0)
				return rc;
		} else {
			return config_errf(x, k, "%s.%s: unknown key", path,
			    key);
		}
	}
	if (src->addr == NULL)
		return config_errf(x, m, "%s: source is required", path);
	return 0;
}

/* pools: NAME: [{source: IP, ehlo_name: NAME}, ...] */
static int
config_pools(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	size_t			 n;
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "pools: expected a mapping of pool "
		    "names to lists of {source, ehlo_name}");
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	n = (size_t)(e - b);
	if (n > CONFIG_POOLS_MAX)
		return config_errf(x, m, "pools: at most %d pools",
		    CONFIG_POOLS_MAX);
	if (n == 0)
		return 0;
	if ((c->pools = calloc(n, sizeof(*c->pools))) == NULL)
		return -ENOMEM;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		struct config_pool	*pl = &c->pools[c->npools++];
		yaml_node_t		*k, *v;
		yaml_node_item_t	*ib, *ie;
		char			 path[96];

		if ((rc = config_key_check(x, "pools", b, p, &k)) != 0)
			return rc;
		if (!config_name_ok(config_sval(k), k->data.scalar.length))
			return config_errf(x, k, "pools: '%s' is not a pool "
			    "name (1-64 of A-Z a-z 0-9 _ . -)", config_sval(k));
		if ((rc = config_set_str(&pl->name, config_sval(k),
		    k->data.scalar.length)) != 0)
			return rc;
		v = yaml_document_get_node(x->doc, p->value);
		if (v == NULL || v->type != YAML_SEQUENCE_NODE ||
		    v->data.sequence.items.top == v->data.sequence.items.start)
			return config_errf(x, v != NULL ? v : k, "pools.%s: "
			    "expected a non-empty list of {source, ehlo_name}",
			    pl->name);
		ib = v->data.sequence.items.start;
		ie = v->data.sequence.items.top;
		if ((size_t)(ie - ib) > CONFIG_POOL_SOURCES_MAX)
			return config_errf(x, v, "pools.%s: at most %d sources",
			    pl->name, CONFIG_POOL_SOURCES_MAX);
		if ((pl->src = calloc((size_t)(ie - ib), sizeof(*pl->src))) ==
		    NULL)
			return -ENOMEM;
		for (yaml_node_item_t *it = ib; it < ie; it++) {
			yaml_node_t	*sn = yaml_document_get_node(x->doc, *it);

			snprintf(path, sizeof(path), "pools.%s[%zu]", pl->name,
			    pl->nsrc);
			pl->nsrc++;
			if (sn == NULL)
				return config_errf(x, v, "%s: missing", path);
			if ((rc = config_source(x, &pl->src[pl->nsrc - 1], path,
			    sn)) != 0)
				return rc;
		}
	}
	return 0;
}

bool
config_tls_used(const struct config *c)
{
	const struct config_shaping_entry *v[2] = { c->shaping_sites,
		c->shaping_sources };
	size_t	n[2] = { c->nshaping_sites, c->nshaping_sources };

	if (c->tls != CONFIG_TLS_NONE || ((c->shaping.set &
	    CONFIG_SHAPE_F_TLS) && c->shaping.tls != CONFIG_TLS_NONE))
		return true;
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < n[k]; i++)
			if ((v[k][i].s.set & CONFIG_SHAPE_F_TLS) &&
			    v[k][i].s.tls != CONFIG_TLS_NONE)
				return true;
	return false;
}

const struct config_pool *
config_pool_find(const struct config *c, const char *name)
{
	for (size_t i = 0; name != NULL && i < c->npools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return &c->pools[i];
	return NULL;
}

static int
config_dkim_list(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_item_t	*b, *e;
	size_t			 n;
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_SEQUENCE_NODE)
		return config_errf(x, m, "dkim: expected a list of {domain, "
		    "selector, key_file, algorithm}");
	b = m->data.sequence.items.start;
	e = m->data.sequence.items.top;
	n = (size_t)(e - b);
	if (n > CONFIG_DKIM_MAX)
		return config_errf(x, m, "dkim: at most %d keys",
		    CONFIG_DKIM_MAX);
	if (n == 0)
		return 0;
	if ((c->dkim = calloc(n, sizeof(*c->dkim))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t		*v = yaml_document_get_node(x->doc, b[i]);
		struct config_dkim	*d = &c->dkim[i];

		c->ndkim++;	/* so config_fini frees a partial entry */
		if (v == NULL)
			return config_errf(x, m, "dkim[%zu]: missing", i);
		if ((rc = config_dkim_entry(x, d, i, v)) != 0)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->dkim[j].domain, d->domain) == 0 &&
			    strcmp(c->dkim[j].selector, d->selector) == 0)
				return config_errf(x, v, "dkim[%zu]: %s with "
				    "selector %s is already dkim[%zu]", i,
				    d->domain, d->selector, j);
	}
	return 0;
}

/* RFC 5322 2.2: field-name = 1*ftext, ftext = %d33-57 / %d59-126 */
static bool
config_hname_ok(const char *s, size_t len)
{
	if (len == 0 || len > CONFIG_HNAME_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 ||
		    s[i] == ':')
			return false;
	return true;
}

static int
config_hnames(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_item_t	*b, *e;
	size_t			 n;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_SEQUENCE_NODE)
		return config_errf(x, m, "dkim_headers: expected a list of "
		    "header names");
	b = m->data.sequence.items.start;
	e = m->data.sequence.items.top;
	n = (size_t)(e - b);
	if (n > CONFIG_DKIM_HEADERS_MAX)
		return config_errf(x, m, "dkim_headers: at most %d names",
		    CONFIG_DKIM_HEADERS_MAX);
	if (n == 0)
		return 0;
	if ((c->dkim_headers = calloc(n, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t	*v = yaml_document_get_node(x->doc, b[i]);
		const char	*s;
		size_t		 len;

		if (v == NULL || v->type != YAML_SCALAR_NODE)
			return config_errf(x, v != NULL ? v : m,
			    "dkim_headers[%zu]: expected a header name", i);
		s = config_sval(v);
		len = v->data.scalar.length;
		if (!config_hname_ok(s, len))
			return config_errf(x, v, "dkim_headers[%zu]: expected "
			    "a header name (printable ASCII without ':' or "
			    "space, at most %d)", i, CONFIG_HNAME_MAX);
		if (strcasecmp(s, "DKIM-Signature") == 0)
			return config_errf(x, v, "dkim_headers[%zu]: "
			    "DKIM-Signature cannot be signed", i);
		for (size_t j = 0; j < c->ndkim_headers; j++)
			if (strcasecmp(c->dkim_headers[j], s) == 0)
				return config_errf(x, v, "dkim_headers[%zu]: "
				    "%s is listed twice", i, s);
		if ((c->dkim_headers[i] = strndup(s, len)) == NULL)
			return -ENOMEM;
		c->ndkim_headers++;
	}
	return 0;
}

/*
 * shaping: (issue 6). Three parts: defaults (one layer), sites and
 * sources (keyed layers). A layer records which keys it gave in `set`,
 * so config_shaping_for() can merge layers field by field.
 */
#define CONFIG_SITE_KEY_MAX	511	/* dns_route.site without its NUL */

static void
config_shaping_fini(struct config_shaping *s)
{
	for (size_t i = 0; i < s->nthrottle_patterns; i++)
		free(s->throttle_patterns[i]);
	free(s->throttle_patterns);
	s->throttle_patterns = NULL;
	s->nthrottle_patterns = 0;
}

int
config_rate_parse(const char *s, size_t len, struct config_rate *out)
{
	uint64_t	 n;
	size_t		 d = 0;
	uint32_t	 per;

	if (s == NULL)
		return -EINVAL;
	if (len == 9 && memcmp(s, "unlimited", 9) == 0) {
		out->n = 0;
		out->per_s = 1;
		return 0;
	}
	while (d < len && s[d] >= '0' && s[d] <= '9')
		d++;
	if (d == 0 || d > 10 || len != d + 2 || s[d] != '/' ||
	    config_parse_u64(s, d, &n) != 0 || n == 0 ||
	    n > CONFIG_RATE_N_MAX)
		return -EINVAL;
	switch (s[d + 1]) {
	case 's':
		per = 1;
		break;
	case 'm':
		per = 60;
		break;
	case 'h':
		per = 3600;
		break;
	case 'd':
		per = 86400;
		break;
	default:
		return -EINVAL;
	}
	out->n = (uint32_t)n;
	out->per_s = per;
	return 0;
}

char *
config_rate_format(const struct config_rate *r, char *out, size_t outsz)
{
	char u;

	if (outsz == 0)
		return out;
	if (r->n == 0) {
		snprintf(out, outsz, "unlimited");
		return out;
	}
	u = r->per_s == 86400 ? 'd' : r->per_s == 3600 ? 'h' :
	    r->per_s == 60 ? 'm' : 's';
	snprintf(out, outsz, "%" PRIu32 "/%c", r->n, u);
	return out;
}

/* A site key (MX rollup: names joined by ',', maybe "#digest") or domain. */
static bool
config_site_key_ok(const char *s, size_t len)
{
	if (len == 0 || len > CONFIG_SITE_KEY_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && strchr(".-_,#:[]", c) == NULL)
			return false;
	}
	return true;
}

/* "10%" or "10": a whole percentage, 0..100. */
static int
config_pct(const char *s, size_t len, uint32_t *out)
{
	uint64_t	u;

	if (len > 0 && s[len - 1] == '%')
		len--;
	if (config_parse_u64(s, len, &u) != 0 || u > 100)
		return -EINVAL;
	*out = (uint32_t)u;
	return 0;
}

static bool
config_in_pools(const struct config *c, const char *ip)
{
	for (size_t i = 0; i < c->npools; i++)
		for (size_t k = 0; k < c->pools[i].nsrc; k++)
			if (strcmp(c->pools[i].src[k].addr, ip) == 0)
				return true;
	return false;
}

/*
 * warmup: {sources: [IP...], schedule: [N...], max_deferral_rate: 10%,
 * max_bounce_rate: 5%}. Sources must be in a pool (that is how mail is
 * sent from them), so pools: must come first in the file.
 */
static int
config_warmup(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "warmup: expected a mapping");
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		yaml_node_t		*kn, *v;
		const char		*key;
		yaml_node_item_t	*ib, *ie;
		size_t			 n;

		if ((rc = config_key_check(x, "warmup", b, p, &kn)) != 0)
			return rc;
		key = config_sval(kn);
		if ((v = yaml_document_get_node(x->doc, p->value)) == NULL)
			return config_errf(x, kn, "warmup.%s: missing value",
			    key);
		if (strcmp(key, "max_deferral_rate") == 0 ||
		    strcmp(key, "max_bounce_rate") == 0) {
			if (v->type != YAML_SCALAR_NODE || config_pct(
			    config_sval(v), v->data.scalar.length,
			    key[4] == 'd' ? &c->warmup_max_deferral_pct :
			    &c->warmup_max_bounce_pct) != 0)
				return config_errf(x, v, "warmup.%s: expected a "
				    "percentage 0..100 like 10%%", key);
			continue;
		}
		if (strcmp(key, "sources") != 0 &&
		    strcmp(key, "schedule") != 0)
			return config_errf(x, kn, "warmup.%s: unknown key", key);
		if (v->type != YAML_SEQUENCE_NODE)
			return config_errf(x, v, "warmup.%s: expected a list",
			    key);
		ib = v->data.sequence.items.start;
		ie = v->data.sequence.items.top;
		n = (size_t)(ie - ib);
		if (key[1] == 'o') {		/* sources */
			if (n > CONFIG_POOL_SOURCES_MAX)
				return config_errf(x, v, "warmup.sources: at "
				    "most %d", CONFIG_POOL_SOURCES_MAX);
			/* Duplicate keys are refused by config_key_check. */
			if (n > 0 && (c->warmup_sources = calloc(n,
			    sizeof(char *))) == NULL)
				return -ENOMEM;
			for (size_t i = 0; i < n; i++) {
				yaml_node_t *sn = yaml_document_get_node(x->doc,
				    ib[i]);
				char	ip[INET6_ADDRSTRLEN];

				if (sn == NULL || sn->type != YAML_SCALAR_NODE ||
				    !config_ip_canon(config_sval(sn), ip,
				    sizeof(ip)))
					return config_errf(x, sn ? sn : v,
					    "warmup.sources[%zu]: expected an "
					    "IP address", i);
				if (!config_in_pools(c, ip))
					return config_errf(x, sn, "warmup."
					    "sources[%zu]: %s is in no pool "
					    "(pools: must list it, before "
					    "warmup:)", i, ip);
				if ((rc = config_set_str(
				    &c->warmup_sources[c->nwarmup_sources++],
				    ip, strlen(ip))) != 0)
					return rc;
			}
		} else {			/* schedule */
			if (n < 1 || n > CONFIG_WARMUP_DAYS_MAX)
				return config_errf(x, v, "warmup.schedule: "
				    "expected 1..%d daily volumes",
				    CONFIG_WARMUP_DAYS_MAX);
			free(c->warmup_schedule);
			c->nwarmup_schedule = 0;
			if ((c->warmup_schedule = calloc(n,
			    sizeof(uint32_t))) == NULL)
				return -ENOMEM;
			for (size_t i = 0; i < n; i++) {
				yaml_node_t *sn = yaml_document_get_node(x->doc,
				    ib[i]);
				uint64_t u;

				if (sn == NULL || sn->type != YAML_SCALAR_NODE ||
				    config_parse_u64(config_sval(sn),
				    sn->data.scalar.length, &u) != 0 || u < 1 ||
				    u > 1000000000)
					return config_errf(x, sn ? sn : v,
					    "warmup.schedule[%zu]: expected "
					    "messages per day, 1..1000000000",
					    i);
				c->warmup_schedule[c->nwarmup_schedule++] =
				    (uint32_t)u;
			}
		}
	}
	if (c->nwarmup_sources > 0 && c->nwarmup_schedule == 0)
		return config_errf(x, m, "warmup.schedule: required when "
		    "warmup.sources is given");
	return 0;
}

static int
config_patterns(struct config_ctx *x, struct config_shaping *s,
    const char *path, yaml_node_t *m)
{
	yaml_node_item_t	*b, *e;
	size_t			 n;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_SEQUENCE_NODE)
		return config_errf(x, m, "%s: expected a list of strings",
		    path);
	b = m->data.sequence.items.start;
	e = m->data.sequence.items.top;
	n = (size_t)(e - b);
	if (n > CONFIG_PATTERNS_MAX)
		return config_errf(x, m, "%s: at most %d patterns", path,
		    CONFIG_PATTERNS_MAX);
	config_shaping_fini(s);
	if (n == 0)
		return 0;
	if ((s->throttle_patterns = calloc(n, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t	*v = yaml_document_get_node(x->doc, b[i]);
		const char	*t;
		size_t		 len;

		if (v == NULL || v->type != YAML_SCALAR_NODE)
			return config_errf(x, v != NULL ? v : m,
			    "%s[%zu]: expected a string", path, i);
		t = config_sval(v);
		len = v->data.scalar.length;
		if (len == 0 || len > CONFIG_PATTERN_MAX || strlen(t) != len ||
		    !config_text_ok(t, len))
			return config_errf(x, v, "%s[%zu]: expected 1..%d "
			    "characters without control characters", path, i,
			    CONFIG_PATTERN_MAX);
		if ((s->throttle_patterns[i] = strndup(t, len)) == NULL)
			return -ENOMEM;
		s->nthrottle_patterns++;
	}
	return 0;
}

/* The stages of struct config_timeouts, by CONFIG_SHAPE_F_TIMEOUT bit. */
static const struct {
	const char	*name;
	size_t		 off;
} config_stage[CONFIG_TIMEOUTS_N] = {
	{ "connect", offsetof(struct config_timeouts, connect) },
	{ "banner", offsetof(struct config_timeouts, banner) },
	{ "ehlo", offsetof(struct config_timeouts, ehlo) },
	{ "mail_from", offsetof(struct config_timeouts, mail_from) },
	{ "rcpt_to", offsetof(struct config_timeouts, rcpt_to) },
	{ "data", offsetof(struct config_timeouts, data) },
	{ "data_block", offsetof(struct config_timeouts, data_block) },
	{ "data_dot", offsetof(struct config_timeouts, data_dot) },
	{ "idle", offsetof(struct config_timeouts, idle) },
};

static uint32_t *
config_stage_ms(struct config_timeouts *t, size_t i)
{
	return (uint32_t *)(void *)((char *)t + config_stage[i].off);
}

/*
 * A layer's timeouts: the stages of smtp.timeouts, each optional, so a
 * slow site can get a longer final-dot wait without touching the rest.
 */
static int
config_shaping_timeouts(struct config_ctx *x, struct config_shaping *s,
    const char *path, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	char			 sub[CONFIG_SITE_KEY_MAX + 96];
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "%s: expected a mapping", path);
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		yaml_node_t	*kn, *v;
		const char	*key;
		uint64_t	 ms;
		size_t		 i;

		if ((rc = config_key_check(x, path, b, p, &kn)) != 0)
			return rc;
		key = config_sval(kn);
		snprintf(sub, sizeof(sub), "%s.%s", path, key);
		for (i = 0; i < CONFIG_TIMEOUTS_N; i++)
			if (strcmp(key, config_stage[i].name) == 0)
				break;
		if (i == CONFIG_TIMEOUTS_N)
			return config_errf(x, kn, "%s: unknown key (stages: "
			    "connect, banner, ehlo, mail_from, rcpt_to, data, "
			    "data_block, data_dot, idle)", sub);
		if ((v = yaml_document_get_node(x->doc, p->value)) == NULL ||
		    v->type != YAML_SCALAR_NODE)
			return config_errf(x, kn, "%s: expected a duration",
			    sub);
		if (config_parse_duration(config_sval(v), v->data.scalar.length,
		    &ms) != 0 || ms < 1 || ms > MS_DAY)
			return config_errf(x, v, "%s: expected a duration like "
			    "30s, 5m, 250ms, between 1ms and 1d", sub);
		*config_stage_ms(&s->timeouts, i) = (uint32_t)ms;
		s->set |= CONFIG_SHAPE_F_TIMEOUT << i;
	}
	return 0;
}

/* One layer: the keys of shaping.defaults (also each site and source). */
static int
config_shaping_layer(struct config_ctx *x, struct config_shaping *s,
    const char *path, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	char			 sub[CONFIG_SITE_KEY_MAX + 64];
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "%s: expected a mapping", path);
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		yaml_node_t	*kn, *v;
		const char	*key, *t;
		size_t		 len;
		uint64_t	 u;

		if ((rc = config_key_check(x, path, b, p, &kn)) != 0)
			return rc;
		key = config_sval(kn);
		snprintf(sub, sizeof(sub), "%s.%s", path, key);
		if ((v = yaml_document_get_node(x->doc, p->value)) == NULL)
			return config_errf(x, kn, "%s: missing value", sub);
		if (strcmp(key, "throttle_patterns") == 0) {
			if ((rc = config_patterns(x, s, sub, v)) != 0)
				return rc;
			s->set |= CONFIG_SHAPE_F_PATTERNS;
			continue;
		}
		if (strcmp(key, "timeouts") == 0) {
			if ((rc = config_shaping_timeouts(x, s, sub, v)) != 0)
				return rc;
			continue;
		}
		if (strcmp(key, "tls") == 0) {
			int	lvl;

			if (v->type != YAML_SCALAR_NODE ||
			    strlen(config_sval(v)) != v->data.scalar.length ||
			    (lvl = config_tls_parse(config_sval(v))) < 0)
				return config_errf(x, v, "%s: expected "
				    "opportunistic, required, verify or none",
				    sub);
			s->tls = (enum config_tls_mode)lvl;
			s->set |= CONFIG_SHAPE_F_TLS;
			continue;
		}
		if (strcmp(key, "connection_limit") != 0 &&
		    strcmp(key, "max_deliveries_per_connection") != 0 &&
		    strcmp(key, "max_message_rate") != 0 &&
		    strcmp(key, "max_connection_rate") != 0 &&
		    strcmp(key, "adaptive") != 0)
			return config_errf(x, kn, "%s: unknown key", sub);
		if (v->type != YAML_SCALAR_NODE)
			return config_errf(x, v, "%s: expected a scalar value",
			    sub);
		t = config_sval(v);
		len = v->data.scalar.length;
		if (strcmp(key, "connection_limit") == 0 ||
		    strcmp(key, "max_deliveries_per_connection") == 0) {
			bool	 cl = key[0] == 'c';
			uint64_t max = cl ? 10000 : 100000;

			if (config_parse_u64(t, len, &u) != 0)
				return config_errf(x, v,
				    "%s: expected an integer", sub);
			if (u < 1 || u > max)
				return config_errf(x, v, "%s: must be between "
				    "1 and %llu", sub, (unsigned long long)max);
			if (cl) {
				s->connection_limit = (uint32_t)u;
				s->set |= CONFIG_SHAPE_F_CONN_LIMIT;
			} else {
				s->max_deliveries_per_connection = (uint32_t)u;
				s->set |= CONFIG_SHAPE_F_MAX_DELIV;
			}
		} else if (strcmp(key, "adaptive") == 0) {
			if (strcasecmp(t, "true") == 0 ||
			    strcasecmp(t, "yes") == 0)
				s->adaptive = true;
			else if (strcasecmp(t, "false") == 0 ||
			    strcasecmp(t, "no") == 0)
				s->adaptive = false;
			else
				return config_errf(x, v, "%s: expected true, "
				    "false, yes or no", sub);
			s->set |= CONFIG_SHAPE_F_ADAPTIVE;
		} else {
			bool msg = strcmp(key, "max_message_rate") == 0;

			if (config_rate_parse(t, len, msg ?
			    &s->max_message_rate : &s->max_connection_rate) !=
			    0)
				return config_errf(x, v, "%s: expected a rate "
				    "like 100/s, 20/m, 5000/h, 100000/d (N at "
				    "most %u) or unlimited", sub,
				    CONFIG_RATE_N_MAX);
			s->set |= msg ? CONFIG_SHAPE_F_MSG_RATE :
			    CONFIG_SHAPE_F_CONN_RATE;
		}
	}
	return 0;
}

/* shaping.sites or shaping.sources: key -> layer. */
static int
config_shaping_map(struct config_ctx *x, const char *path, bool sources,
    yaml_node_t *m, struct config_shaping_entry **outv, size_t *outn)
{
	yaml_node_pair_t	*b, *e;
	size_t			 n;
	char			 sub[CONFIG_SITE_KEY_MAX + 32];
	char			 ip[INET6_ADDRSTRLEN];
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "%s: expected a mapping", path);
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	n = (size_t)(e - b);
	if (n > CONFIG_SHAPING_MAX)
		return config_errf(x, m, "%s: at most %d entries", path,
		    CONFIG_SHAPING_MAX);
	if (n == 0)
		return 0;
	if ((*outv = calloc(n, sizeof(**outv))) == NULL)
		return -ENOMEM;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		struct config_shaping_entry	*en = &(*outv)[*outn];
		yaml_node_t			*kn, *v;
		const char			*k;
		size_t				 klen;

		if ((rc = config_key_check(x, path, b, p, &kn)) != 0)
			return rc;
		k = config_sval(kn);
		klen = kn->data.scalar.length;
		if (sources) {
			if (klen >= 64 || strlen(k) != klen ||
			    !config_ip_canon(k, ip, sizeof(ip)))
				return config_errf(x, kn, "%s: '%.64s' is not "
				    "an IP address", path, k);
			en->key = strdup(ip);
		} else {
			if (!config_site_key_ok(k, klen))
				return config_errf(x, kn, "%s: '%.64s' is not "
				    "a site key or domain", path, k);
			en->key = strndup(k, klen);
		}
		if (en->key == NULL)
			return -ENOMEM;
		for (char *q = en->key; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		(*outn)++;	/* so config_fini frees a partial entry */
		for (size_t i = 0; i + 1 < *outn; i++)
			if (strcmp((*outv)[i].key, en->key) == 0)
				return config_errf(x, kn, "%s.%.64s: duplicate "
				    "key", path, k);
		en->s.adaptive = true;
		snprintf(sub, sizeof(sub), "%s.%s", path, en->key);
		v = yaml_document_get_node(x->doc, p->value);
		if (v == NULL)
			return config_errf(x, kn, "%s: missing value", sub);
		if ((rc = config_shaping_layer(x, &en->s, sub, v)) != 0)
			return rc;
	}
	return 0;
}

static int
config_shaping_top(struct config_ctx *x, struct config *c, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "shaping: expected a mapping");
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		yaml_node_t	*kn, *v;
		const char	*key;

		if ((rc = config_key_check(x, "shaping", b, p, &kn)) != 0)
			return rc;
		key = config_sval(kn);
		if ((v = yaml_document_get_node(x->doc, p->value)) == NULL)
			return config_errf(x, kn, "shaping.%s: missing value",
			    key);
		if (strcmp(key, "defaults") == 0)
			rc = config_shaping_layer(x, &c->shaping,
			    "shaping.defaults", v);
		else if (strcmp(key, "sites") == 0)
			rc = config_shaping_map(x, "shaping.sites", false, v,
			    &c->shaping_sites, &c->nshaping_sites);
		else if (strcmp(key, "sources") == 0)
			rc = config_shaping_map(x, "shaping.sources", true, v,
			    &c->shaping_sources, &c->nshaping_sources);
		else
			return config_errf(x, kn, "shaping.%s: unknown key",
			    key);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Copy the fields l sets over out. */
static void
config_shaping_apply(struct config_shaping *out,
    const struct config_shaping *l)
{
	if (l->set & CONFIG_SHAPE_F_CONN_LIMIT)
		out->connection_limit = l->connection_limit;
	if (l->set & CONFIG_SHAPE_F_MAX_DELIV)
		out->max_deliveries_per_connection =
		    l->max_deliveries_per_connection;
	if (l->set & CONFIG_SHAPE_F_MSG_RATE)
		out->max_message_rate = l->max_message_rate;
	if (l->set & CONFIG_SHAPE_F_CONN_RATE)
		out->max_connection_rate = l->max_connection_rate;
	if (l->set & CONFIG_SHAPE_F_ADAPTIVE)
		out->adaptive = l->adaptive;
	if (l->set & CONFIG_SHAPE_F_PATTERNS) {
		out->throttle_patterns = l->throttle_patterns;
		out->nthrottle_patterns = l->nthrottle_patterns;
	}
	if (l->set & CONFIG_SHAPE_F_TLS)
		out->tls = l->tls;
	for (size_t i = 0; i < CONFIG_TIMEOUTS_N; i++)
		if (l->set & (CONFIG_SHAPE_F_TIMEOUT << i))
			memcpy(config_stage_ms(&out->timeouts, i),
			    (const char *)&l->timeouts + config_stage[i].off,
			    sizeof(uint32_t));
	out->set |= l->set;
}

static const struct config_shaping *
config_shaping_find(const struct config_shaping_entry *v, size_t n,
    const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i].key, key) == 0)
			return &v[i].s;
	return NULL;
}

void
config_shaping_for(const struct config *c, const char *site,
    const char *domain, const char *source, struct config_shaping *out)
{
	const struct config_shaping	*l;
	char				 ip[INET6_ADDRSTRLEN];

	memset(out, 0, sizeof(*out));
	out->connection_limit = c->connection_limit;
	out->max_deliveries_per_connection = c->max_deliveries_per_connection;
	out->max_message_rate.per_s = 1;
	out->max_connection_rate.per_s = 1;
	out->adaptive = true;
	out->timeouts = c->timeouts;
	out->tls = c->tls;
	config_shaping_apply(out, &c->shaping);
	if (site != NULL && *site != '\0' && (l = config_shaping_find(
	    c->shaping_sites, c->nshaping_sites, site)) != NULL)
		config_shaping_apply(out, l);
	if (domain != NULL && *domain != '\0' && (l = config_shaping_find(
	    c->shaping_sites, c->nshaping_sites, domain)) != NULL)
		config_shaping_apply(out, l);
	if (source != NULL && *source != '\0' &&
	    config_ip_canon(source, ip, sizeof(ip)) && (l =
	    config_shaping_find(c->shaping_sources, c->nshaping_sources,
	    ip)) != NULL)
		config_shaping_apply(out, l);
}

/* inbound.bounce_domains / reply_domains: lower-cased, no repeats. */
static int
config_domains(struct config_ctx *x, struct config *c, const char *path,
    const struct config_key *k, yaml_node_t *m)
{
	bool		  bounce = k->off ==
	    offsetof(struct config, in_bounce_domains);
	char		***dst = bounce ? &c->in_bounce_domains :
	    &c->in_reply_domains;
	size_t		 *np = bounce ? &c->nin_bounce_domains :
	    &c->nin_reply_domains;
	yaml_node_item_t *b, *e;
	size_t		  n;

	for (size_t i = 0; i < *np; i++)
		free((*dst)[i]);
	free(*dst);
	*dst = NULL;
	*np = 0;
	if (config_is_null(m))
		return 0;
	if (m->type != YAML_SEQUENCE_NODE)
		return config_errf(x, m, "%s: expected a list of domains",
		    path);
	b = m->data.sequence.items.start;
	e = m->data.sequence.items.top;
	n = (size_t)(e - b);
	if (n > CONFIG_IN_DOMAINS_MAX)
		return config_errf(x, m, "%s: at most %d domains", path,
		    CONFIG_IN_DOMAINS_MAX);
	if (n == 0)
		return 0;
	if ((*dst = calloc(n, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t	*v = yaml_document_get_node(x->doc, b[i]);
		const char	*s;
		size_t		 len;
		char		*d;

		if (v == NULL || v->type != YAML_SCALAR_NODE)
			return config_errf(x, v != NULL ? v : m,
			    "%s[%zu]: expected a domain name", path, i);
		s = config_sval(v);
		len = v->data.scalar.length;
		if (strlen(s) != len || !config_domain_ok(s, len))
			return config_errf(x, v, "%s[%zu]: expected a domain "
			    "name", path, i);
		for (size_t j = 0; j < *np; j++)
			if (strcasecmp((*dst)[j], s) == 0)
				return config_errf(x, v, "%s[%zu]: %s is "
				    "listed twice", path, i, s);
		if ((d = strndup(s, len)) == NULL)
			return -ENOMEM;
		for (char *q = d; *q != '\0'; q++)
			*q = (char)tolower((unsigned char)*q);
		(*dst)[(*np)++] = d;
	}
	return 0;
}

/* Rules between keys, checked once their section has been read. */
static int
config_cross_check(struct config_ctx *x, struct config *c,
    const struct config_key *keys, yaml_node_t *m)
{
	if (keys == config_verp) {
		if (c->verp_bounce_domain != NULL &&
		    c->verp_secret_file == NULL)
			return config_errf(x, m, "verp.secret_file: required "
			    "when verp.bounce_domain is set");
		if (c->verp_bounce_domain == NULL &&
		    c->verp_secret_file != NULL)
			return config_errf(x, m, "verp.bounce_domain: required "
			    "when verp.secret_file is set");
	} else if (keys == config_inbound) {
		if ((c->in_tls_cert_file == NULL) !=
		    (c->in_tls_key_file == NULL))
			return config_errf(x, m, "inbound: tls_cert_file and "
			    "tls_key_file go together");
		if (c->in_tls_cert_file == NULL &&
		    (c->in_listen_imaps != NULL || c->in_listen_pop3s != NULL))
			return config_errf(x, m, "inbound: listen_imaps and "
			    "listen_pop3s need tls_cert_file");
		for (size_t i = 0; i < c->nin_bounce_domains; i++)
			for (size_t j = 0; j < c->nin_reply_domains; j++)
				if (strcmp(c->in_bounce_domains[i],
				    c->in_reply_domains[j]) == 0)
					return config_errf(x, m, "inbound: %s "
					    "is both a bounce and a reply "
					    "domain", c->in_reply_domains[j]);
	} else if (keys == config_unsub) {
		if (c->unsub_secret_file != NULL && c->unsub_url == NULL &&
		    c->unsub_mailto_domain == NULL)
			return config_errf(x, m, "unsubscribe: url or "
			    "mailto_domain required with secret_file");
		if (c->unsub_listen != NULL) {
			char		 host[CONFIG_LISTEN_HOST_MAX];
			uint16_t	 port;

			if (config_listen_parse(c->unsub_listen, host,
			    &port) != 0)
				return config_errf(x, m, "unsubscribe.listen: "
				    "expected IP:port or [IPv6]:port");
		}
	} else if (keys == config_top && c->dkim_dual) {
		for (size_t i = 0; i < c->ndkim; i++) {
			const struct config_dkim *a = &c->dkim[i], *o = NULL;

			for (size_t j = 0; j < c->ndkim && o == NULL; j++)
				if (j != i && strcmp(c->dkim[j].domain,
				    a->domain) == 0 && (a->algorithm !=
				    c->dkim[j].algorithm ||
				    a->algorithm == CONFIG_DKIM_AUTO))
					o = &c->dkim[j];
			if (o == NULL)
				return config_errf(x, x->dual != NULL ?
				    x->dual : m, "dkim_dual: %s needs a "
				    "second key of the other algorithm (RSA "
				    "and Ed25519)", a->domain);
		}
	}
	return 0;
}

static int
config_section(struct config_ctx *x, struct config *c, const char *path,
    const struct config_key *keys, yaml_node_t *m)
{
	yaml_node_pair_t	*b, *e;
	char			 sub[128];
	int			 rc;

	if (config_is_null(m))
		return 0;
	if (m->type != YAML_MAPPING_NODE)
		return config_errf(x, m, "%s%sexpected a mapping", path,
		    *path ? ": " : "");
	b = m->data.mapping.pairs.start;
	e = m->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = b; p < e; p++) {
		const struct config_key	*k;
		yaml_node_t		*kn, *v;

		if ((rc = config_key_check(x, path, b, p, &kn)) != 0)
			return rc;
		for (k = keys; k->name != NULL; k++)
			if (strcmp(k->name, config_sval(kn)) == 0)
				break;
		if (k->name == NULL)
			return config_errf(x, kn, "%s%s%s: unknown key", path,
			    *path ? "." : "", config_sval(kn));
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "",
		    k->name);
		if ((v = yaml_document_get_node(x->doc, p->value)) == NULL)
			return config_errf(x, kn, "%s: missing value", sub);
		if (k->type == CONFIG_T_SECTION)
			rc = config_section(x, c, sub, k->sub, v);
		else if (k->type == CONFIG_T_ROUTES)
			rc = config_routes(x, c, v);
		else if (k->type == CONFIG_T_RESOLVERS)
			rc = config_resolvers(x, c, v);
		else if (k->type == CONFIG_T_DKIM)
			rc = config_dkim_list(x, c, v);
		else if (k->type == CONFIG_T_POOLS)
			rc = config_pools(x, c, v);
		else if (k->type == CONFIG_T_DOMAINS)
			rc = config_domains(x, c, sub, k, v);
		else if (k->type == CONFIG_T_HNAMES)
			rc = config_hnames(x, c, v);
		else if (k->type == CONFIG_T_SHAPING)
			rc = config_shaping_top(x, c, v);
		else if (k->type == CONFIG_T_WARMUP)
			rc = config_warmup(x, c, v);
		else
			rc = config_scalar(x, c, sub, k, v);
		if (rc != 0)
			return rc;
		if (keys == config_top && strcmp(k->name, "dkim_dual") == 0)
			x->dual = v;
	}
	return config_cross_check(x, c, keys, m);
}

int
config_defaults(struct config *c)
{
	char host[256];

	memset(c, 0, sizeof(*c));
	c->redis_port = 6379;
	c->fetch_batch = 16;
	c->max_queued = 20000;
	c->claim_idle_ms = 5 * MS_MIN;
	c->pipelining = true;
	c->remote_port = 25;
	c->host_penalty_ms = 15 * MS_SEC;
	c->tls = CONFIG_TLS_OPPORTUNISTIC;
	c->tls_ca_file = NULL;		/* system default CA paths */
	c->chunking = false;
	c->connection_limit = 10;
	c->max_deliveries_per_connection = 100;
	c->timeouts.connect = 30 * MS_SEC;
	c->timeouts.banner = 5 * MS_MIN;
	c->timeouts.ehlo = 5 * MS_MIN;
	c->timeouts.mail_from = 5 * MS_MIN;
	c->timeouts.rcpt_to = 5 * MS_MIN;
	c->timeouts.data = 2 * MS_MIN;
	c->timeouts.data_block = 3 * MS_MIN;
	c->timeouts.data_dot = 10 * MS_MIN;
	c->timeouts.idle = 60 * MS_SEC;
	c->retry_delay_ms = 5 * MS_MIN;
	c->retry_max_delay_ms = 4 * 60 * MS_MIN;
	c->retry_max_age_ms = 4 * MS_DAY;
	c->retry_max_attempts = 100;
	c->in_max_message_size = 25u * 1024 * 1024;
	c->in_max_connections_per_ip = 20;
	c->in_max_connections = 1000;
	c->in_max_recipients = 100;
	if ((c->in_listen_smtp = strdup("127.0.0.1:2525")) == NULL ||
	    (c->in_maildir_root = strdup("maildir")) == NULL ||
	    (c->in_bounce_mailbox = strdup("bounces")) == NULL ||
	    (c->in_reply_mailbox = strdup("replies")) == NULL) {
		free(c->in_listen_smtp);
		free(c->in_maildir_root);
		free(c->in_bounce_mailbox);
		c->in_listen_smtp = c->in_maildir_root = NULL;
		c->in_bounce_mailbox = NULL;
		return -ENOMEM;
	}
	c->dns_timeout_ms = 5 * MS_SEC;
	c->dns_tries = 2;
	c->dns_cache_size = 10000;
	c->log_level = LOG_INFO;
	c->unsub_max_age_s = 90u * 86400u;
	c->shaping.adaptive = true;
	c->warmup_max_deferral_pct = 10;
	c->warmup_max_bounce_pct = 5;
	if ((c->redis_host = strdup("127.0.0.1")) == NULL)
		return -ENOMEM;
	if ((c->unsub_url = strdup(CONFIG_UNSUB_URL_DEFAULT)) == NULL) {
		free(c->redis_host);
		c->redis_host = NULL;
		return -ENOMEM;
	}
	/* A host name that would not survive EHLO falls back to localhost. */
	if (gethostname(host, sizeof(host)) != 0 ||
	    (host[sizeof(host) - 1] = '\0',
	    !config_domain_ok(host, strlen(host))))
		strcpy(host, "localhost");
	if ((c->ehlo_name = strdup(host)) == NULL) {
		free(c->redis_host);
		free(c->unsub_url);
		c->redis_host = c->unsub_url = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Release what c owns, leaving c itself (embedded or not). */
static void
config_fini(struct config *c)
{
	free(c->redis_host);
	free(c->redis_password);
	free(c->ehlo_name);
	free(c->tls_ca_file);
	free(c->message_id_domain);
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].domain);
		free(c->routes[i].host);
	}
	for (size_t i = 0; i < c->ndkim; i++) {
		free(c->dkim[i].domain);
		free(c->dkim[i].selector);
		free(c->dkim[i].key_file);
	}
	free(c->dkim);
	for (size_t i = 0; i < c->npools; i++) {
		for (size_t k = 0; k < c->pools[i].nsrc; k++) {
			free(c->pools[i].src[k].addr);
			free(c->pools[i].src[k].ehlo_name);
		}
		free(c->pools[i].src);
		free(c->pools[i].name);
	}
	free(c->pools);
	free(c->pool);
	free(c->in_listen_smtp);
	free(c->in_listen_imap);
	free(c->in_listen_imaps);
	free(c->in_listen_pop3);
	free(c->in_listen_pop3s);
	free(c->in_tls_cert_file);
	free(c->in_tls_key_file);
	free(c->in_maildir_root);
	free(c->in_users_file);
	for (size_t i = 0; i < c->nin_bounce_domains; i++)
		free(c->in_bounce_domains[i]);
	free(c->in_bounce_domains);
	for (size_t i = 0; i < c->nin_reply_domains; i++)
		free(c->in_reply_domains[i]);
	free(c->in_reply_domains);
	free(c->in_bounce_mailbox);
	free(c->in_reply_mailbox);
	for (size_t i = 0; i < c->ndkim_headers; i++)
		free(c->dkim_headers[i]);
	free(c->dkim_headers);
	free(c->verp_bounce_domain);
	free(c->verp_secret_file);
	free(c->unsub_url);
	free(c->unsub_mailto_domain);
	free(c->unsub_secret_file);
	free(c->unsub_listen);
	free(c->routes);
	free(c->dns_servers);
	free(c->path);
	config_shaping_fini(&c->shaping);
	for (size_t i = 0; i < c->nwarmup_sources; i++)
		free(c->warmup_sources[i]);
	free(c->warmup_sources);
	free(c->warmup_schedule);
	for (size_t i = 0; i < c->nshaping_sites; i++) {
		free(c->shaping_sites[i].key);
		config_shaping_fini(&c->shaping_sites[i].s);
	}
	free(c->shaping_sites);
	for (size_t i = 0; i < c->nshaping_sources; i++) {
		free(c->shaping_sources[i].key);
		config_shaping_fini(&c->shaping_sources[i].s);
	}
	free(c->shaping_sources);
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	config_fini(c);
	free(c);
}

/*
 * libyaml's reader errors (bad UTF-8, control bytes) carry only a byte
 * offset; scanner and parser errors carry a mark. Both become LINE:COL.
 */
static void
config_parse_error(const yaml_parser_t *p, const char *yaml, size_t len,
    const char *name, char *err, size_t errlen)
{
	size_t line = p->problem_mark.line, col = p->problem_mark.column;

	if (err == NULL || errlen == 0)
		return;
	if (p->error == YAML_READER_ERROR) {
		size_t off = p->problem_offset < len ? p->problem_offset : len;

		line = col = 0;
		for (size_t i = 0; i < off; i++) {
			if (yaml[i] == '\n') {
				line++;
				col = 0;
			} else if (((unsigned char)yaml[i] & 0xc0) != 0x80) {
				col++;
			}
		}
	}
	snprintf(err, errlen, "%s:%zu:%zu: %s%s%s", name, line + 1, col + 1,
	    p->problem != NULL ? p->problem : "syntax error",
	    p->context != NULL ? " " : "",
	    p->context != NULL ? p->context : "");
}

int
config_load_string(const char *yaml, size_t len, const char *name,
    struct config **out, char *err, size_t errlen)
{
	yaml_parser_t		 parser;
	yaml_document_t		 doc, extra;
	struct config_ctx	 x = { &doc, name, err, errlen, NULL };
	struct config		*c;
	yaml_node_t		*root;
	char			 hostbuf[256];
	int			 rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (name == NULL)
		name = x.name = "config";
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	if ((rc = config_defaults(c)) != 0) {
		free(c);
		return rc;
	}
	if (!yaml_parser_initialize(&parser)) {
		config_free(c);
		return -ENOMEM;
	}
	if (yaml == NULL) {	/* libyaml asserts on a NULL input */
		yaml = "";
		len = 0;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml,
	    len);
	if (!yaml_parser_load(&parser, &doc)) {
		config_parse_error(&parser, yaml, len, name, err, errlen);
		rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
		yaml_parser_delete(&parser);
		config_free(c);
		return rc;
	}
	root = yaml_document_get_root_node(&doc);
	if (root != NULL) {
		rc = config_section(&x, c, "", config_top, root);
		if (rc == 0) {
			/* One document per file: a second one is a mistake. */
			if (!yaml_parser_load(&parser, &extra)) {
				rc = config_errf(&x, root,
				    "invalid YAML after the first document");
			} else {
				if (yaml_document_get_root_node(&extra) !=
				    NULL)
					rc = config_errf(&x,
					    yaml_document_get_root_node(
					    &extra),
					    "only one YAML document allowed");
				yaml_document_delete(&extra);
			}
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc == 0 && c->ehlo_name == NULL) {
		/* ehlo_name: "" means "this host", as when absent. */
		if (gethostname(hostbuf, sizeof(hostbuf)) != 0 ||
		    (hostbuf[sizeof(hostbuf) - 1] = '\0',
		    !config_domain_ok(hostbuf, strlen(hostbuf))))
			strcpy(hostbuf, "localhost");
		if ((c->ehlo_name = strdup(hostbuf)) == NULL)
			rc = -ENOMEM;
	}
	if (rc == 0 && (c->path = strdup(name)) == NULL)
		rc = -ENOMEM;
	if (rc != 0) {
		config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int
config_load_file(const char *path, struct config **out, char *err,
    size_t errlen)
{
	FILE	*f;
	char	*data;
	size_t	 n;
	int	 rc;

	if ((f = fopen(path, "rb")) == NULL) {
		rc = -errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if ((data = malloc(CONFIG_FILE_MAX + 1)) == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(data, 1, CONFIG_FILE_MAX + 1, f);
	if (ferror(f)) {
		rc = -EIO;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: read error", path);
	} else if (n > CONFIG_FILE_MAX) {
		rc = -EFBIG;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: larger than %d bytes", path,
			    CONFIG_FILE_MAX);
	} else {
		rc = config_load_string(data, n, path, out, err, errlen);
	}
	free(data);
	fclose(f);
	return rc;
}

const struct config_route *
config_route_find(const struct config *c, const char *domain, size_t domlen)
{
	const struct config_route *def = NULL;

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct config_route *r = &c->routes[i];

		if (strcmp(r->domain, "*") == 0)
			def = r;
		else if (domain != NULL && strlen(r->domain) == domlen &&
		    strncasecmp(r->domain, domain, domlen) == 0)
			return r;
	}
	return def;
}

int
config_apply_env(struct config *c, char *err, size_t errlen)
{
	const char	*s;
	char		*host;
	uint16_t	 port;
	int		 rc;

	if ((s = getenv("RINGMAIL_REDIS")) != NULL && *s != '\0') {
		rc = config_parse_hostport(s, strlen(s), &host, &port);
		if (rc == -ENOMEM)
			return rc;
		if (rc != 0) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "RINGMAIL_REDIS: expected"
				    " host:port or [IPv6]:port");
			return -EINVAL;
		}
		free(c->redis_host);
		c->redis_host = host;
		c->redis_port = port;
	}
	if ((s = getenv("RINGMAIL_REDIS_PASSWORD")) != NULL) {
		size_t len = strlen(s);

		if (len > CONFIG_PASSWORD_MAX || strchr(s, '\r') ||
		    strchr(s, '\n')) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "RINGMAIL_REDIS_PASSWORD:"
				    " must be at most %d bytes without CR/LF",
				    CONFIG_PASSWORD_MAX);
			return -EINVAL;
		}
		if ((rc = config_set_str(&c->redis_password, s, len)) != 0)
			return rc;
	}
	return 0;
}

int
config_listen_parse(const char *s, char host[CONFIG_LISTEN_HOST_MAX],
    uint16_t *port)
{
	const char	*colon, *h = s;
	char		*end;
	unsigned char	 a[16];
	size_t		 hl;
	unsigned long	 p;
	int		 af = AF_INET;

	if (s == NULL)
		return -EINVAL;
	if (s[0] == '[') {
		if ((colon = strstr(s, "]:")) == NULL)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(colon - h);
		colon++;
		af = AF_INET6;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= CONFIG_LISTEN_HOST_MAX)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(af, host, a) != 1)
		return -EINVAL;
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}
