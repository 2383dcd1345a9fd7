#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/mono.h"
#include "mail/classify.h"

#include "core/config.h"
#include "out/shape.h"

#define S	((mono_us)1000000)
#define T0	((mono_us)1000 * S)	/* an arbitrary mono "boot" offset */

Test(shape, rate_exact_at_boundaries)
{
	struct shape_rate r;

	shape_rate_init(&r, 100, (uint64_t)S, 10);	/* 100/s, burst 10 */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(shape_rate_take(&r, T0, 1), 0, "unit %d", i);
	/* The 11th is due one emission interval (10 ms) later, exactly. */
	cr_assert_eq(shape_rate_take(&r, T0, 1), T0 + 10000);
	cr_assert_eq(shape_rate_peek(&r, T0 + 9999, 1), T0 + 10000);
	cr_assert_eq(shape_rate_take(&r, T0 + 10000, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0 + 10000, 1), T0 + 20000);
	/* Two at once need two intervals. */
	cr_assert_eq(shape_rate_take(&r, T0 + 20000, 2), T0 + 30000);
	cr_assert_eq(shape_rate_take(&r, T0 + 30000, 2), 0);
	/* Idle for a long time refills to the burst, not beyond. */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(shape_rate_take(&r, T0 + 100 * S, 1), 0);
	cr_assert_neq(shape_rate_take(&r, T0 + 100 * S, 1), 0);
}

Test(shape, rate_fractional_interval_is_exact)
{
	struct shape_rate	 r;
	mono_us			 t = T0;
	int			 n = 0;

	shape_rate_init(&r, 3, (uint64_t)S, 1);	/* 333333.33 us apart */
	cr_assert_eq(shape_rate_take(&r, T0, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0, 1), T0 + 333334);
	cr_assert_eq(shape_rate_take(&r, T0 + 333333, 1), T0 + 333334);
	cr_assert_eq(shape_rate_take(&r, T0 + 333334, 1), 0);
	/* Taken 0.67 us late: with burst 1 that slack is gone (GCRA). */
	cr_assert_eq(shape_rate_take(&r, T0 + 333334, 1), T0 + 666668);
	/* With a burst of 2, taking on time keeps the fractions exact. */
	shape_rate_init(&r, 3, (uint64_t)S, 2);
	cr_assert_eq(shape_rate_take(&r, T0, 2), 0);
	cr_assert_eq(shape_rate_take(&r, T0, 1), T0 + 333334);
	cr_assert_eq(shape_rate_take(&r, T0 + 333334, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0 + 333334, 1), T0 + 666667);
	cr_assert_eq(shape_rate_take(&r, T0 + 666667, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0 + 666667, 1), T0 + S);
	cr_assert_eq(shape_rate_take(&r, T0 + S, 1), 0);
	/* Over 1000 s of taking as soon as allowed: exactly 3000 units. */
	shape_rate_init(&r, 3, (uint64_t)S, 1);
	while (t < T0 + 1000 * S) {
		mono_us w = shape_rate_take(&r, t, 1);

		if (w == 0) {
			n++;
			continue;
		}
		t = w;
	}
	cr_assert_eq(n, 3000);
}

Test(shape, rate_per_day_and_config)
{
	struct shape_rate	 r;
	struct config_rate	 c = { 2, 86400 };

	shape_rate_init_cfg(&r, &c, 1);
	cr_assert_eq(shape_rate_take(&r, T0, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0, 1), T0 + 43200 * S);
	c.n = 0;	/* unlimited */
	shape_rate_init_cfg(&r, &c, 1);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(shape_rate_take(&r, T0, 1), 0);
}

Test(shape, rate_edge_cases)
{
	struct shape_rate r;

	shape_rate_init(&r, 10, (uint64_t)S, 5);
	cr_assert_eq(shape_rate_take(&r, T0, 0), 0);
	cr_assert_eq(shape_rate_take(&r, T0, 6), SHAPE_NEVER);
	cr_assert_eq(shape_rate_take(&r, T0, 5), 0);
	cr_assert_eq(shape_rate_take(&r, T0, 5), T0 + 5 * 100000);
	shape_rate_init(&r, 10, (uint64_t)S, 0);	/* burst 0 means 1 */
	cr_assert_eq(r.burst, 1);
	cr_assert_eq(shape_rate_take(&r, T0, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0, 1), T0 + 100000);
	/* Huge rates and times do not overflow. */
	shape_rate_init(&r, 1000000000u, 86400ull * S, 100);
	cr_assert_eq(shape_rate_take(&r, INT64_MAX / 4, 100), 0);
	cr_assert_gt(shape_rate_take(&r, INT64_MAX / 4, 1), INT64_MAX / 4);
}

Test(shape, rate_set_rescales_schedule)
{
	struct shape_rate r;

	shape_rate_init(&r, 10, (uint64_t)S, 1);
	cr_assert_eq(shape_rate_take(&r, T0, 1), 0);	/* tat = T0+100ms */
	shape_rate_set(&r, 5, (uint64_t)S);		/* now 200 ms apart */
	cr_assert_eq(shape_rate_take(&r, T0, 1), T0 + 100000);
	cr_assert_eq(shape_rate_take(&r, T0 + 100000, 1), 0);
	cr_assert_eq(shape_rate_take(&r, T0 + 100000, 1), T0 + 300000);
	shape_rate_set(&r, 0, (uint64_t)S);		/* unlimited */
	cr_assert_eq(shape_rate_take(&r, T0 + 100000, 1), 0);
}

/* Limits from a rate string; defaults for the tuning, or halving cuts. */
static void
ctl_conf2(struct shape_ctl_conf *conf, const char *rate, uint32_t conc,
    bool half)
{
	struct config_shaping cs;

	memset(&cs, 0, sizeof(cs));
	cs.connection_limit = conc;
	cs.adaptive = true;
	cr_assert_eq(config_rate_parse(rate, strlen(rate),
	    &cs.max_message_rate), 0);
	cs.max_connection_rate.per_s = 1;
	shape_ctl_conf_from(conf, &cs);
	if (half)
		conf->decrease_pct = 50;
}

static void
ctl_conf(struct shape_ctl_conf *conf, const char *rate, uint32_t conc)
{
	ctl_conf2(conf, rate, conc, true);
}

Test(shape, conf_from_config)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;

	ctl_conf(&conf, "600/m", 7);
	cr_assert_eq(conf.max_rate_mpd, 10 * SHAPE_MPD_PER_S);
	cr_assert_eq(conf.max_conc, 7);
	cr_assert_eq(conf.burst, 10);
	cr_assert(conf.adaptive);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	cr_assert_eq(c.rate_mpd, 10 * SHAPE_MPD_PER_S);
	cr_assert_eq(c.conc, 7);
	conf.decrease_pct = 100;
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), -EINVAL);
	cr_assert_eq(c.conf.decrease_pct, 50);
}

Test(shape, throttle_burst_cuts_once)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	struct shape_event	 ev;
	char			 line[SHAPE_TEXT_MAX];

	ctl_conf(&conf, "20/s", 10);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	cr_assert_eq(shape_ctl_feedback(&c, T0 + 1000, SHAPE_THROTTLE, 0,
	    &ev), 1);
	cr_assert_eq(ev.reason, SHAPE_R_THROTTLE);
	cr_assert_eq(ev.old_rate_mpd, 20 * SHAPE_MPD_PER_S);
	cr_assert_eq(ev.new_rate_mpd, 10 * SHAPE_MPD_PER_S);
	cr_assert_eq(ev.old_conc, 10);
	cr_assert_eq(ev.new_conc, 5);
	cr_assert_str_eq(shape_event_format(&ev, T0, line, sizeof(line)),
	    "reason=throttle rate=20.000/s->10.000/s conc=10->5");
	/* The rest of the burst, inside the hold-off window: no change. */
	for (int i = 1; i < 50; i++)
		cr_assert_eq(shape_ctl_feedback(&c, T0 + 1000 + i * 1000,
		    SHAPE_THROTTLE, 0, &ev), 0);
	cr_assert_eq(c.rate_mpd, 10 * SHAPE_MPD_PER_S);
	/* After it, a new throttle cuts again, not below the minima. */
	cr_assert_eq(shape_ctl_feedback(&c, T0 + 3 * S, SHAPE_THROTTLE, 0,
	    &ev), 1);
	cr_assert_eq(c.rate_mpd, 5 * SHAPE_MPD_PER_S);
	cr_assert_eq(c.conc, 2);
	for (int i = 0; i < 20; i++)
		shape_ctl_feedback(&c, T0 + (6 + 3 * i) * S, SHAPE_THROTTLE, 0,
		    NULL);
	cr_assert_eq(c.rate_mpd, conf.min_rate_mpd);
	cr_assert_eq(c.conc, 1);
	cr_assert_eq(c.nthrottle, 22);
}

Test(shape, clean_traffic_raises_to_max_only)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	struct shape_event	 ev;
	mono_us			 t = T0;
	int			 nraise = 0;

	ctl_conf(&conf, "20/s", 4);
	shape_ctl_init(&c, &conf, T0);
	shape_ctl_feedback(&c, t, SHAPE_THROTTLE, 0, NULL);	/* 10/s, 2 */
	cr_assert_eq(c.rate_mpd, 10 * SHAPE_MPD_PER_S);
	/* Nothing inside the first increase interval. */
	cr_assert_eq(shape_ctl_feedback(&c, t + 500000, SHAPE_OK, 0, &ev), 0);
	/* 20 msgs/s of clean deliveries for 60 s. */
	for (int i = 1; i <= 1200; i++) {
		t = T0 + i * 50000;
		if (shape_ctl_feedback(&c, t, SHAPE_OK, 0, &ev) == 1) {
			cr_assert_eq(ev.reason, SHAPE_R_RAISE);
			cr_assert_geq(ev.new_rate_mpd, ev.old_rate_mpd);
			cr_assert_geq(ev.new_conc, ev.old_conc);
			nraise++;
		}
	}
	cr_assert_gt(nraise, 2);
	cr_assert_eq(c.rate_mpd, 20 * SHAPE_MPD_PER_S, "never above max");
	cr_assert_eq(c.conc, 4);
	/* At the maxima, OKs are no longer events. */
	cr_assert_eq(shape_ctl_feedback(&c, t + 5 * S, SHAPE_OK, 0, &ev), 0);
}

Test(shape, not_adaptive_ignores_throttles)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;

	ctl_conf(&conf, "20/s", 4);
	conf.adaptive = false;
	shape_ctl_init(&c, &conf, T0);
	cr_assert_eq(shape_ctl_feedback(&c, T0, SHAPE_THROTTLE, 0, NULL), 0);
	cr_assert_eq(c.rate_mpd, 20 * SHAPE_MPD_PER_S);
	cr_assert_eq(shape_ctl_feedback(&c, T0, SHAPE_HINT, 30, NULL), 1);
}

Test(shape, hint_is_honoured)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	struct shape_event	 ev;
	struct shape_explain	 ex;
	char			 text[SHAPE_TEXT_MAX];
	mono_us			 until;

	ctl_conf(&conf, "unlimited", 4);
	shape_ctl_init(&c, &conf, T0);
	cr_assert_eq(shape_ctl_take(&c, T0, 1), 0);
	cr_assert_eq(shape_ctl_feedback(&c, T0, SHAPE_HINT, 120, &ev), 1);
	cr_assert_eq(ev.reason, SHAPE_R_HINT);
	cr_assert_eq(ev.until, T0 + 120 * S);
	cr_assert_str_eq(shape_event_format(&ev, T0, text, sizeof(text)),
	    "reason=hint rate=unlimited->unlimited conc=4->4 nfail=0 "
	    "suspended_s=120.000");
	cr_assert_eq(shape_ctl_take(&c, T0 + S, 1), T0 + 120 * S);
	cr_assert_eq(shape_ctl_conn_take(&c, T0 + S, 0, &until), -EAGAIN);
	cr_assert_eq(until, T0 + 120 * S);
	cr_assert_eq(shape_explain(&c, T0 + 20 * S, 0, &ex, text,
	    sizeof(text)), SHAPE_BIND_HINT);
	cr_assert_eq(ex.until, T0 + 120 * S);
	cr_assert_eq(ex.wait_us, 100 * S);
	cr_assert_str_eq(text, "hint: the site asked to retry later; "
	    "suspended for 100.000 s");
	/* A shorter hint does not shorten; 0 is no hint. */
	cr_assert_eq(shape_ctl_feedback(&c, T0 + S, SHAPE_HINT, 10, &ev), 0);
	cr_assert_eq(shape_ctl_feedback(&c, T0 + S, SHAPE_HINT, 0, &ev), 0);
	cr_assert_eq(shape_ctl_take(&c, T0 + 120 * S - 1, 1), T0 + 120 * S);
	cr_assert_eq(shape_ctl_take(&c, T0 + 120 * S, 1), 0);
	cr_assert_not(shape_ctl_suspended(&c, T0 + 120 * S));
	/* Hints are capped like the classifier's. */
	shape_ctl_feedback(&c, T0, SHAPE_HINT, UINT32_MAX, &ev);
	cr_assert_eq(ev.until, T0 + (mono_us)CLASSIFY_RETRY_MAX_S * S);
}

Test(shape, backoff_grows_caps_and_resets)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	struct shape_event	 ev;
	struct shape_explain	 ex;
	char			 text[SHAPE_TEXT_MAX];
	mono_us			 t = T0, want = 10 * S;

	ctl_conf(&conf, "10/s", 4);
	shape_ctl_init(&c, &conf, T0);
	cr_assert_eq(shape_ctl_feedback(&c, t, SHAPE_CONN_FAIL, 0, &ev), 0);
	cr_assert_eq(shape_ctl_feedback(&c, t, SHAPE_CONN_FAIL, 0, &ev), 0);
	for (int i = 0; i < 12; i++) {
		cr_assert_eq(shape_ctl_feedback(&c, t, SHAPE_CONN_FAIL, 0,
		    &ev), 1);
		cr_assert_eq(ev.reason, SHAPE_R_BACKOFF);
		cr_assert_eq(ev.nfail, (uint32_t)(3 + i));
		cr_assert_eq(ev.until - t, want, "step %d: %lld", i,
		    (long long)(ev.until - t));
		cr_assert_eq(shape_ctl_take(&c, t, 1), ev.until);
		t = ev.until;
		want = want * 2 > 3600 * S ? 3600 * S : want * 2;
	}
	cr_assert_eq(c.backoff_us, 3600 * S, "capped at 1 h");
	t -= 1;
	cr_assert_eq(shape_explain(&c, t, 0, &ex, text, sizeof(text)),
	    SHAPE_BIND_BACKOFF);
	cr_assert_str_eq(text, "backoff: suspended after 14 connection "
	    "failures for 0.000 s");
	/* A connection that works clears it all. */
	cr_assert_eq(shape_ctl_feedback(&c, t, SHAPE_CONN_OK, 0, &ev), 1);
	cr_assert_eq(ev.reason, SHAPE_R_CLEAR);
	cr_assert_eq(c.nfail, 0);
	cr_assert_eq(shape_ctl_take(&c, t, 1), 0);
	cr_assert_eq(shape_ctl_feedback(&c, t, SHAPE_CONN_OK, 0, &ev), 0);
	/* Growth starts from the bottom again; an OK also clears. */
	for (int i = 0; i < 3; i++)
		shape_ctl_feedback(&c, t, SHAPE_CONN_FAIL, 0, &ev);
	cr_assert_eq(ev.until - t, 10 * S);
	cr_assert_eq(shape_ctl_feedback(&c, t + S, SHAPE_OK, 0, &ev), 1);
	cr_assert_eq(ev.reason, SHAPE_R_CLEAR);
	cr_assert_not(shape_ctl_suspended(&c, t + S));
}

Test(shape, conn_take_concurrency_and_rate)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	struct shape_explain	 ex;
	char			 text[SHAPE_TEXT_MAX];
	mono_us			 until;

	ctl_conf(&conf, "unlimited", 2);
	cr_assert_eq(config_rate_parse("6/m", 3, &conf.conn_rate), 0);
	shape_ctl_init(&c, &conf, T0);
	cr_assert_eq(shape_ctl_conn_take(&c, T0, 0, &until), 0);
	cr_assert_eq(shape_ctl_conn_take(&c, T0, 1, &until), -EAGAIN);
	cr_assert_eq(until, T0 + 10 * S);
	cr_assert_eq(shape_ctl_conn_take(&c, T0 + 10 * S, 1, &until), 0);
	cr_assert_eq(shape_ctl_conn_take(&c, T0 + 30 * S, 2, &until), -EBUSY);
	cr_assert_eq(until, 0);
	cr_assert_eq(shape_explain(&c, T0 + 30 * S, 2, &ex, text,
	    sizeof(text)), SHAPE_BIND_CONCURRENCY);
	cr_assert_str_eq(text, "concurrency: all 2 allowed connections busy "
	    "(configured 2); next when one frees");
	cr_assert_eq(shape_explain(&c, T0 + 11 * S, 0, &ex, text,
	    sizeof(text)), SHAPE_BIND_CONN_RATE);
	cr_assert_eq(ex.until, T0 + 20 * S);
	cr_assert_str_eq(text, "connection-rate: 6/m holds the next "
	    "connection for 9.000 s");
	cr_assert_eq(shape_explain(&c, T0 + 30 * S, 1, &ex, text,
	    sizeof(text)), SHAPE_BIND_NONE);
	cr_assert_str_eq(text, "none: may send now (rate unlimited, max "
	    "unlimited; 1/2 connections busy)");
}

Test(shape, explain_rate)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	struct shape_explain	 ex;
	char			 text[SHAPE_TEXT_MAX];

	ctl_conf(&conf, "100/s", 10);
	conf.burst = 1;
	shape_ctl_init(&c, &conf, T0);
	shape_ctl_feedback(&c, T0, SHAPE_THROTTLE, 0, NULL);	/* 50/s */
	cr_assert_eq(shape_ctl_take(&c, T0, 1), 0);
	cr_assert_eq(shape_explain(&c, T0 + 5000, 0, &ex, text,
	    sizeof(text)), SHAPE_BIND_RATE);
	cr_assert_eq(ex.until, T0 + 20000);
	cr_assert_eq(ex.wait_us, 15000);
	cr_assert_eq(ex.rate_mpd, 50 * SHAPE_MPD_PER_S);
	cr_assert_eq(ex.max_rate_mpd, 100 * SHAPE_MPD_PER_S);
	cr_assert_str_eq(text, "rate: 50.000/s (adaptive, max 100.000/s) "
	    "holds the next message for 0.015 s");
	cr_assert_str_eq(shape_bind_name(SHAPE_BIND_RATE), "rate");
	cr_assert_str_eq(shape_bind_name(SHAPE_BIND_CONN_RATE),
	    "connection-rate");
	cr_assert_str_eq(shape_reason_name(SHAPE_R_RAISE), "raise");
}

Test(shape, signal_mapping)
{
	struct classify_result	 cr;
	struct config_shaping	 cs;
	char			 pat[] = "Slow Down Please", *pats[] = { pat };
	uint32_t		 hint;

	memset(&cs, 0, sizeof(cs));
	cs.throttle_patterns = pats;
	cs.nthrottle_patterns = 1;
	cr_assert_eq(shape_signal_of(250, "2.0.0", "ok", NULL, &cs, &hint),
	    SHAPE_OK);
	cr_assert_eq(hint, 0);
	cr_assert_eq(shape_signal_of(421, NULL, "Try again later, rate "
	    "limited", NULL, NULL, NULL), SHAPE_THROTTLE);
	cr_assert_eq(shape_signal_of(451, "4.7.1", "x", NULL, NULL, NULL),
	    SHAPE_THROTTLE);
	cr_assert_eq(shape_signal_of(550, "5.1.1", "no such user", NULL, &cs,
	    NULL), SHAPE_NONE);
	cr_assert_eq(shape_signal_of(450, "4.2.0", "please slow down please "
	    "now", NULL, &cs, NULL), SHAPE_THROTTLE);
	classify_reply(450, "4.2.1", "too many messages, slow down; try again "
	    "in 5 minutes", &cr);
	cr_assert_eq(shape_signal_of(450, "4.2.1", "x", &cr, NULL, &hint),
	    (cr.actions & CLASSIFY_A_SLOW_DOWN) ? SHAPE_THROTTLE : SHAPE_NONE);
	cr_assert_eq(hint, cr.retry_after_s);
	cr_assert_eq(shape_signal_of(451, "4.3.0", "retry in 2 minutes", NULL,
	    NULL, &hint), SHAPE_NONE);
	cr_assert_eq(hint, 120);
}

/*
 * A synthetic receiver that answers 421 to every message over r
 * accepted in the last second (a sliding window), and a sender with an
 * endless backlog: each message holds a connection for lat_us until its
 * reply. The controller must find r on its own (max rate unlimited).
 * Measured over the second half of the run, once settled.
 */
#define SIM_END_S	240
#define SIM_MEASURE_S	120
#define SIM_RMAX	1000
#define SIM_INFLIGHT	256

struct sim_rx {
	mono_us		 acc[SIM_RMAX];	/* ring of accept times */
	size_t		 head, n, r;
};

static bool
sim_rx_accept(struct sim_rx *rx, mono_us now)
{
	while (rx->n > 0 && rx->acc[rx->head] <= now - S) {
		rx->head = (rx->head + 1) % SIM_RMAX;
		rx->n--;
	}
	if (rx->n >= rx->r)
		return false;
	rx->acc[(rx->head + rx->n) % SIM_RMAX] = now;
	rx->n++;
	return true;
}

static void
sim_run2(unsigned r, unsigned r2, mono_us lat_us, uint32_t conc)
{
	static struct sim_rx	 rx;
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	static mono_us		 reply_at[SIM_INFLIGHT];
	static bool		 reply_ok[SIM_INFLIGHT];
	size_t			 ninflight = 0;
	uint64_t		 sent = 0, thr = 0, acc = 0, cuts = 0;
	double			 ratio, tput;

	memset(&rx, 0, sizeof(rx));
	rx.r = r;
	ctl_conf2(&conf, "unlimited", conc, false);
	cr_assert_eq(conf.decrease_pct, 70);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	for (mono_us t = T0; t < T0 + SIM_END_S * S; t += 100) {
		bool measure = t >= T0 + SIM_MEASURE_S * S;

		if (t == T0 + SIM_MEASURE_S / 2 * S)
			rx.r = r2;	/* the receiver changes its limit */

		for (size_t i = 0; i < ninflight;) {
			struct shape_event ev;

			if (reply_at[i] > t) {
				i++;
				continue;
			}
			if (shape_ctl_feedback(&c, t, reply_ok[i] ? SHAPE_OK :
			    SHAPE_THROTTLE, 0, &ev) == 1 &&
			    ev.reason == SHAPE_R_THROTTLE)
				cuts++;
			reply_at[i] = reply_at[ninflight - 1];
			reply_ok[i] = reply_ok[ninflight - 1];
			ninflight--;
		}
		while (ninflight < c.conc && ninflight < SIM_INFLIGHT &&
		    shape_ctl_take(&c, t, 1) == 0) {
			bool ok = sim_rx_accept(&rx, t);

			reply_at[ninflight] = t + lat_us;
			reply_ok[ninflight++] = ok;
			if (measure) {
				sent++;
				thr += !ok;
				acc += ok;
			}
		}
	}
	ratio = (double)thr / (double)sent;
	tput = (double)acc / (SIM_END_S - SIM_MEASURE_S);
	cr_log_info("sim r=%u lat=%lldms: sent=%llu deferred=%.4f "
	    "accepted/s=%.1f cuts=%llu rate=%.1f/s conc=%u", r,
	    (long long)lat_us / 1000, (unsigned long long)sent, ratio, tput,
	    (unsigned long long)cuts, (double)c.rate_mpd / SHAPE_MPD_PER_S,
	    c.conc);
	cr_assert_gt(cuts, 0);
	cr_assert_lt(ratio, 0.05, "deferral ratio %.3f", ratio);
	cr_assert_geq(tput, 0.8 * r2, "throughput %.1f/s", tput);
	cr_assert_leq(tput, 1.0 * r2);
	cr_assert_leq((double)c.rate_mpd / SHAPE_MPD_PER_S, 1.2 * r2);
}

static void
sim_run(unsigned r, mono_us lat_us, uint32_t conc)
{
	sim_run2(r, r, lat_us, conc);
}

Test(shape, controller_settles_under_receiver_limit, .timeout = 20)
{
	sim_run(100, 30000, 20);
}

Test(shape, controller_settles_slow_receiver, .timeout = 20)
{
	sim_run(20, 100000, 10);
}

Test(shape, controller_settles_fast_receiver, .timeout = 20)
{
	sim_run(500, 10000, 50);
}

Test(shape, controller_follows_a_raised_limit, .timeout = 20)
{
	sim_run2(20, 200, 20000, 20);
}

Test(shape, controller_follows_a_lowered_limit, .timeout = 20)
{
	sim_run2(300, 30, 20000, 20);
}

/*
 * A receiver that takes 200 in the first 80 ms and then answers 421:
 * the first cut counts what it took over a second (200/s -> 140/s), not
 * over the 80 ms (2,500/s -> 1,750/s, which kept a live sender in 421s
 * for the whole hold-off window).
 */
Test(shape, first_cut_counts_the_first_second)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;

	ctl_conf2(&conf, "unlimited", 10, false);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	for (int i = 0; i < 200; i++)
		shape_ctl_feedback(&c, T0 + i * 400, SHAPE_OK, 0, NULL);
	cr_assert_eq(shape_ctl_feedback(&c, T0 + 80000, SHAPE_THROTTLE, 0,
	    NULL), 1);
	cr_assert_eq(c.rate_mpd, 140 * SHAPE_MPD_PER_S);
	cr_assert_eq(c.conc, 7);
}

/*
 * Refused attempts are not throughput: a sender pushing 2,000 attempts/s
 * of which the site takes 20/s is cut from the 20/s it got through, not
 * from its own rate or its attempts.
 */
Test(shape, throttles_are_not_throughput)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	int			 i;

	ctl_conf2(&conf, "unlimited", 10, false);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	for (i = 0; i < 100; i++)
		shape_ctl_feedback(&c, T0 + i * 9900, SHAPE_OK, 0, NULL);
	cr_assert_eq(shape_ctl_feedback(&c, T0 + S, SHAPE_THROTTLE, 0, NULL),
	    1);
	cr_assert_eq(c.rate_mpd, 70 * SHAPE_MPD_PER_S);
	/* 2 s of 2,000 attempts/s, one in 100 accepted. */
	for (i = 1; i <= 4000; i++)
		shape_ctl_feedback(&c, T0 + S + i * 500, i % 100 == 0 ?
		    SHAPE_OK : SHAPE_THROTTLE, 0, NULL);
	cr_assert_eq(c.rate_mpd, 70 * SHAPE_MPD_PER_S, "no cut in the hold-off");
	cr_assert_eq(shape_ctl_feedback(&c, T0 + 3 * S + 700,
	    SHAPE_THROTTLE, 0, NULL), 1);
	cr_assert_eq(c.rate_mpd, 14 * SHAPE_MPD_PER_S);
}

/*
 * A sender with too little mail for its rate (2/s of 100/s) is cut from
 * its rate, not from its trickle: what it sends is its demand, not the
 * site's limit (cutting from it collapsed a worker thread that shared a
 * site with a busy one).
 */
Test(shape, app_limited_sender_cut_from_rate)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;

	ctl_conf2(&conf, "100/s", 10, false);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	for (int i = 1; i <= 6; i++)
		shape_ctl_feedback(&c, T0 + i * (S / 2), SHAPE_OK, 0, NULL);
	cr_assert_eq(shape_ctl_feedback(&c, T0 + 3 * S + S / 4,
	    SHAPE_THROTTLE, 0, NULL), 1);
	cr_assert_eq(c.rate_mpd, 70 * SHAPE_MPD_PER_S);
}

/* Adaptive: the burst shrinks with the rate (1/5 s of it); fixed keeps
 * the configured one (1 s at the maximum). */
Test(shape, adaptive_burst_follows_rate)
{
	struct shape_ctl_conf	 conf;
	struct shape_ctl	 c;
	int			 n;

	ctl_conf(&conf, "100/s", 10);
	cr_assert_eq(conf.burst, 100);
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	cr_assert_eq(c.msg.burst, 20);
	shape_ctl_feedback(&c, T0, SHAPE_THROTTLE, 0, NULL);	/* 50/s */
	cr_assert_eq(c.msg.burst, 10);
	for (n = 0; shape_ctl_take(&c, T0 + 60 * S, 1) == 0; n++)
		;
	cr_assert_eq(n, 10);
	conf.adaptive = false;
	cr_assert_eq(shape_ctl_init(&c, &conf, T0), 0);
	for (n = 0; shape_ctl_take(&c, T0 + S, 1) == 0; n++)
		;
	cr_assert_eq(n, 100);
	ctl_conf(&conf, "unlimited", 10);
	cr_assert_eq(conf.burst, 100);
}
