/*
 * retry: when a deferred recipient is tried again. Pure functions of the
 * configuration, the attempt number and a random draw, so the schedule is
 * unit-tested with an injected clock and random source.
 *
 * Exponential backoff with "equal jitter": the wait before attempt n+1 is
 * d = min(max_delay, delay * 2^(n-1)), drawn uniformly from [d/2, d], so
 * the retries of a site that failed for many recipients at once spread
 * over time instead of coming back as one storm. A server's own
 * "retry in N seconds" hint wins when it asks for longer (capped at
 * max_delay).
 */
#ifndef ENGINE_OUT_RETRY_H
#define ENGINE_OUT_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

/*
 * Milliseconds to wait after failed attempt number `attempts` (1-based),
 * given a uniform random value r in [0, 1) and a hint in seconds (0 =
 * none).
 */
int64_t	retry_delay_ms(const struct config *cfg, unsigned attempts, double r,
	    unsigned hint_s);
/* True when a recipient first tried at start_ms has passed max_age. */
bool	retry_expired(const struct config *cfg, int64_t start_ms,
	    int64_t now_ms);

#endif
