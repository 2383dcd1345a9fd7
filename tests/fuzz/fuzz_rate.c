/*
 * fuzz_rate: config_rate_parse (shaping rates "100/s", "unlimited") on
 * arbitrary bytes. On success the rate must be in range, format back to
 * the same text, and drive the GCRA limiter without overflow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "out/shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_rate	 r = { 0, 0 }, r2;
	struct shape_rate	 b;
	char			 out[CONFIG_RATE_STR_MAX];
	mono_us			 t = 1, w;

	if (config_rate_parse((const char *)data, size, &r) != 0)
		return 0;
	if (r.n > CONFIG_RATE_N_MAX || (r.per_s != 1 && r.per_s != 60 &&
	    r.per_s != 3600 && r.per_s != 86400))
		abort();
	config_rate_format(&r, out, sizeof(out));
	/* Same text, unless the input had leading zeros ("007/s"). */
	if (data[0] != '0' && (strlen(out) != size ||
	    memcmp(out, data, size) != 0))
		abort();
	if (config_rate_parse(out, strlen(out), &r2) != 0 || r2.n != r.n ||
	    r2.per_s != r.per_s)
		abort();
	/* Any valid rate: taking as fast as allowed moves time forward. */
	shape_rate_init_cfg(&b, &r, 3);
	for (int i = 0; i < 16; i++) {
		if ((w = shape_rate_take(&b, t, 1)) != 0) {
			if (w <= t)
				abort();
			t = w;
		}
	}
	if (shape_mpd_of(&r) / 1000 / 86400 > r.n)
		abort();
	return 0;
}
