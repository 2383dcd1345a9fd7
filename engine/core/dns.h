/*
 * dns: delivery-route resolution (MX, A/AAAA, implicit MX, null MX) with
 * c-ares driven from the worker's ring, one resolver per worker thread.
 *
 * Owns: one ares channel, the POLL_ADD ops of its sockets (c-ares opens
 * and closes them; we are told through ARES_OPT_SOCK_STATE_CB), one loop
 * timer for ares_timeout(), the in-flight lookups (one per domain, shared
 * by every caller asking for it meanwhile) and a bounded TTL cache of
 * routes. Nothing here ever blocks the loop thread.
 * Must not touch: delivery policy (what a failure means for a recipient,
 * static routes, connection pools): callers decide from dns_route.
 * Worker-local, not thread-safe: use one struct dns per loop thread.
 *
 * TTLs (seconds, RFC 2308 for the negative ones):
 *   resolved route   min TTL of every answer used (MX, A, AAAA, and the
 *                    SOA-derived TTL of an empty A/AAAA answer), clamped
 *                    to [5 s, 1 d]; at most 30 s when some host lookup
 *                    failed temporarily (so the missing hosts come back)
 *   NXDOMAIN / no A/AAAA for an implicit MX
 *                    min(SOA TTL, SOA MINIMUM) from the authority section,
 *                    or 5 min without an SOA; clamped likewise
 *   null MX          the MX record's TTL, clamped likewise
 *   temporary        30 s (SERVFAIL, timeouts, refused, malformed)
 * TTLs use mono_now() (lib/mono.h), so tests can move time.
 */
#ifndef ENGINE_CORE_DNS_H
#define ENGINE_CORE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "core/loop.h"

#define DNS_MX_MAX	16	/* hosts kept per route, best preference first */
#define DNS_ADDR_MAX	8	/* addresses kept per host */
#define DNS_SITE_MAX	512	/* sizeof(dns_route.site) */
#define DNS_WHY_MAX	160	/* sizeof(dns_route.why) */

#define DNS_TTL_MIN_S		5
#define DNS_TTL_MAX_S		86400
#define DNS_TTL_NEG_S		300	/* negative answer without an SOA */
#define DNS_TTL_TEMP_S		30	/* temporary failures */

struct dns;

struct dns_opts {
	/*
	 * "192.0.2.1:53,[2001:db8::1]:53" (c-ares' CSV: an IPv6 address
	 * needs brackets and a port); NULL or "" = /etc/resolv.conf.
	 */
	const char	*servers;
	unsigned	 timeout_ms;	/* first try per server; 0 = 5000 */
	unsigned	 tries;		/* per server; 0 = 2 */
	size_t		 cache_max;	/* routes cached; 0 = no cache */
	uint16_t	 port;		/* put in every returned address; 0 = 25 */
};

struct dns_host {
	char		 name[256];	/* lower-case, no trailing dot */
	uint16_t	 pref;		/* MX preference; 0 for an implicit MX */
	unsigned	 naddrs;
	/*
	 * IPv6 and IPv4 interleaved, IPv6 first (RFC 8305 4), each family
	 * in the order the server gave; port = dns_opts.port.
	 */
	struct sockaddr_storage addrs[DNS_ADDR_MAX];
};

struct dns_route {
	/*
	 * 0; -ENOENT: the domain does not exist (NXDOMAIN), or has neither
	 * MX nor A/AAAA (permanent); -ENODATA: null MX, RFC 7505 (permanent);
	 * -EINVAL: not a valid domain name (permanent); -EAGAIN: SERVFAIL,
	 * timeout, or no MX host has an address (temporary); -ECANCELED:
	 * dns_free() ran first.
	 */
	int		 status;
	bool		 implicit;	/* no MX: the domain's own A/AAAA
					   (RFC 5321 5.1) */
	unsigned	 nhosts;	/* 0 unless status == 0 */
	struct dns_host	 hosts[DNS_MX_MAX];	/* by preference; equal
						   preferences shuffled
						   per call */
	/*
	 * MX rollup key: the MX host names, sorted, lower-cased,
	 * de-duplicated, joined by ','. Domains with equal MX sets have
	 * equal keys. Implicit MX, failures: the domain itself (lower-case;
	 * "" when it is not a valid name or on -ECANCELED). A key that
	 * would not fit ends in "#" + SHA-256 of the whole key.
	 */
	char		 site[DNS_SITE_MAX];
	char		 why[DNS_WHY_MAX];	/* reason, for failures */
};

/*
 * r (and everything in it) is valid only during the call. A callback may
 * call dns_resolve_route() again but must not call dns_free().
 */
typedef void dns_route_cb(void *arg, const struct dns_route *r);

/*
 * A resolver polled through l. NULL on failure (bad servers string, no
 * memory, c-ares refused to start), logged.
 */
struct dns *dns_new(struct loop *l, const struct dns_opts *o);
/*
 * Cancel every pending lookup (their callbacks run now with -ECANCELED)
 * and free d. Polls of c-ares sockets may still be in the ring: they
 * complete by themselves and free their memory, so keep running the
 * loop until l->ninflight is 0 before loop_fini(). NULL is a no-op.
 */
void	dns_free(struct dns *d);
/*
 * Resolve domain's delivery route (MX by preference, random among equal
 * preferences; each host's AAAA and A; implicit MX; null MX; domain
 * literals "[192.0.2.1]" and "[IPv6:2001:db8::1]" resolve to themselves).
 * Hosts that do not resolve are left out; a route whose hosts all fail is
 * -EAGAIN. Concurrent lookups of one domain share one query. cb runs
 * exactly once, possibly before this returns (cache hit, invalid name).
 * Returns 0, or -ENOMEM (cb not called).
 */
int	dns_resolve_route(struct dns *d, const char *domain, dns_route_cb *cb,
	    void *arg);
/* Lookups in flight (distinct domains), for tests and stats. */
unsigned dns_pending(const struct dns *d);

/*
 * The pure parts, exported for tests and the fuzzer.
 */

/* Sort by preference, then name (the canonical order kept in the cache). */
void	dns_hosts_sort(struct dns_host *h, unsigned n);
/* Shuffle each run of equal preferences (hosts must be sorted). */
void	dns_route_shuffle(struct dns_route *r, uint64_t *rng);
/* splitmix64: the generator dns_route_shuffle() draws from. */
uint64_t dns_rand(uint64_t *state);
/*
 * Site key of n host names (reorders names): sorted, lower-cased,
 * de-duplicated, ','-joined into out (outsize >= 80). Returns its length.
 */
size_t	dns_site_key(char *out, size_t outsize, const char **names, size_t n);
/* Clamp a TTL to [DNS_TTL_MIN_S, DNS_TTL_MAX_S]. */
uint32_t dns_ttl_clamp(uint32_t ttl_s);
/*
 * Fill h's addresses from the AAAA and A answers, interleaved IPv6 first,
 * at most DNS_ADDR_MAX, with this port.
 */
void	dns_host_fill(struct dns_host *h, const struct in6_addr *v6,
	    unsigned n6, const struct in_addr *v4, unsigned n4, uint16_t port);
/*
 * A host name we will use: 1..253 bytes of LDH and '_' labels of 1..63,
 * no empty label, no trailing dot.
 */
bool	dns_name_ok(const char *s, size_t len);
/*
 * Lower-case domain into out[256] without a trailing dot. 0, or -EINVAL
 * when it is not a valid host name.
 */
int	dns_domain_norm(const char *domain, char *out);
/*
 * Scan a DNS response (RFC 1035 4.1): *answer_ttl = min TTL over the
 * answer section, *neg_ttl = min(SOA TTL, SOA MINIMUM) over SOA records
 * in the authority section (RFC 2308 5); UINT32_MAX when there are none.
 * TTLs with the top bit set count as 0 (RFC 2181 8). 0 or -EBADMSG.
 */
int	dns_msg_ttls(const unsigned char *msg, size_t len,
	    uint32_t *answer_ttl, uint32_t *neg_ttl);

/*
 * The route cache: at most max entries (the oldest inserted is evicted),
 * each expiring ttl_s after it was put (mono_now()). Compact: an entry
 * holds only the hosts and addresses it has. Keys are exact strings
 * (callers normalise).
 */
struct dns_cache;

struct dns_cache *dns_cache_new(size_t max);
void	dns_cache_free(struct dns_cache *c);
/* Insert or replace. 0 or -ENOMEM. A cache of max 0 stores nothing. */
int	dns_cache_put(struct dns_cache *c, const char *key,
	    const struct dns_route *r, uint32_t ttl_s);
/* 0 and *out filled, or -ENOENT (absent; expired entries are dropped). */
int	dns_cache_get(struct dns_cache *c, const char *key,
	    struct dns_route *out);
size_t	dns_cache_count(const struct dns_cache *c);

#endif
