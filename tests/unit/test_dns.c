#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mono.h"

#include "core/dns.h"
#include "core/loop.h"

static void
host_set(struct dns_host *h, const char *name, uint16_t pref)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->pref = pref;
}

Test(dns, hosts_sort_by_pref_then_name)
{
	struct dns_host h[4];

	host_set(&h[0], "c.test", 20);
	host_set(&h[1], "b.test", 10);
	host_set(&h[2], "z.test", 5);
	host_set(&h[3], "a.test", 10);
	dns_hosts_sort(h, 4);
	cr_assert_str_eq(h[0].name, "z.test");
	cr_assert_str_eq(h[1].name, "a.test");
	cr_assert_str_eq(h[2].name, "b.test");
	cr_assert_str_eq(h[3].name, "c.test");
}

Test(dns, shuffle_only_within_equal_preference)
{
	static struct dns_route r;
	uint64_t	rng = 42;
	unsigned	first_b = 0, first_c = 0, first_d = 0, n = 600;

	r.nhosts = 5;
	host_set(&r.hosts[0], "a.test", 0);	/* alone at 0 */
	host_set(&r.hosts[1], "b.test", 10);	/* three at 10 */
	host_set(&r.hosts[2], "c.test", 10);
	host_set(&r.hosts[3], "d.test", 10);
	host_set(&r.hosts[4], "e.test", 30);	/* alone at 30 */
	for (unsigned i = 0; i < n; i++) {
		dns_route_shuffle(&r, &rng);
		cr_assert_str_eq(r.hosts[0].name, "a.test");
		cr_assert_str_eq(r.hosts[4].name, "e.test");
		for (unsigned k = 1; k < 4; k++)
			cr_assert_eq(r.hosts[k].pref, 10);
		cr_assert_str_neq(r.hosts[1].name, r.hosts[2].name);
		cr_assert_str_neq(r.hosts[2].name, r.hosts[3].name);
		cr_assert_str_neq(r.hosts[1].name, r.hosts[3].name);
		first_b += strcmp(r.hosts[1].name, "b.test") == 0;
		first_c += strcmp(r.hosts[1].name, "c.test") == 0;
		first_d += strcmp(r.hosts[1].name, "d.test") == 0;
	}
	/* Each of three comes first about a third of the time. */
	cr_assert(first_b > n / 5 && first_c > n / 5 && first_d > n / 5,
	    "%u %u %u", first_b, first_c, first_d);
}

Test(dns, shuffle_is_deterministic_per_seed)
{
	static struct dns_route a, b;
	uint64_t	s1 = 7, s2 = 7;

	a.nhosts = 6;
	for (unsigned i = 0; i < 6; i++) {
		char name[16];

		snprintf(name, sizeof(name), "h%u.test", i);
		host_set(&a.hosts[i], name, 10);
	}
	memcpy(&b, &a, sizeof(a));
	dns_route_shuffle(&a, &s1);
	dns_route_shuffle(&b, &s2);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_str_eq(a.hosts[i].name, b.hosts[i].name);
	cr_assert_eq(s1, s2);
}

Test(dns, site_key_sorted_lowercased_deduplicated)
{
	const char	*a[] = { "MX2.Example.TEST", "mx1.example.test",
	    "mx2.example.test" };
	const char	*b[] = { "mx1.example.test", "mx2.example.test" };
	const char	*c[] = { "mx1.example.test" };
	char		 ka[DNS_SITE_MAX], kb[DNS_SITE_MAX], kc[DNS_SITE_MAX];
	size_t		 n;

	n = dns_site_key(ka, sizeof(ka), a, 3);
	cr_assert_str_eq(ka, "mx1.example.test,mx2.example.test");
	cr_assert_eq(n, strlen(ka));
	dns_site_key(kb, sizeof(kb), b, 2);
	cr_assert_str_eq(ka, kb);
	dns_site_key(kc, sizeof(kc), c, 1);
	cr_assert_str_eq(kc, "mx1.example.test");
	cr_assert_str_neq(kb, kc);
	cr_assert_eq(dns_site_key(kc, sizeof(kc), NULL, 0), 0);
	cr_assert_str_eq(kc, "");
}

Test(dns, site_key_too_long_gets_a_digest)
{
	static char	 names[2][16][64];
	const char	*p[16], *q[16];
	char		 kp[DNS_SITE_MAX], kq[DNS_SITE_MAX];
	size_t		 np, nq;

	/* 16 x 60 bytes: > 512; the two sets differ only in the last name. */
	for (int i = 0; i < 16; i++) {
		snprintf(names[0][i], 64, "%02d%s.test", i,
		    "-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		memcpy(names[1][i], names[0][i], sizeof(names[0][i]));
		p[i] = names[0][i];
		q[i] = names[1][i];
	}
	names[1][15][0] = '9';
	np = dns_site_key(kp, sizeof(kp), p, 16);
	nq = dns_site_key(kq, sizeof(kq), q, 16);
	cr_assert(np < sizeof(kp) && nq < sizeof(kq));
	cr_assert_eq(np, strlen(kp));
	cr_assert_str_neq(kp, kq);
	cr_assert_not_null(strchr(kp, '#'));
	cr_assert_eq(strlen(strchr(kp, '#')), 65);
	cr_assert(strncmp(kp, "00-aaaa", 7) == 0, "%s", kp);
	/* Same set, other order: same key. */
	for (int i = 0; i < 8; i++) {
		const char *t = q[i];

		q[i] = q[15 - i];
		q[15 - i] = t;
	}
	names[1][15][0] = '1';
	dns_site_key(kq, sizeof(kq), q, 16);
	cr_assert_str_eq(kp, kq);
}

Test(dns, ttl_clamp)
{
	cr_assert_eq(dns_ttl_clamp(0), 5);
	cr_assert_eq(dns_ttl_clamp(4), 5);
	cr_assert_eq(dns_ttl_clamp(5), 5);
	cr_assert_eq(dns_ttl_clamp(3600), 3600);
	cr_assert_eq(dns_ttl_clamp(86400), 86400);
	cr_assert_eq(dns_ttl_clamp(86401), 86400);
	cr_assert_eq(dns_ttl_clamp(UINT32_MAX), 86400);
}

Test(dns, host_fill_interleaves_ipv6_first)
{
	struct dns_host	h;
	struct in6_addr	v6[10];
	struct in_addr	v4[10];
	char		buf[INET6_ADDRSTRLEN];

	for (int i = 0; i < 10; i++) {
		char s[32];

		snprintf(s, sizeof(s), "2001:db8::%d", i + 1);
		cr_assert_eq(inet_pton(AF_INET6, s, &v6[i]), 1);
		snprintf(s, sizeof(s), "192.0.2.%d", i + 1);
		cr_assert_eq(inet_pton(AF_INET, s, &v4[i]), 1);
	}
	dns_host_fill(&h, v6, 2, v4, 3, 2525);
	cr_assert_eq(h.naddrs, 5);
	cr_assert_eq(h.addrs[0].ss_family, AF_INET6);
	cr_assert_eq(h.addrs[1].ss_family, AF_INET);
	cr_assert_eq(h.addrs[2].ss_family, AF_INET6);
	cr_assert_eq(h.addrs[3].ss_family, AF_INET);
	cr_assert_eq(h.addrs[4].ss_family, AF_INET);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&h.addrs[1])->sin_port),
	    2525);
	cr_assert_eq(ntohs(((struct sockaddr_in6 *)&h.addrs[0])->sin6_port),
	    2525);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&h.addrs[4])->sin_addr,
	    buf, sizeof(buf));
	cr_assert_str_eq(buf, "192.0.2.3");
	dns_host_fill(&h, v6, 10, v4, 10, 25);
	cr_assert_eq(h.naddrs, DNS_ADDR_MAX);
	dns_host_fill(&h, NULL, 0, v4, 10, 25);
	cr_assert_eq(h.naddrs, DNS_ADDR_MAX);
	cr_assert_eq(h.addrs[7].ss_family, AF_INET);
	dns_host_fill(&h, v6, 1, NULL, 0, 25);
	cr_assert_eq(h.naddrs, 1);
	cr_assert_eq(h.addrs[0].ss_family, AF_INET6);
}

Test(dns, names_and_domains)
{
	char	 out[256];
	char	 big[300];

	cr_assert(dns_name_ok("mx1.example.test", 16));
	cr_assert(dns_name_ok("_x-1.b", 6));
	cr_assert_not(dns_name_ok("", 0));
	cr_assert_not(dns_name_ok("a..b", 4));
	cr_assert_not(dns_name_ok(".a", 2));
	cr_assert_not(dns_name_ok("a.", 2));
	cr_assert_not(dns_name_ok("a,b", 3));
	cr_assert_not(dns_name_ok("a b", 3));
	cr_assert_not(dns_name_ok("a\\.b", 4));
	memset(big, 'a', sizeof(big));
	cr_assert(dns_name_ok(big, 63));
	cr_assert_not(dns_name_ok(big, 64));
	cr_assert_eq(dns_domain_norm("Example.TEST.", out), 0);
	cr_assert_str_eq(out, "example.test");
	cr_assert_eq(dns_domain_norm("example.test", out), 0);
	cr_assert_str_eq(out, "example.test");
	cr_assert_eq(dns_domain_norm("example..test", out), -EINVAL);
	cr_assert_eq(dns_domain_norm("ex ample.test", out), -EINVAL);
	cr_assert_eq(dns_domain_norm("", out), -EINVAL);
	cr_assert_eq(dns_domain_norm(".", out), -EINVAL);
	cr_assert_eq(dns_domain_norm(NULL, out), -EINVAL);
	cr_assert_eq(dns_domain_norm("bücher.test", out), -EINVAL);
	big[299] = '\0';
	cr_assert_eq(dns_domain_norm(big, out), -EINVAL);
}

/* A response builder for dns_msg_ttls: header, question, records. */
struct msg {
	unsigned char	b[512];
	size_t		n;
};

static void
msg_put(struct msg *m, const void *p, size_t n)
{
	cr_assert(m->n + n <= sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void
msg_u16(struct msg *m, unsigned v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	msg_put(m, b, 2);
}

static void
msg_u32(struct msg *m, uint32_t v)
{
	msg_u16(m, v >> 16);
	msg_u16(m, v & 0xffff);
}

static void
msg_header(struct msg *m, unsigned rcode, unsigned an, unsigned ns)
{
	m->n = 0;
	msg_u16(m, 0x1234);
	msg_u16(m, 0x8180 | rcode);
	msg_u16(m, 1);
	msg_u16(m, an);
	msg_u16(m, ns);
	msg_u16(m, 0);
	/* example.test MX IN, at offset 12 */
	msg_put(m, "\7example\4test\0", 14);
	msg_u16(m, 15);
	msg_u16(m, 1);
}

static void
msg_mx(struct msg *m, uint32_t ttl, unsigned pref, const char *label)
{
	size_t len = strlen(label);

	msg_u16(m, 0xc00c);		/* pointer to the question name */
	msg_u16(m, 15);
	msg_u16(m, 1);
	msg_u32(m, ttl);
	msg_u16(m, (unsigned)(2 + 1 + len + 2));
	msg_u16(m, pref);
	m->b[m->n++] = (unsigned char)len;
	msg_put(m, label, len);
	msg_u16(m, 0xc00c);
}

static void
msg_soa(struct msg *m, uint32_t ttl, uint32_t minimum)
{
	msg_u16(m, 0xc014);		/* "test" */
	msg_u16(m, 6);
	msg_u16(m, 1);
	msg_u32(m, ttl);
	msg_u16(m, 3 + 2 + 2 + 20 + 2);	/* ns.test, test, 5 x 4, pad */
	m->b[m->n++] = 2;
	msg_put(m, "ns", 2);
	msg_u16(m, 0xc014);
	msg_u16(m, 0xc014);
	msg_u32(m, 1);			/* serial */
	msg_u32(m, 2);
	msg_u32(m, 3);
	msg_u32(m, 4);
	msg_u32(m, minimum);
	/* Two bytes of rdata beyond what SOA needs: tolerated. */
	msg_u16(m, 0);
}

Test(dns, msg_ttls_answers_and_soa)
{
	struct msg	m;
	uint32_t	an, neg;

	msg_header(&m, 0, 2, 0);
	msg_mx(&m, 300, 10, "mx1");
	msg_mx(&m, 60, 20, "mx2");
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), 0);
	cr_assert_eq(an, 60);
	cr_assert_eq(neg, UINT32_MAX);
	/* NXDOMAIN + SOA: min(SOA TTL, MINIMUM), RFC 2308 5. */
	msg_header(&m, 3, 0, 1);
	msg_soa(&m, 3600, 120);
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), 0);
	cr_assert_eq(an, UINT32_MAX);
	cr_assert_eq(neg, 120);
	msg_header(&m, 3, 0, 1);
	msg_soa(&m, 90, 600);
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), 0);
	cr_assert_eq(neg, 90);
	/* A TTL with the top bit set is 0 (RFC 2181 8). */
	msg_header(&m, 0, 1, 0);
	msg_mx(&m, 0x80000001u, 10, "mx1");
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), 0);
	cr_assert_eq(an, 0);
}

Test(dns, msg_ttls_rejects_malformed)
{
	struct msg	m;
	uint32_t	an, neg;

	cr_assert_eq(dns_msg_ttls(NULL, 0, &an, &neg), -EBADMSG);
	cr_assert_eq(dns_msg_ttls((const unsigned char *)"abc", 3, &an,
	    &neg), -EBADMSG);
	msg_header(&m, 0, 1, 0);
	msg_mx(&m, 300, 10, "mx1");
	/* Every truncation fails cleanly. */
	for (size_t n = 12; n < m.n; n++)
		cr_assert_eq(dns_msg_ttls(m.b, n, &an, &neg), -EBADMSG,
		    "n=%zu", n);
	/* More records announced than present. */
	msg_header(&m, 0, 3, 0);
	msg_mx(&m, 300, 10, "mx1");
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), -EBADMSG);
	/* Label type 0x40 (RFC 6891 6.1). */
	msg_header(&m, 0, 0, 0);
	m.b[12] = 0x47;
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), -EBADMSG);
	/* SOA whose rdata is too short. */
	msg_header(&m, 3, 0, 1);
	msg_soa(&m, 3600, 120);
	m.b[m.n - 29 - 1] = 10;		/* rdlength low byte: 29 -> 10 */
	cr_assert_eq(dns_msg_ttls(m.b, m.n, &an, &neg), -EBADMSG);
}

static void
route_sample(struct dns_route *r)
{
	struct in6_addr v6;
	struct in_addr	v4[2];

	memset(r, 0, sizeof(*r));
	r->nhosts = 2;
	host_set(&r->hosts[0], "mx1.example.test", 10);
	host_set(&r->hosts[1], "mx2.example.test", 20);
	inet_pton(AF_INET6, "2001:db8::25", &v6);
	inet_pton(AF_INET, "192.0.2.25", &v4[0]);
	inet_pton(AF_INET, "192.0.2.26", &v4[1]);
	dns_host_fill(&r->hosts[0], &v6, 1, v4, 2, 25);
	dns_host_fill(&r->hosts[1], NULL, 0, &v4[1], 1, 2525);
	snprintf(r->site, sizeof(r->site), "mx1.example.test,"
	    "mx2.example.test");
}

Test(dns, cache_round_trip)
{
	static struct dns_route	r, out;
	struct dns_cache	*c = dns_cache_new(10);
	mono_us			 now = 1000000;

	mono_set_fake(&now);
	cr_assert_not_null(c);
	route_sample(&r);
	cr_assert_eq(dns_cache_get(c, "example.test", &out), -ENOENT);
	cr_assert_eq(dns_cache_put(c, "example.test", &r, 60), 0);
	cr_assert_eq(dns_cache_count(c), 1);
	memset(&out, 0xa5, sizeof(out));
	cr_assert_eq(dns_cache_get(c, "example.test", &out), 0);
	cr_assert_eq(out.status, 0);
	cr_assert_not(out.implicit);
	cr_assert_eq(out.nhosts, 2);
	cr_assert_str_eq(out.site, r.site);
	cr_assert_str_eq(out.why, "");
	for (unsigned i = 0; i < 2; i++) {
		cr_assert_str_eq(out.hosts[i].name, r.hosts[i].name);
		cr_assert_eq(out.hosts[i].pref, r.hosts[i].pref);
		cr_assert_eq(out.hosts[i].naddrs, r.hosts[i].naddrs);
		for (unsigned k = 0; k < r.hosts[i].naddrs; k++)
			cr_assert_eq(memcmp(&out.hosts[i].addrs[k],
			    &r.hosts[i].addrs[k], sizeof(r.hosts[i].addrs[k])),
			    0, "host %u addr %u", i, k);
	}
	/* Keys are exact. */
	cr_assert_eq(dns_cache_get(c, "example.tes", &out), -ENOENT);
	cr_assert_eq(dns_cache_get(c, "xexample.test", &out), -ENOENT);
	dns_cache_free(c);
	mono_set_fake(NULL);
}

Test(dns, cache_ttl_with_injected_clock)
{
	static struct dns_route	r, out;
	struct dns_cache	*c = dns_cache_new(10);
	mono_us			 now = 5000000;

	mono_set_fake(&now);
	route_sample(&r);
	cr_assert_eq(dns_cache_put(c, "a.test", &r, 60), 0);
	memset(&r, 0, sizeof(r));
	r.status = -ENOENT;
	snprintf(r.site, sizeof(r.site), "nx.test");
	snprintf(r.why, sizeof(r.why), "NXDOMAIN: nx.test does not exist");
	cr_assert_eq(dns_cache_put(c, "nx.test", &r, 300), 0);
	now += 59999999;		/* 1 us before a.test expires */
	cr_assert_eq(dns_cache_get(c, "a.test", &out), 0);
	cr_assert_eq(out.nhosts, 2);
	now += 1;
	cr_assert_eq(dns_cache_get(c, "a.test", &out), -ENOENT);
	cr_assert_eq(dns_cache_count(c), 1, "expired entry dropped");
	cr_assert_eq(dns_cache_get(c, "nx.test", &out), 0);
	cr_assert_eq(out.status, -ENOENT);
	cr_assert_eq(out.nhosts, 0);
	cr_assert_str_eq(out.why, "NXDOMAIN: nx.test does not exist");
	now += 240000000;
	cr_assert_eq(dns_cache_get(c, "nx.test", &out), -ENOENT);
	cr_assert_eq(dns_cache_count(c), 0);
	dns_cache_free(c);
	mono_set_fake(NULL);
}

Test(dns, cache_evicts_oldest_and_replaces)
{
	static struct dns_route	r, out;
	struct dns_cache	*c = dns_cache_new(3);
	mono_us			 now = 1;
	char			 key[32];

	mono_set_fake(&now);
	route_sample(&r);
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "d%d.test", i);
		cr_assert_eq(dns_cache_put(c, key, &r, 600), 0);
	}
	cr_assert_eq(dns_cache_count(c), 3);
	/* Replacing d0 makes it the newest; d1 is now the oldest. */
	r.hosts[0].pref = 99;
	cr_assert_eq(dns_cache_put(c, "d0.test", &r, 600), 0);
	cr_assert_eq(dns_cache_count(c), 3);
	cr_assert_eq(dns_cache_put(c, "d3.test", &r, 600), 0);
	cr_assert_eq(dns_cache_count(c), 3);
	cr_assert_eq(dns_cache_get(c, "d1.test", &out), -ENOENT);
	cr_assert_eq(dns_cache_get(c, "d0.test", &out), 0);
	cr_assert_eq(out.hosts[0].pref, 99);
	cr_assert_eq(dns_cache_get(c, "d2.test", &out), 0);
	cr_assert_eq(dns_cache_get(c, "d3.test", &out), 0);
	/* Many more: never above the bound. */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "e%d.test", i);
		cr_assert_eq(dns_cache_put(c, key, &r, 600), 0);
		cr_assert_leq(dns_cache_count(c), 3);
	}
	cr_assert_eq(dns_cache_get(c, "e99.test", &out), 0);
	cr_assert_eq(dns_cache_get(c, "e96.test", &out), -ENOENT);
	dns_cache_free(c);
	c = dns_cache_new(0);
	cr_assert_eq(dns_cache_put(c, "a.test", &r, 600), 0);
	cr_assert_eq(dns_cache_count(c), 0);
	cr_assert_eq(dns_cache_get(c, "a.test", &out), -ENOENT);
	dns_cache_free(c);
	mono_set_fake(NULL);
}

struct got {
	int		 calls;
	struct dns_route r;
};

static void
got_cb(void *arg, const struct dns_route *r)
{
	struct got *g = arg;

	g->calls++;
	memcpy(&g->r, r, sizeof(*r));
}

/* Paths that answer without a query: no socket is ever opened. */
Test(dns, resolve_without_queries)
{
	static struct got	g;
	struct loop		l;
	struct dns_opts		o = { "127.0.0.1:1", 1000, 1, 16, 2525 };
	struct dns		*d;
	char			a[INET6_ADDRSTRLEN];

	cr_assert_eq(loop_init(&l, 8), 0);
	cr_assert_not_null(d = dns_new(&l, &o));
	cr_assert_eq(dns_resolve_route(d, "not a domain", got_cb, &g), 0);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.r.status, -EINVAL);
	cr_assert_eq(g.r.nhosts, 0);
	cr_assert_eq(dns_resolve_route(d, "[192.0.2.7]", got_cb, &g), 0);
	cr_assert_eq(g.calls, 2);
	cr_assert_eq(g.r.status, 0);
	cr_assert(g.r.implicit);
	cr_assert_eq(g.r.nhosts, 1);
	cr_assert_eq(g.r.hosts[0].naddrs, 1);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&g.r.hosts[0].addrs[0])->
	    sin_port), 2525);
	cr_assert_str_eq(g.r.site, "[192.0.2.7]");
	cr_assert_eq(dns_resolve_route(d, "[IPv6:2001:DB8::7]", got_cb, &g),
	    0);
	cr_assert_eq(g.r.status, 0);
	cr_assert_eq(g.r.hosts[0].addrs[0].ss_family, AF_INET6);
	inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&g.r.hosts[0].addrs[0])->
	    sin6_addr, a, sizeof(a));
	cr_assert_str_eq(a, "2001:db8::7");
	cr_assert_eq(dns_resolve_route(d, "[999.0.0.1]", got_cb, &g), 0);
	cr_assert_eq(g.r.status, -EINVAL);
	cr_assert_eq(dns_resolve_route(d, "[IPv6:1.2.3.4]", got_cb, &g), 0);
	cr_assert_eq(g.r.status, -EINVAL);
	cr_assert_eq(g.calls, 5);
	cr_assert_eq(dns_pending(d), 0);
	dns_free(d);
	cr_assert_eq(l.ninflight, 0);
	loop_fini(&l);
}

Test(dns, bad_servers_refused)
{
	struct loop	l;
	struct dns_opts	o = { "not-an-ip:53", 0, 0, 0, 0 };

	cr_assert_eq(loop_init(&l, 8), 0);
	cr_assert_null(dns_new(&l, &o));
	o.servers = "[::1]:5353,127.0.0.1:5353";
	{
		struct dns *d = dns_new(&l, &o);

		cr_assert_not_null(d);
		dns_free(d);
	}
	dns_free(NULL);
	loop_fini(&l);
}
