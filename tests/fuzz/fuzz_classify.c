/*
 * libFuzzer target for classify: the reply path (code, esc, text) with
 * the built-in rules, and -- when the first byte is 'R' -- the rule file
 * parser followed by a classification with the parsed set.
 * Input layout: byte 0 mode, bytes 1-2 reply code, then "esc\ntext".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/classify.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From bounce_rules_data.S: a second copy of the built-in rules, parsed
 * with the literal prefilter off, to check the prefilter never changes
 * an outcome. */
extern const char classify_rules_data_start[];
extern const char classify_rules_data_end[];
static struct classify_rules *fuzz_slow;

#define FUZZ_CLASSIFY_RULES_MAX	2048	/* regcomp cost grows fast */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct classify_result res;
	char	 esc[32], *text;
	const char *nl;
	int	 code;
	size_t	 elen;

	if (size < 3)
		return 0;
	if (data[0] == 'R') {
		char	 err[128];
		struct classify_rules *r;

		if (size > FUZZ_CLASSIFY_RULES_MAX)
			return 0;
		r = classify_rules_parse((const char *)data + 1, size - 1, err,
		    sizeof(err));
		if (r != NULL) {
			/* Classify the rule text itself: the literals it
			 * holds are the likeliest matches. */
			struct classify_rules *r2 = classify_rules_parse(
			    (const char *)data + 1, size - 1, NULL, 0);
			char	*t = malloc(size);
			struct classify_result res2;
			if (r2 == NULL || t == NULL)
				abort();
			memcpy(t, data + 1, size - 1);
			t[size - 1] = '\0';
			classify_rules_set_prefilter(r2, false);
			classify_reply_rules(r, 550, "5.1.1", t, &res);
			classify_reply_rules(r2, 550, "5.1.1", t, &res2);
			if (res.rule_line != res2.rule_line)
				abort();
			free(t);
			classify_rules_free(r2);
			classify_rules_free(r);
		} else if (memchr(err, '\0', sizeof(err)) == NULL) {
			abort();
		}
		return 0;
	}
	code = (data[1] << 8 | data[2]) % 700;
	data += 3;
	size -= 3;
	nl = memchr(data, '\n', size);
	elen = nl ? (size_t)(nl - (const char *)data) : 0;
	if (elen >= sizeof(esc))
		elen = sizeof(esc) - 1;
	memcpy(esc, data, elen);
	esc[elen] = '\0';
	if (nl != NULL) {
		size -= (size_t)(nl - (const char *)data) + 1;
		data = (const uint8_t *)nl + 1;
	}
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	classify_reply(code, esc, text, &res);
	if (fuzz_slow == NULL) {
		fuzz_slow = classify_rules_parse(classify_rules_data_start,
		    (size_t)((uintptr_t)classify_rules_data_end -
		    (uintptr_t)classify_rules_data_start), NULL, 0);
		if (fuzz_slow == NULL)
			abort();
		classify_rules_set_prefilter(fuzz_slow, false);
	}
	struct classify_result slow;
	classify_reply_rules(fuzz_slow, code, esc, text, &slow);
	if (slow.rule_line != res.rule_line || slow.actions != res.actions ||
	    slow.category != res.category)
		abort();
	if ((unsigned)res.category >= CLASSIFY__COUNT ||
	    (res.actions & ~CLASSIFY_A_ALL) != 0 ||
	    res.retry_after_s > CLASSIFY_RETRY_MAX_S)
		abort();
	(void)classify_retry_hint(text);
	free(text);
	return 0;
}
