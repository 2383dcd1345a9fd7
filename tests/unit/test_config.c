#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#include "core/config.h"

static struct config *
load_ok(const char *yaml)
{
	struct config	*c = NULL;
	char		 err[256] = "";
	int		 rc;

	rc = config_load_string(yaml, strlen(yaml), "t.yaml", &c, err,
	    sizeof(err));
	cr_assert_eq(rc, 0, "load failed: %s", err);
	cr_assert_not_null(c);
	return c;
}

/* Expect -EINVAL and exactly this message. */
static void
load_err(const char *yaml, const char *want)
{
	struct config	*c = (struct config *)0x1;
	char		 err[256] = "";
	int		 rc;

	rc = config_load_string(yaml, strlen(yaml), "t.yaml", &c, err,
	    sizeof(err));
	cr_assert_eq(rc, -EINVAL, "rc=%d for %s", rc, yaml);
	cr_assert_eq(c, (struct config *)0x1, "*out touched on error");
	cr_assert_str_eq(err, want);
}

Test(config, defaults)
{
	struct config c;

	cr_assert_eq(config_defaults(&c), 0);
	cr_assert_str_eq(c.redis_host, "127.0.0.1");
	cr_assert_eq(c.redis_port, 6379);
	cr_assert_eq(c.redis_db, 0);
	cr_assert_null(c.redis_password);
	cr_assert_eq(c.worker_threads, 0);
	cr_assert_eq(c.fetch_batch, 16);
	cr_assert_eq(c.max_queued, 20000);
	cr_assert_eq(c.claim_idle_ms, 300000);
	cr_assert_not_null(c.ehlo_name);
	cr_assert(strlen(c.ehlo_name) > 0);
	cr_assert(c.pipelining);
	cr_assert_eq(c.connection_limit, 10);
	cr_assert_eq(c.max_deliveries_per_connection, 100);
	cr_assert_eq(c.timeouts.connect, 30000);
	cr_assert_eq(c.timeouts.banner, 300000);
	cr_assert_eq(c.timeouts.ehlo, 300000);
	cr_assert_eq(c.timeouts.mail_from, 300000);
	cr_assert_eq(c.timeouts.rcpt_to, 300000);
	cr_assert_eq(c.timeouts.data, 120000);
	cr_assert_eq(c.timeouts.data_block, 180000);
	cr_assert_eq(c.timeouts.data_dot, 600000);
	cr_assert_eq(c.timeouts.idle, 60000);
	cr_assert_eq(c.tls, CONFIG_TLS_OPPORTUNISTIC);
	cr_assert_null(c.tls_ca_file);
	cr_assert_not(c.chunking);
	cr_assert_null(c.message_id_domain);
	cr_assert_eq(c.retry_delay_ms, 300000);
	cr_assert_eq(c.retry_max_attempts, 100);
	cr_assert_eq(c.retry_max_delay_ms, 4u * 3600 * 1000);
	cr_assert_eq(c.retry_max_age_ms, 4u * 86400 * 1000);
	cr_assert_eq(c.nroutes, 0);
	cr_assert_null(c.dns_servers);
	cr_assert_eq(c.ndns_resolvers, 0);
	cr_assert_eq(c.dns_timeout_ms, 5000);
	cr_assert_eq(c.dns_tries, 2);
	cr_assert_eq(c.dns_cache_size, 10000);
	cr_assert_eq(c.log_level, LOG_INFO);
	cr_assert_eq(c.ndkim, 0);
	cr_assert_not(c.dkim_dual);
	cr_assert_eq(c.ndkim_headers, 0);
	cr_assert_null(c.verp_bounce_domain);
	cr_assert_null(c.verp_secret_file);
	cr_assert_str_eq(c.unsub_url, "https://unsub.example/u/");
	cr_assert_null(c.unsub_mailto_domain);
	cr_assert_null(c.unsub_secret_file);
	cr_assert_eq(c.unsub_max_age_s, 90 * 86400);
	free(c.redis_host);
	free(c.ehlo_name);
	free(c.unsub_url);
}

Test(config, empty_document_is_defaults)
{
	struct config *c = load_ok("");

	cr_assert_eq(c->redis_port, 6379);
	cr_assert_eq(c->fetch_batch, 16);
	cr_assert_str_eq(c->path, "t.yaml");
	config_free(c);
	c = load_ok("# only a comment\n");
	cr_assert_eq(c->connection_limit, 10);
	config_free(c);
	c = load_ok("redis:\nworker: ~\nroutes:\n");
	cr_assert_eq(c->nroutes, 0);
	config_free(c);
}

Test(config, full_file)
{
	struct config *c = load_ok(
	    "redis: {host: redis.internal, port: 6380, db: 3, password: s3cret}\n"
	    "worker:\n"
	    "  threads: 4\n"
	    "  fetch_batch: 32\n"
	    "  max_queued: 5000\n"
	    "  claim_idle: 90\n"
	    "smtp:\n"
	    "  ehlo_name: mta1.example.net\n"
	    "  pipelining: no\n"
	    "  connection_limit: 20\n"
	    "  max_deliveries_per_connection: 50\n"
	    "  timeouts: {connect: 250ms, banner: 1m, ehlo: 2m, mail_from: 3m,"
	    " rcpt_to: 4m, data: 1h, data_block: 5s, data_dot: 1d, idle: 7}\n"
	    "  tls: verify\n"
	    "  tls_ca_file: /etc/ringmail/ca.pem\n"
	    "  chunking: yes\n"
	    "message: {message_id_domain: ids.example.net}\n"
	    "retry: {delay: 2h, max_attempts: 3}\n"
	    "routes:\n"
	    "  Example.TEST: 127.0.0.1:2525\n"
	    "  v6.test: \"[::1]:25\"\n"
	    "  \"*\": relay.internal:587\n"
	    "log: {level: debug}\n");

	cr_assert_str_eq(c->redis_host, "redis.internal");
	cr_assert_eq(c->redis_port, 6380);
	cr_assert_eq(c->redis_db, 3);
	cr_assert_str_eq(c->redis_password, "s3cret");
	cr_assert_eq(c->worker_threads, 4);
	cr_assert_eq(c->fetch_batch, 32);
	cr_assert_eq(c->max_queued, 5000);
	cr_assert_eq(c->claim_idle_ms, 90000);
	cr_assert_str_eq(c->ehlo_name, "mta1.example.net");
	cr_assert_not(c->pipelining);
	cr_assert_eq(c->connection_limit, 20);
	cr_assert_eq(c->max_deliveries_per_connection, 50);
	cr_assert_eq(c->timeouts.connect, 250);
	cr_assert_eq(c->timeouts.banner, 60000);
	cr_assert_eq(c->timeouts.ehlo, 120000);
	cr_assert_eq(c->timeouts.mail_from, 180000);
	cr_assert_eq(c->timeouts.rcpt_to, 240000);
	cr_assert_eq(c->timeouts.data, 3600000);
	cr_assert_eq(c->timeouts.data_block, 5000);
	cr_assert_eq(c->timeouts.data_dot, 86400000);
	cr_assert_eq(c->timeouts.idle, 7000);
	cr_assert_eq(c->tls, CONFIG_TLS_VERIFY);
	cr_assert_str_eq(c->tls_ca_file, "/etc/ringmail/ca.pem");
	cr_assert(c->chunking);
	cr_assert_str_eq(c->message_id_domain, "ids.example.net");
	cr_assert_eq(c->retry_delay_ms, 7200000);
	cr_assert_eq(c->retry_max_attempts, 3);
	cr_assert_eq(c->log_level, LOG_DEBUG);
	cr_assert_eq(c->nroutes, 3);
	cr_assert_str_eq(c->routes[0].domain, "example.test");
	cr_assert_str_eq(c->routes[0].host, "127.0.0.1");
	cr_assert_eq(c->routes[0].port, 2525);
	cr_assert_str_eq(c->routes[1].host, "::1");
	cr_assert_eq(c->routes[1].port, 25);
	cr_assert_str_eq(c->routes[2].domain, "*");
	cr_assert_eq(c->routes[2].port, 587);
	config_free(c);
}

Test(config, booleans_and_empty_strings)
{
	struct config *c = load_ok("smtp: {pipelining: yes, ehlo_name: \"\"}\n"
	    "redis: {password: \"\"}\nmessage: {message_id_domain: \"\"}\n");

	cr_assert(c->pipelining);
	cr_assert_not_null(c->ehlo_name);	/* "" = gethostname() */
	cr_assert(strlen(c->ehlo_name) > 0);
	cr_assert_null(c->redis_password);
	cr_assert_null(c->message_id_domain);
	config_free(c);
	c = load_ok("smtp: {pipelining: false}\n");
	cr_assert_not(c->pipelining);
	config_free(c);
	c = load_ok("smtp: {pipelining: true}\n");
	cr_assert(c->pipelining);
	config_free(c);
}

Test(config, smtp_tls_values)
{
	static const struct {
		const char		*yaml;
		enum config_tls_mode	 want;
	} ok[] = {
		{ "smtp: {tls: opportunistic}\n", CONFIG_TLS_OPPORTUNISTIC },
		{ "smtp: {tls: required}\n", CONFIG_TLS_REQUIRED },
		{ "smtp: {tls: verify}\n", CONFIG_TLS_VERIFY },
		{ "smtp: {tls: none}\n", CONFIG_TLS_NONE },
		{ "smtp: {tls: \"none\"}\n", CONFIG_TLS_NONE },
		{ "smtp: {chunking: no}\n", CONFIG_TLS_OPPORTUNISTIC },
	};
	static const struct {
		const char	*yaml;
		const char	*err;
	} bad[] = {
		{ "smtp: {tls: yes}\n", "t.yaml:1:13: smtp.tls: expected "
		    "opportunistic, required, verify or none" },
		{ "smtp: {tls: Verify}\n", "t.yaml:1:13: smtp.tls: expected "
		    "opportunistic, required, verify or none" },
		{ "smtp: {tls: \"\"}\n", "t.yaml:1:13: smtp.tls: expected "
		    "opportunistic, required, verify or none" },
		{ "smtp: {tls: \"verify\\0\"}\n", "t.yaml:1:13: smtp.tls: "
		    "expected opportunistic, required, verify or none" },
		{ "smtp: {tls: [verify]}\n",
		    "t.yaml:1:13: smtp.tls: expected a scalar value" },
		{ "smtp: {chunking: sometimes}\n", "t.yaml:1:18: "
		    "smtp.chunking: expected true, false, yes or no" },
		{ "smtp: {tls_ca_file: \"/a\\nb\"}\n", "t.yaml:1:21: "
		    "smtp.tls_ca_file: expected a file path (no control "
		    "characters, under 4096 bytes)" },
		{ "smtp: {tls_ca_file: {a: 1}}\n",
		    "t.yaml:1:21: smtp.tls_ca_file: expected a scalar value" },
		{ "smtp: {tls_cafile: x}\n",
		    "t.yaml:1:8: smtp.tls_cafile: unknown key" },
	};
	struct config	*c;
	char		 big[5000 + 64];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		c = load_ok(ok[i].yaml);
		cr_assert_eq(c->tls, ok[i].want, "%s", ok[i].yaml);
		cr_assert_not(c->chunking);
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		load_err(bad[i].yaml, bad[i].err);

	c = load_ok("smtp: {tls_ca_file: \"\"}\n");
	cr_assert_null(c->tls_ca_file);
	config_free(c);
	c = load_ok("smtp:\n  tls_ca_file:\n");
	cr_assert_null(c->tls_ca_file);
	config_free(c);
	c = load_ok("smtp: {tls_ca_file: certs/my ca.pem, chunking: true}\n");
	cr_assert_str_eq(c->tls_ca_file, "certs/my ca.pem");
	cr_assert(c->chunking);
	config_free(c);

	/* Over-long path. */
	memcpy(big, "smtp: {tls_ca_file: ", 20);
	memset(big + 20, 'a', 5000);
	memcpy(big + 5020, "}\n", 3);
	load_err(big, "t.yaml:1:21: smtp.tls_ca_file: expected a file path "
	    "(no control characters, under 4096 bytes)");
}

Test(config, range_errors)
{
	load_err("smtp:\n  connection_limit: 0\n",
	    "t.yaml:2:21: smtp.connection_limit: must be between 1 and 10000");
	load_err("smtp:\n  connection_limit: 10001\n",
	    "t.yaml:2:21: smtp.connection_limit: must be between 1 and 10000");
	load_err("redis: {port: 0}\n",
	    "t.yaml:1:15: redis.port: must be between 1 and 65535");
	load_err("redis: {port: 65536}\n",
	    "t.yaml:1:15: redis.port: must be between 1 and 65535");
	load_err("worker:\n  threads: 257\n",
	    "t.yaml:2:12: worker.threads: must be between 0 and 256");
	load_err("worker:\n  fetch_batch: 0\n",
	    "t.yaml:2:16: worker.fetch_batch: must be between 1 and 1000");
	load_err("worker:\n  fetch_batch: 1001\n",
	    "t.yaml:2:16: worker.fetch_batch: must be between 1 and 1000");
	load_err("retry: {max_attempts: 0}\n",
	    "t.yaml:1:23: retry.max_attempts: must be between 1 and 1000");
	load_err("smtp:\n  timeouts:\n    connect: 0s\n",
	    "t.yaml:3:14: smtp.timeouts.connect: must be between 1ms and "
	    "86400000ms");
	load_err("worker: {claim_idle: 2d}\n",
	    "t.yaml:1:22: worker.claim_idle: must be between 1000ms and "
	    "86400000ms");
	/* Huge numbers do not wrap around into range. */
	load_err("redis: {port: 18446744073709551617}\n",
	    "t.yaml:1:15: redis.port: expected an integer");
	load_err("smtp: {timeouts: {idle: 999999999999d}}\n",
	    "t.yaml:1:25: smtp.timeouts.idle: must be between 1ms and "
	    "86400000ms");
}

Test(config, type_errors)
{
	load_err("redis:\n  port: {a: 1}\n",
	    "t.yaml:2:9: redis.port: expected a scalar value");
	load_err("redis:\n  port: [1]\n",
	    "t.yaml:2:9: redis.port: expected a scalar value");
	load_err("redis: 5\n", "t.yaml:1:8: redis: expected a mapping");
	load_err("- a\n- b\n", "t.yaml:1:1: expected a mapping");
	load_err("redis: {port: -1}\n",
	    "t.yaml:1:15: redis.port: expected an integer");
	load_err("redis: {port: 63 79}\n",
	    "t.yaml:1:15: redis.port: expected an integer");
	load_err("smtp: {pipelining: maybe}\n",
	    "t.yaml:1:20: smtp.pipelining: expected true, false, yes or no");
	load_err("retry: {delay: 5w}\n", "t.yaml:1:16: retry.delay: expected "
	    "a duration like 30s, 5m, 250ms");
	load_err("retry: {delay: 1.5s}\n", "t.yaml:1:16: retry.delay: expected "
	    "a duration like 30s, 5m, 250ms");
	load_err("log: {level: verbose}\n",
	    "t.yaml:1:14: log.level: expected error, warn, info or debug");
	load_err("smtp: {ehlo_name: \"a b\\r\\nMAIL FROM:<x>\"}\n",
	    "t.yaml:1:19: smtp.ehlo_name: expected a domain name");
	load_err("redis: {host: \"\"}\n",
	    "t.yaml:1:15: redis.host: expected a host name or IP address");
	load_err("? [a]\n: 1\n", "t.yaml:1:3: mapping keys must be scalars");
}

Test(config, unknown_and_duplicate_keys)
{
	load_err("redis:\n  host: a\n  prot: 1\n",
	    "t.yaml:3:3: redis.prot: unknown key");
	load_err("bogus: 1\n", "t.yaml:1:1: bogus: unknown key");
	load_err("smtp:\n  timeouts:\n    conect: 1s\n",
	    "t.yaml:3:5: smtp.timeouts.conect: unknown key");
	load_err("redis:\n  port: 1\n  port: 2\n",
	    "t.yaml:3:3: redis.port: duplicate key");
	load_err("log: {}\nlog: {}\n", "t.yaml:2:1: log: duplicate key");
	load_err("routes:\n  a.test: h:1\n  A.Test: h:2\n",
	    "t.yaml:3:3: routes.A.Test: duplicate key");
}

Test(config, route_errors)
{
	load_err("routes:\n  a.test: host\n",
	    "t.yaml:2:11: routes.a.test: expected host:port or [IPv6]:port "
	    "with port 1..65535");
	load_err("routes:\n  a.test: host:0\n",
	    "t.yaml:2:11: routes.a.test: expected host:port or [IPv6]:port "
	    "with port 1..65535");
	load_err("routes:\n  a.test: \"::1:25\"\n",
	    "t.yaml:2:11: routes.a.test: expected host:port or [IPv6]:port "
	    "with port 1..65535");
	load_err("routes:\n  a.test: \"[nope]:25\"\n",
	    "t.yaml:2:11: routes.a.test: expected host:port or [IPv6]:port "
	    "with port 1..65535");
	load_err("routes:\n  a.test: \"h:25x\"\n",
	    "t.yaml:2:11: routes.a.test: expected host:port or [IPv6]:port "
	    "with port 1..65535");
	load_err("routes:\n  a.test: {h: 1}\n",
	    "t.yaml:2:11: routes.a.test: expected host:port");
	load_err("routes:\n  \"bad domain\": h:25\n",
	    "t.yaml:2:3: routes: 'bad domain' is not a domain name or \"*\"");
	load_err("routes: [a]\n",
	    "t.yaml:1:9: routes: expected a mapping of domain: host:port");
}

Test(config, dns_section)
{
	struct config *c = load_ok("dns:\n"
	    "  resolvers: [\"127.0.0.1:5353\", \"[::1]:53\", 192.0.2.1,\n"
	    "    \"2001:db8::1\", \"[2001:db8::2]\"]\n"
	    "  timeout: 250ms\n  tries: 3\n  cache_size: 0\n");

	cr_assert_str_eq(c->dns_servers, "127.0.0.1:5353,[::1]:53,"
	    "192.0.2.1:53,[2001:db8::1]:53,[2001:db8::2]:53");
	cr_assert_eq(c->ndns_resolvers, 5);
	cr_assert_eq(c->dns_timeout_ms, 250);
	cr_assert_eq(c->dns_tries, 3);
	cr_assert_eq(c->dns_cache_size, 0);
	config_free(c);
	/* Empty list, block style, null: the system's resolv.conf. */
	c = load_ok("dns:\n  resolvers: []\n");
	cr_assert_null(c->dns_servers);
	cr_assert_eq(c->ndns_resolvers, 0);
	config_free(c);
	c = load_ok("dns:\n  resolvers:\n");
	cr_assert_null(c->dns_servers);
	config_free(c);
	c = load_ok("dns:\n  resolvers:\n    - 10.0.0.53\n"
	    "  cache_size: 10000000\n  timeout: 1m\n  tries: 10\n");
	cr_assert_str_eq(c->dns_servers, "10.0.0.53:53");
	cr_assert_eq(c->dns_cache_size, 10000000);
	cr_assert_eq(c->dns_timeout_ms, 60000);
	cr_assert_eq(c->dns_tries, 10);
	config_free(c);
}

Test(config, dns_errors)
{
	static const struct {
		const char	*yaml;
		const char	*want;
	} cases[] = {
#define RESOLVER_ERR(col) "t.yaml:1:" col ": dns.resolvers: expected an " \
	"IP address with an optional port, like 192.0.2.1:53 or " \
	"[2001:db8::1]:53"
		{ "dns: {resolvers: [dns.google:53]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"1.2.3.4:0\"]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"1.2.3.4:65536\"]}\n",
		    RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"1.2.3.4:\"]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"[1.2.3.4]:53\"]}\n",
		    RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"[::1]53\"]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"[::1\"]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"\"]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"1.2.3.4,5.6.7.8\"]}\n",
		    RESOLVER_ERR("19") },
		{ "dns: {resolvers: [\"1.2.3.4\\n\"]}\n", RESOLVER_ERR("19") },
		{ "dns: {resolvers: [1.2.3.4, [5.6.7.8]]}\n",
		    RESOLVER_ERR("28") },
		{ "dns: {resolvers: 1.2.3.4}\n", "t.yaml:1:18: dns.resolvers: "
		    "expected a list of IP addresses with optional ports" },
		{ "dns: {timeout: 99ms}\n", "t.yaml:1:16: dns.timeout: must "
		    "be between 100ms and 60000ms" },
		{ "dns: {timeout: 2m}\n", "t.yaml:1:16: dns.timeout: must be "
		    "between 100ms and 60000ms" },
		{ "dns: {tries: 0}\n",
		    "t.yaml:1:14: dns.tries: must be between 1 and 10" },
		{ "dns: {tries: 11}\n",
		    "t.yaml:1:14: dns.tries: must be between 1 and 10" },
		{ "dns: {cache_size: 10000001}\n", "t.yaml:1:19: "
		    "dns.cache_size: must be between 0 and 10000000" },
		{ "dns: {cache_size: -1}\n",
		    "t.yaml:1:19: dns.cache_size: expected an integer" },
		{ "dns: {resolver: []}\n",
		    "t.yaml:1:7: dns.resolver: unknown key" },
		{ "dns: {tries: 1, tries: 2}\n",
		    "t.yaml:1:17: dns.tries: duplicate key" },
#undef RESOLVER_ERR
	};
	char	 many[512];
	size_t	 n = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		load_err(cases[i].yaml, cases[i].want);
	n += (size_t)snprintf(many, sizeof(many), "dns: {resolvers: [");
	for (int i = 0; i <= CONFIG_DNS_RESOLVERS_MAX; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%s10.0.0.%d",
		    i ? ", " : "", i + 1);
	snprintf(many + n, sizeof(many) - n, "]}\n");
	load_err(many, "t.yaml:1:18: dns.resolvers: at most 16 resolvers");
}

Test(config, yaml_syntax_errors)
{
	/* libyaml's problem_mark, 1-based. */
	load_err("redis:\n  host: [a\n",
	    "t.yaml:3:1: did not find expected ',' or ']' while parsing a "
	    "flow sequence");
	load_err("a: b: c\n", "t.yaml:1:5: mapping values are not allowed in "
	    "this context");
	load_err("redis: *nothing\n",
	    "t.yaml:1:8: found undefined alias");
	load_err("redis: {}\n---\nlog: {}\n",
	    "t.yaml:3:1: only one YAML document allowed");
}

Test(config, bad_utf8_reports_position)
{
	struct config	*c = NULL;
	char		 err[256];
	const char	 yaml[] = "log: {}\nredis: {host: \xff}\n";

	cr_assert_eq(config_load_string(yaml, sizeof(yaml) - 1, "t.yaml", &c,
	    err, sizeof(err)), -EINVAL);
	cr_assert_null(c);
	cr_assert(strncmp(err, "t.yaml:2:15: ", 13) == 0, "%s", err);
}

Test(config, recursive_alias_is_rejected_not_looped)
{
	load_err("redis: &a {port: *a}\n",
	    "t.yaml:1:8: redis.port: expected a scalar value");
}

Test(config, password_never_in_messages)
{
	struct config	*c = NULL;
	char		 err[256];
	const char	*yaml = "redis: {password: \"top\\nsecret\"}\n";

	cr_assert_eq(config_load_string(yaml, strlen(yaml), "t.yaml", &c, err,
	    sizeof(err)), -EINVAL);
	cr_assert_null(strstr(err, "secret"), "%s", err);
	cr_assert(strncmp(err, "t.yaml:1:19: redis.password:", 28) == 0,
	    "%s", err);
}

Test(config, env_override)
{
	struct config	*c = load_ok("redis: {host: a.internal, port: 1}\n");
	char		 err[128] = "";

	setenv("RINGMAIL_REDIS", "10.1.2.3:6390", 1);
	setenv("RINGMAIL_REDIS_PASSWORD", "pw", 1);
	cr_assert_eq(config_apply_env(c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->redis_host, "10.1.2.3");
	cr_assert_eq(c->redis_port, 6390);
	cr_assert_str_eq(c->redis_password, "pw");
	setenv("RINGMAIL_REDIS", "[::1]:7000", 1);
	cr_assert_eq(config_apply_env(c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->redis_host, "::1");
	cr_assert_eq(c->redis_port, 7000);
	setenv("RINGMAIL_REDIS", "nocolon", 1);
	cr_assert_eq(config_apply_env(c, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "RINGMAIL_REDIS: expected host:port or "
	    "[IPv6]:port");
	cr_assert_str_eq(c->redis_host, "::1");	/* unchanged on error */
	setenv("RINGMAIL_REDIS", "h:99999", 1);
	cr_assert_eq(config_apply_env(c, err, sizeof(err)), -EINVAL);
	unsetenv("RINGMAIL_REDIS");
	unsetenv("RINGMAIL_REDIS_PASSWORD");
	cr_assert_eq(config_apply_env(c, err, sizeof(err)), 0);
	cr_assert_str_eq(c->redis_host, "::1");
	config_free(c);
}

Test(config, route_lookup)
{
	struct config *c = load_ok("routes:\n  a.test: h1:25\n"
	    "  B.TEST: h2:26\n  \"*\": h3:27\n");
	const struct config_route *r;

	r = config_route_find(c, "a.test", 6);
	cr_assert_not_null(r);
	cr_assert_str_eq(r->host, "h1");
	r = config_route_find(c, "b.Test", 6);
	cr_assert_not_null(r);
	cr_assert_str_eq(r->host, "h2");
	/* Length-bounded: "a.test.evil" must not match a.test. */
	r = config_route_find(c, "a.test.evil", 11);
	cr_assert_str_eq(r->host, "h3");
	r = config_route_find(c, "a.testX", 6);
	cr_assert_str_eq(r->host, "h1");
	r = config_route_find(c, "sub.a.test", 10);
	cr_assert_str_eq(r->domain, "*");
	config_free(c);
	c = load_ok("routes: {a.test: h1:25}\n");
	cr_assert_null(config_route_find(c, "b.test", 6));
	cr_assert_not_null(config_route_find(c, "A.TEST", 6));
	config_free(c);
}

Test(config, route_limit)
{
	char	*yaml = malloc(64 * (CONFIG_ROUTES_MAX + 2));
	size_t	 n = 0;
	struct config *c = NULL;
	char	 err[256];

	cr_assert_not_null(yaml);
	n += (size_t)sprintf(yaml + n, "routes:\n");
	for (int i = 0; i <= CONFIG_ROUTES_MAX; i++)
		n += (size_t)sprintf(yaml + n, "  d%d.test: h:25\n", i);
	cr_assert_eq(config_load_string(yaml, n, "t.yaml", &c, err,
	    sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "t.yaml:2:3: routes: at most 1024 routes");
	free(yaml);
}

Test(config, file_errors)
{
	struct config	*c = NULL;
	char		 err[256];

	cr_assert_eq(config_load_file("/nonexistent/ringmail.yaml", &c, err,
	    sizeof(err)), -ENOENT);
	cr_assert_null(c);
	cr_assert(strstr(err, "/nonexistent/ringmail.yaml") != NULL);
}

Test(config, shipped_config_loads)
{
	struct config	*c = NULL, d;
	char		 err[256] = "";
	int		 rc;

	rc = config_load_file("config.yaml", &c, err, sizeof(err));
	if (rc == -ENOENT)	/* run from elsewhere than the top dir */
		rc = config_load_file("../../config.yaml", &c, err,
		    sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	/* It documents the defaults, so it must equal them. */
	cr_assert_eq(config_defaults(&d), 0);
	cr_assert_str_eq(c->redis_host, d.redis_host);
	cr_assert_eq(c->redis_port, d.redis_port);
	cr_assert_null(c->redis_password);
	cr_assert_eq(c->worker_threads, d.worker_threads);
	cr_assert_eq(c->fetch_batch, d.fetch_batch);
	cr_assert_eq(c->max_queued, d.max_queued);
	cr_assert_eq(c->claim_idle_ms, d.claim_idle_ms);
	cr_assert_str_eq(c->ehlo_name, d.ehlo_name);
	cr_assert_eq(c->pipelining, d.pipelining);
	cr_assert_eq(c->connection_limit, d.connection_limit);
	cr_assert_eq(c->max_deliveries_per_connection,
	    d.max_deliveries_per_connection);
	cr_assert_eq(memcmp(&c->timeouts, &d.timeouts, sizeof(d.timeouts)), 0);
	cr_assert_eq(c->tls, d.tls);
	cr_assert_null(c->tls_ca_file);
	cr_assert_eq(c->chunking, d.chunking);
	cr_assert_null(c->message_id_domain);
	cr_assert_eq(c->retry_delay_ms, d.retry_delay_ms);
	cr_assert_eq(c->retry_max_attempts, d.retry_max_attempts);
	cr_assert_eq(c->nroutes, 0);
	cr_assert_null(c->dns_servers);
	cr_assert_eq(c->dns_timeout_ms, d.dns_timeout_ms);
	cr_assert_eq(c->dns_tries, d.dns_tries);
	cr_assert_eq(c->dns_cache_size, d.dns_cache_size);
	cr_assert_eq(c->log_level, d.log_level);
	cr_assert_eq(c->ndkim, 0);
	cr_assert_eq(c->dkim_dual, d.dkim_dual);
	cr_assert_eq(c->ndkim_headers, 0);
	cr_assert_null(c->verp_bounce_domain);
	cr_assert_null(c->verp_secret_file);
	cr_assert_str_eq(c->unsub_url, d.unsub_url);
	cr_assert_null(c->unsub_mailto_domain);
	cr_assert_null(c->unsub_secret_file);
	cr_assert_eq(c->unsub_max_age_s, d.unsub_max_age_s);
	free(d.redis_host);
	free(d.ehlo_name);
	free(d.unsub_url);
	config_free(c);
}

Test(config, null_input_is_empty)
{
	struct config	*c = NULL;
	char		 err[64];

	cr_assert_eq(config_load_string(NULL, 0, NULL, &c, err, sizeof(err)),
	    0);
	cr_assert_str_eq(c->path, "config");
	cr_assert_eq(c->redis_port, 6379);
	config_free(c);
}

Test(config, dkim_verp_unsubscribe)
{
	struct config *c = load_ok(
	    "dkim:\n"
	    "  - domain: Shop.Example\n"
	    "    selector: rsa2026\n"
	    "    key_file: /etc/ringmail/dkim/rsa.pem\n"
	    "    algorithm: rsa\n"
	    "  - {domain: shop.example, selector: ed.2026,"
	    " key_file: ed.pem, algorithm: ed25519}\n"
	    "  - {domain: other.example, selector: s, key_file: o.pem}\n"
	    "  - {domain: other.example, selector: t, key_file: p.pem,"
	    " algorithm: auto}\n"
	    "dkim_dual: yes\n"
	    "dkim_headers: [X-Campaign, In-Reply-To]\n"
	    "verp: {bounce_domain: bounces.shop.example,"
	    " secret_file: /etc/ringmail/verp.secret}\n"
	    "unsubscribe:\n"
	    "  url: \"https://u.shop.example/unsub?t=\"\n"
	    "  mailto_domain: shop.example\n"
	    "  secret_file: /etc/ringmail/unsub.secret\n"
	    "  max_age: 30d\n");

	cr_assert_eq(c->ndkim, 4);
	cr_assert_str_eq(c->dkim[0].domain, "shop.example");
	cr_assert_str_eq(c->dkim[0].selector, "rsa2026");
	cr_assert_str_eq(c->dkim[0].key_file, "/etc/ringmail/dkim/rsa.pem");
	cr_assert_eq(c->dkim[0].algorithm, CONFIG_DKIM_RSA);
	cr_assert_str_eq(c->dkim[1].selector, "ed.2026");
	cr_assert_eq(c->dkim[1].algorithm, CONFIG_DKIM_ED25519);
	cr_assert_eq(c->dkim[2].algorithm, CONFIG_DKIM_AUTO);
	cr_assert(c->dkim_dual);
	cr_assert_eq(c->ndkim_headers, 2);
	cr_assert_str_eq(c->dkim_headers[0], "X-Campaign");
	cr_assert_str_eq(c->dkim_headers[1], "In-Reply-To");
	cr_assert_str_eq(c->verp_bounce_domain, "bounces.shop.example");
	cr_assert_str_eq(c->verp_secret_file, "/etc/ringmail/verp.secret");
	cr_assert_str_eq(c->unsub_url, "https://u.shop.example/unsub?t=");
	cr_assert_str_eq(c->unsub_mailto_domain, "shop.example");
	cr_assert_str_eq(c->unsub_secret_file, "/etc/ringmail/unsub.secret");
	cr_assert_eq(c->unsub_max_age_s, 30 * 86400);
	config_free(c);
	c = load_ok("unsubscribe: {url: \"\", max_age: 0,"
	    " mailto_domain: m.example, secret_file: s}\n"
	    "dkim:\ndkim_headers: []\n");
	cr_assert_null(c->unsub_url);
	cr_assert_eq(c->unsub_max_age_s, 0);
	cr_assert_eq(c->ndkim, 0);
	config_free(c);
	c = load_ok("unsubscribe: {url: \"http://127.0.0.1:8025/u/\"}\n");
	cr_assert_str_eq(c->unsub_url, "http://127.0.0.1:8025/u/");
	config_free(c);
}

Test(config, dkim_errors)
{
	load_err("dkim: {domain: a.example}\n", "t.yaml:1:7: dkim: expected a "
	    "list of {domain, selector, key_file, algorithm}");
	load_err("dkim: [a.example]\n", "t.yaml:1:8: dkim[0]: expected a "
	    "mapping with domain, selector, key_file and algorithm");
	load_err("dkim:\n  - {domain: a.example, key_file: k}\n",
	    "t.yaml:2:5: dkim[0]: selector is required");
	load_err("dkim:\n  - {selector: s, key_file: k}\n",
	    "t.yaml:2:5: dkim[0]: domain is required");
	load_err("dkim:\n  - {domain: a.example, selector: s}\n",
	    "t.yaml:2:5: dkim[0]: key_file is required");
	load_err("dkim:\n  - {domain: \"a b\", selector: s, key_file: k}\n",
	    "t.yaml:2:14: dkim[0].domain: expected a domain name");
	load_err("dkim:\n  - {domain: a.example, selector: \"s;x\", key_file: k}"
	    "\n", "t.yaml:2:35: dkim[0].selector: expected DNS labels, at most "
	    "63 characters");
	load_err("dkim:\n  - {domain: a.example, selector: s, key_file: k,"
	    " algorithm: dsa}\n", "t.yaml:2:62: dkim[0].algorithm: expected "
	    "auto, rsa or ed25519");
	load_err("dkim:\n  - {domain: a.example, selector: s, key_file: k,"
	    " keyfile: k}\n", "t.yaml:2:51: dkim[0].keyfile: unknown key");
	load_err("dkim:\n  - {domain: a.example, selector: s, key_file: \"\"}\n",
	    "t.yaml:2:48: dkim[0].key_file: expected a file name");
	load_err("dkim:\n  - {domain: a.example, selector: s, key_file: k}\n"
	    "  - {domain: A.example, selector: s, key_file: k2}\n",
	    "t.yaml:3:5: dkim[1]: a.example with selector s is already dkim[0]");
	load_err("dkim:\n  - {domain: a.example, selector: s, key_file: k,"
	    " domain: b.example}\n",
	    "t.yaml:2:51: dkim[0].domain: duplicate key");
}

Test(config, dkim_dual_needs_two_keys)
{
	load_err("dkim:\n  - {domain: a.example, selector: s, key_file: k}\n"
	    "dkim_dual: true\n", "t.yaml:3:12: dkim_dual: a.example needs a "
	    "second key of the other algorithm (RSA and Ed25519)");
	load_err("dkim_dual: true\ndkim:\n"
	    "  - {domain: a.example, selector: s, key_file: k, algorithm: rsa}\n"
	    "  - {domain: a.example, selector: t, key_file: l, algorithm: rsa}\n",
	    "t.yaml:1:12: dkim_dual: a.example needs a second key of the other "
	    "algorithm (RSA and Ed25519)");
	/* Without keys there is nothing to pair. */
	config_free(load_ok("dkim_dual: true\n"));
}

Test(config, dkim_headers_errors)
{
	load_err("dkim_headers: X-A\n",
	    "t.yaml:1:15: dkim_headers: expected a list of header names");
	load_err("dkim_headers: [\"X A\"]\n", "t.yaml:1:16: dkim_headers[0]: "
	    "expected a header name (printable ASCII without ':' or space, "
	    "at most 64)");
	load_err("dkim_headers: [X-A, x-a]\n",
	    "t.yaml:1:21: dkim_headers[1]: x-a is listed twice");
	load_err("dkim_headers: [dkim-signature]\n", "t.yaml:1:16: "
	    "dkim_headers[0]: DKIM-Signature cannot be signed");
	load_err("dkim_headers: [[a]]\n",
	    "t.yaml:1:16: dkim_headers[0]: expected a header name");
	load_err("dkim_headers: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u]\n",
	    "t.yaml:1:15: dkim_headers: at most 20 names");
}

Test(config, verp_unsubscribe_errors)
{
	load_err("verp: {bounce_domain: b.example}\n", "t.yaml:1:7: "
	    "verp.secret_file: required when verp.bounce_domain is set");
	load_err("verp: {secret_file: /s}\n", "t.yaml:1:7: "
	    "verp.bounce_domain: required when verp.secret_file is set");
	load_err("verp: {bounce_domain: \"b.example\\r\\nX: y\"}\n",
	    "t.yaml:1:23: verp.bounce_domain: expected a domain name");
	load_err("verp: {secret_file: \"a\\nb\"}\n",
	    "t.yaml:1:21: verp.secret_file: expected a file path (no control "
	    "characters, under 4096 bytes)");
	load_err("unsubscribe: {url: \"\", secret_file: s}\n", "t.yaml:1:14: "
	    "unsubscribe: url or mailto_domain required with secret_file");
	load_err("unsubscribe: {max_age: 3651d}\n", "t.yaml:1:24: "
	    "unsubscribe.max_age: must be between 0s and 315360000s");
	load_err("unsubscribe: {max_age: forever}\n", "t.yaml:1:24: "
	    "unsubscribe.max_age: expected a duration like 90d, 12h, 30m");
	load_err("unsubscribe: {mailto_domain: \"x@y\"}\n", "t.yaml:1:30: "
	    "unsubscribe.mailto_domain: expected a domain name");
	{
		const char *bad[] = {
			"http://unsub.example/u/",	/* not loopback */
			"http://localhost.evil.example/",
			"ftp://x/",
			"https://",
			"https:///path",
			"https://u.example/a b",
			"https://u.example/<x>",
			"https://u.example/a,b",
			"https://u.example/\\\"",
			"javascript:alert(1)",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char yaml[256];

			snprintf(yaml, sizeof(yaml), "unsubscribe: {url: \"%s\"}\n",
			    bad[i]);
			load_err(yaml, "t.yaml:1:20: unsubscribe.url: expected an "
			    "https:// URL (http:// only for localhost) of at most "
			    "512 characters without spaces, quotes, <, > or ','");
		}
	}
}

Test(config, rate_strings)
{
	static const struct {
		const char	*s;
		int		 rc;
		uint32_t	 n, per_s;
	} t[] = {
		{ "100/s", 0, 100, 1 },
		{ "20/m", 0, 20, 60 },
		{ "5000/h", 0, 5000, 3600 },
		{ "100000/d", 0, 100000, 86400 },
		{ "1000000000/d", 0, 1000000000, 86400 },
		{ "unlimited", 0, 0, 1 },
		{ "1000000001/s", -EINVAL, 0, 0 },
		{ "99999999999/s", -EINVAL, 0, 0 },
		{ "0/s", -EINVAL, 0, 0 },
		{ "100", -EINVAL, 0, 0 },
		{ "100/", -EINVAL, 0, 0 },
		{ "100/w", -EINVAL, 0, 0 },
		{ "100/sec", -EINVAL, 0, 0 },
		{ "/s", -EINVAL, 0, 0 },
		{ "-1/s", -EINVAL, 0, 0 },
		{ " 1/s", -EINVAL, 0, 0 },
		{ "1.5/s", -EINVAL, 0, 0 },
		{ "Unlimited", -EINVAL, 0, 0 },
		{ "", -EINVAL, 0, 0 },
	};
	char buf[CONFIG_RATE_STR_MAX];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct config_rate r = { 7, 7 };

		cr_assert_eq(config_rate_parse(t[i].s, strlen(t[i].s), &r),
		    t[i].rc, "%s", t[i].s);
		if (t[i].rc != 0) {
			cr_assert_eq(r.n, 7, "%s: touched on error", t[i].s);
			continue;
		}
		cr_assert_eq(r.n, t[i].n, "%s", t[i].s);
		cr_assert_eq(r.per_s, t[i].per_s, "%s", t[i].s);
		cr_assert_str_eq(config_rate_format(&r, buf, sizeof(buf)),
		    t[i].s);
	}
	/* Not NUL-terminated: only len bytes count. */
	{
		struct config_rate r;

		cr_assert_eq(config_rate_parse("12/mX", 4, &r), 0);
		cr_assert_eq(r.n, 12);
		cr_assert_eq(r.per_s, 60);
		cr_assert_eq(config_rate_parse(NULL, 0, &r), -EINVAL);
	}
}

Test(config, shaping_defaults_fall_back_to_smtp)
{
	struct config		*c;
	struct config_shaping	 s;

	c = load_ok("smtp:\n  connection_limit: 7\n"
	    "  max_deliveries_per_connection: 9\n");
	config_shaping_for(c, "mx.a.test", "a.test", "192.0.2.1", &s);
	cr_assert_eq(s.connection_limit, 7);
	cr_assert_eq(s.max_deliveries_per_connection, 9);
	cr_assert_eq(s.max_message_rate.n, 0);
	cr_assert_eq(s.max_connection_rate.n, 0);
	cr_assert(s.adaptive);
	cr_assert_eq(s.nthrottle_patterns, 0);
	config_free(c);
	/* shaping.defaults wins over smtp.* for the keys it gives. */
	c = load_ok("smtp:\n  connection_limit: 7\n"
	    "shaping:\n  defaults:\n    connection_limit: 3\n"
	    "    max_message_rate: 50/s\n");
	config_shaping_for(c, NULL, NULL, NULL, &s);
	cr_assert_eq(s.connection_limit, 3);
	cr_assert_eq(s.max_deliveries_per_connection, 100);
	cr_assert_eq(s.max_message_rate.n, 50);
	cr_assert_eq(s.max_message_rate.per_s, 1);
	config_free(c);
}

Test(config, shaping_merge_order)
{
	static const char yaml[] =
	    "shaping:\n"
	    "  defaults:\n"
	    "    max_message_rate: 50/s\n"
	    "    max_connection_rate: 30/m\n"
	    "    throttle_patterns: [\"try again later\"]\n"
	    "  sites:\n"
	    "    \"MX1.B.test,mx2.b.test\":\n"
	    "      connection_limit: 20\n"
	    "      max_message_rate: 3000/m\n"
	    "    b.test:\n"
	    "      max_message_rate: 100000/h\n"
	    "      adaptive: false\n"
	    "      throttle_patterns: [deferred, \"slow down\"]\n"
	    "  sources:\n"
	    "    \"0::1\": {max_message_rate: 10000/d}\n"
	    "    192.0.2.10:\n"
	    "      max_deliveries_per_connection: 5\n";
	static const struct {
		const char	*site, *domain, *src;
		uint32_t	 conn, deliv, n, per;
		bool		 adaptive;
		size_t		 npat;
	} t[] = {
		/* defaults only */
		{ "mx.other", "other.test", "192.0.2.1", 10, 100, 50, 1, true,
		    1 },
		/* site < domain */
		{ "mx1.b.test,mx2.b.test", NULL, NULL, 20, 100, 3000, 60, true,
		    1 },
		{ "mx1.b.test,mx2.b.test", "B.TEST", NULL, 20, 100, 100000,
		    3600, false, 2 },
		{ NULL, "b.test", NULL, 10, 100, 100000, 3600, false, 2 },
		/* < source, matched by address */
		{ "mx1.b.test,mx2.b.test", "b.test", "::1", 20, 100, 10000,
		    86400, false, 2 },
		{ "", "", "192.0.2.10", 10, 5, 50, 1, true, 1 },
		{ NULL, NULL, "not an ip", 10, 100, 50, 1, true, 1 },
	};
	struct config		*c = load_ok(yaml);
	struct config_shaping	 s;

	cr_assert_eq(c->nshaping_sites, 2);
	cr_assert_str_eq(c->shaping_sites[0].key, "mx1.b.test,mx2.b.test");
	cr_assert_eq(c->nshaping_sources, 2);
	cr_assert_str_eq(c->shaping_sources[0].key, "::1");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		config_shaping_for(c, t[i].site, t[i].domain, t[i].src, &s);
		cr_assert_eq(s.connection_limit, t[i].conn, "row %zu", i);
		cr_assert_eq(s.max_deliveries_per_connection, t[i].deliv,
		    "row %zu", i);
		cr_assert_eq(s.max_message_rate.n, t[i].n, "row %zu", i);
		cr_assert_eq(s.max_message_rate.per_s, t[i].per, "row %zu", i);
		cr_assert_eq(s.max_connection_rate.n, 30, "row %zu", i);
		cr_assert_eq(s.adaptive, t[i].adaptive, "row %zu", i);
		cr_assert_eq(s.nthrottle_patterns, t[i].npat, "row %zu", i);
	}
	config_shaping_for(c, NULL, "b.test", NULL, &s);
	cr_assert_str_eq(s.throttle_patterns[1], "slow down");
	config_free(c);
}

Test(config, shaping_timeouts_per_site)
{
	struct config		*c;
	struct config_shaping	 s;

	c = load_ok("smtp:\n  timeouts: {data_dot: 20m, connect: 10s}\n"
	    "shaping:\n"
	    "  defaults:\n    timeouts: {banner: 1m}\n"
	    "  sites:\n"
	    "    \"mx.slow.test\": {timeouts: {data_dot: 30m, idle: 5s}}\n"
	    "    slow.test: {timeouts: {data_dot: 45m}}\n"
	    "  sources:\n"
	    "    192.0.2.9: {timeouts: {connect: 2s}}\n");
	/* Unnamed stages keep smtp.timeouts; defaults, site, domain and
	 * source override only the stages they name. */
	config_shaping_for(c, "mx.other", "other.test", NULL, &s);
	cr_assert_eq(s.timeouts.data_dot, 20 * 60000);
	cr_assert_eq(s.timeouts.connect, 10000);
	cr_assert_eq(s.timeouts.banner, 60000);
	cr_assert_eq(s.timeouts.ehlo, 5 * 60000);
	cr_assert_eq(s.timeouts.idle, 60000);
	config_shaping_for(c, "mx.slow.test", NULL, NULL, &s);
	cr_assert_eq(s.timeouts.data_dot, 30 * 60000);
	cr_assert_eq(s.timeouts.idle, 5000);
	config_shaping_for(c, "mx.slow.test", "slow.test", "192.0.2.9", &s);
	cr_assert_eq(s.timeouts.data_dot, 45 * 60000);
	cr_assert_eq(s.timeouts.idle, 5000);
	cr_assert_eq(s.timeouts.connect, 2000);
	cr_assert_eq(s.timeouts.banner, 60000);
	cr_assert_eq(s.timeouts.data, 2 * 60000);
	config_free(c);
	/* The STARTTLS policy, per site too. */
	c = load_ok("smtp: {tls: none}\n"
	    "shaping:\n  sites:\n    secure.test: {tls: verify}\n");
	config_shaping_for(c, "mx.other", "other.test", NULL, &s);
	cr_assert_eq(s.tls, CONFIG_TLS_NONE);
	config_shaping_for(c, "mx.secure", "secure.test", NULL, &s);
	cr_assert_eq(s.tls, CONFIG_TLS_VERIFY);
	cr_assert(config_tls_used(c));
	config_free(c);
	c = load_ok("smtp: {tls: none}\n");
	cr_assert(!config_tls_used(c));
	config_free(c);
}

Test(config, warmup)
{
	static const char pools[] = "pools:\n  p:\n    - {source: 192.0.2.10}\n"
	    "    - {source: \"2001:db8:0::1\"}\n";
	static const struct {
		const char *yaml, *want;
	} bad[] = {
		{ "warmup: {sources: [192.0.2.99], schedule: [5]}\n",
		    "t.yaml:5:20: warmup.sources[0]: 192.0.2.99 is in no pool "
		    "(pools: must list it, before warmup:)" },
		{ "warmup: {sources: [nope], schedule: [5]}\n",
		    "t.yaml:5:20: warmup.sources[0]: expected an IP address" },
		{ "warmup: {sources: [192.0.2.10]}\n",
		    "t.yaml:5:9: warmup.schedule: required when warmup.sources "
		    "is given" },
		{ "warmup: {schedule: []}\n",
		    "t.yaml:5:20: warmup.schedule: expected 1..365 daily "
		    "volumes" },
		{ "warmup: {schedule: [5, 0]}\n",
		    "t.yaml:5:24: warmup.schedule[1]: expected messages per "
		    "day, 1..1000000000" },
		{ "warmup: {max_bounce_rate: 101%}\n",
		    "t.yaml:5:27: warmup.max_bounce_rate: expected a percentage "
		    "0..100 like 10%" },
		{ "warmup: {days: 3}\n", "t.yaml:5:10: warmup.days: unknown key" },
	};
	struct config	*c;
	char		 y[512];

	snprintf(y, sizeof(y), "%swarmup:\n  sources: [192.0.2.10, "
	    "\"2001:db8::1\"]\n  schedule: [50, 100, 500]\n"
	    "  max_deferral_rate: 8%%\n", pools);
	c = load_ok(y);
	cr_assert_eq(c->nwarmup_sources, 2);
	cr_assert_str_eq(c->warmup_sources[0], "192.0.2.10");
	cr_assert_str_eq(c->warmup_sources[1], "2001:db8::1");
	cr_assert_eq(c->nwarmup_schedule, 3);
	cr_assert_eq(c->warmup_schedule[2], 500);
	cr_assert_eq(c->warmup_max_deferral_pct, 8);
	cr_assert_eq(c->warmup_max_bounce_pct, 5);
	config_free(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(y, sizeof(y), "%s%s", pools, bad[i].yaml);
		load_err(y, bad[i].want);
	}
}

Test(config, shaping_errors)
{
	static const struct {
		const char *yaml, *want;
	} t[] = {
		{ "shaping: 5\n", "t.yaml:1:10: shaping: expected a mapping" },
		{ "shaping: {bogus: 1}\n",
		    "t.yaml:1:11: shaping.bogus: unknown key" },
		{ "shaping: {defaults: {rate: 1/s}}\n",
		    "t.yaml:1:22: shaping.defaults.rate: unknown key" },
		{ "shaping: {defaults: {max_message_rate: 100/w}}\n",
		    "t.yaml:1:40: shaping.defaults.max_message_rate: expected "
		    "a rate like 100/s, 20/m, 5000/h, 100000/d (N at most "
		    "1000000000) or unlimited" },
		{ "shaping: {defaults: {max_connection_rate: [1]}}\n",
		    "t.yaml:1:43: shaping.defaults.max_connection_rate: "
		    "expected a scalar value" },
		{ "shaping: {defaults: {connection_limit: 0}}\n",
		    "t.yaml:1:40: shaping.defaults.connection_limit: must be "
		    "between 1 and 10000" },
		{ "shaping: {defaults: {max_deliveries_per_connection: "
		    "100001}}\n", "t.yaml:1:53: shaping.defaults."
		    "max_deliveries_per_connection: must be between 1 and "
		    "100000" },
		{ "shaping: {defaults: {connection_limit: x}}\n",
		    "t.yaml:1:40: shaping.defaults.connection_limit: expected "
		    "an integer" },
		{ "shaping: {defaults: {timeouts: {dot: 1s}}}\n",
		    "t.yaml:1:33: shaping.defaults.timeouts.dot: unknown key "
		    "(stages: connect, banner, ehlo, mail_from, rcpt_to, data, "
		    "data_block, data_dot, idle)" },
		{ "shaping: {defaults: {timeouts: {data_dot: 2d}}}\n",
		    "t.yaml:1:43: shaping.defaults.timeouts.data_dot: expected a "
		    "duration like 30s, 5m, 250ms, between 1ms and 1d" },
		{ "shaping: {defaults: {tls: maybe}}\n",
		    "t.yaml:1:27: shaping.defaults.tls: expected opportunistic, "
		    "required, verify or none" },
		{ "shaping: {defaults: {timeouts: 5}}\n",
		    "t.yaml:1:32: shaping.defaults.timeouts: expected a mapping" },
		{ "shaping: {defaults: {adaptive: maybe}}\n",
		    "t.yaml:1:32: shaping.defaults.adaptive: expected true, "
		    "false, yes or no" },
		{ "shaping: {defaults: {throttle_patterns: x}}\n",
		    "t.yaml:1:41: shaping.defaults.throttle_patterns: expected "
		    "a list of strings" },
		{ "shaping: {defaults: {throttle_patterns: [\"\"]}}\n",
		    "t.yaml:1:42: shaping.defaults.throttle_patterns[0]: "
		    "expected 1..200 characters without control characters" },
		{ "shaping: {defaults: {throttle_patterns: [\"a\\nb\"]}}\n",
		    "t.yaml:1:42: shaping.defaults.throttle_patterns[0]: "
		    "expected 1..200 characters without control characters" },
		{ "shaping: {defaults: {throttle_patterns: [[a]]}}\n",
		    "t.yaml:1:42: shaping.defaults.throttle_patterns[0]: "
		    "expected a string" },
		{ "shaping: {sites: [a]}\n",
		    "t.yaml:1:18: shaping.sites: expected a mapping" },
		{ "shaping: {sites: {\"a b\": {}}}\n",
		    "t.yaml:1:19: shaping.sites: 'a b' is not a site key or "
		    "domain" },
		{ "shaping: {sites: {\"a{x}\": {}}}\n",
		    "t.yaml:1:19: shaping.sites: 'a{x}' is not a site key or "
		    "domain" },
		{ "shaping: {sites: {a.test: {}, A.TEST: {}}}\n",
		    "t.yaml:1:31: shaping.sites.A.TEST: duplicate key" },
		{ "shaping: {sites: {a.test: 5}}\n",
		    "t.yaml:1:27: shaping.sites.a.test: expected a mapping" },
		{ "shaping: {sites: {a.test: {adaptive: 2}}}\n",
		    "t.yaml:1:38: shaping.sites.a.test.adaptive: expected "
		    "true, false, yes or no" },
		{ "shaping: {sources: {mx.test: {}}}\n",
		    "t.yaml:1:21: shaping.sources: 'mx.test' is not an IP "
		    "address" },
		{ "shaping: {sources: {\"::1\": {}, \"0:0::1\": {}}}\n",
		    "t.yaml:1:32: shaping.sources.0:0::1: duplicate key" },
		{ "shaping: {defaults: {}, defaults: {}}\n",
		    "t.yaml:1:25: shaping.defaults: duplicate key" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		load_err(t[i].yaml, t[i].want);
}

Test(config, shaping_limits)
{
	char	*y;
	size_t	 cap = 16 + (CONFIG_SHAPING_MAX + 1) * 32, n;

	y = malloc(cap);
	cr_assert_not_null(y);
	n = (size_t)snprintf(y, cap, "shaping:\n  sites:\n");
	for (int i = 0; i <= CONFIG_SHAPING_MAX; i++)
		n += (size_t)snprintf(y + n, cap - n, "    d%d.test: {}\n", i);
	load_err(y, "t.yaml:3:5: shaping.sites: at most 4096 entries");
	free(y);
	{
		char	 big[4096];
		size_t	 m = (size_t)snprintf(big, sizeof(big), "shaping: "
		    "{defaults: {throttle_patterns: [");

		for (int i = 0; i <= CONFIG_PATTERNS_MAX; i++)
			m += (size_t)snprintf(big + m, sizeof(big) - m, "%sp%d",
			    i ? "," : "", i);
		snprintf(big + m, sizeof(big) - m, "]}}\n");
		load_err(big, "t.yaml:1:41: shaping.defaults.throttle_patterns:"
		    " at most 64 patterns");
	}
}

Test(config, shipped_shaping_is_default)
{
	struct config		*c = NULL, *d = NULL;
	struct config_shaping	 a, b;
	char			 err[256] = "";
	int			 rc;

	rc = config_load_file("config.yaml", &c, err, sizeof(err));
	if (rc == -ENOENT)
		rc = config_load_file("../../config.yaml", &c, err,
		    sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	d = load_ok("");
	config_shaping_for(c, "x", "y", "::1", &a);
	config_shaping_for(d, "x", "y", "::1", &b);
	cr_assert_eq(a.connection_limit, b.connection_limit);
	cr_assert_eq(a.max_deliveries_per_connection,
	    b.max_deliveries_per_connection);
	cr_assert_eq(a.max_message_rate.n, 0);
	cr_assert_eq(b.max_message_rate.n, 0);
	cr_assert_eq(a.max_connection_rate.n, 0);
	cr_assert_eq(a.adaptive, b.adaptive);
	cr_assert_eq(a.nthrottle_patterns, 0);
	cr_assert_eq(c->nshaping_sites, 0);
	cr_assert_eq(c->nshaping_sources, 0);
	/* The fallback comment is honest: smtp.* still decides. */
	cr_assert_eq(c->shaping.set & (CONFIG_SHAPE_F_CONN_LIMIT |
	    CONFIG_SHAPE_F_MAX_DELIV), 0);
	config_free(c);
	config_free(d);
}

Test(config, inbound_defaults_and_values)
{
	struct config *c = load_ok("");

	cr_assert_str_eq(c->in_listen_smtp, "127.0.0.1:2525");
	cr_assert_null(c->in_listen_imap);
	cr_assert_null(c->in_listen_imaps);
	cr_assert_null(c->in_tls_cert_file);
	cr_assert_str_eq(c->in_maildir_root, "maildir");
	cr_assert_str_eq(c->in_bounce_mailbox, "bounces");
	cr_assert_str_eq(c->in_reply_mailbox, "replies");
	cr_assert_eq(c->in_max_message_size, 25u * 1024 * 1024);
	cr_assert_eq(c->in_max_connections_per_ip, 20);
	cr_assert_eq(c->nin_bounce_domains, 0);
	config_free(c);

	c = load_ok("inbound:\n"
	    "  listen_smtp: \"\"\n"
	    "  listen_imap: \"[::1]:143\"\n"
	    "  listen_imaps: 0.0.0.0:993\n"
	    "  listen_pop3s: localhost:995\n"
	    "  tls_cert_file: /etc/rm/cert.pem\n"
	    "  tls_key_file: /etc/rm/key.pem\n"
	    "  maildir_root: /var/mail/rm\n"
	    "  users_file: /etc/rm/users\n"
	    "  bounce_domains: [Bounce.Example, b2.example]\n"
	    "  reply_domains: [reply.example]\n"
	    "  bounce_mailbox: bnc\n"
	    "  reply_mailbox: human+replies\n"
	    "  max_message_size: 10MB\n"
	    "  max_connections_per_ip: 5\n"
	    "  max_connections: 50\n"
	    "  max_recipients: 7\n");
	cr_assert_null(c->in_listen_smtp);
	cr_assert_str_eq(c->in_listen_imap, "[::1]:143");
	cr_assert_str_eq(c->in_listen_imaps, "0.0.0.0:993");
	cr_assert_null(c->in_listen_pop3);
	cr_assert_str_eq(c->in_listen_pop3s, "localhost:995");
	cr_assert_str_eq(c->in_users_file, "/etc/rm/users");
	cr_assert_eq(c->nin_bounce_domains, 2);
	cr_assert_str_eq(c->in_bounce_domains[0], "bounce.example");
	cr_assert_str_eq(c->in_bounce_domains[1], "b2.example");
	cr_assert_eq(c->nin_reply_domains, 1);
	cr_assert_str_eq(c->in_reply_mailbox, "human+replies");
	cr_assert_eq(c->in_max_message_size, 10u * 1024 * 1024);
	cr_assert_eq(c->in_max_connections_per_ip, 5);
	cr_assert_eq(c->in_max_connections, 50);
	cr_assert_eq(c->in_max_recipients, 7);
	config_free(c);
}

Test(config, inbound_errors)
{
	static const struct {
		const char *yaml, *want;
	} t[] = {
		{ "inbound: {listen_smtp: 2525}\n", "t.yaml:1:24: "
		  "inbound.listen_smtp: expected host:port or [v6]:port "
		  "(\"\" = off)" },
		{ "inbound: {listen_imap: \"::1:143\"}\n", "t.yaml:1:24: "
		  "inbound.listen_imap: expected host:port or [v6]:port "
		  "(\"\" = off)" },
		{ "inbound: {listen_pop3: \"h:0\"}\n", "t.yaml:1:24: "
		  "inbound.listen_pop3: expected host:port or [v6]:port "
		  "(\"\" = off)" },
		{ "inbound: {max_message_size: 25XB}\n", "t.yaml:1:29: "
		  "inbound.max_message_size: expected a size like 1000, "
		  "64KB, 25MB, 1GB" },
		{ "inbound: {max_message_size: 2GB}\n", "t.yaml:1:29: "
		  "inbound.max_message_size: must be between 1024 and "
		  "1073741824 bytes" },
		{ "inbound: {max_connections_per_ip: 0}\n", "t.yaml:1:35: "
		  "inbound.max_connections_per_ip: must be between 1 and "
		  "100000" },
		{ "inbound: {bounce_domains: b.example}\n", "t.yaml:1:27: "
		  "inbound.bounce_domains: expected a list of domains" },
		{ "inbound: {bounce_domains: [\"a b\"]}\n", "t.yaml:1:28: "
		  "inbound.bounce_domains[0]: expected a domain name" },
		{ "inbound: {reply_domains: [r.example, R.example]}\n",
		  "t.yaml:1:38: inbound.reply_domains[1]: R.example is "
		  "listed twice" },
		{ "inbound: {bounce_domains: [x.example], "
		  "reply_domains: [x.example]}\n", "t.yaml:1:10: inbound: "
		  "x.example is both a bounce and a reply domain" },
		{ "inbound: {tls_cert_file: /c}\n", "t.yaml:1:10: inbound: "
		  "tls_cert_file and tls_key_file go together" },
		{ "inbound: {listen_imaps: \"127.0.0.1:993\"}\n", "t.yaml:1:10: "
		  "inbound: listen_imaps and listen_pop3s need "
		  "tls_cert_file" },
		{ "inbound: {reply_mailbox: ../etc}\n", "t.yaml:1:26: "
		  "inbound.reply_mailbox: expected a user name (1..64 of "
		  "A-Z a-z 0-9 . _ @ + -, not starting with '.')" },
		{ "inbound: {bounce_mailbox: \"a/b\"}\n", "t.yaml:1:27: "
		  "inbound.bounce_mailbox: expected a user name (1..64 of "
		  "A-Z a-z 0-9 . _ @ + -, not starting with '.')" },
		{ "inbound: {listen: x}\n", "t.yaml:1:11: "
		  "inbound.listen: unknown key" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		load_err(t[i].yaml, t[i].want);
}

Test(config, unsubscribe_listen)
{
	struct config	*c = NULL;
	char		 err[256], host[CONFIG_LISTEN_HOST_MAX];
	uint16_t	 port = 0;
	const char	*ok = "unsubscribe:\n  listen: \"[::1]:8080\"\n";
	const char	*bad = "unsubscribe:\n  listen: \"localhost:80\"\n";

	cr_assert_eq(config_load_string(ok, strlen(ok), "t.yaml", &c, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->unsub_listen, "[::1]:8080");
	cr_assert_eq(config_listen_parse(c->unsub_listen, host, &port), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 8080);
	config_free(c);
	cr_assert_eq(config_load_string(bad, strlen(bad), "t.yaml", &c, err,
	    sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "unsubscribe.listen"), "%s", err);
	cr_assert_eq(config_listen_parse(CONFIG_UNSUB_LISTEN_DEFAULT, host,
	    &port), 0);
	cr_assert_eq(port, 8025);
	cr_assert_eq(config_listen_parse("127.0.0.1:0", host, &port), -EINVAL);
	cr_assert_eq(config_listen_parse("127.0.0.1:65536", host, &port),
	    -EINVAL);
	cr_assert_eq(config_listen_parse("127.0.0.1", host, &port), -EINVAL);
	cr_assert_eq(config_listen_parse("[::1]8080", host, &port), -EINVAL);
}
