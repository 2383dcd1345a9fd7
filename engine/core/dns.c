/*
 * dns: MX resolution with c-ares polled through the ring. See dns.h.
 *
 * One lookup of a domain is a struct dns_job: an MX query, then an A and
 * an AAAA query per MX host (or for the domain itself: implicit MX). Every
 * caller asking for the domain meanwhile waits on the same job. When the
 * last query answers, the route is assembled, cached, and handed to each
 * waiter (shuffled per waiter among equal preferences).
 *
 * c-ares tells us which sockets to watch through the sock-state callback;
 * each becomes a struct dns_sock with a POLLIN and a POLLOUT op. A poll
 * holds a reference to the file, so when c-ares closes a socket we remove
 * its polls and the dns_sock lives on (dying) until every op of it has
 * completed; a new socket with the same fd number gets a new dns_sock.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <ares.h>
#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/mono.h"

#include "core/dns.h"

#define DNS_CLASS_IN	1
#define DNS_TYPE_A	1
#define DNS_TYPE_SOA	6
#define DNS_TYPE_MX	15
#define DNS_TYPE_AAAA	28

/* c-ares defaults are 5 s x 4 tries per server: too slow for a sender. */
#define DNS_TIMEOUT_MS_DEFAULT	5000
#define DNS_TRIES_DEFAULT	2

struct dns_sock {
	struct loop_op	 op_read;	/* POLLIN */
	struct loop_op	 op_write;	/* POLLOUT */
	struct loop_op	 op_rm_read;	/* POLL_REMOVE of op_read */
	struct loop_op	 op_rm_write;
	struct dns	*d;		/* borrowed; NULL once dns_free ran */
	struct dns_sock	*next;		/* on d->socks */
	int		 fd;		/* borrowed: c-ares owns the socket */
	bool		 want_read;
	bool		 want_write;
	bool		 dying;		/* c-ares closed fd */
	bool		 in_cb;		/* inside ares_process_fd for us */
};

struct dns_job;

/* The arg of one ares_query. */
struct dns_q {
	struct dns_job	*job;
	int		 type;
	unsigned	 host;		/* index in job->r.hosts (A, AAAA) */
};

/* Answers collected for one host until the route is assembled. */
struct dns_jhost {
	struct in_addr	 v4[DNS_ADDR_MAX];
	struct in6_addr	 v6[DNS_ADDR_MAX];
	unsigned	 n4, n6;
	int		 err4, err6;	/* 0, -ENOENT, -ENODATA, -EAGAIN */
};

struct dns_waiter {
	dns_route_cb	 *cb;
	void		 *arg;
	struct dns_waiter *next;
};

struct dns_job {
	struct dns	 *d;		/* borrowed */
	struct dns_job	 *next;		/* on d->jobs */
	struct dns_waiter *waiters;	/* owns, in arrival order */
	struct dns_waiter **wtail;
	unsigned	  pending;	/* queries not yet answered */
	uint32_t	  ttl_s;	/* min TTL so far; UINT32_MAX = none */
	bool		  done;		/* r.status is final */
	bool		  cancelled;
	bool		  temp;		/* a host lookup failed temporarily */
	char		  tempwhy[64];
	struct dns_q	  qmx;
	struct dns_q	  q[DNS_MX_MAX][2];
	struct dns_jhost  jh[DNS_MX_MAX];
	struct dns_route  r;
	char		  domain[256];
};

struct dns {
	struct loop	 *loop;		/* borrowed */
	ares_channel	  ch;		/* owns */
	struct loop_timer timer;	/* ares_timeout() */
	struct dns_sock	 *socks;	/* owns (dying ones too) */
	struct dns_job	 *jobs;		/* owns */
	struct dns_cache *cache;	/* owns; NULL = no cache */
	uint64_t	  rng;
	uint16_t	  port;
	bool		  closing;
};

/* ---- pure helpers ---- */

uint64_t
dns_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int
dns_host_cmp(const void *a, const void *b)
{
	const struct dns_host *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name);
}

void
dns_hosts_sort(struct dns_host *h, unsigned n)
{
	if (n > 1)
		qsort(h, n, sizeof(*h), dns_host_cmp);
}

static void
dns_host_swap(struct dns_host *a, struct dns_host *b)
{
	struct dns_host t;

	if (a == b)
		return;
	memcpy(&t, a, sizeof(t));
	memcpy(a, b, sizeof(t));
	memcpy(b, &t, sizeof(t));
}

void
dns_route_shuffle(struct dns_route *r, uint64_t *rng)
{
	unsigned a = 0, b;

	/* Fisher-Yates within each run of equal preference (RFC 5321 5.1). */
	while (a < r->nhosts) {
		for (b = a + 1; b < r->nhosts &&
		    r->hosts[b].pref == r->hosts[a].pref; b++)
			;
		for (unsigned i = b - 1; i > a; i--) {
			unsigned j = a + (unsigned)(dns_rand(rng) %
			    (uint64_t)(i - a + 1));

			dns_host_swap(&r->hosts[i], &r->hosts[j]);
		}
		a = b;
	}
}

static int
dns_name_pcmp(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Where dns_site_key() writes: a bounded prefix and a running digest. */
struct dns_site_out {
	char		*out;
	size_t		 len, keep;
	EVP_MD_CTX	*md;
};

static void
dns_site_emit(struct dns_site_out *o, char c)
{
	if (o->md != NULL)
		EVP_DigestUpdate(o->md, &c, 1);
	if (o->len < o->keep)
		o->out[o->len++] = c;
}

size_t
dns_site_key(char *out, size_t outsize, const char **names, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	struct dns_site_out	 o = { out, 0, 0, NULL };
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen = 0;
	size_t			 total = 0, w = 0;

	if (outsize < 80) {
		if (outsize > 0)
			out[0] = '\0';
		return 0;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), dns_name_pcmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcasecmp(names[i], names[i - 1]) != 0)
			total += (total > 0) + strlen(names[i]);
	o.keep = outsize - 1;
	if (total >= outsize) {
		/*
		 * Too long: keep a prefix and make it unique with a digest
		 * of the whole key, so two MX sets never share a site.
		 */
		o.keep = outsize - 1 - 1 - 64;
		if ((o.md = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestInit_ex(o.md, EVP_sha256(), NULL) != 1) {
			EVP_MD_CTX_free(o.md);
			o.md = NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcasecmp(names[i], names[i - 1]) == 0)
			continue;
		if (w++ > 0)
			dns_site_emit(&o, ',');
		for (const char *p = names[i]; *p != '\0'; p++)
			dns_site_emit(&o, (char)tolower((unsigned char)*p));
	}
	if (total >= outsize) {
		if (o.md != NULL) {
			EVP_DigestFinal_ex(o.md, md, &mdlen);
			EVP_MD_CTX_free(o.md);
		}
		out[o.len++] = '#';
		for (unsigned i = 0; i < mdlen && i < 32; i++) {
			out[o.len++] = hex[md[i] >> 4];
			out[o.len++] = hex[md[i] & 15];
		}
	}
	out[o.len] = '\0';
	return o.len;
}

uint32_t
dns_ttl_clamp(uint32_t ttl_s)
{
	if (ttl_s < DNS_TTL_MIN_S)
		return DNS_TTL_MIN_S;
	if (ttl_s > DNS_TTL_MAX_S)
		return DNS_TTL_MAX_S;
	return ttl_s;
}

void
dns_host_fill(struct dns_host *h, const struct in6_addr *v6, unsigned n6,
    const struct in_addr *v4, unsigned n4, uint16_t port)
{
	unsigned i6 = 0, i4 = 0;

	h->naddrs = 0;
	while (h->naddrs < DNS_ADDR_MAX && (i6 < n6 || i4 < n4)) {
		struct sockaddr_storage *ss = &h->addrs[h->naddrs];

		memset(ss, 0, sizeof(*ss));
		if (i6 < n6 && (i6 <= i4 || i4 >= n4)) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(port);
			s6->sin6_addr = v6[i6++];
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

			s4->sin_family = AF_INET;
			s4->sin_port = htons(port);
			s4->sin_addr = v4[i4++];
		}
		h->naddrs++;
	}
}

bool
dns_name_ok(const char *s, size_t len)
{
	size_t lab = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0)
				return false;
			lab = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0;
}

int
dns_domain_norm(const char *domain, char *out)
{
	size_t len = domain != NULL ? strnlen(domain, 256) : 0;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (!dns_name_ok(domain, len))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)domain[i]);
	out[len] = '\0';
	return 0;
}

/* Skip a (possibly compressed) name at *off, staying below end. */
static int
dns_msg_skip_name(const unsigned char *m, size_t end, size_t *off)
{
	size_t o = *off;

	for (;;) {
		unsigned char b;

		if (o >= end)
			return -EBADMSG;
		b = m[o];
		if (b == 0) {
			*off = o + 1;
			return 0;
		}
		if ((b & 0xc0) == 0xc0) {
			if (o + 2 > end)
				return -EBADMSG;
			*off = o + 2;
			return 0;
		}
		if ((b & 0xc0) != 0)	/* RFC 6891 6.1: no other types */
			return -EBADMSG;
		o += 1 + (size_t)b;
	}
}

static uint32_t
dns_msg_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

int
dns_msg_ttls(const unsigned char *m, size_t len, uint32_t *answer_ttl,
    uint32_t *neg_ttl)
{
	unsigned	qd, an, ns;
	size_t		off = 12;

	*answer_ttl = *neg_ttl = UINT32_MAX;
	if (m == NULL || len < 12)
		return -EBADMSG;
	qd = (unsigned)m[4] << 8 | m[5];
	an = (unsigned)m[6] << 8 | m[7];
	ns = (unsigned)m[8] << 8 | m[9];
	for (unsigned i = 0; i < qd; i++) {
		if (dns_msg_skip_name(m, len, &off) != 0 || len - off < 4)
			return -EBADMSG;
		off += 4;
	}
	for (unsigned i = 0; i < an + ns; i++) {
		unsigned	type, rdlen;
		uint32_t	ttl;
		size_t		rd;

		if (dns_msg_skip_name(m, len, &off) != 0 || len - off < 10)
			return -EBADMSG;
		type = (unsigned)m[off] << 8 | m[off + 1];
		ttl = dns_msg_u32(m + off + 4);
		rdlen = (unsigned)m[off + 8] << 8 | m[off + 9];
		off += 10;
		if (len - off < rdlen)
			return -EBADMSG;
		if (ttl & 0x80000000u)
			ttl = 0;
		rd = off;
		off += rdlen;
		if (i < an) {
			if (ttl < *answer_ttl)
				*answer_ttl = ttl;
			continue;
		}
		if (type != DNS_TYPE_SOA)
			continue;
		/* MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM. */
		if (dns_msg_skip_name(m, off, &rd) != 0 ||
		    dns_msg_skip_name(m, off, &rd) != 0 || off - rd < 20)
			return -EBADMSG;
		{
			uint32_t min = dns_msg_u32(m + rd + 16);

			if (min & 0x80000000u)
				min = 0;
			if (min < ttl)
				ttl = min;
			if (ttl < *neg_ttl)
				*neg_ttl = ttl;
		}
	}
	return 0;
}

/* ---- the cache ---- */

/*
 * One route, serialised after the header: the key, then per host
 * pref(2) naddrs(1) namelen(1) name, per address family(1) port(2)
 * addr(4|16); then sitelen(2) site, whylen(1) why.
 */
struct dns_centry {
	struct dns_centry *hnext;	/* hash chain */
	struct dns_centry *newer;	/* insertion order */
	struct dns_centry *older;
	mono_us		   expires;
	uint64_t	   hash;
	int		   status;
	bool		   implicit;
	uint8_t		   nhosts;
	uint16_t	   keylen;
	size_t		   len;
	unsigned char	   blob[];
};

struct dns_cache {
	struct dns_centry **buckets;	/* owns the entries */
	size_t		    nbuckets;	/* power of two */
	size_t		    count;
	size_t		    max;
	struct dns_centry  *oldest;
	struct dns_centry  *newest;
	uint64_t	    seed;	/* against crafted collisions */
};

static uint64_t
dns_seed(void)
{
	uint64_t s;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
		s = (uint64_t)mono_now() ^ (uint64_t)(uintptr_t)&s;
	return s;
}

static uint64_t
dns_cache_hash(const struct dns_cache *c, const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ c->seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ull;
	}
	/* Final avalanche (splitmix64): FNV's low bits are weak. */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

struct dns_cache *
dns_cache_new(size_t max)
{
	struct dns_cache *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->max = max;
	c->nbuckets = 16;
	while (c->nbuckets < max && c->nbuckets < ((size_t)1 << 24))
		c->nbuckets <<= 1;
	if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL) {
		free(c);
		return NULL;
	}
	c->seed = dns_seed();
	return c;
}

static void
dns_cache_unlink(struct dns_cache *c, struct dns_centry *e)
{
	struct dns_centry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->count--;
	free(e);
}

void
dns_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	while (c->oldest != NULL)
		dns_cache_unlink(c, c->oldest);
	free(c->buckets);
	free(c);
}

size_t
dns_cache_count(const struct dns_cache *c)
{
	return c->count;
}

static struct dns_centry *
dns_cache_find(struct dns_cache *c, const char *key, size_t len, uint64_t h)
{
	struct dns_centry *e;

	for (e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
		if (e->hash == h && e->keylen == len &&
		    memcmp(e->blob, key, len) == 0)
			return e;
	return NULL;
}

/* Bytes the serialised route needs (see struct dns_centry). */
static size_t
dns_centry_size(const struct dns_route *r, size_t keylen)
{
	size_t n = keylen;

	for (unsigned i = 0; i < r->nhosts; i++) {
		const struct dns_host *h = &r->hosts[i];

		n += 4 + strnlen(h->name, sizeof(h->name) - 1);
		for (unsigned j = 0; j < h->naddrs && j < DNS_ADDR_MAX; j++)
			n += 3 + (h->addrs[j].ss_family == AF_INET6 ? 16 : 4);
	}
	return n + 2 + strnlen(r->site, sizeof(r->site) - 1) + 1 +
	    strnlen(r->why, sizeof(r->why) - 1);
}

int
dns_cache_put(struct dns_cache *c, const char *key,
    const struct dns_route *r, uint32_t ttl_s)
{
	struct dns_centry	*e;
	size_t			 keylen = strlen(key), sz, n;
	unsigned char		*p;
	uint64_t		 h;

	if (c->max == 0 || keylen > UINT16_MAX || r->nhosts > DNS_MX_MAX)
		return 0;
	h = dns_cache_hash(c, key, keylen);
	if ((e = dns_cache_find(c, key, keylen, h)) != NULL)
		dns_cache_unlink(c, e);
	sz = dns_centry_size(r, keylen);
	if ((e = malloc(sizeof(*e) + sz)) == NULL)
		return -ENOMEM;
	while (c->count >= c->max)
		dns_cache_unlink(c, c->oldest);
	e->expires = mono_now() + (mono_us)ttl_s * 1000000;
	e->hash = h;
	e->status = r->status;
	e->implicit = r->implicit;
	e->nhosts = (uint8_t)r->nhosts;
	e->keylen = (uint16_t)keylen;
	e->len = sz;
	p = e->blob;
	memcpy(p, key, keylen);
	p += keylen;
	for (unsigned i = 0; i < r->nhosts; i++) {
		const struct dns_host *hh = &r->hosts[i];
		unsigned na = hh->naddrs < DNS_ADDR_MAX ? hh->naddrs :
		    DNS_ADDR_MAX;

		n = strnlen(hh->name, sizeof(hh->name) - 1);
		*p++ = (unsigned char)(hh->pref >> 8);
		*p++ = (unsigned char)hh->pref;
		*p++ = (unsigned char)na;
		*p++ = (unsigned char)n;
		memcpy(p, hh->name, n);
		p += n;
		for (unsigned j = 0; j < na; j++) {
			const struct sockaddr_storage *ss = &hh->addrs[j];

			if (ss->ss_family == AF_INET6) {
				const struct sockaddr_in6 *s6 =
				    (const struct sockaddr_in6 *)ss;

				*p++ = 6;
				memcpy(p, &s6->sin6_port, 2);
				memcpy(p + 2, &s6->sin6_addr, 16);
				p += 18;
			} else {
				const struct sockaddr_in *s4 =
				    (const struct sockaddr_in *)ss;

				*p++ = 4;
				memcpy(p, &s4->sin_port, 2);
				memcpy(p + 2, &s4->sin_addr, 4);
				p += 6;
			}
		}
	}
	n = strnlen(r->site, sizeof(r->site) - 1);
	*p++ = (unsigned char)(n >> 8);
	*p++ = (unsigned char)n;
	memcpy(p, r->site, n);
	p += n;
	n = strnlen(r->why, sizeof(r->why) - 1);
	*p++ = (unsigned char)n;
	memcpy(p, r->why, n);
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->count++;
	return 0;
}

int
dns_cache_get(struct dns_cache *c, const char *key, struct dns_route *out)
{
	struct dns_centry	*e;
	const unsigned char	*p;
	size_t			 keylen = strlen(key), n;
	uint64_t		 h;

	if (c->count == 0)
		return -ENOENT;
	h = dns_cache_hash(c, key, keylen);
	if ((e = dns_cache_find(c, key, keylen, h)) == NULL)
		return -ENOENT;
	if (mono_now() >= e->expires) {
		dns_cache_unlink(c, e);
		return -ENOENT;
	}
	out->status = e->status;
	out->implicit = e->implicit;
	out->nhosts = e->nhosts;
	p = e->blob + e->keylen;
	for (unsigned i = 0; i < e->nhosts; i++) {
		struct dns_host *hh = &out->hosts[i];

		hh->pref = (uint16_t)(p[0] << 8 | p[1]);
		hh->naddrs = p[2];
		n = p[3];
		p += 4;
		memcpy(hh->name, p, n);
		hh->name[n] = '\0';
		p += n;
		for (unsigned j = 0; j < hh->naddrs; j++) {
			struct sockaddr_storage *ss = &hh->addrs[j];

			memset(ss, 0, sizeof(*ss));
			if (*p++ == 6) {
				struct sockaddr_in6 *s6 =
				    (struct sockaddr_in6 *)ss;

				s6->sin6_family = AF_INET6;
				memcpy(&s6->sin6_port, p, 2);
				memcpy(&s6->sin6_addr, p + 2, 16);
				p += 18;
			} else {
				struct sockaddr_in *s4 =
				    (struct sockaddr_in *)ss;

				s4->sin_family = AF_INET;
				memcpy(&s4->sin_port, p, 2);
				memcpy(&s4->sin_addr, p + 2, 4);
				p += 6;
			}
		}
	}
	n = (size_t)(p[0] << 8 | p[1]);
	p += 2;
	memcpy(out->site, p, n);
	out->site[n] = '\0';
	p += n;
	n = *p++;
	memcpy(out->why, p, n);
	out->why[n] = '\0';
	return 0;
}

/* ---- sockets: c-ares -> io_uring polls ---- */

static void dns_timer_update(struct dns *d);

static bool
dns_sock_busy(const struct dns_sock *s)
{
	return s->op_read.busy || s->op_write.busy || s->op_rm_read.busy ||
	    s->op_rm_write.busy || s->in_cb;
}

/* Free a dying (or orphaned) socket once nothing refers to it. */
static void
dns_sock_maybe_free(struct dns_sock *s)
{
	struct dns_sock **pp;

	if ((!s->dying && s->d != NULL) || dns_sock_busy(s))
		return;
	if (s->d != NULL) {
		for (pp = &s->d->socks; *pp != NULL; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
	}
	free(s);
}

static void
dns_sock_arm(struct dns_sock *s)
{
	struct io_uring_sqe *sqe;

	if (s->want_read && !s->op_read.busy) {
		if ((sqe = loop_sqe(s->d->loop, &s->op_read)) != NULL)
			io_uring_prep_poll_add(sqe, s->fd, POLLIN);
		else
			log_warn("dns poll fd=%d: no SQE", s->fd);
	}
	if (s->want_write && !s->op_write.busy) {
		if ((sqe = loop_sqe(s->d->loop, &s->op_write)) != NULL)
			io_uring_prep_poll_add(sqe, s->fd, POLLOUT);
		else
			log_warn("dns poll fd=%d: no SQE", s->fd);
	}
}

static void
dns_poll_done(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct dns_sock	*s = op->arg;
	struct dns	*d = s->d;
	ares_socket_t	 rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	(void)l;
	(void)flags;
	if (d == NULL || s->dying) {
		dns_sock_maybe_free(s);
		return;
	}
	if (res < 0)
		/* Let c-ares find the error on the socket itself. */
		log_debug("dns poll fd=%d res=%d", s->fd, res);
	if (op == &s->op_read && s->want_read)
		rfd = s->fd;
	if (op == &s->op_write && s->want_write)
		wfd = s->fd;
	if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD) {
		s->in_cb = true;
		ares_process_fd(d->ch, rfd, wfd);
		s->in_cb = false;
	}
	if (s->dying)
		dns_sock_maybe_free(s);
	else
		dns_sock_arm(s);
	dns_timer_update(d);
}

static void
dns_rm_done(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	(void)l;
	(void)res;	/* 0, or -ENOENT when the poll had already fired */
	(void)flags;
	dns_sock_maybe_free(op->arg);
}

/* c-ares closes s->fd right after this: drop our polls of it. */
static void
dns_sock_close(struct dns_sock *s)
{
	struct io_uring_sqe	*sqe;
	struct loop_op		*polls[2] = { &s->op_read, &s->op_write };
	struct loop_op		*rms[2] = { &s->op_rm_read, &s->op_rm_write };

	s->dying = true;
	s->want_read = s->want_write = false;
	for (int i = 0; i < 2; i++) {
		if (!polls[i]->busy || rms[i]->busy)
			continue;
		if ((sqe = loop_sqe(s->d->loop, rms[i])) == NULL)
			continue;	/* the poll completes when it fires */
		io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)polls[i]);
	}
	dns_sock_maybe_free(s);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns	*d = data;
	struct dns_sock	*s;

	for (s = d->socks; s != NULL; s = s->next)
		if (s->fd == fd && !s->dying)
			break;
	if (!readable && !writable) {
		if (s != NULL)
			dns_sock_close(s);
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			/* Its queries time out through ares_timeout(). */
			log_error("dns poll fd=%d: out of memory", fd);
			return;
		}
		s->op_read.cb = s->op_write.cb = dns_poll_done;
		s->op_rm_read.cb = s->op_rm_write.cb = dns_rm_done;
		s->op_read.arg = s->op_write.arg = s;
		s->op_rm_read.arg = s->op_rm_write.arg = s;
		s->d = d;
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	s->want_read = readable != 0;
	s->want_write = writable != 0;
	dns_sock_arm(s);
}

static void
dns_timer_fire(struct loop *l, struct loop_timer *t)
{
	struct dns *d = t->arg;

	(void)l;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(d);
}

/* Arm the timer for c-ares' next retransmission or timeout. */
static void
dns_timer_update(struct dns *d)
{
	struct timeval	 tv, *tvp;

	if (d->ch == NULL || d->closing)
		return;
	if ((tvp = ares_timeout(d->ch, NULL, &tv)) == NULL) {
		loop_timer_cancel(d->loop, &d->timer);
		return;
	}
	loop_timer_at(d->loop, &d->timer, mono_now() +
	    (mono_us)tvp->tv_sec * 1000000 + tvp->tv_usec);
}

/* ---- lookups ---- */

static void dns_on_answer(void *arg, int status, int timeouts,
	    unsigned char *abuf, int alen);

static void
dns_job_ttl(struct dns_job *j, uint32_t ttl)
{
	if (ttl < j->ttl_s)
		j->ttl_s = ttl;
}

static void dns_job_fail(struct dns_job *j, int status, uint32_t ttl,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Final failure of the whole route. */
static void
dns_job_fail(struct dns_job *j, int status, uint32_t ttl, const char *fmt,
    ...)
{
	va_list ap;

	j->done = true;
	j->r.status = status;
	j->r.nhosts = 0;
	j->ttl_s = ttl;
	va_start(ap, fmt);
	vsnprintf(j->r.why, sizeof(j->r.why), fmt, ap);
	va_end(ap);
}

static void
dns_job_query(struct dns_job *j, struct dns_q *q, const char *name)
{
	/* Counted first: ares_query may answer before it returns. */
	j->pending++;
	ares_query(j->d->ch, name, DNS_CLASS_IN, q->type, dns_on_answer, q);
}

/* Negative TTL of an answer: SOA-derived, else the default. */
static uint32_t
dns_neg_ttl(const unsigned char *abuf, int alen)
{
	uint32_t an, neg;

	if (abuf == NULL || alen <= 0 ||
	    dns_msg_ttls(abuf, (size_t)alen, &an, &neg) != 0 ||
	    neg == UINT32_MAX)
		return DNS_TTL_NEG_S;
	return dns_ttl_clamp(neg);
}

static void
dns_job_addr_queries(struct dns_job *j)
{
	for (unsigned i = 0; i < j->r.nhosts; i++) {
		j->q[i][0].job = j->q[i][1].job = j;
		j->q[i][0].host = j->q[i][1].host = i;
		j->q[i][0].type = DNS_TYPE_AAAA;
		j->q[i][1].type = DNS_TYPE_A;
		dns_job_query(j, &j->q[i][0], j->r.hosts[i].name);
		dns_job_query(j, &j->q[i][1], j->r.hosts[i].name);
	}
}

static void
dns_job_implicit(struct dns_job *j)
{
	j->r.implicit = true;
	j->r.nhosts = 1;
	snprintf(j->r.hosts[0].name, sizeof(j->r.hosts[0].name), "%s",
	    j->domain);
	j->r.hosts[0].pref = 0;
	snprintf(j->r.site, sizeof(j->r.site), "%s", j->domain);
	dns_job_addr_queries(j);
}

static void
dns_on_mx(struct dns_job *j, int status, unsigned char *abuf, int alen)
{
	struct ares_mx_reply	*mx = NULL, *m;
	const char		**names = NULL;
	size_t			 n = 0, nmx = 0;
	uint32_t		 an, neg;
	bool			 null_mx = false;
	int			 rc;

	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
		/* NOERROR without MX: the domain is its own MX. */
		dns_job_ttl(j, dns_neg_ttl(abuf, alen));
		dns_job_implicit(j);
		return;
	case ARES_ENOTFOUND:
		dns_job_fail(j, -ENOENT, dns_neg_ttl(abuf, alen),
		    "NXDOMAIN: %s does not exist", j->domain);
		return;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		j->cancelled = true;
		return;
	case ARES_EBADNAME:
		dns_job_fail(j, -EINVAL, DNS_TTL_NEG_S,
		    "%s is not a valid domain name", j->domain);
		return;
	default:
		dns_job_fail(j, -EAGAIN, DNS_TTL_TEMP_S,
		    "MX lookup for %s failed: %s", j->domain,
		    ares_strerror(status));
		return;
	}
	rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc == ARES_ENODATA) {	/* e.g. only a CNAME: implicit MX */
		if (dns_msg_ttls(abuf, (size_t)alen, &an, &neg) == 0 &&
		    an != UINT32_MAX)
			dns_job_ttl(j, an);
		dns_job_implicit(j);
		return;
	}
	if (rc != ARES_SUCCESS) {
		dns_job_fail(j, -EAGAIN, DNS_TTL_TEMP_S,
		    "MX lookup for %s: %s", j->domain, ares_strerror(rc));
		return;
	}
	if (dns_msg_ttls(abuf, (size_t)alen, &an, &neg) == 0 &&
	    an != UINT32_MAX)
		dns_job_ttl(j, an);
	for (m = mx; m != NULL; m = m->next)
		nmx++;
	if ((names = calloc(nmx, sizeof(*names))) == NULL) {
		ares_free_data(mx);
		dns_job_fail(j, -EAGAIN, DNS_TTL_TEMP_S, "out of memory");
		return;
	}
	for (m = mx; m != NULL; m = m->next) {
		size_t len = strlen(m->host);

		if (len > 0 && m->host[len - 1] == '.')
			m->host[--len] = '\0';
		if (len == 0) {		/* "." : RFC 7505 null MX */
			null_mx = true;
			continue;
		}
		/*
		 * Escaped or odd names (a ',' would forge a site key) are
		 * left out as if they did not resolve.
		 */
		if (!dns_name_ok(m->host, len))
			continue;
		for (size_t i = 0; i < len; i++)
			m->host[i] = (char)tolower((unsigned char)m->host[i]);
		names[n++] = m->host;
		/* Keep the best preference of a name listed twice. */
		for (unsigned i = 0; i < j->r.nhosts; i++)
			if (strcmp(j->r.hosts[i].name, m->host) == 0) {
				if (m->priority < j->r.hosts[i].pref)
					j->r.hosts[i].pref = m->priority;
				goto next;
			}
		if (j->r.nhosts < DNS_MX_MAX) {
			struct dns_host *h = &j->r.hosts[j->r.nhosts++];

			snprintf(h->name, sizeof(h->name), "%s", m->host);
			h->pref = m->priority;
		} else {
			/* Full: replace the worst if this one is better. */
			unsigned worst = 0;

			for (unsigned i = 1; i < j->r.nhosts; i++)
				if (j->r.hosts[i].pref >=
				    j->r.hosts[worst].pref)
					worst = i;
			if (m->priority < j->r.hosts[worst].pref) {
				snprintf(j->r.hosts[worst].name,
				    sizeof(j->r.hosts[worst].name), "%s",
				    m->host);
				j->r.hosts[worst].pref = m->priority;
			}
		}
next:		;
	}
	if (n == 0) {
		if (null_mx)
			dns_job_fail(j, -ENODATA, dns_ttl_clamp(
			    j->ttl_s == UINT32_MAX ? DNS_TTL_NEG_S : j->ttl_s),
			    "null MX (RFC 7505): %s accepts no mail",
			    j->domain);
		else
			dns_job_fail(j, -EAGAIN, DNS_TTL_TEMP_S,
			    "no valid MX host name for %s", j->domain);
	} else {
		/* A null MX beside real ones (RFC 7505 3 forbids it) is
		   ignored: the real ones are a better guess than a bounce. */
		dns_site_key(j->r.site, sizeof(j->r.site), names, n);
		dns_hosts_sort(j->r.hosts, j->r.nhosts);
		dns_job_addr_queries(j);
	}
	free(names);
	ares_free_data(mx);
}

static void
dns_on_addr(struct dns_job *j, const struct dns_q *q, int status,
    unsigned char *abuf, int alen)
{
	struct dns_jhost	*h = &j->jh[q->host];
	bool			 v6 = q->type == DNS_TYPE_AAAA;
	int			*err = v6 ? &h->err6 : &h->err4;
	uint32_t		 an, neg;
	int			 rc, n = DNS_ADDR_MAX;

	switch (status) {
	case ARES_SUCCESS:
		if (v6) {
			struct ares_addr6ttl at[DNS_ADDR_MAX];

			rc = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n);
			for (int i = 0; rc == ARES_SUCCESS && i < n; i++)
				memcpy(&h->v6[h->n6++], &at[i].ip6addr,
				    sizeof(h->v6[0]));
		} else {
			struct ares_addrttl at[DNS_ADDR_MAX];

			rc = ares_parse_a_reply(abuf, alen, NULL, at, &n);
			for (int i = 0; rc == ARES_SUCCESS && i < n; i++)
				h->v4[h->n4++] = at[i].ipaddr;
		}
		if (rc == ARES_ENODATA) {
			*err = -ENODATA;
			dns_job_ttl(j, dns_neg_ttl(abuf, alen));
		} else if (rc != ARES_SUCCESS) {
			*err = -EAGAIN;
		} else if (dns_msg_ttls(abuf, (size_t)alen, &an, &neg) == 0 &&
		    an != UINT32_MAX) {
			dns_job_ttl(j, an);
		}
		break;
	case ARES_ENODATA:
		*err = -ENODATA;
		dns_job_ttl(j, dns_neg_ttl(abuf, alen));
		break;
	case ARES_ENOTFOUND:
		*err = -ENOENT;
		dns_job_ttl(j, dns_neg_ttl(abuf, alen));
		break;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		j->cancelled = true;
		return;
	default:
		*err = -EAGAIN;
		if (j->tempwhy[0] == '\0')
			snprintf(j->tempwhy, sizeof(j->tempwhy), "%s %s: %s",
			    j->r.hosts[q->host].name, v6 ? "AAAA" : "A",
			    ares_strerror(status));
		break;
	}
	if (*err == -EAGAIN)
		j->temp = true;
}

static const char *
dns_err_name(int err)
{
	switch (err) {
	case -ENOENT:
		return "NXDOMAIN";
	case -ENODATA:
		return "no address";
	case -EAGAIN:
		return "temporary failure";
	default:
		return "?";
	}
}

/* Every query answered: build the route from the collected addresses. */
static void
dns_job_assemble(struct dns_job *j)
{
	unsigned	 out = 0, nh = j->r.nhosts;
	int		 e4 = j->jh[0].err4, e6 = j->jh[0].err6;

	for (unsigned i = 0; i < nh; i++) {
		struct dns_jhost *h = &j->jh[i];

		if (h->n4 + h->n6 == 0)
			continue;
		if (out != i)
			memcpy(&j->r.hosts[out], &j->r.hosts[i],
			    offsetof(struct dns_host, addrs));
		dns_host_fill(&j->r.hosts[out], h->v6, h->n6, h->v4, h->n4,
		    j->d->port);
		out++;
	}
	j->r.nhosts = out;
	if (out > 0) {
		j->r.status = 0;
		j->ttl_s = dns_ttl_clamp(j->ttl_s);
		if (j->temp && j->ttl_s > DNS_TTL_TEMP_S)
			j->ttl_s = DNS_TTL_TEMP_S;
		return;
	}
	if (j->r.implicit && (e4 == -ENOENT || e6 == -ENOENT) &&
	    e4 != -EAGAIN && e6 != -EAGAIN) {
		dns_job_fail(j, -ENOENT, dns_ttl_clamp(j->ttl_s),
		    "NXDOMAIN: %s does not exist", j->domain);
	} else if (j->r.implicit && e4 == -ENODATA && e6 == -ENODATA) {
		dns_job_fail(j, -ENOENT, dns_ttl_clamp(j->ttl_s),
		    "%s has no MX and no A/AAAA records", j->domain);
	} else if (j->r.implicit) {
		dns_job_fail(j, -EAGAIN, DNS_TTL_TEMP_S,
		    "address lookup for %s failed: %s", j->domain,
		    j->tempwhy[0] ? j->tempwhy : dns_err_name(-EAGAIN));
	} else {
		dns_job_fail(j, -EAGAIN, DNS_TTL_TEMP_S,
		    "no MX host of %s has an address (%s%s%s)", j->domain,
		    j->tempwhy[0] ? j->tempwhy : j->r.hosts[0].name,
		    j->tempwhy[0] ? "" : ": ", j->tempwhy[0] ? "" :
		    dns_err_name(e4 == -ENOENT ? e4 : e6));
	}
}

static void
dns_job_finish(struct dns_job *j)
{
	struct dns		 *d = j->d;
	struct dns_job		**pp;
	struct dns_waiter	 *w;

	for (pp = &d->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (j->cancelled || d->closing) {
		j->r.status = -ECANCELED;
		j->r.nhosts = 0;
		snprintf(j->r.why, sizeof(j->r.why), "resolver shut down");
		snprintf(j->r.site, sizeof(j->r.site), "%s", j->domain);
	} else {
		if (!j->done)
			dns_job_assemble(j);
		if (j->r.status != 0) {
			j->r.implicit = false;
			snprintf(j->r.site, sizeof(j->r.site), "%s",
			    j->domain);
		}
		if (d->cache != NULL &&
		    dns_cache_put(d->cache, j->domain, &j->r, j->ttl_s) != 0)
			log_warn("dns cache domain=%s: out of memory",
			    j->domain);
		log_debug("dns route domain=%s status=%d hosts=%u ttl=%u "
		    "site=\"%s\"", j->domain, j->r.status, j->r.nhosts,
		    j->ttl_s, j->r.site);
	}
	while ((w = j->waiters) != NULL) {
		j->waiters = w->next;
		dns_route_shuffle(&j->r, &d->rng);
		w->cb(w->arg, &j->r);
		free(w);
	}
	free(j);
}

static void
dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_q	*q = arg;
	struct dns_job	*j = q->job;

	(void)timeouts;
	if (j->d->closing && status != ARES_EDESTRUCTION)
		status = ARES_ECANCELLED;
	if (!j->done && !j->cancelled) {
		if (q->type == DNS_TYPE_MX)
			dns_on_mx(j, status, abuf, alen);
		else
			dns_on_addr(j, q, status, abuf, alen);
	}
	/* After the handler: the queries it started hold the job open. */
	if (--j->pending == 0)
		dns_job_finish(j);
}

/* Deliver a route that needs no lookup. */
static void
dns_deliver_now(struct dns *d, dns_route_cb *cb, void *arg, int status,
    const char *site, const char *why)
{
	struct dns_route r;

	(void)d;
	memset(&r, 0, offsetof(struct dns_route, hosts));
	r.status = status;
	snprintf(r.site, sizeof(r.site), "%s", site);
	snprintf(r.why, sizeof(r.why), "%s", why);
	cb(arg, &r);
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). 1 if it is one. */
static int
dns_literal(struct dns *d, const char *domain, dns_route_cb *cb, void *arg)
{
	struct dns_route	 r;
	struct in_addr		 a4;
	struct in6_addr		 a6;
	char			 tmp[INET6_ADDRSTRLEN + 8];
	size_t			 len = strnlen(domain, 256);
	bool			 v6;

	if (len < 3 || domain[0] != '[' || domain[len - 1] != ']')
		return 0;
	v6 = len > 6 && strncasecmp(domain + 1, "IPv6:", 5) == 0;
	if (len - 2 - (v6 ? 5 : 0) >= sizeof(tmp)) {
		dns_deliver_now(d, cb, arg, -EINVAL, domain,
		    "invalid address literal");
		return 1;
	}
	memcpy(tmp, domain + 1 + (v6 ? 5 : 0), len - 2 - (v6 ? 5 : 0));
	tmp[len - 2 - (v6 ? 5 : 0)] = '\0';
	memset(&r, 0, offsetof(struct dns_route, hosts));
	r.implicit = true;
	r.nhosts = 1;
	memset(&r.hosts[0], 0, offsetof(struct dns_host, addrs));
	if (v6 && inet_pton(AF_INET6, tmp, &a6) == 1)
		dns_host_fill(&r.hosts[0], &a6, 1, NULL, 0, d->port);
	else if (!v6 && inet_pton(AF_INET, tmp, &a4) == 1)
		dns_host_fill(&r.hosts[0], NULL, 0, &a4, 1, d->port);
	else {
		dns_deliver_now(d, cb, arg, -EINVAL, domain,
		    "invalid address literal");
		return 1;
	}
	for (size_t i = 0; i < len && i < sizeof(r.site) - 1; i++)
		r.site[i] = (char)tolower((unsigned char)domain[i]);
	r.site[len < sizeof(r.site) ? len : sizeof(r.site) - 1] = '\0';
	snprintf(r.hosts[0].name, sizeof(r.hosts[0].name), "%s", r.site);
	r.why[0] = '\0';
	cb(arg, &r);
	return 1;
}

int
dns_resolve_route(struct dns *d, const char *domain, dns_route_cb *cb,
    void *arg)
{
	struct dns_job		*j;
	struct dns_waiter	*w;
	char			 name[256];

	if (d->closing) {
		dns_deliver_now(d, cb, arg, -ECANCELED, "",
		    "resolver shut down");
		return 0;
	}
	if (domain != NULL && dns_literal(d, domain, cb, arg))
		return 0;
	if (dns_domain_norm(domain, name) != 0) {
		dns_deliver_now(d, cb, arg, -EINVAL, "",
		    "not a valid domain name");
		return 0;
	}
	if (d->cache != NULL) {
		struct dns_route r;

		if (dns_cache_get(d->cache, name, &r) == 0) {
			dns_route_shuffle(&r, &d->rng);
			cb(arg, &r);
			return 0;
		}
	}
	if ((w = malloc(sizeof(*w))) == NULL)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	w->next = NULL;
	for (j = d->jobs; j != NULL; j = j->next)
		if (strcmp(j->domain, name) == 0) {
			*j->wtail = w;
			j->wtail = &w->next;
			return 0;
		}
	if ((j = malloc(sizeof(*j))) == NULL) {
		free(w);
		return -ENOMEM;
	}
	/* The route's address arrays are filled on assembly only. */
	memset(j, 0, offsetof(struct dns_job, r));
	memset(&j->r, 0, offsetof(struct dns_route, hosts));
	for (unsigned i = 0; i < DNS_MX_MAX; i++)
		memset(&j->r.hosts[i], 0, offsetof(struct dns_host, addrs));
	j->r.site[0] = j->r.why[0] = '\0';
	memcpy(j->domain, name, sizeof(name));
	j->d = d;
	j->ttl_s = UINT32_MAX;
	j->waiters = w;
	j->wtail = &w->next;
	j->next = d->jobs;
	d->jobs = j;
	j->qmx.job = j;
	j->qmx.type = DNS_TYPE_MX;
	dns_job_query(j, &j->qmx, j->domain);	/* may finish j */
	dns_timer_update(d);
	return 0;
}

unsigned
dns_pending(const struct dns *d)
{
	unsigned n = 0;

	for (const struct dns_job *j = d->jobs; j != NULL; j = j->next)
		n++;
	return n;
}

static pthread_once_t	dns_lib_once = PTHREAD_ONCE_INIT;
static int		dns_lib_status;

static void
dns_lib_init(void)
{
	/* Not thread-safe in c-ares 1.18: once per process. */
	dns_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

struct dns *
dns_new(struct loop *l, const struct dns_opts *o)
{
	struct ares_options	 ao;
	struct dns		*d;
	int			 rc;

	pthread_once(&dns_lib_once, dns_lib_init);
	if (dns_lib_status != ARES_SUCCESS) {
		log_error("dns init failed reason=\"%s\"",
		    ares_strerror(dns_lib_status));
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->loop = l;
	d->port = o->port != 0 ? o->port : 25;
	d->rng = dns_seed();
	d->timer.fn = dns_timer_fire;
	d->timer.arg = d;
	if (o->cache_max > 0 && (d->cache = dns_cache_new(o->cache_max)) ==
	    NULL) {
		free(d);
		return NULL;
	}
	memset(&ao, 0, sizeof(ao));
	ao.sock_state_cb = dns_sock_state;
	ao.sock_state_cb_data = d;
	ao.timeout = (int)(o->timeout_ms != 0 && o->timeout_ms < 3600000 ?
	    o->timeout_ms : DNS_TIMEOUT_MS_DEFAULT);
	ao.tries = (int)(o->tries != 0 && o->tries < 100 ? o->tries :
	    DNS_TRIES_DEFAULT);
	rc = ares_init_options(&d->ch, &ao, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		log_error("dns init failed reason=\"%s\"", ares_strerror(rc));
		dns_cache_free(d->cache);
		free(d);
		return NULL;
	}
	if (o->servers != NULL && o->servers[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(d->ch, o->servers)) !=
	    ARES_SUCCESS) {
		log_error("dns servers=\"%s\" rejected reason=\"%s\"",
		    o->servers, ares_strerror(rc));
		ares_destroy(d->ch);
		dns_cache_free(d->cache);
		free(d);
		return NULL;
	}
	return d;
}

void
dns_free(struct dns *d)
{
	struct dns_sock *s, *next;

	if (d == NULL)
		return;
	d->closing = true;
	loop_timer_cancel(d->loop, &d->timer);
	/* Every pending query's callback runs now (ARES_EDESTRUCTION). */
	ares_destroy(d->ch);
	d->ch = NULL;
	ENGINE_ASSERT(d->jobs == NULL);
	/* Polls still in the ring keep their dns_sock until they complete. */
	for (s = d->socks; s != NULL; s = next) {
		next = s->next;		/* dns_sock_close may free s */
		if (!s->dying)
			dns_sock_close(s);
	}
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		s->d = NULL;
		s->dying = true;
		if (!dns_sock_busy(s))
			free(s);
	}
	dns_cache_free(d->cache);
	free(d);
}
