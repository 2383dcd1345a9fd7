/*
 * fleet: the small text formats of campaign control and the worker
 * registry (issue 4), shared by the CLI and the worker so both sides read
 * and write them the same way: the `rm:workers` heartbeat value, the
 * submit-time start (`--start-at`) and rate cap (`--rate`) syntaxes.
 *
 * Owns: nothing (pure functions, no I/O, no allocation). Must not touch:
 * Redis, sockets. Thread-safe.
 */
#ifndef ENGINE_OUT_FLEET_H
#define ENGINE_OUT_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLEET_HOST_MAX		255	/* bytes of a host name kept */
#define FLEET_RATE_MAX		1000000	/* N in N/s, N/m, N/h */

/* One `rm:workers` value: ts_ms FS threads FS host FS pid FS delivered
 * FS held (FS = 0x1f). */
struct fleet_worker {
	int64_t		ts_ms;		/* last heartbeat (wall) */
	unsigned	threads;
	char		host[FLEET_HOST_MAX + 1];
	long		pid;
	uint64_t	delivered;	/* messages delivered since start */
	uint64_t	held;		/* recipients held in memory now */
};

/*
 * Parse a heartbeat value (v[0..len), need not be NUL-terminated). Fields
 * after the sixth are ignored (room for later versions). Returns 0, or
 * -EINVAL when a field is missing or not a number in range, or the host
 * is empty, too long or has control characters.
 */
int	fleet_worker_parse(const char *v, size_t len,
	    struct fleet_worker *w);
/*
 * Format w into out (NUL-terminated). Returns 0, -EINVAL when the host is
 * empty or has control characters, -ENOSPC when out is too small
 * (FLEET_HOST_MAX + 100 bytes always suffice).
 */
int	fleet_worker_format(char *out, size_t outsz,
	    const struct fleet_worker *w);
/* Live: a heartbeat within RM_WORKER_LIVE_MS before (or at) now_ms. */
bool	fleet_worker_live(const struct fleet_worker *w, int64_t now_ms);

/*
 * A start time: ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ" (a space may replace
 * the T) or unix seconds (digits only). *ms is the wall time in ms.
 * Returns 0 or -EINVAL (syntax, impossible date, before 1970, after 9999).
 */
int	fleet_parse_time(const char *s, int64_t *ms);
/*
 * A rate cap "N/s", "N/m" or "N/h" with N in 1..FLEET_RATE_MAX; *per_s is
 * the rate in messages per second. Returns 0 or -EINVAL.
 */
int	fleet_parse_rate(const char *s, double *per_s);
/*
 * The decimal form stored in meta `rate_per_s` ("%.9g": never an
 * exponent for the rates fleet_parse_rate accepts). 0 or -ENOSPC.
 */
int	fleet_format_rate(char *out, size_t outsz, double per_s);

#endif
