/*
 * config: config.yaml, read with libyaml into one typed, immutable struct.
 *
 * Owns: the struct config and every string in it (freed by config_free).
 * Every key has a default (config_defaults), so an empty file is valid and
 * a worker needs nothing but a Redis address. Unknown keys, wrong types and
 * out-of-range values are errors reported as "FILE:LINE:COL: message".
 * Must not touch: runtime state; nothing mutates a loaded config (a reload
 * builds a new one).
 */
#ifndef ENGINE_CORE_CONFIG_H
#define ENGINE_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bound on entries under routes: (keeps lookups and checks cheap). */
#define CONFIG_ROUTES_MAX	1024
#define CONFIG_DKIM_MAX		256	/* entries under dkim: */
#define CONFIG_DKIM_HEADERS_MAX	20	/* names under dkim_headers: */
#define CONFIG_HNAME_MAX	64	/* one header name */
#define CONFIG_URL_MAX		512	/* unsubscribe.url */
#define CONFIG_UNSUB_URL_DEFAULT "https://unsub.example/u/"
#define CONFIG_UNSUB_LISTEN_DEFAULT "127.0.0.1:8025"
#define CONFIG_LISTEN_HOST_MAX	64	/* IP literal, NUL included */

/* dkim[].algorithm: what the key file must hold. */
enum config_dkim_alg {
	CONFIG_DKIM_AUTO,		/* whatever the key is */
	CONFIG_DKIM_RSA,		/* rsa-sha256 */
	CONFIG_DKIM_ED25519,		/* ed25519-sha256 */
};

/*
 * One DKIM signing key. Mail whose From domain is `domain` is signed with
 * the first entry for it, or with every entry when dkim_dual is set. The
 * key file is only read by the worker (mail/dkim.h), which also checks
 * that its type matches `algorithm`.
 */
/* One local source address of an IP pool and the EHLO name it uses. */
struct config_source {
	char		*addr;		/* owns; IPv4 or IPv6 literal */
	char		*ehlo_name;	/* owns; NULL = smtp.ehlo_name */
};

/* pools: NAME: [{source, ehlo_name}, ...] */
struct config_pool {
	char			*name;	/* owns */
	struct config_source	*src;	/* owns */
	size_t			 nsrc;
};
#define CONFIG_POOLS_MAX	64
#define CONFIG_POOL_SOURCES_MAX	256
#define CONFIG_WARMUP_DAYS_MAX	365

struct config_dkim {
	char		*domain;	/* owns; d=, lower-case */
	char		*selector;	/* owns; s= */
	char		*key_file;	/* owns; PEM private key path */
	enum config_dkim_alg algorithm;
};

/* Upper bound on entries under dns.resolvers: */
#define CONFIG_DNS_RESOLVERS_MAX	16

/* Static route: mail for `domain` goes to host:port ("*" = any domain). */
struct config_route {
	char		*domain;	/* lower-case; "*" for the default */
	char		*host;		/* IP literal or name */
	uint16_t	 port;
};

struct config_timeouts {		/* all milliseconds (RFC 5321 4.5.3.2) */
	uint32_t	 connect;	/* default 30 s */
	uint32_t	 banner;	/* 5 min */
	uint32_t	 ehlo;		/* 5 min */
	uint32_t	 mail_from;	/* 5 min */
	uint32_t	 rcpt_to;	/* 5 min */
	uint32_t	 data;		/* 2 min */
	uint32_t	 data_block;	/* 3 min */
	uint32_t	 data_dot;	/* 10 min */
	uint32_t	 idle;		/* idle in pool before QUIT: 60 s */
};

/* smtp.tls: when to use STARTTLS (RFC 3207) and whether to verify. */
enum config_tls_mode {
	CONFIG_TLS_OPPORTUNISTIC,	/* default: TLS when offered, no
					   verification (RFC 7435) */
	CONFIG_TLS_REQUIRED,		/* no TLS, no delivery; not verified */
	CONFIG_TLS_VERIFY,		/* required, plus chain and MX host
					   name checked */
	CONFIG_TLS_NONE			/* never STARTTLS */
};

/*
 * shaping: (issue 6). A rate is "N/s", "N/m", "N/h" or "N/d" (N messages
 * or connections per second/minute/hour/day); n == 0 means unlimited
 * (written "unlimited"). The limiter itself is out/shape.h.
 */
struct config_rate {
	uint32_t	 n;		/* 0 = unlimited */
	uint32_t	 per_s;		/* 1, 60, 3600 or 86400 */
};
#define CONFIG_RATE_N_MAX	1000000000u
#define CONFIG_RATE_STR_MAX	24	/* "1000000000/d" + NUL, rounded */
#define CONFIG_SHAPING_MAX	4096	/* entries under sites:, sources: */
#define CONFIG_PATTERNS_MAX	64	/* throttle_patterns per layer */
#define CONFIG_PATTERN_MAX	200	/* bytes in one pattern */

/* Which fields a layer of shaping settings gives (config_shaping.set). */
#define CONFIG_SHAPE_F_CONN_LIMIT	0x01u	/* connection_limit */
#define CONFIG_SHAPE_F_MAX_DELIV	0x02u	/* max_deliveries_per_conn. */
#define CONFIG_SHAPE_F_MSG_RATE		0x04u	/* max_message_rate */
#define CONFIG_SHAPE_F_CONN_RATE	0x08u	/* max_connection_rate */
#define CONFIG_SHAPE_F_ADAPTIVE		0x10u	/* adaptive */
#define CONFIG_SHAPE_F_PATTERNS		0x20u	/* throttle_patterns */
/* timeouts.<stage>: bit CONFIG_SHAPE_F_TIMEOUT << stage index (0..8, in
 * struct config_timeouts order: connect banner ehlo mail_from rcpt_to
 * data data_block data_dot idle). */
#define CONFIG_SHAPE_F_TIMEOUT		0x40u
#define CONFIG_TIMEOUTS_N		9
#define CONFIG_SHAPE_F_TLS		0x10000u	/* tls */

/*
 * One layer of shaping settings (shaping.defaults, one site, one source),
 * or the merged result of config_shaping_for(). Only fields whose bit is
 * in `set` were given in a layer; a merged result has every field filled.
 */
struct config_shaping {
	unsigned	 set;			/* CONFIG_SHAPE_F_* */
	uint32_t	 connection_limit;	/* 1..10000 */
	uint32_t	 max_deliveries_per_connection; /* 1..100000 */
	struct config_rate max_message_rate;	/* unlimited */
	struct config_rate max_connection_rate;	/* unlimited */
	bool		 adaptive;		/* true */
	char		**throttle_patterns;	/* owns in a layer; borrows
						   (from the config) in a
						   merged result */
	size_t		 nthrottle_patterns;
	struct config_timeouts timeouts;	/* smtp.timeouts, overridden
						   per stage by layers */
	enum config_tls_mode tls;		/* smtp.tls, or the layer's */
};

#define CONFIG_IN_DOMAINS_MAX	64	/* entries per inbound domain list */

/* shaping.sites / shaping.sources entry. */
struct config_shaping_entry {
	char		*key;	/* owns; lower-case site key or domain, or
				   the source IP in inet_ntop() form */
	struct config_shaping s;
};

struct config {
	/* redis: */
	char		*redis_host;		/* "127.0.0.1" */
	uint16_t	 redis_port;		/* 6379 */
	uint32_t	 redis_db;		/* 0 */
	char		*redis_password;	/* NULL = none */
	/* worker: */
	uint32_t	 worker_threads;	/* 0 = one per core */
	uint32_t	 fetch_batch;		/* jobs per XREADGROUP: 16 */
	uint32_t	 max_queued;		/* recipients held per thread: 20000 */
	uint32_t	 claim_idle_ms;		/* reclaim others' jobs idle this long: 300 s */
	/* smtp: */
	char		*ehlo_name;		/* default: gethostname() */
	bool		 pipelining;		/* true */
	char		*pool;			/* default IP pool, NULL = none */
	struct config_pool *pools;		/* owns */
	size_t		 npools;
	uint16_t	 remote_port;		/* port of MX hosts: 25 */
	uint32_t	 host_penalty_ms;	/* failing host skipped p^2 x this */
	uint32_t	 connection_limit;	/* per destination, fleet-wide: 10 */
	uint32_t	 max_deliveries_per_connection; /* 100 */
	struct config_timeouts timeouts;
	/* smtp (issue 3; appended after timeouts in the file, here too): */
	enum config_tls_mode tls;		/* opportunistic */
	char		*tls_ca_file;		/* NULL = system default CAs */
	bool		 chunking;		/* false: CHUNKING/BDAT off */
	/* message: */
	char		*message_id_domain;	/* default: the From domain */
	/* retry: */
	uint32_t	 retry_delay_ms;	/* first retry after: 5 min */
	uint32_t	 retry_max_delay_ms;	/* backoff cap: 4 h */
	uint32_t	 retry_max_age_ms;	/* then "expired": 4 d */
	uint32_t	 retry_max_attempts;	/* then "failed": 100 */
	/* routes: */
	struct config_route *routes;		/* owns */
	size_t		 nroutes;
	/* dns: */
	char		*dns_servers;		/* dns.resolvers as c-ares wants
						   them: "192.0.2.1:53,[::1]:53";
						   NULL = /etc/resolv.conf */
	size_t		 ndns_resolvers;	/* entries in dns_servers */
	uint32_t	 dns_timeout_ms;	/* first try per server: 5 s */
	uint32_t	 dns_tries;		/* per server: 2 */
	uint32_t	 dns_cache_size;	/* routes cached per thread: 10000 */
	/* log: */
	int		 log_level;		/* enum log_level; LOG_INFO */
	/* dkim:, dkim_dual:, dkim_headers: */
	struct config_dkim *dkim;		/* owns; none by default */
	size_t		 ndkim;
	bool		 dkim_dual;		/* false: first key per domain */
	char		**dkim_headers;		/* owns; extra signed names */
	size_t		 ndkim_headers;
	/* verp: (on when bounce_domain is set) */
	char		*verp_bounce_domain;	/* NULL = plain envelope sender */
	char		*verp_secret_file;	/* NULL; required with the above */
	/* unsubscribe: (tokens on when secret_file is set) */
	char		*unsub_url;		/* CONFIG_UNSUB_URL_DEFAULT */
	char		*unsub_mailto_domain;	/* NULL = no mailto: link */
	char		*unsub_secret_file;	/* NULL */
	uint32_t	 unsub_max_age_s;	/* 90 days; 0 = never expires */
	char		*unsub_listen;		/* unsubscribe.listen: "IP:port"
						   or "[IPv6]:port"; NULL =
						   CONFIG_UNSUB_LISTEN_DEFAULT */
	/* Where it came from, for messages. */
	char		*path;
	/* shaping: (issue 6; see config_shaping_for for the precedence) */
	struct config_shaping shaping;		/* shaping.defaults */
	struct config_shaping_entry *shaping_sites;	/* owns */
	size_t		 nshaping_sites;
	struct config_shaping_entry *shaping_sources;	/* owns */
	size_t		 nshaping_sources;
	/*
	 * warmup: (issue 6) sources on a daily schedule. A source is on
	 * day d of the schedule (state in Redis, RM_LUA_WARMUP_TAKE); it
	 * advances a day only when the previous day's deferral and bounce
	 * ratios stayed at or under the maxima. Past the last day it is warm.
	 */
	char		**warmup_sources;	/* owns; canonical IPs */
	size_t		 nwarmup_sources;
	uint32_t	*warmup_schedule;	/* owns; messages per UTC day */
	size_t		 nwarmup_schedule;	/* 1..CONFIG_WARMUP_DAYS_MAX */
	uint32_t	 warmup_max_deferral_pct;	/* 10 */
	uint32_t	 warmup_max_bounce_pct;		/* 5 */
	/* inbound: (issue 7; `ringmail inbound`). Listen addresses are
	 * "host:port" or "[v6]:port"; NULL = that listener is off. */
	char		*in_listen_smtp;	/* "127.0.0.1:2525" */
	char		*in_listen_imap;	/* NULL */
	char		*in_listen_imaps;	/* NULL */
	char		*in_listen_pop3;	/* NULL */
	char		*in_listen_pop3s;	/* NULL */
	char		*in_tls_cert_file;	/* NULL = no TLS (no STARTTLS,
						   no imaps/pop3s) */
	char		*in_tls_key_file;	/* NULL; required with cert */
	char		*in_maildir_root;	/* "maildir" */
	char		*in_users_file;		/* NULL = IMAP/POP3 logins off */
	char		**in_bounce_domains;	/* owns; lower-case; default:
						   verp.bounce_domain if set */
	size_t		 nin_bounce_domains;
	char		**in_reply_domains;	/* owns; lower-case */
	size_t		 nin_reply_domains;
	char		*in_bounce_mailbox;	/* "bounces" (a user name) */
	char		*in_reply_mailbox;	/* "replies" (a user name) */
	uint64_t	 in_max_message_size;	/* bytes: 25 MiB */
	uint32_t	 in_max_connections_per_ip; /* 20 */
	uint32_t	 in_max_connections;	/* all listeners: 1000 */
	uint32_t	 in_max_recipients;	/* per message: 100 */
};

/* Fill c with defaults (allocates the default strings). 0 or -ENOMEM. */
int	config_defaults(struct config *c);
/*
 * Load a YAML document. name is used in error messages ("config.yaml").
 * On error returns -EINVAL (or -ENOENT/-errno for the file) and writes
 * "name:LINE:COL: message" into err; *out is untouched.
 */
int	config_load_file(const char *path, struct config **out, char *err,
	    size_t errlen);
int	config_load_string(const char *yaml, size_t len, const char *name,
	    struct config **out, char *err, size_t errlen);
void	config_free(struct config *c);
/*
 * Split a listen address "A.B.C.D:PORT" or "[IPv6]:PORT" (IP literals
 * only, port 1..65535) into host (NUL-terminated, without brackets) and
 * port. 0 or -EINVAL.
 */
int	config_listen_parse(const char *s, char host[CONFIG_LISTEN_HOST_MAX],
	    uint16_t *port);
/* The pool named name, or NULL. */
/* smtp.tls or any shaping layer's tls is other than none. */
bool	config_tls_used(const struct config *c);
const struct config_pool *config_pool_find(const struct config *c,
	    const char *name);
/* The route for a domain (exact match, then "*"), or NULL. */
const struct config_route *config_route_find(const struct config *c,
	    const char *domain, size_t domlen);
/*
 * Apply RINGMAIL_REDIS=host:port (and RINGMAIL_REDIS_PASSWORD) from the
 * environment. 0, or -EINVAL with a message in err.
 */
int	config_apply_env(struct config *c, char *err, size_t errlen);

/*
 * Parse a rate: "N/s", "N/m", "N/h", "N/d" with N in 1..CONFIG_RATE_N_MAX
 * (decimal digits only, no spaces), or "unlimited" (n = 0). s need not be
 * NUL-terminated. 0 or -EINVAL (*out untouched).
 */
int	config_rate_parse(const char *s, size_t len, struct config_rate *out);
/*
 * Write r as config_rate_parse reads it ("100/s", "unlimited") into out
 * (outsz >= CONFIG_RATE_STR_MAX always suffices). Returns out.
 */
char	*config_rate_format(const struct config_rate *r, char *out,
	    size_t outsz);
/*
 * The shaping settings for one delivery: every field filled, merged in
 * this order, each later layer overriding the fields it sets:
 *   smtp.connection_limit and smtp.max_deliveries_per_connection (the
 *   fallback), built-in defaults (unlimited rates, adaptive, no
 *   patterns) < shaping.defaults < shaping.sites[site] <
 *   shaping.sites[domain] < shaping.sources[source].
 * site (MX rollup key, dns_route.site), domain (recipient domain) and
 * source (local IP as text) may each be NULL or "" to skip that layer;
 * keys match case-insensitively, sources by address (so "::1" equals
 * "0::1"). out borrows the pattern strings from c. Linear in the number
 * of entries: call it once per site and cache, not per message.
 */
void	config_shaping_for(const struct config *c, const char *site,
	    const char *domain, const char *source,
	    struct config_shaping *out);

#endif
