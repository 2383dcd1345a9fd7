#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "out/fleet.h"
#include "out/schema.h"

Test(fleet, worker_round_trip)
{
	struct fleet_worker	w, p;
	char			v[FLEET_HOST_MAX + 100];

	memset(&w, 0, sizeof(w));
	w.ts_ms = 1795815912959LL;
	w.threads = 8;
	strcpy(w.host, "mx1.example.org");
	w.pid = 4242;
	w.delivered = 123456789012ULL;
	w.held = 77;
	cr_assert_eq(fleet_worker_format(v, sizeof(v), &w), 0);
	cr_assert_str_eq(v, "1795815912959\x1f" "8\x1fmx1.example.org\x1f"
	    "4242\x1f" "123456789012\x1f" "77");
	cr_assert_eq(fleet_worker_parse(v, strlen(v), &p), 0);
	cr_assert_eq(p.ts_ms, w.ts_ms);
	cr_assert_eq(p.threads, 8);
	cr_assert_str_eq(p.host, "mx1.example.org");
	cr_assert_eq(p.pid, 4242);
	cr_assert_eq(p.delivered, 123456789012ULL);
	cr_assert_eq(p.held, 77);
	cr_assert_eq(fleet_worker_format(v, 10, &w), -ENOSPC);
	strcpy(w.host, "a\nb");
	cr_assert_eq(fleet_worker_format(v, sizeof(v), &w), -EINVAL);
}

Test(fleet, worker_parse_rejects)
{
	struct fleet_worker	p;
	static const char *const bad[] = {
		"", "1\x1f" "2\x1fh\x1f" "3\x1f" "4",
		"x\x1f" "2\x1fh\x1f" "3\x1f" "4\x1f" "5",
		"1\x1f" "2\x1f\x1f" "3\x1f" "4\x1f" "5",
		"1\x1f" "2\x1fh\x01\x1f" "3\x1f" "4\x1f" "5",
		"1\x1f" "2\x1fh\x1f-3\x1f" "4\x1f" "5",
		"1\x1f" "2\x1fh\x1f" "3\x1f" "4\x1f" "99999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(fleet_worker_parse(bad[i], strlen(bad[i]), &p),
		    -EINVAL, "accepted #%zu", i);
	/* Later fields are for later versions. */
	cr_assert_eq(fleet_worker_parse("1\x1f" "2\x1fh\x1f" "3\x1f" "4\x1f"
	    "5\x1fnew", 15, &p), 0);
	cr_assert_eq(p.held, 5);
}

Test(fleet, worker_liveness)
{
	struct fleet_worker	w = { .ts_ms = 100000 };

	cr_assert(fleet_worker_live(&w, 100000));
	cr_assert(fleet_worker_live(&w, 100000 + RM_WORKER_LIVE_MS));
	cr_assert_not(fleet_worker_live(&w, 100001 + RM_WORKER_LIVE_MS));
}

Test(fleet, parse_time)
{
	int64_t	ms;

	cr_assert_eq(fleet_parse_time("2026-12-01T09:00:00Z", &ms), 0);
	cr_assert_eq(ms, 1796115600000LL);
	cr_assert_eq(fleet_parse_time("1796115600", &ms), 0);
	cr_assert_eq(ms, 1796115600000LL);
	cr_assert_eq(fleet_parse_time("2024-02-29 23:59:59Z", &ms), 0);
	cr_assert_eq(ms, 1709251199000LL);
	cr_assert_eq(fleet_parse_time("1970-01-01T00:00:00Z", &ms), 0);
	cr_assert_eq(ms, 0);
	static const char *const bad[] = {
		"", "2026-12-01", "2026-12-01T09:00:00", "2026-12-01T09:00:00+01:00",
		"2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
		"2026-12-01T24:00:00Z", "1969-12-31T23:59:59Z", "-5", "12a",
		"99999999999999999999", "2026-12-01T09:00:60Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(fleet_parse_time(bad[i], &ms), -EINVAL,
		    "accepted '%s'", bad[i]);
}

Test(fleet, parse_and_format_rate)
{
	double	r;
	char	s[32];

	cr_assert_eq(fleet_parse_rate("10/s", &r), 0);
	cr_assert_float_eq(r, 10.0, 1e-9);
	cr_assert_eq(fleet_parse_rate("90/m", &r), 0);
	cr_assert_float_eq(r, 1.5, 1e-9);
	cr_assert_eq(fleet_format_rate(s, sizeof(s), r), 0);
	cr_assert_str_eq(s, "1.5");
	cr_assert_eq(fleet_parse_rate("1/h", &r), 0);
	cr_assert_eq(fleet_format_rate(s, sizeof(s), r), 0);
	cr_assert_str_eq(s, "0.000277777778");
	cr_assert_eq(fleet_parse_rate("1000000/s", &r), 0);
	cr_assert_eq(fleet_format_rate(s, sizeof(s), r), 0);
	cr_assert_str_eq(s, "1000000");
	static const char *const bad[] = {
		"", "10", "0/s", "-1/s", "10/d", "10/", "/s", "1.5/s",
		"1000001/s", "10/ss", "10 /s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(fleet_parse_rate(bad[i], &r), -EINVAL,
		    "accepted '%s'", bad[i]);
}
