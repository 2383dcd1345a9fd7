/* suppress: suppression keys and values. See suppress.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "out/schema.h"
#include "out/suppress.h"

static bool
suppress_charset(const char *s, size_t max, bool upper)
{
	size_t	n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		char	c = s[n];

		if (n >= max)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (upper && c >= 'A' && c <= 'Z') || c == '_' || c == '-' ||
		    c == '.'))
			return false;
	}
	return n >= 1;
}

bool
suppress_list_valid(const char *name)
{
	return suppress_charset(name, SUPPRESS_LIST_MAX, true);
}

bool
suppress_source_valid(const char *src)
{
	return suppress_charset(src, SUPPRESS_SOURCE_MAX, false);
}

int
suppress_key(char *out, size_t outsz, const char *list)
{
	int	n;

	if (list == NULL || list[0] == '\0')
		n = snprintf(out, outsz, "%s", RM_KEY_SUPPRESS);
	else if (!suppress_list_valid(list))
		return -EINVAL;
	else
		n = snprintf(out, outsz, "%s%s", RM_KEY_SUPPRESS_LIST, list);
	return n > 0 && (size_t)n < outsz ? 0 : -ENOSPC;
}

int
suppress_normalize(char *out, size_t outsz, const char *addr, size_t len)
{
	size_t	a = 0, z = len;

	while (a < z && (addr[a] == ' ' || addr[a] == '\t'))
		a++;
	while (z > a && (addr[z - 1] == ' ' || addr[z - 1] == '\t'))
		z--;
	if (z == a || z - a > SUPPRESS_ADDR_MAX)
		return -EINVAL;
	if (outsz <= z - a)
		return -ENOSPC;
	for (size_t i = a; i < z; i++) {
		unsigned char	c = (unsigned char)addr[i];

		if (c <= 0x20 || c == 0x7f)
			return -EINVAL;
		out[i - a] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[z - a] = '\0';
	return 0;
}

int
suppress_format_value(char *out, size_t outsz, const char *reason,
    const char *source, int64_t ts_ms)
{
	size_t	o = 0, i = 0, rl;
	int	n;

	if (!suppress_source_valid(source) || ts_ms < 0)
		return -EINVAL;
	rl = reason ? strlen(reason) : 0;
	/* Room for the longest reason and both separated trailers. */
	if (outsz < SUPPRESS_VALUE_MAX)
		return -ENOSPC;
	while (i < rl) {
		unsigned char	c = (unsigned char)reason[i];
		size_t		k = json_utf8_seq(reason + i, rl - i);

		if (k == 0) {
			if (o + 1 > SUPPRESS_REASON_MAX)
				break;
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + k > SUPPRESS_REASON_MAX)
			break;
		if (k == 1 && (c < 0x20 || c == 0x7f))
			out[o] = ' ';
		else
			memcpy(out + o, reason + i, k);
		o += k;
		i += k;
	}
	n = snprintf(out + o, outsz - o, "%c%s%c%lld", RM_FS, source, RM_FS,
	    (long long)ts_ms);
	return n > 0 && (size_t)n < outsz - o ? 0 : -ENOSPC;
}

int
suppress_parse_value(const char *v, size_t len, struct suppress_entry *e)
{
	const char	*end = v + len, *f1, *f2, *f3;
	size_t		 rl, sl, tl;
	int64_t		 ts = 0;

	if (v == NULL)
		return -EINVAL;
	memset(e, 0, sizeof(*e));
	if ((f1 = memchr(v, RM_FS, len)) == NULL)
		return -EINVAL;
	if ((f2 = memchr(f1 + 1, RM_FS, (size_t)(end - f1 - 1))) == NULL)
		return -EINVAL;
	f3 = memchr(f2 + 1, RM_FS, (size_t)(end - f2 - 1));
	rl = (size_t)(f1 - v);
	sl = (size_t)(f2 - f1 - 1);
	tl = (size_t)((f3 ? f3 : end) - f2 - 1);
	if (rl > SUPPRESS_REASON_MAX || sl == 0 || sl > SUPPRESS_SOURCE_MAX ||
	    tl == 0 || tl > 18)
		return -EINVAL;
	for (size_t i = 0, k; i < rl; i += k) {
		unsigned char	c = (unsigned char)v[i];

		if ((k = json_utf8_seq(v + i, rl - i)) == 0 || c < 0x20 ||
		    c == 0x7f)
			return -EINVAL;
	}
	memcpy(e->reason, v, rl);
	e->reason[rl] = '\0';
	memcpy(e->source, f1 + 1, sl);
	e->source[sl] = '\0';
	if (!suppress_source_valid(e->source))
		return -EINVAL;
	/* 18 digits cannot overflow int64_t. */
	for (size_t i = 0; i < tl; i++) {
		char	c = f2[1 + i];

		if (c < '0' || c > '9')
			return -EINVAL;
		ts = ts * 10 + (c - '0');
	}
	e->ts_ms = ts;
	return 0;
}
