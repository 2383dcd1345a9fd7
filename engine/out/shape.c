/*
 * shape: GCRA limiter and AIMD controller. See shape.h.
 *
 * The limiter works in units of 1/n microsecond, where one unit of the
 * rate costs per_us of them: a rate of n per per_us then has an exact
 * integer emission interval, whatever n is. Products need up to ~100 bits
 * (times ~2^50 us x n up to ~2^57), hence the 128-bit intermediates.
 *
 * Why the controller cuts from min(rate, measured throughput): a rate far
 * above what the site actually gets (because concurrency or the receiver
 * is the real limit) would otherwise need several cuts, each a hold-off
 * window of 421s, before it bites.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/mono.h"
#include "mail/classify.h"

#include "out/shape.h"

__extension__ typedef __int128 shape_i128;

#define SHAPE_US	((mono_us)1000000)
#define SHAPE_OBS_US	SHAPE_US	/* throughput estimate window */
#define SHAPE_OBS_MIN_US (SHAPE_US / 100)	/* shortest partial window */
#define SHAPE_BURST_DIV	5	/* adaptive burst: 1/5 s at the rate */
#define SHAPE_RAISE_MAX_K 10	/* raises one late OK may catch up */
#define SHAPE_BURST_MAX	100	/* conf.burst cap (1 s at max rate) */

static shape_i128
shape_tat(const struct shape_rate *r)
{
	return (shape_i128)r->tat_us * (shape_i128)r->n +
	    (shape_i128)r->tat_frac;
}

static void
shape_tat_store(struct shape_rate *r, shape_i128 t)
{
	shape_i128 n = (shape_i128)r->n;

	if (t < 0)
		t = 0;
	r->tat_us = (mono_us)(t / n);
	r->tat_frac = (uint64_t)(t % n);
}

void
shape_rate_init(struct shape_rate *r, uint64_t n, uint64_t per_us,
    uint32_t burst)
{
	memset(r, 0, sizeof(*r));
	r->n = per_us == 0 ? 0 : n;
	r->per_us = per_us;
	r->burst = burst == 0 ? 1 : burst;
}

void
shape_rate_init_cfg(struct shape_rate *r, const struct config_rate *c,
    uint32_t burst)
{
	shape_rate_init(r, c->n, (uint64_t)c->per_s * SHAPE_US, burst);
}

void
shape_rate_set(struct shape_rate *r, uint64_t n, uint64_t per_us)
{
	shape_i128 frac;

	if (per_us == 0)
		n = 0;
	if (r->n == 0 || n == 0) {
		/* From or to unlimited: nothing owed, the bucket is full. */
		r->tat_us = 0;
		r->tat_frac = 0;
	} else {
		/* tat_frac/old n of a us is frac/new n. */
		frac = (shape_i128)r->tat_frac * (shape_i128)n /
		    (shape_i128)r->n;
		r->tat_frac = (uint64_t)frac;
	}
	r->n = n;
	r->per_us = per_us;
}

/* When k units are allowed: 0 = now, else the time. */
static mono_us
shape_rate_when(const struct shape_rate *r, mono_us now, uint32_t k,
    shape_i128 *newtat)
{
	shape_i128	 n, tat, nows, base, nt, t;

	if (k == 0 || r->n == 0)
		return 0;
	if (k > r->burst)
		return SHAPE_NEVER;
	n = (shape_i128)r->n;
	tat = shape_tat(r);
	nows = (shape_i128)now * n;
	base = tat > nows ? tat : nows;
	nt = base + (shape_i128)k * (shape_i128)r->per_us;
	if (nt - nows <= (shape_i128)r->burst * (shape_i128)r->per_us) {
		if (newtat != NULL)
			*newtat = nt;
		return 0;
	}
	/* Smallest t with tat + k*per - burst*per <= t*n (tat > now here). */
	t = tat - ((shape_i128)r->burst - (shape_i128)k) *
	    (shape_i128)r->per_us;
	t = (t + n - 1) / n;
	if (t <= (shape_i128)now)
		t = (shape_i128)now + 1;
	if (t >= (shape_i128)SHAPE_NEVER)
		return SHAPE_NEVER - 1;
	return (mono_us)t;
}

mono_us
shape_rate_take(struct shape_rate *r, mono_us now, uint32_t n)
{
	shape_i128	 nt = 0;
	mono_us		 w;

	if ((w = shape_rate_when(r, now, n, &nt)) == 0 && r->n != 0 && n > 0)
		shape_tat_store(r, nt);
	return w;
}

mono_us
shape_rate_peek(const struct shape_rate *r, mono_us now, uint32_t n)
{
	return shape_rate_when(r, now, n, NULL);
}

uint64_t
shape_mpd_of(const struct config_rate *r)
{
	if (r->n == 0 || r->per_s == 0)
		return 0;
	return (uint64_t)r->n * (86400u / r->per_s) * 1000u;
}

void
shape_ctl_conf_from(struct shape_ctl_conf *conf,
    const struct config_shaping *cs)
{
	uint64_t per_s;

	memset(conf, 0, sizeof(*conf));
	conf->max_rate_mpd = shape_mpd_of(&cs->max_message_rate);
	conf->min_rate_mpd = 1440ull * 1000;	/* 1/m */
	if (conf->max_rate_mpd != 0 && conf->min_rate_mpd > conf->max_rate_mpd)
		conf->min_rate_mpd = conf->max_rate_mpd;
	conf->max_conc = cs->connection_limit > 0 ? cs->connection_limit : 1;
	conf->min_conc = 1;
	per_s = conf->max_rate_mpd / SHAPE_MPD_PER_S;
	/* Unlimited: the cap, for the rates the controller finds. */
	if (conf->max_rate_mpd == 0)
		per_s = SHAPE_BURST_MAX;
	conf->burst = per_s < 1 ? 1 : per_s > SHAPE_BURST_MAX ?
	    SHAPE_BURST_MAX : (uint32_t)per_s;
	conf->conn_rate = cs->max_connection_rate;
	conf->conn_burst = 1;
	conf->adaptive = cs->adaptive;
	conf->decrease_pct = 70;
	conf->holdoff_us = 2 * SHAPE_US;
	conf->increase_us = SHAPE_US;
	conf->increase_pct = 2;
	conf->recover_pct = 90;
	conf->fail_threshold = 3;
	conf->backoff_min_us = 10 * SHAPE_US;
	conf->backoff_max_us = 3600 * SHAPE_US;
}

/*
 * The message bucket follows rate_mpd (mpd: per 86400e3 s, in us). With
 * adaptive, so does its burst: SHAPE_BURST_DIV of a second at the
 * current rate, 1..conf.burst. A site cut to 10/s must not take the
 * 100 at once that its configured maximum allowed, and a rate found
 * without a configured maximum (conf.burst 100) must still carry over a
 * late wake-up of the caller's loop instead of losing those slots.
 */
static void
shape_ctl_apply_rate(struct shape_ctl *c)
{
	uint64_t	 b;

	shape_rate_set(&c->msg, c->rate_mpd, 86400ull * 1000 * SHAPE_US);
	if (!c->conf.adaptive || c->rate_mpd == 0) {
		c->msg.burst = c->conf.burst;
		return;
	}
	b = c->rate_mpd / SHAPE_MPD_PER_S / SHAPE_BURST_DIV;
	if (b > c->conf.burst)
		b = c->conf.burst;
	c->msg.burst = b < 1 ? 1 : (uint32_t)b;
}

int
shape_ctl_init(struct shape_ctl *c, const struct shape_ctl_conf *conf,
    mono_us now)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	c->conf = *conf;
	if (c->conf.max_conc == 0) {
		c->conf.max_conc = 1;
		rc = -EINVAL;
	}
	if (c->conf.min_conc == 0 || c->conf.min_conc > c->conf.max_conc) {
		c->conf.min_conc = c->conf.min_conc == 0 ? 1 :
		    c->conf.max_conc;
		rc = -EINVAL;
	}
	if (c->conf.max_rate_mpd != 0 &&
	    c->conf.min_rate_mpd > c->conf.max_rate_mpd) {
		c->conf.min_rate_mpd = c->conf.max_rate_mpd;
		rc = -EINVAL;
	}
	if (c->conf.min_rate_mpd == 0)
		c->conf.min_rate_mpd = 1;
	if (c->conf.decrease_pct == 0 || c->conf.decrease_pct > 99) {
		c->conf.decrease_pct = 50;
		rc = -EINVAL;
	}
	if (c->conf.fail_threshold == 0)
		c->conf.fail_threshold = 1;
	if (c->conf.backoff_min_us <= 0)
		c->conf.backoff_min_us = 1;
	if (c->conf.backoff_max_us < c->conf.backoff_min_us)
		c->conf.backoff_max_us = c->conf.backoff_min_us;
	c->rate_mpd = c->conf.max_rate_mpd;
	c->conc = c->conf.max_conc;
	shape_rate_init(&c->msg, 0, 0, c->conf.burst);
	shape_ctl_apply_rate(c);
	shape_rate_init_cfg(&c->conn, &c->conf.conn_rate, c->conf.conn_burst);
	c->obs_start = now;
	c->last_raise = c->last_conc_raise = now;
	return rc;
}

static void
shape_ev_begin(const struct shape_ctl *c, struct shape_event *ev,
    enum shape_reason r)
{
	memset(ev, 0, sizeof(*ev));
	ev->reason = r;
	ev->old_rate_mpd = ev->new_rate_mpd = c->rate_mpd;
	ev->old_conc = ev->new_conc = c->conc;
	ev->nfail = c->nfail;
}

static void
shape_ev_end(const struct shape_ctl *c, struct shape_event *ev)
{
	ev->new_rate_mpd = c->rate_mpd;
	ev->new_conc = c->conc;
	ev->nfail = c->nfail;
}

/*
 * Count one message outcome towards the estimates: every outcome is an
 * attempt, only an accepted one is throughput. Windows close on any
 * outcome once a second has passed.
 */
static void
shape_obs(struct shape_ctl *c, mono_us now, bool ok)
{
	mono_us el = now - c->obs_start;

	c->obs_att_n++;
	if (ok)
		c->obs_n++;
	if (el >= SHAPE_OBS_US) {
		c->obs_mpd = (uint64_t)((shape_i128)c->obs_n *
		    (shape_i128)SHAPE_MPD_PER_S * SHAPE_US / el);
		c->obs_att_mpd = (uint64_t)((shape_i128)c->obs_att_n *
		    (shape_i128)SHAPE_MPD_PER_S * SHAPE_US / el);
		c->obs_full = true;
		c->obs_start = now;
		c->obs_n = 0;
		c->obs_att_n = 0;
	}
}

/*
 * Measured throughput (accepted messages): the last window, else the
 * current partial one.
 */
static uint64_t
shape_obs_mpd(const struct shape_ctl *c, mono_us now)
{
	mono_us el = now - c->obs_start;

	if (c->obs_full)
		return c->obs_mpd;
	if (c->obs_n == 0)
		return 0;
	/*
	 * Within the first window: what was accepted per second so far,
	 * i.e. counted over at least a second. Receivers limit per time
	 * window, so the messages they took before the first 421 are their
	 * allowance, not a rate: 200 accepted in the first 80 ms against a
	 * 200/s limit must not read as 2,500/s (seen live: the cut to
	 * 0.7 x 2,500/s then ran a hold-off window of 421s, 3,600 of them).
	 */
	if (el < SHAPE_OBS_US)
		el = SHAPE_OBS_US;
	return (uint64_t)((shape_i128)c->obs_n * (shape_i128)SHAPE_MPD_PER_S *
	    SHAPE_US / el);
}

/* The attempt rate: the last window, else the partial one as it is. */
static uint64_t
shape_att_mpd(const struct shape_ctl *c, mono_us now)
{
	mono_us el = now - c->obs_start;

	if (c->obs_full)
		return c->obs_att_mpd;
	if (el < SHAPE_OBS_MIN_US)
		el = SHAPE_OBS_MIN_US;
	return (uint64_t)((shape_i128)c->obs_att_n *
	    (shape_i128)SHAPE_MPD_PER_S * SHAPE_US / el);
}

/*
 * The rate a cut starts from. Unlimited: what the site accepted (nothing
 * else is known). Otherwise the current rate, or what was accepted when
 * that is lower and the sender was pushing its rate (attempts at >= 3/4
 * of it): then the shortfall is the receiver's. A sender with too
 * little mail for its rate measures its demand, not the site's limit;
 * cutting from that would collapse it (seen live with two worker
 * threads sharing a site: the thread with few messages was cut from its
 * own trickle to 0.02/s and then needed a minute per raise).
 */
static uint64_t
shape_cut_base(const struct shape_ctl *c, mono_us now)
{
	uint64_t	obs = shape_obs_mpd(c, now), rate = c->rate_mpd;

	if (rate == 0 && obs == 0 && !c->obs_full) {
		/*
		 * Unlimited and refused before anything was accepted: the
		 * attempts per second so far (over at least a second), not
		 * the floor. A worker thread whose first message meets a
		 * site another thread already fills would otherwise start
		 * at 1.4/m and need minutes to climb back.
		 */
		mono_us el = now - c->obs_start;

		if (el < SHAPE_OBS_US)
			el = SHAPE_OBS_US;
		return (uint64_t)((shape_i128)c->obs_att_n *
		    (shape_i128)SHAPE_MPD_PER_S * SHAPE_US / el);
	}
	if (rate == 0)
		return obs;
	if (obs != 0 && obs < rate &&
	    (shape_i128)shape_att_mpd(c, now) * 4 >= (shape_i128)rate * 3)
		return obs;
	return rate;
}

static int
shape_ctl_cut(struct shape_ctl *c, mono_us now, struct shape_event *ev)
{
	uint64_t	 base = shape_cut_base(c, now);
	uint32_t	 conc;

	c->hold_until = now + c->conf.holdoff_us;
	c->nclean = 0;
	c->last_raise = c->last_conc_raise = now;
	c->nthrottle++;
	if (base == 0)		/* unlimited and nothing measured yet */
		base = c->conf.min_rate_mpd * 2;
	shape_ev_begin(c, ev, SHAPE_R_THROTTLE);
	c->ref_mpd = base;
	c->rate_mpd = (uint64_t)((shape_i128)base * c->conf.decrease_pct / 100);
	if (c->rate_mpd < c->conf.min_rate_mpd)
		c->rate_mpd = c->conf.min_rate_mpd;
	conc = (uint32_t)((uint64_t)c->conc * c->conf.decrease_pct / 100);
	c->conc = conc < c->conf.min_conc ? c->conf.min_conc : conc;
	shape_ctl_apply_rate(c);
	shape_ev_end(c, ev);
	return 1;
}

static int
shape_ctl_raise(struct shape_ctl *c, mono_us now, struct shape_event *ev)
{
	uint64_t	 ref, step, max = c->conf.max_rate_mpd, obs, k;
	bool		 changed = false;

	shape_ev_begin(c, ev, SHAPE_R_RAISE);
	if (now - c->last_raise >= c->conf.increase_us && c->rate_mpd != 0 &&
	    (max == 0 || c->rate_mpd < max)) {
		obs = shape_obs_mpd(c, now);
		/*
		 * Not while the sender does not use 3/4 of the rate it has
		 * (too little mail for the site): a raise would only be
		 * untested headroom.
		 */
		if (obs * 4 >= c->rate_mpd * 3) {
			/*
			 * One raise per increase_us that passed, up to
			 * SHAPE_RAISE_MAX_K: below 1/s the OKs that trigger
			 * raises come seconds apart, and a per-OK step would
			 * keep a low rate low for minutes.
			 */
			k = (uint64_t)((now - c->last_raise) /
			    (c->conf.increase_us > 0 ? c->conf.increase_us :
			    1));
			if (k > SHAPE_RAISE_MAX_K)
				k = SHAPE_RAISE_MAX_K;
			for (; k > 0 && (max == 0 || c->rate_mpd < max); k--) {
				ref = c->ref_mpd != 0 ? c->ref_mpd : max;
				step = ref / 100 * c->conf.increase_pct;
				if (c->ref_mpd != 0 && c->rate_mpd <
				    c->ref_mpd / 100 * c->conf.recover_pct)
					step *= 4;
				/*
				 * Past the rate of the last cut, probe faster
				 * the longer it holds (CUBIC's convex region),
				 * so a site whose limit went up is not
				 * climbed at 2 %/s.
				 */
				if (c->ref_mpd != 0 && c->rate_mpd > c->ref_mpd)
					step += (c->rate_mpd - c->ref_mpd) / 4;
				if (step == 0)
					step = 1;
				c->rate_mpd += step;
				if (max != 0 && c->rate_mpd > max)
					c->rate_mpd = max;
			}
			c->last_raise = now;
			shape_ctl_apply_rate(c);
			changed = true;
		}
	}
	if (now - c->last_conc_raise >= c->conf.increase_us &&
	    c->conc < c->conf.max_conc) {
		c->conc++;
		c->last_conc_raise = now;
		changed = true;
	}
	if (!changed)
		return 0;
	shape_ev_end(c, ev);
	return 1;
}

static int
shape_ctl_clear(struct shape_ctl *c, struct shape_event *ev)
{
	bool was = c->backoff_until != 0 || c->nfail >= c->conf.fail_threshold;

	shape_ev_begin(c, ev, SHAPE_R_CLEAR);
	c->nfail = 0;
	c->backoff_us = 0;
	c->backoff_until = 0;
	shape_ev_end(c, ev);
	return was ? 1 : 0;
}

int
shape_ctl_feedback(struct shape_ctl *c, mono_us now, enum shape_signal sig,
    uint32_t retry_after_s, struct shape_event *ev)
{
	struct shape_event	 tmp, tmp2;
	mono_us			 until;
	int			 rc;

	if (ev == NULL)
		ev = &tmp;
	switch (sig) {
	case SHAPE_NONE:
		return 0;
	case SHAPE_OK:
		c->nok++;
		shape_obs(c, now, true);
		c->nclean++;
		/* A clean delivery also proves the site reachable. */
		rc = shape_ctl_clear(c, ev);
		if (!c->conf.adaptive)
			return rc;
		if (rc == 0)
			return shape_ctl_raise(c, now, ev);
		if (shape_ctl_raise(c, now, &tmp2) == 1) {
			/* Report the clear, carrying the raised values. */
			ev->new_rate_mpd = tmp2.new_rate_mpd;
			ev->new_conc = tmp2.new_conc;
		}
		return 1;
	case SHAPE_THROTTLE:
		/*
		 * Not counted as throughput: what a site refuses is not what
		 * it takes. A sender far above the limit would otherwise
		 * measure its own refused attempts and cut from them (seen
		 * live: from 2,400/s of 421s to 1,900/s, against a 200/s
		 * receiver). It is an attempt, though.
		 */
		shape_obs(c, now, false);
		c->nclean = 0;
		if (!c->conf.adaptive || now < c->hold_until)
			return 0;
		return shape_ctl_cut(c, now, ev);
	case SHAPE_HINT:
		if (retry_after_s == 0)
			return 0;
		if (retry_after_s > CLASSIFY_RETRY_MAX_S)
			retry_after_s = CLASSIFY_RETRY_MAX_S;
		until = now + (mono_us)retry_after_s * SHAPE_US;
		if (until <= c->hint_until)
			return 0;
		shape_ev_begin(c, ev, SHAPE_R_HINT);
		c->hint_until = until;
		ev->until = until;
		return 1;
	case SHAPE_CONN_FAIL:
		if (c->nfail < UINT32_MAX)
			c->nfail++;
		if (c->nfail < c->conf.fail_threshold)
			return 0;
		if (c->backoff_us == 0)
			c->backoff_us = c->conf.backoff_min_us;
		else if (c->backoff_us < c->conf.backoff_max_us / 2)
			c->backoff_us *= 2;
		else
			c->backoff_us = c->conf.backoff_max_us;
		shape_ev_begin(c, ev, SHAPE_R_BACKOFF);
		c->backoff_until = now + c->backoff_us;
		ev->until = c->backoff_until;
		ev->nfail = c->nfail;
		return 1;
	case SHAPE_CONN_OK:
		return shape_ctl_clear(c, ev);
	}
	return 0;
}

/* The later of the two suspensions still running at now, else 0. */
static mono_us
shape_susp(const struct shape_ctl *c, mono_us now, enum shape_bind *why)
{
	mono_us t = 0;

	if (c->backoff_until > now) {
		t = c->backoff_until;
		*why = SHAPE_BIND_BACKOFF;
	}
	if (c->hint_until > now && c->hint_until >= t) {
		t = c->hint_until;
		*why = SHAPE_BIND_HINT;
	}
	return t;
}

bool
shape_ctl_suspended(const struct shape_ctl *c, mono_us now)
{
	enum shape_bind b = SHAPE_BIND_NONE;

	return shape_susp(c, now, &b) != 0;
}

mono_us
shape_ctl_take(struct shape_ctl *c, mono_us now, uint32_t n)
{
	enum shape_bind	 b = SHAPE_BIND_NONE;
	mono_us		 t;

	if ((t = shape_susp(c, now, &b)) != 0)
		return t;
	return shape_rate_take(&c->msg, now, n);
}

int
shape_ctl_conn_take(struct shape_ctl *c, mono_us now, uint32_t nbusy,
    mono_us *until)
{
	enum shape_bind	 b = SHAPE_BIND_NONE;
	mono_us		 t;

	*until = 0;
	if ((t = shape_susp(c, now, &b)) != 0) {
		*until = t;
		return -EAGAIN;
	}
	if (nbusy >= c->conc)
		return -EBUSY;
	if ((t = shape_rate_take(&c->conn, now, 1)) != 0) {
		*until = t;
		return -EAGAIN;
	}
	return 0;
}

const char *
shape_bind_name(enum shape_bind b)
{
	switch (b) {
	case SHAPE_BIND_NONE:
		return "none";
	case SHAPE_BIND_RATE:
		return "rate";
	case SHAPE_BIND_CONN_RATE:
		return "connection-rate";
	case SHAPE_BIND_CONCURRENCY:
		return "concurrency";
	case SHAPE_BIND_BACKOFF:
		return "backoff";
	case SHAPE_BIND_HINT:
		return "hint";
	}
	return "none";
}

const char *
shape_reason_name(enum shape_reason r)
{
	switch (r) {
	case SHAPE_R_THROTTLE:
		return "throttle";
	case SHAPE_R_RAISE:
		return "raise";
	case SHAPE_R_HINT:
		return "hint";
	case SHAPE_R_BACKOFF:
		return "backoff";
	case SHAPE_R_CLEAR:
		return "clear";
	}
	return "unknown";
}

char *
shape_rate_str(uint64_t mpd, char *out, size_t outsz)
{
	uint64_t whole, frac;

	if (outsz == 0)
		return out;
	if (mpd == 0) {
		snprintf(out, outsz, "unlimited");
		return out;
	}
	/* msgs/s with 3 decimals, rounded: mpd / 86400000. */
	whole = (mpd * 1000 + SHAPE_MPD_PER_S / 2) / SHAPE_MPD_PER_S;
	frac = whole % 1000;
	whole /= 1000;
	snprintf(out, outsz, "%" PRIu64 ".%03" PRIu64 "/s", whole, frac);
	return out;
}

/* "12.345 s" with millisecond precision. */
static void
shape_secs(mono_us us, char *out, size_t outsz)
{
	if (us < 0)
		us = 0;
	snprintf(out, outsz, "%" PRId64 ".%03" PRId64 " s", us / SHAPE_US,
	    (us % SHAPE_US) / 1000);
}

char *
shape_event_format(const struct shape_event *ev, mono_us now, char *out,
    size_t outsz)
{
	char	a[32], b[32], w[32];
	int	n;

	if (outsz == 0)
		return out;
	n = snprintf(out, outsz, "reason=%s rate=%s->%s conc=%" PRIu32 "->%"
	    PRIu32, shape_reason_name(ev->reason),
	    shape_rate_str(ev->old_rate_mpd, a, sizeof(a)),
	    shape_rate_str(ev->new_rate_mpd, b, sizeof(b)), ev->old_conc,
	    ev->new_conc);
	if (n < 0 || (size_t)n >= outsz)
		return out;
	if (ev->reason == SHAPE_R_HINT || ev->reason == SHAPE_R_BACKOFF) {
		shape_secs(ev->until - now, w, sizeof(w));
		w[strlen(w) - 2] = '\0';	/* drop " s" */
		snprintf(out + n, outsz - (size_t)n, " nfail=%" PRIu32
		    " suspended_s=%s", ev->nfail, w);
	}
	return out;
}

enum shape_bind
shape_explain(const struct shape_ctl *c, mono_us now, uint32_t nbusy,
    struct shape_explain *out, char *text, size_t textsz)
{
	enum shape_bind	 b = SHAPE_BIND_NONE;
	mono_us		 t;
	char		 r[32], m[32], w[32];

	memset(out, 0, sizeof(*out));
	out->rate_mpd = c->rate_mpd;
	out->max_rate_mpd = c->conf.max_rate_mpd;
	out->conc = c->conc;
	out->max_conc = c->conf.max_conc;
	out->nbusy = nbusy;
	out->nfail = c->nfail;
	out->adaptive = c->conf.adaptive;
	if ((t = shape_susp(c, now, &b)) == 0) {
		if ((t = shape_rate_peek(&c->msg, now, 1)) != 0)
			b = SHAPE_BIND_RATE;
		else if (nbusy >= c->conc)
			b = SHAPE_BIND_CONCURRENCY;
		else if (nbusy == 0 &&
		    (t = shape_rate_peek(&c->conn, now, 1)) != 0)
			b = SHAPE_BIND_CONN_RATE;
	}
	out->bind = b;
	out->until = t;
	out->wait_us = t > now ? t - now : 0;
	if (text == NULL || textsz == 0)
		return b;
	shape_rate_str(c->rate_mpd, r, sizeof(r));
	shape_rate_str(c->conf.max_rate_mpd, m, sizeof(m));
	shape_secs(out->wait_us, w, sizeof(w));
	switch (b) {
	case SHAPE_BIND_NONE:
		snprintf(text, textsz, "none: may send now (rate %s, max %s; "
		    "%" PRIu32 "/%" PRIu32 " connections busy)", r, m, nbusy,
		    c->conc);
		break;
	case SHAPE_BIND_RATE:
		snprintf(text, textsz, "rate: %s (%s, max %s) holds the next "
		    "message for %s", r, c->conf.adaptive ? "adaptive" :
		    "fixed", m, w);
		break;
	case SHAPE_BIND_CONN_RATE:
		snprintf(text, textsz, "connection-rate: %" PRIu32 "/%s "
		    "holds the next connection for %s", c->conf.conn_rate.n,
		    c->conf.conn_rate.per_s == 86400 ? "d" :
		    c->conf.conn_rate.per_s == 3600 ? "h" :
		    c->conf.conn_rate.per_s == 60 ? "m" : "s", w);
		break;
	case SHAPE_BIND_CONCURRENCY:
		snprintf(text, textsz, "concurrency: all %" PRIu32 " allowed "
		    "connections busy (configured %" PRIu32 "); next when one "
		    "frees", c->conc, c->conf.max_conc);
		break;
	case SHAPE_BIND_BACKOFF:
		snprintf(text, textsz, "backoff: suspended after %" PRIu32
		    " connection failures for %s", c->nfail, w);
		break;
	case SHAPE_BIND_HINT:
		snprintf(text, textsz, "hint: the site asked to retry later; "
		    "suspended for %s", w);
		break;
	}
	return b;
}

/* ASCII case-insensitive substring search, bounded by the pattern. */
static bool
shape_has(const char *text, const char *pat)
{
	size_t pl = strlen(pat);

	if (pl == 0)
		return false;
	for (const char *p = text; *p != '\0'; p++)
		if (strncasecmp(p, pat, pl) == 0)
			return true;
	return false;
}

enum shape_signal
shape_signal_of(int code, const char *esc, const char *text,
    const struct classify_result *cr, const struct config_shaping *cs,
    uint32_t *retry_after_s)
{
	enum shape_signal s = SHAPE_NONE;

	if (retry_after_s != NULL) {
		*retry_after_s = 0;
		if (cr != NULL && cr->retry_after_s > 0)
			*retry_after_s = cr->retry_after_s;
		else if (text != NULL && code >= 400)
			*retry_after_s = classify_retry_hint(text);
	}
	if (code >= 200 && code < 300)
		return SHAPE_OK;
	if (code == 421 || (code >= 400 && code < 500 && esc != NULL &&
	    strncmp(esc, "4.7.", 4) == 0))
		s = SHAPE_THROTTLE;
	else if (cr != NULL && (cr->actions & CLASSIFY_A_SLOW_DOWN))
		s = SHAPE_THROTTLE;
	else if (cs != NULL && text != NULL && code >= 400)
		for (size_t i = 0; i < cs->nthrottle_patterns; i++)
			if (shape_has(text, cs->throttle_patterns[i])) {
				s = SHAPE_THROTTLE;
				break;
			}
	return s;
}
