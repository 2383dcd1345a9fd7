/*
 * lease_cli: a tiny driver for tests/integration/test_lease.py, compiled
 * by the test itself against build/libringmail.a. Runs out/lease.h's
 * commands against a real redis-server, one per stdin line:
 *   tokens SITE WANT NOW_MS RATE_MPD BURST LEASE_MS  -> "n until_ms"
 *   slots OP SITE HOLDER N CAP TTL_MS NOW_MS         -> "changed held total fair"
 * OP is acquire, renew or release. Errors print "ERR ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "out/lease.h"

int
main(int argc, char **argv)
{
	redisContext	*rc;
	char		 line[1024];

	if (argc != 2)
		return 2;
	if ((rc = redisConnect("127.0.0.1", atoi(argv[1]))) == NULL ||
	    rc->err)
		return 1;
	while (fgets(line, sizeof(line), stdin) != NULL) {
		struct lease_cmd	 c;
		redisReply		*r;
		char			 op[16], site[600], holder[200];
		unsigned long long	 a, b, d, e, f;
		long long		 now;
		int			 x = -1, tok = 0;

		if (sscanf(line, "tokens %599s %llu %lld %llu %llu %llu", site,
		    &a, &now, &b, &d, &e) == 6) {
			tok = 1;
			x = lease_tokens_cmd(&c, site, (uint32_t)a, now, b,
			    (uint32_t)d, (uint32_t)e);
		} else if (sscanf(line, "slots %15s %599s %199s %llu %llu %llu "
		    "%lld", op, site, holder, &a, &b, &f, &now) == 7) {
			enum lease_slot_op o = strcmp(op, "acquire") == 0 ?
			    LEASE_ACQUIRE : strcmp(op, "renew") == 0 ?
			    LEASE_RENEW : LEASE_RELEASE;

			x = lease_slots_cmd(&c, o, site, holder, (uint32_t)a,
			    (uint32_t)b, (uint32_t)f, now);
		}
		if (x != 0) {
			printf("ERR cmd %d\n", x);
			fflush(stdout);
			continue;
		}
		r = redisCommandArgv(rc, c.argc, c.argv, c.argvlen);
		if (r == NULL) {
			printf("ERR io\n");
			return 1;
		}
		if (tok) {
			struct lease_tokens t;

			if (lease_tokens_parse(r, &t) == 0)
				printf("%u %lld\n", t.n, (long long)t.until_ms);
			else
				printf("ERR reply %s\n", r->type ==
				    REDIS_REPLY_ERROR ? r->str : "?");
		} else {
			struct lease_slots s;

			if (lease_slots_parse(r, &s) == 0)
				printf("%u %u %u %u\n", s.changed, s.held,
				    s.total, s.fair);
			else
				printf("ERR reply %s\n", r->type ==
				    REDIS_REPLY_ERROR ? r->str : "?");
		}
		fflush(stdout);
		freeReplyObject(r);
	}
	redisFree(rc);
	return 0;
}
