/* strset: string hash set. See strset.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strset.h"

static char strset_tomb_mark;
#define STRSET_TOMB	(&strset_tomb_mark)

/* Keys are stored as a length prefix (size_t) followed by the bytes. */
static uint64_t
strset_hash(const char *k, size_t len)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)k[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static bool
strset_eq(const char *slot, const char *k, size_t len)
{
	size_t	n;

	memcpy(&n, slot, sizeof(n));
	return n == len && memcmp(slot + sizeof(n), k, len) == 0;
}

void
strset_init(struct strset *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
}

void
strset_clear(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		if (s->slots[i] != NULL && s->slots[i] != STRSET_TOMB)
			free(s->slots[i]);
		s->slots[i] = NULL;
	}
	s->n = s->used = 0;
}

void
strset_fini(struct strset *s)
{
	strset_clear(s);
	free(s->slots);
	strset_init(s, s->max);
}

static size_t
strset_find(const struct strset *s, const char *k, size_t len, bool *found)
{
	size_t	mask = s->cap - 1, i = strset_hash(k, len) & mask;
	size_t	tomb = SIZE_MAX;

	*found = false;
	for (;;) {
		char	*e = s->slots[i];

		if (e == NULL)
			return tomb != SIZE_MAX ? tomb : i;
		if (e == STRSET_TOMB) {
			if (tomb == SIZE_MAX)
				tomb = i;
		} else if (strset_eq(e, k, len)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int
strset_grow(struct strset *s)
{
	size_t	 ncap = s->cap ? s->cap * 2 : 64, ocap = s->cap;
	char	**old = s->slots, **nslots;

	/* Rehash in place of tombstones when they, not keys, fill it. */
	if (s->cap && s->n * 4 < s->cap)
		ncap = s->cap;
	if ((nslots = calloc(ncap, sizeof(*nslots))) == NULL)
		return -ENOMEM;
	s->slots = nslots;
	s->cap = ncap;
	s->used = s->n;
	for (size_t i = 0; i < ocap; i++) {
		char	*e = old[i];
		size_t	 n;
		bool	 found;

		if (e == NULL || e == STRSET_TOMB)
			continue;
		memcpy(&n, e, sizeof(n));
		s->slots[strset_find(s, e + sizeof(n), n, &found)] = e;
	}
	free(old);
	return 0;
}

int
strset_add(struct strset *s, const char *k, size_t len)
{
	size_t	 i;
	bool	 found;
	char	*e;

	if (s->cap == 0 || (s->used + 1) * 4 > s->cap * 3) {
		int	r = strset_grow(s);

		if (r != 0)
			return r;
	}
	i = strset_find(s, k, len, &found);
	if (found)
		return 0;
	if (s->n >= s->max)
		return -ENOSPC;
	if ((e = malloc(sizeof(len) + len)) == NULL)
		return -ENOMEM;
	memcpy(e, &len, sizeof(len));
	memcpy(e + sizeof(len), k, len);
	if (s->slots[i] == NULL)
		s->used++;
	s->slots[i] = e;
	s->n++;
	return 0;
}

bool
strset_has(const struct strset *s, const char *k, size_t len)
{
	bool	found;

	if (s->cap == 0)
		return false;
	strset_find(s, k, len, &found);
	return found;
}

void
strset_del(struct strset *s, const char *k, size_t len)
{
	size_t	i;
	bool	found;

	if (s->cap == 0)
		return;
	i = strset_find(s, k, len, &found);
	if (!found)
		return;
	free(s->slots[i]);
	s->slots[i] = STRSET_TOMB;
	s->n--;
}
