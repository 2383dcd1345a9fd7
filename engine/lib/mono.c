/* mono: monotonic clock. See mono.h. */
#include <stddef.h>
#include <time.h>

#include "lib/mono.h"

static const mono_us *mono_fake;

mono_us
mono_now(void)
{
	struct timespec	ts;

	if (mono_fake != NULL)
		return *mono_fake;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (mono_us)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
mono_set_fake(const mono_us *fake)
{
	mono_fake = fake;
}

int64_t
wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
