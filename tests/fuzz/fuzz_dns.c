/*
 * fuzz_dns: the DNS response scanner (dns_msg_ttls) and what dns.c does
 * with MX answers (c-ares' parser, our name checks, the site key, the
 * cache encoding) on arbitrary bytes. Invariants: scanned TTLs are below
 * 2^31 or "none"; a site key fits; a cached route reads back unchanged;
 * a normalised domain is a valid lower-case host name.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "lib/mono.h"
#include "core/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_dns_route(struct dns_route *r, const uint8_t *data, size_t size)
{
	struct ares_mx_reply	*mx = NULL;
	const char		*names[64];
	size_t			 n = 0;

	memset(r, 0, sizeof(*r));
	if (size > 65535 || ares_parse_mx_reply(data, (int)size, &mx) !=
	    ARES_SUCCESS)
		return;
	for (struct ares_mx_reply *m = mx; m != NULL && n < 64; m = m->next) {
		size_t len = strlen(m->host);

		if (!dns_name_ok(m->host, len))
			continue;
		for (size_t i = 0; i < len; i++)
			m->host[i] = (char)tolower((unsigned char)m->host[i]);
		names[n++] = m->host;
		if (r->nhosts < DNS_MX_MAX) {
			struct dns_host *h = &r->hosts[r->nhosts++];

			memcpy(h->name, m->host, len + 1);
			h->pref = m->priority;
		}
	}
	if (dns_site_key(r->site, sizeof(r->site), names, n) >=
	    sizeof(r->site))
		abort();
	for (size_t i = 1; i < n; i++)
		if (strcmp(names[i - 1], names[i]) > 0)
			abort();	/* sorted in place */
	dns_hosts_sort(r->hosts, r->nhosts);
	ares_free_data(mx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_route	 r, back;
	struct dns_cache	*c;
	uint32_t		 an, neg;
	uint64_t		 rng = size;
	mono_us			 now = 1;
	char			 s[300], out[256];

	if (dns_msg_ttls(data, size, &an, &neg) == 0) {
		if ((an != UINT32_MAX && an > 0x7fffffffu) ||
		    (neg != UINT32_MAX && neg > 0x7fffffffu))
			abort();
	} else if (size >= 12 && dns_msg_ttls(data, size, &an, &neg) !=
	    -EBADMSG) {
		abort();
	}
	fuzz_dns_route(&r, data, size);
	dns_route_shuffle(&r, &rng);
	mono_set_fake(&now);
	if ((c = dns_cache_new(2)) != NULL) {
		if (dns_cache_put(c, "k", &r, 60) == 0) {
			if (dns_cache_get(c, "k", &back) != 0 ||
			    back.nhosts != r.nhosts ||
			    strcmp(back.site, r.site) != 0)
				abort();
			for (unsigned i = 0; i < r.nhosts; i++)
				if (strcmp(back.hosts[i].name,
				    r.hosts[i].name) != 0 ||
				    back.hosts[i].pref != r.hosts[i].pref)
					abort();
		}
		dns_cache_free(c);
	}
	mono_set_fake(NULL);
	if (size < sizeof(s)) {
		memcpy(s, data, size);
		s[size] = '\0';
		if (dns_domain_norm(s, out) == 0) {
			if (!dns_name_ok(out, strlen(out)))
				abort();
			for (const char *p = out; *p; p++)
				if (isupper((unsigned char)*p))
					abort();
		}
	}
	return 0;
}
