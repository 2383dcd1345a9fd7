/*
 * log: one key=value line per event on stderr.
 *
 * Owns: the process-wide level and the output lock. Lines are built in a
 * stack buffer and written with one write(2), so lines from several
 * threads never interleave. Never log bodies, AUTH lines or secrets.
 * Must not touch: exit(), except log_fatal*, which are for startup and
 * broken invariants only.
 */
#ifndef ENGINE_LIB_LOG_H
#define ENGINE_LIB_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void	log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; -1 when unknown. */
int	log_level_parse(const char *s);
void	log_msg(enum log_level lvl, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* As log_msg, with err=<strerror(errnum)> appended (errnum > 0). */
void	log_msgc(enum log_level lvl, int errnum, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
_Noreturn void log_fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	do { if (log_get_level() >= LOG_DEBUG) \
				log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* Loud invariant check that stays on in release builds. */
#define ENGINE_ASSERT(e) ((e) ? (void)0 : \
	log_fatalx("assertion failed: %s (%s:%d)", #e, __FILE__, __LINE__))

#endif
