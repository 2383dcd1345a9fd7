#include <criterion/criterion.h>

#include "core/config.h"
#include "out/retry.h"

static struct config *cfg;

static void
cfg_with(uint32_t delay, uint32_t max_delay, uint32_t max_age)
{
	char	err[256];

	cr_assert_eq(config_load_string("", 0, "t", &cfg, err, sizeof(err)), 0);
	cfg->retry_delay_ms = delay;
	cfg->retry_max_delay_ms = max_delay;
	cfg->retry_max_age_ms = max_age;
}

static void
cfg_done(void)
{
	config_free(cfg);
	cfg = NULL;
}

Test(retry, doubles_within_equal_jitter_bounds, .fini = cfg_done)
{
	cfg_with(60000, 3600000, 86400000);

	/* attempt 1: [30 s, 60 s]; 2: [60, 120]; 3: [120, 240] */
	cr_assert_eq(retry_delay_ms(cfg, 1, 0.0, 0), 30000);
	cr_assert_eq(retry_delay_ms(cfg, 1, 0.999999, 0), 59999);
	cr_assert_eq(retry_delay_ms(cfg, 2, 0.0, 0), 60000);
	cr_assert_eq(retry_delay_ms(cfg, 3, 0.5, 0), 180000);
	for (unsigned a = 1; a < 20; a++) {
		int64_t	lo = retry_delay_ms(cfg, a, 0.0, 0);
		int64_t	hi = retry_delay_ms(cfg, a, 0.999999, 0);

		cr_assert(lo <= hi);
		cr_assert(hi <= 3600000, "capped at max_delay");
		if (a > 1)
			cr_assert(lo >= retry_delay_ms(cfg, a - 1, 0.0, 0),
			    "never shrinks");
	}
	/* Far out it sits at the cap's upper half. */
	cr_assert_eq(retry_delay_ms(cfg, 40, 0.0, 0), 1800000);
	cr_assert_eq(retry_delay_ms(cfg, 1000, 0.0, 0), 1800000);
}

Test(retry, hint_wins_when_longer_but_is_capped, .fini = cfg_done)
{
	cfg_with(1000, 600000, 86400000);

	cr_assert_eq(retry_delay_ms(cfg, 1, 0.0, 120), 120000);
	cr_assert_eq(retry_delay_ms(cfg, 1, 0.0, 1), 1000, "shorter hint ignored");
	cr_assert_eq(retry_delay_ms(cfg, 1, 0.0, 99999), 600000);
}

Test(retry, jitter_spreads_a_storm, .fini = cfg_done)
{
	cfg_with(300000, 14400000, 86400000);
	int64_t		min = INT64_MAX, max = 0;

	for (int i = 0; i < 1000; i++) {
		int64_t	d = retry_delay_ms(cfg, 1, i / 1000.0, 0);

		min = d < min ? d : min;
		max = d > max ? d : max;
	}
	cr_assert(max - min > 140000, "1000 retries spread over > 2 min");
}

Test(retry, expiry_by_age, .fini = cfg_done)
{
	cfg_with(1000, 1000, 4u * 86400 * 1000);
	int64_t		start = 1700000000000;

	cr_assert_not(retry_expired(cfg, start, start + 1000));
	cr_assert_not(retry_expired(cfg, start, start + 4ll * 86400000 - 1));
	cr_assert(retry_expired(cfg, start, start + 4ll * 86400000));
	cr_assert_not(retry_expired(cfg, 0, start), "unknown start: never");
}
