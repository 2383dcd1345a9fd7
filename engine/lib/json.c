/* json: JSON string writer. See json.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/json.h"

size_t
json_utf8_seq(const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 need;
	unsigned		 lo = 0x80, hi = 0xbf;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	/* RFC 3629 table 4: the second byte's range depends on the first. */
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need;
}

int
json_put_str(struct buf *b, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i = 0, run;

	if (buf_putc(b, '"') != 0)
		return -ENOMEM;
	while (i < len) {
		unsigned char	 c = (unsigned char)s[i];
		char		 esc[7];
		const char	*e = NULL;
		size_t		 k;

		/* Copy the longest run that needs no escaping at once. */
		for (run = i; run < len; run += k) {
			unsigned char	 d = (unsigned char)s[run];

			if (d < 0x20 || d == '"' || d == '\\' || d == 0x7f)
				break;
			if ((k = json_utf8_seq(s + run, len - run)) == 0)
				break;
		}
		if (run > i) {
			if (buf_append(b, s + i, run - i) != 0)
				return -ENOMEM;
			i = run;
			continue;
		}
		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				esc[6] = '\0';
				e = esc;
			} else
				e = "\xef\xbf\xbd";	/* U+FFFD */
			break;
		}
		if (buf_puts(b, e) != 0)
			return -ENOMEM;
		i++;
	}
	return buf_putc(b, '"') != 0 ? -ENOMEM : 0;
}
