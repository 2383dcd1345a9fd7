/*
 * strset: a set of byte strings (open addressing, linear probing,
 * tombstones), for lookups on the per-message path without Redis.
 *
 * Owns: its table and copies of the keys. Grows by doubling up to a
 * caller-given cap; strset_add returns -ENOSPC beyond it (the caller
 * decides what to drop). Worker-local, not thread-safe.
 */
#ifndef ENGINE_LIB_STRSET_H
#define ENGINE_LIB_STRSET_H

#include <stdbool.h>
#include <stddef.h>

struct strset {
	char	**slots;	/* owns each key; NULL empty, STRSET_TOMB deleted */
	size_t	 cap;		/* slots, a power of two */
	size_t	 n;		/* live keys */
	size_t	 used;		/* live + tombstones */
	size_t	 max;		/* most live keys allowed */
};

void	strset_init(struct strset *s, size_t max);
void	strset_fini(struct strset *s);
void	strset_clear(struct strset *s);
/* 0 (added or present), -ENOMEM, -ENOSPC. */
int	strset_add(struct strset *s, const char *k, size_t len);
bool	strset_has(const struct strset *s, const char *k, size_t len);
void	strset_del(struct strset *s, const char *k, size_t len);

#endif
