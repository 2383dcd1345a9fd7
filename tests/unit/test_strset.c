#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/strset.h"

Test(strset, add_has_del_many)
{
	struct strset	s;
	char		k[32];

	strset_init(&s, 1000000);
	for (int i = 0; i < 20000; i++) {
		int	n = snprintf(k, sizeof(k), "user%d@x.test", i);

		cr_assert_eq(strset_add(&s, k, (size_t)n), 0);
	}
	cr_assert_eq(s.n, 20000);
	cr_assert(strset_has(&s, "user19999@x.test", 16));
	cr_assert_not(strset_has(&s, "user20000@x.test", 16));
	/* Prefixes and near misses are different keys. */
	cr_assert_not(strset_has(&s, "user1999@x.tes", 14));
	for (int i = 0; i < 20000; i += 2) {
		int	n = snprintf(k, sizeof(k), "user%d@x.test", i);

		strset_del(&s, k, (size_t)n);
	}
	cr_assert_eq(s.n, 10000);
	cr_assert_not(strset_has(&s, "user0@x.test", 12));
	cr_assert(strset_has(&s, "user1@x.test", 12));
	/* Re-adding after delete reuses tombstones. */
	cr_assert_eq(strset_add(&s, "user0@x.test", 12), 0);
	cr_assert(strset_has(&s, "user0@x.test", 12));
	strset_fini(&s);
}

Test(strset, cap_is_enforced_and_clear_empties)
{
	struct strset	s;

	strset_init(&s, 2);
	cr_assert_eq(strset_add(&s, "a", 1), 0);
	cr_assert_eq(strset_add(&s, "b", 1), 0);
	cr_assert_eq(strset_add(&s, "a", 1), 0, "present: fine");
	cr_assert_eq(strset_add(&s, "c", 1), -ENOSPC);
	strset_clear(&s);
	cr_assert_not(strset_has(&s, "a", 1));
	cr_assert_eq(strset_add(&s, "c", 1), 0);
	strset_fini(&s);
}

Test(strset, churn_with_tombstones_stays_bounded)
{
	struct strset	s;
	char		k[32];

	strset_init(&s, 100);
	for (int i = 0; i < 100000; i++) {
		int	n = snprintf(k, sizeof(k), "k%d", i);

		cr_assert_eq(strset_add(&s, k, (size_t)n), 0);
		strset_del(&s, k, (size_t)n);
	}
	cr_assert_eq(s.n, 0);
	cr_assert(s.cap <= 256, "tombstones are recycled, cap %zu", s.cap);
	strset_fini(&s);
}
