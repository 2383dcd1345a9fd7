/*
 * fuzz_token: verp_decode and unsub_token_check on arbitrary bytes (what
 * a bounce or an HTTP request can carry), plus encode round trips from
 * fuzzer-chosen campaign ids and addresses. The first byte picks the
 * mode. A token is only ever accepted if our own encoder produces it
 * byte for byte (up to letter case for VERP).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct token_key *fuzz_key;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 camp[TOKEN_CAMPAIGN_BUFSZ], addr[TOKEN_ADDR_BUFSZ];
	char		 again[UNSUB_TOKEN_BUFSZ], in[512];
	const char	*s = (const char *)data + 1;
	uint32_t	 idx;
	size_t		 n;

	if (fuzz_key == NULL &&
	    (fuzz_key = token_key_new("fuzz-secret-0123456789", 22)) == NULL)
		abort();
	if (size == 0)
		return 0;
	n = size - 1;
	switch (data[0] % 4) {
	case 0:
		if (verp_decode(fuzz_key, s, n, camp, &idx) != 0)
			return 0;
		if (n > VERP_LOCAL_MAX || camp[0] == '\0')
			abort();
		if (camp[0] == '~') {
			if (strlen(camp) != VERP_HASHED_LEN)
				abort();
			return 0;	/* cannot re-encode without the id */
		}
		if (verp_encode(fuzz_key, camp, idx, again) != 0 ||
		    strlen(again) != n || strncasecmp(again, s, n) != 0)
			abort();
		return 0;
	case 1:
		if (unsub_token_check(fuzz_key, s, n, 1700000000, 0, camp,
		    addr) != 0)
			return 0;
		if (unsub_token_make(fuzz_key, camp, addr, 0, again) != 0)
			abort();
		return 0;
	case 2:
		/* campaign id \0 index bytes: encode, decode, compare. */
		if (n >= sizeof(in))
			return 0;
		memcpy(in, s, n);
		in[n] = '\0';
		idx = 0;
		for (size_t i = strlen(in) + 1; i < n && i < strlen(in) + 5;
		    i++)
			idx = idx << 8 | (uint8_t)in[i];
		if (verp_encode(fuzz_key, in, idx, again) != 0)
			return 0;
		if (strlen(again) > VERP_LOCAL_MAX ||
		    verp_decode(fuzz_key, again, strlen(again), camp,
		    &idx) != 0)
			abort();
		if (camp[0] != '~' && strcmp(camp, in) != 0)
			abort();
		return 0;
	default:
		/* campaign \0 address: make, check, compare. */
		if (n >= sizeof(in))
			return 0;
		memcpy(in, s, n);
		in[n] = '\0';
		{
			size_t cl = strlen(in);
			const char *a = cl + 1 < n ? in + cl + 1 : "";

			if (unsub_token_make(fuzz_key, in, a, 1700000000,
			    again) != 0)
				return 0;
			if (strlen(again) > UNSUB_TOKEN_MAX ||
			    unsub_token_check(fuzz_key, again, strlen(again),
			    1700000000, 60, camp, addr) != 0 ||
			    strcmp(camp, in) != 0 || strcmp(addr, a) != 0)
				abort();
		}
		return 0;
	}
}
