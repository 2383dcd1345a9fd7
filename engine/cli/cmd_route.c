/*
 * cmd_route: `ringmail route [--config FILE] [--resolver IP:PORT]...
 * DOMAIN...` resolves each domain's delivery route the way the worker
 * does (core/dns: MX, implicit MX, null MX, A/AAAA) and prints one JSON
 * line per domain, in argument order:
 *   {"domain":..., "status":"ok|nxdomain|null_mx|invalid|temporary",
 *    "permanent":bool, "implicit":bool, "site":...,
 *    "hosts":[{"name":..., "pref":N, "addrs":["192.0.2.1", "2001:db8::1"]}],
 *    "why":...}
 * The resolvers are --resolver (repeatable) or else dns.resolvers from the
 * config or else /etc/resolv.conf. Exit 0 when every domain resolved, 1
 * when some did not (all are still printed), 2 on usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/loop.h"
#include "cli/cli.h"
#include "cli/cmd.h"

/* One domain on the command line and its printed result. */
struct cmd_route_item {
	const char	*domain;	/* borrowed from argv */
	struct buf	 out;		/* owns: the JSON line */
	bool		 done;
	bool		 ok;
	unsigned	*ndone;		/* borrowed: the run's counter */
};

static void
cmd_route_usage(FILE *f)
{
	fprintf(f, "usage: ringmail route [--config FILE] "
	    "[--resolver IP[:PORT]]... DOMAIN...\n");
}

/* JSON string (RFC 8259 7); non-ASCII bytes become U+FFFD. */
static int
cmd_route_json_str(struct buf *b, const char *s)
{
	int rc = buf_putc(b, '"');

	for (const unsigned char *p = (const unsigned char *)s;
	    *p != '\0' && rc == 0; p++) {
		if (*p == '"' || *p == '\\')
			rc = buf_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			rc = buf_printf(b, "\\u%04x", *p);
		else if (*p >= 0x80)
			rc = buf_puts(b, "\\ufffd");
		else
			rc = buf_putc(b, (char)*p);
	}
	return rc != 0 ? rc : buf_putc(b, '"');
}

static const char *
cmd_route_status(int status)
{
	switch (status) {
	case 0:
		return "ok";
	case -ENOENT:
		return "nxdomain";
	case -ENODATA:
		return "null_mx";
	case -EINVAL:
		return "invalid";
	case -ECANCELED:
		return "canceled";
	default:
		return "temporary";
	}
}

static void
cmd_route_done(void *arg, const struct dns_route *r)
{
	struct cmd_route_item	*it = arg;
	struct buf		*b = &it->out;
	char			 a[INET6_ADDRSTRLEN];
	int			 rc;

	buf_reset(b);
	rc = buf_puts(b, "{\"domain\":");
	rc = rc ? rc : cmd_route_json_str(b, it->domain);
	rc = rc ? rc : buf_printf(b, ",\"status\":\"%s\",\"permanent\":%s,"
	    "\"implicit\":%s,\"site\":", cmd_route_status(r->status),
	    r->status != 0 && r->status != -EAGAIN &&
	    r->status != -ECANCELED ? "true" : "false",
	    r->implicit ? "true" : "false");
	rc = rc ? rc : cmd_route_json_str(b, r->site);
	rc = rc ? rc : buf_puts(b, ",\"hosts\":[");
	for (unsigned i = 0; i < r->nhosts && rc == 0; i++) {
		const struct dns_host *h = &r->hosts[i];

		rc = buf_puts(b, i > 0 ? ",{\"name\":" : "{\"name\":");
		rc = rc ? rc : cmd_route_json_str(b, h->name);
		rc = rc ? rc : buf_printf(b, ",\"pref\":%u,\"addrs\":[",
		    h->pref);
		for (unsigned k = 0; k < h->naddrs && rc == 0; k++) {
			const struct sockaddr_storage *ss = &h->addrs[k];
			const void *p = ss->ss_family == AF_INET6 ?
			    (const void *)&((const struct sockaddr_in6 *)ss)->
			    sin6_addr : (const void *)&((const struct
			    sockaddr_in *)ss)->sin_addr;

			if (inet_ntop(ss->ss_family, p, a, sizeof(a)) == NULL)
				snprintf(a, sizeof(a), "?");
			rc = buf_printf(b, "%s\"%s\"", k > 0 ? "," : "", a);
		}
		rc = rc ? rc : buf_puts(b, "]}");
	}
	rc = rc ? rc : buf_puts(b, "],\"why\":");
	rc = rc ? rc : (r->why[0] ? cmd_route_json_str(b, r->why) :
	    buf_puts(b, "null"));
	rc = rc ? rc : buf_putc(b, '}');
	if (rc != 0) {
		buf_reset(b);
		buf_puts(b, "{\"error\":\"out of memory\"}");
	}
	it->ok = r->status == 0;
	if (!it->done) {
		it->done = true;
		(*it->ndone)++;
	}
}

/*
 * Append "ip[:port]" to the resolver list. c-ares 1.18 wants IPv6 with a
 * port in brackets and refuses "[ip6]" alone: bare forms get ":53".
 */
static int
cmd_route_add_resolver(struct buf *b, const char *s)
{
	struct in6_addr	a6;
	size_t		len = strlen(s);

	if (len == 0 || strpbrk(s, ", \t") != NULL)
		return -EINVAL;
	if (b->len > 0 && buf_putc(b, ',') != 0)
		return -ENOMEM;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return buf_printf(b, "[%s]:53", s);
	if (s[0] == '[' && s[len - 1] == ']')
		return buf_printf(b, "%s:53", s);
	return buf_puts(b, s);
}

int
cmd_route(int argc, char **argv)
{
	struct loop		 l;
	struct dns_opts		 o;
	struct dns		*d = NULL;
	struct config		*cfg;
	struct cmd_route_item	*items = NULL;
	struct buf		 servers;
	const char		*cfgpath = NULL;
	unsigned		 ndone = 0, n;
	int			 i, rc, status = 0;

	buf_init(&servers);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			cfgpath = argv[++i];
		} else if (strcmp(argv[i], "--resolver") == 0 &&
		    i + 1 < argc) {
			if (cmd_route_add_resolver(&servers, argv[++i]) != 0) {
				fprintf(stderr, "ringmail route: bad "
				    "--resolver '%s'\n", argv[i]);
				buf_free(&servers);
				return 2;
			}
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cmd_route_usage(stdout);
			buf_free(&servers);
			return 0;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			cmd_route_usage(stderr);
			buf_free(&servers);
			return 2;
		} else {
			break;
		}
	}
	if (i >= argc) {
		cmd_route_usage(stderr);
		buf_free(&servers);
		return 2;
	}
	if ((cfg = cli_config(cfgpath)) == NULL) {
		buf_free(&servers);
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.servers = servers.len > 0 ? servers.data : cfg->dns_servers;
	o.timeout_ms = cfg->dns_timeout_ms;
	o.tries = cfg->dns_tries;
	o.cache_max = 0;	/* one lookup per domain anyway */
	n = (unsigned)(argc - i);
	if ((items = calloc(n, sizeof(*items))) == NULL ||
	    (rc = loop_init(&l, 64)) != 0) {
		fprintf(stderr, "ringmail route: cannot start (%s)\n",
		    items == NULL ? "out of memory" : strerror(-rc));
		free(items);
		config_free(cfg);
		buf_free(&servers);
		return 1;
	}
	if ((d = dns_new(&l, &o)) == NULL) {
		fprintf(stderr, "ringmail route: cannot start the resolver "
		    "(servers \"%s\")\n", o.servers ? o.servers : "system");
		status = 2;
		goto out;
	}
	for (unsigned k = 0; k < n; k++) {
		items[k].domain = argv[i + (int)k];
		items[k].ndone = &ndone;
		buf_init(&items[k].out);
		if (dns_resolve_route(d, items[k].domain, cmd_route_done,
		    &items[k]) != 0) {
			fprintf(stderr, "ringmail route: out of memory\n");
			status = 1;
			goto out;
		}
	}
	while (ndone < n)
		if ((rc = loop_run_once(&l, 1000000)) < 0) {
			fprintf(stderr, "ringmail route: loop: %s\n",
			    strerror(-rc));
			status = 1;
			goto out;
		}
	for (unsigned k = 0; k < n; k++) {
		printf("%s\n", items[k].out.data);
		if (!items[k].ok)
			status = 1;
	}
out:
	dns_free(d);
	/* Let the cancelled polls of c-ares' sockets complete. */
	while (l.ninflight > 0 && loop_run_once(&l, 100000) >= 0)
		;
	loop_fini(&l);
	for (unsigned k = 0; k < n; k++)
		buf_free(&items[k].out);
	free(items);
	config_free(cfg);
	buf_free(&servers);
	fflush(stdout);
	return status;
}
