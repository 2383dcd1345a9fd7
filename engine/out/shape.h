/*
 * shape: traffic shaping for one (source IP x site) pair: a GCRA rate
 * limiter and an adaptive AIMD controller over it (issue 6).
 *
 * Sans-I/O and clock-free: every function takes `now` (mono_us from
 * lib/mono.h, or a fake clock in tests) and returns decisions and events
 * as data. Nothing here sleeps, logs, allocates or talks to Redis; the
 * fleet-wide share of a limit comes from out/lease.h and is applied by the
 * caller on top (a message needs a local token AND a leased one).
 *
 * Wiring (worker, per site and source):
 *   setup     config_shaping_for(cfg, site, domain, src, &cs);
 *             shape_ctl_conf_from(&conf, &cs); shape_ctl_init(&ctl, ...)
 *   message   t = shape_ctl_take(&ctl, now, 1): 0 = send now, else park
 *             the site until t (SHAPE_NEVER: never, see shape_rate_take)
 *   connect   shape_ctl_conn_take(&ctl, now, nbusy, &t) before opening
 *             another connection; max_deliveries_per_connection from cs
 *   connected shape_ctl_feedback(..., SHAPE_CONN_OK, 0, &ev)
 *   conn fail shape_ctl_feedback(..., SHAPE_CONN_FAIL, 0, &ev)
 *   reply     sig = shape_signal_of(code, esc, text, &cr, &cs, &hint);
 *             shape_ctl_feedback(..., sig, 0, &ev) and, when hint > 0,
 *             shape_ctl_feedback(..., SHAPE_HINT, hint, &ev)
 *   each feedback returning 1 filled ev: log it (shape_event_format)
 *   and publish it for `ringmail status --sites`.
 *   explain   shape_explain(&ctl, now, nbusy, &ex, text, sizeof(text))
 *
 * Rates inside the controller are in "mpd", milli-messages per day:
 * every N/s, N/m, N/h, N/d rate is an exact integer there, and a
 * multiplicative cut of a small rate keeps three decimals.
 *
 * Owns: nothing outside the structs (embed them). Must not touch: sockets,
 * Redis, logs, the wall clock. Worker-local, not thread-safe.
 */
#ifndef ENGINE_OUT_SHAPE_H
#define ENGINE_OUT_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/mono.h"
#include "mail/classify.h"

#include "core/config.h"

#define SHAPE_NEVER	INT64_MAX	/* "not at any time" */
#define SHAPE_MPD_PER_S	(86400ull * 1000)	/* 1 message/s in mpd */
#define SHAPE_TEXT_MAX	256	/* shape_explain / shape_event_format */

/*
 * GCRA (virtual scheduling, ITU-T I.371) for `n` units per `per_us`,
 * with a burst of `burst` units. Exact: the theoretical arrival time is
 * kept as tat_us + tat_frac/n microseconds, so "100/s" allows unit k at
 * exactly k * 10000 us and "3/s" at ceil(k * 333333.33) us.
 */
struct shape_rate {
	uint64_t	 n;		/* units per per_us; 0 = unlimited */
	uint64_t	 per_us;
	uint32_t	 burst;		/* >= 1 */
	mono_us		 tat_us;	/* theoretical arrival time */
	uint64_t	 tat_frac;	/* + tat_frac / n us, < n */
};

/*
 * Set up r for n units per per_us (n == 0: unlimited) and the burst
 * (0 is taken as 1). The bucket starts full.
 */
void	shape_rate_init(struct shape_rate *r, uint64_t n, uint64_t per_us,
	    uint32_t burst);
/* As shape_rate_init for a configured rate ("100/s"). */
void	shape_rate_init_cfg(struct shape_rate *r, const struct config_rate *c,
	    uint32_t burst);
/* Change the rate, keeping what was taken (the schedule is rescaled). */
void	shape_rate_set(struct shape_rate *r, uint64_t n, uint64_t per_us);
/*
 * Take n units at now. Returns 0 when they were taken, else the mono time
 * (> now) at which n units will be allowed (nothing is taken then).
 * n > burst can never be allowed at once: SHAPE_NEVER. n == 0 and an
 * unlimited rate always return 0.
 */
mono_us	shape_rate_take(struct shape_rate *r, mono_us now, uint32_t n);
/* As shape_rate_take without taking anything. */
mono_us	shape_rate_peek(const struct shape_rate *r, mono_us now, uint32_t n);

/* Feedback the caller reports to a controller. */
enum shape_signal {
	SHAPE_NONE = 0,		/* neutral (e.g. 550 user unknown): ignored */
	SHAPE_OK,		/* a message was accepted (2xx) */
	SHAPE_THROTTLE,		/* 421, 4xx 4.7.x, CLASSIFY_A_SLOW_DOWN or a
				   configured throttle pattern */
	SHAPE_CONN_FAIL,	/* connect/banner/TLS failure */
	SHAPE_HINT,		/* "retry in N s": retry_after_s */
	SHAPE_CONN_OK,		/* a connection got its 220 greeting */
};

/* Why a controller changed (struct shape_event). */
enum shape_reason {
	SHAPE_R_THROTTLE,	/* multiplicative cut */
	SHAPE_R_RAISE,		/* additive increase after clean traffic */
	SHAPE_R_HINT,		/* suspended until the hinted time */
	SHAPE_R_BACKOFF,	/* suspended after connection failures */
	SHAPE_R_CLEAR,		/* a success ended the failure backoff */
};

/* One change, for the log line and the status/event stream. */
struct shape_event {
	enum shape_reason reason;
	uint64_t	 old_rate_mpd;	/* 0 = unlimited */
	uint64_t	 new_rate_mpd;
	uint32_t	 old_conc;
	uint32_t	 new_conc;
	mono_us		 until;		/* HINT/BACKOFF: suspended until */
	uint32_t	 nfail;		/* consecutive connection failures */
};

/* The constraint that holds a site's next message (shape_explain). */
enum shape_bind {
	SHAPE_BIND_NONE,	/* nothing: it may go now */
	SHAPE_BIND_RATE,	/* message rate (adaptive or configured) */
	SHAPE_BIND_CONN_RATE,	/* new-connection rate */
	SHAPE_BIND_CONCURRENCY,	/* every allowed connection is busy */
	SHAPE_BIND_BACKOFF,	/* suspended after connection failures */
	SHAPE_BIND_HINT,	/* suspended by a "retry in N" reply */
};

/*
 * Controller tuning. shape_ctl_conf_from() fills every field from a
 * merged config_shaping with the defaults shown; tests may change them.
 */
struct shape_ctl_conf {
	uint64_t	 max_rate_mpd;	/* max_message_rate; 0 = unlimited */
	uint64_t	 min_rate_mpd;	/* cuts stop here: 1/m (or max) */
	uint32_t	 max_conc;	/* connection_limit */
	uint32_t	 min_conc;	/* 1 */
	uint32_t	 burst;		/* messages at once: 1 s at max rate,
					   1..100 (100 when unlimited); with
					   adaptive the bucket uses 1/5 s at
					   the current rate, at most this */
	struct config_rate conn_rate;	/* max_connection_rate */
	uint32_t	 conn_burst;	/* 1 */
	bool		 adaptive;	/* false: only hints and backoff */
	uint32_t	 decrease_pct;	/* rate/conc *= this/100 on throttle:
					   50 */
	mono_us		 holdoff_us;	/* throttles within this after a cut
					   count once: 2 s */
	mono_us		 increase_us;	/* at most one raise per: 1 s */
	uint32_t	 increase_pct;	/* additive step, % of the reference
					   rate (last cut, else max): 5 */
	uint32_t	 recover_pct;	/* below this % of the rate at the
					   last cut, steps are 4x: 90 */
	uint32_t	 fail_threshold; /* failures before a backoff: 3 */
	mono_us		 backoff_min_us;	/* first backoff: 10 s */
	mono_us		 backoff_max_us;	/* cap: 1 h */
};

struct shape_ctl {
	struct shape_ctl_conf conf;
	struct shape_rate msg;		/* at rate_mpd */
	struct shape_rate conn;		/* new connections */
	uint64_t	 rate_mpd;	/* current; 0 = unlimited */
	uint64_t	 ref_mpd;	/* rate when last cut; 0 = never cut */
	uint32_t	 conc;		/* current connection limit */
	mono_us		 hold_until;	/* no further cut before */
	mono_us		 last_raise;	/* rate */
	mono_us		 last_conc_raise;
	uint32_t	 nclean;	/* OKs since the last change */
	mono_us		 hint_until;	/* 0 = none */
	mono_us		 backoff_until;	/* 0 = none */
	mono_us		 backoff_us;	/* the current backoff step */
	uint32_t	 nfail;		/* consecutive connection failures */
	mono_us		 obs_start;	/* throughput estimate window */
	uint64_t	 obs_n;
	uint64_t	 obs_mpd;	/* last full window (accepted) */
	uint64_t	 nthrottle;	/* counters, for status */
	uint64_t	 nok;
	/*
	 * Added: attempts (accepted + throttled) in the window and their
	 * rate over the last full one, and whether a full window was
	 * measured (obs_mpd, accepted only, may then be 0). The attempt
	 * rate tells a sender pushing its rate (a shortfall in accepted is
	 * the receiver's doing) from one with too little mail.
	 */
	uint64_t	 obs_att_n;
	uint64_t	 obs_att_mpd;
	bool		 obs_full;
};

/* Machine-readable result of shape_explain. */
struct shape_explain {
	enum shape_bind	 bind;
	mono_us		 until;		/* next try; 0 = now or unknown
					   (CONCURRENCY: when a connection
					   frees) */
	mono_us		 wait_us;	/* until - now, 0 when none */
	uint64_t	 rate_mpd;	/* current, 0 = unlimited */
	uint64_t	 max_rate_mpd;
	uint32_t	 conc;
	uint32_t	 max_conc;
	uint32_t	 nbusy;
	uint32_t	 nfail;
	bool		 adaptive;
};

/* Defaults for the tuning fields, limits from cs (a merged layer). */
void	shape_ctl_conf_from(struct shape_ctl_conf *conf,
	    const struct config_shaping *cs);
/*
 * Start at the configured maxima (rate, concurrency). 0, or -EINVAL when
 * conf is inconsistent (max_conc 0, min above max, decrease_pct not in
 * 1..99); the limits are then clamped rather than left unset.
 */
int	shape_ctl_init(struct shape_ctl *c, const struct shape_ctl_conf *conf,
	    mono_us now);
/*
 * Report one signal at now. For SHAPE_HINT, retry_after_s is the hint
 * (0 = ignored); other signals ignore it. Returns 1 when the controller
 * changed (ev filled; ev may be NULL), else 0.
 *   THROTTLE: adaptive only; the first one after the hold-off window cuts
 *     rate (from the lower of the current rate and measured throughput:
 *     accepted messages only, over at least a second; the measured one
 *     only while the sender attempts >= 3/4 of its rate, so a sender
 *     short of mail is not cut to its trickle; unlimited with nothing
 *     accepted yet: from the attempts per second so far)
 *     and concurrency by decrease_pct, never below the minima; more
 *     within holdoff_us change nothing (one burst of 421s = one cut).
 *   OK: counts; once increase_us has passed since the last change, adds
 *     increase_pct of the reference rate (4x while below recover_pct of
 *     the rate at the last cut; plus a quarter of the excess once above
 *     it, so a raised limit is found quickly) and one connection, up to
 *     the maxima, unless the sender uses under 3/4 of its rate. An OK
 *     that comes k >= 2 increase_us after the last raise applies up to
 *     10 raises (slow sites send OKs seconds apart).
 *     Also ends a connection-failure backoff (SHAPE_R_CLEAR).
 *   HINT: suspends the site until now + retry_after_s (a later hint
 *     extends, an earlier one never shortens).
 *   CONN_FAIL: from the fail_threshold-th consecutive one, suspends for
 *     backoff_min_us, doubling per further failure, capped at
 *     backoff_max_us.
 *   CONN_OK: clears the failure count and backoff (SHAPE_R_CLEAR if one
 *     was active).
 */
int	shape_ctl_feedback(struct shape_ctl *c, mono_us now,
	    enum shape_signal sig, uint32_t retry_after_s,
	    struct shape_event *ev);
/*
 * May n messages go at now? 0 = yes (taken from the rate bucket), else
 * the mono time to try again: the end of a suspension, or the rate's
 * next slot. SHAPE_NEVER when n exceeds the burst.
 */
mono_us	shape_ctl_take(struct shape_ctl *c, mono_us now, uint32_t n);
/*
 * May a new connection open at now, with nbusy connections to the site
 * already open? 0 = yes (a connection-rate token was taken). -EAGAIN:
 * suspended or connection rate, retry at *until. -EBUSY: the concurrency
 * limit is reached, *until = 0 (retry when a connection closes).
 */
int	shape_ctl_conn_take(struct shape_ctl *c, mono_us now, uint32_t nbusy,
	    mono_us *until);
/* Whether the site is suspended (hint or backoff) at now. */
bool	shape_ctl_suspended(const struct shape_ctl *c, mono_us now);

/*
 * The constraint holding the site's next message at now, with nbusy of
 * its connections busy: hint and backoff first (the later wins), then
 * the message rate, then concurrency (nbusy >= conc), then the
 * connection rate (only when nbusy is 0, so a new connection is needed).
 * Fills out and, when textsz > 0, one line of text such as
 *   "rate: 12.5/s (adaptive, max 100/s) holds the next message for 0.080 s"
 * Returns out->bind.
 */
enum shape_bind shape_explain(const struct shape_ctl *c, mono_us now,
	    uint32_t nbusy, struct shape_explain *out, char *text,
	    size_t textsz);
/* "none", "rate", "connection-rate", "concurrency", "backoff", "hint". */
const char *shape_bind_name(enum shape_bind b);
/* "throttle", "raise", "hint", "backoff", "clear". */
const char *shape_reason_name(enum shape_reason r);
/*
 * One key=value fragment for the log/status line of ev, e.g.
 *   "reason=throttle rate=20.000/s->10.000/s conc=10->5"
 * Always NUL-terminated when outsz > 0. Returns out.
 */
char	*shape_event_format(const struct shape_event *ev, mono_us now,
	    char *out, size_t outsz);
/* "12.5/s" (or "unlimited") for a rate in mpd. Returns out. */
char	*shape_rate_str(uint64_t mpd, char *out, size_t outsz);
/* A configured rate in mpd (0 = unlimited). */
uint64_t shape_mpd_of(const struct config_rate *r);

/*
 * Map one SMTP reply to a signal: 2xx -> OK; 421, any 4xx with an
 * enhanced status 4.7.x, a classification with CLASSIFY_A_SLOW_DOWN, or
 * text containing one of cs->throttle_patterns (ASCII case-insensitive)
 * -> THROTTLE; anything else -> NONE. esc, text, cr and cs may be NULL.
 * *retry_after_s (may be NULL) gets cr's hint, or one parsed from text.
 */
enum shape_signal shape_signal_of(int code, const char *esc,
	    const char *text, const struct classify_result *cr,
	    const struct config_shaping *cs, uint32_t *retry_after_s);

#endif
