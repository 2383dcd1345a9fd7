/* fleet: heartbeat, start time and rate formats. See fleet.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "out/fleet.h"
#include "out/schema.h"

/* Decimal digits s[0..len) into *out (no sign, no overflow). */
static int
fleet_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t	v = 0;

	if (len == 0 || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned	d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
fleet_worker_parse(const char *v, size_t len, struct fleet_worker *w)
{
	const char	*f[6], *end = v + len, *p = v;
	size_t		 fl[6];
	uint64_t	 n;
	int		 nf = 0;

	if (v == NULL)
		return -EINVAL;
	memset(w, 0, sizeof(*w));
	while (nf < 6) {
		const char	*q = memchr(p, RM_FS, (size_t)(end - p));

		f[nf] = p;
		fl[nf] = (size_t)((q ? q : end) - p);
		nf++;
		if (q == NULL)
			break;
		p = q + 1;
	}
	if (nf < 6)
		return -EINVAL;
	if (fleet_u64(f[0], fl[0], &n) != 0 || n > INT64_MAX)
		return -EINVAL;
	w->ts_ms = (int64_t)n;
	if (fleet_u64(f[1], fl[1], &n) != 0 || n > 100000)
		return -EINVAL;
	w->threads = (unsigned)n;
	if (fl[2] == 0 || fl[2] > FLEET_HOST_MAX)
		return -EINVAL;
	for (size_t i = 0; i < fl[2]; i++)
		if ((unsigned char)f[2][i] < 0x20 || f[2][i] == 0x7f)
			return -EINVAL;
	memcpy(w->host, f[2], fl[2]);
	w->host[fl[2]] = '\0';
	if (fleet_u64(f[3], fl[3], &n) != 0 || n > 0x7fffffff)
		return -EINVAL;
	w->pid = (long)n;
	if (fleet_u64(f[4], fl[4], &w->delivered) != 0 ||
	    fleet_u64(f[5], fl[5], &w->held) != 0)
		return -EINVAL;
	return 0;
}

int
fleet_worker_format(char *out, size_t outsz, const struct fleet_worker *w)
{
	size_t	hl = strnlen(w->host, sizeof(w->host));
	int	n;

	if (hl == 0 || hl > FLEET_HOST_MAX || w->ts_ms < 0 || w->pid < 0)
		return -EINVAL;
	for (size_t i = 0; i < hl; i++)
		if ((unsigned char)w->host[i] < 0x20 || w->host[i] == 0x7f)
			return -EINVAL;
	n = snprintf(out, outsz, "%lld%c%u%c%.*s%c%ld%c%llu%c%llu",
	    (long long)w->ts_ms, RM_FS, w->threads, RM_FS, (int)hl, w->host,
	    RM_FS, w->pid, RM_FS, (unsigned long long)w->delivered, RM_FS,
	    (unsigned long long)w->held);
	if (n < 0 || (size_t)n >= outsz)
		return -ENOSPC;
	return 0;
}

bool
fleet_worker_live(const struct fleet_worker *w, int64_t now_ms)
{
	/* A clock a little ahead of ours still counts as live. */
	return w->ts_ms >= now_ms - RM_WORKER_LIVE_MS &&
	    w->ts_ms <= now_ms + RM_WORKER_LIVE_MS;
}

/* Exactly n digits at s into *v. */
static int
fleet_digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int
fleet_parse_time(const char *s, int64_t *ms)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	struct tm	tm;
	int		y, mo, d, h, mi, se, dim;
	time_t		t;
	size_t		len;
	uint64_t	secs;

	if (s == NULL)
		return -EINVAL;
	len = strlen(s);
	if (len > 0 && strspn(s, "0123456789") == len) {
		/* Unix seconds; year 9999 ends at 253402300799. */
		if (fleet_u64(s, len, &secs) != 0 || secs > 253402300799ULL)
			return -EINVAL;
		*ms = (int64_t)secs * 1000;
		return 0;
	}
	/* YYYY-MM-DDTHH:MM:SSZ */
	if (len != 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
	    s[16] != ':' || (s[19] != 'Z' && s[19] != 'z'))
		return -EINVAL;
	if (fleet_digits(s, 4, &y) || fleet_digits(s + 5, 2, &mo) ||
	    fleet_digits(s + 8, 2, &d) || fleet_digits(s + 11, 2, &h) ||
	    fleet_digits(s + 14, 2, &mi) || fleet_digits(s + 17, 2, &se))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
	    se > 59)
		return -EINVAL;
	dim = mdays[mo - 1];
	if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		dim = 29;
	if (d > dim)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -EINVAL;
	*ms = (int64_t)t * 1000;
	return 0;
}

int
fleet_parse_rate(const char *s, double *per_s)
{
	const char	*slash;
	uint64_t	 n;
	double		 unit;

	if (s == NULL || (slash = strchr(s, '/')) == NULL)
		return -EINVAL;
	if (fleet_u64(s, (size_t)(slash - s), &n) != 0 || n < 1 ||
	    n > FLEET_RATE_MAX)
		return -EINVAL;
	if (strcmp(slash + 1, "s") == 0)
		unit = 1;
	else if (strcmp(slash + 1, "m") == 0)
		unit = 60;
	else if (strcmp(slash + 1, "h") == 0)
		unit = 3600;
	else
		return -EINVAL;
	*per_s = (double)n / unit;
	return 0;
}

int
fleet_format_rate(char *out, size_t outsz, double per_s)
{
	int	n = snprintf(out, outsz, "%.9g", per_s);

	return n > 0 && (size_t)n < outsz ? 0 : -ENOSPC;
}
