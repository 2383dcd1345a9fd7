/*
 * worker: the sending engine. N threads, each with its own io_uring, its
 * own two Redis connections (fetch: blocking XREADGROUP; ctl: everything
 * else), its own destinations and SMTP connections: shared-nothing, no
 * locks on any hot path. Threads share only the immutable config and the
 * drain flag.
 *
 * Per thread: campaigns (definition + compiled templates), jobs fetched
 * from the campaigns' streams, one FIFO of recipients per destination,
 * SMTP sessions driven by out/smtpc, outcomes batched into one MULTI per
 * loop iteration (out/record part of this file: counters, events, done
 * bits, retries, XACK).
 * Must not touch: the config (read-only), other threads' state.
 */
#ifndef ENGINE_OUT_WORKER_H
#define ENGINE_OUT_WORKER_H

#include <stdbool.h>

#include "core/config.h"

struct worker_opts {
	bool		 until_done;	/* exit when no campaign is active */
	unsigned	 threads;	/* 0 = config / cores */
};

/* Runs until drained (SIGTERM/SIGINT) or, with until_done, idle. 0 or 1. */
int	worker_run(const struct config *cfg, const struct worker_opts *o);
/* Ask every thread to drain (async-signal-safe). */
void	worker_request_drain(void);

#endif
