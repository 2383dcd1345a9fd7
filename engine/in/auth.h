/*
 * auth: password file, scrypt hashes and a per-IP failed-login limiter for
 * the IMAP and POP3 servers.
 *
 * Users file: one "user:hash" per line; '#' lines and blank lines are
 * ignored. hash is "$scrypt$N$r$p$salt_b64$hash_b64" (OpenSSL
 * EVP_PBE_scrypt, 16-byte salt, 32-byte key, standard base64).
 *
 * The limiter is a token bucket per client address: each failure takes a
 * token, tokens come back at one per refill period, and an address with no
 * tokens left is refused until block_us has passed. Time comes from
 * mono_now(), which tests replace with mono_set_fake().
 *
 * Owns: struct auth_users (all its strings) and struct auth_limiter (a
 * fixed table). Must not touch: sockets, maildirs. Worker-local, not
 * thread-safe.
 */
#ifndef ENGINE_IN_AUTH_H
#define ENGINE_IN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/mono.h"

#define AUTH_SCRYPT_N		32768u	/* 2^15 */
#define AUTH_SCRYPT_R		8u
#define AUTH_SCRYPT_P		1u
/* Longest user name; also what sessions accept on the wire. */
#define AUTH_USER_MAX		64
/* Longest password accepted (bytes). */
#define AUTH_PASS_MAX		256
/* Big enough for any hash this module writes. */
#define AUTH_HASH_MAX		160

struct auth_users;
struct auth_limiter;

/*
 * Is user an acceptable user name: 1..AUTH_USER_MAX of [A-Za-z0-9._@+-],
 * not starting with '.'. Such a name is safe as a directory name.
 */
bool	auth_user_valid(const char *user);

/*
 * Hash pass with a fresh random salt into out ("$scrypt$..."). The _params
 * form lets tests use a cheap N. 0, -EINVAL (bad parameters / too long),
 * -ENOSPC (out too small) or -EIO (OpenSSL failure).
 */
int	auth_hash_password(const char *pass, size_t passlen, char *out,
	    size_t outlen);
int	auth_hash_password_params(const char *pass, size_t passlen,
	    uint64_t n, uint64_t r, uint64_t p, char *out, size_t outlen);

/*
 * Check pass against a hash string, comparing in constant time.
 * 0 match, -EACCES mismatch, -EINVAL malformed hash.
 */
int	auth_verify(const char *hash, const char *pass, size_t passlen);

/* Load a users file. NULL on failure with *err = -errno (-EINVAL: a
 * malformed line; *err_line, if not NULL, gets its number). */
struct auth_users *auth_users_load(const char *path, int *err,
	    unsigned *err_line);
/* Build from a string in the file format (tests, fuzzers). */
struct auth_users *auth_users_parse(const char *text, size_t len, int *err,
	    unsigned *err_line);
void	auth_users_free(struct auth_users *u);

/*
 * Check a login. Unknown users cost one hash computation too, so timing
 * does not reveal which names exist. Successful logins are cached for ten
 * minutes (keyed hash, never the password), so repeated logins skip
 * scrypt; this updates the cache inside u, so share one auth_users between
 * threads only under a lock (or load one per worker).
 * 0 ok, -EACCES bad user or password.
 */
int	auth_users_check(const struct auth_users *u, const char *user,
	    const char *pass, size_t passlen);
/* Logins answered from the cache so far (tests, stats). */
unsigned long auth_users_cache_hits(const struct auth_users *u);

/*
 * Limiter: burst failures allowed per address, one more every refill_us;
 * an address that runs out is refused for block_us. NULL on ENOMEM.
 */
struct auth_limiter *auth_limiter_new(unsigned burst, mono_us refill_us,
	    mono_us block_us);
void	auth_limiter_free(struct auth_limiter *l);
/* May addr try to log in now? 0 yes, -EAGAIN refused (blocked). */
int	auth_limiter_check(struct auth_limiter *l, const char *addr);
/* Record a failed login from addr. */
void	auth_limiter_fail(struct auth_limiter *l, const char *addr);
/* Record a successful login: the address starts afresh. */
void	auth_limiter_success(struct auth_limiter *l, const char *addr);

/*
 * Decode an RFC 4616 PLAIN response (base64, len chars) into user and pass
 * (NUL-terminated). An authzid must be empty or equal the user.
 * 0, -EINVAL (malformed or too long), -EPERM (other authzid).
 */
int	auth_sasl_plain(const char *b64, size_t len, char *user, size_t userlen,
	    char *pass, size_t passlen);

#endif
