/* retry: backoff schedule. See retry.h. */
#include "out/retry.h"

int64_t
retry_delay_ms(const struct config *cfg, unsigned attempts, double r,
    unsigned hint_s)
{
	int64_t	d = cfg->retry_delay_ms, cap = cfg->retry_max_delay_ms;
	int64_t	w;

	if (attempts == 0)
		attempts = 1;
	for (unsigned i = 1; i < attempts && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	if (r < 0)
		r = 0;
	if (r >= 1)
		r = 0.999999;
	w = d / 2 + (int64_t)((double)(d - d / 2) * r);
	if (hint_s > 0) {
		int64_t	h = (int64_t)hint_s * 1000;

		if (h > cap)
			h = cap;
		if (h > w)
			w = h;
	}
	return w;
}

bool
retry_expired(const struct config *cfg, int64_t start_ms, int64_t now_ms)
{
	return start_ms > 0 && now_ms - start_ms >= (int64_t)cfg->retry_max_age_ms;
}
