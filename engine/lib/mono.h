/*
 * mono: the monotonic clock in microseconds, injectable for tests.
 *
 * Durations, deadlines and rates use mono_us only; the wall clock appears
 * only in logs and Redis records. Process-wide; the test hook is not
 * thread-safe and is meant for single-threaded unit tests.
 */
#ifndef ENGINE_LIB_MONO_H
#define ENGINE_LIB_MONO_H

#include <stdint.h>

typedef int64_t mono_us;

mono_us	mono_now(void);
/* Tests: make mono_now() return *fake (NULL restores the real clock). */
void	mono_set_fake(const mono_us *fake);
/* Wall clock, milliseconds since the epoch (for records and logs). */
int64_t	wall_ms(void);

#endif
