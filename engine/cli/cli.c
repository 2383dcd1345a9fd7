/* cli: shared helpers for the subcommands. See cli.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli/cli.h"
#include "core/config.h"
#include "lib/log.h"

struct config *
cli_config(const char *path)
{
	struct config	*cfg = NULL;
	char		 err[1024];
	int		 r;

	if (path == NULL && access("config.yaml", R_OK) == 0)
		path = "config.yaml";
	if (path != NULL)
		r = config_load_file(path, &cfg, err, sizeof(err));
	else
		r = config_load_string("", 0, "(defaults)", &cfg, err,
		    sizeof(err));
	if (r != 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	if (config_apply_env(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		config_free(cfg);
		return NULL;
	}
	log_set_level((enum log_level)cfg->log_level);
	return cfg;
}

redisReply *
cli_cmd(redisContext *rc, const char *fmt, ...)
{
	redisReply	*r;
	va_list		 ap;

	va_start(ap, fmt);
	r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	if (r == NULL) {
		fprintf(stderr, "ringmail: redis: %s\n", rc->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "ringmail: redis: %s\n", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

redisContext *
cli_redis(const struct config *cfg)
{
	struct timeval	 tv = { 5, 0 };
	redisContext	*rc;
	redisReply	*r;

	rc = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
	if (rc == NULL || rc->err) {
		fprintf(stderr, "ringmail: cannot connect to redis at %s:%u: "
		    "%s\n", cfg->redis_host, cfg->redis_port,
		    rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
	if (cfg->redis_password && cfg->redis_password[0]) {
		if ((r = cli_cmd(rc, "AUTH %s", cfg->redis_password)) == NULL)
			goto fail;
		freeReplyObject(r);
	}
	if (cfg->redis_db != 0) {
		if ((r = cli_cmd(rc, "SELECT %u", cfg->redis_db)) == NULL)
			goto fail;
		freeReplyObject(r);
	}
	return rc;
fail:
	redisFree(rc);
	return NULL;
}
