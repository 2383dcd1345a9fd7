/*
 * fuzz_fleet: the rm:workers heartbeat parser (values from Redis) and the
 * --start-at / --rate parsers (command-line input). Accepted heartbeats
 * must format and parse back to the same record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "out/fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fleet_worker	w, w2;
	char			v[FLEET_HOST_MAX + 100], *s;
	int64_t			ms;
	double			r;

	if (fleet_worker_parse((const char *)data, size, &w) == 0) {
		if (fleet_worker_format(v, sizeof(v), &w) != 0 ||
		    fleet_worker_parse(v, strlen(v), &w2) != 0 ||
		    memcmp(&w, &w2, sizeof(w)) != 0)
			abort();
	}
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (fleet_parse_time(s, &ms) == 0 && (ms < 0 || ms % 1000 != 0))
		abort();
	if (fleet_parse_rate(s, &r) == 0 &&
	    (!(r > 0) || r > FLEET_RATE_MAX ||
	    fleet_format_rate(v, sizeof(v), r) != 0 || strchr(v, 'e')))
		abort();
	free(s);
	return 0;
}
