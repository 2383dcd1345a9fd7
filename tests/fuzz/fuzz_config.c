/*
 * fuzz_config: config_load_string on arbitrary bytes. On success the
 * strings that reach the wire must be clean; on failure the message must
 * have the "NAME:LINE:COL: " shape.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_clean(const char *s)
{
	if (s == NULL)
		return;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == ' ')
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c = NULL;
	char		 err[256];
	unsigned long	 line, col;
	int		 rc;

	rc = config_load_string((const char *)data, size, "f.yaml", &c, err,
	    sizeof(err));
	if (rc != 0) {
		if (c != NULL || sscanf(err, "f.yaml:%lu:%lu: ", &line, &col)
		    != 2 || line == 0 || col == 0)
			abort();
		return 0;
	}
	check_clean(c->redis_host);
	check_clean(c->ehlo_name);
	check_clean(c->message_id_domain);
	if (c->redis_port == 0 || c->connection_limit == 0 ||
	    c->fetch_batch == 0 || c->fetch_batch > 1000)
		abort();
	for (size_t i = 0; i < c->nroutes; i++) {
		check_clean(c->routes[i].domain);
		check_clean(c->routes[i].host);
		if (c->routes[i].port == 0 || config_route_find(c,
		    c->routes[i].domain, strlen(c->routes[i].domain)) == NULL)
			abort();
	}
	config_free(c);
	return 0;
}
